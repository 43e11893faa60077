//! The retention policy at work ([`Retention`], [`EngineBuilder::retention`]): snapshot
//! payloads are erased once their run is past the rollback window, every `every` while the
//! engine's workers run, or when the host asks ([`Engine::erase_expired_snapshots`]); a
//! person is erased on request ([`Engine::erase_person`]), refused inside the window. Each
//! erasure is recorded in the audit trail with counts only (no personal data).
//!
//! [`EngineBuilder::retention`]: super::EngineBuilder::retention

use std::time::Duration;

use crate::audit::{AuditEvent, AuditKind};
use crate::error::Result;
use crate::model::PersonId;
use crate::store::{ErasureReport, Retention};

use super::{Engine, EngineShared};

/// The retention policy and how often the engine applies it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RetentionConfig {
    pub(crate) policy: Retention,
    /// How often the workers erase expired snapshots (`None`: only when asked).
    pub(crate) every: Option<Duration>,
}

impl EngineShared {
    /// Erases the snapshots past the rollback window and records it: the count.
    async fn erase_expired_snapshots(&self) -> Result<u64> {
        let now = self.clock.now();
        let cutoff = self.retention.policy.cutoff(now)?;
        let erased = self.store.erase_snapshots(cutoff).await?;
        if erased > 0 {
            let event = AuditEvent::new(
                now,
                self.worker_id.clone(),
                AuditKind::Note {
                    name: "snapshots_erased".into(),
                    data: serde_json::json!({
                        "count": erased,
                        "finished_before_unix": cutoff.timestamp(),
                    }),
                },
            );
            self.append_audit(event).await?;
        }
        Ok(erased)
    }
}

impl Engine {
    /// Erases the snapshot payloads of runs finished before the rollback window
    /// ([`Retention::cutoff`] of the engine's clock; see [`crate::Store::erase_snapshots`]) and
    /// records a `snapshots_erased` note (the count) when there were any: how many.
    ///
    /// # Errors
    /// The store's error; nothing is recorded then.
    pub async fn erase_expired_snapshots(&self) -> Result<u64> {
        self.inner.erase_expired_snapshots().await
    }

    /// Erases a person's personal data ([`crate::Store::erase_person`] at the rollback
    /// window's cutoff) and records a `person_erased` note by `by` with the counts and the
    /// pseudonym (nothing that names the person).
    ///
    /// # Errors
    /// `Conflict` while a run of theirs is open or inside the rollback window (nothing is
    /// erased); the store's error.
    pub async fn erase_person(&self, person: &PersonId, by: &str) -> Result<ErasureReport> {
        let now = self.inner.clock.now();
        let cutoff = self.inner.retention.policy.cutoff(now)?;
        let report = self.inner.store.erase_person(person, cutoff).await?;
        if !report.already_done() {
            let event = AuditEvent::new(
                now,
                by.to_owned(),
                AuditKind::Note {
                    name: "person_erased".into(),
                    data: serde_json::json!({
                        "pseudonym": report.pseudonym,
                        "runs": report.runs,
                        "events": report.events,
                        "snapshots": report.snapshots,
                        "accounts": report.accounts,
                        "records": report.records,
                    }),
                },
            );
            self.inner.append_audit(event).await?;
        }
        Ok(report)
    }
}

