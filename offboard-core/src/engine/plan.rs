//! The dependency-aware planner: policy × inventory × lookups → a DAG of tasks.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{ConnectorEntry, EngineShared};
use crate::action::{Action, ActionName};
use crate::audit::{AuditEvent, AuditKind, canonical_json};
use crate::connector::LookupRequest;
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Account, AccountRef, AppId, Person};
use crate::policy::{Method, PlannedAction, Policy};
use crate::run::{
    DelegateVia, Initiator, Run, RunId, RunState, SkipReason, Task, TaskId, TaskKind, TaskState,
};

/// A request to offboard someone.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunRequest {
    /// Who.
    pub person: Person,
    /// Who asks.
    pub initiator: Initiator,
    /// Why.
    pub reason: String,
    /// When it takes effect (`None`: now).
    pub effective_at: Option<DateTime<Utc>>,
    /// Plan and record, execute nothing.
    pub dry_run: bool,
}

impl RunRequest {
    /// Offboard `person` now, as asked by `initiator`.
    pub fn new(person: Person, initiator: Initiator) -> Self {
        Self {
            person,
            initiator,
            reason: String::new(),
            effective_at: None,
            dry_run: false,
        }
    }

    /// Sets the reason.
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = reason.into();
        self
    }

    /// Sets when it takes effect.
    pub fn effective_at(mut self, at: DateTime<Utc>) -> Self {
        self.effective_at = Some(at);
        self
    }

    /// Makes it a dry run.
    pub fn dry_run(mut self) -> Self {
        self.dry_run = true;
        self
    }
}

/// What the plan found for one app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppPlan {
    /// The app.
    pub app: AppId,
    /// `automatic`, `delegate_jira`, `delegate_email` or `ignore`.
    pub method: String,
    /// The account found, if any.
    pub account: Option<AccountRef>,
    /// Why the app is in scope, or what went wrong looking the person up.
    pub note: String,
}

/// A dry-run plan: every task with its method, action, order and criticality, and the digest
/// a confirmation of its critical actions quotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The run as it will be submitted (state `Planned`).
    pub run: Run,
    /// Per-app findings.
    pub apps: Vec<AppPlan>,
    /// What a confirmation quotes: [`Run::confirmation_digest`] of the planned run (the
    /// critical actions it releases, the person, the policy's fingerprint). The whole plan's
    /// own digest is `run.plan_digest` ([`plan_digest`]).
    pub digest: String,
}

impl Plan {
    /// Whether any critical action would run: submitted without a [`Confirmation`], such
    /// tasks are held until [`crate::Engine::confirm`] releases them.
    pub fn has_critical(&self) -> bool {
        self.run.confirmable().next().is_some()
    }

