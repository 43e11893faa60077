//! `watch`: one progress bar per app of each watched run (indicatif, on standard error when
//! it is a terminal), redrawn from the store until the runs end; then a table (or JSON) of
//! where each app stands.

use std::collections::BTreeMap;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use offboard::{Result, Run, RunId, RunQuery, TaskState};
use serde::Serialize;

use crate::WatchArgs;
use crate::commands::{Ctx, state_name};
use crate::output::{Exit, table};

/// Where one app of one run stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct AppProgress {
    /// The run.
    pub run: String,
    /// The app.
    pub app: String,
    /// The run's state.
    pub run_state: String,
    /// Tasks in all.
    pub tasks: u64,
    /// Tasks ended (completed, failed, skipped, cancelled, rolled back).
    pub ended: u64,
    /// Of which failed.
    pub failed: u64,
    /// Tasks held for a confirmation.
    pub held: u64,
    /// Tasks waiting on a person (delegated).
    pub delegated: u64,
}

/// Per app, in the order the run lists them.
pub(crate) fn progress(run: &Run) -> Vec<AppProgress> {
    let mut apps: Vec<AppProgress> = Vec::new();
    for t in &run.tasks {
        let i = match apps.iter().position(|a| a.app == t.app.as_str()) {
            Some(i) => i,
            None => {
                apps.push(AppProgress {
                    run: run.id.to_string(),
                    app: t.app.to_string(),
                    run_state: state_name(run.state),
                    ..AppProgress::default()
                });
                apps.len() - 1
            }
        };
        let a = &mut apps[i];
        a.tasks += 1;
        a.ended += u64::from(t.state.is_terminal());
        a.failed += u64::from(matches!(t.state, TaskState::Failed { .. }));
        a.held += u64::from(t.state == TaskState::Held);
        a.delegated += u64::from(matches!(t.state, TaskState::Delegated { .. }));
    }
    apps
}

fn message(a: &AppProgress) -> String {
    let mut m = vec![a.run_state.clone()];
    if a.failed > 0 {
        m.push(format!("{} failed", a.failed));
    }
    if a.held > 0 {
        m.push(format!("{} held", a.held));
    }
    if a.delegated > 0 {
        m.push(format!("{} with a person", a.delegated));
    }
    m.join(", ")
}

/// The bars, one per (run, app).
struct Bars {
    multi: MultiProgress,
    style: ProgressStyle,
    bars: BTreeMap<(String, String), ProgressBar>,
}

impl Bars {
    fn new() -> Self {
        let style = ProgressStyle::with_template("{prefix:<24} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        Self {
            multi: MultiProgress::new(),
            style,
            bars: BTreeMap::new(),
        }
    }

    fn draw(&mut self, a: &AppProgress) {
        let key = (a.run.clone(), a.app.clone());
        let bar = self.bars.entry(key).or_insert_with(|| {
            let b = self.multi.add(ProgressBar::new(a.tasks));
            b.set_style(self.style.clone());
            b.set_prefix(format!("{} {}", &a.run[..8.min(a.run.len())], a.app));
            b
        });
        bar.set_length(a.tasks);
        bar.set_position(a.ended);
        bar.set_message(message(a));
    }

    fn finish(self) {
        for b in self.bars.values() {
            b.finish();
        }
    }
}

async fn watched(ctx: &Ctx, args: &WatchArgs) -> Result<Vec<RunId>> {
    if !args.runs.is_empty() {
        return Ok(args.runs.clone());
    }
    let open = ctx
        .backend
        .store()
        .list_runs(RunQuery::default().open())
        .await?;
    Ok(open.into_iter().map(|r| r.id).collect())
}

/// Draws the watched runs' progress until they end (or `--once`, or `--timeout-secs`).
pub(crate) async fn watch(ctx: &Ctx, args: &WatchArgs) -> Result<Exit> {
    let store = ctx.backend.store();
    let ids = watched(ctx, args).await?;
    let deadline = args
        .timeout_secs
        .map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let mut bars = Bars::new();
    let last = loop {
        let mut rows = Vec::new();
        let mut open = false;
        for id in &ids {
            let run = store
                .load_run(*id)
                .await?
                .ok_or_else(|| offboard::Error::not_found(format!("run {id} does not exist")))?;
            open |= !run.state.is_terminal();
            rows.extend(progress(&run));
        }
        rows.iter().for_each(|a| bars.draw(a));
        let timed_out = deadline.is_some_and(|d| tokio::time::Instant::now() >= d);
        if !open || args.once || timed_out {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(args.interval_ms.max(50))).await;
    };
    bars.finish();
    let doc = serde_json::json!({ "apps": last });
    ctx.out.emit(&doc, || {
        let mut t = table([
            "run",
            "app",
            "run state",
            "ended",
            "failed",
            "held",
            "with a person",
        ]);
        for a in &last {
            t.add_row([
                a.run.clone(),
                a.app.clone(),
                a.run_state.clone(),
                format!("{}/{}", a.ended, a.tasks),
                a.failed.to_string(),
                a.held.to_string(),
                a.delegated.to_string(),
            ]);
        }
        println!("{t}");
    });
    Ok(Exit::Ok)
}
