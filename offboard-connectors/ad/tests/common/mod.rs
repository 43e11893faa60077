//! Shared set-up for the tests against the Samba AD DC that `./scripts/test` starts
//! (scripts/services/samba.sh). Missing variables fail the test: nothing skips silently.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Mod, Scope, SearchEntry};
use offboard_ad::{AdConfig, AdConfigBuilder, AdConnector, SearchLog};
use offboard_core::{AccountRef, AccountStatus, Secret};
use offboard_testkit::suite::conformance::{FilterSyntax, Fixture, SentRequest};
use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use uuid::Uuid;

/// The variables samba.sh exports.
#[derive(Clone)]
pub struct Env {
    pub url: String,
    pub bind_dn: String,
    pub password: String,
    pub base_dn: String,
    pub ca_file: String,
    pub disabled_ou: String,
    pub staff_ou: String,
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: these tests need the Samba AD domain controller. Run \
             ./scripts/test, which starts the Samba AD DC (scripts/services/samba.sh) and \
             exports OFFBOARD_TEST_AD_*"
        )
    })
}

pub fn env() -> Env {
    let base_dn = var("OFFBOARD_TEST_AD_BASE_DN");
    Env {
        url: var("OFFBOARD_TEST_AD_URL"),
        bind_dn: var("OFFBOARD_TEST_AD_BIND_DN"),
        password: var("OFFBOARD_TEST_AD_PASSWORD"),
        ca_file: var("OFFBOARD_TEST_AD_CA_FILE"),
        disabled_ou: var("OFFBOARD_TEST_AD_DISABLED_OU"),
        staff_ou: std::env::var("OFFBOARD_TEST_AD_STAFF_OU")
            .unwrap_or_else(|_| format!("OU=Staff,{base_dn}")),
        base_dn,
    }
}

pub fn builder(env: &Env) -> AdConfigBuilder {
    AdConfig::builder()
        .with_url(&env.url)
        .with_bind_dn(&env.bind_dn)
        .with_password(Secret::new(env.password.clone()))
        .with_base_dn(&env.base_dn)
        .with_ca_file(&env.ca_file)
        .with_disabled_ou(&env.disabled_ou)
        .with_pool_size(3)
}

pub async fn connector(env: &Env) -> Arc<AdConnector> {
    Arc::new(
        AdConnector::connect(builder(env).build().expect("config"))
            .await
            .expect("connect to the Samba AD DC"),
    )
}

pub fn random_hex(n: usize) -> String {
    Uuid::new_v4().simple().to_string()[..n].to_owned()
}

/// A direct administrator's connection (not through the connector), for setting up and
/// reading back.
pub struct Admin {
    pub ldap: Ldap,
    pub env: Env,
}

impl Admin {
    pub async fn connect(env: &Env) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&env.ca_file).expect("CA file") {
            roots.add(cert.expect("CA cert")).expect("add CA");
        }
        let tls = ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        let settings = LdapConnSettings::new().set_config(Arc::new(tls));
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &env.url)
            .await
            .expect("connect");
        ldap3::drive!(conn);
        ldap.simple_bind(&env.bind_dn, &env.password)
            .await
            .expect("bind")
            .success()
            .expect("bind succeeds");
        Self {
            ldap,
            env: env.clone(),
        }
    }

    /// Adds an entry; an existing one (68) is fine.
    pub async fn ensure(&mut self, dn: &str, attrs: Vec<(&str, Vec<&str>)>) {
        let attrs: Vec<(Vec<u8>, HashSet<Vec<u8>>)> = attrs
            .into_iter()
            .map(|(k, v)| {
                (
                    k.as_bytes().to_vec(),
                    v.into_iter().map(|s| s.as_bytes().to_vec()).collect(),
                )
            })
            .collect();
        let r = self.ldap.add(dn, attrs).await.expect("add");
        assert!(r.rc == 0 || r.rc == 68, "adding {dn}: {r:?}");
    }

    pub fn manager_dn(&self) -> String {
        format!("CN=ofb-test-manager,{}", self.env.staff_ou)
    }

    pub fn group_dn(&self) -> String {
        format!("CN=ofb-test-group,{}", self.env.staff_ou)
    }

    pub async fn ensure_shared(&mut self) {
        let manager = self.manager_dn();
        self.ensure(
            &manager,
            vec![
                ("objectClass", vec!["user"]),
                ("sAMAccountName", vec!["ofb-test-manager"]),
            ],
        )
        .await;
        let group = self.group_dn();
        self.ensure(
            &group,
            vec![
                ("objectClass", vec!["group"]),
                ("sAMAccountName", vec!["ofb-test-group"]),
            ],
        )
        .await;
    }

    /// Creates an enabled user in the Staff OU with a password, a manager and one group;
    /// returns its DN and GUID.
    pub async fn create_user(
        &mut self,
        cn: &str,
        sam: &str,
        upn: &str,
        mails: &[&str],
        aliases: &[&str],
    ) -> (String, Uuid) {
        self.ensure_shared().await;
        let dn = format!("CN={},{}", ldap3::dn_escape(cn), self.env.staff_ou);
        let password: Vec<u8> = "\"Init!al-Passw0rd-xyz\""
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        let mut proxies: Vec<String> = vec![format!("SMTP:{upn}")];
        proxies.extend(aliases.iter().map(|a| format!("smtp:{a}")));
        let manager = self.manager_dn();
        let mut attrs: Vec<(Vec<u8>, HashSet<Vec<u8>>)> = vec![
            (b"objectClass".to_vec(), set(["user"])),
            (b"sAMAccountName".to_vec(), set([sam])),
            (b"userPrincipalName".to_vec(), set([upn])),
            (
                b"proxyAddresses".to_vec(),
                set(proxies.iter().map(String::as_str)),
            ),
            (b"unicodePwd".to_vec(), HashSet::from([password])),
            (b"userAccountControl".to_vec(), set(["512"])),
            (b"manager".to_vec(), set([manager.as_str()])),
            (b"description".to_vec(), set(["test user"])),
        ];
        if !mails.is_empty() {
            attrs.push((b"mail".to_vec(), set(mails.iter().copied())));
        }
        let r = self.ldap.add(&dn, attrs).await.expect("add user");
        assert_eq!(r.rc, 0, "adding {dn}: {r:?}");
        let group = self.group_dn();
        self.add_member(&group, &dn).await;
        let guid = self.read(&dn).await.expect("created user").1;
        (dn, guid)
    }

    pub async fn add_member(&mut self, group: &str, member: &str) {
        let r = self
            .ldap
            .modify(
                group,
                vec![Mod::Add(
                    b"member".to_vec(),
                    HashSet::from([member.as_bytes().to_vec()]),
                )],
            )
            .await
            .expect("add member");
        assert!(r.rc == 0 || r.rc == 68, "adding {member} to {group}: {r:?}");
    }

    /// Reads an entry by DN: its attributes and GUID.
    pub async fn read(&mut self, dn: &str) -> Option<(SearchEntry, Uuid)> {
        let r = self
            .ldap
            .search(dn, Scope::Base, "(objectClass=*)", vec!["*", "objectGUID"])
            .await
            .expect("search");
        if r.1.rc == 32 {
            return None;
        }
        let entry = SearchEntry::construct(r.0.into_iter().next()?);
        let guid = guid_of(&entry);
        Some((entry, guid))
    }

    /// Reads the user with this GUID, wherever it is now.
    pub async fn by_guid(&mut self, guid: &Uuid) -> Option<SearchEntry> {
        let mut filter = String::from("(objectGUID=");
        for b in guid.to_bytes_le() {
            filter.push_str(&format!("\\{b:02x}"));
        }
        filter.push(')');
        let base = self.env.base_dn.clone();
        let (entries, _) = self
            .ldap
            .search(&base, Scope::Subtree, &filter, vec!["*"])
            .await
            .expect("search")
            .success()
            .expect("search ok");
        entries.into_iter().next().map(SearchEntry::construct)
    }

    pub async fn delete_guid(&mut self, guid: &Uuid) {
        if let Some(entry) = self.by_guid(guid).await {
            let r = self.ldap.delete(&entry.dn).await.expect("delete");
            assert!(r.rc == 0 || r.rc == 32, "deleting {}: {r:?}", entry.dn);
        }
    }

    pub async fn modify(&mut self, dn: &str, mods: Vec<Mod<Vec<u8>>>) {
        let r = self.ldap.modify(dn, mods).await.expect("modify");
        assert_eq!(r.rc, 0, "modify {dn}: {r:?}");
    }
}

