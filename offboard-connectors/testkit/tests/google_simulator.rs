//! The simulated Google Workspace tenant: routes match the official discovery document, state
//! changes, error bodies, throttling, faults and the recording.

use std::collections::BTreeSet;

use offboard_testkit::google::{Faults, GoogleLimits, GoogleTenant, NewUser, Throttle};
use serde_json::{Value, json};

fn spec_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/api-specs/google/admin-directory_v1.offboarding.json")
}

fn methods(resource: &Value, out: &mut BTreeSet<(String, String)>) {
    if let Some(ms) = resource.get("methods").and_then(Value::as_object) {
        for m in ms.values() {
            out.insert((
                m["httpMethod"].as_str().unwrap().to_owned(),
                m["path"].as_str().unwrap().to_owned(),
            ));
        }
    }
    if let Some(rs) = resource.get("resources").and_then(Value::as_object) {
        for r in rs.values() {
            methods(r, out);
        }
    }
}

#[test]
fn google_every_route_exists_in_the_official_discovery_document() {
    let text =
        std::fs::read_to_string(spec_path()).expect("the Directory spec is in shared/api-specs");
    let spec: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(spec["servicePath"], "");
    let mut official = BTreeSet::new();
    methods(&spec, &mut official);
    let mut served = BTreeSet::new();
    for (method, path) in GoogleTenant::ROUTES {
        assert!(
            official.contains(&((*method).to_owned(), (*path).to_owned())),
            "{method} {path} is not a method of the Directory discovery document"
        );
        assert!(
            served.insert((*method, *path)),
            "{method} {path} listed twice"
        );
    }
    assert_eq!(served.len(), 14);
}

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    fn new(t: &GoogleTenant) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: t.uri(),
            token: t.token().to_owned(),
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let mut r = self
            .http
            .request(
                method.parse().unwrap(),
                format!("{}/admin/directory/v1/{path}", self.base),
            )
            .header("authorization", format!("Bearer {}", self.token));
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let bytes = r.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            headers,
        )
    }
}

#[tokio::test]
async fn google_users_resolve_by_id_email_and_alias_only() {
    let t = GoogleTenant::start().await;
    let api = Api::new(&t);
    let id = t.add_user(NewUser {
        aliases: vec!["jd@example.com".into()],
        ..NewUser::active("jane@example.com")
    });
    assert!(id.bytes().all(|b| b.is_ascii_digit()));
    for key in [
        id.as_str(),
        "jane@example.com",
        "JANE@Example.com",
        "jd@example.com",
    ] {
        let (status, body, _) = api.call("GET", &format!("users/{key}"), None).await;
        assert_eq!(status, 200, "{key}");
        assert_eq!(body["id"], id.as_str());
        assert_eq!(body["primaryEmail"], "jane@example.com");
        assert_eq!(body["kind"], "admin#directory#user");
    }
    for key in ["*", "jane*", "%2A@example.com", "jane@example.co"] {
        let (status, body, _) = api.call("GET", &format!("users/{key}"), None).await;
        assert_eq!(status, 404, "{key}");
        assert_eq!(body["error"]["code"], 404);
        assert_eq!(body["error"]["errors"][0]["reason"], "notFound");
    }
}

