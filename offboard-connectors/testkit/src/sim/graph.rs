//! A simulated Microsoft tenant: Microsoft Graph v1.0 and the identity platform's token
//! endpoint on loopback, stateful, throttled, with fault injection and a recording of every
//! request.
//!
//! Built on wiremock like [`crate::sim::okta`]: one [`MockServer`] whose single responder routes on
//! (method, path segments) over shared state. It serves exactly the operations in
//! [`GraphTenant::ROUTES`] (each is in `graph-offboarding.ops.txt` and in the official Graph
//! spec file, or in `graph-batch.handwritten.yaml`; a test checks it), plus the token endpoint,
//! with Graph's status codes and error bodies (`{"error": {"code", "message", "innerError"}}`).
//! Graph is at [`GraphTenant::graph_url`] (`<uri>/v1.0`); the token endpoint at
//! [`GraphTenant::token_url`] (`<uri>/<tenant>/oauth2/v2.0/token`).
//!
//! # Behaviour modelled
//! - Users: `id` (GUID), `userPrincipalName`, `mail`, `displayName`, `accountEnabled`,
//!   `onPremisesSyncEnabled`, `usageLocation`, `employeeId`, `signInSessionsValidFromDateTime`,
//!   `assignedLicenses`, `licenseAssignmentStates` (direct and group-inherited), `manager`.
//!   `{user-id}` is the id or the UPN (ASCII case ignored). Without `$select` a user has only
//!   Graph's default properties (`accountEnabled` and the others must be selected); an unknown
//!   `$select` property is a 400.
//! - `$filter` on `GET /users`: a strict parser of `userPrincipalName|mail|id eq '…'` and
//!   `proxyAddresses|otherMails/any(x:x eq '…')` terms joined by ` or ` (`''` is a quote
//!   inside the literal; the multi-valued properties need `any`, as Graph's do, and need no
//!   advanced query parameters); anything else is a 400 `Request_UnsupportedQuery`.
//!   Comparison ignores ASCII case only (so `smtp:` matches a primary `SMTP:` address).
//!   Advanced queries need `ConsistencyLevel: eventual` (and `$count=true` for advanced
//!   `$filter` operators), as Graph's do: without it `$count` is a 400
//!   `Request_BadRequest`, `$search`, `ne`, `not` and `endsWith` 400s
//!   `Request_UnsupportedQuery` naming the missing header; with it `$count=true` adds
//!   `@odata.count` (`$search` and those operators are not modelled: still 400s). Collections page with
//!   `$top` (default 100, see [`GraphTenant::set_page_size`]) and `@odata.nextLink`.
//! - Manager: `GET /users/{id}/manager` (404 `Request_ResourceNotFound` when none),
//!   `PUT /users/{id}/manager/$ref` with `{"@odata.id": "<base>/users/{m}"}` (or
//!   `…/directoryObjects/{m}`; another base is a 400, an unknown user a 404)
//!   and `DELETE /users/{id}/manager/$ref` (404 when none), both 204; both need
//!   `User.ReadWrite.All`, and a user synced from on-premises AD is refused (400: AD
//!   masters its manager).
//! - Permissions: the app holds what the served operations need until a test withdraws one
//!   ([`GraphTenant::withhold_permission`]); the operations that need it then answer 403
//!   `Authorization_RequestDenied`.
//! - `PATCH /users/{id}` (needs `User.ReadWrite.All`) answers 204; changing `accountEnabled`
//!   or `onPremisesImmutableId` of an on-premises-synced user is a 400 (it is mastered in AD;
//!   [`GraphTenant::sync_from_ad`] plays Entra Connect).
//! - Groups: assigned, dynamic (`groupTypes: ["DynamicMembership"]`) and on-premises-synced;
//!   membership changes of the last two are 400s. Mail-enabled security groups and
//!   distribution lists (`mailEnabled` without `Unified`) are managed in Exchange: membership
//!   changes are 400s; role-assignable groups (`isAssignableToRole`) are 403s unless the app
//!   holds `RoleManagement.ReadWrite.Directory` ([`GraphTenant::grant_role_management`]).
//!   A member reference (`@odata.id`) must name a user under this service's own base URL. Adding a member twice is a 400 "already
//!   exist"; removing a non-member a 404.
//! - Owners of groups, applications (app registrations) and service principals (enterprise
//!   apps), each listed in the owner's `ownedObjects`: `GET …/owners`, `POST …/owners/$ref`
//!   (a user reference as for members; a duplicate is a 400 "already exist", an unknown user
//!   a 404) and `DELETE …/owners/{id}/$ref` (a non-owner is a 404), 204. Group owner changes
//!   need `Group.ReadWrite.All` (a role-assignable group also
//!   `RoleManagement.ReadWrite.Directory`: 403), and the last owner of a group cannot be
//!   removed (400); application and service principal owner changes need
//!   `Application.ReadWrite.All`, reads `Application.Read.All`, and their last owner may go
//!   (Graph only recommends two owners).
//! - Devices ([`GraphTenant::add_device`]): `ownedDevices`/`registeredDevices`,
//!   `GET`/`PATCH /devices/{id}` (`Device.Read.All`/`Device.ReadWrite.All`; the token is
//!   app-only, so setting `accountEnabled` of a non-Windows device is a 403
//!   `Authorization_RequestDenied`, as Graph answers). Intune managed devices
//!   ([`GraphTenant::add_managed_device`]): the user's `managedDevices` (primary user only),
//!   `GET /deviceManagement/managedDevices/{id}` (`DeviceManagementManagedDevices.Read.All`),
//!   `POST …/wipe` (body: its optional parameters) and `…/retire` (no body), 204, needing
//!   `DeviceManagementManagedDevices.PrivilegedOperations.All`; each records a `pending`
//!   entry in `deviceActionResults`.
//! - Entitlement management ([`GraphTenant::add_access_package`],
//!   [`GraphTenant::assign_access_package`], [`GraphTenant::request_access_package`]):
//!   assignments and assignment requests listed with exactly one supported `$filter` each
//!   (the target's `objectId`; anything else a 400) and `$expand` of their navigation
//!   properties; `adminRemove`/`adminAdd` requests (201 `submitted`) are processed
//!   asynchronously ([`GraphTenant::deliver_access_package_requests`]); app-only `cancel` is a
//!   403. Reads need `EntitlementManagement.Read.All`, requests
//!   `EntitlementManagement.ReadWrite.All`. See `routes/governance.rs`.
//! - Teams ([`GraphTenant::add_team`], Microsoft 365 groups with a team):
//!   `joinedTeams` (`Team.ReadBasic.All`), `GET /teams/{id}/members` (`TeamMember.Read.All`,
//!   opaque membership ids, `userId`) and `DELETE …/members/{membership-id}`
//!   (`TeamMember.ReadWrite.All`, 204; the last owner is a 400). See `routes/teams.rs`.
//! - Calendars ([`GraphTenant::add_meeting`]): `GET /users/{id}/events` (`Calendars.Read`)
//!   and `POST …/events/{e}/cancel` (`Calendars.ReadWrite`, `{"Comment"}`, 202; an attendee
//!   gets a 400; the event moves to Deleted Items, attendees' copies record the
//!   cancellation). See `routes/calendar.rs`.
//! - Directory roles (`routes/roles.rs`): built-in and custom role definitions, active role
//!   assignments and PIM eligibilities of users and role-assignable groups, tenant-wide or
//!   scoped to an administrative unit; the legacy `/directoryRoles` view and `memberOf`'s
//!   `directoryRole` entries are derived from the tenant-wide active assignments
//!   ([`GraphTenant::assign_role`], [`GraphTenant::add_role_eligibility`]). Reads need
//!   `RoleManagement.Read.Directory`, changes `RoleManagement.ReadWrite.Directory`
//!   ([`GraphTenant::grant_role_management`]).
//! - App role assignments (POST 201, a duplicate is a 400), oauth2PermissionGrants
//!   (`Principal` and `AllPrincipals`), authentication methods (password and the 7 deletable
//!   kinds; the path kind must match the method's type).
//! - Licences: `subscribedSkus`, `licenseDetails`, `assignLicense` (both arrays required;
//!   removing an inherited-only SKU, or one the user lacks, is a 400; adding needs
//!   `usageLocation` and a known SKU with free units).
//! - Mailbox: `mailboxSettings` (`automaticRepliesSetting` merged by PATCH, 200; a plain
//!   text reply message is stored and read back wrapped in HTML, as Exchange does), inbox
//!   `messageRules` (`inbox` well-known name); a user without a mailbox gets a 404
//!   `MailboxNotEnabledForRESTAPI`.
//! - OneDrive: `GET /users/{id}/drive`, the root item, its permissions and `invite` (each
//!   invite adds permissions, as Graph does not promise idempotency).
//! - Soft delete: `DELETE /users/{id}` keeps the user (with memberships, licences, roles) in
//!   `/directory/deletedItems` for the retention period (30 days by default,
//!   [`GraphTenant::set_retention`]); `restore` brings it back; `DELETE` there is permanent.
//! - `POST /$batch`: at most 20 items, unique ids, `headers` with `Content-Type` when a body
//!   is present, `dependsOn` (a failed dependency gives 424); each item runs against the same
//!   state and is throttled on its own (a 429 item inside a 200 batch).
//! - Throttling ([`GraphLimits`]): token buckets of resource units (Graph's published
//!   identity cost table, vendored in `specs/microsoft-graph/identity-resource-units.costs.txt`:
//!   1 by default, `GET /users`, `memberOf`, `transitiveMemberOf`, `ownedObjects`,
//!   `licenseDetails`, `oauth2PermissionGrants`, `applications` 2, `subscribedSkus`,
//!   `groups/{id}/members` 3, `groups/{id}/transitiveMembers` 5, …; `$select` −1, `$expand`
//!   +1, `$top` < 20 −1, never below one; each `$batch` item on its own) and of writes; 429
//!   `TooManyRequests` with `Retry-After` seconds, `x-ms-throttle-scope`
//!   (`Tenant_Application/ReadWrite|Write/{app}/{tenant}`) and `x-ms-throttle-information`
//!   (`ResourceUnitLimitExceeded`, `WriteLimitExceeded`); `x-ms-resource-unit` on every
//!   identity answer and `x-ms-throttle-limit-percentage` from 80 % used. Throttled requests
//!   still count. Outlook routes have their own per-mailbox budget.
//! - Faults ([`Faults`]): shares of 503s, 429s and dropped answers (the change is made, the
//!   answer is held back past any client timeout), added latency, the next N requests
//!   failing with a chosen status, and one operation failing always
//!   ([`GraphTenant::fail_route`]).
//! - Authentication: `Authorization: Bearer <token>` minted by the token endpoint
//!   (client credentials with the client secret, or a `client_assertion` JWT); anything else
//!   is a 401 `InvalidAuthenticationToken`.
//!
//! # Example
//! ```
//! use offboard_testkit::sim::graph::{GraphTenant, NewUser};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let entra = GraphTenant::start().await;
//! let id = entra.add_user(NewUser::new("jane@example.com"));
//! assert!(entra.user(&id).unwrap().account_enabled);
//! # }
//! ```

