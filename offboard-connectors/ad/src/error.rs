//! How LDAP result codes and transport failures map to offboard's errors.
//!
//! | LDAP result | offboard error |
//! |---|---|
//! | 49 invalidCredentials | `Unauthenticated` |
//! | 50 insufficientAccessRights | `PermissionDenied` |
//! | 32 noSuchObject | `NotFound` (actions decide whether that means done) |
//! | 8 strongerAuthRequired, 13 confidentialityRequired | `Config` (the DC requires TLS) |
//! | 51 busy, 52 unavailable | `Unavailable`, retryable |
//! | 3 timeLimitExceeded | `Timeout`, retryable |
//! | 16 noSuchAttribute, 20 attributeOrValueExists (a concurrent change) | `Conflict`, retryable |
//! | 53 unwillingToPerform, 68 entryAlreadyExists | `Vendor`; the group actions treat them as already done |
//! | anything else | `Vendor`, permanent |
//! | network, TLS, timeouts | `Unavailable` / `Timeout`, retryable |

use offboard_core::{Error, ErrorKind};

/// LDAP result codes the connector looks at.
pub(crate) mod rc {
    pub(crate) const SUCCESS: u32 = 0;
    pub(crate) const TIME_LIMIT_EXCEEDED: u32 = 3;
    pub(crate) const STRONGER_AUTH_REQUIRED: u32 = 8;
    pub(crate) const CONFIDENTIALITY_REQUIRED: u32 = 13;
    pub(crate) const NO_SUCH_ATTRIBUTE: u32 = 16;
    pub(crate) const ATTRIBUTE_OR_VALUE_EXISTS: u32 = 20;
    pub(crate) const NO_SUCH_OBJECT: u32 = 32;
    pub(crate) const INVALID_CREDENTIALS: u32 = 49;
    pub(crate) const INSUFFICIENT_ACCESS: u32 = 50;
    pub(crate) const BUSY: u32 = 51;
    pub(crate) const UNAVAILABLE: u32 = 52;
    pub(crate) const UNWILLING_TO_PERFORM: u32 = 53;
    pub(crate) const ENTRY_ALREADY_EXISTS: u32 = 68;
}

/// What went wrong talking to the directory, before it becomes an [`Error`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum AdError {
    /// The server answered with a non-success result code.
    #[error("LDAP {op} returned result {rc}{}", if text.is_empty() { String::new() } else { format!(": {text}") })]
    Result {
        /// The operation (`bind`, `search`, `modify`...).
        op: &'static str,
        /// The LDAP result code.
        rc: u32,
        /// The server's diagnostic text.
        text: String,
    },
    /// The connection failed (network, TLS, protocol, timeout).
    #[error("LDAP {op} failed")]
    Transport {
        /// The operation.
        op: &'static str,
        /// The cause.
        #[source]
        source: Box<ldap3::LdapError>,
    },
    /// The TLS configuration could not be built.
    #[error("TLS set-up failed: {0}")]
    Tls(String),
    /// The connection pool is unusable (a bug).
    #[error("{0}")]
    Pool(&'static str),
}

impl AdError {
    /// The LDAP result code, when the server answered.
    pub(crate) fn rc(&self) -> Option<u32> {
        match self {
            Self::Result { rc, .. } => Some(*rc),
            Self::Transport { source, .. } => match source.as_ref() {
                ldap3::LdapError::LdapResult { result } => Some(result.rc),
                _ => None,
            },
            _ => None,
        }
    }

    /// Wraps an ldap3 error, lifting an embedded result code.
    pub(crate) fn from_ldap(op: &'static str, source: ldap3::LdapError) -> Self {
        match source {
            ldap3::LdapError::LdapResult { result } => Self::Result {
                op,
                rc: result.rc,
                text: result.text,
            },
            source => Self::Transport {
                op,
                source: Box::new(source),
            },
        }
    }
}

impl From<AdError> for Error {
    fn from(e: AdError) -> Self {
        match e {
            AdError::Result { op, rc, ref text } => {
                let (kind, message) = match rc {
                    rc::INVALID_CREDENTIALS => (
                        ErrorKind::Unauthenticated,
                        "the directory rejected the credentials",
                    ),
                    rc::INSUFFICIENT_ACCESS => (
                        ErrorKind::PermissionDenied,
                        "the service account lacks the right",
                    ),
                    rc::NO_SUCH_OBJECT => (ErrorKind::NotFound, "no such object"),
                    rc::STRONGER_AUTH_REQUIRED | rc::CONFIDENTIALITY_REQUIRED => (
                        ErrorKind::Config,
                        "the domain controller requires an encrypted connection (use ldaps:// or \
                         StartTLS)",
                    ),
                    rc::BUSY | rc::UNAVAILABLE => {
                        (ErrorKind::Unavailable, "the domain controller is busy")
                    }
                    rc::TIME_LIMIT_EXCEEDED => (ErrorKind::Timeout, "the operation timed out"),
                    rc::NO_SUCH_ATTRIBUTE | rc::ATTRIBUTE_OR_VALUE_EXISTS => (
                        ErrorKind::Conflict,
                        "the entry changed concurrently; read it again",
                    ),
                    _ => (ErrorKind::Vendor, "the domain controller refused"),
                };
                let mut err = Error::new(kind, message)
                    .with_context("ldap_op", op)
                    .with_context("ldap_rc", rc);
                if !text.is_empty() {
                    err = err.with_context("ldap_text", text.trim_end_matches('\0').trim());
                }
                err
            }
            AdError::Transport { op, source } => {
                let kind = match source.as_ref() {
                    ldap3::LdapError::Timeout { .. } => ErrorKind::Timeout,
                    _ => ErrorKind::Unavailable,
                };
                Error::new(kind, "the connection to the domain controller failed")
                    .with_context("ldap_op", op)
                    .with_source(source)
                    .retryable()
            }
            AdError::Tls(message) => Error::new(ErrorKind::Config, message),
            AdError::Pool(message) => Error::internal(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(rc: u32) -> Error {
        AdError::Result {
            op: "modify",
            rc,
            text: "x".into(),
        }
        .into()
    }

    #[test]
    fn result_codes_map_to_kinds() {
        assert_eq!(map(49).kind(), ErrorKind::Unauthenticated);
        assert_eq!(map(50).kind(), ErrorKind::PermissionDenied);
        assert_eq!(map(32).kind(), ErrorKind::NotFound);
        assert!(map(51).is_retryable() && map(52).is_retryable());
        assert!(!map(53).is_retryable());
        assert_eq!(map(8).kind(), ErrorKind::Config);
        assert!(map(20).is_retryable());
        assert!(map(49).to_string().contains("ldap_rc=49"));
    }
}
