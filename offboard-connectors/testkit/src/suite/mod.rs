//! What the project's own code is checked with: the connector conformance suite
//! ([`conformance`]), the source conformance suite ([`source`]), the reference connector,
//! delegate and source ([`reference`](mod@reference)), a call-counting store ([`store`]), a
//! recording rate budget ([`budget`]), a scratch PostgreSQL database ([`postgres`]), headless Chromium ([`browser`]) and a log
//! capture ([`trace`]).

pub mod browser;
pub mod budget;
pub mod conformance;
pub mod postgres;
pub mod reference;
pub mod source;
pub mod store;
pub mod trace;
