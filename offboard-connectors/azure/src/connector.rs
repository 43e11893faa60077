//! [`EntraConnector`]: the [`Connector`] implementation.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use offboard_core::{
    AccountRef, AccountStatus, Action, ActionName, AppId, Capabilities, Connector, Error,
    ErrorKind, ExecuteOptions, ExecuteReply, LookupRequest, Outcome, PRIVILEGED_ATTRIBUTE, Result,
    Snapshot, Verification,
};
use offboard_http::GraphClient;
use offboard_http::graph::{self, lookup_user};

use crate::actions::{self, Verb};
use crate::client::{EntraClient, USER_SELECT, User, found};

/// The app id of the connector: actions are named `entra.<verb>`.
pub const APP: &str = "entra";

/// The Entra ID connector. Build it with [`crate::AzureConfig`].
///
/// # Behavior
/// - `lookup`: one `GET /users?$filter=` with `userPrincipalName eq '…' or mail eq '…'`,
///   `proxyAddresses/any(x:x eq 'smtp:…')` and `otherMails/any(x:x eq '…')` for the person's
///   email and each alias ([`offboard_http::graph::user_filter`]); the answer is filtered
///   again locally (ASCII case only), so a server-side widening cannot reach us
///   ([`GraphClient::find_user`]). Zero matches:
///   `None`; two or more: `Ambiguous`. With `external_id`: `GET /users/{id}`, accepted only
///   when the returned id is that id (Graph also resolves UPNs there). The found user's
///   directory roles are read; a privileged one sets [`PRIVILEGED_ATTRIBUTE`] naming the
///   roles, and a refused read fails the lookup (see the crate docs).
/// - Actions: see the crate docs. Each reads first; a repeat is `AlreadyDone`; a missing user
///   is `NotFound` (delete: `AlreadyDone`).
/// - `verify_revoked`: `accountEnabled`, assigned cloud group memberships, app role
///   assignments, `Principal` grants, deletable authentication methods, directory roles
///   (active, eligible, through role-assignable groups) and
///   owned groups/apps, enabled owned or registered devices, Intune managed devices with no
///   wipe or retire under way, delivered access package assignments with no removal under way
///   and open access package requests, and the manager link. A soft-deleted user holds nothing.
/// - `discover`: app role assignments and `Principal` grants, as accounts of the apps they
///   name.
pub struct EntraConnector {
    client: EntraClient,
    sessions: actions::sessions::Memo,
    capabilities: Capabilities,
}

impl fmt::Debug for EntraConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EntraConnector")
            .field("graph", &self.client.graph)
            .field("actions", &self.capabilities.actions.len())
            .finish()
    }
}

pub(crate) fn account(user: &User) -> AccountRef {
    let status = match user.account_enabled {
        Some(true) => AccountStatus::Active,
        Some(false) => AccountStatus::Suspended,
        None => AccountStatus::Unknown,
    };
    let mut a = AccountRef::new(APP, &user.id, &user.user_principal_name, status);
    if let Some(mail) = &user.mail {
        a.attributes.insert("mail".into(), mail.clone());
    }
    if let Some(name) = &user.display_name {
        a.attributes.insert("display_name".into(), name.clone());
    }
    if user.synced() {
        a.attributes
            .insert("on_premises_sync".into(), "true".into());
    }
    a
}

fn user_gone(id: &str, op: &str) -> Error {
    Error::not_found(format!("user {id} does not exist")).with_operation(op.to_owned())
}

/// An app id for a Graph display name: lower case, runs of anything but ASCII letters and
/// digits as one `-`.
fn app_slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_owned()
}

impl EntraConnector {
    /// A connector over a Graph client (base URL = Graph's version root).
    pub fn from_client(graph: GraphClient) -> Self {
        Self {
            client: EntraClient::new(graph),
            sessions: actions::sessions::Memo::default(),
            capabilities: Capabilities::new(APP, Verb::ALL.iter().map(|v| v.spec()).collect())
                .with_discovery(),
        }
    }

