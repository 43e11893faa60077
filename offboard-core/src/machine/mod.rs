//! The pure state machine: `(run, time, event) -> (run', commands)`.
//!
//! Synchronous, no IO, no clock of its own: time comes in with every event. The engine is the
//! only thing that performs [`Command`]s; the store persists the resulting [`Run`] together with
//! the event as one audit record, so replaying the recorded events over the planned run
//! ([`replay`]) rebuilds the same state.
//!
//! # Task transitions
//!
//! ```text
//! Pending --TaskStarted--> Running --TaskSucceeded--> Completed{done|already_done|not_found}
//!                          Running --TaskErrored(retryable, budget left)--> Retrying --TaskStarted--> Running
//!                          Running --TaskErrored(in_progress, job younger than 7 days)--> Retrying (attempt not spent)
//!                          Running --TaskErrored(permanent or budget spent)--> Failed
//!                          Running --TaskErrored(not_found, removal)--> Completed{not_found}
//!                          Running --TaskStarted (lease expired, re-claimed)--> Running (attempt + 1)
//!                          Running --TaskDelegated--> Delegated --DelegationUpdated--> Delegated
//!                                                     Delegated --DelegationDone--> Completed
//!                          Completed (delegation) --DelegationReopened--> Delegated
//!                          Running --TaskSkipped(protected when re-checked before the call)--> Skipped
//! Pending --(dependency not successful)--> Skipped{dependency_failed}
//! Pending --Submitted (dry run)--> Skipped{dry_run}
//! Pending (critical, no confirmation yet) --Submitted--> Held --Confirmed(matching digest)--> Pending
//! Pending | Retrying | Delegated | Held --Cancel--> Cancelled
//! Completed | Failed (reversible, after RollbackRequested) --RestoreStarted--> (unchanged)
//!     --TaskRolledBack--> RolledBack
//!     --RestoreFailed--> (unchanged; a later rollback tries again)
//! ```
//!
//! A rollback holds the run's [`RestoreLease`] from its [`Event::RollbackRequested`] to its
//! [`Event::RollbackEnded`]: its restore events quote the lease (and renew it), and another
//! rollback's request is refused ([`MachineError::RollbackUnderWay`]) until the lease expired,
//! so two rollbacks never restore one task twice. Events that quote another lease than the
//! run's are refused ([`MachineError::RestoreLeaseLost`]).
//!
//! A `Held` task is never due and never started: only [`Event::Confirmed`] quoting the run's
//! [`Run::confirmation_digest`] releases it, and a cancel ends it.
//!
//! `Running` tasks are never cancelled from under their worker: their result is recorded when it
//! arrives, and the run becomes `Cancelled` once none is running.
//!
//! # Calling contract
//!
//! 1. Build the planned [`Run`] (state `Planned`), then apply [`Event::Submitted`].
//! 2. A worker that claimed a due task asks [`claim_command`] what to do: for
//!    [`ClaimCommand::Start`] it applies [`Event::TaskStarted`] and performs the returned
//!    [`Command::Execute`] / [`Command::OpenDelegation`]; for [`ClaimCommand::Poll`] it polls
//!    the delegation and applies [`Event::DelegationUpdated`] / [`Event::DelegationDone`] when
//!    the ticket changed.
//! 3. It applies [`Event::TaskSucceeded`] or [`Event::TaskErrored`] with the result. A task
//!    that result made due may be started in the same commit ([`Event::TaskStarted`] after
//!    the result, with the task's lease taken by that commit) instead of being claimed.
//! 4. After each [`apply`], `task.due_at` says when each task is due; the store claims by it.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, ErrorRecord, RetryClass};
use crate::run::{
    KeptTask, Outcome, RestoreLease, Run, RunState, SkipReason, Task, TaskId, TaskKind, TaskState,
    Ticket,
};

mod decide;
#[cfg(test)]
mod tests;

pub use decide::{
    lease_until, release_due, renew_after_wait, renew_every, snapshot_before_start, take_along,
};

