//! A simulated Personio company: Personio's authentication and the employee reads of its
//! Personnel Data API (v1) on loopback, stateful, throttled, with fault injection and a
//! recording of every request.
//!
//! Built from Personio's own OpenAPI descriptions (`personio/api-docs`:
//! `personio-auth-api.yaml` and `personio-personnel-data-api-oa3.yaml`, vendored in
//! `specs/personio/`, see its README); every route in [`PersonioTenant::ROUTES`] is an operation of
//! them (a test checks it). Server: `https://api.personio.de/v1`.
//!
//! # Behaviour modelled
//! - `POST /v1/auth` with `client_id` and `client_secret` (JSON or form): `{"success": true,
//!   "data": {"token", "expires_in"}}`; a token is valid `expires_in` seconds (default one day,
//!   [`PersonioTenant::set_token_lifetime`]) and may be reused until then
//!   ([`PersonioTenant::expire_tokens`] ends every token at once). Wrong credentials: 401.
//! - Every other route needs `Authorization: Bearer <token>`; else a 401.
//! - Employees: numeric `id`, `first_name`, `last_name`, `email`, `status` (one of
//!   [`PersonioTenant::STATUSES`]), `supervisor` (an `Employee` holding only its `id`, as in the
//!   description's example), `termination_date`, `created_at`, `last_modified_at` (whole
//!   seconds, written with the company's UTC offset `+01:00`) and a custom attribute
//!   `dynamic_1001` ("Employee number"). Every change moves `last_modified_at`.
//! - `GET /v1/company/employees`: `limit` (1..=200, default 10), `offset` (≥ 0), `email`,
//!   `attributes[]` (a projection; `id` always), `updated_since` (`YYYY-MM-DDTHH:MM:SS` read in
//!   the company's offset, `YYYY-MM-DD`, or with an explicit offset: employees modified after
//!   it, every one of them in one answer: `limit`, `offset` and `email` are then ignored, as
//!   the description says). Any other parameter, or a value out of range, is a 400. Answer:
//!   `{success, metadata: {total_elements, current_page, total_pages}, offset, limit, data}`.
//!   Simplification: with `updated_since` and `attributes[]`, every employee modified is
//!   returned, not only those whose listed attributes changed.
//! - `GET /v1/company/employees/{employee_id}`: `{success, data}`; a non-numeric id is a 400,
//!   an unknown one a 404 (`Employee404ErrorResponse`).
//! - Recording: as the shared layer's, with the token request's `client_secret` hidden too.
//! - Throttling: a request budget per window ([`PersonioTenant::set_limit`]); over it, a 429
//!   with `Retry-After` and `X-RateLimit-Limit/-Remaining/-Reset`. `fail_next` answers the
//!   next N requests with a 500.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use wiremock::{MockServer, Request, ResponseTemplate};

pub use super::layer::RecordedRequest;
use super::layer::{self, Answer, Handler, Layer, Refusal, layer_controls};

/// An employee of the simulated company.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PersonioEmployee {
    /// `id` (set by [`PersonioTenant::add`]).
    pub id: u64,
    /// `first_name`.
    pub first_name: String,
    /// `last_name`.
    pub last_name: String,
    /// `email`.
    pub email: String,
    /// The employee number (custom attribute `dynamic_1001`).
    pub employee_number: String,
    /// `status`.
    pub status: String,
    /// The supervisor's `id`.
    pub supervisor: Option<u64>,
    /// `termination_date`.
    pub termination_date: Option<NaiveDate>,
    /// `created_at`.
    pub created_at: DateTime<Utc>,
    /// `last_modified_at`.
    pub last_modified_at: DateTime<Utc>,
}

impl PersonioEmployee {
    /// An `active` employee.
    pub fn active(email: &str, first_name: &str, last_name: &str, number: &str) -> Self {
        Self {
            email: email.into(),
            first_name: first_name.into(),
            last_name: last_name.into(),
            employee_number: number.into(),
            status: "active".into(),
            ..Self::default()
        }
    }
}

#[derive(Debug, Default)]
struct State {
    employees: BTreeMap<u64, PersonioEmployee>,
    /// Issued tokens → when they expire.
    tokens: BTreeMap<String, Instant>,
    issued: usize,
    next: u64,
    layer: Layer,
}

#[derive(Debug)]
struct Shared {
    client_id: String,
    client_secret: String,
    lifetime: Mutex<Duration>,
    state: Mutex<State>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        layer::lock(&self.state)
    }
}

