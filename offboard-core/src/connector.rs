//! The [`Connector`] trait: how offboard acts on one app.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::action::{Action, ActionName, ActionSpec};
use crate::budget::RateBudget;
use crate::error::{Error, Result};
use crate::model::{AccountRef, AppId, Person};
use crate::run::{Outcome, RunId, TaskId};

/// What a connector can do. The engine plans only listed actions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Capabilities {
    /// The app this connector acts on.
    pub app: AppId,
    /// The actions it offers.
    pub actions: Vec<ActionSpec>,
    /// Whether [`Connector::verify_revoked`] is implemented.
    pub verify: bool,
    /// Whether [`Connector::discover`] is implemented.
    pub discover: bool,
    /// Actions of this connector not offered as configured, each with the reason (e.g. a host
    /// integration that is not configured); the engine quotes it when a policy names one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unavailable: Vec<(ActionName, String)>,
}

impl Capabilities {
    /// Capabilities with the given actions; verify on, discovery off.
    pub fn new(app: impl Into<AppId>, actions: Vec<ActionSpec>) -> Self {
        Self {
            app: app.into(),
            actions,
            verify: true,
            discover: false,
            unavailable: Vec::new(),
        }
    }

    /// Records that `name` is not offered, and why.
    pub fn with_unavailable(mut self, name: ActionName, reason: impl Into<String>) -> Self {
        self.unavailable.push((name, reason.into()));
        self
    }

    /// Why an action is not offered, when the connector said.
    pub fn unavailable_reason(&self, name: &ActionName) -> Option<&str> {
        self.unavailable
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, r)| r.as_str())
    }

    /// Turns verification off.
    pub fn without_verify(mut self) -> Self {
        self.verify = false;
        self
    }

    /// Turns discovery on.
    pub fn with_discovery(mut self) -> Self {
        self.discover = true;
        self
    }

    /// The spec of an action, if offered.
    pub fn action(&self, name: &ActionName) -> Option<&ActionSpec> {
        self.actions.iter().find(|a| &a.name == name)
    }

    /// The actions run for a discovered app the policy does not name
    /// ([`ActionSpec::by_default`]): marked so, offered, and never critical.
    pub fn default_actions(&self) -> impl Iterator<Item = &ActionSpec> {
        self.actions
            .iter()
            .filter(|a| a.by_default && !a.critical && self.unavailable_reason(&a.name).is_none())
    }

    /// Whether any offered action is reversible.
    pub fn snapshots(&self) -> bool {
        self.actions.iter().any(|a| a.reversible)
    }
}

/// What to look the person up by.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LookupRequest {
    /// The person.
    pub person: Person,
    /// The account's immutable id when the inventory already knows it; connectors then look up
    /// by this id only (the engine falls back to the addresses itself when the id is gone).
    pub external_id: Option<String>,
}

impl LookupRequest {
    /// Look the person up by their addresses.
    pub fn person(person: Person) -> Self {
        Self {
            person,
            external_id: None,
        }
    }

    /// Look up by a known immutable id.
    pub fn with_external_id(mut self, id: impl Into<String>) -> Self {
        self.external_id = Some(id.into());
        self
    }
}

/// Whether to take a snapshot before a reversible action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotPolicy {
    /// The engine takes it (through [`Connector::snapshot`]) and stores it first.
    #[default]
    TakenByEngine,
    /// No snapshot (rollback impossible for this execution).
    Skip,
}

