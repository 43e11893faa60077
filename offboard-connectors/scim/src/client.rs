//! Wire calls to a SCIM 2.0 service provider (RFC 7644); no decisions.

use offboard_core::{Error, ErrorKind, Result};
use offboard_http::{HttpClient, HttpRequest, HttpResponse, Method, header};
use serde::Deserialize;
use serde_json::{Value, json};

/// The PATCH message schema.
pub(crate) const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// The SCIM media type (RFC 7644 §8.1).
const SCIM_JSON: &str = "application/scim+json";

/// The most pages a listing follows.
const MAX_PAGES: usize = 10_000;

/// A user resource, with its raw JSON (for a PUT of the whole resource) and its ETag.
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub(crate) id: String,
    pub(crate) user_name: String,
    pub(crate) external_id: Option<String>,
    pub(crate) emails: Vec<String>,
    pub(crate) active: bool,
    /// The ids of the `groups` attribute; `None` when the provider does not return it.
    pub(crate) groups: Option<Vec<(String, String)>>,
    pub(crate) etag: Option<String>,
    pub(crate) raw: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserWire {
    id: String,
    #[serde(default)]
    user_name: String,
    #[serde(default)]
    external_id: Option<String>,
    #[serde(default)]
    emails: Vec<MultiValue>,
    /// Absent `active` reads as active: nothing says the user cannot sign in.
    #[serde(default)]
    active: Option<bool>,
    #[serde(default)]
    groups: Option<Vec<MultiValue>>,
    #[serde(default)]
    meta: Option<Meta>,
}

#[derive(Debug, Clone, Deserialize)]
struct MultiValue {
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    display: Option<String>,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(default)]
    version: Option<String>,
}

/// A group resource, as much as the connector reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Group {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) display_name: String,
    /// The member ids, when the provider returns `members`.
    #[serde(default)]
    members: Option<Vec<MultiValue>>,
}

impl Group {
    /// Whether the group's `members` (when returned) hold `user`; a group listed without
    /// `members` is taken at the filter's word.
    pub(crate) fn may_hold(&self, user: &str) -> bool {
        self.members
            .as_ref()
            .is_none_or(|m| m.iter().any(|m| m.value.as_deref() == Some(user)))
    }
}

/// What `/ServiceProviderConfig` advertises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProviderConfig {
    pub(crate) patch: bool,
    pub(crate) etag: bool,
}

fn vendor(message: String) -> Error {
    Error::new(ErrorKind::Vendor, message)
}

impl User {
    fn from_json(raw: Value, etag_header: Option<String>) -> Result<Self> {
        let wire: UserWire = serde_json::from_value(raw.clone())
            .map_err(|e| vendor(format!("unexpected SCIM user: {e}")))?;
        Ok(Self {
            id: wire.id,
            user_name: wire.user_name,
            external_id: wire.external_id,
            emails: wire.emails.into_iter().filter_map(|e| e.value).collect(),
            active: wire.active.unwrap_or(true),
            groups: wire.groups.map(|g| {
                g.into_iter()
                    .filter_map(|m| m.value.map(|v| (v, m.display.unwrap_or_default())))
                    .collect()
            }),
            etag: etag_header.or(wire.meta.and_then(|m| m.version)),
            raw,
        })
    }
}

/// Is this error the provider saying the `If-Match` was stale (412)?
pub(crate) fn is_precondition_failed(e: &Error) -> bool {
    e.context().any(|(k, v)| k == "status" && v == "412")
}

