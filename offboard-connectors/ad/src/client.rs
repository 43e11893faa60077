//! LDAP wire calls: TLS set-up, a small pool of bound connections, paged searches, modifies.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex};

use ldap3::adapters::{EntriesOnly, PagedResults};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Mod, Scope, SearchEntry};
use offboard_core::{Error, ErrorKind, Result};
use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::sync::{Semaphore, SemaphorePermit};
use uuid::Uuid;

use crate::config::{AdConfig, Transport};
use crate::error::{AdError, rc};

/// `userAccountControl` bit: the account is disabled.
pub(crate) const ACCOUNTDISABLE: u32 = 0x2;

/// The attributes read for a user.
pub(crate) const USER_ATTRS: &[&str] = &[
    "objectGUID",
    "sAMAccountName",
    "userPrincipalName",
    "mail",
    "proxyAddresses",
    "userAccountControl",
    "memberOf",
    "primaryGroupID",
    "description",
    "manager",
    "accountExpires",
    "msExchHideFromAddressLists",
    "adminCount",
    "objectSid",
    "pwdLastSet",
];

/// AD's built-in privileged groups (the ones AdminSDHolder protects), by SID: the `BUILTIN`
/// domain's (`S-1-5-32-<rid>`) and the account domain's (`<domain SID>-<rid>`). Their members,
/// direct or nested, are never changed.
const PRIVILEGED_BUILTIN: [(u32, &str); 6] = [
    (544, "Administrators"),
    (548, "Account Operators"),
    (549, "Server Operators"),
    (550, "Print Operators"),
    (551, "Backup Operators"),
    (552, "Replicator"),
];
/// See [`PRIVILEGED_BUILTIN`]: the account domain's privileged groups, by RID.
const PRIVILEGED_DOMAIN: [(u32, &str); 7] = [
    (512, "Domain Admins"),
    (516, "Domain Controllers"),
    (518, "Schema Admins"),
    (519, "Enterprise Admins"),
    (521, "Read-only Domain Controllers"),
    (526, "Key Admins"),
    (527, "Enterprise Key Admins"),
];

/// A security identifier, parsed from its binary form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sid {
    authority: u64,
    sub: Vec<u32>,
}

impl Sid {
    /// Parses the binary form: revision 1, sub-authority count, 6-byte big-endian authority,
    /// then the sub-authorities as 32-bit little-endian.
    pub(crate) fn parse(bytes: &[u8]) -> Option<Self> {
        let (&rev, rest) = bytes.split_first()?;
        let (&count, rest) = rest.split_first()?;
        if rev != 1 || rest.len() != 6 + 4 * usize::from(count) {
            return None;
        }
        let authority = rest[..6]
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        let sub = rest[6..]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Some(Self { authority, sub })
    }

    /// The last sub-authority (the RID of an account domain's SID).
    pub(crate) fn rid(&self) -> Option<u32> {
        self.sub.last().copied()
    }

    /// The SID without its RID (the domain of an account's SID).
    fn domain(&self) -> Option<Self> {
        (self.sub.len() > 1).then(|| Self {
            authority: self.authority,
            sub: self.sub[..self.sub.len() - 1].to_vec(),
        })
    }

    fn child(&self, rid: u32) -> Self {
        let mut sub = self.sub.clone();
        sub.push(rid);
        Self {
            authority: self.authority,
            sub,
        }
    }

    fn builtin(rid: u32) -> Self {
        Self {
            authority: 5,
            sub: vec![32, rid],
        }
    }
}

impl fmt::Display for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "S-1-{}", self.authority)?;
        for s in &self.sub {
            write!(f, "-{s}")?;
        }
        Ok(())
    }
}

/// A user entry as read from the directory.
#[derive(Debug, Clone)]
pub(crate) struct User {
    /// The entry's current DN (changes on rename or move).
    pub(crate) dn: String,
    /// objectGUID: never changes.
    pub(crate) guid: Uuid,
    pub(crate) sam: Option<String>,
    pub(crate) upn: Option<String>,
    pub(crate) mail: Vec<String>,
    pub(crate) proxy_addresses: Vec<String>,
    pub(crate) uac: u32,
    /// Group DNs (the primary group is not listed by AD).
    pub(crate) member_of: Vec<String>,
    pub(crate) description: Option<String>,
    pub(crate) manager: Option<String>,
    pub(crate) account_expires: Option<String>,
    pub(crate) hidden_from_address_lists: Option<String>,
    /// `adminCount=1`: AD's mark on members (past or present) of protected groups such as
    /// Domain Admins.
    pub(crate) admin: bool,
    /// objectSid.
    pub(crate) sid: Option<Sid>,
    /// `pwdLastSet` (FILETIME: 100 ns ticks since 1601-01-01 UTC), when set.
    pub(crate) pwd_last_set: Option<i64>,
}