    /// The Graph client (shared with other Graph connectors, e.g. the Entra source).
    pub fn graph(&self) -> &GraphClient {
        &self.client.graph
    }

    fn check_account(&self, account: &AccountRef, op: &str) -> Result<()> {
        graph::check_account(account, APP).map_err(|e| e.with_operation(op.to_owned()))
    }

    fn reversible(&self, action: &ActionName, op: &str) -> Result<Verb> {
        match Verb::parse(action) {
            Some(v) if v.reversible() => Ok(v),
            _ => Err(Error::unsupported(format!(
                "{action} is not a reversible action of {APP}; nothing to snapshot or restore"
            ))
            .with_operation(op.to_owned())),
        }
    }

    async fn remaining(&self, id: &str) -> Result<Vec<String>> {
        let c = &self.client;
        let Some(user) = c.get_user(id).await? else {
            return Ok(Vec::new());
        };
        let mut remaining = Vec::new();
        if user.account_enabled != Some(false) {
            remaining.push(if user.synced() {
                "sign-in enabled (synced from AD: disable in AD)".to_owned()
            } else {
                "sign-in enabled".to_owned()
            });
        }
        for o in c.member_of(id).await? {
            if o.is("group") && o.unchangeable_reason().is_none() {
                remaining.push(format!("member of group {} ({})", o.name(), o.id));
            }
        }
        if let Some(held) = actions::roles::held(c, id).await? {
            remaining.extend(held.remaining());
        }
        for a in c.app_roles(id).await? {
            remaining.push(format!(
                "app role assignment to {} ({})",
                a.resource_display_name.as_deref().unwrap_or(&a.resource_id),
                a.id
            ));
        }
        for g in c.principal_grants(id).await? {
            remaining.push(format!(
                "delegated grant to client {} ({})",
                g.client_id, g.id
            ));
        }
        for m in c.auth_methods(id).await? {
            if m.deletable_path().is_some() {
                remaining.push(format!("authentication method {} ({})", m.kind(), m.id));
            }
        }
        for o in c.owned_objects(id).await? {
            if o.is("group") || o.is("application") || o.is("servicePrincipal") {
                remaining.push(format!("owner of {} ({})", o.name(), o.id));
            }
        }
        for d in actions::devices::of_user(c, id).await?.unwrap_or_default() {
            if d.enabled() {
                remaining.push(format!("device {} enabled ({})", d.label(), d.id));
            }
        }
        for m in actions::devices::managed_of_user(c, id)
            .await?
            .unwrap_or_default()
        {
            if !m.retired_or_wiped() {
                remaining.push(format!("managed device {} not retired or wiped", m.label()));
            }
        }
        let packages = actions::access_packages::read(c, id).await?;
        for a in &packages.active {
            remaining.push(format!("access package assignment {}", a.label()));
        }
        for r in &packages.pending {
            remaining.push(format!("access package request open: {}", r.label()));
        }
        if let Some(m) = c.manager(id).await? {
            remaining.push(format!(
                "manager link to {} ({}){}",
                m.user_principal_name,
                m.id,
                if user.synced() {
                    " (synced from AD: clear it in AD)"
                } else {
                    ""
                }
            ));
        }
        Ok(remaining)
    }
}

#[async_trait]
impl Connector for EntraConnector {
    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    fn use_rate_budget(&self, budget: std::sync::Arc<dyn offboard_core::RateBudget>) {
        self.client.graph.http().use_rate_budget(budget);
    }

