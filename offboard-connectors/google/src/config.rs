//! Configuration of the Google Workspace connector and its builder.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use offboard_core::{Error, Result, Secret};
use offboard_http::{GoogleServiceAccount, HttpClient, LimiterConfig, StaticToken, TokenProvider};

use crate::GoogleConnector;
use crate::actions::Verb;
use crate::scopes;

/// The Directory and Data Transfer APIs' root URL.
pub const DEFAULT_BASE_URL: &str = "https://admin.googleapis.com";

/// The Licensing API's root URL.
pub const DEFAULT_LICENSING_URL: &str = "https://licensing.googleapis.com";

/// Google's default query quota: "2,400 queries per minute per user per Google Cloud
/// project" (Directory API limits page).
pub const DEFAULT_REQUESTS_PER_MINUTE: u32 = 2400;

/// The Data Transfer applications `google.transfer_data` moves to the manager, by their
/// `applications.list` name.
pub const DEFAULT_TRANSFER_APPS: [&str; 2] = ["Drive and Docs", "Calendar"];

/// The scopes the connector asks for when it offers every action (licences configured), each
/// the narrowest that authorises the methods it calls (the discovery documents' `scopes`);
/// without licences `apps.licensing` is left out. Each must be allow-listed for the service
/// account's client id under domain-wide delegation. `groups.list` (remove from groups, verify)
/// needs `admin.directory.group.readonly` (or `admin.directory.group`): `group.member` only
/// covers the membership calls.
pub const DEFAULT_SCOPES: [&str; 7] = [
    "https://www.googleapis.com/auth/admin.directory.user.security",
    "https://www.googleapis.com/auth/admin.directory.user",
    "https://www.googleapis.com/auth/admin.datatransfer",
    "https://www.googleapis.com/auth/apps.licensing",
    "https://www.googleapis.com/auth/admin.directory.group.readonly",
    "https://www.googleapis.com/auth/admin.directory.group.member",
    "https://www.googleapis.com/auth/admin.directory.device.mobile.action",
];

/// A licence `google.remove_licenses` revokes: a product and one of its SKUs (Google's
/// "Products and SKUs" ids, e.g. `Google-Apps` / `1010020027`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Sku {
    /// `productId`.
    pub product: String,
    /// `skuId`.
    pub sku: String,
}

impl Sku {
    /// A product's SKU.
    pub fn new(product: impl Into<String>, sku: impl Into<String>) -> Self {
        Self {
            product: product.into(),
            sku: sku.into(),
        }
    }
}

impl FromStr for Sku {
    type Err = Error;

    /// `product/sku` (neither part empty, no control characters).
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().split_once('/') {
            Some((p, k))
                if !p.is_empty()
                    && !k.is_empty()
                    && !k.contains('/')
                    && !s.chars().any(char::is_control) =>
            {
                Ok(Self::new(p, k))
            }
            _ => Err(Error::config(
                ConfigKey::LicenceSkus.as_str(),
                format!("{s:?} is not `productId/skuId`"),
            )),
        }
    }
}

/// How long `google.transfer_data` waits for a transfer to complete within one execution, and
/// how often it polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TransferPolling {
    pub(crate) wait: Duration,
    pub(crate) every: Duration,
}

impl Default for TransferPolling {
    fn default() -> Self {
        Self {
            wait: Duration::from_secs(60),
            every: Duration::from_secs(5),
        }
    }
}

/// What the actions need beyond the HTTP clients.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) skus: Vec<Sku>,
    pub(crate) transfer_apps: Vec<String>,
    pub(crate) polling: TransferPolling,
    /// The query budget the client paces itself to: (requests, per); zero requests: none.
    pub(crate) budget: (u32, Duration),
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            skus: Vec::new(),
            transfer_apps: DEFAULT_TRANSFER_APPS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            polling: TransferPolling::default(),
            budget: (DEFAULT_REQUESTS_PER_MINUTE, Duration::from_secs(60)),
        }
    }
}

