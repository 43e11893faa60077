//! A simulated HiBob (Bob) company: the employee search of HiBob's public API on loopback,
//! stateful, throttled, with fault injection and a recording of every request.
//!
//! Built from the Bob API's OpenAPI description (as published on HiBob's developer portal,
//! <https://apidocs.hibob.com/reference>, and captured in `konfig-sdks/hi-bob-java-sdk`;
//! vendored reduced in `specs/hibob/`, see its README); every route in [`HibobTenant::ROUTES`] is an
//! operation of it (a test checks it). The employee fields read (`internal.*`) are HiBob's
//! field paths from its fields metadata and help centre
//! (<https://help.hibob.com/hc/en-us/articles/4409776355857>), not in the description.
//!
//! # Behaviour modelled
//! - Employees: `id`, `email`, `firstName`, `surname`, `displayName`,
//!   `work.employeeIdInCompany`, `work.reportsTo` (`{id, email, firstName, surname,
//!   displayName}` of the manager), `internal.lifecycleStatus` (one of
//!   [`HibobTenant::LIFECYCLE_STATUSES`]), `internal.status` (`Active`, or `Inactive` for
//!   `hired` and `terminated` people), `internal.terminationDate` (`YYYY-MM-DD` or null).
//! - `POST /v1/people/search` with a JSON body of `fields` (field paths; `root.x` is answered
//!   as `x`; unknown paths are left out, as fields the service user may not see are),
//!   `filters` (at most one: `root.id` or `root.email`, operator `equals`, non-empty
//!   `values`; anything else is a 400), `showInactive` (default false: only `Active`
//!   people) and `humanReadable` (`APPEND` or `REPLACE`). Any other member is a 400. One
//!   answer, no paging: `{"employees": [...]}`.
//! - Authentication: HTTP basic with the service user's id and token; anything else is a
//!   401. Errors are `{"key", "error"}` (the description's `Error`).
//! - Throttling: a request budget per window ([`HibobTenant::set_limit`]); over it, a 429 with
//!   `Retry-After` (seconds). `fail_next` answers the next N requests with a 500.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::NaiveDate;
use serde_json::{Map, Value, json};
use wiremock::{MockServer, Request, ResponseTemplate};

pub use super::layer::RecordedRequest;
use super::layer::{self, Answer, Handler, Layer, Refusal, layer_controls};

/// An employee of the simulated company.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct BobEmployee {
    /// `id`.
    pub id: String,
    /// `email` (the work address).
    pub email: String,
    /// `firstName`.
    pub first_name: String,
    /// `surname`.
    pub surname: String,
    /// `work.employeeIdInCompany`.
    pub employee_id_in_company: String,
    /// The manager's `id` (`work.reportsTo`).
    pub reports_to: Option<String>,
    /// `internal.lifecycleStatus`.
    pub lifecycle_status: String,
    /// `internal.terminationDate`.
    pub termination_date: Option<NaiveDate>,
}

impl BobEmployee {
    /// An `employed` person.
    pub fn employed(email: &str, first_name: &str, surname: &str, id_in_company: &str) -> Self {
        Self {
            id: String::new(),
            email: email.into(),
            first_name: first_name.into(),
            surname: surname.into(),
            employee_id_in_company: id_in_company.into(),
            reports_to: None,
            lifecycle_status: "employed".into(),
            termination_date: None,
        }
    }

    /// `internal.status`: HiBob's access status for the lifecycle status.
    pub fn status(&self) -> &'static str {
        match self.lifecycle_status.as_str() {
            "hired" | "terminated" => "Inactive",
            _ => "Active",
        }
    }
}

#[derive(Debug, Default)]
struct State {
    employees: BTreeMap<String, BobEmployee>,
    next: u64,
    layer: Layer,
}

#[derive(Debug)]
struct Shared {
    user: String,
    token: String,
    state: Mutex<State>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        layer::lock(&self.state)
    }
}

/// The simulated HiBob company. See the [module docs](self).
#[derive(Debug)]
pub struct HibobTenant {
    server: MockServer,
    shared: Arc<Shared>,
}

fn error(status: u16, key: &str, message: &str) -> Answer {
    Answer::new(status, Some(json!({"key": key, "error": message})))
}

impl HibobTenant {
    /// Every route served, as `(METHOD, path template)` exactly as in the description (whose
    /// server URL ends in `/v1`).
    pub const ROUTES: &'static [(&'static str, &'static str)] = &[("POST", "/people/search")];

