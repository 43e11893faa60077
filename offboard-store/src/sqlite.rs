//! [`SqliteStore`]: the embedded default, one database file in WAL mode.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use offboard_core::connector::Snapshot;
use offboard_core::store::{AuditQuery, ClaimRequest, Commit, Lease, RunQuery, RunSummary};
use offboard_core::{
    Account, AccountRef, AuditEvent, AuditSink, Cursor, Error, PersonId, Result, Run, RunId, Store,
    TaskId,
};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Connection, Row};
use uuid::Uuid;

use crate::codec::{self, AuditVerification, ChainCheck, db, int, ts, ts_opt};
use crate::sql::sqlite as q;

/// The table our migrations are recorded in (out of the way of a host's own `_sqlx_migrations`).
pub const SQLITE_MIGRATIONS_TABLE: &str = "offboard_schema_migrations";

/// The newest schema version this code knows.
pub const SQLITE_SCHEMA_VERSION: i64 = 3;

/// How many audit rows a verification reads at once.
const PAGE: i64 = 1000;

fn migrator() -> Migrator {
    let mut m = codec::migrator(&[
        (1, "init", q::MIGRATION_0001),
        (2, "open_runs", q::MIGRATION_0002),
        (3, "one_open_run", q::MIGRATION_0003),
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
/// - Times are stored as fixed-width RFC 3339 text (nanoseconds), so they round-trip exactly.
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
    /// The one connection group commits run on: its page cache stays warm, where a pooled
    /// connection's cache is dropped whenever another connection wrote. In memory, `pool`.
    writes: SqlitePool,
    path: Option<PathBuf>,
    /// This process's writes, committed in groups (see [`GroupCommit`]).
    writer: Arc<GroupCommit>,
}

/// What a queued write hands back once it ran inside the group's transaction: how to tell its
/// caller the outcome once the group committed (or failed), and whether the transaction is
/// still usable.
struct Ran {
    finish: Finish,
    broken: bool,
}

/// Tells a write's caller its result, given whether its group failed to commit.
type Finish = Box<dyn FnOnce(Option<&GroupFailure>) + Send>;

/// One queued write: runs inside the group's transaction (`Ok`), under a savepoint of its
/// own, or is told the group failed before it could run (`Err`).
type Job = Box<
    dyn for<'c> FnOnce(std::result::Result<&'c mut Group, &'c GroupFailure>) -> BoxFuture<'c, Ran>
        + Send,
>;

/// Why a group did not commit; every write in it gets an error naming this.
struct GroupFailure {
    message: String,
    retryable: bool,
}

/// Group commit: this process's writes are queued, and whoever holds the writer lock runs
/// every queued write in one `BEGIN IMMEDIATE` transaction, each under its own savepoint (a
/// write that fails is rolled back alone, as if it had been its own transaction), then commits
/// once. With `synchronous = FULL` that is one fsync for the whole group instead of one per
/// write. No caller hears "done" before the group's `COMMIT` returned, so durability is
/// unchanged; writes are applied one after another, so each still sees all earlier ones.
///
/// Holding the lock also serialises this process's writers before they ask SQLite for its
/// write lock: SQLite's busy handler sleeps for milliseconds when the lock is taken. Other
/// processes sharing the file still wait through `busy_timeout`.
///
/// Every statement costs a round trip to the connection's thread (two thread wake-ups), which
/// costs more than the statement: a write sends its statements as one [`Batch`] (with the
/// savepoint opening it), and the audit chain's head is read and written once per group (see
/// [`Group`]).
#[derive(Default)]
struct GroupCommit {
    queue: std::sync::Mutex<Vec<Job>>,
    lock: tokio::sync::Mutex<()>,
    /// Transactions committed, and the writes they held (see [`SqliteStore::group_commits`]).
    committed: std::sync::atomic::AtomicU64,
    committed_writes: std::sync::atomic::AtomicU64,
}

/// The writer connection's page cache (`PRAGMA cache_size`; negative: KiB): 16 MiB.
const WRITER_CACHE: &str = "-16384";

/// At most this many writes share one transaction.
const GROUP_MAX: usize = 512;

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
    let mut names: Vec<&str> = tables.iter().map(String::as_str).take(5).collect();
    names.sort_unstable();
    Err(refuse(format!(
        "it holds other tables ({}) and no {SQLITE_MIGRATIONS_TABLE}",
        names.join(", ")
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
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.clone())
            .await
            .map_err(db("sqlite.open"))?;
        let writes = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.pragma("cache_size", WRITER_CACHE))
            .await
            .map_err(db("sqlite.open"))?;
        let store = Self {
            pool,
            writes,
            path: Some(path),
            writer: Arc::default(),
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
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(db("sqlite.open"))?;
        let store = Self {
            writes: pool.clone(),
            pool,
            path: None,
            writer: Arc::default(),
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
            if let Some(v) = version.filter(|v| *v > SQLITE_SCHEMA_VERSION) {
                return Err(newer_schema(v, SQLITE_SCHEMA_VERSION));
            }
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
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.writer.committed.load(Relaxed),
            self.writer.committed_writes.load(Relaxed),
        )
    }

    /// Copies the write-ahead log into the database file and truncates the log
    /// (`PRAGMA wal_checkpoint(TRUNCATE)`), e.g. before measuring or copying the file. SQLite
    /// also checkpoints on its own; calling this is never needed for durability.
    ///
    /// # Errors
    /// `Storage` when the checkpoint fails.
    pub async fn checkpoint(&self) -> Result<()> {
        let _w = self.writer.lock.lock().await;
        sqlx::query(q::CHECKPOINT)
            .execute(&self.writes)
            .await
            .map_err(db("sqlite.checkpoint"))?;
        Ok(())
    }

    /// Reads the whole audit trail in pages and checks its hash chain, naming the first
    /// altered, inserted or missing event (also one cut off the end: the stored chain head
    /// remembers the last sequence number).
    ///
    /// # Errors
    /// `Storage` when the database cannot be read (a tampered trail is not an error: see
    /// [`AuditVerification::problem`]).
    pub async fn verify_audit(&self) -> Result<AuditVerification> {
        let mut check = ChainCheck::new();
        let mut after = 0i64;
        loop {
            let rows = sqlx::query(q::AUDIT_ALL)
                .bind(after)
                .bind(PAGE)
                .fetch_all(&self.pool)
                .await
                .map_err(db("sqlite.verify_audit"))?;
            let n = rows.len() as i64;
            for row in rows {
                let seq: i64 = row.try_get(0).map_err(db("sqlite.verify_audit"))?;
                let body: String = row.try_get(1).map_err(db("sqlite.verify_audit"))?;
                if let Err(problem) = check.push(int("seq", seq)?, &body) {
                    return Ok(AuditVerification {
                        verified: check.verified(),
                        problem: Some(problem),
                    });
                }
                after = seq;
            }
            if n < PAGE {
                break;
            }
        }
        let (head_seq, head_hash) = head(
            &mut *self
                .pool
                .acquire()
                .await
                .map_err(db("sqlite.verify_audit"))?,
        )
        .await?;
        let verified = check.verified();
        Ok(match check.finish(head_seq, &head_hash) {
            Ok(n) => AuditVerification {
                verified: n,
                problem: None,
            },
            Err(problem) => AuditVerification {
                verified,
                problem: Some(problem),
            },
        })
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
        rows.into_iter()
            .map(|row| {
                let id: String = row.try_get(0).map_err(db("sqlite.runs_page"))?;
                let at: String = row.try_get(1).map_err(db("sqlite.runs_page"))?;
                Ok((codec::parse_ts(&at)?, parse_id(&id)?))
            })
            .collect()
    }

    /// Runs `write` in this process's next group commit (see [`GroupCommit`]) and returns its
    /// result once the group is durable. An `Err` from `write` rolls back what it did (and only
    /// that); a group that cannot commit fails every write in it.
    async fn write<T, F>(&self, op: &'static str, write: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Group) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        let (tell, told) = tokio::sync::oneshot::channel::<Result<T>>();
        let job: Job = Box::new(move |group| {
            Box::pin(async move {
                let group = match group {
                    Ok(group) => group,
                    Err(failure) => {
                        let _ = tell.send(Err(group_failed(op, failure)));
                        return Ran {
                            finish: Box::new(|_| {}),
                            broken: true,
                        };
                    }
                };
                group.job_savepoint = false;
                let head = group.head.clone();
                let result = write(&mut *group).await;
                let broken = match &result {
                    Ok(_) => group.poisoned,
                    Err(_) => {
                        group.head = head;
                        group.poisoned
                            || (group.job_savepoint
                                && sqlx::query(q::SAVEPOINT_ROLLBACK)
                                    .execute(&mut *group.tx)
                                    .await
                                    .is_err())
                    }
                };
                Ran {
                    finish: Box::new(move |failure: Option<&GroupFailure>| {
                        let result = match failure {
                            None => result,
                            Some(f) => Err(group_failed(op, f)),
                        };
                        let _ = tell.send(result);
                    }),
                    broken,
                }
            })
        });
        self.writer
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(job);
        // Whoever holds the lock runs everything queued so far (up to GROUP_MAX): often this
        // write was run by an earlier holder while we waited, and the queue is empty.
        let mut told = told;
        loop {
            let w = self.writer.lock.lock().await;
            // Run by the group that held the lock before us: leave the queue to the writers
            // still waiting, so it grows into one group instead of being run a write at a time.
            if let Ok(result) = told.try_recv() {
                return result;
            }
            let jobs: Vec<Job> = {
                let mut queue = self
                    .writer
                    .queue
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let n = queue.len().min(GROUP_MAX);
                queue.drain(..n).collect()
            };
            if !jobs.is_empty() {
                self.run_group(op, jobs).await;
            }
            drop(w);
            match told.try_recv() {
                Ok(result) => return result,
                // Still queued behind a full group.
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => continue,
                Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                    return Err(Error::storage(
                        "the write's transaction was abandoned before it finished (the task \
                         running it was cancelled); it may or may not have been stored",
                    )
                    .with_operation(op)
                    .retryable());
                }
            }
        }
    }

    /// Runs `jobs` in one transaction and commits it; tells each job's caller the outcome.
    async fn run_group(&self, op: &'static str, jobs: Vec<Job>) {
        let fail_all = |ran: Vec<Ran>, failure: GroupFailure| {
            for r in ran {
                (r.finish)(Some(&failure));
            }
        };
        let mut group = match self.writes.begin_with("BEGIN IMMEDIATE").await {
            Ok(tx) => Group::new(tx),
            Err(e) => {
                let failure = failure(op, e);
                for job in jobs {
                    job(Err(&failure)).await;
                }
                return;
            }
        };
        let mut ran = Vec::with_capacity(jobs.len());
        let mut jobs = jobs.into_iter();
        let mut broken = false;
        for job in jobs.by_ref() {
            let r = job(Ok(&mut group)).await;
            broken = r.broken;
            ran.push(r);
            if broken {
                break;
            }
        }
        if broken {
            drop(group);
            let failure = GroupFailure {
                message: "a statement left the transaction unusable; it was rolled back".into(),
                retryable: true,
            };
            for job in jobs {
                job(Err(&failure)).await;
            }
            fail_all(ran, failure);
            return;
        }
        match group.commit().await {
            Ok(()) => {
                use std::sync::atomic::Ordering::Relaxed;
                self.writer.committed.fetch_add(1, Relaxed);
                self.writer
                    .committed_writes
                    .fetch_add(ran.len() as u64, Relaxed);
                for r in ran {
                    (r.finish)(None);
                }
            }
            Err(e) => fail_all(ran, failure(op, e)),
        }
    }
}

/// The transaction of one group commit, as its writes see it.
///
/// Each write runs under a savepoint of its own, opened by the first statement batch it runs
/// (so opening it costs no extra round trip to SQLite's thread) and left open when the write
/// succeeds: the next write's batch releases it as it opens its own, and `COMMIT` releases
/// the last one. A failed write is rolled back to its savepoint alone. The audit chain's head
/// is read once per group and written once, just before `COMMIT`.
struct Group {
    tx: sqlx::Transaction<'static, sqlx::Sqlite>,
    /// The chain head (seq, hash) after the writes so far; `None` until read.
    head: Option<(u64, String)>,
    /// Whether `head` moved since it was read.
    head_moved: bool,
    /// Whether a savepoint named `offboard_write` is open (an earlier write's, or this one's).
    savepoint_open: bool,
    /// Whether the running write opened its savepoint.
    job_savepoint: bool,
    /// A savepoint statement itself failed: the transaction's state is unknown.
    poisoned: bool,
}

/// What one statement of a batch returned.
#[derive(Default)]
struct Done {
    rows: Vec<SqliteRow>,
    affected: u64,
}

impl Group {
    fn new(tx: sqlx::Transaction<'static, sqlx::Sqlite>) -> Self {
        Self {
            tx,
            head: None,
            head_moved: false,
            savepoint_open: false,
            job_savepoint: false,
            poisoned: false,
        }
    }

    /// A batch for the running write, starting with the statements that open its savepoint
    /// unless it has one already.
    fn batch(&self) -> Batch {
        let mut batch = Batch::default();
        if !self.job_savepoint {
            if self.savepoint_open {
                batch.prefix(q::SAVEPOINT_RELEASE);
            }
            batch.prefix(q::SAVEPOINT);
        }
        batch
    }

    /// Runs `batch` (one round trip to SQLite's thread) and returns what each of its own
    /// statements (not the savepoint prefix) returned.
    async fn run(&mut self, batch: Batch, op: &'static str) -> Result<Vec<Done>> {
        let (out, result) = self.run_partial(batch, op).await;
        result.map(|()| out)
    }

    /// [`Group::run`], also returning what the statements before a failed one returned.
    async fn run_partial(&mut self, batch: Batch, op: &'static str) -> (Vec<Done>, Result<()>) {
        let mut batch = batch;
        batch.flush();
        let Batch {
            sql,
            args,
            prefix,
            unbindable,
            ..
        } = batch;
        if let Some(why) = unbindable {
            let e = Error::storage(format!("a value could not be bound: {why}")).with_operation(op);
            return (Vec::new(), Err(e));
        }
        let mut out: Vec<Done> = Vec::new();
        let mut current = Done::default();
        let mut finished = 0;
        if prefix == 0 {
            self.job_savepoint = true;
        }
        // `sql` is our statements' text only (values are bound). sqlx-sqlite runs a string of
        // several statements one after another on its thread; sqlx calls that behaviour
        // deprecated (launchbadge/sqlx#3108) but 0.9 keeps it: the store's SQLite tests and
        // the crash test fail if an upgrade drops it.
        let query = sqlx::query_with(sqlx::AssertSqlSafe(sql), args);
        let mut stream = sqlx::Executor::fetch_many(&mut *self.tx, query);
        while let Some(item) = futures::StreamExt::next(&mut stream).await {
            match item {
                Ok(sqlx::Either::Right(row)) => current.rows.push(row),
                Ok(sqlx::Either::Left(done)) => {
                    finished += 1;
                    current.affected = done.rows_affected();
                    let statement = std::mem::take(&mut current);
                    if finished == prefix {
                        self.savepoint_open = true;
                        self.job_savepoint = true;
                    } else if finished > prefix {
                        out.push(statement);
                    }
                }
                Err(e) => {
                    if finished < prefix {
                        // Which savepoint is open now is unknown: give up the group.
                        self.poisoned = true;
                    }
                    return (out, Err(db(op)(e)));
                }
            }
        }
        (out, Ok(()))
    }

    /// The audit chain's head, read on first use.
    async fn head(&mut self) -> Result<&mut (u64, String)> {
        if self.head.is_none() {
            let row = sqlx::query(q::AUDIT_HEAD)
                .fetch_one(&mut *self.tx)
                .await
                .map_err(db("sqlite.audit_head"))?;
            let seq: i64 = row.try_get(0).map_err(db("sqlite.audit_head"))?;
            let hash: String = row.try_get(1).map_err(db("sqlite.audit_head"))?;
            self.head = Some((int("seq", seq)?, hash));
        }
        Ok(self.head.get_or_insert_with(Default::default))
    }

    /// Seals `events` after the chain head and adds their inserts to `batch`; the head moves
    /// when the caller calls [`Group::advance`] after the batch ran.
    async fn seal(
        &mut self,
        batch: &mut Batch,
        mut events: Vec<AuditEvent>,
    ) -> Result<Vec<AuditEvent>> {
        if events.is_empty() {
            return Ok(events);
        }
        let (mut seq, mut prev) = self.head().await?.clone();
        for e in &mut events {
            seq += 1;
            e.seal(seq, &prev);
            prev.clone_from(&e.hash);
        }
        insert_events(batch, &events)?;
        Ok(events)
    }

    /// Moves the chain head to the last of `events` (stored by the batch just run).
    fn advance(&mut self, events: &[AuditEvent]) {
        if let Some(last) = events.last() {
            self.head = Some((last.seq, last.hash.clone()));
            self.head_moved = true;
        }
    }

    /// Stores the moved chain head and commits.
    async fn commit(mut self) -> std::result::Result<(), sqlx::Error> {
        if self.head_moved
            && let Some((seq, hash)) = &self.head
        {
            sqlx::query(q::AUDIT_HEAD_SET)
                .bind(*seq as i64)
                .bind(hash)
                .execute(&mut *self.tx)
                .await?;
        }
        self.tx.commit().await
    }
}

/// Statements sent to SQLite's thread together: one round trip instead of one per statement.
/// Statements are written as in their own files (`?N` parameters) and bound in `?1, ?2, …`
/// order; the batch turns each `?N` into a plain `?` and passes the values in the order the
/// parameters appear (a parameter used twice gets its value twice), because numbered
/// parameters cannot be shifted past earlier statements' ones.
#[derive(Default)]
struct Batch {
    sql: String,
    args: SqliteArguments,
    /// The running statement's parameters in order of appearance (`N` of each `?N`).
    order: Vec<usize>,
    /// The running statement's values, for `?1, ?2, …`.
    values: Vec<Value>,
    /// How many leading statements open the savepoint.
    prefix: usize,
    /// Why a value could not be bound, if one could not.
    unbindable: Option<String>,
}

/// A value bound in a [`Batch`].
#[derive(Clone)]
enum Value {
    Text(Option<String>),
    Int(i64),
    Bool(bool),
    Blob(Vec<u8>),
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Self::Text(Some(v))
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Self::Text(Some(v.to_owned()))
    }
}

impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Self {
        Self::Text(v)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Self::Blob(v)
    }
}

impl Batch {
    fn prefix(&mut self, sql: &str) {
        self.push(sql);
        self.prefix += 1;
    }

    /// Appends a statement; bind its parameters next, `?1` first.
    fn push(&mut self, sql: &str) -> &mut Self {
        self.flush();
        for line in sql.lines() {
            let line = line.split_once("--").map_or(line, |(code, _)| code);
            let mut rest = line;
            while let Some(at) = rest.find('?') {
                self.sql.push_str(&rest[..=at]);
                rest = &rest[at + 1..];
                let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
                match rest[..digits].parse() {
                    Ok(n) => self.order.push(n),
                    Err(_) => {
                        self.unbindable.get_or_insert_with(|| {
                            format!("a parameter without a number in {sql}")
                        });
                    }
                }
                rest = &rest[digits..];
            }
            self.sql.push_str(rest);
            self.sql.push('\n');
        }
        let end = self.sql.trim_end().len();
        self.sql.truncate(end);
        if !self.sql.ends_with(';') {
            self.sql.push(';');
        }
        self.sql.push('\n');
        self
    }

    /// Binds the running statement's next parameter.
    fn bind(&mut self, value: impl Into<Value>) -> &mut Self {
        self.values.push(value.into());
        self
    }

