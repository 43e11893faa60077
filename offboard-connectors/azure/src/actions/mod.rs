//! The actions the Entra connector offers, one file each (or one per kind of access).
//!
//! Every action reads state first, so a repeat reports `AlreadyDone`, a dry run predicts
//! truthfully and a user who no longer exists reports `NotFound`. Removals of several objects
//! go through `$batch` (20 per call).

pub(crate) mod access_packages;
pub(crate) mod delete;
pub(crate) mod devices;
pub(crate) mod disable;
pub(crate) mod immutable_id;
pub(crate) mod manager;
pub(crate) mod memberships;
pub(crate) mod owned;
pub(crate) mod removals;
pub(crate) mod roles;
pub(crate) mod sessions;
pub(crate) mod workflow;

use offboard_core::{ActionName, ActionSpec, ExecuteReply, Outcome};

/// `ad.disable`, which Entra's disable waits for when both are planned.
pub(crate) const AD_DISABLE: ActionName = ActionName::from_static("ad.disable");

/// An action of the connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    DisableSignIn,
    RevokeSessions,
    RemoveGroups,
    RemoveAppRoles,
    RemoveGrants,
    RemoveAuthMethods,
    RemoveDirectoryRoles,
    HandOverOwned,
    ClearManager,
    ClearImmutableId,
    DisableDevices,
    IntuneWipe,
    IntuneRetire,
    RemoveAccessPackages,
    RunLifecycleWorkflow,
    Delete,
}

impl Verb {
    pub(crate) const ALL: [Verb; 16] = [
        Verb::DisableSignIn,
        Verb::RevokeSessions,
        Verb::RemoveGroups,
        Verb::RemoveAppRoles,
        Verb::RemoveGrants,
        Verb::RemoveAuthMethods,
        Verb::RemoveDirectoryRoles,
        Verb::HandOverOwned,
        Verb::ClearManager,
        Verb::ClearImmutableId,
        Verb::DisableDevices,
        Verb::IntuneRetire,
        Verb::IntuneWipe,
        Verb::RemoveAccessPackages,
        Verb::RunLifecycleWorkflow,
        Verb::Delete,
    ];

    pub(crate) fn name(self) -> ActionName {
        ActionName::from_static(match self {
            Verb::DisableSignIn => "entra.disable_sign_in",
            Verb::RevokeSessions => "entra.revoke_sessions",
            Verb::RemoveGroups => "entra.remove_groups",
            Verb::RemoveAppRoles => "entra.remove_app_roles",
            Verb::RemoveGrants => "entra.remove_grants",
            Verb::RemoveAuthMethods => "entra.remove_auth_methods",
            Verb::RemoveDirectoryRoles => "entra.remove_directory_roles",
            Verb::HandOverOwned => "entra.hand_over_owned",
            Verb::ClearManager => "entra.clear_manager",
            Verb::ClearImmutableId => "entra.clear_immutable_id",
            Verb::DisableDevices => "entra.disable_devices",
            // Action names must start with the connector's app (`entra`): Intune's device
            // actions are Graph calls on the Entra user, so they live here.
            Verb::IntuneWipe => "entra.intune_wipe",
            Verb::IntuneRetire => "entra.intune_retire",
            Verb::RemoveAccessPackages => "entra.remove_access_packages",
            Verb::RunLifecycleWorkflow => "entra.run_lifecycle_workflow",
            Verb::Delete => "entra.delete",
        })
    }

    pub(crate) fn parse(name: &ActionName) -> Option<Self> {
        Self::ALL.into_iter().find(|v| &v.name() == name)
    }

    pub(crate) fn reversible(self) -> bool {
        matches!(
            self,
            Verb::DisableSignIn
                | Verb::RemoveGroups
                | Verb::RemoveAppRoles
                | Verb::RemoveDirectoryRoles
                | Verb::HandOverOwned
                | Verb::ClearManager
                | Verb::ClearImmutableId
                | Verb::DisableDevices
                | Verb::RemoveAccessPackages
                | Verb::Delete
        )
    }

