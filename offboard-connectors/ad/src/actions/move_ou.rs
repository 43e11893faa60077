//! `ad.move_to_disabled_ou`: ModifyDN with newSuperior = the configured disabled-users OU. The
//! OU must exist: a missing OU is a configuration error, never created.

use offboard_core::{Error, ErrorKind, ExecuteOptions, ExecuteReply, Outcome, Result};
use serde_json::json;

use crate::client::{Client, User};
use crate::config::AdConfigKey;
use crate::dn;
use crate::error::rc;

use super::{data_str, finish, predicted};

pub(crate) async fn execute(
    client: &Client,
    user: &User,
    options: &ExecuteOptions,
) -> Result<ExecuteReply> {
    let target = client.config().disabled_ou().to_owned();
    let there = dn::same(dn::parent(&user.dn), &target);
    if !there && client.read(&target, &["objectClass"]).await?.is_none() {
        return Err(Error::config(
            AdConfigKey::DisabledOu.as_str(),
            format!("the disabled-users OU {target} does not exist (it is never created)"),
        ));
    }
    if options.dry_run || there {
        return Ok(predicted(!there));
    }
    Ok(ExecuteReply::new(move_to(client, user, &target).await?))
}

async fn move_to(client: &Client, user: &User, parent: &str) -> Result<Outcome> {
    if dn::same(dn::parent(&user.dn), parent) {
        return Ok(Outcome::AlreadyDone);
    }
    let written = client
        .modify_dn(&user.dn, dn::rdn(&user.dn), parent)
        .await?;
    if let Err(e) = &written
        && e.rc() == Some(rc::ENTRY_ALREADY_EXISTS)
    {
        return Err(Error::new(
            ErrorKind::Conflict,
            format!(
                "an entry named {} already exists in {parent}",
                dn::rdn(&user.dn)
            ),
        )
        .fatal());
    }
    finish(written, Outcome::Done)
}

pub(crate) fn snapshot(user: &User) -> serde_json::Value {
    json!({ "parent": dn::parent(&user.dn) })
}

/// Moves the user back to the parent recorded in the snapshot.
pub(crate) async fn restore(
    client: &Client,
    user: &User,
    data: &serde_json::Value,
) -> Result<Outcome> {
    let parent = data_str(data, "parent")?
        .ok_or_else(|| Error::invalid_input("ad.move_to_disabled_ou snapshot has no parent"))?;
    move_to(client, user, &parent).await
}
