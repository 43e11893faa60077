//! Time to detect one termination in a large tenant, per source (issue 26 item 4):
//! `cargo bench -p offboard-sources --bench detect`.
//!
//! For each source: a tenant of `OFFBOARD_DETECT_PEOPLE` people (default 50,000) on its
//! simulator, a first full read, one poll with nothing changed, then one termination and the
//! poll that reports it. Printed: the poll's time and requests, and the time to detect with a
//! 1 s poll interval at worst (interval + poll). Goal: ≤ 2 s for incremental sources.
//! `OFFBOARD_DETECT_ONLY=jumpcloud,sailpoint` runs only the sources named. Under `cargo test`
//! (no `--bench` argument, as `./scripts/test` runs every target) it is a smoke run of 200
//! people per source.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use offboard_testkit::suite::source::{Detection, SourceTenant, measure_detection};

/// The poll interval the goal is set for.
const INTERVAL: Duration = Duration::from_secs(1);

async fn detect<T: SourceTenant>(name: &str, page: u32) {
    if let Ok(only) = std::env::var("OFFBOARD_DETECT_ONLY")
        && !only.split(',').any(|o| o.trim() == name)
    {
        return;
    }
    // Under `cargo test` (no `--bench` argument) a smoke run of 200 people per source.
    let people = if std::env::args().any(|a| a == "--bench") {
        std::env::var("OFFBOARD_DETECT_PEOPLE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(50_000)
    } else {
        200
    };
    let tenant = T::start().await;
    let d: Detection = measure_detection(&tenant, people, page).await;
    let mode = if tenant.incremental() {
        "incremental"
    } else {
        "full scan"
    };
    println!(
        "{name:<16} {mode:<11} {:>6} people  sync {:>8.2?}  idle poll {:>4} req  \
         detect poll {:>8.2?} {:>4} req  time to detect ≤ {:.2?}",
        d.people,
        d.sync,
        d.idle_requests,
        d.detect,
        d.detect_requests,
        INTERVAL + d.detect,
    );
}

#[tokio::main]
async fn main() {
    // One line per source: detect::<support::vendor::VendorTenant>("vendor", page).await;
    detect::<support::adp::Adp>("adp", 100).await;
    detect::<support::bamboohr::Bamboo>("bamboohr", 1000).await;
    detect::<support::hibob::Bob>("hibob", 1).await;
    detect::<support::jumpcloud::JumpCloud>("jumpcloud", 100).await;
    detect::<support::namely::Namely>("namely", 50).await;
    detect::<support::onelogin::OneLogin>("onelogin", 100).await;
    detect::<support::paylocity::PaylocityCompany>("paylocity", 5000).await;
    detect::<support::personio::Personio>("personio", 200).await;
    detect::<support::sailpoint::SailPoint>("sailpoint", 250).await;
    detect::<support::successfactors::SuccessFactorsCompany>("successfactors", 1000).await;
    detect::<support::workday::Workday>("workday", 1).await;
}
