//! [`O365Connector`]: the [`Connector`] implementation.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use offboard_core::{
    AccountRef, AccountStatus, Action, ActionName, AppId, Capabilities, Connector, Error,
    ErrorKind, ExecuteOptions, ExecuteReply, LookupRequest, Outcome, Result, Snapshot,
    Verification,
};
use offboard_http::GraphClient;
use offboard_http::graph::{self, lookup_user};

use crate::actions::{
    self, Ctx, NO_EXCHANGE, Recipient, Verb, auto_reply, exchange, forward_rule, licenses,
    meetings, recipient, teams,
};
use crate::client::{O365Client, USER_SELECT, User};
use crate::config::Texts;
use crate::exchange::ExchangeAdmin;

/// The app id of the connector: actions are named `o365.<verb>`.
pub const APP: &str = "o365";

/// The Office 365 connector. Build it with [`crate::O365Config`].
///
/// # Behavior
/// - `lookup`: one `GET /users?$filter=` with `userPrincipalName eq`, `mail eq`,
///   `proxyAddresses/any(x:x eq 'smtp:…')` and `otherMails/any(x:x eq …)` for each address
///   (OData literals through [`offboard_http::graph::odata_string`]); the answer is
///   filtered again locally (ASCII case only): [`GraphClient::find_user`]. With `external_id`:
///   `GET /users/{id}`, accepted only when the returned id is that id (Graph also resolves
///   UPNs there); [`lookup_user`] does both.
/// - Actions: see the crate docs. The Exchange-admin actions are offered only with an
///   [`ExchangeAdmin`]; [`O365Connector::unavailable`] says why they are missing otherwise.
/// - `verify_revoked`: directly assigned licences remaining, team memberships
///   (`joinedTeams`) and future meetings the person organises and has not cancelled.
///   Group-inherited licences are reported by `o365.remove_licenses` and removed with the
///   group membership (Entra), so they are not counted here.
pub struct O365Connector {
    client: O365Client,
    texts: Texts,
    exchange: Option<Arc<dyn ExchangeAdmin>>,
    capabilities: Capabilities,
}

impl fmt::Debug for O365Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("O365Connector")
            .field("graph", &self.client.graph)
            .field("exchange_admin", &self.exchange)
            .field("actions", &self.capabilities.actions.len())
            .finish()
    }
}

fn account(user: &User) -> AccountRef {
    let status = match user.account_enabled {
        Some(true) => AccountStatus::Active,
        Some(false) => AccountStatus::Suspended,
        None => AccountStatus::Unknown,
    };
    let mut a = AccountRef::new(APP, &user.id, &user.user_principal_name, status);
    if let Some(m) = &user.mail {
        a.attributes.insert("mail".into(), m.clone());
    }
    a
}

/// `Ok(None)` for not-found (the user went away while being read), the value otherwise.
fn found<T>(r: Result<T>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl O365Connector {
    pub(crate) fn new(
        graph: GraphClient,
        texts: Texts,
        exchange: Option<Arc<dyn ExchangeAdmin>>,
    ) -> Self {
        let (offered, missing): (Vec<Verb>, Vec<Verb>) = Verb::ALL
            .into_iter()
            .partition(|v| exchange.is_some() || !v.needs_exchange());
        let capabilities = missing.into_iter().fold(
            Capabilities::new(APP, offered.into_iter().map(Verb::spec).collect()),
            |c, v| c.with_unavailable(v.name(), format!("it {NO_EXCHANGE}")),
        );
        Self {
            client: O365Client { graph },
            texts,
            exchange,
            capabilities,
        }
    }

    /// The actions of this connector that are not offered as configured, with the reason
    /// (the Exchange-admin actions without an [`ExchangeAdmin`]); also in
    /// [`Capabilities::unavailable`], which the engine quotes when a policy names one.
    pub fn unavailable(&self) -> &[(ActionName, String)] {
        &self.capabilities.unavailable
    }

    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            client: &self.client,
            texts: &self.texts,
            exchange: self.exchange.as_deref(),
        }
    }

    fn check_account(&self, account: &AccountRef, op: &str) -> Result<()> {
        graph::check_account(account, APP).map_err(|e| e.with_operation(op.to_owned()))
    }

    /// The verb of an offered action, or `Unsupported` saying why it is not offered.
    fn offered(&self, name: &ActionName, op: &str) -> Result<Verb> {
        match Verb::parse(name) {
            Some(v) if self.capabilities.action(name).is_some() => Ok(v),
            Some(_) => Err(
                Error::unsupported(format!("{name} is not offered: it {NO_EXCHANGE}"))
                    .with_operation(op.to_owned()),
            ),
            None => Err(Error::unsupported(format!("{APP} does not offer {name}"))
                .with_operation(op.to_owned())),
        }
    }

    /// What the person still holds here: directly assigned licences, team memberships and
    /// future meetings they organise (none when the user or its mailbox is gone).
    async fn remaining(&self, ctx: &Ctx<'_>, id: &str) -> Result<Vec<String>> {
        let Some(l) = licenses::read(ctx, id).await? else {
            return Ok(Vec::new());
        };
        let mut remaining: Vec<String> = l
            .direct_skus()
            .map(|s| format!("licence {} assigned directly", l.label(s)))
            .collect();
        for t in teams::joined(ctx, id).await?.unwrap_or_default() {
            remaining.push(format!("member of team {}", t.label()));
        }
        match meetings::organised(ctx, id, Utc::now()).await {
            Ok(events) => remaining.extend(
                events
                    .unwrap_or_default()
                    .iter()
                    .map(|e| format!("organises future meeting {}", e.label())),
            ),
            // No mailbox: no calendar to hold meetings.
            Err(e) if e.kind() == ErrorKind::Vendor => {}
            Err(e) => return Err(e),
        }
        Ok(remaining)
    }

    fn reversible(&self, name: &ActionName, op: &str) -> Result<Verb> {
        match self.offered(name, op)? {
            v if v.reversible() => Ok(v),
            _ => Err(Error::unsupported(format!(
                "{name} is not a reversible action of {APP}; nothing to snapshot or restore"
            ))
            .with_operation(op.to_owned())),
        }
    }
}

