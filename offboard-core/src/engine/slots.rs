//! The runs this engine's workers are busy with: one slot per run, shared by its tasks in
//! flight.
//!
//! A slot holds the run as this engine last loaded or committed it, behind an async lock.
//! Sibling tasks of one run leave their changes (an event each) in the slot; whoever takes the
//! lock applies every change waiting to the version the previous commit stored and commits
//! them together, under all their leases (flat combining): no reload per step, no version
//! conflict between siblings, and siblings that finish while one of them commits share the
//! next commit. Another engine's commit still makes ours conflict; the slot is then emptied
//! and the run reloaded (see [`super::EngineShared::apply_with`]).
//!
//! A claimed task decides what to do from its run as stored when it was claimed or later. The
//! slot's run serves for that when it descends from a load that began after the claim
//! returned: every version since that load was committed by this engine on top of the one
//! before (a commit checks the version), so it is at least as new as a load would be. Each
//! cached run carries the epoch of the load it descends from; a claim is stamped with the
//! epoch after it returned (see [`Epochs`]). The slot's last run is readable without the lock,
//! so a claimed task decides while a sibling's commit is in flight, and its change reaches the
//! slot in time to share the next commit.
//!
//! The slot's run also serves when the version the claim read (a lease carries the run's
//! version as stored at the claim) is one of its line: the version it was loaded or submitted
//! at, or one this engine committed on top of it since; then it is that run or a later one of
//! ours. So that this holds beyond a slot's life, the runs this engine submitted or committed last, and whose slots are gone, are
//! kept (a bounded, least recently used set; finished runs are not kept) and seed the slot when
//! a task of theirs is claimed again: a run's next wave of tasks (a task made due by its
//! sibling's result) and its first (claimed after this engine submitted it) decide without a
//! load. Another engine's commit moves the version, and the claim then loads as before.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use hashlink::LruCache;

use super::{Change, CommitResult};
use crate::run::{Run, RunId};

/// A run as this engine last loaded, submitted or committed it, with the epoch of the load it
/// descends from and the version it descends from.
#[derive(Debug, Clone)]
pub(crate) struct Cached {
    /// Shared with the slot's last run and the tasks that committed it; a change applies to a
    /// copy.
    pub(crate) run: Arc<Run>,
    /// The epoch of the load it descends from (0: not from a load).
    pub(crate) load_epoch: u64,
    /// The version it was loaded or submitted at: every version from this one to the run's is
    /// this engine's (each commit checked the version before it).
    pub(crate) base_version: u64,
}

impl Cached {
    /// `run` as loaded from the store in epoch `since` (or submitted, with `since` 0).
    pub(crate) fn loaded(run: Arc<Run>, since: u64) -> Self {
        Self {
            base_version: run.version,
            load_epoch: since,
            run,
        }
    }

    /// `run` as this engine committed it on top of this one.
    pub(crate) fn committed_on_top(&self, run: Arc<Run>) -> Self {
        Self {
            run,
            load_epoch: self.load_epoch,
            base_version: self.base_version,
        }
    }

    /// Whether it is at least as new as the run stored when a task was claimed (the claim
    /// returned before epoch `claimed` and read the run at `version`, if the store tells):
    /// it descends from a load that began after the claim, or the version read is one of its
    /// own line (so it is that version or a later one of this engine's).
    pub(crate) fn fresh_for_claim(&self, claimed: u64, version: Option<u64>) -> bool {
        self.load_epoch > claimed
            || version.is_some_and(|v| (self.base_version..=self.run.version).contains(&v))
    }
}

/// One run's slot: its cached state (`None`: load it from the store) behind the lock its
/// tasks commit under, and the changes its tasks have ready while another commits.
///
/// Whoever takes the lock commits every change waiting, in one commit (flat combining): sibling
/// tasks that finish while one of them commits share the next commit instead of queueing for
/// one each (see [`super::EngineShared::apply_with`]).
#[derive(Default)]
pub(crate) struct RunSlot {
    cached: tokio::sync::Mutex<Option<Cached>>,
    /// The run as last loaded or committed, readable while a commit holds the lock: a claimed
    /// task decides from it without waiting for its siblings' commit (and so reaches the
    /// waiting changes in time to share the next one).
    last: Mutex<Option<Cached>>,
    waiting: Mutex<Vec<Waiting>>,
    /// Tasks using the slot (see [`RunSlot::siblings_on_their_way`]).
    users: AtomicUsize,
}

