//! Microsoft identity platform client credentials with a client secret.

use std::time::Duration;

use async_trait::async_trait;
use offboard_core::{Error, Result, Secret};
use url::Url;

use super::{Cached, TokenCache, TokenProvider, request_token, token_http};

/// Client credentials against `https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`
/// with a client secret, for Microsoft Graph (`https://graph.microsoft.com/.default`).
///
/// # Behavior
/// Posts `grant_type=client_credentials&client_id=…&client_secret=…&scope=…`; caches the
/// token and refreshes it 60 s before expiry or after a 401. Certificate credentials are not
/// supported yet.
#[derive(Debug)]
pub struct MicrosoftClientCredentials {
    token_url: Url,
    client_id: String,
    client_secret: Secret,
    scope: String,
    http: reqwest::Client,
    cache: TokenCache,
    allow_plain_http: bool,
}

impl MicrosoftClientCredentials {
    /// For tenant `tenant_id` (a GUID or a verified domain) and an app registration.
    ///
    /// # Errors
    /// `Config` naming `tenant_id`, `client_id` or `client_secret` when empty or malformed.
    pub fn new(
        tenant_id: &str,
        client_id: impl Into<String>,
        client_secret: Secret,
    ) -> Result<Self> {
        if tenant_id.is_empty()
            || !tenant_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(Error::config("tenant_id", "must be a GUID or a domain"));
        }
        let client_id = client_id.into();
        if client_id.is_empty() {
            return Err(Error::config("client_id", "missing"));
        }
        if client_secret.is_empty() {
            return Err(Error::config("client_secret", "missing"));
        }
        let token_url = Url::parse(&format!(
            "https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token"
        ))
        .map_err(|e| Error::config("tenant_id", format!("gives no valid URL: {e}")))?;
        Ok(Self {
            token_url,
            client_id,
            client_secret,
            scope: "https://graph.microsoft.com/.default".into(),
            http: token_http(Duration::from_secs(30))?,
            cache: TokenCache::new(Duration::from_secs(60)),
            allow_plain_http: false,
        })
    }

    /// Allows a plain `http` token endpoint on this machine (loopback tests and simulators),
    /// for a later [`with_token_url`](Self::with_token_url). Default: off; see
    /// [`crate::require_https`].
    pub fn allow_plain_http(mut self, allow: bool) -> Self {
        self.allow_plain_http = allow;
        self
    }

    /// Overrides the token endpoint (tests, national clouds).
    ///
    /// # Errors
    /// `Config` naming `token_url` when it is not a URL, or not https (see
    /// [`crate::require_https`]).
    pub fn with_token_url(mut self, url: &str) -> Result<Self> {
        let url =
            Url::parse(url).map_err(|e| Error::config("token_url", format!("not a URL: {e}")))?;
        crate::require_https(&url, "token_url", self.allow_plain_http)?;
        self.token_url = url;
        Ok(self)
    }

    /// Sets the scope (default `https://graph.microsoft.com/.default`).
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = scope.into();
        self
    }

    async fn fetch(&self) -> Result<Cached> {
        request_token(
            &self.http,
            &self.token_url,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", self.client_id.as_str()),
                ("client_secret", self.client_secret.expose()),
                ("scope", self.scope.as_str()),
            ],
        )
        .await
    }
}

#[async_trait]
impl TokenProvider for MicrosoftClientCredentials {
    async fn authorization(&self) -> Result<Secret> {
        self.cache.get(self.fetch()).await
    }

    fn invalidate(&self) {
        self.cache.invalidate();
    }
}
