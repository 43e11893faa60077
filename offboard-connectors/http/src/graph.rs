//! The Microsoft Graph client shared by the Entra ID and Office 365 connectors.
//!
//! Built on [`HttpClient`] (so it shares its token providers, error mapping, limiter and
//! redacted tracing): [`GraphClient::builder`] for an app registration with a client secret,
//! typed requests relative to the Graph base URL, `@odata.nextLink` paging, the OData
//! string-literal escaper every `$filter` goes through ([`odata_string`], [`user_filter`]),
//! the exact user lookup by UPN or mail ([`GraphClient::find_user`]) and by a
//! [`LookupRequest`] ([`lookup_user`]), Graph error mapping and JSON batching (`POST /$batch`)
//! with per-item status and per-item throttling, and pacing ahead to Graph's write and
//! resource-unit budgets ([`resource_units`]). Connector configurations wrap a
//! [`GraphClientBuilder`] ([`GraphClientBuilder::from_env`], [`crate::graph_config_setters`]).
//!
//! Nothing here is specific to one Graph workload.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use offboard_core::{AccountRef, Error, ErrorKind, LookupRequest, Result, Secret};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::auth::MicrosoftClientCredentials;
use crate::client::{HttpClient, HttpRequest, HttpResponse};
use crate::error::classify;
use crate::limiter::LimiterConfig;
use crate::pacer::Pacer;

mod ru;
pub use ru::{DEFAULT_RESOURCE_UNIT_BUDGET, resource_units};

/// Whether the request is the `$batch` call itself (its writes are paced item by item).
fn is_batch(request: &GraphRequest) -> bool {
    request.segments.len() == 1 && request.segments[0] == "$batch"
}

/// The budget a 429 says was spent, from its `x-ms-throttle-information`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Throttled {
    /// `ResourceUnitLimitExceeded`: the identity RU budget.
    ResourceUnits,
    /// `WriteLimitExceeded`, or no reason given for a write: the write budget.
    Writes,
    /// Anything else (another workload's limit, a read without a reason).
    Other,
}

impl Throttled {
    fn of(information: Option<&str>, write: bool) -> Self {
        match information.map(str::trim) {
            Some(i) if i.eq_ignore_ascii_case("ResourceUnitLimitExceeded") => Self::ResourceUnits,
            Some(i) if i.eq_ignore_ascii_case("WriteLimitExceeded") => Self::Writes,
            None if write => Self::Writes,
            _ => Self::Other,
        }
    }
}

/// The most requests one `$batch` may hold (Graph's limit).
pub const GRAPH_BATCH_LIMIT: usize = 20;

/// Graph `error.code` values that mean "the object does not exist", whatever the status.
const NOT_FOUND_CODES: [&str; 4] = [
    "Request_ResourceNotFound",
    "ResourceNotFound",
    "itemNotFound",
    "ErrorItemNotFound",
];

/// The longest identifier (address, external id) a lookup or an action sends to Graph, in
/// bytes: an email address has at most 254 characters, a `userPrincipalName` 113, an object
/// id 36, so anything longer is refused before a request is built.
pub const MAX_IDENTIFIER_LEN: usize = 256;

/// Fatal `InvalidInput`, without echoing the value, for one longer than
/// [`MAX_IDENTIFIER_LEN`] bytes; `what` names it in the message ("an address").
///
/// # Errors
/// As said.
pub fn check_length(value: &str, what: &str) -> Result<()> {
    if value.len() > MAX_IDENTIFIER_LEN {
        return Err(Error::invalid_input(format!(
            "{what} of {} bytes is longer than the {MAX_IDENTIFIER_LEN} bytes Graph is sent",
            value.len()
        ))
        .fatal());
    }
    Ok(())
}

/// An OData string literal for a `$filter`: `value` in single quotes, each `'` doubled.
///
/// # Behavior
/// `O'Brien` becomes `'O''Brien'`, so no input can end the literal and add an operator
/// (` or `, `eq`, parentheses stay inside the string). Nothing else is special inside an OData
/// string literal; `*` is not a wildcard in `eq`.
///
/// # Errors
/// `InvalidInput` when `value` holds a control character (NUL, CR, LF, …), which has no safe
/// place in a filter, or is longer than [`MAX_IDENTIFIER_LEN`] bytes (not echoed).
///
/// # Example
/// ```
/// use offboard_http::graph::odata_string;
/// assert_eq!(odata_string("o'neil@example.com").unwrap(), "'o''neil@example.com'");
/// assert!(odata_string("a\0b").is_err());
/// ```
pub fn odata_string(value: &str) -> Result<String> {
    check_length(value, "a value")?;
    if value.chars().any(char::is_control) {
        return Err(Error::invalid_input(format!(
            "{:?} contains a control character; it cannot be put into an OData filter",
            value
        ))
        .fatal());
    }
    Ok(format!("'{}'", value.replace('\'', "''")))
}

/// The `$filter` matching any of `addresses` exactly as `userPrincipalName`, `mail`, an SMTP
/// `proxyAddresses` entry (`smtp:` and the address; Graph compares without case, so the
/// primary `SMTP:` one matches too) or an `otherMails` entry.
///
/// # Behavior
/// Each address is an OData string literal ([`odata_string`]: `'` doubled), so no input can
/// end the literal and add an operator. The multi-valued properties are matched with `any`
/// and `eq`, which Graph serves without advanced query parameters. Empty addresses are
/// skipped (`None` when none is left).
///
/// # Errors
/// `InvalidInput` for an address with a control character or longer than
/// [`MAX_IDENTIFIER_LEN`] bytes.
///
/// # Example
/// ```
/// use offboard_http::graph::user_filter;
/// assert_eq!(
///     user_filter(&["o'neil@x.com"]).unwrap().unwrap(),
///     "userPrincipalName eq 'o''neil@x.com' or mail eq 'o''neil@x.com' \
///      or proxyAddresses/any(x:x eq 'smtp:o''neil@x.com') \
///      or otherMails/any(x:x eq 'o''neil@x.com')"
/// );
/// assert_eq!(user_filter(&[""]).unwrap(), None);
/// ```
pub fn user_filter<S: AsRef<str>>(addresses: &[S]) -> Result<Option<String>> {
    let mut terms = Vec::new();
    for address in addresses {
        let address = address.as_ref();
        let literal = odata_string(address)?;
        if address.is_empty() {
            continue;
        }
        // The address is checked above; `smtp:` adds no quote.
        let proxy = format!("'smtp:{}", &literal[1..]);
        terms.push(format!("userPrincipalName eq {literal}"));
        terms.push(format!("mail eq {literal}"));
        terms.push(format!("proxyAddresses/any(x:x eq {proxy})"));
        terms.push(format!("otherMails/any(x:x eq {literal})"));
    }
    Ok((!terms.is_empty()).then(|| terms.join(" or ")))
}

/// Whether `user` (Graph JSON) holds `address` exactly, ASCII case ignored: as
/// `userPrincipalName`, `mail`, an `smtp:` entry of `proxyAddresses` (prefix of any case) or
/// an `otherMails` entry. Nothing else is folded, and other proxy types (`x500:`, `sip:`)
/// never match.
fn holds_address(user: &serde_json::Value, address: &str) -> bool {
    if address.is_empty() {
        return false;
    }
    let same = |v: &serde_json::Value| v.as_str().is_some_and(|v| v.eq_ignore_ascii_case(address));
    let many = |k: &str| user[k].as_array().cloned().unwrap_or_default();
    same(&user["userPrincipalName"])
        || same(&user["mail"])
        || many("otherMails").iter().any(same)
        || many("proxyAddresses").iter().any(|p| {
            p.as_str().is_some_and(|p| {
                p.get(..5).is_some_and(|t| t.eq_ignore_ascii_case("smtp:"))
                    && p[5..].eq_ignore_ascii_case(address)
            })
        })
}

