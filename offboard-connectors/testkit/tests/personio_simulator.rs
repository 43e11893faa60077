//! The Personio simulator against Personio's own API descriptions and documented answers.

use offboard_testkit::sim::personio::{PersonioEmployee, PersonioTenant};
use serde_json::{Value, json};

fn spec(file: &str) -> Value {
    offboard_testkit::sim::specs::json(&format!("personio/{file}"))
}

#[test]
fn every_route_and_parameter_is_in_personios_descriptions() {
    let auth = spec("personio-auth-api.json");
    let personnel = spec("personio-personnel-data-api.offboarding.json");
    for (method, path) in PersonioTenant::ROUTES {
        let m = method.to_ascii_lowercase();
        assert!(
            auth["paths"][*path][&m].is_object() || personnel["paths"][*path][&m].is_object(),
            "{method} {path} is in neither description"
        );
    }
    let list = &personnel["paths"]["/company/employees"]["get"]["parameters"];
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["limit", "offset", "email", "attributes[]", "updated_since"]
    );
}

async fn fetch_token(t: &PersonioTenant) -> String {
    let r: Value = reqwest::Client::new()
        .post(format!("{}/v1/auth", t.uri()))
        .json(&json!({"client_id": t.client_id(), "client_secret": t.client_secret()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["data"]["expires_in"], 86_400);
    r["data"]["token"].as_str().unwrap().to_owned()
}

async fn get(t: &PersonioTenant, token: &str, path: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(format!("{}{path}", t.uri()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

#[tokio::test]
async fn the_simulator_answers_as_personio_does() {
    let t = PersonioTenant::start().await;
    let ada = t.add(PersonioEmployee::active(
        "ada@example.com",
        "Ada",
        "L",
        "E-1",
    ));
    let r = reqwest::Client::new()
        .post(format!("{}/v1/auth", t.uri()))
        .form(&[("client_id", t.client_id()), ("client_secret", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(get(&t, "forged", "/v1/company/employees").await.0, 401);
    let token = fetch_token(&t).await;
    let (status, body) = get(
        &t,
        &token,
        "/v1/company/employees?limit=5&attributes[]=status",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["metadata"]["total_elements"], 1);
    let attributes = body["data"][0]["attributes"].as_object().unwrap();
    assert_eq!(
        attributes.keys().collect::<Vec<_>>(),
        ["id", "status"],
        "a projection"
    );
    assert_eq!(attributes["status"]["value"], "active");
    for bad in [
        "limit=0",
        "limit=201",
        "offset=-1",
        "page=2",
        "updated_since=yesterday",
    ] {
        let (status, body) = get(&t, &token, &format!("/v1/company/employees?{bad}")).await;
        assert_eq!((status, &body["success"]), (400, &json!(false)), "{bad}");
    }
    let (_, body) = get(
        &t,
        &token,
        "/v1/company/employees?updated_since=2000-01-01&limit=1&offset=5",
    )
    .await;
    assert_eq!(
        body["data"].as_array().unwrap().len(),
        1,
        "limit and offset ignored"
    );
    assert_eq!(get(&t, &token, "/v1/company/employees/999").await.0, 404);
    assert_eq!(get(&t, &token, "/v1/company/employees/x").await.0, 400);
    let (_, body) = get(&t, &token, &format!("/v1/company/employees/{ada}")).await;
    assert_eq!(
        body["data"]["attributes"]["email"]["value"],
        "ada@example.com"
    );
    t.expire_tokens();
    assert_eq!(get(&t, &token, "/v1/company/employees").await.0, 401);
    let token = fetch_token(&t).await;
    t.set_limit(1, std::time::Duration::from_secs(60));
    assert_eq!(get(&t, &token, "/v1/company/employees").await.0, 200);
    let r = reqwest::Client::new()
        .get(format!("{}/v1/company/employees", t.uri()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let recorded = format!("{:?}", t.requests());
    assert!(!recorded.contains(t.client_secret()) && !recorded.contains(&token));
}
