//! The connector conformance suite: one plain async function per rule of the
//! [`Connector`] contract, and [`run_conformance`], which runs those that apply.
//!
//! Every connector runs the suite against its simulated tenant, and against a real tenant when
//! `OFFBOARD_TEST_<VENDOR>` is set. A rule panics with a message naming the app, the rule and
//! what went wrong; a connector that fails conformance does not merge.
//!
//! # Calling contract
//! 1. Implement [`Fixture`] for the system under test: it creates and deletes test users
//!    directly (not through the connector) and knows the connector's secret.
//! 2. Call [`run_conformance`] (or single rules) from a `#[tokio::test]`.
//! 3. Where the fixture can see what the connector sent (a simulator's recording, a log of LDAP
//!    searches), report it with [`Fixture::sent_requests`]: the hostile-lookup rule then also
//!    judges the filters and paths that reached the vendor.
//!
//! Each rule creates its own users, with logins `<random prefix>-<name>@<domain>` so that runs
//! against a shared tenant never collide, and deletes them at the end when it passes.
//!
//! # Example
//! ```
//! use std::sync::Arc;
//! use offboard_testkit::suite::conformance::{ReferenceFixture, run_conformance};
//! use offboard_testkit::ReferenceConnector;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let okta = Arc::new(ReferenceConnector::builder("okta").build());
//! let fixture = ReferenceFixture::new(okta.clone());
//! let report = run_conformance(&okta, &fixture).await;
//! assert!(report.rules.contains(&"restore_reproduces_snapshot"));
//! # }
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use offboard_core::{
    AccountRef, Action, ActionName, ActionSpec, AppId, Connector, ErrorKind, ExecuteOptions,
    LookupRequest, Manager, Outcome, Person, Result,
};

use crate::suite::reference::{ReferenceConnector, ReferenceUser};

/// How the conformance suite creates test users in the system under test.
///
/// Users are created and deleted directly (the vendor's API, the simulator's controls), not
/// through the connector under test.
#[async_trait]
pub trait Fixture: Send + Sync {
    /// Creates an active user with this login and aliases, holding access that
    /// [`Connector::verify_revoked`] reports (for example a group membership), and returns its
    /// account as the connector's `lookup` would.
    ///
    /// Panics when the user cannot be created.
    async fn create_user(&self, login: &str, aliases: &[&str]) -> AccountRef;

    /// Deletes the user, as an administrator of the app would. Deleting a user that is already
    /// gone does nothing.
    async fn delete_user(&self, external_id: &str);

    /// The secret the connector was configured with; it must never appear in its `Debug` output.
    fn secret(&self) -> &str;

    /// The domain of test logins. Default: `example.test`.
    fn domain(&self) -> &str {
        "example.test"
    }

    /// The action to run for an offered action, with its parameters. Default: the action
    /// without parameters; fixtures override it for actions that take parameters.
    fn action(&self, spec: &ActionSpec) -> Action {
        Action::new(spec.name.clone())
    }

    /// The requests the system under test received since the last call (the first call: since
    /// the fixture was made), as [`SentRequest`]s with their filter parameters picked out, in
    /// the order received: a simulator's recording ([`RequestCursor`]), or the LDAP searches
    /// a directory connector logged. `None` when the fixture cannot observe them (a real
    /// tenant, an in-memory connector); the rules that inspect requests then judge by the
    /// results alone. Default: `None`.
    fn sent_requests(&self) -> Option<Vec<SentRequest>> {
        None
    }
}

/// The quoting rules of a vendor's filter language, as [`lookup_hostile_input_never_widens`]
/// reads a filter the connector sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FilterSyntax {
    /// Okta's `search` and `filter` (SCIM filter expressions): strings in `"`, with `\"` and
    /// `\\` escapes.
    Scim,
    /// Microsoft Graph's `$filter` (OData): strings in `'`, a `'` inside written `''`.
    OData,
    /// Google Admin SDK's `query` (`email:'…'`): values in `'`, with `\'` and `\\` escapes.
    GoogleQuery,
    /// An LDAP search filter (RFC 4515): each assertion value is a string, with `\XX` hex
    /// escapes (`\2a` `\28` `\29` `\5c` `\00`); an unescaped `*` (a substring or presence
    /// wildcard) reads as [`LDAP_WILDCARD`].
    Ldap,
}

/// What an unescaped `*` in an LDAP assertion value reads as in [`FilterSyntax::literals`]:
/// U+FFFF, a noncharacter, so that a wildcard never reads as a value's own `*` (`\2a`).
pub const LDAP_WILDCARD: char = '\u{FFFF}';

impl FilterSyntax {
    /// The decoded contents of the string literals in `filter` (of an LDAP filter: its
    /// assertion values), in order.
    ///
    /// # Errors
    /// A description of the fault when a literal never closes or an escape ends the filter, or
    /// (LDAP) when the parentheses do not balance, text follows the filter, a value holds a raw
    /// `(` or NUL or a `\` that is no `\XX` escape: what a value put in raw leaves behind.
    ///
    /// # Example
    /// ```
    /// use offboard_testkit::suite::conformance::FilterSyntax;
    /// assert_eq!(
    ///     FilterSyntax::OData.literals("mail eq 'o''neil' or upn eq 'x'").unwrap(),
    ///     vec!["o'neil".to_owned(), "x".to_owned()]
    /// );
    /// assert!(FilterSyntax::OData.literals("mail eq '''").is_err());
    /// assert!(FilterSyntax::Ldap.literals("(mail=a)(uid=*)").is_err());
    /// ```
    pub fn literals(self, filter: &str) -> std::result::Result<Vec<String>, String> {
        let quote = match self {
            Self::Scim => '"',
            Self::OData | Self::GoogleQuery => '\'',
            Self::Ldap => return LdapFilter::literals(filter),
        };
        let backslash_escapes = self != Self::OData;
        let mut literals = Vec::new();
        let mut chars = filter.char_indices().peekable();
        while let Some((start, c)) = chars.next() {
            if c != quote {
                continue;
            }
            let mut text = String::new();
            loop {
                match chars.next() {
                    None => return Err(format!("the string opened at byte {start} never closes")),
                    Some((at, '\\')) if backslash_escapes => match chars.next() {
                        Some((_, e)) => text.push(e),
                        None => return Err(format!("the escape at byte {at} ends the filter")),
                    },
                    Some((_, c)) if c == quote => {
                        if !backslash_escapes && chars.next_if(|&(_, n)| n == quote).is_some() {
                            text.push(quote);
                        } else {
                            break;
                        }
                    }
                    Some((_, c)) => text.push(c),
                }
            }
            literals.push(text);
        }
        Ok(literals)
    }
}

