//! What the cloud and Graph benchmarks share: their knobs and the engine drive loop that
//! offboards N people at once. Included by each with `#[path = "common/mod.rs"] mod common;`
//! (and by `tests/fleet.rs`).

#![allow(dead_code)]

use std::str::FromStr;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use offboard::engine::Confirmation;
use offboard::{Engine, Initiator, Person, RunRequest, RunState, TaskState};

/// Runs in flight at once, unless `OFFBOARD_BENCH_RUNS` says otherwise.
#[allow(dead_code)]
const CONCURRENT_RUNS: usize = 32;

/// Whether `cargo bench` runs the benchmark (a `--bench` argument) rather than `cargo test`.
pub(crate) fn benching() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// The environment variable `key`, parsed, when set and well-formed.
pub(crate) fn env<T: FromStr>(key: &str) -> Option<T> {
    std::env::var(key).ok().and_then(|v| v.trim().parse().ok())
}

/// The time compression for an estimated real bound of `bound_secs`: 1 when it is at most 5
/// minutes, else the smallest divisor of 60 (so a one-minute window stays whole seconds)
/// bringing it to at most 3 minutes. (The Graph benchmark compresses by any whole scale.)
#[allow(dead_code)]
pub(crate) fn compression(bound_secs: f64) -> u64 {
    if bound_secs <= 300.0 {
        return 1;
    }
    [2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60]
        .into_iter()
        .find(|s| bound_secs / *s as f64 <= 180.0)
        .unwrap_or(60)
}

/// Runs `f` on a multi-threaded runtime with time and I/O enabled.
pub(crate) fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Starts `engine`'s workers and offboards every person, [`CONCURRENT_RUNS`] at once: plans
/// (planning again after the hint of a retryable error: a throttled lookup fails the plan),
/// checks the plan has `tasks` tasks, confirms it as an operator would, submits it and waits
/// for the run. Then stops the workers and panics unless every run completed, naming the
/// tasks that did not. Returns the wall time from the start of the workers to the last run.
#[allow(dead_code)]
pub(crate) async fn offboard_all(engine: &Engine, people: Vec<Person>, tasks: usize) -> Duration {
    let started = Instant::now();
    let workers = engine.start();
    let runs: Vec<_> = futures::stream::iter(people)
        .map(|person| {
            let engine = engine.clone();
            async move {
                let plan = loop {
                    match engine
                        .plan(RunRequest::new(person.clone(), Initiator::Schedule))
                        .await
                    {
                        Ok(plan) => break plan,
                        Err(e) if e.is_retryable() => {
                            tokio::time::sleep(e.retry_after().unwrap_or(Duration::from_secs(1)))
                                .await;
                        }
                        Err(e) => panic!("plan {}: {e}", person.email),
                    }
                };
                assert_eq!(plan.run.tasks.len(), tasks);
                let confirmation = Confirmation::of(&plan, "bench");
                let id = engine.submit(plan, Some(confirmation)).await.unwrap();
                engine.wait(id).await.unwrap()
            }
        })
        .buffer_unordered(env("OFFBOARD_BENCH_RUNS").unwrap_or(CONCURRENT_RUNS))
        .collect()
        .await;
    let wall = started.elapsed();
    workers.shutdown().await;
    assert_completed(&runs);
    wall
}

/// Panics unless every run completed, naming the tasks that did not.
pub(crate) fn assert_completed(runs: &[offboard::Run]) {
    for run in runs {
        assert_eq!(
            run.state,
            RunState::Completed,
            "{}: {:?}",
            run.person.email,
            run.tasks
                .iter()
                .filter(|t| !matches!(t.state, TaskState::Completed { .. }))
                .map(|t| (t.label(), format!("{:?}", t.state)))
                .collect::<Vec<_>>()
        );
    }
}
