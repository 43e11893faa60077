//! [`BambooHrSource`]: BambooHR as a [`SourceOfTruth`], read incrementally through BambooHR's
//! changed-employees endpoint.
//!
//! # Endpoints
//! Relative to `https://{companyDomain}.bamboohr.com` (BambooHR's OpenAPI description,
//! `BambooHR/bhr-api-php` `specs/public.yaml`; reference: <https://documentation.bamboohr.com/reference>):
//! - `GET /api/v1/employees/changed?since=<ISO 8601>`: every employee changed (`Inserted`,
//!   `Updated`, `Deleted`) at or after `since`, with their last-changed time and the `latest`.
//! - `GET /api/v1/employees/{id}?fields=firstName,lastName,workEmail,employeeNumber,status,terminationDate,reportsToId`:
//!   one employee's fields; the manager (`reportsToId`) is read the same way for their
//!   `workEmail`.
//!
//! Every request asks for JSON (`Accept: application/json`, as offboard-http sends it:
//! BambooHR answers XML otherwise).
//!
//! # Authentication
//! HTTP basic with the API key as the user name and `x` as the password, as BambooHR documents.
//!
//! # Incremental reads and paging
//! A poll starts with one changed-employees read from the server's clock (`Date`) at the last
//! listing minus the overlap (default 60 s: BambooHR keeps whole seconds, so a change in the
//! same second as the last listing is read again rather than lost; without a `Date`, from the
//! latest last-changed time listed). The first poll reads from the Unix epoch:
//! everyone. The changed ids wait in the cursor and are read `page_size` (default 100) per
//! [`SourceOfTruth::changes`] call (`more` while some wait), so a restart continues with the
//! ids not yet read. An employee whose last-changed time is the one already read, and older
//! than the server's clock (`Date`) at the listing that named them, is not read again; what the
//! overlap repeats otherwise is dropped by the fingerprints ([`Scan`]).
//!
//! # Status mapping
//! | BambooHR `status` | lifecycle |
//! |---|---|
//! | `Active` | current |
//! | `Inactive` | past |
//! | anything else, or not readable | current (never a trigger: see below) |
//!
//! An unknown status is not evidence of a departure: the person stays current, so no value
//! BambooHR adds later offboards anyone by itself. `terminationDate` (`YYYY-MM-DD`; BambooHR's
//! `0000-00-00` is none) is the termination date. A `Deleted` change, or an id the read
//! answers 404 for, reports a person last reported current [`PersonRecord::gone`].
//!
//! # Limitations
//! - One request per changed employee (BambooHR's batch read, the custom report, is
//!   deprecated): the first poll of a company of N people sends N + 1 requests.
//! - BambooHR has one work address per employee: no aliases are reported.
//! - A manager with no work email is left out.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use offboard_core::source::{ChangeBatch, Cursor, PersonRecord, SourceOfTruth};
use offboard_core::{Error, Lifecycle, Manager, Person, PersonId, Result, Secret};
use offboard_http::header::DATE;
use offboard_http::{HttpClient, HttpRequest, StaticToken};
use serde::{Deserialize, Serialize};

use crate::config::config_setters;
use crate::scan::Scan;

/// The fields read for each employee.
const FIELDS: &str =
    "firstName,lastName,workEmail,employeeNumber,status,terminationDate,reportsToId";
/// Before every change BambooHR can report: the start of the first read.
const EPOCH: &str = "1970-01-01T00:00:00+00:00";

/// How to reach one BambooHR company. `Debug` never shows the API key.
#[derive(Debug, Clone)]
pub struct BambooHrConfig {
    /// The source's name (the cursor's key); default `bamboohr`.
    pub name: String,
    /// `https://{companyDomain}.bamboohr.com`, or another base URL (tests).
    pub base_url: String,
    /// The API key (the basic-auth user name).
    pub api_key: Secret,
    /// Employees read per [`SourceOfTruth::changes`] call, 1 to 1,000 (default 100).
    pub page_size: u32,
    /// How far before the last change seen each poll starts (default 60 s).
    pub overlap: Duration,
    /// Allow a plain `http` base URL (loopback tests only).
    pub allow_plain_http: bool,
}

impl BambooHrConfig {
    config_setters!();

    /// The company `company_domain` (the `mycompany` of `mycompany.bamboohr.com`).
    pub fn new(company_domain: &str, api_key: Secret) -> Self {
        Self {
            name: "bamboohr".into(),
            base_url: format!("https://{company_domain}.bamboohr.com"),
            api_key,
            page_size: 100,
            overlap: Duration::from_secs(60),
            allow_plain_http: false,
        }
    }

    /// Employees read per call (clamped to 1..=1,000).
    pub fn with_page_size(mut self, n: u32) -> Self {
        self.page_size = n.clamp(1, 1000);
        self
    }

