//! Simulated Jira Cloud site: a stateful Jira speaking the official REST API v3 on loopback.
//!
//! [`JiraSim`] runs a wiremock [`MockServer`] whose single responder routes every request over
//! the site's state (projects, issue types, users, issues, the workflow) behind a
//! `std::sync::Mutex`. It serves exactly these operations of
//! `api-specs/jira/jira-platform-v3.offboarding.json` ([`ROUTES`]), with the official shapes:
//!
//! | Operation | Answer |
//! |---|---|
//! | `POST /rest/api/3/issue` | 201 `CreatedIssue{id, key, self}`; 400 `ErrorCollection` for a bad project, issue type, summary, non-ADF description or a label with spaces |
//! | `GET /rest/api/3/issue/{issueIdOrKey}` | 200 `IssueBean` with the `fields` asked for (default all); 404 |
//! | `GET`/`POST /rest/api/3/search/jql` | 200 `{issues, isLast, nextPageToken?}`; 400 for JQL outside the strict subset (see below) |
//! | `GET /rest/api/3/issue/{issueIdOrKey}/transitions` | 200 `{transitions: [IssueTransition]}` available from the current status |
//! | `POST /rest/api/3/issue/{issueIdOrKey}/transitions` | 204; 400 for a transition not available now |
//! | `PUT /rest/api/3/issue/{issueIdOrKey}/assignee` | 204; 400 for an unknown user; `accountId: null` unassigns |
//!
//! JQL: clauses joined by `AND`, each `labels = v`, `project = v`, `key = v` or
//! `key in (v, ...)`, optionally `ORDER BY key|created [ASC|DESC]`; values quoted with JQL's
//! escapes or bare words. Anything else is 400.
//!
//! Search lags, as Jira Cloud's index does: an issue created less than the search lag ago
//! ([`JiraSim::search_lag`], default none) is not found by `search/jql` unless its id is in the
//! request's `reconcileIssues` (at most 50 ids, else 400), the strong-consistency list Jira
//! documents for that; `GET /issue/{key}` always sees it. [`JiraSim::reindex`] indexes
//! everything now.
//!
//! Every request needs `Authorization: Basic base64(email:token)` with the configured
//! credentials (401 otherwise). Before routing, the simulator applies, in this order: auth,
//! the rate budget / queued throttles (429 with `Retry-After`, `X-RateLimit-*`,
//! `RateLimit-Reason`), injected 5xx faults, then the latency. Every request is recorded
//! ([`JiraSim::requests`]) with the `Authorization` value replaced by `[REDACTED]`.
//!
//! Workflow: `To Do` (category `new`) → `In Progress` (`indeterminate`) → `Done` (`done`),
//! `To Do` → `Done` directly, `In Progress` → `To Do`, and `Done` → `To Do` ("Reopen"); and
//! `Closed` (also category `done`, as in Jira's default workflow) from `To Do` or
//! `In Progress`, reopened to `To Do`. Entering a `done`-category status sets a resolution
//! (`Done` unless [`JiraSim::resolve`] names another of Jira's defaults: `Won't Do`,
//! `Duplicate`, `Cannot Reproduce`); leaving it clears the resolution.
//!
//! Webhooks: [`JiraSim::register_webhook`] registers a URL (and a secret). Every change
//! (through the API or the test controls) queues a `jira:issue_updated` event;
//! [`JiraSim::deliver_webhooks`] POSTs the queued events, signed with
//! `X-Hub-Signature: sha256=<hex HMAC-SHA256 of the body>` and identified by
//! `X-Atlassian-Webhook-Identifier`, and [`JiraSim::redeliver`] sends one again (a replay).
//!
//! # Example
//! ```
//! use offboard_testkit::sim::jira::JiraSim;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let sim = JiraSim::builder().user("acc-sam", "Sam Admin", "sam@example.com").start().await;
//! let key = sim.create_issue("Remove access", &["offb-1"]);
//! sim.assign(&key, "sam@example.com");
//! sim.transition(&key, "Done");
//! let issue = sim.issue(&key).unwrap();
//! assert_eq!(issue.status, "Done");
//! assert_eq!(issue.assignee.as_deref(), Some("acc-sam"));
//! # }
//! ```

