//! A simulated Namely company: the profiles of Namely's API v1.
//!
//! The routes ([`NamelyTenant::ROUTES`]) and the profile's fields are those of Namely's public
//! API reference as Konfig's OpenAPI rendering has them, vendored reduced in
//! `specs/namely/namely.offboarding.yaml` (a test checks the routes and parameters).
//!
//! # Behaviour modelled
//! - `GET /api/v1/profiles`: active and inactive profiles (not `pending` ones, unless
//!   `filter[user_status]=pending`), `{"profiles": [...], "meta": {"count", "total_count",
//!   "status": 200}, "links": {}}`; `page` from 1, `per_page` 1..=50 (default 30), `sort` one
//!   of `first_name`, `last_name`, `created_at`, `updated_at`, each optionally prefixed by `-`
//!   (ties broken by id), `filter[user_status]` and `filter[email]`; past the last page an
//!   empty `profiles` with `count` 0. Any other parameter or value: 400.
//! - `GET /api/v1/profiles/{id}`: `{"profiles": [one]}`; 404 when unknown.
//! - A profile: `id`, `email`, `first_name`, `last_name`, `full_name`, `user_status`,
//!   `employee_id`, `departure_date` (`YYYY-MM-DD`, blank when none), `personal_email`,
//!   `reports_to` (`[{"id", "first_name", "last_name", "email"}]`, Namely's `no_guid` /
//!   `Nobody` / `None` placeholders when nobody), `created_at` and `updated_at` (epoch
//!   seconds; every change moves `updated_at`).
//! - `Authorization: Bearer <token>` required: 401 otherwise. Another method: 405.
//! - Throttling: a fixed window (default 600 requests a minute); over it 429 with
//!   `Retry-After`. Faults: the next N requests fail with a chosen status. Every request is
//!   recorded (credentials redacted) and counted.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::NaiveDate;
use serde_json::{Value, json};
use wiremock::{MockServer, Request, ResponseTemplate};

pub use super::layer::RecordedRequest;
use super::layer::{self, Handler, Layer, layer_controls, respond};

/// Namely's `user_status` values.
pub const STATUSES: [&str; 3] = ["active", "inactive", "pending"];

/// A profile to create with [`NamelyTenant::hire`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewProfile {
    /// Company email.
    pub email: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Employee id.
    pub employee_id: String,
    /// The person's own address.
    pub personal_email: String,
    /// The manager's profile id.
    pub reports_to: Option<String>,
}

#[derive(Debug, Clone)]
struct Profile {
    new: NewProfile,
    status: String,
    departure: Option<NaiveDate>,
    created_at: i64,
    updated_at: i64,
}

#[derive(Debug, Default)]
struct State {
    profiles: BTreeMap<String, Profile>,
    next: u64,
    layer: Layer,
}

#[derive(Debug)]
struct Shared {
    token: String,
    state: Mutex<State>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        layer::lock(&self.state)
    }
}

/// The simulated Namely company. See the [module docs](self).
#[derive(Debug)]
pub struct NamelyTenant {
    server: MockServer,
    shared: Arc<Shared>,
}

fn error(status: u16, message: &str) -> ResponseTemplate {
    respond(
        status,
        Some(json!({"message": message, "errors": [message]})),
    )
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl NamelyTenant {
    /// Every route served, `(METHOD, path template)` as in the vendored description (its
    /// server URL ends in `/api/v1`).
    pub const ROUTES: &'static [(&'static str, &'static str)] =
        &[("GET", "/profiles"), ("GET", "/profiles/{id}")];

    /// The query parameters `GET /profiles` takes.
    pub const LIST_PARAMETERS: [&'static str; 5] = [
        "page",
        "per_page",
        "sort",
        "filter[user_status]",
        "filter[email]",
    ];

    /// Starts an empty company with a random API token.
    pub async fn start() -> Self {
        let shared = Arc::new(Shared {
            token: format!("sim-namely-{}", uuid::Uuid::new_v4().simple()),
            state: Mutex::new(State {
                layer: Layer::with_budget(600, Duration::from_secs(60)),
                ..State::default()
            }),
        });
        let server = MockServer::start().await;
        layer::serve(&server, Arc::clone(&shared)).await;
        Self { server, shared }
    }

    /// The base URL (`http://127.0.0.1:<port>`; the API is under `/api/v1`).
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// The API token it accepts as `Bearer`.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// Creates an `active` profile; returns its id.
    pub fn hire(&self, new: NewProfile) -> String {
        let mut s = self.shared.state();
        s.next += 1;
        let n = s.next;
        let id = format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            n,
            n % 0xffff,
            n % 0xfff,
            n % 0xfff,
            n
        );
        let t = now();
        s.profiles.insert(
            id.clone(),
            Profile {
                new,
                status: "active".into(),
                departure: None,
                created_at: t,
                updated_at: t,
            },
        );
        id
    }

    /// Sets a profile's `user_status` (one of [`STATUSES`]) and departure date, moving
    /// `updated_at`; `false` when there is no such profile.
    ///
    /// # Panics
    /// When the status is not one of [`STATUSES`].
    pub fn set_status(&self, id: &str, status: &str, departure: Option<NaiveDate>) -> bool {
        assert!(
            STATUSES.contains(&status),
            "{status:?} is not a Namely user_status"
        );
        let mut s = self.shared.state();
        s.profiles
            .get_mut(id)
            .map(|p| {
                p.status = status.to_owned();
                p.departure = departure;
                p.updated_at = now();
            })
            .is_some()
    }

    /// Deletes a profile.
    pub fn remove(&self, id: &str) -> bool {
        self.shared.state().profiles.remove(id).is_some()
    }

    layer_controls! {
        set_per_minute;
        fail_next;
        requests;
        served;
    }
}

