//! Tests of the pure state machine, in the manner of quinn-proto's.
//!
//! A [`Harness`] builds a [`Run`] from a compact description ([`Spec`]), keeps a simulated clock
//! and plays the engine: it asks [`claim_command`] which tasks are due, applies
//! [`Event::TaskStarted`], answers with a scripted connector or delegate result ([`Reply`],
//! [`Poll`]), advances the clock to the next `due_at` when nothing is due, and records every
//! applied `(time, event)` with the run before and after it. Every refused event is checked to
//! leave the run byte-identical.
//!
//! Plain `#[test]`s cover each transition of the module docs; the `proptest!` block at the end
//! covers the invariants of the run/task state machine (ARCHITECTURE.md) over random plans.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use proptest::prelude::*;
use uuid::Uuid;

use super::{
    ClaimCommand, Command, Event, MachineError, apply, claim_command, derive_state, lease_until,
    release_due, renew_after_wait, renew_every, replay, snapshot_before_start, take_along,
};
use crate::action::{Action, ActionName};
use crate::error::{ErrorKind, ErrorRecord, RetryClass};
use crate::model::{AccountRef, AccountStatus, AppId, Person};
use crate::run::{
    DelegateVia, Initiator, Outcome, RestoreLease, RetryPolicy, Run, RunId, RunState, SkipReason,
    Task, TaskId, TaskKind, TaskState, Ticket,
};

// ---------------------------------------------------------------------------------------------
// Time and ids
// ---------------------------------------------------------------------------------------------

/// The simulated clock's origin: the run's effective time.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 9, 0, 0).unwrap()
}

/// `t0 + secs`.
fn at(secs: i64) -> DateTime<Utc> {
    t0() + TimeDelta::seconds(secs)
}

fn ms(n: i64) -> TimeDelta {
    TimeDelta::milliseconds(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

const DAY: i64 = 86_400;

/// The id of the task at index `i` of a [`plan`].
fn tid(i: usize) -> TaskId {
    TaskId(Uuid::from_u128(0x7a5c_0000 + i as u128))
}

// ---------------------------------------------------------------------------------------------
// Compact plans
// ---------------------------------------------------------------------------------------------

/// One task of a plan: an action (`"okta.suspend"`) or a delegation for an app.
#[derive(Debug, Clone)]
struct Spec {
    /// Action name, or the app of a delegation.
    name: String,
    /// `Some` for a delegation.
    via: Option<DelegateVia>,
    /// Indices of the tasks it depends on.
    deps: Vec<usize>,
    reversible: bool,
    critical: bool,
    not_found_is_done: bool,
    /// Stage time: `not_before = t0 + at_secs`.
    at_secs: i64,
    /// The account found at planning; `None`: no account in the app.
    account: Option<AccountStatus>,
    /// The state the planner left it in (`Pending`, or skipped as ignored/protected).
    initial: TaskState,
}

impl Spec {
    fn action(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            via: None,
            deps: Vec::new(),
            reversible: false,
            critical: false,
            not_found_is_done: true,
            at_secs: 0,
            account: Some(AccountStatus::Active),
            initial: TaskState::Pending,
        }
    }

    fn delegation(app: &str, via: DelegateVia) -> Self {
        Self {
            via: Some(via),
            ..Self::action(app)
        }
    }

    fn after(mut self, deps: &[usize]) -> Self {
        self.deps = deps.to_vec();
        self
    }

    fn reversible(mut self) -> Self {
        self.reversible = true;
        self
    }

    fn critical(mut self) -> Self {
        self.critical = true;
        self
    }

    fn needs_account(mut self) -> Self {
        self.not_found_is_done = false;
        self
    }

    fn at(mut self, secs: i64) -> Self {
        self.at_secs = secs;
        self
    }

    fn no_account(mut self) -> Self {
        self.account = None;
        self
    }

    fn account(mut self, status: AccountStatus) -> Self {
        self.account = Some(status);
        self
    }

    fn skipped(mut self, reason: SkipReason) -> Self {
        self.initial = TaskState::Skipped { reason };
        self
    }
}

/// `run` as submitted without a confirmation: its critical tasks are held.
fn unconfirmed(mut run: Run) -> Run {
    run.confirmed_by = None;
    run
}

/// The confirmation of `run`'s held tasks.
fn confirmed(run: &Run) -> Event {
    Event::Confirmed {
        by: "sec-lead@example.com".to_owned(),
        role: Some("security".to_owned()),
        digest: run.confirmation_digest(),
    }
}

/// A confirmation quoting a digest that is not `run`'s.
fn confirmed_wrongly(run: &Run) -> (Event, MachineError) {
    let quoted = "0".repeat(64);
    (
        Event::Confirmed {
            by: "sec-lead@example.com".to_owned(),
            role: None,
            digest: quoted.clone(),
        },
        MachineError::DigestMismatch {
            quoted,
            expected: run.confirmation_digest(),
        },
    )
}

/// The planned run (state `Planned`) for `specs`; task `i` has id [`tid`]`(i)`.
fn plan(specs: &[Spec]) -> Run {
    let run_id = RunId(Uuid::from_u128(0x0ff_b0a2d));
    let tasks = specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let (app, kind) = match &s.via {
                None => {
                    let name = ActionName::parse(&s.name).expect("valid action name");
                    (
                        name.app(),
                        TaskKind::Action {
                            action: Action::new(name),
                        },
                    )
                }
                Some(via) => (
                    AppId::new(&s.name),
                    TaskKind::Delegation { via: via.clone() },
                ),
            };
            let account = s.account.map(|status| {
                AccountRef::new(app.clone(), format!("ext-{i}"), "ada@example.com", status)
            });
            // A task the planner settled (ignored, protected) is terminal, so it carries the
            // time it was settled, as every task the machine settles does.
            let settled = s.initial.is_terminal();
            Task {
                id: tid(i),
                app,
                kind,
                account,
                depends_on: s.deps.iter().map(|d| tid(*d)).collect(),
                stage: if s.at_secs == 0 {
                    "last_day".to_owned()
                } else {
                    format!("t+{}s", s.at_secs)
                },
                not_before: at(s.at_secs),
                critical: s.critical,
                reversible: s.reversible,
                not_found_is_done: s.not_found_is_done,
                idempotency_key: format!("{run_id}:{}", tid(i)),
                state: s.initial.clone(),
                attempts: 0,
                due_at: None,
                started_at: None,
                finished_at: settled.then(t0),
            }
        })
        .collect();
    Run {
        id: run_id,
        person: Person::new("emp-42", "ada@example.com").with_name("Ada Lovelace"),
        initiator: Initiator::Admin {
            actor: "admin@example.com".to_owned(),
        },
        reason: "resigned".to_owned(),
        created_at: t0(),
        effective_at: t0(),
        dry_run: false,
        plan_digest: "sha256:0000".to_owned(),
        policy: "policy-0".to_owned(),
        // Submitted with a confirmation, so critical tasks run as planned; `unconfirmed` makes
        // a run whose critical tasks are held.
        confirmed_by: Some("sec-lead@example.com".to_owned()),
        tasks,
        state: RunState::Planned,
        cancelled: false,
        rollback_requested: false,
        restore_lease: None,
        retry: RetryPolicy::default(),
        delegation_poll: secs(60),
        version: 0,
        finished_at: None,
    }
}

// ---------------------------------------------------------------------------------------------
// Events and errors
// ---------------------------------------------------------------------------------------------

fn started(i: usize) -> Event {
    Event::TaskStarted { task: tid(i) }
}

fn succeeded(i: usize, outcome: Outcome) -> Event {
    Event::TaskSucceeded {
        task: tid(i),
        outcome,
        detail: None,
    }
}

fn errored(i: usize, error: ErrorRecord, backoff_ms: u64) -> Event {
    Event::TaskErrored {
        task: tid(i),
        error,
        backoff_ms,
    }
}

fn abandoned(i: usize) -> Event {
    Event::TaskAbandoned { task: tid(i) }
}

fn ticket(key: &str, assignee: Option<&str>) -> Ticket {
    Ticket {
        key: key.to_owned(),
        url: format!("https://jira.example.com/browse/{key}"),
        assignee: assignee.map(str::to_owned),
    }
}

fn delegated(i: usize, ticket: Ticket, next_poll: DateTime<Utc>) -> Event {
    Event::TaskDelegated {
        task: tid(i),
        ticket,
        next_poll,
    }
}

fn updated(i: usize, ticket: Ticket, next_poll: DateTime<Utc>) -> Event {
    Event::DelegationUpdated {
        task: tid(i),
        ticket,
        next_poll,
    }
}

fn done(i: usize) -> Event {
    Event::DelegationDone {
        task: tid(i),
        detail: Some("closed by it-desk".to_owned()),
        next_poll: None,
    }
}

fn reopened(i: usize, ticket: Ticket, next_poll: DateTime<Utc>) -> Event {
    Event::DelegationReopened {
        task: tid(i),
        ticket,
        next_poll,
    }
}

fn cancel() -> Event {
    Event::Cancel {
        by: "admin@example.com".to_owned(),
    }
}

fn rollback() -> Event {
    Event::RollbackRequested {
        by: "admin@example.com".to_owned(),
        lease: None,
    }
}

fn rolled_back(i: usize) -> Event {
    Event::TaskRolledBack {
        task: tid(i),
        lease: None,
    }
}

/// A retryable error; with a vendor hint it is a rate limit, without one a 503.
fn retryable(after: Option<Duration>) -> ErrorRecord {
    ErrorRecord {
        kind: if after.is_some() {
            ErrorKind::RateLimited
        } else {
            ErrorKind::Unavailable
        },
        retry: RetryClass::Retryable { after },
        operation: "vendor.call".to_owned(),
        message: "try again later".to_owned(),
        context: Vec::new(),
    }
}

fn permanent() -> ErrorRecord {
    ErrorRecord {
        kind: ErrorKind::PermissionDenied,
        retry: RetryClass::Permanent,
        operation: "vendor.call".to_owned(),
        message: "403 forbidden".to_owned(),
        context: Vec::new(),
    }
}

