//! An AD-synced user through the real engine: the plan orders `ad.disable` before
//! `entra.disable_sign_in` (the Entra spec's `after`), and the Entra task verifies what the
//! sync carried over instead of writing.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use offboard_azure::AzureConfig;
use offboard_core::{
    AccountRef, AccountStatus, Action, ActionName, ActionSpec, Capabilities, Connector, Engine,
    Error, ExecuteOptions, ExecuteReply, Initiator, LookupRequest, MemoryStore, Outcome, Person,
    Policy, Result, RunRequest, RunState, Snapshot, TaskState, Verification,
};
use offboard_testkit::graph::{GraphTenant, NewUser};

/// A stand-in for the AD connector: `ad.disable` disables the account in "AD" and plays
/// Entra Connect's next sync on the simulated tenant.
#[derive(Debug)]
struct FakeAd {
    tenant: Arc<GraphTenant>,
    entra_id: String,
    capabilities: Capabilities,
}

#[async_trait]
impl Connector for FakeAd {
    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn lookup(&self, request: &LookupRequest) -> Result<Option<AccountRef>> {
        Ok(Some(AccountRef::new(
            "ad",
            "CN=Sync,OU=Staff,DC=example,DC=test",
            request.person.email.clone(),
            AccountStatus::Active,
        )))
    }

    async fn execute(
        &self,
        _: &AccountRef,
        _: &Action,
        _: &ExecuteOptions,
    ) -> Result<ExecuteReply> {
        self.tenant.sync_from_ad(&self.entra_id, false);
        Ok(ExecuteReply::new(Outcome::Done))
    }

    async fn snapshot(&self, _: &AccountRef, action: &Action) -> Result<Snapshot> {
        Err(Error::unsupported(format!(
            "{} is not reversible",
            action.name
        )))
    }

    async fn restore(&self, _: &AccountRef, snapshot: &Snapshot) -> Result<Outcome> {
        Err(Error::unsupported(format!(
            "{} is not reversible",
            snapshot.action
        )))
    }

    async fn verify_revoked(&self, _: &AccountRef) -> Result<Verification> {
        let enabled = self
            .tenant
            .user(&self.entra_id)
            .is_some_and(|u| u.account_enabled);
        Ok(Verification::from_remaining(
            "ad",
            if enabled {
                vec!["enabled".into()]
            } else {
                Vec::new()
            },
        ))
    }
}

#[tokio::test]
async fn the_ad_task_runs_first_and_entra_verifies_the_synced_disable() {
    let tenant = Arc::new(GraphTenant::start().await);
    let id = tenant.add_user(NewUser {
        on_premises_sync: true,
        ..NewUser::new("sync@example.test")
    });
    let entra = AzureConfig::new()
        .with_tenant_id(tenant.tenant_id())
        .with_client_id(tenant.client_id())
        .with_client_secret(offboard_core::Secret::new(tenant.client_secret()))
        .with_graph_url(tenant.graph_url())
        .with_token_url(tenant.token_url())
        .build()
        .unwrap();
    let ad = FakeAd {
        tenant: Arc::clone(&tenant),
        entra_id: id.clone(),
        capabilities: Capabilities::new(
            "ad",
            vec![ActionSpec::new(
                ActionName::from_static("ad.disable"),
                "Disable the AD account",
            )],
        )
        .without_verify(),
    };
    let policy = Policy::from_toml(
        "[apps.ad]\nmethod = \"automatic\"\nactions = [\"ad.disable\"]\n\n\
         [apps.entra]\nmethod = \"automatic\"\nactions = [\"entra.disable_sign_in\"]\n",
    )
    .unwrap();
    let engine = Engine::builder()
        .store(Arc::new(MemoryStore::new()))
        .connector(Arc::new(entra))
        .connector(Arc::new(ad))
        .policy(policy)
        .idle_poll(Duration::from_millis(50))
        .build()
        .unwrap();
    let plan = engine
        .plan(RunRequest::new(
            Person::new("p1", "sync@example.test"),
            Initiator::Schedule,
        ))
        .await
        .unwrap();
    let task = |name: &'static str| {
        plan.run
            .tasks
            .iter()
            .find(|t| {
                t.action()
                    .is_some_and(|a| a.name == ActionName::from_static(name))
            })
            .unwrap()
            .clone()
    };
    let (ad_task, entra_task) = (task("ad.disable"), task("entra.disable_sign_in"));
    assert_eq!(entra_task.depends_on, vec![ad_task.id]);
    assert_eq!(
        entra_task.account.as_ref().unwrap().attributes["on_premises_sync"],
        "true"
    );

    let workers = engine.start();
    let run_id = engine.submit(plan, None).await.unwrap();
    let run = engine.wait(run_id).await.unwrap();
    workers.shutdown().await;
    assert_eq!(run.state, RunState::Completed);
    let done = run.tasks.iter().find(|t| t.id == entra_task.id).unwrap();
    match &done.state {
        TaskState::Completed { outcome, detail } => {
            assert_eq!(*outcome, Outcome::AlreadyDone);
            assert!(detail.as_deref().unwrap().contains("in AD"), "{detail:?}");
        }
        other => panic!("entra.disable_sign_in: {other:?}"),
    }
    assert!(!tenant.user(&id).unwrap().account_enabled);
    assert!(
        tenant.requests().iter().all(|r| r.method != "PATCH"),
        "Entra never writes an AD-mastered user"
    );
}
