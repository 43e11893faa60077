//! Entra Lifecycle Workflows of the simulated tenant (Microsoft Entra ID Governance).
//!
//! - `GET /identityGovernance/lifecycleWorkflows/workflows` lists the workflows (`id`,
//!   `displayName`, `category`, `isEnabled`, `tasks`); it needs `LifecycleWorkflows.Read.All`.
//! - `POST …/workflows/{id}/microsoft.graph.identityGovernance.activate` runs a workflow on
//!   demand for `{"subjects": [{"id": "<user id>"}, …]}` (required, at least one, each an
//!   existing user; 204). The route accepts the three spellings of its last segment
//!   (`microsoft.graph.identityGovernance.activate`, the reduced spec's
//!   `identityGovernance.activate`, and the docs page's `activate`). It needs
//!   `LifecycleWorkflows-Workflow.Activate` or `LifecycleWorkflows.ReadWrite.All`: the 403
//!   comes only when both are withheld. On-demand runs ignore the workflow's execution
//!   conditions (per the docs), so `isEnabled` and the category are not checked here.
//! - `GET …/workflows/{id}/userProcessingResults` lists each activation's result
//!   (`subject`, `processingStatus`, `workflowExecutionType: onDemand`, `scheduledDateTime`,
//!   `startedDateTime`, `completedDateTime`, `totalTasksCount`, `failedTasksCount`,
//!   `totalUnprocessedTasksCount`); `LifecycleWorkflows.Read.All`. `$filter=subject/id eq
//!   '<user id>'` narrows it to one subject (the form practitioners use; the v1.0 reference
//!   says only that `$filter` is supported): any other filter is a 400, and
//!   [`GraphTenant::refuse_result_filter`] makes the workflow refuse that one too. Graph
//!   processes runs asynchronously: each read moves the results it returns one step, `queued`
//!   → `inProgress` → `completed` (or `completedWithErrors` when the workflow was given failing
//!   tasks).
//!
//! When a result completes, the simulator carries out the built-in tasks it models on the
//! subject: "Disable user account" (`1dfdfcc7-52fa-4c2e-bf3a-e3919cc12950`) and "Remove user
//! from all groups" (`b3a31406-2a15-4c9a-b25b-a658fa5f07fc`, assigned cloud groups only).
//! Other task definitions are counted as processed without a modelled effect.

use serde_json::{Value, json};

use super::{Query, Reply, bad_request, insufficient, not_found, page};
use crate::sim::graph::{GraphTenant, State, filter, new_id, now_iso};

/// The built-in "Disable user account" task definition.
pub const DISABLE_USER_TASK: &str = "1dfdfcc7-52fa-4c2e-bf3a-e3919cc12950";
/// The built-in "Remove user from all groups" task definition.
pub const REMOVE_ALL_GROUPS_TASK: &str = "b3a31406-2a15-4c9a-b25b-a658fa5f07fc";

const READ: &str = "LifecycleWorkflows.Read.All";
const READ_WRITE: &str = "LifecycleWorkflows.ReadWrite.All";
const ACTIVATE: &str = "LifecycleWorkflows-Workflow.Activate";

/// A lifecycle workflow to create ([`GraphTenant::add_lifecycle_workflow`]).
#[derive(Debug, Clone)]
pub struct NewWorkflow {
    /// `displayName`.
    pub display_name: String,
    /// `category`: `joiner`, `leaver` or `mover`.
    pub category: String,
    /// `isEnabled`.
    pub enabled: bool,
    /// Its tasks: `(displayName, taskDefinitionId)`.
    pub tasks: Vec<(String, String)>,
    /// How many of its tasks fail in every run (the run then completes with errors).
    pub failing_tasks: u32,
}

impl NewWorkflow {
    /// An enabled leaver workflow that disables the user and removes them from all groups.
    pub fn leaver(display_name: impl Into<String>) -> Self {
        Self {
            display_name: display_name.into(),
            category: "leaver".into(),
            enabled: true,
            tasks: vec![
                ("Disable user account".into(), DISABLE_USER_TASK.into()),
                (
                    "Remove user from all groups".into(),
                    REMOVE_ALL_GROUPS_TASK.into(),
                ),
            ],
            failing_tasks: 0,
        }
    }
}

