//! The Google connector against the simulated tenant: the exact requests each action sends, the
//! tenant's state after it, repeats, dry runs, rollbacks, lookup safety, throttling and secret
//! redaction.

mod common;

use std::sync::Arc;
use std::time::Duration;

use offboard_core::{
    AccountRef, Action, ActionName, Connector, ErrorKind, ExecuteOptions, LookupRequest, Outcome,
    Person, Secret,
};
use offboard_google::{GoogleConfig, GoogleConnector, MoveToOu};
use offboard_testkit::Fixture;
use offboard_testkit::sim::google::{GoogleFixture, GoogleLimits, GoogleTenant, NewUser, Throttle};

const V1: &str = "/admin/directory/v1";

struct Setup {
    tenant: Arc<GoogleTenant>,
    fixture: GoogleFixture,
    google: GoogleConnector,
}

fn connector(tenant: &GoogleTenant) -> GoogleConnector {
    GoogleConfig::new()
        .with_base_url(tenant.uri())
        .with_allow_plain_http(true)
        .with_access_token(Secret::new(tenant.token()))
        .build()
        .unwrap()
}

async fn setup_with(limits: GoogleLimits) -> Setup {
    let tenant =
        Arc::new(GoogleTenant::start_with(format!("ya29.SimTok{}", "x".repeat(30)), limits).await);
    let google = connector(&tenant);
    let fixture = GoogleFixture::new(Arc::clone(&tenant));
    Setup {
        tenant,
        fixture,
        google,
    }
}

async fn setup() -> Setup {
    setup_with(GoogleLimits::default_quota()).await
}

fn action(name: &'static str) -> Action {
    if name == "google.move_to_ou" {
        return Action::with_params(
            ActionName::from_static(name),
            &MoveToOu {
                ou: "/Offboarded".into(),
            },
        )
        .unwrap();
    }
    Action::new(ActionName::from_static(name))
}

fn run() -> ExecuteOptions {
    ExecuteOptions::default().with_idempotency_key("task-1")
}

fn dry() -> ExecuteOptions {
    run().with_dry_run(true)
}

impl Setup {
    async fn user(&self, login: &str) -> AccountRef {
        self.fixture.create_user(login, &[]).await
    }

    /// Runs the action and returns its outcome, the requests it sent (`METHOD path?query`)
    /// and the detail.
    async fn exec(
        &self,
        a: &AccountRef,
        name: &'static str,
        opts: ExecuteOptions,
    ) -> (Outcome, Vec<String>, String) {
        self.tenant.clear_requests();
        let reply = self.google.execute(a, &action(name), &opts).await.unwrap();
        (
            reply.outcome,
            self.lines(),
            reply.detail.unwrap_or_default(),
        )
    }

    fn lines(&self) -> Vec<String> {
        common::lines(&self.tenant)
    }

    /// Runs the action (not a dry run); it must fail.
    async fn fails(&self, a: &AccountRef, name: &'static str) -> offboard_core::Error {
        self.google
            .execute(a, &action(name), &run())
            .await
            .unwrap_err()
    }
}

