//! The runs this engine's workers are busy with: one slot per run, shared by its tasks in
//! flight.
//!
//! A slot holds the run as this engine last loaded or committed it, behind an async lock.
//! Sibling tasks of one run leave their changes (an event each) in the slot; whoever takes the
//! lock applies every change waiting to the version the previous commit stored and commits
//! them together, under all their leases (flat combining): no reload per step, no version
//! conflict between siblings, and siblings that finish while one of them commits share the
//! next commit. Another engine's commit still makes ours conflict; the slot is then emptied
//! and the run reloaded (see [`super::Inner::apply_with`]).
//!
//! A claimed task decides what to do from its run as stored when it was claimed or later. The
//! slot's run serves for that when it descends from a load that began after the claim
//! returned: every version since that load was committed by this engine on top of the one
//! before (a commit checks the version), so it is at least as new as a load would be. Each
//! cached run carries the epoch of the load it descends from; a claim is stamped with the
//! epoch after it returned (see [`Epochs`]). The slot's last run is readable without the lock,
//! so a claimed task decides while a sibling's commit is in flight, and its change reaches the
//! slot in time to share the next commit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::{Applied, Change};
use crate::run::{Run, RunId};

/// A run as this engine last loaded or committed it, with the epoch of the load it descends
/// from.
#[derive(Debug, Clone)]
pub(crate) struct Cached {
    /// Shared with the slot's last run and the tasks that committed it; a change applies to a
    /// copy.
    pub(crate) run: Arc<Run>,
    pub(crate) since: u64,
}

/// One run's slot: its cached state (`None`: load it from the store) behind the lock its
/// tasks commit under, and the changes its tasks have ready while another commits.
///
/// Whoever takes the lock commits every change waiting, in one commit (flat combining): sibling
/// tasks that finish while one of them commits share the next commit instead of queueing for
/// one each (see [`super::Inner::apply_with`]).
#[derive(Default)]
pub(crate) struct RunSlot {
    cached: tokio::sync::Mutex<Option<Cached>>,
    /// The run as last loaded or committed, readable while a commit holds the lock: a claimed
    /// task decides from it without waiting for its siblings' commit (and so reaches the
    /// waiting changes in time to share the next one).
    last: Mutex<Option<Cached>>,
    waiting: Mutex<Vec<Waiting>>,
}

/// A change waiting in a slot, and where to tell its outcome.
pub(crate) type Waiting = (Change, tokio::sync::oneshot::Sender<Applied>);

impl std::fmt::Debug for RunSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let waiting = self
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("RunSlot")
            .field("cached", &self.cached)
            .field("waiting", &waiting)
            .finish()
    }
}

impl RunSlot {
    /// Takes the slot's lock.
    pub(crate) async fn lock(&self) -> tokio::sync::MutexGuard<'_, Option<Cached>> {
        self.cached.lock().await
    }

    /// The run as last loaded or committed (see [`RunSlot::remember`]).
    pub(crate) fn last(&self) -> Option<Cached> {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Keeps `cached` as the run last loaded or committed.
    pub(crate) fn remember(&self, cached: &Cached) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(cached.clone());
    }

    /// Leaves a change for whoever takes the lock next.
    pub(crate) fn wait(&self, waiting: Waiting) {
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(waiting);
    }

    /// The changes waiting, in the order they were left.
    pub(crate) fn take_waiting(&self) -> Vec<Waiting> {
        std::mem::take(&mut *self.waiting.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// A counter that orders claims and loads: a load stamped with a later epoch than a claim
/// began after that claim returned.
#[derive(Debug, Default)]
pub(crate) struct Epochs(AtomicU64);

impl Epochs {
    /// The next epoch.
    pub(crate) fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
}

/// The slots in use, each with the number of tasks using it.
type SlotMap = Arc<Mutex<HashMap<RunId, (Arc<RunSlot>, usize)>>>;

/// Slots of the runs with a task in flight, each with the number of tasks using it.
#[derive(Debug, Default)]
pub(crate) struct RunSlots(SlotMap);

impl RunSlots {
    /// The slot of `run`, kept while the returned guard lives.
    pub(crate) fn enter(&self, run: RunId) -> SlotGuard {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = map.entry(run).or_default();
        entry.1 += 1;
        SlotGuard {
            slots: self.0.clone(),
            run,
            slot: entry.0.clone(),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// A task's use of its run's slot; the slot is dropped with its last user.
#[derive(Debug)]
pub(crate) struct SlotGuard {
    slots: SlotMap,
    run: RunId,
    slot: Arc<RunSlot>,
}

impl std::ops::Deref for SlotGuard {
    type Target = RunSlot;

    fn deref(&self) -> &RunSlot {
        &self.slot
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let mut map = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = map.get_mut(&self.run) {
            entry.1 -= 1;
            if entry.1 == 0 {
                map.remove(&self.run);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RunSlots;
    use crate::run::RunId;

    #[test]
    fn a_slot_is_shared_by_its_users_and_dropped_with_the_last() {
        let slots = RunSlots::default();
        let (a, b) = (RunId::new_v4(), RunId::new_v4());
        let first = slots.enter(a);
        let second = slots.enter(a);
        let other = slots.enter(b);
        assert!(std::ptr::eq(&*first, &*second), "one slot per run");
        assert!(!std::ptr::eq(&*first, &*other));
        assert_eq!(slots.len(), 2);
        drop(first);
        assert_eq!(slots.len(), 2, "still used by the second task");
        drop(second);
        assert_eq!(slots.len(), 1);
        drop(other);
        assert_eq!(slots.len(), 0);
    }
}