    /// Tasks grouped in waves: each wave's tasks depend only on earlier waves and can run
    /// concurrently.
    pub fn waves(&self) -> Vec<Vec<&Task>> {
        let depth = depths(&self.run.tasks);
        let max = depth.values().copied().max().unwrap_or(0);
        (0..=max)
            .map(|d| {
                self.run
                    .tasks
                    .iter()
                    .filter(|t| depth.get(&t.id) == Some(&d))
                    .collect()
            })
            .filter(|w: &Vec<&Task>| !w.is_empty())
            .collect()
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.run.person;
        writeln!(
            f,
            "Plan for {} <{}> (run {}){}",
            p.display_name,
            p.email,
            self.run.id,
            if self.run.dry_run { " [dry run]" } else { "" }
        )?;
        writeln!(
            f,
            "  effective {}; digest {}",
            self.run.effective_at.to_rfc3339(),
            &self.digest[..16]
        )?;
        for a in &self.apps {
            let acct = a
                .account
                .as_ref()
                .map_or("-".to_owned(), |a| format!("{} ({:?})", a.login, a.status));
            writeln!(
                f,
                "  app {:<12} {:<15} account {}  {}",
                a.app.as_str(),
                a.method,
                acct,
                a.note
            )?;
            if let Some(why) = a
                .account
                .as_ref()
                .and_then(|a| a.attributes.get(crate::model::PRIVILEGED_ATTRIBUTE))
            {
                writeln!(
                    f,
                    "      privileged ({why}): every action on it is critical"
                )?;
            }
        }
        let index: BTreeMap<TaskId, usize> = self
            .run
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id, i + 1))
            .collect();
        for (w, wave) in self.waves().iter().enumerate() {
            writeln!(f, "  wave {}:", w + 1)?;
            for t in wave {
                let deps: Vec<String> = t
                    .depends_on
                    .iter()
                    .map(|d| format!("#{}", index[d]))
                    .collect();
                writeln!(
                    f,
                    "    #{:<3} {:<40} stage {:<10} {}{}{}{}",
                    index[&t.id],
                    t.label(),
                    t.stage,
                    if t.critical { "CRITICAL " } else { "" },
                    if t.reversible { "reversible " } else { "" },
                    if deps.is_empty() {
                        String::new()
                    } else {
                        format!("after {} ", deps.join(","))
                    },
                    match &t.state {
                        TaskState::Pending => String::new(),
                        TaskState::Skipped { reason } => format!("[skipped: {reason}]"),
                        TaskState::Failed { error } => format!("[cannot run: {error}]"),
                        other => format!("[{}]", other.name()),
                    }
                )?;
            }
        }
        Ok(())
    }
}

/// Confirms critical actions (with [`crate::Engine::submit`] or [`crate::Engine::confirm`]):
/// quotes the digest of what it releases ([`Plan::digest`], [`Run::confirmation_digest`]) and
/// says who confirms, in which role. The policy's [`crate::policy::Approvals`] decide whether
/// that confirmer may.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// The digest confirmed.
    pub digest: String,
    /// Who confirms.
    pub by: String,
    /// The confirmer's role, as the host knows it (e.g. `security`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

impl Confirmation {
    /// Confirms `plan`'s critical actions as `by`.
    pub fn of(plan: &Plan, by: impl Into<String>) -> Self {
        Self::new(plan.digest.clone(), by)
    }

    /// Confirms `run`'s rollback (what it would restore now, [`Run::rollback_digest`]) as `by`,
    /// for [`crate::Engine::rollback`] of a run with critical tasks.
    pub fn of_rollback(run: &Run, by: impl Into<String>) -> Self {
        Self::new(run.rollback_digest(), by)
    }

    /// Confirms what `digest` names (a held run's [`Run::confirmation_digest`], a run's
    /// [`Run::rollback_digest`]) as `by`.
    pub fn new(digest: impl Into<String>, by: impl Into<String>) -> Self {
        Self {
            digest: digest.into(),
            by: by.into(),
            role: None,
        }
    }

    /// Sets the confirmer's role.
    pub fn as_role(mut self, role: impl Into<String>) -> Self {
        self.role = Some(role.into());
        self
    }
}

/// The digest of a planned run: SHA-256 over the canonical JSON of the run id, the policy's
/// fingerprint, the person, timing and every task (app, action and parameters, account id,
/// stage, criticality, dependencies by position).
pub fn plan_digest(run: &Run) -> String {
    let index: BTreeMap<TaskId, usize> = run
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id, i))
        .collect();
    let tasks: Vec<serde_json::Value> = run
        .tasks
        .iter()
        .map(|t| {
            serde_json::json!({
                "app": t.app,
                "kind": t.kind,
                "account": t.account.as_ref().map(|a| &a.external_id),
                "stage": t.stage,
                "not_before": t.not_before,
                "critical": t.critical,
                "state": t.state.name(),
                "deps": t.depends_on.iter().map(|d| index.get(d).copied()).collect::<Vec<_>>(),
            })
        })
        .collect();
    let v = serde_json::json!({
        "run": run.id,
        "policy": run.policy,
        "person": run.person,
        "effective_at": run.effective_at,
        "dry_run": run.dry_run,
        "tasks": tasks,
    });
    hex::encode(Sha256::digest(canonical_json(&v).as_bytes()))
}