mod jql;
mod routes;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use wiremock::MockServer;

use super::layer::{self, Dice, Layer, Window};

/// Every (method, path template) the simulator serves; each exists in the official spec.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/rest/api/3/issue"),
    ("GET", "/rest/api/3/issue/{issueIdOrKey}"),
    ("GET", "/rest/api/3/search/jql"),
    ("POST", "/rest/api/3/search/jql"),
    ("GET", "/rest/api/3/issue/{issueIdOrKey}/transitions"),
    ("POST", "/rest/api/3/issue/{issueIdOrKey}/transitions"),
    ("PUT", "/rest/api/3/issue/{issueIdOrKey}/assignee"),
];

/// The email the simulator accepts by default.
pub const DEFAULT_EMAIL: &str = "offboard-bot@example.com";
/// The API token the simulator accepts by default.
pub const DEFAULT_TOKEN: &str = "jira-sim-api-token-0123456789";

/// A workflow status of the simulated site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimStatus {
    /// Status id (`10000` To Do, `3` In Progress, `10001` Done).
    pub id: String,
    /// Status name.
    pub name: String,
    /// Status category key: `new`, `indeterminate` or `done`.
    pub category: String,
}

/// A user of the simulated site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimUser {
    /// Atlassian account id.
    pub account_id: String,
    /// Display name.
    pub display_name: String,
    /// Email address.
    pub email: String,
}

/// An issue as the simulator holds it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SimIssue {
    /// Numeric id, as a string (`10001`...).
    pub id: String,
    /// Key (`IT-1`...).
    pub key: String,
    /// Project key.
    pub project: String,
    /// Issue type id.
    pub issue_type: String,
    /// Summary.
    pub summary: String,
    /// Description (ADF document), if any.
    pub description: Option<Value>,
    /// Labels.
    pub labels: Vec<String>,
    /// Current status name.
    pub status: String,
    /// Assignee account id.
    pub assignee: Option<String>,
    /// How many times it left `Done` again.
    pub reopened: u32,
    /// Resolution name, while the issue is in a `done`-category status.
    pub resolution: Option<String>,
}

/// One request the simulator received.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path, without the query.
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// Headers, with the `Authorization` value replaced by `[REDACTED]`.
    pub headers: Vec<(String, String)>,
    /// Body as text (lossy UTF-8).
    pub body: String,
    /// The status the simulator answered.
    pub status: u16,
}

/// A webhook delivery the simulator made.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WebhookDelivery {
    /// `X-Atlassian-Webhook-Identifier`: the same for every retry of one delivery.
    pub identifier: String,
    /// The exact body sent.
    pub body: String,
    /// The `X-Hub-Signature` header sent, if the webhook has a secret.
    pub signature: Option<String>,
    /// The receiver's HTTP status (0 when the request failed).
    pub status: u16,
}

