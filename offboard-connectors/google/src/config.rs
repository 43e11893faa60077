//! Configuration of the Google Workspace connector and its builder.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use offboard_core::{Error, Result, Secret};
use offboard_http::{GoogleServiceAccount, HttpClient, LimiterConfig, StaticToken};

use crate::GoogleConnector;

/// The Directory API's root URL.
pub const DEFAULT_BASE_URL: &str = "https://admin.googleapis.com";

/// The scopes the connector's actions need (each must be allow-listed for the service
/// account's client id under domain-wide delegation).
pub const DEFAULT_SCOPES: [&str; 3] = [
    "https://www.googleapis.com/auth/admin.directory.user",
    "https://www.googleapis.com/auth/admin.directory.user.security",
    "https://www.googleapis.com/auth/admin.directory.group.member",
];

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
    /// `scopes`: space- or comma-separated scopes. Default [`DEFAULT_SCOPES`]. Alias: `scope`.
    Scopes,
    /// `timeout_secs`: per-request timeout in seconds. Default 30. Alias: `timeout`.
    TimeoutSecs,
    /// `max_concurrency`: requests in flight at once. Default 16. Alias: `concurrency`.
    MaxConcurrency,
}

impl ConfigKey {
    /// Every key.
    pub const ALL: [ConfigKey; 7] = [
        Self::ServiceAccountKey,
        Self::Subject,
        Self::AccessToken,
        Self::BaseUrl,
        Self::Scopes,
        Self::TimeoutSecs,
        Self::MaxConcurrency,
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
        }
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

    /// The root URL (default [`DEFAULT_BASE_URL`]; tests point it at the simulator).
    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Scopes (default [`DEFAULT_SCOPES`]).
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
    /// `base_url` not an http(s) URL; `timeout_secs`/`max_concurrency` malformed.
    pub fn build(self) -> Result<GoogleConnector> {
        if let Some((key, value)) = self.invalid {
            return Err(Error::config(
                key.as_str(),
                format!("{value:?} is not a positive integer"),
            ));
        }
        let base_url = self
            .base_url
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
        let base_url = base_url.trim_end_matches('/').to_owned();
        let mut builder = HttpClient::builder(&base_url)
            .timeout(self.timeout.unwrap_or(Duration::from_secs(30)))
            .limiter(
                LimiterConfig::default().with_max_concurrency(self.max_concurrency.unwrap_or(16)),
            );
        builder = match (self.service_account_key, self.access_token) {
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
                let scopes: Vec<String> = if self.scopes.is_empty() {
                    DEFAULT_SCOPES.iter().map(|s| (*s).to_owned()).collect()
                } else {
                    self.scopes
                };
                let account = GoogleServiceAccount::from_json(&key)?
                    .subject(subject)
                    .scopes(scopes)
                    .build()?;
                builder.token_provider(account)
            }
            (None, Some(token)) => {
                if token.is_empty() {
                    return Err(Error::config(ConfigKey::AccessToken.as_str(), "empty"));
                }
                builder.token_provider(StaticToken::bearer(token))
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
        let http = builder
            .build()
            .map_err(|e| Error::config(ConfigKey::BaseUrl.as_str(), e.message().to_owned()))?;
        Ok(GoogleConnector::from_client(http))
    }
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
