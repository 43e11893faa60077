//! The whole loop on one simulated Microsoft tenant: `EntraSource` sees a user disabled in
//! Entra, the engine's watch loop starts a run, and the o365 actions hand the mailbox over and
//! then free the licence, in that order.

mod common;

use std::sync::Arc;
use std::time::Duration;

use offboard_azure::{AzureConfig, EntraSource};
use offboard_core::engine::LifecycleRules;
use offboard_core::{Engine, MemoryStore, Policy, RunQuery, RunState, Secret, Store};
use offboard_http::graph::GraphRequest;
use offboard_testkit::sim::graph::{GraphTenant, NewUser};
use serde_json::json;

const POLICY: &str = r#"
[apps.o365]
method = "automatic"
actions = ["o365.remove_licenses", "o365.set_auto_reply"]
"#;

#[tokio::test]
async fn a_user_disabled_in_entra_is_offboarded_in_o365_by_the_watch_loop() {
    let tenant = Arc::new(GraphTenant::start().await);
    let sku = tenant.add_sku("ENTERPRISEPACK", 10);
    let ada = tenant.add_user(NewUser {
        licenses: vec![sku.clone()],
        ..NewUser::new("ada@example.test")
    });
    let bob = tenant.add_user(NewUser {
        licenses: vec![sku],
        ..NewUser::new("bob@example.test")
    });
    let graph = AzureConfig::new()
        .with_tenant_id(tenant.tenant_id())
        .with_client_id(tenant.client_id())
        .with_client_secret(Secret::new(tenant.client_secret()))
        .with_graph_url(tenant.graph_url())
        .with_allow_plain_http(true)
        .with_token_url(tenant.token_url())
        .graph_client()
        .unwrap();
    let store = Arc::new(MemoryStore::new());
    let engine = Engine::builder()
        .store(store.clone())
        .connector(Arc::new(common::connector(&tenant, None)))
        .policy(Policy::from_toml(POLICY).unwrap())
        .lifecycle(LifecycleRules {
            domains: vec!["example.test".into()],
            ..LifecycleRules::default()
        })
        .idle_poll(Duration::from_millis(100))
        .source(
            Arc::new(EntraSource::from_client(graph.clone())),
            Duration::from_secs(1),
        )
        .build()
        .unwrap();
    let first = engine.poll_sources().await.unwrap();
    assert_eq!(first.records, 2);
    assert!(first.started.is_empty(), "current people start nothing");

    let workers = engine.start();
    graph
        .send(&GraphRequest::patch(
            ["users", ada.as_str()],
            json!({"accountEnabled": false}),
        ))
        .await
        .unwrap();
    let run_id = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Some(r) = store
                .list_runs(RunQuery::person(ada.as_str()))
                .await
                .unwrap()
                .first()
            {
                break r.id;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("a run starts");
    let run = tokio::time::timeout(Duration::from_secs(20), engine.wait(run_id))
        .await
        .expect("the run ends")
        .unwrap();
    workers.shutdown().await;
    assert_eq!(run.state, RunState::Completed, "{run:?}");
    assert_eq!(run.person.email, "ada@example.test");
    let names: Vec<&str> = run
        .tasks
        .iter()
        .filter_map(|t| t.action().map(|a| a.name.as_str()))
        .collect();
    assert_eq!(names, ["o365.set_auto_reply", "o365.remove_licenses"]);
    let state = tenant.user(&ada).unwrap();
    assert!(state.licenses.is_empty());
    assert_eq!(state.automatic_replies.unwrap()["status"], "alwaysEnabled");
    // The auto-reply was set before the licence went.
    let lines: Vec<String> = tenant
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    let patched = lines
        .iter()
        .position(|l| *l == format!("PATCH /v1.0/users/{ada}/mailboxSettings"))
        .unwrap();
    let freed = lines
        .iter()
        .position(|l| *l == format!("POST /v1.0/users/{ada}/assignLicense"))
        .unwrap();
    assert!(patched < freed, "{lines:?}");
    assert!(
        store
            .list_runs(RunQuery::person(bob.as_str()))
            .await
            .unwrap()
            .is_empty(),
        "bob is still current"
    );
    assert_eq!(tenant.user(&bob).unwrap().licenses.len(), 1);
}
