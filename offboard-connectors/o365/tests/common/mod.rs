//! Shared by the o365 tests: the connector over a simulated tenant, the conformance fixture,
//! and an in-memory, stateful [`ExchangeAdmin`] standing in for Exchange Online.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use offboard_core::{
    AccountRef, AccountStatus, Action, ActionName, Connector, Error, ExecuteOptions, ExecuteReply,
    LookupRequest, Manager, Person, Result, Secret,
};
use offboard_o365::exchange::{Forwarding, MailboxRef, MailboxState, MailboxType};
use offboard_o365::{ExchangeAdmin, O365Config, O365Connector};
use offboard_testkit::sim::graph::{GraphFixture, GraphTenant};
use offboard_testkit::suite::conformance::{Fixture, SentRequest};

/// The manager of [`person`].
pub const MANAGER: &str = "boss@example.test";

/// Jane Doe at `email`, managed by [`MANAGER`].
pub fn person(email: &str) -> Person {
    Person::new("p-1", email)
        .with_name("Jane Doe")
        .with_manager(Manager {
            id: None,
            email: MANAGER.into(),
        })
}

/// An action without parameters.
pub fn action(name: &'static str) -> Action {
    Action::new(ActionName::from_static(name))
}

/// Options carrying [`person`].
pub fn opts(email: &str) -> ExecuteOptions {
    ExecuteOptions::default().with_person(person(email))
}

/// The account `email` has, looked up through the connector.
pub async fn account(o365: &O365Connector, email: &str) -> AccountRef {
    o365.lookup(&LookupRequest::person(person(email)))
        .await
        .unwrap()
        .expect("the account exists")
}

/// Runs `name` on `account` for [`person`] `email`.
pub async fn run(
    o365: &O365Connector,
    account: &AccountRef,
    name: &'static str,
    email: &str,
) -> Result<ExecuteReply> {
    o365.execute(account, &action(name), &opts(email)).await
}

/// The connector configured against `tenant`.
pub fn config(tenant: &GraphTenant) -> O365Config {
    O365Config::new()
        .with_tenant_id(tenant.tenant_id())
        .with_client_id(tenant.client_id())
        .with_client_secret(Secret::new(tenant.client_secret()))
        .with_graph_url(tenant.graph_url())
        .with_allow_plain_http(true)
        .with_token_url(tenant.token_url())
}

/// The connector, with or without the Exchange hook.
pub fn connector(tenant: &GraphTenant, exchange: Option<Arc<MemoryExchange>>) -> O365Connector {
    let mut c = config(tenant);
    if let Some(x) = exchange {
        c = c.with_exchange_admin(x);
    }
    c.build().unwrap()
}

/// Exchange Online in memory: mailboxes by Entra object id, and every write made.
#[derive(Debug, Default)]
pub struct MemoryExchange {
    mailboxes: Mutex<BTreeMap<String, MailboxState>>,
    writes: Mutex<Vec<String>>,
}

impl MemoryExchange {
    /// Adds a user mailbox for `object_id`.
    pub fn add_mailbox(&self, object_id: &str) {
        self.mailboxes
            .lock()
            .unwrap()
            .insert(object_id.to_owned(), MailboxState::user());
    }

    /// The mailbox's state.
    pub fn state(&self, object_id: &str) -> Option<MailboxState> {
        self.mailboxes.lock().unwrap().get(object_id).cloned()
    }

    /// Every write, as `verb object_id [arg]`.
    pub fn writes(&self) -> Vec<String> {
        self.writes.lock().unwrap().clone()
    }

    fn write(&self, m: &MailboxRef, what: String, f: impl FnOnce(&mut MailboxState)) -> Result<()> {
        let mut all = self.mailboxes.lock().unwrap();
        let state = all
            .get_mut(&m.object_id)
            .ok_or_else(|| Error::not_found(format!("no mailbox {}", m.upn)))?;
        f(state);
        self.writes
            .lock()
            .unwrap()
            .push(format!("{what} {}", m.object_id));
        Ok(())
    }
}

#[async_trait]
impl ExchangeAdmin for MemoryExchange {
    async fn mailbox(&self, mailbox: &MailboxRef) -> Result<Option<MailboxState>> {
        Ok(self.state(&mailbox.object_id))
    }

    async fn convert_to_shared(&self, mailbox: &MailboxRef) -> Result<()> {
        self.write(mailbox, "convert_to_shared".into(), |s| {
            s.mailbox_type = MailboxType::Shared;
        })
    }

    async fn set_forwarding(
        &self,
        mailbox: &MailboxRef,
        forwarding: Option<&Forwarding>,
    ) -> Result<()> {
        let what = format!(
            "set_forwarding({})",
            forwarding.map_or("none", |f| f.address.as_str())
        );
        self.write(mailbox, what, |s| s.forwarding = forwarding.cloned())
    }

    async fn set_hidden_from_address_lists(
        &self,
        mailbox: &MailboxRef,
        hidden: bool,
    ) -> Result<()> {
        self.write(mailbox, format!("set_hidden({hidden})"), |s| {
            s.hidden_from_address_lists = hidden;
        })
    }
}

/// The conformance fixture: [`GraphFixture`] users, as o365 accounts, each with a mailbox in
/// the in-memory Exchange when there is one.
pub struct O365Fixture {
    pub graph: GraphFixture,
    pub exchange: Option<Arc<MemoryExchange>>,
}

#[async_trait]
impl Fixture for O365Fixture {
    async fn create_user(&self, login: &str, aliases: &[&str]) -> AccountRef {
        let id = self.graph.add_employee(login, aliases);
        if let Some(x) = &self.exchange {
            x.add_mailbox(&id);
        }
        AccountRef::new("o365", id, login, AccountStatus::Active)
    }

    async fn delete_user(&self, external_id: &str) {
        self.graph.tenant().remove_user(external_id);
    }

    fn secret(&self) -> &str {
        self.graph.tenant().client_secret()
    }

    fn sent_requests(&self) -> Option<Vec<SentRequest>> {
        self.graph.sent_requests()
    }
}
