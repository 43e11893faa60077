//! `cargo run --example demo`: one offboarding end to end.
//!
//! Ada leaves. Her identity provider and directory are offboarded automatically (with one
//! injected outage, retried after the vendor's Retry-After), Salesforce is delegated to a human
//! through a ticket, an app discovered earlier but not in the policy is delegated by email, and
//! her IdP delete is scheduled for the 30-day cleanup stage, after her data went to her manager.
//! Then HR marks Grace as terminated and the engine offboards her without anyone asking.
//!
//! Runs and the audit trail live in a SQLite file (`offboard-demo.db`, or `$OFFBOARD_DEMO_DB`):
//! run the demo again and it shows the earlier runs, and finds Ada's run still open (waiting for
//! its cleanup stage), so a second offboarding of her is suppressed, not started. The apps are
//! the testkit's stateful in-memory reference connectors; later issues put them on simulated
//! vendor tenants on loopback. Everything runs on real time; it takes about ten seconds.

use std::sync::Arc;
use std::time::Duration;

use offboard::audit::verify_chain;
use offboard::engine::LifecycleRules;
use offboard::stores::SqliteStore;
use offboard::{
    AccountRef, AccountStatus, AuditKind, AuditQuery, Confirmation, Engine, Initiator, Limits,
    Manager, Person, Policy, RunQuery, RunRequest, Store, TaskState,
};
use offboard_testkit::reference::{
    ReferenceConnector, ReferenceDelegate, ReferenceSource, ReferenceUser, unavailable,
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

    // The apps, with Ada and a colleague in them.
    let idp = Arc::new(
        ReferenceConnector::builder("idp")
            .latency(Duration::from_millis(40))
            .user(
                ReferenceUser::employee("ada@example.com")
                    .alias("ada.lovelace@example.com")
                    .group("admins"),
            )
            .user(ReferenceUser::employee("grace@example.com"))
            .build(),
    );
    let directory = Arc::new(
        ReferenceConnector::builder("directory")
            .latency(Duration::from_millis(25))
            .user(ReferenceUser::employee("ada.lovelace@example.com").groups(["vpn", "finance-ro"]))
            .user(ReferenceUser::employee("grace@example.com"))
            // The directory is briefly down: 503 with Retry-After 5 s, once.
            .fail_next(
                "directory.remove_groups",
                1,
                unavailable(Some(Duration::from_secs(2))),
            )
            .build(),
    );
    let jira = Arc::new(ReferenceDelegate::jira().with_default_assignee("sam@example.com"));
    let email = Arc::new(ReferenceDelegate::email());

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

    let policy = Policy::from_toml(include_str!("policy.toml"))?;
    let engine = Engine::builder()
        .store(store.clone())
        .connector_with_limits(
            idp.clone(),
            Limits::default().with_rate(10).with_concurrency(4),
        )
        .connector_with_limits(
            directory.clone(),
            Limits::default().with_rate(5).with_concurrency(2),
        )
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
    let run_id = match submitted {
        Ok(id) => {
            println!("submitted run {id}, confirmed by it-admin@example.com\n");
            id
        }
        // A run for Ada from an earlier demo is still open: nothing new starts (audited).
        Err(e) if e.kind() == offboard::ErrorKind::Conflict => {
            println!("submit: {}\n", e.message());
            e.context()
                .find(|(k, _)| *k == "open_run")
                .and_then(|(_, v)| v.parse().ok())
                .ok_or("conflict without open run")?
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
                        format!(
                            "retrying at {} after: {}",
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

    // 4. A human works the Salesforce ticket and the Notion email after two hours.
    let (jira2, email2) = (jira.clone(), email.clone());
    let human = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        for ticket in jira2.tickets() {
            jira2.complete(&ticket.ticket.key, "sam@example.com");
        }
        for ticket in email2.tickets() {
            email2.complete(&ticket.ticket.key, "notion-owner@example.com");
        }
    });

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
        println!(
            "{} grace: every automatic last-day action done {:.2}s after HR's change (her Salesforce ticket is open; her delete waits for the cleanup stage)",
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
    let ada_idp = idp.user_by_login("ada@example.com");
    println!(
        "  idp tenant now: ada {}",
        if ada_idp.is_none() {
            "deleted"
        } else {
            "still present"
        }
    );
    let grace = idp.user_by_login("grace@example.com").map(|u| u.status);
    println!("  idp tenant now: grace {grace:?}");

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
