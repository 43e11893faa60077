//! Integration tests against the Samba AD DC started by `./scripts/test`: every effect is read
//! back from the directory through a separate administrator connection.

mod common;

use std::collections::HashSet;
use std::time::Instant;

use common::{Admin, Env, attr, random_hex, set};
use ldap3::Mod;
use offboard_ad::actions::{
    CLEAR_MANAGER, DISABLE, HIDE_FROM_ADDRESS_LISTS, MOVE_TO_DISABLED_OU, REMOVE_GROUPS,
    RESET_PASSWORD, SET_ACCOUNT_EXPIRES, STAMP_DESCRIPTION,
};
use offboard_ad::{AdConfig, AdConnector};
use offboard_core::{
    AccountRef, Action, ActionName, Connector, ErrorKind, ExecuteOptions, LookupRequest, Outcome,
    Person, Secret,
};
use uuid::Uuid;

/// A user created for one test, deleted when the test ends well.
struct TestUser {
    dn: String,
    guid: Uuid,
    login: String,
    sam: String,
}

async fn new_user(admin: &mut Admin, name: &str) -> TestUser {
    let tag = random_hex(8);
    let login = format!("ofb{tag}-{name}@offb.test");
    let sam = format!("t{tag}{}", &random_hex(6));
    let (dn, guid) = admin
        .create_user(&format!("ofb{tag}-{name}"), &sam, &login, &[&login], &[])
        .await;
    TestUser {
        dn,
        guid,
        login,
        sam,
    }
}

fn person(email: &str) -> Person {
    Person::new("p-test", email)
}

fn opts() -> ExecuteOptions {
    ExecuteOptions::default()
        .with_actor("tester")
        .with_idempotency_key(format!("key-{}", random_hex(8)))
}

async fn run(
    ad: &AdConnector,
    account: &AccountRef,
    name: ActionName,
    o: &ExecuteOptions,
) -> Outcome {
    ad.execute(account, &Action::new(name.clone()), o)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .outcome
}

async fn setup() -> (Env, std::sync::Arc<AdConnector>, Admin) {
    let env = common::env();
    let ad = common::connector(&env).await;
    let admin = Admin::connect(&env).await;
    (env, ad, admin)
}

fn uac(entry: &ldap3::SearchEntry) -> u32 {
    attr(entry, "userAccountControl")[0].parse().unwrap()
}

#[tokio::test]
async fn lookup_escapes_filter_characters_and_matches_literally() {
    let (_env, ad, mut admin) = setup().await;
    let tag = random_hex(8);
    // Samba (like AD) refuses `*` and `\` in sAMAccountName, but allows parentheses; mail takes
    // every character.
    let sam = format!("o({tag})");
    let mail = format!("o*{tag}(x)\\y@offb.test");
    let login = format!("ofb{tag}-esc@offb.test");
    let (_dn, guid) = admin
        .create_user(&format!("ofb{tag}-esc"), &sam, &login, &[&mail], &[])
        .await;
    let _bystander = new_user(&mut admin, "bystander").await;

    let found = ad
        .lookup(&LookupRequest::person(person(&sam)))
        .await
        .unwrap();
    assert_eq!(found.map(|a| a.external_id), Some(guid.to_string()));
    let found = ad
        .lookup(&LookupRequest::person(person(&mail)))
        .await
        .unwrap();
    assert_eq!(found.map(|a| a.external_id), Some(guid.to_string()));

    for hostile in [
        "*".to_owned(),
        format!("o*{tag}*"),
        format!("o*{tag}(x)*"),
        format!("o({tag}*"),
        "o(*)".to_owned(),
        format!("o*{tag}(x)\\2a@offb.test"),
        format!("o*{tag}(x)\\5cy@offb.test"),
        "*)(objectClass=*".to_owned(),
        "*)(|(sAMAccountName=*".to_owned(),
        "admin*".to_owned(),
        "a\\29".to_owned(),
        format!("O\u{212A}{tag}@offb.test"),
    ] {
        match ad.lookup(&LookupRequest::person(person(&hostile))).await {
            Ok(None) => {}
            Err(e) if e.kind() == ErrorKind::InvalidInput => {}
            other => panic!("{hostile:?} must match nothing, got {other:?}"),
        }
    }
    // A NUL is refused outright.
    let e = ad
        .lookup(&LookupRequest::person(person("a\0b@offb.test")))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    admin.delete_guid(&guid).await;
    admin.delete_guid(&_bystander.guid).await;
}

