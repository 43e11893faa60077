//! The Entra actions against the simulated Microsoft tenant: the tenant's state after each
//! action, the exact requests sent, `$batch` use, throttling, synced users, escaping and
//! secret redaction.

use std::sync::Arc;
use std::time::{Duration, Instant};

use offboard_azure::{AzureConfig, EntraConnector};
use offboard_core::{
    AccountRef, AccountStatus, Action, ActionName, Connector, ErrorKind, ExecuteOptions,
    ExecuteReply, LookupRequest, Outcome, Person, RetryClass, Snapshot,
};
use offboard_testkit::sim::graph::role_templates::{
    GLOBAL_ADMINISTRATOR, HELPDESK_ADMINISTRATOR, SECURITY_ADMINISTRATOR, USER_ADMINISTRATOR,
};
use offboard_testkit::sim::graph::{
    AUTH_METHOD_KINDS, GraphLimits, GraphTenant, NewDevice, NewGroup, NewManagedDevice, NewUser,
    RecordedRequest,
};
use offboard_testkit::suite::trace::TraceCapture;
use serde_json::json;

async fn tenant() -> Arc<GraphTenant> {
    Arc::new(GraphTenant::start().await)
}

fn connector(t: &GraphTenant) -> EntraConnector {
    AzureConfig::new()
        .with_tenant_id(t.tenant_id())
        .with_client_id(t.client_id())
        .with_client_secret(offboard_core::Secret::new(t.client_secret()))
        .with_graph_url(t.graph_url())
        .with_allow_plain_http(true)
        .with_token_url(t.token_url())
        .build()
        .unwrap()
}

fn account(id: &str, upn: &str) -> AccountRef {
    AccountRef::new("entra", id, upn, AccountStatus::Active)
}

fn action(name: &'static str) -> Action {
    Action::new(ActionName::from_static(name))
}

fn run(key: &str) -> ExecuteOptions {
    ExecuteOptions::default().with_idempotency_key(key)
}

fn detail(r: &ExecuteReply) -> &str {
    r.detail.as_deref().unwrap_or_default()
}

fn lines(requests: &[RecordedRequest]) -> Vec<String> {
    requests.iter().map(RecordedRequest::line).collect()
}