fn depths(tasks: &[Task]) -> BTreeMap<TaskId, usize> {
    let mut depth = BTreeMap::new();
    // Tasks are stored in topological order.
    for t in tasks {
        let d = t
            .depends_on
            .iter()
            .filter_map(|x| depth.get(x))
            .map(|d| d + 1)
            .max()
            .unwrap_or(0);
        depth.insert(t.id, d);
    }
    depth
}

/// Orders tasks topologically (stable), or names a cycle.
pub(crate) fn topo_sort(tasks: Vec<Task>) -> Result<Vec<Task>> {
    let mut remaining: Vec<Task> = tasks;
    let mut done: BTreeSet<TaskId> = BTreeSet::new();
    let mut out = Vec::with_capacity(remaining.len());
    while !remaining.is_empty() {
        let before = remaining.len();
        let mut i = 0;
        while i < remaining.len() {
            if remaining[i].depends_on.iter().all(|d| done.contains(d)) {
                let t = remaining.remove(i);
                done.insert(t.id);
                out.push(t);
            } else {
                i += 1;
            }
        }
        if remaining.len() == before {
            let names: Vec<String> = remaining.iter().map(|t| t.label()).collect();
            return Err(Error::new(
                ErrorKind::Cycle,
                format!(
                    "ordering constraints form a cycle among: {}",
                    names.join(", ")
                ),
            ));
        }
    }
    Ok(out)
}

impl EngineShared {
    pub(crate) async fn plan(&self, request: RunRequest) -> Result<Plan> {
        let policy = &self.policy;
        let person = request.person;
        if policy.is_protected(&person) {
            return Err(Error::new(
                ErrorKind::Protected,
                format!(
                    "{} is a protected account and is never offboarded",
                    person.email
                ),
            )
            .with_context("person", &person.id));
        }
        let now = self.clock.now();
        let effective_at = request.effective_at.unwrap_or(now);
        let run_id = RunId::new_v7();
        let inventory = self.store.accounts(&person.id).await?;

        let scope = plan_scope(policy, &inventory, &self.connectors);

        let stage_at = stage_times(policy, effective_at, &person)?;

        let mut apps = Vec::new();
        let mut tasks: Vec<Task> = Vec::new();
        for (app, (method, note)) in scope {
            let known = inventory
                .iter()
                .filter(|a| a.account.app == app)
                .max_by_key(|a| a.last_seen);
            let new = NewTask {
                app: &app,
                run_id,
                stage_at: &stage_at,
                effective_at,
            };
            let first_stage = &policy.stages[0];
            let plan = match method {
                Method::Ignore => {
                    let mut t = new.task(
                        TaskKind::Ignore,
                        known.map(|a| a.account.clone()),
                        &first_stage.name,
                    );
                    t.state = TaskState::Skipped {
                        reason: SkipReason::Ignored,
                    };
                    tasks.push(t);
                    AppPlan {
                        app: app.clone(),
                        method: "ignore".into(),
                        account: known.map(|a| a.account.clone()),
                        note,
                    }
                }
                Method::Delegate { via } => {
                    let (t, plan) = self
                        .plan_delegation(&person, &new, &via, known, note, &first_stage.name)
                        .await?;
                    tasks.push(t);
                    plan
                }
                Method::Automatic { actions } => {
                    self.plan_actions(&person, &new, actions, known, note, &mut tasks)
                        .await?
                }
            };
            apps.push(plan);
        }

        self.order(&mut tasks);
        let tasks = topo_sort(tasks)?;

        let run = Run {
            id: run_id,
            person,
            initiator: request.initiator,
            reason: request.reason,
            created_at: now,
            effective_at,
            dry_run: request.dry_run,
            plan_digest: String::new(),
            policy: self.policy_fingerprint.clone(),
            confirmed_by: None,
            tasks,
            state: RunState::Planned,
            cancelled: false,
            rollback_requested: false,
            restore_lease: None,
            retry: self.retry,
            delegation_poll: self.delegation_poll,
            version: 0,
            finished_at: None,
        };
        let mut run = run;
        run.plan_digest = plan_digest(&run);
        let digest = run.confirmation_digest();
        Ok(Plan { run, apps, digest })
    }

