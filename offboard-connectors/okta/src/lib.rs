//! offboard connector for Okta (Management API).
//!
//! # Actions
//!
//! | action | reversible | critical | after | calls |
//! |---|---|---|---|---|
//! | `okta.suspend` | yes (unsuspend) | no | | `GET /api/v1/users/{id}`, `POST …/lifecycle/unlock` (`LOCKED_OUT` only), `POST …/lifecycle/suspend` |
//! | `okta.clear_sessions` | no | no | | `GET …/clients`, `GET …/clients/{c}/tokens`, `DELETE …/sessions?oauthTokens=true&forgetDevices=true` |
//! | `okta.revoke_grants` | no | no | | `GET`/`DELETE /api/v1/users/{userId}/grants` |
//! | `okta.reset_factors` | no | no | | `GET …/factors`, `POST …/lifecycle/reset_factors` |
//! | `okta.remove_groups` | yes (re-add) | no | | `GET …/groups`, `DELETE /api/v1/groups/{g}/users/{u}` (`OKTA_GROUP` only) |
//! | `okta.unassign_apps` | no | no | | `GET …/appLinks`, `GET /api/v1/apps/{a}/users/{u}`, `DELETE` (`USER` scope only) |
//! | `okta.remove_admin_roles` | no | no | | `GET …/roles`, `DELETE …/roles/{id}` (`USER` assignments only) |
//! | `okta.deactivate` | yes (activate; status only) | yes | | `POST …/lifecycle/deactivate?sendEmail=false` |
//! | `okta.delete` | no | yes | `okta.deactivate` | `DELETE /api/v1/users/{id}?sendEmail=false` (twice if still active) |
//!
//! Every action reads state first: a repeat reports `already_done`, a dry run predicts the
//! outcome, and a user who no longer exists reports `not_found` (delete: `already_done`).
//! Okta cannot list browser sessions, so `okta.clear_sessions` decides its outcome from the
//! OAuth refresh tokens it finds, and ends sessions on every real run. It waits for no other
//! action: a suspend that fails never keeps sessions alive.
//!
//! Okta suspends only `ACTIVE` users: `okta.suspend` unlocks a `LOCKED_OUT` user first, and
//! fails (permanently, naming the remedy) for `STAGED`, `PROVISIONED`, `PASSWORD_EXPIRED` and
//! `RECOVERY` users, whose sign-in only deactivation blocks; with the parameters
//! `{"deactivate_if_not_suspendable": true}` it deactivates them instead and says so in the
//! detail (deactivation deprovisions every app: a policy that sets the parameter should list
//! `okta.suspend` as critical). Admin roles held through a group are reported by
//! `okta.remove_admin_roles`, never counted as removed.
//!
//! # Lookup
//! Exact, ASCII-case-insensitive match of the person's email and aliases against
//! `profile.login` and `profile.email` through one `search` query built by
//! [`search_expression`] (quotes and backslashes escaped, control characters and identifiers
//! longer than [`MAX_IDENTIFIER_CHARS`] refused before any request), then filtered again
//! locally. Zero users: `None`; two or more: `Ambiguous`. `profile.secondEmail` is never
//! matched: users edit it themselves, so a stranger's recovery address must not make their
//! account the person's.
//!
//! # Configuration
//! [`OktaConfig`]: an org URL and either an API token (`SSWS`) or OAuth client credentials
//! with a `private_key_jwt` assertion; `from_env` reads `OFFBOARD_OKTA_*`.
//!
//! # Example
//! ```no_run
//! use offboard_core::{Connector, LookupRequest, Person};
//! use offboard_okta::OktaConfig;
//!
//! # async fn demo() -> offboard_core::Result<()> {
//! let okta = OktaConfig::from_env().build()?;
//! let account = okta.lookup(&LookupRequest::person(Person::new("p1", "jane@example.com"))).await?;
//! # let _ = account; Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod actions;
mod client;
mod config;
mod connector;
mod error;
mod source;

pub use config::{ConfigKey, DEFAULT_SCOPES, OktaConfig};
pub use connector::{APP, MAX_IDENTIFIER_CHARS, OktaConnector, search_expression};
pub use source::OktaSource;
