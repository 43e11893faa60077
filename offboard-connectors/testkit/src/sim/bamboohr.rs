//! A simulated BambooHR company: the two operations of BambooHR's public API a source of truth
//! reads, on loopback, stateful, throttled, with fault injection and a recording of every
//! request.
//!
//! Built from BambooHR's own OpenAPI description (`BambooHR/bhr-api-php`, `specs/public.yaml`,
//! vendored reduced in `specs/bamboohr/`, see its README); every route in [`BambooTenant::ROUTES`]
//! is an operation of it (a test checks it).
//!
//! # Behaviour modelled
//! - Employees: numeric ids, `firstName`, `lastName`, `workEmail`, `employeeNumber`, `status`
//!   (`Active` or `Inactive`, the description's enum), `terminationDate` (`YYYY-MM-DD`, or
//!   BambooHR's `0000-00-00` when none), `reportsToId`, and the employee-last-changed time
//!   (whole seconds, as BambooHR keeps it), moved by every change. Deleting an employee
//!   leaves a `Deleted` change behind.
//! - `GET /api/v1/employees/changed?since=<ISO 8601>[&type=inserted|updated|deleted|all]`:
//!   `{"latest", "employees": {id: {id, action, lastChanged}}}` for every employee changed at
//!   or after `since` (`Inserted` when created at or after it, else `Updated`; deleted ones
//!   `Deleted`). A missing or unparsable `since`, or another `type`, is a 400.
//! - `GET /api/v1/employees/{id}?fields=a,b[&onlyCurrent=]`: the requested fields (default
//!   `firstName,lastName`) and `id`; unknown fields are omitted, as BambooHR omits fields the
//!   caller may not see; more than 400 fields is a 400; an unknown id a 404.
//! - Both answer JSON only to `Accept: application/json`; otherwise XML, as BambooHR does.
//!   Query parameters the operation does not define are refused (400).
//! - Authentication: HTTP basic with the API key as the user name and any password; anything
//!   else is a 401. Errors carry BambooHR's `X-BambooHR-Error-Message` header.
//! - Throttling: a request budget per window ([`BambooTenant::set_limit`]); over it, BambooHR's
//!   `503 Service Unavailable` with `Retry-After` (seconds). `fail_next` answers the next N
//!   requests with a 500.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use wiremock::{MockServer, Request, ResponseTemplate};

pub use super::layer::RecordedRequest;
use super::layer::{self, Answer, Handler, Layer, Refusal, layer_controls};

/// An employee to add with [`BambooTenant::add`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewEmployee {
    /// `firstName`.
    pub first_name: String,
    /// `lastName`.
    pub last_name: String,
    /// `workEmail`.
    pub work_email: String,
    /// `employeeNumber`.
    pub employee_number: String,
    /// `reportsToId`: the manager's employee id.
    pub reports_to: Option<String>,
}

/// An employee as the company holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Employee {
    /// Id.
    pub id: u64,
    /// `firstName`.
    pub first_name: String,
    /// `lastName`.
    pub last_name: String,
    /// `workEmail`.
    pub work_email: String,
    /// `employeeNumber`.
    pub employee_number: String,
    /// `Active` or `Inactive`.
    pub status: String,
    /// `terminationDate`.
    pub termination_date: Option<NaiveDate>,
    /// `reportsToId`.
    pub reports_to: Option<String>,
    /// When created.
    pub created: DateTime<Utc>,
    /// The employee-last-changed time.
    pub last_changed: DateTime<Utc>,
}

#[derive(Debug, Default)]
struct State {
    employees: BTreeMap<u64, Employee>,
    /// Deleted employee id → when.
    deleted: BTreeMap<u64, DateTime<Utc>>,
    next: u64,
    layer: Layer,
}

#[derive(Debug)]
struct Shared {
    api_key: String,
    state: Mutex<State>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        layer::lock(&self.state)
    }
}

/// The simulated BambooHR company. See the [module docs](self).
#[derive(Debug)]
pub struct BambooTenant {
    server: MockServer,
    shared: Arc<Shared>,
}

/// Now, in whole seconds (BambooHR's precision).
fn now() -> DateTime<Utc> {
    let t = Utc::now();
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

/// A time as BambooHR writes it: `2026-11-23T10:00:00+00:00`.
pub fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, false)
}

fn error(status: u16, message: &str) -> Answer {
    Answer::new(status, None).header("x-bamboohr-error-message", message)
}