/// A change waiting in a slot, and where to tell its outcome.
pub(crate) type Waiting = (Change, tokio::sync::oneshot::Sender<CommitResult>);

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
    /// A slot holding `cached` (kept from an earlier slot or a submit), or empty.
    fn holding(cached: Option<Cached>) -> Self {
        Self {
            last: Mutex::new(cached.clone()),
            cached: tokio::sync::Mutex::new(cached),
            waiting: Mutex::default(),
            users: AtomicUsize::new(0),
        }
    }

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

    /// Holds `run`, loaded in epoch `since`, in `cached` (the slot's, under its lock) and as
    /// the run last loaded.
    pub(crate) fn hold_loaded(&self, cached: &mut Option<Cached>, run: Arc<Run>, since: u64) {
        let loaded = Cached::loaded(run, since);
        self.remember(&loaded);
        *cached = Some(loaded);
    }

    /// Leaves a change for whoever takes the lock next.
    pub(crate) fn wait(&self, waiting: Waiting) {
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(waiting);
    }

    /// Whether a task using the slot has no change waiting in it yet (it may be about to leave
    /// one, to share the next commit).
    pub(crate) fn siblings_on_their_way(&self) -> bool {
        let waiting = self
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        self.users.load(Ordering::SeqCst) > waiting
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

/// The slots in use, each with the number of tasks using it, and the runs kept from slots gone.
struct Shared {
    slots: Mutex<HashMap<RunId, (Arc<RunSlot>, usize)>>,
    /// Runs this engine submitted or committed last and has no slot for, by id (see
    /// [`RunSlots::keep`]). Locked after `slots` when both are.
    kept: Mutex<LruCache<RunId, Cached>>,
}

impl std::fmt::Debug for Shared {
    /// How many slots are in use and how many runs are kept (not the runs themselves).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let in_use = self
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        let kept = self
            .kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("RunSlots")
            .field("in_use", &in_use)
            .field("kept", &kept)
            .finish()
    }
}

impl Shared {
    fn keep(&self, cached: Cached) {
        if cached.run.state.is_terminal() {
            return;
        }
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.capacity() > 0 {
            kept.insert(cached.run.id, cached);
        }
    }
}

/// Slots of the runs with a task in flight, each with the number of tasks using it, and the
/// runs kept for slots to come.
#[derive(Debug)]
pub(crate) struct RunSlots(Arc<Shared>);

impl RunSlots {
    /// Slots that keep up to `kept` runs after their last task left (see [`RunSlots::keep`]).
    pub(crate) fn new(kept: usize) -> Self {
        Self(Arc::new(Shared {
            slots: Mutex::default(),
            kept: Mutex::new(LruCache::new(kept)),
        }))
    }

    /// The slot of `run`, kept while the returned guard lives; a new slot starts from the run
    /// kept for it, if one is.
    pub(crate) fn enter(&self, run: RunId) -> SlotGuard {
        let mut slots = self.0.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = slots.entry(run).or_insert_with(|| {
            let kept = self
                .0
                .kept
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&run);
            (Arc::new(RunSlot::holding(kept)), 0)
        });
        entry.1 += 1;
        entry.0.users.fetch_add(1, Ordering::SeqCst);
        SlotGuard {
            slots: self.0.clone(),
            run,
            slot: entry.0.clone(),
        }
    }

    /// Keeps `run` as this engine submitted it, for the slot of a task of it claimed later;
    /// the least recently kept run goes when the set is full. A finished run is not kept (none
    /// of its tasks is claimed again).
    pub(crate) fn keep(&self, run: Arc<Run>) {
        self.0.keep(Cached::loaded(run, 0));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    #[cfg(test)]
    fn kept(&self, run: RunId) -> Option<Cached> {
        self.0
            .kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&run)
            .cloned()
    }
}