/// Reads an LDAP filter (RFC 4515) for [`FilterSyntax::literals`].
struct LdapFilter<'a> {
    bytes: &'a [u8],
    at: usize,
    literals: Vec<String>,
}

impl<'a> LdapFilter<'a> {
    /// The assertion values of `filter`, decoded; an error when it is no well-formed filter.
    fn literals(filter: &'a str) -> std::result::Result<Vec<String>, String> {
        let mut parser = Self {
            bytes: filter.as_bytes(),
            at: 0,
            literals: Vec::new(),
        };
        parser.filter()?;
        if parser.at != parser.bytes.len() {
            return Err(format!(
                "text follows the filter's closing `)` at byte {}",
                parser.at
            ));
        }
        Ok(parser.literals)
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn expect(&mut self, byte: u8) -> std::result::Result<(), String> {
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(format!("expected `{}` at byte {}", byte as char, self.at))
        }
    }

    /// `(` (`&` or `|` and one or more filters | `!` and a filter | an item) `)`.
    fn filter(&mut self) -> std::result::Result<(), String> {
        self.expect(b'(')?;
        match self.peek() {
            Some(b'&' | b'|') => {
                self.at += 1;
                if self.peek() != Some(b'(') {
                    return Err(format!("an empty `&` or `|` at byte {}", self.at));
                }
                while self.peek() == Some(b'(') {
                    self.filter()?;
                }
            }
            Some(b'!') => {
                self.at += 1;
                self.filter()?;
            }
            _ => self.item()?,
        }
        self.expect(b')')
    }

    /// `attr` (`=` | `~=` | `>=` | `<=` | `:=` of an extensible match) `value`.
    fn item(&mut self) -> std::result::Result<(), String> {
        let start = self.at;
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b';' | b'.' | b':'))
        {
            self.at += 1;
        }
        if self.at == start {
            return Err(format!("no attribute at byte {start}"));
        }
        if matches!(self.peek(), Some(b'~' | b'<' | b'>')) {
            self.at += 1;
        }
        self.expect(b'=')?;
        let mut value = Vec::new();
        loop {
            match self.peek() {
                None => return Err("the filter ends inside a value".to_owned()),
                Some(b')') => break,
                Some(b'(') => {
                    return Err(format!("an unescaped `(` in a value at byte {}", self.at));
                }
                Some(0) => return Err(format!("an unescaped NUL in a value at byte {}", self.at)),
                Some(b'*') => {
                    let mut wildcard = [0; 4];
                    value.extend_from_slice(LDAP_WILDCARD.encode_utf8(&mut wildcard).as_bytes());
                    self.at += 1;
                }
                Some(b'\\') => {
                    let byte = self
                        .bytes
                        .get(self.at + 1..self.at + 3)
                        .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                        .and_then(|h| std::str::from_utf8(h).ok())
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                        .ok_or_else(|| {
                            format!("the `\\` at byte {} is no `\\XX` escape", self.at)
                        })?;
                    value.push(byte);
                    self.at += 3;
                }
                Some(byte) => {
                    value.push(byte);
                    self.at += 1;
                }
            }
        }
        self.literals
            .push(String::from_utf8_lossy(&value).into_owned());
        Ok(())
    }
}

/// A filter parameter of a [`SentRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SentFilter {
    /// The query parameter (`search`, `$filter`, `query`...).
    pub param: String,
    /// Its language.
    pub syntax: FilterSyntax,
    /// Its value, percent-decoded.
    pub text: String,
}

/// One request the system under test received, as [`Fixture::sent_requests`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SentRequest {
    /// Method.
    pub method: String,
    /// Path, percent-encoded as sent (for an LDAP search: its base DN).
    pub path: String,
    /// Its filter parameters.
    pub filters: Vec<SentFilter>,
}

impl SentRequest {
    /// A request without filters.
    pub fn new(method: impl Into<String>, path: impl Into<String>) -> Self {
        Self {
            method: method.into(),
            path: path.into(),
            filters: Vec::new(),
        }
    }

    /// The path's segments, percent-decoded.
    pub fn segments(&self) -> Vec<String> {
        self.path
            .split('/')
            .skip(1)
            .map(crate::sim::layer::decode_segment)
            .collect()
    }

    /// Adds a filter parameter with its (decoded) value.
    pub fn with_filter(
        mut self,
        param: impl Into<String>,
        syntax: FilterSyntax,
        text: impl Into<String>,
    ) -> Self {
        self.filters.push(SentFilter {
            param: param.into(),
            syntax,
            text: text.into(),
        });
        self
    }

    /// The request a simulated tenant recorded, with the query parameters named in `filters`
    /// as filters in their syntax.
    pub fn from_recorded(
        recorded: &crate::sim::layer::RecordedRequest,
        filters: &[(&str, FilterSyntax)],
    ) -> Self {
        let mut sent = Self::new(recorded.method.as_str(), recorded.path.as_str());
        for (key, value) in &recorded.query {
            if let Some((_, syntax)) = filters.iter().find(|(k, _)| k == key) {
                sent = sent.with_filter(key.as_str(), *syntax, value.as_str());
            }
        }
        sent
    }
}

/// Where a simulator-backed [`Fixture`] is in its tenant's request recording: what
/// [`Fixture::sent_requests`] has reported so far.
#[derive(Debug, Clone, Default)]
pub struct RequestCursor(Arc<std::sync::atomic::AtomicUsize>);

