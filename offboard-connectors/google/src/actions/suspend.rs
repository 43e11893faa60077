//! `google.suspend`: `PATCH admin/directory/v1/users/{userKey}` with `{"suspended": true}`;
//! rollback with `{"suspended": false}`. Declared after `google.invalidate_backup_codes` and
//! `google.delete_asps`.

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
    if !dry_run && found(client.patch_user(id, json!({"suspended": true})).await)?.is_none() {
        return Ok(gone(id));
    }
    Ok(reply(Outcome::Done, dry_run, "suspended"))
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
