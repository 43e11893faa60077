//! Erasure without breaking proof (issue 23 item 5), on both SQL stores: a real engine
//! offboards Zelda Quokkafeather (and Ada, who stays), with the audit trail also written to a
//! JSON-lines file; erasing Zelda leaves her name, addresses and group in no table and no
//! file the library wrote (SQLite file and write-ahead log, the JSON-lines file; every
//! PostgreSQL table dumped as text), while the chain, a checkpoint signed before the erasure
//! and the run's report still verify. Also: the refusals, erasing twice, and tampering after
//! erasure.
//!
//! The PostgreSQL half needs `OFFBOARD_TEST_PG_URL` (exported by `./scripts/test`); each test
//! works in a database of its own.
#![cfg(feature = "postgres")]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use offboard_core::{
    AuditQuery, AuditSink, CheckpointSigner, CheckpointVerifier, Engine, ErrorKind, Initiator,
    Person, PersonId, Policy, RunId, RunRequest, RunState, Store,
};
use offboard_store::report::RunReport;
use offboard_store::{AuditVerification, JsonLinesSink, PostgresStore, SqliteStore};
use offboard_testkit::postgres::ScratchDatabase;
use offboard_testkit::reference::{ReferenceConnector, ReferenceUser};
use sqlx::{Connection, Row};

const POLICY: &str = r#"
[apps.idp]
method = "automatic"
actions = ["idp.suspend", "idp.clear_sessions", "idp.remove_groups"]
"#;

const ZELDA_ID: &str = "p-zelda-quokkafeather";
const ZELDA_NAME: &str = "Zelda Quokkafeather";
const ZELDA_EMAIL: &str = "zelda.quokkafeather@example.com";
const ZELDA_ALIAS: &str = "zq@example.com";
const ZELDA_GROUP: &str = "quokka-secret-council";
const ADA_EMAIL: &str = "ada.lovelace@example.com";
const ADA_GROUP: &str = "analytical-engine-club";

/// What must be gone after the erasure, in any case.
fn zelda_needles() -> Vec<String> {
    [
        ZELDA_ID,
        ZELDA_NAME,
        ZELDA_EMAIL,
        ZELDA_ALIAS,
        ZELDA_GROUP,
        "Quokkafeather",
    ]
    .into_iter()
    .flat_map(|s| [s.to_owned(), s.to_lowercase()])
    .collect()
}

/// One of the two SQL stores and where it keeps its data.
enum Db {
    Sqlite {
        _dir: tempfile::TempDir,
        path: PathBuf,
        store: Arc<SqliteStore>,
    },
    Postgres {
        db: ScratchDatabase,
        store: Arc<PostgresStore>,
    },
}

