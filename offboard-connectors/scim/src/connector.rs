//! [`ScimConnector`]: the [`Connector`] implementation.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use offboard_core::{
    AccountRef, AccountStatus, Action, ActionName, ActionSpec, AppId, Capabilities, Connector,
    Error, ErrorKind, ExecuteOptions, ExecuteReply, LookupRequest, Outcome, Result, Snapshot,
    Verification,
};
use offboard_http::HttpClient;
use tokio::sync::OnceCell;

use crate::actions::{self, Verb, deactivate::Write};
use crate::client::{ProviderConfig, ScimClient, User};
use crate::filter::quoted;
use crate::profile::{DeactivateMethod, LookupAttribute, ScimProfile};

/// A connector for one app's SCIM 2.0 service provider. Build it with [`crate::ScimConfig`].
///
/// # Behavior
/// - `lookup`: for each of the person's addresses (email, then aliases) and each of the
///   profile's [`LookupAttribute`]s, one `GET /Users?filter=…` (`userName eq "…"`,
///   `emails[value eq "…"]`, `externalId eq "<person id>"`), values escaped by
///   [`crate::quoted`]; every answer is checked again locally (`userName` and emails ignoring
///   ASCII case, as RFC 7643 declares them `caseExact: false`; `externalId` exactly), so a
///   provider that widens a filter cannot make a stranger match. No match: `None`; two or more
///   users: `Ambiguous`. With `external_id`: `GET /Users/{id}`, accepted only when the returned
///   id is that id.
/// - Actions: see the crate docs.
/// - `verify_revoked`: `active` and the group memberships; a user who no longer exists is
///   revoked.
/// - `discover` (what one account reaches elsewhere) is not offered: a SCIM account reaches
///   nothing beyond its app. The app's own account inventory is [`ScimConnector::inventory`].
pub struct ScimConnector {
    app: AppId,
    client: ScimClient,
    http: HttpClient,
    profile: ScimProfile,
    capabilities: Capabilities,
    provider: OnceCell<ProviderConfig>,
}

impl fmt::Debug for ScimConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScimConnector")
            .field("app", &self.app)
            .field("http", &self.http)
            .field("profile", &self.profile.name)
            .finish()
    }
}

fn spec(verb: Verb, app: &AppId, profile: &ScimProfile) -> Result<ActionSpec> {
    let name = verb.name(app)?;
    Ok(match verb {
        Verb::Deactivate => {
            let s = ActionSpec::new(
                name,
                "Deactivate the user (active=false, by PATCH or PUT as the provider supports; \
                 DELETE where the app's profile says so)",
            )
            .by_default();
            if profile.deactivate == DeactivateMethod::Delete {
                // The DELETE removes the account: its groups are removed first (and can be
                // restored), as nothing is left to act on afterwards.
                s.after(Verb::RemoveGroups.name(app)?)
            } else if profile.reactivation_supported {
                s.reversible()
            } else {
                s
            }
        }
        Verb::RemoveGroups => ActionSpec::new(
            name,
            "Remove the user from every group whose members hold them",
        )
        .reversible()
        .by_default(),
        Verb::Delete => ActionSpec::new(name, "Delete the user permanently (DELETE /Users/{id})")
            .critical()
            .after(Verb::Deactivate.name(app)?),
    })
}

fn account(app: &AppId, user: &User) -> AccountRef {
    let status = if user.active {
        AccountStatus::Active
    } else {
        AccountStatus::Suspended
    };
    AccountRef::new(app.clone(), &user.id, &user.user_name, status)
}

impl ScimConnector {
    /// A connector over an already built client whose base URL is the SCIM base URL.
    ///
    /// `app` must be a valid app id (as [`crate::ScimConfig::build`] checks); otherwise the
    /// connector offers no actions.
    pub fn from_client(
        app: AppId,
        http: HttpClient,
        profile: ScimProfile,
        page_size: usize,
    ) -> Self {
        let mut actions = Vec::new();
        let mut unavailable = Vec::new();
        for verb in Verb::ALL {
            let Ok(s) = spec(verb, &app, &profile) else {
                continue;
            };
            if verb == Verb::Delete
                && (!profile.delete_supported || profile.delete_only_deactivates)
            {
                let why = if profile.delete_only_deactivates {
                    format!("{}'s DELETE only deactivates the user", profile.name)
                } else {
                    format!("{} offers no DELETE of users", profile.name)
                };
                unavailable.push((s.name, why));
                continue;
            }
            actions.push(s);
        }
        let capabilities = unavailable.into_iter().fold(
            Capabilities::new(app.clone(), actions),
            |c, (name, why): (ActionName, String)| c.with_unavailable(name, why),
        );
        Self {
            client: ScimClient::new(http.clone(), page_size.max(1)),
            app,
            http,
            profile,
            capabilities,
            provider: OnceCell::new(),
        }
    }

    /// Sends a request once more after a 401 when the token provider can fetch a fresh
    /// token (OAuth client credentials: the 401 dropped the cached one); a static token is
    /// not retried. Default off.
    pub fn with_refreshable_token(mut self, refreshable: bool) -> Self {
        self.client = self.client.with_retry_unauthorized(refreshable);
        self
    }

