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
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, OwnedSemaphorePermit, broadcast};

mod clock;
mod discovery;
mod limits;
mod plan;
mod sinks;
mod slots;
mod watch;
mod worker;

pub use clock::{Clock, GovernorClock, TokioClock};
pub use discovery::{ConnectorSync, SyncReport};
pub use limits::Limits;
pub use plan::{AppPlan, Confirmation, Plan, RunRequest, plan_digest};
pub use watch::{EngineEvent, Hold, LifecycleRules, SOURCE_APP_PREFIX, WatchReport, source_app};

use slots::{Cached, Epochs, RunSlot, RunSlots, SlotGuard};

use crate::audit::{AuditEvent, AuditKind, AuditSink};
use crate::connector::{Connector, Snapshot};
use crate::delegate::Delegate;
use crate::error::{Error, ErrorKind, ErrorRecord, Result};
use crate::machine::{self, Command, Event};
use crate::model::AppId;
use crate::policy::Policy;
use crate::run::{
    DelegateVia, KeptTask, Outcome, RestoreLease, RetryPolicy, Run, RunId, RunState, TaskId,
    TaskKind, TaskState,
};
use crate::store::{Commit, Lease, LeaseConflict, RunQuery, Store};

/// Exponential backoff with jitter: attempt `n` waits a random time in
/// `[d/2, d]` with `d = min(cap, base * 2^(n-1))`. The machine waits the longer of this and the
/// vendor's hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// First delay.
    pub base: Duration,
    /// Largest delay.
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// The delay for an attempt (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let d = exp.min(self.cap);
        let half = d / 2;
        half + d.saturating_sub(half).mul_f64(rand::random::<f64>())
    }
}

/// A change a host can draw progress from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunUpdate {
    /// The run.
    pub run: RunId,
    /// The task, if the change was a task's.
    pub task: Option<TaskId>,
    /// The task's label (`okta.suspend`).
    pub label: Option<String>,
    /// The task's new state.
    pub task_state: Option<TaskState>,
    /// The run's state after the change.
    pub run_state: RunState,
    /// When.
    pub at: DateTime<Utc>,
}

/// Per-app timing of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunMetrics {
    /// From creation to the last task's end.
    pub offboarding_time: Option<Duration>,
    /// From the effective time to the end of the last access-removing action of the first
    /// stage (delegations excluded).
    pub time_to_revoke: Option<Duration>,
    /// Per app, from its first task's start to its last task's end.
    pub per_app: BTreeMap<AppId, Duration>,
    /// Per completed delegation task: from opening the ticket to its "done" (the human's
    /// turnaround).
    pub delegation_turnaround: BTreeMap<TaskId, Duration>,
}

/// One app's verification result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppVerification {
    /// The app.
    pub app: AppId,
    /// Whether no access remains (`None`: could not be checked).
    pub revoked: Option<bool>,
    /// Access still found.
    pub remaining: Vec<String>,
    /// Why it could not be checked.
    pub error: Option<String>,
}

/// What a verification pass found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerificationReport {
    /// The run.
    pub run: RunId,
    /// When.
    pub at: DateTime<Utc>,
    /// Per app.
    pub apps: Vec<AppVerification>,
}

impl VerificationReport {
    /// Checked accounts with no access left, over checked accounts (1.0 when none checked).
    pub fn accuracy(&self) -> f64 {
        let checked: Vec<bool> = self.apps.iter().filter_map(|a| a.revoked).collect();
        if checked.is_empty() {
            return 1.0;
        }
        checked.iter().filter(|r| **r).count() as f64 / checked.len() as f64
    }

    /// Whether every checked account is revoked and none was uncheckable.
    pub fn all_revoked(&self) -> bool {
        self.apps.iter().all(|a| a.revoked == Some(true))
    }

    /// The apps that could not be checked, each with why (outside [`Self::accuracy`]).
    pub fn unchecked(&self) -> Vec<(&AppId, &str)> {
        self.apps
            .iter()
            .filter(|a| a.revoked.is_none())
            .map(|a| (&a.app, a.error.as_deref().unwrap_or("not checked")))
            .collect()
    }
}

/// What a rollback did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackReport {
    /// Tasks undone (or marked undone: they changed nothing), in the order undone.
    pub restored: Vec<TaskId>,
    /// Tasks whose restore failed.
    pub failed: Vec<(TaskId, ErrorRecord)>,
    /// Tasks not restored because restoring a task that depended on them (directly or not)
    /// failed, each with that task: e.g. an account is not re-enabled while its groups are not
    /// back. A later rollback takes them.
    #[serde(default)]
    pub kept: Vec<KeptTask>,
    /// The run's state afterwards.
    pub state: RunState,
}

