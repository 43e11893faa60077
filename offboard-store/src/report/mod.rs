//! Compliance reports, per run and per period, as CSV, JSON and HTML.
//!
//! # From the chain
//! A report is built from the run its chained audit events replay to: the `run_planned`
//! event's planned run, folded with the state machine's own [`machine::apply`] over the run's
//! `Transition` events in chain order (the fold the engine itself performs; no second
//! interpretation). The stored run row, which anyone with database access can change without
//! breaking the chain, is only compared with that replay: every difference is listed in the
//! report as a [`Discrepancy`] (CSV column `discrepancies`, JSON `discrepancies`, a warning
//! box in HTML). A falsified task row therefore cannot change a report silently: the report
//! shows what the chain says and names the row that says otherwise. When the run's events do
//! not replay (no `run_planned` event, or an event that does not apply), the report falls
//! back to the stored row and says so as a discrepancy on the field `chain`.
//!
//! A person erased since ([`offboard_core::Store::erase_person`]) shows as the erasure left
//! them: their pseudonym (`erased:…`), no address or name, personal fields `erased`; the
//! chain's commitments to the erased values are not reported as discrepancies.
//!
//! A report says who initiated an offboarding and when, every action with its outcome and
//! error detail, delegations with ticket and assignee, the last verification's result, the
//! offboarding time and the time to revoke. Period reports stream: they read runs a page at a
//! time and write each run as soon as it is read, so a period with 10,000 runs never sits in
//! memory at once.

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use offboard_core::engine::RunMetrics;
use offboard_core::machine::{self, Event};
use offboard_core::{
    AppId, AuditEvent, AuditKind, AuditQuery, Engine, Error, Initiator, PersonId, Result, Run,
    RunId, RunState, Store, Task, TaskId, TaskKind, TaskState, Ticket,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::AuditVerification;

mod charts;
mod html;

pub use charts::PeriodCharts;

/// How many runs a period report reads at once.
const PAGE: usize = 200;

/// One task of a run, as a report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionLine {
    /// The task.
    pub task: TaskId,
    /// The app.
    pub app: AppId,
    /// The action (`okta.suspend`) or delegation (`jira.delegate_jira`).
    pub action: String,
    /// The account's id in the app, when one was found.
    pub account: Option<String>,
    /// The policy stage.
    pub stage: String,
    /// The task's state (`completed`, `failed`, ...).
    pub state: String,
    /// For completed tasks: `done`, `already_done` or `not_found`.
    pub outcome: Option<String>,
    /// A note: the connector's detail, or why the task was skipped.
    pub detail: Option<String>,
    /// The error of a failed task (or the last error of one being retried).
    pub error: Option<String>,
    /// Attempts started.
    pub attempts: u32,
    /// When the first attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// A delegation's ticket key.
    pub ticket: Option<String>,
    /// A delegation's ticket link.
    pub ticket_url: Option<String>,
    /// Who the delegation is assigned to.
    pub assignee: Option<String>,
    /// For a completed delegation: from opening the ticket to its "done", in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turnaround_ms: Option<u64>,
    /// Who recorded the task's last transition (the audit event's actor: a worker, an
    /// admin, a source), from the chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// For a completed delegation: who marked the ticket done, as the delegate reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_by: Option<String>,
}

/// A difference between a run's stored row and the run its chained audit events replay to.
/// The report shows the chain's value; this names the stored value that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discrepancy {
    /// The task, when the difference is in a task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskId>,
    /// The field, as a path in the run's (or the task's) JSON form (`state`,
    /// `state.detail`, `finished_at`); `chain` when the events did not replay.
    pub field: String,
    /// The value the chain replays to (JSON; `(absent)` when the chain has none), or why the
    /// chain did not replay.
    pub chain: String,
    /// The value in the stored row (JSON; `(absent)` when the row has none).
    pub stored: String,
}

impl std::fmt::Display for Discrepancy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(task) = self.task {
            write!(f, "task {task} ")?;
        }
        write!(
            f,
            "{}: chain {}, stored row {}",
            self.field, self.chain, self.stored
        )
    }
}

/// The last verification pass of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerificationLine {
    /// When it ran.
    pub at: DateTime<Utc>,
    /// Accounts checked.
    pub checked: u32,
    /// Accounts with no access left.
    pub revoked: u32,
    /// Access still found.
    pub remaining: Vec<String>,
}