/// Options for [`Connector::execute`]. New options become new fields; build with `Default` and
/// the `with_*` methods.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExecuteOptions {
    /// Change nothing; return what would happen (`Done` if a change is needed, `AlreadyDone` if
    /// not).
    pub dry_run: bool,
    /// Stable across retries of the same task; connectors that create things (tickets,
    /// transfers) use it to find what an earlier attempt created.
    pub idempotency_key: String,
    /// The run, for context and descriptions.
    pub run: Option<RunId>,
    /// The task.
    pub task: Option<TaskId>,
    /// Attempt number (1-based).
    pub attempt: u32,
    /// When the task's first attempt started (the same across retries): a connector whose
    /// vendor keeps no idempotency key can tell a repeat from a first run by a change made
    /// since then (e.g. AD's `pwdLastSet`).
    pub started_at: Option<DateTime<Utc>>,
    /// Who the change is made for (stamped into descriptions).
    pub actor: String,
    /// Snapshot handling.
    pub snapshot: SnapshotPolicy,
    /// The person, for actions that need more than the account (manager for transfers).
    pub person: Option<Person>,
}

impl ExecuteOptions {
    /// Sets dry-run.
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Sets the idempotency key.
    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = key.into();
        self
    }

    /// Sets the person.
    pub fn with_person(mut self, person: Person) -> Self {
        self.person = Some(person);
        self
    }

    /// Sets the actor.
    pub fn with_actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = actor.into();
        self
    }

    /// Sets when the task's first attempt started.
    pub fn with_started_at(mut self, started_at: DateTime<Utc>) -> Self {
        self.started_at = Some(started_at);
        self
    }
}

/// What an execution did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecuteReply {
    /// Done, already done, or not found.
    pub outcome: Outcome,
    /// Note for the report ("skipped 2 dynamic groups", "3 sessions cleared").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl ExecuteReply {
    /// A reply without detail.
    pub fn new(outcome: Outcome) -> Self {
        Self {
            outcome,
            detail: None,
        }
    }

    /// A reply with detail.
    pub fn with_detail(outcome: Outcome, detail: impl Into<String>) -> Self {
        Self {
            outcome,
            detail: Some(detail.into()),
        }
    }

    /// A reply with detail, marked `dry run: ` when it only predicts (the outcome a real run
    /// would have, nothing changed).
    ///
    /// ```
    /// use offboard_core::{ExecuteReply, Outcome};
    /// let r = ExecuteReply::predicted(Outcome::Done, true, "would suspend 00u1");
    /// assert_eq!(r.detail.as_deref(), Some("dry run: would suspend 00u1"));
    /// ```
    pub fn predicted(outcome: Outcome, dry_run: bool, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        Self::with_detail(
            outcome,
            if dry_run {
                format!("dry run: {detail}")
            } else {
                detail
            },
        )
    }

    /// The reply for an account that no longer exists: `NotFound`, naming the user.
    pub fn user_gone(id: &str) -> Self {
        Self::with_detail(Outcome::NotFound, format!("user {id} does not exist"))
    }
}

/// The (account id, idempotency key) pairs one connector instance has handled, for actions
/// whose effect the vendor cannot show (sign-out, session revocation, password reset).
///
/// # Behavior
/// A repeat with the same key is recognised as already done; an empty key is never
/// remembered. Memory only: after a restart the action runs again, which such actions allow
/// (their calls are idempotent and harmless to repeat).
#[derive(Debug, Default)]
pub struct KeyMemo(Mutex<BTreeSet<(String, String)>>);

impl KeyMemo {
    /// Whether this (account, key) pair was handled by this instance.
    pub fn contains(&self, id: &str, key: &str) -> bool {
        !key.is_empty()
            && self
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(&(id.to_owned(), key.to_owned()))
    }

    /// Remembers the pair (nothing for an empty key).
    pub fn insert(&self, id: &str, key: &str) {
        if !key.is_empty() {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert((id.to_owned(), key.to_owned()));
        }
    }
}

/// State captured before a reversible action, enough to undo it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The app.
    pub app: AppId,
    /// The action it was taken for.
    pub action: ActionName,
    /// The account.
    pub external_id: String,
    /// Connector-specific state (group ids, OU, status, SKUs...).
    pub data: serde_json::Value,
    /// When it was taken.
    pub taken_at: DateTime<Utc>,
}

