//! The CLI's configuration: a TOML file (`--config`, `OFFBOARD_CONFIG`) and the environment.
//!
//! ```toml
//! # Where runs and the audit trail live: a SQLite file, or PostgreSQL.
//! store = "sqlite:///var/lib/offboard/offboard.db"   # relative paths: beside this file
//! # store = "postgres://offboard@db.internal:5432/offboard"
//! # store_password_env = "OFFBOARD_PG_PASSWORD"      # never a password in the URL
//! policy = "policy.toml"                             # the policy file (beside this file)
//! actor = "it-admin@example.com"                     # who the audit trail names (or --as)
//! domains = ["example.com"]                          # the company's domains, for sources
//!
//! [connectors.okta]
//! org_url = "https://example.okta.com"
//! api_token_env = "OKTA_API_TOKEN"                   # a secret: the variable's NAME only
//!
//! [delegates.jira]
//! site = "https://example.atlassian.net"
//! email = "offboard@example.com"
//! api_token_env = "JIRA_API_TOKEN"
//! project = "IT"
//!
//! [sources.okta]                                     # Okta as a source of truth
//!
//! [connectors.scim.slack]                            # one SCIM table per app: the app id
//! base_url = "https://api.slack.com/scim/v2"
//! profile = "slack"
//! bearer_token_env = "SLACK_SCIM_TOKEN"
//! ```
//!
//! Connector tables take the keys of each crate's configuration (`okta`, `google`, `ad`,
//! `jira`, `email`: their `ConfigKey`s, aliases included; `entra` and `o365`: `tenant_id`,
//! `client_id`, `client_secret`, `graph_url`, `token_url`, `timeout_secs`,
//! `max_concurrency`, `allow_plain_http`). Any key may be given as `<key>_env`, naming the
//! environment variable that holds its value; secrets (tokens, keys, passwords) must be: a
//! secret written in the file is refused. A connector's table also takes the crate's standard
//! variables (`OFFBOARD_OKTA_ORG_URL`, `OFFBOARD_GOOGLE_ACCESS_TOKEN`, `OFFBOARD_AZURE_*` for
//! `entra`, `OFFBOARD_O365_*`, `OFFBOARD_AD_*`, `OFFBOARD_JIRA_*`, `OFFBOARD_EMAIL_*`), which
//! the file's keys override; a kind without a table is not built. Values read from the
//! environment are kept as [`Secret`]s, so `Debug` never shows them.
//!
//! SCIM connectors are one per app: `[connectors.scim.<app>]`, the table's name being the app id
//! (its actions are `<app>.deactivate`...), with the keys of `offboard_scim::ScimConfig`
//! (`base_url`, `profile`, `bearer_token`, `basic_user` + `basic_password`, `oauth_token_url` +
//! `oauth_client_id` + `oauth_client_secret`, `oauth_scope`, `oauth_client_auth`,
//! `timeout_secs`, `max_concurrency`, `page_size`, `allow_plain_http`; aliases `url`, `token`,
//! `timeout`). The secrets are `bearer_token`, `basic_password` and `oauth_client_secret`; the
//! standard variables are `OFFBOARD_SCIM_<APP>_<KEY>` (`OFFBOARD_SCIM_SLACK_BEARER_TOKEN`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use offboard::ad::{AdConfig, AdConfigBuilder, AdConfigKey};
use offboard::email::EmailBuilder;
use offboard::entra::AzureConfig;
use offboard::google::{GoogleConfig, GoogleConnector};
use offboard::jira::{JiraBuilder, JiraDelegate};
use offboard::o365::{O365Config, O365Connector};
use offboard::okta::{OktaConfig, OktaConnector};
use offboard::scim::{ScimConfig, ScimConnector};
use offboard::{Error, Result, Secret};
use serde::Deserialize;

/// Reads an environment variable (injected, so tests need not change the process's).
pub(crate) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The configuration file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    store: String,
    store_password_env: Option<String>,
    policy: PathBuf,
    actor: Option<String>,
    #[serde(default)]
    domains: Vec<String>,
    #[serde(default)]
    connectors: BTreeMap<String, toml::Table>,
    #[serde(default)]
    delegates: BTreeMap<String, toml::Table>,
    #[serde(default)]
    sources: BTreeMap<String, SourceSettings>,
}

