//! Compliance reports: one run's report from a real engine run, and a streamed period report.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use offboard_core::{
    Confirmation, Engine, ErrorKind, Initiator, Person, Policy, RetryPolicy, Run, RunId,
    RunRequest, RunState, Store,
};
use offboard_store::SqliteStore;
use offboard_store::report::{CSV_HEADER, Format, RunReport, write_period};
use offboard_testkit::suite::reference::{ReferenceConnector, ReferenceUser, permanent};

const POLICY: &str = r#"
[apps.idp]
method = "automatic"
actions = ["idp.suspend", "idp.clear_sessions", "idp.remove_groups"]
"#;

#[tokio::test]
async fn a_runs_report_shows_initiator_actions_errors_and_verification() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("o.db")).await.unwrap());
    let connector = Arc::new(
        ReferenceConnector::builder("idp")
            .user(ReferenceUser::employee("ada@example.com").group("eng"))
            .fail_always(
                "idp.remove_groups",
                permanent(ErrorKind::PermissionDenied, "groups are, locked \"here\""),
            )
            .build(),
    );
    let engine = Engine::builder()
        .store(store.clone())
        .connector(connector)
        .policy(Policy::from_toml(POLICY).unwrap())
        .retry(RetryPolicy {
            max_attempts: 1,
            max_elapsed: Duration::from_secs(60),
        })
        .idle_poll(Duration::from_millis(10))
        .build()
        .unwrap();
    let request = RunRequest::new(
        Person::new("p-ada", "ada@example.com"),
        Initiator::Admin {
            actor: "hr-admin@example.com".into(),
        },
    )
    .with_reason("=resigned, effective today");
    let plan = engine.plan(request).await.unwrap();
    let confirm = plan
        .has_critical()
        .then(|| Confirmation::of(&plan, "hr-admin@example.com"));
    let id = engine.submit(plan, confirm).await.unwrap();
    let workers = engine.start();
    let run = tokio::time::timeout(Duration::from_secs(60), engine.wait(id))
        .await
        .unwrap()
        .unwrap();
    workers.shutdown().await;
    engine.verify(id).await.unwrap();

    let report = RunReport::load(store.as_ref(), id).await.unwrap();
    assert_eq!(report.run, id);
    assert_eq!(report.initiated_by, "hr-admin@example.com");
    assert_eq!(report.state, run.state);
    assert_eq!(report.actions.len(), 3);
    let suspend = report
        .actions
        .iter()
        .find(|a| a.action == "idp.suspend")
        .unwrap();
    assert_eq!(suspend.state, "completed");
    assert_eq!(suspend.outcome.as_deref(), Some("done"));
    let groups = report
        .actions
        .iter()
        .find(|a| a.action == "idp.remove_groups")
        .unwrap();
    assert_eq!(groups.state, "failed");
    assert!(
        groups
            .error
            .as_deref()
            .unwrap()
            .contains("groups are, locked"),
        "{groups:?}"
    );
    assert!(report.offboarding_time_ms.is_some());
    let verification = report.verification.clone().expect("the verification pass");
    assert_eq!(verification.checked, 1);

    let csv = report.to_csv();
    let mut lines = csv.split("\r\n");
    assert_eq!(lines.next(), Some(CSV_HEADER));
    let rows: Vec<&str> = lines.filter(|l| !l.is_empty()).collect();
    assert_eq!(rows.len(), 3, "{csv}");
    // The reason is quoted (comma) and defused (leading '=').
    assert!(
        rows[0].contains("\"'=resigned, effective today\""),
        "{}",
        rows[0]
    );
    assert!(csv.contains("\"\"here\"\""), "{csv}");

    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["initiated_by"], "hr-admin@example.com");
    assert_eq!(json["actions"].as_array().unwrap().len(), 3);
    let back: RunReport = serde_json::from_value(json).unwrap();
    assert_eq!(back, report);
}

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_900_000_000 + secs, 0).unwrap()
}

fn bare_run(created: DateTime<Utc>, state: RunState) -> Run {
    Run {
        id: RunId::new_v4(),
        person: Person::new(format!("p-{}", uuid::Uuid::new_v4()), "x@example.com"),
        initiator: Initiator::Schedule,
        reason: "period".into(),
        created_at: created,
        effective_at: created,
        dry_run: false,
        plan_digest: "sha256:x".into(),
        policy: String::new(),
        confirmed_by: None,
        tasks: Vec::new(),
        state,
        cancelled: false,
        rollback_requested: false,
        restore_lease: None,
        retry: RetryPolicy::default(),
        delegation_poll: Duration::from_secs(60),
        version: 0,
        finished_at: None,
    }
}