/// Something that happened to a run. Persisted in the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum Event {
    /// The planned run was submitted.
    Submitted,
    /// A worker started (or, after a lost lease, restarted) the task.
    TaskStarted {
        /// The task.
        task: TaskId,
    },
    /// The connector or delegate finished the task.
    TaskSucceeded {
        /// The task.
        task: TaskId,
        /// How.
        outcome: Outcome,
        /// Note for the report.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// The attempt failed.
    TaskErrored {
        /// The task.
        task: TaskId,
        /// Why.
        error: ErrorRecord,
        /// The engine's jittered backoff for this attempt; the machine waits the longer of this
        /// and the vendor's hint.
        backoff_ms: u64,
    },
    /// A task's worker was lost after the run was cancelled; its outcome is unknown and it
    /// will not be started again.
    TaskAbandoned {
        /// The task.
        task: TaskId,
    },
    /// A human task was opened.
    TaskDelegated {
        /// The task.
        task: TaskId,
        /// The ticket.
        ticket: Ticket,
        /// When to poll it.
        next_poll: DateTime<Utc>,
    },
    /// An open human task changed (assignee, link).
    DelegationUpdated {
        /// The task.
        task: TaskId,
        /// The ticket as now read.
        ticket: Ticket,
        /// When to poll it next.
        next_poll: DateTime<Utc>,
    },
    /// The human task reached its "done" status.
    DelegationDone {
        /// The task.
        task: TaskId,
        /// Who closed it, or other note.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        /// Keep watching for a reopen while the run is open: poll again at this time.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next_poll: Option<DateTime<Utc>>,
    },
    /// A closed human task was reopened.
    DelegationReopened {
        /// The task.
        task: TaskId,
        /// The ticket as now read.
        ticket: Ticket,
        /// When to poll it next.
        next_poll: DateTime<Utc>,
    },
    /// The human task was closed without the work done (see
    /// [`TicketStatus::Declined`](crate::TicketStatus::Declined)): the task fails.
    DelegationDeclined {
        /// The task.
        task: TaskId,
        /// Why, as the ticket says.
        reason: String,
    },
    /// The critical tasks held for a confirmation were confirmed: they become `Pending`.
    Confirmed {
        /// Who confirmed.
        by: String,
        /// In which role, if the host names one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        role: Option<String>,
        /// The digest quoted: the run's [`Run::confirmation_digest`].
        digest: String,
    },
    /// A running task was not carried out: checked again right before its call, it was not to
    /// be run (its account is protected by the policy now in force).
    TaskSkipped {
        /// The task.
        task: TaskId,
        /// Why.
        reason: SkipReason,
    },
    /// The run was cancelled.
    Cancel {
        /// Who.
        by: String,
    },
    /// Undo of the run's reversible actions was requested.
    RollbackRequested {
        /// Who.
        by: String,
        /// The rollback's lease on the run's restores (`None` in trails recorded before
        /// rollbacks took one).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lease: Option<RestoreLease>,
    },
    /// A restore is about to be called (its rollback's lease, renewed).
    RestoreStarted {
        /// The task.
        task: TaskId,
        /// The rollback's lease.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lease: Option<RestoreLease>,
    },
    /// A reversible task (completed, or failed after its snapshot) was undone from its
    /// snapshot, or marked undone because it changed nothing.
    TaskRolledBack {
        /// The task.
        task: TaskId,
        /// The rollback's lease, renewed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lease: Option<RestoreLease>,
    },
    /// A restore failed: the task stays as it was (a later rollback tries again).
    RestoreFailed {
        /// The task.
        task: TaskId,
        /// Why.
        error: ErrorRecord,
        /// The rollback's lease, renewed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lease: Option<RestoreLease>,
    },
    /// A rollback ended: its lease is released.
    RollbackEnded {
        /// The lease's token.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<uuid::Uuid>,
        /// Tasks it did not restore because restoring a task that depended on them failed,
        /// each with that task.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        kept: Vec<KeptTask>,
    },
}

impl Event {
    /// Stable snake_case name (the serde tag).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Submitted => "submitted",
            Self::TaskStarted { .. } => "task_started",
            Self::TaskSucceeded { .. } => "task_succeeded",
            Self::TaskErrored { .. } => "task_errored",
            Self::TaskAbandoned { .. } => "task_abandoned",
            Self::TaskDelegated { .. } => "task_delegated",
            Self::DelegationUpdated { .. } => "delegation_updated",
            Self::DelegationDone { .. } => "delegation_done",
            Self::DelegationReopened { .. } => "delegation_reopened",
            Self::DelegationDeclined { .. } => "delegation_declined",
            Self::Confirmed { .. } => "confirmed",
            Self::TaskSkipped { .. } => "task_skipped",
            Self::Cancel { .. } => "cancel",
            Self::RollbackRequested { .. } => "rollback_requested",
            Self::TaskRolledBack { .. } => "task_rolled_back",
            Self::RestoreStarted { .. } => "restore_started",
            Self::RestoreFailed { .. } => "restore_failed",
            Self::RollbackEnded { .. } => "rollback_ended",
        }
    }

    /// The task the event is about, if any.
    pub fn task(&self) -> Option<TaskId> {
        match self {
            Self::TaskStarted { task }
            | Self::TaskSucceeded { task, .. }
            | Self::TaskErrored { task, .. }
            | Self::TaskAbandoned { task }
            | Self::TaskDelegated { task, .. }
            | Self::DelegationUpdated { task, .. }
            | Self::DelegationDone { task, .. }
            | Self::DelegationReopened { task, .. }
            | Self::DelegationDeclined { task, .. }
            | Self::TaskRolledBack { task, .. }
            | Self::RestoreStarted { task, .. }
            | Self::RestoreFailed { task, .. }
            | Self::TaskSkipped { task, .. } => Some(*task),
            Self::Submitted
            | Self::Confirmed { .. }
            | Self::Cancel { .. }
            | Self::RollbackRequested { .. }
            | Self::RollbackEnded { .. } => None,
        }
    }
}

