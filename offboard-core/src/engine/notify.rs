//! Notifiers, driven from the durable audit trail by the audit sink pumps, and the overdue
//! check that writes an audit note for each delegated task past its due date.
//!
//! A notifier is fed by a pump like any audit sink ([`super::sinks`]): [`NotifierSink`] is
//! the [`AuditSink`] that turns the events a pump hands it into [`Notification`]s. Its position
//! is durable: after each notification the notifier took, it stores the event's `seq` as the
//! store cursor `notify:<name>`, and [`AuditSink::position`] reads it back, so a restarted
//! engine's pump resumes after the last notification taken (the one in flight at a crash comes
//! again: at least once). A notifier with no cursor yet starts at the first event its engine
//! commits, as sinks without a position do.
//!
//! Overdue delegated tasks are found by time, not by an event: [`overdue_loop`] looks every
//! `check_every` at the open runs' delegated tasks whose due date plus the grace passed, and
//! appends one [`OVERDUE_NOTE`] audit note per task, recorded in the store (record
//! `offboard.notify` / `overdue:<task>`) after the note is appended, so a crash between the
//! two writes a second note (same notification id), never none. The notes reach every notifier
//! through its pump like any other event.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Mutex;

use super::EngineShared;
use crate::audit::{AuditEvent, AuditKind, AuditSink};
use crate::error::Result;
use crate::notify::{Notification, Notifier, OVERDUE_NOTE, OverdueTask};
use crate::run::{RunId, RunState, TaskState};
use crate::source::Cursor;
use crate::store::{AuditQuery, RunQuery, Store};

/// The record namespace of the overdue check.
pub(crate) const RECORDS: &str = "offboard.notify";

/// How overdue delegated tasks are found (see [`crate::EngineBuilder::overdue_after`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct OverdueConfig {
    /// Grace after a delegated task's due date.
    pub(crate) after: Duration,
    /// How often the open runs are looked at.
    pub(crate) check_every: Duration,
}

impl Default for OverdueConfig {
    fn default() -> Self {
        Self {
            after: Duration::from_secs(3 * 24 * 3600),
            check_every: Duration::from_secs(600),
        }
    }
}

/// The store cursor holding a notifier's position.
pub(crate) fn cursor_key(notifier: &dyn Notifier) -> String {
    format!("notify:{}", notifier.name())
}

/// A notifier as an audit sink of the pumps, with a durable position.
#[derive(Debug)]
pub(crate) struct NotifierSink {
    notifier: Arc<dyn Notifier>,
    store: Arc<dyn Store>,
    cursor: String,
    /// The position stored last (`None`: not read yet).
    stored: Mutex<Option<u64>>,
}

impl NotifierSink {
    pub(crate) fn new(notifier: Arc<dyn Notifier>, store: Arc<dyn Store>) -> Self {
        Self {
            cursor: cursor_key(&*notifier),
            notifier,
            store,
            stored: Mutex::new(None),
        }
    }

    async fn stored(&self) -> Result<Option<u64>> {
        let c = self.store.cursor(&self.cursor).await?;
        Ok(c.and_then(|c| c.0.parse().ok()))
    }

    /// Stores `seq` as the notifier's position.
    async fn put(&self, stored: &mut Option<u64>, seq: u64) -> Result<()> {
        self.store
            .put_cursor(&self.cursor, &Cursor(seq.to_string()))
            .await?;
        *stored = Some(seq);
        Ok(())
    }

    /// The run's state before the event `seq` (its last transition before it), `None` when
    /// none came before.
    async fn state_before(&self, run: RunId, seq: u64) -> Result<Option<RunState>> {
        let events = self
            .store
            .audit(AuditQuery {
                run: Some(run),
                after_seq: 0,
                limit: 0,
            })
            .await?;
        Ok(events
            .iter()
            .take_while(|e| e.seq < seq)
            .filter_map(|e| match &e.kind {
                AuditKind::Transition { run_state, .. } => Some(*run_state),
                _ => None,
            })
            .last())
    }

