//! [`CountingStore`]: a store wrapper that counts calls.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use offboard_core::connector::Snapshot;
use offboard_core::store::{
    AuditQuery, ClaimRequest, Commit, ErasureReport, Lease, LeaseConflict, Record, RecordSwap,
    RunQuery, RunSummary,
};
use offboard_core::{
    Account, AccountRef, AuditEvent, Cursor, PersonId, Result, Run, RunId, Store, TaskId,
};

/// A [`Store`] that counts and times every call by method, forwarding it to `inner`: what a
/// benchmark reports and a test asserts (e.g. how often runs are loaded).
#[derive(Debug)]
pub struct CountingStore<S> {
    /// The store every call goes to.
    pub inner: S,
    calls: Mutex<BTreeMap<&'static str, (u64, Duration)>>,
    /// Per method: calls in progress now, and the most there ever were at once.
    in_progress: Mutex<BTreeMap<&'static str, (usize, usize)>>,
    /// The number of leases of each commit, in order.
    commit_leases: Mutex<Vec<usize>>,
    /// The number of leases each commit takes (`Commit::claims`), in order.
    commit_claims: Mutex<Vec<usize>>,
    /// How long each commit takes before it is forwarded (as a durable store's fsync does).
    commit_delay: Duration,
    /// The same for `create_run`.
    create_delay: Duration,
    /// How long the first `create_run` waits after the inner store stored it, before it
    /// answers (taken by that call).
    late_first_create: Mutex<Option<Duration>>,
    /// Whether commits take leases: the inner store's answer unless switched off.
    claims_in_commit: bool,
    /// How many more commits that take leases are refused with `lease=taken`.
    refuse_claims: Mutex<usize>,
    /// How many more renewals fail as a store that does not answer.
    fail_renewals: Mutex<usize>,
}

impl<S: Sync> CountingStore<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            calls: Mutex::default(),
            in_progress: Mutex::default(),
            commit_leases: Mutex::default(),
            commit_claims: Mutex::default(),
            commit_delay: Duration::ZERO,
            create_delay: Duration::ZERO,
            late_first_create: Mutex::default(),
            claims_in_commit: true,
            refuse_claims: Mutex::default(),
            fail_renewals: Mutex::default(),
        }
    }

    /// Says commits take no leases ([`Store::claims_in_commit`] is `false`), as a store that
    /// does not implement it.
    pub fn without_claims_in_commit(mut self) -> Self {
        self.claims_in_commit = false;
        self
    }

    /// Refuses the next `n` commits that take leases as a store does when a task to take was
    /// claimed meanwhile: `Conflict` with `lease=taken` naming the task, nothing stored.
    pub fn refusing_claims(self, n: usize) -> Self {
        *self.refuse_claims.lock().unwrap() = n;
        self
    }

    /// Fails the next `n` renewals (from now) as a store that cannot be reached: `Storage`,
    /// the lease left as it was.
    pub fn failing_renewals(&self, n: usize) {
        *self.fail_renewals.lock().unwrap() = n;
    }

    /// The number of leases each commit took so far (`Commit::claims`), in order; the list
    /// restarts.
    pub fn take_commit_claims(&self) -> Vec<usize> {
        std::mem::take(&mut *self.commit_claims.lock().unwrap())
    }

    /// Makes each commit take `delay` (on tokio's clock, so a paused test advances through it)
    /// before it is forwarded: what a durable store's fsync does to the engine's timing.
    pub fn with_commit_delay(mut self, delay: Duration) -> Self {
        self.commit_delay = delay;
        self
    }

    /// Makes each `create_run` take `delay` (on tokio's clock) before it is forwarded, as
    /// [`CountingStore::with_commit_delay`] does for commits.
    pub fn with_create_delay(mut self, delay: Duration) -> Self {
        self.create_delay = delay;
        self
    }

    /// Makes the first `create_run` answer `delay` (on tokio's clock) after the inner store
    /// stored the run: its events hold the lowest `seq`s, yet a later write may answer first.
    pub fn with_late_first_create_answer(self, delay: Duration) -> Self {
        *self.late_first_create.lock().unwrap() = Some(delay);
        self
    }

    /// The most calls of `method` (e.g. `"create_run"`) that were in progress at once so far.
    pub fn most_at_once(&self, method: &str) -> usize {
        self.in_progress
            .lock()
            .unwrap()
            .get(method)
            .map_or(0, |(_, most)| *most)
    }

    /// The number of leases of each commit so far, in order; the list restarts.
    pub fn take_commit_leases(&self) -> Vec<usize> {
        std::mem::take(&mut *self.commit_leases.lock().unwrap())
    }

    async fn timed<T: Send>(&self, name: &'static str, f: impl Future<Output = T> + Send) -> T {
        {
            let mut in_progress = self.in_progress.lock().unwrap();
            let (now, most) = in_progress.entry(name).or_default();
            *now += 1;
            *most = (*most).max(*now);
        }
        let start = Instant::now();
        let out = f.await;
        let took = start.elapsed();
        if let Some((now, _)) = self.in_progress.lock().unwrap().get_mut(name) {
            *now -= 1;
        }
        let mut calls = self.calls.lock().unwrap();
        let e = calls.entry(name).or_default();
        e.0 += 1;
        e.1 += took;
        out
    }

    /// The calls so far by method: (count, wall time inside the calls); the counts restart.
    pub fn take(&self) -> BTreeMap<&'static str, (u64, Duration)> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
}

