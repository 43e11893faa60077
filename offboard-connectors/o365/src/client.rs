//! Wire calls to Microsoft Graph for the Office 365 workloads; no decisions.

use std::collections::BTreeMap;

use offboard_core::{Error, ErrorKind, Result};
use offboard_http::GraphClient;
use offboard_http::graph::{BatchItem, GraphRequest, user_path, vendor_code};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// The user properties the connector selects.
pub(crate) const USER_SELECT: &str =
    "id,userPrincipalName,mail,displayName,accountEnabled,usageLocation,licenseAssignmentStates";

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
    pub(crate) account_enabled: Option<bool>,
    #[serde(default)]
    pub(crate) usage_location: Option<String>,
    #[serde(default)]
    pub(crate) license_assignment_states: Vec<LicenseState>,
}

/// One entry of `licenseAssignmentStates`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LicenseState {
    pub(crate) sku_id: String,
    #[serde(default)]
    pub(crate) assigned_by_group: Option<String>,
    #[serde(default)]
    pub(crate) disabled_plans: Vec<String>,
}

/// A `licenseDetails` item.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LicenseDetail {
    pub(crate) sku_id: String,
    #[serde(default)]
    pub(crate) sku_part_number: Option<String>,
}

/// An inbox rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MessageRule {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) display_name: String,
    #[serde(default)]
    pub(crate) is_enabled: bool,
    #[serde(default)]
    pub(crate) actions: Value,
}

