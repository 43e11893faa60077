//! Engine tests on the in-memory store and the testkit's reference connector, under a paused
//! tokio clock: time moves only when every task waits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use offboard::engine::Backoff;
use offboard::machine::{self, Event};
use offboard::memory::MemoryStore;
use offboard::{
    AccountRef, AccountStatus, Action, AuditKind, AuditQuery, Capabilities, ClaimRequest,
    Confirmation, Connector, Engine, ErrorKind, ExecuteOptions, ExecuteReply, Initiator, Limits,
    LookupRequest, Outcome, Person, Policy, RetryPolicy, Run, RunRequest, RunState, Snapshot,
    Store, TaskState, Verification,
};
use offboard_testkit::suite::reference::{
    ReferenceConnector, ReferenceDelegate, ReferenceUser, permanent, unavailable,
};

fn admin() -> Initiator {
    Initiator::Admin {
        actor: "admin@example.com".into(),
    }
}

fn ada() -> Person {
    Person::new("p-ada", "ada@example.com").with_name("Ada")
}

fn policy(src: &str) -> Policy {
    Policy::from_toml(src).expect("test policy parses")
}

const IDP_BASIC: &str = r#"
[apps.idp]
method = "automatic"
actions = ["idp.suspend", "idp.clear_sessions", "idp.remove_groups"]
"#;

fn idp(users: &[&str]) -> Arc<ReferenceConnector> {
    Arc::new(
        ReferenceConnector::builder("idp")
            .users(users.iter().map(|u| ReferenceUser::employee(*u)))
            .build(),
    )
}

struct Setup {
    engine: Engine,
    store: Arc<MemoryStore>,
}

fn engine_with(
    store: Arc<MemoryStore>,
    connectors: Vec<(Arc<dyn Connector>, Limits)>,
    policy_src: &str,
    tweak: impl FnOnce(offboard::EngineBuilder) -> offboard::EngineBuilder,
) -> Setup {
    let mut b = Engine::builder()
        .store(store.clone())
        .policy(policy(policy_src))
        .backoff(Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
        });
    for (c, l) in connectors {
        b = b.connector_with_limits(c, l);
    }
    Setup {
        engine: tweak(b).build().expect("engine builds"),
        store,
    }
}

async fn offboard(engine: &Engine, person: Person) -> Run {
    let plan = engine
        .plan(RunRequest::new(person, admin()))
        .await
        .expect("plan");
    let confirm = plan
        .has_critical()
        .then(|| Confirmation::of(&plan, "admin@example.com"));
    let id = engine.submit(plan, confirm).await.expect("submit");
    let workers = engine.start();
    let run = engine.wait(id).await.expect("wait");
    workers.shutdown().await;
    run
}

fn task<'a>(run: &'a Run, label: &str) -> &'a offboard::Task {
    run.tasks
        .iter()
        .find(|t| t.label() == label)
        .unwrap_or_else(|| panic!("no task {label}"))
}

#[tokio::test(start_paused = true)]
async fn offboards_and_changes_the_tenant() {
    let c = idp(&["ada@example.com", "grace@example.com"]);
    let s = engine_with(
        Arc::new(MemoryStore::new()),
        vec![(c.clone(), Limits::default())],
        IDP_BASIC,
        |b| b,
    );
    let run = offboard(&s.engine, ada()).await;
    assert_eq!(run.state, RunState::Completed);
    let u = c.user_by_login("ada@example.com").unwrap();
    assert_eq!(u.status, AccountStatus::Suspended);
    assert!(u.groups.is_empty());
    assert_eq!(u.sessions, 0);
    let g = c.user_by_login("grace@example.com").unwrap();
    assert_eq!(
        g.status,
        AccountStatus::Active,
        "the other user is untouched"
    );
    assert_eq!(c.effects(&g.external_id, "idp.suspend"), 0);
    // Ordering: sessions are cleared only after suspension completed.
    let suspend = task(&run, "idp.suspend");
    let clear = task(&run, "idp.clear_sessions");
    assert!(clear.started_at.unwrap() >= suspend.finished_at.unwrap());
    assert_eq!(clear.depends_on, vec![suspend.id]);
}

#[tokio::test(start_paused = true)]
async fn retries_wait_for_the_vendor_hint() {
    let c = Arc::new(
        ReferenceConnector::builder("idp")
            .user(ReferenceUser::employee("ada@example.com"))
            .fail_next("idp.suspend", 2, unavailable(Some(Duration::from_secs(30))))
            .build(),
    );
    let s = engine_with(
        Arc::new(MemoryStore::new()),
        vec![(c.clone(), Limits::default())],
        IDP_BASIC,
        |b| b,
    );
    let t0 = s.engine.now();
    let run = offboard(&s.engine, ada()).await;
    assert_eq!(run.state, RunState::Completed);
    let suspend = task(&run, "idp.suspend");
    assert_eq!(suspend.attempts, 3);
    // Backoff is at most 2 s here, so the 30 s hint decides both waits.
    let took = (suspend.finished_at.unwrap() - t0).to_std().unwrap();
    assert!(
        took >= Duration::from_secs(60),
        "waited {took:?}, expected two 30 s hints"
    );
    assert!(took < Duration::from_secs(62), "waited {took:?}");
    let events = s.store.audit(AuditQuery::run(run.id)).await.unwrap();
    let errored: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.kind {
            AuditKind::Transition {
                event: Event::TaskErrored { error, .. },
                ..
            } => Some(error.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(errored.len(), 2);
    assert!(
        errored
            .iter()
            .all(|e| e.context.iter().any(|(k, v)| k == "app" && v == "idp"))
    );
}

#[tokio::test(start_paused = true)]
async fn retries_are_bounded() {
    let c = Arc::new(
        ReferenceConnector::builder("idp")
            .user(ReferenceUser::employee("ada@example.com"))
            .fail_always("idp.suspend", unavailable(None))
            .build(),
    );
    let s = engine_with(
        Arc::new(MemoryStore::new()),
        vec![(c.clone(), Limits::default())],
        IDP_BASIC,
        |b| {
            b.retry(RetryPolicy {
                max_attempts: 4,
                max_elapsed: Duration::from_secs(3600),
            })
        },
    );
    let run = offboard(&s.engine, ada()).await;
    assert_eq!(run.state, RunState::CompletedWithFailures);
    let suspend = task(&run, "idp.suspend");
    assert_eq!(suspend.attempts, 4);
    let TaskState::Failed { error } = &suspend.state else {
        panic!("{:?}", suspend.state)
    };
    assert_eq!(error.retry, offboard::RetryClass::Exhausted);
    // Its dependent never ran; the independent task did.
    assert!(matches!(
        task(&run, "idp.clear_sessions").state,
        TaskState::Skipped { .. }
    ));
    assert!(task(&run, "idp.remove_groups").state.is_completed());
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_fail_at_once() {
    let c = Arc::new(
        ReferenceConnector::builder("idp")
            .user(ReferenceUser::employee("ada@example.com"))
            .fail_next(
                "idp.remove_groups",
                1,
                permanent(ErrorKind::PermissionDenied, "403 forbidden"),
            )
            .build(),
    );
    let s = engine_with(
        Arc::new(MemoryStore::new()),
        vec![(c.clone(), Limits::default())],
        IDP_BASIC,
        |b| b,
    );
    let run = offboard(&s.engine, ada()).await;
    let t = task(&run, "idp.remove_groups");
    assert_eq!(t.attempts, 1);
    assert!(
        matches!(&t.state, TaskState::Failed { error } if error.kind == ErrorKind::PermissionDenied)
    );
    assert_eq!(run.state, RunState::CompletedWithFailures);
}

/// Wraps a connector and records when each execute call started and how many ran at once.
#[derive(Debug)]
struct Recording {
    inner: Arc<ReferenceConnector>,
    starts: Mutex<Vec<tokio::time::Instant>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Extra time each execute takes.
    delay: Duration,
    /// How many executes panic (a bug in a connector) before they work.
    panics: AtomicUsize,
}

impl Recording {
    fn new(inner: Arc<ReferenceConnector>) -> Arc<Self> {
        Self::slow(inner, Duration::ZERO)
    }

    fn slow(inner: Arc<ReferenceConnector>, delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            inner,
            starts: Mutex::default(),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            delay,
            panics: AtomicUsize::new(0),
        })
    }
}

#[async_trait]
impl Connector for Recording {
    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }
    async fn lookup(&self, r: &LookupRequest) -> offboard::Result<Option<AccountRef>> {
        self.inner.lookup(r).await
    }
    async fn execute(
        &self,
        a: &AccountRef,
        action: &Action,
        o: &ExecuteOptions,
    ) -> offboard::Result<ExecuteReply> {
        self.starts
            .lock()
            .unwrap()
            .push(tokio::time::Instant::now());
        if self
            .panics
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            panic!("a bug in a connector");
        }
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        let r = self.inner.execute(a, action, o).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        r
    }
    async fn snapshot(&self, a: &AccountRef, action: &Action) -> offboard::Result<Snapshot> {
        self.inner.snapshot(a, action).await
    }
    async fn restore(&self, a: &AccountRef, s: &Snapshot) -> offboard::Result<Outcome> {
        self.inner.restore(a, s).await
    }
    async fn verify_revoked(&self, a: &AccountRef) -> offboard::Result<Verification> {
        self.inner.verify_revoked(a).await
    }
}

