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
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Connection, Row, SqlSafeStr};
use uuid::Uuid;

use crate::codec::{self, AuditVerification, ChainCheck, db, int, ts, ts_opt};
use crate::sql::sqlite as q;

/// The table our migrations are recorded in (out of the way of a host's own `_sqlx_migrations`).
pub const SQLITE_MIGRATIONS_TABLE: &str = "offboard_schema_migrations";

/// The newest schema version this code knows.
pub const SQLITE_SCHEMA_VERSION: i64 = 2;

/// How many audit rows a verification reads at once.
const PAGE: i64 = 1000;

fn migrator() -> Migrator {
    let mut m = Migrator::with_migrations(vec![
        Migration::new(
            1,
            "init".into(),
            MigrationType::Simple,
            q::MIGRATION_0001.into_sql_str(),
            false,
        ),
        Migration::new(
            2,
            "open_runs".into(),
            MigrationType::Simple,
            q::MIGRATION_0002.into_sql_str(),
            false,
        ),
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
    pool: SqlitePool,
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
    dyn for<'c> FnOnce(
            std::result::Result<&'c mut SqliteConnection, &'c GroupFailure>,
        ) -> BoxFuture<'c, Ran>
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
#[derive(Default)]
struct GroupCommit {
    queue: std::sync::Mutex<Vec<Job>>,
    lock: tokio::sync::Mutex<()>,
}

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
            .connect_with(options)
            .await
            .map_err(db("sqlite.open"))?;
        let store = Self {
            pool,
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

    /// Copies the write-ahead log into the database file and truncates the log
    /// (`PRAGMA wal_checkpoint(TRUNCATE)`), e.g. before measuring or copying the file. SQLite
    /// also checkpoints on its own; calling this is never needed for durability.
    ///
    /// # Errors
    /// `Storage` when the checkpoint fails.
    pub async fn checkpoint(&self) -> Result<()> {
        let _w = self.writer.lock.lock().await;
        sqlx::query(q::CHECKPOINT)
            .execute(&self.pool)
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
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        let (tell, told) = tokio::sync::oneshot::channel::<Result<T>>();
        let job: Job = Box::new(move |conn| {
            Box::pin(async move {
                let conn = match conn {
                    Ok(conn) => conn,
                    Err(failure) => {
                        let _ = tell.send(Err(group_failed(op, failure)));
                        return Ran {
                            finish: Box::new(|_| {}),
                            broken: true,
                        };
                    }
                };
                let (result, broken) = match sqlx::query(q::SAVEPOINT).execute(&mut *conn).await {
                    Err(e) => (Err(db(op)(e)), true),
                    Ok(_) => {
                        let result = write(&mut *conn).await;
                        let undo = if result.is_ok() {
                            sqlx::query(q::SAVEPOINT_RELEASE).execute(&mut *conn).await
                        } else {
                            sqlx::query(q::SAVEPOINT_ROLLBACK)
                                .execute(&mut *conn)
                                .await
                                .and(sqlx::query(q::SAVEPOINT_RELEASE).execute(&mut *conn).await)
                        };
                        (result, undo.is_err())
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
        let mut tx = match self.pool.begin_with("BEGIN IMMEDIATE").await {
            Ok(tx) => tx,
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
            let r = job(Ok(&mut tx)).await;
            broken = r.broken;
            ran.push(r);
            if broken {
                break;
            }
        }
        if broken {
            drop(tx);
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
        match tx.commit().await {
            Ok(()) => {
                for r in ran {
                    (r.finish)(None);
                }
            }
            Err(e) => fail_all(ran, failure(op, e)),
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

/// Inserts already-sealed events and moves the chain head to the last one.
async fn insert_events(conn: &mut SqliteConnection, events: &[AuditEvent]) -> Result<()> {
    for e in events {
        sqlx::query(q::AUDIT_INSERT)
            .bind(e.seq as i64)
            .bind(e.run.map(|r| r.to_string()))
            .bind(ts(e.at))
            .bind(&e.hash)
            .bind(codec::event_body(e)?)
            .execute(&mut *conn)
            .await
            .map_err(db("sqlite.audit_insert"))?;
    }
    if let Some(last) = events.last() {
        sqlx::query(q::AUDIT_HEAD_SET)
            .bind(last.seq as i64)
            .bind(&last.hash)
            .execute(&mut *conn)
            .await
            .map_err(db("sqlite.audit_head"))?;
    }
    Ok(())
}

/// Seals `events` after the stored chain head and stores them (inside the caller's
/// transaction).
async fn append(
    conn: &mut SqliteConnection,
    mut events: Vec<AuditEvent>,
) -> Result<Vec<AuditEvent>> {
    if events.is_empty() {
        return Ok(events);
    }
    let (mut seq, mut prev) = head(conn).await?;
    for e in &mut events {
        seq += 1;
        e.seal(seq, &prev);
        prev.clone_from(&e.hash);
    }
    insert_events(conn, &events).await?;
    Ok(events)
}

async fn upsert_task(
    conn: &mut SqliteConnection,
    run: &Run,
    position: usize,
    insert_only: bool,
) -> Result<()> {
    let task = &run.tasks[position];
    sqlx::query(if insert_only {
        q::TASK_INSERT
    } else {
        q::TASK_UPSERT
    })
    .bind(task.id.to_string())
    .bind(run.id.to_string())
    .bind(position as i64)
    .bind(codec::task_body(task)?)
    .bind(ts_opt(task.due_at))
    .execute(&mut *conn)
    .await
    .map_err(db("sqlite.write_task"))?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_run(&self, run: &Run, events: Vec<AuditEvent>) -> Result<Vec<AuditEvent>> {
        let run = run.clone();
        self.write("sqlite.create_run", move |tx| {
            Box::pin(async move {
                let inserted = sqlx::query(q::RUN_INSERT)
                    .bind(run.id.to_string())
                    .bind(run.person.id.to_string())
                    .bind(codec::state_name(run.state))
                    .bind(!run.state.is_terminal())
                    .bind(ts(run.created_at))
                    .bind(ts_opt(run.finished_at))
                    .bind(codec::run_body(&run)?)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("sqlite.create_run"))?;
                if inserted.rows_affected() == 0 {
                    return Err(codec::run_exists(run.id));
                }
                for position in 0..run.tasks.len() {
                    upsert_task(tx, &run, position, true).await?;
                }
                append(tx, events).await
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
        self.write("sqlite.commit", move |tx| {
            Box::pin(async move {
                let run = &commit.run;
                let id = run.id;
                let updated = sqlx::query(q::RUN_UPDATE)
                    .bind(run.person.id.to_string())
                    .bind(codec::state_name(run.state))
                    .bind(!run.state.is_terminal())
                    .bind(ts(run.created_at))
                    .bind(ts_opt(run.finished_at))
                    .bind(codec::run_body(run)?)
                    .bind(id.to_string())
                    .bind(run.version as i64)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("sqlite.commit"))?;
                if updated.rows_affected() == 0 {
                    let stored: Option<i64> = sqlx::query_scalar(q::RUN_VERSION)
                        .bind(id.to_string())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db("sqlite.commit"))?;
                    return Err(match stored {
                        None => Error::not_found(format!("run {id} does not exist")),
                        Some(v) => codec::version_conflict(id, v, run.version),
                    });
                }
                if let Some(lease) = &commit.lease {
                    let held = lease.run == id
                        && sqlx::query(q::LEASE_HELD)
                            .bind(lease.task.to_string())
                            .bind(id.to_string())
                            .bind(lease.token.as_bytes().as_slice())
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(db("sqlite.commit"))?
                            .is_some();
                    if !held {
                        return Err(codec::lease_lost(id, lease));
                    }
                }
                let mut written = Vec::with_capacity(commit.changed_tasks.len());
                for task in &commit.changed_tasks {
                    if written.contains(task) {
                        continue;
                    }
                    if let Some(position) = run.tasks.iter().position(|t| t.id == *task) {
                        upsert_task(tx, run, position, false).await?;
                        written.push(*task);
                    }
                }
                if commit.release
                    && let Some(lease) = &commit.lease
                {
                    sqlx::query(q::LEASE_CLEAR)
                        .bind(lease.task.to_string())
                        .bind(lease.token.as_bytes().as_slice())
                        .execute(&mut *tx)
                        .await
                        .map_err(db("sqlite.commit"))?;
                }
                let sealed = append(tx, commit.events).await?;
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
            .write("sqlite.claim", move |tx| {
                Box::pin(async move {
                    sqlx::query(q::CLAIM)
                        .bind(worker)
                        .bind(ts(until))
                        .bind(ts(now))
                        .bind(limit)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(db("sqlite.claim"))
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
            .write("sqlite.renew", move |tx| {
                Box::pin(async move {
                    sqlx::query(q::RENEW)
                        .bind(ts(until))
                        .bind(held.task.to_string())
                        .bind(held.run.to_string())
                        .bind(held.token.as_bytes().as_slice())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db("sqlite.renew"))?
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
        self.write("sqlite.release", move |tx| {
            Box::pin(async move {
                sqlx::query(q::RELEASE)
                    .bind(ts_opt(due_at))
                    .bind(task)
                    .bind(run)
                    .bind(token)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("sqlite.release"))?;
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
        self.write("sqlite.put_snapshot", move |tx| {
            Box::pin(async move {
                let done = sqlx::query(q::SNAPSHOT_PUT)
                    .bind(task.to_string())
                    .bind(body)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("sqlite.put_snapshot"))?;
                Ok(done.rows_affected() == 1)
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
        self.write("sqlite.upsert_accounts", move |tx| {
            Box::pin(async move {
                for (app, external_id, account) in rows {
                    sqlx::query(q::ACCOUNT_UPSERT)
                        .bind(&person)
                        .bind(app)
                        .bind(external_id)
                        .bind(account)
                        .bind(&at)
                        .execute(&mut *tx)
                        .await
                        .map_err(db("sqlite.upsert_accounts"))?;
                }
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
        self.write("sqlite.put_cursor", move |tx| {
            Box::pin(async move {
                sqlx::query(q::CURSOR_PUT)
                    .bind(source)
                    .bind(cursor)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("sqlite.put_cursor"))?;
                Ok(())
            })
        })
        .await
    }

    async fn append_audit(&self, events: Vec<AuditEvent>) -> Result<Vec<AuditEvent>> {
        if events.is_empty() {
            return Ok(events);
        }
        self.write("sqlite.append_audit", move |tx| {
            Box::pin(append(tx, events))
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
        self.write("sqlite.record", move |tx| {
            Box::pin(async move {
                let (mut last_seq, mut last_hash) = head(tx).await?;
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
                insert_events(tx, &fresh).await
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
