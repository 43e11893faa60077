//! Where email tasks are kept: [`EmailState`], and the in-memory default.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use offboard_core::{AppId, Result, RunId, TaskId};
use serde::{Deserialize, Serialize};

/// One email delegation, as kept by an [`EmailState`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EmailTask {
    /// The ticket key (`email-<uuid>`).
    pub id: String,
    /// The request's idempotency key.
    pub idempotency_key: String,
    /// The run.
    pub run: RunId,
    /// The task.
    pub task: TaskId,
    /// The app.
    pub app: AppId,
    /// The person leaving (name or email).
    pub person: String,
    /// The person's email.
    pub person_email: String,
    /// Who is asked (the app owner).
    pub owner: String,
    /// When it should be done.
    pub due: DateTime<Utc>,
    /// When the task was opened.
    pub opened_at: DateTime<Utc>,
    /// When the first email went out (`None`: not yet sent).
    pub sent_at: Option<DateTime<Utc>>,
    /// When the owner was last written to (first email or reminder).
    pub last_contact: Option<DateTime<Utc>>,
    /// Reminders sent.
    pub reminders: u32,
    /// When the escalation went out.
    pub escalated_at: Option<DateTime<Utc>>,
    /// When the task was marked done.
    pub done_at: Option<DateTime<Utc>>,
    /// Who marked it done.
    pub done_by: Option<String>,
}

/// The outcome of [`EmailState::mark_done`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MarkDone {
    /// The task was open and is now done.
    Marked(Box<EmailTask>),
    /// The task was already done: nothing changed.
    AlreadyDone,
    /// No task has this id.
    NotFound,
}

/// Storage for email tasks. A host backs it with its database; [`MemoryEmailState`] is the
/// default.
///
/// # Behavior
/// - `insert_if_absent` is atomic on the idempotency key: of two concurrent inserts with one
///   key, one is stored and both callers get it back.
/// - The `record_*` methods change only the fields they name, so a reminder recorded while the
///   owner completes the task never undoes the completion.
/// - `mark_done` is atomic (compare-and-set on "not done"): of two concurrent completions with
///   the same or different tokens, exactly one gets `Marked`.
/// - Updates of an unknown id change nothing and succeed.
#[async_trait]
pub trait EmailState: Send + Sync + fmt::Debug {
    /// The task with this id.
    async fn get(&self, id: &str) -> Result<Option<EmailTask>>;
    /// Stores `task` unless a task with its idempotency key exists; returns the stored one.
    async fn insert_if_absent(&self, task: EmailTask) -> Result<EmailTask>;
    /// The first email went out at `at`: sets `sent_at` (when unset) and `last_contact`.
    async fn record_sent(&self, id: &str, at: DateTime<Utc>) -> Result<()>;
    /// Reminder `n` went out at `at`: sets `reminders` (never lowering it) and `last_contact`.
    async fn record_reminder(&self, id: &str, n: u32, at: DateTime<Utc>) -> Result<()>;
    /// The escalation went out at `at`: sets `escalated_at` when unset.
    async fn record_escalation(&self, id: &str, at: DateTime<Utc>) -> Result<()>;
    /// Marks the task done by `by` at `at`, unless it is done already.
    async fn mark_done(&self, id: &str, at: DateTime<Utc>, by: &str) -> Result<MarkDone>;
}

#[derive(Debug, Default)]
struct Maps {
    by_id: BTreeMap<String, EmailTask>,
    by_key: BTreeMap<String, String>,
}

/// Email tasks in memory (lost on restart: hosts that need durability implement
/// [`EmailState`] over their database).
#[derive(Debug, Default)]
pub struct MemoryEmailState {
    maps: Mutex<Maps>,
}

impl MemoryEmailState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every task, by id.
    pub fn tasks(&self) -> Vec<EmailTask> {
        self.lock().by_id.values().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Maps> {
        self.maps.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, id: &str, change: impl FnOnce(&mut EmailTask)) {
        if let Some(t) = self.lock().by_id.get_mut(id) {
            change(t);
        }
    }
}

#[async_trait]
impl EmailState for MemoryEmailState {
    async fn get(&self, id: &str) -> Result<Option<EmailTask>> {
        Ok(self.lock().by_id.get(id).cloned())
    }

    async fn insert_if_absent(&self, task: EmailTask) -> Result<EmailTask> {
        let mut m = self.lock();
        if let Some(t) = m
            .by_key
            .get(&task.idempotency_key)
            .and_then(|id| m.by_id.get(id))
        {
            return Ok(t.clone());
        }
        m.by_key
            .insert(task.idempotency_key.clone(), task.id.clone());
        m.by_id.insert(task.id.clone(), task.clone());
        Ok(task)
    }

    async fn record_sent(&self, id: &str, at: DateTime<Utc>) -> Result<()> {
        self.update(id, |t| {
            t.sent_at.get_or_insert(at);
            t.last_contact = Some(at);
        });
        Ok(())
    }

    async fn record_reminder(&self, id: &str, n: u32, at: DateTime<Utc>) -> Result<()> {
        self.update(id, |t| {
            t.reminders = t.reminders.max(n);
            t.last_contact = Some(at);
        });
        Ok(())
    }

    async fn record_escalation(&self, id: &str, at: DateTime<Utc>) -> Result<()> {
        self.update(id, |t| {
            t.escalated_at.get_or_insert(at);
        });
        Ok(())
    }

    async fn mark_done(&self, id: &str, at: DateTime<Utc>, by: &str) -> Result<MarkDone> {
        let mut m = self.lock();
        Ok(match m.by_id.get_mut(id) {
            None => MarkDone::NotFound,
            Some(t) if t.done_at.is_some() => MarkDone::AlreadyDone,
            Some(t) => {
                t.done_at = Some(at);
                t.done_by = Some(by.to_string());
                MarkDone::Marked(Box::new(t.clone()))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, key: &str) -> EmailTask {
        let now = Utc::now();
        EmailTask {
            id: id.into(),
            idempotency_key: key.into(),
            run: RunId::new_v4(),
            task: TaskId::new_v4(),
            app: AppId::new("crm"),
            person: "Ada".into(),
            person_email: "ada@example.com".into(),
            owner: "owner@example.com".into(),
            due: now,
            opened_at: now,
            sent_at: None,
            last_contact: None,
            reminders: 0,
            escalated_at: None,
            done_at: None,
            done_by: None,
        }
    }

    #[tokio::test]
    async fn one_task_per_key_and_completion_is_never_undone() {
        let s = MemoryEmailState::new();
        let a = s.insert_if_absent(task("email-a", "k")).await.unwrap();
        let b = s.insert_if_absent(task("email-b", "k")).await.unwrap();
        assert_eq!(b.id, a.id, "the first insert wins");
        assert_eq!(s.tasks().len(), 1);

        let now = Utc::now();
        let stale = s.get("email-a").await.unwrap().unwrap();
        assert!(matches!(
            s.mark_done("email-a", now, "owner@example.com")
                .await
                .unwrap(),
            MarkDone::Marked(_)
        ));
        // A reminder decided on the stale read is recorded without undoing the completion.
        s.record_reminder(&stale.id, 1, now).await.unwrap();
        let t = s.get("email-a").await.unwrap().unwrap();
        assert!(t.done_at.is_some());
        assert_eq!(t.reminders, 1);
        assert_eq!(
            s.mark_done("email-a", now, "x").await.unwrap(),
            MarkDone::AlreadyDone
        );
        assert_eq!(
            s.mark_done("email-zz", now, "x").await.unwrap(),
            MarkDone::NotFound
        );
    }
}