#[tokio::test(start_paused = true)]
async fn rate_limit_and_concurrency_cap_hold() {
    let users: Vec<String> = (0..20).map(|i| format!("user{i}@example.com")).collect();
    let inner = Arc::new(
        ReferenceConnector::builder("idp")
            .latency(Duration::from_millis(300))
            .users(users.iter().map(ReferenceUser::new))
            .build(),
    );
    let rec = Recording::new(inner.clone());
    let policy_src = "[apps.idp]\nmethod = \"automatic\"\nactions = [\"idp.suspend\"]\n";
    let s = engine_with(
        Arc::new(MemoryStore::new()),
        vec![(
            rec.clone(),
            Limits::default().with_rate(5).with_concurrency(2),
        )],
        policy_src,
        |b| b,
    );
    let mut ids = Vec::new();
    for (i, u) in users.iter().enumerate() {
        let plan = s
            .engine
            .plan(RunRequest::new(
                Person::new(format!("p{i}"), u.clone()),
                admin(),
            ))
            .await
            .unwrap();
        ids.push(s.engine.submit(plan, None).await.unwrap());
    }
    let workers = s.engine.start();
    for id in &ids {
        assert_eq!(s.engine.wait(*id).await.unwrap().state, RunState::Completed);
    }
    workers.shutdown().await;
    assert!(
        rec.max_in_flight.load(Ordering::SeqCst) <= 2,
        "concurrency cap exceeded"
    );
    let starts = rec.starts.lock().unwrap().clone();
    assert_eq!(starts.len(), 20);
    // 5 per second with a burst of 5: any window of 1 s holds at most 5 + 5 starts, and 20
    // calls need at least 3 s.
    for (i, a) in starts.iter().enumerate() {
        let in_window = starts[i..]
            .iter()
            .filter(|b| b.duration_since(*a) < Duration::from_secs(1))
            .count();
        assert!(in_window <= 10, "{in_window} calls within 1 s");
    }
    assert!(starts.last().unwrap().duration_since(starts[0]) >= Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn cancellation_stops_future_work() {
    let c = idp(&["ada@example.com"]);
    let src = r#"
[stages]
now = "0d"
later = "1d"
[apps.idp]
method = "automatic"
actions = ["idp.suspend", { name = "idp.remove_groups", stage = "later" }]
"#;
    let s = engine_with(
        Arc::new(MemoryStore::new()),
        vec![(c.clone(), Limits::default())],
        src,
        |b| b,
    );
    let plan = s
        .engine
        .plan(RunRequest::new(ada(), admin()))
        .await
        .unwrap();
    let id = s.engine.submit(plan, None).await.unwrap();
    s.engine.run_due().await.unwrap();
    let run = s.engine.status(id).await.unwrap();
    assert!(task(&run, "idp.suspend").state.is_completed());
    let cancelled = s.engine.cancel(id, "admin@example.com").await.unwrap();
    assert_eq!(cancelled.state, RunState::Cancelled);
    tokio::time::advance(Duration::from_secs(2 * 86400)).await;
    assert_eq!(
        s.engine.run_due().await.unwrap(),
        0,
        "nothing is due after cancel"
    );
    let run = s.engine.status(id).await.unwrap();
    assert_eq!(task(&run, "idp.remove_groups").state, TaskState::Cancelled);
    let u = c.user_by_login("ada@example.com").unwrap();
    assert_eq!(u.groups.len(), 2, "the later stage never ran");
    assert!(
        s.engine.cancel(id, "admin@example.com").await.is_err(),
        "cancelling twice is refused"
    );
}

#[tokio::test(start_paused = true)]
async fn expired_leases_are_reclaimed() {
    let c = idp(&["ada@example.com"]);
    let store = Arc::new(MemoryStore::new());
    // A 120 s lease covers twice a 30 s timeout (and the margin).
    let s = engine_with(
        store.clone(),
        vec![(
            c.clone(),
            Limits::default().with_timeout(Duration::from_secs(30)),
        )],
        IDP_BASIC,
        |b| b.lease_for(Duration::from_secs(120)),
    );
    let plan = s
        .engine
        .plan(RunRequest::new(ada(), admin()))
        .await
        .unwrap();
    let id = s.engine.submit(plan, None).await.unwrap();
    // A worker claims everything due, then dies.
    let dead = store
        .claim(ClaimRequest::new(
            "dead-worker",
            s.engine.now(),
            Duration::from_secs(120),
            100,
        ))
        .await
        .unwrap();
    assert_eq!(dead.len(), 2, "suspend and remove_groups are due");
    assert_eq!(
        s.engine.run_due().await.unwrap(),
        0,
        "leased tasks are not handed out again"
    );
    tokio::time::advance(Duration::from_secs(121)).await;
    let workers = s.engine.start();
    let run = s.engine.wait(id).await.unwrap();
    workers.shutdown().await;
    assert_eq!(run.state, RunState::Completed);
    let ada_id = c.user_by_login("ada@example.com").unwrap().external_id;
    assert_eq!(c.effects(&ada_id, "idp.suspend"), 1);
    // The dead worker's late commit is refused.
    let mut stale = run.clone();
    stale.version = run.version;
    let err = store
        .commit(offboard::Commit::new(stale, vec![], vec![]).under_lease(dead[0].clone(), true))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
}

#[tokio::test(start_paused = true)]
async fn critical_actions_need_a_digest_bound_confirmation() {
    let c = idp(&["ada@example.com", "grace@example.com"]);
    let src = "[apps.idp]\nmethod = \"automatic\"\nactions = [\"idp.suspend\", \"idp.delete\"]\n";
    let s = engine_with(
        Arc::new(MemoryStore::new()),
        vec![(c.clone(), Limits::default())],
        src,
        |b| b,
    );
    let plan = s
        .engine
        .plan(RunRequest::new(ada(), admin()))
        .await
        .unwrap();
    assert!(plan.has_critical());
    // Stable: planning the same request again gives the same digest.
    let again = s
        .engine
        .plan(RunRequest::new(ada(), admin()))
        .await
        .unwrap();
    assert_ne!(again.run.id, plan.run.id);
    assert_eq!(again.digest, plan.digest);
    let other = s
        .engine
        .plan(RunRequest::new(
            Person::new("p-grace", "grace@example.com"),
            admin(),
        ))
        .await
        .unwrap();
    assert_ne!(other.digest, plan.digest);
    let err = s
        .engine
        .submit(plan.clone(), Some(Confirmation::of(&other, "admin")))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::ConfirmationRequired,
        "a confirmation of another plan does not count"
    );
    let mut tampered = plan.clone();
    tampered.run.tasks.retain(|t| t.label() != "idp.suspend");
    let err = s
        .engine
        .submit(tampered, Some(Confirmation::of(&plan, "admin")))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::InvalidInput,
        "a plan changed after planning is refused"
    );
    assert!(
        s.store
            .list_runs(Default::default())
            .await
            .unwrap()
            .is_empty(),
        "nothing was submitted"
    );
    let refused = s.store.audit(AuditQuery::all()).await.unwrap();
    assert!(
        refused
            .iter()
            .any(|e| e.kind.name() == "confirmation_refused" && e.actor == "admin"),
        "{refused:?}"
    );
    let id = s
        .engine
        .submit(
            plan.clone(),
            Some(Confirmation::of(&plan, "sec-lead@example.com")),
        )
        .await
        .unwrap();
    let run = s.engine.status(id).await.unwrap();
    assert_eq!(run.confirmed_by.as_deref(), Some("sec-lead@example.com"));
    assert!(run.tasks.iter().all(|t| t.state != TaskState::Held));
}

