//! Directory roles of the simulated tenant: role definitions, active role assignments and
//! PIM eligibilities, one state behind three views.
//!
//! - Role definitions: Entra's built-in roles ([`BUILT_IN_ROLES`], real template ids and
//!   display names; a built-in definition's id is its template id, as in Graph) and custom
//!   ones ([`GraphTenant::add_directory_role`] with another name).
//! - Active assignments (`roleManagement/directory/roleAssignments`) and eligibilities
//!   (`roleEligibilitySchedules`): a principal (a user or a role-assignable group), a role
//!   definition and a directory scope (`/` or `/administrativeUnits/{id}`).
//! - The legacy view (`/directoryRoles`, `directoryRole` entries of `memberOf`) is derived:
//!   a role is activated once anyone is assigned it, and its members are the principals with
//!   an active tenant-wide (`/`) assignment. Removing a member there removes that assignment.
//!
//! Routes and permissions (403 `Authorization_RequestDenied` without):
//! - `GET /directoryRoles`, `GET /directoryRoles/{id}/members`,
//!   `GET /roleManagement/directory/roleAssignments` and `…/roleEligibilitySchedules`:
//!   `RoleManagement.Read.Directory` (held until withheld) or the write permission.
//!   `$filter` takes `principalId eq '…'` / `roleDefinitionId eq '…'` terms joined by ` or `;
//!   `$expand` takes `roleDefinition` or `principal`; anything else is a 400.
//! - `DELETE /directoryRoles/{id}/members/{object}/$ref` (404 for a non-member),
//!   `DELETE /roleManagement/directory/roleAssignments/{id}` (404 for an unknown id) and
//!   `POST …/roleAssignmentScheduleRequests`: `RoleManagement.ReadWrite.Directory`, which the
//!   app holds only after [`GraphTenant::grant_role_management`] (as for role-assignable
//!   groups) and until it is withheld. `POST …/roleEligibilityScheduleRequests` also accepts
//!   `RoleEligibilitySchedule.ReadWrite.Directory` (granted with the same call).
//! - Schedule requests: `action` (`adminAssign` or `adminRemove`; the other actions of the
//!   enum are self-service or renewals and answer 400 here), `principalId`,
//!   `roleDefinitionId` and `directoryScopeId` are required (400 without); `adminAssign` also
//!   needs `scheduleInfo.expiration.type` (`afterDateTime` with its `endDateTime`). Assigning
//!   what exists is a 400 `RoleAssignmentExists`; removing what does not is a 400
//!   `RoleAssignmentDoesNotExist` / `RoleEligibilityScheduleDoesNotExist` (the docs name no
//!   code for it: these are the simulator's choice). 201 with the request, `status`
//!   `Provisioned` (assign) or `Revoked` (remove).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::{Query, Reply, bad_request, err, filter, insufficient, not_found, page};
use crate::sim::graph::{GraphTenant, State, new_id, now_iso};

/// Global Administrator's template id.
pub const GLOBAL_ADMINISTRATOR: &str = "62e90394-69f5-4237-9190-012177145e10";
/// Privileged Role Administrator's template id.
pub const PRIVILEGED_ROLE_ADMINISTRATOR: &str = "e8611ab8-c189-46e8-94e1-60213ab1f814";
/// Security Administrator's template id.
pub const SECURITY_ADMINISTRATOR: &str = "194ae4cb-b126-40b2-bd5b-6091b380977d";
/// User Administrator's template id.
pub const USER_ADMINISTRATOR: &str = "fe930be7-5e62-47db-91af-98c3a49a38b1";
/// Helpdesk Administrator's template id.
pub const HELPDESK_ADMINISTRATOR: &str = "729827e3-9c14-49f7-bb1b-9608f156bbb8";
/// Reports Reader's template id.
pub const REPORTS_READER: &str = "4a5d8f65-41da-4de4-8968-e035b65339cf";
/// Global Reader's template id.
pub const GLOBAL_READER: &str = "f2ef992c-3afb-46b9-b7cf-a126ee74c451";

