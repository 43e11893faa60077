//! The store conformance suite: plain async functions every [`Store`] runs.
//!
//! One function per rule of the [`Store`] contract; each panics with a message naming the rule
//! when the store breaks it. [`run_all`] runs them all, one after the other.
//!
//! # Calling contract
//!
//! - Call [`run_all`] (or single rules) from a test, with any async runtime:
//!   `offboard_core::store::conformance::run_all(&store).await`.
//! - Every rule creates its own runs, people, tasks and cursors with fresh random ids, and
//!   reads back only what it wrote, so the rules may run against a database that already holds
//!   data.
//! - The claim rules claim *every* due task in the store, as a worker would. They work on a
//!   timeline in the year 2000, so a live engine's tasks (due now) are never touched, and they
//!   only assert about their own tasks. Still, do not run two suites against one database at the
//!   same time: each would lease the other's tasks.
//! - That timeline is the requests' `now`: a store that keeps its own clock (see the clocks of
//!   [`Store`]) runs the suite set to decide by the caller's clock (PostgreSQL:
//!   `PostgresClock::Caller`), and proves its own clock with tests of its own.
//! - Timestamps are whole seconds and durations whole seconds, so stores that keep microseconds
//!   or milliseconds round-trip them exactly.
//! - [`audit_chain_verifies`] reads and verifies the whole audit trail; [`run_all`] runs it last
//!   so it also covers the events (and failed commits) of every other rule.
//!
//! # Example
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use offboard_core::MemoryStore;
//! use offboard_core::store::conformance;
//!
//! conformance::run_all(&MemoryStore::new()).await;
//! # });
//! ```

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{
    AuditQuery, ClaimRequest, Commit, Lease, LeaseConflict, MAX_RECORD_KEY, MAX_RECORD_VALUE,
    Record, RecordSwap, RunQuery, Store,
};
use crate::action::{Action, ActionName};
use crate::audit::{self, AuditEvent, AuditKind};
use crate::connector::Snapshot;
use crate::error::{ErrorKind, Result};
use crate::machine::Event;
use crate::model::{AccountRef, AccountStatus, AppId, Manager, Person, PersonId};
use crate::run::{
    Initiator, Outcome, RetryPolicy, Run, RunId, RunState, Task, TaskId, TaskKind, TaskState,
};
use crate::source::Cursor;

/// Runs every rule, in order, against `store`.
///
/// # Behavior
/// Panics at the first rule the store breaks, naming it.
pub async fn run_all(store: &dyn Store) {
    create_load_round_trip(store).await;
    load_runs_as_load_run(store).await;
    create_twice_conflicts(store).await;
    one_open_run_per_person(store).await;
    commit_bumps_version(store).await;
    stale_commit_conflicts(store).await;
    commit_under_lost_lease_conflicts(store).await;
    commit_under_lost_lease_of_unchanged_task_conflicts(store).await;
    commit_release_frees_lease(store).await;
    commit_under_several_leases(store).await;
    commit_claims_tasks(store).await;
    claim_only_due(store).await;
    held_tasks_wait_for_their_release(store).await;
    claim_skips_terminal_runs(store).await;
    claim_skips_live_leases(store).await;
    expired_lease_reclaimable(store).await;
    concurrent_claims_disjoint(store).await;
    claim_limit_and_order(store).await;
    release_sets_due_and_frees(store).await;
    commit_writes_only_changed_tasks(store).await;
    renew_extends(store).await;
    renew_lost_lease_conflicts(store).await;
    snapshots_insert_if_absent(store).await;
    commit_stores_snapshots(store).await;
    inventory_upsert(store).await;
    cursors_round_trip(store).await;
    records_insert_if_absent(store).await;
    records_compare_and_swap(store).await;
    records_concurrent_writers(store).await;
    records_refuse_bad_keys(store).await;
    audit_sealed_in_order(store).await;
    audit_query_filters(store).await;
    list_runs_filters(store).await;
    audit_chain_verifies(store).await;
    erase_person_keeps_the_proof(store).await;
    erase_person_redacts_records_it_does_not_own(store).await;
    erase_person_refuses_inside_the_window(store).await;
    erase_snapshots_after_the_window(store).await;
}

// ---------------------------------------------------------------------------------------------
// Runs and commits
// ---------------------------------------------------------------------------------------------

/// A commit writes the run's fields and the tasks it lists; another task released (rescheduled)
/// after the run was loaded keeps its new `due_at`.
pub async fn commit_writes_only_changed_tasks(store: &dyn Store) {
    const RULE: &str = "commit_writes_only_changed_tasks";
    let run = sample_run(&[Some(at(0)), Some(at(0))]);
    create(RULE, store, &run).await;
    let loaded = load(RULE, store, run.id).await;
    let (t0, t1) = (run.tasks[0].id, run.tasks[1].id);
    let lease = claim_one(RULE, store, &run, t1, "worker-a", at(0), secs(600)).await;
    ok(RULE, "release", store.release(&lease, Some(at(900))).await);
    let mut changed = loaded.clone();
    start_task(&mut changed, 0, at(1));
    ok(
        RULE,
        "commit of task 0",
        store
            .commit(Commit::new(
                changed.clone(),
                vec![t0],
                vec![transition(&changed, t0)],
            ))
            .await,
    );
    let after = load(RULE, store, run.id).await;
    check_eq(
        RULE,
        "task 0 after the commit",
        &changed.tasks[0],
        &after.tasks[0],
    );
    check_eq(
        RULE,
        "the released task's due_at",
        &Some(at(900)),
        &after.task(t1).and_then(|t| t.due_at),
    );
    retire(RULE, store, run.id).await;
}

/// `create_run` then `load_run` gives back the same run at version 1, with sealed events;
/// loading an unknown run gives `None`.
pub async fn create_load_round_trip(store: &dyn Store) {
    const RULE: &str = "create_load_round_trip";
    let run = sample_run(&[Some(at(0)), None]);
    let events = vec![planned(&run), note(run.id, "round_trip")];
    let sealed = ok(
        RULE,
        "create_run",
        store.create_run(&run, events.clone()).await,
    );
    check_sealed(RULE, "create_run", &events, &sealed);

    let loaded = ok(RULE, "load_run", store.load_run(run.id).await)
        .unwrap_or_else(|| fail(RULE, "the created run does not load"));
    let mut expected = run.clone();
    expected.version = 1;
    check_eq(RULE, "the loaded run (version 1)", &expected, &loaded);

    let stored = ok(RULE, "audit", store.audit(AuditQuery::run(run.id)).await);
    check_eq(RULE, "the run's stored audit events", &sealed, &stored);

    let missing = ok(
        RULE,
        "load_run(unknown)",
        store.load_run(RunId::new_v4()).await,
    );
    check(
        RULE,
        missing.is_none(),
        "load_run of an unknown id returned a run",
    );
    retire(RULE, store, run.id).await;
}

/// Creating a run whose id exists is a `Conflict` and changes neither the run nor the audit
/// trail.
pub async fn create_twice_conflicts(store: &dyn Store) {
    const RULE: &str = "create_twice_conflicts";
    let run = sample_run(&[Some(at(0))]);
    ok(
        RULE,
        "create_run",
        store.create_run(&run, vec![planned(&run)]).await,
    );
    let before = ok(RULE, "audit", store.audit(AuditQuery::run(run.id)).await);

    let mut again = run.clone();
    again.reason = "created twice".into();
    expect_conflict(
        RULE,
        "a second create_run with the same id",
        store
            .create_run(&again, vec![note(run.id, "second_create")])
            .await,
        false,
    );

    let loaded = load(RULE, store, run.id).await;
    check_eq(
        RULE,
        "the run after the refused create",
        &run.reason,
        &loaded.reason,
    );
    check_eq(
        RULE,
        "the version after the refused create",
        &1,
        &loaded.version,
    );
    let after = ok(RULE, "audit", store.audit(AuditQuery::run(run.id)).await);
    check_eq(RULE, "the audit after the refused create", &before, &after);
    retire(RULE, store, run.id).await;
}

/// A person has at most one open run: creating a second one while the first is open is a
/// `Conflict` that changes nothing, even when both creates race; once the open run is terminal,
/// a new one is accepted.
pub async fn one_open_run_per_person(store: &dyn Store) {
    const RULE: &str = "one_open_run_per_person";
    let person = unique_person();
    let first = sample_run_for(&person, &[Some(at(0))]);
    create(RULE, store, &first).await;
    let second = sample_run_for(&person, &[Some(at(0))]);
    expect_conflict(
        RULE,
        "a second open run for the person",
        store.create_run(&second, vec![planned(&second)]).await,
        false,
    );
    check(
        RULE,
        ok(RULE, "load_run", store.load_run(second.id).await).is_none(),
        "the refused run was stored",
    );
    check_eq(
        RULE,
        "the refused run's audit",
        &0,
        &ok(RULE, "audit", store.audit(AuditQuery::run(second.id)).await).len(),
    );
    // Once the open run is over, the person may get a new one; two racing creates: one wins.
    let mut closed = load(RULE, store, first.id).await;
    closed.state = RunState::Completed;
    closed.finished_at = Some(at(10));
    ok(
        RULE,
        "commit",
        store.commit(Commit::new(closed, vec![], vec![])).await,
    );
    let (a, b) = (
        sample_run_for(&person, &[Some(at(0))]),
        sample_run_for(&person, &[Some(at(0))]),
    );
    let (ra, rb) = futures::future::join(
        store.create_run(&a, vec![planned(&a)]),
        store.create_run(&b, vec![planned(&b)]),
    )
    .await;
    check_eq(
        RULE,
        "racing creates that succeed",
        &1,
        &[ra.is_ok(), rb.is_ok()].iter().filter(|x| **x).count(),
    );
    for (r, run) in [(ra, &a), (rb, &b)] {
        match r {
            Ok(_) => retire(RULE, store, run.id).await,
            Err(e) => check_eq(RULE, "the loser's error", &ErrorKind::Conflict, &e.kind()),
        }
    }
}

/// A commit at the stored version succeeds, returns version + 1, and stores the new state and
/// its sealed events together.
pub async fn commit_bumps_version(store: &dyn Store) {
    const RULE: &str = "commit_bumps_version";
    let run = sample_run(&[Some(at(0)), Some(at(10))]);
    create(RULE, store, &run).await;

    let mut next = load(RULE, store, run.id).await;
    let task = next.tasks[0].id;
    start_task(&mut next, 0, at(5));
    let events = vec![transition(&next, task)];
    let (version, sealed) = ok(
        RULE,
        "commit",
        store
            .commit(Commit::new(next.clone(), vec![task], events.clone()))
            .await,
    );
    check_eq(RULE, "the version commit returned", &2, &version);
    check_sealed(RULE, "commit", &events, &sealed);

    let loaded = load(RULE, store, run.id).await;
    let mut expected = next.clone();
    expected.version = 2;
    check_eq(RULE, "the run loaded after commit", &expected, &loaded);
    let stored = ok(RULE, "audit", store.audit(AuditQuery::run(run.id)).await);
    check(
        RULE,
        stored.ends_with(&sealed),
        "the committed events are not the run's last stored events",
    );

    // And again, from the new version.
    let mut third = loaded;
    third.reason = "second commit".into();
    let (version, _) = ok(
        RULE,
        "second commit",
        store
            .commit(Commit::new(third, vec![], vec![note(run.id, "second")]))
            .await,
    );
    check_eq(RULE, "the version of the second commit", &3, &version);
    check_eq(
        RULE,
        "the version loaded after the second commit",
        &3,
        &load(RULE, store, run.id).await.version,
    );
    retire(RULE, store, run.id).await;
}

