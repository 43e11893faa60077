//! Group commit for [`super::SqliteStore`]: this process's writes share transactions, sent to
//! SQLite's thread in few round trips.
//!
//! sqlx runs each SQLite connection on a thread of its own; every batch sent there and
//! answered costs thread wake-ups. So a write is not a sequence of awaited statements but a
//! plan: it *builds* its statements (sealing its audit events after the chain head it is
//! given) and *reads* what they returned, and may be built and read again. A group of queued
//! writes runs in one `BEGIN IMMEDIATE` transaction on a connection of its own: the chain head
//! is read once, writes of the same kind go together in chunks (see [`run_group`]), the new
//! head is written once, and one `COMMIT` (one fsync) makes them all durable before any caller
//! is answered.
//!
//! The first attempt has no savepoints. A write whose statements fail, or whose reading finds
//! its checks failed (a version that moved, a lease lost), makes the transaction roll back:
//! that write is answered with its error, and the others run again in a new transaction, each
//! under a savepoint of its own, so a further failure is undone alone. Either way a failed
//! write is undone alone, as if each write had been its own transaction.
//!
//! Measured on 2 cores (benches/scale.rs, 2,000 offboardings, 32 submitters, alternating
//! runs): a batch per group in one text was slower than a round trip per write (every
//! statement prepared again); chunks of one kind (cached text) under nested savepoints were
//! level with a round trip per write (a page written under n open savepoints is journaled for
//! each); chunks without savepoints: about 12 % more cases/s and 0.3 ms less CPU per case.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use offboard_core::audit::Prepared;
use offboard_core::{AuditEvent, Error, Result};
use sqlx::sqlite::{SqliteArguments, SqliteConnection, SqlitePool, SqliteRow};

use crate::codec::{db, ts};
use crate::sql::sqlite as q;

/// At most this many writes share one transaction.
const GROUP_MAX: usize = 512;

/// Turns of the scheduler a new leader gives other tasks before taking the queue.
const LEAD_TURNS: usize = 2;

/// At most this many writes of one kind are sent to SQLite's thread together.
const CHUNK_MAX: usize = 64;

/// The audit chain's head: the last event's sequence number and hash.
pub(super) type Head = (u64, String);

/// The connection group commits run on.
pub(super) enum WriterConn {
    /// A connection of its own (a database file): no pool bookkeeping per group, and a page
    /// cache that stays warm.
    Own(SqliteConnection),
    /// The pool's only connection (an in-memory database, which reads must share).
    Pooled(SqlitePool),
}

/// Where short reads run (see [`GroupCommit::reader`]).
pub(super) enum PointReads {
    /// Connections of their own (a database file), each lent to one read at a time.
    Own {
        conns: Vec<tokio::sync::Mutex<SqliteConnection>>,
        /// Where the next read that finds every connection busy waits.
        next: AtomicU64,
    },
    /// The pool (an in-memory database: its one connection).
    Pooled(SqlitePool),
}

/// A connection lent for a read (see [`GroupCommit::reader`]).
pub(super) enum ReadConn<'a> {
    Own(tokio::sync::MutexGuard<'a, SqliteConnection>),
    Pooled(sqlx::pool::PoolConnection<sqlx::Sqlite>),
}

impl std::ops::Deref for ReadConn<'_> {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        match self {
            Self::Own(conn) => conn,
            Self::Pooled(conn) => conn,
        }
    }
}

impl std::ops::DerefMut for ReadConn<'_> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        match self {
            Self::Own(conn) => conn,
            Self::Pooled(conn) => conn,
        }
    }
}

/// This process's queued writes and the connection they run on.
///
/// One writer at a time leads: it runs the queued writes as groups until its own is answered,
/// then hands the lead to one waiting writer (see [`GroupCommit::write`]). The others wait for
/// their answer, not for the connection: when a group ends, its writers return at once instead
/// of passing the connection's lock from one to the next (a wake-up each, in turn, between two
/// groups).
pub(super) struct GroupCommit {
    queue: std::sync::Mutex<Vec<Box<dyn Job>>>,
    /// Whether a writer leads (runs groups).
    leading: std::sync::atomic::AtomicBool,
    /// Woken when the lead is given up with writes still queued.
    lead_free: tokio::sync::Notify,
    /// Held by whoever runs a group (or a checkpoint): writes of this process never wait on
    /// SQLite's busy handler for each other.
    pub(super) conn: tokio::sync::Mutex<WriterConn>,
    /// Where short reads run.
    reads: PointReads,
    /// Transactions committed, and the writes they held.
    committed: AtomicU64,
    committed_writes: AtomicU64,
}

