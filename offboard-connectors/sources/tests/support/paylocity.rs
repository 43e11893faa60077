//! The simulated Paylocity company as the source conformance suite drives it.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;
use offboard_core::Secret;
use offboard_core::source::SourceOfTruth;
use offboard_sources::paylocity::{PaylocityConfig, PaylocitySource};
use offboard_testkit::sim::paylocity::{NewEmployee, PaylocityTenant};
use offboard_testkit::suite::source::{Hire, SourceTenant};

/// A Paylocity company on loopback; people are hired with their employee id as `employeeId`.
#[derive(Debug)]
pub(crate) struct PaylocityCompany(pub(crate) PaylocityTenant);

impl PaylocityCompany {
    /// The configuration of a source reading this company.
    pub(crate) fn config(&self, page_size: u32) -> PaylocityConfig {
        let t = &self.0;
        PaylocityConfig::new(t.company(), t.client_id(), Secret::new(t.client_secret()))
            .with_base_url(t.api_base())
            .with_token_url(t.token_url())
            .with_page_size(page_size)
            .with_allow_plain_http(true)
    }

    /// A source reading this company.
    pub(crate) fn build(&self, page_size: u32) -> PaylocitySource {
        self.config(page_size).build().expect("the source builds")
    }
}

#[async_trait]
impl SourceTenant for PaylocityCompany {
    async fn start() -> Self {
        Self(PaylocityTenant::start().await)
    }

    fn source(&self, page_size: u32) -> Arc<dyn SourceOfTruth> {
        Arc::new(self.build(page_size))
    }

    fn incremental(&self) -> bool {
        false
    }

    fn hire(&self, hire: &Hire) -> String {
        let mut new = NewEmployee::new(
            &hire.employee_id,
            &hire.email,
            &hire.first_name,
            &hire.last_name,
        );
        new.supervisor = hire.manager.clone();
        self.0.hire(new);
        hire.employee_id.clone()
    }

    fn terminate(&self, id: &str, on: NaiveDate) {
        assert!(self.0.terminate(id, on), "{id} is employed");
    }

    fn reinstate(&self, id: &str) {
        assert!(self.0.rehire(id), "{id} is employed");
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
