//! [`OktaSource`]: Okta as a [`SourceOfTruth`], read incrementally by `lastUpdated`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use offboard_core::source::{ChangeBatch, Cursor, PersonRecord, SourceOfTruth};
use offboard_core::{Error, ErrorKind, Lifecycle, Manager, Person, PersonId, Result};
use offboard_http::{HttpClient, HttpRequest};
use serde::{Deserialize, Serialize};

use crate::OktaConnector;
use crate::connector::quoted;

const USERS: [&str; 3] = ["api", "v1", "users"];
/// Before every `lastUpdated` Okta can report: the start of an initial or full scan.
const EPOCH: &str = "1970-01-01T00:00:00.000Z";

/// Okta's users as a source of truth: who works here (`ACTIVE`, `STAGED`, `PROVISIONED`,
/// `RECOVERY`, `LOCKED_OUT`, `PASSWORD_EXPIRED`) and who left (`SUSPENDED`, `DEPROVISIONED`,
/// or deleted).
///
/// # Behavior
/// - Each [`SourceOfTruth::changes`] call reads one page of
///   `GET /api/v1/users?search=lastUpdated gt "<since − overlap>"&sortBy=lastUpdated&sortOrder=asc&limit=<n>`
///   (the expression built with the same escaping as the connector's lookups) and follows
///   `Link: <…>; rel="next"` on the next call (`more` is set while pages remain). The next
///   link is checked to be the same origin and path, and is kept in the cursor, so a restart
///   continues the scan where it stopped.
/// - The cursor carries the largest `lastUpdated` seen. Every scan starts `overlap` (default
///   60 s) before it, so users updated in the same millisecond, or indexed late (Okta's
///   `search` is eventually consistent), are read again rather than lost; what was already
///   reported (same id, `lastUpdated` and status) is not reported twice.
/// - The person id is the Okta user id; email is `profile.email` (else the login), alias the
///   login, employee id `profile.employeeNumber`. `profile.secondEmail` is never an alias: the
///   user edits it, so it may be anyone's address, and other apps would then match that
///   person's accounts. For a person
///   reported past, `profile.managerId` (the manager's Okta user id) is read with
///   `GET /api/v1/users/{managerId}` (once per call) and becomes the person's manager, so the
///   run hands mail and files to them; a manager who no longer exists is left out.
/// - A user deleted outright never shows up in a search again: every `full_scan_every`
///   (default 1 h, and on the first call) the scan starts from the beginning and notes who is
///   present; a user last reported current who is missing at its end is read with
///   `GET /api/v1/users/{id}`, and a 404 reports them past. A full scan reports only what
///   differs from what the cursor knows.
/// - Reads only.
#[derive(Debug, Clone)]
pub struct OktaSource {
    name: String,
    http: HttpClient,
    overlap: Duration,
    page_size: u32,
    full_scan_every: Duration,
}

/// What the cursor remembers between polls.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ScanState {
    /// The largest `lastUpdated` seen, as Okta wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since: Option<String>,
    /// The next page of the scan in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next: Option<String>,
    /// What was reported for users updated within the overlap: id → `lastUpdated status`.
    #[serde(default)]
    seen: BTreeMap<String, String>,
    /// Users last reported current.
    #[serde(default)]
    current: BTreeSet<String>,
    /// A full scan in progress: the users it found so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    full: Option<BTreeSet<String>>,
    /// When the last full scan ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_full: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SourceUser {
    id: String,
    status: String,
    #[serde(default)]
    last_updated: Option<String>,
    #[serde(default)]
    profile: SourceProfile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SourceProfile {
    #[serde(default)]
    login: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    employee_number: Option<String>,
    #[serde(default)]
    manager_id: Option<String>,
}

fn lifecycle(status: &str) -> Lifecycle {
    match status {
        "SUSPENDED" | "DEPROVISIONED" => Lifecycle::Past,
        _ => Lifecycle::Current,
    }
}

fn time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

impl SourceUser {
    fn record(&self) -> PersonRecord {
        let p = &self.profile;
        let email = p
            .email
            .clone()
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| p.login.clone());
        let mut person = Person::new(self.id.as_str(), email.clone());
        if !p.login.is_empty() && !p.login.eq_ignore_ascii_case(&email) {
            person.aliases.push(p.login.clone());
        }
        person.display_name = [p.first_name.as_deref(), p.last_name.as_deref()]
            .into_iter()
            .flatten()
            .filter(|n| !n.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        person.employee_id = p.employee_number.clone().filter(|n| !n.is_empty());
        PersonRecord {
            person,
            lifecycle: lifecycle(&self.status),
            termination_at: None,
        }
    }

    fn key(&self) -> String {
        format!(
            "{} {}",
            self.last_updated.as_deref().unwrap_or(""),
            self.status
        )
    }
}

