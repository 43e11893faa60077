//! `entra.delete`: `DELETE /users/{id}` (soft: the user moves to `/directory/deletedItems`
//! with its memberships and licences for 30 days). Rollback within that window:
//! `POST /directory/deletedItems/{id}/restore`.

use offboard_core::{Error, ExecuteReply, Outcome, Result};
use offboard_http::GraphRequest;
use serde::{Deserialize, Serialize};

use super::reply;
use crate::client::{EntraClient, user_path};

/// What the snapshot records: whether the user was soft-deleted.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Data {
    pub(crate) soft_deleted: bool,
}

pub(crate) async fn execute(client: &EntraClient, id: &str, dry_run: bool) -> Result<ExecuteReply> {
    let Some(user) = client.get_user(id).await? else {
        let detail = if client.get_deleted(id).await?.is_some() {
            format!("user {id} is already deleted (restorable from deleted items)")
        } else {
            format!("user {id} does not exist (already deleted)")
        };
        return Ok(reply(Outcome::AlreadyDone, dry_run, detail));
    };
    if dry_run {
        return Ok(reply(
            Outcome::Done,
            true,
            format!("would delete {} (soft)", user.user_principal_name),
        ));
    }
    if !client
        .graph
        .send_gone_ok(&GraphRequest::delete(user_path(id, &[])))
        .await?
    {
        return Ok(reply(Outcome::AlreadyDone, false, "already deleted"));
    }
    Ok(reply(
        Outcome::Done,
        false,
        format!(
            "{} deleted; restorable from deleted items for 30 days",
            user.user_principal_name
        ),
    ))
}

pub(crate) async fn snapshot(client: &EntraClient, id: &str) -> Result<Option<Data>> {
    if client.get_user(id).await?.is_some() {
        return Ok(Some(Data {
            soft_deleted: false,
        }));
    }
    Ok(client
        .get_deleted(id)
        .await?
        .map(|_| Data { soft_deleted: true }))
}

/// Restores a soft-deleted user when the snapshot says it was not deleted.
pub(crate) async fn restore(client: &EntraClient, id: &str, data: &Data) -> Result<Outcome> {
    let active = client.get_user(id).await?.is_some();
    match (data.soft_deleted, active) {
        (false, true) | (true, false) => Ok(Outcome::AlreadyDone),
        (false, false) => {
            if client.get_deleted(id).await?.is_none() {
                return Err(Error::not_found(format!(
                    "user {id} is permanently deleted (past the retention window); it cannot be restored"
                )));
            }
            client
                .graph
                .send(&GraphRequest::post(
                    ["directory", "deletedItems", id, "restore"],
                    serde_json::json!({}),
                ))
                .await?;
            Ok(Outcome::Done)
        }
        (true, true) => Err(Error::unsupported(format!(
            "user {id} was deleted when the snapshot was taken; deleting it again is not a rollback"
        ))),
    }
}
