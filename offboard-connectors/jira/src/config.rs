//! Configuration: [`JiraBuilder`] (`new`, `from_env`, `with_*`, `build`) and [`ConfigKey`].

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use offboard_core::{Error, Result, Secret};
use url::Url;

use crate::JiraDelegate;
use crate::template::Template;

/// The default summary template.
pub const DEFAULT_SUMMARY: &str = "Offboarding: remove {person}'s access to {app}";
/// The default description template (one ADF paragraph per line).
pub const DEFAULT_DESCRIPTION: &str = "{person} ({email}) is leaving.\n\
Please remove their access to {app} by {due}, then move this issue to the done status.\n\
Offboarding run: {run}";

/// A configuration key, as named in errors, `with_config` and the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConfigKey {
    /// `site` (aliases `url`, `base_url`): `https://<your-domain>.atlassian.net`.
    Site,
    /// `email` (alias `user`): the account the API token belongs to.
    Email,
    /// `api_token` (alias `token`): the API token (a secret).
    ApiToken,
    /// `project` (alias `project_key`): the project the issues go to.
    Project,
    /// `issue_type`: issue type id (all digits) or name.
    IssueType,
    /// `summary` (alias `summary_template`): summary template.
    Summary,
    /// `description` (alias `description_template`): description template.
    Description,
    /// `done_status`: narrows "done" to one status (name or id) of the `done` category.
    /// Unset: any status of Jira's `done` category completes the task.
    DoneStatus,
    /// `not_done_resolutions` (comma-separated): resolutions that close an issue without the
    /// work done; such a ticket is reported declined, never as access removed.
    NotDoneResolutions,
    /// `poll_interval` (seconds): how often the host should poll.
    PollInterval,
    /// `webhook_secret`: the secret Jira signs webhook deliveries with (a secret).
    WebhookSecret,
    /// `assignee`: account id new issues are assigned to.
    Assignee,
    /// `timeout` (seconds): per-request timeout.
    Timeout,
    /// `allow_plain_http` (`true`/`false`): allow a plain `http` site on this machine
    /// (loopback tests and simulators). Default `false`: the API token never travels in clear.
    AllowPlainHttp,
    /// `request_budget` (alias `requests_per_minute`): the requests per minute the delegate
    /// paces itself to (`<n>`, or `<n>/<window>` such as `100/10s`); `0` or unset: no pacing.
    /// Atlassian publishes no figure for API-token traffic (its burst limits): set what the
    /// site allows. A fleet of engines sharing a `RateBudget` shares it.
    RequestBudget,
}

impl ConfigKey {
    /// Every key, in documentation order.
    pub const ALL: [ConfigKey; 15] = [
        Self::Site,
        Self::Email,
        Self::ApiToken,
        Self::Project,
        Self::IssueType,
        Self::Summary,
        Self::Description,
        Self::DoneStatus,
        Self::NotDoneResolutions,
        Self::PollInterval,
        Self::WebhookSecret,
        Self::Assignee,
        Self::Timeout,
        Self::AllowPlainHttp,
        Self::RequestBudget,
    ];

    /// The canonical name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Site => "site",
            Self::Email => "email",
            Self::ApiToken => "api_token",
            Self::Project => "project",
            Self::IssueType => "issue_type",
            Self::Summary => "summary",
            Self::Description => "description",
            Self::DoneStatus => "done_status",
            Self::NotDoneResolutions => "not_done_resolutions",
            Self::PollInterval => "poll_interval",
            Self::WebhookSecret => "webhook_secret",
            Self::Assignee => "assignee",
            Self::Timeout => "timeout",
            Self::AllowPlainHttp => "allow_plain_http",
            Self::RequestBudget => "request_budget",
        }
    }

    /// The environment variable `from_env` reads: `OFFBOARD_JIRA_<NAME>`.
    pub fn env_var(self) -> String {
        format!("OFFBOARD_JIRA_{}", self.as_str().to_ascii_uppercase())
    }
}

