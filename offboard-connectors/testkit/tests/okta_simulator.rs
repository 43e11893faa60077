//! The simulated Okta tenant: routes match Okta's spec, state changes, error bodies, strict
//! search, rate limits, faults and the recording.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use offboard_testkit::sim::okta::{Faults, GroupType, NewUser, OktaTenant, RateFamily, RateLimits};
use serde_json::{Value, json};

#[test]
fn okta_every_route_exists_in_the_official_spec() {
    let text = offboard_testkit::sim::specs::read("okta/okta-management.offboarding.yaml");
    let spec: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let paths = spec["paths"].as_mapping().unwrap();
    let mut served = BTreeSet::new();
    for (method, path) in OktaTenant::ROUTES {
        let item = paths
            .get(serde_yaml::Value::from(*path))
            .unwrap_or_else(|| panic!("{path} is not in the Okta spec"));
        let op = item.get(serde_yaml::Value::from(method.to_ascii_lowercase()));
        assert!(op.is_some(), "{method} {path} is not in the Okta spec");
        assert!(
            served.insert((*method, *path)),
            "{method} {path} listed twice"
        );
    }
    assert_eq!(served.len(), 25);
}

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    fn new(t: &OktaTenant) -> Self {
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
        query: &[(&str, &str)],
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let r = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .query(query)
            .header("authorization", format!("SSWS {}", self.token))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let bytes = r.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, body, headers)
    }
}

#[tokio::test]
async fn okta_lifecycle_follows_okta_rules() {
    let t = OktaTenant::start().await;
    let api = Api::new(&t);
    let id = t.add_user(NewUser::active("jane@example.com"));
    let p = |op: &str| format!("/api/v1/users/{id}/lifecycle/{op}");

    assert_eq!(api.call("POST", &p("suspend"), &[]).await.0, 200);
    assert_eq!(t.user(&id).unwrap().status, "SUSPENDED");
    let (status, body, _) = api.call("POST", &p("suspend"), &[]).await;
    assert_eq!(status, 400);
    assert_eq!(body["errorCode"], "E0000001");
    assert_eq!(
        body["errorCauses"][0]["errorSummary"],
        "Cannot suspend a user that is not active"
    );
    assert_eq!(api.call("POST", &p("unsuspend"), &[]).await.0, 200);
    assert_eq!(api.call("POST", &p("unsuspend"), &[]).await.0, 400);
    let (status, body, _) = api
        .call("POST", &p("activate"), &[("sendEmail", "false")])
        .await;
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (403, Some("E0000016"))
    );
    assert_eq!(
        api.call("POST", &p("deactivate"), &[("sendEmail", "false")])
            .await
            .0,
        200
    );
    assert_eq!(t.user(&id).unwrap().status, "DEPROVISIONED");
    assert_eq!(api.call("POST", &p("deactivate"), &[]).await.0, 400);
    assert_eq!(
        api.call("POST", &p("activate"), &[("sendEmail", "false")])
            .await
            .0,
        200
    );
    assert_eq!(t.user(&id).unwrap().status, "ACTIVE");

    // Two-phase delete, then 404.
    let user = format!("/api/v1/users/{id}");
    assert_eq!(
        api.call("DELETE", &user, &[("sendEmail", "false")]).await.0,
        204
    );
    assert_eq!(t.user(&id).unwrap().status, "DEPROVISIONED");
    assert_eq!(api.call("DELETE", &user, &[]).await.0, 204);
    assert!(t.user(&id).is_none());
    let (status, body, _) = api.call("DELETE", &user, &[]).await;
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (404, Some("E0000007"))
    );
    let (status, _, _) = api.call("GET", &user, &[]).await;
    assert_eq!(status, 404);
}

