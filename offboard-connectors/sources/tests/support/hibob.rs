//! The simulated HiBob company as the source suite drives it.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;
use offboard_core::Secret;
use offboard_core::source::SourceOfTruth;
use offboard_sources::HibobConfig;
use offboard_testkit::sim::hibob::{BobEmployee, HibobTenant};
use offboard_testkit::suite::source::{Hire, SourceTenant};

/// A [`HibobTenant`] under the source suite.
pub(crate) struct Bob(pub(crate) HibobTenant);

impl Bob {
    /// The source's configuration for this company.
    pub(crate) fn config(&self) -> HibobConfig {
        HibobConfig::new(self.0.service_user(), Secret::new(self.0.token()))
            .with_base_url(self.0.uri())
            .with_allow_plain_http(true)
    }
}

#[async_trait]
impl SourceTenant for Bob {
    async fn start() -> Self {
        Self(HibobTenant::start().await)
    }

    /// Bob does not page: `page_size` is ignored.
    fn source(&self, _page_size: u32) -> Arc<dyn SourceOfTruth> {
        Arc::new(self.config().build().expect("the config builds"))
    }

    fn incremental(&self) -> bool {
        false
    }

    fn hire(&self, hire: &Hire) -> String {
        let mut e = BobEmployee::employed(
            &hire.email,
            &hire.first_name,
            &hire.last_name,
            &hire.employee_id,
        );
        e.reports_to = hire.manager.clone();
        self.0.add(e)
    }

    fn terminate(&self, id: &str, on: NaiveDate) {
        self.0.terminate(id, on);
    }

    fn reinstate(&self, id: &str) {
        self.0.rehire(id);
    }

    fn remove(&self, id: &str) -> bool {
        self.0.delete(id)
    }

    fn fail_next(&self, n: usize) {
        self.0.fail_next(n);
    }

    fn served(&self) -> usize {
        self.0.served()
    }
}
