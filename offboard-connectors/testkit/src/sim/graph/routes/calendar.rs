//! Calendars of the simulated tenant: meetings ([`GraphTenant::add_meeting`]) in the
//! organizer's calendar, with a copy in each attendee's.
//!
//! - `GET /users/{id}/events` (`Calendars.Read`): single instances and series masters (as
//!   Graph's `events` lists them), with `start`/`end` in UTC, `isOrganizer`, `isCancelled`,
//!   `type`, `seriesMasterId` and `recurrence`; `$select` of known properties (another is a
//!   400), `$top` and paging. Cancelled meetings of the organizer are in Deleted Items, so
//!   no longer listed; an attendee's cancelled copy stays, `isCancelled` true. A user
//!   without a mailbox gets a 404 `MailboxNotEnabledForRESTAPI`.
//! - `POST /users/{id}/events/{event-id}/cancel` (`Calendars.ReadWrite`): body
//!   `{"Comment": "…"}` (the only parameter; another is a 400). Only the organizer can
//!   cancel: an attendee gets a 400 ("You need to be an organizer to cancel a meeting.", the
//!   spec's text; the error code is unverified). 202 Accepted: the event moves to Deleted
//!   Items and each attendee's copy records the cancellation and its comment; a series
//!   master cancels the whole series. An event not in this calendar is a 404.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Query, Reply, bad_request, denied, err, page};
use crate::sim::graph::{GraphTenant, State, new_id};

/// A meeting to add ([`GraphTenant::add_meeting`]).
#[derive(Debug, Clone)]
pub struct NewMeeting {
    /// The organizer's user id.
    pub organizer: String,
    /// `subject`.
    pub subject: String,
    /// Start, UTC, `YYYY-MM-DDTHH:MM:SS`.
    pub start: String,
    /// End, UTC, `YYYY-MM-DDTHH:MM:SS`.
    pub end: String,
    /// Attendee user ids.
    pub attendees: Vec<String>,
    /// A weekly series (`seriesMaster`) ending on this date (`YYYY-MM-DD`), or with no end
    /// (`Some("")`); `None` for a single meeting.
    pub recurrence_end: Option<String>,
}

impl NewMeeting {
    /// A single meeting of `organizer` with `attendees`.
    pub fn new(organizer: &str, subject: &str, start: &str, end: &str, attendees: &[&str]) -> Self {
        Self {
            organizer: organizer.to_owned(),
            subject: subject.to_owned(),
            start: start.to_owned(),
            end: end.to_owned(),
            attendees: attendees.iter().map(|a| (*a).to_owned()).collect(),
            recurrence_end: None,
        }
    }
}

/// A meeting's state, for assertions ([`GraphTenant::meeting`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetingState {
    /// Cancelled (in the organizer's Deleted Items).
    pub cancelled: bool,
    /// How many cancel calls reached it.
    pub cancel_calls: u32,
    /// Per attendee user id, the cancellation comment its copy received.
    pub attendee_cancellations: BTreeMap<String, String>,
    /// Per attendee user id, the id of its copy.
    pub attendee_copies: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Meeting {
    new: NewMeeting,
    cancelled: bool,
    cancel_calls: u32,
    /// Attendee → (copy id, cancellation comment once cancelled).
    copies: BTreeMap<String, (String, Option<String>)>,
}

/// Meetings by the organizer's event id.
#[derive(Debug, Default)]
pub(crate) struct Calendars {
    meetings: BTreeMap<String, Meeting>,
}

impl GraphTenant {
    /// Adds a meeting to the organizer's calendar and a copy to each attendee's; returns the
    /// organizer's event id.
    pub fn add_meeting(&self, new: NewMeeting) -> String {
        let id = format!("AAMkSim{}", uuid::Uuid::new_v4().simple());
        let copies = new
            .attendees
            .iter()
            .map(|a| (a.clone(), (format!("AAMkSim{}", new_id()), None)))
            .collect();
        self.shared.state().calendars.meetings.insert(
            id.clone(),
            Meeting {
                new,
                cancelled: false,
                cancel_calls: 0,
                copies,
            },
        );
        id
    }

    /// A meeting's state, by the organizer's event id.
    pub fn meeting(&self, id: &str) -> Option<MeetingState> {
        let s = self.shared.state();
        s.calendars.meetings.get(id).map(|m| MeetingState {
            cancelled: m.cancelled,
            cancel_calls: m.cancel_calls,
            attendee_cancellations: m
                .copies
                .iter()
                .filter_map(|(a, (_, c))| Some((a.clone(), c.clone()?)))
                .collect(),
            attendee_copies: m
                .copies
                .iter()
                .map(|(a, (c, _))| (a.clone(), c.clone()))
                .collect(),
        })
    }
}