/// Where the store is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreSpec {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL URL without its password, and the password from the environment.
    Postgres {
        url: String,
        password: Option<Secret>,
    },
}

impl StoreSpec {
    /// The URL to connect with, the password put in (never printed).
    pub(crate) fn postgres_url(url: &str, password: Option<&Secret>) -> Result<Secret> {
        let mut parsed = url::Url::parse(url)
            .map_err(|_| Error::config("store", "not a valid PostgreSQL URL"))?;
        if let Some(p) = password {
            parsed
                .set_password(Some(p.expose()))
                .map_err(|_| Error::config("store", "the URL cannot carry a password"))?;
        }
        Ok(Secret::new(parsed.to_string()))
    }
}

/// A source of truth's table (`[sources.okta]`, `[sources.hr]`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SourceSettings {
    /// The HR export (`hr` only).
    pub path: Option<PathBuf>,
    /// One domain of the Google account (`google` only).
    pub domain: Option<String>,
    /// One customer id (`google` only).
    pub customer: Option<String>,
}

/// One connector's or delegate's settings, resolved: canonical key → value.
#[derive(Debug, Clone, Default)]
pub(crate) struct Values(Vec<(String, Secret)>);

impl Values {
    fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.expose()))
    }
}

/// The whole configuration, resolved against the environment.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// The store.
    pub store: StoreSpec,
    /// The policy file.
    pub policy: PathBuf,
    /// Who acts, unless `--as` says.
    pub actor: Option<String>,
    /// The company's domains (for sources of truth).
    pub domains: Vec<String>,
    /// Connector settings by kind (SCIM apps are in `scim`).
    pub connectors: BTreeMap<String, Values>,
    /// SCIM connector settings by app id (`[connectors.scim.<app>]`).
    pub scim: BTreeMap<String, Values>,
    /// Delegate settings by kind.
    pub delegates: BTreeMap<String, Values>,
    /// Sources of truth by kind.
    pub sources: BTreeMap<String, SourceSettings>,
}

/// The connector kinds the CLI builds.
pub(crate) const CONNECTORS: [&str; 6] = ["okta", "google", "entra", "o365", "ad", "scim"];
/// The delegate kinds the CLI builds.
pub(crate) const DELEGATES: [&str; 2] = ["jira", "email"];
/// The source kinds the CLI builds.
pub(crate) const SOURCES: [&str; 4] = ["okta", "google", "entra", "hr"];

impl Settings {
    /// Reads and resolves the file at `path`.
    pub(crate) fn load(path: &Path, env: Env<'_>) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::config("config", format!("cannot read {}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base, env)
    }

    /// Parses a configuration whose relative paths are relative to `base`.
    pub(crate) fn parse(text: &str, base: &Path, env: Env<'_>) -> Result<Self> {
        let file: File = toml::from_str(text)
            .map_err(|e| Error::config("config", format!("invalid configuration: {e}")))?;
        let store = store_spec(&file.store, file.store_password_env.as_deref(), base, env)?;
        let mut tables = file.connectors;
        let scim = match tables.remove("scim") {
            Some(apps) => resolve_scim(&apps, env)?,
            None => BTreeMap::new(),
        };
        let connectors = resolve_all("connectors", &tables, &CONNECTORS, env)?;
        let delegates = resolve_all("delegates", &file.delegates, &DELEGATES, env)?;
        if let Some(kind) = file.sources.keys().find(|k| !SOURCES.contains(&k.as_str())) {
            return Err(unknown_kind("sources", kind, &SOURCES));
        }
        let mut sources = file.sources;
        for (kind, s) in &mut sources {
            if kind != "hr" && !connectors.contains_key(kind) {
                return Err(Error::config(
                    format!("sources.{kind}"),
                    format!("the {kind} source needs a [connectors.{kind}] table"),
                ));
            }
            if let Some(p) = &s.path {
                s.path = Some(base.join(p));
            }
        }
        if sources.get("hr").is_some_and(|s| s.path.is_none()) {
            return Err(Error::config("sources.hr.path", "the HR feed needs a path"));
        }
        Ok(Self {
            store,
            policy: base.join(file.policy),
            actor: file.actor,
            domains: file.domains,
            connectors,
            scim,
            delegates,
            sources,
        })
    }
}

