//! The reversible removals, batched:
//! - `entra.remove_groups`: `GET /users/{id}/memberOf`, then
//!   `DELETE /groups/{g}/members/{id}/$ref` per assigned cloud group; rollback re-adds with
//!   `POST /groups/{g}/members/$ref`. Dynamic and AD-synced groups are reported in the detail:
//!   Entra manages their members (rule / AD). Mail-enabled security groups and distribution
//!   lists (Exchange Online manages their members; Graph answers 400) are not sent, and a
//!   role-assignable group Graph refuses (403: the app lacks
//!   `RoleManagement.ReadWrite.Directory`) is not counted: the task removes the rest, then
//!   fails with an `unsupported` error naming each group kept.
//! - `entra.remove_app_roles`: `GET /users/{id}/appRoleAssignments`, then
//!   `DELETE /users/{id}/appRoleAssignments/{a}`; rollback re-creates them with
//!   `POST /users/{id}/appRoleAssignments`.

use std::collections::BTreeSet;

use offboard_core::{Error, ErrorKind, ExecuteReply, Outcome, Result};
use offboard_http::GraphRequest;
use offboard_http::graph::BatchItem;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{gone, names, reply};
use crate::client::{DirectoryObject, EntraClient, found, user_path};

/// The snapshot of `entra.remove_groups`: the assigned cloud groups the user was in.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Groups {
    pub(crate) groups: BTreeSet<String>,
}

/// The snapshot of `entra.remove_app_roles`: (resource id, app role id) pairs.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct AppRoles {
    pub(crate) assignments: BTreeSet<(String, String)>,
}

/// The user's groups, by what Graph can do with their members.
struct Split {
    /// Groups whose members Graph changes (role-assignable ones only with
    /// `RoleManagement.ReadWrite.Directory`).
    changeable: Vec<DirectoryObject>,
    /// Dynamic and AD-synced groups, with why: Entra manages their members.
    managed: Vec<String>,
    /// Mail-enabled security groups and distribution lists, with what they are: Exchange
    /// Online manages their members, so the user keeps them until an admin acts.
    exchange: Vec<String>,
}

fn split(objects: Vec<DirectoryObject>) -> Split {
    let mut out = Split {
        changeable: Vec::new(),
        managed: Vec::new(),
        exchange: Vec::new(),
    };
    for o in objects.into_iter().filter(|o| o.is("group")) {
        if let Some(why) = o.unchangeable_reason() {
            out.managed.push(format!("{} ({why})", o.name()));
        } else if let Some(kind) = o.exchange_kind() {
            out.exchange.push(format!(
                "{} ({kind}: change its members in Exchange Online)",
                o.name()
            ));
        } else {
            out.changeable.push(o);
        }
    }
    out
}

fn skipped_note(skipped: &[String]) -> String {
    if skipped.is_empty() {
        String::new()
    } else {
        format!(
            "; left alone, Entra manages their members: {}",
            names(skipped.iter().map(String::as_str))
        )
    }
}

/// The error once Graph could not remove the user from `kept`: the task fails, naming them
/// after what `done` says was removed.
fn not_changeable(done: String, kept: &[String]) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        format!(
            "{done}; NOT removed, Graph cannot change the members of {} groups: {}",
            kept.len(),
            names(kept.iter().map(String::as_str))
        ),
    )
    .fatal()
}

pub(crate) async fn remove_groups(
    client: &EntraClient,
    id: &str,
    dry_run: bool,
) -> Result<ExecuteReply> {
    let Some(objects) = found(client.member_of(id).await)? else {
        return Ok(gone(id));
    };
    let Split {
        changeable: groups,
        managed,
        exchange: mut kept,
    } = split(objects);
    let note = skipped_note(&managed);
    if groups.is_empty() && kept.is_empty() {
        return Ok(reply(
            Outcome::AlreadyDone,
            dry_run,
            format!("in no assigned cloud group{note}"),
        ));
    }
    if groups.is_empty() {
        return Err(not_changeable(
            format!("in no group Graph can change{note}"),
            &kept,
        ));
    }
    let list = names(groups.iter().map(DirectoryObject::name));
    if dry_run {
        let done = format!("would remove from {} groups ({list}){note}", groups.len());
        if !kept.is_empty() {
            return Err(not_changeable(done, &kept));
        }
        return Ok(reply(Outcome::Done, true, done));
    }
    let items = groups
        .iter()
        .map(|g| {
            BatchItem::new(
                &g.id,
                GraphRequest::delete(["groups", &g.id, "members", id, "$ref"]),
            )
        })
        .collect();
    let replies = client.graph.batch(items).await?;
    let mut removed = 0;
    for (r, g) in replies.iter().zip(&groups) {
        match r.deleted() {
            Ok(true) => removed += 1,
            Ok(false) => {}
            Err(e) if e.kind() == ErrorKind::PermissionDenied && g.role_assignable() => {
                kept.push(format!(
                    "{} (role-assignable group: needs RoleManagement.ReadWrite.Directory)",
                    g.name()
                ));
            }
            Err(e) => return Err(e),
        }
    }
    let done = format!("removed from {removed} groups ({list}){note}");
    if !kept.is_empty() {
        return Err(not_changeable(done, &kept));
    }
    Ok(reply(Outcome::Done, false, done))
}