/// The simulated Personio company. See the [module docs](self).
#[derive(Debug)]
pub struct PersonioTenant {
    server: MockServer,
    shared: Arc<Shared>,
}

/// The company's UTC offset (Personio writes times in it).
fn offset() -> FixedOffset {
    FixedOffset::east_opt(3600).expect("+01:00")
}

fn now() -> DateTime<Utc> {
    let t = Utc::now();
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

/// A time as Personio writes it: `2026-11-23T11:00:00+01:00`.
pub fn stamp(t: DateTime<Utc>) -> String {
    t.with_timezone(&offset())
        .to_rfc3339_opts(SecondsFormat::Secs, false)
}

fn error(status: u16, message: &str) -> Answer {
    Answer::new(
        status,
        Some(json!({"success": false, "error": {"code": status, "message": message}})),
    )
}

impl PersonioTenant {
    /// Every route served, as `(METHOD, path template)` exactly as in Personio's descriptions
    /// (whose server URL ends in `/v1`).
    pub const ROUTES: &'static [(&'static str, &'static str)] = &[
        ("POST", "/auth"),
        ("GET", "/company/employees"),
        ("GET", "/company/employees/{employee_id}"),
    ];

    /// The employee statuses, as the description's `employee[status]` enum lists them.
    pub const STATUSES: [&'static str; 4] = ["onboarding", "active", "leave", "inactive"];

    /// The custom attribute holding the employee number.
    pub const EMPLOYEE_NUMBER: &'static str = "dynamic_1001";

    /// Starts a company with random API credentials.
    pub async fn start() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        Self::start_with(format!("papi-{}", &id[..12]), format!("sim-personio-{id}")).await
    }

    /// Starts a company accepting these API credentials.
    pub async fn start_with(client_id: impl Into<String>, secret: impl Into<String>) -> Self {
        let shared = Arc::new(Shared {
            client_id: client_id.into(),
            client_secret: secret.into(),
            lifetime: Mutex::new(Duration::from_secs(86_400)),
            state: Mutex::new(State::default()),
        });
        let server = MockServer::start().await;
        layer::serve(&server, Arc::clone(&shared)).await;
        Self { server, shared }
    }

    /// The API base URL (`https://api.personio.de` of the real service).
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// The client id accepted.
    pub fn client_id(&self) -> &str {
        &self.shared.client_id
    }

    /// The client secret accepted.
    pub fn client_secret(&self) -> &str {
        &self.shared.client_secret
    }

    /// How long tokens issued from now on are valid.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        *layer::lock(&self.shared.lifetime) = lifetime;
    }

    /// Ends every token issued so far (their next use is a 401).
    pub fn expire_tokens(&self) {
        self.shared.state().tokens.clear();
    }

    /// Tokens issued so far.
    pub fn tokens_issued(&self) -> usize {
        self.shared.state().issued
    }

    /// Adds an employee; returns their id.
    pub fn add(&self, mut employee: PersonioEmployee) -> String {
        let mut s = self.shared.state();
        s.next += 1;
        employee.id = 1000 + s.next;
        assert!(Self::STATUSES.contains(&employee.status.as_str()));
        let t = now();
        employee.created_at = t;
        employee.last_modified_at = t;
        let id = employee.id;
        s.employees.insert(id, employee);
        id.to_string()
    }

    /// Changes an employee; the change moves `last_modified_at`.
    ///
    /// # Panics
    /// When there is no such employee, or the status is not one of [`Self::STATUSES`].
    pub fn update(&self, id: &str, change: impl FnOnce(&mut PersonioEmployee)) {
        let mut s = self.shared.state();
        let e = id
            .parse()
            .ok()
            .and_then(|id: u64| s.employees.get_mut(&id))
            .unwrap_or_else(|| panic!("no employee {id}"));
        change(e);
        assert!(Self::STATUSES.contains(&e.status.as_str()), "{}", e.status);
        e.last_modified_at = now();
    }

    /// Terminates: `inactive`, `termination_date` `on`.
    pub fn terminate(&self, id: &str, on: NaiveDate) {
        self.update(id, |e| {
            e.status = "inactive".into();
            e.termination_date = Some(on);
        });
    }

    /// Rehires: `active`, no termination date.
    pub fn rehire(&self, id: &str) {
        self.update(id, |e| {
            e.status = "active".into();
            e.termination_date = None;
        });
    }

    /// Deletes an employee; `false` when there was none.
    pub fn delete(&self, id: &str) -> bool {
        let mut s = self.shared.state();
        id.parse()
            .ok()
            .and_then(|id: u64| s.employees.remove(&id))
            .is_some()
    }

    /// An employee, as held.
    pub fn employee(&self, id: &str) -> Option<PersonioEmployee> {
        let s = self.shared.state();
        id.parse()
            .ok()
            .and_then(|id: u64| s.employees.get(&id).cloned())
    }

    layer_controls! {
        fail_next(500);
        set_limit("429");
        served;
        requests;
        throttled;
    }
}

