//! Wire calls only: every HTTP request this crate makes is here, so it can move onto the
//! shared `offboard-http` client later without touching the delegate logic.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use offboard_core::{Error, RateBudget, Result, Secret};
use offboard_http::Pacer;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::{ErrorCollection, JiraError, retry_after};

/// A status as read (`StatusDetails`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StatusDetails {
    #[serde(default)]
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) status_category: Option<StatusCategory>,
}

/// `StatusCategory`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub(crate) struct StatusCategory {
    #[serde(default)]
    pub(crate) key: String,
}

/// `Resolution`, reduced to what this crate reads.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub(crate) struct Resolution {
    #[serde(default)]
    pub(crate) name: String,
}

/// A user as read (`User` / `UserDetails`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UserDetails {
    #[serde(default)]
    pub(crate) account_id: String,
    #[serde(default)]
    pub(crate) display_name: Option<String>,
    #[serde(default)]
    pub(crate) email_address: Option<String>,
}

impl UserDetails {
    /// How a person is shown: display name, else email, else account id.
    pub(crate) fn shown(&self) -> String {
        self.display_name
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(|| self.email_address.clone().filter(|s| !s.is_empty()))
            .unwrap_or_else(|| self.account_id.clone())
    }
}

/// The fields this crate reads.
#[derive(Debug, Clone, Deserialize, Default)]
pub(crate) struct IssueFields {
    #[serde(default)]
    pub(crate) status: Option<StatusDetails>,
    #[serde(default)]
    pub(crate) assignee: Option<UserDetails>,
    #[serde(default)]
    pub(crate) resolution: Option<Resolution>,
    #[serde(default)]
    pub(crate) labels: Vec<String>,
}

/// `IssueBean`, reduced to what this crate reads.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct IssueBean {
    pub(crate) id: String,
    pub(crate) key: String,
    #[serde(default)]
    pub(crate) fields: IssueFields,
}

/// `SearchAndReconcileResults`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SearchPage {
    #[serde(default)]
    pub(crate) issues: Vec<IssueBean>,
    #[serde(default)]
    pub(crate) next_page_token: Option<String>,
    #[serde(default)]
    pub(crate) is_last: Option<bool>,
}

/// `CreatedIssue`.
#[derive(Debug, Deserialize)]
pub(crate) struct CreatedIssue {
    pub(crate) id: String,
    pub(crate) key: String,
}

/// The Jira REST v3 client (basic auth), paced to the site's request budget when one is
/// configured: every request takes a turn of the key `jira|<site>|requests`, and a 429 with
/// `Retry-After` holds the key for everyone drawing from the same budget.
pub(crate) struct JiraClient {
    http: reqwest::Client,
    base: String,
    email: String,
    token: Secret,
    pacer: Option<Pacer>,
}

impl fmt::Debug for JiraClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JiraClient")
            .field("base", &self.base)
            .field("email", &self.email)
            .field("token", &self.token)
            .field("pacer", &self.pacer)
            .finish()
    }
}

impl JiraClient {
    /// A client for `base` (no trailing slash). TLS is rustls with aws-lc-rs, the crypto
    /// provider reqwest configures explicitly when no process default is installed.
    pub(crate) fn new(
        base: &str,
        email: &str,
        token: Secret,
        timeout: Duration,
        budget: Option<(u32, Duration)>,
    ) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("offboard-jira/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::internal(format!("building the HTTP client: {e}")))?;
        let base = base.trim_end_matches('/').to_string();
        let pacer = budget
            .and_then(|(limit, per)| Pacer::keyed(format!("jira|{base}|requests"), limit, per));
        Ok(Self {
            http,
            base,
            email: email.to_string(),
            token,
            pacer,
        })
    }

    /// Draws the pacer's turns from `budget` from now on.
    pub(crate) fn use_rate_budget(&self, budget: Arc<dyn RateBudget>) {
        if let Some(p) = &self.pacer {
            p.use_rate_budget(budget);
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> std::result::Result<T, JiraError> {
        if let Some(p) = &self.pacer {
            p.wait().await.map_err(JiraError::Budget)?;
        }
        let resp = req
            .basic_auth(&self.email, Some(self.token.expose()))
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| JiraError::Transport(e.without_url()))?;
        let status = resp.status();
        if !status.is_success() {
            let after = retry_after(resp.headers());
            if let (Some(p), Some(wait), 429) = (&self.pacer, after, status.as_u16()) {
                p.penalise(wait).await;
            }
            let text = resp.text().await.unwrap_or_default();
            let messages = serde_json::from_str::<ErrorCollection>(&text)
                .map(ErrorCollection::messages)
                .unwrap_or_default();
            return Err(JiraError::Status {
                status: status.as_u16(),
                retry_after: after,
                messages,
            });
        }
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| JiraError::Transport(e.without_url()))?;
        serde_json::from_slice(&bytes).map_err(|e| JiraError::Decode(e.to_string()))
    }

    /// `POST /rest/api/3/search/jql`.
    pub(crate) async fn search(
        &self,
        jql: &str,
        fields: &[&str],
        max_results: u32,
        next_page_token: Option<&str>,
    ) -> Result<SearchPage> {
        let mut body = json!({"jql": jql, "fields": fields, "maxResults": max_results});
        if let Some(t) = next_page_token {
            body["nextPageToken"] = json!(t);
        }
        let req = self
            .http
            .post(self.url("/rest/api/3/search/jql"))
            .json(&body);
        Ok(self.send(req).await?)
    }

    /// `POST /rest/api/3/issue`.
    pub(crate) async fn create_issue(&self, fields: Value) -> Result<CreatedIssue> {
        let req = self
            .http
            .post(self.url("/rest/api/3/issue"))
            .json(&json!({"fields": fields}));
        Ok(self.send(req).await?)
    }

    /// `GET /rest/api/3/issue/{issueIdOrKey}?fields=...`.
    pub(crate) async fn get_issue(&self, key: &str, fields: &str) -> Result<IssueBean> {
        let mut url = url::Url::parse(&self.url("/rest/api/3/issue/"))
            .map_err(|e| Error::internal(format!("bad site URL: {e}")))?;
        url.path_segments_mut()
            .map_err(|()| Error::internal("site URL cannot be a base"))?
            .pop_if_empty()
            .push(key);
        url.query_pairs_mut().append_pair("fields", fields);
        let req = self.http.get(url);
        Ok(self.send(req).await?)
    }
}
