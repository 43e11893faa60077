//! `google.transfer_data` (params `{"to": "manager@…"}`, optional): moves the user's Drive and
//! Calendar data to the manager through the Data Transfer API.
//!
//! 1. `GET admin/directory/v1/users/{id}`: the user must exist (this action needs the
//!    account: a deleted user is a `NotFound` error, the data is gone).
//! 2. The new owner: `params.to`, else the person's manager ([`offboard_core::Person::manager`],
//!    which the engine passes in [`offboard_core::ExecuteOptions::person`]). None: an
//!    `InvalidInput` error and nothing done. It is looked up like a person
//!    (`GET …/users/{address}`, accepted only when the user has exactly that address) and
//!    addressed by its immutable id.
//! 3. `GET admin/datatransfer/v1/applications`: the configured applications by name (default
//!    "Drive and Docs" and "Calendar"), their ids read, never hard-coded (cached per connector).
//!    Each application's `PRIVACY_LEVEL` parameter is sent with every value it offers, so
//!    private and shared files both move.
//! 4. `GET admin/datatransfer/v1/transfers?oldOwnerUserId={id}`: an insert is not idempotent,
//!    so an existing transfer to the same new owner covering those applications is used, but
//!    only one of this task: one this connector inserted for the task's idempotency key, or
//!    one requested (`requestTime`) after the task began (its id's UUIDv7 time, else when
//!    this connector first ran it for the key). An older transfer, even `completed`, moved the
//!    data of then and does not count (otherwise `google.delete` would follow it). Of the
//!    task's transfers a `completed` one means `AlreadyDone`, one still running is polled, a
//!    `failed` one is an error (a human looks at it before anything is tried again).
//!    Otherwise `POST admin/datatransfer/v1/transfers`. After a restart a transfer this task
//!    inserted before its start time reads as older (clock skew) and a second one is inserted:
//!    the safe way round.
//! 5. `GET admin/datatransfer/v1/transfers/{id}` until `completed`, for at most the configured
//!    wait; a transfer still running then is an `InProgress` error whose wait hint is the poll
//!    interval, so the engine checks on it again later without spending a retry attempt, for
//!    as long as a vendor job may run (`offboard_core::machine::IN_PROGRESS_LIMIT`, 7 days:
//!    large Drive transfers take hours). Step 4 finds the transfer; nothing is inserted twice.
//!
//! Irreversible (a transfer cannot be undone through the API). `google.delete` is declared
//! after it.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use offboard_core::{Error, ErrorKind, ExecuteReply, Outcome, Person, Result, TaskId};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::reply;
use crate::client::{Application, DataTransfer, GoogleClient, User};
use crate::config::TransferPolling;

/// The typed parameters of `google.transfer_data`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferData {
    /// The new owner's address; default: the person's manager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// The Data Transfer applications of the tenant, read once per connector.
#[derive(Debug, Default)]
pub(crate) struct Applications(Mutex<Option<Vec<Application>>>);

