//! Vendor request budgets: [`RateBudget`], the budget every request to a vendor draws from,
//! and [`MemoryRateBudget`], the one-process default.
//!
//! A budget is counted **per vendor request**, keyed per vendor tenant and bucket (an Okta
//! endpoint family, Graph's write budget of one tenant, Google's per-minute quota of one
//! customer, …). Each key is a GCRA (generic cell rate algorithm) state: its theoretical
//! arrival time (TAT) and a block set after a vendor's `Retry-After`. Several engine
//! processes share a vendor's budget by sharing one `RateBudget` (the PostgreSQL one in
//! `offboard-store`).

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::error::{Error, Result};

/// A vendor budget of `limit` requests per `per`, as GCRA parameters.
///
/// # Behavior
/// A burst of a 60th of the budget (at least 1) may go at once; the rest is spread evenly,
/// one request every `per / (limit - burst)`, so that no span of length `per` holds more than
/// `limit` requests (the cost model of a fixed or sliding window of `limit` per `per`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    limit: NonZeroU32,
    per: Duration,
    burst: NonZeroU32,
}

impl Quota {
    /// `limit` requests per `per`, with a burst of `max(1, limit / 60)`; `None` when `limit`
    /// or `per` is zero.
    pub fn per(limit: u32, per: Duration) -> Option<Self> {
        let limit = NonZeroU32::new(limit)?;
        if per.is_zero() {
            return None;
        }
        let burst = NonZeroU32::new((limit.get() / 60).max(1))?;
        Some(Self { limit, per, burst })
    }

    /// Sets the burst (clamped to `1..=limit`).
    pub fn with_burst(mut self, burst: u32) -> Self {
        self.burst = NonZeroU32::new(burst.clamp(1, self.limit.get())).unwrap_or(NonZeroU32::MIN);
        self
    }

    /// Requests per window.
    pub fn limit(&self) -> u32 {
        self.limit.get()
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.per
    }

    /// Requests that may go at once.
    pub fn burst(&self) -> u32 {
        self.burst.get()
    }

    /// The spacing of the steady rate: `per / (limit - burst)` (`per` when the burst is the
    /// whole limit).
    pub fn emission(&self) -> Duration {
        let steady = self.limit.get() - self.burst.get();
        if steady == 0 {
            self.per
        } else {
            self.per / steady
        }
    }

    /// How far ahead of now the TAT may run: `burst × emission`.
    pub fn tolerance(&self) -> Duration {
        self.emission() * self.burst.get()
    }
}

/// One GCRA step, the rule every [`RateBudget`] applies: with the key's `tat` and block
/// (both relative to now, zero when in the past), whether `cost` requests fit now.
///
/// Returns `Ok(new_tat)` (relative to now) when they fit, else `Err(wait)`: how long until
/// they would.
pub fn gcra_step(
    quota: &Quota,
    tat: Duration,
    blocked: Duration,
    cost: u32,
) -> std::result::Result<Duration, Duration> {
    if !blocked.is_zero() {
        return Err(blocked);
    }
    let new_tat = tat + quota.emission() * cost;
    let tolerance = quota.tolerance();
    if new_tat <= tolerance {
        Ok(new_tat)
    } else {
        Err(new_tat - tolerance)
    }
}

/// A concurrency slot of a shared concurrency limit, held while a request is in flight.
/// Dropping it frees the slot.
pub struct ConcurrencyPermit {
    _held: Box<dyn Send + Sync>,
}

impl ConcurrencyPermit {
    /// A permit that frees its slot when `held` is dropped.
    pub fn new(held: impl Send + Sync + 'static) -> Self {
        Self {
            _held: Box::new(held),
        }
    }
}

impl fmt::Debug for ConcurrencyPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConcurrencyPermit")
    }
}

