//! [`PersonioSource`]: Personio as a [`SourceOfTruth`], read incrementally by `updated_since`
//! with a periodic full scan.
//!
//! # Endpoints
//! Relative to `https://api.personio.de` (Personio's OpenAPI descriptions,
//! `personio/api-docs`; reference: <https://developer.personio.de/reference>):
//! - `POST /v1/auth`: the token flow (see below).
//! - `GET /v1/company/employees?limit=<n>&offset=<k>&attributes[]=…`: the full listing, paged
//!   by `limit` (1 to 200, default 200) and `offset`.
//! - `GET /v1/company/employees?updated_since=<time>&attributes[]=…`: everyone modified after
//!   the time, in one answer (Personio ignores `limit` and `offset` with it).
//! - `GET /v1/company/employees?limit=1&offset=0`: `metadata.total_elements`, the head count.
//! - `GET /v1/company/employees/{employee_id}`: a supervisor's email, and a person last
//!   reported current whom a full scan no longer lists (404: gone).
//!
//! Attributes read: `first_name`, `last_name`, `email`, `status`, `supervisor`,
//! `termination_date`, `last_modified_at`, and, when configured, the custom attribute holding
//! the employee number (`dynamic_…`; Personio has no standard one).
//!
//! # Authentication
//! The API credentials (client id and secret) are posted to `/v1/auth`; the token it returns
//! is sent as `Bearer` and reused until it expires (`expires_in`, a day) or the API answers
//! 401, when one new token is fetched and the request sent again.
//!
//! # Incremental reads and paging
//! The first call, and every `full_scan_every` (default 1 h), runs a full scan: the listing
//! page by page (`more` while pages remain; the offset is kept in the cursor, so a restart
//! continues), reporting who is new or changed ([`Scan`]); someone last reported current and
//! no longer listed is read by id. Between full scans each poll reads what changed since the
//! server's clock (`Date`) when the last read began (a full scan's first page, or the last
//! incremental read) minus the overlap (default 5 s, at least 1 s: Personio keeps whole
//! seconds, so a change in the same second as that read is read again rather than lost),
//! written in the offset Personio writes `last_modified_at` in (`updated_since` carries no
//! offset: Personio reads it in the company's time zone); without a `Date`, from the latest
//! `last_modified_at` seen. What the overlap repeats is dropped by the fingerprints. Each poll
//! also reads the head count: fewer employees than the source
//! knows means someone was deleted, and a full scan starts at once.
//!
//! # Status mapping
//! | Personio `status` | lifecycle |
//! |---|---|
//! | `active`, `onboarding`, `leave` | current |
//! | `inactive` | past |
//! | anything else, or not readable | current (an unknown value never triggers) |
//!
//! `termination_date` (its calendar date, as Personio writes it) is the termination date.
//!
//! # Limitations
//! - Personio has one work address per employee: no aliases are reported.
//! - A deletion offset by a hire between two polls is noticed by the next full scan only.
//! - The v1 Personnel Data API; Personio's v2 persons API is not read.

