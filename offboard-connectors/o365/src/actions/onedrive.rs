//! `o365.onedrive_to_manager`: `GET /users/{id}/drive`, `GET /drives/{drive}/root/permissions`,
//! then `POST /drives/{drive}/root/invite` (`write`, `requireSignIn`, no invitation mail) only
//! when no permission for the manager exists (invite is not idempotent). Not reversible: the
//! operation list has no permission delete.

use offboard_core::{ExecuteReply, Outcome, Result};
use serde_json::Value;

use super::{Ctx, reply, user_gone};
use crate::client::Resource;

/// Whether `permission` lets `email` write (or own) the item.
fn grants_write(permission: &Value, email: &str) -> bool {
    let writes = permission["roles"].as_array().is_some_and(|r| {
        r.iter()
            .any(|r| matches!(r.as_str(), Some("write" | "owner")))
    });
    let addresses = [
        &permission["grantedToV2"]["user"]["email"],
        &permission["grantedTo"]["user"]["email"],
        &permission["invitation"]["email"],
    ];
    writes
        && addresses
            .iter()
            .filter_map(|a| a.as_str())
            .any(|a| a.eq_ignore_ascii_case(email))
}

pub(crate) async fn execute(
    ctx: &Ctx<'_>,
    id: &str,
    to: &str,
    dry_run: bool,
) -> Result<ExecuteReply> {
    let drive = match ctx.client.drive(id).await? {
        Resource::Found(d) => d,
        Resource::Missing => {
            return Ok(reply(
                Outcome::AlreadyDone,
                dry_run,
                "the user has no OneDrive; nothing to hand over",
            ));
        }
        Resource::UserGone => return Err(user_gone(id)),
    };
    let permissions = ctx.client.root_permissions(&drive).await?;
    if permissions.iter().any(|p| grants_write(p, to)) {
        return Ok(reply(
            Outcome::AlreadyDone,
            dry_run,
            format!("{to} can already write to the OneDrive"),
        ));
    }
    if !dry_run {
        ctx.client.invite(&drive, to).await?;
    }
    Ok(reply(
        Outcome::Done,
        dry_run,
        format!("{to} given write access to the OneDrive (drive {drive})"),
    ))
}