const SELECTABLE: [&str; 12] = [
    "id",
    "subject",
    "start",
    "end",
    "isOrganizer",
    "isCancelled",
    "type",
    "seriesMasterId",
    "recurrence",
    "organizer",
    "attendees",
    "webLink",
];

fn event_json(s: &State, id: &str, m: &Meeting, organizer: bool, cancelled: bool) -> Value {
    let who = |u: &str| {
        let user = s.users.get(u);
        json!({"emailAddress": {
            "name": user.map(|u| u.display_name.clone()),
            "address": user.and_then(|u| u.mail.clone()),
        }})
    };
    let recurrence = m.new.recurrence_end.as_ref().map(|end| {
        let start_date = m.new.start.get(..10).unwrap_or_default();
        let range = if end.is_empty() {
            json!({"type": "noEnd", "startDate": start_date})
        } else {
            json!({"type": "endDate", "startDate": start_date, "endDate": end})
        };
        json!({"pattern": {"type": "weekly", "interval": 1}, "range": range})
    });
    json!({
        "id": id,
        "subject": m.new.subject,
        "start": {"dateTime": format!("{}.0000000", m.new.start), "timeZone": "UTC"},
        "end": {"dateTime": format!("{}.0000000", m.new.end), "timeZone": "UTC"},
        "isOrganizer": organizer,
        "isCancelled": cancelled,
        "type": if recurrence.is_some() { "seriesMaster" } else { "singleInstance" },
        "seriesMasterId": Value::Null,
        "recurrence": recurrence,
        "organizer": who(&m.new.organizer),
        "attendees": m.new.attendees.iter().map(|a| {
            let mut v = who(a);
            v["type"] = json!("required");
            v
        }).collect::<Vec<_>>(),
    })
}

/// `GET /users/{id}/events` and `POST /users/{id}/events/{e}/cancel` (the user has a
/// mailbox; the caller checked).
pub(super) fn route(
    s: &mut State,
    base: &str,
    method: &str,
    id: &str,
    rest: &[&str],
    query: &Query,
    body: Option<&Value>,
) -> Reply {
    match (method, rest) {
        ("GET", []) => {
            if let Some(no) = denied(s, "Calendars.Read") {
                return no;
            }
            let select: Option<Vec<&str>> = query.get("$select").map(|q| q.split(',').collect());
            if let Some(bad) = select.iter().flatten().find(|p| !SELECTABLE.contains(p)) {
                return bad_request(&format!(
                    "Could not find a property named '{bad}' on type 'microsoft.graph.event'."
                ));
            }
            let mut items = Vec::new();
            for (eid, m) in &s.calendars.meetings {
                if m.new.organizer == id && !m.cancelled {
                    items.push(event_json(s, eid, m, true, false));
                }
                if let Some((copy, comment)) = m.copies.get(id) {
                    items.push(event_json(s, copy, m, false, comment.is_some()));
                }
            }
            if let Some(select) = select {
                for item in &mut items {
                    if let Some(o) = item.as_object_mut() {
                        o.retain(|k, _| k == "id" || select.contains(&k.as_str()));
                    }
                }
            }
            page(s, base, &["users", id, "events"], query, items)
        }
        ("POST", [eid, "cancel"]) => {
            if let Some(no) = denied(s, "Calendars.ReadWrite") {
                return no;
            }
            let comment = match body.and_then(Value::as_object) {
                Some(fields) if fields.keys().all(|k| k == "Comment") => {
                    match fields.get("Comment") {
                        None | Some(Value::Null) => String::new(),
                        Some(Value::String(c)) => c.clone(),
                        Some(_) => return bad_request("Comment must be a string."),
                    }
                }
                Some(fields) => {
                    let bad = fields.keys().find(|k| *k != "Comment").cloned();
                    return bad_request(&format!(
                        "The parameter '{}' in the request payload is not a valid parameter for \
                         the operation 'cancel'.",
                        bad.unwrap_or_default()
                    ));
                }
                None => return bad_request("The cancel request needs a JSON object body."),
            };
            let attendee = s
                .calendars
                .meetings
                .values()
                .any(|m| m.copies.get(id).is_some_and(|(c, _)| c == eid));
            if attendee {
                return err(
                    400,
                    "ErrorInvalidRequest",
                    "Your request can't be completed. You need to be an organizer to cancel a \
                     meeting.",
                );
            }
            let Some(m) = s
                .calendars
                .meetings
                .get_mut(*eid)
                .filter(|m| m.new.organizer == id && !m.cancelled)
            else {
                return err(
                    404,
                    "ErrorItemNotFound",
                    "The specified object was not found in the store.",
                );
            };
            m.cancelled = true;
            m.cancel_calls += 1;
            for (_, c) in m.copies.values_mut() {
                *c = Some(comment.clone());
            }
            (202, None)
        }
        _ => super::no_route(),
    }
}
