//! A simulated SCIM 2.0 service provider (RFC 7643/7644) on loopback: stateful, strict, rate
//! limited, with fault injection and a recording of every request.
//!
//! Built on wiremock like [`crate::sim::okta`]: one [`MockServer`] whose responder routes requests
//! over shared state. Every route lives under [`ScimProvider::BASE_PATH`] (`/scim/v2`), as at
//! real apps, so a connector must keep its base URL's path.
//!
//! # Behaviour modelled
//! - `GET /ServiceProviderConfig` (RFC 7643 §5) advertising `patch`, `filter` (with
//!   `maxResults`), `etag`, `bulk`/`sort`/`changePassword` unsupported, and the bearer scheme.
//! - `GET /Users` and `GET /Groups` with `filter`, `startIndex` (1-based) and `count` (capped at
//!   [`ScimSettings::max_results`]), answering a `ListResponse`. The filter subset: one
//!   `attr eq "string"` (`userName`, `externalId`, `id`, `displayName`) or a value path
//!   `emails[value eq "…"]` / `members[value eq "…"]`; string literals are JSON strings.
//!   Anything else, an attribute the settings do not list as filterable, or a malformed literal
//!   is a 400 `invalidFilter`. `userName` and `emails.value` compare ignoring ASCII case
//!   (`caseExact: false` in RFC 7643 §8.7.1), `externalId` and `id` exactly.
//! - `POST /Users` and `POST /Groups` (RFC 7644 §3.3: 201; a taken `userName` is a 409
//!   `uniqueness`), `GET`/`PUT`/`PATCH`/`DELETE /Users/{id}`, `GET`/`PUT`/`PATCH`/`DELETE
//!   /Groups/{id}` (a group's body needs `displayName`; its `members` must be existing users;
//!   groups keep an `externalId`). Users carry
//!   `schemas`, `id`, `externalId`, `userName`, `displayName`, `emails`, `active`, `groups`
//!   (read-only, when [`ScimSettings::groups_on_user`]) and `meta` (`resourceType`, `created`,
//!   `lastModified`, `location`, `version`).
//! - PATCH (RFC 7644 §3.5.2): a body with exactly the `PatchOp` schema and `Operations`; ops
//!   `add`, `replace`, `remove` (lower case). Users: paths `active` (a JSON boolean, else 400
//!   `invalidValue`; removed: unassigned, read as active), `displayName`, `externalId`,
//!   `userName` (not removable), `emails` (objects with a string `value`, kept as sent), or no
//!   path with an object value. Groups: `members` (`add`/`replace` with `[{"value": id}]`,
//!   `remove` of all or of `members[value eq "id"]`), `displayName` (not removable),
//!   `externalId`. Other paths: 400 `invalidPath`. Without PATCH support: 501.
//! - PUT replaces the user: `schemas` must hold the core User schema and `userName` is
//!   required (400 `invalidValue`); an `id` other than the path's is a 400 `mutability`.
//! - ETag (when [`ScimSettings::etag_supported`]): `W/"n"` in the `ETag` header and
//!   `meta.version`, bumped by every change; a write with a stale `If-Match` is a 412.
//! - DELETE removes the user and its group memberships (204; 404 when gone), or, with
//!   [`ScimSettings::delete_deactivates`], only sets `active` to false (as Slack documents), or,
//!   without [`ScimSettings::delete_supported`], is a 405.
//! - With [`ScimSettings::filter_ignored`], listings check the filter but return everything.
//! - With [`ScimSettings::reactivation_refused`], setting `active` back to true is a 400
//!   `mutability` (apps that delete a deactivated user).
//! - Errors use the SCIM error schema (`urn:ietf:params:scim:api:messages:2.0:Error`,
//!   `status` as a string, `scimType`, `detail`).
//! - Authentication: `Authorization: Bearer <token>`, or `Basic` when configured, or (with
//!   [`ScimProvider::start_oauth`]) a bearer token its `POST /oauth/token` endpoint issued by
//!   the client credentials grant and not yet expired; anything else is a 401.
//! - Rate limit: a budget of requests per window; past it a 429 with `Retry-After` (seconds to
//!   the window's end). Faults: the next N requests fail with a chosen status.
//!
//! # Example
//! ```
//! use offboard_testkit::sim::scim::{ScimProvider, ScimSettings};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let sp = ScimProvider::start(ScimSettings::default()).await;
//! let id = sp.add_user("jane@example.com", &["jane@example.com"]);
//! assert!(sp.user(&id).unwrap().active);
//! # }
//! ```

mod filter;
mod fixture;

pub use fixture::ScimFixture;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};
use wiremock::{MockServer, Request, ResponseTemplate};

pub use super::layer::RecordedRequest;
use super::layer::{self, Answer, Handler, Layer, Window, respond};

/// The core User schema URN.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The core Group schema URN.
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The PATCH message schema URN.
pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// The list response schema URN.
pub const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// The error schema URN.
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// What the service provider supports and how it deviates: each field is one quirk a real app
/// has (see the SCIM connector's profiles).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimSettings {
    /// PATCH supported (advertised in `/ServiceProviderConfig`); else PATCH is a 501.
    pub patch_supported: bool,
    /// ETags supported (advertised); else no `ETag` and `If-Match` is ignored.
    pub etag_supported: bool,
    /// Users carry the read-only `groups` attribute.
    pub groups_on_user: bool,
    /// DELETE only sets `active` to false (Slack).
    pub delete_deactivates: bool,
    /// DELETE is offered at all (else 405).
    pub delete_supported: bool,
    /// Setting `active` back to true is refused (400 `mutability`).
    pub reactivation_refused: bool,
    /// Listings ignore the (still validated) filter and return every resource, as some
    /// providers do with filters they do not implement.
    pub filter_ignored: bool,
    /// The attributes a filter may compare (`userName`, `externalId`, `emails.value`, `id`).
    pub filter_attributes: BTreeSet<String>,
    /// The most resources one page holds (`filter.maxResults`).
    pub max_results: usize,
    /// Requests allowed per window before 429s.
    pub requests_per_window: u32,
    /// The window length in seconds.
    pub window_secs: u64,
}