fn not_found() -> ErrorRecord {
    ErrorRecord {
        kind: ErrorKind::NotFound,
        retry: RetryClass::Permanent,
        operation: "vendor.call".to_owned(),
        message: "user not found".to_owned(),
        context: Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------------------------

/// A scripted connector (or delegate, on open) answer to one attempt.
#[derive(Debug, Clone, PartialEq)]
enum Reply {
    /// `TaskSucceeded`.
    Ok(Outcome),
    /// `TaskErrored`, retryable, with the vendor's hint and the engine's backoff.
    Retry {
        after_ms: Option<u64>,
        backoff_ms: u64,
    },
    /// `TaskErrored`, permanent.
    Permanent,
    /// `TaskErrored`, not found.
    NotFound,
    /// A delegation's ticket was opened (`TaskDelegated`); for an action, `Ok(Done)`.
    Open,
    /// The worker is lost: no answer, the task stays `Running` until re-claimed or abandoned.
    Lost,
}

/// A scripted answer to one poll of an open delegation.
#[derive(Debug, Clone, PartialEq)]
enum Poll {
    /// Nothing changed: `DelegationUpdated` with the same ticket, to schedule the next poll.
    Unchanged,
    /// Someone was assigned.
    Assign(String),
    /// The ticket reached its done status.
    Done,
}

/// One applied event.
#[derive(Debug, Clone)]
struct Applied {
    at: DateTime<Utc>,
    event: Event,
    before: Run,
    after: Run,
    commands: Vec<Command>,
}

/// The engine, simulated.
#[derive(Debug)]
struct Harness {
    planned: Run,
    run: Run,
    now: DateTime<Utc>,
    log: Vec<Applied>,
    refused: Vec<(Event, MachineError)>,
    /// Per task: `(latency ms, reply)` for successive attempts; then `Ok(Done)` / `Open`.
    replies: BTreeMap<TaskId, VecDeque<(i64, Reply)>>,
    /// Per delegation: successive poll answers; then `Done`.
    polls: BTreeMap<TaskId, VecDeque<Poll>>,
    /// Per delegation: reopen it this many ms after it completed (once).
    reopens: BTreeMap<TaskId, i64>,
    /// Apply `Cancel` as soon as the log holds this many events.
    cancel_after: Option<usize>,
    cancel_tried: bool,
    /// When cancelled while a task runs, lose its worker instead of delivering its result.
    lose_worker_on_cancel: bool,
    /// Confirm the held tasks once the log holds this many events (or when nothing else can
    /// move); a confirmation quoting a wrong digest is tried and refused first.
    confirm_after: Option<usize>,
    confirm_tried: bool,
    /// `(kind, task index)` of events tried on a copy of the run at every step.
    probes: Vec<(u8, usize)>,
    probe_count: usize,
    tickets: u32,
}

impl Harness {
    fn new(run: Run) -> Self {
        Self {
            planned: run.clone(),
            run,
            now: t0(),
            log: Vec::new(),
            refused: Vec::new(),
            replies: BTreeMap::new(),
            polls: BTreeMap::new(),
            reopens: BTreeMap::new(),
            cancel_after: None,
            cancel_tried: false,
            lose_worker_on_cancel: false,
            confirm_after: None,
            confirm_tried: false,
            probes: Vec::new(),
            probe_count: 0,
            tickets: 0,
        }
    }

    fn task(&self, i: usize) -> &Task {
        self.run.task(tid(i)).expect("task in plan")
    }

    fn state(&self, i: usize) -> &TaskState {
        &self.task(i).state
    }

    fn advance(&mut self, d: TimeDelta) {
        self.now += d;
    }

    fn advance_to(&mut self, t: DateTime<Utc>) {
        assert!(t >= self.now, "the clock never goes back");
        self.now = t;
    }

    /// Scripts the replies of task `i`'s attempts (no latency).
    fn reply(&mut self, i: usize, replies: impl IntoIterator<Item = Reply>) {
        self.reply_after(i, replies.into_iter().map(|r| (0, r)));
    }

    /// Scripts the replies of task `i`'s attempts with their latencies in ms.
    fn reply_after(&mut self, i: usize, replies: impl IntoIterator<Item = (i64, Reply)>) {
        self.replies.entry(tid(i)).or_default().extend(replies);
    }

    fn poll_script(&mut self, i: usize, polls: impl IntoIterator<Item = Poll>) {
        self.polls.entry(tid(i)).or_default().extend(polls);
    }

    /// Applies `event` at the current time. On success the event is logged; on refusal the run
    /// is checked to be unchanged, byte for byte.
    fn try_apply(&mut self, event: Event) -> Result<Vec<Command>, MachineError> {
        let before = self.run.clone();
        match apply(&mut self.run, self.now, &event) {
            Ok(commands) => {
                self.log.push(Applied {
                    at: self.now,
                    event,
                    before,
                    after: self.run.clone(),
                    commands: commands.clone(),
                });
                if let Some(k) = self.cancel_after
                    && !self.cancel_tried
                    && self.log.len() >= k
                {
                    self.cancel_tried = true;
                    let _ = self.try_apply(cancel());
                }
                Ok(commands)
            }
            Err(e) => {
                assert_eq!(self.run, before, "refused {event:?} changed the run");
                assert_eq!(
                    serde_json::to_vec(&self.run).unwrap(),
                    serde_json::to_vec(&before).unwrap(),
                    "refused {event:?} changed the run's bytes"
                );
                self.refused.push((event, e.clone()));
                Err(e)
            }
        }
    }

    /// Applies `event`, which must be accepted.
    #[track_caller]
    fn ok(&mut self, event: Event) -> Vec<Command> {
        match self.try_apply(event.clone()) {
            Ok(commands) => commands,
            Err(e) => panic!("{event:?} at {} refused: {e}", self.now),
        }
    }

    /// Applies `event`, which must be refused with `expected` (and change nothing).
    #[track_caller]
    fn refuse(&mut self, event: Event, expected: MachineError) {
        assert_eq!(self.try_apply(event), Err(expected));
    }

    fn claim(&self, i: usize) -> ClaimCommand {
        claim_command(&self.run, tid(i), self.now)
    }

    /// The log as `(ms since t0, event name)`.
    fn trace(&self) -> Vec<(i64, &'static str)> {
        self.log
            .iter()
            .map(|a| ((a.at - t0()).num_milliseconds(), a.event.name()))
            .collect()
    }

    /// The times at which task `i` was started.
    fn starts(&self, i: usize) -> Vec<DateTime<Utc>> {
        self.log
            .iter()
            .filter(|a| a.event == started(i))
            .map(|a| a.at)
            .collect()
    }

    fn finished_commands(&self) -> Vec<RunState> {
        self.log
            .iter()
            .flat_map(|a| &a.commands)
            .filter_map(|c| match c {
                Command::Finished(s) => Some(*s),
                _ => None,
            })
            .collect()
    }

    /// When each still-pending reopen is due.
    fn reopen_times(&self) -> Vec<(DateTime<Utc>, TaskId)> {
        self.reopens
            .iter()
            .filter_map(|(id, delay)| {
                let t = self.run.task(*id)?;
                let is_delegation = matches!(t.kind, TaskKind::Delegation { .. });
                if !is_delegation || !t.state.is_completed() {
                    return None;
                }
                Some((t.finished_at? + ms(*delay), *id))
            })
            .collect()
    }

    /// Whether the run holds tasks for a confirmation and can still take one.
    fn holds(&self) -> bool {
        !self.run.cancelled
            && !self.run.state.is_terminal()
            && self.run.tasks.iter().any(|t| t.state == TaskState::Held)
    }

    /// Confirms the held tasks: a wrong digest first (refused), then the right one.
    fn confirm(&mut self) {
        self.confirm_tried = true;
        let (wrong, error) = confirmed_wrongly(&self.run);
        self.refuse(wrong, error);
        let event = confirmed(&self.run);
        self.ok(event);
    }

    /// One step of the engine. Returns `false` when there is nothing left to do.
    fn step(&mut self) -> bool {
        self.probe();
        if self.confirm_after.is_some_and(|k| self.log.len() >= k)
            && !self.confirm_tried
            && self.holds()
        {
            self.confirm();
            return true;
        }
        if let Some((when, id)) = self.reopen_times().into_iter().min()
            && when <= self.now
        {
            self.reopens.remove(&id);
            self.tickets += 1;
            let key = format!("OFF-{}", self.tickets);
            let next_poll = self.now + poll_interval(&self.run);
            let _ = self.try_apply(Event::DelegationReopened {
                task: id,
                ticket: ticket(&key, None),
                next_poll,
            });
            return true;
        }
        if !self.run.state.is_terminal() {
            let ids: Vec<TaskId> = self.run.tasks.iter().map(|t| t.id).collect();
            for id in ids {
                match claim_command(&self.run, id, self.now) {
                    ClaimCommand::Start => {
                        self.start(id);
                        return true;
                    }
                    ClaimCommand::Poll => {
                        self.poll(id);
                        return true;
                    }
                    ClaimCommand::Abandon => {
                        self.ok(Event::TaskAbandoned { task: id });
                        return true;
                    }
                    ClaimCommand::Nothing => {}
                }
            }
        }
        // Nothing is due now: sleep until something is.
        let next = self
            .reopen_times()
            .into_iter()
            .map(|(t, _)| t)
            .chain(self.run.next_due())
            .min();
        match next {
            Some(t) if t > self.now => {
                self.now = t;
                true
            }
            // Only a confirmation or a cancel can move the run now.
            _ if self.holds() && self.confirm_after.is_some() && !self.confirm_tried => {
                self.confirm();
                true
            }
            _ if self.holds() && self.cancel_after.is_some() && !self.cancel_tried => {
                self.cancel_tried = true;
                self.ok(cancel());
                true
            }
            _ => false,
        }
    }

    /// Steps until nothing is left to do; `false` when `limit` steps were not enough or the
    /// run did not end.
    fn run_to_end(&mut self, limit: usize) -> bool {
        for _ in 0..limit {
            if !self.step() {
                return self.run.state.is_terminal();
            }
        }
        false
    }

    /// A worker claimed `id` and was told to start it.
    fn start(&mut self, id: TaskId) {
        let commands = self.ok(Event::TaskStarted { task: id });
        let delegation = matches!(self.run.task(id).unwrap().kind, TaskKind::Delegation { .. });
        let expected = if delegation {
            Command::OpenDelegation(id)
        } else {
            Command::Execute(id)
        };
        assert_eq!(commands, vec![expected]);
        if self.run.cancelled && self.lose_worker_on_cancel {
            return;
        }
        let default = if delegation {
            Reply::Open
        } else {
            Reply::Ok(Outcome::Done)
        };
        let (latency, reply) = self
            .replies
            .get_mut(&id)
            .and_then(VecDeque::pop_front)
            .unwrap_or((0, default));
        self.advance(ms(latency));
        let event = match reply {
            Reply::Ok(outcome) => Event::TaskSucceeded {
                task: id,
                outcome,
                detail: None,
            },
            Reply::Retry {
                after_ms,
                backoff_ms,
            } => Event::TaskErrored {
                task: id,
                error: retryable(after_ms.map(Duration::from_millis)),
                backoff_ms,
            },
            Reply::Permanent => Event::TaskErrored {
                task: id,
                error: permanent(),
                backoff_ms: 0,
            },
            Reply::NotFound => Event::TaskErrored {
                task: id,
                error: not_found(),
                backoff_ms: 0,
            },
            Reply::Open if delegation => {
                self.tickets += 1;
                Event::TaskDelegated {
                    task: id,
                    ticket: ticket(&format!("OFF-{}", self.tickets), None),
                    next_poll: self.now + poll_interval(&self.run),
                }
            }
            Reply::Open => Event::TaskSucceeded {
                task: id,
                outcome: Outcome::Done,
                detail: None,
            },
            Reply::Lost => return,
        };
        self.ok(event);
    }

    /// A worker claimed the open delegation `id` and polled it.
    fn poll(&mut self, id: TaskId) {
        let TaskState::Delegated { ticket } = &self.run.task(id).unwrap().state else {
            panic!("Poll for a task that is not delegated");
        };
        let mut ticket = ticket.clone();
        let answer = self
            .polls
            .get_mut(&id)
            .and_then(VecDeque::pop_front)
            .unwrap_or(Poll::Done);
        let next_poll = self.now + poll_interval(&self.run);
        let event = match answer {
            Poll::Unchanged => Event::DelegationUpdated {
                task: id,
                ticket,
                next_poll,
            },
            Poll::Assign(who) => {
                ticket.assignee = Some(who);
                Event::DelegationUpdated {
                    task: id,
                    ticket,
                    next_poll,
                }
            }
            Poll::Done => Event::DelegationDone {
                task: id,
                detail: Some("closed".to_owned()),
                next_poll: None,
            },
        };
        self.ok(event);
    }

    /// Tries a few arbitrary events on a copy of the run: a refused one must leave it unchanged.
    fn probe(&mut self) {
        if self.probes.is_empty() {
            return;
        }
        for _ in 0..3 {
            let (kind, i) = self.probes[self.probe_count % self.probes.len()];
            self.probe_count += 1;
            let event = probe_event(kind, tid(i), self.now);
            let mut copy = self.run.clone();
            if apply(&mut copy, self.now, &event).is_err() {
                // Field-wise equality (every map here is ordered, so equal runs serialise alike;
                // property (e) compares bytes too).
                assert_eq!(copy, self.run, "refused probe {event:?} changed the run");
            }
        }
    }

    /// Requests a rollback of the ended run and restores every task it names, in its order.
    fn roll_back(&mut self) -> Vec<TaskId> {
        let commands = self.ok(rollback());
        let restores: Vec<TaskId> = commands
            .iter()
            .filter_map(|c| match c {
                Command::Restore(t) => Some(*t),
                _ => None,
            })
            .collect();
        for task in &restores {
            self.ok(Event::TaskRolledBack {
                task: *task,
                lease: None,
            });
        }
        restores
    }
}

fn poll_interval(run: &Run) -> TimeDelta {
    TimeDelta::from_std(run.delegation_poll).unwrap()
}

/// An arbitrary event of kind `kind` about `task`.
fn probe_event(kind: u8, task: TaskId, now: DateTime<Utc>) -> Event {
    let t = ticket("PROBE-1", Some("someone"));
    match kind % 14 {
        0 => Event::Submitted,
        1 => Event::TaskStarted { task },
        2 => Event::TaskSucceeded {
            task,
            outcome: Outcome::Done,
            detail: None,
        },
        3 => Event::TaskErrored {
            task,
            error: retryable(Some(secs(5))),
            backoff_ms: 1_000,
        },
        4 => Event::TaskErrored {
            task,
            error: not_found(),
            backoff_ms: 0,
        },
        5 => Event::TaskAbandoned { task },
        6 => Event::TaskDelegated {
            task,
            ticket: t,
            next_poll: now,
        },
        7 => Event::DelegationUpdated {
            task,
            ticket: t,
            next_poll: now,
        },
        8 => Event::DelegationDone {
            task,
            detail: None,
            next_poll: None,
        },
        9 => Event::DelegationReopened {
            task,
            ticket: t,
            next_poll: now,
        },
        10 => cancel(),
        11 => rollback(),
        12 => Event::DelegationDeclined {
            task,
            reason: "resolution \"Won't Do\"".to_owned(),
        },
        _ => Event::TaskRolledBack { task, lease: None },
    }
}

fn retrying_not_before(state: &TaskState) -> DateTime<Utc> {
    match state {
        TaskState::Retrying { not_before, .. } => *not_before,
        other => panic!("expected retrying, got {other:?}"),
    }
}

fn failed_error(state: &TaskState) -> &ErrorRecord {
    match state {
        TaskState::Failed { error } => error,
        other => panic!("expected failed, got {other:?}"),
    }
}

fn completed(outcome: Outcome) -> TaskState {
    TaskState::Completed {
        outcome,
        detail: None,
    }
}

// ---------------------------------------------------------------------------------------------
// Success and retries
// ---------------------------------------------------------------------------------------------

#[test]
fn task_succeeds() {
    let mut h = Harness::new(plan(&[Spec::action("okta.suspend")]));
    assert_eq!(h.ok(Event::Submitted), vec![]);
    assert_eq!(h.run.state, RunState::Running);
    assert_eq!(h.task(0).due_at, Some(t0()));
    assert_eq!(h.claim(0), ClaimCommand::Start);

    assert_eq!(h.ok(started(0)), vec![Command::Execute(tid(0))]);
    assert_eq!(
        *h.state(0),
        TaskState::Running {
            attempt: 1,
            since: t0()
        }
    );
    assert_eq!(h.task(0).attempts, 1);
    assert_eq!(h.task(0).started_at, Some(t0()));

    h.advance(ms(1_500));
    assert_eq!(
        h.ok(succeeded(0, Outcome::AlreadyDone)),
        vec![Command::Finished(RunState::Completed)]
    );
    assert_eq!(*h.state(0), completed(Outcome::AlreadyDone));
    assert_eq!(h.task(0).due_at, None);
    assert_eq!(h.task(0).finished_at, Some(t0() + ms(1_500)));
    assert_eq!(h.run.state, RunState::Completed);
    assert_eq!(h.run.finished_at, Some(t0() + ms(1_500)));
    assert_eq!(h.claim(0), ClaimCommand::Nothing);
}

#[test]
fn driver_runs_a_plan_in_dependency_order() {
    let mut h = Harness::new(plan(&[
        Spec::action("ad.disable"),
        Spec::action("entra.disable_sign_in").after(&[0]),
        Spec::action("okta.clear_sessions").after(&[0, 1]),
    ]));
    h.reply_after(0, [(200, Reply::Ok(Outcome::Done))]);
    h.reply_after(1, [(300, Reply::Ok(Outcome::AlreadyDone))]);
    h.ok(Event::Submitted);
    assert!(h.run_to_end(50));
    assert_eq!(
        h.trace(),
        vec![
            (0, "submitted"),
            (0, "task_started"),
            (200, "task_succeeded"),
            (200, "task_started"),
            (500, "task_succeeded"),
            (500, "task_started"),
            (500, "task_succeeded"),
        ]
    );
    assert_eq!(h.starts(2), vec![t0() + ms(500)]);
    assert_eq!(h.run.state, RunState::Completed);
    assert_eq!(h.finished_commands(), vec![RunState::Completed]);
}

#[test]
fn retry_then_success() {
    let mut h = Harness::new(plan(&[Spec::action("okta.suspend")]));
    h.reply(
        0,
        [
            Reply::Retry {
                after_ms: None,
                backoff_ms: 2_000,
            },
            Reply::Ok(Outcome::Done),
        ],
    );
    h.ok(Event::Submitted);
    assert!(h.run_to_end(50));
    assert_eq!(
        h.trace(),
        vec![
            (0, "submitted"),
            (0, "task_started"),
            (0, "task_errored"),
            (2_000, "task_started"),
            (2_000, "task_succeeded"),
        ]
    );
    let after_error = &h.log[2].after;
    let task = after_error.task(tid(0)).unwrap();
    assert_eq!(
        task.state,
        TaskState::Retrying {
            attempt: 1,
            not_before: at(2),
            last_error: retryable(None),
        }
    );
    assert_eq!(task.due_at, Some(at(2)));
    assert_eq!(after_error.state, RunState::Running);
    assert!(h.log[2].commands.is_empty());

    assert_eq!(h.task(0).attempts, 2);
    assert_eq!(h.task(0).started_at, Some(t0()), "first attempt's time");
    assert_eq!(*h.state(0), completed(Outcome::Done));
    assert_eq!(h.run.state, RunState::Completed);
}

#[test]
fn retry_waits_for_the_larger_of_backoff_and_vendor_hint() {
    let mut h = Harness::new(plan(&[
        Spec::action("okta.suspend"),
        Spec::action("google.suspend"),
    ]));
    h.ok(Event::Submitted);
    // The vendor's hint is longer than the backoff.
    h.ok(started(0));
    h.ok(errored(0, retryable(Some(secs(30))), 1_000));
    // The backoff is longer than the vendor's hint.
    h.ok(started(1));
    h.ok(errored(1, retryable(Some(secs(1))), 5_000));
    assert_eq!(retrying_not_before(h.state(0)), at(30));
    assert_eq!(h.task(0).due_at, Some(at(30)));
    assert_eq!(retrying_not_before(h.state(1)), at(5));
    assert_eq!(h.task(1).due_at, Some(at(5)));
    assert_eq!(h.run.next_due(), Some(at(5)));

    h.advance_to(at(5) - ms(1));
    assert_eq!(h.claim(1), ClaimCommand::Nothing);
    h.refuse(started(1), MachineError::NotDue(tid(1)));
    h.advance_to(at(5));
    assert_eq!(h.claim(1), ClaimCommand::Start);
    assert_eq!(h.ok(started(1)), vec![Command::Execute(tid(1))]);
    assert_eq!(
        *h.state(1),
        TaskState::Running {
            attempt: 2,
            since: at(5)
        }
    );

    h.advance_to(at(30) - ms(1));
    assert_eq!(h.claim(0), ClaimCommand::Nothing);
    h.refuse(started(0), MachineError::NotDue(tid(0)));
    h.advance_to(at(30));
    assert_eq!(h.claim(0), ClaimCommand::Start);
    h.ok(started(0));
    assert_eq!(h.task(0).attempts, 2);
}

#[test]
fn retries_exhausted_by_attempts() {
    let mut run = plan(&[
        Spec::action("okta.suspend"),
        Spec::action("okta.clear_sessions"),
    ]);
    run.retry = RetryPolicy {
        max_attempts: 3,
        max_elapsed: secs(3_600),
    };
    let mut h = Harness::new(run);
    let retry = Reply::Retry {
        after_ms: None,
        backoff_ms: 1_000,
    };
    h.reply(0, [retry.clone(), retry.clone(), retry.clone(), retry]);
    h.ok(Event::Submitted);
    assert!(h.run_to_end(50));

    assert_eq!(h.starts(0), vec![at(0), at(1), at(2)]);
    assert_eq!(h.task(0).attempts, 3);
    let error = failed_error(h.state(0));
    assert_eq!(error.retry, RetryClass::Exhausted);
    assert_eq!(error.kind, ErrorKind::Unavailable, "the kind is kept");
    assert_eq!(error.message, "try again later");
    assert_eq!(error.context, vec![("attempts".to_owned(), "3".to_owned())]);
    assert_eq!(h.task(0).finished_at, Some(at(2)));
    assert_eq!(h.run.state, RunState::CompletedWithFailures);
    assert_eq!(h.finished_commands(), vec![RunState::CompletedWithFailures]);
}

#[test]
fn retries_exhausted_by_max_elapsed() {
    let policy = RetryPolicy {
        max_attempts: 10,
        max_elapsed: secs(60),
    };
    let mut run = plan(&[Spec::action("okta.suspend")]);
    run.retry = policy;
    let mut h = Harness::new(run);
    let retry = |backoff_ms| Reply::Retry {
        after_ms: None,
        backoff_ms,
    };
    // Next attempts at +30s and +60s (exactly the budget: still allowed), then +60.001s: spent.
    h.reply(0, [retry(30_000), retry(30_000), retry(1)]);
    h.ok(Event::Submitted);
    assert!(h.run_to_end(50));
    assert_eq!(h.starts(0), vec![at(0), at(30), at(60)]);
    let error = failed_error(h.state(0));
    assert_eq!(error.retry, RetryClass::Exhausted);
    assert_eq!(error.context, vec![("attempts".to_owned(), "3".to_owned())]);
    assert_eq!(h.run.state, RunState::CompletedWithFailures);

    // The vendor's hint counts against the budget too.
    let mut run = plan(&[Spec::action("okta.suspend")]);
    run.retry = policy;
    let mut h = Harness::new(run);
    h.ok(Event::Submitted);
    h.ok(started(0));
    h.ok(errored(0, retryable(Some(secs(61))), 0));
    let error = failed_error(h.state(0));
    assert_eq!(error.retry, RetryClass::Exhausted);
    assert_eq!(error.kind, ErrorKind::RateLimited);
    assert_eq!(h.task(0).attempts, 1);
}

#[test]
fn permanent_error_fails_the_task() {
    let mut h = Harness::new(plan(&[
        Spec::action("okta.suspend"),
        Spec::action("google.suspend"),
    ]));
    h.reply(0, [Reply::Permanent]);
    h.ok(Event::Submitted);
    assert!(h.run_to_end(50));
    assert_eq!(
        *h.state(0),
        TaskState::Failed { error: permanent() },
        "recorded as given"
    );
    assert_eq!(h.task(0).attempts, 1);
    assert_eq!(*h.state(1), completed(Outcome::Done));
    assert_eq!(h.run.state, RunState::CompletedWithFailures);
}

#[test]
fn not_found_error_completes_a_removal_and_fails_an_action_that_needs_the_account() {
    let mut h = Harness::new(plan(&[
        Spec::action("okta.delete"),
        Spec::action("google.transfer_drive").needs_account(),
    ]));
    h.reply(0, [Reply::NotFound]);
    h.reply(1, [Reply::NotFound]);
    h.ok(Event::Submitted);
    assert!(h.run_to_end(50));
    assert_eq!(
        *h.state(0),
        TaskState::Completed {
            outcome: Outcome::NotFound,
            detail: Some("account not found: user not found".to_owned()),
        }
    );
    assert_eq!(*h.state(1), TaskState::Failed { error: not_found() });
    assert_eq!(h.run.state, RunState::CompletedWithFailures);

    // Not-found wins over a retryable class for a removal: nothing to wait for.
    let mut h = Harness::new(plan(&[Spec::action("okta.delete")]));
    h.ok(Event::Submitted);
    h.ok(started(0));
    let mut error = not_found();
    error.retry = RetryClass::Retryable { after: None };
    h.ok(errored(0, error, 1_000));
    assert!(matches!(
        h.state(0),
        TaskState::Completed {
            outcome: Outcome::NotFound,
            ..
        }
    ));
}

// ---------------------------------------------------------------------------------------------
// Submission: accounts, dependencies, dry run, stages
// ---------------------------------------------------------------------------------------------

#[test]
fn tasks_without_an_account_settle_at_submission() {
    let mut h = Harness::new(plan(&[
        Spec::action("okta.delete").no_account(),
        Spec::action("google.transfer_drive")
            .no_account()
            .needs_account(),
        Spec::delegation("salesforce", DelegateVia::Jira).account(AccountStatus::Deprovisioned),
        Spec::delegation("figma", DelegateVia::Email).no_account(),
        Spec::delegation("notion", DelegateVia::Jira).account(AccountStatus::Active),
        Spec::action("google.delete").after(&[1]),
        Spec::delegation("github", DelegateVia::Jira)
            .account(AccountStatus::Deleted)
            .needs_account(),
    ]));
    h.advance(ms(10));
    assert_eq!(h.ok(Event::Submitted), vec![]);

    assert_eq!(
        *h.state(0),
        TaskState::Completed {
            outcome: Outcome::NotFound,
            detail: Some("no account in this app".to_owned()),
        }
    );
    assert_eq!(h.task(0).finished_at, Some(t0() + ms(10)));
    assert_eq!(h.task(0).attempts, 0);

    let error = failed_error(h.state(1));
    assert_eq!(error.kind, ErrorKind::NotFound);
    assert_eq!(error.retry, RetryClass::Permanent);
    assert_eq!(error.operation, "google.transfer_drive");

    assert!(matches!(
        h.state(2),
        TaskState::Completed {
            outcome: Outcome::NotFound,
            detail: Some(_),
        }
    ));
    // A non-integrated app (no account known) is delegated anyway; an active account too.
    assert_eq!(*h.state(3), TaskState::Pending);
    assert_eq!(h.task(3).due_at, Some(t0()));
    assert_eq!(*h.state(4), TaskState::Pending);
    // Its dependency failed at submission.
    assert_eq!(
        *h.state(5),
        TaskState::Skipped {
            reason: SkipReason::DependencyFailed(tid(1))
        }
    );
    // A delegation that needs an account the app no longer has fails.
    assert_eq!(failed_error(h.state(6)).kind, ErrorKind::NotFound);
    for i in [0, 1, 2, 5, 6] {
        assert_eq!(h.task(i).due_at, None);
        assert_eq!(h.task(i).finished_at, Some(t0() + ms(10)));
        assert_eq!(h.claim(i), ClaimCommand::Nothing);
    }
    assert_eq!(h.run.state, RunState::Running);

    // A plan that settles entirely at submission ends there.
    let mut h = Harness::new(plan(&[Spec::action("okta.delete").no_account()]));
    assert_eq!(
        h.ok(Event::Submitted),
        vec![Command::Finished(RunState::Completed)]
    );
    assert_eq!(h.run.finished_at, Some(t0()));
}

#[test]
fn dependency_failure_cascades() {
    let mut h = Harness::new(plan(&[
        Spec::action("google.transfer_drive").needs_account(),
        Spec::action("google.delete").after(&[0]),
        Spec::action("google.remove_license").after(&[1]),
        Spec::action("okta.suspend"),
        Spec::action("okta.delete").after(&[3, 0]),
        Spec::action("slack.deactivate").after(&[3]),
    ]));
    h.reply(0, [Reply::Permanent]);
    h.reply(3, [Reply::Ok(Outcome::NotFound)]);
    h.ok(Event::Submitted);
    assert_eq!(h.task(1).due_at, None, "waits for its dependency");
    h.refuse(started(1), MachineError::DependenciesPending(tid(1)));
    assert_eq!(h.claim(1), ClaimCommand::Nothing);

    assert!(h.run_to_end(50));
    let skipped = |d| TaskState::Skipped {
        reason: SkipReason::DependencyFailed(tid(d)),
    };
    assert_eq!(*h.state(1), skipped(0));
    assert_eq!(*h.state(2), skipped(1));
    assert_eq!(*h.state(4), skipped(0));
    // A not-found completion is a completion: dependents run.
    assert_eq!(*h.state(3), completed(Outcome::NotFound));
    assert_eq!(*h.state(5), completed(Outcome::Done));
    for i in [1, 2, 4] {
        assert!(h.starts(i).is_empty());
        assert_eq!(h.task(i).finished_at, Some(t0()));
    }
    // The cascade happened in the same event as the failure.
    let failure = h
        .log
        .iter()
        .find(|a| matches!(a.event, Event::TaskErrored { .. }))
        .unwrap();
    assert_eq!(failure.after.task(tid(2)).unwrap().state, skipped(1));
    assert_eq!(h.run.state, RunState::CompletedWithFailures);
}

#[test]
fn dry_run_skips_everything() {
    let mut run = plan(&[
        Spec::action("okta.suspend"),
        Spec::action("okta.delete").after(&[0]).critical(),
        Spec::action("google.delete").no_account(),
        Spec::delegation("salesforce", DelegateVia::Jira),
        Spec::action("ad.disable").skipped(SkipReason::Protected),
    ]);
    run.dry_run = true;
    let mut h = Harness::new(run);
    assert_eq!(
        h.ok(Event::Submitted),
        vec![Command::Finished(RunState::Completed)]
    );
    for i in 0..4 {
        assert_eq!(
            *h.state(i),
            TaskState::Skipped {
                reason: SkipReason::DryRun
            }
        );
        assert_eq!(h.task(i).due_at, None);
        assert_eq!(h.claim(i), ClaimCommand::Nothing);
    }
    assert_eq!(
        *h.state(4),
        TaskState::Skipped {
            reason: SkipReason::Protected
        },
        "the planner's reason is kept"
    );
    assert_eq!(h.run.state, RunState::Completed);
    assert_eq!(h.run.finished_at, Some(t0()));
    h.refuse(started(0), MachineError::RunFinished(RunState::Completed));
    assert!(h.run_to_end(10));
    assert_eq!(h.log.len(), 1, "nothing ran");
}

#[test]
fn stage_holds_a_task_until_its_time() {
    let mut h = Harness::new(plan(&[
        Spec::action("okta.suspend"),
        Spec::action("okta.delete").after(&[0]).at(30 * DAY),
        Spec::action("google.transfer_drive").at(30 * DAY),
    ]));
    h.ok(Event::Submitted);
    assert_eq!(h.task(0).due_at, Some(t0()));
    assert_eq!(h.task(1).due_at, None);
    assert_eq!(h.task(2).due_at, Some(at(30 * DAY)));
    h.refuse(started(2), MachineError::NotDue(tid(2)));
    // Dependencies are checked before the stage time.
    h.refuse(started(1), MachineError::DependenciesPending(tid(1)));
    assert_eq!(h.claim(2), ClaimCommand::Nothing);

    h.ok(started(0));
    h.ok(succeeded(0, Outcome::Done));
    assert_eq!(h.task(1).due_at, Some(at(30 * DAY)));
    h.refuse(started(1), MachineError::NotDue(tid(1)));

    h.advance_to(at(30 * DAY) - ms(1));
    assert_eq!(h.claim(1), ClaimCommand::Nothing);
    h.refuse(started(1), MachineError::NotDue(tid(1)));

    assert!(h.run_to_end(50));
    assert_eq!(
        h.starts(1),
        vec![at(30 * DAY)],
        "started exactly at its time"
    );
    assert_eq!(h.starts(2), vec![at(30 * DAY)]);
    assert_eq!(h.run.state, RunState::Completed);
}

// ---------------------------------------------------------------------------------------------
// Delegations
// ---------------------------------------------------------------------------------------------

#[test]
fn delegation_open_update_done_reopen() {
    let mut h = Harness::new(plan(&[Spec::delegation("salesforce", DelegateVia::Jira)]));
    h.ok(Event::Submitted);
    assert_eq!(h.ok(started(0)), vec![Command::OpenDelegation(tid(0))]);
    assert_eq!(h.ok(delegated(0, ticket("OFF-1", None), at(60))), vec![]);
    assert_eq!(
        *h.state(0),
        TaskState::Delegated {
            ticket: ticket("OFF-1", None)
        }
    );
    assert_eq!(h.task(0).due_at, Some(at(60)));
    assert_eq!(h.run.state, RunState::Waiting);

    h.advance_to(at(59));
    assert_eq!(h.claim(0), ClaimCommand::Nothing);
    h.advance_to(at(60));
    assert_eq!(h.claim(0), ClaimCommand::Poll);
    h.ok(updated(0, ticket("OFF-1", Some("it-desk")), at(120)));
    assert_eq!(
        *h.state(0),
        TaskState::Delegated {
            ticket: ticket("OFF-1", Some("it-desk"))
        }
    );
    assert_eq!(h.task(0).due_at, Some(at(120)));
    assert_eq!(h.claim(0), ClaimCommand::Nothing);
    // A delegation is not started again while open.
    h.refuse(
        started(0),
        MachineError::InvalidTransition {
            task: tid(0),
            state: "delegated",
            event: "task_started",
        },
    );

    h.advance_to(at(120));
    assert_eq!(h.ok(done(0)), vec![Command::Finished(RunState::Completed)]);
    assert_eq!(
        *h.state(0),
        TaskState::Completed {
            outcome: Outcome::Done,
            detail: Some("closed by it-desk".to_owned()),
        }
    );
    assert_eq!(h.run.finished_at, Some(at(120)));

    // Reopened: back to Delegated, and the run back to Waiting.
    h.advance_to(at(600));
    assert_eq!(h.ok(reopened(0, ticket("OFF-1", None), at(660))), vec![]);
    assert_eq!(
        *h.state(0),
        TaskState::Delegated {
            ticket: ticket("OFF-1", None)
        }
    );
    assert_eq!(h.task(0).due_at, Some(at(660)));
    assert_eq!(h.task(0).finished_at, None);
    assert_eq!(h.run.state, RunState::Waiting);
    assert_eq!(h.run.finished_at, None);
    h.refuse(
        reopened(0, ticket("OFF-1", None), at(660)),
        MachineError::InvalidTransition {
            task: tid(0),
            state: "delegated",
            event: "delegation_reopened",
        },
    );

    h.advance_to(at(660));
    assert_eq!(h.claim(0), ClaimCommand::Poll);
    assert_eq!(
        h.ok(done(0)),
        vec![Command::Finished(RunState::Completed)],
        "finished again"
    );
    assert_eq!(h.run.finished_at, Some(at(660)));
    assert_eq!(
        h.finished_commands(),
        vec![RunState::Completed, RunState::Completed]
    );
}

#[test]
fn delegation_events_need_a_delegation() {
    let mut h = Harness::new(plan(&[
        Spec::action("okta.suspend"),
        Spec::delegation("salesforce", DelegateVia::Email),
    ]));
    h.ok(Event::Submitted);
    h.ok(started(0));
    h.refuse(
        delegated(0, ticket("OFF-1", None), at(60)),
        MachineError::InvalidTransition {
            task: tid(0),
            state: "running",
            event: "task_delegated",
        },
    );
    h.ok(succeeded(0, Outcome::Done));
    h.refuse(
        reopened(0, ticket("OFF-1", None), at(60)),
        MachineError::InvalidTransition {
            task: tid(0),
            state: "completed",
            event: "delegation_reopened",
        },
    );
    h.refuse(
        done(1),
        MachineError::InvalidTransition {
            task: tid(1),
            state: "pending",
            event: "delegation_done",
        },
    );
    h.refuse(
        updated(1, ticket("OFF-1", None), at(60)),
        MachineError::InvalidTransition {
            task: tid(1),
            state: "pending",
            event: "delegation_updated",
        },
    );
    // A delegate may answer at once ("user not active there").
    h.ok(started(1));
    h.ok(succeeded(1, Outcome::NotFound));
    assert_eq!(h.run.state, RunState::Completed);
}

#[test]
fn run_waits_only_when_only_delegations_are_open() {
    let mut h = Harness::new(plan(&[
        Spec::delegation("salesforce", DelegateVia::Jira),
        Spec::action("okta.suspend").at(3_600),
    ]));
    h.ok(Event::Submitted);
    h.ok(started(0));
    h.ok(delegated(0, ticket("OFF-1", None), at(60)));
    assert_eq!(h.run.state, RunState::Running, "an action is still pending");
    h.advance_to(at(3_600));
    h.ok(started(1));
    assert_eq!(h.run.state, RunState::Running);
    h.ok(succeeded(1, Outcome::Done));
    assert_eq!(h.run.state, RunState::Waiting);
    assert_eq!(h.run.finished_at, None);
    assert_eq!(h.claim(0), ClaimCommand::Poll);
    assert_eq!(h.ok(done(0)), vec![Command::Finished(RunState::Completed)]);
}

// ---------------------------------------------------------------------------------------------
// Cancel
// ---------------------------------------------------------------------------------------------

#[test]
fn cancel_cancels_pending_retrying_and_delegated_tasks() {
    let mut h = Harness::new(plan(&[
        Spec::action("okta.suspend"),
        Spec::delegation("salesforce", DelegateVia::Jira),
        Spec::action("google.transfer_drive").at(3_600),
        Spec::action("google.delete").after(&[2]),
        Spec::action("slack.deactivate"),
    ]));
    h.ok(Event::Submitted);
    h.ok(started(0));
    h.ok(errored(0, retryable(None), 10_000));
    h.ok(started(1));
    h.ok(delegated(1, ticket("OFF-1", None), at(60)));
    h.ok(started(4));
    h.ok(succeeded(4, Outcome::Done));
    h.advance(ms(5));

    assert_eq!(h.ok(cancel()), vec![Command::Finished(RunState::Cancelled)]);
    for i in 0..4 {
        assert_eq!(*h.state(i), TaskState::Cancelled, "task {i}");
        assert_eq!(h.task(i).due_at, None);
        assert_eq!(h.task(i).finished_at, Some(t0() + ms(5)));
    }
    assert_eq!(*h.state(4), completed(Outcome::Done), "finished work stays");
    assert!(h.run.cancelled);
    assert_eq!(h.run.state, RunState::Cancelled);
    assert_eq!(h.run.finished_at, Some(t0() + ms(5)));

    h.advance_to(at(3_600));
    for i in 0..5 {
        assert_eq!(h.claim(i), ClaimCommand::Nothing);
    }
    h.refuse(started(0), MachineError::RunCancelled);
    h.refuse(started(2), MachineError::RunCancelled);
    h.refuse(cancel(), MachineError::RunFinished(RunState::Cancelled));
    h.refuse(
        reopened(1, ticket("OFF-1", None), at(3_660)),
        MachineError::RunFinished(RunState::Cancelled),
    );
    assert_eq!(h.finished_commands(), vec![RunState::Cancelled]);
}

#[test]
fn cancel_records_a_running_tasks_late_result() {
    let mut h = Harness::new(plan(&[
        Spec::action("okta.suspend"),
        Spec::action("okta.delete").after(&[0]),
        Spec::action("google.suspend").at(3_600),
    ]));
    h.ok(Event::Submitted);
    h.ok(started(0));
    assert_eq!(h.ok(cancel()), vec![], "a task is still running");
    assert!(h.run.cancelled);
    assert_eq!(h.run.state, RunState::Running);
    assert_eq!(h.run.finished_at, None);
    assert_eq!(
        *h.state(0),
        TaskState::Running {
            attempt: 1,
            since: t0()
        },
        "never cancelled from under its worker"
    );
    assert_eq!(*h.state(1), TaskState::Cancelled);
    assert_eq!(*h.state(2), TaskState::Cancelled);
    h.refuse(started(1), MachineError::RunCancelled);
    h.refuse(started(0), MachineError::RunCancelled);

    h.advance(ms(800));
    assert_eq!(
        h.ok(succeeded(0, Outcome::Done)),
        vec![Command::Finished(RunState::Cancelled)]
    );
    assert_eq!(*h.state(0), completed(Outcome::Done));
    assert_eq!(h.run.state, RunState::Cancelled);
    assert_eq!(h.run.finished_at, Some(t0() + ms(800)));
}

#[test]
fn late_retryable_error_after_cancel_is_not_retried() {
    let mut h = Harness::new(plan(&[Spec::action("okta.suspend")]));
    h.ok(Event::Submitted);
    h.ok(started(0));
    h.ok(cancel());
    assert_eq!(
        h.ok(errored(0, retryable(None), 1_000)),
        vec![Command::Finished(RunState::Cancelled)]
    );
    let error = failed_error(h.state(0));
    assert_eq!(error.retry, RetryClass::Exhausted);
    assert_eq!(h.task(0).due_at, None);
    assert_eq!(h.run.state, RunState::Cancelled);
}

#[test]
fn lost_worker_after_cancel_is_abandoned() {
    let mut h = Harness::new(plan(&[Spec::action("okta.suspend")]));
    h.ok(Event::Submitted);
    h.refuse(
        abandoned(0),
        MachineError::InvalidTransition {
            task: tid(0),
            state: "running",
            event: "task_abandoned",
        },
    );
    h.ok(started(0));
    h.refuse(
        abandoned(0),
        MachineError::InvalidTransition {
            task: tid(0),
            state: "running",
            event: "task_abandoned",
        },
    );
    h.ok(cancel());
    assert_eq!(h.claim(0), ClaimCommand::Abandon);
    h.advance(TimeDelta::minutes(5));
    assert_eq!(
        h.ok(abandoned(0)),
        vec![Command::Finished(RunState::Cancelled)]
    );
    assert_eq!(*h.state(0), TaskState::Cancelled);
    assert_eq!(h.claim(0), ClaimCommand::Nothing);
    // The lost worker's result, should it ever arrive, no longer applies.
    h.refuse(
        succeeded(0, Outcome::Done),
        MachineError::InvalidTransition {
            task: tid(0),
            state: "cancelled",
            event: "task_succeeded",
        },
    );
}

#[test]
fn lost_lease_reclaims_the_running_task() {
    let mut h = Harness::new(plan(&[Spec::action("okta.suspend")]));
    h.reply(0, [Reply::Lost, Reply::Ok(Outcome::AlreadyDone)]);
    h.ok(Event::Submitted);
    h.ok(started(0));
    // The worker vanished; once its lease expired another worker claims the task.
    h.advance(TimeDelta::minutes(5));
    assert_eq!(h.claim(0), ClaimCommand::Start);
    assert_eq!(h.ok(started(0)), vec![Command::Execute(tid(0))]);
    assert_eq!(
        *h.state(0),
        TaskState::Running {
            attempt: 2,
            since: t0() + TimeDelta::minutes(5)
        }
    );
    assert_eq!(h.task(0).started_at, Some(t0()));
    h.ok(succeeded(0, Outcome::AlreadyDone));
    assert_eq!(h.run.state, RunState::Completed);

    // The driver does the same on its own.
    let mut h = Harness::new(plan(&[Spec::action("okta.suspend")]));
    h.reply(0, [Reply::Lost, Reply::Ok(Outcome::AlreadyDone)]);
    h.ok(Event::Submitted);
    assert!(h.run_to_end(20));
    assert_eq!(h.starts(0).len(), 2);
    assert_eq!(h.task(0).attempts, 2);
}

// ---------------------------------------------------------------------------------------------
// Rollback
// ---------------------------------------------------------------------------------------------

#[test]
fn rollback_only_after_the_run_ended() {
    let mut h = Harness::new(plan(&[Spec::action("okta.suspend").reversible()]));
    h.refuse(rollback(), MachineError::NotSubmitted);
    h.ok(Event::Submitted);
    h.refuse(rollback(), MachineError::RunNotFinished(RunState::Running));
    h.ok(started(0));
    h.refuse(rollback(), MachineError::RunNotFinished(RunState::Running));
    h.ok(succeeded(0, Outcome::Done));
    h.refuse(rolled_back(0), MachineError::NoRollback);
    assert_eq!(h.ok(rollback()), vec![Command::Restore(tid(0))]);
    assert_eq!(h.run.state, RunState::Completed, "until restored");
    assert_eq!(
        h.ok(rolled_back(0)),
        vec![Command::Finished(RunState::RolledBack)]
    );
    assert_eq!(h.run.state, RunState::RolledBack);
}

#[test]
fn rollback_restores_in_reverse_completion_order() {
    let mut h = Harness::new(plan(&[
        Spec::action("okta.suspend").reversible(),
        Spec::action("ad.disable").reversible(),
        Spec::action("ad.move_to_ou").reversible().after(&[1]),
        Spec::action("okta.clear_sessions"),
        Spec::delegation("salesforce", DelegateVia::Jira),
    ]));
    // Task 0 fails once, so it completes last; 1, 2, 3 complete in turn.
    h.reply_after(
        0,
        [
            (
                1_000,
                Reply::Retry {
                    after_ms: None,
                    backoff_ms: 10_000,
                },
            ),
            (1_000, Reply::Ok(Outcome::Done)),
        ],
    );
    for i in 1..4 {
        h.reply_after(i, [(1_000, Reply::Ok(Outcome::Done))]);
    }
    h.ok(Event::Submitted);
    assert!(h.run_to_end(100));
    assert_eq!(h.run.state, RunState::Completed);
    let finished: Vec<_> = (0..4).map(|i| h.task(i).finished_at.unwrap()).collect();
    assert!(finished[1] < finished[2] && finished[2] < finished[3] && finished[3] < finished[0]);
    let run_finished_at = h.run.finished_at;

    let commands = h.ok(rollback());
    assert_eq!(
        commands,
        vec![
            Command::Restore(tid(0)),
            Command::Restore(tid(2)),
            Command::Restore(tid(1)),
        ]
    );
    assert!(h.run.rollback_requested);
    // Asking again while restoring names what is left.
    h.advance(ms(10));
    assert_eq!(h.ok(rolled_back(0)), vec![]);
    assert_eq!(
        h.ok(rollback()),
        vec![Command::Restore(tid(2)), Command::Restore(tid(1))]
    );
    h.refuse(
        rolled_back(0),
        MachineError::InvalidTransition {
            task: tid(0),
            state: "rolled_back",
            event: "task_rolled_back",
        },
    );
    h.refuse(
        rolled_back(3),
        MachineError::InvalidTransition {
            task: tid(3),
            state: "completed",
            event: "task_rolled_back",
        },
    );
    h.refuse(
        reopened(4, ticket("OFF-9", None), h.now),
        MachineError::RunFinished(RunState::Completed),
    );
    assert_eq!(h.ok(rolled_back(2)), vec![]);
    assert_eq!(
        h.ok(rolled_back(1)),
        vec![Command::Finished(RunState::RolledBack)]
    );
    for i in 0..3 {
        assert_eq!(*h.state(i), TaskState::RolledBack);
        assert_eq!(h.task(i).finished_at, Some(h.now));
    }
    assert_eq!(*h.state(3), completed(Outcome::Done), "not reversible");
    assert_eq!(h.run.state, RunState::RolledBack);
    assert_eq!(h.run.finished_at, run_finished_at);
    h.refuse(rollback(), MachineError::RunFinished(RunState::RolledBack));
    assert_eq!(
        h.finished_commands(),
        vec![RunState::Completed, RunState::RolledBack]
    );
}

/// A failed reversible task may have changed the account after its snapshot: a rollback takes
/// it too (the engine marks it rolled back without a call when it has no snapshot). Before,
/// the rollback skipped it and the run ended rolled back at once.
#[test]
fn rollback_takes_failed_reversible_tasks() {
    let mut h = Harness::new(plan(&[
        Spec::action("okta.delete").critical(),
        Spec::action("okta.suspend").reversible(),
    ]));
    h.reply(1, [Reply::Permanent]);
    h.ok(Event::Submitted);
    assert!(h.run_to_end(20));
    assert_eq!(h.run.state, RunState::CompletedWithFailures);
    assert_eq!(h.ok(rollback()), vec![Command::Restore(tid(1))]);
    assert_eq!(h.run.state, RunState::CompletedWithFailures);
    assert_eq!(
        h.ok(rolled_back(1)),
        vec![Command::Finished(RunState::RolledBack)]
    );
    assert_eq!(h.run.state, RunState::RolledBack);
}

fn lease(holder: &str, until: DateTime<Utc>) -> RestoreLease {
    RestoreLease {
        holder: holder.to_owned(),
        token: Uuid::new_v4(),
        until,
    }
}

/// A rollback holds the run's restore lease: a second rollback's request is refused until the
/// lease expired, the first one's restore events quote (and renew) it, and once a second
/// rollback took an expired lease over, the first one's events are refused.
#[test]
fn a_rollback_holds_the_run_until_its_lease_expires() {
    let mut h = Harness::new(plan(&[
        Spec::action("okta.suspend").reversible(),
        Spec::action("okta.remove_groups").reversible().after(&[0]),
    ]));
    h.ok(Event::Submitted);
    assert!(h.run_to_end(20));
    let first = lease("a", h.now + TimeDelta::seconds(30));
    let requested = |l: &RestoreLease| Event::RollbackRequested {
        by: "admin@example.com".to_owned(),
        lease: Some(l.clone()),
    };
    assert_eq!(
        h.ok(requested(&first)),
        vec![Command::Restore(tid(1)), Command::Restore(tid(0))]
    );
    assert_eq!(h.run.restore_lease, Some(first.clone()));
    let second = lease("b", h.now + TimeDelta::seconds(60));
    h.refuse(
        requested(&second),
        MachineError::RollbackUnderWay {
            holder: "a".to_owned(),
            until: first.until,
        },
    );
    // The holder's events renew its lease.
    h.advance(TimeDelta::seconds(20));
    let renewed = RestoreLease {
        until: h.now + TimeDelta::seconds(30),
        ..first.clone()
    };
    h.ok(Event::RestoreStarted {
        task: tid(1),
        lease: Some(renewed.clone()),
    });
    h.ok(Event::TaskRolledBack {
        task: tid(1),
        lease: Some(renewed.clone()),
    });
    assert_eq!(h.run.restore_lease, Some(renewed.clone()));
    h.advance(TimeDelta::seconds(20));
    h.refuse(
        requested(&second),
        MachineError::RollbackUnderWay {
            holder: "a".to_owned(),
            until: renewed.until,
        },
    );
    // The holder stalls past its lease: the second rollback takes over.
    h.advance(TimeDelta::seconds(20));
    let second = lease("b", h.now + TimeDelta::seconds(30));
    assert_eq!(h.ok(requested(&second)), vec![Command::Restore(tid(0))]);
    h.refuse(
        Event::TaskRolledBack {
            task: tid(0),
            lease: Some(renewed.clone()),
        },
        MachineError::RestoreLeaseLost,
    );
    h.refuse(
        Event::RollbackEnded {
            token: Some(renewed.token),
            kept: Vec::new(),
        },
        MachineError::RestoreLeaseLost,
    );
    assert_eq!(
        h.ok(Event::TaskRolledBack {
            task: tid(0),
            lease: Some(second.clone()),
        }),
        vec![Command::Finished(RunState::RolledBack)]
    );
    h.ok(Event::RollbackEnded {
        token: Some(second.token),
        kept: Vec::new(),
    });
    assert_eq!(h.run.restore_lease, None);
    assert_eq!(h.run.state, RunState::RolledBack);
}

#[test]
fn rollback_of_a_cancelled_run() {
    let mut h = Harness::new(plan(&[
        Spec::action("okta.suspend").reversible(),
        Spec::action("okta.delete").after(&[0]).at(DAY),
    ]));
    h.ok(Event::Submitted);
    h.ok(started(0));
    h.ok(succeeded(0, Outcome::Done));
    h.ok(cancel());
    assert_eq!(h.run.state, RunState::Cancelled);
    assert_eq!(h.roll_back(), vec![tid(0)]);
    assert_eq!(h.run.state, RunState::RolledBack);
    assert_eq!(
        h.finished_commands(),
        vec![RunState::Cancelled, RunState::RolledBack]
    );
}

/// Tasks that complete at the same instant must still be restored in reverse completion
/// order: `1` depends on `0`, so `0` completed first and `1` must be restored first.
#[test]
fn rollback_order_with_equal_completion_times() {
    let mut h = Harness::new(plan(&[
        Spec::action("ad.disable").reversible(),
        Spec::action("ad.move_to_ou").reversible().after(&[0]),
    ]));
    h.ok(Event::Submitted);
    assert!(h.run_to_end(20));
    assert_eq!(h.task(0).finished_at, h.task(1).finished_at);
    assert_eq!(
        h.ok(rollback()),
        vec![Command::Restore(tid(1)), Command::Restore(tid(0))]
    );
}

// ---------------------------------------------------------------------------------------------
// Refusals and bookkeeping
// ---------------------------------------------------------------------------------------------

#[test]
fn refused_events_leave_the_run_unchanged() {
    // `Harness::try_apply` checks every refusal leaves the run equal and byte-identical.
    let mut h = Harness::new(plan(&[
        Spec::action("okta.suspend"),
        Spec::action("okta.delete").after(&[0]),
    ]));
    let unknown = TaskId(Uuid::from_u128(0xdead));
    for event in [started(0), succeeded(0, Outcome::Done), cancel(), done(0)] {
        h.refuse(event, MachineError::NotSubmitted);
    }
    h.ok(Event::Submitted);
    h.refuse(Event::Submitted, MachineError::AlreadySubmitted);
    h.refuse(
        Event::TaskStarted { task: unknown },
        MachineError::UnknownTask(unknown),
    );
    h.refuse(
        Event::TaskSucceeded {
            task: unknown,
            outcome: Outcome::Done,
            detail: None,
        },
        MachineError::UnknownTask(unknown),
    );
    h.refuse(
        Event::TaskRolledBack {
            task: unknown,
            lease: None,
        },
        MachineError::NoRollback,
    );
    h.refuse(
        succeeded(0, Outcome::Done),
        MachineError::InvalidTransition {
            task: tid(0),
            state: "pending",
            event: "task_succeeded",
        },
    );
    h.refuse(
        errored(0, permanent(), 0),
        MachineError::InvalidTransition {
            task: tid(0),
            state: "pending",
            event: "task_errored",
        },
    );
    h.refuse(started(1), MachineError::DependenciesPending(tid(1)));
    h.refuse(rollback(), MachineError::RunNotFinished(RunState::Running));
    h.ok(started(0));
    h.ok(succeeded(0, Outcome::Done));
    h.refuse(
        started(0),
        MachineError::InvalidTransition {
            task: tid(0),
            state: "completed",
            event: "task_started",
        },
    );
    h.refuse(
        errored(0, retryable(None), 0),
        MachineError::InvalidTransition {
            task: tid(0),
            state: "completed",
            event: "task_errored",
        },
    );
    h.ok(started(1));
    h.ok(succeeded(1, Outcome::Done));
    h.refuse(started(1), MachineError::RunFinished(RunState::Completed));
    h.refuse(cancel(), MachineError::RunFinished(RunState::Completed));
    h.refuse(rolled_back(0), MachineError::NoRollback);
    assert_eq!(h.refused.len(), 17);
    assert_eq!(h.log.len(), 5);
}

#[test]
fn finished_is_emitted_once_per_terminal_state_change() {
    let mut h = Harness::new(plan(&[
        Spec::delegation("salesforce", DelegateVia::Jira),
        Spec::action("okta.suspend").reversible(),
    ]));
    h.reopens.insert(tid(0), 60_000);
    h.poll_script(
        0,
        [Poll::Unchanged, Poll::Assign("it-desk".into()), Poll::Done],
    );
    h.ok(Event::Submitted);
    assert!(h.run_to_end(100));
    assert_eq!(h.roll_back(), vec![tid(1)]);
    assert_eq!(
        h.finished_commands(),
        vec![
            RunState::Completed,
            RunState::Completed,
            RunState::RolledBack
        ]
    );
    for a in &h.log {
        let changed = a.after.state.is_terminal()
            && (!a.before.state.is_terminal() || a.before.state != a.after.state);
        let finished: Vec<_> = a
            .commands
            .iter()
            .filter(|c| matches!(c, Command::Finished(_)))
            .collect();
        assert_eq!(finished.len(), usize::from(changed), "{:?}", a.event);
    }
    // Terminal -> same terminal (a restore that leaves more to restore) emits nothing.
    assert!(
        h.log
            .iter()
            .any(|a| a.event == rollback() && a.commands == vec![Command::Restore(tid(1))])
    );
}

/// A hint so large that the retry time is beyond chrono's range must not crash the machine:
/// no retry can be scheduled within any budget, so the task fails as exhausted.
#[test]
fn huge_backoff_or_hint_fails_as_exhausted() {
    for (after, backoff_ms) in [(None, u64::MAX), (Some(Duration::from_secs(u64::MAX)), 0)] {
        let mut h = Harness::new(plan(&[Spec::action("okta.suspend")]));
        h.ok(Event::Submitted);
        h.ok(started(0));
        h.ok(errored(0, retryable(after), backoff_ms));
        assert_eq!(failed_error(h.state(0)).retry, RetryClass::Exhausted);
    }
}

/// A dependency that is reopened is no longer completed; a dependent waiting to retry must
/// wait for it again, as a pending dependent does.
#[test]
fn retrying_dependent_waits_for_a_reopened_dependency() {
    let mut h = Harness::new(plan(&[
        Spec::delegation("hr", DelegateVia::Jira),
        Spec::action("okta.delete").after(&[0]),
    ]));
    h.ok(Event::Submitted);
    h.ok(started(0));
    h.ok(delegated(0, ticket("OFF-1", None), at(60)));
    h.advance_to(at(60));
    h.ok(done(0));
    h.ok(started(1));
    h.ok(errored(1, retryable(None), 60_000));
    h.ok(reopened(0, ticket("OFF-1", None), at(120)));
    h.advance_to(at(120));
    assert_eq!(h.claim(1), ClaimCommand::Nothing);
    h.refuse(started(1), MachineError::DependenciesPending(tid(1)));
}

/// The vendor's hint is kept in the audit event; replaying the persisted events must rebuild
/// the same retry time.
#[test]
fn replay_after_serde_keeps_sub_millisecond_hints() {
    let mut h = Harness::new(plan(&[Spec::action("okta.suspend")]));
    h.ok(Event::Submitted);
    h.ok(started(0));
    h.ok(errored(0, retryable(Some(Duration::from_micros(1_500))), 0));
    let events: Vec<(DateTime<Utc>, Event)> =
        h.log.iter().map(|a| (a.at, a.event.clone())).collect();
    let json = serde_json::to_string(&events).unwrap();
    let back: Vec<(DateTime<Utc>, Event)> = serde_json::from_str(&json).unwrap();
    let replayed = replay(h.planned.clone(), back.iter().map(|(t, e)| (*t, e))).unwrap();
    assert_eq!(replayed, h.run);
}

#[test]
fn replay_rebuilds_a_scripted_run() {
    let mut h = Harness::new(plan(&[
        Spec::action("okta.suspend").reversible(),
        Spec::delegation("salesforce", DelegateVia::Jira).after(&[0]),
        Spec::action("okta.delete").after(&[0]).at(30 * DAY),
    ]));
    h.reply(
        0,
        [Reply::Retry {
            after_ms: Some(7_000),
            backoff_ms: 1_000,
        }],
    );
    h.poll_script(1, [Poll::Assign("it-desk".into())]);
    h.ok(Event::Submitted);
    assert!(h.run_to_end(100));
    h.roll_back();
    let events: Vec<(DateTime<Utc>, Event)> =
        h.log.iter().map(|a| (a.at, a.event.clone())).collect();
    let replayed = replay(h.planned.clone(), events.iter().map(|(t, e)| (*t, e))).unwrap();
    assert_eq!(replayed, h.run);
    assert_eq!(derive_state(&replayed), RunState::RolledBack);
}

// ---------------------------------------------------------------------------------------------
// Properties (ARCHITECTURE.md)
// ---------------------------------------------------------------------------------------------

/// One generated task with its script.
#[derive(Debug, Clone)]
struct TaskGen {
    spec: Spec,
    replies: Vec<(i64, Reply)>,
    polls: Vec<Poll>,
    /// For a delegation: reopen it this many ms after it completes.
    reopen_after_ms: Option<i64>,
}

/// A generated plan with scripted answers and engine behaviour.
#[derive(Debug, Clone)]
struct Scenario {
    tasks: Vec<TaskGen>,
    dry_run: bool,
    retry: RetryPolicy,
    /// Cancel once the log holds this many events; lose the in-flight worker or not.
    cancel: Option<(usize, bool)>,
    /// Roll back once the run ended.
    rollback: bool,
    probes: Vec<(u8, usize)>,
}

/// Steps enough for any generated scenario to end.
fn step_limit(s: &Scenario) -> usize {
    50 * s.tasks.len() + 50
}

fn arb_reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        3 => prop_oneof![
            Just(Outcome::Done),
            Just(Outcome::AlreadyDone),
            Just(Outcome::NotFound)
        ]
        .prop_map(Reply::Ok),
        3 => (proptest::option::of(0u64..120_000), 0u64..60_000).prop_map(
            |(after_ms, backoff_ms)| Reply::Retry {
                after_ms,
                backoff_ms
            }
        ),
        1 => Just(Reply::Permanent),
        1 => Just(Reply::NotFound),
        1 => Just(Reply::Open),
        1 => Just(Reply::Lost),
    ]
}

