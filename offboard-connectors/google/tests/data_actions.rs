//! The Google connector's data and device actions against the simulated tenant:
//! `google.transfer_data` (Data Transfer API), `google.remove_licenses` (Licensing API),
//! `google.wipe_devices` (mobile devices) and `google.reset_password`. Each test checks the
//! exact requests sent, the tenant's state after, repeats, dry runs and refusals.

mod common;

use std::sync::Arc;
use std::time::Duration;

use offboard_core::{
    AccountRef, Action, ActionName, Connector, ErrorKind, ExecuteOptions, Manager, Outcome, Person,
    RetryClass, Secret, TaskId,
};
use offboard_google::{GoogleConfig, GoogleConnector, Sku, TransferData};
use offboard_testkit::Fixture;
use offboard_testkit::sim::google::{GoogleFixture, GoogleTenant, NewUser};
use serde_json::json;

const V1: &str = "/admin/directory/v1";
const DT: &str = "/admin/datatransfer/v1";
const DEVICES: &str = "/admin/directory/v1/customer/my_customer/devices/mobile";
const STARTER: (&str, &str) = GoogleFixture::LICENCE;
const STANDARD: (&str, &str) = ("Google-Apps", "1010020028");
const VAULT: (&str, &str) = ("Google-Vault", "Google-Vault");

struct Setup {
    tenant: Arc<GoogleTenant>,
    fixture: GoogleFixture,
    google: GoogleConnector,
}

fn config(tenant: &GoogleTenant) -> GoogleConfig {
    GoogleConfig::new()
        .with_base_url(tenant.uri())
        .with_allow_plain_http(true)
        .with_licensing_url(tenant.uri())
        .with_licence_skus([STARTER, STANDARD, VAULT].map(|(p, k)| Sku::new(p, k)))
        .with_transfer_polling(Duration::from_secs(5), Duration::from_millis(5))
        .with_access_token(Secret::new(tenant.token()))
}

async fn setup() -> Setup {
    let tenant = Arc::new(GoogleTenant::start().await);
    let google = config(&tenant).build().unwrap();
    let fixture = GoogleFixture::new(Arc::clone(&tenant));
    Setup {
        tenant,
        fixture,
        google,
    }
}

fn run() -> ExecuteOptions {
    ExecuteOptions::default().with_idempotency_key("task-1")
}

fn transfer(to: Option<&str>) -> Action {
    Action::with_params(
        ActionName::from_static("google.transfer_data"),
        &TransferData {
            to: to.map(str::to_owned),
        },
    )
    .unwrap()
}

fn named(name: &'static str) -> Action {
    Action::new(ActionName::from_static(name))
}

impl Setup {
    async fn user(&self, login: &str) -> AccountRef {
        self.fixture.create_user(login, &[]).await
    }

    fn manager_id(&self) -> String {
        self.tenant
            .user_id(GoogleFixture::MANAGER)
            .expect("the fixture's manager exists")
    }

    fn lines(&self) -> Vec<String> {
        common::lines(&self.tenant)
    }

    /// Runs the action; returns (outcome, requests, detail).
    async fn exec(
        &self,
        a: &AccountRef,
        action: &Action,
        opts: ExecuteOptions,
    ) -> (Outcome, Vec<String>, String) {
        self.tenant.clear_requests();
        let reply = self.google.execute(a, action, &opts).await.unwrap();
        (
            reply.outcome,
            self.lines(),
            reply.detail.unwrap_or_default(),
        )
    }
}