mod filter;
mod fixture;
mod routes;

use super::layer::{self, Answer, Handler, Layer, respond, template_matches};
pub use super::layer::{Faults, RecordedRequest};
pub use fixture::GraphFixture;
pub use routes::calendar::{MeetingState, NewMeeting};
pub use routes::devices::{DeviceState, ManagedDeviceState, NewDevice, NewManagedDevice};
pub use routes::governance::{AccessPackageAssignmentState, AccessPackageRequestState};
pub use routes::roles::{BUILT_IN_ROLES, RoleGrantState};
pub use routes::workflows::{
    DISABLE_USER_TASK, NewWorkflow, REMOVE_ALL_GROUPS_TASK, WorkflowRunState,
};
/// Template ids of Entra built-in roles the simulated tenant knows (see [`BUILT_IN_ROLES`]).
pub mod role_templates {
    pub use super::routes::roles::{
        GLOBAL_ADMINISTRATOR, GLOBAL_READER, HELPDESK_ADMINISTRATOR, PRIVILEGED_ROLE_ADMINISTRATOR,
        REPORTS_READER, SECURITY_ADMINISTRATOR, USER_ADMINISTRATOR,
    };
}

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::{MockServer, Request, ResponseTemplate};

/// The throttling budgets.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphLimits {
    /// Identity resource units per `window` (per app and tenant).
    pub resource_units: u32,
    /// The resource-unit window (Graph: 10 s).
    pub window: Duration,
    /// Identity writes per `write_window`.
    pub writes: u32,
    /// The write window (Graph: 2 min 30 s).
    pub write_window: Duration,
    /// Outlook requests per mailbox per `outlook_window`.
    pub outlook_per_mailbox: u32,
    /// The Outlook window (Graph: 10 min).
    pub outlook_window: Duration,
}

impl GraphLimits {
    /// Graph's published limits for a small tenant: 3,500 RU per 10 s, 3,000 writes per
    /// 2 min 30 s, 10,000 Outlook requests per mailbox per 10 min.
    pub fn small_tenant() -> Self {
        Self {
            resource_units: 3500,
            window: Duration::from_secs(10),
            writes: 3000,
            write_window: Duration::from_secs(150),
            outlook_per_mailbox: 10_000,
            outlook_window: Duration::from_secs(600),
        }
    }

    /// The same rates with budgets and windows divided by `factor` (windows at least 1 s), so
    /// a test reaches them quickly and waits little.
    pub fn scaled(mut self, factor: u32) -> Self {
        let f = factor.max(1);
        let div = |d: Duration| (d / f).max(Duration::from_secs(1));
        self.resource_units = (self.resource_units / f).max(1);
        self.writes = (self.writes / f).max(1);
        self.outlook_per_mailbox = (self.outlook_per_mailbox / f).max(1);
        self.window = div(self.window);
        self.write_window = div(self.write_window);
        self.outlook_window = div(self.outlook_window);
        self
    }

    /// Sets the resource units per window.
    pub fn with_resource_units(mut self, ru: u32, window: Duration) -> Self {
        self.resource_units = ru.max(1);
        self.window = window.max(Duration::from_millis(1));
        self
    }

    /// Sets the writes per window.
    pub fn with_writes(mut self, writes: u32, window: Duration) -> Self {
        self.writes = writes.max(1);
        self.write_window = window.max(Duration::from_millis(1));
        self
    }
}

impl Default for GraphLimits {
    fn default() -> Self {
        Self::small_tenant()
    }
}

/// The kinds of authentication method.
pub const AUTH_METHOD_KINDS: [&str; 8] = [
    "password",
    "phone",
    "microsoftAuthenticator",
    "fido2",
    "softwareOath",
    "email",
    "windowsHelloForBusiness",
    "temporaryAccessPass",
];

/// A user to create with [`GraphTenant::add_user`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// `userPrincipalName`.
    pub upn: String,
    /// `mail` (default: the UPN).
    pub mail: Option<String>,
    /// `displayName`.
    pub display_name: String,
    /// `accountEnabled`.
    pub account_enabled: bool,
    /// `onPremisesSyncEnabled`.
    pub on_premises_sync: bool,
    /// `onPremisesImmutableId` (the AD anchor of a synced or once-synced user).
    pub immutable_id: Option<String>,
    /// `usageLocation`.
    pub usage_location: Option<String>,
    /// Manager's user id.
    pub manager: Option<String>,
    /// Group ids (membership; for dynamic groups as if the rule matched).
    pub groups: Vec<String>,
    /// Directory role ids.
    pub roles: Vec<String>,
    /// Directly assigned SKU ids.
    pub licenses: Vec<String>,
    /// Authentication method kinds besides `password` (see [`AUTH_METHOD_KINDS`]).
    pub auth_methods: Vec<String>,
    /// Whether the user has an Exchange Online mailbox.
    pub mailbox: bool,
    /// Whether the user has a OneDrive.
    pub drive: bool,
    /// `employeeId`.
    pub employee_id: Option<String>,
    /// `proxyAddresses` (e.g. `SMTP:jane@example.com`, `smtp:j.doe@example.com`); when
    /// empty, a user with a mailbox gets `SMTP:` and its `mail`, as Exchange sets it.
    pub proxy_addresses: Vec<String>,
    /// `otherMails`.
    pub other_mails: Vec<String>,
}

impl NewUser {
    /// An enabled cloud-only user with a mailbox, a OneDrive and a password, nothing else.
    pub fn new(upn: impl Into<String>) -> Self {
        Self {
            upn: upn.into(),
            mail: None,
            display_name: "Sim User".into(),
            account_enabled: true,
            on_premises_sync: false,
            immutable_id: None,
            usage_location: Some("US".into()),
            manager: None,
            groups: Vec::new(),
            roles: Vec::new(),
            licenses: Vec::new(),
            auth_methods: Vec::new(),
            mailbox: true,
            drive: true,
            employee_id: None,
            proxy_addresses: Vec::new(),
            other_mails: Vec::new(),
        }
    }
}

/// A group to create with [`GraphTenant::add_group`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGroup {
    /// `displayName`.
    pub display_name: String,
    /// `groupTypes` contains `DynamicMembership`.
    pub dynamic: bool,
    /// `onPremisesSyncEnabled`.
    pub on_premises_sync: bool,
    /// SKU ids assigned to the group (group-based licensing).
    pub licenses: Vec<String>,
    /// Owner user ids.
    pub owners: Vec<String>,
    /// `mailEnabled`.
    pub mail_enabled: bool,
    /// `securityEnabled`.
    pub security_enabled: bool,
    /// `groupTypes` contains `Unified` (a Microsoft 365 group).
    pub unified: bool,
    /// `isAssignableToRole`.
    pub role_assignable: bool,
}