impl MessageRule {
    /// The addresses in `actions.forwardTo`.
    pub(crate) fn forward_to(&self) -> Vec<&str> {
        self.actions["forwardTo"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r["emailAddress"]["address"].as_str())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// What reading a mailbox or drive resource of a user found.
#[derive(Debug)]
pub(crate) enum Resource<T> {
    /// The resource.
    Found(T),
    /// The user exists but lacks it (no Exchange Online mailbox: `MailboxNotEnabledForRESTAPI`; no OneDrive).
    Missing,
    /// The user does not exist.
    UserGone,
}

fn vendor(message: String) -> Error {
    Error::new(ErrorKind::Vendor, message)
}

/// Parses a batch item's JSON body.
pub(crate) fn parse<T: DeserializeOwned>(value: &Value, what: &str) -> Result<T> {
    serde_json::from_value(value.clone()).map_err(|e| vendor(format!("unexpected {what}: {e}")))
}

/// The Graph calls the connector makes.
#[derive(Debug, Clone)]
pub(crate) struct O365Client {
    pub(crate) graph: GraphClient,
}

impl O365Client {
    /// `GET /users/{id}?$select=…`; `None` when it does not exist.
    pub(crate) async fn get_user(&self, id: &str) -> Result<Option<User>> {
        self.graph.get_user(id, USER_SELECT).await
    }

    /// Tells "no mailbox" from "no user" after a not-found on a mailbox resource.
    pub(crate) async fn mailbox_missing<T>(&self, id: &str, e: Error) -> Result<Resource<T>> {
        if e.kind() != ErrorKind::NotFound {
            return Err(e);
        }
        if vendor_code(&e) == Some("MailboxNotEnabledForRESTAPI") {
            return Ok(Resource::Missing);
        }
        match self.get_user(id).await? {
            None => Ok(Resource::UserGone),
            Some(_) => Ok(Resource::Missing),
        }
    }

    /// `GET /users/{id}/mailboxSettings`: its `automaticRepliesSetting`.
    pub(crate) async fn auto_reply(&self, id: &str) -> Result<Resource<Value>> {
        match self
            .graph
            .json::<Value>(&GraphRequest::get(user_path(id, &["mailboxSettings"])))
            .await
        {
            Ok(v) => Ok(Resource::Found(v["automaticRepliesSetting"].clone())),
            Err(e) => self.mailbox_missing(id, e).await,
        }
    }

    /// `PATCH /users/{id}/mailboxSettings` with `automaticRepliesSetting`.
    pub(crate) async fn set_auto_reply(&self, id: &str, setting: Value) -> Result<()> {
        self.graph
            .send(&GraphRequest::patch(
                user_path(id, &["mailboxSettings"]),
                json!({"automaticRepliesSetting": setting}),
            ))
            .await
            .map(drop)
    }

    /// `GET /users/{id}/mailFolders/inbox/messageRules`.
    pub(crate) async fn rules(&self, id: &str) -> Result<Resource<Vec<MessageRule>>> {
        match self
            .graph
            .list(&GraphRequest::get(user_path(
                id,
                &["mailFolders", "inbox", "messageRules"],
            )))
            .await
        {
            Ok(v) => Ok(Resource::Found(v)),
            Err(e) => self.mailbox_missing(id, e).await,
        }
    }

    /// `POST /users/{id}/mailFolders/inbox/messageRules`.
    pub(crate) async fn create_rule(&self, id: &str, rule: Value) -> Result<()> {
        self.graph
            .send(&GraphRequest::post(
                user_path(id, &["mailFolders", "inbox", "messageRules"]),
                rule,
            ))
            .await
            .map(drop)
    }

    /// `DELETE …/messageRules/{ruleId}` for each rule, in one `$batch`; how many were deleted
    /// (a rule already gone does not count).
    pub(crate) async fn delete_rules(&self, id: &str, rules: &[String]) -> Result<usize> {
        let items = rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                BatchItem::new(
                    format!("r{i}"),
                    GraphRequest::delete(user_path(
                        id,
                        &["mailFolders", "inbox", "messageRules", r],
                    )),
                )
            })
            .collect();
        let mut deleted = 0;
        for reply in self.graph.batch(items).await? {
            if reply.deleted()? {
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    /// `GET /users/{id}/drive`: the drive id.
    pub(crate) async fn drive(&self, id: &str) -> Result<Resource<String>> {
        match self
            .graph
            .json::<Value>(&GraphRequest::get(user_path(id, &["drive"])))
            .await
        {
            Ok(v) => v["id"]
                .as_str()
                .map(|d| Resource::Found(d.to_owned()))
                .ok_or_else(|| vendor("the drive has no id".into())),
            Err(e) => self.mailbox_missing(id, e).await,
        }
    }

    /// `GET /drives/{drive}/root/permissions`.
    pub(crate) async fn root_permissions(&self, drive: &str) -> Result<Vec<Value>> {
        self.graph
            .list(&GraphRequest::get(["drives", drive, "root", "permissions"]))
            .await
    }

    /// `POST /drives/{drive}/root/invite`: `write`, sign-in required, no invitation mail.
    pub(crate) async fn invite(&self, drive: &str, email: &str) -> Result<()> {
        self.graph
            .send(&GraphRequest::post(
                ["drives", drive, "root", "invite"],
                json!({
                    "recipients": [{"email": email}],
                    "roles": ["write"],
                    "requireSignIn": true,
                    "sendInvitation": false,
                }),
            ))
            .await
            .map(drop)
    }

    /// One `$batch`: `GET /users/{id}?$select=…` and `GET /users/{id}/licenseDetails`.
    /// `None` when the user does not exist.
    pub(crate) async fn licences(
        &self,
        id: &str,
    ) -> Result<Option<(User, BTreeMap<String, String>)>> {
        let replies = self
            .graph
            .batch(vec![
                BatchItem::new(
                    "user",
                    GraphRequest::get(user_path(id, &[])).query("$select", USER_SELECT),
                ),
                BatchItem::new(
                    "details",
                    GraphRequest::get(user_path(id, &["licenseDetails"])),
                ),
            ])
            .await?;
        let [user, details] = replies.as_slice() else {
            return Err(vendor("the $batch answer lacks items".into()));
        };
        let user: User = match user.result() {
            Ok(v) => parse(v, "user")?,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let details: Vec<LicenseDetail> = match details.result() {
            Ok(v) => parse(&v["value"], "licenseDetails")?,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let names = details
            .into_iter()
            .filter_map(|d| d.sku_part_number.map(|p| (d.sku_id, p)))
            .collect();
        Ok(Some((user, names)))
    }

    /// `displayName`s of groups, one `$batch` of `GET /groups/{id}`; unknown ones are left out.
    pub(crate) async fn group_names(&self, ids: &[&str]) -> Result<BTreeMap<String, String>> {
        if ids.is_empty() {
            return Ok(BTreeMap::new());
        }
        let items = ids
            .iter()
            .enumerate()
            .map(|(i, g)| BatchItem::new(format!("g{i}"), GraphRequest::get(["groups", *g])))
            .collect();
        let mut names = BTreeMap::new();
        for (reply, g) in self.graph.batch(items).await?.iter().zip(ids) {
            if let Ok(v) = reply.result()
                && let Some(n) = v["displayName"].as_str()
            {
                names.insert((*g).to_owned(), n.to_owned());
            }
        }
        Ok(names)
    }

    /// `POST /users/{id}/assignLicense` with both arrays.
    pub(crate) async fn assign_license(
        &self,
        id: &str,
        add: Vec<Value>,
        remove: Vec<String>,
    ) -> Result<()> {
        self.graph
            .send(&GraphRequest::post(
                user_path(id, &["assignLicense"]),
                json!({"addLicenses": add, "removeLicenses": remove}),
            ))
            .await
            .map(drop)
    }

    /// `PATCH /users/{id}` with `usageLocation`.
    pub(crate) async fn set_usage_location(&self, id: &str, location: &str) -> Result<()> {
        self.graph
            .send(&GraphRequest::patch(
                user_path(id, &[]),
                json!({"usageLocation": location}),
            ))
            .await
            .map(drop)
    }
}