fn arb_poll() -> impl Strategy<Value = Poll> {
    prop_oneof![
        Just(Poll::Unchanged),
        Just(Poll::Assign("it-desk".to_owned())),
        Just(Poll::Done),
    ]
}

const APPS: [&str; 5] = ["okta", "google", "ad", "azure", "slack"];

fn arb_task(i: usize) -> impl Strategy<Value = TaskGen> {
    let deps = proptest::sample::subsequence((0..i).collect::<Vec<_>>(), 0..=i.min(3));
    let via = prop_oneof![
        4 => Just(None),
        1 => Just(Some(DelegateVia::Jira)),
        1 => Just(Some(DelegateVia::Email)),
    ];
    let flags = (any::<bool>(), any::<bool>(), proptest::bool::weighted(0.8));
    let stage = prop_oneof![3 => Just(0i64), 1 => Just(3_600), 1 => Just(30 * DAY)];
    let account = prop_oneof![
        6 => Just(Some(AccountStatus::Active)),
        1 => Just(None),
        1 => Just(Some(AccountStatus::Deprovisioned)),
        1 => Just(Some(AccountStatus::Unknown)),
    ];
    let initial = prop_oneof![
        30 => Just(TaskState::Pending),
        1 => Just(TaskState::Skipped { reason: SkipReason::Protected }),
        1 => Just(TaskState::Skipped { reason: SkipReason::Ignored }),
    ];
    let replies = proptest::collection::vec((0i64..5_000, arb_reply()), 0..4);
    let polls = proptest::collection::vec(arb_poll(), 0..3);
    let reopen = proptest::option::weighted(0.3, 0i64..600_000);
    (
        deps, via, flags, stage, account, initial, replies, polls, reopen,
    )
        .prop_map(
            move |(
                deps,
                via,
                (reversible, critical, not_found_is_done),
                at_secs,
                account,
                initial,
                replies,
                polls,
                reopen,
            )| {
                let name = match via {
                    None => format!("{}.op{i}", APPS[i % APPS.len()]),
                    Some(_) => format!("saas{i}"),
                };
                let is_delegation = via.is_some();
                TaskGen {
                    spec: Spec {
                        name,
                        via,
                        deps,
                        reversible: reversible && !is_delegation,
                        critical,
                        not_found_is_done,
                        at_secs,
                        account,
                        initial,
                    },
                    replies,
                    polls,
                    reopen_after_ms: reopen.filter(|_| is_delegation),
                }
            },
        )
}

