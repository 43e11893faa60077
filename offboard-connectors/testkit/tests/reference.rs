//! The reference connector and delegate: conformance, tenant state, counters, faults, and proof
//! that the conformance suite catches broken connectors.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use offboard_core::{
    AccountRef, AccountStatus, Action, ActionName, AppId, Capabilities, Connector, Delegate,
    DelegationRequest, ErrorKind, ExecuteOptions, ExecuteReply, LookupRequest, Outcome, Person,
    Result, RunId, Snapshot, TaskId, TicketStatus, Verification,
};
use offboard_testkit::suite::conformance::{self, Fixture};
use offboard_testkit::suite::reference::{permanent, unavailable};
use offboard_testkit::{
    Fault, ReferenceConnector, ReferenceDelegate, ReferenceFixture, ReferenceUser, run_conformance,
};

const SECRET: &str = "okta-fake-token-0123456789";

fn okta() -> Arc<ReferenceConnector> {
    Arc::new(
        ReferenceConnector::builder("okta")
            .secret(SECRET)
            .user(
                ReferenceUser::employee("jane@example.com")
                    .alias("Jane.Doe@Example.com")
                    .admin(),
            )
            .user(ReferenceUser::new("bob@example.com").group("everyone"))
            .build(),
    )
}

fn opts() -> ExecuteOptions {
    ExecuteOptions::default()
        .with_idempotency_key("run1:task1")
        .with_actor("admin@example.com")
}

fn jane(c: &ReferenceConnector) -> AccountRef {
    c.account_by_login("jane@example.com").expect("jane exists")
}

async fn run(c: &ReferenceConnector, account: &AccountRef, action: &Action) -> Outcome {
    c.execute(account, action, &opts())
        .await
        .expect("execute")
        .outcome
}

#[tokio::test]
async fn reference_connector_passes_conformance() {
    let c = okta();
    let report = run_conformance(&c, &ReferenceFixture::new(c.clone())).await;
    assert_eq!(report.app.as_str(), "okta");
    assert_eq!(
        report.rules,
        [
            "lookup_zero_matches",
            "lookup_finds_exact_match",
            "lookup_two_matches_is_ambiguous",
            "lookup_hostile_input_never_widens",
            "unknown_action_is_unsupported",
            "repeat_reports_already_done",
            "deleted_user_counts_as_done",
            "needs_account_fails_on_deleted_user",
            "restore_reproduces_snapshot",
            "verify_revoked_agrees_with_reality",
            "no_secret_in_debug",
        ]
    );
    // The suite cleaned up after itself: only the two configured users are left.
    assert_eq!(c.users().len(), 2);
}

#[tokio::test]
async fn conformance_skips_verify_when_not_offered() {
    let c = Arc::new(
        ReferenceConnector::builder("google")
            .without_verify()
            .build(),
    );
    assert!(!c.capabilities().verify);
    let report = run_conformance(&c, &ReferenceFixture::new(c.clone())).await;
    assert!(!report.rules.contains(&"verify_revoked_agrees_with_reality"));
    assert!(report.rules.contains(&"restore_reproduces_snapshot"));
    let account = c.add_user(ReferenceUser::employee("x@example.com"));
    let err = c.verify_revoked(&account).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
}

#[tokio::test]
async fn capabilities_name_actions_after_the_app() {
    let c = okta();
    let caps = c.capabilities();
    let names: Vec<&str> = caps.actions.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "okta.suspend",
            "okta.clear_sessions",
            "okta.remove_groups",
            "okta.unassign_apps",
            "okta.transfer_data",
            "okta.delete",
        ]
    );
    let spec = |n: &'static str| caps.action(&ActionName::from_static(n)).unwrap();
    assert!(spec("okta.suspend").reversible);
    assert!(spec("okta.remove_groups").reversible);
    assert!(!spec("okta.clear_sessions").reversible);
    assert_eq!(
        spec("okta.clear_sessions").after,
        [ActionName::from_static("okta.suspend")]
    );
    assert!(!spec("okta.transfer_data").not_found_is_done);
    assert!(spec("okta.delete").critical);
    assert_eq!(
        spec("okta.delete").after,
        [ActionName::from_static("okta.transfer_data")]
    );
    assert!(caps.verify);
}

