//! The period report's aggregates and its charts (SVG drawn server-side with `plotters`).
//!
//! Memory stays flat in the number of runs: per ISO week one small histogram per metric
//! (median and p90 to two significant digits), per app three counters.

use std::collections::BTreeMap;

use chrono::Datelike;
use hdrhistogram::Histogram;
use offboard_core::AppId;
use plotters::prelude::*;

use super::RunReport;

/// The largest duration a histogram keeps exactly (longer ones count as this): 10 years in
/// milliseconds.
const MAX_MS: u64 = 10 * 365 * 24 * 3600 * 1000;

/// What the last verification of a run says about one app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AppResult {
    /// No access left.
    Revoked,
    /// Access left: the findings.
    Remaining(Vec<String>),
    /// Not checked (no connector could verify it, or the lookup failed).
    Unchecked,
    /// Revoked or not checked: the verification counted fewer revoked apps than apps without
    /// findings and did not record which ones.
    Ambiguous,
}

/// Per app of `report` (ignored apps aside, in order of first task): what its last
/// verification says, or `None` when no verification ran.
///
/// The `verified` audit event counts apps checked and revoked and lists findings as
/// `app: finding`: an app with findings has access left; when every app without findings
/// was revoked (their number is the count revoked) they are revoked, when none was they are
/// unchecked; otherwise which of them were revoked is not recorded: ambiguous.
pub(crate) fn app_results(report: &RunReport) -> Vec<(AppId, Option<AppResult>)> {
    let mut apps: Vec<&AppId> = Vec::new();
    for a in &report.actions {
        if a.action != format!("{}.ignore", a.app) && !apps.contains(&&a.app) {
            apps.push(&a.app);
        }
    }
    let Some(v) = &report.verification else {
        return apps.into_iter().map(|a| (a.clone(), None)).collect();
    };
    let findings = |app: &AppId| -> Vec<String> {
        let prefix = format!("{app}: ");
        v.remaining
            .iter()
            .filter_map(|r| r.strip_prefix(&prefix).map(str::to_owned))
            .collect()
    };
    let without = apps.iter().filter(|a| findings(a).is_empty()).count();
    let all_revoked = v.revoked as usize == without;
    let none_revoked = v.revoked == 0;
    apps.into_iter()
        .map(|app| {
            let found = findings(app);
            let result = if !found.is_empty() {
                AppResult::Remaining(found)
            } else if all_revoked {
                AppResult::Revoked
            } else if none_revoked {
                AppResult::Unchecked
            } else {
                AppResult::Ambiguous
            };
            (app.clone(), Some(result))
        })
        .collect()
}

/// One ISO week's durations.
#[derive(Debug)]
struct Week {
    offboarding: Histogram<u64>,
    revoke: Histogram<u64>,
}

impl Week {
    fn new() -> Self {
        let h = || Histogram::new_with_bounds(1, MAX_MS, 2).expect("valid bounds");
        Self {
            offboarding: h(),
            revoke: h(),
        }
    }
}

/// Per app: accounts whose verification was checked, of which revoked, and unchecked.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct AppCount {
    checked: u64,
    revoked: u64,
    unchecked: u64,
}

/// The aggregates a period report's charts need, added one run at a time.
#[derive(Debug, Default)]
pub struct PeriodCharts {
    weeks: BTreeMap<(i32, u32), Week>,
    apps: BTreeMap<AppId, AppCount>,
}

/// Median and p90 of one metric in one ISO week, in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeekStat {
    /// `2026-W49`.
    pub week: String,
    /// Runs with the metric.
    pub runs: u64,
    /// Median (two significant digits).
    pub median_ms: u64,
    /// 90th percentile (two significant digits).
    pub p90_ms: u64,
}