/// The compliance report of one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunReport {
    /// The run.
    pub run: RunId,
    /// The person offboarded.
    pub person: PersonId,
    /// The person's primary email.
    pub email: String,
    /// The person's display name (empty when the source gave none).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Who initiated it (admin, `source:<name>`, `schedule`).
    pub initiated_by: String,
    /// Why.
    pub reason: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it took effect.
    pub effective_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Its state.
    pub state: RunState,
    /// Whether nothing was executed.
    pub dry_run: bool,
    /// Who confirmed the critical actions.
    pub confirmed_by: Option<String>,
    /// From creation to the last task's end, in milliseconds.
    pub offboarding_time_ms: Option<u64>,
    /// From the effective time to the last access-removing action of the first stage, in
    /// milliseconds.
    pub time_to_revoke_ms: Option<u64>,
    /// Every task.
    pub actions: Vec<ActionLine>,
    /// The last verification, if any ran.
    pub verification: Option<VerificationLine>,
    /// Where the stored run row differs from the run its audit events replay to (empty: they
    /// agree). The report's other fields are the replay's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub discrepancies: Vec<Discrepancy>,
}

/// The columns of a CSV report: one row per task, the run's columns repeated.
pub const CSV_HEADER: &str = "run,person,email,initiated_by,reason,created_at,effective_at,\
finished_at,run_state,dry_run,confirmed_by,offboarding_time_ms,time_to_revoke_ms,\
verified_checked,verified_revoked,verified_remaining,task,app,action,account,stage,task_state,\
outcome,detail,error,attempts,started_at,task_finished_at,ticket,ticket_url,assignee,\
turnaround_ms,by,closed_by,discrepancies";

impl RunReport {
    /// Builds the report of `stored` (the run as its row holds it) from its audit events: the
    /// run is rebuilt by replaying the events (see the [module docs](self)), the report shows
    /// the replay, and every difference from `stored` is listed in `discrepancies`.
    pub fn new(stored: &Run, events: &[AuditEvent]) -> Self {
        let (replayed, discrepancies) = match replay(stored, events) {
            Ok(mut replayed) => {
                // The row's version counts commits, which the chain does not record.
                replayed.version = stored.version;
                if offboard_core::audit::personal::is_commitment(replayed.person.id.as_str()) {
                    // The person was erased: the chain holds commitments where their data
                    // was, the row their pseudonym. The report shows the run as the erasure
                    // left it (pseudonym, personal fields `erased`) and compares the rest.
                    if let Ok(erased) = offboard_core::store::erasure::pseudonymise_run(
                        &replayed,
                        &stored.person.id,
                    ) {
                        replayed = erased;
                    }
                }
                let d = differences(&replayed, stored);
                (replayed, d)
            }
            Err(why) => (
                stored.clone(),
                vec![Discrepancy {
                    task: None,
                    field: "chain".into(),
                    chain: why,
                    stored: "the report shows the stored row".into(),
                }],
            ),
        };
        let mut report = Self::build(&replayed, events);
        report.discrepancies = discrepancies;
        report
    }

    fn build(run: &Run, events: &[AuditEvent]) -> Self {
        let trail = RunTrail::read(run, events);
        let metrics = Engine::metrics(run);
        // Held tasks name the digest that releases them.
        let held = run
            .tasks
            .iter()
            .any(|t| t.state == TaskState::Held)
            .then(|| {
                format!(
                    "held until confirmed (digest {})",
                    run.confirmation_digest()
                )
            });
        let actions = run
            .tasks
            .iter()
            .map(|t| trail.action_line(t, held.as_ref(), &metrics))
            .collect();
        Self {
            run: run.id,
            person: run.person.id.clone(),
            email: run.person.email.clone(),
            name: run.person.display_name.clone(),
            initiated_by: initiator(&run.initiator),
            reason: run.reason.clone(),
            created_at: run.created_at,
            effective_at: run.effective_at,
            finished_at: run.finished_at,
            state: run.state,
            dry_run: run.dry_run,
            confirmed_by: run.confirmed_by.clone(),
            offboarding_time_ms: metrics.offboarding_time.map(millis),
            time_to_revoke_ms: metrics.time_to_revoke.map(millis),
            actions,
            verification: trail.verification,
            discrepancies: Vec::new(),
        }
    }