#[tokio::test(start_paused = true)]
async fn four_eyes_refusals_are_audited_and_a_permitted_confirmer_releases() {
    let c = idp(&["ada@example.com"]);
    let src = r#"
[approvals]
roles = ["security"]
four_eyes = true
[apps.idp]
method = "automatic"
actions = ["idp.suspend", "idp.delete"]
"#;
    let s = engine_with(
        Arc::new(MemoryStore::new()),
        vec![(c.clone(), Limits::default())],
        src,
        |b| b,
    );
    let plan = s
        .engine
        .plan(RunRequest::new(ada(), admin()))
        .await
        .unwrap();
    // The initiator cannot confirm their own run, even in the right role.
    let own = Confirmation::of(&plan, "admin@example.com").as_role("security");
    let err = s.engine.submit(plan.clone(), Some(own)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConfirmationRequired, "{err}");
    assert!(err.to_string().contains("four eyes"), "{err}");
    assert!(
        s.store
            .list_runs(Default::default())
            .await
            .unwrap()
            .is_empty()
    );
    // Without a confirmation the delete is held; the rest runs.
    let id = s.engine.submit(plan.clone(), None).await.unwrap();
    s.engine.run_due().await.unwrap();
    let run = s.engine.status(id).await.unwrap();
    assert_eq!(run.state, RunState::AwaitingConfirmation);
    assert_eq!(task(&run, "idp.delete").state, TaskState::Held);
    assert!(task(&run, "idp.suspend").state.is_completed());
    // A confirmer without a permitted role is refused, and so is the initiator.
    for (by, role, why) in [
        (
            "helpdesk@example.com",
            Some("helpdesk"),
            "lets only security",
        ),
        ("helpdesk@example.com", None, "lets only security"),
        ("admin@example.com", Some("security"), "four eyes"),
    ] {
        let mut confirmation = Confirmation::new(plan.digest.clone(), by);
        confirmation.role = role.map(str::to_owned);
        let err = s.engine.confirm(id, confirmation).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConfirmationRequired, "{err}");
        assert!(err.to_string().contains(why), "{err}");
    }
    let events = s.store.audit(AuditQuery::run(id)).await.unwrap();
    let refusals: Vec<&serde_json::Value> = events
        .iter()
        .filter_map(|e| match &e.kind {
            AuditKind::Note { name, data } if name == "confirmation_refused" => Some(data),
            _ => None,
        })
        .collect();
    assert_eq!(refusals.len(), 3, "{events:?}");
    assert_eq!(refusals[0]["by"], "helpdesk@example.com");
    assert_eq!(refusals[0]["role"], "helpdesk");
    assert!(
        refusals[2]["reason"]
            .as_str()
            .unwrap()
            .contains("four eyes")
    );
    s.engine.run_due().await.unwrap();
    let ada_id = c.account_by_login("ada@example.com").unwrap().external_id;
    assert_eq!(c.effects(&ada_id, "idp.delete"), 0, "nothing released yet");
    let run = s
        .engine
        .confirm(
            id,
            Confirmation::new(plan.digest.clone(), "sec-lead@example.com").as_role("security"),
        )
        .await
        .unwrap();
    assert_eq!(run.confirmed_by.as_deref(), Some("sec-lead@example.com"));
    s.engine.run_due().await.unwrap();
    let run = s.engine.status(id).await.unwrap();
    assert_eq!(run.state, RunState::Completed);
    assert_eq!(c.effects(&ada_id, "idp.delete"), 1);
    let events = s.store.audit(AuditQuery::run(id)).await.unwrap();
    assert!(events.iter().any(|e| matches!(
        &e.kind,
        AuditKind::Transition { event: Event::Confirmed { by, role, .. }, .. }
            if by == "sec-lead@example.com" && role.as_deref() == Some("security")
    )));
}

/// A plan as a host forging it would hand it in: its digests recomputed after a change.
fn reseal(plan: &mut offboard::Plan) {
    plan.run.plan_digest = String::new();
    let digest = offboard::engine::plan_digest(&plan.run);
    plan.run.plan_digest = digest;
    plan.digest = plan.run.confirmation_digest();
}

#[tokio::test(start_paused = true)]
async fn a_request_resolving_to_a_protected_persons_account_is_refused() {
    // The CEO's secondary address, requested under another person id: the idp finds the CEO's
    // own account by its alias.
    let c = Arc::new(
        ReferenceConnector::builder("idp")
            .user(ReferenceUser::employee("ceo@example.com").alias("ceo.private@example.com"))
            .build(),
    );
    let src = r#"
protected = ["ceo@example.com"]
[apps.idp]
method = "automatic"
actions = ["idp.suspend"]
"#;
    let s = engine_with(
        Arc::new(MemoryStore::new()),
        vec![(c.clone(), Limits::default())],
        src,
        |b| b,
    );
    let request = RunRequest::new(Person::new("p-other", "ceo.private@example.com"), admin());
    let err = s.engine.plan(request).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protected, "{err}");
    assert!(err.to_string().contains("ceo@example.com"), "{err}");
    assert!(err.to_string().contains("idp"), "{err}");
    assert_eq!(c.total_effects(), 0);
    assert_eq!(
        c.user_by_login("ceo@example.com").unwrap().status,
        AccountStatus::Active
    );
    assert!(
        s.store
            .list_runs(Default::default())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(start_paused = true)]
async fn a_plan_weaker_than_the_engines_policy_is_refused() {
    let c = idp(&["ada@example.com", "svc@example.com"]);
    let src = r#"
[apps.idp]
method = "automatic"
actions = ["idp.suspend", "idp.delete"]
protected_accounts = ["svc@example.com"]
"#;
    let s = engine_with(
        Arc::new(MemoryStore::new()),
        vec![(c.clone(), Limits::default())],
        src,
        |b| b,
    );
    // `critical` flipped off, digests recomputed.
    let mut forged = s
        .engine
        .plan(RunRequest::new(ada(), admin()))
        .await
        .unwrap();
    assert!(task(&forged.run, "idp.delete").critical);
    for t in &mut forged.run.tasks {
        t.critical = false;
    }
    reseal(&mut forged);
    let err = s.engine.submit(forged, None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("idp.delete"), "{err}");
    assert!(err.to_string().contains("critical"), "{err}");

    // A protected account's skipped task turned back to pending, digests recomputed.
    let mut forged = s
        .engine
        .plan(RunRequest::new(
            Person::new("p-svc", "svc@example.com"),
            admin(),
        ))
        .await
        .unwrap();
    for t in &mut forged.run.tasks {
        t.state = TaskState::Pending;
        t.critical = true;
    }
    reseal(&mut forged);
    let confirmation = Confirmation::of(&forged, "admin@example.com");
    let err = s
        .engine
        .submit(forged, Some(confirmation))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protected, "{err}");
    assert!(err.to_string().contains("svc@example.com"), "{err}");

    assert!(
        s.store
            .list_runs(Default::default())
            .await
            .unwrap()
            .is_empty()
    );
    s.engine.run_due().await.unwrap();
    assert_eq!(c.total_effects(), 0, "nothing was touched");
}

#[tokio::test(start_paused = true)]
async fn a_plan_made_under_another_policy_is_refused() {
    let store = Arc::new(MemoryStore::new());
    let c = idp(&["ada@example.com"]);
    let old = engine_with(
        store.clone(),
        vec![(c.clone(), Limits::default())],
        "[apps.idp]\nmethod = \"automatic\"\nactions = [\"idp.suspend\", \"idp.remove_groups\"]\n",
        |b| b,
    );
    let plan = old
        .engine
        .plan(RunRequest::new(ada(), admin()))
        .await
        .unwrap();
    let current = engine_with(
        store.clone(),
        vec![(c.clone(), Limits::default())],
        IDP_BASIC,
        |b| b,
    );
    let err = current.engine.submit(plan, None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("policy"), "{err}");
    assert!(
        store
            .list_runs(Default::default())
            .await
            .unwrap()
            .is_empty()
    );
    current.engine.run_due().await.unwrap();
    assert_eq!(c.total_effects(), 0);
}

#[tokio::test(start_paused = true)]
async fn protection_is_checked_again_right_before_a_staged_action_runs() {
    let store = Arc::new(MemoryStore::new());
    let c = idp(&["ada@example.com"]);
    let staged = r#"
[stages]
last_day = "0d"
cleanup = "30d"
[apps.idp]
method = "automatic"
actions = ["idp.suspend", { name = "idp.remove_groups", stage = "cleanup" }]
"#;
    let before = engine_with(
        store.clone(),
        vec![(c.clone(), Limits::default())],
        staged,
        |b| b,
    );
    let plan = before
        .engine
        .plan(RunRequest::new(ada(), admin()))
        .await
        .unwrap();
    let id = before.engine.submit(plan, None).await.unwrap();
    before.engine.run_due().await.unwrap();
    let ada_id = c.account_by_login("ada@example.com").unwrap().external_id;
    assert_eq!(c.effects(&ada_id, "idp.suspend"), 1);
    // During the 30 days the policy starts protecting Ada's account; the engine is rebuilt
    // with it (a restart, or another process on the same store).
    let protecting = format!("protected = [\"ada@example.com\"]\n{staged}");
    let after = engine_with(
        store.clone(),
        vec![(c.clone(), Limits::default())],
        &protecting,
        |b| b,
    );
    tokio::time::advance(Duration::from_secs(30 * 86_400)).await;
    after.engine.run_due().await.unwrap();
    let run = after.engine.status(id).await.unwrap();
    assert_eq!(
        task(&run, "idp.remove_groups").state,
        TaskState::Skipped {
            reason: offboard::SkipReason::Protected
        }
    );
    assert_eq!(c.effects(&ada_id, "idp.remove_groups"), 0);
    assert!(
        !c.user_by_login("ada@example.com")
            .unwrap()
            .groups
            .is_empty()
    );
}