    async fn lookup(&self, request: &LookupRequest) -> Result<Option<AccountRef>> {
        let op = "entra.lookup";
        let user: Option<User> = lookup_user(&self.client.graph, request, USER_SELECT)
            .await
            .map_err(|e| e.with_operation(op))?;
        let Some(user) = user else {
            return Ok(None);
        };
        let mut found = account(&user);
        // Never call a person unprivileged without having read their roles: a refused read
        // (403 without RoleManagement.Read.Directory) fails the lookup.
        match actions::roles::privileged(&self.client, &user.id).await {
            Ok(Some(why)) => {
                found.attributes.insert(PRIVILEGED_ATTRIBUTE.into(), why);
            }
            Ok(None) => {}
            Err(e) => {
                let why = if e.kind() == ErrorKind::PermissionDenied {
                    "grant RoleManagement.Read.Directory"
                } else {
                    "the role read failed"
                };
                return Err(Error::new(
                    e.kind(),
                    format!(
                        "cannot tell whether {} holds a privileged directory role ({why}): {e}",
                        user.user_principal_name
                    ),
                )
                .with_retry(e.retry())
                .with_operation(op));
            }
        }
        Ok(Some(found))
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
        use actions::{
            access_packages, delete, devices, disable, immutable_id, manager, memberships, owned,
            removals, roles, sessions, workflow,
        };
        let result = match verb {
            Verb::DisableSignIn => disable::execute(c, id, dry).await,
            Verb::RevokeSessions => {
                sessions::execute(c, &self.sessions, id, &options.idempotency_key, dry).await
            }
            Verb::RemoveGroups => memberships::remove_groups(c, id, dry).await,
            Verb::RemoveAppRoles => memberships::remove_app_roles(c, id, dry).await,
            Verb::RemoveGrants => removals::remove_grants(c, id, dry).await,
            Verb::RemoveAuthMethods => removals::remove_auth_methods(c, id, dry).await,
            Verb::RemoveDirectoryRoles => roles::execute(c, id, dry).await,
            Verb::HandOverOwned => match action.params() {
                Ok(params) => owned::execute(c, id, &params, dry).await,
                Err(e) => Err(e),
            },
            Verb::ClearManager => manager::execute(c, id, dry).await,
            Verb::ClearImmutableId => immutable_id::execute(c, id, dry).await,
            Verb::DisableDevices => devices::disable(c, id, dry).await,
            Verb::IntuneWipe => devices::intune(c, id, devices::Intune::Wipe, dry).await,
            Verb::IntuneRetire => devices::intune(c, id, devices::Intune::Retire, dry).await,
            Verb::RunLifecycleWorkflow => match action.params() {
                Ok(params) => workflow::execute(c, id, &params, options.started_at, dry).await,
                Err(e) => Err(e),
            },
            Verb::RemoveAccessPackages => access_packages::execute(c, id, dry).await,
            Verb::Delete => delete::execute(c, id, dry).await,
        };
        result.map_err(|e| e.with_operation(op))
    }

