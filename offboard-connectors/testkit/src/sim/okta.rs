//! A simulated Okta tenant: the Management API on loopback, stateful, rate limited, with fault
//! injection and a recording of every request.
//!
//! Built on wiremock: one [`MockServer`] whose single responder routes requests over shared
//! state. It serves exactly the operations in [`OktaTenant::ROUTES`] (each exists with the same
//! method in Okta's official spec; a test checks it), with Okta's status codes and error bodies
//! (`errorCode`, `errorSummary`, `errorLink`, `errorId`, `errorCauses`).
//!
//! # Behaviour modelled
//! - Users: every status of Okta's `UserStatus` ([`OktaTenant::STATUSES`]), `profile.login`,
//!   `profile.email`,
//!   `profile.secondEmail`, `lastUpdated` (moved by every status change). `GET /api/v1/users/{id}`
//!   takes an id or a login. The listing omits `DEPROVISIONED` users unless `search` is used;
//!   it pages with `limit` (≤ 200) and an opaque `after` given in `Link: <…>; rel="next"`, and
//!   sorts search results by `sortBy=lastUpdated` (`sortOrder=asc|desc`, ties by id).
//! - `search`: a strict parser of `attr eq "value"` terms joined by ` or ` (attributes
//!   `profile.login`, `profile.email`, `profile.secondEmail`, `id`, `status`; `\"` and `\\`
//!   escapes), plus `lastUpdated eq|gt|ge|lt|le "<RFC 3339>"`. Anything else is a 400
//!   `E0000031`. Comparison ignores ASCII case only.
//! - Lifecycle: suspend only from `ACTIVE`, unsuspend only from `SUSPENDED`, unlock only from
//!   `LOCKED_OUT` (to `ACTIVE`) (else 400 `E0000001`); so a `STAGED`, `PROVISIONED`,
//!   `PASSWORD_EXPIRED`, `RECOVERY` or `LOCKED_OUT` user cannot be suspended. Deactivation is
//!   allowed from every status but `DEPROVISIONED` (a 400 `E0000001` there); it ends
//!   sessions, revokes tokens and grants and removes direct app assignments (group
//!   memberships stay); activate of an `ACTIVE` user is a 403 `E0000016`;
//!   `DELETE /api/v1/users/{id}` deactivates first and deletes on the second call.
//! - Sessions (not listable through the API, as in Okta), OAuth refresh tokens per client,
//!   consent grants, factors, admin role assignments: the user's own (`assignmentType: USER`,
//!   removable through the user) and their groups' (`GROUP`, listed for the user; deleting one
//!   through the user is a 404, as it is not the user's assignment).
//! - Groups (`OKTA_GROUP`, `APP_GROUP`, `BUILT_IN`); only `OKTA_GROUP` memberships can be changed
//!   (others: 400 `E0000001`). Removing a non-member is a 204, as is adding a member.
//! - Apps: direct (`USER`-scoped) assignments and assignments through a group (`GROUP`-scoped,
//!   following the membership). App links list both, and nothing for a `DEPROVISIONED` user.
//!   Unassigning a `GROUP`-scoped assignment is a 400 `E0000001`.
//! - Rate limits: a per-minute budget per endpoint family ([`RateFamily`]), with
//!   `X-Rate-Limit-Limit/-Remaining/-Reset` on every response and a 429 `E0000047` when spent;
//!   a concurrency limit (429 with limit and remaining 0).
//! - Faults ([`Faults`], the shared layer's): a share of 500s and 429s, of lost answers (the
//!   change made, the answer held back), added latency, and the next N requests failing with
//!   a chosen status.
//! - Authentication: `Authorization: SSWS <token>` (or `Bearer <token>` when configured);
//!   anything else is a 401 `E0000011`.
//!
//! # Example
//! ```
//! use offboard_testkit::sim::okta::{NewUser, OktaTenant};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let okta = OktaTenant::start().await;
//! let id = okta.add_user(NewUser::active("jane@example.com"));
//! assert_eq!(okta.user(&id).unwrap().status, "ACTIVE");
//! # }
//! ```

mod fixture;
mod routes;
mod search;

pub use fixture::OktaFixture;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use super::layer::{self, Handler, Layer, Window, respond};
pub use super::layer::{Faults, RecordedRequest};

