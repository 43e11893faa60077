//! Jira webhook deliveries, for hosts: verify, de-duplicate, parse ([`JiraWebhook`]), and
//! the endpoint that does it over HTTP and tells the engine ([`router`]).

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use offboard_core::{DelegateVia, Engine, Error, ErrorKind, Result, Secret};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::client::{IssueFields, StatusDetails, UserDetails};
use crate::config::DEFAULT_NOT_DONE_RESOLUTIONS;
use crate::status::{DoneRule, Reading};

/// The signature header Jira sends for webhooks with a secret.
pub const SIGNATURE_HEADER: &str = "x-hub-signature";
/// The header identifying one delivery (the same across Jira's retries of it).
pub const IDENTIFIER_HEADER: &str = "x-atlassian-webhook-identifier";

/// What a verified webhook delivery says about an issue.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WebhookUpdate {
    /// `webhookEvent`, e.g. `jira:issue_updated`.
    pub event: String,
    /// The delivery's identifier as Jira's `X-Atlassian-Webhook-Identifier` header gives it,
    /// else the body's SHA-256. The header is not signed: it is for logs only; replays are
    /// refused by [`WebhookUpdate::digest`].
    pub identifier: String,
    /// SHA-256 (hex) of the signed body. The body carries the event's timestamp, so this names
    /// one delivery (Jira's retries of it send the same body) and is what replay refusal keys on.
    pub digest: String,
    /// When Jira raised the event.
    pub timestamp: DateTime<Utc>,
    /// Issue key.
    pub key: String,
    /// Issue id.
    pub issue_id: String,
    /// Status id, when the payload carries the status.
    pub status_id: Option<String>,
    /// Status name, when the payload carries the status.
    pub status_name: Option<String>,
    /// Status category key (`new`, `indeterminate`, `done`), when present.
    pub status_category: Option<String>,
    /// Assignee as shown (display name, else email, else account id).
    pub assignee: Option<String>,
    /// Whether the issue is done: a status of Jira's `done` category (the configured one, if
    /// any) without a not-done resolution.
    pub done: bool,
    /// Resolution name, when the payload carries one.
    pub resolution: Option<String>,
    /// Why the issue is closed without the work done (a not-done resolution such as
    /// "Won't Do"), else `None`.
    pub declined: Option<String>,
    /// Who made the change (the event's `user`), as shown.
    pub by: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    timestamp: i64,
    webhook_event: String,
    #[serde(default)]
    user: Option<UserDetails>,
    issue: Option<EventIssue>,
}

#[derive(Debug, Deserialize)]
struct EventIssue {
    id: String,
    key: String,
    #[serde(default)]
    fields: IssueFields,
}

#[derive(Debug, Default)]
struct Seen {
    order: VecDeque<(String, DateTime<Utc>)>,
    set: HashSet<String>,
}

/// Verifies and parses Jira webhook deliveries.
///
/// # Behavior
/// - The body must carry a valid `X-Hub-Signature: sha256=<hex HMAC-SHA256(secret, body)>`,
///   compared in constant time; otherwise `Unauthenticated`.
/// - A delivery whose `timestamp` is further than the window (default 5 minutes) from `now`,
///   in either direction, is refused (`InvalidInput`): a captured old delivery cannot be
///   replayed later.
/// - A delivery whose signed body (which carries its timestamp) was accepted within the window
///   is refused with `Conflict`: answer it with 200 so Jira stops retrying, and do nothing.
///   Replays are keyed on the SHA-256 of the signed body, never on the unsigned
///   `X-Atlassian-Webhook-Identifier` header, so a captured delivery replayed with that header
///   changed or removed is still refused. The seen-set is bounded (default 10,000 entries).
/// - Only a delivery that passes every check is remembered.
/// - The payload is a hint: hosts should re-read the issue (poll) rather than trust it.
///
/// # Example
/// ```
/// use chrono::Utc;
/// use offboard_core::Secret;
/// use offboard_jira::JiraWebhook;
///
/// let hook = JiraWebhook::new(Secret::new("whsec"), None);
/// let headers = reqwest::header::HeaderMap::new();
/// let err = hook.verify_and_parse(&headers, b"{}", Utc::now()).unwrap_err();
/// assert_eq!(err.kind(), offboard_core::ErrorKind::Unauthenticated);
/// ```
pub struct JiraWebhook {
    secret: Secret,
    done_status: Option<String>,
    rule: DoneRule,
    window: Duration,
    capacity: usize,
    seen: Mutex<Seen>,
}

