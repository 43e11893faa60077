//! A simulated JumpCloud organisation: the V1 API's system users on loopback, stateful,
//! throttled, with injected failures and a recording of every request.
//!
//! Built from JumpCloud's own V1 description (Swagger 2.0, as JumpCloud publishes it in
//! `TheJumpCloud/jcapi-powershell`), vendored reduced in `specs/jumpcloud/`: it serves exactly
//! [`JumpCloudTenant::ROUTES`] and accepts exactly the query parameters the description gives
//! them ([`JumpCloudTenant::LIST_PARAMS`]); tests check both against the description.
//!
//! # Behaviour modelled
//! - Authentication: the organisation's API key in `x-api-key` (JumpCloud's only scheme for
//!   an administrator's key); a missing or wrong key is a 401 `{"message": "Unauthorized"}`.
//! - `GET /api/systemusers`: `{"totalCount", "results"}`, paged by `limit` (1 to 100: JumpCloud
//!   caps it at 100; default 10) and `skip` (≥ 0), ordered by `sort` (space-separated fields
//!   of [`JumpCloudTenant::SORTABLE`], `-` for descending; ties and the default by `_id`, as
//!   JumpCloud's API best practices recommend for paging). `filter` (repeatable) takes
//!   `field:$eq:value` or `field:$ne:value` on [`JumpCloudTenant::FILTERABLE`]; `fields`
//!   projects each record to the named fields (and `_id`). Anything else, a malformed value,
//!   and `search` (not simulated) are a 400 `{"message": …}`, stricter than JumpCloud, which
//!   ignores unknown parameters.
//! - `GET /api/systemusers/{id}`: the user; a 404 `{"message": "Not Found"}` for an id no user
//!   has, a 400 for one that is not a 24-digit hex object id.
//! - Users carry `_id` (24 hex digits, ascending in creation order), `email`, `username`,
//!   `firstname`, `lastname`, `displayname`, `employeeIdentifier`, `alternateEmail`,
//!   `manager` (another user's `_id`), `state` (`STAGED`, `ACTIVATED`, `SUSPENDED`),
//!   `suspended`, `activated`, `account_locked` and `created`. JumpCloud records no
//!   termination date and no modification time: a source cannot ask for what changed.
//! - Other paths are a 404, other methods on the two routes a 405.
//! - Throttling: with [`JumpCloudTenant::set_rate_limit`], requests over the per-minute budget
//!   are a 429 with `Retry-After` (seconds). Faults ([`Faults`]): a share of 500s and 429s;
//!   [`JumpCloudTenant::fail_next`] makes the next requests fail with a chosen status.
//! - Every request is recorded ([`JumpCloudTenant::requests`]) with the API key hidden.
//!
//! # Example
//! ```
//! use offboard_testkit::sim::jumpcloud::{JumpCloudTenant, NewSystemUser};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let jc = JumpCloudTenant::start().await;
//! let id = jc.add_user(NewSystemUser::active("jane", "jane@example.com"));
//! assert_eq!(jc.user(&id).unwrap()["state"], "ACTIVATED");
//! # }
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Map, Value, json};
use wiremock::{MockServer, Request, ResponseTemplate};

use super::layer::{self, Answer, Handler, Layer, Refusal, layer_controls};
pub use super::layer::{Faults, RecordedRequest};

/// The header JumpCloud reads the API key from.
pub const API_KEY_HEADER: &str = "x-api-key";

/// A system user to create with [`JumpCloudTenant::add_user`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSystemUser {
    /// `username`.
    pub username: String,
    /// `email`.
    pub email: String,
    /// `firstname`.
    pub firstname: String,
    /// `lastname`.
    pub lastname: String,
    /// `displayname` (empty: none).
    pub displayname: String,
    /// `employeeIdentifier`.
    pub employee_identifier: Option<String>,
    /// `alternateEmail`.
    pub alternate_email: Option<String>,
    /// `manager`: the manager's `_id`.
    pub manager: Option<String>,
    /// `state`: `STAGED`, `ACTIVATED` or `SUSPENDED`.
    pub state: String,
}

