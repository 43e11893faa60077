//! The [`Store`] trait: durable runs, tasks, leases, snapshots, inventory, cursors and audit.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::audit::AuditEvent;
use crate::connector::Snapshot;
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Account, AccountRef, PersonId};
use crate::run::{Run, RunId, RunState, TaskId};
use crate::source::Cursor;

pub mod conformance;
pub mod erasure;

pub use erasure::{ErasureReport, Retention};

/// A worker's exclusive, expiring claim on one task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The run.
    pub run: RunId,
    /// The task.
    pub task: TaskId,
    /// The worker holding it.
    pub worker: String,
    /// Unique per claim: a re-claimed task gets a new token, so the old holder's commits fail.
    pub token: Uuid,
    /// When it expires, on the clock of whoever took or renewed it (see [`Store`]'s clocks:
    /// a store that keeps its own clock stores its own reckoning of the same length).
    pub until: DateTime<Utc>,
    /// How many times the task has been claimed (this claim included).
    pub claims: u32,
    /// The run's version as stored when the task was claimed (read by the claim itself): an
    /// engine that holds the run at this version decides from it without loading it again.
    /// `None` when the store does not tell (the engine then loads the run). A renewed lease
    /// keeps its claim's.
    #[serde(default)]
    pub run_version: Option<u64>,
}

/// Why a commit was refused over a lease: the `lease` context of its `Conflict` (see
/// [`Store::commit`]). Stores build the error with [`LeaseConflict::error`]; the engine reads
/// it back with [`LeaseConflict::of`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseConflict {
    /// A lease the commit was made under is no longer held (`lease=lost`).
    Lost,
    /// A task of [`Commit::claims`] holds a lease or is not of the run (`lease=taken`).
    Taken,
}

impl LeaseConflict {
    /// The `Conflict` refusing a commit of `run` over `task`'s lease, naming both.
    pub fn error(self, run: RunId, task: TaskId) -> Error {
        let (message, context) = match self {
            Self::Lost => (format!("lease lost on task {task}"), "lost"),
            Self::Taken => (
                format!("task {task} holds a lease or is not of run {run}; not claimed"),
                "taken",
            ),
        };
        Error::new(ErrorKind::Conflict, message)
            .with_context("lease", context)
            .with_context("run", run)
            .with_context("task", task)
    }

    /// The lease conflict `e` reports, if it is one.
    pub fn of(e: &Error) -> Option<Self> {
        if e.kind() != ErrorKind::Conflict {
            return None;
        }
        e.context().find_map(|(k, v)| match (k, v) {
            ("lease", "lost") => Some(Self::Lost),
            ("lease", "taken") => Some(Self::Taken),
            _ => None,
        })
    }
}

/// When a lease of `lease_for` taken at `now` expires: `now + lease_for`.
///
/// # Errors
/// `InvalidInput` when that is past the last time representable.
pub fn lease_expiry(now: DateTime<Utc>, lease_for: Duration) -> Result<DateTime<Utc>> {
    chrono::Duration::from_std(lease_for)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .ok_or_else(|| Error::invalid_input("lease_for is too long"))
}

/// A request for due tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClaimRequest {
    /// The claiming worker.
    pub worker: String,
    /// The current time on the claimer's clock (a store that keeps its own clock decides by
    /// that instead: see [`Store`]'s clocks).
    pub now: DateTime<Utc>,
    /// How long the lease lasts.
    pub lease_for: Duration,
    /// At most this many tasks.
    pub limit: usize,
}

impl ClaimRequest {
    /// A request.
    pub fn new(
        worker: impl Into<String>,
        now: DateTime<Utc>,
        lease_for: Duration,
        limit: usize,
    ) -> Self {
        Self {
            worker: worker.into(),
            now,
            lease_for,
            limit,
        }
    }
}