/// Entra's built-in roles the tenant knows: (template id, display name), from Microsoft's
/// "Microsoft Entra built-in roles" page.
pub const BUILT_IN_ROLES: &[(&str, &str)] = &[
    (GLOBAL_ADMINISTRATOR, "Global Administrator"),
    (
        PRIVILEGED_ROLE_ADMINISTRATOR,
        "Privileged Role Administrator",
    ),
    (SECURITY_ADMINISTRATOR, "Security Administrator"),
    (USER_ADMINISTRATOR, "User Administrator"),
    (HELPDESK_ADMINISTRATOR, "Helpdesk Administrator"),
    (REPORTS_READER, "Reports Reader"),
    (GLOBAL_READER, "Global Reader"),
    (
        "7be44c8a-adaf-4e2a-84d6-ab2649e08a13",
        "Privileged Authentication Administrator",
    ),
    (
        "b1be1c3e-b65d-4f19-8427-f6fa0d97feb9",
        "Conditional Access Administrator",
    ),
    (
        "29232cdf-9323-42fd-ade2-1d097af3e4de",
        "Exchange Administrator",
    ),
    (
        "f28a1f50-f6e7-4571-818b-6a12f2af6b6c",
        "SharePoint Administrator",
    ),
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
        "966707d0-3269-4727-9be2-8c3a10f19b9d",
        "Password Administrator",
    ),
    ("88d8e3e3-8f55-4a1e-953a-9b9898b8876b", "Directory Readers"),
];

const READ: &str = "RoleManagement.Read.Directory";
const WRITE: &str = "RoleManagement.ReadWrite.Directory";
const ELIGIBILITY_WRITE: &str = "RoleEligibilitySchedule.ReadWrite.Directory";

/// One active assignment or eligibility.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    principal: String,
    role: String,
    scope: String,
    schedule: Value,
    created: String,
}

/// The role state of the tenant.
#[derive(Debug, Clone, Default)]
pub(crate) struct Roles {
    /// Custom role definitions: id → display name.
    custom: BTreeMap<String, String>,
    /// Activated directory roles: template id → directoryRole object id.
    activated: BTreeMap<String, String>,
    /// Active assignments by id.
    active: BTreeMap<String, Grant>,
    /// Eligibility schedules by id.
    eligible: BTreeMap<String, Grant>,
}

/// An active role assignment or an eligibility, for assertions
/// ([`GraphTenant::role_assignments`], [`GraphTenant::role_eligibilities`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RoleGrantState {
    /// The role definition id (a built-in role's template id).
    pub role_definition_id: String,
    /// `directoryScopeId`: `/` or `/administrativeUnits/{id}`.
    pub directory_scope_id: String,
    /// The assignment or eligibility schedule id.
    pub id: String,
}

impl Roles {
    fn name(&self, role: &str) -> Option<String> {
        BUILT_IN_ROLES
            .iter()
            .find(|(id, _)| *id == role)
            .map(|(_, n)| (*n).to_owned())
            .or_else(|| self.custom.get(role).cloned())
    }

    fn activate(&mut self, template: &str) -> String {
        self.activated
            .entry(template.to_owned())
            .or_insert_with(new_id)
            .clone()
    }

    fn add(&mut self, active: bool, principal: &str, role: &str, scope: &str, schedule: Value) {
        let grant = Grant {
            principal: principal.to_owned(),
            role: role.to_owned(),
            scope: scope.to_owned(),
            schedule,
            created: now_iso(),
        };
        self.activate(role);
        let map = if active {
            &mut self.active
        } else {
            &mut self.eligible
        };
        map.insert(new_id(), grant);
    }

