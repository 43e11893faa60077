//! offboard-sources: the sources of truth that are not also a connector. HR systems (BambooHR,
//! HiBob, Personio, Workday, Namely, ADP Workforce Now, Paylocity, SAP SuccessFactors) and the
//! identity platforms offboard reads but does not act on (JumpCloud, OneLogin, SailPoint
//! IdentityNow), each a [`SourceOfTruth`](offboard_core::source::SourceOfTruth) on
//! offboard-http.
//!
//! # Why one crate
//! A source only reads: it needs the vendor's authentication, paging and record shapes, and
//! none of the action code, scopes or simulators' write paths a connector crate carries. Each
//! is a few hundred lines; one crate per vendor would multiply manifests, features and compile
//! units for no separation a host can use. A vendor that later gains a connector moves its
//! source into that connector's crate (as Okta, Entra ID and Google Workspace have).
//!
//! # Two ways to read
//! - **Incremental**: where the vendor's API lists what changed since a time (a changed-since
//!   endpoint, an `updatedAt`/`lastModified` filter), each poll reads only that, from a
//!   timestamp kept in the cursor minus an overlap; what the overlap repeats is dropped by the
//!   fingerprints ([`scan::Scan`]).
//! - **Full scan and diff** otherwise: every poll lists everyone, page by page, and reports
//!   only who is new or changed ([`scan::Scan`], on
//!   [`Fingerprints`](offboard_core::source::Fingerprints)); someone last reported current and
//!   missing at the end of a scan is read directly and reported gone when the vendor no longer
//!   finds them.
//!
//! Every source keeps its whole state in its cursor, so a restart mid-scan continues where the
//! last persisted cursor stopped, and reading with the same cursor again repeats, never loses,
//! a change.
#![forbid(unsafe_code)]

pub mod adp;
pub mod bamboohr;
mod config;
mod full_scan;
pub mod hibob;
pub mod jumpcloud;
mod manager;
pub mod namely;
mod offset;
pub mod onelogin;
pub mod paylocity;
pub mod personio;
pub mod sailpoint;
pub mod scan;
pub mod successfactors;
pub mod workday;

pub use adp::{AdpConfig, AdpSource};
pub use bamboohr::{BambooHrConfig, BambooHrSource};
pub use hibob::{HibobConfig, HibobSource};
pub use jumpcloud::{JumpCloudConfig, JumpCloudSource};
pub use namely::{NamelyConfig, NamelySource};
pub use onelogin::{OneLoginConfig, OneLoginSource};
pub use paylocity::{PaylocityConfig, PaylocitySource};
pub use personio::{PersonioConfig, PersonioSource};
pub use sailpoint::{SailPointConfig, SailPointSource};
pub use successfactors::{SuccessFactorsConfig, SuccessFactorsSource};
pub use workday::{WorkdayColumns, WorkdayConfig, WorkdaySource};

/// What a read of one record sent: the answer, or `None` when the vendor answered 404 (the
/// record is not there). Every other error stays an error.
fn found(
    sent: offboard_core::Result<offboard_http::HttpResponse>,
) -> offboard_core::Result<Option<offboard_http::HttpResponse>> {
    match sent {
        Ok(r) => Ok(Some(r)),
        Err(e) if e.kind() == offboard_core::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