#[tokio::test]
async fn security_actions_send_exact_requests_and_change_state() {
    let s = setup().await;
    let a = s.user("ann@example.test").await;
    let id = &a.external_id;
    let u = format!("{V1}/users/{id}");

    // Backup codes.
    let (o, lines, _) = s.exec(&a, "google.invalidate_backup_codes", dry()).await;
    assert_eq!(
        (o, lines),
        (Outcome::Done, vec![format!("GET {u}/verificationCodes")])
    );
    assert_eq!(s.tenant.user(id).unwrap().backup_codes, 10);
    let (o, lines, detail) = s.exec(&a, "google.invalidate_backup_codes", run()).await;
    assert_eq!(o, Outcome::Done);
    assert_eq!(
        lines,
        vec![
            format!("GET {u}/verificationCodes"),
            format!("POST {u}/verificationCodes/invalidate")
        ]
    );
    assert!(detail.contains("10 backup codes"), "{detail}");
    assert_eq!(s.tenant.user(id).unwrap().backup_codes, 0);
    let (o, lines, _) = s.exec(&a, "google.invalidate_backup_codes", run()).await;
    assert_eq!((o, lines.len()), (Outcome::AlreadyDone, 1));

    // App-specific passwords.
    let code = s.tenant.user(id).unwrap().asps[0];
    let (o, lines, detail) = s.exec(&a, "google.delete_asps", run()).await;
    assert_eq!(o, Outcome::Done);
    assert_eq!(
        lines,
        vec![format!("GET {u}/asps"), format!("DELETE {u}/asps/{code}")]
    );
    assert!(detail.contains("Thunderbird"), "{detail}");
    assert!(s.tenant.user(id).unwrap().asps.is_empty());
    assert_eq!(
        s.exec(&a, "google.delete_asps", run()).await.0,
        Outcome::AlreadyDone
    );

    // OAuth tokens.
    let (o, lines, detail) = s.exec(&a, "google.revoke_tokens", run()).await;
    assert_eq!(o, Outcome::Done);
    assert_eq!(
        lines,
        vec![
            format!("GET {u}/tokens"),
            format!("DELETE {u}/tokens/1234-slack.apps.googleusercontent.com"),
            format!("DELETE {u}/tokens/5678-zoom.apps.googleusercontent.com"),
        ]
    );
    assert!(
        detail.contains("2 OAuth tokens revoked (Slack, Zoom)"),
        "{detail}"
    );
    assert!(s.tenant.user(id).unwrap().tokens.is_empty());
    assert_eq!(
        s.exec(&a, "google.revoke_tokens", run()).await.0,
        Outcome::AlreadyDone
    );

    // Sign out: remembered per idempotency key.
    let (o, lines, _) = s.exec(&a, "google.sign_out", run()).await;
    assert_eq!(o, Outcome::Done);
    assert_eq!(lines, vec![format!("GET {u}"), format!("POST {u}/signOut")]);
    assert_eq!(s.tenant.user(id).unwrap().sessions, 0);
    // Body-less POSTs declare their empty body (Google answers 411 otherwise).
    let sign_out = s.tenant.requests().pop().unwrap();
    assert!(
        sign_out
            .headers
            .contains(&("content-length".to_owned(), "0".to_owned())),
        "{sign_out:?}"
    );
    let (o, lines, _) = s.exec(&a, "google.sign_out", run()).await;
    assert_eq!((o, lines.len()), (Outcome::AlreadyDone, 1));
    let other_task = ExecuteOptions::default().with_idempotency_key("task-2");
    let (o, lines, _) = s.exec(&a, "google.sign_out", other_task).await;
    assert_eq!((o, lines.len()), (Outcome::Done, 2));
}

