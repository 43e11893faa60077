//! `entra.remove_directory_roles`: every directory role the leaver holds.
//!
//! - Reads: `GET /users/{id}/memberOf` (a 404 means the user is gone; it also names the
//!   role-assignable groups the user is in), then for the user and each such group
//!   `GET /roleManagement/directory/roleAssignments` and `…/roleEligibilitySchedules` with
//!   `$filter=principalId eq '<id>'` (an OData literal, [`odata_string`]) and
//!   `$expand=roleDefinition` (for the role names).
//! - Active assignments, at any directory scope (tenant-wide `/` or an administrative unit),
//!   go with a `$batch` of `DELETE /roleManagement/directory/roleAssignments/{id}`; each PIM
//!   eligibility with `POST /roleManagement/directory/roleEligibilityScheduleRequests`
//!   `{"action": "adminRemove", "principalId", "roleDefinitionId", "directoryScopeId",
//!   "justification"}`, so the person cannot activate it later. Then `memberOf` is read again
//!   and any `directoryRole` still listed is removed with the legacy
//!   `DELETE /directoryRoles/{role}/members/{id}/$ref` (always with `/$ref`).
//! - Roles held through a role-assignable group are reported by role and group, not changed:
//!   they go with the group membership, which `entra.remove_groups` removes (with
//!   `RoleManagement.ReadWrite.Directory`, else it fails naming the group).
//! - Whatever Graph refuses (e.g. 403 without `RoleManagement.ReadWrite.Directory`) fails the
//!   task by name after the rest was removed.
//! - Snapshot: each active assignment and eligibility (role, scope, name, and the
//!   eligibility's expiration). Rollback re-creates what is missing with
//!   `POST …/roleAssignmentScheduleRequests` (active) or `…/roleEligibilityScheduleRequests`
//!   (eligible) `adminAssign`, `scheduleInfo` starting now and expiring as the original
//!   (an end in the past, or none: `noExpiration`); Graph's `RoleAssignmentExists` counts as
//!   restored.
//! - [`privileged`]: the value of the account's privileged attribute when the user holds a
//!   role of [`PRIVILEGED_ROLES`] (active, eligible or through a group).

use std::collections::BTreeSet;

use offboard_core::{Error, ErrorKind, ExecuteReply, Outcome, Result};
use offboard_http::GraphRequest;
use offboard_http::graph::{BatchItem, odata_string, vendor_code};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{gone, names, reply};
use crate::client::{DirectoryObject, EntraClient, found};

