//! The signed webhook notifier against wiremock: the exact request (headers, body, a signature
//! recomputed here), retries on 503 and 429 (honouring Retry-After), no retry on 400 (an audit
//! note instead), and a durable outbox: a restart mid-delivery sends again with the same
//! idempotency key, and a notification written but never sent is sent after a restart.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use offboard_core::engine::Backoff;
use offboard_core::memory::MemoryStore;
use offboard_core::notify::{Notification, NotificationKind, Notifier, RunFacts, TaskCounts};
use offboard_core::{AppId, AuditKind, AuditQuery, PersonId, RunId, RunState, Secret, Store};
use offboard_http::WebhookNotifier;
use offboard_http::webhook::{GAVE_UP_NOTE, SIGNATURE_HEADER, SlotState, signature};
use sha2::Sha256;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const KEY: &str = "whsec-0123456789abcdef";
const HOOK_PATH: &str = "/services/T000/B000/hooktoken123";

fn note(seq: u64) -> Notification {
    let at: DateTime<Utc> = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    let run = RunId(uuid::Uuid::from_u128(7));
    Notification {
        id: Notification::id_for(NotificationKind::RunFinished, run, seq, None),
        kind: NotificationKind::RunFinished,
        seq,
        at,
        run: RunFacts {
            id: run,
            person_id: PersonId::new("p-ada"),
            person_email: "ada@example.com".into(),
            person_name: "Ada Lovelace".into(),
            manager_email: Some("grace@example.com".into()),
            initiator: "admin@example.com".into(),
            reason: "resigned".into(),
            dry_run: false,
            state: RunState::Completed,
            created_at: at,
            effective_at: at,
            finished_at: Some(at),
            apps: vec![AppId::new("okta")],
            tasks: TaskCounts {
                total: 3,
                completed: 3,
                ..TaskCounts::default()
            },
            failed_tasks: Vec::new(),
        },
        overdue: None,
    }
}

fn notifier(server: &MockServer, store: Arc<MemoryStore>) -> WebhookNotifier {
    WebhookNotifier::builder(
        "slack",
        format!("{}{HOOK_PATH}", server.uri()),
        Secret::new(KEY),
    )
    .allow_plain_http(true)
    .timeout(Duration::from_secs(5))
    .backoff(Backoff {
        base: Duration::from_millis(20),
        cap: Duration::from_millis(100),
    })
    .max_attempts(5)
    .build(store)
    .unwrap()
}

async fn requests(server: &MockServer, n: usize) -> Vec<Request> {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let got = server.received_requests().await.unwrap_or_default();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{n} requests arrived"))
}

async fn settled(hook: &WebhookNotifier, id: &str, want: SlotState) {
    tokio::time::timeout(Duration::from_secs(20), async {
        while hook.state_of(id).await.unwrap() != Some(want) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{id} reached {want:?}"));
}

fn header<'a>(r: &'a Request, name: &str) -> &'a str {
    r.headers
        .get(name)
        .unwrap_or_else(|| panic!("header {name}"))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn posts_signed_json_with_the_idempotency_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(HOOK_PATH))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let store = Arc::new(MemoryStore::new());
    let hook = notifier(&server, store.clone());
    hook.start();
    let n = note(42);
    let before = Utc::now().timestamp();
    hook.notify(&n).await.unwrap();
    let got = requests(&server, 1).await;
    settled(&hook, &n.id, SlotState::Delivered).await;
    let r = &got[0];
    assert_eq!(header(r, "content-type"), "application/json");
    assert_eq!(header(r, "idempotency-key"), n.id);
    assert_eq!(header(r, "x-offboard-event"), "run_finished");
    // The signature, recomputed independently: t=<unix>,v1=hex(HMAC-SHA256(key, "t.body")).
    let sig = header(r, SIGNATURE_HEADER);
    let (t, v1) = sig
        .strip_prefix("t=")
        .and_then(|s| s.split_once(",v1="))
        .unwrap_or_else(|| panic!("signature shape: {sig}"));
    let t: i64 = t.parse().unwrap();
    assert!(
        t >= before && t <= Utc::now().timestamp(),
        "fresh timestamp {t}"
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&r.body);
    assert_eq!(v1, hex::encode(mac.finalize().into_bytes()));
    assert_eq!(sig, signature(&Secret::new(KEY), t, &r.body));
    // The body: the notification and a one-line text for chat bridges.
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["id"], n.id);
    assert_eq!(body["kind"], "run_finished");
    assert_eq!(
        body["text"],
        "Offboarding finished: Ada Lovelace <ada@example.com>"
    );
    assert_eq!(body["run"]["person_email"], "ada@example.com");
    assert_eq!(body["run"]["tasks"]["completed"], 3);
    let back: Notification = serde_json::from_value(body).unwrap();
    assert_eq!(back, n);
    // Queued twice (a redelivery by the engine): sent once.
    hook.notify(&n).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_503_is_retried_with_the_same_key_until_it_is_taken() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    let hook = notifier(&server, Arc::new(MemoryStore::new()));
    hook.start();
    let n = note(1);
    hook.notify(&n).await.unwrap();
    settled(&hook, &n.id, SlotState::Delivered).await;
    let got = server.received_requests().await.unwrap();
    assert_eq!(got.len(), 3);
    for r in &got {
        assert_eq!(header(r, "idempotency-key"), n.id);
    }
}

