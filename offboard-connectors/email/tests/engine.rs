//! The engine drives offboard-email against the real SMTP sink: the run waits on the email
//! task, the owner opens the link and posts the page's form, and the run finishes at the next
//! poll. The delegate keeps its tasks in the engine's store.
//!
//! This test runs on real time with a short poll interval, not on a paused tokio clock: a
//! paused runtime auto-advances to its next timer whenever it waits on IO, so lettre's SMTP
//! timeouts fired during the dialogue with the (out-of-process) sink and every open timed out.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{TASK_URL, sink, unique, wait_for_mails};
use offboard_core::engine::TokioClock;
use offboard_core::memory::MemoryStore;
use offboard_core::{Engine, Initiator, Person, Policy, RunRequest, RunState, Store, TaskState};
use offboard_email::{EmailBuilder, SmtpSecurity};

const POLICY: &str = "[apps.salesforce]\nmethod = \"delegate\"\nvia = \"email\"\n";
const POLL: Duration = Duration::from_millis(300);

#[tokio::test]
async fn a_run_waits_on_the_email_and_completes_through_the_link() {
    let sink = sink();
    let owner = unique("crm-owner");
    let clock = Arc::new(TokioClock::new());
    // One store for the engine and the delegate's tasks.
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let email = Arc::new(
        EmailBuilder::new()
            .with_smtp(sink.host.clone(), sink.port, SmtpSecurity::Plain)
            .with_from("offboard@example.test")
            .with_task_url(TASK_URL)
            .with_signing_key("engine-test-signing-key-of-32-bytes")
            .with_app_owner("salesforce", &owner)
            .with_clock(clock.clone())
            .with_store(store.clone())
            .with_config(offboard_email::ConfigKey::Timeout, "10")
            .build()
            .unwrap(),
    );
    let engine = Engine::builder()
        .store(store.clone())
        .policy(Policy::from_toml(POLICY).unwrap())
        .delegate(email.clone())
        .clock(clock)
        .delegation_poll(POLL)
        .idle_poll(Duration::from_millis(50))
        .build()
        .unwrap();
    let plan = engine
        .plan(RunRequest::new(
            Person::new("p-ada", "ada@example.com").with_name("Ada"),
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
    assert_eq!(ticket.assignee.as_deref(), Some(owner.as_str()));
    assert!(ticket.url.starts_with(TASK_URL) && !ticket.url.contains("token"));

    let mails = wait_for_mails(&sink, &owner, 1).await;
    let page = email.view(&mails[0].token(), engine.now()).await.unwrap();
    let t_done = engine.now();
    email
        .complete(page.form_token().unwrap(), t_done)
        .await
        .unwrap();
    let run = engine.wait(id).await.unwrap();
    workers.shutdown().await;
    assert_eq!(run.state, RunState::Completed);
    // The task lives in the engine's store, done.
    let record = store
        .get_record(
            offboard_email::EMAIL_NAMESPACE,
            &format!("task:{}", ticket.key),
        )
        .await
        .unwrap()
        .expect("the email task is in the engine's store");
    assert_eq!(record.value["done_by"], serde_json::json!(owner));
    let picked_up = (run.tasks[0].finished_at.unwrap() - t_done)
        .to_std()
        .unwrap();
    eprintln!("link click to task completion by polling: {picked_up:?} (engine time)");
    assert!(picked_up <= POLL + Duration::from_secs(2), "{picked_up:?}");
}
