//! The simulated ADP Workforce Now tenant: its routes are in the vendored description, and it
//! refuses what ADP refuses.

use offboard_testkit::sim::adp::{AdpTenant, NewWorker};

/// A path template with every `{parameter}` made `{}`.
fn shape(path: &str) -> String {
    path.split('/')
        .map(|s| if s.starts_with('{') { "{}" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn adp_every_route_exists_in_the_vendored_description() {
    let text = offboard_testkit::sim::specs::read("adp/adp-wfn.offboarding.yaml");
    let spec: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let paths = spec["paths"].as_mapping().unwrap();
    for (method, path) in AdpTenant::ROUTES {
        let found = paths
            .iter()
            .find(|(k, _)| shape(k.as_str().unwrap()) == shape(path));
        let op = found.map(|(_, v)| &v[method.to_ascii_lowercase().as_str()]);
        assert!(
            op.is_some_and(|o| o.is_mapping()),
            "{method} {path} is not described"
        );
    }
}

#[tokio::test]
async fn adp_refuses_what_adp_refuses() {
    let adp = AdpTenant::start().await;
    let ada = adp.hire(NewWorker {
        employee_id: "E1".into(),
        given_name: "Ada".into(),
        family_name: "Tester".into(),
        emails: vec!["ada@example.com".into()],
        manager: None,
    });
    let http = reqwest::Client::new();
    let (id, secret) = adp.client();
    let token_url = format!("{}/auth/oauth/v2/token", adp.uri());
    let token = |pass: &str, grant: &str| {
        http.post(&token_url)
            .basic_auth(id, Some(pass))
            .form(&[("grant_type", grant)])
            .send()
    };
    assert_eq!(
        token("nope", "client_credentials").await.unwrap().status(),
        401
    );
    assert_eq!(token(secret, "password").await.unwrap().status(), 400);
    let ok: serde_json::Value = token(secret, "client_credentials")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = ok["access_token"].as_str().unwrap().to_owned();
    assert_eq!(ok["expires_in"], 3600);
    let get = |q: &str| {
        http.get(format!("{}/hr/v2/workers{q}", adp.uri()))
            .bearer_auth(&access)
            .send()
    };
    for bad in [
        "?$top=0",
        "?$top=101",
        "?$skip=-1",
        "?$top=x",
        "?$count=true",
        "?top=5",
    ] {
        assert_eq!(get(bad).await.unwrap().status(), 400, "{bad}");
    }
    let page: serde_json::Value = get("?$top=1&$skip=0").await.unwrap().json().await.unwrap();
    assert_eq!(page["workers"][0]["associateOID"], ada.as_str());
    assert_eq!(
        page["workers"][0]["workerStatus"]["statusCode"]["codeValue"],
        "Active"
    );
    assert_eq!(
        get("?$top=1&$skip=1").await.unwrap().status(),
        204,
        "past the end"
    );
    assert_eq!(get("/nobody").await.unwrap().status(), 404);
    let anon = http
        .get(format!("{}/hr/v2/workers", adp.uri()))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 401);
    let del = http
        .delete(format!("{}/hr/v2/workers/{ada}", adp.uri()))
        .bearer_auth(&access)
        .send();
    assert_eq!(del.await.unwrap().status(), 405);
    adp.expire_tokens();
    assert_eq!(get("").await.unwrap().status(), 401, "an expired token");
    adp.set_per_minute(0);
    let throttled = get("").await.unwrap();
    assert_eq!(throttled.status(), 429);
    assert!(throttled.headers().get("retry-after").is_some());
    assert!(!format!("{:?}", adp.requests()).contains(&access));
}
