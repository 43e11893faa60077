//! Time to revoke: from a deactivation in a (simulated) source of truth to every automatic
//! action done, with the source polled every second, on real time. Each connector call takes
//! 30 ms, like a nearby vendor API. Two variants: an in-memory HR source with the reference
//! connector, and Okta end to end (`OktaSource` + the Okta connector against the simulated
//! tenant on loopback). Goal: ≤ 5 s at the median.
//! Run with `cargo bench --bench time_to_revoke`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use offboard::engine::LifecycleRules;
use offboard::memory::MemoryStore;
use offboard::{Engine, Person, Policy, RunQuery, Secret, Store};
use offboard_okta::{OktaConfig, OktaSource};
use offboard_testkit::sim::okta::{Faults, GroupType, NewUser, OktaTenant};
use offboard_testkit::suite::reference::{ReferenceConnector, ReferenceSource, ReferenceUser};

const POLICY: &str = r#"
[apps.idp]
method = "automatic"
actions = ["idp.suspend", "idp.clear_sessions", "idp.remove_groups", "idp.unassign_apps"]
"#;

const OKTA_POLICY: &str = r#"
[apps.okta]
method = "automatic"
actions = ["okta.suspend", "okta.clear_sessions", "okta.revoke_grants", "okta.remove_groups"]
"#;

/// Runs `rounds` of: wait a random point of the poll cycle, `change(i)` in the source, wait
/// until person `id(i)`'s run ends; returns the time from the change to the end.
fn measure(
    rt: &tokio::runtime::Runtime,
    store: &MemoryStore,
    engine: &Engine,
    iters: u64,
    next: &mut usize,
    change: &dyn Fn(usize) -> String,
    undo: &dyn Fn(usize),
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let i = *next;
        *next += 1;
        // Land the change at a uniformly random point of the poll cycle (not counted).
        std::thread::sleep(Duration::from_millis(rand::random::<u64>() % 1000));
        let t0 = Instant::now();
        let id = change(i);
        rt.block_on(async {
            let run = loop {
                if let Some(r) = store
                    .list_runs(RunQuery::person(id.as_str()))
                    .await
                    .unwrap()
                    .first()
                {
                    break r.id;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            };
            engine.wait(run).await.unwrap();
        });
        total += t0.elapsed();
        // Back to current, without a run, for a later round.
        undo(i);
    }
    total
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let people = 200;
    let idp = Arc::new(
        ReferenceConnector::builder("idp")
            .latency(Duration::from_millis(30))
            .users((0..people).map(|i| ReferenceUser::employee(format!("u{i}@example.com"))))
            .build(),
    );
    let hr = Arc::new(ReferenceSource::new("hr"));
    for i in 0..people {
        hr.hire(Person::new(format!("e{i}"), format!("u{i}@example.com")));
    }
    let store = Arc::new(MemoryStore::new());
    let engine = Engine::builder()
        .store(store.clone())
        .connector(idp)
        .policy(Policy::from_toml(POLICY).unwrap())
        .lifecycle(LifecycleRules {
            domains: vec!["example.com".into()],
            ..LifecycleRules::default()
        })
        .source(hr.clone(), Duration::from_secs(1))
        .idle_poll(Duration::from_millis(200))
        .build()
        .unwrap();
    let workers = rt.block_on(async {
        engine.poll_sources().await.unwrap();
        engine.start()
    });
    let mut next = 0;
    let mut g = c.benchmark_group("lifecycle");
    g.sample_size(10);
    g.bench_function("time_to_revoke_1s_poll", |b| {
        b.iter_custom(|iters| {
            measure(
                &rt,
                &store,
                &engine,
                iters,
                &mut next,
                &|i| {
                    let id = format!("e{}", i % people);
                    hr.terminate(&id, None);
                    id
                },
                &|i| hr.rehire(&format!("e{}", i % people)),
            )
        })
    });
    rt.block_on(workers.shutdown());

    // The same through the real Okta connector and `OktaSource` against the simulated tenant
    // (30 ms per request): an administrator deactivates the user in Okta; the watch loop's
    // incremental `lastUpdated` search notices, and the run suspends, ends sessions, revokes
    // grants and leaves groups.
    let tenant = rt.block_on(OktaTenant::start());
    tenant.set_faults(Faults {
        latency: Duration::from_millis(30),
        ..Faults::default()
    });
    let group = tenant.add_group("Engineering", GroupType::OktaGroup);
    let ids: Vec<String> = (0..people)
        .map(|i| {
            tenant.add_user(NewUser {
                groups: vec![group.clone()],
                sessions: 1,
                ..NewUser::active(format!("u{i}@example.com"))
            })
        })
        .collect();
    let okta = Arc::new(
        OktaConfig::new()
            .with_org_url(tenant.uri())
            .with_allow_plain_http(true)
            .with_api_token(Secret::new(tenant.token()))
            .build()
            .unwrap(),
    );
    let store = Arc::new(MemoryStore::new());
    let engine = Engine::builder()
        .store(store.clone())
        .source(
            Arc::new(OktaSource::for_connector(&okta)),
            Duration::from_secs(1),
        )
        .connector(okta)
        .policy(Policy::from_toml(OKTA_POLICY).unwrap())
        .lifecycle(LifecycleRules {
            domains: vec!["example.com".into()],
            ..LifecycleRules::default()
        })
        .idle_poll(Duration::from_millis(200))
        .build()
        .unwrap();
    let workers = rt.block_on(async {
        engine.poll_sources().await.unwrap();
        engine.start()
    });
    let mut next = 0;
    g.bench_function("time_to_revoke_okta_simulator_1s_poll", |b| {
        b.iter_custom(|iters| {
            measure(
                &rt,
                &store,
                &engine,
                iters,
                &mut next,
                &|i| {
                    let id = &ids[i % people];
                    assert!(tenant.deactivate_user(id));
                    id.clone()
                },
                &|i| {
                    assert!(tenant.set_status(&ids[i % people], "ACTIVE"));
                },
            )
        })
    });
    g.finish();
    rt.block_on(workers.shutdown());
}

criterion_group!(benches, bench);
criterion_main!(benches);
