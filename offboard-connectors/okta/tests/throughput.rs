//! A small throughput measurement: offboard many people through the connector against the
//! simulated tenant with scaled-down rate limits, and compare the wall time with the bound the
//! limits set. Ignored by default (it takes about 20 s); run with
//! `cargo test -p offboard-okta --test throughput -- --ignored --nocapture`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt as _;
use offboard_core::{Action, ActionName, Connector, ExecuteOptions, Outcome, Secret};
use offboard_okta::OktaConfig;
use offboard_testkit::Fixture;
use offboard_testkit::sim::okta::{OktaFixture, OktaTenant, RateFamily, RateLimits};

const ACTIONS: [&str; 7] = [
    "okta.suspend",
    "okta.clear_sessions",
    "okta.revoke_grants",
    "okta.reset_factors",
    "okta.remove_groups",
    "okta.unassign_apps",
    "okta.remove_admin_roles",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; takes about 20 s"]
async fn offboard_many_people_within_the_rate_limits() {
    // Enterprise budgets per minute, scaled to a 2-second window (÷ 30).
    let window = 2;
    let limits = RateLimits::enterprise()
        .with(RateFamily::UsersList, 20)
        .with(RateFamily::UserGet, 33)
        .with(RateFamily::UserWrite, 20)
        .with(RateFamily::Groups, 20)
        .with(RateFamily::App, 20)
        .with(RateFamily::Other, 20)
        .with_window_secs(window);
    let tenant = Arc::new(OktaTenant::start_with("tok-throughput-000000000", limits.clone()).await);
    let fixture = OktaFixture::new(Arc::clone(&tenant));
    let okta = Arc::new(
        OktaConfig::new()
            .with_org_url(tenant.uri())
            .with_allow_plain_http(true)
            .with_api_token(Secret::new(tenant.token()))
            .build()
            .unwrap(),
    );
    let people = 40;
    let mut accounts = Vec::new();
    for i in 0..people {
        accounts.push(fixture.create_user(&format!("p{i}@example.com"), &[]).await);
    }
    let started = Instant::now();
    let results: Vec<usize> = futures::stream::iter(accounts.clone())
        .map(|a| {
            let okta = Arc::clone(&okta);
            async move {
                let mut done = 0;
                for name in ACTIONS {
                    let action = Action::new(ActionName::from_static(name));
                    loop {
                        match okta.execute(&a, &action, &ExecuteOptions::default()).await {
                            Ok(r) => {
                                if r.outcome == Outcome::Done {
                                    done += 1;
                                }
                                break;
                            }
                            Err(e) if e.is_retryable() => {
                                tokio::time::sleep(e.retry_after().unwrap_or_default()).await;
                            }
                            Err(e) => panic!("{name}: {e}"),
                        }
                    }
                }
                done
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let elapsed = started.elapsed();
    assert!(results.iter().all(|d| *d == ACTIONS.len()));
    let mut per_family: BTreeMap<RateFamily, u64> = BTreeMap::new();
    let requests = tenant.requests();
    for r in &requests {
        *per_family
            .entry(RateFamily::of_path(&r.method, &r.path))
            .or_default() += 1;
    }
    let bound = per_family
        .iter()
        .map(|(f, n)| {
            let budget = u64::from(limits.per_minute[f]);
            // Windows needed: the first is free at t = 0.
            (n.div_ceil(budget).saturating_sub(1)) * window
        })
        .max()
        .unwrap_or(0);
    eprintln!(
        "{people} people x {} actions: {} requests ({:.1}/person), per family {per_family:?}; \
         wall {elapsed:.2?}, bound {bound} s (+ <1 s reset rounding); 429s: {}",
        ACTIONS.len(),
        requests.len(),
        requests.len() as f64 / people as f64,
        tenant.rate_limited_count()
    );
    assert!(tenant.rate_limited_count() <= 3);
}