pub(crate) async fn snapshot_groups(client: &EntraClient, id: &str) -> Result<Option<Groups>> {
    Ok(found(client.member_of(id).await)?.map(|o| Groups {
        groups: split(o).changeable.into_iter().map(|g| g.id).collect(),
    }))
}

/// Re-adds the snapshot's groups the user is no longer in.
pub(crate) async fn restore_groups(
    client: &EntraClient,
    id: &str,
    data: &Groups,
) -> Result<Outcome> {
    let current: BTreeSet<String> = client
        .member_of(id)
        .await?
        .into_iter()
        .map(|o| o.id)
        .collect();
    let missing: Vec<&String> = data.groups.difference(&current).collect();
    if missing.is_empty() {
        return Ok(Outcome::AlreadyDone);
    }
    let member = client.graph.directory_object_url(id)?;
    let items = missing
        .iter()
        .map(|g| {
            BatchItem::new(
                g.as_str(),
                GraphRequest::post(
                    ["groups", g.as_str(), "members", "$ref"],
                    json!({"@odata.id": member}),
                ),
            )
        })
        .collect();
    client.batch_all(items).await?;
    Ok(Outcome::Done)
}

pub(crate) async fn remove_app_roles(
    client: &EntraClient,
    id: &str,
    dry_run: bool,
) -> Result<ExecuteReply> {
    let Some(assignments) = found(client.app_roles(id).await)? else {
        return Ok(gone(id));
    };
    if assignments.is_empty() {
        return Ok(reply(
            Outcome::AlreadyDone,
            dry_run,
            "no app role assignment",
        ));
    }
    let apps: BTreeSet<&str> = assignments
        .iter()
        .map(|a| a.resource_display_name.as_deref().unwrap_or(&a.resource_id))
        .collect();
    let list = names(apps);
    if dry_run {
        return Ok(reply(
            Outcome::Done,
            true,
            format!(
                "would remove {} app role assignments ({list})",
                assignments.len()
            ),
        ));
    }
    let items = assignments
        .iter()
        .map(|a| {
            BatchItem::new(
                &a.id,
                GraphRequest::delete(user_path(id, &["appRoleAssignments", &a.id])),
            )
        })
        .collect();
    let removed = client.batch_removals(items).await?;
    Ok(reply(
        Outcome::Done,
        false,
        format!("removed {removed} app role assignments ({list})"),
    ))
}

pub(crate) async fn snapshot_app_roles(client: &EntraClient, id: &str) -> Result<Option<AppRoles>> {
    Ok(found(client.app_roles(id).await)?.map(|a| AppRoles {
        assignments: a
            .into_iter()
            .map(|a| (a.resource_id, a.app_role_id))
            .collect(),
    }))
}

/// Re-creates the snapshot's assignments the user no longer has.
pub(crate) async fn restore_app_roles(
    client: &EntraClient,
    id: &str,
    data: &AppRoles,
) -> Result<Outcome> {
    let current: BTreeSet<(String, String)> = client
        .app_roles(id)
        .await?
        .into_iter()
        .map(|a| (a.resource_id, a.app_role_id))
        .collect();
    let missing: Vec<&(String, String)> = data.assignments.difference(&current).collect();
    if missing.is_empty() {
        return Ok(Outcome::AlreadyDone);
    }
    let items = missing
        .iter()
        .enumerate()
        .map(|(i, (resource, role))| {
            BatchItem::new(
                i.to_string(),
                GraphRequest::post(
                    user_path(id, &["appRoleAssignments"]),
                    json!({"principalId": id, "resourceId": resource, "appRoleId": role}),
                ),
            )
        })
        .collect();
    client.batch_all(items).await?;
    Ok(Outcome::Done)
}
