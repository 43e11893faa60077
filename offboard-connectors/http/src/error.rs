//! How an HTTP answer becomes an [`offboard_core::Error`]: the one place every REST connector
//! classifies status codes, vendor error bodies and throttling hints.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use offboard_core::{Error, ErrorKind};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode};

/// The longest vendor error summary kept in an error message, in characters.
const MAX_SUMMARY: usize = 300;
/// The longest request path kept in an error message, in characters: a path carries
/// identifiers, which may be hostile or huge (a 1 MB "email"), and is never echoed whole.
const MAX_PATH: usize = 200;

/// Google `errors[].reason` values that mean "slow down" although the status is 403.
const GOOGLE_RATE_REASONS: [&str; 4] = [
    "userRateLimitExceeded",
    "rateLimitExceeded",
    "quotaExceeded",
    "dailyLimitExceeded",
];

/// What a vendor's error body says, in a vendor-neutral form.
///
/// Understands Okta (`errorCode`, `errorSummary`, `errorCauses`), Google
/// (`error.message`, `error.errors[].reason`), Microsoft Graph (`error.code`, `error.message`),
/// Jira (`errorMessages`, `errors`) and OAuth token endpoints (`error`, `error_description`).
/// Anything else is kept as a shortened text summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VendorError {
    /// The vendor's machine-readable code (`E0000007`, `Request_ResourceNotFound`,
    /// `invalid_client`), when it sent one.
    pub code: Option<String>,
    /// The human-readable summary, at most 300 characters.
    pub summary: String,
    /// Google `errors[].reason` values.
    pub reasons: Vec<String>,
}

impl VendorError {
    /// Parses an error body; never fails (an unknown body becomes its shortened text).
    pub fn parse(body: &[u8]) -> Self {
        let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
            let text = String::from_utf8_lossy(body);
            return Self {
                summary: shorten(text.trim()),
                ..Self::default()
            };
        };
        let s = |v: &serde_json::Value| v.as_str().map(str::to_owned);
        // Okta.
        if let Some(code) = json.get("errorCode").and_then(s) {
            let mut summary = json.get("errorSummary").and_then(s).unwrap_or_default();
            if let Some(causes) = json.get("errorCauses").and_then(|c| c.as_array()) {
                for cause in causes
                    .iter()
                    .filter_map(|c| c.get("errorSummary"))
                    .filter_map(s)
                {
                    summary.push_str("; ");
                    summary.push_str(&cause);
                }
            }
            return Self {
                code: Some(code),
                summary: shorten(&summary),
                reasons: Vec::new(),
            };
        }
        // OAuth 2.0 token endpoint (RFC 6749 §5.2).
        if let Some(code) = json.get("error").and_then(s) {
            return Self {
                code: Some(code),
                summary: shorten(
                    &json
                        .get("error_description")
                        .and_then(s)
                        .unwrap_or_default(),
                ),
                reasons: Vec::new(),
            };
        }
        // Google and Microsoft Graph: `{"error": {...}}`.
        if let Some(error) = json.get("error").filter(|e| e.is_object()) {
            let reasons: Vec<String> = error
                .get("errors")
                .and_then(|e| e.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|e| e.get("reason"))
                        .filter_map(s)
                        .collect()
                })
                .unwrap_or_default();
            let code = error
                .get("code")
                .and_then(|c| c.as_str().map(str::to_owned))
                .or_else(|| error.get("status").and_then(s));
            return Self {
                code,
                summary: shorten(&error.get("message").and_then(s).unwrap_or_default()),
                reasons,
            };
        }
        // Jira.
        if let Some(messages) = json.get("errorMessages").and_then(|m| m.as_array()) {
            let mut parts: Vec<String> = messages.iter().filter_map(s).collect();
            if let Some(errors) = json.get("errors").and_then(|e| e.as_object()) {
                parts.extend(
                    errors
                        .iter()
                        .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or_default())),
                );
            }
            return Self {
                summary: shorten(&parts.join("; ")),
                ..Self::default()
            };
        }
        Self {
            summary: shorten(&json.to_string()),
            ..Self::default()
        }
    }

    fn is_google_rate_limit(&self) -> bool {
        self.reasons
            .iter()
            .any(|r| GOOGLE_RATE_REASONS.contains(&r.as_str()))
    }
}

fn shorten(text: &str) -> String {
    if text.chars().count() <= MAX_SUMMARY {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(MAX_SUMMARY).collect();
    s.push('…');
    s
}

/// A request path as an error message shows it: up to [`MAX_PATH`] characters, and for a
/// longer one its length instead of the rest.
pub(crate) fn shown_path(path: &str) -> String {
    if path.chars().count() <= MAX_PATH {
        return path.to_owned();
    }
    let mut s: String = path.chars().take(MAX_PATH).collect();
    s.push_str(&format!("… ({} bytes)", path.len()));
    s
}

/// Parses a `Retry-After` value: delay seconds or an HTTP date (then relative to `now`; a date
/// in the past gives zero).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The wait an Okta `X-Rate-Limit-Reset` (UTC epoch seconds) asks for: reset − now, zero when
/// it already passed.
pub(crate) fn okta_reset_hint(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let reset: u64 = headers
        .get("x-rate-limit-reset")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let at = UNIX_EPOCH + Duration::from_secs(reset);
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The vendor's wait hint: `Retry-After` first, then Okta's `X-Rate-Limit-Reset`.
fn wait_hint(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, now))
        .or_else(|| okta_reset_hint(headers, now))
}

