//! Configuration of the Entra ID connector: the shared [`GraphClientBuilder`] plus
//! `OFFBOARD_AZURE_*` environment variables.

use std::time::Duration;

use offboard_core::{Result, Secret};
use offboard_http::graph::GraphRetry;
use offboard_http::{GraphClient, GraphClientBuilder};

use crate::EntraConnector;

pub use offboard_http::graph::GRAPH_URL;

/// Builds an [`EntraConnector`]: an app registration (tenant id, client id, client secret)
/// with the Graph application permissions `User.ReadWrite.All`, `GroupMember.ReadWrite.All`,
/// `AppRoleAssignment.ReadWrite.All`, `DelegatedPermissionGrant.ReadWrite.All`,
/// `UserAuthenticationMethod.ReadWrite.All` and `Directory.Read.All`.
///
/// `Debug` shows the client secret redacted.
///
/// # Example
/// ```
/// use offboard_azure::AzureConfig;
/// use offboard_core::Secret;
///
/// let entra = AzureConfig::new()
///     .with_tenant_id("contoso.onmicrosoft.com")
///     .with_client_id("00000000-0000-0000-0000-000000000001")
///     .with_client_secret(Secret::new("s3cr3t"))
///     .build()
///     .unwrap();
/// let err = AzureConfig::new().with_tenant_id("t").build().unwrap_err();
/// assert!(err.to_string().contains("client_id"));
/// # let _ = entra;
/// ```
#[derive(Debug, Clone, Default)]
pub struct AzureConfig {
    graph: GraphClientBuilder,
}

impl AzureConfig {
    /// An empty configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads `OFFBOARD_AZURE_TENANT_ID`, `OFFBOARD_AZURE_CLIENT_ID`,
    /// `OFFBOARD_AZURE_CLIENT_SECRET`, `OFFBOARD_AZURE_GRAPH_URL` and
    /// `OFFBOARD_AZURE_TOKEN_URL`, each when set.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(format!("OFFBOARD_AZURE_{k}")).ok();
        let mut g = GraphClientBuilder::default();
        if let Some(v) = var("TENANT_ID") {
            g = g.tenant_id(v);
        }
        if let Some(v) = var("CLIENT_ID") {
            g = g.client_id(v);
        }
        if let Some(v) = var("CLIENT_SECRET") {
            g = g.client_secret(Secret::new(v));
        }
        if let Some(v) = var("GRAPH_URL") {
            g = g.graph_url(v);
        }
        if let Some(v) = var("TOKEN_URL") {
            g = g.token_url(v);
        }
        Self { graph: g }
    }

    fn map(mut self, f: impl FnOnce(GraphClientBuilder) -> GraphClientBuilder) -> Self {
        self.graph = f(self.graph);
        self
    }

    /// The directory (tenant) id or a verified domain.
    pub fn with_tenant_id(self, tenant: impl Into<String>) -> Self {
        self.map(|g| g.tenant_id(tenant))
    }

    /// The app registration's client id.
    pub fn with_client_id(self, id: impl Into<String>) -> Self {
        self.map(|g| g.client_id(id))
    }

    /// The app registration's client secret.
    pub fn with_client_secret(self, secret: Secret) -> Self {
        self.map(|g| g.client_secret(secret))
    }

    /// Graph's version root (default [`GRAPH_URL`]; a simulator in tests).
    pub fn with_graph_url(self, url: impl Into<String>) -> Self {
        self.map(|g| g.graph_url(url))
    }

    /// The token endpoint (default `https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`).
    pub fn with_token_url(self, url: impl Into<String>) -> Self {
        self.map(|g| g.token_url(url))
    }

    /// The per-request timeout (default 30 s).
    pub fn with_timeout(self, timeout: Duration) -> Self {
        self.map(|g| g.timeout(timeout))
    }

    /// How 429s are waited out in-process (default [`GraphRetry::default`]).
    pub fn with_retry(self, retry: GraphRetry) -> Self {
        self.map(|g| g.retry(retry))
    }

    /// The write budget the client paces itself to (default
    /// [`offboard_http::graph::DEFAULT_WRITE_BUDGET`]; `0` writes: no pacing). Share one budget
    /// per app registration and tenant.
    pub fn with_write_budget(self, writes: u32, per: Duration) -> Self {
        self.map(|g| g.write_budget(writes, per))
    }

    /// Requests in flight at once (default 16).
    pub fn with_max_concurrency(self, n: usize) -> Self {
        self.map(|g| g.max_concurrency(n))
    }

    /// The Graph client this configuration describes.
    ///
    /// # Errors
    /// `Config` naming the missing or malformed key.
    pub fn graph_client(&self) -> Result<GraphClient> {
        self.graph.clone().build()
    }

    /// Builds the connector.
    ///
    /// # Errors
    /// As [`AzureConfig::graph_client`].
    pub fn build(self) -> Result<EntraConnector> {
        Ok(EntraConnector::from_client(self.graph.build()?))
    }
}
