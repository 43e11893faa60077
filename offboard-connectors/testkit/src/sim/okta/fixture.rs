//! The conformance [`Fixture`](crate::Fixture) of the simulated Okta tenant.

use std::sync::Arc;

use async_trait::async_trait;
use offboard_core::{AccountRef, AccountStatus};

use super::{GroupType, NewUser, OktaTenant};
use crate::suite::conformance::{FilterSyntax, Fixture, RequestCursor, SentRequest};

/// Creates conformance users in an [`OktaTenant`], with access of every kind the Okta
/// connector removes.
///
/// Each user is `ACTIVE` with `profile.email` = the first alias, else the login (the only
/// other address an Okta lookup may match: `profile.secondEmail` is user-editable and never
/// matched; more than one alias panics), a member of the
/// `OKTA_GROUP` "Engineering" (which assigns the app "Slack") and the `APP_GROUP` "AD Staff",
/// directly assigned "GitHub", with 2 sessions, a refresh token and a consent grant of
/// client `0oaSimMobileClient0`, `push` and `sms` factors, and the `APP_ADMIN` role.
#[derive(Debug, Clone)]
pub struct OktaFixture {
    tenant: Arc<OktaTenant>,
    sent: RequestCursor,
    engineering: String,
    ad_staff: String,
    github: String,
}

impl OktaFixture {
    /// Sets up the groups and apps in `tenant`.
    pub fn new(tenant: Arc<OktaTenant>) -> Self {
        let engineering = tenant.add_group("Engineering", GroupType::OktaGroup);
        let ad_staff = tenant.add_group("AD Staff", GroupType::AppGroup);
        let github = tenant.add_app("GitHub");
        let slack = tenant.add_app("Slack");
        tenant.assign_app_to_group(&slack, &engineering);
        Self {
            tenant,
            sent: RequestCursor::default(),
            engineering,
            ad_staff,
            github,
        }
    }

    /// The tenant.
    pub fn tenant(&self) -> &Arc<OktaTenant> {
        &self.tenant
    }

    /// The user a [`Fixture::create_user`] call creates, before it is added.
    pub fn employee(&self, login: &str, aliases: &[&str]) -> NewUser {
        assert!(
            aliases.len() <= 1,
            "the Okta fixture keeps one alias (profile.email), got {aliases:?}"
        );
        let client = "0oaSimMobileClient0".to_owned();
        NewUser {
            email: aliases.first().map_or(login, |a| *a).to_owned(),
            groups: vec![self.engineering.clone(), self.ad_staff.clone()],
            apps: vec![self.github.clone()],
            sessions: 2,
            oauth_tokens: vec![client.clone()],
            grants: vec![(client, "okta.users.read".into())],
            factors: vec!["push".into(), "sms".into()],
            admin_roles: vec!["APP_ADMIN".into()],
            ..NewUser::active(login)
        }
    }
}

#[async_trait]
impl Fixture for OktaFixture {
    async fn create_user(&self, login: &str, aliases: &[&str]) -> AccountRef {
        let id = self.tenant.add_user(self.employee(login, aliases));
        let mut account = AccountRef::new("okta", id, login, AccountStatus::Active);
        account
            .attributes
            .insert("okta_status".into(), "ACTIVE".into());
        account
    }

    async fn delete_user(&self, external_id: &str) {
        self.tenant.remove_user(external_id);
    }

    fn secret(&self) -> &str {
        self.tenant.token()
    }

    /// The tenant's recorded requests since the last call; `search` and `filter` are SCIM filters.
    fn sent_requests(&self) -> Option<Vec<SentRequest>> {
        Some(self.sent.take(
            &self.tenant.requests(),
            &[
                ("search", FilterSyntax::Scim),
                ("filter", FilterSyntax::Scim),
            ],
        ))
    }
}