impl NewGroup {
    /// An assigned (static), cloud-only security group.
    pub fn assigned(name: impl Into<String>) -> Self {
        Self {
            display_name: name.into(),
            dynamic: false,
            on_premises_sync: false,
            licenses: Vec::new(),
            owners: Vec::new(),
            mail_enabled: false,
            security_enabled: true,
            unified: false,
            role_assignable: false,
        }
    }

    /// A Microsoft 365 group (`Unified`, mail-enabled, not a security group): its members
    /// are changed through Graph.
    pub fn microsoft_365(name: impl Into<String>) -> Self {
        Self {
            unified: true,
            mail_enabled: true,
            security_enabled: false,
            ..Self::assigned(name)
        }
    }

    /// A mail-enabled security group: its members are managed in Exchange Online.
    pub fn mail_enabled_security(name: impl Into<String>) -> Self {
        Self {
            mail_enabled: true,
            ..Self::assigned(name)
        }
    }

    /// A distribution list (mail-enabled, not a security group): managed in Exchange Online.
    pub fn distribution_list(name: impl Into<String>) -> Self {
        Self {
            mail_enabled: true,
            security_enabled: false,
            ..Self::assigned(name)
        }
    }

    /// A role-assignable security group (`isAssignableToRole`): changing its members needs
    /// `RoleManagement.ReadWrite.Directory` ([`GraphTenant::grant_role_management`]).
    pub fn role_assignable(name: impl Into<String>) -> Self {
        Self {
            role_assignable: true,
            ..Self::assigned(name)
        }
    }

    /// A dynamic group.
    pub fn dynamic(name: impl Into<String>) -> Self {
        Self {
            dynamic: true,
            ..Self::assigned(name)
        }
    }

    /// A group synced from on-premises AD.
    pub fn synced(name: impl Into<String>) -> Self {
        Self {
            on_premises_sync: true,
            ..Self::assigned(name)
        }
    }
}

/// A user's state, read directly from the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GraphUserState {
    /// Id.
    pub id: String,
    /// `userPrincipalName`.
    pub upn: String,
    /// `accountEnabled`.
    pub account_enabled: bool,
    /// `onPremisesSyncEnabled`.
    pub on_premises_sync: bool,
    /// Soft-deleted (in `/directory/deletedItems`).
    pub deleted: bool,
    /// `signInSessionsValidFromDateTime`.
    pub sessions_valid_from: String,
    /// The manager's user id (`manager`).
    pub manager: Option<String>,
    /// `onPremisesImmutableId`.
    pub immutable_id: Option<String>,
    /// How many times sessions were revoked.
    pub session_revocations: u32,
    /// Group ids.
    pub groups: BTreeSet<String>,
    /// Directory role ids.
    pub roles: BTreeSet<String>,
    /// Group ids the user owns.
    pub owned_groups: BTreeSet<String>,
    /// Application (app registration) ids the user owns.
    pub owned_applications: BTreeSet<String>,
    /// Service principal (enterprise app) ids the user owns.
    pub owned_service_principals: BTreeSet<String>,
    /// App role assignments: (resource id, app role id).
    pub app_roles: BTreeSet<(String, String)>,
    /// `Principal` grant ids of the user.
    pub grants: BTreeSet<String>,
    /// Authentication method kinds (with `password`).
    pub auth_methods: Vec<String>,
    /// Directly assigned SKU ids.
    pub licenses: BTreeSet<String>,
    /// SKU ids inherited from groups.
    pub inherited_licenses: BTreeSet<String>,
    /// `usageLocation`.
    pub usage_location: Option<String>,
    /// `mailboxSettings.automaticRepliesSetting`, when the user has a mailbox.
    pub automatic_replies: Option<Value>,
    /// Inbox rules.
    pub message_rules: Vec<Value>,
    /// Permissions on the OneDrive root, when the user has a drive.
    pub drive_permissions: Vec<Value>,
}

#[derive(Debug, Clone)]
struct User {
    id: String,
    upn: String,
    mail: Option<String>,
    display_name: String,
    account_enabled: bool,
    on_premises_sync: bool,
    immutable_id: Option<String>,
    usage_location: Option<String>,
    manager: Option<String>,
    employee_id: Option<String>,
    sessions_valid_from: String,
    revocations: u32,
    licenses: BTreeSet<String>,
    auth_methods: Vec<(String, String)>,
    mailbox: Option<Mailbox>,
    drive: Option<String>,
    created: String,
    deleted_at: Option<(Instant, String)>,
    proxy_addresses: Vec<String>,
    other_mails: Vec<String>,
}

#[derive(Debug, Clone)]
struct Mailbox {
    automatic_replies: Value,
    rules: Vec<Value>,
}

#[derive(Debug, Clone)]
struct Group {
    display_name: String,
    dynamic: bool,
    on_premises_sync: bool,
    members: BTreeSet<String>,
    owners: BTreeSet<String>,
    licenses: Vec<String>,
    mail_enabled: bool,
    security_enabled: bool,
    unified: bool,
    role_assignable: bool,
}

#[derive(Debug, Clone)]
struct AppRoleAssignment {
    principal: String,
    resource: String,
    app_role: String,
    created: String,
}

#[derive(Debug, Clone)]
struct Grant {
    client: String,
    consent_type: String,
    principal: Option<String>,
    resource: String,
    scope: String,
}

#[derive(Debug, Clone)]
struct Sku {
    part_number: String,
    enabled: u32,
}

#[derive(Debug, Clone)]
struct Drive {
    owner: String,
    root: String,
    permissions: Vec<Value>,
}

#[derive(Debug, Clone)]
struct Application {
    display_name: String,
    app_id: String,
    owners: BTreeSet<String>,
}

#[derive(Debug, Clone)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// Takes `cost` from a bucket of `capacity` refilled over `window`; a throttled take
    /// still counts. `Err(seconds to wait)` when short.
    fn take(&mut self, cost: f64, capacity: f64, window: Duration) -> Result<f64, u64> {
        let now = Instant::now();
        let rate = capacity / window.as_secs_f64().max(0.001);
        self.tokens =
            (self.tokens + rate * now.duration_since(self.at).as_secs_f64()).min(capacity);
        self.at = now;
        let short = self.tokens < cost;
        self.tokens = (self.tokens - cost).max(-capacity);
        if short {
            let wait = (cost - self.tokens) / rate;
            return Err(wait.ceil().max(1.0) as u64);
        }
        Ok(self.tokens)
    }

    fn full(capacity: f64) -> Self {
        Self {
            tokens: capacity,
            at: Instant::now(),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    users: BTreeMap<String, User>,
    groups: BTreeMap<String, Group>,
    roles: routes::roles::Roles,
    service_principals: BTreeMap<String, String>,
    sp_owners: BTreeMap<String, BTreeSet<String>>,
    app_roles: BTreeMap<String, AppRoleAssignment>,
    grants: BTreeMap<String, Grant>,
    skus: BTreeMap<String, Sku>,
    drives: BTreeMap<String, Drive>,
    applications: BTreeMap<String, Application>,
    devices: BTreeMap<String, routes::devices::Device>,
    managed_devices: BTreeMap<String, routes::devices::ManagedDevice>,
    workflows: BTreeMap<String, routes::workflows::Workflow>,
    governance: routes::governance::Governance,
    teams: routes::teams::Teams,
    calendars: routes::calendar::Calendars,
    /// Recording, faults and counters.
    layer: Layer,
    limits: GraphLimits,
    ru: Option<Bucket>,
    writes: Option<Bucket>,
    outlook: BTreeMap<String, Bucket>,
    route_faults: Vec<(String, String, u16)>,
    role_management: bool,
    withheld: BTreeSet<String>,
    ru_served: u64,
    writes_served: u64,
    /// Writes (not GET) answered 2xx, top level and batch items, by `METHOD path body`.
    served_writes: BTreeMap<String, u64>,
    token_requests: u64,
    page_size: usize,
    retention: Duration,
    base: String,
    /// The change log `GET /users/delta()` reads (see [`UserChanges`]).
    delta: UserChanges,
}

/// Per user, when it last changed: the change log of `GET /users/delta()`. Sequence numbers
/// grow with each change; a delta token is the number its round was cut at.
#[derive(Debug, Default)]
struct UserChanges {
    /// The last sequence number given out.
    seq: u64,
    /// Tokens cut before this one are expired (410 `syncStateNotFound`).
    floor: u64,
    /// Live or soft-deleted user id → the sequence number of its last change.
    changed: BTreeMap<String, u64>,
    /// Hard-deleted user id → when it was deleted.
    purged: BTreeMap<String, u64>,
    /// Whether incremental rounds list updated users with `id` and `displayName` only.
    partial: bool,
}

impl State {
    /// Notes a change of user `id` (created, updated, disabled, soft-deleted, restored) in the
    /// delta change log.
    fn touch(&mut self, id: &str) {
        self.delta.seq += 1;
        self.delta.changed.insert(id.to_owned(), self.delta.seq);
    }

    /// Forgets soft-deleted users past the retention period.
    fn purge(&mut self) {
        let retention = self.retention;
        let expired: Vec<String> = self
            .users
            .values()
            .filter(|u| {
                u.deleted_at
                    .as_ref()
                    .is_some_and(|(at, _)| at.elapsed() >= retention)
            })
            .map(|u| u.id.clone())
            .collect();
        for id in expired {
            self.remove_user(&id);
        }
    }

    /// Removes a user and everything that points at it.
    fn remove_user(&mut self, id: &str) {
        if self.users.remove(id).is_some() {
            self.delta.seq += 1;
            self.delta.changed.remove(id);
            self.delta.purged.insert(id.to_owned(), self.delta.seq);
        }
        for g in self.groups.values_mut() {
            g.members.remove(id);
            g.owners.remove(id);
        }
        self.roles.forget(id);
        for a in self.applications.values_mut() {
            a.owners.remove(id);
        }
        for owners in self.sp_owners.values_mut() {
            owners.remove(id);
        }
        self.app_roles.retain(|_, a| a.principal != id);
        self.grants
            .retain(|_, g| g.principal.as_deref() != Some(id));
        self.drives.retain(|_, d| d.owner != id);
        self.remove_device_owner(id);
        self.remove_governance_of(id);
    }
}

#[derive(Debug)]
struct Shared {
    tenant_id: String,
    client_id: String,
    client_secret: String,
    access_token: String,
    state: Mutex<State>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        layer::lock(&self.state)
    }
}

