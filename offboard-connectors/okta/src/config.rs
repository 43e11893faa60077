//! Configuration of the Okta connector and its builder.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use offboard_core::{Error, Result, Secret};
use offboard_http::{HttpClient, LimiterConfig, OAuthClientCredentials, StaticToken};

use crate::OktaConnector;

/// A configuration key, as [`OktaConfig::with_config`] and [`OktaConfig::from_env`] name it.
///
/// `FromStr` accepts the canonical name, the environment variable and aliases,
/// case-insensitively (`org_url`, `OFFBOARD_OKTA_ORG_URL`, `url`, `domain`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConfigKey {
    /// `org_url`: `https://{yourOktaDomain}`. Aliases: `url`, `domain`, `okta_org_url`.
    OrgUrl,
    /// `api_token`: an Okta API token, sent as `SSWS <token>`. Aliases: `token`, `ssws`.
    ApiToken,
    /// `client_id`: the API service app's client id (OAuth `private_key_jwt`).
    ClientId,
    /// `private_key`: the service app's RSA private key, PEM. Alias: `private_key_pem`.
    PrivateKey,
    /// `key_id`: the `kid` of the private key. Alias: `kid`.
    KeyId,
    /// `scopes`: space- or comma-separated OAuth scopes. Default: the scopes the actions need.
    Scopes,
    /// `timeout_secs`: per-request timeout in seconds. Default 30. Alias: `timeout`.
    TimeoutSecs,
    /// `max_concurrency`: requests in flight at once. Default 16. Alias: `concurrency`.
    MaxConcurrency,
    /// `allow_plain_http` (`true`/`false`): allow a plain `http` org URL on this machine
    /// (loopback tests and simulators). Default `false`: the token never travels in clear.
    AllowPlainHttp,
}

impl ConfigKey {
    /// Every key.
    pub const ALL: [ConfigKey; 9] = [
        Self::OrgUrl,
        Self::ApiToken,
        Self::ClientId,
        Self::PrivateKey,
        Self::KeyId,
        Self::Scopes,
        Self::TimeoutSecs,
        Self::MaxConcurrency,
        Self::AllowPlainHttp,
    ];

    /// The canonical name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrgUrl => "org_url",
            Self::ApiToken => "api_token",
            Self::ClientId => "client_id",
            Self::PrivateKey => "private_key",
            Self::KeyId => "key_id",
            Self::Scopes => "scopes",
            Self::TimeoutSecs => "timeout_secs",
            Self::MaxConcurrency => "max_concurrency",
            Self::AllowPlainHttp => "allow_plain_http",
        }
    }

    /// The environment variable [`OktaConfig::from_env`] reads.
    pub fn env_var(self) -> String {
        format!("OFFBOARD_OKTA_{}", self.as_str().to_ascii_uppercase())
    }

    fn aliases(self) -> &'static [&'static str] {
        match self {
            Self::OrgUrl => &["url", "domain", "okta_org_url"],
            Self::ApiToken => &["token", "ssws", "okta_api_token"],
            Self::ClientId => &["okta_client_id"],
            Self::PrivateKey => &["private_key_pem"],
            Self::KeyId => &["kid"],
            Self::Scopes => &["scope"],
            Self::TimeoutSecs => &["timeout"],
            Self::MaxConcurrency => &["concurrency"],
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
        let bare = lower.strip_prefix("offboard_okta_").unwrap_or(&lower);
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == bare || k.aliases().contains(&bare))
            .ok_or_else(|| Error::config(s.to_owned(), "not an Okta configuration key"))
    }
}

/// The scopes the connector's actions need when it authenticates with OAuth.
pub const DEFAULT_SCOPES: [&str; 5] = [
    "okta.users.manage",
    "okta.groups.manage",
    "okta.apps.manage",
    "okta.roles.manage",
    "okta.users.read",
];

