//! offboard-testkit: what connectors and the engine are tested against.
//!
//! - **Simulated tenants** (added by later issues): stateful simulations of each vendor's real
//!   API on loopback, built on wiremock, so a connector's HTTP code runs unchanged in tests.
//! - **The reference connector and delegate** ([`reference`](mod@reference)): [`ReferenceConnector`] is an
//!   in-memory tenant that implements the whole [`Connector`](offboard_core::Connector)
//!   contract, counts every side effect and takes injected faults (latency, retryable or
//!   permanent errors, lost responses). [`ReferenceDelegate`] keeps human tasks (Jira issues,
//!   emails) in memory for the test to assign, complete and reopen. Engine tests, demos and
//!   benchmarks use them in place of real apps.
//! - **The connector conformance suite** ([`conformance`]): one async function per rule of the
//!   `Connector` contract, and [`run_conformance`], which picks the rules that apply from the
//!   connector's capabilities. Every connector runs it against its simulated tenant, and
//!   against a real tenant when `OFFBOARD_TEST_<VENDOR>` is set.
//!
//! # Example
//! ```
//! use std::sync::Arc;
//! use offboard_testkit::{ReferenceConnector, ReferenceFixture, ReferenceUser, run_conformance};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let okta = Arc::new(
//!     ReferenceConnector::builder("okta")
//!         .user(ReferenceUser::employee("jane@example.com"))
//!         .secret("fake-okta-token")
//!         .build(),
//! );
//! run_conformance(&okta, &ReferenceFixture::new(okta.clone())).await;
//! assert!(!format!("{okta:?}").contains("fake-okta-token"));
//! # }
//! ```
#![forbid(unsafe_code)]

pub mod browser;
pub mod conformance;
pub mod google;
pub mod graph;
pub mod jira;
pub mod okta;
pub mod postgres;
pub mod reference;
pub mod scim;
pub mod specs;
pub mod store;
pub mod trace;

pub use conformance::{Fixture, ReferenceFixture, Report, run_conformance};
pub use reference::{
    CallCounts, Fault, ReferenceConnector, ReferenceConnectorBuilder, ReferenceDelegate,
    ReferenceTicket, ReferenceUser, Transfer, TransferParams, UserState,
};