/// Waits `delay` on tokio's clock (nothing when zero): a delay set with
/// [`CountingStore::with_commit_delay`] or [`CountingStore::with_create_delay`].
async fn pause(delay: Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

#[async_trait]
impl<S: Store> Store for CountingStore<S> {
    async fn create_run(&self, run: &Run, events: Vec<AuditEvent>) -> Result<Vec<AuditEvent>> {
        self.timed("create_run", async {
            pause(self.create_delay).await;
            let late = self.late_first_create.lock().unwrap().take();
            let answer = self.inner.create_run(run, events).await;
            pause(late.unwrap_or_default()).await;
            answer
        })
        .await
    }
    async fn load_run(&self, id: RunId) -> Result<Option<Run>> {
        self.timed("load_run", self.inner.load_run(id)).await
    }
    async fn load_runs(&self, ids: &[RunId]) -> Result<Vec<Run>> {
        self.timed("load_runs", self.inner.load_runs(ids)).await
    }
    async fn commit(&self, commit: Commit) -> Result<(u64, Vec<AuditEvent>)> {
        if let Some(taken) = commit.claims.first() {
            let mut refuse = self.refuse_claims.lock().unwrap();
            if *refuse > 0 {
                *refuse -= 1;
                return Err(LeaseConflict::Taken.error(taken.run, taken.task));
            }
        }
        self.commit_leases.lock().unwrap().push(commit.leases.len());
        self.commit_claims.lock().unwrap().push(commit.claims.len());
        self.timed("commit", async {
            pause(self.commit_delay).await;
            self.inner.commit(commit).await
        })
        .await
    }
    fn claims_in_commit(&self) -> bool {
        self.claims_in_commit && self.inner.claims_in_commit()
    }
    async fn claim(&self, request: ClaimRequest) -> Result<Vec<Lease>> {
        self.timed("claim", self.inner.claim(request)).await
    }
    async fn renew(&self, lease: &Lease, now: DateTime<Utc>, lease_for: Duration) -> Result<Lease> {
        {
            let mut fail = self.fail_renewals.lock().unwrap();
            if *fail > 0 {
                *fail -= 1;
                return Err(offboard_core::Error::storage("the store did not answer")
                    .with_operation("renew"));
            }
        }
        self.timed("renew", self.inner.renew(lease, now, lease_for))
            .await
    }
    async fn release(&self, lease: &Lease, due_at: Option<DateTime<Utc>>) -> Result<()> {
        self.timed("release", self.inner.release(lease, due_at))
            .await
    }
    async fn list_runs(&self, query: RunQuery) -> Result<Vec<RunSummary>> {
        self.timed("list_runs", self.inner.list_runs(query)).await
    }
    async fn put_snapshot(&self, task: TaskId, snapshot: &Snapshot) -> Result<bool> {
        self.timed("put_snapshot", self.inner.put_snapshot(task, snapshot))
            .await
    }
    async fn snapshot(&self, task: TaskId) -> Result<Option<Snapshot>> {
        self.timed("snapshot", self.inner.snapshot(task)).await
    }
    async fn upsert_accounts(
        &self,
        person: &PersonId,
        accounts: &[AccountRef],
        at: DateTime<Utc>,
    ) -> Result<()> {
        self.timed(
            "upsert_accounts",
            self.inner.upsert_accounts(person, accounts, at),
        )
        .await
    }
    async fn accounts(&self, person: &PersonId) -> Result<Vec<Account>> {
        self.timed("accounts", self.inner.accounts(person)).await
    }
    async fn cursor(&self, source: &str) -> Result<Option<Cursor>> {
        self.timed("cursor", self.inner.cursor(source)).await
    }
    async fn put_cursor(&self, source: &str, cursor: &Cursor) -> Result<()> {
        self.timed("put_cursor", self.inner.put_cursor(source, cursor))
            .await
    }
    async fn append_audit(&self, events: Vec<AuditEvent>) -> Result<Vec<AuditEvent>> {
        self.timed("append_audit", self.inner.append_audit(events))
            .await
    }
    async fn audit(&self, query: AuditQuery) -> Result<Vec<AuditEvent>> {
        self.timed("audit", self.inner.audit(query)).await
    }
    async fn erase_person(
        &self,
        person: &PersonId,
        finished_before: DateTime<Utc>,
    ) -> Result<ErasureReport> {
        self.timed(
            "erase_person",
            self.inner.erase_person(person, finished_before),
        )
        .await
    }
    async fn erase_snapshots(&self, finished_before: DateTime<Utc>) -> Result<u64> {
        self.timed(
            "erase_snapshots",
            self.inner.erase_snapshots(finished_before),
        )
        .await
    }
    async fn get_record(&self, namespace: &str, key: &str) -> Result<Option<Record>> {
        self.timed("get_record", self.inner.get_record(namespace, key))
            .await
    }
    async fn insert_record(
        &self,
        namespace: &str,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<(Record, bool)> {
        self.timed(
            "insert_record",
            self.inner.insert_record(namespace, key, value),
        )
        .await
    }
    async fn swap_record(
        &self,
        namespace: &str,
        key: &str,
        version: u64,
        value: &serde_json::Value,
    ) -> Result<RecordSwap> {
        self.timed(
            "swap_record",
            self.inner.swap_record(namespace, key, version, value),
        )
        .await
    }
}