    /// The task of a delegated app: delegated while the person is still active there (where
    /// its connector can tell), skipped for a protected account.
    async fn plan_delegation(
        &self,
        person: &Person,
        new: &NewTask<'_>,
        via: &DelegateVia,
        known: Option<&Account>,
        note: String,
        stage: &str,
    ) -> Result<(Task, AppPlan)> {
        let policy = &self.policy;
        let app = new.app;
        if !self.delegates.contains_key(via) {
            return Err(Error::config(
                format!("apps.{app}.via"),
                format!(
                    "the policy delegates {app} via {}, but no {} delegate is configured",
                    via.as_str(),
                    via.as_str()
                ),
            ));
        }
        // Delegate only while the person is still active there, where an
        // integration can tell.
        let mut account = known.map(|a| a.account.clone());
        let mut note = note;
        if let Some(conn) = self.connectors.get(app) {
            match self
                .lookup(conn, person, known.map(|a| a.account.external_id.clone()))
                .await
            {
                Ok(found) => {
                    account = Some(found.unwrap_or_else(|| {
                        AccountRef::new(app.clone(), "", "", crate::model::AccountStatus::Deleted)
                    }));
                }
                Err(e) => note = format!("{note}; lookup failed: {e}"),
            }
        }
        let mut t = new.task(
            TaskKind::Delegation { via: via.clone() },
            account.clone(),
            stage,
        );
        refuse_protected(policy, person, account.as_ref())?;
        if account.as_ref().is_some_and(|a| policy.protects_in_app(a)) {
            t.state = TaskState::Skipped {
                reason: SkipReason::Protected,
            };
        }
        let plan = AppPlan {
            app: app.clone(),
            method: format!("delegate_{}", via.as_str()),
            account,
            note,
        };
        Ok((t, plan))
    }

    /// The tasks of an app the policy runs actions on, one per action (pushed onto `tasks`):
    /// on the account the lookup found, failed when the lookup failed permanently, skipped for
    /// a protected account.
    async fn plan_actions(
        &self,
        person: &Person,
        new: &NewTask<'_>,
        actions: Vec<PlannedAction>,
        known: Option<&Account>,
        note: String,
        tasks: &mut Vec<Task>,
    ) -> Result<AppPlan> {
        let policy = &self.policy;
        let app = new.app;
        let Some(conn) = self.connectors.get(app) else {
            return Err(Error::config(
                format!("apps.{app}"),
                format!("the policy runs actions on {app}, but no {app} connector is configured"),
            ));
        };
        let caps = conn.connector.capabilities();
        let (account, failure, note) = match self
            .lookup(conn, person, known.map(|a| a.account.external_id.clone()))
            .await
        {
            Ok(Some(a)) => (Some(a), None, note),
            Ok(None) => (None, None, format!("{note}; no account found")),
            Err(e) if e.is_retryable() => return Err(e),
            Err(e) => {
                let n = format!("{note}; lookup failed: {e}");
                (None, Some(e.record()), n)
            }
        };
        refuse_protected(policy, person, account.as_ref())?;
        let skip_protected = account.as_ref().is_some_and(|a| policy.protects_in_app(a));
        for PlannedAction {
            action,
            stage,
            line,
        } in actions
        {
            let Some(spec) = caps.action(&action.name) else {
                return Err(Error::config(
                    format!("apps.{app}.actions"),
                    format!(
                        "policy line {line}: {app} connector does not offer {}",
                        action.name
                    ),
                ));
            };
            let mut t = new.task(
                TaskKind::Action {
                    action: action.clone(),
                },
                account.clone(),
                &stage,
            );
            t.critical = spec.critical
                || policy.is_critical(&action.name)
                || account.as_ref().is_some_and(|a| {
                    a.attributes
                        .contains_key(crate::model::PRIVILEGED_ATTRIBUTE)
                });
            t.reversible = spec.reversible;
            t.not_found_is_done = spec.not_found_is_done;
            if skip_protected {
                t.state = TaskState::Skipped {
                    reason: SkipReason::Protected,
                };
            } else if let Some(err) = &failure {
                t.state = TaskState::Failed { error: err.clone() };
            }
            tasks.push(t);
        }
        Ok(AppPlan {
            app: app.clone(),
            method: "automatic".into(),
            account,
            note: if skip_protected {
                format!("{note}; protected account, left alone")
            } else {
                note
            },
        })
    }

