//! [`PaylocitySource`]: Paylocity's Web Pay employees as a [`SourceOfTruth`], by full scan
//! and diff.
//!
//! # Endpoints (Paylocity Web Services API v2)
//! - `POST {token_url}` (default `https://api.paylocity.com/IdentityServer/connect/token`):
//!   OAuth 2.0 client credentials, `Authorization: Basic base64(client_id:client_secret)`,
//!   form `grant_type=client_credentials&scope=WebLinkAPI`; the answer's bearer token is
//!   cached until shortly before its `expires_in` (3600 s) and fetched again after a 401.
//! - `GET {base}/v2/companies/{companyId}/employees?pagesize=<n>&pagenumber=<p>&includetotalcount=true`
//!   ("Get all employees": `employeeId`, `statusCode`, `statusTypeCode` per employee, page
//!   numbers 0-based; the total in the `X-Pcty-Total-Count` header says whether more pages
//!   follow, else a full page does). The description spells the path with a trailing `/`; Paylocity's
//!   routing answers both spellings and the request is sent without it.
//! - `GET {base}/v2/companies/{companyId}/employees/{employeeId}` ("Get employee": an array
//!   holding the employee) for each employee listed new or with another status, for each one
//!   last reported current who is no longer listed, and for supervisors
//!   (`departmentPosition.supervisorEmployeeId` in `supervisorCompanyNumber`, this company
//!   when empty) whose work email is the manager's.
//!
//! # Reading
//! Paylocity offers no changed-since read for employees, so every poll lists the whole
//! company, one page per [`SourceOfTruth::changes`] call (`more` while pages
//! remain). The listing is a summary: the cursor ([`Scan`]) keeps each employee's last status
//! stamp and reads the full record only when it is new or the status changed
//! ([`Scan::stamped`]); an idle poll of N employees costs `ceil(N / pagesize)` requests. An
//! employee last reported current and missing at the end of a listing is read directly: a 404
//! reports them [`PersonRecord::gone`].
//!
//! # Status
//! The status type (`statusTypeCode`, else `statusCode`, as Paylocity documents them):
//! `A` (active) and `L` (leave of absence) are current, `T` (terminated) is past, with
//! `status.effectiveDate` as the termination date. Any other code is a company-defined status
//! Paylocity does not document: it is reported current, so that a value this source does
//! not understand never starts an offboarding by itself.
//!
//! # Person
//! Id and employee id: `employeeId`. Email: `workAddress.emailAddress` (the home address's
//! email is the employee's own and never an alias). Name: `preferredName` (else `firstName`)
//! and `lastName`. Paylocity keeps no other work address or login: no aliases.
//!
//! # Limitations
//! A change of name or email alone (the status unchanged) is read at the employee's next
//! status change, as the listing shows nothing else. Reads only.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use offboard_core::source::{ChangeBatch, Cursor, PersonRecord, SourceOfTruth};
use offboard_core::{Error, ErrorKind, Lifecycle, Manager, Person, PersonId, Result, Secret};
use offboard_http::{ClientAuthMethod, ClientSecretCredentials, HttpClient, HttpRequest};
use serde::Deserialize;

use crate::scan::Scan;

/// Paylocity's production API base (`https://api.paylocity.com/api`).
pub const DEFAULT_BASE_URL: &str = "https://api.paylocity.com/api";
/// Paylocity's production token endpoint.
pub const DEFAULT_TOKEN_URL: &str = "https://api.paylocity.com/IdentityServer/connect/token";
/// The largest page the source asks for.
pub const MAX_PAGE_SIZE: u32 = 5000;

/// How to reach one Paylocity company. See the [module docs](self).
#[derive(Clone)]
pub struct PaylocityConfig {
    name: String,
    base_url: String,
    token_url: String,
    company_id: String,
    client_id: String,
    client_secret: Secret,
    page_size: u32,
    timeout: Duration,
    allow_plain_http: bool,
}

