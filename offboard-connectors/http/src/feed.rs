//! [`HttpFeedLoader`]: an HR export fetched from a URL, for `offboard_core`'s `HrFeed`.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use offboard_core::source::hr::{FeedLoader, HrFormat, Loaded};
use offboard_core::{Error, ErrorKind, Result, Secret};
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_TYPE, ETAG, HeaderValue, IF_MODIFIED_SINCE, IF_NONE_MATCH,
    LAST_MODIFIED,
};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::auth::{StaticToken, TokenProvider};
use crate::error::{classify, transport};

/// Fetches an HR export with `GET`, cheaply when it has not changed.
///
/// # Behavior
/// - Optional authentication from any [`TokenProvider`] ([`HttpFeedLoader::with_bearer`],
///   [`HttpFeedLoader::with_basic`] for the usual cases); the credential never appears in
///   `Debug`, errors or logs.
/// - Conditional requests: the `ETag` and `Last-Modified` of the last export are kept in the
///   validator (and so in the source's cursor) and sent back as `If-None-Match` /
///   `If-Modified-Since`; a `304 Not Modified` is [`Loaded::Unchanged`].
/// - A non-2xx answer is an error classified like every vendor answer (401
///   `Unauthenticated`, 403 `PermissionDenied`, 404 `NotFound`, 5xx and 429 retryable);
///   redirects are not followed (they would carry the credential elsewhere) and are reported.
/// - The `Content-Type` must fit the format: CSV accepts `text/csv`, `application/csv`,
///   `text/plain`; JSON accepts `application/json`, `text/json` and `*+json`; either accepts
///   `application/octet-stream` or no type. Anything else (an HTML login page) is a `Vendor`
///   error naming the type. The body must be UTF-8.
pub struct HttpFeedLoader {
    http: reqwest::Client,
    url: Url,
    format: HrFormat,
    auth: Option<Arc<dyn TokenProvider>>,
}

impl fmt::Debug for HttpFeedLoader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpFeedLoader")
            .field("location", &self.location())
            .field("format", &self.format)
            .field("auth", &self.auth)
            .finish()
    }
}

/// What the validator carries between loads.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Validator {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_modified: Option<String>,
}

impl HttpFeedLoader {
    /// A loader of `url` (http or https) whose body is parsed as `format`; 30 s timeout.
    ///
    /// # Errors
    /// `Config` naming `url` when it is not an absolute http(s) URL or carries credentials
    /// (give those with [`HttpFeedLoader::with_basic`] or a token provider instead).
    pub fn new(url: &str, format: HrFormat) -> Result<Self> {
        Self::with_timeout(url, format, Duration::from_secs(30))
    }

    /// As [`HttpFeedLoader::new`], with a per-request timeout.
    ///
    /// # Errors
    /// As [`HttpFeedLoader::new`].
    pub fn with_timeout(url: &str, format: HrFormat, timeout: Duration) -> Result<Self> {
        let url = Url::parse(url).map_err(|e| Error::config("url", format!("not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
            return Err(Error::config("url", "must be an http(s) URL"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Error::config(
                "url",
                "must not carry credentials; configure the feed's authentication instead",
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("offboard/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::internal(format!("building the HTTP client failed: {e}")))?;
        Ok(Self {
            http,
            url,
            format,
            auth: None,
        })
    }

    /// Authenticates with `Authorization: Bearer <token>`.
    pub fn with_bearer(self, token: Secret) -> Self {
        self.with_auth(Arc::new(StaticToken::bearer(token)))
    }

    /// Authenticates with HTTP basic auth.
    pub fn with_basic(self, user: &str, password: &Secret) -> Self {
        self.with_auth(Arc::new(StaticToken::basic(user, password)))
    }

    /// Authenticates with any token provider (e.g. OAuth client credentials).
    pub fn with_auth(mut self, auth: Arc<dyn TokenProvider>) -> Self {
        self.auth = Some(auth);
        self
    }

    fn accepted(&self, content_type: &str) -> bool {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if essence.is_empty() || essence == "application/octet-stream" {
            return true;
        }
        match self.format {
            HrFormat::Csv => matches!(
                essence.as_str(),
                "text/csv" | "application/csv" | "text/plain"
            ),
            HrFormat::Json => {
                matches!(essence.as_str(), "application/json" | "text/json")
                    || essence.ends_with("+json")
            }
        }
    }

    fn error(&self, message: String) -> Error {
        Error::new(ErrorKind::Vendor, format!("{}: {message}", self.location()))
    }
}

#[async_trait]
impl FeedLoader for HttpFeedLoader {
    /// Scheme, host, port and path; never the query (which may hold a key).
    fn location(&self) -> String {
        let mut u = self.url.clone();
        u.set_query(None);
        u.set_fragment(None);
        u.to_string()
    }

    async fn load(&self, validator: Option<&str>) -> Result<Loaded> {
        let path = self.url.path().to_owned();
        let previous: Validator = validator
            .and_then(|v| serde_json::from_str(v).ok())
            .unwrap_or_default();
        let accept = match self.format {
            HrFormat::Csv => "text/csv, text/plain;q=0.5",
            HrFormat::Json => "application/json",
        };
        let mut request = self.http.get(self.url.clone()).header(ACCEPT, accept);
        if let Some(auth) = &self.auth {
            let value = auth.authorization().await?;
            let Ok(mut value) = HeaderValue::from_str(value.expose()) else {
                return Err(Error::config(
                    "auth",
                    "the authorization value is not a valid header value",
                ));
            };
            value.set_sensitive(true);
            request = request.header(AUTHORIZATION, value);
        }
        if let Some(etag) = &previous.etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        if let Some(modified) = &previous.last_modified {
            request = request.header(IF_MODIFIED_SINCE, modified);
        }
        let response = request
            .send()
            .await
            .map_err(|e| transport(&Method::GET, &path, &e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| transport(&Method::GET, &path, &e))?;
        if status == StatusCode::NOT_MODIFIED && validator.is_some() {
            return Ok(Loaded::Unchanged);
        }
        if status.is_redirection() {
            return Err(self.error(format!(
                "answered {status} (a redirect); redirects are not followed, configure the final URL"
            )));
        }
        if !status.is_success() {
            if status == StatusCode::UNAUTHORIZED
                && let Some(auth) = &self.auth
            {
                auth.invalidate();
            }
            let e = classify(
                &Method::GET,
                &path,
                status,
                &headers,
                &body,
                SystemTime::now(),
            );
            return Err(e.with_context("feed", self.location()));
        }
        let content_type = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !self.accepted(content_type) {
            let expected = match self.format {
                HrFormat::Csv => "CSV (text/csv or text/plain)",
                HrFormat::Json => "JSON (application/json)",
            };
            return Err(self.error(format!(
                "answered Content-Type {content_type:?}; expected {expected}"
            )));
        }
        let body = String::from_utf8(body.to_vec())
            .map_err(|e| self.error(format!("the export is not UTF-8: {e}")))?;
        let header = |name| {
            headers
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let next = Validator {
            etag: header(ETAG),
            last_modified: header(LAST_MODIFIED),
        };
        let validator = (next.etag.is_some() || next.last_modified.is_some())
            .then(|| serde_json::to_string(&next).expect("validator serialises"));
        Ok(Loaded::Content { body, validator })
    }
}