/// One atomic state change of a run.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Commit {
    /// The run's new state. Its `version` is the version it was loaded at.
    pub run: Run,
    /// Tasks whose rows changed (so SQL stores write only those).
    pub changed_tasks: Vec<TaskId>,
    /// Audit events recording the change (unsealed; the store seals them).
    pub events: Vec<AuditEvent>,
    /// The leases under which the change is made, each with whether to release it with the
    /// commit. Every one must still be held. Several when sibling tasks' changes are committed
    /// together (the engine combines what its workers have ready for one run).
    pub leases: Vec<(Lease, bool)>,
    /// Snapshots taken before tasks' reversible actions, stored with the change as
    /// [`Store::put_snapshot`] stores them (a task's first snapshot is kept).
    pub snapshots: Vec<(TaskId, Snapshot)>,
    /// Leases taken with the change, on tasks of the run that hold none: the engine starts a
    /// task its change made due in the same commit and runs it at once, without a claim of its
    /// own. Made by the caller (token, worker, `until`); the store records each one and counts
    /// the claim (a lease's `claims` is not read). Only for stores whose
    /// [`Store::claims_in_commit`] is `true`.
    pub claims: Vec<Lease>,
    /// The caller's clock when it made the commit, if it says: a store that keeps its own
    /// clock gives each lease of `claims` the length `until - now` from its own now (see
    /// [`Store`]'s clocks). Without it such a store takes their `until` as it is.
    pub now: Option<DateTime<Utc>>,
}

impl Commit {
    /// A commit of a run's new state with its audit events.
    pub fn new(run: Run, changed_tasks: Vec<TaskId>, events: Vec<AuditEvent>) -> Self {
        Self {
            run,
            changed_tasks,
            events,
            leases: Vec::new(),
            snapshots: Vec::new(),
            claims: Vec::new(),
            now: None,
        }
    }

    /// Says the caller's clock read `now` when it made the commit (see [`Commit::now`]).
    pub fn made_at(mut self, now: DateTime<Utc>) -> Self {
        self.now = Some(now);
        self
    }

    /// Stores `snapshot` for `task` with the change, insert-if-absent.
    pub fn with_snapshot(mut self, task: TaskId, snapshot: Snapshot) -> Self {
        self.snapshots.push((task, snapshot));
        self
    }

    /// Makes the commit conditional on holding `lease` (as well as any given before),
    /// releasing it if `release`.
    pub fn under_lease(mut self, lease: Lease, release: bool) -> Self {
        self.leases.push((lease, release));
        self
    }

    /// Takes `lease` (made by the caller) on a task of the run with the change (see
    /// [`Commit::claims`]).
    pub fn claiming(mut self, lease: Lease) -> Self {
        self.claims.push(lease);
        self
    }
}

/// Which runs to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunQuery {
    /// Only this person's runs.
    pub person: Option<PersonId>,
    /// Only runs created at or after.
    pub since: Option<DateTime<Utc>>,
    /// Only runs created before.
    pub until: Option<DateTime<Utc>>,
    /// Only runs not yet terminal.
    pub open_only: bool,
    /// At most this many (0 = no limit).
    pub limit: usize,
}

impl RunQuery {
    /// Every run of a person.
    pub fn person(person: impl Into<PersonId>) -> Self {
        Self {
            person: Some(person.into()),
            ..Self::default()
        }
    }

    /// Only runs not yet terminal.
    pub fn open(mut self) -> Self {
        self.open_only = true;
        self
    }

    /// Only runs created in `[since, until)`.
    pub fn between(mut self, since: DateTime<Utc>, until: DateTime<Utc>) -> Self {
        self.since = Some(since);
        self.until = Some(until);
        self
    }

    /// At most `n` runs.
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = n;
        self
    }
}

/// A run's headline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Id.
    pub id: RunId,
    /// The person.
    pub person: PersonId,
    /// State.
    pub state: RunState,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Finished.
    pub finished_at: Option<DateTime<Utc>>,
}

/// Which audit events to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditQuery {
    /// Only this run's events.
    pub run: Option<RunId>,
    /// Only events with `seq` greater than this.
    pub after_seq: u64,
    /// At most this many (0 = no limit).
    pub limit: usize,
}

impl AuditQuery {
    /// Every event of a run.
    pub fn run(run: RunId) -> Self {
        Self {
            run: Some(run),
            ..Self::default()
        }
    }

    /// Every event.
    pub fn all() -> Self {
        Self::default()
    }
}

/// A delegate's durable record (see [`Store::get_record`]): a JSON value kept under a namespace
/// (the delegate, e.g. `"email"`) and a key, with a version that goes up by one at each
/// change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Whose record it is (e.g. `"email"`).
    pub namespace: String,
    /// Its key within the namespace.
    pub key: String,
    /// What it holds.
    pub value: serde_json::Value,
    /// 1 when inserted; one more at each [`Store::swap_record`].
    pub version: u64,
}

