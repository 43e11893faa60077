//! What the fleet test (`tests/fleet.rs`) and the fleet benchmark (`benches/fleet.rs`) share:
//! engine processes on one PostgreSQL database, each the calling binary run again with its
//! [`ChildConfig`] in [`CHILD_ENV`]; the simulated vendors they work against ([`Cloud`]:
//! Okta, Google Workspace, Microsoft Graph for Entra and Office 365, and Jira, served by the
//! calling process); planning and submitting the runs; killing and restarting processes while
//! they work; and what the vendors counted. Included with `#[path = …] mod fleet;` next to
//! `mod cloud_policy;`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use offboard::engine::{Confirmation, Limits};
use offboard::stores::{BudgetTuning, PostgresRateBudget, PostgresStore};
use offboard::{
    Engine, Initiator, Manager, MemoryRateBudget, Person, RateBudget, Run, RunId, RunQuery,
    RunRequest, Store,
};
use offboard_azure::AzureConfig;
use offboard_google::{GoogleConfig, Sku};
use offboard_jira::JiraBuilder;
use offboard_o365::O365Config;
use offboard_okta::OktaConfig;
use offboard_testkit::Fixture;
use offboard_testkit::sim::google::{GoogleFixture, GoogleLimits, GoogleTenant};
use offboard_testkit::sim::graph::{GraphFixture, GraphLimits, GraphTenant};
use offboard_testkit::sim::jira::{DEFAULT_EMAIL, DEFAULT_TOKEN, JiraSim};
use offboard_testkit::sim::okta::{OktaFixture, OktaTenant, RateLimits};
use offboard_testkit::suite::reference::{ReferenceConnector, ReferenceUser};
use rand::Rng as _;
use serde::{Deserialize, Serialize};

use crate::cloud_policy::{self, GOOGLE, O365, OKTA};
pub(crate) use crate::common::assert_completed;

/// The environment variable carrying an engine process's [`ChildConfig`] (JSON).
pub(crate) const CHILD_ENV: &str = "OFFBOARD_FLEET_CHILD";

/// A vendor served by the calling process: where, the credential, and the budget per window
/// the connector paces to (0: none of its own).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Endpoint {
    pub(crate) uri: String,
    pub(crate) token: String,
    pub(crate) per_window: u32,
}

/// The simulated Microsoft tenant, for the Entra and Office 365 connectors.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct GraphEndpoint {
    pub(crate) graph_url: String,
    pub(crate) token_url: String,
    pub(crate) tenant_id: String,
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    pub(crate) writes: u32,
    pub(crate) write_window_ms: u64,
    /// Identity resource units per `ru_window_ms` the clients pace to.
    pub(crate) resource_units: u32,
    pub(crate) ru_window_ms: u64,
}

/// In-memory reference connectors (latency-bound or zero-latency work, no vendor budget).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ReferenceSetup {
    /// People `u0@example.com` … each process's tenants hold.
    pub(crate) people: usize,
    /// Added to every call.
    pub(crate) latency_ms: u64,
}

/// What an engine process of the fleet needs to know.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ChildConfig {
    pub(crate) pg_url: String,
    pub(crate) worker: String,
    /// One `PostgresRateBudget` for the fleet; `false`: a `MemoryRateBudget` per process (the
    /// control run).
    pub(crate) shared_budget: bool,
    /// The vendors' budget windows, compressed from a minute.
    pub(crate) window_secs: u64,
    pub(crate) okta: Option<Endpoint>,
    pub(crate) google: Option<Endpoint>,
    pub(crate) graph: Option<GraphEndpoint>,
    pub(crate) jira: Option<Endpoint>,
    pub(crate) reference: Option<ReferenceSetup>,
    /// A connector call's time limit (the engine's `Limits::timeout`), in ms.
    pub(crate) call_timeout_ms: u64,
    /// Tasks in flight per process.
    pub(crate) max_in_flight: usize,
    /// A task lease; a killed process's tasks are claimed again after it.
    pub(crate) lease_ms: u64,
    /// The most commits of a process that share a transaction
    /// (`PostgresStore::with_group_commit`; 1: each alone).
    pub(crate) group_commit: usize,
}

