//! The connector conformance suite against the simulated SCIM service provider, with PATCH and
//! without (PUT fallback).

mod common;

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
    assert_eq!(report.rules, common::CONFORMANCE_RULES);
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
