//! `entra.clear_immutable_id`: for a user converted to cloud-only (no longer synced from AD),
//! `GET /users/{id}?$select=…,onPremisesImmutableId`, then `PATCH /users/{id}`
//! `{"onPremisesImmutableId": null}` (204). The snapshot records the value; rollback patches
//! it back.
//!
//! Off by default: it runs only when a policy names it. The immutable id is the anchor Entra
//! Connect hard-matches an AD account to its Entra user by; clearing it on a user still synced
//! would break that match (the next sync could create a duplicate or orphan the account), and
//! Graph refuses it for synced users anyway. A user whose `onPremisesSyncEnabled` is true is
//! therefore refused with an error saying so, and nothing is sent.

use offboard_core::{Error, ErrorKind, ExecuteReply, Outcome, Result};
use offboard_http::GraphRequest;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{gone, reply};
use crate::client::{EntraClient, user_path};

/// What the snapshot records: `onPremisesImmutableId` before.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Data {
    pub(crate) immutable_id: Option<String>,
}

/// The user properties this action reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Anchor {
    #[serde(default)]
    user_principal_name: String,
    #[serde(default)]
    on_premises_sync_enabled: Option<bool>,
    #[serde(default)]
    on_premises_immutable_id: Option<String>,
}

async fn read(client: &EntraClient, id: &str) -> Result<Option<Anchor>> {
    client
        .graph
        .get_user(
            id,
            "id,userPrincipalName,onPremisesSyncEnabled,onPremisesImmutableId",
        )
        .await
}

/// The error for a user still synced from AD.
fn still_synced(user: &Anchor) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        format!(
            "{} is still synced from on-premises AD: its onPremisesImmutableId is the anchor \
             Entra Connect hard-matches it by, and Graph refuses to change it; stop syncing the \
             account (convert it to cloud-only) first",
            user.user_principal_name
        ),
    )
    .fatal()
}

async fn patch(client: &EntraClient, id: &str, value: Option<&str>) -> Result<()> {
    client
        .graph
        .send(&GraphRequest::patch(
            user_path(id, &[]),
            json!({"onPremisesImmutableId": value}),
        ))
        .await
        .map(drop)
}

pub(crate) async fn execute(client: &EntraClient, id: &str, dry_run: bool) -> Result<ExecuteReply> {
    let Some(user) = read(client, id).await? else {
        return Ok(gone(id));
    };
    if user.on_premises_immutable_id.is_none() {
        return Ok(reply(
            Outcome::AlreadyDone,
            dry_run,
            "no onPremisesImmutableId set",
        ));
    }
    if user.on_premises_sync_enabled == Some(true) {
        return Err(still_synced(&user));
    }
    if dry_run {
        return Ok(reply(
            Outcome::Done,
            true,
            "would clear onPremisesImmutableId",
        ));
    }
    patch(client, id, None).await?;
    Ok(reply(
        Outcome::Done,
        false,
        "onPremisesImmutableId cleared (cloud-only from now on)",
    ))
}

/// `None` when the user does not exist.
pub(crate) async fn snapshot(client: &EntraClient, id: &str) -> Result<Option<Data>> {
    Ok(read(client, id).await?.map(|u| Data {
        immutable_id: u.on_premises_immutable_id,
    }))
}

/// Patches the snapshot's value back.
pub(crate) async fn restore(client: &EntraClient, id: &str, data: &Data) -> Result<Outcome> {
    let Some(user) = read(client, id).await? else {
        return Err(Error::not_found(format!("user {id} does not exist")));
    };
    if user.on_premises_immutable_id == data.immutable_id {
        return Ok(Outcome::AlreadyDone);
    }
    if user.on_premises_sync_enabled == Some(true) {
        return Err(still_synced(&user));
    }
    patch(client, id, data.immutable_id.as_deref()).await?;
    Ok(Outcome::Done)
}