fn arb_scenario() -> impl Strategy<Value = Scenario> {
    (1usize..=12)
        .prop_flat_map(|n| {
            let tasks: Vec<_> = (0..n).map(arb_task).collect();
            (
                tasks,
                proptest::bool::weighted(0.1),
                (1u32..=5, prop_oneof![Just(30u64), Just(600), Just(3_600)]),
                proptest::option::of((1usize..16, any::<bool>())),
                any::<bool>(),
                proptest::collection::vec((0u8..13, 0..=n), 0..24),
            )
        })
        .prop_map(
            |(tasks, dry_run, (max_attempts, max_elapsed), cancel, rollback, probes)| Scenario {
                tasks,
                dry_run,
                retry: RetryPolicy {
                    max_attempts,
                    max_elapsed: secs(max_elapsed),
                },
                cancel,
                rollback,
                probes,
            },
        )
}

/// A scenario whose delegations are reopened only when nothing depends on them (see
/// `retrying_dependent_waits_for_a_reopened_dependency` for why).
fn without_reopened_dependencies(mut s: Scenario) -> Scenario {
    let depended_on: Vec<usize> = s
        .tasks
        .iter()
        .flat_map(|t| t.spec.deps.iter().copied())
        .collect();
    for (i, t) in s.tasks.iter_mut().enumerate() {
        if depended_on.contains(&i) {
            t.reopen_after_ms = None;
        }
    }
    s
}

