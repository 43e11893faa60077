//! [`SailPointSource`]: SailPoint Identity Security Cloud (IdentityNow) identities as a source
//! of truth, by full scan and diff.
//!
//! # Endpoints (`https://{tenant}.api.identitynow.com`)
//! - `POST /oauth/token`: an access token for a personal access token or API client (OAuth
//!   2.0 client credentials, `client_id` and `client_secret` in the form body), cached until
//!   shortly before its `expires_in` (749 s) and fetched anew after a 401.
//! - `GET /v2025/identities?limit=<n>&offset=<k>&count=true`: pages of `limit`
//!   (1 to 250, SailPoint's cap; default 250) until a [`SourceOfTruth::changes`] call has
//!   listed its batch (default 5,000 people, [`SailPointConfig::with_batch`]); the
//!   scan's position (`offset`) is in the cursor. `X-Total-Count` says when it is complete.
//! - `GET /v2025/identities/{id}`: an identity last reported current and missing at the end
//!   of a scan (a 404 reports them [`PersonRecord::gone`]), and a reported person's manager
//!   (`managerRef.id`; read once per call).
//!
//! # Reading
//! The identities API has no changed-since filter (its `filters` take `id`, `name`, `alias`,
//! `firstname`, `lastname`, `email`, `cloudStatus`, `processingState`, `correlated`,
//! `protected`; `modified` is not one), so every poll lists everyone and reports who is new
//! or changed since last reported ([`Scan`](crate::scan::Scan)). No `sorters` are sent: SailPoint sorts only by
//! `name`, `alias` or `cloudStatus`, none of them unique; someone an identity created or
//! deleted during a scan shifts past is listed by the next scan, and someone last reported
//! current and missing at the end is read directly before being reported gone.
//! `defaultFilter` is left at SailPoint's `CORRELATED_ONLY`: identities without an
//! authoritative account are nobody's employees.
//!
//! # Lifecycle mapping (`lifecycleState.stateName`)
//! | SailPoint | lifecycle |
//! |---|---|
//! | `inactive`, `terminated` (any case) | past |
//! | `active`, `prehire`, and every other state an identity profile defines (leave of absence…) | current: the issue's rule is "lifecycle state changes to inactive/terminated" |
//! | no lifecycle state | current |
//! | no longer found (404) | past ([`PersonRecord::gone`]) |
//!
//! # The person
//! Id the identity id; email `emailAddress` (else `attributes.email`); alias `alias` (the
//! authoritative account's name) when it differs from the email; display name `name`;
//! employee id `attributes.identificationNumber`; manager the identity `managerRef.id`
//! names; termination date the identity attribute [`SailPointConfig::with_end_date_attribute`]
//! names (a date or date-time; none by default: SailPoint has no standard one).
//!
//! # Limitations
//! A scan of N identities costs ⌈N / 250⌉ requests per poll, idle or not. A 429 carries
//! SailPoint's `Retry-After`; the cursor is not advanced.

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use offboard_core::source::{ChangeBatch, Cursor, PersonRecord, SourceOfTruth};
use offboard_core::{Error, Lifecycle, Person, Result, Secret};
use offboard_http::{ClientAuthMethod, ClientSecretCredentials, HttpClient, HttpRequest};
use serde::Deserialize;

use crate::manager;
use crate::offset::{self, OffsetList};

const IDENTITIES: [&str; 2] = ["v2025", "identities"];
/// SailPoint's largest page.
pub const MAX_PAGE: u32 = 250;

/// How to reach a SailPoint tenant.
///
/// # Example
/// ```
/// use offboard_core::Secret;
/// use offboard_sources::sailpoint::{SailPointConfig, SailPointSource};
///
/// let config = SailPointConfig::new(
///     "https://acme.api.identitynow.com",
///     "client-id",
///     Secret::new("sp-secret"),
/// );
/// let source = SailPointSource::new(config).unwrap();
/// assert!(!format!("{source:?}").contains("sp-secret"));
/// ```
#[derive(Clone)]
pub struct SailPointConfig {
    base_url: String,
    client_id: String,
    client_secret: Secret,
    page_size: u32,
    batch: usize,
    name: String,
    end_date_attribute: Option<String>,
    allow_plain_http: bool,
}

