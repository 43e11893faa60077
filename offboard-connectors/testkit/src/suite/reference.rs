//! The reference connector and delegate: in-memory, stateful, counting every side effect.
//!
//! [`ReferenceConnector`] keeps a small tenant of users in memory and implements the whole
//! [`Connector`] contract on it exactly as a real connector must. Engine tests, demos and
//! benchmarks use it where a real app would be; the conformance suite checks it like any other
//! connector. [`ReferenceDelegate`] does the same for [`Delegate`](offboard_core::Delegate).
//!
//! # Calling contract
//! 1. Build with [`ReferenceConnector::builder`], adding users, a fake token, latency and faults.
//! 2. Hand it (usually in an `Arc`) to the code under test.
//! 3. Assert on what happened: the tenant's state ([`ReferenceConnector::user`]), the number of
//!    real changes per account and action ([`ReferenceConnector::effects`]) and the calls made
//!    ([`ReferenceConnector::calls`]). Faults can be injected at any time.
//!
//! # Actions
//! With app id `okta` (any app id works; names are `<app>.<verb>`):
//!
//! | action | reversible | critical | not found | after | changes |
//! |---|---|---|---|---|---|
//! | `okta.suspend` | yes | no | done | | status `Active`/`Unknown` -> `Suspended` |
//! | `okta.clear_sessions` | no | no | done | `okta.suspend` | sessions -> 0 |
//! | `okta.remove_groups` | yes | no | done | | groups -> none |
//! | `okta.unassign_apps` | no | no | done | | apps -> none |
//! | `okta.transfer_data` `{ to }` | no | no | failure | | records a [`Transfer`] to `to` |
//! | `okta.delete` | no | yes | done | `okta.transfer_data` | removes the user |
//!
//! # Example
//! ```
//! use offboard_core::{Connector, ExecuteOptions, LookupRequest, Outcome, Person};
//! use offboard_testkit::{ReferenceConnector, ReferenceUser};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let okta = ReferenceConnector::builder("okta")
//!     .user(ReferenceUser::employee("jane@example.com").alias("jdoe@example.com"))
//!     .build();
//! let person = Person::new("p1", "JDOE@example.com");
//! let account = okta.lookup(&LookupRequest::person(person)).await.unwrap().unwrap();
//!
//! let suspend = okta.action(ReferenceConnector::SUSPEND);
//! let opts = ExecuteOptions::default();
//! assert_eq!(okta.execute(&account, &suspend, &opts).await.unwrap().outcome, Outcome::Done);
//! assert_eq!(okta.execute(&account, &suspend, &opts).await.unwrap().outcome, Outcome::AlreadyDone);
//! assert_eq!(okta.effects(&account.external_id, "okta.suspend"), 1);
//! # }
//! ```

mod delegate;
mod fault;
mod source;

pub use delegate::{ReferenceDelegate, ReferenceTicket};
pub use fault::{Fault, permanent, rate_limited, unavailable};
pub use source::ReferenceSource;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use offboard_core::{
    AccountRef, AccountStatus, Action, ActionName, ActionSpec, AppId, Capabilities, Connector,
    Error, ExecuteOptions, ExecuteReply, LookupRequest, Outcome, Result, Secret, Snapshot,
    Verification,
};
use serde::{Deserialize, Serialize};

use fault::Faults;

/// A user of the reference tenant, as configured (everything but the generated external id).
///
/// Build with [`ReferenceUser::new`] or [`ReferenceUser::employee`] and the chained setters, or
/// as a struct literal with `..Default::default()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceUser {
    /// Login (usually the email). Matched case-insensitively by lookup.
    pub login: String,
    /// Other addresses the user is known by. Matched like the login.
    pub aliases: Vec<String>,
    /// Account status.
    pub status: AccountStatus,
    /// Group memberships, by name.
    pub groups: BTreeSet<String>,
    /// Open sessions.
    pub sessions: u32,
    /// Assigned apps, by name.
    pub apps: BTreeSet<String>,
    /// Whether the user is an administrator of the tenant (informational: shown as the
    /// `admin=true` attribute of the account; no action changes it).
    pub admin: bool,
    /// Why the account holds privileged access, when it does: shown as the account's
    /// [`PRIVILEGED_ATTRIBUTE`](offboard_core::PRIVILEGED_ATTRIBUTE), which makes every action on
    /// it critical.
    pub privileged: Option<String>,
}

impl Default for ReferenceUser {
    fn default() -> Self {
        Self {
            login: String::new(),
            aliases: Vec::new(),
            status: AccountStatus::Active,
            groups: BTreeSet::new(),
            sessions: 0,
            apps: BTreeSet::new(),
            admin: false,
            privileged: None,
        }
    }
}

