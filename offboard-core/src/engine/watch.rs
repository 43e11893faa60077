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
//! - past → current (the person returned: a rehire, or flapping inside the debounce window) is
//!   reported and audited, and the person's open run is cancelled: every task that has not
//!   started, later stages included, never runs. Anything already done is never rolled back
//!   automatically: the report and the audit event list it, and rollback is offered.
//! - a person first seen as past (an initial sync of old leavers) is recorded, never triggered.
//! - a person who merely vanished from a feed ([`PersonRecord::is_vanished`]) never gets
//!   critical actions confirmed automatically, whatever [`LifecycleRules::auto_confirm_critical`]
//!   says: an admin confirms them.
//! - a permanent error planning one person (a policy their inventory cannot be planned with, a
//!   date beyond the calendar) parks that person: audited (`person_parked`) and reported, and
//!   the batch goes on.
//!
//! # Mass-departure circuit breaker
//!
//! A truncated export or an IdP outage that lists nobody would report everyone gone. Before a
//! batch is handled, the people it would turn past (current → past) are counted; over the
//! limits of [`LifecycleRules::departures`] (or the policy's `[departures]` table) the batch is
//! **held**: nothing of it is handled, no run starts, the cursor does not move, and an audit
//! event (`batch_held`) and an [`EngineEvent::BatchHeld`] name the source, the count and the
//! limit. Every poll reads the same batch again and holds it again (audited once per distinct
//! batch). [`Engine::release_hold`] lets the held batch through (audited with who); the release
//! covers those people only, so a later, different mass departure is held again. The share
//! limit counts the people the source reported current, kept per source since its first poll
//! (a source polled before this count existed has only the absolute limit).
//!
//! The people of one batch are handled concurrently (each person's records in order), so a
//! feed reporting many people gone at once has their runs planned and submitted together, in
//! shared commits. The cursor is persisted after each batch, after the batch's triggers: a
//! crash in between repeats the batch, and the repeat finds the open run (suppressed) instead
//! of losing the change.

use std::collections::{BTreeSet, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{FutureExt, StreamExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Confirmation, Engine, RunRequest};
use crate::audit::{AuditEvent, AuditKind};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Account, AccountRef, AccountStatus, AppId, Lifecycle, PersonId};
use crate::policy::DepartureLimits;
use crate::run::{Initiator, Outcome, RunId, RunState, TaskState};
use crate::source::{Cursor, PersonRecord, SourceOfTruth};
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleRules {
    /// The company's email domains; a person outside them is external and never triggers.
    /// Empty: everyone is internal.
    pub domains: Vec<String>,
    /// Delay between a source saying "gone" and the run taking effect; a return within it
    /// cancels the run before anything ran.
    pub debounce: Duration,
    /// Whether runs started by a source confirm their critical actions themselves (audited as
    /// confirmed by `source:<name>`), where the policy's approvals allow that. Otherwise the
    /// run starts with its critical actions held until [`Engine::confirm`]. People who merely
    /// vanished from a feed are never confirmed automatically.
    pub auto_confirm_critical: bool,
    /// The mass-departure circuit breaker's limits per source batch (default 25 people and
    /// 5 %); a policy's `[departures]` table overrides them.
    pub departures: DepartureLimits,
}

impl Default for LifecycleRules {
    /// Everyone internal, no debounce, no automatic confirmation, the default
    /// [`DepartureLimits`].
    fn default() -> Self {
        Self {
            domains: Vec::new(),
            debounce: Duration::ZERO,
            auto_confirm_critical: false,
            departures: DepartureLimits::default(),
        }
    }
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
    /// Runs cancelled because the person came back: their tasks not started yet never run
    /// (what ran is kept, never rolled back automatically).
    pub cancelled: Vec<RunId>,
    /// People outside the configured domains (never triggered).
    pub external: usize,
    /// Runs started (also in `started`) whose critical actions are held for a confirmation:
    /// the person and the digest [`Engine::confirm`] must quote. Everything else in them runs.
    pub needs_confirmation: Vec<(PersonId, String)>,
    /// Triggers refused because the person is protected.
    pub protected: Vec<PersonId>,
    /// People parked by a permanent error planning or submitting their run, with the error.
    #[serde(default)]
    pub parked: Vec<(PersonId, String)>,
    /// Batches held by the mass-departure circuit breaker (see [`Engine::release_hold`]).
    #[serde(default)]
    pub held: Vec<Hold>,
}

