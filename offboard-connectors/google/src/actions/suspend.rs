//! `google.suspend`: `PATCH admin/directory/v1/users/{userKey}` with `{"suspended": true}`;
//! rollback with `{"suspended": false}`.
//!
//! Google refuses to invalidate the backup codes of a suspended user, so suspension first
//! does it itself as far as it can (`GET …/verificationCodes`, then `POST
//! …/verificationCodes/invalidate` when any is valid) and reports how that went; whatever
//! happens there, the user is suspended. It declares no `after`: an ordering dependency would
//! turn a failed hygiene step (`google.invalidate_backup_codes`, `google.delete_asps`) into
//! a skipped suspension. Rollback unsuspends; codes invalidated stay invalid.

use offboard_core::{ExecuteReply, Outcome, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{gone, reply};
use crate::client::{GoogleClient, User, found};

/// What the snapshot records: `suspended` before.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Data {
    pub(crate) suspended: bool,
}

pub(crate) async fn execute(
    client: &GoogleClient,
    id: &str,
    dry_run: bool,
) -> Result<ExecuteReply> {
    let Some(user) = client.get_user(id).await? else {
        return Ok(gone(id));
    };
    if user.suspended {
        return Ok(reply(Outcome::AlreadyDone, dry_run, "already suspended"));
    }
    let codes = codes_first(client, id, dry_run).await;
    if !dry_run && found(client.patch_user(id, json!({"suspended": true})).await)?.is_none() {
        return Ok(gone(id));
    }
    Ok(reply(Outcome::Done, dry_run, format!("suspended{codes}")))
}

/// Invalidates the user's backup codes before the suspension (Google refuses it after), as
/// far as possible; what to add to the report. A failure here never stops the suspension.
async fn codes_first(client: &GoogleClient, id: &str, dry_run: bool) -> String {
    let n = match client.count_backup_codes(id).await {
        Ok(0) => return String::new(),
        Ok(n) => n,
        Err(e) => return format!("; backup codes not read first ({})", e.kind()),
    };
    if dry_run {
        return format!("; its {n} backup codes invalidated first");
    }
    match client.invalidate_backup_codes(id).await {
        Ok(()) => format!("; its {n} backup codes invalidated first"),
        Err(e) => format!(
            "; its {n} backup codes could not be invalidated first ({}): Google keeps them \
             while the user is suspended",
            e.kind()
        ),
    }
}

pub(crate) fn snapshot(user: &User) -> Data {
    Data {
        suspended: user.suspended,
    }
}

/// Unsuspends a user who was not suspended when the snapshot was taken; never suspends.
pub(crate) async fn restore(client: &GoogleClient, user: &User, data: &Data) -> Result<Outcome> {
    if data.suspended || !user.suspended {
        return Ok(Outcome::AlreadyDone);
    }
    client
        .patch_user(&user.id, json!({"suspended": false}))
        .await?;
    Ok(Outcome::Done)
}
