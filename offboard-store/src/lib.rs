//! Durable [`offboard_core::Store`] backends: SQLite (the embedded default) and PostgreSQL
//! (many workers). Filled by the store issue; until then hosts use
//! `offboard_core::memory::MemoryStore`.
#![forbid(unsafe_code)]

pub use offboard_core::Store;
