//! [`EngineBuilder`]: how an [`Engine`] is put together, and its defaults.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, broadcast};

use super::slots::{Epochs, RunSlots};
use super::{
    Backoff, Clock, ConnectorEntry, Engine, EngineShared, LifecycleRules, Limits, TokioClock,
    checkpoints, limits, notify, retention, sinks, watch,
};
use crate::audit::AuditSink;
use crate::budget::RateBudget;
use crate::checkpoint::{CheckpointSigner, CheckpointSink};
use crate::connector::Connector;
use crate::delegate::Delegate;
use crate::error::{Error, Result};
use crate::model::AppId;
use crate::notify::Notifier;
use crate::policy::Policy;
use crate::run::{DelegateVia, RetryPolicy};
use crate::store::Store;

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
    checkpoints: Option<checkpoints::CheckpointConfig>,
    notifiers: Vec<Arc<dyn Notifier>>,
    overdue: notify::OverdueConfig,
    retention: retention::RetentionConfig,
    rate_budget: Option<Arc<dyn RateBudget>>,
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

    /// Makes every registered connector's and delegate's vendor requests draw from `budget`
    /// (each calls [`Connector::use_rate_budget`] at [`EngineBuilder::build`]). The engines of
    /// a fleet on one database pass the same shared budget (offboard-store's
    /// `PostgresRateBudget`), so together they spend each vendor's budget once. Default: each
    /// HTTP client's own in-memory budget.
    pub fn rate_budget(mut self, budget: Arc<dyn RateBudget>) -> Self {
        self.rate_budget = Some(budget);
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

    /// Adds a notifier, told about runs started, finished and failed and delegated tasks
    /// overdue (see [`crate::notify`]), from the durable audit trail, off the commit path: its
    /// position is kept in the store (cursor `notify:<name>`), so a restart resumes after the
    /// last notification it took, and a slow or failing notifier never slows a commit.
    /// [`Engine::flush_audit_sinks`] waits for notifiers too. [`Engine::build`](EngineBuilder::build)
    /// refuses two notifiers with one name.
    pub fn notifier(mut self, notifier: Arc<dyn Notifier>) -> Self {
        self.notifiers.push(notifier);
        self
    }

    /// When a delegated task is overdue: `after` past its due date (the task's stage time, as
    /// its delegate was told) and still delegated; the engine's workers look every
    /// `check_every` (defaults: 3 days, 10 minutes) and tell the notifiers once per task.
    pub fn overdue_after(mut self, after: Duration, check_every: Duration) -> Self {
        self.overdue = notify::OverdueConfig { after, check_every };
        self
    }

    /// Sets the retention policy (default: a 30-day rollback window), and how often the
    /// workers erase the snapshot payloads of runs past the window (`None`, the default: only
    /// when the host calls [`Engine::erase_expired_snapshots`]). [`Engine::erase_person`]
    /// refuses inside the window.
    pub fn retention(mut self, policy: crate::store::Retention, every: Option<Duration>) -> Self {
        self.retention = retention::RetentionConfig { policy, every };
        self
    }

    /// Signs the audit chain's head with `signer` and writes the checkpoint to `sink` (see
    /// [`crate::checkpoint`]) whenever `every_events` events were committed since the last
    /// checkpoint, or `every` passed on the engine's clock and the chain moved since.
    ///
    /// # Behavior
    /// Checkpoints are written off the commit path: a commit never waits for the sink, and a
    /// sink that fails is logged and tried again at the next trigger (with the head then).
    /// The head is the last event this engine's commits sealed (each store returns its
    /// sealed events; every event before it is committed too). [`super::WorkerHandle::shutdown`]
    /// and dropping the engine write a last checkpoint; [`Engine::checkpoint`] writes one on
    /// demand. [`Engine::build`](EngineBuilder::build) refuses `every_events` 0 or a zero
    /// `every`.
    pub fn with_checkpoints(
        mut self,
        signer: CheckpointSigner,
        sink: Arc<dyn CheckpointSink>,
        every_events: u64,
        every: Duration,
    ) -> Self {
        self.checkpoints = Some(checkpoints::CheckpointConfig {
            signer,
            sink,
            every_events,
            every,
        });
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
    /// or the policy offboards nothing (no app with actions or a delegate, no connector with
    /// default actions for an app the policy leaves out, and `unknown_apps` ignores).
    pub fn build(self) -> Result<Engine> {
        let store = self
            .store
            .ok_or_else(|| Error::config("store", "an engine needs a store"))?;
        if let Some(budget) = &self.rate_budget {
            for (c, _) in &self.connectors {
                c.use_rate_budget(Arc::clone(budget));
            }
            for d in &self.delegates {
                d.use_rate_budget(Arc::clone(budget));
            }
        }
        let connectors = connector_entries(self.connectors, self.lease_for)?;
        let delegates = delegates_by_kind(self.delegates)?;
        check_policy(&self.policy, &connectors, &delegates)?;
        if let Some(c) = &self.checkpoints {
            c.check()?;
        }
        let clock = self.clock.unwrap_or_else(|| Arc::new(TokioClock::new()));
        let (updates, _) = broadcast::channel(1024);
        let mut names = BTreeSet::new();
        for n in &self.notifiers {
            if !names.insert(n.name()) {
                return Err(Error::config(
                    format!("notifiers.{}", n.name()),
                    "two notifiers share this name (their positions would mix)",
                ));
            }
        }
        if self.overdue.check_every.is_zero() {
            return Err(Error::config(
                "notify.overdue_check_every",
                "must be longer than zero",
            ));
        }
        let mut sinks = self.sinks;
        sinks.extend(self.notifiers.iter().map(|n| {
            Arc::new(notify::NotifierSink::new(n.clone(), store.clone())) as Arc<dyn AuditSink>
        }));
        let pumps = sinks::SinkPumps::new(sinks, store.clone());
        let (events, _) = broadcast::channel(256);
        let mut lifecycle = self.lifecycle;
        if let Some(d) = self.policy.departures {
            lifecycle.departures = d;
        }
        Ok(Engine {
            inner: Arc::new(EngineShared {
                store,
                connectors,
                delegates,
                policy_fingerprint: self.policy.fingerprint(),
                policy: self.policy,
                sinks: pumps,
                notifiers: self.notifiers,
                overdue: self.overdue,
                checkpoints: self
                    .checkpoints
                    .map(|c| checkpoints::Checkpoints::new(c, clock.clone())),
                retention: self.retention,
                clock,
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

/// Runs kept after their last task left, per task in flight (see [`slots`]): enough for the
/// runs of the tasks in flight and the waves they make due, a few KiB each.
const KEPT_PER_SLOT: usize = 4;

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
            checkpoints: None,
            notifiers: Vec::new(),
            overdue: notify::OverdueConfig::default(),
            retention: retention::RetentionConfig::default(),
            rate_budget: None,
        }
    }
}

/// The registered connectors by app, each with its limiter.
///
/// # Errors
/// `Config` when two connectors claim one app, or `lease_for` is shorter than twice a
/// connector's timeout plus [`LEASE_MARGIN`].
fn connector_entries(
    registered: Vec<(Arc<dyn Connector>, Limits)>,
    lease_for: Duration,
) -> Result<BTreeMap<AppId, ConnectorEntry>> {
    let mut connectors = BTreeMap::new();
    for (c, limits) in registered {
        let app = c.capabilities().app.clone();
        // A start may call the connector twice (snapshot, then the action), each up to
        // the timeout: one lease covers both with room for the commits between them.
        let needed = limits
            .timeout
            .saturating_mul(2)
            .saturating_add(LEASE_MARGIN);
        if lease_for < needed {
            return Err(Error::config(
                format!("connectors.{app}.timeout"),
                format!(
                    "the lease {:?} must be at least twice the timeout {:?} plus {:?} \
                     ({needed:?}): shorten the timeout or lengthen lease_for",
                    lease_for, limits.timeout, LEASE_MARGIN
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
    Ok(connectors)
}

/// The registered delegates by kind.
///
/// # Errors
/// `Config` when two delegates share a kind.
fn delegates_by_kind(
    registered: Vec<Arc<dyn Delegate>>,
) -> Result<BTreeMap<DelegateVia, Arc<dyn Delegate>>> {
    let mut delegates = BTreeMap::new();
    for d in registered {
        let via = d.via();
        if delegates.insert(via.clone(), d).is_some() {
            return Err(Error::config(
                format!("delegates.{}", via.as_str()),
                "two delegates of one kind",
            ));
        }
    }
    Ok(delegates)
}

/// Checks `policy` against the engine's connectors and delegates.
///
/// # Errors
/// `Config` when the policy names an action a connector does not offer or a delegate that is
/// not registered, or offboards nothing.
fn check_policy(
    policy: &Policy,
    connectors: &BTreeMap<AppId, ConnectorEntry>,
    delegates: &BTreeMap<DelegateVia, Arc<dyn Delegate>>,
) -> Result<()> {
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
    if let crate::policy::Method::Delegate { via } = &policy.unknown_apps
        && !delegates.contains_key(via)
    {
        return Err(delegate_missing("unknown_apps".into(), via));
    }
    let acts = |m: &crate::policy::Method| match m {
        crate::policy::Method::Automatic { actions } => !actions.is_empty(),
        crate::policy::Method::Delegate { .. } => true,
        crate::policy::Method::Ignore => false,
    };
    // A connector with default actions acts on the discovered apps the policy leaves out.
    let defaults = connectors.iter().any(|(app, c)| {
        !policy.apps.contains_key(app)
            && c.connector
                .capabilities()
                .default_actions()
                .next()
                .is_some()
    });
    if !acts(&policy.unknown_apps) && !defaults && !policy.apps.values().any(|p| acts(&p.method)) {
        return Err(Error::config(
            "apps",
            "the policy offboards nothing: no app has actions or a delegate, no connector has \
             default actions for discovered apps, and unknown_apps is \"ignore\", so every \
             run would complete with nothing done",
        ));
    }
    for (app, p) in &policy.apps {
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
    Ok(())
}