#[tokio::test]
async fn lookup_is_exact_and_never_guesses() {
    let c = okta();
    let jane = jane(&c);
    assert_eq!(
        jane.attributes.get("admin").map(String::as_str),
        Some("true")
    );

    // Case-insensitive on login and alias; the person's aliases count too.
    for request in [
        LookupRequest::person(Person::new("p", "JANE@example.com")),
        LookupRequest::person(Person::new("p", "jane.doe@example.com")),
        LookupRequest::person(Person::new("p", "other@example.com").with_alias("jane@EXAMPLE.com")),
    ] {
        let found = c.lookup(&request).await.unwrap().expect("found");
        assert_eq!(found.external_id, jane.external_id);
        assert_eq!(found.status, AccountStatus::Active);
    }

    // No partial or wildcard matches.
    for miss in ["jane", "jane@example.co", "*", "jane@example.com ", "jan%"] {
        let request = LookupRequest::person(Person::new("p", miss));
        assert_eq!(c.lookup(&request).await.unwrap(), None, "{miss:?}");
    }

    // Two distinct users: ambiguous.
    let request =
        LookupRequest::person(Person::new("p", "jane@example.com").with_alias("bob@example.com"));
    let err = c.lookup(&request).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Ambiguous);
    assert!(err.to_string().contains("bob@example.com"), "{err}");

    // Both addresses of the same user: one match, not ambiguous.
    let request = LookupRequest::person(
        Person::new("p", "jane@example.com").with_alias("jane.doe@example.com"),
    );
    assert!(c.lookup(&request).await.unwrap().is_some());

    // Control characters are rejected, not matched.
    for bad in ["jane@example.com\0", "jane@example.com\n"] {
        let request = LookupRequest::person(Person::new("p", bad));
        assert_eq!(
            c.lookup(&request).await.unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
    }
    let request = LookupRequest::person(Person::new("p", "x@example.com")).with_external_id("a\0");
    assert_eq!(
        c.lookup(&request).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );

    // By external id only: bob's address is ignored.
    let request = LookupRequest::person(Person::new("p", "bob@example.com"))
        .with_external_id(jane.external_id.clone());
    assert_eq!(
        c.lookup(&request).await.unwrap().unwrap().external_id,
        jane.external_id
    );
    let request =
        LookupRequest::person(Person::new("p", "jane@example.com")).with_external_id("okta-999999");
    assert_eq!(c.lookup(&request).await.unwrap(), None);
    assert_eq!(c.calls().lookup, 15);
}

#[tokio::test]
async fn lookup_follows_renames_removals_and_deletes() {
    let c = okta();
    let jane = jane(&c);
    let by = |address: &str| LookupRequest::person(Person::new("p", address));

    // A rename behind offboard's back: the old login no longer matches, the new one does.
    assert!(c.modify_user(&jane.external_id, |u| {
        u.login = "Jane.Smith@example.com".into();
        u.aliases.clear();
    }));
    assert_eq!(c.lookup(&by("jane@example.com")).await.unwrap(), None);
    assert_eq!(c.lookup(&by("jane.doe@example.com")).await.unwrap(), None);
    let found = c.lookup(&by("jane.smith@EXAMPLE.com")).await.unwrap();
    assert_eq!(found.unwrap().external_id, jane.external_id);

    // A second user taking the same name makes the lookup ambiguous; removing it resolves it.
    let twin = c.add_user(ReferenceUser::new("JANE.SMITH@example.com"));
    let err = c.lookup(&by("jane.smith@example.com")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Ambiguous);
    assert!(c.remove_user(&twin.external_id));
    let found = c.lookup(&by("jane.smith@example.com")).await.unwrap();
    assert_eq!(found.unwrap().external_id, jane.external_id);

    // Deleted by the action: not found any more, by name or by id.
    assert_eq!(run(&c, &jane, &c.action("delete")).await, Outcome::Done);
    assert_eq!(c.lookup(&by("jane.smith@example.com")).await.unwrap(), None);
    let bob = c.lookup(&by("BOB@example.com")).await.unwrap().unwrap();
    assert_eq!(bob.login, "bob@example.com");
}

