//! Microsoft identity platform client credentials with a client secret.

use async_trait::async_trait;
use offboard_core::{Error, Result, Secret};

use super::{ClientAuthMethod, ClientSecretCredentials, TokenProvider};

const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

/// Client credentials against `https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`
/// with a client secret, for Microsoft Graph (`https://graph.microsoft.com/.default`): a
/// preset of [`ClientSecretCredentials`].
///
/// # Behavior
/// Posts `grant_type=client_credentials&scope=…&client_id=…&client_secret=…`
/// (`client_secret_post`); caches the token and refreshes it 60 s before expiry or after a
/// 401. Certificate credentials are not supported yet.
#[derive(Debug)]
pub struct MicrosoftClientCredentials {
    token_url: String,
    client_id: String,
    client_secret: Secret,
    scope: String,
    allow_plain_http: bool,
    inner: ClientSecretCredentials,
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
        let token_url = format!("https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token");
        Self::with_parts(
            token_url,
            client_id.into(),
            client_secret,
            GRAPH_SCOPE.into(),
            false,
        )
    }

    fn with_parts(
        token_url: String,
        client_id: String,
        client_secret: Secret,
        scope: String,
        allow_plain_http: bool,
    ) -> Result<Self> {
        let inner = ClientSecretCredentials::builder(
            token_url.clone(),
            client_id.clone(),
            client_secret.clone(),
        )
        .scope(scope.clone())
        .client_auth(ClientAuthMethod::Post)
        .allow_plain_http(allow_plain_http)
        .build()?;
        Ok(Self {
            token_url,
            client_id,
            client_secret,
            scope,
            allow_plain_http,
            inner,
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
    pub fn with_token_url(self, url: &str) -> Result<Self> {
        Self::with_parts(
            url.to_owned(),
            self.client_id,
            self.client_secret,
            self.scope,
            self.allow_plain_http,
        )
    }

    /// Sets the scope (default `https://graph.microsoft.com/.default`).
    pub fn with_scope(self, scope: impl Into<String>) -> Self {
        let scope = scope.into();
        // Only the scope changes, on a URL and credentials already accepted.
        match Self::with_parts(
            self.token_url.clone(),
            self.client_id.clone(),
            self.client_secret.clone(),
            scope,
            self.allow_plain_http,
        ) {
            Ok(next) => next,
            Err(_) => self,
        }
    }
}

#[async_trait]
impl TokenProvider for MicrosoftClientCredentials {
    async fn authorization(&self) -> Result<Secret> {
        self.inner.authorization().await
    }

    fn invalidate(&self) {
        self.inner.invalidate();
    }
}
