//! In-memory [`Store`] and [`AuditSink`]s, for tests, examples and single-process demos.
//!
//! [`MemoryStore`] keeps everything behind one [`std::sync::Mutex`], so every method is one
//! atomic step, and passes [`crate::store::conformance::run_all`]. Nothing survives the
//! process. [`MemoryAuditSink`] just keeps the events it receives.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::audit::{AuditEvent, AuditSink, GENESIS_HASH};
use crate::connector::Snapshot;
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Account, AccountRef, AppId, PersonId};
use crate::run::{Run, RunId, TaskId};
use crate::source::Cursor;
use crate::store::ErasureReport;
use crate::store::{
    AuditQuery, ClaimRequest, Commit, Lease, LeaseConflict, Record, RecordSwap, RunQuery,
    RunSummary, Store, check_record_key, erasure, record_value_json,
};

/// The lease bookkeeping of one task, kept outside the [`Run`] as a database keeps it in the
/// task's row but not in the run's JSON.
#[derive(Debug, Default)]
struct TaskLease {
    /// The current holder, if any (possibly expired).
    held: Option<Held>,
    /// How many times the task has been claimed.
    claims: u32,
}

#[derive(Debug)]
struct Held {
    token: Uuid,
    worker: String,
    until: DateTime<Utc>,
}

#[derive(Debug, Default)]
struct State {
    runs: HashMap<RunId, Run>,
    leases: HashMap<TaskId, TaskLease>,
    snapshots: HashMap<TaskId, Snapshot>,
    accounts: BTreeMap<(PersonId, AppId, String), Account>,
    cursors: HashMap<String, Cursor>,
    audit: Vec<AuditEvent>,
    /// Delegates' records by (namespace, key).
    records: BTreeMap<(String, String), Record>,
}

impl State {
    /// Seals `events` after the last stored one and appends them.
    fn append(&mut self, events: Vec<AuditEvent>) -> Vec<AuditEvent> {
        let mut sealed = Vec::with_capacity(events.len());
        for event in events {
            let mut event = event.salted();
            let seq = self.audit.last().map_or(0, |e| e.seq) + 1;
            let prev = self
                .audit
                .last()
                .map_or(GENESIS_HASH, |e| e.hash.as_str())
                .to_owned();
            event.seal(seq, &prev);
            self.audit.push(event.clone());
            sealed.push(event);
        }
        sealed
    }

    /// Whether `lease` (its token) is the one currently recorded for its task.
    fn holds(&self, lease: &Lease) -> bool {
        self.runs
            .get(&lease.run)
            .is_some_and(|run| run.task(lease.task).is_some())
            && self
                .leases
                .get(&lease.task)
                .and_then(|l| l.held.as_ref())
                .is_some_and(|h| h.token == lease.token)
    }
}

fn conflict(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Conflict, message)
}

