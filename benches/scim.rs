//! The SCIM benchmark (issue 25): offboard N people (default 2,000) from a SCIM 2.0 app through
//! the real engine (in-memory store) against the simulated service provider limited to 300
//! requests a minute, and compare the wall time with the bound that limit sets (goal: ≤ 1.1 ×).
//!
//! - Provider: [`ScimSettings::default`] (PATCH, ETags, `groups` on users) with a budget of 300
//!   requests per 60 s window; past it a 429 with `Retry-After` (the seconds left in the window).
//! - People: each an active user (`userName` = email) in `OFFBOARD_SCIM_GROUPS` groups
//!   (default 3) with one other member.
//! - Client: paced to the budget (`ScimConnector::with_rate_limit`, what `rate_per_minute`
//!   configures), unless `OFFBOARD_SCIM_PACED=0`.
//! - Actions: `<app>.deactivate`, `<app>.remove_groups`, `<app>.delete` last (critical, confirmed
//!   as an operator would), with the generic profile.
//!
//! The bound is (requests served − the window's budget) ÷ the budget × the window: the first
//! window's budget is free, and no client can be served the same requests faster. A run whose
//! estimated bound exceeds 5 minutes is time-compressed: the budget keeps its size and the
//! window shrinks by the scale (which scales the bound and the wall time alike); the scale
//! divides 60 so the window stays whole seconds (the simulator's windows are).
//!
//! Run with `cargo bench --bench scim`. `OFFBOARD_SCIM_N` chooses N (default 2000),
//! `OFFBOARD_SCIM_SCALE` forces the compression (a divisor of 60; 1 = real time). Under
//! `cargo test` (no `--bench` argument) it runs N = 10 in real time.

use std::sync::Arc;
use std::time::Duration;

use offboard::engine::Limits;
use offboard::memory::MemoryStore;
use offboard::{Engine, Person, Policy, Secret};
use offboard_scim::ScimConfig;
use offboard_testkit::sim::scim::{ScimProvider, ScimSettings};

#[path = "common/mod.rs"]
mod common;

/// The app id of the SCIM connector under test.
const APP: &str = "scimapp";

/// The actions run for each person, `delete` last.
const ACTIONS: [&str; 3] = ["deactivate", "remove_groups", "delete"];

/// The provider's budget: requests per window, and the window at real time.
const BUDGET: u32 = 300;
const WINDOW_SECS: u64 = 60;

/// Requests per person estimated from the connector's calls (lookup by userName and emails;
/// a snapshot, a read and a write per action; one PATCH per group; verification), to choose
/// the scale.
const REQUESTS_PER_PERSON: f64 = 14.0;