    /// The notification `event` causes, if any.
    async fn notification(&self, event: &AuditEvent) -> Result<Option<Notification>> {
        let Some(run_id) = event.run else {
            return Ok(None);
        };
        let terminal = matches!(&event.kind, AuditKind::Transition { run_state, .. } if run_state.is_terminal());
        let before = if terminal {
            self.state_before(run_id, event.seq).await?
        } else {
            None
        };
        let Some(kind) = Notification::kind_of(event, before) else {
            return Ok(None);
        };
        let Some(run) = self.store.load_run(run_id).await? else {
            return Ok(None);
        };
        Ok(Notification::from_event(event, kind, &run))
    }
}

#[async_trait]
impl AuditSink for NotifierSink {
    async fn record(&self, events: &[AuditEvent]) -> Result<()> {
        let mut stored = self.stored.lock().await;
        if stored.is_none() {
            *stored = Some(self.stored().await?.unwrap_or(0));
        }
        let from = stored.unwrap_or(0);
        let mut last = from;
        for event in events.iter().filter(|e| e.seq > from) {
            if let Some(n) = self.notification(event).await? {
                self.notifier.notify(&n).await?;
                tracing::debug!(notifier = %self.cursor, id = %n.id, "notified");
                self.put(&mut stored, event.seq).await?;
            }
            last = event.seq;
        }
        if Some(last) != *stored {
            self.put(&mut stored, last).await?;
        }
        Ok(())
    }

    async fn position(&self) -> Result<Option<u64>> {
        let p = self.stored().await?;
        *self.stored.lock().await = Some(p.unwrap_or(0));
        Ok(p)
    }
}

/// Appends an [`OVERDUE_NOTE`] for each delegated task of an open run whose due date plus
/// the grace passed and that has none yet. Returns how many it appended.
pub(crate) async fn check_overdue(shared: &EngineShared, after: Duration) -> Result<usize> {
    let now = shared.clock.now();
    let grace = chrono::Duration::from_std(after).unwrap_or(chrono::Duration::MAX);
    let open = shared
        .store
        .list_runs(RunQuery {
            open_only: true,
            ..RunQuery::default()
        })
        .await?;
    let mut appended = 0;
    for summary in open {
        let Some(run) = shared.store.load_run(summary.id).await? else {
            continue;
        };
        for task in &run.tasks {
            if !matches!(task.state, TaskState::Delegated { .. })
                || task
                    .not_before
                    .checked_add_signed(grace)
                    .is_none_or(|d| d > now)
            {
                continue;
            }
            let key = format!("overdue:{}", task.id);
            if shared.store.get_record(RECORDS, &key).await?.is_some() {
                continue;
            }
            let Some(facts) = OverdueTask::of(&run, task.id) else {
                continue;
            };
            let data = serde_json::to_value(&facts).unwrap_or_default();
            let note = AuditEvent::new(
                now,
                shared.worker_id.clone(),
                AuditKind::Note {
                    name: OVERDUE_NOTE.to_owned(),
                    data: data.clone(),
                },
            )
            .with_run(run.id)
            .with_task(task.id, task.app.clone());
            shared.append_audit(note).await?;
            shared
                .store
                .insert_record(
                    RECORDS,
                    &key,
                    &serde_json::json!({ "noted_at": now, "run": run.id }),
                )
                .await?;
            appended += 1;
        }
    }
    Ok(appended)
}

/// Runs [`check_overdue`] every `check_every` until `stop`.
pub(crate) async fn overdue_loop(
    shared: Arc<EngineShared>,
    config: OverdueConfig,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = check_overdue(&shared, config.after).await {
            tracing::warn!(error = %e, "looking for overdue delegated tasks failed; trying again");
        }
        tokio::select! {
            _ = tokio::time::sleep(config.check_every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