/// A task's use of its run's slot; the slot is dropped with its last user, and its run kept.
#[derive(Debug)]
pub(crate) struct SlotGuard {
    slots: Arc<Shared>,
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
        self.slot.users.fetch_sub(1, Ordering::SeqCst);
        let mut slots = self
            .slots
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = slots.get_mut(&self.run) {
            entry.1 -= 1;
            if entry.1 == 0 {
                slots.remove(&self.run);
                if let Some(last) = self.slot.last() {
                    self.slots.keep(last);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{Cached, RunSlots};
    use crate::run::{Run, RunId, RunState};
    use crate::store::conformance::sample_run;

    fn run(state: RunState, version: u64) -> Arc<Run> {
        let mut run = sample_run(&[None]);
        run.state = state;
        run.version = version;
        Arc::new(run)
    }

    #[test]
    fn a_slot_is_shared_by_its_users_and_dropped_with_the_last() {
        let slots = RunSlots::new(4);
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

    #[test]
    fn a_slot_gone_keeps_its_run_for_the_next_slot_of_that_run() {
        let slots = RunSlots::new(4);
        let first = run(RunState::Running, 3);
        let guard = slots.enter(first.id);
        assert!(guard.last().is_none(), "nothing kept yet: the claim loads");
        guard.remember(&Cached::loaded(first.clone(), 7));
        drop(guard);
        assert_eq!(slots.len(), 0);
        assert_eq!(slots.kept(first.id).map(|c| c.run.version), Some(3));
        let again = slots.enter(first.id);
        let last = again.last().expect("seeded from the kept run");
        assert!(Arc::ptr_eq(&last.run, &first));
        assert_eq!((last.load_epoch, last.base_version), (7, 3));
        assert!(slots.kept(first.id).is_none(), "taken, not copied");
    }

    #[test]
    fn a_cached_run_serves_a_claim_that_read_a_version_of_its_own_line() {
        let loaded = Cached::loaded(run(RunState::Running, 3), 5);
        let committed = loaded.committed_on_top(run(RunState::Running, 6));
        // Claimed after the load began (the load's epoch is 5): by version only.
        assert!(
            committed.fresh_for_claim(9, Some(3)),
            "the version it was loaded at"
        );
        assert!(
            committed.fresh_for_claim(9, Some(5)),
            "a version this engine committed"
        );
        assert!(
            committed.fresh_for_claim(9, Some(6)),
            "the version it holds"
        );
        assert!(
            !committed.fresh_for_claim(9, Some(7)),
            "another engine committed since"
        );
        assert!(
            !committed.fresh_for_claim(9, Some(2)),
            "older than the load: not its line"
        );
        assert!(
            !committed.fresh_for_claim(9, None),
            "the store did not tell"
        );
        // A load that began after the claim returned serves whatever the claim read.
        assert!(
            !committed.fresh_for_claim(5, None),
            "loaded in the claim's own epoch"
        );
        assert!(Cached::loaded(run(RunState::Running, 3), 6).fresh_for_claim(5, None));
    }

    #[test]
    fn finished_runs_are_not_kept_and_the_least_recent_goes_first() {
        let slots = RunSlots::new(2);
        let done = run(RunState::Completed, 9);
        slots.keep(done.clone());
        assert!(slots.kept(done.id).is_none());
        let (a, b, c) = (
            run(RunState::Running, 1),
            run(RunState::Running, 1),
            run(RunState::Running, 1),
        );
        slots.keep(a.clone());
        slots.keep(b.clone());
        slots.keep(c.clone());
        assert!(slots.kept(a.id).is_none(), "the least recent went");
        assert!(slots.kept(b.id).is_some() && slots.kept(c.id).is_some());
        let none = RunSlots::new(0);
        none.keep(a.clone());
        assert!(none.kept(a.id).is_none());
    }
}
