//! The connector conformance suite against the simulated SCIM service provider, with PATCH and
//! without (PUT fallback).

use std::sync::Arc;

use offboard_core::Secret;
use offboard_scim::ScimConfig;
use offboard_testkit::run_conformance;
use offboard_testkit::scim::{ScimFixture, ScimProvider, ScimSettings};

async fn passes(settings: ScimSettings) -> Arc<ScimProvider> {
    let provider = Arc::new(ScimProvider::start(settings).await);
    let connector = ScimConfig::new("notion")
        .with_base_url(provider.base_url())
        .with_allow_plain_http(true)
        .with_bearer_token(Secret::new(provider.token()))
        .build()
        .unwrap();
    let fixture = ScimFixture::new(Arc::clone(&provider), "notion");
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
            "restore_reproduces_snapshot",
            "verify_revoked_agrees_with_reality",
            "no_secret_in_debug",
        ]
    );
    assert_eq!(provider.rate_limited_count(), 0);
    // The hostile lookups reached the provider escaped.
    assert!(provider.requests().iter().any(|r| {
        r.query_param("filter")
            .is_some_and(|f| f.starts_with("userName eq \"") && f.contains(r#"\""#))
    }));
    provider
}

#[tokio::test]
async fn scim_connector_passes_conformance_against_the_simulator() {
    let p = passes(ScimSettings::default()).await;
    assert!(p.requests().iter().any(|r| r.method == "PATCH"));
}

#[tokio::test]
async fn scim_connector_passes_conformance_without_patch() {
    let p = passes(ScimSettings {
        patch_supported: false,
        groups_on_user: false,
        ..ScimSettings::default()
    })
    .await;
    assert!(p.requests().iter().any(|r| r.method == "PUT"));
}
