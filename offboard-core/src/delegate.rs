//! The [`Delegate`] trait: asking a human to remove access no connector can.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::budget::RateBudget;
use crate::error::Result;
use crate::model::{AppId, Person};
use crate::run::{DelegateVia, RunId, TaskId, Ticket};

/// What a human is asked to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DelegationRequest {
    /// The run.
    pub run: RunId,
    /// The task.
    pub task: TaskId,
    /// The app whose access is to be removed.
    pub app: AppId,
    /// The person leaving.
    pub person: Person,
    /// When it should be done.
    pub due: DateTime<Utc>,
    /// Stable across retries: a delegate finds the ticket an earlier attempt opened by it.
    pub idempotency_key: String,
    /// The account's login in the app, when known.
    pub login: Option<String>,
}

impl DelegationRequest {
    /// A request.
    pub fn new(
        run: RunId,
        task: TaskId,
        app: AppId,
        person: Person,
        due: DateTime<Utc>,
        idempotency_key: impl Into<String>,
    ) -> Self {
        Self {
            run,
            task,
            app,
            person,
            due,
            idempotency_key: idempotency_key.into(),
            login: None,
        }
    }
}

/// A human task's state as last read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum TicketStatus {
    /// Not done yet.
    Open {
        /// The ticket as now read (assignee, link).
        ticket: Ticket,
    },
    /// Reached the configured "done" status.
    Done {
        /// The ticket as now read.
        ticket: Ticket,
        /// Who marked it done, when known.
        by: Option<String>,
    },
    /// Closed without the work done (e.g. resolved "Won't Do"): the access was not removed.
    /// The task fails with [`ErrorKind::Declined`](crate::ErrorKind::Declined) and the reason.
    Declined {
        /// The ticket as now read.
        ticket: Ticket,
        /// Why, as the ticket says (e.g. `resolution "Won't Do"`).
        reason: String,
    },
}

/// Opens and watches human tasks.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait Delegate: Send + Sync + fmt::Debug {
    /// Which kind of delegate this is.
    fn via(&self) -> DelegateVia;

    /// Opens the human task.
    ///
    /// # Behavior
    /// Idempotent by `request.idempotency_key`: if an earlier attempt (even one that crashed
    /// before its result was stored) opened a ticket, that ticket is returned and no second one
    /// is filed.
    async fn open(&self, request: &DelegationRequest) -> Result<Ticket>;

    /// Reads the task's state.
    ///
    /// # Behavior
    /// Reads only. A ticket that was done and is open again reads `Open`.
    async fn status(&self, ticket: &Ticket) -> Result<TicketStatus>;

    /// Makes every vendor request of this delegate draw from `budget` from now on (see
    /// [`crate::Connector::use_rate_budget`]); the default does nothing.
    fn use_rate_budget(&self, budget: Arc<dyn RateBudget>) {
        let _ = budget;
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<D: Delegate + ?Sized> Delegate for Arc<D> {
    fn via(&self) -> DelegateVia {
        (**self).via()
    }
    async fn open(&self, request: &DelegationRequest) -> Result<Ticket> {
        (**self).open(request).await
    }
    async fn status(&self, ticket: &Ticket) -> Result<TicketStatus> {
        (**self).status(ticket).await
    }
    fn use_rate_budget(&self, budget: Arc<dyn RateBudget>) {
        (**self).use_rate_budget(budget)
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<D: Delegate + ?Sized> Delegate for Box<D> {
    fn via(&self) -> DelegateVia {
        (**self).via()
    }
    async fn open(&self, request: &DelegationRequest) -> Result<Ticket> {
        (**self).open(request).await
    }
    async fn status(&self, ticket: &Ticket) -> Result<TicketStatus> {
        (**self).status(ticket).await
    }
    fn use_rate_budget(&self, budget: Arc<dyn RateBudget>) {
        (**self).use_rate_budget(budget)
    }
}
