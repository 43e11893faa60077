#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub use offboard_core::*;

/// Durable stores: SQLite (feature `sqlite`, the embedded default) and PostgreSQL (feature
/// `postgres`); `stores` (on by default) turns on both.
#[cfg(feature = "sqlite")]
pub use offboard_store as stores;

/// The Okta connector and source of truth (feature `okta`).
#[cfg(feature = "okta")]
pub use offboard_okta as okta;

/// The Google Workspace connector and source of truth (feature `google`).
#[cfg(feature = "google")]
pub use offboard_google as google;

/// The Entra ID (Azure AD) connector and source of truth over Microsoft Graph (feature
/// `entra`).
#[cfg(feature = "entra")]
pub use offboard_azure as entra;

/// The Office 365 connector over Microsoft Graph (feature `o365`).
#[cfg(feature = "o365")]
pub use offboard_o365 as o365;

/// The Active Directory connector over LDAP (feature `ad`).
#[cfg(feature = "ad")]
pub use offboard_ad as ad;

/// The Jira delegate and its webhook endpoint (feature `jira`).
#[cfg(feature = "jira")]
pub use offboard_jira as jira;

/// The email delegate and the email notifier, `offboard::email::notify` (feature `email`).
#[cfg(feature = "email")]
pub use offboard_email as email;

/// The SCIM 2.0 connector, one instance per app, with the apps' quirk profiles (feature
/// `scim`).
#[cfg(feature = "scim")]
pub use offboard_scim as scim;

/// The signed webhook notifier, a [`Notifier`] posting HMAC-signed JSON through a durable
/// outbox in the store (feature `webhook`).
#[cfg(feature = "webhook")]
pub use offboard_http::webhook;
/// The HR and IdP sources of truth without a connector (JumpCloud, OneLogin, BambooHR, HiBob,
/// Personio, Workday, SailPoint, Namely, ADP, Paylocity, SAP SuccessFactors) (feature
/// `sources`).
#[cfg(feature = "sources")]
pub use offboard_sources as sources;
/// The Shared Signals transmitter: SETs from the audit trail, push and poll delivery, and its
/// endpoints (feature `ssf`).
#[cfg(feature = "ssf")]
pub use offboard_ssf as ssf;
