//! Wall-clock time that follows tokio's clock, so a paused test runtime controls it.

use std::fmt;

use chrono::{DateTime, Utc};

/// Where the engine gets the current time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// UTC time anchored at construction and advanced by `tokio::time::Instant`: under
/// `tokio::time::pause` it moves only when the test clock moves.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    base_utc: DateTime<Utc>,
    base: tokio::time::Instant,
}

impl TokioClock {
    /// Anchored at the current system time.
    pub fn new() -> Self {
        Self::starting_at(Utc::now())
    }

    /// Anchored at a given time (tests).
    pub fn starting_at(at: DateTime<Utc>) -> Self {
        Self {
            base_utc: at,
            base: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = tokio::time::Instant::now().saturating_duration_since(self.base);
        self.base_utc + chrono::Duration::from_std(elapsed).unwrap_or(chrono::Duration::MAX)
    }
}

/// A `governor` clock on tokio's (pausable) clock, so rate limiters obey `tokio::time::pause`.
#[derive(Debug, Clone, Copy, Default)]
pub struct GovernorClock;

impl governor::clock::Clock for GovernorClock {
    type Instant = std::time::Instant;
    fn now(&self) -> Self::Instant {
        tokio::time::Instant::now().into_std()
    }
}
