//! Decisions about a worker's IO that the engine executes but does not make: whether a start
//! takes its snapshot first ([`snapshot_before_start`]). Pure, like [`apply`](super::apply):
//! the engine adds only what it alone knows (which actions its connectors offer).

use crate::run::{Task, TaskKind, TaskState};

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