/// The budget vendor requests draw from, shared by every client of one vendor tenant (and,
/// with a shared implementation, by every engine process).
///
/// # Behavior
/// - [`RateBudget::acquire`] waits until `cost` requests fit in `key`'s [`Quota`] and spends
///   them; a cost above the quota's burst is spent in burst-sized steps.
/// - [`RateBudget::penalise`] holds `key` after a vendor's `Retry-After`: no request of the key
///   is let through before `wait` has passed (on the budget's clock), in any process sharing
///   the budget. A later, shorter penalty never shortens a longer one.
/// - [`RateBudget::concurrency`] waits for one of `limit` slots of `key`.
/// - Keys are opaque; callers build them as `tenant|bucket`.
#[async_trait]
pub trait RateBudget: Send + Sync + fmt::Debug {
    /// Waits until `cost` requests fit in `key`'s budget, and spends them.
    ///
    /// # Errors
    /// A shared budget's storage errors (retryable `Unavailable`).
    async fn acquire(&self, key: &str, quota: &Quota, cost: u32) -> Result<()>;

    /// Blocks `key` for `wait` from now.
    ///
    /// # Errors
    /// A shared budget's storage errors.
    async fn penalise(&self, key: &str, wait: Duration) -> Result<()>;

    /// Waits for one of `limit` concurrency slots of `key`.
    ///
    /// # Errors
    /// A shared budget's storage errors.
    async fn concurrency(&self, key: &str, limit: usize) -> Result<ConcurrencyPermit>;
}

#[derive(Debug, Clone, Copy)]
struct Cell {
    tat: Instant,
    blocked_until: Instant,
}

/// The in-memory [`RateBudget`]: one process, tokio's clock (so tests run it paused). The
/// default of every HTTP client.
#[derive(Debug, Default)]
pub struct MemoryRateBudget {
    cells: Mutex<HashMap<String, Cell>>,
    slots: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl MemoryRateBudget {
    /// An empty budget.
    pub fn new() -> Self {
        Self::default()
    }

    /// Spends `cost` (at most the burst) now, or says how long to wait.
    fn try_spend(&self, key: &str, quota: &Quota, cost: u32) -> std::result::Result<(), Duration> {
        let now = Instant::now();
        let mut cells = self.cells.lock().unwrap_or_else(PoisonError::into_inner);
        let cell = cells.entry(key.to_owned()).or_insert(Cell {
            tat: now,
            blocked_until: now,
        });
        let tat = cell.tat.saturating_duration_since(now);
        let blocked = cell.blocked_until.saturating_duration_since(now);
        let new_tat = gcra_step(quota, tat, blocked, cost)?;
        cell.tat = now + new_tat;
        Ok(())
    }
}

/// Splits a cost into steps no larger than the quota's burst.
pub fn cost_steps(quota: &Quota, cost: u32) -> impl Iterator<Item = u32> {
    let burst = quota.burst();
    let full = cost / burst;
    let rest = cost % burst;
    std::iter::repeat_n(burst, full as usize).chain((rest > 0).then_some(rest))
}

#[async_trait]
impl RateBudget for MemoryRateBudget {
    async fn acquire(&self, key: &str, quota: &Quota, cost: u32) -> Result<()> {
        for step in cost_steps(quota, cost) {
            while let Err(wait) = self.try_spend(key, quota, step) {
                tokio::time::sleep(wait).await;
            }
        }
        Ok(())
    }

    async fn penalise(&self, key: &str, wait: Duration) -> Result<()> {
        let now = Instant::now();
        let mut cells = self.cells.lock().unwrap_or_else(PoisonError::into_inner);
        let cell = cells.entry(key.to_owned()).or_insert(Cell {
            tat: now,
            blocked_until: now,
        });
        cell.blocked_until = cell.blocked_until.max(now + wait);
        Ok(())
    }

    async fn concurrency(&self, key: &str, limit: usize) -> Result<ConcurrencyPermit> {
        let semaphore = {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(
                slots
                    .entry(key.to_owned())
                    .or_insert_with(|| Arc::new(Semaphore::new(limit.max(1)))),
            )
        };
        let permit = semaphore
            .acquire_owned()
            .await
            .map_err(|_| Error::internal("the concurrency semaphore closed"))?;
        Ok(ConcurrencyPermit::new(permit))
    }
}

tokio::task_local! {
    /// The waits for a vendor's turn of the call under [`with_time_limit`].
    static TURN_WAITS: Arc<TurnWaits>;
}

/// The union of a call's waits for a vendor's turn (several may overlap: requests in parallel).
#[derive(Debug, Default)]
struct TurnWaits {
    state: Mutex<WaitState>,
}

#[derive(Debug, Default)]
struct WaitState {
    /// Time spent waiting, over the waits that ended.
    done: Duration,
    /// Waits under way, and since when at least one was.
    active: usize,
    since: Option<Instant>,
}

impl TurnWaits {
    fn lock(&self) -> std::sync::MutexGuard<'_, WaitState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn begin(&self) {
        let mut s = self.lock();
        if s.active == 0 {
            s.since = Some(Instant::now());
        }
        s.active += 1;
    }

