//! The connector's configuration and its builder.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use offboard_core::{Error, Result, Secret};

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transport {
    /// TLS from the first byte (`ldaps://`, port 636).
    Ldaps,
    /// Plain connection upgraded with the StartTLS extended operation before the bind
    /// (`ldap://`, port 389).
    StartTls,
    /// No TLS at all. Only with [`AdConfigBuilder::allow_plain_ldap_for_tests`]; real AD refuses
    /// simple binds and password sets over it, and so does Samba with strong auth required.
    Plain,
}

impl Transport {
    /// Whether the connection is encrypted.
    pub fn is_tls(self) -> bool {
        !matches!(self, Self::Plain)
    }
}

/// A validated Active Directory configuration. Build it with [`AdConfig::builder`].
///
/// # Behavior
/// `Debug` never shows the bind password.
#[derive(Clone)]
pub struct AdConfig {
    pub(crate) url: String,
    pub(crate) transport: Transport,
    pub(crate) bind_dn: String,
    pub(crate) password: Secret,
    pub(crate) base_dn: String,
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) disabled_ou: String,
    pub(crate) pool_size: usize,
    pub(crate) timeout: Duration,
    pub(crate) page_size: i32,
    pub(crate) protected_groups: Vec<String>,
    pub(crate) protected_accounts: Vec<String>,
    pub(crate) search_log: Option<SearchLog>,
}

/// One LDAP search as [`SearchLog`] recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoggedSearch {
    /// The search base (a DN).
    pub base: String,
    /// The filter, as sent (RFC 4515 text).
    pub filter: String,
}

/// Records the base and filter of every LDAP search a connector sends, in order: for tests
/// that check what reached the directory (the conformance suite reads a lookup's filters).
/// Clones share the record. Set it with [`AdConfigBuilder::with_search_log`].
///
/// # Behavior
/// Each attempt is recorded just before it is sent (a retried search twice). The filters hold
/// the addresses looked up: keep the record out of logs. `Debug` shows only the count.
#[derive(Clone, Default)]
pub struct SearchLog(Arc<Mutex<Vec<LoggedSearch>>>);

impl SearchLog {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// The searches recorded since the last call (all of them on the first), in order; the
    /// record is left empty.
    pub fn take(&self) -> Vec<LoggedSearch> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub(crate) fn push(&self, base: &str, filter: &str) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(LoggedSearch {
                base: base.to_owned(),
                filter: filter.to_owned(),
            });
    }
}

impl fmt::Debug for SearchLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.lock().unwrap_or_else(PoisonError::into_inner).len();
        f.debug_struct("SearchLog").field("searches", &n).finish()
    }
}

impl AdConfig {
    /// A builder with nothing set.
    pub fn builder() -> AdConfigBuilder {
        AdConfigBuilder::new()
    }

    /// The LDAP URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// How the connection is protected.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The service account's DN.
    pub fn bind_dn(&self) -> &str {
        &self.bind_dn
    }

    /// The DN under which users are looked up.
    pub fn base_dn(&self) -> &str {
        &self.base_dn
    }

    /// The OU disabled users are moved to.
    pub fn disabled_ou(&self) -> &str {
        &self.disabled_ou
    }

    /// The maximum number of pooled connections.
    pub fn pool_size(&self) -> usize {
        self.pool_size
    }
}

impl fmt::Debug for AdConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdConfig")
            .field("url", &self.url)
            .field("transport", &self.transport)
            .field("bind_dn", &self.bind_dn)
            .field("password", &self.password)
            .field("base_dn", &self.base_dn)
            .field("ca_file", &self.ca_file)
            .field("disabled_ou", &self.disabled_ou)
            .field("pool_size", &self.pool_size)
            .field("timeout", &self.timeout)
            .field("page_size", &self.page_size)
            .field("protected_groups", &self.protected_groups)
            .field("protected_accounts", &self.protected_accounts)
            .field("search_log", &self.search_log)
            .finish()
    }
}

