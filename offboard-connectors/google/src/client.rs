//! Wire calls to the Admin SDK Directory API; no decisions.

use std::sync::Arc;

use offboard_core::{Error, ErrorKind, Result};
use offboard_http::{HttpClient, HttpRequest, HttpResponse, Method, Pacer};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::config::Sku;
use crate::error::with_hint;

/// A Directory user, as much of it as the connector reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct User {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) primary_email: String,
    #[serde(default)]
    pub(crate) aliases: Vec<String>,
    #[serde(default)]
    pub(crate) non_editable_aliases: Vec<String>,
    #[serde(default)]
    pub(crate) suspended: bool,
    #[serde(default)]
    pub(crate) archived: bool,
    #[serde(default)]
    pub(crate) org_unit_path: String,
    /// Google's default is `true`.
    #[serde(default = "yes")]
    pub(crate) include_in_global_address_list: bool,
}

fn yes() -> bool {
    true
}

impl User {
    /// Whether `address` is this user's primary email or an alias (ASCII case ignored).
    pub(crate) fn has_address(&self, address: &str) -> bool {
        std::iter::once(&self.primary_email)
            .chain(&self.aliases)
            .chain(&self.non_editable_aliases)
            .any(|a| a.eq_ignore_ascii_case(address))
    }
}

/// An OAuth token the user granted a third-party client.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Token {
    pub(crate) client_id: String,
    #[serde(default)]
    pub(crate) display_text: String,
    #[serde(default)]
    pub(crate) scopes: Vec<String>,
}

/// An app-specific password.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Asp {
    pub(crate) code_id: i64,
    #[serde(default)]
    pub(crate) name: String,
}

/// A group the user is in.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Group {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) email: String,
}

/// A group member.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Member {
    #[serde(default)]
    pub(crate) role: String,
}

/// `{"items": [...]}`; Google leaves `items` out of an empty list.
#[derive(Debug, Deserialize)]
struct Items<T> {
    #[serde(default = "Vec::new")]
    items: Vec<T>,
}

/// A mobile device (`MobileDevice`), as much as the connector reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Device {
    pub(crate) resource_id: String,
    #[serde(default)]
    pub(crate) email: Vec<String>,
    #[serde(default)]
    pub(crate) model: String,
    #[serde(default)]
    pub(crate) status: String,
}

/// A Data Transfer application (`Application`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Application {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) transfer_params: Vec<serde_json::Value>,
}

/// One application of a transfer (`ApplicationDataTransfer`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ApplicationTransfer {
    #[serde(default)]
    pub(crate) application_id: String,
}

/// A data transfer (`DataTransfer`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DataTransfer {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) old_owner_user_id: String,
    #[serde(default)]
    pub(crate) new_owner_user_id: String,
    #[serde(default)]
    pub(crate) application_data_transfers: Vec<ApplicationTransfer>,
    #[serde(default)]
    pub(crate) overall_transfer_status_code: String,
    /// When it was requested (RFC 3339); absent on a malformed answer.
    #[serde(default)]
    pub(crate) request_time: Option<String>,
}

const USERS: [&str; 4] = ["admin", "directory", "v1", "users"];
const GROUPS: [&str; 4] = ["admin", "directory", "v1", "groups"];
const DEVICES: [&str; 7] = [
    "admin",
    "directory",
    "v1",
    "customer",
    "my_customer",
    "devices",
    "mobile",
];
const DATATRANSFER: [&str; 3] = ["admin", "datatransfer", "v1"];

fn path(base: &[&str], rest: &[&str]) -> Vec<String> {
    base.iter().chain(rest).map(|s| (*s).to_owned()).collect()
}

fn user_path(key: &str, rest: &[&str]) -> Vec<String> {
    let mut p = path(&USERS, &[key]);
    p.extend(rest.iter().map(|s| (*s).to_owned()));
    p
}

