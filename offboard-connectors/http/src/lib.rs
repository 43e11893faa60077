//! Shared REST plumbing for offboard connectors: client, auth token providers, throttling, retries.
//!
//! This crate is filled by its own issue; it exists so the workspace has its final shape.
#![forbid(unsafe_code)]
