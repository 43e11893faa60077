//! Per-connector rate limit, concurrency cap and timeout.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{Quota, RateLimiter, clock::Clock as _, state::InMemoryState, state::NotKeyed};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::clock::GovernorClock;
use crate::error::{Error, ErrorKind, Result};

/// Limits for one connector (one tenant). One instance is shared by every worker of an engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Calls per second allowed (`None`: unlimited).
    pub rate_per_sec: Option<NonZeroU32>,
    /// Burst above the steady rate.
    pub burst: NonZeroU32,
    /// Calls in flight at once.
    pub concurrency: usize,
    /// Time one call may take before it counts as a retryable timeout, not counting its waits
    /// for a vendor's turn in a rate budget (`budget::turn`: a call queued behind a spent
    /// budget times out only for the vendor's slowness once its requests are sent).
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            rate_per_sec: None,
            burst: NonZeroU32::MIN,
            concurrency: 16,
            timeout: Duration::from_secs(60),
        }
    }
}

impl Limits {
    /// Sets a steady rate with a burst of the same size.
    pub fn with_rate(mut self, per_sec: u32) -> Self {
        self.rate_per_sec = NonZeroU32::new(per_sec);
        self.burst = NonZeroU32::new(per_sec).unwrap_or(NonZeroU32::MIN);
        self
    }

    /// Sets the concurrency cap.
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Sets the per-call timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

type Governor = RateLimiter<
    NotKeyed,
    InMemoryState,
    GovernorClock,
    governor::middleware::NoOpMiddleware<std::time::Instant>,
>;

/// The live limiter of one connector.
#[derive(Debug)]
pub(crate) struct Limiter {
    limits: Limits,
    rate: Option<Governor>,
    slots: Arc<Semaphore>,
}

impl Limiter {
    pub(crate) fn new(limits: Limits) -> Self {
        let rate = limits.rate_per_sec.map(|r| {
            RateLimiter::direct_with_clock(
                Quota::per_second(r).allow_burst(limits.burst),
                GovernorClock,
            )
        });
        Self {
            limits,
            rate,
            slots: Arc::new(Semaphore::new(limits.concurrency.max(1))),
        }
    }

    /// Waits for a concurrency slot and a rate-limit cell (on tokio's clock).
    pub(crate) async fn acquire(&self) -> OwnedSemaphorePermit {
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        if let Some(rate) = &self.rate {
            while let Err(not_until) = rate.check() {
                tokio::time::sleep(not_until.wait_time_from(GovernorClock.now())).await;
            }
        }
        permit
    }

    /// A concurrency slot and a rate-limit cell if both are free now, without waiting.
    pub(crate) fn try_acquire(&self) -> Option<OwnedSemaphorePermit> {
        let permit = self.slots.clone().try_acquire_owned().ok()?;
        match &self.rate {
            Some(rate) if rate.check().is_err() => None,
            _ => Some(permit),
        }
    }

    /// Runs a call under the timeout.
    pub(crate) async fn timed<T>(
        &self,
        op: &str,
        fut: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        // The limit counts the call's time with the vendor, not its waits for the vendor's
        // turn in a rate budget (`budget::turn`).
        match crate::budget::with_time_limit(self.limits.timeout, fut).await {
            Some(r) => r,
            None => Err(Error::new(
                ErrorKind::Timeout,
                format!("no answer within {:?}", self.limits.timeout),
            )
            .with_operation(op.to_owned())),
        }
    }
}
