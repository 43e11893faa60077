//! [`OneLoginSource`]: OneLogin's users as a source of truth, read incrementally by
//! `updated_at`.
//!
//! # Endpoints (OneLogin API v2, `https://<subdomain>.onelogin.com`)
//! - `POST /auth/oauth2/v2/token`: an access token for the API credential (OAuth 2.0 client
//!   credentials, the client id and secret in HTTP basic authentication), cached until
//!   shortly before its `expires_in` (10 h) and fetched anew after a 401.
//! - `GET /api/2/users?limit=<n>[&updated_since=<t>][&cursor=<c>]`: one page per
//!   [`SourceOfTruth::changes`] call (`limit` 1 to 100, OneLogin's cap; default 100),
//!   following the `After-Cursor` header with the same query.
//! - `GET /api/2/users?limit=1&fields=id`: after an incremental read, the `Total-Count` of
//!   users, to notice a deletion (below).
//! - `GET /api/2/users/{user_id}`: a user last reported current and missing at the end of a
//!   full listing (a 404 reports them [`PersonRecord::gone`]), and a reported person's
//!   manager (`manager_user_id`; read once per call).
//!
//! # Reading
//! - The first poll, and one every `full_scan_every` (default 1 h), lists everyone and
//!   diffs ([`Scan`]). Between them each poll lists only users with `updated_at` after the
//!   largest `updated_at` seen minus `overlap` (default 60 s), so a change in the same
//!   second as the last read, or indexed late, is read again rather than lost; what the
//!   overlap repeats unchanged is not reported twice (the scan's fingerprints).
//! - A deleted user never shows up in an incremental read. After each one the source asks
//!   OneLogin how many users there are: fewer than it knows means someone was deleted, and
//!   a full listing starts at once (the batch says `more`), so a deletion is reported by the
//!   same poll (or, when a user was created between the read and the count, the next one).
//! - Everything is in the cursor (the scan, where a listing continues, when the last full
//!   listing ended), so a restart continues where it stopped.
//! - A 429 is `RateLimited`, its wait taken from OneLogin's `X-RateLimit-Reset` (seconds
//!   until the hourly window resets) or `Retry-After`; nothing is lost: the cursor is not
//!   advanced.
//!
//! # Status mapping (`status`)
//! | OneLogin `status` | lifecycle |
//! |---|---|
//! | 1 active | current |
//! | 0 unactivated, 4 password expired, 5 awaiting password reset, 7 password pending, 8 security questions required | current: an employee between credential steps (or not yet activated), whom a password expiring must never offboard; a new hire first seen unactivated is not reported "back" when activated |
//! | 2 suspended, 3 locked | past (the issue: "suspended, locked"; a lockout after failed sign-ins is one too, so the debounce and the confirmation of critical actions are what stand between a lockout and an offboarding) |
//! | any other code, or none | past (not active) |
//! | no longer found (404) | past ([`PersonRecord::gone`]) |
//!
//! # The person
//! Id the OneLogin user id; email `email` (else `username`); aliases `username` and
//! `userprincipalname` when they differ from the email; display name `firstname lastname`;
//! employee id `external_id` (the id an HR directory gave the user); manager the user
//! `manager_user_id` names.
//!
//! # Limitations
//! OneLogin records no termination date ([`PersonRecord::termination_at`] is always `None`).
//! `state` (approval) is not read. An idle poll costs two requests.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use offboard_core::source::{ChangeBatch, Cursor, PersonRecord, SourceOfTruth};
use offboard_core::{Error, ErrorKind, Lifecycle, Manager, Person, PersonId, Result, Secret};
use offboard_http::{
    ClientAuthMethod, ClientSecretCredentials, HttpClient, HttpRequest, HttpResponse,
};
use serde::{Deserialize, Serialize};

use crate::manager;
use crate::scan::Scan;

const USERS: [&str; 3] = ["api", "2", "users"];
/// OneLogin's largest page.
pub const MAX_PAGE: u32 = 100;

/// How to reach a OneLogin account.
///
/// # Example
/// ```
/// use offboard_core::Secret;
/// use offboard_sources::onelogin::{OneLoginConfig, OneLoginSource};
///
/// let config = OneLoginConfig::new(
///     "https://example.onelogin.com",
///     "client-id",
///     Secret::new("ol-secret"),
/// );
/// let source = OneLoginSource::new(config).unwrap();
/// assert!(!format!("{source:?}").contains("ol-secret"));
/// ```
#[derive(Clone)]
pub struct OneLoginConfig {
    base_url: String,
    client_id: String,
    client_secret: Secret,
    page_size: u32,
    name: String,
    overlap: Duration,
    full_scan_every: Duration,
    allow_plain_http: bool,
}