/// `select` with `proxyAddresses` and `otherMails` added where missing (the lookup compares
/// them again locally).
fn with_address_fields(select: &str) -> String {
    let mut out = select.to_owned();
    for field in ["proxyAddresses", "otherMails"] {
        if !select.split(',').any(|s| s.trim() == field) {
            out.push(',');
            out.push_str(field);
        }
    }
    out
}

/// Maps a Graph answer that is not a success to an error: [`classify`], and an `error.code`
/// meaning "not found" (`Request_ResourceNotFound`, `ResourceNotFound`, `itemNotFound`) is
/// `NotFound` whatever the status.
pub fn graph_error(
    method: &Method,
    path: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Error {
    let e = classify(method, path, status, headers, body, SystemTime::now());
    let code = vendor_code(&e).map(str::to_owned);
    match code {
        Some(c) if e.kind() != ErrorKind::NotFound && NOT_FOUND_CODES.contains(&c.as_str()) => {
            Error::new(ErrorKind::NotFound, e.message().to_owned())
                .with_context("status", status.as_u16())
                .with_context("vendor_code", c)
        }
        _ => e,
    }
}

/// The vendor's `error.code` an error carries, if any.
pub fn vendor_code(e: &Error) -> Option<&str> {
    e.context()
        .find(|(k, _)| *k == "vendor_code")
        .map(|(_, v)| v)
}

/// `e` naming the application permission the call needs, when Graph refused it for lack of
/// one (`PermissionDenied`, a 403); any other error unchanged.
///
/// Graph's 403 says only "Insufficient privileges", so the connector that knows which
/// permission the operation needs says it: the message gains
/// "the app needs the Graph application permission {permission}". Kind, retry class and
/// context (status, vendor code) are kept.
///
/// # Example
/// ```
/// use offboard_core::{Error, ErrorKind};
/// use offboard_http::graph::needs_permission;
/// let e = needs_permission(
///     Error::new(ErrorKind::PermissionDenied, "Insufficient privileges").fatal(),
///     "Calendars.ReadWrite",
/// );
/// assert!(e.to_string().contains("needs the Graph application permission Calendars.ReadWrite"));
/// assert_eq!(e.kind(), ErrorKind::PermissionDenied);
/// ```
pub fn needs_permission(e: Error, permission: &str) -> Error {
    if e.kind() != ErrorKind::PermissionDenied {
        return e;
    }
    let mut out = Error::new(
        ErrorKind::PermissionDenied,
        format!(
            "{}; the app needs the Graph application permission {permission}",
            e.message()
        ),
    )
    .with_retry(e.retry())
    .with_operation(e.operation().to_owned());
    for (k, v) in e.context() {
        out = out.with_context(k.to_owned(), v);
    }
    out
}

/// The error of a task that changed some objects and not others: `"{done}; NOT {what} ({n}):
/// {items}"`, `Unsupported` and fatal, so the task fails naming each object left as it was
/// (after `done` says what was changed) and nobody believes it was handled.
///
/// # Example
/// ```
/// use offboard_core::ErrorKind;
/// use offboard_http::graph::not_done;
/// let e = not_done("removed from 1 teams (A)", "removed", &["B (owner)".to_owned()]);
/// assert_eq!(e.kind(), ErrorKind::Unsupported);
/// assert!(e.to_string().contains("removed from 1 teams (A); NOT removed (1): B (owner)"));
/// ```
pub fn not_done(done: &str, what: &str, items: &[String]) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        format!("{done}; NOT {what} ({}): {}", items.len(), items.join(", ")),
    )
    .fatal()
}

/// One Graph request: method, path segments relative to the version root (each
/// percent-encoded on its own), query, JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphRequest {
    method: Method,
    segments: Vec<String>,
    query: Vec<(String, String)>,
    body: Option<serde_json::Value>,
    headers: Vec<(String, String)>,
}

impl GraphRequest {
    /// A request with this method and path segments.
    pub fn new<I, S>(method: Method, segments: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            method,
            segments: segments.into_iter().map(Into::into).collect(),
            query: Vec::new(),
            body: None,
            headers: Vec::new(),
        }
    }

    /// A GET.
    pub fn get<I: IntoIterator<Item = S>, S: Into<String>>(segments: I) -> Self {
        Self::new(Method::GET, segments)
    }

    /// A POST with a JSON body.
    pub fn post<I: IntoIterator<Item = S>, S: Into<String>>(
        segments: I,
        body: serde_json::Value,
    ) -> Self {
        Self::new(Method::POST, segments).json(body)
    }

    /// A PATCH with a JSON body.
    pub fn patch<I: IntoIterator<Item = S>, S: Into<String>>(
        segments: I,
        body: serde_json::Value,
    ) -> Self {
        Self::new(Method::PATCH, segments).json(body)
    }

    /// A PUT with a JSON body (e.g. `…/manager/$ref`).
    pub fn put<I: IntoIterator<Item = S>, S: Into<String>>(
        segments: I,
        body: serde_json::Value,
    ) -> Self {
        Self::new(Method::PUT, segments).json(body)
    }

    /// A DELETE.
    pub fn delete<I: IntoIterator<Item = S>, S: Into<String>>(segments: I) -> Self {
        Self::new(Method::DELETE, segments)
    }

    /// Adds a query parameter (`$filter`, `$select`, …).
    pub fn query(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((key.into(), value.into()));
        self
    }

    /// Adds a header (e.g. `ConsistencyLevel: eventual`).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the JSON body.
    pub fn json(mut self, body: serde_json::Value) -> Self {
        self.body = Some(body);
        self
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The path below the version root, percent-encoded, with the query: what a `$batch` item
    /// carries as `url`.
    ///
    /// # Errors
    /// `InvalidInput` for an empty, `.` or `..` segment.
    pub fn relative_url(&self) -> Result<String> {
        let mut url =
            Url::parse("https://graph.invalid/").map_err(|e| Error::internal(e.to_string()))?;
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|()| Error::internal("base cannot be a base"))?;
            path.pop_if_empty();
            for s in &self.segments {
                check_segment(s)?;
                path.push(s);
            }
        }
        if !self.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&self.query);
        }
        Ok(match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        })
    }

    /// The [`HttpRequest`] (its segments are joined to the client's base URL, the version
    /// root).
    fn http(&self) -> Result<HttpRequest> {
        for s in &self.segments {
            check_segment(s)?;
        }
        let mut r = HttpRequest::new(self.method.clone(), self.segments.iter().cloned())
            .bucket(self.bucket());
        for (k, v) in &self.query {
            r = r.query(k.clone(), v.clone());
        }
        for (k, v) in &self.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| Error::invalid_input(format!("header name {k:?}: {e}")))?;
            r = r.header(name, v.clone());
        }
        if let Some(b) = &self.body {
            r = r.json(b.clone());
        }
        Ok(r)
    }

    /// Graph throttles writes apart from reads.
    fn bucket(&self) -> String {
        let kind = if self.method == Method::GET {
            "read"
        } else {
            "write"
        };
        format!("graph {kind}")
    }
}

fn check_segment(s: &str) -> Result<()> {
    if s.is_empty() || s == "." || s == ".." {
        return Err(Error::invalid_input(format!(
            "path segment {s:?} would change the resource addressed"
        )));
    }
    Ok(())
}