fn attribute(label: &str, value: Value, kind: &str, universal: Option<&str>) -> Value {
    json!({"label": label, "value": value, "type": kind, "universal_id": universal})
}

fn employee_json(e: &PersonioEmployee, only: Option<&[String]>) -> Value {
    let date = |d: Option<NaiveDate>| {
        d.and_then(|d| d.and_hms_opt(0, 0, 0))
            .and_then(|t| t.and_local_timezone(offset()).single())
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, false))
    };
    let supervisor = e.supervisor.map(|id| {
        json!({"type": "Employee", "attributes": {"id": attribute("ID", json!(id), "integer", Some("id"))}})
    });
    let all = [
        ("id", attribute("ID", json!(e.id), "integer", Some("id"))),
        (
            "first_name",
            attribute(
                "First name",
                json!(e.first_name),
                "standard",
                Some("first_name"),
            ),
        ),
        (
            "last_name",
            attribute(
                "Last name",
                json!(e.last_name),
                "standard",
                Some("last_name"),
            ),
        ),
        (
            "email",
            attribute("Email", json!(e.email), "standard", Some("email")),
        ),
        (
            "status",
            attribute("Status", json!(e.status), "standard", Some("status")),
        ),
        (
            "supervisor",
            attribute(
                "Supervisor",
                json!(supervisor),
                "standard",
                Some("supervisor"),
            ),
        ),
        (
            "termination_date",
            attribute(
                "Termination date",
                json!(date(e.termination_date)),
                "date",
                Some("termination_date"),
            ),
        ),
        (
            "created_at",
            attribute(
                "created_at",
                json!(stamp(e.created_at)),
                "date",
                Some("created_at"),
            ),
        ),
        (
            "last_modified_at",
            attribute(
                "Last modified",
                json!(stamp(e.last_modified_at)),
                "date",
                Some("last_modified_at"),
            ),
        ),
        (
            PersonioTenant::EMPLOYEE_NUMBER,
            attribute(
                "Employee number",
                json!(e.employee_number),
                "standard",
                None,
            ),
        ),
    ];
    let attributes: Map<String, Value> = all
        .into_iter()
        .filter(|(k, _)| *k == "id" || only.is_none_or(|o| o.iter().any(|a| a == k)))
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    json!({"type": "Employee", "attributes": attributes})
}

/// `updated_since` as a time: a naive date or time is the company's local time.
fn since(value: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Some(t.with_timezone(&Utc));
    }
    let naive = NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S")
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(value, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })?;
    naive
        .and_local_timezone(offset())
        .single()
        .map(|t| t.with_timezone(&Utc))
}

fn list(s: &State, request: &Request) -> Answer {
    let mut limit = 10usize;
    let mut offset = 0usize;
    let mut email = None;
    let mut updated = None;
    let mut only: Option<Vec<String>> = None;
    for (k, v) in request.url.query_pairs() {
        match k.as_ref() {
            "limit" => match v.parse::<usize>() {
                Ok(n @ 1..=200) => limit = n,
                _ => return error(400, "limit must be between 1 and 200"),
            },
            "offset" => match v.parse() {
                Ok(n) => offset = n,
                Err(_) => return error(400, "offset must be a non-negative integer"),
            },
            "email" => email = Some(v.to_string()),
            "updated_since" => match since(&v) {
                Some(t) => updated = Some(t),
                None => return error(400, "updated_since must be ISO 8601 or YYYY-MM-DD"),
            },
            "attributes[]" => only.get_or_insert_with(Vec::new).push(v.to_string()),
            other => return error(400, &format!("Unknown parameter {other}")),
        }
    }
    let chosen: Vec<&PersonioEmployee> = match (updated, &email) {
        (Some(t), _) => s
            .employees
            .values()
            .filter(|e| e.last_modified_at > t)
            .collect(),
        (None, Some(m)) => s
            .employees
            .values()
            .filter(|e| e.email.eq_ignore_ascii_case(m))
            .collect(),
        (None, None) => s.employees.values().collect(),
    };
    let total = chosen.len();
    let (offset, limit, page): (usize, usize, Vec<&PersonioEmployee>) = if updated.is_some() {
        (0, total.max(1), chosen)
    } else {
        let page = chosen.into_iter().skip(offset).take(limit).collect();
        (offset, limit, page)
    };
    let data: Vec<Value> = page
        .into_iter()
        .map(|e| employee_json(e, only.as_deref()))
        .collect();
    Answer::new(
        200,
        Some(json!({
            "success": true,
            "metadata": {"total_elements": total, "current_page": offset / limit,
                         "total_pages": total.div_ceil(limit)},
            "offset": offset,
            "limit": limit,
            "data": data,
        })),
    )
}