impl PeriodCharts {
    /// Adds one run (by its creation week; verification results by app).
    pub fn add(&mut self, report: &RunReport) {
        let iso = report.created_at.iso_week();
        let week = self
            .weeks
            .entry((iso.year(), iso.week()))
            .or_insert_with(Week::new);
        if let Some(ms) = report.offboarding_time_ms {
            week.offboarding.saturating_record(ms.clamp(1, MAX_MS));
        }
        if let Some(ms) = report.time_to_revoke_ms {
            week.revoke.saturating_record(ms.clamp(1, MAX_MS));
        }
        for (app, result) in app_results(report) {
            let Some(result) = result else { continue };
            let count = self.apps.entry(app).or_default();
            match result {
                AppResult::Revoked => {
                    count.checked += 1;
                    count.revoked += 1;
                }
                AppResult::Remaining(_) => count.checked += 1,
                AppResult::Unchecked | AppResult::Ambiguous => count.unchecked += 1,
            }
        }
    }

    fn stats(&self, pick: impl Fn(&Week) -> &Histogram<u64>) -> Vec<WeekStat> {
        self.weeks
            .iter()
            .map(|((year, week), w)| {
                let h = pick(w);
                WeekStat {
                    week: format!("{year}-W{week:02}"),
                    runs: h.len(),
                    median_ms: if h.is_empty() {
                        0
                    } else {
                        h.value_at_quantile(0.5)
                    },
                    p90_ms: if h.is_empty() {
                        0
                    } else {
                        h.value_at_quantile(0.9)
                    },
                }
            })
            .collect()
    }

    /// Offboarding time (creation to the last task's end) per ISO week of creation.
    pub fn offboarding_weeks(&self) -> Vec<WeekStat> {
        self.stats(|w| &w.offboarding)
    }

    /// Time to revoke per ISO week of creation.
    pub fn revoke_weeks(&self) -> Vec<WeekStat> {
        self.stats(|w| &w.revoke)
    }

    /// Per app: (app, accounts checked, of which revoked, unchecked).
    pub fn accuracy(&self) -> Vec<(AppId, u64, u64, u64)> {
        self.apps
            .iter()
            .map(|(app, c)| (app.clone(), c.checked, c.revoked, c.unchecked))
            .collect()
    }

