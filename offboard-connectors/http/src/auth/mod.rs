//! Token providers: what goes into the `Authorization` header.

mod client_secret;
mod google;
mod microsoft;

pub use client_secret::{
    ClientAuthMethod, ClientSecretCredentials, ClientSecretCredentialsBuilder,
};
pub use google::{GoogleServiceAccount, GoogleServiceAccountBuilder};
pub use microsoft::MicrosoftClientCredentials;

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use offboard_core::{Error, Result, Secret};
use reqwest::header::{AUTHORIZATION, HeaderName};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tokio::time::Instant;
use url::Url;

/// Supplies the `Authorization` header value of every request.
///
/// # Behavior
/// - [`TokenProvider::authorization`] returns the whole header value (`SSWS …`, `Bearer …`,
///   `Basic …`) wrapped in [`Secret`], fetching or refreshing a token when needed.
/// - [`TokenProvider::invalidate`] is called after a 401 so the next call fetches anew.
/// - `Debug` never shows a token or key.
#[async_trait]
pub trait TokenProvider: Send + Sync + fmt::Debug {
    /// The `Authorization` header value.
    ///
    /// # Errors
    /// `Unauthenticated` when the credentials are refused, retryable errors when the token
    /// endpoint is unavailable or throttles.
    async fn authorization(&self) -> Result<Secret>;

    /// Drops any cached token (after the vendor answered 401). Default: nothing cached.
    fn invalidate(&self) {}

    /// The header the value goes in. Default: `Authorization`; an API key some vendors
    /// take in a header of their own (JumpCloud's `x-api-key`) names it here.
    fn header(&self) -> HeaderName {
        AUTHORIZATION
    }
}

/// A fixed header value: Okta API token, bearer token, Jira basic auth, or an API key in a
/// header of the vendor's own ([`StaticToken::api_key_header`]).
#[derive(Clone, Debug)]
pub struct StaticToken {
    value: Secret,
    header: HeaderName,
}

impl StaticToken {
    /// Okta API token: `SSWS <token>`.
    pub fn okta_ssws(token: Secret) -> Self {
        Self {
            value: Secret::new(format!("SSWS {}", token.expose())),
            header: AUTHORIZATION,
        }
    }

    /// `Bearer <token>`.
    pub fn bearer(token: Secret) -> Self {
        Self {
            value: Secret::new(format!("Bearer {}", token.expose())),
            header: AUTHORIZATION,
        }
    }

    /// Jira Cloud basic auth: `Basic base64(email:api_token)`.
    pub fn basic(email: &str, api_token: &Secret) -> Self {
        let raw = format!("{email}:{}", api_token.expose());
        Self {
            value: Secret::new(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(raw)
            )),
            header: AUTHORIZATION,
        }
    }

    /// An API key sent as it is in the vendor's own header (JumpCloud: `x-api-key`), in
    /// place of `Authorization`; the header is marked sensitive like `Authorization`.
    ///
    /// # Panics
    /// When `header` is not a valid lowercase header name (a programming error: it is a
    /// constant of the vendor's API).
    pub fn api_key_header(header: &'static str, key: Secret) -> Self {
        Self {
            value: key,
            header: HeaderName::from_static(header),
        }
    }
}

#[async_trait]
impl TokenProvider for StaticToken {
    async fn authorization(&self) -> Result<Secret> {
        Ok(self.value.clone())
    }

    fn header(&self) -> HeaderName {
        self.header.clone()
    }
}

/// The private key of a `private_key_jwt` client; `Debug` shows nothing of it.
pub(crate) struct SigningKey {
    pub(crate) key: EncodingKey,
    pub(crate) key_id: Option<String>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("key", &"[REDACTED]")
            .field("key_id", &self.key_id)
            .finish()
    }
}

#[derive(Debug)]
pub(crate) struct Cached {
    value: Secret,
    expires_at: Instant,
}

/// OAuth 2.0 client credentials with a `private_key_jwt` client assertion (RFC 7523), as
/// Okta's org authorization server requires for `okta.*` scopes.
///
/// # Behavior
/// - The assertion is an RS256 JWT with `iss` = `sub` = client id, `aud` = the token URL,
///   `iat`, `exp` = `iat` + 5 min and a random `jti`; the request is
///   `grant_type=client_credentials&scope=…&client_assertion_type=…&client_assertion=…`.
/// - The access token is cached and fetched again `refresh_before` (default 60 s) before
///   `expires_in` runs out, or after [`TokenProvider::invalidate`]. Concurrent callers share
///   one fetch.
/// - The header value is `<token_type> <access_token>` (`Bearer`; DPoP is not supported).
#[derive(Debug)]
pub struct OAuthClientCredentials {
    token_url: Url,
    client_id: String,
    scopes: Vec<String>,
    key: SigningKey,
    http: reqwest::Client,
    cache: TokenCache,
}

