//! SqliteStore: the store conformance suite on a file and in memory, migrations and refusal of
//! foreign files, concurrent claims, and the tamper-evident audit trail.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use offboard_core::audit::{ChainProblem, verify_chain};
use offboard_core::store::conformance;
use offboard_core::{
    Action, ActionName, AppId, AuditEvent, AuditKind, AuditQuery, ClaimRequest, ErrorKind,
    Initiator, Person, RetryPolicy, Run, RunId, RunState, Store, Task, TaskId, TaskKind, TaskState,
};
use offboard_store::{SQLITE_MIGRATIONS_TABLE, SqliteStore};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};

#[path = "common/tamper.rs"]
mod tampering;
use tampering::{assert_column_reported, assert_moved_row_reported, column_updates, stored_at};

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
}

/// A running run with `n` pending tasks, all due at `due`.
fn run_with_tasks(n: usize, due: DateTime<Utc>) -> Run {
    let id = RunId::new_v4();
    let tasks = (0..n)
        .map(|i| {
            let task = TaskId::new_v4();
            Task {
                id: task,
                app: AppId::new("idp"),
                kind: TaskKind::Action {
                    action: Action {
                        name: ActionName::from_static("idp.suspend"),
                        params: serde_json::json!({ "i": i }),
                    },
                },
                account: None,
                depends_on: Vec::new(),
                stage: "last_day".into(),
                not_before: due,
                critical: false,
                reversible: false,
                not_found_is_done: true,
                idempotency_key: format!("{id}:{task}"),
                state: TaskState::Pending,
                attempts: 0,
                due_at: Some(due),
                started_at: None,
                finished_at: None,
            }
        })
        .collect();
    Run {
        id,
        person: Person::new(format!("p-{id}"), "ada@example.com"),
        initiator: Initiator::Admin {
            actor: "admin@example.com".into(),
        },
        reason: "resigned".into(),
        created_at: due,
        effective_at: due,
        dry_run: false,
        plan_digest: "sha256:test".into(),
        policy: String::new(),
        confirmed_by: None,
        tasks,
        state: RunState::Running,
        cancelled: false,
        rollback_requested: false,
        restore_lease: None,
        retry: RetryPolicy::default(),
        delegation_poll: Duration::from_secs(60),
        version: 0,
        finished_at: None,
    }
}

/// A note without personal data (no string in its data): sealed as schema 3 would have.
fn counter_note() -> AuditEvent {
    AuditEvent::new(
        at(0),
        "test",
        AuditKind::Note {
            name: "created".into(),
            data: serde_json::json!({ "n": 1 }),
        },
    )
}

fn note(name: &str) -> AuditEvent {
    AuditEvent::new(
        at(0),
        "test",
        AuditKind::Note {
            name: name.into(),
            data: serde_json::json!({ "name": name }),
        },
    )
}

async fn raw(path: &Path) -> SqliteConnection {
    SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(path))
        .await
        .unwrap()
}

#[tokio::test]
async fn conformance_on_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("offboard.db"))
        .await
        .unwrap();
    conformance::run_all(&store).await;
    assert!(store.verify_audit().await.unwrap().is_intact());
}

#[tokio::test]
async fn conformance_in_memory() {
    let store = SqliteStore::in_memory().await.unwrap();
    conformance::run_all(&store).await;
    assert!(store.verify_audit().await.unwrap().is_intact());
}

#[tokio::test]
async fn data_survives_reopening_and_migrations_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("offboard.db");
    let run = run_with_tasks(3, at(0));
    let sealed = {
        let store = SqliteStore::open(&path).await.unwrap();
        let sealed = store.create_run(&run, vec![note("created")]).await.unwrap();
        store.run_migrations().await.unwrap();
        store.run_migrations().await.unwrap();
        sealed
    };
    let store = SqliteStore::open(&path).await.unwrap();
    let mut expected = run.clone();
    expected.version = 1;
    assert_eq!(store.load_run(run.id).await.unwrap(), Some(expected));
    assert_eq!(store.audit(AuditQuery::all()).await.unwrap(), sealed);
    // The chain continues where it was.
    let next = store
        .append_audit(vec![note("after reopen")])
        .await
        .unwrap();
    assert_eq!(next[0].seq, 2);
    assert_eq!(next[0].prev_hash, sealed[0].hash);
    // Our migration table, not sqlx's default one.
    let mut conn = raw(&path).await;
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert!(tables.iter().any(|t| t == SQLITE_MIGRATIONS_TABLE));
    assert!(!tables.iter().any(|t| t == "_sqlx_migrations"));
}

