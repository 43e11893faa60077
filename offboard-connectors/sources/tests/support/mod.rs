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

/// The batch a full-scan source under test reads per call: one page a call for the restart
/// rule's small pages (so that a crash falls mid-listing), the sources' default 5,000 people at
/// the vendor's page size (the benchmark).
pub(crate) fn batch(page_size: u32, max_page: u32) -> usize {
    if page_size < max_page { 1 } else { 5_000 }
}
