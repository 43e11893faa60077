//! A simulated Google Workspace tenant: the Admin SDK Directory API on loopback, stateful, rate
//! limited, with fault injection and a recording of every request.
//!
//! Built on wiremock like [`crate::sim::okta`]: one [`MockServer`] whose single responder routes
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
//! - `users.list` (`customer=my_customer` or `domain=`, exactly one) answers the `Users` shape
//!   with `maxResults` (1..=500, default 100) / `pageToken` / `nextPageToken` paging and
//!   `showDeleted=true` (deleted users only); `query` takes space-separated `email`,
//!   `isSuspended`, `isAdmin` and `orgUnitPath` terms (`:` or `=`, values optionally
//!   single-quoted, a trailing `*` on an e-mail is a prefix); any other field is a 400.
//!   [`GoogleTenant::set_suspended`], [`GoogleTenant::set_archived`] and
//!   [`GoogleTenant::remove_user`] change users from a test.
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
//! - Faults ([`Faults`], the shared layer's): a share of 500s, of throttling answers and of
//!   lost answers, added latency, the next N requests failing with a chosen status, and one
//!   route failing every time ([`GoogleTenant::fail_route`]).
//! - `verificationCodes.invalidate` of a suspended user is a 400 `invalid` "Invalid Input":
//!   Google manages no backup codes of a suspended user (the list still answers).
//! - Authentication: `Authorization: Bearer <token>` with the tenant's fixed token (every
//!   scope) or one minted at [`GoogleTenant::token_uri`] from a service account's JWT (its
//!   `scope` claim); anything else is a 401 `authError`. A minted token lacking every scope a
//!   route's discovery entry lists is a 403 `insufficientPermissions` (see `auth.rs`).
//! - A POST, PUT or PATCH without `Content-Length` (or chunked encoding) is a `411 Length
//!   Required` HTML page, as Google's front end answers it, whatever its credentials.
//!
//! # Example
//! ```
//! use offboard_testkit::sim::google::{GoogleTenant, NewUser};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let google = GoogleTenant::start().await;
//! let id = google.add_user(NewUser::active("jane@example.com"));
//! assert!(!google.user(&id).unwrap().suspended);
//! # }
//! ```

mod auth;
mod fixture;
mod routes;
mod services;

use super::layer::{self, Handler, Layer, Window, respond};
pub use super::layer::{Faults, RecordedRequest};
pub use fixture::GoogleFixture;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};
use wiremock::{MockServer, Request, ResponseTemplate};

/// A served method: `(HTTP method, discovery path, the OAuth scopes any one of which
/// authorises it)`.
pub type Route = (&'static str, &'static str, &'static [&'static str]);

const USER: &str = "https://www.googleapis.com/auth/admin.directory.user";
const USER_RO: &str = "https://www.googleapis.com/auth/admin.directory.user.readonly";
const SECURITY: &str = "https://www.googleapis.com/auth/admin.directory.user.security";
const CLOUD: &str = "https://www.googleapis.com/auth/cloud-platform";
const GROUP: &str = "https://www.googleapis.com/auth/admin.directory.group";
const GROUP_RO: &str = "https://www.googleapis.com/auth/admin.directory.group.readonly";
const MEMBER: &str = "https://www.googleapis.com/auth/admin.directory.group.member";
const MEMBER_RO: &str = "https://www.googleapis.com/auth/admin.directory.group.member.readonly";
const MOBILE: &str = "https://www.googleapis.com/auth/admin.directory.device.mobile";
const MOBILE_ACTION: &str = "https://www.googleapis.com/auth/admin.directory.device.mobile.action";
const MOBILE_RO: &str = "https://www.googleapis.com/auth/admin.directory.device.mobile.readonly";
const TRANSFER: &str = "https://www.googleapis.com/auth/admin.datatransfer";
const TRANSFER_RO: &str = "https://www.googleapis.com/auth/admin.datatransfer.readonly";
const LICENSING: &str = "https://www.googleapis.com/auth/apps.licensing";

