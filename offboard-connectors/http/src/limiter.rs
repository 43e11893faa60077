//! The adaptive limiter: slows down before the vendor says no.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// How an [`AdaptiveLimiter`] behaves.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LimiterConfig {
    /// Below this share of the budget remaining (default 0.10), requests in the bucket are
    /// spaced evenly until the window resets.
    pub slow_below: f64,
    /// Requests in flight at once through one client (default 16). Okta's org-wide concurrency
    /// limits are 15 to 75.
    pub max_concurrency: usize,
}

impl Default for LimiterConfig {
    fn default() -> Self {
        Self {
            slow_below: 0.10,
            max_concurrency: 16,
        }
    }
}

impl LimiterConfig {
    /// Sets the share of the budget below which requests are spaced (clamped to 0..=1).
    pub fn with_slow_below(mut self, share: f64) -> Self {
        self.slow_below = share.clamp(0.0, 1.0);
        self
    }

    /// Sets the concurrency cap (at least 1).
    pub fn with_max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = n.max(1);
        self
    }
}

/// Okta's rate-limit headers of one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitHeaders {
    /// `X-Rate-Limit-Limit`: the budget of the window (0 on a concurrency 429).
    pub limit: u64,
    /// `X-Rate-Limit-Remaining`.
    pub remaining: u64,
    /// `X-Rate-Limit-Reset`: when the window resets, UTC epoch seconds.
    pub reset_epoch: u64,
}

impl RateLimitHeaders {
    /// Reads the three headers; `None` unless all three are present and numeric.
    pub fn parse(headers: &HeaderMap) -> Option<Self> {
        let num =
            |name: &str| -> Option<u64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
        Some(Self {
            limit: num("x-rate-limit-limit")?,
            remaining: num("x-rate-limit-remaining")?,
            reset_epoch: num("x-rate-limit-reset")?,
        })
    }
}

#[derive(Debug)]
struct Bucket {
    limit: u64,
    remaining: u64,
    reset_epoch: u64,
    reset_at: Instant,
    /// Spacing: the earliest start of the next request while the budget is low.
    next_at: Instant,
    /// No request before this (the reset of a spent window).
    not_before: Instant,
    /// The window was assumed after a spent one, not read from headers.
    estimated: bool,
}

/// The window assumed after a spent one until the vendor's headers tell (Okta: one minute).
const ASSUMED_WINDOW: Duration = Duration::from_secs(60);

/// Per-client limiter: a concurrency cap, and per-bucket budgets learnt from Okta's
/// `X-Rate-Limit-*` headers.
///
/// # Behavior
/// - Before each request the client waits for a concurrency slot and, for a bucket whose budget is
///   known, for its turn: with at least `slow_below` of the budget left it does not wait; below
///   that, requests are spaced evenly over the time left until the reset; with nothing left it
///   waits for the reset, then spaces requests at the window's average rate.
/// - Each acquire lowers the remaining budget it knows by one; [`AdaptiveLimiter::observe`]
///   corrects it from each response, less the requests still in flight in that bucket (the
///   lower count wins within one window, a newer window replaces the old). A request that got
///   no answer is [`AdaptiveLimiter::release`]d.
/// - When a window's budget is spent, requests wait for its reset and the next window is
///   assumed to hold the same budget for one minute until a response tells otherwise.
/// - Concurrency 429s (`X-Rate-Limit-Limit: 0`) do not change the budget.
/// - Time is tokio's clock, so tests run it paused.
#[derive(Debug)]
pub struct AdaptiveLimiter {
    config: LimiterConfig,
    slots: Arc<Semaphore>,
    buckets: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    buckets: HashMap<String, Bucket>,
    /// Requests booked per bucket whose response has not been observed yet.
    in_flight: HashMap<String, u64>,
    /// Each bucket's window length, learnt from the first answer of a window (see
    /// [`AdaptiveLimiter::learnt_window`]).
    windows: HashMap<String, Duration>,
}

