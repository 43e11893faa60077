//! [`GoogleConnector`]: the [`Connector`] implementation.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use offboard_core::{
    AccountRef, AccountStatus, Action, ActionName, AppId, Capabilities, Connector, Error,
    ErrorKind, ExecuteOptions, ExecuteReply, LookupRequest, Outcome, Result, Snapshot,
    Verification,
};
use offboard_http::HttpClient;

use crate::actions::transfer_data::{self, Applications, Requested, TransferData};
use crate::actions::{self, Verb, move_to_ou::MoveToOu, sign_out::Memo};

use crate::client::{GoogleClient, User, found};
use crate::config::Settings;
use crate::error::{GoogleError, shown};

/// The app id of the connector: actions are named `google.<verb>`.
pub const APP: &str = "google";

/// The Google Workspace connector. Build it with [`crate::GoogleConfig`].
///
/// # Behavior
/// - `lookup`: one `GET admin/directory/v1/users/{userKey}` per address (the address is one
///   percent-encoded path segment), accepted only when the returned user has that address as
///   `primaryEmail` or in `aliases`/`nonEditableAliases` (ASCII case ignored). An address
///   without exactly one `@` (or with whitespace) cannot be a Google address and is not sent,
///   so a numeric string is never taken for a user id. Control characters, an address over
///   256 bytes or an external id over 64: `InvalidInput` before anything is sent, the message
///   showing at most the value's first 32 characters.
///   Two different users: `Ambiguous`. With `external_id`: only an all-digit id is looked up,
///   accepted only when the returned `id` is that id.
/// - Actions: see the crate docs. Each reads first; a repeat is `AlreadyDone`; a missing user
///   is `NotFound` (delete: `AlreadyDone`).
/// - `verify_revoked`: not suspended, OAuth tokens, app-specific passwords, group
///   memberships and mobile devices whose work account is not wiped are reported as
///   remaining access (licences are cost, not access, and are not checked).
/// - `discover`: one account per OAuth token client (third-party apps).
pub struct GoogleConnector {
    pub(crate) client: GoogleClient,
    http: HttpClient,
    capabilities: Capabilities,
    settings: Settings,
    signed_out: Memo,
    password_reset: Memo,
    applications: Applications,
    requested: Requested,
}

impl fmt::Debug for GoogleConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GoogleConnector")
            .field("http", &self.http)
            .field("actions", &self.capabilities.actions.len())
            .field("settings", &self.settings)
            .finish()
    }
}

fn status(user: &User) -> AccountStatus {
    if user.suspended || user.archived {
        AccountStatus::Suspended
    } else {
        AccountStatus::Active
    }
}

fn account(user: &User) -> AccountRef {
    let mut a = AccountRef::new(APP, &user.id, &user.primary_email, status(user));
    a.attributes
        .insert("org_unit_path".into(), user.org_unit_path.clone());
    a
}

/// The longest address a lookup sends (RFC 5321's limit on a path, as the AD connector).
pub(crate) const MAX_ADDRESS_LEN: usize = 256;

/// The longest external id accepted (Google user ids are about 21 digits).
const MAX_ID_LEN: usize = 64;

/// Refuses, before anything is sent, a value longer than `max` bytes or holding a control
/// character; the message never holds more than the start of the value.
fn check_identifier(value: &str, field: &'static str, max: usize, op: &str) -> Result<()> {
    let refused = if value.len() > max {
        GoogleError::TooLong {
            field,
            len: value.len(),
            max,
        }
    } else if value.chars().any(char::is_control) {
        GoogleError::ControlCharacter {
            field,
            value: shown(value),
        }
    } else {
        return Ok(());
    };
    Err(Error::from(refused).with_operation(op.to_owned()))
}

/// Whether `address` can be a Google address at all: one `@` with something on each side, no
/// whitespace. Anything else is never sent as a `userKey`.
pub(crate) fn is_address(address: &str) -> bool {
    let mut parts = address.split('@');
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some(local), Some(domain), None) if !local.is_empty() && !domain.is_empty()
    ) && !address.chars().any(char::is_whitespace)
}

