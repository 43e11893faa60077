//! `okta.suspend`: `POST /api/v1/users/{id}/lifecycle/suspend`; rollback with `unsuspend`.

use offboard_core::{ExecuteReply, Outcome, Result};
use serde::{Deserialize, Serialize};

use super::{gone, reply};
use crate::client::OktaClient;
use crate::error::{OktaError, is_validation};

/// What the snapshot records: the status before.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Data {
    pub(crate) status: String,
}

pub(crate) async fn execute(client: &OktaClient, id: &str, dry_run: bool) -> Result<ExecuteReply> {
    let Some(user) = client.get_user(id).await? else {
        return Ok(gone(id));
    };
    match user.status.as_str() {
        "SUSPENDED" | "DEPROVISIONED" => Ok(reply(
            Outcome::AlreadyDone,
            dry_run,
            format!("already {}", user.status),
        )),
        "ACTIVE" if dry_run => Ok(reply(Outcome::Done, true, "would suspend (ACTIVE)")),
        "ACTIVE" => {
            match client.lifecycle(id, "suspend").await {
                Ok(()) => Ok(reply(Outcome::Done, false, "suspended (was ACTIVE)")),
                // Suspended (or deactivated) by someone else between the read and the call.
                Err(e) if is_validation(&e) => match client.get_user(id).await? {
                    None => Ok(gone(id)),
                    Some(u) if matches!(u.status.as_str(), "SUSPENDED" | "DEPROVISIONED") => Ok(
                        reply(Outcome::AlreadyDone, false, format!("already {}", u.status)),
                    ),
                    Some(_) => Err(e),
                },
                Err(e) => Err(e),
            }
        }
        other => Err(OktaError::WrongStatus {
            id: id.to_owned(),
            status: other.to_owned(),
            op: "suspend",
        }
        .into()),
    }
}

pub(crate) async fn snapshot(client: &OktaClient, id: &str) -> Result<Option<Data>> {
    Ok(client
        .get_user(id)
        .await?
        .map(|u| Data { status: u.status }))
}

/// Unsuspends when the snapshot was taken of an `ACTIVE` user who is now `SUSPENDED`.
pub(crate) async fn restore(
    client: &OktaClient,
    id: &str,
    status: &str,
    data: &Data,
) -> Result<Outcome> {
    if status == data.status {
        return Ok(Outcome::AlreadyDone);
    }
    match (data.status.as_str(), status) {
        ("ACTIVE", "SUSPENDED") => {
            client.lifecycle(id, "unsuspend").await?;
            Ok(Outcome::Done)
        }
        (_, current) => Err(OktaError::WrongStatus {
            id: id.to_owned(),
            status: current.to_owned(),
            op: "restore of okta.suspend",
        }
        .into()),
    }
}