    /// Sends no faster than `requests` per `per` (GCRA: a burst of a 60th, the rest evenly
    /// spread), so an app's published budget (e.g. 300 requests a minute) is never spent and
    /// its 429s are not met; a 429 is still honoured with its `Retry-After`. Zero: no pacing.
    /// Share one connector per app and token: the budget is the app's, not this process's.
    pub fn with_rate_limit(mut self, requests: u32, per: std::time::Duration) -> Self {
        self.client = self.client.with_rate_limit(requests, per);
        self
    }

    /// The profile in use.
    pub fn profile(&self) -> &ScimProfile {
        &self.profile
    }

    /// The app's account inventory: every user, as accounts (`Suspended` when `active` is
    /// false). `GET /Users?startIndex=…&count=<page size>` page after page (the page size from
    /// the configuration, else the profile), `startIndex` advancing by what each page held, until
    /// `totalResults` are read; a page of zero resources ends the listing early. Reads only.
    ///
    /// # Errors
    /// The provider's errors (a 429 is `RateLimited` with its `Retry-After`); a `ListResponse`
    /// without `totalResults` is a `Vendor` error.
    pub async fn inventory(&self) -> Result<Vec<AccountRef>> {
        let op = format!("{}.inventory", self.app);
        let users = self
            .client
            .all_users()
            .await
            .map_err(|e| e.with_operation(op))?;
        Ok(users.iter().map(|u| account(&self.app, u)).collect())
    }

    /// What `/ServiceProviderConfig` advertises, read once.
    async fn provider(&self) -> Result<ProviderConfig> {
        self.provider
            .get_or_try_init(|| self.client.provider_config())
            .await
            .copied()
    }

    /// The deactivation method and ETag use, resolving what the profile leaves to the provider.
    async fn write(&self) -> Result<Write> {
        let needs_config =
            self.profile.deactivate == DeactivateMethod::Advertised || self.profile.etag.is_none();
        let config = if needs_config {
            Some(self.provider().await?)
        } else {
            None
        };
        let method = match self.profile.deactivate {
            DeactivateMethod::Advertised => {
                if config.is_some_and(|c| c.patch) {
                    DeactivateMethod::Patch
                } else {
                    DeactivateMethod::Put
                }
            }
            m => m,
        };
        let etag = self
            .profile
            .etag
            .unwrap_or_else(|| config.is_some_and(|c| c.etag));
        Ok(Write { method, etag })
    }

    fn check_account(&self, account: &AccountRef, op: &str) -> Result<()> {
        if account.app != self.app {
            return Err(Error::invalid_input(format!(
                "account {} belongs to {}, not {}",
                account.external_id, account.app, self.app
            ))
            .with_operation(op.to_owned()));
        }
        quoted(&account.external_id)
            .map(drop)
            .map_err(|e| e.with_operation(op.to_owned()))
    }

    fn verb(&self, name: &ActionName, op: &str) -> Result<Verb> {
        Verb::parse(name, &self.app)
            .filter(|v| {
                self.capabilities
                    .action(&match v.name(&self.app) {
                        Ok(n) => n,
                        Err(_) => return false,
                    })
                    .is_some()
            })
            .ok_or_else(|| {
                Error::unsupported(format!("{} does not offer {name}", self.app))
                    .with_operation(op.to_owned())
            })
    }

    fn reversible(&self, name: &ActionName, op: &str) -> Result<Verb> {
        let verb = self.verb(name, op)?;
        if self.capabilities.action(name).is_some_and(|s| s.reversible) {
            Ok(verb)
        } else {
            Err(Error::unsupported(format!(
                "{name} is not a reversible action of {}; nothing to snapshot or restore",
                self.app
            ))
            .with_operation(op.to_owned()))
        }
    }

    /// The filters a lookup sends: (attribute, filter, the value it holds).
    fn lookup_filters(&self, request: &LookupRequest) -> Result<Vec<String>> {
        let person = &request.person;
        let addresses: Vec<&str> = std::iter::once(person.email.as_str())
            .chain(person.aliases.iter().map(String::as_str))
            .filter(|a| !a.is_empty())
            .collect();
        let mut filters = Vec::new();
        for attribute in self.profile.lookup {
            match attribute {
                LookupAttribute::UserName => {
                    for a in &addresses {
                        filters.push(format!("userName eq {}", quoted(a)?));
                    }
                }
                LookupAttribute::Emails => {
                    for a in &addresses {
                        filters.push(format!("emails[value eq {}]", quoted(a)?));
                    }
                }
                LookupAttribute::ExternalId => {
                    let id = person.id.as_str();
                    if !id.is_empty() {
                        filters.push(format!("externalId eq {}", quoted(id)?));
                    }
                }
            }
        }
        Ok(filters)
    }

