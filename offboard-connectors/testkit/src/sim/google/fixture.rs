//! The conformance [`Fixture`](crate::Fixture) of the simulated Google Workspace tenant.

use std::sync::Arc;

use async_trait::async_trait;
use offboard_core::{AccountRef, AccountStatus, Action, ActionSpec};

use super::{GoogleTenant, NewUser};
use crate::suite::conformance::{FilterSyntax, Fixture, RequestCursor, SentRequest};

/// Creates conformance users in a [`GoogleTenant`], with access of every kind the Google
/// connector removes.
///
/// Each user is active in org unit `/Engineering`, listed in the global address list, a
/// `MEMBER` of "engineering@" and an `OWNER` of "all-staff@", with OAuth tokens of two
/// third-party clients ("Slack", "Zoom"), one app-specific password, 10 backup codes, 2
/// sessions, one mobile device ("Pixel 9") and a Business Starter licence
/// ([`GoogleFixture::LICENCE`]). The org unit `/Offboarded` exists; `google.move_to_ou` is run
/// with `{"ou": "/Offboarded"}` and `google.transfer_data` with
/// `{"to": "manager@example.test"}` ([`GoogleFixture::MANAGER`], an active user).
#[derive(Debug, Clone)]
pub struct GoogleFixture {
    tenant: Arc<GoogleTenant>,
    sent: RequestCursor,
    engineering: String,
    all_staff: String,
}

impl GoogleFixture {
    /// The org unit `google.move_to_ou` moves users to.
    pub const OFFBOARDED_OU: &'static str = "/Offboarded";

    /// The user `google.transfer_data` transfers data to.
    pub const MANAGER: &'static str = "manager@example.test";

    /// The licence every fixture user holds: (productId, skuId).
    pub const LICENCE: (&'static str, &'static str) = ("Google-Apps", "1010020027");

    /// Sets up the org units and groups in `tenant`.
    pub fn new(tenant: Arc<GoogleTenant>) -> Self {
        tenant.add_org_unit("/Engineering");
        tenant.add_org_unit(Self::OFFBOARDED_OU);
        let engineering = tenant.add_group("engineering@example.test", "Engineering");
        let all_staff = tenant.add_group("all-staff@example.test", "All Staff");
        tenant.add_user(NewUser::active(Self::MANAGER));
        Self {
            tenant,
            sent: RequestCursor::default(),
            engineering,
            all_staff,
        }
    }

    /// The tenant.
    pub fn tenant(&self) -> &Arc<GoogleTenant> {
        &self.tenant
    }

    /// The ids of the groups every fixture user is in: (Engineering, All Staff).
    pub fn groups(&self) -> (&str, &str) {
        (&self.engineering, &self.all_staff)
    }

    /// The user a [`Fixture::create_user`] call creates, before it is added (group
    /// memberships are added by `create_user`).
    pub fn employee(&self, login: &str, aliases: &[&str]) -> NewUser {
        NewUser {
            aliases: aliases.iter().map(|a| (*a).to_owned()).collect(),
            org_unit_path: "/Engineering".into(),
            tokens: vec![
                (
                    "1234-slack.apps.googleusercontent.com".into(),
                    "Slack".into(),
                ),
                ("5678-zoom.apps.googleusercontent.com".into(), "Zoom".into()),
            ],
            asps: vec!["Thunderbird".into()],
            backup_codes: 10,
            sessions: 2,
            devices: vec!["Pixel 9".into()],
            licences: vec![(Self::LICENCE.0.into(), Self::LICENCE.1.into())],
            ..NewUser::active(login)
        }
    }
}

#[async_trait]
impl Fixture for GoogleFixture {
    async fn create_user(&self, login: &str, aliases: &[&str]) -> AccountRef {
        let id = self.tenant.add_user(self.employee(login, aliases));
        self.tenant.add_member(&self.engineering, &id, "MEMBER");
        self.tenant.add_member(&self.all_staff, &id, "OWNER");
        AccountRef::new("google", id, login, AccountStatus::Active)
    }

    async fn delete_user(&self, external_id: &str) {
        self.tenant.remove_user(external_id);
    }

    fn secret(&self) -> &str {
        self.tenant.token()
    }

    fn action(&self, spec: &ActionSpec) -> Action {
        let params = match spec.name.as_str() {
            "google.move_to_ou" => serde_json::json!({"ou": Self::OFFBOARDED_OU}),
            "google.transfer_data" => serde_json::json!({"to": Self::MANAGER}),
            _ => return Action::new(spec.name.clone()),
        };
        Action::with_params(spec.name.clone(), &params)
            .unwrap_or_else(|_| Action::new(spec.name.clone()))
    }

    /// The tenant's recorded requests since the last call; `query` is a Google query.
    fn sent_requests(&self) -> Option<Vec<SentRequest>> {
        Some(self.sent.take(
            &self.tenant.requests(),
            &[("query", FilterSyntax::GoogleQuery)],
        ))
    }
}
