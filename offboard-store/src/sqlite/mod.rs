//! [`SqliteStore`]: the embedded default, one database file in WAL mode.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use offboard_core::connector::Snapshot;
use offboard_core::store::{
    AuditQuery, ClaimRequest, Commit, ErasureReport, Lease, Record, RecordSwap, RunQuery,
    RunSummary, check_record_key, erasure, record_value_json,
};
use offboard_core::{
    Account, AccountRef, AuditEvent, AuditSink, Cursor, Error, PersonId, Result, Run, RunId, Store,
    TaskId,
};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Connection, Row};
use uuid::Uuid;

use crate::codec::{self, AuditVerification, db, ts, ts_opt};
use crate::plan::{CommitPlan, Step, TaskRow};
use crate::rows::{self, SqlRow};
use crate::sql::sqlite as q;
use offboard_core::checkpoint::{ChainAgainstCheckpoints, Checkpoint, CheckpointVerifier};

mod group;

use group::{Batch, GroupCommit, PointReads, WriterConn};

/// The table our migrations are recorded in (out of the way of a host's own `_sqlx_migrations`).
pub const SQLITE_MIGRATIONS_TABLE: &str = "offboard_schema_migrations";

/// The newest schema version this code knows.
pub const SQLITE_SCHEMA_VERSION: i64 = 5;

fn migrator() -> Migrator {
    let mut m = codec::migrator(&[
        (1, "init", q::MIGRATION_0001),
        (2, "open_runs", q::MIGRATION_0002),
        (3, "one_open_run", q::MIGRATION_0003),
        (4, "records", q::MIGRATION_0004),
        (5, "personal", q::MIGRATION_0005),
    ]);
    m.dangerous_set_table_name(SQLITE_MIGRATIONS_TABLE);
    m
}

/// A durable [`Store`] and [`AuditSink`] in one SQLite file (WAL mode, `synchronous = FULL`).
///
/// # Behavior
/// - Every write is atomic and durable on return: a commit's state and its sealed audit events
///   are stored together or not at all. Concurrent writes of one process are group-committed:
///   queued, run one after another in one `BEGIN IMMEDIATE` transaction, each under its own
///   savepoint (a write that fails is undone alone), and committed with one fsync; nobody is
///   answered before that `COMMIT` returned. Writers of other processes sharing the file
///   serialise on SQLite's lock instead of failing.
/// - Reads are single statements or one read transaction, so each sees one snapshot.
/// - Runs are stored as JSON of the run's own fields plus queried columns; each task is a row
///   (its JSON plus `due_at` and the lease columns), so a commit writes only the tasks it
///   changed.
/// - Claims are one `UPDATE … RETURNING` statement.
/// - Delegates' records (`offboard_records`): an insert-if-absent or a compare-and-swap and
///   the read of the record it leaves run in one transaction.
/// - Audit events are stored in their commitment form; their personal values and salts live in
///   `offboard_audit_personal`, which `erase_person` deletes from. Connections run with
///   `secure_delete` on, and an erasure checkpoints the write-ahead log, so erased values
///   leave the file.
/// - Times are stored as fixed-width RFC 3339 text (nanoseconds), so they round-trip exactly.
/// - Due tasks and lease expiry go by the caller's `now` (see the clocks of [`Store`]): every
///   engine on one SQLite file runs on its host and reads that host's clock.
/// - Opening refuses, untouched, a file that is not an offboard database (another
///   application's SQLite file, or not SQLite at all) and a database whose schema is newer
///   than this code.
///
/// # Example
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use offboard_store::SqliteStore;
/// use offboard_core::{Store, store::AuditQuery};
///
/// let store = SqliteStore::in_memory().await.unwrap();
/// assert!(store.audit(AuditQuery::all()).await.unwrap().is_empty());
/// assert!(store.verify_audit().await.unwrap().is_intact());
/// # });
/// ```
#[derive(Clone)]
pub struct SqliteStore {
    /// Reads (and migrations).
    pool: SqlitePool,
    path: Option<PathBuf>,
    /// This process's writes, committed in groups on a connection of their own (see
    /// [`group`]): its page cache stays warm, where a pooled connection's cache is dropped
    /// whenever another connection wrote; and connections of their own for point reads. In
    /// memory, the pool's connection for both.
    writer: Arc<GroupCommit>,
}

/// The writer connection's page cache (`PRAGMA cache_size`; negative: KiB): 16 MiB.
const WRITER_CACHE: &str = "-16384";

/// Connections for short reads (a run, a person's runs or accounts, a snapshot, a cursor): a
/// claimed task's load, a submit's checks and a host's status reads run side by side (WAL
/// readers do not wait for each other or for the writer). One was the bound with 32 submitters
/// and workers at once (reads queued for it: 4 to 7 ms each).
const POINT_READERS: usize = 3;

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field(
                "path",
                &self.path.as_deref().unwrap_or(Path::new(":memory:")),
            )
            .field("connections", &self.pool.size())
            .finish()
    }
}