impl ChildConfig {
    /// A configuration of no vendor yet on `pg_url`.
    pub(crate) fn new(pg_url: &str) -> Self {
        Self {
            pg_url: pg_url.to_owned(),
            worker: "fleet-planner".into(),
            shared_budget: true,
            window_secs: 60,
            okta: None,
            google: None,
            graph: None,
            jira: None,
            reference: None,
            // A call's time limit 4 s (its waits for a vendor's turn not counted), its lease
            // 10 s (at least twice the limit and a second), 8 tasks in flight per process.
            call_timeout_ms: 4_000,
            max_in_flight: 8,
            lease_ms: 10_000,
            group_commit: 64,
        }
    }

    /// The configuration a child was started with.
    pub(crate) fn from_env() -> Self {
        serde_json::from_str(
            &std::env::var(CHILD_ENV).expect("OFFBOARD_FLEET_CHILD: run by the fleet only"),
        )
        .unwrap()
    }

    fn window(&self) -> Duration {
        Duration::from_secs(self.window_secs)
    }
}

/// Person `i` of the reference tenants.
pub(crate) fn reference_person(i: usize) -> Person {
    Person::new(format!("p{i}"), format!("u{i}@example.com"))
}

/// The reference connectors' policy: four actions per person.
const REFERENCE_POLICY: &str = "[apps.idp]\nmethod = \"automatic\"\nactions = [\"idp.suspend\", \
     \"idp.clear_sessions\", \"idp.remove_groups\", \"idp.unassign_apps\"]\n";

/// Actions per person of the reference policy.
pub(crate) const REFERENCE_TASKS: usize = 4;

