//! Signed outgoing webhooks: a [`Notifier`] that POSTs each notification as JSON to one URL
//! (a Slack or Teams bridge, a PSA), through a durable outbox in the engine's store.
//!
//! # The request
//! `POST <url>` with `Content-Type: application/json` and the body: the [`Notification`] as
//! JSON (`id`, `kind`, `seq`, `at`, `run`, `overdue`) plus `text`, its one-line subject (what a
//! Slack incoming webhook shows). Headers:
//! - `Idempotency-Key: <notification id>`: the same on every delivery of one notification
//!   (retries, and again after a restart), so the receiver drops repeats;
//! - `X-Offboard-Event: <kind>` (`run_started`, `task_overdue`, `run_finished`, `run_failed`);
//! - `X-Offboard-Signature: t=<unix seconds>,v1=<hex>`, where `<hex>` is the lowercase hex
//!   HMAC-SHA256, keyed with the shared secret's bytes, of `<t>.<body>` (the decimal timestamp,
//!   a full stop, and the exact body bytes), as Stripe signs its webhooks. A receiver
//!   recomputes it over the raw body, compares in constant time, and refuses a `t` older than
//!   its tolerance (five minutes, say) to stop replays. [`signature`] computes it.
//!
//! # Delivery
//! [`Notifier::notify`] only writes the notification to the outbox (records of namespace
//! `webhook:<name>` in the store: `slot:<n>` per notification in arrival order, `id:<id>` so a
//! notification queued twice is queued once, `next` the first slot not yet finished) and
//! returns: the engine moves on once it is durable. The delivery task
//! ([`Notifier::start`], started by `Engine::start`) sends the slots in order, one at a time:
//! - a 2xx answer marks the slot delivered;
//! - 5xx, 429, a timeout or a connection error is retried with exponential backoff and jitter
//!   ([`Backoff`]), waiting at least what `Retry-After` asks, up to `max_attempts` attempts;
//! - any other answer (400, 401, 404, ...) is not retried: the slot is given up and an audit
//!   note `webhook_gave_up` (notification id, kind, status, attempts, the URL's host; never the
//!   URL's path, which for Slack holds a token) is appended to the trail, as after the last
//!   attempt.
//!
//! A restart resumes at `next`: a send cut short by a crash is sent again with the same
//! `Idempotency-Key`, and a notification written to the outbox but never sent is sent. At
//! least once, never lost. Two engines running the same notifier on one store may both send a
//! slot; the idempotency key makes that harmless to a receiver that honours it.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use offboard_core::engine::Backoff;
use offboard_core::notify::{Notification, Notifier};
use offboard_core::store::{RecordSwap, Store};
use offboard_core::{AuditEvent, AuditKind, Error, ErrorKind, Result, Secret};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::Notify;
use url::Url;

use crate::{parse_retry_after, require_https};

/// The audit note appended when a notification is given up.
pub const GAVE_UP_NOTE: &str = "webhook_gave_up";

/// The signature header's name.
pub const SIGNATURE_HEADER: &str = "X-Offboard-Signature";

/// How long the delivery task waits before looking at the outbox again when nothing woke it
/// (another engine may have queued a notification).
const IDLE_LOOK: Duration = Duration::from_secs(30);

/// The `X-Offboard-Signature` value for `body` sent at `timestamp` (unix seconds):
/// `t=<timestamp>,v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub fn signature(secret: &Secret, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Builds a [`WebhookNotifier`].
pub struct WebhookNotifierBuilder {
    name: String,
    url: String,
    secret: Secret,
    timeout: Duration,
    backoff: Backoff,
    max_attempts: u32,
    allow_plain_http: bool,
}

impl fmt::Debug for WebhookNotifierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookNotifierBuilder")
            .field("name", &self.name)
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

impl WebhookNotifierBuilder {
    /// Each request's timeout (default 10 s); a timeout is retried.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The backoff between attempts (default 1 s doubling to 5 min, jittered).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// How many attempts before a notification is given up (default 12; at least 1).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Allows a plain `http` URL on this machine (loopback), for tests and local bridges.
    pub fn allow_plain_http(mut self, allow: bool) -> Self {
        self.allow_plain_http = allow;
        self
    }

