//! A simulated Google Workspace tenant: the Admin SDK Directory API on loopback, stateful, rate
//! limited, with fault injection and a recording of every request.
//!
//! Built on wiremock like [`crate::okta`]: one [`MockServer`] whose single responder routes
//! requests over shared state. It serves exactly the methods in [`GoogleTenant::ROUTES`] (each
//! is a method of the official discovery document `admin-directory_v1.offboarding.json`, with
//! the same HTTP method and path; a test checks it), with Google's status codes and error
//! bodies (`{"error": {"code", "message", "errors": [{"message", "domain", "reason"}],
//! "status"}}`).
//!
//! # Behaviour modelled
//! - Users: numeric string `id`, `primaryEmail`, `aliases`, `suspended`, `archived`,
//!   `orgUnitPath`, `includeInGlobalAddressList`, `isAdmin`. `{userKey}` is the id, the
//!   primary email or an alias (ASCII case ignored, nothing else: no wildcards, no folding).
//!   Deleted users answer 404 `notFound`.
//! - `PATCH users/{userKey}` merges `suspended`, `archived`, `orgUnitPath` (must be an existing
//!   org unit, else 400 `invalid` "Invalid Input: INVALID_OU_ID") and
//!   `includeInGlobalAddressList`; it answers the whole `User`.
//! - `signOut` ends the user's sessions (not readable through the API, as in Google).
//! - OAuth tokens (`clientId`, `displayText`, `scopes`), ASPs (`codeId` int), backup
//!   verification codes; list answers omit `items` when empty, as Google does. Deleting a token
//!   or ASP that does not exist is a 404.
//! - Groups and members: `groups.list?userKey=` (with `maxResults` / `pageToken` paging;
//!   `userKey` together with `customer` or `domain` is a 400), `members.get`, `members.insert`
//!   (409 `duplicate` when already a member) and `members.delete` (404 when not a member).
//! - Rate limits: one per-minute query budget ([`GoogleLimits`], Google's default 2,400 per
//!   minute per user); when spent, a 403 `userRateLimitExceeded` (default, as the Directory API
//!   answers) or a 429 `rateLimitExceeded` with `Retry-After` (seconds to the next window).
//!   An optional concurrency limit answers 403 `quotaExceeded`.
//! - Faults ([`Faults`]): a share of 500s and of throttling answers, added latency, and the
//!   next N requests failing with a chosen status.
//! - Authentication: `Authorization: Bearer <token>`; anything else is a 401 `authError`.
//!
//! # Example
//! ```
//! use offboard_testkit::google::{GoogleTenant, NewUser};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let google = GoogleTenant::start().await;
//! let id = google.add_user(NewUser::active("jane@example.com"));
//! assert!(!google.user(&id).unwrap().suspended);
//! # }
//! ```

mod fixture;
mod routes;

pub use crate::okta::RecordedRequest;
use crate::okta::{record, respond};
pub use fixture::GoogleFixture;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// How the tenant answers a spent budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttle {
    /// 403 with reason `userRateLimitExceeded` and no headers (the Directory API's answer).
    Forbidden403,
    /// 429 with reason `rateLimitExceeded` and `Retry-After`.
    TooMany429,
}

/// The per-minute query budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoogleLimits {
    /// Queries per window.
    pub per_minute: u32,
    /// Window length in whole seconds (Google: 60).
    pub window_secs: u64,
    /// How a spent budget is answered.
    pub throttle: Throttle,
    /// Requests in flight at once (counted over the added latency); beyond it, a 403
    /// `quotaExceeded`. `None`: no limit (Google documents none).
    pub concurrency: Option<u32>,
}

impl GoogleLimits {
    /// Google's default: 2,400 queries per minute per user, answered with 403
    /// `userRateLimitExceeded`.
    pub fn default_quota() -> Self {
        Self {
            per_minute: 2400,
            window_secs: 60,
            throttle: Throttle::Forbidden403,
            concurrency: None,
        }
    }

    /// Sets the budget per window.
    pub fn with_per_minute(mut self, n: u32) -> Self {
        self.per_minute = n;
        self
    }