/// Builds an [`OAuthClientCredentials`].
#[derive(Debug)]
pub struct OAuthClientCredentialsBuilder {
    token_url: String,
    client_id: String,
    scopes: Vec<String>,
    private_key_pem: Option<Secret>,
    key_id: Option<String>,
    refresh_before: Duration,
    timeout: Duration,
}

impl OAuthClientCredentialsBuilder {
    /// Adds a scope (e.g. `okta.users.manage`).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.push(scope.into());
        self
    }

    /// Adds scopes.
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes.extend(scopes.into_iter().map(Into::into));
        self
    }

    /// The RSA private key (PKCS#1 or PKCS#8 PEM).
    pub fn private_key_pem(mut self, pem: Secret) -> Self {
        self.private_key_pem = Some(pem);
        self
    }

    /// The key id (`kid` header) registered with the app, if it has several keys.
    pub fn key_id(mut self, kid: impl Into<String>) -> Self {
        self.key_id = Some(kid.into());
        self
    }

    /// Refresh this long before the token expires. Default: 60 s.
    pub fn refresh_before(mut self, d: Duration) -> Self {
        self.refresh_before = d;
        self
    }

    /// Timeout of the token request. Default: 30 s.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// Validates and builds.
    ///
    /// # Errors
    /// `Config` naming `token_url`, `client_id`, `scopes` or `private_key` when missing or
    /// malformed.
    pub fn build(self) -> Result<OAuthClientCredentials> {
        let token_url = Url::parse(&self.token_url)
            .map_err(|e| Error::config("token_url", format!("not a URL: {e}")))?;
        if self.client_id.is_empty() {
            return Err(Error::config("client_id", "missing"));
        }
        if self.scopes.is_empty() {
            return Err(Error::config("scopes", "at least one scope is required"));
        }
        let pem = self
            .private_key_pem
            .ok_or_else(|| Error::config("private_key", "missing"))?;
        // The jsonwebtoken error does not include key material.
        let key = EncodingKey::from_rsa_pem(pem.expose().as_bytes()).map_err(|e| {
            Error::config("private_key", format!("not an RSA private key PEM: {e}"))
        })?;
        let http = token_http(self.timeout)?;
        Ok(OAuthClientCredentials {
            token_url,
            client_id: self.client_id,
            scopes: self.scopes,
            key: SigningKey {
                key,
                key_id: self.key_id,
            },
            http,
            cache: TokenCache::new(self.refresh_before),
        })
    }
}

#[derive(Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
    jti: String,
}

#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

impl OAuthClientCredentials {
    /// A builder for the token endpoint `token_url` (Okta:
    /// `https://{yourOktaDomain}/oauth2/v1/token`) and the service app's client id.
    pub fn builder(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
    ) -> OAuthClientCredentialsBuilder {
        OAuthClientCredentialsBuilder {
            token_url: token_url.into(),
            client_id: client_id.into(),
            scopes: Vec::new(),
            private_key_pem: None,
            key_id: None,
            refresh_before: Duration::from_secs(60),
            timeout: Duration::from_secs(30),
        }
    }

    fn assertion(&self) -> Result<String> {
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = AssertionClaims {
            iss: &self.client_id,
            sub: &self.client_id,
            aud: self.token_url.as_str(),
            iat,
            exp: iat + 300,
            jti: uuid::Uuid::new_v4().simple().to_string(),
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = self.key.key_id.clone();
        jsonwebtoken::encode(&header, &claims, &self.key.key)
            .map_err(|e| Error::internal(format!("signing the client assertion failed: {e}")))
    }

    async fn fetch(&self) -> Result<Cached> {
        let assertion = Secret::new(self.assertion()?);
        let scope = self.scopes.join(" ");
        request_token(
            &self.http,
            &self.token_url,
            &[
                ("grant_type", "client_credentials"),
                ("scope", scope.as_str()),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", assertion.expose()),
            ],
            None,
        )
        .await
    }
}

/// The HTTP client of a token endpoint: no redirects, offboard's user agent.
pub(crate) fn token_http(timeout: Duration) -> Result<reqwest::Client> {
    token_http_with(timeout, None)
}

/// As [`token_http`], presenting `identity` (mutual TLS) when given.
pub(crate) fn token_http_with(
    timeout: Duration,
    identity: Option<&crate::ClientIdentity>,
) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("offboard/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(identity) = identity {
        builder = builder.identity(identity.0.clone());
    }
    builder
        .build()
        .map_err(|e| Error::internal(format!("building the HTTP client failed: {e}")))
}

