//! Configuration of the Office 365 connector and its builder.

use std::fmt;
use std::sync::Arc;

use offboard_core::{Error, Result};
use offboard_http::GraphClientBuilder;

use crate::O365Connector;
use crate::exchange::ExchangeAdmin;

pub use offboard_http::graph::GRAPH_URL;

/// The automatic reply set by `o365.set_auto_reply` when the person has a manager; `{name}`
/// is the person's display name (or email), `{manager}` the manager's email.
pub const DEFAULT_AUTO_REPLY: &str =
    "{name} no longer works here. Please contact {manager} instead.";

/// The automatic reply when the person has no manager.
pub const DEFAULT_AUTO_REPLY_NO_MANAGER: &str = "{name} no longer works here.";

/// The `displayName` of the inbox rule `o365.forward_to_manager` creates (and finds again).
pub const DEFAULT_RULE_NAME: &str = "offboard: forward to manager";

/// What the actions write, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Texts {
    pub(crate) auto_reply: String,
    pub(crate) auto_reply_no_manager: String,
    pub(crate) rule_name: String,
}

/// Builds an [`O365Connector`]: the shared [`GraphClientBuilder`] plus what the actions write
/// and the optional Exchange admin hook.
///
/// Credentials are the app registration's client-credentials grant (client secret). Without
/// [`O365Config::with_exchange_admin`] the Exchange-admin actions (`o365.convert_to_shared`,
/// `o365.mailbox_forwarding`, `o365.hide_from_gal`) are not offered: Graph v1.0 has no
/// operation for them.
///
/// # Example
/// ```
/// use offboard_core::Secret;
/// use offboard_o365::O365Config;
///
/// let o365 = O365Config::new()
///     .with_tenant_id("contoso.onmicrosoft.com")
///     .with_client_id("00000000-0000-0000-0000-000000000001")
///     .with_client_secret(Secret::new("s3cr3t"))
///     .build()
///     .unwrap();
/// assert!(!format!("{o365:?}").contains("s3cr3t"));
/// let err = O365Config::new().with_client_secret(Secret::new("x")).build().unwrap_err();
/// assert!(err.to_string().contains("tenant_id"));
/// ```
#[derive(Clone)]
pub struct O365Config {
    graph: GraphClientBuilder,
    auto_reply: Option<String>,
    auto_reply_no_manager: Option<String>,
    rule_name: Option<String>,
    exchange: Option<Arc<dyn ExchangeAdmin>>,
}

impl fmt::Debug for O365Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("O365Config")
            .field("graph", &self.graph)
            .field("rule_name", &self.rule_name)
            .field("exchange_admin", &self.exchange.is_some())
            .finish()
    }
}

/// Outlook allows 4 concurrent requests per mailbox.
const MAX_CONCURRENCY: usize = 4;

impl Default for O365Config {
    fn default() -> Self {
        Self {
            graph: GraphClientBuilder::default().max_concurrency(MAX_CONCURRENCY),
            auto_reply: None,
            auto_reply_no_manager: None,
            rule_name: None,
            exchange: None,
        }
    }
}

impl O365Config {
    /// An empty configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads `OFFBOARD_O365_TENANT_ID`, `OFFBOARD_O365_CLIENT_ID`,
    /// `OFFBOARD_O365_CLIENT_SECRET`, `OFFBOARD_O365_GRAPH_URL` and `OFFBOARD_O365_TOKEN_URL`,
    /// where set ([`GraphClientBuilder::from_env`]).
    pub fn from_env() -> Self {
        Self {
            graph: GraphClientBuilder::from_env("OFFBOARD_O365").max_concurrency(MAX_CONCURRENCY),
            ..Self::default()
        }
    }

    /// Requests in flight at once (default 4: Outlook allows 4 concurrent requests per mailbox).
    pub fn with_max_concurrency(mut self, n: usize) -> Self {
        self.graph = self.graph.max_concurrency(n);
        self
    }

