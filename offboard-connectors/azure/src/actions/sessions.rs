//! `entra.revoke_sessions`: `POST /users/{id}/revokeSignInSessions`. Irreversible.
//!
//! Graph cannot list a user's sessions, and `signInSessionsValidFromDateTime` only says when
//! the last revocation happened, not whether a session was issued since. As
//! `google.sign_out` does, the connector remembers per instance the (user, idempotency key)
//! pairs it revoked: a repeat with the same key is `AlreadyDone` without a call; anything else
//! revokes again (harmless: the call is idempotent).
//!
//! The action has no ordering dependency: a revocation runs even when disabling sign-in
//! failed. A user synced from on-premises AD stays enabled until AD disables the account and
//! Entra Connect syncs it, and can sign in again meanwhile: the sessions are revoked at once,
//! the task then waits for the sync as a job in progress (`in_progress`, checked again after
//! [`SYNC_RECHECK`] without a call) and revokes again once Entra shows the account disabled.

use offboard_core::{Error, ExecuteReply, Outcome, Result};
use offboard_http::GraphRequest;

use super::disable::{SYNC_RECHECK, enabled};
use super::{gone, reply};
use crate::client::{EntraClient, User, user_path};

pub(crate) use offboard_core::KeyMemo as Memo;

/// The memo key of a first revocation made while waiting for the sync.
fn first_key(idempotency_key: &str) -> String {
    if idempotency_key.is_empty() {
        String::new()
    } else {
        format!("{idempotency_key}\u{0}revoked-before-sync")
    }
}

/// The wait for Entra Connect after the first revocation.
fn waiting_for_sync(user: &User) -> Error {
    Error::in_progress(
        SYNC_RECHECK,
        format!(
            "sessions of {} revoked; the user is synced from on-premises AD and still enabled: \
             they are revoked again once the Entra Connect sync has disabled the account",
            user.user_principal_name
        ),
    )
}

pub(crate) async fn execute(
    client: &EntraClient,
    memo: &Memo,
    id: &str,
    idempotency_key: &str,
    dry_run: bool,
) -> Result<ExecuteReply> {
    let Some(user) = client.get_user(id).await? else {
        return Ok(gone(id));
    };
    if memo.contains(id, idempotency_key) {
        return Ok(reply(
            Outcome::AlreadyDone,
            dry_run,
            "sessions already revoked by this task",
        ));
    }
    let awaiting_sync = user.synced() && enabled(&user);
    let first = first_key(idempotency_key);
    if dry_run {
        let what = if awaiting_sync {
            "would revoke every refresh token and session now, and again once the Entra Connect \
             sync has disabled the account"
        } else {
            "would revoke every refresh token and session"
        };
        return Ok(reply(Outcome::Done, true, what));
    }
    let revoked_before = memo.contains(id, &first);
    if awaiting_sync && revoked_before {
        return Err(waiting_for_sync(&user));
    }
    if !revoke(client, id).await? {
        return Ok(gone(id));
    }
    if awaiting_sync {
        memo.insert(id, &first);
        return Err(waiting_for_sync(&user));
    }
    memo.insert(id, idempotency_key);
    let detail = if revoked_before {
        "refresh tokens and sessions revoked again after the sync disabled the account \
         (signInSessionsValidFromDateTime reset)"
    } else {
        "refresh tokens and sessions revoked (signInSessionsValidFromDateTime reset)"
    };
    Ok(reply(Outcome::Done, false, detail))
}

/// `POST /users/{id}/revokeSignInSessions`; `false` when the user is gone.
async fn revoke(client: &EntraClient, id: &str) -> Result<bool> {
    client
        .graph
        .send_gone_ok(&GraphRequest::post(
            user_path(id, &["revokeSignInSessions"]),
            serde_json::json!({}),
        ))
        .await
}
