//! `entra.remove_access_packages`: the leaver's entitlement-management (access package)
//! assignments.
//!
//! - Reads `GET /identityGovernance/entitlementManagement/assignments` with
//!   `$filter=target/objectId eq '{id}'` and `$expand=target,accessPackage,assignmentPolicy`
//!   (the package's name and the ids a rollback needs are navigation properties in v1.0),
//!   and `GET …/assignmentRequests` with `$filter=assignment/target/objectId eq '{id}'` and
//!   `$expand=assignment,accessPackage`. Both filters are unverified: the docs show
//!   `$filter=accessPackage/id eq '…'` on assignments and `requestor/objectId eq '…'` on
//!   requests, and the specs README gives the target filter as an example only. The literal
//!   is escaped with [`odata_string`], and every answer is filtered again locally on the
//!   target's `objectId`, so a wider answer never reaches a look-alike.
//! - The list holds expired assignments too: only `delivered`, `partiallyDelivered` and
//!   `delivering` ones (the spec's `accessPackageAssignmentState`) are access.
//! - Each such assignment gets `POST …/assignmentRequests`
//!   `{"requestType": "adminRemove", "assignment": {"id": …}}` (201, state `submitted`).
//!   The removal is asynchronous: the assignment stays `delivered` until entitlement
//!   management processed it, so an assignment with an open removal request (`adminRemove`,
//!   `userRemove` or `systemRemove` in `submitted`, `pendingApproval`, `delivering` or
//!   `scheduled`) counts as handled: a repeat is `AlreadyDone` and sends no second request.
//! - Open requests that would give the leaver a package (`userAdd`, `adminAdd`, …, awaiting
//!   approval or delivery) cannot be cancelled by this app: cancel is "Not supported" with
//!   application permissions (specs README). They are never sent a cancel; once the
//!   assignments are handled the task FAILS naming each one, because an approver who
//!   approves it later gives the leaver access back. Cancel them in the My Access portal or
//!   with the Lifecycle Workflows task "Cancel pending access package assignment requests
//!   for user"; `verify_revoked` keeps listing them.
//! - Reversible: the snapshot records each active assignment's access package, assignment
//!   policy and target (not its id: a rollback creates a new assignment); rollback sends `{"requestType": "adminAdd", "assignment":
//!   {"targetId", "assignmentPolicyId", "accessPackageId"}}` (the v1.0 docs' example; the
//!   2024 spec's `accessPackageAssignment` lists only navigation properties and allows extra
//!   ones) for each package the user no longer holds. While a removal is still being
//!   processed, rollback is an `in_progress` error (checked again later).
//! - Permissions: reads `EntitlementManagement.Read.All`, requests
//!   `EntitlementManagement.ReadWrite.All`; a 403 names the one missing.

use std::collections::BTreeSet;
use std::time::Duration;

use offboard_core::{Error, ErrorKind, ExecuteReply, Outcome, Result};
use offboard_http::GraphRequest;
use offboard_http::graph::{needs_permission, odata_string};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{gone, names, reply};
use crate::client::EntraClient;

/// The permission the reads need.
pub(crate) const READ: &str = "EntitlementManagement.Read.All";
/// The permission the requests need.
pub(crate) const WRITE: &str = "EntitlementManagement.ReadWrite.All";

const BASE: [&str; 2] = ["identityGovernance", "entitlementManagement"];

/// Assignment states that hold access (`accessPackageAssignmentState`).
const ACTIVE: [&str; 3] = ["delivered", "partiallyDelivered", "delivering"];
/// Request states of a request still being processed (`accessPackageRequestState`).
const OPEN: [&str; 4] = ["submitted", "pendingApproval", "delivering", "scheduled"];
/// Request types that remove an assignment (`accessPackageRequestType`).
const REMOVALS: [&str; 3] = ["adminRemove", "userRemove", "systemRemove"];

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Named {
    #[serde(default)]
    id: String,
    #[serde(default)]
    display_name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Subject {
    #[serde(default)]
    object_id: Option<String>,
}

/// An `accessPackageAssignment`, expanded.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Assignment {
    id: String,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    target: Option<Subject>,
    #[serde(default)]
    access_package: Option<Named>,
    #[serde(default)]
    assignment_policy: Option<Named>,
}

impl Assignment {
    fn package_name(&self) -> &str {
        self.access_package
            .as_ref()
            .and_then(|p| p.display_name.as_deref())
            .unwrap_or("access package")
    }

    /// "<package> (<assignment id>)".
    pub(crate) fn label(&self) -> String {
        format!("{} ({})", self.package_name(), self.id)
    }

