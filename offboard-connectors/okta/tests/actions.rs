//! The Okta connector against the simulated tenant: the exact requests each action sends, the
//! tenant's state after it, repeats, dry runs, rollbacks, lookup escaping, throttling,
//! OAuth and secret redaction.

use std::sync::Arc;
use std::time::Duration;

use offboard_core::{
    AccountRef, Action, ActionName, Connector, ErrorKind, ExecuteOptions, LookupRequest, Outcome,
    Person, Secret,
};
use offboard_okta::{OktaConfig, OktaConnector, search_expression};
use offboard_testkit::Fixture;
use offboard_testkit::sim::okta::{NewUser, OktaFixture, OktaTenant, RateFamily, RateLimits};
use offboard_testkit::suite::trace::TraceCapture;

struct Setup {
    tenant: Arc<OktaTenant>,
    fixture: OktaFixture,
    okta: OktaConnector,
}

async fn setup_with(limits: RateLimits) -> Setup {
    let tenant =
        Arc::new(OktaTenant::start_with(format!("00SimTok{}", "x".repeat(30)), limits).await);
    let okta = OktaConfig::new()
        .with_org_url(tenant.uri())
        .with_allow_plain_http(true)
        .with_api_token(Secret::new(tenant.token()))
        .build()
        .unwrap();
    let fixture = OktaFixture::new(Arc::clone(&tenant));
    Setup {
        tenant,
        fixture,
        okta,
    }
}

async fn setup() -> Setup {
    setup_with(RateLimits::enterprise()).await
}

fn action(name: &'static str) -> Action {
    Action::new(ActionName::from_static(name))
}

fn run() -> ExecuteOptions {
    ExecuteOptions::default()
}

fn dry() -> ExecuteOptions {
    ExecuteOptions::default().with_dry_run(true)
}

impl Setup {
    async fn user(&self, login: &str) -> AccountRef {
        self.fixture.create_user(login, &[]).await
    }

    /// Runs the action and returns its outcome and the requests it sent (`METHOD path?query`).
    async fn exec(
        &self,
        a: &AccountRef,
        name: &'static str,
        opts: ExecuteOptions,
    ) -> (Outcome, Vec<String>, String) {
        self.tenant.clear_requests();
        let reply = self.okta.execute(a, &action(name), &opts).await.unwrap();
        (
            reply.outcome,
            self.lines(),
            reply.detail.unwrap_or_default(),
        )
    }

    fn lines(&self) -> Vec<String> {
        self.tenant
            .requests()
            .iter()
            .map(|r| {
                let q: Vec<String> = r.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
                if q.is_empty() {
                    r.line()
                } else {
                    format!("{}?{}", r.line(), q.join("&"))
                }
            })
            .collect()
    }
}

#[tokio::test]
async fn suspend_sends_exact_requests_and_rolls_back() {
    let s = setup().await;
    let a = s.user("ann@example.com").await;
    let id = &a.external_id;
    let u = format!("GET /api/v1/users/{id}");

    let (o, lines, _) = s.exec(&a, "okta.suspend", dry()).await;
    assert_eq!((o, lines), (Outcome::Done, vec![u.clone()]));
    assert_eq!(s.tenant.user(id).unwrap().status, "ACTIVE");

    let snap = s.okta.snapshot(&a, &action("okta.suspend")).await.unwrap();
    assert_eq!(snap.data, serde_json::json!({"status": "ACTIVE"}));

    let (o, lines, _) = s.exec(&a, "okta.suspend", run()).await;
    assert_eq!(o, Outcome::Done);
    assert_eq!(
        lines,
        vec![
            u.clone(),
            format!("POST /api/v1/users/{id}/lifecycle/suspend")
        ]
    );
    assert_eq!(s.tenant.user(id).unwrap().status, "SUSPENDED");
    // Groups and apps are kept.
    assert_eq!(s.tenant.user(id).unwrap().apps.len(), 1);

    let (o, lines, _) = s.exec(&a, "okta.suspend", run()).await;
    assert_eq!((o, lines), (Outcome::AlreadyDone, vec![u.clone()]));

    s.tenant.clear_requests();
    assert_eq!(s.okta.restore(&a, &snap).await.unwrap(), Outcome::Done);
    assert_eq!(
        s.lines(),
        vec![
            u.clone(),
            format!("POST /api/v1/users/{id}/lifecycle/unsuspend")
        ]
    );
    assert_eq!(s.tenant.user(id).unwrap().status, "ACTIVE");
    assert_eq!(
        s.okta.restore(&a, &snap).await.unwrap(),
        Outcome::AlreadyDone
    );
}