/// A group's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupType {
    /// Managed in Okta; memberships can be changed.
    OktaGroup,
    /// Imported from an app (AD, LDAP); memberships are managed there.
    AppGroup,
    /// Built in (`Everyone`); cannot be changed.
    BuiltIn,
}

impl GroupType {
    /// Okta's name of the type.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OktaGroup => "OKTA_GROUP",
            Self::AppGroup => "APP_GROUP",
            Self::BuiltIn => "BUILT_IN",
        }
    }
}

/// An endpoint family with its own per-minute budget (Okta's rate-limit table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RateFamily {
    /// `GET`/`POST /api/v1/users`.
    UsersList,
    /// `GET /api/v1/users/{idOrLogin}`.
    UserGet,
    /// `POST`/`PUT`/`DELETE /api/v1/users/{id}` and its sub-resources.
    UserWrite,
    /// `/api/v1/groups/{id}`.
    Groups,
    /// `/api/v1/apps`.
    AppsList,
    /// `/api/v1/apps/{id}`.
    App,
    /// Most other `/api/v1` endpoints.
    Other,
}

impl RateFamily {
    /// The family of a request path as recorded (`/api/v1/users/00u1/lifecycle/suspend`), by
    /// Okta's rate-limit table: what a benchmark groups requests by to compute its bound.
    pub fn of_path(method: &str, path: &str) -> Self {
        let segments: Vec<&str> = path.split('/').skip(1).collect();
        Self::of(method, &segments)
    }

    fn of(method: &str, segments: &[&str]) -> Self {
        match (method, segments) {
            (_, ["api", "v1", "users"]) => Self::UsersList,
            ("GET", ["api", "v1", "users", _]) => Self::UserGet,
            (m, ["api", "v1", "users", _, ..]) if m != "GET" => Self::UserWrite,
            (_, ["api", "v1", "groups", ..]) => Self::Groups,
            (_, ["api", "v1", "apps"]) => Self::AppsList,
            (_, ["api", "v1", "apps", ..]) => Self::App,
            _ => Self::Other,
        }
    }
}

/// Per-minute budgets per [`RateFamily`] and the concurrency limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    /// Requests per minute per family.
    pub per_minute: BTreeMap<RateFamily, u32>,
    /// Requests in flight at once (counted over the added latency).
    pub concurrency: u32,
    /// The length of a budget window, in whole seconds (Okta: 60).
    pub window_secs: u64,
}

impl RateLimits {
    /// Okta's Enterprise plan: users 600, user get 1000, user writes 600, groups 600, apps
    /// list 100, app 600, other 600 per minute; 75 concurrent.
    pub fn enterprise() -> Self {
        Self {
            per_minute: BTreeMap::from([
                (RateFamily::UsersList, 600),
                (RateFamily::UserGet, 1000),
                (RateFamily::UserWrite, 600),
                (RateFamily::Groups, 600),
                (RateFamily::AppsList, 100),
                (RateFamily::App, 600),
                (RateFamily::Other, 600),
            ]),
            concurrency: 75,
            window_secs: 60,
        }
    }

    /// Sets one family's budget.
    pub fn with(mut self, family: RateFamily, per_minute: u32) -> Self {
        self.per_minute.insert(family, per_minute);
        self
    }

    /// Sets the window length in seconds (at least 1); tests use short windows.
    pub fn with_window_secs(mut self, secs: u64) -> Self {
        self.window_secs = secs.max(1);
        self
    }

    /// Sets the concurrency limit.
    pub fn with_concurrency(mut self, concurrency: u32) -> Self {
        self.concurrency = concurrency;
        self
    }
}

impl Default for RateLimits {
    fn default() -> Self {
        Self::enterprise()
    }
}

/// A user to create with [`OktaTenant::add_user`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// `profile.login`.
    pub login: String,
    /// `profile.email` (default: the login).
    pub email: String,
    /// `profile.secondEmail`.
    pub second_email: Option<String>,
    /// One of [`OktaTenant::STATUSES`].
    pub status: String,
    /// Group ids.
    pub groups: Vec<String>,
    /// Directly (`USER`-scoped) assigned app ids.
    pub apps: Vec<String>,
    /// Open sessions.
    pub sessions: u32,
    /// OAuth client ids holding a refresh token of the user.
    pub oauth_tokens: Vec<String>,
    /// Consent grants: (client id, scope).
    pub grants: Vec<(String, String)>,
    /// Enrolled factor types (`push`, `sms`, `token:software:totp`...).
    pub factors: Vec<String>,
    /// Admin role types (`SUPER_ADMIN`, `APP_ADMIN`...).
    pub admin_roles: Vec<String>,
    /// `profile.managerId`: the Okta user id of the manager.
    pub manager_id: Option<String>,
}

