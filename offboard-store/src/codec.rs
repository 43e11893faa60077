//! Encoding shared by both dialects: times as fixed-width RFC 3339 text, runs and tasks as
//! JSON, database errors as offboard errors, and incremental chain verification.

use chrono::{DateTime, SecondsFormat, Utc};
use offboard_core::audit::{ChainProblem, GENESIS_HASH, PersonalValues};
use offboard_core::checkpoint::CheckpointOutcome;
use offboard_core::store::Record;
use offboard_core::{
    AuditEvent, Error, ErrorKind, Lease, Person, Result, Run, RunId, RunState, Task,
};
use serde_json::Value;

/// A time as stored: RFC 3339 in UTC with nine fractional digits, so that text order is time
/// order (for years 0 to 9999) and the value round-trips exactly.
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// An optional time as stored.
pub(crate) fn ts_opt(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(ts)
}

/// Parses a stored time.
pub(crate) fn parse_ts(s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Error::storage(format!("stored time {s:?} does not parse")).with_source(e))
}

/// The run's own fields as stored: its JSON with `tasks` empty (they are rows of their own).
/// Its `version` is a column of its own; the one in the body is ignored when decoding. The
/// tasks are taken out for the encoding and put back (encoding straight from the run is a
/// third of the cost of going through a `serde_json::Value`).
pub(crate) fn run_body(run: &mut Run) -> Result<String> {
    let tasks = std::mem::take(&mut run.tasks);
    let body = to_json(&*run);
    run.tasks = tasks;
    body
}

/// A task as stored: its JSON. Its `due_at` is a column of its own (the one claims query and
/// clear); the one in the body is ignored when decoding.
pub(crate) fn task_body(task: &Task) -> Result<String> {
    to_json(task)
}

/// Rebuilds a run from its stored parts; `tasks` are (body, due_at) in position order.
pub(crate) fn decode_run(
    version: i64,
    body: &str,
    tasks: Vec<(String, Option<String>)>,
) -> Result<Run> {
    // Bodies written since the tasks are taken out for encoding hold `"tasks":[]` and decode
    // straight into a run; older ones have no `tasks` and go through a JSON value.
    let mut run: Run = match serde_json::from_str(body) {
        Ok(run) => run,
        Err(_) => {
            let mut v: Value = serde_json::from_str(body).map_err(decode_err("run"))?;
            if let Some(map) = v.as_object_mut() {
                map.insert("tasks".into(), Value::Array(Vec::new()));
            }
            serde_json::from_value(v).map_err(decode_err("run"))?
        }
    };
    run.version = u64::try_from(version).map_err(|_| Error::storage("negative run version"))?;
    run.tasks = tasks
        .into_iter()
        .map(|(body, due_at)| {
            let mut task: Task = serde_json::from_str(&body).map_err(decode_err("task"))?;
            task.due_at = due_at.as_deref().map(parse_ts).transpose()?;
            Ok(task)
        })
        .collect::<Result<_>>()?;
    Ok(run)
}

/// A run state's stored name (its serde name).
pub(crate) fn state_name(state: RunState) -> String {
    match serde_json::to_value(state) {
        Ok(Value::String(s)) => s,
        _ => format!("{state:?}"),
    }
}

/// Parses a stored run state name.
pub(crate) fn parse_state(s: &str) -> Result<RunState> {
    serde_json::from_value(Value::String(s.to_owned())).map_err(decode_err("run state"))
}

/// An audit event as stored: the JSON of its commitment form (hash included, no personal
/// value, no salt), and its personal values with their salt, which go to the side table.
pub(crate) fn event_body(event: &AuditEvent) -> Result<(String, Option<PersonalValues>)> {
    let (stored, personal) = event.redacted()?;
    Ok((to_json(&stored)?, personal))
}

/// A stored audit event with its personal values put back when the side table still has
/// them (`salt`, `vals`); without them, the event in its commitment form.
pub(crate) fn decode_stored_event(
    body: &str,
    salt: Option<&str>,
    vals: Option<&str>,
) -> Result<AuditEvent> {
    let event = decode_event(body)?;
    match (salt, vals) {
        (Some(salt), Some(vals)) => event.with_personal(PersonalValues::from_stored(salt, vals)?),
        _ => Ok(event),
    }
}

/// A side-table row of `event`'s personal values: its seq, run, the person it names, the
/// salt (hex) and the values (JSON).
pub(crate) type PersonalRow = (i64, Option<String>, Option<String>, String, String);

/// The side-table row of a sealed event's personal values.
pub(crate) fn personal_row(event: &AuditEvent, personal: &PersonalValues) -> PersonalRow {
    (
        event.seq as i64,
        event.run.map(|r| r.to_string()),
        event.subject().map(str::to_owned),
        personal.salt.to_hex(),
        personal.values_json(),
    )
}

