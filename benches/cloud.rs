//! The cloud benchmark: offboard N people (default 2,000) in Okta and Google Workspace at
//! once, through the real engine (in-memory store), against the two simulators configured
//! with the vendors' default limits, and compare the wall time with the bound those limits
//! set.
//!
//! - Okta: the Enterprise per-minute budgets per endpoint family (README §3) and a
//!   concurrency limit of 75; the connector reads `X-Rate-Limit-*` and spaces its requests.
//! - Google: 2,400 queries per minute (README §4), answered with 403 `userRateLimitExceeded`
//!   when spent; the connector paces itself to the same budget (Google sends no headers).
//! - Every action of both connectors, in one run per person: Okta's 9 (deactivate after the
//!   others, delete after deactivate) and Google's 13 (transfer to the manager before delete,
//!   delete last). Critical actions are confirmed as an operator would.
//!
//! The bound is, per budget, requests sent ÷ allowed rate, the largest of them (Okta and
//! Google run in parallel, each family of Okta has its own budget). A run at the real
//! defaults whose bound exceeds five minutes is time-compressed: every budget keeps its
//! per-minute size but its window shrinks to `60 / scale` seconds (the connectors are told the
//! same compressed budget), which scales the bound and the wall time alike.
//!
//! Run with `cargo bench --bench cloud`. `OFFBOARD_CLOUD_N` chooses N (default 2000),
//! `OFFBOARD_CLOUD_SCALE` forces the time compression (1 = real time; default: 1 when the
//! estimated bound is at most 5 minutes, else the smallest divisor of 60 giving at most
//! about 3 minutes). Under `cargo test` (no `--bench` argument) it runs N = 10 in real time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use offboard::engine::Limits;
use offboard::memory::MemoryStore;
use offboard::{Engine, Manager, Person};
use offboard_google::{GoogleConfig, Sku};
use offboard_okta::OktaConfig;
use offboard_testkit::Fixture;
use offboard_testkit::sim::google::{GoogleFixture, GoogleLimits, GoogleTenant};
use offboard_testkit::sim::okta::{OktaFixture, OktaTenant, RateFamily, RateLimits};

#[path = "common/mod.rs"]
mod common;

#[path = "common/cloud_policy.rs"]
mod cloud_policy;
use cloud_policy::{GOOGLE, OKTA, policy};

/// Requests per person measured in earlier runs: (Okta, Google), to choose the scale.
const ESTIMATE: (f64, f64) = (25.6, 42.0);

/// The time compression: 1 when the estimated real bound is at most 5 minutes, else the
/// smallest divisor of 60 bringing it to about 3 minutes.
fn choose_scale(n: usize) -> u64 {
    let google_min = n as f64 * ESTIMATE.1 / 2400.0;
    // Okta's busiest family takes about half of its requests, at 600 per minute.
    let okta_min = n as f64 * ESTIMATE.0 / 2.0 / 600.0;
    common::compression(google_min.max(okta_min) * 60.0)
}

struct Report {
    n: usize,
    scale: u64,
    wall: Duration,
    bound: Duration,
    bound_by: String,
    /// Every budget's own bound, in seconds.
    bounds: Vec<(String, f64)>,
    okta_requests: usize,
    google_requests: usize,
    okta_429: u64,
    google_403: u64,
}

