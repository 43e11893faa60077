//! Committing changes to a run: the machine applied to the stored (or slot-cached) run, one
//! store commit for a run's sibling changes, tasks taken along, retries on version conflicts.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::OwnedSemaphorePermit;

use super::EngineShared;
use super::slots::{Cached, RunSlot};
use crate::audit::{AuditEvent, AuditKind};
use crate::connector::{Connector, Snapshot};
use crate::error::{Error, ErrorKind, Result};
use crate::machine::{self, Command, Event};
use crate::model::AppId;
use crate::run::{Run, RunId, TaskId, TaskKind, TaskState};
use crate::store::{Commit, Lease, LeaseConflict, Store};

/// How many times a change left in its run's slot yields to siblings still on their way before
/// taking the slot's lock (see [`EngineShared::apply_with`]).
const SIBLING_TURNS: usize = 3;

/// A change to a run waiting to be committed (see [`EngineShared::apply_with`]): an event, who
/// caused it, the lease it is made under (and whether to release it) and, for a start, the
/// attempt it began.
pub(crate) struct Change {
    lease: Option<(Lease, bool)>,
    actor: String,
    event: Event,
    /// The event happened at its time (the attempt began before the snapshot was taken) and its
    /// snapshot (for the event's task) and audit event are stored in the same commit.
    started: Option<Started>,
    /// Whether its worker runs a task this change makes due next (see [`Committed::next`]).
    take_next: bool,
}

impl Change {
    /// `event` caused by `actor`, under `lease` (released with the commit if its flag says so).
    pub(crate) fn new(lease: Option<(&Lease, bool)>, actor: &str, event: &Event) -> Self {
        Self {
            lease: lease.map(|(l, release)| (l.clone(), release)),
            actor: actor.to_owned(),
            event: event.clone(),
            started: None,
            take_next: false,
        }
    }

    /// The start of an attempt that began at `started.at`.
    pub(crate) fn started(mut self, started: Option<Started>) -> Self {
        self.started = started;
        self
    }

    /// Its worker is free once it is committed and takes a task it makes due along.
    pub(crate) fn taking_next(mut self) -> Self {
        self.take_next = true;
        self
    }
}

/// A committed change: the run as committed (shared with the slot and the change's siblings),
/// the change's commands, and the task its worker runs next, if it took one.
pub(crate) struct Committed {
    pub(crate) run: Arc<Run>,
    pub(crate) commands: Vec<Command>,
    pub(crate) next: Option<Next>,
}

/// A task the commit of a change took along: the run as committed, the lease the commit took
/// on it and, if the commit started it, its connector's permit (`None`: only leased, its
/// worker starts it as a claim would).
pub(crate) struct Next {
    pub(crate) run: Arc<Run>,
    pub(crate) lease: Lease,
    pub(crate) permit: Option<OwnedSemaphorePermit>,
}

/// A change's outcome.
pub(crate) type CommitResult = Result<Committed>;

/// A copy of `e` for another change of the same commit (its source is not copied).
fn copy_without_source(e: &Error) -> Error {
    let mut copy = Error::new(e.kind(), e.message())
        .with_retry(e.retry())
        .with_operation(e.operation().to_owned());
    for (k, v) in e.context() {
        copy = copy.with_context(k.to_owned(), v);
    }
    copy
}

/// A task attempt that began before its start was committed: when, and the snapshot it took
/// (with its audit event) to store with the start.
pub(crate) struct Started {
    pub(crate) at: DateTime<Utc>,
    pub(crate) snapshot: Option<(Snapshot, AuditEvent)>,
}

/// The audit event of `event`, applied to `run` at `at` by `actor`.
fn transition(run: &Run, at: DateTime<Utc>, actor: &str, event: &Event) -> AuditEvent {
    let task = event.task().and_then(|t| run.task(t));
    let audit = AuditEvent::new(
        at,
        actor.to_owned(),
        AuditKind::Transition {
            event: event.clone(),
            task_state: task.map(|t| t.state.name().to_owned()),
            run_state: run.state,
        },
    )
    .with_run(run.id);
    match task {
        Some(t) => audit.with_task(t.id, t.app.clone()),
        None => audit,
    }
}

fn machine_error(run: &Run, e: machine::MachineError) -> Error {
    let kind = match e {
        machine::MachineError::RunFinished(_)
        | machine::MachineError::RunNotFinished(_)
        | machine::MachineError::RunCancelled
        | machine::MachineError::RollbackUnderWay { .. }
        | machine::MachineError::RestoreLeaseLost => ErrorKind::Conflict,
        _ => ErrorKind::InvalidInput,
    };
    Error::new(kind, e.to_string())
        .fatal()
        .with_context("run", run.id)
}

