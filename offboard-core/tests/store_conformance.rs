//! Runs the store conformance suite against `MemoryStore`, and checks that the suite catches a
//! broken store.

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::FutureExt;
use offboard_core::audit::{self, ChainProblem};
use offboard_core::store::{Record, RecordSwap, conformance};
use offboard_core::{
    Account, AccountRef, AuditEvent, AuditKind, AuditQuery, AuditSink, ClaimRequest, Commit,
    Cursor, Lease, MemoryAuditSink, MemoryStore, PersonId, Result, Run, RunId, RunQuery,
    RunSummary, Snapshot, Store, TaskId,
};

#[tokio::test]
async fn memory_store_passes_the_suite() {
    conformance::run_all(&MemoryStore::new()).await;
}

#[tokio::test]
async fn memory_store_passes_the_suite_twice_on_one_store() {
    // The suite must cope with a store that already holds data (its own, from the first pass).
    let store = MemoryStore::new();
    conformance::run_all(&store).await;
    conformance::run_all(&store).await;
}

#[tokio::test]
async fn suite_accepts_an_arc_store() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    conformance::run_all(&store).await;
}

/// A deliberately broken store: a `MemoryStore` with one [`Fault`].
#[derive(Debug)]
struct Broken(MemoryStore, Fault);

/// What a [`Broken`] store gets wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// It forgets optimistic concurrency: every commit, and every record swap, is applied at
    /// the stored version.
    IgnoresVersions,
    /// It checks a commit's lease only by the write of its task's row, as SQLite's commit did
    /// when it read a lease check's stale change count: a lease on a task the commit leaves
    /// unchanged is not checked (nor released).
    IgnoresLeasesOfUnchangedTasks,
}

