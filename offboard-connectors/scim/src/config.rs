//! Configuration of the SCIM connector and its builder.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use offboard_core::{ActionName, AppId, Error, Result, Secret};
use offboard_http::{
    ClientAuthMethod, ClientSecretCredentials, HttpClient, LimiterConfig, StaticToken,
    TokenProvider,
};

use crate::ScimConnector;
use crate::profile::ScimProfile;

/// The most resources asked for per page by default (`count`).
pub const DEFAULT_PAGE_SIZE: usize = 100;

/// How the connector authenticates.
#[derive(Clone)]
enum Auth {
    Bearer(Secret),
    Basic {
        user: String,
        password: Secret,
    },
    /// OAuth 2.0 client credentials (RFC 6749 §4.4).
    ClientCredentials {
        token_url: String,
        client_id: String,
        secret: Secret,
    },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bearer(t) => f.debug_tuple("Bearer").field(t).finish(),
            Self::Basic { user, password } => f
                .debug_struct("Basic")
                .field("user", user)
                .field("password", password)
                .finish(),
            Self::ClientCredentials {
                token_url,
                client_id,
                secret,
            } => f
                .debug_struct("ClientCredentials")
                .field("token_url", token_url)
                .field("client_id", client_id)
                .field("secret", secret)
                .finish(),
        }
    }
}

/// Builds a [`ScimConnector`]: one instance per app.
///
/// # Keys
/// | key | meaning |
/// |---|---|
/// | `app` | the app id (`slack`, `notion`...): lower-case ASCII letters, digits, `_`. The actions are named `<app>.deactivate`, `<app>.remove_groups`, `<app>.delete`, since an action's name must start with its connector's app. |
/// | `base_url` | the SCIM base URL, e.g. `https://api.slack.com/scim/v2` (its path is kept) |
/// | `bearer_token` | sent as `Authorization: Bearer …` |
/// | `basic_user` + `basic_password` | HTTP basic authentication instead |
/// | `oauth_token_url` + `oauth_client_id` + `oauth_client_secret` | OAuth 2.0 client credentials (RFC 6749 §4.4, offboard-http's [`ClientSecretCredentials`]) instead: the token is fetched, cached until shortly before it expires, and fetched again after a 401 (the request is then sent once more) |
/// | `oauth_scope` | the scope to ask for (optional) |
/// | `oauth_client_auth` | `basic` (default: the id and secret in HTTP basic) or `post` (in the body) |
/// | `profile` | a named [`ScimProfile`] (default `generic`) |
/// | `timeout_secs`, `max_concurrency`, `page_size` | positive integers (defaults 30, 8, and the profile's page size) |
/// | `rate_per_minute` | the app's request budget a minute: requests are spaced so it is never spent (default: none, 429s with `Retry-After` are honoured) |
/// | `allow_plain_http` | `true` to allow `http://` on loopback (tests) |
///
/// # Example
/// ```
/// use offboard_core::Secret;
/// use offboard_scim::ScimConfig;
///
/// let notion = ScimConfig::new("notion")
///     .with_base_url("https://api.notion.com/scim/v2")
///     .with_bearer_token(Secret::new("secret-token"))
///     .with_config("profile", "notion")
///     .build()
///     .unwrap();
/// assert!(!format!("{notion:?}").contains("secret-token"));
/// let err = ScimConfig::new("Not An App").build().unwrap_err();
/// assert!(err.to_string().contains("app"));
/// ```
#[derive(Clone)]
pub struct ScimConfig {
    app: String,
    base_url: Option<String>,
    auth: Option<Auth>,
    basic_user: Option<String>,
    oauth_client_id: Option<String>,
    oauth_token_url: Option<String>,
    oauth_scope: Option<String>,
    oauth_client_auth: ClientAuthMethod,
    profile: ScimProfile,
    timeout: Duration,
    max_concurrency: usize,
    page_size: Option<usize>,
    rate_per_minute: Option<u32>,
    allow_plain_http: bool,
    /// A key whose value did not parse, reported by `build`.
    invalid: Option<(String, String)>,
}

impl fmt::Debug for ScimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScimConfig")
            .field("app", &self.app)
            .field("base_url", &self.base_url)
            .field("auth", &self.auth)
            .field("profile", &self.profile.name)
            .field("timeout", &self.timeout)
            .field("max_concurrency", &self.max_concurrency)
            .field("page_size", &self.page_size)
            .field("rate_per_minute", &self.rate_per_minute)
            .field("allow_plain_http", &self.allow_plain_http)
            .finish()
    }
}

