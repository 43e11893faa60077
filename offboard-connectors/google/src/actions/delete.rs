//! `google.delete`: `DELETE admin/directory/v1/users/{userKey}` (critical). Google allows an
//! undelete for a limited period; this connector does not offer it as a rollback.

use offboard_core::{ExecuteReply, Outcome, Result};

use super::reply;
use crate::client::{GoogleClient, gone_ok};

pub(crate) async fn execute(
    client: &GoogleClient,
    id: &str,
    dry_run: bool,
) -> Result<ExecuteReply> {
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
            format!("would delete {}", user.primary_email),
        ));
    }
    if !gone_ok(client.delete_user(id).await)? {
        return Ok(reply(Outcome::AlreadyDone, false, "already deleted"));
    }
    Ok(reply(
        Outcome::Done,
        false,
        format!("deleted {}", user.primary_email),
    ))
}
