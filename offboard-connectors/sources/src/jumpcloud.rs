//! [`JumpCloudSource`]: JumpCloud's system users as a source of truth, by full scan and diff.
//!
//! # Endpoints (JumpCloud V1 API, `https://console.jumpcloud.com/api`)
//! - `GET /api/systemusers?limit=<n>&skip=<k>&sort=_id&fields=<the fields read>`: pages of
//!   `limit` (1 to 100, JumpCloud's cap; default 100) until a [`SourceOfTruth::changes`]
//!   call has listed its batch (default 5,000 people, [`JumpCloudConfig::with_batch`]),
//!   sorted by `_id` as JumpCloud's API best practices ask of every `skip` pager, so no user
//!   is listed twice or skipped while nobody is created or deleted.
//! - `GET /api/systemusers/{id}`: a user last reported current and missing at the end of a
//!   scan (a 404 reports them [`PersonRecord::gone`]), and a reported person's manager
//!   (`manager` holds the manager's `_id`; read once per call).
//!
//! # Authentication
//! The administrator's API key in `x-api-key` (never `Authorization`), and `x-org-id` when
//! [`JumpCloudConfig::with_org_id`] names an organisation (a multi-tenant administrator's key).
//!
//! # Reading
//! JumpCloud offers no changed-since read (a system user has no modification time), so every
//! poll lists everyone, page by page, and reports only who is new or changed since last
//! reported ([`Scan`](crate::scan::Scan)); the scan's position (`skip`) is in the cursor, so a restart continues
//! where it stopped. A user created or deleted during a scan may shift a page: whoever a scan
//! misses is listed by the next one, and someone last reported current who is missing at the
//! end is read directly before being reported gone.
//!
//! # Status mapping (`state`, `suspended`)
//! | JumpCloud | lifecycle |
//! |---|---|
//! | `state: ACTIVATED` or `STAGED` (not yet activated), `suspended: false` | current |
//! | `state: SUSPENDED` | past |
//! | `suspended: true`, whatever the state | past |
//! | any other `state` (JumpCloud documents none) | past: the issue's rule is "from active or staged to any other status" |
//! | no `state` (records older than the field) | current unless `suspended` |
//! | no longer found (404) | past ([`PersonRecord::gone`]) |
//!
//! # The person
//! Id `_id`; email `email`; alias `username` (the login); display name `displayname`, else
//! `firstname lastname`; employee id `employeeIdentifier`; manager the user `manager` names.
//! `alternateEmail` is not an alias: JumpCloud uses it for notifications and it may be a
//! private address, which would then match someone else's accounts.
//!
//! # Limitations
//! JumpCloud records no termination date ([`PersonRecord::termination_at`] is always
//! `None`). A scan of N users costs ⌈N / 100⌉ requests per poll, idle or not.

use std::fmt;

use async_trait::async_trait;
use offboard_core::source::{ChangeBatch, Cursor, PersonRecord, SourceOfTruth};
use offboard_core::{Error, Lifecycle, Person, Result, Secret};
use offboard_http::{HeaderName, HttpClient, HttpRequest, StaticToken};
use serde::Deserialize;

use crate::manager;
use crate::offset::{self, OffsetList};

const USERS: [&str; 2] = ["api", "systemusers"];
/// The fields a page asks for (`fields`): what [`SystemUser`] reads.
const FIELDS: &str =
    "_id email username firstname lastname displayname employeeIdentifier manager state suspended";
/// JumpCloud's largest page.
pub const MAX_PAGE: u32 = 100;

/// How to reach a JumpCloud organisation.
///
/// # Example
/// ```
/// use offboard_core::Secret;
/// use offboard_sources::jumpcloud::{JumpCloudConfig, JumpCloudSource};
///
/// let config = JumpCloudConfig::new(Secret::new("jc-api-key")).with_page_size(50);
/// let source = JumpCloudSource::new(config).unwrap();
/// assert!(!format!("{source:?}").contains("jc-api-key"));
/// ```
#[derive(Clone)]
pub struct JumpCloudConfig {
    base_url: String,
    api_key: Secret,
    org_id: Option<String>,
    page_size: u32,
    batch: usize,
    name: String,
    allow_plain_http: bool,
}

impl fmt::Debug for JumpCloudConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JumpCloudConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key)
            .field("org_id", &self.org_id)
            .field("page_size", &self.page_size)
            .field("batch", &self.batch)
            .field("name", &self.name)
            .field("allow_plain_http", &self.allow_plain_http)
            .finish()
    }
}