#[tokio::test]
async fn suspend_invalidates_backup_codes_first_and_rolls_back() {
    let s = setup().await;
    let spec = s
        .google
        .capabilities()
        .action(&ActionName::from_static("google.suspend"))
        .unwrap()
        .clone();
    assert!(spec.reversible && !spec.critical);
    // No ordering dependency: a failed hygiene step must never skip the suspension.
    assert!(spec.after.is_empty(), "{:?}", spec.after);
    let a = s.user("ann@example.test").await;
    let id = &a.external_id;
    let u = format!("{V1}/users/{id}");
    let snap = s
        .google
        .snapshot(&a, &action("google.suspend"))
        .await
        .unwrap();
    assert_eq!(snap.data, serde_json::json!({"suspended": false}));

    let (o, lines, detail) = s.exec(&a, "google.suspend", dry()).await;
    assert_eq!(
        (o, lines),
        (
            Outcome::Done,
            vec![format!("GET {u}"), format!("GET {u}/verificationCodes")]
        )
    );
    assert!(
        detail.contains("10 backup codes invalidated first"),
        "{detail}"
    );
    let state = s.tenant.user(id).unwrap();
    assert!(!state.suspended && state.backup_codes == 10);

    // Google keeps a suspended user's backup codes, so they go first.
    let (o, lines, detail) = s.exec(&a, "google.suspend", run()).await;
    assert_eq!(o, Outcome::Done);
    assert_eq!(
        lines,
        vec![
            format!("GET {u}"),
            format!("GET {u}/verificationCodes"),
            format!("POST {u}/verificationCodes/invalidate"),
            format!("PATCH {u}")
        ]
    );
    assert_eq!(detail, "suspended; its 10 backup codes invalidated first");
    let patch = s.tenant.requests().pop().unwrap();
    assert_eq!(patch.body, Some(serde_json::json!({"suspended": true})));
    let state = s.tenant.user(id).unwrap();
    assert!(state.suspended);
    assert_eq!(state.backup_codes, 0);
    assert_eq!(state.groups.len(), 2, "suspension keeps groups");
    assert_eq!(
        s.exec(&a, "google.invalidate_backup_codes", run()).await.0,
        Outcome::AlreadyDone
    );

    assert_eq!(
        s.exec(&a, "google.suspend", run()).await.0,
        Outcome::AlreadyDone
    );
    s.tenant.clear_requests();
    assert_eq!(s.google.restore(&a, &snap).await.unwrap(), Outcome::Done);
    assert_eq!(s.lines(), vec![format!("GET {u}"), format!("PATCH {u}")]);
    assert_eq!(
        s.tenant.requests()[1].body,
        Some(serde_json::json!({"suspended": false}))
    );
    assert!(!s.tenant.user(id).unwrap().suspended);
    assert_eq!(
        s.google.restore(&a, &snap).await.unwrap(),
        Outcome::AlreadyDone
    );
}

/// When the backup codes cannot be invalidated, the user is suspended all the same and the
/// report says what remains; the backup-code action then says why nothing more is possible.
#[tokio::test]
async fn suspend_still_suspends_when_the_backup_codes_refuse() {
    let s = setup().await;
    let a = s.user("ann@example.test").await;
    let id = &a.external_id;
    s.tenant.fail_route(
        "POST",
        "admin/directory/v1/users/{userKey}/verificationCodes/invalidate",
        Some(500),
    );
    let (o, _, detail) = s.exec(&a, "google.suspend", run()).await;
    assert_eq!(o, Outcome::Done);
    assert_eq!(
        detail,
        "suspended; its 10 backup codes could not be invalidated first (unavailable): Google \
         keeps them while the user is suspended"
    );
    let state = s.tenant.user(id).unwrap();
    assert!(state.suspended);
    assert_eq!(state.backup_codes, 10);
    // Healed, but the user is suspended now: Google refuses, and the action says why.
    s.tenant.fail_route(
        "POST",
        "admin/directory/v1/users/{userKey}/verificationCodes/invalidate",
        None,
    );
    let e = s.fails(&a, "google.invalidate_backup_codes").await;
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(!e.is_retryable());
    assert!(
        e.to_string()
            .contains("the user is suspended and Google keeps its 10 backup codes"),
        "{e}"
    );
    assert_eq!(s.tenant.user(id).unwrap().backup_codes, 10);
}