    /// Validates and builds; the outbox lives in `store` (the engine's).
    ///
    /// # Errors
    /// `Config` for an empty name (`webhook.name`), an empty secret (`webhook.<name>.secret`),
    /// or a URL that does not parse or is not https (`webhook.<name>.url`; the message never
    /// repeats the URL).
    pub fn build(self, store: Arc<dyn Store>) -> Result<WebhookNotifier> {
        if self.name.trim().is_empty() {
            return Err(Error::config("webhook.name", "must not be empty"));
        }
        let key = |what: &str| format!("webhook.{}.{what}", self.name);
        if self.secret.is_empty() {
            return Err(Error::config(key("secret"), "must not be empty"));
        }
        let url = Url::parse(&self.url)
            .map_err(|e| Error::config(key("url"), format!("not a URL: {e}")))?;
        require_https(&url, &key("url"), self.allow_plain_http)?;
        let http = reqwest::Client::builder()
            .timeout(self.timeout)
            .user_agent(concat!("offboard/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::config(key("url"), format!("HTTP client: {e}")))?;
        Ok(WebhookNotifier {
            inner: Arc::new(Inner {
                namespace: format!("webhook:{}", self.name),
                name: self.name,
                url,
                secret: self.secret,
                backoff: self.backoff,
                max_attempts: self.max_attempts,
                http,
                store,
                wake: Notify::new(),
                hint: AtomicU64::new(0),
            }),
            started: AtomicBool::new(false),
            task: Mutex::new(None),
        })
    }
}

/// A [`Notifier`] that POSTs signed JSON to one URL through a durable outbox (see the
/// [module docs](self)).
pub struct WebhookNotifier {
    inner: Arc<Inner>,
    started: AtomicBool,
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

struct Inner {
    name: String,
    namespace: String,
    url: Url,
    secret: Secret,
    backoff: Backoff,
    max_attempts: u32,
    http: reqwest::Client,
    store: Arc<dyn Store>,
    /// Woken when a notification is queued.
    wake: Notify,
    /// Where the next free slot probably is (0: not known yet).
    hint: AtomicU64,
}

impl fmt::Debug for WebhookNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL's path may hold a token (Slack's do): only its host is shown.
        f.debug_struct("WebhookNotifier")
            .field("name", &self.inner.name)
            .field("host", &self.inner.url.host_str())
            .field("secret", &self.inner.secret)
            .finish_non_exhaustive()
    }
}

impl Drop for WebhookNotifier {
    fn drop(&mut self) {
        if let Some(task) = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

/// An outbox slot.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Slot {
    notification: Notification,
    state: SlotState,
    attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_status: Option<u16>,
}

/// Where a slot stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotState {
    /// Not yet delivered.
    Pending,
    /// A 2xx answer came.
    Delivered,
    /// Given up (a 4xx other than 429, or the attempts spent); an audit note says why.
    GaveUp,
}

/// What one attempt came to.
enum Attempt {
    Delivered(u16),
    Retry {
        status: Option<u16>,
        after: Option<Duration>,
    },
    Refused(u16),
}

impl WebhookNotifier {
    /// A builder for the notifier `name` (unique among the engine's notifiers: the outbox and
    /// the engine's position are kept under it) posting to `url`, signed with `secret`.
    pub fn builder(
        name: impl Into<String>,
        url: impl Into<String>,
        secret: Secret,
    ) -> WebhookNotifierBuilder {
        WebhookNotifierBuilder {
            name: name.into(),
            url: url.into(),
            secret,
            timeout: Duration::from_secs(10),
            backoff: Backoff {
                base: Duration::from_secs(1),
                cap: Duration::from_secs(300),
            },
            max_attempts: 12,
            allow_plain_http: false,
        }
    }

    /// Where the outbox slot holding notification `id` stands (`None`: not queued).
    ///
    /// # Errors
    /// When the store cannot be read.
    pub async fn state_of(&self, id: &str) -> Result<Option<SlotState>> {
        let inner = &self.inner;
        let Some(index) = inner
            .store
            .get_record(&inner.namespace, &id_key(id))
            .await?
        else {
            return Ok(None);
        };
        let slot = index.value["slot"].as_u64().unwrap_or(0);
        Ok(inner.slot(slot).await?.map(|(_, s)| s.state))
    }
}

