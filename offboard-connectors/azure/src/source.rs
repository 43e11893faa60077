//! [`EntraSource`]: Entra ID's users as a [`SourceOfTruth`], by full scan and diff.

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
/// - The allowed Graph operations have no `/users/delta`, so each [`SourceOfTruth::changes`]
///   call lists every user: `GET /users?$select=id,userPrincipalName,mail,displayName,accountEnabled,employeeId&$top=<n>`,
///   following `@odata.nextLink` (the shared client refuses links outside the Graph base).
/// - The cursor remembers, per user id, what was last reported (lifecycle, addresses,
///   employee id): a scan reports only users who are new or whose record changed, so a new
///   source object given the persisted cursor repeats nothing and misses nothing. A first
///   scan reports everyone.
/// - A user last reported current and missing from a scan is read in one `$batch` with
///   `GET /directory/deletedItems/{id}` and `GET /users/{id}`: soft-deleted users are past
///   with `termination_at` = `deletedDateTime`; users in neither place (hard-deleted,
///   purged) are past by id (the engine keeps the address it knew); a user who is there after
///   all (the listing raced a change) is reported as read.
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
        let users: Vec<SourceUser> = self
            .graph
            .list(
                &GraphRequest::get(["users"])
                    .query("$select", SELECT)
                    .query("$top", self.page_size.to_string()),
            )
            .await
            .map_err(|e| e.with_operation(op.clone()))?;
        let mut changes = Vec::new();
        let mut present = BTreeSet::new();
        for user in users {
            present.insert(user.id.clone());
            if state
                .known
                .observe(&user.id, user.lifecycle(), &user.detail())
            {
                changes.push(user.record());
            }
        }
        let missing = state.known.missing(&present);
        if !missing.is_empty() {
            let found = self
                .missing(&missing)
                .await
                .map_err(|e| e.with_operation(op.clone()))?;
            for (id, user) in missing.into_iter().zip(found) {
                match user {
                    Some(user) => {
                        if state.known.settle(&id, user.lifecycle(), &user.detail()) {
                            changes.push(user.record());
                        }
                    }
                    None => {
                        state.known.forget(&id);
                        changes.push(PersonRecord::gone(&id));
                    }
                }
            }
        }
        Ok(ChangeBatch {
            changes,
            next: Cursor::encode(&state),
            more: false,
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
