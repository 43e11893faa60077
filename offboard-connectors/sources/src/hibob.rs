//! [`HibobSource`]: HiBob (Bob) as a [`SourceOfTruth`], by full scan and diff.
//!
//! # Endpoints
//! Relative to `https://api.hibob.com` (the Bob API's OpenAPI description; reference:
//! <https://apidocs.hibob.com/reference/post_people-search>):
//! - `POST /v1/people/search` with `{"fields": [...], "showInactive": true}`: everyone, leavers
//!   included, in one answer (the API does not page). Fields read: `root.id`, `root.email`,
//!   `root.firstName`, `root.surname`, `work.employeeIdInCompany`, `work.reportsTo` (the
//!   manager's `id` and `email`), `internal.lifecycleStatus`, `internal.terminationDate`.
//! - The same search with `"filters": [{"fieldPath": "root.id", "operator": "equals",
//!   "values": [...]}]` reads the people last reported current whom a scan no longer listed.
//!
//! # Authentication
//! HTTP basic with a service user's id and token (Bob → Settings → Integrations → Service
//! users). The service user needs view access to the `internal` (lifecycle) category and to
//! inactive employees, else leavers are never seen.
//!
//! # Full scan and diff
//! Bob has no changed-since read for people: each poll lists everyone (one request) and
//! reports only who is new or changed ([`Scan`]); someone last reported current and no longer
//! listed is read by id, and reported [`PersonRecord::gone`] when Bob no longer finds them.
//!
//! # Status mapping (`internal.lifecycleStatus`)
//! | lifecycle status | lifecycle |
//! |---|---|
//! | `terminated` | past |
//! | `inactive` | past |
//! | `hired`, `employed` | current |
//! | `garden leave` (termination date still ahead), `leave`, `parental leave`, a company's own leave types | current |
//! | anything else, or not readable | current (an unknown value never triggers) |
//!
//! `internal.terminationDate` (`YYYY-MM-DD`) is the termination date.
//!
//! # Limitations
//! - A full listing per poll: a company of N people is N records per poll on the wire.
//! - Bob has one work address per person (`root.email`): no aliases are reported.
//! - Bob's "flat" answer format (`/root/id` → `{value}`) is not read: the source asks for the
//!   default nested form.

use std::collections::HashMap;
use std::fmt;

use async_trait::async_trait;
use chrono::NaiveDate;
use offboard_core::source::{ChangeBatch, Cursor, PersonRecord, SourceOfTruth};
use offboard_core::{Error, Lifecycle, Manager, Person, PersonId, Result, Secret};
use offboard_http::{HttpClient, HttpRequest, StaticToken};
use serde::Deserialize;
use serde_json::json;

use crate::config::config_setters;
use crate::scan::Scan;

/// The fields read for each person.
const FIELDS: [&str; 8] = [
    "root.id",
    "root.email",
    "root.firstName",
    "root.surname",
    "work.employeeIdInCompany",
    "work.reportsTo",
    "internal.lifecycleStatus",
    "internal.terminationDate",
];
const SEARCH: [&str; 3] = ["v1", "people", "search"];

/// How to reach one Bob company. `Debug` never shows the token.
#[derive(Debug, Clone)]
pub struct HibobConfig {
    /// The source's name (the cursor's key); default `hibob`.
    pub name: String,
    /// `https://api.hibob.com` (or `https://api.sandbox.hibob.com`, or a simulator).
    pub base_url: String,
    /// The service user's id.
    pub service_user: String,
    /// The service user's token.
    pub token: Secret,
    /// Allow a plain `http` base URL (loopback tests only).
    pub allow_plain_http: bool,
}

impl HibobConfig {
    config_setters!();

    /// The production API with this service user.
    pub fn new(service_user: impl Into<String>, token: Secret) -> Self {
        Self {
            name: "hibob".into(),
            base_url: "https://api.hibob.com".into(),
            service_user: service_user.into(),
            token,
            allow_plain_http: false,
        }
    }

    /// The source.
    ///
    /// # Errors
    /// `Config` naming `base_url`, `service_user` or `token` (empty; a service user id with a
    /// `:` cannot be sent in basic authentication).
    pub fn build(self) -> Result<HibobSource> {
        if self.service_user.is_empty() || self.service_user.contains(':') {
            return Err(Error::config("service_user", "empty or holds a ':'"));
        }
        if self.token.expose().is_empty() {
            return Err(Error::config("token", "empty"));
        }
        let http = HttpClient::builder(self.base_url.as_str())
            .allow_plain_http(self.allow_plain_http)
            .token_provider(StaticToken::basic(&self.service_user, &self.token))
            .build()?;
        Ok(HibobSource {
            name: self.name,
            http,
        })
    }
}

/// Bob's people as a source of truth. See the [module docs](self).
#[derive(Clone)]
pub struct HibobSource {
    name: String,
    http: HttpClient,
}

impl fmt::Debug for HibobSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HibobSource")
            .field("name", &self.name)
            .field("http", &self.http)
            .finish()
    }
}

