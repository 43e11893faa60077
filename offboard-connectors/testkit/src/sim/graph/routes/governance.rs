//! Entitlement management (access packages) of the simulated tenant.
//!
//! - Access packages ([`GraphTenant::add_access_package`]), each with one assignment policy,
//!   and assignments ([`GraphTenant::assign_access_package`]) in a state of the spec's
//!   `accessPackageAssignmentState` enum (`delivered`, `expired`, …).
//! - `GET /identityGovernance/entitlementManagement/assignments` and `…/assignmentRequests`
//!   need `EntitlementManagement.Read.All`. Each accepts exactly one `$filter`:
//!   `target/objectId eq '…'` for assignments and `assignment/target/objectId eq '…'` for
//!   requests (any other filter is a 400, as Graph refuses filters it does not support), and
//!   `$expand` of `target`, `accessPackage`, `assignmentPolicy` (assignments) or `assignment`,
//!   `accessPackage`, `requestor` (requests); navigation properties are only in the answer
//!   when expanded. The lists include expired assignments, as Graph's do.
//! - `POST …/assignmentRequests` needs `EntitlementManagement.ReadWrite.All` and takes
//!   `adminRemove` (`{"requestType": "adminRemove", "assignment": {"id": …}}`) and `adminAdd`
//!   (`{"requestType": "adminAdd", "assignment": {"targetId", "assignmentPolicyId",
//!   "accessPackageId"}}`, the docs' example). It answers 201 with the request in state
//!   `submitted`; nothing changes until [`GraphTenant::deliver_access_package_requests`]
//!   plays the asynchronous processing (a removed assignment becomes `expired`, an added one
//!   `delivered`). A second request for an assignment with one still open, a removal of an
//!   assignment not delivered, an add for a user who already holds that package and policy,
//!   and any other request type (the others are for users or the system) are 400s.
//! - `POST …/assignmentRequests/{id}/cancel`: application permissions are "Not supported"
//!   (the specs README), so the app-only token always gets a 403.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Query, Reply, bad_request, denied, err, filter, insufficient, page};
use crate::sim::graph::{GraphTenant, State, new_id, now_iso};

const READ: &str = "EntitlementManagement.Read.All";
const WRITE: &str = "EntitlementManagement.ReadWrite.All";

/// The states of a request still being processed.
const OPEN: [&str; 4] = ["submitted", "pendingApproval", "delivering", "scheduled"];

/// The entitlement-management objects of the tenant.
#[derive(Debug, Default)]
pub(crate) struct Governance {
    /// Package id → (display name, its assignment policy id).
    packages: BTreeMap<String, (String, String)>,
    assignments: BTreeMap<String, Assignment>,
    requests: BTreeMap<String, Request>,
    /// Deliver submitted requests at the next read.
    deliver_on_read: bool,
}

impl Governance {
    /// The assignment policy of `package` (empty when unknown).
    fn policy_of(&self, package: &str) -> String {
        self.packages
            .get(package)
            .map(|(_, p)| p.clone())
            .unwrap_or_default()
    }

    fn deliver(&mut self) {
        let now = now_iso();
        for r in self.requests.values_mut() {
            if r.state != "submitted" {
                continue;
            }
            match r.request_type.as_str() {
                "adminRemove" => {
                    if let Some(a) = self.assignments.get_mut(&r.assignment) {
                        a.state = "expired".into();
                        a.expired = Some(now.clone());
                    }
                }
                "adminAdd" => {
                    self.assignments.insert(
                        r.assignment.clone(),
                        Assignment {
                            target: r.target.clone(),
                            package: r.package.clone(),
                            policy: r.policy.clone(),
                            state: "delivered".into(),
                            expired: None,
                        },
                    );
                }
                _ => continue,
            }
            r.state = "delivered".into();
            r.completed = Some(now.clone());
        }
    }
}

#[derive(Debug, Clone)]
struct Assignment {
    target: String,
    package: String,
    policy: String,
    state: String,
    expired: Option<String>,
}

#[derive(Debug, Clone)]
struct Request {
    request_type: String,
    state: String,
    requestor: String,
    /// The assignment it removes, or the one it creates once delivered.
    assignment: String,
    target: String,
    package: String,
    policy: String,
    created: String,
    completed: Option<String>,
}