fn profile_json(s: &State, id: &str, p: &Profile) -> Value {
    let manager = p
        .new
        .reports_to
        .as_ref()
        .and_then(|m| s.profiles.get(m).map(|mp| (m, mp)));
    let reports_to = match manager {
        Some((mid, m)) => json!([{
            "id": mid, "first_name": m.new.first_name, "last_name": m.new.last_name,
            "email": m.new.email,
        }]),
        None => {
            json!([{"id": "no_guid", "first_name": "Nobody", "last_name": "Nobody", "email": "None"}])
        }
    };
    json!({
        "id": id,
        "email": p.new.email,
        "first_name": p.new.first_name,
        "last_name": p.new.last_name,
        "full_name": format!("{} {}", p.new.first_name, p.new.last_name),
        "user_status": p.status,
        "employee_id": p.new.employee_id,
        "personal_email": p.new.personal_email,
        "departure_date": p.departure.map(|d| d.to_string()).unwrap_or_default(),
        "reports_to": reports_to,
        "created_at": p.created_at,
        "updated_at": p.updated_at,
    })
}

/// The fields `sort` takes (each optionally prefixed by `-`).
const SORTS: [&str; 4] = ["first_name", "last_name", "created_at", "updated_at"];

/// The sort key of a profile for one of [`SORTS`].
fn sort_key(field: &str, p: &Profile) -> (String, i64) {
    match field {
        "first_name" => (p.new.first_name.to_lowercase(), 0),
        "last_name" => (p.new.last_name.to_lowercase(), 0),
        "updated_at" => (String::new(), p.updated_at),
        _ => (String::new(), p.created_at),
    }
}

impl Shared {
    fn list(&self, s: &State, request: &Request) -> ResponseTemplate {
        let (mut page, mut per_page) = (1usize, 30usize);
        let (mut sort, mut status, mut email) = (None, None, None);
        for (k, v) in request.url.query_pairs() {
            let n: Option<usize> = v.parse().ok();
            match (k.as_ref(), n) {
                ("page", Some(n)) if n >= 1 => page = n,
                ("per_page", Some(n)) if (1..=50).contains(&n) => per_page = n,
                ("sort", _) => sort = Some(v.into_owned()),
                ("filter[user_status]", _) if STATUSES.contains(&v.as_ref()) => {
                    status = Some(v.into_owned());
                }
                ("filter[email]", _) => email = Some(v.into_owned()),
                (other, _) => return error(400, &format!("invalid parameter {other}={v}")),
            }
        }
        let mut selected: Vec<(&String, &Profile)> = s
            .profiles
            .iter()
            .filter(|(_, p)| match &status {
                Some(st) => &p.status == st,
                None => p.status != "pending",
            })
            .filter(|(_, p)| {
                email
                    .as_ref()
                    .is_none_or(|e| p.new.email.eq_ignore_ascii_case(e))
            })
            .collect();
        if let Some(sort) = &sort {
            let (desc, field) = match sort.strip_prefix('-') {
                Some(f) => (true, f),
                None => (false, sort.as_str()),
            };
            if !SORTS.contains(&field) {
                return error(400, &format!("invalid sort {sort}"));
            }
            // Ids grow with creation, and the map keeps them in order: ascending creation
            // (ties by id) is the map's own order.
            if field != "created_at" || desc {
                selected.sort_by(|a, b| {
                    let order = sort_key(field, a.1).cmp(&sort_key(field, b.1));
                    let order = if desc { order.reverse() } else { order };
                    order.then_with(|| a.0.cmp(b.0))
                });
            }
        }
        let total = selected.len();
        let profiles: Vec<Value> = selected
            .iter()
            .skip((page - 1) * per_page)
            .take(per_page)
            .map(|(id, p)| profile_json(s, id, p))
            .collect();
        respond(
            200,
            Some(json!({
                "profiles": profiles,
                "meta": {"count": profiles.len(), "total_count": total, "status": 200},
                "links": {},
            })),
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
        if layer::bearer(request) != Some(self.token.as_str()) {
            return error(401, "Unauthorized");
        }
        let segments = layer::segments(request.url.path());
        let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
        let get = request.method.as_str() == "GET";
        match segs.as_slice() {
            ["api", "v1", "profiles", ..] if !get && segs.len() <= 4 => {
                error(405, "Method not allowed")
            }
            ["api", "v1", "profiles"] => self.list(&s, request),
            ["api", "v1", "profiles", id] => {
                if request.url.query().is_some_and(|q| !q.is_empty()) {
                    return error(400, "invalid parameter");
                }
                match s.profiles.get(*id) {
                    Some(p) => respond(200, Some(json!({"profiles": [profile_json(&s, id, p)]}))),
                    None => error(404, "Not Found"),
                }
            }
            _ => error(404, "Not Found"),
        }
    }
}