/// The simulated Microsoft tenant. See the [module docs](self).
#[derive(Debug)]
pub struct GraphTenant {
    server: MockServer,
    shared: Arc<Shared>,
}

/// Rewrites the spellings Graph accepts for one operation to the form of
/// [`GraphTenant::ROUTES`]: the Lifecycle Workflows `activate` action is spelled
/// `microsoft.graph.identityGovernance.activate` (canonical), `identityGovernance.activate`
/// (the reduced spec) or `activate` (the docs page).
fn canonical_segments(segments: &mut [String]) {
    if segments.len() == 6
        && segments[1..4] == ["identityGovernance", "lifecycleWorkflows", "workflows"]
        && matches!(
            segments[5].as_str(),
            "microsoft.graph.identityGovernance.activate" | "activate"
        )
    {
        segments[5] = "identityGovernance.activate".to_owned();
    }
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn now_iso() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A Graph error body.
fn error_body(code: &str, message: &str) -> Value {
    json!({
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": now_iso(),
                "request-id": new_id(),
                "client-request-id": new_id(),
            }
        }
    })
}

impl GraphTenant {
    /// Every Graph route served, as `(METHOD, path template)` exactly as in the official spec
    /// (relative to `/v1.0`), plus `POST /$batch` from the hand-written batch spec.
    pub const ROUTES: &'static [(&'static str, &'static str)] = &[
        ("GET", "/users"),
        ("GET", "/users/delta()"),
        ("GET", "/users/{user-id}"),
        ("PATCH", "/users/{user-id}"),
        ("DELETE", "/users/{user-id}"),
        ("GET", "/users/{user-id}/manager"),
        ("PUT", "/users/{user-id}/manager/$ref"),
        ("DELETE", "/users/{user-id}/manager/$ref"),
        ("POST", "/users/{user-id}/revokeSignInSessions"),
        ("POST", "/users/{user-id}/assignLicense"),
        ("GET", "/users/{user-id}/licenseDetails"),
        ("GET", "/subscribedSkus"),
        ("GET", "/users/{user-id}/memberOf"),
        ("GET", "/users/{user-id}/transitiveMemberOf"),
        ("GET", "/groups/{group-id}"),
        ("GET", "/groups/{group-id}/owners"),
        ("POST", "/groups/{group-id}/owners/$ref"),
        ("POST", "/groups/{group-id}/members/$ref"),
        (
            "DELETE",
            "/groups/{group-id}/members/{directoryObject-id}/$ref",
        ),
        (
            "DELETE",
            "/groups/{group-id}/owners/{directoryObject-id}/$ref",
        ),
        ("GET", "/users/{user-id}/ownedObjects"),
        ("GET", "/applications/{application-id}/owners"),
        ("POST", "/applications/{application-id}/owners/$ref"),
        (
            "DELETE",
            "/applications/{application-id}/owners/{directoryObject-id}/$ref",
        ),
        ("GET", "/servicePrincipals/{servicePrincipal-id}/owners"),
        (
            "POST",
            "/servicePrincipals/{servicePrincipal-id}/owners/$ref",
        ),
        (
            "DELETE",
            "/servicePrincipals/{servicePrincipal-id}/owners/{directoryObject-id}/$ref",
        ),
        ("GET", "/users/{user-id}/ownedDevices"),
        ("GET", "/users/{user-id}/registeredDevices"),
        ("GET", "/devices/{device-id}"),
        ("PATCH", "/devices/{device-id}"),
        ("GET", "/users/{user-id}/managedDevices"),
        ("GET", "/deviceManagement/managedDevices/{managedDevice-id}"),
        (
            "POST",
            "/deviceManagement/managedDevices/{managedDevice-id}/wipe",
        ),
        (
            "POST",
            "/deviceManagement/managedDevices/{managedDevice-id}/retire",
        ),
        ("GET", "/identityGovernance/lifecycleWorkflows/workflows"),
        (
            "POST",
            "/identityGovernance/lifecycleWorkflows/workflows/{workflow-id}/identityGovernance.activate",
        ),
        (
            "GET",
            "/identityGovernance/lifecycleWorkflows/workflows/{workflow-id}/userProcessingResults",
        ),
        (
            "GET",
            "/identityGovernance/entitlementManagement/assignments",
        ),
        (
            "GET",
            "/identityGovernance/entitlementManagement/assignmentRequests",
        ),
        (
            "POST",
            "/identityGovernance/entitlementManagement/assignmentRequests",
        ),
        (
            "POST",
            "/identityGovernance/entitlementManagement/assignmentRequests/{accessPackageAssignmentRequest-id}/cancel",
        ),
        ("GET", "/users/{user-id}/joinedTeams"),
        ("GET", "/teams/{team-id}/members"),
        ("DELETE", "/teams/{team-id}/members/{conversationMember-id}"),
        ("GET", "/users/{user-id}/events"),
        ("POST", "/users/{user-id}/events/{event-id}/cancel"),
        ("GET", "/users/{user-id}/appRoleAssignments"),
        ("POST", "/users/{user-id}/appRoleAssignments"),
        (
            "DELETE",
            "/users/{user-id}/appRoleAssignments/{appRoleAssignment-id}",
        ),
        ("GET", "/users/{user-id}/oauth2PermissionGrants"),
        ("GET", "/oauth2PermissionGrants"),
        (
            "DELETE",
            "/oauth2PermissionGrants/{oAuth2PermissionGrant-id}",
        ),
        ("GET", "/users/{user-id}/authentication/methods"),
        (
            "DELETE",
            "/users/{user-id}/authentication/phoneMethods/{phoneAuthenticationMethod-id}",
        ),
        (
            "DELETE",
            "/users/{user-id}/authentication/microsoftAuthenticatorMethods/{microsoftAuthenticatorAuthenticationMethod-id}",
        ),
        (
            "DELETE",
            "/users/{user-id}/authentication/fido2Methods/{fido2AuthenticationMethod-id}",
        ),
        (
            "DELETE",
            "/users/{user-id}/authentication/softwareOathMethods/{softwareOathAuthenticationMethod-id}",
        ),
        (
            "DELETE",
            "/users/{user-id}/authentication/emailMethods/{emailAuthenticationMethod-id}",
        ),
        (
            "DELETE",
            "/users/{user-id}/authentication/windowsHelloForBusinessMethods/{windowsHelloForBusinessAuthenticationMethod-id}",
        ),
        (
            "DELETE",
            "/users/{user-id}/authentication/temporaryAccessPassMethods/{temporaryAccessPassAuthenticationMethod-id}",
        ),
        ("GET", "/users/{user-id}/mailboxSettings"),
        ("PATCH", "/users/{user-id}/mailboxSettings"),
        (
            "GET",
            "/users/{user-id}/mailFolders/{mailFolder-id}/messageRules",
        ),
        (
            "POST",
            "/users/{user-id}/mailFolders/{mailFolder-id}/messageRules",
        ),
        (
            "DELETE",
            "/users/{user-id}/mailFolders/{mailFolder-id}/messageRules/{messageRule-id}",
        ),
        ("GET", "/users/{user-id}/drive"),
        ("GET", "/drives/{drive-id}/root"),
        ("GET", "/drives/{drive-id}/root/permissions"),
        ("POST", "/drives/{drive-id}/root/invite"),
        ("POST", "/drives/{drive-id}/items/{driveItem-id}/invite"),
        ("GET", "/drives/{drive-id}/items/{driveItem-id}/permissions"),
        ("GET", "/directory/deletedItems/{directoryObject-id}"),
        ("DELETE", "/directory/deletedItems/{directoryObject-id}"),
        (
            "POST",
            "/directory/deletedItems/{directoryObject-id}/restore",
        ),
        ("GET", "/directoryRoles"),
        ("GET", "/directoryRoles/{directoryRole-id}/members"),
        (
            "DELETE",
            "/directoryRoles/{directoryRole-id}/members/{directoryObject-id}/$ref",
        ),
        ("GET", "/roleManagement/directory/roleAssignments"),
        (
            "DELETE",
            "/roleManagement/directory/roleAssignments/{unifiedRoleAssignment-id}",
        ),
        ("GET", "/roleManagement/directory/roleEligibilitySchedules"),
        (
            "POST",
            "/roleManagement/directory/roleEligibilityScheduleRequests",
        ),
        (
            "POST",
            "/roleManagement/directory/roleAssignmentScheduleRequests",
        ),
        ("POST", "/$batch"),
    ];

    /// Whether `method` on these path segments (below `/v1.0`) matches one of
    /// [`GraphTenant::ROUTES`] (`{x}` matches any one segment). Nothing else is served: every
    /// other request is a 400 before it reaches a handler.
    pub fn serves(method: &str, segments: &[&str]) -> bool {
        Self::ROUTES
            .iter()
            .any(|(m, template)| *m == method && template_matches(template, segments))
    }

    /// Starts a tenant with random credentials and [`GraphLimits::small_tenant`].
    pub async fn start() -> Self {
        Self::start_with(GraphLimits::small_tenant()).await
    }

    /// Starts a tenant with these limits.
    pub async fn start_with(limits: GraphLimits) -> Self {
        let shared = Arc::new(Shared {
            tenant_id: new_id(),
            client_id: new_id(),
            client_secret: format!("sim~graph~{}", uuid::Uuid::new_v4().simple()),
            access_token: format!("eyJsim.{}.graph", uuid::Uuid::new_v4().simple()),
            state: Mutex::new(State {
                limits,
                page_size: 100,
                retention: Duration::from_secs(30 * 24 * 3600),
                ..State::default()
            }),
        });
        let server = MockServer::start().await;
        layer::serve(&server, Arc::clone(&shared)).await;
        shared.state().base = server.uri();
        Self { server, shared }
    }

    /// The server's base URL (`http://127.0.0.1:<port>`).
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// Graph's version root, `<uri>/v1.0` (for `https://graph.microsoft.com/v1.0`).
    pub fn graph_url(&self) -> String {
        format!("{}/v1.0", self.server.uri())
    }

    /// The token endpoint, `<uri>/<tenant>/oauth2/v2.0/token`.
    pub fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.server.uri(),
            self.shared.tenant_id
        )
    }

    /// The tenant id.
    pub fn tenant_id(&self) -> &str {
        &self.shared.tenant_id
    }

    /// The app registration's client id.
    pub fn client_id(&self) -> &str {
        &self.shared.client_id
    }

    /// The app registration's client secret.
    pub fn client_secret(&self) -> &str {
        &self.shared.client_secret
    }

    /// The access token the token endpoint mints (and Graph accepts).
    pub fn access_token(&self) -> &str {
        &self.shared.access_token
    }

    /// How many token requests were answered with a token.
    pub fn token_requests(&self) -> u64 {
        self.shared.state().token_requests
    }

    /// Adds a SKU with `enabled` units; returns its `skuId`.
    pub fn add_sku(&self, part_number: impl Into<String>, enabled: u32) -> String {
        let id = new_id();
        self.shared.state().skus.insert(
            id.clone(),
            Sku {
                part_number: part_number.into(),
                enabled,
            },
        );
        id
    }

    /// Adds a group; returns its id.
    pub fn add_group(&self, new: NewGroup) -> String {
        let id = new_id();
        self.shared.state().groups.insert(
            id.clone(),
            Group {
                display_name: new.display_name,
                dynamic: new.dynamic,
                on_premises_sync: new.on_premises_sync,
                members: BTreeSet::new(),
                owners: new.owners.into_iter().collect(),
                licenses: new.licenses,
                mail_enabled: new.mail_enabled,
                security_enabled: new.security_enabled,
                unified: new.unified,
                role_assignable: new.role_assignable,
            },
        );
        id
    }

    /// Grants the app `RoleManagement.ReadWrite.Directory` (and
    /// `RoleEligibilitySchedule.ReadWrite.Directory`), which changing the members of a
    /// role-assignable group and every role assignment or eligibility change need (without it
    /// Graph answers 403). [`GraphTenant::withhold_permission`] withdraws it again.
    pub fn grant_role_management(&self) {
        self.shared.state().role_management = true;
    }

    /// Withdraws an application permission (e.g. `User.ReadWrite.All`,
    /// `Application.ReadWrite.All`) from the app's token: the operations that need it then
    /// answer 403 `Authorization_RequestDenied`, as Graph does. The app holds every
    /// permission the served operations need until one is withdrawn.
    pub fn withhold_permission(&self, permission: &str) {
        self.shared.state().withheld.insert(permission.to_owned());
    }

    /// Makes `user` an owner of `group`.
    pub fn add_group_owner(&self, group: &str, user: &str) {
        if let Some(g) = self.shared.state().groups.get_mut(group) {
            g.owners.insert(user.to_owned());
        }
    }

    /// Adds a service principal (an enterprise app, e.g. "Salesforce"); returns its id.
    pub fn add_service_principal(&self, display_name: impl Into<String>) -> String {
        let id = new_id();
        self.shared
            .state()
            .service_principals
            .insert(id.clone(), display_name.into());
        id
    }

    /// Makes `user` an owner of service principal `sp`.
    pub fn add_service_principal_owner(&self, sp: &str, user: &str) {
        let mut s = self.shared.state();
        if s.service_principals.contains_key(sp) {
            s.sp_owners
                .entry(sp.to_owned())
                .or_default()
                .insert(user.to_owned());
        }
    }

    /// The owner user ids of a group, application or service principal (empty for an
    /// unknown id).
    pub fn owners(&self, object: &str) -> BTreeSet<String> {
        let s = self.shared.state();
        s.groups
            .get(object)
            .map(|g| g.owners.clone())
            .or_else(|| s.applications.get(object).map(|a| a.owners.clone()))
            .or_else(|| s.sp_owners.get(object).cloned())
            .unwrap_or_default()
    }

    /// Adds an application registration owned by `owners`; returns its id.
    pub fn add_application(&self, display_name: impl Into<String>, owners: &[&str]) -> String {
        let id = new_id();
        self.shared.state().applications.insert(
            id.clone(),
            Application {
                display_name: display_name.into(),
                app_id: new_id(),
                owners: owners.iter().map(|o| (*o).to_owned()).collect(),
            },
        );
        id
    }

    /// Assigns `user` the app role `app_role` of service principal `resource`; returns the
    /// assignment id.
    pub fn assign_app_role(&self, user: &str, resource: &str, app_role: &str) -> String {
        let id = new_id();
        self.shared.state().app_roles.insert(
            id.clone(),
            AppRoleAssignment {
                principal: user.to_owned(),
                resource: resource.to_owned(),
                app_role: app_role.to_owned(),
                created: now_iso(),
            },
        );
        id
    }

    /// Adds a delegated permission grant of client (service principal) `client` to resource
    /// `resource`: for `principal` (`Principal`) or, with `None`, tenant-wide
    /// (`AllPrincipals`). Returns its id.
    pub fn add_grant(
        &self,
        client: &str,
        resource: &str,
        principal: Option<&str>,
        scope: &str,
    ) -> String {
        let id = format!("sim{}", uuid::Uuid::new_v4().simple());
        self.shared.state().grants.insert(
            id.clone(),
            Grant {
                client: client.to_owned(),
                consent_type: if principal.is_some() {
                    "Principal".into()
                } else {
                    "AllPrincipals".into()
                },
                principal: principal.map(str::to_owned),
                resource: resource.to_owned(),
                scope: scope.to_owned(),
            },
        );
        id
    }

    /// Creates a user; returns its id.
    pub fn add_user(&self, new: NewUser) -> String {
        let mut s = self.shared.state();
        let id = new_id();
        for g in &new.groups {
            if let Some(group) = s.groups.get_mut(g) {
                group.members.insert(id.clone());
            }
        }
        for r in &new.roles {
            s.roles.add_legacy_member(r, &id);
        }
        let mut methods = vec![(
            "28c10230-6103-485e-b985-444c60001490".to_owned(),
            "password".to_owned(),
        )];
        for kind in new.auth_methods {
            methods.push((new_id(), kind));
        }
        let drive = new.drive.then(|| {
            let drive_id = format!("b!sim{}", uuid::Uuid::new_v4().simple());
            s.drives.insert(
                drive_id.clone(),
                Drive {
                    owner: id.clone(),
                    root: format!("01SIM{}", uuid::Uuid::new_v4().simple()).to_uppercase(),
                    permissions: vec![json!({
                        "id": "aTowIy5mfG1lbWJlcnNoaXB8c2ltb3duZXI",
                        "roles": ["owner"],
                        "grantedToV2": {"user": {"id": id, "displayName": new.display_name, "email": new.upn}},
                        "grantedTo": {"user": {"id": id, "displayName": new.display_name, "email": new.upn}},
                        "inheritedFrom": {},
                    })],
                },
            );
            drive_id
        });
        let mail = new.mail.unwrap_or_else(|| new.upn.clone());
        let proxy_addresses = if new.proxy_addresses.is_empty() && new.mailbox {
            vec![format!("SMTP:{mail}")]
        } else {
            new.proxy_addresses
        };
        s.users.insert(
            id.clone(),
            User {
                id: id.clone(),
                mail: Some(mail),
                proxy_addresses,
                other_mails: new.other_mails,
                upn: new.upn,
                display_name: new.display_name,
                account_enabled: new.account_enabled,
                on_premises_sync: new.on_premises_sync,
                immutable_id: new.immutable_id,
                usage_location: new.usage_location,
                manager: new.manager,
                employee_id: new.employee_id,
                sessions_valid_from: "2024-01-01T00:00:00Z".into(),
                revocations: 0,
                licenses: new.licenses.into_iter().collect(),
                auth_methods: methods,
                mailbox: new.mailbox.then(|| Mailbox {
                    automatic_replies: json!({
                        "status": "disabled",
                        "externalAudience": "all",
                        "internalReplyMessage": "",
                        "externalReplyMessage": "",
                        "scheduledStartDateTime": {"dateTime": "2024-01-01T00:00:00.0000000", "timeZone": "UTC"},
                        "scheduledEndDateTime": {"dateTime": "2024-01-02T00:00:00.0000000", "timeZone": "UTC"},
                    }),
                    rules: Vec::new(),
                }),
                drive,
                created: now_iso(),
                deleted_at: None,
            },
        );
        s.touch(&id);
        id
    }

    /// Adds `user` to `group` directly (as an administrator or a dynamic rule would).
    pub fn add_member(&self, group: &str, user: &str) {
        if let Some(g) = self.shared.state().groups.get_mut(group) {
            g.members.insert(user.to_owned());
        }
    }

    /// Deletes a user for good, as an administrator would (no-op when gone).
    pub fn remove_user(&self, id: &str) {
        self.shared.state().remove_user(id);
    }

    /// Plays Entra Connect: sets `accountEnabled` of an on-premises-synced user as AD says.
    pub fn sync_from_ad(&self, id: &str, enabled: bool) {
        let mut s = self.shared.state();
        if let Some(u) = s.users.get_mut(id)
            && u.on_premises_sync
        {
            u.account_enabled = enabled;
            s.touch(id);
        }
    }

    /// Makes incremental `GET /users/delta()` rounds list each updated user with `id` and
    /// `displayName` only, as Graph may ("at least the updated properties").
    pub fn set_partial_delta_updates(&self, partial: bool) {
        self.shared.state().delta.partial = partial;
    }

    /// Expires every delta token given out so far (as Entra does after some days, or after a
    /// tenant restore): `GET /users/delta()` answers them 410 Gone `syncStateNotFound`.
    pub fn expire_delta_tokens(&self) {
        let mut s = self.shared.state();
        s.delta.seq += 1;
        s.delta.floor = s.delta.seq;
    }

    /// Sets the soft-delete retention period (default 30 days); tests shorten it.
    pub fn set_retention(&self, retention: Duration) {
        self.shared.state().retention = retention;
    }

    /// Sets the default page size of collections (default 100).
    pub fn set_page_size(&self, n: usize) {
        self.shared.state().page_size = n.max(1);
    }

    /// A user's current state (soft-deleted users too).
    pub fn user(&self, id: &str) -> Option<GraphUserState> {
        let mut s = self.shared.state();
        s.purge();
        let u = s.users.get(id)?;
        let groups: BTreeSet<String> = s
            .groups
            .iter()
            .filter(|(_, g)| g.members.contains(id))
            .map(|(gid, _)| gid.clone())
            .collect();
        let inherited = s
            .groups
            .values()
            .filter(|g| g.members.contains(id))
            .flat_map(|g| g.licenses.iter().cloned())
            .collect();
        let drive = u.drive.as_ref().and_then(|d| s.drives.get(d));
        Some(GraphUserState {
            id: u.id.clone(),
            upn: u.upn.clone(),
            account_enabled: u.account_enabled,
            on_premises_sync: u.on_premises_sync,
            deleted: u.deleted_at.is_some(),
            sessions_valid_from: u.sessions_valid_from.clone(),
            manager: u.manager.clone(),
            immutable_id: u.immutable_id.clone(),
            session_revocations: u.revocations,
            groups,
            roles: s.roles.legacy_roles_of(id),
            owned_groups: s
                .groups
                .iter()
                .filter(|(_, g)| g.owners.contains(id))
                .map(|(gid, _)| gid.clone())
                .collect(),
            owned_applications: s
                .applications
                .iter()
                .filter(|(_, a)| a.owners.contains(id))
                .map(|(aid, _)| aid.clone())
                .collect(),
            owned_service_principals: s
                .sp_owners
                .iter()
                .filter(|(_, o)| o.contains(id))
                .map(|(sid, _)| sid.clone())
                .collect(),
            app_roles: s
                .app_roles
                .values()
                .filter(|a| a.principal == id)
                .map(|a| (a.resource.clone(), a.app_role.clone()))
                .collect(),
            grants: s
                .grants
                .iter()
                .filter(|(_, g)| g.principal.as_deref() == Some(id))
                .map(|(gid, _)| gid.clone())
                .collect(),
            auth_methods: u.auth_methods.iter().map(|(_, k)| k.clone()).collect(),
            licenses: u.licenses.clone(),
            inherited_licenses: inherited,
            usage_location: u.usage_location.clone(),
            automatic_replies: u.mailbox.as_ref().map(|m| m.automatic_replies.clone()),
            message_rules: u
                .mailbox
                .as_ref()
                .map(|m| m.rules.clone())
                .unwrap_or_default(),
            drive_permissions: drive.map(|d| d.permissions.clone()).unwrap_or_default(),
        })
    }

    /// Every Graph request received so far, oldest first, `$batch` calls included (the token
    /// endpoint is not recorded; see [`GraphTenant::token_requests`]).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.state().layer.requests.clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.state().layer.requests.clear();
    }

    /// How many 429s the tenant has answered (whole requests and batch items).
    pub fn rate_limited_count(&self) -> u64 {
        self.shared.state().layer.rate_limited
    }

    /// The identity resource units charged to requests that were served (not throttled):
    /// what the work cost against [`GraphLimits::resource_units`].
    pub fn resource_units_served(&self) -> u64 {
        self.shared.state().ru_served
    }

    /// The identity writes served (not throttled): what the work cost against
    /// [`GraphLimits::writes`].
    pub fn writes_served(&self) -> u64 {
        self.shared.state().writes_served
    }

    /// How many times each write (any method but GET, top level or `$batch` item) was
    /// answered 2xx, by `METHOD path body` (path without `/v1.0`, the body's JSON compact
    /// with its keys sorted, empty without a body):
    /// the side effects the tenant carried out (a fleet test checks each happened once).
    pub fn served_writes(&self) -> BTreeMap<String, u64> {
        self.shared.state().served_writes.clone()
    }

    /// Sets the fault knobs.
    pub fn set_faults(&self, faults: Faults) {
        self.shared.state().layer.faults = faults;
    }

    /// The next `count` Graph requests (after authentication; batch items count one each)
    /// fail with `status` (429 and 503 carry `Retry-After: 1`).
    pub fn fail_next(&self, count: usize, status: u16) {
        self.shared
            .state()
            .layer
            .fail_next
            .push(None, status, count);
    }

    /// Every later request of one operation (`method` and a path template of
    /// [`GraphTenant::ROUTES`], e.g. `PATCH /users/{user-id}`; batch items too) fails with
    /// `status`, changing nothing: a permanent fault of that operation alone (403 answers
    /// `Authorization_RequestDenied`, as a missing permission does).
    pub fn fail_route(&self, method: &str, template: &str, status: u16) {
        self.shared
            .state()
            .route_faults
            .push((method.to_owned(), template.to_owned(), status));
    }

    /// Replaces the limits (buckets start full).
    pub fn set_limits(&self, limits: GraphLimits) {
        let mut s = self.shared.state();
        s.limits = limits;
        s.ru = None;
        s.writes = None;
        s.outlook.clear();
    }
}

