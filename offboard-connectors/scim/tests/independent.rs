//! The SCIM connector against a SCIM service provider we did not write: `scim2-server` (PyPI,
//! pinned in `scripts/services/scim.sh`), which `./scripts/test` starts on loopback and names
//! in `OFFBOARD_TEST_SCIM_URL` / `OFFBOARD_TEST_SCIM_TOKEN`. A missing variable fails the test:
//! nothing skips silently.
//!
//! Users and groups are seeded, and the server's state read back, with plain HTTP through the
//! server's own SCIM API (not through the connector).
//!
//! # How scim2-server differs from our simulator (and real apps)
//! The connector runs with the `generic` profile: scim2-server advertises PATCH, filters,
//! ETags, sorting and bulk in `/ServiceProviderConfig`, and honours them, so nothing had to be
//! configured. Where it departs from what the simulator does, nothing in the connector
//! changed; the tests below pin the behaviour the connector relies on:
//! - User resources carry no `groups` attribute (RFC 7643 §4.1.2 makes it read-only and
//!   "SHOULD" be returned; scim2-server does not compute it), so `remove_groups` and
//!   `verify_revoked` find the memberships with `GET /Groups?filter=members[value eq "…"]`.
//! - A successful `PATCH` answers `204 No Content` without the resource (RFC 7644 §3.5.2 allows
//!   either), with the new `ETag` header; a stale `If-Match` is a 412, as in the simulator.

mod common;

use async_trait::async_trait;
use offboard_core::{
    AccountRef, AccountStatus, Action, ActionName, Connector, ExecuteOptions, LookupRequest,
    Outcome, Person, Secret,
};
use offboard_scim::{ScimConfig, ScimConnector};
use offboard_testkit::run_conformance;
use offboard_testkit::suite::conformance::Fixture;
use serde_json::{Value, json};

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: these tests need scim2-server. Run ./scripts/test, which starts \
             it (scripts/services/scim.sh) and exports OFFBOARD_TEST_SCIM_URL and \
             OFFBOARD_TEST_SCIM_TOKEN"
        )
    })
}

/// The server, driven directly with plain HTTP.
#[derive(Clone)]
struct Server {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Server {
    fn from_env() -> Self {
        Self {
            http: reqwest::Client::new(),
            base: var("OFFBOARD_TEST_SCIM_URL")
                .trim_end_matches('/')
                .to_owned(),
            token: var("OFFBOARD_TEST_SCIM_TOKEN"),
        }
    }

    fn connector(&self) -> ScimConnector {
        ScimConfig::new("scimsrv")
            .with_base_url(&self.base)
            .with_allow_plain_http(true)
            .with_bearer_token(Secret::new(self.token.clone()))
            .build()
            .expect("connector config")
    }

    /// Sends a request; returns the status and the JSON body (if any).
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self
            .http
            .request(method.clone(), format!("{}/{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            r = r
                .header("content-type", "application/scim+json")
                .body(b.to_string());
        }
        let answer = r
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = answer.status().as_u16();
        let text = answer.text().await.unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, json)
    }

    async fn create(&self, resource: &str, body: Value) -> String {
        let (status, created) = self
            .send(reqwest::Method::POST, resource, Some(body.clone()))
            .await;
        assert_eq!(status, 201, "POST /{resource} {body}: {created}");
        created["id"].as_str().expect("an id").to_owned()
    }

    async fn create_user(&self, user_name: &str, emails: &[&str]) -> String {
        let emails: Vec<Value> = emails
            .iter()
            .enumerate()
            .map(|(i, e)| json!({"value": e, "type": "work", "primary": i == 0}))
            .collect();
        self.create(
            "Users",
            json!({"schemas": [USER_SCHEMA], "userName": user_name, "emails": emails,
                   "active": true}),
        )
        .await
    }

    async fn create_group(&self, name: &str) -> String {
        let name = format!("{name} {}", uuid_hex());
        self.create(
            "Groups",
            json!({"schemas": [GROUP_SCHEMA], "displayName": name, "members": []}),
        )
        .await
    }