#[tokio::test]
async fn two_users_with_one_mail_are_ambiguous() {
    let (_env, ad, mut admin) = setup().await;
    let tag = random_hex(8);
    let shared = format!("shared-{tag}@offb.test");
    let (_, a) = admin
        .create_user(
            &format!("ofb{tag}-a"),
            &format!("ta{tag}"),
            &format!("ofb{tag}-a@offb.test"),
            &[&shared],
            &[],
        )
        .await;
    let (_, b) = admin
        .create_user(
            &format!("ofb{tag}-b"),
            &format!("tb{tag}"),
            &format!("ofb{tag}-b@offb.test"),
            &[&shared],
            &[],
        )
        .await;
    let e = ad
        .lookup(&LookupRequest::person(person(&shared.to_ascii_uppercase())))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Ambiguous, "{e}");
    // Each user alone is found by its own UPN.
    let one = ad
        .lookup(&LookupRequest::person(person(&format!(
            "ofb{tag}-a@offb.test"
        ))))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(one.external_id, a.to_string());
    admin.delete_guid(&a).await;
    admin.delete_guid(&b).await;
}

#[tokio::test]
async fn actions_take_effect_and_rollback_restores() {
    let (env, ad, mut admin) = setup().await;
    let user = new_user(&mut admin, "full").await;
    // A second group, and a UAC bit (DONT_EXPIRE_PASSWORD) the disable must keep.
    let group2_name = format!("ofb-{}-g2", random_hex(8));
    let group2 = format!("CN={group2_name},{}", env.staff_ou);
    admin
        .ensure(
            &group2,
            vec![
                ("objectClass", vec!["group"]),
                ("sAMAccountName", vec![&group2_name]),
            ],
        )
        .await;
    admin.add_member(&group2, &user.dn).await;
    admin
        .modify(
            &user.dn,
            vec![Mod::Replace(
                b"userAccountControl".to_vec(),
                set([(0x200 | 0x10000).to_string().as_str()]),
            )],
        )
        .await;
    let before = admin.read(&user.dn).await.unwrap().0;
    let account = ad
        .lookup(&LookupRequest::person(person(&user.login)))
        .await
        .unwrap()
        .expect("found by UPN");
    assert_eq!(account.external_id, user.guid.to_string());
    let found_by_sam = ad
        .lookup(&LookupRequest::person(person(
            &user.sam.to_ascii_uppercase(),
        )))
        .await
        .unwrap()
        .expect("found by sAMAccountName");
    assert_eq!(found_by_sam.external_id, account.external_id);

    // The reversible actions, in plan order, each with its snapshot.
    let order = [
        DISABLE,
        REMOVE_GROUPS,
        MOVE_TO_DISABLED_OU,
        STAMP_DESCRIPTION,
        CLEAR_MANAGER,
        SET_ACCOUNT_EXPIRES,
    ];
    let o = opts();
    let mut snapshots = Vec::new();
    for name in order.clone() {
        let snap = ad
            .snapshot(&account, &Action::new(name.clone()))
            .await
            .unwrap();
        let dry = run(&ad, &account, name.clone(), &o.clone().with_dry_run(true)).await;
        assert_eq!(dry, Outcome::Done, "dry run of {name}");
        let t = Instant::now();
        assert_eq!(
            run(&ad, &account, name.clone(), &o).await,
            Outcome::Done,
            "{name}"
        );
        eprintln!("latency {name}: {:?}", t.elapsed());
        assert_eq!(
            run(&ad, &account, name.clone(), &o).await,
            Outcome::AlreadyDone,
            "{name} again"
        );
        snapshots.push(snap);
    }

    let after = admin.by_guid(&user.guid).await.expect("user still there");
    assert_eq!(
        uac(&after),
        0x200 | 0x10000 | 0x2,
        "only ACCOUNTDISABLE was added"
    );
    assert!(
        attr(&after, "memberOf").is_empty(),
        "{:?}",
        attr(&after, "memberOf")
    );
    assert_eq!(
        attr(&after, "primaryGroupID"),
        vec!["513".to_owned()],
        "primary group stays"
    );
    assert!(
        after
            .dn
            .to_ascii_lowercase()
            .ends_with(&env.disabled_ou.to_ascii_lowercase()),
        "{}",
        after.dn
    );
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert_eq!(
        attr(&after, "description"),
        vec![format!(
            "offboarded {today} by tester, run {}",
            o.idempotency_key
        )]
    );
    assert!(attr(&after, "manager").is_empty());
    let expires: i64 = attr(&after, "accountExpires")[0].parse().unwrap();
    let now_ft = (chrono::Utc::now().timestamp() + 1 + 11_644_473_600) * 10_000_000;
    assert!(expires > 0 && expires <= now_ft && expires > now_ft - 600 * 10_000_000);
    let verified = ad.verify_revoked(&account).await.unwrap();
    assert!(verified.revoked, "{:?}", verified.remaining);

    // Roll back in reverse order.
    for snap in snapshots.iter().rev() {
        let t = Instant::now();
        assert_eq!(
            ad.restore(&account, snap).await.unwrap(),
            Outcome::Done,
            "restore {}",
            snap.action
        );
        eprintln!("latency restore {}: {:?}", snap.action, t.elapsed());
        assert_eq!(
            ad.restore(&account, snap).await.unwrap(),
            Outcome::AlreadyDone,
            "restore {} again",
            snap.action
        );
    }
    let back = admin.by_guid(&user.guid).await.unwrap();
    assert_eq!(back.dn.to_ascii_lowercase(), user.dn.to_ascii_lowercase());
    assert_eq!(uac(&back), uac(&before));
    let mut groups = attr(&back, "memberOf");
    groups.sort();
    let mut groups_before = attr(&before, "memberOf");
    groups_before.sort();
    assert_eq!(groups, groups_before);
    assert_eq!(groups.len(), 2);
    for a in ["description", "manager", "accountExpires"] {
        assert_eq!(attr(&back, a), attr(&before, a), "{a}");
    }
    let verified = ad.verify_revoked(&account).await.unwrap();
    assert!(!verified.revoked);
    // Enabled and two groups; being outside the disabled-users OU is not access.
    assert_eq!(verified.remaining.len(), 3, "{:?}", verified.remaining);

    admin.delete_guid(&user.guid).await;
    let _ = admin.ldap.delete(&group2).await;
}

