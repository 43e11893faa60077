//! `okta.remove_admin_roles`: `GET /api/v1/users/{userId}/roles`, then
//! `DELETE /api/v1/users/{userId}/roles/{roleAssignmentId}` for each of the user's own
//! (`assignmentType: USER`) assignments. Roles held through a group (`GROUP`) cannot be
//! removed through the user: they are reported in the detail (the group membership, see
//! `okta.remove_groups`, or the group's role is what to change) and never counted as removed.

use offboard_core::{ErrorKind, ExecuteReply, Outcome, Result};

use super::{gone, reply};
use crate::client::{OktaClient, Role, gone_ok};

fn held_note(held: &[Role]) -> String {
    if held.is_empty() {
        return String::new();
    }
    let roles: Vec<String> = held
        .iter()
        .map(|r| format!("{} through {}", r.kind, r.holder()))
        .collect();
    format!("; not removable through the user: {}", roles.join(", "))
}

pub(crate) async fn execute(client: &OktaClient, id: &str, dry_run: bool) -> Result<ExecuteReply> {
    let roles = match client.list_roles(id).await {
        Ok(r) => r,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(gone(id)),
        Err(e) => return Err(e),
    };
    let (own, held): (Vec<Role>, Vec<Role>) = roles.into_iter().partition(Role::is_direct);
    let note = held_note(&held);
    if own.is_empty() {
        return Ok(reply(
            Outcome::AlreadyDone,
            dry_run,
            format!("no admin roles of its own{note}"),
        ));
    }
    if !dry_run {
        for r in &own {
            gone_ok(client.remove_role(id, &r.id).await)?;
        }
    }
    let kinds: Vec<&str> = own.iter().map(|r| r.kind.as_str()).collect();
    Ok(reply(
        Outcome::Done,
        dry_run,
        format!(
            "{} admin roles removed ({}){note}",
            own.len(),
            kinds.join(", ")
        ),
    ))
}
