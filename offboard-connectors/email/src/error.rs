//! How SMTP failures map to offboard errors.
//!
//! | SMTP | offboard |
//! |---|---|
//! | 4xx reply (transient) | `Unavailable`, retryable |
//! | 5xx reply (permanent) | `InvalidInput` (e.g. unknown recipient), permanent |
//! | timeout | `Timeout`, retryable |
//! | connection, TLS, protocol | `Unavailable`, retryable |

use offboard_core::{Error, ErrorKind};

/// The private failure modes of the SMTP client.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MailError {
    /// lettre's SMTP error (never carries the password).
    #[error("SMTP: {0}")]
    Smtp(#[source] lettre::transport::smtp::Error),
}

impl From<MailError> for Error {
    fn from(e: MailError) -> Self {
        let MailError::Smtp(inner) = &e;
        let (kind, retryable) = if inner.is_permanent() {
            (ErrorKind::InvalidInput, false)
        } else if inner.is_timeout() {
            (ErrorKind::Timeout, true)
        } else {
            (ErrorKind::Unavailable, true)
        };
        let code = inner.status().map(|c| c.to_string());
        let mut out = Error::new(kind, e.to_string()).with_operation("email.send");
        if let Some(code) = code {
            out = out.with_context("smtp_code", code);
        }
        if retryable {
            out.retryable()
        } else {
            out.fatal()
        }
    }
}
