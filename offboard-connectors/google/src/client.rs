//! Wire calls to the Admin SDK Directory API; no decisions.

use offboard_core::{Error, ErrorKind, Result};
use offboard_http::{HttpClient, HttpRequest, HttpResponse, Method};
use serde::Deserialize;
use serde::de::DeserializeOwned;

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

/// `groups.list`'s page.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupsPage {
    #[serde(default)]
    groups: Vec<Group>,
    #[serde(default)]
    next_page_token: Option<String>,
}

const USERS: [&str; 4] = ["admin", "directory", "v1", "users"];
const GROUPS: [&str; 4] = ["admin", "directory", "v1", "groups"];

fn user_path(key: &str, rest: &[&str]) -> Vec<String> {
    USERS
        .iter()
        .copied()
        .chain(std::iter::once(key))
        .chain(rest.iter().copied())
        .map(str::to_owned)
        .collect()
}

/// A call whose 404 means "not there": `None`.
pub(crate) fn found<T>(result: Result<T>) -> Result<Option<T>> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The Directory API calls the connector makes. Every `{userKey}` and `{groupKey}` is one
/// percent-encoded path segment (see [`offboard_http::HttpRequest`]).
#[derive(Debug, Clone)]
pub(crate) struct GoogleClient {
    http: HttpClient,
}

impl GoogleClient {
    pub(crate) fn new(http: HttpClient) -> Self {
        Self { http }
    }

    async fn send(&self, request: HttpRequest) -> Result<HttpResponse> {
        self.http.send(request).await.map_err(with_hint)
    }

    async fn json<T: DeserializeOwned>(&self, request: HttpRequest) -> Result<T> {
        self.send(request).await?.json()
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
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..10_000 {
            let mut request = HttpRequest::get(GROUPS)
                .query("userKey", key)
                .query("maxResults", "200");
            if let Some(t) = &token {
                request = request.query("pageToken", t.as_str());
            }
            let page: GroupsPage = self.json(request).await?;
            out.extend(page.groups);
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
        Err(Error::new(
            ErrorKind::Vendor,
            "more than 10000 pages of groups; stopped",
        ))
    }

    /// `GET admin/directory/v1/groups/{groupKey}/members/{memberKey}`; `None` on 404.
    pub(crate) async fn get_member(&self, group: &str, member: &str) -> Result<Option<Member>> {
        let mut path: Vec<String> = GROUPS.iter().map(|s| (*s).to_owned()).collect();
        path.extend([group.to_owned(), "members".into(), member.to_owned()]);
        found(self.json(HttpRequest::get(path)).await)
    }

    /// `POST admin/directory/v1/groups/{groupKey}/members` with `Member{email, role}`;
    /// `false` on 409 (already a member).
    pub(crate) async fn insert_member(&self, group: &str, email: &str, role: &str) -> Result<bool> {
        let mut path: Vec<String> = GROUPS.iter().map(|s| (*s).to_owned()).collect();
        path.extend([group.to_owned(), "members".into()]);
        match self
            .send(HttpRequest::post(path).json(serde_json::json!({"email": email, "role": role})))
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::Conflict => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `DELETE admin/directory/v1/groups/{groupKey}/members/{memberKey}`.
    pub(crate) async fn delete_member(&self, group: &str, member: &str) -> Result<()> {
        let mut path: Vec<String> = GROUPS.iter().map(|s| (*s).to_owned()).collect();
        path.extend([group.to_owned(), "members".into(), member.to_owned()]);
        self.send(HttpRequest::delete(path)).await.map(drop)
    }
}

/// A delete whose 404 means the goal already holds: `true` when something was deleted.
pub(crate) fn gone_ok(result: Result<()>) -> Result<bool> {
    Ok(found(result)?.is_some())
}