impl Db {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("offboard.db");
        let store = Arc::new(SqliteStore::open(&path).await.unwrap());
        Self::Sqlite {
            _dir: dir,
            path,
            store,
        }
    }

    async fn postgres() -> Self {
        let db = ScratchDatabase::create(&ScratchDatabase::test_server(), "offboard_er")
            .await
            .unwrap_or_else(|e| panic!("cannot create a database on OFFBOARD_TEST_PG_URL: {e}"));
        let store = Arc::new(PostgresStore::connect(db.url()).await.unwrap());
        Self::Postgres { db, store }
    }

    fn store(&self) -> Arc<dyn Store> {
        match self {
            Self::Sqlite { store, .. } => store.clone(),
            Self::Postgres { store, .. } => store.clone(),
        }
    }

    async fn verify(&self) -> AuditVerification {
        match self {
            Self::Sqlite { store, .. } => store.verify_audit().await.unwrap(),
            Self::Postgres { store, .. } => store.verify_audit().await.unwrap(),
        }
    }

    async fn head(&self) -> (u64, String) {
        match self {
            Self::Sqlite { store, .. } => store.audit_head().await.unwrap(),
            Self::Postgres { store, .. } => store.audit_head().await.unwrap(),
        }
    }

    async fn verify_against(
        &self,
        checkpoints: &[offboard_core::Checkpoint],
        verifier: &CheckpointVerifier,
    ) -> AuditVerification {
        match self {
            Self::Sqlite { store, .. } => store
                .verify_audit_against(checkpoints, verifier)
                .await
                .unwrap(),
            Self::Postgres { store, .. } => store
                .verify_audit_against(checkpoints, verifier)
                .await
                .unwrap(),
        }
    }

    /// Every table the store has, dumped as text (one line per row).
    async fn dump(&self) -> String {
        let mut out = String::new();
        match self {
            Self::Sqlite { path, .. } => {
                let mut conn = sqlite_conn(path).await;
                let tables: Vec<String> =
                    sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
                        .fetch_all(&mut conn)
                        .await
                        .unwrap();
                assert!(tables.iter().any(|t| t == "offboard_audit_personal"));
                for table in tables {
                    let columns: Vec<String> =
                        sqlx::query_scalar("SELECT name FROM pragma_table_info(?1)")
                            .bind(&table)
                            .fetch_all(&mut conn)
                            .await
                            .unwrap();
                    let row = columns
                        .iter()
                        .map(|c| {
                            format!(
                                "coalesce(CASE WHEN typeof(\"{c}\") = 'blob' THEN hex(\"{c}\") \
                                 ELSE CAST(\"{c}\" AS TEXT) END, '')"
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(" || '|' || ");
                    let sql = format!("SELECT {row} FROM \"{table}\"");
                    let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                        .fetch_all(&mut conn)
                        .await
                        .unwrap();
                    out.push_str(&format!("== {table}\n{}\n", rows.join("\n")));
                }
                conn.close().await.unwrap();
            }
            Self::Postgres { db, .. } => {
                let mut conn = sqlx::PgConnection::connect(db.url()).await.unwrap();
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT table_name::text FROM information_schema.tables \
                     WHERE table_schema = 'offboard'",
                )
                .fetch_all(&mut conn)
                .await
                .unwrap();
                assert!(tables.iter().any(|t| t == "audit_personal"));
                for table in tables {
                    let sql = format!("SELECT t::text FROM offboard.\"{table}\" t");
                    let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                        .fetch_all(&mut conn)
                        .await
                        .unwrap();
                    out.push_str(&format!("== {table}\n{}\n", rows.join("\n")));
                }
                conn.close().await.unwrap();
            }
        }
        out
    }

    /// The bytes of every file the store wrote (SQLite: the database and its write-ahead
    /// log; PostgreSQL keeps no file of ours).
    fn files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        match self {
            Self::Sqlite { path, .. } => {
                let dir = path.parent().unwrap();
                std::fs::read_dir(dir)
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with("offboard.db"))
                    })
                    .map(|p| {
                        let bytes = std::fs::read(&p).unwrap();
                        (p, bytes)
                    })
                    .collect()
            }
            Self::Postgres { .. } => Vec::new(),
        }
    }

    /// Runs `sql` behind the store's back, its append-only and personal-value triggers off.
    async fn tamper(&self, sql: &str) {
        match self {
            Self::Sqlite { path, .. } => {
                let mut conn = sqlite_conn(path).await;
                for s in [
                    "DROP TRIGGER IF EXISTS offboard_audit_no_update",
                    "DROP TRIGGER IF EXISTS offboard_audit_personal_no_update",
                    sql,
                ] {
                    sqlx::query(sqlx::AssertSqlSafe(s.to_owned()))
                        .execute(&mut conn)
                        .await
                        .unwrap();
                }
                conn.close().await.unwrap();
            }
            Self::Postgres { db, .. } => {
                let mut conn = sqlx::PgConnection::connect(db.url()).await.unwrap();
                for s in [
                    "ALTER TABLE offboard.audit DISABLE TRIGGER audit_append_only",
                    "ALTER TABLE offboard.audit_personal DISABLE TRIGGER audit_personal_guard",
                    sql,
                ] {
                    sqlx::query(sqlx::AssertSqlSafe(s.to_owned()))
                        .execute(&mut conn)
                        .await
                        .unwrap();
                }
                conn.close().await.unwrap();
            }
        }
    }

    fn tables(&self) -> (&'static str, &'static str) {
        match self {
            Self::Sqlite { .. } => ("offboard_audit", "offboard_audit_personal"),
            Self::Postgres { .. } => ("offboard.audit", "offboard.audit_personal"),
        }
    }

    async fn drop_db(self) {
        if let Self::Postgres { db, store } = self {
            drop(store);
            db.drop_database().await;
        }
    }
}

async fn sqlite_conn(path: &Path) -> sqlx::SqliteConnection {
    sqlx::SqliteConnection::connect_with(&sqlx::sqlite::SqliteConnectOptions::new().filename(path))
        .await
        .unwrap()
}

