//! [`RecordingBudget`]: a rate budget that notes every draw, for tests of what a client asks a
//! shared budget for (its keys, quotas, costs and penalties).

use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use offboard_core::{ConcurrencyPermit, MemoryRateBudget, Quota, RateBudget, Result};

/// A budget that records what is drawn from it, over an in-memory one. Each call is noted as
/// `acquire <key> <limit>/<window secs>s x<cost>`, `penalise <key> <secs>s` or
/// `concurrency <key> <limit>`.
#[derive(Debug, Default)]
pub struct RecordingBudget {
    inner: MemoryRateBudget,
    calls: Mutex<Vec<String>>,
}

impl RecordingBudget {
    /// Every call so far, oldest first.
    pub fn calls(&self) -> Vec<String> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The keys drawn under so far.
    pub fn keys(&self) -> BTreeSet<String> {
        self.calls()
            .iter()
            .filter_map(|c| c.split(' ').nth(1).map(str::to_owned))
            .collect()
    }

    fn note(&self, call: String) {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(call);
    }
}

#[async_trait]
impl RateBudget for RecordingBudget {
    async fn acquire(&self, key: &str, quota: &Quota, cost: u32) -> Result<()> {
        self.note(format!(
            "acquire {key} {}/{}s x{cost}",
            quota.limit(),
            quota.window().as_secs()
        ));
        self.inner.acquire(key, quota, cost).await
    }

    async fn penalise(&self, key: &str, wait: Duration) -> Result<()> {
        self.note(format!("penalise {key} {}s", wait.as_secs()));
        self.inner.penalise(key, wait).await
    }

    async fn concurrency(&self, key: &str, limit: usize) -> Result<ConcurrencyPermit> {
        self.note(format!("concurrency {key} {limit}"));
        self.inner.concurrency(key, limit).await
    }
}
