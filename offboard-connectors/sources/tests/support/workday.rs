//! The simulated Workday tenant as the source conformance suite drives it.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;
use offboard_core::{Secret, SourceOfTruth};
use offboard_sources::WorkdayConfig;
use offboard_testkit::sim::workday::{NewWorker, WorkdayTenant};
use offboard_testkit::suite::source::{Hire, SourceTenant};

/// A Workday tenant with its report.
#[derive(Debug)]
pub(crate) struct Workday(pub(crate) WorkdayTenant);

impl Workday {
    /// The source's configuration for this tenant.
    pub(crate) fn config(&self) -> WorkdayConfig {
        let (owner, report) = self.0.report();
        let (client, secret, refresh) = self.0.client();
        WorkdayConfig::new(self.0.uri(), self.0.tenant(), owner, report)
            .with_oauth(client, Secret::new(secret), Secret::new(refresh))
            .with_allow_plain_http(true)
    }
}

#[async_trait]
impl SourceTenant for Workday {
    async fn start() -> Self {
        let tenant = WorkdayTenant::start().await;
        // The suite and the benchmark judge the source, not the vendor's request budget (a
        // 50,000-person scan is hundreds of pages a poll); the throttling tests set theirs.
        tenant.set_per_minute(u32::MAX);
        Self(tenant)
    }

    fn source(&self, _page_size: u32) -> Arc<dyn SourceOfTruth> {
        Arc::new(self.config().build().expect("the Workday source builds"))
    }

    fn incremental(&self) -> bool {
        false
    }

    fn hire(&self, hire: &Hire) -> String {
        self.0.hire(NewWorker {
            employee_id: hire.employee_id.clone(),
            name: hire.display_name(),
            email: hire.email.clone(),
            user_name: hire.email.split('@').next().unwrap_or("").to_owned(),
            manager: hire.manager.clone(),
        })
    }

    fn terminate(&self, id: &str, on: NaiveDate) {
        assert!(self.0.terminate(id, on), "{id} hired");
    }

    fn reinstate(&self, id: &str) {
        assert!(self.0.rehire(id), "{id} hired");
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
