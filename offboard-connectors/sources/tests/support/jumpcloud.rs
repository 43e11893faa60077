//! The simulated JumpCloud organisation as the source conformance suite drives it.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;
use offboard_core::Secret;
use offboard_core::source::SourceOfTruth;
use offboard_sources::jumpcloud::{JumpCloudConfig, JumpCloudSource, MAX_PAGE};
use offboard_testkit::sim::jumpcloud::{JumpCloudTenant, NewSystemUser};
use offboard_testkit::suite::source::{Hire, SourceTenant};

/// A JumpCloud organisation on loopback; terminating a person suspends them (`state:
/// SUSPENDED`), the only departure JumpCloud records.
#[derive(Debug)]
pub(crate) struct JumpCloud(pub(crate) JumpCloudTenant);

impl JumpCloud {
    /// The config of a source reading this organisation.
    pub(crate) fn config(&self, page_size: u32) -> JumpCloudConfig {
        JumpCloudConfig::new(Secret::new(self.0.api_key()))
            .with_base_url(self.0.uri())
            .with_page_size(page_size.min(MAX_PAGE))
            .with_batch(super::batch(page_size, MAX_PAGE))
            .with_allow_plain_http(true)
    }
}

#[async_trait]
impl SourceTenant for JumpCloud {
    async fn start() -> Self {
        Self(JumpCloudTenant::start().await)
    }

    fn source(&self, page_size: u32) -> Arc<dyn SourceOfTruth> {
        Arc::new(JumpCloudSource::new(self.config(page_size)).expect("the source builds"))
    }

    fn incremental(&self) -> bool {
        false
    }

    fn hire(&self, hire: &Hire) -> String {
        let login = hire.email.split('@').next().unwrap_or_default();
        let mut user = NewSystemUser::active(login, &hire.email);
        user.firstname = hire.first_name.clone();
        user.lastname = hire.last_name.clone();
        user.employee_identifier = Some(hire.employee_id.clone());
        user.manager = hire.manager.clone();
        self.0.add_user(user)
    }

    fn terminate(&self, id: &str, _on: NaiveDate) {
        assert!(self.0.set_state(id, "SUSPENDED"), "{id} exists");
    }

    fn reinstate(&self, id: &str) {
        assert!(self.0.set_state(id, "ACTIVATED"), "{id} exists");
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

    fn reports_termination_date(&self) -> bool {
        false
    }
}