#[derive(Debug, Clone)]
struct Webhook {
    url: String,
    secret: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Issue {
    pub(crate) id: u64,
    pub(crate) key: String,
    pub(crate) project: String,
    pub(crate) issue_type: String,
    pub(crate) summary: String,
    pub(crate) description: Option<Value>,
    pub(crate) labels: Vec<String>,
    pub(crate) status: usize,
    pub(crate) assignee: Option<String>,
    pub(crate) reopened: u32,
    /// Index into [`RESOLUTIONS`], set while in a `done`-category status.
    pub(crate) resolution: Option<usize>,
    /// When search starts finding the issue (its creation plus the search lag).
    pub(crate) indexed_at: Instant,
    pub(crate) created: String,
    pub(crate) updated: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Transition {
    pub(crate) id: &'static str,
    pub(crate) name: &'static str,
    pub(crate) from: &'static [usize],
    pub(crate) to: usize,
}

/// Statuses: index 0 To Do, 1 In Progress, 2 Done, 3 Closed.
pub(crate) const STATUSES: [(&str, &str, &str); 4] = [
    ("10000", "To Do", "new"),
    ("3", "In Progress", "indeterminate"),
    ("10001", "Done", "done"),
    ("6", "Closed", "done"),
];

/// Jira Cloud's default resolutions (id, name, description).
pub(crate) const RESOLUTIONS: [(&str, &str, &str); 4] = [
    ("10000", "Done", "Work has been completed on this issue."),
    ("10001", "Won't Do", "This issue won't be actioned."),
    (
        "10002",
        "Duplicate",
        "The problem is a duplicate of an existing issue.",
    ),
    (
        "10003",
        "Cannot Reproduce",
        "This issue couldn't be reproduced.",
    ),
];

pub(crate) const TRANSITIONS: [Transition; 7] = [
    Transition {
        id: "21",
        name: "Start progress",
        from: &[0],
        to: 1,
    },
    Transition {
        id: "31",
        name: "Done",
        from: &[0, 1],
        to: 2,
    },
    Transition {
        id: "11",
        name: "Stop progress",
        from: &[1],
        to: 0,
    },
    Transition {
        id: "41",
        name: "Reopen",
        from: &[2],
        to: 0,
    },
    Transition {
        id: "51",
        name: "Back to work",
        from: &[2],
        to: 1,
    },
    Transition {
        id: "61",
        name: "Close",
        from: &[0, 1],
        to: 3,
    },
    Transition {
        id: "71",
        name: "Reopen closed",
        from: &[3],
        to: 0,
    },
];

/// Jira's own faults; the injected 5xx statuses, the share of 503s and the latency are the
/// shared layer's ([`State::layer`]).
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// The next n requests answer 429 with this Retry-After (seconds).
    pub(crate) throttle_next: Vec<u64>,
    /// At most `limit` requests per `window`; beyond, 429.
    pub(crate) budget: Option<(u32, Duration)>,
    /// The budget's window, on the clock of [`State::started`].
    pub(crate) window: Window,
    /// The next n creates succeed, but their answer is lost (504, empty body).
    pub(crate) lose_creates: u32,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) base: String,
    pub(crate) auth: String,
    pub(crate) projects: Vec<(String, String)>,
    pub(crate) issue_types: Vec<(String, String)>,
    pub(crate) users: Vec<SimUser>,
    pub(crate) issues: Vec<Issue>,
    pub(crate) next_id: u64,
    pub(crate) counters: BTreeMap<String, u64>,
    /// Recording (with the status answered), injected failures, the fault dice and latency.
    pub(crate) layer: Layer<(), RecordedRequest>,
    pub(crate) faults: Faults,
    /// When the site started: the origin of the rate budget's clock.
    pub(crate) started: Instant,
    /// How long a new issue stays invisible to search.
    pub(crate) search_lag: Duration,
    webhooks: Vec<Webhook>,
    pending_events: Vec<Value>,
    deliveries: Vec<(Webhook, WebhookDelivery)>,
    next_event: u64,
    pub(crate) actor: String,
}

impl State {
    pub(crate) fn issue_index(&self, id_or_key: &str) -> Option<usize> {
        self.issues
            .iter()
            .position(|i| i.key == id_or_key || i.id.to_string() == id_or_key)
    }

    pub(crate) fn user(&self, who: &str) -> Option<&SimUser> {
        self.users
            .iter()
            .find(|u| u.account_id == who || u.email.eq_ignore_ascii_case(who))
    }