impl fmt::Debug for PaylocityConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PaylocityConfig")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("token_url", &self.token_url)
            .field("company_id", &self.company_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

impl PaylocityConfig {
    /// Company `company_id`, read with the OAuth client `client_id` / `client_secret` on
    /// Paylocity's production endpoints; source name `paylocity`, 5000 employees per page.
    pub fn new(
        company_id: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: Secret,
    ) -> Self {
        Self {
            name: "paylocity".into(),
            base_url: DEFAULT_BASE_URL.into(),
            token_url: DEFAULT_TOKEN_URL.into(),
            company_id: company_id.into(),
            client_id: client_id.into(),
            client_secret,
            page_size: MAX_PAGE_SIZE,
            timeout: Duration::from_secs(30),
            allow_plain_http: false,
        }
    }

    /// The source's name (its cursor's key). Default `paylocity`.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The API base, up to and without `/v2` (the sandbox: `https://apisandbox.paylocity.com/api`).
    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// The token endpoint (the sandbox: `https://apisandbox.paylocity.com/IdentityServer/connect/token`).
    pub fn with_token_url(mut self, url: impl Into<String>) -> Self {
        self.token_url = url.into();
        self
    }

    /// Employees per page, 1 to [`MAX_PAGE_SIZE`] (clamped).
    pub fn with_page_size(mut self, n: u32) -> Self {
        self.page_size = n.clamp(1, MAX_PAGE_SIZE);
        self
    }

    /// Timeout of each request. Default 30 s.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Allows plain `http` URLs on this machine (loopback tests and simulators only).
    pub fn with_allow_plain_http(mut self, allow: bool) -> Self {
        self.allow_plain_http = allow;
        self
    }

    /// Validates and builds the source.
    ///
    /// # Errors
    /// `Config` naming `company_id`, `client_id` or `client_secret` (empty), `base_url` or
    /// `token_url` (not an https URL).
    pub fn build(self) -> Result<PaylocitySource> {
        if self.company_id.trim().is_empty() {
            return Err(Error::config("company_id", "missing"));
        }
        let tokens = ClientSecretCredentials::builder(
            self.token_url.clone(),
            self.client_id.clone(),
            self.client_secret.clone(),
        )
        .scope("WebLinkAPI")
        .client_auth(ClientAuthMethod::Basic)
        .timeout(self.timeout)
        .allow_plain_http(self.allow_plain_http)
        .build()?;
        let http = HttpClient::builder(self.base_url.clone())
            .timeout(self.timeout)
            .allow_plain_http(self.allow_plain_http)
            .token_provider(tokens)
            .build()
            .map_err(|e| match e.kind() {
                ErrorKind::Config => e,
                _ => Error::config("base_url", e.to_string()),
            })?;
        Ok(PaylocitySource { config: self, http })
    }
}

/// Paylocity as a source of truth. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct PaylocitySource {
    config: PaylocityConfig,
    http: HttpClient,
}

/// One entry of "Get all employees".
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EmployeeInfo {
    #[serde(default)]
    employee_id: Option<String>,
    #[serde(default)]
    status_code: Option<String>,
    #[serde(default)]
    status_type_code: Option<String>,
}

impl EmployeeInfo {
    /// The listing's status stamp: type and code.
    fn stamp(&self) -> String {
        format!(
            "{}/{}",
            self.status_type_code.as_deref().unwrap_or(""),
            self.status_code.as_deref().unwrap_or("")
        )
    }
}

