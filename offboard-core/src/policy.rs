//! Offboarding policy: per-app method, protected accounts, critical actions, stages in time and
//! ordering constraints. Written in TOML; see `examples/policy.toml` for a documented example.
//!
//! ```toml
//! protected = ["ceo@example.com"]          # people never offboarded
//! critical = ["okta.deactivate"]           # critical on top of what connectors flag
//! unknown_apps = "delegate_email"          # discovered apps without an entry: ignore | delegate_jira | delegate_email
//!
//! [stages]                                 # offsets from the run's effective time
//! last_day = "0d"
//! cleanup = "30d"
//!
//! [apps.okta]
//! method = "automatic"
//! actions = ["okta.suspend", { name = "okta.delete", stage = "cleanup" }]
//! protected_accounts = ["break-glass@example.com"]
//!
//! [apps.salesforce]
//! method = "delegate"
//! via = "jira"
//!
//! [[order]]                                # extra ordering: `before` completes first
//! before = "google.transfer_drive"
//! after = "okta.delete"
//!
//! [approvals]                              # who may confirm critical actions (optional)
//! roles = ["security"]                     # confirmer's role must be one of these (empty: any)
//! four_eyes = true                         # the confirmer must not be the run's initiator
//! [departures]                             # mass-departure circuit breaker, per source poll
//! max_people = 25                          # more people turning past in one batch: held
//! max_percent = 5                          # more than this share of the source's people: held
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use toml::Spanned;

use crate::action::{Action, ActionName};
use crate::error::{Error, ErrorKind};
use crate::model::{AccountRef, AppId, Person};
use crate::run::DelegateVia;

/// The first stage's name when a policy defines none.
pub const DEFAULT_STAGE: &str = "effective";

/// The largest stage offset a policy may name: ten years.
pub const MAX_STAGE_OFFSET_DAYS: i64 = 3650;

/// The mass-departure circuit breaker: how many people one batch of a source of truth may turn
/// past (current → past) before the batch is held for a human (see
/// [`Engine::release_hold`](crate::engine::Engine::release_hold)).
///
/// A batch is held when it turns past more than `max_people`, or more than `max_percent` % of
/// the people the source knew as current (rounded up, so one person may always leave).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DepartureLimits {
    /// At most this many people per batch.
    pub max_people: usize,
    /// At most this share (percent) of the people the source knew; 100 or more: no share limit.
    pub max_percent: u32,
}

impl Default for DepartureLimits {
    /// 25 people and 5 %.
    fn default() -> Self {
        Self {
            max_people: 25,
            max_percent: 5,
        }
    }
}

impl DepartureLimits {
    /// No limit: every batch goes through (for hosts that gate departures themselves, and
    /// benchmarks).
    pub fn unlimited() -> Self {
        Self {
            max_people: usize::MAX,
            max_percent: 100,
        }
    }

    /// The most people a batch may turn past when the source knew `known` people as current
    /// (`None`: the count is not known, only `max_people` applies).
    pub fn limit(&self, known: Option<usize>) -> usize {
        match known {
            Some(known) if self.max_percent < 100 => {
                let share = (known as u128 * u128::from(self.max_percent)).div_ceil(100);
                self.max_people
                    .min(usize::try_from(share.max(1)).unwrap_or(usize::MAX))
            }
            _ => self.max_people,
        }
    }
}

/// A stage in time: actions in it run at the run's effective time plus `offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// Name (`last_day`, `cleanup`).
    pub name: String,
    /// Offset from the effective time.
    pub offset: chrono::Duration,
}

/// An action the policy runs, in a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedAction {
    /// The action with its parameters.
    pub action: Action,
    /// The stage's name.
    pub stage: String,
    /// Line in the policy file (0 when built in code), for error messages.
    pub line: usize,
}

/// How one app is offboarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// Run these actions through the app's connector, in order of their constraints.
    Automatic {
        /// The actions.
        actions: Vec<PlannedAction>,
    },
    /// Ask a human.
    Delegate {
        /// Jira or email.
        via: DelegateVia,
    },
    /// Take the app off the person's list; nothing is run.
    Ignore,
}

/// One app's policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPolicy {
    /// The method.
    pub method: Method,
    /// Logins in this app that are never touched (service accounts, break-glass).
    pub protected_accounts: Vec<String>,
    /// Line in the policy file (0 when built in code).
    pub line: usize,
}