impl Default for ScimSettings {
    /// Everything RFC 7644 offers: PATCH, ETags, `groups` on users, DELETE removes, filters on
    /// `userName`, `externalId`, `emails.value`, `id`; 100 per page; 600 requests a minute.
    fn default() -> Self {
        Self {
            patch_supported: true,
            etag_supported: true,
            groups_on_user: true,
            delete_deactivates: false,
            delete_supported: true,
            reactivation_refused: false,
            filter_ignored: false,
            filter_attributes: ["userName", "externalId", "emails.value", "id"]
                .into_iter()
                .map(str::to_owned)
                .collect(),
            max_results: 100,
            requests_per_window: 600,
            window_secs: 60,
        }
    }
}

/// A user's state, read directly from the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScimUserState {
    /// Id.
    pub id: String,
    /// `userName`.
    pub user_name: String,
    /// `externalId`.
    pub external_id: Option<String>,
    /// `emails[].value`.
    pub emails: Vec<String>,
    /// `active`.
    pub active: bool,
    /// The ids of the groups whose `members` hold the user.
    pub groups: BTreeSet<String>,
    /// The ETag version number.
    pub version: u64,
}

#[derive(Debug, Clone)]
struct User {
    user_name: String,
    external_id: Option<String>,
    display_name: Option<String>,
    /// Each an object with a string `value` (and whatever `type`, `primary`, `display` the
    /// client sent).
    emails: Vec<Value>,
    /// `None`: unassigned (a PATCH removed it), which reads as active.
    active: Option<bool>,
    version: u64,
    created: String,
    modified: String,
}

#[derive(Debug, Clone)]
struct Group {
    display_name: String,
    external_id: Option<String>,
    members: BTreeSet<String>,
    version: u64,
}

#[derive(Debug, Default)]
struct State {
    users: BTreeMap<String, User>,
    groups: BTreeMap<String, Group>,
    next: u64,
    /// Recording and counters; injected failures are scoped by method.
    layer: Layer<String>,
    window: Window,
    base: String,
    /// Access tokens issued by the token endpoint, and whether each is still valid.
    issued: BTreeMap<String, bool>,
}

#[derive(Debug)]
struct Shared {
    authorization: Vec<String>,
    /// The OAuth client (id, secret) whose issued tokens the SCIM routes accept.
    oauth: Option<(String, String)>,
    token: String,
    settings: Mutex<ScimSettings>,
    state: Mutex<State>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        layer::lock(&self.state)
    }
    fn settings(&self) -> ScimSettings {
        layer::lock(&self.settings).clone()
    }
}

/// The simulated SCIM service provider. See the [module docs](self).
#[derive(Debug)]
pub struct ScimProvider {
    server: MockServer,
    shared: Arc<Shared>,
}

fn now_stamp() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// A SCIM error response (RFC 7644 §3.12).
fn error(status: u16, scim_type: Option<&str>, detail: &str) -> (u16, Option<Value>) {
    let mut body = json!({
        "schemas": [ERROR_SCHEMA],
        "status": status.to_string(),
        "detail": detail,
    });
    if let Some(t) = scim_type {
        body["scimType"] = json!(t);
    }
    (status, Some(body))
}

fn etag(version: u64) -> String {
    format!("W/\"{version}\"")
}

impl ScimProvider {
    /// The path every route lives under.
    pub const BASE_PATH: &'static str = "/scim/v2";