/// A configuration key, as [`GoogleConfig::with_config`] and [`GoogleConfig::from_env`] name
/// it.
///
/// `FromStr` accepts the canonical name, the environment variable and aliases,
/// case-insensitively (`subject`, `OFFBOARD_GOOGLE_SUBJECT`, `admin`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConfigKey {
    /// `service_account_key`: the service account's JSON key file (contents). Aliases:
    /// `key`, `credentials`.
    ServiceAccountKey,
    /// `subject`: the admin the service account impersonates. Aliases: `admin`, `sub`.
    Subject,
    /// `access_token`: a ready OAuth access token sent as `Bearer` (tests, short jobs) instead
    /// of a service account. Alias: `token`.
    AccessToken,
    /// `base_url`: default `https://admin.googleapis.com`. Alias: `url`.
    BaseUrl,
    /// `scopes`: space- or comma-separated scopes. Default: what the offered actions need
    /// (see [`DEFAULT_SCOPES`]); given scopes must cover every method the connector calls.
    /// Alias: `scope`.
    Scopes,
    /// `timeout_secs`: per-request timeout in seconds. Default 30. Alias: `timeout`.
    TimeoutSecs,
    /// `max_concurrency`: requests in flight at once. Default 16. Alias: `concurrency`.
    MaxConcurrency,
    /// `licensing_url`: the Licensing API's root URL, default
    /// `https://licensing.googleapis.com`.
    LicensingUrl,
    /// `licence_skus`: the licences `google.remove_licenses` revokes, `productId/skuId`
    /// separated by spaces or commas. Without it the action is not offered. Aliases:
    /// `license_skus`, `skus`.
    LicenceSkus,
    /// `transfer_apps`: the Data Transfer applications moved to the manager, by name,
    /// comma-separated. Default [`DEFAULT_TRANSFER_APPS`].
    TransferApps,
    /// `transfer_wait_secs`: how long one execution of `google.transfer_data` polls for
    /// completion before handing back a retryable "in progress". Default 60.
    TransferWaitSecs,
    /// `requests_per_minute`: the project's query quota the connector paces itself to
    /// (Google sends no rate-limit headers, so this is the only way not to spend it). Default
    /// [`DEFAULT_REQUESTS_PER_MINUTE`]; `0`: no pacing. Alias: `qpm`.
    RequestsPerMinute,
    /// `allow_plain_http` (`true`/`false`): allow plain `http` API and token URLs on this
    /// machine (loopback tests and simulators). Default `false`: tokens never travel in clear.
    AllowPlainHttp,
}

impl ConfigKey {
    /// Every key.
    pub const ALL: [ConfigKey; 13] = [
        Self::ServiceAccountKey,
        Self::Subject,
        Self::AccessToken,
        Self::BaseUrl,
        Self::Scopes,
        Self::TimeoutSecs,
        Self::MaxConcurrency,
        Self::LicensingUrl,
        Self::LicenceSkus,
        Self::TransferApps,
        Self::TransferWaitSecs,
        Self::RequestsPerMinute,
        Self::AllowPlainHttp,
    ];

    /// The canonical name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ServiceAccountKey => "service_account_key",
            Self::Subject => "subject",
            Self::AccessToken => "access_token",
            Self::BaseUrl => "base_url",
            Self::Scopes => "scopes",
            Self::TimeoutSecs => "timeout_secs",
            Self::MaxConcurrency => "max_concurrency",
            Self::LicensingUrl => "licensing_url",
            Self::LicenceSkus => "licence_skus",
            Self::TransferApps => "transfer_apps",
            Self::TransferWaitSecs => "transfer_wait_secs",
            Self::RequestsPerMinute => "requests_per_minute",
            Self::AllowPlainHttp => "allow_plain_http",
        }
    }

    /// The environment variable [`GoogleConfig::from_env`] reads.
    pub fn env_var(self) -> String {
        format!("OFFBOARD_GOOGLE_{}", self.as_str().to_ascii_uppercase())
    }

    fn aliases(self) -> &'static [&'static str] {
        match self {
            Self::ServiceAccountKey => &["key", "credentials"],
            Self::Subject => &["admin", "sub"],
            Self::AccessToken => &["token"],
            Self::BaseUrl => &["url"],
            Self::Scopes => &["scope"],
            Self::TimeoutSecs => &["timeout"],
            Self::MaxConcurrency => &["concurrency"],
            Self::LicensingUrl => &[],
            Self::LicenceSkus => &["license_skus", "skus"],
            Self::TransferApps => &[],
            Self::TransferWaitSecs => &["transfer_wait"],
            Self::RequestsPerMinute => &["qpm"],
            Self::AllowPlainHttp => &[],
        }
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
        let lower = s.trim().to_ascii_lowercase();
        let bare = lower.strip_prefix("offboard_google_").unwrap_or(&lower);
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == bare || k.aliases().contains(&bare))
            .ok_or_else(|| Error::config(s.to_owned(), "not a Google configuration key"))
    }
}

