//! Every o365 action against the simulated Microsoft tenant: the tenant's state afterwards,
//! the exact requests sent, idempotency, rollback; plus lookup escaping and plan ordering.

mod common;

use std::sync::Arc;

use common::{MANAGER, MemoryExchange, account, action, connector, opts, person};
use offboard_core::{
    AccountRef, Action, ActionName, Connector, Engine, ErrorKind, ExecuteOptions, Initiator,
    LookupRequest, Manager, MemoryStore, Outcome, Person, Policy, RunRequest,
};
use offboard_o365::O365Connector;
use offboard_o365::exchange::{Forwarding, MailboxType};
use offboard_testkit::sim::graph::{GraphTenant, NewGroup, NewUser};
use serde_json::{Value, json};

/// `METHOD path` of every request since the last clear, without the `/v1.0` prefix.
fn lines(tenant: &GraphTenant) -> Vec<String> {
    tenant
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path.trim_start_matches("/v1.0")))
        .collect()
}

fn body(tenant: &GraphTenant, index: usize) -> Value {
    tenant.requests()[index].body.clone().unwrap_or(Value::Null)
}

async fn setup(upn: &str) -> (GraphTenant, O365Connector, AccountRef) {
    let tenant = GraphTenant::start().await;
    tenant.add_user(NewUser::new(MANAGER));
    let id = tenant.add_user(NewUser::new(upn));
    let o365 = connector(&tenant, None);
    let account = account(&o365, upn).await;
    assert_eq!(account.external_id, id);
    tenant.clear_requests();
    (tenant, o365, account)
}

#[tokio::test]
async fn lookup_escapes_odata_literals_and_matches_exactly() {
    let tenant = GraphTenant::start().await;
    let id = tenant.add_user(NewUser::new("o'neil@example.test"));
    tenant.add_user(NewUser::new("victim@example.test"));
    let o365 = connector(&tenant, None);
    let found = o365
        .lookup(&LookupRequest::person(person("O'Neil@example.test")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.external_id, id);
    assert_eq!(found.login, "o'neil@example.test");
    let r = &tenant.requests()[0];
    assert_eq!(r.method, "GET");
    assert_eq!(r.path, "/v1.0/users");
    assert_eq!(
        r.query_param("$filter"),
        Some(
            "userPrincipalName eq 'O''Neil@example.test' or mail eq 'O''Neil@example.test' \
             or proxyAddresses/any(x:x eq 'smtp:O''Neil@example.test') \
             or otherMails/any(x:x eq 'O''Neil@example.test')"
        )
    );

    for hostile in [
        "' or 1 eq 1",
        "x' or userPrincipalName eq 'victim@example.test",
        "victim@example.test' or '1' eq '1",
    ] {
        let r = o365.lookup(&LookupRequest::person(person(hostile))).await;
        assert!(matches!(r, Ok(None)), "{hostile}: {r:?}");
    }
    tenant.clear_requests();
    let e = o365
        .lookup(&LookupRequest::person(person("victim@example.test\0")))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(tenant.requests().is_empty(), "nothing sent for bad input");
}

#[tokio::test]
async fn set_auto_reply_names_the_manager_and_rolls_back() {
    let (tenant, o365, account) = setup("jane@example.test").await;
    let id = account.external_id.clone();
    let before = tenant.user(&id).unwrap().automatic_replies.unwrap();
    let a = action("o365.set_auto_reply");
    let snap = o365.snapshot(&account, &a).await.unwrap();
    tenant.clear_requests();

    let r = o365
        .execute(&account, &a, &opts("jane@example.test"))
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Done);
    let message = format!("Jane Doe no longer works here. Please contact {MANAGER} instead.");
    let now = tenant.user(&id).unwrap().automatic_replies.unwrap();
    assert_eq!(now["status"], "alwaysEnabled");
    let stored = format!("<html>\n<body>\n<p>{message}</p>\n</body>\n</html>\n");
    assert_eq!(now["internalReplyMessage"], stored.as_str());
    assert_eq!(now["externalReplyMessage"], stored.as_str());
    assert_eq!(
        lines(&tenant),
        [
            format!("GET /users/{id}/mailboxSettings"),
            format!("PATCH /users/{id}/mailboxSettings"),
        ]
    );
    assert_eq!(
        body(&tenant, 1),
        json!({"automaticRepliesSetting": {
            "status": "alwaysEnabled", "externalAudience": "all",
            "internalReplyMessage": message, "externalReplyMessage": message,
        }})
    );

    tenant.clear_requests();
    let again = o365
        .execute(&account, &a, &opts("jane@example.test"))
        .await
        .unwrap();
    assert_eq!(again.outcome, Outcome::AlreadyDone);
    assert_eq!(lines(&tenant), [format!("GET /users/{id}/mailboxSettings")]);

    assert_eq!(o365.restore(&account, &snap).await.unwrap(), Outcome::Done);
    assert_eq!(tenant.user(&id).unwrap().automatic_replies.unwrap(), before);
    assert_eq!(
        o365.restore(&account, &snap).await.unwrap(),
        Outcome::AlreadyDone
    );

    // A message given as a parameter, without a manager.
    let custom = Action::with_params(
        ActionName::from_static("o365.set_auto_reply"),
        &json!({"message": "{name} has left.", "external_audience": "none"}),
    )
    .unwrap();
    let p = ExecuteOptions::default().with_person(Person::new("p", "jane@example.test"));
    o365.execute(&account, &custom, &p).await.unwrap();
    let now = tenant.user(&id).unwrap().automatic_replies.unwrap();
    assert!(
        now["internalReplyMessage"]
            .as_str()
            .unwrap()
            .contains("<p>jane@example.test has left.</p>"),
        "{now}"
    );
    assert_eq!(now["externalAudience"], "none");
}

