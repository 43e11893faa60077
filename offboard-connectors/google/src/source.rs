//! [`GoogleSource`]: Google Workspace's directory as a [`SourceOfTruth`], by full scan and
//! diff.

use std::collections::BTreeSet;

use async_trait::async_trait;
use offboard_core::source::{ChangeBatch, Cursor, Fingerprints, PersonRecord, SourceOfTruth};
use offboard_core::{ErrorKind, Lifecycle, Person, Result};
use offboard_http::HttpRequest;
use serde::{Deserialize, Serialize};

use crate::GoogleConnector;
use crate::client::GoogleClient;

const USERS: [&str; 4] = ["admin", "directory", "v1", "users"];

/// Which users a scan lists: `customer=` or `domain=` (exactly one, as `users.list` wants).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    Customer(String),
    Domain(String),
}

/// Google Workspace users as a source of truth: who works here (active) and who left
/// (suspended, archived, or deleted).
///
/// # Behavior
/// - The Directory API has no change feed for users, so each scan lists every user:
///   `GET admin/directory/v1/users?customer=my_customer&maxResults=<n>` (or `domain=`),
///   following `nextPageToken`. Each [`SourceOfTruth::changes`] call reads one page (`more`
///   is set while pages remain); the page token and the ids seen so far are kept in the
///   cursor, so a restart continues the scan where it stopped. A page token Google no longer
///   accepts (400) restarts the scan from the first page.
/// - The cursor remembers, per user id, what was last reported (lifecycle and addresses): a
///   scan reports only users who are new or whose record changed. A first scan reports
///   everyone.
/// - `suspended` or `archived` users are past. A user last reported current and missing at
///   the end of a scan is read with `GET admin/directory/v1/users/{id}`: a 404 (deleted)
///   reports them past, by id (the engine keeps the address it knew); a user who is there
///   after all (the listing raced a change) is reported as read.
/// - The person id is the immutable numeric Google id; email is `primaryEmail`, aliases the
///   `aliases` and `nonEditableAliases`, display name `name.fullName`, employee id the
///   `externalIds` entry of type `organization`.
/// - Calls share the connector's client: its authentication and its pacing to the project's
///   query quota. Reads only.
#[derive(Debug, Clone)]
pub struct GoogleSource {
    name: String,
    client: GoogleClient,
    scope: Scope,
    page_size: u32,
}

