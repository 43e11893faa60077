//! Sources of truth → runs, on the in-memory store, the reference connector and the reference
//! source, under a paused tokio clock.

use std::sync::Arc;
use std::time::Duration;

use offboard::engine::{EngineEvent, LifecycleRules};
use offboard::memory::MemoryStore;
use offboard::policy::DepartureLimits;
use offboard::{
    AccountStatus, AuditKind, AuditQuery, Confirmation, Engine, ErrorKind, Initiator, Person,
    Policy, RunQuery, RunState, Store, TaskState,
};
use offboard_testkit::suite::reference::{ReferenceConnector, ReferenceSource, ReferenceUser};
use offboard_testkit::suite::store::CountingStore;

const POLICY: &str = r#"
[apps.idp]
method = "automatic"
actions = ["idp.suspend", "idp.clear_sessions", "idp.remove_groups"]
"#;

struct World {
    engine: Engine,
    store: Arc<MemoryStore>,
    idp: Arc<ReferenceConnector>,
    hr: Arc<ReferenceSource>,
}

fn world_with(
    store: Arc<MemoryStore>,
    hr: Arc<ReferenceSource>,
    rules: LifecycleRules,
    extra: Vec<Arc<ReferenceSource>>,
) -> World {
    let idp = Arc::new(
        ReferenceConnector::builder("idp")
            .users(
                [
                    "ada@example.com",
                    "bob@example.com",
                    "cy@example.com",
                    "dee@example.com",
                    "eve@example.com",
                ]
                .map(ReferenceUser::employee),
            )
            .build(),
    );
    let mut b = Engine::builder()
        .store(store.clone())
        .connector(idp.clone())
        .policy(Policy::from_toml(POLICY).unwrap())
        .lifecycle(rules)
        .source(hr.clone(), Duration::from_secs(1));
    for s in extra {
        b = b.source(s, Duration::from_secs(1));
    }
    World {
        engine: b.build().unwrap(),
        store,
        idp,
        hr,
    }
}

fn world(rules: LifecycleRules) -> World {
    world_with(
        Arc::new(MemoryStore::new()),
        Arc::new(ReferenceSource::new("hr")),
        rules,
        vec![],
    )
}

fn person(id: &str, email: &str) -> Person {
    Person::new(id, email)
}

fn rules() -> LifecycleRules {
    LifecycleRules {
        domains: vec!["example.com".into()],
        ..LifecycleRules::default()
    }
}

/// [`rules`] without the mass-departure limits, for tests of a few people leaving together (the
/// default 5 % of five people is one person per batch).
fn rules_unlimited() -> LifecycleRules {
    LifecycleRules {
        departures: DepartureLimits::unlimited(),
        ..rules()
    }
}

