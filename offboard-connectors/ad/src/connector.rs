//! [`AdConnector`]: the [`Connector`] for Active Directory.

use async_trait::async_trait;
use offboard_core::{
    AccountRef, AccountStatus, Action, Capabilities, Connector, Error, ErrorKind, ExecuteOptions,
    ExecuteReply, LookupRequest, Outcome, PRIVILEGED_ATTRIBUTE, Result, Snapshot, Verification,
};
use uuid::Uuid;

use crate::actions::{
    Verb, account_expires, clear_manager, disable, hide_address_lists, move_ou, remove_groups,
    reset_password, stamp_description,
};
use crate::client::{Client, USER_CLASS, User};
use crate::config::AdConfig;

/// The app id of Active Directory accounts.
pub const APP: &str = "ad";

/// The longest address the connector will look up.
const MAX_ADDRESS_LEN: usize = 256;

/// Well-known accounts that are protected whatever their RID (`krbtgt_<n>` are RODCs'
/// Kerberos accounts).
const WELL_KNOWN_ACCOUNTS: [&str; 5] = [
    "krbtgt",
    "Guest",
    "Administrator",
    "DefaultAccount",
    "WDAGUtilityAccount",
];

/// Acts on Active Directory users over LDAPS or StartTLS.
///
/// # Behavior
/// - Accounts are addressed by objectGUID ([`AccountRef::external_id`], the GUID's usual string
///   form): every action first finds the user by GUID, then acts on the DN found, so a rename
///   or move between lookup and action cannot redirect it.
/// - Lookups match `userPrincipalName`, `mail` and `proxyAddresses` (`smtp:`) for addresses
///   with an `@`, and `sAMAccountName` for those without; every value is escaped (RFC 4515),
///   and each hit is checked again client-side for exact equality ignoring ASCII case only.
/// - Built-in and well-known accounts (RID below 1000, `krbtgt`, `Guest`, `Administrator`,
///   `DefaultAccount`) and the configured protected accounts are never returned by a lookup
///   and never changed (`Protected`): a person whose address is the bare word `Guest` cannot
///   reach the built-in Guest account.
/// - Current members (direct, nested or primary) of AD's built-in privileged groups (Domain
///   Admins, Enterprise Admins, Administrators ...: read from the user's `tokenGroups`) and of
///   the configured protected groups are refused with a `Protected` error; nothing is changed.
/// - `adminCount=1` alone (it stays set after someone leaves the privileged groups) does not
///   refuse: the lookup marks the account privileged ([`PRIVILEGED_ATTRIBUTE`]), so every
///   action on it needs a confirmation.
/// - `Debug` never shows the bind password.
#[derive(Debug)]
pub struct AdConnector {
    client: Client,
    capabilities: Capabilities,
}

