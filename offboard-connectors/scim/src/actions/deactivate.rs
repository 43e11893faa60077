//! `<app>.deactivate`: `PATCH /Users/{id}` replacing `active` with false, or `GET` + `PUT` of
//! the whole resource with `active: false` where the provider lacks PATCH, or `DELETE` for apps
//! without a usable `active` (profile). `If-Match` carries the ETag read when ETags are in use;
//! a 412 re-reads once and tries again. Rollback sets `active` back to true the same way.

use offboard_core::{Error, ExecuteReply, Outcome, Result};
use serde::{Deserialize, Serialize};

use super::{gone, reply};
use crate::client::{ScimClient, User, gone_ok, is_precondition_failed};
use crate::profile::DeactivateMethod;

/// What the snapshot records: whether the user was active.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Data {
    pub(crate) active: bool,
}

/// How a write is made: the resolved method (never `Advertised`) and whether to send
/// `If-Match`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Write {
    pub(crate) method: DeactivateMethod,
    pub(crate) etag: bool,
}

impl Write {
    fn verb(self) -> &'static str {
        match self.method {
            DeactivateMethod::Put => "PUT",
            DeactivateMethod::Delete => "DELETE",
            _ => "PATCH",
        }
    }
}

pub(crate) async fn execute(
    client: &ScimClient,
    id: &str,
    dry_run: bool,
    write: Write,
) -> Result<ExecuteReply> {
    let removes = write.method == DeactivateMethod::Delete;
    let Some(user) = client.get_user(id).await? else {
        // Where deactivating is the DELETE, a user already gone is the goal reached.
        return Ok(if removes {
            already_removed(id, dry_run)
        } else {
            gone(id)
        });
    };
    if removes {
        if dry_run {
            return Ok(reply(Outcome::Done, true, "would remove the user (DELETE)"));
        }
        let tag = user.etag.as_deref().filter(|_| write.etag);
        return Ok(if gone_ok(client.delete_user(id, tag).await)? {
            reply(Outcome::Done, false, "removed the user (DELETE)")
        } else {
            already_removed(id, false)
        });
    }
    if !user.active {
        return Ok(reply(Outcome::AlreadyDone, dry_run, "already inactive"));
    }
    if dry_run {
        return Ok(reply(
            Outcome::Done,
            true,
            format!("would set active to false ({})", write.verb()),
        ));
    }
    Ok(match set_active(client, user, false, write).await? {
        Some(true) => reply(
            Outcome::Done,
            false,
            format!("set active to false ({})", write.verb()),
        ),
        Some(false) => reply(Outcome::AlreadyDone, false, "already inactive"),
        None => gone(id),
    })
}

fn already_removed(id: &str, dry_run: bool) -> ExecuteReply {
    reply(
        Outcome::AlreadyDone,
        dry_run,
        format!("user {id} does not exist (already removed)"),
    )
}

/// Sets `active`; `Some(true)` when written, `Some(false)` when a fresh read after a 412 shows
/// it already set, `None` when the user is gone.
pub(crate) async fn set_active(
    client: &ScimClient,
    user: User,
    active: bool,
    write: Write,
) -> Result<Option<bool>> {
    match send(client, &user, active, write).await {
        Ok(()) => Ok(Some(true)),
        Err(e) if is_precondition_failed(&e) => {
            // Changed since read: read again and decide again, once.
            let Some(fresh) = client.get_user(&user.id).await? else {
                return Ok(None);
            };
            if fresh.active == active {
                return Ok(Some(false));
            }
            send(client, &fresh, active, write)
                .await
                .map(|()| Some(true))
        }
        Err(e) if e.kind() == offboard_core::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

async fn send(client: &ScimClient, user: &User, active: bool, write: Write) -> Result<()> {
    let tag = user.etag.as_deref().filter(|_| write.etag);
    match write.method {
        DeactivateMethod::Put => client.put_active(user, active, tag).await,
        _ => client.patch_active(&user.id, active, tag).await,
    }
}

/// Sets `active` back to true when the snapshot says it was.
pub(crate) async fn restore(
    client: &ScimClient,
    id: &str,
    data: &Data,
    write: Write,
) -> Result<Outcome> {
    let Some(user) = client.get_user(id).await? else {
        return Err(Error::not_found(format!("user {id} does not exist")));
    };
    if !data.active || user.active {
        return Ok(Outcome::AlreadyDone);
    }
    match set_active(client, user, true, write).await? {
        Some(true) => Ok(Outcome::Done),
        Some(false) => Ok(Outcome::AlreadyDone),
        None => Err(Error::not_found(format!("user {id} does not exist"))),
    }
}
