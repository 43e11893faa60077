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
//!
//! Each rule creates its own users, with logins `<random prefix>-<name>@<domain>` so that runs
//! against a shared tenant never collide, and deletes them at the end when it passes.
//!
//! # Example
//! ```
//! use std::sync::Arc;
//! use offboard_testkit::conformance::{ReferenceFixture, run_conformance};
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

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use offboard_core::{
    AccountRef, Action, ActionName, ActionSpec, AppId, Connector, ErrorKind, ExecuteOptions,
    LookupRequest, Manager, Outcome, Person, Result,
};

use crate::reference::{ReferenceConnector, ReferenceUser};

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
/// `<prefix>-kvictim@<domain>`: wildcards, LDAP filter, SCIM/OData filter and SQL injections,
/// quotes, regex and LIKE patterns, escapes, control characters and Unicode case folding.
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
    ]
}

/// A lookup with hostile input (wildcards, filter injections, quotes, NUL...) as the email, as
/// an alias or as the external id never matches an account: it returns `Ok(None)` or an
/// `InvalidInput` error.
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
    for value in hostile_values(&rule.prefix, &rule.domain) {
        let requests = [
            ("email", LookupRequest::person(rule.person(value.as_str()))),
            (
                "alias",
                LookupRequest::person(rule.person(rule.login("nobody")).with_alias(value.as_str())),
            ),
            (
                "external id",
                LookupRequest::person(rule.person(rule.login("nobody")))
                    .with_external_id(value.as_str()),
            ),
        ];
        for (field, request) in requests {
            match connector.lookup(&request).await {
                Ok(None) => {}
                Err(e) if e.kind() == ErrorKind::InvalidInput => {}
                Ok(Some(found)) => rule.fail(format_args!(
                    "hostile {field} {value:?} widened the lookup: it matched {} ({}); the victim \
                     account is {}",
                    found.login, found.external_id, victim.login
                )),
                Err(e) => rule.fail(format_args!(
                    "hostile {field} {value:?} must give Ok(None) or an `invalid_input` error, \
                     got: {e}"
                )),
            }
        }
    }
    fixture.delete_user(&victim.external_id).await;
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
