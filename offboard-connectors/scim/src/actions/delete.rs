//! `<app>.delete`: `DELETE /Users/{id}`; a 404 means it is already done. Irreversible.

use offboard_core::{ExecuteReply, Outcome, Result};

use super::reply;
use crate::client::{ScimClient, gone_ok};

pub(crate) async fn execute(client: &ScimClient, id: &str, dry_run: bool) -> Result<ExecuteReply> {
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
            format!("would delete {}", user.user_name),
        ));
    }
    Ok(if gone_ok(client.delete_user(id, None).await)? {
        reply(Outcome::Done, false, format!("deleted {}", user.user_name))
    } else {
        reply(Outcome::AlreadyDone, false, "already deleted")
    })
}
