//! [`WorkdaySource`]: Workday as a source of truth, read from a custom report (Reports as a
//! Service, RaaS) in JSON, full scan and diff.
//!
//! # Endpoints
//! - `GET {base}/ccx/service/customreport2/{tenant}/{owner}/{report}?format=json`: the
//!   report, every worker in one answer `{"Report_Entry": [{…}, …]}` (RaaS does not page).
//!   The report is the customer's: an Advanced report on *All Workers* (terminated ones
//!   included, e.g. those terminated in the last 90 days), enabled as a web service, whose
//!   columns' XML aliases are named as [`WorkdayColumns`] says.
//! - `POST {base}/ccx/oauth2/{tenant}/token`: OAuth 2.0 refresh-token grant
//!   (`grant_type=refresh_token&refresh_token=…`, the API client's id and secret as HTTP
//!   basic), the "API Client for Integrations" flow: the access token is cached and fetched
//!   again before it expires or after a 401.
//!
//! Workday publishes no machine-readable description of RaaS (a report's shape is the
//! customer's own); the paths, the `format=json` parameter and the `Report_Entry` envelope are
//! from Workday's public documentation of Reports as a Service and its OAuth client set-up.
//!
//! # Status
//! The `Terminated` column (Workday's boolean field of that name, `1`/`0` in RaaS JSON):
//! `1` (or `true`) is past, `0` (or `false`) current. Any other value (a report column
//! mapped to the wrong field) is taken as current: it is no evidence of a departure, and a
//! wrong departure starts an offboarding. A worker who is no longer in the report is reported
//! gone (the report is the whole list; RaaS has no read of one worker).
//!
//! # Limitations
//! - Full scan only: RaaS has no changed-since read (a report prompt could filter by a
//!   "last updated" field, but such a field is not standard).
//! - The Workers REST API (`/ccx/api/v1/{tenant}/workers`) is not used: it lists workers
//!   without their termination date or status.
use std::time::Duration;

use async_trait::async_trait;
use offboard_core::source::{ChangeBatch, Cursor, PersonRecord, SourceOfTruth};
use offboard_core::{Error, ErrorKind, Lifecycle, Manager, Person, PersonId, Result, Secret};
use offboard_http::{ClientAuthMethod, ClientSecretCredentials, HttpClient, HttpRequest};
use serde_json::{Map, Value};

use crate::full_scan::{self, Listed, Lister};

/// The XML aliases of the report's columns (what RaaS names each field in JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkdayColumns {
    /// The worker's Workday ID (WID): the person id. Default `Worker_ID`.
    pub worker_id: String,
    /// The employee id. Default `Employee_ID`.
    pub employee_id: String,
    /// The worker's name as displayed. Default `Worker`.
    pub name: String,
    /// The primary work email. Default `Work_Email`.
    pub email: String,
    /// The Workday account's user name, reported as an alias. Default `User_Name`.
    pub user_name: String,
    /// Workday's `Terminated` boolean. Default `Terminated`.
    pub terminated: String,
    /// The termination date. Default `Termination_Date`.
    pub termination_date: String,
    /// The manager's Workday ID. Default `Manager_Worker_ID`.
    pub manager_id: String,
    /// The manager's work email. Default `Manager_Email`.
    pub manager_email: String,
}

impl Default for WorkdayColumns {
    fn default() -> Self {
        Self {
            worker_id: "Worker_ID".into(),
            employee_id: "Employee_ID".into(),
            name: "Worker".into(),
            email: "Work_Email".into(),
            user_name: "User_Name".into(),
            terminated: "Terminated".into(),
            termination_date: "Termination_Date".into(),
            manager_id: "Manager_Worker_ID".into(),
            manager_email: "Manager_Email".into(),
        }
    }
}

/// How to reach a Workday tenant's report. Secrets are [`Secret`]s: `Debug` shows none.
#[derive(Debug, Clone)]
pub struct WorkdayConfig {
    name: String,
    base_url: String,
    tenant: String,
    report_owner: String,
    report_name: String,
    client_id: String,
    client_secret: Secret,
    refresh_token: Secret,
    columns: WorkdayColumns,
    timeout: Duration,
    allow_plain_http: bool,
}

impl WorkdayConfig {
    /// A report `owner/report` of `tenant` at `base_url` (the tenant's services host, e.g.
    /// `https://wd2-impl-services1.workday.com`), read with an API client's id, secret and
    /// refresh token.
    pub fn new(
        base_url: impl Into<String>,
        tenant: impl Into<String>,
        report_owner: impl Into<String>,
        report_name: impl Into<String>,
    ) -> Self {
        Self {
            name: "workday".into(),
            base_url: base_url.into(),
            tenant: tenant.into(),
            report_owner: report_owner.into(),
            report_name: report_name.into(),
            client_id: String::new(),
            client_secret: Secret::new(""),
            refresh_token: Secret::new(""),
            columns: WorkdayColumns::default(),
            timeout: Duration::from_secs(120),
            allow_plain_http: false,
        }
    }

    /// The API client's id, secret and the refresh token it was issued.
    pub fn with_oauth(
        mut self,
        client_id: impl Into<String>,
        client_secret: Secret,
        refresh_token: Secret,
    ) -> Self {
        self.client_id = client_id.into();
        self.client_secret = client_secret;
        self.refresh_token = refresh_token;
        self
    }

    /// The source's name (the cursor's key). Default `workday`.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The report's column aliases. Default [`WorkdayColumns::default`].
    pub fn with_columns(mut self, columns: WorkdayColumns) -> Self {
        self.columns = columns;
        self
    }