fn store_spec(
    store: &str,
    password_env: Option<&str>,
    base: &Path,
    env: Env<'_>,
) -> Result<StoreSpec> {
    if let Some(path) = store.strip_prefix("sqlite:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        if path.is_empty() {
            return Err(Error::config("store", "a sqlite store names its file"));
        }
        return Ok(StoreSpec::Sqlite(base.join(path)));
    }
    if store.starts_with("postgres://") || store.starts_with("postgresql://") {
        let parsed = url::Url::parse(store)
            .map_err(|_| Error::config("store", "not a valid PostgreSQL URL"))?;
        if parsed.password().is_some() {
            return Err(Error::config(
                "store",
                "the PostgreSQL password comes from the environment (store_password_env), \
                 never from the file",
            ));
        }
        let password = match password_env {
            Some(var) => Some(Secret::new(read_env(env, "store_password_env", var)?)),
            None => None,
        };
        return Ok(StoreSpec::Postgres {
            url: store.to_owned(),
            password,
        });
    }
    Err(Error::config(
        "store",
        "expected sqlite:///path/to/file.db or postgres://user@host:port/database",
    ))
}

fn read_env(env: Env<'_>, key: &str, var: &str) -> Result<String> {
    env(var).ok_or_else(|| {
        Error::config(
            key.to_owned(),
            format!("names the environment variable {var}, which is not set"),
        )
    })
}

fn unknown_kind(section: &str, kind: &str, known: &[&str]) -> Error {
    Error::config(
        format!("{section}.{kind}"),
        format!("unknown kind; expected one of {}", known.join(", ")),
    )
}

fn resolve_all(
    section: &str,
    tables: &BTreeMap<String, toml::Table>,
    known: &[&str],
    env: Env<'_>,
) -> Result<BTreeMap<String, Values>> {
    let mut out = BTreeMap::new();
    for (kind, table) in tables {
        if !known.contains(&kind.as_str()) {
            return Err(unknown_kind(section, kind, known));
        }
        out.insert(kind.clone(), resolve(kind, kind, table, env)?);
    }
    Ok(out)
}

/// Resolves `[connectors.scim]`: one table per app, named by the app id.
fn resolve_scim(apps: &toml::Table, env: Env<'_>) -> Result<BTreeMap<String, Values>> {
    let mut out = BTreeMap::new();
    for (app, table) in apps {
        let at = format!("scim.{app}");
        let table = table.as_table().ok_or_else(|| {
            Error::config(
                at.clone(),
                format!("each SCIM app is a table: [connectors.scim.{app}]"),
            )
        })?;
        if CONNECTORS.contains(&app.as_str()) {
            return Err(Error::config(
                at,
                format!("{app} is the app id of its own connector ([connectors.{app}])"),
            ));
        }
        out.insert(app.clone(), resolve("scim", &at, table, env)?);
    }
    Ok(out)
}

/// Resolves one table of `kind`, named `name` in errors (`okta`, `scim.slack`): `<key>_env`
/// read from the environment, scalars as strings, keys made canonical; a secret written in the
/// file is refused.
fn resolve(kind: &str, name: &str, table: &toml::Table, env: Env<'_>) -> Result<Values> {
    let mut values = standard_variables(kind, name, env);
    for (key, value) in table {
        let at = format!("{name}.{key}");
        let (name, value) = match key.strip_suffix("_env") {
            Some(name) => {
                let var = value
                    .as_str()
                    .ok_or_else(|| Error::config(at.clone(), "names an environment variable"))?;
                (name, Secret::new(read_env(env, &at, var)?))
            }
            None => {
                let canonical = canonical_key(kind, key)?;
                if is_secret(kind, &canonical) {
                    return Err(Error::config(
                        at,
                        format!(
                            "is a secret: write `{key}_env = \"VARIABLE\"` and put the value in \
                             that environment variable"
                        ),
                    ));
                }
                (key.as_str(), Secret::new(scalar(&at, value)?))
            }
        };
        values.push((canonical_key(kind, name)?, value));
    }
    Ok(Values(values))
}

fn scalar(at: &str, value: &toml::Value) -> Result<String> {
    match value {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        toml::Value::Array(items) => items
            .iter()
            .map(|v| scalar(at, v))
            .collect::<Result<Vec<_>>>()
            .map(|v| v.join(",")),
        _ => Err(Error::config(
            at.to_owned(),
            "expected a string, number, boolean or list",
        )),
    }
}

