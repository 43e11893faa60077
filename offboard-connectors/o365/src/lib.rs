//! offboard connector for Office 365: licences, Exchange mailbox, OneDrive.
//!
//! This crate is filled by its own issue; it exists so the workspace has its final shape.
#![forbid(unsafe_code)]
