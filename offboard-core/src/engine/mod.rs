//! The engine: plans runs, persists them, and drives the state machine with workers that claim
//! due tasks under leases.
//!
//! # Calling contract
//!
//! 1. Build once with [`Engine::builder`]: a store, connectors (each with its [`Limits`]),
//!    delegates, a [`Policy`], audit sinks.
//! 2. [`Engine::plan`] a [`RunRequest`]: a dry-run [`Plan`] (lookups only, nothing changes).
//! 3. [`Engine::submit`] the plan, with a [`Confirmation`] quoting its digest if it has
//!    critical actions; without one they are held ([`TaskState::Held`]) while the rest runs,
//!    until [`Engine::confirm`] releases them or [`Engine::cancel`] ends them.
//! 4. Run workers: [`Engine::start`] (background) or [`Engine::run_due`] (one pass, for tests).
//!    Several engines (processes) can share one store: leases keep each task with one worker.
//! 5. Watch with [`Engine::subscribe`], [`Engine::status`], [`Engine::wait`]; afterwards
//!    [`Engine::verify`], and if needed [`Engine::rollback`].
//!
//! The engine never calls a bare connector: every call goes through the connector's limiter
//! (concurrency cap, rate limit, timeout) and every error gets the connector, action, run and
//! attempt as context.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, broadcast};

mod builder;
mod checkpoints;
mod clock;
mod commit;
mod discovery;
mod limits;
mod metrics;
mod notify;
mod plan;
mod retention;
mod rollback;
mod sinks;
mod slots;
mod values;
mod verify;
mod watch;
mod worker;

pub use builder::{EngineBuilder, LEASE_MARGIN};
pub use metrics::RunMetrics;
pub use rollback::RollbackReport;
pub use values::{Backoff, RunUpdate};
pub use verify::{AppVerification, VerificationReport};

pub use clock::{Clock, GovernorClock, TokioClock};
pub use discovery::{ConnectorSync, SyncReport};
pub use limits::Limits;
pub use plan::{AppPlan, Confirmation, Plan, RunRequest, plan_digest};
pub use watch::{EngineEvent, Hold, LifecycleRules, SOURCE_APP_PREFIX, WatchReport, source_app};

pub(crate) use commit::{Change, CommitResult, Committed, Next, Started};
use slots::{Epochs, RunSlot, RunSlots, SlotGuard};

use crate::audit::{AuditEvent, AuditKind};
use crate::connector::Connector;
use crate::delegate::Delegate;
use crate::error::{Error, ErrorKind, Result};
use crate::machine::{self, Event};
use crate::model::AppId;
use crate::policy::Policy;
use crate::run::{DelegateVia, RetryPolicy, Run, RunId, TaskId, TaskKind, TaskState};
use crate::store::{Commit, RunQuery, Store};

#[derive(Debug)]
pub(crate) struct ConnectorEntry {
    pub(crate) connector: Arc<dyn Connector>,
    pub(crate) limiter: limits::Limiter,
}

pub(crate) struct EngineShared {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) connectors: BTreeMap<AppId, ConnectorEntry>,
    pub(crate) delegates: BTreeMap<DelegateVia, Arc<dyn Delegate>>,
    pub(crate) policy: Policy,
    /// [`Policy::fingerprint`] of `policy`.
    pub(crate) policy_fingerprint: String,
    pub(crate) sinks: sinks::SinkPumps,
    /// The notifiers (fed by `sinks` through [`notify::NotifierSink`]s), and how overdue
    /// delegated tasks are found.
    pub(crate) notifiers: Vec<Arc<dyn crate::notify::Notifier>>,
    pub(crate) overdue: notify::OverdueConfig,
    /// Signed checkpoints of the audit chain, when configured.
    pub(crate) checkpoints: Option<checkpoints::Checkpoints>,
    /// The retention policy (snapshots past the rollback window, erasure).
    pub(crate) retention: retention::RetentionConfig,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) retry: RetryPolicy,
    pub(crate) backoff: Backoff,
    pub(crate) delegation_poll: Duration,
    pub(crate) lease_for: Duration,
    pub(crate) idle_poll: Duration,
    pub(crate) max_in_flight: usize,
    pub(crate) worker_id: String,
    pub(crate) updates: broadcast::Sender<RunUpdate>,
    pub(crate) events: broadcast::Sender<EngineEvent>,
    pub(crate) wake: Notify,
    pub(crate) sources: Vec<watch::WatchedSource>,
    pub(crate) lifecycle: LifecycleRules,
    pub(crate) slots: RunSlots,
    /// Orders claims and loads, so a cached run can stand in for a load (see [`slots`]).
    pub(crate) epochs: Epochs,
}

