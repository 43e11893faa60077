//! The Jira webhook endpoint (`offboard_jira::webhook::router`) served over real HTTP on
//! loopback, fed by the simulated Jira's signed deliveries, in front of an engine whose only
//! delegation poll is an hour away: only an accepted webhook can make the run move.
//!
//! Real time, like `tests/engine.rs` (a paused clock races ahead during HTTP calls); nothing
//! asserts a duration: the waits are bounded only so that a broken endpoint fails instead of
//! hanging.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use offboard_core::memory::MemoryStore;
use offboard_core::{
    AuditQuery, Engine, Initiator, Person, Policy, Run, RunId, RunRequest, RunState, TaskState,
};
use offboard_jira::webhook::{self, JiraWebhook};
use offboard_jira::{JiraBuilder, SIGNATURE_HEADER};
use offboard_testkit::sim::jira::{DEFAULT_EMAIL, DEFAULT_TOKEN, JiraSim, sign};
use serde_json::Value;

const POLICY: &str = "[apps.salesforce]\nmethod = \"delegate\"\nvia = \"jira\"\n";
const SECRET: &str = "whsec-endpoint-test";
/// Where the host mounts the endpoint.
const PREFIX: &str = "/hooks/jira";
/// Bound on waits that only a broken endpoint would exceed.
const BOUND: Duration = Duration::from_secs(30);

/// An engine over a memory store with the Jira delegate for `sim` and an hour between polls.
fn engine(sim: &JiraSim) -> Engine {
    let jira = JiraBuilder::new()
        .with_site(sim.uri())
        .with_allow_plain_http(true)
        .with_email(DEFAULT_EMAIL)
        .with_api_token(DEFAULT_TOKEN)
        .with_project("IT")
        .with_webhook_secret(SECRET)
        .with_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    Engine::builder()
        .store(Arc::new(MemoryStore::new()))
        .policy(Policy::from_toml(POLICY).unwrap())
        .delegate(Arc::new(jira))
        .delegation_poll(Duration::from_secs(3600))
        .idle_poll(Duration::from_millis(50))
        .build()
        .unwrap()
}

/// Serves `app` nested under [`PREFIX`] on a loopback port; returns the endpoint's URL.
async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let host = axum::Router::new().nest(PREFIX, app);
    tokio::spawn(async move { axum::serve(listener, host).await.unwrap() });
    format!("http://{addr}{PREFIX}")
}

/// Plans, submits and starts Ada's offboarding; returns the run once it waits on its issue.
async fn waiting_run(engine: &Engine) -> Run {
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
    tokio::time::timeout(BOUND, engine.wait_for(id, |r| r.state == RunState::Waiting))
        .await
        .unwrap()
        .unwrap()
}

/// The run as stored and the number of audit rows: what "changes nothing" compares.
async fn snapshot(engine: &Engine, id: RunId) -> (Run, usize) {
    let run = engine.store().load_run(id).await.unwrap().unwrap();
    let audit = engine.store().audit(AuditQuery::all()).await.unwrap().len();
    (run, audit)
}