    /// Every route served, as `(METHOD, path template)` under [`ScimProvider::BASE_PATH`].
    pub const ROUTES: &'static [(&'static str, &'static str)] = &[
        ("GET", "/ServiceProviderConfig"),
        ("GET", "/ResourceTypes"),
        ("GET", "/ResourceTypes/{id}"),
        ("GET", "/Schemas"),
        ("GET", "/Schemas/{id}"),
        ("GET", "/Users"),
        ("POST", "/Users"),
        ("GET", "/Users/{id}"),
        ("PUT", "/Users/{id}"),
        ("PATCH", "/Users/{id}"),
        ("DELETE", "/Users/{id}"),
        ("GET", "/Groups"),
        ("POST", "/Groups"),
        ("GET", "/Groups/{id}"),
        ("PUT", "/Groups/{id}"),
        ("PATCH", "/Groups/{id}"),
        ("DELETE", "/Groups/{id}"),
    ];

    /// Starts a provider accepting `Bearer <random token>`.
    pub async fn start(settings: ScimSettings) -> Self {
        let token = format!("sim-scim-{}", uuid::Uuid::new_v4().simple());
        Self::serve(settings, token.clone(), vec![format!("Bearer {token}")]).await
    }

    /// Starts a provider accepting HTTP basic authentication with this user and password
    /// (and no bearer token).
    pub async fn start_basic(settings: ScimSettings, user: &str, password: &str) -> Self {
        use base64::Engine as _;
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Self::serve(
            settings,
            password.to_owned(),
            vec![format!("Basic {encoded}")],
        )
        .await
    }

    /// Starts a provider whose SCIM routes accept only the access tokens its token endpoint
    /// ([`ScimProvider::token_url`], `POST /oauth/token`) issues by the client credentials
    /// grant (RFC 6749 §4.4) to this client, authenticated by HTTP basic or in the body (not
    /// both); a token is valid for [`ScimProvider::TOKEN_LIFETIME_SECS`] or until
    /// [`ScimProvider::expire_tokens`].
    pub async fn start_oauth(settings: ScimSettings, client_id: &str, client_secret: &str) -> Self {
        Self::serve_with(
            settings,
            client_secret.to_owned(),
            Vec::new(),
            Some((client_id.to_owned(), client_secret.to_owned())),
        )
        .await
    }

    /// The `expires_in` of issued access tokens.
    pub const TOKEN_LIFETIME_SECS: u64 = 3600;

    /// The token endpoint of [`ScimProvider::start_oauth`].
    pub fn token_url(&self) -> String {
        format!("{}/oauth/token", self.server.uri())
    }

    /// Every access token issued so far stops being accepted, as when it expires earlier than
    /// its `expires_in` said (or is revoked): the next SCIM request with it is a 401.
    pub fn expire_tokens(&self) {
        for valid in self.shared.state().issued.values_mut() {
            *valid = false;
        }
    }

    /// How many access tokens the token endpoint has issued.
    pub fn tokens_issued(&self) -> usize {
        self.shared.state().issued.len()
    }

    async fn serve(settings: ScimSettings, token: String, authorization: Vec<String>) -> Self {
        Self::serve_with(settings, token, authorization, None).await
    }

    async fn serve_with(
        settings: ScimSettings,
        token: String,
        authorization: Vec<String>,
        oauth: Option<(String, String)>,
    ) -> Self {
        let shared = Arc::new(Shared {
            authorization,
            oauth,
            token,
            settings: Mutex::new(settings),
            state: Mutex::new(State::default()),
        });
        let server = MockServer::start().await;
        layer::serve(&server, Arc::clone(&shared)).await;
        shared.state().base = format!("{}{}", server.uri(), Self::BASE_PATH);
        Self { server, shared }
    }

    /// The SCIM base URL (`http://127.0.0.1:<port>/scim/v2`).
    pub fn base_url(&self) -> String {
        format!("{}{}", self.server.uri(), Self::BASE_PATH)
    }

    /// The bearer token (or, with basic auth, the password) it accepts.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// Replaces the settings.
    pub fn set_settings(&self, settings: ScimSettings) {
        *layer::lock(&self.shared.settings) = settings;
    }

    /// Adds an active user with this `userName` and emails; returns its id.
    pub fn add_user(&self, user_name: &str, emails: &[&str]) -> String {
        let mut s = self.shared.state();
        s.next += 1;
        let id = format!("u{:06}-{}", s.next, uuid::Uuid::new_v4().simple());
        s.users.insert(
            id.clone(),
            User {
                user_name: user_name.to_owned(),
                external_id: None,
                display_name: None,
                emails: emails
                    .iter()
                    .enumerate()
                    .map(|(i, e)| json!({"value": e, "type": "work", "primary": i == 0}))
                    .collect(),
                active: Some(true),
                version: 1,
                created: now_stamp(),
                modified: now_stamp(),
            },
        );
        id
    }

    /// Sets a user's `externalId`.
    pub fn set_external_id(&self, id: &str, external_id: &str) {
        if let Some(u) = self.shared.state().users.get_mut(id) {
            u.external_id = Some(external_id.to_owned());
            u.version += 1;
        }
    }

    /// Sets a user's `active`, as an administrator would.
    pub fn set_active(&self, id: &str, active: bool) {
        if let Some(u) = self.shared.state().users.get_mut(id) {
            u.active = Some(active);
            u.version += 1;
        }
    }

    /// Adds a group; returns its id.
    pub fn add_group(&self, display_name: &str) -> String {
        let mut s = self.shared.state();
        s.next += 1;
        let id = format!("g{:06}", s.next);
        s.groups.insert(
            id.clone(),
            Group {
                display_name: display_name.to_owned(),
                external_id: None,
                members: BTreeSet::new(),
                version: 1,
            },
        );
        id
    }

    /// Adds a user to a group's `members`.
    pub fn add_member(&self, group: &str, user: &str) {
        if let Some(g) = self.shared.state().groups.get_mut(group) {
            g.members.insert(user.to_owned());
            g.version += 1;
        }
    }

    /// Removes a user outright, as an administrator would (no-op when gone).
    pub fn remove_user(&self, id: &str) {
        let mut s = self.shared.state();
        s.users.remove(id);
        for g in s.groups.values_mut() {
            g.members.remove(id);
        }
    }

    /// A user's current state.
    pub fn user(&self, id: &str) -> Option<ScimUserState> {
        let s = self.shared.state();
        let u = s.users.get(id)?;
        Some(ScimUserState {
            id: id.to_owned(),
            user_name: u.user_name.clone(),
            external_id: u.external_id.clone(),
            emails: u
                .emails
                .iter()
                .filter_map(|e| e["value"].as_str().map(str::to_owned))
                .collect(),
            active: u.active.unwrap_or(true),
            groups: s
                .groups
                .iter()
                .filter(|(_, g)| g.members.contains(id))
                .map(|(gid, _)| gid.clone())
                .collect(),
            version: u.version,
        })
    }

    /// The user resource as `GET /Users/{id}` answers it.
    pub fn user_resource(&self, id: &str) -> Option<Value> {
        let settings = self.shared.settings();
        let s = self.shared.state();
        s.users.get(id).map(|u| user_json(&s, &settings, id, u))
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.state().layer.requests.clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.state().layer.requests.clear();
    }

    /// The next `count` requests (after authentication) fail with `status` (a 429 carries
    /// `Retry-After: 1`).
    pub fn fail_next(&self, count: usize, status: u16) {
        self.shared
            .state()
            .layer
            .fail_next
            .push(None, status, count);
    }

    /// As [`ScimProvider::fail_next`], for requests with this method only (e.g. a 412 on the
    /// next PATCH while reads keep working).
    pub fn fail_next_on(&self, method: &str, count: usize, status: u16) {
        self.shared
            .state()
            .layer
            .fail_next
            .push(Some(method.to_owned()), status, count);
    }

    /// How many 429s it has answered.
    pub fn rate_limited_count(&self) -> u64 {
        self.shared.state().layer.rate_limited
    }
}

fn user_json(s: &State, settings: &ScimSettings, id: &str, u: &User) -> Value {
    let mut v = json!({
        "schemas": [USER_SCHEMA],
        "id": id,
        "userName": u.user_name,
        "emails": u.emails,
        "meta": {
            "resourceType": "User",
            "created": u.created,
            "lastModified": u.modified,
            "location": format!("{}/Users/{id}", s.base),
        },
    });
    if let Some(a) = u.active {
        v["active"] = json!(a);
    }
    if let Some(x) = &u.external_id {
        v["externalId"] = json!(x);
    }
    if let Some(d) = &u.display_name {
        v["displayName"] = json!(d);
    }
    if settings.etag_supported {
        v["meta"]["version"] = json!(etag(u.version));
    }
    if settings.groups_on_user {
        v["groups"] = s
            .groups
            .iter()
            .filter(|(_, g)| g.members.contains(id))
            .map(|(gid, g)| {
                json!({
                    "value": gid,
                    "display": g.display_name,
                    "$ref": format!("{}/Groups/{gid}", s.base),
                    "type": "direct",
                })
            })
            .collect();
    }
    v
}

