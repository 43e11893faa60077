//! [`EntraSource`]: Entra ID's users as a [`SourceOfTruth`], read incrementally from
//! `GET /users/delta()`.

use std::collections::BTreeSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use offboard_core::source::{ChangeBatch, Cursor, Fingerprints, PersonRecord, SourceOfTruth};
use offboard_core::{Error, ErrorKind, Lifecycle, Person, Result};
use offboard_http::GraphClient;
use offboard_http::graph::{BatchItem, GraphRequest};
use serde::{Deserialize, Serialize};

use crate::EntraConnector;

/// What a scan reads of each user.
const SELECT: &str = "id,userPrincipalName,mail,displayName,accountEnabled,employeeId";

/// Entra ID users as a source of truth: who works here (`accountEnabled`) and who left
/// (`accountEnabled=false`, soft-deleted, or gone).
///
/// # Behavior
/// - The first poll (no cursor) is a full delta round:
///   `GET /users/delta()?$select=id,userPrincipalName,mail,displayName,accountEnabled,employeeId&$top=<n>`,
///   following `@odata.nextLink` (`$skiptoken`) to the last page, whose `@odata.deltaLink`
///   (`$deltatoken`) goes into the cursor. Everyone listed is reported.
/// - Later polls GET only that delta link (the shared client refuses links outside the Graph
///   base): Graph returns the users changed since, each once in its latest state. A user is
///   reported when its lifecycle, addresses or employee id differ from what was last
///   reported, so a user disabled and re-enabled between two polls, who was current, is not
///   reported at all (still current: nothing to do), and one disabled and still disabled is
///   reported past.
/// - A user `@removed` (soft-deleted: `reason` `changed`; hard-deleted: `deleted`) who was
///   last reported current, and a user listed without `accountEnabled` or
///   `userPrincipalName` (Graph may list an updated user with only the changed properties), is
///   read in one `$batch` with `GET /directory/deletedItems/{id}` and
///   `GET /users/{id}`: soft-deleted users are past with `termination_at` =
///   `deletedDateTime`; users in neither place are past by id (the engine keeps the address it
///   knew); a user who is there after all (restored) is reported as read.
/// - An expired or unknown delta token (410 Gone, `syncStateNotFound`) is logged (warning)
///   and the poll falls back to a full round diffed against what the cursor remembers: users
///   new or changed are reported, users last reported current and no longer listed are read
///   as above, so nothing is missed and nothing repeats.
/// - The cursor holds the delta link and, per user id, what was last reported (lifecycle,
///   addresses, employee id): a new source object given the persisted cursor repeats nothing
///   and misses nothing, and replaying a cursor (a crash before the next one was stored)
///   reports the same changes again. Cursors from before the delta feed (no link) start with a
///   full round.
/// - The person id is the Entra object id; email is `mail` (else the UPN), the UPN an alias
///   when it differs, employee id `employeeId`. Reads only.
#[derive(Debug, Clone)]
pub struct EntraSource {
    name: String,
    graph: GraphClient,
    page_size: u32,
}

/// What the cursor remembers between polls.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ScanState {
    /// Per user id, what was last reported (see [`SourceUser::detail`]).
    #[serde(default)]
    known: Fingerprints,
    /// Where the next delta round starts (`@odata.deltaLink` of the last one); `None`: a
    /// full round (first poll, or a cursor from before the delta feed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    delta_link: Option<String>,
}

/// One item of a delta round: a user as read, or one `@removed` (soft- or hard-deleted).
#[derive(Debug)]
enum DeltaUser {
    Present(SourceUser),
    Removed { id: String },
}

impl<'de> Deserialize<'de> for DeltaUser {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        if v.get("@removed").is_some() {
            let id = v
                .get("id")
                .and_then(serde_json::Value::as_str)
                .ok_or_else(|| serde::de::Error::missing_field("id"))?;
            return Ok(Self::Removed { id: id.to_owned() });
        }
        serde_json::from_value(v)
            .map(Self::Present)
            .map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SourceUser {
    id: String,
    #[serde(default)]
    user_principal_name: String,
    #[serde(default)]
    mail: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    account_enabled: Option<bool>,
    #[serde(default)]
    employee_id: Option<String>,
    #[serde(default)]
    deleted_date_time: Option<String>,
}

impl SourceUser {
    /// Listed without `accountEnabled` or `userPrincipalName` (a delta round may list an
    /// updated user with only what changed): not enough to judge; read the user instead.
    fn is_partial(&self) -> bool {
        self.account_enabled.is_none() || self.user_principal_name.is_empty()
    }

    fn lifecycle(&self) -> Lifecycle {
        if self.account_enabled == Some(false) || self.deleted_date_time.is_some() {
            Lifecycle::Past
        } else {
            Lifecycle::Current
        }
    }

