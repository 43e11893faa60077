//! offboard delegate by email (SMTP).
//!
//! This crate is filled by its own issue; it exists so the workspace has its final shape.
#![forbid(unsafe_code)]