fn group_json(s: &State, settings: &ScimSettings, id: &str, g: &Group) -> Value {
    let mut v = json!({
        "schemas": [GROUP_SCHEMA],
        "id": id,
        "displayName": g.display_name,
        "members": g.members.iter().map(|m| json!({
            "value": m, "$ref": format!("{}/Users/{m}", s.base), "type": "User",
        })).collect::<Vec<_>>(),
        "meta": {"resourceType": "Group", "location": format!("{}/Groups/{id}", s.base)},
    });
    if let Some(x) = &g.external_id {
        v["externalId"] = json!(x);
    }
    if settings.etag_supported {
        v["meta"]["version"] = json!(etag(g.version));
    }
    v
}

impl Handler for Shared {
    fn handle(&self, request: &Request) -> ResponseTemplate {
        let settings = self.settings();
        let mut s = self.state();
        s.layer.requests.push(layer::record(request));
        let auth = layer::authorization(request);
        if request.url.path() == "/oauth/token"
            && let Some((id, secret)) = &self.oauth
        {
            return token_endpoint(&mut s, request, auth, id, secret);
        }
        let issued = auth
            .strip_prefix("Bearer ")
            .is_some_and(|t| s.issued.get(t) == Some(&true));
        if !self.authorization.iter().any(|a| a == auth) && !issued {
            let (st, body) = error(401, None, "Authorization failure");
            return respond(st, body).insert_header("www-authenticate", "Bearer");
        }
        let now = Duration::from_secs(layer::epoch_secs());
        let window = Duration::from_secs(settings.window_secs.max(1));
        let counted = s.window.count(now, window, settings.requests_per_window);
        let too_many = |s: &mut State, after: u64| {
            let (st, body) = error(429, None, "Too many requests");
            s.layer
                .throttled(respond(st, body))
                .insert_header("retry-after", after.to_string().as_str())
        };
        if !counted.admitted {
            return too_many(&mut s, counted.retry_after(now));
        }
        let method = request.method.as_str();
        if let Some(status) = s.layer.fail_next.take(&method.to_owned()) {
            if status == 429 {
                return too_many(&mut s, 1);
            }
            let (st, body) = error(status, None, "injected failure");
            return respond(st, body);
        }
        let path = request.url.path();
        let Some(rest) = path.strip_prefix(ScimProvider::BASE_PATH) else {
            let (st, body) = error(404, None, "no such endpoint");
            return respond(st, body);
        };
        let segments = layer::segments(rest);
        let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
        let query: BTreeMap<String, String> = request.url.query_pairs().into_owned().collect();
        let if_match = request
            .headers
            .get("if-match")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body: Option<Value> = serde_json::from_slice(&request.body).ok();
        let ctx = Ctx {
            settings: &settings,
            query: &query,
            if_match: if_match.as_deref(),
            body: body.as_ref(),
        };
        let mut answer = route(&mut s, &ctx, request.method.as_str(), &segs);
        if answer.status < 300 && answer.status != 204 {
            answer = answer.header("content-type", "application/scim+json");
        }
        answer.template()
    }
}

/// `POST /oauth/token` (RFC 6749 §4.4): a form with `grant_type=client_credentials`, the client
/// authenticated by HTTP basic (§2.3.1, each part form-urlencoded) or by `client_id` and
/// `client_secret` in the body, never both. Errors are §5.2 JSON: `invalid_request`,
/// `unsupported_grant_type` (400), `invalid_client` (401).
fn token_endpoint(
    s: &mut State,
    request: &Request,
    auth: &str,
    id: &str,
    secret: &str,
) -> ResponseTemplate {
    use base64::Engine as _;
    let oauth_error = |status: u16, code: &str| {
        let t = respond(status, Some(json!({"error": code})));
        if status == 401 {
            t.insert_header("www-authenticate", "Basic")
        } else {
            t
        }
    };
    if request.method.as_str() != "POST" {
        return oauth_error(405, "invalid_request");
    }
    let form_type = request
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form_type {
        return oauth_error(400, "invalid_request");
    }
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect();
    let basic = auth.strip_prefix("Basic ").map(|b| {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b)
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .unwrap_or_default();
        let (user, password) = decoded.split_once(':').unwrap_or_default();
        let part = |p: &str| {
            url::form_urlencoded::parse(format!("x={p}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        (part(user), part(password))
    });
    let in_body = form.get("client_secret").map(|secret| {
        (
            form.get("client_id").cloned().unwrap_or_default(),
            secret.clone(),
        )
    });
    let client = match (basic, in_body) {
        (Some(_), Some(_)) => return oauth_error(400, "invalid_request"),
        (Some(c), None) | (None, Some(c)) => c,
        (None, None) => return oauth_error(401, "invalid_client"),
    };
    if client.0 != id || client.1 != secret {
        return oauth_error(401, "invalid_client");
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_error(400, "unsupported_grant_type");
    }
    let token = format!("sim-oauth-{}", uuid::Uuid::new_v4().simple());
    s.issued.insert(token.clone(), true);
    respond(
        200,
        Some(json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": ScimProvider::TOKEN_LIFETIME_SECS,
        })),
    )
    .insert_header("cache-control", "no-store")
}

struct Ctx<'a> {
    settings: &'a ScimSettings,
    query: &'a BTreeMap<String, String>,
    if_match: Option<&'a str>,
    body: Option<&'a Value>,
}

fn route(s: &mut State, ctx: &Ctx<'_>, method: &str, segs: &[&str]) -> Answer {
    match (method, segs) {
        ("GET", ["ServiceProviderConfig"]) => (200, Some(spc(ctx.settings))).into(),
        ("GET", ["ResourceTypes"]) => list_response(1, 2, resource_types(&s.base)).into(),
        ("GET", ["ResourceTypes", id]) => one_of(resource_types(&s.base), id, "ResourceType"),
        ("GET", ["Schemas"]) => list_response(1, 2, schemas(&s.base)).into(),
        ("GET", ["Schemas", id]) => one_of(schemas(&s.base), id, "Schema"),
        ("GET", ["Users"]) => list_users(s, ctx).into(),
        ("GET", ["Groups"]) => list_groups(s, ctx).into(),
        ("GET", ["Users", id]) if s.users.contains_key(*id) => written_user(s, ctx, id),
        ("GET", ["Users", id]) => user_missing(id).into(),
        ("GET", ["Groups", id]) if s.groups.contains_key(*id) => written_group(s, ctx, id),
        ("GET", ["Groups", id]) => error(404, None, &format!("Group {id} not found")).into(),
        ("POST", ["Users"]) => post_user(s, ctx),
        ("POST", ["Groups"]) => post_group(s, ctx),
        ("PUT", ["Users", id]) => put_user(s, ctx, id),
        ("PATCH", ["Users", id]) => patch_user(s, ctx, id),
        ("PATCH", ["Groups", id]) => patch_group(s, ctx, id),
        ("PUT", ["Groups", id]) => put_group(s, ctx, id),
        ("DELETE", ["Users", id]) => delete_user(s, ctx, id),
        ("DELETE", ["Groups", id]) => delete_group(s, ctx, id),
        (
            _,
            [
                "Users" | "Groups" | "ServiceProviderConfig" | "ResourceTypes" | "Schemas",
                ..,
            ],
        ) => error(405, None, &format!("{method} is not allowed here")).into(),
        _ => error(404, None, "no such endpoint").into(),
    }
}