impl ReferenceUser {
    /// An active user with no aliases, groups, sessions or apps.
    pub fn new(login: impl Into<String>) -> Self {
        Self {
            login: login.into(),
            ..Self::default()
        }
    }

    /// An active user with typical access: groups `everyone` and `engineering`, apps `github`
    /// and `slack`, two sessions.
    pub fn employee(login: impl Into<String>) -> Self {
        Self::new(login)
            .groups(["everyone", "engineering"])
            .apps(["github", "slack"])
            .sessions(2)
    }

    /// Adds an alias.
    pub fn alias(mut self, alias: impl Into<String>) -> Self {
        self.aliases.push(alias.into());
        self
    }

    /// Sets the status.
    pub fn status(mut self, status: AccountStatus) -> Self {
        self.status = status;
        self
    }

    /// Adds a group membership.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.groups.insert(group.into());
        self
    }

    /// Adds group memberships.
    pub fn groups<I, S>(mut self, groups: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.groups.extend(groups.into_iter().map(Into::into));
        self
    }

    /// Adds an assigned app.
    pub fn app(mut self, app: impl Into<String>) -> Self {
        self.apps.insert(app.into());
        self
    }

    /// Adds assigned apps.
    pub fn apps<I, S>(mut self, apps: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.apps.extend(apps.into_iter().map(Into::into));
        self
    }

    /// Sets the number of open sessions.
    pub fn sessions(mut self, sessions: u32) -> Self {
        self.sessions = sessions;
        self
    }

    /// Makes the user a tenant administrator.
    pub fn admin(mut self) -> Self {
        self.admin = true;
        self
    }

    /// Marks the account privileged, saying why (see [`ReferenceUser::privileged`]).
    pub fn privileged(mut self, why: impl Into<String>) -> Self {
        self.privileged = Some(why.into());
        self
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.login.as_str()).chain(self.aliases.iter().map(String::as_str))
    }
}

/// A data transfer recorded by `<app>.transfer_data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// Who received the data.
    pub to: String,
    /// The idempotency key of the execution that made it.
    pub idempotency_key: String,
    /// The actor of the execution that made it.
    pub actor: String,
}

/// Parameters of `<app>.transfer_data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferParams {
    /// Who receives the data (e.g. the manager's email). Must not be empty.
    pub to: String,
}

/// A user's current state in the reference tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserState {
    /// The immutable id the connector generated.
    pub external_id: String,
    /// Login.
    pub login: String,
    /// Aliases.
    pub aliases: Vec<String>,
    /// Status.
    pub status: AccountStatus,
    /// Group memberships.
    pub groups: BTreeSet<String>,
    /// Open sessions.
    pub sessions: u32,
    /// Assigned apps.
    pub apps: BTreeSet<String>,
    /// Tenant administrator.
    pub admin: bool,
    /// Data transfers made, oldest first.
    pub transfers: Vec<Transfer>,
}

/// How many times each connector method was called (failed calls included).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallCounts {
    /// [`Connector::lookup`] calls.
    pub lookup: u32,
    /// [`Connector::execute`] calls, dry runs included.
    pub execute: u32,
    /// [`Connector::snapshot`] calls.
    pub snapshot: u32,
    /// [`Connector::restore`] calls.
    pub restore: u32,
    /// [`Connector::verify_revoked`] calls.
    pub verify_revoked: u32,
    /// [`Connector::execute`] calls per action name (unknown names included).
    pub by_action: BTreeMap<String, u32>,
}

impl CallCounts {
    /// All calls.
    pub fn total(&self) -> u32 {
        self.lookup + self.execute + self.snapshot + self.restore + self.verify_revoked
    }

