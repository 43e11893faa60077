//! Where email tasks are kept: [`EmailState`]; [`StoreEmailState`] in the engine's store (for
//! production), and [`MemoryEmailState`] (tests and demos).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use offboard_core::store::{Record, RecordSwap};
use offboard_core::{AppId, Error, ErrorKind, Result, RunId, Store, TaskId};
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
    /// The person's login in the app, when the request names it.
    #[serde(default)]
    pub login: Option<String>,
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
    /// When the owner answered: marked it done, or said they can't do it ([`declined`]).
    ///
    /// [`declined`]: EmailTask::declined
    pub done_at: Option<DateTime<Utc>>,
    /// Who answered.
    pub done_by: Option<String>,
    /// Why the owner can't do it, when that was the answer (the access was not removed).
    #[serde(default)]
    pub declined: Option<String>,
    /// The ids of the link tokens issued for it (first email and reminders), oldest first:
    /// a token whose id is not here opens and completes nothing. Ids, not tokens: a token
    /// needs the signing key.
    #[serde(default)]
    pub tokens: Vec<String>,
    /// The id of the link token whose form answered the task (a token is good once).
    #[serde(default)]
    pub done_token: Option<String>,
}

/// The outcome of [`EmailState::mark_done`] and [`EmailState::mark_declined`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MarkDone {
    /// The task was open and is now answered.
    Marked(Box<EmailTask>),
    /// The task was already answered (done or declined): nothing changed.
    AlreadyDone,
    /// No task has this id.
    NotFound,
}

/// Storage for email tasks: [`StoreEmailState`] keeps them in the engine's store (durable: use
/// it in production); [`MemoryEmailState`] (tests and demos) loses them on restart.
///
/// # Behavior
/// - `insert_if_absent` is atomic on the idempotency key: of two concurrent inserts with one
///   key, one is stored and both callers get it back.
/// - The `record_*` methods change only the fields they name, so a reminder recorded while the
///   owner completes the task never undoes the completion.
/// - `record_token` adds a link token's id once; ids are never removed.
/// - `mark_done` and `mark_declined` are atomic (compare-and-set on "not answered"): of two
///   concurrent answers with the same or different tokens, exactly one gets `Marked`.
/// - Updates of an unknown id change nothing and succeed.
#[async_trait]
pub trait EmailState: Send + Sync + fmt::Debug {
    /// The task with this id.
    async fn get(&self, id: &str) -> Result<Option<EmailTask>>;
    /// Stores `task` unless a task with its idempotency key exists; returns the stored one.
    async fn insert_if_absent(&self, task: EmailTask) -> Result<EmailTask>;
    /// The first email went out at `at`: sets `sent_at` (when unset) and `last_contact`.
    async fn record_sent(&self, id: &str, at: DateTime<Utc>) -> Result<()>;
    /// A link token with id `token` is about to go out: adds it to `tokens` (once).
    async fn record_token(&self, id: &str, token: &str) -> Result<()>;
    /// Reminder `n` went out at `at`: sets `reminders` (never lowering it) and `last_contact`.
    async fn record_reminder(&self, id: &str, n: u32, at: DateTime<Utc>) -> Result<()>;
    /// The escalation went out at `at`: sets `escalated_at` when unset.
    async fn record_escalation(&self, id: &str, at: DateTime<Utc>) -> Result<()>;
    /// Marks the task done by `by` at `at` through link token `token` (sets `done_at`,
    /// `done_by`, `done_token`), unless it is done already.
    async fn mark_done(
        &self,
        id: &str,
        at: DateTime<Utc>,
        by: &str,
        token: &str,
    ) -> Result<MarkDone>;
    /// Records that `by` can't do the task, for `reason`, at `at` through link token `token`
    /// (sets `done_at`, `done_by`, `done_token` and `declined`), unless it is answered already.
    async fn mark_declined(
        &self,
        id: &str,
        at: DateTime<Utc>,
        by: &str,
        token: &str,
        reason: &str,
    ) -> Result<MarkDone>;
}

#[derive(Debug, Default)]
struct Maps {
    by_id: BTreeMap<String, EmailTask>,
    by_key: BTreeMap<String, String>,
}

/// Email tasks in memory, for tests and demos: lost on restart, when an `open` of a task
/// already emailed emails its owner again. Production uses [`StoreEmailState`].
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

    async fn record_token(&self, id: &str, token: &str) -> Result<()> {
        self.update(id, |t| add_token(t, token));
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

    async fn mark_done(
        &self,
        id: &str,
        at: DateTime<Utc>,
        by: &str,
        token: &str,
    ) -> Result<MarkDone> {
        Ok(self.answer(id, at, by, token, None))
    }

    async fn mark_declined(
        &self,
        id: &str,
        at: DateTime<Utc>,
        by: &str,
        token: &str,
        reason: &str,
    ) -> Result<MarkDone> {
        Ok(self.answer(id, at, by, token, Some(reason)))
    }
}