/// Keys of the Microsoft Graph connectors (`entra`, `o365`).
const GRAPH_KEYS: [&str; 8] = [
    "tenant_id",
    "client_id",
    "client_secret",
    "graph_url",
    "token_url",
    "timeout_secs",
    "max_concurrency",
    "allow_plain_http",
];

/// Keys of the SCIM connector (`offboard_scim::ScimConfig`), canonical names.
const SCIM_KEYS: [&str; 14] = [
    "base_url",
    "profile",
    "bearer_token",
    "basic_user",
    "basic_password",
    "oauth_token_url",
    "oauth_client_id",
    "oauth_client_secret",
    "oauth_scope",
    "oauth_client_auth",
    "timeout_secs",
    "max_concurrency",
    "page_size",
    "allow_plain_http",
];

/// The crate's standard variables for `kind` (a SCIM app: for the app `name` is
/// `scim.<app>`) that are set, as (canonical key, value).
fn standard_variables(kind: &str, name: &str, env: Env<'_>) -> Vec<(String, Secret)> {
    fn names<K: Copy>(all: &[K], name: fn(K) -> &'static str) -> Vec<&'static str> {
        all.iter().map(|k| name(*k)).collect()
    }
    let (prefix, keys) = match kind {
        "okta" => (
            "OKTA",
            names(&offboard::okta::ConfigKey::ALL, |k| k.as_str()),
        ),
        "google" => (
            "GOOGLE",
            names(&offboard::google::ConfigKey::ALL, |k| k.as_str()),
        ),
        "ad" => ("AD", names(&AdConfigKey::ALL, |k| k.as_str())),
        "jira" => (
            "JIRA",
            names(&offboard::jira::ConfigKey::ALL, |k| k.as_str()),
        ),
        "email" => (
            "EMAIL",
            names(&offboard::email::ConfigKey::ALL, |k| k.as_str()),
        ),
        "entra" => ("AZURE", GRAPH_KEYS.to_vec()),
        "o365" => ("O365", GRAPH_KEYS.to_vec()),
        "scim" => {
            let app = name.strip_prefix("scim.").unwrap_or(name);
            let prefix = format!("SCIM_{}", app.to_ascii_uppercase());
            return set_variables(&prefix, &SCIM_KEYS, env);
        }
        _ => return Vec::new(),
    };
    set_variables(prefix, &keys, env)
}

/// The variables `OFFBOARD_<prefix>_<KEY>` of `keys` that are set.
fn set_variables(prefix: &str, keys: &[&str], env: Env<'_>) -> Vec<(String, Secret)> {
    keys.iter()
        .filter_map(|k| {
            let var = format!("OFFBOARD_{prefix}_{}", k.to_ascii_uppercase());
            env(&var).map(|v| ((*k).to_owned(), Secret::new(v)))
        })
        .collect()
}

/// The canonical name of `key` for `kind`, by the connector crate's own key parser.
fn canonical_key(kind: &str, key: &str) -> Result<String> {
    let bad = || {
        Error::config(
            format!("{kind}.{key}"),
            "not a configuration key of this kind",
        )
    };
    Ok(match kind {
        "okta" => offboard::okta::ConfigKey::from_str(key)?
            .as_str()
            .to_owned(),
        "google" => offboard::google::ConfigKey::from_str(key)?
            .as_str()
            .to_owned(),
        "ad" => AdConfigKey::from_str(key)?.as_str().to_owned(),
        "jira" => offboard::jira::ConfigKey::from_str(key)?
            .as_str()
            .to_owned(),
        "email" => offboard::email::ConfigKey::from_str(key)?
            .as_str()
            .to_owned(),
        "entra" | "o365" => GRAPH_KEYS
            .into_iter()
            .find(|k| *k == key)
            .ok_or_else(bad)?
            .to_owned(),
        "scim" => {
            let key = match key {
                "url" => "base_url",
                "token" => "bearer_token",
                "timeout" => "timeout_secs",
                other => other,
            };
            SCIM_KEYS
                .into_iter()
                .find(|k| *k == key)
                .ok_or_else(bad)?
                .to_owned()
        }
        _ => return Err(bad()),
    })
}

fn is_secret(kind: &str, canonical: &str) -> bool {
    let secrets: &[&str] = match kind {
        "okta" => &["api_token", "private_key"],
        "google" => &["service_account_key", "access_token"],
        "entra" | "o365" => &["client_secret"],
        "ad" => &["password"],
        "jira" => &["api_token", "webhook_secret"],
        "email" => &["password", "signing_key"],
        "scim" => &["bearer_token", "basic_password", "oauth_client_secret"],
        _ => &[],
    };
    secrets.contains(&canonical)
}

fn flag(key: &str, v: &str) -> Result<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(Error::config(key.to_owned(), "expected true or false")),
    }
}

