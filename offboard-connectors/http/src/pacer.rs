//! [`Pacer`]: spaces requests to a vendor budget the vendor does not report as it goes.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::Clock as _;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use offboard_core::engine::GovernorClock;

/// Spaces requests so that a budget of `budget` requests per `per` is never spent.
///
/// For vendors that enforce a quota without telling the client what is left (Google's
/// per-minute query quota, no rate-limit headers) or that tell only once it is nearly spent
/// (Graph's write budget per 150 s), the only way to avoid their 429/403 is to send no faster
/// than the budget.
///
/// # Behavior
/// A burst of a 60th of the budget (at least 1), the rest spread evenly (GCRA, [`governor`]),
/// so that no span of length `per` holds more than `budget` requests. Time is tokio's clock,
/// so tests run it paused.
#[derive(Debug)]
pub struct Pacer {
    limiter:
        RateLimiter<NotKeyed, InMemoryState, GovernorClock, NoOpMiddleware<std::time::Instant>>,
}

impl Pacer {
    /// `budget` requests per `per`; `None` when `budget` is zero or `per` is zero (no pacing).
    pub fn new(budget: u32, per: Duration) -> Option<Self> {
        NonZeroU32::new(budget)?;
        let burst = NonZeroU32::new((budget / 60).max(1))?;
        let steady = budget
            .checked_sub(burst.get())
            .filter(|n| *n > 0)
            .unwrap_or(1);
        let quota = Quota::with_period(per / steady)?.allow_burst(burst);
        Some(Self {
            limiter: RateLimiter::direct_with_clock(quota, GovernorClock),
        })
    }

    /// Waits for the next request's turn.
    pub async fn wait(&self) {
        while let Err(not_until) = self.limiter.check() {
            tokio::time::sleep(not_until.wait_time_from(GovernorClock.now())).await;
        }
    }

    /// Waits until `n` requests may go (a batch carrying `n` of them): their turns are taken
    /// one after the other, so a batch leaves when its last request's turn comes.
    pub async fn wait_n(&self, n: u32) {
        for _ in 0..n {
            self.wait().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn no_span_of_the_window_holds_more_than_the_budget() {
        assert!(Pacer::new(0, Duration::from_secs(60)).is_none());
        // 120 per minute: a burst of 2, then one every 60/118 s.
        let pacer = Pacer::new(120, Duration::from_secs(60)).unwrap();
        let started = tokio::time::Instant::now();
        let mut at = Vec::new();
        for i in 0..300 {
            pacer.wait_n(if i % 3 == 0 { 3 } else { 1 }).await;
            for _ in 0..(if i % 3 == 0 { 3 } else { 1 }) {
                at.push(started.elapsed());
            }
        }
        for w in at.windows(121) {
            assert!(
                w[120] - w[0] >= Duration::from_secs(60),
                "{:?}",
                w[120] - w[0]
            );
        }
        // And it does not wait longer than the budget needs: 500 requests, 2 at once, then
        // 498 at 118 per minute, 253.2 s.
        assert!(
            at[at.len() - 1] < Duration::from_secs(254),
            "{:?}",
            at.last()
        );
    }
}