/// The parts of "Get employee" the source reads.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Employee {
    #[serde(default)]
    employee_id: Option<String>,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    preferred_name: Option<String>,
    #[serde(default)]
    work_address: Option<Address>,
    #[serde(default)]
    department_position: Option<DepartmentPosition>,
    #[serde(default)]
    status: Option<Status>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Address {
    #[serde(default)]
    email_address: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DepartmentPosition {
    #[serde(default)]
    supervisor_employee_id: Option<String>,
    #[serde(default)]
    supervisor_company_number: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    #[serde(default)]
    employee_status: Option<String>,
    #[serde(default)]
    effective_date: Option<String>,
}

/// A Paylocity status type or code as a lifecycle: `T` is past; `A`, `L` and anything
/// Paylocity does not document are current.
pub fn lifecycle(status: &str) -> Lifecycle {
    match status.trim() {
        "T" | "t" => Lifecycle::Past,
        _ => Lifecycle::Current,
    }
}

/// A `paylocity-date` (`CCYY-MM-DD`, `MM-DD-CCYY`, either with a time after it) at midnight UTC.
fn paylocity_date(s: &str) -> Option<DateTime<Utc>> {
    let day = s.trim().get(..10)?;
    NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(day, "%m-%d-%Y"))
        .ok()?
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl Employee {
    fn email(&self) -> String {
        self.work_address
            .as_ref()
            .and_then(|a| nonempty(&a.email_address))
            .unwrap_or("")
            .to_owned()
    }

    fn record(&self, id: &str) -> PersonRecord {
        let mut person = Person::new(id, self.email());
        let first = nonempty(&self.preferred_name).or(nonempty(&self.first_name));
        person.display_name = [first, nonempty(&self.last_name)]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        person.employee_id = Some(id.to_owned());
        let status = self.status.as_ref();
        let lifecycle = lifecycle(
            status
                .and_then(|s| nonempty(&s.employee_status))
                .unwrap_or(""),
        );
        let termination_at = (lifecycle == Lifecycle::Past)
            .then(|| status.and_then(|s| s.effective_date.as_deref().and_then(paylocity_date)))
            .flatten();
        PersonRecord {
            person,
            lifecycle,
            termination_at,
        }
    }

    /// The supervisor's (company, employee id), when there is one.
    fn supervisor(&self, company: &str) -> Option<(String, String)> {
        let p = self.department_position.as_ref()?;
        let id = nonempty(&p.supervisor_employee_id)?;
        let company = nonempty(&p.supervisor_company_number).unwrap_or(company);
        Some((company.to_owned(), id.to_owned()))
    }
}

/// Supervisors read during one call: (company, id) → manager.
type Managers = HashMap<(String, String), Option<Manager>>;

impl PaylocitySource {
    fn employees(company: &str) -> Vec<String> {
        vec![
            "v2".into(),
            "companies".into(),
            company.to_owned(),
            "employees".into(),
        ]
    }

    /// "Get employee"; `None` on 404.
    async fn employee(&self, company: &str, id: &str) -> Result<Option<Employee>> {
        let mut path = Self::employees(company);
        path.push(id.to_owned());
        let request = HttpRequest::get(path).bucket("paylocity employee");
        match self.http.send(request).await {
            Ok(r) => {
                let mut found: Vec<Employee> = r.json()?;
                Ok(if found.is_empty() {
                    None
                } else {
                    Some(found.swap_remove(0))
                })
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The record of `id` as read, with its supervisor's work email as the manager.
    async fn read(&self, id: &str, managers: &mut Managers) -> Result<Option<PersonRecord>> {
        let company = self.config.company_id.as_str();
        let Some(employee) = self.employee(company, id).await? else {
            return Ok(None);
        };
        let mut record = employee.record(id);
        if let Some(key) = employee.supervisor(company) {
            let manager = match managers.get(&key) {
                Some(m) => m.clone(),
                None => {
                    let m = self.employee(&key.0, &key.1).await?.map(|s| Manager {
                        id: Some(PersonId::new(
                            nonempty(&s.employee_id).unwrap_or(&key.1).to_owned(),
                        )),
                        email: s.email(),
                    });
                    managers.insert(key, m.clone());
                    m
                }
            };
            record.person.manager = manager.filter(|m| !m.email.is_empty());
        }
        Ok(Some(record))
    }

    /// Page `number` of the listing, and whether more pages follow: by the total in
    /// `X-Pcty-Total-Count`, else by the page being full.
    async fn page(&self, number: u64) -> Result<(Vec<EmployeeInfo>, bool)> {
        let size = u64::from(self.config.page_size);
        let request = HttpRequest::get(Self::employees(&self.config.company_id))
            .query("pagesize", size.to_string())
            .query("pagenumber", number.to_string())
            .query("includetotalcount", "true")
            .bucket("paylocity employees");
        let response = self.http.send(request).await?;
        let page: Vec<EmployeeInfo> = response.json()?;
        let total = response
            .headers()
            .get("x-pcty-total-count")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let more = match total {
            Some(total) => !page.is_empty() && (number + 1).saturating_mul(size) < total,
            None => page.len() as u64 >= size,
        };
        Ok((page, more))
    }
}

#[async_trait]
impl SourceOfTruth for PaylocitySource {
    fn name(&self) -> &str {
        &self.config.name
    }

    async fn changes(&self, cursor: Option<&Cursor>) -> Result<ChangeBatch> {
        let op = format!("{}.changes", self.config.name);
        let mut scan = Scan::load(cursor, &self.config.name)?;
        let number = match scan.next_page() {
            None => 0,
            Some(n) => n.parse::<u64>().map_err(|_| {
                Error::invalid_input(format!("{}: the cursor is not ours", self.config.name))
            })?,
        };
        let (page, more) = self
            .page(number)
            .await
            .map_err(|e| e.with_operation(op.clone()))?;
        let mut managers = Managers::new();
        let mut changes = Vec::new();
        for info in &page {
            let Some(id) = nonempty(&info.employee_id) else {
                continue;
            };
            if !scan.stamped(id, &info.stamp()) {
                continue;
            }
            // Read between listing and now: gone since is found missing by the next listing.
            if let Some(record) = self
                .read(id, &mut managers)
                .await
                .map_err(|e| e.with_operation(op.clone()))?
            {
                changes.extend(scan.listed(vec![record]));
            }
        }
        if more {
            scan.continue_at((number + 1).to_string());
        } else {
            for id in scan.missing() {
                let read = self
                    .read(&id, &mut managers)
                    .await
                    .map_err(|e| e.with_operation(op.clone()))?;
                changes.extend(scan.settle(&id, read));
            }
        }
        Ok(ChangeBatch {
            changes,
            next: scan.save(),
            more,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_status_maps() {
        for (status, want) in [
            ("A", Lifecycle::Current),
            ("L", Lifecycle::Current),
            ("T", Lifecycle::Past),
            // Undocumented, company-defined: never a departure by itself.
            ("XYZ", Lifecycle::Current),
            ("", Lifecycle::Current),
        ] {
            assert_eq!(lifecycle(status), want, "{status:?}");
        }
    }

    #[test]
    fn an_employee_becomes_a_person() {
        let e: Employee = serde_json::from_value(serde_json::json!({
            "employeeId": "1001", "firstName": "Ada", "lastName": "Lovelace",
            "workAddress": {"emailAddress": "ada@example.com"},
            "homeAddress": {"emailAddress": "ada@home.example"},
            "departmentPosition": {"supervisorEmployeeId": "7", "supervisorCompanyNumber": ""},
            "status": {"employeeStatus": "T", "effectiveDate": "2026-11-02T00:00:00"}
        }))
        .unwrap();
        let r = e.record("1001");
        assert_eq!(r.person.email, "ada@example.com");
        assert!(r.person.aliases.is_empty(), "the home email is no alias");
        assert_eq!(r.person.display_name, "Ada Lovelace");
        assert_eq!(r.lifecycle, Lifecycle::Past);
        assert_eq!(
            r.termination_at.map(|t| t.date_naive()),
            NaiveDate::from_ymd_opt(2026, 11, 2)
        );
        assert_eq!(e.supervisor("C1"), Some(("C1".into(), "7".into())));
        assert_eq!(
            paylocity_date("11-02-2026").map(|t| t.date_naive()),
            NaiveDate::from_ymd_opt(2026, 11, 2)
        );
        assert_eq!(paylocity_date("soon"), None);
    }
}