/// A commit made at a version that is no longer (or not yet) the stored one is a retryable
/// `Conflict` and changes nothing: not the run, not the audit trail.
pub async fn stale_commit_conflicts(store: &dyn Store) {
    const RULE: &str = "stale_commit_conflicts";
    let run = sample_run(&[Some(at(0)), Some(at(0))]);
    create(RULE, store, &run).await;
    let v1 = load(RULE, store, run.id).await;

    let mut winner = v1.clone();
    winner.reason = "winner".into();
    ok(
        RULE,
        "first commit",
        store
            .commit(Commit::new(winner, vec![], vec![note(run.id, "winner")]))
            .await,
    );
    let state_before = load(RULE, store, run.id).await;
    let audit_before = ok(RULE, "audit", store.audit(AuditQuery::run(run.id)).await);

    let mut stale = v1.clone();
    stale.reason = "stale".into();
    start_task(&mut stale, 1, at(1));
    let task = stale.tasks[1].id;
    expect_conflict(
        RULE,
        "a commit at a stale version",
        store
            .commit(Commit::new(
                stale.clone(),
                vec![task],
                vec![note(run.id, "stale")],
            ))
            .await,
        true,
    );
    let mut ahead = stale;
    ahead.version = state_before.version + 5;
    expect_conflict(
        RULE,
        "a commit at a version ahead of the stored one",
        store
            .commit(Commit::new(ahead, vec![task], vec![note(run.id, "ahead")]))
            .await,
        true,
    );

    check_eq(
        RULE,
        "the run after refused commits",
        &state_before,
        &load(RULE, store, run.id).await,
    );
    check_eq(
        RULE,
        "the run's audit events after refused commits",
        &audit_before,
        &ok(RULE, "audit", store.audit(AuditQuery::run(run.id)).await),
    );
    retire(RULE, store, run.id).await;
}

/// A commit under a lease that expired and was claimed again by another worker is a retryable
/// `Conflict` and changes nothing; the new holder's commit succeeds.
pub async fn commit_under_lost_lease_conflicts(store: &dyn Store) {
    const RULE: &str = "commit_under_lost_lease_conflicts";
    let run = sample_run(&[Some(at(0))]);
    create(RULE, store, &run).await;
    let task = run.tasks[0].id;

    let first = claim_one(RULE, store, &run, task, "worker-a", at(0), secs(60)).await;
    let second = claim_one(RULE, store, &run, task, "worker-b", at(61), secs(60)).await;
    check(
        RULE,
        first.token != second.token,
        "a re-claimed task kept its lease token",
    );

    let loaded = load(RULE, store, run.id).await;
    let audit_before = ok(RULE, "audit", store.audit(AuditQuery::run(run.id)).await);
    let mut lost = loaded.clone();
    start_task(&mut lost, 0, at(62));
    let refused = store
        .commit(
            Commit::new(lost.clone(), vec![task], vec![transition(&lost, task)])
                .under_lease(first, false),
        )
        .await;
    // Workers drop their result on lease=lost.
    expect_lease_conflict(
        RULE,
        "a commit under a lease re-claimed by another worker",
        refused,
        LeaseConflict::Lost,
        task,
    );
    unchanged(RULE, store, &loaded, &audit_before).await;

    let (version, _) = ok(
        RULE,
        "commit under the current lease",
        store
            .commit(
                Commit::new(lost.clone(), vec![task], vec![transition(&lost, task)])
                    .under_lease(second, true),
            )
            .await,
    );
    check_eq(RULE, "the version after the holder's commit", &2, &version);
    retire(RULE, store, run.id).await;
}

/// A commit under a lease lost to another worker is refused even when it leaves that lease's
/// task unchanged (the task is not in `changed_tasks`): the lease is checked for itself, not
/// only by the write of its task's row. Refused (retryable `Conflict`, `lease=lost` naming the
/// task, nothing changed) when the commit changes nothing else, when it changes the run's
/// state, and when it changes a sibling task under a lease still held. The new holder's commit
/// that leaves the task unchanged stands and releases that lease.
pub async fn commit_under_lost_lease_of_unchanged_task_conflicts(store: &dyn Store) {
    const RULE: &str = "commit_under_lost_lease_of_unchanged_task_conflicts";
    let run = sample_run(&[Some(at(0)), Some(at(0))]);
    create(RULE, store, &run).await;
    let (t0, t1) = (run.tasks[0].id, run.tasks[1].id);
    let leases = ours(
        &claim_all(RULE, store, "worker-a", at(0), secs(60)).await,
        &run,
    );
    let lease = |task: TaskId| lease_of(RULE, &leases, task);
    let (held, first) = (lease(t0), lease(t1));
    // t1's lease is lost: released, then claimed by another worker.
    ok(RULE, "release", store.release(&first, Some(at(0))).await);
    let second = claim_one(RULE, store, &run, t1, "worker-b", at(1), secs(60)).await;
    let loaded = load(RULE, store, run.id).await;
    let audit_before = ok(RULE, "audit", store.audit(AuditQuery::run(run.id)).await);
    let mut waiting = loaded.clone();
    waiting.state = RunState::Waiting;
    let mut sibling = loaded.clone();
    start_task(&mut sibling, 0, at(2));
    let refusals = [
        (
            "a commit under the lost lease of a task it leaves unchanged",
            Commit::new(loaded.clone(), vec![], vec![note(run.id, RULE)])
                .under_lease(first.clone(), false),
        ),
        (
            "a commit changing the run's state under the lost lease of a task it leaves \
             unchanged",
            Commit::new(waiting.clone(), vec![], vec![note(run.id, RULE)])
                .under_lease(first.clone(), true),
        ),
        (
            "a commit changing a task under its held lease and under the lost lease of a \
             task it leaves unchanged",
            Commit::new(sibling.clone(), vec![t0], vec![transition(&sibling, t0)])
                .under_lease(held.clone(), false)
                .under_lease(first.clone(), false),
        ),
    ];
    for (what, commit) in refusals {
        let refused = store.commit(commit).await;
        expect_lease_conflict(RULE, what, refused, LeaseConflict::Lost, t1);
        unchanged(RULE, store, &loaded, &audit_before).await;
    }

    let (version, sealed) = ok(
        RULE,
        "commit under the held leases, leaving t1 unchanged and releasing its lease",
        store
            .commit(
                Commit::new(
                    sibling.clone(),
                    vec![t0],
                    vec![transition(&sibling, t0), note(run.id, RULE)],
                )
                .under_lease(held, false)
                .under_lease(second, true),
            )
            .await,
    );
    check_next_version(RULE, &loaded, version, &sealed);
    check_claimable(
        RULE,
        store,
        &run,
        at(3),
        "tasks claimable after the commit (the released one only)",
        &[t1],
    )
    .await;
    retire(RULE, store, run.id).await;
}

/// A commit under several leases (sibling tasks' changes committed together) stands only if
/// every one is held: one lost lease refuses the whole commit, naming its task, and changes
/// nothing. When all are held, each is released or kept as asked.
pub async fn commit_under_several_leases(store: &dyn Store) {
    const RULE: &str = "commit_under_several_leases";
    let run = sample_run(&[Some(at(0)), Some(at(0)), Some(at(0))]);
    create(RULE, store, &run).await;
    let leases = ours(
        &claim_all(RULE, store, "worker-a", at(0), secs(60)).await,
        &run,
    );
    check_eq(RULE, "tasks claimed", &3, &leases.len());
    let lease = |task: TaskId| lease_of(RULE, &leases, task);
    let (t0, t1, t2) = (run.tasks[0].id, run.tasks[1].id, run.tasks[2].id);
    // The third task's lease is lost: released, then claimed by another worker.
    ok(
        RULE,
        "release",
        store.release(&lease(t2), Some(at(0))).await,
    );
    let taken = ours(
        &claim_all(RULE, store, "worker-b", at(1), secs(60)).await,
        &run,
    );
    check_eq(
        RULE,
        "tasks re-claimed by worker-b",
        &vec![t2],
        &taken.iter().map(|l| l.task).collect::<Vec<_>>(),
    );

    let loaded = load(RULE, store, run.id).await;
    let audit_before = ok(RULE, "audit", store.audit(AuditQuery::run(run.id)).await);
    let mut next = loaded.clone();
    for i in 0..3 {
        start_task(&mut next, i, at(2));
    }
    let events = vec![
        transition(&next, t0),
        transition(&next, t1),
        transition(&next, t2),
    ];
    let refused = store
        .commit(
            Commit::new(next.clone(), vec![t0, t1, t2], events)
                .under_lease(lease(t0), true)
                .under_lease(lease(t1), false)
                .under_lease(lease(t2), false),
        )
        .await;
    expect_lease_conflict(
        RULE,
        "a commit under one lost lease among three",
        refused,
        LeaseConflict::Lost,
        t2,
    );
    unchanged(RULE, store, &loaded, &audit_before).await;

    // The two held leases: the first released with the commit, the second kept.
    let mut next = loaded.clone();
    start_task(&mut next, 0, at(2));
    start_task(&mut next, 1, at(2));
    let (version, sealed) = ok(
        RULE,
        "commit under two held leases",
        store
            .commit(
                Commit::new(
                    next.clone(),
                    vec![t0, t1],
                    vec![transition(&next, t0), transition(&next, t1)],
                )
                .under_lease(lease(t0), true)
                .under_lease(lease(t1), false),
            )
            .await,
    );
    check_next_version(RULE, &loaded, version, &sealed);
    let stored = load(RULE, store, run.id).await;
    check_eq(
        RULE,
        "the first task as committed",
        &next.tasks[0],
        &stored.tasks[0],
    );
    check_eq(
        RULE,
        "the second task as committed",
        &next.tasks[1],
        &stored.tasks[1],
    );
    check_claimable(
        RULE,
        store,
        &run,
        at(3),
        "tasks claimable after the commit (the released one only)",
        &[t0],
    )
    .await;
    retire(RULE, store, run.id).await;
}

/// With [`Store::claims_in_commit`], a commit takes the leases of [`Commit::claims`] with the
/// change: the task is then held under the caller's token (not claimable, committed under it,
/// claimable once that lease expires or is released, its claim counted). A task that holds a
/// lease, or is of another run, refuses the whole commit with `lease=taken`, naming the task.
/// Stores without it are not checked.
pub async fn commit_claims_tasks(store: &dyn Store) {
    const RULE: &str = "commit_claims_tasks";
    if !store.claims_in_commit() {
        return;
    }
    let run = sample_run(&[Some(at(0)), None, Some(at(0))]);
    let other = sample_run(&[None]);
    create(RULE, store, &run).await;
    create(RULE, store, &other).await;
    let (t0, t1, t2) = (run.tasks[0].id, run.tasks[1].id, run.tasks[2].id);
    // t0 and t2 are claimed; this commit is made under t0's lease only.
    let lease = claim_one(RULE, store, &run, t0, "worker-a", at(0), secs(60)).await;
    let mine = |run: RunId, task: TaskId| Lease {
        run,
        task,
        worker: "worker-a".into(),
        token: uuid::Uuid::new_v4(),
        until: at(2) + secs_c(60),
        claims: 1,
        run_version: None,
    };
    // t0 done; t1 started with it under a lease taken by the same commit.
    let loaded = load(RULE, store, run.id).await;
    let mut next = loaded.clone();
    next.tasks[0].state = TaskState::Completed {
        outcome: crate::run::Outcome::Done,
        detail: None,
    };
    next.tasks[0].due_at = None;
    next.tasks[0].finished_at = Some(at(2));
    start_task(&mut next, 1, at(2));
    let events = || vec![transition(&next, t0), transition(&next, t1)];
    let audit_before = ok(RULE, "audit", store.audit(AuditQuery::run(run.id)).await);
    for (what, taken) in [
        (
            "a commit claiming a task that holds a lease",
            mine(run.id, t2),
        ),
        (
            "a commit claiming a task of another run",
            mine(run.id, other.tasks[0].id),
        ),
    ] {
        let refused = store
            .commit(
                Commit::new(next.clone(), vec![t0, t1], events())
                    .under_lease(lease.clone(), true)
                    .claiming(taken.clone())
                    .made_at(at(2)),
            )
            .await;
        expect_lease_conflict(RULE, what, refused, LeaseConflict::Taken, taken.task);
        unchanged(RULE, store, &loaded, &audit_before).await;
    }

    let taken = mine(run.id, t1);
    let (version, sealed) = ok(
        RULE,
        "a commit claiming the task it started",
        store
            .commit(
                Commit::new(next.clone(), vec![t0, t1], events())
                    .under_lease(lease.clone(), true)
                    .claiming(taken.clone())
                    .made_at(at(2)),
            )
            .await,
    );
    check_next_version(RULE, &loaded, version, &sealed);
    check_eq(
        RULE,
        "the started task as committed",
        &next.tasks[1],
        &load(RULE, store, run.id).await.tasks[1],
    );
    check(
        RULE,
        ours(
            &claim_all(RULE, store, "worker-b", at(3), secs(60)).await,
            &run,
        )
        .is_empty(),
        "a task claimed by a commit was claimed again while that lease was live",
    );
    // The lease taken is held: a commit under it releases it, and the claim was counted.
    released_by_commit(RULE, store, &run, &taken, at(4)).await;
    retire(RULE, store, run.id).await;
    retire(RULE, store, other.id).await;
}

