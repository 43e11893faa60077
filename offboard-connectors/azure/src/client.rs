//! Wire calls to Microsoft Graph for Entra ID; no decisions.

use std::collections::BTreeSet;

use offboard_core::{ErrorKind, Result};
pub(crate) use offboard_http::graph::user_path;
use offboard_http::graph::{BatchItem, BatchReply};
use offboard_http::{GraphClient, GraphRequest};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// The user properties the connector reads (`$select`).
pub(crate) const USER_SELECT: &str =
    "id,userPrincipalName,mail,displayName,accountEnabled,onPremisesSyncEnabled";

/// A user, as much of it as the connector reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct User {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) user_principal_name: String,
    #[serde(default)]
    pub(crate) mail: Option<String>,
    #[serde(default)]
    pub(crate) display_name: Option<String>,
    #[serde(default)]
    pub(crate) account_enabled: Option<bool>,
    #[serde(default)]
    pub(crate) on_premises_sync_enabled: Option<bool>,
}

impl User {
    pub(crate) fn synced(&self) -> bool {
        self.on_premises_sync_enabled == Some(true)
    }
}

/// A directory object of `memberOf` / `ownedObjects` (group, directory role, application…).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DirectoryObject {
    #[serde(rename = "@odata.type", default)]
    pub(crate) odata_type: String,
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) display_name: Option<String>,
    #[serde(default)]
    pub(crate) group_types: Vec<String>,
    #[serde(default)]
    pub(crate) on_premises_sync_enabled: Option<bool>,
    #[serde(default)]
    pub(crate) mail_enabled: Option<bool>,
    #[serde(default)]
    pub(crate) security_enabled: Option<bool>,
    #[serde(default)]
    pub(crate) is_assignable_to_role: Option<bool>,
}

impl DirectoryObject {
    pub(crate) fn is(&self, kind: &str) -> bool {
        self.odata_type == format!("#microsoft.graph.{kind}")
    }

    pub(crate) fn name(&self) -> &str {
        self.display_name.as_deref().unwrap_or(&self.id)
    }

    /// A group whose members Graph does not change because Exchange Online manages them: a
    /// mail-enabled security group or a distribution list (mail-enabled, not `Unified`).
    pub(crate) fn exchange_kind(&self) -> Option<&'static str> {
        let unified = self.group_types.iter().any(|t| t == "Unified");
        match (self.mail_enabled, self.security_enabled) {
            (Some(true), Some(true)) if !unified => Some("mail-enabled security group"),
            (Some(true), _) if !unified => Some("distribution list"),
            _ => None,
        }
    }

    /// A role-assignable group: changing its members needs
    /// `RoleManagement.ReadWrite.Directory`.
    pub(crate) fn role_assignable(&self) -> bool {
        self.is_assignable_to_role == Some(true)
    }

    /// A group whose members Entra manages itself: dynamic or synced from AD.
    pub(crate) fn unchangeable_reason(&self) -> Option<&'static str> {
        if self.on_premises_sync_enabled == Some(true) {
            Some("synced from on-premises AD")
        } else if self.group_types.iter().any(|t| t == "DynamicMembership") {
            Some("dynamic membership")
        } else {
            None
        }
    }
}

/// An app role assignment.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AppRoleAssignment {
    pub(crate) id: String,
    pub(crate) app_role_id: String,
    pub(crate) resource_id: String,
    #[serde(default)]
    pub(crate) resource_display_name: Option<String>,
}

/// A delegated permission grant.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Grant {
    pub(crate) id: String,
    pub(crate) client_id: String,
    pub(crate) consent_type: String,
    #[serde(default)]
    pub(crate) principal_id: Option<String>,
    #[serde(default)]
    pub(crate) scope: Option<String>,
}

/// An authentication method.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct AuthMethod {
    #[serde(rename = "@odata.type", default)]
    pub(crate) odata_type: String,
    pub(crate) id: String,
}

impl AuthMethod {
    /// The path segment of its kind (`phoneMethods`…); `None` for the password and unknown
    /// kinds, which cannot be deleted.
    pub(crate) fn deletable_path(&self) -> Option<&'static str> {
        const KINDS: [(&str, &str); 7] = [
            ("phoneAuthenticationMethod", "phoneMethods"),
            (
                "microsoftAuthenticatorAuthenticationMethod",
                "microsoftAuthenticatorMethods",
            ),
            ("fido2AuthenticationMethod", "fido2Methods"),
            ("softwareOathAuthenticationMethod", "softwareOathMethods"),
            ("emailAuthenticationMethod", "emailMethods"),
            (
                "windowsHelloForBusinessAuthenticationMethod",
                "windowsHelloForBusinessMethods",
            ),
            (
                "temporaryAccessPassAuthenticationMethod",
                "temporaryAccessPassMethods",
            ),
        ];
        let kind = self.odata_type.strip_prefix("#microsoft.graph.")?;
        KINDS.iter().find(|(k, _)| *k == kind).map(|(_, p)| *p)
    }

    pub(crate) fn kind(&self) -> &str {
        self.odata_type
            .strip_prefix("#microsoft.graph.")
            .and_then(|k| k.strip_suffix("AuthenticationMethod"))
            .unwrap_or(&self.odata_type)
    }
}

