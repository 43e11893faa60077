//! offboard delegate by email (SMTP).
//!
//! [`EmailDelegate`] implements [`offboard_core::Delegate`] for policies with
//! `method = "delegate"`, `via = "email"`: it writes to the app's owner with a link to the
//! host's task page, `<task_url>/<id>?token=<token>`. The token is signed (HMAC-SHA256 over the
//! task id and an expiry, base64url) and expires; the host's page calls
//! [`EmailDelegate::complete`] with it, which marks the task done so the next
//! [`Delegate::status`] reads `Done`.
//!
//! - **Open** is idempotent by the request's idempotency key: the task is recorded in the
//!   [`EmailState`] first (atomic on the key), and the email is sent only while the record says
//!   it was not. A crash between sending and recording the send can repeat the email (SMTP
//!   gives no idempotency); it never creates a second task.
//! - **Status** reads the task; while it is open and a reminder period (default 3 days) has
//!   passed since the owner was last written to, it sends a reminder with a fresh link, up to
//!   `max_reminders` (default 3); one period after the last reminder it escalates once to
//!   `escalate_to`. Time comes from the injected [`Clock`].
//! - The ticket's `url` is the task page **without** the token: tickets are persisted and
//!   audited, and the token is a capability to complete the task.
//! - SMTP: STARTTLS (default), implicit TLS, or plain for a local test sink; rustls with the
//!   aws-lc-rs provider; an extra root CA can be trusted.
//!
//! # Example
//! ```
//! use offboard_core::{Delegate, DelegateVia};
//! use offboard_email::{EmailBuilder, SmtpSecurity};
//!
//! let email = EmailBuilder::new()
//!     .with_smtp("smtp.example.com", 587, SmtpSecurity::StartTls)
//!     .with_from("offboard@example.com")
//!     .with_task_url("https://admin.example.com/offboard/tasks")
//!     .with_signing_key("a-long-random-signing-key-32-bytes")
//!     .with_app_owner("salesforce", "crm-owner@example.com")
//!     .build()
//!     .unwrap();
//! assert_eq!(email.via(), DelegateVia::Email);
//! ```
#![forbid(unsafe_code)]

mod client;
pub mod config;
pub mod error;
mod state;
mod token;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use offboard_core::engine::Clock;
use offboard_core::{
    Delegate, DelegateVia, DelegationRequest, Error, ErrorKind, Result, Ticket, TicketStatus,
};

use crate::client::{Outgoing, SmtpClient};
pub use crate::config::{ConfigKey, EmailBuilder, EmailConfig, SmtpSecurity};
pub use crate::state::{EmailState, EmailTask, MarkDone, MemoryEmailState};

/// The email delegate. Build it with [`EmailBuilder`].
pub struct EmailDelegate {
    config: EmailConfig,
    state: Arc<dyn EmailState>,
    clock: Arc<dyn Clock>,
    smtp: SmtpClient,
}

impl fmt::Debug for EmailDelegate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailDelegate")
            .field("config", &self.config)
            .field("state", &self.state)
            .field("smtp", &self.smtp)
            .finish_non_exhaustive()
    }
}

/// What kind of message is going out.
#[derive(Debug, Clone, Copy)]
enum Kind {
    First,
    Reminder(u32),
}