/// The roles Microsoft labels privileged ("Privileged roles and permissions in Microsoft Entra
/// ID", learn.microsoft.com/entra/identity/role-based-access-control/privileged-roles-permissions,
/// and the PRIVILEGED label of "Microsoft Entra built-in roles"), plus Exchange and SharePoint
/// Administrator (every mailbox and site of the tenant) and Directory Synchronization Accounts
/// (Entra Connect's role: it writes users and password hashes), by template id (a built-in role
/// definition's id is its template id). Ids and privileged labels checked against the "All
/// roles" table of `docs/identity/role-based-access-control/permissions-reference.md` in
/// `MicrosoftDocs/entra-docs` (commit `00fe95d`).
pub(crate) const PRIVILEGED_ROLES: &[(&str, &str)] = &[
    (
        "62e90394-69f5-4237-9190-012177145e10",
        "Global Administrator",
    ),
    (
        "e8611ab8-c189-46e8-94e1-60213ab1f814",
        "Privileged Role Administrator",
    ),
    (
        "7be44c8a-adaf-4e2a-84d6-ab2649e08a13",
        "Privileged Authentication Administrator",
    ),
    (
        "194ae4cb-b126-40b2-bd5b-6091b380977d",
        "Security Administrator",
    ),
    ("5f2222b1-57c3-48ba-8ad5-d4759f1fde6f", "Security Operator"),
    ("5d6b6bb7-de71-4623-b4af-96380a352509", "Security Reader"),
    (
        "b1be1c3e-b65d-4f19-8427-f6fa0d97feb9",
        "Conditional Access Administrator",
    ),
    ("fe930be7-5e62-47db-91af-98c3a49a38b1", "User Administrator"),
    (
        "c4e39bd9-1100-46d3-8c65-fb160da0071f",
        "Authentication Administrator",
    ),
    (
        "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3",
        "Application Administrator",
    ),
    (
        "158c047a-c907-4556-b7ef-446551a6b5f7",
        "Cloud Application Administrator",
    ),
    (
        "cf1c38e5-3621-4004-a7cb-879624dced7c",
        "Application Developer",
    ),
    (
        "8ac3fc64-6eca-42ea-9e69-59f4c7b60eb2",
        "Hybrid Identity Administrator",
    ),
    (
        "3a2c62db-5318-420d-8d74-23affee5d9d5",
        "Intune Administrator",
    ),
    (
        "7698a772-787b-4ac8-901f-60d6b08affd2",
        "Cloud Device Administrator",
    ),
    (
        "729827e3-9c14-49f7-bb1b-9608f156bbb8",
        "Helpdesk Administrator",
    ),
    (
        "966707d0-3269-4727-9be2-8c3a10f19b9d",
        "Password Administrator",
    ),
    (
        "4ba39ca4-527c-499a-b93d-d9b492c50246",
        "Partner Tier1 Support",
    ),
    (
        "e00e864a-17c5-4a4b-9c06-f5b95a8d5bd8",
        "Partner Tier2 Support",
    ),
    (
        "8329153b-31d0-4727-b945-745eb3bc5f31",
        "Domain Name Administrator",
    ),
    (
        "be2f45a1-457d-42af-a067-6ec1fa63bc45",
        "External Identity Provider Administrator",
    ),
    ("9360feb5-f418-4baa-8175-e2a00bac4301", "Directory Writers"),
    (
        "d29b2b05-8046-44ba-8758-1e26182fcf32",
        "Directory Synchronization Accounts",
    ),
    ("f2ef992c-3afb-46b9-b7cf-a126ee74c451", "Global Reader"),
    (
        "59d46f88-662b-457b-bceb-5c3809e5908f",
        "Lifecycle Workflows Administrator",
    ),
    (
        "aaf43236-0c0d-4d5f-883a-6955382ac081",
        "B2C IEF Keyset Administrator",
    ),
    (
        "25a516ed-2fa0-40ea-a2d0-12923a21473a",
        "Authentication Extensibility Administrator",
    ),
    (
        "29232cdf-9323-42fd-ade2-1d097af3e4de",
        "Exchange Administrator",
    ),
    (
        "f28a1f50-f6e7-4571-818b-6a12f2af6b6c",
        "SharePoint Administrator",
    ),
];

const JUSTIFICATION: &str = "Offboarding: the person left; directory roles removed by offboard";
const RESTORE_JUSTIFICATION: &str = "Offboarding rolled back: directory role restored by offboard";

/// `roleDefinition`, as `$expand` gives it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Definition {
    #[serde(default)]
    display_name: Option<String>,
}

/// An active role assignment or an eligibility schedule.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Grant {
    id: String,
    role_definition_id: String,
    #[serde(default)]
    directory_scope_id: Option<String>,
    #[serde(default)]
    role_definition: Option<Definition>,
    #[serde(default)]
    schedule_info: Option<Value>,
}

impl Grant {
    fn scope(&self) -> &str {
        self.directory_scope_id.as_deref().unwrap_or("/")
    }

    /// The role's name (the expanded definition, else the privileged list, else its id).
    fn role(&self) -> String {
        self.role_definition
            .as_ref()
            .and_then(|d| d.display_name.clone())
            .or_else(|| {
                PRIVILEGED_ROLES
                    .iter()
                    .find(|(id, _)| *id == self.role_definition_id)
                    .map(|(_, n)| (*n).to_owned())
            })
            .unwrap_or_else(|| self.role_definition_id.clone())
    }

    fn privileged(&self) -> bool {
        PRIVILEGED_ROLES
            .iter()
            .any(|(id, _)| *id == self.role_definition_id)
    }

    /// The role's name, with its scope when not tenant-wide.
    fn label(&self) -> String {
        match self.scope() {
            "/" => self.role(),
            scope => format!("{} at {scope}", self.role()),
        }
    }
}

/// What the user holds.
pub(crate) struct Held {
    /// Active assignments of the user.
    active: Vec<Grant>,
    /// Eligibilities of the user.
    eligible: Vec<Grant>,
    /// Legacy directoryRole memberships (`memberOf`) no active tenant-wide assignment covers,
    /// with their template id.
    legacy: Vec<(DirectoryObject, Option<String>)>,
    /// Roles held through a role-assignable group: (group name, grant, eligible).
    via_groups: Vec<(String, Grant, bool)>,
}

impl Held {
    fn direct(&self) -> usize {
        self.active.len() + self.eligible.len() + self.legacy.len()
    }