/// One on-demand run for one subject, for assertions ([`GraphTenant::lifecycle_runs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowRunState {
    /// The subject's user id.
    pub subject: String,
    /// `processingStatus`.
    pub status: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Workflow {
    display_name: String,
    category: String,
    enabled: bool,
    tasks: Vec<(String, String)>,
    failing_tasks: u32,
    results: Vec<Processing>,
    /// The subject filter on `userProcessingResults` is refused with a 400.
    filter_refused: bool,
}

#[derive(Debug, Clone)]
struct Processing {
    id: String,
    subject: String,
    status: &'static str,
    scheduled: String,
    started: Option<String>,
    completed: Option<String>,
}

impl GraphTenant {
    /// Creates a lifecycle workflow; returns its id.
    pub fn add_lifecycle_workflow(&self, new: NewWorkflow) -> String {
        let id = new_id();
        self.shared.state().workflows.insert(
            id.clone(),
            Workflow {
                display_name: new.display_name,
                category: new.category,
                enabled: new.enabled,
                tasks: new.tasks,
                failing_tasks: new.failing_tasks,
                results: Vec::new(),
                filter_refused: false,
            },
        );
        id
    }

    /// Makes `workflow` answer a `$filter` on its `userProcessingResults` with a 400, as a
    /// tenant would if Graph stopped accepting the undocumented subject filter.
    pub fn refuse_result_filter(&self, workflow: &str) {
        if let Some(w) = self.shared.state().workflows.get_mut(workflow) {
            w.filter_refused = true;
        }
    }