pub fn set<'a>(values: impl IntoIterator<Item = &'a str>) -> HashSet<Vec<u8>> {
    values.into_iter().map(|s| s.as_bytes().to_vec()).collect()
}

pub fn guid_of(entry: &SearchEntry) -> Uuid {
    let bytes = entry
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
        .expect("objectGUID");
    Uuid::from_bytes_le(bytes.try_into().expect("16 bytes"))
}

pub fn attr(entry: &SearchEntry, name: &str) -> Vec<String> {
    entry
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

pub fn account(guid: &Uuid, login: &str) -> AccountRef {
    AccountRef::new("ad", guid.to_string(), login, AccountStatus::Active)
}

/// The conformance suite's fixture: users created by LDAP add in the Staff OU, each with a
/// random sAMAccountName, UPN and mail = the login, aliases as `smtp:` proxy addresses, a
/// manager and one group membership.
/// With [`AdFixture::observing`], it reports the connector's LDAP searches to the
/// conformance rules that read them.
pub struct AdFixture {
    env: Env,
    admin: tokio::sync::Mutex<Admin>,
    searches: Option<SearchLog>,
}

impl AdFixture {
    pub async fn new(env: &Env) -> Self {
        Self {
            env: env.clone(),
            admin: tokio::sync::Mutex::new(Admin::connect(env).await),
            searches: None,
        }
    }

    /// Reports the searches of the connector built with this log
    /// ([`AdConfigBuilder::with_search_log`]) as its sent requests.
    pub fn observing(mut self, searches: SearchLog) -> Self {
        self.searches = Some(searches);
        self
    }
}

#[async_trait]
impl Fixture for AdFixture {
    async fn create_user(&self, login: &str, aliases: &[&str]) -> AccountRef {
        let cn = login.split('@').next().unwrap_or(login);
        let sam = format!("t{}", random_hex(15));
        let (_, guid) = self
            .admin
            .lock()
            .await
            .create_user(cn, &sam, login, &[login], aliases)
            .await;
        account(&guid, login)
    }

    async fn delete_user(&self, external_id: &str) {
        let guid = Uuid::parse_str(external_id).expect("a GUID");
        self.admin.lock().await.delete_guid(&guid).await;
    }

    fn secret(&self) -> &str {
        &self.env.password
    }

    fn domain(&self) -> &str {
        "offb.test"
    }

    /// The connector's searches since the last call: `SEARCH <base DN>` with its LDAP filter.
    fn sent_requests(&self) -> Option<Vec<SentRequest>> {
        self.searches.as_ref().map(|log| {
            log.take()
                .into_iter()
                .map(|s| {
                    SentRequest::new("SEARCH", s.base).with_filter(
                        "filter",
                        FilterSyntax::Ldap,
                        s.filter,
                    )
                })
                .collect()
        })
    }
}