/// A call whose 404 means "not there": `None`.
pub(crate) fn found<T>(result: Result<T>) -> Result<Option<T>> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The Directory, Data Transfer and Licensing API calls the connector makes. Every path
/// parameter is one percent-encoded path segment (see [`offboard_http::HttpRequest`]).
#[derive(Debug, Clone)]
pub(crate) struct GoogleClient {
    http: HttpClient,
    /// The Licensing API's client (its own root URL); `None`: licences are not managed.
    licensing: Option<HttpClient>,
    /// Shared by both clients: one quota per project.
    pacer: Option<Arc<Pacer>>,
}

impl GoogleClient {
    pub(crate) fn new(
        http: HttpClient,
        licensing: Option<HttpClient>,
        pacer: Option<Pacer>,
    ) -> Self {
        Self {
            http,
            licensing,
            pacer: pacer.map(Arc::new),
        }
    }

    /// Makes both clients and the pacer draw from `budget`.
    pub(crate) fn use_rate_budget(&self, budget: Arc<dyn offboard_core::RateBudget>) {
        self.http.use_rate_budget(Arc::clone(&budget));
        if let Some(l) = &self.licensing {
            l.use_rate_budget(budget);
        }
    }

    async fn paced(&self, http: &HttpClient, request: HttpRequest) -> Result<HttpResponse> {
        if let Some(p) = &self.pacer {
            p.wait().await?;
        }
        let result = http.send(request).await.map_err(with_hint);
        // Google's quota errors (429, 403 rateLimitExceeded) hold the project's quota for
        // every process sharing the budget.
        if let (Some(p), Err(e)) = (&self.pacer, &result)
            && e.kind() == offboard_core::ErrorKind::RateLimited
            && let Some(wait) = e.retry_after()
        {
            p.penalise(wait).await;
        }
        result
    }

    async fn send(&self, request: HttpRequest) -> Result<HttpResponse> {
        self.paced(&self.http, request).await
    }

    pub(crate) async fn json<T: DeserializeOwned>(&self, request: HttpRequest) -> Result<T> {
        self.send(request).await?.json()
    }

    /// Every page of a Google list: `field` of each page, following `nextPageToken` with
    /// `maxResults=max`.
    async fn all_pages<T: DeserializeOwned>(
        &self,
        request: HttpRequest,
        field: &str,
        max: &str,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..10_000 {
            let mut r = request.clone().query("maxResults", max);
            if let Some(t) = &token {
                r = r.query("pageToken", t.as_str());
            }
            let mut page: serde_json::Value = self.json(r).await?;
            if let Some(items) = page.get_mut(field).map(serde_json::Value::take) {
                out.extend(serde_json::from_value::<Vec<T>>(items).map_err(|e| {
                    Error::new(
                        ErrorKind::Vendor,
                        format!("unexpected `{field}` in a list answer: {e}"),
                    )
                })?);
            }
            match page
                .get("nextPageToken")
                .and_then(serde_json::Value::as_str)
                .filter(|t| !t.is_empty())
            {
                Some(t) => token = Some(t.to_owned()),
                None => return Ok(out),
            }
        }
        Err(Error::new(
            ErrorKind::Vendor,
            format!("more than 10000 pages of {field}; stopped"),
        ))
    }

    /// `GET admin/directory/v1/users/{userKey}`; `None` on 404.
    pub(crate) async fn get_user(&self, key: &str) -> Result<Option<User>> {
        found(self.json(HttpRequest::get(user_path(key, &[]))).await)
    }

    /// `PATCH admin/directory/v1/users/{userKey}` with `body`; the updated user.
    pub(crate) async fn patch_user(&self, key: &str, body: serde_json::Value) -> Result<User> {
        self.json(HttpRequest::new(Method::PATCH, user_path(key, &[])).json(body))
            .await
    }

    /// `DELETE admin/directory/v1/users/{userKey}`.
    pub(crate) async fn delete_user(&self, key: &str) -> Result<()> {
        self.send(HttpRequest::delete(user_path(key, &[])))
            .await
            .map(drop)
    }

