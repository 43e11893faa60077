//! A simulated OneLogin account: the OAuth 2.0 token endpoint and the users API v2 on
//! loopback, stateful, throttled, with injected failures and a recording of every request.
//!
//! OneLogin publishes no machine-readable description of its API. This simulator is built
//! from its public reference (<https://developers.onelogin.com/api-docs/2/users/list-users>,
//! `…/get-user`, `…/oauth20-tokens/generate-tokens-2`, `…/getting-started/working-with-api-paging`)
//! and its official SDK's models, written down as the handwritten description
//! `specs/onelogin/onelogin-users-v2.handwritten.json`; tests check [`OneLoginTenant::ROUTES`]
//! and [`OneLoginTenant::LIST_PARAMS`] against it.
//!
//! # Behaviour modelled
//! - `POST /auth/oauth2/v2/token`: HTTP basic authentication with the API credential's client
//!   id and secret, `grant_type=client_credentials` in a JSON body (OneLogin's documented
//!   form) or a form body (RFC 6749's, which OAuth clients send); answers
//!   `{"access_token", "created_at", "expires_in": 36000, "token_type": "bearer", "account_id"}`.
//!   Wrong credentials: a 401 `{"status": {"error": true, "code": 401, "type": "Unauthorized",
//!   "message": "Authentication Failure"}}`; another grant: a 400.
//! - `/api/2/…` needs `Authorization: bearer <token>` of an unexpired, unrevoked token (the
//!   scheme in any case); else a 401 `{"statusCode": 401, "name": "UnauthorizedError", …}`.
//!   [`OneLoginTenant::set_token_lifetime`] and [`OneLoginTenant::revoke_tokens`] let tests
//!   expire them.
//! - `GET /api/2/users`: a JSON array, ascending by id, paged by `limit` (1 to 100; default 50)
//!   and `cursor`, the `After-Cursor` header of the previous page (present while more
//!   follow), with `Total-Count`, `Total-Pages`, `Current-Page` and `Page-Items`. A cursor is
//!   only good for the query it was made for (the same filters): another query, or a cursor
//!   this account never gave, is a 400. Filters: `updated_since` (users updated strictly
//!   after an ISO 8601 time), `email`, `username`, `user_ids`; `fields` projects each user
//!   (and `id`). Every other parameter of the description (`page`, `created_since`, …) is
//!   refused as not simulated, and anything unknown or malformed is a 400.
//! - `GET /api/2/users/{user_id}`: the user, a 404 for an id nobody has, a 400 for one that
//!   is not an integer.
//! - Users: `status` ([`OneLoginTenant::STATUSES`]), `state`, `email`, `username`,
//!   `firstname`, `lastname`, `userprincipalname`, `external_id`, `manager_user_id` (a
//!   number), `created_at`, `updated_at`. Every change made through the controls moves
//!   `updated_at` (strictly increasing, milliseconds), as OneLogin does.
//! - Throttling: [`OneLoginTenant::set_rate_limit`] budgets requests per hour (OneLogin's
//!   window); over it, a 429 with `X-RateLimit-Limit`, `X-RateLimit-Remaining: 0` and
//!   `X-RateLimit-Reset` (seconds until the window resets). Faults ([`Faults`]) and
//!   [`OneLoginTenant::fail_next`] as on every simulated tenant.
//! - Every request is recorded, the `Authorization` value hidden.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use wiremock::{MockServer, Request, ResponseTemplate};

use super::layer::{self, Answer, Handler, Layer, Refusal, layer_controls};
pub use super::layer::{Faults, RecordedRequest};
use super::tokens::{Tokens, token_controls};

