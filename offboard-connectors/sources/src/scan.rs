//! [`Scan`]: what a source remembers between polls (who it reported, and a listing in
//! progress), kept in its cursor.

use std::collections::{BTreeMap, BTreeSet};

use offboard_core::source::{Cursor, Fingerprints, PersonRecord};
use offboard_core::{Lifecycle, Result};
use serde::{Deserialize, Serialize};

/// A source's memory between polls, kept in its cursor ([`Scan::load`], [`Scan::save`]).
///
/// # Behavior
/// - [`Scan::listed`] notes each person a page lists and returns those new or changed since
///   last reported (their [`fingerprint`]: lifecycle, addresses, names, manager, dates).
/// - [`Scan::next_page`] is where the listing in progress continues (a page token, an offset,
///   a `since` time: the vendor's own), `None` at the start of a listing;
///   [`Scan::continue_at`] records it after a page.
/// - After the last page of a **complete** listing, [`Scan::missing`] returns the people last
///   reported current whom it did not list (to be read directly), then [`Scan::settle`] records
///   what was read: `None` (the vendor no longer finds them) reports them
///   [`PersonRecord::gone`].
/// - `since` is free for incremental sources: the time their next read starts from.
/// - A cursor holding anything else (another source's state, a member this one does not
///   know) is refused by [`Scan::load`]: it is not ours.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scan {
    /// Per person id, what was last reported.
    #[serde(default)]
    known: Fingerprints,
    /// The listing in progress: where it continues and whom it listed so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    listing: Option<Listing>,
    /// An incremental source's position (a vendor timestamp), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Per person id, the cheap stamp a listing last showed ([`Scan::stamped`]): a status
    /// code, a modification time. Only for sources whose listing is a summary.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    stamps: BTreeMap<String, String>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Listing {
    next: String,
    present: BTreeSet<String>,
}

/// What a record is judged changed by: everything it reports except its lifecycle (which
/// [`Fingerprints`] keeps itself), as JSON.
pub fn fingerprint(record: &PersonRecord) -> String {
    let p = &record.person;
    serde_json::json!([
        p.email,
        p.aliases,
        p.display_name,
        p.employee_id,
        p.manager.as_ref().map(|m| (&m.id, &m.email)),
        record.termination_at,
    ])
    .to_string()
}

impl Scan {
    /// The state a cursor holds (the default state without one).
    ///
    /// # Errors
    /// `InvalidInput` naming `source` when the cursor is not one of this kind.
    pub fn load(cursor: Option<&Cursor>, source: &str) -> Result<Self> {
        Cursor::decode(cursor, source)
    }

    /// The cursor holding this state.
    pub fn save(&self) -> Cursor {
        Cursor::encode(self)
    }

    /// Where the listing in progress continues; `None` when the next read starts a listing.
    pub fn next_page(&self) -> Option<&str> {
        self.listing.as_ref().map(|l| l.next.as_str())
    }

    /// Notes `records` as listed by the current page (a full scan remembers them as present);
    /// returns those new or changed since last reported, in order.
    pub fn listed(&mut self, records: Vec<PersonRecord>) -> Vec<PersonRecord> {
        let mut changed = Vec::new();
        for record in records {
            let id = record.person.id.as_str().to_owned();
            if let Some(l) = self.listing.as_mut() {
                l.present.insert(id.clone());
            } else {
                self.listing = Some(Listing {
                    next: String::new(),
                    present: BTreeSet::from([id.clone()]),
                });
            }
            if self
                .known
                .observe(&id, record.lifecycle, &fingerprint(&record))
            {
                changed.push(record);
            }
        }
        changed
    }

    /// For a listing that shows only a summary of each person (an id and a status, the full
    /// record needing a read of its own): notes `id` as listed by the current page with
    /// `stamp` (what the summary says). Returns `true` when the stamp differs from the one
    /// last noted for `id` (or none was): read the person then and pass the record to
    /// [`Scan::listed`]. An unchanged stamp counts the person as listed and reports nothing.
    pub fn stamped(&mut self, id: &str, stamp: &str) -> bool {
        self.listing
            .get_or_insert_with(Listing::default)
            .present
            .insert(id.to_owned());
        if self.stamps.get(id).map(String::as_str) == Some(stamp) {
            return false;
        }
        self.stamps.insert(id.to_owned(), stamp.to_owned());
        true
    }

    /// Notes a person read outside a listing (an incremental change, a direct read): returns
    /// the record when it is new or changed since last reported.
    pub fn observed(&mut self, record: PersonRecord) -> Option<PersonRecord> {
        let id = record.person.id.as_str().to_owned();
        self.known
            .observe(&id, record.lifecycle, &fingerprint(&record))
            .then_some(record)
    }

    /// The listing goes on at `next` (a page token, an offset: the vendor's own).
    pub fn continue_at(&mut self, next: impl Into<String>) {
        let next = next.into();
        match self.listing.as_mut() {
            Some(l) => l.next = next,
            None => {
                self.listing = Some(Listing {
                    next,
                    present: BTreeSet::new(),
                })
            }
        }
    }

