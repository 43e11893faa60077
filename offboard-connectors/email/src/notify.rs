//! The email [`Notifier`]: tells the person's manager, HR and IT by email when a run started,
//! a delegated task is overdue, a run finished or failed.
//!
//! One message per notification, to every recipient of its kind (one SMTP transaction), with a
//! plain-text body and an HTML alternative (maud, every field escaped), and a `Message-ID`
//! derived from the notification's id, so the copy a redelivery after a crash sends carries
//! the same id (mail systems and clients fold such duplicates).
//!
//! Recipients per kind (defaults; change them with
//! [`EmailNotifierBuilder::with_recipient`] and [`EmailNotifierBuilder::manager_kinds`]):
//!
//! | who | run started | task overdue | run finished | run failed |
//! |---|---|---|---|---|
//! | the manager (from the run's `Person::manager`, when the record has one) | ✓ | | ✓ | ✓ |
//! | HR ([`EmailNotifierBuilder::with_hr`]) | ✓ | | ✓ | ✓ |
//! | IT ([`EmailNotifierBuilder::with_it`]) | ✓ | ✓ | ✓ | ✓ |
//!
//! A notification with no recipient (no manager known, nobody configured for its kind) sends
//! nothing. Messages carry the run's facts, never a secret: no task-page link (its token is a
//! capability), no ticket link, no error text from the systems.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use maud::{Markup, html};
use offboard_core::notify::{Notification, NotificationKind, Notifier};
use offboard_core::{Error, Result, Secret};
use sha2::{Digest, Sha256};

use crate::client::{Outgoing, SmtpClient, SmtpSettings};
use crate::config::{EmailConfig, SmtpSecurity};

const ALL: [NotificationKind; 4] = [
    NotificationKind::RunStarted,
    NotificationKind::TaskOverdue,
    NotificationKind::RunFinished,
    NotificationKind::RunFailed,
];
const RUN_ONLY: [NotificationKind; 3] = [
    NotificationKind::RunStarted,
    NotificationKind::RunFinished,
    NotificationKind::RunFailed,
];

/// Builds an [`EmailNotifier`].
///
/// # Example
/// ```
/// use offboard_email::notify::EmailNotifier;
/// use offboard_email::SmtpSecurity;
///
/// let mail = EmailNotifier::builder("mail")
///     .with_smtp("smtp.example.com", 587, SmtpSecurity::StartTls)
///     .with_from("offboard@example.com")
///     .with_hr("hr@example.com")
///     .with_it("it-ops@example.com")
///     .build()
///     .unwrap();
/// # let _ = mail;
/// ```
pub struct EmailNotifierBuilder {
    name: String,
    smtp: SmtpSettings,
    manager: BTreeSet<NotificationKind>,
    recipients: Vec<(String, BTreeSet<NotificationKind>)>,
}

impl fmt::Debug for EmailNotifierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailNotifierBuilder")
            .field("name", &self.name)
            .field("smtp", &self.smtp)
            .finish_non_exhaustive()
    }
}

impl EmailNotifierBuilder {
    /// The SMTP relay (default `localhost:587`, STARTTLS).
    pub fn with_smtp(mut self, host: impl Into<String>, port: u16, security: SmtpSecurity) -> Self {
        self.smtp.host = host.into();
        self.smtp.port = port;
        self.smtp.security = security;
        self
    }

    /// Sends as the email delegate does: its relay, credentials, trusted root, sender, timeout
    /// and pickup directory.
    pub fn with_smtp_of(mut self, config: &EmailConfig) -> Self {
        self.smtp = config.into();
        self
    }

    /// SMTP credentials.
    pub fn with_credentials(mut self, username: impl Into<String>, password: Secret) -> Self {
        self.smtp.username = Some(username.into());
        self.smtp.password = Some(password).filter(|p| !p.is_empty());
        self
    }

