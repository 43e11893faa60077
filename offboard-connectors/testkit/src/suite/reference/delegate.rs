//! The reference delegate: human tasks kept in memory, driven by the test.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use offboard_core::{
    Delegate, DelegateVia, DelegationRequest, Error, Result, Ticket, TicketStatus,
};

use super::fault::{Fault, Faults};

/// A ticket of the [`ReferenceDelegate`], with everything the test may want to assert on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReferenceTicket {
    /// The ticket as [`Delegate::status`] reports it (key, link, assignee).
    pub ticket: Ticket,
    /// The request that opened it.
    pub request: DelegationRequest,
    /// Whether it is done now.
    pub done: bool,
    /// Who completed it last, if anyone.
    pub done_by: Option<String>,
    /// How many times it was reopened.
    pub reopened: u32,
}

#[derive(Debug, Default)]
struct State {
    /// Tickets in creation order.
    tickets: Vec<ReferenceTicket>,
    /// Index into `tickets` by idempotency key.
    by_key: BTreeMap<String, usize>,
    open_calls: u32,
    status_calls: u32,
    faults: Faults,
}

/// The in-memory reference [`Delegate`], as a Jira project or an email sender.
///
/// # Behavior
/// - [`Delegate::open`] is idempotent by the request's idempotency key: the same key returns the
///   same ticket (as now read) and files nothing. Keys are `OFF-1`, `OFF-2`... (Jira) or
///   `email-1`... (email), with a link to a fake host.
/// - [`Delegate::status`] reads the ticket as the test left it with [`assign`](Self::assign),
///   [`complete`](Self::complete) and [`reopen`](Self::reopen); an unknown key is `NotFound`.
/// - Faults ([`Fault`], ops `open` and `status`) fail calls before they do anything.
///
/// # Example
/// ```
/// use chrono::Utc;
/// use offboard_core::{AppId, Delegate, DelegationRequest, Person, RunId, TaskId, TicketStatus};
/// use offboard_testkit::ReferenceDelegate;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let jira = ReferenceDelegate::jira();
/// let request = DelegationRequest::new(
///     RunId::new_v4(), TaskId::new_v4(), AppId::new("salesforce"),
///     Person::new("p1", "jane@example.com"), Utc::now(), "run1:task1",
/// );
/// let ticket = jira.open(&request).await.unwrap();
/// assert_eq!(jira.open(&request).await.unwrap().key, ticket.key);
/// assert_eq!(jira.tickets_created(), 1);
///
/// jira.complete(&ticket.key, "it-admin");
/// assert!(matches!(jira.status(&ticket).await.unwrap(), TicketStatus::Done { .. }));
/// # }
/// ```
#[derive(Debug)]
pub struct ReferenceDelegate {
    via: DelegateVia,
    default_assignee: Option<String>,
    state: Mutex<State>,
}

impl ReferenceDelegate {
    /// A delegate of the given kind.
    pub fn new(via: DelegateVia) -> Self {
        Self {
            via,
            default_assignee: None,
            state: Mutex::new(State::default()),
        }
    }

    /// A Jira delegate: tickets `OFF-<n>` at `https://jira.example.test/browse/OFF-<n>`.
    pub fn jira() -> Self {
        Self::new(DelegateVia::Jira)
    }

    /// An email delegate: tasks `email-<n>` at `https://offboard.example.test/tasks/email-<n>`.
    pub fn email() -> Self {
        Self::new(DelegateVia::Email)
    }

    /// New tickets start assigned to `who` (e.g. the app owner an email goes to).
    pub fn with_default_assignee(mut self, who: impl Into<String>) -> Self {
        self.default_assignee = Some(who.into());
        self
    }

    /// Every ticket, in creation order.
    pub fn tickets(&self) -> Vec<ReferenceTicket> {
        self.state().tickets.clone()
    }

    /// The ticket with this key.
    pub fn ticket(&self, key: &str) -> Option<ReferenceTicket> {
        self.state()
            .tickets
            .iter()
            .find(|t| t.ticket.key == key)
            .cloned()
    }

    /// The ticket opened with this idempotency key.
    pub fn ticket_for(&self, idempotency_key: &str) -> Option<ReferenceTicket> {
        let state = self.state();
        state
            .by_key
            .get(idempotency_key)
            .map(|&i| state.tickets[i].clone())
    }

