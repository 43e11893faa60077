//! Configuration of the Entra ID connector: the shared [`GraphClientBuilder`] plus
//! `OFFBOARD_AZURE_*` environment variables.

use offboard_core::Result;
use offboard_http::{GraphClient, GraphClientBuilder};

use crate::EntraConnector;

pub use offboard_http::graph::GRAPH_URL;

/// Builds an [`EntraConnector`]: an app registration (tenant id, client id, client secret)
/// with the Graph application permissions `User.ReadWrite.All`, `GroupMember.ReadWrite.All`,
/// `AppRoleAssignment.ReadWrite.All`, `DelegatedPermissionGrant.ReadWrite.All`,
/// `UserAuthenticationMethod.ReadWrite.All` and `Directory.Read.All`; optionally
/// `RoleManagement.ReadWrite.Directory`, without which `entra.remove_groups` reports the
/// role-assignable groups it cannot leave instead of removing the user from them.
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
    /// `OFFBOARD_AZURE_TOKEN_URL`, each when set ([`GraphClientBuilder::from_env`]).
    pub fn from_env() -> Self {
        Self {
            graph: GraphClientBuilder::from_env("OFFBOARD_AZURE"),
        }
    }

    /// Requests in flight at once (default 16).
    pub fn with_max_concurrency(mut self, n: usize) -> Self {
        self.graph = self.graph.max_concurrency(n);
        self
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

offboard_http::graph_config_setters!(AzureConfig, graph);