/// Runs a scenario to its end (and its rollback, if asked). Returns the harness and whether
/// the run ended within [`step_limit`] steps.
fn drive(s: &Scenario) -> (Harness, bool) {
    drive_with(s, |run| run, None)
}

/// [`drive`], with the planned run changed by `tweak` and the held tasks confirmed after
/// `confirm_after` events (see [`Harness::confirm_after`]).
fn drive_with(
    s: &Scenario,
    tweak: impl FnOnce(Run) -> Run,
    confirm_after: Option<usize>,
) -> (Harness, bool) {
    let specs: Vec<Spec> = s.tasks.iter().map(|t| t.spec.clone()).collect();
    let mut run = plan(&specs);
    run.dry_run = s.dry_run;
    run.retry = s.retry;
    let mut h = Harness::new(tweak(run));
    h.confirm_after = confirm_after;
    for (i, t) in s.tasks.iter().enumerate() {
        h.reply_after(i, t.replies.iter().cloned());
        h.poll_script(i, t.polls.iter().cloned());
        if let Some(delay) = t.reopen_after_ms {
            h.reopens.insert(tid(i), delay);
        }
    }
    if let Some((after, lose)) = s.cancel {
        h.cancel_after = Some(after);
        h.lose_worker_on_cancel = lose;
    }
    h.probes = s.probes.clone();
    h.ok(Event::Submitted);
    let ended = h.run_to_end(step_limit(s));
    if ended && s.rollback && h.run.state != RunState::RolledBack {
        h.roll_back();
    }
    (h, ended)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// (a) Every run terminates once its connectors answer: the driver reaches a terminal run
    /// state within a bounded number of steps, with every task terminal and nothing due.
    #[test]
    fn every_run_terminates(s in arb_scenario()) {
        let (h, ended) = drive(&s);
        prop_assert!(ended, "not ended after {} steps: {:?}", step_limit(&s), h.run);
        prop_assert!(h.run.state.is_terminal());
        for t in &h.run.tasks {
            prop_assert!(t.state.is_terminal(), "{:?}", t);
            prop_assert_eq!(t.due_at, None);
        }
        prop_assert_eq!(h.run.next_due(), None);
        if s.rollback {
            prop_assert_eq!(h.run.state, RunState::RolledBack);
        }
    }

    /// (b) No task starts after its run is cancelled: once `Cancel` is applied, no
    /// `TaskStarted` is accepted, no `Execute` / `OpenDelegation` is commanded, and
    /// `claim_command` never says `Start` again; the run ends `Cancelled` (or `RolledBack`).
    #[test]
    fn no_task_starts_after_cancel(
        s in arb_scenario(),
        cancel_after in 1usize..16,
        lose_worker in any::<bool>(),
    ) {
        let mut s = s;
        s.cancel = Some((cancel_after, lose_worker));
        let (h, ended) = drive(&s);
        prop_assert!(ended);
        let Some(c) = h.log.iter().position(|a| matches!(a.event, Event::Cancel { .. })) else {
            // The run had ended before the cancel point.
            let refused = h.refused.iter().any(|(e, _)| matches!(e, Event::Cancel { .. }));
            prop_assert!(!h.cancel_tried || refused, "cancel neither applied nor refused");
            return Ok(());
        };
        for a in &h.log[c + 1..] {
            prop_assert!(!matches!(a.event, Event::TaskStarted { .. }), "{:?}", a.event);
            prop_assert!(
                !a.commands
                    .iter()
                    .any(|c| matches!(c, Command::Execute(_) | Command::OpenDelegation(_))),
                "{:?} -> {:?}", a.event, a.commands
            );
            let far = a.at + TimeDelta::days(365);
            for t in &a.after.tasks {
                prop_assert_ne!(claim_command(&a.after, t.id, far), ClaimCommand::Start);
            }
        }
        prop_assert!(
            matches!(h.run.state, RunState::Cancelled | RunState::RolledBack),
            "{:?}", h.run.state
        );
    }

    /// (c) Ordering: whenever a task is started, every task it depends on is `Completed`, the
    /// run is not cancelled, and the time is at or after the task's `not_before` (and after
    /// its retry time when retrying).
    #[test]
    fn ordering_holds(s in arb_scenario().prop_map(without_reopened_dependencies)) {
        let (h, _) = drive(&s);
        for a in &h.log {
            let Event::TaskStarted { task } = a.event else { continue };
            let t = a.before.task(task).unwrap();
            prop_assert!(!a.before.cancelled);
            for d in &t.depends_on {
                let dep = a.before.task(*d).unwrap();
                prop_assert!(
                    dep.state.is_completed(),
                    "{} started at {} while its dependency {} is {:?}", task, a.at, d, dep.state
                );
            }
            prop_assert!(a.at >= t.not_before, "{} started at {} before {}", task, a.at, t.not_before);
            if let TaskState::Retrying { not_before, .. } = &t.state {
                prop_assert!(a.at >= *not_before);
            }
        }
    }

    /// (d) Replay: replaying the recorded `(time, event)`s over the planned run rebuilds the
    /// live run after every event, and the final run again after a serde_json round trip of
    /// the planned run and the events.
    #[test]
    fn replay_rebuilds_the_live_run(s in arb_scenario()) {
        let (h, _) = drive(&s);
        let events: Vec<(DateTime<Utc>, Event)> =
            h.log.iter().map(|a| (a.at, a.event.clone())).collect();
        let replayed = replay(h.planned.clone(), events.iter().map(|(t, e)| (*t, e)));
        prop_assert_eq!(replayed.as_ref(), Ok(&h.run));

        let mut run = h.planned.clone();
        for a in &h.log {
            let commands = apply(&mut run, a.at, &a.event);
            prop_assert_eq!(commands.as_ref(), Ok(&a.commands));
            prop_assert_eq!(&run, &a.after);
        }

        let json = serde_json::to_string(&events).unwrap();
        let back: Vec<(DateTime<Utc>, Event)> = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&back, &events);
        let planned: Run =
            serde_json::from_str(&serde_json::to_string(&h.planned).unwrap()).unwrap();
        prop_assert_eq!(&planned, &h.planned);
        let replayed = replay(planned, back.iter().map(|(t, e)| (*t, e)));
        prop_assert_eq!(replayed.as_ref(), Ok(&h.run));
    }

    /// (e) `apply` is all-or-nothing: every refused event, whether from the driver or from
    /// arbitrary probes tried at every step, leaves the run equal and byte-identical
    /// (checked inside the harness), and a refusal is deterministic.
    #[test]
    fn refused_events_change_nothing(s in arb_scenario()) {
        let (h, _) = drive(&s);
        // Every state the run went through, against a few arbitrary events each.
        let states = h.log.iter().map(|a| (a.at, &a.after)).step_by(3);
        for (now, state) in states.chain(std::iter::once((h.now, &h.run))) {
            let mut bytes_checked = false;
            for (kind, i) in s.probes.iter().take(8) {
                let event = probe_event(*kind, tid(*i), now);
                let mut run = state.clone();
                let first = apply(&mut run, now, &event);
                if let Err(e) = first {
                    prop_assert_eq!(&run, state, "refused {:?} changed the run", event);
                    if !bytes_checked {
                        bytes_checked = true;
                        prop_assert_eq!(
                            serde_json::to_vec(&run).unwrap(),
                            serde_json::to_vec(state).unwrap()
                        );
                    }
                    // Deterministic: refused again, for the same reason.
                    prop_assert_eq!(apply(&mut run, now, &event), Err(e));
                }
            }
        }
    }

    /// (f) `finished_at` is set iff the state is terminal, for the run and for each task, after
    /// every event; the stored run state is the one its tasks imply; terminal tasks are
    /// never due.
    #[test]
    fn finished_at_iff_terminal(s in arb_scenario()) {
        let (h, _) = drive(&s);
        for a in &h.log {
            let run = &a.after;
            prop_assert_eq!(
                run.finished_at.is_some(), run.state.is_terminal(),
                "after {:?}: {:?} finished_at {:?}", a.event, run.state, run.finished_at
            );
            if let Some(f) = run.finished_at {
                prop_assert!(f <= a.at);
            }
            prop_assert_eq!(derive_state(run), run.state);
            for t in &run.tasks {
                prop_assert_eq!(
                    t.finished_at.is_some(), t.state.is_terminal(),
                    "after {:?}: task {:?}", a.event, t
                );
                if t.state.is_terminal() {
                    prop_assert_eq!(t.due_at, None);
                }
            }
        }
    }

    /// `Finished` is emitted exactly once per change into (or between) terminal states, and
    /// names the state reached.
    #[test]
    fn finished_once_per_terminal_change(s in arb_scenario()) {
        let (h, ended) = drive(&s);
        for a in &h.log {
            let finished: Vec<RunState> = a
                .commands
                .iter()
                .filter_map(|c| match c {
                    Command::Finished(s) => Some(*s),
                    _ => None,
                })
                .collect();
            let changed = a.after.state.is_terminal()
                && (!a.before.state.is_terminal() || a.before.state != a.after.state);
            if changed {
                prop_assert_eq!(finished, vec![a.after.state], "{:?}", a.event);
            } else {
                prop_assert!(finished.is_empty(), "{:?} -> {:?}", a.event, finished);
            }
        }
        if ended {
            let finished = h.finished_commands();
            prop_assert_eq!(finished.last(), Some(&h.run.state));
        }
    }

    /// (f) A held task never starts without a matching confirmation: critical tasks of a run
    /// submitted without one are `Held` (never due, never claimed to start, `TaskStarted`
    /// refused) until an `Event::Confirmed` quoting the run's digest (a wrong digest is refused
    /// and changes nothing); confirmed, the run ends as any other; never confirmed, it waits in
    /// `AwaitingConfirmation` with the held tasks untouched. Replay rebuilds it either way.
    #[test]
    fn held_tasks_start_only_after_a_matching_confirmation(
        s in arb_scenario(),
        confirm_after in proptest::option::of(0usize..40),
    ) {
        let mut s = s;
        s.cancel = None;
        let (h, ended) = drive_with(&s, unconfirmed, confirm_after);
        let submitted = &h.log[0].after;
        let held: Vec<TaskId> = submitted
            .tasks
            .iter()
            .filter(|t| t.state == TaskState::Held)
            .map(|t| t.id)
            .collect();
        for t in &submitted.tasks {
            let holds = !s.dry_run && t.critical && !t.account_gone() && !h.planned.task(t.id).unwrap().state.is_terminal();
            prop_assert_eq!(held.contains(&t.id), holds, "{:?}", t);
        }
        let confirmation = h.log.iter().position(|a| matches!(a.event, Event::Confirmed { .. }));
        for (i, a) in h.log.iter().enumerate() {
            if confirmation.is_some_and(|c| i >= c) {
                break;
            }
            if let Event::TaskStarted { task } = &a.event {
                prop_assert!(!held.contains(task), "held task {task} started unconfirmed");
            }
            let far = a.at + TimeDelta::days(365);
            for id in &held {
                let t = a.after.task(*id).unwrap();
                prop_assert!(
                    t.state == TaskState::Held || t.state == TaskState::Cancelled,
                    "{:?}", t
                );
                prop_assert_eq!(t.due_at, None);
                prop_assert_ne!(claim_command(&a.after, *id, far), ClaimCommand::Start);
                let mut copy = a.after.clone();
                let start = Event::TaskStarted { task: *id };
                prop_assert!(apply(&mut copy, far, &start).is_err());
            }
        }
        let wrong = h
            .refused
            .iter()
            .filter(|(_, e)| matches!(e, MachineError::DigestMismatch { .. }))
            .count();
        prop_assert_eq!(wrong, usize::from(confirmation.is_some()));
        match (confirm_after, held.is_empty()) {
            (_, true) | (Some(_), false) => {
                prop_assert!(ended, "not ended: {:?}", h.run);
                if !held.is_empty() {
                    prop_assert!(confirmation.is_some());
                    prop_assert_eq!(h.run.confirmed_by.as_deref(), Some("sec-lead@example.com"));
                }
            }
            (None, false) => {
                prop_assert_eq!(h.run.state, RunState::AwaitingConfirmation);
                for id in &held {
                    let t = h.run.task(*id).unwrap();
                    prop_assert_eq!(&t.state, &TaskState::Held);
                    prop_assert_eq!(t.attempts, 0);
                }
            }
        }
        let events = h.log.iter().map(|a| (a.at, &a.event));
        prop_assert_eq!(replay(h.planned.clone(), events).unwrap(), h.run.clone());
    }

    /// (g) Cancel ends held tasks: a run whose critical tasks are held and never confirmed is
    /// cancelled, and every held task ends `Cancelled` without ever having started.
    #[test]
    fn cancel_ends_held_tasks(
        s in arb_scenario(),
        cancel_after in 1usize..16,
        lose_worker in any::<bool>(),
    ) {
        let mut s = s;
        s.cancel = Some((cancel_after, lose_worker));
        s.rollback = false;
        let (h, ended) = drive_with(&s, unconfirmed, None);
        prop_assert!(ended, "not ended: {:?}", h.run);
        let held: Vec<TaskId> = h.log[0]
            .after
            .tasks
            .iter()
            .filter(|t| t.state == TaskState::Held)
            .map(|t| t.id)
            .collect();
        if held.is_empty() {
            return Ok(());
        }
        prop_assert_eq!(h.run.state, RunState::Cancelled);
        for id in &held {
            let t = h.run.task(*id).unwrap();
            prop_assert_eq!(&t.state, &TaskState::Cancelled);
            prop_assert_eq!(t.attempts, 0);
            prop_assert!(h.starts(h.run.tasks.iter().position(|x| x.id == *id).unwrap()).is_empty());
        }
    }
}