    /// An extra trusted root certificate (PEM) for the relay.
    pub fn with_root_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.smtp.root_ca_pem = Some(pem.into());
        self
    }

    /// The sender address (required).
    pub fn with_from(mut self, from: impl Into<String>) -> Self {
        self.smtp.from = from.into();
        self
    }

    /// Writes each message as an `.eml` file into `dir` instead of sending it over SMTP.
    pub fn with_pickup_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.smtp.pickup_dir = Some(dir.into());
        self
    }

    /// The SMTP timeout (default 30 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.smtp.timeout = timeout;
        self
    }

    /// HR's address: told when runs start, finish and fail.
    pub fn with_hr(self, address: impl Into<String>) -> Self {
        self.with_recipient(address, &RUN_ONLY)
    }

    /// IT's address: told everything (overdue delegated tasks too).
    pub fn with_it(self, address: impl Into<String>) -> Self {
        self.with_recipient(address, &ALL)
    }

    /// `address` is told about notifications of `kinds`.
    pub fn with_recipient(
        mut self,
        address: impl Into<String>,
        kinds: &[NotificationKind],
    ) -> Self {
        self.recipients
            .push((address.into(), kinds.iter().copied().collect()));
        self
    }

    /// Which kinds the person's manager is told about (default: started, finished, failed;
    /// empty: never).
    pub fn manager_kinds(mut self, kinds: &[NotificationKind]) -> Self {
        self.manager = kinds.iter().copied().collect();
        self
    }

    /// Validates and builds.
    ///
    /// # Errors
    /// `Config` for an empty name (`notify.email.name`), a missing or invalid sender
    /// (`from`), an invalid recipient (`notify.email.recipients`), or a TLS set-up that
    /// fails (`root_ca`).
    pub fn build(self) -> Result<EmailNotifier> {
        if self.name.trim().is_empty() {
            return Err(Error::config("notify.email.name", "must not be empty"));
        }
        if self.smtp.from.trim().is_empty() {
            return Err(Error::config("from", "missing"));
        }
        for (addr, _) in &self.recipients {
            if addr.parse::<lettre::Address>().is_err() {
                return Err(Error::config(
                    "notify.email.recipients",
                    format!("not an email address: {addr:?}"),
                ));
            }
        }
        let smtp = SmtpClient::new(&self.smtp)?;
        Ok(EmailNotifier {
            name: self.name,
            smtp,
            manager: self.manager,
            recipients: self.recipients,
        })
    }
}

/// Emails notifications to the manager, HR and IT (see the [module docs](self)).
pub struct EmailNotifier {
    name: String,
    smtp: SmtpClient,
    manager: BTreeSet<NotificationKind>,
    recipients: Vec<(String, BTreeSet<NotificationKind>)>,
}

impl fmt::Debug for EmailNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailNotifier")
            .field("name", &self.name)
            .field("smtp", &self.smtp)
            .field("recipients", &self.recipients.len())
            .finish_non_exhaustive()
    }
}

impl EmailNotifier {
    /// A builder for the notifier `name` (unique among the engine's notifiers).
    pub fn builder(name: impl Into<String>) -> EmailNotifierBuilder {
        EmailNotifierBuilder {
            name: name.into(),
            smtp: SmtpSettings {
                host: "localhost".into(),
                port: 587,
                security: SmtpSecurity::StartTls,
                username: None,
                password: None,
                root_ca_pem: None,
                from: String::new(),
                timeout: Duration::from_secs(30),
                pickup_dir: None,
            },
            manager: RUN_ONLY.into_iter().collect(),
            recipients: Vec::new(),
        }
    }

    /// Who is told about `n`, each address once, in configuration order (manager first).
    pub fn recipients(&self, n: &Notification) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let manager = n
            .run
            .manager_email
            .as_ref()
            .filter(|m| self.manager.contains(&n.kind) && m.parse::<lettre::Address>().is_ok());
        for addr in manager.into_iter().chain(
            self.recipients
                .iter()
                .filter(|(_, kinds)| kinds.contains(&n.kind))
                .map(|(a, _)| a),
        ) {
            if !out.iter().any(|o| o.eq_ignore_ascii_case(addr)) {
                out.push(addr.clone());
            }
        }
        out
    }
}

