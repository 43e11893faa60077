//! Notifiers are told about runs started, finished and failed and delegated tasks overdue,
//! from the durable audit trail: in order, with the run's facts and stable ids, at least once
//! through failures and restarts, and never on the commit path.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use offboard::memory::MemoryStore;
use offboard::notify::{Notification, NotificationKind, Notifier, OVERDUE_NOTE};
use offboard::{
    AuditKind, AuditQuery, Engine, ErrorKind, Initiator, Manager, Person, Policy, Result, RunId,
    RunRequest, RunState, Store, TaskState,
};
use offboard_testkit::reference::{
    ReferenceConnector, ReferenceDelegate, ReferenceUser, permanent,
};

const IDP: &str = r#"
[apps.idp]
method = "automatic"
actions = ["idp.suspend", "idp.clear_sessions", "idp.remove_groups"]
"#;

const IDP_AND_JIRA: &str = r#"
[apps.idp]
method = "automatic"
actions = ["idp.suspend"]

[apps.salesforce]
method = "delegate"
via = "jira"
"#;

/// Records what it is told; refuses its first `fail_first` calls.
#[derive(Debug, Default)]
struct Recorder {
    name: String,
    got: Mutex<Vec<Notification>>,
    fail_first: AtomicU32,
    /// Refuses every notification once it holds this many (0: no limit).
    hold_at_most: AtomicU32,
}

impl Recorder {
    fn named(name: &str) -> Arc<Self> {
        Arc::new(Self {
            name: name.into(),
            ..Self::default()
        })
    }

    fn got(&self) -> Vec<Notification> {
        self.got.lock().unwrap().clone()
    }

    fn kinds(&self) -> Vec<NotificationKind> {
        self.got().iter().map(|n| n.kind).collect()
    }
}

#[async_trait]
impl Notifier for Recorder {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn notify(&self, n: &Notification) -> Result<()> {
        if self
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| c.checked_sub(1))
            .is_ok()
        {
            return Err(offboard::Error::storage("the chat bridge is down"));
        }
        let mut got = self.got.lock().unwrap();
        let most = self.hold_at_most.load(Ordering::SeqCst);
        if most > 0 && got.len() >= most as usize {
            return Err(offboard::Error::storage("the chat bridge is down"));
        }
        got.push(n.clone());
        Ok(())
    }
}

fn ada() -> Person {
    Person::new("p-ada", "ada@example.com")
        .with_name("Ada Lovelace")
        .with_manager(Manager {
            id: None,
            email: "grace@example.com".into(),
        })
}

fn idp(connector: ReferenceConnector) -> Arc<ReferenceConnector> {
    Arc::new(connector)
}

fn engine(
    store: Arc<MemoryStore>,
    idp: Arc<ReferenceConnector>,
    policy: &str,
    tweak: impl FnOnce(offboard::EngineBuilder) -> offboard::EngineBuilder,
) -> Engine {
    let b = Engine::builder()
        .store(store)
        .connector(idp)
        .policy(Policy::from_toml(policy).unwrap())
        .idle_poll(Duration::from_millis(50));
    tweak(b).build().unwrap()
}

fn admin() -> Initiator {
    Initiator::Admin {
        actor: "admin@example.com".into(),
    }
}

async fn submit(engine: &Engine, person: Person) -> RunId {
    let plan = engine.plan(RunRequest::new(person, admin())).await.unwrap();
    engine.submit(plan, None).await.unwrap()
}

async fn flush(engine: &Engine) {
    tokio::time::timeout(Duration::from_secs(600), engine.flush_audit_sinks())
        .await
        .expect("the notifiers caught up");
}

async fn seq_of(store: &MemoryStore, run: RunId, pick: impl Fn(&AuditKind) -> bool) -> u64 {
    let events = store.audit(AuditQuery::all()).await.unwrap();
    events
        .iter()
        .filter(|e| e.run == Some(run) && pick(&e.kind))
        .map(|e| e.seq)
        .next_back()
        .expect("the event is in the trail")
}

