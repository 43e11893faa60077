//! [`Gate`]: the Workday, ADP and Namely simulators' front door, on the HR tenants'
//! [`Traffic`] (recording, a request budget per window, injected failures): a per-minute
//! budget answered by 429 and `Retry-After`, and each refusal worded by the vendor's `error`.

use std::time::Duration;

use wiremock::{Request, ResponseTemplate};

use super::layer::{self, RecordedRequest};
use super::traffic::{Refusal, Traffic};

/// A tenant's recording, request budget and injected failures.
#[derive(Debug)]
pub(crate) struct Gate {
    traffic: Traffic,
}

impl Gate {
    /// A gate admitting `per_minute` requests a minute.
    pub(crate) fn new(per_minute: u32) -> Self {
        let mut traffic = Traffic::default();
        traffic.set_limit(per_minute, Duration::from_secs(60));
        Self { traffic }
    }

    /// Records `request`, then counts it: the answer when it is over the budget (429 with
    /// `Retry-After` in seconds) or fails by injection (`error(status, message)`, a 429 with
    /// `Retry-After: 1`); `None` when it goes on to the routes.
    pub(crate) fn admit(
        &mut self,
        request: &Request,
        error: impl Fn(u16, &str) -> ResponseTemplate,
    ) -> Option<ResponseTemplate> {
        self.traffic.receive(layer::record(request));
        Some(match self.traffic.refusal()? {
            Refusal::Throttled { retry_after, .. } => error(429, "Too Many Requests")
                .insert_header("retry-after", retry_after.to_string().as_str()),
            Refusal::Injected(429) => self
                .traffic
                .layer
                .throttled(error(429, "Internal Server Error").insert_header("retry-after", "1")),
            Refusal::Injected(status) => error(status, "Internal Server Error"),
        })
    }

    /// Requests a minute before a 429; a new window starts.
    pub(crate) fn set_per_minute(&mut self, n: u32) {
        self.traffic.set_limit(n, Duration::from_secs(60));
    }

    /// The next `count` requests fail with `status`.
    pub(crate) fn fail_next(&mut self, count: usize, status: u16) {
        self.traffic.layer.fail_next.push(None, status, count);
    }

    /// Every request received, oldest first (credentials redacted).
    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        self.traffic.layer.requests.clone()
    }

    /// Requests received so far.
    pub(crate) fn served(&self) -> usize {
        self.traffic.served()
    }
}

impl Default for Gate {
    /// 600 requests a minute.
    fn default() -> Self {
        Self::new(600)
    }
}