mod auth;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, FixedOffset, Utc};
use offboard_core::source::{ChangeBatch, Cursor, PersonRecord, SourceOfTruth};
use offboard_core::{Error, Lifecycle, Manager, Person, PersonId, Result, Secret};
use offboard_http::header::DATE;
use offboard_http::{HttpClient, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use crate::config::config_setters;
use crate::scan::Scan;

const EMPLOYEES: [&str; 3] = ["v1", "company", "employees"];
const ATTRIBUTES: [&str; 7] = [
    "first_name",
    "last_name",
    "email",
    "status",
    "supervisor",
    "termination_date",
    "last_modified_at",
];

/// How to reach one Personio company. `Debug` never shows the secret.
#[derive(Debug, Clone)]
pub struct PersonioConfig {
    /// The source's name (the cursor's key); default `personio`.
    pub name: String,
    /// `https://api.personio.de`, or a simulator.
    pub base_url: String,
    /// The API credentials' client id.
    pub client_id: String,
    /// The API credentials' secret.
    pub client_secret: Secret,
    /// Employees per page of a full scan, 1 to 200 (default 200).
    pub page_size: u32,
    /// How far before the server's clock at the last read each incremental read starts
    /// (default 5 s, at least 1 s: Personio keeps whole seconds).
    pub overlap: Duration,
    /// How often a full scan runs (default 1 h).
    pub full_scan_every: Duration,
    /// The custom attribute holding the employee number (`dynamic_…`), if any.
    pub employee_number_attribute: Option<String>,
    /// Allow a plain `http` base URL (loopback tests only).
    pub allow_plain_http: bool,
}

impl PersonioConfig {
    config_setters!();

    /// Personio's API with these credentials.
    pub fn new(client_id: impl Into<String>, client_secret: Secret) -> Self {
        Self {
            name: "personio".into(),
            base_url: "https://api.personio.de".into(),
            client_id: client_id.into(),
            client_secret,
            page_size: 200,
            overlap: Duration::from_secs(5),
            full_scan_every: Duration::from_secs(3600),
            employee_number_attribute: None,
            allow_plain_http: false,
        }
    }

    /// Employees per page (clamped to 1..=200).
    pub fn with_page_size(mut self, n: u32) -> Self {
        self.page_size = n.clamp(1, 200);
        self
    }

    /// The overlap of each incremental read with the last.
    pub fn with_overlap(mut self, overlap: Duration) -> Self {
        self.overlap = overlap.max(Duration::from_secs(1));
        self
    }

    /// How often a full scan runs.
    pub fn with_full_scan_every(mut self, every: Duration) -> Self {
        self.full_scan_every = every;
        self
    }

    /// Reads the employee number from this custom attribute (`dynamic_…`).
    pub fn with_employee_number_attribute(mut self, attribute: impl Into<String>) -> Self {
        self.employee_number_attribute = Some(attribute.into());
        self
    }

    /// The source.
    ///
    /// # Errors
    /// `Config` naming `base_url`, `client_id` or `client_secret`.
    pub fn build(self) -> Result<PersonioSource> {
        if self.client_id.is_empty() {
            return Err(Error::config("client_id", "empty"));
        }
        if self.client_secret.expose().is_empty() {
            return Err(Error::config("client_secret", "empty"));
        }
        let base = Url::parse(&self.base_url)
            .map_err(|e| Error::config("base_url", format!("not a URL: {e}")))?;
        let auth = auth::PersonioAuth::new(
            &base,
            self.client_id.clone(),
            self.client_secret.clone(),
            self.allow_plain_http,
        )?;
        let http = HttpClient::builder(self.base_url.as_str())
            .allow_plain_http(self.allow_plain_http)
            .shared_token_provider(Arc::new(auth))
            .build()?;
        let mut attributes: Vec<String> = ATTRIBUTES.map(str::to_owned).to_vec();
        attributes.extend(self.employee_number_attribute.clone());
        Ok(PersonioSource {
            name: self.name,
            http,
            page_size: self.page_size.clamp(1, 200),
            overlap: self.overlap.max(Duration::from_secs(1)),
            full_scan_every: self.full_scan_every,
            number: self.employee_number_attribute,
            attributes,
        })
    }
}

/// Personio's employees as a source of truth. See the [module docs](self).
#[derive(Clone)]
pub struct PersonioSource {
    name: String,
    http: HttpClient,
    page_size: u32,
    overlap: Duration,
    full_scan_every: Duration,
    number: Option<String>,
    attributes: Vec<String>,
}

impl fmt::Debug for PersonioSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersonioSource")
            .field("name", &self.name)
            .field("http", &self.http)
            .field("page_size", &self.page_size)
            .field("overlap", &self.overlap)
            .field("full_scan_every", &self.full_scan_every)
            .finish()
    }
}

/// What the cursor keeps.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// Fingerprints; `since` is where the next incremental read starts: the server's clock
    /// when the last read began, in Personio's offset.
    #[serde(flatten)]
    scan: Scan,
    /// A full scan in progress: the offset of its next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    full_at: Option<u64>,
    /// When the last full scan ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_full: Option<DateTime<Utc>>,
    /// The employee ids Personio lists, as far as the source knows.
    #[serde(default)]
    ids: BTreeSet<String>,
    /// A full scan in progress: the server's clock when its first page was answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    started: Option<String>,
    /// The latest `last_modified_at` seen, as Personio wrote it (its offset is the company's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    latest: Option<String>,
    /// Supervisors read by id: id → email (refreshed whenever their own record is read).
    #[serde(default)]
    managers: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct Listing {
    #[serde(default)]
    metadata: Option<Metadata>,
    data: Vec<Employee>,
}

