//! Row decoding shared by both SQL stores: each result shape (a claimed lease, a run's
//! headline, an account, a record, an audit event, a page of runs, a page of the audit trail)
//! is read here once, whatever the dialect's row type. The statements of both dialects return
//! the same columns in the same order.

use chrono::{DateTime, Utc};
use offboard_core::checkpoint::ChainAgainstCheckpoints;
use offboard_core::store::{Record, RunSummary};
use offboard_core::{Account, AuditEvent, Error, Lease, PersonId, Result, RunId};
use sqlx::{ColumnIndex, Decode, Row, Type};
use uuid::Uuid;

use crate::codec::{self, AuditRow, AuditVerification, Broken, ChainCheck, db, int};

/// A row of either dialect, whose columns read as text and as 64-bit integers (what the
/// shared shapes hold).
pub(crate) trait SqlRow: Row {
    /// Column `i` as `T`; a database error names `op`.
    fn col<'r, T>(&'r self, i: usize, op: &'static str) -> Result<T>
    where
        T: Decode<'r, Self::Database> + Type<Self::Database>;
}

impl<R: Row> SqlRow for R
where
    usize: ColumnIndex<R>,
{
    fn col<'r, T>(&'r self, i: usize, op: &'static str) -> Result<T>
    where
        T: Decode<'r, Self::Database> + Type<Self::Database>,
    {
        self.try_get(i).map_err(db(op))
    }
}

/// The text of column `i` (also when it is NULL: `None`).
fn text<R>(row: &R, i: usize, op: &'static str) -> Result<Option<String>>
where
    R: SqlRow,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    row.col(i, op)
}

/// The text of column `i`, which must not be NULL.
fn required<R>(row: &R, i: usize, op: &'static str) -> Result<String>
where
    R: SqlRow,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    text(row, i, op)?.ok_or_else(|| Error::storage("a row misses a column").with_operation(op))
}

/// A stored id.
pub(crate) fn parse_id<T: std::str::FromStr>(s: &str) -> Result<T> {
    s.parse()
        .map_err(|_| Error::storage(format!("stored id {s:?} is not a UUID")))
}

/// A run's headline from a `list_runs` row (id, person, state, created_at, finished_at).
pub(crate) fn run_summary<R>(row: &R, op: &'static str) -> Result<RunSummary>
where
    R: SqlRow,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(RunSummary {
        id: parse_id(&required(row, 0, op)?)?,
        person: PersonId::new(required(row, 1, op)?),
        state: codec::parse_state(&required(row, 2, op)?)?,
        created_at: codec::parse_ts(&required(row, 3, op)?)?,
        finished_at: text(row, 4, op)?
            .as_deref()
            .map(codec::parse_ts)
            .transpose()?,
    })
}

/// A person's account from an `accounts_get` row (account JSON, first seen, last seen).
pub(crate) fn account<R>(row: &R, person: &PersonId, op: &'static str) -> Result<Account>
where
    R: SqlRow,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(Account {
        person: person.clone(),
        account: codec::from_json("account", &required(row, 0, op)?)?,
        first_seen: codec::parse_ts(&required(row, 1, op)?)?,
        last_seen: codec::parse_ts(&required(row, 2, op)?)?,
    })
}

/// A record from a `record_get` (or returning) row (version, value).
pub(crate) fn record<R>(row: &R, namespace: &str, key: &str, op: &'static str) -> Result<Record>
where
    R: SqlRow,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let version: i64 = row.col(0, op)?;
    codec::record(namespace, key, version, &required(row, 1, op)?)
}

/// A delegate's record as erasure reads it, from a `records_all` row (namespace, key, value).
pub(crate) fn record_text<R>(row: &R, op: &'static str) -> Result<(String, String, String)>
where
    R: SqlRow,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok((
        required(row, 0, op)?,
        required(row, 1, op)?,
        required(row, 2, op)?,
    ))
}

/// An audit event from an `audit_all` row (seq, body, salt, vals) or an `audit_run` row
/// (body, salt, vals), with its personal values when the side table still has them.
pub(crate) fn event<R>(row: &R, whole_trail: bool, op: &'static str) -> Result<AuditEvent>
where
    R: SqlRow,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    let at = usize::from(whole_trail);
    codec::decode_stored_event(
        &required(row, at, op)?,
        text(row, at + 1, op)?.as_deref(),
        text(row, at + 2, op)?.as_deref(),
    )
}

/// A run of a period's page from a `runs_page` row (id, created_at).
pub(crate) fn page_entry<R>(row: &R, op: &'static str) -> Result<(DateTime<Utc>, RunId)>
where
    R: SqlRow,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    let id = required(row, 0, op)?;
    Ok((codec::parse_ts(&required(row, 1, op)?)?, parse_id(&id)?))
}