    /// `POST admin/directory/v1/users/{userKey}/signOut`.
    pub(crate) async fn sign_out(&self, key: &str) -> Result<()> {
        self.send(HttpRequest::post(user_path(key, &["signOut"])))
            .await
            .map(drop)
    }

    /// `GET admin/directory/v1/users/{userKey}/tokens`.
    pub(crate) async fn list_tokens(&self, key: &str) -> Result<Vec<Token>> {
        let page: Items<Token> = self
            .json(HttpRequest::get(user_path(key, &["tokens"])))
            .await?;
        Ok(page.items)
    }

    /// `DELETE admin/directory/v1/users/{userKey}/tokens/{clientId}`.
    pub(crate) async fn delete_token(&self, key: &str, client_id: &str) -> Result<()> {
        self.send(HttpRequest::delete(user_path(key, &["tokens", client_id])))
            .await
            .map(drop)
    }

    /// `GET admin/directory/v1/users/{userKey}/asps`.
    pub(crate) async fn list_asps(&self, key: &str) -> Result<Vec<Asp>> {
        let page: Items<Asp> = self
            .json(HttpRequest::get(user_path(key, &["asps"])))
            .await?;
        Ok(page.items)
    }

    /// `DELETE admin/directory/v1/users/{userKey}/asps/{codeId}`.
    pub(crate) async fn delete_asp(&self, key: &str, code_id: i64) -> Result<()> {
        let code = code_id.to_string();
        self.send(HttpRequest::delete(user_path(key, &["asps", &code])))
            .await
            .map(drop)
    }

    /// `GET admin/directory/v1/users/{userKey}/verificationCodes`: how many valid codes.
    pub(crate) async fn count_backup_codes(&self, key: &str) -> Result<usize> {
        let page: Items<serde_json::Value> = self
            .json(HttpRequest::get(user_path(key, &["verificationCodes"])))
            .await?;
        Ok(page.items.len())
    }

    /// `POST admin/directory/v1/users/{userKey}/verificationCodes/invalidate`.
    pub(crate) async fn invalidate_backup_codes(&self, key: &str) -> Result<()> {
        self.send(HttpRequest::post(user_path(
            key,
            &["verificationCodes", "invalidate"],
        )))
        .await
        .map(drop)
    }

    /// `GET admin/directory/v1/groups?userKey={key}`, every page (`maxResults=200`).
    pub(crate) async fn list_groups(&self, key: &str) -> Result<Vec<Group>> {
        self.all_pages(
            HttpRequest::get(GROUPS).query("userKey", key),
            "groups",
            "200",
        )
        .await
    }

    /// `GET admin/directory/v1/customer/my_customer/devices/mobile?query=email:'…'`, every
    /// page (`maxResults=100`). The address is single-quoted with `\` and `'` escaped, so it
    /// is one search value whatever it holds; Google matches words, so callers filter the
    /// answer by exact address.
    pub(crate) async fn list_devices(&self, email: &str) -> Result<Vec<Device>> {
        let quoted = email.replace('\\', "\\\\").replace('\'', "\\'");
        self.all_pages(
            HttpRequest::get(DEVICES).query("query", format!("email:'{quoted}'")),
            "mobiledevices",
            "100",
        )
        .await
    }

    /// `POST admin/directory/v1/customer/my_customer/devices/mobile/{resourceId}/action`.
    pub(crate) async fn device_action(&self, resource_id: &str, action: &str) -> Result<()> {
        self.send(
            HttpRequest::post(path(&DEVICES, &[resource_id, "action"]))
                .json(serde_json::json!({ "action": action })),
        )
        .await
        .map(drop)
    }

    /// `GET admin/datatransfer/v1/applications`, every page.
    pub(crate) async fn list_applications(&self) -> Result<Vec<Application>> {
        self.all_pages(
            HttpRequest::get(path(&DATATRANSFER, &["applications"])),
            "applications",
            "500",
        )
        .await
    }

