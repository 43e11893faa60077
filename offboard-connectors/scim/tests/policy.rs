//! Issue 25 item 4: a discovered app with a SCIM connector configured is automatic. The policy
//! does not name Notion; the person was discovered in it; the engine has a SCIM connector for
//! it: the plan runs the connector's default actions (deactivate, remove from groups, never
//! the critical delete), and the simulated provider's state shows it. Without the connector the
//! same discovery follows `unknown_apps`. Failed before: the plan delegated the app by email.

use std::sync::Arc;

use offboard_core::engine::Confirmation;
use offboard_core::{
    AccountRef, AccountStatus, Engine, Initiator, MemoryStore, Person, Policy, RunRequest,
    RunState, Secret, Store, TaskKind,
};
use offboard_scim::ScimConfig;
use offboard_testkit::sim::scim::{ScimProvider, ScimSettings};

const POLICY: &str = "unknown_apps = \"ignore\"\n";

async fn discovered(store: &MemoryStore, person: &Person, id: &str) {
    store
        .upsert_accounts(
            &person.id,
            &[AccountRef::new(
                "notion",
                id,
                "ada@example.com",
                AccountStatus::Active,
            )],
            chrono::Utc::now() - chrono::Duration::days(30),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_discovered_app_with_a_scim_connector_is_automatic() {
    let sp = Arc::new(ScimProvider::start(ScimSettings::default()).await);
    let ada_id = sp.add_user("ada@example.com", &["ada@example.com"]);
    let other = sp.add_user("ada.l@example.com", &["ada.l@example.com"]);
    let team = sp.add_group("Engineering");
    sp.add_member(&team, &ada_id);
    sp.add_member(&team, &other);
    let notion = ScimConfig::new("notion")
        .with_base_url(sp.base_url())
        .with_allow_plain_http(true)
        .with_bearer_token(Secret::new(sp.token()))
        .build()
        .unwrap();
    let store = Arc::new(MemoryStore::new());
    let ada = Person::new("p-ada", "ada@example.com");
    discovered(&store, &ada, &ada_id).await;
    let engine = Engine::builder()
        .store(store.clone())
        .policy(Policy::from_toml(POLICY).unwrap())
        .connector(Arc::new(notion))
        .build()
        .unwrap();
    let plan = engine
        .plan(RunRequest::new(ada.clone(), Initiator::Schedule))
        .await
        .unwrap();
    let mut labels: Vec<String> = plan.run.tasks.iter().map(|t| t.label()).collect();
    labels.sort();
    assert_eq!(labels, ["notion.deactivate", "notion.remove_groups"]);
    assert!(
        plan.run
            .tasks
            .iter()
            .all(|t| matches!(t.kind, TaskKind::Action { .. }))
    );
    assert!(!plan.has_critical());
    let confirmation = plan
        .has_critical()
        .then(|| Confirmation::of(&plan, "admin@example.com"));
    let id = engine.submit(plan, confirmation).await.unwrap();
    let workers = engine.start();
    let run = engine.wait(id).await.unwrap();
    workers.shutdown().await;
    assert_eq!(run.state, RunState::Completed);
    let after = sp.user(&ada_id).unwrap();
    assert!(!after.active && after.groups.is_empty());
    let untouched = sp.user(&other).unwrap();
    assert!(untouched.active && untouched.groups.contains(&team));
}

#[tokio::test]
async fn without_the_connector_a_discovered_app_follows_unknown_apps() {
    // A SCIM connector for another app only.
    let sp = Arc::new(ScimProvider::start(ScimSettings::default()).await);
    let slack = ScimConfig::new("slack")
        .with_base_url(sp.base_url())
        .with_allow_plain_http(true)
        .with_bearer_token(Secret::new(sp.token()))
        .build()
        .unwrap();
    let store = Arc::new(MemoryStore::new());
    let ada = Person::new("p-ada", "ada@example.com");
    discovered(&store, &ada, "n-1").await;
    let engine = Engine::builder()
        .store(store.clone())
        .policy(Policy::from_toml(POLICY).unwrap())
        .connector(Arc::new(slack))
        .build()
        .unwrap();
    let plan = engine
        .plan(RunRequest::new(ada, Initiator::Schedule))
        .await
        .unwrap();
    let labels: Vec<String> = plan.run.tasks.iter().map(|t| t.label()).collect();
    assert_eq!(labels, ["notion.ignore"]);
}
