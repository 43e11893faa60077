//! The simulated tenants: stateful simulations of each vendor's real API on loopback, built on
//! wiremock, so a connector's HTTP code runs unchanged in tests. A host may start them for its
//! own demos and tests too.
//!
//! Every tenant is one [`MockServer`](wiremock::MockServer) whose single responder
//! (`layer::serve`) records the request, checks its credentials, applies the injected faults
//! and rate budgets of the shared request layer ([`layer`]), then routes it to the vendor's
//! handlers. What is the vendor's own (Okta's rate-limit headers and endpoint families, Graph's
//! resource units and `$batch`, Google's scopes, Jira's webhook signing, SCIM's ETags) stays
//! in the vendor's module.
//!
//! | module | vendor |
//! |---|---|
//! | [`adp`] | ADP Workforce Now Worker API v2 and ADP's OAuth token endpoint |
//! | [`bamboohr`] | BambooHR public API (changed employees, employee read) |
//! | [`google`] | Google Workspace Admin SDK (Directory, Data Transfer, Licensing) |
//! | [`graph`] | Microsoft Graph and the Microsoft identity platform's token endpoint |
//! | [`hibob`] | HiBob (Bob) API employee search |
//! | [`jira`] | Jira Cloud REST API v3 and its webhooks |
//! | [`jumpcloud`] | JumpCloud V1 API: system users (a source of truth) |
//! | [`namely`] | Namely API v1 profiles |
//! | [`okta`] | Okta Management API |
//! | [`onelogin`] | OneLogin OAuth 2.0 tokens and users API v2 (a source of truth) |
//! | [`paylocity`] | Paylocity Web Services API v2 (employees) and its token endpoint |
//! | [`personio`] | Personio authentication and Personnel Data API v1 (employees) |
//! | [`sailpoint`] | SailPoint Identity Security Cloud: OAuth token and v2025 identities (a source of truth) |
//! | [`scim`] | a SCIM 2.0 service provider (RFC 7643/7644) |
//! | [`successfactors`] | SAP SuccessFactors OData v2 `User` (PLT User Management) |
//! | [`workday`] | Workday Reports as a Service (a custom report in JSON) and its OAuth token endpoint |
//!
//! [`specs`] reads the vendors' official API descriptions the routes are checked against.

pub mod adp;
pub mod bamboohr;
pub mod google;
pub mod graph;
pub mod hibob;
pub mod jira;
pub mod jumpcloud;
pub mod layer;
pub mod namely;
pub mod okta;
pub mod onelogin;
pub mod paylocity;
pub mod personio;
pub mod sailpoint;
pub mod scim;
pub mod specs;
pub mod successfactors;
mod tokens;
pub mod workday;