    fn email(&self) -> &str {
        self.mail
            .as_deref()
            .filter(|m| !m.is_empty())
            .unwrap_or(&self.user_principal_name)
    }

    fn record(&self) -> PersonRecord {
        let email = self.email().to_owned();
        let mut person = Person::new(self.id.as_str(), email.clone());
        let upn = &self.user_principal_name;
        if !upn.is_empty() && !upn.eq_ignore_ascii_case(&email) {
            person.aliases.push(upn.clone());
        }
        person.display_name = self.display_name.clone().unwrap_or_default();
        person.employee_id = self.employee_id.clone().filter(|e| !e.is_empty());
        PersonRecord {
            person,
            lifecycle: self.lifecycle(),
            termination_at: self
                .deleted_date_time
                .as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc)),
        }
    }

    /// What a change is judged by besides the lifecycle: the addresses and the employee id.
    fn detail(&self) -> String {
        format!(
            "{} {} {}",
            self.email().to_ascii_lowercase(),
            self.user_principal_name.to_ascii_lowercase(),
            self.employee_id.as_deref().unwrap_or_default()
        )
    }
}

fn vendor(e: serde_json::Error) -> Error {
    Error::new(ErrorKind::Vendor, format!("unexpected user: {e}"))
}

impl EntraSource {
    /// A source named `entra` reading through `graph` (the Graph version root, with the
    /// connector's authentication; e.g. [`crate::AzureConfig::graph_client`]).
    pub fn from_client(graph: GraphClient) -> Self {
        Self {
            name: crate::APP.to_owned(),
            graph,
            page_size: 999,
        }
    }

    /// A source sharing the connector's client (authentication, limiter, connection pool).
    pub fn for_connector(connector: &EntraConnector) -> Self {
        Self::from_client(connector.graph().clone())
    }

    /// Renames the source (the cursor's key), e.g. for a second tenant.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Users per page (`$top`), 1 to 999 (default 999).
    pub fn with_page_size(mut self, n: u32) -> Self {
        self.page_size = n.clamp(1, 999);
        self
    }