/// Erases expired snapshots every `every` until `stop` (a failure is logged and tried again
/// at the next round).
pub(super) async fn retention_loop(
    inner: std::sync::Arc<EngineShared>,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = inner.erase_expired_snapshots().await {
            tracing::warn!(error = %e, "erasing expired snapshots failed; trying again later");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use crate::audit::AuditKind;
    use crate::connector::Snapshot;
    use crate::engine::Engine;
    use crate::memory::MemoryStore;
    use crate::policy::Policy;
    use crate::run::RunState;
    use crate::store::{AuditQuery, Retention, Store, conformance};

    /// A run finished `days_ago`, with a snapshot of its task.
    async fn finished(
        store: &MemoryStore,
        now: chrono::DateTime<chrono::Utc>,
        days_ago: i64,
    ) -> crate::run::Run {
        let mut run = conformance::sample_run(&[None]);
        run.state = RunState::Completed;
        run.finished_at = Some(now - chrono::Duration::days(days_ago));
        store.create_run(&run, Vec::new()).await.unwrap();
        let snapshot = Snapshot::new(
            crate::model::AppId::new("okta"),
            crate::action::ActionName::from_static("okta.suspend"),
            "00u1",
            serde_json::json!({"groups": ["g"]}),
        );
        assert!(
            store
                .put_snapshot(run.tasks[0].id, &snapshot)
                .await
                .unwrap()
        );
        run
    }

    /// An engine on `store` with a 30-day rollback window, erasing snapshots `every`.
    fn engine(store: &Arc<MemoryStore>, every: Option<Duration>) -> Engine {
        Engine::builder()
            .store(store.clone())
            .policy(Policy::from_toml("unknown_apps = \"delegate_email\"").unwrap())
            .delegate(Arc::new(super::super::tests::Unused))
            .retention(Retention::new(Duration::from_secs(30 * 86_400)), every)
            .build()
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn the_workers_erase_snapshots_past_the_rollback_window() {
        let store = Arc::new(MemoryStore::new());
        let engine = engine(&store, Some(Duration::from_secs(3_600)));
        let now = engine.inner.clock.now();
        let old = finished(&store, now, 31).await;
        // Inside the window now, past it in two days.
        let recent = finished(&store, now + chrono::Duration::days(2), 30).await;
        let workers = engine.start();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(store.snapshot(old.tasks[0].id).await.unwrap().is_none());
        assert!(store.snapshot(recent.tasks[0].id).await.unwrap().is_some());
        tokio::time::sleep(Duration::from_secs(2 * 86_400 + 3_600)).await;
        assert!(store.snapshot(recent.tasks[0].id).await.unwrap().is_none());
        workers.shutdown().await;
        let notes: Vec<_> = store
            .audit(AuditQuery::all())
            .await
            .unwrap()
            .into_iter()
            .filter_map(|e| match e.kind {
                AuditKind::Note { name, data } if name == "snapshots_erased" => {
                    Some(data["count"].clone())
                }
                _ => None,
            })
            .collect();
        assert_eq!(notes, [serde_json::json!(1), serde_json::json!(1)]);
    }

    #[tokio::test(start_paused = true)]
    async fn erase_person_goes_by_the_rollback_window_and_is_recorded() {
        let store = Arc::new(MemoryStore::new());
        let engine = engine(&store, None);
        let now = engine.inner.clock.now();
        let run = finished(&store, now, 29).await;
        let err = engine
            .erase_person(&run.person.id, "dpo@example.com")
            .await
            .unwrap_err();
        assert_eq!(err.kind(), crate::error::ErrorKind::Conflict);
        assert!(store.snapshot(run.tasks[0].id).await.unwrap().is_some());
        tokio::time::sleep(Duration::from_secs(2 * 86_400)).await;
        let report = engine
            .erase_person(&run.person.id, "dpo@example.com")
            .await
            .unwrap();
        assert_eq!((report.runs, report.snapshots), (1, 1));
        let last = store.audit(AuditQuery::all()).await.unwrap().pop().unwrap();
        assert_eq!(last.actor, "dpo@example.com");
        assert!(matches!(&last.kind, AuditKind::Note { name, .. } if name == "person_erased"));
        let text = serde_json::to_string(&last).unwrap();
        assert!(!text.contains(run.person.id.as_str()) && !text.contains(&run.person.email));
        let again = engine
            .erase_person(&run.person.id, "dpo@example.com")
            .await
            .unwrap();
        assert!(again.already_done());
        assert_eq!(
            store.audit(AuditQuery::all()).await.unwrap().last(),
            Some(&last)
        );
    }
}
