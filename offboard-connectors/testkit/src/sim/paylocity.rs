//! A simulated Paylocity company: the Web Services API v2 employee reads and the
//! IdentityServer token endpoint on loopback, stateful, with throttling, fault injection and
//! a recording of every request.
//!
//! Built from Paylocity's published OpenAPI description (`specs/paylocity/`, reduced to the
//! operations served; [`PaylocityTenant::ROUTES`] are checked against it by a test) and the
//! authorization section of its description text.
//!
//! # Behaviour modelled
//! - `POST /IdentityServer/connect/token`: the client credentials grant with
//!   `Authorization: Basic base64(client_id:client_secret)` and a form body
//!   (`application/x-www-form-urlencoded`) with `grant_type=client_credentials` and
//!   `scope=WebLinkAPI`. Wrong or missing client credentials: 400 `invalid_client`; another
//!   grant: 400 `unsupported_grant_type`; another scope: 400 `invalid_scope`; not a POST:
//!   405. The answer: `{"access_token", "expires_in": 3600, "token_type": "Bearer"}`.
//! - `GET /api/v2/companies/{companyId}/employees/` (also without the trailing `/`, as
//!   Paylocity's routing answers both): `pagesize` (1 to 5000; the description gives only the
//!   default, 25: the upper bound is this simulator's, and a larger or non-numeric value is a
//!   400), `pagenumber` (0-based), `includetotalcount` (`true`/`false`, default true: the
//!   `X-Pcty-Total-Count` header). Any other parameter is a 400 (stricter than Paylocity,
//!   which ignores them). Employees in `employeeId` order, each as `employeeId`,
//!   `statusCode`, `statusTypeCode`.
//! - `GET /api/v2/companies/{companyId}/employees/{employeeId}`: an array holding the
//!   employee (names, `workAddress`/`homeAddress` emails, `departmentPosition` supervisor,
//!   `status` with `employeeStatus`, `effectiveDate`, `changeReason`, hire dates); 404 with
//!   Paylocity's error array when there is no such employee.
//! - Another company than the one the client is set up for: 403. A missing, unknown or
//!   expired bearer token: 401. Another method: 405. An unknown path: 404.
//! - Throttling: an optional per-minute request budget ([`PaylocityTenant::set_rate_limit`];
//!   Paylocity publishes no number) answered 429 with `Retry-After`.
//! - Faults: the next N requests failing with a chosen status ([`PaylocityTenant::fail_next`];
//!   a 500 carries Paylocity's error array, a 429 a `Retry-After`), and the shared layer's
//!   fault shares.
//!
//! # Example
//! ```
//! use offboard_testkit::sim::paylocity::{NewEmployee, PaylocityTenant};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let company = PaylocityTenant::start().await;
//! company.hire(NewEmployee::new("E1", "ada@example.com", "Ada", "Lovelace"));
//! assert_eq!(company.status_of("E1").as_deref(), Some("A"));
//! # }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use serde_json::{Value, json};
use wiremock::{MockServer, Request, ResponseTemplate};

use super::layer::{self, Answer, Handler, Layer, Refusal, layer_controls};
pub use super::layer::{Faults, RecordedRequest};

/// An employee to hire with [`PaylocityTenant::hire`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEmployee {
    /// `employeeId`.
    pub employee_id: String,
    /// `workAddress.emailAddress`.
    pub work_email: String,
    /// `homeAddress.emailAddress`.
    pub home_email: Option<String>,
    /// `firstName`.
    pub first_name: String,
    /// `lastName`.
    pub last_name: String,
    /// `preferredName`.
    pub preferred_name: Option<String>,
    /// `departmentPosition.supervisorEmployeeId` (same company).
    pub supervisor: Option<String>,
}

impl NewEmployee {
    /// An active employee with these id, work email and names.
    pub fn new(id: &str, work_email: &str, first: &str, last: &str) -> Self {
        Self {
            employee_id: id.into(),
            work_email: work_email.into(),
            home_email: None,
            first_name: first.into(),
            last_name: last.into(),
            preferred_name: None,
            supervisor: None,
        }
    }
}