#[tokio::test]
async fn tenant_state_after_each_action() {
    let c = okta();
    let jane = jane(&c);
    let id = jane.external_id.as_str();
    let state = c.user(id).unwrap();
    assert_eq!(state.status, AccountStatus::Active);
    assert_eq!(state.sessions, 2);
    assert_eq!(state.groups.len(), 2);
    assert_eq!(state.apps.len(), 2);
    assert!(state.admin);

    let suspend = c.action(ReferenceConnector::SUSPEND);
    assert_eq!(run(&c, &jane, &suspend).await, Outcome::Done);
    assert_eq!(c.user(id).unwrap().status, AccountStatus::Suspended);

    let clear = c.action(ReferenceConnector::CLEAR_SESSIONS);
    let reply = c.execute(&jane, &clear, &opts()).await.unwrap();
    assert_eq!(reply.outcome, Outcome::Done);
    assert_eq!(reply.detail.as_deref(), Some("2 sessions cleared"));
    assert_eq!(c.user(id).unwrap().sessions, 0);

    let groups = c.action("okta.remove_groups");
    assert_eq!(run(&c, &jane, &groups).await, Outcome::Done);
    assert!(c.user(id).unwrap().groups.is_empty());

    let apps = c.action(ReferenceConnector::UNASSIGN_APPS);
    assert_eq!(run(&c, &jane, &apps).await, Outcome::Done);
    assert!(c.user(id).unwrap().apps.is_empty());

    let transfer = c.transfer_action("boss@example.com");
    assert_eq!(run(&c, &jane, &transfer).await, Outcome::Done);
    let transfers = c.user(id).unwrap().transfers;
    assert_eq!(transfers.len(), 1);
    assert_eq!(transfers[0].to, "boss@example.com");
    assert_eq!(transfers[0].idempotency_key, "run1:task1");
    assert_eq!(transfers[0].actor, "admin@example.com");
    // Another recipient is another transfer.
    let other = c.transfer_action("hr@example.com");
    assert_eq!(run(&c, &jane, &other).await, Outcome::Done);
    assert_eq!(c.user(id).unwrap().transfers.len(), 2);

    let verification = c.verify_revoked(&jane).await.unwrap();
    assert!(verification.revoked, "{:?}", verification.remaining);

    let delete = c.action(ReferenceConnector::DELETE);
    assert_eq!(run(&c, &jane, &delete).await, Outcome::Done);
    assert!(c.user(id).is_none());
    assert!(c.is_deleted(id));

    // Every action again: nothing more changes.
    for action in [&suspend, &clear, &groups, &apps] {
        assert_eq!(run(&c, &jane, action).await, Outcome::NotFound);
    }
    assert_eq!(run(&c, &jane, &delete).await, Outcome::AlreadyDone);
    let err = c.execute(&jane, &transfer, &opts()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);

    for verb in [
        "suspend",
        "clear_sessions",
        "remove_groups",
        "unassign_apps",
        "delete",
    ] {
        assert_eq!(c.effects(id, verb), 1, "{verb}");
    }
    assert_eq!(c.effects(id, "okta.transfer_data"), 2);
    assert_eq!(c.total_effects(), 7);
    let calls = c.calls();
    assert_eq!(calls.execute, 13);
    assert_eq!(calls.of("okta.transfer_data"), 3);
    assert_eq!(calls.verify_revoked, 1);
    assert_eq!(calls.total(), 14);
    // Bob was never touched.
    let bob = c.user_by_login("bob@example.com").unwrap();
    assert_eq!(bob.status, AccountStatus::Active);
    assert_eq!(c.effects(&bob.external_id, "suspend"), 0);

    c.reset_counters();
    assert_eq!(c.calls().total(), 0);
    assert_eq!(c.total_effects(), 0);
}