impl Snapshot {
    /// A snapshot of `external_id` in `app`, taken now, before `action`.
    pub fn new(
        app: AppId,
        action: ActionName,
        external_id: impl Into<String>,
        data: serde_json::Value,
    ) -> Self {
        Self {
            app,
            action,
            external_id: external_id.into(),
            data,
            taken_at: Utc::now(),
        }
    }

    /// Encodes a connector's snapshot data for [`Snapshot::new`]; [`Snapshot::data_as`] reads
    /// it back.
    ///
    /// # Errors
    /// `Internal` when `data` has no JSON form (a map with keys that are not strings).
    pub fn encode<T: Serialize>(data: &T) -> Result<serde_json::Value> {
        serde_json::to_value(data).map_err(|e| {
            Error::internal(format!("snapshot data cannot be encoded: {e}")).with_source(e)
        })
    }

    /// The snapshot's data as the connector wrote it.
    ///
    /// # Errors
    /// `InvalidInput` (fatal) naming the action when the data is not a `T`: the snapshot was
    /// not written by this connector, or by a version with another layout.
    pub fn data_as<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_value(self.data.clone()).map_err(|e| {
            Error::invalid_input(format!("snapshot of {} is malformed: {e}", self.action))
                .fatal()
                .with_source(e)
        })
    }

    /// Checks that this snapshot may restore `account` in `app`.
    ///
    /// # Errors
    /// `InvalidInput` when the snapshot was taken of another app or account: a snapshot never
    /// restores anything but what it was taken from.
    pub fn check_restores(&self, app: &AppId, account: &AccountRef) -> Result<()> {
        if &self.app != app || self.external_id != account.external_id {
            return Err(Error::invalid_input(format!(
                "snapshot of {}/{} cannot restore {app}/{}",
                self.app, self.external_id, account.external_id
            )));
        }
        Ok(())
    }
}

/// What a verification pass found for one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// The app.
    pub app: AppId,
    /// Whether no access remains.
    pub revoked: bool,
    /// Each access still found ("status ACTIVE", "member of group Engineering").
    #[serde(default)]
    pub remaining: Vec<String>,
}

impl Verification {
    /// Builds from the list of remaining access: revoked when it is empty.
    pub fn from_remaining(app: impl Into<AppId>, remaining: Vec<String>) -> Self {
        Self {
            app: app.into(),
            revoked: remaining.is_empty(),
            remaining,
        }
    }
}

