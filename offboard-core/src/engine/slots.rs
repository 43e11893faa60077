//! The runs this engine's workers are busy with: one slot per run, shared by its tasks in
//! flight.
//!
//! A slot holds the run as this engine last loaded or committed it, behind an async lock.
//! Sibling tasks of one run take the lock to apply their event and commit, one after the
//! other, each starting from the version the previous one committed: no reload per step and
//! no version conflict between siblings. Another engine's commit still makes ours conflict;
//! the slot is then emptied and the run reloaded (see [`super::Inner::apply_with`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::run::{Run, RunId};

/// One run's cached state (`None`: load it from the store).
pub(crate) type RunSlot = tokio::sync::Mutex<Option<Run>>;

/// Slots of the runs with a task in flight, each with the number of tasks using it.
#[derive(Debug, Default)]
pub(crate) struct RunSlots(Mutex<HashMap<RunId, (Arc<RunSlot>, usize)>>);

impl RunSlots {
    /// The slot of `run`, kept while the returned guard lives.
    pub(crate) fn enter(&self, run: RunId) -> SlotGuard<'_> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = map.entry(run).or_default();
        entry.1 += 1;
        SlotGuard {
            slots: self,
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
pub(crate) struct SlotGuard<'a> {
    slots: &'a RunSlots,
    run: RunId,
    slot: Arc<RunSlot>,
}

impl std::ops::Deref for SlotGuard<'_> {
    type Target = RunSlot;

    fn deref(&self) -> &RunSlot {
        &self.slot
    }
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        let mut map = self.slots.0.lock().unwrap_or_else(PoisonError::into_inner);
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