    async fn add_member(&self, group: &str, user: &str) {
        let (status, body) = self
            .send(
                reqwest::Method::PATCH,
                &format!("Groups/{group}"),
                Some(json!({"schemas": [PATCH_SCHEMA], "Operations": [
                    {"op": "add", "path": "members", "value": [{"value": user}]}]})),
            )
            .await;
        assert!(status < 300, "add {user} to {group}: {status} {body}");
    }

    async fn delete_user(&self, id: &str) {
        let (status, body) = self
            .send(reqwest::Method::DELETE, &format!("Users/{id}"), None)
            .await;
        assert!(
            status == 204 || status == 404,
            "DELETE /Users/{id}: {status} {body}"
        );
    }

    /// `GET /Users/{id}`: `None` on 404.
    async fn user(&self, id: &str) -> Option<Value> {
        let (status, body) = self
            .send(reqwest::Method::GET, &format!("Users/{id}"), None)
            .await;
        match status {
            200 => Some(body),
            404 => None,
            _ => panic!("GET /Users/{id}: {status} {body}"),
        }
    }

    async fn active(&self, id: &str) -> bool {
        self.user(id).await.expect("the user exists")["active"]
            .as_bool()
            .expect("active is a boolean")
    }

    /// The member ids of a group.
    async fn members(&self, group: &str) -> Vec<String> {
        let (status, body) = self
            .send(reqwest::Method::GET, &format!("Groups/{group}"), None)
            .await;
        assert_eq!(status, 200, "GET /Groups/{group}: {body}");
        body["members"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter_map(|m| m["value"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn uuid_hex() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Conformance users in scim2-server: each active, `userName` = the login, `emails` = the
/// aliases (else the login), and a member of one group made for the fixture, all through the
/// server's SCIM API.
struct IndependentFixture {
    server: Server,
    engineering: String,
}

impl IndependentFixture {
    async fn new(server: Server) -> Self {
        let engineering = server.create_group("Engineering").await;
        Self {
            server,
            engineering,
        }
    }
}

#[async_trait]
impl Fixture for IndependentFixture {
    async fn create_user(&self, login: &str, aliases: &[&str]) -> AccountRef {
        let emails: Vec<&str> = if aliases.is_empty() {
            vec![login]
        } else {
            aliases.to_vec()
        };
        let id = self.server.create_user(login, &emails).await;
        self.server.add_member(&self.engineering, &id).await;
        AccountRef::new("scimsrv", id, login, AccountStatus::Active)
    }

    async fn delete_user(&self, external_id: &str) {
        self.server.delete_user(external_id).await;
    }

    fn secret(&self) -> &str {
        &self.server.token
    }
}

/// The shared conformance suite passes against scim2-server with the generic profile.
#[tokio::test]
async fn scim_connector_passes_conformance_against_scim2_server() {
    let server = Server::from_env();
    let connector = server.connector();
    let fixture = IndependentFixture::new(server).await;
    let report = run_conformance(&connector, &fixture).await;
    assert_eq!(report.rules, common::CONFORMANCE_RULES);
}

fn action(name: &str) -> Action {
    Action::new(ActionName::parse(name).expect("action name"))
}

fn run() -> ExecuteOptions {
    ExecuteOptions::default()
}

struct Seeded {
    server: Server,
    scim: ScimConnector,
    account: AccountRef,
    id: String,
    groups: Vec<String>,
}

/// A user with a unique address, in two groups (with another member each), and its account as
/// the connector looks it up by email.
async fn seeded() -> Seeded {
    let server = Server::from_env();
    let scim = server.connector();
    let tag = uuid_hex();
    let login = format!("ind-{tag}@example.test");
    let mail = format!("mail-{tag}@example.test");
    let id = server.create_user(&login, &[&mail]).await;
    let other = server
        .create_user(&format!("other-{tag}@example.test"), &[])
        .await;
    let mut groups = Vec::new();
    for name in ["Sales", "Admins"] {
        let g = server.create_group(name).await;
        server.add_member(&g, &id).await;
        server.add_member(&g, &other).await;
        groups.push(g);
    }
    // Looked up by an alias that is only in `emails`.
    let person = Person::new(format!("p-{tag}"), format!("nobody-{tag}@example.test"))
        .with_alias(mail.clone());
    let account = scim
        .lookup(&LookupRequest::person(person))
        .await
        .expect("lookup")
        .expect("found by emails");
    assert_eq!(account.external_id, id);
    Seeded {
        server,
        scim,
        account,
        id,
        groups,
    }
}

/// Guards deactivation against a foreign server: PATCH `active=false` (with its ETag) leaves
/// the user inactive as scim2-server reads it back, a repeat is `AlreadyDone`, and rollback from
/// the snapshot makes the user active again.
#[tokio::test]
async fn deactivate_and_rollback_against_scim2_server() {
    let s = seeded().await;
    let deactivate = action("scimsrv.deactivate");
    let snapshot = s.scim.snapshot(&s.account, &deactivate).await.unwrap();
    let r = s
        .scim
        .execute(&s.account, &deactivate, &run())
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Done);
    assert!(!s.server.active(&s.id).await);
    let r = s
        .scim
        .execute(&s.account, &deactivate, &run())
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::AlreadyDone);
    let v = s.scim.verify_revoked(&s.account).await.unwrap();
    assert!(v.remaining.iter().all(|r| !r.contains("active")), "{v:?}");

    let restored = s.scim.restore(&s.account, &snapshot).await.unwrap();
    assert_eq!(restored, Outcome::Done);
    assert!(s.server.active(&s.id).await);
}

/// Guards group removal where the user resource carries no `groups`: the memberships are found
/// by `members[value eq …]`, removed from both groups (the other member stays), verified, and
/// re-added on rollback.
#[tokio::test]
async fn remove_groups_and_rollback_against_scim2_server() {
    let s = seeded().await;
    assert!(
        s.server.user(&s.id).await.unwrap().get("groups").is_none(),
        "scim2-server does not return groups on users (the deviation this test relies on)"
    );
    let remove = action("scimsrv.remove_groups");
    let snapshot = s.scim.snapshot(&s.account, &remove).await.unwrap();
    let r = s.scim.execute(&s.account, &remove, &run()).await.unwrap();
    assert_eq!(r.outcome, Outcome::Done);
    for g in &s.groups {
        let members = s.server.members(g).await;
        assert!(!members.contains(&s.id), "{g}: {members:?}");
        assert_eq!(members.len(), 1, "the other member stays in {g}");
    }
    let r = s.scim.execute(&s.account, &remove, &run()).await.unwrap();
    assert_eq!(r.outcome, Outcome::AlreadyDone);

    let restored = s.scim.restore(&s.account, &snapshot).await.unwrap();
    assert_eq!(restored, Outcome::Done);
    for g in &s.groups {
        assert!(s.server.members(g).await.contains(&s.id), "back in {g}");
    }
}

/// Guards delete against a foreign server: after deactivation, `DELETE /Users/{id}` removes
/// the user (a read is a 404), a repeat is `AlreadyDone`, and the account verifies as revoked.
#[tokio::test]
async fn delete_against_scim2_server() {
    let s = seeded().await;
    s.scim
        .execute(&s.account, &action("scimsrv.deactivate"), &run())
        .await
        .unwrap();
    let r = s
        .scim
        .execute(&s.account, &action("scimsrv.delete"), &run())
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Done);
    assert!(s.server.user(&s.id).await.is_none());
    let r = s
        .scim
        .execute(&s.account, &action("scimsrv.delete"), &run())
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::AlreadyDone);
    assert!(s.scim.verify_revoked(&s.account).await.unwrap().revoked);
}

/// Guards lookup by email against a foreign server: the `emails[value eq …]` filter finds the
/// user by an address that is not its `userName`, ignoring ASCII case; an unknown address finds
/// nobody.
#[tokio::test]
async fn lookup_by_email_against_scim2_server() {
    let s = seeded().await;
    let mail = s.server.user(&s.id).await.unwrap()["emails"][0]["value"]
        .as_str()
        .unwrap()
        .to_ascii_uppercase();
    let found = s
        .scim
        .lookup(&LookupRequest::person(Person::new("p", mail)))
        .await
        .unwrap()
        .expect("found by email, ignoring case");
    assert_eq!(found.external_id, s.id);
    let nobody = s
        .scim
        .lookup(&LookupRequest::person(Person::new(
            "p",
            format!("missing-{}@example.test", uuid_hex()),
        )))
        .await
        .unwrap();
    assert!(nobody.is_none());
}