/// An access package assignment's state, for assertions
/// ([`GraphTenant::access_package_assignments`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessPackageAssignmentState {
    /// The assignment id.
    pub id: String,
    /// The access package id.
    pub access_package: String,
    /// The assignment policy id.
    pub policy: String,
    /// `state` (`delivered`, `expired`, …).
    pub state: String,
}

/// An access package assignment request, for assertions
/// ([`GraphTenant::access_package_requests`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessPackageRequestState {
    /// The request id.
    pub id: String,
    /// `requestType` (`adminRemove`, `adminAdd`, `userAdd`, …).
    pub request_type: String,
    /// `state` (`submitted`, `pendingApproval`, `delivered`, …).
    pub state: String,
    /// The assignment it removes or creates.
    pub assignment: String,
    /// The access package id.
    pub access_package: String,
}

impl State {
    /// Forgets a removed user's assignments and requests.
    pub(crate) fn remove_governance_of(&mut self, user: &str) {
        let g = &mut self.governance;
        g.assignments.retain(|_, a| a.target != user);
        g.requests.retain(|_, r| r.target != user);
    }
}

impl GraphTenant {
    /// Adds an access package (with one assignment policy); returns its id.
    pub fn add_access_package(&self, display_name: impl Into<String>) -> String {
        let id = new_id();
        self.shared
            .state()
            .governance
            .packages
            .insert(id.clone(), (display_name.into(), new_id()));
        id
    }

    /// The id of the assignment policy of access package `package` (empty when unknown).
    pub fn access_package_policy(&self, package: &str) -> String {
        self.shared.state().governance.policy_of(package)
    }

    /// Assigns `user` access package `package` in `state` (e.g. `delivered`, `expired`);
    /// returns the assignment id.
    pub fn assign_access_package(&self, user: &str, package: &str, state: &str) -> String {
        let id = new_id();
        let mut s = self.shared.state();
        let policy = s.governance.policy_of(package);
        s.governance.assignments.insert(
            id.clone(),
            Assignment {
                target: user.to_owned(),
                package: package.to_owned(),
                policy,
                state: state.to_owned(),
                expired: (state == "expired").then(now_iso),
            },
        );
        id
    }

    /// Records a request by `user` for access package `package` awaiting approval (a
    /// `userAdd` in state `pendingApproval`); returns the request id.
    pub fn request_access_package(&self, user: &str, package: &str) -> String {
        let id = new_id();
        let mut s = self.shared.state();
        let policy = s.governance.policy_of(package);
        s.governance.requests.insert(
            id.clone(),
            Request {
                request_type: "userAdd".into(),
                state: "pendingApproval".into(),
                requestor: user.to_owned(),
                assignment: new_id(),
                target: user.to_owned(),
                package: package.to_owned(),
                policy,
                created: now_iso(),
                completed: None,
            },
        );
        id
    }

    /// Plays entitlement management's asynchronous processing: every open `adminRemove` and
    /// `adminAdd` request is delivered (the assignment removed, i.e. `expired`, or created
    /// `delivered`). Requests awaiting approval stay as they are.
    pub fn deliver_access_package_requests(&self) {
        self.shared.state().governance.deliver();
    }

    /// With `true`, the requests submitted so far are delivered when the assignments or
    /// requests are next read (processing that finishes between two calls, for suites that
    /// cannot wait); by default they stay `submitted` until
    /// [`GraphTenant::deliver_access_package_requests`].
    pub fn deliver_access_package_requests_on_read(&self, on: bool) {
        self.shared.state().governance.deliver_on_read = on;
    }

    /// The access package assignments whose target is `user`, expired ones included.
    pub fn access_package_assignments(&self, user: &str) -> Vec<AccessPackageAssignmentState> {
        let s = self.shared.state();
        s.governance
            .assignments
            .iter()
            .filter(|(_, a)| a.target == user)
            .map(|(id, a)| AccessPackageAssignmentState {
                id: id.clone(),
                access_package: a.package.clone(),
                policy: a.policy.clone(),
                state: a.state.clone(),
            })
            .collect()
    }

    /// The access package requests whose target is `user`.
    pub fn access_package_requests(&self, user: &str) -> Vec<AccessPackageRequestState> {
        let s = self.shared.state();
        s.governance
            .requests
            .iter()
            .filter(|(_, r)| r.target == user)
            .map(|(id, r)| AccessPackageRequestState {
                id: id.clone(),
                request_type: r.request_type.clone(),
                state: r.state.clone(),
                assignment: r.assignment.clone(),
                access_package: r.package.clone(),
            })
            .collect()
    }
}