impl fmt::Debug for JiraWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JiraWebhook")
            .field("secret", &self.secret)
            .field("done_status", &self.done_status)
            .field("window", &self.window)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl JiraWebhook {
    /// A verifier with the webhook's secret and, optionally, the one `done`-category status
    /// (name or id) that completes a task (`None`: any status of that category). Not-done
    /// resolutions default to [`DEFAULT_NOT_DONE_RESOLUTIONS`].
    pub fn new(secret: Secret, done_status: Option<String>) -> Self {
        let not_done = DEFAULT_NOT_DONE_RESOLUTIONS
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        Self {
            secret,
            rule: DoneRule::new(done_status.clone(), not_done),
            done_status,
            window: Duration::from_secs(300),
            capacity: 10_000,
            seen: Mutex::new(Seen::default()),
        }
    }

    /// The resolutions that close an issue without the work done.
    pub fn with_not_done_resolutions(mut self, resolutions: Vec<String>) -> Self {
        self.rule = DoneRule::new(self.done_status.clone(), resolutions);
        self
    }

    /// The replay window (default 5 minutes).
    pub fn with_window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// How many delivery identifiers are remembered at most (default 10,000).
    pub fn with_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// Verifies the signature, refuses stale and replayed deliveries, and parses the event.
    ///
    /// # Errors
    /// `Unauthenticated` for a missing or wrong signature; `InvalidInput` for a stale or
    /// malformed delivery; `Conflict` for a replay (see the type's docs).
    pub fn verify_and_parse(
        &self,
        headers: &reqwest::header::HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<WebhookUpdate> {
        let op = "jira.webhook";
        let sig = headers
            .get(SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                Error::new(ErrorKind::Unauthenticated, "missing X-Hub-Signature").with_operation(op)
            })?;
        let bad =
            || Error::new(ErrorKind::Unauthenticated, "bad webhook signature").with_operation(op);
        let hex_sig = sig.trim().strip_prefix("sha256=").ok_or_else(bad)?;
        let raw = hex::decode(hex_sig).map_err(|_| bad())?;
        let mut mac = Hmac::<Sha256>::new_from_slice(self.secret.expose().as_bytes())
            .map_err(|_| Error::internal("HMAC key"))?;
        mac.update(body);
        mac.verify_slice(&raw).map_err(|_| bad())?;

        let env: Envelope = serde_json::from_slice(body).map_err(|e| {
            Error::invalid_input(format!("not a Jira webhook event: {e}")).with_operation(op)
        })?;
        let timestamp = DateTime::<Utc>::from_timestamp_millis(env.timestamp).ok_or_else(|| {
            Error::invalid_input("webhook timestamp out of range").with_operation(op)
        })?;
        let window = chrono::Duration::from_std(self.window).unwrap_or(chrono::Duration::MAX);
        if (now - timestamp).abs() > window {
            return Err(
                Error::invalid_input("stale webhook delivery (outside the replay window)")
                    .with_operation(op)
                    .with_context("timestamp", timestamp.to_rfc3339()),
            );
        }
        if !env.webhook_event.starts_with("jira:issue_") {
            return Err(Error::invalid_input("not an issue event")
                .with_operation(op)
                .with_context("event", &env.webhook_event));
        }
        let issue = env.issue.ok_or_else(|| {
            Error::invalid_input("issue event without an issue").with_operation(op)
        })?;
        let digest = hex::encode(Sha256::digest(body));
        let identifier = headers
            .get(IDENTIFIER_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| digest.clone());
        {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            while let Some((id, at)) = seen.order.front().cloned() {
                if seen.order.len() >= self.capacity || now - at > window {
                    seen.order.pop_front();
                    seen.set.remove(&id);
                } else {
                    break;
                }
            }
            if seen.set.contains(&digest) {
                return Err(Error::new(ErrorKind::Conflict, "replayed webhook delivery")
                    .fatal()
                    .with_operation(op)
                    .with_context("digest", &digest));
            }
            seen.set.insert(digest.clone());
            seen.order.push_back((digest.clone(), now));
        }
        let status: Option<&StatusDetails> = issue.fields.status.as_ref();
        let reading = status.map_or(Reading::Open, |s| {
            self.rule.read(s, issue.fields.resolution.as_ref())
        });
        let done = reading == Reading::Done;
        let declined = match reading {
            Reading::Declined(reason) => Some(reason),
            Reading::Open | Reading::Done => None,
        };
        Ok(WebhookUpdate {
            event: env.webhook_event,
            identifier,
            digest,
            timestamp,
            key: issue.key,
            issue_id: issue.id,
            status_id: status.map(|s| s.id.clone()),
            status_name: status.map(|s| s.name.clone()),
            status_category: status
                .and_then(|s| s.status_category.as_ref())
                .map(|c| c.key.clone()),
            assignee: issue.fields.assignee.as_ref().map(UserDetails::shown),
            done,
            resolution: issue.fields.resolution.as_ref().map(|r| r.name.clone()),
            declined,
            by: env.user.as_ref().map(UserDetails::shown),
        })
    }
}