impl ScimConfig {
    /// A configuration for the app `app`.
    pub fn new(app: impl Into<String>) -> Self {
        Self {
            app: app.into(),
            base_url: None,
            auth: None,
            basic_user: None,
            oauth_client_id: None,
            oauth_token_url: None,
            oauth_scope: None,
            oauth_client_auth: ClientAuthMethod::Basic,
            profile: ScimProfile::GENERIC,
            timeout: Duration::from_secs(30),
            max_concurrency: 8,
            page_size: None,
            rate_per_minute: None,
            allow_plain_http: false,
            invalid: None,
        }
    }

    /// Sets a key from its string form (see the table above). An unknown key or a malformed
    /// value is reported by [`ScimConfig::build`], naming the key (never the value of a
    /// secret).
    pub fn with_config(mut self, key: &str, value: impl Into<String>) -> Self {
        let value = value.into();
        let positive = |v: &str| v.trim().parse::<u64>().ok().filter(|n| *n > 0);
        let key = key.trim().to_ascii_lowercase();
        match key.as_str() {
            "app" => self.app = value,
            "base_url" | "url" => self.base_url = Some(value),
            "bearer_token" | "token" => self.auth = Some(Auth::Bearer(Secret::new(value))),
            "basic_user" => self.basic_user = Some(value),
            "basic_password" => {
                let user = self.basic_user.clone().unwrap_or_default();
                self.auth = Some(Auth::Basic {
                    user,
                    password: Secret::new(value),
                });
            }
            "oauth_token_url" => self.oauth_token_url = Some(value),
            "oauth_client_id" => self.oauth_client_id = Some(value),
            "oauth_client_secret" => {
                self.auth = Some(Auth::ClientCredentials {
                    token_url: self.oauth_token_url.clone().unwrap_or_default(),
                    client_id: self.oauth_client_id.clone().unwrap_or_default(),
                    secret: Secret::new(value),
                });
            }
            "oauth_scope" => self.oauth_scope = Some(value),
            "oauth_client_auth" => match value.trim() {
                "basic" | "client_secret_basic" => self.oauth_client_auth = ClientAuthMethod::Basic,
                "post" | "client_secret_post" => self.oauth_client_auth = ClientAuthMethod::Post,
                _ => {
                    self.invalid = Some((
                        "oauth_client_auth".into(),
                        format!("{value:?} is not basic or post"),
                    ));
                }
            },
            "profile" => match value.parse() {
                Ok(p) => self.profile = p,
                Err(e) => self.invalid = Some(("profile".into(), e.message().to_owned())),
            },
            "timeout_secs" | "timeout" => match positive(&value) {
                Some(n) => self.timeout = Duration::from_secs(n),
                None => self.invalid = Some(not_positive("timeout_secs", &value)),
            },
            "max_concurrency" => match positive(&value) {
                Some(n) => self.max_concurrency = n as usize,
                None => self.invalid = Some(not_positive("max_concurrency", &value)),
            },
            "page_size" => match positive(&value) {
                Some(n) => self.page_size = Some(n as usize),
                None => self.invalid = Some(not_positive("page_size", &value)),
            },
            "rate_per_minute" => match positive(&value).and_then(|n| u32::try_from(n).ok()) {
                Some(n) => self.rate_per_minute = Some(n),
                None => self.invalid = Some(not_positive("rate_per_minute", &value)),
            },
            "allow_plain_http" => match value.trim() {
                "true" | "1" | "yes" => self.allow_plain_http = true,
                "false" | "0" | "no" => self.allow_plain_http = false,
                _ => {
                    self.invalid = Some((
                        "allow_plain_http".into(),
                        format!("{value:?} is not true or false"),
                    ));
                }
            },
            _ => self.invalid = Some((key.clone(), "not a SCIM configuration key".into())),
        }
        self
    }

    /// The SCIM base URL (its path is kept: `https://host/scim/v2`).
    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// A bearer token.
    pub fn with_bearer_token(mut self, token: Secret) -> Self {
        self.auth = Some(Auth::Bearer(token));
        self
    }

    /// HTTP basic authentication.
    pub fn with_basic(mut self, user: impl Into<String>, password: Secret) -> Self {
        self.auth = Some(Auth::Basic {
            user: user.into(),
            password,
        });
        self
    }

    /// OAuth 2.0 client credentials (RFC 6749 §4.4): a token from `token_url` for this client,
    /// authenticated by HTTP basic unless [`ScimConfig::with_oauth_client_auth`] says otherwise.
    pub fn with_oauth_client_credentials(
        mut self,
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        secret: Secret,
    ) -> Self {
        self.auth = Some(Auth::ClientCredentials {
            token_url: token_url.into(),
            client_id: client_id.into(),
            secret,
        });
        self
    }

    /// The scope the OAuth token is asked for.
    pub fn with_oauth_scope(mut self, scope: impl Into<String>) -> Self {
        self.oauth_scope = Some(scope.into());
        self
    }

