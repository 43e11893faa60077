//! Group commit for [`super::PostgresStore`]: this process's commits (and new runs) share
//! transactions, so the audit chain's head (one row every fleet process's appends lock in
//! turn) is locked once per group instead of once per write.
//!
//! A commit (or a new run: everything said of commits here holds for them) is queued; when no group is under way, one is started on a task of its own (so a
//! caller that stops waiting strands nobody). After a couple of scheduler turns it takes the
//! queue (at most [`GROUP_MAX`] commits, the rest wait for the next group) and runs it in
//! one transaction:
//! 1. the commits in order of their runs' ids (the order in which a commit of any process locks
//!    run rows, so two groups never wait on each other in a cycle), the commits of one run in
//!    the order they came;
//! 2. each commit's statements, as a commit alone runs them ([`PostgresStore::write_rows`]);
//! 3. the chain head locked and read once, every commit's events sealed after it in the order
//!    of step 1, inserted in one statement, the head moved once;
//! 4. one `COMMIT`, then every caller is answered.
//!
//! A commit whose checks refuse it (a moved version, a lost lease, a task taken, a run that
//! exists or a person's second open run) is answered
//! with that refusal, the transaction is rolled back, and the group runs again without it: a
//! refusal is what that commit would have met had it run after the ones before it. A database
//! error (a deadlock, a constraint, a lost connection) rolls back the group and every commit
//! of it then runs alone, as it would without grouping, and gets its own answer.
//!
//! So each answer is one a commit alone could have had, and a refused commit changes nothing.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use offboard_core::audit::Prepared;
use offboard_core::{AuditEvent, Error, ErrorKind, Result};
use tokio::sync::oneshot;

use super::{EventRow, PostgresStore, Write, append, insert_events, lock_head};
use crate::codec::db;

/// At most this many commits share one transaction (by default).
pub(super) const GROUP_MAX: usize = 64;

/// Turns of the scheduler a new group gives other tasks before taking the queue.
const LEAD_TURNS: usize = 2;

/// What a commit is answered.
type Answer = Result<(u64, Vec<AuditEvent>)>;

/// A write waiting for its group.
struct Queued {
    write: Write,
    events: Vec<Prepared>,
    answer: oneshot::Sender<Answer>,
}

/// The queue of one store (and its clones).
pub(super) struct Group {
    /// At most this many commits a transaction; 1: every commit alone.
    max: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Queued>,
    /// Whether a group's task is under way (it takes the queue until it finds it empty).
    leading: bool,
}

impl Group {
    /// A queue whose transactions hold at most `max` commits.
    pub(super) fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            state: Mutex::new(State::default()),
        }
    }

    /// The most commits a transaction holds.
    pub(super) fn max(&self) -> usize {
        self.max
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `queued`; true if no group is under way (the caller starts one).
    fn push(&self, queued: Queued) -> bool {
        let mut state = self.state();
        state.queue.push_back(queued);
        !std::mem::replace(&mut state.leading, true)
    }

    /// The next group (up to `max` commits); empty when the queue is, and then the group's
    /// task ends (under the same lock, so a commit queued after it starts a new one). A
    /// commit whose caller stopped waiting is dropped unwritten, as a commit alone is when
    /// its future is dropped before it ran.
    fn take(&self) -> Vec<Queued> {
        let mut state = self.state();
        state.queue.retain(|queued| !queued.answer.is_closed());
        let n = state.queue.len().min(self.max);
        if n == 0 {
            state.leading = false;
        }
        state.queue.drain(..n).collect()
    }
}

/// Ends the group's task's turn if the task is dropped before it found the queue empty (its
/// runtime shut down): the next commit starts a new one.
struct Leading {
    group: Arc<Group>,
    /// Whether the turn is still this task's to end.
    armed: bool,
}

impl Drop for Leading {
    fn drop(&mut self) {
        if self.armed {
            self.group.state().leading = false;
        }
    }
}

/// Why a group's transaction did not stand.
enum Failed {
    /// The commit at this index was refused by its checks.
    Refused(usize, Error),
    /// The database failed: every commit runs alone.
    Database,
}

