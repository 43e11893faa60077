//! The BambooHR simulator against BambooHR's own API description and its documented answers.

use offboard_testkit::sim::bamboohr::{BambooTenant, NewEmployee};

fn spec() -> serde_json::Value {
    offboard_testkit::sim::specs::json("bamboohr/bamboohr-public.offboarding.json")
}

#[test]
fn every_route_and_status_is_in_bamboohrs_description() {
    let spec = spec();
    for (method, path) in BambooTenant::ROUTES {
        let op = &spec["paths"][*path][method.to_ascii_lowercase()];
        assert!(
            op.is_object(),
            "{method} {path} is not in BambooHR's description"
        );
    }
    let statuses: Vec<&str> =
        spec["components"]["schemas"]["GetEmployeeResponse"]["properties"]["status"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
    assert_eq!(statuses, BambooTenant::STATUSES);
    let types: Vec<&str> =
        spec["paths"]["/api/v1/employees/changed"]["get"]["parameters"][1]["schema"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
    assert_eq!(types, ["inserted", "updated", "deleted", "all"]);
}

async fn get(t: &BambooTenant, key: &str, path_and_query: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .get(format!("{}{path_and_query}", t.uri()))
        .basic_auth(key, Some("x"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn the_simulator_answers_as_bamboohr_does() {
    let t = BambooTenant::start().await;
    let key = t.api_key().to_owned();
    let ada = t.add(NewEmployee {
        first_name: "Ada".into(),
        work_email: "ada@example.com".into(),
        ..NewEmployee::default()
    });
    let (status, body) = get(
        &t,
        "wrong",
        "/api/v1/employees/changed?since=2020-01-01T00:00:00Z",
    )
    .await;
    assert_eq!((status, body.as_str()), (401, ""));
    let (status, _) = get(&t, &key, "/api/v1/employees/changed?since=yesterday").await;
    assert_eq!(status, 400, "since must be ISO 8601");
    let (status, _) = get(
        &t,
        &key,
        "/api/v1/employees/changed?since=2020-01-01T00:00:00Z&limit=5",
    )
    .await;
    assert_eq!(status, 400, "an unknown parameter");
    let (status, body) = get(
        &t,
        &key,
        "/api/v1/employees/changed?since=2020-01-01T00:00:00%2B00:00",
    )
    .await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["employees"][&ada]["action"], "Inserted");
    let (status, body) = get(
        &t,
        &key,
        &format!("/api/v1/employees/{ada}?fields=workEmail,status,terminationDate,salary"),
    )
    .await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"id": ada, "workEmail": "ada@example.com", "status": "Active",
                           "terminationDate": "0000-00-00"})
    );
    assert_eq!(get(&t, &key, "/api/v1/employees/999").await.0, 404);
    assert!(t.delete(&ada));
    let (_, body) = get(
        &t,
        &key,
        "/api/v1/employees/changed?since=2020-01-01T00:00:00Z&type=deleted",
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["employees"][&ada]["action"], "Deleted");
    // XML unless JSON is asked for.
    let r = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/employees/changed?since=2020-01-01T00:00:00Z",
            t.uri()
        ))
        .basic_auth(&key, Some("x"))
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().starts_with("<?xml"));
    // Throttling: 503 with Retry-After.
    t.set_limit(1, std::time::Duration::from_secs(60));
    assert_eq!(get(&t, &key, "/api/v1/employees/1").await.0, 404);
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/employees/1", t.uri()))
        .basic_auth(&key, Some("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    let after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&after));
    assert_eq!(t.throttled(), 1);
    assert!(
        !format!("{:?}", t.requests()).contains(&key),
        "no credential recorded"
    );
}
