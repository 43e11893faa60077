//! The Exchange Online admin hook: what Graph v1.0 cannot do.
//!
//! Converting a mailbox to a shared mailbox, mailbox-level forwarding
//! (`ForwardingSmtpAddress`) and hiding a mailbox from the address lists are Exchange Online
//! features (`Set-Mailbox` in Exchange Online PowerShell / the Exchange admin API), not Graph
//! v1.0 operations. The connector never invents endpoints for them: the host implements
//! [`ExchangeAdmin`] over whatever Exchange admin channel it has and passes it to
//! [`crate::O365Config::with_exchange_admin`]. Without it those actions are not offered.

use std::fmt;

use async_trait::async_trait;
use offboard_core::Result;
use serde::{Deserialize, Serialize};

/// The mailbox of one user, as the hook addresses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MailboxRef {
    /// The Entra object id (`ExternalDirectoryObjectId` in Exchange).
    pub object_id: String,
    /// The user principal name.
    pub upn: String,
}

impl MailboxRef {
    /// A mailbox by object id and UPN.
    pub fn new(object_id: impl Into<String>, upn: impl Into<String>) -> Self {
        Self {
            object_id: object_id.into(),
            upn: upn.into(),
        }
    }
}

/// `RecipientTypeDetails` of a mailbox, as far as offboarding cares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailboxType {
    /// `UserMailbox`: needs a licence.
    User,
    /// `SharedMailbox`: kept without a licence (up to 50 GB).
    Shared,
    /// Anything else (room, equipment, …), by its Exchange name.
    Other(String),
}

/// Mailbox-level forwarding (`ForwardingSmtpAddress`, `DeliverToMailboxAndForward`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forwarding {
    /// The address mail is forwarded to.
    pub address: String,
    /// Whether a copy stays in the mailbox.
    pub keep_copy: bool,
}

/// What the connector reads about a mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MailboxState {
    /// Its type.
    pub mailbox_type: MailboxType,
    /// Mailbox-level forwarding, if set.
    pub forwarding: Option<Forwarding>,
    /// `HiddenFromAddressListsEnabled`.
    pub hidden_from_address_lists: bool,
}

impl MailboxState {
    /// A user mailbox, not forwarded, visible in the address lists.
    pub fn user() -> Self {
        Self {
            mailbox_type: MailboxType::User,
            forwarding: None,
            hidden_from_address_lists: false,
        }
    }
}

/// Exchange Online administration the host provides (e.g. over Exchange Online PowerShell's
/// `Get-Mailbox`/`Set-Mailbox`).
///
/// # Behavior
/// Every method addresses one mailbox. Writes are idempotent (setting what already holds
/// succeeds); the connector reads first so it reports `already_done` truthfully. Errors use
/// the [`offboard_core::ErrorKind`]s (`RateLimited`, `Unavailable` retryable; `NotFound` for
/// a mailbox that does not exist). Implementations keep credentials in
/// [`offboard_core::Secret`].
#[async_trait]
pub trait ExchangeAdmin: Send + Sync + fmt::Debug {
    /// `Get-Mailbox`: the mailbox, or `None` when the user has none.
    async fn mailbox(&self, mailbox: &MailboxRef) -> Result<Option<MailboxState>>;

    /// `Set-Mailbox -Type Shared`.
    async fn convert_to_shared(&self, mailbox: &MailboxRef) -> Result<()>;

    /// `Set-Mailbox -ForwardingSmtpAddress … -DeliverToMailboxAndForward …`; `None` clears it.
    async fn set_forwarding(
        &self,
        mailbox: &MailboxRef,
        forwarding: Option<&Forwarding>,
    ) -> Result<()>;

    /// `Set-Mailbox -HiddenFromAddressListsEnabled`.
    async fn set_hidden_from_address_lists(&self, mailbox: &MailboxRef, hidden: bool)
    -> Result<()>;
}