/// The attributes of the core schemas the simulator stores and returns; the rest of RFC 7643
/// §8.7.1 (`name`, `phoneNumbers`, `addresses`...) is not modelled, so not advertised.
const MODELLED: &[(&str, &[&str])] = &[
    (
        USER_SCHEMA,
        &["userName", "displayName", "active", "emails", "groups"],
    ),
    (GROUP_SCHEMA, &["displayName", "members"]),
];

/// `GET /Schemas` (RFC 7644 §4): the core User and Group schemas of RFC 7643 §8.7.1 (vendored
/// in `specs/scim`), cut down to the attributes the simulator models.
fn schemas(base: &str) -> Vec<Value> {
    let vendored = [
        include_str!("../../specs/scim/rfc7643-section-8.7/User.json"),
        include_str!("../../specs/scim/rfc7643-section-8.7/Group.json"),
    ];
    vendored
        .iter()
        .zip(MODELLED)
        .map(|(text, (id, keep))| {
            let mut schema: Value = serde_json::from_str(text).expect("a vendored RFC 7643 schema");
            schema["schemas"] = json!(["urn:ietf:params:scim:schemas:core:2.0:Schema"]);
            if let Some(attributes) = schema["attributes"].as_array_mut() {
                attributes.retain(|a| a["name"].as_str().is_some_and(|n| keep.contains(&n)));
                // RFC 7643 §4.2 calls a group's displayName REQUIRED (its §8.7.1
                // representation says `"required": false`); the simulator requires it.
                for a in attributes.iter_mut() {
                    if *id == GROUP_SCHEMA && a["name"] == "displayName" {
                        a["required"] = json!(true);
                    }
                }
            }
            schema["meta"] = json!({
                "resourceType": "Schema",
                "location": format!("{base}/Schemas/{id}"),
            });
            schema
        })
        .collect()
}

/// `GET /ResourceTypes` (RFC 7643 §6): User and Group.
fn resource_types(base: &str) -> Vec<Value> {
    [
        ("User", "/Users", USER_SCHEMA),
        ("Group", "/Groups", GROUP_SCHEMA),
    ]
    .into_iter()
    .map(|(name, endpoint, schema)| {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": name,
            "name": name,
            "endpoint": endpoint,
            "description": format!("{name} Account"),
            "schema": schema,
            "meta": {
                "resourceType": "ResourceType",
                "location": format!("{base}/ResourceTypes/{name}"),
            },
        })
    })
    .collect()
}

/// The resource of `all` whose `id` is `id`, else a 404.
fn one_of(all: Vec<Value>, id: &str, kind: &str) -> Answer {
    match all.into_iter().find(|r| r["id"] == id) {
        Some(r) => (200, Some(r)).into(),
        None => error(404, None, &format!("{kind} {id} not found")).into(),
    }
}

fn user_missing(id: &str) -> (u16, Option<Value>) {
    error(404, None, &format!("User {id} not found"))
}

fn spc(settings: &ScimSettings) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://example.test/scim",
        "patch": {"supported": settings.patch_supported},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": settings.max_results},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": settings.etag_supported},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "Authentication scheme using the OAuth Bearer Token Standard",
        }],
        "meta": {"resourceType": "ServiceProviderConfig"},
    })
}

/// `startIndex` (1-based, less than 1 read as 1) and `count` (capped at `maxResults`);
/// a non-number is a 400 `invalidValue`.
fn paging(ctx: &Ctx<'_>) -> Result<(usize, usize), (u16, Option<Value>)> {
    let num = |k: &str, default: i64| -> Result<i64, (u16, Option<Value>)> {
        match ctx.query.get(k) {
            None => Ok(default),
            Some(v) => v.parse::<i64>().map_err(|_| {
                error(
                    400,
                    Some("invalidValue"),
                    &format!("{k} {v:?} is not an integer"),
                )
            }),
        }
    };
    let start = num("startIndex", 1)?.max(1) as usize;
    let max = ctx.settings.max_results;
    let count = num("count", max as i64)?.clamp(0, max as i64) as usize;
    Ok((start, count))
}

fn list_response(start: usize, count: usize, all: Vec<Value>) -> (u16, Option<Value>) {
    let total = all.len();
    let page: Vec<Value> = all.into_iter().skip(start - 1).take(count).collect();
    (
        200,
        Some(json!({
            "schemas": [LIST_SCHEMA],
            "totalResults": total,
            "startIndex": start,
            "itemsPerPage": page.len(),
            "Resources": page,
        })),
    )
}

fn parse_filter(
    ctx: &Ctx<'_>,
    allowed: &[&str],
) -> Result<Option<filter::Comparison>, (u16, Option<Value>)> {
    let Some(text) = ctx.query.get("filter") else {
        return Ok(None);
    };
    let c = filter::parse(text).map_err(|why| error(400, Some("invalidFilter"), &why))?;
    let filterable = ctx.settings.filter_attributes.contains(&c.attribute)
        || (c.attribute == "members.value" || c.attribute == "displayName");
    if !allowed.contains(&c.attribute.as_str()) || !filterable {
        return Err(error(
            400,
            Some("invalidFilter"),
            &format!("filtering on {} is not supported", c.attribute),
        ));
    }
    Ok(Some(c))
}

/// A listing's page and filter.
type ListQuery = (usize, usize, Option<filter::Comparison>);

