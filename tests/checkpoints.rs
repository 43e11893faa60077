//! The engine signs the audit chain's head into checkpoints off the commit path: every N
//! events, every T on its (paused) clock, at shutdown; a failing sink never fails a commit
//! and is tried again; the secret key is in no log. Checkpoints verify against the store's
//! chain and catch a deleted tail the chain alone does not show.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use offboard::checkpoint::{CheckpointProblem, MemoryCheckpointSink};
use offboard::memory::MemoryStore;
use offboard::{
    AuditQuery, Checkpoint, CheckpointSigner, CheckpointVerifier, Engine, ErrorKind, Initiator,
    Person, Policy, RunId, RunRequest, RunState, Store,
};
use offboard_testkit::suite::reference::{ReferenceConnector, ReferenceUser};
use offboard_testkit::suite::trace::TraceCapture;

const POLICY: &str = r#"
[apps.idp]
method = "automatic"
actions = ["idp.suspend", "idp.clear_sessions", "idp.remove_groups"]
"#;

const SEED: [u8; 32] = [5; 32];

fn people(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("p{i}@example.com")).collect()
}

fn engine(
    store: Arc<MemoryStore>,
    sink: Arc<MemoryCheckpointSink>,
    every_events: u64,
    every: Duration,
) -> Engine {
    let idp = Arc::new(
        ReferenceConnector::builder("idp")
            .users(people(4).into_iter().map(ReferenceUser::employee))
            .build(),
    );
    Engine::builder()
        .store(store)
        .connector(idp)
        .policy(Policy::from_toml(POLICY).unwrap())
        .with_checkpoints(
            CheckpointSigner::from_seed(SEED).with_key_id("k1").unwrap(),
            sink,
            every_events,
            every,
        )
        .build()
        .unwrap()
}

/// Plans and submits a run for person `i`; workers run it.
async fn submit(engine: &Engine, i: usize) -> RunId {
    let plan = engine
        .plan(RunRequest::new(
            Person::new(format!("e-{i}"), format!("p{i}@example.com")),
            Initiator::Admin {
                actor: "admin@example.com".into(),
            },
        ))
        .await
        .unwrap();
    engine.submit(plan, None).await.unwrap()
}

/// Lets the checkpoint loop (a task of its own) catch up with what was committed.
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

fn verifier() -> CheckpointVerifier {
    CheckpointVerifier::new()
        .with_key(
            CheckpointSigner::from_seed(SEED)
                .with_key_id("k1")
                .unwrap()
                .public_key(),
        )
        .unwrap()
}

async fn last_seq(store: &MemoryStore) -> u64 {
    store
        .audit(AuditQuery::all())
        .await
        .unwrap()
        .last()
        .unwrap()
        .seq
}

/// (a) Guards the event cadence: with a checkpoint every 5 events (and T far away), each
/// checkpoint but the last follows at least 5 events after the one before, every one is
/// signed and matches the stored chain, and shutting the workers down writes a last one at
/// the head.
#[tokio::test(start_paused = true)]
async fn checkpoints_every_n_events_and_at_shutdown() {
    let store = Arc::new(MemoryStore::new());
    let sink = Arc::new(MemoryCheckpointSink::new());
    let engine = engine(store.clone(), sink.clone(), 5, Duration::from_secs(3600));
    let workers = engine.start();
    for i in 0..3 {
        let id = submit(&engine, i).await;
        assert_eq!(engine.wait(id).await.unwrap().state, RunState::Completed);
    }
    settle().await;
    let during = sink.checkpoints();
    let total = last_seq(&store).await;
    assert!(total >= 15, "{total} events");
    assert!(!during.is_empty(), "no checkpoint after {total} events");
    assert!(during[0].seq >= 5, "{during:?}");
    for pair in during.windows(2) {
        assert!(pair[1].seq >= pair[0].seq + 5, "{during:?}");
    }

    workers.shutdown().await;
    let all = sink.checkpoints();
    assert_eq!(
        all.last().unwrap().seq,
        total,
        "a last checkpoint at shutdown"
    );
    let outcome = store.verify_audit_against(&all, &verifier()).unwrap();
    assert!(outcome.is_intact(), "{outcome:?}");
    assert_eq!(outcome.covered, total);
}