/// Parses a stored audit event.
pub(crate) fn decode_event(body: &str) -> Result<AuditEvent> {
    serde_json::from_str(body).map_err(decode_err("audit event"))
}

/// Any JSON value as stored, written into a buffer sized for a typical body (a run's, a task's
/// or an event's: 0.4 to 3 KB), so it is seldom grown (and copied) while written.
pub(crate) fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String> {
    let mut out = Vec::with_capacity(1024);
    serde_json::to_writer(&mut out, value).map_err(encode_err)?;
    String::from_utf8(out).map_err(|e| Error::internal("JSON that is not UTF-8").with_source(e))
}

/// Parses a stored JSON value.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    what: &'static str,
    body: &str,
) -> Result<T> {
    serde_json::from_str(body).map_err(decode_err(what))
}

fn encode_err(e: serde_json::Error) -> Error {
    Error::internal("a value did not serialise to JSON").with_source(e)
}

fn decode_err(what: &'static str) -> impl FnOnce(serde_json::Error) -> Error {
    move |e| Error::storage(format!("a stored {what} does not decode")).with_source(e)
}

/// Converts a database error, classifying it: busy/locked databases, serialisation failures,
/// deadlocks, pool time-outs and IO errors are retryable; the rest is permanent.
pub(crate) fn db(op: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |e| {
        let retryable = match &e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(d) => matches!(
                d.code().as_deref(),
                // SQLite BUSY, LOCKED, BUSY_SNAPSHOT; PostgreSQL serialization_failure,
                // deadlock_detected, lock_not_available.
                Some("5" | "6" | "517" | "40001" | "40P01" | "55P03")
            ),
            _ => false,
        };
        let err = Error::new(ErrorKind::Storage, format!("database error in {op}"))
            .with_operation(op)
            .with_source(e);
        if retryable { err.retryable() } else { err }
    }
}

/// Converts a database or IO count into `u64`/`u32` etc.
pub(crate) fn int<T: TryFrom<i64>>(what: &'static str, v: i64) -> Result<T> {
    T::try_from(v).map_err(|_| Error::storage(format!("stored {what} {v} is out of range")))
}

/// The error of a commit made at a version that is not the stored one.
pub(crate) fn version_conflict(id: RunId, stored: i64, at: u64) -> Error {
    Error::new(
        ErrorKind::Conflict,
        format!("run {id} is at version {stored}, the commit was made at version {at}"),
    )
    .with_context("run", id)
}

/// The error of a commit whose run is no longer at the version it was made at (another commit
/// came first), or that names no stored run.
pub(crate) fn version_moved(id: RunId, at: u64) -> Error {
    Error::new(
        ErrorKind::Conflict,
        format!(
            "run {id} is no longer at version {at}, which the commit was made at (another commit \
             came first), or it does not exist"
        ),
    )
    .with_context("run", id)
}

/// The error of a create with an existing id.
pub(crate) fn run_exists(id: RunId, person: &Person) -> Error {
    Error::new(
        ErrorKind::Conflict,
        format!(
            "run {id} was not created: a run with that id exists, or {} already has an open run",
            person.id
        ),
    )
    .fatal()
    .with_context("person", &person.id)
}

/// The error of a renew of a lease no longer held.
pub(crate) fn renew_lost(lease: &Lease) -> Error {
    Error::new(
        ErrorKind::Conflict,
        format!("lease lost on task {}", lease.task),
    )
    .with_context("task", lease.task)
}

/// The error of a mirrored event that does not continue the stored chain.
pub(crate) fn chain_gap(seq: u64, last: u64) -> Error {
    Error::new(
        ErrorKind::Conflict,
        format!("audit event {seq} does not follow event {last} of the stored chain"),
    )
}

/// A stored audit row as verification reads it: its key, its hashed body, and the indexed
/// columns kept beside the body, which per-run queries filter on.
#[derive(Debug)]
pub(crate) struct AuditRow<'a> {
    /// The `seq` column (the row's key).
    pub(crate) seq: u64,
    /// The `body` column: the event's JSON, which the hash chain covers.
    pub(crate) body: &'a str,
    /// The `run_id` column.
    pub(crate) run_id: Option<&'a str>,
    /// The `at` column.
    pub(crate) at: &'a str,
    /// The `hash` column.
    pub(crate) hash: &'a str,
    /// The side table's `salt` and `vals` for the row, if it has them.
    pub(crate) personal: Option<(&'a str, &'a str)>,
}

impl AuditRow<'_> {
    /// The first indexed column whose value is not what the store writes for `event` (the
    /// row's decoded body), if any. The `seq` column is compared while linking the chain.
    fn disagreeing_column(&self, event: &AuditEvent) -> Option<&'static str> {
        let run = event.run.map(|r| r.to_string());
        if self.run_id != run.as_deref() {
            Some("run_id")
        } else if self.at != ts(event.at) {
            Some("at")
        } else if self.hash != event.hash {
            Some("hash")
        } else {
            None
        }
    }
}