fn list_query(ctx: &Ctx<'_>, allowed: &[&str]) -> Result<ListQuery, (u16, Option<Value>)> {
    let (start, count) = paging(ctx)?;
    let c = parse_filter(ctx, allowed)?;
    Ok((start, count, c.filter(|_| !ctx.settings.filter_ignored)))
}

fn list_users(s: &State, ctx: &Ctx<'_>) -> (u16, Option<Value>) {
    let (start, count, c) = match list_query(ctx, &["userName", "externalId", "emails.value", "id"])
    {
        Ok(q) => q,
        Err(e) => return e,
    };
    let all = s
        .users
        .iter()
        .filter(|(id, u)| match &c {
            None => true,
            Some(c) => match c.attribute.as_str() {
                "userName" => u.user_name.eq_ignore_ascii_case(&c.value),
                "emails.value" => u.emails.iter().any(|e| {
                    e["value"]
                        .as_str()
                        .is_some_and(|e| e.eq_ignore_ascii_case(&c.value))
                }),
                "externalId" => u.external_id.as_deref() == Some(c.value.as_str()),
                _ => id.as_str() == c.value,
            },
        })
        .map(|(id, u)| user_json(s, ctx.settings, id, u))
        .collect();
    list_response(start, count, all)
}

fn list_groups(s: &State, ctx: &Ctx<'_>) -> (u16, Option<Value>) {
    let (start, count, c) = match list_query(ctx, &["members.value", "displayName", "id"]) {
        Ok(q) => q,
        Err(e) => return e,
    };
    let all = s
        .groups
        .iter()
        .filter(|(id, g)| match &c {
            None => true,
            Some(c) => match c.attribute.as_str() {
                "members.value" => g.members.contains(&c.value),
                "displayName" => g.display_name == c.value,
                _ => id.as_str() == c.value,
            },
        })
        .map(|(id, g)| group_json(s, ctx.settings, id, g))
        .collect();
    list_response(start, count, all)
}

/// A stale `If-Match` (when ETags are supported) as a 412.
fn precondition(ctx: &Ctx<'_>, version: u64) -> Option<Answer> {
    let given = ctx.if_match?;
    if !ctx.settings.etag_supported || given == "*" || given == etag(version) {
        return None;
    }
    Some(
        error(
            412,
            None,
            "The resource changed: If-Match does not match its ETag",
        )
        .into(),
    )
}

/// The answer with the resource's `ETag` header, when ETags are supported.
fn with_etag(answer: Answer, settings: &ScimSettings, version: u64) -> Answer {
    if settings.etag_supported {
        answer.header("etag", etag(version))
    } else {
        answer
    }
}

fn written_user(s: &State, ctx: &Ctx<'_>, id: &str) -> Answer {
    let u = &s.users[id];
    with_etag(
        Answer::new(200, Some(user_json(s, ctx.settings, id, u))),
        ctx.settings,
        u.version,
    )
}

fn written_group(s: &State, ctx: &Ctx<'_>, id: &str) -> Answer {
    let g = &s.groups[id];
    with_etag(
        Answer::new(200, Some(group_json(s, ctx.settings, id, g))),
        ctx.settings,
        g.version,
    )
}

fn set_active(ctx: &Ctx<'_>, u: &mut User, value: &Value) -> Result<(), Answer> {
    let Some(active) = value.as_bool() else {
        return Err(error(400, Some("invalidValue"), "active must be a boolean").into());
    };
    if active && u.active == Some(false) && ctx.settings.reactivation_refused {
        return Err(error(
            400,
            Some("mutability"),
            "a deactivated user cannot be reactivated",
        )
        .into());
    }
    u.active = Some(active);
    Ok(())
}

/// The writable attributes of a user in a POST or PUT body.
struct UserBody {
    user_name: String,
    emails: Vec<Value>,
    external_id: Option<String>,
    display_name: Option<String>,
    active: Value,
}

/// Reads a POST or PUT body: `schemas` must hold the core User schema and `userName` is
/// required; an `id` other than `id` (for a POST: any `id`, which the provider assigns) is a
/// 400 `mutability`.
fn user_body(ctx: &Ctx<'_>, id: Option<&str>) -> Result<UserBody, Answer> {
    let Some(body) = ctx.body.filter(|b| b.is_object()) else {
        return Err(error(400, Some("invalidSyntax"), "the body must be a JSON object").into());
    };
    let schemas_ok = body["schemas"]
        .as_array()
        .is_some_and(|a| a.iter().any(|s| s == USER_SCHEMA));
    if !schemas_ok {
        return Err(error(
            400,
            Some("invalidSyntax"),
            "schemas must list the core User schema",
        )
        .into());
    }
    let Some(user_name) = body["userName"].as_str().filter(|n| !n.is_empty()) else {
        return Err(error(400, Some("invalidValue"), "userName is required").into());
    };
    if body.get("id").is_some_and(|v| id.is_none_or(|id| v != id)) {
        return Err(error(400, Some("mutability"), "id is immutable").into());
    }
    let emails = match body.get("emails") {
        None | Some(Value::Null) => Vec::new(),
        Some(e) => values_of(e, "emails")?,
    };
    Ok(UserBody {
        user_name: user_name.to_owned(),
        emails,
        external_id: body["externalId"].as_str().map(str::to_owned),
        display_name: body["displayName"].as_str().map(str::to_owned),
        active: body.get("active").cloned().unwrap_or(json!(true)),
    })
}

/// A `userName` another user than `except` holds (ignoring ASCII case): a 409 `uniqueness`.
fn user_name_taken(s: &State, user_name: &str, except: Option<&str>) -> Option<Answer> {
    s.users
        .iter()
        .any(|(id, u)| Some(id.as_str()) != except && u.user_name.eq_ignore_ascii_case(user_name))
        .then(|| error(409, Some("uniqueness"), "userName is already taken").into())
}

/// `POST /Users` (RFC 7644 §3.3): 201 with the new user.
fn post_user(s: &mut State, ctx: &Ctx<'_>) -> Answer {
    let body = match user_body(ctx, None) {
        Ok(b) => b,
        Err(a) => return a,
    };
    if let Some(a) = user_name_taken(s, &body.user_name, None) {
        return a;
    }
    let mut user = User {
        user_name: body.user_name,
        external_id: body.external_id,
        display_name: body.display_name,
        emails: body.emails,
        active: Some(true),
        version: 1,
        created: now_stamp(),
        modified: now_stamp(),
    };
    if let Err(a) = set_active(ctx, &mut user, &body.active) {
        return a;
    }
    s.next += 1;
    let id = format!("u{:06}-{}", s.next, uuid::Uuid::new_v4().simple());
    s.users.insert(id.clone(), user);
    Answer {
        status: 201,
        ..written_user(s, ctx, &id)
    }
}

