//! [`OktaConnector`]: the [`Connector`] implementation.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use offboard_core::{
    AccountRef, AccountStatus, Action, AppId, Capabilities, Connector, Error, ErrorKind,
    ExecuteOptions, ExecuteReply, LookupRequest, Outcome, Result, Snapshot, Verification,
};
use offboard_http::HttpClient;

use crate::actions::{self, Verb};
use crate::client::{OktaClient, User};
use crate::error::OktaError;

/// The app id of the connector: actions are named `okta.<verb>`.
pub const APP: &str = "okta";

/// The Okta connector. Build it with [`crate::OktaConfig`].
///
/// # Behavior
/// - `lookup`: one `GET /api/v1/users?search=` with `profile.login` and `profile.email` `eq`
///   each address (see [`search_expression`]); the answer is filtered again locally (ASCII
///   case only), so a server-side widening cannot reach us. `profile.secondEmail` is never
///   matched: users edit it themselves, so a stranger's recovery address must not make their
///   account the person's. An identifier longer than [`MAX_IDENTIFIER_CHARS`] is refused
///   (`InvalidInput`, not repeated in the message) before any request.
///   With `external_id`: `GET /api/v1/users/{id}`, accepted only when the returned id is that
///   id (Okta also resolves logins there).
/// - Actions: see the crate docs. Each reads first; a repeat is `AlreadyDone`; a missing user
///   is `NotFound` (delete: `AlreadyDone`).
/// - `verify_revoked`: status, `OKTA_GROUP` memberships, app links, admin roles (own and
///   through groups), OAuth refresh tokens, consent grants and enrolled factors.
/// - `discover`: the user's app links, as accounts of the apps they name.
pub struct OktaConnector {
    client: OktaClient,
    pub(crate) http: HttpClient,
    capabilities: Capabilities,
}

impl fmt::Debug for OktaConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OktaConnector")
            .field("http", &self.http)
            .field("actions", &self.capabilities.actions.len())
            .finish()
    }
}

/// The longest identifier (address or user id) a lookup or an action sends, in characters:
/// Okta's `UserProfile` allows at most 100 in `login` and `email` (`maxLength: 100`), and user
/// ids are 20.
pub const MAX_IDENTIFIER_CHARS: usize = 100;

/// Builds the `search` expression matching any of `addresses` exactly, as login or (primary)
/// email; never `profile.secondEmail`, which users edit themselves.
///
/// # Behavior
/// `\` and `"` are escaped inside the quoted string (SCIM filter rules), so no input can end
/// the string and add an operator. Empty addresses are skipped (`None` when none is left).
///
/// # Errors
/// `InvalidInput` for an address with a control character (NUL, CR, LF...) or longer than
/// [`MAX_IDENTIFIER_CHARS`]; the message does not repeat the address.
pub fn search_expression<S: AsRef<str>>(addresses: &[S]) -> Result<Option<String>> {
    let mut terms = Vec::new();
    for address in addresses {
        let address = address.as_ref();
        let escaped = quoted("address", address)?;
        if address.is_empty() {
            continue;
        }
        for attr in ["profile.login", "profile.email"] {
            terms.push(format!("{attr} eq {escaped}"));
        }
    }
    Ok((!terms.is_empty()).then(|| terms.join(" or ")))
}