impl MemoryEmailState {
    fn answer(
        &self,
        id: &str,
        at: DateTime<Utc>,
        by: &str,
        token: &str,
        declined: Option<&str>,
    ) -> MarkDone {
        let mut m = self.lock();
        match m.by_id.get_mut(id) {
            None => MarkDone::NotFound,
            Some(t) if t.done_at.is_some() => MarkDone::AlreadyDone,
            Some(t) => {
                set_done(t, at, by, token, declined);
                MarkDone::Marked(Box::new(t.clone()))
            }
        }
    }
}

/// Adds link token id `token` to `t` unless it is there.
fn add_token(t: &mut EmailTask, token: &str) {
    if !t.tokens.iter().any(|x| x == token) {
        t.tokens.push(token.to_string());
    }
}

/// Marks `t` answered: done, or declined for a reason (the caller checked it was open).
fn set_done(t: &mut EmailTask, at: DateTime<Utc>, by: &str, token: &str, declined: Option<&str>) {
    t.done_at = Some(at);
    t.done_by = Some(by.to_string());
    t.done_token = Some(token.to_string());
    t.declined = declined.map(str::to_owned);
}

/// The namespace of the email delegate's records in the engine's store.
pub const EMAIL_NAMESPACE: &str = "email";

/// How many times an update re-reads a task that moved under it before giving up.
const SWAP_TRIES: usize = 32;

/// Email tasks in the engine's [`Store`] (its delegates' records, namespace
/// [`EMAIL_NAMESPACE`]): they survive a restart, so an `open` repeated after one finds its task
/// and sends nothing, and a link mailed before it still completes the task.
///
/// # Behavior
/// As [`EmailState`] says, on two kinds of record:
/// - `key:<idempotency key>` holds `{"id": <task id>}`: inserted if absent first, so of
///   concurrent inserts with one key the first's id wins and every caller uses it.
/// - `task:<id>` holds the task (JSON), inserted if absent under the winning id (with that id
///   whatever id the caller's task had). A crash between the two inserts leaves the key
///   naming a task not stored yet; the next insert with the key stores it.
/// - `record_*` read the task, change their fields and compare-and-swap it at the version read,
///   re-reading and re-applying on a conflict; `mark_done` and `mark_declined` compare-and-swap
///   "not answered" to "answered" the same way. A change that leaves the task as it is writes nothing.
///
/// # Errors
/// The store's errors; `Storage` for a record that does not decode; `Conflict` (retryable)
/// when a task moved under an update 32 times in a row.
#[derive(Debug, Clone)]
pub struct StoreEmailState {
    store: Arc<dyn Store>,
}

impl StoreEmailState {
    /// Email tasks in `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    fn task_key(id: &str) -> String {
        format!("task:{id}")
    }

    fn decode(record: &Record) -> Result<EmailTask> {
        serde_json::from_value(record.value.clone()).map_err(|e| {
            Error::storage("a stored email task does not decode")
                .with_context("record", &record.key)
                .with_source(e)
        })
    }

    fn encode(task: &EmailTask) -> Result<serde_json::Value> {
        serde_json::to_value(task)
            .map_err(|e| Error::internal("an email task does not encode").with_source(e))
    }

    /// Reads task `id` and, while `decide` asks for a change, swaps it in at the version read
    /// (again on a conflict). `decide` gets the task as stored (`None`: no such task) and
    /// returns the task to store, if any, and the answer.
    async fn update<T>(
        &self,
        id: &str,
        mut decide: impl FnMut(Option<&EmailTask>) -> (Option<EmailTask>, T) + Send,
    ) -> Result<T> {
        let key = Self::task_key(id);
        let mut stored = self.store.get_record(EMAIL_NAMESPACE, &key).await?;
        for _ in 0..SWAP_TRIES {
            let current = stored.as_ref().map(Self::decode).transpose()?;
            let (change, answer) = decide(current.as_ref());
            let (Some(change), Some(record)) = (change, stored.as_ref()) else {
                return Ok(answer);
            };
            if current.as_ref() == Some(&change) {
                return Ok(answer);
            }
            let value = Self::encode(&change)?;
            match self
                .store
                .swap_record(EMAIL_NAMESPACE, &key, record.version, &value)
                .await?
            {
                RecordSwap::Swapped(_) => return Ok(answer),
                RecordSwap::Conflict(now) => stored = now,
            }
        }
        Err(Error::new(
            ErrorKind::Conflict,
            "an email task kept changing under its update",
        )
        .retryable()
        .with_context("task", id))
    }

    /// Marks task `id` answered (done, or declined for a reason) unless it is.
    async fn answer(
        &self,
        id: &str,
        at: DateTime<Utc>,
        by: &str,
        token: &str,
        declined: Option<&str>,
    ) -> Result<MarkDone> {
        self.update(id, |t| match t {
            None => (None, MarkDone::NotFound),
            Some(t) if t.done_at.is_some() => (None, MarkDone::AlreadyDone),
            Some(t) => {
                let mut done = t.clone();
                set_done(&mut done, at, by, token, declined);
                (Some(done.clone()), MarkDone::Marked(Box::new(done)))
            }
        })
        .await
    }

    /// Applies `change` to task `id` if it exists.
    async fn change(&self, id: &str, change: impl Fn(&mut EmailTask) + Send + Sync) -> Result<()> {
        self.update(id, |t| {
            let changed = t.cloned().map(|mut t| {
                change(&mut t);
                t
            });
            (changed, ())
        })
        .await
    }
}

