//! `entra.revoke_sessions`: `POST /users/{id}/revokeSignInSessions`. Irreversible.
//!
//! Graph cannot list a user's sessions, and `signInSessionsValidFromDateTime` only says when
//! the last revocation happened, not whether a session was issued since. As
//! `google.sign_out` does, the connector remembers per instance the (user, idempotency key)
//! pairs it revoked: a repeat with the same key is `AlreadyDone` without a call; anything else
//! revokes again (harmless: the call is idempotent).

use offboard_core::{ExecuteReply, Outcome, Result};
use offboard_http::GraphRequest;

use super::{gone, reply};
use crate::client::{EntraClient, user_path};

pub(crate) use offboard_core::KeyMemo as Memo;

pub(crate) async fn execute(
    client: &EntraClient,
    memo: &Memo,
    id: &str,
    idempotency_key: &str,
    dry_run: bool,
) -> Result<ExecuteReply> {
    if client.get_user(id).await?.is_none() {
        return Ok(gone(id));
    }
    if memo.contains(id, idempotency_key) {
        return Ok(reply(
            Outcome::AlreadyDone,
            dry_run,
            "sessions already revoked by this task",
        ));
    }
    if dry_run {
        return Ok(reply(
            Outcome::Done,
            true,
            "would revoke every refresh token and session",
        ));
    }
    let revoked = client
        .graph
        .send_gone_ok(&GraphRequest::post(
            user_path(id, &["revokeSignInSessions"]),
            serde_json::json!({}),
        ))
        .await?;
    if !revoked {
        return Ok(gone(id));
    }
    memo.insert(id, idempotency_key);
    Ok(reply(
        Outcome::Done,
        false,
        "refresh tokens and sessions revoked (signInSessionsValidFromDateTime reset)",
    ))
}
