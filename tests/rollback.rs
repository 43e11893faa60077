//! Rollback safety: two rollbacks at once restore once, a failed restore keeps the tasks its
//! task depended on as they are, failed reversible tasks with a snapshot are restored, and a
//! run with critical tasks rolls back only with a confirmation. On the in-memory store and the
//! testkit's reference connector, under a paused tokio clock.

use std::sync::Arc;
use std::time::Duration;

use offboard::engine::RollbackReport;
use offboard::machine::Event;
use offboard::memory::MemoryStore;
use offboard::{
    AccountStatus, AuditKind, AuditQuery, Confirmation, Connector, Engine, ErrorKind, Initiator,
    KeptTask, Person, Policy, Result, Run, RunId, RunRequest, RunState, Store, Task, TaskState,
};
use offboard_testkit::suite::reference::{Fault, ReferenceConnector, ReferenceUser, permanent};

const ADMIN: &str = "admin@example.com";

/// Suspend, then remove the groups: both reversible, the second depends on the first.
const SUSPEND_THEN_GROUPS: &str = r#"
[apps.idp]
method = "automatic"
actions = ["idp.suspend", "idp.remove_groups"]

[[order]]
before = "idp.suspend"
after = "idp.remove_groups"
"#;

fn ada() -> Person {
    Person::new("p-ada", "ada@example.com").with_name("Ada")
}

fn idp(latency: Duration) -> Arc<ReferenceConnector> {
    Arc::new(
        ReferenceConnector::builder("idp")
            .users([ReferenceUser::employee("ada@example.com")])
            .latency(latency)
            .build(),
    )
}

fn engine(store: Arc<MemoryStore>, c: &Arc<ReferenceConnector>, src: &str, id: &str) -> Engine {
    Engine::builder()
        .store(store)
        .policy(Policy::from_toml(src).expect("test policy parses"))
        .connector(c.clone() as Arc<dyn Connector>)
        .worker_id(id)
        .build()
        .expect("engine builds")
}

/// Plans, submits (confirming critical actions) and runs Ada's offboarding to its end.
async fn offboard(engine: &Engine) -> Run {
    let plan = engine
        .plan(RunRequest::new(
            ada(),
            Initiator::Admin {
                actor: ADMIN.into(),
            },
        ))
        .await
        .expect("plan");
    let confirm = plan
        .has_critical()
        .then(|| Confirmation::of(&plan, "security@example.com").as_role("security"));
    let id = engine.submit(plan, confirm).await.expect("submit");
    let workers = engine.start();
    let run = engine.wait(id).await.expect("wait");
    workers.shutdown().await;
    run
}

fn task<'a>(run: &'a Run, label: &str) -> &'a Task {
    run.tasks
        .iter()
        .find(|t| t.label() == label)
        .unwrap_or_else(|| panic!("no task {label}"))
}

async fn roll_back(
    engine: &Engine,
    run: RunId,
    by: &str,
    confirmation: Option<Confirmation>,
) -> Result<RollbackReport> {
    engine.rollback(run, by, confirmation).await
}

/// How many `name` transitions the run's trail holds.
async fn transitions(store: &MemoryStore, run: RunId, name: &str) -> usize {
    store
        .audit(AuditQuery::run(run))
        .await
        .unwrap()
        .iter()
        .filter(|e| matches!(&e.kind, AuditKind::Transition { event, .. } if event.name() == name))
        .count()
}

