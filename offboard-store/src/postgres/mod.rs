//! [`PostgresStore`]: many workers on many machines share one PostgreSQL database.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use offboard_core::audit::{PersonalValues, Prepared};
use offboard_core::connector::Snapshot;
use offboard_core::store::{
    AuditQuery, ClaimRequest, Commit, ErasureReport, Lease, Record, RecordSwap, RunQuery,
    RunSummary, check_record_key, erasure, record_value_json,
};
use offboard_core::{
    Account, AccountRef, AuditEvent, AuditSink, Cursor, Error, PersonId, Result, Run, RunId, Store,
    TaskId,
};
use sqlx::Row;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use uuid::Uuid;

use crate::codec::{self, AuditVerification, db, ts, ts_opt};
use crate::plan::{CommitPlan, Step};
use crate::rows::{self, SqlRow};
use crate::sql::postgres as q;
use group::Group;
use offboard_core::checkpoint::{ChainAgainstCheckpoints, Checkpoint, CheckpointVerifier};

/// The schema every table of ours lives in (out of the host's way).
pub const POSTGRES_SCHEMA: &str = "offboard";

mod group;

/// The table our migrations are recorded in, inside [`POSTGRES_SCHEMA`].
pub const POSTGRES_MIGRATIONS_TABLE: &str = "offboard.schema_migrations";

/// The newest schema version this code knows.
pub const POSTGRES_SCHEMA_VERSION: i64 = 7;

fn migrator() -> Migrator {
    let mut m = codec::migrator(&[
        (1, "init", q::MIGRATION_0001),
        (2, "open_runs", q::MIGRATION_0002),
        (3, "one_open_run", q::MIGRATION_0003),
        (4, "records", q::MIGRATION_0004),
        (5, "no_truncate", q::MIGRATION_0005),
        (6, "personal", q::MIGRATION_0006),
        (7, "rate_budget", q::MIGRATION_0007),
    ]);
    m.dangerous_set_table_name(POSTGRES_MIGRATIONS_TABLE);
    m.create_schema(POSTGRES_SCHEMA);
    m
}

/// A durable [`Store`] and [`AuditSink`] on PostgreSQL, for many workers (engines in many
/// processes) sharing one database.
///
/// # Behavior
/// - Everything lives in schema `offboard`, migrations included
///   ([`POSTGRES_MIGRATIONS_TABLE`]); [`PostgresStore::run_migrations`] takes sqlx's advisory
///   lock, so processes starting together migrate once.
/// - Every write is one transaction (read committed). A commit updates the run row only at
///   the expected version, locks the leased task row to check its token, writes only the
///   changed tasks, and seals its audit events after the chain head, whose row it locks: all
///   appends are serialised and the chain never forks. Concurrent commits of one process
///   share a transaction (a group commit, see [`PostgresStore::with_group_commit`]), each
///   answered as if it had run alone.
/// - Claims are one statement: due tasks of open runs whose lease is free or expired, earliest
///   first, `FOR UPDATE SKIP LOCKED`, each given a fresh `gen_random_uuid()` token.
/// - Delegates' records (`offboard.records`): an insert is `ON CONFLICT DO NOTHING` (a racing
///   insert waits for the first and then reads it), a swap one `UPDATE` at the expected
///   version; a refused swap reads the record after the refusal.
/// - Times are fixed-width RFC 3339 text (nanoseconds, collation "C"): exact round trips.
/// - Due tasks and lease expiry go by the database's clock (`now()`), not the engines' (see
///   [`PostgresClock`] and the clocks of [`Store`]): an engine whose host clock is minutes
///   off neither takes a live lease nor leaves an expired one sitting.
/// - Neither `Debug` nor any error shows the connection URL or its password.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    clock: PostgresClock,
    /// This process's commits waiting to share a transaction (shared by clones).
    group: std::sync::Arc<Group>,
}

