//! The simulated JumpCloud organisation: routes and parameters match JumpCloud's V1
//! description, authentication, paging, strictness, throttling and the recording.

use offboard_testkit::sim::jumpcloud::{JumpCloudTenant, NewSystemUser};
use serde_json::Value;

fn spec() -> Value {
    offboard_testkit::sim::specs::json("jumpcloud/jumpcloud-v1.offboarding.json")
}

/// The description's parameter names of one operation (`$ref`s resolved).
fn parameters(spec: &Value, path: &str, method: &str) -> Vec<String> {
    let op = &spec["paths"][path][method];
    op["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| match p["$ref"].as_str() {
            Some(r) => {
                let name = r.trim_start_matches("#/parameters/");
                spec["parameters"][name]["name"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            }
            None => p["name"].as_str().unwrap().to_owned(),
        })
        .collect()
}

#[test]
fn jumpcloud_every_route_and_parameter_is_in_the_official_description() {
    let spec = spec();
    let base = spec["basePath"].as_str().unwrap().trim_end_matches('/');
    assert_eq!(base, "/api");
    for (method, route) in JumpCloudTenant::ROUTES {
        let path = route.strip_prefix(base).unwrap();
        let op = &spec["paths"][path][method.to_ascii_lowercase()];
        assert!(
            op.is_object(),
            "{method} {route} is not in JumpCloud's description"
        );
        assert_eq!(op["security"][0]["x-api-key"], serde_json::json!([]));
    }
    assert_eq!(
        spec["securityDefinitions"]["x-api-key"]["name"],
        "x-api-key"
    );
    let listed = parameters(&spec, "/systemusers", "get");
    for p in JumpCloudTenant::LIST_PARAMS {
        assert!(
            listed.iter().any(|l| l == p),
            "{p} is not a parameter: {listed:?}"
        );
    }
    let user = &spec["definitions"]["systemuserreturn"]["properties"];
    let states: Vec<&str> = user["state"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(states, JumpCloudTenant::STATES);
    for field in JumpCloudTenant::FILTERABLE
        .iter()
        .chain(JumpCloudTenant::SORTABLE)
    {
        assert!(
            user[field].is_object(),
            "{field} is not a system user field"
        );
    }
}

async fn call(
    jc: &JumpCloudTenant,
    path: &str,
    key: &str,
    method: &str,
) -> (u16, Value, Option<String>) {
    let r = reqwest::Client::new()
        .request(method.parse().unwrap(), format!("{}{path}", jc.uri()))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, r.json().await.unwrap_or(Value::Null), retry)
}

#[tokio::test]
async fn served_users_have_the_described_fields_and_pages() {
    let jc = JumpCloudTenant::start().await;
    let ids: Vec<String> = (0..5)
        .map(|i| {
            jc.add_user(NewSystemUser::active(
                &format!("u{i}"),
                &format!("u{i}@example.com"),
            ))
        })
        .collect();
    let key = jc.api_key().to_owned();
    let spec = spec();
    let described = spec["definitions"]["systemuserreturn"]["properties"]
        .as_object()
        .unwrap();
    let (status, body, _) =
        call(&jc, "/api/systemusers?limit=2&skip=3&sort=_id", &key, "GET").await;
    assert_eq!(status, 200);
    assert_eq!(body["totalCount"], 5);
    let page: Vec<&str> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["_id"].as_str().unwrap())
        .collect();
    assert_eq!(page, [ids[3].as_str(), ids[4].as_str()]);
    for k in body["results"][0].as_object().unwrap().keys() {
        assert!(described.contains_key(k), "{k} is not a described field");
    }
    let (_, body, _) = call(
        &jc,
        "/api/systemusers?sort=-_id&fields=email&filter=state:$eq:ACTIVATED",
        &key,
        "GET",
    )
    .await;
    assert_eq!(
        body["results"][0]["_id"],
        ids[4].as_str(),
        "default limit 10, descending"
    );
    assert_eq!(body["results"].as_array().unwrap().len(), 5);
    let first = body["results"][0].as_object().unwrap();
    assert_eq!(
        first.keys().collect::<Vec<_>>(),
        ["_id", "email"],
        "projected"
    );
    jc.set_state(&ids[0], "SUSPENDED");
    let (_, body, _) = call(
        &jc,
        "/api/systemusers?filter=suspended:$eq:true",
        &key,
        "GET",
    )
    .await;
    assert_eq!(body["totalCount"], 1);
    assert_eq!(jc.user(&ids[0]).unwrap()["state"], "SUSPENDED");
}

#[tokio::test]
async fn refusals_are_jumpclouds() {
    let jc = JumpCloudTenant::start().await;
    let id = jc.add_user(NewSystemUser::active("a", "a@example.com"));
    let key = jc.api_key().to_owned();
    for (path, k, method, want) in [
        ("/api/systemusers", "wrong", "GET", 401),
        ("/api/systemusers", "", "GET", 401),
        ("/api/systemusers?limit=101", key.as_str(), "GET", 400),
        ("/api/systemusers?limit=0", key.as_str(), "GET", 400),
        ("/api/systemusers?skip=-1", key.as_str(), "GET", 400),
        ("/api/systemusers?sort=password", key.as_str(), "GET", 400),
        (
            "/api/systemusers?filter=state:$regex:A",
            key.as_str(),
            "GET",
            400,
        ),
        ("/api/systemusers?filter=state", key.as_str(), "GET", 400),
        ("/api/systemusers?page=2", key.as_str(), "GET", 400),
        ("/api/systemusers?limit=1&limit=2", key.as_str(), "GET", 400),
        ("/api/systemusers?search=x", key.as_str(), "GET", 400),
        (
            "/api/systemusers/650000000000000000000999",
            key.as_str(),
            "GET",
            404,
        ),
        ("/api/systemusers/not-an-id", key.as_str(), "GET", 400),
        ("/api/systemusers", key.as_str(), "DELETE", 405),
        ("/api/users", key.as_str(), "GET", 404),
    ] {
        let (status, body, _) = call(&jc, path, k, method).await;
        assert_eq!(status, want, "{method} {path}: {body}");
        assert!(body["message"].is_string(), "{body}");
    }
    let (status, body, _) = call(&jc, &format!("/api/systemusers/{id}"), &key, "GET").await;
    assert_eq!(
        (status, body["email"].as_str()),
        (200, Some("a@example.com"))
    );
    assert!(jc.remove(&id) && !jc.remove(&id));
    let recorded = format!("{:?}", jc.requests());
    assert!(!recorded.contains(&key), "the key is never recorded");
    assert_eq!(jc.served(), 16);
}

#[tokio::test]
async fn throttling_and_injected_failures() {
    let jc = JumpCloudTenant::start().await;
    let key = jc.api_key().to_owned();
    jc.fail_next(1, 503);
    assert_eq!(call(&jc, "/api/systemusers", &key, "GET").await.0, 503);
    jc.set_rate_limit(Some(2));
    assert_eq!(call(&jc, "/api/systemusers", &key, "GET").await.0, 200);
    assert_eq!(call(&jc, "/api/systemusers", &key, "GET").await.0, 200);
    let (status, body, retry) = call(&jc, "/api/systemusers", &key, "GET").await;
    assert_eq!(
        (status, body["message"].as_str()),
        (429, Some("Too Many Requests"))
    );
    let wait: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
}