/// How the client waits out throttling (429) itself before handing the error to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct GraphRetry {
    /// Sends of one request (or one batch item) at most, the first included. Default 4.
    pub max_attempts: u32,
    /// The longest `Retry-After` waited for in-process; a longer one is returned as the error
    /// (with its hint) for the engine to schedule. Default 30 s.
    pub max_wait: Duration,
    /// The wait when a 429 carries no `Retry-After` (doubled per attempt). Default 1 s.
    pub default_wait: Duration,
}

impl Default for GraphRetry {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            max_wait: Duration::from_secs(30),
            default_wait: Duration::from_secs(1),
        }
    }
}

impl GraphRetry {
    /// No in-process retry: every 429 is returned at once.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Sets the attempts (at least 1).
    pub fn with_max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Sets the longest wait honoured in-process.
    pub fn with_max_wait(mut self, d: Duration) -> Self {
        self.max_wait = d;
        self
    }

    fn wait(&self, hint: Option<Duration>, attempt: u32) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let wait = hint.unwrap_or(self.default_wait * 2u32.saturating_pow(attempt - 1));
        (wait <= self.max_wait).then_some(wait)
    }
}

/// One request of a `$batch`.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchItem {
    /// Unique within the batch call (case-insensitive).
    pub id: String,
    /// The request.
    pub request: GraphRequest,
    /// Ids of items that must succeed first.
    pub depends_on: Vec<String>,
}

impl BatchItem {
    /// An item without dependencies.
    pub fn new(id: impl Into<String>, request: GraphRequest) -> Self {
        Self {
            id: id.into(),
            request,
            depends_on: Vec::new(),
        }
    }

    /// Runs after item `id` succeeded.
    pub fn depends_on(mut self, id: impl Into<String>) -> Self {
        self.depends_on.push(id.into());
        self
    }
}

/// The answer to one batch item.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchReply {
    /// The item's id.
    pub id: String,
    /// Its own status (a 200 batch can hold 4xx/5xx items).
    pub status: u16,
    /// Its headers (e.g. `Retry-After` on a 429).
    pub headers: BTreeMap<String, String>,
    /// Its body (`null` when none).
    pub body: serde_json::Value,
    /// How many times it was sent (more than once after item-level 429s).
    pub attempts: u32,
    method: Method,
    url: String,
}

impl BatchReply {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body if 2xx, else the error this item maps to (as a plain request would).
    ///
    /// # Errors
    /// See [`graph_error`]; a 424 (a dependency failed) is a retryable `Unavailable`.
    pub fn result(&self) -> Result<&serde_json::Value> {
        if self.is_success() {
            return Ok(&self.body);
        }
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if self.status == 424 {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "{} {}: 424: a request it depends on failed",
                    self.method,
                    path_of(&self.url)
                ),
            )
            .retryable());
        }
        let mut headers = HeaderMap::new();
        for (k, v) in &self.headers {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                headers.insert(n, v);
            }
        }
        let body = serde_json::to_vec(&self.body).unwrap_or_default();
        Err(graph_error(
            &self.method,
            path_of(&self.url),
            status,
            &headers,
            &body,
        ))
    }

    /// Like [`BatchReply::result`], with 404 meaning "already gone": `Ok(false)`.
    ///
    /// # Errors
    /// Any other failure.
    pub fn deleted(&self) -> Result<bool> {
        match self.result() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// The path of a relative URL, without the query (queries may hold filter values; errors
/// never carry them).
fn path_of(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

#[derive(Deserialize)]
struct Page<T> {
    #[serde(default = "Vec::new")]
    value: Vec<T>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
}

#[derive(Deserialize)]
struct BatchAnswer {
    #[serde(default)]
    responses: Vec<BatchAnswerItem>,
}

#[derive(Deserialize)]
struct BatchAnswerItem {
    id: String,
    status: u16,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: serde_json::Value,
}

/// Graph's v1.0 root.
pub const GRAPH_URL: &str = "https://graph.microsoft.com/v1.0";

/// Builds a [`GraphClient`] for an app registration with a client secret (client credentials
/// against the identity platform): what every Graph connector's configuration needs.
///
/// # Example
/// ```
/// use offboard_core::Secret;
/// use offboard_http::GraphClient;
///
/// let graph = GraphClient::builder()
///     .tenant_id("contoso.onmicrosoft.com")
///     .client_id("00000000-0000-0000-0000-000000000001")
///     .client_secret(Secret::new("s3cr3t"))
///     .build()
///     .unwrap();
/// assert_eq!(graph.http().base_url().as_str(), "https://graph.microsoft.com/v1.0");
/// let err = GraphClient::builder().tenant_id("t").build().unwrap_err();
/// assert!(err.to_string().contains("client_id"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct GraphClientBuilder {
    tenant_id: Option<String>,
    client_id: Option<String>,
    client_secret: Option<Secret>,
    graph_url: Option<String>,
    token_url: Option<String>,
    timeout: Option<Duration>,
    max_concurrency: Option<usize>,
    retry: Option<GraphRetry>,
    write_budget: Option<(u32, Duration)>,
    resource_unit_budget: Option<(u32, Duration)>,
    allow_plain_http: bool,
}

impl GraphClientBuilder {
    /// A builder from `{prefix}_TENANT_ID`, `{prefix}_CLIENT_ID`, `{prefix}_CLIENT_SECRET`,
    /// `{prefix}_GRAPH_URL`, `{prefix}_TOKEN_URL` and `{prefix}_ALLOW_PLAIN_HTTP` (`true`),
    /// each when set (e.g. prefix `OFFBOARD_AZURE`); everything else at its default.
    pub fn from_env(prefix: &str) -> Self {
        Self::from_vars(|k| std::env::var(format!("{prefix}_{k}")).ok())
    }

    /// A builder from `var("TENANT_ID")`, `var("CLIENT_ID")`, … (each when `Some`).
    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        Self {
            tenant_id: var("TENANT_ID"),
            client_id: var("CLIENT_ID"),
            client_secret: var("CLIENT_SECRET").map(Secret::new),
            graph_url: var("GRAPH_URL"),
            token_url: var("TOKEN_URL"),
            allow_plain_http: var("ALLOW_PLAIN_HTTP").is_some_and(|v| v.trim() == "true"),
            ..Self::default()
        }
    }

    /// The directory (tenant) id or a verified domain.
    pub fn tenant_id(mut self, tenant: impl Into<String>) -> Self {
        self.tenant_id = Some(tenant.into());
        self
    }

    /// The app registration's client id.
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = Some(id.into());
        self
    }

    /// The app registration's client secret.
    pub fn client_secret(mut self, secret: Secret) -> Self {
        self.client_secret = Some(secret);
        self
    }

    /// Graph's version root (default [`GRAPH_URL`]; a simulator in tests).
    pub fn graph_url(mut self, url: impl Into<String>) -> Self {
        self.graph_url = Some(url.into());
        self
    }

    /// The token endpoint (default
    /// `https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`).
    pub fn token_url(mut self, url: impl Into<String>) -> Self {
        self.token_url = Some(url.into());
        self
    }

    /// The per-request timeout (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Allows plain `http` Graph and token URLs on this machine (loopback tests and
    /// simulators). Default: off; see [`crate::require_https`].
    pub fn allow_plain_http(mut self, allow: bool) -> Self {
        self.allow_plain_http = allow;
        self
    }

    /// Requests in flight at once (default 16).
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = Some(n);
        self
    }

    /// How 429s are waited out in-process (default [`GraphRetry::default`]).
    pub fn retry(mut self, retry: GraphRetry) -> Self {
        self.retry = Some(retry);
        self
    }

    /// The write budget the client paces itself to: `writes` per `per`, counting each write
    /// inside a `$batch` (default [`DEFAULT_WRITE_BUDGET`], Graph's published small-tenant
    /// identity write limit; `0` writes: no pacing). Graph reports a budget only once 80 % of
    /// it is spent (`x-ms-throttle-limit-percentage`), so sending no faster than it is what
    /// keeps its 429s away.
    pub fn write_budget(mut self, writes: u32, per: Duration) -> Self {
        self.write_budget = Some((writes, per));
        self
    }

    /// The identity resource-unit budget the client paces itself to: `units` RU per `per`,
    /// each request costing what [`resource_units`] says (a `$batch` the sum of its requests).
    /// Default [`DEFAULT_RESOURCE_UNIT_BUDGET`], Graph's small-tenant limit of 3,500 RU per
    /// 10 s per app registration and tenant; set 5,000 or 8,000 per 10 s for a medium
    /// (50–500 users) or large tenant. `0` units: no pacing (429s are still waited out).
    pub fn resource_unit_budget(mut self, units: u32, per: Duration) -> Self {
        self.resource_unit_budget = Some((units, per));
        self
    }

    /// Builds the client.
    ///
    /// # Errors
    /// `Config` naming the missing or malformed key (`tenant_id`, `client_id`,
    /// `client_secret`, `graph_url`, `token_url`, `timeout_secs`, `max_concurrency`).
    pub fn build(self) -> Result<GraphClient> {
        let tenant = self
            .tenant_id
            .ok_or_else(|| Error::config("tenant_id", "missing"))?;
        let client_id = self
            .client_id
            .ok_or_else(|| Error::config("client_id", "missing"))?;
        let secret = self
            .client_secret
            .ok_or_else(|| Error::config("client_secret", "missing"))?;
        let scope = format!("graph|{tenant}|{client_id}");
        let mut tokens = MicrosoftClientCredentials::new(&tenant, client_id, secret)?
            .allow_plain_http(self.allow_plain_http);
        if let Some(url) = &self.token_url {
            tokens = tokens.with_token_url(url)?;
        }
        let timeout = self.timeout.unwrap_or(Duration::from_secs(30));
        if timeout.is_zero() {
            return Err(Error::config("timeout_secs", "must be positive"));
        }
        let concurrency = self.max_concurrency.unwrap_or(16);
        if concurrency == 0 {
            return Err(Error::config("max_concurrency", "must be positive"));
        }
        let url = self.graph_url.as_deref().unwrap_or(GRAPH_URL);
        let http = HttpClient::builder(url.trim_end_matches('/'))
            .allow_plain_http(self.allow_plain_http)
            .token_provider(tokens)
            .timeout(timeout)
            .limiter(LimiterConfig::default().with_max_concurrency(concurrency))
            // One write and one RU budget per app registration and tenant, whatever the
            // Graph URL.
            .budget_scope(scope)
            .build()
            .map_err(|e| Error::config("graph_url", e.message().to_owned()))?;
        let (writes, per) = self.write_budget.unwrap_or(DEFAULT_WRITE_BUDGET);
        let (units, ru_per) = self
            .resource_unit_budget
            .unwrap_or(DEFAULT_RESOURCE_UNIT_BUDGET);
        Ok(GraphClient::new(http)
            .with_retry(self.retry.unwrap_or_default())
            .with_write_budget(writes, per)
            .with_resource_unit_budget(units, ru_per))
    }
}

