//! One plan of a [`Commit`] for both SQL stores: what it writes, in which order, and what each
//! statement's outcome means. Each dialect's executor only binds the plan's steps to its
//! statements, runs them (SQLite: in one batch of its group commit; PostgreSQL: one after
//! another in a transaction) and hands each step's outcome back to [`CommitPlan::check`].
//!
//! The order, for both:
//! 1. the run's row, at the expected version (the executor's own step: a moved version is
//!    reported by each dialect as it can);
//! 2. each lease, in the order given: checked by the write of its task's row when that task
//!    changed (the check, the row and the release in one statement), else by a read of the row;
//! 3. the other changed tasks' rows;
//! 4. the releases of the leases checked by a read;
//! 5. the snapshots, insert-if-absent;
//! 6. the leases taken with the change (after the rows, which leave the lease columns alone);
//! 7. the events, sealed after the chain head.

use chrono::{DateTime, Utc};
use offboard_core::store::{Commit, LeaseConflict};
use offboard_core::{AuditEvent, Result, Run, RunId, TaskId};
use uuid::Uuid;

use crate::codec::{self, ts, ts_opt};

/// A commit encoded for the SQL stores (see the module docs for the order of its steps).
pub(crate) struct CommitPlan {
    /// The run.
    pub(crate) id: RunId,
    /// The run's id as stored.
    pub(crate) run_id: String,
    /// The version the run was loaded at: the update stands only at it.
    pub(crate) expected: u64,
    /// The run's new row.
    pub(crate) run: RunRow,
    /// Steps 2 to 6, in order.
    pub(crate) steps: Vec<Step>,
    /// The events, unsealed (taken by the executor, which seals them after the chain head).
    pub(crate) events: Vec<AuditEvent>,
    /// The caller's clock when it made the commit ([`Commit::now`]).
    pub(crate) now: Option<DateTime<Utc>>,
}

/// A run's row.
pub(crate) struct RunRow {
    /// The person's id.
    pub(crate) person: String,
    /// The state's name ([`codec::state_name`]).
    pub(crate) state: String,
    /// Whether the run is not terminal.
    pub(crate) open: bool,
    /// Creation time, as stored.
    pub(crate) created_at: String,
    /// End time, as stored.
    pub(crate) finished_at: Option<String>,
    /// The run's own fields as JSON (its tasks are rows of their own).
    pub(crate) body: String,
}

/// A task's row.
pub(crate) struct TaskRow {
    /// The task's id.
    pub(crate) id: String,
    /// Its run's id.
    pub(crate) run: String,
    /// Its index among the run's tasks.
    pub(crate) position: usize,
    /// The task as JSON ([`codec::task_body`]).
    pub(crate) body: String,
    /// When it is due, as stored (claims query this column).
    pub(crate) due_at: Option<String>,
}

impl TaskRow {
    /// The row of `run`'s task at `position`.
    pub(crate) fn new(run: &Run, position: usize) -> Result<Self> {
        let task = &run.tasks[position];
        Ok(Self {
            id: task.id.to_string(),
            run: run.id.to_string(),
            position,
            body: codec::task_body(task)?,
            due_at: ts_opt(task.due_at),
        })
    }
}

/// A lease the commit is made under.
#[derive(Clone)]
pub(crate) struct LeaseRef {
    /// Its task.
    pub(crate) task: TaskId,
    /// The task's id as stored.
    pub(crate) task_id: String,
    /// Its token: held while it is the task's current one.
    pub(crate) token: Uuid,
    /// Whether the commit releases it.
    pub(crate) release: bool,
    /// Whether it is a lease of another run: never held here, whatever its statement finds.
    pub(crate) foreign: bool,
}

/// A lease taken with the commit ([`Commit::claims`]).
pub(crate) struct ClaimRow {
    /// The task taken.
    pub(crate) task: TaskId,
    /// The task's id as stored.
    pub(crate) task_id: String,
    /// The worker taking it.
    pub(crate) worker: String,
    /// The new lease's token (made by the caller).
    pub(crate) token: Uuid,
    /// Its expiry on the caller's clock.
    pub(crate) until: DateTime<Utc>,
    /// Whether it is a lease on another run: never taken here, whatever its statement finds.
    pub(crate) foreign: bool,
}

/// One statement of a commit after the run's update.
pub(crate) enum Step {
    /// A leased task's new row, written only while the lease is held (its token is the task's
    /// current one), and the lease released with it if asked: one row changed, or the lease
    /// is lost.
    LeasedTask(LeaseRef, TaskRow),
    /// A lease whose task the commit leaves unchanged, checked by reading the row (locking it
    /// where the dialect can): one row returned, or the lease is lost.
    LeaseHeld(LeaseRef),
    /// A changed task's row, under no lease of this commit.
    Task(TaskRow),
    /// The release of a lease checked by [`Step::LeaseHeld`].
    LeaseClear(LeaseRef),
    /// A snapshot, insert-if-absent: (task id, JSON).
    Snapshot(String, String),
    /// A lease taken on a task of the run that holds none: one row changed, or it is taken.
    Claim(ClaimRow),
}