    /// Adds the ordering constraints to `tasks`: declared by actions (within and across
    /// systems) and by the policy; each task of an action waits for every task of the actions
    /// it comes after.
    fn order(&self, tasks: &mut [Task]) {
        let policy = &self.policy;
        // Ordering constraints: declared by actions (within and across systems) and by policy.
        let mut edges: Vec<(ActionName, ActionName)> = Vec::new();
        for conn in self.connectors.values() {
            for spec in &conn.connector.capabilities().actions {
                edges.extend(
                    spec.after
                        .iter()
                        .map(|before| (before.clone(), spec.name.clone())),
                );
            }
        }
        edges.extend(
            policy
                .order
                .iter()
                .map(|r| (r.before.clone(), r.after.clone())),
        );
        let names: Vec<Option<ActionName>> = tasks
            .iter()
            .map(|t| t.action().map(|a| a.name.clone()))
            .collect();
        for (before, after) in &edges {
            let firsts: Vec<TaskId> = tasks
                .iter()
                .zip(&names)
                .filter(|(_, n)| n.as_ref() == Some(before))
                .map(|(t, _)| t.id)
                .collect();
            if firsts.is_empty() {
                continue;
            }
            for (t, n) in tasks.iter_mut().zip(&names) {
                if n.as_ref() == Some(after) {
                    for f in &firsts {
                        if !t.depends_on.contains(f) {
                            t.depends_on.push(*f);
                        }
                    }
                }
            }
        }
    }

    pub(super) async fn lookup(
        &self,
        conn: &super::ConnectorEntry,
        person: &Person,
        external_id: Option<String>,
    ) -> Result<Option<AccountRef>> {
        let mut req = LookupRequest::person(person.clone());
        req.external_id = external_id.filter(|id| !id.is_empty());
        let app = conn.connector.capabilities().app.clone();
        let _permit = conn.limiter.acquire().await;
        let by_id = req.external_id.is_some();
        let found = conn
            .limiter
            .timed("lookup", conn.connector.lookup(&req))
            .await
            .map_err(|e| e.with_context("app", &app))?;
        if found.is_none() && by_id {
            // The known id is gone (deleted and maybe re-created): look up by address instead.
            let req = LookupRequest::person(person.clone());
            return conn
                .limiter
                .timed("lookup", conn.connector.lookup(&req))
                .await
                .map_err(|e| e.with_context("app", &app));
        }
        Ok(found)
    }
}

/// Refuses a request that resolves, in some app, to an account of a protected person.
fn refuse_protected(policy: &Policy, person: &Person, account: Option<&AccountRef>) -> Result<()> {
    match account {
        Some(a) if policy.protects_account(a) => Err(Error::new(
            ErrorKind::Protected,
            format!(
                "{} resolves in {} to {} ({}), an account of a protected person; nothing is offboarded",
                person.email, a.app, a.login, a.external_id
            ),
        )
        .with_context("person", &person.id)
        .with_context("app", &a.app)),
        _ => Ok(()),
    }
}