/// Seconds since the Unix epoch, for JWT `iat`/`exp`.
pub(crate) fn epoch_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// Posts a token request form (with `authorization` as the `Authorization` header when the
/// client authenticates by HTTP basic) and reads the RFC 6749 §5.1 answer.
///
/// # Errors
/// 400/401 from the endpoint (`invalid_client`, `invalid_grant`, …) → `Unauthenticated`;
/// other statuses as [`crate::classify`]; an unreadable answer → `Vendor`.
pub(crate) async fn request_token(
    http: &reqwest::Client,
    token_url: &Url,
    form: &[(&str, &str)],
    authorization: Option<&Secret>,
) -> Result<Cached> {
    let path = token_url.path().to_owned();
    let started = Instant::now();
    let mut request = http
        .post(token_url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .form(form);
    if let Some(a) = authorization {
        request = request.header(reqwest::header::AUTHORIZATION, a.expose());
    }
    let response = request
        .send()
        .await
        .map_err(|e| crate::error::transport(&reqwest::Method::POST, &path, &e))?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .bytes()
        .await
        .map_err(|e| crate::error::transport(&reqwest::Method::POST, &path, &e))?;
    tracing::debug!(
        path = %path,
        status = status.as_u16(),
        latency_ms = started.elapsed().as_millis() as u64,
        "oauth token request"
    );
    if !status.is_success() {
        let mut e = crate::error::classify(
            &reqwest::Method::POST,
            &path,
            status,
            &headers,
            &body,
            SystemTime::now(),
        );
        // Bad credentials (`invalid_client`, `invalid_grant`): nothing a retry fixes.
        if matches!(status.as_u16(), 400 | 401) {
            e = Error::new(
                offboard_core::ErrorKind::Unauthenticated,
                e.message().to_owned(),
            )
            .with_context("status", status.as_u16());
        }
        return Err(e.with_operation("oauth.token"));
    }
    let token: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
        Error::new(
            offboard_core::ErrorKind::Vendor,
            format!("POST {path}: token response not understood: {e}"),
        )
        .with_operation("oauth.token")
    })?;
    let expires_in = Duration::from_secs(token.expires_in.unwrap_or(3600));
    let kind = token.token_type.unwrap_or_else(|| "Bearer".into());
    Ok(Cached {
        value: Secret::new(format!("{kind} {}", token.access_token)),
        expires_at: Instant::now() + expires_in,
    })
}

/// A cached access token, refreshed `refresh_before` its expiry or after an invalidation.
/// Concurrent callers share one fetch.
#[derive(Debug)]
pub(crate) struct TokenCache {
    refresh_before: Duration,
    cached: Mutex<Option<Cached>>,
    invalidated: std::sync::atomic::AtomicBool,
}

impl TokenCache {
    pub(crate) fn new(refresh_before: Duration) -> Self {
        Self {
            refresh_before,
            cached: Mutex::new(None),
            invalidated: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub(crate) async fn get<F>(&self, fetch: F) -> Result<Secret>
    where
        F: std::future::Future<Output = Result<Cached>> + Send,
    {
        let mut cache = self.cached.lock().await;
        let invalidated = self
            .invalidated
            .swap(false, std::sync::atomic::Ordering::SeqCst);
        if let Some(c) = cache.as_ref()
            && !invalidated
            && Instant::now() + self.refresh_before < c.expires_at
        {
            return Ok(c.value.clone());
        }
        let fresh = fetch.await?;
        let value = fresh.value.clone();
        *cache = Some(fresh);
        Ok(value)
    }

    pub(crate) fn invalidate(&self) {
        self.invalidated
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[async_trait]
impl TokenProvider for OAuthClientCredentials {
    async fn authorization(&self) -> Result<Secret> {
        self.cache.get(self.fetch()).await
    }

    fn invalidate(&self) {
        self.cache.invalidate();
    }
}