/// Guards the upgrade to schema 4 (delegates' records): a database at version 3 (made here by
/// taking migration 4 back out of a fresh one) opens, gets the records table, keeps its runs
/// and audit chain, and stores records.
#[tokio::test]
async fn a_version_3_database_migrates_to_4_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("offboard.db");
    let run = run_with_tasks(2, at(0));
    let sealed = {
        let store = SqliteStore::open(&path).await.unwrap();
        store.create_run(&run, vec![counter_note()]).await.unwrap()
    };
    let mut conn = raw(&path).await;
    for sql in [
        "DROP TABLE offboard_records",
        "DROP TABLE offboard_audit_personal",
        "DELETE FROM offboard_schema_migrations WHERE version >= 4",
    ] {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    }
    let version: i64 = sqlx::query_scalar("SELECT MAX(version) FROM offboard_schema_migrations")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(version, 3);
    conn.close().await.unwrap();

    let store = SqliteStore::open(&path).await.unwrap();
    let mut expected = run.clone();
    expected.version = 1;
    assert_eq!(store.load_run(run.id).await.unwrap(), Some(expected));
    assert_eq!(store.audit(AuditQuery::all()).await.unwrap(), sealed);
    let value = serde_json::json!({ "sent": true });
    let (record, stored) = store
        .insert_record("email", "task:1", &value)
        .await
        .unwrap();
    assert!(stored && record.version == 1 && record.value == value);
    drop(store);
    let mut conn = raw(&path).await;
    let version: i64 = sqlx::query_scalar("SELECT MAX(version) FROM offboard_schema_migrations")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(version, offboard_store::SQLITE_SCHEMA_VERSION);
    assert_eq!(version, 5);
    conn.close().await.unwrap();
    // And the record is there after reopening.
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(
        store.get_record("email", "task:1").await.unwrap(),
        Some(record)
    );
}

#[tokio::test]
async fn refuses_another_applications_sqlite_file_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("host.db");
    {
        let mut conn = SqliteConnection::connect_with(
            &SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true),
        )
        .await
        .unwrap();
        sqlx::query("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("INSERT INTO customers (name) VALUES ('acme')")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let err = SqliteStore::open(&path).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    let msg = err.to_string();
    assert!(msg.contains("not an offboard database"), "{msg}");
    assert!(msg.contains("customers"), "{msg}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the file was changed"
    );
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(files.len(), 1, "refusing left files behind: {files:?}");
}

#[tokio::test]
async fn refuses_a_file_that_is_not_sqlite_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    let text = b"These are my notes. Not a database.\n".repeat(200);
    std::fs::write(&path, &text).unwrap();
    let err = SqliteStore::open(&path).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(
        err.to_string().contains("not an offboard database"),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), text, "the file was changed");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[tokio::test]
