//! `o365.forward_to_manager`: an inbox rule (`POST /users/{id}/mailFolders/inbox/messageRules`)
//! forwarding every message to the manager. POST is not idempotent, so the rules are read first
//! and ours is found by its `displayName`; stale or duplicate rules of ours are deleted in one
//! `$batch`. Rollback deletes our rules and re-creates those the snapshot recorded.

use offboard_core::{ExecuteReply, Outcome, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Ctx, no_mailbox, reply, user_gone};
use crate::client::{MessageRule, Resource};

/// One rule of ours, as the snapshot records it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct Kept {
    /// `actions.forwardTo` addresses, lower-cased and sorted.
    forward_to: Vec<String>,
    /// `isEnabled`.
    enabled: bool,
}

/// What the snapshot records: the rules carrying our `displayName`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Data {
    rules: Vec<Kept>,
}

fn kept(rule: &MessageRule) -> Kept {
    let mut forward_to: Vec<String> = rule
        .forward_to()
        .into_iter()
        .map(str::to_ascii_lowercase)
        .collect();
    forward_to.sort();
    Kept {
        forward_to,
        enabled: rule.is_enabled,
    }
}

async fn ours(ctx: &Ctx<'_>, id: &str) -> Result<Vec<MessageRule>> {
    match ctx.client.rules(id).await? {
        Resource::Found(rules) => Ok(rules
            .into_iter()
            .filter(|r| r.display_name == ctx.texts.rule_name)
            .collect()),
        Resource::Missing => Err(no_mailbox(id)),
        Resource::UserGone => Err(user_gone(id)),
    }
}

fn rule_body(name: &str, kept: &Kept) -> serde_json::Value {
    let to: Vec<serde_json::Value> = kept
        .forward_to
        .iter()
        .map(|a| json!({"emailAddress": {"address": a}}))
        .collect();
    json!({
        "displayName": name,
        "sequence": 1,
        "isEnabled": kept.enabled,
        "actions": {"forwardTo": to, "stopProcessingRules": false},
    })
}

pub(crate) async fn execute(
    ctx: &Ctx<'_>,
    id: &str,
    to: &str,
    dry_run: bool,
) -> Result<ExecuteReply> {
    let wanted = Kept {
        forward_to: vec![to.to_ascii_lowercase()],
        enabled: true,
    };
    let rules = ours(ctx, id).await?;
    let keep = rules.iter().position(|r| kept(r) == wanted);
    let stale: Vec<String> = rules
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != keep)
        .map(|(_, r)| r.id.clone())
        .collect();
    if keep.is_some() && stale.is_empty() {
        return Ok(reply(
            Outcome::AlreadyDone,
            dry_run,
            format!("inbox rule already forwards to {to}"),
        ));
    }
    if !dry_run && !stale.is_empty() {
        ctx.client.delete_rules(id, &stale).await?;
    }
    if !dry_run && keep.is_none() {
        ctx.client
            .create_rule(id, rule_body(&ctx.texts.rule_name, &wanted))
            .await?;
    }
    let mut detail = match keep {
        Some(_) => format!("inbox rule already forwards to {to}"),
        None => format!("inbox rule \"{}\" forwards to {to}", ctx.texts.rule_name),
    };
    if !stale.is_empty() {
        detail.push_str(&format!("; deleted {} stale rule(s) of ours", stale.len()));
    }
    Ok(reply(Outcome::Done, dry_run, detail))
}

pub(crate) async fn snapshot(ctx: &Ctx<'_>, id: &str) -> Result<Data> {
    let mut rules: Vec<Kept> = ours(ctx, id).await?.iter().map(kept).collect();
    rules.sort();
    Ok(Data { rules })
}

/// Deletes our rules unless they are what the snapshot recorded, then re-creates those.
pub(crate) async fn restore(ctx: &Ctx<'_>, id: &str, data: &Data) -> Result<Outcome> {
    let rules = ours(ctx, id).await?;
    let mut now: Vec<Kept> = rules.iter().map(kept).collect();
    now.sort();
    if now == data.rules {
        return Ok(Outcome::AlreadyDone);
    }
    let ids: Vec<String> = rules.into_iter().map(|r| r.id).collect();
    if !ids.is_empty() {
        ctx.client.delete_rules(id, &ids).await?;
    }
    for k in &data.rules {
        ctx.client
            .create_rule(id, rule_body(&ctx.texts.rule_name, k))
            .await?;
    }
    Ok(Outcome::Done)
}