/// What the engine must do after an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run the task's connector action.
    Execute(TaskId),
    /// Open the task's delegation.
    OpenDelegation(TaskId),
    /// Undo the task from its snapshot.
    Restore(TaskId),
    /// The run reached a terminal state.
    Finished(RunState),
}

/// What a worker should do with a task it claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimCommand {
    /// Apply [`Event::TaskStarted`] and perform the command it returns.
    Start,
    /// Poll the open delegation.
    Poll,
    /// The run was cancelled while this task ran and its worker was lost: apply
    /// [`Event::TaskAbandoned`].
    Abandon,
    /// Nothing (the task changed since it was claimed); release the lease.
    Nothing,
}

/// Why an event was refused. The run is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MachineError {
    /// The event names a task the run does not have.
    #[error("unknown task {0}")]
    UnknownTask(TaskId),
    /// The event does not apply to the task's state.
    #[error("{event} does not apply to task {task} in state {state}")]
    InvalidTransition {
        /// The task.
        task: TaskId,
        /// Its state's name.
        state: &'static str,
        /// The event's name.
        event: &'static str,
    },
    /// The run is cancelled; no task starts.
    #[error("run is cancelled")]
    RunCancelled,
    /// The run has ended.
    #[error("run has already ended ({0:?})")]
    RunFinished(RunState),
    /// The run has not ended, so it cannot be rolled back.
    #[error("run has not ended ({0:?}); cancel it or wait before rolling back")]
    RunNotFinished(RunState),
    /// The run was not submitted yet.
    #[error("run is not submitted")]
    NotSubmitted,
    /// The run was submitted already.
    #[error("run is already submitted")]
    AlreadySubmitted,
    /// The task is not due yet.
    #[error("task {0} is not due yet")]
    NotDue(TaskId),
    /// The task's dependencies have not completed.
    #[error("task {0} waits for its dependencies")]
    DependenciesPending(TaskId),
    /// No rollback was requested.
    #[error("no rollback was requested")]
    NoRollback,
    /// Another rollback holds the run's restore lease.
    #[error("a rollback by {holder} is restoring this run (its lease runs until {until})")]
    RollbackUnderWay {
        /// The lease's holder.
        holder: String,
        /// When its lease expires.
        until: DateTime<Utc>,
    },
    /// The event quotes a restore lease the run no longer holds (another rollback took over,
    /// or the rollback ended).
    #[error("the rollback's lease on the run's restores was lost")]
    RestoreLeaseLost,
    /// A confirmation arrived, but no task is held for one.
    #[error("no task is held for a confirmation")]
    NothingHeld,
    /// A confirmation quotes another digest than the run's.
    #[error("the confirmation quotes digest {quoted}, but the held tasks' digest is {expected}")]
    DigestMismatch {
        /// The digest quoted.
        quoted: String,
        /// The run's [`Run::confirmation_digest`].
        expected: String,
    },
}

/// Applies one event at time `at`.
///
/// # Behavior
/// - On success the run is updated (task states, `due_at`, run state, `finished_at`) and the
///   commands to perform are returned; on error nothing changed.
/// - Deterministic: the same run, time and event always give the same result.
///
/// # Errors
/// [`MachineError`] when the event does not apply.
pub fn apply(
    run: &mut Run,
    at: DateTime<Utc>,
    event: &Event,
) -> Result<Vec<Command>, MachineError> {
    let before = run.state;
    // `step` validates before it mutates, so a refused event leaves the run untouched
    // (property-tested: `refused_events_change_nothing`).
    let mut commands = step(run, at, event)?;
    refresh(run, at);
    if run.state.is_terminal() && (!before.is_terminal() || run.state != before) {
        commands.push(Command::Finished(run.state));
    }
    Ok(commands)
}

/// Rebuilds a run from its planned state and its recorded events.
///
/// # Errors
/// The first event that does not apply.
pub fn replay<'a>(
    planned: Run,
    events: impl IntoIterator<Item = (DateTime<Utc>, &'a Event)>,
) -> Result<Run, MachineError> {
    let mut run = planned;
    for (at, event) in events {
        apply(&mut run, at, event)?;
    }
    Ok(run)
}

