//! Revocation in every Okta user status: what `okta.suspend` does from each status the
//! simulator models (Okta's `UserStatus`), that clearing sessions never waits for a suspend
//! that failed, admin roles held through groups, and what `verify_revoked` reads.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::connector;
use offboard_core::{
    AccountRef, AccountStatus, Action, ActionName, Connector, Engine, ErrorKind, ExecuteOptions,
    Initiator, MemoryStore, Outcome, Person, Policy, RunRequest, RunState, TaskState,
};
use offboard_okta::OktaConnector;
use offboard_testkit::sim::okta::{GroupType, NewUser, OktaFixture, OktaTenant};

struct Setup {
    tenant: Arc<OktaTenant>,
    fixture: OktaFixture,
    okta: OktaConnector,
}

async fn setup() -> Setup {
    let tenant = Arc::new(OktaTenant::start().await);
    let okta = connector(&tenant);
    let fixture = OktaFixture::new(Arc::clone(&tenant));
    Setup {
        tenant,
        fixture,
        okta,
    }
}

fn suspend() -> Action {
    Action::new(ActionName::from_static("okta.suspend"))
}

/// `okta.suspend` told to deactivate a user Okta cannot suspend.
fn suspend_or_deactivate() -> Action {
    Action::with_params(
        ActionName::from_static("okta.suspend"),
        &serde_json::json!({"deactivate_if_not_suspendable": true}),
    )
    .unwrap()
}

fn run() -> ExecuteOptions {
    ExecuteOptions::default()
}

impl Setup {
    /// A fixture employee (sessions, tokens, grants, apps...) in `status`.
    fn user_in(&self, status: &str) -> AccountRef {
        let login = format!("{}@example.com", status.to_ascii_lowercase());
        let id = self.tenant.add_user(NewUser {
            status: status.into(),
            ..self.fixture.employee(&login, &[])
        });
        AccountRef::new("okta", id, login, AccountStatus::Active)
    }

    fn lines(&self) -> Vec<String> {
        let lines = self.tenant.requests().iter().map(|r| r.line()).collect();
        self.tenant.clear_requests();
        lines
    }
}

#[tokio::test]
async fn suspend_handles_every_okta_status() {
    let s = setup().await;
    for status in OktaTenant::STATUSES {
        let a = s.user_in(status);
        let id = &a.external_id;
        let get = format!("GET /api/v1/users/{id}");
        let post = |op: &str| format!("POST /api/v1/users/{id}/lifecycle/{op}");
        s.lines();
        let dry = s
            .okta
            .execute(&a, &suspend(), &run().with_dry_run(true))
            .await;
        assert_eq!(
            s.lines(),
            std::slice::from_ref(&get),
            "{status}: a dry run only reads"
        );
        assert_eq!(s.tenant.user(id).unwrap().status, status);
        let result = s.okta.execute(&a, &suspend(), &run()).await;
        let after = s.tenant.user(id).unwrap().status;
        let lines = s.lines();
        match status {
            "ACTIVE" => {
                assert_eq!(result.unwrap().outcome, Outcome::Done);
                assert_eq!(lines, [get.clone(), post("suspend")]);
                assert_eq!(after, "SUSPENDED");
            }
            "LOCKED_OUT" => {
                let r = result.unwrap();
                assert_eq!(r.outcome, Outcome::Done);
                assert_eq!(lines, [get.clone(), post("unlock"), post("suspend")]);
                assert_eq!(after, "SUSPENDED");
                let detail = r.detail.unwrap();
                assert!(detail.contains("unlocked, then suspended"), "{detail}");
                assert!(dry.unwrap().detail.unwrap().contains("would unlock"));
            }
            "SUSPENDED" | "DEPROVISIONED" => {
                assert_eq!(result.unwrap().outcome, Outcome::AlreadyDone);
                assert_eq!(lines, std::slice::from_ref(&get));
                assert_eq!(after, status);
            }
            // STAGED, PROVISIONED, PASSWORD_EXPIRED, RECOVERY: Okta has no suspend for them;
            // only deactivation blocks sign-in, and that is not done unless asked for.
            _ => {
                let e = result.unwrap_err();
                assert_eq!(e.kind(), ErrorKind::Vendor, "{status}: {e}");
                assert!(!e.is_retryable(), "{status}: permanent");
                let message = e.to_string();
                for part in [status, "okta.deactivate", "deactivate_if_not_suspendable"] {
                    assert!(message.contains(part), "{status}: {message}");
                }
                assert_eq!(dry.unwrap_err().kind(), ErrorKind::Vendor);
                assert_eq!(
                    lines,
                    std::slice::from_ref(&get),
                    "{status}: nothing attempted"
                );
                assert_eq!(after, status);
            }
        }
        // A repeat finds the goal holding (or refuses again, changing nothing).
        if let Ok(r) = s.okta.execute(&a, &suspend(), &run()).await {
            assert_eq!(r.outcome, Outcome::AlreadyDone, "{status}");
        }
    }
}