    /// How the OAuth client authenticates to the token endpoint (default basic).
    pub fn with_oauth_client_auth(mut self, method: ClientAuthMethod) -> Self {
        self.oauth_client_auth = method;
        self
    }

    /// The app's quirks.
    pub fn with_profile(mut self, profile: ScimProfile) -> Self {
        self.profile = profile;
        self
    }

    /// Per-request timeout (default 30 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Requests in flight at once (default 8).
    pub fn with_max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = n.max(1);
        self
    }

    /// Resources asked for per page (`count`; default: the profile's
    /// [`ScimProfile::page_size`], [`DEFAULT_PAGE_SIZE`] for every named profile).
    pub fn with_page_size(mut self, n: usize) -> Self {
        self.page_size = Some(n.max(1));
        self
    }

    /// Spaces requests to `n` a minute, the app's published budget (see
    /// [`ScimConnector::with_rate_limit`]).
    pub fn with_rate_per_minute(mut self, n: u32) -> Self {
        self.rate_per_minute = Some(n);
        self
    }

    /// Allows a plain `http` base URL on loopback (tests and simulators). Default off.
    pub fn with_allow_plain_http(mut self, allow: bool) -> Self {
        self.allow_plain_http = allow;
        self
    }

    /// Validates and builds the connector.
    ///
    /// # Errors
    /// `Config` naming the key: `app` not a valid app id; `base_url` missing or not an http(s)
    /// URL (plain http only with `allow_plain_http`, on loopback); none of `bearer_token`,
    /// `basic_password`, `oauth_client_secret` given, or an empty one; `oauth_token_url` not an
    /// https URL or `oauth_client_id` missing; `profile` unknown; a malformed number.
    pub fn build(self) -> Result<ScimConnector> {
        if let Some((key, message)) = self.invalid {
            return Err(Error::config(key, message));
        }
        let app = self.app.trim().to_owned();
        ActionName::parse(&format!("{app}.deactivate")).map_err(|_| {
            Error::config(
                "app",
                format!("{app:?} is not an app id (lower-case ASCII letters, digits, _)"),
            )
        })?;
        let base_url = self
            .base_url
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| Error::config("base_url", "missing"))?;
        let base_url = base_url.trim().trim_end_matches('/').to_owned();
        let oauth = matches!(self.auth, Some(Auth::ClientCredentials { .. }));
        let tokens: Arc<dyn TokenProvider> = match self.auth {
            Some(Auth::Bearer(t)) if !t.is_empty() => Arc::new(StaticToken::bearer(t)),
            Some(Auth::Basic { user, password }) if !password.is_empty() && !user.is_empty() => {
                Arc::new(StaticToken::basic(&user, &password))
            }
            Some(Auth::ClientCredentials {
                token_url,
                client_id,
                secret,
            }) => {
                let mut b = ClientSecretCredentials::builder(token_url, client_id, secret)
                    .client_auth(self.oauth_client_auth)
                    .timeout(self.timeout)
                    .allow_plain_http(self.allow_plain_http);
                if let Some(scope) = self.oauth_scope {
                    b = b.scope(scope);
                }
                // offboard-http names its own key (`token_url`...): the SCIM key is `oauth_…`.
                let oauth_key = |e: Error| {
                    let key = e
                        .context()
                        .find(|(k, _)| *k == "key")
                        .map_or("client_secret", |(_, v)| v)
                        .to_owned();
                    let message = e
                        .message()
                        .strip_prefix(&format!("{key}: "))
                        .unwrap_or(e.message());
                    Error::config(format!("oauth_{key}"), message.to_owned())
                };
                Arc::new(b.build().map_err(oauth_key)?)
            }
            Some(Auth::Bearer(_)) => return Err(Error::config("bearer_token", "empty")),
            Some(Auth::Basic { .. }) => {
                return Err(Error::config("basic_password", "empty user or password"));
            }
            None => {
                return Err(Error::config(
                    "bearer_token",
                    "missing (or basic_user + basic_password, or oauth_client_secret)",
                ));
            }
        };
        let http = HttpClient::builder(&base_url)
            .allow_plain_http(self.allow_plain_http)
            .timeout(self.timeout)
            .limiter(LimiterConfig::default().with_max_concurrency(self.max_concurrency))
            .shared_token_provider(tokens)
            .build()
            .map_err(|e| Error::config("base_url", e.message().to_owned()))?;
        let page_size = self.page_size.unwrap_or(self.profile.page_size);
        let connector = ScimConnector::from_client(AppId::new(app), http, self.profile, page_size)
            .with_refreshable_token(oauth);
        Ok(match self.rate_per_minute {
            Some(n) => connector.with_rate_limit(n, Duration::from_secs(60)),
            None => connector,
        })
    }
}

fn not_positive(key: &str, value: &str) -> (String, String) {
    (
        key.to_owned(),
        format!("{value:?} is not a positive integer"),
    )
}