impl AdConnector {
    /// Connects and binds once (checking the URL, TLS and credentials), reads the schema to
    /// decide whether `ad.hide_from_address_lists` can be offered, and returns the connector.
    ///
    /// # Errors
    /// `Config` for TLS set-up problems or a DC that requires TLS; `Unauthenticated` for bad
    /// credentials; `Unavailable` when the DC cannot be reached.
    pub async fn connect(config: AdConfig) -> Result<Self> {
        let client = Client::new(config)?;
        client
            .ping()
            .await
            .map_err(|e| e.with_operation("ad.connect"))?;
        let exchange = client
            .schema_has_attribute(hide_address_lists::ATTRIBUTE)
            .await
            .map_err(|e| e.with_operation("ad.connect"))?;
        let actions = Verb::ALL
            .into_iter()
            .filter(|v| exchange || *v != Verb::HideFromAddressLists)
            .map(Verb::spec)
            .collect();
        Ok(Self {
            client,
            capabilities: Capabilities::new(APP, actions),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &AdConfig {
        self.client.config()
    }

    fn account_ref(&self, user: &User) -> AccountRef {
        let login = user
            .upn
            .clone()
            .or_else(|| user.sam.clone())
            .or_else(|| user.mail.first().cloned())
            .unwrap_or_default();
        let status = if user.disabled() {
            AccountStatus::Suspended
        } else {
            AccountStatus::Active
        };
        let mut account = AccountRef::new(APP, user.guid.to_string(), login, status);
        account.attributes.insert("dn".into(), user.dn.clone());
        if user.admin {
            account.attributes.insert(
                PRIVILEGED_ATTRIBUTE.into(),
                "adminCount=1: a member of a privileged group now or before".into(),
            );
        }
        if let Some(sam) = &user.sam {
            account
                .attributes
                .insert("sam_account_name".into(), sam.clone());
        }
        account
    }

    /// Refuses built-in, well-known and configured protected accounts.
    fn check_not_well_known(&self, user: &User) -> Result<()> {
        let sam = user.sam.as_deref().unwrap_or_default();
        let why = if let Some(rid) = user
            .sid
            .as_ref()
            .and_then(|s| s.rid())
            .filter(|r| *r < 1000)
        {
            Some(format!("a built-in account (RID {rid})"))
        } else if WELL_KNOWN_ACCOUNTS
            .iter()
            .any(|w| w.eq_ignore_ascii_case(sam))
            || sam.to_ascii_lowercase().starts_with("krbtgt_")
        {
            Some("a well-known account".to_owned())
        } else if self
            .client
            .config()
            .protected_accounts
            .iter()
            .any(|a| a.eq_ignore_ascii_case(sam))
        {
            Some("a protected account (protected_accounts)".to_owned())
        } else {
            None
        };
        match why {
            Some(why) => Err(Error::new(
                ErrorKind::Protected,
                format!("{sam} is {why}; offboard never changes it"),
            )
            .with_context("dn", &user.dn)),
            None => Ok(()),
        }
    }

    /// Refuses every protected account: well-known ones, current members of AD's privileged
    /// groups and of the configured protected groups.
    async fn check_not_protected(&self, user: &User) -> Result<()> {
        self.check_not_well_known(user)?;
        let mut groups = self.client.privileged_memberships(user).await?;
        groups.extend(self.client.protected_memberships(user).await?);
        if groups.is_empty() {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Protected,
            format!(
                "the user is a member of protected group(s) {}; offboard never changes such \
                 accounts",
                groups.join("; ")
            ),
        )
        .with_context("dn", &user.dn))
    }

    /// The user behind an account, by GUID; `None` when the id is no GUID or nobody has it.
    async fn user(&self, account: &AccountRef) -> Result<Option<User>> {
        match parse_guid(&account.external_id) {
            Some(guid) => self.client.user_by_guid(&guid).await,
            None => Ok(None),
        }
    }

    fn verb(&self, action: &Action) -> Result<Verb> {
        let offered = self.capabilities.action(&action.name).is_some();
        match Verb::from_name(&action.name) {
            Some(verb) if offered => Ok(verb),
            Some(Verb::HideFromAddressLists) => Err(Error::unsupported(
                "ad.hide_from_address_lists is not available: the directory's schema has no \
                 msExchHideFromAddressLists attribute (no Exchange schema extension)",
            )),
            _ => Err(Error::unsupported(format!(
                "Active Directory does not offer {}",
                action.name
            ))),
        }
    }

    async fn lookup_addresses(&self, addresses: &[String]) -> Result<Option<AccountRef>> {
        let mut clauses = String::new();
        for address in addresses {
            let escaped = ldap3::ldap_escape(address.as_str());
            if address.contains('@') {
                clauses.push_str(&format!(
                    "(userPrincipalName={escaped})(mail={escaped})(proxyAddresses=smtp:{escaped})"
                ));
            } else {
                clauses.push_str(&format!("(sAMAccountName={escaped})"));
            }
        }
        let filter = format!("(&{USER_CLASS}(|{clauses}))");
        let mut hits: Vec<User> = self
            .client
            .users(&filter)
            .await?
            .into_iter()
            .filter(|u| addresses.iter().any(|a| matches_exactly(u, a)))
            .collect();
        hits.sort_by_key(|u| u.guid);
        hits.dedup_by_key(|u| u.guid);
        match hits.len() {
            0 => Ok(None),
            1 => {
                self.check_not_well_known(&hits[0])?;
                Ok(Some(self.account_ref(&hits[0])))
            }
            n => Err(Error::ambiguous(format!(
                "{n} Active Directory users match the person's addresses: {}",
                hits.iter()
                    .map(|u| u.dn.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ))),
        }
    }
}

/// Parses an external id as a GUID (`Uuid`'s accepted forms); anything else is no GUID.
fn parse_guid(id: &str) -> Option<Uuid> {
    Uuid::try_parse(id.trim()).ok()
}

/// Whether an address is something a lookup may send: not empty, no control characters, not
/// absurdly long.
fn check_address(address: &str) -> Result<()> {
    if address.trim().is_empty() {
        return Err(Error::invalid_input("an empty address cannot be looked up"));
    }
    if address.chars().any(char::is_control) {
        return Err(Error::invalid_input(
            "an address with a control character (NUL, newline...) cannot be looked up",
        ));
    }
    if address.len() > MAX_ADDRESS_LEN {
        return Err(Error::invalid_input(format!(
            "an address longer than {MAX_ADDRESS_LEN} bytes cannot be looked up"
        )));
    }
    Ok(())
}

/// Whether the user holds this address exactly (ASCII case ignored, nothing else folded).
fn matches_exactly(user: &User, address: &str) -> bool {
    if !address.contains('@') {
        return user
            .sam
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case(address));
    }
    user.upn
        .as_deref()
        .is_some_and(|u| u.eq_ignore_ascii_case(address))
        || user.mail.iter().any(|m| m.eq_ignore_ascii_case(address))
        || user.proxy_addresses.iter().any(|p| {
            p.len() > 5
                && p.is_char_boundary(5)
                && p[..5].eq_ignore_ascii_case("smtp:")
                && p[5..].eq_ignore_ascii_case(address)
        })
}

#[async_trait]
impl Connector for AdConnector {
    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn lookup(&self, request: &LookupRequest) -> Result<Option<AccountRef>> {
        let result = async {
            if let Some(id) = &request.external_id {
                let found = self
                    .user(&AccountRef::new(
                        APP,
                        id.clone(),
                        "",
                        AccountStatus::Unknown,
                    ))
                    .await?;
                if let Some(u) = &found {
                    self.check_not_well_known(u)?;
                }
                return Ok(found.map(|u| self.account_ref(&u)));
            }
            let addresses: Vec<String> = request.person.addresses().collect();
            for address in &addresses {
                check_address(address)?;
            }
            self.lookup_addresses(&addresses).await
        }
        .await;
        result.map_err(|e| e.with_operation("ad.lookup"))
    }

    async fn execute(
        &self,
        account: &AccountRef,
        action: &Action,
        options: &ExecuteOptions,
    ) -> Result<ExecuteReply> {
        let result = async {
            let verb = self.verb(action)?;
            let Some(user) = self.user(account).await? else {
                return Ok(ExecuteReply::new(Outcome::NotFound));
            };
            self.check_not_protected(&user).await?;
            let c = &self.client;
            match verb {
                Verb::Disable => disable::execute(c, &user, options).await,
                Verb::RemoveGroups => remove_groups::execute(c, &user, options).await,
                Verb::MoveToDisabledOu => move_ou::execute(c, &user, options).await,
                Verb::ResetPassword => reset_password::execute(c, &user, options).await,
                Verb::StampDescription => stamp_description::execute(c, &user, options).await,
                Verb::ClearManager => clear_manager::execute(c, &user, options).await,
                Verb::SetAccountExpires => account_expires::execute(c, &user, options).await,
                Verb::HideFromAddressLists => hide_address_lists::execute(c, &user, options).await,
            }
        }
        .await;
        result.map_err(|e| {
            e.with_operation(action.name.to_string())
                .with_context("account", &account.external_id)
        })
    }

    async fn snapshot(&self, account: &AccountRef, action: &Action) -> Result<Snapshot> {
        let result = async {
            let verb = self.verb(action)?;
            let user = self
                .user(account)
                .await?
                .ok_or_else(|| Error::not_found("the user no longer exists"))?;
            let data = match verb {
                Verb::Disable => disable::snapshot(&user),
                Verb::RemoveGroups => remove_groups::snapshot(&user),
                Verb::MoveToDisabledOu => move_ou::snapshot(&user),
                Verb::StampDescription => stamp_description::snapshot(&user),
                Verb::ClearManager => clear_manager::snapshot(&user),
                Verb::SetAccountExpires => account_expires::snapshot(&user),
                Verb::HideFromAddressLists => hide_address_lists::snapshot(&user),
                Verb::ResetPassword => {
                    return Err(Error::unsupported(
                        "ad.reset_password is irreversible: nothing to snapshot",
                    ));
                }
            };
            Ok(Snapshot::new(
                self.capabilities.app.clone(),
                action.name.clone(),
                account.external_id.clone(),
                data,
            ))
        }
        .await;
        result.map_err(|e| {
            e.with_operation(format!("{}.snapshot", action.name))
                .with_context("account", &account.external_id)
        })
    }

    async fn restore(&self, account: &AccountRef, snapshot: &Snapshot) -> Result<Outcome> {
        let result = async {
            let verb = self.verb(&Action::new(snapshot.action.clone()))?;
            snapshot.check_restores(&self.capabilities.app, account)?;
            let Some(user) = self.user(account).await? else {
                return Ok(Outcome::NotFound);
            };
            let c = &self.client;
            let d = &snapshot.data;
            match verb {
                Verb::Disable => disable::restore(c, &user, d).await,
                Verb::RemoveGroups => remove_groups::restore(c, &user, d).await,
                Verb::MoveToDisabledOu => move_ou::restore(c, &user, d).await,
                Verb::StampDescription => stamp_description::restore(c, &user, d).await,
                Verb::ClearManager => clear_manager::restore(c, &user, d).await,
                Verb::SetAccountExpires => account_expires::restore(c, &user, d).await,
                Verb::HideFromAddressLists => hide_address_lists::restore(c, &user, d).await,
                Verb::ResetPassword => Err(Error::unsupported(
                    "ad.reset_password is irreversible: it cannot be restored",
                )),
            }
        }
        .await;
        result.map_err(|e| {
            e.with_operation(format!("{}.restore", snapshot.action))
                .with_context("account", &account.external_id)
        })
    }

    async fn verify_revoked(&self, account: &AccountRef) -> Result<Verification> {
        let Some(user) = self
            .user(account)
            .await
            .map_err(|e| e.with_operation("ad.verify_revoked"))?
        else {
            return Ok(Verification::from_remaining(APP, Vec::new()));
        };
        let mut remaining = Vec::new();
        if !user.disabled() {
            remaining.push(format!(
                "account enabled (userAccountControl {:#x})",
                user.uac
            ));
        }
        // Where the account sits (outside the disabled-users OU) is housekeeping, not access.
        for group in &user.member_of {
            remaining.push(format!("member of {group}"));
        }
        Ok(Verification::from_remaining(APP, remaining))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked() {
        assert!(check_address("").is_err());
        assert!(check_address("a\0b@x").is_err());
        assert!(check_address("a@x\r\n").is_err());
        assert!(check_address("*)(objectClass=*").is_ok());
        assert!(parse_guid("*").is_none());
        assert!(parse_guid("ofb-no-such-id").is_none());
        assert!(parse_guid("5f1a2b3c-0000-4000-8000-000000000001").is_some());
    }
}
