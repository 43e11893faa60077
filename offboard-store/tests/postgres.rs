//! PostgresStore against a real PostgreSQL (started by `./scripts/test`, which exports
//! `OFFBOARD_TEST_PG_URL`). Every test works in a fresh database of its own, so they run in
//! parallel. Without the variable every test fails: none skips silently.
#![cfg(feature = "postgres")]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use offboard_core::audit::ChainProblem;
use offboard_core::store::conformance;
use offboard_core::{
    Action, ActionName, AppId, AuditEvent, AuditKind, AuditQuery, ClaimRequest, Commit,
    Confirmation, Engine, ErrorKind, Initiator, Lease, Person, Policy, RetryPolicy, Run, RunId,
    RunQuery, RunRequest, RunState, Store, Task, TaskId, TaskKind, TaskState,
};
use offboard_store::{PostgresClock, PostgresStore};
use offboard_testkit::suite::postgres::ScratchDatabase;
use offboard_testkit::suite::reference::{ReferenceConnector, ReferenceUser};
use sqlx::{Connection, PgConnection};

/// A database of its own for one test, dropped when the test ends well.
struct TestDb {
    db: ScratchDatabase,
    url: String,
}

impl TestDb {
    async fn new() -> Self {
        let db = ScratchDatabase::create(&ScratchDatabase::test_server(), "offboard_t")
            .await
            .unwrap_or_else(|e| panic!("cannot create a database on OFFBOARD_TEST_PG_URL: {e}"));
        let url = db.url().to_owned();
        Self { db, url }
    }

    async fn store(&self) -> PostgresStore {
        PostgresStore::connect(&self.url).await.unwrap()
    }

    async fn raw(&self) -> PgConnection {
        PgConnection::connect(&self.url).await.unwrap()
    }

    async fn drop_db(self) {
        self.db.drop_database().await;
    }
}

#[path = "common/tamper.rs"]
mod tampering;
use tampering::{assert_column_reported, assert_moved_row_reported, column_updates, stored_at};

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
}

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

#[tokio::test]
async fn conformance() {
    let db = TestDb::new().await;
    // The suite's claims work on a timeline of their own (the year 2000): the store decides by
    // the requests' clock here. Its own clock is proven by the `*_clock_*` tests below.
    let store = db.store().await.with_clock(PostgresClock::Caller);
    conformance::run_all(&store).await;
    assert!(store.verify_audit().await.unwrap().is_intact());
    // A second connection (another process) migrates nothing and sees the same data.
    let again = db.store().await;
    assert_eq!(
        again.audit(AuditQuery::all()).await.unwrap(),
        store.audit(AuditQuery::all()).await.unwrap()
    );
    db.drop_db().await;
}

/// Guards the upgrade to schema 4 (delegates' records): a database at version 3 (made here by
/// taking migrations 4 to 6 back out of a fresh one) connects, gets the records table, keeps
/// its runs and audit chain, and stores records.
#[tokio::test]
async fn a_version_3_database_migrates_to_4_and_keeps_its_data() {
    let db = TestDb::new().await;
    let run = run_with_tasks(2, at(0));
    let sealed = {
        let store = db.store().await;
        store.create_run(&run, vec![counter_note()]).await.unwrap()
    };
    let mut conn = db.raw().await;
    for sql in [
        "DROP TRIGGER audit_no_truncate ON offboard.audit",
        "DROP TRIGGER audit_head_no_truncate ON offboard.audit_head",
        "DROP TABLE offboard.records",
        "DROP TABLE offboard.audit_personal",
        "DROP FUNCTION offboard.audit_personal_guard()",
        "DROP TABLE offboard.rate_budget",
        "DROP TABLE offboard.rate_budget_slot",
        "DELETE FROM offboard.schema_migrations WHERE version >= 4",
    ] {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    }
    let version: i64 = sqlx::query_scalar("SELECT MAX(version) FROM offboard.schema_migrations")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(version, 3);

    let store = db.store().await;
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
    let version: i64 = sqlx::query_scalar("SELECT MAX(version) FROM offboard.schema_migrations")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(version, offboard_store::POSTGRES_SCHEMA_VERSION);
    assert_eq!(version, 7);
    conn.close().await.unwrap();
    drop(store);
    let store = db.store().await;
    assert_eq!(
        store.get_record("email", "task:1").await.unwrap(),
        Some(record)
    );
    drop(store);
    db.drop_db().await;
}