/// Acts on one app for the engine.
///
/// Every method addresses the account by [`AccountRef::external_id`]. Implementations keep
/// secrets in [`crate::Secret`] so their `Debug` output never shows them.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait Connector: Send + Sync + fmt::Debug {
    /// What the connector offers.
    ///
    /// # Behavior
    /// Constant for the connector's lifetime; the engine plans only listed actions.
    fn capabilities(&self) -> &Capabilities;

    /// Finds the person's account. Exact match only.
    ///
    /// # Behavior
    /// - Addresses match exactly, ignoring ASCII case only (no Unicode case folding, which
    ///   could map a different character onto a login).
    /// - `Ok(None)` when nothing matches: the person has no account here.
    /// - An error of kind [`crate::ErrorKind::Ambiguous`] when more than one account matches;
    ///   never a guess.
    /// - Input is escaped for the vendor's query language: a quote, `*`, `(`, operator or NUL
    ///   in an address can never widen the match. Input that cannot be expressed safely is an
    ///   [`crate::ErrorKind::InvalidInput`] error.
    /// - With `external_id` set, that id is looked up and the person's addresses are not used.
    async fn lookup(&self, request: &LookupRequest) -> Result<Option<AccountRef>>;

    /// Runs an action on the account.
    ///
    /// # Behavior
    /// - Idempotent: running it again leaves the same end state and reports
    ///   [`Outcome::AlreadyDone`].
    /// - An account that no longer exists: [`Outcome::NotFound`] for removals (the goal holds),
    ///   an error of kind `NotFound` for actions that need the account. A delete repeated after
    ///   it succeeded may report either `AlreadyDone` or `NotFound`.
    /// - Where the vendor cannot tell whether a call changed anything (e.g. "clear sessions"
    ///   always succeeds), the connector reads state first so the outcome is truthful.
    /// - Dry run changes nothing and predicts `Done` or `AlreadyDone`.
    /// - An action not in [`Connector::capabilities`] is an `Unsupported` error.
    async fn execute(
        &self,
        account: &AccountRef,
        action: &Action,
        options: &ExecuteOptions,
    ) -> Result<ExecuteReply>;

    /// Captures what a reversible action will change.
    ///
    /// # Behavior
    /// Reads only. Called once before the first attempt; the engine stores the result and never
    /// overwrites it, so a retry cannot replace the pre-change state with a post-change one.
    async fn snapshot(&self, account: &AccountRef, action: &Action) -> Result<Snapshot>;

    /// Undoes an action from its snapshot.
    ///
    /// # Behavior
    /// Idempotent: restoring twice reports `AlreadyDone` the second time. Restores exactly what
    /// the snapshot recorded, nothing more.
    async fn restore(&self, account: &AccountRef, snapshot: &Snapshot) -> Result<Outcome>;

    /// Re-reads the app and reports any access the account still has.
    ///
    /// # Behavior
    /// Reads only. An account that no longer exists is revoked.
    async fn verify_revoked(&self, account: &AccountRef) -> Result<Verification>;

    /// Lists accounts and third-party grants the person has, for the inventory.
    ///
    /// # Behavior
    /// Reads only. Connectors without discovery return `Unsupported`.
    async fn discover(&self, account: &AccountRef) -> Result<Vec<AccountRef>> {
        let _ = account;
        Err(Error::unsupported(format!(
            "{} does not discover accounts",
            self.capabilities().app
        )))
    }

    /// Makes every vendor request of this connector draw from `budget` from now on (a budget
    /// shared by the engines of a fleet: see [`crate::budget`]). Called by
    /// [`crate::EngineBuilder::rate_budget`] before the engine starts.
    ///
    /// # Behavior
    /// Connectors whose vendor has no request budget keep the default, which does nothing.
    fn use_rate_budget(&self, budget: Arc<dyn RateBudget>) {
        let _ = budget;
    }
}

macro_rules! forward_connector {
    ($ty:ty) => {
        #[deny(clippy::missing_trait_methods)]
        #[async_trait]
        impl<C: Connector + ?Sized> Connector for $ty {
            fn capabilities(&self) -> &Capabilities {
                (**self).capabilities()
            }
            async fn lookup(&self, request: &LookupRequest) -> Result<Option<AccountRef>> {
                (**self).lookup(request).await
            }
            async fn execute(
                &self,
                account: &AccountRef,
                action: &Action,
                options: &ExecuteOptions,
            ) -> Result<ExecuteReply> {
                (**self).execute(account, action, options).await
            }
            async fn snapshot(&self, account: &AccountRef, action: &Action) -> Result<Snapshot> {
                (**self).snapshot(account, action).await
            }
            async fn restore(&self, account: &AccountRef, snapshot: &Snapshot) -> Result<Outcome> {
                (**self).restore(account, snapshot).await
            }
            async fn verify_revoked(&self, account: &AccountRef) -> Result<Verification> {
                (**self).verify_revoked(account).await
            }
            async fn discover(&self, account: &AccountRef) -> Result<Vec<AccountRef>> {
                (**self).discover(account).await
            }
            fn use_rate_budget(&self, budget: Arc<dyn RateBudget>) {
                (**self).use_rate_budget(budget)
            }
        }
    };
}

forward_connector!(Arc<C>);
forward_connector!(Box<C>);