    /// The automatic reply (placeholders `{name}`, `{manager}`; default [`DEFAULT_AUTO_REPLY`])
    /// and the one for a person without a manager (`{name}`; default
    /// [`DEFAULT_AUTO_REPLY_NO_MANAGER`]).
    pub fn with_auto_reply(
        mut self,
        with_manager: impl Into<String>,
        without_manager: impl Into<String>,
    ) -> Self {
        self.auto_reply = Some(with_manager.into());
        self.auto_reply_no_manager = Some(without_manager.into());
        self
    }

    /// The forwarding rule's `displayName` (default [`DEFAULT_RULE_NAME`]).
    pub fn with_rule_name(mut self, name: impl Into<String>) -> Self {
        self.rule_name = Some(name.into());
        self
    }

    /// The host's Exchange Online admin integration; enables `o365.convert_to_shared`,
    /// `o365.mailbox_forwarding` and `o365.hide_from_gal`.
    pub fn with_exchange_admin(mut self, admin: Arc<dyn ExchangeAdmin>) -> Self {
        self.exchange = Some(admin);
        self
    }

    /// Validates and builds the connector.
    ///
    /// # Errors
    /// `Config` naming the key: `tenant_id`, `client_id` or `client_secret` missing or
    /// malformed, `graph_url`/`token_url` not URLs, an empty `rule_name`, a timeout or
    /// concurrency of zero.
    pub fn build(self) -> Result<O365Connector> {
        let graph = self.graph.build()?;
        let texts = Texts {
            auto_reply: self
                .auto_reply
                .unwrap_or_else(|| DEFAULT_AUTO_REPLY.to_owned()),
            auto_reply_no_manager: self
                .auto_reply_no_manager
                .unwrap_or_else(|| DEFAULT_AUTO_REPLY_NO_MANAGER.to_owned()),
            rule_name: self
                .rule_name
                .unwrap_or_else(|| DEFAULT_RULE_NAME.to_owned()),
        };
        if texts.rule_name.trim().is_empty() {
            return Err(Error::config("rule_name", "empty"));
        }
        Ok(O365Connector::new(graph, texts, self.exchange))
    }
}

offboard_http::graph_config_setters!(O365Config, graph);

#[cfg(test)]
mod tests {
    use super::*;
    use offboard_core::{ErrorKind, Secret};

    fn full() -> O365Config {
        O365Config::new()
            .with_tenant_id("contoso.onmicrosoft.com")
            .with_client_id("cid")
            .with_client_secret(Secret::new("TopSecretValue"))
    }

    #[test]
    fn build_names_the_missing_or_bad_key() {
        let e = O365Config::new()
            .with_client_id("c")
            .with_client_secret(Secret::new("s"))
            .build()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("tenant_id"), "{e}");
        let e = full().with_tenant_id("a/b").build().unwrap_err();
        assert!(e.to_string().contains("tenant_id"), "{e}");
        let e = O365Config::new()
            .with_tenant_id("t")
            .with_client_secret(Secret::new("s"))
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("client_id"), "{e}");
        let e = O365Config::new()
            .with_tenant_id("t")
            .with_client_id("c")
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("client_secret"), "{e}");
        let e = full().with_graph_url("not a url").build().unwrap_err();
        assert!(e.to_string().contains("graph_url"), "{e}");
        let e = full().with_rule_name(" ").build().unwrap_err();
        assert!(e.to_string().contains("rule_name"), "{e}");
        assert!(full().build().is_ok());
    }

    #[test]
    fn debug_hides_the_secret() {
        let c = full();
        assert!(!format!("{c:?}").contains("TopSecretValue"));
        let conn = c.build().unwrap();
        assert!(!format!("{conn:?}").contains("TopSecretValue"));
        assert!(!format!("{conn:#?}").contains("TopSecretValue"));
    }
}
