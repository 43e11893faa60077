//! `google.remove_from_groups`: `GET admin/directory/v1/groups?userKey={id}` (all pages), then
//! `DELETE …/groups/{groupKey}/members/{memberKey}` for each (404: not a member, done).
//! The snapshot records each group with the user's role (`members.get`); rollback re-adds the
//! missing ones with `POST …/groups/{groupKey}/members` `{email, role}` (409: already a
//! member).

use std::collections::BTreeSet;

use offboard_core::{ExecuteReply, Outcome, Result};
use serde::{Deserialize, Serialize};

use super::{gone, reply};
use crate::client::{GoogleClient, User, found, gone_ok};

/// One membership.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct Membership {
    /// The group's id (its key).
    pub(crate) group: String,
    /// The group's email, for the report.
    pub(crate) email: String,
    /// `MEMBER`, `MANAGER` or `OWNER`.
    pub(crate) role: String,
}

/// What the snapshot records: the memberships.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Data {
    pub(crate) groups: Vec<Membership>,
}

pub(crate) async fn execute(
    client: &GoogleClient,
    id: &str,
    dry_run: bool,
) -> Result<ExecuteReply> {
    let Some(groups) = found(client.list_groups(id).await)? else {
        return Ok(gone(id));
    };
    if groups.is_empty() {
        return Ok(reply(Outcome::AlreadyDone, dry_run, "in no group"));
    }
    let mut removed = 0;
    for g in &groups {
        if dry_run || gone_ok(client.delete_member(&g.id, id).await)? {
            removed += 1;
        }
    }
    let names: Vec<&str> = groups.iter().map(|g| g.email.as_str()).collect();
    Ok(reply(
        Outcome::Done,
        dry_run,
        format!("removed from {removed} groups ({})", names.join(", ")),
    ))
}

/// `None` when the user does not exist.
pub(crate) async fn snapshot(client: &GoogleClient, id: &str) -> Result<Option<Data>> {
    let Some(groups) = found(client.list_groups(id).await)? else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for g in groups {
        // Left the group between the two reads: not a membership to restore.
        if let Some(m) = client.get_member(&g.id, id).await? {
            out.push(Membership {
                group: g.id,
                email: g.email,
                role: m.role,
            });
        }
    }
    out.sort();
    Ok(Some(Data { groups: out }))
}

/// Re-adds the snapshot's memberships the user no longer has, with their roles; nothing else.
pub(crate) async fn restore(client: &GoogleClient, user: &User, data: &Data) -> Result<Outcome> {
    let current: BTreeSet<String> = client
        .list_groups(&user.id)
        .await?
        .into_iter()
        .map(|g| g.id)
        .collect();
    let mut added = 0;
    for m in data.groups.iter().filter(|m| !current.contains(&m.group)) {
        let role = if m.role.is_empty() { "MEMBER" } else { &m.role };
        if client
            .insert_member(&m.group, &user.primary_email, role)
            .await?
        {
            added += 1;
        }
    }
    Ok(if added > 0 {
        Outcome::Done
    } else {
        Outcome::AlreadyDone
    })
}
