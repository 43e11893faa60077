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
//!
//! "The first event the engine commits" is decided exactly, though concurrent commits report
//! to the pumps in any order (a commit that got seq 1 may report after one that got seq 3):
//! every write that may append audit events holds a [`Writing`] ticket from before it calls
//! the store until it reported. Once a first commit reported, a pump waits for the writes that
//! began before that report (they may hold lower `seq`s) and starts at the lowest `seq` any
//! reported; a write that begins later is committed after that first commit, with a higher
//! `seq`.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, watch};

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
    /// Where sinks without a position of their own start (see [`Start`]).
    start: Arc<Start>,
    started: AtomicBool,
}

/// The first event an engine committed since it started, decided exactly under concurrent
/// commits (see the module docs): the lowest `seq` reported, once every write that began
/// before the first report has reported or ended.
#[derive(Debug)]
struct Start {
    /// The lowest `seq` reported so far (`u64::MAX`: none yet).
    lowest: AtomicU64,
    /// Writes under way: the next ticket, and the tickets not yet ended.
    writes: Mutex<(u64, BTreeSet<u64>)>,
    /// Woken when a write ends.
    ended: Notify,
    /// Set once every pump without a position of its own has its start: tickets are no
    /// longer needed.
    decided: AtomicBool,
}

impl Start {
    fn new() -> Self {
        Self {
            lowest: AtomicU64::new(u64::MAX),
            writes: Mutex::new((0, BTreeSet::new())),
            ended: Notify::new(),
            decided: AtomicBool::new(false),
        }
    }

    fn writes(&self) -> std::sync::MutexGuard<'_, (u64, BTreeSet<u64>)> {
        self.writes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The `seq` before the engine's first event, once decided exactly: waits for every write
    /// that began before now (called after a first commit reported) to end.
    async fn before_first(&self) -> u64 {
        let horizon = self.writes().0;
        loop {
            let ended = self.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if self.writes().1.first().is_none_or(|t| *t >= horizon) {
                break;
            }
            ended.await;
        }
        self.lowest.load(Ordering::Acquire).saturating_sub(1)
    }
}

/// A write that may append audit events, from before its store call until it reported to the
/// pumps ([`SinkPumps::committed`]) or failed: see [`SinkPumps::writing`].
#[must_use = "the ticket must live until the write reported"]
pub(crate) struct Writing {
    held: Option<(Arc<Start>, u64)>,
}

impl Drop for Writing {
    fn drop(&mut self) {
        if let Some((start, ticket)) = self.held.take() {
            start.writes().1.remove(&ticket);
            start.ended.notify_waiters();
        }
    }
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
            start: Arc::new(Start::new()),
            started: AtomicBool::new(false),
        }
    }

    /// A ticket for a write that may append audit events: take it before the store call and
    /// keep it until [`SinkPumps::committed`] was told (dropping it ends the write). Free once
    /// the sinks' start is decided, or when there are no sinks.
    pub(crate) fn writing(&self) -> Writing {
        if self.sinks.is_empty() || self.start.decided.load(Ordering::Acquire) {
            return Writing { held: None };
        }
        let ticket = {
            let mut writes = self.start.writes();
            let ticket = writes.0;
            writes.0 += 1;
            writes.1.insert(ticket);
            ticket
        };
        Writing {
            held: Some((self.start.clone(), ticket)),
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
        let undecided = Arc::new(AtomicU64::new(self.sinks.len() as u64));
        for sink in &self.sinks {
            let (position, rx) = watch::channel(0);
            positions.push(rx);
            let pump = Pump {
                sink: sink.clone(),
                store: self.store.clone(),
                committed: self.committed.subscribe(),
                position,
                start: self.start.clone(),
                undecided: undecided.clone(),
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
        self.start.lowest.fetch_min(low, Ordering::AcqRel);
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
    start: Arc<Start>,
    /// How many pumps of this engine have no start yet (the last one to decide ends the
    /// tickets).
    undecided: Arc<AtomicU64>,
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
            None => {
                while self.start.lowest.load(Ordering::Acquire) == u64::MAX {
                    if self.committed.changed().await.is_err() {
                        return;
                    }
                }
                self.start.before_first().await
            }
        };
        if self.undecided.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.start.decided.store(true, Ordering::Release);
        }
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
