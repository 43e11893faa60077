//! The connector conformance suite against the simulated Google Workspace tenant (always), and
//! against a real tenant when `OFFBOARD_TEST_GOOGLE` is set (not wired yet: live runs need a
//! tenant-creating fixture).

use std::sync::Arc;
use std::time::Duration;

use offboard_core::Secret;
use offboard_google::{GoogleConfig, GoogleConnector, Sku};
use offboard_testkit::run_conformance;
use offboard_testkit::sim::google::{GoogleFixture, GoogleTenant};

fn config(tenant: &GoogleTenant) -> GoogleConfig {
    let (product, sku) = GoogleFixture::LICENCE;
    GoogleConfig::new()
        .with_base_url(tenant.uri())
        .with_allow_plain_http(true)
        .with_licensing_url(tenant.uri())
        .with_licence_skus([Sku::new(product, sku)])
        .with_transfer_polling(Duration::from_secs(2), Duration::from_millis(10))
}

#[tokio::test]
async fn google_connector_passes_conformance_against_the_simulator() {
    let tenant = Arc::new(GoogleTenant::start().await);
    let connector = config(&tenant)
        .with_access_token(Secret::new(tenant.token()))
        .build()
        .unwrap();
    conformance(&connector, &tenant).await;
}

/// The production auth path: every action, snapshot, restore, lookup and verification with a
/// token holding exactly the scopes the connector asks for in its service account's JWT; the
/// simulator demands each method's discovery scopes, so a missing scope is a 403 here.
#[tokio::test]
async fn google_connector_passes_conformance_with_its_own_scopes() {
    let tenant = Arc::new(GoogleTenant::start().await);
    let key = serde_json::json!({
        "type": "service_account",
        "client_email": "offboard@project.iam.gserviceaccount.com",
        "private_key_id": "kid-1",
        "private_key": include_str!("data/test-rsa.pem"),
        "token_uri": tenant.token_uri(),
    })
    .to_string();
    let connector = config(&tenant)
        .with_service_account(Secret::new(key))
        .with_subject("admin@example.test")
        .build()
        .unwrap();
    conformance(&connector, &tenant).await;
    assert!(
        tenant.requests().iter().any(|r| r.line() == "POST /token"),
        "the service account's token was minted by the tenant"
    );
}

async fn conformance(connector: &GoogleConnector, tenant: &Arc<GoogleTenant>) {
    let fixture = GoogleFixture::new(Arc::clone(tenant));
    let report = run_conformance(connector, &fixture).await;
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
    // A hostile address with `/` reached the tenant as one encoded segment of the path.
    assert!(
        tenant
            .requests()
            .iter()
            .any(|r| r.method == "GET" && r.path.contains("kvictim@example.test%2F..%2F..%2F"))
    );
    // The new actions ran against the tenant and changed it.
    assert!(!tenant.transfers().is_empty());
    assert!(tenant.transfers().iter().all(|t| t.status == "completed"));
    eprintln!(
        "conformance: {} requests to the simulated tenant",
        tenant.requests().len()
    );
}
