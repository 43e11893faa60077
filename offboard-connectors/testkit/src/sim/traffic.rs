//! What the HR tenants ([`super::bamboohr`], [`super::hibob`], [`super::personio`]) share of
//! their traffic: the shared layer's recording and injected failures, one request budget per
//! window, and a count of the requests served; `traffic_controls!` writes the tenant methods
//! that drive them. How a refusal is worded (status, body, headers) stays with the vendor.

use std::time::Duration;

use super::layer::{self, Layer, RecordedRequest, Window};

/// One tenant's traffic.
#[derive(Debug, Default)]
pub(crate) struct Traffic {
    /// Recording, injected failures, throttling count.
    pub(crate) layer: Layer,
    window: Window,
    /// Requests per window (`None`: unlimited) and the window's length.
    limit: Option<(u32, Duration)>,
    served: usize,
}

/// Why a request is refused before its route answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Over the budget: wait `retry_after` seconds; the window of `limit` requests ends at
    /// `reset` (seconds since the epoch).
    Throttled {
        retry_after: u64,
        limit: u32,
        reset: u64,
    },
    /// An injected failure with this status.
    Injected(u16),
}

impl Traffic {
    /// Notes a request received (recorded as given: credentials already hidden).
    pub(crate) fn receive(&mut self, recorded: RecordedRequest) {
        self.served += 1;
        self.layer.requests.push(recorded);
    }

    /// Allows `limit` requests per `window` from now on.
    pub(crate) fn set_limit(&mut self, limit: u32, window: Duration) {
        self.limit = Some((limit, window));
        self.window = Window::default();
    }

    /// Counts the request against the budget, then the injected failures: how to refuse it,
    /// if at all (a throttling answer is counted).
    pub(crate) fn refusal(&mut self) -> Option<Refusal> {
        if let Some((limit, length)) = self.limit {
            let at = Duration::from_secs(layer::epoch_secs());
            let counted = self.window.count(at, length, limit);
            if !counted.admitted {
                return Some(self.layer.throttled(Refusal::Throttled {
                    retry_after: counted.retry_after(at),
                    limit,
                    reset: counted.ends.as_secs(),
                }));
            }
        }
        self.layer.fail_next.take(&()).map(Refusal::Injected)
    }

    /// Requests received.
    pub(crate) fn served(&self) -> usize {
        self.served
    }
}

/// The public controls of a tenant whose `self.shared.state().traffic` is a [`Traffic`]:
/// `fail_next`, `set_limit`, `served`, `requests`, `throttled`. `$throttle` says what a
/// throttled request gets (for the docs).
macro_rules! traffic_controls {
    ($throttle:literal) => {
        /// The next `n` requests fail with a 500.
        pub fn fail_next(&self, n: usize) {
            self.shared
                .state()
                .traffic
                .layer
                .fail_next
                .push(None, 500, n);
        }

        #[doc = concat!("Allows `limit` requests per `window`, then answers ", $throttle, ".")]
        pub fn set_limit(&self, limit: u32, window: std::time::Duration) {
            self.shared.state().traffic.set_limit(limit, window);
        }

        /// Requests received (every status).
        pub fn served(&self) -> usize {
            self.shared.state().traffic.served()
        }

        /// Every request received, oldest first (credentials hidden).
        pub fn requests(&self) -> Vec<$crate::sim::layer::RecordedRequest> {
            self.shared.state().traffic.layer.requests.clone()
        }

        /// Throttling answers given.
        pub fn throttled(&self) -> u64 {
            self.shared.state().traffic.layer.rate_limited
        }
    };
}

pub(crate) use traffic_controls;
