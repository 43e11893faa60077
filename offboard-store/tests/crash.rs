//! Crash test: offboardings run in a child process (this test binary, re-run as the ignored
//! `crash_child` test) that is SIGKILLed at random points, again and again, then restarted
//! until everything completes. Afterwards: every run completed, the audit chain verifies with
//! every task's success recorded exactly once, and no side effect happened more than once.
//!
//! The simulated vendor must outlive the child, as a real one would: the child's connector
//! appends every real change (`Done`) to a log file (fsynced before the reply), and a new
//! child replays that log into a fresh reference tenant before it starts. A change whose log
//! line did not make it to disk died with the process, vendor state included.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use offboard_core::connector::Capabilities;
use offboard_core::machine::Event;
use offboard_core::{
    AccountRef, Action, AuditKind, AuditQuery, Confirmation, Connector, Engine, ExecuteOptions,
    ExecuteReply, Initiator, Limits, LookupRequest, Outcome, Person, PersonId, Policy, Result,
    RunQuery, RunRequest, RunState, Snapshot, Store, Verification,
};
use offboard_store::SqliteStore;
use offboard_testkit::suite::reference::{ReferenceConnector, ReferenceUser};

const RUNS: usize = 400;
const KILLS: usize = 12;
const ACTIONS: [&str; 3] = ["idp.suspend", "idp.clear_sessions", "idp.remove_groups"];
const POLICY: &str = r#"
[apps.idp]
method = "automatic"
actions = ["idp.suspend", "idp.clear_sessions", "idp.remove_groups"]
"#;

#[derive(serde::Serialize, serde::Deserialize)]
struct Effect {
    external_id: String,
    action: Action,
}

/// The reference connector, with every real change logged durably.
#[derive(Debug)]
struct Durable {
    inner: ReferenceConnector,
    log: Mutex<std::fs::File>,
}

#[async_trait]
impl Connector for Durable {
    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }
    async fn lookup(&self, request: &LookupRequest) -> Result<Option<AccountRef>> {
        self.inner.lookup(request).await
    }
    async fn execute(
        &self,
        account: &AccountRef,
        action: &Action,
        options: &ExecuteOptions,
    ) -> Result<ExecuteReply> {
        let reply = self.inner.execute(account, action, options).await?;
        if !options.dry_run && reply.outcome == Outcome::Done {
            let line = serde_json::to_string(&Effect {
                external_id: account.external_id.clone(),
                action: action.clone(),
            })
            .unwrap();
            let mut log = self.log.lock().unwrap();
            log.write_all(format!("{line}\n").as_bytes()).unwrap();
            log.sync_data().unwrap();
        }
        Ok(reply)
    }
    async fn snapshot(&self, account: &AccountRef, action: &Action) -> Result<Snapshot> {
        self.inner.snapshot(account, action).await
    }
    async fn restore(&self, account: &AccountRef, snapshot: &Snapshot) -> Result<Outcome> {
        self.inner.restore(account, snapshot).await
    }
    async fn verify_revoked(&self, account: &AccountRef) -> Result<Verification> {
        self.inner.verify_revoked(account).await
    }
    async fn discover(&self, account: &AccountRef) -> Result<Vec<AccountRef>> {
        self.inner.discover(account).await
    }
}

/// The complete lines of the effects log (a torn last line is a change that never happened).
fn effects(path: &Path) -> Vec<Effect> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .map(|l| serde_json::from_str(l.trim_end()).expect("a complete effects line parses"))
        .collect()
}

fn tenant() -> ReferenceConnector {
    ReferenceConnector::builder("idp")
        .users((0..RUNS).map(|i| {
            ReferenceUser::employee(format!("u{i}@example.com"))
                .groups(["eng", "all"])
                .sessions(3)
        }))
        .build()
}

