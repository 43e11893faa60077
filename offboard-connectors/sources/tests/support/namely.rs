//! The simulated Namely company as the source conformance suite drives it.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;
use offboard_core::{Secret, SourceOfTruth};
use offboard_sources::NamelyConfig;
use offboard_testkit::sim::namely::{NamelyTenant, NewProfile};
use offboard_testkit::suite::source::{Hire, SourceTenant};

/// A Namely company.
#[derive(Debug)]
pub(crate) struct Namely(pub(crate) NamelyTenant);

impl Namely {
    /// The source's configuration for this company.
    pub(crate) fn config(&self) -> NamelyConfig {
        NamelyConfig::new(self.0.uri(), Secret::new(self.0.token())).with_allow_plain_http(true)
    }
}

#[async_trait]
impl SourceTenant for Namely {
    async fn start() -> Self {
        let tenant = NamelyTenant::start().await;
        // The suite and the benchmark judge the source, not the vendor's request budget (a
        // 50,000-person scan is hundreds of pages a poll); the throttling tests set theirs.
        tenant.set_per_minute(u32::MAX);
        Self(tenant)
    }

    fn source(&self, page_size: u32) -> Arc<dyn SourceOfTruth> {
        Arc::new(
            self.config()
                .with_page_size(page_size)
                .with_batch(super::batch(page_size, offboard_sources::namely::MAX_PAGE))
                .build()
                .expect("the Namely source builds"),
        )
    }

    fn incremental(&self) -> bool {
        false
    }

    fn hire(&self, hire: &Hire) -> String {
        self.0.hire(NewProfile {
            email: hire.email.clone(),
            first_name: hire.first_name.clone(),
            last_name: hire.last_name.clone(),
            employee_id: hire.employee_id.clone(),
            personal_email: format!("home.{}", hire.email),
            reports_to: hire.manager.clone(),
        })
    }

    fn terminate(&self, id: &str, on: NaiveDate) {
        assert!(self.0.set_status(id, "inactive", Some(on)), "{id} hired");
    }

    fn reinstate(&self, id: &str) {
        assert!(self.0.set_status(id, "active", None), "{id} hired");
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