impl GroupCommit {
    pub(super) fn new(conn: WriterConn, reads: PointReads) -> Self {
        Self {
            queue: std::sync::Mutex::default(),
            leading: std::sync::atomic::AtomicBool::new(false),
            lead_free: tokio::sync::Notify::new(),
            conn: tokio::sync::Mutex::new(conn),
            reads,
            committed: AtomicU64::new(0),
            committed_writes: AtomicU64::new(0),
        }
    }

    /// A connection for a short read (a run, a person's runs or accounts, a snapshot, a
    /// cursor): one of its own beside the writer's, which reads while a group commits, without
    /// the health-check round trips a pooled connection costs on every acquire and release. In
    /// memory, the pool's (reads must share the one connection). Measured: +12 % cases/s over
    /// reading on the writer's connection between groups (alternating runs, N = 2,000).
    pub(super) async fn reader(&self) -> Result<ReadConn<'_>> {
        Ok(match &self.reads {
            PointReads::Own { conns, next } => {
                // A free connection if there is one, else wait for one in turn.
                if let Some(free) = conns.iter().find_map(|c| c.try_lock().ok()) {
                    ReadConn::Own(free)
                } else {
                    let i = next.fetch_add(1, Relaxed) as usize % conns.len().max(1);
                    match conns.get(i) {
                        Some(conn) => ReadConn::Own(conn.lock().await),
                        None => return Err(Error::internal("no connection for reads")),
                    }
                }
            }
            PointReads::Pooled(pool) => {
                ReadConn::Pooled(pool.acquire().await.map_err(db("sqlite.read"))?)
            }
        })
    }

    /// `(transactions, writes)` committed so far.
    pub(super) fn counts(&self) -> (u64, u64) {
        (
            self.committed.load(Relaxed),
            self.committed_writes.load(Relaxed),
        )
    }

    /// Queues a write and returns its result once its group is durable (or the write failed
    /// and was undone).
    ///
    /// `build` adds the write's statements to a batch, after the chain head it is given (which
    /// it moves past any events it seals); it may be called again when an earlier write of the
    /// group failed, and an error from it fails the write before any statement of it runs.
    /// `read` gets what those statements returned and decides: `Err` undoes the write.
    pub(super) async fn write<S, T>(
        self: &Arc<Self>,
        op: &'static str,
        build: impl FnMut(&mut Batch, &mut Head) -> Result<S> + Send + 'static,
        read: impl FnMut(S, BatchResults) -> Result<T> + Send + 'static,
    ) -> Result<T>
    where
        S: Send + 'static,
        T: Send + 'static,
    {
        let (tell, mut told) = tokio::sync::oneshot::channel();
        let job = Write {
            op,
            build,
            read,
            built: None,
            result: None,
            tell,
        };
        self.queue().push(Box::new(job));
        // Whether this writer was woken to lead: if its write is answered meanwhile, the lead
        // is passed on to another waiting writer instead.
        let mut woken = false;
        loop {
            if let Some(result) = answer(&mut told, op) {
                if woken {
                    self.pass_lead();
                }
                return result;
            }
            if let Some(lead) = self.lead() {
                // Let the writers the last group answered (woken with it) queue their next
                // writes first: they join this group instead of waiting for the next one.
                for _ in 0..LEAD_TURNS {
                    tokio::task::yield_now().await;
                }
                // Run groups until this write is answered (it is in the first one, unless
                // more than a group's worth queued before it); then let another writer lead.
                loop {
                    let jobs: Vec<Box<dyn Job>> = {
                        let mut queue = self.queue();
                        let n = queue.len().min(GROUP_MAX);
                        queue.drain(..n).collect()
                    };
                    if jobs.is_empty() {
                        break;
                    }
                    // If this caller stops waiting (its future dropped) halfway through, the
                    // transaction is rolled back unless its COMMIT was already sent, and the
                    // other callers of the group get a retryable error: never half of a write.
                    // The lead is given up all the same (`lead`'s drop).
                    let mut conn = self.conn.lock().await;
                    self.run(&mut conn, op, jobs).await;
                    drop(conn);
                    // Else still queued behind a full group.
                    if let Some(result) = answer(&mut told, op) {
                        return result;
                    }
                }
                drop(lead);
                continue;
            }
            // Another writer leads: wait for this write's answer, or for the lead to be free.
            let free = self.lead_free.notified();
            tokio::pin!(free);
            free.as_mut().enable();
            if !self.leading.load(std::sync::atomic::Ordering::Acquire) {
                continue;
            }
            tokio::select! {
                result = &mut told => return result.unwrap_or_else(|_| Err(abandoned(op))),
                () = free => woken = true,
            }
        }
    }

    /// Wakes a waiting writer to lead if writes are queued (see [`Lead`]).
    fn pass_lead(&self) {
        if !self.queue().is_empty() {
            self.lead_free.notify_one();
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<Box<dyn Job>>> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The lead, if no other writer has it; given up when the returned guard drops.
    fn lead(&self) -> Option<Lead<'_>> {
        let taken = self
            .leading
            .compare_exchange(
                false,
                true,
                std::sync::atomic::Ordering::AcqRel,
                std::sync::atomic::Ordering::Acquire,
            )
            .is_ok();
        // Built only when taken: dropping a `Lead` gives the lead up.
        taken.then(|| Lead(self))
    }

    /// Runs `jobs` in one transaction and commits it; tells each job's caller the outcome.
    async fn run(&self, conn: &mut WriterConn, op: &'static str, jobs: Vec<Box<dyn Job>>) {
        let mut pooled;
        let conn: &mut SqliteConnection = match conn {
            WriterConn::Own(conn) => conn,
            WriterConn::Pooled(pool) => match pool.acquire().await {
                Ok(c) => {
                    pooled = c;
                    &mut pooled
                }
                Err(e) => return tell_all(jobs, Some(&failure(op, e))),
            },
        };
        let (settled, failure) = match run_group(conn, op, jobs).await {
            Ok(settled) => (settled, None),
            Err((settled, f)) => (settled, Some(f)),
        };
        if failure.is_none() {
            self.committed.fetch_add(1, Relaxed);
            let stood = settled.iter().filter(|j| j.succeeded()).count();
            self.committed_writes.fetch_add(stood as u64, Relaxed);
        }
        tell_all(settled, failure.as_ref());
    }
}