async fn refuses_a_schema_newer_than_the_code() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("offboard.db");
    drop(SqliteStore::open(&path).await.unwrap());
    let mut conn = raw(&path).await;
    sqlx::query(
        "INSERT INTO offboard_schema_migrations \
         (version, description, success, checksum, execution_time) \
         VALUES (99, 'from the future', TRUE, x'00', 0)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    let err = SqliteStore::open(&path).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    let msg = err.to_string();
    assert!(msg.contains("version 99"), "{msg}");
    assert!(msg.contains("newer"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_concurrent_claimers_never_share_a_task() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(dir.path().join("offboard.db"))
            .await
            .unwrap(),
    );
    let mut all = HashSet::new();
    for _ in 0..10 {
        let run = run_with_tasks(30, at(0));
        all.extend(run.tasks.iter().map(|t| t.id));
        store.create_run(&run, vec![]).await.unwrap();
    }
    let started = std::time::Instant::now();
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let leases = store
                        .claim(ClaimRequest::new(
                            format!("w{w}"),
                            at(10),
                            Duration::from_secs(600),
                            3,
                        ))
                        .await
                        .unwrap();
                    if leases.is_empty() {
                        return mine;
                    }
                    mine.extend(leases.into_iter().map(|l| l.task));
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let mut seen = HashSet::new();
    let mut per_worker = Vec::new();
    for w in workers {
        let mine = w.await.unwrap();
        per_worker.push(mine.len());
        for task in mine {
            assert!(seen.insert(task), "task {task} was claimed twice");
        }
    }
    assert_eq!(seen, all, "every due task claimed exactly once");
    eprintln!(
        "sqlite: 300 tasks claimed by 4 workers ({per_worker:?}) in {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_share_group_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("offboard.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let runs: Vec<Run> = (0..64).map(|_| run_with_tasks(4, at(0))).collect();
    let creates = runs.iter().map(|run| {
        let store = store.clone();
        let run = run.clone();
        tokio::spawn(async move {
            store
                .create_run(&run, vec![note("created").with_run(run.id)])
                .await
        })
    });
    for created in futures::future::join_all(creates).await {
        assert_eq!(created.unwrap().unwrap().len(), 1);
    }
    let (transactions, writes) = store.group_commits();
    assert_eq!(writes, 64, "every create committed");
    assert!(
        transactions < writes,
        "64 concurrent creates took {transactions} transactions: none were grouped"
    );
    // Each one is on disk with its own event, and the chain of all of them verifies.
    drop(store);
    let store = SqliteStore::open(&path).await.unwrap();
    for run in &runs {
        let stored = store.load_run(run.id).await.unwrap().expect("stored");
        assert_eq!(stored.tasks.len(), 4);
        assert_eq!(store.audit(AuditQuery::run(run.id)).await.unwrap().len(), 1);
    }
    assert!(store.verify_audit().await.unwrap().is_intact());
}

/// Bursts of writers all finish: whoever leads hands the lead on to a waiting writer when its
/// own write is answered, and a writer woken to lead whose write was answered meanwhile passes
/// it on again. No write waits for a leader that never comes, also when no new writer arrives
/// to take the lead (the end of a burst). 40 bursts of 48 concurrent appends, on 2 threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_of_writers_all_finish() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("offboard.db"))
        .await
        .unwrap();
    for burst in 0..40 {
        let writers = (0..48).map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append_audit(vec![note(&format!("b{burst}-w{w}"))])
                    .await
                    .unwrap();
            })
        });
        let all = futures::future::join_all(writers);
        let done = tokio::time::timeout(std::time::Duration::from_secs(30), all)
            .await
            .unwrap_or_else(|_| {
                panic!("burst {burst}: a write waited for a leader that never came")
            });
        for d in done {
            d.unwrap();
        }
    }
    let (transactions, writes) = store.group_commits();
    assert_eq!(writes, 40 * 48);
    assert!(
        transactions < writes,
        "{transactions} transactions: none grouped"
    );
    let check = store.verify_audit().await.unwrap();
    assert!(check.is_intact(), "{check:?}");
    assert_eq!(check.verified, 40 * 48);
}

