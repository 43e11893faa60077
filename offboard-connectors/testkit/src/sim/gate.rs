//! [`Gate`]: what the HR and identity source simulators share in front of their routes: the
//! request recording, a per-minute budget answered by 429 and `Retry-After`, and the injected
//! failures, each answered with the vendor's own error body.

use std::time::{Duration, Instant};

use wiremock::{Request, ResponseTemplate};

use super::layer::{self, Layer, RecordedRequest, Window};

/// A tenant's recording, request budget and injected failures.
#[derive(Debug)]
pub(crate) struct Gate {
    layer: Layer,
    window: Window,
    per_minute: u32,
    started: Instant,
}

impl Gate {
    /// A gate admitting `per_minute` requests a minute.
    pub(crate) fn new(per_minute: u32) -> Self {
        Self {
            layer: Layer::default(),
            window: Window::default(),
            per_minute,
            started: Instant::now(),
        }
    }

    /// Records `request`, then counts it: the answer when it is over the budget (429 with
    /// `Retry-After` in seconds) or fails by injection (`error(status, message)`, a 429 with
    /// `Retry-After: 1`); `None` when it goes on to the routes.
    pub(crate) fn admit(
        &mut self,
        request: &Request,
        error: impl Fn(u16, &str) -> ResponseTemplate,
    ) -> Option<ResponseTemplate> {
        self.layer.requests.push(layer::record(request));
        let now = self.started.elapsed();
        let counted = self
            .window
            .count(now, Duration::from_secs(60), self.per_minute);
        if !counted.admitted {
            let after = counted.retry_after(now).to_string();
            let answer =
                error(429, "Too Many Requests").insert_header("retry-after", after.as_str());
            return Some(self.layer.throttled(answer));
        }
        let status = self.layer.fail_next.take(&())?;
        let answer = error(status, "Internal Server Error");
        Some(if status == 429 {
            self.layer
                .throttled(answer.insert_header("retry-after", "1"))
        } else {
            answer
        })
    }

    /// Requests a minute before a 429; a new window starts.
    pub(crate) fn set_per_minute(&mut self, n: u32) {
        self.per_minute = n;
        self.window = Window::default();
    }

    /// The next `count` requests fail with `status`.
    pub(crate) fn fail_next(&mut self, count: usize, status: u16) {
        self.layer.fail_next.push(None, status, count);
    }

    /// Every request received, oldest first (credentials redacted).
    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        self.layer.requests.clone()
    }

    /// Requests received so far.
    pub(crate) fn served(&self) -> usize {
        self.layer.requests.len()
    }
}

impl Default for Gate {
    /// 600 requests a minute.
    fn default() -> Self {
        Self::new(600)
    }
}