/// The lead of a [`GroupCommit`]: given up on drop (also when the leading writer stops
/// waiting), and handed to a waiting writer if writes are still queued.
struct Lead<'a>(&'a GroupCommit);

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        self.0
            .leading
            .store(false, std::sync::atomic::Ordering::Release);
        // A write queued before the lead was given up has a writer waiting for its answer (it
        // saw the lead taken): wake one to lead. Writes queued after find the lead free.
        self.0.pass_lead();
    }
}

/// A write's answer if it has one (an error if its group was abandoned), without waiting.
fn answer<T>(
    told: &mut tokio::sync::oneshot::Receiver<Result<T>>,
    op: &'static str,
) -> Option<Result<T>> {
    match told.try_recv() {
        Ok(result) => Some(result),
        Err(tokio::sync::oneshot::error::TryRecvError::Closed) => Some(Err(abandoned(op))),
        Err(tokio::sync::oneshot::error::TryRecvError::Empty) => None,
    }
}

/// The error of a write whose group was abandoned before answering it.
fn abandoned(op: &'static str) -> Error {
    Error::storage(
        "the write's group was abandoned before it answered (the caller running it stopped \
         waiting); it may or may not have been stored",
    )
    .with_operation(op)
    .retryable()
}

fn tell_all(jobs: Vec<Box<dyn Job>>, failure: Option<&GroupFailure>) {
    for job in jobs {
        job.tell(failure);
    }
}

/// Why a group did not commit; every write in it that had not already failed gets an error
/// naming this.
pub(super) struct GroupFailure {
    message: String,
    retryable: bool,
}

fn failure(op: &'static str, e: sqlx::Error) -> GroupFailure {
    from_error(&db(op)(e))
}

fn from_error(e: &Error) -> GroupFailure {
    GroupFailure {
        retryable: e.is_retryable(),
        message: e.to_string(),
    }
}

fn group_failed(op: &'static str, f: &GroupFailure) -> Error {
    let e = Error::storage(format!(
        "the transaction this write was part of did not commit: {}",
        f.message
    ))
    .with_operation(op);
    if f.retryable { e.retryable() } else { e }
}

/// Where one write's statements are in a chunk's batch.
struct Mark {
    /// Its first statement; its statements run up to `end` (exclusive).
    first: usize,
    end: usize,
    /// The chain head before it.
    head: Head,
}

/// How a group's transaction runs its writes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Undo {
    /// No savepoints: a write that fails rolls the whole transaction back (the others run
    /// again). Savepoints are not free: SQLite copies each page a write changes into the
    /// savepoint's journal, for every savepoint open, so nested ones make every page write
    /// cost more.
    Optimistic,
    /// Each write under a savepoint of its own, released by the next write's round trip: a
    /// failed write is undone alone. After a write failed optimistically.
    Savepoints,
}

/// How a group's transaction ended.
enum Ended {
    Committed(Vec<Box<dyn Job>>),
    Failed(Vec<Box<dyn Job>>, GroupFailure),
    /// An optimistic attempt met a failed write (settled with its error); the others are to
    /// run again.
    RetryRest {
        failed: Vec<Box<dyn Job>>,
        rest: Vec<Box<dyn Job>>,
    },
}

