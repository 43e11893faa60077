//! [`AdpSource`]: ADP Workforce Now as a source of truth, from the Worker API v2, full scan
//! and diff.
//!
//! # Endpoints
//! - `POST {token_url}` (default `https://accounts.adp.com/auth/oauth/v2/token`): OAuth 2.0
//!   client credentials, the client's id and secret as HTTP basic; the token is cached and
//!   fetched again before `expires_in` runs out, or after a 401.
//! - `GET {base}/hr/v2/workers?$top=<n>&$skip=<offset>`: the workers, `{"workers": [...]}`,
//!   `$top` at most 100. ADP answers `204 No Content` once `$skip` is past the last worker;
//!   a page shorter than `$top` is the last one too.
//! - `GET {base}/hr/v2/workers/{associateOID}`: one worker (`{"workers": [{...}]}`), for a
//!   worker last reported current and no longer listed (404 or 204: gone) and for the manager
//!   of a reported worker (their work email), once per manager per call.
//!
//! The paths and parameters are those of ADP's public API Explorer, whose Postman collection
//! is the only machine-readable description ADP publishes (vendored reduced, see the
//! simulator); the worker's fields are from ADP's Worker v2 API guide.
//!
//! # Authentication and mutual TLS
//! ADP requires a client certificate (mutual TLS) on `accounts.adp.com` and `api.adp.com` in
//! production: [`AdpConfig::with_client_identity`] takes the certificate ADP signed for the
//! client and its key ([`ClientIdentity::from_pem`]), presented to both hosts. The client
//! secret is a [`Secret`]; neither appears in `Debug`.
//!
//! # Status
//! `workerStatus.statusCode.codeValue`: `Active` is current; every other value (`Inactive`,
//! `Terminated`, and any value ADP adds) is past, as the rule "worker status changes from
//! active" says. The termination date is the primary work assignment's `terminationDate`,
//! else `workerDates.terminationDate`. The manager is the primary assignment's first
//! `reportsTo` (its `associateOID`, read for the email). The person id is the
//! `associateOID`, the employee id `workerID.idValue`, the email the first business email,
//! the other business emails aliases.
//!
//! # Limitations
//! Full scan only: the Worker API has no changed-since read (ADP's event notifications need
//! a webhook subscription). `$skip` paging over a listing that changes while it is read may
//! skip or repeat a worker; the next full scan settles it.
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use offboard_core::source::{ChangeBatch, Cursor, PersonRecord, SourceOfTruth};
use offboard_core::{Error, ErrorKind, Lifecycle, Manager, Person, PersonId, Result, Secret};
use offboard_http::{
    ClientAuthMethod, ClientIdentity, ClientSecretCredentials, HttpClient, HttpRequest,
};
use serde::Deserialize;

use crate::full_scan::{self, DEFAULT_BATCH, Listed, Lister};

const WORKERS: [&str; 3] = ["hr", "v2", "workers"];
/// The largest `$top` the source asks for.
pub const MAX_PAGE: u32 = 100;

/// How to reach an ADP Workforce Now tenant. `Debug` shows no secret.
#[derive(Debug, Clone)]
pub struct AdpConfig {
    name: String,
    base_url: String,
    token_url: String,
    client_id: String,
    client_secret: Secret,
    page_size: u32,
    batch: usize,
    identity: Option<ClientIdentity>,
    timeout: Duration,
    allow_plain_http: bool,
}

impl AdpConfig {
    /// ADP's production hosts, read with this client's id and secret.
    pub fn new(client_id: impl Into<String>, client_secret: Secret) -> Self {
        Self {
            name: "adp".into(),
            base_url: "https://api.adp.com".into(),
            token_url: "https://accounts.adp.com/auth/oauth/v2/token".into(),
            client_id: client_id.into(),
            client_secret,
            page_size: MAX_PAGE,
            batch: DEFAULT_BATCH,
            identity: None,
            timeout: Duration::from_secs(60),
            allow_plain_http: false,
        }
    }

    /// The API host (default `https://api.adp.com`).
    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// The token endpoint (default `https://accounts.adp.com/auth/oauth/v2/token`).
    pub fn with_token_url(mut self, url: impl Into<String>) -> Self {
        self.token_url = url.into();
        self
    }

    /// The source's name (the cursor's key). Default `adp`.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Workers per page (`$top`), 1 to 100 (default 100).
    pub fn with_page_size(mut self, n: u32) -> Self {
        self.page_size = n.clamp(1, MAX_PAGE);
        self
    }

    /// How many people one [`SourceOfTruth::changes`] call lists at least, page by page,
    /// before it returns (default 5,000; 1: one page a call). The cursor, which holds what
    /// was last reported of everyone, is saved between calls.
    pub fn with_batch(mut self, people: usize) -> Self {
        self.batch = people.max(1);
        self
    }