#[tokio::test]
async fn repeats_report_already_done_and_count_once() {
    let c = okta();
    let jane = jane(&c);
    let id = &jane.external_id;
    for verb in [
        "suspend",
        "clear_sessions",
        "remove_groups",
        "unassign_apps",
    ] {
        let action = c.action(verb);
        assert_eq!(run(&c, &jane, &action).await, Outcome::Done, "{verb}");
        assert_eq!(
            run(&c, &jane, &action).await,
            Outcome::AlreadyDone,
            "{verb}"
        );
        assert_eq!(
            run(&c, &jane, &action).await,
            Outcome::AlreadyDone,
            "{verb}"
        );
        assert_eq!(c.effects(id, verb), 1, "{verb}");
    }
    let transfer = c.transfer_action("boss@example.com");
    assert_eq!(run(&c, &jane, &transfer).await, Outcome::Done);
    assert_eq!(run(&c, &jane, &transfer).await, Outcome::AlreadyDone);
    assert_eq!(c.user(id).unwrap().transfers.len(), 1);
}

#[tokio::test]
async fn concurrent_executions_change_once() {
    let c = okta();
    let jane = jane(&c);
    let suspend = c.action("suspend");
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (c, jane, suspend) = (c.clone(), jane.clone(), suspend.clone());
        tasks.push(tokio::spawn(async move {
            c.execute(&jane, &suspend, &opts()).await.unwrap().outcome
        }));
    }
    let mut done = 0;
    for t in tasks {
        if t.await.unwrap() == Outcome::Done {
            done += 1;
        }
    }
    assert_eq!(done, 1);
    assert_eq!(c.effects(&jane.external_id, "suspend"), 1);
    assert_eq!(c.calls().of("okta.suspend"), 16);
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    let c = okta();
    let jane = jane(&c);
    let before = c.user(&jane.external_id).unwrap();
    let dry = opts().with_dry_run(true);
    for verb in [
        "suspend",
        "clear_sessions",
        "remove_groups",
        "unassign_apps",
        "delete",
    ] {
        let reply = c.execute(&jane, &c.action(verb), &dry).await.unwrap();
        assert_eq!(reply.outcome, Outcome::Done, "{verb}");
        assert!(reply.detail.unwrap().starts_with("dry run: "));
    }
    let reply = c
        .execute(&jane, &c.transfer_action("boss@example.com"), &dry)
        .await
        .unwrap();
    assert_eq!(reply.outcome, Outcome::Done);
    assert_eq!(c.user(&jane.external_id).unwrap(), before);
    assert_eq!(c.total_effects(), 0);

    // Predicts AlreadyDone once done.
    let suspend = c.action("suspend");
    run(&c, &jane, &suspend).await;
    let reply = c.execute(&jane, &suspend, &dry).await.unwrap();
    assert_eq!(reply.outcome, Outcome::AlreadyDone);
}