/// (a) Guards the time cadence: with N far away, nothing is written until T passed on the
/// engine's clock; then one checkpoint of the head, stamped with the engine's time; another
/// T without a commit writes nothing more.
#[tokio::test(start_paused = true)]
async fn checkpoints_every_t_when_the_chain_moved() {
    let store = Arc::new(MemoryStore::new());
    let sink = Arc::new(MemoryCheckpointSink::new());
    let every = Duration::from_secs(600);
    let engine = engine(store.clone(), sink.clone(), 1_000, every);
    let workers = engine.start();
    let id = submit(&engine, 0).await;
    engine.wait(id).await.unwrap();
    settle().await;
    assert!(sink.checkpoints().is_empty(), "{:?}", sink.checkpoints());

    tokio::time::sleep(every).await;
    settle().await;
    let written = sink.checkpoints();
    assert_eq!(written.len(), 1, "{written:?}");
    let head = last_seq(&store).await;
    assert_eq!(written[0].seq, head);
    assert!(written[0].at <= engine.now());
    assert!(written[0].at >= engine.now() - chrono::Duration::from_std(every).unwrap());

    tokio::time::sleep(every * 3).await;
    settle().await;
    assert_eq!(sink.checkpoints().len(), 1, "the head did not move");
    drop(workers);
}

/// Guards the failure path and (f) the secret key: while the sink fails, runs complete (no
/// commit waits for or fails with it), the failure is logged without the key, and
/// [`Engine::checkpoint`] returns the sink's error; once the sink works again the next
/// trigger writes the head then.
#[tokio::test(start_paused = true)]
async fn a_failing_sink_never_blocks_a_commit_and_is_retried() {
    let capture = TraceCapture::default();
    let _guard = capture.set_default();
    let store = Arc::new(MemoryStore::new());
    let sink = Arc::new(MemoryCheckpointSink::new());
    sink.fail_writes(true);
    let engine = engine(store.clone(), sink.clone(), 2, Duration::from_secs(3600));
    let workers = engine.start();
    let id = submit(&engine, 0).await;
    assert_eq!(engine.wait(id).await.unwrap().state, RunState::Completed);
    settle().await;
    assert!(sink.checkpoints().is_empty());
    let err = engine.checkpoint().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Storage);

    sink.fail_writes(false);
    let id = submit(&engine, 1).await;
    engine.wait(id).await.unwrap();
    settle().await;
    let written = sink.checkpoints();
    assert!(!written.is_empty());
    workers.shutdown().await;
    assert_eq!(
        sink.checkpoints().last().unwrap().seq,
        last_seq(&store).await
    );

    let logs = capture.text();
    assert!(
        logs.contains("writing an audit checkpoint failed"),
        "{logs}"
    );
    assert!(logs.contains("k1"), "{logs}");
    let secrets = [
        base64::engine::general_purpose::STANDARD.encode(SEED),
        SEED.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        format!("{SEED:?}"),
    ];
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "the key is in the logs");
        assert!(!format!("{engine:?}").contains(secret.as_str()));
        assert!(!format!("{:?}", CheckpointSigner::from_seed(SEED)).contains(secret.as_str()));
        assert!(!format!("{err:?} {err}").contains(secret.as_str()));
    }
}

/// The engine's checkpoints catch a deleted tail on the memory store: the chain alone still
/// verifies, the latest checkpoint names the first deleted seq.
#[tokio::test(start_paused = true)]
async fn the_latest_checkpoint_catches_a_deleted_tail() {
    let store = Arc::new(MemoryStore::new());
    let sink = Arc::new(MemoryCheckpointSink::new());
    let engine = engine(
        store.clone(),
        sink.clone(),
        1_000,
        Duration::from_secs(3600),
    );
    let workers = engine.start();
    let id = submit(&engine, 0).await;
    engine.wait(id).await.unwrap();
    workers.shutdown().await;
    let latest: Checkpoint = sink.checkpoints().pop().unwrap();
    let head = last_seq(&store).await;
    assert_eq!(latest.seq, head);

    store.truncate_audit(head - 3);
    let chain = store.audit(AuditQuery::all()).await.unwrap();
    assert_eq!(offboard::audit::verify_chain(&chain), Ok(head - 3));
    let outcome = store.verify_audit_against(&[latest], &verifier()).unwrap();
    assert_eq!(
        outcome.problem,
        Some(CheckpointProblem::ChainTooShort {
            chain_ends: head - 3,
            checkpoint_seq: head
        })
    );
    assert_eq!(outcome.first_bad_seq(), Some(head - 2));
}

/// A cadence of 0 events or 0 seconds is refused when the engine is built.
#[test]
fn a_zero_cadence_is_refused() {
    for (n, t) in [(0, Duration::from_secs(1)), (1, Duration::ZERO)] {
        let err = Engine::builder()
            .store(Arc::new(MemoryStore::new()))
            .connector(Arc::new(ReferenceConnector::builder("idp").build()))
            .policy(Policy::from_toml(POLICY).unwrap())
            .with_checkpoints(
                CheckpointSigner::from_seed(SEED),
                Arc::new(MemoryCheckpointSink::new()),
                n,
                t,
            )
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    }
}
