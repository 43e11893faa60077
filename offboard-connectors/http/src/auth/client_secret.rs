//! OAuth 2.0 client credentials with a client secret (RFC 6749 §4.4) against any token
//! endpoint.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use offboard_core::{Error, Result, Secret};
use url::Url;

use super::{Cached, TokenCache, TokenProvider, request_token, token_http_with};

/// How the client authenticates to the token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ClientAuthMethod {
    /// `Authorization: Basic base64(urlencode(client_id):urlencode(client_secret))`
    /// (`client_secret_basic`), which every authorization server must support.
    #[default]
    Basic,
    /// `client_id` and `client_secret` in the request body (`client_secret_post`).
    Post,
}

/// An access token from the client credentials grant (RFC 6749 §4.4) with a client secret.
///
/// # Behavior
/// - Posts `grant_type=client_credentials` (and `scope` when set) to the token endpoint, or
///   `grant_type=refresh_token&refresh_token=…` when built with a refresh token
///   ([`ClientSecretCredentialsBuilder::refresh_token`]),
///   authenticating as [`ClientAuthMethod`] says; the header value is
///   `<token_type> <access_token>` of the answer (§5.1).
/// - The token is cached and fetched again `refresh_before` (default 60 s) before its
///   `expires_in` runs out (3600 s when absent), or after [`TokenProvider::invalidate`] (a
///   401 from the API). Concurrent callers share one fetch.
/// - A 400/401 from the token endpoint (`invalid_client`...) is `Unauthenticated`; the secret
///   and the token never appear in `Debug`, errors or traces.
///
/// # Example
/// ```
/// use offboard_core::Secret;
/// use offboard_http::{ClientAuthMethod, ClientSecretCredentials};
///
/// let zoom = ClientSecretCredentials::builder(
///     "https://auth.example.com/oauth/token",
///     "client-1",
///     Secret::new("s3cret"),
/// )
/// .scope("scim")
/// .client_auth(ClientAuthMethod::Basic)
/// .build()
/// .unwrap();
/// assert!(!format!("{zoom:?}").contains("s3cret"));
/// assert!(
///     ClientSecretCredentials::builder("http://auth.example.com/token", "c", Secret::new("s"))
///         .build()
///         .is_err()
/// );
/// ```
pub struct ClientSecretCredentials {
    token_url: Url,
    client_id: String,
    client_secret: Secret,
    scope: Option<String>,
    method: ClientAuthMethod,
    refresh_token: Option<Secret>,
    http: reqwest::Client,
    cache: TokenCache,
}

impl fmt::Debug for ClientSecretCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSecretCredentials")
            .field("token_url", &self.token_url.as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("scope", &self.scope)
            .field("method", &self.method)
            .field("refresh_token", &self.refresh_token)
            .finish()
    }
}

/// Builds a [`ClientSecretCredentials`].
#[derive(Debug)]
pub struct ClientSecretCredentialsBuilder {
    token_url: String,
    client_id: String,
    client_secret: Secret,
    scope: Option<String>,
    method: ClientAuthMethod,
    refresh_token: Option<Secret>,
    refresh_before: Duration,
    timeout: Duration,
    allow_plain_http: bool,
    identity: Option<crate::ClientIdentity>,
}

impl ClientSecretCredentialsBuilder {
    /// The `scope` to ask for (space-separated scopes). Default: none sent.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into()).filter(|s| !s.trim().is_empty());
        self
    }

    /// How to authenticate to the token endpoint. Default: [`ClientAuthMethod::Basic`].
    pub fn client_auth(mut self, method: ClientAuthMethod) -> Self {
        self.method = method;
        self
    }

    /// Uses the refresh token grant (RFC 6749 §6: `grant_type=refresh_token` with this
    /// token) instead of `client_credentials`, for authorization servers that hand an
    /// integration a long-lived refresh token (Workday's API clients for integrations). The
    /// client still authenticates as [`ClientAuthMethod`] says.
    pub fn refresh_token(mut self, token: Secret) -> Self {
        self.refresh_token = Some(token).filter(|t| !t.is_empty());
        self
    }

    /// Presents this client certificate to the token endpoint (mutual TLS). Default: none.
    pub fn client_identity(mut self, identity: crate::ClientIdentity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// Refresh this long before the token expires. Default: 60 s.
    pub fn refresh_before(mut self, d: Duration) -> Self {
        self.refresh_before = d;
        self
    }

    /// Timeout of the token request. Default: 30 s.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// Allows a plain `http` token endpoint on this machine (loopback tests and simulators).
    /// Default: off; see [`crate::require_https`].
    pub fn allow_plain_http(mut self, allow: bool) -> Self {
        self.allow_plain_http = allow;
        self
    }

    /// Validates and builds.
    ///
    /// # Errors
    /// `Config` naming `token_url` (not a URL, or not https), `client_id` or `client_secret`
    /// (empty).
    pub fn build(self) -> Result<ClientSecretCredentials> {
        let token_url = Url::parse(self.token_url.trim())
            .map_err(|e| Error::config("token_url", format!("not a URL: {e}")))?;
        crate::require_https(&token_url, "token_url", self.allow_plain_http)?;
        if self.client_id.trim().is_empty() {
            return Err(Error::config("client_id", "missing"));
        }
        if self.client_secret.is_empty() {
            return Err(Error::config("client_secret", "missing"));
        }
        Ok(ClientSecretCredentials {
            token_url,
            client_id: self.client_id,
            client_secret: self.client_secret,
            scope: self.scope,
            method: self.method,
            refresh_token: self.refresh_token,
            http: token_http_with(self.timeout, self.identity.as_ref())?,
            cache: TokenCache::new(self.refresh_before),
        })
    }
}

impl ClientSecretCredentials {
    /// A builder for the token endpoint `token_url` and the client's id and secret.
    pub fn builder(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: Secret,
    ) -> ClientSecretCredentialsBuilder {
        ClientSecretCredentialsBuilder {
            token_url: token_url.into(),
            client_id: client_id.into(),
            client_secret,
            scope: None,
            method: ClientAuthMethod::default(),
            refresh_token: None,
            refresh_before: Duration::from_secs(60),
            timeout: Duration::from_secs(30),
            allow_plain_http: false,
            identity: None,
        }
    }

    async fn fetch(&self) -> Result<Cached> {
        let mut form = match &self.refresh_token {
            Some(token) => vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", token.expose()),
            ],
            None => vec![("grant_type", "client_credentials")],
        };
        if let Some(scope) = &self.scope {
            form.push(("scope", scope.as_str()));
        }
        match self.method {
            ClientAuthMethod::Post => {
                form.push(("client_id", self.client_id.as_str()));
                form.push(("client_secret", self.client_secret.expose()));
                request_token(&self.http, &self.token_url, &form, None).await
            }
            ClientAuthMethod::Basic => {
                // RFC 6749 §2.3.1: each part form-urlencoded before the base64.
                let encode = |s: &str| {
                    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                };
                let basic = Secret::new(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!(
                        "{}:{}",
                        encode(&self.client_id),
                        encode(self.client_secret.expose())
                    ))
                ));
                request_token(&self.http, &self.token_url, &form, Some(&basic)).await
            }
        }
    }
}

#[async_trait]
impl TokenProvider for ClientSecretCredentials {
    async fn authorization(&self) -> Result<Secret> {
        self.cache.get(self.fetch()).await
    }

    fn invalidate(&self) {
        self.cache.invalidate();
    }
}