/// The simulated customer's id (`customerId` of every user; `my_customer` stands for it).
pub const CUSTOMER_ID: &str = "C0sim0000";

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
    /// `isAdmin` (super administrator).
    pub is_admin: bool,
    /// Mobile devices synced with the account, by model (`APPROVED`, Android).
    pub devices: Vec<String>,
    /// Licences assigned: (productId, skuId); each must be in the SKU catalogue.
    pub licences: Vec<(String, String)>,
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
            is_admin: false,
            devices: Vec::new(),
            licences: Vec::new(),
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
    /// `isAdmin`.
    pub is_admin: bool,
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
    /// Passwords set through `users.patch` / `users.update`.
    pub password_resets: u32,
    /// `changePasswordAtNextLogin`.
    pub change_password_at_next_login: bool,
    /// Licences: (productId, skuId).
    pub licences: Vec<(String, String)>,
}

/// A mobile device's state, read directly from the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MobileDeviceState {
    /// `resourceId`.
    pub resource_id: String,
    /// `email`: the owner's addresses.
    pub emails: Vec<String>,
    /// `model`.
    pub model: String,
    /// `status` (`APPROVED`, `BLOCKED`, `ACCOUNT_WIPING`, `ACCOUNT_WIPED`, `WIPING`, `WIPED`).
    pub status: String,
    /// Every action taken on it (`MobileDeviceAction.action`), oldest first.
    pub actions: Vec<String>,
}

/// A data transfer's state, read directly from the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransferState {
    /// `id`.
    pub id: String,
    /// `oldOwnerUserId`.
    pub old_owner: String,
    /// `newOwnerUserId`.
    pub new_owner: String,
    /// The `applicationId`s transferred.
    pub applications: Vec<String>,
    /// `overallTransferStatusCode` as a read would answer it now.
    pub status: String,
    /// `requestTime` (RFC 3339).
    pub request_time: String,
}

/// A Data Transfer application (`Application`): id, name and transfer parameters.
#[derive(Debug, Clone)]
struct Application {
    id: String,
    name: String,
    params: Vec<(String, Vec<String>)>,
}

/// A mobile device.
#[derive(Debug, Clone)]
struct Device {
    device_id: String,
    user: String,
    emails: Vec<String>,
    model: String,
    status: String,
    actions: Vec<String>,
}