/// Google user ids are decimal digits.
fn is_user_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(|b| b.is_ascii_digit())
}

fn user_gone(id: &str, op: &str) -> Error {
    Error::not_found(format!("user {id} does not exist")).with_operation(op.to_owned())
}

impl GoogleConnector {
    /// A connector over an already built client (base URL = the Directory and Data Transfer
    /// APIs' root URL), with the default settings (pacing to Google's default quota included)
    /// and no Licensing API (so without `google.remove_licenses`); [`crate::GoogleConfig`]
    /// builds the full one.
    pub fn from_client(http: HttpClient) -> Self {
        Self::new(http, None, Settings::default())
    }

    /// `google.remove_licenses` is offered only with a Licensing client and licences to
    /// revoke.
    pub(crate) fn new(http: HttpClient, licensing: Option<HttpClient>, settings: Settings) -> Self {
        let licences = licensing.is_some() && !settings.skus.is_empty();
        let specs = Verb::offered(licences)
            .into_iter()
            .map(Verb::spec)
            .collect();
        Self {
            client: GoogleClient::new(
                http.clone(),
                licensing,
                http.pacer("quota", settings.budget.0, settings.budget.1),
            ),
            http,
            capabilities: Capabilities::new(APP, specs).with_discovery(),
            settings,
            signed_out: Memo::default(),
            password_reset: Memo::default(),
            applications: Applications::default(),
            requested: Requested::default(),
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
        check_identifier(&account.external_id, "external id", MAX_ID_LEN, op)?;
        if !is_user_id(&account.external_id) {
            return Err(Error::invalid_input(format!(
                "external id {} is not a Google user id (decimal digits)",
                shown(&account.external_id)
            ))
            .with_operation(op.to_owned()));
        }
        Ok(())
    }

    fn reversible(&self, action: &ActionName, op: &str) -> Result<Verb> {
        match Verb::parse(action) {
            Some(v) if v.reversible() && self.capabilities.action(action).is_some() => Ok(v),
            _ => Err(Error::unsupported(format!(
                "{action} is not a reversible action of {APP}; nothing to snapshot or restore"
            ))
            .with_operation(op.to_owned())),
        }
    }

    async fn snapshot_data(&self, verb: Verb, id: &str) -> Result<Option<serde_json::Value>> {
        if verb == Verb::RemoveFromGroups {
            return actions::remove_from_groups::snapshot(&self.client, id)
                .await?
                .as_ref()
                .map(Snapshot::encode)
                .transpose();
        }
        let Some(user) = self.client.get_user(id).await? else {
            return Ok(None);
        };
        Ok(Some(match verb {
            Verb::RemoveLicenses => Snapshot::encode(
                &actions::remove_licenses::snapshot(&self.client, &self.settings.skus, &user)
                    .await?,
            )?,
            Verb::Suspend => Snapshot::encode(&actions::suspend::snapshot(&user))?,
            Verb::MoveToOu => Snapshot::encode(&actions::move_to_ou::snapshot(&user))?,
            _ => Snapshot::encode(&actions::hide_from_gal::snapshot(&user))?,
        }))
    }
}

#[async_trait]
impl Connector for GoogleConnector {
    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    fn use_rate_budget(&self, budget: std::sync::Arc<dyn offboard_core::RateBudget>) {
        self.client.use_rate_budget(budget);
    }