/// The group's transaction: `Ok` with every write settled, or `Err` when it could not commit
/// (the writes that had failed on their own keep their own errors).
///
/// Writes of the same kind (the same statements, other values) are sent together, up to
/// [`CHUNK_MAX`] at a time and in chunks of 1, 2, 4, … of them, so the text of a chunk repeats
/// from group to group and SQLite's prepared statements are reused from the connection's
/// cache. The first attempt has no savepoints ([`Undo::Optimistic`]); if a write fails in it,
/// the transaction is rolled back, that write is answered with its error, and the others run
/// again in a new transaction, each under a savepoint of its own ([`Undo::Savepoints`]).
async fn run_group(
    conn: &mut SqliteConnection,
    op: &'static str,
    jobs: Vec<Box<dyn Job>>,
) -> std::result::Result<Vec<Box<dyn Job>>, (Vec<Box<dyn Job>>, GroupFailure)> {
    match attempt(conn, op, jobs, Undo::Optimistic).await {
        Ended::Committed(settled) => Ok(settled),
        Ended::Failed(settled, failure) => Err((settled, failure)),
        Ended::RetryRest { failed, rest } => {
            match attempt(conn, op, rest, Undo::Savepoints).await {
                Ended::Committed(mut settled) => {
                    settled.extend(failed);
                    Ok(settled)
                }
                Ended::Failed(mut settled, failure) => {
                    settled.extend(failed);
                    Err((settled, failure))
                }
                // Not returned with savepoints (a failed write is undone alone there); were it,
                // nothing of this group is committed.
                Ended::RetryRest { failed: more, rest } => {
                    let mut settled = failed;
                    settled.extend(more);
                    settled.extend(rest);
                    let f = GroupFailure {
                        message: "a write failed and could not be undone alone".into(),
                        retryable: true,
                    };
                    Err((settled, f))
                }
            }
        }
    }
}

/// One transaction over `jobs` (see [`run_group`]).
async fn attempt(
    conn: &mut SqliteConnection,
    op: &'static str,
    jobs: Vec<Box<dyn Job>>,
    undo: Undo,
) -> Ended {
    let mut tx = match sqlx::Connection::begin_with(conn, "BEGIN IMMEDIATE").await {
        Ok(tx) => tx,
        Err(e) => return Ended::Failed(jobs, failure(op, e)),
    };
    let stored = match read_head(&mut tx).await {
        Ok(head) => head,
        Err(e) => return Ended::Failed(jobs, from_error(&e)),
    };
    let mut head = stored.clone();
    let mut settled: Vec<Box<dyn Job>> = Vec::with_capacity(jobs.len());
    let mut pending = by_kind(jobs, &stored);
    // Whether an earlier write's savepoint is open (released by the next write's batch).
    let mut open = false;
    while let Some((_, kind)) = pending.front() {
        let same = pending.iter().take_while(|(_, k)| k == kind).count();
        let size = match undo {
            Undo::Optimistic if !kind.is_empty() => 1 << same.min(CHUNK_MAX).ilog2(),
            _ => 1,
        };
        let chunk: Vec<(Box<dyn Job>, String)> = pending.drain(..size).collect();
        let mut batch = Batch::default();
        if undo == Undo::Savepoints {
            if open {
                batch.push(q::SAVEPOINT_RELEASE);
            }
            batch.push(q::SAVEPOINT);
        }
        let prefix = batch.statements;
        let built = build_chunk(chunk, &mut batch, &mut head, &mut settled);
        if built.is_empty() {
            continue;
        }
        let (mut done, error) = batch.run(&mut tx, op).await;
        open = true;
        let failed_at = error.as_ref().map(|(at, _)| *at);
        let mut error = error.map(|(_, e)| e);
        if failed_at.is_some_and(|at| at < prefix) {
            // A savepoint statement failed: which savepoint is open is unknown.
            let e = error
                .take()
                .unwrap_or_else(|| Error::storage("a savepoint failed"));
            settled.extend(built.into_iter().map(|(job, _, _)| job));
            settled.extend(pending.into_iter().map(|(job, _)| job));
            return Ended::Failed(settled, from_error(&e));
        }
        // Read each write's results in order; the first that fails is undone.
        let mut rest = built.into_iter();
        let mut failed: Option<(Box<dyn Job>, Mark)> = None;
        for (mut job, _, mark) in rest.by_ref() {
            let inside = failed_at.filter(|at| (mark.first..mark.end).contains(at));
            let ran_to = inside.unwrap_or(mark.end);
            let own: Vec<StatementResult> = done
                .get_mut(mark.first..ran_to.max(mark.first))
                .map(|d| d.iter_mut().map(std::mem::take).collect())
                .unwrap_or_default();
            let stands = job.read(BatchResults {
                done: own,
                error: inside.and_then(|_| error.take()),
            });
            if !stands {
                failed = Some((job, mark));
                break;
            }
            settled.push(job);
        }
        match (failed, undo) {
            (Some((job, _)), Undo::Optimistic) => {
                // Roll everything back (the transaction's drop).
                drop(tx);
                let rest = rest.map(|(job, _, _)| job);
                return again(
                    job,
                    settled,
                    rest.chain(pending.into_iter().map(|(job, _)| job)),
                );
            }
            (Some((job, mark)), Undo::Savepoints) => {
                settled.push(job);
                for (job, kind, _) in rest.rev() {
                    pending.push_front((job, kind));
                }
                if let Err(e) = sqlx::query(q::SAVEPOINT_ROLLBACK).execute(&mut *tx).await {
                    settled.extend(pending.into_iter().map(|(job, _)| job));
                    return Ended::Failed(settled, failure(op, e));
                }
                head = mark.head;
            }
            (None, _) => {
                if let Some(e) = error {
                    // Not inside any write: the group cannot go on.
                    settled.extend(pending.into_iter().map(|(job, _)| job));
                    return Ended::Failed(settled, from_error(&e));
                }
            }
        }
    }
    finish(tx, op, (head, stored), settled).await
}