fn put_user(s: &mut State, ctx: &Ctx<'_>, id: &str) -> Answer {
    let Some(u) = s.users.get(id) else {
        return user_missing(id).into();
    };
    if let Some(a) = precondition(ctx, u.version) {
        return a;
    }
    let body = match user_body(ctx, Some(id)) {
        Ok(b) => b,
        Err(a) => return a,
    };
    if let Some(a) = user_name_taken(s, &body.user_name, Some(id)) {
        return a;
    }
    let mut next = u.clone();
    if let Err(a) = set_active(ctx, &mut next, &body.active) {
        return a;
    }
    next.user_name = body.user_name;
    next.emails = body.emails;
    next.external_id = body.external_id;
    next.display_name = body.display_name;
    next.version += 1;
    next.modified = now_stamp();
    s.users.insert(id.to_owned(), next);
    written_user(s, ctx, id)
}

/// The `Operations` of a PATCH body, after checking its schema; op names lower case.
fn operations(ctx: &Ctx<'_>) -> Result<Vec<(String, Option<String>, Value)>, Answer> {
    if !ctx.settings.patch_supported {
        return Err(error(501, None, "PATCH is not supported").into());
    }
    let Some(body) = ctx.body.filter(|b| b.is_object()) else {
        return Err(error(400, Some("invalidSyntax"), "the body must be a JSON object").into());
    };
    if body["schemas"] != json!([PATCH_SCHEMA]) {
        return Err(error(400, Some("invalidSyntax"), "schemas must be [PatchOp]").into());
    }
    let Some(ops) = body["Operations"].as_array().filter(|o| !o.is_empty()) else {
        return Err(error(400, Some("invalidSyntax"), "Operations is required").into());
    };
    let mut out = Vec::new();
    for op in ops {
        let name = op["op"].as_str().unwrap_or_default();
        if !matches!(name, "add" | "replace" | "remove") {
            return Err(error(
                400,
                Some("invalidSyntax"),
                &format!("op {name:?} is unknown"),
            )
            .into());
        }
        out.push((
            name.to_owned(),
            op["path"].as_str().map(str::to_owned),
            op.get("value").cloned().unwrap_or(Value::Null),
        ));
    }
    Ok(out)
}

/// The values of a multi-valued attribute in a PATCH or a body: an array of objects with a
/// string `value` (a single object is one value), else a 400 `invalidValue`.
fn values_of(value: &Value, attribute: &str) -> Result<Vec<Value>, Answer> {
    let items = match value {
        Value::Array(a) => a.as_slice(),
        Value::Object(_) => std::slice::from_ref(value),
        _ => &[],
    };
    if items.is_empty() && !value.is_array() {
        return Err(error(
            400,
            Some("invalidValue"),
            &format!("{attribute} must be an array of objects with a value"),
        )
        .into());
    }
    items
        .iter()
        .map(|i| {
            i["value"].as_str().map(|_| i.clone()).ok_or_else(|| {
                error(
                    400,
                    Some("invalidValue"),
                    &format!("each of {attribute} needs a string value"),
                )
                .into()
            })
        })
        .collect()
}

/// A string attribute's new value: a string for add/replace, `None` for remove.
fn string_of(op: &str, value: &Value, attribute: &str) -> Result<Option<String>, Answer> {
    if op == "remove" {
        return Ok(None);
    }
    value.as_str().map(|v| Some(v.to_owned())).ok_or_else(|| {
        error(
            400,
            Some("invalidValue"),
            &format!("{attribute} must be a string"),
        )
        .into()
    })
}

/// The (op, path, value) triples of a PATCH, a path-less add/replace spread over its object's
/// keys.
fn targets(
    ops: Vec<(String, Option<String>, Value)>,
) -> Result<Vec<(String, String, Value)>, Answer> {
    let mut out = Vec::new();
    for (op, path, value) in ops {
        match (op.as_str(), path) {
            (_, Some(p)) => out.push((op, p, value)),
            ("remove", None) => {
                return Err(error(400, Some("noTarget"), "remove needs a path").into());
            }
            (_, None) => match value.as_object() {
                Some(m) => out.extend(m.iter().map(|(k, v)| (op.clone(), k.clone(), v.clone()))),
                None => {
                    return Err(error(400, Some("invalidValue"), "value must be an object").into());
                }
            },
        }
    }
    Ok(out)
}

fn invalid_path(op: &str, path: &str) -> Answer {
    error(
        400,
        Some("invalidPath"),
        &format!("{op} of path {path:?} is not supported"),
    )
    .into()
}

/// One PATCH operation on a user: `active`, `displayName`, `externalId`, `userName` (not
/// removable: it is required), `emails` (add appends, replace replaces, remove clears).
fn patch_user_op(
    s: &State,
    ctx: &Ctx<'_>,
    id: &str,
    next: &mut User,
    (op, path, value): (String, String, Value),
) -> Result<(), Answer> {
    match path.as_str() {
        "active" if op == "remove" => next.active = None,
        "active" => set_active(ctx, next, &value)?,
        "displayName" => next.display_name = string_of(&op, &value, "displayName")?,
        "externalId" => next.external_id = string_of(&op, &value, "externalId")?,
        "userName" => match string_of(&op, &value, "userName")? {
            Some(n) if !n.is_empty() => {
                if let Some(a) = user_name_taken(s, &n, Some(id)) {
                    return Err(a);
                }
                next.user_name = n;
            }
            _ => return Err(error(400, Some("mutability"), "userName is required").into()),
        },
        "emails" => match op.as_str() {
            "remove" => next.emails.clear(),
            "replace" => next.emails = values_of(&value, "emails")?,
            _ => {
                for e in values_of(&value, "emails")? {
                    if !next.emails.iter().any(|x| x["value"] == e["value"]) {
                        next.emails.push(e);
                    }
                }
            }
        },
        _ => return Err(invalid_path(&op, &path)),
    }
    Ok(())
}