impl fmt::Debug for SailPointConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SailPointConfig")
            .field("base_url", &self.base_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("page_size", &self.page_size)
            .field("batch", &self.batch)
            .field("name", &self.name)
            .field("end_date_attribute", &self.end_date_attribute)
            .field("allow_plain_http", &self.allow_plain_http)
            .finish()
    }
}

impl SailPointConfig {
    /// The tenant at `base_url` (`https://{tenant}.api.identitynow.com`) read with this
    /// client id and secret; 250 identities per page, named `sailpoint`.
    pub fn new(base_url: impl Into<String>, client_id: impl Into<String>, secret: Secret) -> Self {
        Self {
            base_url: base_url.into(),
            client_id: client_id.into(),
            client_secret: secret,
            page_size: MAX_PAGE,
            batch: crate::full_scan::DEFAULT_BATCH,
            name: "sailpoint".into(),
            end_date_attribute: None,
            allow_plain_http: false,
        }
    }

    /// Identities per page, 1 to 250.
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

    /// The identity attribute holding the termination date (e.g. `endDate`).
    pub fn with_end_date_attribute(mut self, attribute: impl Into<String>) -> Self {
        self.end_date_attribute = Some(attribute.into());
        self
    }

    /// Allows plain `http` URLs on this machine (tests against a simulator only).
    pub fn with_allow_plain_http(mut self, allow: bool) -> Self {
        self.allow_plain_http = allow;
        self
    }
}