/// Builds a [`GoogleConnector`].
///
/// Production uses a service account with domain-wide delegation
/// ([`GoogleConfig::with_service_account`] + [`GoogleConfig::with_subject`]); a static
/// access token ([`GoogleConfig::with_access_token`]) serves tests and short jobs.
///
/// # Example
/// ```
/// use offboard_core::Secret;
/// use offboard_google::{ConfigKey, GoogleConfig};
///
/// let google = GoogleConfig::new()
///     .with_access_token(Secret::new("ya29.token"))
///     .build()
///     .unwrap();
/// let err = GoogleConfig::new()
///     .with_config(ConfigKey::ServiceAccountKey, "{}")
///     .build()
///     .unwrap_err();
/// assert!(err.to_string().contains("subject"));
/// # let _ = google;
/// ```
#[derive(Clone, Default)]
pub struct GoogleConfig {
    service_account_key: Option<Secret>,
    subject: Option<String>,
    access_token: Option<Secret>,
    base_url: Option<String>,
    scopes: Vec<String>,
    timeout: Option<Duration>,
    max_concurrency: Option<usize>,
    licensing_url: Option<String>,
    skus: Vec<Sku>,
    transfer_apps: Vec<String>,
    polling: TransferPolling,
    budget: Option<(u32, Duration)>,
    allow_plain_http: bool,
    invalid: Option<(ConfigKey, String)>,
}

impl fmt::Debug for GoogleConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GoogleConfig")
            .field("service_account_key", &self.service_account_key)
            .field("subject", &self.subject)
            .field("access_token", &self.access_token)
            .field("base_url", &self.base_url)
            .field("scopes", &self.scopes)
            .field("timeout", &self.timeout)
            .field("max_concurrency", &self.max_concurrency)
            .field("licensing_url", &self.licensing_url)
            .field("skus", &self.skus)
            .field("transfer_apps", &self.transfer_apps)
            .field("polling", &self.polling)
            .field("budget", &self.budget)
            .field("allow_plain_http", &self.allow_plain_http)
            .finish()
    }
}

impl GoogleConfig {
    /// An empty configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads every `OFFBOARD_GOOGLE_*` variable that is set:
    /// `OFFBOARD_GOOGLE_SERVICE_ACCOUNT_KEY`, `OFFBOARD_GOOGLE_SUBJECT`,
    /// `OFFBOARD_GOOGLE_ACCESS_TOKEN`, `OFFBOARD_GOOGLE_BASE_URL`, `OFFBOARD_GOOGLE_SCOPES`,
    /// `OFFBOARD_GOOGLE_TIMEOUT_SECS`, `OFFBOARD_GOOGLE_MAX_CONCURRENCY`; each is applied with
    /// [`GoogleConfig::with_config`].
    pub fn from_env() -> Self {
        ConfigKey::ALL
            .into_iter()
            .fold(Self::new(), |c, key| match std::env::var(key.env_var()) {
                Ok(v) => c.with_config(key, v),
                Err(_) => c,
            })
    }

