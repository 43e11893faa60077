//! The connector conformance suite against the simulated Microsoft tenant, without and with
//! the Exchange admin hook.

mod common;

use std::sync::Arc;

use common::{MemoryExchange, O365Fixture, connector};
use offboard_core::Connector;
use offboard_testkit::run_conformance;
use offboard_testkit::sim::graph::{GraphFixture, GraphTenant};

const RULES: [&str; 11] = [
    "lookup_zero_matches",
    "lookup_finds_exact_match",
    "lookup_two_matches_is_ambiguous",
    "lookup_hostile_input_never_widens",
    "unknown_action_is_unsupported",
    "repeat_reports_already_done",
    "deleted_user_counts_as_done",
    "needs_account_fails_on_deleted_user",
    "restore_reproduces_snapshot",
    "verify_revoked_agrees_with_reality",
    "no_secret_in_debug",
];

#[tokio::test]
async fn o365_passes_conformance_against_the_simulator() {
    let tenant = Arc::new(GraphTenant::start().await);
    let o365 = connector(&tenant, None);
    assert_eq!(o365.capabilities().actions.len(), 6);
    let fixture = O365Fixture {
        graph: GraphFixture::new(Arc::clone(&tenant)),
        exchange: None,
    };
    let report = run_conformance(&o365, &fixture).await;
    assert_eq!(report.rules, RULES);
    assert_eq!(tenant.rate_limited_count(), 0);
    // The fixture's users are in a team and organise a future meeting: the rules removed
    // the membership, re-added it on rollback, and cancelled the meeting for real.
    let lines: Vec<String> = tenant.requests().iter().map(|r| r.line()).collect();
    for (start, end) in [
        ("DELETE /v1.0/teams/", ""),
        ("POST /v1.0/groups/", "/members/$ref"),
        ("POST /v1.0/users/", "/cancel"),
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(start) && l.ends_with(end)),
            "no {start}…{end} sent"
        );
    }
    eprintln!(
        "conformance: {} requests to the simulated tenant",
        tenant.requests().len()
    );
}

#[tokio::test]
async fn o365_with_exchange_admin_passes_conformance() {
    let tenant = Arc::new(GraphTenant::start().await);
    let exchange = Arc::new(MemoryExchange::default());
    let o365 = connector(&tenant, Some(Arc::clone(&exchange)));
    assert_eq!(o365.capabilities().actions.len(), 9);
    let fixture = O365Fixture {
        graph: GraphFixture::new(Arc::clone(&tenant)),
        exchange: Some(Arc::clone(&exchange)),
    };
    let report = run_conformance(&o365, &fixture).await;
    assert_eq!(report.rules, RULES);
    assert!(
        exchange
            .writes()
            .iter()
            .any(|w| w.starts_with("convert_to_shared")),
        "{:?}",
        exchange.writes()
    );
}
