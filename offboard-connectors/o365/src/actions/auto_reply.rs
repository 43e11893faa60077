//! `o365.set_auto_reply`: `GET`, then `PATCH /users/{id}/mailboxSettings` with
//! `automaticRepliesSetting` (`alwaysEnabled`, the configured message naming the manager);
//! rollback `PATCH`es the setting the snapshot recorded.

use offboard_core::{Error, ExecuteReply, Outcome, Person, Result};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Ctx, no_mailbox, reply, user_gone};
use crate::client::Resource;

/// The fields of `automaticRepliesSetting` a snapshot keeps and a restore writes back.
const FIELDS: [&str; 6] = [
    "status",
    "externalAudience",
    "internalReplyMessage",
    "externalReplyMessage",
    "scheduledStartDateTime",
    "scheduledEndDateTime",
];

/// Parameters of `o365.set_auto_reply`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Params {
    /// The reply, instead of the configured one (placeholders `{name}`, `{manager}`).
    #[serde(default)]
    message: Option<String>,
    /// `all` (default), `contactsOnly` or `none`.
    #[serde(default)]
    external_audience: Option<String>,
}

/// The setting the action writes.
fn wanted(ctx: &Ctx<'_>, person: Option<&Person>, params: &Params) -> Result<Value> {
    let manager = person.and_then(|p| p.manager.as_ref()).map(|m| &m.email);
    let name = person
        .map(|p| {
            if p.display_name.is_empty() {
                p.email.clone()
            } else {
                p.display_name.clone()
            }
        })
        .unwrap_or_default();
    let template = match (&params.message, manager) {
        (Some(m), _) => m.as_str(),
        (None, Some(_)) => ctx.texts.auto_reply.as_str(),
        (None, None) => ctx.texts.auto_reply_no_manager.as_str(),
    };
    if template.contains("{manager}") && manager.is_none() {
        return Err(Error::invalid_input(
            "the automatic reply names {manager}, but the person has no manager",
        )
        .fatal());
    }
    let message = template
        .replace("{name}", &name)
        .replace("{manager}", manager.map_or("", String::as_str));
    let audience = params.external_audience.as_deref().unwrap_or("all");
    if !matches!(audience, "all" | "contactsOnly" | "none") {
        return Err(Error::invalid_input(format!(
            "external_audience {audience:?} is not all, contactsOnly or none"
        ))
        .fatal());
    }
    Ok(json!({
        "status": "alwaysEnabled",
        "externalAudience": audience,
        "internalReplyMessage": message,
        "externalReplyMessage": message,
    }))
}

/// Whether every field of `wanted` holds in `current`.
fn holds(current: &Value, wanted: &Value) -> bool {
    wanted
        .as_object()
        .is_some_and(|w| w.iter().all(|(k, v)| &current[k] == v))
}

async fn read(ctx: &Ctx<'_>, id: &str) -> Result<Value> {
    match ctx.client.auto_reply(id).await? {
        Resource::Found(v) => Ok(v),
        Resource::Missing => Err(no_mailbox(id)),
        Resource::UserGone => Err(user_gone(id)),
    }
}

pub(crate) async fn execute(
    ctx: &Ctx<'_>,
    id: &str,
    person: Option<&Person>,
    params: &Params,
    dry_run: bool,
) -> Result<ExecuteReply> {
    let wanted = wanted(ctx, person, params)?;
    let current = read(ctx, id).await?;
    if holds(&current, &wanted) {
        return Ok(reply(
            Outcome::AlreadyDone,
            dry_run,
            "automatic replies already on with this message",
        ));
    }
    let was = current["status"].as_str().unwrap_or("unknown").to_owned();
    if !dry_run {
        ctx.client.set_auto_reply(id, wanted).await?;
    }
    Ok(reply(
        Outcome::Done,
        dry_run,
        format!("automatic replies turned on (were {was})"),
    ))
}

/// The snapshot: the current `automaticRepliesSetting` (its writable fields).
pub(crate) async fn snapshot(ctx: &Ctx<'_>, id: &str) -> Result<Value> {
    let current = read(ctx, id).await?;
    let kept: serde_json::Map<String, Value> = FIELDS
        .iter()
        .filter_map(|f| current.get(*f).map(|v| ((*f).to_owned(), v.clone())))
        .collect();
    Ok(json!({ "automaticRepliesSetting": kept }))
}

/// Writes the recorded setting back unless it holds.
pub(crate) async fn restore(ctx: &Ctx<'_>, id: &str, data: &Value) -> Result<Outcome> {
    let setting = &data["automaticRepliesSetting"];
    if !setting.is_object() {
        return Err(Error::invalid_input(
            "snapshot of o365.set_auto_reply has no automaticRepliesSetting",
        )
        .fatal());
    }
    let current = read(ctx, id).await?;
    if holds(&current, setting) {
        return Ok(Outcome::AlreadyDone);
    }
    ctx.client.set_auto_reply(id, setting.clone()).await?;
    Ok(Outcome::Done)
}
