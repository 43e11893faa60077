//! The management endpoints (SSF 1.0 sections 7 and 8): metadata, JWKS and key rotation,
//! stream create/read/update/replace/delete, status, subjects, verification, bearer auth.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use offboard_core::MemoryStore;
use offboard_ssf::{
    CAEP_SESSION_REVOKED, POLL, PUSH, RISC_ACCOUNT_DISABLED, SSF_VERIFICATION, SUPPORTED,
    SigningKey,
};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_is_at_the_path_inserted_well_known_url() {
    let served = serve(Arc::new(MemoryStore::new())).await;
    let http = &served.http;
    let meta: Value = http
        .get(format!(
            "{}/.well-known/ssf-configuration/tenant",
            served.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["spec_version"], "1_0");
    assert_eq!(meta["issuer"], served.issuer);
    assert_eq!(meta["jwks_uri"], served.url("jwks"));
    assert_eq!(meta["configuration_endpoint"], served.url("stream"));
    assert_eq!(meta["status_endpoint"], served.url("status"));
    assert_eq!(meta["add_subject_endpoint"], served.url("subjects/add"));
    assert_eq!(
        meta["remove_subject_endpoint"],
        served.url("subjects/remove")
    );
    assert_eq!(meta["verification_endpoint"], served.url("verify"));
    assert_eq!(meta["delivery_methods_supported"], json!([PUSH, POLL]));
    assert_eq!(meta["default_subjects"], "ALL");
    // Not at the unprefixed path: the issuer has a path.
    let plain = http
        .get(format!("{}/.well-known/ssf-configuration", served.base))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_keys_stay_in_the_jwks_until_retired_and_new_sets_use_the_new_kid() {
    let served = serve(Arc::new(MemoryStore::new())).await;
    let (stream_id, poll_url) = served.poll_stream().await;
    served
        .transmitter
        .rotate_key(SigningKey::generate("k2").unwrap())
        .unwrap();
    let jwks = served.jwks().await;
    let kids: Vec<_> = jwks
        .keys
        .iter()
        .map(|k| k.common.key_id.clone().unwrap())
        .collect();
    assert_eq!(kids, ["k2", "k1"]);
    for k in &jwks.keys {
        let v = serde_json::to_value(k).unwrap();
        assert_eq!(v["kty"], "EC");
        assert_eq!(v["crv"], "P-256");
        assert_eq!(v["use"], "sig");
        assert!(v.get("d").is_none(), "no private part in the JWKS");
    }
    let (code, _) = served
        .call(
            Method::POST,
            "verify",
            Some(json!({"stream_id": stream_id})),
        )
        .await;
    assert_eq!(code, 204);
    let resp: Value = served
        .http
        .post(&poll_url)
        .bearer_auth(TOKEN)
        .json(&json!({"returnImmediately": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwt = resp["sets"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .as_str()
        .unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(jwt).unwrap().kid.as_deref(),
        Some("k2")
    );
    verify(jwt, &jwks, &served.issuer);
    served.transmitter.retire_key("k1").unwrap();
    assert_eq!(served.jwks().await.keys.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_created_read_updated_replaced_and_deleted() {
    let served = serve(Arc::new(MemoryStore::new())).await;
    let (code, created) = served
        .call(
            Method::POST,
            "stream",
            Some(json!({
                "delivery": {"method": PUSH, "endpoint_url": "http://127.0.0.1:9/events", "authorization_header": PUSH_AUTH},
                "events_requested": [CAEP_SESSION_REVOKED, "https://example.com/unknown"],
                "description": "okta",
            })),
        )
        .await;
    assert_eq!(code, 201, "{created}");
    let id = created["stream_id"].as_str().unwrap().to_owned();
    assert_eq!(created["iss"], served.issuer);
    assert_eq!(created["aud"], AUDIENCE);
    assert_eq!(created["events_supported"], json!(SUPPORTED));
    assert_eq!(created["events_delivered"], json!([CAEP_SESSION_REVOKED]));
    assert_eq!(created["min_verification_interval"], 60);
    assert!(created["delivery"].get("authorization_header").is_none());

    let (code, read) = served
        .call(Method::GET, &format!("stream?stream_id={id}"), None)
        .await;
    assert_eq!((code, &read), (200, &created));
    let (code, list) = served.call(Method::GET, "stream", None).await;
    assert_eq!(code, 200);
    assert_eq!(list, json!([created]));

    // PATCH changes only what it names.
    let (code, patched) = served
        .call(
            Method::PATCH,
            "stream",
            Some(json!({"stream_id": id, "description": "okta prod"})),
        )
        .await;
    assert_eq!(code, 200, "{patched}");
    assert_eq!(patched["description"], "okta prod");
    assert_eq!(patched["events_delivered"], json!([CAEP_SESSION_REVOKED]));
    assert_eq!(patched["delivery"]["method"], PUSH);

    // PUT replaces every receiver-supplied member: a poll stream, every event, no description.
    let (code, replaced) = served
        .call(
            Method::PUT,
            "stream",
            Some(json!({"stream_id": id, "delivery": {"method": POLL}})),
        )
        .await;
    assert_eq!(code, 200, "{replaced}");
    assert_eq!(replaced["delivery"]["method"], POLL);
    assert_eq!(
        replaced["delivery"]["endpoint_url"],
        served.url(&format!("poll/{id}"))
    );
    assert_eq!(replaced["events_delivered"], json!(SUPPORTED));
    assert!(replaced.get("description").is_none());

    // Bad input is refused and changes nothing.
    for bad in [
        json!({"stream_id": id, "delivery": {"method": "urn:example:carrier-pigeon"}}),
        json!({"stream_id": id, "delivery": {"method": PUSH}}),
        json!({"stream_id": id, "delivery": {"method": PUSH, "endpoint_url": "ftp://x/y"}}),
        json!({"stream_id": id, "description": "x".repeat(5000)}),
        json!({"stream_id": id, "events_requested": "all"}),
        json!({"description": "no stream id"}),
    ] {
        let (code, body) = served
            .call(Method::PATCH, "stream", Some(bad.clone()))
            .await;
        assert_eq!(code, 400, "{bad} -> {body}");
        assert_eq!(body["error"], "invalid_request");
    }
    let (_, after) = served
        .call(Method::GET, &format!("stream?stream_id={id}"), None)
        .await;
    assert_eq!(after, replaced);

    let (code, _) = served
        .call(Method::DELETE, &format!("stream?stream_id={id}"), None)
        .await;
    assert_eq!(code, 204);
    let (code, _) = served
        .call(Method::GET, &format!("stream?stream_id={id}"), None)
        .await;
    assert_eq!(code, 404);
    let (code, list) = served.call(Method::GET, "stream", None).await;
    assert_eq!((code, list), (200, json!([])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_needs_its_token_and_sees_only_its_own_streams() {
    let served = serve(Arc::new(MemoryStore::new())).await;
    let (id, _) = served.poll_stream().await;
    for token in [None, Some("wrong"), Some("")] {
        let mut req = served
            .http
            .get(served.url(&format!("stream?stream_id={id}")));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401);
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    }
    let (code, _) = served
        .call_as(
            OTHER_TOKEN,
            Method::GET,
            &format!("stream?stream_id={id}"),
            None,
        )
        .await;
    assert_eq!(code, 404, "another receiver's stream is not found");
    let (code, _) = served
        .call_as(
            OTHER_TOKEN,
            Method::DELETE,
            &format!("stream?stream_id={id}"),
            None,
        )
        .await;
    assert_eq!(code, 404);
    let (code, list) = served
        .call_as(OTHER_TOKEN, Method::GET, "stream", None)
        .await;
    assert_eq!((code, list), (200, json!([])));
    // The JWKS and the metadata are public.
    assert_eq!(
        served
            .http
            .get(served.url("jwks"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // No token in the transmitter's Debug.
    let debug = format!("{:?} {:?}", served.transmitter, config(&served.issuer));
    assert!(
        !debug.contains(TOKEN) && !debug.contains(OTHER_TOKEN),
        "{debug}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_subjects_decide_what_is_delivered() {
    let served = serve(Arc::new(MemoryStore::new())).await;
    let receiver = PushReceiver::default();
    let endpoint = receiver.start().await;
    let id = served.push_stream(&endpoint).await;
    // Ada is removed from the stream: only Grace's SETs come.
    let (code, _) = served
        .call(
            Method::POST,
            "subjects/remove",
            Some(json!({"stream_id": id, "subject": {"format": "email", "email": "ADA@example.com"}})),
        )
        .await;
    assert_eq!(code, 204);
    let (code, body) = served
        .call(
            Method::POST,
            "subjects/add",
            Some(json!({"stream_id": id, "subject": {"format": "nickname"}})),
        )
        .await;
    assert_eq!(code, 400, "{body}");
    let (engine, _workers) = engine(served.store.clone(), &served.transmitter);
    offboard(&engine, ada()).await;
    offboard(&engine, grace()).await;
    let got = receiver.wait_for(2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.got().len(), 2);
    let jwks = served.jwks().await;
    for g in &got {
        assert_eq!(
            verify(&g.body, &jwks, &served.issuer)["sub_id"]["email"],
            "grace@example.com"
        );
    }

    // Paused: held; disabled: dropped. Ada is added back (her second run: the first ended).
    let (code, _) = served
        .call(
            Method::POST,
            "subjects/add",
            Some(json!({"stream_id": id, "subject": {"format": "email", "email": "ada@example.com"}})),
        )
        .await;
    assert_eq!(code, 200);
    let (code, status) = served
        .call(
            Method::POST,
            "status",
            Some(json!({"stream_id": id, "status": "paused", "reason": "maintenance"})),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(
        status,
        json!({"stream_id": id, "status": "paused", "reason": "maintenance"})
    );
    let run = offboard(&engine, ada()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.got().len(), 2, "a paused stream holds its events");
    let (code, _) = served.set_status(&id, "enabled").await;
    assert_eq!(code, 200);
    let got = receiver.wait_for(4).await;
    let held = verify(&got[2].body, &jwks, &served.issuer);
    assert_eq!(held["txn"], run.to_string());
    assert_eq!(event_type(&held), RISC_ACCOUNT_DISABLED);

    let (code, _) = served.set_status(&id, "disabled").await;
    assert_eq!(code, 200);
    let dropped = offboard(&engine, grace()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (code, _) = served.set_status(&id, "enabled").await;
    assert_eq!(code, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all = receiver.got();
    assert_eq!(all.len(), 4, "a disabled stream drops its events");
    assert!(
        all.iter()
            .all(|g| verify(&g.body, &jwks, &served.issuer)["txn"] != dropped.to_string())
    );
    let (code, body) = served.set_status(&id, "asleep").await;
    assert_eq!(code, 400, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_sends_the_state_back_and_is_rate_limited() {
    let served = serve(Arc::new(MemoryStore::new())).await;
    let receiver = PushReceiver::default();
    let endpoint = receiver.start().await;
    let id = served.push_stream(&endpoint).await;
    let (code, _) = served
        .call(
            Method::POST,
            "verify",
            Some(json!({"stream_id": id, "state": "VGhpcyBpcyBhbiBleGFtcGxl"})),
        )
        .await;
    assert_eq!(code, 204);
    let got = receiver.wait_for(1).await;
    let c = verify(&got[0].body, &served.jwks().await, &served.issuer);
    assert_eq!(event_type(&c), SSF_VERIFICATION);
    assert_eq!(
        c["events"][SSF_VERIFICATION]["state"],
        "VGhpcyBpcyBhbiBleGFtcGxl"
    );
    assert_eq!(c["sub_id"], json!({"format": "opaque", "id": id}));
    assert!(c.get("txn").is_none());
    let (code, body) = served
        .call(Method::POST, "verify", Some(json!({"stream_id": id})))
        .await;
    assert_eq!(code, 429, "{body}");
    let (code, _) = served
        .call(
            Method::POST,
            "verify",
            Some(json!({"stream_id": "no-such-stream"})),
        )
        .await;
    assert_eq!(code, 404);
}