impl JumpCloudConfig {
    /// The organisation of this administrator API key, at `https://console.jumpcloud.com`,
    /// 100 users per page, named `jumpcloud`.
    pub fn new(api_key: Secret) -> Self {
        Self {
            base_url: "https://console.jumpcloud.com".into(),
            api_key,
            org_id: None,
            page_size: MAX_PAGE,
            batch: crate::full_scan::DEFAULT_BATCH,
            name: "jumpcloud".into(),
            allow_plain_http: false,
        }
    }

    /// The console URL (EU data centre: `https://console.eu.jumpcloud.com`).
    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// The organisation a multi-tenant administrator's key reads (`x-org-id`).
    pub fn with_org_id(mut self, org: impl Into<String>) -> Self {
        self.org_id = Some(org.into());
        self
    }

    /// Users per page, 1 to 100.
    pub fn with_page_size(mut self, n: u32) -> Self {
        self.page_size = n;
        self
    }

    /// People one [`SourceOfTruth::changes`] call lists at least, page by page, before it
    /// returns (default 5,000; 1: one page a call). The cursor, which holds what was last
    /// reported of everyone, is saved between calls: a larger batch saves it less often.
    pub fn with_batch(mut self, people: usize) -> Self {
        self.batch = people.max(1);
        self
    }

    /// The source's name (its cursor's key).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Allows a plain `http` base URL on this machine (tests against a simulator only).
    pub fn with_allow_plain_http(mut self, allow: bool) -> Self {
        self.allow_plain_http = allow;
        self
    }
}

/// JumpCloud's system users as a [`SourceOfTruth`]: see the [module docs](self).
#[derive(Debug, Clone)]
pub struct JumpCloudSource {
    name: String,
    http: HttpClient,
    org_id: Option<String>,
    page_size: u32,
    batch: usize,
}

/// One page of `GET /api/systemusers`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsersPage {
    total_count: u64,
    #[serde(default)]
    results: Vec<SystemUser>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SystemUser {
    #[serde(rename = "_id")]
    id: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    firstname: Option<String>,
    #[serde(default)]
    lastname: Option<String>,
    #[serde(default)]
    displayname: Option<String>,
    #[serde(default)]
    employee_identifier: Option<String>,
    #[serde(default)]
    manager: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    suspended: Option<bool>,
}

/// The lifecycle of a `state` and `suspended` flag (see the module docs' table).
fn lifecycle(state: Option<&str>, suspended: bool) -> Lifecycle {
    match state {
        _ if suspended => Lifecycle::Past,
        None | Some("ACTIVATED" | "STAGED") => Lifecycle::Current,
        Some(_) => Lifecycle::Past,
    }
}

fn text(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

impl SystemUser {
    /// The record, its manager known by id only (the email is read for reported records).
    fn record(&self) -> PersonRecord {
        let email = text(&self.email).or(text(&self.username)).unwrap_or("");
        let mut person = Person::new(self.id.as_str(), email);
        if let Some(login) = text(&self.username).filter(|l| !l.eq_ignore_ascii_case(email)) {
            person.aliases.push(login.to_owned());
        }
        person.display_name = match text(&self.displayname) {
            Some(name) => name.to_owned(),
            None => [text(&self.firstname), text(&self.lastname)]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" "),
        };
        person.employee_id = text(&self.employee_identifier).map(str::to_owned);
        person.manager = manager::by_id(text(&self.manager));
        PersonRecord {
            person,
            lifecycle: lifecycle(self.state.as_deref(), self.suspended == Some(true)),
            termination_at: None,
        }
    }
}

impl JumpCloudSource {
    /// A source reading the organisation `config` names.
    ///
    /// # Errors
    /// `Config` naming `page_size` (not 1 to 100) or `base_url` (not an https URL, unless
    /// plain http is allowed).
    pub fn new(config: JumpCloudConfig) -> Result<Self> {
        if !(1..=MAX_PAGE).contains(&config.page_size) {
            return Err(Error::config(
                "page_size",
                format!("must be 1 to {MAX_PAGE}, not {}", config.page_size),
            ));
        }
        let http = HttpClient::builder(config.base_url)
            .token_provider(StaticToken::api_key_header("x-api-key", config.api_key))
            .allow_plain_http(config.allow_plain_http)
            .build()?;
        Ok(Self {
            name: config.name,
            http,
            org_id: config.org_id,
            page_size: config.page_size,
            batch: config.batch,
        })
    }

