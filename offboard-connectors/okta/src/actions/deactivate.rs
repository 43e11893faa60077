//! `okta.deactivate`: `POST /api/v1/users/{id}/lifecycle/deactivate?sendEmail=false`;
//! rollback with `activate?sendEmail=false` (status only: app assignments removed by the
//! deactivation are not restored).

use offboard_core::{ExecuteReply, Outcome, Result};

use super::suspend::Data;
use super::{gone, reply};
use crate::client::OktaClient;
use crate::error::{OktaError, is_validation};

pub(crate) async fn execute(client: &OktaClient, id: &str, dry_run: bool) -> Result<ExecuteReply> {
    let Some(user) = client.get_user(id).await? else {
        return Ok(gone(id));
    };
    if user.status == "DEPROVISIONED" {
        return Ok(reply(
            Outcome::AlreadyDone,
            dry_run,
            "already DEPROVISIONED",
        ));
    }
    if dry_run {
        return Ok(reply(
            Outcome::Done,
            true,
            format!("would deactivate (was {})", user.status),
        ));
    }
    match client.lifecycle(id, "deactivate").await {
        Ok(()) => Ok(reply(
            Outcome::Done,
            false,
            format!("deactivated (was {})", user.status),
        )),
        Err(e) if is_validation(&e) => match client.get_user(id).await? {
            None => Ok(gone(id)),
            Some(u) if u.status == "DEPROVISIONED" => {
                Ok(reply(Outcome::AlreadyDone, false, "already DEPROVISIONED"))
            }
            Some(_) => Err(e),
        },
        Err(e) => Err(e),
    }
}

/// Re-activates a `DEPROVISIONED` user whose snapshot status was `ACTIVE` or `SUSPENDED`
/// (activate, then suspend again for the latter).
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
        ("ACTIVE", "DEPROVISIONED") => {
            client.lifecycle(id, "activate").await?;
            Ok(Outcome::Done)
        }
        ("SUSPENDED", "DEPROVISIONED") => {
            client.lifecycle(id, "activate").await?;
            client.lifecycle(id, "suspend").await?;
            Ok(Outcome::Done)
        }
        ("SUSPENDED", "ACTIVE") => {
            client.lifecycle(id, "suspend").await?;
            Ok(Outcome::Done)
        }
        (_, current) => Err(OktaError::WrongStatus {
            id: id.to_owned(),
            status: current.to_owned(),
            op: "restore of okta.deactivate",
        }
        .into()),
    }
}