/// SailPoint's identities as a [`SourceOfTruth`]: see the [module docs](self).
#[derive(Debug, Clone)]
pub struct SailPointSource {
    name: String,
    http: HttpClient,
    page_size: u32,
    batch: usize,
    end_date_attribute: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Identity {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    alias: Option<String>,
    #[serde(default)]
    email_address: Option<String>,
    #[serde(default)]
    manager_ref: Option<Ref>,
    #[serde(default)]
    lifecycle_state: Option<LifecycleState>,
    #[serde(default)]
    attributes: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct Ref {
    #[serde(default)]
    id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LifecycleState {
    #[serde(default)]
    state_name: Option<String>,
}

/// The lifecycle of a lifecycle state name: only inactive and terminated are past.
fn lifecycle(state: Option<&str>) -> Lifecycle {
    match state {
        Some(s) if s.eq_ignore_ascii_case("inactive") || s.eq_ignore_ascii_case("terminated") => {
            Lifecycle::Past
        }
        _ => Lifecycle::Current,
    }
}

fn text(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

/// A date (`2026-11-20`) or date-time attribute as a time (a date is its midnight, UTC).
fn date(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(value.get(..10)?, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        })
}

impl Identity {
    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .get(name)
            .and_then(|v| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// The record, its manager known by id only (the email is read for reported records).
    fn record(&self, end_date_attribute: Option<&str>) -> PersonRecord {
        let email = text(&self.email_address)
            .or(self.attribute("email"))
            .unwrap_or("");
        let mut person = Person::new(self.id.as_str(), email);
        if let Some(alias) = text(&self.alias).filter(|a| !a.eq_ignore_ascii_case(email)) {
            person.aliases.push(alias.to_owned());
        }
        person.display_name = text(&self.name)
            .or(self.attribute("displayName"))
            .unwrap_or("")
            .to_owned();
        person.employee_id = self.attribute("identificationNumber").map(str::to_owned);
        person.manager = manager::by_id(self.manager_ref.as_ref().and_then(|m| m.id.as_deref()));
        PersonRecord {
            person,
            lifecycle: lifecycle(
                self.lifecycle_state
                    .as_ref()
                    .and_then(|l| l.state_name.as_deref()),
            ),
            termination_at: end_date_attribute
                .and_then(|a| self.attribute(a))
                .and_then(date),
        }
    }
}

impl SailPointSource {
    /// A source reading the tenant `config` names.
    ///
    /// # Errors
    /// `Config` naming `page_size` (not 1 to 250), `base_url` or `token_url` (not https,
    /// unless plain http is allowed), `client_id` or `client_secret` (empty).
    pub fn new(config: SailPointConfig) -> Result<Self> {
        if !(1..=MAX_PAGE).contains(&config.page_size) {
            return Err(Error::config(
                "page_size",
                format!("must be 1 to {MAX_PAGE}, not {}", config.page_size),
            ));
        }
        let token_url = format!("{}/oauth/token", config.base_url.trim_end_matches('/'));
        let tokens =
            ClientSecretCredentials::builder(token_url, config.client_id, config.client_secret)
                .client_auth(ClientAuthMethod::Post)
                .allow_plain_http(config.allow_plain_http)
                .build()?;
        let http = HttpClient::builder(config.base_url)
            .token_provider(tokens)
            .allow_plain_http(config.allow_plain_http)
            .build()?;
        Ok(Self {
            name: config.name,
            http,
            page_size: config.page_size,
            batch: config.batch,
            end_date_attribute: config.end_date_attribute,
        })
    }

    fn record(&self, identity: &Identity) -> PersonRecord {
        identity.record(self.end_date_attribute.as_deref())
    }

    /// `GET /v2025/identities/{id}`; `None` on 404.
    async fn get_identity(&self, id: &str) -> Result<Option<Identity>> {
        let mut path = IDENTITIES.map(str::to_owned).to_vec();
        path.push(id.to_owned());
        crate::found(
            self.http
                .send(HttpRequest::get(path).bucket("identities"))
                .await,
        )?
        .map(|r| r.json())
        .transpose()
    }
}

#[async_trait]
impl OffsetList for SailPointSource {
    fn source(&self) -> &str {
        &self.name
    }

    fn page_size(&self) -> u32 {
        self.page_size
    }

    fn batch(&self) -> usize {
        self.batch
    }

    async fn list(&self, offset: u64) -> Result<(Vec<PersonRecord>, Option<u64>)> {
        let request = HttpRequest::get(IDENTITIES)
            .query("limit", self.page_size.to_string())
            .query("offset", offset.to_string())
            .query("count", "true")
            .bucket("identities");
        let response = self.http.send(request).await?;
        let total = response
            .headers()
            .get("x-total-count")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let identities: Vec<Identity> = response.json()?;
        Ok((identities.iter().map(|i| self.record(i)).collect(), total))
    }

    async fn read(&self, id: &str) -> Result<Option<PersonRecord>> {
        Ok(self.get_identity(id).await?.map(|i| self.record(&i)))
    }
}

#[async_trait]
impl SourceOfTruth for SailPointSource {
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

    #[test]
    fn every_lifecycle_state_maps_to_a_lifecycle() {
        for (state, want) in [
            (Some("active"), Lifecycle::Current),
            (Some("prehire"), Lifecycle::Current),
            (Some("leaveOfAbsence"), Lifecycle::Current),
            (Some("inactive"), Lifecycle::Past),
            (Some("terminated"), Lifecycle::Past),
            (Some("Terminated"), Lifecycle::Past),
            (Some("INACTIVE"), Lifecycle::Past),
            (None, Lifecycle::Current),
        ] {
            assert_eq!(lifecycle(state), want, "{state:?}");
        }
    }

    #[test]
    fn an_identity_becomes_a_person() {
        let i: Identity = serde_json::from_value(serde_json::json!({
            "id": "2c9180835d2e5168015d32f890ca1581", "name": "Walter White",
            "alias": "walter.white", "emailAddress": "walter@example.com",
            "managerRef": {"type": "IDENTITY", "id": "2c91808", "name": "Robert"},
            "lifecycleState": {"stateName": "terminated", "manuallyUpdated": false},
            "attributes": {"identificationNumber": "86754", "endDate": "2026-11-20"}
        }))
        .unwrap();
        let r = i.record(Some("endDate"));
        assert_eq!(r.person.email, "walter@example.com");
        assert_eq!(r.person.aliases, ["walter.white"]);
        assert_eq!(r.person.display_name, "Walter White");
        assert_eq!(r.person.employee_id.as_deref(), Some("86754"));
        assert_eq!(r.lifecycle, Lifecycle::Past);
        assert_eq!(
            r.termination_at
                .map(|t| t.date_naive().to_string())
                .as_deref(),
            Some("2026-11-20")
        );
        assert_eq!(r.person.manager.unwrap().id.unwrap().as_str(), "2c91808");
        assert_eq!(i.record(None).termination_at, None);
        assert_eq!(
            date("2026-11-20T17:00:00Z")
                .map(|t| t.to_rfc3339())
                .as_deref(),
            Some("2026-11-20T17:00:00+00:00")
        );
        assert_eq!(date("soon"), None);
    }
}
