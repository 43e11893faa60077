//! Fault injection shared by the reference connector and delegate.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use offboard_core::{Error, ErrorKind, RetryClass};

type MakeError = Arc<dyn Fn() -> Error + Send + Sync>;

/// A failure to inject into the next calls of one operation.
///
/// The operation is named as the call it hits:
/// - an action name (`okta.suspend`) or its verb alone (`suspend`): [`Connector::execute`] of
///   that action;
/// - `lookup`, `snapshot`, `restore`, `verify_revoked`: those connector methods;
/// - `open`, `status`: the [`ReferenceDelegate`](super::ReferenceDelegate)'s methods.
///
/// # Behavior
/// - By default the call fails *before* it changes anything, as a vendor that refused the
///   request. [`Fault::after_effect`] makes it fail *after* the change was applied, as a vendor
///   whose response was lost: a retry then reports `AlreadyDone`.
/// - Dry-run executions are never hit and never use up a fault.
/// - When several faults match a call, the one injected first is used.
/// - An error without an operation gets the operation's name.
///
/// [`Connector::execute`]: offboard_core::Connector::execute
#[derive(Clone)]
pub struct Fault {
    pub(super) op: String,
    pub(super) remaining: Option<u32>,
    pub(super) after_effect: bool,
    pub(super) make: MakeError,
}

impl Fault {
    /// The next `times` calls of `op` fail with the error `make` returns.
    pub fn next(
        op: impl Into<String>,
        times: u32,
        make: impl Fn() -> Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            op: op.into(),
            remaining: Some(times),
            after_effect: false,
            make: Arc::new(make),
        }
    }

    /// Every call of `op` fails with the error `make` returns, until the faults are cleared.
    pub fn always(op: impl Into<String>, make: impl Fn() -> Error + Send + Sync + 'static) -> Self {
        Self {
            op: op.into(),
            remaining: None,
            after_effect: false,
            make: Arc::new(make),
        }
    }

    /// Fails after the change is applied (the vendor's answer is lost), instead of before.
    pub fn after_effect(mut self) -> Self {
        self.after_effect = true;
        self
    }

    /// The operation it hits, as normalised by the connector it was injected into.
    pub fn op(&self) -> &str {
        &self.op
    }
}

impl fmt::Debug for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fault")
            .field("op", &self.op)
            .field("remaining", &self.remaining)
            .field("after_effect", &self.after_effect)
            .finish_non_exhaustive()
    }
}

/// Injected faults, in injection order.
#[derive(Debug, Default)]
pub(super) struct Faults(Vec<Fault>);

impl Faults {
    pub(super) fn push(&mut self, fault: Fault) {
        if fault.remaining != Some(0) {
            self.0.push(fault);
        }
    }

    pub(super) fn clear(&mut self) {
        self.0.clear();
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    /// Uses up one matching fault, if any, and returns its error.
    pub(super) fn take(&mut self, op: &str, after_effect: bool) -> Option<Error> {
        let i = self
            .0
            .iter()
            .position(|f| f.op == op && f.after_effect == after_effect)?;
        let fault = &mut self.0[i];
        let error = (fault.make)();
        if let Some(n) = &mut fault.remaining {
            *n -= 1;
            if *n == 0 {
                self.0.remove(i);
            }
        }
        Some(if error.operation().is_empty() {
            error.with_operation(op.to_owned())
        } else {
            error
        })
    }
}

/// An error factory for a vendor outage: kind `Unavailable`, retryable, with the vendor's
/// `Retry-After` hint when given.
///
/// ```
/// use std::time::Duration;
/// use offboard_testkit::suite::reference::unavailable;
///
/// let e = unavailable(Some(Duration::from_secs(30)))();
/// assert!(e.is_retryable());
/// assert_eq!(e.retry_after(), Some(Duration::from_secs(30)));
/// ```
pub fn unavailable(
    retry_after: Option<Duration>,
) -> impl Fn() -> Error + Send + Sync + Clone + 'static {
    move || {
        Error::new(
            ErrorKind::Unavailable,
            "injected fault: service unavailable (503)",
        )
        .with_retry(RetryClass::Retryable { after: retry_after })
    }
}

/// An error factory for throttling: kind `RateLimited`, retryable, with the wait hint when given.
pub fn rate_limited(
    retry_after: Option<Duration>,
) -> impl Fn() -> Error + Send + Sync + Clone + 'static {
    move || Error::rate_limited(retry_after, "injected fault: rate limited (429)")
}

/// An error factory for a failure that retrying cannot fix: the given kind, `Permanent`.
pub fn permanent(
    kind: ErrorKind,
    message: impl Into<String>,
) -> impl Fn() -> Error + Send + Sync + Clone + 'static {
    let message = message.into();
    move || Error::new(kind, format!("injected fault: {message}")).fatal()
}