    /// The on-demand runs of a workflow so far, oldest first (empty for an unknown id).
    pub fn lifecycle_runs(&self, workflow: &str) -> Vec<WorkflowRunState> {
        self.shared
            .state()
            .workflows
            .get(workflow)
            .map(|w| {
                w.results
                    .iter()
                    .map(|r| WorkflowRunState {
                        subject: r.subject.clone(),
                        status: r.status.to_owned(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn workflow_json(id: &str, w: &Workflow) -> Value {
    json!({
        "id": id,
        "displayName": w.display_name,
        "category": w.category,
        "isEnabled": w.enabled,
        "isSchedulingEnabled": false,
        "tasks": w.tasks.iter().map(|(name, def)| json!({
            "displayName": name,
            "taskDefinitionId": def,
            "isEnabled": true,
            "category": w.category,
        })).collect::<Vec<_>>(),
    })
}

fn result_json(s: &State, w: &Workflow, r: &Processing) -> Value {
    let total = w.tasks.len() as u32;
    let done = r.completed.is_some();
    let upn = s.users.get(&r.subject).map(|u| u.upn.clone());
    json!({
        "id": r.id,
        "subject": {"id": r.subject, "userPrincipalName": upn},
        "processingStatus": r.status,
        "workflowExecutionType": "onDemand",
        "workflowVersion": 1,
        "scheduledDateTime": r.scheduled,
        "startedDateTime": r.started,
        "completedDateTime": r.completed,
        "totalTasksCount": total,
        "failedTasksCount": if done { w.failing_tasks.min(total) } else { 0 },
        "totalUnprocessedTasksCount": if done { 0 } else { total },
    })
}

/// The simulated `/identityGovernance/lifecycleWorkflows/workflows…` routes (`rest` follows
/// `workflows`).
pub(super) fn route(
    s: &mut State,
    base: &str,
    method: &str,
    rest: &[&str],
    query: &Query,
    body: Option<&Value>,
) -> Reply {
    match (method, rest) {
        ("GET", []) => {
            if let Some(no) = read_denied(s) {
                return no;
            }
            let items = s
                .workflows
                .iter()
                .map(|(id, w)| workflow_json(id, w))
                .collect();
            page(
                s,
                base,
                &["identityGovernance", "lifecycleWorkflows", "workflows"],
                query,
                items,
            )
        }
        ("POST", [wid, "identityGovernance.activate"]) => activate(s, wid, body),
        ("GET", [wid, "userProcessingResults"]) => {
            if let Some(no) = read_denied(s) {
                return no;
            }
            let Some(w) = s.workflows.get(*wid) else {
                return not_found(wid);
            };
            let subjects = match query.get("$filter") {
                None => None,
                Some(_) if w.filter_refused => {
                    return bad_request(
                        "Invalid filter clause: the property 'subject' cannot be filtered.",
                    );
                }
                Some(f) => match filter::parse(f, &["subject/id"], &[]) {
                    Ok(terms) => Some(terms.into_iter().map(|t| t.value).collect::<Vec<_>>()),
                    Err(why) => return bad_request(&why),
                },
            };
            let wanted =
                |r: &Processing| subjects.as_ref().is_none_or(|ids| ids.contains(&r.subject));
            advance(s, wid, &wanted);
            let w = &s.workflows[*wid];
            let items = w
                .results
                .iter()
                .filter(|r| wanted(r))
                .map(|r| result_json(s, w, r))
                .collect();
            page(
                s,
                base,
                &[
                    "identityGovernance",
                    "lifecycleWorkflows",
                    "workflows",
                    wid,
                    "userProcessingResults",
                ],
                query,
                items,
            )
        }
        _ => super::no_route(),
    }
}

fn read_denied(s: &State) -> Option<Reply> {
    (s.withheld.contains(READ) && s.withheld.contains(READ_WRITE)).then(insufficient)
}

fn activate(s: &mut State, wid: &str, body: Option<&Value>) -> Reply {
    if s.withheld.contains(ACTIVATE) && s.withheld.contains(READ_WRITE) {
        return insufficient();
    }
    if !s.workflows.contains_key(wid) {
        return not_found(wid);
    }
    let Some(subjects) = body
        .and_then(|b| b.get("subjects"))
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
    else {
        return bad_request("The parameter 'subjects' is required and must not be empty.");
    };
    let mut ids = Vec::new();
    for subject in subjects {
        let Some(id) = subject.get("id").and_then(Value::as_str) else {
            return bad_request("Each subject needs an 'id'.");
        };
        // Status code for an unknown subject: our choice (the docs name none).
        if s.users.get(id).is_none_or(|u| u.deleted_at.is_some()) {
            return bad_request(&format!("The subject '{id}' is not a user of this tenant."));
        }
        ids.push(id.to_owned());
    }
    let now = now_iso();
    let w = s.workflows.get_mut(wid).expect("checked above");
    for id in ids {
        w.results.push(Processing {
            id: new_id(),
            subject: id,
            status: "queued",
            scheduled: now.clone(),
            started: None,
            completed: None,
        });
    }
    (204, None)
}

/// Moves every unfinished result of the workflow one step on; completing one carries out the
/// modelled tasks on its subject.
fn advance(s: &mut State, wid: &str, wanted: &dyn Fn(&Processing) -> bool) {
    let Some(w) = s.workflows.get_mut(wid) else {
        return;
    };
    let now = now_iso();
    let failing = w.failing_tasks > 0;
    let tasks: Vec<String> = w.tasks.iter().map(|(_, def)| def.clone()).collect();
    let mut completed = Vec::new();
    for r in w.results.iter_mut().filter(|r| wanted(r)) {
        match r.status {
            "queued" => {
                r.status = "inProgress";
                r.started = Some(now.clone());
            }
            "inProgress" => {
                r.status = if failing {
                    "completedWithErrors"
                } else {
                    "completed"
                };
                r.completed = Some(now.clone());
                completed.push(r.subject.clone());
            }
            _ => {}
        }
    }
    for subject in completed {
        for def in &tasks {
            carry_out(s, def, &subject);
        }
    }
}

fn carry_out(s: &mut State, task: &str, user: &str) {
    match task {
        DISABLE_USER_TASK => {
            if let Some(u) = s.users.get_mut(user)
                && !u.on_premises_sync
                && u.account_enabled
            {
                u.account_enabled = false;
                s.touch(user);
            }
        }
        REMOVE_ALL_GROUPS_TASK => {
            for g in s.groups.values_mut() {
                if !g.dynamic && !g.on_premises_sync {
                    g.members.remove(user);
                }
            }
        }
        _ => {}
    }
}
