//! [`Engine::metrics`]: a run's timing ([`RunMetrics`]).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Engine;
use crate::model::AppId;
use crate::run::{Outcome, Run, TaskId, TaskKind, TaskState};

/// Per-app timing of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunMetrics {
    /// From creation to the last task's end.
    pub offboarding_time: Option<Duration>,
    /// From the effective time to the end of the last access-removing action of the first
    /// stage (delegations excluded).
    pub time_to_revoke: Option<Duration>,
    /// Per app, from its first task's start to its last task's end.
    pub per_app: BTreeMap<AppId, Duration>,
    /// Per completed delegation task: from opening the ticket to its "done" (the human's
    /// turnaround).
    pub delegation_turnaround: BTreeMap<TaskId, Duration>,
}

impl Engine {
    /// Timing of a run.
    pub fn metrics(run: &Run) -> RunMetrics {
        let secs = |a: DateTime<Utc>, b: DateTime<Utc>| (b - a).to_std().ok();
        let last_end = run.tasks.iter().filter_map(|t| t.finished_at).max();
        let first_stage = run.tasks.iter().map(|t| t.not_before).min();
        let revoke_end = run
            .tasks
            .iter()
            .filter(|t| {
                Some(t.not_before) == first_stage && matches!(t.kind, TaskKind::Action { .. })
            })
            .filter(|t| {
                matches!(
                    t.state,
                    TaskState::Completed {
                        outcome: Outcome::Done | Outcome::AlreadyDone,
                        ..
                    }
                )
            })
            .filter_map(|t| t.finished_at)
            .max();
        let mut per_app = BTreeMap::new();
        for app in run.tasks.iter().map(|t| &t.app) {
            let ts = run.tasks.iter().filter(|t| &t.app == app);
            let start = ts.clone().filter_map(|t| t.started_at).min();
            let end = ts.filter_map(|t| t.finished_at).max();
            if let (Some(s), Some(e)) = (start, end) {
                per_app.insert(app.clone(), secs(s, e).unwrap_or_default());
            }
        }
        let delegation_turnaround = run
            .tasks
            .iter()
            .filter(|t| {
                matches!(t.kind, TaskKind::Delegation { .. })
                    && t.state.is_completed()
                    && t.attempts > 0
            })
            .filter_map(|t| Some((t.id, secs(t.started_at?, t.finished_at?)?)))
            .collect();
        RunMetrics {
            delegation_turnaround,
            offboarding_time: run
                .finished_at
                .or(last_end)
                .and_then(|e| secs(run.created_at, e)),
            time_to_revoke: revoke_end.and_then(|e| secs(run.effective_at.max(run.created_at), e)),
            per_app,
        }
    }
}