/// Offboards Zelda and Ada with a real engine on `store`, the trail also going to `jsonl`;
/// returns their runs.
async fn offboard_both(store: Arc<dyn Store>, jsonl: &Path) -> (RunId, RunId) {
    let connector = Arc::new(
        ReferenceConnector::builder("idp")
            .user(
                ReferenceUser::employee(ZELDA_EMAIL)
                    .alias(ZELDA_ALIAS)
                    .group(ZELDA_GROUP),
            )
            .user(ReferenceUser::employee(ADA_EMAIL).group(ADA_GROUP))
            .build(),
    );
    let sink: Arc<dyn AuditSink> = Arc::new(JsonLinesSink::open(jsonl).await.unwrap());
    let engine = Engine::builder()
        .store(store)
        .connector(connector)
        .audit_sink(sink)
        .policy(Policy::from_toml(POLICY).unwrap())
        .idle_poll(Duration::from_millis(10))
        .build()
        .unwrap();
    let workers = engine.start();
    let mut ids = Vec::new();
    for (person, reason) in [
        (
            Person::new(ZELDA_ID, ZELDA_EMAIL)
                .with_name(ZELDA_NAME)
                .with_alias(ZELDA_ALIAS),
            format!("left; {ZELDA_GROUP} handed over"),
        ),
        (
            Person::new("p-ada", ADA_EMAIL).with_name("Ada Lovelace"),
            "retired".to_owned(),
        ),
    ] {
        let request = RunRequest::new(
            person,
            Initiator::Admin {
                actor: "hr-admin@example.com".into(),
            },
        )
        .with_reason(reason);
        let plan = engine.plan(request).await.unwrap();
        let id = engine.submit(plan, None).await.unwrap();
        let run = tokio::time::timeout(Duration::from_secs(60), engine.wait(id))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(run.state, RunState::Completed, "{run:?}");
        engine.verify(id).await.unwrap();
        ids.push(id);
    }
    // The sink's pump writes every committed event before shutdown returns.
    workers.shutdown().await;
    (ids[0], ids[1])
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

async fn erase_zelda_and_check(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("audit.jsonl");
    let store = db.store();
    let (zelda, ada) = offboard_both(store.clone(), &jsonl).await;
    let person = PersonId::new(ZELDA_ID);

    // Before: her data is there (the test can fail), but never in the JSON-lines file.
    let dump = db.dump().await;
    assert!(dump.contains(ZELDA_NAME) && dump.contains(ZELDA_GROUP));
    let file = std::fs::read(&jsonl).unwrap();
    for n in zelda_needles() {
        assert!(!contains(&file, &n), "the JSON-lines file holds {n:?}");
    }
    let signer = CheckpointSigner::from_seed([9; 32]);
    let (seq, hash) = db.head().await;
    let checkpoint = signer.sign(seq, &hash, Utc::now());
    let verifier = CheckpointVerifier::new()
        .with_key(signer.public_key())
        .unwrap();
    let events_before = store.audit(AuditQuery::all()).await.unwrap();
    let accounts = store.accounts(&person).await.unwrap().len() as u64;

    // Refused inside the rollback window, nothing changed.
    let finished = store
        .load_run(zelda)
        .await
        .unwrap()
        .unwrap()
        .finished_at
        .unwrap();
    let err = store.erase_person(&person, finished).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(!err.to_string().contains(ZELDA_ID), "{err}");
    assert_eq!(db.dump().await, dump);

    let report = store
        .erase_person(&person, Utc::now() + chrono::Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(report.runs, 1, "{report:?}");
    assert!(report.events >= 5, "{report:?}");
    assert!(report.snapshots >= 1, "{report:?}");
    assert_eq!(report.accounts, accounts, "{report:?}");
    let pseudonym = report.pseudonym.clone().unwrap();
    assert!(pseudonym.starts_with("erased:"));

    // Gone from every table and every file.
    let dump = db.dump().await;
    for n in zelda_needles() {
        let line = dump.lines().find(|l| l.contains(&n));
        assert!(line.is_none(), "a table still holds {n:?}: {line:?}");
    }
    for (path, bytes) in db
        .files()
        .into_iter()
        .chain([(jsonl.clone(), std::fs::read(&jsonl).unwrap())])
    {
        for n in zelda_needles() {
            assert!(
                !contains(&bytes, &n),
                "{} still holds {n:?}",
                path.display()
            );
        }
    }
    // Ada's data is untouched.
    assert!(dump.contains(ADA_EMAIL) && dump.contains(ADA_GROUP));
    let ada_events = store.audit(AuditQuery::run(ada)).await.unwrap();
    assert!(ada_events.iter().any(|e| e.salt.is_some()));
    assert_eq!(
        ada_events,
        events_before
            .iter()
            .filter(|e| e.run == Some(ada))
            .cloned()
            .collect::<Vec<_>>()
    );

    // The proof stands: the chain, the checkpoint signed before, every hash as it was.
    let check = db.verify().await;
    assert!(check.is_intact(), "{check:?}");
    assert_eq!(check.verified, events_before.len() as u64);
    let check = db.verify_against(&[checkpoint], &verifier).await;
    assert!(check.is_intact(), "{check:?}");
    let after = store.audit(AuditQuery::all()).await.unwrap();
    for (b, a) in events_before.iter().zip(&after) {
        assert_eq!((b.seq, &b.hash), (a.seq, &a.hash));
        assert_eq!(a.compute_hash(), a.hash);
    }
    // The report shows the run as the erasure left it, with no discrepancy.
    let stored = store.load_run(zelda).await.unwrap().unwrap();
    let run_report = RunReport::new(&stored, &after);
    assert_eq!(run_report.person.as_str(), pseudonym);
    assert_eq!(run_report.email, "");
    assert!(
        run_report.discrepancies.is_empty(),
        "{:?}",
        run_report.discrepancies
    );
    assert_eq!(run_report.actions.len(), 3);
    assert!(run_report.actions.iter().all(|a| a.state == "completed"));

    // Twice: nothing left.
    let again = store
        .erase_person(&person, Utc::now() + chrono::Duration::seconds(1))
        .await
        .unwrap();
    assert!(again.already_done(), "{again:?}");

    // Tampering after erasure is still found: a changed commitment in an erased event, a
    // changed value kept beside a live one.
    let (audit, personal) = db.tables();
    let planned = after.iter().find(|e| e.run == Some(zelda)).unwrap();
    let text = serde_json::to_string(planned).unwrap();
    let at = text.find("personal:").unwrap();
    let commitment = &text[at..at + "personal:".len() + 64];
    let mut forged = commitment.to_owned();
    let last = if forged.ends_with('0') { "1" } else { "0" };
    forged.replace_range(forged.len() - 1.., last);
    db.tamper(&format!(
        "UPDATE {audit} SET body = replace(body, '{commitment}', '{forged}') WHERE seq = {}",
        planned.seq
    ))
    .await;
    let check = db.verify().await;
    assert_eq!(
        check.problem,
        Some(offboard_core::audit::ChainProblem::Altered { seq: planned.seq }),
        "{check:?}"
    );
    db.tamper(&format!(
        "UPDATE {audit} SET body = replace(body, '{forged}', '{commitment}') WHERE seq = {}",
        planned.seq
    ))
    .await;
    assert!(db.verify().await.is_intact());
    let ada_planned = ada_events.first().unwrap().seq;
    db.tamper(&format!(
        "UPDATE {personal} SET vals = replace(vals, 'Ada Lovelace', 'Eve Lovelace') WHERE seq = {ada_planned}"
    ))
    .await;
    let check = db.verify().await;
    assert_eq!(check.first_bad_seq(), Some(ada_planned), "{check:?}");
    assert_eq!(check.column.as_deref(), Some("personal"), "{check:?}");
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasing_a_person_leaves_no_trace_and_the_proof_on_sqlite() {
    erase_zelda_and_check(Db::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasing_a_person_leaves_no_trace_and_the_proof_on_postgres() {
    erase_zelda_and_check(Db::postgres().await).await;
}

/// On PostgreSQL only erasure deletes personal values: a plain DELETE (or TRUNCATE, or an
/// UPDATE) of the side table is refused by its trigger, as changes to the audit table are.
#[tokio::test]
async fn postgres_refuses_deleting_personal_values_outside_erasure() {
    let db = Db::postgres().await;
    let dir = tempfile::tempdir().unwrap();
    offboard_both(db.store(), &dir.path().join("audit.jsonl")).await;
    let Db::Postgres { db: scratch, .. } = &db else {
        unreachable!()
    };
    let mut conn = sqlx::PgConnection::connect(scratch.url()).await.unwrap();
    for sql in [
        "DELETE FROM offboard.audit_personal",
        "UPDATE offboard.audit_personal SET vals = '{}'",
        "TRUNCATE offboard.audit_personal",
    ] {
        let err = sqlx::query(sql).execute(&mut conn).await.unwrap_err();
        assert!(
            err.to_string().contains("only deleted by erasure")
                || err.to_string().contains("append-only"),
            "{sql}: {err}"
        );
    }
    let n: i64 = sqlx::query("SELECT count(*) FROM offboard.audit_personal")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get(0);
    assert!(n > 0);
    conn.close().await.unwrap();
    assert!(db.verify().await.is_intact());
    db.drop_db().await;
}