fn policy() -> Policy {
    let list = ACTIONS
        .iter()
        .map(|a| format!("\"{APP}.{a}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let mut toml = format!("[apps.{APP}]\nmethod = \"automatic\"\nactions = [{list}]\n");
    for before in &ACTIONS[..ACTIONS.len() - 1] {
        toml.push_str(&format!(
            "\n[[order]]\nbefore = \"{APP}.{before}\"\nafter = \"{APP}.delete\"\n"
        ));
    }
    Policy::from_toml(&toml).unwrap()
}

/// The time compression of N people (see [`common::compression`]).
fn choose_scale(n: usize) -> u64 {
    common::compression(n as f64 * REQUESTS_PER_PERSON / f64::from(BUDGET) * WINDOW_SECS as f64)
}

struct Report {
    n: usize,
    scale: u64,
    wall: Duration,
    bound: Duration,
    requests: usize,
    served: u64,
    throttled: u64,
}

async fn measure(n: usize, groups: usize, scale: u64) -> Report {
    let window = WINDOW_SECS / scale;
    let sp = Arc::new(
        ScimProvider::start(ScimSettings {
            requests_per_window: BUDGET,
            window_secs: window,
            ..ScimSettings::default()
        })
        .await,
    );
    let scim = ScimConfig::new(APP)
        .with_base_url(sp.base_url())
        .with_allow_plain_http(true)
        .with_bearer_token(Secret::new(sp.token()))
        .build()
        .unwrap();
    // The app's published budget, configured as an operator would (`rate_per_minute`; at real
    // time 300): requests are spaced to it instead of meeting its 429s. `OFFBOARD_SCIM_PACED=0`
    // measures the connector on 429 and `Retry-After` alone.
    let scim = if common::env("OFFBOARD_SCIM_PACED").unwrap_or(1) == 1 {
        scim.with_rate_limit(BUDGET, Duration::from_secs(window))
    } else {
        scim
    };
    let teams: Vec<String> = (0..groups)
        .map(|i| {
            let g = sp.add_group(&format!("Team {i}"));
            let other = sp.add_user(&format!("stays{i}@example.test"), &[]);
            sp.add_member(&g, &other);
            g
        })
        .collect();
    let mut people = Vec::with_capacity(n);
    for i in 0..n {
        let email = format!("p{i}@example.test");
        let id = sp.add_user(&email, &[&email]);
        for team in &teams {
            sp.add_member(team, &id);
        }
        people.push(Person::new(format!("p{i}"), email));
    }
    let engine = Engine::builder()
        .store(Arc::new(MemoryStore::new()))
        .connector_with_limits(
            Arc::new(scim),
            Limits::default().with_timeout(Duration::from_secs(120)),
        )
        .policy(policy())
        .idle_poll(Duration::from_millis(100))
        .build()
        .unwrap();
    sp.clear_requests();
    let throttled_before = sp.rate_limited_count();

    let wall = common::offboard_all(&engine, people, ACTIONS.len()).await;
    let requests = sp.requests().len();
    let throttled = sp.rate_limited_count() - throttled_before;
    let served = requests as u64 - throttled;
    let bound = (served as f64 - f64::from(BUDGET)).max(0.0) / f64::from(BUDGET) * window as f64;
    Report {
        n,
        scale,
        wall,
        bound: Duration::from_secs_f64(bound),
        requests,
        served,
        throttled,
    }
}

fn main() {
    let bench = common::benching();
    let n = if bench {
        common::env("OFFBOARD_SCIM_N").unwrap_or(2000)
    } else {
        10
    };
    let scale = if bench {
        common::env("OFFBOARD_SCIM_SCALE")
            .filter(|s: &u64| *s >= 1 && WINDOW_SECS.is_multiple_of(*s))
            .unwrap_or_else(|| choose_scale(n))
    } else {
        1
    };
    let groups = common::env("OFFBOARD_SCIM_GROUPS").unwrap_or(3);
    let r = common::block_on(measure(n, groups, scale));
    let ratio = if r.bound.is_zero() {
        "n/a: the work fits in the first window's budget".to_owned()
    } else {
        format!("{:.3}", r.wall.as_secs_f64() / r.bound.as_secs_f64())
    };
    println!(
        "scim: {} people in {groups} groups each, {} actions, {}",
        r.n,
        ACTIONS.len(),
        if r.scale == 1 {
            format!("{BUDGET} requests / {WINDOW_SECS} s")
        } else {
            format!(
                "{BUDGET} requests / {WINDOW_SECS} s time-compressed x{} ({BUDGET} / {} s)",
                r.scale,
                WINDOW_SECS / r.scale
            )
        }
    );
    println!(
        "  requests: {} ({:.1}/person), {} served",
        r.requests,
        r.requests as f64 / r.n as f64,
        r.served
    );
    println!(
        "  wall {:.1} s, bound {:.1} s, ratio {ratio}; x{} = {:.1} min at the real limit",
        r.wall.as_secs_f64(),
        r.bound.as_secs_f64(),
        r.scale,
        r.wall.as_secs_f64() * r.scale as f64 / 60.0
    );
    println!("  throttled: 429 {}", r.throttled);
}