/// Exchange stores the reply as HTML (escaped, line breaks as `<br>`): the connector still
/// recognises its own message, so a repeat is `already_done` and sends no PATCH.
#[tokio::test]
async fn set_auto_reply_recognises_its_message_wrapped_in_html() {
    let (tenant, o365, account) = setup("jane@example.test").await;
    let id = account.external_id.clone();
    let a = Action::with_params(
        ActionName::from_static("o365.set_auto_reply"),
        &json!({"message": "{name} (O'Neil & Sons) has left.\nWrite to <{manager}>  instead."}),
    )
    .unwrap();
    let r = o365
        .execute(&account, &a, &opts("jane@example.test"))
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Done);
    let stored = tenant.user(&id).unwrap().automatic_replies.unwrap();
    let html = stored["internalReplyMessage"].as_str().unwrap();
    assert!(
        html.starts_with("<html>") && html.contains("O&#39;Neil &amp; Sons"),
        "{html}"
    );
    tenant.clear_requests();
    let again = o365
        .execute(&account, &a, &opts("jane@example.test"))
        .await
        .unwrap();
    assert_eq!(again.outcome, Outcome::AlreadyDone, "{:?}", again.detail);
    assert_eq!(lines(&tenant), [format!("GET /users/{id}/mailboxSettings")]);

    // Another message is not mistaken for it.
    let other = Action::with_params(
        ActionName::from_static("o365.set_auto_reply"),
        &json!({"message": "{name} (O'Neil & Sons) has left."}),
    )
    .unwrap();
    let r = o365
        .execute(&account, &other, &opts("jane@example.test"))
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Done);
}