#[test]
fn a_critical_task_is_held_until_confirmed() {
    let mut h = Harness::new(unconfirmed(plan(&[
        Spec::action("okta.suspend"),
        Spec::action("okta.delete").after(&[0]).critical(),
        Spec::action("google.delete").critical().no_account(),
    ])));
    h.ok(Event::Submitted);
    assert_eq!(h.state(1), &TaskState::Held);
    assert_eq!(h.task(1).due_at, None);
    assert!(
        matches!(
            h.state(2),
            TaskState::Completed {
                outcome: Outcome::NotFound,
                ..
            }
        ),
        "nothing to hold without an account"
    );
    // The rest runs.
    assert!(!h.run_to_end(20), "the run waits for the confirmation");
    assert_eq!(h.state(0), &completed(Outcome::Done));
    assert_eq!(h.run.state, RunState::AwaitingConfirmation);
    assert_eq!(h.claim(1), ClaimCommand::Nothing);
    h.refuse(
        started(1),
        MachineError::InvalidTransition {
            task: tid(1),
            state: "held",
            event: "task_started",
        },
    );
    let (wrong, error) = confirmed_wrongly(&h.run);
    h.refuse(wrong, error);
    let digest = h.run.confirmation_digest();
    h.ok(confirmed(&h.run.clone()));
    assert_eq!(h.state(1), &TaskState::Pending);
    assert_eq!(h.task(1).due_at, Some(h.now));
    assert_eq!(h.run.state, RunState::Running);
    assert_eq!(h.run.confirmed_by.as_deref(), Some("sec-lead@example.com"));
    assert_eq!(
        h.try_apply(Event::Confirmed {
            by: "sec-lead@example.com".into(),
            role: None,
            digest,
        }),
        Err(MachineError::NothingHeld),
        "a second confirmation releases nothing"
    );
    assert!(h.run_to_end(20));
    assert_eq!(h.run.state, RunState::Completed);
    assert_eq!(h.state(1), &completed(Outcome::Done));
}