    /// The overlap of each poll with the last.
    pub fn with_overlap(mut self, overlap: Duration) -> Self {
        self.overlap = overlap;
        self
    }

    /// The source.
    ///
    /// # Errors
    /// `Config` naming `base_url` (not an https URL) or `api_key` (empty).
    pub fn build(self) -> Result<BambooHrSource> {
        if self.api_key.expose().is_empty() {
            return Err(Error::config("api_key", "empty"));
        }
        let http = HttpClient::builder(self.base_url.as_str())
            .allow_plain_http(self.allow_plain_http)
            .token_provider(StaticToken::basic(self.api_key.expose(), &Secret::new("x")))
            .build()?;
        Ok(BambooHrSource {
            name: self.name,
            http,
            page_size: self.page_size.clamp(1, 1000),
            overlap: self.overlap,
        })
    }
}

/// BambooHR employees as a source of truth. See the [module docs](self).
#[derive(Clone)]
pub struct BambooHrSource {
    name: String,
    http: HttpClient,
    page_size: u32,
    overlap: Duration,
}

impl fmt::Debug for BambooHrSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BambooHrSource")
            .field("name", &self.name)
            .field("http", &self.http)
            .field("page_size", &self.page_size)
            .field("overlap", &self.overlap)
            .finish()
    }
}