/// What a worker that claimed `task` should do.
pub fn claim_command(run: &Run, task: TaskId, at: DateTime<Utc>) -> ClaimCommand {
    let Some(t) = run.task(task) else {
        return ClaimCommand::Nothing;
    };
    match &t.state {
        TaskState::Pending | TaskState::Retrying { .. } | TaskState::Running { .. }
            if !run.cancelled && t.due_at.is_some_and(|d| d <= at) =>
        {
            ClaimCommand::Start
        }
        TaskState::Running { .. } if run.cancelled => ClaimCommand::Abandon,
        TaskState::Delegated { .. } if t.due_at.is_some_and(|d| d <= at) => ClaimCommand::Poll,
        TaskState::Completed { .. }
            if matches!(t.kind, TaskKind::Delegation { .. })
                && !run.cancelled
                && !run.rollback_requested
                && t.due_at.is_some_and(|d| d <= at) =>
        {
            ClaimCommand::Poll
        }
        _ => ClaimCommand::Nothing,
    }
}

/// Checks a restore event about `task` under `lease`: a rollback was requested, the run's
/// restore lease is the one quoted, and the task is one a rollback restores.
fn restoring(
    run: &Run,
    task: TaskId,
    lease: &Option<RestoreLease>,
    event: &Event,
) -> Result<(), MachineError> {
    if !run.rollback_requested {
        return Err(MachineError::NoRollback);
    }
    if run.restore_lease.as_ref().map(|l| l.token) != lease.as_ref().map(|l| l.token) {
        return Err(MachineError::RestoreLeaseLost);
    }
    let t = run.task(task).ok_or(MachineError::UnknownTask(task))?;
    if !t.restorable() {
        return Err(invalid(t, event));
    }
    Ok(())
}

fn invalid(task: &Task, event: &Event) -> MachineError {
    MachineError::InvalidTransition {
        task: task.id,
        state: task.state.name(),
        event: event.name(),
    }
}

fn task_mut(run: &mut Run, id: TaskId) -> Result<&mut Task, MachineError> {
    run.task_mut(id).ok_or(MachineError::UnknownTask(id))
}

fn completed_ids(run: &Run) -> HashSet<TaskId> {
    run.tasks
        .iter()
        .filter(|t| t.state.is_completed())
        .map(|t| t.id)
        .collect()
}

fn deps_completed(done: &HashSet<TaskId>, task: &Task) -> bool {
    task.depends_on.iter().all(|d| done.contains(d))
}

fn finish(task: &mut Task, at: DateTime<Utc>, state: TaskState) {
    task.state = state;
    task.due_at = None;
    task.finished_at = Some(at);
}

/// Validates `event` and applies it to the run's tasks (before [`refresh`] cascades): one
/// handler per event, each refusing before it mutates.
fn step(run: &mut Run, at: DateTime<Utc>, event: &Event) -> Result<Vec<Command>, MachineError> {
    if run.state == RunState::Planned && !matches!(event, Event::Submitted) {
        return Err(MachineError::NotSubmitted);
    }
    let mut commands = Vec::new();
    match event {
        Event::Submitted => on_submitted(run, at)?,
        Event::Confirmed { digest, by, .. } => on_confirmed(run, digest, by)?,
        Event::TaskSkipped { task, reason } => on_task_skipped(run, at, event, *task, reason)?,
        Event::TaskStarted { task } => on_task_started(run, at, event, *task, &mut commands)?,
        Event::TaskSucceeded {
            task,
            outcome,
            detail,
        } => on_task_succeeded(run, at, event, *task, *outcome, detail)?,
        Event::TaskErrored {
            task,
            error,
            backoff_ms,
        } => on_task_errored(run, at, event, *task, error, *backoff_ms)?,
        Event::TaskAbandoned { task } => on_task_abandoned(run, at, event, *task)?,
        Event::TaskDelegated {
            task,
            ticket,
            next_poll,
        }
        | Event::DelegationUpdated {
            task,
            ticket,
            next_poll,
        } => on_ticket_read(run, event, *task, ticket, *next_poll)?,
        Event::DelegationDone {
            task,
            detail,
            next_poll,
        } => on_delegation_done(run, at, event, *task, detail, *next_poll)?,
        Event::DelegationReopened {
            task,
            ticket,
            next_poll,
        } => on_delegation_reopened(run, event, *task, ticket, *next_poll)?,
        Event::DelegationDeclined { task, reason } => {
            on_delegation_declined(run, at, event, *task, reason)?
        }
        Event::Cancel { .. } => on_cancel(run)?,
        Event::RollbackRequested { lease, .. } => {
            on_rollback_requested(run, at, lease, &mut commands)?
        }
        Event::RestoreStarted { task, lease } | Event::RestoreFailed { task, lease, .. } => {
            restoring(run, *task, lease, event)?;
            run.restore_lease = lease.clone();
        }
        Event::TaskRolledBack { task, lease } => on_task_rolled_back(run, at, event, *task, lease)?,
        Event::RollbackEnded { token, .. } => on_rollback_ended(run, *token)?,
    }
    Ok(commands)
}

