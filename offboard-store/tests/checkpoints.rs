//! Signed checkpoints against both SQL stores: whoever can write the database (on PostgreSQL
//! a superuser who disables the append-only trigger first) deletes the tail and rewrites the
//! stored head, or re-seals the chain forward from a changed event. The chain's own hashes
//! then verify; checking against the latest checkpoint reports the first bad seq. Also: key
//! rotation, forged checkpoints, and the checkpoint sinks (JSON lines, object stores).
//!
//! The PostgreSQL half needs `OFFBOARD_TEST_PG_URL` (exported by `./scripts/test`); each test
//! works in a database of its own.
#![cfg(all(feature = "postgres", feature = "object-store"))]

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use offboard_core::checkpoint::{CheckpointKey, CheckpointProblem};
use offboard_core::{
    AuditEvent, AuditKind, AuditQuery, Checkpoint, CheckpointSigner, CheckpointSink,
    CheckpointVerifier, ErrorKind, Store,
};
use offboard_store::{
    AuditVerification, JsonLinesCheckpointSink, ObjectStoreCheckpointSink, PostgresStore,
    SqliteStore,
};
use offboard_testkit::suite::postgres::ScratchDatabase;
use sqlx::Connection;

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
}

fn note(i: usize) -> AuditEvent {
    AuditEvent::new(
        at(i as i64),
        "test",
        AuditKind::Note {
            name: format!("e{i}"),
            data: serde_json::json!({ "i": i }),
        },
    )
}

fn key1() -> CheckpointSigner {
    CheckpointSigner::from_seed([1; 32])
        .with_key_id("k1")
        .unwrap()
}

fn key2() -> CheckpointSigner {
    CheckpointSigner::from_seed([2; 32])
        .with_key_id("k2")
        .unwrap()
}

fn verifier(keys: &[&CheckpointSigner]) -> CheckpointVerifier {
    keys.iter().fold(CheckpointVerifier::new(), |v, k| {
        v.with_key(k.public_key()).unwrap()
    })
}

/// One of the two SQL stores, with what it takes to tamper with it behind its back.
enum Db {
    Sqlite {
        _dir: tempfile::TempDir,
        path: PathBuf,
        store: SqliteStore,
    },
    Postgres {
        db: ScratchDatabase,
        store: PostgresStore,
    },
}