    pub(crate) fn status_json(&self, index: usize) -> Value {
        let (id, name, cat) = STATUSES[index];
        let (cat_id, color, cat_name) = match cat {
            "new" => (2, "blue-gray", "To Do"),
            "indeterminate" => (4, "yellow", "In Progress"),
            _ => (3, "green", "Done"),
        };
        json!({
            "self": format!("{}/rest/api/3/status/{id}", self.base),
            "description": "",
            "iconUrl": format!("{}/images/icons/statuses/generic.png", self.base),
            "name": name,
            "id": id,
            "statusCategory": {
                "self": format!("{}/rest/api/3/statuscategory/{cat_id}", self.base),
                "id": cat_id,
                "key": cat,
                "colorName": color,
                "name": cat_name,
            }
        })
    }

    pub(crate) fn user_json(&self, account_id: &str) -> Value {
        match self.users.iter().find(|u| u.account_id == account_id) {
            Some(u) => json!({
                "self": format!("{}/rest/api/3/user?accountId={}", self.base, u.account_id),
                "accountId": u.account_id,
                "emailAddress": u.email,
                "displayName": u.display_name,
                "active": true,
                "timeZone": "UTC",
                "accountType": "atlassian",
            }),
            None => Value::Null,
        }
    }

    /// The issue as an `IssueBean`, with the fields asked for (`None`: all).
    pub(crate) fn issue_json(&self, index: usize, fields: Option<&[String]>) -> Value {
        let issue = &self.issues[index];
        let wants = |name: &str| match fields {
            None => true,
            Some(list) => list
                .iter()
                .any(|f| f == name || f == "*all" || f == "*navigable"),
        };
        let mut f = serde_json::Map::new();
        if wants("summary") {
            f.insert("summary".into(), json!(issue.summary));
        }
        if wants("description") {
            f.insert(
                "description".into(),
                issue.description.clone().unwrap_or(Value::Null),
            );
        }
        if wants("labels") {
            f.insert("labels".into(), json!(issue.labels));
        }
        if wants("status") {
            f.insert("status".into(), self.status_json(issue.status));
        }
        if wants("assignee") {
            let a = issue
                .assignee
                .as_deref()
                .map(|a| self.user_json(a))
                .unwrap_or(Value::Null);
            f.insert("assignee".into(), a);
        }
        if wants("resolution") {
            let r = match issue.resolution {
                Some(r) => {
                    let (id, name, description) = RESOLUTIONS[r];
                    json!({
                        "self": format!("{}/rest/api/3/resolution/{id}", self.base),
                        "id": id,
                        "name": name,
                        "description": description,
                    })
                }
                None => Value::Null,
            };
            f.insert("resolution".into(), r);
        }
        if wants("issuetype") {
            let name = self
                .issue_types
                .iter()
                .find(|(id, _)| *id == issue.issue_type)
                .map(|(_, n)| n.clone())
                .unwrap_or_default();
            f.insert(
                "issuetype".into(),
                json!({"id": issue.issue_type, "name": name, "subtask": false}),
            );
        }
        if wants("project") {
            let id = self
                .projects
                .iter()
                .find(|(k, _)| *k == issue.project)
                .map(|(_, id)| id.clone())
                .unwrap_or_default();
            f.insert(
                "project".into(),
                json!({"id": id, "key": issue.project, "name": issue.project}),
            );
        }
        if wants("created") {
            f.insert("created".into(), json!(issue.created));
        }
        if wants("updated") {
            f.insert("updated".into(), json!(issue.updated));
        }
        json!({
            "expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
            "id": issue.id.to_string(),
            "key": issue.key,
            "self": format!("{}/rest/api/3/issue/{}", self.base, issue.id),
            "fields": Value::Object(f),
        })
    }

    pub(crate) fn create(
        &mut self,
        project: String,
        issue_type: String,
        summary: String,
        description: Option<Value>,
        labels: Vec<String>,
        assignee: Option<String>,
    ) -> usize {
        let n = self.counters.entry(project.clone()).or_insert(0);
        *n += 1;
        let key = format!("{project}-{n}");
        self.next_id += 1;
        let now = now_jira();
        self.issues.push(Issue {
            id: self.next_id,
            key,
            project,
            issue_type,
            summary,
            description,
            labels,
            status: 0,
            assignee,
            reopened: 0,
            resolution: None,
            indexed_at: Instant::now() + self.search_lag,
            created: now.clone(),
            updated: now,
        });
        self.issues.len() - 1
    }