/// [`Event::Submitted`]: the run leaves `Planned`; planner-ended tasks end now, a dry run
/// skips every task, a task whose account is gone ends (not found), a critical task waits
/// `Held` for a confirmation.
fn on_submitted(run: &mut Run, at: DateTime<Utc>) -> Result<(), MachineError> {
    if run.state != RunState::Planned {
        return Err(MachineError::AlreadySubmitted);
    }
    // Leave `Planned` now so `refresh` derives the real state.
    run.state = RunState::Running;
    for task in &mut run.tasks {
        if task.state != TaskState::Pending {
            // Skipped or failed by the planner: they end now.
            if task.state.is_terminal() && task.finished_at.is_none() {
                task.finished_at = Some(at);
            }
            continue;
        }
        if run.dry_run {
            finish(
                task,
                at,
                TaskState::Skipped {
                    reason: SkipReason::DryRun,
                },
            );
            continue;
        }
        if task.account_gone() {
            let state = account_gone_state(task);
            finish(task, at, state);
        } else if task.critical && run.confirmed_by.is_none() {
            // A critical action nobody confirmed yet: held until someone does.
            task.state = TaskState::Held;
            task.due_at = None;
        }
    }
    Ok(())
}

/// How a submitted task whose account is gone ends: completed as not found when that is
/// done for it, failed otherwise.
fn account_gone_state(task: &Task) -> TaskState {
    if task.not_found_is_done {
        let detail = match task.kind {
            TaskKind::Action { .. } | TaskKind::Ignore => "no account in this app",
            TaskKind::Delegation { .. } => {
                "account no longer active in this app; nothing to delegate"
            }
        };
        TaskState::Completed {
            outcome: Outcome::NotFound,
            detail: Some(detail.into()),
        }
    } else {
        TaskState::Failed {
            error: ErrorRecord {
                kind: ErrorKind::NotFound,
                retry: RetryClass::Permanent,
                operation: task.label(),
                message: "the person has no account in this app, and this action needs one".into(),
                context: Vec::new(),
            },
        }
    }
}

/// [`Event::Confirmed`]: quoting the run's digest releases the held tasks.
fn on_confirmed(run: &mut Run, digest: &str, by: &str) -> Result<(), MachineError> {
    if run.cancelled {
        return Err(MachineError::RunCancelled);
    }
    if run.state.is_terminal() {
        return Err(MachineError::RunFinished(run.state));
    }
    if !run.tasks.iter().any(|t| t.state == TaskState::Held) {
        return Err(MachineError::NothingHeld);
    }
    let expected = run.confirmation_digest();
    if *digest != expected {
        return Err(MachineError::DigestMismatch {
            quoted: digest.to_owned(),
            expected,
        });
    }
    for t in run.tasks.iter_mut().filter(|t| t.state == TaskState::Held) {
        t.state = TaskState::Pending;
    }
    run.confirmed_by = Some(by.to_owned());
    Ok(())
}

/// [`Event::TaskSkipped`]: a running task re-checked before its call is skipped.
fn on_task_skipped(
    run: &mut Run,
    at: DateTime<Utc>,
    event: &Event,
    task: TaskId,
    reason: &SkipReason,
) -> Result<(), MachineError> {
    let t = running_task(run, task, event)?;
    finish(
        t,
        at,
        TaskState::Skipped {
            reason: reason.clone(),
        },
    );
    Ok(())
}

/// [`Event::TaskStarted`]: a due task (or one re-claimed after a lost lease) runs; the
/// command says whether to execute its action or open its delegation.
fn on_task_started(
    run: &mut Run,
    at: DateTime<Utc>,
    event: &Event,
    task: TaskId,
    commands: &mut Vec<Command>,
) -> Result<(), MachineError> {
    if run.cancelled {
        return Err(MachineError::RunCancelled);
    }
    if run.state.is_terminal() {
        return Err(MachineError::RunFinished(run.state));
    }
    let done = completed_ids(run);
    let t = task_mut(run, task)?;
    match &t.state {
        TaskState::Pending => {
            if !deps_completed(&done, t) {
                return Err(MachineError::DependenciesPending(task));
            }
            if t.not_before > at {
                return Err(MachineError::NotDue(task));
            }
        }
        TaskState::Retrying { not_before, .. } => {
            // A dependency may have been reopened since the first attempt.
            if !deps_completed(&done, t) {
                return Err(MachineError::DependenciesPending(task));
            }
            if *not_before > at {
                return Err(MachineError::NotDue(task));
            }
        }
        // Re-claimed after the previous worker's lease expired.
        TaskState::Running { .. } => {}
        _ => return Err(invalid(t, event)),
    }
    let command = match t.kind {
        TaskKind::Action { .. } => Command::Execute(task),
        TaskKind::Delegation { .. } => Command::OpenDelegation(task),
        TaskKind::Ignore => return Err(invalid(t, event)),
    };
    t.attempts += 1;
    t.started_at.get_or_insert(at);
    t.state = TaskState::Running {
        attempt: t.attempts,
        since: at,
    };
    t.due_at = Some(at);
    commands.push(command);
    Ok(())
}

