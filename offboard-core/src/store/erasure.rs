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
    /// Delegates' records deleted: those keyed by one of the person's tasks, their id or an
    /// address of theirs ([`record_erasure`]).
    pub records: u64,
    /// Records redacted in place: those naming the person only in their value (an outbox
    /// slot, a receiver's stream), whose strings naming the person now read `erased`
    /// ([`record_erasure`]).
    pub records_redacted: u64,
}

impl ErasureReport {
    /// Whether nothing was left to erase (a repeat: `already_done`).
    pub fn already_done(&self) -> bool {
        self.runs == 0
            && self.events == 0
            && self.snapshots == 0
            && self.accounts == 0
            && self.records == 0
            && self.records_redacted == 0
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

/// The strings whose presence in a record (key or value) makes it name the person: their id,
/// the email and aliases their runs knew them by, their display names, and the ids of their
/// runs' tasks. Strings shorter than 6 characters are left out (a short id would match
/// unrelated records).
pub fn record_needles(person: &PersonId, runs: &[Run]) -> Vec<String> {
    let mut needles: Vec<String> = std::iter::once(person.to_string())
        .chain(runs.iter().flat_map(|r| r.person.addresses()))
        .chain(runs.iter().map(|r| r.person.display_name.clone()))
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

/// Whether `text` names one of `needles` (compared without ASCII case).
fn names(text: &str, needles: &[String]) -> bool {
    let text = text.to_ascii_lowercase();
    needles.iter().any(|n| text.contains(n.as_str()))
}

/// What [`Store::erase_person`](super::Store::erase_person) does to a record that names the
/// person ([`record_erasure`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordErasure {
    /// The record is the person's (its key names them or one of their tasks: a delegate's
    /// record of their task): deleted.
    Delete,
    /// The record names the person only in its value and belongs to something that outlives
    /// them (an outbox slot, a receiver's stream): this value replaces it, every string and
    /// object key naming the person reading [`ERASED`], the rest unchanged.
    Redact(serde_json::Value),
}

/// What a redacted string (or object key) reads.
pub const ERASED: &str = "erased";

/// What erasing a person does to the record `key` holding `value`, given [`record_needles`]:
/// `None` when it does not name them.
pub fn record_erasure(
    key: &str,
    value: &serde_json::Value,
    needles: &[String],
) -> Option<RecordErasure> {
    if names(key, needles) {
        return Some(RecordErasure::Delete);
    }
    let mut redacted = value.clone();
    redact(&mut redacted, needles).then_some(RecordErasure::Redact(redacted))
}

/// Replaces every string and object key in `value` naming one of `needles` by [`ERASED`]
/// (keys made unique with a number); whether anything was replaced.
fn redact(value: &mut serde_json::Value, needles: &[String]) -> bool {
    use serde_json::Value;
    match value {
        Value::String(s) if names(s, needles) => {
            *s = ERASED.to_owned();
            true
        }
        Value::Array(items) => {
            let mut any = false;
            for v in items {
                any |= redact(v, needles);
            }
            any
        }
        Value::Object(map) => {
            let mut any = false;
            let entries = std::mem::take(map);
            for (i, (k, mut v)) in entries.into_iter().enumerate() {
                any |= redact(&mut v, needles);
                let k = if names(&k, needles) {
                    any = true;
                    format!("{ERASED}-{i}")
                } else {
                    k
                };
                map.insert(k, v);
            }
            any
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_deleted_when_its_key_names_the_person_and_redacted_when_its_value_does() {
        let needles = vec!["ada@example.com".to_owned(), "ada lovelace".to_owned()];
        let value = serde_json::json!({
            "to": "ADA@example.com",
            "by_email": {"ada@example.com": 1, "bob@example.com": 2},
            "list": ["Ada Lovelace", "Bob", 3],
        });
        assert_eq!(
            record_erasure("task:ada@example.com", &value, &needles),
            Some(RecordErasure::Delete)
        );
        let Some(RecordErasure::Redact(r)) = record_erasure("slot:1", &value, &needles) else {
            panic!("redacted");
        };
        assert_eq!(
            r,
            serde_json::json!({
                "to": "erased",
                "by_email": {"erased-0": 1, "bob@example.com": 2},
                "list": ["erased", "Bob", 3],
            })
        );
        assert_eq!(
            record_erasure(
                "slot:2",
                &serde_json::json!({"to": "bob@example.com"}),
                &needles
            ),
            None
        );
    }
}