    /// Sets a key from its string form. A malformed number is reported by
    /// [`GoogleConfig::build`].
    pub fn with_config(mut self, key: ConfigKey, value: impl Into<String>) -> Self {
        let value = value.into();
        match key {
            ConfigKey::ServiceAccountKey => self.service_account_key = Some(Secret::new(value)),
            ConfigKey::Subject => self.subject = Some(value),
            ConfigKey::AccessToken => self.access_token = Some(Secret::new(value)),
            ConfigKey::BaseUrl => self.base_url = Some(value),
            ConfigKey::Scopes => {
                self.scopes = value
                    .split([' ', ','])
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            ConfigKey::TimeoutSecs => match value.trim().parse::<u64>() {
                Ok(s) if s > 0 => self.timeout = Some(Duration::from_secs(s)),
                _ => self.invalid = Some((key, value)),
            },
            ConfigKey::MaxConcurrency => match value.trim().parse::<usize>() {
                Ok(n) if n > 0 => self.max_concurrency = Some(n),
                _ => self.invalid = Some((key, value)),
            },
            ConfigKey::LicensingUrl => self.licensing_url = Some(value),
            ConfigKey::LicenceSkus => {
                match value
                    .split([' ', ','])
                    .filter(|s| !s.is_empty())
                    .map(str::parse)
                    .collect::<Result<Vec<Sku>>>()
                {
                    Ok(skus) => self.skus = skus,
                    Err(_) => self.invalid = Some((key, value)),
                }
            }
            ConfigKey::TransferApps => {
                self.transfer_apps = value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            ConfigKey::TransferWaitSecs => match value.trim().parse::<u64>() {
                Ok(s) => self.polling.wait = Duration::from_secs(s),
                _ => self.invalid = Some((key, value)),
            },
            ConfigKey::RequestsPerMinute => match value.trim().parse::<u32>() {
                Ok(n) => self.budget = Some((n, Duration::from_secs(60))),
                _ => self.invalid = Some((key, value)),
            },
            ConfigKey::AllowPlainHttp => match value.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => self.allow_plain_http = true,
                "false" | "0" | "no" => self.allow_plain_http = false,
                _ => self.invalid = Some((key, value)),
            },
        }
        self
    }

    /// The Licensing API's root URL (default [`DEFAULT_LICENSING_URL`]).
    pub fn with_licensing_url(mut self, url: impl Into<String>) -> Self {
        self.licensing_url = Some(url.into());
        self
    }

    /// The licences `google.remove_licenses` revokes (without any, the action is not
    /// offered).
    pub fn with_licence_skus(mut self, skus: impl IntoIterator<Item = Sku>) -> Self {
        self.skus = skus.into_iter().collect();
        self
    }

    /// The Data Transfer applications moved to the manager, by `applications.list` name
    /// (default [`DEFAULT_TRANSFER_APPS`]).
    pub fn with_transfer_apps<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.transfer_apps = names.into_iter().map(Into::into).collect();
        self
    }

    /// How long one execution of `google.transfer_data` waits for completion (default 60 s;
    /// zero: look once) and how often it polls (default 5 s). A transfer still running after
    /// `wait` is handed back to the engine as a retryable "in progress" with `every` as the
    /// wait hint.
    pub fn with_transfer_polling(mut self, wait: Duration, every: Duration) -> Self {
        self.polling = TransferPolling {
            wait,
            every: every.max(Duration::from_millis(1)),
        };
        self
    }

    /// The query budget the connector paces itself to: `requests` per `per` (default
    /// [`DEFAULT_REQUESTS_PER_MINUTE`] per minute; zero requests: no pacing). Set it to the
    /// quota of the Cloud project (raised quotas included); requests of both API roots count.
    pub fn with_request_budget(mut self, requests: u32, per: Duration) -> Self {
        self.budget = Some((requests, per.max(Duration::from_millis(1))));
        self
    }

    /// The service account's JSON key file (its contents).
    pub fn with_service_account(mut self, key_json: Secret) -> Self {
        self.service_account_key = Some(key_json);
        self
    }

    /// The admin to impersonate (the JWT's `sub`).
    pub fn with_subject(mut self, admin_email: impl Into<String>) -> Self {
        self.subject = Some(admin_email.into());
        self
    }

    /// A ready access token, sent as `Bearer` (instead of a service account).
    pub fn with_access_token(mut self, token: Secret) -> Self {
        self.access_token = Some(token);
        self
    }

    /// Allows plain `http` API and token URLs on this machine (loopback tests and simulators).
    /// Default off: see [`offboard_http::require_https`].
    pub fn with_allow_plain_http(mut self, allow: bool) -> Self {
        self.allow_plain_http = allow;
        self
    }

    /// The root URL (default [`DEFAULT_BASE_URL`]; tests point it at the simulator).
    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// The scopes the service account asks for. Default: exactly what the offered actions
    /// need (see [`DEFAULT_SCOPES`]); [`GoogleConfig::build`] refuses scopes that leave a
    /// method the connector calls unauthorised.
    pub fn with_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Per-request timeout (default 30 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Requests in flight at once (default 16).
    pub fn with_max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = Some(n);
        self
    }

