//! Signed checkpoints of the audit chain, written off the commit path (see
//! [`crate::checkpoint`] and [`super::EngineBuilder::with_checkpoints`]).
//!
//! Every commit tells the checkpointer the events it sealed ([`Checkpoints::committed`]): the
//! highest of them is the chain head the store returned with that commit (a store seals in
//! order under its head, so every event before it is committed too). A background loop
//! signs the head it knows and writes the checkpoint to the sink when `every_events` events
//! were committed since the last checkpoint, or `every` passed (if the head moved since).
//! A sink that fails is logged and tried again at the next trigger; a commit never waits for
//! it. When the engine is dropped, or its workers are shut down, a last checkpoint is written.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use super::Clock;
use crate::audit::AuditEvent;
use crate::checkpoint::{Checkpoint, CheckpointSigner, CheckpointSink};
use crate::error::{Error, Result};

/// What [`super::EngineBuilder::with_checkpoints`] configured.
#[derive(Debug)]
pub(crate) struct CheckpointConfig {
    pub(crate) signer: CheckpointSigner,
    pub(crate) sink: Arc<dyn CheckpointSink>,
    pub(crate) every_events: u64,
    pub(crate) every: Duration,
}

impl CheckpointConfig {
    /// Checks the cadence.
    ///
    /// # Errors
    /// `Config` when `every_events` is 0 or `every` is zero.
    pub(crate) fn check(&self) -> Result<()> {
        if self.every_events == 0 {
            return Err(Error::config(
                "checkpoints.every_events",
                "a checkpoint every 0 events: give at least 1",
            ));
        }
        if self.every.is_zero() {
            return Err(Error::config(
                "checkpoints.every",
                "a checkpoint every 0 seconds: give a positive interval",
            ));
        }
        Ok(())
    }
}

/// The engine's checkpointer: the chain head it knows and the loop that signs it.
#[derive(Debug)]
pub(crate) struct Checkpoints {
    writer: Arc<Writer>,
    /// Bumped when `every_events` events were committed since the last checkpoint; dropping
    /// it (with the engine) ends the loop after a last checkpoint.
    kick: watch::Sender<u64>,
    started: std::sync::Once,
}

/// Signs and writes checkpoints; shared by the engine and its loop.
#[derive(Debug)]
pub(crate) struct Writer {
    signer: CheckpointSigner,
    sink: Arc<dyn CheckpointSink>,
    clock: Arc<dyn Clock>,
    every_events: u64,
    every: Duration,
    state: Mutex<Head>,
    /// One write at a time, so checkpoints reach the sink in `seq` order.
    writing: tokio::sync::Mutex<()>,
}

/// The chain head known and what was written of it.
#[derive(Debug, Default)]
struct Head {
    /// The highest sealed event committed through this engine: (seq, hash).
    head: Option<(u64, String)>,
    /// The seq of the last checkpoint written (0: none).
    written: u64,
    /// Events committed since the last checkpoint written.
    since: u64,
}

impl Checkpoints {
    pub(crate) fn new(config: CheckpointConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            writer: Arc::new(Writer {
                signer: config.signer,
                sink: config.sink,
                clock,
                every_events: config.every_events,
                every: config.every,
                state: Mutex::new(Head::default()),
                writing: tokio::sync::Mutex::new(()),
            }),
            kick: watch::channel(0).0,
            started: std::sync::Once::new(),
        }
    }

    /// The writer, for a last checkpoint at shutdown.
    pub(crate) fn writer(&self) -> Arc<Writer> {
        self.writer.clone()
    }

    /// The store sealed and committed `events`: moves the known head, and kicks the loop when
    /// `every_events` events were committed since the last checkpoint. Never waits.
    pub(crate) fn committed(&self, events: &[AuditEvent]) {
        let Some(last) = events.iter().max_by_key(|e| e.seq) else {
            return;
        };
        self.start();
        let due = {
            let mut state = self.writer.lock();
            if state.head.as_ref().is_none_or(|(seq, _)| last.seq > *seq) {
                state.head = Some((last.seq, last.hash.clone()));
            }
            state.since += events.len() as u64;
            state.since >= self.writer.every_events
        };
        if due {
            self.kick.send_modify(|k| *k = k.wrapping_add(1));
        }
    }

    /// Starts the loop (once, from the first commit or [`super::Engine::start`]).
    pub(crate) fn start(&self) {
        self.started.call_once(|| {
            tokio::spawn(run(self.writer.clone(), self.kick.subscribe()));
        });
    }
}

/// The loop: a checkpoint at each kick, and after `every` without one.
async fn run(writer: Arc<Writer>, mut kick: watch::Receiver<u64>) {
    loop {
        let due_only = tokio::select! {
            changed = kick.changed() => {
                if changed.is_err() {
                    // The engine is gone: a last checkpoint of what it committed.
                    writer.write_logged(false).await;
                    return;
                }
                true
            }
            () = tokio::time::sleep(writer.every) => false,
        };
        writer.write_logged(due_only).await;
    }
}

impl Writer {
    fn lock(&self) -> std::sync::MutexGuard<'_, Head> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes a checkpoint of the known head if it moved since the last one (and, when
    /// `due_only`, only if `every_events` events were committed since); a failure is logged
    /// (the next trigger tries again).
    pub(crate) async fn write_logged(&self, due_only: bool) {
        if let Err(e) = self.write(due_only).await {
            tracing::warn!(
                error = %e,
                key_id = self.signer.key_id(),
                sink = ?self.sink,
                "writing an audit checkpoint failed; the next trigger tries again"
            );
        }
    }

    /// Writes a checkpoint of the known head if it moved since the last one (and, when
    /// `due_only`, only if `every_events` events were committed since: a kick that a write
    /// already answered writes nothing): the checkpoint written, or `None`.
    ///
    /// # Errors
    /// The sink's error (the head stays unwritten, for the next trigger).
    pub(crate) async fn write(&self, due_only: bool) -> Result<Option<Checkpoint>> {
        let _one = self.writing.lock().await;
        let (seq, hash, counted) = {
            let state = self.lock();
            match &state.head {
                _ if due_only && state.since < self.every_events => return Ok(None),
                Some((seq, hash)) if *seq > state.written => (*seq, hash.clone(), state.since),
                _ => return Ok(None),
            }
        };
        let checkpoint = self.signer.sign(seq, &hash, self.clock.now());
        self.sink.write(&checkpoint).await?;
        let mut state = self.lock();
        state.written = state.written.max(seq);
        state.since = state.since.saturating_sub(counted);
        tracing::debug!(
            seq,
            key_id = self.signer.key_id(),
            "audit checkpoint written"
        );
        Ok(Some(checkpoint))
    }
}