    /// [`Connector::execute`] calls of one action (full name).
    pub fn of(&self, action: &str) -> u32 {
        self.by_action.get(action).copied().unwrap_or(0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Suspend,
    ClearSessions,
    RemoveGroups,
    UnassignApps,
    TransferData,
    Delete,
}

impl Verb {
    const ALL: [Verb; 6] = [
        Verb::Suspend,
        Verb::ClearSessions,
        Verb::RemoveGroups,
        Verb::UnassignApps,
        Verb::TransferData,
        Verb::Delete,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Verb::Suspend => ReferenceConnector::SUSPEND,
            Verb::ClearSessions => ReferenceConnector::CLEAR_SESSIONS,
            Verb::RemoveGroups => ReferenceConnector::REMOVE_GROUPS,
            Verb::UnassignApps => ReferenceConnector::UNASSIGN_APPS,
            Verb::TransferData => ReferenceConnector::TRANSFER_DATA,
            Verb::Delete => ReferenceConnector::DELETE,
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// Builds a [`ReferenceConnector`]. Start with [`ReferenceConnector::builder`].
#[derive(Debug)]
pub struct ReferenceConnectorBuilder {
    app: AppId,
    users: Vec<ReferenceUser>,
    secret: Option<Secret>,
    latency: Duration,
    verify: bool,
    faults: Vec<Fault>,
}

impl ReferenceConnectorBuilder {
    /// Adds a user; its external id is generated at [`build`](Self::build).
    pub fn user(mut self, user: ReferenceUser) -> Self {
        self.users.push(user);
        self
    }

    /// Adds users.
    pub fn users(mut self, users: impl IntoIterator<Item = ReferenceUser>) -> Self {
        self.users.extend(users);
        self
    }

    /// Sets the fake API token. It never appears in `Debug` output. Default: a random token.
    pub fn secret(mut self, secret: impl Into<Secret>) -> Self {
        self.secret = Some(secret.into());
        self
    }

    /// Sleeps this long (on tokio's clock) at the start of every connector call. Default: zero.
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Turns verification off: `capabilities().verify` is false and
    /// [`Connector::verify_revoked`] returns `Unsupported`.
    pub fn without_verify(mut self) -> Self {
        self.verify = false;
        self
    }

    /// Injects a fault (see [`Fault`]).
    pub fn fault(mut self, fault: Fault) -> Self {
        self.faults.push(fault);
        self
    }

    /// The next `times` real executions (or calls) of `op` fail with `make()`; see [`Fault`]
    /// for how `op` is named.
    pub fn fail_next(
        self,
        op: impl Into<String>,
        times: u32,
        make: impl Fn() -> Error + Send + Sync + 'static,
    ) -> Self {
        self.fault(Fault::next(op, times, make))
    }

    /// Every real execution (or call) of `op` fails with `make()`, until
    /// [`ReferenceConnector::clear_faults`].
    pub fn fail_always(
        self,
        op: impl Into<String>,
        make: impl Fn() -> Error + Send + Sync + 'static,
    ) -> Self {
        self.fault(Fault::always(op, make))
    }

    /// Builds the connector, generating each user's external id in the order they were added.
    ///
    /// # Panics
    /// When the app id cannot prefix an action name (lower-case ASCII, digits and `_` only), or a
    /// user's login is empty or contains a control character.
    pub fn build(self) -> ReferenceConnector {
        let app = self.app;
        let name = |verb: Verb| {
            ActionName::parse(&format!("{app}.{}", verb.as_str())).unwrap_or_else(|e| {
                panic!("reference connector: app id {app:?} cannot name actions: {e}")
            })
        };
        let suspend = name(Verb::Suspend);
        let transfer = name(Verb::TransferData);
        let actions = vec![
            ActionSpec::new(
                suspend.clone(),
                "Suspend the account: sign-in is blocked, nothing is deleted",
            )
            .reversible(),
            ActionSpec::new(name(Verb::ClearSessions), "End every open session")
                .after(suspend.clone()),
            ActionSpec::new(name(Verb::RemoveGroups), "Remove every group membership").reversible(),
            ActionSpec::new(name(Verb::UnassignApps), "Unassign every app"),
            ActionSpec::new(transfer.clone(), "Transfer the account's data to `to`")
                .needs_account(),
            ActionSpec::new(name(Verb::Delete), "Delete the account")
                .critical()
                .after(transfer),
        ];
        let mut capabilities = Capabilities::new(app.clone(), actions);
        capabilities.verify = self.verify;
        let secret = self
            .secret
            .unwrap_or_else(|| Secret::new(format!("ref-token-{}", uuid::Uuid::new_v4().simple())));
        let connector = ReferenceConnector {
            app,
            capabilities,
            secret,
            latency: self.latency,
            state: Mutex::new(State::default()),
        };
        for user in self.users {
            connector.add_user(user);
        }
        for fault in self.faults {
            connector.inject(fault);
        }
        connector
    }
}

#[derive(Debug, Clone)]
struct Entry {
    user: ReferenceUser,
    transfers: Vec<Transfer>,
}

#[derive(Debug, Default)]
struct State {
    /// Users by external id.
    users: BTreeMap<String, Entry>,
    /// External ids of existing users by ASCII-lower-cased login and alias, so `lookup` does not
    /// scan every user.
    by_name: HashMap<String, BTreeSet<String>>,
    /// External ids of users that were deleted (by the action or [`ReferenceConnector::remove_user`]).
    deleted: BTreeSet<String>,
    next_id: u64,
    /// Real changes by (external id, action name).
    effects: BTreeMap<(String, String), u32>,
    /// Real restores by (external id, action name).
    restores: BTreeMap<(String, String), u32>,
    calls: CallCounts,
    faults: Faults,
}

/// The in-memory, stateful reference [`Connector`]. See the [module docs](self) for the actions
/// it offers.
///
/// # Behavior
/// - `lookup`: exact, ASCII-case-insensitive match of the person's email and aliases against each
///   user's login and aliases. With `external_id` set, only the id is used. No match is
///   `Ok(None)`; two or more users are `Ambiguous`; an address or id containing a control
///   character (NUL included) is `InvalidInput`.
/// - `execute`: every action is idempotent (`AlreadyDone` when the end state holds) and counted
///   in [`effects`](Self::effects) only when it changed something. On a user that no longer
///   exists, removals report `NotFound` (`delete` reports `AlreadyDone` for a user it knows was
///   deleted) and `transfer_data` fails with `NotFound`. Unknown actions are `Unsupported`.
///   Dry runs change nothing, count no effect and predict `Done`/`AlreadyDone`.
/// - `snapshot` / `restore`: for `suspend` the status, for `remove_groups` the groups. Restore
///   puts back exactly what the snapshot holds (groups are re-added, others left alone), and
///   reports `AlreadyDone` when nothing was missing. Restoring a deleted user fails `NotFound`.
/// - `verify_revoked`: remaining access is an `Active`/`Unknown` status, each group, each app and
///   open sessions; a deleted user is revoked.
/// - Every call first sleeps the configured latency, then is counted, then may hit a [`Fault`].
/// - State sits behind a `std::sync::Mutex` that is never held across an `.await`.
pub struct ReferenceConnector {
    app: AppId,
    capabilities: Capabilities,
    secret: Secret,
    latency: Duration,
    state: Mutex<State>,
}

impl fmt::Debug for ReferenceConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ReferenceConnector");
        d.field("app", &self.app)
            .field("secret", &self.secret)
            .field("latency", &self.latency)
            .field("verify", &self.capabilities.verify);
        match self.state.try_lock() {
            Ok(state) => d
                .field("users", &state.users.len())
                .field("faults", &state.faults.len()),
            Err(_) => d.field("users", &format_args!("<busy>")),
        };
        d.finish_non_exhaustive()
    }
}

impl ReferenceConnector {
    /// Verb of `<app>.suspend`.
    pub const SUSPEND: &'static str = "suspend";
    /// Verb of `<app>.clear_sessions`.
    pub const CLEAR_SESSIONS: &'static str = "clear_sessions";
    /// Verb of `<app>.remove_groups`.
    pub const REMOVE_GROUPS: &'static str = "remove_groups";
    /// Verb of `<app>.unassign_apps`.
    pub const UNASSIGN_APPS: &'static str = "unassign_apps";
    /// Verb of `<app>.transfer_data`.
    pub const TRANSFER_DATA: &'static str = "transfer_data";
    /// Verb of `<app>.delete`.
    pub const DELETE: &'static str = "delete";

    /// Starts a builder for the app `app` (e.g. `okta`): no users, a random secret, no latency,
    /// verification on, no faults.
    pub fn builder(app: impl Into<AppId>) -> ReferenceConnectorBuilder {
        ReferenceConnectorBuilder {
            app: app.into(),
            users: Vec::new(),
            secret: None,
            latency: Duration::ZERO,
            verify: true,
            faults: Vec::new(),
        }
    }

    /// The app id.
    pub fn app(&self) -> &AppId {
        &self.app
    }

    /// The fake API token.
    pub fn secret(&self) -> &Secret {
        &self.secret
    }

    /// The full name of one of the actions, `<app>.<verb>`.
    ///
    /// # Panics
    /// When `verb` is not one of the connector's verbs (the `ReferenceConnector::*` constants).
    pub fn action_name(&self, verb: &str) -> ActionName {
        let verb = verb.strip_prefix(&format!("{}.", self.app)).unwrap_or(verb);
        let Some(verb) = Verb::parse(verb) else {
            panic!("reference connector: no action {verb:?}");
        };
        ActionName::parse(&format!("{}.{}", self.app, verb.as_str()))
            .unwrap_or_else(|e| panic!("reference connector: {e}"))
    }

    /// One of the actions, without parameters (see [`action_name`](Self::action_name)).
    ///
    /// # Panics
    /// As [`action_name`](Self::action_name).
    pub fn action(&self, verb: &str) -> Action {
        Action::new(self.action_name(verb))
    }

    /// `<app>.transfer_data` to `to`.
    pub fn transfer_action(&self, to: impl Into<String>) -> Action {
        Action::with_params(
            self.action_name(Self::TRANSFER_DATA),
            &TransferParams { to: to.into() },
        )
        .unwrap_or_else(|e| panic!("reference connector: transfer parameters: {e}"))
    }

    /// Adds a user now and returns its account (with a freshly generated external id).
    ///
    /// # Panics
    /// When the login is empty or a login or alias contains a control character.
    pub fn add_user(&self, user: ReferenceUser) -> AccountRef {
        assert!(
            !user.login.is_empty(),
            "reference connector: a user needs a login"
        );
        for name in user.names() {
            assert!(
                !name.chars().any(char::is_control),
                "reference connector: login or alias {name:?} contains a control character"
            );
        }
        let mut state = self.state();
        state.next_id += 1;
        let external_id = format!("{}-{:06}", self.app, state.next_id);
        let account = self.account_ref(&external_id, &user);
        state.index(&external_id, &user);
        state.users.insert(
            external_id,
            Entry {
                user,
                transfers: Vec::new(),
            },
        );
        account
    }

    /// Deletes a user behind offboard's back (as an admin in the app would). Returns whether it
    /// existed. Its effects stay counted.
    pub fn remove_user(&self, external_id: &str) -> bool {
        let mut state = self.state();
        let existed = state.remove(external_id);
        if existed {
            state.deleted.insert(external_id.to_owned());
        }
        existed
    }

    /// Changes a user behind offboard's back (e.g. re-adds a group after offboarding). Returns
    /// whether the user exists. The change is not counted as an effect.
    pub fn modify_user(&self, external_id: &str, change: impl FnOnce(&mut ReferenceUser)) -> bool {
        let mut state = self.state();
        let State { users, by_name, .. } = &mut *state;
        match users.get_mut(external_id) {
            Some(entry) => {
                unindex(by_name, external_id, &entry.user);
                change(&mut entry.user);
                index(by_name, external_id, &entry.user);
                true
            }
            None => false,
        }
    }

    /// A user's current state; `None` once deleted (or never created).
    pub fn user(&self, external_id: &str) -> Option<UserState> {
        let state = self.state();
        state
            .users
            .get(external_id)
            .map(|e| user_state(external_id, e))
    }

    /// The first user (by creation) whose login equals `login`, ignoring ASCII case.
    pub fn user_by_login(&self, login: &str) -> Option<UserState> {
        let state = self.state();
        state
            .users
            .iter()
            .find(|(_, e)| e.user.login.eq_ignore_ascii_case(login))
            .map(|(id, e)| user_state(id, e))
    }

    /// Every existing user, by creation order.
    pub fn users(&self) -> Vec<UserState> {
        let state = self.state();
        state
            .users
            .iter()
            .map(|(id, e)| user_state(id, e))
            .collect()
    }

    /// The account of a user, as `lookup` would return it.
    pub fn account(&self, external_id: &str) -> Option<AccountRef> {
        let state = self.state();
        state
            .users
            .get(external_id)
            .map(|e| self.account_ref(external_id, &e.user))
    }

    /// The account of the first user whose login equals `login`, ignoring ASCII case.
    pub fn account_by_login(&self, login: &str) -> Option<AccountRef> {
        let state = self.state();
        state
            .users
            .iter()
            .find(|(_, e)| e.user.login.eq_ignore_ascii_case(login))
            .map(|(id, e)| self.account_ref(id, &e.user))
    }

    /// Whether the user existed and was deleted.
    pub fn is_deleted(&self, external_id: &str) -> bool {
        self.state().deleted.contains(external_id)
    }

    /// How many times `action` (full name, or verb alone) really changed the user: `Done`
    /// replies of real (not dry-run) executions. `AlreadyDone`, `NotFound`, dry runs and failures
    /// before the change are not counted.
    pub fn effects(&self, external_id: &str, action: &str) -> u32 {
        let key = (external_id.to_owned(), self.op_key(action));
        self.state().effects.get(&key).copied().unwrap_or(0)
    }

    /// All real changes made by executions, over all users and actions.
    pub fn total_effects(&self) -> u32 {
        self.state().effects.values().sum()
    }

    /// How many times a restore from a snapshot of `action` really changed the user.
    pub fn restore_effects(&self, external_id: &str, action: &str) -> u32 {
        let key = (external_id.to_owned(), self.op_key(action));
        self.state().restores.get(&key).copied().unwrap_or(0)
    }

    /// The calls made so far.
    pub fn calls(&self) -> CallCounts {
        self.state().calls.clone()
    }

    /// Zeroes the call and effect counters (the tenant's state is kept).
    pub fn reset_counters(&self) {
        let mut state = self.state();
        state.calls = CallCounts::default();
        state.effects.clear();
        state.restores.clear();
    }

    /// Injects a fault (see [`Fault`]).
    pub fn inject(&self, mut fault: Fault) {
        fault.op = self.op_key(&fault.op);
        self.state().faults.push(fault);
    }

    /// The next `times` real executions (or calls) of `op` fail with `make()`.
    pub fn fail_next(
        &self,
        op: impl Into<String>,
        times: u32,
        make: impl Fn() -> Error + Send + Sync + 'static,
    ) {
        self.inject(Fault::next(op, times, make));
    }

    /// Every real execution (or call) of `op` fails with `make()`, until
    /// [`clear_faults`](Self::clear_faults).
    pub fn fail_always(
        &self,
        op: impl Into<String>,
        make: impl Fn() -> Error + Send + Sync + 'static,
    ) {
        self.inject(Fault::always(op, make));
    }

    /// Removes every injected fault.
    pub fn clear_faults(&self) {
        self.state().faults.clear();
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `lookup`, `snapshot`, `restore`, `verify_revoked` and full action names stay as they are;
    /// a bare verb becomes `<app>.<verb>`.
    fn op_key(&self, op: &str) -> String {
        match op {
            "lookup" | "snapshot" | "restore" | "verify_revoked" => op.to_owned(),
            _ if op.contains('.') => op.to_owned(),
            _ => format!("{}.{op}", self.app),
        }
    }

    fn account_ref(&self, external_id: &str, user: &ReferenceUser) -> AccountRef {
        let mut account = AccountRef::new(
            self.app.clone(),
            external_id,
            user.login.clone(),
            user.status,
        );
        if user.admin {
            account.attributes.insert("admin".into(), "true".into());
        }
        if let Some(why) = &user.privileged {
            account
                .attributes
                .insert(offboard_core::PRIVILEGED_ATTRIBUTE.into(), why.clone());
        }
        account
    }

    /// Sleeps the latency, counts the call, and returns an injected fault if one applies.
    async fn enter(&self, count: impl FnOnce(&mut CallCounts), fault: Option<&str>) -> Result<()> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        let mut state = self.state();
        count(&mut state.calls);
        match fault.and_then(|op| state.faults.take(op, false)) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn verb(&self, name: &ActionName) -> Option<Verb> {
        self.capabilities.action(name)?;
        let verb = name.as_str().split_once('.')?.1;
        Verb::parse(verb)
    }

    fn check_account(&self, account: &AccountRef, op: &str) -> Result<()> {
        if account.app != self.app {
            return Err(Error::invalid_input(format!(
                "account {} belongs to {}, not {}",
                account.external_id, account.app, self.app
            ))
            .with_operation(op.to_owned()));
        }
        Ok(())
    }
}

fn user_state(external_id: &str, entry: &Entry) -> UserState {
    let u = &entry.user;
    UserState {
        external_id: external_id.to_owned(),
        login: u.login.clone(),
        aliases: u.aliases.clone(),
        status: u.status,
        groups: u.groups.clone(),
        sessions: u.sessions,
        apps: u.apps.clone(),
        admin: u.admin,
        transfers: entry.transfers.clone(),
    }
}

fn no_control(value: &str, what: &str) -> Result<()> {
    if value.chars().any(char::is_control) {
        return Err(
            Error::invalid_input(format!("{what} {value:?} contains a control character"))
                .with_operation("lookup"),
        );
    }
    Ok(())
}

/// Applies a non-delete verb to `entry`; returns the outcome and a note.
fn apply(
    entry: &mut Entry,
    verb: Verb,
    transfer: Option<&TransferParams>,
    options: &ExecuteOptions,
) -> (Outcome, String) {
    let user = &mut entry.user;
    match verb {
        Verb::Suspend => {
            if user.status.may_have_access() {
                let was = user.status;
                user.status = AccountStatus::Suspended;
                (Outcome::Done, format!("suspended (was {was:?})"))
            } else {
                (
                    Outcome::AlreadyDone,
                    format!("already {:?}", user.status).to_lowercase(),
                )
            }
        }
        Verb::ClearSessions => match std::mem::take(&mut user.sessions) {
            0 => (Outcome::AlreadyDone, "no open sessions".into()),
            n => (Outcome::Done, format!("{n} sessions cleared")),
        },
        Verb::RemoveGroups => match std::mem::take(&mut user.groups).len() {
            0 => (Outcome::AlreadyDone, "in no group".into()),
            n => (Outcome::Done, format!("removed from {n} groups")),
        },
        Verb::UnassignApps => match std::mem::take(&mut user.apps).len() {
            0 => (Outcome::AlreadyDone, "no app assigned".into()),
            n => (Outcome::Done, format!("{n} apps unassigned")),
        },
        Verb::TransferData => {
            let to = transfer.map(|p| p.to.clone()).unwrap_or_default();
            if entry.transfers.iter().any(|t| t.to == to) {
                (
                    Outcome::AlreadyDone,
                    format!("data already transferred to {to}"),
                )
            } else {
                let note = format!("data transferred to {to}");
                entry.transfers.push(Transfer {
                    to,
                    idempotency_key: options.idempotency_key.clone(),
                    actor: options.actor.clone(),
                });
                (Outcome::Done, note)
            }
        }
        Verb::Delete => (Outcome::Done, "account deleted".into()),
    }
}

/// Adds `user`'s login and aliases to the name index.
fn index(by_name: &mut HashMap<String, BTreeSet<String>>, external_id: &str, user: &ReferenceUser) {
    for name in user.names() {
        by_name
            .entry(name.to_ascii_lowercase())
            .or_default()
            .insert(external_id.to_owned());
    }
}

/// Removes `user`'s login and aliases from the name index.
fn unindex(
    by_name: &mut HashMap<String, BTreeSet<String>>,
    external_id: &str,
    user: &ReferenceUser,
) {
    for name in user.names() {
        let key = name.to_ascii_lowercase();
        if let Some(ids) = by_name.get_mut(&key) {
            ids.remove(external_id);
            if ids.is_empty() {
                by_name.remove(&key);
            }
        }
    }
}

impl State {
    fn index(&mut self, external_id: &str, user: &ReferenceUser) {
        index(&mut self.by_name, external_id, user);
    }

    /// Removes a user and its index entries; whether it existed.
    fn remove(&mut self, external_id: &str) -> bool {
        match self.users.remove(external_id) {
            Some(entry) => {
                unindex(&mut self.by_name, external_id, &entry.user);
                true
            }
            None => false,
        }
    }

    fn execute(
        &mut self,
        name: &ActionName,
        verb: Verb,
        external_id: &str,
        transfer: Option<&TransferParams>,
        options: &ExecuteOptions,
    ) -> Result<ExecuteReply> {
        let dry_run = options.dry_run;
        let Some(entry) = self.users.get_mut(external_id) else {
            return match verb {
                Verb::Delete if self.deleted.contains(external_id) => Ok(
                    ExecuteReply::with_detail(Outcome::AlreadyDone, "account already deleted"),
                ),
                Verb::TransferData => Err(Error::not_found(format!(
                    "account {external_id} does not exist; its data cannot be transferred"
                ))
                .with_operation(name.to_string())),
                _ => Ok(ExecuteReply::with_detail(
                    Outcome::NotFound,
                    format!("account {external_id} does not exist"),
                )),
            };
        };
        let (outcome, note) = if verb == Verb::Delete {
            if !dry_run {
                self.remove(external_id);
                self.deleted.insert(external_id.to_owned());
            }
            (Outcome::Done, "account deleted".to_owned())
        } else if dry_run {
            apply(&mut entry.clone(), verb, transfer, options)
        } else {
            apply(entry, verb, transfer, options)
        };
        if outcome == Outcome::Done && !dry_run {
            *self
                .effects
                .entry((external_id.to_owned(), name.to_string()))
                .or_default() += 1;
        }
        let note = if dry_run {
            format!("dry run: {note}")
        } else {
            note
        };
        Ok(ExecuteReply::with_detail(outcome, note))
    }
}

#[derive(Deserialize)]
struct StatusData {
    status: AccountStatus,
}

#[derive(Deserialize)]
struct GroupsData {
    groups: BTreeSet<String>,
}

#[async_trait]
impl Connector for ReferenceConnector {
    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn lookup(&self, request: &LookupRequest) -> Result<Option<AccountRef>> {
        self.enter(|c| c.lookup += 1, Some("lookup")).await?;
        if let Some(id) = &request.external_id {
            no_control(id, "external id")?;
            return Ok(self.account(id));
        }
        let person = &request.person;
        let addresses: Vec<&str> = std::iter::once(person.email.as_str())
            .chain(person.aliases.iter().map(String::as_str))
            .collect();
        for address in &addresses {
            no_control(address, "address")?;
        }
        let state = self.state();
        // Ids in external-id order, each once even when several addresses match it.
        let ids: BTreeSet<&String> = addresses
            .iter()
            .filter(|a| !a.is_empty())
            .filter_map(|a| state.by_name.get(&a.to_ascii_lowercase()))
            .flatten()
            .collect();
        let matches: Vec<(&String, &Entry)> = ids
            .into_iter()
            .filter_map(|id| state.users.get_key_value(id))
            .collect();
        match matches.as_slice() {
            [] => Ok(None),
            [(id, e)] => Ok(Some(self.account_ref(id, &e.user))),
            many => Err(Error::ambiguous(format!(
                "{} accounts in {} match {}: {}",
                many.len(),
                self.app,
                person.email,
                many.iter()
                    .map(|(id, e)| format!("{} ({id})", e.user.login))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .with_operation("lookup")),
        }
    }

    async fn execute(
        &self,
        account: &AccountRef,
        action: &Action,
        options: &ExecuteOptions,
    ) -> Result<ExecuteReply> {
        let op = action.name.to_string();
        self.enter(
            |c| {
                c.execute += 1;
                *c.by_action.entry(op.clone()).or_default() += 1;
            },
            None,
        )
        .await?;
        let Some(verb) = self.verb(&action.name) else {
            return Err(
                Error::unsupported(format!("{} does not offer {}", self.app, action.name))
                    .with_operation(op),
            );
        };
        self.check_account(account, &op)?;
        let transfer = match verb {
            Verb::TransferData => {
                let params: TransferParams = action.params()?;
                if params.to.trim().is_empty() {
                    return Err(
                        Error::invalid_input(format!("parameters of {op}: `to` is empty"))
                            .with_operation(op),
                    );
                }
                Some(params)
            }
            _ => None,
        };
        let mut state = self.state();
        if !options.dry_run
            && let Some(e) = state.faults.take(&op, false)
        {
            return Err(e);
        }
        let reply = state.execute(
            &action.name,
            verb,
            &account.external_id,
            transfer.as_ref(),
            options,
        )?;
        if !options.dry_run
            && let Some(e) = state.faults.take(&op, true)
        {
            return Err(e);
        }
        Ok(reply)
    }

    async fn snapshot(&self, account: &AccountRef, action: &Action) -> Result<Snapshot> {
        self.enter(|c| c.snapshot += 1, Some("snapshot")).await?;
        let op = format!("snapshot {}", action.name);
        let verb = self.verb(&action.name);
        if !matches!(verb, Some(Verb::Suspend | Verb::RemoveGroups)) {
            return Err(Error::unsupported(format!(
                "{} is not a reversible action of {}; nothing to snapshot",
                action.name, self.app
            ))
            .with_operation(op));
        }
        self.check_account(account, &op)?;
        let state = self.state();
        let Some(entry) = state.users.get(&account.external_id) else {
            return Err(Error::not_found(format!(
                "account {} does not exist",
                account.external_id
            ))
            .with_operation(op));
        };
        let data = match verb {
            Some(Verb::Suspend) => serde_json::json!({ "status": entry.user.status }),
            _ => serde_json::json!({ "groups": entry.user.groups }),
        };
        Ok(Snapshot::new(
            self.app.clone(),
            action.name.clone(),
            account.external_id.clone(),
            data,
        ))
    }

    async fn restore(&self, account: &AccountRef, snapshot: &Snapshot) -> Result<Outcome> {
        self.enter(|c| c.restore += 1, Some("restore")).await?;
        let op = format!("restore {}", snapshot.action);
        self.check_account(account, &op)?;
        snapshot
            .check_restores(&self.app, account)
            .map_err(|e| e.with_operation(op.clone()))?;
        let verb = self.verb(&snapshot.action);
        if !matches!(verb, Some(Verb::Suspend | Verb::RemoveGroups)) {
            return Err(Error::unsupported(format!(
                "{} is not a reversible action of {}",
                snapshot.action, self.app
            ))
            .with_operation(op));
        }
        let malformed = |e: serde_json::Error| {
            Error::invalid_input(format!(
                "snapshot data of {} is malformed: {e}",
                snapshot.action
            ))
            .with_operation(op.clone())
        };
        let mut state = self.state();
        let Some(entry) = state.users.get_mut(&account.external_id) else {
            return Err(Error::not_found(format!(
                "account {} does not exist; nothing to restore",
                account.external_id
            ))
            .with_operation(op.clone()));
        };
        let changed = match verb {
            Some(Verb::Suspend) => {
                let data: StatusData =
                    serde_json::from_value(snapshot.data.clone()).map_err(malformed)?;
                let changed = entry.user.status != data.status;
                entry.user.status = data.status;
                changed
            }
            _ => {
                let data: GroupsData =
                    serde_json::from_value(snapshot.data.clone()).map_err(malformed)?;
                let before = entry.user.groups.len();
                entry.user.groups.extend(data.groups);
                entry.user.groups.len() != before
            }
        };
        if !changed {
            return Ok(Outcome::AlreadyDone);
        }
        *state
            .restores
            .entry((account.external_id.clone(), snapshot.action.to_string()))
            .or_default() += 1;
        Ok(Outcome::Done)
    }

    async fn verify_revoked(&self, account: &AccountRef) -> Result<Verification> {
        self.enter(|c| c.verify_revoked += 1, None).await?;
        if !self.capabilities.verify {
            return Err(
                Error::unsupported(format!("{} verification is turned off", self.app))
                    .with_operation("verify_revoked"),
            );
        }
        let mut state = self.state();
        if let Some(e) = state.faults.take("verify_revoked", false) {
            return Err(e);
        }
        let Some(entry) = state.users.get(&account.external_id) else {
            return Ok(Verification::from_remaining(self.app.clone(), Vec::new()));
        };
        let user = &entry.user;
        let mut remaining = Vec::new();
        if user.status.may_have_access() {
            remaining.push(format!("status {:?}", user.status).to_lowercase());
        }
        remaining.extend(user.groups.iter().map(|g| format!("member of group {g}")));
        remaining.extend(user.apps.iter().map(|a| format!("assigned app {a}")));
        if user.sessions > 0 {
            remaining.push(format!("{} open sessions", user.sessions));
        }
        Ok(Verification::from_remaining(self.app.clone(), remaining))
    }
}
