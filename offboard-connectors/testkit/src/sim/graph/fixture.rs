//! The conformance [`Fixture`](crate::Fixture) of the simulated Microsoft tenant.

use std::sync::Arc;

use async_trait::async_trait;
use offboard_core::{AccountRef, AccountStatus, Action, ActionSpec};

use super::role_templates::{HELPDESK_ADMINISTRATOR, REPORTS_READER, SECURITY_ADMINISTRATOR};
use super::{GraphTenant, NewDevice, NewGroup, NewManagedDevice, NewMeeting, NewUser, NewWorkflow};
use crate::suite::conformance::{FilterSyntax, Fixture, RequestCursor, SentRequest};

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
/// and rollback need `RoleManagement.ReadWrite.Directory`: the fixture grants it). The tenant
/// has the leaver Lifecycle workflow [`GraphFixture::LEAVER_WORKFLOW`], which
/// `entra.run_lifecycle_workflow` is given.
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
    sales_tools: String,
    admin_unit: String,
}

impl GraphFixture {
    /// The display name of the fixture's leaver Lifecycle workflow.
    pub const LEAVER_WORKFLOW: &'static str = "Fixture leaver workflow";

    /// Sets up the groups, apps and SKU in `tenant`.
    pub fn new(tenant: Arc<GraphTenant>) -> Self {
        let engineering = tenant.add_group(NewGroup::assigned("Engineering"));
        let all_sales = tenant.add_group(NewGroup::dynamic("All Sales"));
        let ad_staff = tenant.add_group(NewGroup::synced("AD Staff"));
        let salesforce = tenant.add_service_principal("Salesforce");
        let zoom = tenant.add_service_principal("Zoom");
        let graph_sp = tenant.add_service_principal("Microsoft Graph");
        let e3 = tenant.add_sku("ENTERPRISEPACK", 10_000);
        tenant.add_lifecycle_workflow(NewWorkflow::leaver(Self::LEAVER_WORKFLOW));
        let sales_tools = tenant.add_access_package("Sales tools");
        // The suite runs a rollback right after the removal: processing finishes in between.
        tenant.deliver_access_package_requests_on_read(true);
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
            sales_tools,
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

    /// Creates the user with its app role, grant and directory roles, a member of the team
    /// "Team of `login`" (owned by the manager) and organiser of the meeting "Sync of `login`"
    /// a week from now with the manager; returns its id.
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
        self.tenant.add_team(
            &format!("Team of {login}"),
            &[self.manager.as_str()],
            &[id.as_str()],
        );
        let at = |days: i64, hour: u32| {
            (chrono::Utc::now().date_naive() + chrono::Days::new(days.unsigned_abs()))
                .and_hms_opt(hour, 0, 0)
                .map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string())
                .unwrap_or_default()
        };
        self.tenant.add_meeting(NewMeeting::new(
            &id,
            &format!("Sync of {login}"),
            &at(7, 10),
            &at(7, 11),
            &[self.manager.as_str()],
        ));
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
    /// [`GraphFixture::add_employee`], also owning an app registration "App of `login`" (for
    /// `entra.hand_over_owned`, which hands it to the manager) and a Windows laptop
    /// "Laptop of `login`", registered in Entra and enrolled in Intune (for
    /// `entra.disable_devices` and the Intune actions), and assigned the access package
    /// "Sales tools" (for `entra.remove_access_packages`; the tenant delivers its requests at
    /// the next read).
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
        self.tenant
            .assign_access_package(&id, &self.sales_tools, "delivered");
        AccountRef::new("entra", id, login, AccountStatus::Active)
    }

    async fn delete_user(&self, external_id: &str) {
        self.tenant.remove_user(external_id);
    }

    fn secret(&self) -> &str {
        self.tenant.client_secret()
    }

    /// `entra.run_lifecycle_workflow` runs [`GraphFixture::LEAVER_WORKFLOW`].
    fn action(&self, spec: &ActionSpec) -> Action {
        if spec.name.as_str() == "entra.run_lifecycle_workflow" {
            return Action::with_params(
                spec.name.clone(),
                &serde_json::json!({ "workflow": Self::LEAVER_WORKFLOW }),
            )
            .expect("JSON parameters");
        }
        Action::new(spec.name.clone())
    }

    /// The tenant's recorded requests since the last call; `$filter` is an OData filter.
    fn sent_requests(&self) -> Option<Vec<SentRequest>> {
        Some(
            self.sent
                .take(&self.tenant.requests(), &[("$filter", FilterSyntax::OData)]),
        )
    }
}