#[async_trait]
impl Connector for O365Connector {
    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    fn use_rate_budget(&self, budget: std::sync::Arc<dyn offboard_core::RateBudget>) {
        self.client.graph.http().use_rate_budget(budget);
    }

    async fn lookup(&self, request: &LookupRequest) -> Result<Option<AccountRef>> {
        let user: Option<User> = lookup_user(&self.client.graph, request, USER_SELECT)
            .await
            .map_err(|e| e.with_operation("o365.lookup"))?;
        Ok(user.as_ref().map(account))
    }

    async fn execute(
        &self,
        account: &AccountRef,
        action: &Action,
        options: &ExecuteOptions,
    ) -> Result<ExecuteReply> {
        let op = action.name.to_string();
        let verb = self.offered(&action.name, &op)?;
        self.check_account(account, &op)?;
        let (ctx, id, dry) = (self.ctx(), account.external_id.as_str(), options.dry_run);
        let person = options.person.as_ref();
        let result = async {
            match verb {
                Verb::SetAutoReply => {
                    let params: auto_reply::Params = action.params()?;
                    auto_reply::execute(&ctx, id, person, &params, dry).await
                }
                Verb::ForwardToManager => {
                    let params: Recipient = action.params()?;
                    let to = recipient(params.to.as_deref(), person)?;
                    forward_rule::execute(&ctx, id, &to, dry).await
                }
                Verb::OnedriveToManager => {
                    let params: Recipient = action.params()?;
                    let to = recipient(params.to.as_deref(), person)?;
                    actions::onedrive::execute(&ctx, id, &to, dry).await
                }
                Verb::RemoveLicenses => licenses::execute(&ctx, id, dry).await,
                Verb::ConvertToShared => exchange::convert_to_shared(&ctx, id, dry).await,
                Verb::MailboxForwarding => {
                    let params: exchange::ForwardParams = action.params()?;
                    let to = recipient(params.to.as_deref(), person)?;
                    exchange::mailbox_forwarding(&ctx, id, &to, params.keep_copy, dry).await
                }
                Verb::HideFromGal => exchange::hide_from_gal(&ctx, id, dry).await,
                Verb::RemoveTeams => teams::execute(&ctx, id, dry).await,
                Verb::CancelMeetings => {
                    let params: meetings::Params = action.params()?;
                    let now = options.started_at.unwrap_or_else(Utc::now);
                    meetings::execute(&ctx, id, &params, now, dry).await
                }
            }
        };
        result.await.map_err(|e| e.with_operation(op))
    }

    async fn snapshot(&self, account: &AccountRef, action: &Action) -> Result<Snapshot> {
        let op = format!("snapshot {}", action.name);
        let verb = self.reversible(&action.name, &op)?;
        self.check_account(account, &op)?;
        let (ctx, id) = (self.ctx(), account.external_id.as_str());
        let data = async {
            match verb {
                Verb::SetAutoReply => auto_reply::snapshot(&ctx, id).await,
                Verb::ForwardToManager => {
                    Snapshot::encode(&forward_rule::snapshot(&ctx, id).await?)
                }
                Verb::RemoveLicenses => Snapshot::encode(&licenses::snapshot(&ctx, id).await?),
                Verb::RemoveTeams => Snapshot::encode(&teams::snapshot(&ctx, id).await?),
                _ => Snapshot::encode(&exchange::snapshot(&ctx, id).await?),
            }
        }
        .await
        .map_err(|e| e.with_operation(op.clone()))?;
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
        let (ctx, id) = (self.ctx(), account.external_id.as_str());
        let result = async {
            match verb {
                Verb::SetAutoReply => auto_reply::restore(&ctx, id, &snapshot.data).await,
                Verb::ForwardToManager => {
                    let data = snapshot.data_as()?;
                    forward_rule::restore(&ctx, id, &data).await
                }
                Verb::RemoveLicenses => {
                    let data = snapshot.data_as()?;
                    licenses::restore(&ctx, id, &data).await
                }
                Verb::RemoveTeams => {
                    let data = snapshot.data_as()?;
                    teams::restore(&ctx, id, &data).await
                }
                v => {
                    let data = snapshot.data_as()?;
                    exchange::restore(&ctx, id, &data, v == Verb::MailboxForwarding).await
                }
            }
        };
        result.await.map_err(|e| e.with_operation(op))
    }

    async fn verify_revoked(&self, account: &AccountRef) -> Result<Verification> {
        let op = "o365.verify_revoked";
        self.check_account(account, op)?;
        let ctx = self.ctx();
        match found(self.remaining(&ctx, &account.external_id).await) {
            Ok(remaining) => Ok(Verification::from_remaining(
                APP,
                remaining.unwrap_or_default(),
            )),
            Err(e) => Err(e.with_operation(op)),
        }
    }
}