impl RequestCursor {
    /// The requests of `recorded` (a tenant's whole recording) not taken before, as
    /// [`SentRequest::from_recorded`] makes them; moves past them. A recording that was
    /// cleared since the last call is taken from its start.
    pub fn take(
        &self,
        recorded: &[crate::sim::layer::RecordedRequest],
        filters: &[(&str, FilterSyntax)],
    ) -> Vec<SentRequest> {
        use std::sync::atomic::Ordering;
        let seen = self.0.swap(recorded.len(), Ordering::SeqCst);
        let from = if seen > recorded.len() { 0 } else { seen };
        recorded[from..]
            .iter()
            .map(|r| SentRequest::from_recorded(r, filters))
            .collect()
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<F: Fixture + ?Sized> Fixture for Arc<F> {
    async fn create_user(&self, login: &str, aliases: &[&str]) -> AccountRef {
        (**self).create_user(login, aliases).await
    }
    async fn delete_user(&self, external_id: &str) {
        (**self).delete_user(external_id).await;
    }
    fn secret(&self) -> &str {
        (**self).secret()
    }
    fn domain(&self) -> &str {
        (**self).domain()
    }
    fn action(&self, spec: &ActionSpec) -> Action {
        (**self).action(spec)
    }
    fn sent_requests(&self) -> Option<Vec<SentRequest>> {
        (**self).sent_requests()
    }
}

/// The [`Fixture`] of a [`ReferenceConnector`]: users are added with
/// [`ReferenceUser::employee`]'s access, and `transfer_data` goes to
/// `manager@example.test`.
#[derive(Debug, Clone)]
pub struct ReferenceFixture {
    connector: Arc<ReferenceConnector>,
}

impl ReferenceFixture {
    /// A fixture creating users in `connector`.
    pub fn new(connector: Arc<ReferenceConnector>) -> Self {
        Self { connector }
    }

    /// The connector it creates users in.
    pub fn connector(&self) -> &Arc<ReferenceConnector> {
        &self.connector
    }
}

#[async_trait]
impl Fixture for ReferenceFixture {
    async fn create_user(&self, login: &str, aliases: &[&str]) -> AccountRef {
        let user = aliases
            .iter()
            .fold(ReferenceUser::employee(login), |u, a| u.alias(*a));
        self.connector.add_user(user)
    }

    async fn delete_user(&self, external_id: &str) {
        self.connector.remove_user(external_id);
    }

    fn secret(&self) -> &str {
        self.connector.secret().expose()
    }

    fn action(&self, spec: &ActionSpec) -> Action {
        if spec.name
            == self
                .connector
                .action_name(ReferenceConnector::TRANSFER_DATA)
        {
            self.connector.transfer_action("manager@example.test")
        } else {
            Action::new(spec.name.clone())
        }
    }
}

/// What [`run_conformance`] ran.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// The app of the connector.
    pub app: AppId,
    /// The rules that ran and passed, by function name, in order.
    pub rules: Vec<&'static str>,
}

/// Runs every rule that applies to the connector, as its [`Connector::capabilities`] say.
///
/// Always: the lookup rules, [`unknown_action_is_unsupported`], [`repeat_reports_already_done`],
/// [`deleted_user_counts_as_done`] and [`no_secret_in_debug`]. With an action that needs the
/// account: [`needs_account_fails_on_deleted_user`]. With a reversible action:
/// [`restore_reproduces_snapshot`]. With `verify`: [`verify_revoked_agrees_with_reality`].
///
/// # Panics
/// At the first rule violated, naming the app, the rule and the violation.
pub async fn run_conformance<C, F>(connector: &C, fixture: &F) -> Report
where
    C: Connector + ?Sized,
    F: Fixture + ?Sized,
{
    let caps = connector.capabilities().clone();
    let mut rules = Vec::new();
    lookup_zero_matches(connector, fixture).await;
    rules.push("lookup_zero_matches");
    lookup_finds_exact_match(connector, fixture).await;
    rules.push("lookup_finds_exact_match");
    lookup_two_matches_is_ambiguous(connector, fixture).await;
    rules.push("lookup_two_matches_is_ambiguous");
    lookup_hostile_input_never_widens(connector, fixture).await;
    rules.push("lookup_hostile_input_never_widens");
    unknown_action_is_unsupported(connector, fixture).await;
    rules.push("unknown_action_is_unsupported");
    repeat_reports_already_done(connector, fixture).await;
    rules.push("repeat_reports_already_done");
    deleted_user_counts_as_done(connector, fixture).await;
    rules.push("deleted_user_counts_as_done");
    if caps.actions.iter().any(|a| !a.not_found_is_done) {
        needs_account_fails_on_deleted_user(connector, fixture).await;
        rules.push("needs_account_fails_on_deleted_user");
    }
    if caps.snapshots() {
        restore_reproduces_snapshot(connector, fixture).await;
        rules.push("restore_reproduces_snapshot");
    }
    if caps.verify {
        verify_revoked_agrees_with_reality(connector, fixture).await;
        rules.push("verify_revoked_agrees_with_reality");
    }
    no_secret_in_debug(connector, fixture).await;
    rules.push("no_secret_in_debug");
    Report {
        app: caps.app,
        rules,
    }
}

/// One rule's run: names the app and rule in failures and generates unique logins.
struct Rule {
    app: AppId,
    name: &'static str,
    prefix: String,
    domain: String,
}

impl Rule {
    fn new<C, F>(name: &'static str, connector: &C, fixture: &F) -> Self
    where
        C: Connector + ?Sized,
        F: Fixture + ?Sized,
    {
        let id = uuid::Uuid::new_v4().simple().to_string();
        Self {
            app: connector.capabilities().app.clone(),
            name,
            prefix: format!("ofb{}", &id[..8]),
            domain: fixture.domain().to_owned(),
        }
    }

    fn fail(&self, message: impl fmt::Display) -> ! {
        panic!(
            "connector conformance failed: app `{}`, rule `{}`: {message}",
            self.app, self.name
        )
    }

    fn ok<T>(&self, result: Result<T>, what: impl fmt::Display) -> T {
        result.unwrap_or_else(|e| self.fail(format_args!("{what} failed: {e}")))
    }

    fn login(&self, name: &str) -> String {
        format!("{}-{name}@{}", self.prefix, self.domain)
    }

    fn person(&self, email: impl Into<String>) -> Person {
        Person::new(format!("{}-person", self.prefix), email)
            .with_name("Conformance Test")
            .with_manager(Manager {
                id: None,
                email: self.login("manager"),
            })
    }

    fn options(&self, action: &ActionName) -> ExecuteOptions {
        ExecuteOptions::default()
            .with_idempotency_key(format!("{}:{action}", self.prefix))
            .with_actor("offboard-conformance")
            .with_person(self.person(self.login("user")))
    }

    /// The actions in an order that honours their `after` constraints.
    fn in_order<'a>(&self, specs: impl IntoIterator<Item = &'a ActionSpec>) -> Vec<&'a ActionSpec> {
        let mut left: Vec<&ActionSpec> = specs.into_iter().collect();
        let mut ordered: Vec<&ActionSpec> = Vec::with_capacity(left.len());
        while !left.is_empty() {
            let Some(i) = left
                .iter()
                .position(|s| s.after.iter().all(|b| !left.iter().any(|o| &o.name == b)))
            else {
                self.fail(format_args!(
                    "the `after` constraints of {} form a cycle",
                    left.iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            };
            ordered.push(left.remove(i));
        }
        ordered
    }
}

async fn lookup_none<C: Connector + ?Sized>(
    rule: &Rule,
    connector: &C,
    request: &LookupRequest,
    what: &str,
) {
    match connector.lookup(request).await {
        Ok(None) => {}
        Ok(Some(found)) => rule.fail(format_args!(
            "lookup of {what} must find nothing, but matched {} ({})",
            found.login, found.external_id
        )),
        Err(e) => rule.fail(format_args!(
            "lookup of {what} must return Ok(None), but failed: {e}"
        )),
    }
}

async fn lookup_one<C: Connector + ?Sized>(
    rule: &Rule,
    connector: &C,
    request: &LookupRequest,
    expected: &AccountRef,
    what: &str,
) {
    match connector.lookup(request).await {
        Ok(Some(found)) if found.external_id == expected.external_id => {}
        Ok(Some(found)) => rule.fail(format_args!(
            "lookup of {what} must find {} ({}), but matched {} ({})",
            expected.login, expected.external_id, found.login, found.external_id
        )),
        Ok(None) => rule.fail(format_args!(
            "lookup of {what} must find {} ({}), but found nothing",
            expected.login, expected.external_id
        )),
        Err(e) => rule.fail(format_args!("lookup of {what} failed: {e}")),
    }
}

/// A lookup that matches no account returns `Ok(None)`: a fresh address, and near misses of an
/// existing login (shorter, longer, other domain) that an inexact match would take.
///
/// # Panics
/// When the rule is violated.
pub async fn lookup_zero_matches<C, F>(connector: &C, fixture: &F)
where
    C: Connector + ?Sized,
    F: Fixture + ?Sized,
{
    let rule = Rule::new("lookup_zero_matches", connector, fixture);
    let jane = rule.login("jane");
    let account = fixture.create_user(&jane, &[]).await;
    let p = &rule.prefix;
    let d = &rule.domain;
    let misses = [
        rule.login("nobody"),
        rule.login("jan"),
        rule.login("janet"),
        format!("x{jane}"),
        format!("{jane}.invalid"),
        format!("{p}-jane@sub.{d}"),
        format!("{p}-jane"),
    ];
    for miss in &misses {
        let request = LookupRequest::person(rule.person(miss.as_str()));
        lookup_none(&rule, connector, &request, &format!("{miss:?}")).await;
    }
    let request = LookupRequest::person(rule.person(rule.login("nobody")))
        .with_external_id(format!("{}-no-such-id", rule.prefix));
    lookup_none(&rule, connector, &request, "an unknown external id").await;
    fixture.delete_user(&account.external_id).await;
}

/// A lookup finds the one matching account: by login, by alias, and by external id, in which
/// case the person's addresses are not used.
///
/// # Panics
/// When the rule is violated.
pub async fn lookup_finds_exact_match<C, F>(connector: &C, fixture: &F)
where
    C: Connector + ?Sized,
    F: Fixture + ?Sized,
{
    let rule = Rule::new("lookup_finds_exact_match", connector, fixture);
    let alias = rule.login("ann.alias");
    let ann = fixture.create_user(&rule.login("ann"), &[&alias]).await;
    let bob = fixture.create_user(&rule.login("bob"), &[]).await;

    let by_login = LookupRequest::person(rule.person(ann.login.as_str()));
    lookup_one(&rule, connector, &by_login, &ann, "the account's login").await;

    let by_alias = LookupRequest::person(rule.person(alias.as_str()));
    lookup_one(&rule, connector, &by_alias, &ann, "the account's alias").await;

    let by_person_alias = LookupRequest::person(
        rule.person(rule.login("nobody"))
            .with_alias(bob.login.as_str()),
    );
    lookup_one(
        &rule,
        connector,
        &by_person_alias,
        &bob,
        "a person alias equal to the login",
    )
    .await;

    let by_id = LookupRequest::person(rule.person(bob.login.as_str()))
        .with_external_id(ann.external_id.as_str());
    lookup_one(
        &rule,
        connector,
        &by_id,
        &ann,
        "an external id (with another user's email, which must be ignored)",
    )
    .await;

    fixture.delete_user(&ann.external_id).await;
    fixture.delete_user(&bob.external_id).await;
}

/// A lookup whose addresses match two accounts is an `Ambiguous` error, never a guess.
///
/// # Panics
/// When the rule is violated.
pub async fn lookup_two_matches_is_ambiguous<C, F>(connector: &C, fixture: &F)
where
    C: Connector + ?Sized,
    F: Fixture + ?Sized,
{
    let rule = Rule::new("lookup_two_matches_is_ambiguous", connector, fixture);
    let one = fixture.create_user(&rule.login("one"), &[]).await;
    let two = fixture.create_user(&rule.login("two"), &[]).await;
    let person = rule
        .person(one.login.as_str())
        .with_alias(two.login.as_str());
    match connector.lookup(&LookupRequest::person(person)).await {
        Err(e) if e.kind() == ErrorKind::Ambiguous => {}
        Err(e) => rule.fail(format_args!(
            "a person matching two accounts must be an `ambiguous` error, got: {e}"
        )),
        Ok(Some(found)) => rule.fail(format_args!(
            "a person matching {} and {} must be an `ambiguous` error, but the lookup guessed {} ({})",
            one.login, two.login, found.login, found.external_id
        )),
        Ok(None) => rule.fail(format_args!(
            "a person matching {} and {} must be an `ambiguous` error, but the lookup found nothing",
            one.login, two.login
        )),
    }
    fixture.delete_user(&one.external_id).await;
    fixture.delete_user(&two.external_id).await;
}

/// The hostile lookup values tried by [`lookup_hostile_input_never_widens`], for a victim login
/// `<prefix>-kvictim@<domain>`: wildcards, LDAP, SCIM (Okta), OData (Graph), Google query,
/// JQL and SQL injections, quotes, regex and LIKE patterns, escapes (backslash, LDAP `\XX`,
/// percent), path and query-string delimiters, control characters and Unicode case folding.
pub fn hostile_values(prefix: &str, domain: &str) -> Vec<String> {
    let victim = format!("{prefix}-kvictim@{domain}");
    let p = prefix;
    let d = domain;
    vec![
        String::new(),
        "*".into(),
        "**".into(),
        format!("*@{d}"),
        format!("{p}-*"),
        format!("{p}-kvic*@{d}"),
        format!("*victim@{d}"),
        "a*)(uid=*".into(),
        "*)(|(mail=*".into(),
        ")(objectClass=*".into(),
        format!("{victim})(|(uid=*"),
        format!("{p}-kvic\\2a"),
        "\\2a".into(),
        "\"".into(),
        "'".into(),
        format!("{victim}\""),
        format!("{victim}'"),
        "' or 1 eq 1".into(),
        "\" or \"\"=\"".into(),
        "x\" or profile.login sw \"".into(),
        format!("{p}\" or userName sw \"{p}"),
        "') or ('1'='1".into(),
        "' OR '1'='1' --".into(),
        "%".into(),
        "_".into(),
        format!("{p}-kvic%"),
        format!("{p}-kvicti_@{d}"),
        ".*".into(),
        format!("{p}-kvic.*"),
        "^.*$".into(),
        "\\".into(),
        format!("{victim}\\"),
        "{\"$ne\": null}".into(),
        "\0".into(),
        format!("{victim}\0"),
        format!("\0{victim}"),
        format!("{victim}\0.invalid"),
        format!("{victim}\n"),
        format!("{victim}\r\nX-Injected: 1"),
        format!("{p}-\u{212A}victim@{d}"),
        // Quote, backslash and operator injections per filter language: SCIM (Okta), OData
        // (Graph), Google's query, LDAP.
        format!("{victim}\\\" or \\\""),
        format!("{victim}\\\\\" or profile.login sw \"{p}"),
        format!("{victim}\" or profile.email eq \"{victim}"),
        format!("x\" or (profile.login sw \"{p}\")"),
        format!("' or mail eq '{victim}"),
        format!("{p}') or startswith(userPrincipalName,'{p}"),
        format!("x' or userPrincipalName ne 'x"),
        format!("{victim}'' or ''"),
        format!("x' or otherMails/any(m:m eq '{victim}')"),
        format!("{victim}\\' email:'{victim}"),
        format!("x' OR email:'{p}*"),
        format!("{p}*)(mail={p}*"),
        format!("{victim})(|(objectClass=*)(mail=*"),
        "\\'".into(),
        "\\\"".into(),
        "''".into(),
        "()".into(),
        format!("{victim}/../../{p}-dir"),
        format!("{p}-dir/{victim}"),
        format!("{victim}?fields={p}"),
        format!("{victim}#{p}"),
        " or ".into(),
        " eq ".into(),
        // Query-string and LDAP-escape smuggling: unencoded, these change what the vendor
        // decodes; JQL's operators.
        format!("{victim}&limit=1"),
        format!("{p}+kvictim@{d}"),
        format!("{victim}%22 or profile.login sw %22{p}"),
        format!("{victim}%27 or startswith(mail,%27{p}"),
        format!("{p}-kvic%2a"),
        "\\28".into(),
        "\\29".into(),
        "\\5c".into(),
        "\\00".into(),
        format!("{victim}\\29(|(mail=*"),
        format!("{victim}\" OR reporter is not EMPTY OR text ~ \""),
    ]
}

/// A lookup with hostile input (wildcards, filter injections, quotes, NUL...) as the email, as
/// an alias or as the external id never matches an account, and never reaches the vendor raw.
///
/// # Behavior
/// Each lookup must return `Ok(None)`, or an `InvalidInput` error that the connector raised
/// itself. An error the vendor answered fails, whatever its kind: one whose context has the
/// `status` of an HTTP answer or the `ldap_rc` of an LDAP result, such as the `InvalidInput`
/// of a 400 for a filter the vendor could not parse. The connector must escape the value so
/// that the vendor accepts the query and finds nothing, or refuse it up front.
///
/// When the fixture reports the requests sent ([`Fixture::sent_requests`]), the rule also
/// judges every request of each lookup:
/// - An `InvalidInput` error is only a refusal up front when no request went out.
/// - Every filter must be well formed in its [`FilterSyntax`] (every string closes, every
///   escape is whole, LDAP parentheses balance), and each of its literals, decoded, must hold
///   one of the lookup's values (email, alias, external id) whole, ignoring case, or be one of
///   the connector's own constants. A value put into the filter raw fails: its quote ends the
///   literal early, so a literal holds only a piece of it and the rest
///   (`" or profile.login sw "`, `') or ('1'='1`, `)(uid=*`...) is read as operators; an odd
///   number of quotes leaves a literal open; its `*` reads as a wildcard ([`LDAP_WILDCARD`]),
///   its `\2a` as an escape; its `&`, `+` or `%22` unencoded in the query string change the
///   parameter the vendor decodes. A value escaped per the vendor's rules (`\"` and `\\` in
///   Okta's SCIM strings, `''` in OData, `\'` and `\\` in Google's query, `\2a` `\28` `\29`
///   `\5c` `\00` in LDAP) and percent-encoded decodes back whole.
/// - A value in a path must be one whole, percent-encoded segment: no segment may be a piece
///   of a value that its `/`, `?` or `#` cut off, or the value with its `%XX` decoded.
///
/// The constants are the literals the connector sends for plain lookups that find nothing (an
/// unknown address, an unknown name without `@`, an unknown external id) holding none of their
/// values: `(objectClass=user)` and the like. Those plain lookups run first; their results are
/// not judged here ([`lookup_zero_matches`] does), their filters must be well formed.
///
/// # Panics
/// When the rule is violated.
pub async fn lookup_hostile_input_never_widens<C, F>(connector: &C, fixture: &F)
where
    C: Connector + ?Sized,
    F: Fixture + ?Sized,
{
    let rule = Rule::new("lookup_hostile_input_never_widens", connector, fixture);
    let victim = fixture.create_user(&rule.login("kvictim"), &[]).await;
    let nobody = rule.login("nobody");
    let plain_name = format!("{}-nobody", rule.prefix);
    let plain_id = format!("{}-no-such-id", rule.prefix);
    let plain = [
        LookupRequest::person(rule.person(nobody.as_str())),
        LookupRequest::person(rule.person(nobody.as_str()).with_alias(plain_name.as_str())),
        LookupRequest::person(rule.person(nobody.as_str())).with_external_id(plain_id.as_str()),
    ];
    let mut constants = BTreeSet::new();
    // What the fixture saw before (the victim's creation) is no lookup's.
    let _ = fixture.sent_requests();
    for request in &plain {
        let _ = connector.lookup(request).await;
        let values = lookup_values(request);
        for sent in fixture.sent_requests().iter().flatten() {
            for filter in &sent.filters {
                let literals = filter_literals(&rule, "a plain lookup", sent, filter);
                constants.extend(literals.into_iter().filter(|l| !holds_any(l, &values)));
            }
        }
    }
    for value in hostile_values(&rule.prefix, &rule.domain) {
        let requests = [
            ("email", LookupRequest::person(rule.person(value.as_str()))),
            (
                "alias",
                LookupRequest::person(rule.person(nobody.as_str()).with_alias(value.as_str())),
            ),
            (
                "external id",
                LookupRequest::person(rule.person(nobody.as_str()))
                    .with_external_id(value.as_str()),
            ),
        ];
        for (field, request) in requests {
            let what = format!("hostile {field} {value:?}");
            let _ = fixture.sent_requests();
            let result = connector.lookup(&request).await;
            let sent = fixture.sent_requests();
            match result {
                Ok(None) => {}
                Err(e) if e.context().any(|(k, _)| k == "status" || k == "ldap_rc") => {
                    rule.fail(format_args!(
                        "{what}: the vendor refused the lookup's request: {e}; escape the value \
                         so the query is valid and finds nothing, or refuse it before sending"
                    ))
                }
                Err(e) if e.kind() == ErrorKind::InvalidInput => {
                    if let Some(first) = sent.as_ref().and_then(|s| s.first()) {
                        rule.fail(format_args!(
                            "{what} was refused ({e}) only after {} request(s) were sent \
                             (first: {} {}); refuse bad input before sending anything",
                            sent.as_ref().map_or(0, Vec::len),
                            first.method,
                            first.path
                        ));
                    }
                }
                Ok(Some(found)) => rule.fail(format_args!(
                    "{what} widened the lookup: it matched {} ({}); the victim account is {}",
                    found.login, found.external_id, victim.login
                )),
                Err(e) => rule.fail(format_args!(
                    "{what} must give Ok(None) or an `invalid_input` error, got: {e}"
                )),
            }
            let values = lookup_values(&request);
            for sent in sent.iter().flatten() {
                check_path(&rule, &what, sent, &values);
                for filter in &sent.filters {
                    let literals = filter_literals(&rule, &what, sent, filter);
                    if let Some(bad) = literals
                        .iter()
                        .find(|l| !holds_any(l, &values) && !constants.contains(*l))
                    {
                        rule.fail(format_args!(
                            "{what}: `{}` of {} {} is {:?}: its string {bad:?} holds none of the \
                             lookup's values whole, so the value was put in raw and its quote, \
                             wildcard or escape changed the filter; escape it per {:?} rules",
                            filter.param, sent.method, sent.path, filter.text, filter.syntax
                        ));
                    }
                }
            }
        }
    }
    fixture.delete_user(&victim.external_id).await;
}

/// The non-empty values a lookup sends: email, aliases, external id.
fn lookup_values(request: &LookupRequest) -> Vec<&str> {
    std::iter::once(request.person.email.as_str())
        .chain(request.person.aliases.iter().map(String::as_str))
        .chain(request.external_id.as_deref())
        .filter(|v| !v.is_empty())
        .collect()
}

/// Whether `literal` holds one of `values` whole, ignoring case.
fn holds_any(literal: &str, values: &[&str]) -> bool {
    let literal = literal.to_lowercase();
    values.iter().any(|v| literal.contains(&v.to_lowercase()))
}

/// The literals of a filter; fails when it is not well formed in its syntax.
fn filter_literals(
    rule: &Rule,
    what: &str,
    request: &SentRequest,
    filter: &SentFilter,
) -> Vec<String> {
    filter
        .syntax
        .literals(&filter.text)
        .unwrap_or_else(|fault| {
            rule.fail(format_args!(
                "{what}: `{}` of {} {} is {:?}, which is not a well-formed {:?} filter ({fault}): \
                 a value was put in raw",
                filter.param, request.method, request.path, filter.text, filter.syntax
            ))
        })
}

/// Fails when a path segment is a piece of a lookup value that `/`, `?` or `#` cut off, or the
/// value with its `%XX` decoded: the value went into the path unencoded (a value in a path must
/// be one whole segment). A segment holding a value whole is fine.
fn check_path(rule: &Rule, what: &str, request: &SentRequest, values: &[&str]) {
    let cut = ['/', '?', '#'];
    for value in values {
        let decoded = crate::sim::layer::decode_segment(value);
        let pieces: Vec<&str> = value
            .split(cut)
            .chain(decoded.split(cut))
            .filter(|p| p.chars().count() > 2 && *p != ".." && p != value)
            .collect();
        let segments = request.segments();
        let Some(segment) = segments
            .iter()
            .find(|s| pieces.contains(&s.as_str()) && !holds_any(s, values))
        else {
            continue;
        };
        rule.fail(format_args!(
            "{what}: {} {} has the segment {segment:?}, which is not {value:?} but a piece or \
             decoding of it: the value went into the path unencoded; percent-encode it as one \
             segment",
            request.method, request.path
        ));
    }
}

/// Executing an action the connector does not offer is an `Unsupported` error.
///
/// # Panics
/// When the rule is violated.
pub async fn unknown_action_is_unsupported<C, F>(connector: &C, fixture: &F)
where
    C: Connector + ?Sized,
    F: Fixture + ?Sized,
{
    let rule = Rule::new("unknown_action_is_unsupported", connector, fixture);
    let account = fixture.create_user(&rule.login("user"), &[]).await;
    let name = ActionName::parse(&format!("{}.offboard_conformance_unknown", rule.app))
        .unwrap_or_else(|_| ActionName::from_static("offboard_conformance.unknown"));
    let action = Action::new(name.clone());
    for dry_run in [true, false] {
        let options = rule.options(&name).with_dry_run(dry_run);
        match connector.execute(&account, &action, &options).await {
            Err(e) if e.kind() == ErrorKind::Unsupported => {}
            Err(e) => rule.fail(format_args!(
                "executing {name} (dry run: {dry_run}), which is not offered, must be an \
                 `unsupported` error, got: {e}"
            )),
            Ok(reply) => rule.fail(format_args!(
                "executing {name} (dry run: {dry_run}), which is not offered, must be an \
                 `unsupported` error, but it reported {}",
                reply.outcome
            )),
        }
    }
    fixture.delete_user(&account.external_id).await;
}

/// Every non-critical action, run twice on one account (in `after` order), reports
/// `AlreadyDone` the second time. Around it, dry runs change nothing: a dry run before the first
/// run predicts that run's outcome, and one after the second run predicts `AlreadyDone`.
///
/// # Panics
/// When the rule is violated.
pub async fn repeat_reports_already_done<C, F>(connector: &C, fixture: &F)
where
    C: Connector + ?Sized,
    F: Fixture + ?Sized,
{
    let rule = Rule::new("repeat_reports_already_done", connector, fixture);
    let caps = connector.capabilities();
    let account = fixture.create_user(&rule.login("user"), &[]).await;
    for spec in rule.in_order(caps.actions.iter().filter(|s| !s.critical)) {
        let action = fixture.action(spec);
        let name = &spec.name;
        let options = rule.options(name);
        let dry = options.clone().with_dry_run(true);

        let predicted = rule
            .ok(
                connector.execute(&account, &action, &dry).await,
                format_args!("dry run of {name}"),
            )
            .outcome;
        if !matches!(predicted, Outcome::Done | Outcome::AlreadyDone) {
            rule.fail(format_args!(
                "a dry run of {name} on an existing account must predict done or already_done, \
                 got {predicted}"
            ));
        }
        let first = rule
            .ok(
                connector.execute(&account, &action, &options).await,
                format_args!("first run of {name}"),
            )
            .outcome;
        if first != predicted {
            rule.fail(format_args!(
                "the dry run of {name} predicted {predicted} but the first run reported {first}: \
                 the dry run changed something, or predicted wrongly"
            ));
        }
        let second = rule
            .ok(
                connector.execute(&account, &action, &options).await,
                format_args!("second run of {name}"),
            )
            .outcome;
        if second != Outcome::AlreadyDone {
            rule.fail(format_args!(
                "running {name} a second time must report already_done, got {second}"
            ));
        }
        let after = rule
            .ok(
                connector.execute(&account, &action, &dry).await,
                format_args!("dry run of {name} after it ran"),
            )
            .outcome;
        if after != Outcome::AlreadyDone {
            rule.fail(format_args!(
                "a dry run of {name} after it ran must predict already_done, got {after}"
            ));
        }
    }
    fixture.delete_user(&account.external_id).await;
}

/// Every action whose spec says not-found is done (removals), run on an account that was
/// deleted, reports `NotFound` or `AlreadyDone` (and so does its dry run). Actions with
/// `not_found_is_done == false` are skipped here; see [`needs_account_fails_on_deleted_user`].
///
/// # Panics
/// When the rule is violated.
pub async fn deleted_user_counts_as_done<C, F>(connector: &C, fixture: &F)
where
    C: Connector + ?Sized,
    F: Fixture + ?Sized,
{
    let rule = Rule::new("deleted_user_counts_as_done", connector, fixture);
    let caps = connector.capabilities();
    let account = fixture.create_user(&rule.login("gone"), &[]).await;
    fixture.delete_user(&account.external_id).await;
    for spec in caps.actions.iter().filter(|s| s.not_found_is_done) {
        let action = fixture.action(spec);
        let name = &spec.name;
        for dry_run in [true, false] {
            let options = rule.options(name).with_dry_run(dry_run);
            match connector.execute(&account, &action, &options).await {
                Ok(reply) if matches!(reply.outcome, Outcome::NotFound | Outcome::AlreadyDone) => {}
                Ok(reply) => rule.fail(format_args!(
                    "{name} (dry run: {dry_run}) on a deleted account must report not_found or \
                     already_done, got {}",
                    reply.outcome
                )),
                Err(e) => rule.fail(format_args!(
                    "{name} (dry run: {dry_run}) on a deleted account must count as done \
                     (not_found or already_done), but failed: {e}"
                )),
            }
        }
    }
}

/// Every action that needs the account (`not_found_is_done == false`, e.g. a data transfer),
/// run on an account that was deleted, fails with a `NotFound` error.
///
/// # Panics
/// When the rule is violated.
pub async fn needs_account_fails_on_deleted_user<C, F>(connector: &C, fixture: &F)
where
    C: Connector + ?Sized,
    F: Fixture + ?Sized,
{
    let rule = Rule::new("needs_account_fails_on_deleted_user", connector, fixture);
    let caps = connector.capabilities();
    let account = fixture.create_user(&rule.login("gone"), &[]).await;
    fixture.delete_user(&account.external_id).await;
    for spec in caps.actions.iter().filter(|s| !s.not_found_is_done) {
        let action = fixture.action(spec);
        let name = &spec.name;
        match connector
            .execute(&account, &action, &rule.options(name))
            .await
        {
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => rule.fail(format_args!(
                "{name} needs the account; on a deleted account it must fail with a `not_found` \
                 error, got: {e}"
            )),
            Ok(reply) => rule.fail(format_args!(
                "{name} needs the account; on a deleted account it must fail with a `not_found` \
                 error, but it reported {}",
                reply.outcome
            )),
        }
    }
}

/// For every reversible action: a snapshot (which reads only), the action, a restore, a second
/// restore reporting `AlreadyDone`, and a new snapshot whose data equals the first one's.
///
/// # Panics
/// When the rule is violated.
pub async fn restore_reproduces_snapshot<C, F>(connector: &C, fixture: &F)
where
    C: Connector + ?Sized,
    F: Fixture + ?Sized,
{
    let rule = Rule::new("restore_reproduces_snapshot", connector, fixture);
    let caps = connector.capabilities();
    let account = fixture.create_user(&rule.login("user"), &[]).await;
    for spec in rule.in_order(caps.actions.iter().filter(|s| s.reversible)) {
        let action = fixture.action(spec);
        let name = &spec.name;
        let before = rule.ok(
            connector.snapshot(&account, &action).await,
            format_args!("snapshot before {name}"),
        );
        if before.app != caps.app
            || &before.action != name
            || before.external_id != account.external_id
        {
            rule.fail(format_args!(
                "the snapshot for {name} on {} names app {}, action {}, account {}",
                account.external_id, before.app, before.action, before.external_id
            ));
        }
        let again = rule.ok(
            connector.snapshot(&account, &action).await,
            format_args!("second snapshot before {name}"),
        );
        if again.data != before.data {
            rule.fail(format_args!(
                "two snapshots for {name} with nothing in between differ: {} then {}",
                before.data, again.data
            ));
        }
        let ran = rule
            .ok(
                connector
                    .execute(&account, &action, &rule.options(name))
                    .await,
                format_args!("{name}"),
            )
            .outcome;
        if !matches!(ran, Outcome::Done | Outcome::AlreadyDone) {
            rule.fail(format_args!("{name} on an existing account reported {ran}"));
        }
        let restored = rule.ok(
            connector.restore(&account, &before).await,
            format_args!("restore of {name}"),
        );
        match (ran, restored) {
            (_, Outcome::NotFound) => rule.fail(format_args!(
                "restore of {name} on an existing account reported not_found"
            )),
            (Outcome::Done, Outcome::AlreadyDone) => rule.fail(format_args!(
                "{name} changed the account, but restoring its snapshot reported already_done"
            )),
            _ => {}
        }
        let twice = rule.ok(
            connector.restore(&account, &before).await,
            format_args!("second restore of {name}"),
        );
        if twice != Outcome::AlreadyDone {
            rule.fail(format_args!(
                "restoring {name} a second time must report already_done, got {twice}"
            ));
        }
        let after = rule.ok(
            connector.snapshot(&account, &action).await,
            format_args!("snapshot after restoring {name}"),
        );
        if after.data != before.data {
            rule.fail(format_args!(
                "restore of {name} does not reproduce the snapshot: before {}, after restore {}",
                before.data, after.data
            ));
        }
    }
    fixture.delete_user(&account.external_id).await;
}

/// `verify_revoked` agrees with reality: a fresh active account has access (not revoked, with
/// remaining access listed); after every non-critical removal action (and, if access remains,
/// the critical ones) it is revoked; a deleted account is revoked.
///
/// # Panics
/// When the rule is violated.
pub async fn verify_revoked_agrees_with_reality<C, F>(connector: &C, fixture: &F)
where
    C: Connector + ?Sized,
    F: Fixture + ?Sized,
{
    let rule = Rule::new("verify_revoked_agrees_with_reality", connector, fixture);
    let caps = connector.capabilities();
    let account = fixture.create_user(&rule.login("user"), &[]).await;

    let fresh = rule.ok(
        connector.verify_revoked(&account).await,
        "verify_revoked of a fresh account",
    );
    if fresh.revoked || fresh.remaining.is_empty() {
        rule.fail(format_args!(
            "a fresh active account must not be revoked and must list its access, got revoked: \
             {}, remaining: {:?}",
            fresh.revoked, fresh.remaining
        ));
    }

    let removals = |critical: bool| {
        rule.in_order(
            caps.actions
                .iter()
                .filter(move |s| s.not_found_is_done && s.critical == critical),
        )
    };
    for spec in removals(false) {
        let action = fixture.action(spec);
        rule.ok(
            connector
                .execute(&account, &action, &rule.options(&spec.name))
                .await,
            format_args!("{}", spec.name),
        );
    }
    let mut after = rule.ok(
        connector.verify_revoked(&account).await,
        "verify_revoked after the removal actions",
    );
    if !after.revoked {
        for spec in removals(true) {
            let action = fixture.action(spec);
            rule.ok(
                connector
                    .execute(&account, &action, &rule.options(&spec.name))
                    .await,
                format_args!("{}", spec.name),
            );
        }
        after = rule.ok(
            connector.verify_revoked(&account).await,
            "verify_revoked after every removal action",
        );
    }
    if !after.revoked || !after.remaining.is_empty() {
        rule.fail(format_args!(
            "after every removal action the account must be revoked with nothing remaining, got \
             revoked: {}, remaining: {:?}",
            after.revoked, after.remaining
        ));
    }

    fixture.delete_user(&account.external_id).await;
    let gone = rule.ok(
        connector.verify_revoked(&account).await,
        "verify_revoked of a deleted account",
    );
    if !gone.revoked {
        rule.fail(format_args!(
            "a deleted account must be revoked, got remaining: {:?}",
            gone.remaining
        ));
    }
}

/// The fixture's secret appears neither in the connector's `Debug` output (plain and
/// alternate) nor in the errors of a rejected lookup and an unsupported action.
///
/// # Panics
/// When the rule is violated, or the fixture's secret is empty (the check would mean nothing).
/// The panic message never contains the secret.
pub async fn no_secret_in_debug<C, F>(connector: &C, fixture: &F)
where
    C: Connector + ?Sized,
    F: Fixture + ?Sized,
{
    let rule = Rule::new("no_secret_in_debug", connector, fixture);
    let secret = fixture.secret();
    if secret.is_empty() {
        rule.fail("the fixture's secret is empty; configure the connector with a real-looking one");
    }
    let check = |what: &str, text: String| {
        if let Some(at) = text.find(secret) {
            rule.fail(format_args!(
                "{what} shows the secret (at byte {at} of {} bytes)",
                text.len()
            ));
        }
    };
    check("Debug output of the connector", format!("{connector:?}"));
    check(
        "alternate Debug output of the connector",
        format!("{connector:#?}"),
    );

    let request = LookupRequest::person(rule.person(format!("{}\0", rule.login("x"))));
    if let Err(e) = connector.lookup(&request).await {
        check("a lookup error's Display", e.to_string());
        check("a lookup error's Debug", format!("{e:?}"));
    }
    let account = fixture.create_user(&rule.login("user"), &[]).await;
    let name = ActionName::parse(&format!("{}.offboard_conformance_unknown", rule.app))
        .unwrap_or_else(|_| ActionName::from_static("offboard_conformance.unknown"));
    if let Err(e) = connector
        .execute(&account, &Action::new(name.clone()), &rule.options(&name))
        .await
    {
        check("an execute error's Display", e.to_string());
        check("an execute error's Debug", format!("{e:?}"));
    }
    fixture.delete_user(&account.external_id).await;
}