/// [`Event::TaskSucceeded`]: the running task completed.
fn on_task_succeeded(
    run: &mut Run,
    at: DateTime<Utc>,
    event: &Event,
    task: TaskId,
    outcome: Outcome,
    detail: &Option<String>,
) -> Result<(), MachineError> {
    let t = running_task(run, task, event)?;
    finish(
        t,
        at,
        TaskState::Completed {
            outcome,
            detail: detail.clone(),
        },
    );
    Ok(())
}

/// [`Event::TaskErrored`]: the running task's attempt failed. A removal whose account is not
/// found is done; a vendor job still in progress is checked on again without spending an
/// attempt; a retryable error waits its backoff while the retry budget lasts; anything else
/// fails the task.
fn on_task_errored(
    run: &mut Run,
    at: DateTime<Utc>,
    event: &Event,
    task: TaskId,
    error: &ErrorRecord,
    backoff_ms: u64,
) -> Result<(), MachineError> {
    let (retry, cancelled) = (run.retry, run.cancelled);
    let t = running_task(run, task, event)?;
    if error.kind == ErrorKind::NotFound && t.not_found_is_done {
        let detail = Some(format!("account not found: {}", error.message));
        finish(
            t,
            at,
            TaskState::Completed {
                outcome: Outcome::NotFound,
                detail,
            },
        );
    } else if error.kind == ErrorKind::InProgress
        && !cancelled
        && let Some(not_before) = in_progress_check(t, at, error, backoff_ms)
    {
        // A vendor job still running: checking on it is not an attempt, and it may run
        // far longer than the retry budget (a Drive transfer takes hours).
        t.attempts = t.attempts.saturating_sub(1);
        let mut error = error.clone();
        error.retry = error.retry.persisted();
        t.state = TaskState::Retrying {
            attempt: t.attempts,
            not_before,
            last_error: error,
        };
        t.due_at = Some(not_before);
    } else if let RetryClass::Retryable { after } = error.retry.persisted() {
        let mut error = error.clone();
        error.retry = RetryClass::Retryable { after };
        let wait = Duration::from_millis(backoff_ms).max(after.unwrap_or_default());
        // An absurd wait (overflowing the calendar) is treated as "never": exhausted.
        let not_before = chrono::Duration::from_std(wait)
            .ok()
            .and_then(|w| at.checked_add_signed(w));
        let started = t.started_at.unwrap_or(at);
        let within_budget = not_before
            .is_some_and(|nb| (nb - started).to_std().unwrap_or_default() <= retry.max_elapsed);
        if let (Some(not_before), true) = (not_before, within_budget)
            && t.attempts < retry.max_attempts
            && !cancelled
        {
            t.state = TaskState::Retrying {
                attempt: t.attempts,
                not_before,
                last_error: error.clone(),
            };
            t.due_at = Some(not_before);
        } else {
            let mut error = error.clone();
            error.retry = RetryClass::Exhausted;
            error
                .context
                .push(("attempts".into(), t.attempts.to_string()));
            finish(t, at, TaskState::Failed { error });
        }
    } else {
        finish(
            t,
            at,
            TaskState::Failed {
                error: error.clone(),
            },
        );
    }
    Ok(())
}

/// [`Event::TaskAbandoned`]: a cancelled run's running task whose worker was lost ends
/// cancelled.
fn on_task_abandoned(
    run: &mut Run,
    at: DateTime<Utc>,
    event: &Event,
    task: TaskId,
) -> Result<(), MachineError> {
    if !run.cancelled {
        return Err(MachineError::InvalidTransition {
            task,
            state: "running",
            event: event.name(),
        });
    }
    let t = running_task(run, task, event)?;
    finish(t, at, TaskState::Cancelled);
    Ok(())
}

/// [`Event::TaskDelegated`] (a running delegation task opened its ticket) and
/// [`Event::DelegationUpdated`] (an open ticket changed): the task is delegated on the ticket
/// as read.
fn on_ticket_read(
    run: &mut Run,
    event: &Event,
    task: TaskId,
    ticket: &Ticket,
    next_poll: DateTime<Utc>,
) -> Result<(), MachineError> {
    let t = task_mut(run, task)?;
    let applies = if matches!(event, Event::TaskDelegated { .. }) {
        matches!(t.state, TaskState::Running { .. })
            && matches!(t.kind, TaskKind::Delegation { .. })
    } else {
        matches!(t.state, TaskState::Delegated { .. })
    };
    if !applies {
        return Err(invalid(t, event));
    }
    delegated(t, ticket, next_poll);
    Ok(())
}

