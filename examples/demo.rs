//! `cargo run --example demo`: one offboarding end to end.
//!
//! Ada leaves. Her accounts are offboarded by the real connectors against simulated tenants on
//! loopback: Okta by `offboard-okta` (one request is answered 429 with Okta's
//! `X-Rate-Limit-Reset`, and the task waits for that reset and retries), Google Workspace by
//! `offboard-google` (backup codes, app passwords, OAuth tokens, sessions, suspension, password,
//! org unit, address list, groups, her phone wiped, Drive and Calendar transferred to her
//! manager), and one Microsoft tenant serves both `offboard-azure` (Entra ID: sign-in, sessions,
//! groups, app roles, consent grants, auth methods) and `offboard-o365` (automatic reply,
//! forwarding rule, OneDrive to the manager, then licences: the one she inherits from a group is
//! reported, not removed). Slack is offboarded over its SCIM 2.0 API by `offboard-scim` with the
//! `slack` profile, against the testkit's simulated SCIM service provider (deactivated, out of
//! its groups; a look-alike colleague in the same Slack is left alone), and Notion, which the
//! policy does not name, over SCIM too (`notion` profile): Ada was discovered in it and a
//! connector is configured, so its default actions run automatically. Salesforce is delegated
//! to a human through an issue the real
//! `offboard-jira` delegate files in a simulated Jira site (Sam takes it and closes it), an app
//! discovered earlier, not in the policy and without a connector (Miro) is delegated by email (the real `offboard-email`
//! delegate, writing to a pickup directory; its owner opens the link and presses Done on the
//! task page, `offboard_email::web`, served on loopback), and her Okta, Google and
//! Entra deletes are scheduled for the 30-day cleanup stage. Then an administrator deactivates
//! Grace in the Okta admin console, and the engine's watch loop (Okta as the source of truth,
//! polled every second with an incremental `lastUpdated` search) notices and offboards her
//! (Okta and Google) without anyone asking; the demo prints how long that took. With
//! `OFFBOARD_AD_URL` and the other `OFFBOARD_AD_*` variables set, Active Directory is offboarded
//! too (see the README).
//!
//! Runs and the audit trail live in a SQLite file (`offboard-demo.db`, or `$OFFBOARD_DEMO_DB`):
//! run the demo again and it shows the earlier runs, and finds Ada's run still open (waiting for
//! its cleanup stage), so a second offboarding of her is suppressed, not started (people are
//! identified by their Okta user id, which the simulator assigns the same way every time). The
//! simulated tenants live only as long as the process: a second run starts fresh ones, in which
//! Ada was never offboarded, and its verification says so. The audit trail is printed as counts
//! per app plus Ada's Google events in full (`OFFBOARD_DEMO_AUDIT=all` prints every event).
//! Everything runs on real time; it takes about six seconds. It ends by printing the email task
//! page's URL, still served on loopback so a person can open it: for a minute (or until Enter)
//! when stdin is a terminal, not at all otherwise (CI), or for `OFFBOARD_DEMO_SERVE_SECS`
//! seconds.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use offboard::audit::verify_chain;
use offboard::engine::LifecycleRules;
use offboard::policy::{AppPolicy, DepartureLimits, Method, PlannedAction};
use offboard::stores::SqliteStore;
use offboard::{
    AccountRef, AccountStatus, Action, ActionName, AppId, AuditKind, AuditQuery, Confirmation,
    Engine, Initiator, Limits, Manager, Person, Policy, RetryClass, RunQuery, RunRequest, Secret,
    Store, TaskState,
};
use offboard_ad::{AdConfigBuilder, AdConnector, actions as ad_actions};
use offboard_azure::AzureConfig;
use offboard_email::{ConfigKey as EmailKey, EmailBuilder};
use offboard_google::{GoogleConfig, Sku};
use offboard_jira::JiraBuilder;
use offboard_o365::O365Config;
use offboard_okta::{OktaConfig, OktaSource};
use offboard_scim::{ScimConfig, ScimProfile};
use offboard_testkit::Fixture;
use offboard_testkit::sim::google::{self as gsim, GoogleFixture, GoogleTenant};
use offboard_testkit::sim::graph::{
    self as msim, GraphTenant, NewDevice, NewGroup, NewManagedDevice,
};
use offboard_testkit::sim::jira::{DEFAULT_EMAIL, DEFAULT_TOKEN, JiraSim};
use offboard_testkit::sim::okta::{Faults, GroupType, NewUser, OktaTenant, RateFamily, RateLimits};
use offboard_testkit::sim::scim::{ScimProvider, ScimSettings};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let start = chrono::Utc::now();
    let t = move |at: chrono::DateTime<chrono::Utc>| {
        let s = (at - start).num_milliseconds() as f64 / 1000.0;
        if s < 3600.0 {
            format!("+{s:>8.2}s")
        } else {
            format!("+{:>7.1}d", s / 86400.0)
        }
    };

    // Okta: a simulated tenant on loopback (the Management API, stateful), with Ada and a
    // colleague in it, and the real connector authenticating with an API token.
    let okta_tenant = OktaTenant::start().await;
    okta_tenant.set_faults(Faults {
        latency: Duration::from_millis(15),
        ..Faults::default()
    });
    let engineering = okta_tenant.add_group("Engineering", GroupType::OktaGroup);
    let admins = okta_tenant.add_group("Admins", GroupType::OktaGroup);
    // Imported from AD: Okta cannot change it (okta.remove_groups reports it and leaves it).
    let ad_staff = okta_tenant.add_group("AD Staff", GroupType::AppGroup);
    let github = okta_tenant.add_app("GitHub");
    let slack = okta_tenant.add_app("Slack");
    okta_tenant.assign_app_to_group(&slack, &engineering);
    let mobile = "0oaMobileApp00000000";
    let ada_okta = okta_tenant.add_user(NewUser {
        second_email: Some("ada.lovelace@example.com".into()),
        groups: vec![engineering.clone(), admins.clone(), ad_staff.clone()],
        apps: vec![github.clone()],
        sessions: 2,
        oauth_tokens: vec![mobile.into()],
        grants: vec![(mobile.into(), "okta.users.read".into())],
        ..NewUser::active("ada@example.com")
    });
    let grace_okta = okta_tenant.add_user(NewUser {
        groups: vec![engineering.clone()],
        apps: vec![github.clone()],
        sessions: 1,
        oauth_tokens: vec![mobile.into()],
        grants: vec![(mobile.into(), "okta.users.read".into())],
        ..NewUser::active("grace@example.com")
    });
    let group_names: BTreeMap<String, &str> = [
        (engineering, "Engineering"),
        (admins, "Admins"),
        (ad_staff, "AD Staff"),
        (okta_tenant.everyone().to_owned(), "Everyone"),
    ]
    .into_iter()
    .collect();
    let okta = Arc::new(
        OktaConfig::new()
            .with_org_url(okta_tenant.uri())
            .with_allow_plain_http(true)
            .with_api_token(Secret::new(okta_tenant.token()))
            .with_timeout(Duration::from_secs(10))
            .build()?,
    );
    println!(
        "okta: simulated tenant at {} (offboard-okta, API token)",
        okta_tenant.uri()
    );

    // Google Workspace: a simulated tenant (Directory, Data Transfer and Licensing APIs) with
    // Ada, Grace and their manager, and the real connector. (In production it holds a service
    // account key and impersonates an admin; the simulator accepts the token it was started
    // with.)
    let google_tenant = Arc::new(GoogleTenant::start().await);
    google_tenant.set_faults(gsim::Faults {
        latency: Duration::from_millis(10),
        ..gsim::Faults::default()
    });
    // The testkit's fixture: org units /Engineering and /Offboarded, groups engineering@ and
    // all-staff@, and users in /Engineering with two OAuth tokens (Slack, Zoom), an app
    // password, 10 backup codes, 2 sessions, a phone (Pixel 9) and a Business Starter licence,
    // a MEMBER of engineering@ and an OWNER of all-staff@.
    let google_fixture = GoogleFixture::new(google_tenant.clone());
    let g_manager = google_tenant.add_user(gsim::NewUser::active("manager@example.com"));
    let ada_google = google_fixture
        .create_user("ada@example.com", &["ada.lovelace@example.com"])
        .await
        .external_id;
    let grace_google = google_fixture
        .create_user("grace@example.com", &[])
        .await
        .external_id;
    let (g_engineering, g_all_staff) = google_fixture.groups();
    let g_group_names: BTreeMap<String, &str> = [
        (g_engineering.to_owned(), "engineering@"),
        (g_all_staff.to_owned(), "all-staff@"),
    ]
    .into_iter()
    .collect();
    let google = Arc::new(
        GoogleConfig::new()
            .with_base_url(google_tenant.uri())
            .with_allow_plain_http(true)
            .with_access_token(Secret::new(google_tenant.token()))
            .with_licensing_url(google_tenant.uri())
            .with_licence_skus([Sku::new(GoogleFixture::LICENCE.0, GoogleFixture::LICENCE.1)])
            // The simulated transfer completes on its second read: poll it often.
            .with_transfer_polling(Duration::from_secs(10), Duration::from_millis(200))
            .with_timeout(Duration::from_secs(10))
            .build()?,
    );
    println!(
        "google: simulated tenant at {} (offboard-google)",
        google_tenant.uri()
    );

    // Microsoft: one simulated tenant (Graph and its token endpoint) serving both the Entra ID
    // connector and the Office 365 connector, each with its own client-credentials login.
    let ms_tenant = GraphTenant::start().await;
    ms_tenant.set_faults(msim::Faults {
        latency: Duration::from_millis(10),
        ..msim::Faults::default()
    });
    let e5 = ms_tenant.add_sku("SPE_E5", 100);
    let ems = ms_tenant.add_sku("EMS", 100);
    let m_engineering = ms_tenant.add_group(NewGroup::assigned("Engineering"));
    let m_project = ms_tenant.add_group(NewGroup::assigned("Project Apollo"));
    // Group-based licensing: everyone in "All Staff" (a dynamic group) gets EMS.
    let m_all_staff = ms_tenant.add_group(NewGroup {
        licenses: vec![ems.clone()],
        ..NewGroup::dynamic("All Staff")
    });
    let servicenow = ms_tenant.add_service_principal("ServiceNow");
    let zoom = ms_tenant.add_service_principal("Zoom");
    let graph_api = ms_tenant.add_service_principal("Microsoft Graph");
    let mary_ms = ms_tenant.add_user(msim::NewUser {
        display_name: "Mary Manager".into(),
        ..msim::NewUser::new("manager@example.com")
    });
    let ada_ms = ms_tenant.add_user(msim::NewUser {
        display_name: "Ada Lovelace".into(),
        manager: Some(mary_ms.clone()),
        groups: vec![
            m_engineering.clone(),
            m_project.clone(),
            m_all_staff.clone(),
        ],
        licenses: vec![e5.clone()],
        auth_methods: vec!["phone".into(), "microsoftAuthenticator".into()],
        ..msim::NewUser::new("ada@example.com")
    });
    ms_tenant.assign_app_role(&ada_ms, &servicenow, "00000000-0000-0000-0000-000000000000");
    ms_tenant.add_grant(&zoom, &graph_api, Some(&ada_ms), "Mail.Read offline_access");
    // Ada is a Global Administrator (and eligible, through PIM, to become Security
    // Administrator), holds the "Sales tools" access package, is in the "Apollo" team and
    // organises next week's Apollo sync with Mary. The app may change roles
    // (RoleManagement.ReadWrite.Directory granted).
    ms_tenant.grant_role_management();
    ms_tenant.assign_role(&ada_ms, msim::role_templates::GLOBAL_ADMINISTRATOR, "/");
    ms_tenant.add_role_eligibility(
        &ada_ms,
        msim::role_templates::SECURITY_ADMINISTRATOR,
        "/",
        None,
    );
    let sales_tools = ms_tenant.add_access_package("Sales tools");
    ms_tenant.assign_access_package(&ada_ms, &sales_tools, "delivered");
    let apollo_team = ms_tenant.add_team("Apollo", &[&mary_ms], &[&ada_ms]);
    let next_week = |hour: u32| {
        (chrono::Utc::now().date_naive() + chrono::Days::new(7))
            .and_hms_opt(hour, 0, 0)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string())
            .unwrap_or_default()
    };
    let apollo_sync = ms_tenant.add_meeting(msim::NewMeeting::new(
        &ada_ms,
        "Apollo sync",
        &next_week(10),
        &next_week(11),
        &[&mary_ms],
    ));
    // Ada owns the team's app registration and has a company laptop, registered in Entra and
    // enrolled in Intune with her as its primary user.
    let apollo_app = ms_tenant.add_application("Apollo Portal", &[&ada_ms]);
    let laptop = ms_tenant.add_device(&ada_ms, NewDevice::windows("ADA-LAPTOP"));
    let laptop_mdm = ms_tenant.add_managed_device(NewManagedDevice {
        device_name: "ADA-LAPTOP".into(),
        operating_system: "Windows".into(),
        user_id: ada_ms.clone(),
    });
    let sku_names: BTreeMap<String, &str> = [(e5, "SPE_E5"), (ems, "EMS")].into_iter().collect();
    // Both connectors sign in to the tenant with client credentials (one app registration).
    macro_rules! graph_login {
        ($config:expr) => {
            $config
                .with_tenant_id(ms_tenant.tenant_id())
                .with_client_id(ms_tenant.client_id())
                .with_client_secret(Secret::new(ms_tenant.client_secret()))
                .with_graph_url(ms_tenant.graph_url())
                .with_allow_plain_http(true)
                .with_token_url(ms_tenant.token_url())
                .with_timeout(Duration::from_secs(10))
        };
    }
    let entra = Arc::new(graph_login!(AzureConfig::new()).build()?);
    let o365 = Arc::new(graph_login!(O365Config::new()).build()?);
    println!(
        "microsoft: simulated tenant at {} (offboard-azure as entra, offboard-o365 as o365)",
        ms_tenant.uri()
    );
    // Without the host's Exchange admin hook, three o365 actions are not offered: the policy
    // leaves them out, and the connector says why.
    let (missing, why): (Vec<&str>, Vec<&str>) = o365
        .unavailable()
        .iter()
        .map(|(name, why)| (name.as_str(), why.as_str()))
        .unzip();
    println!(
        "o365: not in the policy: {} ({})",
        missing.join(", "),
        why.first().copied().unwrap_or("-")
    );

    // Slack: a simulated SCIM 2.0 service provider behaving as Slack documents (DELETE only
    // deactivates, no ETags), and the real SCIM connector with the `slack` profile (one
    // connector per SCIM app, its actions named after it). Ada's Slack handle is `ada`, found by
    // her email; Ada Lovett's handle is `ada.lovelace`, the local part of Ada's alias, at another
    // domain: a look-alike whom nothing may touch. Both are in #engineering and #announcements.
    let slack_sp = ScimProvider::start(ScimSettings {
        delete_deactivates: true,
        etag_supported: false,
        ..ScimSettings::default()
    })
    .await;
    let ada_slack = slack_sp.add_user("ada", &["ada@example.com"]);
    let lookalike_slack = slack_sp.add_user("ada.lovelace", &["ada.lovett@example.org"]);
    let slack_groups: BTreeMap<String, &str> = ["#engineering", "#announcements"]
        .into_iter()
        .map(|name| (slack_sp.add_group(name), name))
        .collect();
    for g in slack_groups.keys() {
        slack_sp.add_member(g, &ada_slack);
        slack_sp.add_member(g, &lookalike_slack);
    }
    let slack_scim = Arc::new(
        ScimConfig::new("slack")
            .with_base_url(slack_sp.base_url())
            .with_allow_plain_http(true)
            .with_bearer_token(Secret::new(slack_sp.token()))
            .with_profile(ScimProfile::SLACK)
            .with_timeout(Duration::from_secs(10))
            .build()?,
    );
    println!(
        "slack: simulated SCIM service provider at {} (offboard-scim, profile slack)",
        slack_sp.base_url()
    );

    // Notion: a second SCIM app, with the `notion` profile (deactivation is the DELETE that
    // removes a member from the workspace). The policy does not name Notion: Ada was discovered
    // in it, and a configured connector makes a discovered app automatic (its default actions:
    // out of the groups, then removed). A look-alike member stays.
    let notion_sp = ScimProvider::start(ScimSettings {
        etag_supported: false,
        ..ScimSettings::default()
    })
    .await;
    let ada_notion = notion_sp.add_user("ada@example.com", &["ada@example.com"]);
    let lookalike_notion =
        notion_sp.add_user("ada.lovett@example.org", &["ada.lovett@example.org"]);
    let wiki = notion_sp.add_group("Engineering wiki");
    notion_sp.add_member(&wiki, &ada_notion);
    notion_sp.add_member(&wiki, &lookalike_notion);
    let notion_scim = Arc::new(
        ScimConfig::new("notion")
            .with_base_url(notion_sp.base_url())
            .with_allow_plain_http(true)
            .with_bearer_token(Secret::new(notion_sp.token()))
            .with_profile(ScimProfile::NOTION)
            .with_timeout(Duration::from_secs(10))
            .build()?,
    );
    println!(
        "notion: simulated SCIM service provider at {} (offboard-scim, profile notion, not in the policy)",
        notion_sp.base_url()
    );

    // Jira: a simulated site on loopback where Sam works, and the real delegate filing issues
    // in project IT and polling them every second.
    let jira_site = Arc::new(
        JiraSim::builder()
            .user("acc-sam", "Sam Admin", "sam@example.com")
            .start()
            .await,
    );
    let jira = Arc::new(
        JiraBuilder::new()
            .with_site(jira_site.uri())
            .with_allow_plain_http(true)
            .with_email(DEFAULT_EMAIL)
            .with_api_token(DEFAULT_TOKEN)
            .with_project("IT")
            .with_poll_interval(Duration::from_secs(1))
            .with_timeout(Duration::from_secs(10))
            .build()?,
    );
    println!(
        "jira: simulated site at {} (offboard-jira, project IT)",
        jira_site.uri()
    );
    // Email: the real offboard-email delegate. With no mail server here, it writes its messages
    // to a pickup directory; its task page (offboard_email::web) is served on loopback.
    let mail_dir = tempfile::tempdir()?;
    let pages = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let task_url = format!("http://{}/offboard/tasks", pages.local_addr()?);

    // Active Directory, only when pointed at a domain (a test OU: the demo changes what it finds).
    let ad = if std::env::var_os("OFFBOARD_AD_URL").is_some() {
        let unusable =
            |e: offboard::Error| format!("OFFBOARD_AD_URL is set, but AD is not usable: {e}");
        let config = AdConfigBuilder::from_env()
            .and_then(|b| b.build())
            .map_err(unusable)?;
        println!(
            "ad: {} (users under {}; disabled ones go to {})",
            config.url(),
            config.base_dn(),
            config.disabled_ou()
        );
        Some(Arc::new(
            AdConnector::connect(config).await.map_err(unusable)?,
        ))
    } else {
        println!(
            "ad: not configured; set OFFBOARD_AD_URL, OFFBOARD_AD_BIND_DN, OFFBOARD_AD_PASSWORD, \
             OFFBOARD_AD_BASE_DN and OFFBOARD_AD_DISABLED_OU to offboard a test domain too (README)"
        );
        None
    };

    // The embedded default: one SQLite file. Run the demo twice to see the history kept.
    let db = std::env::var("OFFBOARD_DEMO_DB").unwrap_or_else(|_| "offboard-demo.db".into());
    let store = Arc::new(SqliteStore::open(&db).await?);
    let email = Arc::new(
        EmailBuilder::new()
            .with_pickup_dir(mail_dir.path())
            .with_from("offboard@example.com")
            .with_task_url(&task_url)
            .with_config(EmailKey::AllowPlainHttp, "true")
            // Fixed for the demo, so links mailed in an earlier demo still open; a host uses a
            // long random secret.
            .with_signing_key("offboard-demo-signing-key-not-a-secret")
            .with_owner("miro-owner@example.com")
            .with_store(store.clone())
            .build()?,
    );
    let history = store.list_runs(RunQuery::default()).await?;
    let seq_before = store
        .audit(AuditQuery::all())
        .await?
        .last()
        .map_or(0, |e| e.seq);
    println!(
        "store: SQLite file {db} ({} earlier runs, {seq_before} audit events)",
        history.len()
    );
    for r in history.iter().take(5) {
        println!(
            "  earlier run {} for {}: {:?}, created {}",
            r.id,
            r.person,
            r.state,
            r.created_at.format("%Y-%m-%d %H:%M")
        );
    }
    println!();
    // People are known by their Okta user id, as the Okta source of truth reports them: the
    // watch loop then recognises Ada's suspension by her own run as that run, not a new leaver.
    let ada = Person::new(ada_okta.as_str(), "ada@example.com")
        .with_name("Ada Lovelace")
        .with_alias("ada.lovelace@example.com")
        .with_manager(Manager {
            id: Some("e-7".into()),
            email: "manager@example.com".into(),
        });

    // The inventory: apps Ada was discovered in earlier (by IdP app links, say).
    store
        .upsert_accounts(
            &ada.id,
            &[
                AccountRef::new(
                    "salesforce",
                    "005A0000001",
                    "ada@example.com",
                    AccountStatus::Active,
                ),
                AccountRef::new("figma", "f-88", "ada@example.com", AccountStatus::Active),
                AccountRef::new(
                    "notion",
                    &ada_notion,
                    "ada@example.com",
                    AccountStatus::Active,
                ),
                AccountRef::new("miro", "m-7", "ada@example.com", AccountStatus::Active),
            ],
            start - chrono::Duration::days(200),
        )
        .await?;

    // Okta is also the source of truth the engine watches: who is active, who left.
    let okta_source = Arc::new(OktaSource::for_connector(&okta));

    let mut policy = Policy::from_toml(include_str!("policy.toml"))?;
    // Google and Microsoft: 20 calls a second, 4 at once, per connector.
    let cloud = Limits::default().with_rate(20).with_concurrency(4);
    let mut builder = Engine::builder()
        .store(store.clone())
        .connector_with_limits(
            okta.clone(),
            Limits::default().with_rate(10).with_concurrency(4),
        )
        .connector_with_limits(google.clone(), cloud)
        .connector_with_limits(entra.clone(), cloud)
        .connector_with_limits(o365.clone(), cloud)
        .connector_with_limits(slack_scim.clone(), cloud)
        .connector_with_limits(notion_scim.clone(), cloud);
    if let Some(ad) = &ad {
        // AD joins the policy only when configured: disable, empty the groups, move to the
        // disabled-users OU (the connector orders the last two after the first), on the last day.
        let last_day = |name: ActionName| PlannedAction {
            action: Action::new(name),
            stage: "last_day".into(),
            line: 0,
        };
        policy.apps.insert(
            AppId::new(offboard_ad::APP),
            AppPolicy {
                method: Method::Automatic {
                    actions: vec![
                        last_day(ad_actions::DISABLE),
                        last_day(ad_actions::REMOVE_GROUPS),
                        last_day(ad_actions::MOVE_TO_DISABLED_OU),
                    ],
                },
                protected_accounts: Vec::new(),
                line: 0,
            },
        );
        builder = builder.connector_with_limits(
            ad.clone(),
            Limits::default().with_rate(5).with_concurrency(2),
        );
    }
    let engine = builder
        .delegate(jira.clone())
        .delegate(email.clone())
        .policy(policy)
        .delegation_poll(Duration::from_secs(1))
        .idle_poll(Duration::from_millis(200))
        .source(okta_source, Duration::from_secs(1))
        .lifecycle(LifecycleRules {
            domains: vec!["example.com".into()],
            debounce: Duration::ZERO,
            // Runs started by Okta confirm their own critical steps (audited as `source:okta`);
            // never for someone who merely vanished from the listing.
            auto_confirm_critical: true,
            // The circuit breaker: a poll turning more than 25 people, or 5 % of those Okta
            // lists, past at once is held until an admin releases it (one leaver here).
            departures: DepartureLimits::default(),
        })
        .build()?;
    engine.poll_sources().await?; // initial sync: everyone current, nothing starts
    let site = axum::Router::new().nest(
        &email.task_path(),
        offboard_email::web::router(email.clone(), engine.clone()),
    );
    let served = tokio::spawn(async move { axum::serve(pages, site).await });
    println!(
        "email: offboard-email, messages to {}, task page at {task_url}",
        mail_dir.path().display()
    );

    // 1. Plan (dry run: lookups only).
    let request = RunRequest::new(
        ada.clone(),
        Initiator::Admin {
            actor: "it-admin@example.com".into(),
        },
    )
    .with_reason("resigned; last day today");
    let plan = engine.plan(request).await?;
    println!("{plan}");

    // 2. Submit with a confirmation of the critical deletes: it quotes the digest of what it
    //    releases. One quoting another digest is refused (and audited); with none at all, the
    //    critical actions would be held while the rest runs, until `engine.confirm`.
    let wrong = Confirmation::new("0".repeat(64), "it-admin@example.com");
    let refused = engine.submit(plan.clone(), Some(wrong)).await.unwrap_err();
    println!(
        "submit with a confirmation of another digest: refused ({})\n",
        refused.message().split(';').next().unwrap_or("")
    );
    let submitted = engine
        .submit(
            plan.clone(),
            Some(Confirmation::of(&plan, "it-admin@example.com")),
        )
        .await;
    let (run_id, ada_fresh) = match submitted {
        Ok(id) => {
            println!("submitted run {id}, confirmed by it-admin@example.com\n");
            (id, true)
        }
        // A run for Ada from an earlier demo is still open: nothing new starts (audited).
        Err(e) if e.kind() == offboard::ErrorKind::Conflict => {
            println!("submit: {}\n", e.message());
            let open = e
                .context()
                .find(|(k, _)| *k == "open_run")
                .and_then(|(_, v)| v.parse().ok())
                .ok_or("conflict without open run")?;
            (open, false)
        }
        Err(e) => return Err(e.into()),
    };

    // A protected person is refused outright.
    let ceo = Person::new("e-1", "ceo@example.com");
    let err = engine
        .plan(RunRequest::new(
            ceo,
            Initiator::Admin {
                actor: "it-admin@example.com".into(),
            },
        ))
        .await
        .unwrap_err();
    println!("plan for ceo@example.com: {err}\n");

    // 3. Progress, as a host would draw it.
    let mut updates = engine.subscribe();
    let printer = tokio::spawn(async move {
        while let Ok(u) = updates.recv().await {
            if let (Some(label), Some(state)) = (&u.label, &u.task_state) {
                let what = match state {
                    TaskState::Completed { outcome, detail } => {
                        format!(
                            "completed ({outcome}){}",
                            detail
                                .as_ref()
                                .map(|d| format!(": {d}"))
                                .unwrap_or_default()
                        )
                    }
                    TaskState::Retrying {
                        not_before,
                        last_error,
                        ..
                    } => {
                        let hint = match last_error.retry {
                            RetryClass::Retryable { after: Some(after) } => {
                                format!(" (vendor's wait hint {:.2}s)", after.as_secs_f64())
                            }
                            _ => String::new(),
                        };
                        format!(
                            "retrying at {}{hint} after: {}",
                            t(*not_before),
                            last_error.message
                        )
                    }
                    TaskState::Delegated { ticket } => {
                        format!(
                            "delegated: {} {} assignee {}",
                            ticket.key,
                            ticket.url,
                            ticket.assignee.as_deref().unwrap_or("-")
                        )
                    }
                    TaskState::Failed { error } => format!("FAILED: {error}"),
                    other => other.name().to_owned(),
                };
                // The action's name: its parameters are in the plan above.
                let name = label.split('{').next().unwrap_or(label);
                println!("{} {name:<32} {what}   [run {:?}]", t(u.at), u.run_state);
            }
        }
    });

    // 4. Humans: Sam takes Ada's Salesforce issue in Jira after a second and closes it a
    //    second later; the Miro owner answers the email after two seconds. (When Ada's run is
    //    from an earlier demo, her issue was closed then, in that process's Jira.)
    let human = {
        let (engine, site, mail_dir, task_url) = (
            engine.clone(),
            jira_site.clone(),
            mail_dir.path().to_owned(),
            task_url.clone(),
        );
        tokio::spawn(async move {
            let began = tokio::time::Instant::now();
            let ticket = loop {
                let state = engine.status(run_id).await.ok().and_then(|run| {
                    let mut tasks = run.tasks.into_iter();
                    tasks
                        .find(|x| x.app.as_str() == "salesforce")
                        .map(|x| x.state)
                });
                match state {
                    Some(TaskState::Delegated { ticket }) => break Some(ticket),
                    Some(state) if !state.is_terminal() && began.elapsed().as_secs() < 20 => {
                        tokio::time::sleep(Duration::from_millis(100)).await
                    }
                    _ => break None,
                }
            };
            tokio::time::sleep_until(began + Duration::from_secs(1)).await;
            if let Some(ticket) = &ticket {
                site.assign(&ticket.key, "sam@example.com");
                println!(
                    "{} (jira) sam@example.com takes {}: assignee Sam",
                    t(chrono::Utc::now()),
                    ticket.key
                );
            }
            tokio::time::sleep_until(began + Duration::from_secs(2)).await;
            let link = answer_email(&mail_dir, &task_url).await;
            if let Some((_, answer)) = &link {
                println!(
                    "{} (email) miro-owner@example.com opens the link and presses Done: {answer}",
                    t(chrono::Utc::now()),
                );
            }
            if let Some(ticket) = &ticket {
                tokio::time::sleep_until(began + Duration::from_millis(2200)).await;
                site.transition(&ticket.key, "Done");
                println!(
                    "{} (jira) sam@example.com moves {} to Done: {}",
                    t(chrono::Utc::now()),
                    ticket.key,
                    ticket.url
                );
            }
            link.map(|(link, _)| link)
        })
    };

    // The injected outage: Okta answers the next user write 429 (rate limit spent), and its
    // X-Rate-Limit-Reset is the end of a fresh 3-second window, so the task that got it waits
    // until then and retries (the watch loop's user listings are another family, unaffected).
    // Only when Ada's run is new: otherwise no Okta task is due.
    if ada_fresh {
        okta_tenant.set_limits(RateLimits::enterprise().with_window_secs(3));
        okta_tenant.fail_next_in(RateFamily::UserWrite, 1, 429);
    }

    let workers = engine.start();
    // Wait until everything due now is done; the cleanup stage waits 30 days.
    let e2 = engine.clone();
    let due_now_done = move |r: &offboard::Run| {
        let now = e2.now();
        r.tasks
            .iter()
            .all(|t| t.state.is_terminal() || t.not_before > now)
    };
    let done = engine.wait_for(run_id, due_now_done).await?;
    let email_link = human.await?;
    for task in done.tasks.iter().filter(|x| !x.state.is_terminal()) {
        let when = task.not_before.format("%Y-%m-%d");
        println!(
            "{} {:<32} scheduled for {when}",
            t(engine.now()),
            task.label()
        );
    }

    // 5. Nobody asks: an administrator deactivates Grace in Okta's admin console, and the
    //    watch loop (polling Okta every second) starts and finishes her offboarding.
    println!(
        "\n{} okta admin console: grace@example.com deactivated",
        t(engine.now())
    );
    let changed_at = engine.now();
    okta_tenant.deactivate_user(&grace_okta);
    let grace_run = loop {
        if let Some(r) = store
            .list_runs(RunQuery::person(grace_okta.as_str()))
            .await?
            .first()
        {
            break r.id;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let fresh = engine.status(grace_run).await?.created_at >= changed_at;
    if !fresh {
        // The watch loop still notices her, and finds her run from an earlier demo open.
        let suppressed = |e: &offboard::AuditEvent| matches!(&e.kind, AuditKind::Suppressed { person, .. } if person.as_str() == grace_okta);
        let began = tokio::time::Instant::now();
        while began.elapsed() < Duration::from_secs(5)
            && !store
                .audit(AuditQuery::all())
                .await?
                .iter()
                .any(|e| e.seq > seq_before && suppressed(e))
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        println!(
            "{} her run from an earlier demo is still open: the watch loop's trigger was suppressed",
            t(engine.now())
        );
    }
    let automatic_last_day = |t: &&offboard::Task| t.stage == "last_day" && t.action().is_some();
    let last_day_done = |r: &offboard::Run| {
        r.tasks
            .iter()
            .filter(automatic_last_day)
            .all(|t| t.state.is_terminal())
    };
    let grace_done = engine.wait_for(grace_run, last_day_done).await?;
    let revoked_at = grace_done
        .tasks
        .iter()
        .filter(automatic_last_day)
        .filter_map(|t| t.finished_at)
        .max()
        .unwrap_or(changed_at);
    if fresh {
        let ticket = grace_done
            .tasks
            .iter()
            .find_map(|x| match &x.state {
                TaskState::Delegated { ticket } => Some(ticket.key.clone()),
                _ => None,
            })
            .unwrap_or_else(|| "-".into());
        println!(
            "{} grace: every automatic last-day action done {:.2}s after her deactivation in Okta (her Salesforce issue {ticket} is open; her deletes wait for the cleanup stage)",
            t(engine.now()),
            (revoked_at - changed_at).num_milliseconds() as f64 / 1000.0
        );
    }
    workers.shutdown().await;
    tokio::task::yield_now().await;
    printer.abort();

    println!("\nrun {run_id}: {:?}", done.state);
    let m = Engine::metrics(&done);
    println!(
        "offboarding time so far {:?}, time to revoke {:?}",
        m.offboarding_time.unwrap_or_default(),
        m.time_to_revoke.unwrap_or_default()
    );

    // 6. Verification re-reads every system.
    let report = engine.verify(run_id).await?;
    println!(
        "\nverification: {:.0}% of checked accounts revoked",
        report.accuracy() * 100.0
    );
    for a in &report.apps {
        match a.revoked {
            Some(r) => println!(
                "  {:<12} revoked={r} {}",
                a.app.as_str(),
                a.remaining.join(", ")
            ),
            None => println!(
                "  {:<12} not checked: {}",
                a.app.as_str(),
                a.error.as_deref().unwrap_or("")
            ),
        }
    }
    if !ada_fresh {
        println!(
            "  (the simulated tenants are new in this process: her run changed the tenants of the \
             process that started it. Okta and Google number users the same way every time, so \
             they show Ada as never offboarded; Microsoft and the SCIM provider (Slack) give new \
             users new random ids, so the accounts her run recorded are not found there, which \
             verification counts as gone)"
        );
    }
    // The simulated tenants, read directly.
    for (who, id) in [("ada", &ada_okta), ("grace", &grace_okta)] {
        match okta_tenant.user(id) {
            Some(u) => {
                let groups: Vec<&str> = u
                    .groups
                    .iter()
                    .map(|g| group_names.get(g).copied().unwrap_or(g.as_str()))
                    .collect();
                println!(
                    "  okta tenant now:      {who:<5} {} ({} sessions, {} refresh tokens, {} grants, \
                     {} direct apps, groups: {})",
                    u.status,
                    u.sessions,
                    u.oauth_tokens.len(),
                    u.grants.len(),
                    u.apps.len(),
                    groups.join(", ")
                );
            }
            None => println!("  okta tenant now:      {who:<5} deleted"),
        }
    }
    for (who, id) in [("ada", &ada_google), ("grace", &grace_google)] {
        match google_tenant.user(id) {
            Some(u) => {
                let groups: Vec<String> = u
                    .groups
                    .iter()
                    .map(|(g, role)| {
                        let name = g_group_names.get(g).copied().unwrap_or(g.as_str());
                        format!("{name} {role}")
                    })
                    .collect();
                let devices: Vec<String> = google_tenant
                    .devices(id)
                    .iter()
                    .map(|d| format!("{} {}", d.model, d.status))
                    .collect();
                println!(
                    "  google tenant now:    {who:<5} {} in {}{} ({} backup codes, {} app \
                     passwords, {} OAuth tokens, {} sessions, {} password resets, {} licences; \
                     groups: {}; devices: {})",
                    if u.suspended { "suspended" } else { "active" },
                    u.org_unit_path,
                    if u.include_in_gal {
                        ""
                    } else {
                        ", hidden from GAL"
                    },
                    u.backup_codes,
                    u.asps.len(),
                    u.tokens.len(),
                    u.sessions,
                    u.password_resets,
                    u.licences.len(),
                    if groups.is_empty() {
                        "-".into()
                    } else {
                        groups.join(", ")
                    },
                    devices.join(", ")
                );
            }
            None => println!("  google tenant now:    {who:<5} deleted"),
        }
    }
    let google_users: BTreeMap<String, String> = [&ada_google, &grace_google, &g_manager]
        .into_iter()
        .filter_map(|id| Some((id.clone(), google_tenant.user(id)?.primary_email)))
        .collect();
    let google_user = |id: &String| google_users.get(id).unwrap_or(id).clone();
    for x in google_tenant.transfers() {
        println!(
            "  google transfer now:  {} of {} applications from {} to {}: {}",
            x.id,
            x.applications.len(),
            google_user(&x.old_owner),
            google_user(&x.new_owner),
            x.status
        );
    }
    match ms_tenant.user(&ada_ms) {
        Some(u) if !u.deleted => {
            let skus = |ids: &std::collections::BTreeSet<String>| -> String {
                let names: Vec<&str> = ids
                    .iter()
                    .map(|i| sku_names.get(i).copied().unwrap_or(i.as_str()))
                    .collect();
                if names.is_empty() {
                    "-".into()
                } else {
                    names.join(", ")
                }
            };
            let reply = u
                .automatic_replies
                .as_ref()
                .and_then(|r| r["status"].as_str().map(str::to_owned))
                .unwrap_or_else(|| "-".into());
            println!(
                "  microsoft tenant now: ada   {} ({} session revocations, {} groups, {} app \
                 roles, {} grants, auth methods: {})",
                if u.account_enabled {
                    "enabled"
                } else {
                    "sign-in blocked"
                },
                u.session_revocations,
                u.groups.len(),
                u.app_roles.len(),
                u.grants.len(),
                u.auth_methods.join(", ")
            );
            println!(
                "                        ada   licences direct: {}, inherited: {}; automatic \
                 reply {reply}; {} inbox rules; {} OneDrive permissions",
                skus(&u.licenses),
                skus(&u.inherited_licenses),
                u.message_rules.len(),
                u.drive_permissions.len()
            );
        }
        _ => println!("  microsoft tenant now: ada   deleted"),
    }
    // Entitlement management processes removal requests asynchronously: let it catch up.
    ms_tenant.deliver_access_package_requests();
    let role_names = |grants: Vec<msim::RoleGrantState>| -> String {
        let names: Vec<&str> = grants
            .iter()
            .map(|g| {
                msim::BUILT_IN_ROLES
                    .iter()
                    .find(|(id, _)| *id == g.role_definition_id)
                    .map_or(g.role_definition_id.as_str(), |(_, n)| *n)
            })
            .collect();
        if names.is_empty() {
            "-".into()
        } else {
            names.join(", ")
        }
    };
    println!(
        "                        ada   directory roles: {}; eligible (PIM): {}; access packages \
         delivered: {}; Apollo team members: {}; Apollo sync: {}",
        role_names(ms_tenant.role_assignments(&ada_ms)),
        role_names(ms_tenant.role_eligibilities(&ada_ms)),
        ms_tenant
            .access_package_assignments(&ada_ms)
            .iter()
            .filter(|a| a.state == "delivered")
            .count(),
        ms_tenant.team_members(&apollo_team).len(),
        match ms_tenant.meeting(&apollo_sync) {
            Some(m) if !m.attendee_cancellations.is_empty() => "cancelled, Mary told".to_owned(),
            Some(_) => "still on".to_owned(),
            None => "-".to_owned(),
        }
    );
    let display = |id: &String| {
        ms_tenant
            .user(id)
            .map_or_else(|| id.clone(), |u| u.upn.clone())
    };
    println!(
        "                        app registration Apollo Portal owned by: {}",
        ms_tenant
            .owners(&apollo_app)
            .iter()
            .map(display)
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let (Some(d), Some(m)) = (
        ms_tenant.device(&laptop),
        ms_tenant.managed_device(&laptop_mdm),
    ) {
        println!(
            "                        laptop {}: Entra device {}; Intune: {}",
            d.display_name,
            if d.account_enabled {
                "enabled"
            } else {
                "disabled"
            },
            if m.actions.is_empty() {
                "managed".to_owned()
            } else {
                m.actions
                    .iter()
                    .map(|(a, s)| format!("{a} {s}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
    }
    for (who, id) in [("ada", &ada_slack), ("look-alike", &lookalike_slack)] {
        match slack_sp.user(id) {
            Some(u) => {
                let groups: Vec<&str> = u
                    .groups
                    .iter()
                    .map(|g| slack_groups.get(g).copied().unwrap_or(g.as_str()))
                    .collect();
                println!(
                    "  slack (SCIM) now:     {who:<5} userName {} ({}): active={}, groups: {}",
                    u.user_name,
                    u.emails.join(", "),
                    u.active,
                    if groups.is_empty() {
                        "-".into()
                    } else {
                        groups.join(", ")
                    }
                );
            }
            None => println!("  slack (SCIM) now:     {who:<5} deleted"),
        }
    }
    for (who, id) in [("ada", &ada_notion), ("look-alike", &lookalike_notion)] {
        let now = match notion_sp.user(id) {
            Some(u) => format!(
                "userName {}: active={}, groups: {}",
                u.user_name,
                u.active,
                if u.groups.contains(&wiki) {
                    "Engineering wiki"
                } else {
                    "-"
                }
            ),
            None => "removed from the workspace".into(),
        };
        println!("  notion (SCIM) now:    {who:<5} {now}");
    }
    for issue in jira_site.issues() {
        println!(
            "  jira site now:   {} {:<6} assignee {:<8} \"{}\"",
            issue.key,
            issue.status,
            issue.assignee.as_deref().unwrap_or("-"),
            issue.summary
        );
    }

    // 7. The audit trail, hash-chained: counts per app, and the events of Ada's Google tasks in
    //    full (every event with OFFBOARD_DEMO_AUDIT=all).
    let all = store.audit(AuditQuery::all()).await?;
    let events: Vec<_> = all.iter().filter(|e| e.seq > seq_before).collect();
    let mut per_app: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &events {
        *per_app
            .entry(e.app.as_ref().map_or("-", |a| a.as_str()))
            .or_default() += 1;
    }
    let counts: Vec<String> = per_app.iter().map(|(a, n)| format!("{a} {n}")).collect();
    println!(
        "\naudit trail of this demo: {} events ({}); {} in the file",
        events.len(),
        counts.join(", "),
        all.len()
    );
    let mut labels = BTreeMap::new();
    for id in [run_id, grace_run] {
        for x in engine.status(id).await?.tasks {
            labels.insert(
                x.id,
                x.action().map_or_else(|| x.label(), |a| a.name.to_string()),
            );
        }
    }
    // A short trail (a second demo, whose Ada run is the earlier one) is printed whole.
    let everything =
        events.len() <= 40 || std::env::var("OFFBOARD_DEMO_AUDIT").is_ok_and(|v| v == "all");
    let shown: Vec<_> = events
        .iter()
        .filter(|e| {
            everything
                || (e.run == Some(run_id) && e.app.as_ref().is_some_and(|a| a.as_str() == "google"))
        })
        .collect();
    if everything {
        println!("every event:");
    } else {
        println!(
            "Ada's Google events ({}; all {} are in {db}, OFFBOARD_DEMO_AUDIT=all prints them):",
            shown.len(),
            events.len()
        );
    }
    for e in shown {
        let what = match &e.kind {
            AuditKind::Transition {
                event,
                task_state,
                run_state,
            } => {
                format!(
                    "{:<16} task={:<10} run={run_state:?}",
                    event.name(),
                    task_state.as_deref().unwrap_or("-")
                )
            }
            other => other.name().to_owned(),
        };
        let task = e
            .task
            .as_ref()
            .and_then(|x| labels.get(x))
            .map_or("-", String::as_str);
        println!(
            "  #{:<4} {} {:<22} {:<32} {what}  {}",
            e.seq,
            t(e.at),
            e.actor,
            task,
            &e.hash[..12]
        );
    }
    match store.verify_audit().await?.into_result() {
        Ok(n) => println!("audit chain in {db} verifies: {n} events"),
        Err(p) => println!("AUDIT CHAIN BROKEN: {p}"),
    }
    // The whole chain also verifies with core's checker, independent of the store.
    verify_chain(&all).map_err(offboard::Error::from)?;

    // 8. The task page the Miro owner used, still served on loopback so a person can open it
    //    (it shows the task and who answered): for a minute when run from a terminal, or until
    //    Enter; not at all otherwise (CI), or for OFFBOARD_DEMO_SERVE_SECS seconds.
    if let Some(link) = email_link {
        println!("\nemail task page (the link the Miro owner got):\n  {link}");
        let secs = serve_secs();
        if secs > 0 {
            println!("served on loopback for {secs} s; press Enter to stop");
            let (enter, pressed) = tokio::sync::oneshot::channel();
            // A plain thread: the process exits without waiting for a line that never comes.
            // At the end of stdin (no terminal) nothing is sent, and the time runs out.
            std::thread::spawn(move || {
                if std::io::stdin()
                    .read_line(&mut String::new())
                    .is_ok_and(|n| n > 0)
                {
                    let _ = enter.send(());
                }
            });
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(secs)) => {}
                Ok(()) = pressed => {}
            }
        }
    }
    served.abort();
    Ok(())
}

/// How long the demo serves the task page at the end: `OFFBOARD_DEMO_SERVE_SECS`, else 60 s
/// when stdin is a terminal (a person is there), else 0 (CI, a pipe).
fn serve_secs() -> u64 {
    use std::io::IsTerminal as _;
    std::env::var("OFFBOARD_DEMO_SERVE_SECS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(if std::io::stdin().is_terminal() {
            60
        } else {
            0
        })
}

/// What the Miro owner does with the email: finds the link in the message the delegate wrote
/// to the pickup directory, opens it (`GET` shows the page) and presses Done (`POST` of the
/// page's form, its token in the body). Returns the link and the page's answer.
async fn answer_email(dir: &std::path::Path, task_url: &str) -> Option<(String, String)> {
    let link = std::fs::read_dir(dir).ok()?.flatten().find_map(|entry| {
        let raw = std::fs::read_to_string(entry.path()).ok()?;
        let (_, body) = raw.split_once("\r\n\r\n")?;
        let body = quoted_printable::decode(body, quoted_printable::ParseMode::Robust).ok()?;
        String::from_utf8_lossy(&body)
            .split_whitespace()
            .find(|w| w.starts_with(task_url))
            .map(str::to_owned)
    })?;
    let http = reqwest::Client::new();
    let page = http.get(&link).send().await.ok()?.text().await.ok()?;
    let field = "name=\"token\" value=\"";
    let token = page.split_once(field)?.1.split('"').next()?;
    let (url, _) = link.split_once('?')?;
    let answer = http.post(url).form(&[("token", token)]).send().await.ok()?;
    let status = answer.status();
    let html = answer.text().await.ok()?;
    let heading = html.split_once("<h1>")?.1.split("</h1>").next()?;
    Some((link.clone(), format!("{status}, \"{heading}\"")))
}
