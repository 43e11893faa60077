//! Audit sinks are fed by one pump per sink, off the commit path.
//!
//! A commit never calls a sink. It only tells the pumps how far the audit trail now reaches
//! ([`SinkPumps::committed`]). Each pump reads the trail from the store in `seq` order
//! (`audit(after = position)`), hands the events to its sink, and moves its position only when
//! the sink took them. So a sink receives every event, in order, once per position (a sink
//! that failed gets the same events again until it takes them), whatever the concurrency of
//! the commits, and a slow or failing sink never slows a commit.
//!
//! Where a pump starts: at the sink's own [`AuditSink::position`] when it keeps one (a
//! JSON-lines file knows its last line), so events committed while the engine was down are
//! caught up as soon as the engine starts; otherwise at the first event the engine commits
//! after it started. A pump then follows the whole trail (events other engines on the same
//! store commit too), waking at each commit of its engine.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use crate::audit::{AuditEvent, AuditSink};
use crate::store::{AuditQuery, Store};

/// How many events one read of the trail hands to a sink at most.
const BATCH: usize = 512;
/// The first wait after a failed read or a refused delivery; doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between two tries of a failing sink.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often a pump re-reads when the trail has a gap before the next event (another commit
/// still on its way), and how many times before it delivers what it has.
const GAP_WAIT: Duration = Duration::from_millis(20);
const GAP_TRIES: u32 = 50;

/// The pumps of one engine's sinks.
pub(crate) struct SinkPumps {
    sinks: Vec<Arc<dyn AuditSink>>,
    store: Arc<dyn Store>,
    /// The highest `seq` this engine committed (the pumps' target).
    committed: watch::Sender<u64>,
    /// Each pump's position (the last `seq` its sink took), in `sinks` order.
    positions: Mutex<Vec<watch::Receiver<u64>>>,
    /// The lowest `seq` of the first commit since the engine started: where sinks without a
    /// position of their own start.
    first: Arc<OnceLock<u64>>,
    started: AtomicBool,
}

impl std::fmt::Debug for SinkPumps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkPumps")
            .field("sinks", &self.sinks.len())
            .field("committed", &*self.committed.borrow())
            .finish_non_exhaustive()
    }
}

impl SinkPumps {
    /// Pumps for `sinks`, reading from `store`; nothing runs until [`SinkPumps::start`] or the
    /// first commit.
    pub(crate) fn new(sinks: Vec<Arc<dyn AuditSink>>, store: Arc<dyn Store>) -> Self {
        Self {
            sinks,
            store,
            committed: watch::channel(0).0,
            positions: Mutex::new(Vec::new()),
            first: Arc::new(OnceLock::new()),
            started: AtomicBool::new(false),
        }
    }

    /// Starts one pump per sink (once). Sinks without a position of their own start at the
    /// first event committed since the engine started.
    pub(crate) fn start(&self) {
        if self.sinks.is_empty() || self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut positions = self
            .positions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for sink in &self.sinks {
            let (position, rx) = watch::channel(0);
            positions.push(rx);
            let pump = Pump {
                sink: sink.clone(),
                store: self.store.clone(),
                committed: self.committed.subscribe(),
                position,
                first: self.first.clone(),
            };
            tokio::spawn(pump.run());
        }
    }

    /// The store committed `events` (sealed): the pumps deliver up to their highest `seq`.
    pub(crate) fn committed(&self, events: &[AuditEvent]) {
        let Some(high) = events.iter().map(|e| e.seq).max() else {
            return;
        };
        let low = events.iter().map(|e| e.seq).min().unwrap_or(high);
        let _ = self.first.set(low);
        self.start();
        self.committed.send_if_modified(|c| {
            let moved = high > *c;
            *c = (*c).max(high);
            moved
        });
    }

    /// Waits until every sink took every event this engine committed so far (or its pump
    /// ended). A sink that keeps failing keeps this waiting: bound it with a timeout.
    pub(crate) async fn flush(&self) {
        let target = *self.committed.borrow();
        let positions: Vec<watch::Receiver<u64>> = self
            .positions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for mut p in positions {
            // An ended pump (its sender dropped) has nothing more to deliver.
            let _ = p.wait_for(|pos| *pos >= target).await;
        }
    }
}

/// One sink's pump.
struct Pump {
    sink: Arc<dyn AuditSink>,
    store: Arc<dyn Store>,
    committed: watch::Receiver<u64>,
    position: watch::Sender<u64>,
    first: Arc<OnceLock<u64>>,
}

impl Pump {
    async fn run(mut self) {
        let own = match self.sink.position().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, sink = ?self.sink, "audit sink cannot tell its position; starting at the engine's next event");
                None
            }
        };
        let mut pos = match own {
            Some(p) => p,
            None => loop {
                if let Some(first) = self.first.get() {
                    break first.saturating_sub(1);
                }
                if self.committed.changed().await.is_err() {
                    return;
                }
            },
        };
        self.position.send_replace(pos);
        let mut backoff = FIRST_BACKOFF;
        let mut empty_tries = 0;
        loop {
            // Marked before reading, so a commit after the read wakes the wait below.
            let target = *self.committed.borrow_and_update();
            match self.next(pos).await {
                Ok(events) if events.is_empty() => {
                    if pos < target && empty_tries < GAP_TRIES {
                        // Committed but not visible to this read yet.
                        empty_tries += 1;
                        tokio::time::sleep(GAP_WAIT).await;
                        continue;
                    }
                    empty_tries = 0;
                    if self.committed.changed().await.is_err() {
                        return;
                    }
                }
                Ok(events) => match self.sink.record(&events).await {
                    Ok(()) => {
                        pos = events.last().map_or(pos, |e| e.seq);
                        self.position.send_replace(pos);
                        backoff = FIRST_BACKOFF;
                        empty_tries = 0;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, sink = ?self.sink, after = pos, "audit sink failed; the store keeps the events and the sink gets them again");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, after = pos, "reading the audit trail for a sink failed; trying again");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// The events after `pos`, contiguous from `pos + 1` (waiting a little for a gap to fill:
    /// a commit with a lower `seq` may become visible after one with a higher).
    async fn next(&self, pos: u64) -> crate::error::Result<Vec<AuditEvent>> {
        let query = AuditQuery {
            run: None,
            after_seq: pos,
            limit: BATCH,
        };
        let mut tries = 0;
        loop {
            let mut events = self.store.audit(query.clone()).await?;
            let contiguous = events
                .iter()
                .enumerate()
                .take_while(|(i, e)| e.seq == pos + 1 + *i as u64)
                .count();
            if contiguous == events.len() || tries >= GAP_TRIES {
                if contiguous < events.len() {
                    tracing::warn!(
                        after = pos,
                        next = events[contiguous].seq,
                        "the audit trail has a gap; delivering what follows it"
                    );
                }
                return Ok(events);
            }
            if contiguous > 0 {
                events.truncate(contiguous);
                return Ok(events);
            }
            tries += 1;
            tokio::time::sleep(GAP_WAIT).await;
        }
    }
}
