//! Audit sinks are fed by one ordered pump per sink, off the commit path: every event, in
//! order, once, under concurrent runs, through a failing sink, and after a crash.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use offboard::memory::MemoryStore;
use offboard::stores::JsonLinesSink;
use offboard::{
    AuditEvent, AuditQuery, AuditSink, Engine, Error, Initiator, Person, Policy, Result,
    RunRequest, Store,
};
use offboard_testkit::suite::reference::{ReferenceConnector, ReferenceUser};
use offboard_testkit::suite::store::CountingStore;

const POLICY: &str = r#"
[apps.idp]
method = "automatic"
actions = ["idp.suspend", "idp.clear_sessions", "idp.remove_groups"]
"#;

/// A sink that takes its time (yielding many times inside `record`, so concurrent deliveries
/// would interleave) and can refuse its first calls.
#[derive(Debug, Default)]
struct SlowSink {
    seqs: Mutex<Vec<u64>>,
    fail_first: AtomicU32,
}

#[async_trait]
impl AuditSink for SlowSink {
    async fn record(&self, events: &[AuditEvent]) -> Result<()> {
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        if self
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(Error::storage("the sink's disk is full"));
        }
        self.seqs
            .lock()
            .unwrap()
            .extend(events.iter().map(|e| e.seq));
        Ok(())
    }
}

fn people(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("p{i}@example.com")).collect()
}

fn engine(store: Arc<MemoryStore>, sinks: Vec<Arc<dyn AuditSink>>, n: usize) -> Engine {
    let idp = Arc::new(
        ReferenceConnector::builder("idp")
            .users(people(n).into_iter().map(ReferenceUser::employee))
            .build(),
    );
    let mut b = Engine::builder()
        .store(store)
        .connector(idp)
        .policy(Policy::from_toml(POLICY).unwrap())
        .idle_poll(Duration::from_millis(20));
    for s in sinks {
        b = b.audit_sink(s);
    }
    b.build().unwrap()
}

async fn offboard_all(engine: &Engine, n: usize) {
    let runs = futures::future::join_all(people(n).into_iter().enumerate().map(|(i, email)| {
        let engine = engine.clone();
        async move {
            let plan = engine
                .plan(RunRequest::new(
                    Person::new(format!("e-{i}"), email),
                    Initiator::Admin {
                        actor: "admin@example.com".into(),
                    },
                ))
                .await
                .unwrap();
            engine.submit(plan, None).await.unwrap()
        }
    }))
    .await;
    for run in runs {
        engine.wait(run).await.unwrap();
    }
}

async fn all_seqs(store: &MemoryStore) -> Vec<u64> {
    store
        .audit(AuditQuery::all())
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect()
}

fn file_seqs(path: &std::path::Path) -> Vec<u64> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

async fn flush(engine: &Engine) {
    tokio::time::timeout(Duration::from_secs(60), engine.flush_audit_sinks())
        .await
        .expect("the sinks caught up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_in_order_once_under_32_concurrent_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let jsonl = Arc::new(JsonLinesSink::open(&path).await.unwrap());
    let slow = Arc::new(SlowSink::default());
    let store = Arc::new(MemoryStore::new());
    let engine = engine(store.clone(), vec![jsonl.clone(), slow.clone()], 32);
    let workers = engine.start();
    offboard_all(&engine, 32).await;
    workers.shutdown().await;
    flush(&engine).await;
    let expected = all_seqs(&store).await;
    assert!(expected.len() > 32 * 4, "{} events", expected.len());
    assert_eq!(
        *slow.seqs.lock().unwrap(),
        expected,
        "the slow sink: every event, in order, once"
    );
    assert_eq!(
        file_seqs(&path),
        expected,
        "the JSON-lines file: every event, in order, once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_sink_gets_the_same_events_again_and_misses_none() {
    let slow = Arc::new(SlowSink::default());
    slow.fail_first.store(3, Ordering::SeqCst);
    let store = Arc::new(MemoryStore::new());
    let engine = engine(store.clone(), vec![slow.clone()], 4);
    let workers = engine.start();
    offboard_all(&engine, 4).await;
    workers.shutdown().await;
    flush(&engine).await;
    let expected = all_seqs(&store).await;
    assert_eq!(*slow.seqs.lock().unwrap(), expected);
}

/// The engine stopped before its sink took the last events (here: the file lost its tail):
/// the next engine's pump starts at the file's last line and catches up, without a new commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_catches_up_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let store = Arc::new(MemoryStore::new());
    {
        let jsonl = Arc::new(JsonLinesSink::open(&path).await.unwrap());
        let engine = engine(store.clone(), vec![jsonl], 3);
        let workers = engine.start();
        offboard_all(&engine, 3).await;
        workers.shutdown().await;
        flush(&engine).await;
    }
    let expected = all_seqs(&store).await;
    let text = std::fs::read_to_string(&path).unwrap();
    let keep: Vec<&str> = text.lines().take(expected.len() / 2).collect();
    std::fs::write(&path, format!("{}\n", keep.join("\n"))).unwrap();
    assert_eq!(file_seqs(&path).len(), expected.len() / 2);

    let jsonl = Arc::new(JsonLinesSink::open(&path).await.unwrap());
    let engine = engine(store.clone(), vec![jsonl.clone()], 3);
    let workers = engine.start();
    tokio::time::timeout(Duration::from_secs(60), async {
        while jsonl.last_seq().await < *expected.last().unwrap() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("caught up without a new commit");
    workers.shutdown().await;
    assert_eq!(file_seqs(&path), expected);
}

/// A sink without a position of its own starts at the first event the engine committed, even
/// when concurrent writes answer out of order: the first submit's `create_run` is stored first
/// (seq 1 and 2) but answers a second later, after the second submit's (seq 3 and 4). Before,
/// the pump started at the first write that answered (seq 3) and the sink never got 1 and 2.
#[tokio::test(start_paused = true)]
async fn a_sink_without_a_position_gets_events_whose_writes_answered_late() {
    let store = Arc::new(
        CountingStore::new(MemoryStore::new())
            .with_late_first_create_answer(Duration::from_secs(1)),
    );
    let idp = Arc::new(
        ReferenceConnector::builder("idp")
            .users(people(2).into_iter().map(ReferenceUser::employee))
            .build(),
    );
    let slow = Arc::new(SlowSink::default());
    let engine = Engine::builder()
        .store(store.clone())
        .connector(idp)
        .policy(Policy::from_toml(POLICY).unwrap())
        .audit_sink(slow.clone())
        .build()
        .unwrap();
    let mut plans = Vec::new();
    for (i, email) in people(2).into_iter().enumerate() {
        plans.push(
            engine
                .plan(RunRequest::new(
                    Person::new(format!("e-{i}"), email),
                    Initiator::Admin {
                        actor: "admin@example.com".into(),
                    },
                ))
                .await
                .unwrap(),
        );
    }
    let second = plans.pop().unwrap();
    let first = plans.pop().unwrap();
    let late = engine.submit(first, None);
    let prompt = async {
        // The first submit is stored (and waits to answer) before this one starts.
        tokio::time::sleep(Duration::from_millis(100)).await;
        engine.submit(second, None).await
    };
    let (a, b) = tokio::join!(late, prompt);
    a.unwrap();
    b.unwrap();
    flush(&engine).await;
    let expected = all_seqs(&store.inner).await;
    assert_eq!(expected, vec![1, 2, 3, 4]);
    assert_eq!(*slow.seqs.lock().unwrap(), expected);
}
