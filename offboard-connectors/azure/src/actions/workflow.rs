//! `entra.run_lifecycle_workflow`: runs one of the tenant's own Entra Lifecycle Workflows
//! (Microsoft Entra ID Governance) on demand for the leaver, so a tenant's leaver tasks that
//! Graph v1.0 offers no app-only operation for (e.g. "Cancel all pending access package
//! assignment requests", the manager e-mails) run as part of the offboarding.
//!
//! - Parameters: `{"workflow": "<workflow id or exact displayName>"}`, required: which
//!   workflow runs is never guessed. `GET /identityGovernance/lifecycleWorkflows/workflows`
//!   (`$select=id,displayName,category`), matched exactly on `id` or `displayName`: none is a
//!   `not_found` error, two an `ambiguous` one. Only a `leaver` workflow is run for a leaver.
//! - Repeats: `GET …/workflows/{id}/userProcessingResults?$filter=subject/id eq '<user id>'`
//!   (the whole list, filtered here, when a tenant refuses that filter: it is the form
//!   practitioners use, not one the v1.0 reference names), the leaver's on-demand results
//!   scheduled since the task first started (less [`CLOCK_SKEW`], the two clocks differ): one
//!   queued, in progress or completed means this task already ran it (`AlreadyDone`, its
//!   status in the detail); one completed with errors, failed or canceled fails the task with
//!   its counts.
//! - Otherwise `POST …/workflows/{id}/microsoft.graph.identityGovernance.activate` with
//!   `{"subjects": [{"id": "<user id>"}]}` (204). Graph runs it asynchronously: the task
//!   reports `Done` once the run is accepted; what the workflow's tasks change is what
//!   `verify_revoked` reads.
//!
//! Critical: the workflow's tasks are the tenant's (they may delete the user), so a plan
//! holding it needs a confirmation. Not reversible.

use chrono::{DateTime, Duration, Utc};
use offboard_core::{Error, ErrorKind, ExecuteReply, Outcome, Result};
use offboard_http::GraphRequest;
use offboard_http::graph::{check_length, odata_string};
use serde::Deserialize;
use serde_json::json;

use super::{gone, reply};
use crate::client::EntraClient;

/// How far before the task's first start a run still counts as this task's: Graph's clock
/// and the engine's differ.
pub(crate) const CLOCK_SKEW: Duration = Duration::minutes(2);

const WORKFLOWS: [&str; 3] = ["identityGovernance", "lifecycleWorkflows", "workflows"];

