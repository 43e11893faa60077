//! Each vendor's simulated tenant as the source conformance suite drives it
//! ([`offboard_testkit::suite::source::SourceTenant`]): shared by the conformance tests and
//! the detection benchmark (`benches/detect.rs`), one module per vendor.
#![allow(dead_code)]

pub(crate) mod adp;
pub(crate) mod bamboohr;
pub(crate) mod checks;
pub(crate) mod hibob;
pub(crate) mod jumpcloud;
pub(crate) mod namely;
pub(crate) mod onelogin;
pub(crate) mod paylocity;
pub(crate) mod personio;
pub(crate) mod sailpoint;
pub(crate) mod successfactors;
pub(crate) mod workday;
