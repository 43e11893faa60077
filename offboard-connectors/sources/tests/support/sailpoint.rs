//! The simulated SailPoint tenant as the source conformance suite drives it.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;
use offboard_core::Secret;
use offboard_core::source::SourceOfTruth;
use offboard_sources::sailpoint::{MAX_PAGE, SailPointConfig, SailPointSource};
use offboard_testkit::sim::sailpoint::{NewIdentity, SailPointTenant};
use offboard_testkit::suite::source::{Hire, SourceTenant};

/// The identity attribute the tenant records a leaver's last day in.
pub(crate) const END_DATE: &str = "endDate";

/// A SailPoint tenant on loopback; terminating a person sets their lifecycle state to
/// `terminated` and their `endDate` attribute, as an HR source's leaver feed does.
#[derive(Debug)]
pub(crate) struct SailPoint(pub(crate) SailPointTenant);

impl SailPoint {
    /// The config of a source reading this tenant.
    pub(crate) fn config(&self, page_size: u32) -> SailPointConfig {
        SailPointConfig::new(
            self.0.uri(),
            self.0.client_id(),
            Secret::new(self.0.client_secret()),
        )
        .with_page_size(page_size.min(MAX_PAGE))
        .with_batch(super::batch(page_size, MAX_PAGE))
        .with_end_date_attribute(END_DATE)
        .with_allow_plain_http(true)
    }
}

#[async_trait]
impl SourceTenant for SailPoint {
    async fn start() -> Self {
        Self(SailPointTenant::start().await)
    }

    fn source(&self, page_size: u32) -> Arc<dyn SourceOfTruth> {
        Arc::new(SailPointSource::new(self.config(page_size)).expect("the source builds"))
    }

    fn incremental(&self) -> bool {
        false
    }

    fn hire(&self, hire: &Hire) -> String {
        let alias = hire.email.split('@').next().unwrap_or_default();
        let mut identity = NewIdentity::active(alias, &hire.email);
        identity.firstname = hire.first_name.clone();
        identity.lastname = hire.last_name.clone();
        identity.identification_number = Some(hire.employee_id.clone());
        identity.manager = hire.manager.clone();
        self.0.add_identity(identity)
    }

    fn terminate(&self, id: &str, on: NaiveDate) {
        assert!(self.0.set_lifecycle_state(id, "terminated"), "{id} exists");
        self.0.set_attribute(id, END_DATE, Some(&on.to_string()));
    }

    fn reinstate(&self, id: &str) {
        assert!(self.0.set_lifecycle_state(id, "active"), "{id} exists");
        self.0.set_attribute(id, END_DATE, None);
    }

    fn remove(&self, id: &str) -> bool {
        self.0.remove(id)
    }

    fn fail_next(&self, n: usize) {
        self.0.fail_next(n, 500);
    }

    fn served(&self) -> usize {
        self.0.served()
    }
}
