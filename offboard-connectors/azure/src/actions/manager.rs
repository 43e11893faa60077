//! `entra.clear_manager`: `GET /users/{id}` and `GET /users/{id}/manager` (404
//! `Request_ResourceNotFound`: none, `AlreadyDone`), then `DELETE /users/{id}/manager/$ref`
//! (204). The snapshot records the manager's id; rollback puts it back with
//! `PUT /users/{id}/manager/$ref` `{"@odata.id": "<graph base>/users/{managerId}"}`
//! ([`offboard_http::GraphClient::user_url`], so national clouds keep their own base).
//!
//! A user synced from on-premises AD gets its manager from AD: Graph refuses the change, so
//! the action fails naming `ad.clear_manager` instead (nothing is sent).
//!
//! It runs after `entra.hand_over_owned`, which hands the leaver's groups and apps to this
//! manager.

use offboard_core::{Error, ErrorKind, ExecuteReply, Outcome, Result};
use offboard_http::GraphRequest;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{gone, reply};
use crate::client::{EntraClient, User, user_path};

/// What the snapshot records: the manager's user id (`None`: no manager).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Data {
    pub(crate) manager: Option<String>,
}

fn manager_name(m: &User) -> String {
    if m.user_principal_name.is_empty() {
        m.id.clone()
    } else {
        format!("{} ({})", m.user_principal_name, m.id)
    }
}

/// The error for a synced user whose manager Graph cannot change.
fn synced(user: &User, what: &str) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        format!(
            "{} is synced from on-premises AD, which masters its manager: {what} in AD \
             (ad.clear_manager); Entra Connect carries it over",
            user.user_principal_name
        ),
    )
    .fatal()
}

pub(crate) async fn execute(client: &EntraClient, id: &str, dry_run: bool) -> Result<ExecuteReply> {
    let Some(user) = client.get_user(id).await? else {
        return Ok(gone(id));
    };
    let Some(manager) = client.manager(id).await? else {
        return Ok(reply(Outcome::AlreadyDone, dry_run, "no manager set"));
    };
    let name = manager_name(&manager);
    if user.synced() {
        return Err(synced(&user, &format!("clear the manager {name}")));
    }
    if dry_run {
        return Ok(reply(
            Outcome::Done,
            true,
            format!("would clear the manager link to {name}"),
        ));
    }
    if !client
        .graph
        .send_gone_ok(&GraphRequest::delete(user_path(id, &["manager", "$ref"])))
        .await?
    {
        return Ok(reply(Outcome::AlreadyDone, false, "no manager set"));
    }
    Ok(reply(
        Outcome::Done,
        false,
        format!("cleared the manager link to {name}"),
    ))
}

/// `None` when the user does not exist.
pub(crate) async fn snapshot(client: &EntraClient, id: &str) -> Result<Option<Data>> {
    if client.get_user(id).await?.is_none() {
        return Ok(None);
    }
    Ok(Some(Data {
        manager: client.manager(id).await?.map(|m| m.id),
    }))
}

/// Puts the snapshot's manager back. A snapshot without a manager restores nothing (a
/// manager set since is someone else's change).
pub(crate) async fn restore(client: &EntraClient, user: &User, data: &Data) -> Result<Outcome> {
    let Some(want) = &data.manager else {
        return Ok(Outcome::AlreadyDone);
    };
    let current = client.manager(&user.id).await?;
    if current.as_ref().is_some_and(|m| &m.id == want) {
        return Ok(Outcome::AlreadyDone);
    }
    if user.synced() {
        return Err(synced(user, &format!("set the manager {want} again")));
    }
    client
        .graph
        .send(&GraphRequest::put(
            user_path(&user.id, &["manager", "$ref"]),
            json!({"@odata.id": client.graph.user_url(want)?}),
        ))
        .await
        .map_err(|e| {
            if e.kind() == ErrorKind::NotFound {
                Error::not_found(format!(
                    "the manager {want} no longer exists; the manager link cannot be restored"
                ))
            } else {
                e
            }
        })?;
    Ok(Outcome::Done)
}