/// Generates the `with_*` methods of a connector configuration that wraps a
/// [`GraphClientBuilder`], so every Graph connector is configured the same way.
///
/// `graph_config_setters!(Config, field)` adds to `impl Config` `with_tenant_id`,
/// `with_client_id`, `with_client_secret`, `with_graph_url`, `with_token_url`, `with_timeout`,
/// `with_retry`, `with_write_budget` and `with_resource_unit_budget`, each forwarding to the same-named
/// [`GraphClientBuilder`] method on `self.field`. `with_max_concurrency` is left to the
/// connector, whose default differs by workload.
///
/// # Example
/// ```
/// use offboard_http::GraphClientBuilder;
///
/// /// A configuration.
/// #[derive(Debug, Default)]
/// pub struct MyConfig {
///     graph: GraphClientBuilder,
/// }
/// offboard_http::graph_config_setters!(MyConfig, graph);
///
/// let c = MyConfig::default()
///     .with_tenant_id("contoso.onmicrosoft.com")
///     .with_client_id("cid")
///     .with_client_secret(offboard_core::Secret::new("s3cr3t"))
///     // A large tenant (over 500 users): 8,000 resource units per 10 s.
///     .with_resource_unit_budget(8_000, std::time::Duration::from_secs(10));
/// assert!(c.graph.build().is_ok());
/// ```
#[macro_export]
macro_rules! graph_config_setters {
    ($config:ty, $field:ident) => {
        impl $config {
            /// The directory (tenant) id: a GUID or a verified domain.
            pub fn with_tenant_id(mut self, tenant: impl Into<String>) -> Self {
                self.$field = self.$field.tenant_id(tenant);
                self
            }

            /// The app registration's client id.
            pub fn with_client_id(mut self, id: impl Into<String>) -> Self {
                self.$field = self.$field.client_id(id);
                self
            }

            /// The app registration's client secret.
            pub fn with_client_secret(mut self, secret: $crate::__macro_support::Secret) -> Self {
                self.$field = self.$field.client_secret(secret);
                self
            }

            /// Graph's version root (default [`GRAPH_URL`](offboard_http::graph::GRAPH_URL);
            /// a simulator in tests, a national cloud).
            pub fn with_graph_url(mut self, url: impl Into<String>) -> Self {
                self.$field = self.$field.graph_url(url);
                self
            }

            /// The token endpoint (default
            /// `https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`).
            pub fn with_token_url(mut self, url: impl Into<String>) -> Self {
                self.$field = self.$field.token_url(url);
                self
            }

            /// The per-request timeout (default 30 s).
            pub fn with_timeout(mut self, timeout: ::std::time::Duration) -> Self {
                self.$field = self.$field.timeout(timeout);
                self
            }

            /// Allows plain `http` Graph and token URLs on this machine (loopback tests and
            /// simulators). Default: off: credentials never travel in clear.
            pub fn with_allow_plain_http(mut self, allow: bool) -> Self {
                self.$field = self.$field.allow_plain_http(allow);
                self
            }

            /// How 429s are waited out in-process (default
            /// [`GraphRetry::default`](offboard_http::graph::GraphRetry::default)).
            pub fn with_retry(mut self, retry: $crate::graph::GraphRetry) -> Self {
                self.$field = self.$field.retry(retry);
                self
            }

            /// The write budget the client paces itself to (default
            /// [`DEFAULT_WRITE_BUDGET`](offboard_http::graph::DEFAULT_WRITE_BUDGET); `0`
            /// writes: no pacing). Share one budget per app registration and tenant.
            pub fn with_write_budget(mut self, writes: u32, per: ::std::time::Duration) -> Self {
                self.$field = self.$field.write_budget(writes, per);
                self
            }

            /// The identity resource-unit budget the client paces itself to (default
            /// [`DEFAULT_RESOURCE_UNIT_BUDGET`](offboard_http::graph::DEFAULT_RESOURCE_UNIT_BUDGET),
            /// 3,500 RU per 10 s, a small tenant's; 5,000 or 8,000 for a medium or large
            /// one; `0` units: no pacing). Share one budget per app registration and tenant.
            pub fn with_resource_unit_budget(
                mut self,
                units: u32,
                per: ::std::time::Duration,
            ) -> Self {
                self.$field = self.$field.resource_unit_budget(units, per);
                self
            }
        }
    };
}