#[tokio::test]
async fn move_to_ou_and_hide_from_gal_restore_the_previous_values() {
    let s = setup().await;
    let a = s.user("ann@example.test").await;
    let id = &a.external_id;

    let snap = s
        .google
        .snapshot(&a, &action("google.move_to_ou"))
        .await
        .unwrap();
    assert_eq!(
        snap.data,
        serde_json::json!({"org_unit_path": "/Engineering"})
    );
    let (o, _, detail) = s.exec(&a, "google.move_to_ou", run()).await;
    assert_eq!(o, Outcome::Done);
    assert_eq!(detail, "moved from /Engineering to /Offboarded");
    assert_eq!(
        s.tenant.requests()[1].body,
        Some(serde_json::json!({"orgUnitPath": "/Offboarded"}))
    );
    assert_eq!(s.tenant.user(id).unwrap().org_unit_path, "/Offboarded");
    assert_eq!(
        s.exec(&a, "google.move_to_ou", run()).await.0,
        Outcome::AlreadyDone
    );
    assert_eq!(s.google.restore(&a, &snap).await.unwrap(), Outcome::Done);
    assert_eq!(s.tenant.user(id).unwrap().org_unit_path, "/Engineering");

    // A path that is not an org unit path is refused before anything is sent.
    s.tenant.clear_requests();
    for bad in ["Offboarded", "", "/x\ny"] {
        let e = s
            .google
            .execute(
                &a,
                &Action::with_params(
                    ActionName::from_static("google.move_to_ou"),
                    &MoveToOu { ou: bad.into() },
                )
                .unwrap(),
                &run(),
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad:?}");
    }
    let e = s
        .google
        .execute(
            &a,
            &Action::new(ActionName::from_static("google.move_to_ou")),
            &run(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(s.tenant.requests().is_empty());
    // An org unit that does not exist: Google's 400.
    let e = s
        .google
        .execute(
            &a,
            &Action::with_params(
                ActionName::from_static("google.move_to_ou"),
                &MoveToOu {
                    ou: "/Nowhere".into(),
                },
            )
            .unwrap(),
            &run(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("INVALID_OU_ID"), "{e}");

    let snap = s
        .google
        .snapshot(&a, &action("google.hide_from_gal"))
        .await
        .unwrap();
    let (o, _, _) = s.exec(&a, "google.hide_from_gal", run()).await;
    assert_eq!(o, Outcome::Done);
    assert_eq!(
        s.tenant.requests()[1].body,
        Some(serde_json::json!({"includeInGlobalAddressList": false}))
    );
    assert!(!s.tenant.user(id).unwrap().include_in_gal);
    assert_eq!(
        s.exec(&a, "google.hide_from_gal", run()).await.0,
        Outcome::AlreadyDone
    );
    assert_eq!(s.google.restore(&a, &snap).await.unwrap(), Outcome::Done);
    assert!(s.tenant.user(id).unwrap().include_in_gal);
}

#[tokio::test]
async fn remove_from_groups_keeps_roles_for_rollback() {
    let s = setup().await;
    let a = s.user("ann@example.test").await;
    let id = &a.external_id;
    let (eng, staff) = s.fixture.groups();
    let before = s.tenant.user(id).unwrap().groups;
    assert_eq!(before[staff], "OWNER");

    s.tenant.clear_requests();
    let snap = s
        .google
        .snapshot(&a, &action("google.remove_from_groups"))
        .await
        .unwrap();
    let mut expected_reads = vec![format!("GET {V1}/groups?userKey={id}&maxResults=200")];
    let mut ids = [eng.to_owned(), staff.to_owned()];
    ids.sort();
    for g in &ids {
        expected_reads.push(format!("GET {V1}/groups/{g}/members/{id}"));
    }
    assert_eq!(s.lines(), expected_reads);
    let roles: Vec<(String, String)> = snap.data["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["group"].as_str().unwrap().to_owned(),
                m["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        roles.contains(&(staff.to_owned(), "OWNER".into())),
        "{roles:?}"
    );

    let (o, lines, detail) = s.exec(&a, "google.remove_from_groups", run()).await;
    assert_eq!(o, Outcome::Done);
    assert_eq!(
        lines[0],
        format!("GET {V1}/groups?userKey={id}&maxResults=200")
    );
    let mut deletes: Vec<String> = lines[1..].to_vec();
    deletes.sort();
    assert_eq!(
        deletes,
        ids.iter()
            .map(|g| format!("DELETE {V1}/groups/{g}/members/{id}"))
            .collect::<Vec<_>>()
    );
    assert!(detail.contains("removed from 2 groups"), "{detail}");
    assert!(s.tenant.user(id).unwrap().groups.is_empty());
    assert_eq!(
        s.exec(&a, "google.remove_from_groups", run()).await.0,
        Outcome::AlreadyDone
    );

    s.tenant.clear_requests();
    assert_eq!(s.google.restore(&a, &snap).await.unwrap(), Outcome::Done);
    let posts: Vec<_> = s
        .tenant
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(posts.len(), 2);
    assert!(
        posts
            .iter()
            .any(|p| p.path == format!("{V1}/groups/{staff}/members")
                && p.body
                    == Some(serde_json::json!({"email": "ann@example.test", "role": "OWNER"})))
    );
    assert_eq!(s.tenant.user(id).unwrap().groups, before);
    assert_eq!(
        s.google.restore(&a, &snap).await.unwrap(),
        Outcome::AlreadyDone
    );
}

#[tokio::test]
async fn group_listing_follows_page_tokens() {
    let s = setup().await;
    let a = s.user("ann@example.test").await;
    for i in 0..203 {
        let g = s
            .tenant
            .add_group(format!("g{i}@example.test"), format!("G{i}"));
        s.tenant.add_member(&g, &a.external_id, "MEMBER");
    }
    let (o, lines, detail) = s.exec(&a, "google.remove_from_groups", run()).await;
    assert_eq!(o, Outcome::Done);
    assert!(lines[1].contains("pageToken=200"), "{:?}", &lines[..2]);
    assert!(detail.contains("removed from 205 groups"), "{detail}");
    assert!(s.tenant.user(&a.external_id).unwrap().groups.is_empty());
}

#[tokio::test]
async fn delete_then_everything_is_not_found_or_already_done() {
    let s = setup().await;
    let a = s.user("ann@example.test").await;
    let id = &a.external_id;
    let spec = s
        .google
        .capabilities()
        .action(&ActionName::from_static("google.delete"))
        .unwrap()
        .clone();
    assert!(spec.critical && !spec.reversible);
    let (o, lines, _) = s.exec(&a, "google.delete", dry()).await;
    assert_eq!((o, lines.len()), (Outcome::Done, 1));
    assert!(s.tenant.user(id).is_some());
    let (o, lines, _) = s.exec(&a, "google.delete", run()).await;
    assert_eq!(o, Outcome::Done);
    assert_eq!(
        lines,
        vec![
            format!("GET {V1}/users/{id}"),
            format!("DELETE {V1}/users/{id}")
        ]
    );
    assert!(s.tenant.user(id).is_none());
    assert_eq!(
        s.exec(&a, "google.delete", run()).await.0,
        Outcome::AlreadyDone
    );
    for name in [
        "google.invalidate_backup_codes",
        "google.delete_asps",
        "google.revoke_tokens",
        "google.sign_out",
        "google.suspend",
        "google.move_to_ou",
        "google.hide_from_gal",
        "google.remove_from_groups",
    ] {
        for opts in [dry(), run()] {
            let (o, lines, _) = s.exec(&a, name, opts).await;
            assert_eq!(o, Outcome::NotFound, "{name}");
            assert_eq!(lines.len(), 1, "{name}: one read, no write: {lines:?}");
        }
    }
    let e = s
        .google
        .snapshot(&a, &action("google.suspend"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(s.google.verify_revoked(&a).await.unwrap().revoked);
    assert!(s.google.discover(&a).await.unwrap().is_empty());
}

/// A 404 on one token's delete (revoked meanwhile) counts as done for that token; a 404 on the
/// write itself (the user deleted between our read and our call) is `not_found`.
#[tokio::test]
async fn a_404_between_read_and_write_counts_as_done() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    let not_found = serde_json::json!({"error": {"code": 404, "message": "Resource Not Found: clientId",
        "errors": [{"message": "Resource Not Found: clientId", "domain": "global", "reason": "notFound"}]}});
    Mock::given(method("GET"))
        .and(path(format!("{V1}/users/42/tokens")))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "kind": "admin#directory#tokenList",
            "items": [{"clientId": "a.apps", "displayText": "A"}, {"clientId": "b.apps", "displayText": "B"}]
        })))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(format!("{V1}/users/42/tokens/a.apps")))
        .respond_with(ResponseTemplate::new(404).set_body_json(not_found.clone()))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(format!("{V1}/users/42/tokens/b.apps")))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{V1}/users/42")))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "id": "42", "primaryEmail": "a@example.test", "suspended": false
        })))
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path(format!("{V1}/users/42")))
        .respond_with(ResponseTemplate::new(404).set_body_json(not_found))
        .expect(1)
        .mount(&server)
        .await;
    let google = GoogleConfig::new()
        .with_base_url(server.uri())
        .with_allow_plain_http(true)
        .with_access_token(Secret::new("tok"))
        .build()
        .unwrap();
    let a = AccountRef::new(
        "google",
        "42",
        "a@example.test",
        offboard_core::AccountStatus::Active,
    );
    let r = google
        .execute(&a, &action("google.revoke_tokens"), &run())
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Done);
    assert_eq!(r.detail.as_deref(), Some("1 OAuth tokens revoked (A, B)"));
    let r = google
        .execute(&a, &action("google.suspend"), &run())
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::NotFound);
}

