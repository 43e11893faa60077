//! The Data Transfer API (`admin/datatransfer/v1`), the Enterprise License Manager
//! (`apps/licensing/v1`) and the Directory API's mobile devices of the simulated tenant.
//!
//! # Behaviour modelled
//! - `applications.list`: the installed applications with their `transferParams` (ids are the
//!   tenant's own, so a client must read them).
//! - `transfers.insert`: `oldOwnerUserId` / `newOwnerUserId` must be the immutable ids of two
//!   different existing users (an e-mail is a 400), every `applicationId` an installed
//!   application; each insert creates a new transfer (not idempotent, as in Google).
//!   `transfers.get` moves it along: before the first `get` it reads `new`, then `inProgress`
//!   until the tenant's `transfer_gets`-th `get`, which reads `completed`. `transfers.list`
//!   filters by `oldOwnerUserId`, `newOwnerUserId` and `status` without moving anything.
//! - Licences: `licenseAssignments.get` / `delete` / `insert` by product, SKU and `userId`
//!   (the user's primary address, as the API documents, or its id). A product/SKU pair outside
//!   the catalogue is a 400 `invalid`; no assignment is a 404 `notFound`; inserting an existing
//!   assignment is a 409 `duplicate`.
//! - Mobile devices: `mobiledevices.list` with `query` (only `email:` is modelled; the value
//!   matches as a *prefix* of any of the device's addresses, deliberately at least as wide as
//!   Google's word matching, so clients must filter exactly; any other field is a 400) and
//!   `mobiledevices.action`: `admin_account_wipe` → `ACCOUNT_WIPING`, `admin_remote_wipe` →
//!   `WIPING` (each reads `ACCOUNT_WIPED` / `WIPED` from the next list on), `approve`,
//!   `block`, `cancel_remote_wipe_then_activate`, `cancel_remote_wipe_then_block`; any other
//!   action is a 400.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::routes::{Reply, err, page, paging};
use super::{CUSTOMER_ID, State, Transfer, error_body, invalid, not_found};

/// Whether a `customer` / `customerId` names the simulated customer.
pub(super) fn is_customer(key: &str) -> bool {
    key == "my_customer" || key == CUSTOMER_ID
}

/// `overallTransferStatusCode` of `t` now.
pub(super) fn transfer_status(t: &Transfer, gets_to_complete: u32) -> &'static str {
    match t.gets {
        0 => "new",
        n if n >= gets_to_complete => "completed",
        _ => "inProgress",
    }
}

fn transfer_json(id: &str, t: &Transfer, gets_to_complete: u32) -> Value {
    let status = transfer_status(t, gets_to_complete);
    let apps: Vec<Value> = t
        .applications
        .iter()
        .map(|a| {
            let mut a = a.clone();
            a["applicationTransferStatus"] = Value::String(status.to_owned());
            a
        })
        .collect();
    json!({
        "kind": "admin#datatransfer#DataTransfer",
        "etag": "\"sim\"",
        "id": id,
        "oldOwnerUserId": t.old_owner,
        "newOwnerUserId": t.new_owner,
        "applicationDataTransfers": apps,
        "overallTransferStatusCode": status,
        "requestTime": t.request_time,
    })
}

