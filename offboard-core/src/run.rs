//! Runs (one offboarding of one person) and their tasks.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::action::Action;
use crate::error::ErrorRecord;
use crate::model::{AccountRef, AppId, Person};

macro_rules! uuid_id {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh random id.
            pub fn new_v4() -> Self {
                Self(Uuid::new_v4())
            }

            /// A fresh id that sorts after the ids made before it (UUIDv7: milliseconds since
            /// the epoch, then random bits). Stores index by id: new ids land at the end of the
            /// index, where the pages of the runs in flight already are, instead of anywhere.
            pub fn new_v7() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok(Self(Uuid::parse_str(s)?))
            }
        }
    };
}

uuid_id!(
    /// A run's id.
    RunId
);
uuid_id!(
    /// A task's id (unique across runs).
    TaskId
);

/// Who or what started a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Initiator {
    /// An administrator, named.
    Admin {
        /// Who.
        actor: String,
    },
    /// A source of truth reported the person gone.
    SourceOfTruth {
        /// Which source.
        source: String,
    },
    /// A schedule (a staged policy, a termination date).
    Schedule,
}

impl Initiator {
    /// The actor string recorded in audit events.
    pub fn actor(&self) -> String {
        match self {
            Self::Admin { actor } => actor.clone(),
            Self::SourceOfTruth { source } => format!("source:{source}"),
            Self::Schedule => "schedule".to_owned(),
        }
    }
}

/// How a successful task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The change was made now.
    Done,
    /// The end state already held; nothing was changed.
    AlreadyDone,
    /// The account does not exist in the app; for removals the goal (no access) holds.
    NotFound,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Done => "done",
            Self::AlreadyDone => "already_done",
            Self::NotFound => "not_found",
        })
    }
}

/// How a delegated task is carried out by a human.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DelegateVia {
    /// A Jira issue.
    Jira,
    /// An email with a link to the host's task page.
    Email,
}

impl DelegateVia {
    /// `jira` or `email`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Jira => "jira",
            Self::Email => "email",
        }
    }
}

/// A human task opened by a [`crate::Delegate`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// Jira issue key, or the email delegation's id.
    pub key: String,
    /// Link a person can open.
    #[serde(default)]
    pub url: String,
    /// Who works on it, when assigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
}

/// Why a task was skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason", content = "detail")]
pub enum SkipReason {
    /// The policy ignores this app.
    Ignored,
    /// The account is protected.
    Protected,
    /// The run is a dry run.
    DryRun,
    /// A task it depends on did not succeed.
    DependencyFailed(TaskId),
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ignored => f.write_str("ignored by policy"),
            Self::Protected => f.write_str("protected account"),
            Self::DryRun => f.write_str("dry run"),
            Self::DependencyFailed(t) => write!(f, "dependency {t} did not succeed"),
        }
    }
}

/// A task's state. See the module docs of [`crate::machine`] for the transitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum TaskState {
    /// Waiting for its dependencies, its stage time, or a worker.
    Pending,
    /// A worker is running it (attempt `attempt`, 1-based).
    Running {
        /// Attempt number.
        attempt: u32,
        /// When this attempt started.
        since: DateTime<Utc>,
    },
    /// The last attempt failed retryably; runs again at `not_before`.
    Retrying {
        /// Attempts made so far.
        attempt: u32,
        /// Earliest next attempt.
        not_before: DateTime<Utc>,
        /// The error of the last attempt.
        last_error: ErrorRecord,
    },
    /// A critical action waiting for a confirmation ([`crate::Engine::confirm`]) before it may
    /// run: never started, never due, until confirmed (then `Pending`) or cancelled.
    Held,
    /// A human task is open.
    Delegated {
        /// The ticket.
        ticket: Ticket,
    },
    /// Finished successfully.
    Completed {
        /// How.
        outcome: Outcome,
        /// Connector's or delegate's note (e.g. "2 dynamic groups left alone").
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// Failed permanently or ran out of retries.
    Failed {
        /// Why.
        error: ErrorRecord,
    },
    /// Not run.
    Skipped {
        /// Why.
        reason: SkipReason,
    },
    /// The run was cancelled before this task started.
    Cancelled,
    /// Completed, then undone from its snapshot.
    RolledBack,
}