#[tokio::test]
async fn clear_sessions_revokes_tokens_and_reports_truthfully() {
    let s = setup().await;
    let a = s.user("ann@example.com").await;
    let id = &a.external_id;
    let (o, lines, detail) = s.exec(&a, "okta.clear_sessions", run()).await;
    assert_eq!(o, Outcome::Done);
    assert_eq!(
        lines,
        vec![
            format!("GET /api/v1/users/{id}"),
            format!("GET /api/v1/users/{id}/clients"),
            format!("GET /api/v1/users/{id}/clients/0oaSimMobileClient0/tokens"),
            format!("DELETE /api/v1/users/{id}/sessions?oauthTokens=true&forgetDevices=true"),
        ]
    );
    assert!(
        detail.contains("1 OAuth refresh tokens revoked"),
        "{detail}"
    );
    let state = s.tenant.user(id).unwrap();
    assert_eq!((state.sessions, state.oauth_tokens.len()), (0, 0));
    assert_eq!(
        state.grants.len(),
        1,
        "consent grants are okta.revoke_grants' job"
    );
    let (o, _, _) = s.exec(&a, "okta.clear_sessions", run()).await;
    assert_eq!(o, Outcome::AlreadyDone);
}

#[tokio::test]
async fn grants_factors_roles() {
    let s = setup().await;
    let a = s.user("ann@example.com").await;
    let id = &a.external_id;

    let (o, lines, _) = s.exec(&a, "okta.revoke_grants", run()).await;
    assert_eq!(o, Outcome::Done);
    assert_eq!(
        lines,
        vec![
            format!("GET /api/v1/users/{id}/grants"),
            format!("DELETE /api/v1/users/{id}/grants")
        ]
    );
    assert!(s.tenant.user(id).unwrap().grants.is_empty());
    assert_eq!(
        s.exec(&a, "okta.revoke_grants", run()).await.0,
        Outcome::AlreadyDone
    );

    let (o, lines, _) = s.exec(&a, "okta.reset_factors", run()).await;
    assert_eq!(o, Outcome::Done);
    assert_eq!(
        lines,
        vec![
            format!("GET /api/v1/users/{id}/factors"),
            format!("POST /api/v1/users/{id}/lifecycle/reset_factors")
        ]
    );
    assert!(s.tenant.user(id).unwrap().factors.is_empty());
    assert_eq!(
        s.exec(&a, "okta.reset_factors", run()).await.0,
        Outcome::AlreadyDone
    );

    let role = s.tenant.user(id).unwrap().admin_roles[0].clone();
    let (o, lines, detail) = s.exec(&a, "okta.remove_admin_roles", run()).await;
    assert_eq!(o, Outcome::Done);
    assert_eq!(
        lines,
        vec![
            format!("GET /api/v1/users/{id}/roles"),
            format!("DELETE /api/v1/users/{id}/roles/{role}")
        ]
    );
    assert!(detail.contains("APP_ADMIN"));
    assert!(s.tenant.user(id).unwrap().admin_roles.is_empty());
    assert_eq!(
        s.exec(&a, "okta.remove_admin_roles", run()).await.0,
        Outcome::AlreadyDone
    );
}

