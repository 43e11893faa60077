//! offboard delegate by email (SMTP).
//!
//! [`EmailDelegate`] implements [`offboard_core::Delegate`] for policies with
//! `method = "delegate"`, `via = "email"`: it writes to the app's owner with a link to the
//! host's task page, `<task_url>/<id>?token=<link token>`. Tokens are signed (HMAC-SHA256 over
//! the task id, the token's id and an expiry, base64url), expire, and are good only while the
//! task's record lists their id.
//!
//! - **Open** is idempotent by the request's idempotency key: the task is recorded in the
//!   [`EmailState`] first (atomic on the key), and the email is sent only while the record says
//!   it was not. A crash between sending and recording the send can repeat the email (SMTP
//!   gives no idempotency); it never creates a second task.
//! - **State**: tasks are kept in the engine's store ([`EmailBuilder::with_store`] with the
//!   store the engine is built with; [`StoreEmailState`]; the builder refuses to build without
//!   a state), so a restarted delegate finds the tasks it opened: an `open` repeated after a
//!   restart sends nothing, links mailed before it still work, and a used link stays used.
//!   [`MemoryEmailState`] ([`EmailBuilder::with_state`]) is for tests and demos: it forgets
//!   every task on restart, and the next `open` of one emails its owner again.
//! - **Status** reads the task; while it is open and a reminder period (default 3 days) has
//!   passed since the owner was last written to, it sends a reminder with a fresh link, up to
//!   `max_reminders` (default 3); one period after the last reminder it escalates once to
//!   `escalate_to`. Time comes from the injected [`Clock`].
//! - The ticket's `url` is the task page **without** the token: tickets are persisted and
//!   audited, and a token is a capability to open and complete the task.
//! - SMTP: STARTTLS (default), implicit TLS, or plain for a local test sink; rustls with the
//!   aws-lc-rs provider; an extra root CA can be trusted.
//!   Or no SMTP at all: [`EmailBuilder::with_pickup_dir`] writes each message as an `.eml` file
//!   (a mail server's pickup directory, or a demo).
//!
//! [`EmailNotifier`] ([`notify`]) is the engine's email notifier: it tells the manager, HR
//! and IT when a run starts, finishes or fails and when a delegated task is overdue.
//!
//! # The task page: GET shows, POST completes
//! Mail scanners and link previews fetch links before anyone clicks, so following the link
//! must change nothing. The host's task page (an HTTP endpoint at `task_url`) does this:
//!
//! | request | host calls | effect |
//! |---|---|---|
//! | `GET <task_url>/<id>?token=<link token>` | [`EmailDelegate::view`] | none: shows the task ([`TaskPage`]) and, while it is open, a form carrying [`TaskPage::form_token`] |
//! | `POST <task_url>/<id>`, body `token=<form token>` | [`EmailDelegate::complete`] | marks the task done; the next [`Delegate::status`] reads `Done` |
//! | `POST <task_url>/<id>/cant-do`, body `token=<form token>&reason=<text>` | [`EmailDelegate::decline`] | records that the owner can't do it, and why; the next [`Delegate::status`] reads `Declined` |
//!
//! [`web::router`] is that page, ready to mount: server-side HTML with every field escaped, no
//! JavaScript, readable on a phone, with clear pages for expired, used and unknown links; it
//! tells the engine as soon as a task is answered.
//!
//! The link's token completes nothing: [`EmailDelegate::complete`] refuses it
//! (`Unauthenticated`), and takes only a form token, which [`EmailDelegate::view`] mints when
//! the page is shown. A host calls `complete` only from a `POST` handler, with the token read
//! from the request body, never from a URL. A completed task's tokens are all refused after:
//! each link completes once.
//!
//! # Example
//! ```
//! use std::sync::Arc;
//!
//! use offboard_core::{Delegate, DelegateVia, MemoryStore};
//! use offboard_email::{EmailBuilder, SmtpSecurity};
//!
//! // The engine's store (SQLite or PostgreSQL from offboard-store in production).
//! let store = Arc::new(MemoryStore::new());
//! let email = EmailBuilder::new()
//!     .with_smtp("smtp.example.com", 587, SmtpSecurity::StartTls)
//!     .with_from("offboard@example.com")
//!     .with_task_url("https://admin.example.com/offboard/tasks")
//!     .with_signing_key("a-long-random-signing-key-32-bytes")
//!     .with_app_owner("salesforce", "crm-owner@example.com")
//!     .with_store(store)
//!     .build()
//!     .unwrap();
//! assert_eq!(email.via(), DelegateVia::Email);
//! ```
#![forbid(unsafe_code)]