impl Db {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("offboard.db");
        let store = SqliteStore::open(&path).await.unwrap();
        Self::Sqlite {
            _dir: dir,
            path,
            store,
        }
    }

    async fn postgres() -> Self {
        let db = ScratchDatabase::create(&ScratchDatabase::test_server(), "offboard_cp")
            .await
            .unwrap_or_else(|e| panic!("cannot create a database on OFFBOARD_TEST_PG_URL: {e}"));
        let store = PostgresStore::connect(db.url()).await.unwrap();
        Self::Postgres { db, store }
    }

    fn store(&self) -> &dyn Store {
        match self {
            Self::Sqlite { store, .. } => store,
            Self::Postgres { store, .. } => store,
        }
    }

    /// The audit table and the chain head table.
    fn tables(&self) -> (&'static str, &'static str) {
        match self {
            Self::Sqlite { .. } => ("offboard_audit", "offboard_audit_head"),
            Self::Postgres { .. } => ("offboard.audit", "offboard.audit_head"),
        }
    }

    async fn append(&self, n: usize) {
        for i in 0..n {
            self.store().append_audit(vec![note(i)]).await.unwrap();
        }
    }

    async fn head(&self) -> (u64, String) {
        match self {
            Self::Sqlite { store, .. } => store.audit_head().await.unwrap(),
            Self::Postgres { store, .. } => store.audit_head().await.unwrap(),
        }
    }

    /// A checkpoint of the stored head, signed by `signer`.
    async fn checkpoint(&self, signer: &CheckpointSigner) -> Checkpoint {
        let (seq, hash) = self.head().await;
        signer.sign(seq, &hash, at(1_000))
    }

    async fn verify(&self) -> AuditVerification {
        match self {
            Self::Sqlite { store, .. } => store.verify_audit().await.unwrap(),
            Self::Postgres { store, .. } => store.verify_audit().await.unwrap(),
        }
    }

    async fn verify_against(
        &self,
        checkpoints: &[Checkpoint],
        verifier: &CheckpointVerifier,
    ) -> offboard_core::Result<AuditVerification> {
        match self {
            Self::Sqlite { store, .. } => store.verify_audit_against(checkpoints, verifier).await,
            Self::Postgres { store, .. } => store.verify_audit_against(checkpoints, verifier).await,
        }
    }

    /// Runs `statements` behind the store's back as someone who can turn the append-only
    /// defences off: on SQLite, whoever can write the file drops its triggers; on PostgreSQL
    /// the test's superuser runs `ALTER TABLE … DISABLE TRIGGER` first (the documented attack
    /// of an operator with that right; without it the DELETE is refused, see
    /// [`the_trigger_refuses_the_delete_on_postgres`]).
    async fn tamper(&self, statements: &[String]) {
        match self {
            Self::Sqlite { path, .. } => {
                let mut conn = sqlx::SqliteConnection::connect_with(
                    &sqlx::sqlite::SqliteConnectOptions::new().filename(path),
                )
                .await
                .unwrap();
                for sql in [
                    "DROP TRIGGER IF EXISTS offboard_audit_no_update".to_owned(),
                    "DROP TRIGGER IF EXISTS offboard_audit_no_delete".to_owned(),
                ]
                .iter()
                .chain(statements)
                {
                    sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                        .execute(&mut conn)
                        .await
                        .unwrap();
                }
                conn.close().await.unwrap();
            }
            Self::Postgres { db, .. } => {
                let mut conn = sqlx::PgConnection::connect(db.url()).await.unwrap();
                for sql in
                    ["ALTER TABLE offboard.audit DISABLE TRIGGER audit_append_only".to_owned()]
                        .iter()
                        .chain(statements)
                {
                    sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                        .execute(&mut conn)
                        .await
                        .unwrap();
                }
                conn.close().await.unwrap();
            }
        }
    }

    /// Deletes the events after `seq` and rewrites the stored head to event `seq`: the chain
    /// alone then looks whole.
    async fn cut_tail_and_rewrite_head(&self, seq: u64) {
        let (audit, head) = self.tables();
        let events = self.store().audit(AuditQuery::all()).await.unwrap();
        let last = &events[seq as usize - 1];
        self.tamper(&[
            format!("DELETE FROM {audit} WHERE seq > {seq}"),
            format!(
                "UPDATE {head} SET seq = {seq}, hash = '{}' WHERE id = 1",
                last.hash
            ),
        ])
        .await;
    }

    /// Changes event `seq`'s actor and re-seals every event from it on (new hashes, each
    /// linked to the one before), then points the stored head at the new last hash: every
    /// hash of the chain verifies.
    async fn reseal_from(&self, seq: u64) {
        let (audit, head) = self.tables();
        let mut events = self.store().audit(AuditQuery::all()).await.unwrap();
        let from = seq as usize - 1;
        events[from].actor = "mallory".into();
        let mut prev = events[from - 1].hash.clone();
        let mut statements = Vec::new();
        for e in &mut events[from..] {
            let s = e.seq;
            e.seal(s, &prev);
            prev = e.hash.clone();
            let body = serde_json::to_string(&*e).unwrap().replace('\'', "''");
            statements.push(format!(
                "UPDATE {audit} SET body = '{body}', hash = '{}' WHERE seq = {s}",
                e.hash
            ));
        }
        statements.push(format!("UPDATE {head} SET hash = '{prev}' WHERE id = 1"));
        self.tamper(&statements).await;
    }

    async fn done(self) {
        if let Self::Postgres { db, .. } = self {
            db.drop_database().await;
        }
    }
}

/// (b) Guards the deleted tail: the tail is deleted and the stored head rewritten to the new
/// last event, so the plain verification says intact; against the latest checkpoint the
/// chain is reported to end before it, the first bad seq being the first deleted event.
async fn deleted_tail_and_rewritten_head_are_reported(db: Db) {
    db.append(8).await;
    let signer = key1();
    let latest = db.checkpoint(&signer).await;
    assert_eq!(latest.seq, 8);
    let keys = verifier(&[&signer]);
    let before = db
        .verify_against(std::slice::from_ref(&latest), &keys)
        .await
        .unwrap();
    assert!(before.is_intact(), "{before:?}");

    db.cut_tail_and_rewrite_head(5).await;
    let plain = db.verify().await;
    assert!(plain.is_intact(), "the chain alone looks whole: {plain:?}");
    assert_eq!(plain.verified, 5);

    let check = db.verify_against(&[latest], &keys).await.unwrap();
    assert!(check.problem.is_none(), "{check:?}");
    assert!(!check.is_intact());
    assert_eq!(
        check.checkpoint.as_ref().unwrap().problem,
        Some(CheckpointProblem::ChainTooShort {
            chain_ends: 5,
            checkpoint_seq: 8
        })
    );
    assert_eq!(check.first_bad_seq(), Some(6));
    let err = check.into_result().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tampered);
    assert!(
        err.message()
            .contains("chain ends at seq 5 before checkpoint seq 8"),
        "{err}"
    );
    assert!(err.context().any(|c| c == ("seq", "6")), "{err:?}");
    db.done().await;
}

