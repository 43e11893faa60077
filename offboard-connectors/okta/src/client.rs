//! Wire calls to the Okta Management API; no decisions.

use offboard_core::{ErrorKind, Result};
use offboard_http::{HttpClient, HttpRequest};
use serde::Deserialize;

/// An Okta user, as much of it as the connector reads.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct User {
    pub(crate) id: String,
    pub(crate) status: String,
    #[serde(default)]
    pub(crate) profile: Profile,
}

/// `profile` of a user.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Profile {
    #[serde(default)]
    pub(crate) login: String,
    #[serde(default)]
    pub(crate) email: Option<String>,
}

/// A group the user is a member of.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Group {
    pub(crate) id: String,
    #[serde(rename = "type")]
    pub(crate) kind: String,
    #[serde(default)]
    pub(crate) profile: GroupProfile,
}

/// `profile` of a group.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct GroupProfile {
    #[serde(default)]
    pub(crate) name: String,
}

/// An app link (`GET /api/v1/users/{id}/appLinks`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AppLink {
    pub(crate) app_instance_id: String,
    #[serde(default)]
    pub(crate) app_name: String,
    #[serde(default)]
    pub(crate) label: String,
}

/// An app user (`GET /api/v1/apps/{appId}/users/{userId}`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct AppUser {
    #[serde(default)]
    pub(crate) scope: String,
}

/// Anything with an `id` (grants, factors, tokens).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WithId {
    pub(crate) id: String,
    /// A factor's `factorType` (`push`, `sms`...).
    #[serde(default, rename = "factorType")]
    pub(crate) factor_type: Option<String>,
}

/// An admin role assignment (`GET /api/v1/users/{userId}/roles`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Role {
    pub(crate) id: String,
    #[serde(default, rename = "type")]
    pub(crate) kind: String,
    /// `USER` (the user's own) or `GROUP` (held through a group; removable only there).
    #[serde(default)]
    pub(crate) assignment_type: String,
    #[serde(default, rename = "_links")]
    links: RoleLinks,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct RoleLinks {
    #[serde(default)]
    assignee: Option<Href>,
}

#[derive(Debug, Clone, Deserialize)]
struct Href {
    href: String,
}

impl Role {
    /// Whether the assignment is the user's own, so removable through the user.
    pub(crate) fn is_direct(&self) -> bool {
        self.assignment_type.is_empty() || self.assignment_type == "USER"
    }

    /// What the role is held through, for a report: `group 00g…` for a group's role.
    pub(crate) fn holder(&self) -> String {
        let assignee = self.links.assignee.as_ref().map(|h| h.href.as_str());
        match assignee.and_then(|h| h.rsplit_once("/groups/")) {
            Some((_, group)) => format!("group {group}"),
            None => self.assignment_type.to_ascii_lowercase(),
        }
    }
}

/// An OAuth client the user has tokens or grants with.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Client {
    pub(crate) client_id: String,
}

const USERS: [&str; 3] = ["api", "v1", "users"];

fn user_path(id: &str, rest: &[&str]) -> Vec<String> {
    USERS
        .iter()
        .copied()
        .chain(std::iter::once(id))
        .chain(rest.iter().copied())
        .map(str::to_owned)
        .collect()
}

/// The Okta Management API calls the connector makes.
#[derive(Debug, Clone)]
pub(crate) struct OktaClient {
    http: HttpClient,
}

impl OktaClient {
    pub(crate) fn new(http: HttpClient) -> Self {
        Self { http }
    }

    async fn list<T: serde::de::DeserializeOwned>(&self, request: HttpRequest) -> Result<Vec<T>> {
        self.http
            .get_all_pages(request)
            .await?
            .into_iter()
            .map(|v| {
                serde_json::from_value(v).map_err(|e| {
                    offboard_core::Error::new(ErrorKind::Vendor, format!("unexpected item: {e}"))
                })
            })
            .collect()
    }

    /// `GET /api/v1/users?search=…`, all pages.
    pub(crate) async fn search_users(&self, expression: &str) -> Result<Vec<User>> {
        self.list(
            HttpRequest::get(USERS)
                .query("search", expression)
                .query("limit", "200")
                .bucket("users"),
        )
        .await
    }

