//! The connector conformance suite against the Samba AD DC started by `./scripts/test`.

mod common;

use offboard_testkit::run_conformance;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_against_samba_ad() {
    let env = common::env();
    let connector = common::connector(&env).await;
    let fixture = common::AdFixture::new(&env).await;
    let started = std::time::Instant::now();
    let report = run_conformance(&connector, &fixture).await;
    eprintln!(
        "conformance rules passed in {:?}: {:?}",
        started.elapsed(),
        report.rules
    );
    assert!(report.rules.contains(&"restore_reproduces_snapshot"));
    assert!(report.rules.contains(&"verify_revoked_agrees_with_reality"));
    assert!(report.rules.contains(&"lookup_hostile_input_never_widens"));
}
