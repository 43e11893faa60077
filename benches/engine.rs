//! Throughput of the pure state machine and of the engine with zero-latency connectors on the
//! in-memory store. Run with `cargo bench --bench engine`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use offboard::machine::{self, ClaimCommand, Event};
use offboard::memory::MemoryStore;
use offboard::stores::JsonLinesCheckpointSink;
use offboard::{
    Action, ActionName, AuditQuery, CheckpointSigner, CheckpointSink, Engine, EngineBuilder,
    Initiator, Outcome, Person, Policy, RunRequest, RunState, Store, TaskKind,
};
use offboard_testkit::suite::reference::{ReferenceConnector, ReferenceUser};

const POLICY: &str = r#"
[apps.idp]
method = "automatic"
actions = ["idp.suspend", "idp.clear_sessions", "idp.remove_groups", "idp.unassign_apps"]
"#;

/// A planned run with `n` tasks, every second one depending on the one before.
fn planned_run(n: usize) -> offboard::Run {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let users: Vec<ReferenceUser> = vec![ReferenceUser::employee("ada@example.com")];
    let c = Arc::new(ReferenceConnector::builder("idp").users(users).build());
    let engine = Engine::builder()
        .store(Arc::new(MemoryStore::new()))
        .connector(c)
        .policy(Policy::from_toml(POLICY).unwrap())
        .build()
        .unwrap();
    let mut run = rt
        .block_on(engine.plan(RunRequest::new(
            Person::new("p", "ada@example.com"),
            Initiator::Schedule,
        )))
        .unwrap()
        .run;
    let template = run.tasks[0].clone();
    run.tasks.clear();
    for i in 0..n {
        let mut t = template.clone();
        t.id = offboard::TaskId::new_v4();
        t.kind = TaskKind::Action {
            action: Action::new(ActionName::from_static("idp.suspend")),
        };
        if i % 2 == 1 {
            t.depends_on = vec![run.tasks[i - 1].id];
        }
        run.tasks.push(t);
    }
    run
}

fn drive(mut run: offboard::Run, at: DateTime<Utc>) -> usize {
    let mut transitions = 1;
    machine::apply(&mut run, at, &Event::Submitted).unwrap();
    while !run.state.is_terminal() {
        let due: Vec<_> = run
            .tasks
            .iter()
            .filter(|t| machine::claim_command(&run, t.id, at) == ClaimCommand::Start)
            .map(|t| t.id)
            .collect();
        for task in due {
            machine::apply(&mut run, at, &Event::TaskStarted { task }).unwrap();
            machine::apply(
                &mut run,
                at,
                &Event::TaskSucceeded {
                    task,
                    outcome: Outcome::Done,
                    detail: None,
                },
            )
            .unwrap();
            transitions += 2;
        }
    }
    transitions
}

fn bench_machine(c: &mut Criterion) {
    let run = planned_run(20);
    let at = run.effective_at;
    let transitions = drive(run.clone(), at);
    let mut g = c.benchmark_group("machine");
    g.throughput(Throughput::Elements(transitions as u64));
    g.bench_function("transitions_20_task_run", |b| {
        b.iter(|| drive(run.clone(), at))
    });
    g.finish();
}

/// How many people [`offboard_people`] offboards, four actions each.
const PEOPLE: usize = 100;

/// Offboards [`PEOPLE`] people through `tweak`'s engine on the in-memory store, with
/// zero-latency connectors, and checks every run completed: how many audit events it
/// committed.
async fn offboard_people(tweak: impl FnOnce(EngineBuilder) -> EngineBuilder) -> usize {
    let users: Vec<ReferenceUser> = (0..PEOPLE)
        .map(|i| ReferenceUser::employee(format!("u{i}@example.com")))
        .collect();
    let conn = Arc::new(ReferenceConnector::builder("idp").users(users).build());
    let store = Arc::new(MemoryStore::new());
    let engine = tweak(
        Engine::builder()
            .store(store.clone())
            .connector(conn)
            .policy(Policy::from_toml(POLICY).unwrap()),
    )
    .build()
    .unwrap();
    let mut ids = Vec::with_capacity(PEOPLE);
    for i in 0..PEOPLE {
        let person = Person::new(format!("p{i}"), format!("u{i}@example.com"));
        let plan = engine
            .plan(RunRequest::new(person, Initiator::Schedule))
            .await
            .unwrap();
        ids.push(engine.submit(plan, None).await.unwrap());
    }
    engine.run_due().await.unwrap();
    for id in ids {
        assert_eq!(engine.status(id).await.unwrap().state, RunState::Completed);
    }
    store.audit(AuditQuery::all()).await.unwrap().len()
}

fn bench_engine(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("engine");
    g.sample_size(10);
    g.throughput(Throughput::Elements((PEOPLE * 4) as u64));
    g.bench_function("tasks_100_people_x4_actions", |b| {
        b.to_async(&rt).iter(|| offboard_people(|b| b))
    });
    g.finish();
}

/// The cost of signed checkpoints (issue 23): the same runs without checkpoints, with one
/// every 100 events and with one after every event (the worst cadence), each signed with
/// Ed25519 and appended (and fsynced) to a JSON-lines file. Throughput in audit events.
fn bench_checkpoints(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let events = rt.block_on(offboard_people(|b| b));
    let mut g = c.benchmark_group("checkpoints");
    g.sample_size(10);
    g.throughput(Throughput::Elements(events as u64));
    g.bench_function("none", |b| b.to_async(&rt).iter(|| offboard_people(|b| b)));
    for every in [100u64, 1] {
        let path = dir.path().join(format!("every-{every}.jsonl"));
        let sink: Arc<dyn CheckpointSink> =
            Arc::new(rt.block_on(JsonLinesCheckpointSink::open(&path)).unwrap());
        g.bench_function(format!("every_{every}_events"), |b| {
            b.to_async(&rt).iter(|| {
                offboard_people(|b| {
                    b.with_checkpoints(
                        CheckpointSigner::from_seed([7; 32]),
                        sink.clone(),
                        every,
                        Duration::from_secs(3600),
                    )
                })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_machine, bench_engine, bench_checkpoints);
criterion_main!(benches);
