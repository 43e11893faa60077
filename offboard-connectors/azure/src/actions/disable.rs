//! `entra.disable_sign_in`: `GET /users/{id}`, then `PATCH /users/{id}`
//! `{"accountEnabled": false}` (204); rollback patches the snapshot's value back.
//!
//! A user synced from on-premises AD (`onPremisesSyncEnabled`) is mastered in AD: Graph
//! refuses the change. The plan orders `ad.disable` first (see [`super::AD_DISABLE`]); here
//! the action only verifies: `AlreadyDone` once the sync has carried `accountEnabled=false`
//! over, an `in_progress` error (checked again after 5 min, no retry spent) until then.

use std::time::Duration;

use offboard_core::{Error, ErrorKind, ExecuteReply, Outcome, Result};
use offboard_http::GraphRequest;
use serde::{Deserialize, Serialize};

use super::{gone, reply};
use crate::client::{EntraClient, User, user_path};

/// How long to wait before checking a synced user again (Entra Connect syncs every 30 min).
pub(crate) const SYNC_RECHECK: Duration = Duration::from_secs(300);

/// What the snapshot records: `accountEnabled` before.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Data {
    pub(crate) account_enabled: bool,
}

/// The error for a synced user Entra cannot change yet: waiting for Entra Connect is a job
/// in progress (checked again after [`SYNC_RECHECK`], no retry attempt spent).
pub(crate) fn synced_pending(user: &User, what: &str) -> Error {
    Error::in_progress(
        SYNC_RECHECK,
        format!(
            "{} is synced from on-premises AD: {what} must happen in AD (ad.disable) and reaches \
             Entra with the next Entra Connect sync; Entra still shows accountEnabled={}",
            user.user_principal_name,
            enabled(user)
        ),
    )
}

/// Whether sign-in is still enabled (`accountEnabled` missing counts as enabled).
pub(crate) fn enabled(user: &User) -> bool {
    user.account_enabled.unwrap_or(true)
}

pub(crate) async fn execute(client: &EntraClient, id: &str, dry_run: bool) -> Result<ExecuteReply> {
    let Some(user) = client.get_user(id).await? else {
        return Ok(gone(id));
    };
    if !enabled(&user) {
        let how = if user.synced() {
            "sign-in already disabled (in AD, synced to Entra)"
        } else {
            "sign-in already disabled"
        };
        return Ok(reply(Outcome::AlreadyDone, dry_run, how));
    }
    if user.synced() {
        if dry_run {
            return Ok(reply(
                Outcome::Done,
                true,
                "synced from AD: would be disabled by ad.disable and verified here after the sync",
            ));
        }
        return Err(synced_pending(&user, "disabling sign-in"));
    }
    if dry_run {
        return Ok(reply(Outcome::Done, true, "would set accountEnabled=false"));
    }
    client
        .graph
        .send(&GraphRequest::patch(
            user_path(id, &[]),
            serde_json::json!({"accountEnabled": false}),
        ))
        .await?;
    Ok(reply(
        Outcome::Done,
        false,
        "sign-in disabled (accountEnabled=false)",
    ))
}

pub(crate) async fn snapshot(client: &EntraClient, id: &str) -> Result<Option<Data>> {
    Ok(client.get_user(id).await?.map(|u| Data {
        account_enabled: enabled(&u),
    }))
}

pub(crate) async fn restore(client: &EntraClient, user: &User, data: &Data) -> Result<Outcome> {
    if enabled(user) == data.account_enabled {
        return Ok(Outcome::AlreadyDone);
    }
    if user.synced() {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "{} is synced from on-premises AD: restore accountEnabled={} in AD",
                user.user_principal_name, data.account_enabled
            ),
        )
        .fatal());
    }
    client
        .graph
        .send(&GraphRequest::patch(
            user_path(&user.id, &[]),
            serde_json::json!({"accountEnabled": data.account_enabled}),
        ))
        .await?;
    Ok(Outcome::Done)
}
