//! What the commands work on: the store backend and the engine the configuration describes.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use offboard::ad::AdConnector;
use offboard::engine::LifecycleRules;
use offboard::google::GoogleSource;
use offboard::okta::OktaSource;
use offboard::source::hr::HrFeed;
use offboard::stores::report::{Format, PeriodSummary, write_period};
use offboard::stores::{AuditVerification, PostgresStore, SqliteStore};
use offboard::{Engine, EngineBuilder, Error, Policy, Result, Store};
use tokio::io::AsyncWrite;

use crate::config::{self, Settings, StoreSpec};

/// How often `Engine::start`'s loops would poll a source (the CLI polls on demand).
const SOURCE_EVERY: Duration = Duration::from_secs(60);

/// The store the configuration names.
#[derive(Debug, Clone)]
pub(crate) enum Backend {
    /// A SQLite file.
    Sqlite(Arc<SqliteStore>),
    /// PostgreSQL.
    Postgres(Arc<PostgresStore>),
}

impl Backend {
    /// Opens (or connects to) the store, bringing its schema up to date.
    pub(crate) async fn open(spec: &StoreSpec) -> Result<Self> {
        Ok(match spec {
            StoreSpec::Sqlite(path) => Self::Sqlite(Arc::new(SqliteStore::open(path).await?)),
            StoreSpec::Postgres { url, password } => {
                let url = StoreSpec::postgres_url(url, password.as_ref())?;
                Self::Postgres(Arc::new(PostgresStore::connect(url.expose()).await?))
            }
        })
    }

    /// The store, for the engine.
    pub(crate) fn store(&self) -> Arc<dyn Store> {
        match self {
            Self::Sqlite(s) => s.clone(),
            Self::Postgres(s) => s.clone(),
        }
    }

    /// Verifies the audit trail's hash chain in the database.
    pub(crate) async fn verify_audit(&self) -> Result<AuditVerification> {
        match self {
            Self::Sqlite(s) => s.verify_audit().await,
            Self::Postgres(s) => s.verify_audit().await,
        }
    }

    /// Verifies the audit trail's hash chain and that it still holds every signed checkpoint.
    pub(crate) async fn verify_audit_against(
        &self,
        checkpoints: &[offboard::Checkpoint],
        verifier: &offboard::CheckpointVerifier,
    ) -> Result<AuditVerification> {
        match self {
            Self::Sqlite(s) => s.verify_audit_against(checkpoints, verifier).await,
            Self::Postgres(s) => s.verify_audit_against(checkpoints, verifier).await,
        }
    }

    /// Writes the compliance report of the runs created in `[since, until)`.
    pub(crate) async fn write_period<W>(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        format: Format,
        out: &mut W,
    ) -> Result<PeriodSummary>
    where
        W: AsyncWrite + Unpin + Send + ?Sized,
    {
        match self {
            Self::Sqlite(s) => write_period(s.as_ref(), since, until, format, out).await,
            Self::Postgres(s) => write_period(s.as_ref(), since, until, format, out).await,
        }
    }
}

/// Reads the policy file.
pub(crate) fn policy(settings: &Settings) -> Result<Policy> {
    let path = &settings.policy;
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::config("policy", format!("cannot read {}: {e}", path.display())))?;
    Policy::from_toml(&text)
        .map_err(|e| Error::config("policy", format!("{}: {e}", path.display())))
}

/// Builds the engine: the store, the policy, every configured connector and delegate, and
/// (`with_sources`) the configured sources of truth.
pub(crate) async fn engine(
    settings: &Settings,
    backend: &Backend,
    with_sources: bool,
) -> Result<Engine> {
    let store = backend.store();
    let mut builder = Engine::builder()
        .store(store.clone())
        .policy(policy(settings)?);
    let mut sources: Vec<Arc<dyn offboard::source::SourceOfTruth>> = Vec::new();
    let wants = |kind: &str| with_sources && settings.sources.contains_key(kind);
    for (kind, values) in &settings.connectors {
        builder = match kind.as_str() {
            "okta" => {
                let c = Arc::new(config::okta(values)?);
                if wants("okta") {
                    sources.push(Arc::new(OktaSource::for_connector(&c).with_name("okta")));
                }
                builder.connector(c)
            }
            "google" => {
                let c = Arc::new(config::google(values)?);
                if let Some(s) = settings.sources.get("google").filter(|_| wants("google")) {
                    sources.push(Arc::new(google_source(&c, s)));
                }
                builder.connector(c)
            }
            "entra" => {
                let c = Arc::new(config::entra(values)?);
                if wants("entra") {
                    sources.push(Arc::new(
                        offboard::entra::EntraSource::for_connector(&c).with_name("entra"),
                    ));
                }
                builder.connector(c)
            }
            "o365" => builder.connector(Arc::new(config::o365(values)?)),
            "ad" => builder.connector(Arc::new(AdConnector::connect(config::ad(values)?).await?)),
            other => return Err(Error::config(other.to_owned(), "not a connector kind")),
        };
    }
    for (app, values) in &settings.scim {
        builder = builder.connector(Arc::new(config::scim(app, values)?));
    }
    builder = delegates(builder, settings, store)?;
    if let Some(path) = settings.sources.get("hr").and_then(|s| s.path.clone())
        && with_sources
    {
        sources.push(Arc::new(HrFeed::new("hr", path)));
    }
    for s in sources {
        builder = builder.source(s, SOURCE_EVERY);
    }
    builder
        .lifecycle(LifecycleRules {
            domains: settings.domains.clone(),
            ..LifecycleRules::default()
        })
        .build()
}

fn google_source(
    c: &offboard::google::GoogleConnector,
    s: &config::SourceSettings,
) -> GoogleSource {
    let mut source = GoogleSource::for_connector(c).with_name("google");
    if let Some(d) = &s.domain {
        source = source.with_domain(d);
    }
    if let Some(c) = &s.customer {
        source = source.with_customer(c);
    }
    source
}

fn delegates(
    mut builder: EngineBuilder,
    settings: &Settings,
    store: Arc<dyn Store>,
) -> Result<EngineBuilder> {
    if let Some(v) = settings.delegates.get("jira") {
        builder = builder.delegate(Arc::new(config::jira(v)?));
    }
    if let Some(v) = settings.delegates.get("email") {
        builder = builder.delegate(Arc::new(config::email(v)?.with_store(store).build()?));
    }
    Ok(builder)
}

/// The names of the configured sources of truth, as the engine knows them.
pub(crate) fn source_names(settings: &Settings) -> Vec<String> {
    settings.sources.keys().cloned().collect()
}