/// A data transfer; `gets` counts the `transfers.get` calls that saw it.
#[derive(Debug, Clone)]
struct Transfer {
    old_owner: String,
    new_owner: String,
    applications: Vec<Value>,
    request_time: String,
    gets: u32,
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
    is_admin: bool,
    password_resets: u32,
    change_password_at_next_login: bool,
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
struct State {
    users: BTreeMap<String, User>,
    /// Deleted users (`users.list?showDeleted=true`), by id.
    deleted: BTreeMap<String, User>,
    groups: BTreeMap<String, Group>,
    org_units: BTreeSet<String>,
    /// Mobile devices by `resourceId`.
    devices: BTreeMap<String, Device>,
    /// Data Transfer applications installed.
    applications: Vec<Application>,
    /// Data transfers by id.
    transfers: BTreeMap<String, Transfer>,
    /// `transfers.get` calls before a transfer reads `completed` (the first reads `new`...).
    transfer_gets: u32,
    /// Licence catalogue: (productId, skuId) → (productName, skuName).
    skus: BTreeMap<(String, String), (String, String)>,
    /// Licence assignments: (productId, skuId, user id).
    licences: BTreeSet<(String, String, String)>,
    next: u64,
    /// Recording, faults and counters.
    layer: Layer,
    limits: GoogleLimits,
    window: Window,
    /// Routes (method, discovery path) that fail with a status until cleared.
    failing: BTreeMap<(String, String), u16>,
    /// Access tokens minted at `/token`, by token: the scopes each holds.
    grants: BTreeMap<String, BTreeSet<String>>,
    /// Writes (not GET) answered 2xx, by `METHOD path {body keys}`.
    served_writes: BTreeMap<String, u64>,
}

impl State {
    fn next(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// Deletes a user: it leaves the directory (and its groups) and is listed as deleted.
    fn delete_user(&mut self, id: &str) {
        if let Some(u) = self.users.remove(id) {
            self.deleted.insert(id.to_owned(), u);
        }
        // Google releases a deleted user's licences.
        self.licences.retain(|(_, _, user)| user != id);
        for g in self.groups.values_mut() {
            g.members.remove(id);
        }
    }

    /// Adds a device synced with `email`; returns its `resourceId`.
    fn add_device(&mut self, user: &str, email: &str, model: String) -> String {
        let n = self.next();
        let resource_id = format!("AFiQxQ8sim{n:x}");
        self.devices.insert(
            resource_id.clone(),
            Device {
                device_id: format!("android-{n:x}"),
                user: user.to_owned(),
                emails: vec![email.to_owned()],
                model,
                status: "APPROVED".into(),
                actions: Vec::new(),
            },
        );
        resource_id
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
        layer::lock(&self.state)
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

impl GoogleTenant {
    /// Every route served, as `(METHOD, discovery path, scopes)` exactly as in the official
    /// discovery documents (paths relative to their `rootUrl`; `scopes`: the method's
    /// `scopes`, any one of which authorises a call): `admin/directory/v1/…` from
    /// `admin-directory_v1.offboarding.json`, `admin/datatransfer/v1/…` from
    /// `admin-datatransfer_v1.json` and `apps/licensing/v1/…` from `licensing_v1.json`. A
    /// token minted at [`GoogleTenant::token_uri`] holding none of a route's scopes is answered
    /// 403 `insufficientPermissions`.
    pub const ROUTES: &'static [Route] = &[
        ("GET", "admin/directory/v1/users", &[USER, USER_RO, CLOUD]),
        (
            "GET",
            "admin/directory/v1/users/{userKey}",
            &[USER, USER_RO],
        ),
        ("PATCH", "admin/directory/v1/users/{userKey}", &[USER]),
        ("DELETE", "admin/directory/v1/users/{userKey}", &[USER]),
        (
            "POST",
            "admin/directory/v1/users/{userKey}/signOut",
            &[SECURITY],
        ),
        (
            "GET",
            "admin/directory/v1/users/{userKey}/tokens",
            &[SECURITY],
        ),
        (
            "DELETE",
            "admin/directory/v1/users/{userKey}/tokens/{clientId}",
            &[SECURITY],
        ),
        (
            "GET",
            "admin/directory/v1/users/{userKey}/asps",
            &[SECURITY],
        ),
        (
            "DELETE",
            "admin/directory/v1/users/{userKey}/asps/{codeId}",
            &[SECURITY],
        ),
        (
            "GET",
            "admin/directory/v1/users/{userKey}/verificationCodes",
            &[SECURITY],
        ),
        (
            "POST",
            "admin/directory/v1/users/{userKey}/verificationCodes/invalidate",
            &[SECURITY],
        ),
        (
            "GET",
            "admin/directory/v1/customer/{customerId}/devices/mobile",
            &[MOBILE, MOBILE_ACTION, MOBILE_RO],
        ),
        (
            "POST",
            "admin/directory/v1/customer/{customerId}/devices/mobile/{resourceId}/action",
            &[MOBILE, MOBILE_ACTION],
        ),
        ("GET", "admin/directory/v1/groups", &[GROUP, GROUP_RO]),
        (
            "GET",
            "admin/directory/v1/groups/{groupKey}/members/{memberKey}",
            &[GROUP, MEMBER, MEMBER_RO, GROUP_RO],
        ),
        (
            "POST",
            "admin/directory/v1/groups/{groupKey}/members",
            &[GROUP, MEMBER],
        ),
        (
            "DELETE",
            "admin/directory/v1/groups/{groupKey}/members/{memberKey}",
            &[GROUP, MEMBER],
        ),
        (
            "GET",
            "admin/datatransfer/v1/applications",
            &[TRANSFER, TRANSFER_RO],
        ),
        (
            "GET",
            "admin/datatransfer/v1/transfers",
            &[TRANSFER, TRANSFER_RO],
        ),
        ("POST", "admin/datatransfer/v1/transfers", &[TRANSFER]),
        (
            "GET",
            "admin/datatransfer/v1/transfers/{dataTransferId}",
            &[TRANSFER, TRANSFER_RO],
        ),
        (
            "GET",
            "apps/licensing/v1/product/{productId}/sku/{skuId}/user/{userId}",
            &[LICENSING],
        ),
        (
            "DELETE",
            "apps/licensing/v1/product/{productId}/sku/{skuId}/user/{userId}",
            &[LICENSING],
        ),
        (
            "POST",
            "apps/licensing/v1/product/{productId}/sku/{skuId}/user",
            &[LICENSING],
        ),
    ];

    /// The licence catalogue a tenant starts with: (productId, skuId, productName, skuName).
    pub const SKUS: &'static [(&'static str, &'static str, &'static str, &'static str)] = &[
        (
            "Google-Apps",
            "1010020027",
            "Google Workspace",
            "Google Workspace Business Starter",
        ),
        (
            "Google-Apps",
            "1010020028",
            "Google Workspace",
            "Google Workspace Business Standard",
        ),
        (
            "Google-Apps",
            "1010020025",
            "Google Workspace",
            "Google Workspace Business Plus",
        ),
        (
            "Google-Vault",
            "Google-Vault",
            "Google Vault",
            "Google Vault",
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
                next: 100_000_000_000_000_000,
                org_units: BTreeSet::from(["/".to_owned()]),
                transfer_gets: 2,
                skus: Self::SKUS
                    .iter()
                    .map(|(p, k, pn, kn)| {
                        (
                            ((*p).to_owned(), (*k).to_owned()),
                            ((*pn).to_owned(), (*kn).to_owned()),
                        )
                    })
                    .collect(),
                ..State::default()
            }),
        });
        let tenant = Self {
            server: MockServer::start().await,
            shared,
        };
        // The applications a Workspace customer has by default (ids are this tenant's own:
        // clients must read them from `applications.list`).
        tenant.add_application(
            "Drive and Docs",
            &[("PRIVACY_LEVEL", &["PRIVATE", "SHARED"])],
        );
        tenant.add_application("Calendar", &[("RELEASE_RESOURCES", &["TRUE"])]);
        tenant.add_application("Looker Studio", &[]);
        layer::serve(&tenant.server, Arc::clone(&tenant.shared)).await;
        tenant
    }

    /// The base URL (`http://127.0.0.1:<port>`), standing for `https://admin.googleapis.com`
    /// and `https://licensing.googleapis.com` (their paths do not overlap).
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// The access token it accepts as `Bearer <token>`, holding every scope.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// The OAuth token endpoint (`<uri>/token`, standing for
    /// `https://oauth2.googleapis.com/token`): a service account's JWT assertion gets an access
    /// token bound to the assertion's `scope` claim (see [`GoogleTenant::ROUTES`]).
    pub fn token_uri(&self) -> String {
        format!("{}/token", self.server.uri())
    }

    /// The scopes of an access token minted at [`GoogleTenant::token_uri`] (`None`: no such
    /// token).
    pub fn token_scopes(&self, token: &str) -> Option<BTreeSet<String>> {
        self.shared.state().grants.get(token).cloned()
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
        for model in new.devices {
            s.add_device(&id, &new.primary_email, model);
        }
        for (product, sku) in new.licences {
            s.licences.insert((product, sku, id.clone()));
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
                is_admin: new.is_admin,
                password_resets: 0,
                change_password_at_next_login: false,
                created: chrono::Utc::now()
                    .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                    .to_string(),
            },
        );
        id
    }

    /// Deletes a user outright, as an administrator would (no-op when gone); its memberships go
    /// with it, and it is then listed only by `users.list?showDeleted=true`.
    pub fn remove_user(&self, id: &str) {
        self.shared.state().delete_user(id);
    }

    /// Suspends or reactivates a user, as an administrator would in the console (no-op when
    /// gone).
    pub fn set_suspended(&self, id: &str, suspended: bool) {
        if let Some(u) = self.shared.state().users.get_mut(id) {
            u.suspended = suspended;
        }
    }

    /// Archives or unarchives a user (no-op when gone).
    pub fn set_archived(&self, id: &str, archived: bool) {
        if let Some(u) = self.shared.state().users.get_mut(id) {
            u.archived = archived;
        }
    }

    /// The id of the user a `{userKey}` names (id, primary address or alias, ASCII case
    /// ignored), as the API resolves it.
    pub fn user_id(&self, key: &str) -> Option<String> {
        self.shared.state().user_id(key)
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
            is_admin: u.is_admin,
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
            password_resets: u.password_resets,
            change_password_at_next_login: u.change_password_at_next_login,
            licences: s
                .licences
                .iter()
                .filter(|(_, _, user)| user == id)
                .map(|(p, k, _)| (p.clone(), k.clone()))
                .collect(),
        })
    }

    /// Adds a mobile device (`APPROVED`, Android) synced with the user's primary address;
    /// returns its `resourceId` (`None` when the user does not exist).
    pub fn add_device(&self, user: &str, model: impl Into<String>) -> Option<String> {
        let mut s = self.shared.state();
        let email = s.users.get(user)?.primary_email.clone();
        Some(s.add_device(user, &email, model.into()))
    }

    /// The mobile devices of a user (by id), whatever their status.
    pub fn devices(&self, user: &str) -> Vec<MobileDeviceState> {
        self.shared
            .state()
            .devices
            .iter()
            .filter(|(_, d)| d.user == user)
            .map(|(id, d)| MobileDeviceState {
                resource_id: id.clone(),
                emails: d.emails.clone(),
                model: d.model.clone(),
                status: d.status.clone(),
                actions: d.actions.clone(),
            })
            .collect()
    }

    /// Adds a product SKU to the licence catalogue (a few Google Workspace SKUs are there from
    /// the start: see [`GoogleTenant::SKUS`]).
    pub fn add_sku(&self, product: &str, sku: &str, product_name: &str, sku_name: &str) {
        self.shared.state().skus.insert(
            (product.to_owned(), sku.to_owned()),
            (product_name.to_owned(), sku_name.to_owned()),
        );
    }

    /// Assigns a licence, as an administrator would (no check of the catalogue).
    pub fn assign_licence(&self, product: &str, sku: &str, user: &str) {
        self.shared
            .state()
            .licences
            .insert((product.to_owned(), sku.to_owned(), user.to_owned()));
    }

    /// Adds a Data Transfer application; returns its id.
    pub fn add_application(&self, name: &str, params: &[(&str, &[&str])]) -> String {
        let mut s = self.shared.state();
        let id = (s.next() % 1_000_000_000_000).to_string();
        s.applications.push(Application {
            id: id.clone(),
            name: name.to_owned(),
            params: params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.iter().map(|x| (*x).to_owned()).collect()))
                .collect(),
        });
        id
    }

    /// Sets how many `transfers.get` calls a transfer takes to read `completed` (at least 1;
    /// default 2: `inProgress`, then `completed`). Before its first `get` a transfer reads
    /// `new`.
    pub fn set_transfer_gets(&self, gets: u32) {
        self.shared.state().transfer_gets = gets.max(1);
    }

    /// Adds a data transfer an administrator requested at `requested` (e.g. for an earlier
    /// departure or a reorganisation), already `completed`, of the applications `apps` (ids)
    /// from `old_owner` to `new_owner` (user ids); returns its id. Google keeps completed
    /// transfers and `transfers.list` returns them with their `requestTime`.
    pub fn add_completed_transfer(
        &self,
        old_owner: &str,
        new_owner: &str,
        apps: &[String],
        requested: chrono::DateTime<chrono::Utc>,
    ) -> String {
        let mut s = self.shared.state();
        let id = format!("AKrEtIsim{:x}", s.next());
        let transfer = Transfer {
            old_owner: old_owner.to_owned(),
            new_owner: new_owner.to_owned(),
            applications: apps
                .iter()
                .map(|a| json!({"applicationId": a, "applicationTransferParams": []}))
                .collect(),
            request_time: requested.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            gets: u32::MAX,
        };
        s.transfers.insert(id.clone(), transfer);
        id
    }

    /// The ids of the Data Transfer applications, by name.
    pub fn application_ids(&self) -> BTreeMap<String, String> {
        self.shared
            .state()
            .applications
            .iter()
            .map(|a| (a.name.clone(), a.id.clone()))
            .collect()
    }

    /// Every data transfer, oldest first.
    pub fn transfers(&self) -> Vec<TransferState> {
        let s = self.shared.state();
        s.transfers
            .iter()
            .map(|(id, t)| TransferState {
                id: id.clone(),
                old_owner: t.old_owner.clone(),
                new_owner: t.new_owner.clone(),
                applications: t
                    .applications
                    .iter()
                    .filter_map(|a| a["applicationId"].as_str().map(str::to_owned))
                    .collect(),
                status: services::transfer_status(t, s.transfer_gets).to_owned(),
                request_time: t.request_time.clone(),
            })
            .collect()
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.state().layer.requests.clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.state().layer.requests.clear();
    }

    /// How many throttling answers (403 `userRateLimitExceeded` or 429) the tenant has given.
    pub fn rate_limited_count(&self) -> u64 {
        self.shared.state().layer.rate_limited
    }

    /// How many times each write (any method but GET) was answered 2xx, by `METHOD path` and
    /// the sorted top-level keys of its JSON body (`PATCH …/users/1 {suspended}`: one user
    /// update is told from another): the side effects the tenant carried out (a fleet test
    /// checks each happened once).
    pub fn served_writes(&self) -> BTreeMap<String, u64> {
        self.shared.state().served_writes.clone()
    }

    /// Sets the fault knobs.
    pub fn set_faults(&self, faults: Faults) {
        self.shared.state().layer.faults = faults;
    }

    /// The next `count` authenticated requests fail with `status` (403 and 429 get Google's
    /// throttling bodies; others `backendError`).
    pub fn fail_next(&self, count: usize, status: u16) {
        self.shared
            .state()
            .layer
            .fail_next
            .push(None, status, count);
    }

    /// Every call of one route (`method` and its path exactly as in [`GoogleTenant::ROUTES`])
    /// fails with `status` from now on (a permanent fault: 4xx bodies say `invalid`, others
    /// `backendError`); `None` heals it.
    ///
    /// # Panics
    /// When the route is not served (a typo would otherwise test nothing).
    pub fn fail_route(&self, method: &str, path: &str, status: Option<u16>) {
        assert!(
            Self::ROUTES
                .iter()
                .any(|(m, p, _)| *m == method && *p == path),
            "{method} {path} is not a route of the simulated tenant"
        );
        let key = (method.to_owned(), path.to_owned());
        let mut s = self.shared.state();
        match status {
            Some(status) => s.failing.insert(key, status),
            None => s.failing.remove(&key),
        };
    }

    /// Replaces the limits (and starts a new window).
    pub fn set_limits(&self, limits: GoogleLimits) {
        let mut s = self.shared.state();
        s.limits = limits;
        s.window = Window::default();
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

/// An injected failure: a 4xx is Google's `invalid` answer, anything else `backendError`.
fn fault(status: u16) -> ResponseTemplate {
    let body = if (400..500).contains(&status) {
        error_body(
            status,
            "Invalid Input",
            "invalid",
            "global",
            "INVALID_ARGUMENT",
        )
    } else {
        error_body(
            status,
            "Backend Error",
            "backendError",
            "global",
            "INTERNAL",
        )
    };
    respond(status, Some(body))
}

/// Google's front end answers a POST, PUT or PATCH that declares no body length (neither
/// `Content-Length` nor chunked `Transfer-Encoding`) with `411 Length Required` and an HTML
/// page, before it looks at credentials; a body-less write must send `Content-Length: 0`.
fn length_required(request: &Request) -> Option<ResponseTemplate> {
    let write = matches!(request.method.as_str(), "POST" | "PUT" | "PATCH");
    let declared = request.headers.contains_key("content-length")
        || request.headers.contains_key("transfer-encoding");
    (write && !declared).then(|| {
        ResponseTemplate::new(411).set_body_raw(
            "<!DOCTYPE html><title>Error 411 (Length Required)!!1</title><p><b>411.</b> \
             <ins>That's an error.</ins><p>POST requests require a <code>Content-length</code> \
             header. <ins>That's all we know.</ins>",
            "text/html; charset=UTF-8",
        )
    })
}

impl Handler for Shared {
    fn handle(&self, request: &Request) -> ResponseTemplate {
        let mut s = self.state();
        s.layer.requests.push(layer::record(request));
        let latency = s.layer.faults.latency;
        if let Some(t) = length_required(request) {
            return t.set_delay(latency);
        }
        if request.method.as_str() == "POST" && request.url.path() == "/token" {
            let (status, body) = auth::token_endpoint(&mut s, &request.body);
            return respond(status, Some(body)).set_delay(latency);
        }
        let segments = layer::segments(request.url.path());
        let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
        let grant = match layer::bearer(request) {
            Some(t) if t == self.token => Some(auth::Grant::All),
            Some(t) => s.grants.get(t).cloned().map(auth::Grant::Scopes),
            None => None,
        };
        let Some(grant) = grant else {
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
        };
        if !auth::allows(&grant, request.method.as_str(), &segs) {
            let (status, body) = auth::insufficient_scopes();
            return respond(status, Some(body)).set_delay(latency);
        }
        let concurrency = s.limits.concurrency;
        if !s.layer.in_flight.admit(concurrency, latency) {
            let busy = respond(
                403,
                Some(error_body(
                    403,
                    "Quota exceeded for concurrent requests",
                    "quotaExceeded",
                    "usageLimits",
                    "PERMISSION_DENIED",
                )),
            );
            return s.layer.throttled(busy).set_delay(latency);
        }
        let now = Duration::from_secs(layer::epoch_secs());
        let window = Duration::from_secs(s.limits.window_secs.max(1));
        let per_minute = s.limits.per_minute;
        let counted = s.window.count(now, window, per_minute);
        let retry_after = counted.retry_after(now);
        let throttle = s.limits.throttle;
        if !counted.admitted {
            return s
                .layer
                .throttled(throttled(throttle, retry_after))
                .set_delay(latency);
        }
        if let Some(status) = s.layer.fail_next.take(&()) {
            let t = match status {
                403 => s
                    .layer
                    .throttled(throttled(Throttle::Forbidden403, retry_after)),
                429 => s
                    .layer
                    .throttled(throttled(Throttle::TooMany429, retry_after)),
                other => fault(other),
            };
            return t.set_delay(latency);
        }
        let failing = auth::route(request.method.as_str(), &segs)
            .and_then(|(m, p, _)| s.failing.get(&((*m).to_owned(), (*p).to_owned())));
        if let Some(status) = failing {
            return fault(*status).set_delay(latency);
        }
        if s.layer.server_error() {
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
        if s.layer.throttle() {
            return s
                .layer
                .throttled(throttled(throttle, retry_after))
                .set_delay(latency);
        }
        let query: BTreeMap<String, String> = request.url.query_pairs().into_owned().collect();
        let body: Option<Value> = serde_json::from_slice(&request.body).ok();
        let body_keys: Vec<String> = body
            .as_ref()
            .and_then(Value::as_object)
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        let (status, body) = routes::route(
            &mut s,
            request.method.as_str(),
            &segs,
            &query,
            body.as_ref(),
        );
        if request.method.as_str() != "GET" && (200..300).contains(&status) {
            let key = format!(
                "{} {} {{{}}}",
                request.method,
                request.url.path(),
                body_keys.join(",")
            );
            *s.served_writes.entry(key).or_default() += 1;
        }
        let dropped = s.layer.drop_answer();
        respond(status, body).set_delay(s.layer.faults.delay(dropped))
    }
}
