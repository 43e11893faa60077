//! Push delivery (RFC 8935) driven by the audit trail: what a receiver gets, how its errors
//! are handled, and that a dead receiver neither blocks the engine nor loses events.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use offboard_core::MemoryStore;
use offboard_core::store::Store;
use offboard_ssf::{CAEP_SESSION_REVOKED, RISC_ACCOUNT_DISABLED, RISC_ACCOUNT_ENABLED};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_delivers_signed_sets_in_order_with_the_spec_claims() {
    let served = serve(Arc::new(MemoryStore::new())).await;
    let receiver = PushReceiver::default();
    let endpoint = receiver.start().await;
    let stream_id = served.push_stream(&endpoint).await;
    let (engine, _workers) = engine(served.store.clone(), &served.transmitter);

    let run = offboard(&engine, ada()).await;
    // idp.suspend (account-disabled) then idp.clear_sessions (session-revoked, after suspend);
    // idp.remove_groups raises nothing.
    let got = receiver.wait_for(2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(receiver.got().len(), 2, "nothing more than the two SETs");
    let jwks = served.jwks().await;
    let claims: Vec<Value> = got
        .iter()
        .map(|g| verify(&g.body, &jwks, &served.issuer))
        .collect();
    for g in &got {
        assert_eq!(g.content_type, "application/secevent+jwt");
        assert_eq!(g.authorization, PUSH_AUTH);
    }
    assert_eq!(event_type(&claims[0]), RISC_ACCOUNT_DISABLED);
    assert_eq!(event_type(&claims[1]), CAEP_SESSION_REVOKED);
    for c in &claims {
        assert_eq!(c["iss"], served.issuer);
        assert_eq!(c["aud"], AUDIENCE);
        assert_eq!(c["txn"], run.to_string());
        assert_eq!(
            c["sub_id"],
            json!({"format": "email", "email": "ada@example.com"})
        );
        assert!(c["iat"].is_i64());
        assert_eq!(c["jti"].as_str().unwrap().len(), 32);
    }
    let caep = &claims[1]["events"][CAEP_SESSION_REVOKED];
    assert_eq!(caep["initiating_entity"], "policy");
    assert_eq!(caep["event_timestamp"], claims[1]["iat"]);
    assert_eq!(
        caep["reason_admin"]["en"],
        "offboarding: idp.clear_sessions"
    );

    // A rollback re-enables the account: RISC account-enabled.
    engine
        .rollback(run, "admin@example.com", None)
        .await
        .unwrap();
    let got = receiver.wait_for(3).await;
    let enabled = verify(&got[2].body, &jwks, &served.issuer);
    assert_eq!(event_type(&enabled), RISC_ACCOUNT_ENABLED);
    assert_eq!(enabled["txn"], run.to_string());
    let (_, config) = served
        .call(Method::GET, &format!("stream?stream_id={stream_id}"), None)
        .await;
    assert_eq!(config["delivery"]["endpoint_url"], endpoint);
    assert!(
        config["delivery"].get("authorization_header").is_none(),
        "write-only: {config}"
    );
    served.transmitter.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_rejected_as_invalid_is_recorded_and_not_sent_again() {
    let served = serve(Arc::new(MemoryStore::new())).await;
    let receiver = PushReceiver::default();
    receiver.answer(
        400,
        json!({"err": "invalid_audience", "description": "not for us"}),
    );
    let endpoint = receiver.start().await;
    let stream_id = served.push_stream(&endpoint).await;
    let (engine, _workers) = engine(served.store.clone(), &served.transmitter);
    offboard(&engine, ada()).await;

    let got = receiver.wait_for(2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got_all = receiver.got();
    assert_eq!(got_all.len(), 2, "the rejected SET is not retried");
    let jwks = served.jwks().await;
    let first = verify(&got[0].body, &jwks, &served.issuer);
    let second = verify(&got[1].body, &jwks, &served.issuer);
    assert_ne!(first["jti"], second["jti"]);
    let notes = served.notes("ssf_set_rejected").await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["jti"], first["jti"]);
    assert_eq!(notes[0]["err"], "invalid_audience");
    assert_eq!(notes[0]["stream_id"], stream_id);
    let (_, status) = served
        .call(Method::GET, &format!("status?stream_id={stream_id}"), None)
        .await;
    assert_eq!(status["status"], "enabled");
    served.transmitter.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_failed_pauses_the_stream_until_the_receiver_enables_it() {
    let served = serve(Arc::new(MemoryStore::new())).await;
    let receiver = PushReceiver::default();
    receiver.answer(400, json!({"err": "authentication_failed"}));
    let endpoint = receiver.start().await;
    let stream_id = served.push_stream(&endpoint).await;
    let (engine, _workers) = engine(served.store.clone(), &served.transmitter);
    offboard(&engine, ada()).await;

    receiver.wait_for(1).await;
    let paused = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let (_, s) = served
                .call(Method::GET, &format!("status?stream_id={stream_id}"), None)
                .await;
            if s["status"] == "paused" {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    assert!(
        paused["reason"]
            .as_str()
            .unwrap()
            .contains("authentication_failed")
    );
    let notes = served.notes("ssf_stream_paused").await;
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0]["stream_id"], stream_id);
    // The receiver's authorization header is in no audit event.
    let trail = serde_json::to_string(
        &served
            .store
            .audit(offboard_core::AuditQuery::all())
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(!trail.contains(PUSH_AUTH.trim_start_matches("Bearer ")));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.got().len(), 1, "a paused stream sends nothing");

    // The receiver fixes its side and enables the stream: the held SETs arrive, the first
    // one with the jti it refused.
    let (code, body) = served.set_status(&stream_id, "enabled").await;
    assert_eq!(code, 200, "{body}");
    let got = receiver.wait_for(3).await;
    let jwks = served.jwks().await;
    let c: Vec<Value> = got
        .iter()
        .map(|g| verify(&g.body, &jwks, &served.issuer))
        .collect();
    assert_eq!(
        c[0]["jti"], c[1]["jti"],
        "the refused SET is delivered again, same jti"
    );
    assert_eq!(event_type(&c[1]), RISC_ACCOUNT_DISABLED);
    assert_eq!(event_type(&c[2]), CAEP_SESSION_REVOKED);
    served.transmitter.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_receiver_never_blocks_the_engine_and_its_events_wait() {
    let served = serve(Arc::new(MemoryStore::new())).await;
    // A port nothing listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/events", l.local_addr().unwrap())
    };
    let stream_id = served.push_stream(&dead).await;
    let (engine, _workers) = engine(served.store.clone(), &served.transmitter);
    let started = Instant::now();
    offboard(&engine, ada()).await;
    offboard(&engine, grace()).await;
    // Both runs ended while every push failed: the engine did not wait for the receiver.
    assert!(started.elapsed() < Duration::from_secs(20));
    let stored = served.transmitter.streams().await.unwrap();
    assert_eq!(stored.len(), 1);

    // The receiver comes up at a new address: the held SETs arrive, in order.
    let receiver = PushReceiver::default();
    let endpoint = receiver.start().await;
    let (code, body) = served
        .call(
            Method::PATCH,
            "stream",
            Some(json!({"stream_id": stream_id, "delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": endpoint, "authorization_header": PUSH_AUTH}})),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let got = receiver.wait_for(4).await;
    let jwks = served.jwks().await;
    let subjects: Vec<String> = got
        .iter()
        .map(|g| {
            verify(&g.body, &jwks, &served.issuer)["sub_id"]["email"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        subjects,
        [
            "ada@example.com",
            "ada@example.com",
            "grace@example.com",
            "grace@example.com"
        ]
    );
    served.transmitter.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_transmitter_resumes_from_the_stored_position_with_the_same_jti() {
    let store = Arc::new(MemoryStore::new());
    let first = serve(store.clone()).await;
    let receiver = PushReceiver::default();
    // The receiver is down (503) for the first tries.
    for _ in 0..3 {
        receiver.answer(503, Value::Null);
    }
    let endpoint = receiver.start().await;
    first.push_stream(&endpoint).await;
    let (engine, _workers) = engine(store.clone(), &first.transmitter);
    offboard(&engine, ada()).await;
    let refused = receiver.wait_for(2).await;
    // The transmitter stops ("crashes") while the receiver still refuses.
    first.transmitter.shutdown();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = receiver.got().len();
    // The receiver is back up.
    receiver.script.lock().unwrap().clear();

    // A new transmitter on the same store delivers everything, the first SET with the jti
    // it was refused with.
    let second = serve(store.clone()).await;
    let got = receiver.wait_for(before + 2).await;
    let jti = |g: &Got| {
        let payload = g.body.split('.').nth(1).unwrap();
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        serde_json::from_slice::<Value>(&bytes).unwrap()["jti"].clone()
    };
    assert_eq!(jti(&refused[0]), jti(&got[before]));
    let delivered: Vec<Value> = got[before..].iter().map(jti).collect();
    assert_eq!(delivered.len(), 2);
    assert_ne!(delivered[0], delivered[1]);
    second.transmitter.shutdown();
}