impl NewSystemUser {
    /// An `ACTIVATED` user with a username and an email, nothing else.
    pub fn active(username: &str, email: &str) -> Self {
        Self {
            username: username.to_owned(),
            email: email.to_owned(),
            firstname: String::new(),
            lastname: String::new(),
            displayname: String::new(),
            employee_identifier: None,
            alternate_email: None,
            manager: None,
            state: "ACTIVATED".into(),
        }
    }
}

#[derive(Debug, Clone)]
struct SystemUser {
    id: String,
    new: NewSystemUser,
    suspended: bool,
    created: String,
}

impl SystemUser {
    fn json(&self) -> Value {
        let u = &self.new;
        json!({
            "_id": self.id,
            "username": u.username,
            "email": u.email,
            "firstname": u.firstname,
            "lastname": u.lastname,
            "displayname": u.displayname,
            "employeeIdentifier": u.employee_identifier,
            "alternateEmail": u.alternate_email,
            "manager": u.manager,
            "state": u.state,
            "suspended": self.suspended,
            "activated": u.state != "STAGED",
            "account_locked": false,
            "created": self.created,
            "attributes": [],
        })
    }

    /// The value `filter` and `sort` compare for `field` (one of the filterable or sortable).
    fn field(&self, field: &str) -> String {
        let u = &self.new;
        match field {
            "_id" => self.id.clone(),
            "email" => u.email.clone(),
            "username" => u.username.clone(),
            "firstname" => u.firstname.clone(),
            "lastname" => u.lastname.clone(),
            "employeeIdentifier" => u.employee_identifier.clone().unwrap_or_default(),
            "state" => u.state.clone(),
            "suspended" => self.suspended.to_string(),
            _ => String::new(),
        }
    }
}

#[derive(Debug)]
struct State {
    users: BTreeMap<String, SystemUser>,
    next: u64,
    layer: Layer,
}

#[derive(Debug)]
struct Shared {
    key: String,
    state: Mutex<State>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        layer::lock(&self.state)
    }
}

/// The simulated JumpCloud organisation. See the [module docs](self).
#[derive(Debug)]
pub struct JumpCloudTenant {
    server: MockServer,
    shared: Arc<Shared>,
}

fn message(status: u16, text: &str) -> Answer {
    Answer::new(status, Some(json!({ "message": text })))
}

impl JumpCloudTenant {
    /// Every route served, as `(METHOD, path)` with JumpCloud's `basePath` (`/api`) in front
    /// of the description's path.
    pub const ROUTES: &'static [(&'static str, &'static str)] = &[
        ("GET", "/api/systemusers"),
        ("GET", "/api/systemusers/{id}"),
    ];

    /// The query parameters `GET /api/systemusers` accepts (each one of the description's).
    pub const LIST_PARAMS: &'static [&'static str] =
        &["limit", "skip", "sort", "fields", "filter", "search"];

    /// The fields `filter` may name.
    pub const FILTERABLE: &'static [&'static str] = &[
        "_id",
        "email",
        "username",
        "employeeIdentifier",
        "state",
        "suspended",
    ];

    /// The fields `sort` may name.
    pub const SORTABLE: &'static [&'static str] =
        &["_id", "email", "username", "firstname", "lastname"];

    /// The states JumpCloud gives a system user.
    pub const STATES: &'static [&'static str] = &["STAGED", "ACTIVATED", "SUSPENDED"];

    /// Starts an empty organisation with a fresh API key.
    pub async fn start() -> Self {
        let server = MockServer::start().await;
        let shared = Arc::new(Shared {
            key: format!("jc-sim-{}", uuid::Uuid::new_v4().simple()),
            state: Mutex::new(State {
                users: BTreeMap::new(),
                next: 0,
                layer: Layer::default(),
            }),
        });
        layer::serve(&server, Arc::new(Route(Arc::clone(&shared)))).await;
        Self { server, shared }
    }

    /// The base URL (`http://127.0.0.1:port`; the API is under `/api`).
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// The organisation's API key.
    pub fn api_key(&self) -> &str {
        &self.shared.key
    }

    /// Creates a user; returns its `_id`.
    ///
    /// # Panics
    /// When the state is not one of [`JumpCloudTenant::STATES`].
    pub fn add_user(&self, user: NewSystemUser) -> String {
        assert!(
            Self::STATES.contains(&user.state.as_str()),
            "{}",
            user.state
        );
        let mut s = self.shared.state();
        s.next += 1;
        // A Mongo object id: 4 bytes of time, then a counter, so ids ascend as created.
        let id = format!("{:08x}{:016x}", 0x6500_0000u32, s.next);
        let user = SystemUser {
            id: id.clone(),
            suspended: user.state == "SUSPENDED",
            new: user,
            created: chrono::Utc::now()
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string(),
        };
        s.users.insert(id.clone(), user);
        id
    }

    /// Sets a user's `state` (and `suspended` with it, as the console does); `false` when no
    /// such user.
    ///
    /// # Panics
    /// When the state is not one of [`JumpCloudTenant::STATES`].
    pub fn set_state(&self, id: &str, state: &str) -> bool {
        assert!(Self::STATES.contains(&state), "{state}");
        let mut s = self.shared.state();
        let Some(u) = s.users.get_mut(id) else {
            return false;
        };
        u.new.state = state.to_owned();
        u.suspended = state == "SUSPENDED";
        true
    }

    /// Deletes a user; `false` when no such user.
    pub fn remove(&self, id: &str) -> bool {
        self.shared.state().users.remove(id).is_some()
    }

    /// A user as `GET /api/systemusers/{id}` returns it.
    pub fn user(&self, id: &str) -> Option<Value> {
        self.shared.state().users.get(id).map(SystemUser::json)
    }

    layer_controls! {
        fail_next;
        set_rate_limit(60, "minute");
        set_faults;
        requests;
        served;
    }
}