/// `load_runs` returns each existing run of the ids given exactly as `load_run` does (tasks,
/// their `due_at`, the version after commits), in any order, leaving out ids of no run.
pub async fn load_runs_as_load_run(store: &dyn Store) {
    const RULE: &str = "load_runs_as_load_run";
    let runs = [
        sample_run(&[Some(at(0)), None, Some(at(5))]),
        sample_run(&[]),
        sample_run(&[None]),
    ];
    for run in &runs {
        create(RULE, store, run).await;
    }
    // The first one committed once: its version and a task's due time moved.
    let mut next = load(RULE, store, runs[0].id).await;
    next.tasks[1].due_at = Some(at(9));
    let changed = vec![next.tasks[1].id];
    ok(
        RULE,
        "commit",
        store.commit(Commit::new(next, changed, vec![])).await,
    );
    let missing = RunId::new_v4();
    let ids = [runs[2].id, missing, runs[0].id, runs[1].id];
    let mut got = ok(RULE, "load_runs", store.load_runs(&ids).await);
    got.sort_by_key(|r| r.id);
    let mut expected = Vec::new();
    for run in &runs {
        expected.push(load(RULE, store, run.id).await);
    }
    expected.sort_by_key(|r| r.id);
    check_eq(RULE, "the runs loaded together", &expected, &got);
    check_eq(
        RULE,
        "no runs for no ids",
        &0,
        &ok(RULE, "load_runs", store.load_runs(&[]).await).len(),
    );
    for run in &runs {
        retire(RULE, store, run.id).await;
    }
}

/// A commit under a held lease keeps it (the task is not claimable) unless it releases it,
/// after which the task is claimable again at once, with a new token.
pub async fn commit_release_frees_lease(store: &dyn Store) {
    const RULE: &str = "commit_release_frees_lease";
    let run = sample_run(&[Some(at(0))]);
    create(RULE, store, &run).await;
    let task = run.tasks[0].id;
    let lease = claim_one(RULE, store, &run, task, "worker-a", at(0), secs(60)).await;

    let mut next = load(RULE, store, run.id).await;
    start_task(&mut next, 0, at(1));
    ok(
        RULE,
        "commit under the lease, keeping it",
        store
            .commit(
                Commit::new(next.clone(), vec![task], vec![transition(&next, task)])
                    .under_lease(lease.clone(), false),
            )
            .await,
    );
    let mine = ours(
        &claim_all(RULE, store, "worker-b", at(2), secs(60)).await,
        &run,
    );
    check(
        RULE,
        mine.is_empty(),
        "a task was claimed while its lease was kept by a commit",
    );

    released_by_commit(RULE, store, &run, &lease, at(3)).await;
    retire(RULE, store, run.id).await;
}

/// Releases `lease` (its task claimed once) with a commit under it, then checks that its task
/// is claimable at `now` with a new token and claim count 2.
async fn released_by_commit(
    rule: &str,
    store: &dyn Store,
    run: &Run,
    lease: &Lease,
    now: DateTime<Utc>,
) {
    let mut next = load(rule, store, run.id).await;
    next.reason = "released".into();
    ok(
        rule,
        "commit under the lease, releasing it",
        store
            .commit(Commit::new(next, vec![], vec![]).under_lease(lease.clone(), true))
            .await,
    );
    let again = claim_one(rule, store, run, lease.task, "worker-b", now, secs(60)).await;
    check(
        rule,
        again.token != lease.token,
        "a task released by commit was claimed again with the old token",
    );
    check_eq(rule, "the claim count after release", &2, &again.claims);
}

// ---------------------------------------------------------------------------------------------
// Claims and leases
// ---------------------------------------------------------------------------------------------

/// `claim` hands out exactly the tasks with `due_at <= now` (the boundary included), never one
/// with no `due_at` or a later one, with a lease that names the run, the worker, a fresh token,
/// `until = now + lease_for` and claim count 1.
pub async fn claim_only_due(store: &dyn Store) {
    const RULE: &str = "claim_only_due";
    let now = at(100);
    let run = sample_run(&[Some(at(40)), Some(now), Some(at(101)), None]);
    create(RULE, store, &run).await;

    let leases = claim_all(RULE, store, "worker-a", now, secs(60)).await;
    let mine = ours(&leases, &run);
    let claimed: BTreeSet<TaskId> = mine.iter().map(|l| l.task).collect();
    let due: BTreeSet<TaskId> = [run.tasks[0].id, run.tasks[1].id].into();
    check_eq(
        RULE,
        "the tasks claimed (only the due ones)",
        &due,
        &claimed,
    );
    for lease in &mine {
        check_eq(
            RULE,
            "a lease's worker",
            &"worker-a",
            &lease.worker.as_str(),
        );
        check_eq(RULE, "a lease's expiry", &(now + secs_c(60)), &lease.until);
        check_eq(RULE, "a first claim's count", &1, &lease.claims);
    }
    check(
        RULE,
        mine[0].token != mine[1].token,
        "two leases share a token",
    );
    retire(RULE, store, run.id).await;
}

/// A task held for a confirmation round-trips with its run's state, is never claimed while
/// held, and the commit that releases it stores the release with its audit event; then it is
/// claimed as any due task.
pub async fn held_tasks_wait_for_their_release(store: &dyn Store) {
    const RULE: &str = "held_tasks_wait_for_their_release";
    let now = at(100);
    let mut run = sample_run(&[None, None]);
    run.policy = "policy-fingerprint".into();
    run.tasks[0].state = TaskState::Completed {
        outcome: Outcome::Done,
        detail: None,
    };
    run.tasks[0].finished_at = Some(at(0));
    run.tasks[1].critical = true;
    run.tasks[1].state = TaskState::Held;
    run.state = RunState::AwaitingConfirmation;
    create(RULE, store, &run).await;
    let loaded = load(RULE, store, run.id).await;
    let mut expected = run.clone();
    expected.version = 1;
    check_eq(RULE, "the loaded run and its held task", &expected, &loaded);
    let leases = claim_all(RULE, store, "worker-a", now, secs(60)).await;
    check(
        RULE,
        ours(&leases, &run).is_empty(),
        "a held task was claimed",
    );

    let mut released = loaded;
    let event = Event::Confirmed {
        by: "sec-lead@example.com".into(),
        role: Some("security".into()),
        digest: released.confirmation_digest(),
    };
    if let Err(e) = crate::machine::apply(&mut released, now, &event) {
        fail(RULE, &format!("the machine refused the release: {e}"));
    }
    let task = released.tasks[1].id;
    let audit = AuditEvent::new(
        now,
        "sec-lead@example.com",
        AuditKind::Transition {
            event,
            task_state: None,
            run_state: released.state,
        },
    )
    .with_run(run.id);
    let (version, sealed) = ok(
        RULE,
        "commit (release)",
        store
            .commit(Commit::new(
                released.clone(),
                vec![task],
                vec![audit.clone()],
            ))
            .await,
    );
    check_sealed(RULE, "commit (release)", &[audit], &sealed);
    let mut expected = released;
    expected.version = version;
    check_eq(
        RULE,
        "the run loaded after the release",
        &expected,
        &load(RULE, store, run.id).await,
    );
    let leases = claim_all(RULE, store, "worker-a", now, secs(60)).await;
    let claimed: Vec<TaskId> = ours(&leases, &run).iter().map(|l| l.task).collect();
    check_eq(
        RULE,
        "the tasks claimed once released",
        &vec![task],
        &claimed,
    );
    retire(RULE, store, run.id).await;
}

/// Tasks of terminal runs are never claimed, whether the run was created terminal or became
/// terminal by a commit, even when they still have a `due_at`.
pub async fn claim_skips_terminal_runs(store: &dyn Store) {
    const RULE: &str = "claim_skips_terminal_runs";
    let mut done = sample_run(&[Some(at(0))]);
    done.state = RunState::Completed;
    done.finished_at = Some(at(0));
    create(RULE, store, &done).await;

    let open = sample_run(&[Some(at(0)), Some(at(0))]);
    create(RULE, store, &open).await;
    let mut cancelled = load(RULE, store, open.id).await;
    cancelled.state = RunState::Cancelled;
    cancelled.cancelled = true;
    cancelled.finished_at = Some(at(1));
    ok(
        RULE,
        "commit to Cancelled",
        store
            .commit(Commit::new(
                cancelled,
                vec![],
                vec![note(open.id, "cancelled")],
            ))
            .await,
    );

    let leases = claim_all(RULE, store, "worker-a", at(10), secs(60)).await;
    check(
        RULE,
        ours(&leases, &done).is_empty(),
        "a task of a run created Completed was claimed",
    );
    check(
        RULE,
        ours(&leases, &open).is_empty(),
        "a task of a run committed as Cancelled was claimed",
    );
}

/// A task whose lease is live is not handed to anyone, the holder included.
pub async fn claim_skips_live_leases(store: &dyn Store) {
    const RULE: &str = "claim_skips_live_leases";
    let run = sample_run(&[Some(at(0)), Some(at(0))]);
    create(RULE, store, &run).await;
    let first = claim_one(
        RULE,
        store,
        &run,
        run.tasks[0].id,
        "worker-a",
        at(0),
        secs(60),
    )
    .await;

    for (worker, now) in [
        ("worker-b", at(1)),
        ("worker-a", at(30)),
        ("worker-c", at(59)),
    ] {
        let mine = ours(&claim_all(RULE, store, worker, now, secs(60)).await, &run);
        check(
            RULE,
            mine.iter().all(|l| l.task != first.task),
            &format!("a task with a live lease was claimed again by {worker} at {now}"),
        );
    }
    retire(RULE, store, run.id).await;
}

/// Once a lease has expired, the task is claimable again, with a new token and the claim count
/// incremented.
pub async fn expired_lease_reclaimable(store: &dyn Store) {
    const RULE: &str = "expired_lease_reclaimable";
    let run = sample_run(&[Some(at(0))]);
    create(RULE, store, &run).await;
    let task = run.tasks[0].id;
    let mut tokens = HashSet::new();
    for (n, (worker, now)) in [("worker-a", 0), ("worker-b", 61), ("worker-c", 200)]
        .into_iter()
        .enumerate()
    {
        let lease = claim_one(RULE, store, &run, task, worker, at(now), secs(60)).await;
        check_eq(RULE, "the claim count", &(n as u32 + 1), &lease.claims);
        check_eq(RULE, "the lease's worker", &worker, &lease.worker.as_str());
        check(
            RULE,
            tokens.insert(lease.token),
            "a re-claimed task got a token it had before",
        );
    }
    retire(RULE, store, run.id).await;
}

/// Many claims at once never hand out the same task twice, and together with a final sweep
/// they hand out every due task exactly once.
pub async fn concurrent_claims_disjoint(store: &dyn Store) {
    const RULE: &str = "concurrent_claims_disjoint";
    let now = at(0);
    let run = sample_run(&[Some(now); 24]);
    create(RULE, store, &run).await;

    let workers: Vec<String> = (0..16).map(|i| format!("worker-{i}")).collect();
    let results = futures::future::join_all(
        workers
            .iter()
            .map(|w| store.claim(ClaimRequest::new(w.clone(), now, secs(60), 2))),
    )
    .await;
    let mut seen = BTreeMap::new();
    for (worker, result) in workers.iter().zip(results) {
        let leases = ok(RULE, "a concurrent claim", result);
        check(
            RULE,
            leases.len() <= 2,
            "a concurrent claim returned more than its limit",
        );
        for lease in leases {
            check_eq(RULE, "a lease's worker", worker, &lease.worker);
            if let Some(other) = seen.insert(lease.task, lease.worker.clone()) {
                fail(
                    RULE,
                    &format!(
                        "task {} was handed to {other} and {} at once",
                        lease.task, lease.worker
                    ),
                );
            }
        }
    }
    for lease in claim_all(RULE, store, "sweeper", now, secs(60)).await {
        if let Some(other) = seen.insert(lease.task, lease.worker.clone()) {
            fail(
                RULE,
                &format!(
                    "task {} was handed to {other} and then to the sweeper",
                    lease.task
                ),
            );
        }
    }
    let all: BTreeSet<TaskId> = run.tasks.iter().map(|t| t.id).collect();
    let claimed: BTreeSet<TaskId> = seen.keys().copied().filter(|t| all.contains(t)).collect();
    check_eq(RULE, "the due tasks claimed in all", &all, &claimed);
    retire(RULE, store, run.id).await;
}