/// The first characters of a fingerprint, for messages.
fn short(fingerprint: &str) -> &str {
    fingerprint.get(..12).unwrap_or(fingerprint)
}

impl EngineShared {
    /// Re-derives from the engine's own policy and connectors what a plan handed in for
    /// submission must say, and refuses a plan that is weaker: made under another policy, an
    /// action marked not critical that is, a protected account acted on, an action the policy
    /// runs left out, a task whose action or account belongs to another app.
    pub(crate) fn recheck(&self, run: &Run) -> Result<()> {
        let policy = &self.policy;
        if run.policy != self.policy_fingerprint {
            return Err(Error::invalid_input(format!(
                "the plan was made under another policy (fingerprint {}); the engine's policy \
                 is {}: plan again",
                if run.policy.is_empty() {
                    "none"
                } else {
                    short(&run.policy)
                },
                short(&self.policy_fingerprint)
            ))
            .with_context("policy", &self.policy_fingerprint));
        }
        let weaker = |t: &Task, why: String| {
            Err(
                Error::invalid_input(format!("the plan {why}: plan again ({})", t.label()))
                    .with_context("task", t.id),
            )
        };
        for t in &run.tasks {
            if let Some(a) = &t.account {
                if a.app != t.app && !a.external_id.is_empty() {
                    return weaker(t, format!("acts in {} on an account of {}", t.app, a.app));
                }
                refuse_protected(policy, &run.person, Some(a))?;
                let skipped = matches!(
                    t.state,
                    TaskState::Skipped {
                        reason: SkipReason::Protected
                    }
                );
                if policy.protects_in_app(a) && !skipped {
                    return Err(Error::new(
                        ErrorKind::Protected,
                        format!(
                            "{} in {} is a protected account; the plan would run {} on it",
                            a.login,
                            t.app,
                            t.label()
                        ),
                    )
                    .with_context("task", t.id));
                }
            }
            if let TaskKind::Action { action } = &t.kind {
                if action.name.app() != t.app {
                    return weaker(t, format!("runs {} in {}", action.name, t.app));
                }
                let flagged = self
                    .connectors
                    .get(&t.app)
                    .and_then(|c| c.connector.capabilities().action(&action.name))
                    .is_some_and(|s| s.critical);
                let privileged = t.account.as_ref().is_some_and(|a| {
                    a.attributes
                        .contains_key(crate::model::PRIVILEGED_ATTRIBUTE)
                });
                let critical = flagged || privileged || policy.is_critical(&action.name);
                if critical && !t.critical {
                    return weaker(
                        t,
                        format!(
                            "marks {} not critical, but the engine's policy or its connector \
                             makes it critical",
                            action.name
                        ),
                    );
                }
            }
        }
        for (app, p) in &policy.apps {
            let Method::Automatic { actions } = &p.method else {
                continue;
            };
            for a in actions {
                if !run
                    .tasks
                    .iter()
                    .any(|t| t.app == *app && t.action() == Some(&a.action))
                {
                    return Err(Error::invalid_input(format!(
                        "the plan leaves out {}, which the policy runs on {app}: plan again",
                        a.action.name
                    )));
                }
            }
        }
        Ok(())
    }
}

