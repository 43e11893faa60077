//! Poll delivery (RFC 8936): SETs wait until acknowledged, `maxEvents`, `returnImmediately`,
//! `ack` and `setErrs`.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use offboard_core::MemoryStore;
use serde_json::{Value, json};

async fn poll(served: &Served, url: &str, body: Value) -> Value {
    let resp = served
        .http
        .post(url)
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

fn jtis(resp: &Value) -> Vec<String> {
    resp["sets"].as_object().unwrap().keys().cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sets_wait_until_acknowledged_and_max_events_bounds_a_poll() {
    let served = serve(Arc::new(MemoryStore::new())).await;
    let (stream_id, url) = served.poll_stream().await;
    let (engine, _workers) = engine(served.store.clone(), &served.transmitter);
    offboard(&engine, ada()).await;
    offboard(&engine, grace()).await;

    let first = poll(
        &served,
        &url,
        json!({"maxEvents": 3, "returnImmediately": true}),
    )
    .await;
    assert_eq!(jtis(&first).len(), 3);
    assert_eq!(first["moreAvailable"], true);
    let jwks = served.jwks().await;
    for (jti, jwt) in first["sets"].as_object().unwrap() {
        let claims = verify(jwt.as_str().unwrap(), &jwks, &served.issuer);
        assert_eq!(&claims["jti"], jti);
    }
    // Not acknowledged: the same SETs again (same jti).
    let again = poll(
        &served,
        &url,
        json!({"maxEvents": 3, "returnImmediately": true}),
    )
    .await;
    let mut a = jtis(&first);
    let mut b = jtis(&again);
    a.sort();
    b.sort();
    assert_eq!(a, b);

    // Acknowledge two, report an error on the third: only the fourth is left.
    let all = poll(
        &served,
        &url,
        json!({"maxEvents": 10, "returnImmediately": true}),
    )
    .await;
    assert_eq!(all["moreAvailable"], false);
    let ids = jtis(&all);
    assert_eq!(ids.len(), 4);
    let acked: Vec<String> = ids.iter().take(2).cloned().collect();
    let rest = poll(
        &served,
        &url,
        json!({"ack": acked, "setErrs": {ids[2].clone(): {"err": "invalid_key", "description": "unknown kid"}}, "maxEvents": 10, "returnImmediately": true}),
    )
    .await;
    assert_eq!(jtis(&rest), [ids[3].clone()]);
    let notes = served.notes("ssf_set_rejected").await;
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0]["jti"], ids[2]);
    assert_eq!(notes[0]["err"], "invalid_key");
    assert_eq!(notes[0]["stream_id"], stream_id);

    // Acknowledging only (maxEvents 0) answers no SET; then nothing is left.
    let ack_only = poll(
        &served,
        &url,
        json!({"ack": [ids[3].clone()], "maxEvents": 0, "returnImmediately": true}),
    )
    .await;
    assert_eq!(jtis(&ack_only).len(), 0);
    let empty = poll(&served, &url, json!({"returnImmediately": true})).await;
    assert_eq!(empty, json!({"sets": {}, "moreAvailable": false}));
    // An ack of an unknown jti changes nothing and is no error.
    let unknown = poll(
        &served,
        &url,
        json!({"ack": ["nope"], "returnImmediately": true}),
    )
    .await;
    assert_eq!(jtis(&unknown).len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_poll_answers_when_an_event_lands() {
    let served = serve(Arc::new(MemoryStore::new())).await;
    let (_, url) = served.poll_stream().await;
    let (engine, _workers) = engine(served.store.clone(), &served.transmitter);
    // Nothing there: a poll without returnImmediately waits poll_wait (2 s) and answers empty.
    let started = Instant::now();
    let empty = poll(&served, &url, json!({})).await;
    assert!(started.elapsed() >= Duration::from_millis(1900));
    assert_eq!(jtis(&empty).len(), 0);
    // A waiting poll gets the first SET as soon as it lands.
    let waiting = {
        let http = served.http.clone();
        let url = url.clone();
        tokio::spawn(async move {
            http.post(&url)
                .bearer_auth(TOKEN)
                .json(&json!({"maxEvents": 10}))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    offboard(&engine, ada()).await;
    let got = waiting.await.unwrap();
    assert!(!jtis(&got).is_empty(), "{got}");
    // A push stream cannot be polled; another receiver cannot poll this one.
    let resp = served
        .http
        .post(&url)
        .bearer_auth(OTHER_TOKEN)
        .json(&json!({"returnImmediately": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_poll_stream_drops_what_happens_meanwhile_and_a_paused_one_holds_it() {
    let served = serve(Arc::new(MemoryStore::new())).await;
    let (id, url) = served.poll_stream().await;
    let (engine, _workers) = engine(served.store.clone(), &served.transmitter);
    let status = |s: &'static str| {
        let served = &served;
        let id = id.clone();
        async move { assert_eq!(served.set_status(&id, s).await.0, 200) }
    };
    status("disabled").await;
    offboard(&engine, ada()).await;
    let disabled = poll(&served, &url, json!({"returnImmediately": true})).await;
    assert_eq!(jtis(&disabled).len(), 0);
    // Another run while disabled, and no poll before the stream leaves disabled: dropped too.
    offboard(&engine, ada()).await;
    status("paused").await;
    offboard(&engine, grace()).await;
    let paused = poll(&served, &url, json!({"returnImmediately": true})).await;
    assert_eq!(jtis(&paused).len(), 0);
    status("enabled").await;
    let enabled = poll(&served, &url, json!({"returnImmediately": true})).await;
    let jwks = served.jwks().await;
    let emails: Vec<Value> = enabled["sets"]
        .as_object()
        .unwrap()
        .values()
        .map(|j| verify(j.as_str().unwrap(), &jwks, &served.issuer)["sub_id"]["email"].clone())
        .collect();
    assert_eq!(
        emails,
        [json!("grace@example.com"), json!("grace@example.com")]
    );
}