impl fmt::Debug for EngineShared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("worker_id", &self.worker_id)
            .field("store", &self.store)
            .field("connectors", &self.connectors.keys().collect::<Vec<_>>())
            .field("delegates", &self.delegates.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The offboarding engine. Cheap to clone; clones share everything.
#[derive(Debug, Clone)]
pub struct Engine {
    pub(crate) inner: Arc<EngineShared>,
}

/// Background workers started by [`Engine::start`]; stopped on [`WorkerHandle::shutdown`] or
/// drop.
#[derive(Debug)]
pub struct WorkerHandle {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Writes the last checkpoint at shutdown, when checkpoints are configured.
    checkpoints: Option<Arc<checkpoints::Writer>>,
}

impl WorkerHandle {
    /// Stops claiming and polling sources, waits for in-flight tasks to finish, then writes a
    /// last signed checkpoint of the audit chain when checkpoints are configured (a failing
    /// sink is logged, as at every checkpoint).
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for t in std::mem::take(&mut self.tasks) {
            let _ = t.await;
        }
        if let Some(writer) = self.checkpoints.take() {
            writer.write_logged(false).await;
        }
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Engine {
    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    /// The current time on the engine's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// Plans an offboarding without changing anything.
    ///
    /// # Behavior
    /// Looks the person up in every app in scope (policy apps, and every app in the person's
    /// inventory) with exact lookups; orders the tasks by the actions' and the policy's
    /// constraints into a DAG. A lookup that fails permanently (two matches, bad input) makes
    /// that app's tasks `Failed` in the plan, never a guess; a retryable one fails the plan.
    ///
    /// # Errors
    /// `Protected` for a protected person, or when a lookup resolves the request to an account
    /// on the policy's global `protected` list (another address of a protected person, under
    /// another person id); `Cycle` when constraints form a cycle; `Config` for a policy that
    /// names a missing connector, delegate or action; retryable lookup errors.
    pub async fn plan(&self, request: RunRequest) -> Result<Plan> {
        self.inner.plan(request).await
    }

    /// Submits a plan.
    ///
    /// # Behavior
    /// The plan is checked against the engine, not trusted: it must have been made under the
    /// engine's policy ([`Policy::fingerprint`]); criticality and protection are derived again
    /// from the engine's policy and connectors, and a plan weaker than that is refused; its
    /// digests are recomputed from its content, so a plan changed after planning no longer
    /// matches. The run and its first audit events (`run_planned`, `submitted`) are committed
    /// together.
    ///
    /// Critical actions run only once confirmed: with a `confirmation` quoting the plan's
    /// digest (by a confirmer the policy's approvals allow) they run as planned; without one
    /// they are held ([`TaskState::Held`], run state
    /// [`RunState::AwaitingConfirmation`](crate::run::RunState::AwaitingConfirmation) once
    /// nothing else can move) while every other task runs, until [`Engine::confirm`] or
    /// [`Engine::cancel`].
    ///
    /// # Errors
    /// `ConfirmationRequired` when `confirmation` quotes another digest or the approvals refuse
    /// its confirmer (audited as `confirmation_refused`; nothing is stored); `InvalidInput`
    /// for a plan made under another policy or weaker than the engine's policy; `Protected`
    /// for a protected person, or a plan acting on a protected account; `Conflict` when a run
    /// for the person is open (audited as `suppressed`).
    pub async fn submit(&self, plan: Plan, confirmation: Option<Confirmation>) -> Result<RunId> {
        let inner = &self.inner;
        let mut run = inner
            .checked_submission(plan, confirmation.as_ref())
            .await?;
        let now = inner.clock.now();
        let actor = confirmation
            .as_ref()
            .map_or_else(|| run.initiator.actor(), |c| c.by.clone());
        let planned = AuditEvent::new(
            now,
            actor.clone(),
            AuditKind::RunPlanned {
                run: Box::new(run.clone()),
            },
        )
        .with_run(run.id);
        machine::apply(&mut run, now, &Event::Submitted)
            .map_err(|e| Error::internal(e.to_string()))?;
        let submitted = AuditEvent::new(
            now,
            actor,
            AuditKind::Transition {
                event: Event::Submitted,
                task_state: None,
                run_state: run.state,
            },
        )
        .with_run(run.id);
        run.version = 1;
        // The store keeps one open run per person, atomically (a `Conflict` that stores
        // nothing): no check beforehand, which a racing submit could pass anyway.
        let _writing = inner.sinks.writing();
        let sealed = match inner.store.create_run(&run, vec![planned, submitted]).await {
            Ok(sealed) => sealed,
            // The person has an open run: this trigger is suppressed (and audited as such).
            Err(e) if e.kind() == ErrorKind::Conflict => {
                return Err(inner.suppress_if_open(&run).await?.unwrap_or(e));
            }
            Err(e) => return Err(e),
        };
        inner.to_sinks(&sealed).await;
        inner.publish(&run, None, now);
        let id = run.id;
        // Its first tasks, claimed by this engine, decide from it without loading it.
        inner.slots.keep(Arc::new(run));
        inner.wake.notify_waiters();
        Ok(id)
    }

    /// Confirms the critical tasks a run holds ([`TaskState::Held`]): they become due and run
    /// as planned. The confirmation quotes the run's [`Run::confirmation_digest`] (the digest a
    /// [`WatchReport`] or the plan showed) and its confirmer must pass the policy's approvals.
    /// Returns the run as committed.
    ///
    /// # Errors
    /// `ConfirmationRequired` when the digest does not match or the approvals refuse the
    /// confirmer (audited as `confirmation_refused`; nothing changes); `Conflict` when the run
    /// holds nothing (already confirmed, cancelled, ended); `NotFound` for an unknown run.
    pub async fn confirm(&self, run: RunId, confirmation: Confirmation) -> Result<Run> {
        let inner = &self.inner;
        let current = inner.load(run).await?;
        if !current.tasks.iter().any(|t| t.state == TaskState::Held) {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "run {run} holds no task for a confirmation (state {:?})",
                    current.state
                ),
            ));
        }
        inner
            .approve(&current, &confirmation, &current.confirmation_digest())
            .await?;
        let event = Event::Confirmed {
            by: confirmation.by.clone(),
            role: confirmation.role.clone(),
            digest: confirmation.digest,
        };
        let (run, _) = inner
            .apply_retrying(run, None, &confirmation.by, &event)
            .await?;
        Ok(run)
    }

    /// The run as last committed.
    ///
    /// # Errors
    /// `NotFound` for an unknown run.
    pub async fn status(&self, run: RunId) -> Result<Run> {
        self.inner.load(run).await
    }

    /// Subscribes to run updates (every committed transition).
    pub fn subscribe(&self) -> broadcast::Receiver<RunUpdate> {
        self.inner.updates.subscribe()
    }

    /// Subscribes to what the engine does on its own (held batches, returns, parked people,
    /// failed polls); each is audited too.
    pub fn events(&self) -> broadcast::Receiver<EngineEvent> {
        self.inner.events.subscribe()
    }

    /// Claims and processes due tasks, up to `max_in_flight` at a time, until none is due
    /// right now and none is in flight. Returns how many claims were processed.
    ///
    /// Tasks run as tasks of their own (on every runtime thread), and the engine claims more
    /// as soon as half of its slots are free, without waiting for a whole batch to finish.
    ///
    /// # Errors
    /// A failed claim, once the tasks already claimed finished.
    pub async fn run_due(&self) -> Result<usize> {
        worker::run_due(&self.inner).await
    }

    /// Starts background work until shut down: workers that claim and process due tasks, one
    /// loop per source of truth polling it at its interval, and with notifiers, their
    /// background work ([`crate::Notifier::start`]) and the overdue check
    /// ([`EngineBuilder::overdue_after`]).
    pub fn start(&self) -> WorkerHandle {
        self.inner.sinks.start();
        for n in &self.inner.notifiers {
            n.start();
        }
        if let Some(c) = &self.inner.checkpoints {
            c.start();
        }
        let (stop, rx) = tokio::sync::watch::channel(false);
        let mut tasks = vec![tokio::spawn(worker::run_loop(
            self.inner.clone(),
            rx.clone(),
        ))];
        if !self.inner.notifiers.is_empty() {
            tasks.push(tokio::spawn(notify::overdue_loop(
                self.inner.clone(),
                self.inner.overdue,
                rx.clone(),
            )));
        }
        if let Some(every) = self.inner.retention.every {
            tasks.push(tokio::spawn(retention::retention_loop(
                self.inner.clone(),
                every,
                rx.clone(),
            )));
        }
        for w in &self.inner.sources {
            tasks.push(tokio::spawn(watch::watch_loop(
                self.clone(),
                w.clone(),
                rx.clone(),
            )));
        }
        WorkerHandle {
            stop,
            tasks,
            checkpoints: self.inner.checkpoints.as_ref().map(|c| c.writer()),
        }
    }

    /// Signs the audit chain's head as this engine knows it (the last event it committed)
    /// and writes the checkpoint to the sink now, without waiting for the next trigger: the
    /// checkpoint written, or `None` when the head did not move since the last one.
    ///
    /// # Errors
    /// `Config` when the engine has no checkpoints ([`EngineBuilder::with_checkpoints`]); the
    /// sink's error when it fails (the next trigger tries again).
    pub async fn checkpoint(&self) -> Result<Option<crate::checkpoint::Checkpoint>> {
        match &self.inner.checkpoints {
            Some(c) => c.writer().write(false).await,
            None => Err(Error::config(
                "checkpoints",
                "this engine writes no checkpoints: configure them with \
                 EngineBuilder::with_checkpoints",
            )),
        }
    }

    /// Waits until every audit sink took every event this engine committed so far.
    ///
    /// Sinks are fed off the commit path, one ordered pump per sink: a host that reads a
    /// sink's output right after an operation calls this first. A sink that keeps failing
    /// keeps this waiting (the events stay in the store): bound it with a timeout.
    pub async fn flush_audit_sinks(&self) {
        self.inner.sinks.flush().await;
    }

    /// Waits until the run is terminal.
    ///
    /// # Errors
    /// `NotFound` for an unknown run.
    pub async fn wait(&self, run: RunId) -> Result<Run> {
        self.wait_for(run, |r| r.state.is_terminal()).await
    }

    /// Waits until `done(run)` holds, re-reading at each update and at least every idle poll.
    ///
    /// # Errors
    /// `NotFound` for an unknown run.
    pub async fn wait_for(&self, run: RunId, done: impl Fn(&Run) -> bool) -> Result<Run> {
        let mut rx = self.subscribe();
        loop {
            let r = self.status(run).await?;
            if done(&r) {
                return Ok(r);
            }
            let _ = tokio::time::timeout(self.inner.idle_poll, rx.recv()).await;
        }
    }

    /// Cancels a run: no task starts any more; running tasks finish and are recorded.
    ///
    /// # Errors
    /// `NotFound`; `Conflict` if it has already ended.
    pub async fn cancel(&self, run: RunId, by: &str) -> Result<Run> {
        self.inner
            .apply_retrying(run, None, by, &Event::Cancel { by: by.to_owned() })
            .await
            .map(|(r, _)| r)
    }

    /// Tells the engine a delegation's ticket changed (a verified Jira webhook, an email link
    /// clicked), so its task is polled now instead of at its next poll interval.
    ///
    /// # Behavior
    /// Finds the open run whose delegated task holds ticket `key` opened through `via`, makes
    /// that task due now and wakes the workers; the poll then records whatever changed (done,
    /// assignee) through the usual path, audited. Nothing else changes. Returns the run and
    /// task, or `None` when no open delegation has that ticket (e.g. a replayed webhook for a
    /// finished run). Cost grows with the number of open runs.
    ///
    /// # Errors
    /// Store errors.
    pub async fn delegation_changed(
        &self,
        via: DelegateVia,
        key: &str,
    ) -> Result<Option<(RunId, TaskId)>> {
        let inner = &self.inner;
        let open = inner
            .store
            .list_runs(RunQuery {
                open_only: true,
                ..RunQuery::default()
            })
            .await?;
        for summary in open {
            for _ in 0..16 {
                let Some(mut run) = inner.store.load_run(summary.id).await? else {
                    break;
                };
                let Some(task) = run.tasks.iter_mut().find(|t| {
                    matches!(&t.kind, TaskKind::Delegation { via: v } if *v == via)
                        && matches!(&t.state, TaskState::Delegated { ticket } if ticket.key == key)
                }) else {
                    break;
                };
                let task_id = task.id;
                task.due_at = Some(inner.clock.now());
                match inner
                    .store
                    .commit(Commit::new(run, vec![task_id], Vec::new()))
                    .await
                {
                    Ok(_) => {
                        inner.wake.notify_waiters();
                        return Ok(Some((summary.id, task_id)));
                    }
                    Err(e) if e.kind() == ErrorKind::Conflict => continue,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(None)
    }
}

impl EngineShared {
    /// When the person already has an open run: audits the trigger as suppressed and returns
    /// the error the submit answers with ("still open; nothing new was started").
    async fn suppress_if_open(&self, run: &Run) -> Result<Option<Error>> {
        let open = self
            .store
            .list_runs(RunQuery {
                person: Some(run.person.id.clone()),
                open_only: true,
                ..RunQuery::default()
            })
            .await?;
        let Some(existing) = open.first() else {
            return Ok(None);
        };
        let event = AuditEvent::new(
            self.clock.now(),
            run.initiator.actor(),
            AuditKind::Suppressed {
                person: run.person.id.clone(),
                open_run: existing.id,
                trigger: format!("{:?}", run.initiator),
            },
        );
        self.append_audit(event).await?;
        Ok(Some(
            Error::new(
                ErrorKind::Conflict,
                format!(
                    "run {} for {} is still open; nothing new was started",
                    existing.id, run.person.email
                ),
            )
            .fatal()
            .with_context("open_run", existing.id),
        ))
    }

    pub(crate) async fn load(&self, run: RunId) -> Result<Run> {
        self.store
            .load_run(run)
            .await?
            .ok_or_else(|| Error::not_found(format!("no run {run}")))
    }

    /// Tells the audit sinks' pumps the store committed `events`; the pumps deliver them (see
    /// [`sinks`]). Never waits for a sink.
    pub(crate) async fn to_sinks(&self, events: &[AuditEvent]) {
        self.sinks.committed(events);
        if let Some(c) = &self.checkpoints {
            c.committed(events);
        }
    }

    /// Appends one audit event outside a run's commit and tells the sinks' pumps, holding the
    /// pumps' write ticket from before the store call (see [`sinks::SinkPumps::writing`]).
    pub(crate) async fn append_audit(&self, event: AuditEvent) -> Result<()> {
        let _writing = self.sinks.writing();
        let sealed = self.store.append_audit(vec![event]).await?;
        self.to_sinks(&sealed).await;
        Ok(())
    }

    /// Sends an [`EngineEvent`] to subscribers (none listening is fine).
    pub(crate) fn emit(&self, event: EngineEvent) {
        let _ = self.events.send(event);
    }

    pub(crate) fn publish(&self, run: &Run, task: Option<TaskId>, at: DateTime<Utc>) {
        let t = task.and_then(|id| run.task(id));
        let _ = self.updates.send(RunUpdate {
            run: run.id,
            task,
            label: t.map(|t| t.label()),
            task_state: t.map(|t| t.state.clone()),
            run_state: run.state,
            at,
        });
    }
}

#[cfg(test)]
mod tests;
