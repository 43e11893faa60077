//! The connector conformance suite against the simulated Microsoft tenant.

use std::sync::Arc;

use offboard_azure::AzureConfig;
use offboard_core::Secret;
use offboard_testkit::run_conformance;
use offboard_testkit::sim::graph::{GraphFixture, GraphTenant};

#[tokio::test]
async fn entra_connector_passes_conformance_against_the_simulator() {
    let tenant = Arc::new(GraphTenant::start().await);
    let connector = AzureConfig::new()
        .with_tenant_id(tenant.tenant_id())
        .with_client_id(tenant.client_id())
        .with_client_secret(Secret::new(tenant.client_secret()))
        .with_graph_url(tenant.graph_url())
        .with_allow_plain_http(true)
        .with_token_url(tenant.token_url())
        .build()
        .unwrap();
    let fixture = GraphFixture::new(Arc::clone(&tenant));
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
    assert_eq!(tenant.rate_limited_count(), 0);
    // The hostile lookups reached the tenant escaped, and the rule read those filters.
    assert!(tenant.requests().iter().any(|r| {
        r.query_param("$filter")
            .is_some_and(|f| f.contains("userPrincipalName eq ''' or mail eq ''"))
    }));
    assert_eq!(tenant.token_requests(), 1, "the token is cached");
    // The fixture's users have a manager, own an app registration and a Windows laptop
    // enrolled in Intune and an access package: the rules ran the hand-over, its rollback,
    // entra.clear_manager, entra.disable_devices, the Intune wipe and retire, the access
    // package removal and its rollback and the fixture's leaver Lifecycle workflow for real.
    // They hold directory roles (tenant-wide, in an administrative unit, eligible): removal
    // and rollback ran too.
    let lines: Vec<String> = tenant.requests().iter().map(|r| r.line()).collect();
    for (method, tail) in [
        ("POST /v1.0/applications/", "/owners/$ref"),
        ("DELETE /v1.0/applications/", "/$ref"),
        ("DELETE /v1.0/users/", "/manager/$ref"),
        ("PUT /v1.0/users/", "/manager/$ref"),
        ("PATCH /v1.0/devices/", ""),
        ("POST /v1.0/deviceManagement/managedDevices/", "/retire"),
        ("POST /v1.0/deviceManagement/managedDevices/", "/wipe"),
        (
            "POST /v1.0/identityGovernance/lifecycleWorkflows/workflows/",
            "/microsoft.graph.identityGovernance.activate",
        ),
        (
            "POST /v1.0/identityGovernance/entitlementManagement/assignmentRequests",
            "",
        ),
        (
            "POST /v1.0/roleManagement/directory/",
            "roleEligibilityScheduleRequests",
        ),
        (
            "POST /v1.0/roleManagement/directory/",
            "roleAssignmentScheduleRequests",
        ),
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(method) && l.ends_with(tail)),
            "no {method}…{tail} sent"
        );
    }
    let requests = tenant.requests();
    let kinds: Vec<&str> = requests
        .iter()
        .filter_map(|r| r.body.as_ref()?.get("requestType")?.as_str())
        .collect();
    assert!(
        kinds.contains(&"adminRemove") && kinds.contains(&"adminAdd"),
        "{kinds:?}"
    );
    eprintln!(
        "conformance: {} requests to the simulated tenant",
        tenant.requests().len()
    );
}