#[tokio::test]
async fn everything_lives_in_the_offboard_schema() {
    let db = TestDb::new().await;
    let _store = db.store().await;
    let mut conn = db.raw().await;
    let outside: Vec<String> = sqlx::query_scalar(
        "SELECT table_schema::text || '.' || table_name::text FROM information_schema.tables \
         WHERE table_schema NOT IN ('offboard', 'pg_catalog', 'information_schema')",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert!(
        outside.is_empty(),
        "tables outside schema offboard: {outside:?}"
    );
    conn.close().await.unwrap();
    db.drop_db().await;
}

#[tokio::test]
async fn refuses_a_newer_schema_and_a_foreign_one() {
    let db = TestDb::new().await;
    drop(db.store().await);
    let mut conn = db.raw().await;
    sqlx::query(
        "INSERT INTO offboard.schema_migrations \
         (version, description, success, checksum, execution_time) \
         VALUES (99, 'from the future', TRUE, '\\x00', 0)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    let err = PostgresStore::connect(&db.url).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(err.to_string().contains("version 99"), "{err}");
    db.drop_db().await;

    // A schema named offboard that some other application made.
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    sqlx::query("CREATE SCHEMA offboard")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE offboard.invoices (id int)")
        .execute(&mut conn)
        .await
        .unwrap();
    let err = PostgresStore::connect(&db.url).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(err.to_string().contains("invoices"), "{err}");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'offboard'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        tables,
        vec!["invoices".to_owned()],
        "the foreign schema was changed"
    );
    conn.close().await.unwrap();
    db.drop_db().await;
}

#[tokio::test]
async fn no_password_in_debug_or_errors() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let debug = format!("{store:?}");
    assert!(
        !debug.contains(&db.url) && !debug.contains("postgres://"),
        "{debug}"
    );
    // A wrong password against the real server, and an unreachable server.
    let secret = "s3cr3t-Pa55w0rd";
    for url in [
        format!("postgres://nobody:{secret}@127.0.0.1:1/x"),
        format!("postgres://nobody:{secret}@127.0.0.1:1/x?sslmode=bogus"),
        format!("postgres://nobody:{secret}@[::1/x"),
    ] {
        let err = PostgresStore::connect(&url).await.unwrap_err();
        for shown in [err.to_string(), format!("{err:?}")] {
            assert!(!shown.contains(secret), "the password leaked: {shown}");
        }
    }
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_concurrent_claimers_never_share_a_task() {
    let db = TestDb::new().await;
    let store = Arc::new(db.store().await);
    let mut all = HashSet::new();
    // Due an hour ago by the database's clock, which decides.
    let due = Utc::now() - chrono::Duration::hours(1);
    for _ in 0..20 {
        let run = run_with_tasks(50, due);
        all.extend(run.tasks.iter().map(|t| t.id));
        store.create_run(&run, vec![]).await.unwrap();
    }
    let started = Instant::now();
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                let mut claims = 0u32;
                loop {
                    let leases = store
                        .claim(ClaimRequest::new(
                            format!("w{w}"),
                            Utc::now(),
                            Duration::from_secs(600),
                            4,
                        ))
                        .await
                        .unwrap();
                    claims += 1;
                    if leases.is_empty() {
                        return (mine, claims);
                    }
                    mine.extend(leases.into_iter().map(|l| l.task));
                }
            })
        })
        .collect();
    let mut seen = HashSet::new();
    let mut calls = 0;
    for w in workers {
        let (mine, claims) = w.await.unwrap();
        calls += claims;
        for task in mine {
            assert!(seen.insert(task), "task {task} was claimed twice");
        }
    }
    let took = started.elapsed();
    assert_eq!(seen, all, "every due task claimed exactly once");
    eprintln!(
        "postgres: 1000 tasks claimed by 4 workers in {took:?} ({calls} claim calls, {:.0} \
         tasks/s)",
        1000.0 / took.as_secs_f64()
    );
    db.drop_db().await;
}

async fn store_with_events(db: &TestDb, n: usize) -> PostgresStore {
    let store = db.store().await;
    for i in 0..n {
        store
            .append_audit(vec![note(&format!("e{i}"))])
            .await
            .unwrap();
    }
    let check = store.verify_audit().await.unwrap();
    assert!(check.is_intact(), "{check:?}");
    assert_eq!(check.verified, n as u64);
    store
}

/// Runs SQL behind the store's back with the append-only trigger disabled (as a superuser
/// could).
async fn tamper(db: &TestDb, sql: &str) {
    let mut conn = db.raw().await;
    sqlx::query("ALTER TABLE offboard.audit DISABLE TRIGGER audit_append_only")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
}

