//! The actions the SCIM connector offers, one file each.
//!
//! Every action reads state first, so a repeat reports `AlreadyDone`, a dry run only reads and
//! predicts, and a user who no longer exists reports `NotFound` (delete: `AlreadyDone`).

pub(crate) mod deactivate;
pub(crate) mod delete;
pub(crate) mod remove_groups;

use offboard_core::{ActionName, AppId, ExecuteReply, Outcome, Result};

/// An action of the connector; its name is `<app>.<verb>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    Deactivate,
    RemoveGroups,
    Delete,
}

impl Verb {
    pub(crate) const ALL: [Verb; 3] = [Verb::Deactivate, Verb::RemoveGroups, Verb::Delete];

    pub(crate) fn verb(self) -> &'static str {
        match self {
            Verb::Deactivate => "deactivate",
            Verb::RemoveGroups => "remove_groups",
            Verb::Delete => "delete",
        }
    }

    /// `<app>.<verb>`.
    ///
    /// # Errors
    /// `InvalidInput` when `app` is not a valid app id (the config checks it first).
    pub(crate) fn name(self, app: &AppId) -> Result<ActionName> {
        ActionName::parse(&format!("{app}.{}", self.verb()))
    }

    pub(crate) fn parse(name: &ActionName, app: &AppId) -> Option<Self> {
        let (a, verb) = name.as_str().split_once('.')?;
        if a != app.as_str() {
            return None;
        }
        Self::ALL.into_iter().find(|v| v.verb() == verb)
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