    async fn lookup(&self, request: &LookupRequest) -> Result<Option<AccountRef>> {
        let op = "google.lookup";
        if let Some(id) = &request.external_id {
            check_identifier(id, "external id", MAX_ID_LEN, op)?;
            if !is_user_id(id) {
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
        for a in &addresses {
            check_identifier(a, "address", MAX_ADDRESS_LEN, op)?;
        }
        let mut matches: BTreeMap<String, User> = BTreeMap::new();
        let mut asked: Vec<String> = Vec::new();
        for address in addresses.iter().copied().filter(|a| is_address(a)) {
            let lower = address.to_ascii_lowercase();
            if asked.contains(&lower) {
                continue;
            }
            asked.push(lower);
            let user = self
                .client
                .get_user(address)
                .await
                .map_err(|e| e.with_operation(op))?;
            if let Some(user) = user.filter(|u| u.has_address(address)) {
                matches.insert(user.id.clone(), user);
            }
        }
        match matches.len() {
            0 => Ok(None),
            1 => Ok(matches.values().next().map(account)),
            n => Err(Error::ambiguous(format!(
                "{n} Google users match {}: {}",
                person.email,
                matches
                    .values()
                    .map(|u| format!("{} ({})", u.primary_email, u.id))
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
        let Some(verb) =
            Verb::parse(&action.name).filter(|_| self.capabilities.action(&action.name).is_some())
        else {
            return Err(
                Error::unsupported(format!("{APP} does not offer {}", action.name))
                    .with_operation(op),
            );
        };
        self.check_account(account, &op)?;
        let (c, id, dry) = (&self.client, account.external_id.as_str(), options.dry_run);
        let result = match verb {
            Verb::InvalidateBackupCodes => {
                actions::invalidate_backup_codes::execute(c, id, dry).await
            }
            Verb::DeleteAsps => actions::delete_asps::execute(c, id, dry).await,
            Verb::RevokeTokens => actions::revoke_tokens::execute(c, id, dry).await,
            Verb::SignOut => {
                actions::sign_out::execute(c, &self.signed_out, id, &options.idempotency_key, dry)
                    .await
            }
            Verb::Suspend => actions::suspend::execute(c, id, dry).await,
            Verb::MoveToOu => {
                let params: MoveToOu = action.params()?;
                actions::move_to_ou::execute(c, id, &params, dry).await
            }
            Verb::HideFromGal => actions::hide_from_gal::execute(c, id, dry).await,
            Verb::RemoveFromGroups => actions::remove_from_groups::execute(c, id, dry).await,
            Verb::ResetPassword => {
                actions::reset_password::execute(
                    c,
                    &self.password_reset,
                    id,
                    &options.idempotency_key,
                    dry,
                )
                .await
            }
            Verb::TransferData => {
                let params: TransferData = action.params()?;
                let cx = transfer_data::Context {
                    applications: &self.applications,
                    names: &self.settings.transfer_apps,
                    polling: self.settings.polling,
                    person: options.person.as_ref(),
                    requested: &self.requested,
                    idempotency_key: &options.idempotency_key,
                    task: options.task,
                };
                transfer_data::execute(c, cx, id, &params, dry).await
            }
            Verb::WipeDevices => actions::wipe_devices::execute(c, id, dry).await,
            Verb::RemoveLicenses => {
                actions::remove_licenses::execute(c, &self.settings.skus, id, dry).await
            }
            Verb::Delete => actions::delete::execute(c, id, dry).await,
        };
        result.map_err(|e| e.with_operation(op))
    }

    async fn snapshot(&self, account: &AccountRef, action: &Action) -> Result<Snapshot> {
        let op = format!("snapshot {}", action.name);
        let verb = self.reversible(&action.name, &op)?;
        self.check_account(account, &op)?;
        if verb == Verb::MoveToOu {
            let params: MoveToOu = action.params()?;
            params
                .validate()
                .map_err(|e| e.with_operation(op.clone()))?;
        }
        let id = account.external_id.as_str();
        let data = self
            .snapshot_data(verb, id)
            .await
            .map_err(|e| e.with_operation(op.clone()))?
            .ok_or_else(|| user_gone(id, &op))?;
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
        let user = self
            .client
            .get_user(id)
            .await
            .map_err(|e| e.with_operation(op.clone()))?
            .ok_or_else(|| user_gone(id, &op))?;
        let c = &self.client;
        let malformed = |e: Error| e.with_operation(op.clone());
        let result = match verb {
            Verb::Suspend => {
                let d = snapshot.data_as().map_err(malformed)?;
                actions::suspend::restore(c, &user, &d).await
            }
            Verb::MoveToOu => {
                let d = snapshot.data_as().map_err(malformed)?;
                actions::move_to_ou::restore(c, &user, &d).await
            }
            Verb::HideFromGal => {
                let d = snapshot.data_as().map_err(malformed)?;
                actions::hide_from_gal::restore(c, &user, &d).await
            }
            Verb::RemoveLicenses => {
                let d = snapshot.data_as().map_err(malformed)?;
                actions::remove_licenses::restore(c, &user, &d).await
            }
            _ => {
                let d = snapshot.data_as().map_err(malformed)?;
                actions::remove_from_groups::restore(c, &user, &d).await
            }
        };
        result.map_err(|e| e.with_operation(op))
    }

    async fn verify_revoked(&self, account: &AccountRef) -> Result<Verification> {
        let op = "google.verify_revoked";
        self.check_account(account, op)?;
        let id = account.external_id.as_str();
        let read = async {
            let Some(user) = self.client.get_user(id).await? else {
                return Ok(Vec::new());
            };
            let mut remaining = Vec::new();
            if !user.suspended {
                remaining.push("not suspended".to_owned());
            }
            for t in self.client.list_tokens(id).await? {
                remaining.push(format!(
                    "OAuth token of {} ({})",
                    t.display_text, t.client_id
                ));
            }
            for a in self.client.list_asps(id).await? {
                remaining.push(format!("app-specific password {} ({})", a.name, a.code_id));
            }
            for g in self.client.list_groups(id).await? {
                remaining.push(format!("member of group {} ({})", g.email, g.id));
            }
            for d in actions::wipe_devices::devices(&self.client, &user).await?.0 {
                remaining.push(format!(
                    "mobile device {} ({}) holds the work account ({})",
                    d.model, d.resource_id, d.status
                ));
            }
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
        let op = "google.discover";
        self.check_account(account, op)?;
        let Some(tokens) = found(self.client.list_tokens(&account.external_id).await)
            .map_err(|e| e.with_operation(op))?
        else {
            return Ok(Vec::new());
        };
        Ok(tokens
            .into_iter()
            .map(|t| {
                let mut a = AccountRef::new(
                    AppId::new(app_id(&t.display_text, &t.client_id)),
                    account.external_id.clone(),
                    account.login.clone(),
                    AccountStatus::Unknown,
                );
                a.attributes
                    .insert("google_client_id".into(), t.client_id.clone());
                a.attributes
                    .insert("google_display_text".into(), t.display_text.clone());
                a.attributes
                    .insert("google_scopes".into(), t.scopes.join(" "));
                a.attributes.insert("via".into(), APP.into());
                a
            })
            .collect())
    }
}

/// An app id from a token's display text (lower-case ASCII letters and digits, `_` between),
/// else from its client id.
fn app_id(display_text: &str, client_id: &str) -> String {
    let slug = |s: &str| {
        let mut out = String::new();
        for c in s.chars() {
            if c.is_ascii_alphanumeric() {
                out.push(c.to_ascii_lowercase());
            } else if !out.is_empty() && !out.ends_with('_') {
                out.push('_');
            }
        }
        out.trim_end_matches('_').to_owned()
    };
    let s = slug(display_text);
    if s.is_empty() { slug(client_id) } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_ids_are_strict() {
        assert!(is_address("a@b.c"));
        for bad in [
            "",
            "*",
            "a",
            "@b",
            "a@",
            "a@b@c",
            "a b@c",
            "12345",
            "\"",
            "' or 1 eq 1",
        ] {
            assert!(!is_address(bad), "{bad:?}");
        }
        assert!(is_user_id("100000000000000000001"));
        for bad in ["", "a1", "1 ", "-1", "1.0", "*"] {
            assert!(!is_user_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn app_ids_are_slugs() {
        assert_eq!(app_id("Slack", "x"), "slack");
        assert_eq!(app_id("Zoom for Google!", "x"), "zoom_for_google");
        assert_eq!(
            app_id("", "123-abc.apps.googleusercontent.com"),
            "123_abc_apps_googleusercontent_com"
        );
    }
}