#[tokio::test]
async fn reset_password_changes_the_password_over_tls() {
    let (env, ad, mut admin) = setup().await;
    let user = new_user(&mut admin, "pw").await;
    let account = common::account(&user.guid, &user.login);
    let bind = |pw: &'static str| {
        let env = env.clone();
        let dn = user.dn.clone();
        async move {
            let mut probe = Admin::connect(&env).await;
            probe.ldap.simple_bind(&dn, pw).await.unwrap().rc
        }
    };
    assert_eq!(
        bind("Init!al-Passw0rd-xyz").await,
        0,
        "the initial password works"
    );
    let t = Instant::now();
    assert_eq!(
        run(&ad, &account, RESET_PASSWORD, &opts()).await,
        Outcome::Done
    );
    eprintln!("latency ad.reset_password: {:?}", t.elapsed());
    assert_eq!(
        bind("Init!al-Passw0rd-xyz").await,
        49,
        "the old password no longer works"
    );
    let e = ad
        .snapshot(&account, &Action::new(RESET_PASSWORD))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    admin.delete_guid(&user.guid).await;
}

#[tokio::test]
async fn a_rename_between_lookup_and_action_does_not_redirect() {
    let (env, ad, mut admin) = setup().await;
    let user = new_user(&mut admin, "renamed").await;
    let account = ad
        .lookup(&LookupRequest::person(person(&user.login)))
        .await
        .unwrap()
        .unwrap();
    // Rename the user, then create a new user under the old name.
    let new_rdn = format!("CN=ofb{}-moved", random_hex(8));
    let r = admin
        .ldap
        .modifydn(&user.dn, &new_rdn, true, None)
        .await
        .unwrap();
    assert_eq!(r.rc, 0, "{r:?}");
    let old_cn = user
        .dn
        .split(',')
        .next()
        .unwrap()
        .trim_start_matches("CN=")
        .to_owned();
    let (_, newcomer) = admin
        .create_user(
            &old_cn,
            &format!("n{}", random_hex(12)),
            &format!("new-{}", user.login),
            &[],
            &[],
        )
        .await;
    assert_eq!(run(&ad, &account, DISABLE, &opts()).await, Outcome::Done);
    assert_eq!(
        run(&ad, &account, MOVE_TO_DISABLED_OU, &opts()).await,
        Outcome::Done
    );
    let renamed = admin.by_guid(&user.guid).await.unwrap();
    assert_eq!(uac(&renamed) & 2, 2, "the renamed user is disabled");
    assert!(renamed.dn.starts_with(&new_rdn), "{}", renamed.dn);
    assert!(
        renamed
            .dn
            .to_ascii_lowercase()
            .ends_with(&env.disabled_ou.to_ascii_lowercase())
    );
    let (untouched, _) = admin
        .read(&user.dn)
        .await
        .expect("the newcomer holds the old DN");
    assert_eq!(common::guid_of(&untouched), newcomer);
    assert_eq!(uac(&untouched), 0x200, "the newcomer is untouched");
    assert_eq!(attr(&untouched, "memberOf").len(), 1);
    admin.delete_guid(&user.guid).await;
    admin.delete_guid(&newcomer).await;
}