#[derive(Debug, Deserialize)]
struct Employees {
    employees: Vec<BobPerson>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BobPerson {
    id: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    surname: Option<String>,
    #[serde(default)]
    work: Work,
    #[serde(default)]
    internal: Internal,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Work {
    #[serde(default)]
    employee_id_in_company: Option<serde_json::Value>,
    #[serde(default)]
    reports_to: Option<ReportsTo>,
}

#[derive(Debug, Deserialize)]
struct ReportsTo {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Internal {
    #[serde(default)]
    lifecycle_status: Option<String>,
    #[serde(default)]
    termination_date: Option<String>,
}

/// Bob's lifecycle status as a lifecycle (see the module docs' table).
fn lifecycle(status: Option<&str>) -> Lifecycle {
    match status.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        Some("terminated" | "inactive") => Lifecycle::Past,
        _ => Lifecycle::Current,
    }
}

fn nonempty(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

impl BobPerson {
    fn record(&self) -> PersonRecord {
        let mut person = Person::new(
            self.id.as_str(),
            nonempty(self.email.as_deref()).unwrap_or(""),
        );
        person.display_name = [
            nonempty(self.first_name.as_deref()),
            nonempty(self.surname.as_deref()),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
        person.employee_id = match &self.work.employee_id_in_company {
            Some(serde_json::Value::String(s)) => nonempty(Some(s)).map(str::to_owned),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        person.manager = self.work.reports_to.as_ref().and_then(|m| {
            nonempty(m.email.as_deref()).map(|email| Manager {
                id: nonempty(m.id.as_deref()).map(PersonId::new),
                email: email.to_owned(),
            })
        });
        PersonRecord {
            person,
            lifecycle: lifecycle(self.internal.lifecycle_status.as_deref()),
            termination_at: nonempty(self.internal.termination_date.as_deref())
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc()),
        }
    }
}

impl HibobSource {
    /// `POST /v1/people/search` for everyone, or for the ids given.
    async fn search(&self, ids: Option<&[String]>) -> Result<Vec<BobPerson>> {
        let mut body = json!({"fields": FIELDS, "showInactive": true});
        if let Some(ids) = ids {
            body["filters"] =
                json!([{"fieldPath": "root.id", "operator": "equals", "values": ids}]);
        }
        let response = self
            .http
            .send(HttpRequest::post(SEARCH).json(body).bucket("people_search"))
            .await?;
        Ok(response.json::<Employees>()?.employees)
    }
}

#[async_trait]
impl SourceOfTruth for HibobSource {
    fn name(&self) -> &str {
        &self.name
    }

    async fn changes(&self, cursor: Option<&Cursor>) -> Result<ChangeBatch> {
        let op = format!("{}.changes", self.name);
        let mut scan = Scan::load(cursor, &self.name)?;
        let people = self
            .search(None)
            .await
            .map_err(|e| e.with_operation(op.clone()))?;
        let mut changes = scan.listed(people.iter().map(BobPerson::record).collect());
        let missing = scan.missing();
        if !missing.is_empty() {
            let mut found: HashMap<String, PersonRecord> = self
                .search(Some(&missing))
                .await
                .map_err(|e| e.with_operation(op.clone()))?
                .iter()
                .map(|p| (p.id.clone(), p.record()))
                .collect();
            for id in missing {
                changes.extend(scan.settle(&id, found.remove(&id)));
            }
        }
        Ok(ChangeBatch {
            changes,
            next: scan.save(),
            more: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_statuses_map_as_documented() {
        for (status, want) in [
            ("hired", Lifecycle::Current),
            ("employed", Lifecycle::Current),
            ("garden leave", Lifecycle::Current),
            ("leave", Lifecycle::Current),
            ("parental leave", Lifecycle::Current),
            ("terminated", Lifecycle::Past),
            ("inactive", Lifecycle::Past),
            ("Terminated", Lifecycle::Past),
            ("sabbatical", Lifecycle::Current),
        ] {
            assert_eq!(lifecycle(Some(status)), want, "{status}");
        }
        assert_eq!(lifecycle(None), Lifecycle::Current, "not readable");
    }

    #[test]
    fn a_bob_person_becomes_a_person() {
        let p: BobPerson = serde_json::from_value(json!({
            "id": "3001", "email": "ada@example.com", "firstName": "Ada", "surname": "Lovelace",
            "work": {"employeeIdInCompany": 42, "reportsTo": {"id": "3000", "email": "boss@example.com"}},
            "internal": {"lifecycleStatus": "terminated", "terminationDate": "2026-11-20"}
        }))
        .unwrap();
        let r = p.record();
        assert_eq!(r.person.display_name, "Ada Lovelace");
        assert_eq!(r.person.employee_id.as_deref(), Some("42"));
        assert_eq!(r.person.manager.unwrap().email, "boss@example.com");
        assert_eq!(r.lifecycle, Lifecycle::Past);
        assert_eq!(
            r.termination_at.unwrap().date_naive().to_string(),
            "2026-11-20"
        );
    }
}