impl NewUser {
    /// An `ACTIVE` user with nothing else.
    pub fn active(login: impl Into<String>) -> Self {
        let login = login.into();
        Self {
            email: login.clone(),
            login,
            second_email: None,
            status: "ACTIVE".into(),
            groups: Vec::new(),
            apps: Vec::new(),
            sessions: 0,
            oauth_tokens: Vec::new(),
            grants: Vec::new(),
            factors: Vec::new(),
            admin_roles: Vec::new(),
            manager_id: None,
        }
    }
}

/// A user's state, read directly from the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OktaUserState {
    /// Id.
    pub id: String,
    /// Status.
    pub status: String,
    /// `profile.login`.
    pub login: String,
    /// Group ids.
    pub groups: BTreeSet<String>,
    /// Directly assigned app ids.
    pub apps: BTreeSet<String>,
    /// Open sessions.
    pub sessions: u32,
    /// Client ids with refresh tokens.
    pub oauth_tokens: Vec<String>,
    /// Grant ids.
    pub grants: Vec<String>,
    /// Factor ids.
    pub factors: Vec<String>,
    /// Role assignment ids.
    pub admin_roles: Vec<String>,
}

#[derive(Debug, Clone)]
struct User {
    id: String,
    status: String,
    login: String,
    email: String,
    second_email: Option<String>,
    groups: BTreeSet<String>,
    apps: BTreeSet<String>,
    sessions: u32,
    tokens: Vec<(String, String)>,
    grants: Vec<(String, String, String)>,
    factors: Vec<(String, String)>,
    roles: Vec<(String, String)>,
    manager_id: Option<String>,
    created: String,
    last_updated: String,
}

#[derive(Debug, Clone)]
struct Group {
    name: String,
    kind: GroupType,
}

#[derive(Debug, Clone)]
struct App {
    label: String,
    name: String,
    groups: BTreeSet<String>,
}

#[derive(Debug, Default)]
struct State {
    users: BTreeMap<String, User>,
    groups: BTreeMap<String, Group>,
    apps: BTreeMap<String, App>,
    /// Admin roles assigned to groups: group id -> (role assignment id, role type).
    group_roles: BTreeMap<String, Vec<(String, String)>>,
    next: u64,
    /// Recording, faults and counters; injected failures are scoped by endpoint family.
    layer: Layer<RateFamily>,
    limits: RateLimits,
    windows: BTreeMap<RateFamily, Window>,
    /// Writes (not GET) answered 2xx, by `METHOD path`.
    served_writes: BTreeMap<String, u64>,
    /// The `after` cursor of the page just listed, when more pages follow.
    next_after: Option<String>,
    /// The server's base URL, for `Link` headers.
    base: String,
}

impl State {
    fn id(&mut self, prefix: &str) -> String {
        self.next += 1;
        // Okta ids: 20 alphanumerics with a type prefix.
        format!("{prefix}{:017}", self.next)
    }
}

#[derive(Debug)]
struct Shared {
    token: String,
    bearer: Mutex<Option<String>>,
    state: Mutex<State>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        layer::lock(&self.state)
    }
}

/// The simulated Okta tenant. See the [module docs](self).
#[derive(Debug)]
pub struct OktaTenant {
    server: MockServer,
    shared: Arc<Shared>,
}

/// Now, as Okta writes `created` and `lastUpdated` (UTC, milliseconds).
fn now_stamp() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn assert_status(status: &str) {
    assert!(
        OktaTenant::STATUSES.contains(&status),
        "{status:?} is not an Okta user status ({:?})",
        OktaTenant::STATUSES
    );
}

fn error_body(code: &str, summary: &str, causes: &[&str]) -> Value {
    json!({
        "errorCode": code,
        "errorSummary": summary,
        "errorLink": code,
        "errorId": format!("oaeSim{}", uuid::Uuid::new_v4().simple()),
        "errorCauses": causes.iter().map(|c| json!({"errorSummary": c})).collect::<Vec<_>>(),
    })
}