/// The action's parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Params {
    /// The workflow's id or exact `displayName`.
    #[serde(default)]
    pub(crate) workflow: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Workflow {
    id: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    category: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Subject {
    #[serde(default)]
    id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Processing {
    #[serde(default)]
    subject: Option<Subject>,
    #[serde(default)]
    processing_status: Option<String>,
    #[serde(default)]
    workflow_execution_type: Option<String>,
    #[serde(default)]
    scheduled_date_time: Option<DateTime<Utc>>,
    #[serde(default)]
    total_tasks_count: Option<u32>,
    #[serde(default)]
    failed_tasks_count: Option<u32>,
}

impl Processing {
    fn status(&self) -> &str {
        self.processing_status.as_deref().unwrap_or("unknown")
    }
}

fn bad_params(why: &str) -> Error {
    Error::invalid_input(format!("params.workflow: {why}")).fatal()
}

/// The workflow the parameters name.
async fn find(client: &EntraClient, name: &str) -> Result<Workflow> {
    let all: Vec<Workflow> = client
        .graph
        .list(
            &GraphRequest::get(WORKFLOWS)
                .query("$select", "id,displayName,category")
                .query("$top", "999"),
        )
        .await?;
    let mut found: Vec<Workflow> = all
        .into_iter()
        .filter(|w| w.id == name || w.display_name == name)
        .collect();
    match found.len() {
        0 => Err(Error::not_found(format!(
            "no Lifecycle workflow has the id or display name {name:?}"
        ))
        .fatal()),
        1 => Ok(found.remove(0)),
        n => Err(Error::new(
            ErrorKind::Ambiguous,
            format!(
                "{n} Lifecycle workflows match {name:?} ({}): name one by its id",
                found
                    .iter()
                    .map(|w| w.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .fatal()),
    }
}

/// The latest on-demand run of `workflow` for `user` scheduled since `since`.
async fn latest_run(
    client: &EntraClient,
    workflow: &str,
    user: &str,
    since: Option<DateTime<Utc>>,
) -> Result<Option<Processing>> {
    let Some(since) = since else {
        return Ok(None);
    };
    let path: Vec<&str> = WORKFLOWS
        .iter()
        .copied()
        .chain([workflow, "userProcessingResults"])
        .collect();
    let mine = GraphRequest::get(path.iter().copied())
        .query("$filter", format!("subject/id eq {}", odata_string(user)?));
    let all: Vec<Processing> = match client.graph.list(&mine).await {
        Ok(all) => all,
        // The subject filter is what practitioners use, but the v1.0 reference does not
        // promise it: a tenant that refuses it is read whole (and filtered below).
        Err(e) if e.kind() == ErrorKind::InvalidInput => {
            client.graph.list(&GraphRequest::get(path)).await?
        }
        Err(e) => return Err(e),
    };
    Ok(all
        .into_iter()
        .filter(|r| {
            r.subject.as_ref().and_then(|s| s.id.as_deref()) == Some(user)
                && r.workflow_execution_type.as_deref() == Some("onDemand")
                && r.scheduled_date_time
                    .is_some_and(|at| at >= since - CLOCK_SKEW)
        })
        .max_by_key(|r| r.scheduled_date_time))
}

pub(crate) async fn execute(
    client: &EntraClient,
    id: &str,
    params: &Params,
    started_at: Option<DateTime<Utc>>,
    dry_run: bool,
) -> Result<ExecuteReply> {
    let Some(name) = params.workflow.as_deref().map(str::trim) else {
        return Err(bad_params(
            "name the leaver workflow to run (its id or exact display name)",
        ));
    };
    if name.is_empty() {
        return Err(bad_params("empty"));
    }
    check_length(name, "params.workflow").map_err(Error::fatal)?;
    if client.get_user(id).await?.is_none() {
        return Ok(gone(id));
    }
    let workflow = find(client, name).await?;
    let label = format!("{} ({})", workflow.display_name, workflow.id);
    let category = workflow.category.as_deref().unwrap_or("unknown");
    if !category.eq_ignore_ascii_case("leaver") {
        return Err(Error::invalid_input(format!(
            "the Lifecycle workflow {label} is a {category} workflow: only a leaver workflow runs \
             for a leaver"
        ))
        .fatal());
    }
    if let Some(run) = latest_run(client, &workflow.id, id, started_at).await? {
        let counts = format!(
            "{} of {} tasks failed",
            run.failed_tasks_count.unwrap_or(0),
            run.total_tasks_count.unwrap_or(0)
        );
        return match run.status() {
            s @ ("queued" | "inProgress" | "completed") => Ok(reply(
                Outcome::AlreadyDone,
                dry_run,
                format!("the leaver workflow {label} already ran for this user: {s}"),
            )),
            s => Err(Error::new(
                ErrorKind::Vendor,
                format!("the leaver workflow {label} ran for this user and ended {s}: {counts}"),
            )
            .fatal()),
        };
    }
    if dry_run {
        return Ok(reply(
            Outcome::Done,
            true,
            format!("would run the leaver workflow {label}"),
        ));
    }
    client
        .graph
        .send(&GraphRequest::post(
            WORKFLOWS.iter().copied().chain([
                workflow.id.as_str(),
                "microsoft.graph.identityGovernance.activate",
            ]),
            json!({"subjects": [{"id": id}]}),
        ))
        .await?;
    Ok(reply(
        Outcome::Done,
        false,
        format!(
            "ran the leaver workflow {label} on demand; Entra processes it asynchronously \
             (userProcessingResults)"
        ),
    ))
}