    /// Whether `user` is the person's by an exact local re-check.
    fn matches(&self, request: &LookupRequest, user: &User) -> bool {
        let person = &request.person;
        let addresses: Vec<&str> = std::iter::once(person.email.as_str())
            .chain(person.aliases.iter().map(String::as_str))
            .filter(|a| !a.is_empty())
            .collect();
        self.profile.lookup.iter().any(|attribute| match attribute {
            LookupAttribute::UserName => addresses
                .iter()
                .any(|a| a.eq_ignore_ascii_case(&user.user_name)),
            LookupAttribute::Emails => user
                .emails
                .iter()
                .any(|e| addresses.iter().any(|a| a.eq_ignore_ascii_case(e))),
            LookupAttribute::ExternalId => {
                !person.id.as_str().is_empty()
                    && user.external_id.as_deref() == Some(person.id.as_str())
            }
        })
    }
}

fn user_gone(id: &str, op: &str) -> Error {
    Error::not_found(format!("user {id} does not exist")).with_operation(op.to_owned())
}

#[async_trait]
impl Connector for ScimConnector {
    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    fn use_rate_budget(&self, budget: std::sync::Arc<dyn offboard_core::RateBudget>) {
        self.http.use_rate_budget(budget);
    }

    async fn lookup(&self, request: &LookupRequest) -> Result<Option<AccountRef>> {
        let op = format!("{}.lookup", self.app);
        if let Some(id) = &request.external_id {
            quoted(id).map_err(|e| e.with_operation(op.clone()))?;
            if id.is_empty() || id == "." || id == ".." {
                return Ok(None);
            }
            return match self.client.get_user(id).await {
                Ok(Some(user)) if user.id == *id => Ok(Some(account(&self.app, &user))),
                Ok(_) => Ok(None),
                Err(e) => Err(e.with_operation(op)),
            };
        }
        let filters = self
            .lookup_filters(request)
            .map_err(|e| e.with_operation(op.clone()))?;
        let mut found: BTreeMap<String, User> = BTreeMap::new();
        for filter in filters {
            let users = self
                .client
                .find_users(&filter)
                .await
                .map_err(|e| e.with_operation(op.clone()))?;
            for user in users {
                if self.matches(request, &user) {
                    found.insert(user.id.clone(), user);
                }
            }
        }
        match found.len() {
            0 => Ok(None),
            1 => Ok(found.values().next().map(|u| account(&self.app, u))),
            n => Err(Error::ambiguous(format!(
                "{n} {} users match {}: {}",
                self.app,
                request.person.email,
                found
                    .values()
                    .map(|u| format!("{} ({})", u.user_name, u.id))
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
        let verb = self.verb(&action.name, &op)?;
        self.check_account(account, &op)?;
        let (c, id, dry) = (&self.client, account.external_id.as_str(), options.dry_run);
        let result = match verb {
            Verb::Deactivate => match self.write().await {
                Ok(w) => actions::deactivate::execute(c, id, dry, w).await,
                Err(e) => Err(e),
            },
            Verb::RemoveGroups => match self.write().await {
                Ok(w) => actions::remove_groups::execute(c, id, dry, w).await,
                Err(e) => Err(e),
            },
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
                _ => self
                    .client
                    .get_user(id)
                    .await?
                    .map(|u| Snapshot::encode(&actions::deactivate::Data { active: u.active }))
                    .transpose(),
            }
        }
        .await
        .map_err(|e| e.with_operation(op.clone()))?;
        let data = data.ok_or_else(|| user_gone(id, &op))?;
        Ok(Snapshot::new(
            self.app.clone(),
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
            .check_restores(&self.app, account)
            .map_err(|e| e.with_operation(op.clone()))?;
        let id = account.external_id.as_str();
        let result = match verb {
            Verb::RemoveGroups => match (snapshot.data_as(), self.write().await) {
                (Ok(data), Ok(w)) => {
                    actions::remove_groups::restore(&self.client, id, &data, w).await
                }
                (Err(e), _) | (_, Err(e)) => Err(e),
            },
            _ => match (snapshot.data_as(), self.write().await) {
                (Ok(data), Ok(w)) => actions::deactivate::restore(&self.client, id, &data, w).await,
                (Err(e), _) | (_, Err(e)) => Err(e),
            },
        };
        result.map_err(|e| e.with_operation(op))
    }

    async fn verify_revoked(&self, account: &AccountRef) -> Result<Verification> {
        let op = format!("{}.verify_revoked", self.app);
        self.check_account(account, &op)?;
        let id = account.external_id.as_str();
        let read = async {
            let Some(user) = self.client.get_user(id).await? else {
                return Ok(Vec::new());
            };
            let mut remaining = Vec::new();
            if user.active {
                remaining.push("active".to_owned());
            }
            for (g, name) in actions::remove_groups::groups_of(&self.client, &user).await? {
                remaining.push(format!("member of group {name} ({g})"));
            }
            Ok::<_, Error>(remaining)
        };
        match read.await {
            Ok(remaining) => Ok(Verification::from_remaining(self.app.clone(), remaining)),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                Ok(Verification::from_remaining(self.app.clone(), Vec::new()))
            }
            Err(e) => Err(e.with_operation(op)),
        }
    }
}