#[async_trait]
impl EmailState for StoreEmailState {
    async fn get(&self, id: &str) -> Result<Option<EmailTask>> {
        self.store
            .get_record(EMAIL_NAMESPACE, &Self::task_key(id))
            .await?
            .as_ref()
            .map(Self::decode)
            .transpose()
    }

    async fn insert_if_absent(&self, mut task: EmailTask) -> Result<EmailTask> {
        let (index, _) = self
            .store
            .insert_record(
                EMAIL_NAMESPACE,
                &format!("key:{}", task.idempotency_key),
                &serde_json::json!({ "id": task.id }),
            )
            .await?;
        let id = index.value["id"].as_str().ok_or_else(|| {
            Error::storage("a stored email idempotency key names no task")
                .with_context("record", &index.key)
        })?;
        id.clone_into(&mut task.id);
        let (stored, _) = self
            .store
            .insert_record(EMAIL_NAMESPACE, &Self::task_key(id), &Self::encode(&task)?)
            .await?;
        Self::decode(&stored)
    }

    async fn record_sent(&self, id: &str, at: DateTime<Utc>) -> Result<()> {
        self.change(id, |t| {
            t.sent_at.get_or_insert(at);
            t.last_contact = Some(at);
        })
        .await
    }

    async fn record_token(&self, id: &str, token: &str) -> Result<()> {
        self.change(id, |t| add_token(t, token)).await
    }

    async fn record_reminder(&self, id: &str, n: u32, at: DateTime<Utc>) -> Result<()> {
        self.change(id, |t| {
            t.reminders = t.reminders.max(n);
            t.last_contact = Some(at);
        })
        .await
    }

    async fn record_escalation(&self, id: &str, at: DateTime<Utc>) -> Result<()> {
        self.change(id, |t| {
            t.escalated_at.get_or_insert(at);
        })
        .await
    }

    async fn mark_done(
        &self,
        id: &str,
        at: DateTime<Utc>,
        by: &str,
        token: &str,
    ) -> Result<MarkDone> {
        self.answer(id, at, by, token, None).await
    }

    async fn mark_declined(
        &self,
        id: &str,
        at: DateTime<Utc>,
        by: &str,
        token: &str,
        reason: &str,
    ) -> Result<MarkDone> {
        self.answer(id, at, by, token, Some(reason)).await
    }
}

