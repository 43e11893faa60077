//! [`TraceCapture`]: a `tracing` subscriber that writes every span, field and event into one
//! string, so a test can assert what the logs would hold (and that no secret is among it).
//!
//! # Example
//! ```
//! use offboard_testkit::suite::trace::TraceCapture;
//!
//! let capture = TraceCapture::default();
//! {
//!     let _guard = capture.set_default();
//!     tracing::info!(path = "/v1.0/users", "request");
//! }
//! assert!(capture.text().contains("path=\"/v1.0/users\""));
//! ```

use std::cell::RefCell;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, Once, PoisonError};

use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;

/// Everything traced on this thread while it is active, as text: `span <name>:` lines with
/// ` field=value` pairs, events' fields the same way. Clones share the text.
///
/// # Behavior
/// One process-wide subscriber routes every span and event to the capture active on the
/// calling thread (the innermost one when nested). A per-test `tracing::subscriber::set_default`
/// is not used on purpose: with several tests on several threads, tracing's per-callsite
/// interest cache can remember "no subscriber wants this" from another thread and silently
/// drop the spans a test asserts on. The router answers "sometimes" for every callsite, so
/// the decision is made on each call.
#[derive(Debug, Clone, Default)]
pub struct TraceCapture(Arc<Mutex<String>>);

thread_local! {
    static ACTIVE: RefCell<Vec<TraceCapture>> = const { RefCell::new(Vec::new()) };
}

/// While it lives, the capture it was made from receives this thread's traces.
#[derive(Debug)]
#[must_use = "the capture stops when the guard drops"]
pub struct CaptureGuard(());

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        ACTIVE.with(|a| a.borrow_mut().pop());
    }
}

impl TraceCapture {
    /// Makes it the receiver of this thread's traces until the guard drops (use a
    /// `current_thread` runtime so every task traces into it).
    ///
    /// # Panics
    /// When the process already has a global subscriber that is not this router.
    pub fn set_default(&self) -> CaptureGuard {
        static INSTALL: Once = Once::new();
        INSTALL.call_once(|| {
            tracing::subscriber::set_global_default(Router)
                .expect("TraceCapture needs to be the process's global tracing subscriber");
        });
        ACTIVE.with(|a| a.borrow_mut().push(self.clone()));
        CaptureGuard(())
    }

    /// What was traced so far.
    pub fn text(&self) -> String {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn write(&self, f: impl FnOnce(&mut String)) {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

/// The capture active on this thread, if any.
fn active() -> Option<TraceCapture> {
    ACTIVE.with(|a| a.borrow().last().cloned())
}

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
}

/// The process-wide subscriber: forwards to the thread's active capture.
struct Router;

impl tracing::Subscriber for Router {
    fn register_callsite(&self, _: &'static tracing::Metadata<'static>) -> Interest {
        Interest::sometimes()
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::TRACE)
    }

    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        ACTIVE.with(|a| !a.borrow().is_empty())
    }

    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut id = 1;
        if let Some(c) = active() {
            c.write(|out| {
                let _ = write!(out, "\nspan {}:", span.metadata().name());
                span.record(&mut Fields(out));
                id = out.len() as u64 + 1;
            });
        }
        tracing::span::Id::from_u64(id)
    }

    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        if let Some(c) = active() {
            c.write(|out| values.record(&mut Fields(out)));
        }
    }

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        if let Some(c) = active() {
            c.write(|out| {
                out.push_str("\nevent:");
                event.record(&mut Fields(out));
            });
        }
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}