#[tokio::test(start_paused = true)]
async fn a_run_notifies_started_then_finished_with_its_facts_and_ids_from_the_trail() {
    let store = Arc::new(MemoryStore::new());
    let rec = Recorder::named("chat");
    let connector = idp(ReferenceConnector::builder("idp")
        .user(ReferenceUser::employee("ada@example.com"))
        .build());
    let engine = engine(store.clone(), connector, IDP, |b| b.notifier(rec.clone()));
    let id = submit(&engine, ada()).await;
    let workers = engine.start();
    let run = engine.wait(id).await.unwrap();
    workers.shutdown().await;
    flush(&engine).await;

    assert_eq!(run.state, RunState::Completed);
    assert_eq!(
        rec.kinds(),
        vec![NotificationKind::RunStarted, NotificationKind::RunFinished]
    );
    let got = rec.got();
    let started_seq = seq_of(&store, id, |k| {
        matches!(
            k,
            AuditKind::Transition {
                event: offboard::machine::Event::Submitted,
                ..
            }
        )
    })
    .await;
    let finished_seq = seq_of(&store, id, |k| {
        matches!(
            k,
            AuditKind::Transition {
                run_state: RunState::Completed,
                ..
            }
        )
    })
    .await;
    assert_eq!(got[0].seq, started_seq);
    assert_eq!(got[0].id, format!("run_started:{id}:{started_seq}"));
    assert_eq!(got[1].id, format!("run_finished:{id}:{finished_seq}"));
    let facts = &got[1].run;
    assert_eq!(facts.id, id);
    assert_eq!(facts.person_email, "ada@example.com");
    assert_eq!(facts.person_name, "Ada Lovelace");
    assert_eq!(facts.manager_email.as_deref(), Some("grace@example.com"));
    assert_eq!(facts.initiator, "admin@example.com");
    assert_eq!(facts.state, RunState::Completed);
    assert_eq!(facts.apps, vec![offboard::AppId::new("idp")]);
    assert_eq!(facts.tasks.total, 3);
    assert_eq!(facts.tasks.completed, 3);
    assert_eq!(facts.tasks.failed, 0);
    assert!(facts.finished_at.is_some());
    assert_eq!(got[0].run.state, RunState::Running);
    assert_eq!(
        got[1].subject(),
        "Offboarding finished: Ada Lovelace <ada@example.com>"
    );
    // The notifier's position is durable: the cursor holds the last event it was handed.
    let last = store
        .audit(AuditQuery::all())
        .await
        .unwrap()
        .last()
        .unwrap()
        .seq;
    assert_eq!(
        store.cursor("notify:chat").await.unwrap().map(|c| c.0),
        Some(last.to_string())
    );
}

#[tokio::test(start_paused = true)]
async fn a_run_with_a_failed_task_notifies_failed_with_what_failed() {
    let store = Arc::new(MemoryStore::new());
    let rec = Recorder::named("chat");
    let connector = idp(ReferenceConnector::builder("idp")
        .user(ReferenceUser::employee("ada@example.com"))
        .fail_next(
            "idp.remove_groups",
            1,
            permanent(ErrorKind::PermissionDenied, "403 forbidden token=abc"),
        )
        .build());
    let engine = engine(store, connector, IDP, |b| b.notifier(rec.clone()));
    let id = submit(&engine, ada()).await;
    let workers = engine.start();
    let run = engine.wait(id).await.unwrap();
    workers.shutdown().await;
    flush(&engine).await;

    assert_eq!(run.state, RunState::CompletedWithFailures);
    assert_eq!(
        rec.kinds(),
        vec![NotificationKind::RunStarted, NotificationKind::RunFailed]
    );
    let failed = &rec.got()[1];
    assert_eq!(failed.run.tasks.failed, 1);
    assert_eq!(
        failed.run.failed_tasks,
        vec!["idp.remove_groups".to_owned()]
    );
    // The systems' error messages are not passed on.
    let json = serde_json::to_string(failed).unwrap();
    assert!(!json.contains("token=abc"), "{json}");
}

