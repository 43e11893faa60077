//! offboard connector for Active Directory over LDAPS (or StartTLS), built on `ldap3` with
//! rustls and the aws-lc-rs crypto provider passed explicitly (never the process default).
//!
//! # What it does
//! - **Lookup**: exact match on `userPrincipalName`, `mail`, `proxyAddresses` (`smtp:`) or
//!   `sAMAccountName`, or by objectGUID; every value escaped per RFC 4515; zero hits is
//!   `None`, two or more an `Ambiguous` error.
//! - **Actions** (see [`actions`]): `ad.disable`, `ad.remove_groups`,
//!   `ad.move_to_disabled_ou`, `ad.reset_password`, `ad.stamp_description`,
//!   `ad.clear_manager`, `ad.set_account_expires`, and `ad.hide_from_address_lists` where the
//!   schema has `msExchHideFromAddressLists`. Each is idempotent and addresses the user by
//!   objectGUID; all but the password reset are reversible from a snapshot.
//! - **Verification**: the account is disabled, in the disabled-users OU and in no group but
//!   its primary group.
//!
//! # Example
//! ```no_run
//! use offboard_ad::{AdConfigBuilder, AdConnector};
//! use offboard_core::{Connector, LookupRequest, Person};
//!
//! # async fn run() -> offboard_core::Result<()> {
//! // Reads OFFBOARD_AD_URL, OFFBOARD_AD_BIND_DN, OFFBOARD_AD_PASSWORD, ...
//! let ad = AdConnector::connect(AdConfigBuilder::from_env()?.build()?).await?;
//! let found = ad
//!     .lookup(&LookupRequest::person(Person::new("p1", "jane@example.com")))
//!     .await?;
//! # let _ = found;
//! # Ok(())
//! # }
//! ```
//!
//! # Pointing it at a real domain
//! Create a service account with the rights to reset passwords, write `userAccountControl`,
//! `description`, `manager` and `accountExpires`, move users (delete child in the source OUs,
//! create child in the disabled-users OU), and write `member` on the groups it should empty.
//! Use `ldaps://<dc>:636` (or `ldap://<dc>:389`, upgraded with StartTLS) and, unless the DC's
//! certificate chains to a system root, `OFFBOARD_AD_CA_FILE`.
#![forbid(unsafe_code)]

pub mod actions;
mod client;
pub mod config;
mod connector;
mod dn;
mod error;

pub use config::{AdConfig, AdConfigBuilder, AdConfigKey, LoggedSearch, SearchLog, Transport};
pub use connector::{APP, AdConnector};
