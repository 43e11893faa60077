//! The Exchange-admin actions, through the host's [`ExchangeAdmin`] hook (Graph v1.0 has no
//! operation for them): `o365.convert_to_shared`, `o365.mailbox_forwarding`,
//! `o365.hide_from_gal`. Each reads the user through Graph (existence, UPN) and the mailbox
//! through the hook first.

use offboard_core::{Error, ExecuteReply, Outcome, Result};
use serde::{Deserialize, Serialize};

use super::{Ctx, NO_EXCHANGE, gone, no_mailbox, reply, user_gone};
use crate::exchange::{ExchangeAdmin, Forwarding, MailboxRef, MailboxState, MailboxType};

/// Parameters of `o365.mailbox_forwarding`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ForwardParams {
    /// Overrides the manager.
    #[serde(default)]
    pub(crate) to: Option<String>,
    /// Keep a copy in the mailbox (default true).
    #[serde(default = "yes")]
    pub(crate) keep_copy: bool,
}

impl Default for ForwardParams {
    fn default() -> Self {
        Self {
            to: None,
            keep_copy: true,
        }
    }
}

fn yes() -> bool {
    true
}

/// What the snapshots of `o365.mailbox_forwarding` and `o365.hide_from_gal` record.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Data {
    forwarding: Option<Forwarding>,
    hidden: bool,
}

/// The hook, the mailbox's address and its state; `None` when the user does not exist.
async fn read<'a>(
    ctx: &Ctx<'a>,
    id: &str,
) -> Result<Option<(&'a dyn ExchangeAdmin, MailboxRef, Option<MailboxState>)>> {
    let admin = ctx
        .exchange
        .ok_or_else(|| Error::unsupported(format!("this action {NO_EXCHANGE}")))?;
    let Some(user) = ctx.client.get_user(id).await? else {
        return Ok(None);
    };
    let mailbox = MailboxRef::new(user.id, user.user_principal_name);
    let state = admin.mailbox(&mailbox).await?;
    Ok(Some((admin, mailbox, state)))
}

pub(crate) async fn convert_to_shared(
    ctx: &Ctx<'_>,
    id: &str,
    dry_run: bool,
) -> Result<ExecuteReply> {
    let (admin, mailbox, state) = read(ctx, id).await?.ok_or_else(|| user_gone(id))?;
    let state = state.ok_or_else(|| no_mailbox(id))?;
    match state.mailbox_type {
        MailboxType::Shared => Ok(reply(
            Outcome::AlreadyDone,
            dry_run,
            "already a shared mailbox",
        )),
        MailboxType::User => {
            if !dry_run {
                admin.convert_to_shared(&mailbox).await?;
            }
            Ok(reply(
                Outcome::Done,
                dry_run,
                format!("mailbox of {} converted to shared", mailbox.upn),
            ))
        }
        MailboxType::Other(kind) => Err(Error::invalid_input(format!(
            "the mailbox of {} is a {kind} mailbox; only user mailboxes are converted",
            mailbox.upn
        ))
        .fatal()),
    }
}

pub(crate) async fn mailbox_forwarding(
    ctx: &Ctx<'_>,
    id: &str,
    to: &str,
    keep_copy: bool,
    dry_run: bool,
) -> Result<ExecuteReply> {
    let (admin, mailbox, state) = read(ctx, id).await?.ok_or_else(|| user_gone(id))?;
    let state = state.ok_or_else(|| no_mailbox(id))?;
    let holds = state
        .forwarding
        .as_ref()
        .is_some_and(|f| f.address.eq_ignore_ascii_case(to) && f.keep_copy == keep_copy);
    if holds {
        return Ok(reply(
            Outcome::AlreadyDone,
            dry_run,
            format!("mailbox already forwards to {to}"),
        ));
    }
    if !dry_run {
        let wanted = Forwarding {
            address: to.to_owned(),
            keep_copy,
        };
        admin.set_forwarding(&mailbox, Some(&wanted)).await?;
    }
    Ok(reply(
        Outcome::Done,
        dry_run,
        format!("mailbox forwards to {to} (copy kept: {keep_copy})"),
    ))
}

pub(crate) async fn hide_from_gal(ctx: &Ctx<'_>, id: &str, dry_run: bool) -> Result<ExecuteReply> {
    let Some((admin, mailbox, state)) = read(ctx, id).await? else {
        return Ok(gone(id));
    };
    let Some(state) = state else {
        return Ok(reply(
            Outcome::AlreadyDone,
            dry_run,
            "no Exchange mailbox; nothing listed",
        ));
    };
    if state.hidden_from_address_lists {
        return Ok(reply(
            Outcome::AlreadyDone,
            dry_run,
            "already hidden from the address lists",
        ));
    }
    if !dry_run {
        admin.set_hidden_from_address_lists(&mailbox, true).await?;
    }
    Ok(reply(
        Outcome::Done,
        dry_run,
        "hidden from the address lists",
    ))
}

pub(crate) async fn snapshot(ctx: &Ctx<'_>, id: &str) -> Result<Data> {
    let (_, _, state) = read(ctx, id).await?.ok_or_else(|| user_gone(id))?;
    let state = state.ok_or_else(|| no_mailbox(id))?;
    Ok(Data {
        forwarding: state.forwarding,
        hidden: state.hidden_from_address_lists,
    })
}

/// Sets back forwarding (`forwarding`) or visibility (`!forwarding`) as recorded.
pub(crate) async fn restore(
    ctx: &Ctx<'_>,
    id: &str,
    data: &Data,
    forwarding: bool,
) -> Result<Outcome> {
    let (admin, mailbox, state) = read(ctx, id).await?.ok_or_else(|| user_gone(id))?;
    let state = state.ok_or_else(|| no_mailbox(id))?;
    if forwarding {
        if state.forwarding == data.forwarding {
            return Ok(Outcome::AlreadyDone);
        }
        admin
            .set_forwarding(&mailbox, data.forwarding.as_ref())
            .await?;
    } else {
        if state.hidden_from_address_lists == data.hidden {
            return Ok(Outcome::AlreadyDone);
        }
        admin
            .set_hidden_from_address_lists(&mailbox, data.hidden)
            .await?;
    }
    Ok(Outcome::Done)
}