#[tokio::test]
async fn snapshot_and_restore() {
    let c = okta();
    let jane = jane(&c);
    let id = &jane.external_id;

    let suspend = c.action("suspend");
    let snap = c.snapshot(&jane, &suspend).await.unwrap();
    assert_eq!(snap.data, serde_json::json!({ "status": "active" }));
    assert_eq!(snap.action.as_str(), "okta.suspend");
    run(&c, &jane, &suspend).await;
    assert_eq!(c.restore(&jane, &snap).await.unwrap(), Outcome::Done);
    assert_eq!(c.user(id).unwrap().status, AccountStatus::Active);
    assert_eq!(c.restore(&jane, &snap).await.unwrap(), Outcome::AlreadyDone);
    assert_eq!(c.restore_effects(id, "suspend"), 1);

    // Groups: restore puts back exactly the snapshot's groups and leaves others alone.
    let groups = c.action("remove_groups");
    let snap = c.snapshot(&jane, &groups).await.unwrap();
    assert_eq!(
        snap.data,
        serde_json::json!({ "groups": ["engineering", "everyone"] })
    );
    run(&c, &jane, &groups).await;
    assert!(c.modify_user(id, |u| {
        u.groups.insert("added-later".into());
    }));
    assert_eq!(c.restore(&jane, &snap).await.unwrap(), Outcome::Done);
    let now: Vec<String> = c.user(id).unwrap().groups.into_iter().collect();
    assert_eq!(now, ["added-later", "engineering", "everyone"]);
    assert_eq!(c.restore(&jane, &snap).await.unwrap(), Outcome::AlreadyDone);

    // Irreversible actions have no snapshot.
    let err = c.snapshot(&jane, &c.action("delete")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    // A snapshot of another account is refused.
    let bob = c.account_by_login("bob@example.com").unwrap();
    let err = c.restore(&bob, &snap).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    // A deleted account cannot be restored.
    c.remove_user(id);
    let err = c.restore(&jane, &snap).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(c.calls().snapshot, 3);
    assert_eq!(c.calls().restore, 6);
}

#[tokio::test]
async fn unknown_and_foreign_actions_are_unsupported() {
    let c = okta();
    let jane = jane(&c);
    for name in ["okta.reset_password", "google.suspend"] {
        let action = Action::new(ActionName::parse(name).unwrap());
        let err = c.execute(&jane, &action, &opts()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{name}");
        assert_eq!(err.operation(), name);
    }
    let bad = Action::new(c.action_name("transfer_data"));
    let err = c.execute(&jane, &bad, &opts()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

#[tokio::test]
async fn verify_lists_remaining_access() {
    let c = okta();
    let jane = jane(&c);
    let v = c.verify_revoked(&jane).await.unwrap();
    assert!(!v.revoked);
    assert_eq!(
        v.remaining,
        [
            "status active",
            "member of group engineering",
            "member of group everyone",
            "assigned app github",
            "assigned app slack",
            "2 open sessions",
        ]
    );
    run(&c, &jane, &c.action("suspend")).await;
    run(&c, &jane, &c.action("remove_groups")).await;
    let v = c.verify_revoked(&jane).await.unwrap();
    assert_eq!(
        v.remaining,
        [
            "assigned app github",
            "assigned app slack",
            "2 open sessions"
        ]
    );
    // Access re-granted behind offboard's back shows up again.
    c.modify_user(&jane.external_id, |u| u.status = AccountStatus::Unknown);
    let v = c.verify_revoked(&jane).await.unwrap();
    assert_eq!(v.remaining[0], "status unknown");
    c.remove_user(&jane.external_id);
    assert!(c.verify_revoked(&jane).await.unwrap().revoked);
}

#[tokio::test]
async fn retryable_faults_fail_the_next_executions() {
    let c = Arc::new(
        ReferenceConnector::builder("okta")
            .user(ReferenceUser::employee("jane@example.com"))
            .fail_next(
                "okta.suspend",
                2,
                unavailable(Some(Duration::from_secs(30))),
            )
            .build(),
    );
    let jane = jane(&c);
    let suspend = c.action("suspend");

    // Dry runs neither fail nor use up the fault.
    let dry = opts().with_dry_run(true);
    assert_eq!(
        c.execute(&jane, &suspend, &dry).await.unwrap().outcome,
        Outcome::Done
    );
    for _ in 0..2 {
        let err = c.execute(&jane, &suspend, &opts()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(err.is_retryable());
        assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
        assert_eq!(err.operation(), "okta.suspend");
        assert_eq!(
            c.user(&jane.external_id).unwrap().status,
            AccountStatus::Active
        );
    }
    // Other actions are unaffected.
    assert_eq!(
        run(&c, &jane, &c.action("clear_sessions")).await,
        Outcome::Done
    );
    assert_eq!(run(&c, &jane, &suspend).await, Outcome::Done);
    assert_eq!(c.effects(&jane.external_id, "suspend"), 1);
    assert_eq!(c.calls().of("okta.suspend"), 4);
}

#[tokio::test]
async fn permanent_faults_fail_until_cleared() {
    let c = okta();
    let jane = jane(&c);
    c.fail_always(
        "delete",
        permanent(ErrorKind::PermissionDenied, "403 insufficient scope"),
    );
    let delete = c.action("delete");
    for _ in 0..3 {
        let err = c.execute(&jane, &delete, &opts()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("403 insufficient scope"), "{err}");
    }
    assert!(c.user(&jane.external_id).is_some());
    c.clear_faults();
    assert_eq!(run(&c, &jane, &delete).await, Outcome::Done);
}

#[tokio::test]
async fn lost_response_fault_applies_the_change() {
    let c = okta();
    let jane = jane(&c);
    c.inject(Fault::next("suspend", 1, unavailable(None)).after_effect());
    let suspend = c.action("suspend");
    let err = c.execute(&jane, &suspend, &opts()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    // The vendor made the change; the retry finds it done.
    assert_eq!(
        c.user(&jane.external_id).unwrap().status,
        AccountStatus::Suspended
    );
    assert_eq!(run(&c, &jane, &suspend).await, Outcome::AlreadyDone);
    assert_eq!(c.effects(&jane.external_id, "suspend"), 1);
}

#[tokio::test]
async fn faults_hit_other_methods() {
    let c = okta();
    let jane = jane(&c);
    c.fail_next("lookup", 1, unavailable(None));
    c.fail_next("snapshot", 1, unavailable(None));
    c.fail_next("restore", 1, unavailable(None));
    c.fail_next(
        "verify_revoked",
        1,
        permanent(ErrorKind::Unauthenticated, "401"),
    );
    let request = LookupRequest::person(Person::new("p", "jane@example.com"));
    assert_eq!(c.lookup(&request).await.unwrap_err().operation(), "lookup");
    assert!(c.lookup(&request).await.unwrap().is_some());
    let suspend = c.action("suspend");
    assert!(c.snapshot(&jane, &suspend).await.is_err());
    let snap = c.snapshot(&jane, &suspend).await.unwrap();
    assert!(c.restore(&jane, &snap).await.is_err());
    assert_eq!(c.restore(&jane, &snap).await.unwrap(), Outcome::AlreadyDone);
    assert_eq!(
        c.verify_revoked(&jane).await.unwrap_err().kind(),
        ErrorKind::Unauthenticated
    );
    assert!(!c.verify_revoked(&jane).await.unwrap().revoked);
}

#[tokio::test(start_paused = true)]
async fn latency_sleeps_on_tokio_clock() {
    let c = ReferenceConnector::builder("okta")
        .user(ReferenceUser::employee("jane@example.com"))
        .latency(Duration::from_millis(250))
        .build();
    let start = tokio::time::Instant::now();
    let request = LookupRequest::person(Person::new("p", "jane@example.com"));
    let jane = c.lookup(&request).await.unwrap().unwrap();
    c.execute(&jane, &c.action("suspend"), &opts())
        .await
        .unwrap();
    c.verify_revoked(&jane).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(750));
}

#[tokio::test]
async fn secret_never_in_debug() {
    let c = okta();
    assert_eq!(c.secret().expose(), SECRET);
    for text in [format!("{c:?}"), format!("{c:#?}")] {
        assert!(!text.contains(SECRET), "{text}");
        assert!(text.contains("REDACTED"), "{text}");
    }
    let builder = ReferenceConnector::builder("okta").secret(SECRET);
    assert!(!format!("{builder:?}").contains(SECRET));
    conformance::no_secret_in_debug(&c, &ReferenceFixture::new(c.clone())).await;
}

fn request(key: &str) -> DelegationRequest {
    DelegationRequest::new(
        RunId::new_v4(),
        TaskId::new_v4(),
        AppId::new("salesforce"),
        Person::new("p1", "jane@example.com"),
        Utc::now(),
        key,
    )
}

#[tokio::test]
async fn delegate_is_idempotent_and_test_driven() {
    let jira = ReferenceDelegate::jira();
    assert_eq!(jira.via(), offboard_core::DelegateVia::Jira);
    let first = jira.open(&request("run1:task1")).await.unwrap();
    assert_eq!(first.key, "OFF-1");
    assert_eq!(first.url, "https://jira.example.test/browse/OFF-1");
    assert_eq!(first.assignee, None);
    // A retry after a crash finds the same ticket.
    assert_eq!(jira.open(&request("run1:task1")).await.unwrap(), first);
    assert_eq!(jira.tickets_created(), 1);
    assert_eq!(jira.open_calls(), 2);
    let second = jira.open(&request("run1:task2")).await.unwrap();
    assert_eq!(second.key, "OFF-2");
    assert_eq!(jira.tickets_created(), 2);

    jira.assign("OFF-1", "alice");
    match jira.status(&first).await.unwrap() {
        TicketStatus::Open { ticket } => assert_eq!(ticket.assignee.as_deref(), Some("alice")),
        other => panic!("expected open, got {other:?}"),
    }
    // Re-opening with the key returns the ticket as now read.
    assert_eq!(
        jira.open(&request("run1:task1"))
            .await
            .unwrap()
            .assignee
            .as_deref(),
        Some("alice")
    );
    jira.complete("OFF-1", "alice");
    assert_eq!(
        jira.status(&first).await.unwrap(),
        TicketStatus::Done {
            ticket: offboard_core::Ticket {
                assignee: Some("alice".into()),
                ..first.clone()
            },
            by: Some("alice".into()),
        }
    );
    jira.reopen("OFF-1");
    assert!(matches!(
        jira.status(&first).await.unwrap(),
        TicketStatus::Open { .. }
    ));
    let t = jira.ticket("OFF-1").unwrap();
    assert_eq!(t.reopened, 1);
    assert_eq!(t.request.idempotency_key, "run1:task1");
    assert_eq!(jira.ticket_for("run1:task2").unwrap().ticket.key, "OFF-2");
    assert_eq!(jira.tickets().len(), 2);
    assert_eq!(jira.status_calls(), 3);

    let unknown = offboard_core::Ticket {
        key: "OFF-99".into(),
        url: String::new(),
        assignee: None,
    };
    assert_eq!(
        jira.status(&unknown).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn email_delegate_and_faults() {
    let email = ReferenceDelegate::email().with_default_assignee("it@example.com");
    email.fail_next("open", 1, unavailable(None));
    assert_eq!(
        email.open(&request("k")).await.unwrap_err().kind(),
        ErrorKind::Unavailable
    );
    assert_eq!(email.tickets_created(), 0);
    let ticket = email.open(&request("k")).await.unwrap();
    assert_eq!(ticket.key, "email-1");
    assert_eq!(ticket.assignee.as_deref(), Some("it@example.com"));
    assert!(ticket.url.ends_with("/tasks/email-1"));
    assert_eq!(email.via(), offboard_core::DelegateVia::Email);
}

#[test]
#[should_panic(expected = "no ticket \"OFF-7\"")]
fn delegate_controls_panic_on_unknown_ticket() {
    ReferenceDelegate::jira().complete("OFF-7", "x");
}

/// How [`Broken`] breaks the contract.
#[derive(Debug, Clone, Copy)]
enum Breakage {
    /// Reports `Done` where it should report `AlreadyDone`.
    DoneTwice,
    /// Matches logins by prefix, as an unescaped `sw` filter would.
    PrefixLookup,
    /// Shows its token in `Debug`.
    LeakySecret,
    /// Restores nothing.
    NoRestore,
    /// Says everything is revoked.
    AlwaysRevoked,
}

/// A connector wrapper that breaks one rule of the contract.
struct Broken {
    inner: Arc<ReferenceConnector>,
    breakage: Breakage,
}

impl std::fmt::Debug for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Broken");
        d.field("inner", &self.inner);
        if let Breakage::LeakySecret = self.breakage {
            d.field("token", &self.inner.secret().expose());
        }
        d.finish()
    }
}

#[async_trait]
impl Connector for Broken {
    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }

    async fn lookup(&self, request: &LookupRequest) -> Result<Option<AccountRef>> {
        if let Breakage::PrefixLookup = self.breakage {
            let email = request.person.email.trim_end_matches('*');
            if !email.is_empty() {
                return Ok(self
                    .inner
                    .users()
                    .iter()
                    .find(|u| u.login.starts_with(email))
                    .and_then(|u| self.inner.account(&u.external_id)));
            }
        }
        self.inner.lookup(request).await
    }

    async fn execute(
        &self,
        account: &AccountRef,
        action: &Action,
        options: &ExecuteOptions,
    ) -> Result<ExecuteReply> {
        let reply = self.inner.execute(account, action, options).await?;
        match (self.breakage, reply.outcome) {
            (Breakage::DoneTwice, Outcome::AlreadyDone) => Ok(ExecuteReply::new(Outcome::Done)),
            _ => Ok(reply),
        }
    }

    async fn snapshot(&self, account: &AccountRef, action: &Action) -> Result<Snapshot> {
        self.inner.snapshot(account, action).await
    }

    async fn restore(&self, account: &AccountRef, snapshot: &Snapshot) -> Result<Outcome> {
        if let Breakage::NoRestore = self.breakage {
            return Ok(Outcome::Done);
        }
        self.inner.restore(account, snapshot).await
    }

    async fn verify_revoked(&self, account: &AccountRef) -> Result<Verification> {
        if let Breakage::AlwaysRevoked = self.breakage {
            return Ok(Verification::from_remaining(
                account.app.clone(),
                Vec::new(),
            ));
        }
        self.inner.verify_revoked(account).await
    }

    async fn discover(&self, account: &AccountRef) -> Result<Vec<AccountRef>> {
        self.inner.discover(account).await
    }
}

/// Runs `rule` against a broken connector in its own task and returns its panic message.
async fn violation<R, Fut>(breakage: Breakage, rule: R) -> String
where
    R: FnOnce(Arc<Broken>, ReferenceFixture) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let inner = Arc::new(ReferenceConnector::builder("okta").secret(SECRET).build());
    let broken = Arc::new(Broken {
        inner: inner.clone(),
        breakage,
    });
    let err = tokio::spawn(rule(broken, ReferenceFixture::new(inner)))
        .await
        .expect_err("the rule must panic for a broken connector");
    assert!(err.is_panic(), "{err}");
    let payload = err.into_panic();
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

#[tokio::test]
async fn conformance_catches_done_reported_twice() {
    let message = violation(Breakage::DoneTwice, |c, f| async move {
        conformance::repeat_reports_already_done(&c, &f).await;
    })
    .await;
    assert!(
        message.contains("rule `repeat_reports_already_done`"),
        "{message}"
    );
    assert!(message.contains("app `okta`"), "{message}");
    assert!(message.contains("already_done"), "{message}");
}

#[tokio::test]
async fn conformance_catches_a_widening_lookup() {
    let message = violation(Breakage::PrefixLookup, |c, f| async move {
        conformance::lookup_hostile_input_never_widens(&c, &f).await;
    })
    .await;
    assert!(message.contains("widened the lookup"), "{message}");
    let message = violation(Breakage::PrefixLookup, |c, f| async move {
        conformance::lookup_zero_matches(&c, &f).await;
    })
    .await;
    assert!(message.contains("must find nothing"), "{message}");
}

#[tokio::test]
async fn conformance_catches_a_leaked_secret_without_repeating_it() {
    let message = violation(Breakage::LeakySecret, |c, f| async move {
        conformance::no_secret_in_debug(&c, &f).await;
    })
    .await;
    assert!(
        message.contains("Debug output of the connector shows the secret"),
        "{message}"
    );
    assert!(!message.contains(SECRET), "{message}");
}

#[tokio::test]
async fn conformance_catches_a_restore_that_restores_nothing() {
    let message = violation(Breakage::NoRestore, |c, f| async move {
        conformance::restore_reproduces_snapshot(&c, &f).await;
    })
    .await;
    assert!(
        message.contains("a second time must report already_done"),
        "{message}"
    );
}

#[tokio::test]
async fn conformance_catches_a_verification_that_lies() {
    let message = violation(Breakage::AlwaysRevoked, |c, f| async move {
        run_conformance(&c, &f).await;
    })
    .await;
    assert!(
        message.contains("rule `verify_revoked_agrees_with_reality`"),
        "{message}"
    );
}

#[tokio::test]
async fn fixture_creates_users_with_access() {
    let c = okta();
    let fixture = ReferenceFixture::new(c.clone());
    let account = fixture
        .create_user("new@example.test", &["alias@example.test"])
        .await;
    let user = c.user(&account.external_id).unwrap();
    assert_eq!(user.aliases, ["alias@example.test"]);
    assert!(!c.verify_revoked(&account).await.unwrap().revoked);
    fixture.delete_user(&account.external_id).await;
    fixture.delete_user(&account.external_id).await;
    assert!(c.is_deleted(&account.external_id));
    assert_eq!(fixture.secret(), SECRET);
    let spec = c
        .capabilities()
        .action(&c.action_name("transfer_data"))
        .unwrap()
        .clone();
    assert_eq!(
        fixture.action(&spec).params,
        serde_json::json!({ "to": "manager@example.test" })
    );
}