#[tokio::test]
async fn verify_and_discover() {
    let s = setup().await;
    let a = s.user("ann@example.test").await;
    let v = s.google.verify_revoked(&a).await.unwrap();
    assert!(!v.revoked);
    let kinds: Vec<&str> = v
        .remaining
        .iter()
        .map(|r| r.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec![
            "not",
            "OAuth",
            "OAuth",
            "app-specific",
            "member",
            "member",
            "mobile"
        ],
        "{:?}",
        v.remaining
    );
    let found = s.google.discover(&a).await.unwrap();
    let apps: Vec<(&str, &str)> = found
        .iter()
        .map(|f| (f.app.as_str(), f.attributes["google_client_id"].as_str()))
        .collect();
    assert_eq!(
        apps,
        vec![
            ("slack", "1234-slack.apps.googleusercontent.com"),
            ("zoom", "5678-zoom.apps.googleusercontent.com")
        ]
    );
    assert!(
        found
            .iter()
            .all(|f| f.external_id == a.external_id && f.attributes["via"] == "google")
    );
    for name in [
        "google.delete_asps",
        "google.revoke_tokens",
        "google.suspend",
        "google.remove_from_groups",
        "google.wipe_devices",
    ] {
        s.exec(&a, name, run()).await;
    }
    let v = s.google.verify_revoked(&a).await.unwrap();
    assert!(v.revoked, "{:?}", v.remaining);
}