    /// Loads a run and its audit events from `store` and builds its report.
    ///
    /// # Errors
    /// `NotFound` for an unknown run; the store's errors.
    pub async fn load<S: Store + ?Sized>(store: &S, run: RunId) -> Result<Self> {
        let loaded = store
            .load_run(run)
            .await?
            .ok_or_else(|| Error::not_found(format!("run {run} does not exist")))?;
        let events = store.audit(AuditQuery::run(run)).await?;
        Ok(Self::new(&loaded, &events))
    }

    /// The report as a complete HTML document (print-friendly, every field escaped), with the
    /// audit chain's status in its header when `chain` is given.
    pub fn to_html(&self, chain: Option<&AuditVerification>) -> String {
        html::run_page(self, chain)
    }

    /// The report as one JSON document.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":{:?}}}", e.to_string()))
    }

    /// The report as CSV: [`CSV_HEADER`], then one row per task (a run without tasks gets one
    /// row with the task columns empty).
    pub fn to_csv(&self) -> String {
        let mut out = String::from(CSV_HEADER);
        out.push_str("\r\n");
        self.csv_rows(&mut out);
        out
    }

    /// Appends this run's CSV rows (no header) to `out`.
    pub fn csv_rows(&self, out: &mut String) {
        let t = |v: &DateTime<Utc>| v.to_rfc3339_opts(SecondsFormat::Millis, true);
        let ot = |v: &Option<DateTime<Utc>>| v.as_ref().map(t).unwrap_or_default();
        let on = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or_default();
        let state = serde_json::to_value(self.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let (checked, revoked, remaining) = match &self.verification {
            Some(v) => (
                v.checked.to_string(),
                v.revoked.to_string(),
                v.remaining.join("; "),
            ),
            None => Default::default(),
        };
        let run_cols = [
            self.run.to_string(),
            self.person.to_string(),
            self.email.clone(),
            self.initiated_by.clone(),
            self.reason.clone(),
            t(&self.created_at),
            t(&self.effective_at),
            ot(&self.finished_at),
            state,
            self.dry_run.to_string(),
            self.confirmed_by.clone().unwrap_or_default(),
            on(self.offboarding_time_ms),
            on(self.time_to_revoke_ms),
            checked,
            revoked,
            remaining,
        ];
        let empty = [const { String::new() }; 18];
        let rows: Vec<[String; 18]> = if self.actions.is_empty() {
            vec![empty]
        } else {
            self.actions
                .iter()
                .map(|a| {
                    [
                        a.task.to_string(),
                        a.app.to_string(),
                        a.action.clone(),
                        a.account.clone().unwrap_or_default(),
                        a.stage.clone(),
                        a.state.clone(),
                        a.outcome.clone().unwrap_or_default(),
                        a.detail.clone().unwrap_or_default(),
                        a.error.clone().unwrap_or_default(),
                        a.attempts.to_string(),
                        ot(&a.started_at),
                        ot(&a.finished_at),
                        a.ticket.clone().unwrap_or_default(),
                        a.ticket_url.clone().unwrap_or_default(),
                        a.assignee.clone().unwrap_or_default(),
                        a.turnaround_ms.map(|m| m.to_string()).unwrap_or_default(),
                        a.by.clone().unwrap_or_default(),
                        a.closed_by.clone().unwrap_or_default(),
                    ]
                })
                .collect()
        };
        let discrepancies = self
            .discrepancies
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        for row in rows {
            let fields: Vec<String> = run_cols
                .iter()
                .chain(row.iter())
                .chain(std::iter::once(&discrepancies))
                .map(|f| csv_field(f))
                .collect();
            out.push_str(&fields.join(","));
            out.push_str("\r\n");
        }
    }
}

/// The run `stored`'s chained events replay to: the planned run of its `run_planned` event,
/// with the state machine's [`machine::apply`] folding every later `Transition` event of the
/// run in chain order, at the event's time. `Err` says why it does not replay.
fn replay(stored: &Run, events: &[AuditEvent]) -> std::result::Result<Run, String> {
    let mut mine = events.iter().filter(|e| e.run == Some(stored.id));
    let mut run = mine
        .by_ref()
        .find_map(|e| match &e.kind {
            AuditKind::RunPlanned { run } => Some((**run).clone()),
            _ => None,
        })
        .ok_or_else(|| "the chain holds no run_planned event for this run".to_owned())?;
    if run.id != stored.id {
        return Err(format!("its run_planned event plans run {}", run.id));
    }
    for e in mine {
        if let AuditKind::Transition { event, .. } = &e.kind {
            machine::apply(&mut run, e.at, event).map_err(|err| {
                format!("event {} ({}) does not apply: {err}", e.seq, event.name())
            })?;
        }
    }
    Ok(run)
}