    /// Sets the window length (at least 1 s).
    pub fn with_window_secs(mut self, secs: u64) -> Self {
        self.window_secs = secs.max(1);
        self
    }

    /// Sets how a spent budget is answered.
    pub fn with_throttle(mut self, throttle: Throttle) -> Self {
        self.throttle = throttle;
        self
    }

    /// Sets the concurrency limit.
    pub fn with_concurrency(mut self, n: u32) -> Self {
        self.concurrency = Some(n);
        self
    }
}

impl Default for GoogleLimits {
    fn default() -> Self {
        Self::default_quota()
    }
}

/// Fault injection knobs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Share (0..=1) of requests answered 500 `backendError`.
    pub error_rate: f64,
    /// Share (0..=1) of requests answered as throttled (see [`GoogleLimits::throttle`]).
    pub rate_limit_rate: f64,
    /// Added to every response.
    pub latency: Duration,
}

/// A user to create with [`GoogleTenant::add_user`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// `primaryEmail`.
    pub primary_email: String,
    /// `aliases`.
    pub aliases: Vec<String>,
    /// `suspended`.
    pub suspended: bool,
    /// `orgUnitPath` (must exist; `/` always does).
    pub org_unit_path: String,
    /// `includeInGlobalAddressList`.
    pub include_in_gal: bool,
    /// Group ids the user is a `MEMBER` of.
    pub groups: Vec<String>,
    /// OAuth tokens: (client id, display text).
    pub tokens: Vec<(String, String)>,
    /// App-specific password names.
    pub asps: Vec<String>,
    /// Backup verification codes.
    pub backup_codes: u32,
    /// Open sessions.
    pub sessions: u32,
}

impl NewUser {
    /// An active user in `/` with nothing else.
    pub fn active(primary_email: impl Into<String>) -> Self {
        Self {
            primary_email: primary_email.into(),
            aliases: Vec::new(),
            suspended: false,
            org_unit_path: "/".into(),
            include_in_gal: true,
            groups: Vec::new(),
            tokens: Vec::new(),
            asps: Vec::new(),
            backup_codes: 0,
            sessions: 0,
        }
    }
}

/// A user's state, read directly from the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GoogleUserState {
    /// Numeric id.
    pub id: String,
    /// `primaryEmail`.
    pub primary_email: String,
    /// `aliases`.
    pub aliases: Vec<String>,
    /// `suspended`.
    pub suspended: bool,
    /// `archived`.
    pub archived: bool,
    /// `orgUnitPath`.
    pub org_unit_path: String,
    /// `includeInGlobalAddressList`.
    pub include_in_gal: bool,
    /// Group id → role.
    pub groups: BTreeMap<String, String>,
    /// Client ids of OAuth tokens.
    pub tokens: Vec<String>,
    /// ASP code ids.
    pub asps: Vec<i64>,
    /// Valid backup codes.
    pub backup_codes: u32,
    /// Open sessions.
    pub sessions: u32,
}

#[derive(Debug, Clone)]
struct Token {
    client_id: String,
    display_text: String,
}

#[derive(Debug, Clone)]
struct User {
    id: String,
    primary_email: String,
    aliases: Vec<String>,
    suspended: bool,
    archived: bool,
    org_unit_path: String,
    include_in_gal: bool,
    tokens: Vec<Token>,
    asps: Vec<(i64, String)>,
    backup_codes: Vec<String>,
    sessions: u32,
    created: String,
}