/// A claim returns at most `limit` tasks, and hands out earlier `due_at` first.
pub async fn claim_limit_and_order(store: &dyn Store) {
    const RULE: &str = "claim_limit_and_order";
    let now = at(1000);
    // Created out of order so that insertion order cannot pass for due order.
    let run = sample_run(&[
        Some(at(930)),
        Some(at(910)),
        Some(at(950)),
        Some(at(900)),
        Some(at(940)),
    ]);
    create(RULE, store, &run).await;

    let leases = ok(
        RULE,
        "claim",
        store
            .claim(ClaimRequest::new("worker-a", now, secs(60), 2))
            .await,
    );
    check_eq(
        RULE,
        "the number of tasks claimed with limit 2",
        &2,
        &leases.len(),
    );
    let rest = claim_all(RULE, store, "worker-b", now, secs(60)).await;
    let mut all: Vec<TaskId> = ours(&leases, &run).iter().map(|l| l.task).collect();
    all.extend(ours(&rest, &run).iter().map(|l| l.task));
    check_eq(RULE, "the number of our tasks claimed", &5, &all.len());

    // Order: re-claim one at a time after the leases expire; ours must come out by due_at.
    let later = now + secs_c(61);
    let mut order = Vec::new();
    for _ in 0..MAX_SWEEP {
        let leases = ok(
            RULE,
            "claim one",
            store
                .claim(ClaimRequest::new("worker-c", later, secs(60), 1))
                .await,
        );
        check(
            RULE,
            leases.len() <= 1,
            "a claim with limit 1 returned more",
        );
        let Some(lease) = leases.into_iter().next() else {
            break;
        };
        if lease.run == run.id {
            order.push(lease.task);
        }
        if order.len() == run.tasks.len() {
            break;
        }
    }
    let expected: Vec<TaskId> = [3, 1, 0, 4, 2].iter().map(|i| run.tasks[*i].id).collect();
    check_eq(
        RULE,
        "the order tasks were claimed in (by due_at)",
        &expected,
        &order,
    );
    retire(RULE, store, run.id).await;
}

/// `release` frees the task and sets its `due_at` (without a state change: the run's version
/// stays); the task is claimable again from that time, and releasing a lease no longer held is
/// a no-op.
pub async fn release_sets_due_and_frees(store: &dyn Store) {
    const RULE: &str = "release_sets_due_and_frees";
    let run = sample_run(&[Some(at(0)), Some(at(0))]);
    create(RULE, store, &run).await;
    let task = run.tasks[0].id;
    let lease = claim_one(RULE, store, &run, task, "worker-a", at(0), secs(600)).await;

    ok(RULE, "release", store.release(&lease, Some(at(300))).await);
    let loaded = load(RULE, store, run.id).await;
    check_eq(
        RULE,
        "the released task's due_at",
        &Some(at(300)),
        &loaded.task(task).and_then(|t| t.due_at),
    );
    check_eq(RULE, "the version after release", &1, &loaded.version);

    let early = ours(
        &claim_all(RULE, store, "worker-b", at(299), secs(600)).await,
        &run,
    );
    check(
        RULE,
        early.iter().all(|l| l.task != task),
        "a released task was claimed before its new due_at",
    );
    let again = claim_one(RULE, store, &run, task, "worker-b", at(300), secs(600)).await;
    check(
        RULE,
        again.token != lease.token,
        "a released task was claimed again with its old token",
    );
    check_eq(RULE, "the claim count after release", &2, &again.claims);

    // The old holder's release is a no-op: the new lease stays and due_at is kept.
    ok(
        RULE,
        "release of a lease no longer held",
        store.release(&lease, None).await,
    );
    check_eq(
        RULE,
        "due_at after a release of a lease no longer held",
        &Some(at(300)),
        &load(RULE, store, run.id)
            .await
            .task(task)
            .and_then(|t| t.due_at),
    );
    let mine = ours(
        &claim_all(RULE, store, "worker-c", at(301), secs(600)).await,
        &run,
    );
    check(
        RULE,
        mine.iter().all(|l| l.task != task),
        "releasing a lease no longer held freed the current holder's lease",
    );

    // Releasing with no due_at parks the task.
    ok(
        RULE,
        "release (no due_at)",
        store.release(&again, None).await,
    );
    let mine = ours(
        &claim_all(RULE, store, "worker-d", at(10_000), secs(600)).await,
        &run,
    );
    check(
        RULE,
        mine.iter().all(|l| l.task != task),
        "a task released with no due_at was claimed",
    );
    retire(RULE, store, run.id).await;
}

/// `renew` extends a held lease (same token, worker and count, new expiry); the task is not
/// claimable until the new expiry.
pub async fn renew_extends(store: &dyn Store) {
    const RULE: &str = "renew_extends";
    let run = sample_run(&[Some(at(0))]);
    create(RULE, store, &run).await;
    let task = run.tasks[0].id;
    let lease = claim_one(RULE, store, &run, task, "worker-a", at(0), secs(60)).await;

    let renewed = ok(RULE, "renew", store.renew(&lease, at(240), secs(60)).await);
    let mut expected = lease.clone();
    expected.until = at(300);
    check_eq(RULE, "the renewed lease", &expected, &renewed);

    let mine = ours(
        &claim_all(RULE, store, "worker-b", at(120), secs(60)).await,
        &run,
    );
    check(
        RULE,
        mine.is_empty(),
        "a renewed lease was taken before its new expiry",
    );
    let mut next = load(RULE, store, run.id).await;
    start_task(&mut next, 0, at(121));
    ok(
        RULE,
        "commit under the renewed lease",
        store
            .commit(Commit::new(next, vec![task], vec![]).under_lease(renewed, false))
            .await,
    );
    let again = claim_one(RULE, store, &run, task, "worker-b", at(301), secs(60)).await;
    check_eq(RULE, "the claim count after expiry", &2, &again.claims);
    retire(RULE, store, run.id).await;
}

/// Renewing a lease that expired and was claimed by another worker is a `Conflict` and does
/// not touch the new holder's lease.
pub async fn renew_lost_lease_conflicts(store: &dyn Store) {
    const RULE: &str = "renew_lost_lease_conflicts";
    let run = sample_run(&[Some(at(0))]);
    create(RULE, store, &run).await;
    let task = run.tasks[0].id;
    let lost = claim_one(RULE, store, &run, task, "worker-a", at(0), secs(60)).await;
    let held = claim_one(RULE, store, &run, task, "worker-b", at(61), secs(60)).await;

    expect_conflict(
        RULE,
        "renew of a lease re-claimed by another worker",
        store.renew(&lost, at(940), secs(60)).await,
        false,
    );
    // The new holder's lease still expires at its own time.
    let mine = ours(
        &claim_all(RULE, store, "worker-c", at(122), secs(60)).await,
        &run,
    );
    check(
        RULE,
        mine.iter().any(|l| l.task == task),
        "a refused renew extended the new holder's lease",
    );
    check_eq(RULE, "the new holder's claim count", &2, &held.claims);
    retire(RULE, store, run.id).await;
}

// ---------------------------------------------------------------------------------------------
// Snapshots, inventory, cursors
// ---------------------------------------------------------------------------------------------

/// `put_snapshot` is insert-if-absent: the first put returns `true`, a second returns `false`
/// and the first snapshot is kept.
pub async fn snapshots_insert_if_absent(store: &dyn Store) {
    const RULE: &str = "snapshots_insert_if_absent";
    let run = sample_run(&[None]);
    create(RULE, store, &run).await;
    let task = run.tasks[0].id;

    check_eq(
        RULE,
        "snapshot before any put",
        &None,
        &ok(RULE, "snapshot", store.snapshot(task).await),
    );
    let first = snapshot(serde_json::json!({"groups": ["eng", "ops"], "status": "ACTIVE"}));
    let second = snapshot(serde_json::json!({"groups": [], "status": "SUSPENDED"}));
    check_eq(
        RULE,
        "the first put_snapshot",
        &true,
        &ok(RULE, "put_snapshot", store.put_snapshot(task, &first).await),
    );
    check_eq(
        RULE,
        "a second put_snapshot",
        &false,
        &ok(
            RULE,
            "put_snapshot",
            store.put_snapshot(task, &second).await,
        ),
    );
    check_eq(
        RULE,
        "the stored snapshot (the first)",
        &Some(first),
        &ok(RULE, "snapshot", store.snapshot(task).await),
    );
}

/// A commit stores its snapshots with the change: a refused commit stores none, and a task that
/// has a snapshot keeps its first one.
pub async fn commit_stores_snapshots(store: &dyn Store) {
    const RULE: &str = "commit_stores_snapshots";
    let run = sample_run(&[None, None]);
    create(RULE, store, &run).await;
    let (a, b) = (run.tasks[0].id, run.tasks[1].id);
    let first = snapshot(serde_json::json!({"groups": ["eng"], "status": "ACTIVE"}));
    let second = snapshot(serde_json::json!({"groups": [], "status": "SUSPENDED"}));
    let v1 = load(RULE, store, run.id).await;

    let mut stale = v1.clone();
    stale.version += 3;
    expect_conflict(
        RULE,
        "a stale commit with a snapshot",
        store
            .commit(
                Commit::new(stale, vec![], vec![note(run.id, "stale")])
                    .with_snapshot(a, first.clone()),
            )
            .await,
        true,
    );
    check_eq(
        RULE,
        "the snapshot of a refused commit",
        &None,
        &ok(RULE, "snapshot", store.snapshot(a).await),
    );

    ok(
        RULE,
        "a commit with a snapshot",
        store
            .commit(
                Commit::new(v1, vec![], vec![note(run.id, "taken")])
                    .with_snapshot(a, first.clone()),
            )
            .await,
    );
    check_eq(
        RULE,
        "the snapshot stored by the commit",
        &Some(first.clone()),
        &ok(RULE, "snapshot", store.snapshot(a).await),
    );
    check_eq(
        RULE,
        "put_snapshot after the commit stored one",
        &false,
        &ok(RULE, "put_snapshot", store.put_snapshot(a, &second).await),
    );

    let v2 = load(RULE, store, run.id).await;
    ok(
        RULE,
        "a commit with a second snapshot for the task and a first for another",
        store
            .commit(
                Commit::new(v2, vec![], vec![note(run.id, "again")])
                    .with_snapshot(a, second.clone())
                    .with_snapshot(b, second.clone()),
            )
            .await,
    );
    check_eq(
        RULE,
        "the task's first snapshot, kept",
        &Some(first),
        &ok(RULE, "snapshot", store.snapshot(a).await),
    );
    check_eq(
        RULE,
        "the other task's snapshot",
        &Some(second),
        &ok(RULE, "snapshot", store.snapshot(b).await),
    );
    retire(RULE, store, run.id).await;
}

/// The inventory is keyed by (person, app, external id): a new account gets
/// `first_seen = last_seen`; seeing it again keeps `first_seen`, moves `last_seen` and updates
/// the reference; other people's accounts are separate.
pub async fn inventory_upsert(store: &dyn Store) {
    const RULE: &str = "inventory_upsert";
    let person = unique_person();
    let other = unique_person();
    let okta = AccountRef::new("okta", "00u1", "ada@example.com", AccountStatus::Active);
    let google = AccountRef::new("google", "1077", "ada@example.com", AccountStatus::Active);
    // Same external id in another app is another account.
    let azure = AccountRef::new("azure", "00u1", "ada@example.com", AccountStatus::Unknown);

    check(
        RULE,
        ok(RULE, "accounts", store.accounts(&person).await).is_empty(),
        "a new person already has accounts",
    );
    ok(
        RULE,
        "upsert_accounts",
        store
            .upsert_accounts(&person, &[okta.clone(), google.clone()], at(0))
            .await,
    );
    ok(
        RULE,
        "upsert_accounts (other person)",
        store
            .upsert_accounts(&other, std::slice::from_ref(&okta), at(5))
            .await,
    );
    let mut okta2 = okta.clone();
    okta2.status = AccountStatus::Suspended;
    okta2.login = "ada.l@example.com".into();
    okta2.attributes.insert("mfa".into(), "true".into());
    ok(
        RULE,
        "upsert_accounts again",
        store
            .upsert_accounts(&person, &[okta2.clone(), azure.clone()], at(60))
            .await,
    );

    let got: BTreeMap<(AppId, String), _> = ok(RULE, "accounts", store.accounts(&person).await)
        .into_iter()
        .map(|a| {
            check_eq(RULE, "an account's person", &person, &a.person);
            (
                (a.account.app.clone(), a.account.external_id.clone()),
                (a.account, a.first_seen, a.last_seen),
            )
        })
        .collect();
    let expected: BTreeMap<(AppId, String), _> = [
        (okta2, at(0), at(60)),
        (google, at(0), at(0)),
        (azure, at(60), at(60)),
    ]
    .into_iter()
    .map(|(r, first, last)| ((r.app.clone(), r.external_id.clone()), (r, first, last)))
    .collect();
    check_eq(
        RULE,
        "the inventory (account, first_seen, last_seen)",
        &expected,
        &got,
    );

    let theirs = ok(
        RULE,
        "accounts (other person)",
        store.accounts(&other).await,
    );
    check_eq(RULE, "the other person's account count", &1, &theirs.len());
    check_eq(
        RULE,
        "the other person's account",
        &(okta, at(5), at(5)),
        &(
            theirs[0].account.clone(),
            theirs[0].first_seen,
            theirs[0].last_seen,
        ),
    );
}