#[test]
fn a_cancel_ends_held_tasks_and_a_later_confirmation_is_refused() {
    let mut h = Harness::new(unconfirmed(plan(&[
        Spec::action("okta.suspend"),
        Spec::action("okta.delete").critical(),
    ])));
    h.ok(Event::Submitted);
    assert_eq!(h.state(1), &TaskState::Held);
    let confirmation = confirmed(&h.run);
    h.ok(cancel());
    assert_eq!(h.state(1), &TaskState::Cancelled);
    assert_eq!(h.state(0), &TaskState::Cancelled);
    assert_eq!(h.run.state, RunState::Cancelled);
    h.refuse(confirmation, MachineError::RunCancelled);
    assert!(h.starts(1).is_empty());
}

#[test]
fn a_confirmation_digest_is_stable_and_names_only_what_it_releases() {
    let specs = [
        Spec::action("okta.suspend"),
        Spec::action("okta.delete").critical(),
    ];
    let a = unconfirmed(plan(&specs));
    let mut b = unconfirmed(plan(&specs));
    b.id = RunId(Uuid::from_u128(42));
    b.effective_at = at(3_600);
    b.tasks[0].id = TaskId(Uuid::from_u128(7));
    assert_eq!(
        a.confirmation_digest(),
        b.confirmation_digest(),
        "no ids, no times"
    );
    b.tasks[0].kind = TaskKind::Action {
        action: Action::new(ActionName::parse("okta.clear_sessions").unwrap()),
    };
    assert_eq!(
        a.confirmation_digest(),
        b.confirmation_digest(),
        "a task the confirmation does not release is not in it"
    );
    b.tasks[1].account.as_mut().unwrap().external_id = "someone-else".into();
    assert_ne!(a.confirmation_digest(), b.confirmation_digest());
    let mut c = unconfirmed(plan(&specs));
    c.policy = "policy-1".into();
    assert_ne!(a.confirmation_digest(), c.confirmation_digest());
}