/// [`Event::DelegationDone`]: the ticket reached its done status; the task completes and
/// stays on the poll schedule while the run is open.
fn on_delegation_done(
    run: &mut Run,
    at: DateTime<Utc>,
    event: &Event,
    task: TaskId,
    detail: &Option<String>,
    next_poll: Option<DateTime<Utc>>,
) -> Result<(), MachineError> {
    let t = task_mut(run, task)?;
    if !matches!(t.state, TaskState::Delegated { .. }) {
        return Err(invalid(t, event));
    }
    finish(
        t,
        at,
        TaskState::Completed {
            outcome: Outcome::Done,
            detail: detail.clone(),
        },
    );
    // A done delegation stays on the poll schedule while the run is open, so a reopened
    // ticket moves the task back (`refresh` clears it once the run ends).
    t.due_at = next_poll;
    Ok(())
}

/// [`Event::DelegationReopened`]: a done ticket was reopened; the task is delegated again
/// and the run is no longer finished.
fn on_delegation_reopened(
    run: &mut Run,
    event: &Event,
    task: TaskId,
    ticket: &Ticket,
    next_poll: DateTime<Utc>,
) -> Result<(), MachineError> {
    if run.rollback_requested || run.cancelled {
        return Err(MachineError::RunFinished(run.state));
    }
    let t = task_mut(run, task)?;
    if !t.state.is_completed() || !matches!(t.kind, TaskKind::Delegation { .. }) {
        return Err(invalid(t, event));
    }
    delegated(t, ticket, next_poll);
    t.finished_at = None;
    run.finished_at = None;
    Ok(())
}

/// [`Event::DelegationDeclined`]: the ticket was closed without the work done; the task fails.
fn on_delegation_declined(
    run: &mut Run,
    at: DateTime<Utc>,
    event: &Event,
    task: TaskId,
    reason: &str,
) -> Result<(), MachineError> {
    let t = task_mut(run, task)?;
    let TaskState::Delegated { ticket } = &t.state else {
        return Err(invalid(t, event));
    };
    let error = ErrorRecord {
        kind: ErrorKind::Declined,
        retry: RetryClass::Permanent,
        operation: "delegation".to_owned(),
        message: reason.to_owned(),
        context: vec![("ticket".to_owned(), ticket.key.clone())],
    };
    finish(t, at, TaskState::Failed { error });
    Ok(())
}

/// [`Event::Cancel`]: an unfinished run is cancelled (`refresh` cancels its waiting tasks).
fn on_cancel(run: &mut Run) -> Result<(), MachineError> {
    if run.state.is_terminal() {
        return Err(MachineError::RunFinished(run.state));
    }
    run.cancelled = true;
    Ok(())
}

/// [`Event::RollbackRequested`]: a finished run is rolled back under `lease` unless another
/// rollback's lease still runs; the commands restore in reverse order of completion.
fn on_rollback_requested(
    run: &mut Run,
    at: DateTime<Utc>,
    lease: &Option<RestoreLease>,
    commands: &mut Vec<Command>,
) -> Result<(), MachineError> {
    if !run.state.is_terminal() {
        return Err(MachineError::RunNotFinished(run.state));
    }
    if run.state == RunState::RolledBack {
        return Err(MachineError::RunFinished(run.state));
    }
    if let Some(held) = &run.restore_lease
        && held.until > at
        && lease.as_ref().map(|l| l.token) != Some(held.token)
    {
        return Err(MachineError::RollbackUnderWay {
            holder: held.holder.clone(),
            until: held.until,
        });
    }
    run.rollback_requested = true;
    run.restore_lease = lease.clone();
    // Undo in reverse order of completion (see `Run::restorable`).
    commands.extend(run.restorable().into_iter().map(|t| Command::Restore(t.id)));
    Ok(())
}

/// [`Event::TaskRolledBack`]: a restorable task was undone under the run's restore lease.
fn on_task_rolled_back(
    run: &mut Run,
    at: DateTime<Utc>,
    event: &Event,
    task: TaskId,
    lease: &Option<RestoreLease>,
) -> Result<(), MachineError> {
    restoring(run, task, lease, event)?;
    run.restore_lease = lease.clone();
    let t = task_mut(run, task)?;
    t.state = TaskState::RolledBack;
    t.finished_at = Some(at);
    Ok(())
}

/// [`Event::RollbackEnded`]: the rollback quoting the run's restore lease releases it.
fn on_rollback_ended(run: &mut Run, token: Option<uuid::Uuid>) -> Result<(), MachineError> {
    if !run.rollback_requested {
        return Err(MachineError::NoRollback);
    }
    if run.restore_lease.as_ref().map(|l| l.token) != token {
        return Err(MachineError::RestoreLeaseLost);
    }
    run.restore_lease = None;
    Ok(())
}

/// Puts `t` in `Delegated` on `ticket`, due to be polled at `next_poll`.
fn delegated(t: &mut Task, ticket: &Ticket, next_poll: DateTime<Utc>) {
    t.state = TaskState::Delegated {
        ticket: ticket.clone(),
    };
    t.due_at = Some(next_poll);
}