/// The `$expand` items, each one of `allowed`; a 400 otherwise.
fn expand<'a>(query: &'a Query, allowed: &[&str]) -> Result<Vec<&'a str>, Reply> {
    let Some(list) = query.get("$expand") else {
        return Ok(Vec::new());
    };
    let items: Vec<&str> = list.split(',').map(str::trim).collect();
    match items.iter().find(|i| !allowed.contains(i)) {
        Some(bad) => Err(bad_request(&format!(
            "Could not find a property named '{bad}' on type 'microsoft.graph.{}'.",
            if allowed.contains(&"assignmentPolicy") {
                "accessPackageAssignment"
            } else {
                "accessPackageAssignmentRequest"
            }
        ))),
        None => Ok(items),
    }
}

/// The user id the one supported `$filter` term names (`None`: no filter); a 400 for any
/// other filter.
fn filter_target(query: &Query, prop: &str) -> Result<Option<String>, Reply> {
    let Some(expr) = query.get("$filter") else {
        return Ok(None);
    };
    match filter::parse(expr, &[prop], &[]) {
        Ok(terms) if terms.len() == 1 => Ok(terms.into_iter().next().map(|t| t.value)),
        Ok(_) => Err(err(
            400,
            "BadRequest",
            "Invalid filter clause: only one term is supported.",
        )),
        Err(message) => Err(err(400, "BadRequest", &message)),
    }
}

fn subject(s: &State, user: &str) -> Value {
    let u = s.users.get(user);
    json!({
        "objectId": user,
        "displayName": u.map(|u| u.display_name.clone()),
        "principalName": u.map(|u| u.upn.clone()),
        "email": u.and_then(|u| u.mail.clone()),
        "subjectType": "user",
    })
}

fn package_json(s: &State, package: &str) -> Value {
    json!({
        "id": package,
        "displayName": s.governance.packages.get(package).map(|(n, _)| n.clone()),
    })
}

fn assignment_json(s: &State, id: &str, a: &Assignment, expanded: &[&str]) -> Value {
    let status = match a.state.as_str() {
        "delivered" => "Delivered",
        "expired" => "Expired",
        "delivering" => "Delivering",
        _ => "",
    };
    let mut v = json!({
        "id": id,
        "state": a.state,
        "status": status,
        "expiredDateTime": a.expired,
        "schedule": {"startDateTime": "2024-01-01T00:00:00Z", "expiration": {"type": "noExpiration"}},
    });
    for e in expanded {
        v[*e] = match *e {
            "target" => subject(s, &a.target),
            "accessPackage" => package_json(s, &a.package),
            _ => json!({"id": a.policy}),
        };
    }
    v
}

fn request_json(s: &State, id: &str, r: &Request, expanded: &[&str]) -> Value {
    let mut v = json!({
        "id": id,
        "requestType": r.request_type,
        "state": r.state,
        "status": if r.state == "delivered" { "Delivered" } else { "Accepted" },
        "createdDateTime": r.created,
        "completedDateTime": r.completed,
    });
    for e in expanded {
        v[*e] = match *e {
            "assignment" => {
                let state = s
                    .governance
                    .assignments
                    .get(&r.assignment)
                    .map(|a| a.state.clone());
                json!({"id": r.assignment, "state": state, "target": subject(s, &r.target)})
            }
            "accessPackage" => package_json(s, &r.package),
            _ => subject(s, &r.requestor),
        };
    }
    v
}

