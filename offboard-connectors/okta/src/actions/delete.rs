//! `okta.delete`: `DELETE /api/v1/users/{id}?sendEmail=false`, twice when the user is not
//! deactivated yet (the first call only deactivates). Irreversible.

use offboard_core::{ExecuteReply, Outcome, Result};

use super::reply;
use crate::client::{OktaClient, gone_ok};

pub(crate) async fn execute(client: &OktaClient, id: &str, dry_run: bool) -> Result<ExecuteReply> {
    let Some(user) = client.get_user(id).await? else {
        return Ok(reply(
            Outcome::AlreadyDone,
            dry_run,
            format!("user {id} does not exist (already deleted)"),
        ));
    };
    if dry_run {
        return Ok(reply(
            Outcome::Done,
            true,
            format!("would delete (status {})", user.status),
        ));
    }
    if user.status != "DEPROVISIONED" && !gone_ok(client.delete_user(id).await)? {
        return Ok(reply(Outcome::AlreadyDone, false, "already deleted"));
    }
    gone_ok(client.delete_user(id).await)?;
    Ok(reply(
        Outcome::Done,
        false,
        format!("deleted (was {})", user.status),
    ))
}