impl EmailDelegate {
    /// A delegate over a validated configuration, a state and a clock.
    ///
    /// # Errors
    /// `Config` when the TLS set-up or the sender is invalid.
    pub fn new(
        config: EmailConfig,
        state: Arc<dyn EmailState>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let smtp = SmtpClient::new(&config)?;
        Ok(Self {
            config,
            state,
            clock,
            smtp,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &EmailConfig {
        &self.config
    }

    /// The task page without a token (what the ticket shows).
    pub fn task_page(&self, id: &str) -> String {
        format!("{}/{id}", self.config.task_url)
    }

    fn ticket(&self, t: &EmailTask) -> Ticket {
        Ticket {
            key: t.id.clone(),
            url: self.task_page(&t.id),
            assignee: Some(t.owner.clone()),
        }
    }

    fn owner_of(&self, request: &DelegationRequest) -> Result<String> {
        self.config
            .owners
            .get(&request.app)
            .or(self.config.owner.as_ref())
            .cloned()
            .ok_or_else(|| {
                Error::config(format!("owners.{}", request.app), "no owner for this app").fatal()
            })
    }

    /// The link with a fresh signed token.
    fn link(&self, t: &EmailTask, now: DateTime<Utc>) -> Result<(String, DateTime<Utc>)> {
        let expires = chrono::Duration::from_std(self.config.token_ttl)
            .ok()
            .and_then(|ttl| now.checked_add_signed(ttl))
            .ok_or_else(|| Error::config("token_ttl", "the link's expiry is past the calendar"))?;
        let token = token::sign(&self.config.signing_key, &t.id, expires)?;
        Ok((format!("{}?token={token}", self.task_page(&t.id)), expires))
    }

    async fn send_to_owner(&self, t: &EmailTask, kind: Kind, now: DateTime<Utc>) -> Result<()> {
        let (link, expires) = self.link(t, now)?;
        let subject = match kind {
            Kind::First => format!("Action needed: remove {}'s access to {}", t.person, t.app),
            Kind::Reminder(n) => format!("Reminder {n}: remove {}'s access to {}", t.person, t.app),
        };
        let body = format!(
            "Hello,\n\n\
             {person} ({email}) is leaving. Please remove their access to {app} by {due}.\n\n\
             When it is done, open this link to confirm:\n{link}\n\n\
             The link works until {expires}.\n\
             Offboarding run {run}, task {task}.\n",
            person = t.person,
            email = t.person_email,
            app = t.app,
            due = t.due.format("%Y-%m-%d %H:%M UTC"),
            expires = expires.format("%Y-%m-%d %H:%M UTC"),
            run = t.run,
            task = t.task,
        );
        self.smtp
            .send(&Outgoing {
                to: t.owner.clone(),
                subject,
                body,
            })
            .await
    }

    async fn escalate(&self, t: &EmailTask, to: &str) -> Result<()> {
        let subject = format!(
            "Escalation: {}'s access to {} is still not removed",
            t.person, t.app
        );
        let body = format!(
            "Hello,\n\n\
             {owner} was asked on {opened} to remove {person}'s ({email}) access to {app} \
             (due {due}) and was reminded {n} times; the task is still open.\n\n\
             Task page: {page}\n\
             Offboarding run {run}, task {task}.\n",
            owner = t.owner,
            opened = t.opened_at.format("%Y-%m-%d"),
            person = t.person,
            email = t.person_email,
            app = t.app,
            due = t.due.format("%Y-%m-%d %H:%M UTC"),
            n = t.reminders,
            page = self.task_page(&t.id),
            run = t.run,
            task = t.task,
        );
        self.smtp
            .send(&Outgoing {
                to: to.to_string(),
                subject,
                body,
            })
            .await
    }

    /// Marks the task of a link's token done; the host's task page calls it.
    ///
    /// # Behavior
    /// The token's signature is checked in constant time, then its expiry against `now`. A
    /// token is good once: after the task is done, the same (or any other) token for it is
    /// refused as replayed.
    ///
    /// # Errors
    /// `Unauthenticated` "invalid task token" (wrong key, tampered, malformed) or "task token
    /// expired"; `NotFound` for a task this state does not know; `Conflict` "task token
    /// already used" when the task is already done.
    pub async fn complete(&self, token: &str, now: DateTime<Utc>) -> Result<Ticket> {
        let id = token::verify(&self.config.signing_key, token, now)?;
        let owner = self
            .state
            .get(&id)
            .await?
            .map(|t| t.owner)
            .ok_or_else(|| Error::not_found("no such email task").with_context("task", &id))?;
        let task = match self.state.mark_done(&id, now, &owner).await? {
            MarkDone::Marked(task) => *task,
            MarkDone::AlreadyDone => {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    "task token already used: the task is already done",
                )
                .fatal()
                .with_operation("email.complete")
                .with_context("task", &id));
            }
            MarkDone::NotFound => {
                return Err(Error::not_found("no such email task").with_context("task", &id));
            }
        };
        tracing::info!(task = %id, "email delegation completed through its link");
        Ok(self.ticket(&task))
    }
}

#[async_trait]
impl Delegate for EmailDelegate {
    fn via(&self) -> DelegateVia {
        DelegateVia::Email
    }

    /// Records the task (once per idempotency key) and sends the first email unless sent.
    ///
    /// # Errors
    /// `InvalidInput` for an empty idempotency key; `Config` when the app has no owner; SMTP
    /// errors as classified in [`error`].
    async fn open(&self, request: &DelegationRequest) -> Result<Ticket> {
        if request.idempotency_key.is_empty() {
            return Err(
                Error::invalid_input("delegation without an idempotency key")
                    .with_operation("email.open"),
            );
        }
        let owner = self.owner_of(request)?;
        let now = self.clock.now();
        let person = if request.person.display_name.is_empty() {
            request.person.email.clone()
        } else {
            request.person.display_name.clone()
        };
        let fresh = EmailTask {
            id: format!("email-{}", uuid::Uuid::new_v4().simple()),
            idempotency_key: request.idempotency_key.clone(),
            run: request.run,
            task: request.task,
            app: request.app.clone(),
            person,
            person_email: request.person.email.clone(),
            owner,
            due: request.due,
            opened_at: now,
            sent_at: None,
            last_contact: None,
            reminders: 0,
            escalated_at: None,
            done_at: None,
            done_by: None,
        };
        let task = self.state.insert_if_absent(fresh).await?;
        if task.sent_at.is_none() {
            self.send_to_owner(&task, Kind::First, now).await?;
            self.state.record_sent(&task.id, now).await?;
        }
        Ok(self.ticket(&task))
    }

    /// Reads the task; sends a due reminder or the escalation.
    ///
    /// # Errors
    /// `NotFound` for an unknown task; SMTP errors of a due reminder (retried at the next
    /// poll).
    async fn status(&self, ticket: &Ticket) -> Result<TicketStatus> {
        let task = self.state.get(&ticket.key).await?.ok_or_else(|| {
            Error::not_found("no such email task")
                .with_operation("email.status")
                .with_context("task", &ticket.key)
        })?;
        if task.done_at.is_some() {
            return Ok(TicketStatus::Done {
                ticket: self.ticket(&task),
                by: task.done_by.clone(),
            });
        }
        let now = self.clock.now();
        let every = chrono::Duration::from_std(self.config.remind_every)
            .unwrap_or(chrono::Duration::days(3));
        let due = task.last_contact.is_some_and(|last| now - last >= every);
        if due && task.reminders < self.config.max_reminders {
            let n = task.reminders + 1;
            self.send_to_owner(&task, Kind::Reminder(n), now).await?;
            self.state.record_reminder(&task.id, n, now).await?;
        } else if due
            && task.escalated_at.is_none()
            && let Some(to) = self.config.escalate_to.clone()
        {
            self.escalate(&task, &to).await?;
            self.state.record_escalation(&task.id, now).await?;
        }
        Ok(TicketStatus::Open {
            ticket: self.ticket(&task),
        })
    }
}
