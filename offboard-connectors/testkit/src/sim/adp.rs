//! A simulated ADP Workforce Now tenant: the Worker API v2 and ADP's OAuth token endpoint.
//!
//! The routes ([`AdpTenant::ROUTES`]) are those of ADP's public API Explorer Postman
//! collection, vendored reduced in `specs/adp/adp-wfn.offboarding.yaml` (a test checks them);
//! the worker's shape is that of ADP's Worker v2 API guide (`associateOID`, `workerID`,
//! `person.legalName`, `businessCommunication.emails`, `workerStatus.statusCode`,
//! `workerDates`, `workAssignments[].reportsTo`).
//!
//! # Behaviour modelled
//! - `POST /auth/oauth/v2/token`: `grant_type=client_credentials`, the client by HTTP basic
//!   (or `client_id`/`client_secret` in the form): `200 {"access_token", "token_type":
//!   "Bearer", "expires_in", "scope": "api"}`; a wrong client is a 401 `invalid_client`,
//!   another grant a 400 `unsupported_grant_type`. Tokens live `expires_in` (default 3600 s)
//!   or until [`AdpTenant::expire_tokens`].
//! - `GET /hr/v2/workers?$top=&$skip=`: workers in associateOID order, `{"workers": [...],
//!   "meta": {"totalNumber": n}}`; `$top` 1..=100 (default 100), `$skip` ≥ 0; past the last
//!   worker a `204 No Content`. Any other parameter, or a `$top`/`$skip` out of range or not a
//!   number: 400.
//! - `GET /hr/v2/workers/{aoid}`: `{"workers": [one]}`, 404 when unknown.
//! - Without a live bearer token: 401. Another method: 405. Errors carry ADP's
//!   `confirmMessage.processMessages[].userMessage.messageTxt` body.
//! - Throttling: a fixed window (default 600 requests a minute); over it 429 with
//!   `Retry-After`. Faults: the next N requests fail with a chosen status. Every request is
//!   recorded (credentials redacted) and counted.
//!
//! Not modelled: mutual TLS (ADP requires a client certificate in production; wiremock serves
//! plain HTTP).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use serde_json::{Value, json};
use wiremock::{MockServer, Request, ResponseTemplate};

pub use super::layer::RecordedRequest;
use super::layer::{self, Handler, Layer, layer_controls, respond};

/// ADP's worker status codes (`workerStatus.statusCode.codeValue`).
pub const STATUSES: [&str; 3] = ["Active", "Inactive", "Terminated"];

/// A worker to hire with [`AdpTenant::hire`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewWorker {
    /// `workerID.idValue`.
    pub employee_id: String,
    /// `person.legalName.givenName`.
    pub given_name: String,
    /// `person.legalName.familyName1`.
    pub family_name: String,
    /// `businessCommunication.emails[].emailUri`, the first the primary.
    pub emails: Vec<String>,
    /// The manager's associateOID (`workAssignments[0].reportsTo[0]`).
    pub manager: Option<String>,
}

#[derive(Debug, Clone)]
struct Worker {
    new: NewWorker,
    status: String,
    termination_date: Option<NaiveDate>,
}

#[derive(Debug, Default)]
struct State {
    workers: BTreeMap<String, Worker>,
    next: u64,
    tokens: Vec<(String, Instant)>,
    tokens_issued: usize,
    expires_in: u64,
    layer: Layer,
}

#[derive(Debug)]
struct Shared {
    client_id: String,
    client_secret: String,
    state: Mutex<State>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        layer::lock(&self.state)
    }
}

/// The simulated ADP Workforce Now tenant. See the [module docs](self).
#[derive(Debug)]
pub struct AdpTenant {
    server: MockServer,
    shared: Arc<Shared>,
}

/// ADP's error body.
fn error(status: u16, message: &str) -> ResponseTemplate {
    respond(
        status,
        Some(json!({"confirmMessage": {
            "confirmMessageID": {"idValue": uuid::Uuid::new_v4().simple().to_string()},
            "requestStatusCode": {"codeValue": "failed"},
            "processMessages": [{"userMessage": {"messageTxt": message}}],
        }})),
    )
}

impl AdpTenant {
    /// Every route served, `(METHOD, path template)` as in the vendored description.
    pub const ROUTES: &'static [(&'static str, &'static str)] = &[
        ("POST", "/auth/oauth/v2/token"),
        ("GET", "/hr/v2/workers"),
        ("GET", "/hr/v2/workers/{aoid}"),
    ];

    /// The largest `$top`.
    pub const MAX_TOP: usize = 100;

    /// Starts an empty tenant with a random client id and secret.
    pub async fn start() -> Self {
        let shared = Arc::new(Shared {
            client_id: format!("sim-adp-{}", uuid::Uuid::new_v4().simple()),
            client_secret: format!("sim-adp-secret-{}", uuid::Uuid::new_v4().simple()),
            state: Mutex::new(State {
                expires_in: 3600,
                layer: Layer::with_budget(600, Duration::from_secs(60)),
                ..State::default()
            }),
        });
        let server = MockServer::start().await;
        layer::serve(&server, Arc::clone(&shared)).await;
        Self { server, shared }
    }

    /// The base URL (`http://127.0.0.1:<port>`), for both the API and the token endpoint.
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// The client's id and secret.
    pub fn client(&self) -> (&str, &str) {
        (&self.shared.client_id, &self.shared.client_secret)
    }

    /// Hires an `Active` worker; returns their associateOID.
    pub fn hire(&self, new: NewWorker) -> String {
        let mut s = self.shared.state();
        s.next += 1;
        let id = format!("G3{:014X}", s.next);
        s.workers.insert(
            id.clone(),
            Worker {
                new,
                status: "Active".into(),
                termination_date: None,
            },
        );
        id
    }

    /// Sets a worker's status (one of [`STATUSES`]) and termination date; `false` when there
    /// is no such worker.
    ///
    /// # Panics
    /// When the status is not one of [`STATUSES`].
    pub fn set_status(&self, id: &str, status: &str, terminated_on: Option<NaiveDate>) -> bool {
        assert!(
            STATUSES.contains(&status),
            "{status:?} is not an ADP status"
        );
        let mut s = self.shared.state();
        s.workers
            .get_mut(id)
            .map(|w| {
                w.status = status.to_owned();
                w.termination_date = terminated_on;
            })
            .is_some()
    }

    /// Deletes a worker's record.
    pub fn remove(&self, id: &str) -> bool {
        self.shared.state().workers.remove(id).is_some()
    }

    /// Ends every access token issued so far.
    pub fn expire_tokens(&self) {
        self.shared.state().tokens.clear();
    }

    /// Tokens issued.
    pub fn tokens_issued(&self) -> usize {
        self.shared.state().tokens_issued
    }

    layer_controls! {
        set_per_minute;
        fail_next;
        requests;
        served;
    }
}