    fn find(&self, active: bool, principal: &str, role: &str, scope: &str) -> Option<String> {
        let map = if active { &self.active } else { &self.eligible };
        map.iter()
            .find(|(_, g)| g.principal == principal && g.role == role && g.scope == scope)
            .map(|(id, _)| id.clone())
    }

    /// Forgets a removed principal.
    pub(crate) fn forget(&mut self, principal: &str) {
        self.active.retain(|_, g| g.principal != principal);
        self.eligible.retain(|_, g| g.principal != principal);
    }

    /// Gives `principal` the activated directory role `object` (legacy id) tenant-wide.
    pub(crate) fn add_legacy_member(&mut self, object: &str, principal: &str) {
        let template = self
            .activated
            .iter()
            .find(|(_, o)| *o == object)
            .map(|(t, _)| t.clone());
        if let Some(t) = template
            && self.find(true, principal, &t, "/").is_none()
        {
            self.add(true, principal, &t, "/", no_expiration());
        }
    }

    /// The legacy directoryRole object ids `principal` is a member of.
    pub(crate) fn legacy_roles_of(&self, principal: &str) -> BTreeSet<String> {
        self.active
            .values()
            .filter(|g| g.principal == principal && g.scope == "/")
            .filter_map(|g| self.activated.get(&g.role).cloned())
            .collect()
    }

    fn legacy_json(&self, template: &str, object: &str) -> Value {
        let name = self.name(template).unwrap_or_default();
        json!({
            "@odata.type": "#microsoft.graph.directoryRole",
            "id": object,
            "displayName": name,
            "roleTemplateId": template,
            "description": format!("{name} (simulated)"),
        })
    }

    /// The `directoryRole` entries of `principal`'s `memberOf`.
    pub(crate) fn member_of(&self, principal: &str) -> Vec<Value> {
        let mut templates: Vec<&String> = self
            .active
            .values()
            .filter(|g| g.principal == principal && g.scope == "/")
            .map(|g| &g.role)
            .collect();
        templates.sort();
        templates.dedup();
        templates
            .into_iter()
            .filter_map(|t| Some(self.legacy_json(t, self.activated.get(t)?)))
            .collect()
    }

    fn definition_json(&self, role: &str) -> Value {
        let builtin = BUILT_IN_ROLES.iter().any(|(id, _)| *id == role);
        json!({
            "id": role,
            "displayName": self.name(role),
            "templateId": role,
            "isBuiltIn": builtin,
            "isEnabled": true,
        })
    }

    fn grants_of(&self, active: bool, principal: &str) -> Vec<RoleGrantState> {
        let map = if active { &self.active } else { &self.eligible };
        let mut out: Vec<RoleGrantState> = map
            .iter()
            .filter(|(_, g)| g.principal == principal)
            .map(|(id, g)| RoleGrantState {
                role_definition_id: g.role.clone(),
                directory_scope_id: g.scope.clone(),
                id: id.clone(),
            })
            .collect();
        out.sort();
        out
    }
}

fn no_expiration() -> Value {
    json!({"startDateTime": now_iso(), "expiration": {"type": "noExpiration"}})
}

impl GraphTenant {
    /// Adds an activated directory role: a built-in one by its display name (e.g. "Global
    /// Reader", see [`BUILT_IN_ROLES`]), else a custom role definition of that name. Returns
    /// the directoryRole object id (for [`crate::sim::graph::NewUser::roles`], which assigns it
    /// tenant-wide).
    pub fn add_directory_role(&self, display_name: impl Into<String>) -> String {
        let name = display_name.into();
        let mut s = self.shared.state();
        let template = match BUILT_IN_ROLES.iter().find(|(_, n)| *n == name) {
            Some((id, _)) => (*id).to_owned(),
            None => {
                let id = new_id();
                s.roles.custom.insert(id.clone(), name);
                id
            }
        };
        s.roles.activate(&template)
    }