/// Whose clock a [`PostgresStore`] decides due tasks and lease expiry by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PostgresClock {
    /// The database's `now()` (the default): every engine sharing the database agrees on it,
    /// whatever its host's clock says. A claim hands out tasks due and leases expired by
    /// `now()`, and a lease claimed, renewed or taken with a commit expires at `now()` plus
    /// the length the engine asked for.
    #[default]
    Database,
    /// The `now` each call brings, as [`crate::SqliteStore`] does: only where every engine
    /// reads one clock (one host), or to run the store conformance suite, whose claims work on
    /// a timeline of their own.
    Caller,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &POSTGRES_SCHEMA)
            .field("clock", &self.clock)
            .field("group_commit", &self.group.max())
            .field("connections", &self.pool.size())
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db`) with a pool
    /// of up to 8 connections and brings the schema up to date.
    ///
    /// # Errors
    /// `Config` for a malformed URL (the URL is not repeated in the error), an existing
    /// `offboard` schema that is not ours, or a schema newer than this code; `Unavailable`
    /// when the server cannot be reached.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with_pool_size(url, 8).await
    }

    /// As [`PostgresStore::connect`], with up to `connections` pooled connections.
    ///
    /// # Errors
    /// As [`PostgresStore::connect`].
    pub async fn connect_with_pool_size(url: &str, connections: u32) -> Result<Self> {
        let options = PgConnectOptions::from_str(url).map_err(|_| {
            Error::config(
                "postgres_url",
                "not a valid PostgreSQL URL (postgres://user:password@host:port/database)",
            )
        })?;
        let pool = PgPoolOptions::new()
            .max_connections(connections.max(1))
            .connect_with(options)
            .await
            .map_err(|e| {
                Error::new(
                    offboard_core::ErrorKind::Unavailable,
                    "connecting to PostgreSQL failed",
                )
                .with_operation("postgres.connect")
                .with_source(e)
            })?;
        Self::from_pool(pool).await
    }

    /// Uses a host's pool (its connections, its TLS and credentials) and brings the schema up
    /// to date.
    ///
    /// # Errors
    /// As [`PostgresStore::run_migrations`].
    pub async fn from_pool(pool: PgPool) -> Result<Self> {
        let store = Self {
            pool,
            clock: PostgresClock::default(),
            group: std::sync::Arc::new(Group::new(group::GROUP_MAX)),
        };
        store.run_migrations().await?;
        Ok(store)
    }

    /// Lets up to `commits` of this store's (and its clones') concurrent commits share one
    /// transaction (default 64; `1`: each commit alone). Every fleet process's commits lock
    /// the audit chain's head in turn: a group locks it once, so more commits a second get
    /// through. Each commit is answered as if it had run alone: a refused commit changes
    /// nothing and the others stand. A store's clones share its queue; call this before
    /// cloning.
    pub fn with_group_commit(mut self, commits: usize) -> Self {
        self.group = std::sync::Arc::new(Group::new(commits));
        self
    }

    /// Decides due tasks and lease expiry by `clock` (default [`PostgresClock::Database`]).
    pub fn with_clock(mut self, clock: PostgresClock) -> Self {
        self.clock = clock;
        self
    }

    /// A lease's expiry as the statements take it: the caller's `until` (its clock), or
    /// `None` and the length from the database's `now()` in microseconds.
    fn expiry(&self, until: DateTime<Utc>, length: chrono::TimeDelta) -> (Option<String>, i64) {
        match self.clock {
            PostgresClock::Caller => (Some(ts(until)), 0),
            PostgresClock::Database => (None, length.num_microseconds().unwrap_or(i64::MAX).max(0)),
        }
    }

    /// The pool, e.g. for a host that shares it.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies the migrations this code has and the database lacks.
    ///
    /// # Errors
    /// `Config` when schema `offboard` exists but is not ours (it is left alone) or is newer
    /// than this code; `Storage` when a migration fails (it is rolled back).
    pub async fn run_migrations(&self) -> Result<()> {
        let tables: Vec<String> = sqlx::query_scalar(q::SCHEMA_TABLES)
            .fetch_all(&self.pool)
            .await
            .map_err(db("postgres.run_migrations"))?;
        if tables.iter().any(|t| t == "schema_migrations") {
            let version: Option<i64> = sqlx::query_scalar(q::SCHEMA_VERSION)
                .fetch_one(&self.pool)
                .await
                .map_err(db("postgres.run_migrations"))?;
            codec::check_schema_version(version, POSTGRES_SCHEMA_VERSION)?;
        } else if !tables.is_empty() {
            return Err(Error::config(
                "postgres_schema",
                format!(
                    "schema {POSTGRES_SCHEMA} holds tables that are not offboard's ({}) and no \
                     {POSTGRES_MIGRATIONS_TABLE}; it was left untouched",
                    codec::some_tables(&tables)
                ),
            ));
        }
        migrator().run(&self.pool).await.map_err(|e| {
            Error::storage("migrating the PostgreSQL database failed")
                .with_operation("postgres.run_migrations")
                .with_source(e)
        })
    }

    /// Reads the whole audit trail in pages and checks its hash chain and each row's indexed
    /// columns against its hashed body, naming the first altered (and the column, when a
    /// column disagrees with its body), inserted or missing event (also one cut off the end: the chain head row
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
        const OP: &str = "postgres.audit_head";
        let row = sqlx::query(q::AUDIT_HEAD_READ)
            .fetch_one(&self.pool)
            .await
            .map_err(db(OP))?;
        rows::head(&row, OP)
    }

    /// Reads the trail in pages through the chain check (and the checkpoint check, if any).
    async fn verify_trail(
        &self,
        against: Option<&mut ChainAgainstCheckpoints>,
    ) -> Result<AuditVerification> {
        const OP: &str = "postgres.verify_audit";
        let page = |after: i64| {
            sqlx::query(q::AUDIT_VERIFY)
                .bind(after)
                .bind(Some(rows::AUDIT_PAGE))
                .fetch_all(&self.pool)
        };
        let check = match rows::check_trail(page, against, OP).await? {
            Ok(check) => check,
            Err(failed) => return Ok(failed),
        };
        let (head_seq, head_hash) = self.audit_head().await?;
        Ok(check.finished(head_seq, &head_hash))
    }

    /// Ids of the runs created in `[since, until)`, oldest first, after `after` (the key of
    /// the previous page's last run), at most `limit`: what period reports page through.
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
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(db("postgres.runs_page"))?;
        rows.iter()
            .map(|row| rows::page_entry(row, "postgres.runs_page"))
            .collect()
    }

    async fn begin(&self, op: &'static str) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        self.pool.begin().await.map_err(db(op))
    }
}

/// The executor of a `CommitPlan` (`plan.rs`) on PostgreSQL: its statements one after another
/// in the commit's transaction.
impl PostgresStore {
    /// The run's update at the expected version; a moved version (or a run that does not
    /// exist) is refused, naming the version stored: the inner error, apart from the
    /// database's own (the outer one).
    async fn update_run(&self, tx: &mut PgConnection, plan: &CommitPlan) -> Result<Result<()>> {
        let run = &plan.run;
        let updated = sqlx::query(q::RUN_UPDATE)
            .bind(&run.person)
            .bind(&run.state)
            .bind(run.open)
            .bind(&run.created_at)
            .bind(&run.finished_at)
            .bind(&run.body)
            .bind(&plan.run_id)
            .bind(plan.expected as i64)
            .execute(&mut *tx)
            .await
            .map_err(db("postgres.commit"))?;
        if updated.rows_affected() > 0 {
            return Ok(Ok(()));
        }
        let stored: Option<i64> = sqlx::query_scalar(q::RUN_VERSION)
            .bind(&plan.run_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db("postgres.commit"))?;
        Ok(Err(match stored {
            None => Error::not_found(format!("run {} does not exist", plan.id)),
            Some(v) => codec::version_conflict(plan.id, v, plan.expected),
        }))
    }

    /// Runs `plan`'s statements (the run's update and its steps) in `tx`: the outer error is
    /// the database's, the inner one the plan's refusal (a moved version, a lost lease, a
    /// taken task), after which the transaction holds part of the plan and must be undone.
    async fn write_plan(&self, tx: &mut PgConnection, plan: &CommitPlan) -> Result<Result<()>> {
        if let Err(refused) = self.update_run(tx, plan).await? {
            return Ok(Err(refused));
        }
        for step in &plan.steps {
            let found = self.run_step(tx, plan, step).await?;
            if let Err(refused) = plan.check(step, found) {
                return Ok(Err(refused));
            }
        }
        Ok(Ok(()))
    }

    /// Runs one step of `plan`: whether its statement changed (a write) or returned (a read)
    /// a row.
    async fn run_step(
        &self,
        tx: &mut PgConnection,
        plan: &CommitPlan,
        step: &Step,
    ) -> Result<bool> {
        let run_id = plan.run_id.as_str();
        let query = match step {
            Step::LeaseHeld(lease) => {
                let row = sqlx::query(q::LEASE_HELD)
                    .bind(&lease.task_id)
                    .bind(run_id)
                    .bind(lease.token)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db("postgres.commit"))?;
                return Ok(row.is_some());
            }
            Step::LeasedTask(lease, row) => sqlx::query(q::TASK_UPDATE_LEASED)
                .bind(&lease.task_id)
                .bind(run_id)
                .bind(lease.token)
                .bind(&row.body)
                .bind(&row.due_at)
                .bind(lease.release),
            Step::Task(row) => sqlx::query(q::TASK_UPSERT)
                .bind(&row.id)
                .bind(run_id)
                .bind(
                    i32::try_from(row.position)
                        .map_err(|_| Error::invalid_input("too many tasks"))?,
                )
                .bind(&row.body)
                .bind(&row.due_at),
            Step::LeaseClear(lease) => sqlx::query(q::LEASE_CLEAR)
                .bind(&lease.task_id)
                .bind(lease.token),
            Step::Snapshot(task, snapshot) => {
                sqlx::query(q::SNAPSHOT_PUT).bind(task).bind(snapshot)
            }
            Step::Claim(claim) => {
                // The caller made the lease on its clock: from the database's now it lasts as
                // long as from the caller's (`until` as it is when the caller did not say its
                // now).
                let (stored_until, micros) = match plan.now {
                    Some(now) => self.expiry(claim.until, claim.until - now),
                    None => (Some(ts(claim.until)), 0),
                };
                sqlx::query(q::TASK_CLAIM_WITH_COMMIT)
                    .bind(&claim.task_id)
                    .bind(run_id)
                    .bind(&claim.worker)
                    .bind(claim.token)
                    .bind(stored_until)
                    .bind(micros)
            }
        };
        let done = query
            .execute(&mut *tx)
            .await
            .map_err(db("postgres.commit"))?;
        Ok(done.rows_affected() == 1)
    }
}

/// A new run's rows, encoded before any statement runs.
pub(super) struct NewRun {
    id: RunId,
    run_id: String,
    person: offboard_core::Person,
    state: String,
    open: bool,
    created_at: String,
    finished_at: Option<String>,
    body: String,
    task_ids: Vec<String>,
    positions: Vec<i32>,
    task_bodies: Vec<String>,
    due: Vec<Option<String>>,
}

impl NewRun {
    /// Encodes `run` and its tasks.
    ///
    /// # Errors
    /// Encoding errors; over `i32::MAX` tasks.
    fn new(run: &Run) -> Result<Self> {
        let n = run.tasks.len();
        let (mut task_ids, mut positions) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut task_bodies, mut due) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for (i, task) in run.tasks.iter().enumerate() {
            task_ids.push(task.id.to_string());
            positions.push(i32::try_from(i).map_err(|_| Error::invalid_input("too many tasks"))?);
            task_bodies.push(codec::task_body(task)?);
            due.push(ts_opt(task.due_at));
        }
        Ok(Self {
            id: run.id,
            run_id: run.id.to_string(),
            person: run.person.clone(),
            state: codec::state_name(run.state),
            open: !run.state.is_terminal(),
            created_at: ts(run.created_at),
            finished_at: ts_opt(run.finished_at),
            body: codec::run_body(&mut run.clone())?,
            task_ids,
            positions,
            task_bodies,
            due,
        })
    }
}

/// What one caller asks to store with its events: a new run, or a commit.
pub(super) enum Write {
    /// [`Store::create_run`].
    Create(NewRun),
    /// [`Store::commit`].
    Commit(CommitPlan),
}

impl Write {
    /// The run's id as stored: the order in which a group locks rows.
    pub(super) fn run_id(&self) -> &str {
        match self {
            Self::Create(run) => &run.run_id,
            Self::Commit(plan) => &plan.run_id,
        }
    }

    /// The run's version once the write stands.
    pub(super) fn next_version(&self) -> u64 {
        match self {
            Self::Create(_) => 1,
            Self::Commit(plan) => plan.next_version(),
        }
    }

    /// The operation named in its errors.
    pub(super) fn operation(&self) -> &'static str {
        match self {
            Self::Create(_) => "postgres.create_run",
            Self::Commit(_) => "postgres.commit",
        }
    }
}

impl PostgresStore {
    /// Runs `write`'s statements in `tx` (before its events): the outer error is the
    /// database's, the inner one the write's refusal, after which the transaction holds part
    /// of the write and must be undone.
    pub(super) async fn write_rows(
        &self,
        tx: &mut PgConnection,
        write: &Write,
    ) -> Result<Result<()>> {
        match write {
            Write::Commit(plan) => self.write_plan(tx, plan).await,
            Write::Create(run) => write_new_run(tx, run).await,
        }
    }
}

/// Inserts a new run and its tasks; a run of that id, or an open run of the person, refuses
/// it (the inner error).
async fn write_new_run(tx: &mut PgConnection, run: &NewRun) -> Result<Result<()>> {
    let inserted = sqlx::query(q::RUN_INSERT)
        .bind(&run.run_id)
        .bind(run.person.id.to_string())
        .bind(&run.state)
        .bind(run.open)
        .bind(&run.created_at)
        .bind(&run.finished_at)
        .bind(&run.body)
        .execute(&mut *tx)
        .await
        .map_err(db("postgres.create_run"))?;
    if inserted.rows_affected() == 0 {
        return Ok(Err(codec::run_exists(run.id, &run.person)));
    }
    if !run.task_ids.is_empty() {
        sqlx::query(q::TASK_INSERT)
            .bind(&run.task_ids)
            .bind(vec![run.run_id.clone(); run.task_ids.len()])
            .bind(&run.positions)
            .bind(&run.task_bodies)
            .bind(&run.due)
            .execute(&mut *tx)
            .await
            .map_err(db("postgres.create_run"))?;
    }
    Ok(Ok(()))
}

fn limit(n: usize) -> Option<i64> {
    (n > 0).then(|| i64::try_from(n).unwrap_or(i64::MAX))
}

/// One audit event as inserted: its columns and its personal values' side-table row.
struct EventRow {
    seq: i64,
    run: Option<String>,
    at: String,
    hash: String,
    body: String,
    personal: Option<codec::PersonalRow>,
}

impl EventRow {
    /// The row of a sealed event, its stored `body` and personal values given.
    fn new(e: &AuditEvent, body: String, personal: Option<&PersonalValues>) -> Result<Self> {
        Ok(Self {
            seq: i64::try_from(e.seq).map_err(|_| Error::internal("seq out of range"))?,
            run: e.run.map(|r| r.to_string()),
            at: ts(e.at),
            hash: e.hash.clone(),
            body,
            personal: personal.map(|values| codec::personal_row(e, values)),
        })
    }

    /// The row of an event sealed elsewhere (a mirrored chain).
    fn mirrored(e: &AuditEvent) -> Result<Self> {
        let (body, values) = codec::event_body(e)?;
        Self::new(e, body, values.as_ref())
    }

    /// The row of an event prepared and sealed here.
    fn prepared(p: &Prepared) -> Result<Self> {
        Self::new(p.event(), p.body()?, p.personal())
    }
}

/// Inserts sealed events and moves the chain head to the last one.
async fn insert_events(conn: &mut PgConnection, events: Vec<EventRow>) -> Result<()> {
    let Some(last) = events.last() else {
        return Ok(());
    };
    let (last_seq, last_hash) = (last.seq, last.hash.clone());
    let n = events.len();
    let (mut seqs, mut runs, mut ats) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut hashes, mut bodies, mut personal) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::new());
    for e in events {
        seqs.push(e.seq);
        runs.push(e.run);
        ats.push(e.at);
        hashes.push(e.hash);
        bodies.push(e.body);
        personal.extend(e.personal);
    }
    sqlx::query(q::AUDIT_INSERT)
        .bind(seqs)
        .bind(runs)
        .bind(ats)
        .bind(hashes)
        .bind(bodies)
        .bind(last_seq)
        .bind(&last_hash)
        .execute(&mut *conn)
        .await
        .map_err(db("postgres.audit_insert"))?;
    if !personal.is_empty() {
        let n = personal.len();
        let (mut seqs, mut runs, mut people) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut salts, mut vals) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for (seq, run, person, salt, values) in personal {
            seqs.push(seq);
            runs.push(run);
            people.push(person);
            salts.push(salt);
            vals.push(values);
        }
        sqlx::query(q::AUDIT_PERSONAL_INSERT)
            .bind(seqs)
            .bind(runs)
            .bind(people)
            .bind(salts)
            .bind(vals)
            .execute(&mut *conn)
            .await
            .map_err(db("postgres.audit_personal_insert"))?;
    }
    Ok(())
}

/// Locks the chain head and reads it.
async fn lock_head(conn: &mut PgConnection) -> Result<(u64, String)> {
    let row = sqlx::query(q::AUDIT_HEAD)
        .fetch_one(&mut *conn)
        .await
        .map_err(db("postgres.audit_head"))?;
    rows::head(&row, "postgres.audit_head")
}

/// Salts, encodes and digests `events` for [`append`], before any transaction: every fleet
/// process's commits wait for the one chain head, so the head is held only while links are
/// hashed and the rows written.
fn prepare(events: Vec<AuditEvent>) -> Result<Vec<Prepared>> {
    events.into_iter().map(Prepared::new).collect()
}

/// Seals `events` after the chain head (locked until the caller's transaction ends) and stores
/// them.
async fn append(conn: &mut PgConnection, mut events: Vec<Prepared>) -> Result<Vec<AuditEvent>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let (mut seq, mut prev) = lock_head(conn).await?;
    for e in &mut events {
        seq += 1;
        e.seal(seq, &prev);
        prev.clone_from(&e.event().hash);
    }
    let rows = events
        .iter()
        .map(EventRow::prepared)
        .collect::<Result<Vec<_>>>()?;
    insert_events(conn, rows).await?;
    Ok(events.into_iter().map(Prepared::into_event).collect())
}

#[async_trait]
impl Store for PostgresStore {
    async fn create_run(&self, run: &Run, events: Vec<AuditEvent>) -> Result<Vec<AuditEvent>> {
        let created = NewRun::new(run)?;
        let events = prepare(events)?;
        Ok(self.group_write(Write::Create(created), events).await?.1)
    }

    async fn load_run(&self, id: RunId) -> Result<Option<Run>> {
        Ok(self.load_runs(&[id]).await?.pop())
    }

    async fn load_runs(&self, ids: &[RunId]) -> Result<Vec<Run>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
        // Repeatable read: the runs and their tasks come from one snapshot.
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(db("postgres.load_runs"))?;
        let runs = sqlx::query(q::RUNS_LOAD)
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await
            .map_err(db("postgres.load_runs"))?;
        let task_rows = sqlx::query(q::RUNS_TASKS_LOAD)
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await
            .map_err(db("postgres.load_runs"))?;
        tx.commit().await.map_err(db("postgres.load_runs"))?;
        let mut tasks: std::collections::HashMap<String, Vec<(String, Option<String>)>> =
            std::collections::HashMap::new();
        for row in task_rows {
            let run: String = row.try_get(0).map_err(db("postgres.load_runs"))?;
            let body: String = row.try_get(1).map_err(db("postgres.load_runs"))?;
            let due: Option<String> = row.try_get(2).map_err(db("postgres.load_runs"))?;
            tasks.entry(run).or_default().push((body, due));
        }
        runs.into_iter()
            .map(|row| {
                let id: String = row.try_get(0).map_err(db("postgres.load_runs"))?;
                let version: i64 = row.try_get(1).map_err(db("postgres.load_runs"))?;
                let body: String = row.try_get(2).map_err(db("postgres.load_runs"))?;
                codec::decode_run(version, &body, tasks.remove(&id).unwrap_or_default())
            })
            .collect()
    }

    async fn commit(&self, commit: Commit) -> Result<(u64, Vec<AuditEvent>)> {
        let mut plan = CommitPlan::new(commit)?;
        let events = prepare(std::mem::take(&mut plan.events))?;
        self.group_write(Write::Commit(plan), events).await
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
        let (stored_until, micros) = self.expiry(until, until - now);
        let rows = sqlx::query(q::CLAIM)
            .bind(&request.worker)
            .bind(stored_until)
            .bind((self.clock == PostgresClock::Caller).then(|| ts(now)))
            .bind(i64::try_from(request.limit).unwrap_or(i64::MAX))
            .bind(micros)
            .fetch_all(&self.pool)
            .await
            .map_err(db("postgres.claim"))?;
        const OP: &str = "postgres.claim";
        let leases = rows
            .iter()
            .map(|row| {
                let token: Uuid = row.col(2, OP)?;
                let claims: i32 = row.col(3, OP)?;
                let claims = i64::from(claims);
                rows::claimed(row, &request.worker, until, (token, claims), OP)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(rows::earliest_due_first(leases))
    }

    async fn renew(&self, lease: &Lease, now: DateTime<Utc>, lease_for: Duration) -> Result<Lease> {
        let until = offboard_core::store::lease_expiry(now, lease_for)?;
        let (stored_until, micros) = self.expiry(until, until - now);
        let row = sqlx::query(q::RENEW)
            .bind(stored_until)
            .bind(lease.task.to_string())
            .bind(lease.run.to_string())
            .bind(lease.token)
            .bind(micros)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("postgres.renew"))?
            .ok_or_else(|| codec::renew_lost(lease))?;
        let claims: i32 = row.col(1, "postgres.renew")?;
        rows::renewed(&row, lease, until, i64::from(claims), "postgres.renew")
    }

    async fn release(&self, lease: &Lease, due_at: Option<DateTime<Utc>>) -> Result<()> {
        sqlx::query(q::RELEASE)
            .bind(ts_opt(due_at))
            .bind(lease.task.to_string())
            .bind(lease.run.to_string())
            .bind(lease.token)
            .execute(&self.pool)
            .await
            .map_err(db("postgres.release"))?;
        Ok(())
    }

    async fn list_runs(&self, query: RunQuery) -> Result<Vec<RunSummary>> {
        // One statement per shape, so each is served by an index: the catch-all form's
        // `$1 IS NULL OR person_id = $1` makes the planner of a prepared statement scan runs.
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
            .bind(limit(query.limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db("postgres.list_runs"))?;
        rows.iter()
            .map(|row| rows::run_summary(row, "postgres.list_runs"))
            .collect()
    }

    async fn put_snapshot(&self, task: TaskId, snapshot: &Snapshot) -> Result<bool> {
        let done = sqlx::query(q::SNAPSHOT_PUT)
            .bind(task.to_string())
            .bind(codec::to_json(snapshot)?)
            .execute(&self.pool)
            .await
            .map_err(db("postgres.put_snapshot"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn snapshot(&self, task: TaskId) -> Result<Option<Snapshot>> {
        let body: Option<String> = sqlx::query_scalar(q::SNAPSHOT_GET)
            .bind(task.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db("postgres.snapshot"))?;
        body.map(|b| codec::from_json("snapshot", &b)).transpose()
    }

    async fn upsert_accounts(
        &self,
        person: &PersonId,
        accounts: &[AccountRef],
        at: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.begin("postgres.upsert_accounts").await?;
        for account in accounts {
            sqlx::query(q::ACCOUNT_UPSERT)
                .bind(person.to_string())
                .bind(account.app.to_string())
                .bind(&account.external_id)
                .bind(codec::to_json(account)?)
                .bind(ts(at))
                .execute(&mut *tx)
                .await
                .map_err(db("postgres.upsert_accounts"))?;
        }
        tx.commit().await.map_err(db("postgres.upsert_accounts"))
    }

    async fn accounts(&self, person: &PersonId) -> Result<Vec<Account>> {
        let rows = sqlx::query(q::ACCOUNTS_GET)
            .bind(person.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(db("postgres.accounts"))?;
        rows.iter()
            .map(|row| rows::account(row, person, "postgres.accounts"))
            .collect()
    }

    async fn cursor(&self, source: &str) -> Result<Option<Cursor>> {
        let cursor: Option<String> = sqlx::query_scalar(q::CURSOR_GET)
            .bind(source)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("postgres.cursor"))?;
        Ok(cursor.map(Cursor))
    }

    async fn put_cursor(&self, source: &str, cursor: &Cursor) -> Result<()> {
        sqlx::query(q::CURSOR_PUT)
            .bind(source)
            .bind(&cursor.0)
            .execute(&self.pool)
            .await
            .map_err(db("postgres.put_cursor"))?;
        Ok(())
    }

    async fn append_audit(&self, events: Vec<AuditEvent>) -> Result<Vec<AuditEvent>> {
        if events.is_empty() {
            return Ok(events);
        }
        let events = prepare(events)?;
        let mut tx = self.begin("postgres.append_audit").await?;
        let sealed = append(&mut tx, events).await?;
        tx.commit().await.map_err(db("postgres.append_audit"))?;
        Ok(sealed)
    }

    async fn audit(&self, query: AuditQuery) -> Result<Vec<AuditEvent>> {
        let after = i64::try_from(query.after_seq).unwrap_or(i64::MAX);
        let rows = match query.run {
            Some(run) => sqlx::query(q::AUDIT_RUN)
                .bind(run.to_string())
                .bind(after)
                .bind(limit(query.limit))
                .fetch_all(&self.pool)
                .await
                .map_err(db("postgres.audit"))?,
            None => sqlx::query(q::AUDIT_ALL)
                .bind(after)
                .bind(limit(query.limit))
                .fetch_all(&self.pool)
                .await
                .map_err(db("postgres.audit"))?,
        };
        let whole_trail = query.run.is_none();
        rows.iter()
            .map(|row| rows::event(row, whole_trail, "postgres.audit"))
            .collect()
    }
    async fn get_record(&self, namespace: &str, key: &str) -> Result<Option<Record>> {
        check_record_key(namespace, key)?;
        read_record(&self.pool, namespace, key).await
    }

    async fn erase_person(
        &self,
        person: &PersonId,
        finished_before: DateTime<Utc>,
    ) -> Result<ErasureReport> {
        const OP: &str = "postgres.erase_person";
        let mut tx = self.pool.begin().await.map_err(db(OP))?;
        // Only this transaction may delete personal values (see migration 0006).
        sqlx::query(q::ERASE_BEGIN)
            .execute(&mut *tx)
            .await
            .map_err(db(OP))?;
        // The person's runs stay locked until the erasure commits: none is reopened meanwhile.
        let ids = sqlx::query(q::ERASE_RUNS_OF)
            .bind(person.as_str())
            .fetch_all(&mut *tx)
            .await
            .map_err(db(OP))?
            .iter()
            .map(|row| rows::parse_id(&row.col::<String>(0, OP)?))
            .collect::<Result<Vec<RunId>>>()?;
        let runs = self.load_runs(&ids).await?;
        let records = sqlx::query(q::RECORDS_ALL)
            .fetch_all(&mut *tx)
            .await
            .map_err(db(OP))?
            .iter()
            .map(|row| rows::record_text(row, OP))
            .collect::<Result<Vec<_>>>()?;
        let plan = crate::erase::ErasurePlan::new(person, finished_before, &runs, records)?;
        let mut report = ErasureReport::default();
        for (id, body) in &plan.runs {
            let done = sqlx::query(q::ERASE_RUN)
                .bind(&plan.pseudonym)
                .bind(body)
                .bind(id)
                .bind(&plan.cutoff)
                .execute(&mut *tx)
                .await
                .map_err(db(OP))?;
            if done.rows_affected() != 1 {
                return Err(erasure::erasure_refused(rows::parse_id(id)?, true));
            }
            report.runs += 1;
        }
        if !plan.runs.is_empty() {
            report.pseudonym = Some(plan.pseudonym.clone());
        }
        for (id, body) in &plan.tasks {
            sqlx::query(q::ERASE_TASK)
                .bind(body)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db(OP))?;
        }
        // A run of the person submitted meanwhile (not locked above) refuses the erasure.
        if let Some(row) = sqlx::query(q::ERASE_RUNS_OF)
            .bind(person.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db(OP))?
        {
            let id: String = row.col(0, OP)?;
            return Err(erasure::erasure_refused(rows::parse_id(&id)?, true));
        }
        report.events = sqlx::query(q::ERASE_PERSONAL)
            .bind(plan.run_ids())
            .bind(person.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db(OP))?
            .rows_affected();
        report.snapshots = sqlx::query(q::ERASE_SNAPSHOT)
            .bind(plan.task_ids())
            .execute(&mut *tx)
            .await
            .map_err(db(OP))?
            .rows_affected();
        report.accounts = sqlx::query(q::ERASE_ACCOUNTS)
            .bind(person.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db(OP))?
            .rows_affected();
        for (namespace, key) in &plan.records {
            report.records += sqlx::query(q::ERASE_RECORD)
                .bind(namespace)
                .bind(key)
                .execute(&mut *tx)
                .await
                .map_err(db(OP))?
                .rows_affected();
        }
        for (namespace, key, value) in &plan.redactions {
            report.records_redacted += sqlx::query(q::REDACT_RECORD)
                .bind(namespace)
                .bind(key)
                .bind(value)
                .execute(&mut *tx)
                .await
                .map_err(db(OP))?
                .rows_affected();
        }
        tx.commit().await.map_err(db(OP))?;
        Ok(report)
    }

    async fn erase_snapshots(&self, finished_before: DateTime<Utc>) -> Result<u64> {
        Ok(sqlx::query(q::ERASE_SNAPSHOTS_BEFORE)
            .bind(ts(finished_before))
            .execute(&self.pool)
            .await
            .map_err(db("postgres.erase_snapshots"))?
            .rows_affected())
    }

    async fn insert_record(
        &self,
        namespace: &str,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<(Record, bool)> {
        check_record_key(namespace, key)?;
        let inserted = sqlx::query(q::RECORD_INSERT)
            .bind(namespace)
            .bind(key)
            .bind(record_value_json(value)?)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("postgres.insert_record"))?;
        if let Some(row) = inserted {
            return Ok((rows::record(&row, namespace, key, "postgres.record")?, true));
        }
        // Not inserted: another insert committed first (ON CONFLICT waits for it); records
        // are never deleted, so this read finds it.
        let stored = read_record(&self.pool, namespace, key)
            .await?
            .ok_or_else(|| Error::storage("a record that refused an insert does not read"))?;
        Ok((stored, false))
    }

    async fn swap_record(
        &self,
        namespace: &str,
        key: &str,
        version: u64,
        value: &serde_json::Value,
    ) -> Result<RecordSwap> {
        check_record_key(namespace, key)?;
        let swapped = sqlx::query(q::RECORD_SWAP)
            .bind(namespace)
            .bind(key)
            .bind(codec::record_version(version))
            .bind(record_value_json(value)?)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("postgres.swap_record"))?;
        Ok(match swapped {
            Some(row) => {
                RecordSwap::Swapped(rows::record(&row, namespace, key, "postgres.record")?)
            }
            None => RecordSwap::Conflict(read_record(&self.pool, namespace, key).await?),
        })
    }
}

/// A record as stored now.
async fn read_record(pool: &PgPool, namespace: &str, key: &str) -> Result<Option<Record>> {
    let row = sqlx::query(q::RECORD_GET)
        .bind(namespace)
        .bind(key)
        .fetch_optional(pool)
        .await
        .map_err(db("postgres.get_record"))?;
    row.map(|row| rows::record(&row, namespace, key, "postgres.record"))
        .transpose()
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
impl AuditSink for PostgresStore {
    async fn record(&self, events: &[AuditEvent]) -> Result<()> {
        let mut tx = self.begin("postgres.record").await?;
        let (mut last_seq, mut last_hash) = lock_head(&mut tx).await?;
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
            fresh.push(EventRow::mirrored(event)?);
        }
        insert_events(&mut tx, fresh).await?;
        tx.commit().await.map_err(db("postgres.record"))
    }
}