/// Commits of one kind travel together (one chunk), each under its own savepoint: a commit
/// whose version moved, or whose lease is lost, is undone alone in the middle of its chunk, and
/// the commits after it in the chunk are built again and stored. Every run ends with exactly
/// the commits that were answered `Ok`, and the chain of their events verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_inside_a_chunk_is_undone_alone() {
    use offboard_core::store::Commit;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("offboard.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let mut runs = Vec::new();
    for _ in 0..48 {
        let run = run_with_tasks(1, at(0));
        store.create_run(&run, vec![]).await.unwrap();
        runs.push(store.load_run(run.id).await.unwrap().unwrap());
    }
    let leases = store
        .claim(ClaimRequest::new("w", at(1), Duration::from_secs(60), 100))
        .await
        .unwrap();
    assert_eq!(leases.len(), 48);
    // Every third commit is made at a version that moved (stale), every fifth under a lease
    // another worker took over: both must fail, the rest stand.
    let commits = runs.iter().enumerate().map(|(i, run)| {
        let store = store.clone();
        let mut run = run.clone();
        let mut lease = leases.iter().find(|l| l.run == run.id).unwrap().clone();
        let stale = i % 3 == 1;
        let lost = i % 5 == 2 && !stale;
        if stale {
            run.version += 7;
        }
        if lost {
            lease.token = uuid::Uuid::new_v4();
        }
        run.tasks[0].state = TaskState::Running {
            attempt: 1,
            since: at(1),
        };
        run.tasks[0].due_at = None;
        let task = run.tasks[0].id;
        let event = note("started").with_run(run.id);
        tokio::spawn(async move {
            let result = store
                .commit(Commit::new(run, vec![task], vec![event]).under_lease(lease, true))
                .await;
            (i, stale, lost, result)
        })
    });
    let mut stood = 0;
    for joined in futures::future::join_all(commits).await {
        let (i, stale, lost, result) = joined.unwrap();
        let run = &runs[i];
        let stored = store.load_run(run.id).await.unwrap().unwrap();
        let events = store.audit(AuditQuery::run(run.id)).await.unwrap();
        if stale || lost {
            let err = result.expect_err("a stale or lease-lost commit fails");
            assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
            assert_eq!(stored.version, run.version, "nothing of it stored");
            assert_eq!(stored.tasks[0].state, TaskState::Pending);
            assert!(events.is_empty(), "its event is not stored");
        } else {
            let (version, sealed) = result.expect("commit stands");
            stood += 1;
            assert_eq!(version, run.version + 1);
            assert_eq!(stored.version, version);
            assert!(matches!(stored.tasks[0].state, TaskState::Running { .. }));
            assert_eq!(events, sealed);
        }
    }
    assert_eq!(stood, 48 - 16 - 7);
    let (transactions, writes) = store.group_commits();
    assert!(
        transactions < writes,
        "the commits were not grouped ({transactions} transactions for {writes} writes)"
    );
    let check = store.verify_audit().await.unwrap();
    assert!(check.is_intact(), "{:?}", check.problem);
    assert_eq!(check.verified, stood as u64);
    // The released leases: the stood tasks are not claimable (not due), the failed ones' leases
    // are still held by their (unexpired) claim.
    let again = store
        .claim(ClaimRequest::new("w2", at(2), Duration::from_secs(60), 100))
        .await
        .unwrap();
    assert!(again.is_empty(), "{again:?}");
}

/// Opens the file behind the store's back, with the append-only triggers dropped (as an
/// attacker with file access could).
async fn tamper(path: &Path, sql: &str) {
    let mut conn = raw(path).await;
    sqlx::query("DROP TRIGGER IF EXISTS offboard_audit_no_update")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("DROP TRIGGER IF EXISTS offboard_audit_no_delete")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("DROP TRIGGER IF EXISTS offboard_audit_personal_no_update")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
}

async fn store_with_events(n: usize) -> (tempfile::TempDir, std::path::PathBuf, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("offboard.db");
    let store = SqliteStore::open(&path).await.unwrap();
    for i in 0..n {
        store
            .append_audit(vec![note(&format!("e{i}"))])
            .await
            .unwrap();
    }
    let check = store.verify_audit().await.unwrap();
    assert!(check.is_intact(), "{check:?}");
    assert_eq!(check.verified, n as u64);
    (dir, path, store)
}

#[tokio::test]
async fn audit_is_append_only() {
    let (_dir, path, _store) = store_with_events(3).await;
    let mut conn = raw(&path).await;
    let err = sqlx::query("UPDATE offboard_audit SET body = '{}' WHERE seq = 2")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    let err = sqlx::query("DELETE FROM offboard_audit WHERE seq = 2")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
}