#[tokio::test]
async fn missing_disabled_ou_is_a_config_error_and_is_not_created() {
    let (env, _ad, mut admin) = setup().await;
    let missing = format!("OU=ofb-missing-{},{}", random_hex(6), env.base_dn);
    let ad = AdConnector::connect(
        common::builder(&env)
            .with_disabled_ou(&missing)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let user = new_user(&mut admin, "noou").await;
    let account = common::account(&user.guid, &user.login);
    for dry_run in [true, false] {
        let e = ad
            .execute(
                &account,
                &Action::new(MOVE_TO_DISABLED_OU),
                &opts().with_dry_run(dry_run),
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
        assert!(e.to_string().contains("disabled_ou"), "{e}");
    }
    assert!(
        admin.read(&missing).await.is_none(),
        "the OU was not created"
    );
    assert_eq!(admin.by_guid(&user.guid).await.unwrap().dn, user.dn);
    admin.delete_guid(&user.guid).await;
}

#[tokio::test]
async fn hide_from_address_lists_is_unsupported_without_exchange_schema() {
    let (_env, ad, mut admin) = setup().await;
    // Samba's schema has no msExchHideFromAddressLists: check the schema ourselves.
    let (root, _) = admin
        .ldap
        .search(
            "",
            ldap3::Scope::Base,
            "(objectClass=*)",
            vec!["schemaNamingContext"],
        )
        .await
        .unwrap()
        .success()
        .unwrap();
    let root = ldap3::SearchEntry::construct(root.into_iter().next().unwrap());
    let schema = attr(&root, "schemaNamingContext")[0].clone();
    let (hits, _) = admin
        .ldap
        .search(
            &schema,
            ldap3::Scope::OneLevel,
            "(lDAPDisplayName=msExchHideFromAddressLists)",
            vec!["cn"],
        )
        .await
        .unwrap()
        .success()
        .unwrap();
    assert!(
        hits.is_empty(),
        "this test expects a directory without the Exchange schema"
    );
    assert!(ad.capabilities().action(&HIDE_FROM_ADDRESS_LISTS).is_none());
    let user = new_user(&mut admin, "hide").await;
    let account = common::account(&user.guid, &user.login);
    let e = ad
        .execute(&account, &Action::new(HIDE_FROM_ADDRESS_LISTS), &opts())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.to_string().contains("msExchHideFromAddressLists"), "{e}");
    admin.delete_guid(&user.guid).await;
}

/// `adminCount=1` stays set after someone leaves every protected group, so it alone does not
/// refuse the account: the lookup marks it privileged (the plan then needs a confirmation) and
/// the actions run.
#[tokio::test]
async fn admin_count_alone_marks_privileged_but_does_not_refuse() {
    let (_env, ad, mut admin) = setup().await;
    let user = new_user(&mut admin, "former-admin").await;
    admin
        .modify(
            &user.dn,
            vec![Mod::Replace(b"adminCount".to_vec(), set(["1"]))],
        )
        .await;
    let found = ad
        .lookup(&LookupRequest::person(person(&user.login)))
        .await
        .unwrap()
        .expect("found");
    assert!(
        found
            .attributes
            .get(offboard_core::PRIVILEGED_ATTRIBUTE)
            .is_some_and(|why| why.contains("adminCount")),
        "{:?}",
        found.attributes
    );
    let account = common::account(&user.guid, &user.login);
    assert_eq!(run(&ad, &account, DISABLE, &opts()).await, Outcome::Done);
    assert_eq!(uac(&admin.by_guid(&user.guid).await.unwrap()), 0x202);
    admin.delete_guid(&user.guid).await;
}

/// Current members (direct or nested) of AD's built-in privileged groups are refused without
/// any configuration: here a user in a group nested in Domain Admins.
#[tokio::test]
async fn current_members_of_builtin_privileged_groups_are_refused() {
    let (env, ad, mut admin) = setup().await;
    let tag = random_hex(8);
    let nested = format!("CN=ofb-{tag}-ops,{}", env.staff_ou);
    admin
        .ensure(
            &nested,
            vec![
                ("objectClass", vec!["group"]),
                ("sAMAccountName", vec![&format!("ofb-{tag}-ops")]),
            ],
        )
        .await;
    let domain_admins = format!("CN=Domain Admins,CN=Users,{}", env.base_dn);
    admin.add_member(&domain_admins, &nested).await;
    let user = new_user(&mut admin, "da").await;
    admin.add_member(&nested, &user.dn).await;
    let account = common::account(&user.guid, &user.login);
    let e = ad
        .execute(&account, &Action::new(DISABLE), &opts())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protected, "{e}");
    assert!(e.to_string().contains("Domain Admins"), "{e}");
    assert_eq!(uac(&admin.by_guid(&user.guid).await.unwrap()), 0x200);
    // Left the privileged group: no longer refused.
    admin
        .modify(
            &nested,
            vec![Mod::Delete(
                b"member".to_vec(),
                HashSet::from([user.dn.clone().into_bytes()]),
            )],
        )
        .await;
    assert_eq!(run(&ad, &account, DISABLE, &opts()).await, Outcome::Done);
    admin.delete_guid(&user.guid).await;
    admin
        .modify(
            &domain_admins,
            vec![Mod::Delete(
                b"member".to_vec(),
                HashSet::from([nested.clone().into_bytes()]),
            )],
        )
        .await;
    let _ = admin.ldap.delete(&nested).await;
}