/// An ordering constraint: tasks running `before` complete before tasks running `after` start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRule {
    /// First.
    pub before: ActionName,
    /// Then.
    pub after: ActionName,
    /// Line in the policy file.
    pub line: usize,
}

/// Who may confirm critical actions ([`crate::Confirmation`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Approvals {
    /// Roles allowed to confirm; a confirmation must name one of them. Empty: any confirmer,
    /// with or without a role.
    pub roles: Vec<String>,
    /// Four eyes: the confirmer must be someone else than the run's initiator.
    pub four_eyes: bool,
}

impl Approvals {
    /// Whether `by` (in `role`) may confirm the critical actions of a run started by
    /// `initiator` (its [`crate::Initiator::actor`]); `Err` says why not.
    ///
    /// # Errors
    /// The reason for refusing, for the caller's error and audit event.
    pub fn check(&self, initiator: &str, by: &str, role: Option<&str>) -> Result<(), String> {
        let by = by.trim();
        if by.is_empty() {
            return Err("a confirmation must name who confirms".into());
        }
        if !self.roles.is_empty() && !role.is_some_and(|r| self.roles.iter().any(|x| x == r)) {
            return Err(format!(
                "{by} confirms as {}, but the policy lets only {} confirm critical actions",
                role.map_or_else(|| "no role".to_owned(), |r| format!("role {r:?}")),
                self.roles.join(", ")
            ));
        }
        if self.four_eyes && by.eq_ignore_ascii_case(initiator.trim()) {
            return Err(format!(
                "four eyes: {by} started this run and cannot also confirm its critical actions"
            ));
        }
        Ok(())
    }
}

/// The whole policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// People (email, alias or person id) who are never offboarded.
    pub protected: Vec<String>,
    /// Actions treated as critical in addition to those connectors flag.
    pub critical: Vec<ActionName>,
    /// Stages, in time order.
    pub stages: Vec<Stage>,
    /// Per-app policies.
    pub apps: BTreeMap<AppId, AppPolicy>,
    /// Method for discovered apps that have no entry.
    pub unknown_apps: Method,
    /// Extra ordering constraints.
    pub order: Vec<OrderRule>,
    /// Who may confirm critical actions.
    pub approvals: Approvals,
    /// The `[departures]` table: mass-departure limits that override the engine's
    /// [`LifecycleRules`](crate::engine::LifecycleRules) when present.
    pub departures: Option<DepartureLimits>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            protected: Vec::new(),
            critical: Vec::new(),
            stages: vec![Stage {
                name: DEFAULT_STAGE.into(),
                offset: chrono::Duration::zero(),
            }],
            apps: BTreeMap::new(),
            unknown_apps: Method::Ignore,
            order: Vec::new(),
            approvals: Approvals::default(),
            departures: None,
        }
    }
}

/// A policy file error, naming the line and the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// Dotted path of the field (`apps.okta.actions[1].stage`).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "policy line {}, field `{}`: {}",
            self.line, self.field, self.message
        )
    }
}

impl std::error::Error for PolicyError {}