    fn end(&self) {
        let mut s = self.lock();
        s.active -= 1;
        if s.active == 0 {
            let since = s.since.take().unwrap_or_else(Instant::now);
            s.done += since.elapsed();
        }
    }

    /// Time spent waiting so far, the wait under way included.
    fn total(&self) -> Duration {
        let s = self.lock();
        s.done + s.since.map_or(Duration::ZERO, |t| t.elapsed())
    }
}

/// Ends a turn wait when dropped (the wait finished or was cancelled).
struct TurnGuard(Option<Arc<TurnWaits>>);

impl Drop for TurnGuard {
    fn drop(&mut self) {
        if let Some(w) = &self.0 {
            w.end();
        }
    }
}

/// Runs `wait`, a wait for a vendor's turn ([`RateBudget::acquire`],
/// [`RateBudget::concurrency`]), and, inside [`with_time_limit`], leaves its duration out of
/// the call's time limit. Outside one it is just `wait`.
pub async fn turn<F: Future>(wait: F) -> F::Output {
    let waits = TURN_WAITS.try_with(Arc::clone).ok();
    if let Some(w) = &waits {
        w.begin();
    }
    let _guard = TurnGuard(waits);
    wait.await
}

/// Runs `call` under a time limit that counts only the time not spent waiting for a vendor's
/// turn ([`turn`], on tokio's clock): a call queued behind a spent budget does not time out
/// for the queueing, only for the vendor's slowness. `None` when the limit passed.
///
/// # Behavior
/// The waits of tasks the call spawns are not seen (a task-local of the call's task).
pub async fn with_time_limit<F: Future>(limit: Duration, call: F) -> Option<F::Output> {
    let waits = Arc::new(TurnWaits::default());
    let call = TURN_WAITS.scope(Arc::clone(&waits), call);
    tokio::pin!(call);
    let started = Instant::now();
    loop {
        let deadline = started + limit + waits.total();
        tokio::select! {
            // The call first, as `tokio::time::timeout` does: an answer at the deadline counts.
            biased;
            out = &mut call => return Some(out),
            () = tokio::time::sleep_until(deadline) => {
                if started + limit + waits.total() <= Instant::now() {
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_calls_time_limit_leaves_out_its_waits_for_a_turn() {
        let budget = MemoryRateBudget::new();
        let q = Quota::per(60, Duration::from_secs(60)).unwrap();
        budget.penalise("k", Duration::from_secs(30)).await.unwrap();
        // 30 s for its turn, then 3 s of work: within a 4 s limit.
        let start = Instant::now();
        let out = with_time_limit(Duration::from_secs(4), async {
            turn(budget.acquire("k", &q, 1)).await.unwrap();
            tokio::time::sleep(Duration::from_secs(3)).await;
            7
        })
        .await;
        assert_eq!(out, Some(7));
        assert_eq!(start.elapsed(), Duration::from_secs(33));
        // Two overlapping waits count once: 2 s of work, two turns waited for in parallel
        // (until the 10 s penalty ends, and a turn's spacing more for the second), 3 s more.
        budget.penalise("k", Duration::from_secs(10)).await.unwrap();
        let start = Instant::now();
        let out = with_time_limit(Duration::from_secs(6), async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let (a, b) = tokio::join!(
                turn(budget.acquire("k", &q, 1)),
                turn(budget.acquire("k", &q, 1))
            );
            a.unwrap();
            b.unwrap();
            tokio::time::sleep(Duration::from_secs(3)).await;
        })
        .await;
        assert_eq!(out, Some(()));
        assert!(
            start.elapsed() > Duration::from_secs(13),
            "{:?}",
            start.elapsed()
        );
        // The work itself is still limited: 2 s, a turn until the 5 s penalty ends, then 3 s
        // more is over 4 s: the call ends after 4 s of work and 3 s of waiting.
        budget.penalise("k", Duration::from_secs(5)).await.unwrap();
        let start = Instant::now();
        let out = with_time_limit(Duration::from_secs(4), async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            turn(budget.acquire("k", &q, 1)).await.unwrap();
            tokio::time::sleep(Duration::from_secs(3)).await;
        })
        .await;
        assert_eq!(out, None);
        assert_eq!(start.elapsed(), Duration::from_secs(7));
        // Outside a limit a turn is just the wait.
        budget.penalise("k", Duration::from_secs(1)).await.unwrap();
        turn(budget.acquire("k", &q, 1)).await.unwrap();
    }

    fn spans_hold_at_most(at: &[Duration], limit: usize, per: Duration) {
        for w in at.windows(limit + 1) {
            assert!(
                w[limit] - w[0] >= per,
                "{limit} + 1 requests within {:?}",
                w[limit] - w[0]
            );
        }
    }

    #[test]
    fn quota_parameters() {
        assert!(Quota::per(0, Duration::from_secs(60)).is_none());
        assert!(Quota::per(10, Duration::ZERO).is_none());
        let q = Quota::per(600, Duration::from_secs(60)).unwrap();
        assert_eq!(q.burst(), 10);
        assert_eq!(q.emission(), Duration::from_secs(60) / 590);
        assert_eq!(q.tolerance(), q.emission() * 10);
        let one = Quota::per(1, Duration::from_secs(1)).unwrap();
        assert_eq!((one.burst(), one.emission()), (1, Duration::from_secs(1)));
        assert_eq!(cost_steps(&q, 25).collect::<Vec<_>>(), vec![10, 10, 5]);
        assert_eq!(cost_steps(&q, 0).count(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn no_window_holds_more_than_the_limit_and_keys_are_apart() {
        let budget = MemoryRateBudget::new();
        let q = Quota::per(120, Duration::from_secs(60)).unwrap();
        let start = Instant::now();
        let mut at = Vec::new();
        for i in 0..300u32 {
            let cost = if i % 3 == 0 { 3 } else { 1 };
            budget.acquire("okta|users", &q, cost).await.unwrap();
            at.extend(std::iter::repeat_n(start.elapsed(), cost as usize));
        }
        spans_hold_at_most(&at, 120, Duration::from_secs(60));
        // Not slower than the budget needs: 500 requests at 118 a minute after a burst of 2.
        assert!(
            at[at.len() - 1] < Duration::from_secs(254),
            "{:?}",
            at.last()
        );
        // Another key is not slowed by the spent one.
        let t = Instant::now();
        budget.acquire("okta|groups", &q, 2).await.unwrap();
        assert_eq!(t.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_penalty_blocks_the_key_until_it_ends_and_is_never_shortened() {
        let budget = MemoryRateBudget::new();
        let q = Quota::per(6000, Duration::from_secs(60)).unwrap();
        budget
            .penalise("g|quota", Duration::from_secs(30))
            .await
            .unwrap();
        budget
            .penalise("g|quota", Duration::from_secs(5))
            .await
            .unwrap();
        let start = Instant::now();
        budget.acquire("g|quota", &q, 1).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(30));
        let t = Instant::now();
        budget.acquire("g|other", &q, 1).await.unwrap();
        assert_eq!(t.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_is_capped_per_key() {
        let budget = Arc::new(MemoryRateBudget::new());
        let a = budget.concurrency("okta|concurrency", 2).await.unwrap();
        let _b = budget.concurrency("okta|concurrency", 2).await.unwrap();
        let b2 = Arc::clone(&budget);
        let third =
            tokio::spawn(async move { drop(b2.concurrency("okta|concurrency", 2).await.unwrap()) });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!third.is_finished());
        let _other = budget.concurrency("okta2|concurrency", 2).await.unwrap();
        drop(a);
        third.await.unwrap();
    }
}