#[tokio::test]
async fn remove_groups_touches_okta_groups_only_and_restores() {
    let s = setup().await;
    let a = s.user("ann@example.com").await;
    let id = &a.external_id;
    let before = s.tenant.user(id).unwrap().groups;
    assert_eq!(before.len(), 3);
    let snap = s
        .okta
        .snapshot(&a, &action("okta.remove_groups"))
        .await
        .unwrap();
    let okta_groups: Vec<String> = serde_json::from_value(snap.data["groups"].clone()).unwrap();
    assert_eq!(okta_groups.len(), 1);
    let eng = &okta_groups[0];

    let (o, lines, detail) = s.exec(&a, "okta.remove_groups", run()).await;
    assert_eq!(o, Outcome::Done);
    assert_eq!(
        lines,
        vec![
            format!("GET /api/v1/users/{id}/groups"),
            format!("DELETE /api/v1/groups/{eng}/users/{id}")
        ]
    );
    assert!(
        detail.contains("AD Staff (APP_GROUP)") && detail.contains("Everyone (BUILT_IN)"),
        "{detail}"
    );
    let after = s.tenant.user(id).unwrap().groups;
    assert_eq!(after.len(), 2);
    assert!(!after.contains(eng));
    let (o, _, detail) = s.exec(&a, "okta.remove_groups", run()).await;
    assert_eq!(o, Outcome::AlreadyDone);
    assert!(detail.contains("AD Staff"));

    s.tenant.clear_requests();
    assert_eq!(s.okta.restore(&a, &snap).await.unwrap(), Outcome::Done);
    assert_eq!(
        s.lines(),
        vec![
            format!("GET /api/v1/users/{id}"),
            format!("GET /api/v1/users/{id}/groups"),
            format!("PUT /api/v1/groups/{eng}/users/{id}"),
        ]
    );
    assert_eq!(s.tenant.user(id).unwrap().groups, before);
    assert_eq!(
        s.okta.restore(&a, &snap).await.unwrap(),
        Outcome::AlreadyDone
    );
}

#[tokio::test]
async fn unassign_apps_removes_user_scoped_only() {
    let s = setup().await;
    let a = s.user("ann@example.com").await;
    let id = &a.external_id;
    let github = s.tenant.user(id).unwrap().apps.into_iter().next().unwrap();
    let (o, lines, detail) = s.exec(&a, "okta.unassign_apps", run()).await;
    assert_eq!(o, Outcome::Done);
    assert_eq!(lines[0], format!("GET /api/v1/users/{id}/appLinks"));
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(
        lines[1..3]
            .iter()
            .all(|l| l.starts_with("GET /api/v1/apps/") && l.ends_with(&format!("/users/{id}")))
    );
    assert_eq!(
        lines[3],
        format!("DELETE /api/v1/apps/{github}/users/{id}?sendEmail=false")
    );
    assert!(
        detail.contains("1 apps unassigned (GitHub)")
            && detail.contains("through groups")
            && detail.contains("Slack"),
        "{detail}"
    );
    assert!(s.tenant.user(id).unwrap().apps.is_empty());
    let (o, _, _) = s.exec(&a, "okta.unassign_apps", run()).await;
    assert_eq!(o, Outcome::AlreadyDone);
    // The group-assigned app goes with the group.
    let v = s.okta.verify_revoked(&a).await.unwrap();
    assert!(
        v.remaining
            .iter()
            .any(|r| r.starts_with("assigned app Slack")),
        "{:?}",
        v.remaining
    );
    s.exec(&a, "okta.remove_groups", run()).await;
    let v = s.okta.verify_revoked(&a).await.unwrap();
    assert!(
        !v.remaining.iter().any(|r| r.contains("app")),
        "{:?}",
        v.remaining
    );
}