    fn request(&self, segments: Vec<String>) -> HttpRequest {
        let r = HttpRequest::get(segments).bucket("systemusers");
        match &self.org_id {
            Some(org) => r.header(HeaderName::from_static("x-org-id"), org.clone()),
            None => r,
        }
    }

    /// `GET /api/systemusers/{id}`; `None` on 404.
    async fn get_user(&self, id: &str) -> Result<Option<SystemUser>> {
        let mut path = USERS.map(str::to_owned).to_vec();
        path.push(id.to_owned());
        crate::found(self.http.send(self.request(path)).await)?
            .map(|r| r.json())
            .transpose()
    }
}

#[async_trait]
impl OffsetList for JumpCloudSource {
    fn source(&self) -> &str {
        &self.name
    }

    fn page_size(&self) -> u32 {
        self.page_size
    }

    fn batch(&self) -> usize {
        self.batch
    }

    async fn list(&self, skip: u64) -> Result<(Vec<PersonRecord>, Option<u64>)> {
        let request = self
            .request(USERS.map(str::to_owned).to_vec())
            .query("limit", self.page_size.to_string())
            .query("skip", skip.to_string())
            .query("sort", "_id")
            .query("fields", FIELDS);
        let page: UsersPage = self.http.send(request).await?.json()?;
        let records = page.results.iter().map(SystemUser::record).collect();
        Ok((records, Some(page.total_count)))
    }

    async fn read(&self, id: &str) -> Result<Option<PersonRecord>> {
        Ok(self.get_user(id).await?.map(|u| u.record()))
    }
}

#[async_trait]
impl SourceOfTruth for JumpCloudSource {
    fn name(&self) -> &str {
        &self.name
    }

    async fn changes(&self, cursor: Option<&Cursor>) -> Result<ChangeBatch> {
        let op = format!("{}.changes", self.name);
        offset::changes(self, cursor)
            .await
            .map_err(|e| e.with_operation(op))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(json: serde_json::Value) -> SystemUser {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn every_state_maps_to_a_lifecycle() {
        for (state, suspended, want) in [
            (Some("ACTIVATED"), false, Lifecycle::Current),
            (Some("STAGED"), false, Lifecycle::Current),
            (Some("SUSPENDED"), false, Lifecycle::Past),
            (Some("SUSPENDED"), true, Lifecycle::Past),
            (Some("ACTIVATED"), true, Lifecycle::Past),
            (Some("STAGED"), true, Lifecycle::Past),
            (Some("ARCHIVED"), false, Lifecycle::Past),
            (Some(""), false, Lifecycle::Past),
            (None, false, Lifecycle::Current),
            (None, true, Lifecycle::Past),
        ] {
            assert_eq!(lifecycle(state, suspended), want, "{state:?} {suspended}");
        }
    }

    #[test]
    fn a_system_user_becomes_a_person() {
        let r = user(serde_json::json!({
            "_id": "650000000000000000000001", "email": "ada@example.com", "username": "ada.l",
            "firstname": "Ada", "lastname": "Lovelace", "displayname": "",
            "employeeIdentifier": "E42", "manager": "650000000000000000000002",
            "alternateEmail": "ada@home.example", "state": "ACTIVATED", "suspended": false
        }))
        .record();
        assert_eq!(r.person.id.as_str(), "650000000000000000000001");
        assert_eq!(r.person.email, "ada@example.com");
        assert_eq!(
            r.person.aliases,
            ["ada.l"],
            "the login, never alternateEmail"
        );
        assert_eq!(r.person.display_name, "Ada Lovelace");
        assert_eq!(r.person.employee_id.as_deref(), Some("E42"));
        let m = r.person.manager.unwrap();
        assert_eq!(m.id.unwrap().as_str(), "650000000000000000000002");
        assert_eq!(r.lifecycle, Lifecycle::Current);
        let r = user(
            serde_json::json!({"_id": "x", "username": "bob@example.com",
                                        "displayname": "Bobby", "manager": null}),
        )
        .record();
        assert_eq!(
            (r.person.email.as_str(), r.person.display_name.as_str()),
            ("bob@example.com", "Bobby")
        );
        assert!(r.person.aliases.is_empty() && r.person.manager.is_none());
    }
}
