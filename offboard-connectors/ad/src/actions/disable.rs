//! `ad.disable`: `userAccountControl |= ACCOUNTDISABLE`, read-modify-write preserving every
//! other bit. The write deletes the value read and adds the new one in one modify, so a
//! concurrent change makes it fail (a retryable conflict) instead of being overwritten.

use offboard_core::{ExecuteOptions, ExecuteReply, Outcome, Result};
use serde_json::json;

use crate::client::{ACCOUNTDISABLE, Client, User, add_values, delete_values};

use super::{finish, predicted};

pub(crate) async fn execute(
    client: &Client,
    user: &User,
    options: &ExecuteOptions,
) -> Result<ExecuteReply> {
    if options.dry_run || user.disabled() {
        return Ok(predicted(!user.disabled()));
    }
    let outcome = set_disabled_bit(client, user, true).await?;
    Ok(ExecuteReply::new(outcome))
}

/// Sets or clears the disable bit with a compare-and-swap modify.
async fn set_disabled_bit(client: &Client, user: &User, disabled: bool) -> Result<Outcome> {
    let new = if disabled {
        user.uac | ACCOUNTDISABLE
    } else {
        user.uac & !ACCOUNTDISABLE
    };
    if new == user.uac {
        return Ok(Outcome::AlreadyDone);
    }
    let mods = vec![
        delete_values("userAccountControl", [user.uac.to_string().into_bytes()]),
        add_values("userAccountControl", [new.to_string().into_bytes()]),
    ];
    finish(client.modify(&user.dn, mods).await?, Outcome::Done)
}

pub(crate) fn snapshot(user: &User) -> serde_json::Value {
    json!({ "user_account_control": user.uac, "disabled": user.disabled() })
}

/// Restores only the disable bit as it was; other bits changed since are left alone.
pub(crate) async fn restore(
    client: &Client,
    user: &User,
    data: &serde_json::Value,
) -> Result<Outcome> {
    let was_disabled = match data.get("disabled").and_then(|v| v.as_bool()) {
        Some(d) => d,
        None => {
            let uac = data
                .get("user_account_control")
                .and_then(|v| v.as_u64())
                .ok_or_else(|| {
                    offboard_core::Error::invalid_input(
                        "ad.disable snapshot has no user_account_control",
                    )
                })?;
            uac as u32 & ACCOUNTDISABLE != 0
        }
    };
    set_disabled_bit(client, user, was_disabled).await
}