/// `value` as a quoted `search` string: `\` and `"` escaped; control characters and values
/// longer than [`MAX_IDENTIFIER_CHARS`] refused.
pub(crate) fn quoted(field: &'static str, value: &str) -> Result<String> {
    check_identifier(field, value)?;
    Ok(format!(
        "\"{}\"",
        value.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

fn status(raw: &str) -> AccountStatus {
    match raw {
        "ACTIVE" | "PASSWORD_EXPIRED" | "LOCKED_OUT" | "RECOVERY" => AccountStatus::Active,
        "SUSPENDED" => AccountStatus::Suspended,
        "DEPROVISIONED" => AccountStatus::Deprovisioned,
        _ => AccountStatus::Unknown,
    }
}

fn account(user: &User) -> AccountRef {
    let mut a = AccountRef::new(APP, &user.id, &user.profile.login, status(&user.status));
    a.attributes
        .insert("okta_status".into(), user.status.clone());
    a
}

/// Refuses a value longer than [`MAX_IDENTIFIER_CHARS`] (checked first, so the message never
/// holds it) or holding a control character.
fn check_identifier(field: &'static str, value: &str) -> Result<()> {
    if value.chars().nth(MAX_IDENTIFIER_CHARS).is_some() {
        return Err(OktaError::TooLong {
            field,
            max: MAX_IDENTIFIER_CHARS,
        }
        .into());
    }
    if value.chars().any(char::is_control) {
        return Err(OktaError::ControlCharacter {
            field,
            value: value.to_owned(),
        }
        .into());
    }
    Ok(())
}

fn check_id(id: &str, op: &str) -> Result<()> {
    check_identifier("external id", id).map_err(|e| e.with_operation(op.to_owned()))
}

impl OktaConnector {
    /// A connector over an already built client (base URL = the org URL).
    pub fn from_client(http: HttpClient) -> Self {
        Self {
            client: OktaClient::new(http.clone()),
            http,
            capabilities: Capabilities::new(APP, Verb::ALL.iter().map(|v| v.spec()).collect())
                .with_discovery(),
        }
    }

    fn check_account(&self, account: &AccountRef, op: &str) -> Result<()> {
        if account.app.as_str() != APP {
            return Err(Error::invalid_input(format!(
                "account {} belongs to {}, not {APP}",
                account.external_id, account.app
            ))
            .with_operation(op.to_owned()));
        }
        check_id(&account.external_id, op)
    }

    fn reversible(&self, action: &offboard_core::ActionName, op: &str) -> Result<Verb> {
        match Verb::parse(action) {
            Some(v) if v.reversible() => Ok(v),
            _ => Err(Error::unsupported(format!(
                "{action} is not a reversible action of {APP}; nothing to snapshot or restore"
            ))
            .with_operation(op.to_owned())),
        }
    }
}

impl OktaConnector {
    /// What `verify_revoked` reads besides the status: `OKTA_GROUP` memberships, app links,
    /// admin roles (the user's own and their groups'), OAuth refresh tokens per client,
    /// consent grants and enrolled factors.
    async fn remaining_access(&self, id: &str) -> Result<Vec<String>> {
        let c = &self.client;
        let mut remaining = Vec::new();
        for g in c.list_groups(id).await? {
            if g.kind == "OKTA_GROUP" {
                remaining.push(format!("member of group {} ({})", g.profile.name, g.id));
            }
        }
        for l in c.list_app_links(id).await? {
            remaining.push(format!("assigned app {} ({})", l.label, l.app_instance_id));
        }
        for r in c.list_roles(id).await? {
            remaining.push(format!("admin role {} ({}, {})", r.kind, r.holder(), r.id));
        }
        for client in c.list_clients(id).await? {
            for t in c.list_client_tokens(id, &client.client_id).await? {
                let client = &client.client_id;
                remaining.push(format!("OAuth refresh token {} of client {client}", t.id));
            }
        }
        for g in c.list_grants(id).await? {
            remaining.push(format!("OAuth consent grant {}", g.id));
        }
        for f in c.list_factors(id).await? {
            let kind = f.factor_type.unwrap_or_default();
            remaining.push(format!("enrolled MFA factor {kind} ({})", f.id));
        }
        Ok(remaining)
    }
}

fn user_gone(id: &str, op: &str) -> Error {
    Error::not_found(format!("user {id} does not exist")).with_operation(op.to_owned())
}

#[async_trait]
impl Connector for OktaConnector {
    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    fn use_rate_budget(&self, budget: std::sync::Arc<dyn offboard_core::RateBudget>) {
        self.http.use_rate_budget(budget);
    }

    async fn lookup(&self, request: &LookupRequest) -> Result<Option<AccountRef>> {
        let op = "okta.lookup";
        if let Some(id) = &request.external_id {
            check_id(id, op)?;
            if id.is_empty() || id == "." || id == ".." {
                return Ok(None);
            }
            return match self.client.get_user(id).await {
                Ok(Some(user)) if user.id == *id => Ok(Some(account(&user))),
                Ok(_) => Ok(None),
                Err(e) => Err(e.with_operation(op)),
            };
        }
        let person = &request.person;
        let addresses: Vec<&str> = std::iter::once(person.email.as_str())
            .chain(person.aliases.iter().map(String::as_str))
            .collect();
        let Some(expression) = search_expression(&addresses).map_err(|e| e.with_operation(op))?
        else {
            return Ok(None);
        };
        let users = self
            .client
            .search_users(&expression)
            .await
            .map_err(|e| e.with_operation(op))?;
        let mut matches: BTreeMap<String, User> = BTreeMap::new();
        for user in users {
            let p = &user.profile;
            let names = [Some(p.login.as_str()), p.email.as_deref()];
            let hit = names.iter().flatten().any(|n| {
                addresses
                    .iter()
                    .any(|a| !a.is_empty() && a.eq_ignore_ascii_case(n))
            });
            if hit {
                matches.insert(user.id.clone(), user);
            }
        }
        match matches.len() {
            0 => Ok(None),
            1 => Ok(matches.values().next().map(account)),
            n => Err(Error::ambiguous(format!(
                "{n} Okta users match {}: {}",
                person.email,
                matches
                    .values()
                    .map(|u| format!("{} ({})", u.profile.login, u.id))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .with_operation(op)),
        }
    }

    async fn execute(
        &self,
        account: &AccountRef,
        action: &Action,
        options: &ExecuteOptions,
    ) -> Result<ExecuteReply> {
        let op = action.name.to_string();
        let Some(verb) = Verb::parse(&action.name) else {
            return Err(
                Error::unsupported(format!("{APP} does not offer {}", action.name))
                    .with_operation(op),
            );
        };
        self.check_account(account, &op)?;
        let (c, id, dry) = (&self.client, account.external_id.as_str(), options.dry_run);
        let result = match verb {
            Verb::Suspend => match action.params() {
                Ok(params) => actions::suspend::execute(c, id, dry, &params).await,
                Err(e) => Err(e),
            },
            Verb::ClearSessions => actions::clear_sessions::execute(c, id, dry).await,
            Verb::RevokeGrants => actions::revoke_grants::execute(c, id, dry).await,
            Verb::ResetFactors => actions::reset_factors::execute(c, id, dry).await,
            Verb::RemoveGroups => actions::remove_groups::execute(c, id, dry).await,
            Verb::UnassignApps => actions::unassign_apps::execute(c, id, dry).await,
            Verb::RemoveAdminRoles => actions::remove_admin_roles::execute(c, id, dry).await,
            Verb::Deactivate => actions::deactivate::execute(c, id, dry).await,
            Verb::Delete => actions::delete::execute(c, id, dry).await,
        };
        result.map_err(|e| e.with_operation(op))
    }

    async fn snapshot(&self, account: &AccountRef, action: &Action) -> Result<Snapshot> {
        let op = format!("snapshot {}", action.name);
        let verb = self.reversible(&action.name, &op)?;
        self.check_account(account, &op)?;
        let id = account.external_id.as_str();
        let data = async {
            match verb {
                Verb::RemoveGroups => actions::remove_groups::snapshot(&self.client, id)
                    .await?
                    .as_ref()
                    .map(Snapshot::encode)
                    .transpose(),
                _ => actions::suspend::snapshot(&self.client, id)
                    .await?
                    .as_ref()
                    .map(Snapshot::encode)
                    .transpose(),
            }
        }
        .await
        .map_err(|e| e.with_operation(op.clone()))?;
        let data = data.ok_or_else(|| user_gone(id, &op))?;
        Ok(Snapshot::new(
            AppId::new(APP),
            action.name.clone(),
            id,
            data,
        ))
    }

    async fn restore(&self, account: &AccountRef, snapshot: &Snapshot) -> Result<Outcome> {
        let op = format!("restore {}", snapshot.action);
        let verb = self.reversible(&snapshot.action, &op)?;
        self.check_account(account, &op)?;
        snapshot
            .check_restores(&AppId::new(APP), account)
            .map_err(|e| e.with_operation(op.clone()))?;
        let id = account.external_id.as_str();
        let result = match verb {
            Verb::RemoveGroups => {
                let data: actions::remove_groups::Data = snapshot
                    .data_as()
                    .map_err(|e| e.with_operation(op.clone()))?;
                if self.client.get_user(id).await?.is_none() {
                    return Err(user_gone(id, &op));
                }
                actions::remove_groups::restore(&self.client, id, &data).await
            }
            _ => {
                let data: actions::suspend::Data = snapshot
                    .data_as()
                    .map_err(|e| e.with_operation(op.clone()))?;
                let Some(user) = self.client.get_user(id).await? else {
                    return Err(user_gone(id, &op));
                };
                if verb == Verb::Suspend {
                    actions::suspend::restore(&self.client, id, &user.status, &data).await
                } else {
                    actions::deactivate::restore(&self.client, id, &user.status, &data).await
                }
            }
        };
        result.map_err(|e| e.with_operation(op))
    }

    async fn verify_revoked(&self, account: &AccountRef) -> Result<Verification> {
        let op = "okta.verify_revoked";
        self.check_account(account, op)?;
        let id = account.external_id.as_str();
        let read = async {
            let Some(user) = self.client.get_user(id).await? else {
                return Ok(Vec::new());
            };
            let mut remaining = Vec::new();
            if !matches!(user.status.as_str(), "SUSPENDED" | "DEPROVISIONED") {
                remaining.push(format!("status {}", user.status));
            }
            remaining.extend(self.remaining_access(id).await?);
            Ok::<_, Error>(remaining)
        };
        match read.await {
            Ok(remaining) => Ok(Verification::from_remaining(APP, remaining)),
            // Deleted between two reads: nothing remains.
            Err(e) if e.kind() == ErrorKind::NotFound => {
                Ok(Verification::from_remaining(APP, Vec::new()))
            }
            Err(e) => Err(e.with_operation(op)),
        }
    }

    async fn discover(&self, account: &AccountRef) -> Result<Vec<AccountRef>> {
        let op = "okta.discover";
        self.check_account(account, op)?;
        let links = match self.client.list_app_links(&account.external_id).await {
            Ok(l) => l,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.with_operation(op)),
        };
        Ok(links
            .into_iter()
            .map(|l| {
                let mut a = AccountRef::new(
                    AppId::new(l.app_name.clone()),
                    account.external_id.clone(),
                    account.login.clone(),
                    AccountStatus::Unknown,
                );
                a.attributes
                    .insert("okta_app_instance_id".into(), l.app_instance_id);
                a.attributes.insert("okta_app_label".into(), l.label);
                a.attributes.insert("via".into(), APP.into());
                a
            })
            .collect())
    }
}