#[derive(Debug, Clone)]
struct Employee {
    new: NewEmployee,
    /// `statusCode` (company-defined; `A`, `L`, `T` by default).
    status_code: String,
    /// `statusTypeCode`: `A`, `L` or `T`.
    status_type: String,
    effective: NaiveDate,
    change_reason: Option<String>,
    hired: NaiveDate,
    rehired: Option<NaiveDate>,
}

#[derive(Debug, Default)]
struct State {
    employees: BTreeMap<String, Employee>,
    /// Bearer tokens issued: token → when it expires.
    tokens: HashMap<String, Instant>,
    token_lifetime: u64,
    token_requests: usize,
    layer: Layer,
}

#[derive(Debug)]
struct Shared {
    company: String,
    client_id: String,
    client_secret: String,
    state: Mutex<State>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        layer::lock(&self.state)
    }
}

/// The simulated Paylocity company. See the [module docs](self).
#[derive(Debug)]
pub struct PaylocityTenant {
    server: MockServer,
    shared: Arc<Shared>,
}

fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

/// Paylocity's error answer: an array of `{field, message, path, options}`.
fn errors(status: u16, field: &str, message: &str) -> Answer {
    let mut e = json!({"message": message});
    if !field.is_empty() {
        e["field"] = json!(field);
        e["path"] = json!(format!("$.{field}"));
    }
    Answer::new(status, Some(json!([e])))
}

fn token_error(error: &str) -> Answer {
    Answer::new(400, Some(json!({"error": error})))
}

impl PaylocityTenant {
    /// Every API route served, as `(METHOD, path template)` exactly as in Paylocity's
    /// description (relative to its server `https://api.paylocity.com/api`).
    pub const ROUTES: &'static [(&'static str, &'static str)] = &[
        ("GET", "/v2/companies/{companyId}/employees/"),
        ("GET", "/v2/companies/{companyId}/employees/{employeeId}"),
    ];

    /// The largest `pagesize` answered.
    pub const MAX_PAGE_SIZE: u32 = 5000;

    /// Starts a company with a random id, client id and secret.
    pub async fn start() -> Self {
        let hex = uuid::Uuid::new_v4().simple().to_string();
        let shared = Arc::new(Shared {
            company: format!("C{}", &hex[..6]),
            client_id: format!("sim-client-{}", &hex[6..14]),
            client_secret: format!("sim-secret-{}", &hex[14..]),
            state: Mutex::new(State {
                token_lifetime: 3600,
                ..State::default()
            }),
        });
        let server = MockServer::start().await;
        layer::serve(&server, Arc::clone(&shared)).await;
        Self { server, shared }
    }

    /// The server's root URL (`http://127.0.0.1:<port>`).
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// The API base (`<uri>/api`), as a source's base URL.
    pub fn api_base(&self) -> String {
        format!("{}/api", self.server.uri())
    }

    /// The token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}/IdentityServer/connect/token", self.server.uri())
    }

    /// The company id the client is set up for.
    pub fn company(&self) -> &str {
        &self.shared.company
    }

    /// The OAuth client id.
    pub fn client_id(&self) -> &str {
        &self.shared.client_id
    }

    /// The OAuth client secret.
    pub fn client_secret(&self) -> &str {
        &self.shared.client_secret
    }

    /// Hires an active employee (status `A`, effective and hired today). Replaces an employee
    /// with the same id.
    pub fn hire(&self, new: NewEmployee) {
        let mut s = self.shared.state();
        s.employees.insert(
            new.employee_id.clone(),
            Employee {
                new,
                status_code: "A".into(),
                status_type: "A".into(),
                effective: today(),
                change_reason: None,
                hired: today(),
                rehired: None,
            },
        );
    }

    /// Sets an employee's status as Web Pay records a change (`status_type` `A`, `L` or `T`;
    /// `status_code` the company's code for it), effective `on`; `false` when there is no such
    /// employee.
    pub fn set_status(
        &self,
        id: &str,
        status_type: &str,
        status_code: &str,
        on: NaiveDate,
    ) -> bool {
        let mut s = self.shared.state();
        let Some(e) = s.employees.get_mut(id) else {
            return false;
        };
        e.status_type = status_type.into();
        e.status_code = status_code.into();
        e.effective = on;
        e.change_reason = Some(
            if status_type == "T" {
                "Resigned"
            } else {
                "Status change"
            }
            .into(),
        );
        true
    }

    /// Terminates an employee effective `on` (`T`).
    pub fn terminate(&self, id: &str, on: NaiveDate) -> bool {
        self.set_status(id, "T", "T", on)
    }

    /// Rehires a terminated employee today (`A`, with a rehire date).
    pub fn rehire(&self, id: &str) -> bool {
        let ok = self.set_status(id, "A", "A", today());
        if let Some(e) = self.shared.state().employees.get_mut(id) {
            e.rehired = Some(today());
            e.change_reason = Some("Rehire".into());
        }
        ok
    }

    /// Deletes an employee's record (an employee entered in error), so the API no longer
    /// finds it.
    pub fn remove(&self, id: &str) -> bool {
        self.shared.state().employees.remove(id).is_some()
    }

    /// An employee's `statusCode`.
    pub fn status_of(&self, id: &str) -> Option<String> {
        self.shared
            .state()
            .employees
            .get(id)
            .map(|e| e.status_code.clone())
    }

    layer_controls! {
        fail_next;
        set_faults;
        set_rate_limit(60, "minute");
        requests;
        clear_requests;
        served;
        rate_limited_count;
    }

    /// Makes every issued token expire now (the API then answers 401 until a new one is fetched).
    pub fn expire_tokens(&self) {
        self.shared.state().tokens.clear();
    }

    /// Sets the lifetime (`expires_in`, seconds) of the tokens issued next.
    pub fn set_token_lifetime(&self, secs: u64) {
        self.shared.state().token_lifetime = secs;
    }

    /// Token requests answered (any outcome).
    pub fn token_requests(&self) -> usize {
        self.shared.state().token_requests
    }
}

