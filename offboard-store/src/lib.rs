//! Durable [`offboard_core::Store`] backends for offboard.
//!
//! - [`SqliteStore`]: the embedded default, one file in WAL mode. One process with SQLite
//!   serves a company.
//! - `PostgresStore` (feature `postgres`, on by default): many workers on many machines share
//!   one database; claims use `FOR UPDATE SKIP LOCKED`.
//! - [`report`]: compliance reports per run and per period (streamed), as CSV, JSON and HTML,
//!   built from each run's chained audit events.
//! - [`JsonLinesSink`]: an [`offboard_core::AuditSink`] that appends one canonical JSON event
//!   per line to a file.
//! - [`JsonLinesCheckpointSink`] (and `ObjectStoreCheckpointSink`, feature `object-store`):
//!   where the engine writes signed checkpoints of the audit chain
//!   ([`offboard_core::checkpoint`]); `verify_audit_against` checks a store's chain against
//!   them, which finds a deleted tail or a re-sealed chain that the hashes alone cannot.
//!
//! Both stores keep their SQL per dialect (`migrations/<dialect>`, `queries/<dialect>`),
//! embedded in the crate; [`SqliteStore::run_migrations`] (and its PostgreSQL twin) bring a
//! database up to date, record what they applied in a table of their own, and refuse a
//! database that is newer than the code or that is not theirs. Both pass
//! [`offboard_core::store::conformance::run_all`], and both can check their audit trail's hash
//! chain with `verify_audit`, naming the first altered, inserted or missing event.
//!
//! A commit is planned once for both (`plan`: its steps, in order, and what each outcome
//! means) and run by each dialect's executor; rows are decoded once for both (`rows`).
#![forbid(unsafe_code)]

#[cfg(feature = "postgres")]
mod budget;
mod checkpoints;
mod codec;
mod erase;
mod jsonl;
mod plan;
#[cfg(feature = "postgres")]
mod postgres;
pub mod report;
mod rows;
mod sql;
mod sqlite;

#[cfg(feature = "postgres")]
pub use budget::{BudgetTuning, PostgresRateBudget};
pub use checkpoints::JsonLinesCheckpointSink;
#[cfg(feature = "object-store")]
pub use checkpoints::ObjectStoreCheckpointSink;
pub use codec::AuditVerification;
pub use jsonl::JsonLinesSink;
pub use offboard_core::Store;
#[cfg(feature = "postgres")]
pub use postgres::{
    POSTGRES_MIGRATIONS_TABLE, POSTGRES_SCHEMA, POSTGRES_SCHEMA_VERSION, PostgresClock,
    PostgresStore,
};
pub use sqlite::{SQLITE_MIGRATIONS_TABLE, SQLITE_SCHEMA_VERSION, SqliteStore};