#[tokio::test]
async fn tampering_is_refused_then_named() {
    let db = TestDb::new().await;
    let store = store_with_events(&db, 6).await;
    // Append-only by trigger.
    let mut conn = db.raw().await;
    let err = sqlx::query("DELETE FROM offboard.audit WHERE seq = 2")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    conn.close().await.unwrap();

    tamper(
        &db,
        "UPDATE offboard.audit SET body = replace(body, '\"actor\":\"test\"', '\"actor\":\"mallory\"') WHERE seq = 4",
    )
    .await;
    let check = store.verify_audit().await.unwrap();
    assert_eq!(check.problem, Some(ChainProblem::Altered { seq: 4 }));
    assert_eq!(check.verified, 3);
    assert_eq!(check.into_result().unwrap_err().kind(), ErrorKind::Tampered);
    db.drop_db().await;

    let db = TestDb::new().await;
    let store = store_with_events(&db, 6).await;
    tamper(&db, "DELETE FROM offboard.audit WHERE seq = 3").await;
    assert_eq!(
        store.verify_audit().await.unwrap().problem,
        Some(ChainProblem::Missing { seq: 3 })
    );
    tamper(&db, "DELETE FROM offboard.audit WHERE seq >= 3").await;
    assert_eq!(
        store.verify_audit().await.unwrap().problem,
        Some(ChainProblem::Missing { seq: 3 }),
        "events cut off the end are missing too"
    );
    db.drop_db().await;

    let db = TestDb::new().await;
    let store = store_with_events(&db, 4).await;
    let all = store.audit(AuditQuery::all()).await.unwrap();
    let mut forged = note("forged");
    forged.seal(5, &all[3].hash);
    let body = serde_json::to_string(&forged).unwrap().replace('\'', "''");
    tamper(
        &db,
        &format!(
            "INSERT INTO offboard.audit (seq, run_id, at, hash, body) VALUES (5, NULL, '{}', '{}', '{body}')",
            stored_at(&forged),
            forged.hash
        ),
    )
    .await;
    assert_eq!(
        store.verify_audit().await.unwrap().problem,
        Some(ChainProblem::Inserted { seq: 5 })
    );
    db.drop_db().await;
}

/// A store whose trail holds `n` events of one run (seq 1 to `n`), and that run.
async fn store_with_run_events(db: &TestDb, n: usize) -> (PostgresStore, RunId) {
    let store = db.store().await;
    let run = RunId::new_v4();
    for i in 0..n {
        let mut e = note(&format!("e{i}"));
        e.run = Some(run);
        store.append_audit(vec![e]).await.unwrap();
    }
    assert!(store.verify_audit().await.unwrap().is_intact());
    (store, run)
}

/// Runs `sql` on a connection of its own, with every trigger in place: its error.
async fn refused(db: &TestDb, sql: &str) -> sqlx::Error {
    let mut conn = db.raw().await;
    let err = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap_err();
    conn.close().await.unwrap();
    err
}