/// Turns a non-success HTTP answer into an error.
///
/// # Behavior
/// - 404 and 410 → `NotFound`; 401 → `Unauthenticated`; 403 → `PermissionDenied`, except a
///   Google 403 whose reason is `userRateLimitExceeded`, `rateLimitExceeded`, `quotaExceeded`
///   or `dailyLimitExceeded` → `RateLimited`; 429 → `RateLimited`. Rate limits carry the wait
///   hint from `Retry-After` (seconds or HTTP date) or Okta's `X-Rate-Limit-Reset`
///   (reset − `now`).
/// - 408 and 504 → retryable `Timeout`; other 5xx → retryable `Unavailable` (with a
///   `Retry-After` hint if sent); every other 4xx is permanent: 409 `Conflict`, 400 and 422
///   `InvalidInput`, the rest `Vendor`.
/// - The message is `METHOD path: status: [code] summary`; context holds `status` and
///   `vendor_code`. Only the response body's error summary is used: request headers, the query
///   string and tokens never appear.
pub fn classify(
    method: &Method,
    path: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Error {
    let vendor = VendorError::parse(body);
    let kind = match status.as_u16() {
        404 | 410 => ErrorKind::NotFound,
        401 => ErrorKind::Unauthenticated,
        403 if vendor.is_google_rate_limit() => ErrorKind::RateLimited,
        403 => ErrorKind::PermissionDenied,
        429 => ErrorKind::RateLimited,
        408 | 504 => ErrorKind::Timeout,
        409 => ErrorKind::Conflict,
        400 | 422 => ErrorKind::InvalidInput,
        500..=599 => ErrorKind::Unavailable,
        _ => ErrorKind::Vendor,
    };
    let mut message = format!("{method} {}: {status}", shown_path(path));
    if let Some(code) = &vendor.code {
        message.push_str(": ");
        message.push_str(code);
    }
    if !vendor.summary.is_empty() {
        message.push_str(if vendor.code.is_some() { " " } else { ": " });
        message.push_str(&vendor.summary);
    }
    let mut error = match kind {
        ErrorKind::RateLimited => Error::rate_limited(wait_hint(headers, now), message),
        ErrorKind::Unavailable | ErrorKind::Timeout => {
            let e = Error::new(kind, message);
            match headers
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, now))
            {
                Some(after) => {
                    e.with_retry(offboard_core::RetryClass::Retryable { after: Some(after) })
                }
                None => e,
            }
        }
        // A 409 is the vendor's answer about the resource's state: retrying will not change it.
        ErrorKind::Conflict => Error::new(kind, message).fatal(),
        _ => Error::new(kind, message),
    }
    .with_context("status", status.as_u16());
    if let Some(code) = vendor.code {
        error = error.with_context("vendor_code", code);
    }
    error
}

