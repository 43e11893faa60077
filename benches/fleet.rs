//! The fleet benchmark (issue 21 item 3): engine processes on one PostgreSQL database (a
//! scratch database on `OFFBOARD_TEST_PG_URL`), each this binary run again with its
//! configuration in `OFFBOARD_FLEET_CHILD` (the parts shared with `tests/fleet.rs` are in
//! `benches/common/fleet.rs`). Four measurements, each printed as a ratio measured in one run:
//!
//! - **control**: the fleet of the fleet test (4 processes; Okta, Google, Entra, Office 365
//!   and Jira with the budgets the fleet must share; no kills) run twice on the same people
//!   count, once with one `PostgresRateBudget` and once with a `MemoryRateBudget` per
//!   process: each vendor's share of throttled requests both ways.
//! - **(a) scaling**: 1, 2 and 4 processes, a latency-bound reference connector (30 ms per
//!   call, 4 actions a person, 8 tasks in flight per process): people a second, and 4 vs 1
//!   (goal ≥ 3.5).
//! - **(b) cloud**: Okta, Google, Entra and Office 365 at once with each vendor's default
//!   limits, windows compressed (as `benches/cloud.rs` does), 4 processes on one shared
//!   budget: wall time over the bound the slowest budget sets (goal ≤ 1.05), and the
//!   throttled answers after the first window (goal 0).
//! - **(c) durable cases**: 4 processes, a zero-latency reference connector, 32 tasks in
//!   flight per process (`OFFBOARD_FLEET_C_IN_FLIGHT`), each store's group commit at its
//!   default (`OFFBOARD_FLEET_GROUP_COMMIT`, `1`: every commit alone): runs completed a
//!   second (goal ≥ 1,000), with what the database's active sessions waited on (sampled from
//!   `pg_stat_activity`).
//!
//! Run with `cargo bench --bench fleet` (full sizes: control 12 people, (a) 2,000, (b)
//! 10,000, (c) 4,000). Sizes: `OFFBOARD_FLEET_CONTROL_N`, `OFFBOARD_FLEET_A_N`,
//! `OFFBOARD_FLEET_B_N`, `OFFBOARD_FLEET_C_N`; `OFFBOARD_FLEET_B_SCALE` forces (b)'s time
//! compression (a divisor of 60); `OFFBOARD_FLEET_ONLY` (e.g. `a,c`) runs some parts only.
//! Under `cargo test` (no `--bench` argument) it runs every part at a handful of people.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use offboard_testkit::postgres::ScratchDatabase;
use offboard_testkit::sim::okta::RateFamily;
use sqlx::{Connection as _, PgConnection, Row as _};

#[path = "common/mod.rs"]
mod common;

#[path = "common/cloud_policy.rs"]
mod cloud_policy;

#[path = "common/fleet.rs"]
mod fleet;

use fleet::{Budgets, ChildConfig, Cloud, Count, FleetRun, ReferenceSetup};

async fn scratch() -> ScratchDatabase {
    ScratchDatabase::create(&ScratchDatabase::test_server(), "offboard_fleet_bench")
        .await
        .unwrap_or_else(|e| panic!("cannot create a database on OFFBOARD_TEST_PG_URL: {e}"))
}

fn run(processes: usize, deadline: Duration) -> FleetRun<'static> {
    FleetRun {
        processes,
        args: &[],
        kill_every: None,
        deadline,
        call_timeout: Duration::from_secs(20),
        in_flight: 8,
    }
}

