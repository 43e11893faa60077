//! A simulated Workday tenant: one custom report served by Reports as a Service (RaaS) in
//! JSON, and the tenant's OAuth token endpoint for an API client's refresh token.
//!
//! Workday publishes no machine-readable description of RaaS (each report's columns are the
//! customer's); the routes ([`WorkdayTenant::ROUTES`]) are those of Workday's public
//! documentation of Reports as a Service and of registering an API client for integrations,
//! written down in `specs/workday/workday-raas.handwritten.yaml` (a test checks the routes
//! against it).
//!
//! # Behaviour modelled
//! - `POST /ccx/oauth2/{tenant}/token`: `grant_type=refresh_token` with the refresh token
//!   issued to the client, the client authenticated by HTTP basic: `200 {"access_token",
//!   "token_type": "Bearer", "refresh_token"}` (no `expires_in`: the client learns of expiry
//!   by a 401). A wrong client is a 401 `invalid_client`, a wrong refresh token or grant a
//!   400 `invalid_grant`.
//! - `GET /ccx/service/customreport2/{tenant}/{owner}/{report}?format=json`: every worker,
//!   `{"Report_Entry": [{…}]}`, the columns of [`REPORT_COLUMNS`] (empty fields left out, as
//!   RaaS does; booleans `1`/`0`; dates `YYYY-MM-DD`). Without a live bearer token: 401. A
//!   missing `format`, another format than `json`, or any other parameter (RaaS takes only
//!   the report's prompts, and this report has none): 400. Another tenant, owner or report:
//!   404. Another method: 405.
//! - Throttling: a fixed window of requests (default 600 a minute); over it, 429 with
//!   `Retry-After` (seconds).
//! - Faults: the next N requests fail with a chosen status (`fail_next`), a JSON error body.
//!   Every request is recorded (credentials redacted) and counted.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::NaiveDate;
use serde_json::{Map, Value, json};
use wiremock::{MockServer, Request, ResponseTemplate};

pub use super::layer::RecordedRequest;
use super::layer::{self, Handler, Layer, layer_controls, respond};

/// The report's columns (their XML aliases), in order.
pub const REPORT_COLUMNS: [&str; 9] = [
    "Worker_ID",
    "Employee_ID",
    "Worker",
    "Work_Email",
    "User_Name",
    "Terminated",
    "Termination_Date",
    "Manager_Worker_ID",
    "Manager_Email",
];

/// A worker to hire with [`WorkdayTenant::hire`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewWorker {
    /// Employee id.
    pub employee_id: String,
    /// Name as displayed (`First Last`).
    pub name: String,
    /// Primary work email.
    pub email: String,
    /// The Workday account's user name.
    pub user_name: String,
    /// The manager's Workday ID.
    pub manager: Option<String>,
}

#[derive(Debug, Clone)]
struct Worker {
    new: NewWorker,
    terminated: bool,
    termination_date: Option<NaiveDate>,
}

#[derive(Debug, Default)]
struct State {
    workers: BTreeMap<String, Worker>,
    next: u64,
    tokens: Vec<String>,
    token_requests: usize,
    layer: Layer,
}

#[derive(Debug)]
struct Shared {
    tenant: String,
    owner: String,
    report: String,
    client_id: String,
    client_secret: String,
    refresh_token: String,
    state: Mutex<State>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        layer::lock(&self.state)
    }
}

/// The simulated Workday tenant. See the [module docs](self).
#[derive(Debug)]
pub struct WorkdayTenant {
    server: MockServer,
    shared: Arc<Shared>,
}

fn error(status: u16, message: &str) -> ResponseTemplate {
    respond(status, Some(json!({ "error": message })))
}

impl WorkdayTenant {
    /// Every route served, as `(METHOD, path template)` as in the vendored description.
    pub const ROUTES: &'static [(&'static str, &'static str)] = &[
        ("POST", "/ccx/oauth2/{tenant}/token"),
        (
            "GET",
            "/ccx/service/customreport2/{tenant}/{owner}/{report}",
        ),
    ];

    /// Starts tenant `acme` with report `ISU_Offboard/Workers_for_Offboard` and a random API
    /// client (id, secret, refresh token).
    pub async fn start() -> Self {
        let shared = Arc::new(Shared {
            tenant: "acme".into(),
            owner: "ISU_Offboard".into(),
            report: "Workers_for_Offboard".into(),
            client_id: format!("sim-client-{}", uuid::Uuid::new_v4().simple()),
            client_secret: format!("sim-secret-{}", uuid::Uuid::new_v4().simple()),
            refresh_token: format!("sim-refresh-{}", uuid::Uuid::new_v4().simple()),
            state: Mutex::new(State {
                layer: Layer::with_budget(600, Duration::from_secs(60)),
                ..State::default()
            }),
        });
        let server = MockServer::start().await;
        layer::serve(&server, Arc::clone(&shared)).await;
        Self { server, shared }
    }

    /// The base URL (`http://127.0.0.1:<port>`).
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// The tenant name.
    pub fn tenant(&self) -> &str {
        &self.shared.tenant
    }

    /// The report's owner and name.
    pub fn report(&self) -> (&str, &str) {
        (&self.shared.owner, &self.shared.report)
    }

    /// The API client's id, secret and refresh token.
    pub fn client(&self) -> (&str, &str, &str) {
        (
            &self.shared.client_id,
            &self.shared.client_secret,
            &self.shared.refresh_token,
        )
    }

    /// Hires an active worker; returns their Workday ID.
    pub fn hire(&self, new: NewWorker) -> String {
        let mut s = self.shared.state();
        s.next += 1;
        let id = format!("{:032x}", 0x3aa5_0000_0000_u64 + s.next);
        s.workers.insert(
            id.clone(),
            Worker {
                new,
                terminated: false,
                termination_date: None,
            },
        );
        id
    }

    /// Terminates a worker effective `on`; `false` when there is no such worker.
    pub fn terminate(&self, id: &str, on: NaiveDate) -> bool {
        let mut s = self.shared.state();
        s.workers
            .get_mut(id)
            .map(|w| {
                w.terminated = true;
                w.termination_date = Some(on);
            })
            .is_some()
    }

    /// Rehires a terminated worker (same Workday ID, no termination date).
    pub fn rehire(&self, id: &str) -> bool {
        let mut s = self.shared.state();
        s.workers
            .get_mut(id)
            .map(|w| {
                w.terminated = false;
                w.termination_date = None;
            })
            .is_some()
    }

    /// Takes a worker off the report (the report's filter no longer selects them).
    pub fn remove(&self, id: &str) -> bool {
        self.shared.state().workers.remove(id).is_some()
    }

    /// Ends every access token issued so far (they expired): the next API request with one
    /// is a 401.
    pub fn expire_tokens(&self) {
        self.shared.state().tokens.clear();
    }

    /// Token requests answered 200.
    pub fn tokens_issued(&self) -> usize {
        self.shared.state().token_requests
    }

    layer_controls! {
        set_per_minute;
        fail_next;
        requests;
        served;
    }
}

