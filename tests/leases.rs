//! Leases stay live during slow connector calls: two engines share one store, and a task whose
//! attempt outlasts its lease is never started twice. Run under a paused tokio clock.

use std::sync::Arc;
use std::time::Duration;

use offboard::engine::Backoff;
use offboard::memory::MemoryStore;
use offboard::{
    AuditKind, AuditQuery, Engine, ErrorKind, Initiator, Limits, Person, Policy, RunRequest,
    RunState, Store,
};
use offboard_testkit::suite::reference::{ReferenceConnector, ReferenceUser};
use offboard_testkit::suite::store::CountingStore;

const POLICY: &str = r#"
[apps.idp]
method = "automatic"
actions = ["idp.suspend"]
"#;

const CLEAR_SESSIONS: &str = r#"
[apps.idp]
method = "automatic"
actions = ["idp.clear_sessions"]
"#;

fn admin() -> Initiator {
    Initiator::Admin {
        actor: "admin@example.com".into(),
    }
}

fn engine(
    store: Arc<dyn Store>,
    connector: Arc<ReferenceConnector>,
    limits: Limits,
    lease: Duration,
    worker: &str,
) -> offboard::Result<Engine> {
    engine_with(store, connector, limits, lease, worker, POLICY)
}

fn engine_with(
    store: Arc<dyn Store>,
    connector: Arc<ReferenceConnector>,
    limits: Limits,
    lease: Duration,
    worker: &str,
    policy: &str,
) -> offboard::Result<Engine> {
    Engine::builder()
        .store(store)
        .connector_with_limits(connector, limits)
        .policy(Policy::from_toml(policy).expect("test policy parses"))
        .backoff(Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
        })
        .lease_for(lease)
        .worker_id(worker)
        .build()
}

/// Engine A claims three runs' `idp.suspend` (reversible: a snapshot, then the change) at once.
/// Its rate limit (one call a second) makes the third wait 2 s before starting, too short a
/// wait to renew the lease after it; then the snapshot and the change take 9.9 s each (within
/// the 10 s timeout). That attempt ends 21.8 s after the claim, past the 21 s lease (the
/// shortest `build` accepts for a 10 s timeout). Engine B, on the same store, claims whatever
/// lease expires. Every task must be started once: the suspend is called three times in all,
/// and every run completes with one attempt per task.
#[tokio::test(start_paused = true)]
async fn a_slow_attempt_keeps_its_lease_and_runs_once() {
    let people = ["ada", "grace", "alan"];
    let connector = Arc::new(
        ReferenceConnector::builder("idp")
            .users(
                people
                    .iter()
                    .map(|p| ReferenceUser::employee(format!("{p}@example.com"))),
            )
            .latency(Duration::from_millis(9_900))
            .build(),
    );
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let limits = Limits::default()
        .with_timeout(Duration::from_secs(10))
        .with_rate(1);
    let lease = Duration::from_secs(21);
    let a = engine(store.clone(), connector.clone(), limits, lease, "engine-a").unwrap();
    let b = engine(store.clone(), connector.clone(), limits, lease, "engine-b").unwrap();
    let mut runs = Vec::new();
    for p in people {
        let plan = a
            .plan(RunRequest::new(
                Person::new(format!("p-{p}"), format!("{p}@example.com")),
                admin(),
            ))
            .await
            .expect("plan");
        runs.push(a.submit(plan, None).await.expect("submit"));
    }
    let workers_a = a.start();
    // Engine A claims everything due before engine B starts.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let workers_b = b.start();
    for id in &runs {
        let run = a.wait(*id).await.expect("wait");
        assert_eq!(run.state, RunState::Completed, "{run:?}");
        assert_eq!(run.tasks.len(), 1);
        assert_eq!(run.tasks[0].attempts, 1, "the task was started once");
    }
    workers_a.shutdown().await;
    workers_b.shutdown().await;
    assert_eq!(
        connector.calls().of("idp.suspend"),
        3,
        "each person's suspend ran exactly once over both engines"
    );
    let started = store
        .audit(AuditQuery::all())
        .await
        .unwrap()
        .iter()
        .filter(|e| {
            matches!(&e.kind, AuditKind::Transition { event, .. }
                if matches!(event, offboard::machine::Event::TaskStarted { .. }))
        })
        .count();
    assert_eq!(started, 3, "one start per task");
}

/// A renewal that fails while the connector call is in flight (the store did not answer) stops
/// the wait for the call: the attempt is recorded as a retryable `Timeout` whose outcome is
/// unknown, not as a success nobody saw, and the task is retried and completes. The first
/// call (9.9 s) was abandoned at the renewal (7 s, a third of the 21 s lease) before it
/// reached the tenant, so the tenant saw one call in all.
#[tokio::test(start_paused = true)]
async fn a_failed_renewal_records_the_outcome_as_unknown_and_retries() {
    let connector = Arc::new(
        ReferenceConnector::builder("idp")
            .user(ReferenceUser::employee("ada@example.com").sessions(2))
            .latency(Duration::from_millis(9_900))
            .build(),
    );
    let store = Arc::new(CountingStore::new(MemoryStore::new()));
    let limits = Limits::default().with_timeout(Duration::from_secs(10));
    let e = engine_with(
        store.clone(),
        connector.clone(),
        limits,
        Duration::from_secs(21),
        "engine-a",
        CLEAR_SESSIONS,
    )
    .unwrap();
    let plan = e
        .plan(RunRequest::new(
            Person::new("p-ada", "ada@example.com"),
            admin(),
        ))
        .await
        .expect("plan");
    let id = e.submit(plan, None).await.expect("submit");
    store.failing_renewals(1);
    let workers = e.start();
    let run = e.wait(id).await.expect("wait");
    workers.shutdown().await;
    assert_eq!(run.state, RunState::Completed, "{run:?}");
    assert_eq!(run.tasks[0].attempts, 2, "the unknown outcome was retried");
    assert_eq!(connector.calls().of("idp.clear_sessions"), 1);
    let u = connector.user_by_login("ada@example.com").unwrap();
    assert_eq!(u.sessions, 0);
    let errors: Vec<offboard::ErrorRecord> = store
        .audit(AuditQuery::run(id))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.kind {
            AuditKind::Transition {
                event: offboard::machine::Event::TaskErrored { error, .. },
                ..
            } => Some(error),
            _ => None,
        })
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].kind, ErrorKind::Timeout);
    assert!(
        errors[0].message.contains("outcome is unknown"),
        "{:?}",
        errors[0]
    );
    assert!(
        errors[0].message.contains("the store did not answer"),
        "{:?}",
        errors[0]
    );
}

/// `build` refuses a lease shorter than twice a connector's timeout plus the margin, naming
/// the connector's timeout; the shortest lease allowed builds.
#[test]
fn build_refuses_a_lease_too_short_for_the_timeout() {
    let connector = Arc::new(
        ReferenceConnector::builder("idp")
            .user(ReferenceUser::employee("ada@example.com"))
            .build(),
    );
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let limits = Limits::default().with_timeout(Duration::from_secs(10));
    let e = engine(
        store.clone(),
        connector.clone(),
        limits,
        Duration::from_millis(20_999),
        "w",
    )
    .expect_err("a 20.999 s lease with a 10 s timeout is refused");
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("connectors.idp.timeout"), "{e}");
    engine(store, connector, limits, Duration::from_secs(21), "w").expect("2 × 10 s + 1 s builds");
}
