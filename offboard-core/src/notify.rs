//! Notifications: the [`Notifier`] hook and the [`Notification`] it receives.
//!
//! The engine tells notifiers about four moments of a run, read off the durable audit trail
//! (see `engine/notify.rs`): a run started, a delegated task is overdue, a run finished, a run
//! failed. A notification carries the run's facts (who leaves, the apps, how the tasks went)
//! and a stable [`Notification::id`] derived from the audit event that caused it, so a
//! notification delivered again after a crash carries the same id and a receiver can drop the
//! repeat. It never carries a secret: no credentials, no ticket or task-page links (an email
//! task page's link holds its token), no error messages from the systems.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::audit::{AuditEvent, AuditKind};
use crate::error::Result;
use crate::machine::Event;
use crate::model::{AppId, PersonId};
use crate::run::{DelegateVia, Run, RunId, RunState, TaskId, TaskKind, TaskState};

/// The name of the audit note the engine writes when a delegated task is overdue (see
/// [`crate::EngineBuilder::overdue_after`]); its data is an [`OverdueTask`].
pub const OVERDUE_NOTE: &str = "delegation_overdue";

/// Which moment of a run a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// The run was submitted (its `Submitted` transition).
    RunStarted,
    /// A delegated task is still open past its due date plus the engine's grace
    /// ([`crate::EngineBuilder::overdue_after`]); once per task.
    TaskOverdue,
    /// The run reached `Completed`, `Cancelled` or `RolledBack` (see [`RunFacts::state`]).
    RunFinished,
    /// The run reached `CompletedWithFailures`: every task is terminal and at least one failed
    /// (a failed critical task included; [`TaskCounts::critical_failed`] says how many).
    RunFailed,
}

impl NotificationKind {
    /// Short stable name (`run_started`, `task_overdue`, `run_finished`, `run_failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RunStarted => "run_started",
            Self::TaskOverdue => "task_overdue",
            Self::RunFinished => "run_finished",
            Self::RunFailed => "run_failed",
        }
    }
}

impl fmt::Display for NotificationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a run's tasks stand.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskCounts {
    /// Every task.
    pub total: u32,
    /// Completed (done, already done, or not found where that counts as done).
    pub completed: u32,
    /// Failed.
    pub failed: u32,
    /// Failed and critical.
    pub critical_failed: u32,
    /// Skipped (ignored, protected, dry run, dependency failed).
    pub skipped: u32,
    /// Cancelled.
    pub cancelled: u32,
    /// Rolled back.
    pub rolled_back: u32,
    /// With a human (delegated, not yet done).
    pub delegated: u32,
    /// Not terminal and not delegated (pending, running, retrying, held).
    pub open: u32,
}

impl TaskCounts {
    /// The counts of `run`'s tasks.
    pub fn of(run: &Run) -> Self {
        let mut c = Self::default();
        for t in &run.tasks {
            c.total += 1;
            match &t.state {
                TaskState::Completed { .. } => c.completed += 1,
                TaskState::Failed { .. } => {
                    c.failed += 1;
                    if t.critical {
                        c.critical_failed += 1;
                    }
                }
                TaskState::Skipped { .. } => c.skipped += 1,
                TaskState::Cancelled => c.cancelled += 1,
                TaskState::RolledBack => c.rolled_back += 1,
                TaskState::Delegated { .. } => c.delegated += 1,
                TaskState::Pending
                | TaskState::Running { .. }
                | TaskState::Retrying { .. }
                | TaskState::Held => c.open += 1,
            }
        }
        c
    }
}

/// A run's facts as a notification tells them (as the run was when the notifier got it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunFacts {
    /// The run.
    pub id: RunId,
    /// The person leaving: the host's id.
    pub person_id: PersonId,
    /// Their primary email address.
    pub person_email: String,
    /// Their display name (may be empty).
    pub person_name: String,
    /// Their manager's email, when the person record has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager_email: Option<String>,
    /// Who started the run (`admin`, `source:okta`, `schedule`).
    pub initiator: String,
    /// Why, as given when it was started.
    pub reason: String,
    /// Whether nothing is executed.
    pub dry_run: bool,
    /// The run's state after the event that caused the notification.
    pub state: RunState,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it took effect.
    pub effective_at: DateTime<Utc>,
    /// When it reached a terminal state, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// The apps it touches, sorted, each once.
    pub apps: Vec<AppId>,
    /// How its tasks stand.
    pub tasks: TaskCounts,
    /// The failed tasks' labels (`okta.suspend`), in the run's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_tasks: Vec<String>,
}