/// A cursor reads back as written, a later write replaces it, and an unknown source has none.
pub async fn cursors_round_trip(store: &dyn Store) {
    const RULE: &str = "cursors_round_trip";
    let source = format!("conformance-{}", uuid::Uuid::new_v4());
    check_eq(
        RULE,
        "the cursor of an unknown source",
        &None,
        &ok(RULE, "cursor", store.cursor(&source).await),
    );
    let first = Cursor("https://graph.example/delta?token=a1".into());
    ok(RULE, "put_cursor", store.put_cursor(&source, &first).await);
    check_eq(
        RULE,
        "the cursor read back",
        &Some(first),
        &ok(RULE, "cursor", store.cursor(&source).await),
    );
    let second = Cursor("after=00u2 \"quoted\" ünïcode".into());
    ok(RULE, "put_cursor", store.put_cursor(&source, &second).await);
    check_eq(
        RULE,
        "the cursor after overwrite",
        &Some(second),
        &ok(RULE, "cursor", store.cursor(&source).await),
    );
}

// ---------------------------------------------------------------------------------------------
// Delegates' records
// ---------------------------------------------------------------------------------------------

/// A fresh namespace for one rule's records (so the rules may run again on one database).
fn record_namespace(rule: &str) -> String {
    format!("conformance-{rule}-{}", uuid::Uuid::new_v4().simple())
}

/// A value exercising JSON's kinds (nesting, unicode, quotes, big integers, null, a NUL escape).
fn record_value(n: u64) -> serde_json::Value {
    serde_json::json!({
        "n": n,
        "big": u64::MAX,
        "float": 1.5,
        "text": "ünïcode \"quoted\" \\ back\u{0}slash",
        "list": [1, "two", null, {"b": [true, false], "a": {}}],
        "none": null,
    })
}

/// An unknown record reads as none; the first insert stores the value at version 1 and says
/// so; a second insert under the key changes nothing and returns the first record; the record
/// reads back exactly; the same key in another namespace is another record.
pub async fn records_insert_if_absent(store: &dyn Store) {
    const RULE: &str = "records_insert_if_absent";
    let ns = record_namespace(RULE);
    let other_ns = record_namespace(RULE);
    check_eq(
        RULE,
        "an unknown record",
        &None,
        &ok(RULE, "get_record", store.get_record(&ns, "task:1").await),
    );
    let first = Record {
        namespace: ns.clone(),
        key: "task:1".into(),
        value: record_value(1),
        version: 1,
    };
    check_eq(
        RULE,
        "the first insert's answer",
        &(first.clone(), true),
        &ok(
            RULE,
            "insert_record",
            store.insert_record(&ns, "task:1", &record_value(1)).await,
        ),
    );
    check_eq(
        RULE,
        "a second insert under the key (the first record, not stored again)",
        &(first.clone(), false),
        &ok(
            RULE,
            "insert_record",
            store.insert_record(&ns, "task:1", &record_value(2)).await,
        ),
    );
    check_eq(
        RULE,
        "the record read back",
        &Some(first.clone()),
        &ok(RULE, "get_record", store.get_record(&ns, "task:1").await),
    );
    check_eq(
        RULE,
        "the key in another namespace before an insert there",
        &None,
        &ok(
            RULE,
            "get_record",
            store.get_record(&other_ns, "task:1").await,
        ),
    );
    let (other, stored) = ok(
        RULE,
        "insert_record",
        store
            .insert_record(&other_ns, "task:1", &record_value(3))
            .await,
    );
    check(
        RULE,
        stored && other.value == record_value(3) && other.version == 1,
        "an insert under the same key in another namespace was not stored as a new record",
    );
    check_eq(
        RULE,
        "the first namespace's record after the other's insert",
        &Some(first),
        &ok(RULE, "get_record", store.get_record(&ns, "task:1").await),
    );
}

/// A swap at the stored version replaces the value and bumps the version; a swap at an older
/// version, or of a record that does not exist, changes nothing and reports the record as
/// stored (none for a missing one, which the swap does not create).
pub async fn records_compare_and_swap(store: &dyn Store) {
    const RULE: &str = "records_compare_and_swap";
    let ns = record_namespace(RULE);
    ok(
        RULE,
        "insert_record",
        store.insert_record(&ns, "k", &record_value(1)).await,
    );
    let second = Record {
        namespace: ns.clone(),
        key: "k".into(),
        value: record_value(2),
        version: 2,
    };
    check_eq(
        RULE,
        "a swap at the stored version",
        &RecordSwap::Swapped(second.clone()),
        &ok(
            RULE,
            "swap_record",
            store.swap_record(&ns, "k", 1, &record_value(2)).await,
        ),
    );
    check_eq(
        RULE,
        "a swap at a version that moved",
        &RecordSwap::Conflict(Some(second.clone())),
        &ok(
            RULE,
            "swap_record",
            store.swap_record(&ns, "k", 1, &record_value(9)).await,
        ),
    );
    check_eq(
        RULE,
        "a swap at a version not reached yet",
        &RecordSwap::Conflict(Some(second.clone())),
        &ok(
            RULE,
            "swap_record",
            store.swap_record(&ns, "k", 3, &record_value(9)).await,
        ),
    );
    check_eq(
        RULE,
        "the record after the refused swaps",
        &Some(second),
        &ok(RULE, "get_record", store.get_record(&ns, "k").await),
    );
    check_eq(
        RULE,
        "a swap of a record that does not exist",
        &RecordSwap::Conflict(None),
        &ok(
            RULE,
            "swap_record",
            store.swap_record(&ns, "missing", 1, &record_value(1)).await,
        ),
    );
    check_eq(
        RULE,
        "the missing record after the swap",
        &None,
        &ok(RULE, "get_record", store.get_record(&ns, "missing").await),
    );
    let third = ok(
        RULE,
        "swap_record",
        store
            .swap_record(&ns, "k", 2, &serde_json::json!("plain"))
            .await,
    );
    check_eq(
        RULE,
        "a second swap (any JSON value)",
        &RecordSwap::Swapped(Record {
            namespace: ns.clone(),
            key: "k".into(),
            value: serde_json::json!("plain"),
            version: 3,
        }),
        &third,
    );
}

/// Of concurrent inserts under one key exactly one stores its value and all get that record;
/// of concurrent swaps at one version exactly one succeeds and its value is stored.
pub async fn records_concurrent_writers(store: &dyn Store) {
    const RULE: &str = "records_concurrent_writers";
    let ns = record_namespace(RULE);
    let values: Vec<serde_json::Value> = (0..16).map(record_value).collect();
    let inserted =
        futures::future::join_all(values.iter().map(|v| store.insert_record(&ns, "k", v))).await;
    let inserted: Vec<(Record, bool)> = inserted
        .into_iter()
        .map(|r| ok(RULE, "a concurrent insert_record", r))
        .collect();
    let winners: Vec<&Record> = inserted
        .iter()
        .filter(|(_, s)| *s)
        .map(|(r, _)| r)
        .collect();
    check_eq(RULE, "concurrent inserts that stored", &1, &winners.len());
    let winner = winners[0].clone();
    for (record, _) in &inserted {
        check_eq(RULE, "a concurrent insert's record", &winner, record);
    }
    let swapped =
        futures::future::join_all(values.iter().map(|v| store.swap_record(&ns, "k", 1, v))).await;
    let mut won = Vec::new();
    for (result, value) in swapped.into_iter().zip(&values) {
        match ok(RULE, "a concurrent swap_record", result) {
            RecordSwap::Swapped(r) => {
                check_eq(RULE, "the swapped record's value", value, &r.value);
                check_eq(RULE, "the swapped record's version", &2, &r.version);
                won.push(r);
            }
            RecordSwap::Conflict(current) => check(
                RULE,
                current.is_some_and(|c| c.version >= 2),
                "a refused concurrent swap did not report the record at its new version",
            ),
        }
    }
    check_eq(
        RULE,
        "concurrent swaps at one version that won",
        &1,
        &won.len(),
    );
    check_eq(
        RULE,
        "the record after the concurrent swaps",
        &Some(won[0].clone()),
        &ok(RULE, "get_record", store.get_record(&ns, "k").await),
    );
}

/// An empty namespace or key, one longer than [`MAX_RECORD_KEY`] bytes, or one with a NUL
/// character is refused as `InvalidInput` by every record method, and so is a value longer
/// than [`MAX_RECORD_VALUE`] bytes of JSON by the writes; nothing is stored or changed. Keys
/// and values at the limits are stored.
pub async fn records_refuse_bad_keys(store: &dyn Store) {
    const RULE: &str = "records_refuse_bad_keys";
    let ns = record_namespace(RULE);
    let value = record_value(1);
    let long = "k".repeat(MAX_RECORD_KEY + 1);
    let long_ns = format!("{ns}{}", "n".repeat(MAX_RECORD_KEY));
    for (namespace, key) in [
        ("", "k"),
        (ns.as_str(), ""),
        ("nul\u{0}ns", "k"),
        (ns.as_str(), "nul\u{0}key"),
        (ns.as_str(), long.as_str()),
        (long_ns.as_str(), "k"),
    ] {
        let what = format!("({} bytes, {} bytes)", namespace.len(), key.len());
        for (method, kind) in [
            (
                "get_record",
                store.get_record(namespace, key).await.map(drop),
            ),
            (
                "insert_record",
                store.insert_record(namespace, key, &value).await.map(drop),
            ),
            (
                "swap_record",
                store.swap_record(namespace, key, 1, &value).await.map(drop),
            ),
        ]
        .map(|(m, r)| (m, r.map_err(|e| e.kind())))
        {
            check_eq(
                RULE,
                &format!("{method} of {what}"),
                &Err(ErrorKind::InvalidInput),
                &kind,
            );
        }
    }
    check_eq(
        RULE,
        "a good key of the namespace after the refusals",
        &None,
        &ok(RULE, "get_record", store.get_record(&ns, "k").await),
    );

    // Values: the JSON text of a string of n characters is n + 2 bytes.
    let fits = serde_json::Value::String("v".repeat(MAX_RECORD_VALUE - 2));
    let too_big = serde_json::Value::String("v".repeat(MAX_RECORD_VALUE - 1));
    check_eq(
        RULE,
        "an insert of a value over the limit",
        &Err(ErrorKind::InvalidInput),
        &store
            .insert_record(&ns, "big", &too_big)
            .await
            .map(drop)
            .map_err(|e| e.kind()),
    );
    check_eq(
        RULE,
        "the record after a refused insert",
        &None,
        &ok(RULE, "get_record", store.get_record(&ns, "big").await),
    );
    let key_at_limit = "k".repeat(MAX_RECORD_KEY);
    let (stored, _) = ok(
        RULE,
        "insert_record at the limits",
        store.insert_record(&ns, &key_at_limit, &fits).await,
    );
    check(
        RULE,
        stored.value == fits && stored.key == key_at_limit,
        "a key and a value at the limits did not round-trip",
    );
    check_eq(
        RULE,
        "a swap to a value over the limit",
        &Err(ErrorKind::InvalidInput),
        &store
            .swap_record(&ns, &key_at_limit, 1, &too_big)
            .await
            .map(drop)
            .map_err(|e| e.kind()),
    );
    check_eq(
        RULE,
        "the record after a refused swap",
        &Some(stored),
        &ok(
            RULE,
            "get_record",
            store.get_record(&ns, &key_at_limit).await,
        ),
    );
}

