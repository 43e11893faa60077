//! The simulated OneLogin account: routes and parameters match the (handwritten) description
//! of OneLogin's API, the token flow, paging by cursor, strictness and throttling.

use offboard_testkit::sim::onelogin::{NewOneLoginUser, OneLoginTenant};
use serde_json::Value;

fn spec() -> Value {
    offboard_testkit::sim::specs::json("onelogin/onelogin-users-v2.handwritten.json")
}

#[test]
fn onelogin_every_route_and_parameter_is_in_the_description() {
    let spec = spec();
    for (method, path) in OneLoginTenant::ROUTES {
        let op = &spec["paths"][path][method.to_ascii_lowercase()];
        assert!(op.is_object(), "{method} {path} is not described");
    }
    let params: Vec<&str> = spec["paths"]["/api/2/users"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(params, OneLoginTenant::LIST_PARAMS);
    for p in OneLoginTenant::SIMULATED_PARAMS {
        assert!(params.contains(p), "{p}");
    }
    let status: Vec<u64> = spec["components"]["schemas"]["User"]["properties"]["status"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_u64().unwrap())
        .collect();
    let statuses: Vec<u64> = OneLoginTenant::STATUSES
        .iter()
        .map(|s| u64::from(*s))
        .collect();
    assert_eq!(status, statuses);
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn token(&self, t: &OneLoginTenant, secret: &str, json: bool) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/auth/oauth2/v2/token", self.base))
            .basic_auth(t.client_id(), Some(secret));
        let r = if json {
            r.json(&serde_json::json!({"grant_type": "client_credentials"}))
        } else {
            r.form(&[("grant_type", "password")])
        };
        let r = r.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, token: &str, path: &str) -> (u16, Value, reqwest::header::HeaderMap) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("authorization", format!("bearer {token}"))
            .send()
            .await
            .unwrap();
        let (status, headers) = (r.status().as_u16(), r.headers().clone());
        (status, r.json().await.unwrap_or(Value::Null), headers)
    }
}

#[tokio::test]
async fn tokens_pages_and_refusals_are_onelogins() {
    let t = OneLoginTenant::start().await;
    let api = Api {
        http: reqwest::Client::new(),
        base: t.uri(),
    };
    let ids: Vec<u64> = (0..3)
        .map(|i| {
            t.add_user(NewOneLoginUser::active(
                &format!("u{i}"),
                &format!("u{i}@example.com"),
            ))
        })
        .collect();
    assert_eq!(api.token(&t, "wrong", true).await.0, 401);
    assert_eq!(
        api.token(&t, t.client_secret(), false).await.0,
        400,
        "another grant"
    );
    let (status, token) = api.token(&t, t.client_secret(), true).await;
    assert_eq!(
        (status, token["token_type"].as_str()),
        (200, Some("bearer"))
    );
    assert_eq!(token["expires_in"], 36_000);
    let token = token["access_token"].as_str().unwrap().to_owned();
    let described = spec()["components"]["schemas"]["User"]["properties"].clone();

    let (status, body, headers) = api.get(&token, "/api/2/users?limit=2").await;
    assert_eq!(status, 200);
    assert_eq!(body.as_array().unwrap().len(), 2);
    for k in body[0].as_object().unwrap().keys() {
        assert!(described.get(k).is_some(), "{k} is not a described field");
    }
    assert_eq!(headers["total-count"], "3");
    let after = headers["after-cursor"].to_str().unwrap().to_owned();
    let (_, body, headers) = api
        .get(&token, &format!("/api/2/users?limit=2&cursor={after}"))
        .await;
    assert_eq!(body[0]["id"], ids[2]);
    assert!(headers.get("after-cursor").is_none(), "the last page");
    let (status, _, _) = api
        .get(
            &token,
            &format!("/api/2/users?limit=2&cursor={after}&email=u0@example.com"),
        )
        .await;
    assert_eq!(status, 400, "a cursor is bound to its query");

    let since = t.user(ids[2]).unwrap()["updated_at"]
        .as_str()
        .unwrap()
        .to_owned();
    t.set_status(ids[0], 2);
    let (_, body, _) = api
        .get(
            &token,
            &format!("/api/2/users?updated_since={since}&fields=status"),
        )
        .await;
    assert_eq!(
        body.as_array().unwrap().len(),
        1,
        "only the changed one: {body}"
    );
    assert_eq!(body[0].as_object().unwrap().len(), 2, "projected: {body}");

    for (path, want) in [
        ("/api/2/users?limit=101", 400),
        ("/api/2/users?limit=0", 400),
        ("/api/2/users?page=2", 400),
        ("/api/2/users?sort=id", 400),
        ("/api/2/users?cursor=nope", 400),
        ("/api/2/users?updated_since=yesterday", 400),
        ("/api/2/users/abc", 400),
        ("/api/2/users/999", 404),
        ("/api/2/groups", 404),
    ] {
        let (status, body, _) = api.get(&token, path).await;
        assert_eq!(status, want, "{path}: {body}");
        assert_eq!(body["statusCode"], want, "{body}");
    }
    assert_eq!(api.get("not-a-token", "/api/2/users").await.0, 401);
    t.revoke_tokens();
    assert_eq!(api.get(&token, "/api/2/users").await.0, 401, "revoked");
    assert_eq!(t.token_requests(), 1);
    assert!(
        !format!("{:?}", t.requests()).contains(&token),
        "tokens are not recorded"
    );
    assert!(!format!("{:?}", t.requests()).contains(t.client_secret()));
}

#[tokio::test]
async fn throttling_says_when_the_hour_resets() {
    let t = OneLoginTenant::start().await;
    let api = Api {
        http: reqwest::Client::new(),
        base: t.uri(),
    };
    let (_, token) = api.token(&t, t.client_secret(), true).await;
    let token = token["access_token"].as_str().unwrap().to_owned();
    t.fail_next(1, 503);
    assert_eq!(api.get(&token, "/api/2/users").await.0, 503);
    t.set_rate_limit(Some(1));
    assert_eq!(api.get(&token, "/api/2/users").await.0, 200);
    let (status, body, headers) = api.get(&token, "/api/2/users").await;
    assert_eq!((status, body["statusCode"].as_u64()), (429, Some(429)));
    assert_eq!(headers["x-ratelimit-limit"], "1");
    assert_eq!(headers["x-ratelimit-remaining"], "0");
    let reset: u64 = headers["x-ratelimit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3000..=3600).contains(&reset), "{reset}");
}