/// A user to create with [`OneLoginTenant::add_user`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOneLoginUser {
    /// `username`.
    pub username: String,
    /// `email`.
    pub email: String,
    /// `firstname`.
    pub firstname: String,
    /// `lastname`.
    pub lastname: String,
    /// `userprincipalname`.
    pub userprincipalname: Option<String>,
    /// `external_id`.
    pub external_id: Option<String>,
    /// `manager_user_id`: the manager's id.
    pub manager_user_id: Option<u64>,
    /// `status`: one of [`OneLoginTenant::STATUSES`].
    pub status: u8,
    /// How long ago the user was created and last updated (zero: now). A user who existed
    /// before a test's first read is not one changed in its last minute.
    pub age: Duration,
}

impl NewOneLoginUser {
    /// An active (status 1) user with a username and an email.
    pub fn active(username: &str, email: &str) -> Self {
        Self {
            username: username.to_owned(),
            email: email.to_owned(),
            firstname: String::new(),
            lastname: String::new(),
            userprincipalname: None,
            external_id: None,
            manager_user_id: None,
            status: 1,
            age: Duration::ZERO,
        }
    }
}

#[derive(Debug, Clone)]
struct User {
    id: u64,
    new: NewOneLoginUser,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

impl User {
    fn json(&self) -> Value {
        let u = &self.new;
        json!({
            "id": self.id,
            "username": u.username,
            "email": u.email,
            "firstname": u.firstname,
            "lastname": u.lastname,
            "userprincipalname": u.userprincipalname,
            "samaccountname": null,
            "external_id": u.external_id,
            "manager_user_id": u.manager_user_id,
            "manager_ad_id": null,
            "status": u.status,
            "state": 1,
            "directory_id": null,
            "created_at": stamp(self.created_at),
            "updated_at": stamp(self.updated_at),
            "activated_at": stamp(self.created_at),
            "last_login": null,
            "custom_attributes": {},
        })
    }
}

/// The filters of one `GET /api/2/users` query (what a cursor is bound to).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Filters {
    updated_since: Option<DateTime<Utc>>,
    email: Option<String>,
    username: Option<String>,
    user_ids: Option<Vec<u64>>,
    fields: Option<Vec<String>>,
}

impl Filters {
    fn matches(&self, u: &User) -> bool {
        self.updated_since.is_none_or(|t| u.updated_at > t)
            && self
                .email
                .as_ref()
                .is_none_or(|e| u.new.email.eq_ignore_ascii_case(e))
            && self
                .username
                .as_ref()
                .is_none_or(|n| u.new.username.eq_ignore_ascii_case(n))
            && self.user_ids.as_ref().is_none_or(|ids| ids.contains(&u.id))
    }

    fn is_empty(&self) -> bool {
        self.updated_since.is_none()
            && self.email.is_none()
            && self.username.is_none()
            && self.user_ids.is_none()
    }
}

#[derive(Debug)]
struct State {
    users: BTreeMap<u64, User>,
    next_id: u64,
    last_stamp: DateTime<Utc>,
    tokens: Tokens,
    /// Cursor → (the filters it was made for, the last id it listed, the page it ends).
    cursors: HashMap<String, (Filters, u64, usize)>,
    layer: Layer,
}

impl State {
    /// A modification time after every earlier one, in whole milliseconds (as written).
    fn tick(&mut self) -> DateTime<Utc> {
        let now = DateTime::from_timestamp_millis(Utc::now().timestamp_millis())
            .unwrap_or_default()
            .max(self.last_stamp + chrono::Duration::milliseconds(1));
        self.last_stamp = now;
        now
    }
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

/// The simulated OneLogin account. See the [module docs](self).
#[derive(Debug)]
pub struct OneLoginTenant {
    server: MockServer,
    shared: Arc<Shared>,
}

fn api_error(status: u16, name: &str, message: &str) -> Answer {
    Answer::new(
        status,
        Some(json!({"statusCode": status, "name": name, "message": message})),
    )
}

fn bad_request(message: &str) -> Answer {
    api_error(400, "BadRequestError", message)
}

impl OneLoginTenant {
    /// Every route served, as `(METHOD, path)` exactly as in the description.
    pub const ROUTES: &'static [(&'static str, &'static str)] = &[
        ("POST", "/auth/oauth2/v2/token"),
        ("GET", "/api/2/users"),
        ("GET", "/api/2/users/{user_id}"),
    ];