    /// Moves an issue to status `to` and queues the webhook event. Entering a `done`-category
    /// status sets `resolution` (index into [`RESOLUTIONS`], `Done` when `None`); leaving one
    /// clears it.
    pub(crate) fn set_status(&mut self, index: usize, to: usize, resolution: Option<usize>) {
        let from = self.issues[index].status;
        if from == to {
            return;
        }
        if STATUSES[from].2 == "done" && STATUSES[to].2 != "done" {
            self.issues[index].reopened += 1;
        }
        self.issues[index].resolution = (STATUSES[to].2 == "done").then(|| resolution.unwrap_or(0));
        self.issues[index].status = to;
        self.issues[index].updated = now_jira();
        let item = json!({
            "field": "status", "fieldtype": "jira", "fieldId": "status",
            "from": STATUSES[from].0, "fromString": STATUSES[from].1,
            "to": STATUSES[to].0, "toString": STATUSES[to].1,
        });
        self.queue_event(index, "issue_generic", item);
    }

    /// Sets the assignee and queues the webhook event.
    pub(crate) fn set_assignee(&mut self, index: usize, to: Option<String>) {
        let from = self.issues[index].assignee.clone();
        if from == to {
            return;
        }
        self.issues[index].assignee = to.clone();
        self.issues[index].updated = now_jira();
        let name = |a: &Option<String>| {
            a.as_deref()
                .and_then(|a| self.users.iter().find(|u| u.account_id == a))
                .map(|u| u.display_name.clone())
        };
        let item = json!({
            "field": "assignee", "fieldtype": "jira", "fieldId": "assignee",
            "from": from, "fromString": name(&from),
            "to": to, "toString": name(&to),
        });
        self.queue_event(index, "issue_assigned", item);
    }

    fn queue_event(&mut self, index: usize, type_name: &str, item: Value) {
        if self.webhooks.is_empty() {
            return;
        }
        self.next_event += 1;
        let actor = self.user_json(&self.actor.clone());
        let event = json!({
            "timestamp": chrono::Utc::now().timestamp_millis(),
            "webhookEvent": "jira:issue_updated",
            "issue_event_type_name": type_name,
            "user": if actor.is_null() { json!({"accountId": self.actor}) } else { actor },
            "issue": self.issue_json(index, None),
            "changelog": {"id": self.next_event.to_string(), "items": [item]},
        });
        self.pending_events.push(event);
    }
}

fn now_jira() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
        .to_string()
}

/// Builds a [`JiraSim`].
#[derive(Debug)]
pub struct JiraSimBuilder {
    email: String,
    token: String,
    projects: Vec<(String, String)>,
    issue_types: Vec<(String, String)>,
    users: Vec<SimUser>,
}

impl JiraSimBuilder {
    /// The credentials the site accepts (default [`DEFAULT_EMAIL`] / [`DEFAULT_TOKEN`]).
    pub fn credentials(mut self, email: impl Into<String>, token: impl Into<String>) -> Self {
        self.email = email.into();
        self.token = token.into();
        self
    }

    /// Adds a project (default: `IT`, id `10000`).
    pub fn project(mut self, key: impl Into<String>) -> Self {
        let id = (10000 + self.projects.len()).to_string();
        self.projects.push((key.into(), id));
        self
    }

    /// Adds an issue type (defaults: `10001` Task, `10002` Service Request).
    pub fn issue_type(mut self, id: impl Into<String>, name: impl Into<String>) -> Self {
        self.issue_types.push((id.into(), name.into()));
        self
    }