/// A bare word is looked up as a sAMAccountName: a person whose address is `Guest` must never
/// reach the built-in Guest account. Built-in and well-known accounts (RID < 1000, krbtgt,
/// Guest, Administrator) and the service accounts the config names are always protected.
#[tokio::test]
async fn builtin_well_known_and_named_service_accounts_are_always_protected() {
    let (env, ad, mut admin) = setup().await;
    for name in ["Guest", "krbtgt", "Administrator"] {
        let e = ad
            .lookup(&LookupRequest::person(person(name)))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protected, "{name}: {e}");
    }
    let guest = admin
        .read(&format!("CN=Guest,CN=Users,{}", env.base_dn))
        .await
        .expect("the built-in Guest account");
    let account = common::account(&guest.1, "Guest");
    for action in [DISABLE, REMOVE_GROUPS, MOVE_TO_DISABLED_OU] {
        let e = ad
            .execute(&account, &Action::new(action.clone()), &opts())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protected, "{action}: {e}");
    }
    assert!(
        admin
            .read(&format!("CN=Guest,CN=Users,{}", env.base_dn))
            .await
            .is_some(),
        "Guest was not moved"
    );
    // A service account the config names.
    let svc = new_user(&mut admin, "svc").await;
    let ad = AdConnector::connect(
        common::builder(&env)
            .with_protected_account(svc.sam.clone())
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let e = ad
        .lookup(&LookupRequest::person(person(&svc.login)))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protected, "{e}");
    let e = ad
        .execute(
            &common::account(&svc.guid, &svc.login),
            &Action::new(DISABLE),
            &opts(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protected, "{e}");
    admin.delete_guid(&svc.guid).await;
}