impl User {
    fn from_entry(entry: SearchEntry) -> Result<Self> {
        let guid_bytes = entry
            .bin_attrs
            .get("objectGUID")
            .and_then(|v| v.first().cloned())
            .or_else(|| {
                entry
                    .attrs
                    .get("objectGUID")
                    .and_then(|v| v.first())
                    .map(|s| s.as_bytes().to_vec())
            })
            .ok_or_else(|| {
                Error::new(ErrorKind::Vendor, "a user entry has no objectGUID")
                    .with_context("dn", &entry.dn)
            })?;
        let guid_bytes: [u8; 16] = guid_bytes.try_into().map_err(|_| {
            Error::new(ErrorKind::Vendor, "objectGUID is not 16 bytes")
                .with_context("dn", &entry.dn)
        })?;
        let one = |name: &str| entry.attrs.get(name).and_then(|v| v.first()).cloned();
        let many = |name: &str| entry.attrs.get(name).cloned().unwrap_or_default();
        let uac = match one("userAccountControl") {
            Some(v) => v.trim().parse::<i64>().map_err(|_| {
                Error::new(ErrorKind::Vendor, "userAccountControl is not a number")
                    .with_context("dn", &entry.dn)
            })? as u32,
            None => 0,
        };
        Ok(Self {
            guid: Uuid::from_bytes_le(guid_bytes),
            sam: one("sAMAccountName"),
            upn: one("userPrincipalName"),
            mail: many("mail"),
            proxy_addresses: many("proxyAddresses"),
            uac,
            member_of: many("memberOf"),
            description: one("description"),
            manager: one("manager"),
            account_expires: one("accountExpires"),
            hidden_from_address_lists: one("msExchHideFromAddressLists"),
            admin: one("adminCount").is_some_and(|v| v.trim() == "1"),
            sid: entry
                .bin_attrs
                .get("objectSid")
                .and_then(|v| v.first())
                .and_then(|b| Sid::parse(b)),
            pwd_last_set: one("pwdLastSet").and_then(|v| v.trim().parse().ok()),
            dn: entry.dn,
        })
    }

    /// Whether `ACCOUNTDISABLE` is set.
    pub(crate) fn disabled(&self) -> bool {
        self.uac & ACCOUNTDISABLE != 0
    }

    /// When the password was last set, from `pwdLastSet`; `None` when never (0) or unknown.
    pub(crate) fn password_set_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        /// Seconds from 1601-01-01 to 1970-01-01.
        const EPOCH_DIFF: i64 = 11_644_473_600;
        let ticks = self.pwd_last_set.filter(|t| *t > 0)?;
        let secs = ticks / 10_000_000 - EPOCH_DIFF;
        let nanos = u32::try_from((ticks % 10_000_000) * 100).ok()?;
        chrono::DateTime::from_timestamp(secs, nanos)
    }
}

/// An LDAP filter matching exactly this objectGUID: every byte escaped as `\xx`.
pub(crate) fn guid_filter(guid: &Uuid) -> String {
    let mut f = String::from("(objectGUID=");
    for b in guid.to_bytes_le() {
        f.push_str(&format!("\\{b:02x}"));
    }
    f.push(')');
    f
}

/// Filter for user objects (people, not computers).
pub(crate) const USER_CLASS: &str = "(objectCategory=person)(objectClass=user)";