impl Step {
    /// Whether its outcome is the rows it returned (a read), not the rows it changed: a
    /// read's change count is no fact about it (sqlx-sqlite reports the previous write's).
    pub(crate) fn is_read(&self) -> bool {
        matches!(self, Self::LeaseHeld(_))
    }
}

/// Refuses, before any statement, a commit under a lease on another run's task (`lease=lost`)
/// or claiming one (`lease=taken`): neither is held here, nor taken. Optional: reading the
/// plan's steps refuses them as well ([`CommitPlan::check`]), after the version check.
///
/// # Errors
/// That refusal.
pub(crate) fn refuse_foreign(commit: &Commit) -> Result<()> {
    let id = commit.run.id;
    if let Some((lost, _)) = commit.leases.iter().find(|(lease, _)| lease.run != id) {
        return Err(LeaseConflict::Lost.error(id, lost.task));
    }
    if let Some(taken) = commit.claims.iter().find(|lease| lease.run != id) {
        return Err(LeaseConflict::Taken.error(id, taken.task));
    }
    Ok(())
}

impl CommitPlan {
    /// Encodes `commit` (every row and body, before any statement runs).
    ///
    /// # Errors
    /// Encoding errors.
    pub(crate) fn new(commit: Commit) -> Result<Self> {
        let Commit {
            mut run,
            changed_tasks,
            events,
            leases,
            snapshots,
            claims,
            now,
            ..
        } = commit;
        let id = run.id;
        // Each changed task once, in the order given.
        let mut positions: Vec<usize> = Vec::with_capacity(changed_tasks.len());
        for task in &changed_tasks {
            if let Some(position) = run.tasks.iter().position(|t| t.id == *task)
                && !positions.contains(&position)
            {
                positions.push(position);
            }
        }
        let mut steps = Vec::with_capacity(leases.len() * 2 + positions.len() + claims.len());
        let mut clears = Vec::new();
        for (lease, release) in leases {
            let lease_ref = LeaseRef {
                task: lease.task,
                task_id: lease.task.to_string(),
                token: lease.token,
                release,
                foreign: lease.run != id,
            };
            let changed = positions
                .iter()
                .position(|p| run.tasks[*p].id == lease.task);
            match changed {
                Some(i) => {
                    let row = TaskRow::new(&run, positions.remove(i))?;
                    steps.push(Step::LeasedTask(lease_ref, row));
                }
                None => {
                    if release {
                        clears.push(Step::LeaseClear(lease_ref.clone()));
                    }
                    steps.push(Step::LeaseHeld(lease_ref));
                }
            }
        }
        for position in positions {
            steps.push(Step::Task(TaskRow::new(&run, position)?));
        }
        steps.extend(clears);
        for (task, snapshot) in &snapshots {
            steps.push(Step::Snapshot(task.to_string(), codec::to_json(snapshot)?));
        }
        steps.extend(claims.into_iter().map(|lease| {
            Step::Claim(ClaimRow {
                task: lease.task,
                task_id: lease.task.to_string(),
                worker: lease.worker,
                token: lease.token,
                until: lease.until,
                foreign: lease.run != id,
            })
        }));
        let body = codec::run_body(&mut run)?;
        Ok(Self {
            id,
            run_id: id.to_string(),
            expected: run.version,
            run: RunRow {
                person: run.person.id.to_string(),
                state: codec::state_name(run.state),
                open: !run.state.is_terminal(),
                created_at: ts(run.created_at),
                finished_at: ts_opt(run.finished_at),
                body,
            },
            steps,
            events,
            now,
        })
    }

    /// Reads a step's outcome: `found`, whether its statement changed a row (a write) or
    /// returned one ([`Step::is_read`]).
    ///
    /// # Errors
    /// `Conflict` with `lease=lost` for a lease check that found no row (or a lease of
    /// another run), `lease=taken` for a claim that changed none (or one on another run),
    /// naming the task.
    pub(crate) fn check(&self, step: &Step, found: bool) -> Result<()> {
        match step {
            Step::LeasedTask(lease, _) | Step::LeaseHeld(lease) if lease.foreign || !found => {
                Err(LeaseConflict::Lost.error(self.id, lease.task))
            }
            Step::Claim(claim) if claim.foreign || !found => {
                Err(LeaseConflict::Taken.error(self.id, claim.task))
            }
            _ => Ok(()),
        }
    }

    /// The version the run has once the commit stands.
    pub(crate) fn next_version(&self) -> u64 {
        self.expected + 1
    }
}