#[async_trait]
impl Notifier for EmailNotifier {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn notify(&self, n: &Notification) -> Result<()> {
        let mut to = self.recipients(n).into_iter();
        let Some(first) = to.next() else {
            return Ok(());
        };
        let id = hex::encode(&Sha256::digest(n.id.as_bytes())[..16]);
        self.smtp
            .send(&Outgoing {
                to: first,
                also_to: to.collect(),
                subject: format!("[offboard] {}", n.subject()),
                body: text(n),
                html: Some(page(n).into_string()),
                message_id: Some(format!("{id}.{}@offboard", n.kind)),
            })
            .await
    }
}

/// The facts as (label, value) rows, shared by both bodies.
fn rows(n: &Notification) -> Vec<(&'static str, String)> {
    let r = &n.run;
    let t = &r.tasks;
    let fmt_time = |at: chrono::DateTime<chrono::Utc>| at.format("%Y-%m-%d %H:%M UTC").to_string();
    let mut rows = vec![
        ("Person", r.person()),
        ("Person id", r.person_id.to_string()),
    ];
    if let Some(m) = &r.manager_email {
        rows.push(("Manager", m.clone()));
    }
    rows.extend([
        ("Run", r.id.to_string()),
        ("State", format!("{:?}", r.state).to_lowercase()),
        ("Started by", r.initiator.clone()),
    ]);
    if !r.reason.is_empty() {
        rows.push(("Reason", r.reason.clone()));
    }
    if r.dry_run {
        rows.push(("Dry run", "yes: nothing is changed".into()));
    }
    rows.push(("Effective", fmt_time(r.effective_at)));
    if let Some(f) = r.finished_at {
        rows.push(("Finished", fmt_time(f)));
    }
    rows.push((
        "Apps",
        r.apps
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    ));
    rows.push((
        "Tasks",
        format!(
            "{} in all: {} completed, {} failed ({} critical), {} with a person, {} open, {} skipped, {} cancelled, {} rolled back",
            t.total,
            t.completed,
            t.failed,
            t.critical_failed,
            t.delegated,
            t.open,
            t.skipped,
            t.cancelled,
            t.rolled_back
        ),
    ));
    if !r.failed_tasks.is_empty() {
        rows.push(("Failed", r.failed_tasks.join(", ")));
    }
    if let Some(o) = &n.overdue {
        rows.push(("Overdue task", format!("{} ({})", o.app, o.via.as_str())));
        rows.push(("Ticket", o.ticket.clone()));
        if let Some(a) = &o.assignee {
            rows.push(("Assigned to", a.clone()));
        }
        rows.push(("Due", fmt_time(o.due)));
    }
    rows.push(("Reference", n.id.clone()));
    rows
}

/// The first line of both bodies.
fn lead(n: &Notification) -> String {
    let who = n.run.person();
    match n.kind {
        NotificationKind::RunStarted => format!("The offboarding of {who} has started."),
        NotificationKind::TaskOverdue => format!(
            "A task in the offboarding of {who} is overdue: someone was asked to remove their access to {} and has not done it yet.",
            n.overdue
                .as_ref()
                .map_or("an app".to_owned(), |o| o.app.to_string())
        ),
        NotificationKind::RunFinished => format!("The offboarding of {who} has finished."),
        NotificationKind::RunFailed => format!(
            "The offboarding of {who} has finished, but some tasks failed: their access may remain there."
        ),
    }
}

/// The plain-text body.
fn text(n: &Notification) -> String {
    let mut out = format!("{}\n\n", lead(n));
    for (label, value) in rows(n) {
        out.push_str(&format!("{label}: {value}\n"));
    }
    out.push_str("\nSent by offboard. The run's full record is in its audit trail.\n");
    out
}

/// The HTML body (maud escapes every value).
fn page(n: &Notification) -> Markup {
    html! {
        (maud::DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (n.subject()) }
            }
            body style="font-family: sans-serif; max-width: 40em" {
                p { (lead(n)) }
                table style="border-collapse: collapse" {
                    @for (label, value) in rows(n) {
                        tr {
                            th style="text-align: left; padding: 2px 12px 2px 0; vertical-align: top" { (label) }
                            td style="padding: 2px 0" { (value) }
                        }
                    }
                }
                p style="color: #555; font-size: small" {
                    "Sent by offboard. The run's full record is in its audit trail."
                }
            }
        }
    }
}
