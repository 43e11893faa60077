//! The Graph benchmark: offboard N people (default 2,000) from Entra ID through the real
//! engine (in-memory store) against the simulated Microsoft tenant, with the full Entra action
//! list, under Graph's identity throttling budgets, and compare the wall time with the bound
//! those budgets set.
//!
//! - Budgets: Graph's published small-tenant identity limits, 3,500 resource units per 10 s
//!   and 3,000 writes per 2 min 30 s per app and tenant (README §5); the simulator answers
//!   429 with `Retry-After` when either is spent, batch items on their own.
//! - People: the conformance fixture's employee ([`GraphFixture`]'s `create_user`: an
//!   assigned, a dynamic and an AD-synced group, an app role, a delegated grant, three MFA
//!   methods besides the password, a manager, an app registration, a Windows laptop in Entra
//!   and Intune, three directory roles (tenant-wide, in an administrative unit, eligible), an
//!   access package; the roles make every action critical), plus `OFFBOARD_GRAPH_GROUPS` more assigned groups (default 10).
//! - Actions: every `entra.*` action but the optional `entra.clear_immutable_id` and
//!   `entra.intune_wipe` (the laptop is retired instead), `entra.delete` last (the critical ones
//!   confirmed as an operator would).
//!
//! The bound is the larger, over the two budgets, of (work served − the budget's burst) ÷ its
//! rate: the buckets start full, and no client can finish the same work faster. A run whose estimated bound exceeds 5 minutes is
//! time-compressed: both budgets keep their size but their windows shrink by the scale (which
//! scales the bound and the wall time alike).
//!
//! Run with `cargo bench --bench graph`. `OFFBOARD_GRAPH_N` chooses N (default 2000),
//! `OFFBOARD_GRAPH_SCALE` forces the compression (1 = real time; default: 1 when the estimated
//! bound is at most 5 minutes, else the smallest whole scale giving at most 3 minutes). Under
//! `cargo test` (no `--bench` argument) it runs N = 10 in real time. Knobs for finding where
//! time goes: `OFFBOARD_BENCH_RUNS` (runs in flight, default 32), `OFFBOARD_GRAPH_TASKS` (the
//! engine's concurrency for the connector, default 16), `OFFBOARD_GRAPH_HTTP` (the Graph
//! client's requests in flight, default 16). It prints the write budget used in each tenth of
//! the run: where that falls below 100 %, the wall time above the bound goes.

use std::sync::Arc;
use std::time::Duration;

use offboard::engine::Limits;
use offboard::memory::MemoryStore;
use offboard::{Engine, Person};
use offboard_azure::AzureConfig;
use offboard_testkit::Fixture;
use offboard_testkit::sim::graph::{GraphFixture, GraphLimits, GraphTenant, NewGroup};

#[path = "common/mod.rs"]
mod common;

#[path = "common/cloud_policy.rs"]
mod cloud_policy;
use cloud_policy::{ENTRA, entra_policy as policy};

/// Writes per person estimated from earlier runs, to choose the scale (writes bind first).
const WRITES_PER_PERSON: f64 = 30.0;

fn choose_scale(n: usize, limits: &GraphLimits) -> u32 {
    let write_rate = f64::from(limits.writes) / limits.write_window.as_secs_f64();
    let bound_s = n as f64 * WRITES_PER_PERSON / write_rate;
    if bound_s <= 300.0 {
        1
    } else {
        (bound_s / 180.0).ceil() as u32
    }
}

struct Report {
    n: usize,
    scale: u32,
    wall: Duration,
    bound: Duration,
    bound_by: &'static str,
    requests: usize,
    batch_calls: usize,
    batch_items: usize,
    ru: u64,
    writes: u64,
    throttled: u64,
    /// Writes served in each tenth of the run, as a share of what the write budget allows in
    /// that span (1.0 = the budget spent exactly): shows where the wall time above the bound
    /// goes.
    write_use: Vec<f64>,
}

/// Samples the tenant's served writes every 100 ms until `done`; returns `(elapsed, writes)`.
fn sample_writes(
    tenant: Arc<GraphTenant>,
    done: Arc<tokio::sync::Notify>,
) -> tokio::task::JoinHandle<Vec<(Duration, u64)>> {
    tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        let mut samples = vec![(Duration::ZERO, tenant.writes_served())];
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = tick.tick() => samples.push((started.elapsed(), tenant.writes_served())),
                () = done.notified() => {
                    samples.push((started.elapsed(), tenant.writes_served()));
                    return samples;
                }
            }
        }
    })
}

/// The writes served in each tenth of the sampled span over what `rate` (writes a second)
/// allows in it.
fn use_per_tenth(samples: &[(Duration, u64)], rate: f64) -> Vec<f64> {
    let Some(&(end, _)) = samples.last() else {
        return Vec::new();
    };
    let at = |t: Duration| {
        samples
            .iter()
            .take_while(|(s, _)| *s <= t)
            .last()
            .map_or(0, |(_, w)| *w)
    };
    (0..10)
        .map(|i| {
            let (from, to) = (end * i / 10, end * (i + 1) / 10);
            (at(to) - at(from)) as f64 / (rate * (to - from).as_secs_f64())
        })
        .collect()
}

