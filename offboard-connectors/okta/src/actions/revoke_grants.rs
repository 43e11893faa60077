//! `okta.revoke_grants`: `GET`, then `DELETE /api/v1/users/{userId}/grants`.

use offboard_core::{ErrorKind, ExecuteReply, Outcome, Result};

use super::{gone, reply};
use crate::client::OktaClient;

pub(crate) async fn execute(client: &OktaClient, id: &str, dry_run: bool) -> Result<ExecuteReply> {
    let grants = match client.list_grants(id).await {
        Ok(g) => g,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(gone(id)),
        Err(e) => return Err(e),
    };
    if grants.is_empty() {
        return Ok(reply(
            Outcome::AlreadyDone,
            dry_run,
            "no OAuth consent grants",
        ));
    }
    if !dry_run {
        match client.revoke_grants(id).await {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(gone(id)),
            Err(e) => return Err(e),
        }
    }
    Ok(reply(
        Outcome::Done,
        dry_run,
        format!("{} OAuth consent grants revoked", grants.len()),
    ))
}