#[tokio::test]
async fn verify_names_an_altered_event() {
    let (_dir, path, store) = store_with_events(6).await;
    tamper(
        &path,
        "UPDATE offboard_audit SET body = replace(body, '\"actor\":\"test\"', '\"actor\":\"mallory\"') WHERE seq = 4",
    )
    .await;
    let check = store.verify_audit().await.unwrap();
    assert_eq!(check.problem, Some(ChainProblem::Altered { seq: 4 }));
    assert_eq!(check.verified, 3);
    // Agrees with core's verify_chain over the whole trail.
    let all = store.audit(AuditQuery::all()).await.unwrap();
    assert_eq!(verify_chain(&all), Err(ChainProblem::Altered { seq: 4 }));
    let err = check.into_result().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tampered);
}

#[tokio::test]
async fn verify_names_a_deleted_event() {
    let (_dir, path, store) = store_with_events(6).await;
    tamper(&path, "DELETE FROM offboard_audit WHERE seq = 3").await;
    let check = store.verify_audit().await.unwrap();
    assert_eq!(check.problem, Some(ChainProblem::Missing { seq: 3 }));
    // Cut off the end: the chain head still remembers event 6.
    let (_dir, path, store) = store_with_events(6).await;
    tamper(&path, "DELETE FROM offboard_audit WHERE seq >= 5").await;
    let check = store.verify_audit().await.unwrap();
    assert_eq!(check.problem, Some(ChainProblem::Missing { seq: 5 }));
}

#[tokio::test]
async fn verify_names_an_inserted_event() {
    let (_dir, path, store) = store_with_events(5).await;
    // A forged event, correctly hashed after event 2, put in place of event 3 (the rest
    // renumbered), as someone rewriting history would.
    let all = store.audit(AuditQuery::all()).await.unwrap();
    let mut forged = note("forged");
    forged.seal(3, &all[1].hash);
    // The forged note's data is stored in the clear (it was sealed without a salt); the
    // genuine events' personal values move with them.
    for table in ["offboard_audit", "offboard_audit_personal"] {
        tamper(
            &path,
            &format!("UPDATE {table} SET seq = seq + 100 WHERE seq >= 3"),
        )
        .await;
    }
    let body = serde_json::to_string(&forged).unwrap().replace('\'', "''");
    tamper(
        &path,
        &format!(
            "INSERT INTO offboard_audit (seq, run_id, at, hash, body) VALUES (3, NULL, '{}', '{}', '{body}')",
            stored_at(&forged),
            forged.hash
        ),
    )
    .await;
    for table in ["offboard_audit", "offboard_audit_personal"] {
        tamper(
            &path,
            &format!("UPDATE {table} SET seq = seq - 99 WHERE seq >= 103"),
        )
        .await;
    }
    let check = store.verify_audit().await.unwrap();
    // Event 3 verifies on its own, so the break shows at the genuine event after it.
    assert_eq!(check.problem, Some(ChainProblem::Altered { seq: 4 }));
    assert_eq!(check.verified, 3);
}

#[tokio::test]
async fn verify_names_an_event_appended_behind_the_stores_back() {
    let (_dir, path, store) = store_with_events(4).await;
    let all = store.audit(AuditQuery::all()).await.unwrap();
    let mut forged = note("forged");
    forged.seal(5, &all[3].hash);
    let body = serde_json::to_string(&forged).unwrap().replace('\'', "''");
    tamper(
        &path,
        &format!(
            "INSERT INTO offboard_audit (seq, run_id, at, hash, body) VALUES (5, NULL, '{}', '{}', '{body}')",
            stored_at(&forged),
            forged.hash
        ),
    )
    .await;
    let check = store.verify_audit().await.unwrap();
    assert_eq!(check.problem, Some(ChainProblem::Inserted { seq: 5 }));
}

/// A store whose trail holds `n` events of one run (seq 1 to `n`), and that run.
async fn store_with_run_events(
    n: usize,
) -> (tempfile::TempDir, std::path::PathBuf, SqliteStore, RunId) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("offboard.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let run = RunId::new_v4();
    for i in 0..n {
        let mut e = note(&format!("e{i}"));
        e.run = Some(run);
        store.append_audit(vec![e]).await.unwrap();
    }
    assert!(store.verify_audit().await.unwrap().is_intact());
    (dir, path, store, run)
}

