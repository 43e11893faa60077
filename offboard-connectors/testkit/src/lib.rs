//! offboard-testkit: what connectors and the engine are tested against, in two rooms.
//!
//! - **[`sim`]: the simulated tenants** ([`okta`], [`google`], [`graph`], [`jira`], [`scim`]):
//!   stateful simulations of each vendor's real API on loopback, built on wiremock, so a
//!   connector's HTTP code runs unchanged in tests; a host may use them for its own demos and
//!   tests. They share one request layer ([`sim::layer`]): recording, credentials, injected
//!   faults and rate windows.
//! - **[`suite`]: the conformance suites and reference parts**, with the helpers around them
//!   ([`store`], [`postgres`], [`browser`], [`trace`]).
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

pub mod sim;
pub mod suite;

// The paths hosts and tests used before the two rooms keep resolving.
pub use sim::{google, graph, jira, okta, scim, specs};
pub use suite::{browser, conformance, postgres, reference, store, trace};

pub use conformance::{Fixture, ReferenceFixture, Report, run_conformance};
pub use reference::{
    CallCounts, Fault, ReferenceConnector, ReferenceConnectorBuilder, ReferenceDelegate,
    ReferenceTicket, ReferenceUser, Transfer, TransferParams, UserState,
};
