//! What the SQLite and PostgreSQL "reports from the chain" tests share: a real engine run
//! with a failed task, the falsification of that task's stored row, and the checks that
//! every report format still shows the chain's truth and names the falsified row.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use offboard_core::{
    Engine, ErrorKind, Initiator, Person, Policy, RetryPolicy, RunId, RunRequest, Store, TaskId,
};
use offboard_store::report::{Format, RunPages, RunReport, write_period};
use offboard_testkit::suite::reference::{ReferenceConnector, ReferenceUser, permanent};

/// The mark the falsified row carries, so the tests can tell where it shows.
pub(crate) const FORGED: &str = "FORGED-removed-by-hand";

/// Runs one offboarding on `store` (groups removal fails permanently) and verifies it.
/// Returns the run and the failed task.
pub(crate) async fn run_with_a_failed_task<S: Store + 'static>(store: Arc<S>) -> (RunId, TaskId) {
    let connector = Arc::new(
        ReferenceConnector::builder("idp")
            .user(ReferenceUser::employee("ada@example.com").group("eng"))
            .fail_always(
                "idp.remove_groups",
                permanent(ErrorKind::PermissionDenied, "groups are locked"),
            )
            .build(),
    );
    let policy = "[apps.idp]\nmethod = \"automatic\"\n\
                  actions = [\"idp.suspend\", \"idp.remove_groups\"]\n";
    let engine = Engine::builder()
        .store(store.clone())
        .connector(connector)
        .policy(Policy::from_toml(policy).unwrap())
        .retry(RetryPolicy {
            max_attempts: 1,
            max_elapsed: Duration::from_secs(60),
        })
        .build()
        .unwrap();
    let request = RunRequest::new(
        Person::new("p-ada", "ada@example.com"),
        Initiator::Admin {
            actor: "hr-admin@example.com".into(),
        },
    );
    let plan = engine.plan(request).await.unwrap();
    let id = engine.submit(plan, None).await.unwrap();
    while engine.run_due().await.unwrap() > 0 {}
    engine.verify(id).await.unwrap();
    let run = store.load_run(id).await.unwrap().unwrap();
    let failed = run
        .tasks
        .iter()
        .find(|t| t.label() == "idp.remove_groups")
        .unwrap();
    assert_eq!(failed.state.name(), "failed", "{:?}", failed.state);
    (id, failed.id)
}

/// The failed task's row body, falsified: completed ("done", with [`FORGED`] as its detail)
/// and finished a day earlier.
pub(crate) fn falsified(body: &str) -> String {
    let mut task: serde_json::Value = serde_json::from_str(body).unwrap();
    task["state"] =
        serde_json::json!({ "state": "completed", "outcome": "done", "detail": FORGED });
    let finished: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(task["finished_at"].clone()).unwrap();
    task["finished_at"] = serde_json::to_value(finished - TimeDelta::days(1)).unwrap();
    task.to_string()
}

/// The reports of run `id` before any falsification: built from the chain, no discrepancy.
pub(crate) async fn assert_untouched_run_agrees<S: Store>(store: &S, id: RunId) {
    let report = RunReport::load(store, id).await.unwrap();
    assert_eq!(
        report.discrepancies,
        [],
        "an untouched run replays to its row"
    );
}

/// After `task` of run `id` was falsified: the run's report, and the CSV, JSON and HTML period
/// reports, show the task as failed (the chain) and list the falsified row as a
/// discrepancy; the forged value shows nowhere else.
pub(crate) async fn assert_reports_tell_the_truth<S: RunPages>(store: &S, id: RunId, task: TaskId) {
    let stored = store.load_run(id).await.unwrap().unwrap();
    let forged = stored.tasks.iter().find(|t| t.id == task).unwrap();
    assert_eq!(forged.state.name(), "completed", "the row is falsified");

    let report = RunReport::load(store, id).await.unwrap();
    let line = report.actions.iter().find(|a| a.task == task).unwrap();
    assert_eq!(line.state, "failed", "{line:?}");
    assert!(line.error.as_deref().unwrap().contains("groups are locked"));
    assert_eq!(line.outcome, None);
    let state = report
        .discrepancies
        .iter()
        .find(|d| d.task == Some(task) && d.field == "state")
        .unwrap_or_else(|| panic!("{:?}", report.discrepancies));
    assert!(state.stored.contains(FORGED), "{state:?}");
    assert!(state.chain.contains("failed"), "{state:?}");
    assert!(
        report
            .discrepancies
            .iter()
            .any(|d| d.task == Some(task) && d.field == "finished_at"),
        "{:?}",
        report.discrepancies
    );

    let (since, until) = (
        report.created_at - TimeDelta::hours(1),
        report.created_at + TimeDelta::hours(1),
    );
    let period = async |format| {
        let mut out = Vec::new();
        write_period(store, since, until, format, &mut out)
            .await
            .unwrap();
        String::from_utf8(out).unwrap()
    };

    // CSV: the task's row says failed; the forged value only in the discrepancies column.
    let csv = period(Format::Csv).await;
    let mut reader = csv::ReaderBuilder::new().from_reader(csv.as_bytes());
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let row = rows
        .iter()
        .find(|r| r[col("task")] == task.to_string())
        .unwrap();
    assert_eq!(&row[col("task_state")], "failed");
    assert_eq!(&row[col("outcome")], "");
    for r in &rows {
        for (i, field) in r.iter().enumerate() {
            if i != col("discrepancies") {
                assert!(!field.contains(FORGED), "column {}: {field}", &header[i]);
            }
        }
        assert!(r[col("discrepancies")].contains(FORGED), "{r:?}");
    }

    // JSON: the same.
    let json: serde_json::Value = serde_json::from_str(&period(Format::Json).await).unwrap();
    let run = &json["runs"][0];
    let action = run["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["task"] == task.to_string())
        .unwrap();
    assert_eq!(action["state"], "failed");
    assert!(!action.to_string().contains(FORGED));
    assert!(run["discrepancies"].to_string().contains(FORGED), "{run}");

    // HTML: the warning box names the forged row; nothing outside it shows the forged value.
    let html = period(Format::Html).await;
    let start = html
        .find("<div class=\"discrepancies\"")
        .unwrap_or_else(|| panic!("no discrepancies box: {html}"));
    let end = start + html[start..].find("</div>").unwrap();
    assert!(html[start..end].contains(FORGED));
    assert!(html[start..end].contains(&task.to_string()));
    let outside = format!("{}{}", &html[..start], &html[end..]);
    assert!(!outside.contains(FORGED), "{outside}");
    assert!(outside.contains("groups are locked"));
}