    fn group_note(&self) -> String {
        if self.via_groups.is_empty() {
            return String::new();
        }
        let list: Vec<String> = self
            .via_groups
            .iter()
            .map(|(g, r, eligible)| {
                format!(
                    "{}{} (group {g})",
                    r.label(),
                    if *eligible { ", eligible" } else { "" }
                )
            })
            .collect();
        format!(
            "; held through role-assignable groups, removed with the membership by \
             entra.remove_groups: {}",
            names(list.iter().map(String::as_str))
        )
    }

    /// Every role held, for `verify_revoked`.
    pub(crate) fn remaining(&self) -> Vec<String> {
        let mut out = Vec::new();
        for a in &self.active {
            out.push(format!("directory role {} ({})", a.label(), a.id));
        }
        for e in &self.eligible {
            out.push(format!(
                "eligible for directory role {} ({})",
                e.label(),
                e.id
            ));
        }
        for (o, _) in &self.legacy {
            out.push(format!("directory role {} ({})", o.name(), o.id));
        }
        for (g, r, eligible) in &self.via_groups {
            out.push(format!(
                "directory role {}{} through role-assignable group {g}",
                r.label(),
                if *eligible { " (eligible)" } else { "" }
            ));
        }
        out
    }
}

/// The legacy directoryRole entries of `memberOf` with their template id.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyRole {
    id: String,
    #[serde(default)]
    role_template_id: Option<String>,
}

fn principal_filter(id: &str) -> Result<String> {
    Ok(format!("principalId eq {}", odata_string(id)?))
}

async fn grants(client: &EntraClient, kind: &str, principal: &str) -> Result<Vec<Grant>> {
    client
        .graph
        .list(
            &GraphRequest::get(["roleManagement", "directory", kind])
                .query("$filter", principal_filter(principal)?)
                .query("$expand", "roleDefinition"),
        )
        .await
}

/// `GET …/memberOf` as raw values (for the legacy roles' template ids) and typed objects.
async fn member_of(client: &EntraClient, id: &str) -> Result<Option<Vec<Value>>> {
    found(
        client
            .graph
            .list::<Value>(
                &GraphRequest::get(crate::client::user_path(id, &["memberOf"]))
                    .query("$top", "999"),
            )
            .await,
    )
}

fn typed(objects: &[Value]) -> Vec<DirectoryObject> {
    objects
        .iter()
        .filter_map(|o| serde_json::from_value(o.clone()).ok())
        .collect()
}

/// The roles the user holds, given its `memberOf`.
async fn held_with(
    client: &EntraClient,
    id: &str,
    member_of: &[DirectoryObject],
    templates: &[(String, Option<String>)],
) -> Result<Held> {
    let active = grants(client, "roleAssignments", id).await?;
    let eligible = grants(client, "roleEligibilitySchedules", id).await?;
    let covered: BTreeSet<&str> = active
        .iter()
        .filter(|a| a.scope() == "/")
        .map(|a| a.role_definition_id.as_str())
        .collect();
    let legacy = member_of
        .iter()
        .filter(|o| o.is("directoryRole"))
        .map(|o| {
            let template = templates
                .iter()
                .find(|(rid, _)| *rid == o.id)
                .and_then(|(_, t)| t.clone());
            (o.clone(), template)
        })
        .filter(|(_, t)| t.as_deref().is_none_or(|t| !covered.contains(t)))
        .collect();
    let mut via_groups = Vec::new();
    for g in member_of
        .iter()
        .filter(|o| o.is("group") && o.role_assignable())
    {
        for a in grants(client, "roleAssignments", &g.id).await? {
            via_groups.push((g.name().to_owned(), a, false));
        }
        for e in grants(client, "roleEligibilitySchedules", &g.id).await? {
            via_groups.push((g.name().to_owned(), e, true));
        }
    }
    Ok(Held {
        active,
        eligible,
        legacy,
        via_groups,
    })
}

fn legacy_templates(objects: &[Value]) -> Vec<(String, Option<String>)> {
    objects
        .iter()
        .filter(|o| o["@odata.type"] == "#microsoft.graph.directoryRole")
        .filter_map(|o| serde_json::from_value::<LegacyRole>(o.clone()).ok())
        .map(|r| (r.id, r.role_template_id))
        .collect()
}

/// The roles the user holds; `None` when the user is gone.
pub(crate) async fn held(client: &EntraClient, id: &str) -> Result<Option<Held>> {
    let Some(raw) = member_of(client, id).await? else {
        return Ok(None);
    };
    let objects = typed(&raw);
    held_with(client, id, &objects, &legacy_templates(&raw))
        .await
        .map(Some)
}