    /// Assigns `principal` (a user or role-assignable group id) the role definition `role`
    /// (a template id, e.g. [`GLOBAL_ADMINISTRATOR`]) actively at `scope` (`/` or
    /// `/administrativeUnits/{id}`), as an administrator would.
    pub fn assign_role(&self, principal: &str, role: &str, scope: &str) {
        self.shared
            .state()
            .roles
            .add(true, principal, role, scope, no_expiration());
    }

    /// Makes `principal` eligible (PIM) for `role` at `scope`, until `end` (ISO 8601) or
    /// without expiration.
    pub fn add_role_eligibility(
        &self,
        principal: &str,
        role: &str,
        scope: &str,
        end: Option<&str>,
    ) {
        let schedule = match end {
            Some(end) => json!({
                "startDateTime": now_iso(),
                "expiration": {"type": "afterDateTime", "endDateTime": end},
            }),
            None => no_expiration(),
        };
        self.shared
            .state()
            .roles
            .add(false, principal, role, scope, schedule);
    }

    /// The active role assignments of `principal`, sorted.
    pub fn role_assignments(&self, principal: &str) -> Vec<RoleGrantState> {
        self.shared.state().roles.grants_of(true, principal)
    }

    /// The eligibilities of `principal`, sorted.
    pub fn role_eligibilities(&self, principal: &str) -> Vec<RoleGrantState> {
        self.shared.state().roles.grants_of(false, principal)
    }

    /// The `scheduleInfo` of `principal`'s eligibility for `role` at `scope`.
    pub fn role_eligibility_schedule(
        &self,
        principal: &str,
        role: &str,
        scope: &str,
    ) -> Option<Value> {
        let s = self.shared.state();
        let id = s.roles.find(false, principal, role, scope)?;
        Some(s.roles.eligible[&id].schedule.clone())
    }
}

fn may_write(s: &State) -> bool {
    s.role_management && !s.withheld.contains(WRITE)
}

fn check_read(s: &State) -> Option<Reply> {
    (s.withheld.contains(READ) && !may_write(s)).then(insufficient)
}

fn check_write(s: &State, eligibility: bool) -> Option<Reply> {
    let ok = may_write(s)
        || (eligibility && s.role_management && !s.withheld.contains(ELIGIBILITY_WRITE));
    (!ok).then(insufficient)
}

/// `/directoryRoles…`.
pub(super) fn directory_roles_route(
    s: &mut State,
    base: &str,
    method: &str,
    rest: &[&str],
    query: &Query,
) -> Reply {
    let write = method == "DELETE";
    if let Some(no) = if write {
        check_write(s, false)
    } else {
        check_read(s)
    } {
        return no;
    }
    match (method, rest) {
        ("GET", []) => {
            let items = s
                .roles
                .activated
                .iter()
                .map(|(t, o)| s.roles.legacy_json(t, o))
                .collect();
            page(s, base, &["directoryRoles"], query, items)
        }
        ("GET", [rid, "members"]) => {
            let Some(template) = legacy_template(s, rid) else {
                return not_found(rid);
            };
            let principals: BTreeSet<&String> = s
                .roles
                .active
                .values()
                .filter(|g| g.role == template && g.scope == "/")
                .map(|g| &g.principal)
                .collect();
            let items = principals
                .into_iter()
                .filter_map(|p| principal_json(s, p))
                .collect();
            page(s, base, &["directoryRoles", rid, "members"], query, items)
        }
        ("DELETE", [rid, "members", member, "$ref"]) => {
            let Some(template) = legacy_template(s, rid) else {
                return not_found(rid);
            };
            let before = s.roles.active.len();
            s.roles
                .active
                .retain(|_, g| !(g.principal == *member && g.role == template && g.scope == "/"));
            if s.roles.active.len() == before {
                return not_found(member);
            }
            (204, None)
        }
        _ => super::no_route(),
    }
}