/// (c) Guards the re-sealed chain: event 6 of 8 is changed and every hash after it
/// recomputed; the plain verification says intact, the checkpoints (at 4 and 8) report that
/// the signed hash at seq 8 no longer matches, and that the change is after seq 4.
async fn a_resealed_chain_is_reported(db: Db) {
    let signer = key1();
    db.append(4).await;
    let first = db.checkpoint(&signer).await;
    db.append(4).await;
    let latest = db.checkpoint(&signer).await;
    assert_eq!((first.seq, latest.seq), (4, 8));

    db.reseal_from(6).await;
    let plain = db.verify().await;
    assert!(plain.is_intact(), "every hash verifies: {plain:?}");
    assert_eq!(plain.verified, 8);

    let keys = verifier(&[&signer]);
    let check = db
        .verify_against(&[first, latest.clone()], &keys)
        .await
        .unwrap();
    let outcome = check.checkpoint.clone().unwrap();
    assert_eq!(
        outcome.problem,
        Some(CheckpointProblem::HashDiffers { seq: 8, after: 4 })
    );
    assert_eq!(outcome.covered, 4);
    assert_eq!(check.first_bad_seq(), Some(8));
    assert!(!check.is_intact());
    // The latest checkpoint alone finds it too.
    let alone = db.verify_against(&[latest], &keys).await.unwrap();
    assert_eq!(alone.first_bad_seq(), Some(8));
    assert_eq!(alone.into_result().unwrap_err().kind(), ErrorKind::Tampered);
    db.done().await;
}

/// (d) Guards key rotation: a checkpoint signed by key 1, then one by key 2, verify with both
/// public keys; with key 2 alone the old one is reported as signed by a key the verifier does
/// not know, naming the key id. (e) A forged checkpoint (a signed one with its seq and hash
/// changed) is reported as a bad signature; no checkpoint at all is refused.
async fn rotation_and_forgery(db: Db) {
    let (k1, k2) = (key1(), key2());
    db.append(3).await;
    let old = db.checkpoint(&k1).await;
    db.append(3).await;
    let new = db.checkpoint(&k2).await;
    let both = verifier(&[&k1, &k2]);
    let check = db
        .verify_against(&[old.clone(), new.clone()], &both)
        .await
        .unwrap();
    assert!(check.is_intact(), "{check:?}");
    assert_eq!(check.checkpoint.as_ref().unwrap().covered, 6);

    let only_new = verifier(&[&k2]);
    let check = db
        .verify_against(&[old.clone(), new.clone()], &only_new)
        .await
        .unwrap();
    assert_eq!(
        check.checkpoint.as_ref().unwrap().problem,
        Some(CheckpointProblem::UnknownKey {
            seq: 3,
            key_id: "k1".into()
        })
    );
    let err = check.into_result().unwrap_err();
    assert!(
        err.message()
            .contains("signed with key \"k1\", which the verifier does not know"),
        "{err}"
    );
    // The new checkpoint alone verifies with the new key.
    assert!(
        db.verify_against(std::slice::from_ref(&new), &only_new)
            .await
            .unwrap()
            .is_intact()
    );

    let events = db.store().audit(AuditQuery::all()).await.unwrap();
    let mut forged = new.clone();
    forged.seq = 5;
    forged.hash = events[4].hash.clone();
    let check = db.verify_against(&[forged], &both).await.unwrap();
    assert_eq!(
        check.checkpoint.as_ref().unwrap().problem,
        Some(CheckpointProblem::BadSignature {
            seq: 5,
            key_id: "k2".into()
        })
    );
    assert_eq!(check.into_result().unwrap_err().kind(), ErrorKind::Tampered);

    let err = db.verify_against(&[], &both).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    db.done().await;
}

