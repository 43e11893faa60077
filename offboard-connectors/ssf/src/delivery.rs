//! Push delivery (RFC 8935), one task per stream, and the poll exchange (RFC 8936).

use std::collections::{HashMap, HashSet};
use std::sync::PoisonError;
use std::time::Duration;

use offboard_core::Result;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::stream::{self, Stored, StreamStatus};
use crate::transmitter::Transmitter;

/// SETs one pass of a push stream takes from the trail.
const PUSH_BATCH: usize = 32;
/// The most SETs a poll answers with, and looks ahead for acknowledgements.
const POLL_WINDOW: usize = 1000;
/// The longest receiver error description kept in the audit trail.
const MAX_DESCRIPTION: usize = 256;

/// What a receiver's answer to a push means.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PushAnswer {
    /// 202 (any 2xx): the receiver took the SET.
    Accepted,
    /// 400 with `invalid_request`, `invalid_key`, `invalid_issuer` or `invalid_audience` (or no
    /// code): the receiver refuses this SET for good; it is not sent again.
    Rejected { err: String, description: String },
    /// 400 `authentication_failed`/`access_denied`, 401 or 403: the stream is paused.
    Unauthorized { err: String },
    /// Anything else (5xx, 429, a timeout, no connection): tried again after a backoff.
    Transient(String),
}

#[derive(Deserialize)]
struct ErrBody {
    err: Option<String>,
    description: Option<String>,
}

fn truncate(s: &str) -> String {
    s.chars().take(MAX_DESCRIPTION).collect()
}