/// Two engines on one store roll the same run back at once: every task is restored once, by
/// one of them; the other one's request is refused while the first holds the run.
#[tokio::test(start_paused = true)]
async fn two_concurrent_rollbacks_restore_each_task_once() {
    let store = Arc::new(MemoryStore::new());
    // Every call takes a while, so the two rollbacks overlap.
    let c = idp(Duration::from_millis(50));
    let a = engine(store.clone(), &c, SUSPEND_THEN_GROUPS, "a");
    let b = engine(store.clone(), &c, SUSPEND_THEN_GROUPS, "b");
    let before = c.user_by_login("ada@example.com").unwrap();
    let run = offboard(&a).await;
    assert_eq!(run.state, RunState::Completed);
    c.reset_counters();

    let (ra, rb) = tokio::join!(
        roll_back(&a, run.id, ADMIN, None),
        roll_back(&b, run.id, ADMIN, None)
    );
    assert_eq!(c.calls().restore, 2, "one restore per reversible task");
    let ada = c.account_by_login("ada@example.com").unwrap();
    assert_eq!(c.restore_effects(&ada.external_id, "idp.suspend"), 1);
    assert_eq!(c.restore_effects(&ada.external_id, "idp.remove_groups"), 1);
    let restored: usize = [&ra, &rb]
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|r| r.restored.len())
        .sum();
    assert_eq!(restored, 2, "{ra:?} {rb:?}");
    let refused: Vec<_> = [ra, rb].into_iter().filter_map(|r| r.err()).collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].kind(), ErrorKind::Conflict, "{:?}", refused[0]);
    let after = c.user_by_login("ada@example.com").unwrap();
    assert_eq!(after.status, before.status);
    assert_eq!(after.groups, before.groups);
    let run = a.status(run.id).await.unwrap();
    assert_eq!(run.state, RunState::RolledBack);
    assert_eq!(run.restore_lease, None, "the lease is released at the end");
    assert_eq!(transitions(&store, run.id, "task_rolled_back").await, 2);
    assert_eq!(transitions(&store, run.id, "rollback_requested").await, 1);
}

/// Removing the groups depended on the suspension: when restoring the groups fails, the
/// suspension is not undone (that would re-enable an account whose groups are not back); both
/// are reported, and a later rollback restores them in order.
#[tokio::test(start_paused = true)]
async fn a_failed_dependent_restore_keeps_its_dependency() {
    let store = Arc::new(MemoryStore::new());
    let c = idp(Duration::ZERO);
    let e = engine(store.clone(), &c, SUSPEND_THEN_GROUPS, "a");
    let before = c.user_by_login("ada@example.com").unwrap();
    let run = offboard(&e).await;
    assert_eq!(run.state, RunState::Completed);
    c.reset_counters();
    c.fail_next(
        "restore",
        1,
        permanent(ErrorKind::Vendor, "groups API down"),
    );

    let report = roll_back(&e, run.id, ADMIN, None).await.unwrap();
    assert_eq!(c.calls().restore, 1, "only the groups' restore was tried");
    let now = c.user_by_login("ada@example.com").unwrap();
    assert_eq!(now.status, AccountStatus::Suspended, "still suspended");
    assert!(now.groups.is_empty());
    let groups = task(&run, "idp.remove_groups").id;
    let suspend = task(&run, "idp.suspend").id;
    assert!(report.restored.is_empty(), "{report:?}");
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert_eq!(report.failed[0].0, groups);
    let kept = vec![KeptTask {
        task: suspend,
        because: groups,
    }];
    assert_eq!(report.kept, kept);
    assert_eq!(report.state, RunState::Completed);
    let trail = store.audit(AuditQuery::run(run.id)).await.unwrap();
    assert!(
        trail.iter().any(|e| matches!(
            &e.kind,
            AuditKind::Transition { event: Event::RollbackEnded { kept: k, .. }, .. } if *k == kept
        )),
        "the kept task is audited with its reason"
    );
    assert_eq!(transitions(&store, run.id, "restore_failed").await, 1);
    assert_eq!(transitions(&store, run.id, "task_rolled_back").await, 0);
    let after_first = e.status(run.id).await.unwrap();
    assert!(
        after_first
            .tasks
            .iter()
            .all(|t| t.state.is_completed() && t.reversible),
        "nothing rolled back: {:?}",
        after_first.tasks
    );

    // The groups API is back: a second rollback restores the groups, then the suspension.
    let report = roll_back(&e, run.id, ADMIN, None).await.unwrap();
    assert_eq!(report.restored, vec![groups, suspend], "{report:?}");
    assert!(report.kept.is_empty());
    let now = c.user_by_login("ada@example.com").unwrap();
    assert_eq!(now.status, before.status);
    assert_eq!(now.groups, before.groups);
    assert_eq!(report.state, RunState::RolledBack);
}