fn legacy_template(s: &State, object: &str) -> Option<String> {
    s.roles
        .activated
        .iter()
        .find(|(_, o)| *o == object)
        .map(|(t, _)| t.clone())
}

fn principal_json(s: &State, id: &str) -> Option<Value> {
    if let Some(u) = s.users.get(id) {
        return Some(super::directory_user(u));
    }
    s.groups.get(id).map(|g| super::group_json(id, g))
}

/// `/roleManagement/directory/…`.
pub(super) fn role_management_route(
    s: &mut State,
    base: &str,
    method: &str,
    rest: &[&str],
    query: &Query,
    body: Option<&Value>,
) -> Reply {
    match (method, rest) {
        ("GET", [kind @ ("roleAssignments" | "roleEligibilitySchedules")]) => {
            if let Some(no) = check_read(s) {
                return no;
            }
            list(s, base, kind, query)
        }
        ("DELETE", ["roleAssignments", id]) => {
            if let Some(no) = check_write(s, false) {
                return no;
            }
            if s.roles.active.remove(*id).is_none() {
                return not_found(id);
            }
            (204, None)
        }
        (
            "POST",
            [kind @ ("roleAssignmentScheduleRequests" | "roleEligibilityScheduleRequests")],
        ) => {
            let active = *kind == "roleAssignmentScheduleRequests";
            if let Some(no) = check_write(s, !active) {
                return no;
            }
            schedule_request(s, active, body)
        }
        _ => super::no_route(),
    }
}

fn list(s: &State, base: &str, kind: &str, query: &Query) -> Reply {
    let terms = match query.get("$filter") {
        Some(f) => match filter::parse(f, &["principalId", "roleDefinitionId"], &[]) {
            Ok(t) => Some(t),
            Err(why) => return err(400, "Request_UnsupportedQuery", &why),
        },
        None => None,
    };
    let expand: Vec<&str> = match query.get("$expand") {
        Some(e) => e.split(',').map(str::trim).collect(),
        None => Vec::new(),
    };
    if let Some(bad) = expand
        .iter()
        .find(|e| !matches!(**e, "roleDefinition" | "principal"))
    {
        return bad_request(&format!(
            "Could not find a navigation property named '{bad}'."
        ));
    }
    let active = kind == "roleAssignments";
    let map = if active {
        &s.roles.active
    } else {
        &s.roles.eligible
    };
    let items = map
        .iter()
        .filter(|(_, g)| {
            terms.as_ref().is_none_or(|terms| {
                terms.iter().any(|t| {
                    let field = if t.prop == "principalId" {
                        &g.principal
                    } else {
                        &g.role
                    };
                    field.eq_ignore_ascii_case(&t.value)
                })
            })
        })
        .map(|(id, g)| {
            let mut v = json!({
                "id": id,
                "principalId": g.principal,
                "roleDefinitionId": g.role,
                "directoryScopeId": g.scope,
                "appScopeId": null,
            });
            if !active {
                v["memberType"] = json!("Direct");
                v["status"] = json!("Provisioned");
                v["scheduleInfo"] = g.schedule.clone();
                v["createdDateTime"] = json!(g.created);
                v["createdUsing"] = json!(id);
            }
            if expand.contains(&"roleDefinition") {
                v["roleDefinition"] = s.roles.definition_json(&g.role);
            }
            if expand.contains(&"principal") {
                v["principal"] = principal_json(s, &g.principal).unwrap_or(Value::Null);
            }
            v
        })
        .collect();
    page(
        s,
        base,
        &["roleManagement", "directory", kind],
        query,
        items,
    )
}

const REQUEST_FIELDS: [&str; 10] = [
    "action",
    "principalId",
    "roleDefinitionId",
    "directoryScopeId",
    "appScopeId",
    "justification",
    "scheduleInfo",
    "ticketInfo",
    "isValidationOnly",
    "targetScheduleId",
];