    /// The query parameters `GET /api/2/users` knows (the description's); those not in
    /// [`OneLoginTenant::SIMULATED_PARAMS`] are refused as not simulated.
    pub const LIST_PARAMS: &'static [&'static str] = &[
        "limit",
        "page",
        "cursor",
        "created_since",
        "created_until",
        "updated_since",
        "updated_until",
        "last_login_since",
        "last_login_until",
        "firstname",
        "lastname",
        "email",
        "username",
        "samaccountname",
        "directory_id",
        "external_id",
        "user_ids",
        "fields",
    ];

    /// The list parameters the simulator implements.
    pub const SIMULATED_PARAMS: &'static [&'static str] = &[
        "limit",
        "cursor",
        "updated_since",
        "email",
        "username",
        "user_ids",
        "fields",
    ];

    /// OneLogin's user status codes: 0 unactivated, 1 active, 2 suspended, 3 locked,
    /// 4 password expired, 5 awaiting password reset, 7 password pending, 8 security
    /// questions required.
    pub const STATUSES: &'static [u8] = &[0, 1, 2, 3, 4, 5, 7, 8];

    /// Starts an empty account with a fresh API credential.
    pub async fn start() -> Self {
        let server = MockServer::start().await;
        let shared = Arc::new(Shared {
            client_id: format!("ol-client-{}", uuid::Uuid::new_v4().simple()),
            client_secret: format!("ol-secret-{}", uuid::Uuid::new_v4().simple()),
            state: Mutex::new(State {
                users: BTreeMap::new(),
                next_id: 100_000,
                last_stamp: DateTime::<Utc>::UNIX_EPOCH,
                tokens: Tokens::new(36_000),
                cursors: HashMap::new(),
                layer: Layer::default(),
            }),
        });
        layer::serve(&server, Arc::new(Route(Arc::clone(&shared)))).await;
        Self { server, shared }
    }

    /// The base URL (`http://127.0.0.1:port`, for `https://<subdomain>.onelogin.com`).
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// The API credential's client id.
    pub fn client_id(&self) -> &str {
        &self.shared.client_id
    }

    /// The API credential's client secret.
    pub fn client_secret(&self) -> &str {
        &self.shared.client_secret
    }

    /// Creates a user; returns its id.
    ///
    /// # Panics
    /// When the status is not one of [`OneLoginTenant::STATUSES`].
    pub fn add_user(&self, user: NewOneLoginUser) -> u64 {
        assert!(Self::STATUSES.contains(&user.status), "{}", user.status);
        let mut s = self.shared.state();
        s.next_id += 1;
        let id = s.next_id;
        let now = match chrono::Duration::from_std(user.age) {
            Ok(age) if !age.is_zero() => s.tick() - age,
            _ => s.tick(),
        };
        s.users.insert(
            id,
            User {
                id,
                new: user,
                created_at: now,
                updated_at: now,
            },
        );
        id
    }

    /// Sets a user's status (moving `updated_at`); `false` when no such user.
    ///
    /// # Panics
    /// When the status is not one of [`OneLoginTenant::STATUSES`].
    pub fn set_status(&self, id: u64, status: u8) -> bool {
        assert!(Self::STATUSES.contains(&status), "{status}");
        let mut s = self.shared.state();
        let now = s.tick();
        let Some(u) = s.users.get_mut(&id) else {
            return false;
        };
        u.new.status = status;
        u.updated_at = now;
        true
    }

    /// Deletes a user; `false` when no such user.
    pub fn remove(&self, id: u64) -> bool {
        self.shared.state().users.remove(&id).is_some()
    }

    /// A user as `GET /api/2/users/{user_id}` returns it.
    pub fn user(&self, id: u64) -> Option<Value> {
        self.shared.state().users.get(&id).map(User::json)
    }

    token_controls!("OneLogin: 36,000");

    layer_controls! {
        fail_next;
        set_rate_limit(3600, "hour");
        set_faults;
        requests;
        served;
    }
}

