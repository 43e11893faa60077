//! The simulated OneLogin account as the source conformance suite drives it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;
use offboard_core::Secret;
use offboard_core::source::SourceOfTruth;
use offboard_sources::onelogin::{MAX_PAGE, OneLoginConfig, OneLoginSource};
use offboard_testkit::sim::onelogin::{NewOneLoginUser, OneLoginTenant};
use offboard_testkit::suite::source::{Hire, SourceTenant};

/// A OneLogin account on loopback; terminating a person suspends them (status 2). The people
/// the suite hires were last updated over the past weeks, a minute apart (the first 40 days
/// ago), as in an account read for the first time: an incremental read's overlap (60 s
/// before the latest `updated_at` seen) then holds what changed since, not everyone (with
/// everyone stamped in the same minute, every read would list the whole account).
#[derive(Debug)]
pub(crate) struct OneLogin(pub(crate) OneLoginTenant, AtomicU64);

/// The OneLogin id the suite knows a person by.
fn id(id: &str) -> u64 {
    id.parse().expect("a OneLogin user id")
}

impl OneLogin {
    /// The config of a source reading this account.
    pub(crate) fn config(&self, page_size: u32) -> OneLoginConfig {
        OneLoginConfig::new(
            self.0.uri(),
            self.0.client_id(),
            Secret::new(self.0.client_secret()),
        )
        .with_page_size(page_size.min(MAX_PAGE))
        .with_allow_plain_http(true)
    }
}

#[async_trait]
impl SourceTenant for OneLogin {
    async fn start() -> Self {
        Self(OneLoginTenant::start().await, AtomicU64::new(0))
    }

    fn source(&self, page_size: u32) -> Arc<dyn SourceOfTruth> {
        Arc::new(OneLoginSource::new(self.config(page_size)).expect("the source builds"))
    }

    fn incremental(&self) -> bool {
        true
    }

    fn hire(&self, hire: &Hire) -> String {
        let login = hire.email.split('@').next().unwrap_or_default();
        let mut user = NewOneLoginUser::active(login, &hire.email);
        user.firstname = hire.first_name.clone();
        user.lastname = hire.last_name.clone();
        user.external_id = Some(hire.employee_id.clone());
        user.manager_user_id = hire.manager.as_deref().map(id);
        let n = self.1.fetch_add(1, Ordering::Relaxed);
        user.age = Duration::from_secs((40 * 86_400u64).saturating_sub(n * 61).max(1));
        self.0.add_user(user).to_string()
    }

    fn terminate(&self, person: &str, _on: NaiveDate) {
        assert!(self.0.set_status(id(person), 2), "{person} exists");
    }

    fn reinstate(&self, person: &str) {
        assert!(self.0.set_status(id(person), 1), "{person} exists");
    }

    fn remove(&self, person: &str) -> bool {
        self.0.remove(id(person))
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