impl BambooTenant {
    /// Every route served, as `(METHOD, path template)` exactly as in BambooHR's description.
    pub const ROUTES: &'static [(&'static str, &'static str)] = &[
        ("GET", "/api/v1/employees/changed"),
        ("GET", "/api/v1/employees/{id}"),
    ];

    /// The `status` values, as the description's enum lists them.
    pub const STATUSES: [&'static str; 2] = ["Active", "Inactive"];

    /// The employee fields modelled (others are omitted from answers, as fields the caller may
    /// not see are).
    pub const FIELDS: [&'static str; 7] = [
        "firstName",
        "lastName",
        "workEmail",
        "employeeNumber",
        "status",
        "terminationDate",
        "reportsToId",
    ];

    /// Starts a company with a random API key.
    pub async fn start() -> Self {
        Self::start_with(format!("sim-bamboo-{}", uuid::Uuid::new_v4().simple())).await
    }

    /// Starts a company accepting `api_key`.
    pub async fn start_with(api_key: impl Into<String>) -> Self {
        let shared = Arc::new(Shared {
            api_key: api_key.into(),
            state: Mutex::new(State::default()),
        });
        let server = MockServer::start().await;
        layer::serve(&server, Arc::clone(&shared)).await;
        Self { server, shared }
    }

    /// The base URL (`https://{companyDomain}.bamboohr.com` of the real service).
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// The API key accepted.
    pub fn api_key(&self) -> &str {
        &self.shared.api_key
    }

    /// Adds an `Active` employee; returns their id.
    pub fn add(&self, new: NewEmployee) -> String {
        let mut s = self.shared.state();
        s.next += 1;
        let id = s.next;
        let t = now();
        s.employees.insert(
            id,
            Employee {
                id,
                first_name: new.first_name,
                last_name: new.last_name,
                work_email: new.work_email,
                employee_number: new.employee_number,
                status: "Active".into(),
                termination_date: None,
                reports_to: new.reports_to,
                created: t,
                last_changed: t,
            },
        );
        id.to_string()
    }

    /// Changes an employee (the change moves their last-changed time).
    ///
    /// # Panics
    /// When there is no such employee.
    pub fn update(&self, id: &str, change: impl FnOnce(&mut Employee)) {
        let mut s = self.shared.state();
        let e = id
            .parse()
            .ok()
            .and_then(|id: u64| s.employees.get_mut(&id))
            .unwrap_or_else(|| panic!("no employee {id}"));
        change(e);
        assert!(
            Self::STATUSES.contains(&e.status.as_str()),
            "{:?} is not a BambooHR status",
            e.status
        );
        e.last_changed = now();
    }

    /// Terminates: `status` `Inactive`, `terminationDate` `on`.
    pub fn terminate(&self, id: &str, on: NaiveDate) {
        self.update(id, |e| {
            e.status = "Inactive".into();
            e.termination_date = Some(on);
        });
    }

    /// Rehires: `status` `Active`, no termination date.
    pub fn rehire(&self, id: &str) {
        self.update(id, |e| {
            e.status = "Active".into();
            e.termination_date = None;
        });
    }

    /// Deletes an employee; `false` when there was none.
    pub fn delete(&self, id: &str) -> bool {
        let mut s = self.shared.state();
        let Ok(id) = id.parse::<u64>() else {
            return false;
        };
        let found = s.employees.remove(&id).is_some();
        if found {
            s.deleted.insert(id, now());
        }
        found
    }

    /// An employee, as held.
    pub fn employee(&self, id: &str) -> Option<Employee> {
        let s = self.shared.state();
        id.parse()
            .ok()
            .and_then(|id: u64| s.employees.get(&id).cloned())
    }

    layer_controls! {
        fail_next(500);
        set_limit("503 with `Retry-After`");
        served;
        requests;
        throttled;
    }
}

/// The query pairs, refused (400) when one is not among `allowed` or repeated.
fn query(request: &Request, allowed: &[&str]) -> Result<BTreeMap<String, String>, Answer> {
    let mut out = BTreeMap::new();
    for (k, v) in request.url.query_pairs() {
        if !allowed.contains(&k.as_ref()) || out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(error(400, &format!("Invalid query parameter: {k}")));
        }
    }
    Ok(out)
}

fn changed(s: &State, request: &Request) -> Answer {
    let q = match query(request, &["since", "type"]) {
        Ok(q) => q,
        Err(a) => return a,
    };
    let Some(since) = q
        .get("since")
        .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
        .map(|t| t.with_timezone(&Utc))
    else {
        return error(400, "The since parameter must be an ISO 8601 timestamp");
    };
    let kind = q.get("type").map_or("all", String::as_str);
    if !["inserted", "updated", "deleted", "all"].contains(&kind) {
        return error(400, "Invalid type");
    }
    let mut employees = Map::new();
    let mut latest = since;
    let mut put = |id: u64, action: &str, at: DateTime<Utc>| {
        latest = latest.max(at);
        employees.insert(
            id.to_string(),
            json!({"id": id.to_string(), "action": action, "lastChanged": stamp(at)}),
        );
    };
    for e in s.employees.values().filter(|e| e.last_changed >= since) {
        let action = if e.created >= since {
            "Inserted"
        } else {
            "Updated"
        };
        if kind == "all" || kind.eq_ignore_ascii_case(action) {
            put(e.id, action, e.last_changed);
        }
    }
    if matches!(kind, "all" | "deleted") {
        for (&id, &at) in s.deleted.iter().filter(|(_, at)| **at >= since) {
            put(id, "Deleted", at);
        }
    }
    Answer::new(
        200,
        Some(json!({"latest": stamp(latest), "employees": employees})),
    )
}