struct Route(Arc<Shared>);

impl Handler for Route {
    fn handle(&self, request: &Request) -> ResponseTemplate {
        let mut s = self.0.state();
        s.layer.receive(layer::record(request));
        let segs = layer::segments(request.url.path());
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        let method = request.method.as_str();
        let answer = match (method, segs.as_slice()) {
            ("POST", ["auth", "oauth2", "v2", "token"]) => token(&self.0, &mut s, request),
            (_, ["auth", "oauth2", "v2", "token"]) => {
                api_error(405, "MethodNotAllowedError", "Method Not Allowed")
            }
            (_, ["api", "2", ..]) => api(&mut s, request, method, &segs[2..]),
            _ => api_error(404, "NotFoundError", "Not Found"),
        };
        answer.template()
    }
}

fn token(shared: &Shared, s: &mut State, request: &Request) -> Answer {
    let basic = layer::basic(&shared.client_id, &shared.client_secret);
    if layer::authorization(request) != basic {
        return Answer::new(
            401,
            Some(
                json!({"status": {"error": true, "code": 401, "type": "Unauthorized",
                                    "message": "Authentication Failure"}}),
            ),
        );
    }
    let grant = serde_json::from_slice::<Value>(&request.body)
        .ok()
        .and_then(|b| b["grant_type"].as_str().map(str::to_owned))
        .or_else(|| {
            url::form_urlencoded::parse(&request.body)
                .find(|(k, _)| k == "grant_type")
                .map(|(_, v)| v.into_owned())
        });
    if grant.as_deref() != Some("client_credentials") {
        return Answer::new(
            400,
            Some(
                json!({"status": {"error": true, "code": 400, "type": "bad request",
                                    "message": "grant_type is incorrect/absent"}}),
            ),
        );
    }
    let (access, lifetime) = s.tokens.issue();
    Answer::new(
        200,
        Some(json!({
            "access_token": access,
            "created_at": stamp(Utc::now()),
            "expires_in": lifetime,
            "refresh_token": "",
            "token_type": "bearer",
            "account_id": 4242,
        })),
    )
}

fn api(s: &mut State, request: &Request, method: &str, rest: &[&str]) -> Answer {
    let valid = s.tokens.accept(request);
    if !valid {
        return api_error(401, "UnauthorizedError", "Unauthorized");
    }
    match s.layer.admit() {
        Some(Refusal::Throttled {
            retry_after, limit, ..
        }) => return throttled(retry_after, limit),
        Some(Refusal::Failed(status)) => {
            return api_error(status, "InternalServerError", "Internal Server Error");
        }
        None => {}
    }
    let query: Vec<(String, String)> = request.url.query_pairs().into_owned().collect();
    match (method, rest) {
        ("GET", ["users"]) => list(s, &query),
        ("GET", ["users", id]) => match id.parse::<u64>() {
            Err(_) => bad_request(&format!("user_id {id:?} is not an integer")),
            Ok(id) => match s.users.get(&id) {
                Some(u) => Answer::new(200, Some(u.json())),
                None => api_error(404, "NotFoundError", "User not found"),
            },
        },
        (_, ["users"] | ["users", _]) => {
            api_error(405, "MethodNotAllowedError", "Method Not Allowed")
        }
        _ => api_error(404, "NotFoundError", "Not Found"),
    }
}