impl RunFacts {
    /// The facts of `run`, with `state` as the run's state (the one after the event).
    pub fn of(run: &Run, state: RunState) -> Self {
        let mut apps: Vec<AppId> = run.tasks.iter().map(|t| t.app.clone()).collect();
        apps.sort();
        apps.dedup();
        Self {
            id: run.id,
            person_id: run.person.id.clone(),
            person_email: run.person.email.clone(),
            person_name: run.person.display_name.clone(),
            manager_email: run.person.manager.as_ref().map(|m| m.email.clone()),
            initiator: run.initiator.actor(),
            reason: run.reason.clone(),
            dry_run: run.dry_run,
            state,
            created_at: run.created_at,
            effective_at: run.effective_at,
            finished_at: run.finished_at,
            apps,
            tasks: TaskCounts::of(run),
            failed_tasks: run
                .tasks
                .iter()
                .filter(|t| matches!(t.state, TaskState::Failed { .. }))
                .map(|t| t.label())
                .collect(),
        }
    }

    /// The person as a notification names them: display name and email, or the email alone.
    pub fn person(&self) -> String {
        if self.person_name.is_empty() {
            self.person_email.clone()
        } else {
            format!("{} <{}>", self.person_name, self.person_email)
        }
    }
}

/// The delegated task a [`NotificationKind::TaskOverdue`] is about; also the data of the
/// [`OVERDUE_NOTE`] audit note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverdueTask {
    /// The task.
    pub task: TaskId,
    /// The app whose access a human was asked to remove.
    pub app: AppId,
    /// Through which delegate.
    pub via: DelegateVia,
    /// When it was due (the task's stage time, as the delegate was told).
    pub due: DateTime<Utc>,
    /// The ticket's key (`IT-7`, `email-3`); never its link.
    pub ticket: String,
    /// Who it is assigned to (the delegate), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
}

impl OverdueTask {
    /// The overdue facts of `run`'s task `task`, when it is delegated.
    pub fn of(run: &Run, task: TaskId) -> Option<Self> {
        let t = run.task(task)?;
        let (TaskKind::Delegation { via }, TaskState::Delegated { ticket }) = (&t.kind, &t.state)
        else {
            return None;
        };
        Some(Self {
            task,
            app: t.app.clone(),
            via: via.clone(),
            due: t.not_before,
            ticket: ticket.key.clone(),
            assignee: ticket.assignee.clone(),
        })
    }
}

/// What a [`Notifier`] is told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Stable idempotency id: the same for every delivery of this notification, after a crash
    /// or on another engine (see [`Notification::id_for`]).
    pub id: String,
    /// Which moment.
    pub kind: NotificationKind,
    /// The audit event that caused it.
    pub seq: u64,
    /// When that event happened.
    pub at: DateTime<Utc>,
    /// The run's facts.
    pub run: RunFacts,
    /// The overdue task, for [`NotificationKind::TaskOverdue`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overdue: Option<OverdueTask>,
}

impl Notification {
    /// The id of a notification of `kind` caused by the audit event `seq` of run `run`:
    /// `<kind>:<run>:<seq>`; for an overdue task `task_overdue:<run>:<task>` (once per task,
    /// whichever note said it).
    pub fn id_for(kind: NotificationKind, run: RunId, seq: u64, task: Option<TaskId>) -> String {
        match (kind, task) {
            (NotificationKind::TaskOverdue, Some(task)) => format!("{kind}:{run}:{task}"),
            _ => format!("{kind}:{run}:{seq}"),
        }
    }

