//! The hostile-lookup rule judges what a connector sent, not only what its lookup returned: a
//! connector that puts a lookup value into a filter raw (SCIM, LDAP), into its query string
//! unencoded or into a path unencoded fails it even when the vendor happens to find nothing,
//! and a lookup the vendor refused with a 400 is no pass.
//!
//! Each guard here was missing before: the rule only read the lookup's result, so every broken
//! connector below (all of them find nothing, or get an `InvalidInput` error) passed it.
//!
//! The connector under test is a fake whose "vendor" is a list of logins searched with Okta's
//! `profile.login eq "…"` (SCIM) or an AD-like `(&(objectClass=user)(|(mail=…)))` (LDAP); the
//! vendor matches a login equal to a literal of the filter and reads no wildcard, so a raw
//! value never widens the result: only the requests show it.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use offboard_core::{
    AccountRef, AccountStatus, Action, Capabilities, Connector, Error, ExecuteOptions,
    ExecuteReply, LookupRequest, Outcome, Result, Snapshot, Verification,
};
use offboard_testkit::suite::conformance::{
    FilterSyntax, Fixture, LDAP_WILDCARD, SentRequest, lookup_hostile_input_never_widens,
};

/// How the fake builds its requests.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Values escaped per the filter's rules, the query string percent-encoded.
    Escaped,
    /// The value between quotes (or after `=`) as it is.
    Raw,
    /// Filters escaped, but the query string put together unencoded (only spaces as `%20`).
    Unencoded,
    /// Filters escaped, but an external id put into the path as it is.
    RawPath,
    /// Values with a character the filter must escape refused (`InvalidInput`) before sending.
    Refuses,
    /// Values with a character the filter must escape refused (`InvalidInput`), but only after
    /// sending the filter.
    RefusesAfterSending,
}

#[derive(Debug)]
struct FakeConnector {
    capabilities: Capabilities,
    syntax: FilterSyntax,
    mode: Mode,
    /// The vendor answers a filter it cannot parse with a 400 (else: matches nothing).
    strict_vendor: bool,
    users: Mutex<Vec<AccountRef>>,
    sent: Mutex<Vec<SentRequest>>,
}

/// RFC 4515 escaping.
fn ldap_escape(value: &str) -> String {
    value
        .chars()
        .map(|c| match c {
            '\\' | '*' | '(' | ')' | '\0' => format!("\\{:02x}", u32::from(c)),
            c => c.to_string(),
        })
        .collect()
}

impl FakeConnector {
    fn new(syntax: FilterSyntax, mode: Mode, strict_vendor: bool) -> Self {
        Self {
            capabilities: Capabilities::new("fake", Vec::new()),
            syntax,
            mode,
            strict_vendor,
            users: Mutex::new(Vec::new()),
            sent: Mutex::new(Vec::new()),
        }
    }

    fn special(&self, value: &str) -> bool {
        match self.syntax {
            FilterSyntax::Ldap => value.contains(['\\', '*', '(', ')', '\0']),
            _ => value.contains(['"', '\\']),
        }
    }

    /// The filter over `addresses`, with the fake's own constant (`status ne "DEPROVISIONED"`,
    /// `(objectClass=user)`).
    fn filter(&self, addresses: &[&str]) -> String {
        let raw = matches!(self.mode, Mode::Raw);
        match self.syntax {
            FilterSyntax::Ldap => {
                let terms: String = addresses
                    .iter()
                    .map(|a| {
                        let a = if raw { (*a).to_owned() } else { ldap_escape(a) };
                        format!("(mail={a})")
                    })
                    .collect();
                format!("(&(objectClass=user)(|{terms}))")
            }
            _ => {
                let terms: Vec<String> = addresses
                    .iter()
                    .map(|a| {
                        let a = if raw {
                            (*a).to_owned()
                        } else {
                            a.replace('\\', "\\\\").replace('"', "\\\"")
                        };
                        format!("profile.login eq \"{a}\"")
                    })
                    .collect();
                format!("status ne \"DEPROVISIONED\" and ({})", terms.join(" or "))
            }
        }
    }

    /// The vendor: decodes the query string, records the request and matches logins equal to a
    /// literal of the filter.
    fn search(&self, filter: &str) -> Result<Vec<AccountRef>> {
        let query = match self.mode {
            Mode::Unencoded => format!("search={}", filter.replace(' ', "%20")),
            _ => url::form_urlencoded::Serializer::new(String::new())
                .append_pair("search", filter)
                .finish(),
        };
        let received = url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "search")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let literals = self.syntax.literals(&received);
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(SentRequest::new("GET", "/api/v1/users").with_filter(
                "search",
                self.syntax,
                received,
            ));
        let literals = match literals {
            Ok(l) => l,
            Err(_) if self.strict_vendor => {
                return Err(Error::invalid_input("GET /api/v1/users: 400 E0000031")
                    .with_context("status", 400));
            }
            Err(_) => Vec::new(),
        };
        let users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(users
            .iter()
            .filter(|u| literals.contains(&u.login))
            .cloned()
            .collect())
    }
}

