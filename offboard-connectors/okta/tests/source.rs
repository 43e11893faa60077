//! Okta as a source of truth, against the simulated tenant and the engine's watch loop: the
//! requests sent, status changes and deletions becoming runs, externals, duplicates, and a
//! restart in the middle of a scan.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::connector;
use offboard_core::engine::LifecycleRules;
use offboard_core::policy::DepartureLimits;
use offboard_core::source::SourceOfTruth;
use offboard_core::{
    AuditKind, AuditQuery, Engine, ErrorKind, Lifecycle, MemoryStore, Policy, RunQuery, RunState,
    Secret, Store,
};
use offboard_okta::OktaSource;
use offboard_testkit::sim::okta::{GroupType, NewUser, OktaTenant};

const POLICY: &str = r#"
[apps.okta]
method = "automatic"
actions = ["okta.clear_sessions", "okta.revoke_grants", "okta.remove_groups"]
"#;

struct World {
    tenant: Arc<OktaTenant>,
    store: Arc<MemoryStore>,
    engine: Engine,
    source: Arc<OktaSource>,
}

/// Without the mass-departure limits: these small tenants see several people leave in one
/// poll (the default 5 % of a handful of people is one per poll).
fn rules() -> LifecycleRules {
    LifecycleRules {
        domains: vec!["example.com".into()],
        departures: DepartureLimits::unlimited(),
        ..LifecycleRules::default()
    }
}

fn world_on(tenant: Arc<OktaTenant>, store: Arc<MemoryStore>, source: OktaSource) -> World {
    let source = Arc::new(source);
    let engine = Engine::builder()
        .store(store.clone())
        .connector(Arc::new(connector(&tenant)))
        .policy(Policy::from_toml(POLICY).unwrap())
        .lifecycle(rules())
        .idle_poll(Duration::from_millis(100))
        .source(source.clone(), Duration::from_secs(1))
        .build()
        .unwrap();
    World {
        tenant,
        store,
        engine,
        source,
    }
}

async fn world() -> World {
    let tenant = Arc::new(OktaTenant::start().await);
    let source = OktaSource::for_connector(&connector(&tenant));
    world_on(tenant, Arc::new(MemoryStore::new()), source)
}

impl World {
    async fn runs_of(&self, id: &str) -> Vec<offboard_core::RunSummary> {
        self.store.list_runs(RunQuery::person(id)).await.unwrap()
    }
}