#[tokio::test(start_paused = true)]
async fn protected_people_and_accounts_are_refused() {
    let c = idp(&["ceo@example.com", "svc@example.com"]);
    let src = r#"
protected = ["CEO@example.com"]
[apps.idp]
method = "automatic"
actions = ["idp.suspend"]
protected_accounts = ["svc@example.com"]
"#;
    let s = engine_with(
        Arc::new(MemoryStore::new()),
        vec![(c.clone(), Limits::default())],
        src,
        |b| b,
    );
    let err = s
        .engine
        .plan(RunRequest::new(
            Person::new("p-ceo", "ceo@example.com"),
            admin(),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protected);
    let run = offboard(&s.engine, Person::new("p-svc", "svc@example.com")).await;
    assert!(matches!(
        task(&run, "idp.suspend").state,
        TaskState::Skipped {
            reason: offboard::SkipReason::Protected
        }
    ));
    assert_eq!(
        c.user_by_login("svc@example.com").unwrap().status,
        AccountStatus::Active
    );
    assert_eq!(c.total_effects(), 0);
}

#[tokio::test(start_paused = true)]
async fn rollback_restores_from_snapshots() {
    let c = idp(&["ada@example.com"]);
    let s = engine_with(
        Arc::new(MemoryStore::new()),
        vec![(c.clone(), Limits::default())],
        IDP_BASIC,
        |b| b,
    );
    let before = c.user_by_login("ada@example.com").unwrap();
    let run = offboard(&s.engine, ada()).await;
    assert_eq!(run.state, RunState::Completed);
    let report = s
        .engine
        .rollback(run.id, "admin@example.com", None)
        .await
        .unwrap();
    assert_eq!(report.state, RunState::RolledBack);
    assert_eq!(
        report.restored.len(),
        2,
        "suspend and remove_groups are reversible"
    );
    assert!(report.failed.is_empty());
    let after = c.user_by_login("ada@example.com").unwrap();
    assert_eq!(after.status, before.status);
    assert_eq!(after.groups, before.groups);
    assert_eq!(
        after.sessions, 0,
        "cleared sessions are not reversible and stay cleared"
    );
    assert!(
        s.engine
            .rollback(run.id, "admin@example.com", None)
            .await
            .is_err(),
        "a rolled-back run cannot roll back again"
    );
}

#[tokio::test(start_paused = true)]
async fn verify_reports_leftover_access() {
    let c = idp(&["ada@example.com"]);
    let src = "[apps.idp]\nmethod = \"automatic\"\nactions = [\"idp.suspend\"]\n";
    let s = engine_with(
        Arc::new(MemoryStore::new()),
        vec![(c.clone(), Limits::default())],
        src,
        |b| b,
    );
    let run = offboard(&s.engine, ada()).await;
    let report = s.engine.verify(run.id).await.unwrap();
    assert_eq!(report.apps.len(), 1);
    let v = &report.apps[0];
    assert_eq!(v.revoked, Some(false));
    assert!(
        v.remaining.iter().any(|r| r.contains("engineering")),
        "{:?}",
        v.remaining
    );
    assert_eq!(report.accuracy(), 0.0);
    // Verification is audited.
    let events = s.store.audit(AuditQuery::run(run.id)).await.unwrap();
    assert!(matches!(
        events.last().unwrap().kind,
        AuditKind::Verified {
            revoked: 0,
            checked: 1,
            ..
        }
    ));
}

#[tokio::test(start_paused = true)]
async fn ambiguous_and_missing_accounts() {
    let c = Arc::new(
        ReferenceConnector::builder("idp")
            .user(ReferenceUser::employee("ada@example.com"))
            .user(ReferenceUser::employee("ada2@example.com").alias("ada@example.com"))
            .build(),
    );
    let s = engine_with(
        Arc::new(MemoryStore::new()),
        vec![(c.clone(), Limits::default())],
        IDP_BASIC,
        |b| b,
    );
    let plan = s
        .engine
        .plan(RunRequest::new(ada(), admin()))
        .await
        .unwrap();
    assert!(
        plan.apps[0].note.contains("ambiguous"),
        "{}",
        plan.apps[0].note
    );
    let run = offboard(&s.engine, ada()).await;
    assert_eq!(run.state, RunState::CompletedWithFailures);
    assert!(run.tasks.iter().all(
        |t| matches!(&t.state, TaskState::Failed { error } if error.kind == ErrorKind::Ambiguous)
    ));
    assert_eq!(c.total_effects(), 0, "never a guess");
    // Verify looks again: an ambiguous answer is "unknown" with the error, never "revoked".
    let report = s.engine.verify(run.id).await.unwrap();
    assert_eq!(report.apps[0].revoked, None, "{report:?}");
    let unchecked = report.unchecked();
    assert_eq!(unchecked.len(), 1);
    assert!(unchecked[0].1.contains("ambiguous"), "{unchecked:?}");
    assert!(!report.all_revoked());

    let run = offboard(&s.engine, Person::new("p-nobody", "nobody@example.com")).await;
    assert_eq!(run.state, RunState::Completed);
    assert!(run.tasks.iter().all(|t| matches!(
        t.state,
        TaskState::Completed {
            outcome: Outcome::NotFound,
            ..
        }
    )));
    // An account created after planning is found by verify and reported.
    assert_eq!(s.engine.verify(run.id).await.unwrap().accuracy(), 1.0);
    c.add_user(ReferenceUser::employee("nobody@example.com"));
    let report = s.engine.verify(run.id).await.unwrap();
    assert_eq!(report.apps[0].revoked, Some(false), "{report:?}");
    assert_eq!(report.accuracy(), 0.0);
}

#[tokio::test(start_paused = true)]
async fn a_second_run_reports_already_done_and_open_runs_suppress() {
    let c = idp(&["ada@example.com"]);
    let s = engine_with(
        Arc::new(MemoryStore::new()),
        vec![(c.clone(), Limits::default())],
        IDP_BASIC,
        |b| b,
    );
    let plan = s
        .engine
        .plan(RunRequest::new(ada(), admin()))
        .await
        .unwrap();
    let first = s.engine.submit(plan, None).await.unwrap();
    let plan2 = s
        .engine
        .plan(RunRequest::new(ada(), admin()))
        .await
        .unwrap();
    let err = s.engine.submit(plan2, None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    let events = s.store.audit(AuditQuery::all()).await.unwrap();
    assert!(
        events.iter().any(
            |e| matches!(&e.kind, AuditKind::Suppressed { open_run, .. } if *open_run == first)
        )
    );
    let workers = s.engine.start();
    s.engine.wait(first).await.unwrap();
    workers.shutdown().await;
    let again = offboard(&s.engine, ada()).await;
    assert!(
        again.tasks.iter().all(|t| matches!(
            t.state,
            TaskState::Completed {
                outcome: Outcome::AlreadyDone,
                ..
            }
        )),
        "{:?}",
        again.tasks
    );
}

#[tokio::test(start_paused = true)]
async fn delegations_are_opened_once_and_watched() {
    let jira = Arc::new(ReferenceDelegate::jira());
    let store = Arc::new(MemoryStore::new());
    let src = "[apps.salesforce]\nmethod = \"delegate\"\nvia = \"jira\"\n";
    let s = engine_with(store, vec![], src, |b| {
        b.delegate(jira.clone())
            .delegation_poll(Duration::from_secs(60))
    });
    let plan = s
        .engine
        .plan(RunRequest::new(ada(), admin()))
        .await
        .unwrap();
    let id = s.engine.submit(plan, None).await.unwrap();
    let workers = s.engine.start();
    let run = s
        .engine
        .wait_for(id, |r| r.state == RunState::Waiting)
        .await
        .unwrap();
    let TaskState::Delegated { ticket } = &run.tasks[0].state else {
        panic!()
    };
    assert_eq!(jira.tickets_created(), 1);
    jira.assign(&ticket.key, "sam@example.com");
    let run = s
        .engine
        .wait_for(id, |r| matches!(&r.tasks[0].state, TaskState::Delegated { ticket } if ticket.assignee.is_some()))
        .await
        .unwrap();
    let TaskState::Delegated { ticket } = &run.tasks[0].state else {
        panic!()
    };
    assert_eq!(ticket.assignee.as_deref(), Some("sam@example.com"));
    let t_done = s.engine.now();
    jira.complete(&ticket.key, "sam@example.com");
    let run = s.engine.wait(id).await.unwrap();
    workers.shutdown().await;
    assert_eq!(run.state, RunState::Completed);
    let picked_up = run.tasks[0].finished_at.unwrap() - t_done;
    assert!(
        picked_up <= chrono::Duration::seconds(60),
        "picked up within one poll interval: {picked_up}"
    );
    assert_eq!(jira.tickets_created(), 1, "one ticket per task");
}

#[tokio::test(start_paused = true)]
async fn cycles_are_refused_clearly() {
    let c = idp(&["ada@example.com"]);
    // The connector orders suspend before clear_sessions; this policy asks the opposite.
    let src = format!(
        "{IDP_BASIC}\n[[order]]\nbefore = \"idp.clear_sessions\"\nafter = \"idp.suspend\"\n"
    );
    let s = engine_with(
        Arc::new(MemoryStore::new()),
        vec![(c, Limits::default())],
        &src,
        |b| b,
    );
    let err = s
        .engine
        .plan(RunRequest::new(ada(), admin()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cycle);
    assert!(
        err.to_string().contains("idp.suspend") && err.to_string().contains("idp.clear_sessions"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_audit_trail_replays_to_the_stored_state() {
    let c = Arc::new(
        ReferenceConnector::builder("idp")
            .user(ReferenceUser::employee("ada@example.com"))
            .fail_next(
                "idp.remove_groups",
                1,
                unavailable(Some(Duration::from_secs(3))),
            )
            .build(),
    );
    let s = engine_with(
        Arc::new(MemoryStore::new()),
        vec![(c, Limits::default())],
        IDP_BASIC,
        |b| b,
    );
    let run = offboard(&s.engine, ada()).await;
    let events = s.store.audit(AuditQuery::run(run.id)).await.unwrap();
    offboard::audit::verify_chain(&s.store.audit(AuditQuery::all()).await.unwrap())
        .expect("chain verifies");
    let AuditKind::RunPlanned { run: planned } = &events[0].kind else {
        panic!("first event is the plan")
    };
    let transitions: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.kind {
            AuditKind::Transition { event, .. } => Some((e.at, event)),
            _ => None,
        })
        .collect();
    let mut replayed = machine::replay((**planned).clone(), transitions).expect("replays");
    replayed.version = run.version;
    assert_eq!(replayed, run);
}

#[tokio::test(start_paused = true)]
async fn two_engines_share_one_store_without_double_work() {
    let users: Vec<String> = (0..30).map(|i| format!("u{i}@example.com")).collect();
    let c = Arc::new(
        ReferenceConnector::builder("idp")
            .latency(Duration::from_millis(50))
            .users(users.iter().map(ReferenceUser::employee))
            .build(),
    );
    let store = Arc::new(MemoryStore::new());
    let a = engine_with(
        store.clone(),
        vec![(c.clone(), Limits::default())],
        IDP_BASIC,
        |b| b.worker_id("a").max_in_flight(4),
    );
    let b = engine_with(
        store.clone(),
        vec![(c.clone(), Limits::default())],
        IDP_BASIC,
        |b| b.worker_id("b").max_in_flight(4),
    );
    let mut ids = Vec::new();
    for (i, u) in users.iter().enumerate() {
        let plan = a
            .engine
            .plan(RunRequest::new(
                Person::new(format!("p{i}"), u.clone()),
                admin(),
            ))
            .await
            .unwrap();
        ids.push(a.engine.submit(plan, None).await.unwrap());
    }
    let (wa, wb) = (a.engine.start(), b.engine.start());
    for id in &ids {
        assert_eq!(a.engine.wait(*id).await.unwrap().state, RunState::Completed);
    }
    wa.shutdown().await;
    wb.shutdown().await;
    for u in c.users() {
        for action in ["idp.suspend", "idp.clear_sessions", "idp.remove_groups"] {
            assert_eq!(c.effects(&u.external_id, action), 1, "{} {action}", u.login);
        }
    }
    let events = store.audit(AuditQuery::all()).await.unwrap();
    let actors: std::collections::BTreeSet<_> = events.iter().map(|e| e.actor.as_str()).collect();
    assert!(
        actors.contains("a") && actors.contains("b"),
        "both engines worked: {actors:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn slow_calls_time_out_and_are_retried() {
    let c = Recording::slow(idp(&["ada@example.com"]), Duration::from_secs(20));
    let src = "[apps.idp]\nmethod = \"automatic\"\nactions = [\"idp.suspend\"]\n";
    let s = engine_with(
        Arc::new(MemoryStore::new()),
        vec![(
            c.clone(),
            Limits::default().with_timeout(Duration::from_secs(5)),
        )],
        src,
        |b| {
            b.retry(RetryPolicy {
                max_attempts: 2,
                max_elapsed: Duration::from_secs(600),
            })
        },
    );
    let run = offboard(&s.engine, ada()).await;
    let t = task(&run, "idp.suspend");
    assert_eq!(t.attempts, 2);
    let TaskState::Failed { error } = &t.state else {
        panic!("{:?}", t.state)
    };
    assert_eq!(error.kind, ErrorKind::Timeout);
    assert_eq!(error.retry, offboard::RetryClass::Exhausted);
}

#[tokio::test(start_paused = true)]
async fn metrics_measure_the_run() {
    let c = Arc::new(
        ReferenceConnector::builder("idp")
            .latency(Duration::from_millis(100))
            .user(ReferenceUser::employee("ada@example.com"))
            .build(),
    );
    let s = engine_with(
        Arc::new(MemoryStore::new()),
        vec![(c, Limits::default())],
        IDP_BASIC,
        |b| b,
    );
    let run = offboard(&s.engine, ada()).await;
    let m = Engine::metrics(&run);
    // suspend (snapshot + execute) then clear_sessions: at least 300 ms of calls in sequence.
    let ttr = m.time_to_revoke.unwrap();
    assert!(
        ttr >= Duration::from_millis(300) && ttr < Duration::from_secs(2),
        "{ttr:?}"
    );
    assert!(m.offboarding_time.unwrap() >= ttr);
    assert!(m.per_app[&offboard::AppId::new("idp")] >= Duration::from_millis(300));
}

#[test]
fn the_example_policy_parses() {
    let p = Policy::from_toml(include_str!("../examples/policy.toml"))
        .expect("examples/policy.toml is valid");
    assert_eq!(p.stages.len(), 2);
    for app in [
        "okta",
        "google",
        "entra",
        "o365",
        "slack",
        "salesforce",
        "figma",
    ] {
        assert!(p.apps.contains_key(&offboard::AppId::new(app)), "{app}");
    }
    assert!(!p.apps.contains_key(&offboard::AppId::new("idp")));
    assert!(p.is_critical(&offboard::ActionName::from_static("okta.unassign_apps")));
    assert_eq!(
        p.departures,
        Some(offboard::policy::DepartureLimits {
            max_people: 25,
            max_percent: 5
        })
    );
    // Its actions are the real connectors' (nothing is sent: building makes no request).
    let okta = offboard_okta::OktaConfig::new()
        .with_org_url("https://example.okta.com")
        .with_api_token(offboard::Secret::new("00example"))
        .build()
        .unwrap();
    // As the demo configures it: google.remove_licenses is offered with licences configured.
    let google = offboard_google::GoogleConfig::new()
        .with_access_token(offboard::Secret::new("ya29.example"))
        .with_licence_skus([offboard_google::Sku::new("Google-Apps", "1010020027")])
        .build()
        .unwrap();
    let entra = offboard_azure::AzureConfig::new()
        .with_tenant_id("contoso")
        .with_client_id("client")
        .with_client_secret(offboard::Secret::new("secret"))
        .build()
        .unwrap();
    let o365 = offboard_o365::O365Config::new()
        .with_tenant_id("contoso")
        .with_client_id("client")
        .with_client_secret(offboard::Secret::new("secret"))
        .build()
        .unwrap();
    // As the demo configures it: Slack's SCIM API with the `slack` profile.
    let slack = offboard_scim::ScimConfig::new("slack")
        .with_base_url("https://api.slack.com/scim/v2")
        .with_bearer_token(offboard::Secret::new("xoxp-example"))
        .with_profile(offboard_scim::ScimProfile::SLACK)
        .build()
        .unwrap();
    let connectors: [(&str, &dyn Connector); 5] = [
        ("okta", &okta),
        ("google", &google),
        ("entra", &entra),
        ("o365", &o365),
        ("slack", &slack),
    ];
    for (app, connector) in connectors {
        let offboard::policy::Method::Automatic { actions } =
            &p.apps[&offboard::AppId::new(app)].method
        else {
            panic!("{app} is automatic")
        };
        assert!(actions.len() >= if app == "slack" { 2 } else { 4 }, "{app}");
        for a in actions {
            let name = &a.action.name;
            assert!(connector.capabilities().action(name).is_some(), "{name}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_webhook_makes_the_delegation_poll_at_once() {
    let jira = Arc::new(ReferenceDelegate::jira());
    let src = "[apps.salesforce]\nmethod = \"delegate\"\nvia = \"jira\"\n";
    // An hour between polls: only the webhook can make completion fast.
    let s = engine_with(Arc::new(MemoryStore::new()), vec![], src, |b| {
        b.delegate(jira.clone())
            .delegation_poll(Duration::from_secs(3600))
    });
    let plan = s
        .engine
        .plan(RunRequest::new(ada(), admin()))
        .await
        .unwrap();
    let id = s.engine.submit(plan, None).await.unwrap();
    let workers = s.engine.start();
    let run = s
        .engine
        .wait_for(id, |r| r.state == RunState::Waiting)
        .await
        .unwrap();
    let TaskState::Delegated { ticket } = &run.tasks[0].state else {
        panic!()
    };
    let key = ticket.key.clone();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let t_done = s.engine.now();
    jira.complete(&key, "sam@example.com");
    let hit = s
        .engine
        .delegation_changed(offboard::DelegateVia::Jira, &key)
        .await
        .unwrap();
    assert_eq!(hit, Some((id, run.tasks[0].id)));
    let run = s.engine.wait(id).await.unwrap();
    workers.shutdown().await;
    let took = run.tasks[0].finished_at.unwrap() - t_done;
    assert!(
        took <= chrono::Duration::seconds(2),
        "picked up {took} after the webhook"
    );
    // Metrics carry the human's turnaround.
    let m = Engine::metrics(&run);
    assert!(m.delegation_turnaround[&run.tasks[0].id] >= Duration::from_secs(10));
    // Unknown or finished tickets are ignored.
    assert_eq!(
        s.engine
            .delegation_changed(offboard::DelegateVia::Jira, &key)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.engine
            .delegation_changed(offboard::DelegateVia::Email, "NOPE-1")
            .await
            .unwrap(),
        None
    );
}

#[tokio::test(start_paused = true)]
async fn a_reopened_ticket_moves_the_task_back_while_the_run_is_open() {
    let jira = Arc::new(ReferenceDelegate::jira());
    let c = idp(&["ada@example.com"]);
    let src = r#"
[stages]
now = "0d"
later = "1d"
[apps.salesforce]
method = "delegate"
via = "jira"
[apps.idp]
method = "automatic"
actions = [{ name = "idp.suspend", stage = "later" }]
"#;
    let s = engine_with(
        Arc::new(MemoryStore::new()),
        vec![(c, Limits::default())],
        src,
        |b| {
            b.delegate(jira.clone())
                .delegation_poll(Duration::from_secs(60))
        },
    );
    let plan = s
        .engine
        .plan(RunRequest::new(ada(), admin()))
        .await
        .unwrap();
    let id = s.engine.submit(plan, None).await.unwrap();
    let workers = s.engine.start();
    let delegated = |r: &Run| {
        r.tasks
            .iter()
            .any(|t| matches!(t.state, TaskState::Delegated { .. }))
    };
    s.engine.wait_for(id, delegated).await.unwrap();
    let key = jira.tickets()[0].ticket.key.clone();
    jira.complete(&key, "sam@example.com");
    let sf_done = |r: &Run| task(r, "salesforce.delegate_jira").state.is_completed();
    s.engine.wait_for(id, sf_done).await.unwrap();
    jira.reopen(&key);
    let run = s.engine.wait_for(id, delegated).await.unwrap();
    assert!(
        matches!(
            task(&run, "salesforce.delegate_jira").state,
            TaskState::Delegated { .. }
        ),
        "reopen moved it back"
    );
    jira.complete(&key, "sam@example.com");
    let run = s.engine.wait(id).await.unwrap();
    assert_eq!(run.state, RunState::Completed);
    let events = s.store.audit(AuditQuery::run(id)).await.unwrap();
    assert!(events.iter().any(|e| matches!(
        &e.kind,
        AuditKind::Transition {
            event: Event::DelegationReopened { .. },
            ..
        }
    )));
    // Once the run has ended, the done ticket is no longer polled.
    let calls = jira.status_calls();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    workers.shutdown().await;
    assert_eq!(jira.status_calls(), calls);
    assert_eq!(jira.tickets_created(), 1);
}

/// An engine on a call-counting memory store, and Ada's run (`IDP_BASIC`) submitted on it.
async fn submitted_on_a_counting_store() -> (
    Arc<offboard_testkit::suite::store::CountingStore<MemoryStore>>,
    Engine,
    offboard::RunId,
) {
    let store = Arc::new(offboard_testkit::suite::store::CountingStore::new(
        MemoryStore::new(),
    ));
    let (engine, id) = ada_submitted(store.clone(), IDP_BASIC, idp(&["ada@example.com"])).await;
    (store, engine, id)
}

/// A run this engine submitted and then committed is never loaded by its workers: a claim
/// reads the run's version, and the run the engine holds (kept from the submit, then from its
/// own commits, across its waves of tasks) is that version or a later one of its own. Sibling
/// tasks claimed together share it.
#[tokio::test(start_paused = true)]
async fn a_run_this_engine_stored_is_not_loaded_again() {
    let (store, engine, id) = submitted_on_a_counting_store().await;
    store.take();
    engine.run_due().await.unwrap();
    let calls = store.take();
    let run = store.load_run(id).await.unwrap().unwrap();
    assert_eq!(run.state, RunState::Completed);
    // Three tasks in two waves: `idp.suspend` and `idp.remove_groups`, then
    // `idp.clear_sessions` once the suspension is done.
    let suspend = task(&run, "idp.suspend");
    assert!(task(&run, "idp.remove_groups").depends_on.is_empty());
    assert_eq!(
        task(&run, "idp.clear_sessions").depends_on,
        vec![suspend.id]
    );
    assert!(run.tasks.iter().all(|t| t.attempts == 1), "{run:?}");
    let loads = calls.get("load_run").map_or(0, |(n, _)| *n);
    let claims = calls.get("claim").map_or(0, |(n, _)| *n);
    assert_eq!(loads, 0, "no load: {calls:?}");
    // Without a load to wait for, the siblings claimed together still share the commit of
    // their starts (a change left in the slot yields to siblings on their way): six commits
    // one change at a time, five here.
    let commits = calls.get("commit").map_or(0, |(n, _)| *n);
    assert!(commits <= 5, "siblings share commits: {calls:?}");
    assert!(claims >= 2, "{calls:?}");
}

/// Once another engine (here: a commit made straight to the store) has changed a run, the run
/// this engine holds is no longer the one stored: the claim loads it, and the change made
/// elsewhere is kept by the commits that follow.
#[tokio::test(start_paused = true)]
async fn a_run_changed_elsewhere_is_loaded_by_the_claim() {
    let (store, engine, id) = submitted_on_a_counting_store().await;
    // Elsewhere: the run's reason is amended (version 1 -> 2), its tasks untouched.
    let mut elsewhere = store.load_run(id).await.unwrap().unwrap();
    elsewhere.reason = "amended elsewhere".into();
    store
        .commit(offboard::Commit::new(elsewhere, Vec::new(), Vec::new()))
        .await
        .unwrap();
    store.take();
    engine.run_due().await.unwrap();
    let calls = store.take();
    let run = store.load_run(id).await.unwrap().unwrap();
    assert_eq!(run.state, RunState::Completed);
    assert_eq!(
        run.reason, "amended elsewhere",
        "not overwritten by a stale copy"
    );
    let loads = calls.get("load_run").map_or(0, |(n, _)| *n);
    assert_eq!(
        loads, 1,
        "the first claim loads, the second wave does not: {calls:?}"
    );
}

/// Sibling tasks whose changes are ready while one of them commits share the next commit (one
/// commit under all their leases), each change still with its own audit event; the run ends
/// as it would have one commit at a time. The store takes 10 ms per commit, as a durable one
/// does, so siblings overlap.
#[tokio::test(start_paused = true)]
async fn siblings_ready_together_share_a_commit() {
    let store = Arc::new(
        offboard_testkit::suite::store::CountingStore::new(MemoryStore::new())
            .with_commit_delay(Duration::from_millis(10)),
    );
    // Every action runs once, each task has one start and one result (its own audit event,
    // naming its task) and the chain verifies: `four_actions_on` checks it.
    let (_, run) = four_actions_on(store.clone()).await;
    assert_eq!(run.tasks.len(), 4);
    let leases = store.take_commit_leases();
    // One start and one result per task: 8 changes, in fewer commits. `idp.clear_sessions`
    // (after `idp.suspend`) is started by the commit of the suspension's result, under a lease
    // that commit takes: 7 changes are made under a lease.
    assert_eq!(leases.iter().sum::<usize>(), 7, "{leases:?}");
    assert_eq!(store.take_commit_claims().iter().sum::<usize>(), 1);
    assert!(
        leases.iter().any(|n| *n > 1),
        "no commit was shared: {leases:?}"
    );
    assert!(leases.len() < 7, "{leases:?}");
}

/// Four actions, `idp.clear_sessions` after `idp.suspend`, run by `run_due` on `store`.
async fn four_actions_on(
    store: Arc<offboard_testkit::suite::store::CountingStore<MemoryStore>>,
) -> (Arc<ReferenceConnector>, Run) {
    const FOUR: &str = r#"
[apps.idp]
method = "automatic"
actions = ["idp.suspend", "idp.clear_sessions", "idp.remove_groups", "idp.unassign_apps"]
"#;
    let c = idp(&["ada@example.com"]);
    let (engine, id) = ada_submitted(store.clone(), FOUR, c.clone()).await;
    store.take();
    store.take_commit_leases();
    engine.run_due().await.unwrap();
    let run = store.load_run(id).await.unwrap().unwrap();
    assert_eq!(run.state, RunState::Completed);
    // Every action ran once; each task has one start and one result; the chain verifies.
    let calls = c.calls();
    assert_eq!(calls.execute, 4, "{calls:?}");
    assert!(calls.by_action.values().all(|n| *n == 1), "{calls:?}");
    let events = store.audit(AuditQuery::run(id)).await.unwrap();
    for t in &run.tasks {
        for name in ["task_started", "task_succeeded"] {
            let n = events
                .iter()
                .filter(|e| e.task == Some(t.id) && e.kind.name() == name)
                .count();
            assert_eq!(n, 1, "{name} of {}", t.label());
        }
    }
    let all = store.audit(AuditQuery::all()).await.unwrap();
    assert_eq!(offboard::audit::verify_chain(&all), Ok(all.len() as u64));
    (c, run)
}

/// The position in the audit trail of `task`'s event `name`.
fn seq_of(events: &[offboard::AuditEvent], task: &offboard::Task, name: &str) -> u64 {
    events
        .iter()
        .find(|e| e.task == Some(task.id) && e.kind.name() == name)
        .map(|e| e.seq)
        .unwrap_or_else(|| panic!("no {name} of {}", task.label()))
}

/// The commit of a result starts the task that result made due (no snapshot needed) under a
/// lease the commit takes, and the worker runs it next: no claim and no start commit of its
/// own. Here: `idp.clear_sessions`, started with `idp.suspend`'s result.
#[tokio::test(start_paused = true)]
async fn a_result_starts_the_task_it_makes_due_in_its_commit() {
    let store = Arc::new(offboard_testkit::suite::store::CountingStore::new(
        MemoryStore::new(),
    ));
    let (_, run) = four_actions_on(store.clone()).await;
    let calls = store.take();
    assert_eq!(store.take_commit_claims().iter().sum::<usize>(), 1);
    // One commit fewer than on a store that takes no leases with commits: clear_sessions'
    // start of its own.
    let without = Arc::new(
        offboard_testkit::suite::store::CountingStore::new(MemoryStore::new())
            .without_claims_in_commit(),
    );
    four_actions_on(without.clone()).await;
    let others = without.take();
    let commits = |calls: &std::collections::BTreeMap<&str, (u64, Duration)>| {
        calls.get("commit").map_or(0, |(n, _)| *n)
    };
    assert_eq!(
        commits(&calls) + 1,
        commits(&others),
        "{calls:?} {others:?}"
    );
    let events = store.audit(AuditQuery::run(run.id)).await.unwrap();
    let suspend = task(&run, "idp.suspend");
    let clear = task(&run, "idp.clear_sessions");
    let suspended = seq_of(&events, suspend, "task_succeeded");
    let started = seq_of(&events, clear, "task_started");
    assert!(suspended < started, "{events:?}");
    // In the same commit: no event of another commit between them.
    let results = events
        .iter()
        .filter(|e| e.seq > suspended && e.seq < started)
        .all(|e| e.kind.name() == "task_succeeded");
    assert!(results, "{events:?}");
    assert_eq!(clear.attempts, 1);
    // Nothing is left leased: nothing is due.
    let leases = store
        .claim(ClaimRequest::new(
            "w",
            chrono::Utc::now() + chrono::Duration::days(1),
            Duration::from_secs(60),
            10,
        ))
        .await
        .unwrap();
    assert!(leases.is_empty(), "{leases:?}");
}

/// A store that takes no leases with commits is given none: every task is claimed, and
/// started by a commit of its own.
#[tokio::test(start_paused = true)]
async fn a_store_without_claims_in_commit_gets_none() {
    let store = Arc::new(
        offboard_testkit::suite::store::CountingStore::new(MemoryStore::new())
            .without_claims_in_commit(),
    );
    let (_, run) = four_actions_on(store.clone()).await;
    assert_eq!(store.take_commit_claims().iter().sum::<usize>(), 0);
    // clear_sessions was claimed: its start is a commit of its own, after the suspension's.
    let events = store.audit(AuditQuery::run(run.id)).await.unwrap();
    let suspended = seq_of(&events, task(&run, "idp.suspend"), "task_succeeded");
    let started = seq_of(&events, task(&run, "idp.clear_sessions"), "task_started");
    assert!(suspended < started);
}

/// When the store refuses the lease to take (the task was claimed meanwhile), the result is
/// committed again without it, and the task is claimed as every other: nothing runs twice,
/// nothing is recorded twice.
#[tokio::test(start_paused = true)]
async fn a_refused_take_commits_the_result_without_it() {
    let store = Arc::new(
        offboard_testkit::suite::store::CountingStore::new(MemoryStore::new()).refusing_claims(1),
    );
    four_actions_on(store.clone()).await;
    // The refused commit stored nothing (`four_actions_on` checks one start and one result per
    // task); the one after it took nothing.
    assert_eq!(store.take_commit_claims().iter().sum::<usize>(), 0);
}

/// A run cancelled while a task runs: that task's result is recorded when it arrives, and the
/// task it would have made due is cancelled, not taken along (the result's commit sees the
/// cancel) nor claimed.
#[tokio::test(start_paused = true)]
async fn a_result_after_a_cancel_takes_nothing_along() {
    let c = Arc::new(
        ReferenceConnector::builder("idp")
            .users([ReferenceUser::employee("ada@example.com")])
            .latency(Duration::from_secs(1))
            .build(),
    );
    let store = Arc::new(MemoryStore::new());
    let src = r#"
[apps.idp]
method = "automatic"
actions = ["idp.suspend", "idp.clear_sessions"]
"#;
    let (engine, id) = ada_submitted(store.clone(), src, c.clone()).await;
    let workers = engine.start();
    // The suspension is under way (1 s per connector call): cancel meanwhile.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let run = engine.status(id).await.unwrap();
    assert!(matches!(
        task(&run, "idp.suspend").state,
        TaskState::Running { .. }
    ));
    engine.cancel(id, "admin@example.com").await.unwrap();
    let run = engine.wait(id).await.unwrap();
    workers.shutdown().await;
    assert_eq!(run.state, RunState::Cancelled);
    assert!(task(&run, "idp.suspend").state.is_completed(), "{run:?}");
    assert_eq!(task(&run, "idp.clear_sessions").state, TaskState::Cancelled);
    let ada = c.account_by_login("ada@example.com").unwrap();
    assert_eq!(c.effects(&ada.external_id, "idp.suspend"), 1);
    // (The result's first commit, made on the run as this engine held it before the cancel,
    // may have tried to take it: refused for the moved version, and made again on the
    // cancelled run, which takes nothing.)
    assert_eq!(c.effects(&ada.external_id, "idp.clear_sessions"), 0);
}

/// A task of a later stage is not due when its dependency completes: it is not taken along,
/// and waits for its time.
#[tokio::test(start_paused = true)]
async fn a_later_stage_is_not_taken_along() {
    let store = Arc::new(offboard_testkit::suite::store::CountingStore::new(
        MemoryStore::new(),
    ));
    let src = r#"
[stages]
now = "0d"
later = "1d"
[apps.idp]
method = "automatic"
actions = ["idp.suspend", { name = "idp.clear_sessions", stage = "later" }]
"#;
    let c = idp(&["ada@example.com"]);
    let (engine, id) = ada_submitted(store.clone(), src, c.clone()).await;
    engine.run_due().await.unwrap();
    let run = engine.status(id).await.unwrap();
    assert!(task(&run, "idp.suspend").state.is_completed());
    assert_eq!(task(&run, "idp.clear_sessions").state, TaskState::Pending);
    assert_eq!(store.take_commit_claims().iter().sum::<usize>(), 0);
    tokio::time::advance(Duration::from_secs(86_400)).await;
    engine.run_due().await.unwrap();
    let run = engine.status(id).await.unwrap();
    assert_eq!(run.state, RunState::Completed);
}

/// An engine on `store` with the policy `src` and connector `c` (default limits), and the run
/// of Ada it submitted.
async fn ada_submitted(
    store: Arc<dyn Store>,
    src: &str,
    c: Arc<ReferenceConnector>,
) -> (Engine, offboard::RunId) {
    let engine = Engine::builder()
        .store(store)
        .policy(policy(src))
        .connector_with_limits(c, Limits::default())
        .build()
        .expect("engine builds");
    let plan = engine.plan(RunRequest::new(ada(), admin())).await.unwrap();
    let id = engine.submit(plan, None).await.unwrap();
    (engine, id)
}

/// An engine that holds none of the runs it claims tasks of (another engine submitted them, or
/// this one restarted) loads them together, one call per claim, not one per run.
#[tokio::test(start_paused = true)]
async fn runs_of_one_claim_are_loaded_together() {
    let store = Arc::new(offboard_testkit::suite::store::CountingStore::new(
        MemoryStore::new(),
    ));
    let people = ["ada", "bob", "cy"];
    let c = idp(&people
        .map(|p| format!("{p}@example.com"))
        .each_ref()
        .map(|s| s.as_str()));
    let build = || {
        Engine::builder()
            .store(store.clone())
            .policy(policy(IDP_BASIC))
            .connector_with_limits(c.clone(), Limits::default())
            .build()
            .expect("engine builds")
    };
    let submitter = build();
    for p in people {
        let person = Person::new(p, format!("{p}@example.com"));
        let plan = submitter
            .plan(RunRequest::new(person, admin()))
            .await
            .unwrap();
        submitter.submit(plan, None).await.unwrap();
    }
    store.take();
    let worker = build();
    worker.run_due().await.unwrap();
    let calls = store.take();
    let count = |name: &str| calls.get(name).map_or(0, |(n, _)| *n);
    assert_eq!(count("load_runs"), 1, "{calls:?}");
    assert_eq!(count("load_run"), 0, "{calls:?}");
    let runs = store
        .list_runs(offboard::RunQuery::default())
        .await
        .unwrap();
    assert_eq!(runs.len(), 3);
    assert!(
        runs.iter().all(|r| r.state == RunState::Completed),
        "{runs:?}"
    );
    // Each action ran once per person.
    assert!(
        c.calls().by_action.values().all(|n| *n == 3),
        "{:?}",
        c.calls()
    );
}

/// A reversible task a result makes due is taken along only leased: its worker takes and
/// stores its snapshot with its start, as for a claimed task, then runs it, without a claim of
/// its own; rolling back restores from that snapshot.
#[tokio::test(start_paused = true)]
async fn a_reversible_task_is_taken_along_and_started_with_its_snapshot() {
    let src = r#"
[apps.idp]
method = "automatic"
actions = ["idp.suspend", "idp.remove_groups"]

[[order]]
before = "idp.suspend"
after = "idp.remove_groups"
"#;
    let store = Arc::new(offboard_testkit::suite::store::CountingStore::new(
        MemoryStore::new(),
    ));
    let c = idp(&["ada@example.com"]);
    let before = c.user_by_login("ada@example.com").unwrap();
    let (engine, id) = ada_submitted(store.clone(), src, c.clone()).await;
    store.take();
    engine.run_due().await.unwrap();
    let run = engine.status(id).await.unwrap();
    assert_eq!(run.state, RunState::Completed);
    // The suspension's result commit took the lease of remove_groups without starting it.
    assert_eq!(store.take_commit_claims().iter().sum::<usize>(), 1);
    let events = store.audit(AuditQuery::run(id)).await.unwrap();
    let groups = task(&run, "idp.remove_groups");
    let suspended = seq_of(&events, task(&run, "idp.suspend"), "task_succeeded");
    let snapshot = seq_of(&events, groups, "snapshot_taken");
    let started = seq_of(&events, groups, "task_started");
    assert!(suspended < started && started < snapshot, "{events:?}");
    assert_eq!(groups.attempts, 1);
    let ada = c.account_by_login("ada@example.com").unwrap();
    assert_eq!(c.effects(&ada.external_id, "idp.remove_groups"), 1);
    let report = engine
        .rollback(id, "admin@example.com", None)
        .await
        .unwrap();
    assert_eq!(report.restored.len(), 2, "{report:?}");
    assert_eq!(
        c.user_by_login("ada@example.com").unwrap().groups,
        before.groups
    );
}

// --- Safety under hostile input and ambiguous answers ---------------------------------------

/// A policy that delegates to a delegate the engine does not have, or that offboards nothing
/// (every run would "complete" with nothing done), is refused at build, naming the field.
#[test]
fn build_refuses_missing_delegates_and_empty_policies() {
    for (src, field) in [
        (
            "unknown_apps = \"delegate_jira\"\n[apps.idp]\nmethod = \"automatic\"\nactions = [\"idp.suspend\"]\n",
            "unknown_apps",
        ),
        (
            "[apps.idp]\nmethod = \"automatic\"\nactions = [\"idp.suspend\"]\n[apps.crm]\nmethod = \"delegate\"\nvia = \"email\"\n",
            "apps.crm.via",
        ),
        ("", "apps"),
        ("[apps.idp]\nmethod = \"ignore\"\n", "apps"),
    ] {
        let e = Engine::builder()
            .store(Arc::new(MemoryStore::new()))
            .connector(idp(&[]))
            .policy(policy(src))
            .build()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
        assert!(e.context().any(|(k, v)| k == "key" && v == field), "{e:?}");
    }
}

/// An effective time at the end of the calendar plus a stage offset is a clear error, not a
/// panic.
#[tokio::test(start_paused = true)]
async fn an_effective_time_beyond_the_calendar_is_invalid_input() {
    let s = engine_with(
        Arc::new(MemoryStore::new()),
        vec![(idp(&["ada@example.com"]), Limits::default())],
        "[stages]\nnow = \"0d\"\nlater = \"30d\"\n[apps.idp]\nmethod = \"automatic\"\nactions = [\"idp.suspend\", { name = \"idp.delete\", stage = \"later\" }]\n",
        |b| b,
    );
    let e = s
        .engine
        .plan(
            RunRequest::new(ada(), admin()).effective_at(chrono::DateTime::<chrono::Utc>::MAX_UTC),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("stages.later"), "{e}");
}

/// A task that panics does not stop the worker: the panic is audited and reported, and the
/// task is claimed again when its lease expires.
#[tokio::test(start_paused = true)]
async fn a_panicking_task_is_audited_and_the_worker_goes_on() {
    let c = Recording::new(idp(&["ada@example.com"]));
    c.panics.store(1, Ordering::SeqCst);
    let s = engine_with(
        Arc::new(MemoryStore::new()),
        vec![(
            c.clone(),
            Limits::default().with_timeout(Duration::from_secs(30)),
        )],
        "[apps.idp]\nmethod = \"automatic\"\nactions = [\"idp.suspend\"]\n",
        |b| b.lease_for(Duration::from_secs(120)),
    );
    let mut events = s.engine.events();
    let run = offboard(&s.engine, ada()).await;
    assert_eq!(run.state, RunState::Completed);
    assert_eq!(
        c.inner.user_by_login("ada@example.com").unwrap().status,
        AccountStatus::Suspended
    );
    assert!(matches!(
        events.try_recv().unwrap(),
        offboard::engine::EngineEvent::WorkerPanicked { error } if error.contains("a bug in a connector")
    ));
    let audit = s.store.audit(AuditQuery::all()).await.unwrap();
    assert!(audit.iter().any(|e| matches!(&e.kind, AuditKind::Note { name, data }
        if name == "worker_panicked" && data["error"].as_str().unwrap().contains("a bug in a connector"))));
}

/// A memory store whose first claim panics (a bug in a store).
#[derive(Debug, Default)]
struct ClaimPanicsOnce {
    inner: MemoryStore,
    panicked: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl Store for ClaimPanicsOnce {
    async fn create_run(
        &self,
        run: &Run,
        events: Vec<offboard::AuditEvent>,
    ) -> offboard::Result<Vec<offboard::AuditEvent>> {
        self.inner.create_run(run, events).await
    }
    async fn load_run(&self, id: offboard::RunId) -> offboard::Result<Option<Run>> {
        self.inner.load_run(id).await
    }
    async fn commit(
        &self,
        commit: offboard::Commit,
    ) -> offboard::Result<(u64, Vec<offboard::AuditEvent>)> {
        self.inner.commit(commit).await
    }
    async fn claim(&self, request: ClaimRequest) -> offboard::Result<Vec<offboard::Lease>> {
        if !self.panicked.swap(true, Ordering::SeqCst) {
            panic!("a bug in a store");
        }
        self.inner.claim(request).await
    }
    async fn renew(
        &self,
        lease: &offboard::Lease,
        now: chrono::DateTime<chrono::Utc>,
        lease_for: Duration,
    ) -> offboard::Result<offboard::Lease> {
        self.inner.renew(lease, now, lease_for).await
    }
    async fn release(
        &self,
        lease: &offboard::Lease,
        due_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> offboard::Result<()> {
        self.inner.release(lease, due_at).await
    }
    async fn list_runs(
        &self,
        query: offboard::RunQuery,
    ) -> offboard::Result<Vec<offboard::RunSummary>> {
        self.inner.list_runs(query).await
    }
    async fn put_snapshot(&self, task: offboard::TaskId, s: &Snapshot) -> offboard::Result<bool> {
        self.inner.put_snapshot(task, s).await
    }
    async fn snapshot(&self, task: offboard::TaskId) -> offboard::Result<Option<Snapshot>> {
        self.inner.snapshot(task).await
    }
    async fn upsert_accounts(
        &self,
        person: &offboard::PersonId,
        accounts: &[AccountRef],
        at: chrono::DateTime<chrono::Utc>,
    ) -> offboard::Result<()> {
        self.inner.upsert_accounts(person, accounts, at).await
    }
    async fn accounts(
        &self,
        person: &offboard::PersonId,
    ) -> offboard::Result<Vec<offboard::Account>> {
        self.inner.accounts(person).await
    }
    async fn cursor(&self, source: &str) -> offboard::Result<Option<offboard::Cursor>> {
        self.inner.cursor(source).await
    }
    async fn put_cursor(&self, source: &str, cursor: &offboard::Cursor) -> offboard::Result<()> {
        self.inner.put_cursor(source, cursor).await
    }
    async fn append_audit(
        &self,
        events: Vec<offboard::AuditEvent>,
    ) -> offboard::Result<Vec<offboard::AuditEvent>> {
        self.inner.append_audit(events).await
    }
    async fn audit(&self, query: AuditQuery) -> offboard::Result<Vec<offboard::AuditEvent>> {
        self.inner.audit(query).await
    }
    async fn erase_person(
        &self,
        person: &offboard::PersonId,
        finished_before: chrono::DateTime<chrono::Utc>,
    ) -> offboard::Result<offboard::store::ErasureReport> {
        self.inner.erase_person(person, finished_before).await
    }
    async fn erase_snapshots(
        &self,
        finished_before: chrono::DateTime<chrono::Utc>,
    ) -> offboard::Result<u64> {
        self.inner.erase_snapshots(finished_before).await
    }
    async fn get_record(
        &self,
        namespace: &str,
        key: &str,
    ) -> offboard::Result<Option<offboard::store::Record>> {
        self.inner.get_record(namespace, key).await
    }
    async fn insert_record(
        &self,
        namespace: &str,
        key: &str,
        value: &serde_json::Value,
    ) -> offboard::Result<(offboard::store::Record, bool)> {
        self.inner.insert_record(namespace, key, value).await
    }
    async fn swap_record(
        &self,
        namespace: &str,
        key: &str,
        version: u64,
        value: &serde_json::Value,
    ) -> offboard::Result<offboard::store::RecordSwap> {
        self.inner.swap_record(namespace, key, version, value).await
    }
}

/// A claim that panics does not end the background worker: it is audited, and the next claim
/// runs the task.
#[tokio::test(start_paused = true)]
async fn the_worker_loop_survives_a_panicking_claim() {
    let store = Arc::new(ClaimPanicsOnce::default());
    let c = idp(&["ada@example.com"]);
    let engine = Engine::builder()
        .store(store.clone())
        .connector(c.clone())
        .policy(policy(
            "[apps.idp]\nmethod = \"automatic\"\nactions = [\"idp.suspend\"]\n",
        ))
        .build()
        .unwrap();
    let run = tokio::time::timeout(Duration::from_secs(600), offboard(&engine, ada()))
        .await
        .expect("the worker loop lives on and runs the task");
    assert_eq!(run.state, RunState::Completed);
    assert_eq!(
        c.user_by_login("ada@example.com").unwrap().status,
        AccountStatus::Suspended
    );
    let audit = store.audit(AuditQuery::all()).await.unwrap();
    assert!(audit.iter().any(|e| matches!(&e.kind, AuditKind::Note { name, data }
        if name == "worker_panicked" && data["error"].as_str().unwrap().contains("a bug in a store"))));
}