/// Guards the indexed columns (issue 23 item 2): an UPDATE of one column of an audit row
/// alone, leaving its hashed body intact, is refused by the append-only trigger, and once the
/// trigger is dropped (anyone with the file can) `verify_audit` names the row and the column.
/// Before the check, verify passed every one of these rows while queries answered from them.
#[tokio::test]
async fn verify_names_an_indexed_column_changed_alone() {
    for (column, sql) in column_updates("offboard_audit") {
        let (_dir, path, store, _run) = store_with_run_events(5).await;
        let mut conn = raw(&path).await;
        let err = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&mut conn)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("append-only"), "{column}: {err}");
        conn.close().await.unwrap();
        assert!(store.verify_audit().await.unwrap().is_intact(), "{column}");

        tamper(&path, &sql).await;
        assert_column_reported(store.verify_audit().await.unwrap(), 3, column);
    }
    // The key itself: a row moved to another seq leaves a gap where it was.
    let (_dir, path, store, _run) = store_with_run_events(5).await;
    tamper(&path, "UPDATE offboard_audit SET seq = 103 WHERE seq = 3").await;
    let check = store.verify_audit().await.unwrap();
    assert_eq!(check.problem, Some(ChainProblem::Missing { seq: 3 }));
    assert_eq!(check.column, None);
}

/// Guards the per-run query (issue 23 item 2): a row whose `run_id` column was moved to
/// another run drops out of its run's trail (the query filters on the column), and
/// `verify_audit` reports that row and the column, so the omission is not silent. Before
/// the check, verify passed the trail as intact.
#[tokio::test]
async fn a_row_moved_out_of_its_run_is_reported() {
    let (_dir, path, store, run) = store_with_run_events(4).await;
    let other = RunId::new_v4();
    tamper(
        &path,
        &format!("UPDATE offboard_audit SET run_id = '{other}' WHERE seq = 2"),
    )
    .await;
    let check = store.verify_audit().await.unwrap();
    assert_moved_row_reported(&store, run, other, check).await;
}

/// Measures `verify_audit` over 100,000 events (run by hand with `--ignored --nocapture`;
/// no timed assertion). It prints the time.
#[tokio::test]
#[ignore = "a measurement: run by hand"]
async fn measure_verify_audit_over_100k_events() {
    const EVENTS: usize = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("offboard.db"))
        .await
        .unwrap();
    let run = RunId::new_v4();
    for chunk in 0..EVENTS / 1000 {
        let events = (0..1000)
            .map(|i| {
                let mut e = note(&format!("e{chunk}-{i}"));
                e.run = Some(run);
                e
            })
            .collect();
        store.append_audit(events).await.unwrap();
    }
    let mut took = Vec::new();
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let check = store.verify_audit().await.unwrap();
        took.push(started.elapsed());
        assert!(check.is_intact());
        assert_eq!(check.verified, EVENTS as u64);
    }
    eprintln!("sqlite: verify_audit over {EVENTS} events: {took:?}");
}

