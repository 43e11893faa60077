//! The simulated SuccessFactors company as the source conformance suite drives it.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;
use offboard_core::Secret;
use offboard_core::source::SourceOfTruth;
use offboard_sources::successfactors::{SuccessFactorsConfig, SuccessFactorsSource};
use offboard_testkit::sim::successfactors::{NewUser, SuccessFactorsTenant};
use offboard_testkit::suite::source::{Hire, SourceTenant};

/// A SuccessFactors company on loopback; people are added with their email's local part as
/// `userId` and their employee id as `empId`.
#[derive(Debug)]
pub(crate) struct SuccessFactorsCompany(pub(crate) SuccessFactorsTenant);

impl SuccessFactorsCompany {
    /// The configuration of a source reading this company (basic authentication).
    pub(crate) fn config(&self, page_size: u32) -> SuccessFactorsConfig {
        let t = &self.0;
        SuccessFactorsConfig::new(
            t.uri(),
            t.company(),
            t.username(),
            Secret::new(t.password()),
        )
        .with_page_size(page_size)
        .with_allow_plain_http(true)
    }

    /// A source reading this company.
    pub(crate) fn build(&self, page_size: u32) -> SuccessFactorsSource {
        self.config(page_size).build().expect("the source builds")
    }
}

#[async_trait]
impl SourceTenant for SuccessFactorsCompany {
    async fn start() -> Self {
        Self(SuccessFactorsTenant::start().await)
    }

    fn source(&self, page_size: u32) -> Arc<dyn SourceOfTruth> {
        Arc::new(self.build(page_size))
    }

    fn incremental(&self) -> bool {
        true
    }

    fn hire(&self, hire: &Hire) -> String {
        let id = hire
            .email
            .split('@')
            .next()
            .unwrap_or(&hire.email)
            .to_owned();
        let mut new = NewUser::new(&id, &hire.email, &hire.first_name, &hire.last_name);
        new.emp_id = Some(hire.employee_id.clone());
        new.manager = hire.manager.clone();
        self.0.add_user(new);
        id
    }

    fn terminate(&self, id: &str, on: NaiveDate) {
        assert!(self.0.terminate(id, on), "{id} exists");
    }

    fn reinstate(&self, id: &str) {
        assert!(self.0.rehire(id), "{id} exists");
    }

    /// `User` is not deletable through the API (`sap:deletable="false"`); a purge is found by
    /// the periodic full listing, tested in `tests/successfactors.rs`.
    fn remove(&self, _id: &str) -> bool {
        false
    }

    fn fail_next(&self, n: usize) {
        self.0.fail_next(n, 500);
    }

    fn served(&self) -> usize {
        self.0.served()
    }
}