fn worker_json(id: &str, w: &Worker) -> Value {
    let emails: Vec<Value> = w
        .new
        .emails
        .iter()
        .map(|e| json!({"emailUri": e, "nameCode": {"codeValue": "Work E-mail"}}))
        .collect();
    let reports_to: Vec<Value> = w
        .new
        .manager
        .iter()
        .map(|m| json!({"associateOID": m, "positionID": format!("P-{m}")}))
        .collect();
    let end = w.termination_date.map(|d| d.to_string());
    let mut assignment = json!({
        "primaryIndicator": true,
        "assignmentStatus": {"statusCode": {"codeValue": if w.status == "Active" { "A" } else { "T" }}},
        "reportsTo": reports_to,
    });
    let mut dates = json!({"originalHireDate": "2020-01-06"});
    if let Some(end) = end {
        assignment["terminationDate"] = json!(end);
        dates["terminationDate"] = json!(end);
    }
    json!({
        "associateOID": id,
        "workerID": {"idValue": w.new.employee_id},
        "person": {"legalName": {
            "givenName": w.new.given_name,
            "familyName1": w.new.family_name,
            "formattedName": format!("{}, {}", w.new.family_name, w.new.given_name),
        }},
        "businessCommunication": {"emails": emails},
        "workerStatus": {"statusCode": {"codeValue": w.status}},
        "workerDates": dates,
        "workAssignments": [assignment],
    })
}

impl Shared {
    fn token(&self, s: &mut State, request: &Request) -> ResponseTemplate {
        let form: BTreeMap<String, String> = url::form_urlencoded::parse(&request.body)
            .into_owned()
            .collect();
        let basic =
            layer::authorization(request) == layer::basic(&self.client_id, &self.client_secret);
        let posted = form.get("client_id") == Some(&self.client_id)
            && form.get("client_secret") == Some(&self.client_secret);
        if !basic && !posted {
            return respond(
                401,
                Some(
                    json!({"error": "invalid_client", "error_description": "Invalid client credentials"}),
                ),
            );
        }
        if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
            return respond(400, Some(json!({"error": "unsupported_grant_type"})));
        }
        let token = format!("sim-adp-access-{}", uuid::Uuid::new_v4().simple());
        let until = Instant::now() + Duration::from_secs(s.expires_in);
        s.tokens.push((token.clone(), until));
        s.tokens_issued += 1;
        respond(
            200,
            Some(json!({
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": s.expires_in,
                "scope": "api",
            })),
        )
    }

    fn list(&self, s: &State, request: &Request) -> ResponseTemplate {
        let (mut top, mut skip) = (AdpTenant::MAX_TOP, 0usize);
        for (k, v) in request.url.query_pairs() {
            let n: Option<usize> = v.parse().ok();
            match (k.as_ref(), n) {
                ("$top", Some(n)) if (1..=AdpTenant::MAX_TOP).contains(&n) => top = n,
                ("$skip", Some(n)) => skip = n,
                (other, _) => {
                    return error(400, &format!("Invalid query parameter {other}={v}"));
                }
            }
        }
        let page: Vec<Value> = s
            .workers
            .iter()
            .skip(skip)
            .take(top)
            .map(|(id, w)| worker_json(id, w))
            .collect();
        if page.is_empty() {
            return ResponseTemplate::new(204);
        }
        respond(
            200,
            Some(json!({"workers": page, "meta": {"totalNumber": s.workers.len()}})),
        )
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
        if segs == ["auth", "oauth", "v2", "token"] {
            if method != "POST" {
                return error(405, "Method not allowed");
            }
            return self.token(&mut s, request);
        }
        let now = Instant::now();
        let live = layer::bearer(request)
            .is_some_and(|t| s.tokens.iter().any(|(k, until)| k == t && *until > now));
        if !live {
            return error(401, "Invalid or expired access token");
        }
        match segs.as_slice() {
            ["hr", "v2", "workers", rest @ ..] if method != "GET" && rest.len() <= 1 => {
                error(405, "Method not allowed")
            }
            ["hr", "v2", "workers"] => self.list(&s, request),
            ["hr", "v2", "workers", aoid] => {
                if request.url.query().is_some_and(|q| !q.is_empty()) {
                    return error(400, "Invalid query parameter");
                }
                match s.workers.get(*aoid) {
                    Some(w) => respond(200, Some(json!({"workers": [worker_json(aoid, w)]}))),
                    None => error(404, "Worker not found"),
                }
            }
            _ => error(404, "Resource not found"),
        }
    }
}
