//! The error taxonomy: a *kind* (what went wrong) and, independently, a *retry class* (what to
//! do about it), plus the operation that failed and key/value context.
//!
//! Connectors keep their vendor quirks in private error enums and convert them into [`Error`]
//! at the call site with [`ResultExt::retryable`] / [`ResultExt::fatal`] or the constructors.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The thing looked for does not exist. Only the action decides whether that means done.
    NotFound,
    /// A lookup matched more than one account. Never guessed between.
    Ambiguous,
    /// Input was malformed or unsafe; nothing was changed.
    InvalidInput,
    /// Configuration is missing or wrong (names the key).
    Config,
    /// The credentials lack a permission.
    PermissionDenied,
    /// Authentication failed (bad or expired credentials).
    Unauthenticated,
    /// The vendor throttled us.
    RateLimited,
    /// The vendor or network is unavailable (5xx, connection reset).
    Unavailable,
    /// The call did not answer in time.
    Timeout,
    /// A concurrent change won (optimistic concurrency, lease lost).
    Conflict,
    /// The connector does not offer this operation.
    Unsupported,
    /// The person or account is protected and is never offboarded.
    Protected,
    /// A critical action needs a confirmation bound to the plan's digest.
    ConfirmationRequired,
    /// The plan's ordering constraints form a cycle.
    Cycle,
    /// The store failed.
    Storage,
    /// The audit trail does not verify.
    Tampered,
    /// The vendor answered something we do not understand.
    Vendor,
    /// The vendor accepted the work and is still doing it (a data transfer, a device wipe):
    /// check again after the hint. Polls of such a job do not spend retry attempts; see
    /// [`crate::machine`] for how long one may run.
    InProgress,
    /// A bug in offboard.
    Internal,
    /// The person asked to do the work said it was not done (a ticket closed as "Won't Do",
    /// a "can't do it" answer): the access was not removed.
    Declined,
}

impl ErrorKind {
    /// Stable snake_case name, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::Ambiguous => "ambiguous",
            Self::InvalidInput => "invalid_input",
            Self::Config => "config",
            Self::PermissionDenied => "permission_denied",
            Self::Unauthenticated => "unauthenticated",
            Self::RateLimited => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::Conflict => "conflict",
            Self::Unsupported => "unsupported",
            Self::Protected => "protected",
            Self::ConfirmationRequired => "confirmation_required",
            Self::Cycle => "cycle",
            Self::Storage => "storage",
            Self::Tampered => "tampered",
            Self::Vendor => "vendor",
            Self::InProgress => "in_progress",
            Self::Internal => "internal",
            Self::Declined => "declined",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether trying again can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "class")]
pub enum RetryClass {
    /// Trying again will give the same answer.
    Permanent,
    /// Trying again may succeed; `after` is the vendor's hint (Retry-After, X-Rate-Limit-Reset).
    Retryable {
        /// Wait at least this long, when the vendor said so.
        #[serde(with = "opt_millis", default, skip_serializing_if = "Option::is_none")]
        after: Option<Duration>,
    },
    /// It was retryable, but the retry budget (attempts or total time) is spent.
    Exhausted,
}

impl RetryClass {
    /// The class as it is persisted: a wait hint rounded up to whole milliseconds.
    pub fn persisted(self) -> Self {
        match self {
            Self::Retryable { after: Some(d) } => Self::Retryable {
                after: Some(Duration::from_millis(
                    d.as_nanos().div_ceil(1_000_000).min(u64::MAX as u128) as u64,
                )),
            },
            other => other,
        }
    }
}

