//! Google Workspace as a source of truth, against the simulated tenant and the engine's watch
//! loop: the requests sent, suspension, archiving and deletion becoming runs, externals,
//! duplicates, and a restart in the middle of a scan.

use std::sync::Arc;
use std::time::Duration;

use offboard_core::engine::LifecycleRules;
use offboard_core::policy::DepartureLimits;
use offboard_core::source::SourceOfTruth;
use offboard_core::{
    Cursor, Engine, ErrorKind, Lifecycle, MemoryStore, Policy, RunQuery, RunState, Secret, Store,
};
use offboard_google::{GoogleConfig, GoogleConnector, GoogleSource};
use offboard_testkit::sim::google::{GoogleTenant, NewUser};

const POLICY: &str = r#"
[apps.google]
method = "automatic"
actions = ["google.sign_out", "google.revoke_tokens", "google.delete_asps"]
"#;

fn connector(tenant: &GoogleTenant) -> GoogleConnector {
    GoogleConfig::new()
        .with_base_url(tenant.uri())
        .with_allow_plain_http(true)
        .with_access_token(Secret::new(tenant.token()))
        .build()
        .unwrap()
}

struct World {
    tenant: Arc<GoogleTenant>,
    store: Arc<MemoryStore>,
    engine: Engine,
    source: Arc<GoogleSource>,
}

fn world_on(tenant: Arc<GoogleTenant>, store: Arc<MemoryStore>, source: GoogleSource) -> World {
    let source = Arc::new(source);
    let engine = Engine::builder()
        .store(store.clone())
        .connector(Arc::new(connector(&tenant)))
        .policy(Policy::from_toml(POLICY).unwrap())
        .lifecycle(LifecycleRules {
            domains: vec!["example.com".into()],
            // Several of this small tenant's people leave in one poll.
            departures: DepartureLimits::unlimited(),
            ..LifecycleRules::default()
        })
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
    let tenant = Arc::new(GoogleTenant::start().await);
    let source = GoogleSource::for_connector(&connector(&tenant));
    world_on(tenant, Arc::new(MemoryStore::new()), source)
}

impl World {
    async fn runs_of(&self, id: &str) -> usize {
        self.store
            .list_runs(RunQuery::person(id))
            .await
            .unwrap()
            .len()
    }
}