/// An optimistic attempt's end when write `failed` failed (its transaction rolled back): it
/// keeps its error (so do `settled` writes that failed to build); the ones that stood and
/// those not yet run (`unrun`) run again.
fn again(
    failed: Box<dyn Job>,
    settled: Vec<Box<dyn Job>>,
    unrun: impl Iterator<Item = Box<dyn Job>>,
) -> Ended {
    let mut failed = vec![failed];
    let mut rest = Vec::new();
    for job in settled {
        if job.succeeded() {
            rest.push(job);
        } else {
            failed.push(job);
        }
    }
    rest.extend(unrun);
    Ended::RetryRest { failed, rest }
}

/// Moves the stored chain head to `head` (if it moved from `stored`) and commits.
async fn finish(
    mut tx: sqlx::Transaction<'_, sqlx::Sqlite>,
    op: &'static str,
    (head, stored): (Head, Head),
    settled: Vec<Box<dyn Job>>,
) -> Ended {
    if head != stored {
        let set = sqlx::query(q::AUDIT_HEAD_SET)
            .bind(head.0 as i64)
            .bind(head.1.clone())
            .execute(&mut *tx)
            .await;
        if let Err(e) = set {
            return Ended::Failed(settled, failure(op, e));
        }
    }
    match tx.commit().await {
        Ok(()) => Ended::Committed(settled),
        Err(e) => Ended::Failed(settled, failure(op, e)),
    }
}

/// `jobs` (reset) with each one's kind: the text of its statements (built once on a scratch
/// copy of the chain head `stored`), sorted stably by kind; the order of a group's writes is
/// free (they were concurrent). A write that fails to build has the empty kind.
fn by_kind(
    jobs: Vec<Box<dyn Job>>,
    stored: &Head,
) -> std::collections::VecDeque<(Box<dyn Job>, String)> {
    let mut kinds: Vec<(Box<dyn Job>, String)> = jobs
        .into_iter()
        .map(|mut job| {
            job.reset();
            let mut scratch = Batch::dry();
            let kind = match job.build(&mut scratch, &mut stored.clone()) {
                Ok(()) => scratch.sql,
                Err(_) => String::new(),
            };
            (job, kind)
        })
        .collect();
    kinds.sort_by(|a, b| a.1.cmp(&b.1));
    kinds.into()
}

/// Builds a chunk's writes into `batch` after `head` (moving it past their events): each
/// with where its statements are. A write that fails to build leaves nothing in the batch and
/// is settled with its error.
fn build_chunk(
    chunk: Vec<(Box<dyn Job>, String)>,
    batch: &mut Batch,
    head: &mut Head,
    settled: &mut Vec<Box<dyn Job>>,
) -> Vec<(Box<dyn Job>, String, Mark)> {
    let mut built = Vec::with_capacity(chunk.len());
    for (mut job, kind) in chunk {
        let before = head.clone();
        let mark = batch.mark();
        let first = batch.statements;
        match job.build(batch, head) {
            Ok(()) => {
                let end = batch.statements;
                built.push((
                    job,
                    kind,
                    Mark {
                        first,
                        end,
                        head: before,
                    },
                ));
            }
            Err(e) => {
                // Nothing of it goes into the batch.
                batch.reset(mark);
                *head = before;
                job.fail(e);
                settled.push(job);
            }
        }
    }
    built
}

pub(super) async fn read_head(conn: &mut SqliteConnection) -> Result<Head> {
    let row = sqlx::query(q::AUDIT_HEAD)
        .fetch_one(&mut *conn)
        .await
        .map_err(db("sqlite.audit_head"))?;
    crate::rows::head(&row, "sqlite.audit_head")
}