/// An offboard error.
///
/// # Behavior
/// - `Display` shows the operation, kind, message and context; it never shows a secret because
///   secrets are never put into an error (use [`crate::Secret`] for them, which redacts).
/// - [`Error::record`] gives the serialisable, comparable form stored in task states and audit
///   events.
pub struct Error {
    kind: ErrorKind,
    retry: RetryClass,
    operation: Cow<'static, str>,
    message: String,
    context: Vec<(Cow<'static, str>, String)>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// offboard's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error; the retry class defaults from the kind (see [`Error::default_retry`]).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            retry: Self::default_retry(kind),
            operation: Cow::Borrowed(""),
            message: message.into(),
            context: Vec::new(),
            source: None,
        }
    }

    /// The retry class a kind has unless the call site says otherwise: rate limits,
    /// unavailability, timeouts and conflicts are retryable; everything else is permanent.
    pub fn default_retry(kind: ErrorKind) -> RetryClass {
        match kind {
            ErrorKind::RateLimited
            | ErrorKind::Unavailable
            | ErrorKind::Timeout
            | ErrorKind::Conflict
            | ErrorKind::InProgress => RetryClass::Retryable { after: None },
            _ => RetryClass::Permanent,
        }
    }

    /// Shorthand for a not-found error.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// Shorthand for an ambiguous-lookup error.
    pub fn ambiguous(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Ambiguous, message)
    }

    /// Shorthand for an invalid-input error.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    /// Shorthand for a configuration error naming the key.
    pub fn config(key: impl Into<String>, message: impl Into<String>) -> Self {
        let key = key.into();
        Self::new(ErrorKind::Config, format!("{key}: {}", message.into())).with_context("key", key)
    }

    /// Shorthand for an unsupported-operation error.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }

    /// A vendor job still running (see [`ErrorKind::InProgress`]), to be checked again after
    /// `check_after`.
    pub fn in_progress(check_after: Duration, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InProgress, message).with_retry(RetryClass::Retryable {
            after: Some(check_after),
        })
    }

    /// Shorthand for a rate-limit error with the vendor's wait hint.
    pub fn rate_limited(after: Option<Duration>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::RateLimited, message).with_retry(RetryClass::Retryable { after })
    }

    /// Shorthand for a storage error.
    pub fn storage(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Storage, message)
    }

    /// Shorthand for an internal error (a bug).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// Sets the retry class.
    pub fn with_retry(mut self, retry: RetryClass) -> Self {
        self.retry = retry;
        self
    }

    /// Marks the error retryable, keeping an existing hint.
    pub fn retryable(mut self) -> Self {
        if !matches!(self.retry, RetryClass::Retryable { .. }) {
            self.retry = RetryClass::Retryable { after: None };
        }
        self
    }

    /// Marks the error permanent.
    pub fn fatal(mut self) -> Self {
        self.retry = RetryClass::Permanent;
        self
    }

    /// Sets the operation that failed (e.g. `okta.suspend`).
    pub fn with_operation(mut self, operation: impl Into<Cow<'static, str>>) -> Self {
        self.operation = operation.into();
        self
    }

    /// Adds a context pair. Never put a secret here.
    pub fn with_context(
        mut self,
        key: impl Into<Cow<'static, str>>,
        value: impl fmt::Display,
    ) -> Self {
        self.context.push((key.into(), value.to_string()));
        self
    }

    /// Attaches the underlying error.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether and when to try again.
    pub fn retry(&self) -> RetryClass {
        self.retry
    }

    /// Whether the retry class is `Retryable`.
    pub fn is_retryable(&self) -> bool {
        matches!(self.retry, RetryClass::Retryable { .. })
    }

    /// The vendor's wait hint, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self.retry {
            RetryClass::Retryable { after } => after,
            _ => None,
        }
    }

    /// The operation that failed.
    pub fn operation(&self) -> &str {
        &self.operation
    }

    /// The message without context.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The context pairs.
    pub fn context(&self) -> impl Iterator<Item = (&str, &str)> {
        self.context.iter().map(|(k, v)| (k.as_ref(), v.as_str()))
    }

    /// The serialisable, comparable form of this error. A wait hint is rounded up to whole
    /// milliseconds, the precision it is persisted with, so replay decides as the live run did.
    pub fn record(&self) -> ErrorRecord {
        let mut message = self.message.clone();
        if let Some(source) = &self.source {
            message = format!("{message}: {source}");
        }
        let retry = self.retry.persisted();
        ErrorRecord {
            kind: self.kind,
            retry,
            operation: self.operation.to_string(),
            message,
            context: self
                .context
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("retry", &self.retry)
            .field("operation", &self.operation)
            .field("message", &self.message)
            .field("context", &self.context)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.operation.is_empty() {
            write!(f, "{}: ", self.operation)?;
        }
        write!(f, "{} ({})", self.message, self.kind)?;
        for (k, v) in &self.context {
            write!(f, ", {k}={v}")?;
        }
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<ErrorRecord> for Error {
    fn from(r: ErrorRecord) -> Self {
        let mut e = Error::new(r.kind, r.message)
            .with_retry(r.retry)
            .with_operation(r.operation);
        for (k, v) in r.context {
            e = e.with_context(k, v);
        }
        e
    }
}

/// The serialisable, comparable form of an [`Error`], kept in task states and audit events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorRecord {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Whether trying again can help.
    pub retry: RetryClass,
    /// The operation that failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub operation: String,
    /// Human-readable detail (with the source's message).
    pub message: String,
    /// Context pairs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<(String, String)>,
}

impl fmt::Display for ErrorRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Error::from(self.clone()), f)
    }
}

/// Call-site classification helpers for results whose error converts into [`Error`].
pub trait ResultExt<T> {
    /// Marks the error retryable.
    fn retryable(self) -> Result<T>;
    /// Marks the error permanent.
    fn fatal(self) -> Result<T>;
    /// Sets the failing operation.
    fn operation(self, op: impl Into<Cow<'static, str>>) -> Result<T>;
    /// Adds a context pair.
    fn context(self, key: impl Into<Cow<'static, str>>, value: impl fmt::Display) -> Result<T>;
}

impl<T, E: Into<Error>> ResultExt<T> for std::result::Result<T, E> {
    fn retryable(self) -> Result<T> {
        self.map_err(|e| e.into().retryable())
    }
    fn fatal(self) -> Result<T> {
        self.map_err(|e| e.into().fatal())
    }
    fn operation(self, op: impl Into<Cow<'static, str>>) -> Result<T> {
        self.map_err(|e| e.into().with_operation(op))
    }
    fn context(self, key: impl Into<Cow<'static, str>>, value: impl fmt::Display) -> Result<T> {
        self.map_err(|e| e.into().with_context(key, value))
    }
}

/// Serde helper: `Duration` as milliseconds.
pub(crate) mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// Serde helper: `Option<Duration>` as optional milliseconds.
pub(crate) mod opt_millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(crate) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            // Rounded up, as `RetryClass::persisted` does: never wait less than the hint.
            Some(d) => {
                s.serialize_some(&(d.as_nanos().div_ceil(1_000_000).min(u64::MAX as u128) as u64))
            }
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_defaults_retry_class() {
        assert!(Error::new(ErrorKind::Unavailable, "x").is_retryable());
        assert!(!Error::new(ErrorKind::NotFound, "x").is_retryable());
        let e = Error::rate_limited(Some(Duration::from_secs(7)), "slow down");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
    }

    #[test]
    fn record_round_trips() {
        let e = Error::invalid_input("bad login")
            .with_operation("okta.lookup")
            .with_context("login", "a\"b");
        let r = e.record();
        let json = serde_json::to_string(&r).unwrap();
        let back: ErrorRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(r, back);
        assert_eq!(Error::from(back).to_string(), e.to_string());
    }
}