    /// The client certificate ADP issued for this client (mutual TLS, required in
    /// production): presented to the token endpoint and the API.
    pub fn with_client_identity(mut self, identity: ClientIdentity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// The timeout of one request. Default 60 s.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Allows plain `http` on loopback (tests and simulators only).
    pub fn with_allow_plain_http(mut self, allow: bool) -> Self {
        self.allow_plain_http = allow;
        self
    }

    /// Validates and builds the source.
    ///
    /// # Errors
    /// `Config` naming `base_url`, `token_url`, `client_id` or `client_secret`.
    pub fn build(self) -> Result<AdpSource> {
        let tokens =
            ClientSecretCredentials::builder(self.token_url, self.client_id, self.client_secret)
                .client_auth(ClientAuthMethod::Basic)
                .timeout(self.timeout)
                .allow_plain_http(self.allow_plain_http)
                .build()?;
        let http = HttpClient::builder(self.base_url)
            .token_provider(tokens)
            .timeout(self.timeout)
            .allow_plain_http(self.allow_plain_http)
            .build()?;
        Ok(AdpSource {
            name: self.name,
            http,
            page_size: self.page_size,
            batch: self.batch,
            managers: Mutex::default(),
        })
    }
}

/// ADP Workforce Now's workers. See the [module docs](self).
#[derive(Debug)]
pub struct AdpSource {
    name: String,
    http: HttpClient,
    page_size: u32,
    batch: usize,
    /// Managers' emails read during the current call, by associateOID.
    managers: Mutex<HashMap<String, Option<String>>>,
}

#[derive(Debug, Default, Deserialize)]
struct Workers {
    #[serde(default)]
    workers: Vec<Worker>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Worker {
    #[serde(rename = "associateOID")]
    associate_oid: String,
    #[serde(rename = "workerID")]
    worker_id: IdValue,
    person: WorkerPerson,
    business_communication: Communication,
    worker_status: Status,
    worker_dates: Dates,
    work_assignments: Vec<Assignment>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct IdValue {
    id_value: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct WorkerPerson {
    legal_name: Name,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Name {
    given_name: String,
    family_name1: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Communication {
    emails: Vec<Email>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Email {
    email_uri: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Status {
    status_code: Code,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Code {
    code_value: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Dates {
    termination_date: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Assignment {
    primary_indicator: bool,
    termination_date: Option<String>,
    reports_to: Vec<ReportsTo>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ReportsTo {
    #[serde(rename = "associateOID")]
    associate_oid: String,
}

/// `workerStatus.statusCode.codeValue`'s lifecycle: `Active` (any case) is current, every
/// other value past.
pub fn lifecycle(code: &str) -> Lifecycle {
    if code.trim().eq_ignore_ascii_case("active") {
        Lifecycle::Current
    } else {
        Lifecycle::Past
    }
}

impl Worker {
    fn primary(&self) -> Option<&Assignment> {
        self.work_assignments
            .iter()
            .find(|a| a.primary_indicator)
            .or_else(|| self.work_assignments.first())
    }

    /// The record, the manager known by associateOID only (an empty email).
    fn record(&self) -> PersonRecord {
        let mut emails = self
            .business_communication
            .emails
            .iter()
            .map(|e| e.email_uri.trim().to_owned())
            .filter(|e| !e.is_empty());
        let email = emails.next().unwrap_or_default();
        let mut person = Person::new(self.associate_oid.as_str(), email);
        person.aliases = emails.collect();
        let name = &self.person.legal_name;
        person.display_name = full_scan::full_name(&name.given_name, &name.family_name1);
        person.employee_id = Some(self.worker_id.id_value.clone()).filter(|i| !i.is_empty());
        let primary = self.primary();
        person.manager = primary
            .and_then(|a| a.reports_to.iter().find(|r| !r.associate_oid.is_empty()))
            .map(|r| Manager {
                id: Some(PersonId::new(r.associate_oid.as_str())),
                email: String::new(),
            });
        let ended = primary
            .and_then(|a| a.termination_date.as_deref())
            .or(self.worker_dates.termination_date.as_deref());
        PersonRecord {
            person,
            lifecycle: lifecycle(&self.worker_status.status_code.code_value),
            termination_at: full_scan::date(ended),
        }
    }
}

impl AdpSource {
    fn managers(&self) -> MutexGuard<'_, HashMap<String, Option<String>>> {
        self.managers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `GET /hr/v2/workers/{aoid}`; `None` on 404 or 204.
    async fn worker(&self, aoid: &str) -> Result<Option<Worker>> {
        let mut path = WORKERS.map(str::to_owned).to_vec();
        path.push(aoid.to_owned());
        match self
            .http
            .send(HttpRequest::get(path).bucket("worker"))
            .await
        {
            Ok(r) if r.status().as_u16() == 204 => Ok(None),
            Ok(r) => Ok(r.json::<Workers>()?.workers.into_iter().next()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The work email of the manager `aoid`, read once per call.
    async fn manager_email(&self, aoid: &str) -> Result<Option<String>> {
        let known = self.managers().get(aoid).cloned();
        if let Some(known) = known {
            return Ok(known);
        }
        let email = self
            .worker(aoid)
            .await?
            .map(|w| w.record().person.email)
            .filter(|e| !e.is_empty());
        self.managers().insert(aoid.to_owned(), email.clone());
        Ok(email)
    }
}

#[async_trait]
impl Lister for AdpSource {
    fn batch(&self) -> usize {
        self.batch
    }

    async fn page(&self, at: Option<&str>) -> Result<Listed> {
        let skip: u64 = match at {
            None => 0,
            Some(s) => s.parse().map_err(|_| {
                Error::invalid_input(format!(
                    "{}: the cursor is not ours: $skip {s:?}",
                    self.name
                ))
            })?,
        };
        let response = self
            .http
            .send(
                HttpRequest::get(WORKERS)
                    .query("$top", self.page_size.to_string())
                    .query("$skip", skip.to_string())
                    .bucket("workers"),
            )
            .await?;
        if response.status().as_u16() == 204 {
            return Ok(Listed::default());
        }
        let workers = response.json::<Workers>()?.workers;
        let full = workers.len() as u64 >= u64::from(self.page_size);
        Ok(Listed {
            next: full.then(|| (skip + workers.len() as u64).to_string()),
            records: workers.iter().map(Worker::record).collect(),
        })
    }

    async fn read(&self, id: &str) -> Result<Option<PersonRecord>> {
        Ok(self.worker(id).await?.map(|w| w.record()))
    }

    async fn complete(&self, mut records: Vec<PersonRecord>) -> Result<Vec<PersonRecord>> {
        for r in &mut records {
            let Some(aoid) = r.person.manager.as_ref().and_then(|m| m.id.clone()) else {
                continue;
            };
            r.person.manager = self
                .manager_email(aoid.as_str())
                .await?
                .map(|email| Manager {
                    id: Some(aoid),
                    email,
                });
        }
        Ok(records)
    }
}

#[async_trait]
impl SourceOfTruth for AdpSource {
    fn name(&self) -> &str {
        &self.name
    }

    async fn changes(&self, cursor: Option<&Cursor>) -> Result<ChangeBatch> {
        self.managers().clear();
        full_scan::changes(self, &self.name, cursor).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_lifecycles() {
        for (code, want) in [
            ("Active", Lifecycle::Current),
            ("ACTIVE", Lifecycle::Current),
            ("Inactive", Lifecycle::Past),
            ("Terminated", Lifecycle::Past),
            ("Deceased", Lifecycle::Past),
            ("", Lifecycle::Past),
        ] {
            assert_eq!(lifecycle(code), want, "{code:?}");
        }
    }

    #[test]
    fn a_worker_becomes_a_person() {
        let w: Worker = serde_json::from_value(serde_json::json!({
            "associateOID": "G3X", "workerID": {"idValue": "E1"},
            "person": {"legalName": {"givenName": "Ada", "familyName1": "Tester"}},
            "businessCommunication": {"emails": [{"emailUri": "ada@example.com"},
                                                 {"emailUri": "a.tester@example.com"}]},
            "workerStatus": {"statusCode": {"codeValue": "Terminated"}},
            "workerDates": {"terminationDate": "2026-10-01"},
            "workAssignments": [{"primaryIndicator": false, "terminationDate": "2026-09-01"},
                                {"primaryIndicator": true, "terminationDate": "2026-11-02",
                                 "reportsTo": [{"associateOID": "G3B"}]}]
        }))
        .unwrap();
        let r = w.record();
        assert_eq!(r.person.id.as_str(), "G3X");
        assert_eq!(r.person.email, "ada@example.com");
        assert_eq!(r.person.aliases, ["a.tester@example.com"]);
        assert_eq!(r.person.display_name, "Ada Tester");
        assert_eq!(r.person.employee_id.as_deref(), Some("E1"));
        assert_eq!(r.lifecycle, Lifecycle::Past);
        assert_eq!(
            r.termination_at
                .map(|t| t.date_naive().to_string())
                .as_deref(),
            Some("2026-11-02"),
            "the primary assignment's"
        );
        assert_eq!(
            r.person
                .manager
                .and_then(|m| m.id)
                .map(|i| i.as_str().to_owned())
                .as_deref(),
            Some("G3B")
        );
    }
}
