//! [`Pacer`]: spaces requests to a vendor budget the vendor does not report as it goes.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use offboard_core::Result;
use offboard_core::budget::{MemoryRateBudget, Quota, RateBudget};

/// The [`RateBudget`] a client and its pacers draw from, shared by their clones and
/// replaceable (a host's shared budget replaces the default in-memory one).
#[derive(Debug, Clone)]
pub(crate) struct BudgetHandle {
    inner: Arc<RwLock<Slot>>,
}

#[derive(Debug)]
struct Slot {
    budget: Arc<dyn RateBudget>,
    /// A budget was set by the host (shared by a fleet), not the default.
    shared: bool,
}

impl Default for BudgetHandle {
    fn default() -> Self {
        Self {
            inner: Arc::new(RwLock::new(Slot {
                budget: Arc::new(MemoryRateBudget::new()),
                shared: false,
            })),
        }
    }
}

impl BudgetHandle {
    /// The budget now in use, and whether the host set it.
    pub(crate) fn get(&self) -> (Arc<dyn RateBudget>, bool) {
        let slot = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        (Arc::clone(&slot.budget), slot.shared)
    }

    /// Replaces the budget (for every clone of the handle).
    pub(crate) fn set(&self, budget: Arc<dyn RateBudget>) {
        let mut slot = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        slot.budget = budget;
        slot.shared = true;
    }
}

/// Spaces requests so that a budget of `budget` requests per `per` is never spent.
///
/// For vendors that enforce a quota without telling the client what is left (Google's
/// per-minute query quota, no rate-limit headers) or that tell only once it is nearly spent
/// (Graph's write budget per 150 s), the only way to avoid their 429/403 is to send no faster
/// than the budget.
///
/// # Behavior
/// A burst of a 60th of the budget (at least 1), the rest spread evenly (GCRA, [`Quota`]),
/// so that no span of length `per` holds more than `budget` requests. The turns are drawn
/// from a [`RateBudget`] under one key: [`Pacer::new`] has an in-memory budget of its own;
/// [`crate::HttpClient::pacer`] draws from the client's budget under `scope|name`, so a
/// budget shared by a fleet of engines paces them together. Time is tokio's clock (with the
/// in-memory budget), so tests run it paused.
#[derive(Debug, Clone)]
pub struct Pacer {
    budget: BudgetHandle,
    key: String,
    quota: Quota,
}

impl Pacer {
    /// `budget` requests per `per`, from an in-memory budget of its own; `None` when `budget`
    /// is zero or `per` is zero (no pacing).
    pub fn new(budget: u32, per: Duration) -> Option<Self> {
        Self::on(BudgetHandle::default(), "pacer".to_owned(), budget, per)
    }

    /// `budget` requests per `per` drawn under `key` (build it as `tenant|bucket`), from an
    /// in-memory budget of its own until [`Pacer::use_rate_budget`] replaces it; `None` when
    /// `budget` or `per` is zero. For clients not built on [`crate::HttpClient`] (Jira's).
    pub fn keyed(key: impl Into<String>, budget: u32, per: Duration) -> Option<Self> {
        Self::on(BudgetHandle::default(), key.into(), budget, per)
    }

    /// Makes this pacer and its clones draw from `budget` from now on (a host's budget,
    /// shared by a fleet of engines).
    pub fn use_rate_budget(&self, budget: Arc<dyn RateBudget>) {
        self.budget.set(budget);
    }

    pub(crate) fn on(budget: BudgetHandle, key: String, limit: u32, per: Duration) -> Option<Self> {
        Some(Self {
            budget,
            key,
            quota: Quota::per(limit, per)?,
        })
    }

    /// The key its turns are drawn under.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The quota it paces to.
    pub fn quota(&self) -> &Quota {
        &self.quota
    }

    /// Waits for the next request's turn.
    ///
    /// # Errors
    /// A shared budget's storage errors.
    pub async fn wait(&self) -> Result<()> {
        self.wait_n(1).await
    }

    /// Waits until `n` requests may go (a batch carrying `n` of them).
    ///
    /// # Errors
    /// A shared budget's storage errors.
    pub async fn wait_n(&self, n: u32) -> Result<()> {
        let (budget, _) = self.budget.get();
        // A wait for the vendor's turn: not counted in the engine's call time limit.
        offboard_core::budget::turn(budget.acquire(&self.key, &self.quota, n)).await
    }

    /// Holds the budget for `wait` after the vendor said no (its `Retry-After`), for every
    /// process sharing the budget. A failure to record it (a shared budget's storage) is
    /// logged, not returned: the vendor's answer is what the caller reports.
    pub async fn penalise(&self, wait: Duration) {
        let (budget, _) = self.budget.get();
        if let Err(e) = budget.penalise(&self.key, wait).await {
            tracing::warn!(key = %self.key, error = %e, "recording a rate-limit penalty failed");
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
            pacer.wait_n(if i % 3 == 0 { 3 } else { 1 }).await.unwrap();
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

    #[tokio::test(start_paused = true)]
    async fn a_penalty_holds_the_pacer_and_a_set_budget_replaces_the_default() {
        let handle = BudgetHandle::default();
        let pacer = Pacer::on(
            handle.clone(),
            "t|writes".into(),
            600,
            Duration::from_secs(60),
        )
        .unwrap();
        pacer.penalise(Duration::from_secs(20)).await;
        let started = tokio::time::Instant::now();
        pacer.wait().await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(20));
        // A budget set on the handle is the one the pacer draws from from now on.
        let shared = Arc::new(MemoryRateBudget::new());
        handle.set(shared.clone());
        assert!(handle.get().1);
        shared
            .penalise("t|writes", Duration::from_secs(7))
            .await
            .unwrap();
        let started = tokio::time::Instant::now();
        pacer.wait().await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(7));
    }

    #[tokio::test(start_paused = true)]
    async fn a_keyed_pacer_draws_from_the_budget_it_is_given() {
        let pacer = Pacer::keyed(
            "jira|https://x.example|requests",
            60,
            Duration::from_secs(60),
        )
        .unwrap();
        assert_eq!(pacer.key(), "jira|https://x.example|requests");
        let shared = Arc::new(MemoryRateBudget::new());
        pacer.clone().use_rate_budget(shared.clone());
        // Another holder of the shared budget is told to wait: the pacer (and its clones) waits.
        shared
            .penalise("jira|https://x.example|requests", Duration::from_secs(9))
            .await
            .unwrap();
        let started = tokio::time::Instant::now();
        pacer.wait().await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(9));
        assert!(Pacer::keyed("k", 0, Duration::from_secs(1)).is_none());
    }
}