/// Why a file is not ours, if it is not.
async fn inspect(path: &Path) -> Result<()> {
    let refuse = |why: String| {
        Error::config(
            "sqlite_path",
            format!(
                "{} is not an offboard database ({why}); it was left untouched",
                path.display()
            ),
        )
    };
    let options = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .create_if_missing(false);
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| refuse(format!("it does not open as SQLite: {e}")))?;
    let tables: Result<Vec<String>, sqlx::Error> = sqlx::query_scalar(q::SCHEMA_TABLES)
        .fetch_all(&mut conn)
        .await;
    let _ = conn.close().await;
    let tables = tables.map_err(|e| refuse(format!("it does not read as SQLite: {e}")))?;
    if tables.is_empty() || tables.iter().any(|t| t == SQLITE_MIGRATIONS_TABLE) {
        return Ok(());
    }
    Err(refuse(format!(
        "it holds other tables ({}) and no {SQLITE_MIGRATIONS_TABLE}",
        codec::some_tables(&tables)
    )))
}

impl SqliteStore {
    /// Opens (creating if missing) the database file at `path` and brings its schema up to
    /// date.
    ///
    /// # Errors
    /// `Config` when the file is not an offboard database (it is left byte-identical) or its
    /// schema is newer than this code; `Storage` when it cannot be opened.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let exists = tokio::fs::metadata(&path)
            .await
            .map(|m| m.len() > 0)
            .unwrap_or(false);
        if exists {
            inspect(&path).await?;
        }
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true)
            // Deleted and overwritten content is zeroed in the file, so that what
            // `Store::erase_person` erases is gone from it (and, after its checkpoint, from
            // the write-ahead log).
            .pragma("secure_delete", "on");
        // No health check when a read takes a connection: a SQLite connection is a file
        // handle, and the check would cost a round trip to its thread per read.
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .map_err(db("sqlite.open"))?;
        let writes = SqliteConnection::connect_with(
            &options
                .clone()
                .row_buffer_size(4096)
                .statement_cache_capacity(512)
                .pragma("cache_size", WRITER_CACHE)
                .pragma("temp_store", "memory"),
        )
        .await
        .map_err(db("sqlite.open"))?;
        let mut reads = Vec::with_capacity(POINT_READERS);
        for _ in 0..POINT_READERS {
            let conn = SqliteConnection::connect_with(&options)
                .await
                .map_err(db("sqlite.open"))?;
            reads.push(tokio::sync::Mutex::new(conn));
        }
        let store = Self {
            pool,
            path: Some(path),
            writer: Arc::new(GroupCommit::new(
                WriterConn::Own(writes),
                PointReads::Own {
                    conns: reads,
                    next: Default::default(),
                },
            )),
        };
        store.run_migrations().await?;
        Ok(store)
    }

    /// A private in-memory database (one connection, gone when the store is dropped): for
    /// tests.
    ///
    /// # Errors
    /// `Storage` when SQLite cannot start.
    pub async fn in_memory() -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .in_memory(true)
            .foreign_keys(true)
            .pragma("secure_delete", "on");
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(db("sqlite.open"))?;
        let store = Self {
            writer: Arc::new(GroupCommit::new(
                WriterConn::Pooled(pool.clone()),
                PointReads::Pooled(pool.clone()),
            )),
            pool,
            path: None,
        };
        store.run_migrations().await?;
        Ok(store)
    }

    /// The file, or `None` in memory.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Applies the migrations this code has and the database lacks (recorded in
    /// [`SQLITE_MIGRATIONS_TABLE`]). [`SqliteStore::open`] calls it; calling it again is a
    /// no-op.
    ///
    /// # Errors
    /// `Config` when the database's schema is newer than this code; `Storage` when a migration
    /// fails (it is rolled back).
    pub async fn run_migrations(&self) -> Result<()> {
        let tables: Vec<String> = sqlx::query_scalar(q::SCHEMA_TABLES)
            .fetch_all(&self.pool)
            .await
            .map_err(db("sqlite.run_migrations"))?;
        if tables.iter().any(|t| t == SQLITE_MIGRATIONS_TABLE) {
            let version: Option<i64> = sqlx::query_scalar(q::SCHEMA_VERSION)
                .fetch_one(&self.pool)
                .await
                .map_err(db("sqlite.run_migrations"))?;
            codec::check_schema_version(version, SQLITE_SCHEMA_VERSION)?;
        }
        migrator().run(&self.pool).await.map_err(|e| {
            Error::storage("migrating the SQLite database failed")
                .with_operation("sqlite.run_migrations")
                .with_source(e)
        })
    }

    /// How this store's writes were grouped so far: `(transactions, writes)` committed by this
    /// handle and its clones since it was opened (failed groups are not counted). Writes per
    /// transaction is how many callers shared one fsync.
    pub fn group_commits(&self) -> (u64, u64) {
        self.writer.counts()
    }

    /// Copies the write-ahead log into the database file and truncates the log
    /// (`PRAGMA wal_checkpoint(TRUNCATE)`), e.g. before measuring or copying the file. SQLite
    /// also checkpoints on its own; calling this is never needed for durability.
    ///
    /// # Errors
    /// `Storage` when the checkpoint fails.
    pub async fn checkpoint(&self) -> Result<()> {
        let mut writer = self.writer.conn.lock().await;
        let checkpoint = sqlx::query(q::CHECKPOINT);
        match &mut *writer {
            WriterConn::Own(conn) => checkpoint.execute(conn).await,
            WriterConn::Pooled(pool) => checkpoint.execute(&*pool).await,
        }
        .map_err(db("sqlite.checkpoint"))?;
        Ok(())
    }

    /// Reads the whole audit trail in pages and checks its hash chain and each row's indexed
    /// columns against its hashed body, naming the first altered (and the column, when a
    /// column disagrees with its body), inserted or missing event (also one cut off the end: the stored chain head
    /// remembers the last sequence number).
    ///
    /// # Errors
    /// `Storage` when the database cannot be read (a tampered trail is not an error: see
    /// [`AuditVerification::problem`]).
    pub async fn verify_audit(&self) -> Result<AuditVerification> {
        self.verify_trail(None).await
    }

    /// [`Self::verify_audit`], and the trail against signed checkpoints (the latest one a
    /// sink holds, or several): a deleted tail (also with the stored head rewritten to match),
    /// a chain rewritten or re-sealed forward from a changed event, a forged checkpoint or one
    /// signed with a key `verifier` does not hold is reported in
    /// [`AuditVerification::checkpoint`] with its first bad seq, even when the chain's own
    /// hashes all verify.
    ///
    /// # Errors
    /// `InvalidInput` when `checkpoints` is empty; `Storage` when the database cannot be read.
    pub async fn verify_audit_against(
        &self,
        checkpoints: &[Checkpoint],
        verifier: &CheckpointVerifier,
    ) -> Result<AuditVerification> {
        let mut against = ChainAgainstCheckpoints::new(checkpoints, verifier)?;
        let mut verification = self.verify_trail(Some(&mut against)).await?;
        verification.checkpoint = Some(against.finish());
        Ok(verification)
    }

    /// The audit chain's head as stored: the last event's (seq, hash), `(0, GENESIS_HASH)`
    /// for an empty trail. What a host signs into a checkpoint outside the engine
    /// ([`offboard_core::CheckpointSigner::sign`]).
    ///
    /// # Errors
    /// `Storage` when the database cannot be read.
    pub async fn audit_head(&self) -> Result<(u64, String)> {
        const OP: &str = "sqlite.audit_head";
        group::read_head(&mut *self.pool.acquire().await.map_err(db(OP))?).await
    }

    /// Reads the trail in pages through the chain check (and the checkpoint check, if any).
    async fn verify_trail(
        &self,
        against: Option<&mut ChainAgainstCheckpoints>,
    ) -> Result<AuditVerification> {
        const OP: &str = "sqlite.verify_audit";
        let page = |after: i64| {
            sqlx::query(q::AUDIT_VERIFY)
                .bind(after)
                .bind(rows::AUDIT_PAGE)
                .fetch_all(&self.pool)
        };
        let check = match rows::check_trail(page, against, OP).await? {
            Ok(check) => check,
            Err(failed) => return Ok(failed),
        };
        let (head_seq, head_hash) = self.audit_head().await?;
        Ok(check.finished(head_seq, &head_hash))
    }

    /// Ids of the runs created in `[since, until)`, oldest first, after `after` (the last id
    /// of the previous page), at most `limit`: what period reports page through.
    pub(crate) async fn page_of_runs(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        after: Option<(DateTime<Utc>, RunId)>,
        limit: usize,
    ) -> Result<Vec<(DateTime<Utc>, RunId)>> {
        let (after_at, after_id) = match after {
            Some((at, id)) => (ts(at), id.to_string()),
            None => (String::new(), String::new()),
        };
        let rows = sqlx::query(q::RUNS_PAGE)
            .bind(ts(since))
            .bind(ts(until))
            .bind(after_at)
            .bind(after_id)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(db("sqlite.runs_page"))?;
        rows.iter()
            .map(|row| rows::page_entry(row, "sqlite.runs_page"))
            .collect()
    }
}

