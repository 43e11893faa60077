//! The simulated Namely company: its routes and parameters are in the vendored description,
//! and it refuses what Namely refuses.

use offboard_testkit::sim::namely::{NamelyTenant, NewProfile};

#[test]
fn namely_every_route_and_parameter_exists_in_the_vendored_description() {
    let text = offboard_testkit::sim::specs::read("namely/namely.offboarding.yaml");
    let spec: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    for (method, path) in NamelyTenant::ROUTES {
        let op = &spec["paths"][*path][method.to_ascii_lowercase().as_str()];
        assert!(op.is_mapping(), "{method} {path} is not described");
    }
    let params: Vec<&str> = spec["paths"]["/profiles"]["get"]["parameters"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for p in NamelyTenant::LIST_PARAMETERS {
        assert!(params.contains(&p), "{p} is not a described parameter");
    }
}

#[tokio::test]
async fn namely_refuses_what_namely_refuses() {
    let namely = NamelyTenant::start().await;
    let ada = namely.hire(NewProfile {
        email: "ada@example.com".into(),
        first_name: "Ada".into(),
        last_name: "Tester".into(),
        ..NewProfile::default()
    });
    let pending = namely.hire(NewProfile::default());
    assert!(namely.set_status(&pending, "pending", None));
    let http = reqwest::Client::new();
    let get = |q: &str, token: &str| {
        http.get(format!("{}/api/v1/profiles{q}", namely.uri()))
            .bearer_auth(token)
            .send()
    };
    let token = namely.token().to_owned();
    assert_eq!(get("", "nope").await.unwrap().status(), 401);
    for bad in [
        "?per_page=51",
        "?per_page=0",
        "?page=0",
        "?sort=email",
        "?limit=5",
        "?filter[user_status]=gone",
    ] {
        assert_eq!(get(bad, &token).await.unwrap().status(), 400, "{bad}");
    }
    let all: serde_json::Value = get("?per_page=50", &token)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        all["profiles"].as_array().unwrap().len(),
        1,
        "pending is not listed: {all}"
    );
    assert_eq!(all["profiles"][0]["id"], ada.as_str());
    assert_eq!(all["profiles"][0]["reports_to"][0]["id"], "no_guid");
    let past: serde_json::Value = get("?page=2&per_page=1", &token)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(past["profiles"], serde_json::json!([]));
    assert_eq!(past["meta"]["count"], 0);
    assert_eq!(get("/nobody", &token).await.unwrap().status(), 404);
    let put = http
        .put(format!("{}/api/v1/profiles/{ada}", namely.uri()))
        .bearer_auth(&token)
        .send();
    assert_eq!(put.await.unwrap().status(), 405);
    namely.set_per_minute(0);
    let throttled = get("", &token).await.unwrap();
    assert_eq!(throttled.status(), 429);
    assert!(throttled.headers().get("retry-after").is_some());
    assert!(!format!("{:?}", namely.requests()).contains(&token));
}