impl fmt::Debug for OneLoginConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OneLoginConfig")
            .field("base_url", &self.base_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("page_size", &self.page_size)
            .field("name", &self.name)
            .field("overlap", &self.overlap)
            .field("full_scan_every", &self.full_scan_every)
            .field("allow_plain_http", &self.allow_plain_http)
            .finish()
    }
}

impl OneLoginConfig {
    /// The account at `base_url` (`https://<subdomain>.onelogin.com`) read with this API
    /// credential; 100 users per page, a 60 s overlap, a full listing every hour, named
    /// `onelogin`.
    pub fn new(base_url: impl Into<String>, client_id: impl Into<String>, secret: Secret) -> Self {
        Self {
            base_url: base_url.into(),
            client_id: client_id.into(),
            client_secret: secret,
            page_size: MAX_PAGE,
            name: "onelogin".into(),
            overlap: Duration::from_secs(60),
            full_scan_every: Duration::from_secs(3600),
            allow_plain_http: false,
        }
    }

    /// Users per page, 1 to 100.
    pub fn with_page_size(mut self, n: u32) -> Self {
        self.page_size = n;
        self
    }

    /// The source's name (its cursor's key).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// How far before the largest `updated_at` seen each incremental read starts.
    pub fn with_overlap(mut self, overlap: Duration) -> Self {
        self.overlap = overlap;
        self
    }

    /// How often everyone is listed (and the unlisted read directly).
    pub fn with_full_scan_every(mut self, every: Duration) -> Self {
        self.full_scan_every = every;
        self
    }

    /// Allows plain `http` URLs on this machine (tests against a simulator only).
    pub fn with_allow_plain_http(mut self, allow: bool) -> Self {
        self.allow_plain_http = allow;
        self
    }
}

/// OneLogin's users as a [`SourceOfTruth`]: see the [module docs](self).
#[derive(Debug, Clone)]
pub struct OneLoginSource {
    name: String,
    http: HttpClient,
    page_size: u32,
    overlap: chrono::Duration,
    full_scan_every: Duration,
}

/// What the cursor holds.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    #[serde(default)]
    scan: Scan,
    /// When the last full listing ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_full: Option<DateTime<Utc>>,
    /// OneLogin counted fewer users than known: the next listing is a full one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    recount: bool,
}

/// A listing in progress (the scan's `next_page`).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Position {
    /// Everyone (diffed, the unlisted read), or an incremental read.
    full: bool,
    /// `updated_since` of an incremental read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from: Option<String>,
    /// The `After-Cursor` to continue with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
struct User {
    id: serde_json::Value,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    firstname: Option<String>,
    #[serde(default)]
    lastname: Option<String>,
    #[serde(default)]
    userprincipalname: Option<String>,
    #[serde(default)]
    external_id: Option<serde_json::Value>,
    #[serde(default)]
    manager_user_id: Option<serde_json::Value>,
    #[serde(default)]
    status: Option<i64>,
    #[serde(default)]
    updated_at: Option<String>,
}

/// The lifecycle of a OneLogin status code: active (1), not yet activated (0) and the
/// credential states of an active employee (4, 5, 7, 8) are current; suspended (2), locked
/// (3) and codes OneLogin does not document are past.
fn lifecycle(status: Option<i64>) -> Lifecycle {
    match status {
        Some(0 | 1 | 4 | 5 | 7 | 8) => Lifecycle::Current,
        _ => Lifecycle::Past,
    }
}

/// A JSON id (a number, or a string) as text; `None` for null or empty.
fn id_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

