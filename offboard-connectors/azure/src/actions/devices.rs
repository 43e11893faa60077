//! The leaver's devices.
//!
//! - `entra.disable_devices`: the Entra device objects the user owns or has registered
//!   (`GET /users/{id}/ownedDevices` and `…/registeredDevices`, by object id), each still
//!   enabled disabled with `PATCH /devices/{d}` `{"accountEnabled": false}` (204). App-only
//!   Graph may change only `extensionAttributes` of a non-Windows device (specs README:
//!   device-update page), so a phone or Mac is refused (403): such devices, and any other
//!   device Graph refuses, are named in the task's `unsupported` error after the others were
//!   disabled, never counted as disabled. The snapshot records each device and whether it was
//!   enabled; rollback (`GET /devices/{d}`, then `PATCH` `{"accountEnabled": true}`)
//!   re-enables the ones that were enabled and no longer are.
//! - `entra.intune_wipe` / `entra.intune_retire`: the Intune managed devices whose primary user
//!   is this user (`GET /users/{id}/managedDevices`, kept only where `userId` is exactly this
//!   user's id, so a look-alike's device is never touched), each sent
//!   `POST /deviceManagement/managedDevices/{m}/wipe` (`{}`) or `…/retire` (no body), 204.
//!   A device whose `deviceActionResults` already holds that action (a retire: or a wipe)
//!   `pending`, `active` or `done` counts as handled, so a repeat is `AlreadyDone`. Neither
//!   can be undone: both are critical (confirmation needed) and not reversible.

use std::collections::BTreeMap;

use offboard_core::{Error, ErrorKind, ExecuteReply, Outcome, Result};
use offboard_http::{GraphRequest, Method};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{gone, names, partly_done, reply};
use crate::client::{EntraClient, found, user_path};

/// An Entra device object as `ownedDevices`, `registeredDevices` and `/devices/{id}` give it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Device {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) display_name: Option<String>,
    #[serde(default)]
    pub(crate) operating_system: Option<String>,
    #[serde(default)]
    pub(crate) account_enabled: Option<bool>,
}

impl Device {
    pub(crate) fn label(&self) -> String {
        format!(
            "{} ({})",
            self.display_name.as_deref().unwrap_or(&self.id),
            self.operating_system.as_deref().unwrap_or("unknown OS")
        )
    }

    /// Whether app-only Graph may disable it (Windows devices only).
    fn windows(&self) -> bool {
        self.operating_system
            .as_deref()
            .is_some_and(|os| os.to_ascii_lowercase().starts_with("windows"))
    }

    pub(crate) fn enabled(&self) -> bool {
        self.account_enabled != Some(false)
    }
}

/// One device as the snapshot records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Saved {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) account_enabled: bool,
}

/// The snapshot of `entra.disable_devices`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Data {
    pub(crate) devices: Vec<Saved>,
}

/// The devices the user owns or has registered, by object id; `None` when the user is gone.
pub(crate) async fn of_user(client: &EntraClient, id: &str) -> Result<Option<Vec<Device>>> {
    let mut all = BTreeMap::new();
    for rel in ["ownedDevices", "registeredDevices"] {
        let Some(list) = found(
            client
                .graph
                .list::<Device>(&GraphRequest::get(user_path(id, &[rel])).query("$top", "999"))
                .await,
        )?
        else {
            return Ok(None);
        };
        for d in list {
            all.entry(d.id.clone()).or_insert(d);
        }
    }
    Ok(Some(all.into_values().collect()))
}

fn set_enabled(id: &str, enabled: bool) -> GraphRequest {
    GraphRequest::patch(["devices", id], json!({"accountEnabled": enabled}))
}

pub(crate) async fn disable(client: &EntraClient, id: &str, dry_run: bool) -> Result<ExecuteReply> {
    let Some(devices) = of_user(client, id).await? else {
        return Ok(gone(id));
    };
    let enabled: Vec<&Device> = devices.iter().filter(|d| d.enabled()).collect();
    if enabled.is_empty() {
        return Ok(reply(
            Outcome::AlreadyDone,
            dry_run,
            format!("no enabled device ({} registered or owned)", devices.len()),
        ));
    }
    if dry_run {
        let (win, other): (Vec<&Device>, Vec<&Device>) = enabled.iter().partition(|d| d.windows());
        let labels = |ds: &[&Device]| ds.iter().map(|d| d.label()).collect::<Vec<_>>().join(", ");
        let mut what = format!("would disable {} devices ({})", win.len(), labels(&win));
        if !other.is_empty() {
            what.push_str(&format!(
                "; app-only Graph cannot disable non-Windows devices: {} would be reported ({})",
                other.len(),
                labels(&other)
            ));
        }
        return Ok(reply(Outcome::Done, true, what));
    }
    let mut disabled = Vec::new();
    let mut kept = Vec::new();
    for d in enabled {
        match client.graph.send_gone_ok(&set_enabled(&d.id, false)).await {
            Ok(true) => disabled.push(d.label()),
            Ok(false) => {}
            Err(e) if e.is_retryable() => return Err(e),
            Err(e) if !d.windows() && e.kind() == ErrorKind::PermissionDenied => {
                kept.push(format!(
                    "{} (app-only Graph may not disable a non-Windows device: disable it in the \
                 Entra admin center or as a delegated administrator)",
                    d.label()
                ))
            }
            Err(e) => kept.push(format!("{} (Graph refused: {e})", d.label())),
        }
    }
    let done = format!(
        "disabled {} devices ({})",
        disabled.len(),
        names(disabled.iter().map(String::as_str))
    );
    if !kept.is_empty() {
        return Err(partly_done(&done, "disabled", &kept));
    }
    Ok(reply(Outcome::Done, false, done))
}

