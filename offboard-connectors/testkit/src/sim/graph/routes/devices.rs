//! Entra device objects and Intune managed devices of the simulated tenant.
//!
//! - Devices (`/devices/{id}`): `displayName`, `operatingSystem`, `accountEnabled`, `deviceId`
//!   and their registered owners and users (listed in the user's `ownedDevices` and
//!   `registeredDevices`). `GET` needs `Device.Read.All`, `PATCH` `Device.ReadWrite.All`
//!   (204). The app's token is app-only, and app-only calls may change only
//!   `extensionAttributes` of a non-Windows device: setting `accountEnabled` on one is a 403
//!   `Authorization_RequestDenied`, as Graph answers.
//! - Managed devices (`/deviceManagement/managedDevices/{id}` and the user's
//!   `managedDevices`): `deviceName`, `operatingSystem`, `userId`, `userPrincipalName`,
//!   `azureADDeviceId` and `deviceActionResults`. Reads need
//!   `DeviceManagementManagedDevices.Read.All`; `wipe` (body: an object of the optional
//!   `keepEnrollmentData`, `keepUserData`, `persistEsimDataPlan` booleans and
//!   `macOsUnlockCode`) and `retire` (no body) need
//!   `DeviceManagementManagedDevices.PrivilegedOperations.All`, answer 204 and record a
//!   `pending` action result (a repeat refreshes it).

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{Query, Reply, bad_request, denied, err, not_found, page};
use crate::sim::graph::{GraphTenant, State, new_id, now_iso};

/// A device to register in the tenant ([`GraphTenant::add_device`]).
#[derive(Debug, Clone)]
pub struct NewDevice {
    /// `displayName`.
    pub display_name: String,
    /// `operatingSystem`, e.g. `Windows`, `iOS`, `MacMDM`, `Android`.
    pub operating_system: String,
    /// `accountEnabled`.
    pub account_enabled: bool,
}

impl NewDevice {
    /// An enabled device with this name and operating system.
    pub fn new(display_name: impl Into<String>, operating_system: impl Into<String>) -> Self {
        Self {
            display_name: display_name.into(),
            operating_system: operating_system.into(),
            account_enabled: true,
        }
    }

    /// An enabled Windows device.
    pub fn windows(display_name: impl Into<String>) -> Self {
        Self::new(display_name, "Windows")
    }
}

/// A device's state, for assertions ([`GraphTenant::device`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceState {
    /// `displayName`.
    pub display_name: String,
    /// `operatingSystem`.
    pub operating_system: String,
    /// `accountEnabled`.
    pub account_enabled: bool,
    /// Registered owners (user ids).
    pub owners: BTreeSet<String>,
}

/// A device enrolled in Intune ([`GraphTenant::add_managed_device`]).
#[derive(Debug, Clone)]
pub struct NewManagedDevice {
    /// `deviceName`.
    pub device_name: String,
    /// `operatingSystem`.
    pub operating_system: String,
    /// The primary user's id (`userId`).
    pub user_id: String,
}

/// A managed device's state, for assertions ([`GraphTenant::managed_device`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedDeviceState {
    /// `deviceName`.
    pub device_name: String,
    /// `userId`.
    pub user_id: String,
    /// `(actionName, actionState)` of each `deviceActionResults` entry, e.g.
    /// `("wipe", "pending")`.
    pub actions: Vec<(String, String)>,
    /// How many wipe or retire calls reached it.
    pub action_calls: u32,
}

