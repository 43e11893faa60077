//! `okta.remove_admin_roles`: `GET /api/v1/users/{userId}/roles`, then
//! `DELETE /api/v1/users/{userId}/roles/{roleAssignmentId}` for each.

use offboard_core::{ErrorKind, ExecuteReply, Outcome, Result};

use super::{gone, reply};
use crate::client::{OktaClient, gone_ok};

pub(crate) async fn execute(client: &OktaClient, id: &str, dry_run: bool) -> Result<ExecuteReply> {
    let roles = match client.list_roles(id).await {
        Ok(r) => r,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(gone(id)),
        Err(e) => return Err(e),
    };
    if roles.is_empty() {
        return Ok(reply(Outcome::AlreadyDone, dry_run, "no admin roles"));
    }
    if !dry_run {
        for r in &roles {
            gone_ok(client.remove_role(id, &r.id).await)?;
        }
    }
    let kinds: Vec<&str> = roles.iter().filter_map(|r| r.kind.as_deref()).collect();
    Ok(reply(
        Outcome::Done,
        dry_run,
        format!("{} admin roles removed ({})", roles.len(), kinds.join(", ")),
    ))
}
