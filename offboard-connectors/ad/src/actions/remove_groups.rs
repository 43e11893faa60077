//! `ad.remove_groups`: removes the user from every group in `memberOf`. AD does not list the
//! primary group (`primaryGroupID`, normally Domain Users) in `memberOf`, and it cannot be
//! removed while it is primary, so it stays. Groups the service account may not change are
//! reported in a `PermissionDenied` error after every other group was handled, so a retry
//! (after the rights are fixed) finishes the job.

use offboard_core::{Error, ErrorKind, ExecuteOptions, ExecuteReply, Outcome, Result};
use serde_json::json;

use crate::client::{Client, User, add_values, delete_values};
use crate::error::rc;

use super::predicted;

pub(crate) async fn execute(
    client: &Client,
    user: &User,
    options: &ExecuteOptions,
) -> Result<ExecuteReply> {
    if options.dry_run || user.member_of.is_empty() {
        return Ok(predicted(!user.member_of.is_empty()));
    }
    let mut removed = 0usize;
    let mut denied = Vec::new();
    let mut refused = Vec::new();
    for group in &user.member_of {
        let written = client
            .modify(
                group,
                vec![delete_values("member", [user.dn.clone().into_bytes()])],
            )
            .await?;
        match written {
            Ok(()) => removed += 1,
            // 32: the group was deleted: nothing to remove.
            Err(e) if e.rc() == Some(rc::NO_SUCH_OBJECT) => {}
            // 16 (no such value, AD) and 53 (Samba) answer a removal of a non-member; but 53
            // (unwilling to perform) is also AD refusing the change: re-read below.
            Err(e)
                if matches!(
                    e.rc(),
                    Some(rc::UNWILLING_TO_PERFORM | rc::NO_SUCH_ATTRIBUTE)
                ) =>
            {
                refused.push((group.clone(), e.rc().unwrap_or_default()));
            }
            Err(e) if e.rc() == Some(rc::INSUFFICIENT_ACCESS) => denied.push(group.clone()),
            Err(e) => return Err(Error::from(e).with_context("group", group)),
        }
    }
    if !refused.is_empty() {
        let now = client.user_by_guid(&user.guid).await?;
        let still: Vec<String> = refused
            .iter()
            .filter(|(g, _)| {
                now.as_ref()
                    .is_some_and(|u| u.member_of.iter().any(|m| m.eq_ignore_ascii_case(g)))
            })
            .map(|(g, code)| format!("{g} (LDAP {code})"))
            .collect();
        if !still.is_empty() {
            return Err(Error::new(
                ErrorKind::Vendor,
                format!(
                    "removed {removed} membership(s), but the directory refused to remove {} \
                     group(s) and the user is still a member: {}",
                    still.len(),
                    still.join("; ")
                ),
            ));
        }
    }
    if !denied.is_empty() {
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "removed {removed} membership(s), but the service account may not change {} \
                 group(s): {}",
                denied.len(),
                denied.join("; ")
            ),
        ));
    }
    let outcome = if removed > 0 {
        Outcome::Done
    } else {
        Outcome::AlreadyDone
    };
    Ok(ExecuteReply::with_detail(
        outcome,
        format!("removed {removed} group membership(s); the primary group stays"),
    ))
}

pub(crate) fn snapshot(user: &User) -> serde_json::Value {
    let mut groups = user.member_of.clone();
    groups.sort_by_key(|g| g.to_ascii_lowercase());
    json!({ "groups": groups })
}

/// Re-adds every group of the snapshot (68, already a member, counts as done).
pub(crate) async fn restore(
    client: &Client,
    user: &User,
    data: &serde_json::Value,
) -> Result<Outcome> {
    let groups: Vec<String> = data
        .get("groups")
        .and_then(|g| serde_json::from_value(g.clone()).ok())
        .ok_or_else(|| Error::invalid_input("ad.remove_groups snapshot has no groups list"))?;
    let mut added = 0usize;
    for group in &groups {
        if user.member_of.iter().any(|m| crate::dn::same(m, group)) {
            continue;
        }
        match client
            .modify(
                group,
                vec![add_values("member", [user.dn.clone().into_bytes()])],
            )
            .await?
        {
            Ok(()) => added += 1,
            Err(e)
                if matches!(
                    e.rc(),
                    Some(rc::ENTRY_ALREADY_EXISTS | rc::ATTRIBUTE_OR_VALUE_EXISTS)
                ) => {}
            Err(e) => return Err(Error::from(e).with_context("group", group)),
        }
    }
    Ok(if added > 0 {
        Outcome::Done
    } else {
        Outcome::AlreadyDone
    })
}