/// The privileged attribute's value when the user holds a privileged role (active, eligible
/// or through a role-assignable group), e.g. "directory roles: Global Administrator,
/// Security Administrator (eligible)"; `None` when it holds none (or is gone).
pub(crate) async fn privileged(client: &EntraClient, id: &str) -> Result<Option<String>> {
    let Some(held) = held(client, id).await? else {
        return Ok(None);
    };
    let mut roles: Vec<String> = Vec::new();
    for a in held.active.iter().filter(|a| a.privileged()) {
        roles.push(a.label());
    }
    for (o, template) in &held.legacy {
        if PRIVILEGED_ROLES
            .iter()
            .any(|(t, _)| template.as_deref() == Some(*t))
        {
            roles.push(o.name().to_owned());
        }
    }
    for e in held.eligible.iter().filter(|e| e.privileged()) {
        roles.push(format!("{} (eligible)", e.label()));
    }
    for (g, r, eligible) in held.via_groups.iter().filter(|(_, r, _)| r.privileged()) {
        roles.push(format!(
            "{} ({}via group {g})",
            r.label(),
            if *eligible { "eligible, " } else { "" }
        ));
    }
    roles.dedup();
    Ok((!roles.is_empty()).then(|| format!("directory roles: {}", roles.join(", "))))
}

fn request(kind: &str, action: &str, id: &str, g: &Saved, schedule: Option<Value>) -> GraphRequest {
    let mut body = json!({
        "action": action,
        "principalId": id,
        "roleDefinitionId": g.role_definition_id,
        "directoryScopeId": g.directory_scope_id,
        "justification": if action == "adminRemove" { JUSTIFICATION } else { RESTORE_JUSTIFICATION },
    });
    if let Some(s) = schedule {
        body["scheduleInfo"] = s;
    }
    GraphRequest::post(["roleManagement", "directory", kind], body)
}

/// Why Graph refused, for a report.
fn refusal(e: &Error) -> String {
    if e.kind() == ErrorKind::PermissionDenied {
        format!("Graph refused, needs RoleManagement.ReadWrite.Directory: {e}")
    } else {
        format!("Graph refused: {e}")
    }
}

pub(crate) async fn execute(client: &EntraClient, id: &str, dry_run: bool) -> Result<ExecuteReply> {
    let Some(held) = held(client, id).await? else {
        return Ok(gone(id));
    };
    let note = held.group_note();
    if held.direct() == 0 {
        return Ok(reply(
            Outcome::AlreadyDone,
            dry_run,
            format!("holds no directory role directly{note}"),
        ));
    }
    let labels = |gs: &[Grant]| gs.iter().map(Grant::label).collect::<Vec<_>>().join(", ");
    if dry_run {
        let legacy = names(held.legacy.iter().map(|(o, _)| o.name()));
        return Ok(reply(
            Outcome::Done,
            true,
            format!(
                "would remove {} active role assignments ({}), {} eligibilities ({}) and {} \
                 legacy role memberships ({legacy}){note}",
                held.active.len(),
                labels(&held.active),
                held.eligible.len(),
                labels(&held.eligible),
                held.legacy.len(),
            ),
        ));
    }
    let mut removed: Vec<String> = Vec::new();
    let mut kept: Vec<String> = Vec::new();
    let items = held
        .active
        .iter()
        .map(|a| {
            BatchItem::new(
                &a.id,
                GraphRequest::delete(["roleManagement", "directory", "roleAssignments", &a.id]),
            )
        })
        .collect();
    let replies = client.graph.batch(items).await?;
    for (r, a) in replies.iter().zip(&held.active) {
        match r.deleted() {
            Ok(_) => removed.push(a.label()),
            Err(e) if e.is_retryable() => return Err(e),
            Err(e) => kept.push(format!("{} ({})", a.label(), refusal(&e))),
        }
    }
    for e in &held.eligible {
        let saved = Saved::of(e);
        let remove = request(
            "roleEligibilityScheduleRequests",
            "adminRemove",
            id,
            &saved,
            None,
        );
        match client.graph.send(&remove).await {
            Ok(_) => removed.push(format!("{} (eligible)", e.label())),
            Err(err) if vendor_code(&err) == Some("RoleEligibilityScheduleDoesNotExist") => {
                removed.push(format!("{} (eligible)", e.label()))
            }
            Err(err) if err.is_retryable() => return Err(err),
            Err(err) => kept.push(format!("{} (eligible; {})", e.label(), refusal(&err))),
        }
    }
    // The legacy view: memberships the unified API did not show (or that outlived it).
    let Some(after) = member_of(client, id).await? else {
        return Ok(gone(id));
    };
    for role in typed(&after).iter().filter(|o| o.is("directoryRole")) {
        let delete =
            GraphRequest::delete(["directoryRoles", role.id.as_str(), "members", id, "$ref"]);
        match client.graph.send_gone_ok(&delete).await {
            Ok(true) => {
                // Gone now, whatever the unified API answered for it.
                kept.retain(|k| !k.starts_with(&format!("{} (", role.name())));
                removed.push(role.name().to_owned());
            }
            Ok(false) => {}
            Err(e) if e.is_retryable() => return Err(e),
            // Already named when its unified assignment was refused.
            Err(_)
                if kept
                    .iter()
                    .any(|k| k.starts_with(&format!("{} (", role.name()))) => {}
            Err(e) => kept.push(format!("{} ({})", role.name(), refusal(&e))),
        }
    }
    let done = format!(
        "removed {} directory roles ({}){note}",
        removed.len(),
        names(removed.iter().map(String::as_str))
    );
    if !kept.is_empty() {
        return Err(offboard_http::graph::not_done(&done, "removed", &kept));
    }
    Ok(reply(Outcome::Done, false, done))
}

