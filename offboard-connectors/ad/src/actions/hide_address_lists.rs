//! `ad.hide_from_address_lists`: `msExchHideFromAddressLists` = TRUE. Offered only when the
//! directory's schema defines the attribute (the Exchange schema extension); the connector
//! checks the schema when it connects. Samba's schema does not have it.

use offboard_core::{ExecuteOptions, ExecuteReply, Outcome, Result};
use serde_json::json;

use crate::client::{Client, User};

use super::{data_str, predicted, set_single};

/// The attribute.
pub(crate) const ATTRIBUTE: &str = "msExchHideFromAddressLists";

fn hidden(user: &User) -> bool {
    user.hidden_from_address_lists
        .as_deref()
        .is_some_and(|v| v.eq_ignore_ascii_case("TRUE"))
}

pub(crate) async fn execute(
    client: &Client,
    user: &User,
    options: &ExecuteOptions,
) -> Result<ExecuteReply> {
    let needed = !hidden(user);
    if options.dry_run || !needed {
        return Ok(predicted(needed));
    }
    let outcome = set_single(
        client,
        user,
        ATTRIBUTE,
        user.hidden_from_address_lists.as_deref(),
        Some("TRUE"),
    )
    .await?;
    Ok(ExecuteReply::new(outcome))
}

pub(crate) fn snapshot(user: &User) -> serde_json::Value {
    json!({ "hidden": user.hidden_from_address_lists })
}

pub(crate) async fn restore(
    client: &Client,
    user: &User,
    data: &serde_json::Value,
) -> Result<Outcome> {
    let old = data_str(data, "hidden")?;
    set_single(
        client,
        user,
        ATTRIBUTE,
        user.hidden_from_address_lists.as_deref(),
        old.as_deref(),
    )
    .await
}
