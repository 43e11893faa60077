//! The request layer every simulated tenant is built on, so each vendor's module holds only
//! what is the vendor's own.
//!
//! - **Routing**: `serve` mounts a tenant's `Handler` as the one responder of its
//!   [`MockServer`]; `segments` splits and decodes a path, `template_matches` matches it
//!   against a route template of the vendor's description (`{x}` is any one segment).
//! - **Recording**: `record` turns a request into a [`RecordedRequest`] (method, path,
//!   decoded query, headers, JSON body) with the `Authorization` value hidden
//!   (`redacted_headers`), so a recording never holds a credential.
//! - **Credentials**: `authorization`, `bearer` and `basic` read and build the header
//!   values tenants check (which schemes and tokens a tenant accepts is the vendor's).
//! - **Faults**: [`Faults`] (shares of server errors, throttling answers and lost answers,
//!   added latency), drawn by deterministic `Dice`; `FailNext`, the next N requests (of one
//!   scope, e.g. an endpoint family or a method) failing with a chosen status.
//! - **Throttling**: `Window`, a fixed-window request budget (its `Retry-After` and reset
//!   time); `Budget`, a tenant's optional request budget kept in such a window on the epoch
//!   clock; and `InFlight`, a concurrency limit counted over the added latency.
//!
//! `Layer` bundles a tenant's recording, served count, budget, faults and throttling count.
//! The HR and source tenants (ADP, BambooHR, HiBob, JumpCloud, Namely, OneLogin, Paylocity,
//! Personio, SailPoint, SuccessFactors, Workday) run every request through it the same way:
//! `Layer::receive` records and counts it, `Layer::admit` (or its two steps
//! `Layer::over_budget` and `Layer::injected`, where the vendor checks its budget elsewhere)
//! says whether it is refused, as a `Refusal`, counting the throttling answers; and
//! `layer_controls!` writes their public controls (`fail_next`, `set_limit`,
//! `set_rate_limit`, `served`, `requests`, ...). The words of each answer (the error bodies,
//! the rate-limit headers, which status a fault gets) stay with the vendor.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// A tenant's responder: answers every request its server receives.
pub(crate) trait Handler: Send + Sync + 'static {
    /// The answer to `request`.
    fn handle(&self, request: &Request) -> ResponseTemplate;
}

struct Responder<H>(Arc<H>);

impl<H: Handler> Respond for Responder<H> {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.0.handle(request)
    }
}

/// Mounts `handler` as the only responder of `server`: every request reaches it.
pub(crate) async fn serve<H: Handler>(server: &MockServer, handler: Arc<H>) {
    Mock::given(any())
        .respond_with(Responder(handler))
        .mount(server)
        .await;
}

