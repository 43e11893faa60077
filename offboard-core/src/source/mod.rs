//! The [`SourceOfTruth`] trait: who works here, and who left.

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