/// A reversible action that failed after it changed the account (its answer lost) has a
/// snapshot: rollback restores it too.
#[tokio::test(start_paused = true)]
async fn a_failed_reversible_task_with_a_snapshot_is_restored() {
    let store = Arc::new(MemoryStore::new());
    let c = idp(Duration::ZERO);
    c.inject(
        Fault::next(
            "idp.suspend",
            1,
            permanent(ErrorKind::Vendor, "answer lost"),
        )
        .after_effect(),
    );
    let src = "[apps.idp]\nmethod = \"automatic\"\nactions = [\"idp.suspend\"]\n";
    let e = engine(store.clone(), &c, src, "a");
    let run = offboard(&e).await;
    assert_eq!(run.state, RunState::CompletedWithFailures);
    let suspend = task(&run, "idp.suspend");
    assert!(matches!(suspend.state, TaskState::Failed { .. }));
    assert!(store.snapshot(suspend.id).await.unwrap().is_some());
    assert_eq!(
        c.user_by_login("ada@example.com").unwrap().status,
        AccountStatus::Suspended,
        "the failed suspension changed the account"
    );

    let report = roll_back(&e, run.id, ADMIN, None).await.unwrap();
    assert_eq!(report.restored, vec![suspend.id], "{report:?}");
    assert!(report.failed.is_empty());
    assert_eq!(report.state, RunState::RolledBack);
    assert_eq!(
        c.user_by_login("ada@example.com").unwrap().status,
        AccountStatus::Active
    );
    assert_eq!(c.calls().restore, 1);
}

/// A run with a critical task rolls back only with a confirmation quoting its rollback digest,
/// by a confirmer the approvals allow (as for submit: a listed role, and four eyes: not the one
/// asking for the rollback). Without one, with another digest, by the asker himself or without
/// the role, nothing is restored, nothing is committed and each refusal is audited.
#[tokio::test(start_paused = true)]
async fn a_run_with_critical_tasks_rolls_back_only_when_confirmed() {
    let store = Arc::new(MemoryStore::new());
    let c = idp(Duration::ZERO);
    let src = format!(
        "critical = [\"idp.suspend\"]\n[approvals]\nroles = [\"security\"]\nfour_eyes = true\n\
         {SUSPEND_THEN_GROUPS}"
    );
    let e = engine(store.clone(), &c, &src, "a");
    let run = offboard(&e).await;
    assert_eq!(run.state, RunState::Completed);
    assert!(task(&run, "idp.suspend").critical);
    c.reset_counters();

    let digest = run.rollback_digest();
    assert_ne!(digest, run.plan_digest);
    let refusals = [
        None,
        // The submit's digest does not confirm a rollback.
        Some(
            Confirmation::new(run.plan_digest.clone(), "security@example.com").as_role("security"),
        ),
        // Four eyes: the asker cannot confirm his own rollback.
        Some(Confirmation::of_rollback(&run, ADMIN).as_role("security")),
        // Not a role the approvals list.
        Some(Confirmation::of_rollback(&run, "security@example.com").as_role("helpdesk")),
    ];
    for confirmation in &refusals {
        let err = roll_back(&e, run.id, ADMIN, confirmation.clone())
            .await
            .unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::ConfirmationRequired,
            "{confirmation:?}: {err:?}"
        );
    }
    assert_eq!(c.calls().restore, 0);
    assert_eq!(
        c.user_by_login("ada@example.com").unwrap().status,
        AccountStatus::Suspended
    );
    let unchanged = e.status(run.id).await.unwrap();
    assert_eq!(unchanged.version, run.version, "nothing was committed");
    assert!(!unchanged.rollback_requested);
    let refused: Vec<_> = store
        .audit(AuditQuery::run(run.id))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|ev| match ev.kind {
            AuditKind::Note { name, data } if name == "confirmation_refused" => Some(data),
            _ => None,
        })
        .collect();
    assert_eq!(refused.len(), refusals.len(), "{refused:?}");
    assert!(
        refused.iter().all(|d| d["for"] == "rollback"),
        "{refused:?}"
    );

    let ok = Confirmation::of_rollback(&run, "security@example.com").as_role("security");
    let report = roll_back(&e, run.id, ADMIN, Some(ok)).await.unwrap();
    assert_eq!(report.restored.len(), 2, "{report:?}");
    assert_eq!(report.state, RunState::RolledBack);
    assert_eq!(
        c.user_by_login("ada@example.com").unwrap().status,
        AccountStatus::Active
    );
    // A rolled-back run has nothing left to confirm: a second rollback is a conflict.
    let err = roll_back(&e, run.id, ADMIN, None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err:?}");
    assert_eq!(c.calls().restore, 2);
}