async fn runs_of(store: &MemoryStore, id: &str) -> Vec<offboard::RunSummary> {
    store.list_runs(RunQuery::person(id)).await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_deactivation_becomes_a_completed_offboarding() {
    let w = world(rules());
    w.hr.hire(person("e1", "ada@example.com"));
    w.hr.hire(person("e2", "bob@example.com"));
    let r = w.engine.poll_sources().await.unwrap();
    assert_eq!(r.records, 2);
    assert!(r.started.is_empty(), "current people start nothing");

    w.hr.terminate("e1", None);
    let r = w.engine.poll_sources().await.unwrap();
    assert_eq!(r.started.len(), 1);
    let (who, run_id) = &r.started[0];
    assert_eq!(who.as_str(), "e1");
    let workers = w.engine.start();
    let run = w.engine.wait(*run_id).await.unwrap();
    workers.shutdown().await;
    assert_eq!(run.state, RunState::Completed);
    assert_eq!(
        run.initiator,
        Initiator::SourceOfTruth {
            source: "hr".into()
        }
    );
    assert_eq!(
        w.idp.user_by_login("ada@example.com").unwrap().status,
        AccountStatus::Suspended
    );
    assert_eq!(
        w.idp.user_by_login("bob@example.com").unwrap().status,
        AccountStatus::Active
    );
    // Polling again finds nothing new and starts nothing.
    let r = w.engine.poll_sources().await.unwrap();
    assert_eq!((r.records, r.started.len()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn people_first_seen_as_past_and_externals_never_trigger() {
    let w = world(rules());
    // Initial sync: an old leaver is recorded, not offboarded again.
    w.hr.hire(person("e1", "ada@example.com"));
    w.hr.terminate("e1", None);
    w.hr.hire(person("x1", "contractor@partner.example.org"));
    let r = w.engine.poll_sources().await.unwrap();
    assert!(r.started.is_empty());
    assert_eq!(r.external, 1);
    w.hr.terminate("x1", None);
    let r = w.engine.poll_sources().await.unwrap();
    assert!(r.started.is_empty(), "externals never trigger");
    assert_eq!(r.external, 1);
    assert!(runs_of(&w.store, "x1").await.is_empty());
    assert_eq!(w.idp.total_effects(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_second_source_saying_gone_is_suppressed_while_the_run_is_open() {
    let okta = Arc::new(ReferenceSource::new("okta"));
    let w = world_with(
        Arc::new(MemoryStore::new()),
        Arc::new(ReferenceSource::new("hr")),
        rules(),
        vec![okta.clone()],
    );
    w.hr.hire(person("e1", "ada@example.com"));
    okta.hire(person("e1", "ada@example.com"));
    w.engine.poll_sources().await.unwrap();
    w.hr.terminate("e1", None);
    okta.terminate("e1", None);
    let r = w.engine.poll_sources().await.unwrap();
    assert_eq!(r.started.len(), 1);
    assert_eq!(r.suppressed.len(), 1);
    assert_eq!(runs_of(&w.store, "e1").await.len(), 1);
    let events = w.store.audit(AuditQuery::all()).await.unwrap();
    assert!(events.iter().any(
        |e| matches!(&e.kind, AuditKind::Suppressed { person, .. } if person.as_str() == "e1")
    ));
}

/// An engine over the reference idp (`ada`, `bob`) and `hr`, with an idp policy that deletes
/// (a critical action) after suspending.
fn critical_world(rules: LifecycleRules) -> World {
    let policy = r#"
[apps.idp]
method = "automatic"
actions = ["idp.suspend", "idp.delete"]
"#;
    world_under(policy, rules)
}

/// An engine over the reference idp (`ada`, `bob`) and `hr` under `policy`.
fn world_under(policy: &str, rules: LifecycleRules) -> World {
    let store = Arc::new(MemoryStore::new());
    let hr = Arc::new(ReferenceSource::new("hr"));
    let idp = Arc::new(
        ReferenceConnector::builder("idp")
            .users(["ada@example.com", "bob@example.com"].map(ReferenceUser::employee))
            .build(),
    );
    let engine = Engine::builder()
        .store(store.clone())
        .connector(idp.clone())
        .policy(Policy::from_toml(policy).unwrap())
        .lifecycle(rules)
        .source(hr.clone(), Duration::from_secs(1))
        .build()
        .unwrap();
    World {
        engine,
        store,
        idp,
        hr,
    }
}

/// Ada leaves according to `hr`; returns the run the trigger started and the digest its held
/// tasks wait for, after the tasks not held ran.
async fn ada_leaves_with_a_held_delete(w: &World) -> (offboard::RunId, String) {
    w.hr.hire(person("e1", "ada@example.com"));
    w.engine.poll_sources().await.unwrap();
    w.hr.terminate("e1", None);
    let r = w.engine.poll_sources().await.unwrap();
    assert_eq!(r.started.len(), 1, "{r:?}");
    let (who, run_id) = r.started[0].clone();
    assert_eq!(who.as_str(), "e1");
    assert_eq!(r.needs_confirmation.len(), 1, "{r:?}");
    let (who, digest) = r.needs_confirmation[0].clone();
    assert_eq!(who.as_str(), "e1");
    w.engine.run_due().await.unwrap();
    let run = w.engine.status(run_id).await.unwrap();
    assert_eq!(run.state, RunState::AwaitingConfirmation);
    assert_eq!(run.confirmation_digest(), digest);
    let state = |label: &str| {
        run.tasks
            .iter()
            .find(|t| t.label() == label)
            .unwrap()
            .state
            .clone()
    };
    assert!(state("idp.suspend").is_completed(), "the rest runs now");
    assert_eq!(state("idp.delete"), TaskState::Held);
    let ada = w.idp.account_by_login("ada@example.com").unwrap();
    assert_eq!(
        w.idp.user(&ada.external_id).unwrap().status,
        AccountStatus::Suspended,
        "access is revoked while the delete waits"
    );
    assert!(!w.idp.is_deleted(&ada.external_id));
    let events = w.store.audit(AuditQuery::all()).await.unwrap();
    assert!(events.iter().any(|e| matches!(
        &e.kind,
        AuditKind::Note { name, data } if name == "trigger_held_for_confirmation"
            && data["digest"] == digest.as_str()
    )));
    (run_id, digest)
}

#[tokio::test(start_paused = true)]
async fn a_source_trigger_holds_its_critical_action_until_confirmed() {
    let w = critical_world(rules());
    let (run_id, digest) = ada_leaves_with_a_held_delete(&w).await;
    // Nothing releases it but a confirmation: time passes, workers pass.
    tokio::time::advance(Duration::from_secs(7 * 86_400)).await;
    w.engine.run_due().await.unwrap();
    let ada = w.idp.account_by_login("ada@example.com").unwrap();
    assert!(!w.idp.is_deleted(&ada.external_id));
    let run = w
        .engine
        .confirm(run_id, Confirmation::new(digest, "sec-lead@example.com"))
        .await
        .unwrap();
    assert_eq!(run.confirmed_by.as_deref(), Some("sec-lead@example.com"));
    w.engine.run_due().await.unwrap();
    let run = w.engine.status(run_id).await.unwrap();
    assert_eq!(run.state, RunState::Completed);
    assert!(w.idp.is_deleted(&ada.external_id));
    assert_eq!(w.idp.effects(&ada.external_id, "idp.delete"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_person_who_vanishes_keeps_the_aliases_that_protect_them() {
    // Ada is protected by an alias only; then the source stops reporting her, by id alone.
    let policy = r#"
protected = ["chief@example.com"]
[apps.idp]
method = "automatic"
actions = ["idp.suspend"]
"#;
    let w = world_under(policy, rules());
    w.hr.hire(person("e1", "ada@example.com").with_alias("chief@example.com"));
    w.engine.poll_sources().await.unwrap();
    w.hr.upsert(offboard::PersonRecord::gone("e1"));
    let r = w.engine.poll_sources().await.unwrap();
    assert!(r.started.is_empty(), "{r:?}");
    assert_eq!(
        r.protected.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        ["e1"]
    );
    w.engine.run_due().await.unwrap();
    assert_eq!(w.idp.total_effects(), 0);
    assert!(runs_of(&w.store, "e1").await.is_empty());
    // The verdict keeps her aliases for the next look.
    let known = w.store.accounts(&"e1".into()).await.unwrap();
    assert!(
        known.iter().any(|a| a
            .account
            .attributes
            .values()
            .any(|v| v.contains("chief@example.com"))),
        "{known:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancel_ends_the_held_critical_action_unrun() {
    let w = critical_world(rules());
    let (run_id, digest) = ada_leaves_with_a_held_delete(&w).await;
    let run = w.engine.cancel(run_id, "admin@example.com").await.unwrap();
    assert_eq!(run.state, RunState::Cancelled);
    let delete = run
        .tasks
        .iter()
        .find(|t| t.label() == "idp.delete")
        .unwrap();
    assert_eq!(delete.state, TaskState::Cancelled);
    assert_eq!(delete.attempts, 0);
    let err = w
        .engine
        .confirm(run_id, Confirmation::new(digest, "sec-lead@example.com"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    w.engine.run_due().await.unwrap();
    let ada = w.idp.account_by_login("ada@example.com").unwrap();
    assert!(!w.idp.is_deleted(&ada.external_id));
    assert_eq!(w.idp.effects(&ada.external_id, "idp.delete"), 0);
}

#[tokio::test(start_paused = true)]
async fn flapping_within_the_debounce_window_changes_nothing() {
    let w = world(LifecycleRules {
        debounce: Duration::from_secs(600),
        ..rules()
    });
    w.hr.hire(person("e1", "ada@example.com"));
    w.engine.poll_sources().await.unwrap();
    w.hr.terminate("e1", None);
    let r = w.engine.poll_sources().await.unwrap();
    let run_id = r.started[0].1;
    let workers = w.engine.start();
    tokio::time::sleep(Duration::from_secs(120)).await;
    w.hr.rehire("e1");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let run = w.engine.status(run_id).await.unwrap();
    assert_eq!(
        run.state,
        RunState::Cancelled,
        "the return cancelled the run before it took effect"
    );
    tokio::time::sleep(Duration::from_secs(3600)).await;
    workers.shutdown().await;
    assert_eq!(w.idp.total_effects(), 0, "nothing ran");
    let events = w.store.audit(AuditQuery::all()).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| matches!(&e.kind, AuditKind::Note { name, .. } if name == "person_returned"))
    );
}

#[tokio::test(start_paused = true)]
async fn a_return_after_offboarding_is_reported_never_rolled_back() {
    let w = world(rules());
    w.hr.hire(person("e1", "ada@example.com"));
    w.engine.poll_sources().await.unwrap();
    w.hr.terminate("e1", None);
    let run_id = w.engine.poll_sources().await.unwrap().started[0].1;
    w.engine.run_due().await.unwrap();
    assert_eq!(
        w.engine.status(run_id).await.unwrap().state,
        RunState::Completed
    );
    w.hr.rehire("e1");
    let r = w.engine.poll_sources().await.unwrap();
    assert_eq!(r.returned.len(), 1);
    assert!(r.cancelled.is_empty());
    assert_eq!(
        w.engine.status(run_id).await.unwrap().state,
        RunState::Completed,
        "no automatic rollback"
    );
    assert_eq!(
        w.idp.user_by_login("ada@example.com").unwrap().status,
        AccountStatus::Suspended
    );
}

#[tokio::test(start_paused = true)]
async fn a_restart_mid_scan_misses_nothing_and_repeats_nothing() {
    let store = Arc::new(MemoryStore::new());
    let hr = Arc::new(ReferenceSource::new("hr").with_page_size(2));
    let ids = ["e1", "e2", "e3", "e4", "e5"];
    let emails = [
        "ada@example.com",
        "bob@example.com",
        "cy@example.com",
        "dee@example.com",
        "eve@example.com",
    ];
    for (id, email) in ids.iter().zip(emails) {
        hr.hire(person(id, email));
    }
    let first = world_with(store.clone(), hr.clone(), rules_unlimited(), vec![]);
    first.engine.poll_sources().await.unwrap();
    for id in ids {
        hr.terminate(id, None);
    }
    // The first engine handles one page of two, then "crashes"; the source also fails once.
    let partial = first
        .engine
        .poll_source_pages(hr.as_ref(), 1)
        .await
        .unwrap();
    assert_eq!(partial.started.len(), 2);
    drop(first);
    hr.fail_next(1);
    let second = world_with(store.clone(), hr.clone(), rules_unlimited(), vec![]);
    assert!(
        second.engine.poll_sources().await.is_err(),
        "the source is down"
    );
    // A new engine on the same store continues from the persisted cursor.
    let rest = second.engine.poll_sources().await.unwrap();
    assert_eq!(rest.started.len(), 3);
    for id in ids {
        assert_eq!(
            runs_of(&store, id).await.len(),
            1,
            "{id} has exactly one run"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_future_termination_date_schedules_the_run() {
    let w = world(rules());
    w.hr.hire(person("e1", "ada@example.com"));
    w.engine.poll_sources().await.unwrap();
    let last_day = w.engine.now() + chrono::Duration::days(3);
    w.hr.terminate("e1", Some(last_day));
    let run_id = w.engine.poll_sources().await.unwrap().started[0].1;
    let run = w.engine.status(run_id).await.unwrap();
    assert_eq!(run.effective_at, last_day);
    assert_eq!(
        w.engine.run_due().await.unwrap(),
        0,
        "nothing runs before the last day"
    );
    tokio::time::advance(Duration::from_secs(3 * 86400)).await;
    w.engine.run_due().await.unwrap();
    assert_eq!(
        w.engine.status(run_id).await.unwrap().state,
        RunState::Completed
    );
}

#[tokio::test(start_paused = true)]
async fn the_watch_loop_revokes_within_seconds_of_the_change() {
    let w = world(rules());
    w.hr.hire(person("e1", "ada@example.com"));
    let workers = w.engine.start();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let changed_at = w.engine.now();
    w.hr.terminate("e1", None);
    let run_id = loop {
        if let Some(r) = runs_of(&w.store, "e1").await.first() {
            break r.id;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let run = w.engine.wait(run_id).await.unwrap();
    workers.shutdown().await;
    let revoked = run
        .tasks
        .iter()
        .filter_map(|t| t.finished_at)
        .max()
        .unwrap();
    let took = (revoked - changed_at).to_std().unwrap();
    assert!(
        took <= Duration::from_secs(5),
        "time to revoke {took:?} with a 1 s poll"
    );
}

#[tokio::test(start_paused = true)]
async fn an_hr_export_drives_offboarding_including_people_who_vanish_from_it() {
    use offboard::source::hr::HrFeed;
    let dir = std::env::temp_dir().join(format!("offboard-hr-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("export.csv");
    std::fs::write(
        &path,
        "employee_id,email,status\ne1,ada@example.com,active\ne2,bob@example.com,active\n",
    )
    .unwrap();
    let feed = Arc::new(HrFeed::new("workday", &path));
    let store = Arc::new(MemoryStore::new());
    let idp = Arc::new(
        ReferenceConnector::builder("idp")
            .users(["ada@example.com", "bob@example.com"].map(ReferenceUser::employee))
            .build(),
    );
    let engine = Engine::builder()
        .store(store.clone())
        .connector(idp.clone())
        .policy(Policy::from_toml(POLICY).unwrap())
        .lifecycle(rules_unlimited())
        .source(feed, Duration::from_secs(1))
        .build()
        .unwrap();
    assert!(engine.poll_sources().await.unwrap().started.is_empty());
    // Bob is terminated; Ada disappears from the export altogether.
    std::fs::write(
        &path,
        "employee_id,email,status,termination_date\ne2,bob@example.com,terminated,2020-01-01\n",
    )
    .unwrap();
    let r = engine.poll_sources().await.unwrap();
    let mut who: Vec<&str> = r.started.iter().map(|(p, _)| p.as_str()).collect();
    who.sort();
    assert_eq!(who, ["e1", "e2"]);
    engine.run_due().await.unwrap();
    for login in ["ada@example.com", "bob@example.com"] {
        assert_eq!(
            idp.user_by_login(login).unwrap().status,
            AccountStatus::Suspended,
            "{login}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

// --- Discovery sync -------------------------------------------------------------------------

mod discovery {
    use std::sync::Arc;
    use std::time::Duration;

    use offboard::engine::Limits;
    use offboard::memory::MemoryStore;
    use offboard::{
        AccountStatus, Engine, ErrorKind, Initiator, Person, Policy, RunRequest, Store,
    };
    use offboard_okta::OktaConfig;
    use offboard_testkit::sim::okta::{GroupType, NewUser, OktaTenant};
    use offboard_testkit::suite::reference::permanent;
    use offboard_testkit::suite::reference::{
        ReferenceConnector, ReferenceDelegate, ReferenceUser,
    };

    const POLICY: &str = r#"
unknown_apps = "delegate_email"

[apps.okta]
method = "automatic"
actions = ["okta.suspend"]
"#;

    #[tokio::test]
    async fn a_sync_records_idp_accounts_and_apps_seen_through_them() {
        let tenant = OktaTenant::start().await;
        let github = tenant.add_app("GitHub");
        let slack = tenant.add_app("Slack");
        let eng = tenant.add_group("Engineering", GroupType::OktaGroup);
        tenant.assign_app_to_group(&slack, &eng);
        let okta_id = tenant.add_user(NewUser {
            apps: vec![github.clone()],
            groups: vec![eng],
            ..NewUser::active("ada@example.com")
        });
        let okta = OktaConfig::new()
            .with_org_url(tenant.uri())
            .with_allow_plain_http(true)
            .with_api_token(offboard::Secret::new(tenant.token()))
            .build()
            .unwrap();
        let jira = Arc::new(
            ReferenceConnector::builder("jira")
                .user(ReferenceUser::employee("ada@example.com"))
                .build(),
        );
        // A connector that is down: reported, never fatal to the sync.
        let ad = Arc::new(
            ReferenceConnector::builder("ad")
                .user(ReferenceUser::employee("ada@example.com"))
                .build(),
        );
        ad.fail_always(
            "lookup",
            permanent(ErrorKind::PermissionDenied, "bind refused"),
        );
        let store = Arc::new(MemoryStore::new());
        let delegate = Arc::new(ReferenceDelegate::email());
        let engine = Engine::builder()
            .store(store.clone())
            .connector(Arc::new(okta))
            .connector(jira.clone())
            .connector(ad.clone())
            .delegate(delegate)
            .policy(Policy::from_toml(POLICY).unwrap())
            .build()
            .unwrap();
        let ada = Person::new("e1", "ada@example.com");

        let report = engine.sync_inventory(&ada).await.unwrap();
        let failed: Vec<&str> = report
            .failures()
            .iter()
            .map(|(app, _)| app.as_str())
            .collect();
        assert_eq!(failed, ["ad"]);
        let okta_sync = report
            .connectors
            .iter()
            .find(|c| c.app.as_str() == "okta")
            .unwrap();
        assert_eq!(okta_sync.account.as_ref().unwrap().external_id, okta_id);
        let mut via_okta: Vec<&str> = okta_sync
            .discovered
            .iter()
            .map(|a| a.app.as_str())
            .collect();
        via_okta.sort();
        assert_eq!(via_okta, ["github", "slack"]);
        let requests: Vec<String> = tenant.requests().iter().map(|r| r.line()).collect();
        assert!(requests.contains(&format!("GET /api/v1/users/{okta_id}/appLinks")));

        let inventory = store.accounts(&ada.id).await.unwrap();
        let mut apps: Vec<&str> = inventory.iter().map(|a| a.account.app.as_str()).collect();
        apps.sort();
        assert_eq!(apps, ["github", "jira", "okta", "slack"]);
        let first = inventory
            .iter()
            .find(|a| a.account.app.as_str() == "github")
            .unwrap()
            .clone();

        // A second sync keeps first_seen and moves last_seen; the known id is looked up.
        tokio::time::sleep(Duration::from_millis(20)).await;
        tenant.clear_requests();
        engine.sync_inventory(&ada).await.unwrap();
        let again = store.accounts(&ada.id).await.unwrap();
        let github_again = again
            .iter()
            .find(|a| a.account.app.as_str() == "github")
            .unwrap();
        assert_eq!(again.len(), 4);
        assert_eq!(github_again.first_seen, first.first_seen);
        assert!(github_again.last_seen > first.last_seen);
        let lines: Vec<String> = tenant.requests().iter().map(|r| r.line()).collect();
        assert!(
            lines.contains(&format!("GET /api/v1/users/{okta_id}")),
            "looked up by the known id: {lines:?}"
        );

        // The plan: GitHub and Slack have no connector and are delegated per policy.
        let plan = engine
            .plan(RunRequest::new(
                ada.clone(),
                Initiator::Admin { actor: "it".into() },
            ))
            .await
            .unwrap();
        for app in ["github", "slack"] {
            let p = plan.apps.iter().find(|p| p.app.as_str() == app).unwrap();
            assert_eq!(p.method, "delegate_email", "{app}");
            assert!(p.note.contains("discovered"), "{}", p.note);
        }
        let okta_plan = plan.apps.iter().find(|p| p.app.as_str() == "okta").unwrap();
        assert_eq!(okta_plan.method, "automatic");
        assert_eq!(
            okta_plan.account.as_ref().unwrap().status,
            AccountStatus::Active
        );
        assert_eq!(ad.calls().execute + jira.calls().execute, 0, "reads only");
    }

    #[tokio::test(start_paused = true)]
    async fn discovery_goes_through_each_connectors_rate_limit() {
        let idp = Arc::new(
            ReferenceConnector::builder("idp")
                .users((0..6).map(|i| ReferenceUser::employee(format!("p{i}@example.com"))))
                .build(),
        );
        let engine = Engine::builder()
            .store(Arc::new(MemoryStore::new()))
            .connector_with_limits(idp.clone(), Limits::default().with_rate(2))
            .policy(
                Policy::from_toml(
                    "[apps.idp]\nmethod = \"automatic\"\nactions = [\"idp.suspend\"]\n",
                )
                .unwrap(),
            )
            .build()
            .unwrap();
        let people: Vec<Person> = (0..6)
            .map(|i| Person::new(format!("e{i}"), format!("p{i}@example.com")))
            .collect();
        let started = tokio::time::Instant::now();
        let reports = engine.sync_inventory_all(&people).await.unwrap();
        let took = started.elapsed();
        assert_eq!(reports.len(), 6);
        for (r, p) in reports.iter().zip(&people) {
            assert_eq!(r.person, p.id, "reports in input order");
            assert_eq!(r.recorded().len(), 1);
        }
        assert_eq!(idp.calls().lookup, 6);
        // 2 per second with a burst of 2: six lookups need at least two more seconds.
        assert!(took >= Duration::from_secs(2), "took {took:?}");
    }
}

/// A feed that returns the batches it was given, one per call, then nothing.
#[derive(Debug)]
struct Batches(std::sync::Mutex<std::collections::VecDeque<Vec<offboard::PersonRecord>>>);

#[async_trait::async_trait]
impl offboard::SourceOfTruth for Batches {
    fn name(&self) -> &str {
        "hr"
    }

    async fn changes(
        &self,
        _cursor: Option<&offboard::Cursor>,
    ) -> offboard::Result<offboard::ChangeBatch> {
        let changes = self.0.lock().unwrap().pop_front().unwrap_or_default();
        Ok(offboard::ChangeBatch {
            changes,
            next: offboard::Cursor(String::new()),
            more: false,
        })
    }
}

/// An engine (without sources: the tests poll theirs) for `people` users `u{i}@example.com`
/// on a store whose `create_run` takes 5 ms, as a durable store's fsync does.
fn slow_submits(people: usize, rules: LifecycleRules) -> (Engine, Arc<CountingStore<MemoryStore>>) {
    let store = Arc::new(
        CountingStore::new(MemoryStore::new()).with_create_delay(Duration::from_millis(5)),
    );
    let idp = ReferenceConnector::builder("idp")
        .users((0..people).map(|i| ReferenceUser::employee(format!("u{i}@example.com"))))
        .users(["ada@example.com", "bob@example.com"].map(ReferenceUser::employee))
        .build();
    let engine = Engine::builder()
        .store(store.clone())
        .connector(Arc::new(idp))
        .policy(Policy::from_toml(POLICY).unwrap())
        .lifecycle(rules)
        .build()
        .unwrap();
    (engine, store)
}

fn record(p: &Person, lifecycle: offboard::Lifecycle) -> offboard::PersonRecord {
    offboard::PersonRecord {
        person: p.clone(),
        lifecycle,
        termination_at: None,
    }
}

/// A batch that names a person twice is handled in its order for that person, while other
/// people are handled beside them: gone then back within one batch is a run started and then
/// cancelled (the other order would start a run and leave it open).
#[tokio::test(start_paused = true)]
async fn one_persons_records_in_a_batch_are_handled_in_order() {
    use offboard::Lifecycle::{Current, Past};
    let (ada, bob) = (
        person("e1", "ada@example.com"),
        person("e2", "bob@example.com"),
    );
    let feed = Batches(std::sync::Mutex::new(
        [
            vec![record(&ada, Current), record(&bob, Current)],
            vec![
                record(&ada, Past),
                record(&bob, Past),
                record(&ada, Current),
            ],
        ]
        .into(),
    ));
    // Each submit waits a little: the person's next record would run meanwhile if the records
    // of one person were handled side by side.
    let (engine, _) = slow_submits(
        2,
        LifecycleRules {
            debounce: Duration::from_secs(600),
            ..rules_unlimited()
        },
    );
    engine.poll_source(&feed).await.unwrap();
    let r = engine.poll_source(&feed).await.unwrap();
    assert_eq!(r.records, 3);
    let started: Vec<&str> = r.started.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(started, ["e1", "e2"]);
    assert_eq!(r.returned, std::slice::from_ref(&ada.id));
    assert_eq!(r.cancelled, [r.started[0].1]);
    let ada_run = engine.status(r.started[0].1).await.unwrap();
    assert_eq!(ada_run.state, RunState::Cancelled);
    let bob_run = engine.status(r.started[1].1).await.unwrap();
    assert!(!bob_run.state.is_terminal(), "{:?}", bob_run.state);
}

/// The leavers of one batch (a reduction in force) are planned and submitted together, up to
/// 32 at a time, so a durable store commits their runs in shared transactions instead of one
/// fsync each; the report still lists them in the feed's order.
#[tokio::test(start_paused = true)]
async fn the_leavers_of_one_batch_are_submitted_together() {
    let people = 40;
    // A reduction in force the host confirmed: the limits allow it.
    let (engine, store) = slow_submits(people, rules_unlimited());
    let hr = ReferenceSource::new("hr").with_page_size(people);
    let id = |i: usize| format!("p{i:02}");
    for i in 0..people {
        hr.hire(person(&id(i), &format!("u{i}@example.com")));
    }
    engine.poll_source(&hr).await.unwrap();
    for i in 0..people {
        hr.terminate(&id(i), None);
    }
    let r = engine.poll_source(&hr).await.unwrap();
    let started: Vec<String> = r.started.iter().map(|(p, _)| p.to_string()).collect();
    assert_eq!(started, (0..people).map(id).collect::<Vec<_>>());
    assert_eq!(store.most_at_once("create_run"), 32);
    for (_, run) in &r.started {
        assert_eq!(
            store.inner.load_run(*run).await.unwrap().unwrap().state,
            RunState::Running
        );
    }
}

// --- Safety under real-world triggers ---------------------------------------------------------

/// A full-scan listing (an IdP's user list): reports what changed since the cursor's
/// fingerprints, and people no longer listed as gone (by id only: they vanished).
#[derive(Debug)]
struct Listing {
    name: &'static str,
    people: std::sync::Mutex<Vec<Person>>,
}

impl Listing {
    fn of(name: &'static str, people: &[Person]) -> Arc<Self> {
        Arc::new(Self {
            name,
            people: std::sync::Mutex::new(people.to_vec()),
        })
    }

    fn drop_ids(&self, ids: &[&str]) {
        self.people
            .lock()
            .unwrap()
            .retain(|p| !ids.contains(&p.id.as_str()));
    }
}

#[async_trait::async_trait]
impl offboard::SourceOfTruth for Listing {
    fn name(&self) -> &str {
        self.name
    }

    async fn changes(
        &self,
        cursor: Option<&offboard::Cursor>,
    ) -> offboard::Result<offboard::ChangeBatch> {
        use offboard::source::Fingerprints;
        let mut f: Fingerprints = offboard::Cursor::decode(cursor, self.name)?;
        let people = self.people.lock().unwrap().clone();
        let mut changes = Vec::new();
        let mut present = std::collections::BTreeSet::new();
        for p in people {
            present.insert(p.id.to_string());
            if f.observe(p.id.as_str(), offboard::Lifecycle::Current, &p.email) {
                changes.push(record(&p, offboard::Lifecycle::Current));
            }
        }
        for id in f.missing(&present) {
            f.forget(&id);
            changes.push(offboard::PersonRecord::gone(&id));
        }
        Ok(offboard::ChangeBatch {
            changes,
            next: offboard::Cursor::encode(&f),
            more: false,
        })
    }
}

fn staff(n: usize) -> Vec<Person> {
    (0..n)
        .map(|i| person(&format!("s{i:02}"), &format!("u{i}@example.com")))
        .collect()
}

/// An engine over `people` users `u{i}@example.com` with `source` polled every second.
fn staffed(
    people: usize,
    policy: &str,
    rules: LifecycleRules,
    source: Arc<dyn offboard::SourceOfTruth>,
) -> (Engine, Arc<MemoryStore>, Arc<ReferenceConnector>) {
    let store = Arc::new(MemoryStore::new());
    let idp = Arc::new(
        ReferenceConnector::builder("idp")
            .users((0..people).map(|i| ReferenceUser::employee(format!("u{i}@example.com"))))
            .build(),
    );
    let engine = Engine::builder()
        .store(store.clone())
        .connector(idp.clone())
        .policy(Policy::from_toml(policy).unwrap())
        .lifecycle(rules)
        .source(source, Duration::from_secs(1))
        .build()
        .unwrap();
    (engine, store, idp)
}

fn hr_export(dir: &std::path::Path, people: &[Person]) -> std::path::PathBuf {
    let path = dir.join("export.csv");
    let mut csv = String::from("employee_id,email,status\n");
    for p in people {
        csv.push_str(&format!("{},{},active\n", p.id, p.email));
    }
    std::fs::write(&path, csv).unwrap();
    path
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("offboard-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A header-only export (a truncated HR extract) reports everyone gone: the batch is held,
/// nobody is offboarded, and the next poll holds it again (the cursor did not move).
#[tokio::test(start_paused = true)]
async fn a_header_only_hr_export_is_held_and_offboards_nobody() {
    use offboard::source::hr::HrFeed;
    let dir = temp_dir("hr-held");
    let people = staff(40);
    let path = hr_export(&dir, &people);
    let feed = Arc::new(HrFeed::new("workday", &path));
    let (engine, store, idp) = staffed(40, POLICY, rules(), feed.clone());
    let mut events = engine.events();
    assert!(engine.poll_sources().await.unwrap().started.is_empty());
    let cursor = store.cursor("workday").await.unwrap();
    std::fs::write(&path, "employee_id,email,status\n").unwrap();
    for _ in 0..2 {
        let r = engine.poll_sources().await.unwrap();
        assert!(r.started.is_empty(), "{:?}", r.started);
        assert_eq!(r.held.len(), 1);
        // 5 % of 40 is 2 people.
        let h = &r.held[0];
        assert_eq!(
            (h.source.as_str(), h.count, h.limit, h.known),
            ("workday", 40, 2, Some(40))
        );
        assert_eq!(
            store.cursor("workday").await.unwrap(),
            cursor,
            "the cursor stays"
        );
    }
    for p in &people {
        assert!(runs_of(&store, p.id.as_str()).await.is_empty());
    }
    assert_eq!(idp.total_effects(), 0);
    let audit = store.audit(AuditQuery::all()).await.unwrap();
    let held: Vec<&serde_json::Value> = audit
        .iter()
        .filter_map(|e| match &e.kind {
            AuditKind::Note { name, data } if name == "batch_held" => Some(data),
            _ => None,
        })
        .collect();
    assert_eq!(held.len(), 1, "audited once, held on every poll");
    assert_eq!(
        (&held[0]["source"], &held[0]["count"], &held[0]["limit"]),
        (
            &serde_json::json!("workday"),
            &serde_json::json!(40),
            &serde_json::json!(2)
        )
    );
    match events.try_recv().unwrap() {
        EngineEvent::BatchHeld {
            source,
            count,
            limit,
            ..
        } => assert_eq!((source.as_str(), count, limit), ("workday", 40, 2)),
        other => panic!("{other:?}"),
    }
    assert!(events.try_recv().is_err(), "one event per distinct batch");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A release (recorded with who) lets the held batch through on the next poll; a later,
/// different mass departure is held again.
#[tokio::test(start_paused = true)]
async fn a_released_hold_lets_that_batch_through_and_only_that_batch() {
    let people = staff(10);
    let listing = Listing::of("okta", &people);
    let (engine, store, idp) = staffed(10, POLICY, rules(), listing.clone());
    assert_eq!(
        engine
            .release_hold("okta", "it@example.com")
            .await
            .unwrap_err()
            .kind(),
        offboard::ErrorKind::NotFound
    );
    engine.poll_sources().await.unwrap();
    listing.drop_ids(&["s01", "s04", "s07"]);
    assert_eq!(engine.poll_sources().await.unwrap().held.len(), 1);
    let mut events = engine.events();
    let hold = engine.release_hold("okta", "it@example.com").await.unwrap();
    assert_eq!(hold.released_by.as_deref(), Some("it@example.com"));
    assert!(matches!(
        events.try_recv().unwrap(),
        EngineEvent::HoldReleased { by, count: 3, .. } if by == "it@example.com"
    ));
    let audit = store.audit(AuditQuery::all()).await.unwrap();
    let released = audit.last().unwrap();
    assert_eq!(released.actor, "it@example.com");
    assert!(matches!(&released.kind, AuditKind::Note { name, data }
        if name == "hold_released" && data["count"] == 3 && data["source"] == "okta"));

    let r = engine.poll_sources().await.unwrap();
    let mut started: Vec<&str> = r.started.iter().map(|(p, _)| p.as_str()).collect();
    started.sort();
    assert_eq!(started, ["s01", "s04", "s07"]);
    assert!(r.held.is_empty());
    assert_eq!(
        engine.hold("okta").await.unwrap(),
        None,
        "the release is used up"
    );
    engine.run_due().await.unwrap();
    assert_eq!(
        idp.user_by_login("u4@example.com").unwrap().status,
        AccountStatus::Suspended
    );

    // Two more vanish: 2 of the 7 left is over 5 % again, and the old release does not cover it.
    listing.drop_ids(&["s02", "s03"]);
    let r = engine.poll_sources().await.unwrap();
    assert!(r.started.is_empty());
    assert_eq!(r.held[0].count, 2);
    assert_eq!(r.held[0].known, Some(7));
    assert!(runs_of(&store, "s02").await.is_empty());
}

/// 30 % of an IdP's listing vanishing in one poll (an outage listing fewer people) is held.
#[tokio::test(start_paused = true)]
async fn a_thirty_percent_drop_in_an_idp_listing_is_held() {
    let people = staff(10);
    let listing = Listing::of("okta", &people);
    let (engine, store, idp) = staffed(10, POLICY, rules(), listing.clone());
    engine.poll_sources().await.unwrap();
    listing.drop_ids(&["s01", "s04", "s07"]);
    let r = engine.poll_sources().await.unwrap();
    assert!(r.started.is_empty(), "{:?}", r.started);
    assert_eq!((r.held[0].count, r.held[0].limit), (3, 1));
    for id in ["s01", "s04", "s07"] {
        assert!(runs_of(&store, id).await.is_empty());
    }
    assert_eq!(idp.total_effects(), 0);
}

const CRITICAL_POLICY: &str = r#"
critical = ["idp.suspend"]

[apps.idp]
method = "automatic"
actions = ["idp.suspend"]
"#;

/// Someone who merely vanished from a listing is never confirmed automatically for critical
/// actions, even with `auto_confirm_critical`; a terminated person is.
#[tokio::test(start_paused = true)]
async fn a_vanished_person_never_gets_critical_actions_auto_confirmed() {
    let people = staff(40);
    let listing = Listing::of("okta", &people);
    let (engine, store, _) = staffed(
        40,
        CRITICAL_POLICY,
        LifecycleRules {
            auto_confirm_critical: true,
            ..rules()
        },
        listing.clone(),
    );
    engine.poll_sources().await.unwrap();
    listing.drop_ids(&["s03"]);
    let r = engine.poll_sources().await.unwrap();
    // The run starts with its critical action held for an admin's confirmation.
    assert_eq!(r.needs_confirmation.len(), 1);
    assert_eq!(r.needs_confirmation[0].0.as_str(), "s03");
    assert_eq!(r.started.len(), 1, "{:?}", r.started);
    let run = engine.status(r.started[0].1).await.unwrap();
    assert!(
        run.tasks
            .iter()
            .all(|t| matches!(t.state, offboard::TaskState::Held)),
        "{:?}",
        run.tasks.iter().map(|t| &t.state).collect::<Vec<_>>()
    );
    assert_eq!(runs_of(&store, "s03").await.len(), 1);
}

const STAGED_POLICY: &str = r#"
[stages]
last_day = "0d"
cleanup = "30d"

[apps.idp]
method = "automatic"
actions = ["idp.suspend", { name = "idp.delete", stage = "cleanup" }]
"#;

/// A person rehired after the first stage ran: the later stages are cancelled (the delete never
/// happens), what ran is not rolled back, and the return is reported.
#[tokio::test(start_paused = true)]
async fn a_rehire_after_the_first_stage_cancels_the_later_stages() {
    let store = Arc::new(MemoryStore::new());
    let hr = Arc::new(ReferenceSource::new("hr"));
    let idp = Arc::new(
        ReferenceConnector::builder("idp")
            .user(ReferenceUser::employee("ada@example.com"))
            .build(),
    );
    let engine = Engine::builder()
        .store(store.clone())
        .connector(idp.clone())
        .policy(Policy::from_toml(STAGED_POLICY).unwrap())
        .lifecycle(LifecycleRules {
            auto_confirm_critical: true,
            ..rules()
        })
        .source(hr.clone(), Duration::from_secs(1))
        .build()
        .unwrap();
    hr.hire(person("e1", "ada@example.com"));
    engine.poll_sources().await.unwrap();
    hr.terminate("e1", None);
    let run_id = engine.poll_sources().await.unwrap().started[0].1;
    engine.run_due().await.unwrap();
    assert_eq!(
        idp.user_by_login("ada@example.com").unwrap().status,
        AccountStatus::Suspended
    );
    hr.rehire("e1");
    let mut events = engine.events();
    let r = engine.poll_sources().await.unwrap();
    assert_eq!(r.returned.len(), 1);
    assert_eq!(r.cancelled, [run_id]);
    match events.try_recv().unwrap() {
        EngineEvent::PersonReturned {
            person,
            cancelled_runs,
            not_rolled_back,
            ..
        } => {
            assert_eq!(person.as_str(), "e1");
            assert_eq!(cancelled_runs, [run_id]);
            assert_eq!(not_rolled_back, ["idp.suspend"]);
        }
        other => panic!("{other:?}"),
    }
    let audit = store.audit(AuditQuery::all()).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| matches!(&e.kind, AuditKind::Note { name, data }
        if name == "person_returned" && data["not_rolled_back"][0] == "idp.suspend"))
    );
    tokio::time::advance(Duration::from_secs(31 * 86400)).await;
    engine.run_due().await.unwrap();
    let run = engine.status(run_id).await.unwrap();
    assert_eq!(run.state, RunState::Cancelled);
    let ada = idp.user_by_login("ada@example.com").unwrap();
    assert_eq!(ada.status, AccountStatus::Suspended, "never rolled back");
    assert_eq!(idp.effects(&ada.external_id, "idp.delete"), 0, "no delete");
}

/// A termination date the calendar cannot reach parks that person; the others in the batch
/// are offboarded, and the watcher lives on.
#[tokio::test(start_paused = true)]
async fn an_overflowing_termination_date_parks_one_person_and_the_batch_goes_on() {
    use offboard::source::hr::HrFeed;
    let dir = temp_dir("hr-overflow");
    let path = dir.join("export.csv");
    std::fs::write(
        &path,
        "employee_id,email,status\ne1,ada@example.com,active\ne2,bob@example.com,active\n",
    )
    .unwrap();
    let feed = Arc::new(HrFeed::new("workday", &path));
    let w = world_with(
        Arc::new(MemoryStore::new()),
        Arc::new(ReferenceSource::new("hr")),
        rules(),
        vec![],
    );
    let engine = Engine::builder()
        .store(w.store.clone())
        .connector(w.idp.clone())
        .policy(Policy::from_toml(POLICY).unwrap())
        .lifecycle(LifecycleRules {
            debounce: Duration::from_secs(86400),
            ..rules_unlimited()
        })
        .source(feed, Duration::from_secs(1))
        .build()
        .unwrap();
    engine.poll_sources().await.unwrap();
    std::fs::write(
        &path,
        "employee_id,email,status,termination_date\n\
         e1,ada@example.com,terminated,+262142-12-31\n\
         e2,bob@example.com,terminated,2020-01-01\n",
    )
    .unwrap();
    let r = engine.poll_sources().await.unwrap();
    let started: Vec<&str> = r.started.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(started, ["e2"]);
    assert_eq!(r.parked.len(), 1);
    assert_eq!(r.parked[0].0.as_str(), "e1");
    tokio::time::advance(Duration::from_secs(86401)).await;
    engine.run_due().await.unwrap();
    assert_eq!(
        w.idp.user_by_login("bob@example.com").unwrap().status,
        AccountStatus::Suspended
    );
    let events = w.store.audit(AuditQuery::all()).await.unwrap();
    assert!(events.iter().any(|e| matches!(&e.kind,
        AuditKind::Note { name, data } if name == "person_parked"
            && data["person"] == "e1"
            && data["error"].as_str().unwrap().contains("termination"))));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A source whose first poll panics: the loop survives, reports it, and the next poll
/// offboards a real leaver.
#[derive(Debug)]
struct PanicsOnce {
    inner: Arc<ReferenceSource>,
    panicked: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl offboard::SourceOfTruth for PanicsOnce {
    fn name(&self) -> &str {
        "hr"
    }

    async fn changes(
        &self,
        cursor: Option<&offboard::Cursor>,
    ) -> offboard::Result<offboard::ChangeBatch> {
        if !self
            .panicked
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            panic!("a bug in a source");
        }
        self.inner.changes(cursor).await
    }
}

#[tokio::test(start_paused = true)]
async fn the_watch_loop_survives_a_panicking_poll() {
    let hr = Arc::new(ReferenceSource::new("hr"));
    hr.hire(person("e1", "ada@example.com"));
    let source = Arc::new(PanicsOnce {
        inner: hr.clone(),
        panicked: std::sync::atomic::AtomicBool::new(false),
    });
    let w = world(rules());
    let engine = Engine::builder()
        .store(w.store.clone())
        .connector(w.idp.clone())
        .policy(Policy::from_toml(POLICY).unwrap())
        .lifecycle(rules())
        .source(source, Duration::from_secs(1))
        .build()
        .unwrap();
    let mut events = engine.events();
    let workers = engine.start();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        matches!(events.try_recv().unwrap(), EngineEvent::PollFailed { source, .. } if source == "hr")
    );
    hr.terminate("e1", None);
    tokio::time::sleep(Duration::from_secs(5)).await;
    workers.shutdown().await;
    assert_eq!(
        w.idp.user_by_login("ada@example.com").unwrap().status,
        AccountStatus::Suspended,
        "the leaver after the bad poll is offboarded"
    );
    let events = w.store.audit(AuditQuery::all()).await.unwrap();
    assert!(events.iter().any(|e| matches!(&e.kind,
        AuditKind::Note { name, data } if name == "poll_failed"
            && data["error"].as_str().unwrap().contains("a bug in a source"))));
}