#[tokio::test]
async fn a_user_suspended_in_okta_is_offboarded_by_the_watch_loop() {
    let w = world().await;
    let engineering = w.tenant.add_group("Engineering", GroupType::OktaGroup);
    let ada = w.tenant.add_user(NewUser {
        groups: vec![engineering.clone()],
        sessions: 2,
        grants: vec![("0oaClient".into(), "okta.users.read".into())],
        ..NewUser::active("ada@example.com")
    });
    let bob = w.tenant.add_user(NewUser::active("bob@example.com"));
    let first = w.engine.poll_sources().await.unwrap();
    assert_eq!(first.records, 2);
    assert!(first.started.is_empty(), "current people start nothing");

    let workers = w.engine.start();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(w.tenant.set_status(&ada, "SUSPENDED"));
    let run_id = loop {
        if let Some(r) = w.runs_of(&ada).await.first() {
            break r.id;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let run = tokio::time::timeout(Duration::from_secs(20), w.engine.wait(run_id))
        .await
        .expect("the run ends")
        .unwrap();
    workers.shutdown().await;
    assert_eq!(run.state, RunState::Completed);
    assert_eq!(run.person.email, "ada@example.com");
    let after = w.tenant.user(&ada).unwrap();
    assert!(!after.groups.contains(&engineering), "{after:?}");
    assert_eq!(after.sessions, 0);
    assert!(after.grants.is_empty());
    assert!(w.runs_of(&bob).await.is_empty(), "bob is still current");
    // Nothing changed since: a poll reads the overlap again and reports nothing.
    let again = w.engine.poll_sources().await.unwrap();
    assert_eq!((again.records, again.started.len()), (0, 0));
}

#[tokio::test]
async fn each_poll_sends_the_official_incremental_search() {
    let w = world().await;
    let ada = w.tenant.add_user(NewUser::active("ada@example.com"));
    w.engine.poll_sources().await.unwrap();
    let stamp = w.tenant.last_updated(&ada).unwrap();
    w.tenant.clear_requests();
    w.engine.poll_sources().await.unwrap();
    let requests = w.tenant.requests();
    assert_eq!(requests.len(), 1, "one page, no full scan: {requests:?}");
    let r = &requests[0];
    assert_eq!(r.line(), "GET /api/v1/users");
    let search = r.query_param("search").unwrap();
    let from = search
        .strip_prefix("lastUpdated gt \"")
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or_else(|| panic!("{search}"));
    let from = chrono::DateTime::parse_from_rfc3339(from).unwrap();
    let last = chrono::DateTime::parse_from_rfc3339(&stamp).unwrap();
    assert_eq!(last - from, chrono::Duration::seconds(60), "the overlap");
    assert_eq!(r.query_param("sortBy"), Some("lastUpdated"));
    assert_eq!(r.query_param("sortOrder"), Some("asc"));
    assert_eq!(r.query_param("limit"), Some("200"));
}

#[tokio::test]
async fn deactivated_and_deleted_users_are_past_externals_never_trigger() {
    let tenant = Arc::new(OktaTenant::start().await);
    let source =
        OktaSource::for_connector(&connector(&tenant)).with_full_scan_every(Duration::ZERO);
    let w = world_on(tenant, Arc::new(MemoryStore::new()), source);
    let ada = w.tenant.add_user(NewUser::active("ada@example.com"));
    let cy = w.tenant.add_user(NewUser::active("cy@example.com"));
    let ext = w
        .tenant
        .add_user(NewUser::active("contractor@partner.example.org"));
    let old = w.tenant.add_user(NewUser {
        status: "DEPROVISIONED".into(),
        ..NewUser::active("old@example.com")
    });
    let first = w.engine.poll_sources().await.unwrap();
    assert_eq!((first.records, first.external), (4, 1));
    assert!(
        first.started.is_empty(),
        "an old leaver is recorded, not offboarded"
    );

    assert!(w.tenant.deactivate_user(&ada));
    assert!(w.tenant.deactivate_user(&ext));
    // Deactivated and deleted between two polls: never seen deactivated.
    w.tenant.remove_user(&cy);
    // Hired and deactivated between two polls: read (a full scan still reports what is new),
    // recorded as a leaver first seen past.
    let dan = w.tenant.add_user(NewUser::active("dan@example.com"));
    assert!(w.tenant.deactivate_user(&dan));
    let r = w.engine.poll_sources().await.unwrap();
    assert_eq!(r.records, 4, "ada, the contractor, cy and dan: {r:?}");
    assert!(w.runs_of(&dan).await.is_empty(), "first seen past");
    let mut who: Vec<&str> = r.started.iter().map(|(p, _)| p.as_str()).collect();
    who.sort();
    let mut want = vec![ada.as_str(), cy.as_str()];
    want.sort();
    assert_eq!(who, want);
    assert_eq!(r.external, 1, "the contractor is external");
    assert!(w.runs_of(&ext).await.is_empty(), "externals never trigger");
    assert!(w.runs_of(&old).await.is_empty());
    let cy_run = w.engine.status(w.runs_of(&cy).await[0].id).await.unwrap();
    assert_eq!(
        cy_run.person.email, "cy@example.com",
        "the address known before"
    );
    let deleted_check = w
        .tenant
        .requests()
        .into_iter()
        .filter(|q| q.line() == format!("GET /api/v1/users/{cy}"))
        .count();
    assert!(deleted_check >= 1, "the missing user was read by id");
    // Another full scan reports nothing new.
    let r = w.engine.poll_sources().await.unwrap();
    assert_eq!((r.records, r.started.len()), (0, 0));
}

#[tokio::test]
async fn a_second_source_saying_gone_is_suppressed() {
    let tenant = Arc::new(OktaTenant::start().await);
    let okta = connector(&tenant);
    let second = Arc::new(OktaSource::for_connector(&okta).with_name("okta-eu"));
    let store = Arc::new(MemoryStore::new());
    let engine = Engine::builder()
        .store(store.clone())
        .connector(Arc::new(okta))
        .policy(Policy::from_toml(POLICY).unwrap())
        .lifecycle(LifecycleRules {
            debounce: Duration::from_secs(600),
            ..rules()
        })
        .source(
            Arc::new(OktaSource::for_connector(&connector(&tenant))),
            Duration::from_secs(1),
        )
        .source(second, Duration::from_secs(1))
        .build()
        .unwrap();
    let ada = tenant.add_user(NewUser::active("ada@example.com"));
    engine.poll_sources().await.unwrap();
    tenant.set_status(&ada, "SUSPENDED");
    let r = engine.poll_sources().await.unwrap();
    assert_eq!((r.started.len(), r.suppressed.len()), (1, 1));
    assert_eq!(
        store
            .list_runs(RunQuery::person(ada.as_str()))
            .await
            .unwrap()
            .len(),
        1
    );
    let events = store.audit(AuditQuery::all()).await.unwrap();
    assert!(events.iter().any(
        |e| matches!(&e.kind, AuditKind::Suppressed { person, .. } if person.as_str() == ada)
    ));
    // Deactivated later while the run is open: still past, nothing new.
    tenant.deactivate_user(&ada);
    let r = engine.poll_sources().await.unwrap();
    assert_eq!((r.started.len(), r.records), (0, 2));
    assert_eq!(
        store
            .list_runs(RunQuery::person(ada.as_str()))
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_restart_mid_scan_misses_nothing_and_repeats_nothing() {
    let tenant = Arc::new(OktaTenant::start().await);
    let store = Arc::new(MemoryStore::new());
    let paged = || OktaSource::for_connector(&connector(&tenant)).with_page_size(2);
    let first = world_on(tenant.clone(), store.clone(), paged());
    let ids: Vec<String> = ["ada", "bob", "cy", "dee", "eve"]
        .iter()
        .map(|n| tenant.add_user(NewUser::active(format!("{n}@example.com"))))
        .collect();
    let sync = first.engine.poll_sources().await.unwrap();
    assert_eq!(sync.records, 5);
    for id in &ids {
        tenant.set_status(id, "SUSPENDED");
    }
    // The first engine handles one page of two, then "crashes".
    let partial = first
        .engine
        .poll_source_pages(first.source.as_ref(), 1)
        .await
        .unwrap();
    assert_eq!(partial.started.len(), 2);
    drop(first);
    // A new engine on the same store; Okta fails once.
    let second = world_on(tenant.clone(), store.clone(), paged());
    tenant.fail_next(1, 500);
    let e = second.engine.poll_sources().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    let rest = second.engine.poll_sources().await.unwrap();
    assert_eq!(rest.started.len(), 3);
    for id in &ids {
        assert_eq!(
            second.runs_of(id).await.len(),
            1,
            "{id} has exactly one run"
        );
    }
    // The resumed page came from the persisted next link.
    let after = tenant
        .requests()
        .iter()
        .filter(|r| r.line() == "GET /api/v1/users")
        .filter_map(|r| r.query_param("after").map(str::to_owned))
        .count();
    assert!(after >= 2, "pages followed through `after`");
    let r = second.engine.poll_sources().await.unwrap();
    assert_eq!((r.records, r.started.len()), (0, 0));
}

#[tokio::test]
async fn the_source_reads_pages_and_refuses_foreign_cursors() {
    let tenant = Arc::new(OktaTenant::start().await);
    let source = OktaSource::for_connector(&connector(&tenant)).with_page_size(2);
    for n in ["a", "b", "c"] {
        tenant.add_user(NewUser::active(format!("{n}@example.com")));
    }
    let b1 = source.changes(None).await.unwrap();
    assert_eq!((b1.changes.len(), b1.more), (2, true));
    // The same cursor gives the same changes (a crash before persisting repeats them).
    let b2 = source.changes(Some(&b1.next)).await.unwrap();
    let b2again = source.changes(Some(&b1.next)).await.unwrap();
    assert_eq!(b2.changes, b2again.changes);
    assert_eq!((b2.changes.len(), b2.more), (1, false));
    assert!(
        b1.changes
            .iter()
            .chain(&b2.changes)
            .all(|r| r.lifecycle == Lifecycle::Current)
    );
    let bad = source
        .changes(Some(&offboard_core::Cursor("not json".into())))
        .await
        .unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::InvalidInput);
    // A next link elsewhere is never followed.
    let foreign = offboard_core::Cursor(
        serde_json::json!({"next": "https://evil.example.net/api/v1/users?after=x"}).to_string(),
    );
    let e = source.changes(Some(&foreign)).await.unwrap_err();
    assert!(e.to_string().contains("not followed"), "{e}");
    let other_path = offboard_core::Cursor(
        serde_json::json!({"next": format!("{}/api/v1/groups?after=x", tenant.uri())}).to_string(),
    );
    assert!(source.changes(Some(&other_path)).await.is_err());
}

#[test]
fn debug_never_shows_the_token() {
    let source = OktaSource::from_client(
        offboard_http::HttpClient::builder("https://example.okta.com")
            .token_provider(offboard_http::StaticToken::okta_ssws(Secret::new(
                "00VerySecretToken",
            )))
            .build()
            .unwrap(),
    );
    let d = format!("{source:?}");
    assert!(!d.contains("00VerySecretToken"), "{d}");
}

/// A person who leaves gets their Okta manager (`profile.managerId`, read once per poll) as
/// the run's manager, so mail and files go to them; a manager id naming nobody is left out.
#[tokio::test]
async fn a_leaver_gets_their_okta_manager() {
    let w = world().await;
    let boss = w.tenant.add_user(NewUser::active("boss@example.com"));
    let ada = w.tenant.add_user(NewUser {
        manager_id: Some(boss.clone()),
        ..NewUser::active("ada@example.com")
    });
    let cy = w.tenant.add_user(NewUser {
        manager_id: Some(boss.clone()),
        ..NewUser::active("cy@example.com")
    });
    let dee = w.tenant.add_user(NewUser {
        manager_id: Some("00unobody0000000000".into()),
        ..NewUser::active("dee@example.com")
    });
    w.engine.poll_sources().await.unwrap();
    for id in [&ada, &cy, &dee] {
        assert!(w.tenant.set_status(id, "SUSPENDED"));
    }
    w.tenant.clear_requests();
    let report = w.engine.poll_sources().await.unwrap();
    assert_eq!(report.started.len(), 3, "{report:?}");
    let manager_reads = w
        .tenant
        .requests()
        .iter()
        .filter(|r| r.line() == format!("GET /api/v1/users/{boss}"))
        .count();
    assert_eq!(manager_reads, 1, "one read per manager per poll");
    for (id, expected) in [
        (&ada, Some("boss@example.com")),
        (&cy, Some("boss@example.com")),
        (&dee, None),
    ] {
        let summary = w.runs_of(id).await.remove(0);
        let run = w.store.load_run(summary.id).await.unwrap().unwrap();
        assert_eq!(
            run.person.manager.as_ref().map(|m| m.email.as_str()),
            expected,
            "{id}"
        );
        if expected.is_some() {
            assert_eq!(
                run.person
                    .manager
                    .as_ref()
                    .and_then(|m| m.id.as_ref())
                    .map(|p| p.as_str()),
                Some(boss.as_str())
            );
        }
    }
}