// ---------------------------------------------------------------------------------------------
// Audit
// ---------------------------------------------------------------------------------------------

/// Every write returns its events sealed (seq, prev_hash, hash) and linked one after another;
/// events without a run can be appended; a run's events read back in increasing `seq` order
/// exactly as returned.
pub async fn audit_sealed_in_order(store: &dyn Store) {
    const RULE: &str = "audit_sealed_in_order";
    let run = sample_run(&[Some(at(0))]);
    let events = vec![planned(&run), note(run.id, "a")];
    let mut all = ok(
        RULE,
        "create_run",
        store.create_run(&run, events.clone()).await,
    );
    check_sealed(RULE, "create_run", &events, &all);

    let loose = vec![
        AuditEvent::new(
            at(1),
            "conformance",
            AuditKind::Verified {
                checked: 3,
                revoked: 2,
                remaining: vec!["okta: status ACTIVE".into()],
                apps: Vec::new(),
            },
        ),
        note_without_run("loose"),
    ];
    let sealed = ok(
        RULE,
        "append_audit",
        store.append_audit(loose.clone()).await,
    );
    check_sealed(RULE, "append_audit", &loose, &sealed);
    check(
        RULE,
        sealed[0].seq > all[1].seq,
        "appended events did not get later sequence numbers",
    );
    let read = ok(
        RULE,
        "audit(after_seq)",
        store
            .audit(AuditQuery {
                after_seq: sealed[0].seq - 1,
                limit: 2,
                ..AuditQuery::default()
            })
            .await,
    );
    check(
        RULE,
        read.first() == Some(&sealed[0]),
        "an appended event without a run does not read back",
    );

    let events: Vec<AuditEvent> = (0..3).map(|i| note(run.id, &format!("n{i}"))).collect();
    let next = load(RULE, store, run.id).await;
    let (_, sealed) = ok(
        RULE,
        "commit",
        store
            .commit(Commit::new(next, vec![], events.clone()))
            .await,
    );
    check_sealed(RULE, "commit", &events, &sealed);
    all.extend(sealed);

    let stored = ok(
        RULE,
        "audit(run)",
        store.audit(AuditQuery::run(run.id)).await,
    );
    check_eq(RULE, "the run's events, in seq order", &all, &stored);
    check(
        RULE,
        stored.windows(2).all(|w| w[0].seq < w[1].seq),
        "audit events are not in increasing seq order",
    );
    retire(RULE, store, run.id).await;
}

/// `AuditQuery` filters: `run` keeps that run's events, `after_seq` only later ones, `limit`
/// the first that many (0: all), and they combine.
pub async fn audit_query_filters(store: &dyn Store) {
    const RULE: &str = "audit_query_filters";
    let a = sample_run(&[None]);
    let b = sample_run(&[None]);
    let mut a_events = Vec::new();
    let mut b_events = Vec::new();
    a_events.extend(ok(
        RULE,
        "create_run",
        store.create_run(&a, vec![planned(&a)]).await,
    ));
    b_events.extend(ok(
        RULE,
        "create_run",
        store.create_run(&b, vec![planned(&b)]).await,
    ));
    for i in 0..3 {
        a_events.extend(ok(
            RULE,
            "append_audit",
            store.append_audit(vec![note(a.id, &format!("a{i}"))]).await,
        ));
        b_events.extend(ok(
            RULE,
            "append_audit",
            store.append_audit(vec![note(b.id, &format!("b{i}"))]).await,
        ));
    }

    let query = |after_seq: u64, limit: usize| AuditQuery {
        run: Some(a.id),
        after_seq,
        limit,
    };
    check_eq(
        RULE,
        "audit(run a)",
        &a_events,
        &ok(RULE, "audit", store.audit(query(0, 0)).await),
    );
    check_eq(
        RULE,
        "audit(run b)",
        &b_events,
        &ok(RULE, "audit", store.audit(AuditQuery::run(b.id)).await),
    );
    check_eq(
        RULE,
        "audit(run a, after_seq = its second event)",
        &a_events[2..].to_vec(),
        &ok(RULE, "audit", store.audit(query(a_events[1].seq, 0)).await),
    );
    check_eq(
        RULE,
        "audit(run a, after_seq between its events)",
        &a_events[2..].to_vec(),
        &ok(
            RULE,
            "audit",
            store.audit(query(a_events[2].seq - 1, 0)).await,
        ),
    );
    check_eq(
        RULE,
        "audit(run a, limit 2)",
        &a_events[..2].to_vec(),
        &ok(RULE, "audit", store.audit(query(0, 2)).await),
    );
    check_eq(
        RULE,
        "audit(run a, after_seq = its first event, limit 2)",
        &a_events[1..3].to_vec(),
        &ok(RULE, "audit", store.audit(query(a_events[0].seq, 2)).await),
    );
    check_eq(
        RULE,
        "audit(run a, after its last event)",
        &Vec::<AuditEvent>::new(),
        &ok(RULE, "audit", store.audit(query(a_events[3].seq, 0)).await),
    );
    // Without a run filter: everything after a seq, in order, other runs included.
    let everything = ok(
        RULE,
        "audit(after_seq)",
        store
            .audit(AuditQuery {
                after_seq: a_events[0].seq - 1,
                ..AuditQuery::default()
            })
            .await,
    );
    let mine: Vec<&AuditEvent> = everything
        .iter()
        .filter(|e| e.run == Some(a.id) || e.run == Some(b.id))
        .collect();
    let mut expected: Vec<&AuditEvent> = a_events.iter().chain(&b_events).collect();
    expected.sort_by_key(|e| e.seq);
    check_eq(RULE, "audit(after_seq) across runs", &expected, &mine);
    let limited = ok(
        RULE,
        "audit(after_seq, limit 3)",
        store
            .audit(AuditQuery {
                after_seq: a_events[0].seq - 1,
                limit: 3,
                ..AuditQuery::default()
            })
            .await,
    );
    check_eq(
        RULE,
        "audit(after_seq, limit 3)",
        &everything[..3].to_vec(),
        &limited,
    );
}

/// The whole audit trail, read with [`AuditQuery::all`], starts at seq 1 and verifies with
/// [`audit::verify_chain`]: no gaps (even after refused commits), no broken links.
pub async fn audit_chain_verifies(store: &dyn Store) {
    const RULE: &str = "audit_chain_verifies";
    ok(
        RULE,
        "append_audit",
        store
            .append_audit(vec![note_without_run("chain_check")])
            .await,
    );
    let all = ok(RULE, "audit(all)", store.audit(AuditQuery::all()).await);
    match audit::verify_chain(&all) {
        Ok(n) => check_eq(
            RULE,
            "the verified chain's length",
            &all.last().map_or(0, |e| e.seq),
            &n,
        ),
        Err(problem) => fail(RULE, &format!("the audit chain does not verify: {problem}")),
    }
}

// ---------------------------------------------------------------------------------------------
// Erasure
// ---------------------------------------------------------------------------------------------

/// A finished run (at `at(100)`) of a fresh person with addresses of their own, stored with a
/// planned event, a note naming them, a snapshot, an account and a delegate's record.
async fn erasable(rule: &str, store: &dyn Store) -> Run {
    let person = unique_person();
    let mut run = sample_run_for(&person, &[None]);
    run.person.email = format!("{person}@example.com");
    run.person.aliases = vec![format!("{person}.alias@example.com")];
    run.person.display_name = format!("Zelda {person}");
    run.state = RunState::Completed;
    run.finished_at = Some(at(100));
    if let Some(account) = &mut run.tasks[0].account {
        account.login.clone_from(&run.person.email);
    }
    create(rule, store, &run).await;
    let note = AuditEvent::new(
        at(101),
        "source:hr",
        AuditKind::Note {
            name: "person_left".into(),
            data: serde_json::json!({"person": person.as_str(), "email": run.person.email}),
        },
    );
    ok(rule, "append_audit", store.append_audit(vec![note]).await);
    let task = run.tasks[0].id;
    ok(
        rule,
        "put_snapshot",
        store
            .put_snapshot(
                task,
                &snapshot(serde_json::json!({"groups": ["zelda-secret-group"]})),
            )
            .await,
    );
    let account = run.tasks[0].account.clone().expect("an account");
    ok(
        rule,
        "upsert_accounts",
        store.upsert_accounts(&person, &[account], at(1)).await,
    );
    ok(
        rule,
        "insert_record",
        store
            .insert_record(
                "conformance-erase",
                &format!("task:{task}"),
                &serde_json::json!({"to": run.person.email}),
            )
            .await,
    );
    run
}

/// Checks that `run`'s person, snapshot and accounts are as [`erasable`] stored them.
async fn check_untouched(rule: &str, store: &dyn Store, run: &Run, whose: &str) {
    check_eq(
        rule,
        &format!("{whose} run's person"),
        &run.person,
        &load(rule, store, run.id).await.person,
    );
    check(
        rule,
        ok(rule, "snapshot", store.snapshot(run.tasks[0].id).await).is_some()
            && !ok(rule, "accounts", store.accounts(&run.person.id).await).is_empty(),
        &format!("{whose} snapshot or accounts are gone"),
    );
}

/// The events of `run` and those naming `person`, as stored.
async fn events_of(rule: &str, store: &dyn Store, run: &Run) -> Vec<AuditEvent> {
    let all = ok(rule, "audit(all)", store.audit(AuditQuery::all()).await);
    all.into_iter()
        .filter(|e| e.run == Some(run.id) || e.subject() == Some(run.person.id.as_str()))
        .collect()
}

/// `erase_person` deletes the person's personal values, snapshots, accounts and records and
/// pseudonymises their runs; the events stay, in commitment form, with their hashes, so the
/// chain verifies; another person's data is untouched; erasing again finds nothing.
pub async fn erase_person_keeps_the_proof(store: &dyn Store) {
    const RULE: &str = "erase_person_keeps_the_proof";
    let run = erasable(RULE, store).await;
    let other = erasable(RULE, store).await;
    let person = run.person.id.clone();
    let before = events_of(RULE, store, &run).await;
    check_eq(RULE, "events of the person", &2, &before.len());
    check(
        RULE,
        before.iter().all(|e| e.salt.is_some()),
        "an event naming the person was stored without a salt",
    );
    let report = ok(
        RULE,
        "erase_person",
        store.erase_person(&person, at(200)).await,
    );
    check_eq(RULE, "runs pseudonymised", &1, &report.runs);
    check_eq(RULE, "events erased", &2, &report.events);
    check_eq(RULE, "snapshots erased", &1, &report.snapshots);
    check_eq(RULE, "accounts erased", &1, &report.accounts);
    check_eq(RULE, "records erased", &1, &report.records);
    let needles = [
        person.to_string(),
        run.person.email.clone(),
        run.person.display_name.clone(),
    ];
    check_events_erased(RULE, store, &before, &needles).await;
    check_run_erased(RULE, store, &run, report.pseudonym.as_deref(), &needles).await;
    check_other_untouched(RULE, store, &other).await;
    let again = ok(
        RULE,
        "erase_person again",
        store.erase_person(&person, at(200)).await,
    );
    check(
        RULE,
        again.already_done(),
        &format!("erasing again erased {again:?}"),
    );
}

/// After an erasure: the events `before` are still stored (by seq), with their hashes, in
/// commitment form without a salt or any of `needles`, and the chain verifies.
async fn check_events_erased(
    rule: &str,
    store: &dyn Store,
    before: &[AuditEvent],
    needles: &[String],
) {
    let seqs: Vec<u64> = before.iter().map(|e| e.seq).collect();
    let all = ok(rule, "audit(all)", store.audit(AuditQuery::all()).await);
    let after: Vec<&AuditEvent> = all.iter().filter(|e| seqs.contains(&e.seq)).collect();
    check_eq(rule, "events kept", &before.len(), &after.len());
    for (b, a) in before.iter().zip(after) {
        check_eq(rule, "an erased event's hash", &b.hash, &a.hash);
        check_eq(
            rule,
            "an erased event's recomputed hash",
            &b.hash,
            &a.compute_hash(),
        );
        check(rule, a.salt.is_none(), "an erased event kept its salt");
        let text = serde_json::to_string(a).expect("events encode");
        for n in needles {
            check(
                rule,
                !text.contains(n.as_str()),
                &format!("event {} still names the person", a.seq),
            );
        }
    }
    if let Err(problem) = audit::verify_chain(&all) {
        fail(
            rule,
            &format!("the chain does not verify after erasure: {problem}"),
        );
    }
}