/// Adds the write of `row` to `batch`: an insert, or (`insert_only` false) an upsert.
fn push_task(batch: &mut Batch, row: &TaskRow, insert_only: bool) {
    batch
        .push(if insert_only {
            q::TASK_INSERT
        } else {
            q::TASK_UPSERT
        })
        .bind(row.id.clone())
        .bind(row.run.clone())
        .bind(row.position as i64)
        .bind(row.body.clone())
        .bind(row.due_at.clone());
}

/// Adds `plan`'s statements to `batch` (the order of [`CommitPlan`]): the version-checked run
/// update and its queried columns, then one statement per step.
fn push_commit(batch: &mut Batch, plan: &CommitPlan) {
    let run_id = plan.run_id.as_str();
    batch
        .push(q::RUN_UPDATE)
        .bind(run_id)
        .bind(plan.run.body.clone())
        .bind(plan.expected as i64);
    batch
        .push(q::RUN_UPDATE_COLUMNS)
        .bind(run_id)
        .bind(plan.run.state.clone())
        .bind(plan.run.open)
        .bind(plan.run.finished_at.clone());
    for step in &plan.steps {
        match step {
            Step::LeasedTask(lease, row) => {
                batch
                    .push(q::TASK_UPDATE_LEASED)
                    .bind(lease.task_id.as_str())
                    .bind(run_id)
                    .bind(lease.token.as_bytes().to_vec())
                    .bind(row.body.clone())
                    .bind(row.due_at.clone())
                    .bind(lease.release);
            }
            Step::LeaseHeld(lease) => {
                batch
                    .push(q::LEASE_HELD)
                    .bind(lease.task_id.as_str())
                    .bind(run_id)
                    .bind(lease.token.as_bytes().to_vec());
            }
            Step::Task(row) => push_task(batch, row, false),
            Step::LeaseClear(lease) => {
                batch
                    .push(q::LEASE_CLEAR)
                    .bind(lease.task_id.as_str())
                    .bind(lease.token.as_bytes().to_vec());
            }
            Step::Snapshot(task, snapshot) => {
                batch
                    .push(q::SNAPSHOT_PUT)
                    .bind(task.as_str())
                    .bind(snapshot.as_str());
            }
            Step::Claim(claim) => {
                batch
                    .push(q::TASK_CLAIM_WITH_COMMIT)
                    .bind(claim.task_id.as_str())
                    .bind(run_id)
                    .bind(claim.worker.as_str())
                    .bind(claim.token.as_bytes().to_vec())
                    .bind(ts(claim.until));
            }
        }
    }
}