    /// Validates and builds the connector.
    ///
    /// # Errors
    /// `Config` naming the key: neither `service_account_key` nor `access_token` given (or
    /// both); `subject` missing with a service account; `service_account_key` malformed;
    /// `base_url` not an http(s) URL; `timeout_secs`/`max_concurrency` malformed; `scopes`
    /// given but without any scope that authorises a method the offered actions call (the
    /// message names the method and the scopes that would do).
    pub fn build(self) -> Result<GoogleConnector> {
        if let Some((key, value)) = self.invalid {
            return Err(Error::config(
                key.as_str(),
                if key == ConfigKey::AllowPlainHttp {
                    format!("{value:?} is not true or false")
                } else {
                    format!("{value:?} is not a positive integer")
                },
            ));
        }
        let base_url = self
            .base_url
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
        let base_url = base_url.trim_end_matches('/').to_owned();
        let licensing_url = self
            .licensing_url
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_LICENSING_URL.to_owned());
        let limiter =
            LimiterConfig::default().with_max_concurrency(self.max_concurrency.unwrap_or(16));
        let timeout = self.timeout.unwrap_or(Duration::from_secs(30));
        // Whose quota the requests spend (see `budget_scope` below).
        let mut scope = None;
        let tokens: Arc<dyn TokenProvider> = match (self.service_account_key, self.access_token) {
            (Some(key), None) => {
                let subject = self
                    .subject
                    .filter(|s| !s.trim().is_empty())
                    .ok_or_else(|| {
                        Error::config(
                            ConfigKey::Subject.as_str(),
                            "missing (the admin to impersonate)",
                        )
                    })?;
                let verbs = Verb::offered(!self.skus.is_empty());
                let scopes = if self.scopes.is_empty() {
                    scopes::needed(&verbs)
                } else {
                    check_scopes(&verbs, self.scopes)?
                };
                let account = GoogleServiceAccount::from_json(&key)?
                    .allow_plain_http(self.allow_plain_http)
                    .subject(subject)
                    .scopes(scopes)
                    .build()?;
                scope = Some(format!(
                    "google:{}:{}",
                    account.project(),
                    account.subject()
                ));
                Arc::new(account)
            }
            (None, Some(token)) => {
                if token.is_empty() {
                    return Err(Error::config(ConfigKey::AccessToken.as_str(), "empty"));
                }
                Arc::new(StaticToken::bearer(token))
            }
            (Some(_), Some(_)) => {
                return Err(Error::config(
                    ConfigKey::ServiceAccountKey.as_str(),
                    "give either service_account_key + subject or access_token, not both",
                ));
            }
            (None, None) => {
                return Err(Error::config(
                    ConfigKey::ServiceAccountKey.as_str(),
                    "missing (or access_token)",
                ));
            }
        };
        // One token provider and one limiter per API root. A shared budget is keyed by the
        // quota it spends: Google's is "per user per Google Cloud project", so with a
        // service account the project and the admin impersonated (two hosts on one project
        // and admin share it; another project or admin has its own); with a bare access
        // token, whose project is unknown here, the API root.
        let client = |url: &str, key: ConfigKey| {
            let builder = HttpClient::builder(url)
                .allow_plain_http(self.allow_plain_http)
                .timeout(timeout)
                .limiter(limiter.clone())
                .shared_token_provider(Arc::clone(&tokens));
            match &scope {
                Some(scope) => builder.budget_scope(scope.clone()),
                None => builder,
            }
            .build()
            .map_err(|e| Error::config(key.as_str(), e.message().to_owned()))
        };
        let http = client(&base_url, ConfigKey::BaseUrl)?;
        let licensing = client(licensing_url.trim_end_matches('/'), ConfigKey::LicensingUrl)?;
        let defaults = Settings::default();
        Ok(GoogleConnector::new(
            http,
            Some(licensing),
            Settings {
                skus: self.skus,
                transfer_apps: if self.transfer_apps.is_empty() {
                    defaults.transfer_apps
                } else {
                    self.transfer_apps
                },
                polling: self.polling,
                budget: self.budget.unwrap_or(defaults.budget),
            },
        ))
    }
}

