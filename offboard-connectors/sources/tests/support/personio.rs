//! The simulated Personio company as the source suite drives it.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;
use offboard_core::Secret;
use offboard_core::source::SourceOfTruth;
use offboard_sources::PersonioConfig;
use offboard_testkit::sim::personio::{PersonioEmployee, PersonioTenant};
use offboard_testkit::suite::source::{Hire, SourceTenant};

/// A [`PersonioTenant`] under the source suite.
pub(crate) struct Personio(pub(crate) PersonioTenant);

impl Personio {
    /// The source's configuration for this company.
    pub(crate) fn config(&self, page_size: u32) -> PersonioConfig {
        PersonioConfig::new(self.0.client_id(), Secret::new(self.0.client_secret()))
            .with_base_url(self.0.uri())
            .with_allow_plain_http(true)
            .with_page_size(page_size)
            .with_employee_number_attribute(PersonioTenant::EMPLOYEE_NUMBER)
    }
}

#[async_trait]
impl SourceTenant for Personio {
    async fn start() -> Self {
        Self(PersonioTenant::start().await)
    }

    fn source(&self, page_size: u32) -> Arc<dyn SourceOfTruth> {
        Arc::new(self.config(page_size).build().expect("the config builds"))
    }

    fn incremental(&self) -> bool {
        true
    }

    fn hire(&self, hire: &Hire) -> String {
        let mut e = PersonioEmployee::active(
            &hire.email,
            &hire.first_name,
            &hire.last_name,
            &hire.employee_id,
        );
        e.supervisor = hire.manager.as_ref().and_then(|m| m.parse().ok());
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
