//! Sources of truth → runs: the lifecycle loop.
//!
//! Each configured [`SourceOfTruth`] is polled at its own interval. Every record is classified
//! (external when its email domain is not one of the configured domains) and compared with
//! what the source said last time, which is kept in the account inventory under the app
//! `source.<name>` (status `Active` = current, `Deprovisioned` = past), so restarts lose nothing:
//!
//! - current → past starts a run (initiator: the source), effective at the termination date if
//!   later, plus the debounce delay; a second trigger while a run is open is suppressed and
//!   audited by [`Engine::submit`].
//! - past → current (the person returned) is reported and audited; an open run that has not
//!   started any task (still inside its debounce window) is cancelled, which is how flapping is
//!   absorbed. Anything already done is never rolled back automatically: rollback is offered.
//! - a person first seen as past (an initial sync of old leavers) is recorded, never triggered.
//!
//! The people of one batch are handled concurrently (each person's records in order), so a
//! feed reporting many people gone at once has their runs planned and submitted together, in
//! shared commits. The cursor is persisted after each batch, after the batch's triggers: a
//! crash in between repeats the batch, and the repeat finds the open run (suppressed) instead
//! of losing the change.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::{Confirmation, Engine, RunRequest};
use crate::audit::{AuditEvent, AuditKind};
use crate::error::{ErrorKind, Result};
use crate::model::{AccountRef, AccountStatus, AppId, Lifecycle, PersonId};
use crate::run::{Initiator, RunId, RunState};
use crate::source::{PersonRecord, SourceOfTruth};
use crate::store::RunQuery;

/// The attribute of a source's verdict that keeps the aliases it last reported (a JSON array).
const ALIASES: &str = "aliases";

/// People of one batch handled at once (see [`Engine::process_batch`]).
const PEOPLE_AT_ONCE: usize = 32;

/// The inventory app id under which a source's last verdict on a person is kept.
pub fn source_app(source: &str) -> AppId {
    AppId::new(format!("{SOURCE_APP_PREFIX}{source}"))
}

/// Prefix of inventory app ids that record sources of truth (not apps to offboard).
pub const SOURCE_APP_PREFIX: &str = "source.";

/// A source and how often to poll it.
#[derive(Debug, Clone)]
pub(crate) struct WatchedSource {
    pub(crate) source: Arc<dyn SourceOfTruth>,
    pub(crate) every: Duration,
}

/// Lifecycle rules for automatic triggers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LifecycleRules {
    /// The company's email domains; a person outside them is external and never triggers.
    /// Empty: everyone is internal.
    pub domains: Vec<String>,
    /// Delay between a source saying "gone" and the run taking effect; a return within it
    /// cancels the run before anything ran.
    pub debounce: Duration,
    /// Whether runs started by a source confirm their critical actions themselves (audited as
    /// confirmed by `source:<name>`), where the policy's approvals allow that. Otherwise the
    /// run starts with its critical actions held until [`Engine::confirm`].
    pub auto_confirm_critical: bool,
}

impl LifecycleRules {
    /// Classifies a record: external when its email domain is not configured.
    pub fn classify(&self, record: &PersonRecord) -> Lifecycle {
        if self.domains.is_empty() {
            return record.lifecycle;
        }
        let email = record.person.email.to_ascii_lowercase();
        let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
        if self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain)) {
            record.lifecycle
        } else {
            Lifecycle::External
        }
    }
}

/// What one pass over the sources did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchReport {
    /// Records read.
    pub records: usize,
    /// Runs started, per person.
    pub started: Vec<(PersonId, RunId)>,
    /// Triggers ignored because a run for the person is open.
    pub suppressed: Vec<PersonId>,
    /// People who came back (past → current).
    pub returned: Vec<PersonId>,
    /// Runs cancelled because the person came back before anything ran.
    pub cancelled: Vec<RunId>,
    /// People outside the configured domains (never triggered).
    pub external: usize,
    /// Runs started (also in `started`) whose critical actions are held for a confirmation:
    /// the person and the digest [`Engine::confirm`] must quote. Everything else in them runs.
    pub needs_confirmation: Vec<(PersonId, String)>,
    /// Triggers refused because the person is protected.
    pub protected: Vec<PersonId>,
}

impl WatchReport {
    fn merge(&mut self, other: WatchReport) {
        self.records += other.records;
        self.started.extend(other.started);
        self.suppressed.extend(other.suppressed);
        self.returned.extend(other.returned);
        self.cancelled.extend(other.cancelled);
        self.external += other.external;
        self.needs_confirmation.extend(other.needs_confirmation);
        self.protected.extend(other.protected);
    }
}