#[derive(Debug, Clone)]
pub(crate) struct Device {
    display_name: String,
    operating_system: String,
    account_enabled: bool,
    device_id: String,
    owners: BTreeSet<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct ManagedDevice {
    device_name: String,
    operating_system: String,
    user_id: String,
    azure_ad_device_id: String,
    actions: Vec<Value>,
    action_calls: u32,
}

impl State {
    /// Forgets a removed user as a device owner.
    pub(crate) fn remove_device_owner(&mut self, user: &str) {
        for d in self.devices.values_mut() {
            d.owners.remove(user);
        }
    }
}

impl GraphTenant {
    /// Registers a device owned (and registered) by `owner`; returns its object id.
    pub fn add_device(&self, owner: &str, new: NewDevice) -> String {
        let id = new_id();
        self.shared.state().devices.insert(
            id.clone(),
            Device {
                display_name: new.display_name,
                operating_system: new.operating_system,
                account_enabled: new.account_enabled,
                device_id: new_id(),
                owners: BTreeSet::from([owner.to_owned()]),
            },
        );
        id
    }

    /// A device's state; `None` for an unknown id.
    pub fn device(&self, id: &str) -> Option<DeviceState> {
        self.shared.state().devices.get(id).map(|d| DeviceState {
            display_name: d.display_name.clone(),
            operating_system: d.operating_system.clone(),
            account_enabled: d.account_enabled,
            owners: d.owners.clone(),
        })
    }

    /// Enrolls a device in Intune; returns its managed device id.
    pub fn add_managed_device(&self, new: NewManagedDevice) -> String {
        let id = new_id();
        self.shared.state().managed_devices.insert(
            id.clone(),
            ManagedDevice {
                device_name: new.device_name,
                operating_system: new.operating_system,
                user_id: new.user_id,
                azure_ad_device_id: new_id(),
                actions: Vec::new(),
                action_calls: 0,
            },
        );
        id
    }

    /// A managed device's state; `None` for an unknown id.
    pub fn managed_device(&self, id: &str) -> Option<ManagedDeviceState> {
        self.shared
            .state()
            .managed_devices
            .get(id)
            .map(|m| ManagedDeviceState {
                device_name: m.device_name.clone(),
                user_id: m.user_id.clone(),
                actions: m
                    .actions
                    .iter()
                    .map(|a| {
                        let f = |k: &str| a[k].as_str().unwrap_or_default().to_owned();
                        (f("actionName"), f("actionState"))
                    })
                    .collect(),
                action_calls: m.action_calls,
            })
    }
}

const READ: &str = "Device.Read.All";
const WRITE: &str = "Device.ReadWrite.All";
const MANAGED_READ: &str = "DeviceManagementManagedDevices.Read.All";
const PRIVILEGED: &str = "DeviceManagementManagedDevices.PrivilegedOperations.All";

fn device_json(id: &str, d: &Device) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.device",
        "id": id,
        "deviceId": d.device_id,
        "displayName": d.display_name,
        "operatingSystem": d.operating_system,
        "accountEnabled": d.account_enabled,
    })
}

fn managed_json(s: &State, id: &str, m: &ManagedDevice) -> Value {
    let upn = s.users.get(&m.user_id).map(|u| u.upn.clone());
    json!({
        "id": id,
        "deviceName": m.device_name,
        "operatingSystem": m.operating_system,
        "userId": m.user_id,
        "userPrincipalName": upn,
        "azureADDeviceId": m.azure_ad_device_id,
        "managedDeviceOwnerType": "company",
        "deviceActionResults": m.actions,
    })
}

/// `GET /users/{id}/ownedDevices` and `/registeredDevices`.
pub(super) fn of_user(s: &State, base: &str, id: &str, rel: &str, query: &Query) -> Reply {
    let items = s
        .devices
        .iter()
        .filter(|(_, d)| d.owners.contains(id))
        .map(|(did, d)| device_json(did, d))
        .collect();
    page(s, base, &["users", id, rel], query, items)
}

/// `GET /users/{id}/managedDevices`: the devices whose primary user is this user.
pub(super) fn managed_of_user(s: &State, base: &str, id: &str, query: &Query) -> Reply {
    if let Some(no) = denied(s, MANAGED_READ) {
        return no;
    }
    let items = s
        .managed_devices
        .iter()
        .filter(|(_, m)| m.user_id == id)
        .map(|(mid, m)| managed_json(s, mid, m))
        .collect();
    page(s, base, &["users", id, "managedDevices"], query, items)
}

