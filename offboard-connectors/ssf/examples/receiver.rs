//! Demo (issue 24 item 5): one Shared Signals receiver on loopback prints the SETs it got for
//! Ada and Grace. The transmitter is served on loopback, the receiver creates its push stream
//! through the SSF API, the engine offboards both from a reference IdP, and the receiver
//! verifies each SET against the transmitter's JWKS before printing it.
//!
//! `cargo run -p offboard-ssf --example receiver`

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use offboard_core::{Engine, Initiator, MemoryStore, Person, Policy, RunRequest, Secret};
use offboard_ssf::{Receiver, SigningKey, SubjectFormat, Transmitter, TransmitterConfig};
use offboard_testkit::reference::{ReferenceConnector, ReferenceUser};
use serde_json::{Value, json};

const POLICY: &str = r#"
[apps.idp]
method = "automatic"
actions = ["idp.suspend", "idp.clear_sessions", "idp.remove_groups"]
"#;
const AUDIENCE: &str = "https://receiver.example.com";

/// What the receiver got: the raw SETs.
type Inbox = Arc<Mutex<Vec<String>>>;

async fn take(State(inbox): State<Inbox>, body: Bytes) -> StatusCode {
    inbox
        .lock()
        .unwrap()
        .push(String::from_utf8_lossy(&body).into_owned());
    StatusCode::ACCEPTED
}

#[tokio::main]
async fn main() {
    let store = Arc::new(MemoryStore::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}/demo", listener.local_addr().unwrap());
    let token = "demo-receiver-token";
    let config = TransmitterConfig::new(&issuer).receiver(Receiver::new(
        "demo",
        Secret::new(token),
        AUDIENCE,
        SubjectFormat::Email,
    ));
    let key = SigningKey::generate("demo-key").unwrap();
    let transmitter = Transmitter::start(config, store.clone(), key)
        .await
        .unwrap();
    let app = transmitter.router();
    tokio::spawn(async move { axum::serve(listener, app).await });

    // The receiver: an endpoint that takes SETs, and its stream.
    let inbox = Inbox::default();
    let rl = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/events", rl.local_addr().unwrap());
    let rapp = Router::new()
        .route("/events", post(take))
        .with_state(inbox.clone());
    tokio::spawn(async move { axum::serve(rl, rapp).await });
    let http = reqwest::Client::new();
    let stream: Value = http
        .post(format!("{issuer}/ssf/stream"))
        .bearer_auth(token)
        .json(&json!({"delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": endpoint}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    println!("receiver's stream {} -> {endpoint}", stream["stream_id"]);

    let idp = Arc::new(
        ReferenceConnector::builder("idp")
            .user(ReferenceUser::employee("ada@example.com").sessions(3))
            .user(ReferenceUser::employee("grace@example.com").sessions(2))
            .build(),
    );
    let engine = Engine::builder()
        .store(store)
        .connector(idp)
        .policy(Policy::from_toml(POLICY).unwrap())
        .audit_sink(Arc::new(transmitter.clone()))
        .build()
        .unwrap();
    let workers = engine.start();
    for person in [
        Person::new("emp-ada", "ada@example.com").with_name("Ada Lovelace"),
        Person::new("emp-grace", "grace@example.com").with_name("Grace Hopper"),
    ] {
        let plan = engine
            .plan(RunRequest::new(
                person,
                Initiator::Admin {
                    actor: "admin@example.com".into(),
                },
            ))
            .await
            .unwrap();
        let run = engine.submit(plan, None).await.unwrap();
        engine.wait(run).await.unwrap();
    }
    // Two SETs per person: account-disabled and session-revoked.
    tokio::time::timeout(Duration::from_secs(10), async {
        while inbox.lock().unwrap().len() < 4 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the SETs arrived");

    let jwks: JwkSet = http
        .get(format!("{issuer}/ssf/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for jwt in inbox.lock().unwrap().iter() {
        let kid = jsonwebtoken::decode_header(jwt).unwrap().kid.unwrap();
        let key = DecodingKey::from_jwk(jwks.find(&kid).unwrap()).unwrap();
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&[AUDIENCE]);
        v.set_issuer(&[&issuer]);
        v.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<Value>(jwt, &key, &v).unwrap().claims;
        let (event, _) = claims["events"].as_object().unwrap().iter().next().unwrap();
        println!(
            "{:<18} {:<70} jti={} txn={}",
            claims["sub_id"]["email"].as_str().unwrap_or("?"),
            event,
            claims["jti"].as_str().unwrap_or("?"),
            claims["txn"].as_str().unwrap_or("?"),
        );
    }
    workers.shutdown().await;
    transmitter.shutdown();
}