    /// The line chart of a per-week metric's median and p90, as an SVG document.
    pub(crate) fn weeks_svg(title: &str, weeks: &[WeekStat]) -> String {
        let weeks: Vec<&WeekStat> = weeks.iter().filter(|w| w.runs > 0).collect();
        let max = weeks.iter().map(|w| w.p90_ms).max().unwrap_or(0);
        let (unit, per) = unit_for(max);
        let mut svg = String::new();
        let drawn = (|| -> Result<(), Box<dyn std::error::Error + '_>> {
            let root = SVGBackend::with_string(&mut svg, (720, 300)).into_drawing_area();
            root.fill(&WHITE)?;
            let n = weeks.len().max(1);
            let top = if max == 0 {
                1.0
            } else {
                max as f64 / per * 1.15
            };
            let mut chart = ChartBuilder::on(&root)
                .caption(title, ("sans-serif", 18))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(56)
                .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..top)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(n.min(12))
                .x_label_formatter(&|x| {
                    let i = x.round();
                    if (x - i).abs() < 1e-6 && i >= 0.0 {
                        weeks
                            .get(i as usize)
                            .map(|w| w.week.clone())
                            .unwrap_or_default()
                    } else {
                        String::new()
                    }
                })
                .y_desc(unit)
                .draw()?;
            let p = |f: fn(&WeekStat) -> u64| -> Vec<(f64, f64)> {
                weeks
                    .iter()
                    .enumerate()
                    .map(|(i, w)| (i as f64, f(w) as f64 / per))
                    .collect()
            };
            let median = RGBColor(31, 78, 121);
            let p90 = RGBColor(192, 80, 77);
            for (name, color, points) in [
                ("median", median, p(|w| w.median_ms)),
                ("p90", p90, p(|w| w.p90_ms)),
            ] {
                chart
                    .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
                    .label(name)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                    });
                chart.draw_series(PointSeries::of_element(
                    points,
                    4,
                    color.filled(),
                    &|c, s, st| Circle::new(c, s, st),
                ))?;
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK.mix(0.3))
                .position(SeriesLabelPosition::UpperLeft)
                .draw()?;
            root.present()?;
            Ok(())
        })();
        drawn.map_or_else(|e| failed(&e.to_string()), |()| svg)
    }

    /// The bar chart of the share of verified-revoked accounts per app, as an SVG document.
    pub(crate) fn accuracy_svg(&self) -> String {
        let apps: Vec<(String, f64)> = self
            .apps
            .iter()
            .filter(|(_, c)| c.checked > 0)
            .map(|(app, c)| (app.to_string(), 100.0 * c.revoked as f64 / c.checked as f64))
            .collect();
        let mut svg = String::new();
        let drawn = (|| -> Result<(), Box<dyn std::error::Error + '_>> {
            let root = SVGBackend::with_string(&mut svg, (720, 300)).into_drawing_area();
            root.fill(&WHITE)?;
            // A segmented 0..k has k + 1 slots.
            let last = u32::try_from(apps.len().saturating_sub(1))
                .unwrap_or(u32::MAX)
                .max(1);
            let mut chart = ChartBuilder::on(&root)
                .caption(
                    "Revocation accuracy per app (verified revoked / checked)",
                    ("sans-serif", 18),
                )
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(56)
                .build_cartesian_2d((0u32..last).into_segmented(), 0f64..110f64)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(apps.len().max(1))
                .x_label_formatter(&|v| match v {
                    SegmentValue::CenterOf(i) => apps
                        .get(*i as usize)
                        .map(|(a, _)| a.clone())
                        .unwrap_or_default(),
                    _ => String::new(),
                })
                .y_labels(6)
                .y_label_formatter(&|y| format!("{y:.0}%"))
                .draw()?;
            let bar = RGBColor(31, 78, 121);
            let short = RGBColor(192, 80, 77);
            chart.draw_series(apps.iter().enumerate().map(|(i, (_, pct))| {
                let i = i as u32;
                let color = if *pct >= 100.0 { bar } else { short };
                let mut r = Rectangle::new(
                    [
                        (SegmentValue::Exact(i), 0.0),
                        (SegmentValue::Exact(i + 1), *pct),
                    ],
                    color.filled(),
                );
                r.set_margin(0, 0, 18, 18);
                r
            }))?;
            chart.draw_series(apps.iter().enumerate().map(|(i, (_, pct))| {
                Text::new(
                    format!("{pct:.0}%"),
                    (SegmentValue::CenterOf(i as u32), pct + 6.0),
                    ("sans-serif", 14).into_font(),
                )
            }))?;
            root.present()?;
            Ok(())
        })();
        drawn.map_or_else(|e| failed(&e.to_string()), |()| svg)
    }
}

/// The unit to show durations up to `max_ms` in, and milliseconds per unit.
fn unit_for(max_ms: u64) -> (&'static str, f64) {
    match max_ms {
        0..120_000 => ("seconds", 1_000.0),
        120_000..7_200_000 => ("minutes", 60_000.0),
        7_200_000..172_800_000 => ("hours", 3_600_000.0),
        _ => ("days", 86_400_000.0),
    }
}

/// A chart that could not be drawn: a small SVG saying so (never an empty hole).
fn failed(why: &str) -> String {
    maud::html! {
        svg xmlns="http://www.w3.org/2000/svg" width="720" height="40" {
            text x="8" y="24" { "chart unavailable: " (why) }
        }
    }
    .into_string()
}

#[cfg(test)]
mod tests {
    use super::{AppResult, PeriodCharts, app_results, unit_for};
    use crate::report::RunReport;