#[tokio::test]
async fn lookup_is_exact_by_primary_email_alias_and_id() {
    let s = setup().await;
    let ann = s
        .fixture
        .create_user("ann@example.test", &["ann.alias@example.test"])
        .await;
    let id = &ann.external_id;
    let find = |email: &str| {
        let email = email.to_owned();
        let g = &s.google;
        async move {
            g.lookup(&LookupRequest::person(Person::new("p", email)))
                .await
        }
    };
    s.tenant.clear_requests();
    let found = find("ANN@example.test").await.unwrap().unwrap();
    assert_eq!(&found.external_id, id);
    assert_eq!(found.login, "ann@example.test");
    assert_eq!(s.lines(), vec![format!("GET {V1}/users/ANN@example.test")]);
    let found = find("Ann.Alias@Example.Test").await.unwrap().unwrap();
    assert_eq!(&found.external_id, id);
    // By id: only that id.
    let by_id = LookupRequest::person(Person::new("p", "x@example.test")).with_external_id(id);
    assert_eq!(
        &s.google.lookup(&by_id).await.unwrap().unwrap().external_id,
        id
    );
    // An email given as external id is not taken as that user (and is not even sent).
    s.tenant.clear_requests();
    let by_email = LookupRequest::person(Person::new("p", "x@example.test"))
        .with_external_id("ann@example.test");
    assert!(s.google.lookup(&by_email).await.unwrap().is_none());
    assert!(s.tenant.requests().is_empty());
    // A numeric "address" is never sent as a userKey (Google would take it for an id).
    assert!(find(id).await.unwrap().is_none());
    assert!(s.tenant.requests().is_empty());
}

