//! [`Engine::verify`]: re-reading every system a run touched ([`VerificationReport`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Engine;
use crate::audit::{AuditEvent, AuditKind};
use crate::connector::Connector;
use crate::error::Result;
use crate::model::AppId;
use crate::run::{RunId, TaskKind};

/// One app's verification result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppVerification {
    /// The app.
    pub app: AppId,
    /// Whether no access remains (`None`: could not be checked).
    pub revoked: Option<bool>,
    /// Access still found.
    pub remaining: Vec<String>,
    /// Why it could not be checked.
    pub error: Option<String>,
}

/// What a verification pass found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerificationReport {
    /// The run.
    pub run: RunId,
    /// When.
    pub at: DateTime<Utc>,
    /// Per app.
    pub apps: Vec<AppVerification>,
}

impl VerificationReport {
    /// Checked accounts with no access left, over checked accounts (1.0 when none checked).
    pub fn accuracy(&self) -> f64 {
        let checked: Vec<bool> = self.apps.iter().filter_map(|a| a.revoked).collect();
        if checked.is_empty() {
            return 1.0;
        }
        checked.iter().filter(|r| **r).count() as f64 / checked.len() as f64
    }

    /// Whether every checked account is revoked and none was uncheckable.
    pub fn all_revoked(&self) -> bool {
        self.apps.iter().all(|a| a.revoked == Some(true))
    }

    /// The apps that could not be checked, each with why (outside [`Self::accuracy`]).
    pub fn unchecked(&self) -> Vec<(&AppId, &str)> {
        self.apps
            .iter()
            .filter(|a| a.revoked.is_none())
            .map(|a| (&a.app, a.error.as_deref().unwrap_or("not checked")))
            .collect()
    }
}

impl Engine {
    /// Re-reads every system the run touched and reports access left per app.
    ///
    /// # Behavior
    /// Reads only; records a `verified` audit event with the result. For every app of the run
    /// (ignored apps aside) the person is looked up again exactly as planning does (the known
    /// account id, then the person's addresses), so an account created after planning is
    /// found and checked. No account is `revoked: true`; an ambiguous or failed lookup, a
    /// failed check, or an app no connector can verify is `revoked: None` with the reason,
    /// never `true`. [`VerificationReport::accuracy`] counts only what was checked and
    /// [`VerificationReport::unchecked`] lists the rest.
    ///
    /// # Errors
    /// `NotFound` for an unknown run; store errors.
    pub async fn verify(&self, run: RunId) -> Result<VerificationReport> {
        let inner = &self.inner;
        let r = inner.load(run).await?;
        let mut apps: BTreeMap<AppId, AppVerification> = BTreeMap::new();
        for t in &r.tasks {
            if apps.contains_key(&t.app) || matches!(t.kind, TaskKind::Ignore) {
                continue;
            }
            let unknown = |error: String| AppVerification {
                app: t.app.clone(),
                revoked: None,
                remaining: Vec::new(),
                error: Some(error),
            };
            let v = match inner.connectors.get(&t.app) {
                Some(conn) if conn.connector.capabilities().verify => {
                    let known_id = r
                        .tasks
                        .iter()
                        .filter(|x| x.app == t.app)
                        .filter_map(|x| x.account.as_ref())
                        .map(|a| a.external_id.clone())
                        .find(|id| !id.is_empty());
                    match inner.lookup(conn, &r.person, known_id).await {
                        Ok(None) => AppVerification {
                            app: t.app.clone(),
                            revoked: Some(true),
                            remaining: Vec::new(),
                            error: None,
                        },
                        Ok(Some(account)) => {
                            let _permit = conn.limiter.acquire().await;
                            match conn
                                .limiter
                                .timed("verify_revoked", conn.connector.verify_revoked(&account))
                                .await
                            {
                                Ok(v) => AppVerification {
                                    app: t.app.clone(),
                                    revoked: Some(v.revoked),
                                    remaining: v.remaining,
                                    error: None,
                                },
                                Err(e) => unknown(e.to_string()),
                            }
                        }
                        Err(e) => unknown(format!("lookup failed: {e}")),
                    }
                }
                Some(_) => unknown(format!("the {} connector cannot verify", t.app)),
                None => unknown("no connector can verify this app".into()),
            };
            apps.insert(t.app.clone(), v);
        }
        let report = VerificationReport {
            run,
            at: inner.clock.now(),
            apps: apps.into_values().collect(),
        };
        let remaining = report
            .apps
            .iter()
            .flat_map(|a| a.remaining.iter().map(move |r| format!("{}: {r}", a.app)))
            .collect();
        let event = AuditEvent::new(
            report.at,
            inner.worker_id.clone(),
            AuditKind::Verified {
                checked: report.apps.iter().filter(|a| a.revoked.is_some()).count() as u32,
                revoked: report
                    .apps
                    .iter()
                    .filter(|a| a.revoked == Some(true))
                    .count() as u32,
                remaining,
                apps: report.apps.clone(),
            },
        )
        .with_run(run);
        inner.append_audit(event).await?;
        Ok(report)
    }
}