#[derive(Debug)]
pub(crate) struct ConnectorEntry {
    pub(crate) connector: Arc<dyn Connector>,
    pub(crate) limiter: limits::Limiter,
}

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) connectors: BTreeMap<AppId, ConnectorEntry>,
    pub(crate) delegates: BTreeMap<DelegateVia, Arc<dyn Delegate>>,
    pub(crate) policy: Policy,
    /// [`Policy::fingerprint`] of `policy`.
    pub(crate) policy_fingerprint: String,
    pub(crate) sinks: sinks::SinkPumps,
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

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("worker_id", &self.worker_id)
            .field("store", &self.store)
            .field("connectors", &self.connectors.keys().collect::<Vec<_>>())
            .field("delegates", &self.delegates.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Builds an [`Engine`].
#[derive(Debug)]
pub struct EngineBuilder {
    store: Option<Arc<dyn Store>>,
    connectors: Vec<(Arc<dyn Connector>, Limits)>,
    delegates: Vec<Arc<dyn Delegate>>,
    policy: Policy,
    sinks: Vec<Arc<dyn AuditSink>>,
    clock: Option<Arc<dyn Clock>>,
    retry: RetryPolicy,
    backoff: Backoff,
    delegation_poll: Duration,
    lease_for: Duration,
    idle_poll: Duration,
    max_in_flight: usize,
    worker_id: Option<String>,
    sources: Vec<watch::WatchedSource>,
    lifecycle: LifecycleRules,
}

impl EngineBuilder {
    /// Adds a source of truth, polled every `every` by [`Engine::start`]'s workers (or on demand
    /// with [`Engine::poll_sources`]).
    pub fn source(
        mut self,
        source: Arc<dyn crate::source::SourceOfTruth>,
        every: Duration,
    ) -> Self {
        self.sources.push(watch::WatchedSource { source, every });
        self
    }

    /// Sets the lifecycle rules for automatic triggers (domains, debounce, confirmation,
    /// mass-departure limits; a policy's `[departures]` table overrides the latter).
    pub fn lifecycle(mut self, rules: LifecycleRules) -> Self {
        self.lifecycle = rules;
        self
    }

    /// Sets the store (required).
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Adds a connector with default limits.
    pub fn connector(self, connector: Arc<dyn Connector>) -> Self {
        self.connector_with_limits(connector, Limits::default())
    }

    /// Adds a connector with limits (one limiter per connector instance, shared by every
    /// worker of this engine).
    pub fn connector_with_limits(mut self, connector: Arc<dyn Connector>, limits: Limits) -> Self {
        self.connectors.push((connector, limits));
        self
    }

    /// Adds a delegate.
    pub fn delegate(mut self, delegate: Arc<dyn Delegate>) -> Self {
        self.delegates.push(delegate);
        self
    }

    /// Sets the policy.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Adds an audit sink that receives every committed event.
    pub fn audit_sink(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// Sets the clock (default [`TokioClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Sets the retry budget.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the backoff.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets how often open delegations are polled (default 60 s).
    pub fn delegation_poll(mut self, every: Duration) -> Self {
        self.delegation_poll = every;
        self
    }

    /// Sets the lease length (default 5 min); must be at least twice every connector's
    /// timeout plus [`LEASE_MARGIN`]. Workers renew it every third of its length while a
    /// connector call is in flight.
    pub fn lease_for(mut self, lease: Duration) -> Self {
        self.lease_for = lease;
        self
    }

    /// Sets how often an idle worker looks for due tasks (default 1 s).
    pub fn idle_poll(mut self, every: Duration) -> Self {
        self.idle_poll = every;
        self
    }

    /// Sets how many tasks one engine runs at once (default 256). Each connector's own
    /// [`Limits::concurrency`] still caps the calls to it; tasks in flight also wait on store
    /// commits, and more of them share each group commit (fewer fsyncs per write).
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// Names this engine's worker in leases and audit events (default random).
    pub fn worker_id(mut self, id: impl Into<String>) -> Self {
        self.worker_id = Some(id.into());
        self
    }

    /// Validates and builds.
    ///
    /// # Errors
    /// `Config` when the store is missing, two connectors claim one app, two delegates share a
    /// kind, the lease is shorter than twice a connector's timeout plus [`LEASE_MARGIN`]
    /// (`connectors.<app>.timeout`), the policy names an action a
    /// connector does not offer or a delegate (`unknown_apps`, `via`) that is not registered,
    /// or the policy offboards nothing (no app with actions or a delegate, and `unknown_apps`
    /// ignores).
    pub fn build(self) -> Result<Engine> {
        let store = self
            .store
            .ok_or_else(|| Error::config("store", "an engine needs a store"))?;
        let mut connectors = BTreeMap::new();
        for (c, limits) in self.connectors {
            let app = c.capabilities().app.clone();
            // A start may call the connector twice (snapshot, then the action), each up to
            // the timeout: one lease covers both with room for the commits between them.
            let needed = limits
                .timeout
                .saturating_mul(2)
                .saturating_add(LEASE_MARGIN);
            if self.lease_for < needed {
                return Err(Error::config(
                    format!("connectors.{app}.timeout"),
                    format!(
                        "the lease {:?} must be at least twice the timeout {:?} plus {:?} \
                         ({needed:?}): shorten the timeout or lengthen lease_for",
                        self.lease_for, limits.timeout, LEASE_MARGIN
                    ),
                ));
            }
            if connectors
                .insert(
                    app.clone(),
                    ConnectorEntry {
                        connector: c,
                        limiter: limits::Limiter::new(limits),
                    },
                )
                .is_some()
            {
                return Err(Error::config(
                    format!("connectors.{app}"),
                    "two connectors for one app",
                ));
            }
        }
        let mut delegates = BTreeMap::new();
        for d in self.delegates {
            let via = d.via();
            if delegates.insert(via.clone(), d).is_some() {
                return Err(Error::config(
                    format!("delegates.{}", via.as_str()),
                    "two delegates of one kind",
                ));
            }
        }
        let delegate_missing = |field: String, via: &DelegateVia| {
            Error::config(
                field,
                format!(
                    "the policy delegates via {}, but no {} delegate is registered",
                    via.as_str(),
                    via.as_str()
                ),
            )
        };
        if let crate::policy::Method::Delegate { via } = &self.policy.unknown_apps
            && !delegates.contains_key(via)
        {
            return Err(delegate_missing("unknown_apps".into(), via));
        }
        let acts = |m: &crate::policy::Method| match m {
            crate::policy::Method::Automatic { actions } => !actions.is_empty(),
            crate::policy::Method::Delegate { .. } => true,
            crate::policy::Method::Ignore => false,
        };
        if !acts(&self.policy.unknown_apps) && !self.policy.apps.values().any(|p| acts(&p.method)) {
            return Err(Error::config(
                "apps",
                "the policy offboards nothing: no app has actions or a delegate and unknown_apps \
                 is \"ignore\", so every run would complete with nothing done",
            ));
        }
        for (app, p) in &self.policy.apps {
            if let crate::policy::Method::Delegate { via } = &p.method
                && !delegates.contains_key(via)
            {
                return Err(delegate_missing(format!("apps.{app}.via"), via));
            }
            if let crate::policy::Method::Automatic { actions } = &p.method {
                let Some(entry) = connectors.get(app) else {
                    return Err(Error::config(
                        format!("apps.{app}"),
                        format!("policy line {}: no {app} connector is configured", p.line),
                    ));
                };
                for a in actions {
                    let caps = entry.connector.capabilities();
                    if caps.action(&a.action.name).is_none() {
                        let why = caps
                            .unavailable_reason(&a.action.name)
                            .map(|r| format!(": {r}"))
                            .unwrap_or_default();
                        return Err(Error::config(
                            format!("apps.{app}.actions"),
                            format!(
                                "policy line {}: the {app} connector does not offer {}{why}",
                                a.line, a.action.name
                            ),
                        ));
                    }
                }
            }
        }
        let (updates, _) = broadcast::channel(1024);
        let pumps = sinks::SinkPumps::new(self.sinks, store.clone());
        let (events, _) = broadcast::channel(256);
        let mut lifecycle = self.lifecycle;
        if let Some(d) = self.policy.departures {
            lifecycle.departures = d;
        }
        Ok(Engine {
            inner: Arc::new(Inner {
                store,
                connectors,
                delegates,
                policy_fingerprint: self.policy.fingerprint(),
                policy: self.policy,
                sinks: pumps,
                clock: self.clock.unwrap_or_else(|| Arc::new(TokioClock::new())),
                retry: self.retry,
                backoff: self.backoff,
                delegation_poll: self.delegation_poll,
                lease_for: self.lease_for,
                idle_poll: self.idle_poll,
                max_in_flight: self.max_in_flight,
                worker_id: self.worker_id.unwrap_or_else(|| {
                    format!("worker-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
                }),
                updates,
                events,
                wake: Notify::new(),
                sources: self.sources,
                lifecycle,
                slots: RunSlots::new(self.max_in_flight.saturating_mul(KEPT_PER_SLOT)),
                epochs: Epochs::default(),
            }),
        })
    }
}

/// What a lease must cover beyond twice the longest connector timeout (see
/// [`EngineBuilder::lease_for`]): the store's commits between a task's snapshot and its action.
pub const LEASE_MARGIN: Duration = Duration::from_secs(1);

/// How many times a change left in its run's slot yields to siblings still on their way before
/// taking the slot's lock (see [`Inner::apply_with`]).
const SIBLING_TURNS: usize = 3;

/// Runs kept after their last task left, per task in flight (see [`slots`]): enough for the
/// runs of the tasks in flight and the waves they make due, a few KiB each.
const KEPT_PER_SLOT: usize = 4;

/// The offboarding engine. Cheap to clone; clones share everything.
#[derive(Debug, Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

/// Background workers started by [`Engine::start`]; stopped on [`WorkerHandle::shutdown`] or
/// drop.
#[derive(Debug)]
pub struct WorkerHandle {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl WorkerHandle {
    /// Stops claiming and polling sources, waits for in-flight tasks to finish.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for t in std::mem::take(&mut self.tasks) {
            let _ = t.await;
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
    /// A builder with defaults: 6 attempts within an hour, 1 s–5 min backoff, 60 s delegation
    /// polls, 5 min leases, 256 tasks in flight.
    pub fn builder() -> EngineBuilder {
        EngineBuilder {
            store: None,
            connectors: Vec::new(),
            delegates: Vec::new(),
            policy: Policy::default(),
            sinks: Vec::new(),
            clock: None,
            retry: RetryPolicy::default(),
            backoff: Backoff::default(),
            delegation_poll: Duration::from_secs(60),
            lease_for: Duration::from_secs(300),
            idle_poll: Duration::from_secs(1),
            max_in_flight: 256,
            worker_id: None,
            sources: Vec::new(),
            lifecycle: LifecycleRules::default(),
        }
    }

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
    /// they are held ([`TaskState::Held`], run state [`RunState::AwaitingConfirmation`] once
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
        let mut run = plan.run;
        if inner.policy.is_protected(&run.person) {
            return Err(Error::new(
                ErrorKind::Protected,
                format!(
                    "{} is a protected account and is never offboarded",
                    run.person.email
                ),
            ));
        }
        inner.recheck(&run)?;
        let mut check = run.clone();
        check.plan_digest = String::new();
        let digest = run.confirmation_digest();
        if plan_digest(&check) != run.plan_digest || digest != plan.digest {
            return Err(Error::invalid_input(
                "the plan was changed after planning; plan again",
            ));
        }
        if let Some(c) = &confirmation
            && run.confirmable().next().is_some()
        {
            inner.approve(&run, c, &digest).await?;
            run.confirmed_by = Some(c.by.clone());
        }
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

    /// Starts background work until shut down: workers that claim and process due tasks, and
    /// one loop per source of truth polling it at its interval.
    pub fn start(&self) -> WorkerHandle {
        self.inner.sinks.start();
        let (stop, rx) = tokio::sync::watch::channel(false);
        let mut tasks = vec![tokio::spawn(worker::run_loop(
            self.inner.clone(),
            rx.clone(),
        ))];
        for w in &self.inner.sources {
            tasks.push(tokio::spawn(watch::watch_loop(
                self.clone(),
                w.clone(),
                rx.clone(),
            )));
        }
        WorkerHandle { stop, tasks }
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

    /// Undoes the run's reversible actions from their snapshots, newest first, as `by` asks.
    ///
    /// # Behavior
    /// Only for ended runs. Takes the reversible tasks that completed, and those that failed
    /// (a failure after the snapshot may have changed the account; one without a snapshot
    /// changed nothing), in reverse order of completion, so a task is restored before the
    /// tasks it depended on ([`Run::restorable`]). Actions that changed nothing
    /// (`already_done`, `not_found`, failed before their snapshot) are marked rolled back
    /// without a call. When a task's restore fails, the tasks it depended on (transitively)
    /// are kept as they are ([`RollbackReport::kept`]): an account is not re-enabled while its
    /// groups are not back. Calling it again after a partial failure continues.
    ///
    /// The rollback holds the run's restore lease ([`Run::restore_lease`], taken with its
    /// request and renewed before and after each restore, through the store's versioned
    /// commits): a second rollback of the run, by this engine or another one sharing the store,
    /// is refused while the first runs, so each task is restored at most once. A rollback
    /// whose engine died is taken over once its lease (the engine's lease length) expired.
    ///
    /// A run with critical tasks ([`Run::rollback_needs_confirmation`]) rolls back only with
    /// a `confirmation` quoting its [`Run::rollback_digest`] (what the rollback would restore),
    /// by a confirmer the policy's approvals allow (four eyes: someone else than `by`).
    /// Other runs ignore `confirmation`.
    ///
    /// Every step is audited: `rollback_requested`, then per task `restore_started` and
    /// `task_rolled_back` or `restore_failed`, then `rollback_ended` (naming the kept tasks).
    ///
    /// # Errors
    /// `NotFound`; `Conflict` if the run has not ended, has been rolled back, or another
    /// rollback holds it (or took it over meanwhile: this one stops); `ConfirmationRequired`
    /// when a confirmation is needed and missing, quotes another digest or is refused by the
    /// approvals (audited as `confirmation_refused`; nothing changes).
    pub async fn rollback(
        &self,
        run: RunId,
        by: &str,
        confirmation: Option<Confirmation>,
    ) -> Result<RollbackReport> {
        let inner = &self.inner;
        let current = inner.load(run).await?;
        // A run that cannot roll back (not ended, rolled back) is refused by the machine below,
        // with nothing to confirm.
        let can_roll_back = current.state.is_terminal() && current.state != RunState::RolledBack;
        if can_roll_back && current.rollback_needs_confirmation() {
            inner
                .approve_rollback(&current, by, confirmation.as_ref())
                .await?;
        }
        let token = uuid::Uuid::new_v4();
        let requested = Event::RollbackRequested {
            by: by.to_owned(),
            lease: Some(inner.restore_lease(token)),
        };
        let (stored, commands) = inner.apply_retrying(run, None, by, &requested).await?;
        let mut report = RollbackReport {
            restored: Vec::new(),
            failed: Vec::new(),
            kept: Vec::new(),
            state: RunState::Running,
        };
        // Tasks a failed restore's task depended on, directly or not, with that task.
        let mut keep = BTreeMap::new();
        for cmd in commands {
            let Command::Restore(task_id) = cmd else {
                continue;
            };
            if let Some(&because) = keep.get(&task_id) {
                report.kept.push(KeptTask {
                    task: task_id,
                    because,
                });
                continue;
            }
            match inner.restore(run, task_id, by, token).await? {
                Ok(()) => report.restored.push(task_id),
                Err(e) => {
                    report.failed.push((task_id, e.record()));
                    let mut stack = vec![task_id];
                    while let Some(t) = stack.pop() {
                        let deps = stored.task(t).map(|t| t.depends_on.clone());
                        for d in deps.unwrap_or_default() {
                            if let std::collections::btree_map::Entry::Vacant(v) = keep.entry(d) {
                                v.insert(task_id);
                                stack.push(d);
                            }
                        }
                    }
                }
            }
        }
        let ended = Event::RollbackEnded {
            token: Some(token),
            kept: report.kept.clone(),
        };
        let (ended, _) = inner.apply_retrying(run, None, by, &ended).await?;
        report.state = ended.state;
        Ok(report)
    }

    /// Re-reads every system the run touched and reports access left per app.
    ///
    /// # Behavior
    /// Reads only; records a `verified` audit event with the result. For every app of the run
    /// (ignored apps aside) the person is looked up again exactly as planning does (the known
    /// account id, then the person's addresses), so an account created after planning is
    /// found and checked. No account is `revoked: true`; an ambiguous or failed lookup, a
    /// failed check, or an app no connector can verify is `revoked: None` with the reason,
    /// never `true`. [`VerificationReport::accuracy`] counts only what was checked and
    /// [`VerificationReport::unchecked`] lists the rest.
    ///
    /// # Errors
    /// `NotFound` for an unknown run; store errors.
    pub async fn verify(&self, run: RunId) -> Result<VerificationReport> {
        let inner = &self.inner;
        let r = inner.load(run).await?;
        let mut apps: BTreeMap<AppId, AppVerification> = BTreeMap::new();
        for t in &r.tasks {
            if apps.contains_key(&t.app) || matches!(t.kind, TaskKind::Ignore) {
                continue;
            }
            let unknown = |error: String| AppVerification {
                app: t.app.clone(),
                revoked: None,
                remaining: Vec::new(),
                error: Some(error),
            };
            let v = match inner.connectors.get(&t.app) {
                Some(conn) if conn.connector.capabilities().verify => {
                    let known_id = r
                        .tasks
                        .iter()
                        .filter(|x| x.app == t.app)
                        .filter_map(|x| x.account.as_ref())
                        .map(|a| a.external_id.clone())
                        .find(|id| !id.is_empty());
                    match inner.lookup(conn, &r.person, known_id).await {
                        Ok(None) => AppVerification {
                            app: t.app.clone(),
                            revoked: Some(true),
                            remaining: Vec::new(),
                            error: None,
                        },
                        Ok(Some(account)) => {
                            let _permit = conn.limiter.acquire().await;
                            match conn
                                .limiter
                                .timed("verify_revoked", conn.connector.verify_revoked(&account))
                                .await
                            {
                                Ok(v) => AppVerification {
                                    app: t.app.clone(),
                                    revoked: Some(v.revoked),
                                    remaining: v.remaining,
                                    error: None,
                                },
                                Err(e) => unknown(e.to_string()),
                            }
                        }
                        Err(e) => unknown(format!("lookup failed: {e}")),
                    }
                }
                Some(_) => unknown(format!("the {} connector cannot verify", t.app)),
                None => unknown("no connector can verify this app".into()),
            };
            apps.insert(t.app.clone(), v);
        }
        let report = VerificationReport {
            run,
            at: inner.clock.now(),
            apps: apps.into_values().collect(),
        };
        let remaining = report
            .apps
            .iter()
            .flat_map(|a| a.remaining.iter().map(move |r| format!("{}: {r}", a.app)))
            .collect();
        let event = AuditEvent::new(
            report.at,
            inner.worker_id.clone(),
            AuditKind::Verified {
                checked: report.apps.iter().filter(|a| a.revoked.is_some()).count() as u32,
                revoked: report
                    .apps
                    .iter()
                    .filter(|a| a.revoked == Some(true))
                    .count() as u32,
                remaining,
            },
        )
        .with_run(run);
        inner.append_audit(event).await?;
        Ok(report)
    }

    /// Timing of a run.
    pub fn metrics(run: &Run) -> RunMetrics {
        let secs = |a: DateTime<Utc>, b: DateTime<Utc>| (b - a).to_std().ok();
        let last_end = run.tasks.iter().filter_map(|t| t.finished_at).max();
        let first_stage = run.tasks.iter().map(|t| t.not_before).min();
        let revoke_end = run
            .tasks
            .iter()
            .filter(|t| {
                Some(t.not_before) == first_stage && matches!(t.kind, TaskKind::Action { .. })
            })
            .filter(|t| {
                matches!(
                    t.state,
                    TaskState::Completed {
                        outcome: Outcome::Done | Outcome::AlreadyDone,
                        ..
                    }
                )
            })
            .filter_map(|t| t.finished_at)
            .max();
        let mut per_app = BTreeMap::new();
        for app in run.tasks.iter().map(|t| &t.app) {
            let ts = run.tasks.iter().filter(|t| &t.app == app);
            let start = ts.clone().filter_map(|t| t.started_at).min();
            let end = ts.filter_map(|t| t.finished_at).max();
            if let (Some(s), Some(e)) = (start, end) {
                per_app.insert(app.clone(), secs(s, e).unwrap_or_default());
            }
        }
        let delegation_turnaround = run
            .tasks
            .iter()
            .filter(|t| {
                matches!(t.kind, TaskKind::Delegation { .. })
                    && t.state.is_completed()
                    && t.attempts > 0
            })
            .filter_map(|t| Some((t.id, secs(t.started_at?, t.finished_at?)?)))
            .collect();
        RunMetrics {
            delegation_turnaround,
            offboarding_time: run
                .finished_at
                .or(last_end)
                .and_then(|e| secs(run.created_at, e)),
            time_to_revoke: revoke_end.and_then(|e| secs(run.effective_at.max(run.created_at), e)),
            per_app,
        }
    }
}

impl Inner {
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

    /// [`Inner::apply_retrying`], starting from the run cached in `slot` (if any) instead of
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
    ) -> Applied {
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
            if !slot.others_underway() {
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
    /// due (see [`Inner::take_next`]): started in the same commit, under a lease the commit
    /// takes, so its worker runs it next without a claim or a start commit of its own.
    async fn commit_changes(
        &self,
        cached: &mut Option<Cached>,
        run_id: RunId,
        changes: Vec<Change>,
    ) -> Vec<Applied> {
        let mut outcomes: Vec<Option<Applied>> = changes.iter().map(|_| None).collect();
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
                                outcomes[i] = Some(Err(copy_error(&e)));
                            }
                            break;
                        }
                    }
                }
            };
            let mut run = Run::clone(&base.run);
            let now = self.clock.now();
            let mut events = Vec::new();
            let mut snapshots = Vec::new();
            let mut leases = Vec::new();
            // (change, its commands, its task)
            let mut applied: Vec<(usize, Vec<Command>, Option<TaskId>)> = Vec::new();
            for &i in &pending {
                let change = &changes[i];
                let at = change.started.as_ref().map_or(now, |s| s.at);
                // A refused event leaves the run as it was (the machine's contract), as the
                // changes before it made it.
                let commands = match machine::apply(&mut run, at, &change.event) {
                    Ok(commands) => commands,
                    Err(e) => {
                        outcomes[i] = Some(Err(machine_error(&run, e)));
                        continue;
                    }
                };
                let task_id = change.event.task();
                events.push(transition(&run, at, &change.actor, &change.event));
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
            if applied.is_empty() {
                // Nothing changed: the run stays as it was.
                *cached = Some(base);
                break;
            }
            // Tasks taken along, each by one change that may take one: started here with its
            // connector's permit (none free now: left for a claim), or, when its snapshot must
            // be stored before its start, only leased (its worker starts it as a claim would).
            let mut taken: BTreeMap<usize, (Lease, Option<OwnedSemaphorePermit>)> = BTreeMap::new();
            if may_take {
                let mut takers = applied
                    .iter()
                    .map(|(i, _, _)| *i)
                    .filter(|i| changes[*i].take_next)
                    .peekable();
                for (task, app, start) in self.take_next(&base.run, &run, now) {
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
                        if machine::apply(&mut run, now, &started).is_err() {
                            continue;
                        }
                        events.push(transition(&run, now, &self.worker_id, &started));
                        Some(permit)
                    } else {
                        None
                    };
                    taken.insert(i, (self.lease_to_take(run_id, task, now), permit));
                    takers.next();
                }
            }
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
                    *cached = Some(base.then(run.clone()));
                    self.to_sinks(&sealed).await;
                    drop(writing);
                    for (_, _, task_id) in &applied {
                        self.publish(&run, *task_id, now);
                    }
                    for (lease, _) in taken.values() {
                        self.publish(&run, Some(lease.task), now);
                    }
                    // Due tasks nobody holds yet: a worker claims them.
                    if run.tasks.iter().any(|t| {
                        t.due_at.is_some_and(|d| d <= now)
                            && !matches!(t.state, TaskState::Running { .. })
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
                        outcomes[i] = Some(Ok(Done {
                            run: run.clone(),
                            commands,
                            next,
                        }));
                    }
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
                                outcomes[*i] = Some(Err(copy_error(&e)));
                            }
                            break;
                        }
                    }
                }
                // The version moved (another engine committed): reload and apply again.
                Err(e) if e.kind() == ErrorKind::Conflict => {}
                Err(e) => {
                    for (i, _, _) in &applied {
                        outcomes[*i] = Some(Err(copy_error(&e)));
                    }
                    break;
                }
            }
        }
        outcomes
            .into_iter()
            .zip(&changes)
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

    /// The tasks a commit from `before` to `after` made due at `now` that its workers may take
    /// along (see [`Inner::commit_changes`]), in plan order: pending actions no longer waiting
    /// for a dependency, due now and not before, of an app whose connector offers the action;
    /// each with whether the commit may start it (`false` for a reversible action: its
    /// snapshot is taken and stored with its start, before it runs).
    fn take_next(
        &self,
        before: &Run,
        after: &Run,
        now: DateTime<Utc>,
    ) -> Vec<(TaskId, AppId, bool)> {
        if after.cancelled {
            return Vec::new();
        }
        after
            .tasks
            .iter()
            .zip(&before.tasks)
            .filter(|(t, was)| {
                t.state == TaskState::Pending
                    && t.due_at.is_some_and(|d| d <= now)
                    && was.due_at.is_none_or(|d| d > now)
                    && t.account.is_some()
            })
            .filter(|(t, _)| match (&t.kind, self.connectors.get(&t.app)) {
                (TaskKind::Action { action }, Some(c)) => {
                    c.connector.capabilities().action(&action.name).is_some()
                }
                _ => false,
            })
            .map(|(t, _)| (t.id, t.app.clone(), !t.reversible))
            .collect()
    }

    /// This worker's lease on `task`, taken with a commit at `now` (see [`Commit::claims`]).
    fn lease_to_take(&self, run: RunId, task: TaskId, now: DateTime<Utc>) -> Lease {
        Lease {
            run,
            task,
            worker: self.worker_id.clone(),
            token: uuid::Uuid::new_v4(),
            until: later(now, self.lease_for),
            // Not read by the store (it counts the claim); a task this commit made due holds
            // no lease, so for the engine this is its first.
            claims: 1,
            run_version: None,
        }
    }

    /// Whether `confirmation` may release `run`'s critical tasks: it quotes `digest` and the
    /// policy's approvals allow its confirmer. A refusal is audited (`confirmation_refused`,
    /// with who, in which role, and why) before it is returned as `ConfirmationRequired`.
    pub(crate) async fn approve(
        &self,
        run: &Run,
        confirmation: &Confirmation,
        digest: &str,
    ) -> Result<()> {
        self.approve_as(run, &run.initiator.actor(), confirmation, digest, "release")
            .await
    }

    /// [`Inner::approve`] of a confirmation `for` a purpose (`release`, `rollback`) asked by
    /// `initiator` (whom four eyes exclude).
    async fn approve_as(
        &self,
        run: &Run,
        initiator: &str,
        confirmation: &Confirmation,
        digest: &str,
        purpose: &str,
    ) -> Result<()> {
        let why = if confirmation.digest != digest {
            Err(format!(
                "the confirmation quotes digest {}, not the digest of what it would release \
                 ({digest}); review the current plan and confirm it",
                confirmation.digest
            ))
        } else {
            self.policy
                .approvals
                .check(initiator, &confirmation.by, confirmation.role.as_deref())
        };
        let Err(why) = why else {
            return Ok(());
        };
        let data = serde_json::json!({
            "run": run.id,
            "person": run.person.id,
            "by": confirmation.by,
            "role": confirmation.role,
            "digest": confirmation.digest,
            "for": purpose,
            "reason": why,
        });
        Err(self
            .refuse(run, &confirmation.by, data, why, digest)
            .await?)
    }

    /// Audits a refused confirmation (`confirmation_refused` with `data`, by `actor`) and
    /// returns the `ConfirmationRequired` error saying `why`, naming the run and `digest`.
    async fn refuse(
        &self,
        run: &Run,
        actor: &str,
        data: serde_json::Value,
        why: String,
        digest: &str,
    ) -> Result<Error> {
        let event = AuditEvent::new(
            self.clock.now(),
            actor.to_owned(),
            AuditKind::Note {
                name: "confirmation_refused".into(),
                data,
            },
        );
        // A run not stored yet (refused at submission) has no trail of its own.
        let stored = run.state != RunState::Planned;
        let event = if stored {
            event.with_run(run.id)
        } else {
            event
        };
        self.append_audit(event).await?;
        Ok(Error::new(ErrorKind::ConfirmationRequired, why)
            .with_context("run", run.id)
            .with_context("digest", digest))
    }

    /// Whether `by` may roll back `run` (which has critical tasks) with `confirmation`: it
    /// quotes the run's [`Run::rollback_digest`] and the policy's approvals allow its confirmer
    /// (four eyes: not `by`). A missing or refused confirmation is audited
    /// (`confirmation_refused`, `for: rollback`) before it is returned as
    /// `ConfirmationRequired`, naming the digest to quote.
    async fn approve_rollback(
        &self,
        run: &Run,
        by: &str,
        confirmation: Option<&Confirmation>,
    ) -> Result<()> {
        let digest = run.rollback_digest();
        match confirmation {
            Some(c) => self.approve_as(run, by, c, &digest, "rollback").await,
            None => {
                let why = format!(
                    "run {} has critical tasks: rolling it back needs a confirmation quoting its \
                     rollback digest ({digest})",
                    run.id
                );
                let data = serde_json::json!({
                    "run": run.id,
                    "person": run.person.id,
                    "by": by,
                    "for": "rollback",
                    "reason": why,
                });
                Err(self.refuse(run, by, data, why, &digest).await?)
            }
        }
    }

    /// The restore lease of the rollback `token`, held by this engine from now for its lease
    /// length (taken, and renewed, with each event the rollback records).
    fn restore_lease(&self, token: uuid::Uuid) -> RestoreLease {
        RestoreLease {
            holder: self.worker_id.clone(),
            token,
            until: later(self.clock.now(), self.lease_for),
        }
    }

    /// Restores one task of the rollback `token` (holding its restore lease): records
    /// `restore_started`, calls the connector's restore from the task's snapshot, and records
    /// the result (`task_rolled_back` or `restore_failed`). A task that changed nothing is
    /// marked rolled back without a call. The outer error stops the rollback (its lease was lost, the store
    /// failed); the inner one is the failed restore, recorded.
    async fn restore(
        &self,
        run_id: RunId,
        task_id: TaskId,
        by: &str,
        token: uuid::Uuid,
    ) -> Result<Result<()>> {
        let run = self.load(run_id).await?;
        let task = run
            .task(task_id)
            .ok_or_else(|| Error::internal("restore of unknown task"))?;
        let snapshot = match &task.state {
            TaskState::Completed {
                outcome: Outcome::Done,
                ..
            } => Some(self.store.snapshot(task_id).await?.ok_or_else(|| {
                Error::not_found(format!("no snapshot was stored for {}", task.label()))
            })),
            // A failure after its snapshot may have changed the account; without one, its
            // action never ran.
            TaskState::Failed { .. } => self.store.snapshot(task_id).await?.map(Ok),
            // Nothing was changed by this task.
            _ => None,
        };
        let outcome = match snapshot {
            None => Ok(()),
            Some(snapshot) => {
                let conn = self.connectors.get(&task.app);
                match (snapshot, conn, &task.account) {
                    (Err(e), _, _) => Err(e),
                    (Ok(snapshot), Some(conn), Some(account)) => {
                        let _permit = conn.limiter.acquire().await;
                        // Recorded (and the lease renewed) once the call can be made at once.
                        let started = Event::RestoreStarted {
                            task: task_id,
                            lease: Some(self.restore_lease(token)),
                        };
                        self.apply_retrying(run_id, None, by, &started).await?;
                        conn.limiter
                            .timed("restore", conn.connector.restore(account, &snapshot))
                            .await
                            .map(|_| ())
                            .map_err(|e| {
                                e.with_context("app", &task.app).with_context("run", run_id)
                            })
                    }
                    _ => Err(Error::config(
                        format!("connectors.{}", task.app),
                        "no connector to restore with",
                    )),
                }
            }
        };
        let event = match &outcome {
            Ok(()) => Event::TaskRolledBack {
                task: task_id,
                lease: Some(self.restore_lease(token)),
            },
            Err(e) => Event::RestoreFailed {
                task: task_id,
                error: e.record(),
                lease: Some(self.restore_lease(token)),
            },
        };
        self.apply_retrying(run_id, None, by, &event).await?;
        Ok(outcome)
    }
}

/// A change to a run waiting to be committed (see [`Inner::apply_with`]): an event, who
/// caused it, the lease it is made under (and whether to release it) and, for a start, the
/// attempt it began.
pub(crate) struct Change {
    lease: Option<(Lease, bool)>,
    actor: String,
    event: Event,
    /// The event happened at its time (the attempt began before the snapshot was taken) and its
    /// snapshot (for the event's task) and audit event are stored in the same commit.
    started: Option<Started>,
    /// Whether its worker runs a task this change makes due next (see [`Done::next`]).
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
pub(crate) struct Done {
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
pub(crate) type Applied = Result<Done>;

/// `at` plus `d`, or the end of the calendar when that is beyond it.
pub(crate) fn later(at: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| at.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// A copy of `e` for another change of the same commit (its source is not copied).
fn copy_error(e: &Error) -> Error {
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

#[cfg(test)]
mod tests;
