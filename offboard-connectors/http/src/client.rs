//! The HTTP client every REST connector shares.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use offboard_core::{Error, ErrorKind, Result};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use tracing::Instrument as _;
use url::Url;

use crate::auth::TokenProvider;
use crate::error::{classify, transport};
use crate::limiter::{AdaptiveLimiter, LimiterConfig};
use crate::pacer::{BudgetHandle, Pacer};
use offboard_core::budget::{ConcurrencyPermit, Quota, RateBudget, turn};

/// One request: method, path segments, query, extra headers, JSON body, limiter bucket.
///
/// # Behavior
/// The path is given as segments, each percent-encoded on its own (`/`, `?`, `#`, `%`
/// included); an empty, `.` or `..` segment is refused when sent, so no identifier can climb
/// to another resource.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    method: Method,
    segments: Vec<String>,
    query: Vec<(String, String)>,
    headers: Vec<(HeaderName, String)>,
    body: Option<serde_json::Value>,
    bucket: Option<String>,
}

impl HttpRequest {
    /// A request with this method and path segments (relative to the base URL).
    pub fn new<I, S>(method: Method, segments: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            method,
            segments: segments.into_iter().map(Into::into).collect(),
            query: Vec::new(),
            headers: Vec::new(),
            body: None,
            bucket: None,
        }
    }

    /// A GET.
    pub fn get<I: IntoIterator<Item = S>, S: Into<String>>(segments: I) -> Self {
        Self::new(Method::GET, segments)
    }

    /// A POST.
    pub fn post<I: IntoIterator<Item = S>, S: Into<String>>(segments: I) -> Self {
        Self::new(Method::POST, segments)
    }

    /// A PUT.
    pub fn put<I: IntoIterator<Item = S>, S: Into<String>>(segments: I) -> Self {
        Self::new(Method::PUT, segments)
    }

    /// A DELETE.
    pub fn delete<I: IntoIterator<Item = S>, S: Into<String>>(segments: I) -> Self {
        Self::new(Method::DELETE, segments)
    }

    /// Adds a query parameter (form-urlencoded when sent).
    pub fn query(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((key.into(), value.into()));
        self
    }

    /// Adds a header (never `Authorization`: that comes from the token provider).
    pub fn header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Sets a JSON body.
    pub fn json(mut self, body: serde_json::Value) -> Self {
        self.body = Some(body);
        self
    }

    /// Sets the rate-limit bucket (the vendor's endpoint family). Default:
    /// `METHOD /first/three/segments`.
    pub fn bucket(mut self, bucket: impl Into<String>) -> Self {
        self.bucket = Some(bucket.into());
        self
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    fn bucket_name(&self) -> String {
        self.bucket.clone().unwrap_or_else(|| {
            let head: Vec<&str> = self.segments.iter().take(3).map(String::as_str).collect();
            format!("{} /{}", self.method, head.join("/"))
        })
    }
}

/// A successful (or, from [`HttpClient::send_raw`], any) response, read whole.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    method: Method,
    path: String,
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl HttpResponse {
    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The error this response maps to with [`crate::classify`] (meaningful for non-2xx).
    pub fn error(&self) -> Error {
        classify(
            &self.method,
            &self.path,
            self.status,
            &self.headers,
            &self.body,
            SystemTime::now(),
        )
    }

    /// The response if 2xx, else its classified error.
    ///
    /// # Errors
    /// See [`HttpResponse::error`].
    pub fn error_for_status(self) -> Result<Self> {
        if self.status.is_success() {
            Ok(self)
        } else {
            Err(self.error())
        }
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The body bytes.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Parses the body as JSON.
    ///
    /// # Errors
    /// `Vendor` when the body is not the expected JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::new(
                ErrorKind::Vendor,
                format!("response body not understood ({}): {e}", self.status),
            )
        })
    }

    /// The `Link: <…>; rel="next"` target, if any.
    pub fn next_link(&self) -> Option<String> {
        for value in self.headers.get_all(reqwest::header::LINK) {
            let Ok(value) = value.to_str() else { continue };
            for part in value.split(',') {
                let mut pieces = part.split(';');
                let target = pieces.next()?.trim();
                if pieces.any(|p| {
                    let p = p.trim().replace(' ', "");
                    p == "rel=\"next\"" || p == "rel=next"
                }) {
                    return Some(
                        target
                            .trim_start_matches('<')
                            .trim_end_matches('>')
                            .to_owned(),
                    );
                }
            }
        }
        None
    }
}