#[tokio::test]
async fn forward_rule_is_found_by_name_and_never_duplicated() {
    let (tenant, o365, account) = setup("jane@example.test").await;
    let id = account.external_id.clone();
    let a = action("o365.forward_to_manager");
    let snap = o365.snapshot(&account, &a).await.unwrap();
    tenant.clear_requests();

    let r = o365
        .execute(&account, &a, &opts("jane@example.test"))
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Done);
    let rules = tenant.user(&id).unwrap().message_rules;
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0]["displayName"], "offboard: forward to manager");
    assert_eq!(
        rules[0]["actions"]["forwardTo"],
        json!([{"emailAddress": {"address": MANAGER}}])
    );
    let rules_path = format!("/users/{id}/mailFolders/inbox/messageRules");
    assert_eq!(
        lines(&tenant),
        [format!("GET {rules_path}"), format!("POST {rules_path}")]
    );

    tenant.clear_requests();
    let again = o365
        .execute(&account, &a, &opts("jane@example.test"))
        .await
        .unwrap();
    assert_eq!(again.outcome, Outcome::AlreadyDone);
    assert_eq!(lines(&tenant), [format!("GET {rules_path}")]);

    // The manager changed: the stale rule is deleted (in a $batch) and one new rule made.
    tenant.clear_requests();
    let other =
        ExecuteOptions::default().with_person(person("jane@example.test").with_manager(Manager {
            id: None,
            email: "new.boss@example.test".into(),
        }));
    assert_eq!(
        o365.execute(&account, &a, &other).await.unwrap().outcome,
        Outcome::Done
    );
    assert_eq!(
        lines(&tenant),
        [
            format!("GET {rules_path}"),
            "POST /$batch".into(),
            format!("POST {rules_path}"),
        ]
    );
    let batch = body(&tenant, 1);
    assert_eq!(batch["requests"][0]["method"], "DELETE");
    assert!(
        batch["requests"][0]["url"]
            .as_str()
            .unwrap()
            .starts_with(&rules_path)
    );
    let rules = tenant.user(&id).unwrap().message_rules;
    assert_eq!(rules.len(), 1);
    assert_eq!(
        rules[0]["actions"]["forwardTo"][0]["emailAddress"]["address"],
        "new.boss@example.test"
    );

    assert_eq!(o365.restore(&account, &snap).await.unwrap(), Outcome::Done);
    assert!(tenant.user(&id).unwrap().message_rules.is_empty());
    assert_eq!(
        o365.restore(&account, &snap).await.unwrap(),
        Outcome::AlreadyDone
    );

    // No manager and no `to`: a clear error, nothing written.
    tenant.clear_requests();
    let e = o365
        .execute(
            &account,
            &a,
            &ExecuteOptions::default().with_person(Person::new("p", "jane@example.test")),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("manager"), "{e}");
    assert!(tenant.requests().is_empty());
}

#[tokio::test]
async fn onedrive_invites_the_manager_once() {
    let (tenant, o365, account) = setup("jane@example.test").await;
    let id = account.external_id.clone();
    let a = action("o365.onedrive_to_manager");
    let r = o365
        .execute(&account, &a, &opts("jane@example.test"))
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Done, "{r:?}");
    let perms = tenant.user(&id).unwrap().drive_permissions;
    let manager: Vec<&Value> = perms
        .iter()
        .filter(|p| p["grantedToV2"]["user"]["email"] == MANAGER)
        .collect();
    assert_eq!(manager.len(), 1);
    assert_eq!(manager[0]["roles"], json!(["write"]));
    let l = lines(&tenant);
    assert_eq!(l.len(), 3, "{l:?}");
    assert_eq!(l[0], format!("GET /users/{id}/drive"));
    let drive = l[1]
        .strip_prefix("GET /drives/")
        .and_then(|s| s.strip_suffix("/root/permissions"))
        .unwrap()
        .to_owned();
    assert_eq!(l[2], format!("POST /drives/{drive}/root/invite"));
    assert_eq!(
        body(&tenant, 2),
        json!({"recipients": [{"email": MANAGER}], "roles": ["write"],
               "requireSignIn": true, "sendInvitation": false})
    );

    tenant.clear_requests();
    let again = o365
        .execute(&account, &a, &opts("jane@example.test"))
        .await
        .unwrap();
    assert_eq!(again.outcome, Outcome::AlreadyDone);
    assert_eq!(lines(&tenant).len(), 2, "no second invite");
    assert_eq!(tenant.user(&id).unwrap().drive_permissions.len(), 2);
}