/// Guards TRUNCATE (issue 23 item 2): the row-level append-only trigger does not fire on
/// TRUNCATE, so before migration 5 `TRUNCATE offboard.audit` emptied the trail (and with the
/// head, left verify nothing to miss). Now both are refused, alone or with other tables, and
/// the trail still verifies whole.
#[tokio::test]
async fn truncate_of_the_audit_trail_is_refused() {
    let db = TestDb::new().await;
    let store = store_with_events(&db, 4).await;
    for sql in [
        "TRUNCATE offboard.audit",
        "TRUNCATE offboard.audit_head",
        "TRUNCATE offboard.audit, offboard.audit_head",
        "TRUNCATE offboard.tasks, offboard.runs, offboard.audit CASCADE",
    ] {
        let err = refused(&db, sql).await;
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    let check = store.verify_audit().await.unwrap();
    assert!(check.is_intact(), "{check:?}");
    assert_eq!(check.verified, 4);
    db.drop_db().await;
}

/// Guards the upgrade to schema 5 (TRUNCATE refused): a database at version 4 (made here by
/// taking migration 5 back out of a fresh one) connects, gets the triggers and keeps its trail.
#[tokio::test]
async fn a_version_4_database_migrates_to_5_and_refuses_truncate() {
    let db = TestDb::new().await;
    drop(store_with_events(&db, 3).await);
    let mut conn = db.raw().await;
    for sql in [
        "DROP TRIGGER audit_no_truncate ON offboard.audit",
        "DROP TRIGGER audit_head_no_truncate ON offboard.audit_head",
        "DELETE FROM offboard.schema_migrations WHERE version = 5",
    ] {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();
    let store = db.store().await;
    let err = refused(&db, "TRUNCATE offboard.audit").await;
    assert!(err.to_string().contains("append-only"), "{err}");
    assert_eq!(store.verify_audit().await.unwrap().verified, 3);
    db.drop_db().await;
}

/// Guards the indexed columns (issue 23 item 2): an UPDATE of one column of an audit row
/// alone, leaving its hashed body intact, is refused by the append-only trigger (left in
/// place); with the trigger disabled (as a superuser can), `verify_audit` names the row and
/// the column. Before the check, verify passed every one of these rows while queries answered
/// from them.
#[tokio::test]
async fn verify_names_an_indexed_column_changed_alone() {
    for (column, sql) in column_updates("offboard.audit") {
        let db = TestDb::new().await;
        let (store, _run) = store_with_run_events(&db, 5).await;
        let err = refused(&db, &sql).await;
        assert!(err.to_string().contains("append-only"), "{column}: {err}");
        assert!(store.verify_audit().await.unwrap().is_intact(), "{column}");

        tamper(&db, &sql).await;
        assert_column_reported(store.verify_audit().await.unwrap(), 3, column);
        db.drop_db().await;
    }
    // The key itself: a row moved to another seq leaves a gap where it was.
    let db = TestDb::new().await;
    let (store, _run) = store_with_run_events(&db, 5).await;
    let sql = "UPDATE offboard.audit SET seq = 103 WHERE seq = 3";
    assert!(refused(&db, sql).await.to_string().contains("append-only"));
    tamper(&db, sql).await;
    let check = store.verify_audit().await.unwrap();
    assert_eq!(check.problem, Some(ChainProblem::Missing { seq: 3 }));
    assert_eq!(check.column, None);
    db.drop_db().await;
}

/// Guards the per-run query (issue 23 item 2): a row whose `run_id` column was moved to
/// another run (trigger disabled, as a superuser can) drops out of its run's trail (the query
/// filters on the column), and `verify_audit` reports that row and the column, so the
/// omission is not silent. Before the check, verify passed the trail as intact.
#[tokio::test]
async fn a_row_moved_out_of_its_run_is_reported() {
    let db = TestDb::new().await;
    let (store, run) = store_with_run_events(&db, 4).await;
    let other = RunId::new_v4();
    tamper(
        &db,
        &format!("UPDATE offboard.audit SET run_id = '{other}' WHERE seq = 2"),
    )
    .await;
    let check = store.verify_audit().await.unwrap();
    assert_moved_row_reported(&store, run, other, check).await;
    db.drop_db().await;
}

const POLICY: &str = r#"
[apps.idp]
method = "automatic"
actions = ["idp.suspend", "idp.clear_sessions", "idp.remove_groups"]
"#;

/// Four engines (one store and pool each, as four processes would have) share one database
/// and 1,000 single-person runs: every run completes and every side effect happens once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_engines_share_one_database() {
    const RUNS: usize = 1000;
    let db = TestDb::new().await;
    let connector = Arc::new(
        ReferenceConnector::builder("idp")
            .users((0..RUNS).map(|i| {
                ReferenceUser::employee(format!("u{i}@example.com"))
                    .groups(["eng", "all"])
                    .sessions(2)
            }))
            .build(),
    );
    let mut engines = Vec::new();
    for w in 0..4 {
        let store = PostgresStore::connect_with_pool_size(&db.url, 6)
            .await
            .unwrap();
        engines.push(
            Engine::builder()
                .store(Arc::new(store))
                .connector(connector.clone())
                .policy(Policy::from_toml(POLICY).unwrap())
                .worker_id(format!("engine-{w}"))
                .idle_poll(Duration::from_millis(20))
                .max_in_flight(16)
                .build()
                .unwrap(),
        );
    }
    let handles: Vec<_> = engines.iter().map(Engine::start).collect();
    let started = Instant::now();
    // Submit from all four engines at once while they work.
    let submitters: Vec<_> = engines
        .iter()
        .cloned()
        .enumerate()
        .map(|(w, engine)| {
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in (w..RUNS).step_by(4) {
                    let person = Person::new(format!("p{i}"), format!("u{i}@example.com"));
                    let plan = engine
                        .plan(RunRequest::new(
                            person,
                            Initiator::Admin {
                                actor: "admin@example.com".into(),
                            },
                        ))
                        .await
                        .unwrap();
                    let confirm = plan
                        .has_critical()
                        .then(|| Confirmation::of(&plan, "admin@example.com"));
                    ids.push(engine.submit(plan, confirm).await.unwrap());
                }
                ids
            })
        })
        .collect();
    let mut ids = Vec::new();
    for s in submitters {
        ids.extend(s.await.unwrap());
    }
    let submitted = started.elapsed();
    let store = db.store().await;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let mut query = RunQuery::default();
        query.open_only = true;
        let open = store.list_runs(query).await.unwrap();
        if open.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} runs still open after 300 s",
            open.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = started.elapsed();
    for h in handles {
        h.shutdown().await;
    }

    assert_eq!(ids.len(), RUNS);
    let mut by_worker = std::collections::BTreeMap::<String, usize>::new();
    for id in &ids {
        let run = store.load_run(*id).await.unwrap().unwrap();
        assert_eq!(run.state, RunState::Completed, "run {id}: {:?}", run.tasks);
        for task in &run.tasks {
            assert_eq!(
                task.attempts,
                1,
                "task {} ran {} times",
                task.label(),
                task.attempts
            );
        }
    }
    let events = store.audit(AuditQuery::all()).await.unwrap();
    for e in &events {
        if let (Some(_), AuditKind::Transition { .. }) = (e.task, &e.kind) {
            *by_worker.entry(e.actor.clone()).or_default() += 1;
        }
    }
    for i in 0..RUNS {
        let user = connector
            .user_by_login(&format!("u{i}@example.com"))
            .unwrap();
        for action in ["idp.suspend", "idp.clear_sessions", "idp.remove_groups"] {
            assert_eq!(
                connector.effects(&user.external_id, action),
                1,
                "{action} on user {i}"
            );
        }
    }
    let calls = connector.calls();
    for action in ["idp.suspend", "idp.clear_sessions", "idp.remove_groups"] {
        assert_eq!(
            calls.of(action),
            RUNS as u32,
            "{action} was executed more than once for some task"
        );
    }
    let check = store.verify_audit().await.unwrap();
    assert!(check.is_intact(), "{check:?}");
    assert!(
        by_worker.len() >= 2,
        "the work was not shared between engines: {by_worker:?}"
    );
    eprintln!(
        "postgres: {RUNS} runs x 3 actions by 4 engines: submitted in {submitted:?}, all \
         complete in {took:?} ({:.0} runs/s); {} audit events; task transitions per worker: \
         {by_worker:?}",
        RUNS as f64 / took.as_secs_f64(),
        check.verified
    );
    db.drop_db().await;
}

