//! The engine drives offboard-jira against the simulated Jira site: the run waits on the
//! issue, shows key, link and assignee, and completes once the issue reaches "Done".
//!
//! These tests run on real time with a short poll interval (300 ms), not on a paused tokio
//! clock. Tried first with `start_paused`: a paused runtime auto-advances to its next timer
//! whenever it waits on IO, so engine time raced ahead during each HTTP call to the simulator
//! (measured: pick-up 60 s in most runs but 169 s and 254 s in others for a 60 s poll), and
//! a client timeout fired spuriously during a create. With real time the measured pick-up is
//! the real latency: at most one poll interval plus one request.

use std::sync::Arc;
use std::time::Duration;

use offboard_core::engine::Backoff;
use offboard_core::memory::MemoryStore;
use offboard_core::{Engine, Initiator, Person, Policy, RunRequest, RunState, TaskState};
use offboard_jira::JiraBuilder;
use offboard_testkit::sim::jira::{DEFAULT_EMAIL, DEFAULT_TOKEN, JiraSim};

const POLICY: &str = "[apps.salesforce]\nmethod = \"delegate\"\nvia = \"jira\"\n";
const POLL: Duration = Duration::from_millis(300);

/// The delegate for `sim`'s `IT` project (10 s request timeout).
fn delegate(sim: &JiraSim) -> offboard_jira::JiraDelegate {
    JiraBuilder::new()
        .with_site(sim.uri())
        .with_allow_plain_http(true)
        .with_email(DEFAULT_EMAIL)
        .with_api_token(DEFAULT_TOKEN)
        .with_project("IT")
        .with_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Plans and submits Ada's offboarding.
async fn submit_ada(engine: &Engine) -> offboard_core::RunId {
    let plan = engine
        .plan(RunRequest::new(
            Person::new("p-ada", "ada@example.com"),
            Initiator::Admin {
                actor: "admin@example.com".into(),
            },
        ))
        .await
        .unwrap();
    engine.submit(plan, None).await.unwrap()
}

#[tokio::test]
async fn a_run_waits_on_the_issue_and_completes_when_it_is_done() {
    let sim = JiraSim::builder()
        .user("acc-sam", "Sam Admin", "sam@example.com")
        .start()
        .await;
    let jira = JiraBuilder::new()
        .with_site(sim.uri())
        .with_allow_plain_http(true)
        .with_email(DEFAULT_EMAIL)
        .with_api_token(DEFAULT_TOKEN)
        .with_project("IT")
        .with_poll_interval(POLL)
        .with_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let poll = jira.config().poll_interval;
    let engine = Engine::builder()
        .store(Arc::new(MemoryStore::new()))
        .policy(Policy::from_toml(POLICY).unwrap())
        .delegate(Arc::new(jira))
        .delegation_poll(poll)
        .idle_poll(Duration::from_millis(50))
        .build()
        .unwrap();
    let person = Person::new("p-ada", "ada@example.com").with_name("Ada");
    let plan = engine
        .plan(RunRequest::new(
            person,
            Initiator::Admin {
                actor: "admin@example.com".into(),
            },
        ))
        .await
        .unwrap();
    let id = engine.submit(plan, None).await.unwrap();
    let workers = engine.start();

    let run = engine
        .wait_for(id, |r| r.state == RunState::Waiting)
        .await
        .unwrap();
    let TaskState::Delegated { ticket } = &run.tasks[0].state else {
        panic!("{:?}", run.tasks[0].state)
    };
    assert_eq!(ticket.key, "IT-1");
    assert_eq!(ticket.url, format!("{}/browse/IT-1", sim.uri()));
    assert_eq!(sim.issues_created(), 1);
    let issue = sim.issue("IT-1").unwrap();
    assert_eq!(
        issue.labels,
        vec![offboard_jira::JiraDelegate::label_for(
            &run.tasks[0].idempotency_key
        )]
    );

    // The assignee shows up at the next poll.
    sim.assign("IT-1", "sam@example.com");
    let run = engine
        .wait_for(id, |r| {
            matches!(&r.tasks[0].state, TaskState::Delegated { ticket } if ticket.assignee.is_some())
        })
        .await
        .unwrap();
    let TaskState::Delegated { ticket } = &run.tasks[0].state else {
        panic!()
    };
    assert_eq!(ticket.assignee.as_deref(), Some("Sam Admin"));

    let t_done = engine.now();
    sim.transition("IT-1", "Done");
    let run = engine.wait(id).await.unwrap();
    workers.shutdown().await;
    assert_eq!(run.state, RunState::Completed);
    let picked_up = (run.tasks[0].finished_at.unwrap() - t_done)
        .to_std()
        .unwrap();
    eprintln!("status change to task completion by polling: {picked_up:?} (poll every {poll:?})");
    assert!(
        picked_up <= poll + Duration::from_secs(1),
        "picked up within one poll interval: {picked_up:?}"
    );
    assert_eq!(sim.issues_created(), 1, "one issue per task");
    let metrics = Engine::metrics(&run);
    assert!(
        metrics
            .per_app
            .contains_key(&offboard_core::AppId::new("salesforce"))
    );
}

#[tokio::test]
async fn a_lost_create_response_is_retried_into_the_same_issue() {
    let sim = JiraSim::start().await;
    sim.lose_next_create_responses(1);
    let jira = delegate(&sim);
    let engine = Engine::builder()
        .store(Arc::new(MemoryStore::new()))
        .policy(Policy::from_toml(POLICY).unwrap())
        .delegate(Arc::new(jira))
        .delegation_poll(POLL)
        .idle_poll(Duration::from_millis(50))
        .backoff(Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_millis(500),
        })
        .build()
        .unwrap();
    let id = submit_ada(&engine).await;
    let workers = engine.start();
    let run = engine
        .wait_for(id, |r| r.state == RunState::Waiting)
        .await
        .unwrap();
    assert!(
        run.tasks[0].attempts >= 2,
        "the first open failed (504) and was retried"
    );
    let TaskState::Delegated { ticket } = &run.tasks[0].state else {
        panic!("{:?}", run.tasks[0].state)
    };
    assert_eq!(ticket.key, "IT-1");
    assert_eq!(
        sim.issues_created(),
        1,
        "the retry found the issue by its label"
    );
    sim.transition("IT-1", "Done");
    let run = engine.wait(id).await.unwrap();
    workers.shutdown().await;
    assert_eq!(run.state, RunState::Completed);
    assert_eq!(sim.issues_created(), 1);
}

