//! The scale benchmark: N offboardings of 4 actions each (zero-latency reference connector),
//! durable on a fresh SQLite file, plus the store's own rates (durable transitions/s, audit
//! appends/s, claim latency under 4 concurrent claimers). Each N is measured three ways: cases
//! submitted one after another, then processed (`run_due`); submitted by 32 concurrent
//! submitters (as a host offboarding many people at once would), then processed; and
//! submitted by 32 submitters while the engine's background workers (`Engine::start`) already
//! process them, as a host runs it; and with no submitter at all: an HR feed (the reference
//! source) reports all N people gone at once, and the engine's lifecycle watcher
//! (`poll_source`) plans and submits their runs while its workers process them. Each case is
//! durable (SQLite, `synchronous = FULL`) before its submit returns and at every step after.
//!
//! The store's rates are measured on SQLite and, when `OFFBOARD_BENCH_PG_URL` (else
//! `OFFBOARD_TEST_PG_URL`, which the test command sets) names a PostgreSQL server the benchmark
//! may create databases on, on PostgreSQL too (a fresh database per measurement, dropped after
//! it; the server's `fsync` and `synchronous_commit` are printed with the numbers).
//!
//! Run with `cargo bench --bench scale`; choose N with `OFFBOARD_SCALE_N` (default
//! `100,1000`, e.g. `OFFBOARD_SCALE_N=100,1000,10000`) and the directory of the database files
//! with `OFFBOARD_SCALE_DIR` (default: the system temp directory); `OFFBOARD_SCALE_MODES`
//! chooses the ways (default `1,32,32w,feed`: submitter count, `w` for workers running
//! meanwhile, `feed` for the HR feed).
//! Under `cargo test` (no `--bench` argument) it runs only a smoke test with N = 20.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use offboard::engine::LifecycleRules;
use offboard::policy::DepartureLimits;
use offboard::stores::{PostgresStore, SqliteStore};
use offboard::{
    AuditEvent, AuditKind, ClaimRequest, Commit, Engine, Initiator, Limits, Person, Policy, RunId,
    RunQuery, RunRequest, RunState, Store,
};
use offboard_testkit::suite::postgres::ScratchDatabase;
use offboard_testkit::suite::reference::{ReferenceConnector, ReferenceSource, ReferenceUser};
use offboard_testkit::suite::store::CountingStore;
use sqlx::{Connection, PgConnection};

const POLICY: &str = r#"
[apps.idp]
method = "automatic"
actions = ["idp.suspend", "idp.clear_sessions", "idp.remove_groups", "idp.unassign_apps"]
"#;

const ACTIONS: usize = 4;

/// A fresh directory for one measurement, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let base = std::env::var_os("OFFBOARD_SCALE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!(
            "offboard-scale-{tag}-{}-{}",
            std::process::id(),
            Utc::now().timestamp_nanos_opt().unwrap_or_default()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
    fn db(&self) -> PathBuf {
        self.0.join("offboard.db")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Resets the kernel's peak-RSS mark (VmHWM), so each N reports its own peak.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// CPU time this process has used (user + system), from /proc/self/stat.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 (1-based), 11 and 12 after the name; 100 ticks/s.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// Peak resident set size in KiB (`VmHWM` of /proc/self/status).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// How cases are submitted and processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mode {
    /// Concurrent submitters (1: one after another); 0: none, the departures come from an HR
    /// feed the engine polls (see [`Mode::FEED`]).
    submitters: usize,
    /// Whether the engine's background workers process cases while they are submitted
    /// (otherwise `run_due` processes them once all are submitted).
    workers: bool,
}

impl Mode {
    /// No submitter: all N people are reported gone by one HR feed (a reduction in force), and
    /// the engine's lifecycle watcher plans and submits their runs while its workers process
    /// them.
    const FEED: Self = Self {
        submitters: 0,
        workers: true,
    };

    fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if s == "feed" {
            return Some(Self::FEED);
        }
        let (n, workers) = match s.strip_suffix('w') {
            Some(n) => (n, true),
            None => (s, false),
        };
        Some(Self {
            submitters: n.parse().ok()?,
            workers,
        })
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if *self == Self::FEED {
            return write!(f, "HR feed, meanwhile");
        }
        let then = if self.workers { "meanwhile" } else { "after" };
        write!(f, "{} sub, {then}", self.submitters)
    }
}