/// Held while a request is in flight.
#[derive(Debug)]
pub(crate) struct Permit(#[allow(dead_code)] OwnedSemaphorePermit);

impl AdaptiveLimiter {
    /// A limiter with this configuration.
    pub fn new(config: LimiterConfig) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(config.max_concurrency.max(1))),
            config,
            buckets: Mutex::new(Inner::default()),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LimiterConfig {
        &self.config
    }

    /// How long a request in `bucket` must wait now, and books its turn.
    fn reserve(&self, bucket: &str) -> Duration {
        let now = Instant::now();
        let mut inner = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        *inner.in_flight.entry(bucket.to_owned()).or_default() += 1;
        let window = inner.windows.get(bucket).copied().unwrap_or(ASSUMED_WINDOW);
        let buckets = &mut inner.buckets;
        let Some(b) = buckets.get_mut(bucket) else {
            return Duration::ZERO;
        };
        if b.limit == 0 {
            return Duration::ZERO;
        }
        if now >= b.reset_at && b.not_before <= now && b.next_at <= now {
            // The window passed and no booked turn is pending: a fresh window.
            buckets.remove(bucket);
            return Duration::ZERO;
        }
        if b.remaining == 0 {
            // This window's budget is spent: the next request opens the next window at the
            // reset. Until a response tells the real numbers, assume a full budget and the
            // window learnt (Okta's one minute until one was).
            b.not_before = b.not_before.max(b.reset_at);
            b.remaining = b.limit;
            b.reset_at = b.not_before + window;
            b.estimated = true;
        }
        let mut start = now.max(b.not_before);
        if (b.remaining as f64) < (b.limit as f64) * self.config.slow_below {
            start = start.max(b.next_at);
            let left = b.reset_at.saturating_duration_since(start);
            let interval = left / u32::try_from(b.remaining).unwrap_or(u32::MAX);
            b.next_at = start + interval;
        }
        b.remaining -= 1;
        start - now
    }

    /// Waits for a concurrency slot and the bucket's turn.
    pub(crate) async fn acquire(&self, bucket: &str) -> Permit {
        let wait = self.reserve(bucket);
        if !wait.is_zero() {
            tracing::debug!(
                bucket,
                wait_ms = wait.as_millis() as u64,
                "rate budget low; spacing requests"
            );
            tokio::time::sleep(wait).await;
        }
        let permit = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .unwrap_or_else(|_| unreachable!("the limiter never closes its semaphore"));
        Permit(permit)
    }

    /// The budget of `bucket`'s window as the vendor's headers last reported it (`None`: not
    /// known, or only assumed after a spent window).
    pub fn learnt_limit(&self, bucket: &str) -> Option<u64> {
        let inner = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        inner
            .buckets
            .get(bucket)
            .filter(|b| b.limit > 0)
            .map(|b| b.limit)
    }

    /// The length of `bucket`'s window: Okta's one minute, until the first answer of a window
    /// (its remaining budget one less than its limit) told how far off its reset was, rounded
    /// up to whole seconds; the longest such answer of any window since. (The reset is an
    /// epoch second: an answer that came over a second after its window began measures it a
    /// second short, and the next window's first answer mends that.) Real Okta windows are a
    /// minute; a simulator's compressed ones are shorter.
    pub fn learnt_window(&self, bucket: &str) -> Duration {
        let inner = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        inner.windows.get(bucket).copied().unwrap_or(ASSUMED_WINDOW)
    }

    /// How long a request in `bucket` would wait now (without booking a turn).
    pub fn pending_delay(&self, bucket: &str) -> Duration {
        let now = Instant::now();
        let inner = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        match inner.buckets.get(bucket) {
            Some(b) if b.limit > 0 && b.remaining == 0 => {
                b.reset_at.max(b.not_before).saturating_duration_since(now)
            }
            Some(b) => b.next_at.max(b.not_before).saturating_duration_since(now),
            None => Duration::ZERO,
        }
    }

    /// Forgets a booked request that got no answer (transport failure), so it no longer counts
    /// as in flight.
    pub fn release(&self, bucket: &str) {
        let mut inner = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = inner.in_flight.get_mut(bucket) {
            *n = n.saturating_sub(1);
        }
    }

    /// Learns the bucket's budget from a response's headers (`now` is the wall clock the
    /// epoch-second reset is measured against).
    pub fn observe(&self, bucket: &str, headers: &HeaderMap, now: SystemTime) {
        match RateLimitHeaders::parse(headers) {
            Some(h) => self.observe_headers(bucket, h, now),
            None => self.release(bucket),
        }
    }

    /// [`AdaptiveLimiter::observe`] from parsed headers.
    pub fn observe_headers(&self, bucket: &str, h: RateLimitHeaders, now: SystemTime) {
        if h.limit == 0 {
            self.release(bucket);
            return;
        }
        let until_reset = (UNIX_EPOCH + Duration::from_secs(h.reset_epoch))
            .duration_since(now)
            .unwrap_or(Duration::ZERO);
        let reset_at = Instant::now() + until_reset;
        let mut inner = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        // This response's request is answered; the others booked are still on their way and
        // will spend budget the header does not show yet.
        let pending = match inner.in_flight.get_mut(bucket) {
            Some(n) => {
                *n = n.saturating_sub(1);
                *n
            }
            None => 0,
        };
        let remaining = h.remaining.saturating_sub(pending);
        if h.remaining.saturating_add(1) >= h.limit {
            // The window's first answer: its reset is a whole window away, less how late in
            // the window it came. The longest of them is the best guess: a first answer that
            // came over a second into its window measures it a second short.
            let secs = until_reset.as_secs() + u64::from(until_reset.subsec_nanos() > 0);
            let measured = Duration::from_secs(secs.max(1));
            let window = inner.windows.entry(bucket.to_owned()).or_default();
            *window = (*window).max(measured);
        }
        let buckets = &mut inner.buckets;
        match buckets.get_mut(bucket) {
            Some(b) if !b.estimated && b.reset_epoch == h.reset_epoch => {
                b.remaining = b.remaining.min(remaining);
                b.limit = h.limit;
            }
            // A late answer from an older window.
            Some(b) if !b.estimated && b.reset_epoch > h.reset_epoch => {}
            // A late answer from the spent window.
            Some(b) if b.estimated && h.reset_epoch <= b.reset_epoch => {}
            other => {
                let now = Instant::now();
                let (next_at, not_before) = other.map_or((now, now), |b| (b.next_at, b.not_before));
                buckets.insert(
                    bucket.to_owned(),
                    Bucket {
                        limit: h.limit,
                        remaining,
                        reset_epoch: h.reset_epoch,
                        reset_at,
                        next_at,
                        not_before,
                        estimated: false,
                    },
                );
            }
        }
    }
}