    /// HiBob's built-in lifecycle statuses (machine values).
    pub const LIFECYCLE_STATUSES: [&'static str; 6] = [
        "hired",
        "employed",
        "garden leave",
        "leave",
        "parental leave",
        "terminated",
    ];

    /// Starts a company with a random service user.
    pub async fn start() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        Self::start_with(format!("SERVICE-{}", &id[..8]), format!("sim-bob-{id}")).await
    }

    /// Starts a company whose service user is `user` with `token`.
    pub async fn start_with(user: impl Into<String>, token: impl Into<String>) -> Self {
        let shared = Arc::new(Shared {
            user: user.into(),
            token: token.into(),
            state: Mutex::new(State::default()),
        });
        let server = MockServer::start().await;
        layer::serve(&server, Arc::clone(&shared)).await;
        Self { server, shared }
    }

    /// The API base URL (`https://api.hibob.com` of the real service).
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// The service user's id.
    pub fn service_user(&self) -> &str {
        &self.shared.user
    }

    /// The service user's token.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// Adds an employee; returns their id (the `id` given is replaced).
    pub fn add(&self, mut employee: BobEmployee) -> String {
        let mut s = self.shared.state();
        s.next += 1;
        // Bob ids are numeric strings.
        employee.id = format!("{}", 3_000_000_000_000_000_000u64 + s.next);
        let id = employee.id.clone();
        assert!(Self::LIFECYCLE_STATUSES.contains(&employee.lifecycle_status.as_str()));
        s.employees.insert(id.clone(), employee);
        id
    }

    /// Changes an employee.
    ///
    /// # Panics
    /// When there is no such employee.
    pub fn update(&self, id: &str, change: impl FnOnce(&mut BobEmployee)) {
        let mut s = self.shared.state();
        let e = s
            .employees
            .get_mut(id)
            .unwrap_or_else(|| panic!("no employee {id}"));
        change(e);
    }

    /// Terminates: lifecycle status `terminated`, termination date `on`.
    pub fn terminate(&self, id: &str, on: NaiveDate) {
        self.update(id, |e| {
            e.lifecycle_status = "terminated".into();
            e.termination_date = Some(on);
        });
    }

    /// Rehires: `employed`, no termination date.
    pub fn rehire(&self, id: &str) {
        self.update(id, |e| {
            e.lifecycle_status = "employed".into();
            e.termination_date = None;
        });
    }

    /// Deletes an employee's record; `false` when there was none.
    pub fn delete(&self, id: &str) -> bool {
        self.shared.state().employees.remove(id).is_some()
    }

    layer_controls! {
        fail_next(500);
        set_limit("429 with `Retry-After`");
        served;
        requests;
        throttled;
    }
}

/// One field path of `e`, as HiBob answers it (`None`: no such field here).
fn field(s: &State, e: &BobEmployee, path: &str) -> Option<Value> {
    Some(match path {
        "root.id" => json!(e.id),
        "root.email" => json!(e.email),
        "root.firstName" => json!(e.first_name),
        "root.surname" => json!(e.surname),
        "root.displayName" => json!(format!("{} {}", e.first_name, e.surname)),
        "work.employeeIdInCompany" => json!(e.employee_id_in_company),
        "work.reportsTo" => match e.reports_to.as_ref().and_then(|m| s.employees.get(m)) {
            Some(m) => json!({"id": m.id, "email": m.email, "firstName": m.first_name,
                              "surname": m.surname,
                              "displayName": format!("{} {}", m.first_name, m.surname)}),
            None => Value::Null,
        },
        "internal.lifecycleStatus" => json!(e.lifecycle_status),
        "internal.status" => json!(e.status()),
        "internal.terminationDate" => json!(e.termination_date.map(|d| d.to_string())),
        _ => return None,
    })
}