/// A configuration key, as [`AdConfigBuilder::with_config`] and [`AdConfigBuilder::from_env`]
/// name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AdConfigKey {
    /// `url`: `ldaps://host:636` or `ldap://host:389` (StartTLS).
    Url,
    /// `bind_dn`: the service account's DN (aliases: `user`, `bind_user`).
    BindDn,
    /// `password`: the service account's password (alias: `bind_password`).
    Password,
    /// `base_dn`: where users are looked up (alias: `base`).
    BaseDn,
    /// `ca_file`: PEM file of the CA(s) that sign the DC's certificate (alias: `ca`).
    CaFile,
    /// `disabled_ou`: the OU disabled users are moved to (alias: `disabled_users_ou`).
    DisabledOu,
    /// `starttls`: `true` (default) to upgrade an `ldap://` URL with StartTLS.
    StartTls,
    /// `allow_plain_ldap_for_tests`: `true` to allow an unencrypted `ldap://` connection.
    AllowPlainLdapForTests,
    /// `pool_size`: maximum pooled connections (default 4).
    PoolSize,
    /// `timeout_secs`: per-operation timeout in seconds (default 30).
    TimeoutSecs,
    /// `page_size`: entries per page of a paged search (default 500).
    PageSize,
    /// `protected_groups`: group DNs, separated by `;`, whose members (direct or nested) are
    /// never changed.
    ProtectedGroups,
    /// `protected_accounts`: sAMAccountNames, separated by `;` or `,`, never changed (service
    /// accounts); built-in and well-known accounts are protected regardless.
    ProtectedAccounts,
}

impl AdConfigKey {
    /// Every key, in `from_env` order.
    pub const ALL: [AdConfigKey; 13] = [
        Self::Url,
        Self::BindDn,
        Self::Password,
        Self::BaseDn,
        Self::CaFile,
        Self::DisabledOu,
        Self::StartTls,
        Self::AllowPlainLdapForTests,
        Self::PoolSize,
        Self::TimeoutSecs,
        Self::PageSize,
        Self::ProtectedGroups,
        Self::ProtectedAccounts,
    ];

    /// The canonical name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Url => "url",
            Self::BindDn => "bind_dn",
            Self::Password => "password",
            Self::BaseDn => "base_dn",
            Self::CaFile => "ca_file",
            Self::DisabledOu => "disabled_ou",
            Self::StartTls => "starttls",
            Self::AllowPlainLdapForTests => "allow_plain_ldap_for_tests",
            Self::PoolSize => "pool_size",
            Self::TimeoutSecs => "timeout_secs",
            Self::PageSize => "page_size",
            Self::ProtectedGroups => "protected_groups",
            Self::ProtectedAccounts => "protected_accounts",
        }
    }

    /// The environment variable [`AdConfigBuilder::from_env`] reads for it.
    pub fn env_var(self) -> String {
        format!("OFFBOARD_AD_{}", self.as_str().to_ascii_uppercase())
    }
}

impl FromStr for AdConfigKey {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let key = s.trim().to_ascii_lowercase();
        let key = key.strip_prefix("offboard_ad_").unwrap_or(&key);
        Ok(match key {
            "url" | "ldap_url" => Self::Url,
            "bind_dn" | "user" | "bind_user" => Self::BindDn,
            "password" | "bind_password" => Self::Password,
            "base_dn" | "base" => Self::BaseDn,
            "ca_file" | "ca" | "ca_cert" => Self::CaFile,
            "disabled_ou" | "disabled_users_ou" => Self::DisabledOu,
            "starttls" | "start_tls" => Self::StartTls,
            "allow_plain_ldap_for_tests" => Self::AllowPlainLdapForTests,
            "pool_size" => Self::PoolSize,
            "timeout_secs" | "timeout" => Self::TimeoutSecs,
            "page_size" => Self::PageSize,
            "protected_groups" => Self::ProtectedGroups,
            "protected_accounts" => Self::ProtectedAccounts,
            _ => {
                return Err(Error::config(
                    s.to_owned(),
                    "unknown Active Directory configuration key",
                ));
            }
        })
    }
}

/// Builds an [`AdConfig`].
///
/// # Example
/// ```
/// use offboard_ad::AdConfig;
/// use offboard_core::Secret;
///
/// let config = AdConfig::builder()
///     .with_url("ldaps://dc1.example.test:636")
///     .with_bind_dn("CN=offboard,OU=Service Accounts,DC=example,DC=test")
///     .with_password(Secret::new("not-a-real-password"))
///     .with_base_dn("DC=example,DC=test")
///     .with_disabled_ou("OU=Disabled Users,DC=example,DC=test")
///     .build()
///     .unwrap();
/// assert!(!format!("{config:?}").contains("not-a-real-password"));
/// ```
#[derive(Clone, Default)]
pub struct AdConfigBuilder {
    url: Option<String>,
    bind_dn: Option<String>,
    password: Option<Secret>,
    base_dn: Option<String>,
    ca_file: Option<PathBuf>,
    disabled_ou: Option<String>,
    starttls: bool,
    allow_plain: bool,
    pool_size: usize,
    timeout: Duration,
    page_size: i32,
    protected_groups: Vec<String>,
    protected_accounts: Vec<String>,
    search_log: Option<SearchLog>,
}