/// An engine on the shared database, as every process of the fleet builds it (the calling
/// process too, to plan and submit; its engine runs no workers).
pub(crate) async fn engine(config: &ChildConfig) -> (Engine, PostgresStore) {
    let store = PostgresStore::connect(&config.pg_url)
        .await
        .unwrap()
        .with_group_commit(config.group_commit);
    let budget: Arc<dyn RateBudget> = if config.shared_budget {
        // A killed process's concurrency slots come back after 5 s (requests time out after 4 s).
        Arc::new(PostgresRateBudget::new(&store).with_tuning(BudgetTuning {
            slot_lease: Duration::from_secs(5),
            ..BudgetTuning::default()
        }))
    } else {
        Arc::new(MemoryRateBudget::new())
    };
    let limits = Limits::default().with_timeout(Duration::from_millis(config.call_timeout_ms));
    let mut builder = Engine::builder()
        .store(Arc::new(store.clone()))
        .rate_budget(budget)
        .lease_for(Duration::from_millis(config.lease_ms))
        .idle_poll(Duration::from_millis(100))
        .max_in_flight(config.max_in_flight)
        .worker_id(config.worker.clone());
    let request_timeout = Duration::from_secs(4);
    if let Some(okta) = &config.okta {
        let okta = OktaConfig::new()
            .with_org_url(&okta.uri)
            .with_allow_plain_http(true)
            .with_api_token(offboard::Secret::new(okta.token.clone()))
            .with_timeout(request_timeout)
            // The org's concurrency limit (the simulator's, Okta Enterprise's 75), shared by
            // the fleet: a killed process's slots stay taken until their 5 s lease ends, so a
            // shared limit well below the org's would starve the survivors.
            .with_max_concurrency(75)
            .build()
            .unwrap();
        builder = builder.connector_with_limits(Arc::new(okta), limits);
    }
    if let Some(google) = &config.google {
        let (product, sku) = GoogleFixture::LICENCE;
        let google = GoogleConfig::new()
            .with_base_url(&google.uri)
            .with_allow_plain_http(true)
            .with_licensing_url(&google.uri)
            .with_licence_skus([Sku::new(product, sku)])
            .with_request_budget(google.per_window, config.window())
            .with_transfer_polling(Duration::from_secs(30), Duration::from_millis(250))
            .with_timeout(request_timeout)
            .with_access_token(offboard::Secret::new(google.token.clone()))
            .build()
            .unwrap();
        builder = builder.connector_with_limits(Arc::new(google), limits);
    }
    if let Some(graph) = &config.graph {
        let window = Duration::from_millis(graph.write_window_ms);
        let ru_window = Duration::from_millis(graph.ru_window_ms);
        let entra = AzureConfig::new()
            .with_tenant_id(&graph.tenant_id)
            .with_client_id(&graph.client_id)
            .with_client_secret(offboard::Secret::new(graph.client_secret.clone()))
            .with_graph_url(&graph.graph_url)
            .with_token_url(&graph.token_url)
            .with_allow_plain_http(true)
            .with_timeout(request_timeout)
            .with_write_budget(graph.writes, window)
            .with_resource_unit_budget(graph.resource_units, ru_window)
            .build()
            .unwrap();
        let o365 = O365Config::new()
            .with_tenant_id(&graph.tenant_id)
            .with_client_id(&graph.client_id)
            .with_client_secret(offboard::Secret::new(graph.client_secret.clone()))
            .with_graph_url(&graph.graph_url)
            .with_token_url(&graph.token_url)
            .with_allow_plain_http(true)
            .with_timeout(request_timeout)
            .with_write_budget(graph.writes, window)
            .with_resource_unit_budget(graph.resource_units, ru_window)
            .build()
            .unwrap();
        builder = builder
            .connector_with_limits(Arc::new(entra), limits)
            .connector_with_limits(Arc::new(o365), limits);
    }
    if let Some(jira) = &config.jira {
        let jira = JiraBuilder::new()
            .with_site(&jira.uri)
            .with_allow_plain_http(true)
            .with_email(DEFAULT_EMAIL)
            .with_api_token(jira.token.clone())
            .with_project("IT")
            .with_timeout(request_timeout)
            .with_request_budget(jira.per_window, config.window())
            .with_poll_interval(Duration::from_secs(1))
            .build()
            .unwrap();
        builder = builder
            .delegate(Arc::new(jira))
            .delegation_poll(Duration::from_secs(1));
    }
    let policy = match &config.reference {
        Some(setup) => {
            let users = (0..setup.people)
                .map(|i| ReferenceUser::employee(reference_person(i).email.clone()));
            let idp = ReferenceConnector::builder("idp")
                .users(users)
                .latency(Duration::from_millis(setup.latency_ms))
                .build();
            builder = builder.connector_with_limits(Arc::new(idp), limits);
            offboard::Policy::from_toml(REFERENCE_POLICY).unwrap()
        }
        None => cloud_policy::fleet_policy(config.jira.is_some()),
    };
    let engine = builder.policy(policy).build().unwrap();
    (engine, store)
}

/// The body of an engine process: builds its engine from [`CHILD_ENV`] and works until
/// killed.
pub(crate) async fn child_main() {
    let (engine, _store) = engine(&ChildConfig::from_env()).await;
    let _workers = engine.start();
    std::future::pending::<()>().await;
}

/// The engine processes; killed when dropped, so a failing run leaves none running.
pub(crate) struct Fleet {
    children: Vec<Child>,
    config: ChildConfig,
    args: Vec<String>,
    started: usize,
}