/// `GET …/assignments` (`requests` false) or `GET …/assignmentRequests` (true).
fn list(s: &State, base: &str, query: &Query, requests: bool) -> Reply {
    if let Some(no) = denied(s, READ) {
        return no;
    }
    let (name, expandable, prop): (_, &[&str], _) = if requests {
        (
            "assignmentRequests",
            &["assignment", "accessPackage", "requestor"],
            "assignment/target/objectId",
        )
    } else {
        (
            "assignments",
            &["target", "accessPackage", "assignmentPolicy"],
            "target/objectId",
        )
    };
    let (expanded, target) = match (expand(query, expandable), filter_target(query, prop)) {
        (Ok(e), Ok(t)) => (e, t),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let wanted = |user: &str| target.as_deref().is_none_or(|t| t == user);
    let g = &s.governance;
    let items = if requests {
        g.requests
            .iter()
            .filter(|(_, r)| wanted(&r.target))
            .map(|(id, r)| request_json(s, id, r, &expanded))
            .collect()
    } else {
        g.assignments
            .iter()
            .filter(|(_, a)| wanted(&a.target))
            .map(|(id, a)| assignment_json(s, id, a, &expanded))
            .collect()
    };
    page(
        s,
        base,
        &["identityGovernance", "entitlementManagement", name],
        query,
        items,
    )
}

/// Every route under `/identityGovernance/entitlementManagement`.
pub(super) fn route(
    s: &mut State,
    base: &str,
    method: &str,
    rest: &[&str],
    query: &Query,
    body: Option<&Value>,
) -> Reply {
    if method == "GET" && s.governance.deliver_on_read {
        s.governance.deliver();
    }
    match (method, rest) {
        ("GET", ["assignments"]) => list(s, base, query, false),
        ("GET", ["assignmentRequests"]) => list(s, base, query, true),
        ("POST", ["assignmentRequests"]) => {
            if let Some(no) = denied(s, WRITE) {
                return no;
            }
            create_request(s, body)
        }
        ("POST", ["assignmentRequests", _, "cancel"]) => {
            // "Application: Not supported" (the cancel page's permissions table).
            insufficient()
        }
        _ => super::no_route(),
    }
}

/// `POST …/assignmentRequests`: `adminRemove` and `adminAdd`.
fn create_request(s: &mut State, body: Option<&Value>) -> Reply {
    let Some(body) = body.and_then(Value::as_object) else {
        return bad_request("The request body must be a JSON object.");
    };
    let field = |v: Option<&Value>, k: &str| {
        v.and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let assignment = body.get("assignment");
    let request_type = body
        .get("requestType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let g = &s.governance;
    let open_for = |aid: &str| {
        g.requests
            .values()
            .any(|r| r.assignment == aid && OPEN.contains(&r.state.as_str()))
    };
    let request = match request_type {
        "adminRemove" => {
            let Some(aid) = field(assignment, "id") else {
                return bad_request("An adminRemove request needs assignment.id.");
            };
            let Some(a) = g.assignments.get(&aid) else {
                return err(
                    404,
                    "ResourceNotFound",
                    &format!("Access package assignment '{aid}' was not found."),
                );
            };
            if a.state != "delivered" {
                return bad_request(&format!(
                    "Access package assignment '{aid}' is {} and cannot be removed.",
                    a.state
                ));
            }
            if open_for(&aid) {
                return bad_request(&format!(
                    "A request for access package assignment '{aid}' is already in progress."
                ));
            }
            Request {
                request_type: request_type.into(),
                state: "submitted".into(),
                requestor: String::new(),
                assignment: aid,
                target: a.target.clone(),
                package: a.package.clone(),
                policy: a.policy.clone(),
                created: now_iso(),
                completed: None,
            }
        }
        "adminAdd" => {
            let (Some(target), Some(policy), Some(package)) = (
                field(assignment, "targetId"),
                field(assignment, "assignmentPolicyId"),
                field(assignment, "accessPackageId"),
            ) else {
                return bad_request(
                    "An adminAdd request needs assignment.targetId, assignment.assignmentPolicyId \
                     and assignment.accessPackageId.",
                );
            };
            if !s.users.contains_key(&target) {
                return err(
                    404,
                    "ResourceNotFound",
                    &format!("Subject '{target}' was not found."),
                );
            }
            if g.packages.get(&package).is_none_or(|(_, p)| *p != policy) {
                return bad_request("The assignment policy does not belong to the access package.");
            }
            let held = g.assignments.values().any(|a| {
                a.target == target
                    && a.package == package
                    && a.policy == policy
                    && a.state == "delivered"
            });
            let open = g.requests.values().any(|r| {
                r.target == target && r.package == package && OPEN.contains(&r.state.as_str())
            });
            if held || open {
                return bad_request(
                    "The target already has an assignment or an open request for this access \
                     package and policy.",
                );
            }
            Request {
                request_type: request_type.into(),
                state: "submitted".into(),
                requestor: String::new(),
                assignment: new_id(),
                target,
                package,
                policy,
                created: now_iso(),
                completed: None,
            }
        }
        other => {
            return bad_request(&format!(
                "Request type '{other}' is not supported for an application; use adminAdd or \
                 adminRemove."
            ));
        }
    };
    let id = new_id();
    let json = request_json(s, &id, &request, &[]);
    s.governance.requests.insert(id, request);
    (201, Some(json))
}