#[path = "common/falsify.rs"]
mod falsify;

/// Issue 23 item 3, on PostgreSQL: a task row falsified in SQL (a failed task marked
/// completed "done", finished a day earlier; no trigger guards task rows, so none had to be
/// disabled) cannot change a report silently: the run's report and the CSV, JSON and HTML
/// period reports show the task as the chain replays it (failed) and list the forged row as a
/// discrepancy. Failed before reports were built from the chain.
#[tokio::test]
async fn a_falsified_task_row_cannot_change_a_report_silently() {
    let db = TestDb::new().await;
    let store = Arc::new(db.store().await);
    let (id, task) = falsify::run_with_a_failed_task(store.clone()).await;
    falsify::assert_untouched_run_agrees(store.as_ref(), id).await;
    let mut raw = db.raw().await;
    let (body,): (String,) = sqlx::query_as("SELECT body FROM offboard.tasks WHERE id = $1")
        .bind(task.to_string())
        .fetch_one(&mut raw)
        .await
        .unwrap();
    sqlx::query("UPDATE offboard.tasks SET body = $1 WHERE id = $2")
        .bind(falsify::falsified(&body))
        .bind(task.to_string())
        .execute(&mut raw)
        .await
        .unwrap();
    raw.close().await.unwrap();
    falsify::assert_reports_tell_the_truth(store.as_ref(), id, task).await;
    db.drop_db().await;
}