#[tokio::test]
async fn suspend_deactivates_when_asked_and_okta_cannot_suspend() {
    let s = setup().await;
    for status in ["STAGED", "PROVISIONED", "PASSWORD_EXPIRED", "RECOVERY"] {
        let a = s.user_in(status);
        let id = &a.external_id;
        s.lines();
        let dry = s
            .okta
            .execute(&a, &suspend_or_deactivate(), &run().with_dry_run(true))
            .await
            .unwrap();
        assert_eq!(dry.outcome, Outcome::Done);
        assert!(dry.detail.unwrap().contains("would deactivate"), "{status}");
        assert_eq!(s.tenant.user(id).unwrap().status, status);
        assert_eq!(s.lines(), [format!("GET /api/v1/users/{id}")]);
        let r = s
            .okta
            .execute(&a, &suspend_or_deactivate(), &run())
            .await
            .unwrap();
        assert_eq!(r.outcome, Outcome::Done);
        let detail = r.detail.unwrap();
        assert!(
            detail.contains(&format!("deactivated: Okta cannot suspend a {status} user")),
            "{detail}"
        );
        assert_eq!(
            s.lines(),
            [
                format!("GET /api/v1/users/{id}"),
                format!("POST /api/v1/users/{id}/lifecycle/deactivate")
            ]
        );
        let state = s.tenant.user(id).unwrap();
        assert_eq!(state.status, "DEPROVISIONED");
        assert_eq!((state.sessions, state.oauth_tokens.len()), (0, 0));
        let again = s
            .okta
            .execute(&a, &suspend_or_deactivate(), &run())
            .await
            .unwrap();
        assert_eq!(again.outcome, Outcome::AlreadyDone);
    }
    // The parameter changes nothing where Okta can suspend.
    let a = s.user_in("ACTIVE");
    s.okta
        .execute(&a, &suspend_or_deactivate(), &run())
        .await
        .unwrap();
    assert_eq!(s.tenant.user(&a.external_id).unwrap().status, "SUSPENDED");
    // An unknown parameter is refused before anything is read.
    s.lines();
    let bad = Action::with_params(
        ActionName::from_static("okta.suspend"),
        &serde_json::json!({"deactivate": true}),
    )
    .unwrap();
    let e = s.okta.execute(&a, &bad, &run()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(s.lines().is_empty());
}

#[tokio::test]
async fn a_locked_out_user_suspended_rolls_back_to_active() {
    let s = setup().await;
    let a = s.user_in("LOCKED_OUT");
    let snap = s.okta.snapshot(&a, &suspend()).await.unwrap();
    assert_eq!(snap.data, serde_json::json!({"status": "LOCKED_OUT"}));
    s.okta.execute(&a, &suspend(), &run()).await.unwrap();
    s.lines();
    // Okta cannot lock a user out again: the rollback gives the sign-in back (ACTIVE).
    assert_eq!(s.okta.restore(&a, &snap).await.unwrap(), Outcome::Done);
    let id = &a.external_id;
    assert_eq!(
        s.lines(),
        [
            format!("GET /api/v1/users/{id}"),
            format!("POST /api/v1/users/{id}/lifecycle/unsuspend")
        ]
    );
    assert_eq!(s.tenant.user(id).unwrap().status, "ACTIVE");
}

#[test]
fn clear_sessions_is_ordered_after_nothing() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let okta = rt.block_on(async { connector(&OktaTenant::start().await) });
    for spec in &okta.capabilities().actions {
        if ["okta.clear_sessions", "okta.revoke_grants", "okta.suspend"]
            .contains(&spec.name.as_str())
        {
            assert!(
                spec.after.is_empty(),
                "{} waits for {:?}",
                spec.name,
                spec.after
            );
        }
    }
}