impl OktaSource {
    /// A source named `okta` reading through `http` (base URL = the org URL, with the
    /// connector's authentication).
    pub fn from_client(http: HttpClient) -> Self {
        Self {
            name: crate::APP.to_owned(),
            http,
            overlap: Duration::from_secs(60),
            page_size: 200,
            full_scan_every: Duration::from_secs(3600),
        }
    }

    /// A source sharing the connector's client (authentication, limiter, connection pool).
    pub fn for_connector(connector: &OktaConnector) -> Self {
        Self::from_client(connector.http.clone())
    }

    /// Renames the source (the cursor's key), e.g. for a second Okta org.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// How far before the last `lastUpdated` seen each scan starts (default 60 s).
    pub fn with_overlap(mut self, overlap: Duration) -> Self {
        self.overlap = overlap;
        self
    }

    /// Users per page, 1 to 200 (default 200).
    pub fn with_page_size(mut self, n: u32) -> Self {
        self.page_size = n.clamp(1, 200);
        self
    }

    /// How often a full scan looks for deleted users (default 1 h).
    pub fn with_full_scan_every(mut self, every: Duration) -> Self {
        self.full_scan_every = every;
        self
    }

    fn first_page(&self, state: &ScanState) -> Result<HttpRequest> {
        let from = match (&state.full, state.since.as_deref().and_then(time)) {
            (None, Some(since)) => {
                stamp(since - chrono::Duration::from_std(self.overlap).unwrap_or_default())
            }
            _ => EPOCH.to_owned(),
        };
        let expression = format!("lastUpdated gt {}", quoted("lastUpdated", &from)?);
        Ok(HttpRequest::get(USERS)
            .query("search", expression)
            .query("sortBy", "lastUpdated")
            .query("sortOrder", "asc")
            .query("limit", self.page_size.to_string())
            .bucket("users"))
    }

    /// The request for a `Link: rel="next"` target, which must address this org's user list.
    fn next_page(&self, link: &str) -> Result<HttpRequest> {
        let base = self.http.base_url();
        let url = base
            .join(link)
            .map_err(|e| Error::new(ErrorKind::Vendor, format!("next link {link:?}: {e}")))?;
        let expected = base
            .join(&USERS.join("/"))
            .map_err(|e| Error::internal(format!("users path: {e}")))?;
        if url.origin() != base.origin() || url.path() != expected.path() {
            return Err(Error::new(
                ErrorKind::Vendor,
                "next link points outside this org's user list; not followed",
            ));
        }
        Ok(url
            .query_pairs()
            .fold(HttpRequest::get(USERS).bucket("users"), |r, (k, v)| {
                r.query(k.into_owned(), v.into_owned())
            }))
    }

    /// The manager with this Okta user id (read once per call through `cache`); `None` when
    /// no such user exists.
    async fn manager(
        &self,
        id: &str,
        cache: &mut HashMap<String, Option<Manager>>,
    ) -> Result<Option<Manager>> {
        if let Some(known) = cache.get(id) {
            return Ok(known.clone());
        }
        let found = match self.get_user(id).await {
            // An id that cannot be a path segment names nobody.
            Err(e) if e.kind() == ErrorKind::InvalidInput => None,
            other => other?,
        };
        let manager = found.map(|u| Manager {
            id: Some(PersonId::new(u.id.as_str())),
            email: u.record().person.email,
        });
        cache.insert(id.to_owned(), manager.clone());
        Ok(manager)
    }

