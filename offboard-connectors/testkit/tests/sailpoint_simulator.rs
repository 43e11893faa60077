//! The simulated SailPoint tenant: routes, parameters and identity fields match SailPoint's
//! vendored v2025 description; the token flow, paging, strictness and throttling.

use offboard_testkit::sim::sailpoint::{NewIdentity, SailPointTenant};
use serde_json::Value;

fn spec() -> Value {
    offboard_testkit::sim::specs::json("sailpoint/sailpoint-v2025.offboarding.json")
}

#[test]
fn sailpoint_every_route_and_parameter_is_in_the_official_description() {
    let spec = spec();
    let flows = &spec["components"]["securitySchemes"]["userAuth"]["flows"];
    let token_url = flows["clientCredentials"]["tokenUrl"].as_str().unwrap();
    assert!(token_url.ends_with("/oauth/token"), "{token_url}");
    let server = spec["servers"][0]["url"].as_str().unwrap();
    assert!(server.ends_with("/v2025"), "{server}");
    for (method, route) in SailPointTenant::ROUTES {
        if *route == "/oauth/token" {
            assert_eq!(*method, "POST");
            continue;
        }
        let path = route.strip_prefix("/v2025").unwrap();
        let op = &spec["paths"][path][method.to_ascii_lowercase()];
        assert!(
            op.is_object(),
            "{method} {route} is not in SailPoint's description"
        );
    }
    let params: Vec<&str> = spec["paths"]["/identities"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(params, SailPointTenant::LIST_PARAMS);
    let limit = spec["paths"]["/identities"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(limit["schema"]["maximum"], 250);
}

async fn token(t: &SailPointTenant, secret: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/oauth/token", t.uri()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", t.client_id()),
            ("client_secret", secret),
        ])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn get(
    t: &SailPointTenant,
    token: &str,
    path: &str,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let r = reqwest::Client::new()
        .get(format!("{}{path}", t.uri()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    (status, r.json().await.unwrap_or(Value::Null), headers)
}

#[tokio::test]
async fn identities_pages_and_refusals_are_sailpoints() {
    let t = SailPointTenant::start().await;
    let boss = t.add_identity(NewIdentity::active("boss", "boss@example.com"));
    let mut ada = NewIdentity::active("ada", "ada@example.com");
    ada.manager = Some(boss.clone());
    ada.firstname = "Ada".into();
    let ada = t.add_identity(ada);
    assert_eq!(token(&t, "wrong").await.0, 401);
    let (status, body) = token(&t, t.client_secret()).await;
    assert_eq!((status, body["token_type"].as_str()), (200, Some("bearer")));
    let access = body["access_token"].as_str().unwrap().to_owned();

    let (status, body, headers) =
        get(&t, &access, "/v2025/identities?limit=1&offset=1&count=true").await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-total-count"], "2");
    assert_eq!(body[0]["id"], ada.as_str());
    assert_eq!(body[0]["managerRef"]["id"], boss.as_str());
    assert_eq!(body[0]["lifecycleState"]["stateName"], "active");
    let (_, body, _) = get(
        &t,
        &access,
        "/v2025/identities?filters=alias%20eq%20%22boss%22",
    )
    .await;
    assert_eq!(body.as_array().unwrap().len(), 1);
    assert_eq!(body[0]["isManager"], true);
    t.set_lifecycle_state(&ada, "terminated");
    assert_eq!(t.identity(&ada).unwrap()["identityStatus"], "DISABLED");
    for (path, want) in [
        ("/v2025/identities?limit=251", 400),
        ("/v2025/identities?offset=-1", 400),
        ("/v2025/identities?count=yes", 400),
        ("/v2025/identities?sorters=modified", 400),
        ("/v2025/identities?filters=modified%20gt%20%222020%22", 400),
        ("/v2025/identities?filters=alias%20eq%20boss", 400),
        ("/v2025/identities?defaultFilter=NONE", 400),
        ("/v2025/identities?page=2", 400),
        ("/v2025/identities/nobody", 404),
    ] {
        let (status, body, _) = get(&t, &access, path).await;
        assert_eq!(status, want, "{path}: {body}");
        assert!(
            body["detailCode"].is_string() && body["trackingId"].is_string(),
            "{body}"
        );
    }
    assert_eq!(get(&t, "nope", "/v2025/identities").await.0, 401);
    t.revoke_tokens();
    assert_eq!(get(&t, &access, "/v2025/identities").await.0, 401);
    let recorded = format!("{:?}", t.requests());
    assert!(!recorded.contains(t.client_secret()) && !recorded.contains(&access));
}

#[tokio::test]
async fn throttling_says_when_to_retry() {
    let t = SailPointTenant::start().await;
    let (_, body) = token(&t, t.client_secret()).await;
    let access = body["access_token"].as_str().unwrap().to_owned();
    t.fail_next(1, 503);
    assert_eq!(get(&t, &access, "/v2025/identities").await.0, 503);
    t.set_rate_limit(Some(1));
    assert_eq!(get(&t, &access, "/v2025/identities").await.0, 200);
    let (status, body, headers) = get(&t, &access, "/v2025/identities").await;
    assert_eq!(
        (status, body["message"].as_str()),
        (429, Some(" Rate Limit Exceeded "))
    );
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=10).contains(&wait), "{wait}");
}
