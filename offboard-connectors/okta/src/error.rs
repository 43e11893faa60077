//! How Okta's answers map to offboard errors. Vendor quirks stay here.

use offboard_core::{Error, ErrorKind};

/// What can go wrong that is specific to Okta.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OktaError {
    /// A lookup value that cannot be put into a `search` expression safely.
    #[error("{field} {value:?} contains a control character; it cannot be searched for safely")]
    ControlCharacter { field: &'static str, value: String },
    /// Okta cannot suspend a user in this status, and deactivation was not asked for.
    #[error(
        "user {id} is {status}: Okta suspends only ACTIVE (or, unlocked first, LOCKED_OUT) users; \
         only deactivation blocks this user's sign-in, and it deprovisions every app: run \
         okta.deactivate, or okta.suspend with {{\"deactivate_if_not_suspendable\": true}}"
    )]
    NotSuspendable { id: String, status: String },
    /// A lookup value longer than any Okta login, email or id (not repeated: it may be huge).
    #[error("{field} longer than {max} characters cannot name an Okta user")]
    TooLong { field: &'static str, max: usize },
    /// The user is not in a status the operation can start from.
    #[error("user {id} is {status}; {op} is not possible from that status")]
    WrongStatus {
        id: String,
        status: String,
        op: &'static str,
    },
}

impl From<OktaError> for Error {
    fn from(e: OktaError) -> Self {
        let kind = match &e {
            OktaError::ControlCharacter { .. } | OktaError::TooLong { .. } => {
                ErrorKind::InvalidInput
            }
            OktaError::WrongStatus { .. } | OktaError::NotSuspendable { .. } => ErrorKind::Vendor,
        };
        Error::new(kind, e.to_string()).fatal()
    }
}

/// Okta's `errorCode` of a classified HTTP error, if any.
pub(crate) fn vendor_code(e: &Error) -> Option<&str> {
    e.context()
        .find(|(k, _)| *k == "vendor_code")
        .map(|(_, v)| v)
}

/// A 400 `E0000001` ("Api validation failed"): Okta refusing a lifecycle change from the
/// current status, which a fresh read then explains.
pub(crate) fn is_validation(e: &Error) -> bool {
    e.kind() == ErrorKind::InvalidInput && vendor_code(e) == Some("E0000001")
}
