//! The actions the Okta connector offers, one file each.
//!
//! Every action reads state first, so a repeat reports `AlreadyDone`, a dry run predicts
//! truthfully and a user who no longer exists reports `NotFound`.

pub(crate) mod clear_sessions;
pub(crate) mod deactivate;
pub(crate) mod delete;
pub(crate) mod remove_admin_roles;
pub(crate) mod remove_groups;
pub(crate) mod reset_factors;
pub(crate) mod revoke_grants;
pub(crate) mod suspend;
pub(crate) mod unassign_apps;

use offboard_core::{ActionName, ActionSpec, ExecuteReply, Outcome};

/// An action of the connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    Suspend,
    ClearSessions,
    RevokeGrants,
    ResetFactors,
    RemoveGroups,
    UnassignApps,
    RemoveAdminRoles,
    Deactivate,
    Delete,
}

impl Verb {
    pub(crate) const ALL: [Verb; 9] = [
        Verb::Suspend,
        Verb::ClearSessions,
        Verb::RevokeGrants,
        Verb::ResetFactors,
        Verb::RemoveGroups,
        Verb::UnassignApps,
        Verb::RemoveAdminRoles,
        Verb::Deactivate,
        Verb::Delete,
    ];

    pub(crate) fn name(self) -> ActionName {
        ActionName::from_static(match self {
            Verb::Suspend => "okta.suspend",
            Verb::ClearSessions => "okta.clear_sessions",
            Verb::RevokeGrants => "okta.revoke_grants",
            Verb::ResetFactors => "okta.reset_factors",
            Verb::RemoveGroups => "okta.remove_groups",
            Verb::UnassignApps => "okta.unassign_apps",
            Verb::RemoveAdminRoles => "okta.remove_admin_roles",
            Verb::Deactivate => "okta.deactivate",
            Verb::Delete => "okta.delete",
        })
    }

    pub(crate) fn parse(name: &ActionName) -> Option<Self> {
        Self::ALL.into_iter().find(|v| &v.name() == name)
    }

    pub(crate) fn reversible(self) -> bool {
        matches!(self, Verb::Suspend | Verb::RemoveGroups | Verb::Deactivate)
    }

    pub(crate) fn spec(self) -> ActionSpec {
        let s = ActionSpec::new(self.name(), self.description());
        match self {
            Verb::Suspend | Verb::RemoveGroups => s.reversible(),
            Verb::Deactivate => s.reversible().critical(),
            Verb::Delete => s.critical().after(Verb::Deactivate.name()),
            _ => s,
        }
    }

    fn description(self) -> &'static str {
        match self {
            Verb::Suspend => {
                "Suspend the user (a LOCKED_OUT user is unlocked first): sign-in is blocked; \
                 groups and apps are kept. Okta cannot suspend STAGED, PROVISIONED, \
                 PASSWORD_EXPIRED or RECOVERY users: fails for them, or deactivates them with \
                 {\"deactivate_if_not_suspendable\": true}"
            }
            Verb::ClearSessions => {
                "End every Okta session and revoke the user's OAuth/OIDC access and refresh tokens"
            }
            Verb::RevokeGrants => "Revoke every OAuth consent grant the user gave",
            Verb::ResetFactors => "Reset (unenroll) every MFA factor",
            Verb::RemoveGroups => {
                "Remove every OKTA_GROUP membership (APP_GROUP and BUILT_IN are reported, not changed)"
            }
            Verb::UnassignApps => {
                "Unassign every directly (USER-scoped) assigned app; the app profile is lost"
            }
            Verb::RemoveAdminRoles => "Remove every admin role assigned to the user",
            Verb::Deactivate => {
                "Deactivate the user: deprovisioned from all apps (rollback restores the status only)"
            }
            Verb::Delete => "Delete the user permanently (deactivating first)",
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