impl Engine {
    /// Polls every configured source once (draining each until it has no more changes).
    ///
    /// # Errors
    /// The first source or store error; sources polled before it keep their progress.
    pub async fn poll_sources(&self) -> Result<WatchReport> {
        let mut report = WatchReport::default();
        for w in self.inner.sources.clone() {
            report.merge(self.poll_source(w.source.as_ref()).await?);
        }
        Ok(report)
    }

    /// Polls one source until it reports no more changes, persisting its cursor after each
    /// batch.
    ///
    /// # Errors
    /// Source or store errors.
    pub async fn poll_source(&self, source: &dyn SourceOfTruth) -> Result<WatchReport> {
        self.poll_source_pages(source, usize::MAX).await
    }

    /// Polls one source for at most `max_pages` batches, persisting its cursor after each.
    ///
    /// # Errors
    /// Source or store errors; batches handled before the error keep their progress.
    pub async fn poll_source_pages(
        &self,
        source: &dyn SourceOfTruth,
        max_pages: usize,
    ) -> Result<WatchReport> {
        let store = &self.inner.store;
        let name = source.name().to_owned();
        let mut report = WatchReport::default();
        for _ in 0..max_pages {
            let cursor = store.cursor(&name).await?;
            let batch = source.changes(cursor.as_ref()).await?;
            report.merge(self.process_batch(&name, batch.changes).await?);
            store.put_cursor(&name, &batch.next).await?;
            if !batch.more {
                break;
            }
        }
        Ok(report)
    }

    /// Handles one batch's records: each person's records one after another, in the batch's
    /// order, and up to [`PEOPLE_AT_ONCE`] people at a time, so that their store writes share
    /// commits (a reduction in force reported by one feed is not planned and submitted one
    /// fsync at a time). The report lists people in the order the batch first names them.
    ///
    /// After a record fails, no further person is begun; those already begun finish. The
    /// first error in the batch's order is returned, and the cursor stays where it was: the
    /// batch is read again by the next poll, and repeating a record is harmless (a second
    /// trigger finds the open run and is suppressed; verdicts are upserts).
    async fn process_batch(&self, source: &str, records: Vec<PersonRecord>) -> Result<WatchReport> {
        let mut people: Vec<Vec<PersonRecord>> = Vec::new();
        let mut index: HashMap<PersonId, usize> = HashMap::new();
        for record in records {
            let i = *index.entry(record.person.id.clone()).or_insert_with(|| {
                people.push(Vec::new());
                people.len() - 1
            });
            people[i].push(record);
        }
        let failed = AtomicBool::new(false);
        let handled: Vec<(WatchReport, Result<()>)> = futures::stream::iter(people)
            .map(|records| async {
                let mut report = WatchReport::default();
                if failed.load(Ordering::Acquire) {
                    return (report, Ok(()));
                }
                for record in records {
                    report.records += 1;
                    if let Err(e) = self.process_record(source, record, &mut report).await {
                        failed.store(true, Ordering::Release);
                        return (report, Err(e));
                    }
                }
                (report, Ok(()))
            })
            .buffered(PEOPLE_AT_ONCE)
            .collect()
            .await;
        let mut report = WatchReport::default();
        for (person, outcome) in handled {
            outcome?;
            report.merge(person);
        }
        Ok(report)
    }

    async fn process_record(
        &self,
        source: &str,
        mut record: PersonRecord,
        report: &mut WatchReport,
    ) -> Result<()> {
        let inner = &self.inner;
        let now = inner.clock.now();
        let app = source_app(source);
        let known = inner
            .store
            .accounts(&record.person.id)
            .await?
            .into_iter()
            .find(|a| a.account.app == app);
        // A person reported only by id ("no longer found") keeps the address and aliases we
        // knew, so protection by alias still matches.
        if record.person.email.is_empty()
            && let Some(k) = &known
        {
            record.person.email = k.account.login.clone();
            record.person.aliases = k
                .account
                .attributes
                .get(ALIASES)
                .and_then(|a| serde_json::from_str(a).ok())
                .unwrap_or_default();
        }
        let previous = known.map(|a| a.account.status);
        let lifecycle = inner.lifecycle.classify(&record);
        let person = record.person.clone();
        if lifecycle == Lifecycle::External {
            report.external += 1;
            return Ok(());
        }
        let status = match lifecycle {
            Lifecycle::Past => AccountStatus::Deprovisioned,
            _ => AccountStatus::Active,
        };
        match (previous, lifecycle) {
            (Some(prev), Lifecycle::Past) if prev.may_have_access() => {
                self.trigger(source, record, now, report).await?;
            }
            (Some(AccountStatus::Deprovisioned), Lifecycle::Current) => {
                self.returned(source, &person.id, now, report).await?;
            }
            _ => {}
        }
        let mut verdict = AccountRef::new(app, person.id.as_str(), person.email.clone(), status);
        if !person.aliases.is_empty() {
            let aliases = serde_json::to_string(&person.aliases).unwrap_or_default();
            verdict.attributes.insert(ALIASES.into(), aliases);
        }
        inner
            .store
            .upsert_accounts(&person.id, &[verdict], now)
            .await
    }