/// The outcome of [`Store::swap_record`].
#[derive(Debug, Clone, PartialEq)]
pub enum RecordSwap {
    /// Stored: the record at its new version.
    Swapped(Record),
    /// Refused, nothing changed: the stored version was not the expected one. Carries the
    /// record as read after the refusal (`None`: there is no such record), so a
    /// read-modify-swap loop goes on from it without another read; it may have moved again
    /// since.
    Conflict(Option<Record>),
}

/// The longest record namespace, and the longest record key, in bytes (UTF-8).
pub const MAX_RECORD_KEY: usize = 512;

/// The largest record value, in bytes of its compact JSON text (1 MiB).
pub const MAX_RECORD_VALUE: usize = 1 << 20;

/// Checks a record's namespace and key (see [`Store::get_record`]): neither empty, neither
/// longer than [`MAX_RECORD_KEY`] bytes, neither with a NUL character (which PostgreSQL text
/// cannot hold).
///
/// # Errors
/// `InvalidInput` naming which is wrong (never quoting it: a key may name a person's task).
pub fn check_record_key(namespace: &str, key: &str) -> Result<()> {
    for (what, s) in [("namespace", namespace), ("key", key)] {
        if s.is_empty() {
            return Err(Error::invalid_input(format!("a record's {what} is empty")));
        }
        if s.len() > MAX_RECORD_KEY {
            return Err(Error::invalid_input(format!(
                "a record's {what} is longer than {MAX_RECORD_KEY} bytes"
            ))
            .with_context("bytes", s.len().to_string()));
        }
        if s.contains('\0') {
            return Err(Error::invalid_input(format!(
                "a record's {what} contains a NUL character"
            )));
        }
    }
    Ok(())
}

/// A record's value as the compact JSON text stores keep, checked against
/// [`MAX_RECORD_VALUE`].
///
/// # Errors
/// `InvalidInput` for a value whose JSON is longer than [`MAX_RECORD_VALUE`] bytes.
pub fn record_value_json(value: &serde_json::Value) -> Result<String> {
    let text = value.to_string();
    if text.len() > MAX_RECORD_VALUE {
        return Err(Error::invalid_input(format!(
            "a record's value is longer than {MAX_RECORD_VALUE} bytes of JSON"
        ))
        .with_context("bytes", text.len().to_string()));
    }
    Ok(text)
}

