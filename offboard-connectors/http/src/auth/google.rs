//! Google service account with domain-wide delegation (RFC 7523 JWT bearer grant).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use offboard_core::{Error, Result, Secret};
use serde::{Deserialize, Serialize};
use url::Url;

use super::{Cached, SigningKey, TokenCache, TokenProvider, epoch_secs, request_token, token_http};

const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The fields of a service-account key file that are used.
#[derive(Deserialize)]
struct KeyFile {
    client_email: String,
    #[serde(default)]
    project_id: Option<String>,
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default)]
    token_uri: Option<String>,
}

struct Key {
    client_email: String,
    /// The Google Cloud project the account belongs to.
    project: String,
    signing: SigningKey,
    token_url: Url,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("client_email", &self.client_email)
            .field("project", &self.project)
            .field("signing", &self.signing)
            .field("token_url", &self.token_url.as_str())
            .finish()
    }
}

/// A Google service account impersonating `subject` (domain-wide delegation).
///
/// # Behavior
/// - The assertion is an RS256 JWT (`kid` = `private_key_id`) with `iss` = the service
///   account's email, `sub` = the user impersonated, `scope` = the scopes space-separated,
///   `aud` = the key file's `token_uri`, `iat` and `exp` = `iat` + 1 h; the request is
///   `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=…`.
/// - The token is cached per provider (so per subject) and refreshed `refresh_before`
///   (default 60 s) before expiry or after a 401. [`GoogleServiceAccount::for_subject`] makes
///   a provider for another subject sharing the key (Gmail settings calls impersonate the
///   mailbox owner, Directory calls an admin).
#[derive(Debug)]
pub struct GoogleServiceAccount {
    key: Arc<Key>,
    subject: String,
    scopes: Vec<String>,
    http: reqwest::Client,
    cache: TokenCache,
    refresh_before: Duration,
}

/// Builds a [`GoogleServiceAccount`].
#[derive(Debug)]
pub struct GoogleServiceAccountBuilder {
    key: Key,
    subject: Option<String>,
    scopes: Vec<String>,
    refresh_before: Duration,
    timeout: Duration,
    allow_plain_http: bool,
}

impl GoogleServiceAccount {
    /// Starts from the JSON key file of the service account.
    ///
    /// # Errors
    /// `Config` naming `service_account_key` when the JSON or its private key is malformed,
    /// `token_uri` when that is not a URL. The messages never contain key material.
    pub fn from_json(key_json: &Secret) -> Result<GoogleServiceAccountBuilder> {
        let file: KeyFile = serde_json::from_str(key_json.expose()).map_err(|e| {
            Error::config(
                "service_account_key",
                format!(
                    "not a service-account key file (line {}, column {})",
                    e.line(),
                    e.column()
                ),
            )
        })?;
        let key = EncodingKey::from_rsa_pem(file.private_key.as_bytes()).map_err(|e| {
            Error::config(
                "service_account_key",
                format!("private_key is not an RSA PEM: {e}"),
            )
        })?;
        let token_url = Url::parse(
            file.token_uri
                .as_deref()
                .unwrap_or("https://oauth2.googleapis.com/token"),
        )
        .map_err(|e| Error::config("token_uri", format!("not a URL: {e}")))?;
        // A key file names its project; an older one only in the account's address
        // (`name@PROJECT.iam.gserviceaccount.com`).
        let project = file
            .project_id
            .filter(|p| !p.trim().is_empty())
            .or_else(|| {
                let (_, domain) = file.client_email.rsplit_once('@')?;
                domain
                    .strip_suffix(".iam.gserviceaccount.com")
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| file.client_email.clone());
        Ok(GoogleServiceAccountBuilder {
            key: Key {
                client_email: file.client_email,
                project,
                signing: SigningKey {
                    key,
                    key_id: file.private_key_id,
                },
                token_url,
            },
            subject: None,
            scopes: Vec::new(),
            refresh_before: Duration::from_secs(60),
            timeout: Duration::from_secs(30),
            allow_plain_http: false,
        })
    }

    /// A provider impersonating another user with the same key and scopes (its own cache).
    pub fn for_subject(&self, subject: impl Into<String>) -> Self {
        Self {
            key: Arc::clone(&self.key),
            subject: subject.into(),
            scopes: self.scopes.clone(),
            http: self.http.clone(),
            cache: TokenCache::new(self.refresh_before),
            refresh_before: self.refresh_before,
        }
    }

    /// The Google Cloud project the account belongs to: the key file's `project_id`, else
    /// the project in the account's address, else the address. Google's Directory API quota
    /// is "per user per Google Cloud project", so a budget key is this and the subject.
    pub fn project(&self) -> &str {
        &self.key.project
    }

    /// The user impersonated.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    async fn fetch(&self) -> Result<Cached> {
        #[derive(Serialize)]
        struct Claims<'a> {
            iss: &'a str,
            sub: &'a str,
            scope: String,
            aud: &'a str,
            iat: u64,
            exp: u64,
        }
        let iat = epoch_secs();
        let claims = Claims {
            iss: &self.key.client_email,
            sub: &self.subject,
            scope: self.scopes.join(" "),
            aud: self.key.token_url.as_str(),
            iat,
            exp: iat + 3600,
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = self.key.signing.key_id.clone();
        let assertion = Secret::new(
            jsonwebtoken::encode(&header, &claims, &self.key.signing.key).map_err(|e| {
                Error::internal(format!("signing the service-account assertion failed: {e}"))
            })?,
        );
        request_token(
            &self.http,
            &self.key.token_url,
            &[
                ("grant_type", GRANT_TYPE),
                ("assertion", assertion.expose()),
            ],
            None,
        )
        .await
    }
}