    /// `GET /api/v1/users/{id}`; `None` on 404.
    async fn get_user(&self, id: &str) -> Result<Option<SourceUser>> {
        let mut path = USERS.map(str::to_owned).to_vec();
        path.push(id.to_owned());
        match self
            .http
            .send(HttpRequest::get(path).bucket("user_get"))
            .await
        {
            Ok(r) => Ok(Some(r.json()?)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl SourceOfTruth for OktaSource {
    fn name(&self) -> &str {
        &self.name
    }

    async fn changes(&self, cursor: Option<&Cursor>) -> Result<ChangeBatch> {
        let op = format!("{}.changes", self.name);
        let mut state: ScanState = Cursor::decode(cursor, &self.name)?;
        let initial = state.last_full.is_none();
        let request = match state.next.take() {
            Some(link) => self.next_page(&link),
            None => {
                let due = state.last_full.is_none_or(|t| {
                    (Utc::now() - t).to_std().unwrap_or_default() >= self.full_scan_every
                });
                if due && state.full.is_none() {
                    state.full = Some(BTreeSet::new());
                }
                self.first_page(&state)
            }
        }
        .map_err(|e| e.with_operation(op.clone()))?;
        let response = self
            .http
            .send(request)
            .await
            .map_err(|e| e.with_operation(op.clone()))?;
        let users: Vec<SourceUser> = response.json().map_err(|e| e.with_operation(op.clone()))?;
        let overlap = chrono::Duration::from_std(self.overlap).unwrap_or_default();
        let mut changes = Vec::new();
        for user in users {
            if let Some(present) = &mut state.full {
                present.insert(user.id.clone());
            }
            let record = user.record();
            let current = record.lifecycle == Lifecycle::Current;
            // A full scan skips users unchanged since before the overlap whose verdict is the
            // one last reported; anything newer is judged by what was reported for it.
            let settled = match (
                user.last_updated.as_deref().and_then(time),
                state.since.as_deref().and_then(time),
            ) {
                (Some(updated), Some(since)) => updated <= since - overlap,
                _ => false,
            };
            let known = state.seen.get(&user.id) == Some(&user.key())
                || (state.full.is_some()
                    && !initial
                    && settled
                    && current == state.current.contains(&user.id));
            if let Some(updated) = user.last_updated.as_deref().and_then(time) {
                if state
                    .since
                    .as_deref()
                    .and_then(time)
                    .is_none_or(|s| updated > s)
                {
                    state.since = Some(stamp(updated));
                }
                state.seen.insert(user.id.clone(), user.key());
            }
            if current {
                state.current.insert(user.id.clone());
            } else {
                state.current.remove(&user.id);
            }
            if !known {
                changes.push((record, user.profile.manager_id.clone()));
            }
        }
        state.next = response.next_link();
        let more = state.next.is_some();
        if !more {
            if let Some(present) = state.full.take() {
                let missing: Vec<String> = state.current.difference(&present).cloned().collect();
                for id in missing {
                    match self
                        .get_user(&id)
                        .await
                        .map_err(|e| e.with_operation(op.clone()))?
                    {
                        // Deleted: no longer found is past.
                        None => {
                            state.current.remove(&id);
                            state.seen.remove(&id);
                            changes.push((PersonRecord::gone(&id), None));
                        }
                        // Still there (the search index lags): report what it says.
                        Some(user) => {
                            let record = user.record();
                            if record.lifecycle != Lifecycle::Current {
                                state.current.remove(&id);
                                changes.push((record, user.profile.manager_id.clone()));
                            }
                        }
                    }
                }
                state.last_full = Some(Utc::now());
            }
            // What is older than the overlap cannot come back unchanged.
            if let Some(floor) = state.since.as_deref().and_then(time) {
                let floor = floor - overlap;
                state.seen.retain(|_, key| {
                    key.split(' ')
                        .next()
                        .and_then(time)
                        .is_none_or(|t| t >= floor)
                });
            }
        }
        let mut managers = HashMap::new();
        let mut records = Vec::with_capacity(changes.len());
        for (mut record, manager_id) in changes {
            if record.lifecycle != Lifecycle::Current
                && let Some(manager_id) = manager_id.filter(|m| !m.is_empty())
            {
                record.person.manager = self
                    .manager(&manager_id, &mut managers)
                    .await
                    .map_err(|e| e.with_operation(op.clone()))?;
            }
            records.push(record);
        }
        Ok(ChangeBatch {
            changes: records,
            next: Cursor::encode(&state),
            more,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(json: serde_json::Value) -> SourceUser {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn statuses_map_to_lifecycles() {
        for (status, want) in [
            ("ACTIVE", Lifecycle::Current),
            ("STAGED", Lifecycle::Current),
            ("PROVISIONED", Lifecycle::Current),
            ("LOCKED_OUT", Lifecycle::Current),
            ("PASSWORD_EXPIRED", Lifecycle::Current),
            ("RECOVERY", Lifecycle::Current),
            ("SUSPENDED", Lifecycle::Past),
            ("DEPROVISIONED", Lifecycle::Past),
        ] {
            assert_eq!(lifecycle(status), want, "{status}");
        }
    }

    #[test]
    fn a_user_becomes_a_person() {
        let u = user(serde_json::json!({
            "id": "00u1", "status": "ACTIVE", "lastUpdated": "2026-11-23T10:00:00.000Z",
            "profile": {"login": "ada.l", "email": "ada@example.com",
                        "secondEmail": "ada@old.example.com", "firstName": "Ada",
                        "lastName": "Lovelace", "employeeNumber": "E42"}
        }));
        let r = u.record();
        assert_eq!(r.person.id.as_str(), "00u1");
        assert_eq!(r.person.email, "ada@example.com");
        // Not `profile.secondEmail`: the user edits it, and it may be anyone's address.
        assert_eq!(r.person.aliases, ["ada.l"]);
        assert_eq!(r.person.display_name, "Ada Lovelace");
        assert_eq!(r.person.employee_id.as_deref(), Some("E42"));
        let u = user(serde_json::json!({"id": "00u2", "status": "SUSPENDED",
                                        "profile": {"login": "bob@example.com"}}));
        let r = u.record();
        assert_eq!(
            (r.person.email.as_str(), r.lifecycle),
            ("bob@example.com", Lifecycle::Past)
        );
        assert!(r.person.aliases.is_empty());
    }
}