/// What a request costs and which budget it draws from.
enum Budget {
    /// Identity: resource units, and a write when not a GET.
    Identity { ru: u32, write: bool },
    /// Outlook, per mailbox (user key).
    Outlook(String),
    /// Not throttled by the simulator (OneDrive).
    Free,
}

/// What a request costs: Graph's identity resource-unit table
/// (`specs/microsoft-graph/identity-resource-units.costs.txt`, `me/` rows as `users/{id}/`),
/// `users/{id}/oauth2PermissionGrants` priced as the grant list it reads; Outlook and OneDrive
/// routes draw from their own budgets.
fn budget(method: &str, segs: &[&str], query: &BTreeMap<String, String>) -> Budget {
    match segs {
        [
            "users",
            user,
            "mailboxSettings" | "mailFolders" | "messages" | "events" | "calendar",
            ..,
        ] => {
            return Budget::Outlook(user.to_ascii_lowercase());
        }
        ["drives", ..] | ["users", _, "drive", ..] => return Budget::Free,
        _ => {}
    }
    let base: i64 = match (method, segs) {
        ("GET", ["groups", _, "transitiveMembers"]) => 5,
        ("GET", ["domains", _, "domainNameReferences"]) => 4,
        ("POST", ["isMemberOf"] | ["users", _, "checkMemberGroups" | "checkMemberObjects"]) => 4,
        ("GET", ["contracts" | "subscribedSkus"] | ["groups", _, "members"])
        | ("POST", ["directoryObjects", "getByIds"] | ["getObjectsById"]) => 3,
        (
            "GET",
            ["users" | "applications" | "oauth2PermissionGrants"]
            | ["oauth2PermissionGrants", _]
            | ["applications", _, "extensionProperties"]
            | ["servicePrincipals", _, "appRoleAssignments"]
            | [
                "users",
                _,
                "memberOf"
                | "transitiveMemberOf"
                | "ownedObjects"
                | "licenseDetails"
                | "oauth2PermissionGrants",
            ],
        )
        | ("POST", ["users", _, "getMemberGroups" | "getMemberObjects"]) => 2,
        _ => 1,
    };
    let mut cost = base;
    if query.contains_key("$select") {
        cost -= 1;
    }
    if query.contains_key("$expand") {
        cost += 1;
    }
    if query
        .get("$top")
        .and_then(|t| t.parse::<u32>().ok())
        .is_some_and(|t| t < 20)
    {
        cost -= 1;
    }
    Budget::Identity {
        ru: cost.max(1) as u32,
        write: method != "GET",
    }
}