impl EngineShared {
    /// The run of `plan` to submit, checked against the engine (see [`Engine::submit`]): not
    /// for a protected person, no weaker than the engine's policy ([`EngineShared::recheck`]), its
    /// digests recomputed from its content and equal to the plan's; with a `confirmation`
    /// and critical tasks, confirmed by a confirmer the approvals allow.
    ///
    /// [`Engine::submit`]: super::Engine::submit
    pub(crate) async fn checked_submission(
        &self,
        plan: Plan,
        confirmation: Option<&Confirmation>,
    ) -> Result<Run> {
        let mut run = plan.run;
        if self.policy.is_protected(&run.person) {
            return Err(Error::new(
                ErrorKind::Protected,
                format!(
                    "{} is a protected account and is never offboarded",
                    run.person.email
                ),
            ));
        }
        self.recheck(&run)?;
        let mut check = run.clone();
        check.plan_digest = String::new();
        let digest = run.confirmation_digest();
        if plan_digest(&check) != run.plan_digest || digest != plan.digest {
            return Err(Error::invalid_input(
                "the plan was changed after planning; plan again",
            ));
        }
        if let Some(c) = confirmation
            && run.confirmable().next().is_some()
        {
            self.approve(&run, c, &digest).await?;
            run.confirmed_by = Some(c.by.clone());
        }
        Ok(run)
    }

    /// Whether `confirmation` may release `run`'s critical tasks: it quotes `digest` and the
    /// policy's approvals allow its confirmer. A refusal is audited (`confirmation_refused`,
    /// with who, in which role, and why) before it is returned as `ConfirmationRequired`.
    pub(crate) async fn approve(
        &self,
        run: &Run,
        confirmation: &Confirmation,
        digest: &str,
    ) -> Result<()> {
        self.approve_as(run, &run.initiator.actor(), confirmation, digest, "release")
            .await
    }

    /// [`EngineShared::approve`] of a confirmation `for` a purpose (`release`, `rollback`) asked by
    /// `initiator` (whom four eyes exclude).
    pub(super) async fn approve_as(
        &self,
        run: &Run,
        initiator: &str,
        confirmation: &Confirmation,
        digest: &str,
        purpose: &str,
    ) -> Result<()> {
        let why = if confirmation.digest != digest {
            Err(format!(
                "the confirmation quotes digest {}, not the digest of what it would release \
                 ({digest}); review the current plan and confirm it",
                confirmation.digest
            ))
        } else {
            self.policy
                .approvals
                .check(initiator, &confirmation.by, confirmation.role.as_deref())
        };
        let Err(why) = why else {
            return Ok(());
        };
        let data = serde_json::json!({
            "run": run.id,
            "person": run.person.id,
            "by": confirmation.by,
            "role": confirmation.role,
            "digest": confirmation.digest,
            "for": purpose,
            "reason": why,
        });
        Err(self
            .refuse(run, &confirmation.by, data, why, digest)
            .await?)
    }

    /// Audits a refused confirmation (`confirmation_refused` with `data`, by `actor`) and
    /// returns the `ConfirmationRequired` error saying `why`, naming the run and `digest`.
    pub(super) async fn refuse(
        &self,
        run: &Run,
        actor: &str,
        data: serde_json::Value,
        why: String,
        digest: &str,
    ) -> Result<Error> {
        let event = AuditEvent::new(
            self.clock.now(),
            actor.to_owned(),
            AuditKind::Note {
                name: "confirmation_refused".into(),
                data,
            },
        );
        // A run not stored yet (refused at submission) has no trail of its own.
        let stored = run.state != RunState::Planned;
        let event = if stored {
            event.with_run(run.id)
        } else {
            event
        };
        self.append_audit(event).await?;
        Ok(Error::new(ErrorKind::ConfirmationRequired, why)
            .with_context("run", run.id)
            .with_context("digest", digest))
    }
}