/// Builds an [`HttpClient`].
pub struct HttpClientBuilder {
    base_url: String,
    timeout: Duration,
    user_agent: String,
    tokens: Option<Arc<dyn TokenProvider>>,
    limiter: LimiterConfig,
    allow_plain_http: bool,
    budget: BudgetHandle,
    scope: Option<String>,
    shared_concurrency: Option<usize>,
    identity: Option<crate::ClientIdentity>,
}

impl fmt::Debug for HttpClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClientBuilder")
            .field("base_url", &self.base_url)
            .field("timeout", &self.timeout)
            .field("user_agent", &self.user_agent)
            .field("tokens", &self.tokens)
            .field("limiter", &self.limiter)
            .field("allow_plain_http", &self.allow_plain_http)
            .field("scope", &self.scope)
            .field("shared_concurrency", &self.shared_concurrency)
            .field("identity", &self.identity)
            .finish()
    }
}

impl HttpClientBuilder {
    /// Allows a plain `http` base URL to this machine (loopback tests and simulators). Default:
    /// off, and never beyond loopback: see [`crate::require_https`].
    pub fn allow_plain_http(mut self, allow: bool) -> Self {
        self.allow_plain_http = allow;
        self
    }

    /// Timeout of one request, connect to last body byte. Default: 30 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The `User-Agent`. Default: `offboard/<version>`.
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = ua.into();
        self
    }

    /// The token provider (required).
    pub fn token_provider(mut self, tokens: impl TokenProvider + 'static) -> Self {
        self.tokens = Some(Arc::new(tokens));
        self
    }

    /// A shared token provider.
    pub fn shared_token_provider(mut self, tokens: Arc<dyn TokenProvider>) -> Self {
        self.tokens = Some(tokens);
        self
    }

    /// The limiter's configuration. Default: [`LimiterConfig::default`].
    pub fn limiter(mut self, config: LimiterConfig) -> Self {
        self.limiter = config;
        self
    }

    /// The vendor budget requests draw from (default: an in-memory budget of the client's
    /// own). A host sharing one budget across a fleet of engines passes the same one to every
    /// client (usually through `EngineBuilder::rate_budget`); with a budget set, each request
    /// also draws from its bucket's budget learnt from the vendor's rate-limit headers, a 429's
    /// `Retry-After` holds the bucket for every process, and [`Self::shared_concurrency`]
    /// applies.
    pub fn rate_budget(self, budget: Arc<dyn RateBudget>) -> Self {
        self.budget.set(budget);
        self
    }

    /// The vendor tenant the client's budget keys start with (default: the base URL). Set it
    /// where several tenants share a base URL (Graph: the tenant and app; Google: the
    /// project).
    pub fn budget_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// A concurrency limit of the vendor tenant shared by every client drawing from one set
    /// budget (Okta's per-org concurrency): each request holds one of `n` slots of the key
    /// `scope|concurrency`. Without a set budget the limiter's own cap applies alone.
    pub fn shared_concurrency(mut self, n: usize) -> Self {
        self.shared_concurrency = Some(n.max(1));
        self
    }

    /// Presents this client certificate to the vendor (mutual TLS). Default: none.
    pub fn client_identity(mut self, identity: crate::ClientIdentity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// Validates and builds.
    ///
    /// # Errors
    /// `Config` naming `base_url` (not an absolute https URL, or plain http not allowed: see
    /// [`crate::require_https`]) or `token_provider` (missing).
    pub fn build(self) -> Result<HttpClient> {
        let base = Url::parse(&self.base_url)
            .map_err(|e| Error::config("base_url", format!("not a URL: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(Error::config("base_url", "must be an http(s) URL"));
        }
        crate::require_https(&base, "base_url", self.allow_plain_http)?;
        if base.query().is_some() || !base.username().is_empty() || base.password().is_some() {
            return Err(Error::config(
                "base_url",
                "must not carry a query or credentials",
            ));
        }
        let tokens = self
            .tokens
            .ok_or_else(|| Error::config("token_provider", "missing"))?;
        let mut http = reqwest::Client::builder()
            .timeout(self.timeout)
            .user_agent(self.user_agent.clone())
            .redirect(reqwest::redirect::Policy::none());
        if let Some(identity) = self.identity {
            http = http.identity(identity.0);
        }
        let http = http
            .build()
            .map_err(|e| Error::internal(format!("building the HTTP client failed: {e}")))?;
        let scope = self
            .scope
            .unwrap_or_else(|| base.as_str().trim_end_matches('/').to_owned());
        Ok(HttpClient {
            http,
            base,
            budget: self.budget,
            scope,
            shared_concurrency: self.shared_concurrency,
            tokens,
            limiter: Arc::new(AdaptiveLimiter::new(self.limiter)),
            timeout: self.timeout,
            user_agent: self.user_agent,
        })
    }
}

/// The shared REST client: base URL, timeout, user agent, token provider, adaptive limiter and
/// redacted tracing. Cheap to clone (clones share the connection pool and the limiter).
///
/// # Behavior
/// - [`HttpClient::send`] returns 2xx responses and turns everything else into an error with
///   [`crate::classify`]; [`HttpClient::send_raw`] returns any HTTP answer (connectors that
///   branch on a vendor error code read it).
/// - A 401 invalidates the token provider's cache.
/// - Redirects are not followed (a redirect would carry the `Authorization` header elsewhere).
/// - Every request runs in an `http.request` tracing span with `method`, `path`, `status` and
///   `latency_ms`; the query, headers, bodies and token never appear in spans, events, errors
///   or `Debug`.
#[derive(Clone)]
pub struct HttpClient {
    http: reqwest::Client,
    base: Url,
    tokens: Arc<dyn TokenProvider>,
    limiter: Arc<AdaptiveLimiter>,
    budget: BudgetHandle,
    scope: String,
    shared_concurrency: Option<usize>,
    timeout: Duration,
    user_agent: String,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("base", &self.base.as_str())
            .field("timeout", &self.timeout)
            .field("user_agent", &self.user_agent)
            .field("tokens", &self.tokens)
            .field("limiter", &self.limiter.config())
            .field("scope", &self.scope)
            .finish()
    }
}

impl HttpClient {
    /// A builder for a client of `base_url` (e.g. `https://example.okta.com`).
    pub fn builder(base_url: impl Into<String>) -> HttpClientBuilder {
        HttpClientBuilder {
            base_url: base_url.into(),
            timeout: Duration::from_secs(30),
            user_agent: concat!("offboard/", env!("CARGO_PKG_VERSION")).to_owned(),
            tokens: None,
            limiter: LimiterConfig::default(),
            allow_plain_http: false,
            budget: BudgetHandle::default(),
            scope: None,
            shared_concurrency: None,
            identity: None,
        }
    }

    /// Makes this client, its clones and the pacers made with [`HttpClient::pacer`] draw from
    /// `budget` from now on (see [`HttpClientBuilder::rate_budget`]).
    pub fn use_rate_budget(&self, budget: Arc<dyn RateBudget>) {
        self.budget.set(budget);
    }

    /// The budget key of `name` (a bucket or a pacer): `scope|name`.
    pub fn budget_key(&self, name: &str) -> String {
        format!("{}|{name}", self.scope)
    }

    /// A pacer of `limit` requests per `per` drawing from this client's budget under
    /// `scope|name` (`None`: `limit` or `per` zero, no pacing).
    pub fn pacer(&self, name: &str, limit: u32, per: Duration) -> Option<Pacer> {
        Pacer::on(self.budget.clone(), self.budget_key(name), limit, per)
    }

    /// Draws one request of `bucket` from a set budget: a shared concurrency slot, and a turn
    /// of the bucket's budget learnt from the vendor's headers.
    async fn draw(&self, bucket: &str) -> Result<Option<ConcurrencyPermit>> {
        let (budget, shared) = self.budget.get();
        if !shared {
            return Ok(None);
        }
        // Waits for the vendor's turn: not counted in the engine's call time limit.
        let slot = match self.shared_concurrency {
            Some(n) => Some(turn(budget.concurrency(&self.budget_key("concurrency"), n)).await?),
            None => None,
        };
        if let Some(quota) = self.limiter.learnt_limit(bucket).and_then(|limit| {
            Quota::per(
                u32::try_from(limit).unwrap_or(u32::MAX),
                self.limiter.learnt_window(bucket),
            )
        }) {
            turn(budget.acquire(&self.budget_key(bucket), &quota, 1)).await?;
        }
        Ok(slot)
    }

    /// After a rate-limit answer with a wait hint, holds the bucket in a set budget for every
    /// process sharing it (a failure to record it is logged: the answer still counts).
    async fn penalise(&self, bucket: &str, status: StatusCode, headers: &HeaderMap, body: &[u8]) {
        if !matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::FORBIDDEN
        ) {
            return;
        }
        let (budget, shared) = self.budget.get();
        if !shared {
            return;
        }
        // Okta's concurrency 429 (`X-Rate-Limit-Limit: 0`) says nothing about the budget.
        if crate::limiter::RateLimitHeaders::parse(headers).is_some_and(|h| h.limit == 0) {
            return;
        }
        let error = classify(&Method::GET, "", status, headers, body, SystemTime::now());
        let Some(wait) = error
            .retry_after()
            .filter(|_| error.kind() == ErrorKind::RateLimited)
        else {
            return;
        };
        if let Err(e) = budget.penalise(&self.budget_key(bucket), wait).await {
            tracing::warn!(error = %e, "recording a rate-limit penalty in the budget failed");
        }
    }

    /// The base URL.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// The limiter, shared by the clones of this client.
    pub fn limiter(&self) -> &AdaptiveLimiter {
        &self.limiter
    }

    fn url(&self, request: &HttpRequest) -> Result<Url> {
        let mut url = self.base.clone();
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|()| Error::config("base_url", "cannot be a base"))?;
            path.pop_if_empty();
            for segment in &request.segments {
                if segment.is_empty() || segment == "." || segment == ".." {
                    return Err(Error::invalid_input(format!(
                        "path segment {segment:?} would change the resource addressed"
                    )));
                }
                path.push(segment);
            }
        }
        if !request.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&request.query);
        }
        Ok(url)
    }

    /// Sends the request and returns a 2xx response.
    ///
    /// # Errors
    /// The classified error for any other status ([`crate::classify`]), retryable
    /// `Unavailable`/`Timeout` for transport failures, `InvalidInput` for an unsafe path
    /// segment, and the token provider's errors.
    pub async fn send(&self, request: HttpRequest) -> Result<HttpResponse> {
        self.send_raw(request).await?.error_for_status()
    }

    /// Sends the request and returns the response whatever its status.
    ///
    /// # Errors
    /// Transport failures, an unsafe path segment, and the token provider's errors.
    pub async fn send_raw(&self, request: HttpRequest) -> Result<HttpResponse> {
        let url = self.url(&request)?;
        self.execute(request, url).await
    }

    /// Follows `Link: rel="next"` from a GET whose body is a JSON array and concatenates the
    /// pages. A next link to another origin than the base URL is refused.
    ///
    /// # Errors
    /// As [`HttpClient::send`], plus `Vendor` for a body that is not an array or a foreign
    /// next link.
    pub async fn get_all_pages(&self, request: HttpRequest) -> Result<Vec<serde_json::Value>> {
        let mut out = Vec::new();
        let mut url = self.url(&request)?;
        for _ in 0..10_000 {
            let response = self
                .execute(request.clone(), url.clone())
                .await?
                .error_for_status()?;
            let page: Vec<serde_json::Value> = response.json()?;
            out.extend(page);
            let Some(next) = response.next_link() else {
                return Ok(out);
            };
            let next = Url::parse(&next).map_err(|e| {
                Error::new(ErrorKind::Vendor, format!("next link is not a URL: {e}"))
            })?;
            if next.origin() != self.base.origin() {
                return Err(Error::new(
                    ErrorKind::Vendor,
                    "next link points to another origin; not followed",
                ));
            }
            url = next;
        }
        Err(Error::new(
            ErrorKind::Vendor,
            "more than 10000 pages; stopped",
        ))
    }

    async fn execute(&self, request: HttpRequest, url: Url) -> Result<HttpResponse> {
        let path = url.path().to_owned();
        let method = request.method.clone();
        let span = tracing::info_span!(
            "http.request",
            method = %method,
            path = %crate::error::shown_path(&path),
            status = tracing::field::Empty,
            latency_ms = tracing::field::Empty,
        );
        async move {
            let bucket = request.bucket_name();
            let _permit = self.limiter.acquire(&bucket).await;
            let _slot = match self.draw(&bucket).await {
                Ok(slot) => slot,
                Err(e) => {
                    self.limiter.release(&bucket);
                    return Err(e);
                }
            };
            let authorization = match self.tokens.authorization().await {
                Ok(a) => a,
                Err(e) => {
                    self.limiter.release(&bucket);
                    return Err(e);
                }
            };
            let Ok(mut value) = HeaderValue::from_str(authorization.expose()) else {
                self.limiter.release(&bucket);
                return Err(Error::config(
                    "token",
                    "the authorization value is not a valid header value",
                ));
            };
            value.set_sensitive(true);
            let credential = self.tokens.header();
            let mut builder = self
                .http
                .request(method.clone(), url)
                .header(credential.clone(), value)
                .header(reqwest::header::ACCEPT, "application/json");
            for (name, v) in &request.headers {
                if name == AUTHORIZATION || *name == credential {
                    continue;
                }
                builder = builder.header(name.clone(), v.as_str());
            }
            match &request.body {
                Some(body) => builder = builder.json(body),
                // hyper sends no length for an empty body over HTTP/1.1, and Google answers
                // such a write `411 Length Required`: say it is empty.
                None if matches!(method, Method::POST | Method::PUT | Method::PATCH) => {
                    builder = builder.header(reqwest::header::CONTENT_LENGTH, "0");
                }
                None => {}
            }
            let started = tokio::time::Instant::now();
            let result = builder.send().await;
            let span = tracing::Span::current();
            let response = match result {
                Ok(r) => r,
                Err(e) => {
                    self.limiter.release(&bucket);
                    span.record("latency_ms", started.elapsed().as_millis() as u64);
                    let error = transport(&method, &path, &e);
                    tracing::warn!(error = %error, "http request failed");
                    return Err(error);
                }
            };
            let status = response.status();
            let headers = response.headers().clone();
            let body = match response.bytes().await {
                Ok(b) => b.to_vec(),
                Err(e) => {
                    self.limiter.release(&bucket);
                    return Err(transport(&method, &path, &e));
                }
            };
            let latency = started.elapsed();
            span.record("status", status.as_u16());
            span.record("latency_ms", latency.as_millis() as u64);
            self.limiter.observe(&bucket, &headers, SystemTime::now());
            self.penalise(&bucket, status, &headers, &body).await;
            if status == StatusCode::UNAUTHORIZED {
                self.tokens.invalidate();
            }
            tracing::debug!(
                status = status.as_u16(),
                latency_ms = latency.as_millis() as u64,
                "http response"
            );
            Ok(HttpResponse {
                method,
                path,
                status,
                headers,
                body,
            })
        }
        .instrument(span)
        .await
    }
}