/// Where `stored` differs from `chain`, field by field (tasks by position, each named by id).
/// A task's `due_at` is left out: it is scheduling, which the store moves without an event
/// (a released lease, a delegation's next poll), not a fact of the report.
fn differences(chain: &Run, stored: &Run) -> Vec<Discrepancy> {
    let mut out = Vec::new();
    let (Ok(serde_json::Value::Object(mut c)), Ok(serde_json::Value::Object(mut s))) =
        (serde_json::to_value(chain), serde_json::to_value(stored))
    else {
        return out;
    };
    let c_tasks = c.remove("tasks");
    let s_tasks = s.remove("tasks");
    diff_objects(None, "", &c, &s, &mut out);
    let (c_tasks, s_tasks) = match (c_tasks, s_tasks) {
        (Some(serde_json::Value::Array(c)), Some(serde_json::Value::Array(s))) => (c, s),
        _ => (Vec::new(), Vec::new()),
    };
    for i in 0..c_tasks.len().max(s_tasks.len()) {
        let task = chain.tasks.get(i).or(stored.tasks.get(i)).map(|t| t.id);
        match (c_tasks.get(i), s_tasks.get(i)) {
            (Some(serde_json::Value::Object(c)), Some(serde_json::Value::Object(s))) => {
                let (mut c, mut s) = (c.clone(), s.clone());
                c.remove("due_at");
                s.remove("due_at");
                diff_objects(task, "", &c, &s, &mut out);
            }
            (c, s) if c != s => out.push(Discrepancy {
                task,
                field: "task".into(),
                chain: shown(c),
                stored: shown(s),
            }),
            _ => {}
        }
    }
    out
}

/// Compares two JSON objects key by key: objects with the same keys are compared inside,
/// anything else as a whole.
fn diff_objects(
    task: Option<TaskId>,
    prefix: &str,
    chain: &serde_json::Map<String, serde_json::Value>,
    stored: &serde_json::Map<String, serde_json::Value>,
    out: &mut Vec<Discrepancy>,
) {
    let keys: std::collections::BTreeSet<&String> = chain.keys().chain(stored.keys()).collect();
    for key in keys {
        let field = format!("{prefix}{key}");
        match (chain.get(key), stored.get(key)) {
            (Some(serde_json::Value::Object(c)), Some(serde_json::Value::Object(s)))
                if c.keys().eq(s.keys()) =>
            {
                diff_objects(task, &format!("{field}."), c, s, out);
            }
            (c, s) if c != s => out.push(Discrepancy {
                task,
                field,
                chain: shown(c),
                stored: shown(s),
            }),
            _ => {}
        }
    }
}

