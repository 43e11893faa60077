//! Decisions about a worker's IO that the engine executes but does not make: whether a start
//! takes its snapshot first ([`snapshot_before_start`]), which tasks a commit takes along
//! ([`take_along`]), when leases end, are renewed and released ([`lease_until`],
//! [`renew_after_wait`], [`renew_every`], [`release_due`]). Pure, like [`apply`](super::apply):
//! the engine adds only what it alone knows (which actions its connectors offer).

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::run::{Run, Task, TaskId, TaskKind, TaskState};

/// Whether a worker starting `task` takes its snapshot before the start is committed, and
/// stores it (with its audit event) in the start's commit: the first attempt of a reversible
/// action on an account. Later attempts find the stored snapshot, or take it, when they
/// execute. The engine takes it only when the task's connector offers the action.
pub fn snapshot_before_start(task: &Task) -> bool {
    task.reversible
        && task.state == TaskState::Pending
        && matches!(task.kind, TaskKind::Action { .. })
        && task.account.is_some()
}

/// The tasks a commit from `before` to `after` at `now` made due that the workers whose
/// changes it commits may take along instead of a claim, in plan order: in a run not
/// cancelled, pending actions on an account no longer waiting for a dependency, due now and
/// not before (so no claim can hold them yet); each with whether the commit starts it
/// (`false` for a reversible action: its snapshot is taken and stored with its start, before
/// it runs, see [`snapshot_before_start`]). The engine takes only actions its connectors
/// offer.
pub fn take_along<'r>(
    before: &'r Run,
    after: &'r Run,
    now: DateTime<Utc>,
) -> impl Iterator<Item = (&'r Task, bool)> + 'r {
    after
        .tasks
        .iter()
        .zip(&before.tasks)
        .filter(move |(t, was)| {
            !after.cancelled
                && t.state == TaskState::Pending
                && t.due_at.is_some_and(|d| d <= now)
                && was.due_at.is_none_or(|d| d > now)
                && t.account.is_some()
                && matches!(t.kind, TaskKind::Action { .. })
        })
        .map(|(t, _)| (t, !t.reversible))
}

/// When a lease of `lease_for` (a task's, or a rollback's restore lease) taken at `now` ends:
/// `now + lease_for`, or the end of the calendar when that is beyond it.
pub fn lease_until(now: DateTime<Utc>, lease_for: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(lease_for)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Whether a worker that `waited` for its connector's limits before starting a claimed task
/// renews the task's lease first: only when the wait ate more than a quarter of the lease
/// (one store write saved per task in the common case).
pub fn renew_after_wait(waited: Duration, lease_for: Duration) -> bool {
    waited > lease_for / 4
}

/// How often a worker renews the lease of a task whose connector call is under way: every
/// third of the lease, so a slow call never lets it expire.
pub fn renew_every(lease_for: Duration) -> Duration {
    lease_for / 3
}

/// When a task a worker claimed but has nothing to do for ([`ClaimCommand::Nothing`]) is due
/// again once its lease is released: its `due_at` (`None`: not due, nothing to claim).
///
/// [`ClaimCommand::Nothing`]: super::ClaimCommand::Nothing
pub fn release_due(run: &Run, task: TaskId) -> Option<DateTime<Utc>> {
    run.task(task).and_then(|t| t.due_at)
}