#[tokio::test]
async fn a_period_report_pages_through_every_run_once() {
    use offboard_store::report::{Format, write_period};
    let db = TestDb::new().await;
    let store = db.store().await;
    let mut inside = HashSet::new();
    for i in 0..230 {
        let mut run = run_with_tasks(1, at(i / 9));
        run.state = if i % 2 == 0 {
            RunState::Completed
        } else {
            RunState::Running
        };
        inside.insert(run.id);
        store.create_run(&run, vec![]).await.unwrap();
    }
    store
        .create_run(&run_with_tasks(1, at(-5)), vec![])
        .await
        .unwrap();
    let mut json = Vec::new();
    let summary = write_period(&store, at(0), at(1000), Format::Json, &mut json)
        .await
        .unwrap();
    assert_eq!(summary.runs, 230);
    assert_eq!(summary.completed, 115);
    let doc: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let ids: HashSet<RunId> = doc["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(ids, inside);
    assert_eq!(doc["runs"].as_array().unwrap().len(), 230);
    db.drop_db().await;
}

/// How far the engines' clocks are off in the clock tests.
const SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// The lease length the clock tests ask for.
const LEASE: Duration = Duration::from_secs(300);

/// How long `task`'s stored lease has left by the database's clock.
async fn lease_left(db: &TestDb, task: TaskId) -> chrono::TimeDelta {
    let mut conn = db.raw().await;
    let (until, now): (String, String) = sqlx::query_as(
        "SELECT lease_until, to_char(now() AT TIME ZONE 'UTC', \
         'YYYY-MM-DD\"T\"HH24:MI:SS.US\"000Z\"') FROM offboard.tasks WHERE id = $1",
    )
    .bind(task.to_string())
    .fetch_one(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    let parse = |s: &str| DateTime::parse_from_rfc3339(s).unwrap();
    parse(&until) - parse(&now)
}

/// Asserts `task`'s lease runs out between 4 and 5 minutes (`LEASE`) from the database's now:
/// measured from its clock, whatever the clock of the worker that took it said.
async fn assert_lease_by_the_database_clock(db: &TestDb, task: TaskId, what: &str) {
    let left = lease_left(db, task).await;
    assert!(
        left > chrono::TimeDelta::minutes(4) && left <= chrono::TimeDelta::minutes(5),
        "{what}: the lease has {left} left by the database's clock, not about 5 minutes"
    );
}

/// A store on the database's clock (the default) with a run of one task due an hour ago.
async fn one_due_task(db: &TestDb) -> (PostgresStore, Run) {
    let store = db.store().await;
    let run = run_with_tasks(1, Utc::now() - chrono::TimeDelta::hours(1));
    store.create_run(&run, vec![]).await.unwrap();
    (store, run)
}

/// What `worker` claims (a `LEASE` each) when its clock reads `now`.
async fn claim_at(store: &PostgresStore, worker: &str, now: DateTime<Utc>) -> Vec<Lease> {
    store
        .claim(ClaimRequest::new(worker, now, LEASE, 10))
        .await
        .unwrap()
}

fn tasks(leases: &[Lease]) -> Vec<TaskId> {
    leases.iter().map(|l| l.task).collect()
}

/// Guards lease expiry by the database's clock against a host clock that runs ahead: worker A
/// holds a 5-minute lease; worker B, whose clock is 10 minutes ahead, claims. It must get
/// nothing (the store compared the lease with B's clock, found it expired and handed the task
/// out a second time), and a lease B renews lasts 5 minutes from the database's now, not 15.
#[tokio::test]
async fn a_clock_ahead_does_not_take_a_live_lease() {
    let db = TestDb::new().await;
    let (store, run) = one_due_task(&db).await;
    let task = run.tasks[0].id;
    let held = claim_at(&store, "worker-a", Utc::now()).await;
    assert_eq!(tasks(&held), [task]);
    assert_lease_by_the_database_clock(&db, task, "claimed with a true clock").await;

    let ahead = Utc::now() + SKEW;
    assert_eq!(
        tasks(&claim_at(&store, "worker-b", ahead).await),
        [],
        "a worker 10 minutes ahead took a lease that is live for 5 more minutes"
    );
    let renewed = store.renew(&held[0], ahead, LEASE).await.unwrap();
    assert_eq!(
        renewed.until,
        ahead + LEASE,
        "the lease as its renewer reckons"
    );
    assert_lease_by_the_database_clock(&db, task, "renewed 10 minutes ahead").await;
    db.drop_db().await;
}

/// Guards lease expiry by the database's clock against a host clock that runs behind: a dead
/// worker's lease ran out 5 minutes ago by the database's clock; worker B, 10 minutes behind,
/// claims it (the store compared with B's clock, to which it was still live, and the task sat
/// until B's clock caught up). B's lease, taken and then renewed on its clock, lasts 5 minutes
/// from the database's now: a worker with a true clock does not take it (it was stored as
/// already expired).
#[tokio::test]
async fn a_clock_behind_still_reclaims_an_expired_lease() {
    let db = TestDb::new().await;
    let (store, run) = one_due_task(&db).await;
    let task = run.tasks[0].id;
    assert_eq!(
        tasks(&claim_at(&store, "worker-dead", Utc::now()).await),
        [task]
    );
    let mut conn = db.raw().await;
    sqlx::query(
        "UPDATE offboard.tasks SET lease_until = to_char((now() - interval '5 minutes') \
         AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"000Z\"') WHERE id = $1",
    )
    .bind(task.to_string())
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();

    let behind = Utc::now() - SKEW;
    let taken = claim_at(&store, "worker-b", behind).await;
    assert_eq!(
        tasks(&taken),
        [task],
        "a worker 10 minutes behind left a lease that expired 5 minutes ago"
    );
    assert_eq!(
        taken[0].until,
        behind + LEASE,
        "the lease as its claimer reckons"
    );
    assert_lease_by_the_database_clock(&db, task, "claimed 10 minutes behind").await;
    assert_eq!(tasks(&claim_at(&store, "worker-c", Utc::now()).await), []);

    store.renew(&taken[0], behind, LEASE).await.unwrap();
    assert_lease_by_the_database_clock(&db, task, "renewed 10 minutes behind").await;
    assert_eq!(
        tasks(&claim_at(&store, "worker-c", Utc::now()).await),
        [],
        "a lease renewed 10 minutes behind was taken while its holder was alive"
    );
    db.drop_db().await;
}

/// Guards the leases taken with a commit (`Commit::claims`): a worker whose clock is 10
/// minutes behind takes its next task with a commit; the lease lasts 5 minutes from the
/// database's now (it was stored at the worker's `until`, 5 minutes in the database's past,
/// and a worker with a true clock took the task too).
#[tokio::test]
async fn a_lease_taken_with_a_commit_lasts_by_the_database_clock() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let mut run = run_with_tasks(2, Utc::now() - chrono::TimeDelta::hours(1));
    run.tasks[1].due_at = Some(Utc::now() - chrono::TimeDelta::minutes(30));
    store.create_run(&run, vec![]).await.unwrap();
    let (t0, t1) = (run.tasks[0].id, run.tasks[1].id);
    let behind = Utc::now() - SKEW;
    let held = store
        .claim(ClaimRequest::new("worker-b", behind, LEASE, 1))
        .await
        .unwrap();
    assert_eq!(tasks(&held), [t0]);
    let loaded = store.load_run(run.id).await.unwrap().unwrap();
    let next = Lease {
        run: run.id,
        task: t1,
        worker: "worker-b".into(),
        token: uuid::Uuid::new_v4(),
        until: behind + LEASE,
        claims: 1,
        run_version: None,
    };
    store
        .commit(
            Commit::new(loaded, vec![], vec![])
                .under_lease(held[0].clone(), true)
                .claiming(next)
                .made_at(behind),
        )
        .await
        .unwrap();
    assert_lease_by_the_database_clock(&db, t1, "taken with a commit 10 minutes behind").await;
    assert_eq!(
        tasks(&claim_at(&store, "worker-c", Utc::now()).await),
        [t0],
        "only the released task is free: the one taken with the commit is held"
    );
    db.drop_db().await;
}

/// Runs with one task each, due an hour ago, created and each task claimed: the runs as
/// loaded (version 1) and their leases.
async fn claimed_runs(store: &PostgresStore, n: usize) -> Vec<(Run, Lease)> {
    let due = Utc::now() - chrono::TimeDelta::hours(1);
    let mut runs = Vec::new();
    for _ in 0..n {
        let run = run_with_tasks(1, due);
        store.create_run(&run, vec![]).await.unwrap();
        let lease = store
            .claim(ClaimRequest::new("w", Utc::now(), LEASE, 1))
            .await
            .unwrap()
            .pop()
            .unwrap();
        assert_eq!(lease.run, run.id);
        runs.push((store.load_run(run.id).await.unwrap().unwrap(), lease));
    }
    runs
}

/// `run`'s task started, under `lease`, with one note.
fn started(run: &Run, lease: Lease) -> Commit {
    let mut next = run.clone();
    next.tasks[0].state = TaskState::Running {
        attempt: 1,
        since: Utc::now(),
    };
    next.tasks[0].attempts = 1;
    let task = next.tasks[0].id;
    Commit::new(next, vec![task], vec![note("started").with_run(run.id)]).under_lease(lease, false)
}

/// How many transactions inserted the audit rows of `runs` (their `xmin`s).
async fn transactions_of(db: &TestDb, runs: &[RunId]) -> i64 {
    let ids: Vec<String> = runs.iter().map(|r| r.to_string()).collect();
    sqlx::query_scalar(
        "SELECT count(DISTINCT xmin::text) FROM offboard.audit WHERE run_id = ANY($1)",
    )
    .bind(ids)
    .fetch_one(&mut db.raw().await)
    .await
    .unwrap()
}

/// Commits made at once by one process share a transaction, and each is answered as if it had
/// run alone: 20 concurrent commits, one at a stale version and one under a lost lease. The
/// two are refused (`Conflict`, their runs and the chain unchanged by them); the other 18
/// stand at version 2 with their events sealed in one transaction, one after another, and
/// the chain verifies.
#[tokio::test]
async fn concurrent_commits_share_a_transaction_and_are_answered_as_alone() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let runs = claimed_runs(&store, 20).await;
    let mut commits: Vec<Commit> = runs
        .iter()
        .map(|(run, lease)| started(run, lease.clone()))
        .collect();
    commits[3].run.version = 0;
    if let Some((lease, _)) = commits[11].leases.first_mut() {
        lease.token = uuid::Uuid::new_v4();
    }
    // The current-thread runtime polls every commit once before the group's task runs:
    // they all queue for one group.
    let answers = futures::future::join_all(commits.into_iter().map(|c| store.commit(c))).await;
    let mut standing = Vec::new();
    let mut seqs = Vec::new();
    for (i, answer) in answers.into_iter().enumerate() {
        let run = runs[i].0.id;
        let stored = store.load_run(run).await.unwrap().unwrap();
        if i == 3 || i == 11 {
            let err = answer.expect_err("a stale or lost commit stood");
            assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
            assert_eq!(stored.version, 1, "a refused commit changed its run");
            assert_eq!(stored.tasks[0].state, TaskState::Pending);
            let events = store.audit(AuditQuery::run(run)).await.unwrap();
            assert!(
                events.is_empty(),
                "a refused commit wrote events: {events:?}"
            );
            continue;
        }
        let (version, sealed) = answer.unwrap();
        assert_eq!((version, stored.version), (2, 2));
        assert!(
            matches!(stored.tasks[0].state, TaskState::Running { attempt: 1, .. }),
            "{:?}",
            stored.tasks[0].state
        );
        assert_eq!(sealed.len(), 1);
        seqs.push((run.to_string(), sealed[0].seq));
        standing.push(run);
    }
    assert_eq!(standing.len(), 18);
    seqs.sort();
    let seqs: Vec<u64> = seqs.into_iter().map(|(_, seq)| seq).collect();
    let first = seqs[0];
    assert_eq!(
        seqs,
        (first..first + 18).collect::<Vec<_>>(),
        "the group's events follow one another in the order of their runs' ids"
    );
    assert_eq!(
        transactions_of(&db, &standing).await,
        1,
        "the 18 commits that stood did not share one transaction"
    );
    let check = store.verify_audit().await.unwrap();
    assert!(check.is_intact(), "{check:?}");
    db.drop_db().await;
}