#[async_trait]
impl Connector for FakeConnector {
    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn lookup(&self, request: &LookupRequest) -> Result<Option<AccountRef>> {
        if let Some(id) = &request.external_id {
            let path = match self.mode {
                Mode::RawPath => format!("/api/v1/users/{id}"),
                _ => format!(
                    "/api/v1/users/{}",
                    id.replace('%', "%25")
                        .replace('/', "%2F")
                        .replace('?', "%3F")
                        .replace('#', "%23")
                ),
            };
            // What the vendor receives: the path up to a raw `?` or `#`.
            let path = path.split(['?', '#']).next().unwrap_or_default();
            self.sent
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(SentRequest::new("GET", path));
            let users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
            return Ok(users.iter().find(|u| &u.external_id == id).cloned());
        }
        let person = &request.person;
        let addresses: Vec<&str> = std::iter::once(person.email.as_str())
            .chain(person.aliases.iter().map(String::as_str))
            .filter(|a| !a.is_empty())
            .collect();
        let special = addresses.iter().any(|a| self.special(a));
        if special && matches!(self.mode, Mode::Refuses) {
            return Err(Error::invalid_input(
                "an address with a filter metacharacter",
            ));
        }
        if addresses.is_empty() {
            return Ok(None);
        }
        let found = self.search(&self.filter(&addresses))?;
        if special && matches!(self.mode, Mode::RefusesAfterSending) {
            return Err(Error::invalid_input(
                "an address with a filter metacharacter",
            ));
        }
        // Exact matches only, as the real connectors check client-side.
        Ok(found
            .into_iter()
            .find(|u| addresses.iter().any(|a| a.eq_ignore_ascii_case(&u.login))))
    }

    async fn execute(
        &self,
        _: &AccountRef,
        action: &Action,
        _: &ExecuteOptions,
    ) -> Result<ExecuteReply> {
        Err(Error::unsupported(format!(
            "fake does not offer {}",
            action.name
        )))
    }

    async fn snapshot(&self, _: &AccountRef, action: &Action) -> Result<Snapshot> {
        Err(Error::unsupported(format!(
            "fake does not offer {}",
            action.name
        )))
    }

    async fn restore(&self, _: &AccountRef, _: &Snapshot) -> Result<Outcome> {
        Err(Error::unsupported("fake offers no restore"))
    }

    async fn verify_revoked(&self, _: &AccountRef) -> Result<Verification> {
        Err(Error::unsupported("fake offers no verification"))
    }
}

struct FakeFixture {
    connector: Arc<FakeConnector>,
    /// Whether it reports the requests sent (a simulator) or not (a real tenant).
    records: bool,
}

#[async_trait]
impl Fixture for FakeFixture {
    async fn create_user(&self, login: &str, _: &[&str]) -> AccountRef {
        let account = AccountRef::new("fake", format!("id-{login}"), login, AccountStatus::Active);
        self.connector
            .users
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(account.clone());
        account
    }

    async fn delete_user(&self, external_id: &str) {
        self.connector
            .users
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|u| u.external_id != external_id);
    }

    fn secret(&self) -> &str {
        "fake-secret"
    }

    fn sent_requests(&self) -> Option<Vec<SentRequest>> {
        self.records.then(|| {
            std::mem::take(
                &mut *self
                    .connector
                    .sent
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            )
        })
    }
}