fn id_key(id: &str) -> String {
    // Keys are bounded; a notification id is short, but keep the key within bounds anyway.
    let mut key = format!("id:{id}");
    key.truncate(offboard_core::store::MAX_RECORD_KEY);
    key
}

#[async_trait]
impl Notifier for WebhookNotifier {
    fn name(&self) -> String {
        self.inner.name.clone()
    }

    async fn notify(&self, notification: &Notification) -> Result<()> {
        self.inner.enqueue(notification).await?;
        self.inner.wake.notify_one();
        Ok(())
    }

    fn start(&self) {
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let inner = self.inner.clone();
        let task = tokio::spawn(async move { inner.deliver_forever().await });
        *self.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(task.abort_handle());
    }
}

impl Inner {
    async fn slot(&self, n: u64) -> Result<Option<(u64, Slot)>> {
        let Some(rec) = self
            .store
            .get_record(&self.namespace, &format!("slot:{n}"))
            .await?
        else {
            return Ok(None);
        };
        let slot = serde_json::from_value(rec.value).map_err(|e| {
            Error::new(
                ErrorKind::Storage,
                format!("webhook outbox slot {n} is not ours: {e}"),
            )
        })?;
        Ok(Some((rec.version, slot)))
    }

    /// The first slot not yet finished (the `next` record; 1 when there is none).
    async fn next(&self) -> Result<(u64, u64)> {
        match self.store.get_record(&self.namespace, "next").await? {
            Some(r) => Ok((r.version, r.value["slot"].as_u64().unwrap_or(1))),
            None => {
                let (r, _) = self
                    .store
                    .insert_record(&self.namespace, "next", &serde_json::json!({ "slot": 1 }))
                    .await?;
                Ok((r.version, r.value["slot"].as_u64().unwrap_or(1)))
            }
        }
    }

    /// Writes the notification to the outbox unless it is queued already.
    async fn enqueue(&self, n: &Notification) -> Result<()> {
        let key = id_key(&n.id);
        if self
            .store
            .get_record(&self.namespace, &key)
            .await?
            .is_some()
        {
            return Ok(());
        }
        let value = serde_json::to_value(Slot {
            notification: n.clone(),
            state: SlotState::Pending,
            attempts: 0,
            last_status: None,
        })
        .map_err(|e| Error::internal(format!("a notification did not encode: {e}")))?;
        let mut at = match self.hint.load(Ordering::Acquire) {
            0 => self.next().await?.1,
            h => h,
        };
        loop {
            let (_, stored) = self
                .store
                .insert_record(&self.namespace, &format!("slot:{at}"), &value)
                .await?;
            if stored {
                break;
            }
            at += 1;
        }
        self.hint.store(at + 1, Ordering::Release);
        self.store
            .insert_record(&self.namespace, &key, &serde_json::json!({ "slot": at }))
            .await?;
        Ok(())
    }

