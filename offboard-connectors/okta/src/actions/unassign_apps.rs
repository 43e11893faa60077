//! `okta.unassign_apps`: `GET /api/v1/users/{id}/appLinks`, `GET /api/v1/apps/{appId}/users/{userId}`
//! for each app, then `DELETE /api/v1/apps/{appId}/users/{userId}?sendEmail=false` for the
//! `USER`-scoped ones. `GROUP`-scoped assignments follow group membership
//! (`okta.remove_groups`) and are reported in the detail.

use std::collections::BTreeMap;

use offboard_core::{ErrorKind, ExecuteReply, Outcome, Result};

use super::{gone, reply};
use crate::client::{OktaClient, gone_ok};

pub(crate) async fn execute(client: &OktaClient, id: &str, dry_run: bool) -> Result<ExecuteReply> {
    let links = match client.list_app_links(id).await {
        Ok(l) => l,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(gone(id)),
        Err(e) => return Err(e),
    };
    let apps: BTreeMap<String, String> = links
        .into_iter()
        .map(|l| {
            let name = if l.label.is_empty() {
                l.app_name
            } else {
                l.label
            };
            (l.app_instance_id, name)
        })
        .collect();
    let mut direct = Vec::new();
    let mut through_groups = Vec::new();
    for (app, label) in &apps {
        match client.get_app_user(app, id).await? {
            Some(u) if u.scope == "USER" => direct.push((app, label)),
            Some(_) => through_groups.push(label.as_str()),
            None => {}
        }
    }
    let note = if through_groups.is_empty() {
        String::new()
    } else {
        format!(
            "; assigned through groups (see okta.remove_groups): {}",
            through_groups.join(", ")
        )
    };
    if direct.is_empty() {
        return Ok(reply(
            Outcome::AlreadyDone,
            dry_run,
            format!("no directly assigned app{note}"),
        ));
    }
    if !dry_run {
        for (app, _) in &direct {
            gone_ok(client.unassign_app(app, id).await)?;
        }
    }
    let labels: Vec<&str> = direct.iter().map(|(_, l)| l.as_str()).collect();
    Ok(reply(
        Outcome::Done,
        dry_run,
        format!(
            "{} apps unassigned ({}){note}",
            direct.len(),
            labels.join(", ")
        ),
    ))
}