/// Where sealing put one event: its `seq`, `prev_hash` and `hash`, and the salt it was given.
pub(super) type Seal = (u64, String, String, Option<offboard_core::audit::Salt>);

/// Encodes a write's events for sealing, by its caller (see [`Prepared`]): in the group,
/// sealing them costs a hash each, not an encoding.
pub(super) fn prepare(events: &[AuditEvent]) -> Result<Vec<Prepared>> {
    events.iter().cloned().map(Prepared::new).collect()
}

/// Seals `events` after `head` (moving it to the last) and adds their inserts to `batch`;
/// returns where each went, for [`sealed`].
pub(super) fn seal(
    batch: &mut Batch,
    head: &mut Head,
    events: &mut [Prepared],
) -> Result<Vec<Seal>> {
    let mut seals = Vec::with_capacity(events.len());
    if batch.is_dry() {
        for p in events.iter() {
            batch.push(q::AUDIT_INSERT);
            if p.personal().is_some() {
                batch.push(q::AUDIT_PERSONAL_INSERT);
            }
        }
        return Ok(seals);
    }
    for p in events.iter_mut() {
        head.0 += 1;
        p.seal(head.0, &head.1);
        let e = p.event();
        head.1.clone_from(&e.hash);
        push_insert(batch, e, p.body()?, p.personal());
        seals.push((e.seq, e.prev_hash.clone(), e.hash.clone(), e.salt));
    }
    Ok(seals)
}

/// `events` as their write sealed them.
pub(super) fn sealed(mut events: Vec<AuditEvent>, seals: Vec<Seal>) -> Vec<AuditEvent> {
    for (e, (seq, prev_hash, hash, salt)) in events.iter_mut().zip(seals) {
        e.seq = seq;
        e.prev_hash = prev_hash;
        e.hash = hash;
        e.salt = salt;
    }
    events
}

/// Adds the inserts of already-sealed events to `batch`.
pub(super) fn insert_events(batch: &mut Batch, events: &[AuditEvent]) -> Result<()> {
    for e in events {
        let (body, personal) = crate::codec::event_body(e)?;
        push_insert(batch, e, body, personal.as_ref());
    }
    Ok(())
}

/// Adds the insert of sealed event `e`, stored as `body` (its commitment form), and of its
/// personal values if it has any, to `batch`.
fn push_insert(
    batch: &mut Batch,
    e: &AuditEvent,
    body: String,
    personal: Option<&offboard_core::audit::PersonalValues>,
) {
    batch
        .push(q::AUDIT_INSERT)
        .bind(e.seq as i64)
        .bind(e.run.map(|r| r.to_string()))
        .bind(ts(e.at))
        .bind(e.hash.clone())
        .bind(body);
    if let Some(personal) = personal {
        let (seq, run, person, salt, vals) = crate::codec::personal_row(e, personal);
        batch
            .push(q::AUDIT_PERSONAL_INSERT)
            .bind(seq)
            .bind(run)
            .bind(person)
            .bind(salt)
            .bind(vals);
    }
}

/// What a write's statements returned: one [`StatementResult`] per statement that ran, and the error of
/// the statement that failed, if one did (the statements after it did not run).
pub(super) struct BatchResults {
    pub(super) done: Vec<StatementResult>,
    pub(super) error: Option<Error>,
}

impl BatchResults {
    /// Every statement's result, or the error of the one that failed.
    pub(super) fn ok(self) -> Result<Vec<StatementResult>> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.done),
        }
    }
}

/// What one statement of a batch returned.
#[derive(Default)]
pub(super) struct StatementResult {
    pub(super) rows: Vec<SqliteRow>,
    pub(super) affected: u64,
}

/// A queued write, whatever its result type (see [`GroupCommit::write`]).
trait Job: Send {
    /// Adds its statements after `head`; an error fails it before any of them runs.
    fn build(&mut self, batch: &mut Batch, head: &mut Head) -> Result<()>;
    /// Reads what its statements returned: `true` if it stands, `false` to undo it.
    fn read(&mut self, ran: BatchResults) -> bool;
    /// Fails it with `e` (nothing of it is stored).
    fn fail(&mut self, e: Error);
    /// Forgets what reading it found: its transaction was rolled back, it runs again.
    fn reset(&mut self);
    /// Whether it stands (built and read without error).
    fn succeeded(&self) -> bool;
    /// Tells its caller its result, or `failure` if its group did not commit.
    fn tell(self: Box<Self>, failure: Option<&GroupFailure>);
}

