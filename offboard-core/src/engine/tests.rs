//! Unit tests of the engine's commits (the rest is tested through the public API in
//! `tests/engine.rs`).

use std::sync::Arc;
use std::time::Duration;

use super::{Change, Engine};
use crate::audit::{AuditKind, verify_chain};
use crate::delegate::{Delegate, DelegationRequest, TicketStatus};
use crate::error::{Error, Result};
use crate::machine::Event;
use crate::memory::MemoryStore;
use crate::policy::Policy;
use crate::run::{DelegateVia, Ticket};
use crate::run::{RunState, TaskState};
use crate::store::{AuditQuery, ClaimRequest, Store, conformance};

/// The delegate the tests' policy names (an engine refuses a policy that offboards nothing);
/// these tests open no ticket.
#[derive(Debug)]
pub(super) struct Unused;

#[async_trait::async_trait]
impl Delegate for Unused {
    fn via(&self) -> DelegateVia {
        DelegateVia::Email
    }

    async fn open(&self, _request: &DelegationRequest) -> Result<Ticket> {
        Err(Error::internal("these tests open no ticket"))
    }

    async fn status(&self, _ticket: &Ticket) -> Result<TicketStatus> {
        Err(Error::internal("these tests open no ticket"))
    }
}

/// A shared commit in which one sibling's lease was lost (another worker re-claimed its task)
/// commits the others without it: that change alone fails with the lost lease, naming its task,
/// and leaves no trace; the others are stored with their audit events.
#[tokio::test]
async fn a_lost_lease_fails_its_own_change_and_the_siblings_commit_without_it() {
    let store = Arc::new(MemoryStore::new());
    let engine = Engine::builder()
        .store(store.clone())
        .worker_id("worker-a")
        .policy(Policy::from_toml("unknown_apps = \"delegate_email\"").unwrap())
        .delegate(Arc::new(Unused))
        .build()
        .unwrap();
    let now = chrono::Utc::now();
    let run = conformance::sample_run(&[Some(now), Some(now), Some(now)]);
    store.create_run(&run, Vec::new()).await.unwrap();
    let request = |worker: &str| ClaimRequest::new(worker, now, Duration::from_secs(60), 10);
    let leases = store.claim(request("worker-a")).await.unwrap();
    assert_eq!(leases.len(), 3);
    let lease = |i: usize| {
        leases
            .iter()
            .find(|l| l.task == run.tasks[i].id)
            .unwrap()
            .clone()
    };
    // The second task's lease is lost.
    store.release(&lease(1), Some(now)).await.unwrap();
    let taken = store.claim(request("worker-b")).await.unwrap();
    assert_eq!(taken.len(), 1);

    let change = |i: usize| {
        Change::new(
            Some((&lease(i), false)),
            "worker-a",
            &Event::TaskStarted {
                task: run.tasks[i].id,
            },
        )
    };
    let before = store.load_run(run.id).await.unwrap().unwrap().version;
    let mut cached = None;
    let outcomes = engine
        .inner
        .commit_changes(&mut cached, run.id, vec![change(0), change(1), change(2)])
        .await;
    assert_eq!(outcomes.len(), 3);
    assert!(outcomes[0].is_ok(), "{:?}", outcomes[0].as_ref().err());
    assert!(outcomes[2].is_ok(), "{:?}", outcomes[2].as_ref().err());
    let Err(lost) = &outcomes[1] else {
        panic!("the change under the lost lease was committed");
    };
    assert!(
        lost.context()
            .any(|(k, v)| k == "task" && v == run.tasks[1].id.to_string()),
        "{lost}"
    );

    let stored = store.load_run(run.id).await.unwrap().unwrap();
    assert_eq!(stored.version, before + 1, "one commit");
    assert!(matches!(stored.tasks[0].state, TaskState::Running { .. }));
    assert_eq!(stored.tasks[1].state, TaskState::Pending);
    assert!(matches!(stored.tasks[2].state, TaskState::Running { .. }));
    assert_eq!(stored.state, RunState::Running);
    let started: Vec<_> = store
        .audit(AuditQuery::run(run.id))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.kind {
            AuditKind::Transition {
                event: Event::TaskStarted { task },
                ..
            } => Some(task),
            _ => None,
        })
        .collect();
    assert_eq!(started, vec![run.tasks[0].id, run.tasks[2].id]);
    let all = store.audit(AuditQuery::all()).await.unwrap();
    assert_eq!(verify_chain(&all), Ok(all.len() as u64));
    // The committed run is cached for the next change.
    assert_eq!(cached.map(|c| c.run.version), Some(before + 1));
}