mod client;
pub mod config;
pub mod error;
pub mod notify;
mod state;
mod token;
pub mod web;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use offboard_core::engine::Clock;
use offboard_core::{
    AppId, Delegate, DelegateVia, DelegationRequest, Error, ErrorKind, Result, RunId, Secret,
    Ticket, TicketStatus,
};

use crate::client::{Outgoing, SmtpClient};
pub use crate::config::{ConfigKey, EmailBuilder, EmailConfig, SmtpSecurity};
pub use crate::notify::{EmailNotifier, EmailNotifierBuilder};
pub use crate::state::{
    EMAIL_NAMESPACE, EmailState, EmailTask, MarkDone, MemoryEmailState, StoreEmailState,
};
use crate::token::Purpose;

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

/// The longest reason [`EmailDelegate::decline`] takes, in characters.
pub const MAX_REASON_CHARS: usize = 1000;

/// What the task page shows for a link's token ([`EmailDelegate::view`]).
///
/// Its `Debug` never shows the form token.
#[derive(Clone)]
#[non_exhaustive]
pub struct TaskPage {
    /// The task's ticket (its page URL carries no token).
    pub ticket: Ticket,
    /// The person leaving (name or email).
    pub person: String,
    /// The person's email.
    pub person_email: String,
    /// The person's login in the app, when the request named it.
    pub login: Option<String>,
    /// The app whose access is to be removed.
    pub app: AppId,
    /// The offboarding run that asked.
    pub run: RunId,
    /// When it should be done.
    pub due: DateTime<Utc>,
    /// When the owner answered (`None`: still open).
    pub done_at: Option<DateTime<Utc>>,
    /// Who answered.
    pub done_by: Option<String>,
    /// Why the owner can't do it, when that was the answer.
    pub declined: Option<String>,
    /// When the link (and the form) stop working.
    pub expires: DateTime<Utc>,
    form_token: Option<Secret>,
}

impl TaskPage {
    /// The token the page's form posts back (hidden field `token`) to complete the task, for
    /// [`EmailDelegate::complete`]; `None` once the task is done. A secret: put it in the
    /// form's body, never in a URL or a log.
    pub fn form_token(&self) -> Option<&str> {
        self.form_token.as_ref().map(Secret::expose)
    }
}