fn number<T: FromStr>(key: &str, v: &str) -> Result<T> {
    v.trim()
        .parse()
        .map_err(|_| Error::config(key.to_owned(), "expected a positive number"))
}

/// Applies every value to `builder` with `set`, the key parsed by the crate's own parser.
fn apply<B, K>(v: &Values, builder: B, set: impl Fn(B, K, &str) -> Result<B>) -> Result<B>
where
    K: FromStr<Err = Error>,
{
    v.iter()
        .try_fold(builder, |b, (k, x)| set(b, K::from_str(k)?, x))
}

/// Builds the Okta connector.
pub(crate) fn okta(v: &Values) -> Result<OktaConnector> {
    let set = |c: OktaConfig, k, x: &str| Ok(c.with_config(k, x));
    apply(v, OktaConfig::new(), set)?.build()
}

/// Builds the Google Workspace connector.
pub(crate) fn google(v: &Values) -> Result<GoogleConnector> {
    let set = |c: GoogleConfig, k, x: &str| Ok(c.with_config(k, x));
    apply(v, GoogleConfig::new(), set)?.build()
}

macro_rules! graph_config {
    ($config:expr, $v:expr) => {{
        let mut c = $config;
        for (k, x) in $v.iter() {
            c = match k {
                "tenant_id" => c.with_tenant_id(x),
                "client_id" => c.with_client_id(x),
                "client_secret" => c.with_client_secret(Secret::new(x)),
                "graph_url" => c.with_graph_url(x),
                "token_url" => c.with_token_url(x),
                "timeout_secs" => c.with_timeout(Duration::from_secs(number(k, x)?)),
                "max_concurrency" => c.with_max_concurrency(number(k, x)?),
                "allow_plain_http" => c.with_allow_plain_http(flag(k, x)?),
                _ => return Err(Error::config(k.to_owned(), "not a Graph configuration key")),
            };
        }
        c
    }};
}

/// Builds the Entra ID connector.
pub(crate) fn entra(v: &Values) -> Result<offboard::entra::EntraConnector> {
    graph_config!(AzureConfig::new(), v).build()
}

/// Builds the Office 365 connector.
pub(crate) fn o365(v: &Values) -> Result<O365Connector> {
    graph_config!(O365Config::new(), v).build()
}

/// Builds the SCIM connector of `app`. The secrets are applied last: `ScimConfig` pairs
/// `basic_password` with the `basic_user` set before it, and `oauth_client_secret` with the
/// `oauth_token_url` and `oauth_client_id` set before it (otherwise the order is kept, so the
/// file's keys still override the standard variables).
pub(crate) fn scim(app: &str, v: &Values) -> Result<ScimConnector> {
    let mut values: Vec<(&str, &str)> = v.iter().collect();
    values.sort_by_key(|(k, _)| is_secret("scim", k));
    values
        .into_iter()
        .fold(ScimConfig::new(app), |c, (k, x)| c.with_config(k, x))
        .build()
}

/// The Active Directory configuration (the connector connects to the DC with it).
pub(crate) fn ad(v: &Values) -> Result<AdConfig> {
    let set = |c: AdConfigBuilder, k, x: &str| c.with_config(k, x);
    apply(v, AdConfigBuilder::new(), set)?.build()
}

/// Builds the Jira delegate.
pub(crate) fn jira(v: &Values) -> Result<JiraDelegate> {
    let set = |c: JiraBuilder, k, x: &str| Ok(c.with_config(k, x));
    apply(v, JiraBuilder::new(), set)?.build()
}

/// The email delegate's builder (the store is added by whoever builds the engine).
pub(crate) fn email(v: &Values) -> Result<EmailBuilder> {
    let set = |c: EmailBuilder, k, x: &str| Ok(c.with_config(k, x));
    apply(v, EmailBuilder::new(), set)
}

#[cfg(test)]
mod tests;