/// Locks a tenant's state; a test that panicked while holding it does not poison the rest.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Now, as time since the Unix epoch (the clock of the tenants' request budgets).
pub(crate) fn epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Now, in whole seconds since the Unix epoch (the clock of the older tenants' rate windows).
pub(crate) fn epoch_secs() -> u64 {
    epoch().as_secs()
}

/// `d` in whole seconds, rounded up.
fn secs_up(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// One request as the tenant received it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordedRequest {
    /// Method.
    pub method: String,
    /// Path, percent-encoded as sent.
    pub path: String,
    /// Query pairs, decoded.
    pub query: Vec<(String, String)>,
    /// Headers; the `Authorization` value is replaced by its scheme and `[REDACTED]`.
    pub headers: Vec<(String, String)>,
    /// Body as JSON, when there was one.
    pub body: Option<Value>,
}

impl RecordedRequest {
    /// `METHOD path`.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// A header's value as recorded (the name in any case; `Authorization` redacted).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A query parameter's value.
    pub fn query_param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// How a recorded `Authorization` value is hidden.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Redaction {
    /// `Bearer [REDACTED]`: the scheme stays, so a test can see which one was used.
    KeepScheme,
    /// `[REDACTED]`.
    Whole,
}

/// The request's headers, in order, with the `Authorization` value hidden.
pub(crate) fn redacted_headers(request: &Request, redaction: Redaction) -> Vec<(String, String)> {
    request
        .headers
        .iter()
        .map(|(k, v)| {
            let value = if k.as_str().eq_ignore_ascii_case("authorization") {
                match redaction {
                    Redaction::Whole => "[REDACTED]".to_owned(),
                    Redaction::KeepScheme => {
                        let scheme = v
                            .to_str()
                            .ok()
                            .and_then(|s| s.split(' ').next())
                            .unwrap_or("");
                        format!("{scheme} [REDACTED]")
                    }
                }
            } else {
                String::from_utf8_lossy(v.as_bytes()).into_owned()
            };
            (k.as_str().to_owned(), value)
        })
        .collect()
}

/// The request as a tenant records it.
pub(crate) fn record(request: &Request) -> RecordedRequest {
    RecordedRequest {
        method: request.method.as_str().to_owned(),
        path: request.url.path().to_owned(),
        query: request.url.query_pairs().into_owned().collect(),
        headers: redacted_headers(request, Redaction::KeepScheme),
        body: serde_json::from_slice(&request.body).ok(),
    }
}

/// The request's `Authorization` value (empty when absent or not text).
pub(crate) fn authorization(request: &Request) -> &str {
    request
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The token of a `Bearer` `Authorization`.
pub(crate) fn bearer(request: &Request) -> Option<&str> {
    authorization(request).strip_prefix("Bearer ")
}

/// The `Authorization` value of HTTP basic authentication (RFC 7617) for `user` and `secret`.
pub(crate) fn basic(user: &str, secret: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"))
    )
}

/// Decodes one percent-encoded path segment (`+` and every other byte but `%XX` as they are;
/// a `%` not followed by two hex digits stays a `%`).
pub(crate) fn decode_segment(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The decoded segments of an absolute path (`/a/b%20c` is `["a", "b c"]`).
pub(crate) fn segments(path: &str) -> Vec<String> {
    path.split('/').skip(1).map(decode_segment).collect()
}

/// Whether path `segments` match a route `template` (`{x}` matches any one segment).
pub(crate) fn template_matches(template: &str, segments: &[&str]) -> bool {
    let parts: Vec<&str> = template.split('/').filter(|p| !p.is_empty()).collect();
    parts.len() == segments.len()
        && parts
            .iter()
            .zip(segments)
            .all(|(p, s)| (p.starts_with('{') && p.ends_with('}')) || p == s)
}

/// A JSON answer (or an empty one).
pub(crate) fn respond(status: u16, body: Option<Value>) -> ResponseTemplate {
    let t = ResponseTemplate::new(status);
    match body {
        Some(b) => t.set_body_json(b),
        None => t,
    }
}

/// An answer still open to inspection (wiremock's template hides its status): status, JSON
/// body, extra headers.
#[derive(Debug, Clone, Default)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Option<Value>,
    pub(crate) headers: Vec<(String, String)>,
}

impl Answer {
    pub(crate) fn new(status: u16, body: Option<Value>) -> Self {
        Self {
            status,
            body,
            headers: Vec::new(),
        }
    }

    pub(crate) fn header(mut self, k: &str, v: impl Into<String>) -> Self {
        self.headers.push((k.to_owned(), v.into()));
        self
    }

    pub(crate) fn template(&self) -> ResponseTemplate {
        let mut t = respond(self.status, self.body.clone());
        for (k, v) in &self.headers {
            t = t.insert_header(k.as_str(), v.as_str());
        }
        t
    }
}

impl From<(u16, Option<Value>)> for Answer {
    fn from((status, body): (u16, Option<Value>)) -> Self {
        Self::new(status, body)
    }
}

/// Fault injection knobs. Each tenant answers a fault in its vendor's words: see its module
/// (e.g. a server error is Okta's 500 `E0000009`, Google's 500 `backendError`, Graph's 503
/// `serviceNotAvailable`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Share (0..=1) of requests answered with the vendor's server error.
    pub error_rate: f64,
    /// Share (0..=1) of requests answered as throttled.
    pub rate_limit_rate: f64,
    /// Share (0..=1) of requests whose change is made but whose answer is held back for
    /// `drop_delay` (a lost answer: the client times out).
    pub drop_rate: f64,
    /// How long a dropped answer is held back (default when zero: 60 s).
    pub drop_delay: Duration,
    /// Added to every answer.
    pub latency: Duration,
}

