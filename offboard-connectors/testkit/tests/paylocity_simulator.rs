//! The simulated Paylocity company: routes match Paylocity's description, the token
//! endpoint's refusals, paging and the API's refusals.

use std::collections::BTreeSet;

use offboard_testkit::sim::paylocity::{NewEmployee, PaylocityTenant};
use serde_json::Value;

#[test]
fn paylocity_every_route_exists_in_the_official_description() {
    let text = offboard_testkit::sim::specs::read("paylocity/paylocity-v2.offboarding.yaml");
    let spec: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let paths = spec["paths"].as_mapping().unwrap();
    let mut served = BTreeSet::new();
    for (method, path) in PaylocityTenant::ROUTES {
        let item = paths
            .get(serde_yaml::Value::from(*path))
            .unwrap_or_else(|| panic!("{path} is not in Paylocity's description"));
        let op = item.get(serde_yaml::Value::from(method.to_ascii_lowercase()));
        assert!(op.is_some(), "{method} {path} is not in the description");
        assert!(served.insert((*method, *path)), "{method} {path} twice");
    }
    let scheme = &spec["components"]["securitySchemes"]["paylocity_auth"]["flows"];
    assert!(
        scheme["clientCredentials"]["scopes"]["WebLinkAPI"].is_string(),
        "the client credentials flow with scope WebLinkAPI"
    );
    let list = &paths[serde_yaml::Value::from(PaylocityTenant::ROUTES[0].1)]["get"];
    let params: BTreeSet<&str> = list["parameters"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter(|p| p["in"] == "query")
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        params,
        BTreeSet::from(["pagesize", "pagenumber", "includetotalcount"]),
        "the query parameters the simulator accepts"
    );
}

async fn token(t: &PaylocityTenant, user: &str, secret: &str, form: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(t.token_url())
        .basic_auth(user, Some(secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_owned())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn get(t: &PaylocityTenant, token: &str, path: &str) -> (u16, Value, Option<String>) {
    let r = reqwest::Client::new()
        .get(format!("{}{path}", t.api_base()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let total = r
        .headers()
        .get("x-pcty-total-count")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        r.status().as_u16(),
        r.json().await.unwrap_or(Value::Null),
        total,
    )
}

#[tokio::test]
async fn paylocity_tokens_pages_and_refusals() {
    let t = PaylocityTenant::start().await;
    for i in 0..5 {
        t.hire(NewEmployee::new(
            &format!("E{i}"),
            &format!("e{i}@example.com"),
            "E",
            &i.to_string(),
        ));
    }
    let good = "grant_type=client_credentials&scope=WebLinkAPI";
    let (id, secret) = (t.client_id().to_owned(), t.client_secret().to_owned());
    assert_eq!(
        token(&t, &id, "wrong", good).await.1["error"],
        "invalid_client"
    );
    assert_eq!(
        token(&t, &id, &secret, "grant_type=password&scope=WebLinkAPI")
            .await
            .1["error"],
        "unsupported_grant_type"
    );
    assert_eq!(
        token(&t, &id, &secret, "grant_type=client_credentials&scope=x")
            .await
            .1["error"],
        "invalid_scope"
    );
    let (status, body) = token(&t, &id, &secret, good).await;
    assert_eq!((status, body["token_type"].as_str()), (200, Some("Bearer")));
    assert_eq!(body["expires_in"], 3600);
    let bearer = body["access_token"].as_str().unwrap().to_owned();

    let company = t.company().to_owned();
    let list = format!("/v2/companies/{company}/employees/");
    assert_eq!(get(&t, "nope", &list).await.0, 401);
    let (status, page, total) = get(&t, &bearer, &format!("{list}?pagesize=2&pagenumber=2")).await;
    assert_eq!(status, 200);
    assert_eq!(page[0]["employeeId"], "E4", "the third page of two");
    assert_eq!(page[0]["statusTypeCode"], "A");
    assert_eq!(total.as_deref(), Some("5"));
    for bad in [
        "pagesize=0",
        "pagesize=5001",
        "pagesize=x",
        "pagenumber=-1",
        "limit=5",
    ] {
        let (status, body, _) = get(&t, &bearer, &format!("{list}?{bad}")).await;
        assert_eq!(status, 400, "{bad}");
        assert!(body[0]["message"].is_string(), "{bad}: {body}");
    }
    let (status, _, total) = get(
        &t,
        &bearer,
        &format!("/v2/companies/{company}/employees?includetotalcount=false"),
    )
    .await;
    assert_eq!((status, total), (200, None), "without the slash, no count");
    assert_eq!(
        get(&t, &bearer, "/v2/companies/other/employees/").await.0,
        403
    );
    let (status, body, _) = get(
        &t,
        &bearer,
        &format!("/v2/companies/{company}/employees/E9"),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body[0]["message"], "The employee does not exist.");

    t.terminate("E1", chrono::NaiveDate::from_ymd_opt(2026, 11, 3).unwrap());
    let (_, e, _) = get(
        &t,
        &bearer,
        &format!("/v2/companies/{company}/employees/E1"),
    )
    .await;
    assert_eq!(e[0]["status"]["employeeStatus"], "T");
    assert_eq!(e[0]["status"]["effectiveDate"], "2026-11-03T00:00:00");
    assert_eq!(e[0]["workAddress"]["emailAddress"], "e1@example.com");

    t.expire_tokens();
    assert_eq!(get(&t, &bearer, &list).await.0, 401, "an expired token");
    t.fail_next(1, 429);
    let r = reqwest::Client::new()
        .get(t.token_url())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(r.headers()["retry-after"], "30");
    assert!(
        !format!("{:?}", t.requests()).contains(&secret),
        "no secret recorded"
    );
}
