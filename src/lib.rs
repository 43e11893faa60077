#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub use offboard_core::*;

/// Durable stores: SQLite (the embedded default) and PostgreSQL (feature `stores`).
#[cfg(feature = "stores")]
pub use offboard_store as stores;
