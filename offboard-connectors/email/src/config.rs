//! Configuration: [`EmailBuilder`] (`new`, `from_env`, `with_*`, `build`) and [`ConfigKey`].

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use offboard_core::engine::{Clock, TokioClock};
use offboard_core::{AppId, Error, Result, Secret, Store};

use crate::EmailDelegate;

/// The shortest signing key accepted, in bytes: HMAC-SHA256's output size (RFC 2104 §3: keys
/// shorter than the hash output weaken the MAC).
pub const MIN_SIGNING_KEY: usize = 32;
use crate::state::{EmailState, StoreEmailState};

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SmtpSecurity {
    /// Plain connection, then a required `STARTTLS` (port 587). The default.
    StartTls,
    /// TLS from the first byte (SMTPS, port 465).
    ImplicitTls,
    /// No TLS at all: only for a local test sink.
    Plain,
}

impl FromStr for SmtpSecurity {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "starttls" => Ok(Self::StartTls),
            "tls" | "implicit" | "implicit_tls" | "smtps" => Ok(Self::ImplicitTls),
            "plain" | "none" => Ok(Self::Plain),
            _ => Err(Error::config("security", "expected starttls, tls or plain")),
        }
    }
}

/// A configuration key, as named in errors, `with_config` and the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConfigKey {
    /// `smtp_host` (alias `host`).
    SmtpHost,
    /// `smtp_port` (alias `port`); default 587, 465 for implicit TLS, 25 for plain.
    SmtpPort,
    /// `security`: `starttls` (default), `tls` or `plain`.
    Security,
    /// `username` (alias `user`).
    Username,
    /// `password` (a secret).
    Password,
    /// `root_ca`: path of a PEM file with an extra trusted root certificate.
    RootCa,
    /// `from`: the sender address.
    From,
    /// `task_url`: base URL of the host's task page; the link is `<task_url>/<id>?token=...`.
    TaskUrl,
    /// `signing_key`: the HMAC key of the task tokens (a secret, at least 32 bytes).
    SigningKey,
    /// `token_ttl`: how long a link works (bare number: days; default 30 days, at most 365).
    TokenTtl,
    /// `remind_every`: reminder period (bare number: days; default 3, at most 365).
    RemindEvery,
    /// `max_reminders`: reminders before escalating (default 3).
    MaxReminders,
    /// `escalate_to`: who hears when the reminders did not help.
    EscalateTo,
    /// `owner`: the default recipient for apps without their own owner.
    Owner,
    /// `owners`: per-app recipients, `app=address,app2=address`.
    Owners,
    /// `timeout`: SMTP timeout (bare number: seconds; default 30).
    Timeout,
    /// `allow_plain_http` (`true`/`false`): allow a plain `http` `task_url` on this machine
    /// (loopback tests). Default `false`: a link carries a token, never in clear.
    AllowPlainHttp,
}

impl ConfigKey {
    /// Every key.
    pub const ALL: [ConfigKey; 17] = [
        Self::SmtpHost,
        Self::SmtpPort,
        Self::Security,
        Self::Username,
        Self::Password,
        Self::RootCa,
        Self::From,
        Self::TaskUrl,
        Self::SigningKey,
        Self::TokenTtl,
        Self::RemindEvery,
        Self::MaxReminders,
        Self::EscalateTo,
        Self::Owner,
        Self::Owners,
        Self::Timeout,
        Self::AllowPlainHttp,
    ];

    /// The canonical name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SmtpHost => "smtp_host",
            Self::SmtpPort => "smtp_port",
            Self::Security => "security",
            Self::Username => "username",
            Self::Password => "password",
            Self::RootCa => "root_ca",
            Self::From => "from",
            Self::TaskUrl => "task_url",
            Self::SigningKey => "signing_key",
            Self::TokenTtl => "token_ttl",
            Self::RemindEvery => "remind_every",
            Self::MaxReminders => "max_reminders",
            Self::EscalateTo => "escalate_to",
            Self::Owner => "owner",
            Self::Owners => "owners",
            Self::Timeout => "timeout",
            Self::AllowPlainHttp => "allow_plain_http",
        }
    }

    /// The environment variable `from_env` reads: `OFFBOARD_EMAIL_<NAME>`.
    pub fn env_var(self) -> String {
        format!("OFFBOARD_EMAIL_{}", self.as_str().to_ascii_uppercase())
    }
}