impl Faults {
    /// How long an answer is held back: the latency, or the drop delay when it is dropped.
    pub(crate) fn delay(&self, dropped: bool) -> Duration {
        match (dropped, self.drop_delay.is_zero()) {
            (false, _) => self.latency,
            (true, true) => Duration::from_secs(60),
            (true, false) => self.drop_delay,
        }
    }
}

/// The tenants' fault dice: xorshift64*, seeded the same in every tenant unless a test picks a
/// seed, so a fault rate picks the same requests on every run.
#[derive(Debug, Clone)]
pub(crate) struct Dice(u64);

impl Default for Dice {
    fn default() -> Self {
        Self(0x9E37_79B9_7F4A_7C15)
    }
}

impl Dice {
    /// Dice seeded with `seed` (zero is replaced: xorshift would stay at zero).
    pub(crate) fn seeded(seed: u64) -> Self {
        if seed == 0 {
            Self::default()
        } else {
            Self(seed)
        }
    }

    /// `true` with probability `p`. Draws nothing when `p` is not positive, so a knob left at
    /// zero does not shift which requests the others pick.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        let draw = (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64;
        draw < p
    }
}

/// Injected failures, in order: each a status and, when set, the only scope it applies to (an
/// endpoint family, a method; `()` for tenants without scopes).
#[derive(Debug, Clone)]
pub(crate) struct FailNext<S> {
    queue: VecDeque<(Option<S>, u16)>,
}

impl<S> Default for FailNext<S> {
    fn default() -> Self {
        Self {
            queue: VecDeque::new(),
        }
    }
}

impl<S: PartialEq + Clone> FailNext<S> {
    /// The next `count` requests (of `scope`, or any when `None`) fail with `status`.
    pub(crate) fn push(&mut self, scope: Option<S>, status: u16, count: usize) {
        self.queue
            .extend(std::iter::repeat_n((scope, status), count));
    }

    /// The earliest injected failure that applies to a request of `scope`, taken off the queue.
    pub(crate) fn take(&mut self, scope: &S) -> Option<u16> {
        let i = self
            .queue
            .iter()
            .position(|(s, _)| s.as_ref().is_none_or(|s| s == scope))?;
        self.queue.remove(i).map(|(_, status)| status)
    }

    /// Forgets every injected failure.
    pub(crate) fn clear(&mut self) {
        self.queue.clear();
    }
}

/// A fixed-window request budget: `limit` requests per window of `length`; a window starts
/// with the first request after the previous one ended. Times are offsets on the caller's
/// clock (seconds since the epoch, or time since the tenant started).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Window {
    started: Option<Duration>,
    used: u32,
}

/// What [`Window::count`] decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counted {
    /// Whether the request fits the budget (then it was counted).
    pub(crate) admitted: bool,
    /// Requests left in the window after this one.
    pub(crate) remaining: u32,
    /// When the window ends, on the caller's clock.
    pub(crate) ends: Duration,
}

impl Counted {
    /// Whole seconds from `now` to the window's end, at least 1 (a `Retry-After`).
    pub(crate) fn retry_after(&self, now: Duration) -> u64 {
        secs_up(self.ends.saturating_sub(now)).max(1)
    }
}

impl Window {
    /// Counts one request at `now` against `limit` per `length`.
    pub(crate) fn count(&mut self, now: Duration, length: Duration, limit: u32) -> Counted {
        let started = match self.started {
            Some(s) if now < s + length => s,
            _ => {
                self.used = 0;
                *self.started.insert(now)
            }
        };
        let admitted = self.used < limit;
        if admitted {
            self.used += 1;
        }
        Counted {
            admitted,
            remaining: limit.saturating_sub(self.used),
            ends: started + length,
        }
    }
}

/// A request budget: at most `limit` requests per window of `length` (none until one is set),
/// on the epoch clock. `Retry-After` is the time left in the window, in whole seconds rounded
/// up.
#[derive(Debug, Clone, Default)]
pub(crate) struct Budget {
    limit: Option<(u32, Duration)>,
    window: Window,
}

impl Budget {
    /// Allows `limit` requests per `length` from now on (`None`: no budget); a new window starts
    /// with the next request.
    pub(crate) fn set(&mut self, limit: Option<u32>, length: Duration) {
        self.limit = limit.map(|limit| (limit, length));
        self.window = Window::default();
    }