    /// `GET admin/datatransfer/v1/transfers?oldOwnerUserId={id}`, every page.
    pub(crate) async fn list_transfers(&self, old_owner: &str) -> Result<Vec<DataTransfer>> {
        self.all_pages(
            HttpRequest::get(path(&DATATRANSFER, &["transfers"]))
                .query("oldOwnerUserId", old_owner),
            "dataTransfers",
            "500",
        )
        .await
    }

    /// `POST admin/datatransfer/v1/transfers` with a `DataTransfer`.
    pub(crate) async fn insert_transfer(&self, body: serde_json::Value) -> Result<DataTransfer> {
        self.json(HttpRequest::post(path(&DATATRANSFER, &["transfers"])).json(body))
            .await
    }

    /// `GET admin/datatransfer/v1/transfers/{dataTransferId}`; `None` on 404.
    pub(crate) async fn get_transfer(&self, id: &str) -> Result<Option<DataTransfer>> {
        found(
            self.json(HttpRequest::get(path(&DATATRANSFER, &["transfers", id])))
                .await,
        )
    }

    fn licensing(&self) -> Result<&HttpClient> {
        self.licensing
            .as_ref()
            .ok_or_else(|| Error::config("licensing_url", "the Licensing API is not configured"))
    }

    /// `GET|DELETE apps/licensing/v1/product/{productId}/sku/{skuId}/user/{userId}` or
    /// `POST …/sku/{skuId}/user` (`user = None`).
    async fn licence(
        &self,
        method: Method,
        sku: &Sku,
        user: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> Result<HttpResponse> {
        let mut segments = vec![
            "apps",
            "licensing",
            "v1",
            "product",
            &sku.product,
            "sku",
            &sku.sku,
            "user",
        ];
        segments.extend(user);
        let mut request = HttpRequest::new(method, segments);
        if let Some(b) = body {
            request = request.json(b);
        }
        self.paced(self.licensing()?, request).await
    }

    /// Whether the user (by primary address) holds the licence; 404: no.
    pub(crate) async fn has_licence(&self, sku: &Sku, email: &str) -> Result<bool> {
        Ok(found(self.licence(Method::GET, sku, Some(email), None).await)?.is_some())
    }

    /// Revokes the licence; `false` on 404 (not assigned).
    pub(crate) async fn delete_licence(&self, sku: &Sku, email: &str) -> Result<bool> {
        gone_ok(
            self.licence(Method::DELETE, sku, Some(email), None)
                .await
                .map(drop),
        )
    }

    /// Assigns the licence (`LicenseAssignmentInsert{userId}`); `false` on 409 (already
    /// assigned).
    pub(crate) async fn insert_licence(&self, sku: &Sku, email: &str) -> Result<bool> {
        match self
            .licence(
                Method::POST,
                sku,
                None,
                Some(serde_json::json!({ "userId": email })),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::Conflict => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `GET admin/directory/v1/groups/{groupKey}/members/{memberKey}`; `None` on 404.
    pub(crate) async fn get_member(&self, group: &str, member: &str) -> Result<Option<Member>> {
        found(
            self.json(HttpRequest::get(path(&GROUPS, &[group, "members", member])))
                .await,
        )
    }

    /// `POST admin/directory/v1/groups/{groupKey}/members` with `Member{email, role}`;
    /// `false` on 409 (already a member).
    pub(crate) async fn insert_member(&self, group: &str, email: &str, role: &str) -> Result<bool> {
        match self
            .send(
                HttpRequest::post(path(&GROUPS, &[group, "members"]))
                    .json(serde_json::json!({"email": email, "role": role})),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::Conflict => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `DELETE admin/directory/v1/groups/{groupKey}/members/{memberKey}`.
    pub(crate) async fn delete_member(&self, group: &str, member: &str) -> Result<()> {
        self.send(HttpRequest::delete(path(
            &GROUPS,
            &[group, "members", member],
        )))
        .await
        .map(drop)
    }
}

/// A delete whose 404 means the goal already holds: `true` when something was deleted.
pub(crate) fn gone_ok(result: Result<()>) -> Result<bool> {
    Ok(found(result)?.is_some())
}