fn not_found(what: &str) -> (u16, Value) {
    (
        404,
        error_body(
            "E0000007",
            &format!("Not found: Resource not found: {what}"),
            &[],
        ),
    )
}

fn validation(op: &str, cause: &str) -> (u16, Value) {
    (
        400,
        error_body(
            "E0000001",
            &format!("Api validation failed: {op}"),
            &[cause],
        ),
    )
}

impl OktaTenant {
    /// Every route served, as `(METHOD, path template)` exactly as in Okta's spec.
    pub const ROUTES: &'static [(&'static str, &'static str)] = &[
        ("GET", "/api/v1/users"),
        ("GET", "/api/v1/users/{id}"),
        ("DELETE", "/api/v1/users/{id}"),
        ("POST", "/api/v1/users/{id}/lifecycle/suspend"),
        ("POST", "/api/v1/users/{id}/lifecycle/unsuspend"),
        ("POST", "/api/v1/users/{id}/lifecycle/deactivate"),
        ("POST", "/api/v1/users/{id}/lifecycle/activate"),
        ("POST", "/api/v1/users/{id}/lifecycle/reset_factors"),
        ("POST", "/api/v1/users/{id}/lifecycle/unlock"),
        ("DELETE", "/api/v1/users/{userId}/sessions"),
        ("GET", "/api/v1/users/{userId}/grants"),
        ("DELETE", "/api/v1/users/{userId}/grants"),
        ("GET", "/api/v1/users/{userId}/clients"),
        ("GET", "/api/v1/users/{userId}/clients/{clientId}/tokens"),
        ("DELETE", "/api/v1/users/{userId}/clients/{clientId}/tokens"),
        ("GET", "/api/v1/users/{userId}/factors"),
        ("DELETE", "/api/v1/users/{userId}/factors/{factorId}"),
        ("GET", "/api/v1/users/{id}/groups"),
        ("PUT", "/api/v1/groups/{groupId}/users/{userId}"),
        ("DELETE", "/api/v1/groups/{groupId}/users/{userId}"),
        ("GET", "/api/v1/users/{id}/appLinks"),
        ("GET", "/api/v1/apps/{appId}/users/{userId}"),
        ("DELETE", "/api/v1/apps/{appId}/users/{userId}"),
        ("GET", "/api/v1/users/{userId}/roles"),
        ("DELETE", "/api/v1/users/{userId}/roles/{roleAssignmentId}"),
    ];

    /// Every user status, as Okta's `UserStatus` enum lists them.
    pub const STATUSES: [&'static str; 8] = [
        "ACTIVE",
        "DEPROVISIONED",
        "LOCKED_OUT",
        "PASSWORD_EXPIRED",
        "PROVISIONED",
        "RECOVERY",
        "STAGED",
        "SUSPENDED",
    ];

    /// Starts a tenant with a random API token and [`RateLimits::enterprise`].
    pub async fn start() -> Self {
        Self::start_with(
            format!("sim-okta-{}", uuid::Uuid::new_v4().simple()),
            RateLimits::enterprise(),
        )
        .await
    }

    /// Starts a tenant accepting `SSWS <token>`, with these limits.
    pub async fn start_with(token: impl Into<String>, limits: RateLimits) -> Self {
        let shared = Arc::new(Shared {
            token: token.into(),
            bearer: Mutex::new(None),
            state: Mutex::new(State {
                limits,
                ..State::default()
            }),
        });
        Self::serve(shared).await
    }

    /// Starts a tenant that also accepts `Bearer <access_token>` (as minted by an OAuth
    /// token endpoint the test serves itself).
    pub async fn start_with_bearer(
        token: impl Into<String>,
        access_token: impl Into<String>,
        limits: RateLimits,
    ) -> Self {
        let shared = Arc::new(Shared {
            token: token.into(),
            bearer: Mutex::new(Some(access_token.into())),
            state: Mutex::new(State {
                limits,
                ..State::default()
            }),
        });
        Self::serve(shared).await
    }

    async fn serve(shared: Arc<Shared>) -> Self {
        let server = MockServer::start().await;
        layer::serve(&server, Arc::clone(&shared)).await;
        shared.state().base = server.uri();
        let tenant = Self { server, shared };
        tenant.add_group_with_id("00gEveryone000000000", "Everyone", GroupType::BuiltIn);
        tenant
    }

    /// Serves the org authorization server's token endpoint, `POST /oauth2/v1/token`, for the
    /// client-credentials grant with a `private_key_jwt` assertion (the assertion's signature
    /// is not checked: the test checks it), minting `access_token` (valid `expires_in` s),
    /// which the Management API then accepts as `Bearer`. A request without
    /// `grant_type=client_credentials` and a jwt-bearer `client_assertion_type` gets a 400
    /// `invalid_client`.
    pub async fn enable_oauth(&self, access_token: &str, expires_in: u64) {
        *layer::lock(&self.shared.bearer) = Some(access_token.to_owned());
        let body = json!({
            "token_type": "Bearer",
            "expires_in": expires_in,
            "access_token": access_token,
            "scope": "okta.users.manage okta.groups.manage okta.apps.manage okta.roles.manage",
        });
        Mock::given(wiremock::matchers::method("POST"))
            .and(wiremock::matchers::path("/oauth2/v1/token"))
            .respond_with(move |r: &Request| {
                let form: BTreeMap<String, String> =
                    url::form_urlencoded::parse(&r.body).into_owned().collect();
                let ok = form.get("grant_type").map(String::as_str) == Some("client_credentials")
                    && form.get("client_assertion_type").map(String::as_str)
                        == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
                    && form
                        .get("client_assertion")
                        .is_some_and(|a| a.split('.').count() == 3);
                if ok {
                    ResponseTemplate::new(200).set_body_json(body.clone())
                } else {
                    ResponseTemplate::new(400).set_body_json(json!({
                        "error": "invalid_client",
                        "error_description": "A client_assertion is required.",
                    }))
                }
            })
            .with_priority(1)
            .mount(&self.server)
            .await;
    }

    /// The base URL (`http://127.0.0.1:<port>`).
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// The API token it accepts as `SSWS <token>`.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// The built-in `Everyone` group's id; every user is a member.
    pub fn everyone(&self) -> &'static str {
        "00gEveryone000000000"
    }

    fn add_group_with_id(&self, id: &str, name: &str, kind: GroupType) {
        self.shared.state().groups.insert(
            id.to_owned(),
            Group {
                name: name.to_owned(),
                kind,
            },
        );
    }

    /// Adds a group; returns its id.
    pub fn add_group(&self, name: impl Into<String>, kind: GroupType) -> String {
        let mut s = self.shared.state();
        let id = s.id("00g");
        s.groups.insert(
            id.clone(),
            Group {
                name: name.into(),
                kind,
            },
        );
        id
    }

    /// Adds an app instance (`label`, e.g. `GitHub`); returns its id.
    pub fn add_app(&self, label: impl Into<String>) -> String {
        let mut s = self.shared.state();
        let id = s.id("0oa");
        let label = label.into();
        s.apps.insert(
            id.clone(),
            App {
                name: label.to_ascii_lowercase().replace(' ', "_"),
                label,
                groups: BTreeSet::new(),
            },
        );
        id
    }

    /// Assigns an admin role (`SUPER_ADMIN`, `APP_ADMIN`...) to a group: its members hold it
    /// through the group. Returns the role assignment's id.
    pub fn assign_role_to_group(&self, group: &str, role: impl Into<String>) -> String {
        let mut s = self.shared.state();
        let id = s.id("gra");
        s.group_roles
            .entry(group.to_owned())
            .or_default()
            .push((id.clone(), role.into()));
        id
    }

    /// Assigns an app to a group: members get a `GROUP`-scoped assignment.
    pub fn assign_app_to_group(&self, app: &str, group: &str) {
        if let Some(a) = self.shared.state().apps.get_mut(app) {
            a.groups.insert(group.to_owned());
        }
    }

    /// Creates a user (and puts it in `Everyone`); returns its id.
    ///
    /// Panics when the status is not one of [`OktaTenant::STATUSES`].
    pub fn add_user(&self, new: NewUser) -> String {
        assert_status(&new.status);
        let mut s = self.shared.state();
        let id = s.id("00u");
        let mut groups: BTreeSet<String> = new.groups.into_iter().collect();
        groups.insert(self.everyone().to_owned());
        let mut tokens = Vec::new();
        for client in new.oauth_tokens {
            let tid = s.id("oar");
            tokens.push((tid, client));
        }
        let mut grants = Vec::new();
        for (client, scope) in new.grants {
            let gid = s.id("oag");
            grants.push((gid, client, scope));
        }
        let mut factors = Vec::new();
        for t in new.factors {
            let fid = s.id("mfa");
            factors.push((fid, t));
        }
        let mut roles = Vec::new();
        for r in new.admin_roles {
            let rid = s.id("ra1");
            roles.push((rid, r));
        }
        s.users.insert(
            id.clone(),
            User {
                id: id.clone(),
                status: new.status,
                login: new.login,
                email: new.email,
                second_email: new.second_email,
                groups,
                apps: new.apps.into_iter().collect(),
                sessions: new.sessions,
                tokens,
                grants,
                factors,
                roles,
                manager_id: new.manager_id,
                created: now_stamp(),
                last_updated: now_stamp(),
            },
        );
        id
    }

    /// Deactivates a user as an administrator would in the Admin Console (`DEPROVISIONED`,
    /// sessions, tokens, grants and direct app assignments gone, `lastUpdated` now); `false`
    /// when there is no such user.
    pub fn deactivate_user(&self, id: &str) -> bool {
        let mut s = self.shared.state();
        s.users.get_mut(id).map(routes::deactivate).is_some()
    }

    /// Sets a user's status as an administrator (or Okta itself: a lockout, an expired
    /// password) would (`SUSPENDED`, `LOCKED_OUT`...), moving `lastUpdated` to now; `false`
    /// when there is no such user.
    ///
    /// Panics when the status is not one of [`OktaTenant::STATUSES`].
    pub fn set_status(&self, id: &str, status: &str) -> bool {
        assert_status(status);
        let mut s = self.shared.state();
        let Some(u) = s.users.get_mut(id) else {
            return false;
        };
        u.status = status.to_owned();
        u.last_updated = now_stamp();
        true
    }

    /// A user's `lastUpdated`, as the API reports it.
    pub fn last_updated(&self, id: &str) -> Option<String> {
        self.shared
            .state()
            .users
            .get(id)
            .map(|u| u.last_updated.clone())
    }

    /// Deletes a user outright, as an administrator would (no-op when gone).
    pub fn remove_user(&self, id: &str) {
        self.shared.state().users.remove(id);
    }

    /// A user's current state.
    pub fn user(&self, id: &str) -> Option<OktaUserState> {
        let s = self.shared.state();
        let u = s.users.get(id)?;
        Some(OktaUserState {
            id: u.id.clone(),
            status: u.status.clone(),
            login: u.login.clone(),
            groups: u.groups.clone(),
            apps: u.apps.clone(),
            sessions: u.sessions,
            oauth_tokens: u.tokens.iter().map(|(_, c)| c.clone()).collect(),
            grants: u.grants.iter().map(|(g, _, _)| g.clone()).collect(),
            factors: u.factors.iter().map(|(f, _)| f.clone()).collect(),
            admin_roles: u.roles.iter().map(|(r, _)| r.clone()).collect(),
        })
    }

    /// Every Management API request received so far, oldest first (the token endpoint of
    /// [`OktaTenant::enable_oauth`] is not recorded).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.state().layer.requests.clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.state().layer.requests.clear();
    }

    /// How many 429s the tenant has answered (budget, concurrency and injected).
    pub fn rate_limited_count(&self) -> u64 {
        self.shared.state().layer.rate_limited
    }

    /// How many times each write (any method but GET) was answered 2xx, by `METHOD path`:
    /// the side effects the tenant carried out (a fleet test checks each happened once).
    pub fn served_writes(&self) -> BTreeMap<String, u64> {
        self.shared.state().served_writes.clone()
    }

    /// Sets the fault knobs.
    pub fn set_faults(&self, faults: Faults) {
        self.shared.state().layer.faults = faults;
    }

    /// The next `count` requests (after authentication) fail with `status` (429 gets Okta's
    /// rate-limit body and headers; others `E0000009`).
    pub fn fail_next(&self, count: usize, status: u16) {
        self.shared
            .state()
            .layer
            .fail_next
            .push(None, status, count);
    }

    /// As [`OktaTenant::fail_next`], for requests of one endpoint family only (e.g. a 429 on
    /// the next user write while user listings keep working).
    pub fn fail_next_in(&self, family: RateFamily, count: usize, status: u16) {
        self.shared
            .state()
            .layer
            .fail_next
            .push(Some(family), status, count);
    }

    /// Replaces the rate limits (and starts new windows).
    pub fn set_limits(&self, limits: RateLimits) {
        let mut s = self.shared.state();
        s.limits = limits;
        s.windows.clear();
    }
}

