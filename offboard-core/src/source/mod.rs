//! The [`SourceOfTruth`] trait: who works here, and who left.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{Lifecycle, Person};

pub mod hr;

/// A person as a source of truth sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonRecord {
    /// The person.
    pub person: Person,
    /// Current, past or external.
    pub lifecycle: Lifecycle,
    /// When they leave or left (HR termination date), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_at: Option<DateTime<Utc>>,
}

/// An opaque position in a source's change stream (a delta link, an Okta `after` cursor, a
/// timestamp). Persisted by the store between polls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cursor(pub String);

impl Cursor {
    /// A cursor holding `state` as JSON: what a scanning source keeps between polls.
    pub fn encode<T: Serialize>(state: &T) -> Self {
        Self(serde_json::to_string(state).expect("source state serialises"))
    }

    /// The state a cursor made by [`Cursor::encode`] holds; the default state without one.
    ///
    /// # Errors
    /// `InvalidInput` naming `source` when the cursor holds something else.
    pub fn decode<T: serde::de::DeserializeOwned + Default>(
        cursor: Option<&Self>,
        source: &str,
    ) -> Result<T> {
        cursor.map_or_else(
            || Ok(T::default()),
            |c| {
                serde_json::from_str(&c.0).map_err(|e| {
                    Error::invalid_input(format!("{source}: the cursor is not ours: {e}"))
                })
            },
        )
    }
}

/// What a full-scan source (one that lists everyone and diffs) remembers between scans: per
/// person id, a fingerprint of what it last reported, the lifecycle first. Kept in the
/// source's cursor ([`Cursor::encode`]).
///
/// # Behavior
/// - [`Fingerprints::observe`] during a scan says whether a listed person changed since last
///   reported (new, other lifecycle, other `detail`: addresses, employee id…).
/// - [`Fingerprints::missing`] after a complete scan forgets people already reported past who
///   are no longer listed (deleted after leaving: nothing more to say) and returns those last
///   reported current who are not listed: the source reads each one, then reports them
///   [`PersonRecord::gone`] ([`Fingerprints::forget`]) or observes what it read
///   ([`Fingerprints::settle`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Fingerprints(BTreeMap<String, String>);

impl Fingerprints {
    /// Notes what a scan read for `id`; `true` when it differs from what was last reported
    /// (the caller reports it).
    pub fn observe(&mut self, id: &str, lifecycle: Lifecycle, detail: &str) -> bool {
        let state = if lifecycle == Lifecycle::Current {
            "current"
        } else {
            "past"
        };
        let fingerprint = format!("{state} {detail}");
        if self.0.get(id) == Some(&fingerprint) {
            return false;
        }
        self.0.insert(id.to_owned(), fingerprint);
        true
    }

    /// A person missing from the listing but read directly: as [`Fingerprints::observe`],
    /// and no longer remembered unless still current (a past one is not read again).
    pub fn settle(&mut self, id: &str, lifecycle: Lifecycle, detail: &str) -> bool {
        let changed = self.observe(id, lifecycle, detail);
        if lifecycle != Lifecycle::Current {
            self.0.remove(id);
        }
        changed
    }

    /// Whether `id` was last reported current (an incremental source told that someone was
    /// removed reads them only then: a past one has nothing more to say).
    pub fn is_current(&self, id: &str) -> bool {
        self.0.get(id).is_some_and(|f| f.starts_with("current "))
    }

    /// How many people are remembered (reported and not since forgotten).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether nobody is remembered.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Forgets `id` (deleted).
    pub fn forget(&mut self, id: &str) {
        self.0.remove(id);
    }

    /// After a complete scan listing `present`: forgets the unlisted people last reported
    /// past, and returns the unlisted people last reported current, in id order.
    pub fn missing(&mut self, present: &BTreeSet<String>) -> Vec<String> {
        self.0
            .retain(|id, f| present.contains(id) || f.starts_with("current "));
        self.0
            .keys()
            .filter(|id| !present.contains(*id))
            .cloned()
            .collect()
    }
}

