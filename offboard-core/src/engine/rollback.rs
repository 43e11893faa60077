//! [`Engine::rollback`]: undoing a run's reversible actions under its restore lease
//! ([`RollbackReport`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Confirmation, Engine, EngineShared};
use crate::connector::Connector;
use crate::error::{Error, ErrorRecord, Result};
use crate::machine::{self, Command, Event};
use crate::run::{KeptTask, Outcome, RestoreLease, Run, RunId, RunState, TaskId, TaskState};
use crate::store::Store;

/// What a rollback did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackReport {
    /// Tasks undone (or marked undone: they changed nothing), in the order undone.
    pub restored: Vec<TaskId>,
    /// Tasks whose restore failed.
    pub failed: Vec<(TaskId, ErrorRecord)>,
    /// Tasks not restored because restoring a task that depended on them (directly or not)
    /// failed, each with that task: e.g. an account is not re-enabled while its groups are not
    /// back. A later rollback takes them.
    #[serde(default)]
    pub kept: Vec<KeptTask>,
    /// The run's state afterwards.
    pub state: RunState,
}

impl Engine {
    /// Undoes the run's reversible actions from their snapshots, newest first, as `by` asks.
    ///
    /// # Behavior
    /// Only for ended runs. Takes the reversible tasks that completed, and those that failed
    /// (a failure after the snapshot may have changed the account; one without a snapshot
    /// changed nothing), in reverse order of completion, so a task is restored before the
    /// tasks it depended on ([`Run::restorable`]). Actions that changed nothing
    /// (`already_done`, `not_found`, failed before their snapshot) are marked rolled back
    /// without a call. When a task's restore fails, the tasks it depended on (transitively)
    /// are kept as they are ([`RollbackReport::kept`]): an account is not re-enabled while its
    /// groups are not back. Calling it again after a partial failure continues.
    ///
    /// The rollback holds the run's restore lease ([`Run::restore_lease`], taken with its
    /// request and renewed before and after each restore, through the store's versioned
    /// commits): a second rollback of the run, by this engine or another one sharing the store,
    /// is refused while the first runs, so each task is restored at most once. A rollback
    /// whose engine died is taken over once its lease (the engine's lease length) expired.
    ///
    /// A run with critical tasks ([`Run::rollback_needs_confirmation`]) rolls back only with
    /// a `confirmation` quoting its [`Run::rollback_digest`] (what the rollback would restore),
    /// by a confirmer the policy's approvals allow (four eyes: someone else than `by`).
    /// Other runs ignore `confirmation`.
    ///
    /// Every step is audited: `rollback_requested`, then per task `restore_started` and
    /// `task_rolled_back` or `restore_failed`, then `rollback_ended` (naming the kept tasks).
    ///
    /// # Errors
    /// `NotFound`; `Conflict` if the run has not ended, has been rolled back, or another
    /// rollback holds it (or took it over meanwhile: this one stops); `ConfirmationRequired`
    /// when a confirmation is needed and missing, quotes another digest or is refused by the
    /// approvals (audited as `confirmation_refused`; nothing changes).
    pub async fn rollback(
        &self,
        run: RunId,
        by: &str,
        confirmation: Option<Confirmation>,
    ) -> Result<RollbackReport> {
        let inner = &self.inner;
        let current = inner.load(run).await?;
        // A run that cannot roll back (not ended, rolled back) is refused by the machine below,
        // with nothing to confirm.
        let can_roll_back = current.state.is_terminal() && current.state != RunState::RolledBack;
        if can_roll_back && current.rollback_needs_confirmation() {
            inner
                .approve_rollback(&current, by, confirmation.as_ref())
                .await?;
        }
        let token = uuid::Uuid::new_v4();
        let requested = Event::RollbackRequested {
            by: by.to_owned(),
            lease: Some(inner.restore_lease(token)),
        };
        let (stored, commands) = inner.apply_retrying(run, None, by, &requested).await?;
        let mut report = RollbackReport {
            restored: Vec::new(),
            failed: Vec::new(),
            kept: Vec::new(),
            state: RunState::Running,
        };
        // Tasks a failed restore's task depended on, directly or not, with that task.
        let mut keep = BTreeMap::new();
        for cmd in commands {
            let Command::Restore(task_id) = cmd else {
                continue;
            };
            if let Some(&because) = keep.get(&task_id) {
                report.kept.push(KeptTask {
                    task: task_id,
                    because,
                });
                continue;
            }
            match inner.restore(run, task_id, by, token).await? {
                Ok(()) => report.restored.push(task_id),
                Err(e) => {
                    report.failed.push((task_id, e.record()));
                    let mut stack = vec![task_id];
                    while let Some(t) = stack.pop() {
                        let deps = stored.task(t).map(|t| t.depends_on.clone());
                        for d in deps.unwrap_or_default() {
                            if let std::collections::btree_map::Entry::Vacant(v) = keep.entry(d) {
                                v.insert(task_id);
                                stack.push(d);
                            }
                        }
                    }
                }
            }
        }
        let ended = Event::RollbackEnded {
            token: Some(token),
            kept: report.kept.clone(),
        };
        let (ended, _) = inner.apply_retrying(run, None, by, &ended).await?;
        report.state = ended.state;
        Ok(report)
    }
}