/// Okta's answer to a request over a rate limit (`E0000047`).
fn too_many() -> ResponseTemplate {
    respond(
        429,
        Some(error_body(
            "E0000047",
            "API call exceeded rate limit due to too many requests.",
            &[],
        )),
    )
}

/// Okta's answer to an injected server error (`E0000009`).
fn internal_error(status: u16) -> ResponseTemplate {
    respond(
        status,
        Some(error_body("E0000009", "Internal Server Error", &[])),
    )
}

impl Handler for Shared {
    fn handle(&self, request: &Request) -> ResponseTemplate {
        let mut s = self.state();
        s.layer.requests.push(layer::record(request));
        let latency = s.layer.faults.latency;
        let auth = layer::authorization(request);
        let authorised = auth == format!("SSWS {}", self.token)
            || layer::lock(&self.bearer)
                .as_ref()
                .is_some_and(|b| auth == format!("Bearer {b}"));
        if !authorised {
            return respond(
                401,
                Some(error_body("E0000011", "Invalid token provided", &[])),
            )
            .set_delay(latency);
        }
        let method = request.method.as_str().to_owned();
        let segments = layer::segments(request.url.path());
        let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
        let family = RateFamily::of(&method, &segs);
        let now = layer::epoch_secs();

        // Concurrency: requests whose (added) latency has not elapsed are in flight.
        let concurrency = s.limits.concurrency;
        if !s.layer.in_flight.admit(Some(concurrency), latency) {
            return s
                .layer
                .throttled(too_many())
                .insert_header("x-rate-limit-limit", "0")
                .insert_header("x-rate-limit-remaining", "0")
                .insert_header("x-rate-limit-reset", (now + 1).to_string().as_str())
                .set_delay(latency);
        }

        // Per-minute budget of the family.
        let limit = s.limits.per_minute.get(&family).copied().unwrap_or(600);
        let window = Duration::from_secs(s.limits.window_secs.max(1));
        let counted =
            s.windows
                .entry(family)
                .or_default()
                .count(Duration::from_secs(now), window, limit);
        let (remaining, reset) = (counted.remaining, counted.ends.as_secs());
        let headers = move |t: ResponseTemplate| {
            t.insert_header("x-rate-limit-limit", limit.to_string().as_str())
                .insert_header("x-rate-limit-remaining", remaining.to_string().as_str())
                .insert_header("x-rate-limit-reset", reset.to_string().as_str())
                .set_delay(latency)
        };
        if !counted.admitted {
            return headers(s.layer.throttled(too_many()));
        }
        if let Some(status) = s.layer.fail_next.take(&family) {
            if status == 429 {
                return headers(s.layer.throttled(too_many()));
            }
            return headers(internal_error(status));
        }
        if s.layer.server_error() {
            return headers(internal_error(500));
        }
        if s.layer.throttle() {
            return headers(s.layer.throttled(too_many()));
        }
        let query: BTreeMap<String, String> = request.url.query_pairs().into_owned().collect();
        s.next_after = None;
        let (status, body) = routes::route(&mut s, &method, &segs, &query);
        if method != "GET" && (200..300).contains(&status) {
            *s.served_writes
                .entry(format!("{method} {}", request.url.path()))
                .or_default() += 1;
        }
        let dropped = s.layer.drop_answer();
        let mut response = headers(respond(status, body)).set_delay(s.layer.faults.delay(dropped));
        if let Some(after) = s.next_after.take() {
            let mut next = url::Url::parse(&s.base)
                .unwrap_or_else(|_| request.url.clone())
                .join(request.url.path())
                .unwrap_or_else(|_| request.url.clone());
            let pairs: Vec<(String, String)> = request
                .url
                .query_pairs()
                .into_owned()
                .filter(|(k, _)| k != "after")
                .collect();
            next.query_pairs_mut()
                .clear()
                .extend_pairs(pairs)
                .append_pair("after", &after);
            response = response.insert_header("link", format!("<{next}>; rel=\"next\"").as_str());
        }
        response
    }
}