impl PostgresStore {
    /// Stores `write` and its events (prepared): with the writes of other tasks of this
    /// process in one transaction, or alone when the store's groups hold one write.
    pub(super) async fn group_write(&self, write: Write, events: Vec<Prepared>) -> Answer {
        if self.group.max() <= 1 {
            return self.write_alone(write, events).await;
        }
        let operation = write.operation();
        let (answer, answered) = oneshot::channel();
        if self.group.push(Queued {
            write,
            events,
            answer,
        }) {
            let store = self.clone();
            tokio::spawn(async move { store.lead().await });
        }
        answered.await.unwrap_or_else(|_| {
            Err(Error::new(
                ErrorKind::Storage,
                "the commit's group ended before it was answered (its runtime shut down); \
                 whether it was stored is unknown",
            )
            .with_operation(operation))
        })
    }

    /// Takes and runs groups until the queue is empty.
    async fn lead(self) {
        let mut leading = Leading {
            group: self.group.clone(),
            armed: true,
        };
        loop {
            for _ in 0..LEAD_TURNS {
                tokio::task::yield_now().await;
            }
            let group = self.group.take();
            if group.is_empty() {
                // `take` ended the turn.
                leading.armed = false;
                return;
            }
            self.run_group(group).await;
        }
    }

    /// Runs one group (see the module docs) and answers each of its commits.
    async fn run_group(&self, mut group: Vec<Queued>) {
        // Stable: one run's commits keep their order.
        group.sort_by(|a, b| a.write.run_id().cmp(b.write.run_id()));
        while group.len() > 1 {
            match self.try_group(&mut group).await {
                Ok(sealed) => {
                    for (queued, sealed) in group.into_iter().zip(sealed) {
                        let version = queued.write.next_version();
                        let _ = queued.answer.send(Ok((version, sealed)));
                    }
                    return;
                }
                Err(Failed::Refused(i, refused)) => {
                    let queued = group.remove(i);
                    let _ = queued.answer.send(Err(refused));
                }
                Err(Failed::Database) => break,
            }
        }
        // Alone: one commit left, or the database failed the group (each commit then gets
        // the answer it gets on its own).
        let alone = group.into_iter().map(|queued| async move {
            let answer = self.write_alone(queued.write, queued.events).await;
            let _ = queued.answer.send(answer);
        });
        futures::future::join_all(alone).await;
    }

    /// One transaction for every commit of `group`: each one's events as sealed, in order.
    async fn try_group(
        &self,
        group: &mut [Queued],
    ) -> std::result::Result<Vec<Vec<AuditEvent>>, Failed> {
        let commits = group.len();
        let database = |e: Error| {
            tracing::debug!(error = %e, commits, "a group commit failed; its commits run alone");
            Failed::Database
        };
        let mut tx = self.begin("postgres.commit").await.map_err(database)?;
        for (i, queued) in group.iter().enumerate() {
            if let Err(refused) = self
                .write_rows(&mut tx, &queued.write)
                .await
                .map_err(database)?
            {
                return Err(Failed::Refused(i, refused));
            }
        }
        let (mut seq, mut prev) = lock_head(&mut tx).await.map_err(database)?;
        let mut rows = Vec::new();
        for queued in group.iter_mut() {
            for e in &mut queued.events {
                seq += 1;
                e.seal(seq, &prev);
                prev.clone_from(&e.event().hash);
                rows.push(EventRow::prepared(e).map_err(database)?);
            }
        }
        insert_events(&mut tx, rows).await.map_err(database)?;
        tx.commit()
            .await
            .map_err(db("postgres.commit"))
            .map_err(database)?;
        Ok(group
            .iter_mut()
            .map(|queued| {
                std::mem::take(&mut queued.events)
                    .into_iter()
                    .map(Prepared::into_event)
                    .collect()
            })
            .collect())
    }

    /// Stores `write` in a transaction of its own.
    async fn write_alone(&self, write: Write, events: Vec<Prepared>) -> Answer {
        let operation = write.operation();
        let mut tx = self.begin(operation).await?;
        self.write_rows(&mut tx, &write).await??;
        let sealed = append(&mut tx, events).await?;
        tx.commit().await.map_err(db(operation))?;
        Ok((write.next_version(), sealed))
    }
}