/// Classifies a transport failure (no HTTP answer): timeouts are retryable `Timeout`,
/// everything else (connect, reset, body read) retryable `Unavailable`.
pub(crate) fn transport(method: &Method, path: &str, error: &reqwest::Error) -> Error {
    let kind = if error.is_timeout() {
        ErrorKind::Timeout
    } else if error.is_builder() {
        ErrorKind::Internal
    } else {
        ErrorKind::Unavailable
    };
    // reqwest's Display includes the URL (with the query string); keep only what it failed at.
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else if error.is_body() || error.is_decode() {
        "reading the response failed"
    } else if error.is_request() {
        "sending the request failed"
    } else {
        "request failed"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    let path = shown_path(path);
    let message = if cause.is_empty() {
        format!("{method} {path}: {what}")
    } else {
        format!("{method} {path}: {what}: {}", shorten(&cause))
    };
    Error::new(kind, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use offboard_core::RetryClass;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn run(status: u16, h: &HeaderMap, body: &str) -> Error {
        classify(
            &Method::GET,
            "/api/v1/users/00u1",
            StatusCode::from_u16(status).unwrap(),
            h,
            body.as_bytes(),
            at(1_700_000_000),
        )
    }

    #[test]
    fn a_huge_path_is_never_echoed_whole() {
        let path = format!("/api/v1/users/{}", "a".repeat(1 << 20));
        let e = run(400, &HeaderMap::new(), "{}");
        assert!(e.message().len() < 400, "{}", e.message());
        let e = classify(
            &Method::GET,
            &path,
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            b"{}",
            at(0),
        );
        assert!(e.message().len() < 400, "{} bytes", e.message().len());
        assert!(e.message().contains("1048590 bytes"), "{}", e.message());
        assert!(e.to_string().len() < 600, "{} bytes", e.to_string().len());
    }

    #[test]
    fn statuses_map_to_kinds_and_retry_classes() {
        let none = HeaderMap::new();
        let okta404 = r#"{"errorCode":"E0000007","errorSummary":"Not found: Resource not found: 00u1 (User)","errorLink":"E0000007","errorId":"x","errorCauses":[]}"#;
        let e = run(404, &none, okta404);
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(e.retry(), RetryClass::Permanent);
        assert!(
            e.message()
                .contains("E0000007 Not found: Resource not found"),
            "{e}"
        );
        assert!(
            e.context()
                .any(|(k, v)| k == "vendor_code" && v == "E0000007")
        );
        assert_eq!(run(401, &none, "").kind(), ErrorKind::Unauthenticated);
        assert_eq!(run(403, &none, "{}").kind(), ErrorKind::PermissionDenied);
        assert_eq!(run(400, &none, "{}").kind(), ErrorKind::InvalidInput);
        assert!(!run(400, &none, "{}").is_retryable());
        assert_eq!(run(405, &none, "{}").kind(), ErrorKind::Vendor);
        assert_eq!(run(409, &none, "{}").kind(), ErrorKind::Conflict);
        assert!(!run(409, &none, "{}").is_retryable());
        assert!(!run(405, &none, "{}").is_retryable());
        for s in [500, 502, 503] {
            let e = run(s, &none, "oops");
            assert_eq!(e.kind(), ErrorKind::Unavailable);
            assert!(e.is_retryable());
        }
        assert_eq!(run(504, &none, "").kind(), ErrorKind::Timeout);
        assert!(run(504, &none, "").is_retryable());
    }

    #[test]
    fn retry_after_seconds_and_http_date() {
        let e = run(429, &headers(&[("retry-after", "17")]), "");
        assert_eq!(e.kind(), ErrorKind::RateLimited);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(17)));
        let date = httpdate::fmt_http_date(at(1_700_000_042));
        let e = run(429, &headers(&[("retry-after", &date)]), "");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(42)));
        let past = httpdate::fmt_http_date(at(1_600_000_000));
        assert_eq!(
            run(429, &headers(&[("retry-after", &past)]), "").retry_after(),
            Some(Duration::ZERO)
        );
        let e = run(503, &headers(&[("retry-after", "5")]), "");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(5)));
    }

    #[test]
    fn okta_reset_is_epoch_seconds() {
        let body = r#"{"errorCode":"E0000047","errorSummary":"API call exceeded rate limit due to too many requests.","errorCauses":[]}"#;
        let h = headers(&[
            ("x-rate-limit-limit", "600"),
            ("x-rate-limit-remaining", "0"),
            ("x-rate-limit-reset", "1700000031"),
        ]);
        let e = run(429, &h, body);
        assert_eq!(e.kind(), ErrorKind::RateLimited);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(31)));
        assert!(e.message().contains("E0000047"));
    }

    #[test]
    fn google_403_rate_reasons_are_rate_limits() {
        for reason in [
            "userRateLimitExceeded",
            "rateLimitExceeded",
            "quotaExceeded",
        ] {
            let body = format!(
                r#"{{"error":{{"code":403,"message":"Rate Limit Exceeded","errors":[{{"domain":"usageLimits","reason":"{reason}","message":"Rate Limit Exceeded"}}],"status":"PERMISSION_DENIED"}}}}"#
            );
            let e = run(403, &HeaderMap::new(), &body);
            assert_eq!(e.kind(), ErrorKind::RateLimited, "{reason}");
            assert!(e.is_retryable());
        }
        let body = r#"{"error":{"code":403,"message":"Not Authorized to access this resource/api","errors":[{"domain":"global","reason":"forbidden"}]}}"#;
        assert_eq!(
            run(403, &HeaderMap::new(), body).kind(),
            ErrorKind::PermissionDenied
        );
    }

    #[test]
    fn vendor_bodies_are_summarised() {
        let v = VendorError::parse(
            br#"{"error":"invalid_client","error_description":"bad assertion"}"#,
        );
        assert_eq!(v.code.as_deref(), Some("invalid_client"));
        assert_eq!(v.summary, "bad assertion");
        let v = VendorError::parse(br#"{"errorMessages":["Issue does not exist"],"errors":{}}"#);
        assert_eq!(v.summary, "Issue does not exist");
        let v = VendorError::parse(
            br#"{"error":{"code":"Request_ResourceNotFound","message":"gone"}}"#,
        );
        assert_eq!(v.code.as_deref(), Some("Request_ResourceNotFound"));
        let long = "x".repeat(1000);
        assert!(VendorError::parse(long.as_bytes()).summary.chars().count() <= MAX_SUMMARY + 1);
    }
}