fn shown(v: Option<&serde_json::Value>) -> String {
    match v {
        None | Some(serde_json::Value::Null) => "(absent)".into(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

fn initiator(i: &Initiator) -> String {
    i.actor()
}

/// One CSV field: quoted when it holds a separator, quote or line break; text a spreadsheet
/// would run as a formula (`=`, `+`, `-`, `@`, tab, CR first) is prefixed with `'`.
fn csv_field(s: &str) -> String {
    let guarded = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) && s.parse::<f64>().is_err() {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if guarded.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

/// A store that can list the runs of a period in pages, oldest first, by a stable key
/// (creation time, then id), as period reports need.
#[async_trait]
pub trait RunPages: Store {
    /// Runs created in `[since, until)` after `after` (the last key of the previous page),
    /// oldest first, at most `limit`, as (created_at, id).
    async fn runs_page(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        after: Option<(DateTime<Utc>, RunId)>,
        limit: usize,
    ) -> Result<Vec<(DateTime<Utc>, RunId)>>;

    /// Verifies the whole audit chain (the store's `verify_audit`), for the report's header.
    async fn verify_chain(&self) -> Result<AuditVerification>;
}

/// Counts of a period report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeriodSummary {
    /// Runs created in the period.
    pub runs: u64,
    /// Of which completed (the person is offboarded).
    pub completed: u64,
    /// Of which completed with failures.
    pub with_failures: u64,
    /// Of which still open.
    pub open: u64,
    /// Tasks in all.
    pub tasks: u64,
    /// Tasks failed.
    pub failed_tasks: u64,
    /// Critical tasks held for a confirmation.
    #[serde(default)]
    pub held_tasks: u64,
}

impl PeriodSummary {
    fn add(&mut self, r: &RunReport) {
        self.runs += 1;
        match r.state {
            RunState::Completed => self.completed += 1,
            RunState::CompletedWithFailures => self.with_failures += 1,
            s if !s.is_terminal() => self.open += 1,
            _ => {}
        }
        self.tasks += r.actions.len() as u64;
        self.failed_tasks += r.actions.iter().filter(|a| a.state == "failed").count() as u64;
        self.held_tasks += r.actions.iter().filter(|a| a.state == "held").count() as u64;
    }
}

/// The output format of a period report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// [`CSV_HEADER`], then one row per task.
    Csv,
    /// `{"since":…,"until":…,"runs":[<RunReport>,…],"summary":{…}}`.
    Json,
    /// One HTML document for auditors: the period and the audit chain's status (the store's
    /// verification, run first), one section per run (a page per person in print), then the
    /// summary with charts (offboarding time and time to revoke per ISO week as median and
    /// p90, revocation accuracy per app) as inline SVG. No JavaScript.
    Html,
}

/// Writes the report of every run created in `[since, until)`, oldest first, to `out`.
///
/// # Behavior
/// Reads 200 runs at a time and writes each run's report before reading the next page:
/// memory stays flat however many runs the period holds (HTML's charts keep per-week and
/// per-app aggregates only). `out` is flushed at the end. Each run's report is rebuilt from
/// its chained events (see the [module docs](self)).
///
/// # Errors
/// The store's errors and `Storage` for a failed write (the output is then incomplete).
pub async fn write_period<S, W>(
    store: &S,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    format: Format,
    out: &mut W,
) -> Result<PeriodSummary>
where
    S: RunPages + ?Sized,
    W: AsyncWrite + Unpin + Send + ?Sized,
{
    let io = |e: std::io::Error| Error::storage("writing a report failed").with_source(e);
    let mut summary = PeriodSummary::default();
    let mut charts = PeriodCharts::default();
    match format {
        Format::Html => {
            let chain = store.verify_chain().await?;
            out.write_all(html::head(since, until, &chain, Utc::now()).as_bytes())
                .await
                .map_err(io)?;
        }
        Format::Csv => {
            out.write_all(format!("{CSV_HEADER}\r\n").as_bytes())
                .await
                .map_err(io)?;
        }
        Format::Json => {
            let head = serde_json::json!({ "since": since, "until": until });
            let head = head.to_string();
            // `{"since":…,"until":…` then the runs.
            out.write_all(format!("{},\"runs\":[", &head[..head.len() - 1]).as_bytes())
                .await
                .map_err(io)?;
        }
    }
    let mut after = None;
    let mut first = true;
    loop {
        let page = store.runs_page(since, until, after, PAGE).await?;
        for (_, id) in &page {
            let report = RunReport::load(store, *id).await?;
            summary.add(&report);
            let chunk = match format {
                Format::Csv => {
                    let mut s = String::new();
                    report.csv_rows(&mut s);
                    s
                }
                Format::Json => {
                    let sep = if first { "" } else { "," };
                    format!("{sep}{}", report.to_json())
                }
                Format::Html => {
                    charts.add(&report);
                    html::run_section(&report)
                }
            };
            first = false;
            out.write_all(chunk.as_bytes()).await.map_err(io)?;
        }
        if page.len() < PAGE {
            break;
        }
        after = page.last().copied();
    }
    if format == Format::Json {
        let tail = format!(
            "],\"summary\":{}}}",
            serde_json::to_string(&summary)
                .map_err(|e| Error::internal("summary").with_source(e))?
        );
        out.write_all(tail.as_bytes()).await.map_err(io)?;
    }
    if format == Format::Html {
        out.write_all(html::tail(&summary, &charts).as_bytes())
            .await
            .map_err(io)?;
    }
    out.flush().await.map_err(io)?;
    Ok(summary)
}

#[async_trait]
impl RunPages for crate::SqliteStore {
    async fn runs_page(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        after: Option<(DateTime<Utc>, RunId)>,
        limit: usize,
    ) -> Result<Vec<(DateTime<Utc>, RunId)>> {
        self.page_of_runs(since, until, after, limit).await
    }

    async fn verify_chain(&self) -> Result<AuditVerification> {
        self.verify_audit().await
    }
}

#[cfg(feature = "postgres")]
#[async_trait]
impl RunPages for crate::PostgresStore {
    async fn runs_page(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        after: Option<(DateTime<Utc>, RunId)>,
        limit: usize,
    ) -> Result<Vec<(DateTime<Utc>, RunId)>> {
        self.page_of_runs(since, until, after, limit).await
    }

    async fn verify_chain(&self) -> Result<AuditVerification> {
        self.verify_audit().await
    }
}

/// A duration in whole milliseconds (saturating).
fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What a run's audit events say beyond its replayed state: each task's tickets (latest
/// last), who made each task's transitions (latest last), and the last verification.
struct RunTrail<'a> {
    tickets: Vec<(TaskId, &'a Ticket)>,
    by: Vec<(TaskId, &'a str)>,
    verification: Option<VerificationLine>,
}

impl<'a> RunTrail<'a> {
    /// Reads the events of `run` among `events`.
    fn read(run: &Run, events: &'a [AuditEvent]) -> Self {
        let mut trail = Self {
            tickets: Vec::new(),
            by: Vec::new(),
            verification: None,
        };
        for e in events.iter().filter(|e| e.run == Some(run.id)) {
            if let AuditKind::Transition { event, .. } = &e.kind
                && let Some(task) = event.task()
            {
                trail.by.push((task, &e.actor));
            }
            match &e.kind {
                AuditKind::Transition {
                    event:
                        Event::TaskDelegated { task, ticket, .. }
                        | Event::DelegationUpdated { task, ticket, .. }
                        | Event::DelegationReopened { task, ticket, .. },
                    ..
                } => trail.tickets.push((*task, ticket)),
                AuditKind::Verified {
                    checked,
                    revoked,
                    remaining,
                    ..
                } => {
                    trail.verification = Some(VerificationLine {
                        at: e.at,
                        checked: *checked,
                        revoked: *revoked,
                        remaining: remaining.clone(),
                    });
                }
                _ => {}
            }
        }
        trail
    }

    /// The report's line of task `t`; `held` is what a held task's detail says.
    fn action_line(&self, t: &Task, held: Option<&String>, metrics: &RunMetrics) -> ActionLine {
        let ticket = match &t.state {
            TaskState::Delegated { ticket } => Some(ticket),
            _ => self
                .tickets
                .iter()
                .rev()
                .find(|(id, _)| *id == t.id)
                .map(|(_, ticket)| *ticket),
        };
        let (outcome, detail, error) = match &t.state {
            TaskState::Completed { outcome, detail } => {
                (Some(outcome.to_string()), detail.clone(), None)
            }
            TaskState::Failed { error } => (None, None, Some(error.to_string())),
            TaskState::Retrying { last_error, .. } => (None, None, Some(last_error.to_string())),
            TaskState::Skipped { reason } => (None, Some(reason.to_string()), None),
            TaskState::Held => (None, held.cloned(), None),
            _ => (None, None, None),
        };
        ActionLine {
            task: t.id,
            app: t.app.clone(),
            action: t.label(),
            account: t.account.as_ref().map(|a| a.external_id.clone()),
            stage: t.stage.clone(),
            state: t.state.name().to_owned(),
            outcome,
            detail,
            error,
            attempts: t.attempts,
            started_at: t.started_at,
            finished_at: t.finished_at,
            ticket: ticket.map(|k| k.key.clone()),
            ticket_url: ticket.map(|k| k.url.clone()).filter(|u| !u.is_empty()),
            assignee: ticket.and_then(|k| k.assignee.clone()),
            turnaround_ms: metrics
                .delegation_turnaround
                .get(&t.id)
                .copied()
                .map(millis),
            by: self
                .by
                .iter()
                .rev()
                .find(|(id, _)| *id == t.id)
                .map(|(_, actor)| (*actor).to_owned()),
            closed_by: closed_by(t, ticket),
        }
    }
}

/// Who closed a completed delegation's ticket, as its detail (`<KEY> done by <who>`) says.
fn closed_by(t: &Task, ticket: Option<&Ticket>) -> Option<String> {
    match (&t.kind, &t.state, ticket) {
        (
            TaskKind::Delegation { .. },
            TaskState::Completed {
                detail: Some(detail),
                ..
            },
            Some(ticket),
        ) => detail
            .strip_prefix(&format!("{} done by ", ticket.key))
            .map(str::to_owned),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("line\nbreak"), "\"line\nbreak\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("@cmd"), "'@cmd");
        assert_eq!(csv_field("-5"), "-5");
    }
}