fn too_many(retry_after: u64, information: &str, scope: &str) -> Answer {
    Answer::new(
        429,
        Some(error_body(
            "TooManyRequests",
            "Too many requests. Please retry after the time in the Retry-After header.",
        )),
    )
    .header("retry-after", retry_after.to_string())
    .header("x-ms-throttle-information", information)
    .header("x-ms-throttle-scope", scope)
}

impl Handler for Shared {
    fn handle(&self, request: &Request) -> ResponseTemplate {
        let raw_path = request.url.path().to_owned();
        if request.method.as_str() == "POST"
            && raw_path == format!("/{}/oauth2/v2.0/token", self.tenant_id)
        {
            return self.token(request);
        }
        let mut s = self.state();
        s.layer.requests.push(layer::record(request));
        let latency = s.layer.faults.latency;
        if layer::bearer(request) != Some(self.access_token.as_str()) {
            return respond(
                401,
                Some(error_body(
                    "InvalidAuthenticationToken",
                    "Access token validation failure. Invalid audience.",
                )),
            )
            .set_delay(latency);
        }
        let mut segments = layer::segments(&raw_path);
        canonical_segments(&mut segments);
        let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
        let Some(("v1.0", segs)) = segs.split_first().map(|(a, b)| (*a, b)) else {
            return respond(
                400,
                Some(error_body(
                    "BadRequest",
                    "Invalid version: the path must start with /v1.0",
                )),
            )
            .set_delay(latency);
        };
        let query: BTreeMap<String, String> = request.url.query_pairs().into_owned().collect();
        let method = request.method.as_str().to_owned();
        let body: Option<Value> = serde_json::from_slice(&request.body).ok();
        let eventual = request
            .headers
            .get("consistencylevel")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("eventual"));
        s.purge();
        let answer = if method == "POST" && segs == ["$batch"] {
            self.batch(&mut s, body)
        } else {
            self.one(&mut s, &method, segs, &query, body, eventual)
        };
        let (answer, dropped) = answer;
        answer.template().set_delay(s.layer.faults.delay(dropped))
    }
}

