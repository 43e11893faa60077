//! How Google's answers map to offboard errors. Vendor quirks stay here.

use std::time::Duration;

use offboard_core::{Error, ErrorKind, RetryClass};

/// Google's documented backoff starts at about one second ("wait 1 + random milliseconds").
/// A 403 `userRateLimitExceeded`/`quotaExceeded` carries no `Retry-After`, so this is the hint.
pub(crate) const QUOTA_BACKOFF: Duration = Duration::from_secs(1);

/// What can go wrong that is specific to Google.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GoogleError {
    /// A lookup value or id with a control character (`value`: as [`shown`] gives it).
    #[error("{field} {value} contains a control character; it cannot be looked up safely")]
    ControlCharacter { field: &'static str, value: String },
    /// A lookup value or id longer than any Google identifier.
    #[error("{field} of {len} bytes is longer than {max}; it cannot be looked up")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    /// An org unit path that is not `/…` (as [`shown`] gives it).
    #[error("org unit path {0} must start with `/` and hold no control characters")]
    BadOrgUnit(String),
}

impl From<GoogleError> for Error {
    fn from(e: GoogleError) -> Self {
        Error::new(ErrorKind::InvalidInput, e.to_string()).fatal()
    }
}

/// `value` for a message: quoted as is when short, else its first 32 characters, an
/// ellipsis and its length, so no input of any size is echoed whole.
pub(crate) fn shown(value: &str) -> String {
    const KEEP: usize = 32;
    match value.char_indices().nth(KEEP) {
        None => format!("{value:?}"),
        Some((end, _)) => format!("{:?}… ({} bytes)", &value[..end], value.len()),
    }
}

/// Puts the wait hint into a Google throttling error that came without one (a 403 with a quota
/// reason): [`QUOTA_BACKOFF`]. A 429's `Retry-After` (already read by `offboard_http`) is kept.
pub(crate) fn with_hint(e: Error) -> Error {
    if e.kind() == ErrorKind::RateLimited && e.retry_after().is_none() {
        e.with_retry(RetryClass::Retryable {
            after: Some(QUOTA_BACKOFF),
        })
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_shown_cut() {
        assert_eq!(shown("a@b"), "\"a@b\"");
        let long = format!("{}\0", "é".repeat(1000));
        let s = shown(&long);
        assert!(s.starts_with(&format!("{:?}", "é".repeat(32))), "{s}");
        assert!(s.ends_with("… (2001 bytes)"), "{s}");
    }

    #[test]
    fn quota_403_gets_the_backoff_hint_and_429_keeps_its_own() {
        let e = with_hint(Error::rate_limited(None, "403 userRateLimitExceeded"));
        assert_eq!(e.retry_after(), Some(QUOTA_BACKOFF));
        let e = with_hint(Error::rate_limited(Some(Duration::from_secs(7)), "429"));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        let e = with_hint(Error::not_found("x"));
        assert_eq!(e.retry_after(), None);
    }
}