#[tokio::test]
async fn google_patch_tokens_asps_codes_groups_change_state() {
    let t = GoogleTenant::start().await;
    t.add_org_unit("/Offboarded");
    let api = Api::new(&t);
    let g = t.add_group("eng@example.com", "Eng");
    let id = t.add_user(NewUser {
        groups: vec![g.clone()],
        tokens: vec![("c1.apps".into(), "App One".into())],
        asps: vec!["Mail".into()],
        backup_codes: 3,
        sessions: 1,
        ..NewUser::active("jane@example.com")
    });
    let u = format!("users/{id}");

    let (status, body, _) = api
        .call(
            "PATCH",
            &u,
            Some(json!({"suspended": true, "orgUnitPath": "/Offboarded"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (body["suspended"].as_bool(), body["orgUnitPath"].as_str()),
        (Some(true), Some("/Offboarded"))
    );
    let (status, body, _) = api
        .call("PATCH", &u, Some(json!({"orgUnitPath": "/Nope"})))
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["errors"][0]["reason"], "invalid");

    let (_, body, _) = api.call("GET", &format!("{u}/tokens"), None).await;
    assert_eq!(body["items"][0]["clientId"], "c1.apps");
    assert_eq!(
        api.call("DELETE", &format!("{u}/tokens/c1.apps"), None)
            .await
            .0,
        204
    );
    assert_eq!(
        api.call("DELETE", &format!("{u}/tokens/c1.apps"), None)
            .await
            .0,
        404
    );
    let (_, body, _) = api.call("GET", &format!("{u}/tokens"), None).await;
    assert!(
        body.get("items").is_none(),
        "Google omits empty items: {body}"
    );

    let (_, body, _) = api.call("GET", &format!("{u}/asps"), None).await;
    let code = body["items"][0]["codeId"].as_i64().unwrap();
    assert_eq!(
        api.call("DELETE", &format!("{u}/asps/{code}"), None)
            .await
            .0,
        204
    );
    assert_eq!(
        api.call("DELETE", &format!("{u}/asps/{code}"), None)
            .await
            .0,
        404
    );
    assert_eq!(
        api.call("DELETE", &format!("{u}/asps/abc"), None).await.0,
        400
    );

    let (_, body, _) = api
        .call("GET", &format!("{u}/verificationCodes"), None)
        .await;
    assert_eq!(body["items"].as_array().unwrap().len(), 3);
    assert_eq!(
        api.call("POST", &format!("{u}/verificationCodes/invalidate"), None)
            .await
            .0,
        204
    );
    assert_eq!(api.call("POST", &format!("{u}/signOut"), None).await.0, 204);
    let state = t.user(&id).unwrap();
    assert_eq!((state.backup_codes, state.sessions), (0, 0));

    let (_, body, _) = api.call("GET", &format!("groups?userKey={id}"), None).await;
    assert_eq!(body["groups"][0]["email"], "eng@example.com");
    let (status, _, _) = api
        .call(
            "GET",
            &format!("groups?userKey={id}&customer=my_customer"),
            None,
        )
        .await;
    assert_eq!(status, 400);
    let m = format!("groups/{g}/members/{id}");
    assert_eq!(api.call("GET", &m, None).await.1["role"], "MEMBER");
    let (status, body, _) = api
        .call(
            "POST",
            &format!("groups/{g}/members"),
            Some(json!({"email": "jane@example.com", "role": "OWNER"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["errors"][0]["reason"].as_str()),
        (409, Some("duplicate"))
    );
    assert_eq!(api.call("DELETE", &m, None).await.0, 204);
    assert_eq!(api.call("DELETE", &m, None).await.0, 404);
    let (status, body, _) = api
        .call(
            "POST",
            "groups/eng@example.com/members",
            Some(json!({"email": "jane@example.com", "role": "OWNER"})),
        )
        .await;
    assert_eq!((status, body["role"].as_str()), (200, Some("OWNER")));
    assert_eq!(t.user(&id).unwrap().groups[&g], "OWNER");

    assert_eq!(api.call("DELETE", &u, None).await.0, 204);
    assert_eq!(api.call("GET", &u, None).await.0, 404);
    assert!(t.user(&id).is_none());
}

#[tokio::test]
async fn google_throttles_with_403_or_429_and_authenticates() {
    let t = GoogleTenant::start_with("tok", GoogleLimits::default_quota().with_per_minute(1)).await;
    let api = Api::new(&t);
    let id = t.add_user(NewUser::active("jane@example.com"));
    assert_eq!(api.call("GET", &format!("users/{id}"), None).await.0, 200);
    let (status, body, headers) = api.call("GET", &format!("users/{id}"), None).await;
    assert_eq!(status, 403);
    assert_eq!(
        body["error"]["errors"][0]["reason"],
        "userRateLimitExceeded"
    );
    assert_eq!(body["error"]["errors"][0]["domain"], "usageLimits");
    assert!(headers.get("retry-after").is_none());

    t.set_limits(
        GoogleLimits::default_quota()
            .with_per_minute(1)
            .with_throttle(Throttle::TooMany429),
    );
    assert_eq!(api.call("GET", &format!("users/{id}"), None).await.0, 200);
    let (status, _, headers) = api.call("GET", &format!("users/{id}"), None).await;
    assert_eq!(status, 429);
    let after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&after));
    assert_eq!(t.rate_limited_count(), 2);

    let bad = Api {
        token: "wrong".into(),
        ..Api::new(&t)
    };
    let (status, body, _) = bad.call("GET", &format!("users/{id}"), None).await;
    assert_eq!(
        (status, body["error"]["errors"][0]["reason"].as_str()),
        (401, Some("authError"))
    );
    let recorded = t.requests();
    assert!(recorded.iter().all(|r| {
        r.headers
            .iter()
            .any(|(k, v)| k == "authorization" && v == "Bearer [REDACTED]")
    }));
}

#[tokio::test]
async fn google_faults_fail_next_and_error_rate() {
    let t = GoogleTenant::start().await;
    let api = Api::new(&t);
    let id = t.add_user(NewUser::active("jane@example.com"));
    t.fail_next(2, 503);
    assert_eq!(api.call("GET", &format!("users/{id}"), None).await.0, 503);
    let (status, body, _) = api.call("GET", &format!("users/{id}"), None).await;
    assert_eq!(
        (status, body["error"]["errors"][0]["reason"].as_str()),
        (503, Some("backendError"))
    );
    assert_eq!(api.call("GET", &format!("users/{id}"), None).await.0, 200);
    t.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    assert_eq!(api.call("GET", &format!("users/{id}"), None).await.0, 500);
    t.set_faults(Faults::default());
    t.clear_requests();
    assert_eq!(api.call("GET", &format!("users/{id}"), None).await.0, 200);
    assert_eq!(t.requests().len(), 1);
    assert_eq!(
        t.requests()[0].line(),
        format!("GET /admin/directory/v1/users/{id}")
    );
}

#[tokio::test]
async fn google_concurrency_limit_answers_quota_exceeded() {
    let t =
        GoogleTenant::start_with("tok", GoogleLimits::default_quota().with_concurrency(1)).await;
    t.set_faults(Faults {
        latency: std::time::Duration::from_millis(300),
        ..Faults::default()
    });
    let id = t.add_user(NewUser::active("jane@example.com"));
    let api = Api::new(&t);
    let path = format!("users/{id}");
    let (a, b) = tokio::join!(api.call("GET", &path, None), async {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        api.call("GET", &path, None).await
    });
    assert_eq!(a.0, 200);
    assert_eq!(b.0, 403);
    assert_eq!(b.1["error"]["errors"][0]["reason"], "quotaExceeded");
    assert_eq!(t.rate_limited_count(), 1);
}