/// Every status of Okta's `UserStatus` enum, and which lifecycle operation each allows: the
/// spec (`okta-management.offboarding.yaml`, `UserLifecycle`) says suspend "only on users with
/// an `ACTIVE` status", unlock "a user with a `LOCKED_OUT` status" (who is then `ACTIVE`),
/// deactivate "only on users that do not have a `DEPROVISIONED` status".
#[tokio::test]
async fn okta_every_status_and_its_lifecycle_transitions() {
    let text = offboard_testkit::sim::specs::read("okta/okta-management.offboarding.yaml");
    let spec: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let mut statuses: Vec<String> = spec["components"]["schemas"]["UserStatus"]["enum"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    statuses.sort();
    assert_eq!(statuses, OktaTenant::STATUSES);

    let t = OktaTenant::start().await;
    let api = Api::new(&t);
    for status in OktaTenant::STATUSES {
        let expected = [
            ("suspend", (status == "ACTIVE").then_some("SUSPENDED")),
            ("unlock", (status == "LOCKED_OUT").then_some("ACTIVE")),
            (
                "deactivate",
                (status != "DEPROVISIONED").then_some("DEPROVISIONED"),
            ),
        ];
        for (op, after) in expected {
            let id = t.add_user(NewUser {
                status: status.into(),
                sessions: 1,
                ..NewUser::active(format!("{op}.{status}@example.com").to_lowercase())
            });
            let (code, body, _) = api
                .call("POST", &format!("/api/v1/users/{id}/lifecycle/{op}"), &[])
                .await;
            match after {
                Some(to) => {
                    assert_eq!(code, 200, "{op} from {status}: {body}");
                    assert_eq!(t.user(&id).unwrap().status, to, "{op} from {status}");
                }
                None => {
                    assert_eq!(
                        (code, body["errorCode"].as_str()),
                        (400, Some("E0000001")),
                        "{op} from {status}: {body}"
                    );
                    assert_eq!(t.user(&id).unwrap().status, status, "{op} changed nothing");
                }
            }
            // Sessions end with deactivation only; a refused operation leaves them.
            let sessions = t.user(&id).unwrap().sessions;
            assert_eq!(
                sessions,
                u32::from(after != Some("DEPROVISIONED")),
                "{op} {status}"
            );
        }
    }
}

#[test]
#[should_panic(expected = "is not an Okta user status")]
fn okta_refuses_a_status_okta_does_not_have() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let t = rt.block_on(OktaTenant::start());
    t.add_user(NewUser {
        status: "DISABLED".into(),
        ..NewUser::active("x@example.com")
    });
}

/// A role assigned to a group is listed for its members with `assignmentType: GROUP` (the
/// spec's `StandardRolesListResponse` example); only the user's own assignments can be
/// unassigned through `DELETE /api/v1/users/{userId}/roles/{roleAssignmentId}`.
#[tokio::test]
async fn okta_group_admin_roles_are_listed_but_not_removable_through_the_user() {
    let t = OktaTenant::start().await;
    let api = Api::new(&t);
    let admins = t.add_group("Admins", GroupType::OktaGroup);
    let gra = t.assign_role_to_group(&admins, "SUPER_ADMIN");
    let id = t.add_user(NewUser {
        groups: vec![admins.clone()],
        admin_roles: vec!["APP_ADMIN".into()],
        ..NewUser::active("ann@example.com")
    });
    let own = t.user(&id).unwrap().admin_roles[0].clone();
    let (code, body, _) = api
        .call("GET", &format!("/api/v1/users/{id}/roles"), &[])
        .await;
    assert_eq!(code, 200);
    let listed: Vec<(&str, &str, &str)> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap(),
                r["type"].as_str().unwrap(),
                r["assignmentType"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            (own.as_str(), "APP_ADMIN", "USER"),
            (gra.as_str(), "SUPER_ADMIN", "GROUP")
        ]
    );
    let (code, body, _) = api
        .call("DELETE", &format!("/api/v1/users/{id}/roles/{gra}"), &[])
        .await;
    assert_eq!((code, body["errorCode"].as_str()), (404, Some("E0000007")));
    let (code, _, _) = api
        .call("DELETE", &format!("/api/v1/users/{id}/roles/{own}"), &[])
        .await;
    assert_eq!(code, 204);
    let (_, body, _) = api
        .call("GET", &format!("/api/v1/users/{id}/roles"), &[])
        .await;
    assert_eq!(
        body.as_array().unwrap().len(),
        1,
        "the group's role remains"
    );
    // Leaving the group ends it.
    let (code, _, _) = api
        .call(
            "DELETE",
            &format!("/api/v1/groups/{admins}/users/{id}"),
            &[],
        )
        .await;
    assert_eq!(code, 204);
    let (_, body, _) = api
        .call("GET", &format!("/api/v1/users/{id}/roles"), &[])
        .await;
    assert_eq!(body, json!([]));
}