/// `GET` and `PATCH /devices/{id}`.
pub(super) fn device_route(
    s: &mut State,
    method: &str,
    id: &str,
    rest: &[&str],
    body: Option<&Value>,
) -> Reply {
    if !rest.is_empty() {
        return super::no_route();
    }
    if let Some(no) = denied(s, if method == "GET" { READ } else { WRITE }) {
        return no;
    }
    let Some(d) = s.devices.get_mut(id) else {
        return not_found(id);
    };
    if method == "GET" {
        return (200, Some(device_json(id, d)));
    }
    let Some(fields) = body.and_then(Value::as_object) else {
        return bad_request("The request body must be a JSON object.");
    };
    let mut enabled = None;
    for (k, v) in fields {
        match (k.as_str(), v) {
            ("accountEnabled", Value::Bool(b)) => enabled = Some(*b),
            ("displayName", Value::String(_)) | ("extensionAttributes", Value::Object(_)) => {}
            _ => {
                return bad_request(&format!(
                    "Invalid value or property '{k}' for a device update."
                ));
            }
        }
    }
    if let Some(b) = enabled {
        if !d.operating_system.eq_ignore_ascii_case("Windows") {
            // App-only tokens may change only extensionAttributes of non-Windows devices.
            return err(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            );
        }
        d.account_enabled = b;
    }
    if let Some(Value::String(name)) = fields.get("displayName") {
        d.display_name = name.clone();
    }
    (204, None)
}

/// `GET /deviceManagement/managedDevices/{id}`, `POST …/wipe` and `POST …/retire`.
pub(super) fn managed_route(
    s: &mut State,
    method: &str,
    id: &str,
    rest: &[&str],
    body: Option<&Value>,
) -> Reply {
    let action = match (method, rest) {
        ("GET", []) => None,
        ("POST", [a @ ("wipe" | "retire")]) => Some(*a),
        _ => return super::no_route(),
    };
    if let Some(no) = denied(
        s,
        if action.is_some() {
            PRIVILEGED
        } else {
            MANAGED_READ
        },
    ) {
        return no;
    }
    if !s.managed_devices.contains_key(id) {
        return not_found(id);
    }
    let Some(action) = action else {
        let m = &s.managed_devices[id];
        return (200, Some(managed_json(s, id, m)));
    };
    if let Some(bad) = action_body(action, body) {
        return bad;
    }
    let Some(m) = s.managed_devices.get_mut(id) else {
        return not_found(id);
    };
    let now = now_iso();
    m.actions.retain(|a| a["actionName"] != action);
    m.actions.push(json!({
        "actionName": action,
        "actionState": "pending",
        "startDateTime": now,
        "lastUpdatedDateTime": now,
    }));
    m.action_calls += 1;
    (204, None)
}

/// A 400 for a body the action does not take: `wipe` needs an object of its optional
/// parameters, `retire` takes none (an empty object is accepted).
fn action_body(action: &str, body: Option<&Value>) -> Option<Reply> {
    let fields = match body {
        None if action == "retire" => return None,
        None => return Some(bad_request("The wipe request needs a JSON object body.")),
        Some(Value::Object(f)) => f,
        Some(_) => return Some(bad_request("The request body must be a JSON object.")),
    };
    for (k, v) in fields {
        let ok = action == "wipe"
            && match k.as_str() {
                "keepEnrollmentData" | "keepUserData" | "persistEsimDataPlan" => v.is_boolean(),
                "macOsUnlockCode" => v.is_string() || v.is_null(),
                _ => false,
            };
        if !ok {
            return Some(bad_request(&format!(
                "The parameter '{k}' in the request payload is not a valid parameter for the \
                 operation '{action}'."
            )));
        }
    }
    None
}