fn patch_user(s: &mut State, ctx: &Ctx<'_>, id: &str) -> Answer {
    let Some(u) = s.users.get(id) else {
        return user_missing(id).into();
    };
    if let Some(a) = precondition(ctx, u.version) {
        return a;
    }
    let targets = match operations(ctx).and_then(targets) {
        Ok(t) => t,
        Err(a) => return a,
    };
    let mut next = u.clone();
    for t in targets {
        if let Err(a) = patch_user_op(s, ctx, id, &mut next, t) {
            return a;
        }
    }
    next.version += 1;
    next.modified = now_stamp();
    s.users.insert(id.to_owned(), next);
    written_user(s, ctx, id)
}

/// One PATCH operation on a group: `members` (add existing users; replace; remove all, or one
/// by `members[value eq "id"]`), `displayName` (not removable), `externalId`.
fn patch_group_op(
    s: &State,
    next: &mut Group,
    (op, path, value): (String, String, Value),
) -> Result<(), Answer> {
    match (op.as_str(), path.as_str()) {
        ("add" | "replace", "members") => {
            let ids: Vec<String> = values_of(&value, "members")?
                .iter()
                .filter_map(|m| m["value"].as_str().map(str::to_owned))
                .collect();
            if let Some(m) = ids.iter().find(|m| !s.users.contains_key(*m)) {
                return Err(error(400, Some("invalidValue"), &format!("no user {m}")).into());
            }
            if op == "replace" {
                next.members.clear();
            }
            next.members.extend(ids);
        }
        ("remove", "members") => next.members.clear(),
        ("remove", p) if p.starts_with("members[") => match filter::parse(p) {
            Ok(c) if c.attribute == "members.value" => {
                next.members.remove(&c.value);
            }
            _ => return Err(invalid_path(&op, p)),
        },
        (_, "displayName") => match string_of(&op, &value, "displayName")? {
            Some(n) if !n.is_empty() => next.display_name = n,
            _ => return Err(error(400, Some("mutability"), "displayName is required").into()),
        },
        (_, "externalId") => next.external_id = string_of(&op, &value, "externalId")?,
        (_, p) => return Err(invalid_path(&op, p)),
    }
    Ok(())
}

fn patch_group(s: &mut State, ctx: &Ctx<'_>, id: &str) -> Answer {
    let Some(g) = s.groups.get(id) else {
        return error(404, None, &format!("Group {id} not found")).into();
    };
    if let Some(a) = precondition(ctx, g.version) {
        return a;
    }
    let targets = match operations(ctx).and_then(targets) {
        Ok(t) => t,
        Err(a) => return a,
    };
    let mut next = g.clone();
    for t in targets {
        if let Err(a) = patch_group_op(s, &mut next, t) {
            return a;
        }
    }
    let g = s.groups.get_mut(id).expect("checked above");
    if g.members != next.members
        || g.display_name != next.display_name
        || g.external_id != next.external_id
    {
        next.version += 1;
        *g = next;
    }
    written_group(s, ctx, id)
}

/// Reads a group's POST or PUT body: `schemas` must hold the core Group schema,
/// `displayName` is required and each member must be an existing user.
fn group_body(s: &State, ctx: &Ctx<'_>) -> Result<Group, Answer> {
    let Some(body) = ctx.body.filter(|b| b.is_object()) else {
        return Err(error(400, Some("invalidSyntax"), "the body must be a JSON object").into());
    };
    if !body["schemas"]
        .as_array()
        .is_some_and(|a| a.iter().any(|s| s == GROUP_SCHEMA))
    {
        return Err(error(
            400,
            Some("invalidSyntax"),
            "schemas must list the core Group schema",
        )
        .into());
    }
    let Some(name) = body["displayName"].as_str().filter(|n| !n.is_empty()) else {
        return Err(error(400, Some("invalidValue"), "displayName is required").into());
    };
    let mut members = BTreeSet::new();
    for m in body["members"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        match m["value"].as_str() {
            Some(v) if s.users.contains_key(v) => {
                members.insert(v.to_owned());
            }
            _ => return Err(error(400, Some("invalidValue"), "a member is not a user").into()),
        }
    }
    Ok(Group {
        display_name: name.to_owned(),
        external_id: body["externalId"].as_str().map(str::to_owned),
        members,
        version: 1,
    })
}

/// `POST /Groups` (RFC 7644 §3.3): 201 with the new group.
fn post_group(s: &mut State, ctx: &Ctx<'_>) -> Answer {
    let group = match group_body(s, ctx) {
        Ok(b) => b,
        Err(a) => return a,
    };
    s.next += 1;
    let id = format!("g{:06}", s.next);
    s.groups.insert(id.clone(), group);
    Answer {
        status: 201,
        ..written_group(s, ctx, &id)
    }
}

fn put_group(s: &mut State, ctx: &Ctx<'_>, id: &str) -> Answer {
    let Some(g) = s.groups.get(id) else {
        return error(404, None, &format!("Group {id} not found")).into();
    };
    if let Some(a) = precondition(ctx, g.version) {
        return a;
    }
    let body = match group_body(s, ctx) {
        Ok(b) => b,
        Err(a) => return a,
    };
    let g = s.groups.get_mut(id).expect("checked above");
    *g = Group {
        version: g.version + 1,
        ..body
    };
    written_group(s, ctx, id)
}

/// `DELETE /Groups/{id}`: 204, 404 when gone.
fn delete_group(s: &mut State, ctx: &Ctx<'_>, id: &str) -> Answer {
    let Some(g) = s.groups.get(id) else {
        return error(404, None, &format!("Group {id} not found")).into();
    };
    if let Some(a) = precondition(ctx, g.version) {
        return a;
    }
    s.groups.remove(id);
    (204, None).into()
}

fn delete_user(s: &mut State, ctx: &Ctx<'_>, id: &str) -> Answer {
    if !ctx.settings.delete_supported {
        return error(405, None, "DELETE is not supported; set active to false").into();
    }
    let Some(u) = s.users.get_mut(id) else {
        return user_missing(id).into();
    };
    if let Some(a) = precondition(ctx, u.version) {
        return a;
    }
    if ctx.settings.delete_deactivates {
        u.active = Some(false);
        u.version += 1;
        return (204, None).into();
    }
    s.users.remove(id);
    for g in s.groups.values_mut() {
        g.members.remove(id);
    }
    (204, None).into()
}
