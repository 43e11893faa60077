//! Time to revoke: from a deactivation in a (simulated) source of truth to every automatic
//! action done, with the source polled every second, on real time. Each connector call takes
//! 30 ms, like a nearby vendor API. Goal: ≤ 5 s at the median.
//! Run with `cargo bench --bench time_to_revoke`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use offboard::engine::LifecycleRules;
use offboard::memory::MemoryStore;
use offboard::{Engine, Person, Policy, RunQuery, Store};
use offboard_testkit::reference::{ReferenceConnector, ReferenceSource, ReferenceUser};

const POLICY: &str = r#"
[apps.idp]
method = "automatic"
actions = ["idp.suspend", "idp.clear_sessions", "idp.remove_groups", "idp.unassign_apps"]
"#;

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
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let id = format!("e{}", next % people);
                next += 1;
                // Land the change at a uniformly random point of the poll cycle (not counted).
                std::thread::sleep(Duration::from_millis(rand::random::<u64>() % 1000));
                let t0 = Instant::now();
                hr.terminate(&id, None);
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
                // Back to current, without a run, for the next round.
                hr.rehire(&id);
            }
            total
        })
    });
    g.finish();
    rt.block_on(workers.shutdown());
}

criterion_group!(benches, bench);
criterion_main!(benches);