    /// Ends a complete listing: forgets people reported past who are no longer listed and
    /// returns those last reported current who were not listed, in id order, to be read
    /// directly and passed to [`Scan::settle`].
    pub fn missing(&mut self) -> Vec<String> {
        let present = self.listing.take().map(|l| l.present).unwrap_or_default();
        self.stamps.retain(|id, _| present.contains(id));
        self.known.missing(&present)
    }

    /// Records a direct read of a missing person: `None` (not found) reports them
    /// [`PersonRecord::gone`]; a record is reported when it changed.
    pub fn settle(&mut self, id: &str, read: Option<PersonRecord>) -> Option<PersonRecord> {
        match read {
            None => {
                self.known.forget(id);
                Some(PersonRecord::gone(id))
            }
            Some(record) => {
                let lifecycle = record.lifecycle;
                self.known
                    .settle(id, lifecycle, &fingerprint(&record))
                    .then_some(record)
            }
        }
    }

    /// How many people the scan remembers: everyone listed by the last complete listing,
    /// and everyone observed since (an incremental source compares it with the vendor's
    /// count of people to notice a deletion).
    pub fn known(&self) -> usize {
        self.known.len()
    }

    /// Whether `id` was last reported current.
    pub fn is_current(&self, id: &str) -> bool {
        self.known.is_current(id)
    }

    /// Abandons a listing in progress (its page token expired): the next read starts over.
    pub fn restart_listing(&mut self) {
        self.listing = None;
    }
}

/// A record's lifecycle from whether the vendor calls the person active.
pub fn lifecycle(active: bool) -> Lifecycle {
    if active {
        Lifecycle::Current
    } else {
        Lifecycle::Past
    }
}

#[cfg(test)]
mod tests {
    use offboard_core::Person;

    use super::*;

    fn record(id: &str, email: &str, lifecycle: Lifecycle) -> PersonRecord {
        PersonRecord {
            person: Person::new(id, email),
            lifecycle,
            termination_at: None,
        }
    }

    #[test]
    fn a_scan_reports_what_changed_and_reads_the_missing() {
        let mut s = Scan::default();
        assert_eq!(s.next_page(), None);
        let first = s.listed(vec![
            record("1", "a@example.com", Lifecycle::Current),
            record("2", "b@example.com", Lifecycle::Current),
        ]);
        assert_eq!(first.len(), 2);
        s.continue_at("page-2");
        let s = Scan::load(Some(&s.save()), "t").unwrap();
        assert_eq!(s.next_page(), Some("page-2"));
        let mut s = s;
        assert!(s.listed(vec![]).is_empty());
        assert_eq!(s.missing(), Vec::<String>::new());
        // Second scan: 1 terminated, 2 missing.
        let changed = s.listed(vec![record("1", "a@example.com", Lifecycle::Past)]);
        assert_eq!(changed[0].lifecycle, Lifecycle::Past);
        assert_eq!(s.missing(), ["2"]);
        let gone = s.settle("2", None).unwrap();
        assert!(gone.is_vanished());
        // Third scan: 1 unchanged, 2 forgotten.
        assert!(
            s.listed(vec![record("1", "a@example.com", Lifecycle::Past)])
                .is_empty()
        );
        assert!(s.missing().is_empty());
        // An address change is a change; the same record again is not.
        assert!(
            s.observed(record("1", "a2@example.com", Lifecycle::Past))
                .is_some()
        );
        assert!(
            s.observed(record("1", "a2@example.com", Lifecycle::Past))
                .is_none()
        );
        for foreign in ["not json", r#"{"seen":{},"current":[]}"#, "[1,2]"] {
            assert!(
                matches!(
                    Scan::load(Some(&Cursor(foreign.into())), "t"),
                    Err(e) if e.kind() == offboard_core::ErrorKind::InvalidInput
                ),
                "{foreign}"
            );
        }
    }

    #[test]
    fn stamps_say_whom_to_read_and_count_as_listed() {
        let mut s = Scan::default();
        assert!(s.stamped("1", "A") && s.stamped("2", "A"), "new: read them");
        s.listed(vec![
            record("1", "a@example.com", Lifecycle::Current),
            record("2", "b@example.com", Lifecycle::Current),
        ]);
        assert!(s.missing().is_empty());
        let mut s = Scan::load(Some(&s.save()), "t").unwrap();
        assert!(!s.stamped("1", "A"), "unchanged: not read, still listed");
        assert!(s.stamped("2", "T"), "changed: read");
        assert_eq!(s.missing(), Vec::<String>::new());
        // 1 is no longer listed: its stamp goes, so a return to the listing is read again.
        assert!(!s.stamped("2", "T"));
        assert_eq!(s.missing(), ["1"]);
        assert!(s.stamped("1", "A"), "listed again: read again");
        assert!(matches!(
            Scan::load(Some(&Cursor("not json".into())), "t"),
            Err(e) if e.kind() == offboard_core::ErrorKind::InvalidInput
        ));
    }
}