/// The apps a plan covers: every app the policy names with a method that acts, plus every app
/// the person was ever discovered in (sources of truth aside), each with its method and a note.
/// A discovered app the policy does not name runs its connector's default actions
/// ([`crate::ActionSpec::by_default`], never critical ones) in the first stage when a
/// connector is configured for it; otherwise it follows `unknown_apps`.
fn plan_scope(
    policy: &Policy,
    inventory: &[Account],
    connectors: &BTreeMap<AppId, ConnectorEntry>,
) -> BTreeMap<AppId, (Method, String)> {
    let mut scope: BTreeMap<AppId, (Method, String)> = BTreeMap::new();
    for (app, p) in &policy.apps {
        if !matches!(p.method, Method::Ignore) {
            scope.insert(app.clone(), (p.method.clone(), "in policy".into()));
        }
    }
    for acct in inventory
        .iter()
        .filter(|a| !a.account.app.as_str().starts_with(super::SOURCE_APP_PREFIX))
    {
        let app = &acct.account.app;
        let note = format!("discovered {}", acct.first_seen.format("%Y-%m-%d"));
        match scope.get_mut(app) {
            Some(entry) => entry.1 = format!("in policy; {note}"),
            None => {
                let entry = match policy.apps.get(app) {
                    Some(p) => (p.method.clone(), note),
                    None => default_actions(policy, connectors.get(app)).map_or_else(
                        || (policy.unknown_apps.clone(), note.clone()),
                        |actions| {
                            (
                                Method::Automatic { actions },
                                format!("{note}; not in policy, its connector's default actions"),
                            )
                        },
                    ),
                };
                scope.insert(app.clone(), entry);
            }
        }
    }
    scope
}

/// The default actions of `connector` (not critical, not unavailable), in the first stage;
/// `None` without a connector or without one.
fn default_actions(
    policy: &Policy,
    connector: Option<&ConnectorEntry>,
) -> Option<Vec<PlannedAction>> {
    let caps = connector?.connector.capabilities();
    let stage = &policy.stages.first()?.name;
    let actions: Vec<PlannedAction> = caps
        .default_actions()
        .map(|a| PlannedAction {
            action: Action::new(a.name.clone()),
            stage: stage.clone(),
            line: 0,
        })
        .collect();
    (!actions.is_empty()).then_some(actions)
}

/// When each stage of the policy runs for a run effective at `effective_at`.
///
/// # Errors
/// `InvalidInput` when a stage's time is beyond the calendar (the caller's error, never a
/// panic).
fn stage_times<'p>(
    policy: &'p Policy,
    effective_at: DateTime<Utc>,
    person: &Person,
) -> Result<BTreeMap<&'p str, DateTime<Utc>>> {
    // When each stage runs; a time beyond the calendar is the caller's error, never a panic.
    let mut stage_at: BTreeMap<&str, DateTime<Utc>> = BTreeMap::new();
    for stage in &policy.stages {
        let at = effective_at
            .checked_add_signed(stage.offset)
            .ok_or_else(|| {
                Error::invalid_input(format!(
                    "effective_at {effective_at} plus the offset of stage {} ({}) is beyond the calendar",
                    stage.name, stage.offset
                ))
                .with_context("field", format!("stages.{}", stage.name))
                .with_context("person", &person.id)
            })?;
        stage_at.insert(&stage.name, at);
    }
    Ok(stage_at)
}

/// Makes the tasks of one app of a plan.
struct NewTask<'a> {
    app: &'a AppId,
    run_id: RunId,
    stage_at: &'a BTreeMap<&'a str, DateTime<Utc>>,
    effective_at: DateTime<Utc>,
}

impl NewTask<'_> {
    /// A pending task of `kind` on `account` in `stage`.
    fn task(&self, kind: TaskKind, account: Option<AccountRef>, stage: &str) -> Task {
        let id = TaskId::new_v7();
        Task {
            id,
            app: self.app.clone(),
            kind,
            account,
            depends_on: Vec::new(),
            stage: stage.to_owned(),
            not_before: self
                .stage_at
                .get(stage)
                .copied()
                .unwrap_or(self.effective_at),
            critical: false,
            reversible: false,
            not_found_is_done: true,
            idempotency_key: format!("{}:{id}", self.run_id),
            state: TaskState::Pending,
            attempts: 0,
            due_at: None,
            started_at: None,
            finished_at: None,
        }
    }
}