struct Route(Arc<Shared>);

impl Handler for Route {
    fn handle(&self, request: &Request) -> ResponseTemplate {
        let mut s = self.0.state();
        let mut recorded = layer::record(request);
        for (k, v) in &mut recorded.headers {
            if k.eq_ignore_ascii_case(API_KEY_HEADER) {
                *v = "[REDACTED]".into();
            }
        }
        s.layer.receive(recorded);
        let key = request
            .headers
            .get(API_KEY_HEADER)
            .and_then(|v| v.to_str().ok());
        if key != Some(self.0.key.as_str()) {
            return message(401, "Unauthorized").template();
        }
        match s.layer.admit() {
            Some(Refusal::Throttled { retry_after, .. }) => {
                return message(429, "Too Many Requests")
                    .header("Retry-After", retry_after.to_string())
                    .template();
            }
            Some(Refusal::Failed(status)) => {
                return message(status, "Internal Server Error").template();
            }
            None => {}
        }
        let segs = layer::segments(request.url.path());
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        let method = request.method.as_str();
        let query: Vec<(String, String)> = request.url.query_pairs().into_owned().collect();
        match (method, segs.as_slice()) {
            ("GET", ["api", "systemusers"]) => list(&s, &query),
            ("GET", ["api", "systemusers", id]) => get(&s, id),
            (_, ["api", "systemusers"] | ["api", "systemusers", _]) => {
                message(405, "Method Not Allowed")
            }
            _ => message(404, "Not Found"),
        }
        .template()
    }
}

fn is_object_id(id: &str) -> bool {
    id.len() == 24 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

fn get(s: &State, id: &str) -> Answer {
    if !is_object_id(id) {
        return message(400, &format!("invalid object id: {id:?}"));
    }
    match s.users.get(id) {
        Some(u) => Answer::new(200, Some(u.json())),
        None => message(404, "Not Found"),
    }
}

/// One `filter` term: `field:$eq:value` or `field:$ne:value`.
struct Filter {
    field: String,
    equal: bool,
    value: String,
}

fn parse_filter(term: &str) -> Result<Filter, String> {
    let mut parts = term.splitn(3, ':');
    let (Some(field), Some(op), Some(value)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("filter {term:?} is not field:$op:value"));
    };
    if !JumpCloudTenant::FILTERABLE.contains(&field) {
        return Err(format!("filter on {field:?} is not supported"));
    }
    let equal = match op {
        "$eq" => true,
        "$ne" => false,
        _ => return Err(format!("filter operator {op:?} is not supported")),
    };
    Ok(Filter {
        field: field.to_owned(),
        equal,
        value: value.to_owned(),
    })
}