    /// Adds a user.
    pub fn user(
        mut self,
        account_id: impl Into<String>,
        display_name: impl Into<String>,
        email: impl Into<String>,
    ) -> Self {
        self.users.push(SimUser {
            account_id: account_id.into(),
            display_name: display_name.into(),
            email: email.into(),
        });
        self
    }

    /// Starts the site on loopback.
    pub async fn start(self) -> JiraSim {
        let server = MockServer::start().await;
        let auth = layer::basic(&self.email, &self.token);
        let mut projects = self.projects;
        if projects.is_empty() {
            projects.push(("IT".into(), "10000".into()));
        }
        let mut issue_types = self.issue_types;
        if issue_types.is_empty() {
            issue_types.push(("10001".into(), "Task".into()));
            issue_types.push(("10002".into(), "Service Request".into()));
        }
        let state = Arc::new(Mutex::new(State {
            base: server.uri(),
            auth,
            projects,
            issue_types,
            users: self.users,
            issues: Vec::new(),
            next_id: 10000,
            counters: BTreeMap::new(),
            layer: Layer::default(),
            faults: Faults::default(),
            started: Instant::now(),
            search_lag: Duration::ZERO,
            webhooks: Vec::new(),
            pending_events: Vec::new(),
            deliveries: Vec::new(),
            next_event: 0,
            actor: "557058:offboard-bot".into(),
        }));
        layer::serve(
            &server,
            Arc::new(routes::Router {
                state: state.clone(),
            }),
        )
        .await;
        JiraSim {
            server,
            state,
            http: reqwest::Client::new(),
        }
    }
}

/// A simulated Jira Cloud site on loopback. See the [module docs](self).
pub struct JiraSim {
    server: MockServer,
    state: Arc<Mutex<State>>,
    http: reqwest::Client,
}

impl fmt::Debug for JiraSim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JiraSim")
            .field("uri", &self.server.uri())
            .finish_non_exhaustive()
    }
}

impl JiraSim {
    /// A builder with the default credentials, project `IT` and issue types.
    pub fn builder() -> JiraSimBuilder {
        JiraSimBuilder {
            email: DEFAULT_EMAIL.into(),
            token: DEFAULT_TOKEN.into(),
            projects: Vec::new(),
            issue_types: Vec::new(),
            users: Vec::new(),
        }
    }