#[tokio::test]
async fn deactivate_and_two_phase_delete() {
    let s = setup().await;
    let a = s.user("ann@example.com").await;
    let id = &a.external_id;
    let snap = s
        .okta
        .snapshot(&a, &action("okta.deactivate"))
        .await
        .unwrap();
    let (o, lines, _) = s.exec(&a, "okta.deactivate", run()).await;
    assert_eq!(o, Outcome::Done);
    assert_eq!(
        lines,
        vec![
            format!("GET /api/v1/users/{id}"),
            format!("POST /api/v1/users/{id}/lifecycle/deactivate?sendEmail=false")
        ]
    );
    assert_eq!(s.tenant.user(id).unwrap().status, "DEPROVISIONED");
    assert_eq!(
        s.exec(&a, "okta.deactivate", run()).await.0,
        Outcome::AlreadyDone
    );
    s.tenant.clear_requests();
    assert_eq!(s.okta.restore(&a, &snap).await.unwrap(), Outcome::Done);
    assert_eq!(
        s.lines()[1],
        format!("POST /api/v1/users/{id}/lifecycle/activate?sendEmail=false")
    );
    assert_eq!(s.tenant.user(id).unwrap().status, "ACTIVE");

    // Delete of an active user: the first DELETE deactivates, the second deletes.
    let (o, lines, _) = s.exec(&a, "okta.delete", dry()).await;
    assert_eq!((o, lines.len()), (Outcome::Done, 1));
    assert!(s.tenant.user(id).is_some());
    let (o, lines, _) = s.exec(&a, "okta.delete", run()).await;
    assert_eq!(o, Outcome::Done);
    assert_eq!(
        lines,
        vec![
            format!("GET /api/v1/users/{id}"),
            format!("DELETE /api/v1/users/{id}?sendEmail=false"),
            format!("DELETE /api/v1/users/{id}?sendEmail=false"),
        ]
    );
    assert!(s.tenant.user(id).is_none());
    assert_eq!(
        s.exec(&a, "okta.delete", run()).await.0,
        Outcome::AlreadyDone
    );
}

#[tokio::test]
async fn discovery_lists_app_links_and_verify_lists_access() {
    let s = setup().await;
    let a = s.user("ann@example.com").await;
    let found = s.okta.discover(&a).await.unwrap();
    let apps: Vec<(&str, &str)> = found
        .iter()
        .map(|f| (f.app.as_str(), f.attributes["okta_app_label"].as_str()))
        .collect();
    assert_eq!(apps, vec![("github", "GitHub"), ("slack", "Slack")]);
    assert!(
        found
            .iter()
            .all(|f| f.external_id == a.external_id && f.attributes["via"] == "okta")
    );
    let v = s.okta.verify_revoked(&a).await.unwrap();
    assert!(!v.revoked);
    let kinds: Vec<&str> = v
        .remaining
        .iter()
        .map(|r| r.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec![
            "status", "member", "assigned", "assigned", "admin", "OAuth", "OAuth", "enrolled",
            "enrolled"
        ],
        "{:?}",
        v.remaining
    );
}