/// The control run: the same fleet with one shared budget and with one per process.
async fn control(n: usize) {
    let mut shares = Vec::new();
    for shared in [true, false] {
        let db = scratch().await;
        let mut cloud = Cloud::start(Budgets::shared()).await;
        let people = cloud.add_people(n).await;
        let (runs, _, wall) = fleet::offboard_in_cloud(
            &mut cloud,
            db.url(),
            shared,
            people,
            run(4, Duration::from_secs(600)),
        )
        .await;
        let done = runs
            .iter()
            .filter(|r| r.state == offboard::RunState::Completed)
            .count();
        shares.push((shared, cloud.counts(), wall, done));
        db.drop_database().await;
    }
    println!("control: {n} people, 4 processes, budgets the fleet must share");
    for (shared, counts, wall, done) in &shares {
        println!(
            "  {:<28} wall {:>6.1} s, {done}/{n} runs completed; throttled: {}",
            if *shared {
                "one PostgresRateBudget:"
            } else {
                "a MemoryRateBudget each:"
            },
            wall.as_secs_f64(),
            counts
                .iter()
                .map(|c| format!(
                    "{} {}/{} ({:.2} %)",
                    c.vendor,
                    c.throttled,
                    c.requests,
                    c.share() * 100.0
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let total = |c: &[Count; 4]| {
        let (t, r) = c
            .iter()
            .fold((0, 0), |(t, r), c| (t + c.throttled, r + c.requests));
        t as f64 / r.max(1) as f64
    };
    println!(
        "  429 share: shared {:.2} %, per process {:.2} %",
        total(&shares[0].1) * 100.0,
        total(&shares[1].1) * 100.0
    );
}

/// What the fleet's database sessions were doing, sampled from `pg_stat_activity` every 10 ms
/// until `done`: samples per `state | wait event | statement` (its first 60 characters).
fn sample_sessions(
    url: String,
    done: Arc<tokio::sync::Notify>,
) -> tokio::task::JoinHandle<BTreeMap<String, u64>> {
    tokio::spawn(async move {
        let mut conn = PgConnection::connect(&url).await.unwrap();
        let mut seen = BTreeMap::new();
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = done.notified() => return seen,
            }
            let rows = sqlx::query(
                "SELECT coalesce(state, ''), coalesce(wait_event_type || ':' || wait_event, \
                 'on CPU'), left(regexp_replace(query, '\\s+', ' ', 'g'), 60) \
                 FROM pg_stat_activity WHERE datname = current_database() \
                 AND pid <> pg_backend_pid() AND state = 'active'",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap();
            for row in rows {
                let (state, wait, query): (String, String, String) =
                    (row.get(0), row.get(1), row.get(2));
                *seen
                    .entry(format!("{state} | {wait} | {query}"))
                    .or_default() += 1;
            }
        }
    })
}

/// Offboards the reference people `0..n` with `processes` engine processes: plans and submits
/// every run first, then starts the fleet; returns the wall time from the start of the fleet to
/// the last run's end, and what the database sessions were doing meanwhile
/// ([`sample_sessions`]).
async fn reference_fleet(
    n: usize,
    processes: usize,
    latency_ms: u64,
    in_flight: usize,
) -> (Duration, BTreeMap<String, u64>) {
    let db = scratch().await;
    let config = ChildConfig {
        reference: Some(ReferenceSetup {
            people: n,
            latency_ms,
        }),
        max_in_flight: in_flight,
        group_commit: common::env("OFFBOARD_FLEET_GROUP_COMMIT").unwrap_or(64),
        ..ChildConfig::new(db.url())
    };
    let (planner, store) = fleet::engine(&config).await;
    let people = (0..n).map(fleet::reference_person).collect();
    let ids = fleet::submit_all(&planner, people, fleet::REFERENCE_TASKS).await;
    let done = Arc::new(tokio::sync::Notify::new());
    let sampler = sample_sessions(db.url().to_owned(), Arc::clone(&done));
    let started = Instant::now();
    let mut processes = fleet::Fleet::start(&config, processes, &[]);
    let (runs, _) = fleet::wait_all(
        &store,
        &ids,
        &mut processes,
        None,
        Duration::from_secs(3600),
    )
    .await;
    let wall = started.elapsed();
    done.notify_one();
    let sessions = sampler.await.unwrap();
    drop(processes);
    fleet::assert_completed(&runs);
    let check = store.verify_audit().await.unwrap();
    assert!(check.is_intact(), "{check:?}");
    db.drop_database().await;
    (wall, sessions)
}

/// (a): 1, 2 and 4 processes, 30 ms a call.
async fn scaling(n: usize) {
    println!("(a) scaling: {n} people, 4 actions each, 30 ms a call, 8 tasks in flight a process");
    let mut rates = BTreeMap::new();
    for processes in [1, 2, 4] {
        let (wall, _) = reference_fleet(n, processes, 30, 8).await;
        let rate = n as f64 / wall.as_secs_f64();
        println!(
            "  {processes} process(es): {:.1} s, {rate:.1} people/s",
            wall.as_secs_f64()
        );
        rates.insert(processes, rate);
    }
    println!(
        "  ratio 4 vs 1: {:.2}x (goal >= 3.5), 2 vs 1: {:.2}x",
        rates[&4] / rates[&1],
        rates[&2] / rates[&1]
    );
}

/// (c): 4 processes, no latency.
async fn durable(n: usize) {
    let in_flight = common::env("OFFBOARD_FLEET_C_IN_FLIGHT").unwrap_or(32);
    let (wall, sessions) = reference_fleet(n, 4, 0, in_flight).await;
    println!(
        "(c) durable cases: {n} runs (4 actions each) by 4 processes ({in_flight} tasks in \
         flight each) on PostgreSQL in {:.1} s: {:.0} cases/s (goal >= 1,000)",
        wall.as_secs_f64(),
        n as f64 / wall.as_secs_f64()
    );
    // Where the database's time went: active sessions by what they waited on.
    let total: u64 = sessions.values().sum();
    let mut top: Vec<_> = sessions.into_iter().collect();
    top.sort_by_key(|e| std::cmp::Reverse(e.1));
    println!("  active database sessions, sampled every 10 ms ({total} samples), top 8:");
    for (what, count) in top.iter().take(8) {
        println!(
            "    {:>5.1} %  {what}",
            *count as f64 * 100.0 / total.max(1) as f64
        );
    }
}

/// Requests per person measured in earlier runs (Okta, Google, Graph writes), to choose
/// (b)'s compression.
const ESTIMATE: (f64, f64, f64) = (25.6, 42.0, 30.0);

/// (b): the four vendors at their default limits, compressed.
async fn cloud(n: usize) {
    let scale = common::env("OFFBOARD_FLEET_B_SCALE")
        .filter(|s: &u64| (1..=60).contains(s) && 60 % s == 0)
        .unwrap_or_else(|| {
            let okta = n as f64 * ESTIMATE.0 / 2.0 / 600.0 * 60.0;
            let google = n as f64 * ESTIMATE.1 / 2400.0 * 60.0;
            let graph = n as f64 * ESTIMATE.2 / 20.0;
            common::compression(okta.max(google).max(graph))
        });
    let window = 60 / scale;
    let budgets = Budgets::defaults(window, 0);
    let db = scratch().await;
    let mut cloud = Cloud::start(budgets.clone()).await;
    let people = cloud.add_people(n).await;
    // The throttled answers within the first window (the longest vendor window) are counted
    // apart: a fresh budget's burst may meet a vendor's bucket mid-window.
    let first = Duration::from_secs(window).max(budgets.graph.write_window);
    let early = {
        let (okta, google, graph) = (
            Arc::clone(&cloud.okta),
            Arc::clone(&cloud.google),
            Arc::clone(&cloud.graph),
        );
        tokio::spawn(async move {
            tokio::time::sleep(first).await;
            okta.rate_limited_count() + google.rate_limited_count() + graph.rate_limited_count()
        })
    };
    // Google's requests served by the end of each window: where its quota went unused.
    let served: Arc<std::sync::Mutex<Vec<usize>>> = Arc::default();
    let pace = {
        let (google, served) = (Arc::clone(&cloud.google), Arc::clone(&served));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(window)).await;
                let n = google.requests().len();
                served.lock().unwrap().push(n);
            }
        })
    };
    let (runs, _, wall) = fleet::offboard_in_cloud(
        &mut cloud,
        db.url(),
        true,
        people,
        FleetRun {
            in_flight: common::env("OFFBOARD_FLEET_B_IN_FLIGHT").unwrap_or(8),
            ..run(4, Duration::from_secs(7200))
        },
    )
    .await;
    pace.abort();
    fleet::assert_completed(&runs);
    let early = early.await.unwrap();
    let counts = cloud.counts();
    let throttled: u64 = counts.iter().map(|c| c.throttled).sum();
    // The bound: per budget, the work served over its rate (less the burst a bucket starts
    // with, for Graph's), the largest of them.
    let w = window as f64;
    let mut bounds: Vec<(String, f64)> = Vec::new();
    let mut families: BTreeMap<RateFamily, u64> = BTreeMap::new();
    for r in cloud.okta.requests() {
        *families
            .entry(RateFamily::of_path(&r.method, &r.path))
            .or_default() += 1;
    }
    for (f, count) in &families {
        let budget = f64::from(budgets.okta.per_minute[f]);
        bounds.push((format!("okta {f:?}"), *count as f64 / budget * w));
    }
    bounds.push((
        "google".into(),
        counts[1].requests as f64 / f64::from(budgets.google.per_minute) * w,
    ));
    let g = &budgets.graph;
    let bucket = |work: u64, cap: u32, window: Duration| {
        (work as f64 - f64::from(cap)).max(0.0) / f64::from(cap) * window.as_secs_f64()
    };
    bounds.push((
        "graph writes".into(),
        bucket(cloud.graph.writes_served(), g.writes, g.write_window),
    ));
    bounds.push((
        "graph resource units".into(),
        bucket(
            cloud.graph.resource_units_served(),
            g.resource_units,
            g.window,
        ),
    ));
    let (by, bound) = bounds
        .iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .cloned()
        .unwrap();
    println!(
        "(b) cloud: {n} people, Okta + Google + Entra + Office 365 at default limits \
         compressed x{scale} ({window} s windows), 4 processes, one shared budget"
    );
    println!(
        "  requests: {}",
        counts
            .iter()
            .take(3)
            .map(|c| format!(
                "{} {} ({:.1}/person)",
                c.vendor,
                c.requests,
                c.requests as f64 / n as f64
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  wall {:.1} s, bound {bound:.1} s (set by {by}), ratio {:.3} (goal <= 1.05)",
        wall.as_secs_f64(),
        wall.as_secs_f64() / bound.max(f64::EPSILON)
    );
    println!(
        "  bounds (s): {}",
        bounds
            .iter()
            .map(|(b, s)| format!("{b} {s:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  throttled: {throttled} in all, {} after the first {:.0} s (goal 0)",
        throttled - early.min(throttled),
        first.as_secs_f64()
    );
    let served = served.lock().unwrap().clone();
    let quota = f64::from(budgets.google.per_minute);
    println!(
        "  google's quota used per {window} s window (%): {}",
        served
            .iter()
            .scan(0, |before, &now| {
                let used = (now - *before) as f64 * 100.0 / quota;
                *before = now;
                Some(format!("{used:.0}"))
            })
            .collect::<Vec<_>>()
            .join(" ")
    );
    db.drop_database().await;
}

fn main() {
    if std::env::var_os(fleet::CHILD_ENV).is_some() {
        common::block_on(fleet::child_main());
        return;
    }
    let bench = common::benching();
    let size = |key: &str, full: usize| {
        if bench {
            common::env(key).unwrap_or(full)
        } else {
            4
        }
    };
    let only: Option<String> = common::env("OFFBOARD_FLEET_ONLY");
    let wanted = |part: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|p| p.trim() == part))
    };
    common::block_on(async {
        if wanted("control") {
            control(size("OFFBOARD_FLEET_CONTROL_N", 12)).await;
        }
        if wanted("a") {
            scaling(size("OFFBOARD_FLEET_A_N", 2000)).await;
        }
        if wanted("b") {
            cloud(size("OFFBOARD_FLEET_B_N", 10_000)).await;
        }
        if wanted("c") {
            durable(size("OFFBOARD_FLEET_C_N", 4000)).await;
        }
    });
}