impl TaskState {
    /// Whether no further transition is expected (except `Completed -> RolledBack`).
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Completed { .. }
                | Self::Failed { .. }
                | Self::Skipped { .. }
                | Self::Cancelled
                | Self::RolledBack
        )
    }

    /// Whether it completed (done, already done or not found).
    pub fn is_completed(&self) -> bool {
        matches!(self, Self::Completed { .. })
    }

    /// Stable snake_case name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running { .. } => "running",
            Self::Retrying { .. } => "retrying",
            Self::Held => "held",
            Self::Delegated { .. } => "delegated",
            Self::Completed { .. } => "completed",
            Self::Failed { .. } => "failed",
            Self::Skipped { .. } => "skipped",
            Self::Cancelled => "cancelled",
            Self::RolledBack => "rolled_back",
        }
    }
}

/// What a task does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum TaskKind {
    /// Run a connector action on the account.
    Action {
        /// The action.
        action: Action,
    },
    /// Ask a human through a delegate.
    Delegation {
        /// Jira or email.
        via: DelegateVia,
    },
    /// The policy ignores the app: recorded, never run.
    Ignore,
}

/// One unit of work: an action in one app, or one delegation for one app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// Id.
    pub id: TaskId,
    /// The app.
    pub app: AppId,
    /// What it does.
    pub kind: TaskKind,
    /// The account found at planning (`None`: not found in the app, or not integrated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountRef>,
    /// Tasks that must complete first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<TaskId>,
    /// The policy stage it belongs to (e.g. `last_day`, `cleanup`).
    pub stage: String,
    /// Earliest time it may run (the stage's time).
    pub not_before: DateTime<Utc>,
    /// Destroys something; needed confirmation.
    pub critical: bool,
    /// Can be undone from a snapshot.
    pub reversible: bool,
    /// For removals, a missing account means done.
    pub not_found_is_done: bool,
    /// Key connectors and delegates use to make repeats harmless (`<run>:<task>`).
    pub idempotency_key: String,
    /// Current state.
    pub state: TaskState,
    /// Attempts started so far.
    pub attempts: u32,
    /// When a worker may pick it up next; `None` when nothing is to be done (terminal, or
    /// waiting on dependencies). Maintained by the state machine; the store claims by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<DateTime<Utc>>,
    /// When the first attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached a terminal state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
}

impl Task {
    /// The action's name, or `<app>.delegate_<via>` for a delegation.
    pub fn label(&self) -> String {
        match &self.kind {
            TaskKind::Action { action } => action.to_string(),
            TaskKind::Delegation { via } => format!("{}.delegate_{}", self.app, via.as_str()),
            TaskKind::Ignore => format!("{}.ignore", self.app),
        }
    }

    /// Whether the planner found nothing to act on: an action with no account, or a delegation
    /// for an account that no longer grants access. Such a task ends at submission.
    pub fn account_gone(&self) -> bool {
        match &self.account {
            None => matches!(self.kind, TaskKind::Action { .. }),
            Some(acc) => {
                matches!(self.kind, TaskKind::Delegation { .. }) && !acc.status.may_have_access()
            }
        }
    }

    /// Whether a rollback takes it: reversible, and completed or failed (see
    /// [`Run::restorable`]).
    pub fn restorable(&self) -> bool {
        self.reversible
            && matches!(
                self.state,
                TaskState::Completed { .. } | TaskState::Failed { .. }
            )
    }

    /// The action, if it is an action task.
    pub fn action(&self) -> Option<&Action> {
        match &self.kind {
            TaskKind::Action { action } => Some(action),
            TaskKind::Delegation { .. } | TaskKind::Ignore => None,
        }
    }
}