/// The task `id`, refused (`event` does not apply) unless it is running.
fn running_task<'r>(
    run: &'r mut Run,
    id: TaskId,
    event: &Event,
) -> Result<&'r mut Task, MachineError> {
    let t = task_mut(run, id)?;
    if !matches!(t.state, TaskState::Running { .. }) {
        return Err(invalid(t, event));
    }
    Ok(t)
}

/// Cascades skips and cancellations, recomputes `due_at` and the run state.
fn refresh(run: &mut Run, at: DateTime<Utc>) {
    if run.state == RunState::Planned {
        return;
    }
    loop {
        let mut changed = false;
        // Tasks that ended without success (or ids the run does not have).
        let ids: HashSet<TaskId> = run.tasks.iter().map(|t| t.id).collect();
        let unsuccessful: HashSet<TaskId> = run
            .tasks
            .iter()
            .filter(|t| t.state.is_terminal() && !t.state.is_completed())
            .map(|t| t.id)
            .collect();
        for i in 0..run.tasks.len() {
            let task = &run.tasks[i];
            let new_state = match &task.state {
                TaskState::Pending
                | TaskState::Retrying { .. }
                | TaskState::Delegated { .. }
                | TaskState::Held
                    if run.cancelled =>
                {
                    Some(TaskState::Cancelled)
                }
                TaskState::Pending => task
                    .depends_on
                    .iter()
                    .find(|d| unsuccessful.contains(*d) || !ids.contains(*d))
                    .map(|d| TaskState::Skipped {
                        reason: SkipReason::DependencyFailed(*d),
                    }),
                _ => None,
            };
            if let Some(state) = new_state {
                finish(&mut run.tasks[i], at, state);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let done = completed_ids(run);
    for task in &mut run.tasks {
        match &task.state {
            TaskState::Pending => {
                task.due_at = deps_completed(&done, task).then_some(task.not_before);
            }
            TaskState::Retrying { not_before, .. } => {
                task.due_at = deps_completed(&done, task).then_some(*not_before);
            }
            _ => {}
        }
    }
    let state = derive_state(run);
    // Watching done delegations for a reopen ends with the run (or its cancel / rollback).
    if state.is_terminal() || run.cancelled || run.rollback_requested {
        for task in run.tasks.iter_mut().filter(|t| t.state.is_terminal()) {
            task.due_at = None;
        }
    }
    if state.is_terminal() && run.finished_at.is_none() {
        run.finished_at = Some(at);
    }
    if !state.is_terminal() {
        run.finished_at = None;
    }
    run.state = state;
}

/// The run state its tasks imply.
pub fn derive_state(run: &Run) -> RunState {
    if run.state == RunState::Planned {
        return RunState::Planned;
    }
    let open: Vec<&Task> = run
        .tasks
        .iter()
        .filter(|t| !t.state.is_terminal())
        .collect();
    if run.rollback_requested && open.is_empty() && !run.tasks.iter().any(Task::restorable) {
        return RunState::RolledBack;
    }
    if !open.is_empty() {
        if !run.cancelled
            && open
                .iter()
                .all(|t| matches!(t.state, TaskState::Delegated { .. }))
        {
            return RunState::Waiting;
        }
        // Held tasks, and only tasks that wait on them (or on a human) besides: nothing moves
        // until a confirmation.
        if !run.cancelled
            && open.iter().any(|t| t.state == TaskState::Held)
            && open.iter().all(|t| match t.state {
                TaskState::Held | TaskState::Delegated { .. } => true,
                TaskState::Pending => t.due_at.is_none(),
                _ => false,
            })
        {
            return RunState::AwaitingConfirmation;
        }
        return RunState::Running;
    }
    if run.cancelled {
        return RunState::Cancelled;
    }
    if run
        .tasks
        .iter()
        .any(|t| matches!(t.state, TaskState::Failed { .. }))
    {
        RunState::CompletedWithFailures
    } else {
        RunState::Completed
    }
}

/// How long a vendor job reported [`ErrorKind::InProgress`] may run, from the task's first
/// attempt, before the task fails as exhausted.
pub const IN_PROGRESS_LIMIT: Duration = Duration::from_secs(7 * 24 * 3600);

/// When to check again on a vendor job still running (the vendor's hint, at least the
/// engine's backoff), or `None` once the job has run for [`IN_PROGRESS_LIMIT`].
fn in_progress_check(
    t: &Task,
    at: DateTime<Utc>,
    error: &ErrorRecord,
    backoff_ms: u64,
) -> Option<DateTime<Utc>> {
    let hint = match error.retry.persisted() {
        RetryClass::Retryable { after } => after.unwrap_or_default(),
        _ => Duration::ZERO,
    };
    let wait = Duration::from_millis(backoff_ms).max(hint);
    let not_before = at.checked_add_signed(chrono::Duration::from_std(wait).ok()?)?;
    let started = t.started_at.unwrap_or(at);
    ((not_before - started).to_std().unwrap_or_default() <= IN_PROGRESS_LIMIT).then_some(not_before)
}
