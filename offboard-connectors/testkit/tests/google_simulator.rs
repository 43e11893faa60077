//! The simulated Google Workspace tenant: routes match the official discovery document, state
//! changes, error bodies, throttling, faults and the recording.

use std::collections::{BTreeMap, BTreeSet};

use offboard_testkit::sim::google::{Faults, GoogleLimits, GoogleTenant, NewUser, Throttle};
use serde_json::{Value, json};

fn spec(file: &str) -> Value {
    offboard_testkit::sim::specs::json(&format!("google/{file}"))
}

/// Every method of a discovery document: (HTTP method, path) → its `scopes`.
fn methods(resource: &Value, out: &mut BTreeMap<(String, String), BTreeSet<String>>) {
    if let Some(ms) = resource.get("methods").and_then(Value::as_object) {
        for m in ms.values() {
            let scopes = m["scopes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_owned())
                .collect();
            out.insert(
                (
                    m["httpMethod"].as_str().unwrap().to_owned(),
                    m["path"].as_str().unwrap().to_owned(),
                ),
                scopes,
            );
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
    // Each API by its path prefix: (prefix, discovery document, its rootUrl).
    let apis = [
        (
            "admin/directory/v1/",
            "admin-directory_v1.offboarding.json",
            "https://admin.googleapis.com/",
        ),
        (
            "admin/datatransfer/v1/",
            "admin-datatransfer_v1.json",
            "https://admin.googleapis.com/",
        ),
        (
            "apps/licensing/v1/",
            "licensing_v1.json",
            "https://licensing.googleapis.com/",
        ),
    ];
    let mut official = BTreeMap::new();
    for (prefix, file, root) in apis {
        let spec = spec(file);
        assert_eq!(spec["servicePath"], "", "{file}");
        assert_eq!(spec["rootUrl"], root, "{file}");
        let mut m = BTreeMap::new();
        methods(&spec, &mut m);
        assert!(m.keys().all(|(_, p)| p.starts_with(prefix)), "{file}");
        official.insert(prefix, m);
    }
    let mut served = BTreeSet::new();
    for (method, path, scopes) in GoogleTenant::ROUTES {
        let (prefix, file) = apis
            .iter()
            .find(|(prefix, ..)| path.starts_with(prefix))
            .map(|(p, f, _)| (*p, *f))
            .unwrap_or_else(|| panic!("{method} {path} belongs to no Google API kept"));
        let official_scopes = official[prefix]
            .get(&((*method).to_owned(), (*path).to_owned()))
            .unwrap_or_else(|| panic!("{method} {path} is not a method of {file}"));
        // The scopes the simulator demands are exactly the method's `scopes` in the document.
        let demanded: BTreeSet<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(
            &demanded, official_scopes,
            "{method} {path}: scopes of {file}"
        );
        assert!(
            served.insert((*method, *path)),
            "{method} {path} listed twice"
        );
    }
    assert_eq!(served.len(), 24);
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
        self.raw(method, &format!("admin/directory/v1/{path}"), body)
            .await
    }

    /// A call to a path under the root URL.
    async fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let mut r = self
            .http
            .request(method.parse().unwrap(), format!("{}/{path}", self.base))
            .header("authorization", format!("Bearer {}", self.token));
        match body {
            Some(b) => r = r.json(&b),
            None if matches!(method, "POST" | "PUT" | "PATCH") => {
                r = r.header("content-length", "0");
            }
            None => {}
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

    // Backup codes are managed only while the user is active.
    t.set_suspended(&id, false);
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

#[tokio::test]
async fn google_users_list_pages_filters_and_shows_deleted() {
    let t = GoogleTenant::start().await;
    t.add_org_unit("/Eng");
    t.add_org_unit("/Eng/Sub");
    let api = Api::new(&t);
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(t.add_user(NewUser {
            org_unit_path: if i < 2 { "/Eng/Sub".into() } else { "/".into() },
            is_admin: i == 4,
            ..NewUser::active(format!("u{i}@example.com"))
        }));
    }
    t.set_suspended(&ids[1], true);
    t.set_archived(&ids[2], true);

    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = "users?customer=my_customer&maxResults=2".to_owned();
        if let Some(tok) = &token {
            path.push_str(&format!("&pageToken={tok}"));
        }
        let (status, body, _) = api.call("GET", &path, None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["kind"], "admin#directory#users");
        pages += 1;
        for u in body["users"].as_array().unwrap() {
            seen.push(u["id"].as_str().unwrap().to_owned());
            assert_eq!(u["kind"], "admin#directory#user");
            assert!(u["suspended"].is_boolean() && u["archived"].is_boolean());
        }
        match body.get("nextPageToken").and_then(Value::as_str) {
            Some(tok) => token = Some(tok.to_owned()),
            None => break,
        }
    }
    assert_eq!((seen, pages), (ids.clone(), 3));

    let (_, body, _) = api
        .call(
            "GET",
            "users?customer=my_customer&query=isSuspended%3Dtrue",
            None,
        )
        .await;
    assert_eq!(body["users"][0]["id"], ids[1].as_str());
    assert_eq!(body["users"].as_array().unwrap().len(), 1);
    let (_, body, _) = api
        .call(
            "GET",
            "users?customer=my_customer&query=orgUnitPath%3D%27%2FEng%27%20isAdmin%3Dfalse",
            None,
        )
        .await;
    let got = user_ids(&body);
    assert_eq!(got, [ids[0].as_str(), ids[1].as_str()]);
    let (_, body, _) = api
        .call(
            "GET",
            "users?customer=my_customer&query=email%3Au3%40example.com",
            None,
        )
        .await;
    assert_eq!(body["users"][0]["primaryEmail"], "u3@example.com");
    assert_eq!(body["users"][0]["archived"], false);
    let (_, body, _) = api
        .call("GET", "users?domain=example.com&query=isAdmin%3Dtrue", None)
        .await;
    assert_eq!(body["users"][0]["isAdmin"], true);
    for bad in [
        "users",
        "users?customer=my_customer&domain=example.com",
        "users?customer=my_customer&query=name%3Dx",
        "users?customer=my_customer&maxResults=501",
        "users?customer=my_customer&query=email%3A%27open",
    ] {
        assert_eq!(api.call("GET", bad, None).await.0, 400, "{bad}");
    }

    t.remove_user(&ids[0]);
    assert_eq!(
        api.call("DELETE", &format!("users/{}", ids[3]), None)
            .await
            .0,
        204
    );
    let (_, body, _) = api.call("GET", "users?customer=my_customer", None).await;
    assert_eq!(body["users"].as_array().unwrap().len(), 3);
    let (_, body, _) = api
        .call("GET", "users?customer=my_customer&showDeleted=true", None)
        .await;
    let got = user_ids(&body);
    assert_eq!(got, [ids[0].as_str(), ids[3].as_str()]);
    let (_, body, _) = api
        .call(
            "GET",
            "users?customer=my_customer&query=email%3Anobody%40example.com",
            None,
        )
        .await;
    assert!(body.get("users").is_none(), "{body}");
}

#[tokio::test]
async fn google_password_patch_is_checked_and_counted() {
    let t = GoogleTenant::start().await;
    let api = Api::new(&t);
    let id = t.add_user(NewUser::active("jane@example.com"));
    let u = format!("users/{id}");
    for bad in [
        json!({"password": "short"}),
        json!({"password": "x".repeat(101)}),
        json!({"password": "pässwört-lang"}),
        json!({"password": "longenough", "hashFunction": "SHA-256"}),
        json!({"changePasswordAtNextLogin": "yes"}),
    ] {
        assert_eq!(
            api.call("PATCH", &u, Some(bad.clone())).await.0,
            400,
            "{bad}"
        );
    }
    assert_eq!(t.user(&id).unwrap().password_resets, 0);
    let (status, body, _) = api
        .call(
            "PATCH",
            &u,
            Some(json!({"password": "Correct-Horse-42", "changePasswordAtNextLogin": true})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["changePasswordAtNextLogin"], true);
    assert!(body.get("password").is_none(), "never echoed: {body}");
    let state = t.user(&id).unwrap();
    assert_eq!(
        (state.password_resets, state.change_password_at_next_login),
        (1, true)
    );
}

#[tokio::test]
async fn google_transfers_progress_and_insert_is_not_idempotent() {
    let t = GoogleTenant::start().await;
    let api = Api::new(&t);
    let old = t.add_user(NewUser::active("jane@example.com"));
    let new = t.add_user(NewUser::active("boss@example.com"));
    let (status, body, _) = api
        .raw(
            "GET",
            "admin/datatransfer/v1/applications?customerId=my_customer",
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["kind"], "admin#datatransfer#applicationsList");
    let apps = body["applications"].as_array().unwrap();
    let drive = apps.iter().find(|a| a["name"] == "Drive and Docs").unwrap();
    assert_eq!(drive["transferParams"][0]["key"], "PRIVACY_LEVEL");
    let drive_id = drive["id"].as_str().unwrap().to_owned();
    let transfer = json!({
        "oldOwnerUserId": old,
        "newOwnerUserId": new,
        "applicationDataTransfers": [{"applicationId": drive_id}],
    });
    for bad in [
        json!({"oldOwnerUserId": "jane@example.com", "newOwnerUserId": new, "applicationDataTransfers": [{"applicationId": drive_id}]}),
        json!({"oldOwnerUserId": old, "newOwnerUserId": old, "applicationDataTransfers": [{"applicationId": drive_id}]}),
        json!({"oldOwnerUserId": old, "newOwnerUserId": new, "applicationDataTransfers": [{"applicationId": "55656082996"}]}),
        json!({"oldOwnerUserId": old, "newOwnerUserId": new, "applicationDataTransfers": []}),
    ] {
        let (status, _, _) = api
            .raw("POST", "admin/datatransfer/v1/transfers", Some(bad.clone()))
            .await;
        assert_eq!(status, 400, "{bad}");
    }
    assert!(t.transfers().is_empty());
    let (status, body, _) = api
        .raw(
            "POST",
            "admin/datatransfer/v1/transfers",
            Some(transfer.clone()),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["overallTransferStatusCode"], "new");
    let tid = body["id"].as_str().unwrap().to_owned();
    let list = format!("admin/datatransfer/v1/transfers?oldOwnerUserId={old}");
    let (_, body, _) = api.raw("GET", &list, None).await;
    assert_eq!(body["dataTransfers"][0]["id"], tid.as_str());
    let get = format!("admin/datatransfer/v1/transfers/{tid}");
    let (_, body, _) = api.raw("GET", &get, None).await;
    assert_eq!(body["overallTransferStatusCode"], "inProgress");
    assert_eq!(
        body["applicationDataTransfers"][0]["applicationTransferStatus"],
        "inProgress"
    );
    let (_, body, _) = api.raw("GET", &get, None).await;
    assert_eq!(body["overallTransferStatusCode"], "completed");
    let (_, body, _) = api
        .raw("GET", &format!("{list}&status=completed"), None)
        .await;
    assert_eq!(body["dataTransfers"].as_array().unwrap().len(), 1);
    let (_, body, _) = api
        .raw("GET", &format!("{list}&status=inProgress"), None)
        .await;
    assert!(body.get("dataTransfers").is_none(), "{body}");
    // A second insert is a second transfer.
    api.raw("POST", "admin/datatransfer/v1/transfers", Some(transfer))
        .await;
    let states = t.transfers();
    assert_eq!(states.len(), 2);
    assert_eq!(
        (states[0].status.as_str(), states[1].status.as_str()),
        ("completed", "new")
    );
    assert_eq!(states[0].applications, [drive_id]);
    assert_eq!(
        api.raw("GET", "admin/datatransfer/v1/transfers/nope", None)
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn google_licences_get_delete_insert() {
    let t = GoogleTenant::start().await;
    let api = Api::new(&t);
    let id = t.add_user(NewUser {
        licences: vec![("Google-Apps".into(), "1010020027".into())],
        ..NewUser::active("jane@example.com")
    });
    let path = "apps/licensing/v1/product/Google-Apps/sku/1010020027/user/jane@example.com";
    let (status, body, _) = api.raw("GET", path, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        (body["kind"].as_str(), body["userId"].as_str()),
        (
            Some("licensing#licenseAssignment"),
            Some("jane@example.com")
        )
    );
    assert_eq!(
        api.raw(
            "GET",
            "apps/licensing/v1/product/Google-Apps/sku/999/user/jane@example.com",
            None
        )
        .await
        .0,
        400
    );
    assert_eq!(
        api.raw(
            "GET",
            "apps/licensing/v1/product/Google-Apps/sku/1010020028/user/jane@example.com",
            None
        )
        .await
        .0,
        404
    );
    assert_eq!(api.raw("DELETE", path, None).await.0, 204);
    assert!(t.user(&id).unwrap().licences.is_empty());
    assert_eq!(api.raw("DELETE", path, None).await.0, 404);
    let insert = "apps/licensing/v1/product/Google-Apps/sku/1010020027/user";
    let (status, body, _) = api
        .raw("POST", insert, Some(json!({"userId": "jane@example.com"})))
        .await;
    assert_eq!((status, body["skuId"].as_str()), (200, Some("1010020027")));
    let (status, body, _) = api
        .raw("POST", insert, Some(json!({"userId": "jane@example.com"})))
        .await;
    assert_eq!(
        (status, body["error"]["errors"][0]["reason"].as_str()),
        (409, Some("duplicate"))
    );
    assert_eq!(
        t.user(&id).unwrap().licences,
        [("Google-Apps".to_owned(), "1010020027".to_owned())]
    );
    t.remove_user(&id);
    assert_eq!(api.raw("GET", path, None).await.0, 404);
}

#[tokio::test]
async fn google_mobile_devices_list_by_email_and_wipe() {
    let t = GoogleTenant::start().await;
    let api = Api::new(&t);
    let jane = t.add_user(NewUser {
        devices: vec!["Pixel 9".into()],
        ..NewUser::active("jane@example.com")
    });
    let janet = t.add_user(NewUser::active("janet@example.com"));
    t.add_device(&janet, "iPhone").unwrap();
    let list = |q: &str| {
        format!(
            "customer/my_customer/devices/mobile?query={}",
            url::form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
        )
    };
    let (status, body, _) = api
        .call("GET", &list("email:'jane@example.com'"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["kind"], "admin#directory#mobiledevices");
    let devices = body["mobiledevices"].as_array().unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(
        (
            devices[0]["status"].as_str(),
            devices[0]["email"][0].as_str()
        ),
        (Some("APPROVED"), Some("jane@example.com"))
    );
    // A prefix matches more than one owner: clients must filter exactly.
    let (_, body, _) = api.call("GET", &list("email:jane"), None).await;
    assert_eq!(body["mobiledevices"].as_array().unwrap().len(), 2);
    for bad in ["model:Pixel", "email:'open", "email:a b"] {
        assert_eq!(api.call("GET", &list(bad), None).await.0, 400, "{bad}");
    }
    assert_eq!(
        api.call("GET", "customer/C999/devices/mobile", None)
            .await
            .0,
        404
    );
    let rid = devices[0]["resourceId"].as_str().unwrap().to_owned();
    let action = format!("customer/my_customer/devices/mobile/{rid}/action");
    assert_eq!(
        api.call("POST", &action, Some(json!({"action": "self_destruct"})))
            .await
            .0,
        400
    );
    assert_eq!(
        api.call(
            "POST",
            &action,
            Some(json!({"action": "admin_account_wipe"}))
        )
        .await
        .0,
        204
    );
    assert_eq!(t.devices(&jane)[0].status, "ACCOUNT_WIPING");
    let (_, body, _) = api
        .call("GET", &list("email:'jane@example.com'"), None)
        .await;
    assert_eq!(body["mobiledevices"][0]["status"], "ACCOUNT_WIPING");
    let (_, body, _) = api
        .call("GET", &list("email:'jane@example.com'"), None)
        .await;
    assert_eq!(body["mobiledevices"][0]["status"], "ACCOUNT_WIPED");
    assert_eq!(t.devices(&jane)[0].actions, ["admin_account_wipe"]);
    assert_eq!(t.devices(&janet)[0].status, "APPROVED");
    assert_eq!(
        api.call(
            "POST",
            "customer/my_customer/devices/mobile/nope/action",
            Some(json!({"action": "block"}))
        )
        .await
        .0,
        404
    );
}

/// The `id`s of a `Users` answer, in order.
fn user_ids(body: &Value) -> Vec<&str> {
    body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect()
}

/// Google's front end refuses a write that declares no body length: `411 Length Required`
/// (an HTML page, not the JSON error shape), before credentials are looked at; reqwest/hyper
/// send no `Content-Length` for a POST without a body. With `Content-Length: 0` the same
/// call goes through. (The discovery documents give `directory.users.signOut` and
/// `directory.verificationCodes.invalidate` no `request`; the 411 is Google's front end's
/// answer to any HTTP/1.1 POST without a length.)
#[tokio::test]
async fn google_bodyless_write_without_content_length_is_411() {
    let t = GoogleTenant::start().await;
    let id = t.add_user(NewUser {
        sessions: 2,
        backup_codes: 3,
        ..NewUser::active("jane@example.com")
    });
    let http = reqwest::Client::new();
    for path in ["signOut", "verificationCodes/invalidate"] {
        let url = format!("{}/admin/directory/v1/users/{id}/{path}", t.uri());
        for auth in [format!("Bearer {}", t.token()), "Bearer wrong".to_owned()] {
            let r = http
                .post(&url)
                .header("authorization", auth)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 411, "{path}");
            assert!(r.text().await.unwrap().contains("Length Required"));
        }
    }
    let user = t.user(&id).unwrap();
    assert_eq!((user.sessions, user.backup_codes), (2, 3));
    let api = Api::new(&t);
    let signed_out = api.call("POST", &format!("users/{id}/signOut"), None).await;
    assert_eq!(signed_out.0, 204);
    assert_eq!(t.user(&id).unwrap().sessions, 0);
}

/// A JWT assertion as a service account sends it (the simulator does not check signatures).
fn assertion(scope: &str) -> String {
    use base64::Engine as _;
    let b64 = |v: Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&v).unwrap())
    };
    let claims = json!({
        "iss": "offboard@project.iam.gserviceaccount.com",
        "sub": "admin@example.com",
        "aud": "https://oauth2.googleapis.com/token",
        "scope": scope,
        "iat": 1_800_000_000u64,
        "exp": 1_800_003_600u64,
    });
    format!(
        "{}.{}.c2ln",
        b64(json!({"alg": "RS256", "typ": "JWT"})),
        b64(claims)
    )
}

/// Mints a token at the tenant's token endpoint: (status, body).
async fn mint(t: &GoogleTenant, grant_type: &str, assertion: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(t.token_uri())
        .form(&[("grant_type", grant_type), ("assertion", assertion)])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Each method needs one of the scopes its discovery entry lists (`scopes` of
/// `directory.groups.list` in admin-directory_v1.offboarding.json: `admin.directory.group` or
/// `admin.directory.group.readonly`; `admin.directory.group.member` is not among them), and a
/// token holds exactly the scopes of the service account's JWT `scope` claim. Without one:
/// Google's 403 `insufficientPermissions` (status PERMISSION_DENIED).
#[tokio::test]
async fn google_tokens_carry_the_jwt_scopes_and_methods_demand_theirs() {
    let t = GoogleTenant::start().await;
    let g = t.add_group("eng@example.com", "Eng");
    let id = t.add_user(NewUser {
        groups: vec![g.clone()],
        ..NewUser::active("jane@example.com")
    });
    let auth = "https://www.googleapis.com/auth/";
    let scope = format!("{auth}admin.directory.user {auth}admin.directory.group.member");
    let (status, body) = mint(
        &t,
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        &assertion(&scope),
    )
    .await;
    assert_eq!((status, body["token_type"].as_str()), (200, Some("Bearer")));
    assert_eq!(body["expires_in"], 3600);
    let token = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        t.token_scopes(&token).unwrap(),
        scope.split(' ').map(str::to_owned).collect::<BTreeSet<_>>()
    );
    let api = Api {
        token,
        ..Api::new(&t)
    };
    assert_eq!(api.call("GET", &format!("users/{id}"), None).await.0, 200);
    let (status, body, _) = api.call("GET", &format!("groups?userKey={id}"), None).await;
    assert_eq!(status, 403);
    assert_eq!(
        body["error"]["message"],
        "Request had insufficient authentication scopes."
    );
    assert_eq!(body["error"]["status"], "PERMISSION_DENIED");
    assert_eq!(
        body["error"]["errors"][0]["reason"],
        "insufficientPermissions"
    );
    // Nothing of the security surface either (it needs admin.directory.user.security).
    let (status, ..) = api.call("GET", &format!("users/{id}/tokens"), None).await;
    assert_eq!(status, 403);
    let (status, ..) = api.call("POST", &format!("users/{id}/signOut"), None).await;
    assert_eq!(status, 403);
    // group.member suffices for members.delete.
    let (status, ..) = api
        .call("DELETE", &format!("groups/{g}/members/{id}"), None)
        .await;
    assert_eq!(status, 204);
    assert!(t.user(&id).unwrap().groups.is_empty());

    // The read-only group scope lists groups.
    let (_, body) = mint(
        &t,
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        &assertion(&format!("{auth}admin.directory.group.readonly")),
    )
    .await;
    let api = Api {
        token: body["access_token"].as_str().unwrap().to_owned(),
        ..Api::new(&t)
    };
    let (status, ..) = api.call("GET", &format!("groups?userKey={id}"), None).await;
    assert_eq!(status, 200);

    // The token endpoint's own refusals, and a token it never minted.
    let jwt = "urn:ietf:params:oauth:grant-type:jwt-bearer";
    for (grant, assertion, error) in [
        (
            "client_credentials",
            assertion(&scope),
            "unsupported_grant_type",
        ),
        (jwt, assertion(""), "invalid_scope"),
        (jwt, "not-a-jwt".to_owned(), "invalid_grant"),
    ] {
        let (status, body) = mint(&t, grant, &assertion).await;
        assert_eq!((status, body["error"].as_str()), (400, Some(error)));
    }
    let api = Api {
        token: "ya29.sim-sa-never-minted".into(),
        ..Api::new(&t)
    };
    assert_eq!(api.call("GET", &format!("users/{id}"), None).await.0, 401);
}

/// Google keeps completed transfers: `transfers.list?oldOwnerUserId=` answers an old one
/// with its `requestTime` ("Read-only. The time at which the data transfer was requested.",
/// `DataTransfer.requestTime` in admin-datatransfer_v1.json) and `completed`, so a client
/// must tell a transfer of its own from an earlier one.
#[tokio::test]
async fn google_transfers_list_keeps_old_completed_transfers_with_their_request_time() {
    let t = GoogleTenant::start().await;
    let ann = t.add_user(NewUser::active("ann@example.com"));
    let boss = t.add_user(NewUser::active("boss@example.com"));
    let apps: Vec<String> = t.application_ids().into_values().collect();
    let when = chrono::DateTime::parse_from_rfc3339("2026-01-05T09:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let id = t.add_completed_transfer(&ann, &boss, &apps, when);
    let (status, body, _) = Api::new(&t)
        .raw(
            "GET",
            &format!("admin/datatransfer/v1/transfers?oldOwnerUserId={ann}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let listed = &body["dataTransfers"][0];
    assert_eq!(listed["id"], id.as_str());
    assert_eq!(listed["overallTransferStatusCode"], "completed");
    assert_eq!(listed["requestTime"], "2026-01-05T09:00:00.000Z");
    assert_eq!(listed["newOwnerUserId"], boss.as_str());
    let state = &t.transfers()[0];
    assert_eq!(
        (state.status.as_str(), state.request_time.as_str()),
        ("completed", "2026-01-05T09:00:00.000Z")
    );
}

/// Google manages no backup codes of a suspended user: `verificationCodes.invalidate` answers
/// 400 "Invalid Input" (not in the discovery document; observed by GAM users, e.g.
/// taers232c/GAMADV-XTD3#240 "Backup Verification Codes Deprovision Failed: Invalid Input",
/// and googleapis/google-api-go-client#978 "users with disabled status cannot generate
/// verification code"), while the list still answers; unsuspended, it works again. A route
/// made to fail keeps failing until healed.
#[tokio::test]
async fn google_backup_codes_of_a_suspended_user_cannot_be_invalidated() {
    let t = GoogleTenant::start().await;
    let id = t.add_user(NewUser {
        backup_codes: 10,
        suspended: true,
        ..NewUser::active("jane@example.com")
    });
    let api = Api::new(&t);
    let invalidate = format!("users/{id}/verificationCodes/invalidate");
    let (status, body, _) = api.call("POST", &invalidate, None).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["errors"][0]["reason"], "invalid");
    let (status, body, _) = api
        .call("GET", &format!("users/{id}/verificationCodes"), None)
        .await;
    assert_eq!((status, body["items"].as_array().unwrap().len()), (200, 10));
    t.set_suspended(&id, false);
    t.fail_route(
        "POST",
        "admin/directory/v1/users/{userKey}/verificationCodes/invalidate",
        Some(500),
    );
    for _ in 0..3 {
        assert_eq!(api.call("POST", &invalidate, None).await.0, 500);
    }
    assert_eq!(t.user(&id).unwrap().backup_codes, 10);
    t.fail_route(
        "POST",
        "admin/directory/v1/users/{userKey}/verificationCodes/invalidate",
        None,
    );
    assert_eq!(api.call("POST", &invalidate, None).await.0, 204);
    assert_eq!(t.user(&id).unwrap().backup_codes, 0);
}