fn text(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

fn time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

impl User {
    /// The record, its manager known by id only (the email is read for reported records).
    fn record(&self) -> Result<PersonRecord> {
        let id = id_text(&self.id)
            .ok_or_else(|| Error::new(ErrorKind::Vendor, "a OneLogin user without an id"))?;
        let email = text(&self.email).or(text(&self.username)).unwrap_or("");
        let mut person = Person::new(id.as_str(), email);
        for alias in [text(&self.username), text(&self.userprincipalname)]
            .into_iter()
            .flatten()
        {
            if !alias.eq_ignore_ascii_case(email)
                && !person.aliases.iter().any(|a| a.eq_ignore_ascii_case(alias))
            {
                person.aliases.push(alias.to_owned());
            }
        }
        person.display_name = [text(&self.firstname), text(&self.lastname)]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        person.employee_id = self.external_id.as_ref().and_then(id_text);
        person.manager = self
            .manager_user_id
            .as_ref()
            .and_then(id_text)
            .map(|m| Manager {
                id: Some(PersonId::new(m)),
                email: String::new(),
            });
        Ok(PersonRecord {
            person,
            lifecycle: lifecycle(self.status),
            termination_at: None,
        })
    }
}

impl OneLoginSource {
    /// A source reading the account `config` names.
    ///
    /// # Errors
    /// `Config` naming `page_size` (not 1 to 100), `base_url` or `token_url` (not https,
    /// unless plain http is allowed), `client_id` or `client_secret` (empty).
    pub fn new(config: OneLoginConfig) -> Result<Self> {
        if !(1..=MAX_PAGE).contains(&config.page_size) {
            return Err(Error::config(
                "page_size",
                format!("must be 1 to {MAX_PAGE}, not {}", config.page_size),
            ));
        }
        let token_url = format!(
            "{}/auth/oauth2/v2/token",
            config.base_url.trim_end_matches('/')
        );
        let tokens =
            ClientSecretCredentials::builder(token_url, config.client_id, config.client_secret)
                .client_auth(ClientAuthMethod::Basic)
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
            overlap: chrono::Duration::from_std(config.overlap).unwrap_or_default(),
            full_scan_every: config.full_scan_every,
        })
    }

    /// Sends `request`; a 429 carries OneLogin's `X-RateLimit-Reset` as its wait.
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse> {
        let response = self.http.send_raw(request.bucket("users")).await?;
        if response.status().as_u16() != 429 {
            return response.error_for_status();
        }
        let e = response.error();
        let reset = response
            .headers()
            .get("x-ratelimit-reset")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        Err(match (e.retry_after(), reset) {
            (None, Some(secs)) => {
                Error::rate_limited(Some(Duration::from_secs(secs)), e.message().to_owned())
            }
            _ => e,
        })
    }

    /// `GET /api/2/users/{user_id}`; `None` on 404.
    async fn get_user(&self, id: &str) -> Result<Option<User>> {
        let mut path = USERS.map(str::to_owned).to_vec();
        path.push(id.to_owned());
        crate::found(self.send(HttpRequest::get(path)).await)?
            .map(|r| r.json())
            .transpose()
    }

    /// How many users OneLogin has (`Total-Count`), when it says.
    async fn count(&self) -> Result<Option<usize>> {
        let request = HttpRequest::get(USERS)
            .query("limit", "1")
            .query("fields", "id");
        let response = self.send(request).await?;
        Ok(response
            .headers()
            .get("total-count")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok()))
    }

    /// Where a new listing starts: everyone, or what changed since the last read.
    fn start(&self, state: &State) -> Position {
        let due = state
            .last_full
            .is_none_or(|t| (Utc::now() - t).to_std().unwrap_or_default() >= self.full_scan_every);
        let since = state.scan.since.as_deref().and_then(time);
        match since {
            Some(since) if !due && !state.recount => Position {
                full: false,
                from: Some(stamp(since - self.overlap)),
                cursor: None,
            },
            _ => Position {
                full: true,
                from: None,
                cursor: None,
            },
        }
    }

    /// The email of the user `id`, `None` when OneLogin no longer finds them.
    async fn email_of(&self, id: String) -> Result<Option<String>> {
        match self.get_user(&id).await? {
            Some(m) => Ok(Some(m.record()?.person.email)),
            None => Ok(None),
        }
    }

    /// Reads one page of the listing `at`: what changed, and where it continues.
    async fn page(&self, state: &mut State, at: Position) -> Result<(Vec<PersonRecord>, bool)> {
        let mut request = HttpRequest::get(USERS).query("limit", self.page_size.to_string());
        if let Some(from) = &at.from {
            request = request.query("updated_since", from.clone());
        }
        if let Some(cursor) = &at.cursor {
            request = request.query("cursor", cursor.clone());
        }
        let response = self.send(request).await?;
        let users: Vec<User> = response.json()?;
        let mut records = Vec::with_capacity(users.len());
        for user in &users {
            records.push(user.record()?);
            if let Some(updated) = user.updated_at.as_deref().and_then(time)
                && state
                    .scan
                    .since
                    .as_deref()
                    .and_then(time)
                    .is_none_or(|s| updated > s)
            {
                state.scan.since = Some(stamp(updated));
            }
        }
        let changed = if at.full {
            state.scan.listed(records)
        } else {
            records
                .into_iter()
                .filter_map(|r| state.scan.observed(r))
                .collect()
        };
        let after = response
            .headers()
            .get("after-cursor")
            .and_then(|v| v.to_str().ok())
            .filter(|c| !c.is_empty())
            .map(str::to_owned);
        let more = after.is_some();
        let next = Position {
            cursor: after,
            ..at
        };
        state
            .scan
            .continue_at(serde_json::to_string(&next).map_err(|e| Error::internal(e.to_string()))?);
        Ok((changed, more))
    }

    /// Ends a listing: a full one reads the unlisted; an incremental one asks whether
    /// anyone was deleted. Returns what changed and whether to read on at once.
    async fn end(&self, state: &mut State, full: bool) -> Result<(Vec<PersonRecord>, bool)> {
        let mut changes = Vec::new();
        if full {
            for id in state.scan.missing() {
                let read = match self.get_user(&id).await? {
                    Some(u) => Some(u.record()?),
                    None => None,
                };
                changes.extend(state.scan.settle(&id, read));
            }
            state.last_full = Some(Utc::now());
            state.recount = false;
            return Ok((changes, false));
        }
        state.scan.restart_listing();
        let deleted = self
            .count()
            .await?
            .is_some_and(|total| total < state.scan.known());
        state.recount = deleted;
        Ok((changes, deleted))
    }
}

