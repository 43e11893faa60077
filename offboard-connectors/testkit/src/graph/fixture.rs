//! The conformance [`Fixture`](crate::Fixture) of the simulated Microsoft tenant.

use std::sync::Arc;

use async_trait::async_trait;
use offboard_core::{AccountRef, AccountStatus};

use super::role_templates::{HELPDESK_ADMINISTRATOR, REPORTS_READER, SECURITY_ADMINISTRATOR};
use super::{GraphTenant, NewDevice, NewGroup, NewManagedDevice, NewUser};
use crate::conformance::{FilterSyntax, Fixture, RequestCursor, SentRequest};

/// Creates conformance users in a [`GraphTenant`], with access of every kind the Entra
/// connector removes.
///
/// Each user is an enabled cloud-only user with `userPrincipalName` = login and `mail` = the
/// first alias (or the login; more than one alias panics), a member of the assigned group
/// "Engineering", the dynamic group "All Sales" and the on-premises-synced group "AD Staff",
/// assigned an app role of "Salesforce", holding a `Principal` delegated grant to client
/// "Zoom", with phone, Microsoft Authenticator and FIDO2 methods besides the password, the
/// SKU "ENTERPRISEPACK", and the manager "Fixture Manager". Each also holds the directory
/// role Reports Reader tenant-wide, Helpdesk Administrator in an administrative unit and a PIM
/// eligibility for Security Administrator (for `entra.remove_directory_roles`, whose removal
/// and rollback need `RoleManagement.ReadWrite.Directory`: the fixture grants it).
#[derive(Debug, Clone)]
pub struct GraphFixture {
    tenant: Arc<GraphTenant>,
    sent: RequestCursor,
    engineering: String,
    all_sales: String,
    ad_staff: String,
    salesforce: String,
    zoom: String,
    graph_sp: String,
    e3: String,
    manager: String,
    admin_unit: String,
}

impl GraphFixture {
    /// Sets up the groups, apps and SKU in `tenant`.
    pub fn new(tenant: Arc<GraphTenant>) -> Self {
        let engineering = tenant.add_group(NewGroup::assigned("Engineering"));
        let all_sales = tenant.add_group(NewGroup::dynamic("All Sales"));
        let ad_staff = tenant.add_group(NewGroup::synced("AD Staff"));
        let salesforce = tenant.add_service_principal("Salesforce");
        let zoom = tenant.add_service_principal("Zoom");
        let graph_sp = tenant.add_service_principal("Microsoft Graph");
        let e3 = tenant.add_sku("ENTERPRISEPACK", 10_000);
        tenant.grant_role_management();
        let admin_unit = format!("/administrativeUnits/{}", uuid::Uuid::new_v4());
        tenant.add_grant(&zoom, &graph_sp, None, "User.Read");
        let manager = tenant.add_user(NewUser {
            display_name: "Fixture Manager".into(),
            ..NewUser::new(format!("fixture.manager.{}@example.test", &e3[..8]))
        });
        Self {
            tenant,
            sent: RequestCursor::default(),
            engineering,
            all_sales,
            ad_staff,
            salesforce,
            zoom,
            graph_sp,
            e3,
            manager,
            admin_unit,
        }
    }

    /// The tenant.
    pub fn tenant(&self) -> &Arc<GraphTenant> {
        &self.tenant
    }

    /// The id of the assigned group "Engineering".
    pub fn engineering(&self) -> &str {
        &self.engineering
    }

    /// The user a [`Fixture::create_user`] call creates, before it is added.
    pub fn employee(&self, login: &str, aliases: &[&str]) -> NewUser {
        assert!(
            aliases.len() <= 1,
            "the Graph fixture keeps one alias (mail), got {aliases:?}"
        );
        NewUser {
            mail: aliases.first().map(|a| (*a).to_owned()),
            groups: vec![
                self.engineering.clone(),
                self.all_sales.clone(),
                self.ad_staff.clone(),
            ],
            licenses: vec![self.e3.clone()],
            manager: Some(self.manager.clone()),
            auth_methods: vec![
                "phone".into(),
                "microsoftAuthenticator".into(),
                "fido2".into(),
            ],
            ..NewUser::new(login)
        }
    }

    /// Creates the user with its app role, grant and directory roles; returns its id.
    pub fn add_employee(&self, login: &str, aliases: &[&str]) -> String {
        let id = self.tenant.add_user(self.employee(login, aliases));
        self.tenant.assign_app_role(
            &id,
            &self.salesforce,
            "00000000-0000-0000-0000-000000000000",
        );
        self.tenant.add_grant(
            &self.zoom,
            &self.graph_sp,
            Some(&id),
            "Mail.Read offline_access",
        );
        self.tenant.assign_role(&id, REPORTS_READER, "/");
        self.tenant
            .assign_role(&id, HELPDESK_ADMINISTRATOR, &self.admin_unit);
        self.tenant
            .add_role_eligibility(&id, SECURITY_ADMINISTRATOR, "/", None);
        id
    }
}

#[async_trait]
impl Fixture for GraphFixture {
    /// [`GraphFixture::add_employee`], also owning an app registration "App of <login>" (for
    /// `entra.hand_over_owned`, which hands it to the manager) and a Windows laptop
    /// "Laptop of <login>", registered in Entra and enrolled in Intune (for
    /// `entra.disable_devices` and the Intune actions).
    async fn create_user(&self, login: &str, aliases: &[&str]) -> AccountRef {
        let id = self.add_employee(login, aliases);
        self.tenant
            .add_application(format!("App of {login}"), &[id.as_str()]);
        let laptop = format!("Laptop of {login}");
        self.tenant
            .add_device(&id, NewDevice::windows(laptop.clone()));
        self.tenant.add_managed_device(NewManagedDevice {
            device_name: laptop,
            operating_system: "Windows".into(),
            user_id: id.clone(),
        });
        AccountRef::new("entra", id, login, AccountStatus::Active)
    }

    async fn delete_user(&self, external_id: &str) {
        self.tenant.remove_user(external_id);
    }

    fn secret(&self) -> &str {
        self.tenant.client_secret()
    }

    /// The tenant's recorded requests since the last call; `$filter` is an OData filter.
    fn sent_requests(&self) -> Option<Vec<SentRequest>> {
        Some(
            self.sent
                .take(&self.tenant.requests(), &[("$filter", FilterSyntax::OData)]),
        )
    }
}