impl fmt::Display for ConfigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ConfigKey {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let k = s.trim().to_ascii_lowercase();
        let k = k.strip_prefix("offboard_jira_").unwrap_or(&k);
        Ok(match k {
            "site" | "url" | "base_url" => Self::Site,
            "email" | "user" => Self::Email,
            "api_token" | "token" => Self::ApiToken,
            "project" | "project_key" => Self::Project,
            "issue_type" | "issuetype" => Self::IssueType,
            "summary" | "summary_template" => Self::Summary,
            "description" | "description_template" => Self::Description,
            "done_status" | "done" => Self::DoneStatus,
            "not_done_resolutions" => Self::NotDoneResolutions,
            "poll_interval" | "poll" => Self::PollInterval,
            "webhook_secret" => Self::WebhookSecret,
            "assignee" => Self::Assignee,
            "timeout" => Self::Timeout,
            "allow_plain_http" => Self::AllowPlainHttp,
            "request_budget" | "requests_per_minute" => Self::RequestBudget,
            _ => return Err(Error::config(s, "unknown Jira configuration key")),
        })
    }
}

/// Resolutions that, by default, close an issue without the work done: Jira Cloud's defaults
/// `Won't Do`, `Duplicate` and `Cannot Reproduce`, and the common `Won't Fix`, `Declined`,
/// `Rejected` and `Incomplete`.
pub const DEFAULT_NOT_DONE_RESOLUTIONS: [&str; 7] = [
    "Won't Do",
    "Won't Fix",
    "Duplicate",
    "Cannot Reproduce",
    "Declined",
    "Rejected",
    "Incomplete",
];

/// The validated configuration of a [`JiraDelegate`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct JiraConfig {
    /// Site base URL, without a trailing slash.
    pub site: Url,
    /// Account email (basic auth user).
    pub email: String,
    /// API token.
    pub api_token: Secret,
    /// Project key.
    pub project: String,
    /// Issue type id or name.
    pub issue_type: String,
    /// Summary template.
    pub summary: String,
    /// Description template.
    pub description: String,
    /// The one `done`-category status (name or id) that completes a task; `None`: any
    /// status of the `done` category.
    pub done_status: Option<String>,
    /// Resolutions that close an issue without the work done (compared case-insensitively).
    pub not_done_resolutions: Vec<String>,
    /// Poll interval (a hint for the host's `Engine::delegation_poll`).
    pub poll_interval: Duration,
    /// Webhook secret, when webhooks are used.
    pub webhook_secret: Option<Secret>,
    /// Initial assignee account id.
    pub assignee: Option<String>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// The budget the delegate paces its requests to: (requests, per); `None`: no pacing.
    pub request_budget: Option<(u32, Duration)>,
}

/// Builds a [`JiraDelegate`].
///
/// # Example
/// ```
/// use offboard_jira::{ConfigKey, JiraBuilder};
///
/// let jira = JiraBuilder::new()
///     .with_site("https://example.atlassian.net")
///     .with_email("bot@example.com")
///     .with_api_token("not-a-real-token")
///     .with_project("IT")
///     .build()
///     .unwrap();
/// assert!(!format!("{jira:?}").contains("not-a-real-token"));
///
/// let err = JiraBuilder::new().with_site("https://example.atlassian.net").build().unwrap_err();
/// assert!(err.to_string().contains("email"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct JiraBuilder {
    site: Option<String>,
    email: Option<String>,
    api_token: Option<Secret>,
    project: Option<String>,
    issue_type: Option<String>,
    summary: Option<String>,
    description: Option<String>,
    done_status: Option<String>,
    not_done_resolutions: Option<String>,
    poll_interval: Option<String>,
    webhook_secret: Option<Secret>,
    assignee: Option<String>,
    timeout: Option<String>,
    allow_plain_http: Option<String>,
    request_budget: Option<String>,
}

