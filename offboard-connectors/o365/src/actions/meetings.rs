//! `o365.cancel_meetings`: cancel the future meetings the leaver organises, with a message,
//! so rooms and attendees are freed.
//!
//! - `GET /users/{id}/events` (paged, `$select` of the fields read, times in UTC through
//!   `Prefer: outlook.timezone="UTC"`): single meetings and series masters. Kept: events
//!   with `isOrganizer` true, not `isCancelled`, that end after the run's clock
//!   (`ExecuteOptions::started_at`, the task's first attempt, else now): a series master
//!   counts while its recurrence has no end or ends on or after that day. Meetings where the
//!   leaver is only an attendee are never touched.
//! - Each gets `POST /users/{id}/events/{e}/cancel` `{"Comment": "<message>"}` (capital C,
//!   as the spec and the docs write it); 202. The event moves to Deleted Items (so it is no
//!   longer listed: a repeat is `AlreadyDone`) and the attendees get the message; a series
//!   master cancels the series. Events Graph refuses fail the task by name after the others.
//! - The message is the action parameter `message` (`{"message": "…"}`), else
//!   [`DEFAULT_MESSAGE`].
//! - Not reversible (a cancelled meeting cannot be un-cancelled). Needs the mailbox, so
//!   `o365.remove_licenses` runs after it; a user without an Exchange Online mailbox
//!   (`MailboxNotEnabledForRESTAPI`) fails the task saying so rather than reporting nothing
//!   to cancel (an on-premises mailbox may still hold meetings).
//! - Permissions: `Calendars.ReadWrite` (the list alone: `Calendars.Read`); a 403 names it.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use offboard_core::{Error, ErrorKind, ExecuteReply, Outcome, Result};
use offboard_http::GraphRequest;
use offboard_http::graph::{needs_permission, not_done, user_path};
use serde::Deserialize;
use serde_json::json;

use super::{Ctx, gone, no_mailbox, reply};
use crate::client::Resource;

/// The cancellation message without a `message` parameter.
pub(crate) const DEFAULT_MESSAGE: &str =
    "This meeting is cancelled because its organizer has left the organization.";

/// The action's parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Params {
    /// The cancellation message sent to the attendees.
    #[serde(default)]
    pub(crate) message: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct When {
    #[serde(default)]
    date_time: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Range {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    end_date: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct Recurrence {
    range: Option<Range>,
}

/// An event, as much as the action reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Event {
    id: String,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    is_organizer: bool,
    #[serde(default)]
    is_cancelled: bool,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    start: Option<When>,
    #[serde(default)]
    end: Option<When>,
    #[serde(default)]
    recurrence: Option<Recurrence>,
}

fn parse_utc(s: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|n| n.and_utc())
}

impl Event {
    /// "<subject> (<start>)".
    pub(crate) fn label(&self) -> String {
        let start = self
            .start
            .as_ref()
            .and_then(|s| s.date_time.get(..16))
            .unwrap_or("no start");
        format!(
            "{} ({start} UTC)",
            self.subject.as_deref().unwrap_or("(no subject)")
        )
    }

    /// Whether it (or, for a series, any occurrence) ends after `now`. A time Graph gives in
    /// a form not understood counts as future: better cancel than leave a room booked.
    fn future(&self, now: DateTime<Utc>) -> bool {
        if self.kind.as_deref() == Some("seriesMaster")
            && let Some(range) = self.recurrence.as_ref().and_then(|r| r.range.as_ref())
        {
            if range.kind == "noEnd" || range.kind == "numbered" {
                return true;
            }
            return match range
                .end_date
                .as_deref()
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            {
                Some(end) => end >= now.date_naive(),
                None => true,
            };
        }
        match self.end.as_ref().and_then(|e| parse_utc(&e.date_time)) {
            Some(end) => end > now,
            None => true,
        }
    }
}

/// The future meetings `id` organises and has not cancelled; `None` when the user is gone.
pub(crate) async fn organised(
    ctx: &Ctx<'_>,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<Vec<Event>>> {
    let request = GraphRequest::get(user_path(id, &["events"]))
        .query(
            "$select",
            "subject,isOrganizer,isCancelled,start,end,type,seriesMasterId,recurrence",
        )
        .query("$top", "100")
        .header("Prefer", "outlook.timezone=\"UTC\"");
    let events: Vec<Event> = match ctx.client.graph.list(&request).await {
        Ok(v) => v,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return match ctx.client.mailbox_missing::<()>(id, e).await? {
                Resource::UserGone => Ok(None),
                _ => Err(no_mailbox(id)),
            };
        }
        Err(e) => return Err(needs_permission(e, "Calendars.Read")),
    };
    Ok(Some(
        events
            .into_iter()
            .filter(|e| e.is_organizer && !e.is_cancelled && e.future(now))
            .filter(|e| !matches!(e.kind.as_deref(), Some("occurrence" | "exception")))
            .collect(),
    ))
}

pub(crate) async fn execute(
    ctx: &Ctx<'_>,
    id: &str,
    params: &Params,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<ExecuteReply> {
    let message = params.message.as_deref().unwrap_or(DEFAULT_MESSAGE);
    if message
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r')
    {
        return Err(Error::invalid_input(
            "params.message holds a control character; it cannot be sent as a cancellation message",
        )
        .fatal());
    }
    let Some(events) = organised(ctx, id, now).await? else {
        return Ok(gone(id));
    };
    if events.is_empty() {
        return Ok(reply(
            Outcome::AlreadyDone,
            dry_run,
            "organises no future meeting",
        ));
    }
    let labels: Vec<String> = events.iter().map(Event::label).collect();
    if dry_run {
        return Ok(reply(
            Outcome::Done,
            true,
            format!(
                "would cancel {} meetings ({})",
                events.len(),
                labels.join(", ")
            ),
        ));
    }
    let mut cancelled = Vec::new();
    let mut failed = Vec::new();
    for (e, label) in events.iter().zip(labels) {
        let request = GraphRequest::post(
            user_path(id, &["events", e.id.as_str(), "cancel"]),
            json!({"Comment": message}),
        );
        match ctx.client.graph.send_gone_ok(&request).await {
            Ok(_) => cancelled.push(label),
            Err(err) if err.is_retryable() => return Err(err),
            Err(err) if err.kind() == ErrorKind::PermissionDenied => {
                return Err(needs_permission(err, "Calendars.ReadWrite"));
            }
            Err(err) => failed.push(format!("{label} (Graph refused: {err})")),
        }
    }
    let done = format!(
        "cancelled {} meetings ({})",
        cancelled.len(),
        cancelled.join(", ")
    );
    if !failed.is_empty() {
        return Err(not_done(&done, "cancelled", &failed));
    }
    Ok(reply(Outcome::Done, false, done))
}