/// Builds the rustls configuration: the aws-lc-rs provider passed explicitly (never the
/// process default, which may be missing or ambiguous), trusting the CA file or else the
/// system's roots.
pub(crate) fn tls_config(config: &AdConfig) -> Result<Arc<ClientConfig>, AdError> {
    let mut roots = rustls::RootCertStore::empty();
    match &config.ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| AdError::Tls(format!("ca_file {}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(AdError::Tls(format!(
                    "ca_file {}: no certificates found",
                    path.display()
                )));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| AdError::Tls(format!("ca_file {}: {e}", path.display())))?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(native.certs);
            if added == 0 {
                return Err(AdError::Tls(
                    "no system CA certificates found; set ca_file".into(),
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| AdError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(tls))
}

/// A small pool of bound connections. A connection whose channel has closed is dropped and
/// replaced by a fresh connect-and-bind on the next acquire; a transport error drops the
/// connection it happened on.
pub(crate) struct Client {
    config: AdConfig,
    tls: Option<Arc<ClientConfig>>,
    idle: Mutex<Vec<Ldap>>,
    permits: Semaphore,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.config.url)
            .field("transport", &self.config.transport)
            .field("pool_size", &self.config.pool_size)
            .finish_non_exhaustive()
    }
}

/// A connection checked out of the pool; returned on drop unless marked broken.
struct Conn<'a> {
    ldap: Option<Ldap>,
    client: &'a Client,
    broken: bool,
    _permit: SemaphorePermit<'a>,
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        if let Some(mut ldap) = self.ldap.take()
            && !self.broken
            && !ldap.is_closed()
            && let Ok(mut idle) = self.client.idle.lock()
        {
            idle.push(ldap);
        }
    }
}

impl Conn<'_> {
    fn ldap(&mut self) -> &mut Ldap {
        let timeout = self.client.config.timeout;
        let ldap = self
            .ldap
            .as_mut()
            .expect("a checked-out connection holds its handle");
        ldap.with_timeout(timeout);
        ldap
    }

    /// Marks the connection broken when the error is a transport failure.
    fn check<T>(&mut self, r: std::result::Result<T, AdError>) -> std::result::Result<T, AdError> {
        if let Err(AdError::Transport { .. }) = &r {
            self.broken = true;
        }
        r
    }
}

/// The outcome of a write whose result code the caller interprets.
pub(crate) type Written = std::result::Result<(), AdError>;

impl Client {
    /// A client; connects lazily.
    pub(crate) fn new(config: AdConfig) -> Result<Self> {
        let tls = if config.transport.is_tls() {
            Some(tls_config(&config)?)
        } else {
            None
        };
        let permits = Semaphore::new(config.pool_size);
        Ok(Self {
            config,
            tls,
            idle: Mutex::new(Vec::new()),
            permits,
        })
    }

    /// The configuration.
    pub(crate) fn config(&self) -> &AdConfig {
        &self.config
    }