/// What [`ChainCheck`] found wrong with a row: the chain's problem, and the indexed column
/// that disagrees with the row's hashed body when that is what is wrong.
#[derive(Debug)]
pub(crate) struct Broken {
    problem: ChainProblem,
    column: Option<&'static str>,
}

impl Broken {
    /// The row at `seq`, whose `column` does not match its body: altered.
    fn column(seq: u64, column: &'static str) -> Self {
        Self {
            problem: ChainProblem::Altered { seq },
            column: Some(column),
        }
    }
}

impl From<ChainProblem> for Broken {
    fn from(problem: ChainProblem) -> Self {
        Self {
            problem,
            column: None,
        }
    }
}

/// Verifies a chain read in pages, with exactly the rules of
/// [`offboard_core::audit::verify_chain`] (which needs the whole chain at once).
#[derive(Debug)]
pub(crate) struct ChainCheck {
    prev: String,
    expected: u64,
}

impl ChainCheck {
    pub(crate) fn new() -> Self {
        Self {
            prev: GENESIS_HASH.to_owned(),
            expected: 1,
        }
    }

    /// Checks the next stored row: its place in the chain, its body against its hash, and
    /// its indexed columns against its body.
    pub(crate) fn push(&mut self, row: &AuditRow<'_>) -> Result<(), Broken> {
        let e = self.link(row.seq, row.body)?;
        if let Some(column) = row.disagreeing_column(&e) {
            return Err(Broken::column(row.seq, column));
        }
        if let Some((salt, vals)) = row.personal {
            // The values kept beside the event must be those its hashed commitments stand for.
            let matches = PersonalValues::from_stored(salt, vals)
                .ok()
                .zip(serde_json::to_value(&e.kind).ok())
                .is_some_and(|(values, kind)| values.mismatch(&kind).is_none());
            if !matches {
                return Err(Broken::column(row.seq, "personal"));
            }
        }
        self.prev = e.hash;
        self.expected += 1;
        Ok(())
    }

    /// The event stored at `seq` as `body`, when it is where the chain expects it and its
    /// content matches its hash.
    fn link(&self, seq: u64, body: &str) -> Result<AuditEvent, Broken> {
        let Ok(e) = decode_event(body) else {
            // Not even an event any more: if the row sits where one was expected, it was
            // altered; further on, something before it is missing.
            return Err(Broken::from(if seq > self.expected {
                ChainProblem::Missing { seq: self.expected }
            } else {
                ChainProblem::Altered { seq }
            }));
        };
        if e.seq != seq {
            return Err(Broken::column(seq, "seq"));
        }
        if e.seq > self.expected {
            return Err(ChainProblem::Missing { seq: self.expected }.into());
        }
        let hashes = e.compute_hash() == e.hash;
        if e.seq < self.expected || e.prev_hash != self.prev {
            return Err(if hashes && e.seq == self.expected {
                ChainProblem::Inserted { seq: e.seq }
            } else if !hashes {
                ChainProblem::Altered { seq: e.seq }
            } else {
                ChainProblem::Inserted { seq: e.seq }
            }
            .into());
        }
        if !hashes {
            return Err(ChainProblem::Altered { seq: e.seq }.into());
        }
        Ok(e)
    }

    /// How many events verified so far.
    pub(crate) fn verified(&self) -> u64 {
        self.expected - 1
    }

    /// Ends the check against the stored chain head (`head_seq`, `head_hash`): events cut off
    /// the end are missing.
    pub(crate) fn finish(self, head_seq: u64, head_hash: &str) -> Result<u64, ChainProblem> {
        let verified = self.expected - 1;
        if head_seq > verified {
            return Err(ChainProblem::Missing { seq: self.expected });
        }
        if head_seq < verified {
            // Events past the head were written behind the store's back.
            return Err(ChainProblem::Inserted { seq: head_seq + 1 });
        }
        if verified > 0 && head_hash != self.prev {
            return Err(ChainProblem::Altered { seq: verified });
        }
        Ok(verified)
    }

    /// The verification that stopped at `broken`.
    pub(crate) fn failed(&self, broken: Broken) -> AuditVerification {
        AuditVerification {
            verified: self.verified(),
            problem: Some(broken.problem),
            column: broken.column.map(str::to_owned),
            checkpoint: None,
        }
    }

    /// The verification of the whole chain, ended with [`ChainCheck::finish`].
    pub(crate) fn finished(self, head_seq: u64, head_hash: &str) -> AuditVerification {
        let verified = self.verified();
        match self.finish(head_seq, head_hash) {
            Ok(n) => AuditVerification {
                verified: n,
                problem: None,
                column: None,
                checkpoint: None,
            },
            Err(problem) => AuditVerification {
                verified,
                problem: Some(problem),
                column: None,
                checkpoint: None,
            },
        }
    }
}