    /// The requests allowed per window, when there is a budget.
    pub(crate) fn limit(&self) -> Option<u32> {
        self.limit.map(|(limit, _)| limit)
    }

    /// Counts one request at `now` (time since the epoch): how to refuse it when it is over
    /// the budget.
    pub(crate) fn over(&mut self, now: Duration) -> Option<Refusal> {
        let (limit, length) = self.limit?;
        let counted = self.window.count(now, length, limit);
        (!counted.admitted).then(|| Refusal::Throttled {
            retry_after: counted.retry_after(now),
            limit: Some(limit),
            reset: secs_up(counted.ends),
        })
    }
}

/// Requests in flight, each until its added latency has elapsed: a concurrency limit.
#[derive(Debug, Clone, Default)]
pub(crate) struct InFlight(Vec<Instant>);

impl InFlight {
    /// Whether one more request may start with at most `limit` in flight (`None`: no limit);
    /// an admitted request stays in flight for `latency`.
    pub(crate) fn admit(&mut self, limit: Option<u32>, latency: Duration) -> bool {
        let now = Instant::now();
        self.0.retain(|t| *t > now);
        if limit.is_some_and(|limit| self.0.len() as u32 >= limit) {
            return false;
        }
        if !latency.is_zero() {
            self.0.push(now + latency);
        }
        true
    }
}

/// Why the layer refuses a request before its route answers. The vendor words it (status,
/// body, headers); the layer has already counted it when it is a throttling answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A throttling answer, over the request budget or drawn by chance
    /// ([`Faults::rate_limit_rate`], then `retry_after` is 1): wait `retry_after` seconds, until
    /// `reset` (seconds since the epoch, when the budget's window ends); `limit` is the budget
    /// in force (`None`: none).
    Throttled {
        retry_after: u64,
        limit: Option<u32>,
        reset: u64,
    },
    /// An injected failure with this status: the next queued one ([`FailNext`]), or a drawn
    /// server error (500, [`Faults::error_rate`]). An injected 429 counts as a throttling answer.
    Failed(u16),
}

impl Refusal {
    /// The plain wording Workday, ADP and Namely give a refusal, `error(status, message)`: over
    /// the budget, a 429 "Too Many Requests" with `Retry-After`; an injected 429, "Internal
    /// Server Error" with `Retry-After: 1`; any other failure, "Internal Server Error".
    pub(crate) fn answer(self, error: impl Fn(u16, &str) -> ResponseTemplate) -> ResponseTemplate {
        match self {
            Self::Throttled { retry_after, .. } => error(429, "Too Many Requests")
                .insert_header("retry-after", retry_after.to_string().as_str()),
            Self::Failed(429) => {
                error(429, "Internal Server Error").insert_header("retry-after", "1")
            }
            Self::Failed(status) => error(status, "Internal Server Error"),
        }
    }
}

/// What every tenant keeps of its traffic: the requests received and how many, the request
/// budget, the fault knobs and injected failures (scoped by `S`), the dice, the requests in
/// flight and how many throttling answers it gave.
///
/// A request goes through it in one order: `receive` records and counts it, then `admit`
/// counts it against the budget (`over_budget`) and takes an injected failure (`injected`),
/// each answering with a [`Refusal`] the vendor words. A tenant whose vendor checks its budget
/// elsewhere (after authentication, only on some routes) calls the two steps where they belong.
#[derive(Debug)]
pub(crate) struct Layer<S = (), R = RecordedRequest> {
    /// Every request received, oldest first (a test may clear them).
    pub(crate) requests: Vec<R>,
    /// Requests received (every status; clearing the recording does not reset it).
    pub(crate) served: usize,
    /// The request budget.
    pub(crate) budget: Budget,
    pub(crate) faults: Faults,
    pub(crate) fail_next: FailNext<S>,
    pub(crate) dice: Dice,
    pub(crate) in_flight: InFlight,
    /// Throttling answers given (budget, concurrency and injected).
    pub(crate) rate_limited: u64,
}

