//! What the SQLite and PostgreSQL tamper tests share: the UPDATEs that change one indexed
//! column of an audit row alone, and the check that verification names that row and column.

use offboard_core::audit::{ChainProblem, GENESIS_HASH};
use offboard_core::{AuditEvent, AuditQuery, ErrorKind, RunId, Store};
use offboard_store::AuditVerification;

/// For each indexed column of `table` (the audit table's name in the dialect): the column's
/// name and an UPDATE of that column alone on event 3, leaving its hashed body intact.
pub(crate) fn column_updates(table: &str) -> Vec<(&'static str, String)> {
    let other = RunId::new_v4();
    vec![
        (
            "run_id",
            format!("UPDATE {table} SET run_id = '{other}' WHERE seq = 3"),
        ),
        (
            "run_id",
            format!("UPDATE {table} SET run_id = NULL WHERE seq = 3"),
        ),
        (
            "at",
            format!("UPDATE {table} SET at = '2000-01-01T00:00:00.000000000Z' WHERE seq = 3"),
        ),
        (
            "hash",
            format!("UPDATE {table} SET hash = '{GENESIS_HASH}' WHERE seq = 3"),
        ),
    ]
}

/// Asserts that `check` names event `seq` as altered through its `column`, in the
/// verification and in its `Tampered` error.
pub(crate) fn assert_column_reported(check: AuditVerification, seq: u64, column: &str) {
    assert_eq!(
        check.problem,
        Some(ChainProblem::Altered { seq }),
        "{column}: {check:?}"
    );
    assert_eq!(check.verified, seq - 1, "{column}");
    let err = check.into_result().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tampered);
    assert!(err.message().contains(column), "{err}");
    let context: Vec<(&str, &str)> = err.context().collect();
    assert!(context.contains(&("column", column)), "{context:?}");
    assert!(context.contains(&("seq", &seq.to_string())), "{context:?}");
}

/// The `at` column the store writes for `event` (what a forger who knows the format writes).
pub(crate) fn stored_at(event: &AuditEvent) -> String {
    event.at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// After event 2 of `run`'s four was moved to run `other` by its `run_id` column alone: the
/// per-run query answers from the column (the row drops out of `run`'s trail and shows in
/// `other`'s, its body still naming `run`), and `check`, the store's verification, reports
/// that row and the column.
pub(crate) async fn assert_moved_row_reported<S: Store>(
    store: &S,
    run: RunId,
    other: RunId,
    check: AuditVerification,
) {
    let trail = store.audit(AuditQuery::run(run)).await.unwrap();
    let seqs: Vec<u64> = trail.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 3, 4], "the query answers from the column");
    let moved = store.audit(AuditQuery::run(other)).await.unwrap();
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].run, Some(run), "its body still names its run");
    assert_column_reported(check, 2, "run_id");
}