fn info_json(e: &Employee) -> Value {
    json!({
        "employeeId": e.new.employee_id,
        "statusCode": e.status_code,
        "statusTypeCode": e.status_type,
    })
}

fn employee_json(company: &str, e: &Employee) -> Value {
    let n = &e.new;
    json!({
        "employeeId": n.employee_id,
        "companyName": format!("Company {company}"),
        "firstName": n.first_name,
        "lastName": n.last_name,
        "preferredName": n.preferred_name,
        "workAddress": {"emailAddress": n.work_email},
        "homeAddress": {"emailAddress": n.home_email},
        "departmentPosition": {
            "supervisorEmployeeId": n.supervisor,
            "supervisorCompanyNumber": n.supervisor.as_ref().map(|_| company),
        },
        "status": {
            "employeeStatus": e.status_type,
            "effectiveDate": format!("{}T00:00:00", e.effective),
            "changeReason": e.change_reason,
            "hireDate": format!("{}T00:00:00", e.hired),
            "reHireDate": e.rehired.map(|d| format!("{d}T00:00:00")),
        },
    })
}

impl Handler for Shared {
    fn handle(&self, request: &Request) -> ResponseTemplate {
        let mut s = self.state();
        s.layer.receive(layer::record(request));
        match s.layer.injected() {
            // An injected throttling answer waits 30 s.
            Some(Refusal::Throttled { .. } | Refusal::Failed(429)) => {
                return too_many(30).template();
            }
            Some(Refusal::Failed(status)) => {
                return errors(status, "", "An error has occurred.").template();
            }
            None => {}
        }
        let segs = layer::segments(request.url.path());
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        let answer = match segs.as_slice() {
            ["IdentityServer", "connect", "token"] => self.token(&mut s, request),
            ["api", "v2", ..] => self.api(&mut s, request, &segs[2..]),
            _ => errors(
                404,
                "",
                "No HTTP resource was found that matches the request URI.",
            ),
        };
        let delay = s.layer.faults.delay(false);
        answer.template().set_delay(delay)
    }
}