    async fn trigger(
        &self,
        source: &str,
        record: PersonRecord,
        now: DateTime<Utc>,
        report: &mut WatchReport,
    ) -> Result<()> {
        let inner = &self.inner;
        let person = record.person;
        let debounce = chrono::Duration::from_std(inner.lifecycle.debounce).unwrap_or_default();
        let effective = record.termination_at.unwrap_or(now).max(now) + debounce;
        let request = RunRequest::new(
            person.clone(),
            Initiator::SourceOfTruth {
                source: source.to_owned(),
            },
        )
        .with_reason(format!("{source} reports {} gone", person.email))
        .effective_at(effective);
        let plan = match self.plan(request).await {
            Ok(plan) => plan,
            Err(e) if e.kind() == ErrorKind::Protected => {
                self.note(
                    now,
                    source,
                    "trigger_refused_protected",
                    serde_json::json!({ "person": person.id }),
                )
                .await?;
                report.protected.push(person.id);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let actor = format!("source:{source}");
        let confirmation = (plan.has_critical()
            && inner.lifecycle.auto_confirm_critical
            && inner.policy.approvals.check(&actor, &actor, None).is_ok())
        .then(|| Confirmation::of(&plan, actor));
        // Without a confirmation the critical actions are held; the rest runs now.
        let held = plan.has_critical() && confirmation.is_none();
        let digest = plan.digest.clone();
        match self.submit(plan, confirmation).await {
            Ok(run) => {
                if held {
                    self.note(
                        now,
                        source,
                        "trigger_held_for_confirmation",
                        serde_json::json!({ "person": person.id, "run": run, "digest": digest }),
                    )
                    .await?;
                    report.needs_confirmation.push((person.id.clone(), digest));
                }
                report.started.push((person.id, run));
            }
            Err(e) if e.kind() == ErrorKind::Conflict => report.suppressed.push(person.id),
            Err(e) => return Err(e),
        }
        Ok(())
    }

    async fn returned(
        &self,
        source: &str,
        person: &PersonId,
        now: DateTime<Utc>,
        report: &mut WatchReport,
    ) -> Result<()> {
        report.returned.push(person.clone());
        let open = self
            .inner
            .store
            .list_runs(RunQuery {
                person: Some(person.clone()),
                open_only: true,
                ..RunQuery::default()
            })
            .await?;
        let mut cancelled = Vec::new();
        for summary in open {
            let run = self.status(summary.id).await?;
            // Nothing started yet (tasks completed at submission found no account: no change).
            let untouched = run.tasks.iter().all(|t| t.attempts == 0);
            if untouched && run.state != RunState::Planned {
                self.cancel(run.id, &format!("source:{source}")).await?;
                cancelled.push(run.id);
            }
        }
        report.cancelled.extend(cancelled.iter().copied());
        self.note(
            now,
            source,
            "person_returned",
            serde_json::json!({ "person": person, "cancelled_runs": cancelled }),
        )
        .await
    }

    async fn note(
        &self,
        at: DateTime<Utc>,
        source: &str,
        name: &str,
        data: serde_json::Value,
    ) -> Result<()> {
        let event = AuditEvent::new(
            at,
            format!("source:{source}"),
            AuditKind::Note {
                name: name.to_owned(),
                data,
            },
        );
        let sealed = self.inner.store.append_audit(vec![event]).await?;
        self.inner.to_sinks(&sealed).await;
        Ok(())
    }
}

/// Polls one source forever at its interval (until `stop` flips).
pub(super) async fn watch_loop(
    engine: Engine,
    watched: WatchedSource,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = engine.poll_source(watched.source.as_ref()).await {
            tracing::warn!(source = watched.source.name(), error = %e, "polling the source of truth failed; will retry");
        }
        tokio::select! {
            _ = tokio::time::sleep(watched.every) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}
