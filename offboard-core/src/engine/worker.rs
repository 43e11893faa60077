//! Workers: claim due tasks under leases and perform what the machine says.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use tokio::task::JoinSet;

use super::{Change, Committed, ConnectorEntry, EngineShared, Next, RunSlot, SlotGuard, Started};
use crate::audit::{AuditEvent, AuditKind};
use crate::connector::{ExecuteOptions, SnapshotPolicy};
use crate::delegate::{DelegationRequest, TicketStatus};
use crate::error::{Error, ErrorKind, Result};
use crate::machine::{self, ClaimCommand, Command, Event};
use crate::run::{Run, RunId, SkipReason, Task, TaskKind, TaskState};
use crate::store::{ClaimRequest, Lease};

/// The background loop: keep up to `max_in_flight` tasks running, claiming as [`run_due`]
/// does (when nothing runs or half the slots are free, so one claim fills many slots); sleep
/// until woken, a task finishes or the idle poll when nothing is due.
pub(super) async fn run_loop(
    inner: Arc<EngineShared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut running: JoinSet<()> = JoinSet::new();
    loop {
        let free = inner.max_in_flight.saturating_sub(running.len());
        if running.is_empty() || free >= refill_at(inner.max_in_flight) {
            // A claim that panics is reported and audited; the loop goes on.
            let claimed = match AssertUnwindSafe(inner.claim(free)).catch_unwind().await {
                Ok(claimed) => claimed,
                Err(panic) => {
                    let error = format!(
                        "claiming panicked: {}",
                        super::watch::panic_message(&*panic)
                    );
                    inner.worker_panicked(&error).await;
                    Err(Error::internal(error))
                }
            };
            match claimed {
                Ok(claim) => {
                    let claimed = claim.leases.len();
                    for (lease, slot) in claim.leases {
                        let inner = inner.clone();
                        let epoch = claim.epoch;
                        running.spawn(async move { inner.process(lease, slot, epoch).await });
                    }
                    // Every slot asked for was filled: more may be due.
                    if claimed > 0 && claimed == free {
                        continue;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "claiming due tasks failed"),
            }
        }
        tokio::select! {
            _ = stop.changed() => break,
            _ = inner.wake.notified() => {}
            Some(joined) = running.join_next(), if !running.is_empty() => {
                // A task that panicked keeps its lease until it expires; another claim takes it.
                if let Err(e) = joined
                    && e.is_panic()
                {
                    let error = format!(
                        "a task panicked: {}",
                        super::watch::panic_message(&*e.into_panic())
                    );
                    inner.worker_panicked(&error).await;
                }
            }
            _ = tokio::time::sleep(inner.idle_poll) => {}
        }
    }
    while running.join_next().await.is_some() {}
}

impl EngineShared {
    /// Reports and audits (`worker_panicked`) a panic the worker loop caught.
    async fn worker_panicked(&self, error: &str) {
        tracing::error!(worker = %self.worker_id, %error, "the worker caught a panic and goes on");
        self.emit(super::EngineEvent::WorkerPanicked {
            error: error.to_owned(),
        });
        let event = AuditEvent::new(
            self.clock.now(),
            self.worker_id.clone(),
            AuditKind::Note {
                name: "worker_panicked".into(),
                data: serde_json::json!({ "error": error }),
            },
        );
        if let Err(e) = self.append_audit(event).await {
            tracing::warn!(error = %e, "auditing a worker panic failed");
        }
    }
}

/// Claims as soon as this many of `max_in_flight` slots are free (or nothing runs): one claim
/// fills many slots, and the tasks in flight keep the group commits full meanwhile.
fn refill_at(max_in_flight: usize) -> usize {
    max_in_flight.div_ceil(2)
}

/// [`super::Engine::run_due`]: claim and process until nothing is due and nothing runs.
pub(super) async fn run_due(inner: &Arc<EngineShared>) -> Result<usize> {
    let mut running: JoinSet<()> = JoinSet::new();
    let mut total = 0;
    loop {
        let free = inner.max_in_flight.saturating_sub(running.len());
        if running.is_empty() || free >= refill_at(inner.max_in_flight) {
            let claim = match inner.claim(free).await {
                Ok(claim) => claim,
                Err(e) => {
                    while running.join_next().await.is_some() {}
                    return Err(e);
                }
            };
            // Nothing due and nothing running that could make a task due: done.
            if claim.leases.is_empty() && running.is_empty() {
                return Ok(total);
            }
            total += claim.leases.len();
            for (lease, slot) in claim.leases {
                let inner = inner.clone();
                let epoch = claim.epoch;
                running.spawn(async move { inner.process(lease, slot, epoch).await });
            }
        }
        if let Some(Err(e)) = running.join_next().await
            && e.is_panic()
        {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

/// Tasks claimed together, each with its run's slot (entered at once, so sibling tasks of one
/// run share the run this engine loads or commits), and the epoch after the claim returned.
pub(crate) struct Claimed {
    pub(crate) leases: Vec<(Lease, SlotGuard)>,
    pub(crate) epoch: u64,
}

impl EngineShared {
    pub(crate) async fn claim(&self, limit: usize) -> Result<Claimed> {
        let leases = self
            .store
            .claim(ClaimRequest::new(
                self.worker_id.clone(),
                self.clock.now(),
                self.lease_for,
                limit,
            ))
            .await?;
        let epoch = self.epochs.next();
        let leases: Vec<(Lease, SlotGuard)> = leases
            .into_iter()
            .map(|lease| {
                let slot = self.slots.enter(lease.run);
                (lease, slot)
            })
            .collect();
        self.load_together(&leases, epoch).await;
        Ok(Claimed { leases, epoch })
    }

    /// Loads the runs of claimed tasks whose slots hold no run that serves the claim, in one
    /// call (one statement on SQL stores instead of one per run), and leaves each in its slot
    /// if the slot holds none (a slot that holds a run is left as it is: its tasks may be
    /// committing). A run not loaded here is loaded by its task, as before; a failed load
    /// only logs.
    async fn load_together(&self, leases: &[(Lease, SlotGuard)], claimed: u64) {
        let mut ids: Vec<RunId> = leases
            .iter()
            .filter(|(lease, slot)| {
                !slot
                    .last()
                    .is_some_and(|c| c.fresh_for_claim(claimed, lease.run_version))
            })
            .map(|(lease, _)| lease.run)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() < 2 {
            return;
        }
        let since = self.epochs.next();
        let runs = match self.store.load_runs(&ids).await {
            Ok(runs) => runs,
            Err(e) => {
                tracing::warn!(error = %e, "loading claimed tasks' runs together failed; each task loads its own");
                return;
            }
        };
        for run in runs {
            let Some((_, slot)) = leases.iter().find(|(lease, _)| lease.run == run.id) else {
                continue;
            };
            let mut cached = slot.lock().await;
            if cached.is_none() {
                slot.hold_loaded(&mut cached, Arc::new(run), since);
            }
        }
    }

    /// Handles one claimed task, then each task its results took along only leased (to be
    /// started as a claimed task is); never panics, logs what it cannot record.
    pub(crate) async fn process(&self, lease: Lease, slot: SlotGuard, claimed: u64) {
        let (mut lease, mut slot, mut claimed) = (lease, slot, claimed);
        loop {
            match self.process_claimed(&lease, slot, claimed).await {
                Ok(Some(next)) => {
                    slot = self.slots.enter(next.run);
                    claimed = self.epochs.next();
                    lease = next;
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(run = %lease.run, task = %lease.task, error = %e, "task processing stopped; the lease will expire and the task be retried");
                    return;
                }
            }
        }
    }

    /// Handles one claimed task. Returns the lease of a task its result took along without
    /// starting it (its snapshot comes first), for [`EngineShared::process`] to handle next.
    async fn process_claimed(
        &self,
        lease: &Lease,
        slot: SlotGuard,
        claimed: u64,
    ) -> Result<Option<Lease>> {
        let run = self.claimed_run(lease, &slot, claimed).await?;
        let now = self.clock.now();
        match machine::claim_command(&run, lease.task, now) {
            ClaimCommand::Nothing => {
                let due = machine::release_due(&run, lease.task);
                self.store.release(lease, due).await.map(|()| None)
            }
            ClaimCommand::Abandon => {
                self.apply_with(
                    Some(&slot),
                    lease.run,
                    Change::new(
                        Some((lease, true)),
                        &self.worker_id,
                        &Event::TaskAbandoned { task: lease.task },
                    ),
                )
                .await?;
                Ok(None)
            }
            ClaimCommand::Poll => self
                .poll_delegation(&run, lease, &slot)
                .await
                .map(|()| None),
            ClaimCommand::Start => self.start_claimed(&run, lease, &slot).await,
        }
    }

    /// The run a claimed task decides from: as stored at the claim or later.
    async fn claimed_run(&self, lease: &Lease, slot: &RunSlot, claimed: u64) -> Result<Arc<Run>> {
        // Sibling tasks of this run share its slot: their changes are committed on the latest
        // version, without reloading (see `apply_with`). The claim decision needs the run as
        // stored at the claim or later (another engine may have changed it): the slot's last
        // run if it is the version the claim read or descends from a load begun after this
        // claim returned (see `slots`; read without waiting for a sibling's commit in flight),
        // else a load, under the slot's lock so no sibling commits meanwhile.
        let run = match slot
            .last()
            .filter(|c| c.fresh_for_claim(claimed, lease.run_version))
        {
            Some(c) => c.run,
            None => {
                let mut cached = slot.lock().await;
                match cached.as_ref() {
                    Some(c) if c.fresh_for_claim(claimed, lease.run_version) => c.run.clone(),
                    _ => {
                        *cached = None;
                        let since = self.epochs.next();
                        let run = Arc::new(self.load(lease.run).await?);
                        slot.hold_loaded(&mut cached, run.clone(), since);
                        run
                    }
                }
            }
        };
        Ok(run)
    }

    /// [`ClaimCommand::Start`] of a claimed task: waits for its connector's limits (renewing
    /// the lease when the wait was long), takes the snapshot the start stores
    /// ([`EngineShared::snapshot_at_start`]), commits the start and performs its command;
    /// then runs the tasks its result took along. Returns the lease of a task taken along
    /// without being started, for [`EngineShared::process`] to handle next.
    async fn start_claimed(
        &self,
        run: &Run,
        lease: &Lease,
        slot: &RunSlot,
    ) -> Result<Option<Lease>> {
        // Wait for the connector's limits before starting the attempt, then renew the
        // lease so the wait does not eat into it.
        let task = run
            .task(lease.task)
            .ok_or_else(|| Error::internal("claimed unknown task"))?;
        let conn = self.connectors.get(&task.app);
        let waiting_since = tokio::time::Instant::now();
        let mut permit = match (conn, &task.kind) {
            (Some(c), TaskKind::Action { .. }) => Some(c.limiter.acquire().await),
            _ => None,
        };
        // Renew only when the wait ate a real share of the lease: one write saved per
        // task in the common case.
        let lease = if machine::renew_after_wait(waiting_since.elapsed(), self.lease_for) {
            self.store
                .renew(lease, self.clock.now(), self.lease_for)
                .await?
        } else {
            lease.clone()
        };
        let (started, prepared) = self.snapshot_at_start(run, task, conn, &lease).await;
        let Committed { run, commands, .. } = self
            .apply_with(
                Some(slot),
                lease.run,
                Change::new(
                    Some((&lease, false)),
                    &self.worker_id,
                    &Event::TaskStarted { task: lease.task },
                )
                .started(started),
            )
            .await?;
        let mut prepared = Some(prepared);
        for cmd in commands {
            match cmd {
                Command::Execute(_) => {
                    let prepared = prepared.take().unwrap_or(SnapshotAtStart::Nothing);
                    let mut next = self
                        .execute(&run, &lease, slot, prepared, permit.take())
                        .await?;
                    // The tasks its result made due and took along, one after another,
                    // under the leases that commit took: run here if it started them,
                    // else (a snapshot to store first) started as a claimed task is.
                    while let Some(Next { run, lease, permit }) = next {
                        let Some(permit) = permit else {
                            return Ok(Some(lease));
                        };
                        next = self
                            .execute(&run, &lease, slot, SnapshotAtStart::Nothing, Some(permit))
                            .await?;
                    }
                }
                Command::OpenDelegation(_) => {
                    self.open_delegation(&run, &lease, slot).await?;
                }
                Command::Restore(_) | Command::Finished(_) => {}
            }
        }
        Ok(None)
    }

    /// The start of `task`'s attempt beginning now, and what it did about the snapshot.
    async fn snapshot_at_start(
        &self,
        run: &Run,
        task: &Task,
        conn: Option<&ConnectorEntry>,
        lease: &Lease,
    ) -> (Option<Started>, SnapshotAtStart) {
        // A reversible action's first attempt: take the snapshot now and store it (and
        // its audit event) with the start, in one commit. A snapshot that fails is the
        // attempt's error. Later attempts find or take it in `execute`. The machine decides
        // which starts take it ([`machine::snapshot_before_start`]). The attempt starts
        // (its `started_at`) before the snapshot is taken, as it did when the snapshot
        // was taken after the start was committed.
        let at = self.clock.now();
        let snapshot = match (conn, &task.kind, &task.account) {
            (Some(c), TaskKind::Action { action }, Some(account))
                if machine::snapshot_before_start(task)
                    && c.connector.capabilities().action(&action.name).is_some() =>
            {
                let call = c
                    .limiter
                    .timed("snapshot", c.connector.snapshot(account, action));
                Some(
                    self.while_leased(lease, "snapshot", call)
                        .await
                        .map(|snap| (snap, action.name.to_string())),
                )
            }
            _ => None,
        };
        match snapshot {
            None => (None, SnapshotAtStart::Nothing),
            Some(Ok((snap, action))) => {
                let ev = AuditEvent::new(
                    self.clock.now(),
                    self.worker_id.clone(),
                    AuditKind::SnapshotTaken { action },
                )
                .with_run(run.id)
                .with_task(task.id, task.app.clone());
                let started = Started {
                    at,
                    snapshot: Some((snap, ev)),
                };
                (Some(started), SnapshotAtStart::SnapshotStored)
            }
            Some(Err(e)) => {
                let started = Started { at, snapshot: None };
                (Some(started), SnapshotAtStart::SnapshotFailed(e))
            }
        }
    }

    /// Runs a task's action. `prepared` says what the start already did about the snapshot;
    /// `permit` (the connector's concurrency permit) is given back as soon as the connector
    /// calls are done, before the result is committed. Returns the task the result's commit
    /// took along, if it took one.
    async fn execute(
        &self,
        run: &Run,
        lease: &Lease,
        slot: &RunSlot,
        prepared: SnapshotAtStart,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> Result<Option<Next>> {
        let task = run
            .task(lease.task)
            .ok_or_else(|| Error::internal("unknown task"))?;
        let TaskKind::Action { action } = &task.kind else {
            return Err(Error::internal("execute of a non-action task"));
        };
        // Protection is checked again with the policy in force now, right before the call: a
        // policy that came to protect the person or the account since planning (a staged run
        // spans weeks; engines restart with new policies) takes effect.
        if let Some(account) = &task.account
            && (self.policy.is_protected(&run.person)
                || self.policy.protects_account(account)
                || self.policy.protects_in_app(account))
        {
            drop(permit);
            tracing::warn!(run = %run.id, task = %task.id, app = %task.app, "the account is protected by the policy now in force; the task is skipped");
            let event = Event::TaskSkipped {
                task: task.id,
                reason: SkipReason::Protected,
            };
            let change = Change::new(Some((lease, true)), &self.worker_id, &event).taking_next();
            return self.commit_result(lease, change, slot).await;
        }
        let call = async {
            let conn = self.connectors.get(&task.app).ok_or_else(|| {
                Error::config(
                    format!("connectors.{}", task.app),
                    "no connector configured for this app",
                )
                .fatal()
            })?;
            let account = task
                .account
                .as_ref()
                .ok_or_else(|| Error::not_found("no account in this app"))?;
            if conn.connector.capabilities().action(&action.name).is_none() {
                return Err(Error::unsupported(format!(
                    "{} is not offered by the {} connector",
                    action.name, task.app
                )));
            }
            match prepared {
                SnapshotAtStart::SnapshotFailed(e) => return Err(e),
                SnapshotAtStart::SnapshotStored => {}
                SnapshotAtStart::Nothing => self.snapshot(run, task, conn, account, action).await?,
            }
            let mut options = ExecuteOptions::default()
                .with_idempotency_key(task.idempotency_key.clone())
                .with_person(run.person.clone())
                .with_actor(
                    run.confirmed_by
                        .clone()
                        .unwrap_or_else(|| run.initiator.actor()),
                );
            options.run = Some(run.id);
            options.task = Some(task.id);
            options.attempt = task.attempts;
            options.started_at = task.started_at;
            options.snapshot = if task.reversible {
                SnapshotPolicy::TakenByEngine
            } else {
                SnapshotPolicy::Skip
            };
            conn.limiter
                .timed(
                    action.name.as_str(),
                    conn.connector.execute(account, action, &options),
                )
                .await
        };
        let result = self.while_leased(lease, action.name.as_str(), call).await;
        // The connector is done: let another task call it while this result is committed.
        drop(permit);
        let event = match result {
            Ok(reply) => Event::TaskSucceeded {
                task: task.id,
                outcome: reply.outcome,
                detail: reply.detail,
            },
            Err(e) => {
                let mut e = e
                    .with_context("app", &task.app)
                    .with_context("run", run.id)
                    .with_context("attempt", task.attempts);
                if e.operation().is_empty() {
                    e = e.with_operation(action.name.to_string());
                }
                tracing::info!(run = %run.id, task = %task.id, error = %e, "attempt failed");
                Event::TaskErrored {
                    task: task.id,
                    error: e.record(),
                    backoff_ms: self.backoff.delay(task.attempts).as_millis() as u64,
                }
            }
        };
        let change = Change::new(Some((lease, true)), &self.worker_id, &event).taking_next();
        self.commit_result(lease, change, slot).await
    }

    /// Awaits `call` (connector calls of the task `lease` holds, and the store work between
    /// them) while renewing the lease every third of its length, so a slow call never lets it
    /// expire and another worker start the task too. When a renewal fails (the lease was lost,
    /// or the store did not answer), stops waiting for the call: its outcome is unknown, and the
    /// retryable `Timeout` returned says so, so the task is tried again (idempotently) instead
    /// of recording a success or failure nobody saw.
    async fn while_leased<T>(
        &self,
        lease: &Lease,
        op: &str,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let every = machine::renew_every(self.lease_for);
        let renewing = async {
            let mut held = lease.clone();
            loop {
                tokio::time::sleep(every).await;
                match self
                    .store
                    .renew(&held, self.clock.now(), self.lease_for)
                    .await
                {
                    Ok(renewed) => held = renewed,
                    Err(e) => return e,
                }
            }
        };
        tokio::select! {
            biased;
            result = call => result,
            e = renewing => {
                tracing::warn!(run = %lease.run, task = %lease.task, error = %e, "renewing the lease failed during a connector call; the call's outcome is unknown");
                Err(Error::new(
                    ErrorKind::Timeout,
                    format!("the lease could not be renewed during the call ({e}): its outcome is unknown; the task is retried"),
                )
                .with_operation(op.to_owned()))
            }
        }
    }

    /// Takes and stores the snapshot of a reversible task's account unless one is stored (a
    /// retry keeps the snapshot of the first attempt), with its audit event.
    async fn snapshot(
        &self,
        run: &Run,
        task: &crate::run::Task,
        conn: &super::ConnectorEntry,
        account: &crate::model::AccountRef,
        action: &crate::action::Action,
    ) -> Result<()> {
        if !task.reversible || self.store.snapshot(task.id).await?.is_some() {
            return Ok(());
        }
        let snap = conn
            .limiter
            .timed("snapshot", conn.connector.snapshot(account, action))
            .await?;
        if self.store.put_snapshot(task.id, &snap).await? {
            let ev = AuditEvent::new(
                self.clock.now(),
                self.worker_id.clone(),
                AuditKind::SnapshotTaken {
                    action: action.name.to_string(),
                },
            )
            .with_run(run.id)
            .with_task(task.id, task.app.clone());
            self.append_audit(ev).await?;
        }
        Ok(())
    }

    /// Commits a task's result (`event`, under `lease`, releasing it); a lost lease means
    /// another worker re-ran it (idempotently), so this result is dropped.
    async fn record_result(&self, lease: &Lease, event: Event, slot: &RunSlot) -> Result<()> {
        let change = Change::new(Some((lease, true)), &self.worker_id, &event);
        self.commit_result(lease, change, slot).await.map(drop)
    }

    /// [`EngineShared::record_result`] of `change`. Returns the task the commit took along, if the
    /// change could take one.
    async fn commit_result(
        &self,
        lease: &Lease,
        change: Change,
        slot: &RunSlot,
    ) -> Result<Option<Next>> {
        match self.apply_with(Some(slot), lease.run, change).await {
            Ok(done) => Ok(done.next),
            Err(e) if e.kind() == ErrorKind::Conflict => {
                tracing::warn!(run = %lease.run, task = %lease.task, error = %e, "result not recorded: lease lost to another worker");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    async fn open_delegation(&self, run: &Run, lease: &Lease, slot: &RunSlot) -> Result<()> {
        let task = run
            .task(lease.task)
            .ok_or_else(|| Error::internal("unknown task"))?;
        let TaskKind::Delegation { via } = &task.kind else {
            return Err(Error::internal("delegation of a non-delegation task"));
        };
        let now = self.clock.now();
        let result = match self.delegates.get(via) {
            None => Err(Error::config(
                format!("delegates.{}", via.as_str()),
                "no delegate of this kind configured",
            )
            .fatal()),
            Some(d) => {
                let mut req = DelegationRequest::new(
                    run.id,
                    task.id,
                    task.app.clone(),
                    run.person.clone(),
                    task.not_before,
                    task.idempotency_key.clone(),
                );
                req.login = task
                    .account
                    .as_ref()
                    .map(|a| a.login.clone())
                    .filter(|l| !l.is_empty());
                d.open(&req).await
            }
        };
        let event = match result {
            Ok(ticket) => Event::TaskDelegated {
                task: task.id,
                ticket,
                next_poll: now + self.poll_interval(run),
            },
            Err(e) => Event::TaskErrored {
                task: task.id,
                error: e
                    .with_context("app", &task.app)
                    .with_context("run", run.id)
                    .record(),
                backoff_ms: self.backoff.delay(task.attempts).as_millis() as u64,
            },
        };
        self.record_result(lease, event, slot).await
    }

    fn poll_interval(&self, run: &Run) -> chrono::Duration {
        chrono::Duration::from_std(run.delegation_poll).unwrap_or(chrono::Duration::seconds(60))
    }

    async fn poll_delegation(&self, run: &Run, lease: &Lease, slot: &RunSlot) -> Result<()> {
        let task = run
            .task(lease.task)
            .ok_or_else(|| Error::internal("unknown task"))?;
        let TaskKind::Delegation { via } = &task.kind else {
            return self.store.release(lease, None).await;
        };
        let now = self.clock.now();
        let next = now + self.poll_interval(run);
        let Some(d) = self.delegates.get(via) else {
            return self.store.release(lease, Some(next)).await;
        };
        if task.state.is_completed() {
            return self
                .watch_for_reopen(run, lease, slot, d.as_ref(), next)
                .await;
        }
        let TaskState::Delegated { ticket } = &task.state else {
            return self.store.release(lease, None).await;
        };
        match d.status(ticket).await {
            Ok(TicketStatus::Open { ticket: t }) if &t == ticket => {
                self.store.release(lease, Some(next)).await
            }
            Ok(TicketStatus::Open { ticket: t }) => {
                self.record_result(
                    lease,
                    Event::DelegationUpdated {
                        task: task.id,
                        ticket: t,
                        next_poll: next,
                    },
                    slot,
                )
                .await
            }
            Ok(TicketStatus::Done { ticket: t, by }) => {
                let detail = Some(match by {
                    Some(by) => format!("{} done by {by}", t.key),
                    None => format!("{} done", t.key),
                });
                self.record_result(
                    lease,
                    Event::DelegationDone {
                        task: task.id,
                        detail,
                        next_poll: Some(next),
                    },
                    slot,
                )
                .await
            }
            Ok(TicketStatus::Declined { ticket: t, reason }) => {
                self.record_result(
                    lease,
                    Event::DelegationDeclined {
                        task: task.id,
                        reason: format!("{}: {reason}", t.key),
                    },
                    slot,
                )
                .await
            }
            Err(e) => {
                let wait = e
                    .retry_after()
                    .map(|d| chrono::Duration::from_std(d).unwrap_or_default())
                    .unwrap_or_default();
                tracing::warn!(run = %run.id, task = %task.id, error = %e, "polling delegation failed; will poll again");
                self.store.release(lease, Some(next.max(now + wait))).await
            }
        }
    }

    /// Polls a done delegation of a still-open run: a ticket that is open again moves the task
    /// back to `Delegated`. The ticket comes from the run's audit trail (the task's state no
    /// longer holds it).
    async fn watch_for_reopen(
        &self,
        run: &Run,
        lease: &Lease,
        slot: &RunSlot,
        delegate: &dyn crate::delegate::Delegate,
        next: chrono::DateTime<chrono::Utc>,
    ) -> Result<()> {
        let events = self
            .store
            .audit(crate::store::AuditQuery::run(run.id))
            .await?;
        let ticket = events.iter().rev().find_map(|e| match &e.kind {
            AuditKind::Transition {
                event:
                    Event::TaskDelegated { task, ticket, .. }
                    | Event::DelegationUpdated { task, ticket, .. }
                    | Event::DelegationReopened { task, ticket, .. },
                ..
            } if *task == lease.task => Some(ticket.clone()),
            _ => None,
        });
        let Some(ticket) = ticket else {
            return self.store.release(lease, None).await;
        };
        match delegate.status(&ticket).await {
            // Declined after done: no longer done; back to `Delegated`, whose next poll fails it.
            Ok(TicketStatus::Open { ticket } | TicketStatus::Declined { ticket, .. }) => {
                self.record_result(
                    lease,
                    Event::DelegationReopened {
                        task: lease.task,
                        ticket,
                        next_poll: next,
                    },
                    slot,
                )
                .await
            }
            Ok(TicketStatus::Done { .. }) => self.store.release(lease, Some(next)).await,
            Err(e) => {
                tracing::warn!(run = %run.id, task = %lease.task, error = %e, "watching a done delegation failed; will poll again");
                self.store.release(lease, Some(next)).await
            }
        }
    }
}

/// What a task's start already did about its snapshot.
enum SnapshotAtStart {
    /// Nothing: `execute` stores one if the task needs it and has none.
    Nothing,
    /// Taken and stored with the start.
    SnapshotStored,
    /// Taking it failed: the attempt's error.
    SnapshotFailed(Error),
}
