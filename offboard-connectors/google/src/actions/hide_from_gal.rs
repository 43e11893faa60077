//! `google.hide_from_gal`: `PATCH admin/directory/v1/users/{userKey}` with
//! `{"includeInGlobalAddressList": false}`; rollback sets it back to `true`.

use offboard_core::{ExecuteReply, Outcome, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{gone, reply};
use crate::client::{GoogleClient, User, found};

/// What the snapshot records: `includeInGlobalAddressList` before.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Data {
    pub(crate) include_in_global_address_list: bool,
}

pub(crate) async fn execute(
    client: &GoogleClient,
    id: &str,
    dry_run: bool,
) -> Result<ExecuteReply> {
    let Some(user) = client.get_user(id).await? else {
        return Ok(gone(id));
    };
    if !user.include_in_global_address_list {
        return Ok(reply(
            Outcome::AlreadyDone,
            dry_run,
            "already hidden from the global address list",
        ));
    }
    if !dry_run
        && found(
            client
                .patch_user(id, json!({"includeInGlobalAddressList": false}))
                .await,
        )?
        .is_none()
    {
        return Ok(gone(id));
    }
    Ok(reply(
        Outcome::Done,
        dry_run,
        "hidden from the global address list",
    ))
}

pub(crate) fn snapshot(user: &User) -> Data {
    Data {
        include_in_global_address_list: user.include_in_global_address_list,
    }
}

/// Lists the user again when the snapshot had them listed; never hides.
pub(crate) async fn restore(client: &GoogleClient, user: &User, data: &Data) -> Result<Outcome> {
    if !data.include_in_global_address_list || user.include_in_global_address_list {
        return Ok(Outcome::AlreadyDone);
    }
    client
        .patch_user(&user.id, json!({"includeInGlobalAddressList": true}))
        .await?;
    Ok(Outcome::Done)
}