#[tokio::test]
async fn mirrors_another_stores_chain_as_a_sink() {
    use offboard_core::AuditSink;
    let source = SqliteStore::in_memory().await.unwrap();
    let mirror = SqliteStore::in_memory().await.unwrap();
    let first = source
        .append_audit(vec![note("a"), note("b")])
        .await
        .unwrap();
    let second = source.append_audit(vec![note("c")]).await.unwrap();
    mirror.record(&first).await.unwrap();
    mirror.record(&first).await.unwrap();
    mirror.record(&second).await.unwrap();
    assert_eq!(
        mirror.audit(AuditQuery::all()).await.unwrap(),
        source.audit(AuditQuery::all()).await.unwrap()
    );
    assert!(mirror.verify_audit().await.unwrap().is_intact());
    // A gap is refused.
    let later = source
        .append_audit(vec![note("d"), note("e")])
        .await
        .unwrap();
    let err = mirror.record(&later[1..]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
}

/// Two submits for one person racing (an HR feed and an operator at the same moment): one run
/// is created, the other submit is refused as suppressed — whether it lost at the engine's
/// open-run check or at the store's one-open-run index — and the person has one open run.
#[tokio::test]
async fn racing_submits_for_one_person_create_one_run() {
    use offboard_core::{Engine, Policy, RunQuery, RunRequest};
    use offboard_testkit::suite::reference::{ReferenceConnector, ReferenceUser};
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(dir.path().join("offboard.db"))
            .await
            .unwrap(),
    );
    let idp = ReferenceConnector::builder("idp")
        .users([ReferenceUser::employee("ada@example.com")])
        .build();
    let engine = Engine::builder()
        .store(store.clone())
        .connector(Arc::new(idp))
        .policy(
            Policy::from_toml("[apps.idp]\nmethod = \"automatic\"\nactions = [\"idp.suspend\"]\n")
                .unwrap(),
        )
        .build()
        .unwrap();
    for round in 0..5 {
        let person = Person::new(format!("p-race-{round}"), "ada@example.com");
        let admin = || Initiator::Admin {
            actor: "admin@example.com".into(),
        };
        let a = engine
            .plan(RunRequest::new(person.clone(), admin()))
            .await
            .unwrap();
        let b = engine
            .plan(RunRequest::new(person.clone(), admin()))
            .await
            .unwrap();
        let (ea, eb) = (engine.clone(), engine.clone());
        let (ra, rb) = tokio::join!(
            tokio::spawn(async move { ea.submit(a, None).await }),
            tokio::spawn(async move { eb.submit(b, None).await }),
        );
        let results = [ra.unwrap(), rb.unwrap()];
        let won: Vec<RunId> = results
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .copied()
            .collect();
        assert_eq!(won.len(), 1, "round {round}: {results:?}");
        let lost = results.iter().find_map(|r| r.as_ref().err()).unwrap();
        assert_eq!(lost.kind(), ErrorKind::Conflict, "{lost}");
        let open = store
            .list_runs(RunQuery::person(person.id.clone()).open())
            .await
            .unwrap();
        assert_eq!(open.iter().map(|s| s.id).collect::<Vec<_>>(), won);
        let events = store.audit(AuditQuery::all()).await.unwrap();
        assert!(events.iter().any(|e| matches!(
            &e.kind,
            AuditKind::Suppressed { person: p, open_run, .. } if *p == person.id && *open_run == won[0]
        )));
    }
    assert!(store.verify_audit().await.unwrap().is_intact());
}

/// Run and task bodies written before the run's body held `"tasks":[]` (and task bodies their
/// `due_at`) still load, and load as the same run as bodies written now.
#[tokio::test]
async fn bodies_of_the_earlier_shape_still_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("offboard.db");
    let run = run_with_tasks(2, at(0));
    let store = SqliteStore::open(&path).await.unwrap();
    store.create_run(&run, vec![note("created")]).await.unwrap();
    let now = store.load_run(run.id).await.unwrap().unwrap();
    let mut conn = raw(&path).await;
    let id = run.id.to_string();
    // The earlier shape: no `tasks` and no `version` in the run's body, no `due_at` in a task's.
    let body: String = sqlx::query_scalar("SELECT body FROM offboard_runs WHERE id = ?")
        .bind(&id)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["tasks"], serde_json::json!([]), "bodies hold no tasks");
    v.as_object_mut().unwrap().remove("tasks");
    v.as_object_mut().unwrap().remove("version");
    sqlx::query("UPDATE offboard_runs SET body = ? WHERE id = ?")
        .bind(v.to_string())
        .bind(&id)
        .execute(&mut conn)
        .await
        .unwrap();
    let tasks: Vec<(String, String)> =
        sqlx::query_as("SELECT id, body FROM offboard_tasks WHERE run_id = ?")
            .bind(&id)
            .fetch_all(&mut conn)
            .await
            .unwrap();
    for (task, body) in tasks {
        let mut v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v.as_object_mut().unwrap().remove("due_at");
        sqlx::query("UPDATE offboard_tasks SET body = ? WHERE id = ?")
            .bind(v.to_string())
            .bind(task)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    drop(conn);
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.load_run(run.id).await.unwrap(), Some(now));
}