struct ScaleResult {
    n: usize,
    mode: Mode,
    submit: Duration,
    total: Duration,
    /// CPU time (all threads) from the first submit to the last completion.
    cpu: Duration,
    peak_rss_kib: Option<u64>,
    bytes_per_case: f64,
    calls: BTreeMap<&'static str, (u64, Duration)>,
    /// (transactions, writes) while submitting, then while processing.
    grouping: [(u64, u64); 2],
}

impl ScaleResult {
    fn cases_per_s(&self) -> f64 {
        self.n as f64 / self.total.as_secs_f64()
    }
}

async fn engine_on(store: Arc<dyn Store>, n: usize) -> Engine {
    let users: Vec<ReferenceUser> = (0..n)
        .map(|i| ReferenceUser::employee(format!("u{i}@example.com")))
        .collect();
    let conn = Arc::new(ReferenceConnector::builder("idp").users(users).build());
    let in_flight = std::env::var("OFFBOARD_SCALE_IN_FLIGHT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(IN_FLIGHT);
    // An in-memory connector has no vendor concurrency limit: let every task in flight call
    // it (the default, 16, models a vendor API and would cap the engine here instead).
    let limits = Limits {
        concurrency: std::env::var("OFFBOARD_SCALE_CONCURRENCY")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(in_flight),
        ..Limits::default()
    };
    Engine::builder()
        .store(store)
        .connector_with_limits(conn, limits)
        .policy(Policy::from_toml(POLICY).unwrap())
        .max_in_flight(in_flight)
        // Mode 'feed' reports all N people gone in one batch: a reduction in force the host
        // has approved, so the mass-departure circuit breaker (25 people / 5 % by default)
        // is off here instead of holding the batch.
        .lifecycle(LifecycleRules {
            departures: DepartureLimits::unlimited(),
            ..LifecycleRules::default()
        })
        .build()
        .unwrap()
}

/// Tasks in flight at once (the engine's default).
const IN_FLIGHT: usize = 256;

/// Submitters of the concurrent measurement: a host offboarding many people at once (a layoff,
/// an HR feed) submits them concurrently.
const SUBMITTERS: usize = 32;

/// Person `i`.
fn person(i: usize) -> Person {
    Person::new(format!("p{i}"), format!("u{i}@example.com"))
}

/// Plans and submits the offboarding of person `i`.
async fn submit_one(engine: &Engine, i: usize) -> RunId {
    let plan = engine
        .plan(RunRequest::new(person(i), Initiator::Schedule))
        .await
        .unwrap();
    assert_eq!(plan.run.tasks.len(), ACTIONS);
    engine.submit(plan, None).await.unwrap()
}

/// Plans and submits `people` offboardings (persons `first..first + people`), `submitters` at
/// a time (1: one after another).
async fn submit_all(engine: &Engine, first: usize, people: usize, submitters: usize) -> Vec<RunId> {
    futures::stream::iter(first..first + people)
        .map(|i| submit_one(engine, i))
        .buffer_unordered(submitters.max(1))
        .collect()
        .await
}

async fn scale(n: usize, mode: Mode) -> ScaleResult {
    let dir = Scratch::new(&format!("n{n}-s{}-{}", mode.submitters, mode.workers));
    let sqlite = SqliteStore::open(dir.db()).await.unwrap();
    let store = Arc::new(CountingStore::new(sqlite.clone()));
    let feed = (mode == Mode::FEED).then(|| Arc::new(ReferenceSource::new("hr")));
    // Polled by the benchmark (`poll_source`), not by a watcher of the engine's.
    let engine = engine_on(store.clone(), n).await;
    if let Some(feed) = &feed {
        // The feed's first poll records everyone as current (not measured); then all of them
        // leave at once.
        (0..n).for_each(|i| feed.hire(person(i)));
        engine.poll_source(feed.as_ref()).await.unwrap();
        (0..n).for_each(|i| feed.terminate(person(i).id.as_str(), None));
        store.take();
    }
    reset_peak_rss();

    let start = Instant::now();
    let cpu_start = cpu_time();
    let at_start = sqlite.group_commits();
    let workers = mode.workers.then(|| engine.start());
    let ids = if let Some(feed) = &feed {
        let report = engine.poll_source(feed.as_ref()).await.unwrap();
        assert_eq!(report.started.len(), n, "every leaver of the feed started");
        report.started.into_iter().map(|(_, run)| run).collect()
    } else {
        submit_all(&engine, 0, n, mode.submitters).await
    };
    assert_eq!(ids.len(), n);
    let submit = start.elapsed();
    let submitted = sqlite.group_commits();
    loop {
        if workers.is_none() {
            engine.run_due().await.unwrap();
        }
        let open = store
            .inner
            .list_runs(RunQuery::default().open().limit(1))
            .await
            .unwrap();
        if open.is_empty() {
            break;
        }
        if workers.is_some() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let total = start.elapsed();
    if let Some(workers) = workers {
        workers.shutdown().await;
    }
    let cpu = cpu_time().saturating_sub(cpu_start);
    let processed = sqlite.group_commits();
    let peak_rss_kib = peak_rss_kib();
    let calls = store.take();
    let delta = |a: (u64, u64), b: (u64, u64)| (b.0 - a.0, b.1 - a.1);

    let all = store.inner.list_runs(RunQuery::default()).await.unwrap();
    assert_eq!(all.len(), n);
    assert!(all.iter().all(|r| r.state == RunState::Completed));
    assert_eq!(
        engine.status(ids[n - 1]).await.unwrap().state,
        RunState::Completed
    );
    sqlite.checkpoint().await.unwrap();
    let db = dir.db();
    let wal = db.with_extension("db-wal");
    let bytes = file_len(&db) + file_len(&wal);
    ScaleResult {
        n,
        mode,
        submit,
        total,
        cpu,
        peak_rss_kib,
        bytes_per_case: bytes as f64 / n as f64,
        calls,
        grouping: [delta(at_start, submitted), delta(submitted, processed)],
    }
}

/// Where the store rates are measured: each measurement gets a fresh store.
#[derive(Clone)]
enum Backend {
    /// A SQLite file in a scratch directory.
    Sqlite,
    /// A database of its own created (and dropped) on the PostgreSQL server at this URL.
    Postgres(String),
}

/// A fresh store of `backend` for one measurement, and what [`Fresh::cleanup`] removes.
enum Fresh {
    /// The SQLite file's directory, removed on drop.
    Sqlite { _dir: Scratch },
    /// The database created for the measurement.
    Postgres(ScratchDatabase),
}

impl Backend {
    async fn fresh(&self, tag: &str) -> (Arc<dyn Store>, Fresh) {
        match self {
            Self::Sqlite => {
                let dir = Scratch::new(tag);
                let store = SqliteStore::open(dir.db()).await.unwrap();
                (Arc::new(store), Fresh::Sqlite { _dir: dir })
            }
            Self::Postgres(admin_url) => {
                let db = ScratchDatabase::create(admin_url, "offboard_bench")
                    .await
                    .unwrap_or_else(|e| panic!("cannot create a database on {admin_url}: {e}"));
                let store = PostgresStore::connect(db.url()).await.unwrap();
                (Arc::new(store), Fresh::Postgres(db))
            }
        }
    }

    /// How durable the server's commits are: its `fsync` and `synchronous_commit` settings.
    async fn durability(&self) -> String {
        match self {
            Self::Sqlite => "WAL, synchronous=FULL".to_owned(),
            Self::Postgres(url) => {
                let mut conn = PgConnection::connect(url).await.unwrap();
                let mut settings = Vec::new();
                for name in ["fsync", "synchronous_commit"] {
                    let row = sqlx::query(sqlx::AssertSqlSafe(format!("SHOW {name}")))
                        .fetch_one(&mut conn)
                        .await
                        .unwrap();
                    let value: String = sqlx::Row::get(&row, 0);
                    settings.push(format!("{name}={value}"));
                }
                settings.join(", ")
            }
        }
    }
}

impl Fresh {
    async fn cleanup(self, store: Arc<dyn Store>) {
        drop(store);
        if let Self::Postgres(db) = self {
            db.drop_database().await;
        }
    }
}

/// Durable transitions/s: each one commits a run update, one task row and one audit event in
/// one transaction, as the engine's commits do; one caller, then `concurrent` callers on
/// different runs.
async fn transitions(backend: &Backend, ops: usize, concurrent: usize) -> (f64, f64) {
    let (store, fresh) = backend.fresh("transitions").await;
    let engine = engine_on(store.clone(), concurrent).await;
    let ids = submit_all(&engine, 0, concurrent, 1).await;
    let one = |store: Arc<dyn Store>, id: RunId, ops: usize| async move {
        let mut run = store.load_run(id).await.unwrap().unwrap();
        for i in 0..ops {
            let task = run.tasks[i % ACTIONS].id;
            let event = AuditEvent::new(
                Utc::now(),
                "bench",
                AuditKind::Note {
                    name: "transition".into(),
                    data: serde_json::json!({ "i": i }),
                },
            )
            .with_run(id);
            let (version, _) = store
                .commit(Commit::new(run.clone(), vec![task], vec![event]))
                .await
                .unwrap();
            run.version = version;
        }
    };
    let start = Instant::now();
    one(store.clone(), ids[0], ops).await;
    let serial = ops as f64 / start.elapsed().as_secs_f64();

    let per = ops / concurrent;
    let start = Instant::now();
    let handles: Vec<_> = ids
        .iter()
        .map(|id| tokio::spawn(one(store.clone(), *id, per)))
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    let parallel = (per * concurrent) as f64 / start.elapsed().as_secs_f64();
    drop(engine);
    fresh.cleanup(store).await;
    (serial, parallel)
}

/// Audit appends/s, one event per append, one caller.
async fn appends(backend: &Backend, ops: usize) -> f64 {
    let (store, fresh) = backend.fresh("appends").await;
    let start = Instant::now();
    for i in 0..ops {
        let event = AuditEvent::new(
            Utc::now(),
            "bench",
            AuditKind::Note {
                name: "append".into(),
                data: serde_json::json!({ "i": i }),
            },
        );
        store.append_audit(vec![event]).await.unwrap();
    }
    let rate = ops as f64 / start.elapsed().as_secs_f64();
    fresh.cleanup(store).await;
    rate
}

/// Claim latency with 4 concurrent claimers taking one task at a time from `runs` × 4 due
/// tasks: (mean, p50, p99, max) and claims/s.
async fn claims(backend: &Backend, runs: usize) -> (Duration, Duration, Duration, Duration, f64) {
    let (store, fresh) = backend.fresh("claims").await;
    let engine = engine_on(store.clone(), runs).await;
    submit_all(&engine, 0, runs, 1).await;
    let now = Utc::now() + chrono::Duration::seconds(1);
    let start = Instant::now();
    let claimers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                loop {
                    let t = Instant::now();
                    let got = store
                        .claim(ClaimRequest::new(
                            format!("w{w}"),
                            now,
                            Duration::from_secs(300),
                            1,
                        ))
                        .await
                        .unwrap();
                    lat.push(t.elapsed());
                    if got.is_empty() {
                        return lat;
                    }
                }
            })
        })
        .collect();
    let mut lat = Vec::new();
    for c in claimers {
        lat.extend(c.await.unwrap());
    }
    let wall = start.elapsed();
    drop(engine);
    fresh.cleanup(store).await;
    lat.sort();
    let mean = lat.iter().sum::<Duration>() / lat.len() as u32;
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize];
    (
        mean,
        pct(0.5),
        pct(0.99),
        *lat.last().unwrap(),
        lat.len() as f64 / wall.as_secs_f64(),
    )
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn print_scale(results: &[ScaleResult]) {
    println!();
    println!(
        "scale: N offboardings x {ACTIONS} actions, zero-latency connector, SQLite (WAL, synchronous=FULL)"
    );
    println!(
        "{:>7} | {:>18} | {:>10} | {:>10} | {:>9} | {:>11} | {:>12} | {:>13} | {:>12} | {:>15}",
        "N",
        "submit, process",
        "submit",
        "total",
        "cases/s",
        "CPU/case",
        "tasks/s",
        "peak RSS",
        "bytes/case",
        "writes/tx s|p"
    );
    println!("{}", "-".repeat(150));
    let per_tx = |(tx, writes): (u64, u64)| writes as f64 / tx.max(1) as f64;
    for r in results {
        println!(
            "{:>7} | {:>18} | {:>8.2} s | {:>8.2} s | {:>9.1} | {:>8.2} ms | {:>12.1} | {:>13} | {:>12.0} | {:>6.1} | {:>6.1}",
            r.n,
            r.mode.to_string(),
            r.submit.as_secs_f64(),
            r.total.as_secs_f64(),
            r.cases_per_s(),
            r.cpu.as_secs_f64() * 1e3 / r.n as f64,
            r.cases_per_s() * ACTIONS as f64,
            r.peak_rss_kib.map_or("n/a".to_owned(), |k| format!(
                "{:.1} MiB",
                k as f64 / 1024.0
            )),
            r.bytes_per_case,
            per_tx(r.grouping[0]),
            per_tx(r.grouping[1]),
        );
    }
    println!(
        "(CPU/case: CPU time of all threads per case, submit to completion; writes/tx: writes per \
         committed transaction while submitting | processing)"
    );
    let mut modes: Vec<Mode> = results.iter().map(|r| r.mode).collect();
    modes.dedup();
    for mode in modes {
        let rows: Vec<&ScaleResult> = results.iter().filter(|r| r.mode == mode).collect();
        if let (Some(first), Some(last)) = (rows.first(), rows.last())
            && rows.len() > 1
        {
            println!(
                "throughput ratio N={} vs N={} ({mode}): {:.2} (goal >= 0.80 for 10,000 vs 100)",
                last.n,
                first.n,
                last.cases_per_s() / first.cases_per_s()
            );
        }
    }
    for r in results {
        let tasks = (r.n * ACTIONS) as f64;
        println!();
        println!(
            "store calls at N={}, {} (per task = calls / {} tasks; time = wall time inside the \
             call, including waiting for the writer lock)",
            r.n,
            r.mode,
            r.n * ACTIONS
        );
        println!(
            "{:>16} | {:>9} | {:>8} | {:>11} | {:>10}",
            "call", "calls", "per task", "mean", "total"
        );
        let mut all_calls = 0;
        for (name, (count, time)) in &r.calls {
            all_calls += count;
            println!(
                "{:>16} | {:>9} | {:>8.2} | {:>11} | {:>8.2} s",
                name,
                count,
                *count as f64 / tasks,
                ms(*time / (*count).max(1) as u32),
                time.as_secs_f64()
            );
        }
        println!(
            "{:>16} | {:>9} | {:>8.2} |",
            "all",
            all_calls,
            all_calls as f64 / tasks
        );
    }
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let sizes: Vec<usize> = if bench {
        std::env::var("OFFBOARD_SCALE_N")
            .unwrap_or_else(|_| "100,1000".to_owned())
            .split(',')
            .map(|s| s.trim().replace('_', "").parse().expect("OFFBOARD_SCALE_N"))
            .collect()
    } else {
        vec![20]
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut results = Vec::new();
        let modes: Vec<Mode> = std::env::var("OFFBOARD_SCALE_MODES")
            .unwrap_or_else(|_| format!("1,{SUBMITTERS},{SUBMITTERS}w,feed"))
            .split(',')
            .map(|m| Mode::parse(m).expect("OFFBOARD_SCALE_MODES"))
            .collect();
        for &mode in &modes {
            for &n in &sizes {
                let r = scale(n, mode).await;
                eprintln!(
                    "N={n}, {mode}: {:.1} cases/s ({:.2} s)",
                    r.cases_per_s(),
                    r.total.as_secs_f64()
                );
                results.push(r);
            }
        }
        print_scale(&results);

        let (ops, claim_runs) = if bench { (2000, 250) } else { (40, 5) };
        let mut backends = vec![Backend::Sqlite];
        // A PostgreSQL server the benchmark may create databases on; the test command's (under
        // `cargo test`, a smoke run) if none is named.
        if let Ok(url) = std::env::var("OFFBOARD_BENCH_PG_URL")
            .or_else(|_| std::env::var("OFFBOARD_TEST_PG_URL"))
        {
            backends.push(Backend::Postgres(url));
        }
        for backend in &backends {
            let (serial, parallel) = transitions(backend, ops, 4).await;
            let appends = appends(backend, ops).await;
            let (mean, p50, p99, max, rate) = claims(backend, claim_runs).await;
            let name = match backend {
                Backend::Sqlite => "SQLite",
                Backend::Postgres(_) => "PostgreSQL",
            };
            println!();
            println!("store ({name}, {})", backend.durability().await);
            println!("  durable transitions/s, 1 caller:        {serial:>9.1}");
            println!("  durable transitions/s, 4 callers:       {parallel:>9.1}");
            println!("  audit appends/s (1 event each):         {appends:>9.1}");
            println!(
                "  claim latency, 4 concurrent claimers ({} tasks, limit 1): mean {}, p50 {}, p99 {}, max {}; {:.1} claims/s",
                claim_runs * ACTIONS,
                ms(mean),
                ms(p50),
                ms(p99),
                ms(max),
                rate
            );
        }
    });
}