fn schedule_request(s: &mut State, active: bool, body: Option<&Value>) -> Reply {
    let Some(fields) = body.and_then(Value::as_object) else {
        return bad_request("The request body must be a JSON object.");
    };
    if let Some(k) = fields
        .keys()
        .find(|k| !REQUEST_FIELDS.contains(&k.as_str()))
    {
        return bad_request(&format!(
            "The property '{k}' does not exist on type 'microsoft.graph.unifiedRole{}ScheduleRequest'.",
            if active { "Assignment" } else { "Eligibility" }
        ));
    }
    let text = |k: &str| {
        fields
            .get(k)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    };
    let (Some(action), Some(principal), Some(role), Some(scope)) = (
        text("action"),
        text("principalId"),
        text("roleDefinitionId"),
        text("directoryScopeId"),
    ) else {
        return bad_request(
            "action, principalId, roleDefinitionId and directoryScopeId are required.",
        );
    };
    if !matches!(action, "adminAssign" | "adminRemove") {
        return bad_request(&format!(
            "The action '{action}' is not supported by the simulated tenant (adminAssign and \
             adminRemove are)."
        ));
    }
    let au = scope
        .strip_prefix("/administrativeUnits/")
        .is_some_and(|a| !a.is_empty() && !a.contains('/'));
    if scope != "/" && !au {
        return bad_request(&format!("Invalid directoryScopeId '{scope}'."));
    }
    if s.roles.name(role).is_none() {
        // Simulator's choice: Graph documents no code for an unknown role definition.
        return err(
            400,
            "RoleDefinitionDoesNotExist",
            &format!("The role definition '{role}' does not exist."),
        );
    }
    let principal_ok = s
        .users
        .get(principal)
        .is_some_and(|u| u.deleted_at.is_none())
        || s.groups.get(principal).is_some_and(|g| g.role_assignable);
    if !principal_ok {
        // Simulator's choice: only users and role-assignable groups are principals here.
        return err(
            400,
            "InvalidPrincipal",
            &format!("'{principal}' is not a user or a role-assignable group."),
        );
    }
    let existing = s.roles.find(active, principal, role, scope);
    let status = if action == "adminAssign" {
        let Some(schedule) = fields.get("scheduleInfo").filter(|v| v.is_object()) else {
            return bad_request("scheduleInfo is required for adminAssign.");
        };
        let kind = schedule["expiration"]["type"].as_str().unwrap_or_default();
        match kind {
            "noExpiration" | "afterDuration" | "notSpecified" => {}
            "afterDateTime" if schedule["expiration"]["endDateTime"].is_string() => {}
            _ => return bad_request("scheduleInfo.expiration is invalid."),
        }
        if existing.is_some() {
            return err(
                400,
                "RoleAssignmentExists",
                "The Role assignment already exists.",
            );
        }
        s.roles
            .add(active, principal, role, scope, schedule.clone());
        "Provisioned"
    } else {
        let Some(id) = existing else {
            // Simulator's choice of code: the docs name none for removing what is not there.
            return if active {
                err(
                    400,
                    "RoleAssignmentDoesNotExist",
                    "The role assignment does not exist.",
                )
            } else {
                err(
                    400,
                    "RoleEligibilityScheduleDoesNotExist",
                    "The role eligibility schedule does not exist.",
                )
            };
        };
        if active {
            s.roles.active.remove(&id);
        } else {
            s.roles.eligible.remove(&id);
        }
        "Revoked"
    };
    let now = now_iso();
    (
        201,
        Some(json!({
            "id": new_id(),
            "action": action,
            "principalId": principal,
            "roleDefinitionId": role,
            "directoryScopeId": scope,
            "appScopeId": null,
            "justification": fields.get("justification"),
            "scheduleInfo": fields.get("scheduleInfo"),
            "status": status,
            "createdDateTime": now,
            "completedDateTime": now,
            "isValidationOnly": false,
        })),
    )
}