/// The items of every `$batch` call: (method, url) per call.
fn batches(requests: &[RecordedRequest]) -> Vec<Vec<(String, String)>> {
    requests
        .iter()
        .filter(|r| r.line() == "POST /v1.0/$batch")
        .map(|r| {
            r.body.as_ref().unwrap()["requests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| {
                    (
                        i["method"].as_str().unwrap().to_owned(),
                        i["url"].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        })
        .collect()
}

/// After an action ran: a repeat is already_done, restoring the snapshot is done, and
/// restoring again already_done.
async fn repeat_then_restore_twice(
    c: &EntraConnector,
    a: &AccountRef,
    act: &Action,
    snap: &Snapshot,
) {
    let again = c.execute(a, act, &run("k")).await.unwrap();
    assert_eq!(again.outcome, Outcome::AlreadyDone, "{}", detail(&again));
    assert_eq!(c.restore(a, snap).await.unwrap(), Outcome::Done);
    assert_eq!(c.restore(a, snap).await.unwrap(), Outcome::AlreadyDone);
}

/// Creates `user` as synced from AD, runs `act` on it and checks it is refused as
/// unsupported with `why` in the message and only reads sent; returns the user's id.
async fn refused_for_synced(
    t: &GraphTenant,
    c: &EntraConnector,
    user: NewUser,
    act: &Action,
    why: &str,
) -> String {
    let upn = user.upn.clone();
    let id = t.add_user(NewUser {
        on_premises_sync: true,
        ..user
    });
    t.clear_requests();
    let e = c
        .execute(&account(&id, &upn), act, &run("k"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.to_string().contains(why), "{e}");
    assert!(t.requests().iter().all(|r| r.method == "GET"));
    id
}

#[tokio::test]
async fn disable_sign_in_patches_and_rolls_back() {
    let t = tenant().await;
    let id = t.add_user(NewUser::new("jane@example.test"));
    let c = connector(&t);
    let a = account(&id, "jane@example.test");
    let disable = action("entra.disable_sign_in");
    let snap = c.snapshot(&a, &disable).await.unwrap();
    assert_eq!(snap.data, json!({"account_enabled": true}));
    t.clear_requests();

    let dry = c
        .execute(&a, &disable, &run("k").with_dry_run(true))
        .await
        .unwrap();
    assert_eq!(dry.outcome, Outcome::Done);
    assert!(
        t.user(&id).unwrap().account_enabled,
        "a dry run changes nothing"
    );
    let r = c.execute(&a, &disable, &run("k")).await.unwrap();
    assert_eq!(r.outcome, Outcome::Done);
    assert!(!t.user(&id).unwrap().account_enabled);
    let reqs = t.requests();
    assert_eq!(
        lines(&reqs),
        vec![
            format!("GET /v1.0/users/{id}"),
            format!("GET /v1.0/users/{id}"),
            format!("PATCH /v1.0/users/{id}"),
        ]
    );
    assert_eq!(
        reqs[1].query_param("$select"),
        Some("id,userPrincipalName,mail,displayName,accountEnabled,onPremisesSyncEnabled")
    );
    assert_eq!(reqs[2].body, Some(json!({"accountEnabled": false})));

    repeat_then_restore_twice(&c, &a, &disable, &snap).await;
    assert!(t.user(&id).unwrap().account_enabled);
}

#[tokio::test]
async fn synced_users_are_disabled_in_ad_and_only_verified_here() {
    let t = tenant().await;
    let id = t.add_user(NewUser {
        on_premises_sync: true,
        ..NewUser::new("sync@example.test")
    });
    let c = connector(&t);
    let spec = c
        .capabilities()
        .action(&ActionName::from_static("entra.disable_sign_in"))
        .unwrap()
        .clone();
    assert_eq!(spec.after, vec![ActionName::from_static("ad.disable")]);

    let a = account(&id, "sync@example.test");
    let disable = action("entra.disable_sign_in");
    let dry = c
        .execute(&a, &disable, &run("k").with_dry_run(true))
        .await
        .unwrap();
    assert_eq!(dry.outcome, Outcome::Done);
    assert!(detail(&dry).contains("ad.disable"), "{}", detail(&dry));
    t.clear_requests();
    let e = c.execute(&a, &disable, &run("k")).await.unwrap_err();
    // Waiting for Entra Connect is a job in progress, not a failure: no retry budget spent.
    assert_eq!(e.kind(), ErrorKind::InProgress);
    assert_eq!(
        e.retry(),
        RetryClass::Retryable {
            after: Some(Duration::from_secs(300))
        }
    );
    assert!(e.to_string().contains("synced from on-premises AD"), "{e}");
    assert!(
        t.requests().iter().all(|r| r.method == "GET"),
        "no PATCH of an AD-mastered user: {:?}",
        lines(&t.requests())
    );
    let v = c.verify_revoked(&a).await.unwrap();
    assert!(
        v.remaining.iter().any(|r| r.contains("disable in AD")),
        "{:?}",
        v.remaining
    );

    // AD disabled it and Entra Connect synced: verified.
    t.sync_from_ad(&id, false);
    let r = c.execute(&a, &disable, &run("k")).await.unwrap();
    assert_eq!(r.outcome, Outcome::AlreadyDone);
    assert!(detail(&r).contains("in AD"), "{}", detail(&r));
}

#[tokio::test]
async fn remove_groups_batches_skips_dynamic_and_synced_and_rolls_back() {
    let t = tenant().await;
    let assigned: Vec<String> = (0..25)
        .map(|i| t.add_group(NewGroup::assigned(format!("Team {i:02}"))))
        .collect();
    let dynamic = t.add_group(NewGroup::dynamic("All Staff"));
    let synced = t.add_group(NewGroup::synced("AD Finance"));
    let id = t.add_user(NewUser {
        groups: assigned
            .iter()
            .cloned()
            .chain([dynamic.clone(), synced.clone()])
            .collect(),
        ..NewUser::new("g@example.test")
    });
    let c = connector(&t);
    let a = account(&id, "g@example.test");
    let remove = action("entra.remove_groups");
    let snap = c.snapshot(&a, &remove).await.unwrap();
    assert_eq!(snap.data["groups"].as_array().unwrap().len(), 25);
    t.clear_requests();

    let r = c.execute(&a, &remove, &run("k")).await.unwrap();
    assert_eq!(r.outcome, Outcome::Done);
    assert!(
        detail(&r).starts_with("removed from 25 groups"),
        "{}",
        detail(&r)
    );
    assert!(
        detail(&r).contains("All Staff (dynamic membership)")
            && detail(&r).contains("AD Finance (synced from on-premises AD)"),
        "{}",
        detail(&r)
    );
    assert_eq!(
        t.user(&id).unwrap().groups,
        [dynamic.clone(), synced.clone()].into_iter().collect()
    );
    let reqs = t.requests();
    assert_eq!(
        lines(&reqs),
        vec![
            format!("GET /v1.0/users/{id}/memberOf"),
            "POST /v1.0/$batch".to_owned(),
            "POST /v1.0/$batch".to_owned(),
        ]
    );
    let b = batches(&reqs);
    assert_eq!((b[0].len(), b[1].len()), (20, 5));
    let mut sent: Vec<String> = b
        .concat()
        .into_iter()
        .map(|(m, u)| format!("{m} {u}"))
        .collect();
    sent.sort();
    let mut want: Vec<String> = assigned
        .iter()
        .map(|g| format!("DELETE /groups/{g}/members/{id}/$ref"))
        .collect();
    want.sort();
    assert_eq!(sent, want, "only assigned groups, each once");

    let again = c.execute(&a, &remove, &run("k")).await.unwrap();
    assert_eq!(again.outcome, Outcome::AlreadyDone);

    assert_eq!(c.restore(&a, &snap).await.unwrap(), Outcome::Done);
    assert_eq!(t.user(&id).unwrap().groups.len(), 27);
    assert_eq!(c.restore(&a, &snap).await.unwrap(), Outcome::AlreadyDone);
}

/// Mail-enabled security groups and distribution lists are Exchange objects and a
/// role-assignable group needs RoleManagement.ReadWrite.Directory: the task removes what
/// Graph can change, then fails naming the rest (never counted as removed, never silently
/// skipped), and verify_revoked keeps listing them.
#[tokio::test]
async fn groups_graph_cannot_change_are_reported_not_skipped() {
    let t = tenant().await;
    let team = t.add_group(NewGroup::assigned("Team"));
    let m365 = t.add_group(NewGroup::microsoft_365("Project X"));
    let mail_sec = t.add_group(NewGroup::mail_enabled_security("Finance Mail"));
    let dl = t.add_group(NewGroup::distribution_list("All Sales"));
    let admins = t.add_group(NewGroup::role_assignable("Helpdesk Admins"));
    let id = t.add_user(NewUser {
        groups: vec![
            team.clone(),
            m365.clone(),
            mail_sec.clone(),
            dl.clone(),
            admins.clone(),
        ],
        ..NewUser::new("x@example.test")
    });
    let c = connector(&t);
    let a = account(&id, "x@example.test");
    let remove = action("entra.remove_groups");
    t.clear_requests();
    let e = c.execute(&a, &remove, &run("k")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(!e.is_retryable());
    let message = e.to_string();
    for name in [
        "Finance Mail (mail-enabled security group",
        "All Sales (distribution list",
        "Helpdesk Admins (role-assignable group",
        "removed from 2 groups",
    ] {
        assert!(message.contains(name), "{name}: {message}");
    }
    assert_eq!(
        t.user(&id).unwrap().groups,
        [mail_sec.clone(), dl.clone(), admins.clone()]
            .into_iter()
            .collect()
    );
    let sent: Vec<String> = batches(&t.requests())
        .concat()
        .into_iter()
        .map(|(m, u)| format!("{m} {u}"))
        .collect();
    for g in [&mail_sec, &dl] {
        assert!(
            !sent.iter().any(|r| r.contains(g.as_str())),
            "no request for an Exchange group: {sent:?}"
        );
    }
    let v = c.verify_revoked(&a).await.unwrap();
    for name in ["Finance Mail", "All Sales", "Helpdesk Admins"] {
        assert!(
            v.remaining.iter().any(|r| r.contains(name)),
            "{name}: {:?}",
            v.remaining
        );
    }

    // With RoleManagement.ReadWrite.Directory the role-assignable group goes too.
    t.grant_role_management();
    let e = c.execute(&a, &remove, &run("k")).await.unwrap_err();
    assert!(e.to_string().contains("removed from 1 groups"), "{e}");
    assert!(!e.to_string().contains("role-assignable group"), "{e}");
    assert_eq!(
        t.user(&id).unwrap().groups,
        [mail_sec.clone(), dl.clone()].into_iter().collect()
    );
    // Only Exchange groups left: still a failure naming them, nothing sent.
    t.clear_requests();
    for dry in [true, false] {
        let e = c
            .execute(&a, &remove, &run("k").with_dry_run(dry))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
        assert!(
            e.to_string().contains("in no group Graph can change")
                && e.to_string().contains("All Sales"),
            "{e}"
        );
    }
    assert_eq!(
        lines(&t.requests()),
        vec![format!("GET /v1.0/users/{id}/memberOf"); 2]
    );
}

#[tokio::test]
async fn app_roles_grants_and_auth_methods_go_in_one_batch_each() {
    let t = tenant().await;
    let id = t.add_user(NewUser {
        // Every kind besides the password.
        auth_methods: AUTH_METHOD_KINDS[1..]
            .iter()
            .map(|k| (*k).to_owned())
            .collect(),
        ..NewUser::new("apps@example.test")
    });
    let salesforce = t.add_service_principal("Salesforce");
    let zoom = t.add_service_principal("Zoom");
    let graph = t.add_service_principal("Microsoft Graph");
    t.assign_app_role(&id, &salesforce, "00000000-0000-0000-0000-000000000001");
    t.assign_app_role(&id, &zoom, "00000000-0000-0000-0000-000000000002");
    let mine = t.add_grant(&zoom, &graph, Some(&id), "Mail.Read");
    t.add_grant(&zoom, &graph, None, "User.Read");
    let c = connector(&t);
    let a = account(&id, "apps@example.test");

    let roles = action("entra.remove_app_roles");
    let snap = c.snapshot(&a, &roles).await.unwrap();
    t.clear_requests();
    let r = c.execute(&a, &roles, &run("k")).await.unwrap();
    assert_eq!(r.outcome, Outcome::Done);
    assert_eq!(
        detail(&r),
        "removed 2 app role assignments (Salesforce, Zoom)"
    );
    assert!(t.user(&id).unwrap().app_roles.is_empty());
    let b = batches(&t.requests());
    assert_eq!(b.len(), 1);
    assert!(
        b[0].iter()
            .all(|(m, u)| m == "DELETE"
                && u.starts_with(&format!("/users/{id}/appRoleAssignments/")))
    );
    assert_eq!(c.restore(&a, &snap).await.unwrap(), Outcome::Done);
    assert_eq!(t.user(&id).unwrap().app_roles.len(), 2);

    let grants = action("entra.remove_grants");
    t.clear_requests();
    let r = c.execute(&a, &grants, &run("k")).await.unwrap();
    assert_eq!(r.outcome, Outcome::Done);
    assert!(t.user(&id).unwrap().grants.is_empty());
    assert_eq!(
        batches(&t.requests()),
        vec![vec![(
            "DELETE".to_owned(),
            format!("/oauth2PermissionGrants/{mine}")
        )]],
        "the tenant-wide grant is kept"
    );
    assert_eq!(
        c.execute(&a, &grants, &run("k")).await.unwrap().outcome,
        Outcome::AlreadyDone
    );

    let methods = action("entra.remove_auth_methods");
    t.clear_requests();
    let r = c.execute(&a, &methods, &run("k")).await.unwrap();
    assert_eq!(r.outcome, Outcome::Done);
    assert!(
        detail(&r).starts_with("removed 7 methods"),
        "{}",
        detail(&r)
    );
    assert!(
        detail(&r).ends_with("kept (not deletable): password"),
        "{}",
        detail(&r)
    );
    assert_eq!(t.user(&id).unwrap().auth_methods, vec!["password"]);
    let b = batches(&t.requests());
    assert_eq!(b.len(), 1);
    let kinds: Vec<&str> = b[0]
        .iter()
        .map(|(_, u)| u.split('/').nth(4).unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec![
            "phoneMethods",
            "microsoftAuthenticatorMethods",
            "fido2Methods",
            "softwareOathMethods",
            "emailMethods",
            "windowsHelloForBusinessMethods",
            "temporaryAccessPassMethods"
        ]
    );
    assert_eq!(
        c.execute(&a, &methods, &run("k")).await.unwrap().outcome,
        Outcome::AlreadyDone
    );

    let found = c.discover(&a).await.unwrap();
    let apps: Vec<&str> = found.iter().map(|a| a.app.as_str()).collect();
    assert_eq!(apps, vec!["salesforce", "zoom"]);
}

/// The hard case, a leaver who is a Global Administrator (before, the action only listed
/// `memberOf` roles and failed `unsupported`): active tenant-wide and administrative-unit
/// assignments are deleted in one `$batch`, the PIM eligibility goes with `adminRemove`, the
/// role held through a role-assignable group is reported (not touched), a look-alike keeps
/// everything; lookup marks the account privileged with the role names; a dry run only
/// reads; a repeat is already_done; rollback re-creates each role at its scope (the
/// eligibility with its end date).
#[tokio::test]
async fn directory_roles_of_a_global_admin_are_removed_and_rolled_back() {
    let t = tenant().await;
    t.grant_role_management();
    let au = "/administrativeUnits/6f1c9a55-0000-4000-8000-00000000a001";
    let helpdesk = t.add_group(NewGroup::role_assignable("Helpdesk Admins"));
    t.assign_role(&helpdesk, HELPDESK_ADMINISTRATOR, "/");
    let id = t.add_user(NewUser {
        groups: vec![helpdesk.clone()],
        ..NewUser::new("gina@example.test")
    });
    t.assign_role(&id, GLOBAL_ADMINISTRATOR, "/");
    t.assign_role(&id, USER_ADMINISTRATOR, au);
    t.add_role_eligibility(
        &id,
        SECURITY_ADMINISTRATOR,
        "/",
        Some("2099-01-01T00:00:00Z"),
    );
    let twin = t.add_user(NewUser::new("gina.admin@example.test"));
    t.assign_role(&twin, GLOBAL_ADMINISTRATOR, "/");
    t.add_role_eligibility(&twin, SECURITY_ADMINISTRATOR, "/", None);
    let before = t.role_assignments(&id);
    let pairs = |gs: Vec<offboard_testkit::sim::graph::RoleGrantState>| -> Vec<(String, String)> {
        let mut v: Vec<_> = gs
            .into_iter()
            .map(|g| (g.role_definition_id, g.directory_scope_id))
            .collect();
        v.sort();
        v
    };
    let c = connector(&t);

    // Lookup: privileged, naming the roles.
    let a = c
        .lookup(&LookupRequest::person(Person::new(
            "p",
            "gina@example.test",
        )))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.external_id, id);
    let why = &a.attributes[offboard_core::PRIVILEGED_ATTRIBUTE];
    for role in [
        "Global Administrator",
        &format!("User Administrator at {au}"),
        "Security Administrator (eligible)",
        "Helpdesk Administrator (via group Helpdesk Admins)",
    ] {
        assert!(why.contains(role), "{role} in {why}");
    }
    // Every role read filters on exactly one principal, escaped.
    for r in t.requests() {
        if r.path.contains("/roleManagement/") {
            let f = r.query_param("$filter").unwrap();
            assert!(
                f == format!("principalId eq '{id}'")
                    || f == format!("principalId eq '{helpdesk}'"),
                "{f}"
            );
        }
    }

    let act = action("entra.remove_directory_roles");
    let snap = c.snapshot(&a, &act).await.unwrap();
    t.clear_requests();
    let dry = c
        .execute(&a, &act, &run("k").with_dry_run(true))
        .await
        .unwrap();
    assert_eq!(dry.outcome, Outcome::Done);
    assert!(
        detail(&dry).contains("would remove 2 active role assignments"),
        "{}",
        detail(&dry)
    );
    assert!(t.requests().iter().all(|r| r.method == "GET"));
    assert_eq!(t.role_assignments(&id), before);

    t.clear_requests();
    let done = c.execute(&a, &act, &run("k")).await.unwrap();
    assert_eq!(done.outcome, Outcome::Done, "{}", detail(&done));
    assert!(
        detail(&done).contains("Helpdesk Administrator (group Helpdesk Admins)"),
        "{}",
        detail(&done)
    );
    assert!(t.role_assignments(&id).is_empty());
    assert!(t.role_eligibilities(&id).is_empty());
    assert!(t.user(&id).unwrap().roles.is_empty());
    // The look-alike and the group keep their roles; the membership is remove_groups' job.
    assert_eq!(t.role_assignments(&twin).len(), 1);
    assert_eq!(t.role_eligibilities(&twin).len(), 1);
    assert_eq!(t.role_assignments(&helpdesk).len(), 1);
    assert!(t.user(&id).unwrap().groups.contains(&helpdesk));
    // Exactly: one batch of the two DELETEs, one adminRemove, no legacy call left to make.
    let sent = t.requests();
    let mut deletes = batches(&sent).concat();
    deletes.sort();
    let mut expected: Vec<(String, String)> = before
        .iter()
        .map(|g| {
            (
                "DELETE".to_owned(),
                format!("/roleManagement/directory/roleAssignments/{}", g.id),
            )
        })
        .collect();
    expected.sort();
    assert_eq!(deletes, expected);
    let posts: Vec<&RecordedRequest> = sent.iter().filter(|r| r.method == "POST").collect();
    assert_eq!(posts.len(), 2, "{:?}", lines(&sent));
    let remove = posts
        .iter()
        .find(|r| r.path.ends_with("/roleEligibilityScheduleRequests"))
        .unwrap();
    let body = remove.body.as_ref().unwrap();
    assert_eq!(body["action"], "adminRemove");
    assert_eq!(body["principalId"], id.as_str());
    assert_eq!(body["roleDefinitionId"], SECURITY_ADMINISTRATOR);
    assert_eq!(body["directoryScopeId"], "/");
    assert!(
        body["justification"]
            .as_str()
            .is_some_and(|j| !j.is_empty())
    );
    assert!(
        !lines(&sent)
            .iter()
            .any(|l| l.starts_with("DELETE /v1.0/directoryRoles/"))
    );

    let v = c.verify_revoked(&a).await.unwrap();
    let roles: Vec<&String> = v.remaining.iter().filter(|r| r.contains("role")).collect();
    assert_eq!(roles.len(), 1, "{roles:?}");
    assert!(roles[0].contains("through role-assignable group Helpdesk Admins"));

    repeat_then_restore_twice(&c, &a, &act, &snap).await;
    assert_eq!(pairs(t.role_assignments(&id)), pairs(before));
    let eligible = t
        .role_eligibility_schedule(&id, SECURITY_ADMINISTRATOR, "/")
        .unwrap();
    assert_eq!(eligible["expiration"]["type"], "afterDateTime");
    assert_eq!(
        eligible["expiration"]["endDateTime"],
        "2099-01-01T00:00:00Z"
    );
    assert!(
        t.user(&id).unwrap().roles.len() == 1,
        "the legacy view is back"
    );
}

/// Without `RoleManagement.ReadWrite.Directory` Graph refuses every removal: the task fails
/// naming each role kept (before, roles were never removed at all), and nothing changes.
#[tokio::test]
async fn directory_roles_refused_without_role_management_fail_by_name() {
    let t = tenant().await;
    let id = t.add_user(NewUser::new("gina@example.test"));
    t.assign_role(&id, GLOBAL_ADMINISTRATOR, "/");
    t.add_role_eligibility(&id, SECURITY_ADMINISTRATOR, "/", None);
    let c = connector(&t);
    let a = account(&id, "gina@example.test");
    let e = c
        .execute(&a, &action("entra.remove_directory_roles"), &run("k"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    let text = e.to_string();
    for needle in [
        "Global Administrator",
        "Security Administrator",
        "RoleManagement.ReadWrite.Directory",
        "NOT removed (2)",
    ] {
        assert!(text.contains(needle), "{needle} in {text}");
    }
    assert_eq!(t.role_assignments(&id).len(), 1);
    assert_eq!(t.role_eligibilities(&id).len(), 1);
    let v = c.verify_revoked(&a).await.unwrap();
    assert!(
        v.remaining
            .iter()
            .any(|r| r.contains("Global Administrator"))
    );
    assert!(
        v.remaining
            .iter()
            .any(|r| r.contains("eligible for directory role Security Administrator"))
    );
    // Holding nothing is already done; a gone user not found.
    let plain = t.add_user(NewUser::new("plain@example.test"));
    let none = c
        .execute(
            &account(&plain, "plain@example.test"),
            &action("entra.remove_directory_roles"),
            &run("k"),
        )
        .await
        .unwrap();
    assert_eq!(none.outcome, Outcome::AlreadyDone);
    t.remove_user(&plain);
    let gone = c
        .execute(
            &account(&plain, "plain@example.test"),
            &action("entra.remove_directory_roles"),
            &run("k"),
        )
        .await
        .unwrap();
    assert_eq!(gone.outcome, Outcome::NotFound);
}

/// When Graph refuses the unified DELETE, the tenant-wide role still in `memberOf` goes
/// through the legacy `DELETE /directoryRoles/{r}/members/{id}/$ref` and is not reported as
/// kept (before, it was named NOT removed although the legacy call removed it); the
/// administrative-unit role, which has no legacy form, fails the task by name.
#[tokio::test]
async fn legacy_removal_takes_over_when_the_unified_delete_is_refused() {
    let t = tenant().await;
    t.grant_role_management();
    let au = "/administrativeUnits/6f1c9a55-0000-4000-8000-00000000a002";
    let id = t.add_user(NewUser::new("gina@example.test"));
    t.assign_role(&id, GLOBAL_ADMINISTRATOR, "/");
    t.assign_role(&id, USER_ADMINISTRATOR, au);
    t.fail_route(
        "DELETE",
        "/roleManagement/directory/roleAssignments/{unifiedRoleAssignment-id}",
        400,
    );
    let c = connector(&t);
    let a = account(&id, "gina@example.test");
    let ga = t.user(&id).unwrap().roles.into_iter().next().unwrap();
    t.clear_requests();
    let e = c
        .execute(&a, &action("entra.remove_directory_roles"), &run("k"))
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("removed 1 directory roles (Global Administrator)"),
        "{text}"
    );
    assert!(
        text.contains(&format!("NOT removed (1): User Administrator at {au}")),
        "{text}"
    );
    assert!(lines(&t.requests()).contains(&format!(
        "DELETE /v1.0/directoryRoles/{ga}/members/{id}/$ref"
    )));
    let left = t.role_assignments(&id);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].directory_scope_id, au);
}

/// A lookup that cannot read the roles (403 without `RoleManagement.Read.Directory`) fails
/// instead of calling the person unprivileged (before, roles were not read at all).
#[tokio::test]
async fn lookup_fails_when_roles_cannot_be_read() {
    let t = tenant().await;
    let id = t.add_user(NewUser::new("gina@example.test"));
    t.assign_role(&id, GLOBAL_ADMINISTRATOR, "/");
    t.withhold_permission("RoleManagement.Read.Directory");
    let c = connector(&t);
    let e = c
        .lookup(&LookupRequest::person(Person::new(
            "p",
            "gina@example.test",
        )))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(
        e.to_string().contains("RoleManagement.Read.Directory"),
        "{e}"
    );
}

/// An id with a quote reaches the role `$filter` only as an escaped OData literal (Graph
/// accepts a UPN as `{user-id}`, so `memberOf` finds the user and the filter is sent).
#[tokio::test]
async fn role_filters_escape_the_id() {
    let t = tenant().await;
    t.add_user(NewUser::new("o'neil@example.test"));
    let c = connector(&t);
    let a = account("o'neil@example.test", "o'neil@example.test");
    let r = c
        .execute(&a, &action("entra.remove_directory_roles"), &run("k"))
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::AlreadyDone);
    let filters: Vec<String> = t
        .requests()
        .iter()
        .filter_map(|r| r.query_param("$filter").map(str::to_owned))
        .collect();
    assert_eq!(filters.len(), 2, "{filters:?}");
    assert!(
        filters
            .iter()
            .all(|f| f == "principalId eq 'o''neil@example.test'"),
        "{filters:?}"
    );
}

/// entra.hand_over_owned gives each owned group, app registration and enterprise app to the
/// manager, adding the manager before removing the leaver (never an object without an
/// owner), skipping the add where the manager already owns it; a repeat is already_done, a
/// dry run writes nothing, and rollback re-adds the leaver and removes the manager only
/// where the hand-over added it. Before, the action failed `unsupported` and changed nothing.
#[tokio::test]
async fn hand_over_owned_adds_the_manager_first_then_removes_the_leaver() {
    let t = tenant().await;
    let boss = t.add_user(NewUser::new("boss@example.test"));
    let id = t.add_user(NewUser {
        manager: Some(boss.clone()),
        ..NewUser::new("owner@example.test")
    });
    let g = t.add_group(NewGroup {
        owners: vec![id.clone()],
        ..NewGroup::assigned("Project X")
    });
    let app = t.add_application("Team App", &[&id]);
    let sp = t.add_service_principal("Team App SP");
    t.add_service_principal_owner(&sp, &id);
    t.add_service_principal_owner(&sp, &boss);
    let c = connector(&t);
    let a = account(&id, "owner@example.test");
    let hand = action("entra.hand_over_owned");
    let spec = c.capabilities().action(&hand.name).unwrap().clone();
    assert!(spec.reversible && spec.after.is_empty(), "{spec:?}");
    let v = c.verify_revoked(&a).await.unwrap();
    assert_eq!(
        v.remaining
            .iter()
            .filter(|r| r.contains("owner of"))
            .count(),
        3,
        "{:?}",
        v.remaining
    );
    let snap = c.snapshot(&a, &hand).await.unwrap();
    assert_eq!(snap.data["new_owner"], json!(boss));
    let objects = snap.data["objects"].as_array().unwrap();
    assert_eq!(objects.len(), 3);
    assert!(objects.iter().any(|o| o["id"] == json!(sp)
        && o["kind"] == "servicePrincipals"
        && o["new_owner_was_owner"] == json!(true)));
    assert!(objects.iter().any(|o| o["id"] == json!(app)
        && o["kind"] == "applications"
        && o["new_owner_was_owner"] == json!(false)));
    t.clear_requests();

    let dry = c
        .execute(&a, &hand, &run("k").with_dry_run(true))
        .await
        .unwrap();
    assert_eq!(dry.outcome, Outcome::Done);
    assert!(
        detail(&dry).contains("would hand over 3 objects")
            && detail(&dry).contains("to boss@example.test"),
        "{}",
        detail(&dry)
    );
    assert!(t.requests().iter().all(|r| r.method == "GET"), "dry run");
    t.clear_requests();

    let r = c.execute(&a, &hand, &run("k")).await.unwrap();
    assert_eq!(r.outcome, Outcome::Done, "{}", detail(&r));
    assert!(
        detail(&r).contains("group Project X")
            && detail(&r).contains("app registration Team App")
            && detail(&r).contains("enterprise app Team App SP"),
        "{}",
        detail(&r)
    );
    for o in [&g, &app, &sp] {
        assert_eq!(t.owners(o), [boss.clone()].into_iter().collect());
    }
    let base = t.graph_url();
    let reqs = t.requests();
    assert_eq!(
        lines(&reqs),
        vec![
            format!("GET /v1.0/users/{id}/ownedObjects"),
            format!("GET /v1.0/users/{id}/manager"),
            format!("GET /v1.0/groups/{g}/owners"),
            format!("POST /v1.0/groups/{g}/owners/$ref"),
            format!("DELETE /v1.0/groups/{g}/owners/{id}/$ref"),
            format!("GET /v1.0/applications/{app}/owners"),
            format!("POST /v1.0/applications/{app}/owners/$ref"),
            format!("DELETE /v1.0/applications/{app}/owners/{id}/$ref"),
            format!("GET /v1.0/servicePrincipals/{sp}/owners"),
            format!("DELETE /v1.0/servicePrincipals/{sp}/owners/{id}/$ref"),
        ],
        "the new owner is added before the leaver goes; an owner already there is not re-added"
    );
    assert_eq!(
        reqs[3].body,
        Some(json!({"@odata.id": format!("{base}/directoryObjects/{boss}")}))
    );
    let again = c.execute(&a, &hand, &run("k")).await.unwrap();
    assert_eq!(again.outcome, Outcome::AlreadyDone);
    let v = c.verify_revoked(&a).await.unwrap();
    assert!(
        v.remaining.iter().all(|r| !r.contains("owner of")),
        "{:?}",
        v.remaining
    );

    assert_eq!(c.restore(&a, &snap).await.unwrap(), Outcome::Done);
    assert_eq!(t.owners(&g), [id.clone()].into_iter().collect());
    assert_eq!(t.owners(&app), [id.clone()].into_iter().collect());
    assert_eq!(
        t.owners(&sp),
        [id.clone(), boss.clone()].into_iter().collect(),
        "the manager owned it before the hand-over: kept"
    );
    assert_eq!(c.restore(&a, &snap).await.unwrap(), Outcome::AlreadyDone);
    assert_eq!(c.snapshot(&a, &hand).await.unwrap().data, snap.data);
}

/// `to` names the new owner exactly (id or UPN; an unknown one is refused with nothing
/// changed); without a manager and `to` every object is reported by name and nothing is
/// written; an object Graph refuses (a role-assignable group without
/// RoleManagement.ReadWrite.Directory) keeps the leaver as owner and fails the task by name
/// after the others were handed over. Before, the action failed `unsupported` for all.
#[tokio::test]
async fn hand_over_owned_honours_to_and_reports_what_it_cannot_hand_over() {
    let t = tenant().await;
    let heir = t.add_user(NewUser::new("heir@example.test"));
    let id = t.add_user(NewUser::new("lone@example.test"));
    let g = t.add_group(NewGroup {
        owners: vec![id.clone()],
        ..NewGroup::assigned("Project Y")
    });
    let admins = t.add_group(NewGroup {
        owners: vec![id.clone()],
        ..NewGroup::role_assignable("Helpdesk Admins")
    });
    let app = t.add_application("Lone App", &[&id]);
    let c = connector(&t);
    let a = account(&id, "lone@example.test");
    let hand = action("entra.hand_over_owned");

    // No manager and no `to`: each object named, nothing written.
    t.clear_requests();
    let e = c.execute(&a, &hand, &run("k")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    let text = e.to_string();
    assert!(
        text.contains("group Project Y")
            && text.contains("group Helpdesk Admins")
            && text.contains("app registration Lone App")
            && text.contains("no manager"),
        "{text}"
    );
    assert!(t.requests().iter().all(|r| r.method == "GET"));

    // An unknown `to`: refused, nothing written.
    let to = |who: &str| {
        Action::with_params(
            ActionName::from_static("entra.hand_over_owned"),
            &json!({"to": who}),
        )
        .unwrap()
    };
    t.clear_requests();
    let e = c
        .execute(&a, &to("nobody@example.test"), &run("k"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(t.requests().iter().all(|r| r.method == "GET"));
    let e = c
        .execute(&a, &to("lone@example.test"), &run("k"))
        .await
        .unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::InvalidInput,
        "the leaver is no heir: {e}"
    );

    // `to` by UPN (any ASCII case): the group and the app go to the heir; Graph refuses the
    // role-assignable group, which keeps the leaver and fails the task by name.
    let e = c
        .execute(&a, &to("HEIR@example.test"), &run("k"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    let text = e.to_string();
    assert!(
        text.contains("handed over 2 objects")
            && text.contains("NOT handed over (1): group Helpdesk Admins"),
        "{text}"
    );
    assert_eq!(t.owners(&g), [heir.clone()].into_iter().collect());
    assert_eq!(t.owners(&app), [heir.clone()].into_iter().collect());
    assert_eq!(
        t.owners(&admins),
        [id.clone()].into_iter().collect(),
        "adding failed: the leaver stays"
    );
    let v = c.verify_revoked(&a).await.unwrap();
    assert!(
        v.remaining
            .iter()
            .any(|r| r.contains("owner of Helpdesk Admins")),
        "{:?}",
        v.remaining
    );

    // With the permission granted, a second run hands over the rest.
    t.grant_role_management();
    let r = c.execute(&a, &to(&heir), &run("k")).await.unwrap();
    assert_eq!(r.outcome, Outcome::Done, "{}", detail(&r));
    assert_eq!(t.owners(&admins), [heir.clone()].into_iter().collect());
}

/// entra.clear_manager removes the manager link (`DELETE …/manager/$ref`), records the
/// manager in its snapshot and puts it back on rollback with a `PUT …/manager/$ref` whose
/// `@odata.id` is under the configured Graph base; a repeat and a user without a manager are
/// already_done, a dry run writes nothing, verify_revoked lists a link left and a synced user
/// is refused by name. Before it existed the action was unknown (unsupported).
#[tokio::test]
async fn clear_manager_removes_the_link_and_rolls_back() {
    let t = tenant().await;
    let boss = t.add_user(NewUser::new("boss@example.test"));
    let id = t.add_user(NewUser {
        manager: Some(boss.clone()),
        ..NewUser::new("leaver@example.test")
    });
    let c = connector(&t);
    let a = account(&id, "leaver@example.test");
    let clear = action("entra.clear_manager");
    let spec = c.capabilities().action(&clear.name).unwrap().clone();
    assert!(spec.reversible && !spec.critical);
    assert_eq!(
        spec.after,
        vec![ActionName::from_static("entra.hand_over_owned")],
        "the hand-over reads the manager first"
    );
    let v = c.verify_revoked(&a).await.unwrap();
    assert!(
        v.remaining
            .iter()
            .any(|r| r.contains("manager link to boss@example.test")),
        "{:?}",
        v.remaining
    );
    let snap = c.snapshot(&a, &clear).await.unwrap();
    assert_eq!(snap.data, json!({"manager": boss}));
    t.clear_requests();

    let dry = c
        .execute(&a, &clear, &run("k").with_dry_run(true))
        .await
        .unwrap();
    assert_eq!(dry.outcome, Outcome::Done);
    assert!(
        detail(&dry).contains("boss@example.test"),
        "{}",
        detail(&dry)
    );
    assert!(t.requests().iter().all(|r| r.method == "GET"), "dry run");
    assert_eq!(t.user(&id).unwrap().manager.as_deref(), Some(boss.as_str()));
    t.clear_requests();

    let r = c.execute(&a, &clear, &run("k")).await.unwrap();
    assert_eq!(r.outcome, Outcome::Done);
    assert_eq!(t.user(&id).unwrap().manager, None);
    assert_eq!(
        lines(&t.requests()),
        vec![
            format!("GET /v1.0/users/{id}"),
            format!("GET /v1.0/users/{id}/manager"),
            format!("DELETE /v1.0/users/{id}/manager/$ref"),
        ]
    );
    let again = c.execute(&a, &clear, &run("k")).await.unwrap();
    assert_eq!(again.outcome, Outcome::AlreadyDone);
    let v = c.verify_revoked(&a).await.unwrap();
    assert!(
        v.remaining.iter().all(|r| !r.contains("manager")),
        "{:?}",
        v.remaining
    );

    t.clear_requests();
    assert_eq!(c.restore(&a, &snap).await.unwrap(), Outcome::Done);
    assert_eq!(t.user(&id).unwrap().manager.as_deref(), Some(boss.as_str()));
    let put = t
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT")
        .unwrap();
    assert_eq!(put.line(), format!("PUT /v1.0/users/{id}/manager/$ref"));
    assert_eq!(
        put.body,
        Some(json!({"@odata.id": format!("{}/users/{boss}", t.graph_url())}))
    );
    assert_eq!(c.restore(&a, &snap).await.unwrap(), Outcome::AlreadyDone);

    // A user without a manager: nothing to do, nothing to restore.
    let lone = t.add_user(NewUser::new("lone@example.test"));
    let b = account(&lone, "lone@example.test");
    let snap = c.snapshot(&b, &clear).await.unwrap();
    assert_eq!(snap.data, json!({"manager": null}));
    let r = c.execute(&b, &clear, &run("k")).await.unwrap();
    assert_eq!(r.outcome, Outcome::AlreadyDone);
    assert_eq!(c.restore(&b, &snap).await.unwrap(), Outcome::AlreadyDone);

    // A user synced from AD: AD masters the manager; refused by name, nothing sent.
    let synced = refused_for_synced(
        &t,
        &c,
        NewUser {
            manager: Some(boss.clone()),
            ..NewUser::new("synced@example.test")
        },
        &clear,
        "ad.clear_manager",
    )
    .await;
    assert_eq!(
        t.user(&synced).unwrap().manager.as_deref(),
        Some(boss.as_str())
    );
}

/// entra.clear_immutable_id clears onPremisesImmutableId of a cloud-only user (PATCH with
/// null), is already_done on a repeat, writes nothing on a dry run, patches the value back on
/// rollback, and refuses a user still synced from AD (its hard-match anchor) without a
/// write. Before, the action did not exist (unsupported).
#[tokio::test]
async fn clear_immutable_id_is_for_cloud_only_users_and_rolls_back() {
    let t = tenant().await;
    let id = t.add_user(NewUser {
        immutable_id: Some("c2ltLWFuY2hvcg==".into()),
        ..NewUser::new("converted@example.test")
    });
    let c = connector(&t);
    let a = account(&id, "converted@example.test");
    let clear = action("entra.clear_immutable_id");
    assert!(
        c.capabilities()
            .action(&clear.name)
            .is_some_and(|s| s.reversible && !s.critical && s.after.is_empty())
    );
    let snap = c.snapshot(&a, &clear).await.unwrap();
    assert_eq!(snap.data, json!({"immutable_id": "c2ltLWFuY2hvcg=="}));
    t.clear_requests();
    let dry = c
        .execute(&a, &clear, &run("k").with_dry_run(true))
        .await
        .unwrap();
    assert_eq!(dry.outcome, Outcome::Done);
    assert!(t.requests().iter().all(|r| r.method == "GET"), "dry run");
    t.clear_requests();
    let r = c.execute(&a, &clear, &run("k")).await.unwrap();
    assert_eq!(r.outcome, Outcome::Done);
    assert_eq!(t.user(&id).unwrap().immutable_id, None);
    let reqs = t.requests();
    assert_eq!(
        lines(&reqs),
        vec![
            format!("GET /v1.0/users/{id}"),
            format!("PATCH /v1.0/users/{id}"),
        ]
    );
    assert_eq!(
        reqs[0].query_param("$select"),
        Some("id,userPrincipalName,onPremisesSyncEnabled,onPremisesImmutableId")
    );
    assert_eq!(reqs[1].body, Some(json!({"onPremisesImmutableId": null})));
    repeat_then_restore_twice(&c, &a, &clear, &snap).await;
    assert_eq!(
        t.user(&id).unwrap().immutable_id.as_deref(),
        Some("c2ltLWFuY2hvcg==")
    );

    let synced = refused_for_synced(
        &t,
        &c,
        NewUser {
            immutable_id: Some("c3luY2Vk".into()),
            ..NewUser::new("synced@example.test")
        },
        &clear,
        "hard-match",
    )
    .await;
    assert_eq!(
        t.user(&synced).unwrap().immutable_id.as_deref(),
        Some("c3luY2Vk")
    );
}

#[tokio::test]
async fn revoke_sessions_is_remembered_per_task() {
    let t = tenant().await;
    let id = t.add_user(NewUser::new("s@example.test"));
    let c = connector(&t);
    let a = account(&id, "s@example.test");
    let revoke = action("entra.revoke_sessions");
    let r = c.execute(&a, &revoke, &run("task-1")).await.unwrap();
    assert_eq!(r.outcome, Outcome::Done);
    let state = t.user(&id).unwrap();
    assert_eq!(state.session_revocations, 1);
    assert_ne!(state.sessions_valid_from, "2024-01-01T00:00:00Z");
    let r = c.execute(&a, &revoke, &run("task-1")).await.unwrap();
    assert_eq!(r.outcome, Outcome::AlreadyDone);
    assert_eq!(t.user(&id).unwrap().session_revocations, 1);
    let r = c.execute(&a, &revoke, &run("task-2")).await.unwrap();
    assert_eq!(r.outcome, Outcome::Done);
    assert_eq!(t.user(&id).unwrap().session_revocations, 2);
}

/// A user synced from AD keeps signing in until AD disables the account and Entra Connect
/// syncs it: the sessions are revoked at once, the task waits for the sync as a job in
/// progress (no retry spent, no further call while waiting), and revokes again once the
/// account is disabled, so nothing issued in between survives.
#[tokio::test]
async fn synced_users_sessions_are_revoked_at_once_and_again_after_the_sync() {
    let t = tenant().await;
    let id = t.add_user(NewUser {
        on_premises_sync: true,
        ..NewUser::new("hybrid@example.test")
    });
    let c = connector(&t);
    let a = account(&id, "hybrid@example.test");
    let revoke = action("entra.revoke_sessions");
    let spec = c
        .capabilities()
        .action(&ActionName::from_static("entra.revoke_sessions"))
        .unwrap()
        .clone();
    assert!(spec.after.is_empty(), "{:?}", spec.after);

    let dry = c
        .execute(&a, &revoke, &run("k").with_dry_run(true))
        .await
        .unwrap();
    assert_eq!(dry.outcome, Outcome::Done);
    assert_eq!(t.user(&id).unwrap().session_revocations, 0);

    for _ in 0..2 {
        let e = c.execute(&a, &revoke, &run("k")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InProgress, "{e}");
        assert_eq!(
            e.retry(),
            RetryClass::Retryable {
                after: Some(Duration::from_secs(300))
            }
        );
        assert!(e.to_string().contains("sync"), "{e}");
        assert_eq!(t.user(&id).unwrap().session_revocations, 1);
    }
    t.sync_from_ad(&id, false);
    let r = c.execute(&a, &revoke, &run("k")).await.unwrap();
    assert_eq!(r.outcome, Outcome::Done);
    assert!(detail(&r).contains("again"), "{}", detail(&r));
    assert_eq!(t.user(&id).unwrap().session_revocations, 2);
    let r = c.execute(&a, &revoke, &run("k")).await.unwrap();
    assert_eq!(r.outcome, Outcome::AlreadyDone);
    assert_eq!(t.user(&id).unwrap().session_revocations, 2);
}

#[tokio::test]
async fn delete_is_soft_and_restorable_within_retention() {
    let t = tenant().await;
    let grp = t.add_group(NewGroup::assigned("Kept"));
    let id = t.add_user(NewUser {
        groups: vec![grp],
        ..NewUser::new("del@example.test")
    });
    let c = connector(&t);
    let a = account(&id, "del@example.test");
    let delete = action("entra.delete");
    assert!(
        c.capabilities()
            .action(&delete.name)
            .is_some_and(|s| s.critical && s.reversible)
    );
    let snap = c.snapshot(&a, &delete).await.unwrap();
    t.clear_requests();
    let r = c.execute(&a, &delete, &run("k")).await.unwrap();
    assert_eq!(r.outcome, Outcome::Done);
    assert!(lines(&t.requests()).contains(&format!("DELETE /v1.0/users/{id}")));
    assert!(t.user(&id).unwrap().deleted);
    let again = c.execute(&a, &delete, &run("k")).await.unwrap();
    assert_eq!(again.outcome, Outcome::AlreadyDone);
    assert!(detail(&again).contains("restorable"), "{}", detail(&again));
    assert!(c.verify_revoked(&a).await.unwrap().revoked);

    t.clear_requests();
    assert_eq!(c.restore(&a, &snap).await.unwrap(), Outcome::Done);
    assert!(
        lines(&t.requests()).contains(&format!("POST /v1.0/directory/deletedItems/{id}/restore"))
    );
    let state = t.user(&id).unwrap();
    assert!(!state.deleted);
    assert_eq!(state.groups.len(), 1, "memberships come back with the user");
    assert_eq!(c.restore(&a, &snap).await.unwrap(), Outcome::AlreadyDone);

    // Past the retention window the user is gone for good.
    c.execute(&a, &delete, &run("k2")).await.unwrap();
    t.set_retention(Duration::ZERO);
    let e = c.restore(&a, &snap).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("retention"), "{e}");
}

#[tokio::test]
async fn lookup_escapes_quotes_and_never_widens() {
    let t = tenant().await;
    let id = t.add_user(NewUser::new("o'neil@example.test"));
    let other = t.add_user(NewUser {
        mail: Some("shared@example.test".into()),
        ..NewUser::new("a@example.test")
    });
    t.add_user(NewUser::new("shared@example.test"));
    let c = connector(&t);
    let person = |email: &str| LookupRequest::person(Person::new("p", email));
    t.clear_requests();
    let found = c
        .lookup(&person("O'Neil@example.test"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.external_id, id);
    assert_eq!(
        t.requests()[0].query_param("$filter"),
        Some(
            "userPrincipalName eq 'O''Neil@example.test' or mail eq 'O''Neil@example.test' \
             or proxyAddresses/any(x:x eq 'smtp:O''Neil@example.test') \
             or otherMails/any(x:x eq 'O''Neil@example.test')"
        )
    );
    for hostile in [
        "' or 1 eq 1",
        "x' or userPrincipalName eq 'o''neil@example.test",
        "*",
        "o'neil@example.test' or mail eq '",
        "eq",
        "o'neil@example.tes\u{0442}",
        "\u{FF4F}'neil@example.test",
    ] {
        match c.lookup(&person(hostile)).await {
            Ok(None) => {}
            Err(e) if e.kind() == ErrorKind::InvalidInput => {}
            other => panic!("{hostile:?} widened the lookup: {other:?}"),
        }
    }
    let e = c.lookup(&person("a\r\nb")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    t.clear_requests();
    assert!(c.lookup(&person("")).await.unwrap().is_none());
    assert!(t.requests().is_empty(), "an empty address sends nothing");
    // The UPN of one and the mail of another: two matches.
    let e = c.lookup(&person("shared@example.test")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Ambiguous);
    assert!(e.to_string().contains(&other), "{e}");
}

/// The person's addresses also match `proxyAddresses` (`smtp:` ones) and `otherMails`,
/// escaped in the filter and compared again exactly: none is `None`, two users `Ambiguous`.
#[tokio::test]
async fn lookup_matches_proxy_addresses_and_other_mails_exactly() {
    let t = tenant().await;
    let ada = t.add_user(NewUser {
        proxy_addresses: vec![
            "SMTP:ada.lovelace@example.test".into(),
            "smtp:Ada@Example.test".into(),
            "smtp:o'hara@example.test".into(),
            "x500:/o=Sim/ou=ada@old.example.test".into(),
        ],
        other_mails: vec!["ada@home.example".into()],
        ..NewUser::new("ada@contoso.onmicrosoft.test")
    });
    t.add_user(NewUser {
        other_mails: vec!["shared@example.test".into()],
        ..NewUser::new("one@contoso.onmicrosoft.test")
    });
    t.add_user(NewUser {
        proxy_addresses: vec!["smtp:SHARED@example.test".into()],
        ..NewUser::new("two@contoso.onmicrosoft.test")
    });
    let c = connector(&t);
    let person = |email: &str| LookupRequest::person(Person::new("p", email));
    for address in [
        "ada@example.test",
        "ADA.LOVELACE@example.test",
        "ada@home.example",
        "O'Hara@example.test",
    ] {
        let found = c.lookup(&person(address)).await.unwrap();
        assert_eq!(found.map(|a| a.external_id), Some(ada.clone()), "{address}");
    }
    t.clear_requests();
    let by_alias = c
        .lookup(&LookupRequest::person(
            Person::new("p", "nobody@example.test").with_alias("ada@home.example"),
        ))
        .await
        .unwrap();
    assert_eq!(by_alias.map(|a| a.external_id), Some(ada.clone()));
    let filter = t.requests()[0].query_param("$filter").unwrap().to_owned();
    assert!(
        filter.contains("proxyAddresses/any(x:x eq 'smtp:ada@home.example')")
            && filter.contains("otherMails/any(x:x eq 'nobody@example.test')"),
        "{filter}"
    );
    assert!(
        t.requests()[0]
            .headers
            .iter()
            .all(|(k, _)| !k.eq_ignore_ascii_case("consistencylevel")),
        "a default query needs no advanced query parameters"
    );
    for miss in [
        "ada@example.tes",
        "/o=Sim/ou=ada@old.example.test",
        "smtp:ada@example.test",
    ] {
        assert!(c.lookup(&person(miss)).await.unwrap().is_none(), "{miss}");
    }
    let e = c.lookup(&person("shared@example.test")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Ambiguous, "{e}");
}

#[tokio::test]
async fn throttled_batch_items_are_resent_after_retry_after() {
    let t = tenant().await;
    let groups: Vec<String> = (0..12)
        .map(|i| t.add_group(NewGroup::assigned(format!("G{i}"))))
        .collect();
    let id = t.add_user(NewUser {
        groups: groups.clone(),
        ..NewUser::new("busy@example.test")
    });
    // 8 resource units per second: the memberOf read (2) and 6 deletes pass, the rest wait.
    t.set_limits(GraphLimits::small_tenant().with_resource_units(8, Duration::from_secs(1)));
    let c = connector(&t);
    let a = account(&id, "busy@example.test");
    t.clear_requests();
    let started = Instant::now();
    let r = c
        .execute(&a, &action("entra.remove_groups"), &run("k"))
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Done);
    assert!(
        detail(&r).starts_with("removed from 12 groups"),
        "{}",
        detail(&r)
    );
    assert!(t.user(&id).unwrap().groups.is_empty());
    assert!(t.rate_limited_count() > 0);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After waited"
    );
    let b = batches(&t.requests());
    assert!(b.len() >= 2, "{b:?}");
    assert_eq!(b[0].len(), 12);
    assert!(
        b[1].len() < 12,
        "only the throttled items are re-sent: {}",
        b[1].len()
    );
    let total: usize = b.iter().map(Vec::len).sum();
    assert_eq!(total - 12, b[1..].iter().map(Vec::len).sum::<usize>());
}

#[tokio::test]
async fn whole_request_429_is_waited_out() {
    let t = tenant().await;
    let id = t.add_user(NewUser::new("w@example.test"));
    let c = connector(&t);
    let a = account(&id, "w@example.test");
    t.fail_next(1, 429);
    let started = Instant::now();
    let r = c
        .execute(&a, &action("entra.disable_sign_in"), &run("k"))
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Done);
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(t.rate_limited_count(), 1);
    assert!(!t.user(&id).unwrap().account_enabled);
}

#[tokio::test]
async fn secrets_stay_out_of_debug_and_errors() {
    let t = tenant().await;
    let secret = t.client_secret().to_owned();
    let config = AzureConfig::new()
        .with_tenant_id(t.tenant_id())
        .with_client_id(t.client_id())
        .with_client_secret(offboard_core::Secret::new(&secret))
        .with_graph_url(t.graph_url())
        .with_allow_plain_http(true)
        .with_token_url(t.token_url());
    assert!(!format!("{config:?}").contains(&secret));
    let c = config.build().unwrap();
    assert!(!format!("{c:?} {c:#?}").contains(&secret));
    c.lookup(&LookupRequest::person(Person::new("p", "x@example.test")))
        .await
        .unwrap();
    assert!(!format!("{c:?}").contains(t.access_token()));
    let recorded = format!("{:?}", t.requests());
    assert!(!recorded.contains(t.access_token()));

    // A wrong secret: the error names the problem, not the secret.
    let wrong = "wrong-secret-do-not-print";
    let bad = AzureConfig::new()
        .with_tenant_id(t.tenant_id())
        .with_client_id(t.client_id())
        .with_client_secret(offboard_core::Secret::new(wrong))
        .with_graph_url(t.graph_url())
        .with_allow_plain_http(true)
        .with_token_url(t.token_url())
        .build()
        .unwrap();
    let e = bad
        .lookup(&LookupRequest::person(Person::new("p", "x@example.test")))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    assert!(!format!("{e} {e:?}").contains(wrong));
    let missing = AzureConfig::new()
        .with_tenant_id("t")
        .with_client_id("c")
        .build()
        .unwrap_err();
    assert!(missing.to_string().contains("client_secret"));
}

#[tokio::test(flavor = "current_thread")]
async fn traces_hold_no_secret_token_or_lookup_value() {
    let capture = TraceCapture::default();
    let _guard = capture.set_default();
    let t = tenant().await;
    let groups: Vec<String> = (0..3)
        .map(|i| t.add_group(NewGroup::assigned(format!("T{i}"))))
        .collect();
    let id = t.add_user(NewUser {
        groups,
        ..NewUser::new("o'secret-person@example.test")
    });
    let c = connector(&t);
    let a = c
        .lookup(&LookupRequest::person(Person::new(
            "p",
            "o'secret-person@example.test",
        )))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.external_id, id);
    // One batch item throttled: the client logs its wait.
    t.set_limits(GraphLimits::small_tenant().with_resource_units(3, Duration::from_secs(1)));
    c.execute(&a, &action("entra.remove_groups"), &run("k"))
        .await
        .unwrap();
    let bad = AzureConfig::new()
        .with_tenant_id(t.tenant_id())
        .with_client_id(t.client_id())
        .with_client_secret(offboard_core::Secret::new("wrong-secret-in-trace"))
        .with_graph_url(t.graph_url())
        .with_allow_plain_http(true)
        .with_token_url(t.token_url())
        .build()
        .unwrap();
    let _ = bad.verify_revoked(&a).await.unwrap_err();

    let text = capture.text();
    assert!(text.contains("span http.request:"), "{text}");
    assert!(text.contains("graph batch items throttled"), "{text}");
    for secret in [
        t.client_secret(),
        t.access_token(),
        "wrong-secret-in-trace",
        "secret-person",
    ] {
        assert!(
            !text.contains(secret),
            "{secret:?} is in the traces:\n{text}"
        );
    }
}

/// A megabyte identifier is refused before any request, with a short message that does not
/// echo it (item 12: bounded identifiers, as the AD connector does).
#[tokio::test]
async fn over_long_identifiers_are_refused_without_a_request() {
    let t = tenant().await;
    t.add_user(NewUser::new("jane@example.test"));
    let c = connector(&t);
    let huge = format!("{}@example.test", "a".repeat(1 << 20));
    let requests = [
        LookupRequest::person(Person::new("p", huge.as_str())),
        LookupRequest::person(Person::new("p", "jane@example.test").with_alias(huge.as_str())),
        LookupRequest::person(Person::new("p", "jane@example.test"))
            .with_external_id(huge.as_str()),
    ];
    for request in requests {
        t.clear_requests();
        let e = c.lookup(&request).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(!e.is_retryable());
        assert!(e.to_string().len() < 300, "{} bytes", e.to_string().len());
        assert!(t.requests().is_empty(), "{:?}", lines(&t.requests()));
    }
    let a = account(&huge, "jane@example.test");
    let e = c
        .execute(&a, &action("entra.revoke_sessions"), &run("k"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().len() < 300, "{} bytes", e.to_string().len());
    assert!(t.requests().is_empty(), "{:?}", lines(&t.requests()));
}

/// "Ann Lee" (ann.lee@example.test) and her look-alike (same display name, UPN
/// ann.lee2@example.test): their ids.
fn ann_and_look_alike(t: &GraphTenant) -> (String, String) {
    let ann = t.add_user(NewUser {
        display_name: "Ann Lee".into(),
        ..NewUser::new("ann.lee@example.test")
    });
    (ann, look_alike(t, "Ann Lee", "ann.lee2@example.test"))
}

/// A look-alike of `upn`'s user: same display name, a similar UPN.
fn look_alike(t: &GraphTenant, name: &str, upn: &str) -> String {
    t.add_user(NewUser {
        display_name: name.into(),
        ..NewUser::new(upn)
    })
}

/// Guards `entra.disable_devices` (unknown action before): the Windows devices the user owns
/// are disabled, a non-Windows one app-only Graph refuses fails the task by name and is never
/// counted as disabled (verify keeps listing it), a look-alike's device is untouched, a dry
/// run writes nothing, a repeat is already_done and rollback re-enables.
#[tokio::test]
async fn disable_devices_disables_windows_reports_non_windows_and_rolls_back() {
    let t = tenant().await;
    let c = connector(&t);
    let (ann, other) = ann_and_look_alike(&t);
    let laptop = t.add_device(&ann, NewDevice::windows("ANN-LAPTOP"));
    let phone = t.add_device(&ann, NewDevice::new("Ann's iPhone", "iOS"));
    let theirs = t.add_device(&other, NewDevice::windows("ANN-LAPTOP"));
    let a = account(&ann, "ann.lee@example.test");
    let act = action("entra.disable_devices");
    let spec = c.capabilities().action(&act.name).unwrap().clone();
    assert!(spec.reversible && !spec.critical, "{spec:?}");

    t.clear_requests();
    let dry = c
        .execute(&a, &act, &run("k").with_dry_run(true))
        .await
        .unwrap();
    assert_eq!(dry.outcome, Outcome::Done);
    assert!(
        detail(&dry).contains("would disable 1 devices (ANN-LAPTOP (Windows))"),
        "{}",
        detail(&dry)
    );
    assert!(
        detail(&dry).contains("Ann's iPhone (iOS)"),
        "{}",
        detail(&dry)
    );
    assert!(
        t.requests().iter().all(|r| r.method == "GET"),
        "a dry run writes nothing"
    );

    t.clear_requests();
    let e = c.execute(&a, &act, &run("k")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    let msg = e.to_string();
    assert!(
        msg.contains("disabled 1 devices (ANN-LAPTOP (Windows))"),
        "{msg}"
    );
    assert!(
        msg.contains("NOT disabled (1): Ann's iPhone (iOS) (app-only Graph"),
        "{msg}"
    );
    assert!(!t.device(&laptop).unwrap().account_enabled);
    assert!(t.device(&phone).unwrap().account_enabled);
    assert!(
        t.device(&theirs).unwrap().account_enabled,
        "the look-alike's device is untouched"
    );
    let mut sent = lines(&t.requests());
    sent.sort();
    let mut want = vec![
        format!("GET /v1.0/users/{ann}/ownedDevices"),
        format!("GET /v1.0/users/{ann}/registeredDevices"),
        format!("PATCH /v1.0/devices/{laptop}"),
        format!("PATCH /v1.0/devices/{phone}"),
    ];
    want.sort();
    assert_eq!(sent, want);
    let v = c.verify_revoked(&a).await.unwrap();
    let devices: Vec<&String> = v
        .remaining
        .iter()
        .filter(|r| r.starts_with("device "))
        .collect();
    assert_eq!(
        devices,
        [&format!("device Ann's iPhone (iOS) enabled ({phone})")]
    );

    // A user with Windows devices only: done, repeat, rollback.
    let bob = t.add_user(NewUser::new("bob@example.test"));
    let pc = t.add_device(&bob, NewDevice::windows("BOB-PC"));
    let off = t.add_device(
        &bob,
        NewDevice {
            account_enabled: false,
            ..NewDevice::windows("BOB-OLD")
        },
    );
    let b = account(&bob, "bob@example.test");
    let snap = c.snapshot(&b, &act).await.unwrap();
    let r = c.execute(&b, &act, &run("k")).await.unwrap();
    assert_eq!(r.outcome, Outcome::Done, "{}", detail(&r));
    assert!(!t.device(&pc).unwrap().account_enabled);
    repeat_then_restore_twice(&c, &b, &act, &snap).await;
    assert!(
        t.device(&pc).unwrap().account_enabled,
        "rollback re-enables"
    );
    assert!(
        !t.device(&off).unwrap().account_enabled,
        "a device disabled before stays so"
    );
}

/// Guards `entra.intune_wipe` / `entra.intune_retire` (unknown actions before): critical, not
/// reversible; only the managed devices whose primary user is exactly this user get the call
/// (a look-alike's device of the same name never does), a dry run sends nothing, a repeat is
/// already_done, and verify lists managed devices until one of them is under way.
#[tokio::test]
async fn intune_wipe_and_retire_touch_only_the_users_managed_devices() {
    let t = tenant().await;
    let c = connector(&t);
    let (ann, other) = ann_and_look_alike(&t);
    let device = |user: &str| NewManagedDevice {
        device_name: "ANN-LAPTOP".into(),
        operating_system: "Windows".into(),
        user_id: user.to_owned(),
    };
    let mine = t.add_managed_device(device(&ann));
    let theirs = t.add_managed_device(device(&other));
    let a = account(&ann, "ann.lee@example.test");
    let (retire, wipe) = (action("entra.intune_retire"), action("entra.intune_wipe"));
    for act in [&retire, &wipe] {
        let spec = c.capabilities().action(&act.name).unwrap().clone();
        assert!(spec.critical && !spec.reversible, "{spec:?}");
        let e = c.snapshot(&a, act).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
    }
    let v = c.verify_revoked(&a).await.unwrap();
    assert!(
        v.remaining.contains(&format!(
            "managed device ANN-LAPTOP (Windows, {mine}) not retired or wiped"
        )),
        "{:?}",
        v.remaining
    );

    t.clear_requests();
    let dry = c
        .execute(&a, &retire, &run("k").with_dry_run(true))
        .await
        .unwrap();
    assert_eq!(dry.outcome, Outcome::Done);
    assert!(
        detail(&dry).contains("would retire 1 managed devices"),
        "{}",
        detail(&dry)
    );
    assert_eq!(
        lines(&t.requests()),
        [format!("GET /v1.0/users/{ann}/managedDevices")]
    );

    t.clear_requests();
    let r = c.execute(&a, &retire, &run("k")).await.unwrap();
    assert_eq!(r.outcome, Outcome::Done, "{}", detail(&r));
    let reqs = t.requests();
    assert_eq!(
        lines(&reqs),
        [
            format!("GET /v1.0/users/{ann}/managedDevices"),
            format!("POST /v1.0/deviceManagement/managedDevices/{mine}/retire"),
        ]
    );
    assert_eq!(reqs[1].body, None, "retire takes no body");
    assert_eq!(
        t.managed_device(&mine).unwrap().actions,
        [("retire".to_owned(), "pending".to_owned())]
    );
    let again = c.execute(&a, &retire, &run("k")).await.unwrap();
    assert_eq!(again.outcome, Outcome::AlreadyDone, "{}", detail(&again));
    let v = c.verify_revoked(&a).await.unwrap();
    assert!(
        !v.remaining.iter().any(|r| r.contains("managed device")),
        "{:?}",
        v.remaining
    );

    // A retire does not satisfy a wipe; a wipe then satisfies both.
    t.clear_requests();
    let r = c.execute(&a, &wipe, &run("k")).await.unwrap();
    assert_eq!(r.outcome, Outcome::Done, "{}", detail(&r));
    let reqs = t.requests();
    assert_eq!(
        reqs[1].line(),
        format!("POST /v1.0/deviceManagement/managedDevices/{mine}/wipe")
    );
    assert_eq!(reqs[1].body, Some(json!({})));
    for act in [&wipe, &retire] {
        let again = c.execute(&a, act, &run("k")).await.unwrap();
        assert_eq!(again.outcome, Outcome::AlreadyDone, "{}", detail(&again));
    }
    assert_eq!(t.managed_device(&mine).unwrap().action_calls, 2);
    let untouched = t.managed_device(&theirs).unwrap();
    assert_eq!((untouched.action_calls, untouched.actions.len()), (0, 0));
    assert!(
        !t.requests()
            .iter()
            .any(|r| r.path.contains(theirs.as_str())),
        "nothing was sent for the look-alike's device"
    );
}

/// Guards `entra.remove_access_packages` (an unknown action before): only the leaver's
/// delivered assignments get an `adminRemove` request with the exact body (an expired one and
/// a look-alike's of the same package get none), the removal stays asynchronous (a repeat
/// while it is under way is already_done and sends no second request; verify stops listing
/// it), an open request the app cannot cancel fails the task by name and is never sent a
/// cancel, a dry run only reads, rollback waits for the removal and then sends `adminAdd`,
/// and a missing permission is named.
#[tokio::test]
async fn remove_access_packages_requests_removal_and_rolls_back() {
    let t = tenant().await;
    let c = connector(&t);
    let (ann, other) = ann_and_look_alike(&t);
    let sales = t.add_access_package("Sales tools");
    let old = t.add_access_package("Old project");
    let mine = t.assign_access_package(&ann, &sales, "delivered");
    let expired = t.assign_access_package(&ann, &old, "expired");
    let theirs = t.assign_access_package(&other, &sales, "delivered");
    let a = account(&ann, "ann.lee@example.test");
    let act = action("entra.remove_access_packages");
    let spec = c.capabilities().action(&act.name).unwrap().clone();
    assert!(spec.reversible && !spec.critical, "{spec:?}");
    let v = c.verify_revoked(&a).await.unwrap();
    assert!(
        v.remaining
            .contains(&format!("access package assignment Sales tools ({mine})")),
        "{:?}",
        v.remaining
    );

    t.clear_requests();
    let dry = c
        .execute(&a, &act, &run("k").with_dry_run(true))
        .await
        .unwrap();
    assert_eq!(dry.outcome, Outcome::Done);
    assert!(
        detail(&dry).contains(&format!(
            "would request removal of 1 access package assignments (Sales tools ({mine}))"
        )),
        "{}",
        detail(&dry)
    );
    let reads = t.requests();
    assert!(
        reads.iter().all(|r| r.method == "GET"),
        "a dry run writes nothing"
    );
    assert_eq!(
        reads[1].query_param("$filter"),
        Some(format!("target/objectId eq '{ann}'").as_str())
    );
    assert_eq!(
        reads[1].query_param("$expand"),
        Some("target,accessPackage,assignmentPolicy")
    );

    let snap = c.snapshot(&a, &act).await.unwrap();
    t.clear_requests();
    let r = c.execute(&a, &act, &run("k")).await.unwrap();
    assert_eq!(r.outcome, Outcome::Done, "{}", detail(&r));
    let reqs = t.requests();
    assert_eq!(
        lines(&reqs),
        [
            format!("GET /v1.0/users/{ann}"),
            "GET /v1.0/identityGovernance/entitlementManagement/assignments".to_owned(),
            "GET /v1.0/identityGovernance/entitlementManagement/assignmentRequests".to_owned(),
            "POST /v1.0/identityGovernance/entitlementManagement/assignmentRequests".to_owned(),
        ]
    );
    assert_eq!(
        reqs[3].body,
        Some(json!({"requestType": "adminRemove", "assignment": {"id": mine}}))
    );
    // Asynchronous: still delivered, the removal request submitted.
    let states = |u: &str| {
        t.access_package_assignments(u)
            .into_iter()
            .map(|a| (a.id, a.state))
            .collect::<Vec<_>>()
    };
    assert!(states(&ann).contains(&(mine.clone(), "delivered".to_owned())));
    let again = c.execute(&a, &act, &run("k")).await.unwrap();
    assert_eq!(again.outcome, Outcome::AlreadyDone, "{}", detail(&again));
    assert!(
        detail(&again).contains("removal already under way"),
        "{}",
        detail(&again)
    );
    assert_eq!(
        t.access_package_requests(&ann).len(),
        1,
        "no second removal request"
    );
    let v = c.verify_revoked(&a).await.unwrap();
    assert!(
        !v.remaining.iter().any(|r| r.contains("access package")),
        "{:?}",
        v.remaining
    );
    // Rollback waits for the removal, then asks for the package again.
    let e = c.restore(&a, &snap).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InProgress, "{e}");
    t.deliver_access_package_requests();
    assert!(states(&ann).contains(&(mine.clone(), "expired".to_owned())));
    assert!(states(&ann).contains(&(expired.clone(), "expired".to_owned())));
    assert_eq!(
        states(&other),
        [(theirs.clone(), "delivered".to_owned())],
        "the look-alike keeps the package"
    );
    t.clear_requests();
    assert_eq!(c.restore(&a, &snap).await.unwrap(), Outcome::Done);
    let add = t
        .requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .unwrap();
    assert_eq!(
        add.body,
        Some(json!({"requestType": "adminAdd", "assignment": {
            "targetId": ann,
            "assignmentPolicyId": t.access_package_policy(&sales),
            "accessPackageId": sales,
        }}))
    );
    assert_eq!(c.restore(&a, &snap).await.unwrap(), Outcome::AlreadyDone);
    t.deliver_access_package_requests();
    assert_eq!(
        t.access_package_assignments(&ann)
            .iter()
            .filter(|a| a.state == "delivered" && a.access_package == sales)
            .count(),
        1
    );
    assert!(
        !t.requests()
            .iter()
            .any(|r| r.path.contains(theirs.as_str())),
        "nothing was sent for the look-alike's assignment"
    );

    // An open request the app cannot cancel: the task fails naming it, after the removals.
    let bob = t.add_user(NewUser::new("bob@example.test"));
    let b = account(&bob, "bob@example.test");
    let held = t.assign_access_package(&bob, &old, "delivered");
    let asked = t.request_access_package(&bob, &sales);
    t.clear_requests();
    let e = c.execute(&b, &act, &run("k")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    let msg = e.to_string();
    assert!(
        msg.contains(&format!(
            "removal requested for 1 access package assignments (Old project ({held})"
        )),
        "{msg}"
    );
    assert!(
        msg.contains(&format!(
            "Sales tools (userAdd, pendingApproval, request {asked})"
        )),
        "{msg}"
    );
    assert!(
        !t.requests().iter().any(|r| r.path.ends_with("/cancel")),
        "no cancel is sent: app-only cancel is not supported"
    );
    let v = c.verify_revoked(&b).await.unwrap();
    assert!(
        v.remaining
            .iter()
            .any(|r| r.starts_with("access package request open: Sales tools")),
        "{:?}",
        v.remaining
    );

    // A missing permission is named; a gone user is not_found.
    let cy = t.add_user(NewUser::new("cy@example.test"));
    t.assign_access_package(&cy, &sales, "delivered");
    t.withhold_permission("EntitlementManagement.ReadWrite.All");
    let e = c
        .execute(&account(&cy, "cy@example.test"), &act, &run("k"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    assert!(
        e.to_string()
            .contains("EntitlementManagement.ReadWrite.All"),
        "{e}"
    );
    t.withhold_permission("EntitlementManagement.Read.All");
    let e = c
        .execute(&account(&cy, "cy@example.test"), &act, &run("k"))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("EntitlementManagement.Read.All"),
        "{e}"
    );
    t.remove_user(&cy);
    let r = c
        .execute(&account(&cy, "cy@example.test"), &act, &run("k"))
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::NotFound);
}

fn run_workflow(workflow: &str) -> Action {
    Action::with_params(
        ActionName::from_static("entra.run_lifecycle_workflow"),
        &json!({ "workflow": workflow }),
    )
    .unwrap()
}

/// `entra.run_lifecycle_workflow` (issue 20 item 8: the Lifecycle Workflows tasks Graph v1.0
/// offers no app-only operation for run through the tenant's own leaver workflow): the
/// workflow is found by exact name, activated for the leaver only, once per task, its tasks
/// change the tenant; joiner workflows, unknown and ambiguous names are refused without a
/// write. Failed before: the action was unknown.
#[tokio::test]
async fn run_lifecycle_workflow_activates_the_named_leaver_workflow_once() {
    use offboard_testkit::sim::graph::NewWorkflow;
    let t = tenant().await;
    let c = connector(&t);
    let staff = t.add_group(NewGroup::assigned("Staff"));
    let id = t.add_user(NewUser {
        groups: vec![staff.clone()],
        ..NewUser::new("leaver@example.com")
    });
    let other = look_alike(&t, "Leaver", "leaver2@example.com");
    t.add_member(&staff, &other);
    let leaver_wf = t.add_lifecycle_workflow(NewWorkflow::leaver("Offboard an employee"));
    t.add_lifecycle_workflow(NewWorkflow {
        category: "joiner".into(),
        ..NewWorkflow::leaver("Onboard an employee")
    });
    t.add_lifecycle_workflow(NewWorkflow::leaver("Twice"));
    t.add_lifecycle_workflow(NewWorkflow::leaver("Twice"));
    let acc = account(&id, "leaver@example.com");
    let spec = c
        .capabilities()
        .action(&ActionName::from_static("entra.run_lifecycle_workflow"))
        .unwrap();
    assert!(spec.critical && !spec.reversible);
    let started = chrono::Utc::now();
    let opts = run("r1:t1").with_started_at(started);

    // Refusals: nothing is written.
    t.clear_requests();
    for (wf, kind) in [
        ("Onboard an employee", ErrorKind::InvalidInput),
        ("No such workflow", ErrorKind::NotFound),
        ("Twice", ErrorKind::Ambiguous),
        ("offboard an employee", ErrorKind::NotFound),
    ] {
        let e = c.execute(&acc, &run_workflow(wf), &opts).await.unwrap_err();
        assert_eq!(e.kind(), kind, "{wf}: {e}");
        assert_eq!(e.retry(), RetryClass::Permanent, "{wf}");
    }
    let e = c
        .execute(&acc, &action("entra.run_lifecycle_workflow"), &opts)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.message().contains("params.workflow"), "{e}");
    assert!(
        t.requests().iter().all(|r| r.method == "GET"),
        "{:?}",
        lines(&t.requests())
    );

    // Dry run: reads only, predicts done.
    let wf = run_workflow("Offboard an employee");
    let dry = c
        .execute(&acc, &wf, &opts.clone().with_dry_run(true))
        .await
        .unwrap();
    assert_eq!(dry.outcome, Outcome::Done);
    assert!(t.lifecycle_runs(&leaver_wf).is_empty());

    // The run: one activation, for this user only, in the canonical path form.
    t.clear_requests();
    let first = c.execute(&acc, &wf, &opts).await.unwrap();
    assert_eq!(first.outcome, Outcome::Done, "{}", detail(&first));
    let posts: Vec<_> = t
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(posts.len(), 1);
    assert_eq!(
        posts[0].line(),
        format!(
            "POST /v1.0/identityGovernance/lifecycleWorkflows/workflows/{leaver_wf}/microsoft.graph.identityGovernance.activate"
        )
    );
    assert_eq!(posts[0].body, Some(json!({"subjects": [{"id": id}]})));

    // A repeat of the same task finds its run: already done, nothing sent again.
    let second = c.execute(&acc, &wf, &opts).await.unwrap();
    assert_eq!(second.outcome, Outcome::AlreadyDone, "{}", detail(&second));
    let runs = t.lifecycle_runs(&leaver_wf);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].subject, id);
    // Entra processes it: each read moves it on; once completed, its tasks took effect on the
    // leaver only.
    c.execute(&acc, &wf, &opts).await.unwrap();
    assert_eq!(t.lifecycle_runs(&leaver_wf)[0].status, "completed");
    let u = t.user(&id).unwrap();
    assert!(!u.account_enabled);
    assert!(!u.groups.contains(&staff));
    let o = t.user(&other).unwrap();
    assert!(o.account_enabled && o.groups.contains(&staff));
    // A later task (a new run) activates it again.
    let later = c
        .execute(
            &acc,
            &wf,
            &run("r2:t1").with_started_at(started + chrono::Duration::hours(1)),
        )
        .await
        .unwrap();
    assert_eq!(later.outcome, Outcome::Done);
    assert_eq!(t.lifecycle_runs(&leaver_wf).len(), 2);

    // A workflow whose tasks fail: the repeat after it completed reports the failure.
    let failing = t.add_lifecycle_workflow(NewWorkflow {
        failing_tasks: 1,
        ..NewWorkflow::leaver("Flaky")
    });
    let flaky = run_workflow(&failing);
    c.execute(&acc, &flaky, &opts).await.unwrap();
    c.execute(&acc, &flaky, &opts).await.unwrap();
    let e = c.execute(&acc, &flaky, &opts).await.unwrap_err();
    assert!(
        e.message().contains("completedWithErrors") && e.message().contains("1 of 2 tasks failed"),
        "{e}"
    );

    // Without LifecycleWorkflows-Workflow.Activate and LifecycleWorkflows.ReadWrite.All the
    // activation is Graph's 403, not a success.
    t.withhold_permission("LifecycleWorkflows-Workflow.Activate");
    t.withhold_permission("LifecycleWorkflows.ReadWrite.All");
    let e = c
        .execute(
            &acc,
            &wf,
            &run("r3:t1").with_started_at(started + chrono::Duration::hours(2)),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");

    // A user who is gone: not found, nothing sent.
    t.remove_user(&id);
    let gone = c.execute(&acc, &wf, &opts).await.unwrap();
    assert_eq!(gone.outcome, Outcome::NotFound);
}

/// `entra.run_lifecycle_workflow` reads only the leaver's processing results
/// (`$filter=subject/id eq '<id>'`, escaped), so a repeat costs one page however many people
/// the workflow has processed, and a look-alike's run never counts as the leaver's. A tenant
/// that refuses the filter is read whole and filtered locally: the repeat is still found.
/// Failed before: the whole list was read every time (the Graph benchmark's tail grew with
/// every person offboarded).
#[tokio::test]
async fn run_lifecycle_workflow_reads_only_the_leavers_results() {
    use offboard_testkit::sim::graph::NewWorkflow;
    let t = tenant().await;
    let c = connector(&t);
    let id = t.add_user(NewUser::new("o'neil@example.com"));
    let other = look_alike(&t, "O'Neil", "oneil2@example.com");
    let wf_id = t.add_lifecycle_workflow(NewWorkflow::leaver("Offboard an employee"));
    let wf = run_workflow("Offboard an employee");
    let started = chrono::Utc::now();
    let opts = run("r1:t1").with_started_at(started);

    // The look-alike was processed first: it is not the leaver's run.
    let theirs = c
        .execute(&account(&other, "oneil2@example.com"), &wf, &opts)
        .await
        .unwrap();
    assert_eq!(theirs.outcome, Outcome::Done);
    let acc = account(&id, "o'neil@example.com");
    t.clear_requests();
    let first = c.execute(&acc, &wf, &opts).await.unwrap();
    assert_eq!(first.outcome, Outcome::Done, "{}", detail(&first));
    let reads: Vec<String> = t
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/userProcessingResults"))
        .map(|r| r.query_param("$filter").unwrap_or_default().to_owned())
        .collect();
    assert_eq!(reads, [format!("subject/id eq '{id}'")]);
    assert_eq!(t.lifecycle_runs(&wf_id).len(), 2);

    // Refused filter: the whole list is read, and the leaver's run is found in it.
    t.refuse_result_filter(&wf_id);
    t.clear_requests();
    let again = c.execute(&acc, &wf, &opts).await.unwrap();
    assert_eq!(again.outcome, Outcome::AlreadyDone, "{}", detail(&again));
    let reads: Vec<Option<String>> = t
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/userProcessingResults"))
        .map(|r| r.query_param("$filter").map(str::to_owned))
        .collect();
    assert_eq!(reads, [Some(format!("subject/id eq '{id}'")), None]);
    assert_eq!(t.lifecycle_runs(&wf_id).len(), 2);
    assert!(t.requests().iter().all(|r| r.method == "GET"));
}