impl<S, R> Default for Layer<S, R> {
    fn default() -> Self {
        Self {
            requests: Vec::new(),
            served: 0,
            budget: Budget::default(),
            faults: Faults::default(),
            fail_next: FailNext::default(),
            dice: Dice::default(),
            in_flight: InFlight::default(),
            rate_limited: 0,
        }
    }
}

impl<S, R> Layer<S, R> {
    /// A layer allowing `limit` requests per `length` from the start.
    pub(crate) fn with_budget(limit: u32, length: Duration) -> Self {
        let mut layer = Self::default();
        layer.budget.set(Some(limit), length);
        layer
    }

    /// Notes a request received: `recorded` (credentials already hidden) and one more served.
    pub(crate) fn receive(&mut self, recorded: R) {
        self.served += 1;
        self.requests.push(recorded);
    }

    /// Draws whether this request gets an injected server error.
    pub(crate) fn server_error(&mut self) -> bool {
        let p = self.faults.error_rate;
        self.dice.chance(p)
    }

    /// Draws whether this request gets an injected throttling answer.
    pub(crate) fn throttle(&mut self) -> bool {
        let p = self.faults.rate_limit_rate;
        self.dice.chance(p)
    }

    /// Draws whether this request's answer is lost.
    pub(crate) fn drop_answer(&mut self) -> bool {
        let p = self.faults.drop_rate;
        self.dice.chance(p)
    }

    /// Counts the request against the budget: a counted throttling answer when it is over.
    pub(crate) fn over_budget(&mut self) -> Option<Refusal> {
        let refusal = self.budget.over(epoch())?;
        Some(self.throttled(refusal))
    }

    /// The failure injected into this request, if any: the next queued one ([`FailNext`],
    /// unscoped tenants), else a drawn server error (500) or throttling answer (retry after
    /// 1 s). A throttling answer (an injected 429 too) is counted.
    pub(crate) fn injected(&mut self) -> Option<Refusal>
    where
        S: PartialEq + Clone + Default,
    {
        let refusal = if let Some(status) = self.fail_next.take(&S::default()) {
            Refusal::Failed(status)
        } else if self.server_error() {
            Refusal::Failed(500)
        } else if self.throttle() {
            Refusal::Throttled {
                retry_after: 1,
                limit: self.budget.limit(),
                reset: secs_up(epoch() + Duration::from_secs(1)),
            }
        } else {
            return None;
        };
        Some(match refusal {
            Refusal::Failed(status) if status != 429 => refusal,
            throttling => self.throttled(throttling),
        })
    }

    /// The budget, then the injected failures: how to refuse this request, if at all.
    pub(crate) fn admit(&mut self) -> Option<Refusal>
    where
        S: PartialEq + Clone + Default,
    {
        self.over_budget().or_else(|| self.injected())
    }

    /// Counts a throttling answer and passes it on.
    pub(crate) fn throttled<T>(&mut self, answer: T) -> T {
        self.rate_limited += 1;
        answer
    }
}