#[tokio::test]
async fn okta_groups_apps_and_tokens() {
    let t = OktaTenant::start().await;
    let api = Api::new(&t);
    let eng = t.add_group("Engineering", GroupType::OktaGroup);
    let ad = t.add_group("AD Staff", GroupType::AppGroup);
    let github = t.add_app("GitHub");
    let slack = t.add_app("Slack");
    t.assign_app_to_group(&slack, &eng);
    let id = t.add_user(NewUser {
        groups: vec![eng.clone(), ad.clone()],
        apps: vec![github.clone()],
        sessions: 2,
        oauth_tokens: vec!["0oaCli".into()],
        grants: vec![("0oaCli".into(), "okta.users.read".into())],
        ..NewUser::active("ann@example.com")
    });
    let (_, groups, _) = api
        .call("GET", &format!("/api/v1/users/{id}/groups"), &[])
        .await;
    let types: BTreeSet<&str> = groups
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        BTreeSet::from(["OKTA_GROUP", "APP_GROUP", "BUILT_IN"])
    );
    let (_, links, _) = api
        .call("GET", &format!("/api/v1/users/{id}/appLinks"), &[])
        .await;
    assert_eq!(links.as_array().unwrap().len(), 2);
    let (_, au, _) = api
        .call("GET", &format!("/api/v1/apps/{slack}/users/{id}"), &[])
        .await;
    assert_eq!(au["scope"], "GROUP");
    assert_eq!(
        api.call("DELETE", &format!("/api/v1/apps/{slack}/users/{id}"), &[])
            .await
            .0,
        400
    );
    assert_eq!(
        api.call(
            "DELETE",
            &format!("/api/v1/apps/{github}/users/{id}"),
            &[("sendEmail", "false")]
        )
        .await
        .0,
        204
    );
    assert_eq!(
        api.call("DELETE", &format!("/api/v1/apps/{github}/users/{id}"), &[])
            .await
            .0,
        404
    );
    // Only OKTA_GROUP memberships change; removing the group takes the group's app with it.
    assert_eq!(
        api.call("DELETE", &format!("/api/v1/groups/{ad}/users/{id}"), &[])
            .await
            .0,
        400
    );
    assert_eq!(
        api.call(
            "DELETE",
            &format!("/api/v1/groups/{}/users/{id}", t.everyone()),
            &[]
        )
        .await
        .0,
        400
    );
    assert_eq!(
        api.call("DELETE", &format!("/api/v1/groups/{eng}/users/{id}"), &[])
            .await
            .0,
        204
    );
    assert_eq!(
        api.call("DELETE", &format!("/api/v1/groups/{eng}/users/{id}"), &[])
            .await
            .0,
        204
    );
    let (_, links, _) = api
        .call("GET", &format!("/api/v1/users/{id}/appLinks"), &[])
        .await;
    assert_eq!(links, json!([]));
    assert_eq!(
        api.call("PUT", &format!("/api/v1/groups/{eng}/users/{id}"), &[])
            .await
            .0,
        204
    );
    assert!(t.user(&id).unwrap().groups.contains(&eng));
    // Sessions with OAuth tokens.
    let (_, clients, _) = api
        .call("GET", &format!("/api/v1/users/{id}/clients"), &[])
        .await;
    assert_eq!(clients[0]["client_id"], "0oaCli");
    assert_eq!(
        api.call(
            "DELETE",
            &format!("/api/v1/users/{id}/sessions"),
            &[("oauthTokens", "true")]
        )
        .await
        .0,
        204
    );
    let u = t.user(&id).unwrap();
    assert_eq!(
        (u.sessions, u.oauth_tokens.len(), u.grants.len()),
        (0, 0, 1)
    );
    assert_eq!(
        api.call("DELETE", &format!("/api/v1/users/{id}/grants"), &[])
            .await
            .0,
        204
    );
    assert!(t.user(&id).unwrap().grants.is_empty());
}