impl EngineShared {
    /// Applies an event to the stored run and commits it with its audit event, reloading and
    /// re-applying on version conflicts.
    pub(crate) async fn apply_retrying(
        &self,
        run_id: RunId,
        lease: Option<(&Lease, bool)>,
        actor: &str,
        event: &Event,
    ) -> Result<(Run, Vec<Command>)> {
        let done = self
            .apply_with(None, run_id, Change::new(lease, actor, event))
            .await?;
        Ok((Arc::unwrap_or_clone(done.run), done.commands))
    }

    /// [`EngineShared::apply_retrying`], starting from the run cached in `slot` (if any) instead of
    /// loading it, holding the slot's lock until the commit is durable, and leaving the
    /// committed run in the slot for the next sibling task. A conflict or error empties the
    /// slot, so the next attempt reloads. See [`Change`] for what a change may carry along.
    ///
    /// With a slot, the change is left in it and committed by whoever takes the lock next,
    /// together with every sibling's change waiting there (one commit under all their leases,
    /// each event with its own audit event): siblings that finish while one of them commits
    /// share the next commit instead of queueing for one each. The returned run is the run as
    /// that commit stored it (with the siblings' changes); the commands are this event's.
    pub(crate) async fn apply_with(
        &self,
        slot: Option<&RunSlot>,
        run_id: RunId,
        change: Change,
    ) -> CommitResult {
        let Some(slot) = slot else {
            let mut uncached = None;
            return self
                .commit_changes(&mut uncached, run_id, vec![change])
                .await
                .pop()
                .unwrap_or_else(|| Err(Error::internal("a change went unanswered")));
        };
        let (tell, mut told) = tokio::sync::oneshot::channel();
        slot.wait((change, tell));
        // Sibling tasks claimed together reach this point one after another: let those still
        // on their way leave their changes too (a few turns of the scheduler, never a wait on
        // them), so one commit takes them all.
        for _ in 0..SIBLING_TURNS {
            if !slot.siblings_on_their_way() {
                break;
            }
            tokio::task::yield_now().await;
        }
        let mut cached = slot.lock().await;
        match told.try_recv() {
            // Committed (or refused) by the sibling that held the lock before.
            Ok(applied) => return applied,
            Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                return Err(Error::internal(
                    "the task committing this change together with its siblings' stopped before \
                     it answered; the change may or may not be stored",
                )
                .retryable());
            }
            Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {}
        }
        let (changes, tells): (Vec<Change>, Vec<_>) = slot.take_waiting().into_iter().unzip();
        let applied = self.commit_changes(&mut cached, run_id, changes).await;
        if let Some(committed) = cached.as_ref() {
            slot.remember(committed);
        }
        // Answered before the lock is released: a sibling whose change this commit took finds
        // its answer as soon as it holds the lock.
        for (tell, applied) in tells.into_iter().zip(applied) {
            let _ = tell.send(applied);
        }
        drop(cached);
        told.await
            .unwrap_or_else(|_| Err(Error::internal("a change went unanswered")))
    }

    /// Applies `changes` in order to the run (from `cached`, else loaded) and commits them in
    /// one commit, reloading and re-applying on version conflicts; leaves the committed run in
    /// `cached`. Returns each change's outcome, in order: a change the machine refuses, or
    /// whose lease was lost, fails alone; the others are committed without it.
    ///
    /// A change that may take a task along ([`Change::taking_next`]) gets one its commit made
    /// due (see [`EngineShared::take_next`]): started in the same commit, under a lease the commit
    /// takes, so its worker runs it next without a claim or a start commit of its own.
    pub(super) async fn commit_changes(
        &self,
        cached: &mut Option<Cached>,
        run_id: RunId,
        changes: Vec<Change>,
    ) -> Vec<CommitResult> {
        let mut outcomes: Vec<Option<CommitResult>> = changes.iter().map(|_| None).collect();
        // Cleared when the store refused a lease to take (a task claimed meanwhile).
        let mut may_take = self.store.claims_in_commit();
        for _ in 0..64 {
            let pending: Vec<usize> = (0..changes.len())
                .filter(|i| outcomes[*i].is_none())
                .collect();
            if pending.is_empty() {
                break;
            }
            let base = match cached.take() {
                Some(c) => c,
                None => {
                    let since = self.epochs.next();
                    match self.load(run_id).await {
                        Ok(run) => Cached::loaded(Arc::new(run), since),
                        Err(e) => {
                            for i in pending {
                                outcomes[i] = Some(Err(copy_without_source(&e)));
                            }
                            break;
                        }
                    }
                }
            };
            let mut run = Run::clone(&base.run);
            let now = self.clock.now();
            let Applying {
                mut events,
                snapshots,
                leases,
                applied,
            } = self.apply_changes(&mut run, now, &changes, &pending, &mut outcomes);
            if applied.is_empty() {
                // Nothing changed: the run stays as it was.
                *cached = Some(base);
                break;
            }
            let taken = if may_take {
                self.take_along(&base.run, &mut run, now, &changes, &applied, &mut events)
            } else {
                BTreeMap::new()
            };
            let changed = run
                .tasks
                .iter()
                .zip(&base.run.tasks)
                .filter(|(a, b)| a != b)
                .map(|(a, _)| a.id)
                .collect();
            let mut commit = Commit::new(run.clone(), changed, events);
            commit.snapshots = snapshots;
            commit.leases = leases;
            commit.claims = taken.values().map(|(lease, _)| lease.clone()).collect();
            commit.now = Some(now);
            let writing = self.sinks.writing();
            match self.store.commit(commit).await {
                Ok((version, sealed)) => {
                    run.version = version;
                    let run = Arc::new(run);
                    *cached = Some(base.committed_on_top(run.clone()));
                    self.to_sinks(&sealed).await;
                    drop(writing);
                    self.answer_committed(&run, version, now, applied, taken, &mut outcomes);
                    break;
                }
                // A task to take was claimed meanwhile: commit again without taking any.
                Err(e) if LeaseConflict::of(&e) == Some(LeaseConflict::Taken) => {
                    may_take = false;
                    *cached = Some(base);
                }
                // Lost: the change under that lease fails (its worker drops its result); the
                // others go on, on the run as it was (nothing was stored).
                Err(e) if LeaseConflict::of(&e) == Some(LeaseConflict::Lost) => {
                    let lost = applied.iter().find(|(i, _, _)| {
                        changes[*i].lease.as_ref().is_some_and(|(l, _)| {
                            e.context()
                                .any(|(k, v)| k == "task" && v == l.task.to_string())
                        })
                    });
                    match lost {
                        Some((i, _, _)) if applied.len() > 1 => {
                            outcomes[*i] = Some(Err(e));
                            *cached = Some(base);
                        }
                        _ => {
                            for (i, _, _) in &applied {
                                outcomes[*i] = Some(Err(copy_without_source(&e)));
                            }
                            break;
                        }
                    }
                }
                // The version moved (another engine committed): reload and apply again.
                Err(e) if e.kind() == ErrorKind::Conflict => {}
                Err(e) => {
                    for (i, _, _) in &applied {
                        outcomes[*i] = Some(Err(copy_without_source(&e)));
                    }
                    break;
                }
            }
        }
        answered(outcomes, &changes, run_id)
    }

    /// After the commit stored `run` at `version`: publishes its changes and the tasks taken
    /// along, wakes the workers when it made a task due that nobody holds, and answers each
    /// applied change (with the task it took along, if any).
    fn answer_committed(
        &self,
        run: &Arc<Run>,
        version: u64,
        now: DateTime<Utc>,
        applied: Vec<(usize, Vec<Command>, Option<TaskId>)>,
        mut taken: BTreeMap<usize, (Lease, Option<OwnedSemaphorePermit>)>,
        outcomes: &mut [Option<CommitResult>],
    ) {
        for (_, _, task_id) in &applied {
            self.publish(run, *task_id, now);
        }
        for (lease, _) in taken.values() {
            self.publish(run, Some(lease.task), now);
        }
        // Due tasks nobody holds yet: a worker claims them.
        if run.tasks.iter().any(|t| {
            t.due_at.is_some_and(|d| d <= now) && !matches!(t.state, TaskState::Running { .. })
        }) {
            self.wake.notify_waiters();
        }
        for (i, commands, _) in applied {
            let next = taken.remove(&i).map(|(mut lease, permit)| {
                lease.run_version = Some(version);
                Next {
                    run: run.clone(),
                    lease,
                    permit,
                }
            });
            outcomes[i] = Some(Ok(Committed {
                run: run.clone(),
                commands,
                next,
            }));
        }
    }

    /// Applies the `pending` changes in order to `run` at `now` (a start at its own time);
    /// a change the machine refuses gets its outcome now and leaves the run as it was.
    fn apply_changes(
        &self,
        run: &mut Run,
        now: DateTime<Utc>,
        changes: &[Change],
        pending: &[usize],
        outcomes: &mut [Option<CommitResult>],
    ) -> Applying {
        let mut events = Vec::new();
        let mut snapshots = Vec::new();
        let mut leases = Vec::new();
        // (change, its commands, its task)
        let mut applied: Vec<(usize, Vec<Command>, Option<TaskId>)> = Vec::new();
        for &i in pending {
            let change = &changes[i];
            let at = change.started.as_ref().map_or(now, |s| s.at);
            // A refused event leaves the run as it was (the machine's contract), as the
            // changes before it made it.
            let commands = match machine::apply(run, at, &change.event) {
                Ok(commands) => commands,
                Err(e) => {
                    outcomes[i] = Some(Err(machine_error(run, e)));
                    continue;
                }
            };
            let task_id = change.event.task();
            events.push(transition(run, at, &change.actor, &change.event));
            if let (Some((snap, ev)), Some(task)) = (
                change.started.as_ref().and_then(|s| s.snapshot.as_ref()),
                task_id,
            ) {
                events.push(ev.clone());
                snapshots.push((task, snap.clone()));
            }
            if let Some(lease) = &change.lease {
                leases.push(lease.clone());
            }
            applied.push((i, commands, task_id));
        }
        Applying {
            events,
            snapshots,
            leases,
            applied,
        }
    }

    /// Takes along the tasks the commit from `before` to `run` made due ([`Self::take_next`]),
    /// each by one of the `applied` changes that may take one, in order: started in `run`
    /// (its transition added to `events`) with its connector's permit, or only leased when
    /// its snapshot must be stored before its start. Returns each taker's lease and permit.
    fn take_along(
        &self,
        before: &Run,
        run: &mut Run,
        now: DateTime<Utc>,
        changes: &[Change],
        applied: &[(usize, Vec<Command>, Option<TaskId>)],
        events: &mut Vec<AuditEvent>,
    ) -> BTreeMap<usize, (Lease, Option<OwnedSemaphorePermit>)> {
        // Tasks taken along, each by one change that may take one: started here with its
        // connector's permit (none free now: left for a claim), or, when its snapshot must
        // be stored before its start, only leased (its worker starts it as a claim would).
        let mut taken: BTreeMap<usize, (Lease, Option<OwnedSemaphorePermit>)> = BTreeMap::new();
        let mut takers = applied
            .iter()
            .map(|(i, _, _)| *i)
            .filter(|i| changes[*i].take_next)
            .peekable();
        for (task, app, start) in self.take_next(before, run, now) {
            let Some(&i) = takers.peek() else { break };
            let permit = if start {
                let Some(permit) = self
                    .connectors
                    .get(&app)
                    .and_then(|c| c.limiter.try_acquire())
                else {
                    continue;
                };
                let started = Event::TaskStarted { task };
                if machine::apply(run, now, &started).is_err() {
                    continue;
                }
                events.push(transition(run, now, &self.worker_id, &started));
                Some(permit)
            } else {
                None
            };
            taken.insert(i, (self.lease_to_take(run.id, task, now), permit));
            takers.next();
        }
        taken
    }

    /// The tasks a commit from `before` to `after` made due at `now` that its workers may take
    /// along (see [`EngineShared::commit_changes`]): those the machine says ([`machine::take_along`]),
    /// of an app whose connector offers the action; each with whether the commit may start it.
    fn take_next(
        &self,
        before: &Run,
        after: &Run,
        now: DateTime<Utc>,
    ) -> Vec<(TaskId, AppId, bool)> {
        machine::take_along(before, after, now)
            .filter(|(t, _)| match (&t.kind, self.connectors.get(&t.app)) {
                (TaskKind::Action { action }, Some(c)) => {
                    c.connector.capabilities().action(&action.name).is_some()
                }
                _ => false,
            })
            .map(|(t, start)| (t.id, t.app.clone(), start))
            .collect()
    }

    /// This worker's lease on `task`, taken with a commit at `now` (see [`Commit::claims`]).
    fn lease_to_take(&self, run: RunId, task: TaskId, now: DateTime<Utc>) -> Lease {
        Lease {
            run,
            task,
            worker: self.worker_id.clone(),
            token: uuid::Uuid::new_v4(),
            until: machine::lease_until(now, self.lease_for),
            // Not read by the store (it counts the claim); a task this commit made due holds
            // no lease, so for the engine this is its first.
            claims: 1,
            run_version: None,
        }
    }
}

/// The changes' outcomes, a change left without one (the run kept changing) answered with a
/// `Conflict`.
fn answered(
    outcomes: Vec<Option<CommitResult>>,
    changes: &[Change],
    run_id: RunId,
) -> Vec<CommitResult> {
    outcomes
        .into_iter()
        .zip(changes)
        .map(|(outcome, change)| {
            outcome.unwrap_or_else(|| {
                Err(Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "run {run_id} kept changing; gave up applying {}",
                        change.event.name()
                    ),
                ))
            })
        })
        .collect()
}

/// The changes of a commit applied to the run: their audit events, the snapshots and leases
/// they carry, and per applied change its index, its commands and its task.
struct Applying {
    events: Vec<AuditEvent>,
    snapshots: Vec<(TaskId, Snapshot)>,
    leases: Vec<(Lease, bool)>,
    applied: Vec<(usize, Vec<Command>, Option<TaskId>)>,
}
