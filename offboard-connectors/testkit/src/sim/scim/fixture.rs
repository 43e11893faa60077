//! The conformance [`Fixture`](crate::Fixture) of the simulated SCIM service provider.

use std::sync::Arc;

use async_trait::async_trait;
use offboard_core::{AccountRef, AccountStatus};

use super::ScimProvider;
use crate::suite::conformance::{FilterSyntax, Fixture, RequestCursor, SentRequest};

/// Creates conformance users in a [`ScimProvider`]: each is active, has `userName` = the login
/// and `emails` = the aliases (else the login), and is a member of the group "Engineering".
#[derive(Debug, Clone)]
pub struct ScimFixture {
    provider: Arc<ScimProvider>,
    app: String,
    sent: RequestCursor,
    engineering: String,
}

impl ScimFixture {
    /// Sets up the group in `provider`; accounts are reported as of `app`.
    pub fn new(provider: Arc<ScimProvider>, app: impl Into<String>) -> Self {
        let engineering = provider.add_group("Engineering");
        Self {
            provider,
            app: app.into(),
            sent: RequestCursor::default(),
            engineering,
        }
    }

    /// The provider.
    pub fn provider(&self) -> &Arc<ScimProvider> {
        &self.provider
    }

    /// The id of the group every user is in.
    pub fn engineering(&self) -> &str {
        &self.engineering
    }
}

#[async_trait]
impl Fixture for ScimFixture {
    async fn create_user(&self, login: &str, aliases: &[&str]) -> AccountRef {
        let emails: Vec<&str> = if aliases.is_empty() {
            vec![login]
        } else {
            aliases.to_vec()
        };
        let id = self.provider.add_user(login, &emails);
        self.provider.add_member(&self.engineering, &id);
        AccountRef::new(self.app.as_str(), id, login, AccountStatus::Active)
    }

    async fn delete_user(&self, external_id: &str) {
        self.provider.remove_user(external_id);
    }

    fn secret(&self) -> &str {
        self.provider.token()
    }

    /// The recorded requests since the last call; `filter` is a SCIM filter.
    fn sent_requests(&self) -> Option<Vec<SentRequest>> {
        Some(
            self.sent
                .take(&self.provider.requests(), &[("filter", FilterSyntax::Scim)]),
        )
    }
}