/// A run's state, derived from its tasks by [`crate::machine`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Planned, not yet submitted.
    Planned,
    /// Tasks are pending or running.
    Running,
    /// Only delegations (human tasks) are open.
    Waiting,
    /// Nothing can move until someone confirms the critical tasks held for confirmation (see
    /// [`TaskState::Held`]); every other open task waits on them or on a human.
    AwaitingConfirmation,
    /// Every task terminal and none failed: the person is offboarded.
    Completed,
    /// Every task terminal, some failed.
    CompletedWithFailures,
    /// Cancelled; no task starts any more.
    Cancelled,
    /// Reversible actions were undone.
    RolledBack,
}

impl RunState {
    /// Whether the run has ended.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::CompletedWithFailures | Self::Cancelled | Self::RolledBack
        )
    }
}

fn default_poll() -> std::time::Duration {
    std::time::Duration::from_secs(60)
}

/// How often and how long a failing task is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Total time from the first attempt after which no retry is scheduled.
    #[serde(with = "crate::error::millis")]
    pub max_elapsed: std::time::Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            max_elapsed: std::time::Duration::from_secs(3600),
        }
    }
}

/// The lease of a rollback under way ([`Run::restore_lease`]): taken with the rollback's
/// request, renewed with each restore it records, released when it ends. Another rollback
/// takes the run over only once it expired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreLease {
    /// Who holds it (the engine's worker id).
    pub holder: String,
    /// Unique per rollback: the holder's records must quote it.
    pub token: Uuid,
    /// When it expires.
    pub until: DateTime<Utc>,
}

/// A task a rollback did not restore ([`crate::engine::RollbackReport::kept`],
/// [`crate::machine::Event::RollbackEnded`]): restoring `because`, a task that depended on it
/// (directly or not), failed, so it is left as it is until a later rollback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptTask {
    /// The task not restored.
    pub task: TaskId,
    /// The task whose restore failed.
    pub because: TaskId,
}

/// One offboarding of one person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// Id.
    pub id: RunId,
    /// Who is offboarded.
    pub person: Person,
    /// Who started it.
    pub initiator: Initiator,
    /// Why (free text: "resigned", "HR termination 2026-11-30").
    #[serde(default)]
    pub reason: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it takes effect (first stage's time).
    pub effective_at: DateTime<Utc>,
    /// Whether nothing is executed (every task skipped as dry run).
    #[serde(default)]
    pub dry_run: bool,
    /// Digest of the plan it was submitted from.
    pub plan_digest: String,
    /// Fingerprint of the policy it was planned under ([`crate::Policy::fingerprint`]).
    #[serde(default)]
    pub policy: String,
    /// Who confirmed the critical actions, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed_by: Option<String>,
    /// Its tasks.
    pub tasks: Vec<Task>,
    /// State, derived from the tasks.
    pub state: RunState,
    /// Set once cancelled.
    #[serde(default)]
    pub cancelled: bool,
    /// Set once a rollback was requested.
    #[serde(default)]
    pub rollback_requested: bool,
    /// The lease of the rollback restoring the run's tasks now, if one does: only its holder
    /// restores (see [`crate::Engine::rollback`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_lease: Option<RestoreLease>,
    /// Retry budget, fixed at planning so replay decides as the live run did.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// How often open delegations are polled.
    #[serde(default = "default_poll", with = "crate::error::millis")]
    pub delegation_poll: std::time::Duration,
    /// Optimistic-concurrency version, bumped by the store at every transition.
    #[serde(default)]
    pub version: u64,
    /// When it reached a terminal state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
}

impl Run {
    /// The task with this id.
    pub fn task(&self, id: TaskId) -> Option<&Task> {
        self.tasks.iter().find(|t| t.id == id)
    }

    /// The task with this id, mutably.
    pub fn task_mut(&mut self, id: TaskId) -> Option<&mut Task> {
        self.tasks.iter_mut().find(|t| t.id == id)
    }