    /// `GET /api/v1/users/{id}`; `None` on 404.
    pub(crate) async fn get_user(&self, id: &str) -> Result<Option<User>> {
        match self
            .http
            .send(HttpRequest::get(user_path(id, &[])).bucket("user_get"))
            .await
        {
            Ok(r) => Ok(Some(r.json()?)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /api/v1/users/{id}/lifecycle/{op}` (`sendEmail=false` where the operation takes it).
    pub(crate) async fn lifecycle(&self, id: &str, op: &str) -> Result<()> {
        let mut request = HttpRequest::post(user_path(id, &["lifecycle", op])).bucket("user_write");
        if matches!(op, "deactivate" | "activate") {
            request = request.query("sendEmail", "false");
        }
        self.http.send(request).await.map(drop)
    }

    /// `DELETE /api/v1/users/{id}?sendEmail=false`.
    pub(crate) async fn delete_user(&self, id: &str) -> Result<()> {
        self.http
            .send(
                HttpRequest::delete(user_path(id, &[]))
                    .query("sendEmail", "false")
                    .bucket("user_write"),
            )
            .await
            .map(drop)
    }

    /// `DELETE /api/v1/users/{userId}/sessions?oauthTokens=true&forgetDevices=true`.
    pub(crate) async fn clear_sessions(&self, id: &str) -> Result<()> {
        self.http
            .send(
                HttpRequest::delete(user_path(id, &["sessions"]))
                    .query("oauthTokens", "true")
                    .query("forgetDevices", "true")
                    .bucket("user_write"),
            )
            .await
            .map(drop)
    }

    /// `GET /api/v1/users/{userId}/clients`.
    pub(crate) async fn list_clients(&self, id: &str) -> Result<Vec<Client>> {
        self.list(HttpRequest::get(user_path(id, &["clients"])).bucket("other"))
            .await
    }

    /// `GET /api/v1/users/{userId}/clients/{clientId}/tokens`.
    pub(crate) async fn list_client_tokens(&self, id: &str, client: &str) -> Result<Vec<WithId>> {
        self.list(HttpRequest::get(user_path(id, &["clients", client, "tokens"])).bucket("other"))
            .await
    }

    /// `GET /api/v1/users/{userId}/grants`.
    pub(crate) async fn list_grants(&self, id: &str) -> Result<Vec<WithId>> {
        self.list(HttpRequest::get(user_path(id, &["grants"])).bucket("other"))
            .await
    }

    /// `DELETE /api/v1/users/{userId}/grants`.
    pub(crate) async fn revoke_grants(&self, id: &str) -> Result<()> {
        self.http
            .send(HttpRequest::delete(user_path(id, &["grants"])).bucket("user_write"))
            .await
            .map(drop)
    }

    /// `GET /api/v1/users/{userId}/factors`.
    pub(crate) async fn list_factors(&self, id: &str) -> Result<Vec<WithId>> {
        self.list(HttpRequest::get(user_path(id, &["factors"])).bucket("other"))
            .await
    }

    /// `GET /api/v1/users/{id}/groups`.
    pub(crate) async fn list_groups(&self, id: &str) -> Result<Vec<Group>> {
        self.list(HttpRequest::get(user_path(id, &["groups"])).bucket("other"))
            .await
    }

    /// `PUT` (add) or `DELETE` (remove) `/api/v1/groups/{groupId}/users/{userId}`.
    pub(crate) async fn group_membership(&self, group: &str, user: &str, add: bool) -> Result<()> {
        let path = ["api", "v1", "groups", group, "users", user];
        let request = if add {
            HttpRequest::put(path)
        } else {
            HttpRequest::delete(path)
        };
        self.http.send(request.bucket("groups")).await.map(drop)
    }

    /// `GET /api/v1/users/{id}/appLinks`.
    pub(crate) async fn list_app_links(&self, id: &str) -> Result<Vec<AppLink>> {
        self.list(HttpRequest::get(user_path(id, &["appLinks"])).bucket("other"))
            .await
    }

    /// `GET /api/v1/apps/{appId}/users/{userId}`; `None` on 404.
    pub(crate) async fn get_app_user(&self, app: &str, user: &str) -> Result<Option<AppUser>> {
        match self
            .http
            .send(HttpRequest::get(["api", "v1", "apps", app, "users", user]).bucket("app"))
            .await
        {
            Ok(r) => Ok(Some(r.json()?)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `DELETE /api/v1/apps/{appId}/users/{userId}?sendEmail=false`.
    pub(crate) async fn unassign_app(&self, app: &str, user: &str) -> Result<()> {
        self.http
            .send(
                HttpRequest::delete(["api", "v1", "apps", app, "users", user])
                    .query("sendEmail", "false")
                    .bucket("app"),
            )
            .await
            .map(drop)
    }

    /// `GET /api/v1/users/{userId}/roles`.
    pub(crate) async fn list_roles(&self, id: &str) -> Result<Vec<Role>> {
        self.list(HttpRequest::get(user_path(id, &["roles"])).bucket("other"))
            .await
    }

    /// `DELETE /api/v1/users/{userId}/roles/{roleAssignmentId}`.
    pub(crate) async fn remove_role(&self, id: &str, assignment: &str) -> Result<()> {
        self.http
            .send(HttpRequest::delete(user_path(id, &["roles", assignment])).bucket("user_write"))
            .await
            .map(drop)
    }
}

/// A delete whose 404 means the goal already holds.
pub(crate) fn gone_ok(result: Result<()>) -> Result<bool> {
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}
