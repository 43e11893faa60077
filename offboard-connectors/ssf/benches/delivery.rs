//! Issue 24's measurement: the time from an action's completion (its `TaskSucceeded` audit
//! event, as the engine stamped it) to the push receiver's 202 for its SET, median and p99 over
//! N runs (default 1,000; goal: p99 ≤ 1 s on loopback), and the throughput of SETs per second
//! to 10 push receivers at once.
//!
//! Run with `cargo bench -p offboard-ssf --bench delivery`; `OFFBOARD_SSF_BENCH_N` sets N.
//! Under `cargo test` (no `--bench` argument) it runs a smoke test with N = 20.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use offboard_core::machine::Event;
use offboard_core::store::Store;
use offboard_core::{
    AuditKind, AuditQuery, Engine, Initiator, MemoryStore, Person, Policy, RunRequest, Secret,
};
use offboard_ssf::{Receiver, SigningKey, SubjectFormat, Transmitter, TransmitterConfig};
use offboard_testkit::reference::{ReferenceConnector, ReferenceUser};
use serde_json::{Value, json};

const POLICY: &str = r#"
[apps.idp]
method = "automatic"
actions = ["idp.suspend"]
"#;
const TOKEN: &str = "bench-receiver-token";

/// The receipt time of each SET by `txn` (the run).
type Receipts = Arc<Mutex<HashMap<String, DateTime<Utc>>>>;

async fn receiver(receipts: Receipts) -> String {
    async fn take(State(r): State<Receipts>, body: Bytes) -> StatusCode {
        let now = Utc::now();
        let text = String::from_utf8_lossy(&body);
        let payload = text.split('.').nth(1).unwrap_or("");
        let claims: Value = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        if let Some(txn) = claims["txn"].as_str() {
            r.lock().unwrap().insert(txn.to_owned(), now);
        }
        StatusCode::ACCEPTED
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/events", post(take))
        .with_state(receipts);
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

async fn setup(
    n: usize,
    receivers: usize,
) -> (Engine, Transmitter, Arc<MemoryStore>, Vec<Receipts>) {
    let store = Arc::new(MemoryStore::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}/bench", listener.local_addr().unwrap());
    let config = TransmitterConfig::new(&issuer).receiver(Receiver::new(
        "bench",
        Secret::new(TOKEN),
        "https://receiver.example.com",
        SubjectFormat::Email,
    ));
    let t = Transmitter::start(config, store.clone(), SigningKey::generate("k1").unwrap())
        .await
        .unwrap();
    let app = t.router();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();
    let mut all = Vec::new();
    for _ in 0..receivers {
        let receipts = Receipts::default();
        let url = receiver(receipts.clone()).await;
        let resp = http
            .post(format!("{issuer}/ssf/stream"))
            .bearer_auth(TOKEN)
            .json(&json!({"delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": url}}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        all.push(receipts);
    }
    let idp = Arc::new(
        ReferenceConnector::builder("idp")
            .users((0..n).map(|i| ReferenceUser::employee(format!("p{i}@example.com"))))
            .build(),
    );
    let engine = Engine::builder()
        .store(store.clone())
        .connector(idp)
        .policy(Policy::from_toml(POLICY).unwrap())
        .audit_sink(Arc::new(t.clone()))
        .idle_poll(Duration::from_millis(20))
        .build()
        .unwrap();
    (engine, t, store, all)
}

async fn offboard(engine: &Engine, i: usize) {
    let plan = engine
        .plan(RunRequest::new(
            Person::new(format!("e{i}"), format!("p{i}@example.com")),
            Initiator::Admin {
                actor: "bench".into(),
            },
        ))
        .await
        .unwrap();
    let run = engine.submit(plan, None).await.unwrap();
    engine.wait(run).await.unwrap();
}

async fn wait_for(receipts: &[Receipts], n: usize) {
    tokio::time::timeout(Duration::from_secs(600), async {
        while receipts.iter().any(|r| r.lock().unwrap().len() < n) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("every SET arrived");
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Action completion -> 202, one run after another (each run's SET measured alone).
async fn latency(n: usize) {
    let (engine, t, store, receipts) = setup(n, 1).await;
    let workers = engine.start();
    for i in 0..n {
        offboard(&engine, i).await;
        wait_for(&receipts, i + 1).await;
    }
    let got = receipts[0].lock().unwrap().clone();
    let mut lat = Vec::with_capacity(n);
    for e in store.audit(AuditQuery::all()).await.unwrap() {
        if let AuditKind::Transition {
            event: Event::TaskSucceeded { .. },
            ..
        } = &e.kind
        {
            let run = e.run.unwrap().to_string();
            let received = got[&run];
            lat.push((received - e.at).to_std().unwrap_or(Duration::ZERO));
        }
    }
    lat.sort();
    println!(
        "ssf push latency (action completed -> receiver's 202), {} runs: median {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lat.len(),
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().unwrap().as_secs_f64() * 1e3,
    );
    workers.shutdown().await;
    t.shutdown();
}

/// SETs per second to 10 receivers: `n` runs submitted by 16 submitters at once.
async fn throughput(n: usize) {
    let (engine, t, _store, receipts) = setup(n, 10).await;
    let workers = engine.start();
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let submitters: Vec<_> = (0..16)
        .map(|_| {
            let engine = engine.clone();
            let next = next.clone();
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    offboard(&engine, i).await;
                }
            })
        })
        .collect();
    for s in submitters {
        s.await.unwrap();
    }
    let runs_done = started.elapsed();
    wait_for(&receipts, n).await;
    let elapsed = started.elapsed();
    println!(
        "ssf push throughput: {} SETs to 10 receivers ({} runs) in {:.2} s: {:.0} SETs/s (runs and delivery together; the runs alone ended at {:.2} s)",
        n * 10,
        n,
        elapsed.as_secs_f64(),
        (n * 10) as f64 / elapsed.as_secs_f64(),
        runs_done.as_secs_f64(),
    );
    workers.shutdown().await;
    t.shutdown();
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let n: usize = if bench {
        std::env::var("OFFBOARD_SSF_BENCH_N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000)
    } else {
        20
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        latency(n).await;
        throughput(n).await;
    });
}
