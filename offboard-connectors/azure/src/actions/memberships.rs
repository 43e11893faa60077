//! The reversible removals, batched:
//! - `entra.remove_groups`: `GET /users/{id}/memberOf`, then
//!   `DELETE /groups/{g}/members/{id}/$ref` per assigned cloud group; rollback re-adds with
//!   `POST /groups/{g}/members/$ref`. Dynamic and AD-synced groups are reported in the detail:
//!   Entra manages their members (rule / AD).
//! - `entra.remove_app_roles`: `GET /users/{id}/appRoleAssignments`, then
//!   `DELETE /users/{id}/appRoleAssignments/{a}`; rollback re-creates them with
//!   `POST /users/{id}/appRoleAssignments`.

use std::collections::BTreeSet;

use offboard_core::{ExecuteReply, Outcome, Result};
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

/// The user's groups: (changeable, skipped with why).
fn split(objects: Vec<DirectoryObject>) -> (Vec<DirectoryObject>, Vec<String>) {
    let mut changeable = Vec::new();
    let mut skipped = Vec::new();
    for o in objects.into_iter().filter(|o| o.is("group")) {
        match o.unchangeable_reason() {
            Some(why) => skipped.push(format!("{} ({why})", o.name())),
            None => changeable.push(o),
        }
    }
    (changeable, skipped)
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

pub(crate) async fn remove_groups(
    client: &EntraClient,
    id: &str,
    dry_run: bool,
) -> Result<ExecuteReply> {
    let Some(objects) = found(client.member_of(id).await)? else {
        return Ok(gone(id));
    };
    let (groups, skipped) = split(objects);
    let note = skipped_note(&skipped);
    if groups.is_empty() {
        return Ok(reply(
            Outcome::AlreadyDone,
            dry_run,
            format!("in no assigned cloud group{note}"),
        ));
    }
    let list = names(groups.iter().map(DirectoryObject::name));
    if dry_run {
        return Ok(reply(
            Outcome::Done,
            true,
            format!("would remove from {} groups ({list}){note}", groups.len()),
        ));
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
    let removed = client.batch_removals(items).await?;
    Ok(reply(
        Outcome::Done,
        false,
        format!("removed from {removed} groups ({list}){note}"),
    ))
}

pub(crate) async fn snapshot_groups(client: &EntraClient, id: &str) -> Result<Option<Groups>> {
    Ok(found(client.member_of(id).await)?.map(|o| Groups {
        groups: split(o).0.into_iter().map(|g| g.id).collect(),
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
    let member = format!("https://graph.microsoft.com/v1.0/directoryObjects/{id}");
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