#[tokio::test]
async fn okta_search_is_strict_and_exact() {
    let t = OktaTenant::start().await;
    let api = Api::new(&t);
    let a = t.add_user(NewUser::active("a@example.com"));
    let b = t.add_user(NewUser {
        second_email: Some("alias@example.com".into()),
        ..NewUser::active("b@example.com")
    });
    let api = &api;
    let search =
        |e: &'static str| async move { api.call("GET", "/api/v1/users", &[("search", e)]).await };
    let ids = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|u| u["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (s, v, _) = search(r#"profile.login eq "A@EXAMPLE.COM""#).await;
    assert_eq!((s, ids(&v)), (200, vec![a.clone()]));
    let (_, v, _) =
        search(r#"profile.login eq "a@example.com" or profile.secondEmail eq "alias@example.com""#)
            .await;
    assert_eq!(ids(&v), vec![a.clone(), b.clone()]);
    for bad in [
        r#"profile.login sw "a""#,
        r#"profile.login eq "a" or profile.login sw """#,
        "profile.login eq a",
        r#"profile.login eq "\x""#,
    ] {
        let (s, v, _) = search(bad).await;
        assert_eq!(
            (s, v["errorCode"].as_str()),
            (400, Some("E0000031")),
            "{bad}"
        );
    }
    let (s, v, _) = search(r#"profile.login eq "a\" or profile.login sw \"""#).await;
    assert_eq!((s, ids(&v)), (200, vec![]));
}

#[tokio::test]
async fn okta_rate_limits_and_headers() {
    let t =
        OktaTenant::start_with("tok", RateLimits::enterprise().with(RateFamily::UserGet, 3)).await;
    let api = Api::new(&t);
    let id = t.add_user(NewUser::active("x@example.com"));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for remaining in ["2", "1", "0"] {
        let (s, _, h) = api.call("GET", &format!("/api/v1/users/{id}"), &[]).await;
        assert_eq!(s, 200);
        assert_eq!(h["x-rate-limit-limit"], "3");
        assert_eq!(h["x-rate-limit-remaining"], remaining);
        let reset: u64 = h["x-rate-limit-reset"].to_str().unwrap().parse().unwrap();
        assert!(reset >= now + 59 && reset <= now + 61);
    }
    let (s, body, h) = api.call("GET", &format!("/api/v1/users/{id}"), &[]).await;
    assert_eq!((s, body["errorCode"].as_str()), (429, Some("E0000047")));
    assert_eq!(h["x-rate-limit-remaining"], "0");
    // Another family is unaffected.
    assert_eq!(
        api.call("GET", &format!("/api/v1/users/{id}/groups"), &[])
            .await
            .0,
        200
    );
    assert_eq!(t.rate_limited_count(), 1);
}

#[tokio::test]
async fn okta_faults_auth_and_recording() {
    let t = OktaTenant::start().await;
    let api = Api::new(&t);
    let id = t.add_user(NewUser::active("x@example.com"));
    t.fail_next(1, 503);
    assert_eq!(
        api.call("GET", &format!("/api/v1/users/{id}"), &[]).await.0,
        503
    );
    assert_eq!(
        api.call("GET", &format!("/api/v1/users/{id}"), &[]).await.0,
        200
    );
    t.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    assert_eq!(
        api.call("GET", &format!("/api/v1/users/{id}"), &[]).await.0,
        500
    );
    t.set_faults(Faults {
        latency: Duration::from_millis(150),
        ..Faults::default()
    });
    let started = std::time::Instant::now();
    assert_eq!(
        api.call("GET", &format!("/api/v1/users/{id}"), &[]).await.0,
        200
    );
    assert!(started.elapsed() >= Duration::from_millis(150));
    t.set_faults(Faults::default());
    let bad = reqwest::Client::new()
        .get(format!("{}/api/v1/users/{id}", t.uri()))
        .header("authorization", "SSWS wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 401);
    let recorded = t.requests();
    assert_eq!(recorded.len(), 5);
    let last = recorded.last().unwrap();
    assert_eq!(last.line(), format!("GET /api/v1/users/{id}"));
    let auth = last
        .headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .unwrap();
    assert_eq!(auth.1, "SSWS [REDACTED]");
    assert!(
        recorded
            .iter()
            .all(|r| r.headers.iter().all(|(_, v)| !v.contains(t.token())))
    );
}

#[tokio::test]
async fn okta_concurrency_limit_answers_429_with_zero_limit() {
    let t = OktaTenant::start_with("tok", RateLimits::enterprise().with_concurrency(2)).await;
    t.set_faults(Faults {
        latency: Duration::from_millis(1000),
        ..Faults::default()
    });
    let api = std::sync::Arc::new(Api::new(&t));
    let id = t.add_user(NewUser::active("x@example.com"));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let api = std::sync::Arc::clone(&api);
        let path = format!("/api/v1/users/{id}");
        tasks.push(tokio::spawn(async move {
            let (s, _, h) = api.call("GET", &path, &[]).await;
            (
                s,
                h.get("x-rate-limit-limit")
                    .map(|v| v.to_str().unwrap().to_owned()),
            )
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    let limited: Vec<_> = results.iter().filter(|(s, _)| *s == 429).collect();
    assert_eq!(limited.len(), 2, "{results:?}");
    assert!(limited.iter().all(|(_, l)| l.as_deref() == Some("0")));
}

#[tokio::test]
async fn okta_last_updated_search_sorts_and_pages_with_link_headers() {
    let t = OktaTenant::start().await;
    let api = Api::new(&t);
    let ids: Vec<String> = (0..5)
        .map(|i| t.add_user(NewUser::active(format!("u{i}@example.com"))))
        .collect();
    let before = t.last_updated(&ids[4]).unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(t.deactivate_user(&ids[1]));
    assert!(t.set_status(&ids[3], "SUSPENDED"));
    assert!(!t.deactivate_user("00uNobody"));
    assert_eq!(t.user(&ids[1]).unwrap().status, "DEPROVISIONED");
    assert!(t.last_updated(&ids[1]).unwrap() > before);

    // Only the two changed users are newer; search includes DEPROVISIONED users.
    let expr = format!(r#"lastUpdated gt "{before}""#);
    let (s, v, _) = api
        .call(
            "GET",
            "/api/v1/users",
            &[("search", &expr), ("sortBy", "lastUpdated")],
        )
        .await;
    assert_eq!(s, 200);
    let got: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, [ids[1].as_str(), ids[3].as_str()]);

    // Pages of two over everything, ascending by lastUpdated then id, joined by Link.
    let all = r#"lastUpdated gt "2000-01-01T00:00:00.000Z""#;
    let mut query: Vec<(String, String)> = vec![
        ("search".into(), all.into()),
        ("sortBy".into(), "lastUpdated".into()),
        ("sortOrder".into(), "asc".into()),
        ("limit".into(), "2".into()),
    ];
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let q: Vec<(&str, &str)> = query
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let (s, v, h) = api.call("GET", "/api/v1/users", &q).await;
        assert_eq!(s, 200);
        pages += 1;
        for u in v.as_array().unwrap() {
            seen.push((
                u["lastUpdated"].as_str().unwrap().to_owned(),
                u["id"].as_str().unwrap().to_owned(),
            ));
        }
        let Some(link) = h.get("link") else { break };
        let link = link.to_str().unwrap();
        assert!(link.ends_with(r#">; rel="next""#), "{link}");
        let url = url::Url::parse(&link[1..link.find('>').unwrap()]).unwrap();
        assert_eq!(url.origin().ascii_serialization(), t.uri());
        query = url.query_pairs().into_owned().collect();
    }
    assert_eq!(pages, 3);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "ascending by lastUpdated, ties by id");
    assert_eq!(seen.len(), 5);

    for bad in [
        r#"lastUpdated gt "yesterday""#,
        r#"lastUpdated sw "2026""#,
        r#"profile.login gt "a""#,
    ] {
        let (s, _, _) = api.call("GET", "/api/v1/users", &[("search", bad)]).await;
        assert_eq!(s, 400, "{bad}");
    }
    let (s, _, _) = api
        .call("GET", "/api/v1/users", &[("search", all), ("limit", "500")])
        .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn okta_failures_can_target_one_endpoint_family() {
    let t = OktaTenant::start().await;
    let api = Api::new(&t);
    let id = t.add_user(NewUser::active("x@example.com"));
    t.fail_next_in(RateFamily::UserWrite, 1, 429);
    // Listings and reads are untouched; the next user write gets the 429.
    assert_eq!(api.call("GET", "/api/v1/users", &[]).await.0, 200);
    assert_eq!(
        api.call("GET", &format!("/api/v1/users/{id}"), &[]).await.0,
        200
    );
    let suspend = format!("/api/v1/users/{id}/lifecycle/suspend");
    let (s, v, h) = api.call("POST", &suspend, &[]).await;
    assert_eq!((s, v["errorCode"].as_str()), (429, Some("E0000047")));
    assert!(h.contains_key("x-rate-limit-reset"));
    assert_eq!(
        t.user(&id).unwrap().status,
        "ACTIVE",
        "refused, not applied"
    );
    assert_eq!(api.call("POST", &suspend, &[]).await.0, 200);
    assert_eq!(t.rate_limited_count(), 1);
}
