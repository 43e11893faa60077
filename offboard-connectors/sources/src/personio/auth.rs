//! Personio's token flow: `POST /v1/auth` with the API credentials, a bearer token reused
//! until it expires.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use offboard_core::{Error, ErrorKind, Result, Secret};
use offboard_http::TokenProvider;
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;
use url::Url;

/// A token is fetched again this long before Personio says it expires.
const REFRESH_BEFORE: Duration = Duration::from_secs(60);

/// Personio API credentials exchanged for a bearer token.
///
/// # Behavior
/// - The first request posts `{"client_id", "client_secret"}` as JSON to `/v1/auth`; the
///   answer's `data.token` is sent as `Bearer` until `data.expires_in` (one day when absent)
///   is within a minute, or until the API answers 401 ([`TokenProvider::invalidate`]).
///   Concurrent callers share one fetch.
/// - Wrong credentials (a 401 or 403 from `/v1/auth`) are `Unauthenticated`; the secret and
///   the token never appear in `Debug` or errors.
pub(crate) struct PersonioAuth {
    http: reqwest::Client,
    url: Url,
    client_id: String,
    client_secret: Secret,
    cached: Mutex<Option<(Secret, Instant)>>,
    invalidated: AtomicBool,
}

impl fmt::Debug for PersonioAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersonioAuth")
            .field("url", &self.url.as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .finish()
    }
}

#[derive(Deserialize)]
struct Answer {
    data: Token,
}

#[derive(Deserialize)]
struct Token {
    token: String,
    #[serde(default)]
    expires_in: Option<f64>,
}

impl PersonioAuth {
    /// Credentials for the API at `base` (`https://api.personio.de`).
    pub(crate) fn new(
        base: &Url,
        client_id: String,
        client_secret: Secret,
        allow_plain_http: bool,
    ) -> Result<Self> {
        let url = base
            .join("v1/auth")
            .map_err(|e| Error::config("base_url", format!("not a base: {e}")))?;
        offboard_http::require_https(&url, "base_url", allow_plain_http)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::internal(format!("building the HTTP client failed: {e}")))?;
        Ok(Self {
            http,
            url,
            client_id,
            client_secret,
            cached: Mutex::new(None),
            invalidated: AtomicBool::new(false),
        })
    }

    async fn fetch(&self) -> Result<(Secret, Instant)> {
        let body = serde_json::json!({
            "client_id": self.client_id,
            "client_secret": self.client_secret.expose(),
        });
        let response = self
            .http
            .post(self.url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                let kind = if e.is_timeout() {
                    ErrorKind::Timeout
                } else {
                    ErrorKind::Unavailable
                };
                Error::new(kind, "POST /v1/auth: no answer").retryable()
            })?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.map_err(|_| {
            Error::new(
                ErrorKind::Unavailable,
                "POST /v1/auth: reading the answer failed",
            )
            .retryable()
        })?;
        if !status.is_success() {
            let e = offboard_http::classify(
                &reqwest::Method::POST,
                "/v1/auth",
                status,
                &headers,
                &bytes,
                SystemTime::now(),
            );
            return Err(match status.as_u16() {
                401 | 403 => Error::new(
                    ErrorKind::Unauthenticated,
                    format!(
                        "Personio refused the API credentials of client {}: {e}",
                        self.client_id
                    ),
                ),
                _ => e,
            });
        }
        let answer: Answer = serde_json::from_slice(&bytes).map_err(|e| {
            Error::new(
                ErrorKind::Vendor,
                format!("POST /v1/auth: not a token answer: {e}"),
            )
        })?;
        let lifetime = answer
            .data
            .expires_in
            .filter(|s| s.is_finite() && *s > 0.0)
            .map_or(Duration::from_secs(86_400), Duration::from_secs_f64);
        let until = Instant::now() + lifetime;
        Ok((Secret::new(format!("Bearer {}", answer.data.token)), until))
    }
}

#[async_trait]
impl TokenProvider for PersonioAuth {
    async fn authorization(&self) -> Result<Secret> {
        let mut cached = self.cached.lock().await;
        let invalidated = self.invalidated.swap(false, Ordering::SeqCst);
        if let Some((token, until)) = cached.as_ref()
            && !invalidated
            && Instant::now() + REFRESH_BEFORE < *until
        {
            return Ok(token.clone());
        }
        let fresh = self.fetch().await?;
        let token = fresh.0.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    fn invalidate(&self) {
        self.invalidated.store(true, Ordering::SeqCst);
    }
}