impl fmt::Display for ConfigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ConfigKey {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let k = s.trim().to_ascii_lowercase();
        let k = k.strip_prefix("offboard_email_").unwrap_or(&k);
        Ok(match k {
            "smtp_host" | "host" => Self::SmtpHost,
            "smtp_port" | "port" => Self::SmtpPort,
            "security" | "tls" => Self::Security,
            "username" | "user" => Self::Username,
            "password" => Self::Password,
            "root_ca" | "ca" => Self::RootCa,
            "from" => Self::From,
            "task_url" => Self::TaskUrl,
            "signing_key" => Self::SigningKey,
            "token_ttl" => Self::TokenTtl,
            "remind_every" => Self::RemindEvery,
            "max_reminders" => Self::MaxReminders,
            "escalate_to" => Self::EscalateTo,
            "owner" | "default_owner" => Self::Owner,
            "owners" => Self::Owners,
            "timeout" => Self::Timeout,
            "allow_plain_http" => Self::AllowPlainHttp,
            _ => return Err(Error::config(s, "unknown email configuration key")),
        })
    }
}

/// The validated configuration of an [`EmailDelegate`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EmailConfig {
    /// SMTP host.
    pub smtp_host: String,
    /// SMTP port.
    pub smtp_port: u16,
    /// Connection security.
    pub security: SmtpSecurity,
    /// SMTP user.
    pub username: Option<String>,
    /// SMTP password.
    pub password: Option<Secret>,
    /// Extra trusted root (PEM).
    pub root_ca_pem: Option<Vec<u8>>,
    /// Sender.
    pub from: String,
    /// Task page base URL (no trailing slash).
    pub task_url: String,
    /// Token HMAC key.
    pub signing_key: Secret,
    /// How long a link works.
    pub token_ttl: Duration,
    /// Reminder period.
    pub remind_every: Duration,
    /// Reminders before escalating.
    pub max_reminders: u32,
    /// Escalation recipient.
    pub escalate_to: Option<String>,
    /// Default owner.
    pub owner: Option<String>,
    /// Per-app owners.
    pub owners: BTreeMap<AppId, String>,
    /// SMTP timeout.
    pub timeout: Duration,
    /// Where messages are written as `.eml` files instead of being sent over SMTP
    /// ([`EmailBuilder::with_pickup_dir`]); `None`: SMTP.
    pub pickup_dir: Option<std::path::PathBuf>,
}

/// Builds an [`EmailDelegate`].
///
/// # Example
/// ```
/// use std::sync::Arc;
///
/// use offboard_core::MemoryStore;
/// use offboard_email::{EmailBuilder, SmtpSecurity};
///
/// let email = EmailBuilder::new()
///     .with_smtp("127.0.0.1", 2525, SmtpSecurity::Plain)
///     .with_from("offboard@example.com")
///     .with_task_url("https://admin.example.com/offboard/tasks")
///     .with_signing_key("not-a-real-key-but-32-bytes-long")
///     .with_owner("it-owner@example.com")
///     .with_store(Arc::new(MemoryStore::new()))
///     .build()
///     .unwrap();
/// assert!(!format!("{email:?}").contains("not-a-real-key"));
/// let err = EmailBuilder::new().with_smtp("h", 25, SmtpSecurity::Plain).build().unwrap_err();
/// assert!(err.to_string().contains("from"));
/// ```
#[derive(Debug, Default)]
pub struct EmailBuilder {
    values: BTreeMap<&'static str, String>,
    password: Option<Secret>,
    signing_key: Option<Secret>,
    root_ca_pem: Option<Vec<u8>>,
    owners: BTreeMap<AppId, String>,
    state: Option<Arc<dyn EmailState>>,
    clock: Option<Arc<dyn Clock>>,
    pickup_dir: Option<std::path::PathBuf>,
}