/// Puts `value` at `path` (`root.x` at `x`, `a.b` nested).
fn put(out: &mut Map<String, Value>, path: &str, value: Value) {
    let path = path.strip_prefix("root.").unwrap_or(path);
    match path.split_once('.') {
        None => {
            out.insert(path.to_owned(), value);
        }
        Some((head, rest)) => {
            let inner = out
                .entry(head.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(inner) = inner {
                put(inner, rest, value);
            }
        }
    }
}

/// The search's filter: which field and the values it must equal.
fn filter(body: &Map<String, Value>) -> Result<Option<(String, Vec<String>)>, Answer> {
    let bad = |m: &str| error(400, "invalid.filter", m);
    let Some(filters) = body.get("filters") else {
        return Ok(None);
    };
    let filters = filters
        .as_array()
        .ok_or_else(|| bad("filters must be a list"))?;
    match filters.as_slice() {
        [] => Ok(None),
        [f] => {
            let path = f["fieldPath"].as_str().unwrap_or_default();
            if !["root.id", "root.email"].contains(&path) {
                return Err(bad("Unsupported fieldPath"));
            }
            if f["operator"] != "equals" {
                return Err(bad("Unsupported operator"));
            }
            let values: Vec<String> = f["values"]
                .as_array()
                .map(|v| {
                    v.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            if values.is_empty() {
                return Err(bad("values must not be empty"));
            }
            Ok(Some((path.to_owned(), values)))
        }
        _ => Err(bad("At most one filter is supported")),
    }
}

fn search(s: &State, request: &Request) -> Answer {
    let bad = |m: &str| error(400, "invalid.request", m);
    if request.url.query().is_some() {
        return bad("Unexpected query parameters");
    }
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&request.body) else {
        return bad("The body must be a JSON object");
    };
    if let Some(k) = body
        .keys()
        .find(|k| !["fields", "filters", "showInactive", "humanReadable"].contains(&k.as_str()))
    {
        return bad(&format!("Unrecognized field \"{k}\""));
    }
    let show_inactive = match body.get("showInactive") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return bad("showInactive must be a boolean"),
    };
    if body
        .get("humanReadable")
        .is_some_and(|h| !matches!(h.as_str(), Some("APPEND" | "REPLACE")))
    {
        return bad("humanReadable must be APPEND or REPLACE");
    }
    let fields: Vec<String> = match body.get("fields") {
        None => [
            "root.id",
            "root.email",
            "root.firstName",
            "root.surname",
            "root.displayName",
        ]
        .map(str::to_owned)
        .to_vec(),
        Some(Value::Array(f)) if f.iter().all(Value::is_string) => f
            .iter()
            .filter_map(|f| f.as_str().map(str::to_owned))
            .collect(),
        Some(_) => return bad("fields must be a list of field paths"),
    };
    let filter = match filter(&body) {
        Ok(f) => f,
        Err(a) => return a,
    };
    let chosen: Vec<&BobEmployee> = match &filter {
        Some((path, values)) if path == "root.id" => {
            values.iter().filter_map(|v| s.employees.get(v)).collect()
        }
        Some((_, values)) => s
            .employees
            .values()
            .filter(|e| values.iter().any(|v| v.eq_ignore_ascii_case(&e.email)))
            .collect(),
        None => s.employees.values().collect(),
    };
    let employees: Vec<Value> = chosen
        .into_iter()
        .filter(|e| show_inactive || e.status() == "Active")
        .map(|e| {
            let mut out = Map::new();
            for f in &fields {
                if let Some(v) = field(s, e, f) {
                    put(&mut out, f, v);
                }
            }
            Value::Object(out)
        })
        .collect();
    Answer::new(200, Some(json!({"employees": employees})))
}

impl Handler for Shared {
    fn handle(&self, request: &Request) -> ResponseTemplate {
        let mut s = self.state();
        s.layer.receive(layer::record(request));
        let latency = s.layer.faults.latency;
        self.answer(&mut s, request).template().set_delay(latency)
    }
}

impl Shared {
    fn answer(&self, s: &mut State, request: &Request) -> Answer {
        if layer::authorization(request) != layer::basic(&self.user, &self.token) {
            return error(401, "unauthorized", "Unauthorized");
        }
        match s.layer.admit() {
            Some(Refusal::Throttled { retry_after, .. }) => {
                return error(429, "too.many.requests", "Too Many Requests")
                    .header("retry-after", retry_after.to_string());
            }
            Some(Refusal::Failed(status)) => {
                return error(status, "internal.error", "Internal Server Error");
            }
            None => {}
        }
        match (request.method.as_str(), request.url.path()) {
            ("POST", "/v1/people/search") => search(s, request),
            (_, "/v1/people/search") => error(405, "method.not.allowed", "Method Not Allowed"),
            _ => error(404, "not.found", "Not Found"),
        }
    }
}