    /// The kind of notification `event` causes, if any, given the run's state before it
    /// (`None`: no transition of the run came before). A transition into a terminal state
    /// notifies once, when the state changes (a later event that leaves it there does not).
    pub fn kind_of(event: &AuditEvent, state_before: Option<RunState>) -> Option<NotificationKind> {
        match &event.kind {
            AuditKind::Transition {
                event: Event::Submitted,
                ..
            } => Some(NotificationKind::RunStarted),
            AuditKind::Transition { run_state, .. }
                if run_state.is_terminal() && state_before != Some(*run_state) =>
            {
                Some(match run_state {
                    RunState::CompletedWithFailures => NotificationKind::RunFailed,
                    _ => NotificationKind::RunFinished,
                })
            }
            AuditKind::Note { name, .. } if name == OVERDUE_NOTE && event.task.is_some() => {
                Some(NotificationKind::TaskOverdue)
            }
            _ => None,
        }
    }

    /// The notification `event` (of kind `kind`, see [`Notification::kind_of`]) causes, with
    /// the facts of `run` as loaded now. `None` when the event has no run or, for an overdue
    /// note, no task.
    pub fn from_event(event: &AuditEvent, kind: NotificationKind, run: &Run) -> Option<Self> {
        let state = match &event.kind {
            AuditKind::Transition { run_state, .. } => *run_state,
            _ => run.state,
        };
        let overdue = match kind {
            NotificationKind::TaskOverdue => {
                let task = event.task?;
                let note = match &event.kind {
                    AuditKind::Note { data, .. } => {
                        serde_json::from_value::<OverdueTask>(data.clone()).ok()
                    }
                    _ => None,
                };
                Some(note.or_else(|| OverdueTask::of(run, task))?)
            }
            _ => None,
        };
        Some(Self {
            id: Self::id_for(kind, event.run?, event.seq, event.task),
            kind,
            seq: event.seq,
            at: event.at,
            run: RunFacts::of(run, state),
            overdue,
        })
    }

    /// A one-line subject: `Offboarding started: Ada Lovelace <ada@example.com>`.
    pub fn subject(&self) -> String {
        let who = self.run.person();
        match self.kind {
            NotificationKind::RunStarted => format!("Offboarding started: {who}"),
            NotificationKind::TaskOverdue => match &self.overdue {
                Some(o) => format!("Overdue: remove {who} from {}", o.app),
                None => format!("Overdue task in the offboarding of {who}"),
            },
            NotificationKind::RunFinished => match self.run.state {
                RunState::Cancelled => format!("Offboarding cancelled: {who}"),
                RunState::RolledBack => format!("Offboarding rolled back: {who}"),
                _ => format!("Offboarding finished: {who}"),
            },
            NotificationKind::RunFailed => format!("Offboarding finished with failures: {who}"),
        }
    }
}

/// Told about runs starting, finishing, failing, and delegated tasks overdue.
///
/// Register with [`crate::EngineBuilder::notifier`]. The engine calls
/// [`Notifier::notify`] off the commit path, from the durable audit trail, in `seq` order; it
/// keeps each notifier's position in the store (cursor `notify:<name>`), so after a crash
/// the notifications after the last one taken come again (at least once, never lost). A slow
/// or failing notifier never slows a commit: an error is logged and the same notification
/// comes again later, with backoff.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait Notifier: Send + Sync + fmt::Debug {
    /// A stable name, unique among an engine's notifiers: its position in the store is kept
    /// under it, so renaming a notifier starts it afresh.
    fn name(&self) -> String;

    /// Delivers (or durably queues) one notification.
    ///
    /// # Behavior
    /// Return `Ok` only once the notification is delivered or durably queued: the engine then
    /// moves on. Receiving the same [`Notification::id`] again is expected after a crash and
    /// must be harmless (deduplicate, or pass the id on as an idempotency key).
    async fn notify(&self, notification: &Notification) -> Result<()>;

    /// Called once when the engine starts its workers ([`crate::Engine::start`]): a notifier
    /// with background work of its own (an outbox to drain) starts it here. The default does
    /// nothing.
    fn start(&self) {}
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<N: Notifier + ?Sized> Notifier for Arc<N> {
    fn name(&self) -> String {
        (**self).name()
    }
    async fn notify(&self, notification: &Notification) -> Result<()> {
        (**self).notify(notification).await
    }
    fn start(&self) {
        (**self).start();
    }
}
