//! The connector conformance suite against the simulated Google Workspace tenant (always), and
//! against a real tenant when `OFFBOARD_TEST_GOOGLE` is set (not wired yet: live runs need a
//! tenant-creating fixture).

use std::sync::Arc;
use std::time::Duration;

use offboard_core::Secret;
use offboard_google::{GoogleConfig, Sku};
use offboard_testkit::google::{GoogleFixture, GoogleTenant};
use offboard_testkit::run_conformance;

#[tokio::test]
async fn google_connector_passes_conformance_against_the_simulator() {
    let tenant = Arc::new(GoogleTenant::start().await);
    let (product, sku) = GoogleFixture::LICENCE;
    let connector = GoogleConfig::new()
        .with_base_url(tenant.uri())
        .with_licensing_url(tenant.uri())
        .with_licence_skus([Sku::new(product, sku)])
        .with_transfer_polling(Duration::from_secs(2), Duration::from_millis(10))
        .with_access_token(Secret::new(tenant.token()))
        .build()
        .unwrap();
    let fixture = GoogleFixture::new(Arc::clone(&tenant));
    let report = run_conformance(&connector, &fixture).await;
    assert_eq!(
        report.rules,
        vec![
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
        ]
    );
    assert_eq!(tenant.rate_limited_count(), 0);
    // The new actions ran against the tenant and changed it.
    assert!(!tenant.transfers().is_empty());
    assert!(tenant.transfers().iter().all(|t| t.status == "completed"));
    eprintln!(
        "conformance: {} requests to the simulated tenant",
        tenant.requests().len()
    );
}