impl Default for AdaptiveLimiter {
    fn default() -> Self {
        Self::new(LimiterConfig::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(limit: u64, remaining: u64, reset: u64) -> RateLimitHeaders {
        RateLimitHeaders {
            limit,
            remaining,
            reset_epoch: reset,
        }
    }

    #[test]
    fn a_windows_first_answer_tells_its_length_and_a_later_one_does_not() {
        let l = AdaptiveLimiter::default();
        let now = UNIX_EPOCH + Duration::from_millis(1_000_000_400);
        assert_eq!(
            l.learnt_window("users"),
            Duration::from_secs(60),
            "Okta's minute"
        );
        // Mid-window (500 of 600 left) the reset says nothing of the window's length.
        l.observe_headers("users", headers(600, 500, 1_000_010), now);
        assert_eq!(l.learnt_window("users"), Duration::from_secs(60));
        // The first answer of a window 6 s long (5.6 s to the reset): 6 s, rounded up.
        l.observe_headers("users", headers(600, 599, 1_000_006), now);
        assert_eq!(l.learnt_window("users"), Duration::from_secs(6));
        assert_eq!(
            l.learnt_window("apps"),
            Duration::from_secs(60),
            "per bucket"
        );
        // Another bucket learns its own.
        l.observe_headers("apps", headers(2, 1, 1_000_002), now);
        assert_eq!(l.learnt_window("apps"), Duration::from_secs(2));
        // A first answer that came late in its window (1.6 s left of 6) does not shorten it;
        // a longer one lengthens it.
        l.observe_headers("users", headers(600, 599, 1_000_002), now);
        assert_eq!(l.learnt_window("users"), Duration::from_secs(6));
        l.observe_headers("users", headers(600, 599, 1_000_007), now);
        assert_eq!(l.learnt_window("users"), Duration::from_secs(7));
    }

    #[tokio::test(start_paused = true)]
    async fn full_budget_does_not_wait() {
        let l = AdaptiveLimiter::default();
        let now = SystemTime::now();
        let reset = now.duration_since(UNIX_EPOCH).unwrap().as_secs() + 60;
        l.observe_headers("users", headers(600, 500, reset), now);
        let start = Instant::now();
        for _ in 0..100 {
            drop(l.acquire("users").await);
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn low_budget_spaces_requests_until_reset() {
        let l = AdaptiveLimiter::default();
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        // 5 of 100 left, 60 s to the reset: one request every 12 s.
        l.observe_headers("users", headers(100, 5, 1_700_000_060), now);
        let start = Instant::now();
        let mut at = Vec::new();
        for _ in 0..5 {
            drop(l.acquire("users").await);
            at.push(start.elapsed().as_secs());
        }
        assert_eq!(at, vec![0, 12, 24, 36, 48]);
        // The budget is spent: the next waits for the reset.
        drop(l.acquire("users").await);
        assert_eq!(start.elapsed(), Duration::from_secs(60));
        // Other buckets are not slowed.
        let t = Instant::now();
        drop(l.acquire("groups").await);
        assert_eq!(t.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn lower_remaining_wins_within_a_window_and_new_window_replaces() {
        let l = AdaptiveLimiter::default();
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        l.observe_headers("u", headers(100, 0, 1_700_000_030), now);
        l.observe_headers("u", headers(100, 50, 1_700_000_030), now);
        assert_eq!(l.pending_delay("u"), Duration::from_secs(30));
        l.observe_headers("u", headers(100, 100, 1_700_000_090), now);
        assert_eq!(l.pending_delay("u"), Duration::ZERO);
        // Concurrency 429s (limit 0) teach nothing.
        l.observe_headers("v", headers(0, 0, 1_700_000_030), now);
        assert_eq!(l.pending_delay("v"), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn requests_in_flight_count_against_the_reported_budget() {
        let l = AdaptiveLimiter::default();
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        for _ in 0..5 {
            drop(l.acquire("u").await);
        }
        // One answer says 12 of 100 remain; the 4 still in flight will spend 4 more: 8 left,
        // below 10 %, so requests are spaced over the 60 s to the reset (7.5 s apart).
        l.observe_headers("u", headers(100, 12, 1_700_000_060), now);
        let start = Instant::now();
        drop(l.acquire("u").await);
        drop(l.acquire("u").await);
        assert_eq!(start.elapsed(), Duration::from_millis(7500));
        // Without answers outstanding the same header would not slow anything down.
        let m = AdaptiveLimiter::default();
        m.observe_headers("u", headers(100, 12, 1_700_000_060), now);
        let start = Instant::now();
        drop(m.acquire("u").await);
        drop(m.acquire("u").await);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_is_capped() {
        let l = Arc::new(AdaptiveLimiter::new(
            LimiterConfig::default().with_max_concurrency(2),
        ));
        let a = l.acquire("x").await;
        let _b = l.acquire("x").await;
        let l2 = Arc::clone(&l);
        let third = tokio::spawn(async move { drop(l2.acquire("x").await) });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!third.is_finished());
        drop(a);
        third.await.unwrap();
    }
}
