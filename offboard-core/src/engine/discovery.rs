//! Discovery: who has which accounts, recorded in the inventory a run's scope is drawn from.
//!
//! [`Engine::sync_inventory`] asks every connector registered with the engine to look the
//! person up and, where the connector discovers, to list what the account reaches (the apps
//! behind Okta app links, the OAuth clients holding Google tokens). Everything found is
//! upserted into the store's inventory, which keeps first and last seen. The plan then scopes a
//! run to every app ever discovered for the person; apps without a connector follow the
//! policy's `unknown_apps` (delegated or ignored).
//!
//! Every connector call goes through that connector's limiter (rate, concurrency, timeout),
//! as actions do. One connector failing never fails the sync: its error is reported and the
//! others are recorded.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};

use super::{ConnectorEntry, Engine};
use crate::error::{ErrorKind, ErrorRecord, Result};
use crate::model::{AccountRef, AppId, Person, PersonId};

/// What one connector found for a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectorSync {
    /// The connector's app.
    pub app: AppId,
    /// The person's account there (`None`: no account, or the lookup failed).
    pub account: Option<AccountRef>,
    /// Accounts and grants the account reaches (third-party apps seen through an IdP).
    pub discovered: Vec<AccountRef>,
    /// Why the lookup or discovery failed; what was found before the failure is kept.
    pub error: Option<ErrorRecord>,
    /// Time spent, waiting for the limiter included.
    pub took: Duration,
}

/// What a discovery sync of one person found and recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncReport {
    /// The person.
    pub person: PersonId,
    /// When the accounts were recorded as seen.
    pub at: DateTime<Utc>,
    /// Per connector, in app order.
    pub connectors: Vec<ConnectorSync>,
}

impl SyncReport {
    /// Every account recorded in the inventory by this sync.
    pub fn recorded(&self) -> Vec<&AccountRef> {
        self.connectors
            .iter()
            .flat_map(|c| c.account.iter().chain(&c.discovered))
            .collect()
    }

    /// The connectors that failed, with their errors.
    pub fn failures(&self) -> Vec<(&AppId, &ErrorRecord)> {
        self.connectors
            .iter()
            .filter_map(|c| c.error.as_ref().map(|e| (&c.app, e)))
            .collect()
    }
}

/// How many people [`Engine::sync_inventory_all`] syncs at once (connector limiters still
/// bound the calls).
const SYNC_CONCURRENCY: usize = 8;

impl Engine {
    /// Looks the person up in every connector and records what is found in the inventory.
    ///
    /// # Behavior
    /// - Each connector is asked concurrently, through its limiter: a lookup (by the account id
    ///   the inventory already knows, else by the person's addresses), then, when the
    ///   connector discovers, [`crate::Connector::discover`] on the account found.
    /// - Found accounts and discovered ones are upserted together at the engine's current
    ///   time; the store keeps `first_seen` and moves `last_seen`.
    /// - A connector's failure (lookup or discovery) is reported in its [`ConnectorSync`];
    ///   the others are recorded regardless. Nothing is removed from the inventory: a run's
    ///   scope is everything ever discovered.
    ///
    /// # Errors
    /// Store errors only.
    pub async fn sync_inventory(&self, person: &Person) -> Result<SyncReport> {
        let inner = &self.inner;
        let inventory = inner.store.accounts(&person.id).await?;
        let connectors = futures::future::join_all(inner.connectors.iter().map(|(app, entry)| {
            let known = inventory
                .iter()
                .filter(|a| &a.account.app == app && !a.account.external_id.is_empty())
                .max_by_key(|a| a.last_seen)
                .map(|a| a.account.external_id.clone());
            self.sync_one(app, entry, person, known)
        }))
        .await;
        let at = inner.clock.now();
        let report = SyncReport {
            person: person.id.clone(),
            at,
            connectors,
        };
        let accounts: Vec<AccountRef> = report.recorded().into_iter().cloned().collect();
        if !accounts.is_empty() {
            inner
                .store
                .upsert_accounts(&person.id, &accounts, at)
                .await?;
        }
        for (app, e) in report.failures() {
            tracing::warn!(person = %person.id, %app, error = %e.message, "discovery failed for one connector");
        }
        Ok(report)
    }

    /// [`Engine::sync_inventory`] for many people, a few at a time; reports in input order.
    ///
    /// # Errors
    /// The first store error.
    pub async fn sync_inventory_all(&self, people: &[Person]) -> Result<Vec<SyncReport>> {
        futures::stream::iter(people)
            .map(|p| self.sync_inventory(p))
            .buffered(SYNC_CONCURRENCY)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect()
    }

    async fn sync_one(
        &self,
        app: &AppId,
        entry: &ConnectorEntry,
        person: &Person,
        known: Option<String>,
    ) -> ConnectorSync {
        let started = tokio::time::Instant::now();
        let mut sync = ConnectorSync {
            app: app.clone(),
            account: None,
            discovered: Vec::new(),
            error: None,
            took: Duration::ZERO,
        };
        match self.inner.lookup(entry, person, known).await {
            Ok(found) => sync.account = found,
            Err(e) => sync.error = Some(e.record()),
        }
        if let Some(account) = &sync.account
            && entry.connector.capabilities().discover
        {
            let _permit = entry.limiter.acquire().await;
            match entry
                .limiter
                .timed("discover", entry.connector.discover(account))
                .await
            {
                Ok(found) => sync.discovered = found,
                Err(e) if e.kind() == ErrorKind::Unsupported => {}
                Err(e) => sync.error = Some(e.with_context("app", app).record()),
            }
        }
        sync.took = started.elapsed();
        sync
    }
}