#[tokio::test(start_paused = true)]
async fn an_overdue_delegated_task_is_noted_and_notified_once() {
    let store = Arc::new(MemoryStore::new());
    let rec = Recorder::named("it");
    let jira = Arc::new(ReferenceDelegate::jira().with_default_assignee("sam@example.com"));
    let connector = idp(ReferenceConnector::builder("idp")
        .user(ReferenceUser::employee("ada@example.com"))
        .build());
    let engine = engine(store.clone(), connector, IDP_AND_JIRA, |b| {
        b.delegate(jira.clone())
            .notifier(rec.clone())
            .overdue_after(Duration::from_secs(3600), Duration::from_secs(60))
    });
    let id = submit(&engine, ada()).await;
    let workers = engine.start();
    let run = engine
        .wait_for(id, |r| r.state == RunState::Waiting)
        .await
        .unwrap();
    let sf = run
        .tasks
        .iter()
        .find(|t| t.label() == "salesforce.delegate_jira")
        .unwrap();
    let TaskState::Delegated { ticket } = &sf.state else {
        panic!("delegated: {:?}", sf.state)
    };
    // Not overdue within the grace.
    tokio::time::sleep(Duration::from_secs(1800)).await;
    flush(&engine).await;
    assert_eq!(rec.kinds(), vec![NotificationKind::RunStarted]);
    // Overdue after it, once, however many checks pass.
    tokio::time::sleep(Duration::from_secs(3 * 3600)).await;
    flush(&engine).await;
    assert_eq!(
        rec.kinds(),
        vec![NotificationKind::RunStarted, NotificationKind::TaskOverdue]
    );
    let overdue = rec.got()[1].clone();
    assert_eq!(overdue.id, format!("task_overdue:{id}:{}", sf.id));
    let o = overdue.overdue.as_ref().unwrap();
    assert_eq!(o.task, sf.id);
    assert_eq!(o.app.as_str(), "salesforce");
    assert_eq!(o.ticket, ticket.key);
    assert_eq!(o.assignee.as_deref(), Some("sam@example.com"));
    assert_eq!(o.due, sf.not_before);
    assert!(
        !serde_json::to_string(&overdue)
            .unwrap()
            .contains(&ticket.url)
            || ticket.url.is_empty()
    );
    let notes = store
        .audit(AuditQuery::all())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| matches!(&e.kind, AuditKind::Note { name, .. } if name == OVERDUE_NOTE))
        .count();
    assert_eq!(notes, 1, "one note per task");

    jira.complete(&ticket.key, "sam@example.com");
    engine.wait(id).await.unwrap();
    workers.shutdown().await;
    flush(&engine).await;
    assert_eq!(
        rec.kinds(),
        vec![
            NotificationKind::RunStarted,
            NotificationKind::TaskOverdue,
            NotificationKind::RunFinished
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_notifier_gets_the_same_notification_again_and_never_holds_up_the_run() {
    let store = Arc::new(MemoryStore::new());
    let rec = Recorder::named("chat");
    rec.fail_first.store(5, Ordering::SeqCst);
    let connector = idp(ReferenceConnector::builder("idp")
        .user(ReferenceUser::employee("ada@example.com"))
        .build());
    let engine = engine(store, connector, IDP, |b| b.notifier(rec.clone()));
    let id = submit(&engine, ada()).await;
    let workers = engine.start();
    let run = engine.wait(id).await.unwrap();
    assert_eq!(run.state, RunState::Completed);
    workers.shutdown().await;
    flush(&engine).await;
    assert_eq!(rec.fail_first.load(Ordering::SeqCst), 0);
    assert_eq!(
        rec.kinds(),
        vec![NotificationKind::RunStarted, NotificationKind::RunFinished],
        "each once it was taken, in order"
    );
}

#[tokio::test(start_paused = true)]
async fn a_restarted_engine_resumes_after_the_last_notification_taken() {
    let store = Arc::new(MemoryStore::new());
    let users = || {
        idp(ReferenceConnector::builder("idp")
            .user(ReferenceUser::employee("ada@example.com"))
            .user(ReferenceUser::employee("bob@example.com"))
            .build())
    };
    // First life: Ada's run is notified.
    let first = Recorder::named("chat");
    let a = engine(store.clone(), users(), IDP, |b| b.notifier(first.clone()));
    let ada_run = submit(&a, ada()).await;
    let w = a.start();
    a.wait(ada_run).await.unwrap();
    w.shutdown().await;
    flush(&a).await;
    assert_eq!(first.got().len(), 2);
    drop(a);

    // Down for the notifier: Bob is offboarded by an engine without it.
    let b = engine(store.clone(), users(), IDP, |b| b);
    let bob_run = submit(&b, Person::new("p-bob", "bob@example.com")).await;
    let w = b.start();
    b.wait(bob_run).await.unwrap();
    w.shutdown().await;
    drop(b);

    // Second life: a notifier of the same name fails on Bob's finish once, then the engine
    // "crashes" (dropped); the third life gets exactly what was not taken.
    let second = Recorder::named("chat");
    second.hold_at_most.store(1, Ordering::SeqCst);
    let c = engine(store.clone(), users(), IDP, |b| b.notifier(second.clone()));
    let w = c.start();
    tokio::time::timeout(Duration::from_secs(60), async {
        while second.got().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    w.shutdown().await;
    drop(c);
    let second_got = second.got();
    assert_eq!(second_got.len(), 1, "{second_got:?}");
    assert_eq!(second_got[0].kind, NotificationKind::RunStarted);
    assert_eq!(second_got[0].run.id, bob_run);

    let third = Recorder::named("chat");
    let d = engine(store.clone(), users(), IDP, |b| b.notifier(third.clone()));
    let w = d.start();
    tokio::time::timeout(Duration::from_secs(60), async {
        while third.got().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    w.shutdown().await;
    let third_got = third.got();
    assert_eq!(third_got.len(), 1, "{third_got:?}");
    assert_eq!(third_got[0].kind, NotificationKind::RunFinished);
    assert_eq!(third_got[0].run.id, bob_run);
    assert!(
        third_got[0]
            .id
            .starts_with(&format!("run_finished:{bob_run}:")),
        "{}",
        third_got[0].id
    );
}

#[tokio::test]
async fn two_notifiers_with_one_name_are_refused() {
    let connector = idp(ReferenceConnector::builder("idp").build());
    let err = Engine::builder()
        .store(Arc::new(MemoryStore::new()))
        .connector(connector)
        .policy(Policy::from_toml(IDP).unwrap())
        .notifier(Recorder::named("chat"))
        .notifier(Recorder::named("chat"))
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains("notifiers.chat"), "{err}");
}

/// The built-in webhook notifier on an engine: `Engine::start` starts its outbox delivery,
/// and the bridge receives the run's notifications, signed, in order.
#[tokio::test]
async fn an_engine_delivers_through_the_webhook_notifier() {
    use offboard_http::webhook::{SIGNATURE_HEADER, WebhookNotifier, signature};
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let store = Arc::new(MemoryStore::new());
    let key = offboard::Secret::new("whsec-engine-test");
    let hook = Arc::new(
        WebhookNotifier::builder("teams", format!("{}/hook", server.uri()), key.clone())
            .allow_plain_http(true)
            .build(store.clone())
            .unwrap(),
    );
    let connector = idp(ReferenceConnector::builder("idp")
        .user(ReferenceUser::employee("ada@example.com"))
        .build());
    let engine = engine(store, connector, IDP, |b| b.notifier(hook.clone()));
    let id = submit(&engine, ada()).await;
    let workers = engine.start();
    engine.wait(id).await.unwrap();
    workers.shutdown().await;
    flush(&engine).await;
    let got = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let got = server.received_requests().await.unwrap();
            if got.len() >= 2 {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("two deliveries");
    let kinds: Vec<String> = got
        .iter()
        .map(|r| {
            let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(body["run"]["id"], id.to_string());
            let sig = r.headers.get(SIGNATURE_HEADER).unwrap().to_str().unwrap();
            let t: i64 = sig[2..sig.find(',').unwrap()].parse().unwrap();
            assert_eq!(sig, signature(&key, t, &r.body));
            body["kind"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(kinds, vec!["run_started", "run_finished"]);
}
