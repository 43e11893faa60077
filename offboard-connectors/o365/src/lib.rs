//! offboard connector for Office 365 on Microsoft Graph: licences, Exchange Online mailbox
//! hand-over, OneDrive hand-over, Teams memberships and the meetings the person organises.
//!
//! Built on the shared Graph client [`offboard_http::graph`] (token, paging, `$batch`, 429
//! handling, OData escaping); nothing Graph-generic lives here.
//!
//! # Actions
//!
//! | action | reversible | not found | after | calls | permission |
//! |---|---|---|---|---|---|
//! | `o365.set_auto_reply` | yes (previous setting) | error | | `GET`/`PATCH /users/{id}/mailboxSettings` | `MailboxSettings.ReadWrite` |
//! | `o365.forward_to_manager` | yes (our rule deleted) | error | | `GET`/`POST /users/{id}/mailFolders/inbox/messageRules`, `DELETE …/messageRules/{r}` (in `$batch`) | `MailboxSettings.ReadWrite` |
//! | `o365.onedrive_to_manager` | no | error | | `GET /users/{id}/drive`, `GET /drives/{d}/root/permissions`, `POST /drives/{d}/root/invite` | `Files.ReadWrite.All` |
//! | `o365.convert_to_shared` | no | error | | [`ExchangeAdmin`] only | (the hook's) |
//! | `o365.mailbox_forwarding` | yes | error | | [`ExchangeAdmin`] only | (the hook's) |
//! | `o365.hide_from_gal` | yes | done | | [`ExchangeAdmin`] only | (the hook's) |
//! | `o365.remove_teams` | yes (re-added through the group) | done | `entra.remove_groups`, `entra.hand_over_owned` | `GET /users/{id}/joinedTeams`, `GET /teams/{t}/members`, `DELETE /teams/{t}/members/{membership-id}`; rollback `POST /groups/{t}/members/$ref` (and `…/owners/$ref` for an owner) | `Team.ReadBasic.All`, `TeamMember.Read.All`, `TeamMember.ReadWrite.All`; rollback `GroupMember.ReadWrite.All`, `Group.ReadWrite.All` |
//! | `o365.cancel_meetings` | no | done | | `GET /users/{id}/events?$select=…` (paged), `POST /users/{id}/events/{e}/cancel` `{"Comment": "<message>"}` | `Calendars.ReadWrite` (list: `Calendars.Read`) |
//! | `o365.remove_licenses` | yes (SKUs re-added) | done | every action above | `$batch` of `GET /users/{id}` + `GET …/licenseDetails`, `$batch` of `GET /groups/{g}`, `POST …/assignLicense` | `LicenseAssignment.ReadWrite.All` (or `User.ReadWrite.All`) |
//!
//! Removing the Exchange licence starts mailbox deprovisioning, so `o365.remove_licenses`
//! declares `after` on every mailbox and OneDrive action: the planner orders it last.
//! Licences inherited through group-based licensing cannot be removed from the user; the
//! outcome names each with the group giving it, and they stay until the Entra group
//! membership is removed.
//!
//! # Teams
//! A team is a Microsoft 365 group: its membership is the group's, so `o365.remove_teams`
//! runs after `entra.remove_groups` (teams left with their group are no longer listed) and
//! `entra.hand_over_owned` (owned teams get a new owner first). It matches the leaver in
//! `GET /teams/{t}/members` on `userId` exactly and deletes that membership by its opaque id.
//! The last owner of a team cannot leave: such teams fail the task by name after the others
//! were left.
//!
//! # Meetings
//! `o365.cancel_meetings` cancels the meetings the person organises that end after the run's
//! clock (`ExecuteOptions::started_at`, else now; a series while it runs), sending
//! `params.message` (default: the organizer has left) as the cancellation `Comment`.
//! Meetings the person only attends are never touched (Graph lets only the organizer
//! cancel). Cancelled meetings leave the calendar, so a repeat is `already_done`. It needs
//! the mailbox, so licence removal runs after it. `verify_revoked` lists team memberships and
//! future organised meetings (compared with now) for every user, so it needs
//! `Team.ReadBasic.All` and `Calendars.Read` too: without them Graph answers 403 and the
//! verification fails naming the permission rather than calling the person revoked unseen.
//!
//! Parameters: `o365.set_auto_reply` takes `message` (placeholders `{name}`, `{manager}`) and
//! `external_audience`; the hand-overs take `to` (default: the person's manager);
//! `o365.mailbox_forwarding` also takes `keep_copy` (default true); `o365.cancel_meetings`
//! takes `message`.
//!
//! # Exchange admin
//! Shared-mailbox conversion, mailbox-level forwarding and address-list visibility are not in
//! Graph v1.0. The host provides them through [`ExchangeAdmin`]; without it those three
//! actions are not offered (a policy naming them fails to plan), executing one is an
//! `Unsupported` error that says why, and [`O365Connector::unavailable`] lists them.
//!
//! # Example
//! ```no_run
//! use offboard_core::{Connector, LookupRequest, Person};
//! use offboard_o365::O365Config;
//!
//! # async fn demo() -> offboard_core::Result<()> {
//! let o365 = O365Config::from_env().build()?;
//! let account = o365.lookup(&LookupRequest::person(Person::new("p1", "jane@example.com"))).await?;
//! # let _ = account; Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod actions;
mod client;
mod config;
mod connector;
pub mod exchange;

pub use config::{
    DEFAULT_AUTO_REPLY, DEFAULT_AUTO_REPLY_NO_MANAGER, DEFAULT_RULE_NAME, GRAPH_URL, O365Config,
};
pub use connector::{APP, O365Connector};
pub use exchange::ExchangeAdmin;