async fn measure(n: usize, groups: usize, scale: u32) -> Report {
    let real = GraphLimits::small_tenant();
    let limits = real
        .clone()
        .with_resource_units(real.resource_units, real.window / scale)
        .with_writes(real.writes, real.write_window / scale);
    let tenant = Arc::new(GraphTenant::start_with(limits.clone()).await);
    let fixture = GraphFixture::new(Arc::clone(&tenant));
    let entra = AzureConfig::new()
        .with_tenant_id(tenant.tenant_id())
        .with_client_id(tenant.client_id())
        .with_client_secret(offboard::Secret::new(tenant.client_secret()))
        .with_graph_url(tenant.graph_url())
        .with_allow_plain_http(true)
        .with_token_url(tenant.token_url())
        .with_write_budget(limits.writes, limits.write_window)
        .with_resource_unit_budget(limits.resource_units, limits.window)
        .with_max_concurrency(common::env("OFFBOARD_GRAPH_HTTP").unwrap_or(16))
        .build()
        .unwrap();
    let teams: Vec<String> = (0..groups)
        .map(|i| tenant.add_group(NewGroup::assigned(format!("Team {i}"))))
        .collect();
    let mut people = Vec::with_capacity(n);
    for i in 0..n {
        let email = format!("p{i}@example.test");
        let id = fixture.create_user(&email, &[]).await.external_id;
        for team in &teams {
            tenant.add_member(team, &id);
        }
        people.push(Person::new(format!("p{i}"), email));
    }
    let engine = Engine::builder()
        .store(Arc::new(MemoryStore::new()))
        .connector_with_limits(
            Arc::new(entra),
            Limits::default()
                .with_timeout(Duration::from_secs(120))
                .with_concurrency(common::env("OFFBOARD_GRAPH_TASKS").unwrap_or(16)),
        )
        .policy(policy())
        .idle_poll(Duration::from_millis(100))
        .build()
        .unwrap();
    tenant.clear_requests();
    let (ru_before, writes_before) = (tenant.resource_units_served(), tenant.writes_served());

    let done = Arc::new(tokio::sync::Notify::new());
    let sampler = sample_writes(Arc::clone(&tenant), Arc::clone(&done));
    let wall = common::offboard_all(&engine, people, ENTRA.len()).await;
    done.notify_one();
    let samples = sampler.await.unwrap();
    let write_rate = f64::from(limits.writes) / limits.write_window.as_secs_f64();
    let requests = tenant.requests();
    let batches: Vec<usize> = requests
        .iter()
        .filter(|r| r.line() == "POST /v1.0/$batch")
        .map(|r| {
            r.body
                .as_ref()
                .and_then(|b| b["requests"].as_array())
                .map_or(0, Vec::len)
        })
        .collect();
    let ru = tenant.resource_units_served() - ru_before;
    let writes = tenant.writes_served() - writes_before;
    let bound_of = |work: u64, budget: u32, window: Duration| {
        (work as f64 - f64::from(budget)).max(0.0) / f64::from(budget) * window.as_secs_f64()
    };
    let ru_bound = bound_of(ru, limits.resource_units, limits.window);
    let write_bound = bound_of(writes, limits.writes, limits.write_window);
    let (bound_by, bound) = if ru_bound >= write_bound {
        ("resource units", ru_bound)
    } else {
        ("writes", write_bound)
    };
    Report {
        n,
        scale,
        wall,
        bound: Duration::from_secs_f64(bound),
        bound_by,
        requests: requests.len(),
        batch_calls: batches.len(),
        batch_items: batches.iter().sum(),
        ru,
        writes,
        throttled: tenant.rate_limited_count(),
        write_use: use_per_tenth(&samples, write_rate),
    }
}

fn main() {
    let bench = common::benching();
    let n = if bench {
        common::env("OFFBOARD_GRAPH_N").unwrap_or(2000)
    } else {
        10
    };
    let scale = if bench {
        common::env("OFFBOARD_GRAPH_SCALE")
            .filter(|s| *s >= 1)
            .unwrap_or_else(|| choose_scale(n, &GraphLimits::small_tenant()))
    } else {
        1
    };
    let groups = common::env("OFFBOARD_GRAPH_GROUPS").unwrap_or(10);
    let r = common::block_on(measure(n, groups, scale));
    let ratio = if r.bound.is_zero() {
        "n/a: the work fits in the budgets' bursts".to_owned()
    } else {
        format!("{:.3}", r.wall.as_secs_f64() / r.bound.as_secs_f64())
    };
    println!(
        "graph: {} people in {} assigned groups each, Entra ({} actions), {}",
        r.n,
        groups + 1,
        ENTRA.len(),
        if r.scale == 1 {
            "real small-tenant limits (3,500 RU / 10 s, 3,000 writes / 150 s)".to_owned()
        } else {
            format!("small-tenant budgets time-compressed x{}", r.scale)
        }
    );
    println!(
        "  requests: {} ({:.1}/person), {} resource units, {} writes; $batch: {} calls carrying {} requests, saving {} round trips ({:.1}/person)",
        r.requests,
        r.requests as f64 / r.n as f64,
        r.ru,
        r.writes,
        r.batch_calls,
        r.batch_items,
        r.batch_items - r.batch_calls,
        (r.batch_items - r.batch_calls) as f64 / r.n as f64
    );
    println!(
        "  wall {:.1} s, bound {:.1} s (set by {}), ratio {ratio}; x{} = {:.1} min at real limits",
        r.wall.as_secs_f64(),
        r.bound.as_secs_f64(),
        r.bound_by,
        r.scale,
        r.wall.as_secs_f64() * f64::from(r.scale) / 60.0
    );
    println!("  throttled: 429 {}", r.throttled);
    println!(
        "  write budget used per tenth of the run: {}",
        r.write_use
            .iter()
            .map(|u| format!("{:.0}%", u * 100.0))
            .collect::<Vec<_>>()
            .join(" ")
    );
}
