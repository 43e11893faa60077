//! offboard delegate that files and watches Jira issues.
//!
//! [`JiraDelegate`] implements [`offboard_core::Delegate`] for policies with
//! `method = "delegate"`, `via = "jira"`, against Jira Cloud's REST API v3 with basic auth
//! (account email + API token, never printed).
//!
//! - **Open** ([`Delegate::open`]): searches `POST /rest/api/3/search/jql` for
//!   `project = "<P>" AND labels = "<label>"`, where the label is derived from the request's
//!   idempotency key (space-free and injective; the JQL literal is escaped so nothing in it can
//!   change the query). Jira Cloud's search lags behind creation, so when nothing is found the
//!   issues newer than the newest one search sees (`project = P ORDER BY key DESC`) are read by
//!   key, which is consistent, and checked for the label. A found issue is returned; otherwise
//!   `POST /rest/api/3/issue` files one with that label, the summary and the ADF description
//!   rendered from the templates (placeholders `{person}`, `{email}`, `{app}`, `{run}`,
//!   `{due}`). A crash (or a lost response) between create and persist therefore never files a
//!   second issue.
//! - **Watch** ([`Delegate::status`]):
//!   `GET /rest/api/3/issue/{key}?fields=status,assignee,resolution`. A status of Jira's `done`
//!   category (narrowed to `done_status` when configured) reads `Done`, unless its resolution
//!   says the work was not done (`not_done_resolutions`, e.g. "Won't Do"), which reads
//!   `Declined`; any other status reads `Open` with the current assignee, so a reopened issue
//!   reads `Open` again.
//!   [`JiraDelegate::statuses`] reads many tickets with one `key in (...)` search per 50.
//! - **Webhooks** ([`JiraWebhook`]): verifies `X-Hub-Signature: sha256=<hex>` in constant
//!   time, refuses replays and stale deliveries, and returns the issue's new state;
//!   [`webhook::router`] is the endpoint (an axum `Router`) that does so over HTTP and makes
//!   the engine poll the delegation at once.
//!
//! Errors follow [`error`]'s table: 429 and 5xx are retryable with the
//! vendor's `Retry-After` as the wait hint.
//!
//! # Example
//! ```
//! use offboard_core::{Delegate, DelegateVia};
//! use offboard_jira::JiraBuilder;
//!
//! let jira = JiraBuilder::new()
//!     .with_site("https://example.atlassian.net")
//!     .with_email("offboard-bot@example.com")
//!     .with_api_token("example-token")
//!     .with_project("IT")
//!     .with_summary("Remove {person} from {app}")
//!     .build()
//!     .unwrap();
//! assert_eq!(jira.via(), DelegateVia::Jira);
//! assert_eq!(jira.browse_url("IT-7"), "https://example.atlassian.net/browse/IT-7");
//! ```
#![forbid(unsafe_code)]

mod client;
pub mod config;
pub mod error;
mod status;
mod template;
pub mod webhook;

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use offboard_core::{
    Delegate, DelegateVia, DelegationRequest, Error, Result, ResultExt, Ticket, TicketStatus,
};
use serde_json::json;

use crate::client::{IssueBean, JiraClient};
pub use crate::config::{ConfigKey, DEFAULT_NOT_DONE_RESOLUTIONS, JiraBuilder, JiraConfig};
use crate::status::{DoneRule, Reading};
use crate::template::{adf, is_issue_key, jql_string, label_for, render, summary_line};
pub use crate::webhook::{IDENTIFIER_HEADER, JiraWebhook, SIGNATURE_HEADER, WebhookUpdate};

/// How many keys one batched `key in (...)` search carries.
const BATCH: usize = 50;
/// The fields a status read asks for.
const STATUS_FIELDS: [&str; 3] = ["status", "assignee", "resolution"];
/// Reading issues newer than the newest one search sees stops after this many keys in a row
/// that do not exist (deleted issues leave gaps in a project's keys)...
const PROBE_MISSES: u64 = 3;
/// ...or after this many keys in all.
const PROBE_MAX: u64 = 100;

/// The Jira delegate. Build it with [`JiraBuilder`].
pub struct JiraDelegate {
    config: JiraConfig,
    base: String,
    client: JiraClient,
    rule: DoneRule,
}