impl Applications {
    /// The applications named `names` (ASCII case ignored); a name the tenant does not offer
    /// is a `Config` error.
    async fn select(&self, client: &GoogleClient, names: &[String]) -> Result<Vec<Application>> {
        let cached = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let all = match cached {
            Some(all) => all,
            None => {
                let all = client.list_applications().await?;
                *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(all.clone());
                all
            }
        };
        names
            .iter()
            .map(|name| {
                all.iter()
                    .find(|a| a.name.eq_ignore_ascii_case(name))
                    .cloned()
                    .ok_or_else(|| {
                        Error::config(
                            "transfer_apps",
                            format!(
                                "the tenant offers no Data Transfer application {name:?} (it \
                                 offers: {})",
                                all.iter()
                                    .map(|a| a.name.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        )
                    })
            })
            .collect()
    }
}

/// Per (user, idempotency key): when this connector first ran the task, and the transfers it
/// inserted for it.
#[derive(Debug, Default)]
pub(crate) struct Requested(Mutex<BTreeMap<(String, String), TaskTransfers>>);

/// When the task began (as first seen here) and the transfer ids inserted for it.
type TaskTransfers = (DateTime<Utc>, Vec<String>);

impl Requested {
    /// When the task began: its id's UUIDv7 time, else the first time this connector ran it
    /// (now, for an empty key); and the transfers inserted for it.
    fn task(&self, user: &str, key: &str, task: Option<TaskId>) -> TaskTransfers {
        let now = Utc::now();
        let minted = task
            .and_then(|t| t.0.get_timestamp())
            .map(|ts| ts.to_unix())
            .and_then(|(secs, nanos)| DateTime::from_timestamp(secs as i64, nanos));
        let (first, ours) = if key.is_empty() {
            (now, Vec::new())
        } else {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry((user.to_owned(), key.to_owned()))
                .or_insert_with(|| (now, Vec::new()))
                .clone()
        };
        (minted.unwrap_or(first), ours)
    }

    fn insert(&self, user: &str, key: &str, transfer: &str) {
        if let Some((_, ours)) = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(&(user.to_owned(), key.to_owned()))
        {
            ours.push(transfer.to_owned());
        }
    }
}

/// What `execute` needs besides the client.
#[derive(Debug)]
pub(crate) struct Context<'a> {
    pub(crate) applications: &'a Applications,
    pub(crate) names: &'a [String],
    pub(crate) polling: TransferPolling,
    pub(crate) person: Option<&'a Person>,
    pub(crate) requested: &'a Requested,
    pub(crate) idempotency_key: &'a str,
    pub(crate) task: Option<TaskId>,
}

/// Whether `t` belongs to the task: inserted for it, or requested at or after `since`.
fn of_task(t: &DataTransfer, since: DateTime<Utc>, ours: &[String]) -> bool {
    ours.contains(&t.id)
        || t.request_time
            .as_deref()
            .and_then(|r| DateTime::parse_from_rfc3339(r).ok())
            .is_some_and(|r| r >= since)
}

fn status(t: &DataTransfer) -> String {
    t.overall_transfer_status_code.to_ascii_lowercase()
}

/// Whether `t` moves `apps` of `old` to `new`.
fn covers(t: &DataTransfer, old: &str, new: &str, apps: &[Application]) -> bool {
    t.old_owner_user_id == old
        && t.new_owner_user_id == new
        && apps.iter().all(|a| {
            t.application_data_transfers
                .iter()
                .any(|x| x.application_id == a.id)
        })
}

fn failed(t: &DataTransfer, manager: &User) -> Error {
    Error::new(
        ErrorKind::Vendor,
        format!(
            "data transfer {} to {} failed; check it in the Admin console before trying again",
            t.id, manager.primary_email
        ),
    )
    .fatal()
}

/// The new owner: `params.to`, else the person's manager, looked up exactly.
async fn new_owner(
    client: &GoogleClient,
    params: &TransferData,
    person: Option<&Person>,
    user: &User,
) -> Result<User> {
    let Some(address) = params.to.clone().or_else(|| {
        person
            .and_then(|p| p.manager.as_ref())
            .map(|m| m.email.clone())
    }) else {
        return Err(Error::invalid_input(format!(
            "{} has no manager to receive the data (no `to` parameter, no manager on the \
             person); nothing was transferred",
            user.primary_email
        ))
        .fatal());
    };
    if !crate::connector::is_address(&address)
        || address.len() > crate::connector::MAX_ADDRESS_LEN
        || address.chars().any(char::is_control)
    {
        return Err(Error::invalid_input(format!(
            "new owner {} is not an e-mail address; nothing was transferred",
            crate::error::shown(&address)
        ))
        .fatal());
    }
    let manager = client
        .get_user(&address)
        .await?
        .filter(|m| m.has_address(&address))
        .ok_or_else(|| {
            Error::not_found(format!(
                "the new owner {address} has no Google account; nothing was transferred"
            ))
            .fatal()
        })?;
    if manager.id == user.id {
        return Err(Error::invalid_input(format!(
            "{address} is the departing user; nothing was transferred"
        ))
        .fatal());
    }
    if manager.suspended {
        return Err(Error::invalid_input(format!(
            "the new owner {address} is suspended; nothing was transferred"
        ))
        .fatal());
    }
    Ok(manager)
}

pub(crate) async fn execute(
    client: &GoogleClient,
    cx: Context<'_>,
    id: &str,
    params: &TransferData,
    dry_run: bool,
) -> Result<ExecuteReply> {
    let user = client.get_user(id).await?.ok_or_else(|| {
        Error::not_found(format!(
            "user {id} does not exist; its data cannot be transferred"
        ))
    })?;
    let manager = new_owner(client, params, cx.person, &user).await?;
    let apps = cx.applications.select(client, cx.names).await?;
    let names = apps
        .iter()
        .map(|a| a.name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let what = format!(
        "{names} of {} to {}",
        user.primary_email, manager.primary_email
    );
    let (since, ours) = cx.requested.task(&user.id, cx.idempotency_key, cx.task);
    let existing: Vec<DataTransfer> = client
        .list_transfers(&user.id)
        .await?
        .into_iter()
        .filter(|t| covers(t, &user.id, &manager.id, &apps) && of_task(t, since, &ours))
        .collect();
    if let Some(t) = existing.iter().find(|t| status(t) == "completed") {
        return Ok(reply(
            Outcome::AlreadyDone,
            dry_run,
            format!("{what} already transferred (transfer {})", t.id),
        ));
    }
    let running = existing.iter().find(|t| status(t) != "failed");
    if running.is_none()
        && let Some(t) = existing.first()
    {
        return Err(failed(t, &manager));
    }
    if dry_run {
        return Ok(reply(
            Outcome::Done,
            true,
            match running {
                Some(t) => format!("would wait for transfer {} of {what}", t.id),
                None => format!("would transfer {what}"),
            },
        ));
    }
    let transfer = match running {
        Some(t) => t.clone(),
        None => {
            let body = json!({
                "oldOwnerUserId": user.id,
                "newOwnerUserId": manager.id,
                "applicationDataTransfers": apps.iter().map(|a| {
                    let params: Vec<&serde_json::Value> = a
                        .transfer_params
                        .iter()
                        .filter(|p| p["key"] == "PRIVACY_LEVEL")
                        .collect();
                    json!({"applicationId": a.id, "applicationTransferParams": params})
                }).collect::<Vec<_>>(),
            });
            let t = client.insert_transfer(body).await?;
            cx.requested.insert(&user.id, cx.idempotency_key, &t.id);
            t
        }
    };
    wait(client, &transfer, &manager, cx.polling).await?;
    Ok(reply(
        Outcome::Done,
        false,
        format!("transferred {what} (transfer {})", transfer.id),
    ))
}

/// Polls `transfer` until it completes, for at most `polling.wait`.
async fn wait(
    client: &GoogleClient,
    transfer: &DataTransfer,
    manager: &User,
    polling: TransferPolling,
) -> Result<()> {
    let started = tokio::time::Instant::now();
    loop {
        let t = client.get_transfer(&transfer.id).await?.ok_or_else(|| {
            Error::new(
                ErrorKind::Vendor,
                format!("data transfer {} vanished while it ran", transfer.id),
            )
        })?;
        match status(&t).as_str() {
            "completed" => return Ok(()),
            "failed" => return Err(failed(&t, manager)),
            _ => {}
        }
        if started.elapsed() + polling.every > polling.wait {
            return Err(in_progress(&t, polling.every));
        }
        tokio::time::sleep(polling.every).await;
    }
}

fn in_progress(t: &DataTransfer, every: Duration) -> Error {
    Error::in_progress(
        every,
        format!(
            "data transfer {} is {}; run again to check on it",
            t.id, t.overall_transfer_status_code
        ),
    )
}