    fn active(&self) -> bool {
        self.state.as_deref().is_some_and(|s| ACTIVE.contains(&s))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestAssignment {
    #[serde(default)]
    id: String,
    #[serde(default)]
    target: Option<Subject>,
}

/// An `accessPackageAssignmentRequest`, expanded.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Request {
    id: String,
    #[serde(default)]
    request_type: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    assignment: Option<RequestAssignment>,
    #[serde(default)]
    access_package: Option<Named>,
}

impl Request {
    fn open(&self) -> bool {
        OPEN.contains(&self.state.as_str())
    }

    fn removal(&self) -> bool {
        REMOVALS.contains(&self.request_type.as_str())
    }

    /// "<package> (<requestType>, <state>, request <id>)".
    pub(crate) fn label(&self) -> String {
        format!(
            "{} ({}, {}, request {})",
            self.access_package
                .as_ref()
                .and_then(|p| p.display_name.as_deref())
                .unwrap_or("access package"),
            self.request_type,
            self.state,
            self.id
        )
    }
}

/// What the user holds, by what the action does with it.
pub(crate) struct View {
    /// Active assignments with no removal under way.
    pub(crate) active: Vec<Assignment>,
    /// Active assignments whose removal is under way.
    pub(crate) removing: Vec<Assignment>,
    /// Open requests that would give the user a package.
    pub(crate) pending: Vec<Request>,
}

/// Reads the user's assignments and requests (see the module docs).
pub(crate) async fn read(client: &EntraClient, id: &str) -> Result<View> {
    let literal = odata_string(id)?;
    let assignments: Vec<Assignment> = client
        .graph
        .list(
            &GraphRequest::get(BASE.iter().copied().chain(["assignments"]))
                .query("$filter", format!("target/objectId eq {literal}"))
                .query("$expand", "target,accessPackage,assignmentPolicy"),
        )
        .await
        .map_err(|e| needs_permission(e, READ))?;
    let requests: Vec<Request> = client
        .graph
        .list(
            &GraphRequest::get(BASE.iter().copied().chain(["assignmentRequests"]))
                .query(
                    "$filter",
                    format!("assignment/target/objectId eq {literal}"),
                )
                .query("$expand", "assignment,accessPackage"),
        )
        .await
        .map_err(|e| needs_permission(e, READ))?;
    let mine = |s: &Option<Subject>| s.as_ref().and_then(|s| s.object_id.as_deref()) == Some(id);
    let assignments: Vec<Assignment> = assignments
        .into_iter()
        .filter(|a| mine(&a.target) && a.active())
        .collect();
    let ids: BTreeSet<&str> = assignments.iter().map(|a| a.id.as_str()).collect();
    let being_removed: BTreeSet<String> = requests
        .iter()
        .filter(|r| r.open() && r.removal())
        .filter_map(|r| r.assignment.as_ref().map(|a| a.id.clone()))
        .filter(|a| ids.contains(a.as_str()))
        .collect();
    let pending = requests
        .into_iter()
        .filter(|r| {
            r.open() && !r.removal() && r.assignment.as_ref().is_some_and(|a| mine(&a.target))
        })
        .collect();
    let (removing, active) = assignments
        .into_iter()
        .partition(|a| being_removed.contains(&a.id));
    Ok(View {
        active,
        removing,
        pending,
    })
}

/// The error naming the open requests the app cannot cancel, after `done`.
fn not_cancellable(done: &str, pending: &[Request]) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        format!(
            "{done}; {} access package requests still open, NOT cancelled (cancel is not \
             supported with application permissions; an approval would give access back: \
             cancel them in My Access or with the Lifecycle Workflows task): {}",
            pending.len(),
            names(
                pending
                    .iter()
                    .map(Request::label)
                    .collect::<Vec<_>>()
                    .iter()
                    .map(String::as_str)
            )
        ),
    )
    .fatal()
}

fn removing_note(removing: &[Assignment]) -> String {
    if removing.is_empty() {
        String::new()
    } else {
        let labels: Vec<String> = removing.iter().map(Assignment::label).collect();
        format!(
            "; removal already under way: {}",
            names(labels.iter().map(String::as_str))
        )
    }
}