/// POSTs `body` to `url` with the given `X-Hub-Signature` (none when `None`).
async fn post(url: &str, body: &str, signature: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(sig) = signature {
        req = req.header(SIGNATURE_HEADER, sig);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// Guards the whole path: the simulated Jira's signed delivery over HTTP reaches
/// `Engine::delegation_changed` (204) and the delegated task moves (assignee, then done) long
/// before its hourly poll; an unsigned, wrongly signed, tampered or stale delivery and a replay
/// of an accepted one are refused (401, 401, 401, 400, 409) and change neither the run nor the
/// audit trail. Fails without the endpoint (there is nothing to answer the deliveries).
#[tokio::test]
async fn signed_deliveries_move_the_task_and_forged_stale_or_replayed_ones_change_nothing() {
    let sim = JiraSim::builder()
        .user("acc-sam", "Sam Admin", "sam@example.com")
        .start()
        .await;
    let engine = engine(&sim);
    let hook = Arc::new(JiraWebhook::new(SECRET.into(), None));
    let url = serve(webhook::router(hook, engine.clone())).await;
    sim.register_webhook(url.clone(), Some(SECRET));
    let workers = engine.start();
    let run = waiting_run(&engine).await;
    let id = run.id;
    let TaskState::Delegated { ticket } = &run.tasks[0].state else {
        panic!("{:?}", run.tasks[0].state)
    };
    let key = ticket.key.clone();
    assert!(ticket.assignee.is_none());

    // An assignment, delivered signed: the engine polls at once and shows the assignee.
    sim.assign(&key, "sam@example.com");
    let sent = sim.deliver_webhooks().await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].status, 204);
    tokio::time::timeout(
        BOUND,
        engine.wait_for(id, |r| {
            matches!(&r.tasks[0].state, TaskState::Delegated { ticket } if ticket.assignee.as_deref() == Some("Sam Admin"))
        }),
    )
    .await
    .expect("the webhook made the delegation poll now")
    .unwrap();

    // A replay of that accepted delivery is refused and does nothing (it would make the task
    // due again otherwise).
    let before = snapshot(&engine, id).await;
    let replay = sim.redeliver(&sent[0].identifier).await;
    assert_eq!(replay.status, 409);
    assert_eq!(snapshot(&engine, id).await, before);

    // The issue is done; before Jira's delivery goes out, forged and stale copies of it arrive.
    sim.transition(&key, "Done");
    let event: Value = sim.pending_webhook_events()[0].clone();
    let body = event.to_string();
    let cases: Vec<(&str, String, Option<String>, u16)> = vec![
        ("unsigned", body.clone(), None, 401),
        (
            "signed with another secret",
            body.clone(),
            Some(sign("not-the-secret", body.as_bytes())),
            401,
        ),
        (
            "tampered after signing",
            body.replace("\"Done\"", "\"Done \""),
            Some(sign(SECRET, body.as_bytes())),
            401,
        ),
        ("stale", stale(&event), None, 400),
    ];
    let before = snapshot(&engine, id).await;
    for (what, body, sig, want) in cases {
        let sig = sig.or_else(|| (want == 400).then(|| sign(SECRET, body.as_bytes())));
        let (status, text) = post(&url, &body, sig.as_deref()).await;
        assert_eq!(status, want, "{what}");
        assert!(!text.contains(SECRET), "{what}: {text}");
    }
    assert_eq!(snapshot(&engine, id).await, before);

    // Jira's own delivery completes the task.
    let sent = sim.deliver_webhooks().await;
    assert_eq!(sent[0].status, 204);
    let run = tokio::time::timeout(BOUND, engine.wait(id))
        .await
        .expect("the webhook completed the delegation")
        .unwrap();
    workers.shutdown().await;
    assert_eq!(run.state, RunState::Completed);
    assert!(matches!(run.tasks[0].state, TaskState::Completed { .. }));
}

/// `event` as Jira would have sent it ten minutes ago (outside the default 5-minute window).
fn stale(event: &Value) -> String {
    let mut old = event.clone();
    let ts = old["timestamp"].as_i64().unwrap();
    old["timestamp"] = Value::from(ts - 10 * 60 * 1000);
    old.to_string()
}

/// Guards the endpoint's HTTP surface: methods other than POST get 405, a body over the limit
/// gets 413, and neither reaches the verifier or leaks the secret.
#[tokio::test]
async fn other_methods_get_405_and_oversized_bodies_413() {
    let sim = JiraSim::builder().start().await;
    let engine = engine(&sim);
    let hook = Arc::new(JiraWebhook::new(SECRET.into(), None));
    let url = serve(webhook::router_with_limit(hook, engine, 256)).await;
    let http = reqwest::Client::new();
    for method in [
        reqwest::Method::GET,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
    ] {
        let status = http
            .request(method.clone(), &url)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 405, "{method}");
    }
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(1024));
    let (status, text) = post(&url, &big, Some(&sign(SECRET, big.as_bytes()))).await;
    assert_eq!(status, 413);
    assert!(!text.contains(SECRET));
    // Under the limit, the verifier answers (here: not an issue event).
    let small = "{\"timestamp\":0,\"webhookEvent\":\"x\"}";
    let (status, _) = post(&url, small, Some(&sign(SECRET, small.as_bytes()))).await;
    assert_eq!(status, 400);
}

/// Guards `JiraWebhook::forget`, which the endpoint calls when the engine fails after a
/// delivery was verified: the same delivery is then accepted again (Jira's retry gets through)
/// instead of being refused as a replay.
#[test]
fn a_forgotten_delivery_is_accepted_again() {
    let hook = JiraWebhook::new(SECRET.into(), None);
    let now = chrono::Utc::now();
    let body = serde_json::json!({
        "timestamp": now.timestamp_millis(),
        "webhookEvent": "jira:issue_updated",
        "issue": {"id": "10001", "key": "IT-1", "fields": {}},
    })
    .to_string();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        SIGNATURE_HEADER,
        sign(SECRET, body.as_bytes()).parse().unwrap(),
    );
    let first = hook
        .verify_and_parse(&headers, body.as_bytes(), now)
        .unwrap();
    let replay = hook
        .verify_and_parse(&headers, body.as_bytes(), now)
        .unwrap_err();
    assert_eq!(replay.kind(), offboard_core::ErrorKind::Conflict);
    hook.forget(&first.digest);
    let again = hook
        .verify_and_parse(&headers, body.as_bytes(), now)
        .unwrap();
    assert_eq!(again.key, "IT-1");
}