fn employee_json(e: &Employee, fields: &[&str]) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(e.id.to_string()));
    for f in fields {
        let v = match *f {
            "firstName" => json!(e.first_name),
            "lastName" => json!(e.last_name),
            "workEmail" => json!(e.work_email),
            "employeeNumber" => json!(e.employee_number),
            "status" => json!(e.status),
            "terminationDate" => json!(
                e.termination_date
                    .map_or_else(|| "0000-00-00".to_owned(), |d| d.to_string())
            ),
            "reportsToId" => json!(e.reports_to),
            _ => continue,
        };
        out.insert((*f).to_owned(), v);
    }
    Value::Object(out)
}

fn get_employee(s: &State, id: &str, request: &Request) -> Answer {
    let q = match query(request, &["fields", "onlyCurrent"]) {
        Ok(q) => q,
        Err(a) => return a,
    };
    let fields: Vec<&str> = q
        .get("fields")
        .map_or("firstName,lastName", String::as_str)
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .collect();
    if fields.len() > 400 {
        return error(400, "The maximum number of fields per request is 400");
    }
    match id.parse().ok().and_then(|id: u64| s.employees.get(&id)) {
        Some(e) => Answer::new(200, Some(employee_json(e, &fields))),
        None => error(404, "Employee not found"),
    }
}

impl Handler for Shared {
    fn handle(&self, request: &Request) -> ResponseTemplate {
        let mut s = self.state();
        s.layer.receive(layer::record(request));
        let latency = s.layer.faults.latency;
        let answer = self.answer(&mut s, request);
        let json = request
            .headers
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("application/json"));
        let template = match (&answer.body, json) {
            (Some(body), false) => {
                // BambooHR answers XML unless JSON is asked for.
                let mut t = ResponseTemplate::new(answer.status).set_body_raw(
                    format!("<?xml version=\"1.0\"?><response><![CDATA[{body}]]></response>"),
                    "text/xml",
                );
                for (k, v) in &answer.headers {
                    t = t.insert_header(k.as_str(), v.as_str());
                }
                t
            }
            _ => answer.template(),
        };
        template.set_delay(latency)
    }
}

impl Shared {
    fn answer(&self, s: &mut State, request: &Request) -> Answer {
        let auth = layer::authorization(request);
        // Basic base64(api_key ":" anything): compare the decoded user name.
        let authorised = auth
            .strip_prefix("Basic ")
            .and_then(|b| {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.decode(b).ok()
            })
            .and_then(|raw| String::from_utf8(raw).ok())
            .is_some_and(|pair| pair.split_once(':').is_some_and(|(u, _)| u == self.api_key));
        if !authorised {
            return error(401, "Invalid API key");
        }
        match s.layer.admit() {
            Some(Refusal::Throttled { retry_after, .. }) => {
                return error(503, "Service Unavailable: rate limited")
                    .header("retry-after", retry_after.to_string());
            }
            Some(Refusal::Failed(status)) => return error(status, "Internal Server Error"),
            None => {}
        }
        let segments = layer::segments(request.url.path());
        let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
        match (request.method.as_str(), segs.as_slice()) {
            ("GET", ["api", "v1", "employees", "changed"]) => changed(s, request),
            ("GET", ["api", "v1", "employees", id]) => get_employee(s, id, request),
            (_, ["api", "v1", "employees", ..]) => error(405, "Method Not Allowed"),
            _ => error(404, "Not Found"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_the_ones_modelled() {
        let e = Employee {
            id: 7,
            first_name: "Ada".into(),
            last_name: "L".into(),
            work_email: "ada@example.com".into(),
            employee_number: "E7".into(),
            status: "Active".into(),
            termination_date: None,
            reports_to: None,
            created: now(),
            last_changed: now(),
        };
        let v = employee_json(&e, &BambooTenant::FIELDS);
        assert_eq!(v["terminationDate"], "0000-00-00");
        assert_eq!(v["id"], "7");
        assert!(employee_json(&e, &["salary"]).get("salary").is_none());
    }
}
