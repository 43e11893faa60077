//! Shared REST plumbing for offboard connectors: one reqwest client layer with auth token
//! providers, vendor error mapping, an adaptive rate limiter and redacted request tracing.
//!
//! # What it offers
//! - [`HttpClient`]: a base URL, a timeout, a user agent and a [`TokenProvider`]. Requests are
//!   built as [`HttpRequest`]s from path *segments* (each percent-encoded, `.`/`..`/empty
//!   refused), so an identifier can never change which resource is addressed.
//! - [`TokenProvider`]s: [`StaticToken`] (Okta `SSWS`, bearer, Jira basic email + API token),
//!   [`OAuthClientCredentials`] (Okta org authorization server, `private_key_jwt` client
//!   assertion signed RS256 with `jsonwebtoken`'s aws-lc-rs backend),
//!   [`GoogleServiceAccount`] (JWT bearer grant with domain-wide delegation, `sub`
//!   impersonated), [`ClientSecretCredentials`] (RFC 6749 §4.4 client credentials with a client
//!   secret, basic or in the body, against any token endpoint) and its Microsoft preset
//!   [`MicrosoftClientCredentials`]. Tokens are cached and refreshed before expiry.
//! - [`classify`]: the one place where an HTTP answer becomes an [`offboard_core::Error`]:
//!   404 `NotFound`, 401 `Unauthenticated`, 403 `PermissionDenied` (Google rate-limit reasons
//!   become `RateLimited`), 429 `RateLimited` with the wait hint from `Retry-After` (seconds or
//!   HTTP date) or Okta's `X-Rate-Limit-Reset`, 5xx retryable `Unavailable`, other 4xx
//!   permanent. Messages carry the vendor's error summary, never request headers.
//! - [`AdaptiveLimiter`]: reads Okta's `X-Rate-Limit-Limit/-Remaining/-Reset` and spaces
//!   requests once fewer than 10 % of the budget remain, so the vendor rarely says no; plus a
//!   concurrency cap.
//! - Vendor budgets: every client draws from an [`offboard_core::RateBudget`] (its own
//!   in-memory one by default; a host's shared one with [`HttpClientBuilder::rate_budget`] or
//!   [`HttpClient::use_rate_budget`]): [`Pacer`]s made with [`HttpClient::pacer`] (Google's
//!   quota, Graph's write budget, a SCIM app's limit) and, with a shared budget, each
//!   request's bucket budget learnt from the vendor's headers, a shared concurrency limit and
//!   the penalty of a 429's `Retry-After`, seen by every engine process.
//! - [`HttpFeedLoader`]: an HR export fetched from a URL (optional bearer/basic auth,
//!   `ETag`/`Last-Modified` conditional requests) for `offboard_core`'s `HrFeed`.
//! - [`WebhookNotifier`]: signed outgoing webhooks (HMAC-SHA256, `Idempotency-Key`, retries
//!   with backoff) through a durable outbox in the engine's store, a `Notifier` for Slack,
//!   Teams or PSA bridges (see [`webhook`]).
//! - Tracing: every request runs in an `http.request` span with `method`, `path`, `status` and
//!   `latency_ms`. The query string, headers, bodies and tokens are never recorded.
//!
//! # TLS
//! reqwest's `rustls` feature with the aws-lc-rs provider. The client never installs a
//! process-wide `CryptoProvider`; reqwest uses aws-lc-rs explicitly when none is installed.
//!
//! # Example
//! ```no_run
//! use offboard_core::Secret;
//! use offboard_http::{HttpClient, HttpRequest, StaticToken};
//!
//! # async fn demo() -> offboard_core::Result<()> {
//! let client = HttpClient::builder("https://example.okta.com")
//!     .token_provider(StaticToken::okta_ssws(Secret::new("00abc...")))
//!     .build()?;
//! let users: serde_json::Value = client
//!     .send(HttpRequest::get(["api", "v1", "users"]).query("search", r#"profile.login eq "a@b.c""#))
//!     .await?
//!     .json()?;
//! # let _ = users; Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod auth;
mod client;
mod error;
mod feed;
pub mod graph;
mod limiter;
mod pacer;
mod transport;
pub mod webhook;

pub use auth::{
    ClientAuthMethod, ClientSecretCredentials, ClientSecretCredentialsBuilder,
    GoogleServiceAccount, GoogleServiceAccountBuilder, MicrosoftClientCredentials,
    OAuthClientCredentials, OAuthClientCredentialsBuilder, StaticToken, TokenProvider,
};
pub use client::{HttpClient, HttpClientBuilder, HttpRequest, HttpResponse};
pub use error::{VendorError, classify, parse_retry_after};
pub use feed::HttpFeedLoader;
pub use graph::{GraphClient, GraphClientBuilder, GraphRequest};
pub use limiter::{AdaptiveLimiter, LimiterConfig, RateLimitHeaders};
pub use pacer::Pacer;
/// Header names, for [`HttpRequest::header`] and [`StaticToken::api_key_header`].
pub use reqwest::header::HeaderName;
pub use transport::{ClientIdentity, require_https};
pub use webhook::{WebhookNotifier, WebhookNotifierBuilder};

/// What [`graph_config_setters`] names from its expansion site; not an API.
#[doc(hidden)]
pub mod __macro_support {
    pub use offboard_core::Secret;
}

/// Re-exported so connectors name methods and status codes without a direct reqwest dependency.
pub use reqwest::{Method, StatusCode, header};