/// Graph's published identity write limit for a small tenant: 3,000 writes per 150 s per app.
pub const DEFAULT_WRITE_BUDGET: (u32, Duration) = (3_000, Duration::from_secs(150));

/// A Microsoft Graph client over an [`HttpClient`] whose base URL is the version root
/// (`https://graph.microsoft.com/v1.0`).
///
/// # Behavior
/// - [`GraphClient::send`] sends one request; non-2xx answers become errors with
///   [`graph_error`]. A 429 is waited out in-process per [`GraphRetry`] (its `Retry-After`
///   seconds, at most `max_wait`, at most `max_attempts` sends), then returned with its hint.
/// - [`GraphClient::list`] follows `@odata.nextLink` (only below the same base URL).
/// - [`GraphClient::batch`] sends `POST /$batch` in chunks of at most 20 items, maps each
///   item's status on its own, re-sends only the items answered 429 (and those that failed
///   because of them, 424) after the longest of their `Retry-After`s, and honours
///   `dependsOn` (within a chunk by Graph, across chunks by order: a dependent of a failed
///   item is answered 424 without being sent).
/// - Pacing ahead (when configured, as [`GraphClient::builder`] does by default): every send
///   first draws its [`resource_units`] from the RU budget (a `$batch` the sum of its
///   requests) and each write one turn of the write budget (each write in a `$batch`
///   counted), both under the app registration and tenant's scope, so a budget shared by a
///   fleet paces every process together. A reported `x-ms-resource-unit` above the estimate
///   is drawn too. A 429 holds the budget its `x-ms-throttle-information` names
///   (`ResourceUnitLimitExceeded`: the RU budget; `WriteLimitExceeded`, or none on a write:
///   the write budget) for its `Retry-After`.
#[derive(Debug, Clone)]
pub struct GraphClient {
    http: HttpClient,
    base: Vec<String>,
    retry: GraphRetry,
    writes: Option<Arc<Pacer>>,
    resource_units: Option<Arc<Pacer>>,
}

impl GraphClient {
    /// A builder for an app registration with a client secret.
    pub fn builder() -> GraphClientBuilder {
        GraphClientBuilder::default()
    }

    /// A client over `http`, whose base URL is the Graph version root.
    pub fn new(http: HttpClient) -> Self {
        let base = http
            .base_url()
            .path_segments()
            .map(|s| s.filter(|s| !s.is_empty()).map(percent_decode).collect())
            .unwrap_or_default();
        Self {
            http,
            base,
            retry: GraphRetry::default(),
            writes: None,
            resource_units: None,
        }
    }

    /// Sets the in-process throttling policy.
    pub fn with_retry(mut self, retry: GraphRetry) -> Self {
        self.retry = retry;
        self
    }

    /// Paces writes (anything but GET, each write in a `$batch` counted) to `writes` per
    /// `per`; `0` turns pacing off. [`GraphClient::new`] does not pace.
    pub fn with_write_budget(mut self, writes: u32, per: Duration) -> Self {
        self.writes = self.http.pacer("writes", writes, per).map(Arc::new);
        self
    }

    /// Paces identity resource units to `units` per `per` (each request costing
    /// [`resource_units`], a `$batch` the sum of its requests, each re-send again), drawn
    /// under `resource_units` in the client's budget scope (app registration and tenant);
    /// `0` turns pacing off. [`GraphClient::new`] does not pace.
    pub fn with_resource_unit_budget(mut self, units: u32, per: Duration) -> Self {
        self.resource_units = self.http.pacer("resource_units", units, per).map(Arc::new);
        self
    }

    /// Waits until `units` resource units may be spent.
    async fn pace_resource_units(&self, units: u32) -> Result<()> {
        if let Some(p) = &self.resource_units
            && units > 0
        {
            p.wait_n(units).await?;
        }
        Ok(())
    }