/// What the cursor remembers between polls.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ScanState {
    /// Per user id, what was last reported (see [`SourceUser::detail`]).
    #[serde(default)]
    known: Fingerprints,
    /// A scan in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scan: Option<Scan>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Scan {
    /// The next page's token.
    page_token: String,
    /// The users listed so far.
    present: BTreeSet<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsersPage {
    #[serde(default)]
    users: Vec<SourceUser>,
    #[serde(default)]
    next_page_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SourceUser {
    id: String,
    #[serde(default)]
    primary_email: String,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    non_editable_aliases: Vec<String>,
    #[serde(default)]
    suspended: bool,
    #[serde(default)]
    archived: bool,
    #[serde(default)]
    name: Option<Name>,
    #[serde(default)]
    external_ids: Vec<ExternalId>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Name {
    #[serde(default)]
    full_name: String,
}

#[derive(Debug, Deserialize)]
struct ExternalId {
    #[serde(default)]
    value: String,
    #[serde(default, rename = "type")]
    kind: String,
}

impl SourceUser {
    fn lifecycle(&self) -> Lifecycle {
        if self.suspended || self.archived {
            Lifecycle::Past
        } else {
            Lifecycle::Current
        }
    }

    fn record(&self) -> PersonRecord {
        let mut person = Person::new(self.id.as_str(), self.primary_email.clone());
        for alias in self.aliases.iter().chain(&self.non_editable_aliases) {
            if !alias.is_empty()
                && !alias.eq_ignore_ascii_case(&self.primary_email)
                && !person.aliases.contains(alias)
            {
                person.aliases.push(alias.clone());
            }
        }
        person.display_name = self
            .name
            .as_ref()
            .map(|n| n.full_name.clone())
            .unwrap_or_default();
        person.employee_id = self
            .external_ids
            .iter()
            .find(|x| x.kind == "organization" && !x.value.is_empty())
            .map(|x| x.value.clone());
        PersonRecord {
            person,
            lifecycle: self.lifecycle(),
            termination_at: None,
        }
    }

    /// What a change is judged by besides the lifecycle: the addresses (aliases in any order).
    fn detail(&self) -> String {
        let mut addresses: Vec<String> = std::iter::once(&self.primary_email)
            .chain(&self.aliases)
            .chain(&self.non_editable_aliases)
            .map(|a| a.to_ascii_lowercase())
            .collect();
        addresses[1..].sort();
        addresses.join(" ")
    }
}

impl GoogleSource {
    /// A source named `google` listing the connector's customer (`my_customer`: the whole
    /// account the credentials administer), sharing its client.
    pub fn for_connector(connector: &GoogleConnector) -> Self {
        Self {
            name: crate::APP.to_owned(),
            client: connector.client.clone(),
            scope: Scope::Customer("my_customer".to_owned()),
            page_size: 500,
        }
    }

    /// Renames the source (the cursor's key).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Lists one customer id instead of `my_customer`.
    pub fn with_customer(mut self, customer: impl Into<String>) -> Self {
        self.scope = Scope::Customer(customer.into());
        self
    }

    /// Lists the users of one domain of the account instead of the whole customer.
    pub fn with_domain(mut self, domain: impl Into<String>) -> Self {
        self.scope = Scope::Domain(domain.into());
        self
    }

    /// Users per page, 1 to 500 (default 500).
    pub fn with_page_size(mut self, n: u32) -> Self {
        self.page_size = n.clamp(1, 500);
        self
    }

    fn page(&self, token: Option<&str>) -> HttpRequest {
        let (key, value) = match &self.scope {
            Scope::Customer(c) => ("customer", c.as_str()),
            Scope::Domain(d) => ("domain", d.as_str()),
        };
        let request = HttpRequest::get(USERS)
            .query(key, value)
            .query("maxResults", self.page_size.to_string());
        match token {
            Some(t) => request.query("pageToken", t),
            None => request,
        }
    }

    /// `GET admin/directory/v1/users/{id}`; `None` on 404.
    async fn get_user(&self, id: &str) -> Result<Option<SourceUser>> {
        let mut path = USERS.map(str::to_owned).to_vec();
        path.push(id.to_owned());
        match self.client.json(HttpRequest::get(path)).await {
            Ok(u) => Ok(Some(u)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The next page of the scan in `state` (restarting it when Google refuses the token).
    async fn next_page(&self, state: &mut ScanState) -> Result<UsersPage> {
        let token = state.scan.as_ref().map(|s| s.page_token.clone());
        match self.client.json(self.page(token.as_deref())).await {
            Err(e) if token.is_some() && e.kind() == ErrorKind::InvalidInput => {
                state.scan = None;
                self.client.json(self.page(None)).await
            }
            other => other,
        }
    }
}

#[async_trait]
impl SourceOfTruth for GoogleSource {
    fn name(&self) -> &str {
        &self.name
    }

    async fn changes(&self, cursor: Option<&Cursor>) -> Result<ChangeBatch> {
        let op = format!("{}.changes", self.name);
        let mut state: ScanState = Cursor::decode(cursor, &self.name)?;
        let page = self
            .next_page(&mut state)
            .await
            .map_err(|e| e.with_operation(op.clone()))?;
        let mut present = state.scan.take().map(|s| s.present).unwrap_or_default();
        let mut changes = Vec::new();
        for user in page.users {
            present.insert(user.id.clone());
            if state
                .known
                .observe(&user.id, user.lifecycle(), &user.detail())
            {
                changes.push(user.record());
            }
        }
        let token = page.next_page_token.filter(|t| !t.is_empty());
        let more = token.is_some();
        if let Some(page_token) = token {
            state.scan = Some(Scan {
                page_token,
                present,
            });
        } else {
            for id in state.known.missing(&present) {
                match self
                    .get_user(&id)
                    .await
                    .map_err(|e| e.with_operation(op.clone()))?
                {
                    None => {
                        state.known.forget(&id);
                        changes.push(PersonRecord::gone(&id));
                    }
                    Some(user) => {
                        if state.known.settle(&id, user.lifecycle(), &user.detail()) {
                            changes.push(user.record());
                        }
                    }
                }
            }
        }
        Ok(ChangeBatch {
            changes,
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

    /// What [`Fingerprints`] judges a user by.
    fn fingerprint(u: &SourceUser) -> (Lifecycle, String) {
        (u.lifecycle(), u.detail())
    }

    fn is_current(f: &(Lifecycle, String)) -> bool {
        f.0 == Lifecycle::Current
    }

    #[test]
    fn a_directory_user_becomes_a_person() {
        let u = user(serde_json::json!({
            "id": "1001", "primaryEmail": "ada@example.com",
            "aliases": ["ada.l@example.com"], "nonEditableAliases": ["ada@example.test.google.com"],
            "name": {"givenName": "Ada", "familyName": "Lovelace", "fullName": "Ada Lovelace"},
            "externalIds": [{"value": "x", "type": "custom"}, {"value": "E42", "type": "organization"}],
            "suspended": false, "archived": false
        }));
        let r = u.record();
        assert_eq!(r.person.id.as_str(), "1001");
        assert_eq!(r.person.email, "ada@example.com");
        assert_eq!(
            r.person.aliases,
            ["ada.l@example.com", "ada@example.test.google.com"]
        );
        assert_eq!(r.person.display_name, "Ada Lovelace");
        assert_eq!(r.person.employee_id.as_deref(), Some("E42"));
        assert_eq!(r.lifecycle, Lifecycle::Current);
        for (suspended, archived) in [(true, false), (false, true), (true, true)] {
            let u = user(
                serde_json::json!({"id": "2", "primaryEmail": "b@example.com",
                                            "suspended": suspended, "archived": archived}),
            );
            assert_eq!(u.record().lifecycle, Lifecycle::Past);
            assert!(!is_current(&fingerprint(&u)));
        }
    }

    #[test]
    fn the_fingerprint_ignores_alias_order_and_case_only() {
        let a = user(
            serde_json::json!({"id": "1", "primaryEmail": "A@example.com",
                                        "aliases": ["x@example.com", "y@example.com"]}),
        );
        let b = user(
            serde_json::json!({"id": "1", "primaryEmail": "a@example.com",
                                        "aliases": ["Y@example.com", "x@example.com"]}),
        );
        let c = user(
            serde_json::json!({"id": "1", "primaryEmail": "a@example.com",
                                        "aliases": ["x@example.com"]}),
        );
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&c));
        assert!(is_current(&fingerprint(&a)));
    }
}