#[tokio::test]
async fn every_action_on_a_deleted_user_is_not_found() {
    let s = setup().await;
    let a = s.user("gone@example.com").await;
    s.tenant.remove_user(&a.external_id);
    for name in [
        "okta.suspend",
        "okta.clear_sessions",
        "okta.revoke_grants",
        "okta.reset_factors",
        "okta.remove_groups",
        "okta.unassign_apps",
        "okta.remove_admin_roles",
        "okta.deactivate",
    ] {
        for opts in [dry(), run()] {
            let (o, lines, _) = s.exec(&a, name, opts).await;
            assert_eq!(o, Outcome::NotFound, "{name}");
            assert_eq!(lines.len(), 1, "{name}: one read, no write: {lines:?}");
        }
    }
    let e = s
        .okta
        .snapshot(&a, &action("okta.suspend"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let v = s.okta.verify_revoked(&a).await.unwrap();
    assert!(v.revoked);
}

#[tokio::test]
async fn lookup_escapes_quotes_and_backslashes() {
    let s = setup().await;
    let victim = s.user("victim@example.com").await;
    let hostile = r#"a" or profile.login sw ""#;
    s.tenant.clear_requests();
    let found = s
        .okta
        .lookup(&LookupRequest::person(Person::new("p", hostile)))
        .await
        .unwrap();
    assert!(found.is_none());
    let reqs = s.tenant.requests();
    assert_eq!(reqs.len(), 1);
    let esc = r#""a\" or profile.login sw \"""#;
    assert_eq!(
        reqs[0].query_param("search").unwrap(),
        format!("profile.login eq {esc} or profile.email eq {esc}")
    );
    // A user whose login really is that string is matched literally, and only that user.
    let odd = s.tenant.add_user(NewUser::active(hostile));
    let found = s
        .okta
        .lookup(&LookupRequest::person(Person::new("p", hostile)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.external_id, odd);
    assert_ne!(found.external_id, victim.external_id);
    let bs = r"back\slash@example.com";
    assert_eq!(
        search_expression(&[bs]).unwrap().unwrap(),
        r#"profile.login eq "back\\slash@example.com" or profile.email eq "back\\slash@example.com""#
    );
    // Control characters are refused before anything is sent.
    s.tenant.clear_requests();
    for bad in ["victim@example.com\0", "victim@example.com\r\nX: 1"] {
        let e = s
            .okta
            .lookup(&LookupRequest::person(Person::new("p", bad)))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }
    assert!(s.tenant.requests().is_empty());
    // Unicode look-alikes (Kelvin sign for K) are not folded.
    assert!(
        s.okta
            .lookup(&LookupRequest::person(Person::new(
                "p",
                "victim@example.com".replace('v', "\u{212A}")
            )))
            .await
            .unwrap()
            .is_none()
    );
    // By login, email alias and id.
    let found = s
        .okta
        .lookup(&LookupRequest::person(Person::new(
            "p",
            "VICTIM@example.com",
        )))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.external_id, victim.external_id);
    // An external id that is someone's login is not taken as that user.
    let by_login = LookupRequest::person(Person::new("p", "x@example.com"))
        .with_external_id("victim@example.com");
    assert!(s.okta.lookup(&by_login).await.unwrap().is_none());
}

#[tokio::test]
async fn rate_limit_429_carries_the_reset_hint() {
    let s = setup_with(RateLimits::enterprise().with(RateFamily::UserGet, 2)).await;
    let a = s.user("ann@example.com").await;
    // Another client (its own limiter) spends the org's budget.
    let other = OktaConfig::new()
        .with_org_url(s.tenant.uri())
        .with_allow_plain_http(true)
        .with_api_token(Secret::new(s.tenant.token()))
        .build()
        .unwrap();
    other
        .execute(&a, &action("okta.suspend"), &dry())
        .await
        .unwrap();
    other
        .execute(&a, &action("okta.suspend"), &dry())
        .await
        .unwrap();
    let e = s
        .okta
        .execute(&a, &action("okta.suspend"), &run())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert!(e.is_retryable());
    assert_eq!(e.operation(), "okta.suspend");
    let hint = e.retry_after().expect("the reset hint");
    assert!(
        hint > Duration::ZERO && hint <= Duration::from_secs(60),
        "{hint:?}"
    );
    assert!(e.to_string().contains("E0000047"), "{e}");
    assert_eq!(s.tenant.user(&a.external_id).unwrap().status, "ACTIVE");
    assert_eq!(s.tenant.rate_limited_count(), 1);
}

#[tokio::test]
async fn the_adaptive_limiter_waits_for_the_reset_instead_of_taking_a_429() {
    // 3 user reads per 2-second window; 7 reads need three windows.
    let s = setup_with(
        RateLimits::enterprise()
            .with(RateFamily::UserGet, 3)
            .with_window_secs(2),
    )
    .await;
    let a = s.user("ann@example.com").await;
    let started = std::time::Instant::now();
    for _ in 0..7 {
        s.okta
            .execute(&a, &action("okta.suspend"), &dry())
            .await
            .unwrap();
    }
    let elapsed = started.elapsed();
    assert_eq!(
        s.tenant.rate_limited_count(),
        0,
        "the limiter let a request through into a 429"
    );
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(7),
        "{elapsed:?}"
    );
    eprintln!("7 reads at 3 per 2 s window: {elapsed:?}, 0 x 429");
}

#[tokio::test]
async fn server_errors_are_retryable_and_retries_converge() {
    let s = setup().await;
    let a = s.user("ann@example.com").await;
    s.tenant.fail_next(1, 503);
    let e = s
        .okta
        .execute(&a, &action("okta.remove_groups"), &run())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.is_retryable());
    let r = s
        .okta
        .execute(&a, &action("okta.remove_groups"), &run())
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Done);
}

