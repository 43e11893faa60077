//! An AD-synced user through the real engine: the plan orders `ad.disable` before
//! `entra.disable_sign_in` (the Entra spec's `after`), and the Entra task verifies what the
//! sync carried over instead of writing.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use offboard_azure::{AzureConfig, EntraConnector};
use offboard_core::{
    AccountRef, AccountStatus, Action, ActionName, ActionSpec, Capabilities, Connector, Engine,
    Error, ExecuteOptions, ExecuteReply, Initiator, LookupRequest, MemoryStore, Outcome, Person,
    Plan, Policy, Result, Run, RunRequest, RunState, Snapshot, TaskState, Verification,
};
use offboard_testkit::sim::graph::{GraphTenant, NewUser};

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

/// The Entra connector against `tenant`.
fn entra(tenant: &GraphTenant) -> EntraConnector {
    AzureConfig::new()
        .with_tenant_id(tenant.tenant_id())
        .with_client_id(tenant.client_id())
        .with_client_secret(offboard_core::Secret::new(tenant.client_secret()))
        .with_graph_url(tenant.graph_url())
        .with_allow_plain_http(true)
        .with_token_url(tenant.token_url())
        .build()
        .unwrap()
}

/// An engine over a memory store with these connectors and `policy` (TOML).
fn engine(connectors: Vec<Arc<dyn Connector>>, policy: &str) -> Engine {
    connectors
        .into_iter()
        .fold(Engine::builder(), |b, c| b.connector(c))
        .store(Arc::new(MemoryStore::new()))
        .policy(Policy::from_toml(policy).unwrap())
        .idle_poll(Duration::from_millis(50))
        .build()
        .unwrap()
}

/// The plan for `email`.
async fn plan(engine: &Engine, email: &str) -> Plan {
    engine
        .plan(RunRequest::new(
            Person::new("p1", email),
            Initiator::Schedule,
        ))
        .await
        .unwrap()
}

/// Submits `plan`, runs it to its end and returns the run.
async fn run_to_end(engine: &Engine, plan: Plan) -> Run {
    let workers = engine.start();
    let run_id = engine.submit(plan, None).await.unwrap();
    let run = engine.wait(run_id).await.unwrap();
    workers.shutdown().await;
    run
}

#[tokio::test]
async fn the_ad_task_runs_first_and_entra_verifies_the_synced_disable() {
    let tenant = Arc::new(GraphTenant::start().await);
    let id = tenant.add_user(NewUser {
        on_premises_sync: true,
        ..NewUser::new("sync@example.test")
    });
    let entra = entra(&tenant);
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
    let engine = engine(
        vec![Arc::new(entra), Arc::new(ad)],
        "[apps.ad]\nmethod = \"automatic\"\nactions = [\"ad.disable\"]\n\n\
         [apps.entra]\nmethod = \"automatic\"\nactions = [\"entra.disable_sign_in\"]\n",
    );
    let plan = plan(&engine, "sync@example.test").await;
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

    let run = run_to_end(&engine, plan).await;
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

/// Issue 19 item 4: an ordering dependency never turns a failed hygiene step into a skipped
/// revocation. `entra.disable_sign_in` fails for good (the app may not write the user), and
/// the sessions are revoked all the same.
#[tokio::test]
async fn sessions_are_revoked_even_when_disabling_sign_in_failed() {
    let tenant = Arc::new(GraphTenant::start().await);
    let id = tenant.add_user(NewUser::new("cloud@example.test"));
    tenant.fail_route("PATCH", "/users/{user-id}", 403);
    let entra = entra(&tenant);
    let engine = engine(
        vec![Arc::new(entra)],
        "[apps.entra]\nmethod = \"automatic\"\n\
         actions = [\"entra.disable_sign_in\", \"entra.revoke_sessions\"]\n",
    );
    let plan = plan(&engine, "cloud@example.test").await;
    let run = run_to_end(&engine, plan).await;
    let state = |name: &'static str| {
        run.tasks
            .iter()
            .find(|t| {
                t.action()
                    .is_some_and(|a| a.name == ActionName::from_static(name))
            })
            .unwrap()
            .state
            .clone()
    };
    assert!(
        matches!(state("entra.disable_sign_in"), TaskState::Failed { .. }),
        "{:?}",
        state("entra.disable_sign_in")
    );
    assert!(
        matches!(
            state("entra.revoke_sessions"),
            TaskState::Completed {
                outcome: Outcome::Done,
                ..
            }
        ),
        "{:?}",
        state("entra.revoke_sessions")
    );
    let user = tenant.user(&id).unwrap();
    assert!(user.account_enabled);
    assert_eq!(user.session_revocations, 1);
}

/// A Global Administrator (eligible for Security Administrator) is privileged: the lookup
/// names the roles, every Entra task of the plan is critical and the plan text says why
/// (before, Entra never read roles, so such a plan ran without confirmation).
#[tokio::test]
async fn a_global_admins_plan_is_critical_and_names_the_roles() {
    use offboard_testkit::sim::graph::role_templates::{
        GLOBAL_ADMINISTRATOR, SECURITY_ADMINISTRATOR,
    };
    let tenant = Arc::new(GraphTenant::start().await);
    let id = tenant.add_user(NewUser::new("root@example.test"));
    tenant.assign_role(&id, GLOBAL_ADMINISTRATOR, "/");
    tenant.add_role_eligibility(&id, SECURITY_ADMINISTRATOR, "/", None);
    tenant.add_user(NewUser::new("plain@example.test"));
    let engine = engine(
        vec![Arc::new(entra(&tenant))],
        "[apps.entra]\nmethod = \"automatic\"\n\
         actions = [\"entra.disable_sign_in\", \"entra.remove_directory_roles\"]\n",
    );
    let p = plan(&engine, "root@example.test").await;
    assert!(p.run.tasks.iter().all(|t| t.critical), "{p}");
    let text = p.to_string();
    assert!(
        text.contains(
            "privileged (directory roles: Global Administrator, Security Administrator (eligible))"
        ),
        "{text}"
    );
    let p = plan(&engine, "plain@example.test").await;
    assert!(!p.has_critical(), "{p}");
    assert!(!p.to_string().contains("privileged"));
}