impl JiraWebhook {
    /// Forgets an accepted delivery (by [`WebhookUpdate::digest`]), so Jira's retry of it is
    /// let through: for a host that verified a delivery but could not act on it.
    pub fn forget(&self, digest: &str) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.set.remove(digest) {
            seen.order.retain(|(d, _)| d != digest);
        }
    }
}

/// The largest webhook body [`router`] reads by default (1 MiB); larger ones get 413.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

#[derive(Debug, Clone)]
struct Endpoint {
    hook: Arc<JiraWebhook>,
    engine: Engine,
}

/// The Jira webhook endpoint as an [`axum::Router`], for the host to mount under any prefix
/// (`Router::new().nest("/hooks/jira", router(hook, engine))`) and register in Jira as the
/// webhook's URL, with the same secret as `hook`'s.
///
/// # Behavior
/// `POST` of a delivery to the router's root: the body is read up to [`DEFAULT_BODY_LIMIT`]
/// (see [`router_with_limit`]), checked by [`JiraWebhook::verify_and_parse`] against the wall
/// clock, and its issue key handed to [`Engine::delegation_changed`] with
/// [`DelegateVia::Jira`]: the engine then polls that delegation at once and records what
/// changed through its usual, audited path (the payload itself is only a hint). Answers:
///
/// | status | when | effect |
/// |---|---|---|
/// | 204 No Content | verified and handed to the engine (also when no open run has that issue) | the delegation is polled now |
/// | 401 Unauthorized | missing or wrong `X-Hub-Signature` | none |
/// | 409 Conflict | a replay: this signed body was already accepted within the window | none |
/// | 400 Bad Request | stale (timestamp outside the window), malformed, or not an issue event | none |
/// | 413 Payload Too Large | body over the limit | none, the body is not read on |
/// | 405 Method Not Allowed | any method but `POST` | none |
/// | 503 Service Unavailable | the engine's store failed | the delivery is forgotten, so Jira's retry is accepted |
///
/// Replay (409) and staleness (400) are told apart so a host's logs show which; neither does
/// anything. Response bodies are fixed short texts: no secret, signature or payload is echoed.
pub fn router(hook: Arc<JiraWebhook>, engine: Engine) -> Router {
    router_with_limit(hook, engine, DEFAULT_BODY_LIMIT)
}

/// [`router`] with a body limit of `max_bytes` (bodies over it get 413).
pub fn router_with_limit(hook: Arc<JiraWebhook>, engine: Engine, max_bytes: usize) -> Router {
    Router::new()
        .route("/", post(receive))
        .layer(DefaultBodyLimit::max(max_bytes))
        .with_state(Endpoint { hook, engine })
}

async fn receive(
    State(ep): State<Endpoint>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let update = match ep.hook.verify_and_parse(&headers, &body, Utc::now()) {
        Ok(update) => update,
        Err(e) => {
            let (status, text) = match e.kind() {
                ErrorKind::Unauthenticated => (StatusCode::UNAUTHORIZED, "bad signature"),
                ErrorKind::Conflict => (StatusCode::CONFLICT, "replayed delivery"),
                ErrorKind::InvalidInput => (
                    StatusCode::BAD_REQUEST,
                    "stale or malformed delivery, or not an issue event",
                ),
                _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
            };
            tracing::warn!(status = status.as_u16(), error = %e, "jira webhook refused");
            return (status, text);
        }
    };
    match ep
        .engine
        .delegation_changed(DelegateVia::Jira, &update.key)
        .await
    {
        Ok(hit) => {
            tracing::debug!(key = %update.key, event = %update.event, matched = hit.is_some(), "jira webhook accepted");
            (StatusCode::NO_CONTENT, "")
        }
        Err(e) => {
            ep.hook.forget(&update.digest);
            tracing::warn!(key = %update.key, error = %e, "jira webhook: engine failed");
            (StatusCode::SERVICE_UNAVAILABLE, "try again later")
        }
    }
}