    pub(crate) fn spec(self) -> ActionSpec {
        let s = ActionSpec::new(self.name(), self.description());
        match self {
            // Synced users are disabled in AD; Entra then only verifies.
            Verb::DisableSignIn => s.reversible().after(AD_DISABLE),
            // No `after`: a revocation runs even when disabling sign-in failed (a synced user
            // is revoked again after the sync, see `sessions`).
            // No `after`: nothing unrelated may block the hand-over (entra.delete waits for it).
            Verb::RemoveGroups
            | Verb::RemoveAppRoles
            | Verb::RemoveDirectoryRoles
            | Verb::HandOverOwned => s.reversible(),
            // The hand-over reads the manager this clears.
            Verb::ClearManager => s.reversible().after(Verb::HandOverOwned.name()),
            Verb::ClearImmutableId | Verb::DisableDevices | Verb::RemoveAccessPackages => {
                s.reversible()
            }
            // A wipe or retire cannot be undone; a workflow runs the tenant's own tasks (they
            // may delete the user).
            Verb::IntuneWipe | Verb::IntuneRetire | Verb::RunLifecycleWorkflow => s.critical(),
            // The device reads and the workflow need the user.
            Verb::Delete => s
                .reversible()
                .critical()
                .after(Verb::DisableSignIn.name())
                .after(Verb::RevokeSessions.name())
                .after(Verb::HandOverOwned.name())
                .after(Verb::DisableDevices.name())
                .after(Verb::IntuneWipe.name())
                .after(Verb::IntuneRetire.name())
                .after(Verb::RemoveAccessPackages.name())
                .after(Verb::RunLifecycleWorkflow.name()),
            _ => s,
        }
    }

    fn description(self) -> &'static str {
        match self {
            Verb::DisableSignIn => {
                "Block sign-in (accountEnabled=false); for users synced from AD, verify after ad.disable and the next Entra Connect sync"
            }
            Verb::RevokeSessions => {
                "Revoke every refresh token and session cookie (revokeSignInSessions)"
            }
            Verb::RemoveGroups => {
                "Remove every assigned cloud group membership (dynamic and AD-synced groups are reported, not changed; mail-enabled security groups, distribution lists and role-assignable groups Graph cannot change fail the task by name)"
            }
            Verb::RemoveAppRoles => "Remove every app role assignment (enterprise app access)",
            Verb::RemoveGrants => {
                "Remove the delegated permission grants the user consented to (Principal; tenant-wide grants are kept)"
            }
            Verb::RemoveAuthMethods => {
                "Remove every deletable authentication method (phone, Authenticator, FIDO2, OATH, email, Windows Hello, TAP)"
            }
            Verb::RemoveDirectoryRoles => {
                "Remove every directory role held directly: active role assignments at any scope (tenant-wide or an administrative unit), PIM eligibilities (adminRemove, so none can be activated later) and legacy role memberships; roles held through role-assignable groups are reported (entra.remove_groups removes that membership); rollback re-creates them"
            }
            Verb::HandOverOwned => {
                "Hand owned groups, app registrations and enterprise apps to the manager (or params.to): the new owner is added first, then the leaver removed; objects not handed over fail the task by name"
            }
            Verb::ClearManager => {
                "Clear the manager link (rollback sets it again); users synced from AD fail naming ad.clear_manager"
            }
            Verb::ClearImmutableId => {
                "Clear onPremisesImmutableId of a user converted to cloud-only (only when named in a policy; users still synced from AD are refused: it is their hard-match anchor)"
            }
            Verb::DisableDevices => {
                "Disable the Entra devices the user owns or registered (accountEnabled=false; rollback re-enables); non-Windows devices app-only Graph cannot disable fail the task by name"
            }
            Verb::IntuneWipe => {
                "Wipe (factory reset) every Intune managed device whose primary user is exactly this user; cannot be undone"
            }
            Verb::IntuneRetire => {
                "Retire every Intune managed device whose primary user is exactly this user (company data and management removed); cannot be undone"
            }
            Verb::RemoveAccessPackages => {
                "Remove the access package assignments (entitlement management adminRemove requests, processed asynchronously; an assignment whose removal is under way counts as handled); open requests that would grant a package cannot be cancelled app-only and fail the task by name"
            }
            Verb::RunLifecycleWorkflow => {
                "Run the tenant's own Entra Lifecycle Workflow named in params.workflow (a leaver workflow, by id or exact display name) on demand for the user; Entra runs its tasks asynchronously"
            }
            Verb::Delete => {
                "Delete the user (soft: restorable from deleted items for 30 days; rollback restores)"
            }
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

/// Names, comma-separated.
pub(crate) fn names<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    items.into_iter().collect::<Vec<_>>().join(", ")
}