/// The child: reopens everything, submits the runs not yet submitted, works until all are
/// done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by the crash tests as a child process"]
async fn crash_child() {
    let dir = PathBuf::from(std::env::var("OFFBOARD_CRASH_DIR").expect("run by a crash test"));
    let store: Arc<dyn Store> = match std::env::var("OFFBOARD_CRASH_PG") {
        #[cfg(feature = "postgres")]
        Ok(url) => Arc::new(offboard_store::PostgresStore::connect(&url).await.unwrap()),
        _ => Arc::new(SqliteStore::open(dir.join("offboard.db")).await.unwrap()),
    };
    let log_path = dir.join("effects.jsonl");
    let inner = tenant();
    // Bring the simulated vendor back to where it was.
    let past = effects(&log_path);
    for e in &past {
        let account = inner
            .account(&e.external_id)
            .expect("a logged account exists");
        inner
            .execute(&account, &e.action, &ExecuteOptions::default())
            .await
            .unwrap();
    }
    // Cut a torn line off, so new lines start on their own.
    let complete: usize = std::fs::read_to_string(&log_path)
        .map(|t| {
            t.split_inclusive('\n')
                .filter(|l| l.ends_with('\n'))
                .map(str::len)
                .sum()
        })
        .unwrap_or(0);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .unwrap();
    log.set_len(complete as u64).unwrap();
    let connector = Arc::new(Durable {
        inner,
        log: Mutex::new(log),
    });
    let engine = Engine::builder()
        .store(store.clone())
        .connector_with_limits(
            connector,
            // The 2 s lease covers twice this timeout and the engine's 1 s margin.
            Limits::default().with_timeout(Duration::from_millis(500)),
        )
        .policy(Policy::from_toml(POLICY).unwrap())
        .lease_for(Duration::from_secs(2))
        .idle_poll(Duration::from_millis(20))
        .worker_id(format!("child-{}", std::process::id()))
        .build()
        .unwrap();
    let workers = engine.start();
    for i in 0..RUNS {
        let person = PersonId::new(format!("p{i}"));
        if !store
            .list_runs(RunQuery::person(person.clone()))
            .await
            .unwrap()
            .is_empty()
        {
            continue;
        }
        let plan = engine
            .plan(RunRequest::new(
                Person::new(person, format!("u{i}@example.com")),
                Initiator::Admin {
                    actor: "admin@example.com".into(),
                },
            ))
            .await
            .unwrap();
        let confirm = plan
            .has_critical()
            .then(|| Confirmation::of(&plan, "admin@example.com"));
        engine.submit(plan, confirm).await.unwrap();
    }
    loop {
        let open = store.list_runs(RunQuery::default().open()).await.unwrap();
        if open.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    workers.shutdown().await;
    println!("CRASH-CHILD-DONE");
}

fn child(dir: &Path, pg: Option<&str>) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--ignored", "--exact", "crash_child", "--nocapture"])
        .env("OFFBOARD_CRASH_DIR", dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match pg {
        Some(url) => cmd.env("OFFBOARD_CRASH_PG", url),
        None => cmd.env_remove("OFFBOARD_CRASH_PG"),
    };
    cmd
}

/// A pseudo-random delay in `[lo, hi)` ms (no RNG crate needed).
fn jitter(lo: u64, hi: u64) -> Duration {
    let r = u64::from_le_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().unwrap());
    Duration::from_millis(lo + r % (hi - lo))
}

/// Kills the child `KILLS` times at random points, then lets one run to the end; checks the
/// outcome on `store`.
async fn crash_and_check(dir: &Path, pg: Option<&str>, store: &dyn Store) -> String {
    let started = Instant::now();
    let mut killed_after = Vec::new();
    for _ in 0..KILLS {
        let mut c = child(dir, pg).spawn().unwrap();
        let wait = jitter(100, 900);
        std::thread::sleep(wait);
        let finished = c.try_wait().unwrap().is_some();
        if !finished {
            c.kill().unwrap(); // SIGKILL
            killed_after.push(wait.as_millis());
        }
        let _ = c.wait();
    }
    assert!(
        killed_after.len() >= 3,
        "the children finished before they could be killed: {killed_after:?}"
    );
    let out = child(dir, pg).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("CRASH-CHILD-DONE"),
        "the last child failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    // Every run completed.
    let runs = store.list_runs(RunQuery::default()).await.unwrap();
    assert_eq!(runs.len(), RUNS, "one run per person, none twice");
    let mut succeeded = BTreeMap::new();
    for e in store.audit(AuditQuery::all()).await.unwrap() {
        if let AuditKind::Transition {
            event: Event::TaskSucceeded { task, .. },
            ..
        } = e.kind
        {
            *succeeded.entry(task).or_insert(0) += 1;
        }
    }
    for summary in &runs {
        let run = store.load_run(summary.id).await.unwrap().unwrap();
        assert_eq!(
            run.state,
            RunState::Completed,
            "run {}: {:?}",
            run.id,
            run.tasks
        );
        for task in &run.tasks {
            assert_eq!(
                succeeded.get(&task.id),
                Some(&1),
                "task {} ({}) must have exactly one success event",
                task.id,
                task.label()
            );
        }
    }
    // Each side effect exactly once: the vendor saw every change, none twice.
    let mut counts = BTreeMap::new();
    for e in effects(&dir.join("effects.jsonl")) {
        *counts
            .entry((e.external_id, e.action.name.to_string()))
            .or_insert(0u32) += 1;
    }
    let reference = tenant();
    for i in 0..RUNS {
        let user = reference
            .user_by_login(&format!("u{i}@example.com"))
            .unwrap();
        for action in ACTIONS {
            assert_eq!(
                counts.get(&(user.external_id.clone(), action.to_owned())),
                Some(&1),
                "{action} on u{i}"
            );
        }
    }
    format!(
        "{RUNS} runs, killed {} times (after {killed_after:?} ms), done in {:?}",
        killed_after.len(),
        started.elapsed()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_survives_sigkill_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    // Create the database first, so the check below opens the one the children use.
    let store = SqliteStore::open(dir.path().join("offboard.db"))
        .await
        .unwrap();
    let summary = crash_and_check(dir.path(), None, &store).await;
    let check = store.verify_audit().await.unwrap();
    assert!(check.is_intact(), "{check:?}");
    eprintln!(
        "sqlite crash test: {summary}; {} audit events verified",
        check.verified
    );
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_survives_sigkill_anywhere() {
    use offboard_testkit::suite::postgres::ScratchDatabase;
    let db = ScratchDatabase::create(&ScratchDatabase::test_server(), "offboard_crash")
        .await
        .unwrap();
    let url = db.url().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let store = offboard_store::PostgresStore::connect(&url).await.unwrap();
    let summary = crash_and_check(dir.path(), Some(&url), &store).await;
    let check = store.verify_audit().await.unwrap();
    assert!(check.is_intact(), "{check:?}");
    eprintln!(
        "postgres crash test: {summary}; {} audit events verified",
        check.verified
    );
    drop(store);
    db.drop_database().await;
}