/// After an erasure: `run` is stored under `pseudonym` without any of `needles`, and the
/// person's runs, accounts, snapshot and record are gone.
async fn check_run_erased(
    rule: &str,
    store: &dyn Store,
    run: &Run,
    pseudonym: Option<&str>,
    needles: &[String],
) {
    let person = run.person.id.clone();
    let loaded = load(rule, store, run.id).await;
    check_eq(
        rule,
        "the run's person",
        &pseudonym,
        &Some(loaded.person.id.as_str()),
    );
    let text = serde_json::to_string(&loaded).expect("runs encode");
    for n in needles {
        check(
            rule,
            !text.contains(n.as_str()),
            "the run still names the person",
        );
    }
    let runs = ok(
        rule,
        "list_runs",
        store.list_runs(RunQuery::person(person.clone())).await,
    );
    check_eq(rule, "the person's runs", &0, &runs.len());
    check(
        rule,
        ok(rule, "accounts", store.accounts(&person).await).is_empty(),
        "accounts left",
    );
    check(
        rule,
        ok(rule, "snapshot", store.snapshot(run.tasks[0].id).await).is_none(),
        "the snapshot is left",
    );
    check(
        rule,
        erase_record(rule, store, run).await.is_none(),
        "the record is left",
    );
}

/// Another person's events, run, snapshot, accounts and record survive an erasure.
async fn check_other_untouched(rule: &str, store: &dyn Store, other: &Run) {
    let theirs = events_of(rule, store, other).await;
    check(
        rule,
        theirs.len() == 2 && theirs.iter().all(|e| e.salt.is_some()),
        "another person's events lost their values",
    );
    check_untouched(rule, store, other, "another person's").await;
    check(
        rule,
        erase_record(rule, store, other).await.is_some(),
        "another person's record is gone",
    );
}

/// The record [`erasable`] stored for `run`'s task.
async fn erase_record(rule: &str, store: &dyn Store, run: &Run) -> Option<Record> {
    let key = format!("task:{}", run.tasks[0].id);
    ok(
        rule,
        "get_record",
        store.get_record("conformance-erase", &key).await,
    )
}

/// Records that name the person only in their value and belong to something that outlives
/// them (an outbox slot in a queue, a receiver's stream listing many subjects) are redacted in
/// place, not deleted: the key stays, the version moves on, every string naming the person
/// reads `erased`, and what names someone else or the record's structure is unchanged. A
/// deleted slot would stall the queue behind it; a deleted stream would stop a receiver's
/// signals for everyone.
pub async fn erase_person_redacts_records_it_does_not_own(store: &dyn Store) {
    const RULE: &str = "erase_person_redacts_records_it_does_not_own";
    let run = erasable(RULE, store).await;
    let other = erasable(RULE, store).await;
    let ns = record_namespace(RULE);
    let email = run.person.email.clone();
    let slot = serde_json::json!({
        "state": "delivered",
        "attempts": 1,
        "notification": {"id": "run_finished:1", "person": {"email": email, "name": run.person.display_name}},
    });
    let stream = serde_json::json!({
        "aud": "https://receiver.example.net",
        "subjects": [
            {"format": "email", "email": email},
            {"format": "email", "email": other.person.email},
        ],
    });
    for (key, value) in [("slot:1", &slot), ("stream:s1", &stream)] {
        ok(
            RULE,
            "insert_record",
            store.insert_record(&ns, key, value).await,
        );
    }
    let report = ok(
        RULE,
        "erase_person",
        store.erase_person(&run.person.id, at(200)).await,
    );
    check_eq(RULE, "records redacted", &2, &report.records_redacted);
    let read = |key: &'static str| {
        let ns = ns.clone();
        async move {
            ok(RULE, "get_record", store.get_record(&ns, key).await).unwrap_or_else(|| {
                fail(RULE, &format!("{key} was deleted: it is not the person's"))
            })
        }
    };
    let slot_after = read("slot:1").await;
    check_eq(RULE, "the slot's version", &2, &slot_after.version);
    check_eq(
        RULE,
        "the slot, redacted",
        &serde_json::json!({
            "state": "delivered",
            "attempts": 1,
            "notification": {"id": "run_finished:1", "person": {"email": "erased", "name": "erased"}},
        }),
        &slot_after.value,
    );
    let stream_after = read("stream:s1").await;
    check_eq(
        RULE,
        "the stream, redacted",
        &serde_json::json!({
            "aud": "https://receiver.example.net",
            "subjects": [
                {"format": "email", "email": "erased"},
                {"format": "email", "email": other.person.email},
            ],
        }),
        &stream_after.value,
    );
    let again = ok(
        RULE,
        "erase_person again",
        store.erase_person(&run.person.id, at(200)).await,
    );
    check(
        RULE,
        again.already_done(),
        &format!("erasing again did {again:?}"),
    );
}

/// `erase_person` refuses, changing nothing, while a run of the person is open or finished
/// inside the rollback window (at or after `finished_before`).
pub async fn erase_person_refuses_inside_the_window(store: &dyn Store) {
    const RULE: &str = "erase_person_refuses_inside_the_window";
    let run = erasable(RULE, store).await;
    let person = run.person.id.clone();
    let before = events_of(RULE, store, &run).await;
    expect_conflict(
        RULE,
        "erasing inside the window",
        store.erase_person(&person, at(100)).await,
        false,
    );
    check_eq(
        RULE,
        "the events after the refusal",
        &before,
        &events_of(RULE, store, &run).await,
    );
    check_untouched(RULE, store, &run, "after a refused erasure, the").await;
    let open = sample_run(&[None]);
    create(RULE, store, &open).await;
    expect_conflict(
        RULE,
        "erasing a person with an open run",
        store.erase_person(&open.person.id, at(200)).await,
        false,
    );
    check_eq(
        RULE,
        "the open run",
        &open.person,
        &load(RULE, store, open.id).await.person,
    );
    retire(RULE, store, open.id).await;
}

/// `erase_snapshots` deletes the snapshots of runs finished before its cutoff, and keeps the
/// others.
pub async fn erase_snapshots_after_the_window(store: &dyn Store) {
    const RULE: &str = "erase_snapshots_after_the_window";
    let run = erasable(RULE, store).await;
    let open = sample_run(&[None]);
    create(RULE, store, &open).await;
    ok(
        RULE,
        "put_snapshot",
        store
            .put_snapshot(open.tasks[0].id, &snapshot(serde_json::json!({})))
            .await,
    );
    ok(
        RULE,
        "erase_snapshots inside the window",
        store.erase_snapshots(at(100)).await,
    );
    check(
        RULE,
        ok(RULE, "snapshot", store.snapshot(run.tasks[0].id).await).is_some(),
        "a snapshot inside the window was erased",
    );
    let erased = ok(
        RULE,
        "erase_snapshots",
        store.erase_snapshots(at(101)).await,
    );
    check(RULE, erased >= 1, "nothing was erased past the window");
    check(
        RULE,
        ok(RULE, "snapshot", store.snapshot(run.tasks[0].id).await).is_none(),
        "a snapshot past the window is left",
    );
    check(
        RULE,
        ok(RULE, "snapshot", store.snapshot(open.tasks[0].id).await).is_some(),
        "an open run's snapshot was erased",
    );
    retire(RULE, store, open.id).await;
}

// ---------------------------------------------------------------------------------------------
// Listing
// ---------------------------------------------------------------------------------------------

/// `list_runs` lists newest first, with the person, `open_only`, `since`, `until` and `limit`
/// filters, and summaries that match the runs.
pub async fn list_runs_filters(store: &dyn Store) {
    let person = unique_person();
    let runs = listing_runs(store, &person).await;
    let by_person = RunQuery {
        person: Some(person.clone()),
        ..RunQuery::default()
    };
    let ids = |idx: &[usize]| idx.iter().map(|i| runs[*i].id).collect::<Vec<RunId>>();
    listing_summaries_match(store, &person, &runs).await;
    listing_filters_apply(store, &by_person, ids).await;

    // A committed state change shows in the listing.
    let mut closed = load(LISTING, store, runs[1].id).await;
    closed.state = RunState::Cancelled;
    closed.cancelled = true;
    closed.finished_at = Some(at(400));
    ok(
        LISTING,
        "commit",
        store.commit(Commit::new(closed, vec![], vec![])).await,
    );
    check_eq(
        LISTING,
        "open_only after the open run was cancelled",
        &ids(&[]),
        &listed(
            store,
            RunQuery {
                open_only: true,
                ..by_person
            },
        )
        .await,
    );
}

/// The rule of the listing checks.
const LISTING: &str = "list_runs_filters";

/// Stores `person`'s runs at 0, 100 and 200 (completed, running, completed with failures: at
/// most one open run per person, `one_open_run_per_person`) and, at 150, another person's run
/// that never shows up in the person's listing.
async fn listing_runs(store: &dyn Store, person: &PersonId) -> Vec<Run> {
    let mut runs = Vec::new();
    for (i, state) in [
        RunState::Completed,
        RunState::Running,
        RunState::CompletedWithFailures,
    ]
    .into_iter()
    .enumerate()
    {
        let mut run = sample_run_for(person, &[None]);
        run.created_at = at(i as i64 * 100);
        run.state = state;
        if state.is_terminal() {
            run.finished_at = Some(at(i as i64 * 100 + 50));
        }
        create(LISTING, store, &run).await;
        runs.push(run);
    }
    let mut stranger = sample_run(&[None]);
    stranger.created_at = at(150);
    create(LISTING, store, &stranger).await;
    runs
}

/// The ids `query` lists, in order.
async fn listed(store: &dyn Store, query: RunQuery) -> Vec<RunId> {
    let summaries = ok(LISTING, "list_runs", store.list_runs(query).await);
    summaries.into_iter().map(|s| s.id).collect()
}

/// The person's listing holds their `runs` newest first, each summary matching its run.
async fn listing_summaries_match(store: &dyn Store, person: &PersonId, runs: &[Run]) {
    let by_person = RunQuery {
        person: Some(person.clone()),
        ..RunQuery::default()
    };
    let summaries = ok(LISTING, "list_runs", store.list_runs(by_person).await);
    check_eq(
        LISTING,
        "the person's runs, newest first",
        &runs.iter().rev().map(|r| r.id).collect::<Vec<RunId>>(),
        &summaries.iter().map(|s| s.id).collect(),
    );
    for (summary, run) in summaries.iter().zip(runs.iter().rev()) {
        check_eq(LISTING, "a summary's person", person, &summary.person);
        check_eq(LISTING, "a summary's state", &run.state, &summary.state);
        check_eq(
            LISTING,
            "a summary's created_at",
            &run.created_at,
            &summary.created_at,
        );
        check_eq(
            LISTING,
            "a summary's finished_at",
            &run.finished_at,
            &summary.finished_at,
        );
    }
}