/// A ticket closed as "Won't Do" fails the task (declined, with the reason in the run and the
/// audit trail); the run does not complete as if the access were removed.
#[tokio::test]
async fn a_ticket_closed_as_wont_do_fails_the_task() {
    let sim = JiraSim::start().await;
    let jira = delegate(&sim);
    let store = Arc::new(MemoryStore::new());
    let engine = Engine::builder()
        .store(store.clone())
        .policy(Policy::from_toml(POLICY).unwrap())
        .delegate(Arc::new(jira))
        .delegation_poll(POLL)
        .idle_poll(Duration::from_millis(50))
        .build()
        .unwrap();
    let id = submit_ada(&engine).await;
    let workers = engine.start();
    engine
        .wait_for(id, |r| r.state == RunState::Waiting)
        .await
        .unwrap();
    sim.resolve("IT-1", "Done", "Won't Do");
    let run = engine.wait(id).await.unwrap();
    workers.shutdown().await;
    assert_ne!(run.state, RunState::Completed);
    let TaskState::Failed { error } = &run.tasks[0].state else {
        panic!("{:?}", run.tasks[0].state)
    };
    assert_eq!(error.kind, offboard_core::ErrorKind::Declined);
    assert!(error.message.contains("Won't Do"), "{}", error.message);
    let events = offboard_core::store::Store::audit(
        store.as_ref(),
        offboard_core::store::AuditQuery::run(id),
    )
    .await
    .unwrap();
    assert!(
        events
            .iter()
            .any(|e| format!("{:?}", e.kind).contains("DelegationDeclined")),
        "the decline is in the audit trail"
    );
}
