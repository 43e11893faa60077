//! `entra.hand_over_owned`: the groups, app registrations (applications) and enterprise apps
//! (service principals) the leaver owns (`GET /users/{id}/ownedObjects`) get a new owner
//! first, then lose the leaver, so no object is ever left without an owner:
//! - The new owner is the action parameter `to` (a user id or UPN, read with
//!   `GET /users/{to}` and accepted only when Graph answers with that very id or UPN), else
//!   the leaver's manager (`GET /users/{id}/manager`).
//! - Per object: `GET /{kind}/{o}/owners`, `POST /{kind}/{o}/owners/$ref`
//!   `{"@odata.id": "<graph base>/directoryObjects/{new}"}` unless the new owner already is
//!   one, then `DELETE /{kind}/{o}/owners/{id}/$ref`. When adding fails (Graph refuses, e.g. a
//!   role-assignable group without `RoleManagement.ReadWrite.Directory`) the leaver stays an
//!   owner.
//! - Objects not handed over (no manager and no `to`, Graph refused) fail the task by name,
//!   after the others were handed over, as `entra.remove_groups` does for the groups Graph
//!   cannot change.
//!
//! The snapshot records each owned object and whether the new owner already owned it;
//! rollback re-adds the leaver where it is no longer an owner, then removes the new owner
//! from the objects the hand-over made it owner of.

use std::collections::BTreeSet;

use offboard_core::{Error, ErrorKind, ExecuteReply, Outcome, Result};
use offboard_http::GraphRequest;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{gone, names, partly_done, reply};
use crate::client::{DirectoryObject, EntraClient, User};

/// The parameters: who receives the objects (default: the leaver's manager).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Params {
    /// A user id or UPN.
    #[serde(default)]
    pub(crate) to: Option<String>,
}

/// One object the leaver owned, as the snapshot records it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct Owned {
    /// `groups`, `applications` or `servicePrincipals`.
    pub(crate) kind: String,
    pub(crate) id: String,
    pub(crate) name: String,
    /// Whether the new owner already owned it (rollback then leaves it an owner).
    pub(crate) new_owner_was_owner: bool,
}

/// The snapshot: the new owner (`None`: none known) and the objects the leaver owned.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Data {
    pub(crate) new_owner: Option<String>,
    pub(crate) objects: Vec<Owned>,
}

/// The collection of an owned object that can be handed over, with its name for reports.
fn collection(o: &DirectoryObject) -> Option<(&'static str, &'static str)> {
    [
        ("group", "groups", "group"),
        ("application", "applications", "app registration"),
        ("servicePrincipal", "servicePrincipals", "enterprise app"),
    ]
    .into_iter()
    .find(|(t, _, _)| o.is(t))
    .map(|(_, c, n)| (c, n))
}

/// The objects the user owns that can be handed over: (collection, label, object).
async fn owned(
    client: &EntraClient,
    id: &str,
) -> Result<Option<Vec<(&'static str, String, DirectoryObject)>>> {
    let Some(objects) = crate::client::found(client.owned_objects(id).await)? else {
        return Ok(None);
    };
    Ok(Some(
        objects
            .into_iter()
            .filter_map(|o| {
                let (c, kind) = collection(&o)?;
                Some((c, format!("{kind} {}", o.name()), o))
            })
            .collect(),
    ))
}

/// The new owner: `to` read exactly, else the manager; `None` when neither.
///
/// # Errors
/// `InvalidInput` (fatal) when `to` names no user, or names the leaver.
async fn new_owner(client: &EntraClient, id: &str, to: Option<&str>) -> Result<Option<User>> {
    let Some(to) = to else {
        return client.manager(id).await;
    };
    let bad = |why: &str| Error::invalid_input(format!("params.to: {why}")).fatal();
    let user = client
        .get_user(to)
        .await
        .map_err(|e| {
            if e.kind() == ErrorKind::InvalidInput {
                bad("not a user id or UPN")
            } else {
                e
            }
        })?
        .filter(|u| u.id == to || u.user_principal_name.eq_ignore_ascii_case(to))
        .ok_or_else(|| bad("names no user"))?;
    if user.id == id {
        return Err(bad("names the leaver"));
    }
    Ok(Some(user))
}

fn upn(u: &User) -> &str {
    if u.user_principal_name.is_empty() {
        &u.id
    } else {
        &u.user_principal_name
    }
}

/// The task's error: what was done, then each object not handed over.
fn not_handed_over(done: String, kept: &[String]) -> Error {
    partly_done(&done, "handed over", kept)
}