impl fmt::Debug for TaskPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskPage")
            .field("ticket", &self.ticket)
            .field("app", &self.app)
            .field("run", &self.run)
            .field("due", &self.due)
            .field("done_at", &self.done_at)
            .field("done_by", &self.done_by)
            .field("declined", &self.declined)
            .field("expires", &self.expires)
            .field(
                "form_token",
                &self.form_token.as_ref().map(|_| "<redacted>"),
            )
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
        let smtp = SmtpClient::new(&(&config).into())?;
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

    /// The path of `task_url` (`/offboard/tasks` for `https://admin.example.com/offboard/tasks`):
    /// where the host mounts [`web::router`] so it serves the links the emails carry.
    pub fn task_path(&self) -> String {
        url::Url::parse(&self.config.task_url)
            .map(|u| u.path().trim_end_matches('/').to_owned())
            .unwrap_or_default()
    }

    /// Now, by the delegate's clock.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The task a form token names, checking its signature and expiry only (the task page
    /// refuses a form posted to another task's path before answering anything).
    pub(crate) fn form_task(&self, form_token: &str, now: DateTime<Utc>) -> Result<String> {
        token::verify(&self.config.signing_key, Purpose::Form, form_token, now).map(|c| c.task)
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

    /// Writes to the owner with a link carrying a fresh link token, whose id is recorded in
    /// the task before the email goes out (so the link works even if the process dies right
    /// after sending).
    async fn send_to_owner(&self, t: &EmailTask, kind: Kind, now: DateTime<Utc>) -> Result<()> {
        let expires = chrono::Duration::from_std(self.config.token_ttl)
            .ok()
            .and_then(|ttl| now.checked_add_signed(ttl))
            .ok_or_else(|| Error::config("token_ttl", "the link's expiry is past the calendar"))?;
        let token_id = uuid::Uuid::new_v4().simple().to_string();
        let token = token::sign(
            &self.config.signing_key,
            Purpose::Link,
            &t.id,
            &token_id,
            expires,
        )?;
        let link = format!("{}?token={token}", self.task_page(&t.id));
        self.state.record_token(&t.id, &token_id).await?;
        let subject = match kind {
            Kind::First => format!("Action needed: remove {}'s access to {}", t.person, t.app),
            Kind::Reminder(n) => format!("Reminder {n}: remove {}'s access to {}", t.person, t.app),
        };
        let body = format!(
            "Hello,\n\n\
             {person} ({email}) is leaving. Please remove their access to {app} by {due}.\n\n\
             When it is done, open this link and confirm on the page:\n{link}\n\n\
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
                ..Outgoing::default()
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
                ..Outgoing::default()
            })
            .await
    }

    /// The task a link's token opens, as the task page shows it; changes nothing.
    ///
    /// # Behavior
    /// The host's page calls it for `GET <task_url>/<id>?token=<link token>`. The token's
    /// signature is checked in constant time, then its expiry against `now`, then that the
    /// task's record lists its id. Nothing is written: a mail scanner that fetches the link
    /// completes nothing. While the task is open the page carries a form token
    /// ([`TaskPage::form_token`]) for [`complete`](Self::complete), expiring with the link.
    ///
    /// # Errors
    /// `Unauthenticated` "invalid task token" (wrong key, tampered, malformed, or a token this
    /// task never issued), "task token expired", or for a form token; `NotFound` for a task
    /// the state does not know. Errors never quote the token.
    pub async fn view(&self, link_token: &str, now: DateTime<Utc>) -> Result<TaskPage> {
        let (task, claims) = self.task_of(Purpose::Link, link_token, now).await?;
        let form_token = match task.done_at {
            Some(_) => None,
            None => Some(Secret::new(token::sign(
                &self.config.signing_key,
                Purpose::Form,
                &task.id,
                &claims.token_id,
                claims.expires,
            )?)),
        };
        Ok(TaskPage {
            ticket: self.ticket(&task),
            person: task.person,
            person_email: task.person_email,
            login: task.login,
            app: task.app,
            run: task.run,
            due: task.due,
            done_at: task.done_at,
            done_by: task.done_by,
            declined: task.declined,
            expires: claims.expires,
            form_token,
        })
    }

    /// Marks a task done: the host's task page calls it for the `POST` of its form, with the
    /// token from the request body ([`TaskPage::form_token`]).
    ///
    /// # Behavior
    /// Call it only from a `POST` handler, with the token read from the body, never from a
    /// URL: links are fetched by mail scanners. A link's token (the one in the URL) is
    /// refused, so a handler that wrongly completes on `GET` fails instead of completing. The
    /// form token is checked as [`view`](Self::view) checks a link's, then the task is marked
    /// done by its owner atomically in the [`EmailState`]. A token is good once: after the
    /// task is done, the same (or any other) token for it is refused.
    ///
    /// # Errors
    /// `Unauthenticated` "invalid task token" (wrong key, tampered, malformed, or a token
    /// this task never issued), "task token expired", or for a link's token; `NotFound` for a
    /// task the state does not know; `Conflict` "task token already used" when this token
    /// completed the task, "task already done" when another one did. Errors never quote the
    /// token.
    pub async fn complete(&self, form_token: &str, now: DateTime<Utc>) -> Result<Ticket> {
        self.answer(form_token, None, now).await
    }

    /// Records that the owner can't do the task, and why: the host's task page calls it for
    /// the `POST` of its "Can't do it" form, with the form token and the reason from the body.
    ///
    /// # Behavior
    /// As [`complete`](Self::complete) (the same token, checked the same way, good once for
    /// either answer), but the task is answered as declined with `reason` (trimmed): the next
    /// [`Delegate::status`] reads [`TicketStatus::Declined`] with the owner and the reason, and
    /// the engine fails the task with that reason in its audit trail (the access was not
    /// removed, so the run needs a person).
    ///
    /// # Errors
    /// `InvalidInput` for an empty reason or one over [`MAX_REASON_CHARS`] characters (nothing
    /// changes); otherwise as [`complete`](Self::complete).
    pub async fn decline(
        &self,
        form_token: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Ticket> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
            return Err(Error::invalid_input(format!(
                "the reason must be 1 to {MAX_REASON_CHARS} characters"
            ))
            .with_operation("email.decline"));
        }
        self.answer(form_token, Some(reason), now).await
    }

    /// Answers the task a form token is good for: done, or declined for a reason.
    async fn answer(
        &self,
        form_token: &str,
        declined: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Ticket> {
        let (task, claims) = self.task_of(Purpose::Form, form_token, now).await?;
        let id = task.id;
        let done = |message: &str| {
            Error::new(ErrorKind::Conflict, message)
                .fatal()
                .with_operation(Purpose::Form.operation())
                .with_context("task", &id)
        };
        let marked = match declined {
            None => {
                self.state
                    .mark_done(&id, now, &task.owner, &claims.token_id)
                    .await?
            }
            Some(reason) => {
                self.state
                    .mark_declined(&id, now, &task.owner, &claims.token_id, reason)
                    .await?
            }
        };
        match marked {
            MarkDone::Marked(task) => {
                tracing::info!(task = %id, declined = declined.is_some(), "email delegation answered through its page");
                Ok(self.ticket(&task))
            }
            MarkDone::AlreadyDone => {
                let by_this = self
                    .state
                    .get(&id)
                    .await?
                    .is_some_and(|t| t.done_token.as_deref() == Some(claims.token_id.as_str()));
                Err(done(if by_this {
                    "task token already used: the task is already done"
                } else {
                    "task already done (through another link)"
                }))
            }
            MarkDone::NotFound => Err(Self::no_task(&id)),
        }
    }

    fn no_task(id: &str) -> Error {
        Error::not_found("no such email task").with_context("task", id)
    }

    /// The task a `purpose` token is good for, with the token's claims.
    async fn task_of(
        &self,
        purpose: Purpose,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<(EmailTask, token::Claims)> {
        let claims = token::verify(&self.config.signing_key, purpose, token, now)?;
        let task = self
            .state
            .get(&claims.task)
            .await?
            .ok_or_else(|| Self::no_task(&claims.task))?;
        if !task.tokens.contains(&claims.token_id) {
            return Err(Error::new(ErrorKind::Unauthenticated, "invalid task token")
                .with_operation(purpose.operation())
                .with_context("task", &task.id));
        }
        Ok((task, claims))
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
            login: request.login.clone(),
            owner,
            due: request.due,
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
        if let Some(reason) = &task.declined {
            return Ok(TicketStatus::Declined {
                ticket: self.ticket(&task),
                reason: format!(
                    "{} can't do it: {reason}",
                    task.done_by.as_deref().unwrap_or(&task.owner)
                ),
            });
        }
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