    async fn deliver_forever(self: Arc<Self>) {
        let mut failures = 0;
        loop {
            match self.deliver_pending().await {
                Ok(()) => {
                    failures = 0;
                    let woken = self.wake.notified();
                    tokio::select! {
                        () = woken => {}
                        () = tokio::time::sleep(IDLE_LOOK) => {}
                    }
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, notifier = %self.name, "webhook outbox: reading or writing the store failed; trying again");
                    tokio::time::sleep(self.backoff.delay(failures)).await;
                }
            }
        }
    }

    /// Delivers every queued slot, in order, until the outbox is empty.
    async fn deliver_pending(&self) -> Result<()> {
        loop {
            let (next_version, pos) = self.next().await?;
            let Some((version, slot)) = self.slot(pos).await? else {
                return Ok(());
            };
            if slot.state == SlotState::Pending {
                self.deliver(pos, version, slot).await?;
            }
            // Move `next` on, unless another engine did.
            self.store
                .swap_record(
                    &self.namespace,
                    "next",
                    next_version,
                    &serde_json::json!({ "slot": pos + 1 }),
                )
                .await?;
        }
    }

    /// Sends one slot until it is delivered or given up, recording each attempt.
    async fn deliver(&self, pos: u64, mut version: u64, mut slot: Slot) -> Result<()> {
        loop {
            let attempt = self.attempt(&slot.notification).await;
            slot.attempts += 1;
            let (state, wait) = match attempt {
                Attempt::Delivered(status) => {
                    slot.last_status = Some(status);
                    (SlotState::Delivered, None)
                }
                Attempt::Refused(status) => {
                    slot.last_status = Some(status);
                    (SlotState::GaveUp, None)
                }
                Attempt::Retry { status, after } => {
                    slot.last_status = status;
                    if slot.attempts >= self.max_attempts {
                        (SlotState::GaveUp, None)
                    } else {
                        let backoff = self.backoff.delay(slot.attempts);
                        (
                            SlotState::Pending,
                            Some(after.map_or(backoff, |a| a.max(backoff))),
                        )
                    }
                }
            };
            slot.state = state;
            if state == SlotState::GaveUp {
                self.gave_up(&slot).await?;
            }
            let value = serde_json::to_value(&slot)
                .map_err(|e| Error::internal(format!("a slot did not encode: {e}")))?;
            match self
                .store
                .swap_record(&self.namespace, &format!("slot:{pos}"), version, &value)
                .await?
            {
                RecordSwap::Swapped(r) => version = r.version,
                RecordSwap::Conflict(Some(r)) => {
                    // Another engine delivers this slot too: take its word.
                    let theirs: Slot = serde_json::from_value(r.value).map_err(|e| {
                        Error::new(ErrorKind::Storage, format!("webhook outbox slot: {e}"))
                    })?;
                    if theirs.state != SlotState::Pending {
                        return Ok(());
                    }
                    version = r.version;
                }
                RecordSwap::Conflict(None) => return Ok(()),
            }
            match wait {
                None => return Ok(()),
                Some(wait) => {
                    tracing::info!(notifier = %self.name, id = %slot.notification.id, attempts = slot.attempts, status = ?slot.last_status, wait_ms = wait.as_millis() as u64, "webhook not taken; retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// One POST.
    async fn attempt(&self, n: &Notification) -> Attempt {
        #[derive(Serialize)]
        struct Payload<'a> {
            text: String,
            #[serde(flatten)]
            notification: &'a Notification,
        }
        let body = match serde_json::to_vec(&Payload {
            text: n.subject(),
            notification: n,
        }) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "a notification did not encode");
                return Attempt::Refused(0);
            }
        };
        let t = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let sent = self
            .http
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", &n.id)
            .header("X-Offboard-Event", n.kind.as_str())
            .header(SIGNATURE_HEADER, signature(&self.secret, t, &body))
            .body(body)
            .send()
            .await;
        match sent {
            Err(e) => {
                // reqwest's error names the URL: keep it out of the log.
                tracing::info!(notifier = %self.name, timeout = e.is_timeout(), connect = e.is_connect(), "webhook request failed");
                Attempt::Retry {
                    status: None,
                    after: None,
                }
            }
            Ok(resp) => {
                let status = resp.status();
                if status.is_success() {
                    Attempt::Delivered(status.as_u16())
                } else if status.is_server_error()
                    || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                    || status == reqwest::StatusCode::REQUEST_TIMEOUT
                {
                    let after = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, SystemTime::now()));
                    Attempt::Retry {
                        status: Some(status.as_u16()),
                        after,
                    }
                } else {
                    Attempt::Refused(status.as_u16())
                }
            }
        }
    }

    /// Appends the audit note saying a notification was given up.
    async fn gave_up(&self, slot: &Slot) -> Result<()> {
        let n = &slot.notification;
        tracing::warn!(notifier = %self.name, id = %n.id, attempts = slot.attempts, status = ?slot.last_status, "webhook notification given up");
        let event = AuditEvent::new(
            chrono::Utc::now(),
            format!("notifier:{}", self.name),
            AuditKind::Note {
                name: GAVE_UP_NOTE.to_owned(),
                data: serde_json::json!({
                    "notifier": self.name,
                    "id": n.id,
                    "kind": n.kind,
                    "status": slot.last_status,
                    "attempts": slot.attempts,
                    "host": self.url.host_str(),
                }),
            },
        )
        .with_run(n.run.id);
        self.store.append_audit(vec![event]).await?;
        Ok(())
    }
}
