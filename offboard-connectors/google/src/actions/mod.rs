//! The actions the Google connector offers, one file each.
//!
//! Every action reads state first, so a repeat reports `AlreadyDone`, a dry run predicts
//! truthfully and a user who no longer exists reports `NotFound` (delete: `AlreadyDone`).

pub(crate) mod delete;
pub(crate) mod delete_asps;
pub(crate) mod hide_from_gal;
pub(crate) mod invalidate_backup_codes;
pub(crate) mod move_to_ou;
pub(crate) mod remove_from_groups;
pub(crate) mod remove_licenses;
pub(crate) mod reset_password;
pub(crate) mod revoke_tokens;
pub(crate) mod sign_out;
pub(crate) mod suspend;
pub(crate) mod transfer_data;
pub(crate) mod wipe_devices;

use offboard_core::{ActionName, ActionSpec, ExecuteReply, Outcome};

/// An action of the connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    InvalidateBackupCodes,
    DeleteAsps,
    RevokeTokens,
    SignOut,
    Suspend,
    MoveToOu,
    HideFromGal,
    RemoveFromGroups,
    ResetPassword,
    TransferData,
    WipeDevices,
    RemoveLicenses,
    Delete,
}

impl Verb {
    pub(crate) const ALL: [Verb; 13] = [
        Verb::InvalidateBackupCodes,
        Verb::DeleteAsps,
        Verb::RevokeTokens,
        Verb::SignOut,
        Verb::Suspend,
        Verb::MoveToOu,
        Verb::HideFromGal,
        Verb::RemoveFromGroups,
        Verb::ResetPassword,
        Verb::TransferData,
        Verb::WipeDevices,
        Verb::RemoveLicenses,
        Verb::Delete,
    ];

    pub(crate) fn name(self) -> ActionName {
        ActionName::from_static(match self {
            Verb::InvalidateBackupCodes => "google.invalidate_backup_codes",
            Verb::DeleteAsps => "google.delete_asps",
            Verb::RevokeTokens => "google.revoke_tokens",
            Verb::SignOut => "google.sign_out",
            Verb::Suspend => "google.suspend",
            Verb::MoveToOu => "google.move_to_ou",
            Verb::HideFromGal => "google.hide_from_gal",
            Verb::RemoveFromGroups => "google.remove_from_groups",
            Verb::ResetPassword => "google.reset_password",
            Verb::TransferData => "google.transfer_data",
            Verb::WipeDevices => "google.wipe_devices",
            Verb::RemoveLicenses => "google.remove_licenses",
            Verb::Delete => "google.delete",
        })
    }

    /// The actions a connector offers: every one, `google.remove_licenses` only with licences
    /// to revoke.
    pub(crate) fn offered(licences: bool) -> Vec<Verb> {
        Self::ALL
            .into_iter()
            .filter(|v| *v != Verb::RemoveLicenses || licences)
            .collect()
    }

    pub(crate) fn parse(name: &ActionName) -> Option<Self> {
        Self::ALL.into_iter().find(|v| &v.name() == name)
    }

    pub(crate) fn reversible(self) -> bool {
        matches!(
            self,
            Verb::Suspend
                | Verb::MoveToOu
                | Verb::HideFromGal
                | Verb::RemoveFromGroups
                | Verb::RemoveLicenses
        )
    }

    pub(crate) fn spec(self) -> ActionSpec {
        let s = ActionSpec::new(self.name(), self.description());
        match self {
            // No `after`: a failed hygiene step must never skip the suspension. Google keeps
            // the backup codes of a suspended user, so suspension invalidates them first itself.
            Verb::Suspend
            | Verb::MoveToOu
            | Verb::HideFromGal
            | Verb::RemoveFromGroups
            | Verb::RemoveLicenses => s.reversible(),
            // The data must be gone to the manager while the account exists.
            Verb::TransferData => s.needs_account(),
            // Irreversible: the work account's data leaves the device for good.
            Verb::WipeDevices => s.critical(),
            // Google: transfer data before deleting the user.
            Verb::Delete => s.critical().after(Verb::TransferData.name()),
            _ => s,
        }
    }

    fn description(self) -> &'static str {
        match self {
            Verb::InvalidateBackupCodes => "Invalidate the user's 2-Step Verification backup codes",
            Verb::DeleteAsps => "Delete every app-specific password",
            Verb::RevokeTokens => "Revoke every OAuth token the user granted a third-party app",
            Verb::SignOut => "Sign the user out of every web and device session",
            Verb::Suspend => "Suspend the user: sign-in is blocked; data and groups are kept",
            Verb::MoveToOu => "Move the user to another org unit (params: {\"ou\": \"/Path\"})",
            Verb::HideFromGal => "Hide the user from the global address list",
            Verb::RemoveFromGroups => "Remove the user from every group (roles kept for rollback)",
            Verb::ResetPassword => {
                "Set a random password nobody knows and require a change at next sign-in"
            }
            Verb::TransferData => {
                "Transfer Drive and Calendar data to the manager (params: {\"to\": \"addr\"})"
            }
            Verb::WipeDevices => "Wipe the work account from every mobile device of the user",
            Verb::RemoveLicenses => "Revoke the configured Google Workspace licences",
            Verb::Delete => "Delete the user (Google allows undelete for about 20 days)",
        }
    }
}

/// A reply, its detail marked as a prediction on a dry run.
pub(crate) fn reply(outcome: Outcome, dry_run: bool, detail: impl Into<String>) -> ExecuteReply {
    ExecuteReply::predicted(outcome, dry_run, detail)
}

/// The reply for a user who no longer exists.
pub(crate) fn gone(id: &str) -> ExecuteReply {
    ExecuteReply::user_gone(id)
}