#[derive(Debug, Deserialize)]
struct Metadata {
    total_elements: u64,
}

#[derive(Debug, Deserialize)]
struct One {
    data: Employee,
}

#[derive(Debug, Deserialize)]
struct Employee {
    attributes: HashMap<String, Attribute>,
}

#[derive(Debug, Deserialize)]
struct Attribute {
    #[serde(default)]
    value: Value,
}

/// Personio's `status` as a lifecycle (see the module docs' table).
fn lifecycle(status: Option<&str>) -> Lifecycle {
    match status {
        Some("inactive") => Lifecycle::Past,
        _ => Lifecycle::Current,
    }
}

impl Employee {
    fn value(&self, name: &str) -> Option<&Value> {
        self.attributes
            .get(name)
            .map(|a| &a.value)
            .filter(|v| !v.is_null())
    }

    fn text(&self, name: &str) -> Option<String> {
        match self.value(name)? {
            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    fn id(&self) -> Option<String> {
        self.text("id")
    }

    fn supervisor(&self) -> Option<(String, Option<String>)> {
        let attributes = self.value("supervisor")?.get("attributes")?;
        let field = |k: &str| match attributes.get(k).map(|a| a.get("value").unwrap_or(a)) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        Some((field("id")?, field("email")))
    }

    fn record(&self, id: String, number: Option<&str>) -> PersonRecord {
        let mut person = Person::new(id.as_str(), self.text("email").unwrap_or_default());
        person.display_name = [self.text("first_name"), self.text("last_name")]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        person.employee_id = number.and_then(|n| self.text(n));
        let termination_at = self
            .text("termination_date")
            .and_then(|d| {
                DateTime::parse_from_rfc3339(&d)
                    .map(|t| t.date_naive())
                    .or_else(|_| chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d"))
                    .ok()
            })
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc());
        PersonRecord {
            person,
            lifecycle: lifecycle(self.text("status").as_deref()),
            termination_at,
        }
    }
}

impl PersonioSource {
    /// Sends `request`; after a 401 (the token provider then drops its token) once more.
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse> {
        match self.http.send(request.clone()).await {
            // The API's 401, not the token endpoint's refusal: the token expired early.
            Err(e) if e.context().any(|(k, v)| k == "status" && v == "401") => {
                self.http.send(request).await
            }
            other => other,
        }
    }

    fn listing(&self) -> HttpRequest {
        self.attributes
            .iter()
            .fold(HttpRequest::get(EMPLOYEES).bucket("employees"), |r, a| {
                r.query("attributes[]", a.as_str())
            })
    }

    /// `GET /v1/company/employees/{id}`; `None` on 404 (and for an id that is not a number).
    async fn employee(&self, id: &str) -> Result<Option<Employee>> {
        if id.is_empty() || id.len() > 19 || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(None);
        }
        let mut path = EMPLOYEES.map(str::to_owned).to_vec();
        path.push(id.to_owned());
        crate::found(self.send(HttpRequest::get(path).bucket("employee")).await)?
            .map(|r| r.json::<One>().map(|v| v.data))
            .transpose()
    }

    /// The records of `employees`, with their supervisors' addresses: from the supervisor's
    /// own record when it is in `employees`, else from `managers` (supervisors already read,
    /// kept in the cursor), else read by id.
    async fn records(
        &self,
        employees: &[Employee],
        managers: &mut BTreeMap<String, String>,
    ) -> Result<Vec<PersonRecord>> {
        let batch: HashMap<String, String> = employees
            .iter()
            .filter_map(|e| Some((e.id()?, e.text("email")?)))
            .collect();
        for (id, email) in managers.iter_mut() {
            if let Some(fresh) = batch.get(id) {
                email.clone_from(fresh);
            }
        }
        let mut out = Vec::with_capacity(employees.len());
        for e in employees {
            let Some(id) = e.id() else { continue };
            let mut record = e.record(id, self.number.as_deref());
            if let Some((manager, email)) = e.supervisor() {
                let email = match email.or_else(|| batch.get(&manager).cloned()) {
                    Some(email) => Some(email),
                    None => match managers.get(&manager) {
                        Some(known) => Some(known.clone()),
                        None => {
                            let found =
                                self.employee(&manager).await?.and_then(|m| m.text("email"));
                            if let Some(email) = &found {
                                managers.insert(manager.clone(), email.clone());
                            }
                            found
                        }
                    },
                };
                record.person.manager = email.map(|email| Manager {
                    id: Some(PersonId::new(manager.as_str())),
                    email,
                });
            }
            out.push(record);
        }
        Ok(out)
    }

    /// Notes the latest `last_modified_at` of `employees` in `latest`.
    fn advance(latest: &mut Option<String>, employees: &[Employee]) {
        for e in employees {
            let Some(t) = e.text("last_modified_at") else {
                continue;
            };
            let later = match (DateTime::parse_from_rfc3339(&t), latest.as_deref()) {
                (Ok(t), Some(s)) => DateTime::parse_from_rfc3339(s).map_or(true, |s| t > s),
                (Ok(_), None) => true,
                (Err(_), _) => false,
            };
            if later {
                *latest = Some(t);
            }
        }
    }

    /// `time` in the offset of `latest` (as Personio writes times), when both parse.
    fn in_zone(time: &str, latest: Option<&str>) -> String {
        match (
            DateTime::parse_from_rfc3339(time),
            latest.and_then(|l| DateTime::parse_from_rfc3339(l).ok()),
        ) {
            (Ok(t), Some(l)) => t.with_timezone(l.offset()).to_rfc3339(),
            _ => time.to_owned(),
        }
    }

    /// The server's clock when it answered (`Date`), in the offset Personio writes times in
    /// (that of `latest`; UTC before anything was read); else `latest` itself.
    fn answered_at(response: &HttpResponse, latest: Option<&str>) -> Option<String> {
        let latest = latest.and_then(|l| DateTime::parse_from_rfc3339(l).ok());
        let zone = latest.map_or_else(|| FixedOffset::east_opt(0).expect("UTC"), |l| *l.offset());
        response
            .headers()
            .get(DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| DateTime::parse_from_rfc2822(v).ok())
            .map(|t| t.with_timezone(&zone))
            .or(latest)
            .map(|t| t.to_rfc3339())
    }

    /// One page of a full scan.
    async fn full_page(&self, state: &mut State, offset: u64) -> Result<(Vec<PersonRecord>, bool)> {
        if offset == 0 {
            state.ids.clear();
        }
        let response = self
            .send(
                self.listing()
                    .query("limit", self.page_size.to_string())
                    .query("offset", offset.to_string()),
            )
            .await?;
        let listing: Listing = response.json()?;
        if offset == 0 {
            state.started = Self::answered_at(&response, state.latest.as_deref());
        }
        let records = self.records(&listing.data, &mut state.managers).await?;
        Self::advance(&mut state.latest, &listing.data);
        state
            .ids
            .extend(records.iter().map(|r| r.person.id.as_str().to_owned()));
        let mut changes = state.scan.listed(records);
        let read = offset + listing.data.len() as u64;
        let total = listing.metadata.map_or(u64::MAX, |m| m.total_elements);
        if listing.data.len() as u32 == self.page_size && read < total {
            state.full_at = Some(read);
            state.scan.continue_at(read.to_string());
            return Ok((changes, true));
        }
        for id in state.scan.missing() {
            let read = match self.employee(&id).await? {
                Some(e) => self
                    .records(std::slice::from_ref(&e), &mut state.managers)
                    .await?
                    .pop(),
                None => None,
            };
            if read.is_some() {
                state.ids.insert(id.clone());
            }
            changes.extend(state.scan.settle(&id, read));
        }
        state.full_at = None;
        state.last_full = Some(Utc::now());
        // In the company's offset, known now that the scan read everyone.
        let started = state.started.take();
        state.scan.since = match (started.as_deref(), state.latest.as_deref()) {
            (Some(s), latest) => Some(Self::in_zone(s, latest)),
            (None, latest) => latest.map(str::to_owned),
        };
        Ok((changes, false))
    }

    /// An incremental read; `true` when a full scan must start (someone was deleted).
    async fn incremental(&self, state: &mut State) -> Result<(Vec<PersonRecord>, bool)> {
        let since = state
            .scan
            .since
            .as_deref()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .ok_or_else(|| Error::internal("an incremental read without a position"))?;
        let overlap = chrono::Duration::from_std(self.overlap).unwrap_or_default();
        let from: DateTime<FixedOffset> = since - overlap;
        let response = self
            .send(self.listing().query(
                "updated_since",
                from.format("%Y-%m-%dT%H:%M:%S").to_string(),
            ))
            .await?;
        let listing: Listing = response.json()?;
        let answered = Self::answered_at(&response, state.latest.as_deref());
        let records = self.records(&listing.data, &mut state.managers).await?;
        Self::advance(&mut state.latest, &listing.data);
        let mut changes = Vec::new();
        for record in records {
            state.ids.insert(record.person.id.as_str().to_owned());
            changes.extend(state.scan.observed(record));
        }
        let head: Listing = self
            .send(
                HttpRequest::get(EMPLOYEES)
                    .query("limit", "1")
                    .query("offset", "0")
                    .bucket("employees"),
            )
            .await?
            .json()?;
        let total = head.metadata.map_or(u64::MAX, |m| m.total_elements);
        if let Some(answered) = answered {
            state.scan.since = Some(answered);
        }
        Ok((changes, total < state.ids.len() as u64))
    }
}

#[async_trait]
impl SourceOfTruth for PersonioSource {
    fn name(&self) -> &str {
        &self.name
    }