    /// When Graph reports (`x-ms-resource-unit`) that a request cost more than the `estimate`
    /// drawn for it, draws the difference too, so the budget follows what Graph counted (a
    /// path missing from the published table, a tenant-specific surcharge). A request that
    /// cost less is not refunded.
    async fn charge_reported_units(&self, estimate: u32, headers: &HeaderMap) -> Result<()> {
        let reported = headers
            .get("x-ms-resource-unit")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u32>().ok());
        match reported {
            Some(actual) if actual > estimate => self.pace_resource_units(actual - estimate).await,
            _ => Ok(()),
        }
    }

    /// After a 429, holds the budget Graph said was spent for `wait` (for every process
    /// sharing it): the RU budget for `ResourceUnitLimitExceeded`, the write budget for
    /// `WriteLimitExceeded` or, without a reason, when the request was a write.
    async fn penalise(&self, limit: Throttled, wait: Option<Duration>) {
        let pacer = match limit {
            Throttled::ResourceUnits => &self.resource_units,
            Throttled::Writes => &self.writes,
            Throttled::Other => return,
        };
        if let (Some(p), Some(wait)) = (pacer, wait) {
            p.penalise(wait).await;
        }
    }

    /// Waits until `n` writes may go.
    async fn pace_writes(&self, n: usize) -> Result<()> {
        if let Some(p) = &self.writes
            && n > 0
        {
            p.wait_n(u32::try_from(n).unwrap_or(u32::MAX)).await?;
        }
        Ok(())
    }

    /// The `@odata.id` of directory object `id` under this client's Graph base URL (e.g.
    /// `https://graph.microsoft.us/v1.0/directoryObjects/{id}` in a national cloud), for the
    /// body of a `…/$ref` request; `id` is percent-encoded as one path segment.
    ///
    /// # Errors
    /// `InvalidInput` for an empty, `.` or `..` id or one [`check_account`] refuses.
    pub fn directory_object_url(&self, id: &str) -> Result<String> {
        self.object_url("directoryObjects", id)
    }

    /// The `@odata.id` of user `id` under this client's Graph base URL (e.g.
    /// `https://graph.microsoft.us/v1.0/users/{id}`), for a `…/manager/$ref` body; built as
    /// [`GraphClient::directory_object_url`] is.
    ///
    /// # Errors
    /// As [`GraphClient::directory_object_url`].
    pub fn user_url(&self, id: &str) -> Result<String> {
        self.object_url("users", id)
    }

    fn object_url(&self, collection: &str, id: &str) -> Result<String> {
        check_user_id(id)?;
        check_segment(id)?;
        let mut url = self.http.base_url().clone();
        url.path_segments_mut()
            .map_err(|()| Error::internal("the Graph base URL cannot be a base"))?
            .pop_if_empty()
            .extend([collection, id]);
        Ok(url.into())
    }

    /// The underlying HTTP client.
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// Sends a request and returns the 2xx response.
    ///
    /// # Errors
    /// [`graph_error`] of a non-2xx answer (after waiting out 429s per [`GraphRetry`]),
    /// transport errors, `InvalidInput` for an unsafe path segment.
    pub async fn send(&self, request: &GraphRequest) -> Result<HttpResponse> {
        let http = request.http()?;
        let units = resource_units(request);
        let mut attempt = 1;
        loop {
            let write = request.method != Method::GET && !is_batch(request);
            if write {
                self.pace_writes(1).await?;
            }
            // Every send counts, a re-send too (Graph counts throttled requests).
            self.pace_resource_units(units).await?;
            let r = self.http.send_raw(http.clone()).await?;
            self.charge_reported_units(units, r.headers()).await?;
            if r.status().is_success() {
                return Ok(r);
            }
            let path = self.http.base_url().path().trim_end_matches('/').to_owned()
                + path_of(&request.relative_url()?);
            let e = graph_error(&request.method, &path, r.status(), r.headers(), r.body());
            if e.kind() == ErrorKind::RateLimited {
                let reason = r
                    .headers()
                    .get("x-ms-throttle-information")
                    .and_then(|v| v.to_str().ok());
                self.penalise(Throttled::of(reason, write), e.retry_after())
                    .await;
            }
            if e.kind() == ErrorKind::RateLimited
                && let Some(wait) = self.retry.wait(e.retry_after(), attempt)
            {
                tracing::info!(
                    wait_ms = wait.as_millis() as u64,
                    "graph throttled; waiting"
                );
                tokio::time::sleep(wait).await;
                attempt += 1;
                continue;
            }
            return Err(e);
        }
    }

    /// Sends a request and parses the JSON body.
    ///
    /// # Errors
    /// As [`GraphClient::send`], plus `Vendor` for a body that is not `T`.
    pub async fn json<T: DeserializeOwned>(&self, request: &GraphRequest) -> Result<T> {
        self.send(request).await?.json()
    }

    /// A GET whose 404 (or not-found `error.code`) is `None`.
    ///
    /// # Errors
    /// As [`GraphClient::json`].
    pub async fn get_opt<T: DeserializeOwned>(&self, request: &GraphRequest) -> Result<Option<T>> {
        match self.json(request).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A request whose not-found answer means the goal holds: `Ok(true)` when it changed
    /// something, `Ok(false)` on not-found (e.g. a DELETE of what is already gone).
    ///
    /// # Errors
    /// As [`GraphClient::send`], except not-found.
    pub async fn send_gone_ok(&self, request: &GraphRequest) -> Result<bool> {
        match self.send(request).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A GET of a collection (`{"value": [...]}`), following `@odata.nextLink`.
    ///
    /// # Errors
    /// As [`GraphClient::json`], plus `Vendor` for a next link outside the base URL.
    pub async fn list<T: DeserializeOwned>(&self, request: &GraphRequest) -> Result<Vec<T>> {
        let mut out = Vec::new();
        let mut current = request.clone();
        for _ in 0..10_000 {
            let page: Page<T> = self.json(&current).await?;
            out.extend(page.value);
            let Some(next) = page.next_link else {
                return Ok(out);
            };
            current = self.follow(&next, request)?;
        }
        Err(Error::new(
            ErrorKind::Vendor,
            "more than 10000 pages; stopped",
        ))
    }

    /// A delta round: GETs `request` (`…/delta()`, or [`GraphClient::link`] of a stored
    /// `@odata.deltaLink`), follows each `@odata.nextLink`, and returns every item with the
    /// last page's `@odata.deltaLink` (the next round's start).
    ///
    /// # Errors
    /// As [`GraphClient::list`] (a 410 of an expired token is `NotFound` with its
    /// `error.code`, see [`vendor_code`]), plus `Vendor` when the last page has no delta link.
    pub async fn delta<T: DeserializeOwned>(
        &self,
        request: &GraphRequest,
    ) -> Result<(Vec<T>, String)> {
        #[derive(Deserialize)]
        struct DeltaPage<T> {
            #[serde(default = "Vec::new")]
            value: Vec<T>,
            #[serde(rename = "@odata.nextLink", default)]
            next_link: Option<String>,
            #[serde(rename = "@odata.deltaLink", default)]
            delta_link: Option<String>,
        }
        let mut out = Vec::new();
        let mut current = request.clone();
        for _ in 0..10_000 {
            let page: DeltaPage<T> = self.json(&current).await?;
            out.extend(page.value);
            match (page.next_link, page.delta_link) {
                (Some(next), _) => current = self.follow(&next, request)?,
                (None, Some(delta)) => return Ok((out, delta)),
                (None, None) => {
                    return Err(Error::new(
                        ErrorKind::Vendor,
                        "a delta page has neither a next link nor a delta link",
                    ));
                }
            }
        }
        Err(Error::new(
            ErrorKind::Vendor,
            "more than 10000 pages; stopped",
        ))
    }

    /// The GET a link from an earlier answer (`@odata.nextLink`, `@odata.deltaLink`) names.
    ///
    /// # Errors
    /// `Vendor` when it is not a URL below the Graph base URL (such a link is never followed).
    pub fn link(&self, link: &str) -> Result<GraphRequest> {
        self.follow(link, &GraphRequest::get(Vec::<String>::new()))
    }

    /// The request a `@odata.nextLink` names, refused unless it is below the base URL.
    fn follow(&self, next: &str, original: &GraphRequest) -> Result<GraphRequest> {
        let url = Url::parse(next)
            .map_err(|e| Error::new(ErrorKind::Vendor, format!("next link is not a URL: {e}")))?;
        let base = self.http.base_url();
        let foreign = || {
            Error::new(
                ErrorKind::Vendor,
                "next link points outside the Graph base URL; not followed",
            )
        };
        if url.origin() != base.origin() {
            return Err(foreign());
        }
        let segments: Vec<String> = url
            .path_segments()
            .map(|s| s.filter(|s| !s.is_empty()).map(percent_decode).collect())
            .unwrap_or_default();
        let Some(rest) = segments.strip_prefix(self.base.as_slice()) else {
            return Err(foreign());
        };
        let mut r = GraphRequest::get(rest.to_vec());
        r.headers = original.headers.clone();
        for (k, v) in url.query_pairs() {
            r = r.query(k.into_owned(), v.into_owned());
        }
        Ok(r)
    }

    /// `GET /users/{id}?$select=select`; `None` when the user does not exist (or is
    /// soft-deleted).
    ///
    /// # Errors
    /// As [`GraphClient::get_opt`].
    pub async fn get_user<T: DeserializeOwned>(&self, id: &str, select: &str) -> Result<Option<T>> {
        self.get_opt(&GraphRequest::get(user_path(id, &[])).query("$select", select))
            .await
    }

    /// The one user holding one of `addresses` (ASCII case ignored) as `userPrincipalName`,
    /// `mail`, an `smtp:` proxy address or an `otherMails` entry:
    /// `GET /users?$filter=`[`user_filter`]`&$select=select` (plus `proxyAddresses` and
    /// `otherMails`), all pages, then the same comparison again locally, so a server-side
    /// widening cannot reach the caller. `select` must name `id`, `userPrincipalName` and
    /// `mail`.
    ///
    /// # Errors
    /// `Ambiguous` (naming each UPN and id) when two or more users match; `InvalidInput` for
    /// an address with a control character; as [`GraphClient::list`].
    pub async fn find_user<T: DeserializeOwned>(
        &self,
        addresses: &[&str],
        select: &str,
    ) -> Result<Option<T>> {
        let Some(filter) = user_filter(addresses)? else {
            return Ok(None);
        };
        let users: Vec<serde_json::Value> = self
            .list(
                &GraphRequest::get(["users"])
                    .query("$filter", filter)
                    .query("$select", with_address_fields(select)),
            )
            .await?;
        let field = |u: &serde_json::Value, k: &str| u[k].as_str().unwrap_or_default().to_owned();
        let mut matches: BTreeMap<String, serde_json::Value> = BTreeMap::new();
        for user in users {
            if addresses.iter().any(|a| holds_address(&user, a)) {
                matches.insert(field(&user, "id"), user);
            }
        }
        if matches.len() > 1 {
            return Err(Error::ambiguous(format!(
                "{} users match {}: {}",
                matches.len(),
                addresses.first().copied().unwrap_or_default(),
                matches
                    .iter()
                    .map(|(id, u)| format!("{} ({id})", field(u, "userPrincipalName")))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        matches
            .into_values()
            .next()
            .map(|u| {
                serde_json::from_value(u)
                    .map_err(|e| Error::new(ErrorKind::Vendor, format!("unexpected user: {e}")))
            })
            .transpose()
    }
}

/// `users/{id}/{rest…}`: the path segments of a user or one of its resources (each
/// percent-encoded when the request is built).
pub fn user_path(id: &str, rest: &[&str]) -> Vec<String> {
    ["users", id]
        .iter()
        .chain(rest)
        .map(|s| (*s).to_owned())
        .collect()
}

/// Checks that `account` is one of `app`'s and that its external id can name a Graph user.
///
/// # Errors
/// `InvalidInput` for another app's account; fatal `InvalidInput` for an external id with a
/// control character or longer than [`MAX_IDENTIFIER_LEN`] bytes.
pub fn check_account(account: &AccountRef, app: &str) -> Result<()> {
    check_user_id(&account.external_id)?;
    if account.app.as_str() != app {
        return Err(Error::invalid_input(format!(
            "account {} belongs to {}, not {app}",
            account.external_id, account.app
        )));
    }
    Ok(())
}

/// Fatal `InvalidInput` for an external id with a control character or longer than
/// [`MAX_IDENTIFIER_LEN`] bytes (not echoed).
fn check_user_id(id: &str) -> Result<()> {
    check_length(id, "an external id")?;
    if id.chars().any(char::is_control) {
        return Err(Error::invalid_input(format!(
            "external id {id:?} contains a control character"
        ))
        .fatal());
    }
    Ok(())
}

/// The one Graph user a [`LookupRequest`] names, read with `$select=select` (which must name
/// `id`, `userPrincipalName` and `mail`).
///
/// - With an external id: `GET /users/{id}?$select=…`, and the user only when Graph answers
///   with that very `id` (a UPN passed as id does not count). An empty, `.` or `..` id, one
///   Graph does not know, or one Graph refuses as malformed (`InvalidInput`) is `None`.
/// - Otherwise [`GraphClient::find_user`] over the person's email and aliases.
///
/// # Errors
/// Fatal `InvalidInput` for an external id with a control character or longer than
/// [`MAX_IDENTIFIER_LEN`] bytes, and for such an address; as
/// [`GraphClient::find_user`] and [`GraphClient::get_opt`].
pub async fn lookup_user<T: DeserializeOwned>(
    graph: &GraphClient,
    request: &LookupRequest,
    select: &str,
) -> Result<Option<T>> {
    let Some(id) = &request.external_id else {
        let person = &request.person;
        let addresses: Vec<&str> = std::iter::once(person.email.as_str())
            .chain(person.aliases.iter().map(String::as_str))
            .collect();
        return graph.find_user(&addresses, select).await;
    };
    check_user_id(id)?;
    if id.is_empty() || id == "." || id == ".." {
        return Ok(None);
    }
    let user = graph.get_user::<serde_json::Value>(id, select).await;
    match user {
        Ok(Some(user)) if user["id"].as_str() == Some(id.as_str()) => serde_json::from_value(user)
            .map(Some)
            .map_err(|e| Error::new(ErrorKind::Vendor, format!("unexpected user: {e}"))),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == ErrorKind::InvalidInput => Ok(None),
        Err(e) => Err(e),
    }
}

impl GraphClient {
    /// Sends `items` as `POST /$batch` calls of at most [`GRAPH_BATCH_LIMIT`] items and returns
    /// one reply per item, in the order given.
    ///
    /// # Errors
    /// `InvalidInput` for duplicate ids (case-insensitive), a `dependsOn` naming an unknown or
    /// later item, or an unsafe path; errors of a whole batch call (after waiting out 429s).
    /// Item failures are not errors: read each [`BatchReply`].
    pub async fn batch(&self, items: Vec<BatchItem>) -> Result<Vec<BatchReply>> {
        let mut seen = BTreeSet::new();
        for item in &items {
            for d in &item.depends_on {
                if !seen.contains(&d.to_lowercase()) {
                    return Err(Error::invalid_input(format!(
                        "batch item {} depends on {d}, which is not an earlier item",
                        item.id
                    )));
                }
            }
            if !seen.insert(item.id.to_lowercase()) {
                return Err(Error::invalid_input(format!(
                    "batch item id {} is used twice",
                    item.id
                )));
            }
        }
        let mut done: BTreeMap<String, BatchReply> = BTreeMap::new();
        for chunk in items.chunks(GRAPH_BATCH_LIMIT) {
            self.batch_chunk(chunk, &mut done).await?;
        }
        Ok(items
            .iter()
            .filter_map(|i| done.remove(&i.id.to_lowercase()))
            .collect())
    }

    async fn batch_chunk(
        &self,
        chunk: &[BatchItem],
        done: &mut BTreeMap<String, BatchReply>,
    ) -> Result<()> {
        let mut attempts: BTreeMap<String, u32> = BTreeMap::new();
        let mut pending: Vec<&BatchItem> = Vec::new();
        for item in chunk {
            let failed_before = item
                .depends_on
                .iter()
                .any(|d| done.get(&d.to_lowercase()).is_some_and(|r| !r.is_success()));
            if failed_before {
                done.insert(item.id.to_lowercase(), failed_dependency(item)?);
            } else {
                pending.push(item);
            }
        }
        let mut round = 1;
        while !pending.is_empty() {
            let in_round: BTreeSet<String> = pending.iter().map(|i| i.id.to_lowercase()).collect();
            let mut requests = Vec::with_capacity(pending.len());
            for item in &pending {
                *attempts.entry(item.id.to_lowercase()).or_default() += 1;
                let mut r = serde_json::json!({
                    "id": item.id,
                    "method": item.request.method.as_str(),
                    "url": item.request.relative_url()?,
                });
                let mut headers: BTreeMap<String, String> =
                    item.request.headers.iter().cloned().collect();
                if let Some(body) = &item.request.body {
                    headers
                        .entry("Content-Type".into())
                        .or_insert_with(|| "application/json".into());
                    r["body"] = body.clone();
                }
                if !headers.is_empty() {
                    r["headers"] = serde_json::to_value(&headers).unwrap_or_default();
                }
                // Only dependencies sent in this same call; earlier ones already succeeded.
                let deps: Vec<&String> = item
                    .depends_on
                    .iter()
                    .filter(|d| in_round.contains(&d.to_lowercase()))
                    .collect();
                if !deps.is_empty() {
                    r["dependsOn"] = serde_json::json!(deps);
                }
                requests.push(r);
            }
            self.pace_writes(
                pending
                    .iter()
                    .filter(|i| i.request.method != Method::GET)
                    .count(),
            )
            .await?;
            let answer: BatchAnswer = self
                .json(&GraphRequest::post(
                    ["$batch"],
                    serde_json::json!({"requests": requests}),
                ))
                .await?;
            let mut by_id: BTreeMap<String, BatchAnswerItem> = answer
                .responses
                .into_iter()
                .map(|r| (r.id.to_lowercase(), r))
                .collect();
            let mut throttled: Vec<&BatchItem> = Vec::new();
            let mut hint: Option<Duration> = None;
            let mut penalties: BTreeMap<Throttled, Duration> = BTreeMap::new();
            for item in &pending {
                let key = item.id.to_lowercase();
                let Some(a) = by_id.remove(&key) else {
                    return Err(Error::new(
                        ErrorKind::Vendor,
                        format!("the $batch answer has no response for item {}", item.id),
                    ));
                };
                let reply = BatchReply {
                    id: item.id.clone(),
                    status: a.status,
                    headers: a.headers,
                    body: a.body,
                    attempts: attempts.get(&key).copied().unwrap_or(1),
                    method: item.request.method.clone(),
                    url: item.request.relative_url()?,
                };
                let retry_dependent = reply.status == 424
                    && item.depends_on.iter().all(|d| {
                        throttled.iter().any(|t| t.id.eq_ignore_ascii_case(d))
                            || done
                                .get(&d.to_lowercase())
                                .is_some_and(BatchReply::is_success)
                    });
                if reply.status == 429 {
                    let header = |name: &str| {
                        reply
                            .headers
                            .iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case(name))
                            .map(|(_, v)| v.as_str())
                    };
                    let h = header("retry-after")
                        .and_then(|v| crate::error::parse_retry_after(v, SystemTime::now()));
                    hint = hint.max(h).or(h);
                    let limit = Throttled::of(
                        header("x-ms-throttle-information"),
                        item.request.method != Method::GET,
                    );
                    if let Some(h) = h {
                        let p = penalties.entry(limit).or_default();
                        *p = (*p).max(h);
                    }
                    throttled.push(item);
                } else if retry_dependent {
                    throttled.push(item);
                }
                done.insert(key, reply);
            }
            if throttled.is_empty() {
                break;
            }
            for (limit, wait) in penalties {
                self.penalise(limit, Some(wait)).await;
            }
            let Some(wait) = self.retry.wait(hint, round) else {
                break;
            };
            tracing::info!(
                items = throttled.len(),
                wait_ms = wait.as_millis() as u64,
                "graph batch items throttled; re-sending them"
            );
            tokio::time::sleep(wait).await;
            round += 1;
            pending = throttled;
        }
        Ok(())
    }
}

fn failed_dependency(item: &BatchItem) -> Result<BatchReply> {
    Ok(BatchReply {
        id: item.id.clone(),
        status: 424,
        headers: BTreeMap::new(),
        body: serde_json::json!({"error": {"code": "FailedDependency", "message": "a request it depends on failed; not sent"}}),
        attempts: 0,
        method: item.request.method.clone(),
        url: item.request.relative_url()?,
    })
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_are_checked_for_app_and_id() {
        use offboard_core::AccountStatus;
        let ok = AccountRef::new("entra", "u-1", "jane@x.com", AccountStatus::Active);
        assert!(check_account(&ok, "entra").is_ok());
        let e = check_account(&ok, "o365").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("belongs to entra, not o365"), "{e}");
        let bad = AccountRef::new("entra", "u-1\r\nX: y", "jane@x.com", AccountStatus::Active);
        let e = check_account(&bad, "entra").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(!e.is_retryable());
        assert_eq!(
            user_path("u/1", &["memberOf"]),
            ["users", "u/1", "memberOf"].map(String::from)
        );
    }

    #[test]
    fn builder_from_vars_reads_the_six_keys_only() {
        let mut vars = BTreeMap::from([
            ("TENANT_ID", "contoso.onmicrosoft.com"),
            ("CLIENT_ID", "cid"),
            ("CLIENT_SECRET", "TopSecretValue"),
            ("GRAPH_URL", "http://127.0.0.1:9/v1.0"),
            ("TOKEN_URL", "http://127.0.0.1:9/token"),
            ("MAX_CONCURRENCY", "0"),
        ]);
        let b = GraphClientBuilder::from_vars(|k| vars.get(k).map(|v| (*v).to_owned()));
        let e = b.build().unwrap_err();
        assert!(
            e.to_string().contains("token_url"),
            "plain http needs allowing: {e}"
        );
        vars.insert("ALLOW_PLAIN_HTTP", "true");
        let b = GraphClientBuilder::from_vars(|k| vars.get(k).map(|v| (*v).to_owned()));
        assert!(!format!("{b:?}").contains("TopSecretValue"));
        let graph = b.build().unwrap();
        assert_eq!(graph.http().base_url().as_str(), "http://127.0.0.1:9/v1.0");
        let b = GraphClientBuilder::from_vars(|k| (k != "CLIENT_ID").then(|| "x".to_owned()));
        let e = b.build().unwrap_err();
        assert!(e.to_string().contains("client_id"), "{e}");
    }

    #[test]
    fn references_use_the_configured_graph_base() {
        let graph = GraphClient::builder()
            .tenant_id("contoso.onmicrosoft.us")
            .client_id("cid")
            .client_secret(Secret::new("s"))
            .graph_url("https://graph.microsoft.us/v1.0/")
            .build()
            .unwrap();
        assert_eq!(
            graph.directory_object_url("u/1 x").unwrap(),
            "https://graph.microsoft.us/v1.0/directoryObjects/u%2F1%20x"
        );
        assert_eq!(
            graph.user_url("m-1").unwrap(),
            "https://graph.microsoft.us/v1.0/users/m-1"
        );
        for bad in ["", "..", "a\nb"] {
            assert!(graph.directory_object_url(bad).is_err(), "{bad:?}");
            assert!(graph.user_url(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn odata_literals_double_quotes_and_refuse_controls() {
        assert_eq!(odata_string("a@b.c").unwrap(), "'a@b.c'");
        assert_eq!(odata_string("o'neil").unwrap(), "'o''neil'");
        assert_eq!(odata_string("' or 1 eq 1").unwrap(), "''' or 1 eq 1'");
        assert_eq!(odata_string("''").unwrap(), "''''''");
        assert_eq!(odata_string("").unwrap(), "''");
        for bad in ["a\0", "a\nb", "x\r\nX-Injected: 1", "\u{7f}"] {
            let e = odata_string(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
        }
    }

    #[test]
    fn relative_urls_encode_each_segment() {
        let r = GraphRequest::delete(["groups", "g/1?x", "members", "u 1", "$ref"]);
        assert_eq!(
            r.relative_url().unwrap(),
            "/groups/g%2F1%3Fx/members/u%201/$ref"
        );
        let r = GraphRequest::get(["users"]).query("$filter", "mail eq 'a&b'");
        assert_eq!(
            r.relative_url().unwrap(),
            "/users?%24filter=mail+eq+%27a%26b%27"
        );
        assert!(GraphRequest::get(["users", ".."]).relative_url().is_err());
    }

    #[test]
    fn not_found_codes_map_whatever_the_status() {
        let body = br#"{"error":{"code":"Request_ResourceNotFound","message":"Resource 'x' does not exist"}}"#;
        let e = graph_error(
            &Method::DELETE,
            "/v1.0/x",
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            body,
        );
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(vendor_code(&e), Some("Request_ResourceNotFound"));
        let body = br#"{"error":{"code":"Request_BadRequest","message":"nope"}}"#;
        let e = graph_error(
            &Method::DELETE,
            "/v1.0/x",
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            body,
        );
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn retry_waits_follow_the_hint_and_the_limits() {
        let r = GraphRetry::default();
        assert_eq!(
            r.wait(Some(Duration::from_secs(2)), 1),
            Some(Duration::from_secs(2))
        );
        assert_eq!(r.wait(None, 2), Some(Duration::from_secs(2)));
        assert_eq!(r.wait(Some(Duration::from_secs(31)), 1), None);
        assert_eq!(r.wait(Some(Duration::from_secs(1)), 4), None);
        assert_eq!(GraphRetry::none().wait(Some(Duration::ZERO), 1), None);
    }
}