impl Shared {
    /// One request (top level or batch item): faults, throttling, then the route. `eventual`:
    /// it carries `ConsistencyLevel: eventual`. The flag says the answer is to be dropped.
    fn one(
        &self,
        s: &mut State,
        method: &str,
        segs: &[&str],
        query: &BTreeMap<String, String>,
        body: Option<Value>,
        eventual: bool,
    ) -> (Answer, bool) {
        if !GraphTenant::serves(method, segs) {
            let (status, body) = routes::no_route();
            return (Answer::new(status, body), false);
        }
        if let Some(status) = s.layer.fail_next.take(&()) {
            return (self.injected(s, status), false);
        }
        let route_fault = s
            .route_faults
            .iter()
            .find(|(m, t, _)| m == method && template_matches(t, segs))
            .map(|(_, _, status)| *status);
        if let Some(status) = route_fault {
            return (self.injected(s, status), false);
        }
        if s.layer.server_error() {
            return (self.injected(s, 503), false);
        }
        if s.layer.throttle() {
            return (self.injected(s, 429), false);
        }
        let mut extra = Vec::new();
        match budget(method, segs, query) {
            Budget::Identity { ru, write } => {
                let limits = s.limits.clone();
                let cap = f64::from(limits.resource_units);
                let bucket = s.ru.get_or_insert_with(|| Bucket::full(cap));
                let left = bucket.take(f64::from(ru), cap, limits.window);
                let scope = format!(
                    "Tenant_Application/ReadWrite/{}/{}",
                    self.client_id, self.tenant_id
                );
                match left {
                    Err(wait) => {
                        s.layer.rate_limited += 1;
                        return (
                            too_many(wait, "ResourceUnitLimitExceeded", &scope)
                                .header("x-ms-resource-unit", ru.to_string()),
                            false,
                        );
                    }
                    Ok(left) => {
                        s.ru_served += u64::from(ru);
                        extra.push(("x-ms-resource-unit".to_owned(), ru.to_string()));
                        let used = (cap - left) / cap;
                        if used >= 0.8 {
                            extra.push((
                                "x-ms-throttle-limit-percentage".to_owned(),
                                format!("{used:.1}"),
                            ));
                        }
                    }
                }
                if write {
                    let cap = f64::from(limits.writes);
                    let bucket = s.writes.get_or_insert_with(|| Bucket::full(cap));
                    if let Err(wait) = bucket.take(1.0, cap, limits.write_window) {
                        s.layer.rate_limited += 1;
                        let scope = format!(
                            "Tenant_Application/Write/{}/{}",
                            self.client_id, self.tenant_id
                        );
                        return (too_many(wait, "WriteLimitExceeded", &scope), false);
                    }
                    s.writes_served += 1;
                }
            }
            Budget::Outlook(mailbox) => {
                let limits = s.limits.clone();
                let cap = f64::from(limits.outlook_per_mailbox);
                let bucket = s
                    .outlook
                    .entry(mailbox)
                    .or_insert_with(|| Bucket::full(cap));
                if let Err(wait) = bucket.take(1.0, cap, limits.outlook_window) {
                    s.layer.rate_limited += 1;
                    return (
                        too_many(wait, "ApplicationMailboxLimitExceeded", "Mailbox"),
                        false,
                    );
                }
            }
            Budget::Free => {}
        }
        let base = format!("{}/v1.0", s.base);
        // A write is told apart by its body too: Graph creates requests (role schedules,
        // access package assignments, workflow runs) by POSTing the subject in the body.
        let write_key = (method != "GET").then(|| {
            let body = body.as_ref().map(Value::to_string).unwrap_or_default();
            format!("{method} /{} {body}", segs.join("/"))
        });
        let (status, out) = routes::route(s, &base, method, segs, query, body, eventual);
        if let Some(key) = write_key.filter(|_| (200..300).contains(&status)) {
            *s.served_writes.entry(key).or_default() += 1;
        }
        let mut answer = Answer::new(status, out);
        answer.headers.extend(extra);
        let dropped = s.layer.drop_answer();
        (answer, dropped)
    }

