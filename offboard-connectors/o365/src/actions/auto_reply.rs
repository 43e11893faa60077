//! `o365.set_auto_reply`: `GET`, then `PATCH /users/{id}/mailboxSettings` with
//! `automaticRepliesSetting` (`alwaysEnabled`, the configured message naming the manager);
//! rollback `PATCH`es the setting the snapshot recorded.
//!
//! Exchange keeps reply messages as HTML: the plain text written comes back wrapped in an
//! HTML document, escaped. The messages are therefore compared as the text they show, so a
//! repeat recognises the connector's own message (`already_done`, no `PATCH`).

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

/// The reply message fields, which Exchange stores as HTML.
const MESSAGES: [&str; 2] = ["internalReplyMessage", "externalReplyMessage"];

/// Whether every field of `wanted` holds in `current`; the messages compared as the text
/// they show ([`shown_text`]), since Exchange gives back plain text wrapped in HTML.
fn holds(current: &Value, wanted: &Value) -> bool {
    wanted.as_object().is_some_and(|w| {
        w.iter()
            .all(|(k, v)| match (v.as_str(), current[k].as_str()) {
                (Some(want), Some(have)) if MESSAGES.contains(&k.as_str()) => {
                    shown_text(have) == shown_text(want)
                }
                _ => &current[k] == v,
            })
    })
}

/// The text a reply message shows: for an HTML document (`<html…`), its tags removed (a
/// `<br>` or paragraph end as a line break) and its character references decoded; then
/// every run of white space as one space, trimmed. Plain text is only trimmed and spaced, so
/// `<` in it stays text.
fn shown_text(message: &str) -> String {
    let html = message
        .trim_start()
        .get(..5)
        .is_some_and(|p| p.eq_ignore_ascii_case("<html"));
    let text = if html {
        decode_entities(&strip_tags(message))
    } else {
        message.to_owned()
    };
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `html` without its tags (`<…>`), each tag a space so words stay apart.
fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match (in_tag, c) {
            (false, '<') => in_tag = true,
            (true, '>') => {
                in_tag = false;
                out.push(' ');
            }
            (false, c) => out.push(c),
            (true, _) => {}
        }
    }
    out
}

/// `text` with HTML character references decoded (named `amp`, `lt`, `gt`, `quot`, `apos`,
/// `nbsp`, and numeric ones); anything else is kept as written.
fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let decoded = tail.find(';').filter(|end| *end <= 10).and_then(|end| {
            let name = &tail[1..end];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some(' '),
                _ => name
                    .strip_prefix("#x")
                    .or_else(|| name.strip_prefix("#X"))
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, end + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &tail[len..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_messages_compare_as_the_text_they_show() {
        let html = "<html>\n<body>\n<p>Jane O&#39;Neil &amp; Sons has left.<br>\nWrite to \
                    &lt;boss@x.com&gt;&#x21;</p>\n</body>\n</html>\n";
        assert_eq!(
            shown_text(html),
            "Jane O'Neil & Sons has left. Write to <boss@x.com>!"
        );
        assert_eq!(
            shown_text("Jane O'Neil & Sons has left.\nWrite to <boss@x.com>!"),
            shown_text(html)
        );
        assert_eq!(shown_text(" a <b> c "), "a <b> c", "plain text keeps <");
        assert_eq!(
            decode_entities("&unknown; & &#xZZ; &lt"),
            "&unknown; & &#xZZ; &lt"
        );
        assert_eq!(shown_text(""), "");
    }
}