impl fmt::Debug for AdConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdConfigBuilder")
            .field("url", &self.url)
            .field("bind_dn", &self.bind_dn)
            .field("password", &self.password)
            .field("base_dn", &self.base_dn)
            .field("ca_file", &self.ca_file)
            .field("disabled_ou", &self.disabled_ou)
            .field("starttls", &self.starttls)
            .field("allow_plain", &self.allow_plain)
            .field("pool_size", &self.pool_size)
            .field("timeout", &self.timeout)
            .field("page_size", &self.page_size)
            .field("protected_groups", &self.protected_groups)
            .field("protected_accounts", &self.protected_accounts)
            .field("search_log", &self.search_log)
            .finish()
    }
}

impl AdConfigBuilder {
    /// A builder with defaults: StartTLS for `ldap://`, plain LDAP refused, 4 connections,
    /// 30 s per operation, pages of 500 entries, no protected groups.
    pub fn new() -> Self {
        Self {
            starttls: true,
            pool_size: 4,
            timeout: Duration::from_secs(30),
            page_size: 500,
            ..Self::default()
        }
    }

    /// A builder from the environment. Reads, when set:
    /// `OFFBOARD_AD_URL`, `OFFBOARD_AD_BIND_DN`, `OFFBOARD_AD_PASSWORD`, `OFFBOARD_AD_BASE_DN`,
    /// `OFFBOARD_AD_CA_FILE`, `OFFBOARD_AD_DISABLED_OU`, `OFFBOARD_AD_STARTTLS`,
    /// `OFFBOARD_AD_ALLOW_PLAIN_LDAP_FOR_TESTS`, `OFFBOARD_AD_POOL_SIZE`,
    /// `OFFBOARD_AD_TIMEOUT_SECS`, `OFFBOARD_AD_PAGE_SIZE`, `OFFBOARD_AD_PROTECTED_GROUPS`.
    ///
    /// # Errors
    /// [`offboard_core::ErrorKind::Config`] naming the variable whose value is malformed.
    pub fn from_env() -> Result<Self> {
        let mut builder = Self::new();
        for key in AdConfigKey::ALL {
            if let Ok(value) = std::env::var(key.env_var()) {
                builder = builder.with_config(key, value)?;
            }
        }
        Ok(builder)
    }

