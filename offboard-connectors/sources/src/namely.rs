//! [`NamelySource`]: Namely as a source of truth, from its profiles, full scan and diff.
//!
//! # Endpoints
//! - `GET {base}/api/v1/profiles?page=<n>&per_page=<size>&sort=created_at`: active and
//!   inactive profiles, `{"profiles": [...], "meta": {"count", "total_count"}}`, `per_page` at
//!   most 50, pages numbered from 1; a page shorter than `per_page` (or empty) is the last.
//!   Sorted by creation so that a profile created while the listing is read comes last
//!   rather than shifting the pages.
//! - `GET {base}/api/v1/profiles/{id}`: one profile (`{"profiles": [{...}]}`), for a profile
//!   last reported current and no longer listed; a 404 reports it gone.
//!
//! Authentication: `Authorization: Bearer <token>` (a Namely personal access token or an
//! OAuth access token), a [`Secret`].
//!
//! The paths, parameters and fields are those of Namely's public API reference, as Konfig's
//! OpenAPI rendering of it has them (vendored reduced with the simulator).
//!
//! # Status
//! `user_status`: `inactive` is past; `active` and `pending` (an onboarding profile, not yet
//! started) are current; any other value is taken as current (no evidence of a departure).
//! A profile no longer found is reported gone. The termination date is `departure_date`; the
//! manager the first `reports_to` (its `id`, and its `email`; Namely's placeholders `no_guid`
//! and `None` mean nobody). The person id is the profile `id`, the email `email`, the employee
//! id `employee_id`; `personal_email` is never an alias (it is the person's own address).
//!
//! # Limitations
//! Full scan only: Namely has no changed-since filter. Profiles whose `user_status` is
//! `pending` are not listed by Namely without a filter, so they are first seen when active.
use std::time::Duration;

use async_trait::async_trait;
use offboard_core::source::{ChangeBatch, Cursor, PersonRecord, SourceOfTruth};
use offboard_core::{Error, ErrorKind, Lifecycle, Manager, Person, PersonId, Result, Secret};
use offboard_http::{HttpClient, HttpRequest, StaticToken};
use serde::Deserialize;

use crate::full_scan::{self, DEFAULT_BATCH, Listed, Lister};

const PROFILES: [&str; 3] = ["api", "v1", "profiles"];
/// The largest `per_page` Namely serves.
pub const MAX_PAGE: u32 = 50;

/// How to reach a Namely company. `Debug` shows no token.
#[derive(Debug, Clone)]
pub struct NamelyConfig {
    name: String,
    base_url: String,
    token: Secret,
    page_size: u32,
    batch: usize,
    timeout: Duration,
    allow_plain_http: bool,
}

impl NamelyConfig {
    /// The company at `base_url` (`https://<company>.namely.com`), read with `token`.
    pub fn new(base_url: impl Into<String>, token: Secret) -> Self {
        Self {
            name: "namely".into(),
            base_url: base_url.into(),
            token,
            page_size: MAX_PAGE,
            batch: DEFAULT_BATCH,
            timeout: Duration::from_secs(60),
            allow_plain_http: false,
        }
    }

    /// The source's name (the cursor's key). Default `namely`.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Profiles per page, 1 to 50 (default 50).
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
    /// `Config` naming `token` (empty) or `base_url`.
    pub fn build(self) -> Result<NamelySource> {
        if self.token.is_empty() {
            return Err(Error::config("token", "missing"));
        }
        let http = HttpClient::builder(self.base_url)
            .token_provider(StaticToken::bearer(self.token))
            .timeout(self.timeout)
            .allow_plain_http(self.allow_plain_http)
            .build()?;
        Ok(NamelySource {
            name: self.name,
            http,
            page_size: self.page_size,
            batch: self.batch,
        })
    }
}

/// Namely's profiles. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct NamelySource {
    name: String,
    http: HttpClient,
    page_size: u32,
    batch: usize,
}