impl JiraBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder from the environment: every `OFFBOARD_JIRA_<KEY>` variable that is set is
    /// applied with [`with_config`](Self::with_config): `OFFBOARD_JIRA_SITE`,
    /// `OFFBOARD_JIRA_EMAIL`, `OFFBOARD_JIRA_API_TOKEN`, `OFFBOARD_JIRA_PROJECT`,
    /// `OFFBOARD_JIRA_ISSUE_TYPE`, `OFFBOARD_JIRA_SUMMARY`, `OFFBOARD_JIRA_DESCRIPTION`,
    /// `OFFBOARD_JIRA_DONE_STATUS`, `OFFBOARD_JIRA_POLL_INTERVAL` (seconds),
    /// `OFFBOARD_JIRA_WEBHOOK_SECRET`, `OFFBOARD_JIRA_ASSIGNEE`, `OFFBOARD_JIRA_TIMEOUT`
    /// (seconds), `OFFBOARD_JIRA_ALLOW_PLAIN_HTTP`, `OFFBOARD_JIRA_REQUEST_BUDGET` (requests
    /// per minute, or `<n>/<window>`).
    pub fn from_env() -> Self {
        let mut b = Self::new();
        for key in ConfigKey::ALL {
            if let Ok(v) = std::env::var(key.env_var()) {
                b = b.with_config(key, v);
            }
        }
        b
    }

    /// Sets one value by key.
    pub fn with_config(mut self, key: ConfigKey, value: impl Into<String>) -> Self {
        let v = value.into();
        match key {
            ConfigKey::Site => self.site = Some(v),
            ConfigKey::Email => self.email = Some(v),
            ConfigKey::ApiToken => self.api_token = Some(Secret::new(v)),
            ConfigKey::Project => self.project = Some(v),
            ConfigKey::IssueType => self.issue_type = Some(v),
            ConfigKey::Summary => self.summary = Some(v),
            ConfigKey::Description => self.description = Some(v),
            ConfigKey::DoneStatus => self.done_status = Some(v),
            ConfigKey::NotDoneResolutions => self.not_done_resolutions = Some(v),
            ConfigKey::PollInterval => self.poll_interval = Some(v),
            ConfigKey::WebhookSecret => self.webhook_secret = Some(Secret::new(v)),
            ConfigKey::Assignee => self.assignee = Some(v),
            ConfigKey::Timeout => self.timeout = Some(v),
            ConfigKey::AllowPlainHttp => self.allow_plain_http = Some(v),
            ConfigKey::RequestBudget => self.request_budget = Some(v),
        }
        self
    }

    /// Allows a plain `http` site on this machine (loopback tests and simulators). Default
    /// off: see [`offboard_http::require_https`].
    pub fn with_allow_plain_http(self, allow: bool) -> Self {
        self.with_config(ConfigKey::AllowPlainHttp, allow.to_string())
    }

    /// Site base URL, e.g. `https://example.atlassian.net`.
    pub fn with_site(self, site: impl Into<String>) -> Self {
        self.with_config(ConfigKey::Site, site)
    }

    /// The account's email (basic auth user).
    pub fn with_email(self, email: impl Into<String>) -> Self {
        self.with_config(ConfigKey::Email, email)
    }

    /// The API token.
    pub fn with_api_token(mut self, token: impl Into<Secret>) -> Self {
        self.api_token = Some(token.into());
        self
    }

    /// The project key.
    pub fn with_project(self, project: impl Into<String>) -> Self {
        self.with_config(ConfigKey::Project, project)
    }

    /// The issue type id or name (default `Task`).
    pub fn with_issue_type(self, issue_type: impl Into<String>) -> Self {
        self.with_config(ConfigKey::IssueType, issue_type)
    }

    /// The summary template; placeholders `{person}`, `{email}`, `{app}`, `{run}`, `{due}`.
    pub fn with_summary(self, template: impl Into<String>) -> Self {
        self.with_config(ConfigKey::Summary, template)
    }

    /// The description template (same placeholders; one paragraph per line).
    pub fn with_description(self, template: impl Into<String>) -> Self {
        self.with_config(ConfigKey::Description, template)
    }

    /// Narrows "done" to one status of Jira's `done` category, by name or id (default: any
    /// status of that category). A status outside the category never completes a task.
    pub fn with_done_status(self, status: impl Into<String>) -> Self {
        self.with_config(ConfigKey::DoneStatus, status)
    }

    /// The resolutions that close an issue without the work done (default
    /// [`DEFAULT_NOT_DONE_RESOLUTIONS`]); such a ticket reads
    /// [`TicketStatus::Declined`](offboard_core::TicketStatus::Declined).
    pub fn with_not_done_resolutions<S: Into<String>>(
        self,
        resolutions: impl IntoIterator<Item = S>,
    ) -> Self {
        let list: Vec<String> = resolutions.into_iter().map(Into::into).collect();
        self.with_config(ConfigKey::NotDoneResolutions, list.join(","))
    }

    /// The poll interval (default 60 s).
    pub fn with_poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = Some(format!("{}ms", every.as_millis()));
        self
    }

    /// The webhook secret.
    pub fn with_webhook_secret(mut self, secret: impl Into<Secret>) -> Self {
        self.webhook_secret = Some(secret.into());
        self
    }

    /// Assigns new issues to this account id.
    pub fn with_assignee(self, account_id: impl Into<String>) -> Self {
        self.with_config(ConfigKey::Assignee, account_id)
    }

    /// The per-request timeout (default 30 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(format!("{}ms", timeout.as_millis()));
        self
    }

    /// Paces requests to `requests` per `per` (see [`ConfigKey::RequestBudget`]); zero
    /// requests: no pacing.
    pub fn with_request_budget(mut self, requests: u32, per: Duration) -> Self {
        self.request_budget = Some(format!("{requests}/{}ms", per.as_millis()));
        self
    }

    /// Validates the configuration.
    ///
    /// # Errors
    /// `Config` naming the first missing or invalid key.
    pub fn config(&self) -> Result<JiraConfig> {
        let need = |key: ConfigKey, v: &Option<String>| -> Result<String> {
            match v.as_deref().map(str::trim) {
                Some(s) if !s.is_empty() => Ok(s.to_string()),
                _ => Err(Error::config(key.as_str(), "missing")),
            }
        };
        let site_raw = need(ConfigKey::Site, &self.site)?;
        let site = Url::parse(site_raw.trim_end_matches('/'))
            .ok()
            .filter(|u| matches!(u.scheme(), "https" | "http") && u.host().is_some())
            .ok_or_else(|| Error::config("site", "not an http(s) URL"))?;
        if !site.username().is_empty() || site.password().is_some() {
            return Err(Error::config("site", "must not carry credentials"));
        }
        let allow_plain_http = match self.allow_plain_http.as_deref().map(str::trim) {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => return Err(Error::config("allow_plain_http", "not true or false")),
        };
        offboard_http::require_https(&site, "site", allow_plain_http)?;
        let email = need(ConfigKey::Email, &self.email)?;
        let api_token = match &self.api_token {
            Some(t) if !t.is_empty() => t.clone(),
            _ => return Err(Error::config("api_token", "missing")),
        };
        let project = need(ConfigKey::Project, &self.project)?;
        if !project
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            || !project.starts_with(|c: char| c.is_ascii_uppercase())
        {
            return Err(Error::config("project", "not a Jira project key"));
        }
        let summary = self
            .summary
            .clone()
            .unwrap_or_else(|| DEFAULT_SUMMARY.into());
        Template::parse(&summary).map_err(|e| Error::config("summary", e))?;
        let description = self
            .description
            .clone()
            .unwrap_or_else(|| DEFAULT_DESCRIPTION.into());
        Template::parse(&description).map_err(|e| Error::config("description", e))?;
        let poll_interval = match &self.poll_interval {
            None => Duration::from_secs(60),
            Some(v) => parse_duration(v).ok_or_else(|| {
                Error::config("poll_interval", "not a duration (seconds, or `<n>ms`)")
            })?,
        };
        if poll_interval.is_zero() {
            return Err(Error::config("poll_interval", "must be positive"));
        }
        let timeout = match &self.timeout {
            None => Duration::from_secs(30),
            Some(v) => parse_duration(v)
                .filter(|d| !d.is_zero())
                .ok_or_else(|| Error::config("timeout", "not a positive duration"))?,
        };
        let request_budget = match self.request_budget.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(v) => parse_budget(v).ok_or_else(|| {
                Error::config(
                    "request_budget",
                    "not `<requests>` or `<requests>/<window>`",
                )
            })?,
        };
        let webhook_secret = match &self.webhook_secret {
            Some(s) if s.is_empty() => {
                return Err(Error::config("webhook_secret", "empty"));
            }
            other => other.clone(),
        };
        Ok(JiraConfig {
            site,
            email,
            api_token,
            project,
            issue_type: self
                .issue_type
                .clone()
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| "Task".into()),
            summary,
            description,
            done_status: self
                .done_status
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            not_done_resolutions: match &self.not_done_resolutions {
                Some(list) => list
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
                None => DEFAULT_NOT_DONE_RESOLUTIONS
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect(),
            },
            poll_interval,
            webhook_secret,
            assignee: self.assignee.clone().filter(|s| !s.trim().is_empty()),
            timeout,
            request_budget,
        })
    }

    /// Validates and builds the delegate.
    ///
    /// # Errors
    /// `Config` naming the missing or invalid key; `Internal` if the HTTP client cannot be
    /// built.
    pub fn build(self) -> Result<JiraDelegate> {
        JiraDelegate::new(self.config()?)
    }
}

