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
//! | `google.suspend` | yes (unsuspend) | no | | `GET …/users/{id}`, `GET …/verificationCodes` and (any valid) `POST …/verificationCodes/invalidate` first, as far as possible (Google keeps a suspended user's codes), `PATCH …/users/{id}` `{"suspended": true}` |
//! | `google.move_to_ou` (`{"ou": "/Path"}`) | yes (previous `orgUnitPath`) | no | | `GET …/users/{id}`, `PATCH …/users/{id}` `{"orgUnitPath": …}` |
//! | `google.hide_from_gal` | yes | no | | `GET …/users/{id}`, `PATCH …/users/{id}` `{"includeInGlobalAddressList": false}` |
//! | `google.remove_from_groups` | yes (re-add with role) | no | | `GET …/groups?userKey={id}`, `DELETE …/groups/{g}/members/{id}`; snapshot `GET …/groups/{g}/members/{id}`; rollback `POST …/groups/{g}/members` |
//! | `google.reset_password` | no | no | | `GET …/users/{id}`, `PATCH …/users/{id}` `{"password": <random>, "changePasswordAtNextLogin": true}` |
//! | `google.transfer_data` (`{"to": "addr"}`, default the manager) | no | no | | `GET …/users/{id}`, `GET …/users/{manager}`, `GET admin/datatransfer/v1/applications`, `GET …/transfers?oldOwnerUserId={id}`, `POST …/transfers`, `GET …/transfers/{transferId}` |
//! | `google.wipe_devices` | no | yes | | `GET …/customer/my_customer/devices/mobile?query=email:'…'`, `POST …/devices/mobile/{resourceId}/action` `{"action": "admin_account_wipe"}` |
//! | `google.remove_licenses` (only with licences configured) | yes (re-assign) | no | | `DELETE apps/licensing/v1/product/{p}/sku/{s}/user/{email}` per configured SKU; snapshot `GET` each; rollback `POST …/sku/{s}/user` |
//! | `google.delete` | no | yes | `google.transfer_data` | `GET …/users/{id}`, `DELETE …/users/{id}` |
//!
//! Paths are under `admin/directory/v1/` unless written in full (the Data Transfer API shares
//! its root URL; the Licensing API has its own, [`DEFAULT_LICENSING_URL`]); every action
//! addresses the user by the immutable numeric id ([`offboard_core::AccountRef::external_id`]).
//! Every action reads state first: a repeat reports `already_done`, a dry run predicts the
//! outcome, and a user who no longer exists reports `not_found` (delete: `already_done`;
//! transfer: a `NotFound` error, the data being gone). Google cannot list sessions or show
//! whether a password was reset, so `google.sign_out` and `google.reset_password` remember the
//! (user, idempotency key) pairs they handled in this connector instance; see their module
//! docs. `google.transfer_data` never inserts a second transfer for a task: it finds the task's
//! existing one first (an older transfer, even completed, does not count), and a transfer still running after the configured wait is a retryable `Unavailable`
//! error, so the engine comes back to it.
//!
//! # Not implemented (yet)
//! Admin-role removal, undelete (as a rollback of `google.delete`) and Gmail settings are
//! **not** offered by this version. Plan them elsewhere or by hand.
//!
//! # Lookup
//! `GET admin/directory/v1/users/{userKey}` per address of the person, with the address as one
//! percent-encoded path segment (so `/`, `?`, `#`, `%` cannot change the resource). The answer
//! is accepted only when the user has exactly that address as `primaryEmail` or alias (ASCII
//! case ignored; no Unicode folding). Strings that are not an address (`*`, quotes, ` or `,
//! empty, no `@`) are never sent; control characters, an address over 256 bytes and an
//! external id over 64 are refused (`InvalidInput`, nothing sent, the value not echoed whole).
//! Two users:
//! `Ambiguous`. The numeric `id` is the account's `external_id`.
//!
//! # Throttling
//! The connector paces itself to the project's query quota (default 2,400 per minute, see
//! [`GoogleConfig::with_request_budget`]): Google sends no rate-limit headers, so a client
//! that does not count spends the quota and collects 403s.
//! Google answers a spent quota with 403 `userRateLimitExceeded`/`quotaExceeded` (no header)
//! or 429 (`Retry-After`). Both become retryable `RateLimited` errors carrying a wait hint:
//! the `Retry-After` value, else one second (Google's documented backoff start).
//!
//! # Configuration
//! [`GoogleConfig`]: a service account key with domain-wide delegation and the admin to
//! impersonate (`subject`), or a ready access token; `from_env` reads `OFFBOARD_GOOGLE_*`.
//! The service account asks for exactly the scopes the offered actions need (the narrowest
//! each method's discovery entry accepts; [`DEFAULT_SCOPES`] with licences configured), and
//! `build()` refuses configured scopes that leave a method unauthorised, naming it.
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
mod scopes;
mod source;

pub use actions::move_to_ou::MoveToOu;
pub use actions::transfer_data::TransferData;
pub use config::{
    ConfigKey, DEFAULT_BASE_URL, DEFAULT_LICENSING_URL, DEFAULT_REQUESTS_PER_MINUTE,
    DEFAULT_SCOPES, DEFAULT_TRANSFER_APPS, GoogleConfig, Sku,
};
pub use connector::{APP, GoogleConnector};
pub use source::GoogleSource;