/// A claimed task's lease from a `claim` row (run, task, token, claims, due_at, the run's
/// version), with its `due_at` to order by. The token and the claim count are read by the
/// caller (their column types differ by dialect).
pub(crate) fn claimed<R>(
    row: &R,
    worker: &str,
    until: DateTime<Utc>,
    (token, claims): (Uuid, i64),
    op: &'static str,
) -> Result<(String, Lease)>
where
    R: SqlRow,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let version: Option<i64> = row.col(5, op)?;
    Ok((
        required(row, 4, op)?,
        Lease {
            run: parse_id(&required(row, 0, op)?)?,
            task: parse_id(&required(row, 1, op)?)?,
            worker: worker.to_owned(),
            token,
            until,
            claims: int("claims", claims)?,
            run_version: version.map(|v| int("version", v)).transpose()?,
        },
    ))
}

/// A renewed `lease` from a `renew` row (worker, claims), expiring at `until`. The claim count
/// is read by the caller (its column type differs by dialect).
pub(crate) fn renewed<R>(
    row: &R,
    lease: &Lease,
    until: DateTime<Utc>,
    claims: i64,
    op: &'static str,
) -> Result<Lease>
where
    R: SqlRow,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(Lease {
        run: lease.run,
        task: lease.task,
        worker: text(row, 0, op)?.unwrap_or_else(|| lease.worker.clone()),
        token: lease.token,
        until,
        claims: int("claims", claims)?,
        run_version: lease.run_version,
    })
}

/// Claimed leases earliest due first (RETURNING has no order), as a claim hands them out.
pub(crate) fn earliest_due_first(mut leases: Vec<(String, Lease)>) -> Vec<Lease> {
    leases.sort_by(|a, b| (&a.0, a.1.task).cmp(&(&b.0, b.1.task)));
    leases.into_iter().map(|(_, l)| l).collect()
}

/// How many audit rows a verification reads at once.
pub(crate) const AUDIT_PAGE: i64 = 1000;

/// The audit chain's head from an `audit_head` row (seq, hash).
pub(crate) fn head<R>(row: &R, op: &'static str) -> Result<(u64, String)>
where
    R: SqlRow,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let seq: i64 = row.col(0, op)?;
    Ok((int("seq", seq)?, required(row, 1, op)?))
}

/// Reads the whole audit trail through a chain check, page by page: `page(after)` reads the
/// `audit_verify` rows (seq, body, run_id, at, hash, salt, vals) after seq `after`, at most
/// [`AUDIT_PAGE`]. The check, to be finished against the stored head, or the verification
/// that found the first problem: a break in the chain, or an indexed column that does not
/// match its row's hashed body.
///
/// With `against` (signed checkpoints), every stored row's hash is also compared with the
/// checkpoints, to the end of the trail even past a break (a re-sealed chain has none, a cut
/// one may have one before its end); the caller finishes it.
pub(crate) async fn check_trail<R, F, Fut>(
    mut page: F,
    mut against: Option<&mut ChainAgainstCheckpoints>,
    op: &'static str,
) -> Result<std::result::Result<ChainCheck, AuditVerification>>
where
    R: SqlRow,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    F: FnMut(i64) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<Vec<R>, sqlx::Error>>,
{
    let mut check = ChainCheck::new();
    let mut broken = None;
    let mut after = 0i64;
    loop {
        let rows = page(after).await.map_err(db(op))?;
        for row in &rows {
            let seq: i64 = row.col(0, op)?;
            if broken.is_none() {
                broken = check_row(&mut check, row, op)?.err();
            }
            if let Some(against) = against.as_deref_mut() {
                against.observe(int("seq", seq)?, &required(row, 4, op)?);
            }
            after = seq;
        }
        if broken.is_some() && against.is_none() {
            break;
        }
        if (rows.len() as i64) < AUDIT_PAGE {
            break;
        }
    }
    Ok(match broken {
        Some(broken) => Err(check.failed(broken)),
        None => Ok(check),
    })
}

/// Feeds one `audit_verify` row (seq, body, run_id, at, hash, salt, vals) to `check`: the problem it
/// shows, if any.
fn check_row<R>(
    check: &mut ChainCheck,
    row: &R,
    op: &'static str,
) -> Result<std::result::Result<(), Broken>>
where
    R: SqlRow,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let seq: i64 = row.col(0, op)?;
    let body = required(row, 1, op)?;
    let run_id = text(row, 2, op)?;
    let at = required(row, 3, op)?;
    let hash = required(row, 4, op)?;
    let (salt, vals) = (text(row, 5, op)?, text(row, 6, op)?);
    let stored = AuditRow {
        seq: int("seq", seq)?,
        body: &body,
        run_id: run_id.as_deref(),
        at: &at,
        hash: &hash,
        personal: salt.as_deref().zip(vals.as_deref()),
    };
    Ok(check.push(&stored))
}
