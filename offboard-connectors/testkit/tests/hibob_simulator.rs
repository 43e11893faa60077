//! The HiBob simulator against the Bob API's description and its documented answers.

use offboard_testkit::sim::hibob::{BobEmployee, HibobTenant};
use serde_json::json;

#[test]
fn every_route_is_in_the_bob_api_description() {
    let spec = offboard_testkit::sim::specs::json("hibob/hibob-bob-api.offboarding.json");
    assert!(spec["servers"][0]["url"].as_str().unwrap().ends_with("/v1"));
    for (method, path) in HibobTenant::ROUTES {
        let op = &spec["paths"][*path][method.to_ascii_lowercase()];
        assert!(op.is_object(), "{method} {path} is not in the description");
    }
    let request = &spec["components"]["schemas"]["ReadEmployeesRequestReference"]["properties"];
    for member in ["fields", "filters", "showInactive", "humanReadable"] {
        assert!(request[member].is_object(), "{member}");
    }
}

async fn search(t: &HibobTenant, token: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/v1/people/search", t.uri()))
        .basic_auth(t.service_user(), Some(token))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

#[tokio::test]
async fn the_simulator_answers_as_bob_does() {
    let t = HibobTenant::start().await;
    let token = t.token().to_owned();
    let ada = t.add(BobEmployee::employed("ada@example.com", "Ada", "L", "1"));
    let old = t.add(BobEmployee::employed("old@example.com", "Old", "T", "2"));
    t.terminate(&old, chrono::NaiveDate::from_ymd_opt(2026, 1, 2).unwrap());
    let (status, body) = search(&t, "wrong", json!({})).await;
    assert_eq!((status, &body["key"]), (401, &json!("unauthorized")));
    let (status, body) = search(
        &t,
        &token,
        json!({"fields": ["root.id", "internal.lifecycleStatus"]}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"employees": [{"id": ada, "internal": {"lifecycleStatus": "employed"}}]}),
        "inactive people only with showInactive"
    );
    let (_, body) = search(&t, &token, json!({"fields": ["root.id", "internal.terminationDate"],
        "showInactive": true, "filters": [{"fieldPath": "root.id", "operator": "equals", "values": [old]}]})).await;
    assert_eq!(
        body,
        json!({"employees": [{"id": old, "internal": {"terminationDate": "2026-01-02"}}]})
    );
    for bad in [
        json!({"page": 2}),
        json!({"showInactive": "yes"}),
        json!({"filters": [{"fieldPath": "work.title", "operator": "equals", "values": ["x"]}]}),
        json!({"filters": [{"fieldPath": "root.id", "operator": "equals", "values": []}]}),
        json!({"filters": [{"fieldPath": "root.id", "operator": "contains", "values": ["x"]}]}),
    ] {
        assert_eq!(search(&t, &token, bad.clone()).await.0, 400, "{bad}");
    }
    t.set_limit(1, std::time::Duration::from_secs(60));
    assert_eq!(search(&t, &token, json!({})).await.0, 200);
    let r = reqwest::Client::new()
        .post(format!("{}/v1/people/search", t.uri()))
        .basic_auth(t.service_user(), Some(&token))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert!(!format!("{:?}", t.requests()).contains(&token));
}