/// `None` when the user does not exist.
pub(crate) async fn snapshot(client: &EntraClient, id: &str) -> Result<Option<Data>> {
    Ok(of_user(client, id).await?.map(|devices| Data {
        devices: devices
            .into_iter()
            .map(|d| Saved {
                name: d.label(),
                account_enabled: d.enabled(),
                id: d.id,
            })
            .collect(),
    }))
}

/// Re-enables the devices that were enabled and no longer are.
pub(crate) async fn restore(client: &EntraClient, data: &Data) -> Result<Outcome> {
    let mut changed = false;
    let mut missing = Vec::new();
    for saved in data.devices.iter().filter(|d| d.account_enabled) {
        let now: Option<Device> = client
            .graph
            .get_opt(&GraphRequest::get(["devices", saved.id.as_str()]))
            .await?;
        match now {
            None => missing.push(saved.name.as_str()),
            Some(d) if !d.enabled() => {
                client.graph.send(&set_enabled(&d.id, true)).await?;
                changed = true;
            }
            Some(_) => {}
        }
    }
    if !missing.is_empty() {
        return Err(Error::not_found(format!(
            "devices no longer exist, not re-enabled: {}",
            names(missing)
        )));
    }
    Ok(if changed {
        Outcome::Done
    } else {
        Outcome::AlreadyDone
    })
}

/// What an Intune action sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Intune {
    Wipe,
    Retire,
}

impl Intune {
    fn action(self) -> &'static str {
        match self {
            Intune::Wipe => "wipe",
            Intune::Retire => "retire",
        }
    }

    /// The actions that leave a device handled for this one (a wipe also retires).
    fn satisfied_by(self, action: &str) -> bool {
        action == "wipe" || (self == Intune::Retire && action == "retire")
    }
}

/// An Intune managed device.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ManagedDevice {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) device_name: Option<String>,
    #[serde(default)]
    pub(crate) operating_system: Option<String>,
    #[serde(default)]
    pub(crate) user_id: Option<String>,
    #[serde(default)]
    pub(crate) device_action_results: Vec<ActionResult>,
}

/// One `deviceActionResults` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ActionResult {
    #[serde(default)]
    pub(crate) action_name: String,
    #[serde(default)]
    pub(crate) action_state: String,
}

impl ManagedDevice {
    pub(crate) fn label(&self) -> String {
        format!(
            "{} ({}, {})",
            self.device_name.as_deref().unwrap_or(&self.id),
            self.operating_system.as_deref().unwrap_or("unknown OS"),
            self.id
        )
    }

    /// Whether a wipe or retire (as `verb` needs) is pending, running or done.
    fn handled(&self, verb: Intune) -> bool {
        self.device_action_results.iter().any(|a| {
            verb.satisfied_by(&a.action_name)
                && matches!(a.action_state.as_str(), "pending" | "active" | "done")
        })
    }

    /// Whether any wipe or retire is pending, running or done.
    pub(crate) fn retired_or_wiped(&self) -> bool {
        self.handled(Intune::Retire)
    }
}

/// The managed devices whose primary user is exactly `id`; `None` when the user is gone.
pub(crate) async fn managed_of_user(
    client: &EntraClient,
    id: &str,
) -> Result<Option<Vec<ManagedDevice>>> {
    let list: Option<Vec<ManagedDevice>> = found(
        client
            .graph
            .list(&GraphRequest::get(user_path(id, &["managedDevices"])).query("$top", "999"))
            .await,
    )?;
    Ok(list.map(|l| {
        l.into_iter()
            .filter(|m| m.user_id.as_deref() == Some(id))
            .collect()
    }))
}

pub(crate) async fn intune(
    client: &EntraClient,
    id: &str,
    verb: Intune,
    dry_run: bool,
) -> Result<ExecuteReply> {
    let Some(devices) = managed_of_user(client, id).await? else {
        return Ok(gone(id));
    };
    let todo: Vec<&ManagedDevice> = devices.iter().filter(|m| !m.handled(verb)).collect();
    let action = verb.action();
    if todo.is_empty() {
        return Ok(reply(
            Outcome::AlreadyDone,
            dry_run,
            format!(
                "no managed device left to {action} ({} managed devices)",
                devices.len()
            ),
        ));
    }
    let labels: Vec<String> = todo.iter().map(|m| m.label()).collect();
    if dry_run {
        return Ok(reply(
            Outcome::Done,
            true,
            format!(
                "would {action} {} managed devices ({})",
                todo.len(),
                names(labels.iter().map(String::as_str))
            ),
        ));
    }
    let mut sent = Vec::new();
    let mut failed = Vec::new();
    for (m, label) in todo.iter().zip(labels) {
        let path = ["deviceManagement", "managedDevices", m.id.as_str(), action];
        let request = match verb {
            Intune::Wipe => GraphRequest::post(path, json!({})),
            Intune::Retire => GraphRequest::new(Method::POST, path),
        };
        match client.graph.send_gone_ok(&request).await {
            Ok(true) => sent.push(label),
            Ok(false) => {}
            Err(e) if e.is_retryable() => return Err(e),
            Err(e) => failed.push(format!("{label} (Graph refused: {e})")),
        }
    }
    let done = format!(
        "{action} sent to {} managed devices ({})",
        sent.len(),
        names(sent.iter().map(String::as_str))
    );
    if !failed.is_empty() {
        return Err(partly_done(&done, "sent", &failed));
    }
    Ok(reply(Outcome::Done, false, done))
}