/// A batch held by the mass-departure circuit breaker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// The source.
    pub source: String,
    /// People the batch turns past.
    pub count: usize,
    /// People the source knew as current before the batch (`None`: not counted).
    pub known: Option<usize>,
    /// The most people a batch of this source may turn past.
    pub limit: usize,
    /// Who the batch turns past, in id order.
    pub people: Vec<PersonId>,
    /// SHA-256 (hex, 16 digits) of `people`: names the batch in events.
    pub fingerprint: String,
    /// When it was first held.
    pub held_at: DateTime<Utc>,
    /// Who released it, if anyone has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_by: Option<String>,
    /// When it was released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_at: Option<DateTime<Utc>>,
}

/// Something the engine did on its own that a host should know about (see
/// [`Engine::events`]). Each is audited too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EngineEvent {
    /// A source's batch was held by the mass-departure circuit breaker.
    BatchHeld {
        /// The source.
        source: String,
        /// People the batch turns past.
        count: usize,
        /// The limit it exceeds.
        limit: usize,
        /// People the source knew as current (`None`: not counted).
        known: Option<usize>,
        /// Names the batch ([`Hold::fingerprint`]).
        fingerprint: String,
    },
    /// A held batch was released by `by`; the next poll lets it through.
    HoldReleased {
        /// The source.
        source: String,
        /// Who released it.
        by: String,
        /// People the batch turns past.
        count: usize,
        /// Names the batch.
        fingerprint: String,
    },
    /// A person came back (past → current): their open runs were cancelled; what already ran
    /// was left as it is (rollback is offered, never automatic).
    PersonReturned {
        /// The source.
        source: String,
        /// The person.
        person: PersonId,
        /// Runs cancelled.
        cancelled_runs: Vec<RunId>,
        /// Tasks that had changed something and were not undone (labels).
        not_rolled_back: Vec<String>,
    },
    /// A person's trigger failed permanently and was set aside; the batch went on.
    PersonParked {
        /// The source.
        source: String,
        /// The person.
        person: PersonId,
        /// Why.
        error: String,
    },
    /// A poll of a source failed or panicked; the next poll runs at its interval.
    PollFailed {
        /// The source.
        source: String,
        /// The error or panic message.
        error: String,
    },
    /// A worker's claim or task panicked; the worker goes on, and a task that panicked is
    /// claimed again once its lease expires.
    WorkerPanicked {
        /// The panic message.
        error: String,
    },
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
        self.parked.extend(other.parked);
        self.held.extend(other.held);
    }
}

/// What the engine keeps about a source across polls: how many people it reports current
/// (for the share limit), and whether a batch of it is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Census {
    /// People whose last verdict from the source is current.
    known: usize,
    /// Counted since the source's first poll (otherwise `known` is not the whole source).
    complete: bool,
    /// A batch is held (see [`Engine::hold`]).
    #[serde(default)]
    held: bool,
}

/// Key under which the engine keeps its own state about `source` in the cursor table.
fn state_key(kind: &str, source: &str) -> String {
    format!("offboard:{kind}:{source}")
}

/// One person's records in a batch, with the source's verdict on them before the batch.
struct PersonBatch {
    records: Vec<PersonRecord>,
    known: Option<Account>,
}

/// A batch read before it is handled: its people, who it turns past, and how it changes the
/// source's count of current people.
struct Survey {
    people: Vec<PersonBatch>,
    turning: Vec<PersonId>,
    delta: isize,
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