fn form(request: &Request) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect()
}

impl Shared {
    fn token(&self, s: &mut State, request: &Request) -> ResponseTemplate {
        if layer::authorization(request) != layer::basic(&self.client_id, &self.client_secret) {
            return respond(
                401,
                Some(
                    json!({"error": "invalid_client", "error_description": "Invalid client credentials"}),
                ),
            );
        }
        let f = form(request);
        if f.get("grant_type").map(String::as_str) != Some("refresh_token")
            || f.get("refresh_token") != Some(&self.refresh_token)
        {
            return respond(
                400,
                Some(
                    json!({"error": "invalid_grant", "error_description": "Invalid refresh token"}),
                ),
            );
        }
        let access = format!("sim-access-{}", uuid::Uuid::new_v4().simple());
        s.tokens.push(access.clone());
        s.token_requests += 1;
        respond(
            200,
            Some(json!({
                "access_token": access,
                "token_type": "Bearer",
                "refresh_token": self.refresh_token,
            })),
        )
    }

    fn report(&self, s: &State, request: &Request) -> ResponseTemplate {
        let mut format = None;
        for (k, v) in request.url.query_pairs() {
            match k.as_ref() {
                "format" => format = Some(v.into_owned()),
                other => return error(400, &format!("Invalid request parameter: {other}")),
            }
        }
        if format.as_deref() != Some("json") {
            return error(400, "this simulator serves the report as format=json only");
        }
        let entries: Vec<Value> = s
            .workers
            .iter()
            .map(|(id, w)| {
                let manager = w
                    .new
                    .manager
                    .as_ref()
                    .and_then(|m| s.workers.get(m).map(|mw| (m, mw)));
                let mut e = Map::new();
                let mut put = |k: &str, v: String| {
                    if !v.is_empty() {
                        e.insert(k.to_owned(), Value::String(v));
                    }
                };
                put("Worker_ID", id.clone());
                put("Employee_ID", w.new.employee_id.clone());
                put("Worker", w.new.name.clone());
                put("Work_Email", w.new.email.clone());
                put("User_Name", w.new.user_name.clone());
                put("Terminated", if w.terminated { "1" } else { "0" }.into());
                put(
                    "Termination_Date",
                    w.termination_date
                        .map(|d| d.to_string())
                        .unwrap_or_default(),
                );
                if let Some((mid, mw)) = manager {
                    put("Manager_Worker_ID", mid.clone());
                    put("Manager_Email", mw.new.email.clone());
                }
                Value::Object(e)
            })
            .collect();
        respond(200, Some(json!({ "Report_Entry": entries })))
    }
}

impl Handler for Shared {
    fn handle(&self, request: &Request) -> ResponseTemplate {
        let mut s = self.state();
        s.layer.receive(layer::record(request));
        if let Some(refusal) = s.layer.admit() {
            return refusal.answer(error);
        }
        let method = request.method.as_str();
        let segments = layer::segments(request.url.path());
        let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
        match segs.as_slice() {
            ["ccx", "oauth2", tenant, "token"] if *tenant == self.tenant => {
                if method != "POST" {
                    return error(405, "Method not allowed");
                }
                self.token(&mut s, request)
            }
            ["ccx", "service", "customreport2", tenant, owner, report] => {
                if method != "GET" {
                    return error(405, "Method not allowed");
                }
                let live = layer::bearer(request).is_some_and(|t| s.tokens.iter().any(|k| k == t));
                if !live {
                    return error(401, "Invalid access token");
                }
                if (*tenant, *owner, *report)
                    != (
                        self.tenant.as_str(),
                        self.owner.as_str(),
                        self.report.as_str(),
                    )
                {
                    return error(404, "Report not found");
                }
                self.report(&s, request)
            }
            _ => error(404, "Resource not found"),
        }
    }
}