/// One removed role, as the snapshot records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Saved {
    pub(crate) role_definition_id: String,
    pub(crate) directory_scope_id: String,
    pub(crate) name: String,
    /// An eligibility's `scheduleInfo.expiration` (`None`: no expiration).
    #[serde(default)]
    pub(crate) expiration: Option<Value>,
}

impl Saved {
    fn of(g: &Grant) -> Self {
        Self {
            role_definition_id: g.role_definition_id.clone(),
            directory_scope_id: g.scope().to_owned(),
            name: g.role(),
            expiration: g
                .schedule_info
                .as_ref()
                .map(|s| s["expiration"].clone())
                .filter(|e| e["type"] != "noExpiration" && !e.is_null()),
        }
    }

    fn key(&self) -> (&str, &str) {
        (&self.role_definition_id, &self.directory_scope_id)
    }
}

/// The snapshot: the active assignments and eligibilities the user held.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Data {
    pub(crate) active: Vec<Saved>,
    pub(crate) eligible: Vec<Saved>,
}

/// `None` when the user does not exist.
pub(crate) async fn snapshot(client: &EntraClient, id: &str) -> Result<Option<Data>> {
    let Some(held) = held(client, id).await? else {
        return Ok(None);
    };
    let mut active: Vec<Saved> = held.active.iter().map(Saved::of).collect();
    // A legacy membership with no unified assignment: re-created tenant-wide.
    for (o, template) in &held.legacy {
        if let Some(t) = template {
            active.push(Saved {
                role_definition_id: t.clone(),
                directory_scope_id: "/".into(),
                name: o.name().to_owned(),
                expiration: None,
            });
        }
    }
    active.sort_by(|a, b| a.key().cmp(&b.key()));
    let mut eligible: Vec<Saved> = held.eligible.iter().map(Saved::of).collect();
    eligible.sort_by(|a, b| a.key().cmp(&b.key()));
    Ok(Some(Data { active, eligible }))
}

fn schedule(expiration: Option<&Value>) -> Value {
    let now = chrono::Utc::now();
    let keep = expiration.filter(|e| {
        e["type"] != "afterDateTime"
            || e["endDateTime"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|t| t > now)
    });
    json!({
        "startDateTime": now.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "expiration": keep.cloned().unwrap_or_else(|| json!({"type": "noExpiration"})),
    })
}

/// Re-creates the snapshot's assignments and eligibilities the user no longer holds.
pub(crate) async fn restore(client: &EntraClient, id: &str, data: &Data) -> Result<Outcome> {
    let mut changed = false;
    for (kind, saved, current) in [
        (
            "roleAssignmentScheduleRequests",
            &data.active,
            grants(client, "roleAssignments", id).await?,
        ),
        (
            "roleEligibilityScheduleRequests",
            &data.eligible,
            grants(client, "roleEligibilitySchedules", id).await?,
        ),
    ] {
        let now: BTreeSet<(&str, &str)> = current
            .iter()
            .map(|g| (g.role_definition_id.as_str(), g.scope()))
            .collect();
        for s in saved.iter().filter(|s| !now.contains(&s.key())) {
            let assign = request(
                kind,
                "adminAssign",
                id,
                s,
                Some(schedule(s.expiration.as_ref())),
            );
            match client.graph.send(&assign).await {
                Ok(_) => changed = true,
                Err(e) if vendor_code(&e) == Some("RoleAssignmentExists") => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(if changed {
        Outcome::Done
    } else {
        Outcome::AlreadyDone
    })
}
