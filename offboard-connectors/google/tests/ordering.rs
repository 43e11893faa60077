//! The Google connector under the engine: an ordering Google needs (backup codes cannot be
//! invalidated once the user is suspended) never turns a failed hygiene step into a skipped
//! revocation. Suspension and sign-out run whatever happened to the backup codes.

use std::sync::Arc;

use offboard_core::{
    Engine, Initiator, MemoryStore, Person, Policy, RunRequest, Secret, TaskState,
};
use offboard_google::GoogleConfig;
use offboard_testkit::Fixture;
use offboard_testkit::sim::google::{GoogleFixture, GoogleTenant};

const INVALIDATE: &str = "admin/directory/v1/users/{userKey}/verificationCodes/invalidate";

const POLICY: &str = r#"
[apps.google]
method = "automatic"
actions = [
    "google.invalidate_backup_codes",
    "google.delete_asps",
    "google.suspend",
    "google.sign_out",
]
"#;

fn state(run: &offboard_core::Run, label: &str) -> String {
    run.tasks
        .iter()
        .find(|t| t.label() == label)
        .map(|t| t.state.name().to_owned())
        .unwrap_or_else(|| panic!("no task {label}"))
}

#[tokio::test]
async fn a_failed_hygiene_step_never_skips_suspend_or_sign_out() {
    let tenant = Arc::new(GoogleTenant::start().await);
    let fixture = GoogleFixture::new(Arc::clone(&tenant));
    let ann = fixture.create_user("ann@example.test", &[]).await;
    // The backup-code step fails for good (a permanent 400 on every invalidation).
    tenant.fail_route("POST", INVALIDATE, Some(400));
    let google = GoogleConfig::new()
        .with_base_url(tenant.uri())
        .with_allow_plain_http(true)
        .with_access_token(Secret::new(tenant.token()))
        .build()
        .unwrap();
    let engine = Engine::builder()
        .store(Arc::new(MemoryStore::new()))
        .policy(Policy::from_toml(POLICY).unwrap())
        .connector(Arc::new(google))
        .build()
        .unwrap();
    let plan = engine
        .plan(RunRequest::new(
            Person::new("p-ann", "ann@example.test"),
            Initiator::Admin {
                actor: "admin@example.test".into(),
            },
        ))
        .await
        .unwrap();
    let id = engine.submit(plan, None).await.unwrap();
    let workers = engine.start();
    let run = engine.wait(id).await.unwrap();
    workers.shutdown().await;

    let user = tenant.user(&ann.external_id).unwrap();
    assert!(user.suspended, "suspension ran");
    assert_eq!(user.sessions, 0, "sign-out ran");
    assert!(user.asps.is_empty(), "app passwords deleted");
    assert_eq!(user.backup_codes, 10, "the failing step changed nothing");
    assert_eq!(state(&run, "google.invalidate_backup_codes"), "failed");
    for done in ["google.delete_asps", "google.suspend", "google.sign_out"] {
        assert_eq!(state(&run, done), "completed", "{done}");
    }
    let TaskState::Failed { error } = &run
        .tasks
        .iter()
        .find(|t| t.label() == "google.invalidate_backup_codes")
        .unwrap()
        .state
    else {
        unreachable!("checked above")
    };
    assert!(
        error.message.contains("verificationCodes/invalidate"),
        "{error:?}"
    );
}