    /// Polls one source until it reports no more changes or a batch is held by the
    /// mass-departure circuit breaker (see [`Engine::release_hold`]), persisting its cursor
    /// after each batch handled.
    ///
    /// # Errors
    /// Source or store errors.
    pub async fn poll_source(&self, source: &dyn SourceOfTruth) -> Result<WatchReport> {
        self.poll_source_pages(source, usize::MAX).await
    }

    /// Polls one source for at most `max_pages` batches, persisting its cursor after each
    /// batch handled; stops at a held batch (listed in [`WatchReport::held`], cursor kept).
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
            let census_key = state_key("census", &name);
            let stored: Option<Census> = match store.cursor(&census_key).await? {
                Some(c) => Cursor::decode(Some(&c), &census_key)?,
                None => None,
            };
            let mut census = stored.unwrap_or(Census {
                known: 0,
                complete: cursor.is_none(),
                held: false,
            });
            let survey = self.survey(&name, batch.changes).await?;
            if let Some(hold) = self.breaker(&name, &census, &survey).await? {
                if !census.held {
                    census.held = true;
                    store
                        .put_cursor(&census_key, &Cursor::encode(&Some(census)))
                        .await?;
                }
                report.held.push(hold);
                break;
            }
            report.merge(self.process_batch(&name, survey.people).await?);
            census.known = census.known.saturating_add_signed(survey.delta);
            if census.held {
                // Let through (released, or no longer over the limits): the hold is over.
                store
                    .put_cursor(&state_key("hold", &name), &Cursor::encode(&None::<Hold>))
                    .await?;
                census.held = false;
            }
            if stored != Some(census) {
                store
                    .put_cursor(&census_key, &Cursor::encode(&Some(census)))
                    .await?;
            }
            store.put_cursor(&name, &batch.next).await?;
            if !batch.more {
                break;
            }
        }
        Ok(report)
    }

    /// The batch held for `source`, if any (released or not: a released one is let through by
    /// the next poll).
    ///
    /// # Errors
    /// Store errors.
    pub async fn hold(&self, source: &str) -> Result<Option<Hold>> {
        let key = state_key("hold", source);
        let stored = self.inner.store.cursor(&key).await?;
        Cursor::decode::<Option<Hold>>(stored.as_ref(), &key)
    }

    /// Lets the batch the mass-departure circuit breaker holds for `source` through on the next
    /// poll, recorded as released by `by` (audit event `hold_released`,
    /// [`EngineEvent::HoldReleased`]).
    ///
    /// # Behavior
    /// The release covers the people of the held batch only: a batch turning past anyone else
    /// over the limits is held again. Releasing a released hold changes nothing.
    ///
    /// # Errors
    /// `NotFound` when nothing is held for `source`; `InvalidInput` for an empty `by`; store
    /// errors.
    pub async fn release_hold(&self, source: &str, by: &str) -> Result<Hold> {
        if by.trim().is_empty() {
            return Err(Error::invalid_input(
                "a release names who releases the hold (`by`)",
            ));
        }
        let Some(mut hold) = self.hold(source).await? else {
            return Err(Error::not_found(format!("no batch of {source} is held"))
                .with_context("source", source));
        };
        if hold.released_by.is_some() {
            return Ok(hold);
        }
        let now = self.inner.clock.now();
        hold.released_by = Some(by.to_owned());
        hold.released_at = Some(now);
        self.inner
            .store
            .put_cursor(&state_key("hold", source), &Cursor::encode(&Some(&hold)))
            .await?;
        let event = AuditEvent::new(
            now,
            by.to_owned(),
            AuditKind::Note {
                name: "hold_released".into(),
                data: serde_json::json!({
                    "source": source,
                    "count": hold.count,
                    "limit": hold.limit,
                    "fingerprint": hold.fingerprint,
                    "people": hold.people,
                }),
            },
        );
        self.inner.append_audit(event).await?;
        self.inner.emit(EngineEvent::HoldReleased {
            source: source.to_owned(),
            by: by.to_owned(),
            count: hold.count,
            fingerprint: hold.fingerprint.clone(),
        });
        Ok(hold)
    }

    /// Reads the source's verdict on each person of the batch (up to [`PEOPLE_AT_ONCE`] at a
    /// time) and counts who the batch turns past.
    async fn survey(&self, source: &str, records: Vec<PersonRecord>) -> Result<Survey> {
        let mut people: Vec<Vec<PersonRecord>> = Vec::new();
        let mut index: HashMap<PersonId, usize> = HashMap::new();
        for record in records {
            let i = *index.entry(record.person.id.clone()).or_insert_with(|| {
                people.push(Vec::new());
                people.len() - 1
            });
            people[i].push(record);
        }
        let app = source_app(source);
        let ids: Vec<PersonId> = people.iter().map(|r| r[0].person.id.clone()).collect();
        let known: Vec<Result<Option<Account>>> = futures::stream::iter(ids)
            .map(|id| {
                let app = &app;
                async move {
                    Ok(self
                        .inner
                        .store
                        .accounts(&id)
                        .await?
                        .into_iter()
                        .find(|a| a.account.app == *app))
                }
            })
            .buffered(PEOPLE_AT_ONCE)
            .collect()
            .await;
        let mut survey = Survey {
            people: Vec::with_capacity(people.len()),
            turning: Vec::new(),
            delta: 0,
        };
        for (records, known) in people.into_iter().zip(known) {
            let known = known?;
            let was_current = known
                .as_ref()
                .is_some_and(|k| k.account.status.may_have_access());
            let mut current = was_current;
            let mut turns = false;
            for record in &records {
                match self.classify(record, known.as_ref()) {
                    Lifecycle::External => {}
                    Lifecycle::Past => {
                        turns |= current;
                        current = false;
                    }
                    Lifecycle::Current => current = true,
                }
            }
            if turns && was_current {
                survey.turning.push(records[0].person.id.clone());
            }
            survey.delta += isize::from(current) - isize::from(was_current);
            survey.people.push(PersonBatch { records, known });
        }
        survey.turning.sort();
        Ok(survey)
    }

    /// How the source classifies `record`, with the address the engine knew for a person
    /// reported by id only.
    fn classify(&self, record: &PersonRecord, known: Option<&Account>) -> Lifecycle {
        match known {
            Some(k) if record.person.email.is_empty() => {
                let mut filled = record.clone();
                filled.person.email = k.account.login.clone();
                self.inner.lifecycle.classify(&filled)
            }
            _ => self.inner.lifecycle.classify(record),
        }
    }

    /// The circuit breaker's verdict on a surveyed batch: `None` lets it through (under the
    /// limits, or released), otherwise the hold.
    async fn breaker(
        &self,
        source: &str,
        census: &Census,
        survey: &Survey,
    ) -> Result<Option<Hold>> {
        let known = census.complete.then_some(census.known);
        let limit = self.inner.lifecycle.departures.limit(known);
        if survey.turning.len() <= limit {
            return Ok(None);
        }
        let fingerprint = {
            let mut h = Sha256::new();
            for id in &survey.turning {
                h.update(id.as_str().as_bytes());
                h.update([0]);
            }
            hex::encode(&h.finalize()[..8])
        };
        match self.hold(source).await? {
            Some(hold)
                if hold.released_by.is_some() && {
                    let released: BTreeSet<&PersonId> = hold.people.iter().collect();
                    survey.turning.iter().all(|p| released.contains(p))
                } =>
            {
                return Ok(None);
            }
            Some(hold) if hold.released_by.is_none() && hold.fingerprint == fingerprint => {
                return Ok(Some(hold));
            }
            _ => {}
        }
        let now = self.inner.clock.now();
        let hold = Hold {
            source: source.to_owned(),
            count: survey.turning.len(),
            known,
            limit,
            people: survey.turning.clone(),
            fingerprint,
            held_at: now,
            released_by: None,
            released_at: None,
        };
        self.inner
            .store
            .put_cursor(&state_key("hold", source), &Cursor::encode(&Some(&hold)))
            .await?;
        tracing::warn!(
            source,
            count = hold.count,
            limit,
            "a batch turning too many people past at once is held until released"
        );
        self.note(
            now,
            source,
            "batch_held",
            serde_json::json!({
                "source": source,
                "count": hold.count,
                "limit": limit,
                "known": known,
                "fingerprint": hold.fingerprint,
                "people": hold.people,
            }),
        )
        .await?;
        self.inner.emit(EngineEvent::BatchHeld {
            source: source.to_owned(),
            count: hold.count,
            limit,
            known,
            fingerprint: hold.fingerprint.clone(),
        });
        Ok(Some(hold))
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
    async fn process_batch(&self, source: &str, people: Vec<PersonBatch>) -> Result<WatchReport> {
        let failed = AtomicBool::new(false);
        let handled: Vec<(WatchReport, Result<()>)> = futures::stream::iter(people)
            .map(|PersonBatch { records, mut known }| async {
                let mut report = WatchReport::default();
                if failed.load(Ordering::Acquire) {
                    return (report, Ok(()));
                }
                for record in records {
                    report.records += 1;
                    match self
                        .process_record(source, record, known, &mut report)
                        .await
                    {
                        Ok(verdict) => known = verdict,
                        Err(e) => {
                            failed.store(true, Ordering::Release);
                            return (report, Err(e));
                        }
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

    /// Handles one record given the source's verdict on the person before it (`known`);
    /// returns the verdict after it.
    async fn process_record(
        &self,
        source: &str,
        mut record: PersonRecord,
        known: Option<Account>,
        report: &mut WatchReport,
    ) -> Result<Option<Account>> {
        let inner = &self.inner;
        let now = inner.clock.now();
        let app = source_app(source);
        let vanished = record.is_vanished();
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
        let previous = known.as_ref().map(|a| a.account.status);
        let lifecycle = inner.lifecycle.classify(&record);
        let person = record.person.clone();
        if lifecycle == Lifecycle::External {
            report.external += 1;
            return Ok(known);
        }
        let status = match lifecycle {
            Lifecycle::Past => AccountStatus::Deprovisioned,
            _ => AccountStatus::Active,
        };
        match (previous, lifecycle) {
            (Some(prev), Lifecycle::Past) if prev.may_have_access() => {
                self.trigger(source, record, vanished, now, report).await?;
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
            .upsert_accounts(&person.id, std::slice::from_ref(&verdict), now)
            .await?;
        Ok(Some(Account {
            person: person.id,
            account: verdict,
            first_seen: known.map_or(now, |k| k.first_seen),
            last_seen: now,
        }))
    }

    async fn trigger(
        &self,
        source: &str,
        record: PersonRecord,
        vanished: bool,
        now: DateTime<Utc>,
        report: &mut WatchReport,
    ) -> Result<()> {
        let inner = &self.inner;
        let person = record.person;
        let debounce = chrono::Duration::from_std(inner.lifecycle.debounce).ok();
        let start = record.termination_at.unwrap_or(now).max(now);
        let Some(effective) = debounce.and_then(|d| start.checked_add_signed(d)) else {
            let e = Error::invalid_input(format!(
                "termination_at {start} plus the debounce {:?} is beyond the calendar",
                inner.lifecycle.debounce
            ))
            .with_context("field", "termination_at");
            return self.park(source, &person.id, &e, now, report).await;
        };
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
            Err(e) if !e.is_retryable() => {
                return self.park(source, &person.id, &e, now, report).await;
            }
            Err(e) => return Err(e),
        };
        let actor = format!("source:{source}");
        // Someone who merely vanished from a feed may be an outage's or a truncation's victim:
        // an admin confirms their critical actions.
        let confirmation = (plan.has_critical()
            && inner.lifecycle.auto_confirm_critical
            && !vanished
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
            Err(e) if !e.is_retryable() => {
                return self.park(source, &person.id, &e, now, report).await;
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Sets a person whose trigger failed permanently aside (audited, reported); the batch
    /// goes on.
    async fn park(
        &self,
        source: &str,
        person: &PersonId,
        error: &Error,
        now: DateTime<Utc>,
        report: &mut WatchReport,
    ) -> Result<()> {
        tracing::warn!(source, %person, %error, "a trigger failed permanently; the person is parked");
        self.note(
            now,
            source,
            "person_parked",
            serde_json::json!({ "person": person, "error": error.to_string(), "kind": error.kind() }),
        )
        .await?;
        self.inner.emit(EngineEvent::PersonParked {
            source: source.to_owned(),
            person: person.clone(),
            error: error.to_string(),
        });
        report.parked.push((person.clone(), error.to_string()));
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
        let mut kept = Vec::new();
        for summary in open {
            let run = self.status(summary.id).await?;
            if run.state == RunState::Planned {
                continue;
            }
            // Every task not started yet, later stages included, is cancelled; running ones
            // finish and are recorded; nothing done is undone.
            match self.cancel(run.id, &format!("source:{source}")).await {
                Ok(_) => cancelled.push(run.id),
                // It ended meanwhile.
                Err(e) if e.kind() == ErrorKind::Conflict => {}
                Err(e) => return Err(e),
            }
            kept.extend(
                run.tasks
                    .iter()
                    .filter(|t| {
                        matches!(
                            t.state,
                            TaskState::Completed {
                                outcome: Outcome::Done,
                                ..
                            }
                        )
                    })
                    .map(|t| t.label()),
            );
        }
        report.cancelled.extend(cancelled.iter().copied());
        self.note(
            now,
            source,
            "person_returned",
            serde_json::json!({
                "person": person,
                "cancelled_runs": cancelled,
                "not_rolled_back": kept,
            }),
        )
        .await?;
        self.inner.emit(EngineEvent::PersonReturned {
            source: source.to_owned(),
            person: person.clone(),
            cancelled_runs: cancelled,
            not_rolled_back: kept,
        });
        Ok(())
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
        self.inner.append_audit(event).await
    }
}

/// The message of a caught panic.
pub(super) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// Polls one source forever at its interval (until `stop` flips). A poll that fails or panics
/// is reported (tracing, [`EngineEvent::PollFailed`]) and audited (`poll_failed`, once per
/// distinct failure in a row); the next poll runs at the interval.
pub(super) async fn watch_loop(
    engine: Engine,
    watched: WatchedSource,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let name = watched.source.name().to_owned();
    let mut last_failure: Option<String> = None;
    loop {
        let polled = AssertUnwindSafe(engine.poll_source(watched.source.as_ref()))
            .catch_unwind()
            .await;
        let failure = match polled {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(panic) => Some(format!("the poll panicked: {}", panic_message(&*panic))),
        };
        if let Some(error) = &failure {
            tracing::warn!(source = %name, %error, "polling the source of truth failed; will retry");
            engine.inner.emit(EngineEvent::PollFailed {
                source: name.clone(),
                error: error.clone(),
            });
            if last_failure.as_ref() != Some(error) {
                let at = engine.inner.clock.now();
                let data = serde_json::json!({ "source": name, "error": error });
                if let Err(e) = engine.note(at, &name, "poll_failed", data).await {
                    tracing::warn!(source = %name, error = %e, "auditing a failed poll failed");
                }
            }
        }
        last_failure = failure;
        tokio::select! {
            _ = tokio::time::sleep(watched.every) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}
