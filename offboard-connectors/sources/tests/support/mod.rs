//! Each vendor's simulated tenant as the source conformance suite drives it
//! ([`offboard_testkit::suite::source::SourceTenant`]): shared by the conformance tests and
//! the detection benchmark (`benches/detect.rs`), one module per vendor.
#![allow(dead_code)]

pub(crate) mod paylocity;
pub(crate) mod successfactors;