#[tokio::test]
async fn oauth_private_key_jwt_against_the_simulator() {
    let tenant = OktaTenant::start().await;
    tenant.enable_oauth("sim-access-token-123456", 3600).await;
    let okta = OktaConfig::new()
        .with_org_url(tenant.uri())
        .with_allow_plain_http(true)
        .with_oauth(
            "0oaServiceApp",
            Secret::new(include_str!("data/test-rsa.pem")),
        )
        .build()
        .unwrap();
    let id = tenant.add_user(NewUser::active("ann@example.com"));
    let a = okta
        .lookup(&LookupRequest::person(Person::new("p", "ann@example.com")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.external_id, id);
    assert_eq!(
        okta.execute(&a, &action("okta.suspend"), &run())
            .await
            .unwrap()
            .outcome,
        Outcome::Done
    );
    let reqs = tenant.requests();
    assert!(reqs.iter().all(|r| {
        r.headers
            .iter()
            .any(|(k, v)| k == "authorization" && v == "Bearer [REDACTED]")
    }));
    assert!(!format!("{okta:?}").contains("sim-access-token"));
}

#[tokio::test(flavor = "current_thread")]
async fn the_token_never_appears_in_traces_debug_or_errors() {
    let s = setup().await;
    let token = s.tenant.token().to_owned();
    let capture = TraceCapture::default();
    let guard = capture.set_default();
    let a = s.user("ann@example.com").await;
    let mut texts = Vec::new();
    for name in [
        "okta.suspend",
        "okta.clear_sessions",
        "okta.remove_groups",
        "okta.unassign_apps",
    ] {
        s.okta.execute(&a, &action(name), &run()).await.unwrap();
    }
    s.tenant.fail_next(1, 500);
    texts.push(format!(
        "{:?}",
        s.okta.verify_revoked(&a).await.unwrap_err()
    ));
    s.tenant.remove_user(&a.external_id);
    texts.push(
        s.okta
            .snapshot(&a, &action("okta.suspend"))
            .await
            .unwrap_err()
            .to_string(),
    );
    let bad = OktaConfig::new()
        .with_org_url(s.tenant.uri())
        .with_allow_plain_http(true)
        .with_api_token(Secret::new("wrong-token"))
        .build()
        .unwrap();
    let e = bad
        .lookup(&LookupRequest::person(Person::new("p", "x@example.com")))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated);
    texts.push(format!("{e} {e:?}"));
    drop(guard);
    texts.push(capture.text());
    texts.push(format!("{:?} {:#?}", s.okta, s.okta));
    texts.push(format!(
        "{:?}",
        OktaConfig::new().with_api_token(Secret::new(&token))
    ));
    assert!(
        texts[3].contains("span http.request") && texts[3].contains("status=204"),
        "{}",
        texts[3]
    );
    for t in &texts {
        assert!(!t.contains(&token), "the token leaked: {t}");
        assert!(!t.contains("wrong-token"), "the token leaked: {t}");
    }
}

/// Okta refuses a lifecycle change from the wrong status with a 400 `E0000001`. When someone
/// else suspended the user between our read and our call, a fresh read shows the goal holds.
#[tokio::test]
async fn a_concurrent_suspend_is_reported_already_done() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    let user = |status: &str| serde_json::json!({"id": "00u1", "status": status, "profile": {"login": "a@example.com"}});
    Mock::given(method("GET"))
        .and(path("/api/v1/users/00u1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(user("ACTIVE")))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/users/00u1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(user("SUSPENDED")))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v1/users/00u1/lifecycle/suspend"))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "errorCode": "E0000001", "errorSummary": "Api validation failed: suspend",
            "errorLink": "E0000001", "errorId": "x",
            "errorCauses": [{"errorSummary": "Cannot suspend a user that is not active"}]
        })))
        .expect(1)
        .mount(&server)
        .await;
    let okta = OktaConfig::new()
        .with_org_url(server.uri())
        .with_allow_plain_http(true)
        .with_api_token(Secret::new("tok"))
        .build()
        .unwrap();
    let a = AccountRef::new(
        "okta",
        "00u1",
        "a@example.com",
        offboard_core::AccountStatus::Active,
    );
    let r = okta
        .execute(&a, &action("okta.suspend"), &run())
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::AlreadyDone);
    assert_eq!(r.detail.as_deref(), Some("already SUSPENDED"));
}