/// The result of [`crate::SqliteStore::verify_audit`] and its PostgreSQL twin.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditVerification {
    /// How many events verified, from seq 1, before the problem (or in all).
    pub verified: u64,
    /// The first problem: the first altered, inserted or missing event. `None`: intact.
    pub problem: Option<ChainProblem>,
    /// When the problem is a row whose indexed column (`seq`, `run_id`, `at` or `hash`, which
    /// queries filter and order on) does not match its hashed body: that column's name. The
    /// problem is then [`ChainProblem::Altered`] at that row's seq, even when the body itself
    /// is intact. `None` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// When the trail was checked against signed checkpoints (`verify_audit_against`): the
    /// outcome, whose problem names the first bad seq of a cut, rewritten or re-sealed chain
    /// (which the chain's own hashes cannot show) or a checkpoint that does not verify.
    /// `None`: no checkpoint was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CheckpointOutcome>,
}

impl AuditVerification {
    /// Whether the whole trail verified, and matched the checkpoints when it was checked
    /// against some.
    pub fn is_intact(&self) -> bool {
        self.problem.is_none() && self.checkpoint.as_ref().is_none_or(|c| c.is_intact())
    }

    /// The first bad seq: the chain's first problem, else the checkpoints' (`None`: intact).
    pub fn first_bad_seq(&self) -> Option<u64> {
        self.problem.as_ref().map(problem_seq).or_else(|| {
            self.checkpoint
                .as_ref()
                .and_then(CheckpointOutcome::first_bad_seq)
        })
    }

    /// Turns a problem into an error of kind `Tampered`.
    ///
    /// # Errors
    /// `Tampered`, naming the first bad event (and the column that does not match its body,
    /// when that is the problem), when the trail does not verify; when it does but does not
    /// match its checkpoints, `Tampered` naming the checkpoint problem and its first bad seq.
    pub fn into_result(self) -> Result<u64> {
        match self.problem {
            None => match self.checkpoint.and_then(|c| c.problem) {
                Some(p) => Err(Error::from(p)),
                None => Ok(self.verified),
            },
            Some(p) => {
                let seq = problem_seq(&p);
                let err = match self.column {
                    None => Error::from(p),
                    Some(column) => Error::new(
                        ErrorKind::Tampered,
                        format!("{p}: its {column} column does not match its hashed body"),
                    )
                    .with_context("column", column),
                };
                Err(err.with_context("seq", seq))
            }
        }
    }
}

/// The sequence number a problem names.
pub(crate) fn problem_seq(p: &ChainProblem) -> u64 {
    match p {
        ChainProblem::Altered { seq }
        | ChainProblem::Missing { seq }
        | ChainProblem::Inserted { seq } => *seq,
    }
}

/// A migrator of `(version, description, SQL)` steps, each run as one simple migration.
pub(crate) fn migrator(steps: &[(i64, &str, &'static str)]) -> sqlx::migrate::Migrator {
    use sqlx::SqlSafeStr;
    sqlx::migrate::Migrator::with_migrations(
        steps
            .iter()
            .map(|(version, description, sql)| {
                sqlx::migrate::Migration::new(
                    *version,
                    (*description).to_owned().into(),
                    sqlx::migrate::MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// A delegate's record from its stored columns (version, JSON text).
pub(crate) fn record(namespace: &str, key: &str, version: i64, value: &str) -> Result<Record> {
    Ok(Record {
        namespace: namespace.to_owned(),
        key: key.to_owned(),
        value: from_json("record", value)?,
        version: int("record version", version)?,
    })
}

/// A swap's expected version as stored (one past the stored range matches no record).
pub(crate) fn record_version(version: u64) -> i64 {
    i64::try_from(version).unwrap_or(-1)
}

/// Refuses a database whose schema (the newest migration recorded, `version`) is newer than
/// the `known` version of this code.
pub(crate) fn check_schema_version(version: Option<i64>, known: i64) -> Result<()> {
    match version.filter(|v| *v > known) {
        Some(found) => Err(newer_schema(found, known)),
        None => Ok(()),
    }
}

/// The refusal of a database whose schema is at version `found`, newer than `known`.
fn newer_schema(found: i64, known: i64) -> Error {
    Error::config(
        "schema_version",
        format!(
            "the database's schema is at version {found}, newer than this offboard (which knows \
             up to version {known}); upgrade offboard before opening it"
        ),
    )
}

/// Up to five of `tables`' names, sorted, for the refusal of a database that is not ours.
pub(crate) fn some_tables(tables: &[String]) -> String {
    let mut names: Vec<&str> = tables.iter().map(String::as_str).take(5).collect();
    names.sort_unstable();
    names.join(", ")
}