/// Each scenario as a test on SQLite (`sqlite::<scenario>`) and on PostgreSQL
/// (`postgres::<scenario>`).
macro_rules! on_both_stores {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario(super::Db::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario(super::Db::postgres().await).await;
                }
            )*
        }
    };
}

on_both_stores!(
    deleted_tail_and_rewritten_head_are_reported,
    a_resealed_chain_is_reported,
    rotation_and_forgery,
);

/// With the append-only trigger in place, PostgreSQL refuses the DELETE of the tail: the
/// tamper tests above disable it first, as only an owner or superuser can.
#[tokio::test]
async fn the_trigger_refuses_the_delete_on_postgres() {
    let db = Db::postgres().await;
    db.append(3).await;
    let Db::Postgres { db: scratch, .. } = &db else {
        unreachable!()
    };
    let mut conn = sqlx::PgConnection::connect(scratch.url()).await.unwrap();
    let err = sqlx::query("DELETE FROM offboard.audit WHERE seq > 1")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    conn.close().await.unwrap();
    db.done().await;
}

/// The JSON-lines sink appends one checkpoint per line, reads the latest back (also after a
/// reopen), ignores and then cuts a torn last line, and names a line that is not a
/// checkpoint.
#[tokio::test]
async fn json_lines_sink_keeps_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoints.jsonl");
    let signer = key1();
    let sink = JsonLinesCheckpointSink::open(&path).await.unwrap();
    assert_eq!(sink.latest().await.unwrap(), None);
    let (a, b) = (signer.sign(3, "aa", at(1)), signer.sign(7, "bb", at(2)));
    sink.write(&a).await.unwrap();
    sink.write(&b).await.unwrap();
    assert_eq!(sink.latest().await.unwrap(), Some(b.clone()));
    drop(sink);

    let mut text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 2);
    text.push_str("{\"seq\":9,\"ha");
    std::fs::write(&path, &text).unwrap();
    assert_eq!(
        JsonLinesCheckpointSink::read(&path).await.unwrap(),
        vec![a.clone(), b.clone()]
    );
    let sink = JsonLinesCheckpointSink::open(&path).await.unwrap();
    let c = signer.sign(9, "cc", at(3));
    sink.write(&c).await.unwrap();
    assert_eq!(
        JsonLinesCheckpointSink::read(&path).await.unwrap(),
        vec![a, b, c.clone()]
    );
    assert_eq!(sink.latest().await.unwrap(), Some(c));

    std::fs::write(&path, "not a checkpoint\n").unwrap();
    let err = JsonLinesCheckpointSink::read(&path).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tampered);
    assert!(err.message().contains("line 1"), "{err}");
}

/// The object-store sink writes one object per checkpoint under names that sort by seq
/// (`checkpoints/00000000000000000010.json` after `…09.json`), never overwrites one, and
/// reads the latest back: on object_store's in-memory store and on a local directory.
#[tokio::test]
async fn object_store_sink_keeps_one_object_per_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let stores: Vec<Arc<dyn object_store::ObjectStore>> = vec![
        Arc::new(object_store::memory::InMemory::new()),
        Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap()),
    ];
    let signer = key1();
    for store in stores {
        let sink = ObjectStoreCheckpointSink::new(store.clone(), "checkpoints");
        assert_eq!(sink.latest().await.unwrap(), None);
        let nine = signer.sign(9, "h9", at(1));
        let ten = signer.sign(10, "h10", at(2));
        sink.write(&nine).await.unwrap();
        sink.write(&ten).await.unwrap();
        assert_eq!(
            sink.location(10).as_ref(),
            "checkpoints/00000000000000000010.json"
        );
        assert_eq!(sink.latest().await.unwrap(), Some(ten.clone()));
        // A second checkpoint of seq 10 (another engine) leaves the first one in place.
        sink.write(&signer.sign(10, "h10", at(3))).await.unwrap();
        assert_eq!(sink.all().await.unwrap(), vec![nine.clone(), ten.clone()]);

        let verifier = verifier(&[&signer]);
        for c in sink.all().await.unwrap() {
            assert_eq!(verifier.verify(&c), Ok(()));
        }
        let pem = signer.public_key().to_pem().unwrap();
        assert_eq!(
            CheckpointKey::from_text(Some("k1"), &pem).unwrap(),
            signer.public_key()
        );
    }
}