#[tokio::test]
async fn remove_licenses_keeps_and_reports_group_inherited_skus() {
    let tenant = GraphTenant::start().await;
    let e3 = tenant.add_sku("ENTERPRISEPACK", 10);
    let bi = tenant.add_sku("POWER_BI_PRO", 10);
    let ems = tenant.add_sku("EMS", 10);
    let staff = tenant.add_group(NewGroup {
        licenses: vec![ems.clone()],
        ..NewGroup::assigned("Licensed Staff")
    });
    let id = tenant.add_user(NewUser {
        licenses: vec![e3.clone(), bi.clone()],
        groups: vec![staff.clone()],
        ..NewUser::new("jane@example.test")
    });
    let o365 = connector(&tenant, None);
    let account = account(&o365, "jane@example.test").await;
    let a = action("o365.remove_licenses");
    let snap = o365.snapshot(&account, &a).await.unwrap();
    let fresh = o365.verify_revoked(&account).await.unwrap();
    assert!(!fresh.revoked);
    assert_eq!(fresh.remaining.len(), 2, "{:?}", fresh.remaining);
    tenant.clear_requests();

    let r = o365
        .execute(&account, &a, &opts("jane@example.test"))
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Done);
    let detail = r.detail.unwrap();
    assert!(detail.contains("ENTERPRISEPACK") && detail.contains("POWER_BI_PRO"));
    assert!(
        detail.contains(&format!(
            "STILL ASSIGNED through group-based licensing, not removable from the user \
             (remove the group membership): EMS ({ems}) via group \"Licensed Staff\" ({staff})"
        )),
        "{detail}"
    );
    let state = tenant.user(&id).unwrap();
    assert!(state.licenses.is_empty());
    assert_eq!(state.inherited_licenses, [ems.clone()].into());
    assert_eq!(
        lines(&tenant),
        [
            "POST /$batch".to_owned(),
            "POST /$batch".into(),
            format!("POST /users/{id}/assignLicense"),
        ]
    );
    let reads = body(&tenant, 0);
    assert_eq!(reads["requests"].as_array().unwrap().len(), 2);
    assert_eq!(
        reads["requests"][1]["url"],
        format!("/users/{id}/licenseDetails")
    );
    assert_eq!(
        body(&tenant, 1)["requests"][0]["url"],
        format!("/groups/{staff}")
    );
    let mut direct = vec![e3.clone(), bi.clone()];
    direct.sort();
    assert_eq!(
        body(&tenant, 2),
        json!({"addLicenses": [], "removeLicenses": direct})
    );

    let again = o365
        .execute(&account, &a, &opts("jane@example.test"))
        .await
        .unwrap();
    assert_eq!(again.outcome, Outcome::AlreadyDone);
    assert!(again.detail.unwrap().contains("STILL ASSIGNED"));
    assert!(o365.verify_revoked(&account).await.unwrap().revoked);

    assert_eq!(o365.restore(&account, &snap).await.unwrap(), Outcome::Done);
    assert_eq!(tenant.user(&id).unwrap().licenses, [e3, bi].into());
    assert_eq!(
        o365.restore(&account, &snap).await.unwrap(),
        Outcome::AlreadyDone
    );
}

#[tokio::test]
async fn the_plan_orders_every_mailbox_action_before_licence_removal() {
    let tenant = GraphTenant::start().await;
    tenant.add_user(NewUser::new("jane@example.test"));
    let exchange = Arc::new(MemoryExchange::default());
    let o365 = connector(&tenant, Some(exchange));
    let policy = Policy::from_toml(
        r#"
[apps.o365]
method = "automatic"
actions = ["o365.remove_licenses", "o365.hide_from_gal", "o365.onedrive_to_manager",
           "o365.set_auto_reply", "o365.convert_to_shared", "o365.forward_to_manager",
           "o365.mailbox_forwarding"]
"#,
    )
    .unwrap();
    let engine = Engine::builder()
        .store(Arc::new(MemoryStore::new()))
        .policy(policy)
        .connector(Arc::new(o365))
        .build()
        .unwrap();
    let plan = engine
        .plan(RunRequest::new(
            person("jane@example.test"),
            Initiator::Admin {
                actor: "admin@example.test".into(),
            },
        ))
        .await
        .unwrap();
    let names: Vec<&str> = plan
        .run
        .tasks
        .iter()
        .map(|t| t.action().unwrap().name.as_str())
        .collect();
    assert_eq!(names.last(), Some(&"o365.remove_licenses"), "{names:?}");
    let last = plan.run.tasks.last().unwrap();
    assert_eq!(last.depends_on.len(), 6, "after every other o365 action");
    let waves = plan.waves();
    assert_eq!(waves.len(), 2);
    assert_eq!(waves[1].len(), 1);
}