    /// Each missing id, as `deletedItems` or `users` has it (`None`: in neither), read in
    /// one `$batch` of two items per id.
    async fn missing(&self, ids: &[String]) -> Result<Vec<Option<SourceUser>>> {
        let items = ids
            .iter()
            .enumerate()
            .flat_map(|(i, id)| {
                [
                    BatchItem::new(
                        format!("d{i}"),
                        GraphRequest::get(["directory", "deletedItems", id.as_str()]),
                    ),
                    BatchItem::new(
                        format!("u{i}"),
                        GraphRequest::get(["users", id.as_str()]).query("$select", SELECT),
                    ),
                ]
            })
            .collect();
        let replies = self.graph.batch(items).await?;
        let mut out = Vec::with_capacity(ids.len());
        for pair in replies.chunks(2) {
            let mut found = None;
            for reply in pair {
                match reply.result() {
                    Ok(v) => {
                        found = Some(serde_json::from_value(v.clone()).map_err(vendor)?);
                        break;
                    }
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            out.push(found);
        }
        Ok(out)
    }
}

#[async_trait]
impl SourceOfTruth for EntraSource {
    fn name(&self) -> &str {
        &self.name
    }

    async fn changes(&self, cursor: Option<&Cursor>) -> Result<ChangeBatch> {
        let op = format!("{}.changes", self.name);
        let mut state: ScanState = Cursor::decode(cursor, &self.name)?;
        let changes = match state.delta_link.take() {
            Some(link) => match self.round(Some(&link)).await {
                Ok((users, next)) => {
                    state.delta_link = Some(next);
                    self.apply_delta(&mut state, users).await
                }
                Err(e) if expired(&e) => {
                    tracing::warn!(
                        source = %self.name,
                        error = %e,
                        "entra delta token no longer valid; falling back to a full scan"
                    );
                    self.full_scan(&mut state).await
                }
                Err(e) => Err(e),
            },
            None => self.full_scan(&mut state).await,
        }
        .map_err(|e| e.with_operation(op))?;
        Ok(ChangeBatch {
            changes,
            next: Cursor::encode(&state),
            more: false,
        })
    }
}

/// Whether a delta round failed because its token is no longer known (410 Gone,
/// `syncStateNotFound` and its kin): the source starts over with a full round.
fn expired(e: &Error) -> bool {
    e.kind() == ErrorKind::NotFound
        || offboard_http::graph::vendor_code(e).is_some_and(|c| {
            ["syncStateNotFound", "resyncRequired", "syncStateInvalid"].contains(&c)
        })
}

impl EntraSource {
    /// One delta round, all pages: the initial one (`GET /users/delta()?$select=…&$top=…`)
    /// or the one a stored delta link names. Returns the users and the next delta link.
    async fn round(&self, link: Option<&str>) -> Result<(Vec<DeltaUser>, String)> {
        let request = match link {
            Some(link) => self.graph.link(link)?,
            None => GraphRequest::get(["users", "delta()"])
                .query("$select", SELECT)
                .query("$top", self.page_size.to_string()),
        };
        self.graph.delta(&request).await
    }

    /// A full round diffed against what the cursor knows: listed users who are new or
    /// changed, then the users last reported current who are no longer listed (read directly).
    async fn full_scan(&self, state: &mut ScanState) -> Result<Vec<PersonRecord>> {
        let (users, next) = self.round(None).await?;
        let mut changes = Vec::new();
        let mut present = BTreeSet::new();
        for user in users {
            let DeltaUser::Present(user) = user else {
                continue;
            };
            present.insert(user.id.clone());
            if state
                .known
                .observe(&user.id, user.lifecycle(), &user.detail())
            {
                changes.push(user.record());
            }
        }
        let missing = state.known.missing(&present);
        self.settle_missing(state, missing, &mut changes).await?;
        state.delta_link = Some(next);
        Ok(changes)
    }

    /// The changes of an incremental round: changed users as a scan would report them; users
    /// `@removed` (soft- or hard-deleted) who were last reported current, and users listed
    /// without their lifecycle or UPN (Graph may list only the properties that changed), are
    /// read directly, as missing users of a full scan are.
    async fn apply_delta(
        &self,
        state: &mut ScanState,
        users: Vec<DeltaUser>,
    ) -> Result<Vec<PersonRecord>> {
        let mut changes = Vec::new();
        let mut removed = Vec::new();
        for user in users {
            match user {
                DeltaUser::Present(user) if user.is_partial() => removed.push(user.id),
                DeltaUser::Present(user) => {
                    if state
                        .known
                        .observe(&user.id, user.lifecycle(), &user.detail())
                    {
                        changes.push(user.record());
                    }
                }
                DeltaUser::Removed { id } => {
                    if state.known.is_current(&id) {
                        removed.push(id);
                    } else {
                        state.known.forget(&id);
                    }
                }
            }
        }
        self.settle_missing(state, removed, &mut changes).await?;
        Ok(changes)
    }

    /// Reads each user in `ids` directly (last reported current and no longer listed or
    /// `@removed`, or listed incompletely) and reports what was found: soft-deleted users past
    /// with `deletedDateTime`, live ones as read, users in neither place gone when they were
    /// last reported current.
    async fn settle_missing(
        &self,
        state: &mut ScanState,
        ids: Vec<String>,
        changes: &mut Vec<PersonRecord>,
    ) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let found = self.missing(&ids).await?;
        for (id, user) in ids.into_iter().zip(found) {
            let changed = match &user {
                Some(u) if u.deleted_date_time.is_none() => {
                    state.known.observe(&id, u.lifecycle(), &u.detail())
                }
                Some(u) => state.known.settle(&id, u.lifecycle(), &u.detail()),
                None => {
                    let was_current = state.known.is_current(&id);
                    state.known.forget(&id);
                    if was_current {
                        changes.push(PersonRecord::gone(&id));
                    }
                    false
                }
            };
            if changed && let Some(u) = user {
                changes.push(u.record());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(json: serde_json::Value) -> SourceUser {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn an_entra_user_becomes_a_person() {
        let u = user(serde_json::json!({
            "id": "u1", "userPrincipalName": "ada.l@contoso.com", "mail": "ada@contoso.com",
            "displayName": "Ada Lovelace", "accountEnabled": true, "employeeId": "E42"
        }));
        let r = u.record();
        assert_eq!(r.person.id.as_str(), "u1");
        assert_eq!(r.person.email, "ada@contoso.com");
        assert_eq!(r.person.aliases, ["ada.l@contoso.com"]);
        assert_eq!(r.person.display_name, "Ada Lovelace");
        assert_eq!(r.person.employee_id.as_deref(), Some("E42"));
        assert_eq!(r.lifecycle, Lifecycle::Current);
        let u = user(
            serde_json::json!({"id": "u2", "userPrincipalName": "bob@contoso.com",
                                        "mail": null, "accountEnabled": false}),
        );
        let r = u.record();
        assert_eq!(
            (r.person.email.as_str(), r.lifecycle),
            ("bob@contoso.com", Lifecycle::Past)
        );
        assert!(r.person.aliases.is_empty());
        let u = user(
            serde_json::json!({"id": "u3", "userPrincipalName": "c@contoso.com",
                                        "accountEnabled": true,
                                        "deletedDateTime": "2026-11-20T10:00:00Z"}),
        );
        let r = u.record();
        assert_eq!(r.lifecycle, Lifecycle::Past);
        assert_eq!(
            r.termination_at.unwrap().to_rfc3339(),
            "2026-11-20T10:00:00+00:00"
        );
    }
}