    /// Starts a site with the defaults.
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    /// The site's base URL (`http://127.0.0.1:<port>`).
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        layer::lock(&self.state)
    }

    fn index(state: &State, key: &str) -> usize {
        state
            .issue_index(key)
            .unwrap_or_else(|| panic!("jira sim: no issue {key:?}"))
    }

    /// Every issue, in creation order.
    pub fn issues(&self) -> Vec<SimIssue> {
        let s = self.state();
        s.issues.iter().map(sim_issue).collect()
    }

    /// The issue with this key or id.
    pub fn issue(&self, key: &str) -> Option<SimIssue> {
        let s = self.state();
        s.issue_index(key).map(|i| sim_issue(&s.issues[i]))
    }

    /// How many issues exist.
    pub fn issues_created(&self) -> usize {
        self.state().issues.len()
    }

    /// Files an issue directly (as a human would), in the first project and issue type.
    pub fn create_issue(&self, summary: &str, labels: &[&str]) -> String {
        let mut s = self.state();
        let project = s.projects[0].0.clone();
        let it = s.issue_types[0].0.clone();
        let i = s.create(
            project,
            it,
            summary.into(),
            None,
            labels.iter().map(|l| l.to_string()).collect(),
            None,
        );
        s.issues[i].key.clone()
    }

    /// Moves the issue to the status named `status` (case-insensitive), as a human would.
    ///
    /// # Panics
    /// When there is no such issue or status.
    pub fn transition(&self, key: &str, status: &str) {
        let mut s = self.state();
        let i = Self::index(&s, key);
        let to = STATUSES
            .iter()
            .position(|(_, n, _)| n.eq_ignore_ascii_case(status))
            .unwrap_or_else(|| panic!("jira sim: no status {status:?}"));
        s.set_status(i, to, None);
    }

    /// Moves the issue to the `done`-category status named `status` with the resolution named
    /// `resolution` (one of Jira's defaults: `Done`, `Won't Do`, `Duplicate`,
    /// `Cannot Reproduce`), as a human closing it that way would.
    ///
    /// # Panics
    /// When there is no such issue, status or resolution, or the status is not `done`.
    pub fn resolve(&self, key: &str, status: &str, resolution: &str) {
        let mut s = self.state();
        let i = Self::index(&s, key);
        let to = STATUSES
            .iter()
            .position(|(_, n, c)| n.eq_ignore_ascii_case(status) && *c == "done")
            .unwrap_or_else(|| panic!("jira sim: no done status {status:?}"));
        let r = RESOLUTIONS
            .iter()
            .position(|(_, n, _)| n.eq_ignore_ascii_case(resolution))
            .unwrap_or_else(|| panic!("jira sim: no resolution {resolution:?}"));
        s.set_status(i, to, Some(r));
    }

    /// From now on, a new issue stays invisible to `search/jql` for `lag` (unless reconciled).
    pub fn search_lag(&self, lag: Duration) {
        self.state().search_lag = lag;
    }

    /// Indexes every issue now: search finds them all.
    pub fn reindex(&self) {
        let now = Instant::now();
        for issue in &mut self.state().issues {
            issue.indexed_at = issue.indexed_at.min(now);
        }
    }

    /// Assigns the issue to `who` (account id or email); `None`-like empty string unassigns.
    ///
    /// # Panics
    /// When there is no such issue or user.
    pub fn assign(&self, key: &str, who: &str) {
        let mut s = self.state();
        let i = Self::index(&s, key);
        let to = if who.is_empty() {
            None
        } else {
            Some(
                s.user(who)
                    .unwrap_or_else(|| panic!("jira sim: no user {who:?}"))
                    .account_id
                    .clone(),
            )
        };
        s.set_assignee(i, to);
    }

    /// Reopens a done issue (moves it back to `To Do`).
    ///
    /// # Panics
    /// When there is no such issue.
    pub fn reopen(&self, key: &str) {
        let mut s = self.state();
        let i = Self::index(&s, key);
        if STATUSES[s.issues[i].status].2 == "done" {
            s.set_status(i, 0, None);
        }
    }

    /// Every request received, in order, `Authorization` redacted.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state().layer.requests.clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.state().layer.requests.clear();
    }

    /// The next `n` requests answer 429 with `Retry-After: retry_after` (whole seconds).
    pub fn throttle_next(&self, n: usize, retry_after: Duration) {
        let secs = retry_after.as_secs().max(1);
        self.state()
            .faults
            .throttle_next
            .extend(std::iter::repeat_n(secs, n));
    }

    /// Allows at most `limit` requests per `window` (real time); beyond, 429 with a
    /// `Retry-After` of the rest of the window.
    pub fn rate_budget(&self, limit: u32, window: Duration) {
        let mut s = self.state();
        s.faults.budget = Some((limit, window));
        s.faults.window = Window::default();
    }

    /// The next requests answer with these statuses (each 500–599), one per request.
    pub fn fail_next(&self, statuses: &[u16]) {
        let mut s = self.state();
        for status in statuses {
            s.layer.fail_next.push(None, *status, 1);
        }
    }

    /// About `per_mille`/1000 of requests answer 503, chosen by a generator seeded with `seed`.
    pub fn fail_share(&self, per_mille: u32, seed: u64) {
        let mut s = self.state();
        s.layer.faults.error_rate = f64::from(per_mille.min(1000)) / 1000.0;
        s.layer.dice = Dice::seeded(seed);
    }

    /// Every answer is delayed by `latency`.
    pub fn latency(&self, latency: Duration) {
        self.state().layer.faults.latency = latency;
    }

    /// The next `n` creates file their issue, but the answer is lost: the client gets a 504
    /// with an empty body, as when a crash or a proxy drops the response after the commit.
    pub fn lose_next_create_responses(&self, n: u32) {
        self.state().faults.lose_creates += n;
    }

    /// Removes every injected fault and the rate budget.
    pub fn clear_faults(&self) {
        let mut s = self.state();
        s.faults = Faults::default();
        s.layer.faults = layer::Faults::default();
        s.layer.fail_next.clear();
    }

    /// Registers a webhook receiving `jira:issue_updated` events at `url`, signed with
    /// `secret` when given.
    pub fn register_webhook(&self, url: impl Into<String>, secret: Option<&str>) {
        self.state().webhooks.push(Webhook {
            url: url.into(),
            secret: secret.map(str::to_owned),
        });
    }

    /// Events queued for delivery.
    pub fn pending_webhook_events(&self) -> Vec<Value> {
        self.state().pending_events.clone()
    }

    /// POSTs every queued event to every registered webhook; returns the deliveries made.
    pub async fn deliver_webhooks(&self) -> Vec<WebhookDelivery> {
        let (events, hooks) = {
            let mut s = self.state();
            (std::mem::take(&mut s.pending_events), s.webhooks.clone())
        };
        let mut out = Vec::new();
        for event in events {
            let body = event.to_string();
            for hook in &hooks {
                let identifier = uuid::Uuid::new_v4().to_string();
                let signature = hook.secret.as_deref().map(|s| sign(s, body.as_bytes()));
                let d = WebhookDelivery {
                    identifier,
                    body: body.clone(),
                    signature,
                    status: 0,
                };
                let d = self.post(hook, d, 0).await;
                self.state().deliveries.push((hook.clone(), d.clone()));
                out.push(d);
            }
        }
        out
    }

    /// Sends an earlier delivery again, with the same identifier, body and signature and
    /// `X-Atlassian-Webhook-Retry: 1` (a replay, as Jira retries).
    ///
    /// # Panics
    /// When no delivery has this identifier.
    pub async fn redeliver(&self, identifier: &str) -> WebhookDelivery {
        let (hook, d) = self
            .state()
            .deliveries
            .iter()
            .find(|(_, d)| d.identifier == identifier)
            .cloned()
            .unwrap_or_else(|| panic!("jira sim: no delivery {identifier:?}"));
        self.post(&hook, d, 1).await
    }

    async fn post(&self, hook: &Webhook, mut d: WebhookDelivery, retry: u32) -> WebhookDelivery {
        let mut req = self
            .http
            .post(&hook.url)
            .header("content-type", "application/json")
            .header("x-atlassian-webhook-identifier", &d.identifier)
            .body(d.body.clone());
        if retry > 0 {
            req = req.header("x-atlassian-webhook-retry", retry.to_string());
        }
        if let Some(sig) = &d.signature {
            req = req.header("x-hub-signature", sig);
        }
        d.status = match req.send().await {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        };
        d
    }
}

/// The `X-Hub-Signature` value Jira sends for `body` with `secret`: `sha256=<hex>`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any size");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn sim_issue(i: &Issue) -> SimIssue {
    SimIssue {
        id: i.id.to_string(),
        key: i.key.clone(),
        project: i.project.clone(),
        issue_type: i.issue_type.clone(),
        summary: i.summary.clone(),
        description: i.description.clone(),
        labels: i.labels.clone(),
        status: STATUSES[i.status].1.to_string(),
        assignee: i.assignee.clone(),
        reopened: i.reopened,
        resolution: i.resolution.map(|r| RESOLUTIONS[r].1.to_string()),
    }
}

/// Every status of the site's workflow.
pub fn statuses() -> Vec<SimStatus> {
    STATUSES
        .iter()
        .map(|(id, name, cat)| SimStatus {
            id: (*id).into(),
            name: (*name).into(),
            category: (*cat).into(),
        })
        .collect()
}