/// AD keeps no idempotency key for a password set, but `pwdLastSet` tells: a repeat of the
/// same task (a retry after a lost answer) finds the password set since the task first
/// started and reports `already_done`; a new task sets a new one.
#[tokio::test]
async fn reset_password_repeat_of_the_same_task_is_already_done() {
    let (_env, ad, mut admin) = setup().await;
    let user = new_user(&mut admin, "pwd-again").await;
    let account = common::account(&user.guid, &user.login);
    // The task starts after the user was created with its first password.
    let first = opts().with_started_at(chrono::Utc::now());
    assert_eq!(
        run(&ad, &account, RESET_PASSWORD, &first).await,
        Outcome::Done
    );
    let mut retry = first.clone();
    retry.attempt = 2;
    assert_eq!(
        run(&ad, &account, RESET_PASSWORD, &retry).await,
        Outcome::AlreadyDone
    );
    let later = opts().with_started_at(chrono::Utc::now() + chrono::Duration::seconds(1));
    assert_eq!(
        run(&ad, &account, RESET_PASSWORD, &later).await,
        Outcome::Done,
        "another task started after the last set sets a new password"
    );
    admin.delete_guid(&user.guid).await;
}

/// Access is what the account can do: enabled or group memberships. Where it sits (outside
/// the disabled-users OU) is housekeeping, not access.
#[tokio::test]
async fn verify_does_not_count_the_ou_as_access() {
    let (_env, ad, mut admin) = setup().await;
    let user = new_user(&mut admin, "verify-ou").await;
    let account = common::account(&user.guid, &user.login);
    assert_eq!(run(&ad, &account, DISABLE, &opts()).await, Outcome::Done);
    assert_eq!(
        run(&ad, &account, REMOVE_GROUPS, &opts()).await,
        Outcome::Done
    );
    let v = ad.verify_revoked(&account).await.unwrap();
    assert!(v.revoked, "{v:?}");
    admin.delete_guid(&user.guid).await;
}

#[tokio::test]
async fn plain_ldap_is_refused_unless_allowed_and_starttls_works() {
    let env = common::env();
    let plain_url = "ldap://127.0.0.1:389";
    let e = common::builder(&env)
        .with_url(plain_url)
        .with_starttls(false)
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    // Allowed for tests: the DC itself then refuses the simple bind (strong auth required).
    let allowed = common::builder(&env)
        .with_url(plain_url)
        .with_starttls(false)
        .allow_plain_ldap_for_tests(true)
        .build()
        .unwrap();
    let e = AdConnector::connect(allowed).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.to_string().contains("encrypted"), "{e}");
    assert!(!e.to_string().contains(&env.password));
    // StartTLS on 389 works.
    let ad = AdConnector::connect(common::builder(&env).with_url(plain_url).build().unwrap())
        .await
        .expect("StartTLS");
    let r = ad
        .lookup(&LookupRequest::person(person("nobody-here@offb.test")))
        .await
        .unwrap();
    assert!(r.is_none());
}