/// A group the database fails (here a trigger refusing one run's update) is undone, and each
/// of its commits runs alone: the one the database refuses gets the database's error, the
/// others stand, each in a transaction of its own.
#[tokio::test]
async fn a_group_the_database_fails_runs_its_commits_alone() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let runs = claimed_runs(&store, 6).await;
    let doomed = runs[2].0.id;
    let mut conn = db.raw().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE FUNCTION offboard.refuse_run() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$; \
         CREATE TRIGGER refuse_run BEFORE UPDATE ON offboard.runs FOR EACH ROW \
         WHEN (OLD.id = '{doomed}') EXECUTE FUNCTION offboard.refuse_run();"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    let answers = futures::future::join_all(
        runs.iter()
            .map(|(run, lease)| store.commit(started(run, lease.clone()))),
    )
    .await;
    let mut standing = Vec::new();
    for ((run, _), answer) in runs.iter().zip(answers) {
        if run.id == doomed {
            let err = answer.expect_err("the database refused this commit");
            assert_eq!(err.kind(), ErrorKind::Storage, "{err}");
            assert_eq!(store.load_run(run.id).await.unwrap().unwrap().version, 1);
        } else {
            assert_eq!(answer.unwrap().0, 2);
            standing.push(run.id);
        }
    }
    assert_eq!(
        transactions_of(&db, &standing).await,
        5,
        "after the group failed, each commit ran alone"
    );
    let check = store.verify_audit().await.unwrap();
    assert!(check.is_intact(), "{check:?}");
    db.drop_db().await;
}

