//! The actions the Office 365 connector offers, one file per workload.
//!
//! Every action reads state first, so a repeat reports `AlreadyDone`, a dry run predicts
//! truthfully, and a user who no longer exists is `NotFound` (an outcome for removals, an
//! error for hand-overs, which need the account).

pub(crate) mod auto_reply;
pub(crate) mod exchange;
pub(crate) mod forward_rule;
pub(crate) mod licenses;
pub(crate) mod meetings;
pub(crate) mod onedrive;
pub(crate) mod teams;

use offboard_core::{
    ActionName, ActionSpec, Error, ErrorKind, ExecuteReply, Outcome, Person, Result,
};
use serde::Deserialize;

use crate::client::O365Client;
use crate::config::Texts;
use crate::exchange::ExchangeAdmin;

/// What an action works with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub(crate) client: &'a O365Client,
    pub(crate) texts: &'a Texts,
    pub(crate) exchange: Option<&'a dyn ExchangeAdmin>,
}

/// An action of the connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    SetAutoReply,
    ForwardToManager,
    OnedriveToManager,
    ConvertToShared,
    MailboxForwarding,
    HideFromGal,
    RemoveTeams,
    CancelMeetings,
    RemoveLicenses,
}

impl Verb {
    pub(crate) const ALL: [Verb; 9] = [
        Verb::SetAutoReply,
        Verb::ForwardToManager,
        Verb::OnedriveToManager,
        Verb::ConvertToShared,
        Verb::MailboxForwarding,
        Verb::HideFromGal,
        Verb::RemoveTeams,
        Verb::CancelMeetings,
        Verb::RemoveLicenses,
    ];

    pub(crate) fn name(self) -> ActionName {
        ActionName::from_static(match self {
            Verb::SetAutoReply => "o365.set_auto_reply",
            Verb::ForwardToManager => "o365.forward_to_manager",
            Verb::OnedriveToManager => "o365.onedrive_to_manager",
            Verb::ConvertToShared => "o365.convert_to_shared",
            Verb::MailboxForwarding => "o365.mailbox_forwarding",
            Verb::HideFromGal => "o365.hide_from_gal",
            Verb::RemoveTeams => "o365.remove_teams",
            Verb::CancelMeetings => "o365.cancel_meetings",
            Verb::RemoveLicenses => "o365.remove_licenses",
        })
    }

    pub(crate) fn parse(name: &ActionName) -> Option<Self> {
        Self::ALL.into_iter().find(|v| &v.name() == name)
    }

    /// Runs through the Exchange admin hook (not Graph).
    pub(crate) fn needs_exchange(self) -> bool {
        matches!(
            self,
            Verb::ConvertToShared | Verb::MailboxForwarding | Verb::HideFromGal
        )
    }

    pub(crate) fn reversible(self) -> bool {
        !matches!(
            self,
            Verb::OnedriveToManager | Verb::ConvertToShared | Verb::CancelMeetings
        )
    }

    pub(crate) fn spec(self) -> ActionSpec {
        let mut s = ActionSpec::new(self.name(), self.description());
        if self.reversible() {
            s = s.reversible();
        }
        match self {
            Verb::HideFromGal | Verb::CancelMeetings => s,
            // A team's membership is its Microsoft 365 group's: what entra.remove_groups
            // removed is gone from joinedTeams, and the hand-over gives owned teams another
            // owner (the last owner cannot leave).
            Verb::RemoveTeams => s.after(ENTRA_REMOVE_GROUPS).after(ENTRA_HAND_OVER),
            // Removing the Exchange licence starts mailbox deprovisioning and ends OneDrive
            // access for the user: every mailbox and OneDrive hand-over runs first.
            Verb::RemoveLicenses => Verb::ALL
                .into_iter()
                .filter(|v| *v != Verb::RemoveLicenses)
                .fold(s, |s, v| s.after(v.name())),
            _ => s.needs_account(),
        }
    }