impl fmt::Debug for JiraDelegate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JiraDelegate")
            .field("config", &self.config)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl JiraDelegate {
    /// A delegate from a validated configuration.
    ///
    /// # Errors
    /// `Internal` when the HTTP client cannot be built.
    pub fn new(config: JiraConfig) -> Result<Self> {
        let base = config.site.as_str().trim_end_matches('/').to_string();
        let client = JiraClient::new(
            &base,
            &config.email,
            config.api_token.clone(),
            config.timeout,
            config.request_budget,
        )?;
        let rule = DoneRule::new(
            config.done_status.clone(),
            config.not_done_resolutions.clone(),
        );
        Ok(Self {
            config,
            base,
            client,
            rule,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &JiraConfig {
        &self.config
    }

    /// The link a person opens: `<site>/browse/<key>`.
    pub fn browse_url(&self, key: &str) -> String {
        format!("{}/browse/{key}", self.base)
    }

    /// The label an issue opened for `idempotency_key` carries.
    pub fn label_for(idempotency_key: &str) -> String {
        label_for(idempotency_key)
    }

    /// The webhook verifier for this site's configuration.
    ///
    /// # Errors
    /// `Config` (`webhook_secret`) when no webhook secret is configured.
    pub fn webhook(&self) -> Result<JiraWebhook> {
        let secret = self
            .config
            .webhook_secret
            .clone()
            .ok_or_else(|| Error::config("webhook_secret", "missing"))?;
        Ok(JiraWebhook::new(secret, self.config.done_status.clone())
            .with_not_done_resolutions(self.config.not_done_resolutions.clone()))
    }

    /// The ticket status a verified webhook update reports (the same shape `status` returns).
    pub fn webhook_status(&self, update: &WebhookUpdate) -> TicketStatus {
        let ticket = Ticket {
            key: update.key.clone(),
            url: self.browse_url(&update.key),
            assignee: update.assignee.clone(),
        };
        if let Some(reason) = &update.declined {
            TicketStatus::Declined {
                ticket,
                reason: reason.clone(),
            }
        } else if update.done {
            TicketStatus::Done {
                ticket,
                by: update.by.clone(),
            }
        } else {
            TicketStatus::Open { ticket }
        }
    }

    fn ticket_status(&self, issue: &IssueBean) -> Result<TicketStatus> {
        let status = issue.fields.status.as_ref().ok_or_else(|| {
            Error::new(offboard_core::ErrorKind::Vendor, "issue without a status")
                .with_context("key", &issue.key)
        })?;
        let ticket = Ticket {
            key: issue.key.clone(),
            url: self.browse_url(&issue.key),
            assignee: issue.fields.assignee.as_ref().map(|a| a.shown()),
        };
        Ok(
            match self.rule.read(status, issue.fields.resolution.as_ref()) {
                Reading::Done => TicketStatus::Done { ticket, by: None },
                Reading::Declined(reason) => TicketStatus::Declined { ticket, reason },
                Reading::Open => TicketStatus::Open { ticket },
            },
        )
    }

    fn render(&self, template: &str, request: &DelegationRequest) -> Result<String> {
        let person = if request.person.display_name.is_empty() {
            request.person.email.clone()
        } else {
            request.person.display_name.clone()
        };
        let value = |name: &str| -> Option<String> {
            Some(match name {
                "person" => person.clone(),
                "email" => request.person.email.clone(),
                "app" => request.app.to_string(),
                "run" => request.run.to_string(),
                "due" => request.due.format("%Y-%m-%d %H:%M UTC").to_string(),
                _ => return None,
            })
        };
        render(template, &value).map_err(|e| Error::config("template", e))
    }

    /// The issue carrying `label` among those search does not see yet.
    ///
    /// # Behavior
    /// Jira allocates a project's keys in order, and reading an issue by key is consistent
    /// while search lags behind creation. So the newest issue search sees
    /// (`project = P ORDER BY key DESC`) bounds what it knows, and the keys after it are read
    /// one by one until [`PROBE_MISSES`] in a row do not exist (or [`PROBE_MAX`] were read).
    async fn find_unindexed(&self, label: &str) -> Result<Option<IssueBean>> {
        let project = &self.config.project;
        let jql = format!("project = {} ORDER BY key DESC", jql_string(project));
        let page = self.client.search(&jql, &["labels"], 1, None).await?;
        let newest = page
            .issues
            .first()
            .and_then(|i| i.key.rsplit_once('-'))
            .and_then(|(_, n)| n.parse::<u64>().ok())
            .unwrap_or(0);
        let fields = format!("labels,{}", STATUS_FIELDS.join(","));
        let (mut n, mut misses) = (newest, 0);
        while misses < PROBE_MISSES && n < newest + PROBE_MAX {
            n += 1;
            match self
                .client
                .get_issue(&format!("{project}-{n}"), &fields)
                .await
            {
                Ok(issue) if issue.fields.labels.iter().any(|l| l == label) => {
                    return Ok(Some(issue));
                }
                Ok(_) => misses = 0,
                Err(e) if e.kind() == offboard_core::ErrorKind::NotFound => misses += 1,
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Reads many tickets with one `key in (...)` search per 50 keys.
    ///
    /// # Behavior
    /// Reads only. The map holds every ticket Jira returned, by key; a ticket missing from it
    /// was deleted or is not visible. Keys that are not issue keys are refused up front.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed key; the search's errors (429 and 5xx retryable).
    pub async fn statuses(&self, tickets: &[Ticket]) -> Result<BTreeMap<String, TicketStatus>> {
        if let Some(bad) = tickets.iter().find(|t| !is_issue_key(&t.key)) {
            return Err(Error::invalid_input("not a Jira issue key")
                .with_context("key", &bad.key)
                .with_operation("jira.statuses"));
        }
        let mut out = BTreeMap::new();
        let keys: Vec<&str> = tickets.iter().map(|t| t.key.as_str()).collect();
        for chunk in keys.chunks(BATCH) {
            let list: Vec<String> = chunk.iter().map(|k| jql_string(k)).collect();
            let jql = format!("key in ({})", list.join(", "));
            let mut token: Option<String> = None;
            loop {
                let page = self
                    .client
                    .search(&jql, &STATUS_FIELDS, 100, token.as_deref())
                    .await
                    .operation("jira.statuses")?;
                for issue in &page.issues {
                    out.insert(issue.key.clone(), self.ticket_status(issue)?);
                }
                match page.next_page_token {
                    Some(t) if page.is_last != Some(true) && !page.issues.is_empty() => {
                        token = Some(t);
                    }
                    _ => break,
                }
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Delegate for JiraDelegate {
    fn via(&self) -> DelegateVia {
        DelegateVia::Jira
    }

    /// Finds the issue carrying the request's label, or files it.
    ///
    /// # Behavior
    /// Search first (`project = P AND labels = "<label>"`), create only when nothing carries
    /// the label. When an earlier crash left more than one issue with the label, the oldest is
    /// returned (never a new one).
    ///
    /// # Errors
    /// `InvalidInput` for an empty idempotency key; Jira's errors as classified in
    /// [`error`].
    async fn open(&self, request: &DelegationRequest) -> Result<Ticket> {
        if request.idempotency_key.is_empty() {
            return Err(
                Error::invalid_input("delegation without an idempotency key")
                    .with_operation("jira.open"),
            );
        }
        let label = label_for(&request.idempotency_key);
        let jql = format!(
            "project = {} AND labels = {}",
            jql_string(&self.config.project),
            jql_string(&label)
        );
        let page = self
            .client
            .search(&jql, &STATUS_FIELDS, 10, None)
            .await
            .operation("jira.open")?;
        let indexed = page
            .issues
            .iter()
            .min_by_key(|i| i.id.parse::<u64>().unwrap_or(u64::MAX))
            .cloned();
        let found = match indexed {
            Some(issue) => Some(issue),
            None => self.find_unindexed(&label).await.operation("jira.open")?,
        };
        if let Some(issue) = found {
            tracing::debug!(key = %issue.key, %label, "found the issue an earlier attempt filed");
            let (TicketStatus::Open { ticket }
            | TicketStatus::Done { ticket, .. }
            | TicketStatus::Declined { ticket, .. }) = self.ticket_status(&issue)?;
            return Ok(ticket);
        }
        let summary = summary_line(&self.render(&self.config.summary, request)?);
        let description = adf(&self.render(&self.config.description, request)?);
        let issue_type = if self.config.issue_type.chars().all(|c| c.is_ascii_digit()) {
            json!({"id": self.config.issue_type})
        } else {
            json!({"name": self.config.issue_type})
        };
        let mut fields = json!({
            "project": {"key": self.config.project},
            "issuetype": issue_type,
            "summary": summary,
            "description": description,
            "labels": [label],
        });
        if let Some(a) = &self.config.assignee {
            fields["assignee"] = json!({"accountId": a});
        }
        let created = self
            .client
            .create_issue(fields)
            .await
            .operation("jira.open")?;
        tracing::info!(key = %created.key, id = %created.id, "filed a Jira issue");
        // The assignee is shown as Jira names them; the first poll reads it.
        Ok(Ticket {
            url: self.browse_url(&created.key),
            key: created.key,
            assignee: None,
        })
    }

    /// Reads the issue's status and assignee.
    ///
    /// # Errors
    /// `NotFound` when the issue was deleted or is not visible; Jira's errors as classified.
    async fn status(&self, ticket: &Ticket) -> Result<TicketStatus> {
        if !is_issue_key(&ticket.key) {
            return Err(Error::invalid_input("not a Jira issue key")
                .with_context("key", &ticket.key)
                .with_operation("jira.status"));
        }
        let issue = self
            .client
            .get_issue(&ticket.key, &STATUS_FIELDS.join(","))
            .await
            .operation("jira.status")
            .context("key", &ticket.key)?;
        self.ticket_status(&issue)
    }

    /// Paces the site's requests (when a request budget is configured) from `budget`, shared
    /// with every engine drawing from it.
    fn use_rate_budget(&self, budget: std::sync::Arc<dyn offboard_core::RateBudget>) {
        self.client.use_rate_budget(budget);
    }
}
