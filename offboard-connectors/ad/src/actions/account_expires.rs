//! `ad.set_account_expires`: `accountExpires` = now (a FILETIME: 100 ns intervals since
//! 1601-01-01 UTC). An account that already expired is left alone (`already_done`); 0 and
//! 0x7FFFFFFFFFFFFFFF both mean "never".

use offboard_core::{ExecuteOptions, ExecuteReply, Outcome, Result};
use serde_json::json;

use crate::client::{Client, User};

use super::{data_str, predicted, set_single};

const NEVER: i64 = i64::MAX;
/// Seconds from 1601-01-01 to 1970-01-01.
const EPOCH_DIFF_SECS: i64 = 11_644_473_600;

/// Now as a FILETIME.
pub(crate) fn filetime_now() -> i64 {
    let now = chrono::Utc::now();
    (now.timestamp() + EPOCH_DIFF_SECS) * 10_000_000 + i64::from(now.timestamp_subsec_nanos() / 100)
}

fn expired(value: Option<&str>) -> bool {
    match value.and_then(|v| v.trim().parse::<i64>().ok()) {
        Some(0) | Some(NEVER) | None => false,
        Some(t) => t <= filetime_now(),
    }
}

pub(crate) async fn execute(
    client: &Client,
    user: &User,
    options: &ExecuteOptions,
) -> Result<ExecuteReply> {
    let needed = !expired(user.account_expires.as_deref());
    if options.dry_run || !needed {
        return Ok(predicted(needed));
    }
    let now = filetime_now().to_string();
    let outcome = set_single(
        client,
        user,
        "accountExpires",
        user.account_expires.as_deref(),
        Some(&now),
    )
    .await?;
    Ok(ExecuteReply::new(outcome))
}

pub(crate) fn snapshot(user: &User) -> serde_json::Value {
    json!({ "account_expires": user.account_expires })
}

pub(crate) async fn restore(
    client: &Client,
    user: &User,
    data: &serde_json::Value,
) -> Result<Outcome> {
    let old = data_str(data, "account_expires")?;
    // AD keeps accountExpires on every user; restore "never" rather than deleting it.
    let old = old.unwrap_or_else(|| NEVER.to_string());
    set_single(
        client,
        user,
        "accountExpires",
        user.account_expires.as_deref(),
        Some(&old),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_and_future_are_not_expired() {
        assert!(!expired(Some("0")));
        assert!(!expired(Some("9223372036854775807")));
        assert!(!expired(None));
        assert!(!expired(Some(
            &(filetime_now() + 10_000_000_000).to_string()
        )));
        assert!(expired(Some(&(filetime_now() - 1).to_string())));
    }
}
