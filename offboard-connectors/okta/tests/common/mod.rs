//! What the test files share: the connector configured for a simulated tenant.

use offboard_core::Secret;
use offboard_okta::{OktaConfig, OktaConnector};
use offboard_testkit::sim::okta::OktaTenant;

/// The connector for `tenant`, with its API token.
pub(crate) fn connector(tenant: &OktaTenant) -> OktaConnector {
    OktaConfig::new()
        .with_org_url(tenant.uri())
        .with_allow_plain_http(true)
        .with_api_token(Secret::new(tenant.token()))
        .build()
        .unwrap()
}