/// `configured`, when it authorises every method `verbs` (and the connector's reads) call.
fn check_scopes(verbs: &[Verb], configured: Vec<String>) -> Result<Vec<String>> {
    let Some((method, would)) = scopes::missing(verbs, &configured) else {
        return Ok(configured);
    };
    let users: Vec<String> = verbs
        .iter()
        .filter(|v| v.methods().contains(&method))
        .map(|v| v.name().to_string())
        .chain(
            scopes::READS
                .contains(&method)
                .then(|| "lookup/verify_revoked".to_owned()),
        )
        .collect();
    Err(Error::config(
        ConfigKey::Scopes.as_str(),
        format!(
            "missing {}: {} ({}) needs one of them",
            would.join(" or "),
            method.id,
            users.join(", ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use offboard_core::ErrorKind;

    #[test]
    fn keys_parse_with_aliases() {
        for (s, k) in [
            ("subject", ConfigKey::Subject),
            ("OFFBOARD_GOOGLE_SUBJECT", ConfigKey::Subject),
            ("Admin", ConfigKey::Subject),
            ("credentials", ConfigKey::ServiceAccountKey),
            ("token", ConfigKey::AccessToken),
            ("timeout", ConfigKey::TimeoutSecs),
        ] {
            assert_eq!(s.parse::<ConfigKey>().unwrap(), k, "{s}");
        }
        assert!("nope".parse::<ConfigKey>().is_err());
        for k in ConfigKey::ALL {
            assert_eq!(k.env_var().parse::<ConfigKey>().unwrap(), k);
        }
    }

    #[test]
    fn build_names_the_missing_key() {
        let missing = |c: GoogleConfig| c.build().unwrap_err();
        let e = missing(GoogleConfig::new());
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("service_account_key"));
        let e = missing(GoogleConfig::new().with_service_account(Secret::new("{}")));
        assert!(e.to_string().contains("subject"), "{e}");
        let e = missing(
            GoogleConfig::new()
                .with_service_account(Secret::new("{}"))
                .with_subject("admin@example.com"),
        );
        assert!(e.to_string().contains("service_account_key"), "{e}");
        let e = missing(
            GoogleConfig::new()
                .with_access_token(Secret::new("t"))
                .with_config(ConfigKey::TimeoutSecs, "soon"),
        );
        assert!(e.to_string().contains("timeout_secs"));
        let e = missing(
            GoogleConfig::new()
                .with_access_token(Secret::new("t"))
                .with_base_url("ftp://x"),
        );
        assert!(e.to_string().contains("base_url"));
    }

    #[test]
    fn build_names_a_missing_scope() {
        // The scopes this connector used to ask for: no scope that lists groups.
        let old = [
            "https://www.googleapis.com/auth/admin.directory.user",
            "https://www.googleapis.com/auth/admin.directory.user.security",
            "https://www.googleapis.com/auth/admin.directory.group.member",
            "https://www.googleapis.com/auth/admin.directory.device.mobile.action",
            "https://www.googleapis.com/auth/admin.datatransfer",
        ];
        let sa = || {
            GoogleConfig::new()
                .with_service_account(Secret::new("{}"))
                .with_subject("admin@example.com")
        };
        let e = sa().with_scopes(old).build().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        let text = e.to_string();
        assert!(text.contains("scopes"), "{text}");
        assert!(
            text.contains("https://www.googleapis.com/auth/admin.directory.group.readonly")
                && text.contains("directory.groups.list")
                && text.contains("google.remove_from_groups")
                && text.contains("verify_revoked"),
            "{text}"
        );
        // With licences to revoke, the licensing scope is needed too.
        let e = sa()
            .with_scopes(
                old.into_iter()
                    .chain(["https://www.googleapis.com/auth/admin.directory.group"]),
            )
            .with_licence_skus([Sku::new("Google-Apps", "1010020027")])
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("apps.licensing"), "{e}");
        // Enough scopes: the next problem is the (empty) key, not the scopes.
        let e = sa()
            .with_config(ConfigKey::Scopes, DEFAULT_SCOPES.join(" "))
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("service_account_key"), "{e}");
    }

    #[test]
    fn debug_hides_secrets() {
        let c = GoogleConfig::new()
            .with_access_token(Secret::new("ya29.SuperSecretToken"))
            .with_service_account(Secret::new(
                r#"{"private_key":"-----BEGIN PRIVATE KEY-----abc"}"#,
            ));
        let d = format!("{c:?}");
        assert!(
            !d.contains("SuperSecretToken") && !d.contains("BEGIN PRIVATE"),
            "{d}"
        );
    }
}