/// `"600"` (per minute) or `"100/10s"`: `Some(None)` for zero requests (no pacing), `None`
/// when malformed or the window is zero.
fn parse_budget(v: &str) -> Option<Option<(u32, Duration)>> {
    let (n, per) = match v.split_once('/') {
        Some((n, w)) => (n, parse_duration(w)?),
        None => (v, Duration::from_secs(60)),
    };
    let n: u32 = n.trim().parse().ok()?;
    if per.is_zero() {
        return None;
    }
    Some((n > 0).then_some((n, per)))
}

/// `"90"` (seconds), `"1500ms"` or `"2s"`.
fn parse_duration(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Some(ms) = v.strip_suffix("ms") {
        return ms.trim().parse().ok().map(Duration::from_millis);
    }
    let s = v.strip_suffix('s').unwrap_or(v);
    s.trim().parse().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> JiraBuilder {
        JiraBuilder::new()
            .with_site("https://example.atlassian.net/")
            .with_email("bot@example.com")
            .with_api_token("tok-123456")
            .with_project("IT")
    }

    #[test]
    fn build_names_the_missing_key() {
        for (b, key) in [
            (JiraBuilder::new(), "site"),
            (
                JiraBuilder::new().with_site("https://x.atlassian.net"),
                "email",
            ),
            (
                JiraBuilder::new()
                    .with_site("https://x.atlassian.net")
                    .with_email("a@b.c"),
                "api_token",
            ),
            (full().with_config(ConfigKey::Project, ""), "project"),
            (full().with_project("it lower"), "project"),
            (full().with_summary("{nope}"), "summary"),
            (
                full().with_config(ConfigKey::PollInterval, "soon"),
                "poll_interval",
            ),
            (full().with_site("ftp://x"), "site"),
            (full().with_site("http://jira.example.com"), "site"),
            (
                full()
                    .with_site("http://jira.example.com")
                    .with_allow_plain_http(true),
                "site",
            ),
            (
                full().with_config(ConfigKey::AllowPlainHttp, "perhaps"),
                "allow_plain_http",
            ),
            (
                full().with_config(ConfigKey::RequestBudget, "lots"),
                "request_budget",
            ),
            (
                full().with_config(ConfigKey::RequestBudget, "10/0s"),
                "request_budget",
            ),
        ] {
            let e = b.config().unwrap_err();
            assert_eq!(e.kind(), offboard_core::ErrorKind::Config);
            assert!(
                e.context().any(|(k, v)| k == "key" && v == key),
                "{key}: {e}"
            );
        }
    }

    #[test]
    fn defaults_and_aliases() {
        let c = full().config().unwrap();
        assert_eq!(c.site.as_str(), "https://example.atlassian.net/");
        assert_eq!(c.poll_interval, Duration::from_secs(60));
        assert_eq!(c.done_status, None);
        assert!(c.not_done_resolutions.iter().any(|r| r == "Won't Do"));
        let c = full()
            .with_config(ConfigKey::NotDoneResolutions, " Won't Do , Rejected ,")
            .config()
            .unwrap();
        assert_eq!(c.not_done_resolutions, ["Won't Do", "Rejected"]);
        assert_eq!(c.issue_type, "Task");
        assert_eq!("TOKEN".parse::<ConfigKey>().unwrap(), ConfigKey::ApiToken);
        assert_eq!(
            "OFFBOARD_JIRA_POLL_INTERVAL".parse::<ConfigKey>().unwrap(),
            ConfigKey::PollInterval
        );
        assert!("colour".parse::<ConfigKey>().is_err());
        let c = full()
            .with_config(ConfigKey::PollInterval, "5")
            .config()
            .unwrap();
        assert_eq!(c.poll_interval, Duration::from_secs(5));
        assert!(!format!("{c:?}").contains("tok-123456"));
        assert_eq!(ConfigKey::ApiToken.env_var(), "OFFBOARD_JIRA_API_TOKEN");
        assert_eq!(c.request_budget, None);
        let budget = |v: &str| {
            full()
                .with_config(ConfigKey::RequestBudget, v)
                .config()
                .unwrap()
                .request_budget
        };
        assert_eq!(budget("600"), Some((600, Duration::from_secs(60))));
        assert_eq!(budget("100/10s"), Some((100, Duration::from_secs(10))));
        assert_eq!(budget("0"), None);
        assert_eq!(
            full()
                .with_request_budget(50, Duration::from_millis(6000))
                .config()
                .unwrap()
                .request_budget,
            Some((50, Duration::from_secs(6)))
        );
        assert_eq!(
            "requests_per_minute".parse::<ConfigKey>().unwrap(),
            ConfigKey::RequestBudget
        );
    }
}
