//! offboard connector for Office 365 on Microsoft Graph: licences, Exchange Online mailbox
//! hand-over and OneDrive hand-over.
//!
//! Built on the shared Graph client [`offboard_http::graph`] (token, paging, `$batch`, 429
//! handling, OData escaping); nothing Graph-generic lives here.
//!
//! # Actions
//!
//! | action | reversible | not found | after | calls |
//! |---|---|---|---|---|
//! | `o365.set_auto_reply` | yes (previous setting) | error | | `GET`/`PATCH /users/{id}/mailboxSettings` |
//! | `o365.forward_to_manager` | yes (our rule deleted) | error | | `GET`/`POST /users/{id}/mailFolders/inbox/messageRules`, `DELETE …/messageRules/{r}` (in `$batch`) |
//! | `o365.onedrive_to_manager` | no | error | | `GET /users/{id}/drive`, `GET /drives/{d}/root/permissions`, `POST /drives/{d}/root/invite` |
//! | `o365.convert_to_shared` | no | error | | [`ExchangeAdmin`] only |
//! | `o365.mailbox_forwarding` | yes | error | | [`ExchangeAdmin`] only |
//! | `o365.hide_from_gal` | yes | done | | [`ExchangeAdmin`] only |
//! | `o365.remove_licenses` | yes (SKUs re-added) | done | every action above | `$batch` of `GET /users/{id}` + `GET …/licenseDetails`, `$batch` of `GET /groups/{g}`, `POST …/assignLicense` |
//!
//! Removing the Exchange licence starts mailbox deprovisioning, so `o365.remove_licenses`
//! declares `after` on every mailbox and OneDrive action: the planner orders it last.
//! Licences inherited through group-based licensing cannot be removed from the user; the
//! outcome names each with the group giving it, and they stay until the Entra group
//! membership is removed.
//!
//! Parameters: `o365.set_auto_reply` takes `message` (placeholders `{name}`, `{manager}`) and
//! `external_audience`; the hand-overs take `to` (default: the person's manager);
//! `o365.mailbox_forwarding` also takes `keep_copy` (default true).
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