struct Write<S, T, B, R> {
    op: &'static str,
    build: B,
    read: R,
    built: Option<S>,
    result: Option<Result<T>>,
    tell: tokio::sync::oneshot::Sender<Result<T>>,
}

impl<S, T, B, R> Job for Write<S, T, B, R>
where
    S: Send,
    T: Send,
    B: FnMut(&mut Batch, &mut Head) -> Result<S> + Send,
    R: FnMut(S, BatchResults) -> Result<T> + Send,
{
    fn build(&mut self, batch: &mut Batch, head: &mut Head) -> Result<()> {
        self.built = Some((self.build)(batch, head)?);
        Ok(())
    }

    fn read(&mut self, ran: BatchResults) -> bool {
        let failed = ran.error.is_some();
        let result = match self.built.take() {
            // A statement that failed always undoes its write, whatever the reading says.
            Some(built) => match (self.read)(built, ran) {
                Ok(_) if failed => Err(Error::internal(
                    "a write was read as done although one of its statements failed",
                )
                .with_operation(self.op)),
                r => r,
            },
            _ => Err(Error::internal(
                "a write was read twice or before it was built",
            )),
        };
        let stands = result.is_ok();
        self.result = Some(result);
        stands
    }

    fn fail(&mut self, e: Error) {
        self.result = Some(Err(e));
    }

    fn reset(&mut self) {
        self.result = None;
        self.built = None;
    }

    fn succeeded(&self) -> bool {
        matches!(self.result, Some(Ok(_)))
    }

    fn tell(self: Box<Self>, failure: Option<&GroupFailure>) {
        let result = match (self.result, failure) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(t)), None) => Ok(t),
            (_, Some(f)) => Err(group_failed(self.op, f)),
            (None, None) => Err(Error::internal("a write's group ended before it ran")),
        };
        let _ = self.tell.send(result);
    }
}

/// Statements sent to SQLite's thread together: one round trip instead of one per statement.
/// Statements are written as in their own files (`?N` parameters) and bound in `?1, ?2, …`
/// order; the batch turns each `?N` into a plain `?` and passes the values in the order the
/// parameters appear (a parameter used twice gets its value twice), because numbered
/// parameters cannot be shifted past earlier statements' ones.
#[derive(Default)]
pub(super) struct Batch {
    sql: String,
    /// The values of the statements before the running one, in order of appearance.
    args: Vec<Value>,
    /// How many statements it holds.
    statements: usize,
    /// The running statement's parameters in order of appearance (`N` of each `?N`).
    order: Vec<usize>,
    /// The running statement's values, for `?1, ?2, …`.
    values: Vec<Value>,
    /// Why a value could not be bound, if one could not.
    unbindable: Option<String>,
    /// Only the statements' text is wanted (a write's kind): values are dropped and events
    /// are not hashed.
    dry: bool,
}

/// A statement's text as a batch sends it (`?N` turned into `?`, comments dropped, ending in
/// `;` and a newline) and its parameters' numbers in order of appearance.
struct Parsed {
    sql: String,
    order: Vec<usize>,
}

/// Parsed statements by their text's address and length.
type ParsedMap = std::collections::HashMap<(usize, usize), Arc<Parsed>>;

/// Statements parsed so far: every statement is a constant, parsed once.
static PARSED: std::sync::LazyLock<std::sync::RwLock<ParsedMap>> =
    std::sync::LazyLock::new(Default::default);

/// `sql` parsed for a batch (see [`Parsed`]); `Err` names a parameter without a number.
fn parse(sql: &'static str) -> std::result::Result<Arc<Parsed>, String> {
    let key = (sql.as_ptr() as usize, sql.len());
    if let Some(parsed) = PARSED
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&key)
    {
        return Ok(parsed.clone());
    }
    let mut out = String::with_capacity(sql.len());
    let mut order = Vec::new();
    for line in sql.lines() {
        let line = line.split_once("--").map_or(line, |(code, _)| code);
        let mut rest = line;
        while let Some(at) = rest.find('?') {
            out.push_str(&rest[..=at]);
            rest = &rest[at + 1..];
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            match rest[..digits].parse() {
                Ok(n) => order.push(n),
                Err(_) => return Err(format!("a parameter without a number in {sql}")),
            }
            rest = &rest[digits..];
        }
        out.push_str(rest);
        out.push('\n');
    }
    let end = out.trim_end().len();
    out.truncate(end);
    if !out.ends_with(';') {
        out.push(';');
    }
    out.push('\n');
    let parsed = Arc::new(Parsed { sql: out, order });
    PARSED
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(key, parsed.clone());
    Ok(parsed)
}

/// A point in a [`Batch`] to go back to.
#[derive(Clone, Copy)]
struct BatchMark {
    sql: usize,
    args: usize,
    statements: usize,
}

