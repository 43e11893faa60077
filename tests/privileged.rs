//! An account its connector reports privileged (`PRIVILEGED_ATTRIBUTE`: a former domain admin,
//! a directory role) makes every action on it critical: the plan needs a confirmation.

use std::sync::Arc;

use offboard::memory::MemoryStore;
use offboard::{
    Engine, ErrorKind, Initiator, PRIVILEGED_ATTRIBUTE, Person, Policy, RunRequest, TaskState,
};
use offboard_testkit::suite::reference::{ReferenceConnector, ReferenceUser};

const POLICY: &str = r#"
[apps.idp]
method = "automatic"
actions = ["idp.suspend", "idp.clear_sessions"]
"#;

async fn plan_for(user: ReferenceUser) -> (Engine, offboard::Plan) {
    let idp = Arc::new(ReferenceConnector::builder("idp").user(user).build());
    let engine = Engine::builder()
        .store(Arc::new(MemoryStore::new()))
        .connector(idp)
        .policy(Policy::from_toml(POLICY).unwrap())
        .build()
        .unwrap();
    let plan = engine
        .plan(RunRequest::new(
            Person::new("p-ada", "ada@example.com"),
            Initiator::Admin {
                actor: "admin@example.com".into(),
            },
        ))
        .await
        .unwrap();
    (engine, plan)
}

#[tokio::test]
async fn every_action_on_a_privileged_account_is_critical() {
    let (engine, plan) = plan_for(
        ReferenceUser::employee("ada@example.com").privileged("adminCount=1: a former admin"),
    )
    .await;
    assert!(plan.has_critical(), "{plan}");
    assert!(plan.run.tasks.iter().all(|t| t.critical), "{plan}");
    let account = plan.apps[0].account.as_ref().unwrap();
    assert!(account.attributes[PRIVILEGED_ATTRIBUTE].contains("adminCount"));
    // The plan says why (before, its text showed CRITICAL with no reason).
    assert!(
        plan.to_string()
            .contains("privileged (adminCount=1: a former admin)"),
        "{plan}"
    );
    // A plan whose privileged account's actions were marked not critical is refused.
    let mut weaker = plan.clone();
    for t in &mut weaker.run.tasks {
        t.critical = false;
    }
    let e = engine.submit(weaker, None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("not critical"), "{e}");
    // Submitted without a confirmation, every action waits for one.
    let run = engine.submit(plan, None).await.unwrap();
    let run = engine.status(run).await.unwrap();
    assert!(
        run.tasks.iter().all(|t| matches!(t.state, TaskState::Held)),
        "{:?}",
        run.tasks.iter().map(|t| &t.state).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn an_ordinary_account_is_not_made_critical() {
    let (_engine, plan) = plan_for(ReferenceUser::employee("ada@example.com")).await;
    assert!(!plan.has_critical(), "{plan}");
}
