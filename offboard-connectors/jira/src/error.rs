//! How Jira's answers map to offboard errors.
//!
//! | Jira | offboard |
//! |---|---|
//! | 400, 422 | `InvalidInput`, permanent, with Jira's `errorMessages` and `errors` |
//! | 401 | `Unauthenticated`, permanent |
//! | 403 | `PermissionDenied`, permanent |
//! | 404 | `NotFound` (deleted or not visible) |
//! | 409 | `Conflict`, retryable |
//! | 429 | `RateLimited`, retryable after `Retry-After` |
//! | 5xx | `Unavailable`, retryable (after `Retry-After` when sent, e.g. with 503) |
//! | timeout / connection | `Timeout` / `Unavailable`, retryable |
//! | unparsable body | `Vendor`, permanent |
//! | the request budget's storage failed | that error (a shared budget's: `Unavailable`, retryable) |

use std::time::Duration;

use offboard_core::{Error, ErrorKind, RetryClass};
use serde::Deserialize;

/// Jira's private failure modes, converted into [`Error`] at the call site.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JiraError {
    /// An HTTP error status.
    #[error("Jira answered {status}{}", fmt_messages(.messages))]
    Status {
        status: u16,
        retry_after: Option<Duration>,
        messages: Vec<String>,
    },
    /// The request did not complete.
    #[error("request to Jira failed: {0}")]
    Transport(#[source] reqwest::Error),
    /// The body was not what the spec describes.
    #[error("unexpected answer from Jira: {0}")]
    Decode(String),
    /// The request budget could not be drawn from (a shared budget's storage).
    #[error("{0}")]
    Budget(Error),
}

fn fmt_messages(m: &[String]) -> String {
    if m.is_empty() {
        String::new()
    } else {
        format!(": {}", m.join("; "))
    }
}

/// `ErrorCollection` (narrative "Status codes").
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ErrorCollection {
    #[serde(default)]
    error_messages: Vec<String>,
    #[serde(default)]
    errors: std::collections::BTreeMap<String, String>,
}

impl ErrorCollection {
    pub(crate) fn messages(self) -> Vec<String> {
        let mut m = self.error_messages;
        m.extend(self.errors.into_iter().map(|(k, v)| format!("{k}: {v}")));
        m
    }
}

/// `Retry-After` in seconds (Jira sends whole seconds).
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

impl From<JiraError> for Error {
    fn from(e: JiraError) -> Self {
        if let JiraError::Budget(e) = e {
            return e;
        }
        match &e {
            JiraError::Status {
                status,
                retry_after,
                ..
            } => {
                let (kind, retry) = match status {
                    400 | 422 => (ErrorKind::InvalidInput, RetryClass::Permanent),
                    401 => (ErrorKind::Unauthenticated, RetryClass::Permanent),
                    403 => (ErrorKind::PermissionDenied, RetryClass::Permanent),
                    404 => (ErrorKind::NotFound, RetryClass::Permanent),
                    409 => (
                        ErrorKind::Conflict,
                        RetryClass::Retryable {
                            after: *retry_after,
                        },
                    ),
                    429 => (
                        ErrorKind::RateLimited,
                        RetryClass::Retryable {
                            after: *retry_after,
                        },
                    ),
                    500..=599 => (
                        ErrorKind::Unavailable,
                        RetryClass::Retryable {
                            after: *retry_after,
                        },
                    ),
                    _ => (ErrorKind::Vendor, RetryClass::Permanent),
                };
                let status = *status;
                Error::new(kind, e.to_string())
                    .with_retry(retry)
                    .with_context("status", status)
            }
            JiraError::Transport(t) => {
                let kind = if t.is_timeout() {
                    ErrorKind::Timeout
                } else {
                    ErrorKind::Unavailable
                };
                let msg = e.to_string();
                Error::new(kind, msg).retryable()
            }
            JiraError::Decode(_) | JiraError::Budget(_) => {
                Error::new(ErrorKind::Vendor, e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(s: u16, after: Option<u64>) -> Error {
        JiraError::Status {
            status: s,
            retry_after: after.map(Duration::from_secs),
            messages: vec!["m".into()],
        }
        .into()
    }

    #[test]
    fn classifies_statuses() {
        assert_eq!(status(400, None).kind(), ErrorKind::InvalidInput);
        assert!(!status(400, None).is_retryable());
        assert_eq!(status(401, None).kind(), ErrorKind::Unauthenticated);
        assert_eq!(status(404, None).kind(), ErrorKind::NotFound);
        let e = status(429, Some(7));
        assert_eq!(e.kind(), ErrorKind::RateLimited);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        let e = status(503, None);
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.is_retryable());
    }
}