impl GoogleServiceAccountBuilder {
    /// The user to impersonate (required): an admin for Directory, Data Transfer and
    /// Licensing; the mailbox owner for Gmail settings.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Adds scopes (full URLs, e.g. `https://www.googleapis.com/auth/admin.directory.user`).
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes.extend(scopes.into_iter().map(Into::into));
        self
    }

    /// Allows a plain `http` token endpoint on this machine (loopback tests and simulators).
    /// Default: off; see [`crate::require_https`].
    pub fn allow_plain_http(mut self, allow: bool) -> Self {
        self.allow_plain_http = allow;
        self
    }

    /// Overrides the token endpoint (tests; the key file's `token_uri` otherwise).
    ///
    /// # Errors
    /// `Config` naming `token_uri` when it is not a URL.
    pub fn token_url(mut self, url: &str) -> Result<Self> {
        self.key.token_url =
            Url::parse(url).map_err(|e| Error::config("token_uri", format!("not a URL: {e}")))?;
        Ok(self)
    }

    /// Refresh this long before expiry. Default: 60 s.
    pub fn refresh_before(mut self, d: Duration) -> Self {
        self.refresh_before = d;
        self
    }

    /// Validates and builds.
    ///
    /// # Errors
    /// `Config` naming `subject` or `scopes` when missing.
    pub fn build(self) -> Result<GoogleServiceAccount> {
        let subject = self
            .subject
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Error::config("subject", "missing (the user to impersonate)"))?;
        if self.scopes.is_empty() {
            return Err(Error::config("scopes", "at least one scope is required"));
        }
        crate::require_https(&self.key.token_url, "token_uri", self.allow_plain_http)?;
        Ok(GoogleServiceAccount {
            key: Arc::new(self.key),
            subject,
            scopes: self.scopes,
            http: token_http(self.timeout)?,
            cache: TokenCache::new(self.refresh_before),
            refresh_before: self.refresh_before,
        })
    }
}

#[async_trait]
impl TokenProvider for GoogleServiceAccount {
    async fn authorization(&self) -> Result<Secret> {
        self.cache.get(self.fetch()).await
    }

    fn invalidate(&self) {
        self.cache.invalidate();
    }
}