/// The Graph calls of the Entra connector.
#[derive(Debug, Clone)]
pub(crate) struct EntraClient {
    pub(crate) graph: GraphClient,
}

impl EntraClient {
    pub(crate) fn new(graph: GraphClient) -> Self {
        Self { graph }
    }

    /// `GET /users/{id}?$select=…`; `None` when it does not exist (or is soft-deleted).
    pub(crate) async fn get_user(&self, id: &str) -> Result<Option<User>> {
        self.graph.get_user(id, USER_SELECT).await
    }

    /// `GET /directory/deletedItems/{id}`; `None` when not soft-deleted.
    pub(crate) async fn get_deleted(&self, id: &str) -> Result<Option<User>> {
        self.graph
            .get_opt(&GraphRequest::get(["directory", "deletedItems", id]))
            .await
    }

    async fn list_of<T: DeserializeOwned>(&self, id: &str, rest: &[&str]) -> Result<Vec<T>> {
        self.graph
            .list(&GraphRequest::get(user_path(id, rest)).query("$top", "999"))
            .await
    }

    /// `GET /users/{id}/memberOf`.
    pub(crate) async fn member_of(&self, id: &str) -> Result<Vec<DirectoryObject>> {
        self.list_of(id, &["memberOf"]).await
    }

    /// `GET /users/{id}/ownedObjects`.
    pub(crate) async fn owned_objects(&self, id: &str) -> Result<Vec<DirectoryObject>> {
        self.list_of(id, &["ownedObjects"]).await
    }

    /// The owner ids of a group, application or service principal:
    /// `GET /{collection}/{id}/owners`.
    pub(crate) async fn owners(&self, collection: &str, id: &str) -> Result<BTreeSet<String>> {
        let owners: Vec<DirectoryObject> = self
            .graph
            .list(
                &GraphRequest::get([collection, id, "owners"])
                    .query("$select", "id")
                    .query("$top", "999"),
            )
            .await?;
        Ok(owners.into_iter().map(|o| o.id).collect())
    }

    /// `GET /users/{id}/appRoleAssignments`.
    pub(crate) async fn app_roles(&self, id: &str) -> Result<Vec<AppRoleAssignment>> {
        self.list_of(id, &["appRoleAssignments"]).await
    }

    /// `GET /users/{id}/oauth2PermissionGrants`, `Principal` grants of this user only.
    pub(crate) async fn principal_grants(&self, id: &str) -> Result<Vec<Grant>> {
        let all: Vec<Grant> = self.list_of(id, &["oauth2PermissionGrants"]).await?;
        Ok(all
            .into_iter()
            .filter(|g| g.consent_type == "Principal" && g.principal_id.as_deref() == Some(id))
            .collect())
    }

    /// `GET /users/{id}/authentication/methods`.
    pub(crate) async fn auth_methods(&self, id: &str) -> Result<Vec<AuthMethod>> {
        self.graph
            .list(&GraphRequest::get(user_path(
                id,
                &["authentication", "methods"],
            )))
            .await
    }

    /// `GET /users/{id}/manager`; `None` when the user has none.
    pub(crate) async fn manager(&self, id: &str) -> Result<Option<User>> {
        self.graph
            .get_opt(&GraphRequest::get(user_path(id, &["manager"])))
            .await
    }

    /// Sends `items` as `$batch` calls and fails on the first item that failed.
    pub(crate) async fn batch_all(&self, items: Vec<BatchItem>) -> Result<()> {
        for r in self.graph.batch(items).await? {
            r.result()?;
        }
        Ok(())
    }

    /// Sends `items` as `$batch` calls and fails on the first item that failed for a reason
    /// other than not-found. Returns how many items changed something (not-found: nothing).
    pub(crate) async fn batch_removals(&self, items: Vec<BatchItem>) -> Result<usize> {
        let replies = self.graph.batch(items).await?;
        count_removed(&replies)
    }
}

/// How many replies removed something; the first real failure is the error.
pub(crate) fn count_removed(replies: &[BatchReply]) -> Result<usize> {
    let mut removed = 0;
    for r in replies {
        if r.deleted()? {
            removed += 1;
        }
    }
    Ok(removed)
}

/// `Ok(None)` for not-found, the value otherwise.
pub(crate) fn found<T>(r: Result<T>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
