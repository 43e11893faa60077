//! `ad.clear_manager`: removes `manager` (so the user drops out of the manager's direct
//! reports). Restore writes the recorded manager DN back.

use offboard_core::{ExecuteOptions, ExecuteReply, Outcome, Result};
use serde_json::json;

use crate::client::{Client, User};

use super::{data_str, predicted, set_single};

pub(crate) async fn execute(
    client: &Client,
    user: &User,
    options: &ExecuteOptions,
) -> Result<ExecuteReply> {
    let needed = user.manager.is_some();
    if options.dry_run || !needed {
        return Ok(predicted(needed));
    }
    let outcome = set_single(client, user, "manager", user.manager.as_deref(), None).await?;
    Ok(ExecuteReply::new(outcome))
}

pub(crate) fn snapshot(user: &User) -> serde_json::Value {
    json!({ "manager": user.manager })
}

pub(crate) async fn restore(
    client: &Client,
    user: &User,
    data: &serde_json::Value,
) -> Result<Outcome> {
    let old = data_str(data, "manager")?;
    let same = match (&user.manager, &old) {
        (Some(a), Some(b)) => crate::dn::same(a, b),
        (None, None) => true,
        _ => false,
    };
    if same {
        return Ok(Outcome::AlreadyDone);
    }
    set_single(
        client,
        user,
        "manager",
        user.manager.as_deref(),
        old.as_deref(),
    )
    .await
}