/// Reads what [`push_commit`]'s statements returned (`done`, from its first): the version
/// check, then each step's outcome.
/// Adds the statements of an erasure to `batch`, in the order [`read_erasure`] reads them:
/// each run, its tasks, the check that no run of the person is left, the personal values of
/// each run's events and of events naming the person, the snapshots, the accounts, the
/// records.
fn push_erasure(batch: &mut Batch, plan: &crate::erase::ErasurePlan) {
    for (id, body) in &plan.runs {
        batch
            .push(q::ERASE_RUN)
            .bind(plan.pseudonym.as_str())
            .bind(body.as_str())
            .bind(id.as_str())
            .bind(plan.cutoff.as_str());
    }
    for (id, body) in &plan.tasks {
        batch
            .push(q::ERASE_TASK)
            .bind(body.as_str())
            .bind(id.as_str());
    }
    batch.push(q::ERASE_RUNS_LEFT).bind(plan.person.as_str());
    for (id, _) in &plan.runs {
        batch.push(q::ERASE_PERSONAL_RUN).bind(id.as_str());
    }
    batch
        .push(q::ERASE_PERSONAL_PERSON)
        .bind(plan.person.as_str());
    for (id, _) in &plan.tasks {
        batch.push(q::ERASE_SNAPSHOT).bind(id.as_str());
    }
    batch.push(q::ERASE_ACCOUNTS).bind(plan.person.as_str());
    for (namespace, key) in &plan.records {
        batch
            .push(q::ERASE_RECORD)
            .bind(namespace.as_str())
            .bind(key.as_str());
    }
    for (namespace, key, value) in &plan.redactions {
        batch
            .push(q::REDACT_RECORD)
            .bind(namespace.as_str())
            .bind(key.as_str())
            .bind(value.as_str());
    }
}

/// Reads what an erasure's statements did ([`push_erasure`]): its report, or a `Conflict`
/// (undoing it) when a run changed since it was read (reopened, rolled back, or a new run of
/// the person).
fn read_erasure(
    plan: &crate::erase::ErasurePlan,
    done: Vec<group::StatementResult>,
) -> Result<ErasureReport> {
    let mut done = done.into_iter();
    let mut next = || {
        done.next()
            .ok_or_else(|| Error::internal("an erasure's statement did not run"))
    };
    let mut report = ErasureReport::default();
    for (id, _) in &plan.runs {
        if next()?.affected != 1 {
            let id: RunId = rows::parse_id(id)?;
            return Err(erasure::erasure_refused(id, true));
        }
    }
    report.runs = plan.runs.len() as u64;
    if !plan.runs.is_empty() {
        report.pseudonym = Some(plan.pseudonym.clone());
    }
    for _ in &plan.tasks {
        next()?;
    }
    if let Some(row) = next()?.rows.first() {
        let id: String = row.col(0, "sqlite.erase_person")?;
        return Err(erasure::erasure_refused(rows::parse_id(&id)?, true));
    }
    for _ in 0..=plan.runs.len() {
        report.events += next()?.affected;
    }
    for _ in &plan.tasks {
        report.snapshots += next()?.affected;
    }
    report.accounts = next()?.affected;
    for _ in &plan.records {
        report.records += next()?.affected;
    }
    for _ in &plan.redactions {
        report.records_redacted += next()?.affected;
    }
    Ok(report)
}

