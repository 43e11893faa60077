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
//! | [`okta`] | Okta Management API |
//! | [`paylocity`] | Paylocity Web Services API v2 (employees) and its token endpoint |
//! | [`google`] | Google Workspace Admin SDK (Directory, Data Transfer, Licensing) |
//! | [`graph`] | Microsoft Graph and the Microsoft identity platform's token endpoint |
//! | [`jira`] | Jira Cloud REST API v3 and its webhooks |
//! | [`scim`] | a SCIM 2.0 service provider (RFC 7643/7644) |
//! | [`successfactors`] | SAP SuccessFactors OData v2 `User` (PLT User Management) |
//!
//! [`specs`] reads the vendors' official API descriptions the routes are checked against.

pub mod google;
pub mod graph;
pub mod jira;
pub mod layer;
pub mod okta;
pub mod paylocity;
pub mod scim;
pub mod specs;
pub mod successfactors;