    async fn snapshot(&self, account: &AccountRef, action: &Action) -> Result<Snapshot> {
        let op = format!("snapshot {}", action.name);
        let verb = self.reversible(&action.name, &op)?;
        self.check_account(account, &op)?;
        let (c, id) = (&self.client, account.external_id.as_str());
        use actions::{
            access_packages, delete, devices, disable, immutable_id, manager, memberships, owned,
            roles,
        };
        let data = async {
            match verb {
                Verb::DisableSignIn => disable::snapshot(c, id)
                    .await?
                    .as_ref()
                    .map(Snapshot::encode)
                    .transpose(),
                Verb::RemoveGroups => memberships::snapshot_groups(c, id)
                    .await?
                    .as_ref()
                    .map(Snapshot::encode)
                    .transpose(),
                Verb::RemoveAppRoles => memberships::snapshot_app_roles(c, id)
                    .await?
                    .as_ref()
                    .map(Snapshot::encode)
                    .transpose(),
                Verb::HandOverOwned => owned::snapshot(c, id, &action.params()?)
                    .await?
                    .as_ref()
                    .map(Snapshot::encode)
                    .transpose(),
                Verb::ClearImmutableId => immutable_id::snapshot(c, id)
                    .await?
                    .as_ref()
                    .map(Snapshot::encode)
                    .transpose(),
                Verb::ClearManager => manager::snapshot(c, id)
                    .await?
                    .as_ref()
                    .map(Snapshot::encode)
                    .transpose(),
                Verb::DisableDevices => devices::snapshot(c, id)
                    .await?
                    .as_ref()
                    .map(Snapshot::encode)
                    .transpose(),
                Verb::RemoveAccessPackages => access_packages::snapshot(c, id)
                    .await?
                    .as_ref()
                    .map(Snapshot::encode)
                    .transpose(),
                Verb::RemoveDirectoryRoles => roles::snapshot(c, id)
                    .await?
                    .as_ref()
                    .map(Snapshot::encode)
                    .transpose(),
                _ => delete::snapshot(c, id)
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
        let (c, id) = (&self.client, account.external_id.as_str());
        use actions::{
            access_packages, delete, devices, disable, immutable_id, manager, memberships, owned,
            roles,
        };
        let result = async {
            match verb {
                Verb::Delete => return delete::restore(c, id, &snapshot.data_as()?).await,
                Verb::DisableDevices => return devices::restore(c, &snapshot.data_as()?).await,
                Verb::ClearImmutableId => {
                    return immutable_id::restore(c, id, &snapshot.data_as()?).await;
                }
                _ => {}
            }
            let Some(user) = c.get_user(id).await? else {
                return Err(user_gone(id, &op));
            };
            match verb {
                Verb::DisableSignIn => disable::restore(c, &user, &snapshot.data_as()?).await,
                Verb::ClearManager => manager::restore(c, &user, &snapshot.data_as()?).await,
                Verb::HandOverOwned => owned::restore(c, id, &snapshot.data_as()?).await,
                Verb::RemoveAccessPackages => {
                    access_packages::restore(c, id, &snapshot.data_as()?).await
                }
                Verb::RemoveDirectoryRoles => roles::restore(c, id, &snapshot.data_as()?).await,
                Verb::RemoveGroups => {
                    memberships::restore_groups(c, id, &snapshot.data_as()?).await
                }
                _ => memberships::restore_app_roles(c, id, &snapshot.data_as()?).await,
            }
        }
        .await;
        result.map_err(|e| e.with_operation(op))
    }

    async fn verify_revoked(&self, account: &AccountRef) -> Result<Verification> {
        let op = "entra.verify_revoked";
        self.check_account(account, op)?;
        match found(self.remaining(&account.external_id).await) {
            Ok(remaining) => Ok(Verification::from_remaining(
                APP,
                remaining.unwrap_or_default(),
            )),
            Err(e) => Err(e.with_operation(op)),
        }
    }

    async fn discover(&self, account: &AccountRef) -> Result<Vec<AccountRef>> {
        let op = "entra.discover";
        self.check_account(account, op)?;
        let id = account.external_id.as_str();
        let read = async {
            let roles = self.client.app_roles(id).await?;
            let grants = self.client.principal_grants(id).await?;
            Ok::<_, Error>((roles, grants))
        };
        let (roles, grants) = match found(read.await) {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(Vec::new()),
            Err(e) => return Err(e.with_operation(op)),
        };
        let mut apps: BTreeMap<String, AccountRef> = BTreeMap::new();
        let mut add = |name: &str, key: &str, value: &str| {
            let slug = app_slug(name);
            if slug.is_empty() {
                return;
            }
            let a = apps.entry(slug.clone()).or_insert_with(|| {
                let mut a = AccountRef::new(
                    AppId::new(slug),
                    account.external_id.clone(),
                    account.login.clone(),
                    AccountStatus::Unknown,
                );
                a.attributes.insert("via".into(), APP.into());
                a.attributes
                    .insert("entra_app_name".into(), name.to_owned());
                a
            });
            a.attributes.insert(key.to_owned(), value.to_owned());
        };
        for r in &roles {
            let name = r.resource_display_name.as_deref().unwrap_or(&r.resource_id);
            add(name, "entra_resource_id", &r.resource_id);
        }
        // A grant names its client's service principal id only; its name is known when the
        // user also holds an app role of that service principal.
        let known: BTreeMap<&str, &str> = roles
            .iter()
            .filter_map(|r| Some((r.resource_id.as_str(), r.resource_display_name.as_deref()?)))
            .collect();
        for g in &grants {
            let name = known
                .get(g.client_id.as_str())
                .copied()
                .unwrap_or(&g.client_id);
            add(name, "entra_grant_client_id", &g.client_id);
        }
        Ok(apps.into_values().collect())
    }
}
