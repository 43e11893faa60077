//! offboard connector for Google Workspace (Admin SDK Directory API).
//!
//! # Actions
//!
//! | action | reversible | critical | after | calls |
//! |---|---|---|---|---|
//! | `google.invalidate_backup_codes` | no | no | | `GET …/users/{id}/verificationCodes`, `POST …/verificationCodes/invalidate` |
//! | `google.delete_asps` | no | no | | `GET …/users/{id}/asps`, `DELETE …/asps/{codeId}` |
//! | `google.revoke_tokens` | no | no | | `GET …/users/{id}/tokens`, `DELETE …/tokens/{clientId}` |
//! | `google.sign_out` | no | no | | `GET …/users/{id}`, `POST …/users/{id}/signOut` |
//! | `google.suspend` | yes (unsuspend) | no | `google.invalidate_backup_codes`, `google.delete_asps` | `GET …/users/{id}`, `PATCH …/users/{id}` `{"suspended": true}` |
//! | `google.move_to_ou` (`{"ou": "/Path"}`) | yes (previous `orgUnitPath`) | no | | `GET …/users/{id}`, `PATCH …/users/{id}` `{"orgUnitPath": …}` |
//! | `google.hide_from_gal` | yes | no | | `GET …/users/{id}`, `PATCH …/users/{id}` `{"includeInGlobalAddressList": false}` |
//! | `google.remove_from_groups` | yes (re-add with role) | no | | `GET …/groups?userKey={id}`, `DELETE …/groups/{g}/members/{id}`; snapshot `GET …/groups/{g}/members/{id}`; rollback `POST …/groups/{g}/members` |
//! | `google.delete` | no | yes | | `GET …/users/{id}`, `DELETE …/users/{id}` |
//!
//! All paths are under `admin/directory/v1/`; every action addresses the user by the immutable
//! numeric id ([`offboard_core::AccountRef::external_id`]). Every action reads state first: a
//! repeat reports `already_done`, a dry run predicts the outcome, and a user who no longer
//! exists reports `not_found` (delete: `already_done`). Google cannot list sessions, so
//! `google.sign_out` remembers the (user, idempotency key) pairs it signed out in this
//! connector instance; see its module docs.
//!
//! # Not implemented (yet)
//! Data Transfer API (Drive/Calendar to the manager), mobile-device account wipe, licence
//! removal, password reset, admin-role removal and undelete are **not** offered by this
//! version. Plan them elsewhere or by hand.
//!
//! # Lookup
//! `GET admin/directory/v1/users/{userKey}` per address of the person, with the address as one
//! percent-encoded path segment (so `/`, `?`, `#`, `%` cannot change the resource). The answer
//! is accepted only when the user has exactly that address as `primaryEmail` or alias (ASCII
//! case ignored; no Unicode folding). Strings that are not an address (`*`, quotes, ` or `,
//! empty, no `@`) are never sent; control characters are refused (`InvalidInput`). Two users:
//! `Ambiguous`. The numeric `id` is the account's `external_id`.
//!
//! # Throttling
//! Google answers a spent quota with 403 `userRateLimitExceeded`/`quotaExceeded` (no header)
//! or 429 (`Retry-After`). Both become retryable `RateLimited` errors carrying a wait hint:
//! the `Retry-After` value, else one second (Google's documented backoff start).
//!
//! # Configuration
//! [`GoogleConfig`]: a service account key with domain-wide delegation and the admin to
//! impersonate (`subject`), or a ready access token; `from_env` reads `OFFBOARD_GOOGLE_*`.
//!
//! # Example
//! ```no_run
//! use offboard_core::{Connector, LookupRequest, Person};
//! use offboard_google::GoogleConfig;
//!
//! # async fn demo() -> offboard_core::Result<()> {
//! let google = GoogleConfig::from_env().build()?;
//! let account = google
//!     .lookup(&LookupRequest::person(Person::new("p1", "jane@example.com")))
//!     .await?;
//! # let _ = account; Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod actions;
mod client;
mod config;
mod connector;
mod error;

pub use actions::move_to_ou::MoveToOu;
pub use config::{ConfigKey, DEFAULT_BASE_URL, DEFAULT_SCOPES, GoogleConfig};
pub use connector::{APP, GoogleConnector};