    fn injected(&self, s: &mut State, status: u16) -> Answer {
        match status {
            429 => {
                s.layer.rate_limited += 1;
                too_many(1, "ResourceUnitLimitExceeded", "Injected")
            }
            503 => Answer::new(
                503,
                Some(error_body("serviceNotAvailable", "Service unavailable")),
            )
            .header("retry-after", "1"),
            403 => Answer::new(
                403,
                Some(error_body(
                    "Authorization_RequestDenied",
                    "Insufficient privileges to complete the operation.",
                )),
            ),
            other => Answer::new(
                other,
                Some(error_body(
                    "generalException",
                    "General exception while processing",
                )),
            ),
        }
    }

    /// `POST /$batch`.
    fn batch(&self, s: &mut State, body: Option<Value>) -> (Answer, bool) {
        let bad = |m: &str| (Answer::new(400, Some(error_body("BadRequest", m))), false);
        let Some(items) = body
            .as_ref()
            .and_then(|b| b.get("requests"))
            .and_then(Value::as_array)
        else {
            return bad("Invalid batch payload format.");
        };
        if items.is_empty() || items.len() > 20 {
            return bad("Invalid batch payload: a batch holds 1 to 20 requests.");
        }
        let mut ids = BTreeSet::new();
        for item in items {
            let Some(id) = item.get("id").and_then(Value::as_str) else {
                return bad("Invalid batch payload: every request needs an id.");
            };
            if !ids.insert(id.to_lowercase()) {
                return bad("Batch request ids must be unique.");
            }
            let (Some(_), Some(url)) = (
                item.get("method").and_then(Value::as_str),
                item.get("url").and_then(Value::as_str),
            ) else {
                return bad("Invalid batch payload: method and url are required.");
            };
            if url.contains(':') {
                return bad("Invalid batch payload: the url must be relative.");
            }
            if item.get("body").is_some() {
                let has_type = item
                    .get("headers")
                    .and_then(Value::as_object)
                    .is_some_and(|h| h.keys().any(|k| k.eq_ignore_ascii_case("content-type")));
                if !has_type {
                    return bad(
                        "Write request id : {} does not contain Content-Type header or body.",
                    );
                }
            }
            if let Some(deps) = item.get("dependsOn").and_then(Value::as_array) {
                for d in deps {
                    let known = d
                        .as_str()
                        .is_some_and(|d| ids.contains(&d.to_lowercase()) && d != id);
                    if !known {
                        return bad("Invalid dependsOn: it must name an earlier request.");
                    }
                }
            }
        }
        let mut statuses: BTreeMap<String, u16> = BTreeMap::new();
        let mut responses = Vec::new();
        for item in items {
            let id = item["id"].as_str().unwrap_or_default().to_owned();
            let method = item["method"]
                .as_str()
                .unwrap_or_default()
                .to_ascii_uppercase();
            let url = item["url"].as_str().unwrap_or_default();
            let failed_dep = item
                .get("dependsOn")
                .and_then(Value::as_array)
                .is_some_and(|deps| {
                    deps.iter().filter_map(Value::as_str).any(|d| {
                        statuses
                            .get(&d.to_lowercase())
                            .is_none_or(|st| !(200..300).contains(st))
                    })
                });
            let answer = if failed_dep {
                Answer::new(
                    424,
                    Some(error_body(
                        "FailedDependency",
                        "A request this request depends on failed.",
                    )),
                )
            } else {
                let (path, q) = url.split_once('?').unwrap_or((url, ""));
                let segments: Vec<String> = path
                    .trim_start_matches('/')
                    .split('/')
                    .map(layer::decode_segment)
                    .collect();
                let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
                let segs = segs.strip_prefix(&["v1.0"][..]).unwrap_or(&segs);
                let query: BTreeMap<String, String> = url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect();
                if segs == ["$batch"] {
                    Answer::new(
                        400,
                        Some(error_body("BadRequest", "A batch cannot be nested.")),
                    )
                } else {
                    let eventual =
                        item.get("headers")
                            .and_then(Value::as_object)
                            .is_some_and(|h| {
                                h.iter().any(|(k, v)| {
                                    k.eq_ignore_ascii_case("consistencylevel")
                                        && v.as_str()
                                            .is_some_and(|v| v.eq_ignore_ascii_case("eventual"))
                                })
                            });
                    self.one(
                        s,
                        &method,
                        segs,
                        &query,
                        item.get("body").cloned(),
                        eventual,
                    )
                    .0
                }
            };
            statuses.insert(id.to_lowercase(), answer.status);
            let mut headers = serde_json::Map::new();
            if answer.body.is_some() {
                headers.insert("Content-Type".into(), json!("application/json"));
            }
            for (k, v) in &answer.headers {
                let name = if k.eq_ignore_ascii_case("retry-after") {
                    "Retry-After"
                } else {
                    k
                };
                headers.insert(name.to_owned(), json!(v));
            }
            let mut r = json!({"id": id, "status": answer.status, "headers": headers});
            if let Some(b) = answer.body {
                r["body"] = b;
            }
            responses.push(r);
        }
        (
            Answer::new(200, Some(json!({"responses": responses}))),
            false,
        )
    }

    /// `POST /{tenant}/oauth2/v2.0/token`.
    fn token(&self, request: &Request) -> ResponseTemplate {
        let form: BTreeMap<String, String> = url::form_urlencoded::parse(&request.body)
            .into_owned()
            .collect();
        let get = |k: &str| form.get(k).map(String::as_str);
        let err = |status: u16, code: &str, description: &str| {
            ResponseTemplate::new(status).set_body_json(json!({
                "error": code,
                "error_description": description,
                "error_codes": [7_000_215],
                "timestamp": now_iso(),
                "trace_id": new_id(),
                "correlation_id": new_id(),
            }))
        };
        if get("grant_type") != Some("client_credentials") {
            return err(
                400,
                "unsupported_grant_type",
                "AADSTS70003: The app requested an unsupported grant type.",
            );
        }
        if get("scope") != Some("https://graph.microsoft.com/.default") {
            return err(
                400,
                "invalid_scope",
                "AADSTS1002012: The provided value for scope is not valid.",
            );
        }
        if get("client_id") != Some(self.client_id.as_str()) {
            return err(
                400,
                "unauthorized_client",
                "AADSTS700016: Application not found in the directory.",
            );
        }
        let secret_ok = get("client_secret") == Some(self.client_secret.as_str());
        let assertion_ok = get("client_assertion_type")
            == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
            && get("client_assertion").is_some_and(|a| a.split('.').count() == 3);
        if !(secret_ok || assertion_ok) {
            return err(
                401,
                "invalid_client",
                "AADSTS7000215: Invalid client secret provided.",
            );
        }
        self.state().token_requests += 1;
        ResponseTemplate::new(200).set_body_json(json!({
            "token_type": "Bearer",
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": self.access_token,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ru(method: &str, path: &str, query: &[(&str, &str)]) -> u32 {
        let segs: Vec<&str> = path.split('/').collect();
        let query = query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        match budget(method, &segs, &query) {
            Budget::Identity { ru, .. } => ru,
            _ => 0,
        }
    }

    #[test]
    fn resource_units_follow_the_published_cost_table() {
        let rows =
            crate::sim::specs::selection("microsoft-graph/identity-resource-units.costs.txt");
        assert!(rows.len() >= 20, "{rows:?}");
        for row in rows {
            let [method, path, cost] = row.split(' ').collect::<Vec<_>>()[..] else {
                panic!("{row}");
            };
            let path = path.replace("{id}", "x-1");
            let cost: u32 = cost.parse().unwrap();
            assert_eq!(ru(method, &path, &[]), cost, "{row}");
            // $select −1, $expand +1, $top below 20 −1, never below 1.
            assert_eq!(
                ru(method, &path, &[("$select", "id")]),
                (cost - 1).max(1),
                "{row}"
            );
            assert_eq!(
                ru(method, &path, &[("$expand", "manager")]),
                cost + 1,
                "{row}"
            );
            assert_eq!(
                ru(method, &path, &[("$top", "19")]),
                (cost - 1).max(1),
                "{row}"
            );
            assert_eq!(ru(method, &path, &[("$top", "20")]), cost, "{row}");
            let all = [("$select", "id"), ("$top", "5"), ("$expand", "manager")];
            assert_eq!(
                ru(method, &path, &all),
                cost.saturating_sub(1).max(1),
                "{row}"
            );
        }
        // Anything else costs 1, writes included; Outlook and OneDrive have their own limits.
        assert_eq!(ru("GET", "users/x-1", &[]), 1);
        assert_eq!(ru("GET", "groups/x-1", &[]), 1);
        assert_eq!(ru("DELETE", "groups/g-1/members/x-1/$ref", &[]), 1);
        assert_eq!(ru("PATCH", "users/x-1", &[("$select", "id")]), 1);
        assert_eq!(ru("GET", "users/x-1/mailboxSettings", &[]), 0);
        assert_eq!(ru("GET", "users/x-1/drive/root", &[]), 0);
    }
}