#[derive(Debug, Clone)]
struct Group {
    email: String,
    name: String,
    /// Member user id → role.
    members: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
struct Window {
    started: u64,
    used: u32,
}

#[derive(Debug, Default)]
struct State {
    users: BTreeMap<String, User>,
    groups: BTreeMap<String, Group>,
    org_units: BTreeSet<String>,
    next: u64,
    requests: Vec<RecordedRequest>,
    limits: GoogleLimits,
    window: Window,
    busy_until: Vec<Instant>,
    faults: Faults,
    fail_next: Vec<u16>,
    rng: u64,
    rate_limited: u64,
}

impl State {
    fn next(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    fn random(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The user a `{userKey}` names: id, primary email or alias (ASCII case ignored).
    fn user_id(&self, key: &str) -> Option<String> {
        if self.users.contains_key(key) {
            return Some(key.to_owned());
        }
        self.users
            .values()
            .find(|u| {
                u.primary_email.eq_ignore_ascii_case(key)
                    || u.aliases.iter().any(|a| a.eq_ignore_ascii_case(key))
            })
            .map(|u| u.id.clone())
    }

    /// The group a `{groupKey}` names: id or email.
    fn group_id(&self, key: &str) -> Option<String> {
        if self.groups.contains_key(key) {
            return Some(key.to_owned());
        }
        self.groups
            .iter()
            .find(|(_, g)| g.email.eq_ignore_ascii_case(key))
            .map(|(id, _)| id.clone())
    }
}

#[derive(Debug)]
struct Shared {
    token: String,
    state: Mutex<State>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The simulated Google Workspace tenant. See the [module docs](self).
#[derive(Debug)]
pub struct GoogleTenant {
    server: MockServer,
    shared: Arc<Shared>,
}

/// Google's error body.
fn error_body(code: u16, message: &str, reason: &str, domain: &str, status: &str) -> Value {
    json!({
        "error": {
            "code": code,
            "message": message,
            "errors": [{"message": message, "domain": domain, "reason": reason}],
            "status": status,
        }
    })
}

fn not_found(what: &str) -> (u16, Value) {
    (
        404,
        error_body(
            404,
            &format!("Resource Not Found: {what}"),
            "notFound",
            "global",
            "NOT_FOUND",
        ),
    )
}

fn invalid(message: &str) -> (u16, Value) {
    (
        400,
        error_body(400, message, "invalid", "global", "INVALID_ARGUMENT"),
    )
}

fn now_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

impl GoogleTenant {
    /// Every route served, as `(METHOD, discovery path)` exactly as in the official discovery
    /// document (paths relative to `rootUrl`).
    pub const ROUTES: &'static [(&'static str, &'static str)] = &[
        ("GET", "admin/directory/v1/users/{userKey}"),
        ("PATCH", "admin/directory/v1/users/{userKey}"),
        ("DELETE", "admin/directory/v1/users/{userKey}"),
        ("POST", "admin/directory/v1/users/{userKey}/signOut"),
        ("GET", "admin/directory/v1/users/{userKey}/tokens"),
        (
            "DELETE",
            "admin/directory/v1/users/{userKey}/tokens/{clientId}",
        ),
        ("GET", "admin/directory/v1/users/{userKey}/asps"),
        ("DELETE", "admin/directory/v1/users/{userKey}/asps/{codeId}"),
        (
            "GET",
            "admin/directory/v1/users/{userKey}/verificationCodes",
        ),
        (
            "POST",
            "admin/directory/v1/users/{userKey}/verificationCodes/invalidate",
        ),
        ("GET", "admin/directory/v1/groups"),
        (
            "GET",
            "admin/directory/v1/groups/{groupKey}/members/{memberKey}",
        ),
        ("POST", "admin/directory/v1/groups/{groupKey}/members"),
        (
            "DELETE",
            "admin/directory/v1/groups/{groupKey}/members/{memberKey}",
        ),
    ];

    /// Starts a tenant with a random bearer token and [`GoogleLimits::default_quota`].
    pub async fn start() -> Self {
        Self::start_with(
            format!("ya29.sim-{}", uuid::Uuid::new_v4().simple()),
            GoogleLimits::default_quota(),
        )
        .await
    }

    /// Starts a tenant accepting `Bearer <token>`, with these limits.
    pub async fn start_with(token: impl Into<String>, limits: GoogleLimits) -> Self {
        let shared = Arc::new(Shared {
            token: token.into(),
            state: Mutex::new(State {
                limits,
                rng: 0x9E37_79B9_7F4A_7C15,
                next: 100_000_000_000_000_000,
                org_units: BTreeSet::from(["/".to_owned()]),
                ..State::default()
            }),
        });
        let server = MockServer::start().await;
        Mock::given(any())
            .respond_with(Responder(Arc::clone(&shared)))
            .mount(&server)
            .await;
        Self { server, shared }
    }

    /// The base URL (`http://127.0.0.1:<port>`), standing for `https://admin.googleapis.com`.
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// The access token it accepts as `Bearer <token>`.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// Adds an org unit path (e.g. `/Offboarded`).
    pub fn add_org_unit(&self, path: impl Into<String>) {
        self.shared.state().org_units.insert(path.into());
    }

    /// Adds a group; returns its id.
    pub fn add_group(&self, email: impl Into<String>, name: impl Into<String>) -> String {
        let mut s = self.shared.state();
        let id = format!("0{:x}", s.next());
        s.groups.insert(
            id.clone(),
            Group {
                email: email.into(),
                name: name.into(),
                members: BTreeMap::new(),
            },
        );
        id
    }

    /// Adds `user` to `group` with `role` (`MEMBER`, `MANAGER`, `OWNER`).
    pub fn add_member(&self, group: &str, user: &str, role: &str) {
        if let Some(g) = self.shared.state().groups.get_mut(group) {
            g.members.insert(user.to_owned(), role.to_owned());
        }
    }

    /// Creates a user; returns its numeric id.
    pub fn add_user(&self, new: NewUser) -> String {
        let mut s = self.shared.state();
        let id = s.next().to_string();
        let tokens = new
            .tokens
            .into_iter()
            .map(|(client_id, display_text)| Token {
                client_id,
                display_text,
            })
            .collect();
        let mut asps = Vec::new();
        for name in new.asps {
            let code = (s.next() % 1_000_000) as i64;
            asps.push((code, name));
        }
        let mut backup_codes = Vec::new();
        for _ in 0..new.backup_codes {
            let n = s.next();
            backup_codes.push(format!("{:08}", n % 100_000_000));
        }
        for g in &new.groups {
            if let Some(group) = s.groups.get_mut(g) {
                group.members.insert(id.clone(), "MEMBER".into());
            }
        }
        s.users.insert(
            id.clone(),
            User {
                id: id.clone(),
                primary_email: new.primary_email,
                aliases: new.aliases,
                suspended: new.suspended,
                archived: false,
                org_unit_path: new.org_unit_path,
                include_in_gal: new.include_in_gal,
                tokens,
                asps,
                backup_codes,
                sessions: new.sessions,
                created: chrono::Utc::now()
                    .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                    .to_string(),
            },
        );
        id
    }

    /// Deletes a user outright, as an administrator would (no-op when gone); its memberships go
    /// with it.
    pub fn remove_user(&self, id: &str) {
        let mut s = self.shared.state();
        s.users.remove(id);
        for g in s.groups.values_mut() {
            g.members.remove(id);
        }
    }

    /// A user's current state.
    pub fn user(&self, id: &str) -> Option<GoogleUserState> {
        let s = self.shared.state();
        let u = s.users.get(id)?;
        Some(GoogleUserState {
            id: u.id.clone(),
            primary_email: u.primary_email.clone(),
            aliases: u.aliases.clone(),
            suspended: u.suspended,
            archived: u.archived,
            org_unit_path: u.org_unit_path.clone(),
            include_in_gal: u.include_in_gal,
            groups: s
                .groups
                .iter()
                .filter_map(|(gid, g)| g.members.get(id).map(|r| (gid.clone(), r.clone())))
                .collect(),
            tokens: u.tokens.iter().map(|t| t.client_id.clone()).collect(),
            asps: u.asps.iter().map(|(c, _)| *c).collect(),
            backup_codes: u.backup_codes.len() as u32,
            sessions: u.sessions,
        })
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.state().requests.clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.state().requests.clear();
    }

    /// How many throttling answers (403 `userRateLimitExceeded` or 429) the tenant has given.
    pub fn rate_limited_count(&self) -> u64 {
        self.shared.state().rate_limited
    }

    /// Sets the fault knobs.
    pub fn set_faults(&self, faults: Faults) {
        self.shared.state().faults = faults;
    }

    /// The next `count` authenticated requests fail with `status` (403 and 429 get Google's
    /// throttling bodies; others `backendError`).
    pub fn fail_next(&self, count: usize, status: u16) {
        self.shared
            .state()
            .fail_next
            .extend(std::iter::repeat_n(status, count));
    }

    /// Replaces the limits (and starts a new window).
    pub fn set_limits(&self, limits: GoogleLimits) {
        let mut s = self.shared.state();
        s.limits = limits;
        s.window = Window::default();
    }
}

struct Responder(Arc<Shared>);

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.0.handle(request)
    }
}

fn throttled(throttle: Throttle, retry_after: u64) -> ResponseTemplate {
    match throttle {
        Throttle::Forbidden403 => respond(
            403,
            Some(error_body(
                403,
                "Rate Limit Exceeded",
                "userRateLimitExceeded",
                "usageLimits",
                "PERMISSION_DENIED",
            )),
        ),
        Throttle::TooMany429 => respond(
            429,
            Some(error_body(
                429,
                "Rate Limit Exceeded",
                "rateLimitExceeded",
                "usageLimits",
                "RESOURCE_EXHAUSTED",
            )),
        )
        .insert_header("retry-after", retry_after.to_string().as_str()),
    }
}

/// Decodes one percent-encoded path segment.
fn decode_segment(seg: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", seg.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

impl Shared {
    fn handle(&self, request: &Request) -> ResponseTemplate {
        let mut s = self.state();
        s.requests.push(record(request));
        let latency = s.faults.latency;
        let auth = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if auth != format!("Bearer {}", self.token) {
            return respond(
                401,
                Some(error_body(
                    401,
                    "Request had invalid authentication credentials. Expected OAuth 2 access \
                     token, login cookie or other valid authentication credential.",
                    "authError",
                    "global",
                    "UNAUTHENTICATED",
                )),
            )
            .set_delay(latency);
        }
        let instant = Instant::now();
        s.busy_until.retain(|t| *t > instant);
        if let Some(limit) = s.limits.concurrency
            && s.busy_until.len() as u32 >= limit
        {
            s.rate_limited += 1;
            return respond(
                403,
                Some(error_body(
                    403,
                    "Quota exceeded for concurrent requests",
                    "quotaExceeded",
                    "usageLimits",
                    "PERMISSION_DENIED",
                )),
            )
            .set_delay(latency);
        }
        if !latency.is_zero() {
            s.busy_until.push(instant + latency);
        }
        let now = now_epoch();
        let window_secs = s.limits.window_secs.max(1);
        if now >= s.window.started + window_secs {
            s.window = Window {
                started: now,
                used: 0,
            };
        }
        let retry_after = (s.window.started + window_secs).saturating_sub(now).max(1);
        let throttle = s.limits.throttle;
        if s.window.used >= s.limits.per_minute {
            s.rate_limited += 1;
            return throttled(throttle, retry_after).set_delay(latency);
        }
        s.window.used += 1;
        if !s.fail_next.is_empty() {
            let status = s.fail_next.remove(0);
            let t = match status {
                403 => {
                    s.rate_limited += 1;
                    throttled(Throttle::Forbidden403, retry_after)
                }
                429 => {
                    s.rate_limited += 1;
                    throttled(Throttle::TooMany429, retry_after)
                }
                other => respond(
                    other,
                    Some(error_body(
                        other,
                        "Backend Error",
                        "backendError",
                        "global",
                        "INTERNAL",
                    )),
                ),
            };
            return t.set_delay(latency);
        }
        let (error_rate, rate_limit_rate) = (s.faults.error_rate, s.faults.rate_limit_rate);
        if error_rate > 0.0 && s.random() < error_rate {
            return respond(
                500,
                Some(error_body(
                    500,
                    "Backend Error",
                    "backendError",
                    "global",
                    "INTERNAL",
                )),
            )
            .set_delay(latency);
        }
        if rate_limit_rate > 0.0 && s.random() < rate_limit_rate {
            s.rate_limited += 1;
            return throttled(throttle, retry_after).set_delay(latency);
        }
        let segments: Vec<String> = request
            .url
            .path()
            .split('/')
            .skip(1)
            .map(decode_segment)
            .collect();
        let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
        let query: BTreeMap<String, String> = request.url.query_pairs().into_owned().collect();
        let body: Option<Value> = serde_json::from_slice(&request.body).ok();
        let (status, body) = routes::route(
            &mut s,
            request.method.as_str(),
            &segs,
            &query,
            body.as_ref(),
        );
        respond(status, body).set_delay(latency)
    }
}