    /// Sets a value by key.
    ///
    /// # Errors
    /// [`offboard_core::ErrorKind::Config`] naming the key when a boolean or number does not
    /// parse.
    pub fn with_config(mut self, key: AdConfigKey, value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        let flag = |v: &str| match v.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(Error::config(key.as_str(), "expected true or false")),
        };
        match key {
            AdConfigKey::Url => self.url = Some(value),
            AdConfigKey::BindDn => self.bind_dn = Some(value),
            AdConfigKey::Password => self.password = Some(Secret::new(value)),
            AdConfigKey::BaseDn => self.base_dn = Some(value),
            AdConfigKey::CaFile => self.ca_file = Some(PathBuf::from(value)),
            AdConfigKey::DisabledOu => self.disabled_ou = Some(value),
            AdConfigKey::StartTls => self.starttls = flag(&value)?,
            AdConfigKey::AllowPlainLdapForTests => self.allow_plain = flag(&value)?,
            AdConfigKey::PoolSize => {
                self.pool_size = value
                    .trim()
                    .parse()
                    .map_err(|_| Error::config(key.as_str(), "expected a positive integer"))?;
            }
            AdConfigKey::TimeoutSecs => {
                let secs: u64 = value
                    .trim()
                    .parse()
                    .map_err(|_| Error::config(key.as_str(), "expected whole seconds"))?;
                self.timeout = Duration::from_secs(secs);
            }
            AdConfigKey::PageSize => {
                self.page_size = value
                    .trim()
                    .parse()
                    .map_err(|_| Error::config(key.as_str(), "expected a positive integer"))?;
            }
            AdConfigKey::ProtectedGroups => {
                self.protected_groups = value
                    .split(';')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            AdConfigKey::ProtectedAccounts => {
                self.protected_accounts = value
                    .split([';', ','])
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
        }
        Ok(self)
    }

    /// Sets the URL: `ldaps://host:636`, or `ldap://host:389` (StartTLS by default).
    pub fn with_url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// Sets the service account's DN.
    pub fn with_bind_dn(mut self, dn: impl Into<String>) -> Self {
        self.bind_dn = Some(dn.into());
        self
    }

    /// Sets the service account's password.
    pub fn with_password(mut self, password: Secret) -> Self {
        self.password = Some(password);
        self
    }

    /// Sets the DN under which users are looked up; the disabled-users OU must be inside it.
    pub fn with_base_dn(mut self, dn: impl Into<String>) -> Self {
        self.base_dn = Some(dn.into());
        self
    }

    /// Sets a PEM file of CA certificates to trust instead of the system's roots.
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Sets the OU that `ad.move_to_disabled_ou` moves users to. It must exist; it is never
    /// created.
    pub fn with_disabled_ou(mut self, dn: impl Into<String>) -> Self {
        self.disabled_ou = Some(dn.into());
        self
    }

    /// Whether an `ldap://` URL is upgraded with StartTLS (default `true`).
    pub fn with_starttls(mut self, starttls: bool) -> Self {
        self.starttls = starttls;
        self
    }

    /// Allows an unencrypted connection (`ldap://` without StartTLS). For tests only: passwords
    /// are never set over it.
    pub fn allow_plain_ldap_for_tests(mut self, allow: bool) -> Self {
        self.allow_plain = allow;
        self
    }

    /// Sets the maximum number of pooled connections (default 4).
    pub fn with_pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// Sets the per-operation timeout (default 30 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the number of entries per page of a paged search (default 500).
    pub fn with_page_size(mut self, size: i32) -> Self {
        self.page_size = size;
        self
    }

    /// Adds a group (by DN) whose members, direct or nested, are never changed: every action on
    /// them is refused with a `Protected` error. Current members of AD's built-in privileged
    /// groups (Domain Admins, Enterprise Admins, Administrators ...) are refused regardless.
    pub fn with_protected_group(mut self, dn: impl Into<String>) -> Self {
        self.protected_groups.push(dn.into());
        self
    }

    /// Adds an account (by sAMAccountName, e.g. a service account) that is never changed and
    /// never returned by a lookup. Built-in and well-known accounts (RID below 1000, `krbtgt`,
    /// `Guest`, `Administrator`) are protected regardless.
    pub fn with_protected_account(mut self, sam_account_name: impl Into<String>) -> Self {
        self.protected_accounts.push(sam_account_name.into());
        self
    }

    /// Records every search the connector sends into `log` (for tests: see [`SearchLog`]).
    pub fn with_search_log(mut self, log: SearchLog) -> Self {
        self.search_log = Some(log);
        self
    }

    /// Validates and builds.
    ///
    /// # Errors
    /// [`offboard_core::ErrorKind::Config`] naming the missing or invalid key: a missing URL,
    /// bind DN, password, base DN or disabled-users OU; a URL that is not `ldap://` or
    /// `ldaps://`; plain LDAP without [`Self::allow_plain_ldap_for_tests`]; a disabled-users OU
    /// outside the base DN; a pool size of 0.
    pub fn build(self) -> Result<AdConfig> {
        let missing = |key: AdConfigKey| {
            Error::config(
                key.as_str(),
                format!("missing (set it, or {})", key.env_var()),
            )
        };
        let url = self
            .url
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| missing(AdConfigKey::Url))?;
        let bind_dn = self
            .bind_dn
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| missing(AdConfigKey::BindDn))?;
        let password = self
            .password
            .filter(|p| !p.is_empty())
            .ok_or_else(|| missing(AdConfigKey::Password))?;
        let base_dn = self
            .base_dn
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| missing(AdConfigKey::BaseDn))?;
        let disabled_ou = self
            .disabled_ou
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| missing(AdConfigKey::DisabledOu))?;
        let lower = url.trim().to_ascii_lowercase();
        let transport = if lower.starts_with("ldaps://") {
            Transport::Ldaps
        } else if lower.starts_with("ldap://") {
            if self.starttls {
                Transport::StartTls
            } else if self.allow_plain {
                Transport::Plain
            } else {
                return Err(Error::config(
                    AdConfigKey::Url.as_str(),
                    "plain LDAP (ldap:// without StartTLS) is refused: use ldaps://, or StartTLS; \
                     allow_plain_ldap_for_tests exists for tests only",
                ));
            }
        } else {
            return Err(Error::config(
                AdConfigKey::Url.as_str(),
                "expected an ldaps:// or ldap:// URL",
            ));
        };
        if !crate::dn::is_within(&disabled_ou, &base_dn) {
            return Err(Error::config(
                AdConfigKey::DisabledOu.as_str(),
                format!("{disabled_ou} is not inside the base DN {base_dn}"),
            ));
        }
        if self.page_size < 1 {
            return Err(Error::config(
                AdConfigKey::PageSize.as_str(),
                "must be at least 1",
            ));
        }
        if self.pool_size == 0 {
            return Err(Error::config(
                AdConfigKey::PoolSize.as_str(),
                "must be at least 1",
            ));
        }
        Ok(AdConfig {
            url: url.trim().to_owned(),
            transport,
            bind_dn,
            password,
            base_dn,
            ca_file: self.ca_file,
            disabled_ou,
            pool_size: self.pool_size,
            timeout: self.timeout,
            page_size: self.page_size,
            protected_groups: self.protected_groups,
            protected_accounts: self.protected_accounts,
            search_log: self.search_log,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use offboard_core::ErrorKind;

    fn full() -> AdConfigBuilder {
        AdConfigBuilder::new()
            .with_url("ldaps://127.0.0.1:636")
            .with_bind_dn("CN=svc,DC=x,DC=test")
            .with_password(Secret::new("pa55-word-xyz"))
            .with_base_dn("DC=x,DC=test")
            .with_disabled_ou("OU=Disabled Users,DC=x,DC=test")
    }

    #[test]
    fn build_names_the_missing_key() {
        let e = AdConfigBuilder::new().build().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("url"), "{e}");
        let e = full().with_disabled_ou("").build().unwrap_err().to_string();
        assert!(e.contains("disabled_ou"), "{e}");
        let e = AdConfigBuilder::new()
            .with_url("ldaps://x")
            .build()
            .unwrap_err()
            .to_string();
        assert!(e.contains("bind_dn"), "{e}");
    }

    #[test]
    fn plain_ldap_is_refused_unless_allowed() {
        let plain = full().with_url("ldap://127.0.0.1:389").with_starttls(false);
        let e = plain.clone().build().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("plain LDAP"), "{e}");
        let ok = plain.allow_plain_ldap_for_tests(true).build().unwrap();
        assert_eq!(ok.transport(), Transport::Plain);
        let st = full().with_url("ldap://127.0.0.1:389").build().unwrap();
        assert_eq!(st.transport(), Transport::StartTls);
        assert_eq!(full().build().unwrap().transport(), Transport::Ldaps);
        assert!(full().with_url("http://x").build().is_err());
    }

    #[test]
    fn disabled_ou_must_be_inside_base() {
        let e = full()
            .with_disabled_ou("OU=Gone,DC=other,DC=test")
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("disabled_ou"), "{e}");
    }

    #[test]
    fn keys_accept_aliases() {
        assert_eq!(
            "OFFBOARD_AD_BIND_PASSWORD".parse::<AdConfigKey>().unwrap(),
            AdConfigKey::Password
        );
        assert_eq!("base".parse::<AdConfigKey>().unwrap(), AdConfigKey::BaseDn);
        assert!("nope".parse::<AdConfigKey>().is_err());
        assert_eq!(AdConfigKey::CaFile.env_var(), "OFFBOARD_AD_CA_FILE");
        let b = AdConfigBuilder::new()
            .with_config(AdConfigKey::PoolSize, "x")
            .unwrap_err();
        assert!(b.to_string().contains("pool_size"));
    }

    #[test]
    fn debug_redacts_the_password() {
        let b = full();
        assert!(!format!("{b:?}").contains("pa55-word-xyz"));
        let c = b.build().unwrap();
        assert!(!format!("{c:?}").contains("pa55-word-xyz"));
        assert!(!format!("{c:#?}").contains("pa55-word-xyz"));
    }
}
