//! The connector conformance suite against the simulated SCIM service provider, with PATCH and
//! without (PUT fallback).

mod common;

use std::sync::Arc;

use offboard_core::Secret;
use offboard_scim::{ScimConfig, ScimProfile};
use offboard_testkit::run_conformance;
use offboard_testkit::sim::scim::{ScimFixture, ScimProvider, ScimSettings};

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

/// The simulator's setting of each named profile: the provider behaviour the profile is for.
fn settings_for(profile: &ScimProfile) -> ScimSettings {
    let user_name_only = || ["userName".to_owned()].into_iter().collect();
    let etag_off = ScimSettings {
        etag_supported: false,
        ..ScimSettings::default()
    };
    match profile.name {
        "generic" => ScimSettings::default(),
        // DELETE only deactivates.
        "slack" => ScimSettings {
            delete_deactivates: true,
            ..etag_off
        },
        "zoom" | "atlassian" | "notion" => etag_off,
        // No DELETE; filters on userName only.
        "canva" => ScimSettings {
            delete_supported: false,
            filter_attributes: user_name_only(),
            ..etag_off
        },
        // A deactivated user cannot be reactivated; filters on userName only.
        "pagerduty" => ScimSettings {
            reactivation_refused: true,
            filter_attributes: user_name_only(),
            ..etag_off
        },
        other => panic!("no simulator setting for the profile {other}"),
    }
}

/// Guards every quirk profile: the conformance suite passes with each named profile against
/// the simulator set up as that app behaves (Notion: deactivation is the DELETE, after the
/// groups are removed; Slack: DELETE only deactivates; Canva: no DELETE; PagerDuty: no
/// reactivation). Canva and PagerDuty look users up by `userName` only (their providers filter
/// on nothing else), so an address held only in a user's `emails` cannot find it: for them every
/// rule runs but `lookup_finds_exact_match`, whose alias lookup needs an `emails` filter.
#[tokio::test]
async fn every_profile_passes_conformance_with_its_simulator_setting() {
    use offboard_scim::LookupAttribute;
    use offboard_testkit::suite::conformance as rules;
    for profile in ScimProfile::ALL {
        let provider = Arc::new(ScimProvider::start(settings_for(&profile)).await);
        let connector = ScimConfig::new("notion")
            .with_base_url(provider.base_url())
            .with_allow_plain_http(true)
            .with_bearer_token(Secret::new(provider.token()))
            .with_profile(profile.clone())
            .build()
            .unwrap();
        let fixture = ScimFixture::new(Arc::clone(&provider), "notion");
        if profile.lookup.contains(&LookupAttribute::Emails) {
            let report = run_conformance(&connector, &fixture).await;
            assert_eq!(report.rules, common::CONFORMANCE_RULES, "{}", profile.name);
        } else {
            rules::lookup_zero_matches(&connector, &fixture).await;
            rules::lookup_two_matches_is_ambiguous(&connector, &fixture).await;
            rules::lookup_hostile_input_never_widens(&connector, &fixture).await;
            rules::unknown_action_is_unsupported(&connector, &fixture).await;
            rules::repeat_reports_already_done(&connector, &fixture).await;
            rules::deleted_user_counts_as_done(&connector, &fixture).await;
            rules::restore_reproduces_snapshot(&connector, &fixture).await;
            rules::verify_revoked_agrees_with_reality(&connector, &fixture).await;
            rules::no_secret_in_debug(&connector, &fixture).await;
        }
        assert_eq!(provider.rate_limited_count(), 0, "{}", profile.name);
    }
}
