//! `okta.reset_factors`: `GET /api/v1/users/{userId}/factors`, then
//! `POST /api/v1/users/{id}/lifecycle/reset_factors`.

use offboard_core::{ErrorKind, ExecuteReply, Outcome, Result};

use super::{gone, reply};
use crate::client::OktaClient;

pub(crate) async fn execute(client: &OktaClient, id: &str, dry_run: bool) -> Result<ExecuteReply> {
    let factors = match client.list_factors(id).await {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(gone(id)),
        Err(e) => return Err(e),
    };
    if factors.is_empty() {
        return Ok(reply(Outcome::AlreadyDone, dry_run, "no enrolled factors"));
    }
    if !dry_run {
        match client.lifecycle(id, "reset_factors").await {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(gone(id)),
            Err(e) => return Err(e),
        }
    }
    Ok(reply(
        Outcome::Done,
        dry_run,
        format!("{} factors reset", factors.len()),
    ))
}