    /// Passes the running statement's values in the order its parameters appear.
    fn flush(&mut self) {
        let values = std::mem::take(&mut self.values);
        for n in std::mem::take(&mut self.order) {
            let Some(value) = n.checked_sub(1).and_then(|i| values.get(i)) else {
                self.unbindable
                    .get_or_insert_with(|| format!("parameter ?{n} has no value"));
                continue;
            };
            let added = match value.clone() {
                Value::Text(v) => sqlx::Arguments::add(&mut self.args, v),
                Value::Int(v) => sqlx::Arguments::add(&mut self.args, v),
                Value::Bool(v) => sqlx::Arguments::add(&mut self.args, v),
                Value::Blob(v) => sqlx::Arguments::add(&mut self.args, v),
            };
            if let Err(e) = added {
                self.unbindable.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

fn group_failed(op: &'static str, f: &GroupFailure) -> Error {
    let e = Error::storage(format!(
        "the transaction this write was part of did not commit: {}",
        f.message
    ))
    .with_operation(op);
    if f.retryable { e.retryable() } else { e }
}

fn failure(op: &'static str, e: sqlx::Error) -> GroupFailure {
    let e = db(op)(e);
    GroupFailure {
        retryable: e.is_retryable(),
        message: e.to_string(),
    }
}

pub(crate) fn newer_schema(found: i64, known: i64) -> Error {
    Error::config(
        "schema_version",
        format!(
            "the database's schema is at version {found}, newer than this offboard (which knows \
             up to version {known}); upgrade offboard before opening it"
        ),
    )
}

fn parse_id<T: std::str::FromStr>(s: &str) -> Result<T> {
    s.parse()
        .map_err(|_| Error::storage(format!("stored id {s:?} is not a UUID")))
}

async fn head(conn: &mut SqliteConnection) -> Result<(u64, String)> {
    let row = sqlx::query(q::AUDIT_HEAD)
        .fetch_one(&mut *conn)
        .await
        .map_err(db("sqlite.audit_head"))?;
    let seq: i64 = row.try_get(0).map_err(db("sqlite.audit_head"))?;
    let hash: String = row.try_get(1).map_err(db("sqlite.audit_head"))?;
    Ok((int("seq", seq)?, hash))
}

/// Adds the inserts of already-sealed events to `batch`.
fn insert_events(batch: &mut Batch, events: &[AuditEvent]) -> Result<()> {
    for e in events {
        batch
            .push(q::AUDIT_INSERT)
            .bind(e.seq as i64)
            .bind(e.run.map(|r| r.to_string()))
            .bind(ts(e.at))
            .bind(e.hash.clone())
            .bind(codec::event_body(e)?);
    }
    Ok(())
}

/// Adds the write of a run's task row to `batch`.
fn push_task(batch: &mut Batch, run: &Run, position: usize, insert_only: bool) -> Result<()> {
    let task = &run.tasks[position];
    batch
        .push(if insert_only {
            q::TASK_INSERT
        } else {
            q::TASK_UPSERT
        })
        .bind(task.id.to_string())
        .bind(run.id.to_string())
        .bind(position as i64)
        .bind(codec::task_body(task)?)
        .bind(ts_opt(task.due_at));
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_run(&self, run: &Run, events: Vec<AuditEvent>) -> Result<Vec<AuditEvent>> {
        let run = run.clone();
        self.write("sqlite.create_run", move |group| {
            Box::pin(async move {
                let mut batch = group.batch();
                batch
                    .push(q::RUN_INSERT)
                    .bind(run.id.to_string())
                    .bind(run.person.id.to_string())
                    .bind(codec::state_name(run.state))
                    .bind(!run.state.is_terminal())
                    .bind(ts(run.created_at))
                    .bind(ts_opt(run.finished_at))
                    .bind(codec::run_body(&run)?);
                for position in 0..run.tasks.len() {
                    push_task(&mut batch, &run, position, true)?;
                }
                let sealed = group.seal(&mut batch, events).await?;
                // A run that exists makes the insert do nothing and the task inserts fail.
                let (done, result) = group.run_partial(batch, "sqlite.create_run").await;
                if done.first().is_some_and(|d| d.affected == 0) {
                    return Err(codec::run_exists(&run));
                }
                result?;
                group.advance(&sealed);
                Ok(sealed)
            })
        })
        .await
    }

    async fn load_run(&self, id: RunId) -> Result<Option<Run>> {
        // One statement, so the run and its tasks are one snapshot (and one round trip to the
        // connection's thread instead of four).
        let rows = sqlx::query(q::RUN_LOAD_WITH_TASKS)
            .bind(id.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(db("sqlite.load_run"))?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let version: i64 = first.try_get(0).map_err(db("sqlite.load_run"))?;
        let body: String = first.try_get(1).map_err(db("sqlite.load_run"))?;
        let mut tasks = Vec::with_capacity(rows.len());
        for row in &rows {
            let task: Option<String> = row.try_get(2).map_err(db("sqlite.load_run"))?;
            let due: Option<String> = row.try_get(3).map_err(db("sqlite.load_run"))?;
            if let Some(task) = task {
                tasks.push((task, due));
            }
        }
        codec::decode_run(version, &body, tasks).map(Some)
    }

    async fn commit(&self, commit: Commit) -> Result<(u64, Vec<AuditEvent>)> {
        self.write("sqlite.commit", move |group| {
            Box::pin(async move {
                let run = &commit.run;
                let id = run.id;
                // One batch: the version-checked run update, the lease check (before the batch
                // clears the lease), the changed tasks and the events. A failed check rolls
                // the whole batch back to the write's savepoint.
                let mut batch = group.batch();
                batch
                    .push(q::RUN_UPDATE)
                    .bind(run.person.id.to_string())
                    .bind(codec::state_name(run.state))
                    .bind(!run.state.is_terminal())
                    .bind(ts(run.created_at))
                    .bind(ts_opt(run.finished_at))
                    .bind(codec::run_body(run)?)
                    .bind(id.to_string())
                    .bind(run.version as i64);
                let checked = commit.lease.as_ref().filter(|lease| lease.run == id);
                if let Some(lease) = checked {
                    batch
                        .push(q::LEASE_HELD)
                        .bind(lease.task.to_string())
                        .bind(id.to_string())
                        .bind(lease.token.as_bytes().to_vec());
                }
                let mut written = Vec::with_capacity(commit.changed_tasks.len());
                for task in &commit.changed_tasks {
                    if written.contains(task) {
                        continue;
                    }
                    if let Some(position) = run.tasks.iter().position(|t| t.id == *task) {
                        push_task(&mut batch, run, position, false)?;
                        written.push(*task);
                    }
                }
                if commit.release
                    && let Some(lease) = checked
                {
                    batch
                        .push(q::LEASE_CLEAR)
                        .bind(lease.task.to_string())
                        .bind(lease.token.as_bytes().to_vec());
                }
                for (task, snapshot) in &commit.snapshots {
                    batch
                        .push(q::SNAPSHOT_PUT)
                        .bind(task.to_string())
                        .bind(codec::to_json(snapshot)?);
                }
                let sealed = group.seal(&mut batch, commit.events).await?;
                let done = group.run(batch, "sqlite.commit").await?;
                if done.first().is_none_or(|d| d.affected == 0) {
                    let stored: Option<i64> = sqlx::query_scalar(q::RUN_VERSION)
                        .bind(id.to_string())
                        .fetch_optional(&mut *group.tx)
                        .await
                        .map_err(db("sqlite.commit"))?;
                    return Err(match stored {
                        None => Error::not_found(format!("run {id} does not exist")),
                        Some(v) => codec::version_conflict(id, v, run.version),
                    });
                }
                if let Some(lease) = &commit.lease {
                    let held = checked.is_some() && done.get(1).is_some_and(|d| !d.rows.is_empty());
                    if !held {
                        return Err(codec::lease_lost(id, lease));
                    }
                }
                group.advance(&sealed);
                Ok((run.version + 1, sealed))
            })
        })
        .await
    }

    async fn claim(&self, request: ClaimRequest) -> Result<Vec<Lease>> {
        let now = request.now;
        let until = chrono::Duration::from_std(request.lease_for)
            .ok()
            .and_then(|d| now.checked_add_signed(d))
            .ok_or_else(|| Error::invalid_input("lease_for is too long"))?;
        if request.limit == 0 {
            return Ok(Vec::new());
        }
        let (worker, limit) = (
            request.worker.clone(),
            i64::try_from(request.limit).unwrap_or(i64::MAX),
        );
        let rows = self
            .write("sqlite.claim", move |group| {
                Box::pin(async move {
                    let mut batch = group.batch();
                    batch
                        .push(q::CLAIM)
                        .bind(worker)
                        .bind(ts(until))
                        .bind(ts(now))
                        .bind(limit);
                    let mut done = group.run(batch, "sqlite.claim").await?;
                    Ok(done.pop().map(|d| d.rows).unwrap_or_default())
                })
            })
            .await?;
        let mut leases = rows
            .into_iter()
            .map(|row| {
                let run: String = row.try_get(0).map_err(db("sqlite.claim"))?;
                let task: String = row.try_get(1).map_err(db("sqlite.claim"))?;
                let token: Vec<u8> = row.try_get(2).map_err(db("sqlite.claim"))?;
                let claims: i64 = row.try_get(3).map_err(db("sqlite.claim"))?;
                let due: String = row.try_get(4).map_err(db("sqlite.claim"))?;
                let token = Uuid::from_slice(&token)
                    .map_err(|_| Error::storage("a stored lease token is not 16 bytes"))?;
                Ok((
                    due,
                    Lease {
                        run: parse_id(&run)?,
                        task: parse_id(&task)?,
                        worker: request.worker.clone(),
                        token,
                        until,
                        claims: int("claims", claims)?,
                    },
                ))
            })
            .collect::<Result<Vec<(String, Lease)>>>()?;
        // RETURNING has no order: earliest due first, as claimed.
        leases.sort_by(|a, b| (&a.0, a.1.task).cmp(&(&b.0, b.1.task)));
        Ok(leases.into_iter().map(|(_, l)| l).collect())
    }

    async fn renew(&self, lease: &Lease, until: DateTime<Utc>) -> Result<Lease> {
        let held = lease.clone();
        let row = self
            .write("sqlite.renew", move |group| {
                Box::pin(async move {
                    let mut batch = group.batch();
                    batch
                        .push(q::RENEW)
                        .bind(ts(until))
                        .bind(held.task.to_string())
                        .bind(held.run.to_string())
                        .bind(held.token.as_bytes().to_vec());
                    let mut done = group.run(batch, "sqlite.renew").await?;
                    done.pop()
                        .and_then(|d| d.rows.into_iter().next())
                        .ok_or_else(|| codec::renew_lost(&held))
                })
            })
            .await?;
        let worker: Option<String> = row.try_get(0).map_err(db("sqlite.renew"))?;
        let claims: i64 = row.try_get(1).map_err(db("sqlite.renew"))?;
        Ok(Lease {
            run: lease.run,
            task: lease.task,
            worker: worker.unwrap_or_else(|| lease.worker.clone()),
            token: lease.token,
            until,
            claims: int("claims", claims)?,
        })
    }

    async fn release(&self, lease: &Lease, due_at: Option<DateTime<Utc>>) -> Result<()> {
        let (task, run, token) = (
            lease.task.to_string(),
            lease.run.to_string(),
            lease.token.as_bytes().to_vec(),
        );
        self.write("sqlite.release", move |group| {
            Box::pin(async move {
                let mut batch = group.batch();
                batch
                    .push(q::RELEASE)
                    .bind(ts_opt(due_at))
                    .bind(task)
                    .bind(run)
                    .bind(token);
                group.run(batch, "sqlite.release").await?;
                Ok(())
            })
        })
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
            })
            .fetch_all(&self.pool)
            .await
            .map_err(db("sqlite.list_runs"))?;
        rows.into_iter()
            .map(|row| {
                let get = |i: usize| -> Result<Option<String>> {
                    row.try_get(i).map_err(db("sqlite.list_runs"))
                };
                let required = |i: usize| -> Result<String> {
                    get(i)?.ok_or_else(|| Error::storage("a run row misses a column"))
                };
                Ok(RunSummary {
                    id: parse_id(&required(0)?)?,
                    person: PersonId::new(required(1)?),
                    state: codec::parse_state(&required(2)?)?,
                    created_at: codec::parse_ts(&required(3)?)?,
                    finished_at: get(4)?.as_deref().map(codec::parse_ts).transpose()?,
                })
            })
            .collect()
    }

    async fn put_snapshot(&self, task: TaskId, snapshot: &Snapshot) -> Result<bool> {
        let body = codec::to_json(snapshot)?;
        self.write("sqlite.put_snapshot", move |group| {
            Box::pin(async move {
                let mut batch = group.batch();
                batch
                    .push(q::SNAPSHOT_PUT)
                    .bind(task.to_string())
                    .bind(body);
                let done = group.run(batch, "sqlite.put_snapshot").await?;
                Ok(done.first().is_some_and(|d| d.affected == 1))
            })
        })
        .await
    }

    async fn snapshot(&self, task: TaskId) -> Result<Option<Snapshot>> {
        let body: Option<String> = sqlx::query_scalar(q::SNAPSHOT_GET)
            .bind(task.to_string())
            .fetch_optional(&self.pool)
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
        self.write("sqlite.upsert_accounts", move |group| {
            Box::pin(async move {
                let mut batch = group.batch();
                for (app, external_id, account) in rows {
                    batch
                        .push(q::ACCOUNT_UPSERT)
                        .bind(person.as_str())
                        .bind(app)
                        .bind(external_id)
                        .bind(account)
                        .bind(at.as_str());
                }
                group.run(batch, "sqlite.upsert_accounts").await?;
                Ok(())
            })
        })
        .await
    }

    async fn accounts(&self, person: &PersonId) -> Result<Vec<Account>> {
        let rows = sqlx::query(q::ACCOUNTS_GET)
            .bind(person.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(db("sqlite.accounts"))?;
        rows.into_iter()
            .map(|row| {
                let account: String = row.try_get(0).map_err(db("sqlite.accounts"))?;
                let first: String = row.try_get(1).map_err(db("sqlite.accounts"))?;
                let last: String = row.try_get(2).map_err(db("sqlite.accounts"))?;
                Ok(Account {
                    person: person.clone(),
                    account: codec::from_json("account", &account)?,
                    first_seen: codec::parse_ts(&first)?,
                    last_seen: codec::parse_ts(&last)?,
                })
            })
            .collect()
    }

    async fn cursor(&self, source: &str) -> Result<Option<Cursor>> {
        let cursor: Option<String> = sqlx::query_scalar(q::CURSOR_GET)
            .bind(source)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("sqlite.cursor"))?;
        Ok(cursor.map(Cursor))
    }

    async fn put_cursor(&self, source: &str, cursor: &Cursor) -> Result<()> {
        let (source, cursor) = (source.to_owned(), cursor.0.clone());
        self.write("sqlite.put_cursor", move |group| {
            Box::pin(async move {
                let mut batch = group.batch();
                batch.push(q::CURSOR_PUT).bind(source).bind(cursor);
                group.run(batch, "sqlite.put_cursor").await?;
                Ok(())
            })
        })
        .await
    }

    async fn append_audit(&self, events: Vec<AuditEvent>) -> Result<Vec<AuditEvent>> {
        if events.is_empty() {
            return Ok(events);
        }
        self.write("sqlite.append_audit", move |group| {
            Box::pin(async move {
                let mut batch = group.batch();
                let sealed = group.seal(&mut batch, events).await?;
                group.run(batch, "sqlite.append_audit").await?;
                group.advance(&sealed);
                Ok(sealed)
            })
        })
        .await
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
        let body_at = usize::from(query.run.is_none());
        rows.into_iter()
            .map(|row| {
                let body: String = row.try_get(body_at).map_err(db("sqlite.audit"))?;
                codec::decode_event(&body)
            })
            .collect()
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
        self.write("sqlite.record", move |group| {
            Box::pin(async move {
                let (mut last_seq, mut last_hash) = group.head().await?.clone();
                let mut fresh = Vec::new();
                for event in events {
                    if event.seq <= last_seq {
                        continue;
                    }
                    if event.seq != last_seq + 1 || event.prev_hash != last_hash {
                        return Err(codec::chain_gap(event.seq, last_seq));
                    }
                    last_seq = event.seq;
                    last_hash.clone_from(&event.hash);
                    fresh.push(event);
                }
                if fresh.is_empty() {
                    return Ok(());
                }
                let mut batch = group.batch();
                insert_events(&mut batch, &fresh)?;
                group.run(batch, "sqlite.record").await?;
                group.advance(&fresh);
                Ok(())
            })
        })
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