/// Builds an [`OktaConnector`].
///
/// # Example
/// ```
/// use offboard_core::Secret;
/// use offboard_okta::{ConfigKey, OktaConfig};
///
/// let okta = OktaConfig::new()
///     .with_org_url("https://example.okta.com")
///     .with_api_token(Secret::new("00abc"))
///     .build()
///     .unwrap();
/// let err = OktaConfig::new().with_config(ConfigKey::ApiToken, "00abc").build().unwrap_err();
/// assert!(err.to_string().contains("org_url"));
/// # let _ = okta;
/// ```
#[derive(Clone, Default)]
pub struct OktaConfig {
    org_url: Option<String>,
    api_token: Option<Secret>,
    client_id: Option<String>,
    private_key: Option<Secret>,
    key_id: Option<String>,
    scopes: Vec<String>,
    timeout: Option<Duration>,
    max_concurrency: Option<usize>,
    allow_plain_http: bool,
    /// A key whose value did not parse, reported by `build`.
    invalid: Option<(ConfigKey, String)>,
}

impl fmt::Debug for OktaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OktaConfig")
            .field("org_url", &self.org_url)
            .field("api_token", &self.api_token)
            .field("client_id", &self.client_id)
            .field("private_key", &self.private_key)
            .field("key_id", &self.key_id)
            .field("scopes", &self.scopes)
            .field("timeout", &self.timeout)
            .field("max_concurrency", &self.max_concurrency)
            .field("allow_plain_http", &self.allow_plain_http)
            .finish()
    }
}

impl OktaConfig {
    /// An empty configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads every `OFFBOARD_OKTA_*` variable that is set: `OFFBOARD_OKTA_ORG_URL`,
    /// `OFFBOARD_OKTA_API_TOKEN`, `OFFBOARD_OKTA_CLIENT_ID`, `OFFBOARD_OKTA_PRIVATE_KEY`,
    /// `OFFBOARD_OKTA_KEY_ID`, `OFFBOARD_OKTA_SCOPES`, `OFFBOARD_OKTA_TIMEOUT_SECS`,
    /// `OFFBOARD_OKTA_MAX_CONCURRENCY`; each is applied with [`OktaConfig::with_config`].
    pub fn from_env() -> Self {
        ConfigKey::ALL
            .into_iter()
            .fold(Self::new(), |c, key| match std::env::var(key.env_var()) {
                Ok(v) => c.with_config(key, v),
                Err(_) => c,
            })
    }