/// A throttling answer: a 429 with OneLogin's rate-limit headers, the window resetting in
/// `reset` seconds (`limit`: the hourly budget, OneLogin's 5,000 when none is set).
fn throttled(reset: u64, limit: Option<u32>) -> Answer {
    api_error(429, "TooManyRequestsError", "Too Many Requests")
        .header("X-RateLimit-Limit", limit.unwrap_or(5000).to_string())
        .header("X-RateLimit-Remaining", "0")
        .header("X-RateLimit-Reset", reset.to_string())
}

fn time(value: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{value:?} is not an ISO 8601 time: {e}"))
}

/// The parameters of one list query: page size, cursor, filters.
fn parse_list(query: &[(String, String)]) -> Result<(usize, Option<String>, Filters), String> {
    let (mut limit, mut cursor, mut f) = (50, None, Filters::default());
    let mut seen: Vec<&str> = Vec::new();
    for (k, v) in query {
        if !OneLoginTenant::LIST_PARAMS.contains(&k.as_str()) {
            return Err(format!("unknown parameter {k:?}"));
        }
        if !OneLoginTenant::SIMULATED_PARAMS.contains(&k.as_str()) {
            return Err(format!("{k} is not simulated"));
        }
        if seen.contains(&k.as_str()) {
            return Err(format!("{k} given twice"));
        }
        seen.push(k);
        match k.as_str() {
            "limit" => match v.parse::<usize>() {
                Ok(n) if (1..=100).contains(&n) => limit = n,
                _ => return Err(format!("limit must be 1 to 100, not {v:?}")),
            },
            "cursor" => cursor = Some(v.clone()),
            "updated_since" => f.updated_since = Some(time(v)?),
            "email" => f.email = Some(v.clone()),
            "username" => f.username = Some(v.clone()),
            "user_ids" => {
                let ids: Result<Vec<u64>, _> = v.split(',').map(|i| i.trim().parse()).collect();
                f.user_ids = Some(ids.map_err(|_| format!("user_ids {v:?} are not integers"))?);
            }
            _ => f.fields = Some(v.split(',').map(|s| s.trim().to_owned()).collect()),
        }
    }
    Ok((limit, cursor, f))
}

fn list(s: &mut State, query: &[(String, String)]) -> Answer {
    let (limit, cursor, filters) = match parse_list(query) {
        Ok(q) => q,
        Err(why) => return bad_request(&why),
    };
    let (after, page_no) = match cursor {
        None => (0, 1),
        Some(c) => match s.cursors.get(&c) {
            Some((made_for, after, page)) if *made_for == filters => (*after, page + 1),
            Some(_) => return bad_request("the cursor was made for another query"),
            None => return bad_request("invalid cursor"),
        },
    };
    let total = if filters.is_empty() {
        s.users.len()
    } else {
        s.users.values().filter(|u| filters.matches(u)).count()
    };
    let mut page: Vec<&User> = s
        .users
        .range(after + 1..)
        .map(|(_, u)| u)
        .filter(|u| filters.matches(u))
        .take(limit + 1)
        .collect();
    let more = page.len() > limit;
    page.truncate(limit);
    let body: Vec<Value> = page
        .iter()
        .map(|u| project(u.json(), filters.fields.as_deref()))
        .collect();
    let last = page.last().map(|u| u.id);
    let mut answer = Answer::new(200, Some(Value::Array(body)))
        .header("Total-Count", total.to_string())
        .header("Total-Pages", total.div_ceil(limit).max(1).to_string())
        .header("Current-Page", page_no.to_string())
        .header("Page-Items", limit.to_string());
    if let (true, Some(last)) = (more, last) {
        let next = uuid::Uuid::new_v4().simple().to_string();
        s.cursors.insert(next.clone(), (filters, last, page_no));
        answer = answer.header("After-Cursor", next);
    }
    answer
}

fn project(user: Value, fields: Option<&[String]>) -> Value {
    let (Some(fields), Value::Object(all)) = (fields, &user) else {
        return user;
    };
    Value::Object(
        all.iter()
            .filter(|(k, _)| *k == "id" || fields.iter().any(|f| f == *k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}