#[tokio::test]
async fn the_bind_password_never_shows() {
    let env = common::env();
    let config = common::builder(&env).build().unwrap();
    for text in [format!("{config:?}"), format!("{config:#?}")] {
        assert!(
            !text.contains(&env.password),
            "config Debug shows the password"
        );
    }
    let ad = common::connector(&env).await;
    assert!(!format!("{ad:?}").contains(&env.password));
    assert!(!format!("{ad:#?}").contains(&env.password));
    // A wrong password: Unauthenticated, and neither password appears.
    let wrong = "Wr0ng!-password-that-must-not-leak";
    let e = AdConnector::connect(
        common::builder(&env)
            .with_password(Secret::new(wrong))
            .build()
            .unwrap(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    for text in [e.to_string(), format!("{e:?}"), format!("{:?}", e.record())] {
        assert!(
            !text.contains(wrong) && !text.contains(&env.password),
            "{text}"
        );
    }
    // A CA file that does not exist: a Config error naming it, before any connection.
    let e = AdConnector::connect(
        common::builder(&env)
            .with_ca_file("/nonexistent/ca.pem")
            .build()
            .unwrap(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
}

#[tokio::test]
async fn untrusted_certificate_is_refused() {
    let env = common::env();
    // The system roots do not include the test CA.
    let config = AdConfig::builder()
        .with_url(&env.url)
        .with_bind_dn(&env.bind_dn)
        .with_password(Secret::new(env.password.clone()))
        .with_base_dn(&env.base_dn)
        .with_disabled_ou(&env.disabled_ou)
        .build()
        .unwrap();
    match AdConnector::connect(config).await {
        Err(e) => assert!(
            matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Config),
            "{e}"
        ),
        Ok(_) => panic!("a DC whose certificate chains to no trusted root must be refused"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_serves_concurrent_calls() {
    let (_env, ad, mut admin) = setup().await;
    let user = new_user(&mut admin, "pool").await;
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let ad = ad.clone();
        let login = user.login.clone();
        tasks.push(tokio::spawn(async move {
            ad.lookup(&LookupRequest::person(person(&login))).await
        }));
    }
    for task in tasks {
        let found = task.await.unwrap().unwrap().unwrap();
        assert_eq!(found.external_id, user.guid.to_string());
    }
    eprintln!("24 concurrent lookups over a pool of 3: {:?}", t.elapsed());
    admin.delete_guid(&user.guid).await;
}

#[tokio::test]
async fn paged_searches_collect_every_page() {
    let (env, _ad, mut admin) = setup().await;
    let ad = AdConnector::connect(common::builder(&env).with_page_size(1).build().unwrap())
        .await
        .unwrap();
    let tag = random_hex(8);
    let shared = format!("paged-{tag}@offb.test");
    let mut guids = Vec::new();
    for i in 0..3 {
        let (_, guid) = admin
            .create_user(
                &format!("ofb{tag}-p{i}"),
                &format!("tp{i}{tag}"),
                &format!("ofb{tag}-p{i}@offb.test"),
                &[&shared],
                &[],
            )
            .await;
        guids.push(guid);
    }
    // One entry per page: all three hits are still collected.
    let e = ad
        .lookup(&LookupRequest::person(person(&shared)))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Ambiguous);
    assert!(e.to_string().contains("3 Active Directory users"), "{e}");
    let one = ad
        .lookup(&LookupRequest::person(person(&format!(
            "ofb{tag}-p1@offb.test"
        ))))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(one.external_id, guids[1].to_string());
    for g in &guids {
        admin.delete_guid(g).await;
    }
}

#[tokio::test]
async fn members_of_configured_protected_groups_are_refused() {
    let (env, _ad, mut admin) = setup().await;
    let tag = random_hex(8);
    let outer = format!("CN=ofb-{tag}-vip,{}", env.staff_ou);
    let inner = format!("CN=ofb-{tag}-vip-inner,{}", env.staff_ou);
    for (dn, sam) in [
        (&outer, format!("ofb-{tag}-vip")),
        (&inner, format!("ofb-{tag}-vin")),
    ] {
        admin
            .ensure(
                dn,
                vec![
                    ("objectClass", vec!["group"]),
                    ("sAMAccountName", vec![&sam]),
                ],
            )
            .await;
    }
    admin.add_member(&outer, &inner).await;
    let vip = new_user(&mut admin, "vip").await;
    admin.add_member(&inner, &vip.dn).await;
    let staff = new_user(&mut admin, "staff").await;
    let ad = AdConnector::connect(
        common::builder(&env)
            .with_protected_group(&outer)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let e = ad
        .execute(
            &common::account(&vip.guid, &vip.login),
            &Action::new(DISABLE),
            &opts(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protected, "{e}");
    assert_eq!(
        uac(&admin.by_guid(&vip.guid).await.unwrap()),
        0x200,
        "nothing changed"
    );
    let staff_account = common::account(&staff.guid, &staff.login);
    assert_eq!(
        run(&ad, &staff_account, DISABLE, &opts()).await,
        Outcome::Done
    );
    admin.delete_guid(&vip.guid).await;
    admin.delete_guid(&staff.guid).await;
    let _ = admin.ldap.delete(&outer).await;
    let _ = admin.ldap.delete(&inner).await;
}