/// The public controls of a tenant whose `self.shared.state().layer` is its [`Layer`], one
/// method per item (`;` after each):
///
/// - `fail_next`: `fail_next(count, status)`, the next `count` requests fail with `status`;
///   `fail_next(500)`: `fail_next(n)`, the next `n` requests fail with a 500.
/// - `set_limit("answer")`: `set_limit(limit, window)`, a budget of `limit` requests per
///   `window`, then the `answer` (for the docs).
/// - `set_per_minute`: `set_per_minute(n)`, a budget of `n` requests a minute.
/// - `set_rate_limit(secs, "per")`: `set_rate_limit(Option<u32>)`, a budget per window of
///   `secs` seconds (`"per"` names the window in the docs; `None`: no budget).
/// - `set_faults`, `requests`, `clear_requests`, `served`, and `throttled` (or
///   `rate_limited_count`, the same count under the name the older tenants use).
macro_rules! layer_controls {
    () => {};
    (fail_next; $($rest:tt)*) => {
        /// The next `count` requests fail with `status`, in the vendor's words (see the module
        /// docs).
        pub fn fail_next(&self, count: usize, status: u16) {
            self.shared.state().layer.fail_next.push(None, status, count);
        }
        $crate::sim::layer::layer_controls!($($rest)*);
    };
    (fail_next($status:literal); $($rest:tt)*) => {
        #[doc = concat!("The next `n` requests fail with a ", $status, ".")]
        pub fn fail_next(&self, n: usize) {
            self.shared.state().layer.fail_next.push(None, $status, n);
        }
        $crate::sim::layer::layer_controls!($($rest)*);
    };
    (set_limit($answer:literal); $($rest:tt)*) => {
        #[doc = concat!("Allows `limit` requests per `window`, then answers ", $answer, ".")]
        pub fn set_limit(&self, limit: u32, window: std::time::Duration) {
            self.shared.state().layer.budget.set(Some(limit), window);
        }
        $crate::sim::layer::layer_controls!($($rest)*);
    };
    (set_per_minute; $($rest:tt)*) => {
        /// Requests per minute before a 429 (default 600); a new window starts.
        pub fn set_per_minute(&self, n: u32) {
            let minute = std::time::Duration::from_secs(60);
            self.shared.state().layer.budget.set(Some(n), minute);
        }
        $crate::sim::layer::layer_controls!($($rest)*);
    };
    (set_rate_limit($secs:literal, $per:literal); $($rest:tt)*) => {
        #[doc = concat!(
            "Budgets `limit` requests per ", $per,
            " (`None`: unlimited, the default); a new window starts."
        )]
        pub fn set_rate_limit(&self, limit: Option<u32>) {
            let window = std::time::Duration::from_secs($secs);
            self.shared.state().layer.budget.set(limit, window);
        }
        $crate::sim::layer::layer_controls!($($rest)*);
    };
    (set_faults; $($rest:tt)*) => {
        /// Sets the fault shares and latency of the shared layer.
        pub fn set_faults(&self, faults: $crate::sim::layer::Faults) {
            self.shared.state().layer.faults = faults;
        }
        $crate::sim::layer::layer_controls!($($rest)*);
    };
    (requests; $($rest:tt)*) => {
        /// Every request received, oldest first (credentials hidden).
        pub fn requests(&self) -> Vec<$crate::sim::layer::RecordedRequest> {
            self.shared.state().layer.requests.clone()
        }
        $crate::sim::layer::layer_controls!($($rest)*);
    };
    (clear_requests; $($rest:tt)*) => {
        /// Forgets the recorded requests (the count served stays).
        pub fn clear_requests(&self) {
            self.shared.state().layer.requests.clear();
        }
        $crate::sim::layer::layer_controls!($($rest)*);
    };
    (served; $($rest:tt)*) => {
        /// Requests received so far (every status).
        pub fn served(&self) -> usize {
            self.shared.state().layer.served
        }
        $crate::sim::layer::layer_controls!($($rest)*);
    };
    (throttled; $($rest:tt)*) => {
        /// Throttling answers given.
        pub fn throttled(&self) -> u64 {
            self.shared.state().layer.rate_limited
        }
        $crate::sim::layer::layer_controls!($($rest)*);
    };
    (rate_limited_count; $($rest:tt)*) => {
        /// Throttling answers given.
        pub fn rate_limited_count(&self) -> u64 {
            self.shared.state().layer.rate_limited
        }
        $crate::sim::layer::layer_controls!($($rest)*);
    };
}