impl EngineShared {
    /// Whether `by` may roll back `run` (which has critical tasks) with `confirmation`: it
    /// quotes the run's [`Run::rollback_digest`] and the policy's approvals allow its confirmer
    /// (four eyes: not `by`). A missing or refused confirmation is audited
    /// (`confirmation_refused`, `for: rollback`) before it is returned as
    /// `ConfirmationRequired`, naming the digest to quote.
    async fn approve_rollback(
        &self,
        run: &Run,
        by: &str,
        confirmation: Option<&Confirmation>,
    ) -> Result<()> {
        let digest = run.rollback_digest();
        match confirmation {
            Some(c) => self.approve_as(run, by, c, &digest, "rollback").await,
            None => {
                let why = format!(
                    "run {} has critical tasks: rolling it back needs a confirmation quoting its \
                     rollback digest ({digest})",
                    run.id
                );
                let data = serde_json::json!({
                    "run": run.id,
                    "person": run.person.id,
                    "by": by,
                    "for": "rollback",
                    "reason": why,
                });
                Err(self.refuse(run, by, data, why, &digest).await?)
            }
        }
    }

    /// The restore lease of the rollback `token`, held by this engine from now for its lease
    /// length (taken, and renewed, with each event the rollback records).
    fn restore_lease(&self, token: uuid::Uuid) -> RestoreLease {
        RestoreLease {
            holder: self.worker_id.clone(),
            token,
            until: machine::lease_until(self.clock.now(), self.lease_for),
        }
    }

    /// Restores one task of the rollback `token` (holding its restore lease): records
    /// `restore_started`, calls the connector's restore from the task's snapshot, and records
    /// the result (`task_rolled_back` or `restore_failed`). A task that changed nothing is
    /// marked rolled back without a call. The outer error stops the rollback (its lease was lost, the store
    /// failed); the inner one is the failed restore, recorded.
    async fn restore(
        &self,
        run_id: RunId,
        task_id: TaskId,
        by: &str,
        token: uuid::Uuid,
    ) -> Result<Result<()>> {
        let run = self.load(run_id).await?;
        let task = run
            .task(task_id)
            .ok_or_else(|| Error::internal("restore of unknown task"))?;
        let snapshot = match &task.state {
            TaskState::Completed {
                outcome: Outcome::Done,
                ..
            } => Some(self.store.snapshot(task_id).await?.ok_or_else(|| {
                Error::not_found(format!("no snapshot was stored for {}", task.label()))
            })),
            // A failure after its snapshot may have changed the account; without one, its
            // action never ran.
            TaskState::Failed { .. } => self.store.snapshot(task_id).await?.map(Ok),
            // Nothing was changed by this task.
            _ => None,
        };
        let outcome = match snapshot {
            None => Ok(()),
            Some(snapshot) => {
                let conn = self.connectors.get(&task.app);
                match (snapshot, conn, &task.account) {
                    (Err(e), _, _) => Err(e),
                    (Ok(snapshot), Some(conn), Some(account)) => {
                        let _permit = conn.limiter.acquire().await;
                        // Recorded (and the lease renewed) once the call can be made at once.
                        let started = Event::RestoreStarted {
                            task: task_id,
                            lease: Some(self.restore_lease(token)),
                        };
                        self.apply_retrying(run_id, None, by, &started).await?;
                        conn.limiter
                            .timed("restore", conn.connector.restore(account, &snapshot))
                            .await
                            .map(|_| ())
                            .map_err(|e| {
                                e.with_context("app", &task.app).with_context("run", run_id)
                            })
                    }
                    _ => Err(Error::config(
                        format!("connectors.{}", task.app),
                        "no connector to restore with",
                    )),
                }
            }
        };
        let event = match &outcome {
            Ok(()) => Event::TaskRolledBack {
                task: task_id,
                lease: Some(self.restore_lease(token)),
            },
            Err(e) => Event::RestoreFailed {
                task: task_id,
                error: e.record(),
                lease: Some(self.restore_lease(token)),
            },
        };
        self.apply_retrying(run_id, None, by, &event).await?;
        Ok(outcome)
    }
}