impl EmailBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder from the environment: each `OFFBOARD_EMAIL_<KEY>` that is set is applied with
    /// [`with_config`](Self::with_config): `OFFBOARD_EMAIL_SMTP_HOST`, `OFFBOARD_EMAIL_SMTP_PORT`,
    /// `OFFBOARD_EMAIL_SECURITY`, `OFFBOARD_EMAIL_USERNAME`, `OFFBOARD_EMAIL_PASSWORD`,
    /// `OFFBOARD_EMAIL_ROOT_CA` (a PEM file path), `OFFBOARD_EMAIL_FROM`,
    /// `OFFBOARD_EMAIL_TASK_URL`, `OFFBOARD_EMAIL_SIGNING_KEY`, `OFFBOARD_EMAIL_TOKEN_TTL`,
    /// `OFFBOARD_EMAIL_REMIND_EVERY`, `OFFBOARD_EMAIL_MAX_REMINDERS`,
    /// `OFFBOARD_EMAIL_ESCALATE_TO`, `OFFBOARD_EMAIL_OWNER`, `OFFBOARD_EMAIL_OWNERS`,
    /// `OFFBOARD_EMAIL_TIMEOUT`.
    pub fn from_env() -> Self {
        let mut b = Self::new();
        for key in ConfigKey::ALL {
            if let Ok(v) = std::env::var(key.env_var()) {
                b = b.with_config(key, v);
            }
        }
        b
    }

    /// Sets one value by key (for `root_ca`, a file path, read at `build`).
    pub fn with_config(mut self, key: ConfigKey, value: impl Into<String>) -> Self {
        let v = value.into();
        match key {
            ConfigKey::Password => self.password = Some(Secret::new(v)),
            ConfigKey::SigningKey => self.signing_key = Some(Secret::new(v)),
            other => {
                self.values.insert(other.as_str(), v);
            }
        }
        self
    }

    /// SMTP relay and security.
    pub fn with_smtp(self, host: impl Into<String>, port: u16, security: SmtpSecurity) -> Self {
        let sec = match security {
            SmtpSecurity::StartTls => "starttls",
            SmtpSecurity::ImplicitTls => "tls",
            SmtpSecurity::Plain => "plain",
        };
        self.with_config(ConfigKey::SmtpHost, host)
            .with_config(ConfigKey::SmtpPort, port.to_string())
            .with_config(ConfigKey::Security, sec)
    }

    /// Writes every message as an `.eml` file (RFC 5322, one per message, named by a UUID) into
    /// `dir` instead of sending it over SMTP: a mail server's pickup directory, or a demo or
    /// try-out without a mail server. The SMTP settings are then not needed, nor used. The
    /// directory must exist.
    pub fn with_pickup_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.pickup_dir = Some(dir.into());
        self
    }

    /// SMTP credentials.
    pub fn with_credentials(
        mut self,
        user: impl Into<String>,
        password: impl Into<Secret>,
    ) -> Self {
        self.values.insert("username", user.into());
        self.password = Some(password.into());
        self
    }

    /// An extra trusted root certificate (PEM bytes), e.g. a private CA.
    pub fn with_root_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_ca_pem = Some(pem.into());
        self
    }

    /// The sender address.
    pub fn with_from(self, from: impl Into<String>) -> Self {
        self.with_config(ConfigKey::From, from)
    }

    /// The host's task page base URL.
    pub fn with_task_url(self, url: impl Into<String>) -> Self {
        self.with_config(ConfigKey::TaskUrl, url)
    }

    /// The token signing key.
    pub fn with_signing_key(mut self, key: impl Into<Secret>) -> Self {
        self.signing_key = Some(key.into());
        self
    }

    /// How long a link works (default 30 days).
    pub fn with_token_ttl(self, ttl: Duration) -> Self {
        self.with_config(ConfigKey::TokenTtl, format!("{}s", ttl.as_secs()))
    }

    /// Reminder period (default 3 days).
    pub fn with_remind_every(self, every: Duration) -> Self {
        self.with_config(ConfigKey::RemindEvery, format!("{}s", every.as_secs()))
    }

    /// Reminders before escalating (default 3).
    pub fn with_max_reminders(self, n: u32) -> Self {
        self.with_config(ConfigKey::MaxReminders, n.to_string())
    }

    /// Escalation recipient.
    pub fn with_escalate_to(self, to: impl Into<String>) -> Self {
        self.with_config(ConfigKey::EscalateTo, to)
    }

    /// Default recipient for apps without their own owner.
    pub fn with_owner(self, owner: impl Into<String>) -> Self {
        self.with_config(ConfigKey::Owner, owner)
    }

    /// The owner of one app.
    pub fn with_app_owner(mut self, app: impl Into<AppId>, owner: impl Into<String>) -> Self {
        self.owners.insert(app.into(), owner.into());
        self
    }

    /// Where tasks are kept, when not in the engine's store ([`with_store`](Self::with_store)):
    /// e.g. a [`MemoryEmailState`](crate::MemoryEmailState) for tests and demos, which loses
    /// them on restart.
    pub fn with_state(mut self, state: Arc<dyn EmailState>) -> Self {
        self.state = Some(state);
        self
    }

    /// Keeps tasks in the engine's store ([`StoreEmailState`]): pass the store the engine is
    /// built with. A restart then re-sends nothing, and links mailed before it still work.
    /// One of this or [`with_state`](Self::with_state) is required.
    pub fn with_store(self, store: Arc<dyn Store>) -> Self {
        self.with_state(Arc::new(StoreEmailState::new(store)))
    }

    /// The clock reminders and tokens use (default: [`TokioClock`]).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Validates the configuration.
    ///
    /// # Errors
    /// `Config` naming the first missing or invalid key.
    pub fn config(&self) -> Result<EmailConfig> {
        let get = |k: ConfigKey| {
            self.values
                .get(k.as_str())
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        };
        let need = |k: ConfigKey| get(k).ok_or_else(|| Error::config(k.as_str(), "missing"));
        let smtp_host = match &self.pickup_dir {
            Some(_) => get(ConfigKey::SmtpHost).unwrap_or_default(),
            None => need(ConfigKey::SmtpHost)?,
        };
        let security = match get(ConfigKey::Security) {
            None => SmtpSecurity::StartTls,
            Some(s) => s.parse()?,
        };
        let smtp_port = match get(ConfigKey::SmtpPort) {
            None => match security {
                SmtpSecurity::StartTls => 587,
                SmtpSecurity::ImplicitTls => 465,
                SmtpSecurity::Plain => 25,
            },
            Some(p) => p
                .parse()
                .map_err(|_| Error::config("smtp_port", "not a port number"))?,
        };
        let from = need(ConfigKey::From)?;
        if !looks_like_address(&from) {
            return Err(Error::config("from", "not an email address"));
        }
        let task_url = need(ConfigKey::TaskUrl)?;
        let allow_plain_http = match get(ConfigKey::AllowPlainHttp).as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => return Err(Error::config("allow_plain_http", "not true or false")),
        };
        let parsed = url::Url::parse(&task_url)
            .ok()
            .filter(|u| u.host().is_some())
            .ok_or_else(|| Error::config("task_url", "not an http(s) URL"))?;
        offboard_http::require_https(&parsed, "task_url", allow_plain_http)?;
        let signing_key = match &self.signing_key {
            Some(k) if k.expose().len() >= MIN_SIGNING_KEY => k.clone(),
            Some(_) => {
                return Err(Error::config(
                    "signing_key",
                    format!("shorter than {MIN_SIGNING_KEY} bytes"),
                ));
            }
            None => return Err(Error::config("signing_key", "missing")),
        };
        const DAY: u64 = 86_400;
        // Bounded, so every date computed from them stays on the calendar.
        let dur = |k: ConfigKey, unit: u64, default: Duration, max: Duration| -> Result<Duration> {
            match get(k) {
                None => Ok(default),
                Some(v) => match parse_duration(&v, unit).filter(|d| !d.is_zero()) {
                    Some(d) if d <= max => Ok(d),
                    Some(_) => Err(Error::config(
                        k.as_str(),
                        format!("longer than the limit of {}s", max.as_secs()),
                    )),
                    None => Err(Error::config(k.as_str(), "not a positive duration")),
                },
            }
        };
        let year = Duration::from_secs(365 * DAY);
        let token_ttl = dur(
            ConfigKey::TokenTtl,
            DAY,
            Duration::from_secs(30 * DAY),
            year,
        )?;
        let remind_every = dur(
            ConfigKey::RemindEvery,
            DAY,
            Duration::from_secs(3 * DAY),
            year,
        )?;
        let timeout = dur(
            ConfigKey::Timeout,
            1,
            Duration::from_secs(30),
            Duration::from_secs(600),
        )?;
        let max_reminders = match get(ConfigKey::MaxReminders) {
            None => 3,
            Some(v) => v
                .parse()
                .map_err(|_| Error::config("max_reminders", "not a number"))?,
        };
        let escalate_to = get(ConfigKey::EscalateTo);
        if let Some(e) = &escalate_to
            && !looks_like_address(e)
        {
            return Err(Error::config("escalate_to", "not an email address"));
        }
        let owner = get(ConfigKey::Owner);
        let mut owners = self.owners.clone();
        if let Some(list) = get(ConfigKey::Owners) {
            for pair in list.split(',').filter(|p| !p.trim().is_empty()) {
                let (app, addr) = pair
                    .split_once('=')
                    .ok_or_else(|| Error::config("owners", "expected app=address,..."))?;
                owners.insert(AppId::new(app.trim()), addr.trim().to_string());
            }
        }
        for (app, addr) in owners
            .iter()
            .map(|(a, o)| (a.to_string(), o))
            .chain(owner.iter().map(|o| ("owner".to_string(), o)))
        {
            if !looks_like_address(addr) {
                return Err(Error::config(
                    format!("owners.{app}"),
                    "not an email address",
                ));
            }
        }
        if owner.is_none() && owners.is_empty() {
            return Err(Error::config("owner", "missing (set owner or owners)"));
        }
        let root_ca_pem = match (&self.root_ca_pem, get(ConfigKey::RootCa)) {
            (Some(pem), _) => Some(pem.clone()),
            (None, Some(path)) => Some(
                std::fs::read(&path)
                    .map_err(|e| Error::config("root_ca", format!("cannot read {path}: {e}")))?,
            ),
            (None, None) => None,
        };
        Ok(EmailConfig {
            smtp_host,
            smtp_port,
            security,
            username: get(ConfigKey::Username),
            password: self.password.clone().filter(|p| !p.is_empty()),
            root_ca_pem,
            from,
            task_url: task_url.trim_end_matches('/').to_string(),
            signing_key,
            token_ttl,
            remind_every,
            max_reminders,
            escalate_to,
            owner,
            owners,
            timeout,
            pickup_dir: self.pickup_dir.clone(),
        })
    }

    /// Validates and builds the delegate.
    ///
    /// # Errors
    /// `Config` naming the missing or invalid key (TLS set-up included); `Config` key
    /// `store` when neither [`with_store`](Self::with_store) nor
    /// [`with_state`](Self::with_state) said where tasks are kept (there is no silent
    /// in-memory default: it would mail every owner again after a restart).
    pub fn build(self) -> Result<EmailDelegate> {
        let config = self.config()?;
        let state = self.state.ok_or_else(|| {
            Error::config(
                "store",
                "the email delegate keeps its tasks in the engine's store: call with_store \
                 (or with_state)",
            )
        })?;
        let clock = self.clock.unwrap_or_else(|| Arc::new(TokioClock::new()));
        EmailDelegate::new(config, state, clock)
    }
}