/// `sort`: fields with an optional `-`, then `_id` to break ties.
fn parse_sort(sort: &str) -> Result<Vec<(String, bool)>, String> {
    let mut keys = Vec::new();
    for term in sort.split(' ').filter(|t| !t.is_empty()) {
        let (field, descending) = match term.strip_prefix('-') {
            Some(f) => (f, true),
            None => (term, false),
        };
        if !JumpCloudTenant::SORTABLE.contains(&field) {
            return Err(format!("sort on {field:?} is not supported"));
        }
        keys.push((field.to_owned(), descending));
    }
    Ok(keys)
}

struct ListQuery {
    limit: usize,
    skip: usize,
    sort: Vec<(String, bool)>,
    filters: Vec<Filter>,
    fields: Option<Vec<String>>,
}

fn parse_list(query: &[(String, String)]) -> Result<ListQuery, String> {
    let mut q = ListQuery {
        limit: 10,
        skip: 0,
        sort: Vec::new(),
        filters: Vec::new(),
        fields: None,
    };
    let mut seen = Vec::new();
    for (k, v) in query {
        if !JumpCloudTenant::LIST_PARAMS.contains(&k.as_str()) {
            return Err(format!("unknown parameter {k:?}"));
        }
        if k != "filter" && seen.contains(k) {
            return Err(format!("{k} given twice"));
        }
        seen.push(k.clone());
        match k.as_str() {
            "limit" => match v.parse::<usize>() {
                Ok(n) if (1..=100).contains(&n) => q.limit = n,
                _ => return Err(format!("limit must be between 1 and 100, not {v:?}")),
            },
            "skip" => {
                q.skip = v
                    .parse()
                    .map_err(|_| format!("skip must be a non-negative integer, not {v:?}"))?
            }
            "sort" => q.sort = parse_sort(v)?,
            "filter" => q.filters.push(parse_filter(v)?),
            "fields" => {
                q.fields = Some(
                    v.split(' ')
                        .filter(|f| !f.is_empty())
                        .map(str::to_owned)
                        .collect(),
                )
            }
            _ => return Err("search is not simulated".into()),
        }
    }
    Ok(q)
}

fn list(s: &State, query: &[(String, String)]) -> Answer {
    let q = match parse_list(query) {
        Ok(q) => q,
        Err(why) => return message(400, &why),
    };
    let matches = |u: &&SystemUser| {
        q.filters
            .iter()
            .all(|f| (u.field(&f.field) == f.value) == f.equal)
    };
    // By `_id` (the map's order) unless sorted otherwise: no copy of the whole organisation.
    let (total, page): (usize, Vec<&SystemUser>) =
        if q.sort.iter().all(|(f, d)| f == "_id" && !d) && q.filters.is_empty() {
            let users = s.users.values();
            (users.len(), users.skip(q.skip).take(q.limit).collect())
        } else {
            let mut all: Vec<&SystemUser> = s.users.values().filter(matches).collect();
            all.sort_by(|a, b| {
                q.sort
                    .iter()
                    .map(|(f, desc)| {
                        let o = a.field(f).cmp(&b.field(f));
                        if *desc { o.reverse() } else { o }
                    })
                    .find(|o| o.is_ne())
                    .unwrap_or_else(|| a.id.cmp(&b.id))
            });
            (
                all.len(),
                all.into_iter().skip(q.skip).take(q.limit).collect(),
            )
        };
    let results: Vec<Value> = page
        .into_iter()
        .map(|u| project(u.json(), q.fields.as_deref()))
        .collect();
    Answer::new(
        200,
        Some(json!({ "totalCount": total, "results": results })),
    )
}

fn project(user: Value, fields: Option<&[String]>) -> Value {
    let (Some(fields), Value::Object(all)) = (fields, &user) else {
        return user;
    };
    let kept: Map<String, Value> = all
        .iter()
        .filter(|(k, _)| *k == "_id" || fields.iter().any(|f| f == *k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Value::Object(kept)
}