/// Paylocity's throttling answer: a 429 waiting `retry_after` seconds.
fn too_many(retry_after: u64) -> Answer {
    errors(429, "", "Too Many Requests").header("Retry-After", retry_after.to_string())
}

impl Shared {
    fn token(&self, s: &mut State, request: &Request) -> Answer {
        s.token_requests += 1;
        if request.method.as_str() != "POST" {
            return errors(
                405,
                "",
                "The requested resource does not support this method.",
            );
        }
        let form: BTreeMap<String, String> = url::form_urlencoded::parse(&request.body)
            .into_owned()
            .collect();
        let is_form = request
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return token_error("invalid_request");
        }
        if layer::authorization(request) != layer::basic(&self.client_id, &self.client_secret) {
            return token_error("invalid_client");
        }
        if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
            return token_error("unsupported_grant_type");
        }
        if form.get("scope").map(String::as_str) != Some("WebLinkAPI") {
            return token_error("invalid_scope");
        }
        let token = format!("plty-{}", uuid::Uuid::new_v4().simple());
        let lifetime = s.token_lifetime;
        s.tokens.insert(
            token.clone(),
            Instant::now() + Duration::from_secs(lifetime),
        );
        Answer::new(
            200,
            Some(json!({"access_token": token, "expires_in": lifetime, "token_type": "Bearer"})),
        )
    }

    fn api(&self, s: &mut State, request: &Request, segs: &[&str]) -> Answer {
        let authorised = layer::bearer(request)
            .and_then(|t| s.tokens.get(t))
            .is_some_and(|until| *until > Instant::now());
        if !authorised {
            return errors(401, "", "Authorization has been denied for this request.");
        }
        if let Some(Refusal::Throttled { retry_after, .. }) = s.layer.over_budget() {
            return too_many(retry_after);
        }
        let (company, rest) = match segs {
            ["companies", company, "employees", rest @ ..] => (*company, rest),
            _ => {
                return errors(
                    404,
                    "",
                    "No HTTP resource was found that matches the request URI.",
                );
            }
        };
        if request.method.as_str() != "GET" {
            return errors(
                405,
                "",
                "The requested resource does not support this method.",
            );
        }
        if company != self.company {
            return errors(403, "", "The client is not authorized for this company.");
        }
        match rest {
            [] | [""] => list(s, request),
            [id] => match s.employees.get(*id) {
                Some(e) => Answer::new(200, Some(json!([employee_json(&self.company, e)]))),
                None => errors(404, "employeeId", "The employee does not exist."),
            },
            _ => errors(
                404,
                "",
                "No HTTP resource was found that matches the request URI.",
            ),
        }
    }
}

fn list(s: &State, request: &Request) -> Answer {
    let mut size = 25usize;
    let mut number = 0usize;
    let mut total = true;
    for (k, v) in request.url.query_pairs() {
        match k.as_ref() {
            "pagesize" => match v.parse::<u32>() {
                Ok(n) if (1..=PaylocityTenant::MAX_PAGE_SIZE).contains(&n) => size = n as usize,
                _ => return errors(400, "pagesize", "The page size must be between 1 and 5000."),
            },
            "pagenumber" => match v.parse::<usize>() {
                Ok(n) => number = n,
                _ => return errors(400, "pagenumber", "The page number is not valid."),
            },
            "includetotalcount" => match v.as_ref() {
                "true" | "True" => total = true,
                "false" | "False" => total = false,
                _ => return errors(400, "includetotalcount", "The value is not valid."),
            },
            other => return errors(400, other, "The query parameter is not supported."),
        }
    }
    let page: Vec<Value> = s
        .employees
        .values()
        .skip(number.saturating_mul(size))
        .take(size)
        .map(info_json)
        .collect();
    let answer = Answer::new(200, Some(Value::Array(page)));
    if total {
        answer.header("X-Pcty-Total-Count", s.employees.len().to_string())
    } else {
        answer
    }
}