#[derive(Debug, Default, Deserialize)]
struct Profiles {
    #[serde(default)]
    profiles: Vec<Profile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Profile {
    id: String,
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    user_status: Option<String>,
    employee_id: Option<String>,
    departure_date: Option<String>,
    reports_to: Vec<ReportsTo>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ReportsTo {
    id: Option<String>,
    email: Option<String>,
}

/// `user_status`'s lifecycle: `inactive` is past, everything else current.
pub fn lifecycle(status: &str) -> Lifecycle {
    if status.trim().eq_ignore_ascii_case("inactive") {
        Lifecycle::Past
    } else {
        Lifecycle::Current
    }
}

impl Profile {
    fn record(&self) -> PersonRecord {
        let text = |v: &Option<String>| v.as_deref().unwrap_or("").to_owned();
        let mut person = Person::new(self.id.as_str(), text(&self.email).trim());
        person.display_name = full_scan::full_name(&text(&self.first_name), &text(&self.last_name));
        person.employee_id = self.employee_id.clone().filter(|e| !e.is_empty());
        person.manager = self.reports_to.iter().find_map(|r| {
            let email = r
                .email
                .as_deref()
                .map(str::trim)
                .filter(|e| !e.is_empty() && *e != "None")?;
            let id = r.id.as_deref().filter(|i| !i.is_empty() && *i != "no_guid");
            Some(Manager {
                id: id.map(PersonId::new),
                email: email.to_owned(),
            })
        });
        PersonRecord {
            person,
            lifecycle: lifecycle(self.user_status.as_deref().unwrap_or("")),
            termination_at: full_scan::date(self.departure_date.as_deref()),
        }
    }
}

#[async_trait]
impl Lister for NamelySource {
    fn batch(&self) -> usize {
        self.batch
    }

    async fn page(&self, at: Option<&str>) -> Result<Listed> {
        let page: u64 = match at {
            None => 1,
            Some(s) => s.parse().ok().filter(|p| *p >= 1).ok_or_else(|| {
                Error::invalid_input(format!("{}: the cursor is not ours: page {s:?}", self.name))
            })?,
        };
        let profiles = self
            .http
            .send(
                HttpRequest::get(PROFILES)
                    .query("page", page.to_string())
                    .query("per_page", self.page_size.to_string())
                    .query("sort", "created_at")
                    .bucket("profiles"),
            )
            .await?
            .json::<Profiles>()?
            .profiles;
        let full = profiles.len() as u64 >= u64::from(self.page_size);
        Ok(Listed {
            records: profiles.iter().map(Profile::record).collect(),
            next: full.then(|| (page + 1).to_string()),
        })
    }

    async fn read(&self, id: &str) -> Result<Option<PersonRecord>> {
        let mut path = PROFILES.map(str::to_owned).to_vec();
        path.push(id.to_owned());
        match self
            .http
            .send(HttpRequest::get(path).bucket("profile"))
            .await
        {
            Ok(r) => Ok(r
                .json::<Profiles>()?
                .profiles
                .into_iter()
                .find(|p| p.id == id)
                .map(|p| p.record())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl SourceOfTruth for NamelySource {
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
    fn statuses_map_to_lifecycles() {
        for (status, want) in [
            ("active", Lifecycle::Current),
            ("pending", Lifecycle::Current),
            ("inactive", Lifecycle::Past),
            ("Inactive", Lifecycle::Past),
            ("", Lifecycle::Current),
            ("archived", Lifecycle::Current),
        ] {
            assert_eq!(lifecycle(status), want, "{status:?}");
        }
    }

    #[test]
    fn a_profile_becomes_a_person() {
        let p: Profile = serde_json::from_value(serde_json::json!({
            "id": "a1", "email": "ada@example.com", "personal_email": "ada@home.example",
            "first_name": "Ada", "last_name": "Tester", "user_status": "inactive",
            "employee_id": "E1", "departure_date": "2026-11-02", "updated_at": 1764000000,
            "reports_to": [{"id": "b2", "first_name": "Bo", "last_name": "Ss",
                            "email": "boss@example.com"}]
        }))
        .unwrap();
        let r = p.record();
        assert_eq!(r.person.email, "ada@example.com");
        assert!(r.person.aliases.is_empty(), "not the personal email");
        assert_eq!(r.person.display_name, "Ada Tester");
        assert_eq!(r.lifecycle, Lifecycle::Past);
        assert_eq!(
            r.termination_at
                .map(|t| t.date_naive().to_string())
                .as_deref(),
            Some("2026-11-02")
        );
        let m = r.person.manager.unwrap();
        assert_eq!(
            (m.id.unwrap().as_str(), m.email.as_str()),
            ("b2", "boss@example.com")
        );
        let nobody: Profile = serde_json::from_value(serde_json::json!({
            "id": "c3", "user_status": "active", "departure_date": "",
            "reports_to": [{"id": "no_guid", "first_name": "Nobody", "email": "None"}]
        }))
        .unwrap();
        let r = nobody.record();
        assert!(r.person.manager.is_none() && r.termination_at.is_none());
    }
}