async fn measure(n: usize, scale: u64) -> Report {
    let window = 60 / scale;
    let okta_limits = RateLimits::enterprise().with_window_secs(window);
    let google_limits = GoogleLimits::default_quota().with_window_secs(window);
    let okta_tenant = Arc::new(
        OktaTenant::start_with("00okta-cloud-bench-token-0000000", okta_limits.clone()).await,
    );
    let google_tenant = Arc::new(
        GoogleTenant::start_with("ya29.cloud-bench-token-00000000", google_limits.clone()).await,
    );
    let okta_fixture = OktaFixture::new(Arc::clone(&okta_tenant));
    let google_fixture = GoogleFixture::new(Arc::clone(&google_tenant));
    let okta = OktaConfig::new()
        .with_org_url(okta_tenant.uri())
        .with_allow_plain_http(true)
        .with_api_token(offboard::Secret::new(okta_tenant.token()))
        .build()
        .unwrap();
    let (product, sku) = GoogleFixture::LICENCE;
    let google = GoogleConfig::new()
        .with_base_url(google_tenant.uri())
        .with_allow_plain_http(true)
        .with_licensing_url(google_tenant.uri())
        .with_licence_skus([Sku::new(product, sku)])
        .with_request_budget(google_limits.per_minute, Duration::from_secs(window))
        .with_transfer_polling(Duration::from_secs(30), Duration::from_millis(250))
        .with_access_token(offboard::Secret::new(google_tenant.token()))
        .build()
        .unwrap();
    let mut people = Vec::with_capacity(n);
    for i in 0..n {
        let email = format!("p{i}@example.test");
        okta_fixture.create_user(&email, &[]).await;
        google_fixture.create_user(&email, &[]).await;
        people.push(Person::new(format!("p{i}"), email).with_manager(Manager {
            id: None,
            email: GoogleFixture::MANAGER.into(),
        }));
    }
    let limits = Limits::default().with_timeout(Duration::from_secs(120));
    let engine = Engine::builder()
        .store(Arc::new(MemoryStore::new()))
        .connector_with_limits(Arc::new(okta), limits)
        .connector_with_limits(Arc::new(google), limits)
        .policy(policy())
        .idle_poll(Duration::from_millis(100))
        .build()
        .unwrap();
    okta_tenant.clear_requests();
    google_tenant.clear_requests();

    let wall = common::offboard_all(&engine, people, OKTA.len() + GOOGLE.len()).await;
    // Every transfer reached the manager; every Google user is gone.
    let transfers = google_tenant.transfers();
    assert_eq!(transfers.len(), n);
    assert!(transfers.iter().all(|t| t.status == "completed"));

    let okta_requests = okta_tenant.requests();
    let google_requests = google_tenant.requests();
    let mut per_family: BTreeMap<RateFamily, u64> = BTreeMap::new();
    for r in &okta_requests {
        *per_family
            .entry(RateFamily::of_path(&r.method, &r.path))
            .or_default() += 1;
    }
    let window_f = window as f64;
    let mut bounds: Vec<(String, f64)> = per_family
        .iter()
        .map(|(f, count)| {
            let budget = f64::from(okta_limits.per_minute[f]);
            (format!("okta {f:?}"), *count as f64 / budget * window_f)
        })
        .collect();
    bounds.push((
        "google".into(),
        google_requests.len() as f64 / f64::from(google_limits.per_minute) * window_f,
    ));
    let (bound_by, bound) = bounds
        .iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .cloned()
        .unwrap();
    Report {
        n,
        scale,
        wall,
        bound: Duration::from_secs_f64(bound),
        bound_by,
        bounds,
        okta_requests: okta_requests.len(),
        google_requests: google_requests.len(),
        okta_429: okta_tenant.rate_limited_count(),
        google_403: google_tenant.rate_limited_count(),
    }
}

fn main() {
    let bench = common::benching();
    let n = if bench {
        common::env("OFFBOARD_CLOUD_N").unwrap_or(2000)
    } else {
        10
    };
    let scale = if bench {
        common::env("OFFBOARD_CLOUD_SCALE")
            .filter(|s| (1..=60).contains(s) && 60 % s == 0)
            .unwrap_or_else(|| choose_scale(n))
    } else {
        1
    };
    let r = common::block_on(measure(n, scale));
    let ratio = r.wall.as_secs_f64() / r.bound.as_secs_f64().max(f64::EPSILON);
    println!(
        "cloud: {} people, Okta (9 actions) + Google (13 actions), {}",
        r.n,
        if r.scale == 1 {
            "real default limits (60 s windows)".to_owned()
        } else {
            format!(
                "default budgets time-compressed x{} ({} s windows)",
                r.scale,
                60 / r.scale
            )
        }
    );
    println!(
        "  requests: Okta {} ({:.1}/person), Google {} ({:.1}/person)",
        r.okta_requests,
        r.okta_requests as f64 / r.n as f64,
        r.google_requests,
        r.google_requests as f64 / r.n as f64
    );
    println!(
        "  wall {:.1} s, bound {:.1} s (set by {}), ratio {ratio:.3}; x{} = {:.1} min at real limits",
        r.wall.as_secs_f64(),
        r.bound.as_secs_f64(),
        r.bound_by,
        r.scale,
        r.wall.as_secs_f64() * r.scale as f64 / 60.0
    );
    println!(
        "  bounds by budget (s): {}",
        r.bounds
            .iter()
            .map(|(b, s)| format!("{b} {s:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  throttled: Okta 429 {}, Google 403 {}",
        r.okta_429, r.google_403
    );
}
