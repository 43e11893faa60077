//! `google.wipe_devices`: `GET admin/directory/v1/customer/my_customer/devices/mobile?query=
//! email:'<primary address>'` (every page), then `POST …/devices/mobile/{resourceId}/action`
//! `{"action": "admin_account_wipe"}` for each of the user's devices not yet wiped.
//!
//! Only devices whose `email` list holds one of the user's own addresses exactly are touched
//! (Google's search matches words, so the answer may hold other people's devices). A device
//! whose `status` is `ACCOUNT_WIPING`, `ACCOUNT_WIPED`, `WIPING` or `WIPED` is already done.
//! `admin_account_wipe` removes the work account and its data from the device, not the
//! person's own data; it cannot be undone, so the action is critical.

use offboard_core::{ExecuteReply, Outcome, Result};

use super::{gone, reply};
use crate::client::{Device, GoogleClient, User, found};

/// `status` values that mean a wipe is requested or done.
const WIPED: [&str; 4] = ["ACCOUNT_WIPING", "ACCOUNT_WIPED", "WIPING", "WIPED"];

/// The action sent: the work account only.
pub(crate) const ACTION: &str = "admin_account_wipe";

fn wiped(d: &Device) -> bool {
    WIPED.iter().any(|w| d.status.eq_ignore_ascii_case(w))
}

/// The user's devices (exact address match), split into (not wiped, wiped).
pub(crate) async fn devices(client: &GoogleClient, user: &User) -> Result<(Vec<Device>, usize)> {
    let all = client.list_devices(&user.primary_email).await?;
    let (done, left): (Vec<Device>, Vec<Device>) = all
        .into_iter()
        .filter(|d| d.email.iter().any(|e| user.has_address(e)))
        .partition(wiped);
    Ok((left, done.len()))
}

pub(crate) async fn execute(
    client: &GoogleClient,
    id: &str,
    dry_run: bool,
) -> Result<ExecuteReply> {
    let Some(user) = client.get_user(id).await? else {
        return Ok(gone(id));
    };
    let (left, done) = devices(client, &user).await?;
    if left.is_empty() {
        return Ok(reply(
            Outcome::AlreadyDone,
            dry_run,
            match done {
                0 => "no mobile devices".to_owned(),
                n => format!("{n} mobile devices already wiped"),
            },
        ));
    }
    let mut wiped = Vec::new();
    for d in &left {
        // A device removed meanwhile holds nothing to wipe.
        if dry_run || found(client.device_action(&d.resource_id, ACTION).await)?.is_some() {
            wiped.push(format!("{} ({})", d.model, d.resource_id));
        }
    }
    Ok(reply(
        Outcome::Done,
        dry_run,
        format!(
            "work account wipe requested on {} mobile devices: {}",
            wiped.len(),
            wiped.join(", ")
        ),
    ))
}