impl Handler for Shared {
    fn handle(&self, request: &Request) -> ResponseTemplate {
        let mut s = self.state();
        let mut recorded = layer::record(request);
        // The token request carries the secret in its body: a recording never holds it.
        if let Some(Value::Object(body)) = recorded.body.as_mut()
            && let Some(secret) = body.get_mut("client_secret")
        {
            *secret = json!("[REDACTED]");
        }
        s.layer.receive(recorded);
        let latency = s.layer.faults.latency;
        self.answer(&mut s, request).template().set_delay(latency)
    }
}

impl Shared {
    fn auth(&self, s: &mut State, request: &Request) -> Answer {
        let form: BTreeMap<String, String> = match serde_json::from_slice::<Value>(&request.body) {
            Ok(Value::Object(m)) => m
                .into_iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k, v.to_owned())))
                .collect(),
            _ => url::form_urlencoded::parse(&request.body)
                .into_owned()
                .collect(),
        };
        if form.get("client_id") != Some(&self.client_id)
            || form.get("client_secret") != Some(&self.client_secret)
        {
            return error(401, "Wrong credentials");
        }
        s.issued += 1;
        let token = format!(
            "sim-personio-token-{}-{}",
            s.issued,
            uuid::Uuid::new_v4().simple()
        );
        let lifetime = *layer::lock(&self.lifetime);
        s.tokens.insert(token.clone(), Instant::now() + lifetime);
        Answer::new(
            200,
            Some(json!({"success": true, "data": {"token": token,
                        "expires_in": lifetime.as_secs(), "scope": "employees:read"}})),
        )
    }

    fn answer(&self, s: &mut State, request: &Request) -> Answer {
        match s.layer.admit() {
            Some(Refusal::Throttled {
                retry_after,
                limit,
                reset,
            }) => {
                let answer = error(429, "Too Many Requests")
                    .header("retry-after", retry_after.to_string())
                    .header("x-ratelimit-remaining", "0")
                    .header("x-ratelimit-reset", reset.to_string());
                return match limit {
                    Some(limit) => answer.header("x-ratelimit-limit", limit.to_string()),
                    None => answer,
                };
            }
            Some(Refusal::Failed(status)) => return error(status, "Internal Server Error"),
            None => {}
        }
        let path = request.url.path();
        if path == "/v1/auth" {
            return match request.method.as_str() {
                "POST" => self.auth(s, request),
                _ => error(405, "Method Not Allowed"),
            };
        }
        let live = layer::bearer(request)
            .and_then(|t| s.tokens.get(t))
            .is_some_and(|until| *until > Instant::now());
        if !live {
            return error(401, "The token is invalid or has expired");
        }
        let segments = layer::segments(path);
        let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
        match (request.method.as_str(), segs.as_slice()) {
            ("GET", ["v1", "company", "employees"]) => list(s, request),
            ("GET", ["v1", "company", "employees", id]) => {
                if request.url.query().is_some() {
                    return error(400, "Unexpected query parameters");
                }
                match id.parse::<u64>() {
                    Err(_) => error(400, "employee_id must be an integer"),
                    Ok(id) => match s.employees.get(&id) {
                        Some(e) => Answer::new(
                            200,
                            Some(json!({"success": true, "data": employee_json(e, None)})),
                        ),
                        None => error(404, "The employee was not found."),
                    },
                }
            }
            (_, ["v1", "company", "employees", ..]) => error(405, "Method Not Allowed"),
            _ => error(404, "Not Found"),
        }
    }
}
