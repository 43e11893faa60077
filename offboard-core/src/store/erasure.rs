//! Erasing a person's data from a store ([`Store::erase_person`](super::Store::erase_person))
//! and the retention policy that erases snapshot payloads after the rollback window
//! ([`Retention`], [`Store::erase_snapshots`](super::Store::erase_snapshots)): the pieces every
//! store shares.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::model::{Person, PersonId};
use crate::run::{Run, RunId, Task};

/// What [`Store::erase_person`](super::Store::erase_person) removed. Every count 0: there was
/// nothing left of the person (never offboarded here, or already erased).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ErasureReport {
    /// The pseudonym the person's runs now carry (`erased:<random>`), when runs were
    /// pseudonymised.
    pub pseudonym: Option<String>,
    /// Runs pseudonymised (person, reason and their tasks' personal fields).
    pub runs: u64,
    /// Audit events whose personal values and salt were deleted (the events stay, in their
    /// commitment form).
    pub events: u64,
    /// Snapshot payloads deleted.
    pub snapshots: u64,
    /// Inventory accounts deleted.
    pub accounts: u64,
    /// Delegates' records deleted (those keyed by one of the person's tasks, or whose value
    /// names the person's id or an address of theirs).
    pub records: u64,
}

impl ErasureReport {
    /// Whether nothing was left to erase (a repeat: `already_done`).
    pub fn already_done(&self) -> bool {
        self.runs == 0
            && self.events == 0
            && self.snapshots == 0
            && self.accounts == 0
            && self.records == 0
    }
}

/// The retention policy: how long a finished run stays reversible, after which its snapshot
/// payloads are erased ([`Retention::cutoff`]) and its person may be erased.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// The rollback window: how long after a run finished it can still be rolled back (its
    /// snapshots are kept that long).
    #[serde(with = "humantime_secs")]
    pub rollback_window: Duration,
}

impl Default for Retention {
    /// A rollback window of 30 days.
    fn default() -> Self {
        Self {
            rollback_window: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

impl Retention {
    /// A policy with this rollback window.
    pub fn new(rollback_window: Duration) -> Self {
        Self { rollback_window }
    }

    /// The cutoff at `now`: runs finished before it are past their rollback window.
    ///
    /// # Errors
    /// `InvalidInput` when the window reaches before the first time representable.
    pub fn cutoff(&self, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
        chrono::Duration::from_std(self.rollback_window)
            .ok()
            .and_then(|d| now.checked_sub_signed(d))
            .ok_or_else(|| Error::invalid_input("the rollback window is too long"))
    }
}

/// Seconds in (de)serialised form, so that a policy reads from TOML as `rollback_window = 2592000`.
mod humantime_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

/// The `Conflict` refusing to erase a person because `run` is still open or inside the
/// rollback window; it names the run, not the person.
pub fn erasure_refused(run: RunId, open: bool) -> Error {
    let why = if open {
        "is still open"
    } else {
        "finished inside the rollback window"
    };
    Error::new(
        ErrorKind::Conflict,
        format!("the person cannot be erased yet: run {run} {why}; nothing was erased"),
    )
    .with_context("run", run)
}

/// Checks whether a run of the person blocks erasure at `finished_before` (see
/// [`Store::erase_person`](super::Store::erase_person)).
///
/// # Errors
/// [`erasure_refused`] for the first run that is open or finished at or after
/// `finished_before`.
pub fn check_erasable<'a>(
    runs: impl IntoIterator<Item = (RunId, bool, Option<DateTime<Utc>>)> + 'a,
    finished_before: DateTime<Utc>,
) -> Result<()> {
    for (id, open, finished_at) in runs {
        if open || finished_at.is_none() {
            return Err(erasure_refused(id, true));
        }
        if finished_at.is_some_and(|f| f >= finished_before) {
            return Err(erasure_refused(id, false));
        }
    }
    Ok(())
}

/// A fresh pseudonym for an erased person: `erased:` and 32 random hex digits (not derived
/// from anything of theirs, so it cannot be reversed).
pub fn pseudonym() -> PersonId {
    PersonId::new(format!("erased:{}", uuid::Uuid::new_v4().simple()))
}

/// `run` with its person replaced by `pseudonym` (no address, name or manager), its reason
/// erased and every personal field of its tasks (account login and external id, attributes,
/// parameters, error messages, ticket links and assignees, details) replaced by `erased`.
///
/// # Errors
/// If a task does not encode as JSON (it always does).
pub fn pseudonymise_run(run: &Run, pseudonym: &PersonId) -> Result<Run> {
    let mut out = run.clone();
    out.person = Person::new(pseudonym.clone(), "");
    "erased".clone_into(&mut out.reason);
    for task in &mut out.tasks {
        *task = pseudonymise_task(task)?;
    }
    Ok(out)
}

/// `task` with every personal field replaced by `erased` (see [`pseudonymise_run`]).
///
/// # Errors
/// If the task does not encode as JSON (it always does).
pub fn pseudonymise_task(task: &Task) -> Result<Task> {
    let encode = |e: serde_json::Error| {
        Error::new(ErrorKind::Internal, "a task could not be pseudonymised").with_source(e)
    };
    let mut value = serde_json::to_value(task).map_err(encode)?;
    crate::audit::personal::erase_task(&mut value);
    serde_json::from_value(value).map_err(encode)
}

/// The strings whose presence in a delegate's record (key or value) makes it the person's:
/// their id, the email and aliases their runs knew them by, and the ids of their runs' tasks.
/// Strings shorter than 6 characters are left out (a short id would match unrelated records).
pub fn record_needles(person: &PersonId, runs: &[Run]) -> Vec<String> {
    let mut needles: Vec<String> = std::iter::once(person.to_string())
        .chain(runs.iter().flat_map(|r| r.person.addresses()))
        .chain(
            runs.iter()
                .flat_map(|r| r.tasks.iter().map(|t| t.id.to_string())),
        )
        .filter(|s| s.len() >= 6)
        .map(|s| s.to_ascii_lowercase())
        .collect();
    needles.sort();
    needles.dedup();
    needles
}

/// Whether a record's key or value names one of `needles` (emails compared without case).
pub fn record_names(key: &str, value: &str, needles: &[String]) -> bool {
    let (key, value) = (key.to_ascii_lowercase(), value.to_ascii_lowercase());
    needles
        .iter()
        .any(|n| key.contains(n.as_str()) || value.contains(n.as_str()))
}
