//! Value types the engine hands out or is configured with: [`Backoff`], [`RunUpdate`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::run::{RunId, RunState, TaskId, TaskState};

/// Exponential backoff with jitter: attempt `n` waits a random time in
/// `[d/2, d]` with `d = min(cap, base * 2^(n-1))`. The machine waits the longer of this and the
/// vendor's hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// First delay.
    pub base: Duration,
    /// Largest delay.
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// The delay for an attempt (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let d = exp.min(self.cap);
        let half = d / 2;
        half + d.saturating_sub(half).mul_f64(rand::random::<f64>())
    }
}

/// A change a host can draw progress from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunUpdate {
    /// The run.
    pub run: RunId,
    /// The task, if the change was a task's.
    pub task: Option<TaskId>,
    /// The task's label (`okta.suspend`).
    pub label: Option<String>,
    /// The task's new state.
    pub task_state: Option<TaskState>,
    /// The run's state after the change.
    pub run_state: RunState,
    /// When.
    pub at: DateTime<Utc>,
}