#[cfg(test)]
mod tests {
    use offboard_core::MemoryStore;
    use offboard_store::{PostgresStore, SqliteStore};
    use offboard_testkit::suite::postgres::ScratchDatabase;

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
            login: None,
            owner: "owner@example.com".into(),
            due: now,
            opened_at: now,
            sent_at: None,
            last_contact: None,
            reminders: 0,
            escalated_at: None,
            done_at: None,
            done_by: None,
            declined: None,
            tokens: Vec::new(),
            done_token: None,
        }
    }

    /// The behaviour [`EmailState`] documents, checked on `s`.
    async fn behaves(s: &dyn EmailState) {
        let key = format!("run-1:task-{}", uuid::Uuid::new_v4());
        let (id_a, id_b) = (
            format!("email-a-{}", uuid::Uuid::new_v4().simple()),
            format!("email-b-{}", uuid::Uuid::new_v4().simple()),
        );
        let a = s.insert_if_absent(task(&id_a, &key)).await.unwrap();
        assert_eq!(a, task_like(&a, &id_a, &key));
        let b = s.insert_if_absent(task(&id_b, &key)).await.unwrap();
        assert_eq!(b, a, "the first insert wins");
        assert_eq!(s.get(&id_b).await.unwrap(), None, "one task per key");
        assert_eq!(s.get(&id_a).await.unwrap(), Some(a.clone()));

        let now = Utc::now();
        s.record_sent(&id_a, now).await.unwrap();
        let later = now + chrono::Duration::hours(1);
        s.record_sent(&id_a, later).await.unwrap();
        let t = s.get(&id_a).await.unwrap().unwrap();
        assert_eq!((t.sent_at, t.last_contact), (Some(now), Some(later)));

        // Token ids: added once each, in order.
        s.record_token(&id_a, "t1").await.unwrap();
        s.record_token(&id_a, "t2").await.unwrap();
        s.record_token(&id_a, "t1").await.unwrap();
        assert_eq!(s.get(&id_a).await.unwrap().unwrap().tokens, ["t1", "t2"]);

        let stale = s.get(&id_a).await.unwrap().unwrap();
        assert!(matches!(
            s.mark_done(&id_a, now, "owner@example.com", "t2").await.unwrap(),
            MarkDone::Marked(t) if t.done_at == Some(now)
                && t.done_by.as_deref() == Some("owner@example.com")
                && t.done_token.as_deref() == Some("t2")
        ));
        // A reminder and an escalation decided on the stale read are recorded without undoing
        // the completion; a lower reminder count never lowers it.
        s.record_reminder(&stale.id, 2, later).await.unwrap();
        s.record_reminder(&stale.id, 1, now).await.unwrap();
        s.record_escalation(&stale.id, later).await.unwrap();
        s.record_escalation(&stale.id, now).await.unwrap();
        let t = s.get(&id_a).await.unwrap().unwrap();
        assert_eq!(t.done_at, Some(now));
        assert_eq!(t.done_by.as_deref(), Some("owner@example.com"));
        assert_eq!((t.reminders, t.last_contact), (2, Some(now)));
        assert_eq!(t.escalated_at, Some(later));
        assert_eq!(
            s.mark_done(&id_a, later, "x", "t1").await.unwrap(),
            MarkDone::AlreadyDone
        );
        assert_eq!(
            s.get(&id_a).await.unwrap().unwrap().done_token.as_deref(),
            Some("t2")
        );
        assert_eq!(
            s.get(&id_a).await.unwrap().unwrap().done_by.as_deref(),
            Some("owner@example.com")
        );
        assert_eq!(
            s.mark_done("email-zz", now, "x", "t1").await.unwrap(),
            MarkDone::NotFound
        );
        // Updates of an unknown id change nothing and succeed.
        s.record_sent("email-zz", now).await.unwrap();
        s.record_reminder("email-zz", 1, now).await.unwrap();
        s.record_escalation("email-zz", now).await.unwrap();
        s.record_token("email-zz", "t1").await.unwrap();
        assert_eq!(s.get("email-zz").await.unwrap(), None);

        // Declining answers the task with the reason; then nothing answers it again.
        let key = format!("run-3:task-{}", uuid::Uuid::new_v4());
        let id_c = format!("email-c-{}", uuid::Uuid::new_v4().simple());
        s.insert_if_absent(task(&id_c, &key)).await.unwrap();
        assert!(matches!(
            s.mark_declined(&id_c, now, "owner@example.com", "t1", "no admin rights").await.unwrap(),
            MarkDone::Marked(t) if t.declined.as_deref() == Some("no admin rights")
                && t.done_at == Some(now)
        ));
        assert_eq!(
            s.mark_done(&id_c, later, "x", "t1").await.unwrap(),
            MarkDone::AlreadyDone
        );
        assert_eq!(
            s.mark_declined(&id_c, later, "x", "t1", "other")
                .await
                .unwrap(),
            MarkDone::AlreadyDone
        );
        let t = s.get(&id_c).await.unwrap().unwrap();
        assert_eq!(
            (t.declined.as_deref(), t.done_at),
            (Some("no admin rights"), Some(now))
        );
        assert_eq!(
            s.mark_declined("email-zz", now, "x", "t1", "r")
                .await
                .unwrap(),
            MarkDone::NotFound
        );

        // Concurrent inserts with one key: one task, every caller gets it.
        let key = format!("run-2:task-{}", uuid::Uuid::new_v4());
        let inserts = futures::future::join_all((0..8).map(|i| {
            s.insert_if_absent(task(
                &format!("email-{i}-{}", uuid::Uuid::new_v4().simple()),
                &key,
            ))
        }))
        .await;
        let first = inserts[0].as_ref().unwrap().clone();
        for t in &inserts {
            assert_eq!(t.as_ref().unwrap(), &first);
        }
        // Concurrent completions (and reminders): exactly one is Marked, the reminders stay.
        let done = futures::future::join_all((0..8).map(|i| {
            let id = first.id.clone();
            async move {
                s.record_reminder(&id, i, now).await.unwrap();
                s.mark_done(&id, now, &format!("owner-{i}"), "t")
                    .await
                    .unwrap()
            }
        }))
        .await;
        let marked: Vec<_> = done
            .iter()
            .filter(|d| matches!(d, MarkDone::Marked(_)))
            .collect();
        assert_eq!(marked.len(), 1, "{done:?}");
        assert!(
            done.iter()
                .all(|d| matches!(d, MarkDone::Marked(_) | MarkDone::AlreadyDone))
        );
        let t = s.get(&first.id).await.unwrap().unwrap();
        assert_eq!(t.reminders, 7);
        let MarkDone::Marked(winner) = marked[0] else {
            unreachable!()
        };
        assert_eq!(t.done_by, winner.done_by);
    }

    /// `t` as inserted: the task of `task(id, key)` with the stored times.
    fn task_like(t: &EmailTask, id: &str, key: &str) -> EmailTask {
        let mut expected = task(id, key);
        expected.run = t.run;
        expected.task = t.task;
        expected.due = t.due;
        expected.opened_at = t.opened_at;
        expected
    }

    #[tokio::test]
    async fn memory_state_behaves() {
        behaves(&MemoryEmailState::new()).await;
    }

    #[tokio::test]
    async fn store_state_behaves_on_a_memory_store() {
        behaves(&StoreEmailState::new(Arc::new(MemoryStore::new()))).await;
    }

    #[tokio::test]
    async fn store_state_behaves_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("offboard.db"))
            .await
            .unwrap();
        behaves(&StoreEmailState::new(Arc::new(store))).await;
    }

    #[tokio::test]
    async fn store_state_behaves_on_postgres() {
        let db = ScratchDatabase::create(&ScratchDatabase::test_server(), "offboard_email")
            .await
            .unwrap_or_else(|e| panic!("cannot create a database on OFFBOARD_TEST_PG_URL: {e}"));
        let store = PostgresStore::connect(db.url()).await.unwrap();
        behaves(&StoreEmailState::new(Arc::new(store))).await;
        db.drop_database().await;
    }

    #[tokio::test]
    async fn store_state_survives_a_new_state_on_the_same_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("offboard.db");
        let first = {
            let s = StoreEmailState::new(Arc::new(SqliteStore::open(&path).await.unwrap()));
            let t = s.insert_if_absent(task("email-a", "k")).await.unwrap();
            s.record_sent(&t.id, Utc::now()).await.unwrap();
            s.get(&t.id).await.unwrap().unwrap()
        };
        let s = StoreEmailState::new(Arc::new(SqliteStore::open(&path).await.unwrap()));
        assert_eq!(
            s.insert_if_absent(task("email-b", "k")).await.unwrap(),
            first
        );
        assert_eq!(s.get("email-a").await.unwrap(), Some(first));
    }

    #[tokio::test]
    async fn a_key_whose_task_was_not_stored_yet_gets_it_stored_under_its_id() {
        // As after a crash between the two inserts.
        let store = Arc::new(MemoryStore::new());
        store
            .insert_record(
                EMAIL_NAMESPACE,
                "key:k",
                &serde_json::json!({"id": "email-a"}),
            )
            .await
            .unwrap();
        let s = StoreEmailState::new(store);
        assert_eq!(s.get("email-a").await.unwrap(), None);
        let t = s.insert_if_absent(task("email-b", "k")).await.unwrap();
        assert_eq!(t.id, "email-a");
        assert_eq!(s.get("email-a").await.unwrap(), Some(t));
        assert_eq!(s.get("email-b").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_record_that_does_not_decode_is_a_storage_error() {
        let store = Arc::new(MemoryStore::new());
        store
            .insert_record(
                EMAIL_NAMESPACE,
                "task:email-a",
                &serde_json::json!({"id": 1}),
            )
            .await
            .unwrap();
        let s = StoreEmailState::new(store);
        assert_eq!(
            s.get("email-a").await.unwrap_err().kind(),
            ErrorKind::Storage
        );
        assert_eq!(
            s.mark_done("email-a", Utc::now(), "x", "t")
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::Storage
        );
    }
}