impl Fleet {
    /// Starts `processes` engine processes: this executable with `args` (the test harness's
    /// arguments selecting the engine process test, or none for a benchmark's `main`).
    pub(crate) fn start(config: &ChildConfig, processes: usize, args: &[&str]) -> Self {
        let mut fleet = Self {
            children: Vec::new(),
            config: config.clone(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            started: 0,
        };
        for i in 0..processes {
            let child = fleet.spawn(i);
            fleet.children.push(child);
        }
        fleet
    }

    fn spawn(&mut self, index: usize) -> Child {
        let mut config = self.config.clone();
        config.worker = format!("fleet-{index}-{}", self.started);
        self.started += 1;
        Command::new(std::env::current_exe().unwrap())
            .args(&self.args)
            .env(CHILD_ENV, serde_json::to_string(&config).unwrap())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap()
    }

    /// Kills a random process with SIGKILL and starts it again.
    pub(crate) fn kill_one(&mut self) {
        let victim = rand::rng().random_range(0..self.children.len());
        self.children[victim].kill().unwrap();
        self.children[victim].wait().unwrap();
        self.children[victim] = self.spawn(victim);
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Plans and submits a run for each person, 16 at once (planning again after a retryable
/// error's hint: a throttled lookup fails the plan), each plan with `tasks` tasks, confirmed
/// as an operator would.
pub(crate) async fn submit_all(planner: &Engine, people: Vec<Person>, tasks: usize) -> Vec<RunId> {
    futures::stream::iter(people)
        .map(|person| async move {
            let plan = loop {
                match planner
                    .plan(RunRequest::new(person.clone(), Initiator::Schedule))
                    .await
                {
                    Ok(plan) => break plan,
                    Err(e) if e.is_retryable() => {
                        tokio::time::sleep(e.retry_after().unwrap_or(Duration::from_secs(1))).await;
                    }
                    Err(e) => panic!("plan {}: {e}", person.email),
                }
            };
            assert_eq!(plan.run.tasks.len(), tasks, "{}", person.email);
            let confirmation = Confirmation::of(&plan, "fleet");
            planner.submit(plan, Some(confirmation)).await.unwrap()
        })
        .buffer_unordered(16)
        .collect()
        .await
}

/// Waits until every run of `ids` ended, killing a random process of `fleet` every
/// `kill_every` (when given); panics after `deadline`. Returns the runs and the kills.
pub(crate) async fn wait_all(
    store: &PostgresStore,
    ids: &[RunId],
    fleet: &mut Fleet,
    kill_every: Option<Duration>,
    deadline: Duration,
) -> (Vec<Run>, usize) {
    let started = Instant::now();
    let mut kills = 0;
    let mut last_kill = Instant::now();
    loop {
        // One indexed read of the open runs a poll (the scratch database holds the fleet's
        // runs only), not every run with its tasks: the engines' database is what is measured.
        let open = store
            .list_runs(RunQuery::default().open().limit(1))
            .await
            .unwrap();
        if open.is_empty() {
            let runs = store.load_runs(ids).await.unwrap();
            if runs.len() == ids.len() && runs.iter().all(|r| r.state.is_terminal()) {
                return (runs, kills);
            }
        }
        if started.elapsed() >= deadline {
            let open = store.list_runs(RunQuery::default().open()).await.unwrap();
            panic!("runs still open after {deadline:?}: {}", open.len());
        }
        if kill_every.is_some_and(|every| last_kill.elapsed() >= every) {
            fleet.kill_one();
            kills += 1;
            last_kill = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The vendors' budgets, each window compressed to `window_secs` (from a minute; Graph's
/// windows by the same factor).
#[derive(Debug, Clone)]
pub(crate) struct Budgets {
    pub(crate) window_secs: u64,
    pub(crate) okta: RateLimits,
    pub(crate) google: GoogleLimits,
    pub(crate) graph: GraphLimits,
    /// Jira's requests per window (the simulator's budget and the delegate's pacing); 0:
    /// no Jira in the fleet.
    pub(crate) jira_per_window: u32,
}

impl Budgets {
    /// Every vendor's default limits (Okta Enterprise, Google's default quota, Graph's small
    /// tenant) with windows compressed `60 / window_secs` times, and Jira at `jira_per_minute`.
    pub(crate) fn defaults(window_secs: u64, jira_per_minute: u32) -> Self {
        let scale = (60 / window_secs.max(1)).max(1) as u32;
        let graph = GraphLimits::small_tenant();
        Self {
            window_secs,
            okta: RateLimits::enterprise().with_window_secs(window_secs),
            google: GoogleLimits::default_quota().with_window_secs(window_secs),
            graph: graph
                .clone()
                .with_resource_units(graph.resource_units, graph.window / scale)
                .with_writes(graph.writes, graph.write_window / scale),
            jira_per_window: jira_per_minute,
        }
    }
}

impl Budgets {
    /// Budgets below a debug-build fleet's demand, so that 4 processes must share them (each
    /// pacing to the whole budget alone spends up to four times it): windows of 6 s, every
    /// Okta family 60 a window, Google 60 a window, Graph 120 writes per 15 s and 40 resource
    /// units a second, Jira 12 a window. About 50 s of budget for 12 people.
    pub(crate) fn shared() -> Self {
        let mut b = Self::defaults(6, 12);
        for limit in b.okta.per_minute.values_mut() {
            *limit = 60;
        }
        b.google = b.google.with_per_minute(60);
        b.graph = b
            .graph
            .clone()
            .with_writes(120, Duration::from_secs(15))
            .with_resource_units(40, Duration::from_secs(1));
        b
    }

    /// These budgets `k` times larger (every Okta family, Google, Graph's writes and resource
    /// units, Jira): for
    /// a fleet that, faster (a release build), would not feel the smaller ones.
    #[allow(dead_code)]
    pub(crate) fn times(mut self, k: u32) -> Self {
        let k = k.max(1);
        for limit in self.okta.per_minute.values_mut() {
            *limit *= k;
        }
        self.google = self
            .google
            .clone()
            .with_per_minute(self.google.per_minute * k);
        let g = self.graph.clone();
        self.graph = g
            .clone()
            .with_writes(g.writes * k, g.write_window)
            .with_resource_units(g.resource_units * k, g.window);
        self.jira_per_window *= k;
        self
    }
}

/// One vendor's count of a fleet's requests: sent, answered with a throttle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Count {
    pub(crate) vendor: &'static str,
    pub(crate) requests: u64,
    pub(crate) throttled: u64,
}

impl Count {
    /// Throttled answers as a share of the requests.
    pub(crate) fn share(&self) -> f64 {
        self.throttled as f64 / (self.requests.max(1)) as f64
    }
}

/// The simulated vendors the fleet offboards people from, served by the calling process.
pub(crate) struct Cloud {
    pub(crate) budgets: Budgets,
    pub(crate) okta: Arc<OktaTenant>,
    pub(crate) google: Arc<GoogleTenant>,
    pub(crate) graph: Arc<GraphTenant>,
    pub(crate) jira: Arc<JiraSim>,
    graph_fixture: GraphFixture,
    /// Each tenant's served writes when the fleet started.
    before: [BTreeMap<String, u64>; 3],
    /// Jira's requests before the fleet started.
    jira_before: usize,
}

impl Cloud {
    /// The four tenants with `budgets`.
    pub(crate) async fn start(budgets: Budgets) -> Self {
        let okta = Arc::new(
            OktaTenant::start_with("00okta-fleet-test-token-00000000", budgets.okta.clone()).await,
        );
        let google = Arc::new(
            GoogleTenant::start_with("ya29.fleet-test-token-000000000", budgets.google.clone())
                .await,
        );
        let graph = Arc::new(GraphTenant::start_with(budgets.graph.clone()).await);
        let graph_fixture = GraphFixture::new(Arc::clone(&graph));
        let jira = Arc::new(JiraSim::start().await);
        if budgets.jira_per_window > 0 {
            jira.rate_budget(
                budgets.jira_per_window,
                Duration::from_secs(budgets.window_secs),
            );
        }
        Self {
            budgets,
            okta,
            google,
            graph,
            jira,
            graph_fixture,
            before: Default::default(),
            jira_before: 0,
        }
    }

    /// Creates `n` people in Okta, Google and Entra (with a mailbox, OneDrive, a team and a
    /// meeting), managed by Google's fixture manager.
    pub(crate) async fn add_people(&self, n: usize) -> Vec<Person> {
        let okta = OktaFixture::new(Arc::clone(&self.okta));
        let google = GoogleFixture::new(Arc::clone(&self.google));
        let mut people = Vec::with_capacity(n);
        for i in 0..n {
            let email = format!("p{i}@example.test");
            okta.create_user(&email, &[]).await;
            google.create_user(&email, &[]).await;
            self.graph_fixture.create_user(&email, &[]).await;
            people.push(Person::new(format!("p{i}"), email).with_manager(Manager {
                id: None,
                email: GoogleFixture::MANAGER.into(),
            }));
        }
        people
    }

    /// Whether the fleet files Jira issues.
    fn with_jira(&self) -> bool {
        self.budgets.jira_per_window > 0
    }

    /// Tasks per person of the fleet policy.
    pub(crate) fn tasks_per_person(&self) -> usize {
        OKTA.len()
            + GOOGLE.len()
            + cloud_policy::ENTRA.len()
            + O365.len()
            + usize::from(self.with_jira())
    }

    /// The engine processes' configuration for these tenants.
    pub(crate) fn child_config(&self, pg_url: &str, shared_budget: bool) -> ChildConfig {
        let b = &self.budgets;
        ChildConfig {
            shared_budget,
            window_secs: b.window_secs,
            okta: Some(Endpoint {
                uri: self.okta.uri(),
                token: self.okta.token().to_owned(),
                per_window: 0,
            }),
            google: Some(Endpoint {
                uri: self.google.uri(),
                token: self.google.token().to_owned(),
                per_window: b.google.per_minute,
            }),
            graph: Some(GraphEndpoint {
                graph_url: self.graph.graph_url(),
                token_url: self.graph.token_url(),
                tenant_id: self.graph.tenant_id().to_owned(),
                client_id: self.graph.client_id().to_owned(),
                client_secret: self.graph.client_secret().to_owned(),
                writes: b.graph.writes,
                write_window_ms: u64::try_from(b.graph.write_window.as_millis()).unwrap(),
                resource_units: b.graph.resource_units,
                ru_window_ms: u64::try_from(b.graph.window.as_millis()).unwrap(),
            }),
            jira: self.with_jira().then(|| Endpoint {
                uri: self.jira.uri(),
                token: DEFAULT_TOKEN.to_owned(),
                per_window: b.jira_per_window,
            }),
            ..ChildConfig::new(pg_url)
        }
    }

    /// Forgets the requests so far and notes the writes served, so that what follows is the
    /// fleet's.
    pub(crate) fn mark(&mut self) {
        self.okta.clear_requests();
        self.google.clear_requests();
        self.graph.clear_requests();
        self.jira.clear_requests();
        self.before = [
            self.okta.served_writes(),
            self.google.served_writes(),
            self.graph.served_writes(),
        ];
        self.jira_before = self.jira.issues_created();
    }

    /// Closes every open Jira issue every 200 ms, as the people the issues ask would.
    pub(crate) fn close_tickets(&self) -> tokio::task::JoinHandle<()> {
        let jira = Arc::clone(&self.jira);
        tokio::spawn(async move {
            loop {
                for issue in jira.issues() {
                    if issue.status != "Done" {
                        jira.transition(&issue.key, "Done");
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    }

    /// Each vendor's requests and throttling answers since [`Cloud::mark`].
    pub(crate) fn counts(&self) -> [Count; 4] {
        let jira = self.jira.requests();
        [
            Count {
                vendor: "okta",
                requests: self.okta.requests().len() as u64,
                throttled: self.okta.rate_limited_count(),
            },
            Count {
                vendor: "google",
                requests: self.google.requests().len() as u64,
                throttled: self.google.rate_limited_count(),
            },
            Count {
                vendor: "graph",
                requests: self.graph.requests().len() as u64,
                throttled: self.graph.rate_limited_count(),
            },
            Count {
                vendor: "jira",
                requests: jira.len() as u64,
                throttled: jira.iter().filter(|r| r.status == 429).count() as u64,
            },
        ]
    }

    /// Every side effect once: each write a tenant carried out since [`Cloud::mark`], once per
    /// path (a path names the user, and the group, app or device it concerns; Google's and
    /// Graph's also the fields a write sets; data transfers are counted per person), and one
    /// Jira issue per person. Except the writes their connectors send on every attempt by
    /// design because the vendor cannot be asked whether they were done: harmless to repeat,
    /// repeated only when an attempt was cut off by a kill (Okta's `DELETE …/sessions`,
    /// Google's `…/signOut`, `…/verificationCodes/invalidate` and the random password of
    /// `google.reset_password`, Graph's `…/revokeSignInSessions`).
    pub(crate) fn assert_each_write_once(&self, n: usize) {
        let now = [
            self.okta.served_writes(),
            self.google.served_writes(),
            self.graph.served_writes(),
        ];
        for ((tenant, writes), before) in ["okta", "google", "graph"]
            .iter()
            .zip(&now)
            .zip(&self.before)
        {
            let repeated: BTreeMap<&String, u64> = writes
                .iter()
                .map(|(k, v)| (k, v - before.get(k).copied().unwrap_or(0)))
                .filter(|(k, v)| {
                    *v > 1
                        && !k.starts_with("POST /admin/datatransfer/v1/transfers ")
                        && !repeats_by_design(k)
                })
                .collect();
            assert!(
                repeated.is_empty(),
                "{tenant} writes repeated: {repeated:?}"
            );
        }
        // Every person was deleted in Okta and Entra, once.
        let deletes = |writes: &BTreeMap<String, u64>, prefix: &str| {
            writes
                .keys()
                .filter(|k| {
                    k.strip_prefix(prefix)
                        .is_some_and(|rest| !rest.contains('/'))
                })
                .count()
        };
        assert_eq!(deletes(&now[0], "DELETE /api/v1/users/"), n, "okta deletes");
        assert_eq!(deletes(&now[2], "DELETE /users/"), n, "entra deletes");
        // One data transfer per person; one Jira issue per person, each with its own label.
        assert_eq!(self.google.transfers().len(), n);
        if !self.with_jira() {
            return;
        }
        let issues = self.jira.issues();
        assert_eq!(issues.len() - self.jira_before, n, "jira issues");
        let labels: std::collections::BTreeSet<_> = issues
            .iter()
            .skip(self.jira_before)
            .map(|i| i.labels.clone())
            .collect();
        assert_eq!(labels.len(), n, "one issue per delegated task");
    }
}

/// The writes their connectors send on every attempt by design (see
/// [`Cloud::assert_each_write_once`]), by their served-write key.
fn repeats_by_design(key: &str) -> bool {
    key.ends_with("/sessions")
        || key.ends_with(" {changePasswordAtNextLogin,password}")
        || [
            "/signOut ",
            "/verificationCodes/invalidate ",
            "/revokeSignInSessions ",
        ]
        .iter()
        .any(|p| key.contains(p))
}

/// How a fleet runs: its processes (this executable run again with `args`), a SIGKILL of a
/// random one every `kill_every` when given, how long its runs may take, and a connector
/// call's time limit (its waits for the vendor's turn not counted; the lease is twice it
/// and 5 s).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FleetRun<'a> {
    pub(crate) processes: usize,
    pub(crate) args: &'a [&'a str],
    pub(crate) kill_every: Option<Duration>,
    pub(crate) deadline: Duration,
    pub(crate) call_timeout: Duration,
    /// Tasks in flight per process.
    pub(crate) in_flight: usize,
}

/// Offboards `people` of `cloud` with the engine processes `run` describes on `pg_url` (one
/// shared budget, or one per process): plans and submits from this process, waits for every
/// run, and returns the runs, the kills and the wall time.
pub(crate) async fn offboard_in_cloud(
    cloud: &mut Cloud,
    pg_url: &str,
    shared_budget: bool,
    people: Vec<Person>,
    run: FleetRun<'_>,
) -> (Vec<Run>, usize, Duration) {
    let config = ChildConfig {
        call_timeout_ms: u64::try_from(run.call_timeout.as_millis()).unwrap(),
        lease_ms: u64::try_from((run.call_timeout * 2 + Duration::from_secs(5)).as_millis())
            .unwrap(),
        max_in_flight: run.in_flight,
        ..cloud.child_config(pg_url, shared_budget)
    };
    cloud.mark();
    let closer = cloud.close_tickets();
    let started = Instant::now();
    let mut fleet = Fleet::start(&config, run.processes, run.args);
    let (planner, store) = engine(&config).await;
    let ids = submit_all(&planner, people, cloud.tasks_per_person()).await;
    let (runs, kills) = wait_all(&store, &ids, &mut fleet, run.kill_every, run.deadline).await;
    let wall = started.elapsed();
    drop(fleet);
    closer.abort();
    (runs, kills, wall)
}