fn looks_like_address(s: &str) -> bool {
    s.parse::<lettre::Address>().is_ok()
}

/// `"3"` (in `unit` seconds), `"3d"`, `"12h"`, `"30m"`, `"45s"`, `"500ms"`.
fn parse_duration(v: &str, unit: u64) -> Option<Duration> {
    let v = v.trim();
    let (num, mult_ms) = if let Some(n) = v.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = v.strip_suffix('d') {
        (n, 86_400_000)
    } else if let Some(n) = v.strip_suffix('h') {
        (n, 3_600_000)
    } else if let Some(n) = v.strip_suffix('m') {
        (n, 60_000)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1_000)
    } else {
        (v, unit * 1_000)
    };
    let n: u64 = num.trim().parse().ok()?;
    n.checked_mul(mult_ms).map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> EmailBuilder {
        EmailBuilder::new()
            .with_smtp("127.0.0.1", 2525, SmtpSecurity::Plain)
            .with_from("offboard@example.com")
            .with_task_url("https://host.example/tasks/")
            .with_signing_key("0123456789abcdef0123456789abcdef")
            .with_owner("owner@example.com")
    }

    #[test]
    fn names_the_missing_or_bad_key() {
        for (b, key) in [
            (EmailBuilder::new(), "smtp_host"),
            (full().with_config(ConfigKey::From, ""), "from"),
            (full().with_from("not an address"), "from"),
            (
                full().with_config(ConfigKey::TaskUrl, "ftp://x"),
                "task_url",
            ),
            (full().with_signing_key("short"), "signing_key"),
            // 31 bytes: HMAC-SHA256 keys get the hash's 32 bytes at least.
            (
                full().with_signing_key("0123456789abcdef0123456789abcde"),
                "signing_key",
            ),
            // A link that works for a million years (this panicked `open`).
            (
                full().with_token_ttl(Duration::from_secs(1_000_000 * 365 * 86_400)),
                "token_ttl",
            ),
            (full().with_config(ConfigKey::TokenTtl, "366"), "token_ttl"),
            (
                full().with_config(ConfigKey::RemindEvery, "99999999999"),
                "remind_every",
            ),
            (full().with_config(ConfigKey::Timeout, "86400s"), "timeout"),
            // A link carries a token: never over plain http beyond this machine.
            (
                full().with_config(ConfigKey::TaskUrl, "http://host.example/tasks"),
                "task_url",
            ),
            (
                full()
                    .with_config(ConfigKey::TaskUrl, "http://host.example/tasks")
                    .with_config(ConfigKey::AllowPlainHttp, "true"),
                "task_url",
            ),
            (
                full().with_config(ConfigKey::RemindEvery, "often"),
                "remind_every",
            ),
            (full().with_config(ConfigKey::Security, "ssl3"), "security"),
            (full().with_app_owner("crm", "nope"), "owners.crm"),
            (
                full().with_config(ConfigKey::RootCa, "/no/such/file.pem"),
                "root_ca",
            ),
        ] {
            let e = b.config().unwrap_err();
            assert!(
                e.context().any(|(k, v)| k == "key" && v == key),
                "{key}: {e}"
            );
        }
    }

    /// Guards durable task state: a delegate built without the engine's store (or another
    /// state) is refused, where it used to keep its tasks in memory and mail every owner again
    /// after a restart.
    #[test]
    fn building_without_a_store_is_a_config_error() {
        let e = full().build().unwrap_err();
        assert_eq!(e.kind(), offboard_core::ErrorKind::Config);
        assert!(e.context().any(|(k, v)| k == "key" && v == "store"), "{e}");
        let store: Arc<dyn Store> = Arc::new(offboard_core::MemoryStore::new());
        full().with_store(store).build().unwrap();
    }

    #[test]
    fn defaults_units_and_aliases() {
        let c = full().config().unwrap();
        assert_eq!(c.remind_every, Duration::from_secs(3 * 86_400));
        assert_eq!(c.max_reminders, 3);
        assert_eq!(c.task_url, "https://host.example/tasks");
        let c = full()
            .with_config(ConfigKey::RemindEvery, "2")
            .with_config(
                ConfigKey::Owners,
                "crm=crm-owner@example.com, hr=hr@example.com",
            )
            .config()
            .unwrap();
        assert_eq!(c.remind_every, Duration::from_secs(2 * 86_400));
        assert_eq!(c.owners.len(), 2);
        assert_eq!(
            parse_duration("90m", 86_400),
            Some(Duration::from_secs(5400))
        );
        assert_eq!(
            "OFFBOARD_EMAIL_SMTP_HOST".parse::<ConfigKey>().unwrap(),
            ConfigKey::SmtpHost
        );
        assert_eq!(
            ConfigKey::SigningKey.env_var(),
            "OFFBOARD_EMAIL_SIGNING_KEY"
        );
        let c = EmailBuilder::new()
            .with_config(ConfigKey::SmtpHost, "smtp.example.com")
            .with_config(ConfigKey::Security, "tls")
            .with_from("a@example.com")
            .with_task_url("https://h")
            .with_signing_key("0123456789abcdef0123456789abcdef")
            .with_owner("o@example.com")
            .config()
            .unwrap();
        assert_eq!((c.security, c.smtp_port), (SmtpSecurity::ImplicitTls, 465));
    }
}