pub(super) fn datatransfer(
    s: &mut State,
    method: &str,
    rest: &[&str],
    query: &BTreeMap<String, String>,
    body: Option<&Value>,
) -> Reply {
    if query.get("customerId").is_some_and(|c| !is_customer(c)) {
        return err(not_found("customerId"));
    }
    match (method, rest) {
        ("GET", ["applications"]) => {
            let (size, start) = match paging(query, 100, 500) {
                Ok(p) => p,
                Err(e) => return e,
            };
            let all = s
                .applications
                .iter()
                .map(|a| {
                    json!({
                        "kind": "admin#datatransfer#ApplicationResource",
                        "etag": "\"sim\"",
                        "id": a.id,
                        "name": a.name,
                        "transferParams": a.params.iter()
                            .map(|(k, v)| json!({"key": k, "value": v}))
                            .collect::<Vec<_>>(),
                    })
                })
                .collect();
            (
                200,
                Some(page(
                    "admin#datatransfer#applicationsList",
                    "applications",
                    all,
                    size,
                    start,
                )),
            )
        }
        ("GET", ["transfers"]) => {
            let (size, start) = match paging(query, 100, 500) {
                Ok(p) => p,
                Err(e) => return e,
            };
            let gets = s.transfer_gets;
            let all = s
                .transfers
                .iter()
                .filter(|(_, t)| {
                    query
                        .get("oldOwnerUserId")
                        .is_none_or(|o| *o == t.old_owner)
                        && query
                            .get("newOwnerUserId")
                            .is_none_or(|n| *n == t.new_owner)
                        && query
                            .get("status")
                            .is_none_or(|st| st == transfer_status(t, gets))
                })
                .map(|(id, t)| transfer_json(id, t, gets))
                .collect();
            (
                200,
                Some(page(
                    "admin#datatransfer#dataTransfersList",
                    "dataTransfers",
                    all,
                    size,
                    start,
                )),
            )
        }
        ("POST", ["transfers"]) => insert_transfer(s, body),
        ("GET", ["transfers", id]) => {
            let gets = s.transfer_gets;
            let Some(t) = s.transfers.get_mut(*id) else {
                return err(not_found("dataTransferId"));
            };
            t.gets = t.gets.saturating_add(1);
            (200, Some(transfer_json(id, t, gets)))
        }
        _ => err(not_found("method")),
    }
}

fn insert_transfer(s: &mut State, body: Option<&Value>) -> Reply {
    let Some(body) = body else {
        return err(invalid("Invalid Input: body"));
    };
    let owner = |key: &str| {
        body.get(key)
            .and_then(Value::as_str)
            .filter(|id| s.users.contains_key(*id))
            .map(str::to_owned)
    };
    let (Some(old_owner), Some(new_owner)) = (owner("oldOwnerUserId"), owner("newOwnerUserId"))
    else {
        return err(invalid(
            "Invalid Input: oldOwnerUserId and newOwnerUserId must be ids of existing users",
        ));
    };
    if old_owner == new_owner {
        return err(invalid("Invalid Input: the new owner is the old owner"));
    }
    let Some(apps) = body
        .get("applicationDataTransfers")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
    else {
        return err(invalid("Invalid Input: applicationDataTransfers"));
    };
    let mut applications = Vec::new();
    for a in apps {
        let id = a.get("applicationId").and_then(Value::as_str);
        if !id.is_some_and(|id| s.applications.iter().any(|app| app.id == id)) {
            return err(invalid("Invalid Input: applicationId"));
        }
        applications.push(json!({
            "applicationId": id,
            "applicationTransferParams": a.get("applicationTransferParams").cloned()
                .unwrap_or_else(|| json!([])),
        }));
    }
    let id = format!("AKrEtIsim{:x}", s.next());
    let t = Transfer {
        old_owner,
        new_owner,
        applications,
        request_time: chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string(),
        gets: 0,
    };
    let reply = transfer_json(&id, &t, s.transfer_gets);
    s.transfers.insert(id, t);
    (200, Some(reply))
}

pub(super) fn licensing(s: &mut State, method: &str, rest: &[&str], body: Option<&Value>) -> Reply {
    let (product, sku, rest) = match rest {
        ["product", product, "sku", sku, rest @ ..] => (*product, *sku, rest),
        _ => return err(not_found("method")),
    };
    let Some((product_name, sku_name)) = s.skus.get(&(product.to_owned(), sku.to_owned())).cloned()
    else {
        return err(invalid("Invalid productId or skuId"));
    };
    let user_key = match (method, rest) {
        ("GET" | "DELETE", ["user", user]) => (*user).to_owned(),
        ("POST", ["user"]) => match body.and_then(|b| b.get("userId")).and_then(Value::as_str) {
            Some(u) => u.to_owned(),
            None => return err(invalid("Invalid Input: userId")),
        },
        _ => return err(not_found("method")),
    };
    let Some(uid) = s
        .users
        .values()
        .find(|u| u.id == user_key || u.primary_email.eq_ignore_ascii_case(&user_key))
        .map(|u| u.id.clone())
    else {
        return err(not_found("userId"));
    };
    let email = s.users[&uid].primary_email.clone();
    let key = (product.to_owned(), sku.to_owned(), uid);
    let assignment = json!({
        "kind": "licensing#licenseAssignment",
        "etags": "\"sim\"",
        "selfLink": format!("https://licensing.googleapis.com/apps/licensing/v1/product/{product}/sku/{sku}/user/{email}"),
        "userId": email,
        "productId": product,
        "productName": product_name,
        "skuId": sku,
        "skuName": sku_name,
    });
    match method {
        "GET" if s.licences.contains(&key) => (200, Some(assignment)),
        "DELETE" if s.licences.remove(&key) => (204, None),
        "POST" if s.licences.contains(&key) => err((
            409,
            error_body(
                409,
                "User already has a license for the specified product and SKU",
                "duplicate",
                "global",
                "ALREADY_EXISTS",
            ),
        )),
        "POST" => {
            s.licences.insert(key);
            (200, Some(assignment))
        }
        _ => err(not_found("licenseAssignment")),
    }
}