    /// The tasks a confirmation releases: critical actions held for one (or, before
    /// submission, the critical actions on an account that will be held).
    pub fn confirmable(&self) -> impl Iterator<Item = &Task> {
        self.tasks.iter().filter(|t| {
            t.state == TaskState::Held
                || (self.state == RunState::Planned
                    && !self.dry_run
                    && self.confirmed_by.is_none()
                    && t.critical
                    && t.state == TaskState::Pending
                    && !t.account_gone())
        })
    }

    /// The digest a confirmation of this run quotes: SHA-256 over the canonical JSON of the
    /// person's id, the policy's fingerprint and what the confirmation releases ([`Run::confirmable`]:
    /// app, action and parameters, account, stage of each). Stable: no run or task id, no time,
    /// so planning the same request under the same policy again gives the same digest.
    pub fn confirmation_digest(&self) -> String {
        let tasks: Vec<serde_json::Value> = self
            .confirmable()
            .map(|t| {
                serde_json::json!({
                    "app": t.app,
                    "kind": t.kind,
                    "account": t.account.as_ref().map(|a| (&a.external_id, &a.login)),
                    "stage": t.stage,
                })
            })
            .collect();
        let v = serde_json::json!({
            "person": self.person.id,
            "policy": self.policy,
            "release": tasks,
        });
        hex::encode(Sha256::digest(crate::audit::canonical_json(&v).as_bytes()))
    }

    /// The tasks a rollback restores (or, when they changed nothing, marks rolled back): the
    /// reversible tasks that completed, and those that failed (a failure after the snapshot
    /// may have changed something), in the order a rollback takes them: the latest to finish
    /// first, ties broken by reverse plan order (which is topological), so a task is restored
    /// before the tasks it depended on.
    pub fn restorable(&self) -> Vec<&Task> {
        let mut tasks: Vec<(usize, &Task)> = self
            .tasks
            .iter()
            .enumerate()
            .filter(|(_, t)| t.restorable())
            .collect();
        tasks.sort_by_key(|(i, t)| std::cmp::Reverse((t.finished_at, *i)));
        tasks.into_iter().map(|(_, t)| t).collect()
    }

    /// Whether a rollback of this run needs a [`crate::Confirmation`] quoting
    /// [`Run::rollback_digest`]: the run has critical tasks.
    pub fn rollback_needs_confirmation(&self) -> bool {
        self.tasks.iter().any(|t| t.critical)
    }

    /// The digest a confirmation of this run's rollback quotes: SHA-256 over the canonical
    /// JSON of the run's id, the person's id, the policy's fingerprint and what the rollback
    /// would restore ([`Run::restorable`]: app, action and parameters, account, state of each).
    /// It never equals a [`Run::confirmation_digest`], and it changes once a task was restored,
    /// so a confirmation covers exactly the rollback it was given for.
    pub fn rollback_digest(&self) -> String {
        let tasks: Vec<serde_json::Value> = self
            .restorable()
            .into_iter()
            .map(|t| {
                serde_json::json!({
                    "app": t.app,
                    "kind": t.kind,
                    "account": t.account.as_ref().map(|a| (&a.external_id, &a.login)),
                    "state": t.state.name(),
                })
            })
            .collect();
        let v = serde_json::json!({
            "rollback": self.id,
            "person": self.person.id,
            "policy": self.policy,
            "restore": tasks,
        });
        hex::encode(Sha256::digest(crate::audit::canonical_json(&v).as_bytes()))
    }

    /// The earliest `due_at` of its tasks.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        self.tasks.iter().filter_map(|t| t.due_at).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_sort_in_the_order_they_were_made() {
        let ids: Vec<RunId> = (0..1_000).map(|_| RunId::new_v7()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        // As stores keep them: text.
        let text: Vec<String> = ids.iter().map(ToString::to_string).collect();
        assert!(text.windows(2).all(|w| w[0] < w[1]));
    }
}