fn read_commit(plan: &CommitPlan, done: &[group::StatementResult]) -> Result<()> {
    if done.first().is_none_or(|d| d.affected == 0) {
        return Err(codec::version_moved(plan.id, plan.expected));
    }
    for (i, step) in plan.steps.iter().enumerate() {
        let found = done.get(2 + i).is_some_and(|d| {
            if step.is_read() {
                !d.rows.is_empty()
            } else {
                d.affected == 1
            }
        });
        plan.check(step, found)?;
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_run(&self, run: &Run, events: Vec<AuditEvent>) -> Result<Vec<AuditEvent>> {
        let (id, person_id) = (run.id, run.person.id.to_string());
        let body = codec::run_body(&mut run.clone())?;
        let tasks = (0..run.tasks.len())
            .map(|position| TaskRow::new(run, position))
            .collect::<Result<Vec<_>>>()?;
        let (state, open) = (codec::state_name(run.state), !run.state.is_terminal());
        let (created_at, finished_at) = (ts(run.created_at), ts_opt(run.finished_at));
        let mut prepared = group::prepare(&events)?;
        let seals = self
            .writer
            .write(
                "sqlite.create_run",
                move |batch, head| {
                    batch
                        .push(q::RUN_INSERT)
                        .bind(id.to_string())
                        .bind(person_id.clone())
                        .bind(state.clone())
                        .bind(open)
                        .bind(created_at.clone())
                        .bind(finished_at.clone())
                        .bind(body.clone());
                    for task in &tasks {
                        push_task(batch, task, true);
                    }
                    group::seal(batch, head, &mut prepared)
                },
                {
                    let person = run.person.clone();
                    move |seals, ran| {
                        // A run that exists makes the insert do nothing and the task inserts
                        // fail.
                        if ran.done.first().is_some_and(|d| d.affected == 0) {
                            return Err(codec::run_exists(id, &person));
                        }
                        ran.ok()?;
                        Ok(seals)
                    }
                },
            )
            .await?;
        Ok(group::sealed(events, seals))
    }

    async fn load_run(&self, id: RunId) -> Result<Option<Run>> {
        // The statement of `load_runs`: the run and its tasks are one snapshot, one round trip.
        Ok(self.load_runs(&[id]).await?.pop())
    }

    async fn load_runs(&self, ids: &[RunId]) -> Result<Vec<Run>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = serde_json::to_string(&ids.iter().map(|id| id.to_string()).collect::<Vec<_>>())
            .map_err(|e| Error::internal(format!("run ids could not be encoded: {e}")))?;
        let rows = sqlx::query(q::RUNS_LOAD_WITH_TASKS)
            .bind(ids)
            .fetch_all(&mut *self.writer.reader().await?)
            .await
            .map_err(db("sqlite.load_runs"))?;
        let mut runs = Vec::new();
        // Rows come run by run: (id, version, body, its tasks).
        let mut current: Option<(String, i64, String, Vec<(String, Option<String>)>)> = None;
        for row in &rows {
            let id: String = row.try_get(0).map_err(db("sqlite.load_runs"))?;
            if current.as_ref().is_none_or(|c| c.0 != id) {
                if let Some((_, version, body, tasks)) = current.take() {
                    runs.push(codec::decode_run(version, &body, tasks)?);
                }
                let version: i64 = row.try_get(1).map_err(db("sqlite.load_runs"))?;
                let body: String = row.try_get(2).map_err(db("sqlite.load_runs"))?;
                current = Some((id, version, body, Vec::new()));
            }
            let task: Option<String> = row.try_get(3).map_err(db("sqlite.load_runs"))?;
            let due: Option<String> = row.try_get(4).map_err(db("sqlite.load_runs"))?;
            if let (Some(task), Some(c)) = (task, current.as_mut()) {
                c.3.push((task, due));
            }
        }
        if let Some((_, version, body, tasks)) = current {
            runs.push(codec::decode_run(version, &body, tasks)?);
        }
        Ok(runs)
    }

    async fn commit(&self, commit: Commit) -> Result<(u64, Vec<AuditEvent>)> {
        // Everything is encoded here, by the caller, not in the group: the plan's rows and the
        // events, ready to seal.
        crate::plan::refuse_foreign(&commit)?;
        let mut plan = CommitPlan::new(commit)?;
        let events = std::mem::take(&mut plan.events);
        let mut prepared = group::prepare(&events)?;
        let plan = Arc::new(plan);
        let (version, seals) = self
            .writer
            .write(
                "sqlite.commit",
                {
                    let plan = plan.clone();
                    move |batch, head| {
                        // A failed check undoes the whole write.
                        push_commit(batch, &plan);
                        group::seal(batch, head, &mut prepared)
                    }
                },
                move |seals, ran| {
                    read_commit(&plan, &ran.ok()?)?;
                    Ok((plan.next_version(), seals))
                },
            )
            .await?;
        Ok((version, group::sealed(events, seals)))
    }

    fn claims_in_commit(&self) -> bool {
        true
    }

    async fn claim(&self, request: ClaimRequest) -> Result<Vec<Lease>> {
        let now = request.now;
        let until = offboard_core::store::lease_expiry(now, request.lease_for)?;
        if request.limit == 0 {
            return Ok(Vec::new());
        }
        let (worker, limit) = (
            request.worker.clone(),
            i64::try_from(request.limit).unwrap_or(i64::MAX),
        );
        let rows = self
            .writer
            .write(
                "sqlite.claim",
                move |batch, _| {
                    batch
                        .push(q::CLAIM)
                        .bind(worker.clone())
                        .bind(ts(until))
                        .bind(ts(now))
                        .bind(limit);
                    Ok(())
                },
                |(), ran| Ok(ran.ok()?.pop().map(|d| d.rows).unwrap_or_default()),
            )
            .await?;
        const OP: &str = "sqlite.claim";
        let leases = rows
            .iter()
            .map(|row| {
                let token: Vec<u8> = row.col(2, OP)?;
                let token = Uuid::from_slice(&token)
                    .map_err(|_| Error::storage("a stored lease token is not 16 bytes"))?;
                let claims: i64 = row.col(3, OP)?;
                rows::claimed(row, &request.worker, until, (token, claims), OP)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(rows::earliest_due_first(leases))
    }

    async fn renew(&self, lease: &Lease, now: DateTime<Utc>, lease_for: Duration) -> Result<Lease> {
        // One host: the caller's clock is the store's (see `Store`'s clocks).
        let until = offboard_core::store::lease_expiry(now, lease_for)?;
        let held = lease.clone();
        let row = self
            .writer
            .write(
                "sqlite.renew",
                move |batch, _| {
                    batch
                        .push(q::RENEW)
                        .bind(ts(until))
                        .bind(held.task.to_string())
                        .bind(held.run.to_string())
                        .bind(held.token.as_bytes().to_vec());
                    Ok(held.clone())
                },
                |held, ran| {
                    ran.ok()?
                        .pop()
                        .and_then(|d| d.rows.into_iter().next())
                        .ok_or_else(|| codec::renew_lost(&held))
                },
            )
            .await?;
        let claims: i64 = row.col(1, "sqlite.renew")?;
        rows::renewed(&row, lease, until, claims, "sqlite.renew")
    }

    async fn release(&self, lease: &Lease, due_at: Option<DateTime<Utc>>) -> Result<()> {
        let (task, run, token) = (
            lease.task.to_string(),
            lease.run.to_string(),
            lease.token.as_bytes().to_vec(),
        );
        self.writer
            .write(
                "sqlite.release",
                move |batch, _| {
                    batch
                        .push(q::RELEASE)
                        .bind(ts_opt(due_at))
                        .bind(task.as_str())
                        .bind(run.as_str())
                        .bind(token.clone());
                    Ok(())
                },
                |(), ran| ran.ok().map(drop),
            )
            .await
    }

    async fn list_runs(&self, query: RunQuery) -> Result<Vec<RunSummary>> {
        // One statement per shape, so each is served by an index: the catch-all form's
        // `?1 IS NULL OR person_id = ?1` would make SQLite scan every run.
        let sql = if query.person.is_some() {
            q::LIST_RUNS_PERSON
        } else if query.open_only {
            q::LIST_RUNS_OPEN
        } else {
            q::LIST_RUNS
        };
        let rows = sqlx::query(sql)
            .bind(query.person.as_ref().map(ToString::to_string))
            .bind(ts_opt(query.since))
            .bind(ts_opt(query.until))
            .bind(query.open_only)
            .bind(if query.limit == 0 {
                -1
            } else {
                i64::try_from(query.limit).unwrap_or(i64::MAX)
            });
        // A person's runs (what every submit checks) are few: read on the point-read connection.
        // Other listings may be long and use a pooled reader.
        let rows = if query.person.is_some() {
            rows.fetch_all(&mut *self.writer.reader().await?).await
        } else {
            rows.fetch_all(&self.pool).await
        }
        .map_err(db("sqlite.list_runs"))?;
        rows.iter()
            .map(|row| rows::run_summary(row, "sqlite.list_runs"))
            .collect()
    }

    async fn put_snapshot(&self, task: TaskId, snapshot: &Snapshot) -> Result<bool> {
        let body = codec::to_json(snapshot)?;
        let task = task.to_string();
        self.writer
            .write(
                "sqlite.put_snapshot",
                move |batch, _| {
                    batch
                        .push(q::SNAPSHOT_PUT)
                        .bind(task.as_str())
                        .bind(body.as_str());
                    Ok(())
                },
                |(), ran| Ok(ran.ok()?.first().is_some_and(|d| d.affected == 1)),
            )
            .await
    }

    async fn snapshot(&self, task: TaskId) -> Result<Option<Snapshot>> {
        let body: Option<String> = sqlx::query_scalar(q::SNAPSHOT_GET)
            .bind(task.to_string())
            .fetch_optional(&mut *self.writer.reader().await?)
            .await
            .map_err(db("sqlite.snapshot"))?;
        body.map(|b| codec::from_json("snapshot", &b)).transpose()
    }

    async fn upsert_accounts(
        &self,
        person: &PersonId,
        accounts: &[AccountRef],
        at: DateTime<Utc>,
    ) -> Result<()> {
        let rows = accounts
            .iter()
            .map(|a| Ok((a.app.to_string(), a.external_id.clone(), codec::to_json(a)?)))
            .collect::<Result<Vec<_>>>()?;
        let (person, at) = (person.to_string(), ts(at));
        self.writer
            .write(
                "sqlite.upsert_accounts",
                move |batch, _| {
                    for (app, external_id, account) in &rows {
                        batch
                            .push(q::ACCOUNT_UPSERT)
                            .bind(person.as_str())
                            .bind(app.as_str())
                            .bind(external_id.as_str())
                            .bind(account.as_str())
                            .bind(at.as_str());
                    }
                    Ok(())
                },
                |(), ran| ran.ok().map(drop),
            )
            .await
    }

    async fn accounts(&self, person: &PersonId) -> Result<Vec<Account>> {
        let rows = sqlx::query(q::ACCOUNTS_GET)
            .bind(person.to_string())
            .fetch_all(&mut *self.writer.reader().await?)
            .await
            .map_err(db("sqlite.accounts"))?;
        rows.iter()
            .map(|row| rows::account(row, person, "sqlite.accounts"))
            .collect()
    }

    async fn cursor(&self, source: &str) -> Result<Option<Cursor>> {
        let cursor: Option<String> = sqlx::query_scalar(q::CURSOR_GET)
            .bind(source)
            .fetch_optional(&mut *self.writer.reader().await?)
            .await
            .map_err(db("sqlite.cursor"))?;
        Ok(cursor.map(Cursor))
    }

    async fn put_cursor(&self, source: &str, cursor: &Cursor) -> Result<()> {
        let (source, cursor) = (source.to_owned(), cursor.0.clone());
        self.writer
            .write(
                "sqlite.put_cursor",
                move |batch, _| {
                    batch
                        .push(q::CURSOR_PUT)
                        .bind(source.as_str())
                        .bind(cursor.as_str());
                    Ok(())
                },
                |(), ran| ran.ok().map(drop),
            )
            .await
    }

    async fn append_audit(&self, events: Vec<AuditEvent>) -> Result<Vec<AuditEvent>> {
        if events.is_empty() {
            return Ok(events);
        }
        let mut prepared = group::prepare(&events)?;
        let seals = self
            .writer
            .write(
                "sqlite.append_audit",
                move |batch, head| group::seal(batch, head, &mut prepared),
                |seals, ran| ran.ok().map(|_| seals),
            )
            .await?;
        Ok(group::sealed(events, seals))
    }

    async fn audit(&self, query: AuditQuery) -> Result<Vec<AuditEvent>> {
        let limit = if query.limit == 0 {
            -1
        } else {
            i64::try_from(query.limit).unwrap_or(i64::MAX)
        };
        let after = i64::try_from(query.after_seq).unwrap_or(i64::MAX);
        let rows = match query.run {
            Some(run) => sqlx::query(q::AUDIT_RUN)
                .bind(run.to_string())
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(db("sqlite.audit"))?,
            None => sqlx::query(q::AUDIT_ALL)
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(db("sqlite.audit"))?,
        };
        let whole_trail = query.run.is_none();
        rows.iter()
            .map(|row| rows::event(row, whole_trail, "sqlite.audit"))
            .collect()
    }
    async fn erase_person(
        &self,
        person: &PersonId,
        finished_before: DateTime<Utc>,
    ) -> Result<ErasureReport> {
        const OP: &str = "sqlite.erase_person";
        let ids: Vec<RunId> = self
            .list_runs(RunQuery::person(person.clone()))
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect();
        let runs = self.load_runs(&ids).await?;
        let records = sqlx::query(q::RECORDS_ALL)
            .fetch_all(&self.pool)
            .await
            .map_err(db(OP))?
            .iter()
            .map(|row| rows::record_text(row, OP))
            .collect::<Result<Vec<_>>>()?;
        let plan = Arc::new(crate::erase::ErasurePlan::new(
            person,
            finished_before,
            &runs,
            records,
        )?);
        let report = self
            .writer
            .write(
                OP,
                {
                    let plan = Arc::clone(&plan);
                    move |batch, _| {
                        push_erasure(batch, &plan);
                        Ok(())
                    }
                },
                {
                    let plan = Arc::clone(&plan);
                    move |(), ran| read_erasure(&plan, ran.ok()?)
                },
            )
            .await?;
        if self.path.is_some() {
            // The write-ahead log still holds the pages as they were before: copy the erased
            // ones into the file and empty it.
            self.checkpoint().await?;
        }
        Ok(report)
    }

    async fn erase_snapshots(&self, finished_before: DateTime<Utc>) -> Result<u64> {
        let cutoff = ts(finished_before);
        self.writer
            .write(
                "sqlite.erase_snapshots",
                move |batch, _| {
                    batch.push(q::ERASE_SNAPSHOTS_BEFORE).bind(cutoff.as_str());
                    Ok(())
                },
                |(), ran| Ok(ran.ok()?.first().map_or(0, |d| d.affected)),
            )
            .await
    }

    async fn get_record(&self, namespace: &str, key: &str) -> Result<Option<Record>> {
        check_record_key(namespace, key)?;
        let row = sqlx::query(q::RECORD_GET)
            .bind(namespace)
            .bind(key)
            .fetch_optional(&mut *self.writer.reader().await?)
            .await
            .map_err(db("sqlite.get_record"))?;
        row.map(|row| rows::record(&row, namespace, key, "sqlite.record"))
            .transpose()
    }

    async fn insert_record(
        &self,
        namespace: &str,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<(Record, bool)> {
        check_record_key(namespace, key)?;
        let body = record_value_json(value)?;
        let (stored, record) = self
            .write_record("sqlite.insert_record", namespace, key, None, body)
            .await?;
        let record =
            record.ok_or_else(|| Error::storage("an inserted record does not read back"))?;
        Ok((record, stored))
    }

    async fn swap_record(
        &self,
        namespace: &str,
        key: &str,
        version: u64,
        value: &serde_json::Value,
    ) -> Result<RecordSwap> {
        check_record_key(namespace, key)?;
        let body = record_value_json(value)?;
        let version = Some(codec::record_version(version));
        let (swapped, current) = self
            .write_record("sqlite.swap_record", namespace, key, version, body)
            .await?;
        Ok(match current {
            Some(record) if swapped => RecordSwap::Swapped(record),
            current => RecordSwap::Conflict(current),
        })
    }
}

impl SqliteStore {
    /// Inserts a record if absent (`version` `None`) or swaps it at `version`, and reads the
    /// record it leaves, in one transaction: whether the write changed a row, and the record.
    async fn write_record(
        &self,
        op: &'static str,
        namespace: &str,
        key: &str,
        version: Option<i64>,
        body: String,
    ) -> Result<(bool, Option<Record>)> {
        let (ns, k) = (namespace.to_owned(), key.to_owned());
        let (written, row) = self
            .writer
            .write(
                op,
                move |batch, _| {
                    let write = batch
                        .push(version.map_or(q::RECORD_INSERT, |_| q::RECORD_SWAP))
                        .bind(ns.as_str())
                        .bind(k.as_str());
                    match version {
                        Some(v) => write.bind(v).bind(body.as_str()),
                        None => write.bind(body.as_str()),
                    };
                    batch.push(q::RECORD_GET).bind(ns.as_str()).bind(k.as_str());
                    Ok(())
                },
                |(), ran| {
                    let mut done = ran.ok()?.into_iter();
                    let written = done.next().is_some_and(|d| d.affected == 1);
                    let row = done.next().and_then(|d| d.rows.into_iter().next());
                    Ok((written, row))
                },
            )
            .await?;
        let record = row
            .map(|row| rows::record(&row, namespace, key, "sqlite.record"))
            .transpose()?;
        Ok((written, record))
    }
}

/// Mirrors sealed events from another store, as [`offboard_core::MemoryStore`] does.
///
/// # Behavior
/// Events whose `seq` it already holds are ignored; the next one is stored as is (not
/// resealed) if it links to the stored chain, all in one transaction.
///
/// # Errors
/// `Conflict` for an event that leaves a gap or does not link; nothing of the batch is kept.
#[async_trait]
impl AuditSink for SqliteStore {
    async fn record(&self, events: &[AuditEvent]) -> Result<()> {
        let events = events.to_vec();
        self.writer
            .write(
                "sqlite.record",
                move |batch, head| {
                    let (mut last_seq, mut last_hash) = head.clone();
                    let mut fresh = Vec::new();
                    for event in &events {
                        if event.seq <= last_seq {
                            continue;
                        }
                        if event.seq != last_seq + 1 || event.prev_hash != last_hash {
                            return Err(codec::chain_gap(event.seq, last_seq));
                        }
                        last_seq = event.seq;
                        last_hash.clone_from(&event.hash);
                        fresh.push(event.clone());
                    }
                    group::insert_events(batch, &fresh)?;
                    *head = (last_seq, last_hash);
                    Ok(())
                },
                |(), ran| ran.ok().map(drop),
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use offboard_core::{AuditEvent, AuditKind, AuditSink, ErrorKind, Store};

    use super::SqliteStore;

    fn note(i: usize) -> AuditEvent {
        AuditEvent::new(
            chrono::Utc::now(),
            "test",
            AuditKind::Note {
                name: format!("n{i}"),
                data: serde_json::json!({ "i": i }),
            },
        )
    }

    /// Writes queued together share a transaction, but one that fails is undone alone and the
    /// others are all stored, in a chain that verifies.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_write_in_a_group_is_undone_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            SqliteStore::open(dir.path().join("offboard.db"))
                .await
                .unwrap(),
        );
        let mut handles = Vec::new();
        for i in 0..64 {
            let store = store.clone();
            handles.push(tokio::spawn(async move {
                if i % 8 == 7 {
                    // An event that does not link to the chain: refused as a whole.
                    let mut bad = note(i);
                    bad.seal(1_000_000 + i as u64, "not the head");
                    let err = store.record(&[bad]).await.unwrap_err();
                    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
                    0
                } else {
                    store
                        .append_audit(vec![note(i), note(i)])
                        .await
                        .unwrap()
                        .len()
                }
            }));
        }
        let mut stored = 0;
        for h in handles {
            stored += h.await.unwrap();
        }
        assert_eq!(stored, 56 * 2);
        let all = store.audit(offboard_core::AuditQuery::all()).await.unwrap();
        assert_eq!(all.len(), stored);
        let check = store.verify_audit().await.unwrap();
        assert!(check.is_intact(), "{:?}", check.problem);
        assert_eq!(check.verified, stored as u64);
    }
}