#[tokio::test]
async fn a_user_suspended_in_google_is_offboarded_by_the_watch_loop() {
    let w = world().await;
    let ada = w.tenant.add_user(NewUser {
        tokens: vec![("client-1.apps.googleusercontent.com".into(), "Notes".into())],
        sessions: 2,
        ..NewUser::active("ada@example.com")
    });
    let bob = w.tenant.add_user(NewUser::active("bob@example.com"));
    let first = w.engine.poll_sources().await.unwrap();
    assert_eq!((first.records, first.started.len()), (2, 0));

    let workers = w.engine.start();
    tokio::time::sleep(Duration::from_millis(200)).await;
    w.tenant.set_suspended(&ada, true);
    let run_id = loop {
        if let Some(r) = w
            .store
            .list_runs(RunQuery::person(ada.as_str()))
            .await
            .unwrap()
            .first()
        {
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
    assert!(after.tokens.is_empty(), "{after:?}");
    assert_eq!(after.sessions, 0);
    assert_eq!(w.runs_of(&bob).await, 0, "bob is still current");
    // Nothing changed since: a full scan reports nothing.
    let again = w.engine.poll_sources().await.unwrap();
    assert_eq!((again.records, again.started.len()), (0, 0));
}

#[tokio::test]
async fn each_poll_lists_every_user_with_the_official_call() {
    let w = world().await;
    w.tenant.add_user(NewUser::active("ada@example.com"));
    w.tenant.clear_requests();
    w.engine.poll_sources().await.unwrap();
    let requests = w.tenant.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let r = &requests[0];
    assert_eq!(r.line(), "GET /admin/directory/v1/users");
    assert_eq!(r.query_param("customer"), Some("my_customer"));
    assert_eq!(r.query_param("maxResults"), Some("500"));
    assert_eq!(r.query_param("pageToken"), None);

    let by_domain = GoogleSource::for_connector(&connector(&w.tenant)).with_domain("example.com");
    w.tenant.clear_requests();
    let b = by_domain.changes(None).await.unwrap();
    assert_eq!(b.changes.len(), 1);
    let r = &w.tenant.requests()[0];
    assert_eq!(
        (r.query_param("domain"), r.query_param("customer")),
        (Some("example.com"), None)
    );
}

#[tokio::test]
async fn suspended_archived_and_deleted_users_are_past_externals_never_trigger() {
    let w = world().await;
    let ada = w.tenant.add_user(NewUser::active("ada@example.com"));
    let bob = w.tenant.add_user(NewUser::active("bob@example.com"));
    let cy = w.tenant.add_user(NewUser::active("cy@example.com"));
    let ext = w
        .tenant
        .add_user(NewUser::active("contractor@partner.example.org"));
    let old = w.tenant.add_user(NewUser {
        suspended: true,
        ..NewUser::active("old@example.com")
    });
    let first = w.engine.poll_sources().await.unwrap();
    assert_eq!((first.records, first.external), (5, 1));
    assert!(
        first.started.is_empty(),
        "an old leaver is recorded, not offboarded"
    );

    w.tenant.set_suspended(&ada, true);
    w.tenant.set_archived(&bob, true);
    w.tenant.set_suspended(&ext, true);
    w.tenant.remove_user(&cy);
    w.tenant.clear_requests();
    let r = w.engine.poll_sources().await.unwrap();
    let mut who: Vec<&str> = r.started.iter().map(|(p, _)| p.as_str()).collect();
    who.sort();
    let mut want = vec![ada.as_str(), bob.as_str(), cy.as_str()];
    want.sort();
    assert_eq!(who, want);
    assert_eq!(r.external, 1, "the contractor is external");
    assert_eq!(w.runs_of(&ext).await, 0, "externals never trigger");
    assert_eq!(w.runs_of(&old).await, 0);
    let cy_run = w
        .store
        .list_runs(RunQuery::person(cy.as_str()))
        .await
        .unwrap()[0]
        .id;
    let cy_run = w.engine.status(cy_run).await.unwrap();
    assert_eq!(
        cy_run.person.email, "cy@example.com",
        "the address known before"
    );
    let lines: Vec<String> = w.tenant.requests().iter().map(|q| q.line()).collect();
    assert!(
        lines.contains(&format!("GET /admin/directory/v1/users/{cy}")),
        "the missing user was read by id: {lines:?}"
    );
    // The next scan reports nothing new, and reads nobody by id.
    w.tenant.clear_requests();
    let r = w.engine.poll_sources().await.unwrap();
    assert_eq!((r.records, r.started.len()), (0, 0));
    assert_eq!(w.tenant.requests().len(), 1);
}

#[tokio::test]
async fn a_second_source_saying_gone_is_suppressed() {
    let tenant = GoogleTenant::start().await;
    let store = Arc::new(MemoryStore::new());
    let google = connector(&tenant);
    let second = GoogleSource::for_connector(&google).with_name("google-eu");
    let engine = Engine::builder()
        .store(store.clone())
        .connector(Arc::new(connector(&tenant)))
        .policy(Policy::from_toml(POLICY).unwrap())
        .lifecycle(LifecycleRules {
            domains: vec!["example.com".into()],
            debounce: Duration::from_secs(600),
            ..LifecycleRules::default()
        })
        .source(
            Arc::new(GoogleSource::for_connector(&google)),
            Duration::from_secs(1),
        )
        .source(Arc::new(second), Duration::from_secs(1))
        .build()
        .unwrap();
    let ada = tenant.add_user(NewUser::active("ada@example.com"));
    engine.poll_sources().await.unwrap();
    tenant.set_suspended(&ada, true);
    let r = engine.poll_sources().await.unwrap();
    assert_eq!((r.started.len(), r.suppressed.len()), (1, 1));
    // Archived as well: still past, the same verdict, nothing reported again.
    tenant.set_archived(&ada, true);
    let r = engine.poll_sources().await.unwrap();
    assert_eq!((r.records, r.started.len()), (0, 0));
    // A repeat of everything (a cursor lost): past again, but no new run.
    store
        .put_cursor("google", &Cursor("{}".into()))
        .await
        .unwrap();
    let r = engine.poll_sources().await.unwrap();
    assert_eq!((r.records, r.started.len()), (1, 0));
    let runs = store
        .list_runs(RunQuery::person(ada.as_str()))
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
}

#[tokio::test]
async fn a_restart_mid_scan_misses_nothing_and_repeats_nothing() {
    let tenant = Arc::new(GoogleTenant::start().await);
    let store = Arc::new(MemoryStore::new());
    let paged = || GoogleSource::for_connector(&connector(&tenant)).with_page_size(2);
    let first = world_on(tenant.clone(), store.clone(), paged());
    let ids: Vec<String> = ["ada", "bob", "cy", "dee", "eve"]
        .iter()
        .map(|n| tenant.add_user(NewUser::active(format!("{n}@example.com"))))
        .collect();
    assert_eq!(first.engine.poll_sources().await.unwrap().records, 5);
    for id in &ids {
        tenant.set_suspended(id, true);
    }
    // The first engine handles one page of two, then "crashes".
    let partial = first
        .engine
        .poll_source_pages(first.source.as_ref(), 1)
        .await
        .unwrap();
    assert_eq!(partial.started.len(), 2);
    drop(first);
    // A new engine on the same store; Google fails once.
    let second = world_on(tenant.clone(), store.clone(), paged());
    tenant.fail_next(1, 503);
    let e = second.engine.poll_sources().await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    tenant.clear_requests();
    let rest = second.engine.poll_sources().await.unwrap();
    assert_eq!(rest.started.len(), 3);
    for id in &ids {
        assert_eq!(second.runs_of(id).await, 1, "{id} has exactly one run");
    }
    let first_request = &tenant.requests()[0];
    assert!(
        first_request.query_param("pageToken").is_some(),
        "the scan resumed at the saved page"
    );
    let r = second.engine.poll_sources().await.unwrap();
    assert_eq!((r.records, r.started.len()), (0, 0));
}

#[tokio::test]
async fn the_source_pages_and_refuses_foreign_cursors() {
    let tenant = GoogleTenant::start().await;
    let source = GoogleSource::for_connector(&connector(&tenant)).with_page_size(2);
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
        .changes(Some(&Cursor("not json".into())))
        .await
        .unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::InvalidInput);
    // A page token Google refuses restarts the scan instead of failing forever.
    let stale = Cursor(
        serde_json::json!({"known": {}, "scan": {"page_token": "bogus", "present": []}})
            .to_string(),
    );
    let b = source.changes(Some(&stale)).await.unwrap();
    assert_eq!((b.changes.len(), b.more), (2, true));
}

#[test]
fn debug_never_shows_the_token() {
    let connector = GoogleConfig::new()
        .with_base_url("https://admin.googleapis.com")
        .with_access_token(Secret::new("ya29.VerySecretToken"))
        .build()
        .unwrap();
    let d = format!("{:?}", GoogleSource::for_connector(&connector));
    assert!(!d.contains("VerySecretToken"), "{d}");
}
