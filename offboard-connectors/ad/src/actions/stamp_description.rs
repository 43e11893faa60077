//! `ad.stamp_description`: `description` = `"offboarded <date> by <actor>, run <id>"`. The run id
//! comes from `ExecuteOptions::run` (or the idempotency key when there is no run); a
//! description already stamped for the same run is left as it is (`already_done`), even on a
//! later day.

use offboard_core::{ExecuteOptions, ExecuteReply, Outcome, Result};
use serde_json::json;

use crate::client::{Client, User};

use super::{data_str, predicted, set_single};

fn run_id(options: &ExecuteOptions) -> String {
    match &options.run {
        Some(run) => run.to_string(),
        None if !options.idempotency_key.is_empty() => options.idempotency_key.clone(),
        None => "unknown".into(),
    }
}

/// The stamp for today.
pub(crate) fn stamp(options: &ExecuteOptions) -> String {
    let actor = if options.actor.is_empty() {
        "offboard"
    } else {
        options.actor.as_str()
    };
    format!(
        "offboarded {} by {actor}, run {}",
        chrono::Utc::now().format("%Y-%m-%d"),
        run_id(options)
    )
}

fn already_stamped(current: Option<&str>, options: &ExecuteOptions) -> bool {
    current.is_some_and(|d| {
        d.starts_with("offboarded ") && d.ends_with(&format!(", run {}", run_id(options)))
    })
}

pub(crate) async fn execute(
    client: &Client,
    user: &User,
    options: &ExecuteOptions,
) -> Result<ExecuteReply> {
    let current = user.description.as_deref();
    let needed = !already_stamped(current, options);
    if options.dry_run || !needed {
        return Ok(predicted(needed));
    }
    let outcome = set_single(client, user, "description", current, Some(&stamp(options))).await?;
    Ok(ExecuteReply::new(outcome))
}

pub(crate) fn snapshot(user: &User) -> serde_json::Value {
    json!({ "description": user.description })
}

pub(crate) async fn restore(
    client: &Client,
    user: &User,
    data: &serde_json::Value,
) -> Result<Outcome> {
    let old = data_str(data, "description")?;
    set_single(
        client,
        user,
        "description",
        user.description.as_deref(),
        old.as_deref(),
    )
    .await
}
