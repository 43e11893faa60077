//! Decisions about a worker's IO that the engine executes but does not make: whether a start
//! takes its snapshot first ([`snapshot_before_start`]), which tasks a commit takes along
//! ([`take_along`]). Pure, like [`apply`](super::apply):
//! the engine adds only what it alone knows (which actions its connectors offer).

use chrono::{DateTime, Utc};

use crate::run::{Run, Task, TaskKind, TaskState};

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