impl Transmitter {
    /// Starts the push task of stream `id` unless one runs.
    pub(crate) fn spawn_push(&self, id: String) {
        {
            let mut workers = self
                .inner
                .workers
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !workers.insert(id.clone()) {
                return;
            }
        }
        let t = self.clone();
        tokio::spawn(async move {
            t.push_loop(&id).await;
            t.inner
                .workers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&id);
        });
    }

    /// Waits for a wake-up (a commit, a stream changed) or `at_most`.
    async fn idle(&self, wake: &mut tokio::sync::watch::Receiver<u64>, at_most: Duration) {
        let _ = tokio::time::timeout(at_most, wake.changed()).await;
    }

    async fn push_loop(&self, id: &str) {
        let mut wake = self.inner.wake.subscribe();
        let config = &self.inner.config;
        let mut backoff = config.first_backoff;
        let none = HashSet::new();
        while !self.is_closed() {
            wake.borrow_and_update();
            let stream = match stream::load(&*self.inner.store, id).await {
                Ok(Some(s)) if !s.deleted && s.is_push() => s,
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(error = %e, stream = id, "reading an SSF stream failed; trying again");
                    self.idle(&mut wake, backoff).await;
                    continue;
                }
            };
            if stream.status == StreamStatus::Paused || self.receiver(&stream.receiver).is_none() {
                self.idle(&mut wake, config.recheck).await;
                continue;
            }
            let (pending, scanned_to) = match self.scan(&stream, PUSH_BATCH, &none).await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, stream = id, "reading the audit trail for an SSF stream failed");
                    self.idle(&mut wake, backoff).await;
                    continue;
                }
            };
            if stream.status == StreamStatus::Disabled || pending.is_empty() {
                // A disabled stream holds nothing (SSF 1.0 section 8.1.2).
                let moved = scanned_to > stream.position;
                if moved {
                    let _ = self.advance(id, scanned_to).await;
                }
                if !moved {
                    self.idle(&mut wake, config.recheck).await;
                }
                continue;
            }
            // The position moves once per batch, over the SETs the receiver took or refused
            // for good: a crash before it sends those again with the same `jti` (at least
            // once), and a batch costs one record swap instead of one per SET.
            let mut finished = stream.position;
            let mut wait = None;
            for p in pending {
                let answer = match self.sign(&p.claims) {
                    Ok(jwt) => self.post(&stream, &jwt).await,
                    Err(e) => PushAnswer::Transient(e.to_string()),
                };
                match answer {
                    PushAnswer::Accepted => {
                        backoff = config.first_backoff;
                        finished = p.seq;
                    }
                    PushAnswer::Rejected { err, description } => {
                        tracing::warn!(stream = id, jti = %p.jti, err = %err, "the SSF receiver rejected a SET; not sending it again");
                        let data = json!({"stream_id": id, "jti": p.jti, "err": err, "description": description});
                        if self.note("ssf_set_rejected", data).await.is_err() {
                            break;
                        }
                        finished = p.seq;
                    }
                    PushAnswer::Unauthorized { err } => {
                        let reason =
                            format!("the receiver answered {err}: check the authorization header");
                        tracing::warn!(stream = id, err = %err, "the SSF receiver refused our authorization; pausing the stream");
                        let paused = stream::update(&*self.inner.store, id, |s| {
                            s.status = StreamStatus::Paused;
                            s.reason = Some(reason.clone());
                            Ok(())
                        })
                        .await;
                        if paused.is_ok() {
                            let _ = self
                                .note(
                                    "ssf_stream_paused",
                                    json!({"stream_id": id, "reason": reason}),
                                )
                                .await;
                        }
                        break;
                    }
                    PushAnswer::Transient(why) => {
                        tracing::warn!(stream = id, why = %why, backoff_ms = backoff.as_millis() as u64, "pushing a SET failed; trying again");
                        wait = Some(backoff);
                        backoff = (backoff * 2).min(config.max_backoff);
                        break;
                    }
                }
            }
            if finished > stream.position && self.advance(id, finished).await.is_err() {
                tracing::warn!(
                    stream = id,
                    "moving an SSF stream's position failed; its SETs may be sent again"
                );
            }
            if let Some(wait) = wait {
                tokio::time::sleep(wait).await;
            }
        }
    }

    /// Moves the stream's position forward to `seq` (never back).
    async fn advance(&self, id: &str, seq: u64) -> Result<()> {
        stream::update(&*self.inner.store, id, |s| {
            s.position = s.position.max(seq);
            Ok(())
        })
        .await
        .map(|_| ())
    }

    /// POSTs one SET to the stream's receiver (RFC 8935 section 2).
    async fn post(&self, stream: &Stored, jwt: &str) -> PushAnswer {
        let mut req = self
            .inner
            .http
            .post(&stream.config.delivery.endpoint_url)
            .header("content-type", "application/secevent+jwt")
            .header("accept", "application/json")
            .body(jwt.to_owned());
        if let Some(h) = &stream.authorization_header {
            req = req.header("authorization", h);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return PushAnswer::Transient("timed out".into()),
            Err(_) => return PushAnswer::Transient("no connection to the receiver".into()),
        };
        let status = resp.status().as_u16();
        match status {
            200..=299 => PushAnswer::Accepted,
            400 => {
                let body: Option<ErrBody> = resp.json().await.ok();
                let err = body
                    .as_ref()
                    .and_then(|b| b.err.clone())
                    .unwrap_or_default();
                let description = truncate(
                    body.as_ref()
                        .and_then(|b| b.description.as_deref())
                        .unwrap_or(""),
                );
                match err.as_str() {
                    "authentication_failed" | "access_denied" => PushAnswer::Unauthorized { err },
                    "" => PushAnswer::Rejected {
                        err: "invalid_request".into(),
                        description,
                    },
                    _ => PushAnswer::Rejected { err, description },
                }
            }
            401 => PushAnswer::Unauthorized {
                err: "authentication_failed".into(),
            },
            403 => PushAnswer::Unauthorized {
                err: "access_denied".into(),
            },
            s => PushAnswer::Transient(format!("HTTP {s}")),
        }
    }

    /// One poll of stream `stream_id` (RFC 8936 section 2.4): records `ack` and `setErrs`,
    /// moves the stream's position over the SETs acknowledged, and answers with up to
    /// `maxEvents` SETs not yet acknowledged, waiting for one unless `returnImmediately`.
    pub(crate) async fn poll(&self, stream_id: &str, request: PollRequest) -> Result<Value> {
        let mut acks: HashSet<String> = request.ack.into_iter().collect();
        acks.extend(request.set_errs.keys().cloned());
        let max = request.max_events.unwrap_or(100).min(POLL_WINDOW as u64) as usize;
        let mut wake = self.inner.wake.subscribe();
        let deadline = tokio::time::Instant::now() + self.inner.config.poll_wait;
        let mut first = true;
        loop {
            wake.borrow_and_update();
            let stream = stream::load(&*self.inner.store, stream_id)
                .await?
                .filter(|s| !s.deleted)
                .ok_or_else(|| {
                    offboard_core::Error::new(offboard_core::ErrorKind::NotFound, "no such stream")
                })?;
            let (window, scanned_to) = self.scan(&stream, POLL_WINDOW, &HashSet::new()).await?;
            let mut acked: HashSet<String> = stream.acked.iter().cloned().collect();
            if first {
                // Only SETs the stream has waiting can be acknowledged.
                acked.extend(
                    window
                        .iter()
                        .filter(|p| acks.contains(&p.jti))
                        .map(|p| p.jti.clone()),
                );
                for (jti, e) in &request.set_errs {
                    if window.iter().any(|p| &p.jti == jti) {
                        let data = json!({"stream_id": stream_id, "jti": jti, "err": truncate(&e.err), "description": truncate(e.description.as_deref().unwrap_or(""))});
                        self.note("ssf_set_rejected", data).await?;
                    }
                }
            }
            if stream.status == StreamStatus::Disabled {
                // A disabled stream holds nothing (SSF 1.0 section 8.1.2).
                acked.extend(window.iter().map(|p| p.jti.clone()));
            }
            let mut position = stream.position;
            let mut consumed = 0;
            for p in &window {
                if !acked.contains(&p.jti) {
                    break;
                }
                position = p.seq;
                consumed += 1;
            }
            if consumed == window.len() && window.len() < POLL_WINDOW {
                position = position.max(scanned_to);
            }
            let remaining: Vec<String> = window[consumed..]
                .iter()
                .filter(|p| acked.contains(&p.jti))
                .map(|p| p.jti.clone())
                .collect();
            if position != stream.position || remaining != stream.acked {
                let old = stream.position;
                let (_, fresh) = stream::update(&*self.inner.store, stream_id, |s| {
                    if s.position != old {
                        return Ok(false);
                    }
                    s.position = position;
                    s.acked = remaining.clone();
                    Ok(true)
                })
                .await?;
                if !fresh {
                    // Another poll moved the stream meanwhile: read it again.
                    continue;
                }
            }
            first = false;
            if stream.status != StreamStatus::Enabled || max == 0 {
                return Ok(json!({"sets": {}, "moreAvailable": false}));
            }
            let waiting: Vec<_> = window[consumed..]
                .iter()
                .filter(|p| !acked.contains(&p.jti))
                .collect();
            if waiting.is_empty()
                && !request.return_immediately
                && tokio::time::Instant::now() < deadline
            {
                let _ = tokio::time::timeout_at(deadline, wake.changed()).await;
                continue;
            }
            let mut sets = serde_json::Map::new();
            for p in waiting.iter().take(max) {
                sets.insert(p.jti.clone(), Value::String(self.sign(&p.claims)?));
            }
            let more = waiting.len() > max || window.len() >= POLL_WINDOW;
            return Ok(json!({"sets": sets, "moreAvailable": more}));
        }
    }
}

/// A poll request (RFC 8936 section 2.4).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct PollRequest {
    #[serde(rename = "maxEvents")]
    pub(crate) max_events: Option<u64>,
    #[serde(rename = "returnImmediately", default)]
    pub(crate) return_immediately: bool,
    #[serde(default)]
    pub(crate) ack: Vec<String>,
    #[serde(rename = "setErrs", default)]
    pub(crate) set_errs: HashMap<String, SetErr>,
}

/// A receiver's error about one SET in a poll.
#[derive(Debug, Deserialize)]
pub(crate) struct SetErr {
    pub(crate) err: String,
    pub(crate) description: Option<String>,
}