#[test]
fn a_task_skipped_before_its_call_ends_skipped() {
    let mut h = Harness::new(plan(&[
        Spec::action("okta.suspend"),
        Spec::action("okta.delete").after(&[0]),
    ]));
    h.ok(Event::Submitted);
    let skip = Event::TaskSkipped {
        task: tid(0),
        reason: SkipReason::Protected,
    };
    h.refuse(
        skip.clone(),
        MachineError::InvalidTransition {
            task: tid(0),
            state: "pending",
            event: "task_skipped",
        },
    );
    h.ok(started(0));
    h.ok(skip);
    assert_eq!(
        h.state(0),
        &TaskState::Skipped {
            reason: SkipReason::Protected
        }
    );
    assert_eq!(
        h.state(1),
        &TaskState::Skipped {
            reason: SkipReason::DependencyFailed(tid(0))
        }
    );
    assert_eq!(h.run.state, RunState::Completed);
}

#[test]
fn a_done_delegation_is_watched_for_a_reopen_while_the_run_is_open() {
    let mut h = Harness::new(plan(&[
        Spec::delegation("salesforce", DelegateVia::Jira),
        Spec::action("okta.delete").at(30 * DAY),
    ]));
    h.ok(Event::Submitted);
    h.ok(started(0));
    h.ok(delegated(0, ticket("IT-1", None), at(60)));
    h.advance_to(at(60));
    h.ok(Event::DelegationDone {
        task: tid(0),
        detail: None,
        next_poll: Some(at(120)),
    });
    assert!(h.state(0).is_completed());
    assert_eq!(h.task(0).due_at, Some(at(120)), "still watched");
    h.advance_to(at(120));
    assert_eq!(h.claim(0), ClaimCommand::Poll);
    h.ok(reopened(0, ticket("IT-1", Some("sam")), at(180)));
    assert!(matches!(h.state(0), TaskState::Delegated { .. }));
    assert_eq!(h.task(0).finished_at, None);
    h.advance_to(at(180));
    h.ok(Event::DelegationDone {
        task: tid(0),
        detail: None,
        next_poll: Some(at(240)),
    });
    // The run ends with the cleanup stage: watching stops.
    h.advance_to(at(30 * DAY));
    h.ok(started(1));
    h.ok(succeeded(1, Outcome::Done));
    assert_eq!(h.run.state, RunState::Completed);
    assert_eq!(h.task(0).due_at, None, "no watching after the run ended");
    assert_eq!(h.claim(0), ClaimCommand::Nothing);
}

/// A vendor job still running (`in_progress`, hint 10 min).
fn in_progress() -> ErrorRecord {
    ErrorRecord {
        kind: ErrorKind::InProgress,
        retry: RetryClass::Retryable {
            after: Some(secs(600)),
        },
        operation: "google.transfer_data".to_owned(),
        message: "data transfer t1 is inProgress".to_owned(),
        context: Vec::new(),
    }
}

#[test]
fn a_vendor_job_in_progress_is_checked_on_without_spending_attempts() {
    let mut run = plan(&[Spec::action("google.transfer_data")]);
    run.retry = RetryPolicy {
        max_attempts: 3,
        max_elapsed: secs(3_600),
    };
    let mut h = Harness::new(run);
    h.ok(Event::Submitted);
    // Twenty checks, 10 min apart (3 h 20 min): far past both the attempt and the time budget.
    for i in 0..20_i64 {
        h.advance_to(at(i * 600));
        assert_eq!(h.claim(0), ClaimCommand::Start, "check {i}");
        h.ok(started(0));
        h.ok(errored(0, in_progress(), 1_000));
        assert_eq!(h.task(0).attempts, 0, "a check is not an attempt");
        assert_eq!(retrying_not_before(h.state(0)), at((i + 1) * 600));
    }
    h.advance_to(at(20 * 600));
    h.ok(started(0));
    h.ok(succeeded(0, Outcome::Done));
    assert_eq!(*h.state(0), completed(Outcome::Done));
    assert_eq!(h.run.state, RunState::Completed);
}

#[test]
fn a_vendor_job_running_past_the_limit_fails_exhausted() {
    let mut h = Harness::new(plan(&[Spec::action("google.transfer_data")]));
    h.ok(Event::Submitted);
    h.ok(started(0));
    h.ok(errored(0, in_progress(), 1_000));
    // The last check that still fits the limit, then one past it.
    let limit = super::IN_PROGRESS_LIMIT.as_secs() as i64;
    h.advance_to(at(limit - 600));
    h.ok(started(0));
    h.ok(errored(0, in_progress(), 1_000));
    assert_eq!(retrying_not_before(h.state(0)), at(limit));
    h.advance_to(at(limit));
    h.ok(started(0));
    h.ok(errored(0, in_progress(), 1_000));
    let error = failed_error(h.state(0));
    assert_eq!(error.kind, ErrorKind::InProgress);
    assert_eq!(error.retry, RetryClass::Exhausted);
}

#[test]
fn a_cancelled_run_stops_checking_on_a_vendor_job() {
    let mut h = Harness::new(plan(&[Spec::action("google.transfer_data")]));
    h.ok(Event::Submitted);
    h.ok(started(0));
    h.ok(cancel());
    h.ok(errored(0, in_progress(), 1_000));
    assert!(
        matches!(h.state(0), TaskState::Failed { .. }),
        "{:?}",
        h.state(0)
    );
    assert_eq!(h.run.state, RunState::Cancelled);
}

#[test]
fn a_declined_delegation_fails_the_task_and_is_refused_elsewhere() {
    let mut h = Harness::new(plan(&[
        Spec::delegation("salesforce", DelegateVia::Jira),
        Spec::delegation("workday", DelegateVia::Jira),
    ]));
    h.ok(Event::Submitted);
    h.ok(started(0));
    let declined = |i: usize| Event::DelegationDeclined {
        task: tid(i),
        reason: "IT-1: resolution \"Won't Do\"".to_owned(),
    };
    // Not delegated yet: refused, nothing changes.
    assert!(h.try_apply(declined(1)).is_err());
    h.ok(delegated(0, ticket("IT-1", None), at(60)));
    h.advance_to(at(60));
    h.ok(declined(0));
    match h.state(0) {
        TaskState::Failed { error } => {
            assert_eq!(error.kind, ErrorKind::Declined);
            assert_eq!(error.retry, RetryClass::Permanent);
            assert!(error.message.contains("Won't Do"), "{}", error.message);
            assert!(
                error
                    .context
                    .contains(&("ticket".to_owned(), "IT-1".to_owned()))
            );
        }
        other => panic!("expected failed, got {other:?}"),
    }
    assert_eq!(
        h.task(0).due_at,
        None,
        "a declined task is not polled again"
    );
    // Declined twice: refused.
    assert!(h.try_apply(declined(0)).is_err());
}

/// The machine, not the engine, decides which starts take the snapshot first (issue 27 item
/// 3): only a reversible action's first attempt on an account; not a retry (it finds the
/// stored snapshot), not an irreversible action, not a task without an account, not a
/// delegation.
#[test]
fn only_a_reversible_actions_first_start_takes_the_snapshot_first() {
    let mut h = Harness::new(plan(&[
        Spec::action("okta.suspend").reversible(),
        Spec::action("okta.clear_sessions"),
        Spec::action("google.suspend").reversible().no_account(),
        Spec::delegation("laptop", DelegateVia::Jira),
    ]));
    h.ok(Event::Submitted);
    assert!(snapshot_before_start(h.task(0)));
    assert!(!snapshot_before_start(h.task(1)), "irreversible");
    assert!(!snapshot_before_start(h.task(2)), "no account");
    assert!(!snapshot_before_start(h.task(3)), "a delegation");
    h.ok(started(0));
    assert!(!snapshot_before_start(h.task(0)), "running");
    h.ok(errored(0, retryable(None), 1_000));
    assert!(matches!(h.state(0), TaskState::Retrying { .. }));
    assert!(!snapshot_before_start(h.task(0)), "a retry");
}

/// The machine, not the engine, decides which tasks a commit takes along (issue 27 item 3):
/// the pending actions on an account the commit made due now, in plan order, started by the
/// commit unless reversible (their snapshot comes first); not a task already due before (a
/// claim may hold it), a later stage, a delegation, or anything once the run is cancelled.
#[test]
fn a_commit_takes_along_the_actions_it_made_due() {
    let mut h = Harness::new(plan(&[
        Spec::action("okta.suspend"),
        Spec::action("google.suspend").after(&[0]).reversible(),
        Spec::action("google.signout").after(&[0]),
        Spec::delegation("laptop", DelegateVia::Jira).after(&[0]),
        Spec::action("slack.deactivate").after(&[0]).at(60),
        Spec::action("github.remove_member"),
    ]));
    h.ok(Event::Submitted);
    h.ok(started(0));
    let before = h.run.clone();
    h.ok(succeeded(0, Outcome::Done));
    let taken: Vec<(TaskId, bool)> = take_along(&before, &h.run, h.now)
        .map(|(t, start)| (t.id, start))
        .collect();
    assert_eq!(taken, vec![(tid(1), false), (tid(2), true)]);
    h.ok(cancel());
    assert_eq!(take_along(&before, &h.run, h.now).count(), 0);
}

/// The machine, not the engine, decides lease times (issue 27 item 3): a lease ends
/// `lease_for` after it is taken (the calendar's end at most); a start renews it only after a
/// wait longer than a quarter of it; a call under way renews it every third; a claimed task
/// with nothing to do is released due at its `due_at`.
#[test]
fn lease_times_come_from_the_machine() {
    let lease_for = secs(300);
    assert_eq!(lease_until(t0(), lease_for), at(300));
    assert_eq!(lease_until(t0(), Duration::MAX), DateTime::<Utc>::MAX_UTC);
    assert!(!renew_after_wait(secs(75), lease_for));
    assert!(renew_after_wait(secs(76), lease_for));
    assert_eq!(renew_every(lease_for), secs(100));

    let mut h = Harness::new(plan(&[
        Spec::action("okta.suspend"),
        Spec::action("slack.deactivate").at(60),
    ]));
    h.ok(Event::Submitted);
    assert_eq!(release_due(&h.run, tid(0)), Some(t0()));
    assert_eq!(release_due(&h.run, tid(1)), Some(at(60)), "a later stage");
    h.ok(started(0));
    h.ok(succeeded(0, Outcome::Done));
    assert_eq!(release_due(&h.run, tid(0)), None, "ended: never due again");
    assert_eq!(release_due(&h.run, tid(9)), None, "not the run's");
}