#[tokio::test]
async fn exchange_admin_actions_are_not_offered_without_the_hook() {
    let (tenant, o365, account) = setup("jane@example.test").await;
    let offered: Vec<&str> = o365
        .capabilities()
        .actions
        .iter()
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(
        offered,
        [
            "o365.set_auto_reply",
            "o365.forward_to_manager",
            "o365.onedrive_to_manager",
            "o365.remove_teams",
            "o365.cancel_meetings",
            "o365.remove_licenses"
        ]
    );
    let missing: Vec<String> = o365
        .unavailable()
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    assert_eq!(
        missing,
        [
            "o365.convert_to_shared",
            "o365.mailbox_forwarding",
            "o365.hide_from_gal"
        ]
    );
    for name in missing {
        let a = Action::new(ActionName::parse(&name).unwrap());
        let e = o365
            .execute(&account, &a, &opts("jane@example.test"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(e.to_string().contains("Exchange Online admin hook"), "{e}");
    }
    assert!(tenant.requests().is_empty());

    let policy = Policy::from_toml(
        "[apps.o365]\nmethod = \"automatic\"\nactions = [\"o365.convert_to_shared\", \"o365.remove_licenses\"]\n",
    )
    .unwrap();
    let e = Engine::builder()
        .store(Arc::new(MemoryStore::new()))
        .policy(policy)
        .connector(Arc::new(o365))
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    let text = e.to_string();
    assert!(
        text.contains(
            "does not offer o365.convert_to_shared: it needs the Exchange Online admin hook"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn exchange_admin_actions_run_through_the_hook() {
    let tenant = GraphTenant::start().await;
    let id = tenant.add_user(NewUser::new("jane@example.test"));
    let exchange = Arc::new(MemoryExchange::default());
    exchange.add_mailbox(&id);
    let o365 = connector(&tenant, Some(Arc::clone(&exchange)));
    let account = account(&o365, "jane@example.test").await;
    let o = opts("jane@example.test");
    for name in [
        "o365.convert_to_shared",
        "o365.mailbox_forwarding",
        "o365.hide_from_gal",
    ] {
        let a = action(name);
        assert_eq!(
            o365.execute(&account, &a, &o).await.unwrap().outcome,
            Outcome::Done,
            "{name}"
        );
        assert_eq!(
            o365.execute(&account, &a, &o).await.unwrap().outcome,
            Outcome::AlreadyDone,
            "{name}"
        );
    }
    let state = exchange.state(&id).unwrap();
    assert_eq!(state.mailbox_type, MailboxType::Shared);
    assert_eq!(
        state.forwarding,
        Some(Forwarding {
            address: MANAGER.into(),
            keep_copy: true
        })
    );
    assert!(state.hidden_from_address_lists);
    assert_eq!(
        exchange.writes(),
        [
            format!("convert_to_shared {id}"),
            format!("set_forwarding({MANAGER}) {id}"),
            format!("set_hidden(true) {id}"),
        ]
    );

    // Rollback of forwarding from a snapshot taken before it.
    let other = Arc::new(MemoryExchange::default());
    other.add_mailbox(&id);
    let o365 = connector(&tenant, Some(Arc::clone(&other)));
    let a = action("o365.mailbox_forwarding");
    let snap = o365.snapshot(&account, &a).await.unwrap();
    o365.execute(&account, &a, &o).await.unwrap();
    assert_eq!(o365.restore(&account, &snap).await.unwrap(), Outcome::Done);
    assert_eq!(other.state(&id).unwrap().forwarding, None);
    assert_eq!(
        o365.restore(&account, &snap).await.unwrap(),
        Outcome::AlreadyDone
    );
}

/// The mailbox of a person whose address is only a proxy address or another mail of the
/// user is found; an address held by two users is ambiguous.
#[tokio::test]
async fn lookup_matches_proxy_addresses_and_other_mails() {
    let tenant = GraphTenant::start().await;
    let id = tenant.add_user(NewUser {
        proxy_addresses: vec![
            "SMTP:jane.doe@example.test".into(),
            "smtp:jd@example.test".into(),
        ],
        other_mails: vec!["jane@home.example".into()],
        ..NewUser::new("jane@contoso.onmicrosoft.test")
    });
    tenant.add_user(NewUser {
        proxy_addresses: vec!["smtp:team@example.test".into()],
        ..NewUser::new("a@contoso.onmicrosoft.test")
    });
    tenant.add_user(NewUser {
        other_mails: vec!["team@example.test".into()],
        ..NewUser::new("b@contoso.onmicrosoft.test")
    });
    let o365 = connector(&tenant, None);
    for address in [
        "JD@example.test",
        "jane.doe@example.test",
        "jane@home.example",
    ] {
        let found = o365
            .lookup(&LookupRequest::person(person(address)))
            .await
            .unwrap();
        assert_eq!(found.map(|a| a.external_id), Some(id.clone()), "{address}");
    }
    let e = o365
        .lookup(&LookupRequest::person(person("team@example.test")))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Ambiguous, "{e}");
}

/// A megabyte identifier is refused before any request, with a short message that does not
/// echo it (item 12: bounded identifiers).
#[tokio::test]
async fn over_long_identifiers_are_refused_without_a_request() {
    let (tenant, o365, account) = setup("jane@example.test").await;
    let huge = format!("{}@example.test", "a".repeat(1 << 20));
    let requests = [
        LookupRequest::person(person(&huge)),
        LookupRequest::person(person("jane@example.test").with_alias(huge.as_str())),
        LookupRequest::person(person("jane@example.test")).with_external_id(huge.as_str()),
    ];
    for request in requests {
        tenant.clear_requests();
        let e = o365.lookup(&request).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(!e.is_retryable());
        assert!(e.to_string().len() < 300, "{} bytes", e.to_string().len());
        assert!(lines(&tenant).is_empty(), "{:?}", lines(&tenant));
    }
    // A recipient given as a parameter is bounded the same way.
    tenant.clear_requests();
    let forward = Action::with_params(
        ActionName::from_static("o365.forward_to_manager"),
        &json!({ "to": huge }),
    )
    .unwrap();
    let e = o365
        .execute(&account, &forward, &opts("jane@example.test"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().len() < 300, "{} bytes", e.to_string().len());
    assert!(lines(&tenant).is_empty(), "{:?}", lines(&tenant));
    let mut long = account.clone();
    long.external_id = huge;
    let e = o365
        .execute(
            &long,
            &action("o365.set_auto_reply"),
            &opts("jane@example.test"),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().len() < 300, "{} bytes", e.to_string().len());
    assert!(lines(&tenant).is_empty(), "{:?}", lines(&tenant));
}

/// "Ann Lee" (ann.lee@example.test, the account) and her look-alike (same display name,
/// ann.lee2@example.test): the tenant, connector, account, the look-alike's id and the
/// manager's id.
async fn ann_and_look_alike() -> (GraphTenant, O365Connector, AccountRef, String, String) {
    let tenant = GraphTenant::start().await;
    let boss = tenant.add_user(NewUser::new(MANAGER));
    tenant.add_user(NewUser {
        display_name: "Ann Lee".into(),
        ..NewUser::new("ann.lee@example.test")
    });
    let other = tenant.add_user(NewUser {
        display_name: "Ann Lee".into(),
        ..NewUser::new("ann.lee2@example.test")
    });
    let o365 = connector(&tenant, None);
    let a = account(&o365, "ann.lee@example.test").await;
    tenant.clear_requests();
    (tenant, o365, a, other, boss)
}

/// Guards `o365.remove_teams` (an unknown action before): ordered after entra.remove_groups
/// and entra.hand_over_owned; the membership matched on `userId` exactly is deleted by its
/// opaque id (the look-alike in the same team stays), the last owner of a team fails the task
/// by name after the others, a dry run only reads, a repeat is already_done, rollback
/// re-adds through the group (members and owners), verify lists teams, a missing permission
/// is named and a gone user is not_found.
#[tokio::test]
async fn remove_teams_deletes_the_exact_membership_and_rolls_back() {
    let (t, o365, a, other, boss) = ann_and_look_alike().await;
    let ann = a.external_id.clone();
    let sales = t.add_team("Sales", &[&boss], &[&ann, &other]);
    let board = t.add_team("Board", &[&ann, &boss], &[]);
    let solo = t.add_team("Ann's project", &[&ann], &[&other]);
    let act = action("o365.remove_teams");
    let spec = o365.capabilities().action(&act.name).unwrap().clone();
    assert!(spec.reversible && spec.not_found_is_done, "{spec:?}");
    for before in ["entra.remove_groups", "entra.hand_over_owned"] {
        assert!(spec.after.iter().any(|n| n.as_str() == before), "{spec:?}");
    }
    let licences = o365
        .capabilities()
        .action(&ActionName::from_static("o365.remove_licenses"))
        .unwrap();
    assert!(licences.after.contains(&act.name));
    let v = o365.verify_revoked(&a).await.unwrap();
    assert!(
        v.remaining
            .contains(&format!("member of team Sales ({sales})")),
        "{:?}",
        v.remaining
    );

    t.clear_requests();
    let dry = o365
        .execute(&a, &act, &opts("ann.lee@example.test").with_dry_run(true))
        .await
        .unwrap();
    assert_eq!(dry.outcome, Outcome::Done);
    let d = dry.detail.clone().unwrap_or_default();
    assert!(d.contains("would remove from 3 teams"), "{d}");
    assert!(t.requests().iter().all(|r| r.method == "GET"));

    let snap = o365.snapshot(&a, &act).await.unwrap();
    t.clear_requests();
    let e = o365
        .execute(&a, &act, &opts("ann.lee@example.test"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    let msg = e.to_string();
    assert!(msg.contains("removed from 2 teams"), "{msg}");
    assert!(
        msg.contains("NOT removed (1): Ann's project (Graph refused removing an owner"),
        "{msg}"
    );
    let deletes: Vec<String> = lines(&t)
        .into_iter()
        .filter(|l| l.starts_with("DELETE"))
        .collect();
    assert_eq!(deletes.len(), 3, "{deletes:?}");
    assert!(
        deletes.iter().all(|l| !l.ends_with(&format!("/{ann}"))),
        "membership ids are never the user id: {deletes:?}"
    );
    assert!(!t.team_members(&sales).contains_key(&ann));
    assert!(!t.team_members(&board).contains_key(&ann));
    assert_eq!(
        t.team_members(&sales).get(&other),
        Some(&false),
        "the look-alike stays"
    );
    assert_eq!(
        t.team_members(&solo).get(&ann),
        Some(&true),
        "the last owner stays"
    );

    // Once another owner is there, the rest goes; then a repeat is already_done.
    t.add_group_owner(&solo, &boss);
    let r = o365
        .execute(&a, &act, &opts("ann.lee@example.test"))
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Done, "{:?}", r.detail);
    let again = o365
        .execute(&a, &act, &opts("ann.lee@example.test"))
        .await
        .unwrap();
    assert_eq!(again.outcome, Outcome::AlreadyDone);
    let v = o365.verify_revoked(&a).await.unwrap();
    assert!(
        !v.remaining.iter().any(|r| r.contains("team")),
        "{:?}",
        v.remaining
    );

    t.clear_requests();
    assert_eq!(o365.restore(&a, &snap).await.unwrap(), Outcome::Done);
    let posts: Vec<(String, Value)> = t
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| {
            (
                r.path.trim_start_matches("/v1.0").to_owned(),
                r.body.clone().unwrap(),
            )
        })
        .collect();
    assert!(posts.contains(&(format!("/groups/{board}/owners/$ref"), posts[0].1.clone())));
    assert!(
        posts
            .iter()
            .any(|(p, _)| *p == format!("/groups/{sales}/members/$ref"))
    );
    assert!(posts[0].1["@odata.id"].as_str().unwrap().ends_with(&ann));
    assert_eq!(t.team_members(&board).get(&ann), Some(&true));
    assert_eq!(t.team_members(&sales).get(&ann), Some(&false));
    assert_eq!(o365.restore(&a, &snap).await.unwrap(), Outcome::AlreadyDone);

    t.withhold_permission("TeamMember.ReadWrite.All");
    let e = o365
        .execute(&a, &act, &opts("ann.lee@example.test"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("TeamMember.ReadWrite.All"), "{e}");
    t.remove_user(&ann);
    let r = o365
        .execute(&a, &act, &opts("ann.lee@example.test"))
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::NotFound);
}

/// Guards `o365.cancel_meetings` (an unknown action before): against the run's clock
/// (`started_at`), only future meetings the person organises are cancelled, with the message
/// as `Comment`, a series master counts while the series runs, past meetings and meetings
/// the person only attends are untouched (no cancel is sent for them), attendees' copies
/// record the cancellation, a dry run only reads, a repeat is already_done, it is not
/// reversible and runs before licence removal, a missing permission is named and a gone user
/// is not_found.
#[tokio::test]
async fn cancel_meetings_cancels_future_organised_meetings_only() {
    let (t, o365, a, other, boss) = ann_and_look_alike().await;
    let ann = a.external_id.clone();
    let meeting = |org: &str, subject: &str, start: &str, end: &str, who: &[&str]| {
        t.add_meeting(offboard_testkit::sim::graph::NewMeeting::new(
            org, subject, start, end, who,
        ))
    };
    let review = meeting(
        &ann,
        "Review",
        "2030-05-02T10:00:00",
        "2030-05-02T11:00:00",
        &[&boss, &other],
    );
    let past = meeting(
        &ann,
        "Kick-off",
        "2030-04-01T10:00:00",
        "2030-04-01T11:00:00",
        &[&boss],
    );
    let weekly = t.add_meeting(offboard_testkit::sim::graph::NewMeeting {
        recurrence_end: Some("2030-12-31".into()),
        ..offboard_testkit::sim::graph::NewMeeting::new(
            &ann,
            "Weekly",
            "2030-01-07T09:00:00",
            "2030-01-07T09:30:00",
            &[&boss],
        )
    });
    let theirs = meeting(
        &boss,
        "Boss's 1:1",
        "2030-05-03T10:00:00",
        "2030-05-03T11:00:00",
        &[&ann],
    );
    let lookalike = meeting(
        &other,
        "Review",
        "2030-05-02T10:00:00",
        "2030-05-02T11:00:00",
        &[&boss],
    );
    let now = chrono::DateTime::parse_from_rfc3339("2030-05-01T00:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let run = || opts("ann.lee@example.test").with_started_at(now);
    let act = Action::with_params(
        ActionName::from_static("o365.cancel_meetings"),
        &json!({"message": "Ann has left; please rebook."}),
    )
    .unwrap();
    let spec = o365.capabilities().action(&act.name).unwrap().clone();
    assert!(!spec.reversible && spec.not_found_is_done, "{spec:?}");
    assert!(
        o365.capabilities()
            .action(&ActionName::from_static("o365.remove_licenses"))
            .unwrap()
            .after
            .contains(&act.name)
    );

    let dry = o365
        .execute(&a, &act, &run().with_dry_run(true))
        .await
        .unwrap();
    assert_eq!(dry.outcome, Outcome::Done);
    let d = dry.detail.clone().unwrap_or_default();
    assert!(d.contains("would cancel 2 meetings"), "{d}");
    assert!(
        d.contains("Review (2030-05-02T10:00 UTC)") && d.contains("Weekly"),
        "{d}"
    );
    assert!(t.requests().iter().all(|r| r.method == "GET"));
    let list = t
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/events"))
        .unwrap();
    assert_eq!(
        list.query_param("$select"),
        Some("subject,isOrganizer,isCancelled,start,end,type,seriesMasterId,recurrence")
    );

    t.clear_requests();
    let r = o365.execute(&a, &act, &run()).await.unwrap();
    assert_eq!(r.outcome, Outcome::Done, "{:?}", r.detail);
    let cancels: Vec<_> = t
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    let mut paths: Vec<String> = cancels.iter().map(|r| r.path.clone()).collect();
    paths.sort();
    let mut want = vec![
        format!("/v1.0/users/{ann}/events/{review}/cancel"),
        format!("/v1.0/users/{ann}/events/{weekly}/cancel"),
    ];
    want.sort();
    assert_eq!(paths, want);
    for c in &cancels {
        assert_eq!(
            c.body,
            Some(json!({"Comment": "Ann has left; please rebook."}))
        );
    }
    let m = t.meeting(&review).unwrap();
    assert!(m.cancelled);
    assert_eq!(
        m.attendee_cancellations.get(&boss).map(String::as_str),
        Some("Ann has left; please rebook.")
    );
    assert!(
        t.meeting(&weekly).unwrap().cancelled,
        "the series is cancelled"
    );
    for untouched in [&past, &theirs, &lookalike] {
        let m = t.meeting(untouched).unwrap();
        assert!(!m.cancelled && m.cancel_calls == 0, "{untouched}");
    }
    let again = o365.execute(&a, &act, &run()).await.unwrap();
    assert_eq!(again.outcome, Outcome::AlreadyDone);
    let e = o365.snapshot(&a, &act).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);

    // The default message; a missing permission is named.
    let bob = t.add_user(NewUser::new("bob@example.test"));
    let b = account(&o365, "bob@example.test").await;
    let bob_run = || opts("bob@example.test").with_started_at(now);
    let plain = action("o365.cancel_meetings");
    let standup = meeting(
        &bob,
        "Stand-up",
        "2030-05-02T09:00:00",
        "2030-05-02T09:15:00",
        &[&boss],
    );
    o365.execute(&b, &plain, &bob_run()).await.unwrap();
    let comment = t.meeting(&standup).unwrap().attendee_cancellations[&boss].clone();
    assert!(comment.contains("organizer has left"), "{comment}");
    let retro = meeting(
        &bob,
        "Retro",
        "2030-05-02T15:00:00",
        "2030-05-02T16:00:00",
        &[&boss],
    );
    t.withhold_permission("Calendars.ReadWrite");
    let e = o365.execute(&b, &plain, &bob_run()).await.unwrap_err();
    assert!(e.to_string().contains("Calendars.ReadWrite"), "{e}");
    assert!(!t.meeting(&retro).unwrap().cancelled);
    t.remove_user(&bob);
    let r = o365.execute(&b, &plain, &bob_run()).await.unwrap();
    assert_eq!(r.outcome, Outcome::NotFound);
}