#[async_trait]
impl SourceOfTruth for OneLoginSource {
    fn name(&self) -> &str {
        &self.name
    }

    async fn changes(&self, cursor: Option<&Cursor>) -> Result<ChangeBatch> {
        let op = format!("{}.changes", self.name);
        let read = async {
            let mut state: State = Cursor::decode(cursor, &self.name)?;
            let at = match state.scan.next_page() {
                Some(p) => serde_json::from_str::<Position>(p).map_err(|e| {
                    Error::invalid_input(format!("{}: the cursor is not ours: {e}", self.name))
                })?,
                None => self.start(&state),
            };
            let full = at.full;
            let (mut changes, mut more) = self.page(&mut state, at).await?;
            if !more {
                let (ended, again) = self.end(&mut state, full).await?;
                changes.extend(ended);
                more = again;
            }
            manager::fill(&mut changes, |id| self.email_of(id)).await?;
            Ok(ChangeBatch {
                changes,
                next: Cursor::encode(&state),
                more,
            })
        };
        read.await.map_err(|e: Error| e.with_operation(op))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_maps_to_a_lifecycle() {
        for (status, want) in [
            (Some(1), Lifecycle::Current),
            (Some(0), Lifecycle::Current),
            (Some(2), Lifecycle::Past),
            (Some(3), Lifecycle::Past),
            (Some(4), Lifecycle::Current),
            (Some(5), Lifecycle::Current),
            (Some(7), Lifecycle::Current),
            (Some(8), Lifecycle::Current),
            (Some(6), Lifecycle::Past),
            (Some(99), Lifecycle::Past),
            (None, Lifecycle::Past),
        ] {
            assert_eq!(lifecycle(status), want, "{status:?}");
        }
    }

    #[test]
    fn a_user_becomes_a_person() {
        let u: User = serde_json::from_value(serde_json::json!({
            "id": 101, "email": "ada@example.com", "username": "ada.l",
            "userprincipalname": "ada@corp.example.com", "firstname": "Ada",
            "lastname": "Lovelace", "external_id": "E42", "manager_user_id": 102,
            "status": 1, "updated_at": "2026-11-23T10:00:00.000Z"
        }))
        .unwrap();
        let r = u.record().unwrap();
        assert_eq!(r.person.id.as_str(), "101");
        assert_eq!(r.person.aliases, ["ada.l", "ada@corp.example.com"]);
        assert_eq!(r.person.display_name, "Ada Lovelace");
        assert_eq!(r.person.employee_id.as_deref(), Some("E42"));
        assert_eq!(r.person.manager.unwrap().id.unwrap().as_str(), "102");
        let u: User = serde_json::from_value(serde_json::json!({
            "id": "103", "username": "bob@example.com", "manager_user_id": null, "status": 2
        }))
        .unwrap();
        let r = u.record().unwrap();
        assert_eq!(
            (r.person.email.as_str(), r.lifecycle),
            ("bob@example.com", Lifecycle::Past)
        );
        assert!(r.person.aliases.is_empty() && r.person.manager.is_none());
    }
}