/// What the cursor keeps.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    #[serde(flatten)]
    scan: Scan,
    /// Changed employees not read yet: id → `lastChanged`, `None` when deleted.
    #[serde(default)]
    pending: BTreeMap<String, Option<String>>,
    /// Where the next listing starts: the server's clock at the listing the pending ids came
    /// from (else the latest last-changed time it named).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    upto: Option<String>,
    /// The server's clock when that listing was answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    listed_at: Option<String>,
    /// Employees read at a last-changed time older than the listing: id → that time.
    #[serde(default)]
    read: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct Changed {
    #[serde(default)]
    latest: Option<String>,
    #[serde(default)]
    employees: HashMap<String, ChangedEmployee>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChangedEmployee {
    action: String,
    #[serde(default)]
    last_changed: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Employee {
    id: String,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    work_email: Option<String>,
    #[serde(default)]
    employee_number: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    termination_date: Option<String>,
    #[serde(default)]
    reports_to_id: Option<String>,
}

/// BambooHR's `status` as a lifecycle (see the module docs' table).
fn lifecycle(status: Option<&str>) -> Lifecycle {
    match status {
        Some("Inactive") => Lifecycle::Past,
        Some("Active") | Some(_) | None => Lifecycle::Current,
    }
}

fn time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl Employee {
    fn record(&self) -> PersonRecord {
        let mut person = Person::new(
            self.id.as_str(),
            nonempty(&self.work_email).unwrap_or_default(),
        );
        person.display_name = [nonempty(&self.first_name), nonempty(&self.last_name)]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        person.employee_id = nonempty(&self.employee_number).map(str::to_owned);
        let termination_at = nonempty(&self.termination_date)
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc());
        PersonRecord {
            person,
            lifecycle: lifecycle(self.status.as_deref()),
            termination_at,
        }
    }
}

impl BambooHrSource {
    /// `GET /api/v1/employees/{id}`; `None` on 404, and for an id that is not an employee
    /// id (BambooHR's are integers; `0` is the API key's own employee: never read).
    async fn employee(&self, id: &str) -> Result<Option<Employee>> {
        if id.is_empty() || id.len() > 19 || !id.bytes().all(|b| b.is_ascii_digit()) || id == "0" {
            return Ok(None);
        }
        let request = HttpRequest::get(["api", "v1", "employees", id])
            .query("fields", FIELDS)
            .bucket("employee");
        crate::found(self.http.send(request).await)?
            .map(|r| r.json())
            .transpose()
    }

    /// The manager with employee id `id` (read once per call through `cache`).
    async fn manager(
        &self,
        id: &str,
        cache: &mut HashMap<String, Option<Manager>>,
    ) -> Result<Option<Manager>> {
        if let Some(known) = cache.get(id) {
            return Ok(known.clone());
        }
        let manager = self.employee(id).await?.and_then(|m| {
            nonempty(&m.work_email).map(|email| Manager {
                id: Some(PersonId::new(m.id.as_str())),
                email: email.to_owned(),
            })
        });
        cache.insert(id.to_owned(), manager.clone());
        Ok(manager)
    }

    /// Lists who changed since the cursor's position into `state.pending`.
    async fn list_changed(&self, state: &mut State) -> Result<()> {
        let from = match state.scan.since.as_deref().and_then(time) {
            Some(since) => (since - chrono::Duration::from_std(self.overlap).unwrap_or_default())
                .to_rfc3339_opts(SecondsFormat::Secs, false),
            None => EPOCH.to_owned(),
        };
        let response = self
            .http
            .send(
                HttpRequest::get(["api", "v1", "employees", "changed"])
                    .query("since", from)
                    .bucket("changed"),
            )
            .await?;
        let listed_at = response
            .headers()
            .get(DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| DateTime::parse_from_rfc2822(v).ok())
            .map(|t| t.with_timezone(&Utc).to_rfc3339());
        let changed: Changed = response.json()?;
        let mut upto = state.scan.since.clone();
        for (id, e) in changed.employees {
            let at = e.last_changed.as_deref().and_then(time);
            if let Some(at) = at
                && upto.as_deref().and_then(time).is_none_or(|u| at > u)
            {
                upto = e.last_changed.clone();
            }
            if e.action == "Deleted" {
                if state.scan.is_current(&id) {
                    state.pending.insert(id, None);
                }
            } else if state.read.get(&id) != e.last_changed.as_ref() || e.last_changed.is_none() {
                state.pending.insert(id, e.last_changed);
            }
        }
        // The next listing starts from the server's clock at this one (every later change is
        // at or after it); the latest change listed when there is no `Date`.
        state.upto = listed_at.clone().or(upto).or(changed.latest);
        state.listed_at = listed_at;
        Ok(())
    }

    /// Reads up to a page of the pending ids; returns what changed.
    async fn read_pending(&self, state: &mut State) -> Result<Vec<PersonRecord>> {
        let listed_at = state.listed_at.as_deref().and_then(time);
        let page: Vec<(String, Option<String>)> = state
            .pending
            .iter()
            .take(self.page_size as usize)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut managers = HashMap::new();
        let mut out = Vec::new();
        for (id, last_changed) in page {
            let read = match self.employee(&id).await? {
                None => state
                    .scan
                    .is_current(&id)
                    .then(|| state.scan.settle(&id, None)),
                Some(e) => {
                    let mut record = e.record();
                    if let Some(m) = nonempty(&e.reports_to_id) {
                        record.person.manager = self.manager(m, &mut managers).await?;
                    }
                    if let (Some(lc), Some(at)) = (last_changed.as_deref(), listed_at)
                        && time(lc).is_some_and(|t| t < at)
                    {
                        state.read.insert(id.clone(), lc.to_owned());
                    }
                    Some(state.scan.observed(record))
                }
            };
            state.pending.remove(&id);
            out.extend(read.flatten());
        }
        Ok(out)
    }
}

#[async_trait]
impl SourceOfTruth for BambooHrSource {
    fn name(&self) -> &str {
        &self.name
    }

    async fn changes(&self, cursor: Option<&Cursor>) -> Result<ChangeBatch> {
        let op = format!("{}.changes", self.name);
        let mut state: State = Cursor::decode(cursor, &self.name)?;
        if state.pending.is_empty() {
            self.list_changed(&mut state)
                .await
                .map_err(|e| e.with_operation(op.clone()))?;
        }
        let changes = self
            .read_pending(&mut state)
            .await
            .map_err(|e| e.with_operation(op.clone()))?;
        let more = !state.pending.is_empty();
        if !more {
            state.scan.since = state.upto.take().or(state.scan.since.take());
            // What is older than the overlap cannot be listed again.
            if let Some(floor) = state.scan.since.as_deref().and_then(time) {
                let floor = floor - chrono::Duration::from_std(self.overlap).unwrap_or_default();
                state
                    .read
                    .retain(|_, t| time(t).is_some_and(|t| t >= floor));
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

    #[test]
    fn statuses_map_to_lifecycles() {
        assert_eq!(lifecycle(Some("Active")), Lifecycle::Current);
        assert_eq!(lifecycle(Some("Inactive")), Lifecycle::Past);
        assert_eq!(lifecycle(Some("Suspended")), Lifecycle::Current, "unknown");
        assert_eq!(lifecycle(None), Lifecycle::Current, "not readable");
    }

    #[test]
    fn an_employee_becomes_a_person() {
        let e: Employee = serde_json::from_value(serde_json::json!({
            "id": "7", "firstName": "Ada", "lastName": "Lovelace", "workEmail": "ada@example.com",
            "employeeNumber": "E7", "status": "Inactive", "terminationDate": "2026-11-20",
            "reportsToId": "3"
        }))
        .unwrap();
        let r = e.record();
        assert_eq!(r.person.id.as_str(), "7");
        assert_eq!(r.person.display_name, "Ada Lovelace");
        assert_eq!(r.lifecycle, Lifecycle::Past);
        assert_eq!(
            r.termination_at.unwrap().to_rfc3339(),
            "2026-11-20T00:00:00+00:00"
        );
        let e: Employee = serde_json::from_value(
            serde_json::json!({"id": "8", "status": "Active", "terminationDate": "0000-00-00"}),
        )
        .unwrap();
        assert_eq!(e.record().termination_at, None, "BambooHR's empty date");
    }
}
