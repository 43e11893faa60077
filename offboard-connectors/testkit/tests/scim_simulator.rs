//! The simulated SCIM service provider against RFC 7643 §8.7's schema representations
//! (vendored in `specs/scim/`) and RFC 7644's protocol rules it claims to enforce.

use offboard_testkit::sim::scim::{ScimProvider, ScimSettings};
use offboard_testkit::sim::specs;
use serde_json::{Value, json};

/// The type RFC 7643 §2.3 gives a JSON value of an attribute of `kind`.
fn type_ok(kind: &str, v: &Value) -> bool {
    match kind {
        "string" | "reference" | "dateTime" | "binary" => v.is_string(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        "decimal" => v.is_number(),
        "complex" => v.is_object(),
        _ => false,
    }
}

/// Checks every attribute of `resource` against `attributes` (a schema's `attributes`): it is
/// defined, of the schema's type, an array exactly when multi-valued, and so on into
/// sub-attributes. Returns the faults.
fn check(resource: &Value, attributes: &[Value], at: &str, faults: &mut Vec<String>) {
    let Some(object) = resource.as_object() else {
        faults.push(format!("{at} is not an object"));
        return;
    };
    for (key, value) in object {
        let Some(def) = attributes
            .iter()
            .find(|a| a["name"].as_str() == Some(key.as_str()))
        else {
            faults.push(format!("{at}.{key} is not defined by the schema"));
            continue;
        };
        let kind = def["type"].as_str().unwrap_or_default();
        let values: Vec<&Value> = if def["multiValued"] == json!(true) {
            match value.as_array() {
                Some(a) => a.iter().collect(),
                None => {
                    faults.push(format!("{at}.{key} is multi-valued but not an array"));
                    continue;
                }
            }
        } else {
            vec![value]
        };
        for v in values {
            if !type_ok(kind, v) {
                faults.push(format!("{at}.{key} is not a {kind}: {v}"));
            } else if kind == "complex" {
                let subs = def["subAttributes"].as_array().cloned().unwrap_or_default();
                check(v, &subs, &format!("{at}.{key}"), faults);
            }
        }
    }
}

async fn get(sp: &ScimProvider, path: &str, token: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(format!("{}{path}", sp.base_url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Guards the simulator's fidelity to RFC 7643: every attribute of its `/Users` resources
/// (besides the common `schemas`, `id`, `externalId`, `meta`) is one the vendored User schema defines, with
/// the schema's type and multi-valuedness (`emails`, `groups` with their sub-attributes); its
/// `/Groups` resources likewise against the Group schema; its `/ServiceProviderConfig` against
/// the ServiceProviderConfig schema.
#[tokio::test]
async fn resources_match_the_rfc_7643_schemas() {
    let sp = ScimProvider::start(ScimSettings::default()).await;
    let user = sp.add_user("jane@example.com", &["jane@example.com", "j@example.com"]);
    sp.set_external_id(&user, "hr-42");
    let group = sp.add_group("Engineering");
    sp.add_member(&group, &user);
    let token = sp.token().to_owned();
    let mut faults = Vec::new();
    for (path, schema) in [
        (format!("/Users/{user}"), "User.json"),
        (format!("/Groups/{group}"), "Group.json"),
        (
            "/ServiceProviderConfig".to_owned(),
            "ServiceProviderConfig.json",
        ),
    ] {
        let (status, mut body) = get(&sp, &path, &token).await;
        assert_eq!(status, 200, "{path}");
        let schema = specs::json(&format!("scim/rfc7643-section-8.7/{schema}"));
        let attributes = schema["attributes"].as_array().unwrap().clone();
        let object = body.as_object_mut().unwrap();
        assert!(
            object["schemas"]
                .as_array()
                .unwrap()
                .contains(&schema["id"]),
            "{path}"
        );
        // Common attributes (RFC 7643 §3.1) are in no resource's schema.
        for common in ["schemas", "id", "externalId", "meta"] {
            object.remove(common);
        }
        // RFC 7643 §5 requires `etag` and `authenticationSchemes.type`, which the §8.7.2
        // representation leaves out: checked by hand.
        if path == "/ServiceProviderConfig" {
            assert_eq!(object.remove("etag").unwrap()["supported"], json!(true));
            for scheme in object["authenticationSchemes"].as_array_mut().unwrap() {
                let kind = scheme.as_object_mut().unwrap().remove("type").unwrap();
                assert!(kind.is_string());
            }
        }
        check(&body, &attributes, &path, &mut faults);
    }
    assert!(faults.is_empty(), "{faults:#?}");
    // The attributes the connector reads are there.
    let (_, u) = get(&sp, &format!("/Users/{user}"), &token).await;
    for key in ["userName", "emails", "active", "groups", "externalId"] {
        assert!(u.get(key).is_some(), "{key}");
    }
}

/// Guards the protocol strictness: unsupported filters are 400 `invalidFilter` in the SCIM
/// error schema, a wrong token is a 401, paging honours `startIndex`/`count`, and a stale
/// `If-Match` is a 412.
#[tokio::test]
async fn errors_paging_and_etags_follow_rfc_7644() {
    let sp = ScimProvider::start(ScimSettings {
        max_results: 2,
        ..ScimSettings::default()
    })
    .await;
    let token = sp.token().to_owned();
    for n in 0..3 {
        sp.add_user(&format!("u{n}@example.com"), &[]);
    }
    for filter in [
        r#"userName sw "u""#,
        r#"userName eq "a" or userName eq "b""#,
        r#"title eq "x""#,
        r#"userName eq "unterminated"#,
    ] {
        let url = format!(
            "/Users?filter={}",
            url::form_urlencoded::byte_serialize(filter.as_bytes()).collect::<String>()
        );
        let (status, body) = get(&sp, &url, &token).await;
        assert_eq!(status, 400, "{filter}");
        assert_eq!(body["scimType"], "invalidFilter", "{filter}");
        assert_eq!(body["status"], "400");
        assert_eq!(
            body["schemas"],
            json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
        );
    }
    let (status, _) = get(&sp, "/Users", "wrong").await;
    assert_eq!(status, 401);
    let (_, page) = get(&sp, "/Users?startIndex=3&count=5", &token).await;
    assert_eq!(page["totalResults"], 3);
    assert_eq!(page["itemsPerPage"], 1);
    assert_eq!(page["startIndex"], 3);
    let (_, page) = get(&sp, "/Users", &token).await;
    assert_eq!(page["itemsPerPage"], 2, "count capped at maxResults");

    let id = sp.add_user("e@example.com", &[]);
    let r = reqwest::Client::new()
        .patch(format!("{}/Users/{id}", sp.base_url()))
        .bearer_auth(&token)
        .header("if-match", "W/\"999\"")
        .json(&json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "active", "value": false}],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 412);
    assert!(sp.user(&id).unwrap().active);
}

/// Guards the simulator's token endpoint against RFC 6749 §4.4 and §2.3: a token is issued
/// only for `grant_type=client_credentials` with the client authenticated by exactly one
/// method (HTTP basic with form-urlencoded parts, or `client_id`/`client_secret` in the body);
/// two methods at once are a 400 `invalid_request`, a wrong secret a 401 `invalid_client`,
/// another grant a 400 `unsupported_grant_type`, a GET a 405; the SCIM routes accept only
/// issued tokens, until `expire_tokens`.
#[tokio::test]
async fn oauth_token_endpoint_follows_rfc_6749() {
    use base64::Engine as _;
    let sp = ScimProvider::start_oauth(ScimSettings::default(), "c:1", "s&ecret").await;
    let http = reqwest::Client::new();
    let basic = |id: &str, secret: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
        )
    };
    let post = |auth: Option<String>, form: &[(&str, &str)]| {
        let mut r = http.post(sp.token_url()).form(form);
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        async move {
            let r = r.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let grant = [("grant_type", "client_credentials")];
    let (status, body) = post(Some(basic("c%3A1", "s%26ecret")), &grant).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], ScimProvider::TOKEN_LIFETIME_SECS);
    let token = body["access_token"].as_str().unwrap().to_owned();
    let in_body = [
        ("grant_type", "client_credentials"),
        ("client_id", "c:1"),
        ("client_secret", "s&ecret"),
    ];
    assert_eq!(post(None, &in_body).await.0, 200);
    assert_eq!(sp.tokens_issued(), 2);

    let both = post(Some(basic("c%3A1", "s%26ecret")), &in_body).await;
    assert_eq!(both, (400, json!({"error": "invalid_request"})));
    let wrong = post(Some(basic("c%3A1", "nope")), &grant).await;
    assert_eq!(wrong, (401, json!({"error": "invalid_client"})));
    let none = post(None, &grant).await;
    assert_eq!(none, (401, json!({"error": "invalid_client"})));
    let other_grant = post(
        Some(basic("c%3A1", "s%26ecret")),
        &[("grant_type", "password")],
    )
    .await;
    assert_eq!(
        other_grant,
        (400, json!({"error": "unsupported_grant_type"}))
    );
    let get = http.get(sp.token_url()).send().await.unwrap();
    assert_eq!(get.status().as_u16(), 405);
    assert_eq!(sp.tokens_issued(), 2);

    assert_eq!(get_status(&sp, &token).await, 200);
    assert_eq!(get_status(&sp, "made-up").await, 401);
    sp.expire_tokens();
    assert_eq!(get_status(&sp, &token).await, 401);
}

async fn get_status(sp: &ScimProvider, token: &str) -> u16 {
    get(sp, "/ServiceProviderConfig", token).await.0
}