/// The `email:` value of a `mobiledevices.list` query (single quotes optional, `\` escapes
/// inside them); `None` for anything else.
fn device_email(query: &str) -> Option<String> {
    let value = query.trim().strip_prefix("email:")?;
    match value.strip_prefix('\'') {
        None if !value.contains([' ', '\'', '"']) => Some(value.to_owned()),
        None => None,
        Some(quoted) => {
            let mut out = String::new();
            let mut chars = quoted.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => out.push(chars.next()?),
                    '\'' => return chars.as_str().is_empty().then_some(out),
                    c => out.push(c),
                }
            }
            None
        }
    }
}

pub(super) fn devices(
    s: &mut State,
    method: &str,
    rest: &[&str],
    query: &BTreeMap<String, String>,
    body: Option<&Value>,
) -> Reply {
    match (method, rest) {
        ("GET", []) => {
            let (size, start) = match paging(query, 100, 100) {
                Ok(p) => p,
                Err(e) => return e,
            };
            let email = match query.get("query").map(|q| device_email(q)) {
                None => None,
                Some(Some(e)) => Some(e.to_ascii_lowercase()),
                Some(None) => return err(invalid("Invalid Input: query")),
            };
            let users: BTreeMap<String, String> = s
                .users
                .values()
                .map(|u| (u.id.clone(), u.primary_email.clone()))
                .collect();
            let all = s
                .devices
                .iter_mut()
                .filter(|(_, d)| {
                    email.as_ref().is_none_or(|e| {
                        d.emails
                            .iter()
                            .any(|have| have.to_ascii_lowercase().starts_with(e.as_str()))
                    })
                })
                .map(|(id, d)| {
                    let shown = json!({
                        "kind": "admin#directory#mobiledevice",
                        "etag": "\"sim\"",
                        "resourceId": id,
                        "deviceId": d.device_id,
                        "email": d.emails,
                        "name": [users.get(&d.user).cloned().unwrap_or_default()],
                        "model": d.model,
                        "os": "Android 15",
                        "type": "ANDROID",
                        "status": d.status,
                        "firstSync": "2026-01-05T09:00:00.000Z",
                        "lastSync": "2026-11-20T08:30:00.000Z",
                    });
                    // A wipe is reported done from the read after the one that saw it start.
                    d.status = match d.status.as_str() {
                        "ACCOUNT_WIPING" => "ACCOUNT_WIPED".into(),
                        "WIPING" => "WIPED".into(),
                        other => other.to_owned(),
                    };
                    shown
                })
                .collect();
            (
                200,
                Some(page(
                    "admin#directory#mobiledevices",
                    "mobiledevices",
                    all,
                    size,
                    start,
                )),
            )
        }
        ("POST", [resource_id, "action"]) => {
            let Some(action) = body.and_then(|b| b.get("action")).and_then(Value::as_str) else {
                return err(invalid("Invalid Input: action"));
            };
            let Some(d) = s.devices.get_mut(*resource_id) else {
                return err(not_found("resourceId"));
            };
            let status = match action {
                "admin_account_wipe" => "ACCOUNT_WIPING",
                "admin_remote_wipe" => "WIPING",
                "approve" | "cancel_remote_wipe_then_activate" => "APPROVED",
                "block" | "cancel_remote_wipe_then_block" => "BLOCKED",
                _ => return err(invalid("Invalid Input: action")),
            };
            d.status = status.to_owned();
            d.actions.push(action.to_owned());
            (204, None)
        }
        _ => err(not_found("method")),
    }
}