/// A value bound in a [`Batch`].
#[derive(Clone)]
pub(super) enum Value {
    Text(Option<String>),
    Int(i64),
    Bool(bool),
    Blob(Vec<u8>),
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Self::Text(Some(v))
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Self::Text(Some(v.to_owned()))
    }
}

impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Self {
        Self::Text(v)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Self::Blob(v)
    }
}

impl Batch {
    /// A batch that only collects its statements' text (see [`Batch::dry`]).
    fn dry() -> Self {
        Self {
            dry: true,
            ..Self::default()
        }
    }

    /// Whether only the statements' text is wanted (values are dropped, events not hashed).
    pub(super) fn is_dry(&self) -> bool {
        self.dry
    }

    /// Appends a statement; bind its parameters next, `?1` first.
    pub(super) fn push(&mut self, sql: &'static str) -> &mut Self {
        self.flush();
        self.statements += 1;
        match parse(sql) {
            Ok(parsed) => {
                self.sql.push_str(&parsed.sql);
                self.order.extend_from_slice(&parsed.order);
            }
            Err(why) => {
                self.unbindable.get_or_insert(why);
            }
        }
        self
    }

    /// Binds the running statement's next parameter.
    pub(super) fn bind(&mut self, value: impl Into<Value>) -> &mut Self {
        if !self.dry {
            self.values.push(value.into());
        }
        self
    }

    /// Passes the running statement's values in the order its parameters appear: moved, or
    /// copied for a parameter used again later in the statement.
    fn flush(&mut self) {
        let order = std::mem::take(&mut self.order);
        if self.dry {
            return;
        }
        let mut values: Vec<Option<Value>> = std::mem::take(&mut self.values)
            .into_iter()
            .map(Some)
            .collect();
        for (k, n) in order.iter().enumerate() {
            let again = order[k + 1..].contains(n);
            let value = n
                .checked_sub(1)
                .and_then(|i| values.get_mut(i))
                .and_then(|v| if again { v.clone() } else { v.take() });
            match value {
                Some(value) => self.args.push(value),
                None => {
                    self.unbindable
                        .get_or_insert_with(|| format!("parameter ?{n} has no value"));
                }
            }
        }
    }

    fn mark(&mut self) -> BatchMark {
        self.flush();
        BatchMark {
            sql: self.sql.len(),
            args: self.args.len(),
            statements: self.statements,
        }
    }

    /// Drops everything pushed since `mark`.
    fn reset(&mut self, mark: BatchMark) {
        self.order.clear();
        self.values.clear();
        self.sql.truncate(mark.sql);
        self.args.truncate(mark.args);
        self.statements = mark.statements;
    }

    /// Runs the batch (one round trip) and returns what each statement that ran returned,
    /// and the index and error of the statement that failed, if one did.
    async fn run(
        mut self,
        conn: &mut SqliteConnection,
        op: &'static str,
    ) -> (Vec<StatementResult>, Option<(usize, Error)>) {
        self.flush();
        if let Some(why) = self.unbindable {
            let e = Error::storage(format!("a value could not be bound: {why}")).with_operation(op);
            return (Vec::new(), Some((0, e)));
        }
        let mut args = SqliteArguments::default();
        for value in self.args {
            let added = match value {
                Value::Text(v) => sqlx::Arguments::add(&mut args, v),
                Value::Int(v) => sqlx::Arguments::add(&mut args, v),
                Value::Bool(v) => sqlx::Arguments::add(&mut args, v),
                Value::Blob(v) => sqlx::Arguments::add(&mut args, v),
            };
            if let Err(e) = added {
                let e =
                    Error::storage(format!("a value could not be bound: {e}")).with_operation(op);
                return (Vec::new(), Some((0, e)));
            }
        }
        let mut out: Vec<StatementResult> = Vec::with_capacity(self.statements);
        let mut current = StatementResult::default();
        // `sql` is our statements' text only (values are bound). sqlx-sqlite runs a string of
        // several statements one after another on its thread; sqlx calls that behaviour
        // deprecated (launchbadge/sqlx#3108) but 0.9 keeps it: the store's SQLite tests and
        // the crash test fail if an upgrade drops it.
        let query = sqlx::query_with(sqlx::AssertSqlSafe(self.sql), args);
        let mut stream = sqlx::Executor::fetch_many(&mut *conn, query);
        while let Some(item) = futures::StreamExt::next(&mut stream).await {
            match item {
                Ok(sqlx::Either::Right(row)) => current.rows.push(row),
                Ok(sqlx::Either::Left(done)) => {
                    current.affected = done.rows_affected();
                    out.push(std::mem::take(&mut current));
                }
                Err(e) => {
                    let at = out.len();
                    return (out, Some((at, db(op)(e))));
                }
            }
        }
        (out, None)
    }
}