/// A store that ignores versions ([`Fault::IgnoresVersions`]).
fn ignores_versions() -> Broken {
    Broken(MemoryStore::new(), Fault::IgnoresVersions)
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl Store for Broken {
    async fn create_run(&self, run: &Run, events: Vec<AuditEvent>) -> Result<Vec<AuditEvent>> {
        self.0.create_run(run, events).await
    }
    async fn load_run(&self, id: RunId) -> Result<Option<Run>> {
        self.0.load_run(id).await
    }
    async fn load_runs(&self, ids: &[RunId]) -> Result<Vec<Run>> {
        self.0.load_runs(ids).await
    }
    async fn commit(&self, mut commit: Commit) -> Result<(u64, Vec<AuditEvent>)> {
        match self.1 {
            Fault::IgnoresVersions => {
                if let Some(stored) = self.0.load_run(commit.run.id).await? {
                    commit.run.version = stored.version;
                }
            }
            Fault::IgnoresLeasesOfUnchangedTasks => {
                let changed = commit.changed_tasks.clone();
                commit
                    .leases
                    .retain(|(lease, _)| changed.contains(&lease.task));
            }
        }
        self.0.commit(commit).await
    }
    fn claims_in_commit(&self) -> bool {
        self.0.claims_in_commit()
    }
    async fn claim(&self, request: ClaimRequest) -> Result<Vec<Lease>> {
        self.0.claim(request).await
    }
    async fn renew(&self, lease: &Lease, now: DateTime<Utc>, lease_for: Duration) -> Result<Lease> {
        self.0.renew(lease, now, lease_for).await
    }
    async fn release(&self, lease: &Lease, due_at: Option<DateTime<Utc>>) -> Result<()> {
        self.0.release(lease, due_at).await
    }
    async fn list_runs(&self, query: RunQuery) -> Result<Vec<RunSummary>> {
        self.0.list_runs(query).await
    }
    async fn put_snapshot(&self, task: TaskId, snapshot: &Snapshot) -> Result<bool> {
        self.0.put_snapshot(task, snapshot).await
    }
    async fn snapshot(&self, task: TaskId) -> Result<Option<Snapshot>> {
        self.0.snapshot(task).await
    }
    async fn upsert_accounts(
        &self,
        person: &PersonId,
        accounts: &[AccountRef],
        at: DateTime<Utc>,
    ) -> Result<()> {
        self.0.upsert_accounts(person, accounts, at).await
    }
    async fn accounts(&self, person: &PersonId) -> Result<Vec<Account>> {
        self.0.accounts(person).await
    }
    async fn cursor(&self, source: &str) -> Result<Option<Cursor>> {
        self.0.cursor(source).await
    }
    async fn put_cursor(&self, source: &str, cursor: &Cursor) -> Result<()> {
        self.0.put_cursor(source, cursor).await
    }
    async fn append_audit(&self, events: Vec<AuditEvent>) -> Result<Vec<AuditEvent>> {
        self.0.append_audit(events).await
    }
    async fn audit(&self, query: AuditQuery) -> Result<Vec<AuditEvent>> {
        self.0.audit(query).await
    }
    async fn erase_person(
        &self,
        person: &PersonId,
        finished_before: DateTime<Utc>,
    ) -> Result<offboard_core::store::ErasureReport> {
        self.0.erase_person(person, finished_before).await
    }
    async fn erase_snapshots(&self, finished_before: DateTime<Utc>) -> Result<u64> {
        self.0.erase_snapshots(finished_before).await
    }
    async fn get_record(&self, namespace: &str, key: &str) -> Result<Option<Record>> {
        self.0.get_record(namespace, key).await
    }
    async fn insert_record(
        &self,
        namespace: &str,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<(Record, bool)> {
        self.0.insert_record(namespace, key, value).await
    }
    async fn swap_record(
        &self,
        namespace: &str,
        key: &str,
        version: u64,
        value: &serde_json::Value,
    ) -> Result<RecordSwap> {
        let version = match self.0.get_record(namespace, key).await? {
            Some(stored) if self.1 == Fault::IgnoresVersions => stored.version,
            _ => version,
        };
        self.0.swap_record(namespace, key, version, value).await
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

#[tokio::test]
async fn suite_catches_a_record_swap_that_ignores_versions() {
    let outcome = AssertUnwindSafe(conformance::records_compare_and_swap(&ignores_versions()))
        .catch_unwind()
        .await;
    let message = panic_message(&*outcome.expect_err("the swap rule passed a broken store"));
    assert!(
        message.contains("`records_compare_and_swap` violated")
            && message.contains("a swap at a version that moved"),
        "unexpected panic message: {message}"
    );
}

#[tokio::test]
async fn suite_catches_a_store_that_ignores_versions() {
    let store = ignores_versions();
    let outcome = AssertUnwindSafe(conformance::stale_commit_conflicts(&store))
        .catch_unwind()
        .await;
    let payload = outcome.expect_err("the stale-commit rule passed a store that ignores versions");
    let message = panic_message(&*payload);
    assert!(
        message.contains("`stale_commit_conflicts` violated")
            && message.contains("expected a Conflict"),
        "unexpected panic message: {message}"
    );

    // run_all stops at the same rule.
    let outcome = AssertUnwindSafe(conformance::run_all(&ignores_versions()))
        .catch_unwind()
        .await;
    let message = panic_message(&*outcome.expect_err("run_all passed a broken store"));
    assert!(
        message.contains("`stale_commit_conflicts` violated"),
        "unexpected panic message: {message}"
    );
}

/// Guards the rule `commit_under_lost_lease_of_unchanged_task_conflicts`: a store that checks
/// leases only by writing their tasks' rows passes the older lost-lease rule (whose commit
/// changes the leased task) but not this one, and `run_all` stops at it.
#[tokio::test]
async fn suite_catches_a_store_that_ignores_leases_of_unchanged_tasks() {
    let store = || Broken(MemoryStore::new(), Fault::IgnoresLeasesOfUnchangedTasks);
    conformance::commit_under_lost_lease_conflicts(&store()).await;
    let outcome = AssertUnwindSafe(
        conformance::commit_under_lost_lease_of_unchanged_task_conflicts(&store()),
    )
    .catch_unwind()
    .await;
    let message = panic_message(&*outcome.expect_err("the rule passed a lease-ignoring store"));
    assert!(
        message.contains("`commit_under_lost_lease_of_unchanged_task_conflicts` violated")
            && message.contains("a commit under the lost lease of a task it leaves unchanged")
            && message.contains("expected a Conflict"),
        "unexpected panic message: {message}"
    );

    let outcome = AssertUnwindSafe(conformance::run_all(&store()))
        .catch_unwind()
        .await;
    let message = panic_message(&*outcome.expect_err("run_all passed a lease-ignoring store"));
    assert!(
        message.contains("`commit_under_lost_lease_of_unchanged_task_conflicts` violated"),
        "unexpected panic message: {message}"
    );
}

#[tokio::test]
async fn suite_panics_inside_a_spawned_task_too() {
    let store = Arc::new(ignores_versions());
    let handle = tokio::spawn(async move {
        conformance::stale_commit_conflicts(&*store).await;
    });
    let err = handle
        .await
        .expect_err("the stale-commit rule passed a store that ignores versions");
    assert!(err.is_panic());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_from_many_threads_are_disjoint() {
    let store = Arc::new(MemoryStore::new());
    let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    let run = sample_run(200, now);
    store.create_run(&run, Vec::new()).await.unwrap();

    let handles: Vec<_> = (0..32)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let leases = store
                        .claim(ClaimRequest::new(
                            format!("w{i}"),
                            now,
                            Duration::from_secs(60),
                            3,
                        ))
                        .await
                        .unwrap();
                    if leases.is_empty() {
                        return got;
                    }
                    got.extend(leases.into_iter().map(|l| l.task));
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for handle in handles {
        for task in handle.await.unwrap() {
            assert!(seen.insert(task), "task {task} handed out twice");
        }
    }
    assert_eq!(seen.len(), 200);
}

/// A minimal running run with `n` pending tasks due at `now` (serde fills the defaults).
fn sample_run(n: usize, now: DateTime<Utc>) -> Run {
    let tasks: Vec<serde_json::Value> = (0..n)
        .map(|_| {
            let id = TaskId::new_v4();
            serde_json::json!({
                "id": id,
                "app": "okta",
                "kind": {"type": "action", "action": {"name": "okta.suspend"}},
                "stage": "last_day",
                "not_before": now,
                "critical": false,
                "reversible": false,
                "not_found_is_done": true,
                "idempotency_key": id.to_string(),
                "state": {"state": "pending"},
                "attempts": 0,
                "due_at": now,
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({
        "id": RunId::new_v4(),
        "person": {"id": "p-threads", "email": "p@example.com"},
        "initiator": {"type": "schedule"},
        "created_at": now,
        "effective_at": now,
        "plan_digest": "d",
        "tasks": tasks,
        "state": "running",
    }))
    .expect("valid run JSON")
}

fn note(name: &str) -> AuditEvent {
    AuditEvent::new(
        DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
        "test",
        AuditKind::Note {
            name: name.into(),
            data: serde_json::Value::Null,
        },
    )
}

#[tokio::test]
async fn tampering_is_detected() {
    let store = MemoryStore::new();
    store
        .append_audit(vec![note("a"), note("b"), note("c")])
        .await
        .unwrap();
    let all = store.audit(AuditQuery::all()).await.unwrap();
    assert_eq!(audit::verify_chain(&all), Ok(3));

    assert!(store.tamper_with(2, |e| e.actor = "mallory".into()));
    assert!(!store.tamper_with(99, |_| {}));
    let all = store.audit(AuditQuery::all()).await.unwrap();
    assert_eq!(
        audit::verify_chain(&all),
        Err(ChainProblem::Altered { seq: 2 })
    );
}

#[tokio::test]
async fn memory_audit_sink_keeps_events_once() {
    let store = MemoryStore::new();
    let sealed = store
        .append_audit(vec![note("a"), note("b")])
        .await
        .unwrap();
    let sink = MemoryAuditSink::new();
    sink.record(&sealed).await.unwrap();
    sink.record(&sealed[1..]).await.unwrap();
    assert_eq!(sink.events(), sealed);
}

#[tokio::test]
async fn memory_store_mirrors_another_chain_as_a_sink() {
    let primary = MemoryStore::new();
    let mirror = MemoryStore::new();
    let first = primary
        .append_audit(vec![note("a"), note("b")])
        .await
        .unwrap();
    let second = primary.append_audit(vec![note("c")]).await.unwrap();

    mirror.record(&first).await.unwrap();
    mirror.record(&first).await.unwrap(); // duplicate: harmless
    mirror.record(&second).await.unwrap();
    let mirrored = mirror.audit(AuditQuery::all()).await.unwrap();
    assert_eq!(mirrored, primary.audit(AuditQuery::all()).await.unwrap());
    assert_eq!(audit::verify_chain(&mirrored), Ok(3));

    // A gap is refused.
    let other = MemoryStore::new();
    let err = other.record(&second).await.unwrap_err();
    assert_eq!(err.kind(), offboard_core::ErrorKind::Conflict);
    // Its own committed events recorded back into it change nothing.
    primary.record(&first).await.unwrap();
    assert_eq!(primary.audit(AuditQuery::all()).await.unwrap().len(), 3);
}
