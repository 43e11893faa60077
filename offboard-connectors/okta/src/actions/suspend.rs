//! `okta.suspend`: `POST /api/v1/users/{id}/lifecycle/suspend`; rollback with `unsuspend`.
//!
//! Okta suspends only `ACTIVE` users. A `LOCKED_OUT` user is unlocked first
//! (`…/lifecycle/unlock`, to `ACTIVE`), then suspended. `STAGED`, `PROVISIONED`,
//! `PASSWORD_EXPIRED` and `RECOVERY` users cannot be suspended at all: only deactivation blocks
//! their sign-in, and it deprovisions every app, so it is done only when the action's
//! parameters ask for it (`{"deactivate_if_not_suspendable": true}`); otherwise the action
//! fails, naming the status and the remedy.

use offboard_core::{ExecuteReply, Outcome, Result};
use serde::{Deserialize, Serialize};

use super::{gone, reply};
use crate::client::OktaClient;
use crate::error::{OktaError, is_validation};

/// What the snapshot records: the status before.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Data {
    pub(crate) status: String,
}

/// The action's parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Params {
    /// Deactivate a user Okta cannot suspend (`STAGED`, `PROVISIONED`, `PASSWORD_EXPIRED`,
    /// `RECOVERY`) instead of failing.
    #[serde(default)]
    pub(crate) deactivate_if_not_suspendable: bool,
}

/// What suspending a user in a status takes.
enum Step {
    Holds,
    Suspend,
    UnlockThenSuspend,
    Deactivate,
    Refuse,
}

fn step(status: &str, params: &Params) -> Step {
    match status {
        "SUSPENDED" | "DEPROVISIONED" => Step::Holds,
        "ACTIVE" => Step::Suspend,
        "LOCKED_OUT" => Step::UnlockThenSuspend,
        _ if params.deactivate_if_not_suspendable => Step::Deactivate,
        _ => Step::Refuse,
    }
}

pub(crate) async fn execute(
    client: &OktaClient,
    id: &str,
    dry_run: bool,
    params: &Params,
) -> Result<ExecuteReply> {
    let Some(user) = client.get_user(id).await? else {
        return Ok(gone(id));
    };
    let was = user.status.as_str();
    let done = |detail: String| Ok(reply(Outcome::Done, dry_run, detail));
    match step(was, params) {
        Step::Holds => Ok(reply(
            Outcome::AlreadyDone,
            dry_run,
            format!("already {was}"),
        )),
        Step::Refuse => Err(OktaError::NotSuspendable {
            id: id.to_owned(),
            status: was.to_owned(),
        }
        .into()),
        Step::Suspend if dry_run => done(format!("would suspend ({was})")),
        Step::UnlockThenSuspend if dry_run => done(format!("would unlock, then suspend ({was})")),
        Step::Deactivate if dry_run => done(format!(
            "would deactivate: Okta cannot suspend a {was} user"
        )),
        Step::Suspend => change(client, id, "suspend", format!("suspended (was {was})")).await,
        Step::UnlockThenSuspend => {
            match change(client, id, "unlock", String::new()).await? {
                // Suspended or deactivated by someone else meanwhile.
                r if r.outcome != Outcome::Done => return Ok(r),
                _ => {}
            }
            change(
                client,
                id,
                "suspend",
                format!("unlocked, then suspended (was {was})"),
            )
            .await
        }
        Step::Deactivate => {
            let detail = format!(
                "deactivated: Okta cannot suspend a {was} user (deprovisioned from its apps)"
            );
            change(client, id, "deactivate", detail).await
        }
    }
}

/// Runs one lifecycle operation. A 400 `E0000001` is read again: the goal may hold already
/// (someone suspended or deactivated the user between our read and our call), and an unlock
/// refused because the user is `ACTIVE` again lets the suspend follow.
async fn change(client: &OktaClient, id: &str, op: &str, detail: String) -> Result<ExecuteReply> {
    let e = match client.lifecycle(id, op).await {
        Ok(()) => return Ok(reply(Outcome::Done, false, detail)),
        Err(e) if is_validation(&e) => e,
        Err(e) => return Err(e),
    };
    match client.get_user(id).await? {
        None => Ok(gone(id)),
        Some(u) if matches!(u.status.as_str(), "SUSPENDED" | "DEPROVISIONED") => Ok(reply(
            Outcome::AlreadyDone,
            false,
            format!("already {}", u.status),
        )),
        Some(u) if op == "unlock" && u.status == "ACTIVE" => Ok(reply(Outcome::Done, false, "")),
        Some(_) => Err(e),
    }
}

pub(crate) async fn snapshot(client: &OktaClient, id: &str) -> Result<Option<Data>> {
    Ok(client
        .get_user(id)
        .await?
        .map(|u| Data { status: u.status }))
}

/// Unsuspends when the snapshot was taken of an `ACTIVE` or `LOCKED_OUT` user who is now
/// `SUSPENDED` (Okta cannot lock a user out again: a `LOCKED_OUT` user comes back `ACTIVE`).
pub(crate) async fn restore(
    client: &OktaClient,
    id: &str,
    status: &str,
    data: &Data,
) -> Result<Outcome> {
    if status == data.status {
        return Ok(Outcome::AlreadyDone);
    }
    match (data.status.as_str(), status) {
        ("ACTIVE" | "LOCKED_OUT", "SUSPENDED") => {
            client.lifecycle(id, "unsuspend").await?;
            Ok(Outcome::Done)
        }
        ("LOCKED_OUT", "ACTIVE") => Ok(Outcome::AlreadyDone),
        (_, current) => Err(OktaError::WrongStatus {
            id: id.to_owned(),
            status: current.to_owned(),
            op: "restore of okta.suspend",
        }
        .into()),
    }
}
