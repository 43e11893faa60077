//! `okta.clear_sessions`:
//! `DELETE /api/v1/users/{userId}/sessions?oauthTokens=true&forgetDevices=true`.
//!
//! Okta cannot list a user's browser sessions, only their OAuth refresh tokens (per client).
//! The outcome is decided from the tokens read first: `Done` when some were revoked,
//! `AlreadyDone` when none existed. The sessions call is made on every real run either way,
//! so open browser sessions are always ended.

use offboard_core::{ExecuteReply, Outcome, Result};

use super::{gone, reply};
use crate::client::OktaClient;

pub(crate) async fn execute(client: &OktaClient, id: &str, dry_run: bool) -> Result<ExecuteReply> {
    if client.get_user(id).await?.is_none() {
        return Ok(gone(id));
    }
    let mut tokens = 0;
    for c in client.list_clients(id).await? {
        tokens += client.list_client_tokens(id, &c.client_id).await?.len();
    }
    let outcome = if tokens > 0 {
        Outcome::Done
    } else {
        Outcome::AlreadyDone
    };
    if dry_run {
        return Ok(reply(
            outcome,
            true,
            format!("{tokens} OAuth refresh tokens to revoke; sessions would be cleared"),
        ));
    }
    match client.clear_sessions(id).await {
        Ok(()) => {}
        Err(e) if e.kind() == offboard_core::ErrorKind::NotFound => return Ok(gone(id)),
        Err(e) => return Err(e),
    }
    Ok(reply(
        outcome,
        false,
        format!("sessions cleared; {tokens} OAuth refresh tokens revoked"),
    ))
}