#[tokio::test]
async fn transfer_data_goes_to_the_manager_once_and_waits_for_completion() {
    let s = setup().await;
    let spec = s
        .google
        .capabilities()
        .action(&ActionName::from_static("google.delete"))
        .unwrap()
        .clone();
    assert!(spec.critical);
    assert_eq!(
        spec.after,
        vec![ActionName::from_static("google.transfer_data")]
    );
    let a = s.user("ann@example.test").await;
    let id = a.external_id.clone();
    let boss = s.manager_id();
    let person = Person::new("p1", "ann@example.test").with_manager(Manager {
        id: None,
        email: GoogleFixture::MANAGER.into(),
    });
    let opts = || run().with_person(person.clone());

    // Dry run: reads only.
    let (o, lines, detail) = s.exec(&a, &transfer(None), opts().with_dry_run(true)).await;
    assert_eq!(o, Outcome::Done);
    assert!(lines.iter().all(|l| l.starts_with("GET ")), "{lines:?}");
    assert!(lines.contains(&format!("GET {DT}/applications?maxResults=500")));
    assert!(detail.starts_with("dry run: would transfer"), "{detail}");
    assert!(s.tenant.transfers().is_empty());

    // The manager comes from the person; application ids from applications.list (read by the
    // dry run, cached per connector).
    let (o, lines, detail) = s.exec(&a, &transfer(None), opts()).await;
    assert_eq!(o, Outcome::Done, "{detail}");
    let t = s.tenant.transfers();
    assert_eq!(t.len(), 1);
    let t = &t[0];
    assert_eq!(
        lines,
        vec![
            format!("GET {V1}/users/{id}"),
            format!("GET {V1}/users/manager@example.test"),
            format!("GET {DT}/transfers?oldOwnerUserId={id}&maxResults=500"),
            format!("POST {DT}/transfers"),
            format!("GET {DT}/transfers/{}", t.id),
            format!("GET {DT}/transfers/{}", t.id),
        ]
    );
    assert_eq!(
        (t.old_owner.as_str(), t.new_owner.as_str()),
        (id.as_str(), boss.as_str())
    );
    assert_eq!(t.status, "completed");
    let body = s
        .tenant
        .requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .and_then(|r| r.body)
        .unwrap();
    assert_eq!(body["oldOwnerUserId"], json!(id));
    assert_eq!(body["newOwnerUserId"], json!(boss));
    let sent = body["applicationDataTransfers"].as_array().unwrap();
    assert_eq!(sent.len(), 2, "Drive and Calendar only: {body}");
    assert_eq!(
        sent[0]["applicationTransferParams"],
        json!([{"key": "PRIVACY_LEVEL", "value": ["PRIVATE", "SHARED"]}])
    );
    assert_eq!(t.applications.len(), 2);
    assert!(
        detail.contains("Drive and Docs, Calendar of ann@example.test to manager@example.test")
    );

    // A repeat finds the completed transfer: nothing inserted, the applications are cached.
    let (o, lines, _) = s.exec(&a, &transfer(None), opts()).await;
    assert_eq!(o, Outcome::AlreadyDone);
    assert!(!lines.iter().any(|l| l.starts_with("POST")), "{lines:?}");
    assert!(
        !lines.iter().any(|l| l.contains("/applications")),
        "{lines:?}"
    );
    assert_eq!(s.tenant.transfers().len(), 1);
}

#[tokio::test]
async fn a_slow_transfer_is_in_progress_and_never_inserted_twice() {
    let s = setup().await;
    let google = config(&s.tenant)
        .with_transfer_polling(Duration::ZERO, Duration::from_secs(30))
        .build()
        .unwrap();
    s.tenant.set_transfer_gets(3);
    let a = s.user("ann@example.test").await;
    let e = google
        .execute(&a, &transfer(Some(GoogleFixture::MANAGER)), &run())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InProgress);
    assert_eq!(
        e.retry(),
        RetryClass::Retryable {
            after: Some(Duration::from_secs(30))
        }
    );
    assert!(e.to_string().contains("run again"), "{e}");
    assert_eq!(s.tenant.transfers().len(), 1);
    // The engine's retry finds the running transfer instead of inserting another.
    assert!(
        google
            .execute(&a, &transfer(Some(GoogleFixture::MANAGER)), &run())
            .await
            .is_err()
    );
    s.tenant.clear_requests();
    let r = google
        .execute(&a, &transfer(Some(GoogleFixture::MANAGER)), &run())
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Done);
    assert!(!s.lines().iter().any(|l| l.starts_with("POST")));
    let t = s.tenant.transfers();
    assert_eq!((t.len(), t[0].status.as_str()), (1, "completed"));
}