pub(crate) async fn execute(client: &EntraClient, id: &str, dry_run: bool) -> Result<ExecuteReply> {
    if client.get_user(id).await?.is_none() {
        return Ok(gone(id));
    }
    let View {
        active,
        removing,
        pending,
    } = read(client, id).await?;
    let note = removing_note(&removing);
    if active.is_empty() {
        let done = format!("no access package assignment left to remove{note}");
        if !pending.is_empty() {
            return Err(not_cancellable(&done, &pending));
        }
        return Ok(reply(Outcome::AlreadyDone, dry_run, done));
    }
    let labels: Vec<String> = active.iter().map(Assignment::label).collect();
    if dry_run {
        let done = format!(
            "would request removal of {} access package assignments ({}){note}",
            active.len(),
            names(labels.iter().map(String::as_str))
        );
        if !pending.is_empty() {
            return Err(not_cancellable(&done, &pending));
        }
        return Ok(reply(Outcome::Done, true, done));
    }
    let mut sent = Vec::new();
    let mut failed = Vec::new();
    for (a, label) in active.iter().zip(labels) {
        let request = GraphRequest::post(
            BASE.iter().copied().chain(["assignmentRequests"]),
            json!({"requestType": "adminRemove", "assignment": {"id": a.id}}),
        );
        match client.graph.send(&request).await {
            Ok(_) => sent.push(label),
            Err(e) if e.is_retryable() => return Err(e),
            Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                return Err(needs_permission(e, WRITE));
            }
            Err(e) => failed.push(format!("{label} (Graph refused: {e})")),
        }
    }
    let mut done = format!(
        "removal requested for {} access package assignments ({}; processed asynchronously){note}",
        sent.len(),
        names(sent.iter().map(String::as_str))
    );
    if !failed.is_empty() {
        done.push_str(&format!(
            "; NOT requested ({}): {}",
            failed.len(),
            names(failed.iter().map(String::as_str))
        ));
        if pending.is_empty() {
            return Err(Error::new(ErrorKind::Unsupported, done).fatal());
        }
    }
    if !pending.is_empty() {
        return Err(not_cancellable(&done, &pending));
    }
    Ok(reply(Outcome::Done, false, done))
}

/// One assignment as the snapshot records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Saved {
    pub(crate) access_package_id: String,
    pub(crate) assignment_policy_id: String,
    pub(crate) target_id: String,
    pub(crate) name: String,
}

/// The snapshot of `entra.remove_access_packages`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Data {
    pub(crate) assignments: Vec<Saved>,
}

/// `None` when the user does not exist.
pub(crate) async fn snapshot(client: &EntraClient, id: &str) -> Result<Option<Data>> {
    if client.get_user(id).await?.is_none() {
        return Ok(None);
    }
    let view = read(client, id).await?;
    let mut assignments: Vec<Saved> = view
        .active
        .iter()
        .map(|a| Saved {
            access_package_id: a
                .access_package
                .as_ref()
                .map(|p| p.id.clone())
                .unwrap_or_default(),
            assignment_policy_id: a
                .assignment_policy
                .as_ref()
                .map(|p| p.id.clone())
                .unwrap_or_default(),
            target_id: id.to_owned(),
            name: a.package_name().to_owned(),
        })
        .collect();
    // A rollback creates new assignments (new ids): the snapshot records what they are for.
    assignments.sort_by(|a, b| {
        (&a.access_package_id, &a.assignment_policy_id)
            .cmp(&(&b.access_package_id, &b.assignment_policy_id))
    });
    Ok(Some(Data { assignments }))
}

/// Requests `adminAdd` for each saved package the user no longer holds.
pub(crate) async fn restore(client: &EntraClient, id: &str, data: &Data) -> Result<Outcome> {
    let view = read(client, id).await?;
    let still_removing: Vec<&str> = data
        .assignments
        .iter()
        .filter(|s| {
            view.removing.iter().any(|a| {
                a.access_package.as_ref().map(|p| p.id.as_str())
                    == Some(s.access_package_id.as_str())
            })
        })
        .map(|s| s.name.as_str())
        .collect();
    if !still_removing.is_empty() {
        return Err(Error::in_progress(
            Duration::from_secs(300),
            format!(
                "the removal of {} is still being processed by entitlement management; the \
                 assignments can be requested again once it is delivered",
                names(still_removing)
            ),
        ));
    }
    let held = |s: &Saved| {
        view.active.iter().any(|a| {
            a.access_package.as_ref().map(|p| p.id.as_str()) == Some(s.access_package_id.as_str())
        }) || view.pending.iter().any(|r| {
            r.access_package.as_ref().map(|p| p.id.as_str()) == Some(s.access_package_id.as_str())
        })
    };
    let mut changed = false;
    for s in data.assignments.iter().filter(|s| !held(s)) {
        let request = GraphRequest::post(
            BASE.iter().copied().chain(["assignmentRequests"]),
            json!({
                "requestType": "adminAdd",
                "assignment": {
                    "targetId": s.target_id,
                    "assignmentPolicyId": s.assignment_policy_id,
                    "accessPackageId": s.access_package_id,
                },
            }),
        );
        client
            .graph
            .send(&request)
            .await
            .map_err(|e| needs_permission(e, WRITE))?;
        changed = true;
    }
    Ok(if changed {
        Outcome::Done
    } else {
        Outcome::AlreadyDone
    })
}
