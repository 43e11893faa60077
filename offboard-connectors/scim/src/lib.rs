//! offboard connector for any SCIM 2.0 service provider (RFC 7643/7644): one instance per app.
//!
//! # Actions
//! The connector's app id is configured (`app = "notion"`), and an action's name must start
//! with its connector's app (the planner checks `ActionName::app`), so the actions are
//! `<app>.deactivate`, `<app>.remove_groups` and `<app>.delete` (`notion.deactivate`...).
//!
//! | action | reversible | critical | after | calls |
//! |---|---|---|---|---|
//! | `<app>.deactivate` | yes (active=true), unless the profile says reactivation fails or deactivates by DELETE | no | `<app>.remove_groups` where the profile deactivates by DELETE (it removes the account; a user already gone is then `already_done`) | `GET /Users/{id}`, then `PATCH /Users/{id}` `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":false}]}`; without PATCH (`/ServiceProviderConfig` `patch.supported=false`, or the profile) `PUT /Users/{id}` of the resource read, `active: false`; `DELETE /Users/{id}` for profiles that deactivate so |
//! | `<app>.remove_groups` | yes (re-add) | no | | `GET /Users/{id}` (its `groups`), else `GET /Groups?filter=members[value eq "<id>"]`; `PATCH /Groups/{g}` `{"op":"remove","path":"members[value eq \"<id>\"]"}`; without PATCH `GET` + `PUT /Groups/{g}` with the other members |
//! | `<app>.delete` | no | yes | `<app>.deactivate` | `GET /Users/{id}`, `DELETE /Users/{id}` (404: already done); not offered where the profile has no real DELETE |
//!
//! Every action reads first: a repeat reports `already_done`, a dry run only reads and
//! predicts, and a user who no longer exists reports `not_found` (delete: `already_done`).
//! Writes carry `If-Match` with the ETag read (`W/"n"`) when ETags are in use (the profile,
//! or `etag.supported` advertised); a 412 re-reads once and decides again. Lists are paged with
//! `startIndex`/`count`. A 429 is a `RateLimited` error with the `Retry-After` wait
//! (offboard-http), retried by the engine. The app's account inventory:
//! [`ScimConnector::inventory`] (every user, paged at the profile's page size).
//!
//! # Lookup
//! By `userName`, then `emails[value eq "…"]` (and, where the profile says, `externalId` = the
//! person's id), one filter a request, string literals escaped per RFC 7644 §3.4.2.2 by
//! [`quoted`] (`"` and `\` escaped, control characters refused); every answer is re-checked
//! locally. Zero users: `None`; two or more: `Ambiguous`.
//!
//! # Quirk profiles
//! [`ScimProfile`], selected by name with the `profile` key:
//!
//! | profile | deactivate | `<app>.delete` | reactivation | lookup | source |
//! |---|---|---|---|---|---|
//! | `generic` | as advertised (PATCH, else PUT) | yes | yes | userName, emails | RFC 7644 |
//! | `slack` | PATCH | not offered (DELETE only deactivates) | yes (unverified) | userName, emails | <https://docs.slack.dev/reference/scim-api> |
//! | `zoom` | PATCH | yes | yes | userName, emails | <https://developers.zoom.us/docs/api/scim2/> |
//! | `notion` | DELETE (removes the member) | not offered | no | userName, emails | <https://www.notion.com/help/provision-users-and-groups-with-scim> |
//! | `atlassian` | PATCH (unverified) | yes (irreversible unlink + deactivation) | yes | userName, emails | <https://developer.atlassian.com/cloud/admin/user-provisioning/rest/> |
//! | `canva` | PATCH | not offered (no DELETE) | yes | userName | <https://www.canva.dev/docs/scim/delete-user> |
//! | `pagerduty` | PATCH (active=false deletes) | yes | no | userName | <https://support.pagerduty.com/main/docs/assign-or-deactivate-users> |
//!
//! Each profile's `notes` say what its source states and which facts are unverified.
//!
//! # Example
//! ```no_run
//! use offboard_core::{Connector, LookupRequest, Person, Secret};
//! use offboard_scim::ScimConfig;
//!
//! # async fn demo() -> offboard_core::Result<()> {
//! let notion = ScimConfig::new("notion")
//!     .with_base_url("https://api.notion.com/scim/v2")
//!     .with_bearer_token(Secret::new("…"))
//!     .with_config("profile", "notion")
//!     .build()?;
//! let account = notion.lookup(&LookupRequest::person(Person::new("p1", "jane@example.com"))).await?;
//! # let _ = account; Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod actions;
mod client;
mod config;
mod connector;
mod filter;
mod profile;

pub use config::{DEFAULT_PAGE_SIZE, ScimConfig};
pub use connector::ScimConnector;
pub use filter::{MAX_FILTER_VALUE_CHARS, quoted};
pub use profile::{DeactivateMethod, LookupAttribute, ScimProfile};