pub(crate) async fn execute(
    client: &EntraClient,
    id: &str,
    params: &Params,
    dry_run: bool,
) -> Result<ExecuteReply> {
    let Some(objects) = owned(client, id).await? else {
        return Ok(gone(id));
    };
    if objects.is_empty() {
        return Ok(reply(
            Outcome::AlreadyDone,
            dry_run,
            "owns no group, app registration or enterprise app",
        ));
    }
    let labels: Vec<String> = objects.iter().map(|(_, l, _)| l.clone()).collect();
    let Some(to) = new_owner(client, id, params.to.as_deref()).await? else {
        let kept: Vec<String> = labels
            .iter()
            .map(|l| format!("{l} (no manager and no params.to to hand it to)"))
            .collect();
        return Err(not_handed_over(
            format!("user {id} owns {} objects", objects.len()),
            &kept,
        ));
    };
    let receiver = upn(&to).to_owned();
    if dry_run {
        return Ok(reply(
            Outcome::Done,
            true,
            format!(
                "would hand over {} objects ({}) to {receiver}",
                objects.len(),
                names(labels.iter().map(String::as_str))
            ),
        ));
    }
    let reference = json!({"@odata.id": client.graph.directory_object_url(&to.id)?});
    let mut handed = Vec::new();
    let mut kept = Vec::new();
    for (kind, label, o) in &objects {
        let owners = match client.owners(kind, &o.id).await {
            Ok(owners) => owners,
            Err(e) if e.is_retryable() => return Err(e),
            Err(e) => {
                kept.push(format!("{label} (reading its owners failed: {e})"));
                continue;
            }
        };
        if !owners.contains(&to.id) {
            let add =
                GraphRequest::post([*kind, o.id.as_str(), "owners", "$ref"], reference.clone());
            if let Err(e) = client.graph.send(&add).await {
                if e.is_retryable() {
                    return Err(e);
                }
                kept.push(format!("{label} (adding {receiver} as owner failed: {e})"));
                continue;
            }
        }
        let remove = GraphRequest::delete([*kind, o.id.as_str(), "owners", id, "$ref"]);
        match client.graph.send_gone_ok(&remove).await {
            Ok(_) => handed.push(label.clone()),
            Err(e) if e.is_retryable() => return Err(e),
            Err(e) => kept.push(format!(
                "{label} ({receiver} added, removing the leaver failed: {e})"
            )),
        }
    }
    let done = format!(
        "handed over {} objects ({}) to {receiver}",
        handed.len(),
        names(handed.iter().map(String::as_str))
    );
    if !kept.is_empty() {
        return Err(not_handed_over(done, &kept));
    }
    Ok(reply(Outcome::Done, false, done))
}

/// `None` when the user does not exist.
pub(crate) async fn snapshot(
    client: &EntraClient,
    id: &str,
    params: &Params,
) -> Result<Option<Data>> {
    let Some(objects) = owned(client, id).await? else {
        return Ok(None);
    };
    let new_owner = if objects.is_empty() {
        None
    } else {
        new_owner(client, id, params.to.as_deref())
            .await?
            .map(|u| u.id)
    };
    let mut out = Vec::new();
    for (kind, _, o) in objects {
        let new_owner_was_owner = match &new_owner {
            Some(n) => client.owners(kind, &o.id).await?.contains(n),
            None => false,
        };
        out.push(Owned {
            kind: kind.to_owned(),
            name: o.name().to_owned(),
            id: o.id,
            new_owner_was_owner,
        });
    }
    out.sort();
    Ok(Some(Data {
        new_owner,
        objects: out,
    }))
}

/// Re-adds the leaver as owner where it no longer is one, then removes the new owner where
/// the hand-over made it one.
pub(crate) async fn restore(client: &EntraClient, id: &str, data: &Data) -> Result<Outcome> {
    let leaver = json!({"@odata.id": client.graph.directory_object_url(id)?});
    let mut changed = false;
    let mut failed = Vec::new();
    for o in &data.objects {
        let kind = o.kind.as_str();
        if !matches!(kind, "groups" | "applications" | "servicePrincipals") {
            return Err(Error::invalid_input(format!(
                "the snapshot names an object of unknown kind {kind:?}"
            )));
        }
        let owners: BTreeSet<String> = match client.owners(kind, &o.id).await {
            Ok(owners) => owners,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                failed.push(format!("{} (no longer exists)", o.name));
                continue;
            }
            Err(e) => return Err(e),
        };
        if !owners.contains(id) {
            client
                .graph
                .send(&GraphRequest::post(
                    [kind, o.id.as_str(), "owners", "$ref"],
                    leaver.clone(),
                ))
                .await?;
            changed = true;
        }
        if let Some(n) = &data.new_owner
            && !o.new_owner_was_owner
            && owners.contains(n)
        {
            let remove = GraphRequest::delete([kind, o.id.as_str(), "owners", n.as_str(), "$ref"]);
            changed |= client.graph.send_gone_ok(&remove).await?;
        }
    }
    if !failed.is_empty() {
        return Err(Error::not_found(format!(
            "ownership not restored: {}",
            names(failed.iter().map(String::as_str))
        )));
    }
    Ok(if changed {
        Outcome::Done
    } else {
        Outcome::AlreadyDone
    })
}