/// A [`Store`] that keeps everything in memory.
///
/// # Behavior
/// - One mutex guards all state and is never held across an `.await`, so each method is
///   atomic: a commit's state and audit events appear together or not at all, and concurrent
///   claimers never receive the same task.
/// - `create_run` stores the run at version 1; each successful `commit` stores `commit.run`
///   as given (every task, not only `changed_tasks`) at the next version.
/// - Leases (token, worker, expiry, claim count) are kept per task, outside the [`Run`].
///   Due tasks and lease expiry go by the caller's `now` (see the clocks of [`Store`]): the
///   store lives in one process, on one clock.
/// - `release` sets the task's `due_at` in the stored run without bumping its version.
/// - Delegates' records live in the same mutex: insert-if-absent and compare-and-swap are
///   each one step.
/// - As an [`AuditSink`] it mirrors another store's chain: events it already has (same `seq`)
///   are ignored, the next ones are appended verbatim if they link to its last event.
///
/// # Example
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use offboard_core::{MemoryStore, Store};
/// use offboard_core::store::AuditQuery;
///
/// let store = MemoryStore::new();
/// assert!(store.audit(AuditQuery::all()).await.unwrap().is_empty());
/// # });
/// ```
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("MemoryStore");
        match self.state.try_lock() {
            Ok(s) => d
                .field("runs", &s.runs.len())
                .field("leases", &s.leases.len())
                .field("snapshots", &s.snapshots.len())
                .field("accounts", &s.accounts.len())
                .field("cursors", &s.cursors.len())
                .field("audit_events", &s.audit.len()),
            Err(_) => d.field("state", &"<locked>"),
        };
        d.finish()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> Result<MutexGuard<'_, State>> {
        self.state
            .lock()
            .map_err(|_| Error::storage("memory store poisoned by a panic while it was locked"))
    }

    /// **For tests only**: changes the stored audit event with sequence number `seq` in place,
    /// without resealing it, to simulate tampering with the trail. Returns whether such an
    /// event exists.
    ///
    /// # Example
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// use offboard_core::{AuditEvent, AuditKind, MemoryStore, Store};
    /// use offboard_core::audit::verify_chain;
    /// use offboard_core::store::AuditQuery;
    ///
    /// let store = MemoryStore::new();
    /// let note = AuditKind::Note { name: "n".into(), data: serde_json::Value::Null };
    /// store.append_audit(vec![AuditEvent::new(chrono::Utc::now(), "admin", note)]).await.unwrap();
    /// assert!(store.tamper_with(1, |e| e.actor = "mallory".into()));
    /// assert!(verify_chain(&store.audit(AuditQuery::all()).await.unwrap()).is_err());
    /// # });
    /// ```
    pub fn tamper_with(&self, seq: u64, f: impl FnOnce(&mut AuditEvent)) -> bool {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match state.audit.iter_mut().find(|e| e.seq == seq) {
            Some(event) => {
                f(event);
                true
            }
            None => false,
        }
    }

    /// **For tests only**: deletes the stored audit events after `seq`, as someone with write
    /// access to a database could (the next event appended follows `seq`).
    pub fn truncate_audit(&self, seq: u64) {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .audit
            .retain(|e| e.seq <= seq);
    }

    /// Checks the stored audit chain against signed checkpoints (see
    /// [`crate::checkpoint::ChainAgainstCheckpoints`], the rule every store applies): a cut
    /// tail, a rewritten or re-sealed chain, a forged checkpoint or one signed with a key
    /// `verifier` does not hold is reported with the first bad seq. The chain's own hashes
    /// are checked by [`crate::audit::verify_chain`].
    ///
    /// # Errors
    /// `InvalidInput` when `checkpoints` is empty.
    pub fn verify_audit_against(
        &self,
        checkpoints: &[crate::checkpoint::Checkpoint],
        verifier: &crate::checkpoint::CheckpointVerifier,
    ) -> Result<crate::checkpoint::CheckpointOutcome> {
        let state = self.state()?;
        crate::checkpoint::check_chain_against(&state.audit, checkpoints, verifier)
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn create_run(&self, run: &Run, events: Vec<AuditEvent>) -> Result<Vec<AuditEvent>> {
        let mut state = self.state()?;
        if state.runs.contains_key(&run.id) {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!("run {} already exists", run.id),
            )
            .fatal());
        }
        if !run.state.is_terminal()
            && let Some(open) = state
                .runs
                .values()
                .find(|r| r.person.id == run.person.id && !r.state.is_terminal())
        {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!("{} already has an open run ({})", run.person.id, open.id),
            )
            .fatal()
            .with_context("person", &run.person.id));
        }
        let mut stored = run.clone();
        stored.version = 1;
        state.runs.insert(stored.id, stored);
        Ok(state.append(events))
    }

    async fn load_run(&self, id: RunId) -> Result<Option<Run>> {
        Ok(self.state()?.runs.get(&id).cloned())
    }

    async fn commit(&self, commit: Commit) -> Result<(u64, Vec<AuditEvent>)> {
        let mut state = self.state()?;
        let id = commit.run.id;
        let Some(stored) = state.runs.get(&id) else {
            return Err(Error::not_found(format!("run {id} does not exist")));
        };
        if stored.version != commit.run.version {
            return Err(conflict(format!(
                "run {id} is at version {}, the commit was made at version {}",
                stored.version, commit.run.version
            ))
            .with_context("run", id));
        }
        if let Some((lease, _)) = commit
            .leases
            .iter()
            .find(|(lease, _)| lease.run != id || !state.holds(lease))
        {
            return Err(LeaseConflict::Lost.error(id, lease.task));
        }
        // A lease taken with the change: on a task of this run holding none once the leases
        // the change releases are cleared.
        let released = |task: TaskId, token: Uuid| {
            commit
                .leases
                .iter()
                .any(|(l, release)| *release && l.task == task && l.token == token)
        };
        if let Some(taken) = commit.claims.iter().find(|lease| {
            lease.run != id
                || stored.task(lease.task).is_none()
                || state
                    .leases
                    .get(&lease.task)
                    .and_then(|l| l.held.as_ref())
                    .is_some_and(|h| !released(lease.task, h.token))
        }) {
            return Err(LeaseConflict::Taken.error(id, taken.task));
        }
        let version = commit.run.version + 1;
        // Write the run's own fields and only the changed tasks, as SQL stores do: a task
        // released (rescheduled) meanwhile keeps its new `due_at`.
        let mut run = commit.run;
        run.version = version;
        for (new, old) in run.tasks.iter_mut().zip(&stored.tasks) {
            if new.id == old.id && !commit.changed_tasks.contains(&new.id) {
                *new = old.clone();
            }
        }
        state.runs.insert(id, run);
        for (lease, release) in &commit.leases {
            if *release && let Some(l) = state.leases.get_mut(&lease.task) {
                l.held = None;
            }
        }
        for lease in &commit.claims {
            let entry = state.leases.entry(lease.task).or_default();
            entry.claims += 1;
            entry.held = Some(Held {
                token: lease.token,
                worker: lease.worker.clone(),
                until: lease.until,
            });
        }
        for (task, snapshot) in commit.snapshots {
            state.snapshots.entry(task).or_insert(snapshot);
        }
        Ok((version, state.append(commit.events)))
    }

    fn claims_in_commit(&self) -> bool {
        true
    }

    async fn claim(&self, request: ClaimRequest) -> Result<Vec<Lease>> {
        let mut guard = self.state()?;
        let State { runs, leases, .. } = &mut *guard;
        let now = request.now;
        let until = crate::store::lease_expiry(now, request.lease_for)?;
        let free = |task: &TaskId| {
            leases
                .get(task)
                .and_then(|l| l.held.as_ref())
                .is_none_or(|h| h.until <= now)
        };
        let mut due: Vec<(DateTime<Utc>, TaskId, RunId)> = runs
            .values()
            .filter(|run| !run.state.is_terminal())
            .flat_map(|run| {
                run.tasks
                    .iter()
                    .filter_map(move |t| t.due_at.filter(|d| *d <= now).map(|d| (d, t.id, run.id)))
            })
            .filter(|(_, task, _)| free(task))
            .collect();
        due.sort_unstable();
        due.truncate(request.limit);
        Ok(due
            .into_iter()
            .map(|(_, task, run)| {
                let entry = leases.entry(task).or_default();
                entry.claims += 1;
                let token = Uuid::new_v4();
                entry.held = Some(Held {
                    token,
                    worker: request.worker.clone(),
                    until,
                });
                Lease {
                    run,
                    task,
                    worker: request.worker.clone(),
                    token,
                    until,
                    claims: entry.claims,
                    run_version: runs.get(&run).map(|r| r.version),
                }
            })
            .collect())
    }

    async fn renew(&self, lease: &Lease, now: DateTime<Utc>, lease_for: Duration) -> Result<Lease> {
        let until = crate::store::lease_expiry(now, lease_for)?;
        let mut state = self.state()?;
        if !state.holds(lease) {
            return Err(conflict(format!("lease lost on task {}", lease.task))
                .with_context("task", lease.task));
        }
        let entry = state
            .leases
            .get_mut(&lease.task)
            .ok_or_else(|| Error::internal("held lease has no entry"))?;
        let held = entry
            .held
            .as_mut()
            .ok_or_else(|| Error::internal("held lease has no holder"))?;
        held.until = until;
        Ok(Lease {
            run: lease.run,
            task: lease.task,
            worker: held.worker.clone(),
            token: held.token,
            until,
            claims: entry.claims,
            run_version: lease.run_version,
        })
    }

    async fn release(&self, lease: &Lease, due_at: Option<DateTime<Utc>>) -> Result<()> {
        let mut state = self.state()?;
        if !state.holds(lease) {
            return Ok(());
        }
        if let Some(l) = state.leases.get_mut(&lease.task) {
            l.held = None;
        }
        if let Some(task) = state
            .runs
            .get_mut(&lease.run)
            .and_then(|run| run.task_mut(lease.task))
        {
            task.due_at = due_at;
        }
        Ok(())
    }

    async fn list_runs(&self, query: RunQuery) -> Result<Vec<RunSummary>> {
        let state = self.state()?;
        let mut runs: Vec<&Run> = state
            .runs
            .values()
            .filter(|r| query.person.as_ref().is_none_or(|p| *p == r.person.id))
            .filter(|r| query.since.is_none_or(|s| r.created_at >= s))
            .filter(|r| query.until.is_none_or(|u| r.created_at < u))
            .filter(|r| !query.open_only || !r.state.is_terminal())
            .collect();
        runs.sort_unstable_by_key(|r| std::cmp::Reverse((r.created_at, r.id)));
        if query.limit > 0 {
            runs.truncate(query.limit);
        }
        Ok(runs
            .into_iter()
            .map(|r| RunSummary {
                id: r.id,
                person: r.person.id.clone(),
                state: r.state,
                created_at: r.created_at,
                finished_at: r.finished_at,
            })
            .collect())
    }

    async fn put_snapshot(&self, task: TaskId, snapshot: &Snapshot) -> Result<bool> {
        let mut state = self.state()?;
        if state.snapshots.contains_key(&task) {
            return Ok(false);
        }
        state.snapshots.insert(task, snapshot.clone());
        Ok(true)
    }

    async fn snapshot(&self, task: TaskId) -> Result<Option<Snapshot>> {
        Ok(self.state()?.snapshots.get(&task).cloned())
    }

    async fn upsert_accounts(
        &self,
        person: &PersonId,
        accounts: &[AccountRef],
        at: DateTime<Utc>,
    ) -> Result<()> {
        let mut state = self.state()?;
        for account in accounts {
            let key = (
                person.clone(),
                account.app.clone(),
                account.external_id.clone(),
            );
            state
                .accounts
                .entry(key)
                .and_modify(|known| {
                    known.account = account.clone();
                    known.last_seen = known.last_seen.max(at);
                })
                .or_insert_with(|| Account {
                    person: person.clone(),
                    account: account.clone(),
                    first_seen: at,
                    last_seen: at,
                });
        }
        Ok(())
    }

    async fn accounts(&self, person: &PersonId) -> Result<Vec<Account>> {
        Ok(self
            .state()?
            .accounts
            .values()
            .filter(|a| a.person == *person)
            .cloned()
            .collect())
    }

    async fn cursor(&self, source: &str) -> Result<Option<Cursor>> {
        Ok(self.state()?.cursors.get(source).cloned())
    }

    async fn put_cursor(&self, source: &str, cursor: &Cursor) -> Result<()> {
        self.state()?
            .cursors
            .insert(source.to_owned(), cursor.clone());
        Ok(())
    }

    async fn append_audit(&self, events: Vec<AuditEvent>) -> Result<Vec<AuditEvent>> {
        Ok(self.state()?.append(events))
    }

    async fn audit(&self, query: AuditQuery) -> Result<Vec<AuditEvent>> {
        let state = self.state()?;
        let limit = if query.limit == 0 {
            usize::MAX
        } else {
            query.limit
        };
        Ok(state
            .audit
            .iter()
            .filter(|e| e.seq > query.after_seq)
            .filter(|e| query.run.is_none_or(|r| e.run == Some(r)))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn erase_person(
        &self,
        person: &PersonId,
        finished_before: DateTime<Utc>,
    ) -> Result<ErasureReport> {
        let mut guard = self.state()?;
        let state = &mut *guard;
        let runs: Vec<Run> = state
            .runs
            .values()
            .filter(|r| r.person.id == *person)
            .cloned()
            .collect();
        erasure::check_erasable(
            runs.iter()
                .map(|r| (r.id, !r.state.is_terminal(), r.finished_at)),
            finished_before,
        )?;
        // Everything is computed before anything changes: an error leaves the state as it was.
        let mut report = ErasureReport::default();
        let pseudonym = erasure::pseudonym();
        let mut erased_runs = Vec::with_capacity(runs.len());
        for run in &runs {
            erased_runs.push(erasure::pseudonymise_run(run, &pseudonym)?);
        }
        let ids: Vec<RunId> = runs.iter().map(|r| r.id).collect();
        let mut erased_events = Vec::new();
        for (i, e) in state.audit.iter().enumerate() {
            let theirs =
                e.run.is_some_and(|r| ids.contains(&r)) || e.subject() == Some(person.as_str());
            if theirs && e.salt.is_some() {
                erased_events.push((i, e.redacted()?.0));
            }
        }
        let tasks: Vec<TaskId> = runs
            .iter()
            .flat_map(|r| r.tasks.iter().map(|t| t.id))
            .collect();
        let needles = erasure::record_needles(person, &runs);
        let mut records = Vec::new();
        let mut redacted = Vec::new();
        for (k, r) in &state.records {
            match erasure::record_erasure(&r.key, &r.value, &needles) {
                Some(erasure::RecordErasure::Delete) => records.push(k.clone()),
                Some(erasure::RecordErasure::Redact(value)) => redacted.push((k.clone(), value)),
                None => {}
            }
        }
        report.events = erased_events.len() as u64;
        for (i, e) in erased_events {
            state.audit[i] = e;
        }
        report.runs = erased_runs.len() as u64;
        if !erased_runs.is_empty() {
            report.pseudonym = Some(pseudonym.to_string());
        }
        for run in erased_runs {
            state.runs.insert(run.id, run);
        }
        for task in tasks {
            report.snapshots += u64::from(state.snapshots.remove(&task).is_some());
        }
        let before = state.accounts.len();
        state.accounts.retain(|(p, _, _), _| p != person);
        report.accounts = (before - state.accounts.len()) as u64;
        report.records = records.len() as u64;
        for k in records {
            state.records.remove(&k);
        }
        report.records_redacted = redacted.len() as u64;
        for (k, value) in redacted {
            if let Some(r) = state.records.get_mut(&k) {
                r.value = value;
                r.version += 1;
            }
        }
        Ok(report)
    }

    async fn erase_snapshots(&self, finished_before: DateTime<Utc>) -> Result<u64> {
        let mut guard = self.state()?;
        let state = &mut *guard;
        let past: Vec<TaskId> = state
            .runs
            .values()
            .filter(|r| r.state.is_terminal() && r.finished_at.is_some_and(|f| f < finished_before))
            .flat_map(|r| r.tasks.iter().map(|t| t.id))
            .collect();
        let mut erased = 0;
        for task in past {
            erased += u64::from(state.snapshots.remove(&task).is_some());
        }
        Ok(erased)
    }

    async fn get_record(&self, namespace: &str, key: &str) -> Result<Option<Record>> {
        check_record_key(namespace, key)?;
        Ok(self
            .state()?
            .records
            .get(&(namespace.to_owned(), key.to_owned()))
            .cloned())
    }

    async fn insert_record(
        &self,
        namespace: &str,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<(Record, bool)> {
        check_record_key(namespace, key)?;
        record_value_json(value)?;
        let mut state = self.state()?;
        let id = (namespace.to_owned(), key.to_owned());
        if let Some(stored) = state.records.get(&id) {
            return Ok((stored.clone(), false));
        }
        let record = Record {
            namespace: id.0.clone(),
            key: id.1.clone(),
            value: value.clone(),
            version: 1,
        };
        state.records.insert(id, record.clone());
        Ok((record, true))
    }

    async fn swap_record(
        &self,
        namespace: &str,
        key: &str,
        version: u64,
        value: &serde_json::Value,
    ) -> Result<RecordSwap> {
        check_record_key(namespace, key)?;
        record_value_json(value)?;
        let mut state = self.state()?;
        Ok(
            match state
                .records
                .get_mut(&(namespace.to_owned(), key.to_owned()))
            {
                Some(stored) if stored.version == version => {
                    stored.value = value.clone();
                    stored.version = version + 1;
                    RecordSwap::Swapped(stored.clone())
                }
                stored => RecordSwap::Conflict(stored.map(|r| r.clone())),
            },
        )
    }
}

/// Mirrors sealed events from another store.
///
/// # Behavior
/// Events whose `seq` it already holds are ignored. An event with the next `seq` whose
/// `prev_hash` links to the last stored event is appended as is (not resealed).
///
/// # Errors
/// `Conflict` for an event that leaves a gap or does not link to the stored chain; the events
/// before it are kept.
#[async_trait]
impl AuditSink for MemoryStore {
    async fn record(&self, events: &[AuditEvent]) -> Result<()> {
        let mut state = self.state()?;
        for event in events {
            let (last_seq, last_hash) = state
                .audit
                .last()
                .map_or((0, GENESIS_HASH), |e| (e.seq, e.hash.as_str()));
            if event.seq <= last_seq {
                continue;
            }
            if event.seq != last_seq + 1 || event.prev_hash != last_hash {
                return Err(conflict(format!(
                    "audit event {} does not follow event {last_seq} of the stored chain",
                    event.seq
                )));
            }
            state.audit.push(event.clone());
        }
        Ok(())
    }
}

/// An [`AuditSink`] that keeps the events it receives, in order, for tests.
///
/// # Behavior
/// Receiving an event whose `seq` it already holds is a no-op (unsealed events, `seq` 0, are
/// all kept).
#[derive(Debug, Default)]
pub struct MemoryAuditSink {
    events: Mutex<Vec<AuditEvent>>,
}

impl MemoryAuditSink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// The events received so far, in the order they arrived.
    pub fn events(&self) -> Vec<AuditEvent> {
        self.events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

#[async_trait]
impl AuditSink for MemoryAuditSink {
    async fn record(&self, events: &[AuditEvent]) -> Result<()> {
        let mut kept = self
            .events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for event in events {
            if event.seq == 0 || !kept.iter().any(|e| e.seq == event.seq) {
                kept.push(event.clone());
            }
        }
        Ok(())
    }
}