    async fn connect(&self) -> std::result::Result<Ldap, AdError> {
        let mut settings = LdapConnSettings::new().set_conn_timeout(self.config.timeout);
        if let Some(tls) = &self.tls {
            settings = settings.set_config(tls.clone());
        }
        if self.config.transport == Transport::StartTls {
            settings = settings.set_starttls(true);
        }
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &self.config.url)
            .await
            .map_err(|e| AdError::from_ldap("connect", e))?;
        ldap3::drive!(conn);
        ldap.with_timeout(self.config.timeout);
        let bound = ldap
            .simple_bind(&self.config.bind_dn, self.config.password.expose())
            .await
            .map_err(|e| AdError::from_ldap("bind", e))?;
        if bound.rc != rc::SUCCESS {
            return Err(AdError::Result {
                op: "bind",
                rc: bound.rc,
                text: bound.text,
            });
        }
        Ok(ldap)
    }

    async fn acquire(&self) -> std::result::Result<Conn<'_>, AdError> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| AdError::Pool("the LDAP pool was closed"))?;
        let pooled = {
            let mut idle = self
                .idle
                .lock()
                .map_err(|_| AdError::Pool("the LDAP pool lock is poisoned"))?;
            let mut found = None;
            while let Some(mut ldap) = idle.pop() {
                if !ldap.is_closed() {
                    found = Some(ldap);
                    break;
                }
            }
            found
        };
        let ldap = match pooled {
            Some(ldap) => ldap,
            None => self.connect().await?,
        };
        Ok(Conn {
            ldap: Some(ldap),
            client: self,
            broken: false,
            _permit: permit,
        })
    }

    /// Connects and binds once, to check the configuration and credentials.
    pub(crate) async fn ping(&self) -> Result<()> {
        let _conn = self.acquire().await?;
        Ok(())
    }

    /// A paged subtree search under `base`. Retries once on a fresh connection when the pooled
    /// one turns out to be dead (searches read only).
    pub(crate) async fn search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<SearchEntry>> {
        match self.search_once(base, scope, filter, attrs).await {
            Err(AdError::Transport { .. }) => {
                Ok(self.search_once(base, scope, filter, attrs).await?)
            }
            other => Ok(other?),
        }
    }

    async fn search_once(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
    ) -> std::result::Result<Vec<SearchEntry>, AdError> {
        let mut conn = self.acquire().await?;
        if let Some(log) = &self.config.search_log {
            log.push(base, filter);
        }
        let page_size = self.config.page_size;
        let attrs: Vec<String> = attrs.iter().map(|s| (*s).to_owned()).collect();
        let r = async {
            let adapters: Vec<Box<dyn ldap3::adapters::Adapter<'_, String, Vec<String>>>> = vec![
                Box::new(EntriesOnly::new()),
                Box::new(PagedResults::new(page_size)),
            ];
            let mut stream = conn
                .ldap()
                .streaming_search_with(adapters, base, scope, filter, attrs)
                .await
                .map_err(|e| AdError::from_ldap("search", e))?;
            let mut out = Vec::new();
            while let Some(entry) = stream
                .next()
                .await
                .map_err(|e| AdError::from_ldap("search", e))?
            {
                out.push(SearchEntry::construct(entry));
            }
            let done = stream.finish().await;
            if done.rc != rc::SUCCESS {
                return Err(AdError::Result {
                    op: "search",
                    rc: done.rc,
                    text: done.text,
                });
            }
            Ok(out)
        }
        .await;
        conn.check(r)
    }

    /// Reads one entry by DN; `None` when it does not exist.
    pub(crate) async fn read(&self, dn: &str, attrs: &[&str]) -> Result<Option<SearchEntry>> {
        match self.search(dn, Scope::Base, "(objectClass=*)", attrs).await {
            Ok(mut entries) => Ok(entries.pop()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Finds the user with this objectGUID under the base DN.
    pub(crate) async fn user_by_guid(&self, guid: &Uuid) -> Result<Option<User>> {
        let filter = format!("(&{USER_CLASS}{})", guid_filter(guid));
        let mut entries = self
            .search(&self.config.base_dn, Scope::Subtree, &filter, USER_ATTRS)
            .await?;
        match entries.len() {
            0 => Ok(None),
            1 => User::from_entry(entries.remove(0)).map(Some),
            n => Err(Error::new(
                ErrorKind::Vendor,
                format!("{n} entries share one objectGUID"),
            )
            .with_context("guid", guid)),
        }
    }

    /// AD's built-in privileged groups ([`PRIVILEGED_BUILTIN`], [`PRIVILEGED_DOMAIN`]) the user
    /// is in now, directly, through nesting or as primary group: read from the user's
    /// `tokenGroups`, which the DC computes transitively.
    ///
    /// # Errors
    /// `Vendor` when the user has no objectSid or the DC returns no `tokenGroups`.
    pub(crate) async fn privileged_memberships(&self, user: &User) -> Result<Vec<String>> {
        let sid = user.sid.as_ref().ok_or_else(|| {
            Error::new(ErrorKind::Vendor, "the user has no objectSid").with_context("dn", &user.dn)
        })?;
        let domain = sid.domain().ok_or_else(|| {
            Error::new(ErrorKind::Vendor, "objectSid has no domain part")
                .with_context("dn", &user.dn)
        })?;
        let entries = self
            .search(&user.dn, Scope::Base, "(objectClass=*)", &["tokenGroups"])
            .await?;
        let groups: Vec<Sid> = entries
            .first()
            .and_then(|e| e.bin_attrs.get("tokenGroups"))
            .map(|v| v.iter().filter_map(|b| Sid::parse(b)).collect())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Vendor,
                    "the directory returned no tokenGroups for the user",
                )
                .with_context("dn", &user.dn)
            })?;
        let builtin = PRIVILEGED_BUILTIN
            .iter()
            .map(|(rid, name)| (Sid::builtin(*rid), *name));
        let domain_groups = PRIVILEGED_DOMAIN
            .iter()
            .map(|(rid, name)| (domain.child(*rid), *name));
        Ok(builtin
            .chain(domain_groups)
            .filter(|(s, _)| groups.contains(s))
            .map(|(s, name)| format!("{name} ({s})"))
            .collect())
    }

    /// The configured protected groups the user belongs to, directly or through nesting
    /// (LDAP_MATCHING_RULE_IN_CHAIN).
    pub(crate) async fn protected_memberships(&self, user: &User) -> Result<Vec<String>> {
        let mut hits = Vec::new();
        for group in &self.config.protected_groups {
            let filter = format!(
                "(&{USER_CLASS}{}(memberOf:1.2.840.113556.1.4.1941:={}))",
                guid_filter(&user.guid),
                ldap3::ldap_escape(group.as_str())
            );
            if !self
                .search(&self.config.base_dn, Scope::Subtree, &filter, &["1.1"])
                .await?
                .is_empty()
            {
                hits.push(group.clone());
            }
        }
        Ok(hits)
    }

    /// Finds users matching a filter (already escaped) under the base DN.
    pub(crate) async fn users(&self, filter: &str) -> Result<Vec<User>> {
        self.search(&self.config.base_dn, Scope::Subtree, filter, USER_ATTRS)
            .await?
            .into_iter()
            .map(User::from_entry)
            .collect()
    }

    /// Modifies an entry; the caller interprets the result code.
    pub(crate) async fn modify(&self, dn: &str, mods: Vec<Mod<Vec<u8>>>) -> Result<Written> {
        let mut conn = self.acquire().await?;
        let r = conn
            .ldap()
            .modify(dn, mods)
            .await
            .map_err(|e| AdError::from_ldap("modify", e))
            .and_then(|res| written("modify", res));
        Ok(conn.check(r))
    }

    /// Renames or moves an entry; the caller interprets the result code.
    pub(crate) async fn modify_dn(
        &self,
        dn: &str,
        rdn: &str,
        new_superior: &str,
    ) -> Result<Written> {
        let mut conn = self.acquire().await?;
        let r = conn
            .ldap()
            .modifydn(dn, rdn, true, Some(new_superior))
            .await
            .map_err(|e| AdError::from_ldap("modify_dn", e))
            .and_then(|res| written("modify_dn", res));
        Ok(conn.check(r))
    }

    /// Whether the schema defines an attribute (by lDAPDisplayName).
    pub(crate) async fn schema_has_attribute(&self, name: &str) -> Result<bool> {
        let root = self
            .read("", &["schemaNamingContext"])
            .await?
            .and_then(|e| {
                e.attrs
                    .get("schemaNamingContext")
                    .and_then(|v| v.first().cloned())
            })
            .ok_or_else(|| {
                Error::new(ErrorKind::Vendor, "the RootDSE has no schemaNamingContext")
            })?;
        let filter = format!(
            "(&(objectClass=attributeSchema)(lDAPDisplayName={}))",
            ldap3::ldap_escape(name)
        );
        let found = self
            .search(&root, Scope::OneLevel, &filter, &["lDAPDisplayName"])
            .await?;
        Ok(!found.is_empty())
    }
}

fn written(op: &'static str, res: ldap3::LdapResult) -> Written {
    if res.rc == rc::SUCCESS {
        Ok(())
    } else {
        Err(AdError::Result {
            op,
            rc: res.rc,
            text: res.text,
        })
    }
}

/// A modification replacing an attribute with one value (or deleting it with none).
pub(crate) fn replace(attr: &str, values: impl IntoIterator<Item = Vec<u8>>) -> Mod<Vec<u8>> {
    Mod::Replace(
        attr.as_bytes().to_vec(),
        values.into_iter().collect::<HashSet<_>>(),
    )
}

/// A modification deleting exactly these values.
pub(crate) fn delete_values(attr: &str, values: impl IntoIterator<Item = Vec<u8>>) -> Mod<Vec<u8>> {
    Mod::Delete(
        attr.as_bytes().to_vec(),
        values.into_iter().collect::<HashSet<_>>(),
    )
}

/// A modification adding these values.
pub(crate) fn add_values(attr: &str, values: impl IntoIterator<Item = Vec<u8>>) -> Mod<Vec<u8>> {
    Mod::Add(
        attr.as_bytes().to_vec(),
        values.into_iter().collect::<HashSet<_>>(),
    )
}