impl From<PolicyError> for Error {
    fn from(e: PolicyError) -> Self {
        Error::new(ErrorKind::Config, e.to_string())
            .with_context("line", e.line)
            .with_context("field", e.field)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    protected: Vec<Spanned<String>>,
    #[serde(default)]
    critical: Vec<Spanned<String>>,
    #[serde(default)]
    unknown_apps: Option<Spanned<String>>,
    #[serde(default)]
    stages: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    apps: BTreeMap<String, Spanned<RawApp>>,
    #[serde(default)]
    order: Vec<Spanned<RawOrder>>,
    #[serde(default)]
    approvals: Option<RawApprovals>,
    departures: Option<RawDepartures>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApprovals {
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    four_eyes: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDepartures {
    max_people: Option<Spanned<i64>>,
    max_percent: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    method: Spanned<String>,
    #[serde(default)]
    actions: Option<Vec<Spanned<toml::Value>>>,
    #[serde(default)]
    via: Option<Spanned<String>>,
    #[serde(default)]
    protected_accounts: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOrder {
    before: Spanned<String>,
    after: Spanned<String>,
}

struct Lines<'a>(&'a str);

impl Lines<'_> {
    fn at(&self, offset: usize) -> usize {
        self.0.as_bytes()[..offset.min(self.0.len())]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    /// The dotted path of the key at `offset`: the table header above it, then the key on
    /// its line (or the header itself when `offset` is in a header line).
    fn field_at(&self, offset: usize) -> String {
        let before = &self.0[..offset.min(self.0.len())];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line_end = self.0[line_start..]
            .find('\n')
            .map_or(self.0.len(), |i| line_start + i);
        let line = self.0[line_start..line_end].trim();
        let header = |l: &str| {
            let l = l.trim();
            l.starts_with('[').then(|| {
                l.trim_start_matches('[')
                    .split(']')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .replace(['"', '\'', ' '], "")
            })
        };
        if let Some(h) = header(line) {
            return h;
        }
        // The key on this line, or (inside a value spanning lines) the nearest one above it.
        let above = self.0[..line_start]
            .lines()
            .rev()
            .take_while(|l| header(l).is_none());
        let key = std::iter::once(line)
            .chain(above)
            .find_map(|l| l.split_once('='))
            .map(|(k, _)| k.trim().replace(['"', '\'', ' '], ""))
            .unwrap_or_default();
        let table = self.0[..line_start].lines().rev().find_map(header);
        match table {
            Some(t) if !t.is_empty() && !key.is_empty() => format!("{t}.{key}"),
            Some(t) if key.is_empty() => t,
            _ => key,
        }
    }

    fn err<T>(
        &self,
        span: std::ops::Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Result<T, PolicyError> {
        Err(PolicyError {
            line: self.at(span.start),
            field: field.into(),
            message: message.into(),
        })
    }
}

/// Parses `"30d"`, `"+12h"`, `"90m"`, `"0d"`, `"45s"`, up to [`MAX_STAGE_OFFSET_DAYS`].
fn parse_offset(s: &str) -> Option<chrono::Duration> {
    let s = s.trim().trim_start_matches('+');
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: i64 = num.parse().ok()?;
    let d = match unit {
        "d" => chrono::Duration::try_days(n),
        "h" => chrono::Duration::try_hours(n),
        "m" => chrono::Duration::try_minutes(n),
        "s" => chrono::Duration::try_seconds(n),
        _ => None,
    }?;
    (d <= chrono::Duration::days(MAX_STAGE_OFFSET_DAYS)).then_some(d)
}

fn parse_method(s: &str) -> Option<Method> {
    match s {
        "ignore" => Some(Method::Ignore),
        "delegate_jira" => Some(Method::Delegate {
            via: DelegateVia::Jira,
        }),
        "delegate_email" => Some(Method::Delegate {
            via: DelegateVia::Email,
        }),
        _ => None,
    }
}

/// The `PolicyError` of a TOML syntax or shape error, naming its line and field.
fn syntax_error(lines: &Lines<'_>, e: &toml::de::Error) -> PolicyError {
    let line = e.span().map(|s| lines.at(s.start)).unwrap_or(0);
    let message = e.message().to_owned();
    let field = message
        .split('`')
        .nth(1)
        .filter(|_| message.contains("field"))
        .map(str::to_owned)
        .or_else(|| e.span().map(|s| lines.field_at(s.start)))
        .unwrap_or_default();
    PolicyError {
        line,
        field,
        message,
    }
}

/// The policy's stages, earliest first (one stage, [`DEFAULT_STAGE`] at offset 0, when the
/// policy names none).
fn parse_stages(
    lines: &Lines<'_>,
    raw: &BTreeMap<String, Spanned<String>>,
) -> Result<Vec<Stage>, PolicyError> {
    let mut stages = Vec::new();
    for (name, offset) in raw {
        let Some(d) = parse_offset(offset.get_ref()) else {
            return lines.err(
                offset.span(),
                format!("stages.{name}"),
                format!(
                    "{:?} is not an offset like \"0d\", \"30d\", \"12h\" of at most \"{MAX_STAGE_OFFSET_DAYS}d\"",
                    offset.get_ref()
                ),
            );
        };
        stages.push(Stage {
            name: name.clone(),
            offset: d,
        });
    }
    if stages.is_empty() {
        stages.push(Stage {
            name: DEFAULT_STAGE.into(),
            offset: chrono::Duration::zero(),
        });
    }
    stages.sort_by_key(|s| s.offset);
    Ok(stages)
}

/// The method of app `app` (errors name `apps.<app>.…`): its actions, checked to be the
/// app's, or its delegate.
fn parse_method_of(
    lines: &Lines<'_>,
    policy: &Policy,
    first_stage: &str,
    app: &str,
    raw_app: &RawApp,
) -> Result<Method, PolicyError> {
    let field = format!("apps.{app}");
    let method = match raw_app.method.get_ref().as_str() {
        "automatic" => {
            let Some(entries) = &raw_app.actions else {
                return lines.err(
                    raw_app.method.span(),
                    format!("{field}.actions"),
                    "method \"automatic\" needs a list of actions",
                );
            };
            let mut actions = Vec::new();
            for (i, entry) in entries.iter().enumerate() {
                actions.push(parse_action(
                    lines,
                    policy,
                    first_stage,
                    &format!("{field}.actions[{i}]"),
                    entry,
                )?);
            }
            if let Some(via) = &raw_app.via {
                return lines.err(
                    via.span(),
                    format!("{field}.via"),
                    "`via` belongs to method \"delegate\"",
                );
            }
            Method::Automatic { actions }
        }
        "delegate" => {
            let Some(via) = &raw_app.via else {
                return lines.err(
                    raw_app.method.span(),
                    format!("{field}.via"),
                    "method \"delegate\" needs `via = \"jira\"` or `via = \"email\"`",
                );
            };
            let Some(v) = parse_via(via.get_ref()) else {
                return lines.err(
                    via.span(),
                    format!("{field}.via"),
                    format!("{:?} is not jira or email", via.get_ref()),
                );
            };
            Method::Delegate { via: v }
        }
        "ignore" => Method::Ignore,
        other => {
            return lines.err(
                raw_app.method.span(),
                format!("{field}.method"),
                format!("{other:?} is not one of automatic, delegate, ignore"),
            );
        }
    };
    if let Method::Automatic { actions } = &method {
        for a in actions {
            if a.action.name.app().as_str() != app {
                return Err(PolicyError {
                    line: a.line,
                    field: format!("{field}.actions"),
                    message: format!(
                        "action {} belongs to app {}, not {app}",
                        a.action.name,
                        a.action.name.app()
                    ),
                });
            }
        }
    }
    Ok(method)
}

/// The limits of `[departures]`.
fn parse_departures(lines: &Lines<'_>, d: &RawDepartures) -> Result<DepartureLimits, PolicyError> {
    let mut limits = DepartureLimits::default();
    if let Some(n) = &d.max_people {
        limits.max_people = usize::try_from(*n.get_ref()).or_else(|_| {
            lines.err(
                n.span(),
                "departures.max_people",
                "must be a count of people, 0 or more",
            )
        })?;
    }
    if let Some(p) = &d.max_percent {
        limits.max_percent = u32::try_from(*p.get_ref())
            .ok()
            .filter(|p| *p <= 100)
            .map_or_else(
                || {
                    lines.err(
                        p.span(),
                        "departures.max_percent",
                        "must be a percentage from 0 to 100",
                    )
                },
                Ok,
            )?;
    }

    Ok(limits)
}

fn parse_via(s: &str) -> Option<DelegateVia> {
    match s {
        "jira" => Some(DelegateVia::Jira),
        "email" => Some(DelegateVia::Email),
        _ => None,
    }
}

impl Policy {
    /// Parses a TOML policy.
    ///
    /// # Errors
    /// A [`PolicyError`] naming the line and field of the first problem: syntax, unknown field,
    /// unknown method, malformed action name, undefined stage, bad offset.
    pub fn from_toml(src: &str) -> Result<Self, PolicyError> {
        let lines = Lines(src);
        let raw: RawPolicy = toml::from_str(src).map_err(|e| syntax_error(&lines, &e))?;

        let mut policy = Policy {
            stages: Vec::new(),
            ..Policy::default()
        };
        policy.stages = parse_stages(&lines, &raw.stages)?;
        let first_stage = policy.stages[0].name.clone();

        policy.protected = raw
            .protected
            .into_iter()
            .map(|p| p.into_inner().to_ascii_lowercase())
            .collect();
        for (i, c) in raw.critical.iter().enumerate() {
            match ActionName::parse(c.get_ref()) {
                Ok(n) => policy.critical.push(n),
                Err(e) => {
                    return lines.err(c.span(), format!("critical[{i}]"), e.message().to_owned());
                }
            }
        }
        if let Some(u) = &raw.unknown_apps {
            policy.unknown_apps = parse_method(u.get_ref()).map_or_else(
                || {
                    lines.err(
                        u.span(),
                        "unknown_apps",
                        format!(
                            "{:?} is not one of ignore, delegate_jira, delegate_email",
                            u.get_ref()
                        ),
                    )
                },
                Ok,
            )?;
        }

        for (app, spanned) in raw.apps {
            let line = lines.at(spanned.span().start);
            let raw_app = spanned.into_inner();
            let method = parse_method_of(&lines, &policy, &first_stage, &app, &raw_app)?;
            policy.apps.insert(
                AppId::new(app),
                AppPolicy {
                    method,
                    protected_accounts: raw_app
                        .protected_accounts
                        .into_iter()
                        .map(|s| s.to_ascii_lowercase())
                        .collect(),
                    line,
                },
            );
        }

        if let Some(d) = &raw.departures {
            policy.departures = Some(parse_departures(&lines, d)?);
        }

        for (i, rule) in raw.order.iter().enumerate() {
            let r = rule.get_ref();
            let parse = |s: &Spanned<String>, which: &str| {
                ActionName::parse(s.get_ref()).or_else(|e| {
                    lines.err(
                        s.span(),
                        format!("order[{i}].{which}"),
                        e.message().to_owned(),
                    )
                })
            };
            policy.order.push(OrderRule {
                before: parse(&r.before, "before")?,
                after: parse(&r.after, "after")?,
                line: lines.at(rule.span().start),
            });
        }
        if let Some(a) = raw.approvals {
            policy.approvals = Approvals {
                roles: a.roles,
                four_eyes: a.four_eyes,
            };
        }
        Ok(policy)
    }

    /// The stage with this name.
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name == name)
    }

    /// Whether the person is protected (by id, email or alias, case-insensitive).
    pub fn is_protected(&self, person: &Person) -> bool {
        let id = person.id.as_str().to_ascii_lowercase();
        self.protected
            .iter()
            .any(|p| *p == id || person.addresses().any(|a| a == *p))
    }

    /// Whether the account belongs to a protected person: its login or id is on the global
    /// `protected` list (case-insensitive). Checked against every account a lookup finds, so a
    /// request naming another address of a protected person, under another person id, is
    /// caught at the account it resolves to.
    pub fn protects_account(&self, account: &AccountRef) -> bool {
        let login = account.login.to_ascii_lowercase();
        let id = account.external_id.to_ascii_lowercase();
        self.protected
            .iter()
            .any(|p| (!login.is_empty() && *p == login) || (!id.is_empty() && *p == id))
    }

    /// Whether the app's `protected_accounts` name the account (login or id, case-insensitive).
    pub fn protects_in_app(&self, account: &AccountRef) -> bool {
        let login = account.login.to_ascii_lowercase();
        let id = account.external_id.to_ascii_lowercase();
        self.apps.get(&account.app).is_some_and(|p| {
            p.protected_accounts
                .iter()
                .any(|a| (!login.is_empty() && *a == login) || (!id.is_empty() && *a == id))
        })
    }

    /// A fingerprint of everything that decides a plan (protected people and accounts,
    /// critical actions, stages, methods and actions with their parameters, ordering,
    /// approvals; not line numbers): SHA-256 hex of its canonical JSON. Plans carry it, so a
    /// plan made under another policy is recognised.
    pub fn fingerprint(&self) -> String {
        let method = |m: &Method| match m {
            Method::Automatic { actions } => serde_json::json!({
                "automatic": actions
                    .iter()
                    .map(|a| serde_json::json!({ "action": a.action, "stage": a.stage }))
                    .collect::<Vec<_>>(),
            }),
            Method::Delegate { via } => serde_json::json!({ "delegate": via }),
            Method::Ignore => serde_json::json!("ignore"),
        };
        let v = serde_json::json!({
            "protected": self.protected,
            "critical": self.critical,
            "stages": self
                .stages
                .iter()
                .map(|s| (s.name.clone(), s.offset.num_milliseconds()))
                .collect::<Vec<_>>(),
            "apps": self
                .apps
                .iter()
                .map(|(app, p)| {
                    (
                        app.as_str().to_owned(),
                        serde_json::json!({
                            "method": method(&p.method),
                            "protected_accounts": p.protected_accounts,
                        }),
                    )
                })
                .collect::<BTreeMap<_, _>>(),
            "unknown_apps": method(&self.unknown_apps),
            "order": self
                .order
                .iter()
                .map(|o| (o.before.as_str(), o.after.as_str()))
                .collect::<Vec<_>>(),
            "approvals": { "roles": self.approvals.roles, "four_eyes": self.approvals.four_eyes },
        });
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(
            crate::audit::canonical_json(&v).as_bytes(),
        ))
    }

    /// Whether policy marks the action critical.
    pub fn is_critical(&self, name: &ActionName) -> bool {
        self.critical.contains(name)
    }
}

fn parse_action(
    lines: &Lines<'_>,
    policy: &Policy,
    first_stage: &str,
    field: &str,
    entry: &Spanned<toml::Value>,
) -> Result<PlannedAction, PolicyError> {
    let span = entry.span();
    let line = lines.at(span.start);
    let (name, stage, params) = match entry.get_ref() {
        toml::Value::String(s) => (s.clone(), first_stage.to_owned(), serde_json::Value::Null),
        toml::Value::Table(t) => {
            for key in t.keys() {
                if !["name", "stage", "params"].contains(&key.as_str()) {
                    return lines.err(
                        span,
                        format!("{field}.{key}"),
                        format!("unknown field `{key}`, expected one of `name`, `stage`, `params`"),
                    );
                }
            }
            let Some(toml::Value::String(name)) = t.get("name") else {
                return lines.err(
                    span,
                    format!("{field}.name"),
                    "missing action `name` (a string)",
                );
            };
            let stage = match t.get("stage") {
                None => first_stage.to_owned(),
                Some(toml::Value::String(s)) => s.clone(),
                Some(_) => {
                    return lines.err(span, format!("{field}.stage"), "`stage` must be a string");
                }
            };
            let params = match t.get("params") {
                None => serde_json::Value::Null,
                Some(p @ toml::Value::Table(_)) => {
                    serde_json::to_value(p).map_err(|e| PolicyError {
                        line,
                        field: format!("{field}.params"),
                        message: e.to_string(),
                    })?
                }
                Some(_) => {
                    return lines.err(span, format!("{field}.params"), "`params` must be a table");
                }
            };
            (name.clone(), stage, params)
        }
        _ => {
            return lines.err(
                span,
                field,
                "an action is a name string or a table with `name`",
            );
        }
    };
    let name = ActionName::parse(&name).or_else(|e| {
        lines.err(
            span.clone(),
            format!("{field}.name"),
            e.message().to_owned(),
        )
    })?;
    if policy.stage(&stage).is_none() {
        let known: Vec<&str> = policy.stages.iter().map(|s| s.name.as_str()).collect();
        return lines.err(
            span,
            format!("{field}.stage"),
            format!(
                "stage {stage:?} is not defined in [stages] (defined: {})",
                known.join(", ")
            ),
        );
    }
    Ok(PlannedAction {
        action: Action { name, params },
        stage,
        line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AccountStatus;

    const GOOD: &str = r#"
protected = ["CEO@example.com"]
critical = ["okta.deactivate"]
unknown_apps = "delegate_email"

[stages]
last_day = "0d"
cleanup = "+30d"

[apps.okta]
method = "automatic"
actions = ["okta.suspend", { name = "okta.delete", stage = "cleanup" }]
protected_accounts = ["Break-Glass@example.com"]

[apps.google]
method = "automatic"
actions = [{ name = "google.move_to_ou", params = { ou = "/Offboarded" } }]

[apps.salesforce]
method = "delegate"
via = "jira"

[apps.figma]
method = "ignore"

[[order]]
before = "google.move_to_ou"
after = "okta.delete"
"#;

    #[test]
    fn parses_a_full_policy() {
        let p = Policy::from_toml(GOOD).unwrap();
        assert_eq!(
            p.stages.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["last_day", "cleanup"]
        );
        assert_eq!(
            p.stage("cleanup").unwrap().offset,
            chrono::Duration::days(30)
        );
        assert!(p.is_protected(&Person::new("x", "ceo@EXAMPLE.com")));
        assert!(!p.is_protected(&Person::new("y", "dev@example.com")));
        let Method::Automatic { actions } = &p.apps[&AppId::new("okta")].method else {
            panic!()
        };
        assert_eq!(actions[0].stage, "last_day");
        assert_eq!(actions[1].stage, "cleanup");
        assert_eq!(actions[1].line, 12);
        let Method::Automatic { actions } = &p.apps[&AppId::new("google")].method else {
            panic!()
        };
        assert_eq!(
            actions[0].action.params,
            serde_json::json!({"ou": "/Offboarded"})
        );
        assert_eq!(
            p.apps[&AppId::new("salesforce")].method,
            Method::Delegate {
                via: DelegateVia::Jira
            }
        );
        assert_eq!(
            p.unknown_apps,
            Method::Delegate {
                via: DelegateVia::Email
            }
        );
        assert_eq!(p.order.len(), 1);
        assert_eq!(
            p.apps[&AppId::new("okta")].protected_accounts,
            ["break-glass@example.com"]
        );
    }

    #[test]
    fn approvals_parse_and_decide() {
        let p = Policy::from_toml(
            "[approvals]\nroles = [\"security\", \"it-lead\"]\nfour_eyes = true\n",
        )
        .unwrap();
        let a = &p.approvals;
        assert_eq!(a.roles, ["security", "it-lead"]);
        assert!(a.four_eyes);
        assert_eq!(a.check("admin@x", "sec@x", Some("security")), Ok(()));
        let why = a.check("admin@x", "sec@x", Some("helpdesk")).unwrap_err();
        assert!(
            why.contains("helpdesk") && why.contains("security"),
            "{why}"
        );
        assert!(a.check("admin@x", "sec@x", None).is_err());
        let why = a.check("admin@x", "ADMIN@x", Some("security")).unwrap_err();
        assert!(why.contains("four eyes"), "{why}");
        assert!(a.check("admin@x", "  ", Some("security")).is_err());
        // Default: anyone named.
        let open = Approvals::default();
        assert_eq!(open.check("admin@x", "admin@x", None), Ok(()));
        let e = err("[approvals]\nroles = [\"security\"]\nfour_eys = true\n");
        assert!(e.message.contains("four_eys"), "{e}");
    }

    #[test]
    fn the_fingerprint_follows_what_decides_a_plan() {
        let p = Policy::from_toml(GOOD).unwrap();
        // Same content, other layout: same fingerprint.
        let moved = format!("\n\n{}", GOOD.replace(" = ", "="));
        assert_eq!(
            Policy::from_toml(&moved).unwrap().fingerprint(),
            p.fingerprint()
        );
        for change in [
            GOOD.replace("CEO@example.com", "cto@example.com"),
            GOOD.replace("critical = [\"okta.deactivate\"]", "critical = []"),
            GOOD.replace("+30d", "+31d"),
            GOOD.replace("/Offboarded", "/Gone"),
            GOOD.replace("Break-Glass", "Other"),
            format!("{GOOD}\n[approvals]\nfour_eyes = true\n"),
        ] {
            let other = Policy::from_toml(&change).unwrap();
            assert_ne!(other.fingerprint(), p.fingerprint(), "{change}");
        }
    }

    #[test]
    fn protected_accounts_are_matched_by_login_or_id() {
        let p = Policy::from_toml(GOOD).unwrap();
        let ceo = AccountRef::new("google", "g-1", "CEO@example.com", AccountStatus::Active);
        assert!(p.protects_account(&ceo));
        let other = AccountRef::new(
            "google",
            "g-2",
            "ceo.private@example.com",
            AccountStatus::Active,
        );
        assert!(!p.protects_account(&other));
        let glass = AccountRef::new(
            "okta",
            "00u1",
            "break-glass@example.com",
            AccountStatus::Active,
        );
        assert!(p.protects_in_app(&glass));
        assert!(!p.protects_account(&glass));
        let elsewhere = AccountRef::new(
            "google",
            "g-3",
            "break-glass@example.com",
            AccountStatus::Active,
        );
        assert!(
            !p.protects_in_app(&elsewhere),
            "app-level protection is per app"
        );
        let nobody = AccountRef::new("okta", "", "", AccountStatus::Deleted);
        assert!(!p.protects_account(&nobody) && !p.protects_in_app(&nobody));
    }

    fn err(src: &str) -> PolicyError {
        Policy::from_toml(src).unwrap_err()
    }

    #[test]
    fn errors_name_line_and_field() {
        let e = err(
            "[apps.okta]\nmethod = \"automatic\"\nactions = [\"okta.suspend\",\n  { name = \"okta.delete\", stage = \"later\" }]\n",
        );
        assert_eq!(
            (e.line, e.field.as_str()),
            (4, "apps.okta.actions[1].stage"),
            "{e}"
        );
        assert!(e.to_string().contains("policy line 4"), "{e}");

        let e = err("[apps.okta]\nmethod = \"automagic\"\n");
        assert_eq!((e.line, e.field.as_str()), (2, "apps.okta.method"), "{e}");

        let e = err("[apps.okta]\nmethod = \"automatic\"\nactoins = []\n");
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("actoins"), "{e}");

        let e = err("[stages]\nlater = \"soon\"\n");
        assert_eq!((e.line, e.field.as_str()), (2, "stages.later"), "{e}");

        let e = err("[apps.okta]\nmethod = \"automatic\"\nactions = [\"Okta.Suspend\"]\n");
        assert_eq!(
            (e.line, e.field.as_str()),
            (3, "apps.okta.actions[0].name"),
            "{e}"
        );

        let e = err("[apps.okta]\nmethod = \"automatic\"\nactions = [\"google.suspend\"]\n");
        assert_eq!(e.field, "apps.okta.actions", "{e}");

        let e = err("[apps.jira]\nmethod = \"delegate\"\nvia = \"pigeon\"\n");
        assert_eq!((e.line, e.field.as_str()), (3, "apps.jira.via"), "{e}");

        let e = err("x = [\n");
        assert!(e.line >= 1, "{e}");

        let as_error: Error = err("[apps.okta]\nmethod = 1\n").into();
        assert_eq!(as_error.kind(), ErrorKind::Config);
    }

    #[test]
    fn offsets_beyond_the_bound_are_refused_naming_the_stage() {
        let e = err("[stages]\nnow = \"0d\"\ncleanup = \"99999999d\"\n");
        assert_eq!((e.line, e.field.as_str()), (3, "stages.cleanup"), "{e}");
        assert!(Policy::from_toml("[stages]\ncleanup = \"3650d\"\n").is_ok());
    }

    #[test]
    fn wrong_types_and_duplicate_keys_name_the_field() {
        let e = err("[apps.okta]\nmethod = 1\n");
        assert_eq!((e.line, e.field.as_str()), (2, "apps.okta.method"), "{e}");
        let e =
            err("[apps.okta]\nmethod = \"ignore\"\nprotected_accounts = [\n  \"a@x\",\n  7,\n]\n");
        assert_eq!(
            (e.line, e.field.as_str()),
            (5, "apps.okta.protected_accounts"),
            "{e}"
        );
        let e = err("protected = \"ceo@example.com\"\n");
        assert_eq!((e.line, e.field.as_str()), (1, "protected"), "{e}");
        let e = err("[apps.okta]\nmethod = \"ignore\"\nmethod = \"ignore\"\n");
        assert_eq!((e.line, e.field.as_str()), (3, "apps.okta.method"), "{e}");
        let e = err("[apps.okta]\nmethod = \"ignore\"\n[apps.okta]\nmethod = \"ignore\"\n");
        assert_eq!(e.field, "apps.okta", "{e}");
    }

    #[test]
    fn departure_limits_parse_and_bound() {
        let p = Policy::from_toml("[departures]\nmax_people = 200\nmax_percent = 20\n").unwrap();
        assert_eq!(
            p.departures,
            Some(DepartureLimits {
                max_people: 200,
                max_percent: 20
            })
        );
        assert_eq!(Policy::from_toml("").unwrap().departures, None);
        let e = err("[departures]\nmax_percent = 101\n");
        assert_eq!(
            (e.line, e.field.as_str()),
            (2, "departures.max_percent"),
            "{e}"
        );
        let e = err("[departures]\nmax_people = -1\n");
        assert_eq!(
            (e.line, e.field.as_str()),
            (2, "departures.max_people"),
            "{e}"
        );
        let e = err("[departures]\nmax_people = \"many\"\n");
        assert_eq!(
            (e.line, e.field.as_str()),
            (2, "departures.max_people"),
            "{e}"
        );
        // 5 % of 10 rounds up to one person; 25 caps a large source; unknown counts use 25.
        let d = DepartureLimits::default();
        assert_eq!(d.limit(Some(10)), 1);
        assert_eq!(d.limit(Some(100)), 5);
        assert_eq!(d.limit(Some(100_000)), 25);
        assert_eq!(d.limit(None), 25);
        assert_eq!(DepartureLimits::unlimited().limit(Some(3)), usize::MAX);
    }

    #[test]
    fn offsets() {
        assert_eq!(parse_offset("0d"), Some(chrono::Duration::zero()));
        assert_eq!(parse_offset("+12h"), Some(chrono::Duration::hours(12)));
        assert_eq!(parse_offset("90m"), Some(chrono::Duration::minutes(90)));
        assert_eq!(parse_offset("d"), None);
        assert_eq!(parse_offset("3w"), None);
    }
}