pub(crate) use layer_controls;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_dice_are_deterministic_and_zero_draws_nothing() {
        let picks = |dice: &mut Dice| (0..1000).filter(|_| dice.chance(0.2)).count();
        let (mut a, mut b) = (Dice::default(), Dice::default());
        assert!(!b.chance(0.0) && !b.chance(-1.0), "never at zero");
        let (pa, pb) = (picks(&mut a), picks(&mut b));
        assert_eq!(pa, pb, "same seed, same picks; a zero rate shifted nothing");
        assert!((150..250).contains(&pa), "{pa} of 1000 at 20 %");
        assert!((0..100).all(|_| a.chance(1.0)));
        let (mut c, mut d) = (Dice::seeded(42), Dice::seeded(42));
        let pc = (0..1000).filter(|_| c.chance(0.5)).count();
        assert_eq!(pc, (0..1000).filter(|_| d.chance(0.5)).count());
        assert!((400..600).contains(&pc), "{pc} of 1000 at 50 %");
        assert!(Dice::seeded(0).chance(1.0), "a zero seed still draws");
    }

    #[test]
    fn window_admits_its_limit_then_says_when_it_ends() {
        let mut w = Window::default();
        let (len, t) = (Duration::from_secs(60), Duration::from_secs(1_000));
        let first = w.count(t, len, 2);
        assert_eq!((first.admitted, first.remaining), (true, 1));
        assert_eq!(first.ends, t + len);
        assert!(w.count(t + Duration::from_secs(10), len, 2).admitted);
        let over = w.count(t + Duration::from_secs(20), len, 2);
        assert_eq!((over.admitted, over.remaining), (false, 0));
        assert_eq!(over.retry_after(t + Duration::from_secs(20)), 40);
        assert_eq!(
            over.retry_after(t + Duration::from_millis(59_500)),
            1,
            "rounded up"
        );
        assert_eq!(over.retry_after(t + len + len), 1, "never below 1");
        let next = w.count(t + len, len, 2);
        assert_eq!(
            (next.admitted, next.ends),
            (true, t + len + len),
            "new window"
        );
        assert!(
            !Window::default().count(t, len, 0).admitted,
            "a zero budget"
        );
    }

    #[test]
    fn a_budget_says_when_to_retry_and_when_its_window_resets() {
        let mut b = Budget::default();
        let at = |ms: u64| Duration::from_millis(ms);
        assert_eq!(b.over(at(1_000_500)), None, "no budget");
        b.set(Some(1), Duration::from_secs(60));
        assert_eq!(b.limit(), Some(1));
        assert_eq!(
            b.over(at(1_000_500)),
            None,
            "the first request starts the window"
        );
        let refused = Refusal::Throttled {
            retry_after: 50,
            limit: Some(1),
            reset: 1_061,
        };
        assert_eq!(b.over(at(1_010_500)), Some(refused), "rounded up");
        assert_eq!(b.over(at(1_060_500)), None, "a new window");
        b.set(Some(1), Duration::from_secs(60));
        assert_eq!(
            b.over(at(1_060_600)),
            None,
            "setting it starts a new window"
        );
        b.set(None, Duration::from_secs(60));
        assert_eq!(b.over(at(1_060_700)), None);
    }

    #[test]
    fn admit_counts_the_budget_then_takes_an_injected_failure_once() {
        let mut layer: Layer = Layer::with_budget(2, Duration::from_secs(60));
        let request = RecordedRequest {
            method: "GET".into(),
            path: "/x".into(),
            query: Vec::new(),
            headers: Vec::new(),
            body: None,
        };
        layer.fail_next.push(None, 503, 1);
        let admit = |layer: &mut Layer| {
            layer.receive(request.clone());
            layer.admit()
        };
        assert_eq!(
            admit(&mut layer),
            Some(Refusal::Failed(503)),
            "in the budget"
        );
        assert_eq!(admit(&mut layer), None, "an injected failure is taken once");
        for _ in 0..2 {
            let now = epoch_secs();
            match admit(&mut layer) {
                Some(Refusal::Throttled {
                    retry_after,
                    limit,
                    reset,
                }) => {
                    assert!((59..=60).contains(&retry_after), "{retry_after}");
                    assert_eq!(limit, Some(2));
                    assert!((now + 59..=now + 61).contains(&reset), "{reset}, now {now}");
                }
                other => panic!("over the budget: {other:?}"),
            }
        }
        assert_eq!(
            layer.rate_limited, 2,
            "each refusal over the budget counted"
        );
        assert_eq!(layer.fail_next.take(&()), None, "nothing left queued");

        layer.budget.set(None, Duration::from_secs(60));
        layer.fail_next.push(None, 429, 1);
        assert_eq!(admit(&mut layer), Some(Refusal::Failed(429)));
        assert_eq!(
            layer.rate_limited, 3,
            "an injected 429 is a throttling answer"
        );
        layer.faults.rate_limit_rate = 1.0;
        assert!(
            matches!(
                admit(&mut layer),
                Some(Refusal::Throttled {
                    retry_after: 1,
                    limit: None,
                    ..
                })
            ),
            "a throttling answer drawn by chance"
        );
        assert_eq!(layer.rate_limited, 4);
        layer.faults = Faults::default();
        assert_eq!(admit(&mut layer), None, "no budget, nothing injected");

        layer.requests.clear();
        assert_eq!(admit(&mut layer), None);
        assert_eq!(
            (layer.served, layer.requests.len()),
            (8, 1),
            "served counts every request, a cleared recording too"
        );
        assert_eq!(layer.requests[0], request);
    }

    #[test]
    fn fail_next_serves_its_scope_in_order() {
        let mut f = FailNext::default();
        f.push(Some("PATCH"), 412, 1);
        f.push(None, 500, 2);
        assert_eq!(
            f.take(&"GET"),
            Some(500),
            "a scoped failure waits for its scope"
        );
        assert_eq!(f.take(&"PATCH"), Some(412), "the earliest that applies");
        assert_eq!(f.take(&"PATCH"), Some(500));
        assert_eq!(f.take(&"GET"), None);
        f.push(None, 503, 3);
        f.clear();
        assert_eq!(f.take(&"GET"), None);
    }

    #[test]
    fn in_flight_counts_requests_over_their_latency() {
        let mut f = InFlight::default();
        let long = Duration::from_secs(60);
        assert!(f.admit(Some(2), long) && f.admit(Some(2), long));
        assert!(!f.admit(Some(2), long), "two in flight");
        assert!(f.admit(None, long), "no limit");
        let mut quick = InFlight::default();
        assert!(
            (0..10).all(|_| quick.admit(Some(1), Duration::ZERO)),
            "no latency, never busy"
        );
    }

    #[test]
    fn paths_decode_and_match_templates() {
        assert_eq!(segments("/a/b%20c/%zz/x+y"), ["a", "b c", "%zz", "x+y"]);
        assert!(template_matches(
            "/users/{user-id}/manager",
            &["users", "42", "manager"]
        ));
        assert!(template_matches(
            "admin/v1/users/{userKey}",
            &["admin", "v1", "users", "x"]
        ));
        assert!(!template_matches("/users/{user-id}", &["users"]));
        assert!(!template_matches("/users/{user-id}", &["groups", "42"]));
    }

    #[test]
    fn basic_credentials_and_delays() {
        assert_eq!(
            basic("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        let f = Faults {
            latency: Duration::from_millis(5),
            ..Faults::default()
        };
        assert_eq!(f.delay(false), Duration::from_millis(5));
        assert_eq!(f.delay(true), Duration::from_secs(60), "default drop delay");
        let f = Faults {
            drop_delay: Duration::from_secs(2),
            ..f
        };
        assert_eq!(f.delay(true), Duration::from_secs(2));
    }

    #[tokio::test]
    async fn recordings_hide_the_credential() {
        let server = MockServer::start().await;
        type Headers = Vec<(String, String)>;
        struct Echo(Mutex<Vec<(RecordedRequest, Headers)>>);
        impl Handler for Echo {
            fn handle(&self, request: &Request) -> ResponseTemplate {
                lock(&self.0).push((record(request), redacted_headers(request, Redaction::Whole)));
                let ok = bearer(request) == Some("s3cret-token");
                respond(if ok { 200 } else { 401 }, None)
            }
        }
        let echo = Arc::new(Echo(Mutex::new(Vec::new())));
        serve(&server, Arc::clone(&echo)).await;
        let status = reqwest::Client::new()
            .post(format!("{}/a%2Fb?q=x%20y", server.uri()))
            .bearer_auth("s3cret-token")
            .json(&serde_json::json!({"k": 1}))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200, "the handler read the bearer token");
        let seen = lock(&echo.0).clone();
        let (r, whole) = &seen[0];
        assert_eq!(r.line(), "POST /a%2Fb");
        assert_eq!(r.query_param("q"), Some("x y"));
        assert_eq!(r.body, Some(serde_json::json!({"k": 1})));
        let auth = |h: &[(String, String)]| {
            h.iter()
                .find(|(k, _)| k == "authorization")
                .map(|(_, v)| v.clone())
        };
        assert_eq!(auth(&r.headers).as_deref(), Some("Bearer [REDACTED]"));
        assert_eq!(auth(whole).as_deref(), Some("[REDACTED]"));
        assert!(
            !format!("{seen:?}").contains("s3cret"),
            "no credential recorded"
        );
    }
}
