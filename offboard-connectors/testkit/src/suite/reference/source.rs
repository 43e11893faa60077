//! An in-memory [`SourceOfTruth`]: an IdP or HR system whose people the test changes.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use offboard_core::{
    ChangeBatch, Cursor, Error, ErrorKind, Lifecycle, Person, PersonId, PersonRecord, Result,
    SourceOfTruth,
};

/// An in-memory source of truth with an incremental change stream.
///
/// # Behavior
/// - Every change (add, status change, removal) gets the next sequence number (never below the
///   wall clock in microseconds, so cursors survive a restart of the process); the cursor is
///   the last sequence number returned, so `changes(cursor)` returns every change after it, in
///   order, at most `page_size` at a time (`more` says whether a next page exists).
/// - A removed person is reported `Past` (the trait's "no longer found").
/// - `fail_next(n)` makes the next `n` calls to `changes` fail with a retryable error.
#[derive(Debug)]
pub struct ReferenceSource {
    name: String,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Latest record per person, with the sequence number of its last change.
    people: BTreeMap<PersonId, (PersonRecord, u64)>,
    seq: u64,
    page_size: usize,
    fail_next: u32,
    calls: u32,
}

impl ReferenceSource {
    /// An empty source named `name` (the cursor's key), pages of 100.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            state: Mutex::new(State {
                page_size: 100,
                ..State::default()
            }),
        }
    }

    /// Sets the page size (at least 1).
    pub fn with_page_size(self, n: usize) -> Self {
        self.state().page_size = n.max(1);
        self
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds or replaces a person's record (a change).
    pub fn upsert(&self, record: PersonRecord) {
        let mut s = self.state();
        // Like a real change log, sequence numbers follow wall-clock time (microseconds), so a
        // cursor persisted by an earlier process stays meaningful for a new source instance.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        s.seq = (s.seq + 1).max(now);
        let seq = s.seq;
        s.people.insert(record.person.id.clone(), (record, seq));
    }

    /// Adds a current person.
    pub fn hire(&self, person: Person) {
        self.upsert(PersonRecord {
            person,
            lifecycle: Lifecycle::Current,
            termination_at: None,
        });
    }

    /// Marks a person past (deactivated / terminated), optionally with a termination date.
    ///
    /// # Panics
    /// When the person is unknown.
    pub fn terminate(&self, id: &str, termination_at: Option<DateTime<Utc>>) {
        self.set_lifecycle(id, Lifecycle::Past, termination_at);
    }

    /// Marks a person current again.
    ///
    /// # Panics
    /// When the person is unknown.
    pub fn rehire(&self, id: &str) {
        self.set_lifecycle(id, Lifecycle::Current, None);
    }

    fn set_lifecycle(&self, id: &str, lifecycle: Lifecycle, termination_at: Option<DateTime<Utc>>) {
        let record = {
            let s = self.state();
            let (r, _) = s
                .people
                .get(&PersonId::new(id))
                .unwrap_or_else(|| panic!("unknown person {id}"));
            PersonRecord {
                person: r.person.clone(),
                lifecycle,
                termination_at,
            }
        };
        self.upsert(record);
    }

    /// Removes a person from the source: reported as past.
    pub fn remove(&self, id: &str) {
        self.set_lifecycle(id, Lifecycle::Past, None);
    }

    /// The next `n` calls to `changes` fail (retryable).
    pub fn fail_next(&self, n: u32) {
        self.state().fail_next = n;
    }

    /// Calls to `changes` so far.
    pub fn calls(&self) -> u32 {
        self.state().calls
    }
}

#[async_trait]
impl SourceOfTruth for ReferenceSource {
    fn name(&self) -> &str {
        &self.name
    }

    async fn changes(&self, cursor: Option<&Cursor>) -> Result<ChangeBatch> {
        let mut s = self.state();
        s.calls += 1;
        if s.fail_next > 0 {
            s.fail_next -= 1;
            return Err(
                Error::new(ErrorKind::Unavailable, "injected fault: source unavailable")
                    .retryable(),
            );
        }
        let after: u64 = match cursor {
            None => 0,
            Some(c) => {
                c.0.parse()
                    .map_err(|_| Error::invalid_input(format!("cursor {:?} is not ours", c.0)))?
            }
        };
        let mut changed: Vec<&(PersonRecord, u64)> =
            s.people.values().filter(|(_, seq)| *seq > after).collect();
        changed.sort_by_key(|(_, seq)| *seq);
        let more = changed.len() > s.page_size;
        changed.truncate(s.page_size);
        let next = changed.last().map_or(after, |(_, seq)| *seq);
        Ok(ChangeBatch {
            changes: changed.into_iter().map(|(r, _)| r.clone()).collect(),
            next: Cursor(next.to_string()),
            more,
        })
    }
}