/// Persists everything the engine needs to survive a crash.
///
/// Implementations: the in-memory [`crate::memory::MemoryStore`]; SQLite and PostgreSQL in
/// `offboard-store`. All of them pass [`conformance::run_all`].
///
/// # Clocks
/// Whether a task is due and whether a lease has expired are decided by one clock for every
/// worker of a store, or two engines whose clocks disagree would each be right by its own:
/// one ahead would take leases that are still live (the task started twice), one behind would
/// leave expired leases sitting.
/// - A store shared by many hosts (PostgreSQL) keeps its own clock, the database's `now()`:
///   a claim hands out the tasks whose `due_at` has passed and whose lease has expired by the
///   database's clock, and every lease it stores (claimed, renewed, taken with a commit)
///   expires at the database's now plus the length asked for (the caller's `lease_for`, or
///   `until - now` of a [`Commit::now`]). The caller's `now` only measures that length.
/// - A store on one host (memory, SQLite) decides by the caller's `now`: every engine using it
///   runs on that host and reads the same clock.
///
/// Either way a [`Lease`] returned has its `until` on the caller's clock (its `now` plus the
/// length), and due times are instants the engine chose (from its clock) and stored as given:
/// a store that keeps its own clock compares them with that.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// Creates a run (state `Planned` or later) with its first audit events.
    ///
    /// # Behavior
    /// Atomic: the run, its tasks and the events are stored together or not at all. The stored
    /// run's `version` is 1. Returns the sealed events.
    ///
    /// A person has at most one open (non-terminal) run, enforced here, atomically: of two
    /// racing submits for one person, one is stored and the other refused.
    ///
    /// # Errors
    /// `Conflict` if a run with that id exists, or if the run is open and the person already
    /// has an open run; nothing is stored then.
    async fn create_run(&self, run: &Run, events: Vec<AuditEvent>) -> Result<Vec<AuditEvent>>;

    /// Loads a run with its tasks (in their original order), as last committed.
    async fn load_run(&self, id: RunId) -> Result<Option<Run>>;

    /// Loads several runs (`ids` distinct) as [`Store::load_run`] loads each (a run that does
    /// not exist is left out), in any order: the engine loads the runs of the tasks one claim returned together.
    /// The default loads them one after another; SQL stores read them in one statement.
    async fn load_runs(&self, ids: &[RunId]) -> Result<Vec<Run>> {
        let mut runs = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(run) = self.load_run(*id).await? {
                runs.push(run);
            }
        }
        Ok(runs)
    }

    /// Commits a run's new state and its audit events in one transaction.
    ///
    /// # Behavior
    /// - Succeeds only if the stored run's version equals `commit.run.version` and every lease
    ///   given (token) is still held; then the stored version becomes
    ///   `commit.run.version + 1`, which is returned.
    /// - Leases given with `release` are cleared in the same transaction.
    /// - The events are sealed (seq, hash chain) and stored with the state, or nothing is.
    /// - `snapshots` are stored in the same transaction, insert-if-absent as
    ///   [`Store::put_snapshot`] does (a task that has a snapshot keeps it).
    ///
    /// - Only the run's own fields and the tasks listed in `changed_tasks` are written; other
    ///   tasks keep their stored rows (a concurrent [`Store::release`] is not undone).
    /// - A lease is held while its token is the task's current token, even past `until` if no
    ///   other worker re-claimed the task.
    /// - `claims` (only when [`Store::claims_in_commit`]): each task, of this run and holding no
    ///   lease once the leases this commit releases are cleared (none was ever taken, or it was
    ///   released; an expired lease is still held), gets that lease (token, worker, `until`) and
    ///   its claim count goes up by one, in the same transaction.
    ///
    /// # Errors
    /// `Conflict` (retryable) when the version moved; `Conflict` with context `lease=lost` when
    /// a lease was lost (the worker must drop its result: another worker owns the task now),
    /// naming its task (context `task`); `Conflict` with context `lease=taken` when a task of
    /// `claims` holds a lease or is not of this run, naming it (context `task`). Nothing changed
    /// in any of these cases.
    async fn commit(&self, commit: Commit) -> Result<(u64, Vec<AuditEvent>)>;

    /// Whether [`Store::commit`] takes the leases of [`Commit::claims`]. A store that does not
    /// (the default) is never given any: the engine claims those tasks as every other.
    fn claims_in_commit(&self) -> bool {
        false
    }

    /// Claims up to `limit` due tasks in one atomic step.
    ///
    /// # Behavior
    /// A task is due when its `due_at <= now`, its run is not terminal, and it has no lease or
    /// its lease expired (its worker is presumed dead), `now` being the request's or the
    /// store's own clock (see the clocks above). Each claimed task gets a new lease token,
    /// `until = now + lease_for`, and its claim count goes up by one. No task is handed
    /// to two workers at once. Earliest `due_at` first.
    async fn claim(&self, request: ClaimRequest) -> Result<Vec<Lease>>;

    /// Extends a held lease to `lease_for` from now: `now + lease_for` on the caller's clock
    /// `now`, or from the store's own now for a store that keeps one (see the clocks above).
    /// The lease returned expires at `now + lease_for`.
    ///
    /// # Errors
    /// `Conflict` if the lease is no longer held.
    async fn renew(&self, lease: &Lease, now: DateTime<Utc>, lease_for: Duration) -> Result<Lease>;

    /// Releases a held lease without a state change, setting the task's `due_at` (used when a
    /// delegation poll found nothing new). Releasing a lease no longer held is a no-op.
    async fn release(&self, lease: &Lease, due_at: Option<DateTime<Utc>>) -> Result<()>;

    /// Lists runs, newest first.
    async fn list_runs(&self, query: RunQuery) -> Result<Vec<RunSummary>>;

    /// Stores the snapshot taken before a task's reversible action.
    ///
    /// # Behavior
    /// Insert-if-absent: returns `false` and keeps the first snapshot if one exists, so a retry
    /// never overwrites the pre-change state.
    async fn put_snapshot(&self, task: TaskId, snapshot: &Snapshot) -> Result<bool>;

    /// The snapshot stored for a task.
    async fn snapshot(&self, task: TaskId) -> Result<Option<Snapshot>>;

    /// Records accounts seen for a person now.
    ///
    /// # Behavior
    /// Keyed by (person, app, external id): a new account gets `first_seen = last_seen = at`;
    /// a known one keeps `first_seen`, updates its reference, and moves `last_seen` to `at` if
    /// that is later (never backwards).
    async fn upsert_accounts(
        &self,
        person: &PersonId,
        accounts: &[AccountRef],
        at: DateTime<Utc>,
    ) -> Result<()>;

    /// Every account ever discovered for a person.
    async fn accounts(&self, person: &PersonId) -> Result<Vec<Account>>;

    /// A source of truth's persisted cursor.
    async fn cursor(&self, source: &str) -> Result<Option<Cursor>>;

    /// Persists a cursor.
    async fn put_cursor(&self, source: &str, cursor: &Cursor) -> Result<()>;

    /// Appends audit events that belong to no state change (verification, suppressed trigger).
    async fn append_audit(&self, events: Vec<AuditEvent>) -> Result<Vec<AuditEvent>>;

    /// Reads audit events in sequence order.
    async fn audit(&self, query: AuditQuery) -> Result<Vec<AuditEvent>>;

    /// Erases a person's personal data, keeping the proof of what was done.
    ///
    /// # Behavior
    /// In one transaction: deletes the personal values and salts kept beside the audit events
    /// of the person's runs and of events about them ([`AuditEvent::subject`]): the events
    /// stay in their commitment form, with the body digests and hashes they always had, so
    /// the chain and checkpoints still verify; deletes the snapshot payloads of their tasks,
    /// their inventory accounts, and the records that are theirs (keyed by them or one of
    /// their tasks); redacts in place the records that name them only in their value (an
    /// outbox slot, a receiver's stream: [`erasure::record_erasure`]); replaces the person on their runs by one fresh
    /// [`erasure::pseudonym`] and pseudonymises the runs' tasks
    /// ([`erasure::pseudonymise_run`]). Erasing again finds nothing: a report whose
    /// [`ErasureReport::already_done`] is true. Events sealed without a salt (before chain
    /// format v2 salted them) keep their values.
    ///
    /// # Errors
    /// `Conflict` ([`erasure::erasure_refused`]) when a run of the person is open or finished
    /// at or after `finished_before` (inside the rollback window: see [`Retention::cutoff`]);
    /// nothing is erased then.
    async fn erase_person(
        &self,
        person: &PersonId,
        finished_before: DateTime<Utc>,
    ) -> Result<ErasureReport>;

    /// Deletes the snapshot payloads of tasks whose run is finished and finished before
    /// `finished_before` (past the rollback window: [`Retention::cutoff`]); returns how many.
    /// Such runs can no longer be rolled back. The audit trail is not touched (a snapshot's
    /// event records only that it was taken).
    async fn erase_snapshots(&self, finished_before: DateTime<Utc>) -> Result<u64>;

    /// A delegate's durable record, as last stored (`None`: there is none).
    ///
    /// # Behavior
    /// Records are delegates' own state (an email task, say), kept in the engine's store so
    /// that it survives a restart. The API is three calls:
    /// - [`get_record`](Store::get_record) reads the record as last stored;
    /// - [`insert_record`](Store::insert_record) creates it at version 1 unless it exists
    ///   (insert-if-absent: the way to claim a key once, e.g. one task per idempotency key);
    /// - [`swap_record`](Store::swap_record) replaces its value if its version is still the
    ///   one the caller read (compare-and-swap), bumping the version by one. An update is a
    ///   loop: read, change, swap at the version read; on [`RecordSwap::Conflict`] apply the
    ///   change again to the record the conflict carries.
    ///
    /// Keys: each record is keyed by (`namespace`, `key`), both non-empty UTF-8 strings of at
    /// most [`MAX_RECORD_KEY`] bytes without NUL characters. The namespace says whose records
    /// they are (a delegate's name: `"email"`); the key is the delegate's to structure
    /// (`"task:<id>"`); keys of different namespaces never meet. Values are any JSON of at
    /// most [`MAX_RECORD_VALUE`] bytes (compact text), and round-trip exactly. Records are
    /// never deleted but by [`Store::erase_person`] (a delegate marks its records finished).
    ///
    /// # Errors
    /// `InvalidInput` for an empty namespace or key, one longer than [`MAX_RECORD_KEY`]
    /// bytes, or one with a NUL character ([`check_record_key`]).
    async fn get_record(&self, namespace: &str, key: &str) -> Result<Option<Record>>;

    /// Stores a record at version 1 unless one exists under (`namespace`, `key`); returns the
    /// stored record and whether this call stored it.
    ///
    /// # Behavior
    /// Atomic: of concurrent inserts under one key, exactly one stores its value and every
    /// caller gets that record back (`true` for the one that stored it). An existing record is
    /// never changed.
    ///
    /// # Errors
    /// As [`Store::get_record`], and `InvalidInput` for a value longer than
    /// [`MAX_RECORD_VALUE`] bytes of JSON ([`record_value_json`]); nothing is stored then.
    async fn insert_record(
        &self,
        namespace: &str,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<(Record, bool)>;

    /// Replaces a record's value if its stored version is still `version` (compare-and-swap).
    ///
    /// # Behavior
    /// Atomic: when the stored version equals `version`, the value becomes `value` and the
    /// version `version + 1` ([`RecordSwap::Swapped`]); otherwise, or when there is no such
    /// record, nothing changes ([`RecordSwap::Conflict`], with the record as read then). Of
    /// concurrent swaps at one version, exactly one succeeds. A swap never creates a record.
    ///
    /// # Errors
    /// As [`Store::insert_record`]; nothing is changed then.
    async fn swap_record(
        &self,
        namespace: &str,
        key: &str,
        version: u64,
        value: &serde_json::Value,
    ) -> Result<RecordSwap>;
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<S: Store + ?Sized> Store for Arc<S> {
    async fn create_run(&self, run: &Run, events: Vec<AuditEvent>) -> Result<Vec<AuditEvent>> {
        (**self).create_run(run, events).await
    }
    async fn load_run(&self, id: RunId) -> Result<Option<Run>> {
        (**self).load_run(id).await
    }
    async fn load_runs(&self, ids: &[RunId]) -> Result<Vec<Run>> {
        (**self).load_runs(ids).await
    }
    async fn commit(&self, commit: Commit) -> Result<(u64, Vec<AuditEvent>)> {
        (**self).commit(commit).await
    }
    fn claims_in_commit(&self) -> bool {
        (**self).claims_in_commit()
    }
    async fn claim(&self, request: ClaimRequest) -> Result<Vec<Lease>> {
        (**self).claim(request).await
    }
    async fn renew(&self, lease: &Lease, now: DateTime<Utc>, lease_for: Duration) -> Result<Lease> {
        (**self).renew(lease, now, lease_for).await
    }
    async fn release(&self, lease: &Lease, due_at: Option<DateTime<Utc>>) -> Result<()> {
        (**self).release(lease, due_at).await
    }
    async fn list_runs(&self, query: RunQuery) -> Result<Vec<RunSummary>> {
        (**self).list_runs(query).await
    }
    async fn put_snapshot(&self, task: TaskId, snapshot: &Snapshot) -> Result<bool> {
        (**self).put_snapshot(task, snapshot).await
    }
    async fn snapshot(&self, task: TaskId) -> Result<Option<Snapshot>> {
        (**self).snapshot(task).await
    }
    async fn upsert_accounts(
        &self,
        person: &PersonId,
        accounts: &[AccountRef],
        at: DateTime<Utc>,
    ) -> Result<()> {
        (**self).upsert_accounts(person, accounts, at).await
    }
    async fn accounts(&self, person: &PersonId) -> Result<Vec<Account>> {
        (**self).accounts(person).await
    }
    async fn cursor(&self, source: &str) -> Result<Option<Cursor>> {
        (**self).cursor(source).await
    }
    async fn put_cursor(&self, source: &str, cursor: &Cursor) -> Result<()> {
        (**self).put_cursor(source, cursor).await
    }
    async fn append_audit(&self, events: Vec<AuditEvent>) -> Result<Vec<AuditEvent>> {
        (**self).append_audit(events).await
    }
    async fn audit(&self, query: AuditQuery) -> Result<Vec<AuditEvent>> {
        (**self).audit(query).await
    }
    async fn erase_person(
        &self,
        person: &PersonId,
        finished_before: DateTime<Utc>,
    ) -> Result<ErasureReport> {
        (**self).erase_person(person, finished_before).await
    }
    async fn erase_snapshots(&self, finished_before: DateTime<Utc>) -> Result<u64> {
        (**self).erase_snapshots(finished_before).await
    }
    async fn get_record(&self, namespace: &str, key: &str) -> Result<Option<Record>> {
        (**self).get_record(namespace, key).await
    }
    async fn insert_record(
        &self,
        namespace: &str,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<(Record, bool)> {
        (**self).insert_record(namespace, key, value).await
    }
    async fn swap_record(
        &self,
        namespace: &str,
        key: &str,
        version: u64,
        value: &serde_json::Value,
    ) -> Result<RecordSwap> {
        (**self).swap_record(namespace, key, version, value).await
    }
}
