//! offboard-core: the domain model, the traits every backend implements, the pure state
//! machine and the engine that drives them.
//!
//! Core depends on no connector, store, HTTP client or vendor SDK. See `ARCHITECTURE.md` at the
//! repository root for how the pieces meet.
#![forbid(unsafe_code)]

pub mod action;
pub mod audit;
pub mod budget;
pub mod checkpoint;
pub mod connector;
pub mod delegate;
pub mod engine;
pub mod error;
pub mod evidence;
pub mod machine;
pub mod memory;
pub mod model;
pub mod notify;
pub mod policy;
pub mod run;
mod secret;
pub mod source;
pub mod store;

/// [mockall](https://docs.rs/mockall) mocks of the traits a host implements or plugs in, for
/// the host's own tests (feature `mock`): [`MockConnector`](mock::MockConnector),
/// [`MockDelegate`](mock::MockDelegate), [`MockSourceOfTruth`](mock::MockSourceOfTruth),
/// [`MockAuditSink`](mock::MockAuditSink) and [`MockNotifier`](mock::MockNotifier). Set
/// expectations with `expect_<method>()`; a call
/// nobody expected panics, so a test fails loudly.
#[cfg(feature = "mock")]
pub mod mock {
    pub use crate::audit::MockAuditSink;
    pub use crate::connector::MockConnector;
    pub use crate::delegate::MockDelegate;
    pub use crate::notify::MockNotifier;
    pub use crate::source::MockSourceOfTruth;
}

pub use action::{Action, ActionName, ActionSpec};
pub use audit::{AuditEvent, AuditKind, AuditSink, TracingSink};
pub use budget::{ConcurrencyPermit, MemoryRateBudget, Quota, RateBudget};
pub use checkpoint::{
    Checkpoint, CheckpointKey, CheckpointOutcome, CheckpointProblem, CheckpointSigner,
    CheckpointSink, CheckpointVerifier,
};
pub use connector::{
    Capabilities, Connector, ExecuteOptions, ExecuteReply, KeyMemo, LookupRequest, Snapshot,
    SnapshotPolicy, Verification,
};
pub use delegate::{Delegate, DelegationRequest, TicketStatus};
pub use engine::{Confirmation, Engine, EngineBuilder, Limits, Plan, RunRequest};
pub use error::{Error, ErrorKind, ErrorRecord, Result, ResultExt, RetryClass};
pub use evidence::{
    BundleProblem, BundleVerification, EvidenceBundle, build_bundle, verify_bundle,
};
pub use memory::{MemoryAuditSink, MemoryStore};
pub use model::{
    Account, AccountRef, AccountStatus, App, AppId, Lifecycle, Manager, PRIVILEGED_ATTRIBUTE,
    Person, PersonId,
};
pub use notify::{Notification, NotificationKind, Notifier, RunFacts};
pub use policy::Policy;
pub use run::{
    DelegateVia, Initiator, KeptTask, Outcome, RestoreLease, RetryPolicy, Run, RunId, RunState,
    SkipReason, Task, TaskId, TaskKind, TaskState, Ticket,
};
pub use secret::Secret;
pub use source::{ChangeBatch, Cursor, PersonRecord, SourceOfTruth};
pub use store::{AuditQuery, ClaimRequest, Commit, Lease, RunQuery, RunSummary, Store};
