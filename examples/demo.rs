//! `cargo run --example demo`: one offboarding end to end.
//!
//! Ada leaves. Her Okta account is offboarded by the real `offboard-okta` connector against a
//! simulated Okta tenant on loopback (one request is answered 429 with Okta's
//! `X-Rate-Limit-Reset`, and the task waits for that reset and retries), her directory account
//! by the testkit's reference connector (there is no directory simulator), Salesforce is
//! delegated to a human through an issue the real `offboard-jira` delegate files in a simulated
//! Jira site (Sam takes it and closes it), an app discovered earlier but not in the
//! policy is delegated by email, and her Okta delete is scheduled for the 30-day cleanup stage,
//! after her directory data went to her manager. Then HR marks Grace as terminated and the
//! engine offboards her without anyone asking. With `OFFBOARD_AD_URL` and the other
//! `OFFBOARD_AD_*` variables set, Active Directory is offboarded too (see the README).
//!
//! Runs and the audit trail live in a SQLite file (`offboard-demo.db`, or `$OFFBOARD_DEMO_DB`):
//! run the demo again and it shows the earlier runs, and finds Ada's run still open (waiting for
//! its cleanup stage), so a second offboarding of her is suppressed, not started. The simulated
//! tenants (and the in-memory directory) live only as long as the process: a second run starts
//! fresh ones, in which Ada was never offboarded, and its verification says so. Everything runs
//! on real time; it takes about five seconds.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use offboard::audit::verify_chain;
use offboard::engine::LifecycleRules;
use offboard::policy::{AppPolicy, Method, PlannedAction};
use offboard::stores::SqliteStore;
use offboard::{
    AccountRef, AccountStatus, Action, ActionName, AppId, AuditKind, AuditQuery, Confirmation,
    Engine, Initiator, Limits, Manager, Person, Policy, RetryClass, RunQuery, RunRequest, Secret,
    Store, TaskState,
};
use offboard_ad::{AdConfigBuilder, AdConnector, actions as ad_actions};
use offboard_jira::JiraBuilder;
use offboard_okta::OktaConfig;
use offboard_testkit::jira::{DEFAULT_EMAIL, DEFAULT_TOKEN, JiraSim};
use offboard_testkit::okta::{Faults, GroupType, NewUser, OktaTenant, RateLimits};
use offboard_testkit::reference::{
    ReferenceConnector, ReferenceDelegate, ReferenceSource, ReferenceUser,
};

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
            .with_api_token(Secret::new(okta_tenant.token()))
            .with_timeout(Duration::from_secs(10))
            .build()?,
    );
    println!(
        "okta: simulated tenant at {} (offboard-okta, API token)",
        okta_tenant.uri()
    );

    // The directory has no simulator: the testkit's stateful in-memory reference connector.
    let directory = Arc::new(
        ReferenceConnector::builder("directory")
            .latency(Duration::from_millis(25))
            .user(ReferenceUser::employee("ada.lovelace@example.com").groups(["vpn", "finance-ro"]))
            .user(ReferenceUser::employee("grace@example.com"))
            .build(),
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
    // Email needs an SMTP server: the reference delegate stands in.
    let email = Arc::new(ReferenceDelegate::email());

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
    let ada = Person::new("e-1042", "ada@example.com")
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
                AccountRef::new("notion", "n-12", "ada@example.com", AccountStatus::Active),
            ],
            start - chrono::Duration::days(200),
        )
        .await?;

    // The HR system: the source of truth the engine watches.
    let hr = Arc::new(ReferenceSource::new("hr"));
    hr.hire(ada.clone());
    hr.hire(Person::new("e-2001", "grace@example.com").with_name("Grace Hopper"));

    let mut policy = Policy::from_toml(include_str!("policy.toml"))?;
    let mut builder = Engine::builder()
        .store(store.clone())
        .connector_with_limits(
            okta.clone(),
            Limits::default().with_rate(10).with_concurrency(4),
        )
        .connector_with_limits(
            directory.clone(),
            Limits::default().with_rate(5).with_concurrency(2),
        );
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
        .source(hr.clone(), Duration::from_secs(1))
        .lifecycle(LifecycleRules {
            domains: vec!["example.com".into()],
            debounce: Duration::ZERO,
            // Runs started by HR confirm their own critical steps (audited as `source:hr`).
            auto_confirm_critical: true,
        })
        .build()?;
    engine.poll_sources().await?; // initial sync: everyone current, nothing starts

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

    // 2. Submit. Without a confirmation, the critical delete is refused.
    let refused = engine.submit(plan.clone(), None).await.unwrap_err();
    println!(
        "submit without confirmation: refused ({})\n",
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
                println!("{} {:<32} {what}   [run {:?}]", t(u.at), label, u.run_state);
            }
        }
    });

    // 4. Humans: Sam takes Ada's Salesforce issue in Jira after a second and closes it a
    //    second later; the Notion owner answers the email after two seconds. (When Ada's run is
    //    from an earlier demo, her issue was closed then, in that process's Jira.)
    let human = {
        let (engine, site, email) = (engine.clone(), jira_site.clone(), email.clone());
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
            for ticket in email.tickets() {
                email.complete(&ticket.ticket.key, "notion-owner@example.com");
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
        })
    };

    // The injected outage: Okta answers the next request 429 (rate limit spent), and its
    // X-Rate-Limit-Reset is the end of a fresh 3-second window, so the task that got it waits
    // until then and retries. Only when Ada's run is new: otherwise no Okta task is due.
    if ada_fresh {
        okta_tenant.set_limits(RateLimits::enterprise().with_window_secs(3));
        okta_tenant.fail_next(1, 429);
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
    human.await?;
    for task in done.tasks.iter().filter(|x| !x.state.is_terminal()) {
        let when = task.not_before.format("%Y-%m-%d");
        println!(
            "{} {:<32} scheduled for {when}",
            t(engine.now()),
            task.label()
        );
    }

    // 5. Nobody asks: HR marks Grace as gone, and the watch loop (polling HR every second)
    //    starts and finishes her offboarding.
    println!(
        "\n{} HR marks grace@example.com terminated",
        t(engine.now())
    );
    let changed_at = engine.now();
    hr.terminate("e-2001", None);
    let grace_run = loop {
        if let Some(r) = store.list_runs(RunQuery::person("e-2001")).await?.first() {
            break r.id;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let fresh = engine.status(grace_run).await?.created_at >= changed_at;
    if !fresh {
        println!("  her run from an earlier demo is still open: the new trigger was suppressed");
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
            "{} grace: every automatic last-day action done {:.2}s after HR's change (her Salesforce issue {ticket} is open; her delete waits for the cleanup stage)",
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
            "  (Okta, Jira and the directory are new in this process, so they show Ada as never \
             offboarded: her run changed the tenants of the process that started it)"
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
                    "  okta tenant now: {who:<5} {} ({} sessions, {} refresh tokens, {} grants, \
                     {} direct apps, groups: {})",
                    u.status,
                    u.sessions,
                    u.oauth_tokens.len(),
                    u.grants.len(),
                    u.apps.len(),
                    groups.join(", ")
                );
            }
            None => println!("  okta tenant now: {who:<5} deleted"),
        }
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

    // 7. The audit trail, hash-chained.
    let all = store.audit(AuditQuery::all()).await?;
    let events: Vec<_> = all.iter().filter(|e| e.seq > seq_before).collect();
    println!(
        "\naudit trail of this demo ({} events; {} in the file):",
        events.len(),
        all.len()
    );
    for e in &events {
        let what = match &e.kind {
            AuditKind::Transition {
                event,
                task_state,
                run_state,
            } => {
                format!(
                    "{:<20} task={:<10} run={run_state:?}",
                    event.name(),
                    task_state.as_deref().unwrap_or("-")
                )
            }
            other => other.name().to_owned(),
        };
        let app = e.app.as_ref().map(|a| a.as_str()).unwrap_or("-");
        println!(
            "  #{:<3} {} {:<24} {:<11} {what}  {}",
            e.seq,
            t(e.at),
            e.actor,
            app,
            &e.hash[..12]
        );
    }
    match store.verify_audit().await?.into_result() {
        Ok(n) => println!("audit chain in {db} verifies: {n} events"),
        Err(p) => println!("AUDIT CHAIN BROKEN: {p}"),
    }
    // The whole chain also verifies with core's checker, independent of the store.
    verify_chain(&all).map_err(offboard::Error::from)?;
    Ok(())
}
