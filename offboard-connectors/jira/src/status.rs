//! How a ticket's status and resolution read: open, done, or closed without the work done.

use crate::client::{Resolution, StatusDetails};

/// What a ticket says about the work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reading {
    /// Not in a status that completes the task.
    Open,
    /// Done: a `done`-category status (the configured one, if any) without a not-done
    /// resolution.
    Done,
    /// Closed without the work done; the reason names the status and the resolution.
    Declined(String),
}

/// The site's rule for "done".
#[derive(Debug, Clone)]
pub(crate) struct DoneRule {
    done_status: Option<String>,
    not_done_resolutions: Vec<String>,
}

impl DoneRule {
    /// A rule: `done_status` narrows the `done` category to one status (name or id);
    /// `not_done_resolutions` are compared case-insensitively.
    pub(crate) fn new(done_status: Option<String>, not_done_resolutions: Vec<String>) -> Self {
        Self {
            done_status,
            not_done_resolutions,
        }
    }

    /// Reads a status and resolution.
    ///
    /// # Behavior
    /// - Only a status of Jira's `done` category can complete a task; a status that merely has
    ///   the configured name but another category reads `Open`.
    /// - A `done`-category status with a not-done resolution (e.g. "Won't Do") reads
    ///   `Declined`, whatever the configured status.
    /// - Otherwise `Done` when no status is configured or the status matches it by id or name.
    pub(crate) fn read(&self, status: &StatusDetails, resolution: Option<&Resolution>) -> Reading {
        let done_category = status
            .status_category
            .as_ref()
            .is_some_and(|c| c.key == "done");
        if !done_category {
            return Reading::Open;
        }
        if let Some(r) = resolution.filter(|r| {
            self.not_done_resolutions
                .iter()
                .any(|n| n.eq_ignore_ascii_case(r.name.trim()))
        }) {
            return Reading::Declined(format!(
                "closed as {:?} with resolution {:?}",
                status.name, r.name
            ));
        }
        match &self.done_status {
            Some(want) if status.id != *want && !status.name.eq_ignore_ascii_case(want) => {
                Reading::Open
            }
            _ => Reading::Done,
        }
    }
}