#[tokio::test]
async fn transfer_data_without_a_usable_new_owner_does_nothing() {
    let s = setup().await;
    let a = s.user("ann@example.test").await;
    let no_manager = run().with_person(Person::new("p1", "ann@example.test"));
    for (action, opts, kind) in [
        (transfer(None), no_manager.clone(), ErrorKind::InvalidInput),
        (transfer(None), run(), ErrorKind::InvalidInput),
        (
            transfer(Some("nobody@example.test")),
            run(),
            ErrorKind::NotFound,
        ),
        (
            transfer(Some("x@example.test' or '1")),
            run(),
            ErrorKind::InvalidInput,
        ),
        (
            transfer(Some("ann@example.test")),
            run(),
            ErrorKind::InvalidInput,
        ),
    ] {
        s.tenant.clear_requests();
        let e = s.google.execute(&a, &action, &opts).await.unwrap_err();
        assert_eq!(e.kind(), kind, "{e}");
        assert!(e.to_string().contains("nothing was transferred"), "{e}");
        assert!(
            s.lines().iter().all(|l| l.starts_with("GET")),
            "{:?}",
            s.lines()
        );
    }
    assert!(s.tenant.transfers().is_empty());
    // A deleted user's data cannot be transferred: an error, not "done".
    s.fixture.delete_user(&a.external_id).await;
    let e = s
        .google
        .execute(&a, &transfer(Some(GoogleFixture::MANAGER)), &run())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn remove_licenses_deletes_each_held_licence_and_rolls_back() {
    let s = setup().await;
    let a = s.user("ann@example.test").await;
    let id = a.external_id.clone();
    s.tenant.assign_licence(VAULT.0, VAULT.1, &id);
    let spec = s
        .google
        .capabilities()
        .action(&ActionName::from_static("google.remove_licenses"))
        .unwrap()
        .clone();
    assert!(spec.reversible && !spec.critical);
    let held = |s: &Setup| s.tenant.user(&id).unwrap().licences;
    let before = held(&s);
    assert_eq!(before.len(), 2);

    let lic = |(p, k): (&str, &str), m: &str| {
        format!("{m} /apps/licensing/v1/product/{p}/sku/{k}/user/ann@example.test")
    };
    s.tenant.clear_requests();
    let snap = s
        .google
        .snapshot(&a, &named("google.remove_licenses"))
        .await
        .unwrap();
    assert_eq!(
        snap.data,
        json!({"licences": [
            {"product": STARTER.0, "sku": STARTER.1},
            {"product": VAULT.0, "sku": VAULT.1},
        ]})
    );

    let (o, lines, _) = s
        .exec(
            &a,
            &named("google.remove_licenses"),
            run().with_dry_run(true),
        )
        .await;
    assert_eq!(o, Outcome::Done);
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(held(&s), before);

    let (o, lines, detail) = s.exec(&a, &named("google.remove_licenses"), run()).await;
    assert_eq!(o, Outcome::Done);
    assert_eq!(
        lines,
        vec![
            format!("GET {V1}/users/{id}"),
            lic(STARTER, "DELETE"),
            lic(STANDARD, "DELETE"),
            lic(VAULT, "DELETE"),
        ]
    );
    assert!(detail.contains("revoked 2 licences"), "{detail}");
    assert!(held(&s).is_empty());
    assert_eq!(
        s.exec(&a, &named("google.remove_licenses"), run()).await.0,
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
    assert_eq!(posts[0].body, Some(json!({"userId": "ann@example.test"})));
    assert_eq!(held(&s), before);
    assert_eq!(
        s.google.restore(&a, &snap).await.unwrap(),
        Outcome::AlreadyDone
    );

    // Without licences configured the action is not offered.
    let bare = GoogleConfig::new()
        .with_base_url(s.tenant.uri())
        .with_allow_plain_http(true)
        .with_access_token(Secret::new(s.tenant.token()))
        .build()
        .unwrap();
    let e = bare
        .execute(&a, &named("google.remove_licenses"), &run())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
}

#[tokio::test]
async fn wipe_devices_wipes_only_the_users_own_devices_once() {
    let s = setup().await;
    let a = s.user("ann@example.test").await;
    let id = a.external_id.clone();
    let second = s.tenant.add_device(&id, "iPhone 16").unwrap();
    // Another person whose address starts with ann's: Google's search may return it.
    let other = s.tenant.add_user(NewUser {
        devices: vec!["Galaxy S25".into()],
        ..NewUser::active("ann@example.test.evil.example")
    });
    let spec = s
        .google
        .capabilities()
        .action(&ActionName::from_static("google.wipe_devices"))
        .unwrap()
        .clone();
    assert!(spec.critical && !spec.reversible);

    let (o, lines, _) = s
        .exec(&a, &named("google.wipe_devices"), run().with_dry_run(true))
        .await;
    assert_eq!(o, Outcome::Done);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(s.tenant.devices(&id).iter().all(|d| d.status == "APPROVED"));

    let (o, lines, detail) = s.exec(&a, &named("google.wipe_devices"), run()).await;
    assert_eq!(o, Outcome::Done);
    let ids: Vec<String> = s
        .tenant
        .devices(&id)
        .iter()
        .map(|d| d.resource_id.clone())
        .collect();
    assert!(ids.contains(&second));
    assert_eq!(
        lines,
        vec![
            format!("GET {V1}/users/{id}"),
            format!("GET {DEVICES}?query=email:'ann@example.test'&maxResults=100"),
            format!("POST {DEVICES}/{}/action", ids[0]),
            format!("POST {DEVICES}/{}/action", ids[1]),
        ]
    );
    let body = s.tenant.requests().pop().unwrap().body;
    assert_eq!(body, Some(json!({"action": "admin_account_wipe"})));
    assert!(detail.contains("2 mobile devices"), "{detail}");
    for d in s.tenant.devices(&id) {
        assert_eq!(d.actions, vec!["admin_account_wipe"]);
    }
    let theirs = s.tenant.devices(&other);
    assert!(theirs[0].actions.is_empty(), "{theirs:?}");

    // ACCOUNT_WIPING then ACCOUNT_WIPED: both count as done.
    for _ in 0..2 {
        let (o, lines, _) = s.exec(&a, &named("google.wipe_devices"), run()).await;
        assert_eq!(o, Outcome::AlreadyDone);
        assert_eq!(lines.len(), 2);
    }
    assert!(
        s.tenant
            .devices(&id)
            .iter()
            .all(|d| d.status == "ACCOUNT_WIPED")
    );
}

#[tokio::test]
async fn device_queries_are_quoted() {
    let s = setup().await;
    let id = s.tenant.add_user(NewUser {
        devices: vec!["Pixel".into()],
        ..NewUser::active("o'hara\\x@example.test")
    });
    let a = AccountRef::new(
        "google",
        id.clone(),
        "o'hara\\x@example.test",
        offboard_core::AccountStatus::Active,
    );
    let (o, lines, _) = s.exec(&a, &named("google.wipe_devices"), run()).await;
    assert_eq!(o, Outcome::Done);
    assert_eq!(
        lines[1],
        format!("GET {DEVICES}?query=email:'o\\'hara\\\\x@example.test'&maxResults=100")
    );
    assert_eq!(s.tenant.devices(&id)[0].actions, vec!["admin_account_wipe"]);
}

#[tokio::test]
async fn reset_password_sends_a_fresh_random_password_it_never_shows() {
    let s = setup().await;
    let a = s.user("ann@example.test").await;
    let id = a.external_id.clone();
    let u = format!("{V1}/users/{id}");

    let (o, lines, _) = s
        .exec(
            &a,
            &named("google.reset_password"),
            run().with_dry_run(true),
        )
        .await;
    assert_eq!((o, lines), (Outcome::Done, vec![format!("GET {u}")]));
    assert_eq!(s.tenant.user(&id).unwrap().password_resets, 0);

    let reply = s
        .google
        .execute(&a, &named("google.reset_password"), &run())
        .await
        .unwrap();
    assert_eq!(reply.outcome, Outcome::Done);
    let patch = s.tenant.requests().pop().unwrap();
    assert_eq!(patch.line(), format!("PATCH {u}"));
    let body = patch.body.unwrap();
    let password = body["password"].as_str().unwrap().to_owned();
    assert_eq!(password.len(), 40);
    assert!(password.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(body["changePasswordAtNextLogin"], json!(true));
    assert!(body.get("hashFunction").is_none());
    assert_eq!(body.as_object().unwrap().len(), 2);
    let state = s.tenant.user(&id).unwrap();
    assert_eq!(
        (state.password_resets, state.change_password_at_next_login),
        (1, true)
    );
    // Never in the reply nor the connector's Debug.
    assert!(!format!("{reply:?}").contains(&password));
    assert!(!format!("{:?}", s.google).contains(&password));

    // The same task: already done, nothing sent. Another task: a new, different password.
    let (o, lines, _) = s.exec(&a, &named("google.reset_password"), run()).await;
    assert_eq!((o, lines.len()), (Outcome::AlreadyDone, 1));
    let other = ExecuteOptions::default().with_idempotency_key("task-2");
    let (o, _, _) = s.exec(&a, &named("google.reset_password"), other).await;
    assert_eq!(o, Outcome::Done);
    let again = s.tenant.requests().pop().unwrap().body.unwrap();
    assert_ne!(again["password"].as_str().unwrap(), password);
    assert_eq!(s.tenant.user(&id).unwrap().password_resets, 2);

    // A user who is gone: not found, nothing sent.
    s.fixture.delete_user(&id).await;
    let other = ExecuteOptions::default().with_idempotency_key("task-3");
    let (o, lines, _) = s.exec(&a, &named("google.reset_password"), other).await;
    assert_eq!((o, lines.len()), (Outcome::NotFound, 1));
}

/// Only a transfer requested by this task (or after it started) counts: an earlier completed
/// transfer to the same manager (a reorganisation last January) moved the data of *then*, so
/// it must not make `google.transfer_data` `already_done` and let `google.delete` run.
#[tokio::test]
async fn an_old_completed_transfer_does_not_count_for_this_task() {
    let s = setup().await;
    let a = s.user("ann@example.test").await;
    let id = a.external_id.clone();
    let boss = s.manager_id();
    let apps = s.tenant.application_ids();
    let covered = vec![apps["Drive and Docs"].clone(), apps["Calendar"].clone()];
    let january = chrono::DateTime::parse_from_rfc3339("2026-01-05T09:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let old = s
        .tenant
        .add_completed_transfer(&id, &boss, &covered, january);
    let task = |key: &str| {
        let mut o = ExecuteOptions::default().with_idempotency_key(key);
        o.task = Some(TaskId::new_v7());
        o
    };
    let first = task("task-1");
    let action = transfer(Some(GoogleFixture::MANAGER));

    let (o, lines, detail) = s.exec(&a, &action, first.clone().with_dry_run(true)).await;
    assert_eq!(o, Outcome::Done, "{detail}");
    assert!(detail.contains("would transfer"), "{detail}");
    assert!(lines.iter().all(|l| l.starts_with("GET ")), "{lines:?}");

    let (o, lines, detail) = s.exec(&a, &action, first.clone()).await;
    assert_eq!(o, Outcome::Done, "{detail}");
    assert!(lines.contains(&format!("POST {DT}/transfers")), "{lines:?}");
    let transfers = s.tenant.transfers();
    assert_eq!(transfers.len(), 2);
    let new = transfers.iter().find(|t| t.id != old).unwrap();
    assert_eq!(
        (
            new.old_owner.as_str(),
            new.new_owner.as_str(),
            new.status.as_str()
        ),
        (id.as_str(), boss.as_str(), "completed")
    );
    assert!(detail.contains(&new.id), "{detail}");

    // This task's own transfer counts for its repeat (retries keep the task and its key).
    let (o, lines, detail) = s.exec(&a, &action, first).await;
    assert_eq!(o, Outcome::AlreadyDone, "{detail}");
    assert!(detail.contains(&new.id), "{detail}");
    assert!(!lines.iter().any(|l| l.starts_with("POST")), "{lines:?}");
    assert_eq!(s.tenant.transfers().len(), 2);
}