    /// Sets a key from its string form. A malformed number is reported by [`OktaConfig::build`].
    pub fn with_config(mut self, key: ConfigKey, value: impl Into<String>) -> Self {
        let value = value.into();
        match key {
            ConfigKey::OrgUrl => self.org_url = Some(value),
            ConfigKey::ApiToken => self.api_token = Some(Secret::new(value)),
            ConfigKey::ClientId => self.client_id = Some(value),
            ConfigKey::PrivateKey => self.private_key = Some(Secret::new(value)),
            ConfigKey::KeyId => self.key_id = Some(value),
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
            ConfigKey::AllowPlainHttp => match value.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => self.allow_plain_http = true,
                "false" | "0" | "no" => self.allow_plain_http = false,
                _ => self.invalid = Some((key, value)),
            },
        }
        self
    }

    /// Allows a plain `http` org URL on this machine (loopback tests and simulators).
    /// Default off: see [`offboard_http::require_https`].
    pub fn with_allow_plain_http(mut self, allow: bool) -> Self {
        self.allow_plain_http = allow;
        self
    }

    /// The org URL, `https://{yourOktaDomain}` (plain `http` only with
    /// [`with_allow_plain_http`](Self::with_allow_plain_http), on loopback).
    pub fn with_org_url(mut self, url: impl Into<String>) -> Self {
        self.org_url = Some(url.into());
        self
    }

    /// An API token (`SSWS`).
    pub fn with_api_token(mut self, token: Secret) -> Self {
        self.api_token = Some(token);
        self
    }

    /// OAuth `private_key_jwt` credentials of an API service app (instead of an API token).
    pub fn with_oauth(mut self, client_id: impl Into<String>, private_key_pem: Secret) -> Self {
        self.client_id = Some(client_id.into());
        self.private_key = Some(private_key_pem);
        self
    }

    /// The private key's `kid`.
    pub fn with_key_id(mut self, kid: impl Into<String>) -> Self {
        self.key_id = Some(kid.into());
        self
    }

    /// OAuth scopes (default [`DEFAULT_SCOPES`]).
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
    /// `Config` naming the key: `org_url` missing or not an http(s) URL; neither `api_token`
    /// nor `client_id` + `private_key` given (or both); `private_key` not an RSA PEM;
    /// `timeout_secs`/`max_concurrency` malformed.
    pub fn build(self) -> Result<OktaConnector> {
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
        let org_url = self
            .org_url
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| Error::config(ConfigKey::OrgUrl.as_str(), "missing"))?;
        let org_url = org_url.trim_end_matches('/').to_owned();
        let mut builder = HttpClient::builder(&org_url)
            .allow_plain_http(self.allow_plain_http)
            .timeout(self.timeout.unwrap_or(Duration::from_secs(30)))
            .limiter(
                LimiterConfig::default().with_max_concurrency(self.max_concurrency.unwrap_or(16)),
            )
            // The org's concurrency limit is shared by every engine drawing from one budget.
            .shared_concurrency(self.max_concurrency.unwrap_or(16));
        builder = match (self.api_token, self.client_id, self.private_key) {
            (Some(token), None, None) => {
                if token.is_empty() {
                    return Err(Error::config(ConfigKey::ApiToken.as_str(), "empty"));
                }
                builder.token_provider(StaticToken::okta_ssws(token))
            }
            (None, Some(client_id), Some(key)) => {
                let scopes: Vec<String> = if self.scopes.is_empty() {
                    DEFAULT_SCOPES.iter().map(|s| (*s).to_owned()).collect()
                } else {
                    self.scopes
                };
                let mut oauth = OAuthClientCredentials::builder(
                    format!("{org_url}/oauth2/v1/token"),
                    client_id,
                )
                .scopes(scopes)
                .private_key_pem(key);
                if let Some(kid) = self.key_id {
                    oauth = oauth.key_id(kid);
                }
                builder.token_provider(oauth.build()?)
            }
            (Some(_), _, _) => {
                return Err(Error::config(
                    ConfigKey::ApiToken.as_str(),
                    "give either api_token or client_id + private_key, not both",
                ));
            }
            (None, None, _) => {
                return Err(Error::config(
                    ConfigKey::ApiToken.as_str(),
                    "missing (or client_id + private_key for OAuth)",
                ));
            }
            (None, Some(_), None) => {
                return Err(Error::config(ConfigKey::PrivateKey.as_str(), "missing"));
            }
        };
        let http = builder
            .build()
            .map_err(|e| Error::config(ConfigKey::OrgUrl.as_str(), e.message().to_owned()))?;
        Ok(OktaConnector::from_client(http))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use offboard_core::ErrorKind;

    #[test]
    fn keys_parse_with_aliases() {
        for (s, k) in [
            ("org_url", ConfigKey::OrgUrl),
            ("OFFBOARD_OKTA_ORG_URL", ConfigKey::OrgUrl),
            ("Domain", ConfigKey::OrgUrl),
            ("token", ConfigKey::ApiToken),
            ("OFFBOARD_OKTA_API_TOKEN", ConfigKey::ApiToken),
            ("kid", ConfigKey::KeyId),
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
        let missing = |c: OktaConfig| c.build().unwrap_err();
        let e = missing(OktaConfig::new().with_api_token(Secret::new("t")));
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("org_url"));
        let e = missing(OktaConfig::new().with_org_url("https://x.okta.com"));
        assert!(e.to_string().contains("api_token"));
        let e = missing(
            OktaConfig::new()
                .with_org_url("https://x.okta.com")
                .with_config(ConfigKey::ClientId, "0oa"),
        );
        assert!(e.to_string().contains("private_key"));
        let e = missing(
            OktaConfig::new()
                .with_org_url("https://x.okta.com")
                .with_api_token(Secret::new("t"))
                .with_config(ConfigKey::TimeoutSecs, "soon"),
        );
        assert!(e.to_string().contains("timeout_secs"));
        let e = missing(
            OktaConfig::new()
                .with_org_url("ftp://x")
                .with_api_token(Secret::new("t")),
        );
        assert!(e.to_string().contains("org_url"));
    }

    #[test]
    fn debug_hides_secrets() {
        let c = OktaConfig::new()
            .with_org_url("https://x.okta.com")
            .with_api_token(Secret::new("00SuperSecretToken"))
            .with_oauth("0oa", Secret::new("-----BEGIN PRIVATE KEY-----abc"));
        let d = format!("{c:?}");
        assert!(!d.contains("00SuperSecretToken") && !d.contains("BEGIN PRIVATE"));
    }
}