    fn description(self) -> &'static str {
        match self {
            Verb::SetAutoReply => {
                "Turn on automatic replies naming the manager (previous setting restored on rollback)"
            }
            Verb::ForwardToManager => {
                "Forward incoming mail to the manager with an inbox rule (deleted on rollback)"
            }
            Verb::OnedriveToManager => {
                "Give the manager write access to the person's OneDrive (root folder)"
            }
            Verb::ConvertToShared => {
                "Convert the mailbox to a shared mailbox, so it survives licence removal (Exchange admin)"
            }
            Verb::MailboxForwarding => {
                "Set mailbox-level forwarding (ForwardingSmtpAddress) to the manager (Exchange admin)"
            }
            Verb::HideFromGal => "Hide the mailbox from the address lists (Exchange admin)",
            Verb::RemoveTeams => {
                "Remove the person from every team they are a member or owner of (after entra.remove_groups, whose Microsoft 365 group removals take teams along); the last owner of a team cannot leave and fails the task by name"
            }
            Verb::CancelMeetings => {
                "Cancel the future meetings the person organises, with a message (params.message) to the attendees, so rooms and people are freed; meetings they only attend are untouched"
            }
            Verb::RemoveLicenses => {
                "Remove every directly assigned licence; group-inherited ones are reported"
            }
        }
    }
}

/// `entra.remove_groups`, which `o365.remove_teams` waits for when both are planned.
const ENTRA_REMOVE_GROUPS: ActionName = ActionName::from_static("entra.remove_groups");
/// `entra.hand_over_owned`, which `o365.remove_teams` waits for when both are planned.
const ENTRA_HAND_OVER: ActionName = ActionName::from_static("entra.hand_over_owned");

/// Why the Exchange-admin actions are not offered without the hook.
pub(crate) const NO_EXCHANGE: &str = "needs the Exchange Online admin hook \
    (O365Config::with_exchange_admin): Graph v1.0 has no operation for it";

/// A reply, its detail marked as a prediction on a dry run.
pub(crate) fn reply(outcome: Outcome, dry_run: bool, detail: impl Into<String>) -> ExecuteReply {
    ExecuteReply::predicted(outcome, dry_run, detail)
}

/// The error for a user who no longer exists, for actions that need the account.
pub(crate) fn user_gone(id: &str) -> Error {
    Error::not_found(format!("user {id} does not exist"))
}

/// The reply for a user who no longer exists, for removals.
pub(crate) fn gone(id: &str) -> ExecuteReply {
    ExecuteReply::user_gone(id)
}

/// The error for a user without an Exchange Online mailbox.
pub(crate) fn no_mailbox(id: &str) -> Error {
    Error::new(
        ErrorKind::Vendor,
        format!("user {id} has no Exchange Online mailbox (unlicensed, or hosted on-premises)"),
    )
    .fatal()
}

/// Parameters naming who receives mail or files: `to`, else the person's manager.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Recipient {
    /// Overrides the manager.
    #[serde(default)]
    pub(crate) to: Option<String>,
}

/// The address that receives: `to` if given, else the person's manager.
///
/// # Errors
/// `InvalidInput` without either, or for an address that is not one or is longer than
/// [`offboard_http::graph::MAX_IDENTIFIER_LEN`] bytes (not echoed).
pub(crate) fn recipient(to: Option<&str>, person: Option<&Person>) -> Result<String> {
    let address = match to {
        Some(t) => t.to_owned(),
        None => person
            .and_then(|p| p.manager.as_ref())
            .map(|m| m.email.clone())
            .ok_or_else(|| {
                Error::invalid_input(
                    "the person has no manager; give params.to to name who receives",
                )
                .fatal()
            })?,
    };
    offboard_http::graph::check_length(&address, "a recipient address")?;
    let bad = address.chars().any(|c| c.is_control() || c.is_whitespace())
        || address.split('@').count() != 2
        || address.starts_with('@')
        || address.ends_with('@');
    if bad {
        return Err(Error::invalid_input(format!("{address:?} is not an email address")).fatal());
    }
    Ok(address)
}