    /// How many tickets were filed (repeated opens with a known key file none).
    pub fn tickets_created(&self) -> u32 {
        u32::try_from(self.state().tickets.len()).unwrap_or(u32::MAX)
    }

    /// How many times [`Delegate::open`] was called (failed calls included).
    pub fn open_calls(&self) -> u32 {
        self.state().open_calls
    }

    /// How many times [`Delegate::status`] was called (failed calls included).
    pub fn status_calls(&self) -> u32 {
        self.state().status_calls
    }

    /// Assigns the ticket to `who`.
    ///
    /// # Panics
    /// When no ticket has this key.
    pub fn assign(&self, key: &str, who: impl Into<String>) {
        let who = who.into();
        self.with_ticket(key, |t| t.ticket.assignee = Some(who));
    }

    /// Moves the ticket to the "done" status, by `by`.
    ///
    /// # Panics
    /// When no ticket has this key.
    pub fn complete(&self, key: &str, by: impl Into<String>) {
        let by = by.into();
        self.with_ticket(key, |t| {
            t.done = true;
            t.done_by = Some(by);
        });
    }

    /// Reopens a done ticket (a no-op on an open one).
    ///
    /// # Panics
    /// When no ticket has this key.
    pub fn reopen(&self, key: &str) {
        self.with_ticket(key, |t| {
            if t.done {
                t.done = false;
                t.reopened += 1;
            }
        });
    }

    /// Injects a fault into `open` or `status` calls.
    pub fn inject(&self, fault: Fault) {
        self.state().faults.push(fault);
    }

    /// The next `times` calls of `op` (`open` or `status`) fail with `make()`.
    pub fn fail_next(
        &self,
        op: impl Into<String>,
        times: u32,
        make: impl Fn() -> Error + Send + Sync + 'static,
    ) {
        self.inject(Fault::next(op, times, make));
    }

    /// Removes every injected fault.
    pub fn clear_faults(&self) {
        self.state().faults.clear();
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn with_ticket(&self, key: &str, change: impl FnOnce(&mut ReferenceTicket)) {
        let mut state = self.state();
        let Some(ticket) = state.tickets.iter_mut().find(|t| t.ticket.key == key) else {
            panic!("reference delegate: no ticket {key:?}");
        };
        change(ticket);
    }
}

#[async_trait]
impl Delegate for ReferenceDelegate {
    fn via(&self) -> DelegateVia {
        self.via.clone()
    }

    async fn open(&self, request: &DelegationRequest) -> Result<Ticket> {
        let mut state = self.state();
        state.open_calls += 1;
        if let Some(e) = state.faults.take("open", false) {
            return Err(e);
        }
        if request.idempotency_key.is_empty() {
            return Err(
                Error::invalid_input("delegation without an idempotency key")
                    .with_operation("open"),
            );
        }
        if let Some(&i) = state.by_key.get(&request.idempotency_key) {
            return Ok(state.tickets[i].ticket.clone());
        }
        let n = state.tickets.len() + 1;
        let (key, url) = match self.via {
            DelegateVia::Jira => {
                let key = format!("OFF-{n}");
                let url = format!("https://jira.example.test/browse/{key}");
                (key, url)
            }
            DelegateVia::Email => {
                let key = format!("email-{n}");
                let url = format!("https://offboard.example.test/tasks/{key}");
                (key, url)
            }
        };
        let ticket = Ticket {
            key,
            url,
            assignee: self.default_assignee.clone(),
        };
        state.tickets.push(ReferenceTicket {
            ticket: ticket.clone(),
            request: request.clone(),
            done: false,
            done_by: None,
            reopened: 0,
        });
        state.by_key.insert(request.idempotency_key.clone(), n - 1);
        Ok(ticket)
    }

    async fn status(&self, ticket: &Ticket) -> Result<TicketStatus> {
        let mut state = self.state();
        state.status_calls += 1;
        if let Some(e) = state.faults.take("status", false) {
            return Err(e);
        }
        let Some(t) = state.tickets.iter().find(|t| t.ticket.key == ticket.key) else {
            return Err(
                Error::not_found(format!("no ticket {}", ticket.key)).with_operation("status")
            );
        };
        Ok(if t.done {
            TicketStatus::Done {
                ticket: t.ticket.clone(),
                by: t.done_by.clone(),
            }
        } else {
            TicketStatus::Open {
                ticket: t.ticket.clone(),
            }
        })
    }
}