/// With groups of one (`with_group_commit(1)`), concurrent commits each take a transaction of
/// their own, and every answer is the same.
#[tokio::test]
async fn groups_of_one_commit_each_alone() {
    let db = TestDb::new().await;
    let store = db.store().await.with_group_commit(1);
    let runs = claimed_runs(&store, 5).await;
    let answers = futures::future::join_all(
        runs.iter()
            .map(|(run, lease)| store.commit(started(run, lease.clone()))),
    )
    .await;
    for answer in answers {
        assert_eq!(answer.unwrap().0, 2);
    }
    let ids: Vec<RunId> = runs.iter().map(|(run, _)| run.id).collect();
    assert_eq!(transactions_of(&db, &ids).await, 5);
    db.drop_db().await;
}

/// New runs created at once share a transaction too: ten people's runs stand together, and a
/// second open run for one of them, created in the same group, is refused (`Conflict`) and
/// leaves nothing behind.
#[tokio::test]
async fn concurrent_new_runs_share_a_transaction() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let due = Utc::now();
    let runs: Vec<Run> = (0..10).map(|_| run_with_tasks(2, due)).collect();
    let mut second = run_with_tasks(2, due);
    second.person = runs[4].person.clone();
    let all: Vec<&Run> = runs.iter().chain([&second]).collect();
    let answers = futures::future::join_all(
        all.iter()
            .map(|run| store.create_run(run, vec![note("created").with_run(run.id)])),
    )
    .await;
    let mut created = Vec::new();
    let mut refused = 0;
    for (run, answer) in all.iter().zip(answers) {
        match answer {
            Ok(sealed) => {
                assert_eq!(sealed.len(), 1);
                let stored = store.load_run(run.id).await.unwrap().unwrap();
                assert_eq!((stored.version, stored.tasks.len()), (1, 2));
                created.push(run.id);
            }
            Err(err) => {
                assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
                assert!(store.load_run(run.id).await.unwrap().is_none());
                assert!(
                    store
                        .audit(AuditQuery::run(run.id))
                        .await
                        .unwrap()
                        .is_empty()
                );
                refused += 1;
            }
        }
    }
    assert_eq!(
        (created.len(), refused),
        (10, 1),
        "one of the person's runs stands"
    );
    assert_eq!(transactions_of(&db, &created).await, 1);
    let check = store.verify_audit().await.unwrap();
    assert!(check.is_intact(), "{check:?}");
    db.drop_db().await;
}

/// A commit whose caller stops waiting before its group runs is not written, as a commit
/// alone is not when its future is dropped before it ran; the commit queued after it stands.
#[tokio::test]
async fn a_commit_given_up_before_its_group_ran_is_not_written() {
    use futures::FutureExt;
    let db = TestDb::new().await;
    let store = db.store().await;
    let runs = claimed_runs(&store, 2).await;
    let given_up = store
        .commit(started(&runs[0].0, runs[0].1.clone()))
        .now_or_never();
    assert!(
        given_up.is_none(),
        "a grouped commit answered before its group ran"
    );
    let (version, _) = store
        .commit(started(&runs[1].0, runs[1].1.clone()))
        .await
        .unwrap();
    assert_eq!(version, 2);
    let stored = store.load_run(runs[0].0.id).await.unwrap().unwrap();
    assert_eq!(stored.version, 1, "the commit given up was written");
    assert!(
        store
            .audit(AuditQuery::run(runs[0].0.id))
            .await
            .unwrap()
            .is_empty()
    );
    db.drop_db().await;
}