    async fn changes(&self, cursor: Option<&Cursor>) -> Result<ChangeBatch> {
        let op = format!("{}.changes", self.name);
        let mut state: State = Cursor::decode(cursor, &self.name)?;
        let due = state
            .last_full
            .is_none_or(|t| (Utc::now() - t).to_std().unwrap_or_default() >= self.full_scan_every)
            || state.scan.since.is_none();
        let (changes, more) = match state.full_at {
            Some(offset) => self.full_page(&mut state, offset).await,
            None if due => self.full_page(&mut state, 0).await,
            None => match self.incremental(&mut state).await {
                Ok((changes, true)) => {
                    state.full_at = Some(0);
                    Ok((changes, true))
                }
                other => other,
            },
        }
        .map_err(|e| e.with_operation(op))?;
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

    #[test]
    fn statuses_map_as_documented() {
        for (status, want) in [
            ("active", Lifecycle::Current),
            ("onboarding", Lifecycle::Current),
            ("leave", Lifecycle::Current),
            ("inactive", Lifecycle::Past),
            ("archived", Lifecycle::Current),
        ] {
            assert_eq!(lifecycle(Some(status)), want, "{status}");
        }
        assert_eq!(lifecycle(None), Lifecycle::Current);
    }

    #[test]
    fn an_employee_becomes_a_person() {
        let e: Employee = serde_json::from_value(serde_json::json!({"attributes": {
            "id": {"value": 7}, "first_name": {"value": "Ada"}, "last_name": {"value": "L"},
            "email": {"value": "ada@example.com"}, "status": {"value": "inactive"},
            "termination_date": {"value": "2026-11-02T00:00:00+01:00"},
            "dynamic_1": {"value": "E-7"},
            "supervisor": {"value": {"type": "Employee", "attributes": {"id": {"value": 3}}}}
        }}))
        .unwrap();
        let r = e.record(e.id().unwrap(), Some("dynamic_1"));
        assert_eq!(r.person.id.as_str(), "7");
        assert_eq!(r.person.employee_id.as_deref(), Some("E-7"));
        assert_eq!(r.lifecycle, Lifecycle::Past);
        assert_eq!(
            r.termination_at.unwrap().date_naive().to_string(),
            "2026-11-02",
            "the calendar date Personio wrote, not the UTC instant"
        );
        assert_eq!(e.supervisor(), Some(("3".to_owned(), None)));
    }
}