/// Each syntax's escapes decode; what a raw value leaves behind does not parse.
#[test]
fn filter_literals_decode_each_vendors_escapes() {
    let scim = r#"profile.login eq "a\"b\\" or profile.email eq "c""#;
    assert_eq!(
        FilterSyntax::Scim.literals(scim).unwrap(),
        vec![r#"a"b\"#.to_owned(), "c".to_owned()]
    );
    assert_eq!(
        FilterSyntax::OData
            .literals(r"mail eq 'a''b\' or x eq ''''")
            .unwrap(),
        vec![r"a'b\".to_owned(), "'".to_owned()]
    );
    assert_eq!(
        FilterSyntax::GoogleQuery
            .literals(r"email:'a\'b\\'")
            .unwrap(),
        vec![r"a'b\".to_owned()]
    );
    let wildcard = LDAP_WILDCARD.to_string();
    assert_eq!(
        FilterSyntax::Ldap
            .literals(r"(&(objectClass=user)(!(cn=x))(|(mail=a\2a\28\29\5c\00)(sn=b*)(uid=*)))")
            .unwrap(),
        vec![
            "user".to_owned(),
            "x".to_owned(),
            "a*()\\\0".to_owned(),
            format!("b{wildcard}"),
            wildcard,
        ]
    );
    assert_eq!(
        FilterSyntax::Ldap
            .literals("(memberOf:1.2.840.113556.1.4.1941:=CN=g,DC=x)")
            .unwrap(),
        vec!["CN=g,DC=x".to_owned()]
    );
    // What a raw value leaves behind: a string that never closes, an escape at the end,
    // parentheses that do not balance, a `\` that is no `\XX`.
    assert!(FilterSyntax::OData.literals("mail eq '''").is_err());
    assert!(
        FilterSyntax::Scim
            .literals(r#"profile.login eq "\""#)
            .is_err()
    );
    assert!(FilterSyntax::GoogleQuery.literals(r"email:'x\").is_err());
    for raw in [
        "(mail=a)(uid=b)",
        "(|(mail=a))(uid=*))",
        "(mail=a(b)",
        r"(mail=a\)",
        r"(mail=a\zz)",
        "(mail=a",
        "(=a)",
        "(&)",
    ] {
        assert!(FilterSyntax::Ldap.literals(raw).is_err(), "{raw}");
    }
}

/// Runs the rule; the panic message when it fails.
async fn hostile_rule(
    syntax: FilterSyntax,
    mode: Mode,
    strict_vendor: bool,
    records: bool,
) -> Option<String> {
    let connector = Arc::new(FakeConnector::new(syntax, mode, strict_vendor));
    let fixture = FakeFixture {
        connector: Arc::clone(&connector),
        records,
    };
    let run =
        tokio::spawn(async move { lookup_hostile_input_never_widens(&*connector, &fixture).await });
    match run.await {
        Ok(()) => None,
        Err(e) => {
            let panic = e.into_panic();
            Some(
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .unwrap_or_else(|| format!("{panic:?}")),
            )
        }
    }
}

/// Escaping per the filter's rules passes, with the connector's own constant literals
/// (`"DEPROVISIONED"`, `objectClass=user`) taken from the plain lookups.
#[tokio::test]
async fn a_connector_escaping_per_the_vendors_rules_passes() {
    for syntax in [FilterSyntax::Scim, FilterSyntax::Ldap] {
        assert_eq!(
            hostile_rule(syntax, Mode::Escaped, true, true).await,
            None,
            "{syntax:?}"
        );
        assert_eq!(
            hostile_rule(syntax, Mode::Escaped, true, false).await,
            None,
            "{syntax:?}"
        );
    }
}

/// A raw value in a SCIM filter fails even though the vendor finds nothing (the old rule,
/// reading only the `Ok(None)`, passed it).
#[tokio::test]
async fn a_raw_value_in_the_filter_fails_even_when_the_vendor_finds_nothing() {
    let failure = hostile_rule(FilterSyntax::Scim, Mode::Raw, false, true)
        .await
        .expect("the raw filter must fail the rule");
    assert!(
        failure.contains("rule `lookup_hostile_input_never_widens`")
            && failure.contains("`search` of GET /api/v1/users")
            && failure.contains("put in raw"),
        "{failure}"
    );
}

/// A raw value in an LDAP filter fails: its `*` reads as a wildcard, its `(` and `)` as
/// structure.
#[tokio::test]
async fn a_raw_value_in_an_ldap_filter_fails() {
    let failure = hostile_rule(FilterSyntax::Ldap, Mode::Raw, false, true)
        .await
        .expect("the raw LDAP filter must fail the rule");
    assert!(
        failure.contains("`search` of GET /api/v1/users") && failure.contains("Ldap"),
        "{failure}"
    );
}

/// A query string put together unencoded fails: the vendor decodes `+`, `&` and `%22` into
/// something else than the value.
#[tokio::test]
async fn an_unencoded_query_string_fails() {
    let failure = hostile_rule(FilterSyntax::Scim, Mode::Unencoded, false, true)
        .await
        .expect("the unencoded query string must fail the rule");
    assert!(
        failure.contains("`search` of GET /api/v1/users"),
        "{failure}"
    );
}

/// A raw value in a path fails: `/`, `?`, `#` cut it, `%XX` decodes.
#[tokio::test]
async fn a_raw_value_in_the_path_fails() {
    let failure = hostile_rule(FilterSyntax::Scim, Mode::RawPath, true, true)
        .await
        .expect("the raw path must fail the rule");
    assert!(
        failure.contains("went into the path unencoded") && failure.contains("external id"),
        "{failure}"
    );
}

/// The vendor's 400 (an `InvalidInput` error with the answer's `status`) is no pass, even
/// without a recording of the requests (as against a real tenant).
#[tokio::test]
async fn a_vendor_400_is_no_pass() {
    let failure = hostile_rule(FilterSyntax::Scim, Mode::Raw, true, false)
        .await
        .expect("the vendor's 400 must fail the rule");
    assert!(
        failure.contains("the vendor refused the lookup's request") && failure.contains("400"),
        "{failure}"
    );
}

/// Refusing a value up front passes; refusing it after the request went out does not.
#[tokio::test]
async fn refusing_bad_input_passes_only_before_sending() {
    for syntax in [FilterSyntax::Scim, FilterSyntax::Ldap] {
        assert_eq!(
            hostile_rule(syntax, Mode::Refuses, true, true).await,
            None,
            "{syntax:?}"
        );
        let failure = hostile_rule(syntax, Mode::RefusesAfterSending, true, true)
            .await
            .expect("a refusal after sending must fail the rule");
        assert!(
            failure.contains("only after 1 request(s) were sent"),
            "{failure}"
        );
    }
}
