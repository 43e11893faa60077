//! The simulated BambooHR company as the source suite drives it.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;
use offboard_core::Secret;
use offboard_core::source::SourceOfTruth;
use offboard_sources::BambooHrConfig;
use offboard_testkit::sim::bamboohr::{BambooTenant, NewEmployee};
use offboard_testkit::suite::source::{Hire, SourceTenant};

/// A [`BambooTenant`] under the source suite.
pub(crate) struct Bamboo(pub(crate) BambooTenant);

impl Bamboo {
    /// The source's configuration for this company.
    pub(crate) fn config(&self, page_size: u32) -> BambooHrConfig {
        BambooHrConfig::new("sim", Secret::new(self.0.api_key()))
            .with_base_url(self.0.uri())
            .with_allow_plain_http(true)
            .with_page_size(page_size)
    }
}

#[async_trait]
impl SourceTenant for Bamboo {
    async fn start() -> Self {
        Self(BambooTenant::start().await)
    }

    fn source(&self, page_size: u32) -> Arc<dyn SourceOfTruth> {
        Arc::new(self.config(page_size).build().expect("the config builds"))
    }

    fn incremental(&self) -> bool {
        true
    }

    fn hire(&self, hire: &Hire) -> String {
        self.0.add(NewEmployee {
            first_name: hire.first_name.clone(),
            last_name: hire.last_name.clone(),
            work_email: hire.email.clone(),
            employee_number: hire.employee_id.clone(),
            reports_to: hire.manager.clone(),
        })
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