    /// A report created `day` days after Monday 2026-11-30 (ISO week 49), taking `minutes`,
    /// with idp and crm tasks and a verification that found `remaining`.
    fn report(day: i64, minutes: u64, checked: u32, revoked: u32, remaining: &[&str]) -> RunReport {
        let created = chrono::DateTime::parse_from_rfc3339("2026-11-30T09:00:00Z")
            .unwrap()
            .to_utc()
            + chrono::TimeDelta::days(day);
        let action = |app: &str, action: &str| {
            serde_json::json!({
                "task": uuid::Uuid::new_v4(), "app": app, "action": action, "account": null,
                "stage": "effective", "state": "completed", "outcome": "done", "detail": null,
                "error": null, "attempts": 1, "started_at": null, "finished_at": null,
                "ticket": null, "ticket_url": null, "assignee": null,
            })
        };
        serde_json::from_value(serde_json::json!({
            "run": uuid::Uuid::new_v4(), "person": "p", "email": "p@example.com",
            "initiated_by": "hr", "reason": "", "created_at": created, "effective_at": created,
            "finished_at": null, "state": "completed", "dry_run": false, "confirmed_by": null,
            "offboarding_time_ms": minutes * 60_000, "time_to_revoke_ms": minutes * 1_000,
            "actions": [action("idp", "idp.suspend"), action("crm", "crm.delegate_jira"),
                        action("wiki", "wiki.ignore")],
            "verification": { "at": created, "checked": checked, "revoked": revoked,
                              "remaining": remaining },
        }))
        .unwrap()
    }

    /// Per ISO week, median and p90 (two significant digits) from one histogram per metric;
    /// per app, the share verified revoked, unchecked and ambiguous apps apart.
    #[test]
    fn weeks_and_apps_aggregate_a_runs_report_each() {
        let mut charts = PeriodCharts::default();
        for m in 1..=20 {
            charts.add(&report(m as i64 % 7, m, 2, 2, &[]));
        }
        charts.add(&report(7, 100, 2, 1, &["crm: license assigned"]));
        charts.add(&report(8, 300, 1, 1, &[]));
        let weeks = charts.offboarding_weeks();
        assert_eq!(
            weeks
                .iter()
                .map(|w| (w.week.as_str(), w.runs))
                .collect::<Vec<_>>(),
            [("2026-W49", 20), ("2026-W50", 2)]
        );
        let minute = 60_000;
        assert!(
            (10 * minute..=11 * minute).contains(&weeks[0].median_ms),
            "{weeks:?}"
        );
        assert!(
            (18 * minute..=19 * minute).contains(&weeks[0].p90_ms),
            "{weeks:?}"
        );
        assert_eq!(charts.revoke_weeks()[1].runs, 2);
        // idp: 20 + 1 revoked of 21 checked, 1 ambiguous; crm: 20 of 21, 1 ambiguous.
        assert_eq!(
            charts.accuracy(),
            [("crm".into(), 21, 20, 1), ("idp".into(), 21, 21, 1)]
        );
        let svg = charts.accuracy_svg();
        assert_eq!(svg.matches("<rect").count() - 1, 2, "a bar per app: {svg}");
    }

    #[test]
    fn an_apps_result_is_only_what_the_verification_recorded() {
        let results = |r: &RunReport| -> Vec<AppResult> {
            app_results(r)
                .into_iter()
                .map(|(_, r)| r.unwrap())
                .collect()
        };
        let r = report(0, 1, 2, 1, &["crm: license assigned"]);
        assert_eq!(
            results(&r),
            [
                AppResult::Revoked,
                AppResult::Remaining(vec!["license assigned".into()])
            ]
        );
        // One of two apps without findings revoked, and which is not recorded.
        let r = report(0, 1, 1, 1, &[]);
        assert_eq!(results(&r), [AppResult::Ambiguous, AppResult::Ambiguous]);
        let r = report(0, 1, 0, 0, &[]);
        assert_eq!(results(&r), [AppResult::Unchecked, AppResult::Unchecked]);
    }

    #[test]
    fn durations_are_shown_in_a_readable_unit() {
        assert_eq!(unit_for(0).0, "seconds");
        assert_eq!(unit_for(300_000).0, "minutes");
        assert_eq!(unit_for(10 * 3_600_000).0, "hours");
        assert_eq!(unit_for(5 * 86_400_000).0, "days");
    }
}
