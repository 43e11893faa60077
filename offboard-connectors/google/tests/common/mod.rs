//! What the connector's test files share.

use offboard_testkit::sim::google::GoogleTenant;

/// The requests the tenant received, oldest first, as `METHOD path?query`.
pub(crate) fn lines(tenant: &GoogleTenant) -> Vec<String> {
    tenant
        .requests()
        .iter()
        .map(|r| {
            let q: Vec<String> = r.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            if q.is_empty() {
                r.line()
            } else {
                format!("{}?{}", r.line(), q.join("&"))
            }
        })
        .collect()
}
