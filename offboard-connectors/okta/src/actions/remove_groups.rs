//! `okta.remove_groups`: `GET /api/v1/users/{id}/groups`, then
//! `DELETE /api/v1/groups/{groupId}/users/{userId}` for each `OKTA_GROUP`; rollback with `PUT`.
//! `APP_GROUP` (directory-mastered) and `BUILT_IN` (`Everyone`) memberships cannot be changed
//! in Okta: they are reported in the reply's detail.

use std::collections::BTreeSet;

use offboard_core::{ErrorKind, ExecuteReply, Outcome, Result};
use serde::{Deserialize, Serialize};

use super::{gone, reply};
use crate::client::{Group, OktaClient, gone_ok};

/// What the snapshot records: the `OKTA_GROUP` ids the user was in.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Data {
    pub(crate) groups: BTreeSet<String>,
}

fn split(groups: Vec<Group>) -> (Vec<Group>, Vec<Group>) {
    groups.into_iter().partition(|g| g.kind == "OKTA_GROUP")
}

fn skipped_note(skipped: &[Group]) -> String {
    if skipped.is_empty() {
        return String::new();
    }
    let names: Vec<String> = skipped
        .iter()
        .map(|g| format!("{} ({})", g.profile.name, g.kind))
        .collect();
    format!("; not changeable in Okta: {}", names.join(", "))
}

pub(crate) async fn execute(client: &OktaClient, id: &str, dry_run: bool) -> Result<ExecuteReply> {
    let groups = match client.list_groups(id).await {
        Ok(g) => g,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(gone(id)),
        Err(e) => return Err(e),
    };
    let (okta, skipped) = split(groups);
    let note = skipped_note(&skipped);
    if okta.is_empty() {
        return Ok(reply(
            Outcome::AlreadyDone,
            dry_run,
            format!("in no OKTA_GROUP{note}"),
        ));
    }
    let mut removed = 0;
    for g in &okta {
        if dry_run || gone_ok(client.group_membership(&g.id, id, false).await)? {
            removed += 1;
        }
    }
    let names: Vec<&str> = okta.iter().map(|g| g.profile.name.as_str()).collect();
    Ok(reply(
        Outcome::Done,
        dry_run,
        format!("removed from {removed} groups ({}){note}", names.join(", ")),
    ))
}

pub(crate) async fn snapshot(client: &OktaClient, id: &str) -> Result<Option<Data>> {
    match client.list_groups(id).await {
        Ok(g) => Ok(Some(Data {
            groups: split(g).0.into_iter().map(|g| g.id).collect(),
        })),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Re-adds the snapshot's groups the user is no longer in; nothing else.
pub(crate) async fn restore(client: &OktaClient, id: &str, data: &Data) -> Result<Outcome> {
    let current: BTreeSet<String> = client
        .list_groups(id)
        .await?
        .into_iter()
        .map(|g| g.id)
        .collect();
    let missing: Vec<&String> = data.groups.difference(&current).collect();
    if missing.is_empty() {
        return Ok(Outcome::AlreadyDone);
    }
    for g in missing {
        client.group_membership(g, id, true).await?;
    }
    Ok(Outcome::Done)
}