#[tokio::test]
async fn a_period_report_pages_through_every_run_of_the_period_once() {
    let store = SqliteStore::in_memory().await.unwrap();
    // 450 runs in the period, many sharing a creation second (page boundaries fall inside
    // groups of equal times), and runs just outside it.
    let mut inside = std::collections::BTreeSet::new();
    for i in 0..450 {
        let state = if i % 3 == 0 {
            RunState::Completed
        } else {
            RunState::Running
        };
        let run = bare_run(at(i / 7), state);
        inside.insert(run.id);
        store.create_run(&run, vec![]).await.unwrap();
    }
    for t in [at(-1), at(1000)] {
        store
            .create_run(&bare_run(t, RunState::Completed), vec![])
            .await
            .unwrap();
    }
    let (since, until) = (at(0), at(1000));

    let mut csv = Vec::new();
    let summary = write_period(&store, since, until, Format::Csv, &mut csv)
        .await
        .unwrap();
    assert_eq!(summary.runs, 450);
    assert_eq!(summary.completed, 150);
    assert_eq!(summary.open, 300);
    let csv = String::from_utf8(csv).unwrap();
    let rows: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(rows[0], CSV_HEADER);
    let ids: std::collections::BTreeSet<RunId> = rows[1..]
        .iter()
        .map(|r| r.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        rows.len() - 1,
        450,
        "one row per run without tasks, none twice"
    );
    assert_eq!(ids, inside);

    let mut json = Vec::new();
    write_period(&store, since, until, Format::Json, &mut json)
        .await
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let runs = doc["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 450);
    assert_eq!(doc["summary"]["runs"], 450);
    let created: Vec<&str> = runs
        .iter()
        .map(|r| r["created_at"].as_str().unwrap())
        .collect();
    assert!(created.windows(2).all(|w| w[0] <= w[1]), "oldest first");
}

#[tokio::test]
async fn a_held_run_is_stored_and_reported_as_waiting_for_a_confirmation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.db");
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    let connector = Arc::new(
        ReferenceConnector::builder("idp")
            .user(ReferenceUser::employee("ada@example.com"))
            .build(),
    );
    let policy =
        "[apps.idp]\nmethod = \"automatic\"\nactions = [\"idp.suspend\", \"idp.delete\"]\n";
    let engine_on = |store: Arc<SqliteStore>| {
        Engine::builder()
            .store(store)
            .connector(connector.clone())
            .policy(Policy::from_toml(policy).unwrap())
            .build()
            .unwrap()
    };
    let engine = engine_on(store.clone());
    let request = RunRequest::new(
        Person::new("p-ada", "ada@example.com"),
        Initiator::SourceOfTruth {
            source: "hr".into(),
        },
    );
    let plan = engine.plan(request).await.unwrap();
    let digest = plan.digest.clone();
    let id = engine.submit(plan, None).await.unwrap();
    engine.run_due().await.unwrap();
    drop(engine);
    drop(store);

    // Another process opens the database: the held task, its run's state and the trail are
    // there.
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    let run = store.load_run(id).await.unwrap().unwrap();
    assert_eq!(run.state, RunState::AwaitingConfirmation);
    let delete = run
        .tasks
        .iter()
        .find(|t| t.label() == "idp.delete")
        .unwrap();
    assert_eq!(delete.state, offboard_core::TaskState::Held);
    assert_eq!(delete.due_at, None);
    assert_eq!(run.confirmation_digest(), digest);
    let report = RunReport::load(store.as_ref(), id).await.unwrap();
    assert_eq!(report.state, RunState::AwaitingConfirmation);
    let line = report
        .actions
        .iter()
        .find(|a| a.action == "idp.delete")
        .unwrap();
    assert_eq!(line.state, "held");
    assert!(
        line.detail.as_deref().unwrap().contains(&digest),
        "{line:?}"
    );
    assert!(report.to_csv().contains("awaiting_confirmation"));

    let engine = engine_on(store.clone());
    engine
        .confirm(id, Confirmation::new(digest, "sec-lead@example.com"))
        .await
        .unwrap();
    let events = store
        .audit(offboard_core::AuditQuery::run(id))
        .await
        .unwrap();
    let confirmed = events
        .iter()
        .find(|e| e.kind.name() == "confirmed")
        .expect("the confirmation is in the trail");
    assert_eq!(confirmed.actor, "sec-lead@example.com");
    engine.run_due().await.unwrap();
    let run = store.load_run(id).await.unwrap().unwrap();
    assert_eq!(run.state, RunState::Completed);
    assert_eq!(run.confirmed_by.as_deref(), Some("sec-lead@example.com"));
    store.verify_audit().await.unwrap().into_result().unwrap();
}

#[path = "common/falsify.rs"]
mod falsify;

/// Issue 23 item 3, on SQLite: a task row falsified in SQL (a failed task marked completed
/// "done", finished a day earlier; no trigger guards task rows) cannot change a report
/// silently: the run's report and the CSV, JSON and HTML period reports show the task as the
/// chain replays it (failed) and list the forged row as a discrepancy. Failed before reports
/// were built from the chain: every format showed the forged "completed (done)".
#[tokio::test]
async fn a_falsified_task_row_cannot_change_a_report_silently_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.db");
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    let (id, task) = falsify::run_with_a_failed_task(store.clone()).await;
    falsify::assert_untouched_run_agrees(store.as_ref(), id).await;

    use sqlx::Connection;
    let mut raw = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let (body,): (String,) = sqlx::query_as("SELECT body FROM offboard_tasks WHERE id = ?")
        .bind(task.to_string())
        .fetch_one(&mut raw)
        .await
        .unwrap();
    sqlx::query("UPDATE offboard_tasks SET body = ? WHERE id = ?")
        .bind(falsify::falsified(&body))
        .bind(task.to_string())
        .execute(&mut raw)
        .await
        .unwrap();
    raw.close().await.unwrap();
    falsify::assert_reports_tell_the_truth(store.as_ref(), id, task).await;
}