/// A write whose 404 means the goal already holds.
pub(crate) fn gone_ok(result: Result<()>) -> Result<bool> {
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// The SCIM calls the connector makes.
#[derive(Debug, Clone)]
pub(crate) struct ScimClient {
    http: HttpClient,
    page_size: usize,
    retry_unauthorized: bool,
    /// Spaces every request to the app's published budget, when one is set.
    pacer: Option<std::sync::Arc<offboard_http::Pacer>>,
}

impl ScimClient {
    pub(crate) fn new(http: HttpClient, page_size: usize) -> Self {
        Self {
            http,
            page_size,
            retry_unauthorized: false,
            pacer: None,
        }
    }

    /// Sends no faster than `requests` per `per` (none: `requests` or `per` zero).
    pub(crate) fn with_rate_limit(mut self, requests: u32, per: std::time::Duration) -> Self {
        self.pacer = self
            .http
            .pacer("requests", requests, per)
            .map(std::sync::Arc::new);
        self
    }

    /// Waits for the next request's turn under the rate limit, if any.
    async fn pace(&self) -> offboard_core::Result<()> {
        if let Some(p) = &self.pacer {
            p.wait().await?;
        }
        Ok(())
    }

    /// Whether a 401 is sent once more (the token provider fetches a fresh token).
    pub(crate) fn with_retry_unauthorized(mut self, retry: bool) -> Self {
        self.retry_unauthorized = retry;
        self
    }

    /// Sends a request; after a 401, when the token can be refreshed, once more (a token that
    /// expired early, or was revoked, is fetched anew: offboard-http dropped it on the 401).
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse> {
        self.pace().await?;
        match self.http.send(request.clone()).await {
            Err(e)
                if self.retry_unauthorized
                    && e.context().any(|(k, v)| k == "status" && v == "401") =>
            {
                self.pace().await?;
                self.http.send(request).await
            }
            other => other,
        }
    }

    fn write(
        method: Method,
        segments: &[&str],
        body: Option<Value>,
        etag: Option<&str>,
    ) -> HttpRequest {
        let mut r = HttpRequest::new(method, segments.iter().copied()).bucket("scim_write");
        if let Some(b) = body {
            r = r.header(header::CONTENT_TYPE, SCIM_JSON).json(b);
        }
        if let Some(e) = etag {
            r = r.header(header::IF_MATCH, e);
        }
        r
    }

    /// `GET /ServiceProviderConfig`.
    pub(crate) async fn provider_config(&self) -> Result<ProviderConfig> {
        let v: Value = self
            .send(HttpRequest::get(["ServiceProviderConfig"]).bucket("scim_read"))
            .await?
            .json()?;
        let flag = |k: &str| v[k]["supported"].as_bool().unwrap_or(false);
        Ok(ProviderConfig {
            patch: flag("patch"),
            etag: flag("etag"),
        })
    }

    /// `GET /{resource}?filter=…&startIndex=…&count=…` (without `filter`: every resource),
    /// every page: `startIndex` advances by the resources each page held, until
    /// `totalResults` are read or a page comes back empty.
    async fn list(&self, resource: &str, filter: Option<&str>) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut start = 1usize;
        for _ in 0..MAX_PAGES {
            let mut request = HttpRequest::get([resource]);
            if let Some(f) = filter {
                request = request.query("filter", f);
            }
            let page: Value = self
                .send(
                    request
                        .query("startIndex", start.to_string())
                        .query("count", self.page_size.to_string())
                        .bucket("scim_read"),
                )
                .await?
                .json()?;
            let resources = match page.get("Resources") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(a)) => a.clone(),
                Some(_) => return Err(vendor(format!("{resource}: Resources is not an array"))),
            };
            let total = page["totalResults"]
                .as_u64()
                .ok_or_else(|| vendor(format!("{resource}: ListResponse without totalResults")))?
                as usize;
            let got = resources.len();
            out.extend(resources);
            if got == 0 || out.len() >= total {
                return Ok(out);
            }
            start += got;
        }
        Err(vendor(format!(
            "{resource}: more than {MAX_PAGES} pages; stopped"
        )))
    }

    /// Users matching `filter`, every page.
    pub(crate) async fn find_users(&self, filter: &str) -> Result<Vec<User>> {
        self.list("Users", Some(filter))
            .await?
            .into_iter()
            .map(|v| User::from_json(v, None))
            .collect()
    }

    /// Every user, every page.
    pub(crate) async fn all_users(&self) -> Result<Vec<User>> {
        self.list("Users", None)
            .await?
            .into_iter()
            .map(|v| User::from_json(v, None))
            .collect()
    }

    /// Groups matching `filter`, every page.
    pub(crate) async fn find_groups(&self, filter: &str) -> Result<Vec<Group>> {
        self.list("Groups", Some(filter))
            .await?
            .into_iter()
            .map(|v| {
                serde_json::from_value(v).map_err(|e| vendor(format!("unexpected SCIM group: {e}")))
            })
            .collect()
    }

    /// `GET /{resource}/{id}` as JSON with its `ETag` header; `None` on 404.
    async fn get_one(&self, resource: &str, id: &str) -> Result<Option<(Value, Option<String>)>> {
        match self
            .send(HttpRequest::get([resource, id]).bucket("scim_read"))
            .await
        {
            Ok(r) => {
                let etag = r
                    .headers()
                    .get(header::ETAG)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                Ok(Some((r.json()?, etag)))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /Users/{id}`; `None` on 404.
    pub(crate) async fn get_user(&self, id: &str) -> Result<Option<User>> {
        match self.get_one("Users", id).await? {
            Some((json, etag)) => User::from_json(json, etag).map(Some),
            None => Ok(None),
        }
    }

    /// Sends one write (`PATCH`, `PUT`, `DELETE`) and drops the answer's body.
    async fn send_write(
        &self,
        method: Method,
        path: &[&str],
        body: Option<Value>,
        etag: Option<&str>,
    ) -> Result<()> {
        self.send(Self::write(method, path, body, etag))
            .await
            .map(drop)
    }

    /// `PATCH /{resource}/{id}` with one operation in a `PatchOp` message.
    async fn patch(
        &self,
        resource: &str,
        id: &str,
        operation: Value,
        etag: Option<&str>,
    ) -> Result<()> {
        let body = json!({"schemas": [PATCH_SCHEMA], "Operations": [operation]});
        self.send_write(Method::PATCH, &[resource, id], Some(body), etag)
            .await
    }

    /// `PATCH /Users/{id}` replacing `active`.
    pub(crate) async fn patch_active(
        &self,
        id: &str,
        active: bool,
        etag: Option<&str>,
    ) -> Result<()> {
        let op = json!({"op": "replace", "path": "active", "value": active});
        self.patch("Users", id, op, etag).await
    }

    /// `PUT /Users/{id}` with the whole resource as read, `active` set.
    pub(crate) async fn put_active(
        &self,
        user: &User,
        active: bool,
        etag: Option<&str>,
    ) -> Result<()> {
        let mut body = user.raw.clone();
        body["active"] = json!(active);
        self.send_write(Method::PUT, &["Users", &user.id], Some(body), etag)
            .await
    }

    /// `DELETE /Users/{id}`.
    pub(crate) async fn delete_user(&self, id: &str, etag: Option<&str>) -> Result<()> {
        self.send_write(Method::DELETE, &["Users", id], None, etag)
            .await
    }

    /// `PATCH /Groups/{group}` removing the member `user` (`members[value eq "user"]`).
    pub(crate) async fn remove_member(&self, group: &str, user: &str) -> Result<()> {
        let path = format!("members[value eq {}]", crate::filter::quoted(user)?);
        self.patch("Groups", group, json!({"op": "remove", "path": path}), None)
            .await
    }

    /// `GET /Groups/{group}` as JSON with its ETag; `None` on 404.
    pub(crate) async fn get_group(&self, group: &str) -> Result<Option<(Value, Option<String>)>> {
        self.get_one("Groups", group).await
    }

    /// `PUT /Groups/{group}` with the whole resource.
    pub(crate) async fn put_group(
        &self,
        group: &str,
        body: Value,
        etag: Option<&str>,
    ) -> Result<()> {
        self.send_write(Method::PUT, &["Groups", group], Some(body), etag)
            .await
    }

    /// `PATCH /Groups/{group}` adding the member `user`.
    pub(crate) async fn add_member(&self, group: &str, user: &str) -> Result<()> {
        let op = json!({"op": "add", "path": "members", "value": [{"value": user}]});
        self.patch("Groups", group, op, None).await
    }
}