#[tokio::test]
async fn hostile_lookups_are_refused_or_literal() {
    let s = setup().await;
    let victim = s.user("victim@example.test").await;
    s.tenant.clear_requests();
    for hostile in [
        "*",
        "\"",
        "' or 1 eq 1",
        "",
        "*@example.test",
        "a\" or \"\"=\"",
    ] {
        let r = s
            .google
            .lookup(&LookupRequest::person(Person::new("p", hostile)))
            .await
            .unwrap();
        assert!(r.is_none(), "{hostile:?}");
    }
    // Only the address-shaped one was sent, as one encoded path segment.
    assert_eq!(s.lines(), vec![format!("GET {V1}/users/*@example.test")]);
    // Path tricks stay inside one segment (and are sent, as literal addresses).
    s.tenant.clear_requests();
    let tricky = [
        "x@y/../../groups",
        "x@y?userKey=12&customer=my_customer",
        "x@y#f",
        "x@y%2F..",
        "..@.",
    ];
    for t in tricky {
        assert!(
            s.google
                .lookup(&LookupRequest::person(Person::new("p", t)))
                .await
                .unwrap()
                .is_none()
        );
    }
    let sent = s.tenant.requests();
    assert_eq!(sent.len(), tricky.len());
    for r in sent {
        assert!(r.path.starts_with(&format!("{V1}/users/")), "{}", r.path);
        assert_eq!(r.path.matches('/').count(), 5, "{}", r.path);
        assert!(r.query.is_empty(), "{:?}", r.query);
    }
    // Control characters: refused before anything is sent.
    s.tenant.clear_requests();
    for bad in ["victim@example.test\0", "victim@example.test\r\nX: 1"] {
        let e = s
            .google
            .lookup(&LookupRequest::person(Person::new("p", bad)))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }
    assert!(s.tenant.requests().is_empty());
    // Unicode look-alikes (Kelvin sign) are not folded.
    assert!(
        s.google
            .lookup(&LookupRequest::person(Person::new(
                "p",
                "victim@example.test".replace('v', "\u{212A}")
            )))
            .await
            .unwrap()
            .is_none()
    );
    // A literal address with a quote in it is matched literally, and only that user.
    let odd = s.tenant.add_user(NewUser::active("o'neil\"x@example.test"));
    let found = s
        .google
        .lookup(&LookupRequest::person(Person::new(
            "p",
            "O'Neil\"x@example.test",
        )))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.external_id, odd);
    assert_ne!(found.external_id, victim.external_id);
}

#[tokio::test]
async fn two_people_addresses_on_two_users_are_ambiguous() {
    let s = setup().await;
    s.user("one@example.test").await;
    s.user("two@example.test").await;
    let e = s
        .google
        .lookup(&LookupRequest::person(
            Person::new("p", "one@example.test").with_alias("two@example.test"),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Ambiguous);
}

#[tokio::test]
async fn quota_403_is_rate_limited_with_a_hint() {
    let s = setup_with(GoogleLimits::default_quota().with_per_minute(2)).await;
    let a = s.user("ann@example.test").await;
    // The dry run reads the user and its backup codes: the budget of two is spent.
    s.exec(&a, "google.suspend", dry()).await;
    let e = s.fails(&a, "google.suspend").await;
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert!(e.is_retryable());
    assert_eq!(e.operation(), "google.suspend");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(1)));
    assert!(e.to_string().contains("403"), "{e}");
    assert!(!s.tenant.user(&a.external_id).unwrap().suspended);
    assert_eq!(s.tenant.rate_limited_count(), 1);
}

#[tokio::test]
async fn throttling_429_carries_retry_after() {
    let s = setup_with(
        GoogleLimits::default_quota()
            .with_per_minute(1)
            .with_window_secs(30)
            .with_throttle(Throttle::TooMany429),
    )
    .await;
    let a = s.user("ann@example.test").await;
    s.exec(&a, "google.suspend", dry()).await;
    let e = s.fails(&a, "google.revoke_tokens").await;
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    let hint = e.retry_after().expect("Retry-After");
    assert!(
        hint >= Duration::from_secs(1) && hint <= Duration::from_secs(30),
        "{hint:?}"
    );
    assert_eq!(s.tenant.user(&a.external_id).unwrap().tokens.len(), 2);
}

