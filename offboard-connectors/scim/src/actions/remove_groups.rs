//! `<app>.remove_groups`: the groups whose `members` hold the user (from the user's `groups`
//! attribute, or `GET /Groups?filter=members[value eq "<id>"]` when the provider does not return
//! it; a listed group whose `members` do not hold the user is skipped, so a provider that
//! ignores the filter cannot widen the removal), then `PATCH /Groups/{g}` with `{"op":"remove","path":"members[value eq \"<id>\"]"}` for
//! each. Rollback adds the snapshot's groups back with
//! `{"op":"add","path":"members","value":[{"value":"<id>"}]}`.

use std::collections::BTreeSet;

use offboard_core::{Error, ExecuteReply, Outcome, Result};
use serde::{Deserialize, Serialize};

use super::deactivate::Write;
use super::{gone, reply};
use crate::client::{ScimClient, User, gone_ok, is_precondition_failed};
use crate::filter::quoted;
use crate::profile::DeactivateMethod;

/// What the snapshot records: the ids of the groups the user was in.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Data {
    pub(crate) groups: BTreeSet<String>,
}

/// The user's groups as (id, name).
pub(crate) async fn groups_of(client: &ScimClient, user: &User) -> Result<Vec<(String, String)>> {
    if let Some(g) = &user.groups {
        return Ok(g.clone());
    }
    let filter = format!("members[value eq {}]", quoted(&user.id)?);
    Ok(client
        .find_groups(&filter)
        .await?
        .into_iter()
        .filter(|g| g.may_hold(&user.id))
        .map(|g| (g.id, g.display_name))
        .collect())
}

/// Adds or removes `user` in `group`: PATCH where the provider has it, else `GET` + `PUT` of
/// the group with its `members` changed (`If-Match` when ETags are in use; a 412 reads again,
/// once). `false` when the group is gone.
async fn change_member(
    client: &ScimClient,
    group: &str,
    user: &str,
    add: bool,
    write: Write,
) -> Result<bool> {
    if write.method != DeactivateMethod::Put {
        let result = if add {
            client.add_member(group, user).await
        } else {
            client.remove_member(group, user).await
        };
        return gone_ok(result);
    }
    let mut retried = false;
    loop {
        let Some((mut body, etag)) = client.get_group(group).await? else {
            return Ok(false);
        };
        let mut members: Vec<serde_json::Value> = body["members"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m["value"].as_str() != Some(user))
            .collect();
        if add {
            members.push(serde_json::json!({"value": user}));
        }
        body["members"] = serde_json::Value::Array(members);
        let tag = etag.as_deref().filter(|_| write.etag);
        match client.put_group(group, body, tag).await {
            Ok(()) => return Ok(true),
            Err(e) if is_precondition_failed(&e) && !retried => retried = true,
            Err(e) => return gone_ok(Err(e)),
        }
    }
}

pub(crate) async fn execute(
    client: &ScimClient,
    id: &str,
    dry_run: bool,
    write: Write,
) -> Result<ExecuteReply> {
    let Some(user) = client.get_user(id).await? else {
        return Ok(gone(id));
    };
    let groups = groups_of(client, &user).await?;
    if groups.is_empty() {
        return Ok(reply(Outcome::AlreadyDone, dry_run, "in no group"));
    }
    let mut removed = 0;
    for (g, _) in &groups {
        if dry_run || change_member(client, g, id, false, write).await? {
            removed += 1;
        }
    }
    let names: Vec<&str> = groups.iter().map(|(_, n)| n.as_str()).collect();
    Ok(reply(
        Outcome::Done,
        dry_run,
        format!("removed from {removed} groups ({})", names.join(", ")),
    ))
}

pub(crate) async fn snapshot(client: &ScimClient, id: &str) -> Result<Option<Data>> {
    let Some(user) = client.get_user(id).await? else {
        return Ok(None);
    };
    Ok(Some(Data {
        groups: groups_of(client, &user)
            .await?
            .into_iter()
            .map(|(g, _)| g)
            .collect(),
    }))
}

/// Re-adds the snapshot's groups the user is no longer in; nothing else.
pub(crate) async fn restore(
    client: &ScimClient,
    id: &str,
    data: &Data,
    write: Write,
) -> Result<Outcome> {
    let Some(user) = client.get_user(id).await? else {
        return Err(Error::not_found(format!("user {id} does not exist")));
    };
    let current: BTreeSet<String> = groups_of(client, &user)
        .await?
        .into_iter()
        .map(|(g, _)| g)
        .collect();
    let missing: Vec<&String> = data.groups.difference(&current).collect();
    if missing.is_empty() {
        return Ok(Outcome::AlreadyDone);
    }
    for g in missing {
        change_member(client, g, id, true, write).await?;
    }
    Ok(Outcome::Done)
}
