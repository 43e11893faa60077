//! [`SqliteStore`]: the embedded default, one database file in WAL mode.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
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
use sqlx::{Connection, Row, SqlSafeStr, Sqlite, Transaction};
use tokio::sync::OwnedMutexGuard;
use uuid::Uuid;

use crate::codec::{self, AuditVerification, ChainCheck, db, int, ts, ts_opt};
use crate::sql::sqlite as q;

/// The table our migrations are recorded in (out of the way of a host's own `_sqlx_migrations`).
pub const SQLITE_MIGRATIONS_TABLE: &str = "offboard_schema_migrations";

/// The newest schema version this code knows.
pub const SQLITE_SCHEMA_VERSION: i64 = 1;

/// How many audit rows a verification reads at once.
const PAGE: i64 = 1000;

fn migrator() -> Migrator {
    let mut m = Migrator::with_migrations(vec![Migration::new(
        1,
        "init".into(),
        MigrationType::Simple,
        q::MIGRATION_0001.into_sql_str(),
        false,
    )]);
    m.dangerous_set_table_name(SQLITE_MIGRATIONS_TABLE);
    m
}

/// A durable [`Store`] and [`AuditSink`] in one SQLite file (WAL mode, `synchronous = FULL`).
///
/// # Behavior
/// - Every method is one transaction; writers start theirs with `BEGIN IMMEDIATE`, so
///   concurrent writers (tasks or processes sharing the file) serialise instead of failing
///   (within one process they queue on an async mutex first, rather than in SQLite's sleeping
///   busy handler),
///   and a commit's state and its sealed audit events are stored together or not at all.
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
    /// Serialises this process's writers before they ask SQLite for the write lock: SQLite's
    /// busy handler sleeps for milliseconds when the lock is taken, so contending connections
    /// would wait far longer than the microseconds a commit holds it. Other processes sharing
    /// the file still wait through `busy_timeout`.
    writer: Arc<tokio::sync::Mutex<()>>,
}

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

    /// Starts a write transaction (`BEGIN IMMEDIATE`) holding this process's writer lock;
    /// keep the guard alive (bind it to `_w`, not `_`) until the transaction ends.
    async fn begin(
        &self,
        op: &'static str,
    ) -> Result<(OwnedMutexGuard<()>, Transaction<'static, Sqlite>)> {
        let guard = self.writer.clone().lock_owned().await;
        let tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db(op))?;
        Ok((guard, tx))
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
        let (_w, mut tx) = self.begin("sqlite.create_run").await?;
        let inserted = sqlx::query(q::RUN_INSERT)
            .bind(run.id.to_string())
            .bind(run.person.id.to_string())
            .bind(codec::state_name(run.state))
            .bind(!run.state.is_terminal())
            .bind(ts(run.created_at))
            .bind(ts_opt(run.finished_at))
            .bind(codec::run_body(run)?)
            .execute(&mut *tx)
            .await
            .map_err(db("sqlite.create_run"))?;
        if inserted.rows_affected() == 0 {
            return Err(codec::run_exists(run.id));
        }
        for position in 0..run.tasks.len() {
            upsert_task(&mut tx, run, position, true).await?;
        }
        let sealed = append(&mut tx, events).await?;
        tx.commit().await.map_err(db("sqlite.create_run"))?;
        Ok(sealed)
    }

    async fn load_run(&self, id: RunId) -> Result<Option<Run>> {
        // One read transaction, so the run and its tasks are one snapshot.
        let mut tx = self.pool.begin().await.map_err(db("sqlite.load_run"))?;
        let Some(row) = sqlx::query(q::RUN_LOAD)
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db("sqlite.load_run"))?
        else {
            return Ok(None);
        };
        let version: i64 = row.try_get(0).map_err(db("sqlite.load_run"))?;
        let body: String = row.try_get(1).map_err(db("sqlite.load_run"))?;
        let tasks = sqlx::query(q::TASKS_LOAD)
            .bind(id.to_string())
            .fetch_all(&mut *tx)
            .await
            .map_err(db("sqlite.load_run"))?
            .into_iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<Vec<(String, Option<String>)>, sqlx::Error>>()
            .map_err(db("sqlite.load_run"))?;
        tx.commit().await.map_err(db("sqlite.load_run"))?;
        codec::decode_run(version, &body, tasks).map(Some)
    }

    async fn commit(&self, commit: Commit) -> Result<(u64, Vec<AuditEvent>)> {
        let run = &commit.run;
        let id = run.id;
        let (_w, mut tx) = self.begin("sqlite.commit").await?;
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
                upsert_task(&mut tx, run, position, false).await?;
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
        let sealed = append(&mut tx, commit.events).await?;
        tx.commit().await.map_err(db("sqlite.commit"))?;
        Ok((run.version + 1, sealed))
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
        let (_w, mut tx) = self.begin("sqlite.claim").await?;
        let rows = sqlx::query(q::CLAIM)
            .bind(&request.worker)
            .bind(ts(until))
            .bind(ts(now))
            .bind(i64::try_from(request.limit).unwrap_or(i64::MAX))
            .fetch_all(&mut *tx)
            .await
            .map_err(db("sqlite.claim"))?;
        tx.commit().await.map_err(db("sqlite.claim"))?;
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
        let (_w, mut tx) = self.begin("sqlite.renew").await?;
        let row = sqlx::query(q::RENEW)
            .bind(ts(until))
            .bind(lease.task.to_string())
            .bind(lease.run.to_string())
            .bind(lease.token.as_bytes().as_slice())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db("sqlite.renew"))?
            .ok_or_else(|| codec::renew_lost(lease))?;
        tx.commit().await.map_err(db("sqlite.renew"))?;
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
        let (_w, mut tx) = self.begin("sqlite.release").await?;
        sqlx::query(q::RELEASE)
            .bind(ts_opt(due_at))
            .bind(lease.task.to_string())
            .bind(lease.run.to_string())
            .bind(lease.token.as_bytes().as_slice())
            .execute(&mut *tx)
            .await
            .map_err(db("sqlite.release"))?;
        tx.commit().await.map_err(db("sqlite.release"))
    }

    async fn list_runs(&self, query: RunQuery) -> Result<Vec<RunSummary>> {
        let rows = sqlx::query(q::LIST_RUNS)
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
        let (_w, mut tx) = self.begin("sqlite.put_snapshot").await?;
        let done = sqlx::query(q::SNAPSHOT_PUT)
            .bind(task.to_string())
            .bind(codec::to_json(snapshot)?)
            .execute(&mut *tx)
            .await
            .map_err(db("sqlite.put_snapshot"))?;
        tx.commit().await.map_err(db("sqlite.put_snapshot"))?;
        Ok(done.rows_affected() == 1)
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
        let (_w, mut tx) = self.begin("sqlite.upsert_accounts").await?;
        for account in accounts {
            sqlx::query(q::ACCOUNT_UPSERT)
                .bind(person.to_string())
                .bind(account.app.to_string())
                .bind(&account.external_id)
                .bind(codec::to_json(account)?)
                .bind(ts(at))
                .execute(&mut *tx)
                .await
                .map_err(db("sqlite.upsert_accounts"))?;
        }
        tx.commit().await.map_err(db("sqlite.upsert_accounts"))
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
        let (_w, mut tx) = self.begin("sqlite.put_cursor").await?;
        sqlx::query(q::CURSOR_PUT)
            .bind(source)
            .bind(&cursor.0)
            .execute(&mut *tx)
            .await
            .map_err(db("sqlite.put_cursor"))?;
        tx.commit().await.map_err(db("sqlite.put_cursor"))
    }

    async fn append_audit(&self, events: Vec<AuditEvent>) -> Result<Vec<AuditEvent>> {
        if events.is_empty() {
            return Ok(events);
        }
        let (_w, mut tx) = self.begin("sqlite.append_audit").await?;
        let sealed = append(&mut tx, events).await?;
        tx.commit().await.map_err(db("sqlite.append_audit"))?;
        Ok(sealed)
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
        let (_w, mut tx) = self.begin("sqlite.record").await?;
        let (mut last_seq, mut last_hash) = head(&mut tx).await?;
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
            fresh.push(event.clone());
        }
        insert_events(&mut tx, &fresh).await?;
        tx.commit().await.map_err(db("sqlite.record"))
    }
}