#[tokio::test]
async fn server_errors_are_retryable_and_retries_converge() {
    let s = setup().await;
    let a = s.user("ann@example.test").await;
    s.tenant.fail_next(1, 503);
    let e = s.fails(&a, "google.remove_from_groups").await;
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.is_retryable());
    let r = s
        .google
        .execute(&a, &action("google.remove_from_groups"), &run())
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Done);
}

#[tokio::test]
async fn the_token_never_appears_in_debug_or_errors() {
    let s = setup().await;
    let token = s.tenant.token().to_owned();
    let a = s.user("ann@example.test").await;
    let mut texts = vec![format!("{:?} {:#?}", s.google, s.google)];
    s.tenant.fail_next(1, 500);
    texts.push(format!(
        "{:?}",
        s.google.verify_revoked(&a).await.unwrap_err()
    ));
    let bad = GoogleConfig::new()
        .with_base_url(s.tenant.uri())
        .with_allow_plain_http(true)
        .with_access_token(Secret::new("ya29.wrong-token"))
        .build()
        .unwrap();
    let e = bad
        .lookup(&LookupRequest::person(Person::new("p", "x@example.test")))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated);
    texts.push(format!("{e} {e:?} {bad:?}"));
    texts.push(format!(
        "{:?}",
        GoogleConfig::new().with_access_token(Secret::new(&token))
    ));
    for r in s.tenant.requests() {
        texts.push(format!("{r:?}"));
    }
    for t in &texts {
        assert!(!t.contains(&token), "the token leaked: {t}");
        assert!(!t.contains("wrong-token"), "the token leaked: {t}");
    }
}

#[tokio::test]
async fn accounts_of_other_apps_and_bad_ids_are_refused() {
    let s = setup().await;
    let mut a = s.user("ann@example.test").await;
    a.external_id = "../groups".into();
    let e = s.fails(&a, "google.suspend").await;
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let okta = AccountRef::new("okta", "1", "x", offboard_core::AccountStatus::Active);
    let e = s.fails(&okta, "google.suspend").await;
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(s.tenant.requests().is_empty());
}

/// A 1 MB identifier (address, alias, external id; with or without a control character) is
/// refused as `InvalidInput` with a short message that does not echo it, and nothing is sent.
#[tokio::test]
async fn over_long_identifiers_are_refused_briefly_without_a_request() {
    let s = setup().await;
    let mut a = s.user("ann@example.test").await;
    s.tenant.clear_requests();
    let mb = 1 << 20;
    let long_address = format!("{}@example.test", "a".repeat(mb));
    let long_control = format!("{}\0@example.test", "b".repeat(mb));
    let long_id = "1".repeat(mb);
    let mut requests = vec![
        LookupRequest::person(Person::new("p", long_address.as_str())),
        LookupRequest::person(Person::new("p", long_control.as_str())),
    ];
    let mut aliased = Person::new("p", "ann@example.test");
    aliased.aliases.push(long_address.clone());
    requests.push(LookupRequest::person(aliased));
    let mut by_id = LookupRequest::person(Person::new("p", "ann@example.test"));
    by_id.external_id = Some(long_id.clone());
    requests.push(by_id);
    for r in &requests {
        let e = s.google.lookup(r).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        let text = format!("{e} {e:?}");
        assert!(text.len() < 400, "{} bytes: {}", text.len(), &text[..400]);
    }
    a.external_id = long_id;
    let e = s.fails(&a, "google.suspend").await;
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let text = format!("{e} {e:?}");
    assert!(text.len() < 400, "{} bytes: {}", text.len(), &text[..400]);
    assert!(s.tenant.requests().is_empty(), "{:?}", s.lines());
}