/// `open_only`, `limit`, `since` (inclusive) and `until` (exclusive), alone and together, on
/// the runs of [`listing_runs`] (`ids` names them by index).
async fn listing_filters_apply(
    store: &dyn Store,
    by_person: &RunQuery,
    ids: impl Fn(&[usize]) -> Vec<RunId>,
) {
    let cases = [
        (
            "open_only",
            &[1][..],
            RunQuery {
                open_only: true,
                ..by_person.clone()
            },
        ),
        (
            "limit 2",
            &[2, 1],
            RunQuery {
                limit: 2,
                ..by_person.clone()
            },
        ),
        (
            "since (inclusive)",
            &[2, 1],
            RunQuery {
                since: Some(at(100)),
                ..by_person.clone()
            },
        ),
        (
            "until (exclusive)",
            &[1, 0],
            RunQuery {
                until: Some(at(200)),
                ..by_person.clone()
            },
        ),
        (
            "since, until and open_only together",
            &[1],
            RunQuery {
                since: Some(at(0)),
                until: Some(at(200)),
                open_only: true,
                ..by_person.clone()
            },
        ),
    ];
    for (what, expected, query) in cases {
        check_eq(LISTING, what, &ids(expected), &listed(store, query).await);
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// How many claim calls a sweep makes at most before it gives up.
const MAX_SWEEP: usize = 10_000;

#[track_caller]
fn fail(rule: &str, message: &str) -> ! {
    panic!("store conformance rule `{rule}` violated: {message}")
}

#[track_caller]
fn check(rule: &str, condition: bool, message: &str) {
    if !condition {
        fail(rule, message);
    }
}

#[track_caller]
fn check_eq<T: PartialEq + fmt::Debug + ?Sized>(rule: &str, what: &str, expected: &T, got: &T) {
    if expected != got {
        fail(
            rule,
            &format!("{what}: expected\n  {expected:?}\ngot\n  {got:?}"),
        );
    }
}

/// A commit's answer on `loaded` with two events: the next version, both events sealed.
#[track_caller]
fn check_next_version(rule: &str, loaded: &Run, version: u64, sealed: &[AuditEvent]) {
    check_eq(
        rule,
        "the version after the commit",
        &(loaded.version + 1),
        &version,
    );
    check_eq(rule, "events sealed", &2, &sealed.len());
}

#[track_caller]
fn ok<T>(rule: &str, what: &str, result: Result<T>) -> T {
    result.unwrap_or_else(|e| fail(rule, &format!("{what} failed: {e}")))
}

#[track_caller]
fn expect_conflict<T: fmt::Debug>(rule: &str, what: &str, result: Result<T>, retryable: bool) {
    match result {
        Err(e) if e.kind() == ErrorKind::Conflict => check(
            rule,
            !retryable || e.is_retryable(),
            &format!("{what}: the Conflict is not retryable: {e}"),
        ),
        Err(e) => fail(rule, &format!("{what}: expected a Conflict, got: {e}")),
        Ok(v) => fail(rule, &format!("{what}: expected a Conflict, got Ok({v:?})")),
    }
}

/// The suite's clock: whole seconds from 2000-01-01T00:00:00Z, far from any live engine's
/// due tasks.
fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(946_684_800 + secs, 0).expect("valid timestamp")
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn secs_c(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

fn unique_person() -> PersonId {
    PersonId::new(format!("conformance-{}", uuid::Uuid::new_v4()))
}

pub(crate) fn sample_run(due: &[Option<DateTime<Utc>>]) -> Run {
    sample_run_for(&unique_person(), due)
}

/// A valid running run with one pending task per entry of `due` (its `due_at`).
fn sample_run_for(person: &PersonId, due: &[Option<DateTime<Utc>>]) -> Run {
    let id = RunId::new_v4();
    let mut account = AccountRef::new("okta", "00u1ada", "ada@example.com", AccountStatus::Active);
    account
        .attributes
        .insert("on_premises_sync".into(), "false".into());
    let tasks = due
        .iter()
        .map(|due_at| {
            let task = TaskId::new_v4();
            Task {
                id: task,
                app: AppId::new("okta"),
                kind: TaskKind::Action {
                    action: Action {
                        name: ActionName::from_static("okta.suspend"),
                        params: serde_json::json!({"reason": "offboarded", "notify": false}),
                    },
                },
                account: Some(account.clone()),
                depends_on: Vec::new(),
                stage: "last_day".into(),
                not_before: at(0),
                critical: false,
                reversible: true,
                not_found_is_done: true,
                idempotency_key: format!("{id}:{task}"),
                state: TaskState::Pending,
                attempts: 0,
                due_at: *due_at,
                started_at: None,
                finished_at: None,
            }
        })
        .collect();
    Run {
        id,
        person: Person::new(person.clone(), "ada@example.com")
            .with_name("Ada Lovelace")
            .with_alias("ada.l@example.com")
            .with_manager(Manager {
                id: Some(PersonId::new("charles")),
                email: "charles@example.com".into(),
            }),
        initiator: Initiator::Admin {
            actor: "admin@example.com".into(),
        },
        reason: "resigned".into(),
        created_at: at(0),
        effective_at: at(0),
        dry_run: false,
        plan_digest: "sha256:conformance".into(),
        policy: String::new(),
        confirmed_by: None,
        tasks,
        state: RunState::Running,
        cancelled: false,
        rollback_requested: false,
        restore_lease: None,
        retry: RetryPolicy::default(),
        delegation_poll: Duration::from_secs(60),
        version: 0,
        finished_at: None,
    }
}

/// Marks task `index` as started at `now`, as the machine would.
fn start_task(run: &mut Run, index: usize, now: DateTime<Utc>) {
    let task = &mut run.tasks[index];
    task.attempts += 1;
    task.state = TaskState::Running {
        attempt: task.attempts,
        since: now,
    };
    task.started_at.get_or_insert(now);
    task.due_at = Some(now);
}

fn planned(run: &Run) -> AuditEvent {
    AuditEvent::new(
        run.created_at,
        "admin@example.com",
        AuditKind::RunPlanned {
            run: Box::new(run.clone()),
        },
    )
    .with_run(run.id)
}

fn transition(run: &Run, task: TaskId) -> AuditEvent {
    let t = run.task(task).expect("task of the run");
    AuditEvent::new(
        at(1),
        "worker:conformance",
        AuditKind::Transition {
            event: Event::TaskStarted { task },
            task_state: Some(t.state.name().into()),
            run_state: run.state,
        },
    )
    .with_run(run.id)
    .with_task(task, t.app.clone())
}

fn note(run: RunId, name: &str) -> AuditEvent {
    note_without_run(name).with_run(run)
}

fn note_without_run(name: &str) -> AuditEvent {
    AuditEvent::new(
        at(2),
        "conformance",
        AuditKind::Note {
            name: name.into(),
            data: serde_json::json!({"rule": name, "n": 1, "nested": {"b": [1, 2], "a": null}}),
        },
    )
}

fn snapshot(data: serde_json::Value) -> Snapshot {
    Snapshot {
        app: AppId::new("okta"),
        action: ActionName::from_static("okta.suspend"),
        external_id: "00u1ada".into(),
        data,
        taken_at: at(3),
    }
}

/// Checks that `sealed` are `input` sealed in order: same content, seq set and consecutive,
/// each linked to the one before, hashes correct.
#[track_caller]
fn check_sealed(rule: &str, what: &str, input: &[AuditEvent], sealed: &[AuditEvent]) {
    check_eq(
        rule,
        &format!("the number of events {what} returned"),
        &input.len(),
        &sealed.len(),
    );
    for (i, (event, sealed_event)) in input.iter().zip(sealed).enumerate() {
        let mut expected = event.clone();
        expected.seq = sealed_event.seq;
        expected.prev_hash = sealed_event.prev_hash.clone();
        expected.hash = sealed_event.hash.clone();
        // Sealing salts an event that holds personal data (and only such an event).
        expected.salt = sealed_event.salt;
        check(
            rule,
            sealed_event.salt.is_some() == event.clone().salted().salt.is_some(),
            &format!("{what} returned event {i} salted when it should not be, or not salted"),
        );
        check_eq(
            rule,
            &format!("event {i} {what} returned (content)"),
            &expected,
            sealed_event,
        );
        check(
            rule,
            sealed_event.seq > 0,
            &format!("{what} returned an event without a seq"),
        );
        check(
            rule,
            !sealed_event.prev_hash.is_empty() && sealed_event.hash == sealed_event.compute_hash(),
            &format!("{what} returned event {} not sealed", sealed_event.seq),
        );
        if i > 0 {
            let prev = &sealed[i - 1];
            check(
                rule,
                sealed_event.seq == prev.seq + 1 && sealed_event.prev_hash == prev.hash,
                &format!(
                    "{what} returned events {} and {} that do not follow each other",
                    prev.seq, sealed_event.seq
                ),
            );
        }
    }
}

async fn create(rule: &str, store: &dyn Store, run: &Run) {
    ok(
        rule,
        "create_run",
        store.create_run(run, vec![planned(run)]).await,
    );
}

async fn load(rule: &str, store: &dyn Store, id: RunId) -> Run {
    ok(rule, "load_run", store.load_run(id).await)
        .unwrap_or_else(|| fail(rule, &format!("run {id} does not load")))
}

/// Claims until nothing is due at `now` (every due task in the store, ours or not).
async fn claim_all(
    rule: &str,
    store: &dyn Store,
    worker: &str,
    now: DateTime<Utc>,
    lease_for: Duration,
) -> Vec<Lease> {
    let mut all = Vec::new();
    let mut seen = HashSet::new();
    for _ in 0..MAX_SWEEP {
        let leases = ok(
            rule,
            "claim",
            store
                .claim(ClaimRequest::new(worker, now, lease_for, 50))
                .await,
        );
        check(
            rule,
            leases.len() <= 50,
            "a claim returned more than its limit",
        );
        if leases.is_empty() {
            return all;
        }
        for lease in leases {
            check(
                rule,
                seen.insert(lease.task),
                &format!(
                    "task {} was handed out twice while its lease was live",
                    lease.task
                ),
            );
            all.push(lease);
        }
    }
    fail(rule, "claims kept returning tasks")
}

/// The leases of `run`'s tasks.
fn ours(leases: &[Lease], run: &Run) -> Vec<Lease> {
    leases.iter().filter(|l| l.run == run.id).cloned().collect()
}

/// Claims at `now` and returns the lease on `task`, which must be among the claimed.
async fn claim_one(
    rule: &str,
    store: &dyn Store,
    run: &Run,
    task: TaskId,
    worker: &str,
    now: DateTime<Utc>,
    lease_for: Duration,
) -> Lease {
    let leases = claim_all(rule, store, worker, now, lease_for).await;
    let lease = leases
        .into_iter()
        .find(|l| l.task == task)
        .unwrap_or_else(|| fail(rule, &format!("task {task} was not claimable at {now}")));
    check_eq(rule, "a lease's run", &run.id, &lease.run);
    check_eq(rule, "a lease's worker", &worker, &lease.worker.as_str());
    let until = now + chrono::Duration::from_std(lease_for).expect("short lease");
    check_eq(rule, "a lease's expiry", &until, &lease.until);
    let stored = load(rule, store, run.id).await;
    check_eq(
        rule,
        "a lease's run version (the run's as stored at the claim)",
        &Some(stored.version),
        &lease.run_version,
    );
    lease
}

/// The lease on `task` among `leases`, which must hold one.
#[track_caller]
fn lease_of(rule: &str, leases: &[Lease], task: TaskId) -> Lease {
    leases
        .iter()
        .find(|l| l.task == task)
        .cloned()
        .unwrap_or_else(|| fail(rule, &format!("task {task} was not claimed")))
}

/// Checks that `result` is a `Conflict` carrying `conflict` (context `lease`) and naming
/// `task`; retryable when the lease was lost (the worker drops its result and goes on).
#[track_caller]
fn expect_lease_conflict<T: fmt::Debug>(
    rule: &str,
    what: &str,
    result: Result<T>,
    conflict: LeaseConflict,
    task: TaskId,
) {
    if let Err(e) = &result {
        check(
            rule,
            LeaseConflict::of(e) == Some(conflict)
                && e.context()
                    .any(|(k, v)| k == "task" && v == task.to_string()),
            &format!(
                "{what}: the Conflict must carry {conflict:?} (context lease) and the task \
                 {task}: {e}"
            ),
        );
    }
    expect_conflict(rule, what, result, conflict == LeaseConflict::Lost);
}

/// Claims every due task at `now` (as `worker-c`) and checks that of `run`'s tasks exactly
/// `expected` were claimable.
async fn check_claimable(
    rule: &str,
    store: &dyn Store,
    run: &Run,
    now: DateTime<Utc>,
    what: &str,
    expected: &[TaskId],
) {
    let claimed = ours(
        &claim_all(rule, store, "worker-c", now, secs(60)).await,
        run,
    );
    check_eq(
        rule,
        what,
        expected,
        &claimed.iter().map(|l| l.task).collect::<Vec<_>>(),
    );
}

/// Checks that a refused commit left `run` and its audit trail as they were.
async fn unchanged(rule: &str, store: &dyn Store, run: &Run, audit: &[AuditEvent]) {
    check_eq(
        rule,
        "the run after the refused commit",
        run,
        &load(rule, store, run.id).await,
    );
    check_eq(
        rule,
        "the audit after the refused commit",
        &audit.to_vec(),
        &ok(rule, "audit", store.audit(AuditQuery::run(run.id)).await),
    );
}

/// Ends a run (cancelled, nothing due) so that it leaves nothing claimable behind.
async fn retire(rule: &str, store: &dyn Store, id: RunId) {
    let mut run = load(rule, store, id).await;
    run.state = RunState::Cancelled;
    run.cancelled = true;
    run.finished_at = Some(at(0));
    let mut changed = Vec::new();
    for task in &mut run.tasks {
        task.due_at = None;
        changed.push(task.id);
    }
    ok(
        rule,
        "commit (retiring the run)",
        store.commit(Commit::new(run, changed, vec![])).await,
    );
}