#[tokio::test]
async fn a_429_waits_at_least_what_retry_after_asks() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let hook = notifier(&server, Arc::new(MemoryStore::new()));
    hook.start();
    let n = note(1);
    let start = tokio::time::Instant::now();
    hook.notify(&n).await.unwrap();
    settled(&hook, &n.id, SlotState::Delivered).await;
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
    // The backoff alone is at most 100 ms here: the second attempt waited for Retry-After.
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_400_is_not_retried_and_is_audited_without_the_url_or_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400))
        .mount(&server)
        .await;
    let store = Arc::new(MemoryStore::new());
    let hook = notifier(&server, store.clone());
    hook.start();
    let first = note(1);
    let second = note(2);
    hook.notify(&first).await.unwrap();
    hook.notify(&second).await.unwrap();
    settled(&hook, &second.id, SlotState::GaveUp).await;
    assert_eq!(
        hook.state_of(&first.id).await.unwrap(),
        Some(SlotState::GaveUp)
    );
    let got = server.received_requests().await.unwrap();
    assert_eq!(got.len(), 2, "one attempt each, in order");
    assert_eq!(header(&got[0], "idempotency-key"), first.id);
    assert_eq!(header(&got[1], "idempotency-key"), second.id);
    let notes: Vec<_> = store
        .audit(AuditQuery::all())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| matches!(&e.kind, AuditKind::Note { name, .. } if name == GAVE_UP_NOTE))
        .collect();
    assert_eq!(notes.len(), 2);
    let AuditKind::Note { data, .. } = &notes[0].kind else {
        unreachable!()
    };
    assert_eq!(data["id"], first.id);
    assert_eq!(data["status"], 400);
    assert_eq!(data["attempts"], 1);
    assert_eq!(notes[0].run, Some(first.run.id));
    let text = serde_json::to_string(&notes).unwrap();
    assert!(
        !text.contains("hooktoken123") && !text.contains(KEY),
        "{text}"
    );
}

#[tokio::test]
async fn a_restart_mid_delivery_sends_again_with_the_same_key() {
    let server = MockServer::start().await;
    // The first request hangs (the process dies while it is in flight).
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(30)))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let store = Arc::new(MemoryStore::new());
    let n = note(9);
    let first = notifier(&server, store.clone());
    first.start();
    first.notify(&n).await.unwrap();
    requests(&server, 1).await;
    assert_eq!(
        first.state_of(&n.id).await.unwrap(),
        Some(SlotState::Pending)
    );
    drop(first);

    let second = notifier(&server, store.clone());
    second.start();
    settled(&second, &n.id, SlotState::Delivered).await;
    let got = server.received_requests().await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(header(&got[0], "idempotency-key"), n.id);
    assert_eq!(header(&got[1], "idempotency-key"), n.id);
}

#[tokio::test]
async fn a_notification_written_but_never_sent_is_sent_after_a_restart() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let store = Arc::new(MemoryStore::new());
    let (a, b) = (note(1), note(2));
    // Killed between the outbox write and the send: the delivery task never ran.
    let first = notifier(&server, store.clone());
    first.notify(&a).await.unwrap();
    first.notify(&b).await.unwrap();
    assert_eq!(
        first.state_of(&a.id).await.unwrap(),
        Some(SlotState::Pending)
    );
    drop(first);
    assert!(server.received_requests().await.unwrap().is_empty());

    let second = notifier(&server, store);
    second.start();
    settled(&second, &b.id, SlotState::Delivered).await;
    let got = server.received_requests().await.unwrap();
    let keys: Vec<&str> = got.iter().map(|r| header(r, "idempotency-key")).collect();
    assert_eq!(
        keys,
        vec![a.id.as_str(), b.id.as_str()],
        "in order, once each"
    );
}

#[tokio::test]
async fn bad_settings_are_refused_and_the_key_never_shows() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let err = WebhookNotifier::builder("slack", "http://hooks.example.com/x", Secret::new(KEY))
        .build(store.clone())
        .unwrap_err();
    assert!(err.to_string().contains("webhook.slack.url"), "{err}");
    let err = WebhookNotifier::builder("slack", "https://hooks.example.com/x", Secret::new(""))
        .build(store.clone())
        .unwrap_err();
    assert!(err.to_string().contains("webhook.slack.secret"), "{err}");
    let err = WebhookNotifier::builder("slack", "not a url hooktoken123", Secret::new(KEY))
        .build(store.clone())
        .unwrap_err();
    assert!(!err.to_string().contains("hooktoken123"), "{err}");
    let hook = WebhookNotifier::builder(
        "slack",
        format!("https://hooks.example.com{HOOK_PATH}"),
        Secret::new(KEY),
    )
    .build(store)
    .unwrap();
    let debug = format!("{hook:?}");
    assert!(
        !debug.contains(KEY) && !debug.contains("hooktoken123"),
        "{debug}"
    );
    assert!(debug.contains("hooks.example.com"), "{debug}");
}