/// A suspend that fails for good (Okta cannot suspend a `PASSWORD_EXPIRED` user) never keeps
/// the person's sessions and tokens alive: the engine still clears them.
#[tokio::test]
async fn a_failed_suspend_never_keeps_sessions_alive() {
    let tenant = Arc::new(OktaTenant::start().await);
    let id = tenant.add_user(NewUser {
        status: "PASSWORD_EXPIRED".into(),
        sessions: 3,
        oauth_tokens: vec!["0oaMobile".into()],
        ..NewUser::active("ada@example.com")
    });
    let policy = r#"
[apps.okta]
method = "automatic"
actions = ["okta.suspend", "okta.clear_sessions"]
"#;
    let engine = Engine::builder()
        .store(Arc::new(MemoryStore::new()))
        .connector(Arc::new(connector(&tenant)))
        .policy(Policy::from_toml(policy).unwrap())
        .build()
        .unwrap();
    let plan = engine
        .plan(RunRequest::new(
            Person::new("e1", "ada@example.com"),
            Initiator::Admin { actor: "it".into() },
        ))
        .await
        .unwrap();
    let run_id = engine.submit(plan, None).await.unwrap();
    let workers = engine.start();
    let run = tokio::time::timeout(Duration::from_secs(30), engine.wait(run_id))
        .await
        .expect("the run ends")
        .unwrap();
    workers.shutdown().await;
    assert_eq!(run.state, RunState::CompletedWithFailures);
    let state = |label: &str| {
        run.tasks
            .iter()
            .find(|t| t.label() == label)
            .map(|t| t.state.clone())
            .unwrap()
    };
    assert!(
        matches!(state("okta.suspend"), TaskState::Failed { error } if error.kind == ErrorKind::Vendor)
    );
    assert!(
        state("okta.clear_sessions").is_completed(),
        "{:?}",
        state("okta.clear_sessions")
    );
    let user = tenant.user(&id).unwrap();
    assert_eq!((user.sessions, user.oauth_tokens.len()), (0, 0));
    assert_eq!(user.status, "PASSWORD_EXPIRED");
}

#[tokio::test]
async fn admin_roles_held_through_groups_are_reported_not_counted() {
    let s = setup().await;
    let admins = s.tenant.add_group("Admins", GroupType::OktaGroup);
    s.tenant.assign_role_to_group(&admins, "SUPER_ADMIN");
    let id = s.tenant.add_user(NewUser {
        groups: vec![admins.clone()],
        admin_roles: vec!["APP_ADMIN".into()],
        ..NewUser::active("ann@example.com")
    });
    let a = AccountRef::new("okta", &id, "ann@example.com", AccountStatus::Active);
    let action = Action::new(ActionName::from_static("okta.remove_admin_roles"));
    let own = s.tenant.user(&id).unwrap().admin_roles[0].clone();
    s.lines();
    let r = s.okta.execute(&a, &action, &run()).await.unwrap();
    assert_eq!(r.outcome, Outcome::Done);
    assert_eq!(
        s.lines(),
        [
            format!("GET /api/v1/users/{id}/roles"),
            format!("DELETE /api/v1/users/{id}/roles/{own}")
        ],
        "the group's assignment is not deleted through the user"
    );
    let detail = r.detail.unwrap();
    assert!(
        detail.starts_with("1 admin roles removed (APP_ADMIN)"),
        "{detail}"
    );
    assert!(
        detail.contains(&format!("SUPER_ADMIN through group {admins}")),
        "{detail}"
    );
    // Only the group's role is left: nothing this action can remove.
    let again = s.okta.execute(&a, &action, &run()).await.unwrap();
    assert_eq!(again.outcome, Outcome::AlreadyDone);
    assert!(again.detail.unwrap().contains("SUPER_ADMIN through group"));
    // Still an admin: verify says so.
    let v = s.okta.verify_revoked(&a).await.unwrap();
    assert!(
        v.remaining.iter().any(|r| r.contains("SUPER_ADMIN")),
        "{:?}",
        v.remaining
    );
}

#[tokio::test]
async fn verify_revoked_reads_grants_tokens_and_factors() {
    let s = setup().await;
    let id = s.tenant.add_user(NewUser {
        status: "SUSPENDED".into(),
        oauth_tokens: vec!["0oaMobile".into()],
        grants: vec![("0oaWeb".into(), "okta.users.read".into())],
        factors: vec!["push".into()],
        ..NewUser::active("ann@example.com")
    });
    let a = AccountRef::new("okta", &id, "ann@example.com", AccountStatus::Suspended);
    let v = s.okta.verify_revoked(&a).await.unwrap();
    assert!(!v.revoked);
    let mut kinds: Vec<&str> = v
        .remaining
        .iter()
        .map(|r| r.split(' ').take(2).last().unwrap())
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["MFA", "consent", "refresh"], "{:?}", v.remaining);
    for verb in [
        "okta.clear_sessions",
        "okta.revoke_grants",
        "okta.reset_factors",
    ] {
        s.okta
            .execute(&a, &Action::new(ActionName::parse(verb).unwrap()), &run())
            .await
            .unwrap();
    }
    let v = s.okta.verify_revoked(&a).await.unwrap();
    assert!(v.revoked, "{:?}", v.remaining);
}