    /// The timeout of one request (a large report takes a while). Default 120 s.
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
    /// `Config` naming the missing or malformed key (`base_url`, `tenant`, `report`,
    /// `client_id`, `client_secret`, `refresh_token`).
    pub fn build(self) -> Result<WorkdaySource> {
        for (key, value) in [
            ("tenant", &self.tenant),
            ("report", &self.report_owner),
            ("report", &self.report_name),
            ("client_id", &self.client_id),
        ] {
            if value.trim().is_empty() {
                return Err(Error::config(key, "missing"));
            }
        }
        if self.refresh_token.is_empty() {
            return Err(Error::config("refresh_token", "missing"));
        }
        let base = self.base_url.trim_end_matches('/');
        let tenant = self.tenant.trim();
        if !tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(Error::config(
                "tenant",
                "a Workday tenant name has only letters, digits, `_` and `-`",
            ));
        }
        let token_url = format!("{base}/ccx/oauth2/{tenant}/token");
        let tokens =
            ClientSecretCredentials::builder(token_url, self.client_id.trim(), self.client_secret)
                .client_auth(ClientAuthMethod::Basic)
                .refresh_token(self.refresh_token)
                .timeout(self.timeout)
                .allow_plain_http(self.allow_plain_http)
                .build()?;
        let http = HttpClient::builder(base)
            .token_provider(tokens)
            .timeout(self.timeout)
            .allow_plain_http(self.allow_plain_http)
            .build()?;
        Ok(WorkdaySource {
            name: self.name,
            http,
            report: vec![
                "ccx".into(),
                "service".into(),
                "customreport2".into(),
                tenant.to_owned(),
                self.report_owner,
                self.report_name,
            ],
            columns: self.columns,
        })
    }
}

/// Workday's workers, as one custom report lists them. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct WorkdaySource {
    name: String,
    http: HttpClient,
    report: Vec<String>,
    columns: WorkdayColumns,
}

/// A report column's value as text: a string, a number or a boolean as it reads, a
/// referenced instance by its descriptor; empty when absent.
fn text(entry: &Map<String, Value>, column: &str) -> String {
    match entry.get(column) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => if *b { "1" } else { "0" }.to_owned(),
        Some(Value::Object(o)) => o
            .get("Descriptor")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        _ => String::new(),
    }
}

/// The `Terminated` value's lifecycle (see the module docs: unknown values are current).
pub fn lifecycle(terminated: &str) -> Lifecycle {
    match terminated.trim().to_ascii_lowercase().as_str() {
        "1" | "true" => Lifecycle::Past,
        _ => Lifecycle::Current,
    }
}

impl WorkdaySource {
    fn record(&self, i: usize, entry: &Map<String, Value>) -> Result<PersonRecord> {
        let c = &self.columns;
        let id = text(entry, &c.worker_id);
        if id.is_empty() {
            return Err(Error::new(
                ErrorKind::Vendor,
                format!(
                    "report entry {i} has no {:?} column: check the report's fields",
                    c.worker_id
                ),
            ));
        }
        let email = text(entry, &c.email);
        let mut person = Person::new(id.as_str(), email.clone());
        let user = text(entry, &c.user_name);
        if !user.is_empty() && !user.eq_ignore_ascii_case(&email) {
            person.aliases.push(user);
        }
        person.display_name = text(entry, &c.name);
        person.employee_id = Some(text(entry, &c.employee_id)).filter(|e| !e.is_empty());
        let manager_email = text(entry, &c.manager_email);
        let manager_id = text(entry, &c.manager_id);
        if !manager_email.is_empty() {
            person.manager = Some(Manager {
                id: Some(PersonId::new(manager_id)).filter(|m| !m.as_str().is_empty()),
                email: manager_email,
            });
        }
        Ok(PersonRecord {
            person,
            lifecycle: lifecycle(&text(entry, &c.terminated)),
            termination_at: full_scan::date(Some(&text(entry, &c.termination_date))),
        })
    }
}

#[async_trait]
impl Lister for WorkdaySource {
    fn batch(&self) -> usize {
        // One page holds everyone.
        1
    }

    async fn page(&self, _at: Option<&str>) -> Result<Listed> {
        let request = HttpRequest::get(self.report.clone())
            .query("format", "json")
            .bucket("report");
        // Workday does not say when an access token expires: a 401 is how the client learns
        // it did (the client dropped it), and the read is tried once more with a new one.
        let response = match self.http.send(request.clone()).await {
            Err(e) if e.kind() == ErrorKind::Unauthenticated => self.http.send(request).await,
            other => other,
        }?;
        let body: Value = response.json()?;
        let entries = body
            .get("Report_Entry")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Vendor,
                    "the report's answer has no Report_Entry list (is it requested as JSON?)",
                )
            })?;
        let records = entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                e.as_object()
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::Vendor,
                            format!("report entry {i} is not an object"),
                        )
                    })
                    .and_then(|e| self.record(i, e))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Listed {
            records,
            next: None,
        })
    }

    async fn read(&self, _id: &str) -> Result<Option<PersonRecord>> {
        // The report just read is the whole list.
        Ok(None)
    }
}

#[async_trait]
impl SourceOfTruth for WorkdaySource {
    fn name(&self) -> &str {
        &self.name
    }

    async fn changes(&self, cursor: Option<&Cursor>) -> Result<ChangeBatch> {
        full_scan::changes(self, &self.name, cursor).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminated_values_map_to_lifecycles() {
        for (value, want) in [
            ("1", Lifecycle::Past),
            ("true", Lifecycle::Past),
            ("0", Lifecycle::Current),
            ("false", Lifecycle::Current),
            ("", Lifecycle::Current),
            ("Terminated", Lifecycle::Current),
        ] {
            assert_eq!(lifecycle(value), want, "{value:?}");
        }
    }
}