impl PersonRecord {
    /// A person the source no longer finds: past, known by id only (the engine fills in the
    /// address it knew).
    pub fn gone(id: &str) -> Self {
        Self {
            person: Person::new(id, ""),
            lifecycle: Lifecycle::Past,
            termination_at: None,
        }
    }

    /// Whether the record says only that the person is no longer found (as
    /// [`PersonRecord::gone`] makes it: past, no address), not that they were terminated. Such
    /// a person may be the victim of a truncated export or an outage: the engine never
    /// confirms their critical actions by itself.
    pub fn is_vanished(&self) -> bool {
        self.lifecycle == Lifecycle::Past
            && self.person.email.is_empty()
            && self.termination_at.is_none()
    }
}

/// Changes since a cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeBatch {
    /// People whose record changed (or, for full-scan sources, every person).
    pub changes: Vec<PersonRecord>,
    /// Where to continue from.
    pub next: Cursor,
    /// Whether more changes are available right away.
    pub more: bool,
}

/// Reports people and their lifecycle.
#[async_trait]
pub trait SourceOfTruth: Send + Sync + fmt::Debug {
    /// The source's name (`okta`, `entra`, `hr-feed`), used as the cursor's key.
    fn name(&self) -> &str;

    /// Changes since `cursor` (`None`: from the beginning).
    ///
    /// # Behavior
    /// - Reads only.
    /// - A person no longer found is reported `Past`.
    /// - Calling again with the same cursor returns the same changes (or a superset), so a crash
    ///   between reading and persisting the next cursor repeats, never loses, a change.
    async fn changes(&self, cursor: Option<&Cursor>) -> Result<ChangeBatch>;
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<S: SourceOfTruth + ?Sized> SourceOfTruth for Arc<S> {
    fn name(&self) -> &str {
        (**self).name()
    }
    async fn changes(&self, cursor: Option<&Cursor>) -> Result<ChangeBatch> {
        (**self).changes(cursor).await
    }
}

#[cfg(feature = "mock")]
mockall::mock! {
    /// A mockall mock of [`SourceOfTruth`] (feature `mock`). `changes` is expected with the
    /// cursor owned (`expect_changes().with(eq(None))`): mockall cannot store the trait's
    /// borrowed `Option<&Cursor>`, so the trait impl hands the mock a copy.
    pub SourceOfTruth {
        /// The mocked [`SourceOfTruth::name`].
        pub fn name(&self) -> &str;
        /// The mocked [`SourceOfTruth::changes`], with the cursor owned.
        pub fn changes(&self, cursor: Option<Cursor>) -> Result<ChangeBatch>;
    }
}

#[cfg(feature = "mock")]
impl fmt::Debug for MockSourceOfTruth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MockSourceOfTruth")
    }
}

#[cfg(feature = "mock")]
#[async_trait]
impl SourceOfTruth for MockSourceOfTruth {
    fn name(&self) -> &str {
        MockSourceOfTruth::name(self)
    }
    async fn changes(&self, cursor: Option<&Cursor>) -> Result<ChangeBatch> {
        MockSourceOfTruth::changes(self, cursor.cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_report_changes_once_and_track_who_went_missing() {
        let mut f = Fingerprints::default();
        assert!(f.observe("a", Lifecycle::Current, "a@x"));
        assert!(f.observe("b", Lifecycle::Current, "b@x"));
        assert!(f.observe("c", Lifecycle::Past, "c@x"));
        assert!(f.is_current("b") && !f.is_current("c") && !f.is_current("z"));
        assert!(!f.observe("a", Lifecycle::Current, "a@x"), "unchanged");
        assert!(f.observe("a", Lifecycle::Current, "a2@x"), "new address");
        // b and c are no longer listed: c was reported past (forgotten), b must be read.
        let present = BTreeSet::from(["a".to_owned()]);
        assert_eq!(f.missing(&present), ["b"]);
        assert!(
            f.settle("b", Lifecycle::Past, "b@x"),
            "read directly: now past"
        );
        assert_eq!(
            f.missing(&present),
            Vec::<String>::new(),
            "past ones are settled"
        );
        assert!(f.observe("c", Lifecycle::Past, "c@x"), "c was forgotten");
        f.forget("a");
        assert!(f.observe("a", Lifecycle::Current, "a2@x"));
    }
}
