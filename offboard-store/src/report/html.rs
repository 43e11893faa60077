//! The HTML compliance report: a print-friendly document for auditors, rendered with maud
//! (every field escaped), no JavaScript. A period report is written in three parts so it
//! streams: [`head`], one [`run_section`] per run, [`tail`] with the summary and charts.

use chrono::{DateTime, SecondsFormat, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use offboard_core::audit::ChainProblem;

use super::charts::{AppResult, PeriodCharts, app_results};
use super::{PeriodSummary, RunReport};
use crate::AuditVerification;

const CSS: &str = r#"
:root { color-scheme: light; }
body { font: 14px/1.45 "Helvetica Neue", Arial, sans-serif; color: #1b1b1b; margin: 0 auto;
  max-width: 1100px; padding: 24px 32px; background: #fff; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 0 0 8px; border-bottom: 2px solid #1f4e79; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 16px 0 6px; color: #1f4e79; }
header.report { border-bottom: 3px double #1f4e79; padding-bottom: 12px; margin-bottom: 20px; }
.meta { color: #444; margin: 2px 0; }
.chain { display: inline-block; padding: 6px 10px; border-radius: 4px; font-weight: 600;
  margin-top: 8px; }
.chain.intact { background: #e6f2e6; border: 1px solid #3c763d; color: #2b542c; }
.chain.broken { background: #fbe9e7; border: 1px solid #a94442; color: #843534; }
section.run { margin: 0 0 28px; page-break-inside: auto; }
dl.facts { display: grid; grid-template-columns: max-content 1fr max-content 1fr;
  gap: 2px 14px; margin: 0 0 8px; }
dl.facts dt { font-weight: 600; color: #444; }
dl.facts dd { margin: 0; }
table { border-collapse: collapse; width: 100%; margin: 4px 0 8px; font-size: 12.5px; }
th, td { border: 1px solid #c8c8c8; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #eef3f8; }
tr { page-break-inside: avoid; }
.ok { color: #2b542c; font-weight: 600; }
.bad { color: #a94442; font-weight: 600; }
.muted { color: #777; }
.discrepancies { border: 2px solid #a94442; background: #fbe9e7; padding: 6px 10px;
  margin: 8px 0; }
.discrepancies h3 { color: #843534; margin-top: 0; }
.charts figure { margin: 12px 0; page-break-inside: avoid; }
.charts svg { max-width: 100%; height: auto; border: 1px solid #ddd; }
footer { margin-top: 24px; color: #777; font-size: 12px; }
@media print {
  body { max-width: none; padding: 0; font-size: 11px; }
  section.run { page-break-before: always; break-before: page; }
  section.run:first-of-type { page-break-before: auto; break-before: auto; }
  section.summary { page-break-before: always; break-before: page; }
  a { color: inherit; text-decoration: none; }
  .chain, .discrepancies, th { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
@page { size: A4; margin: 14mm; }
"#;

fn t(v: &DateTime<Utc>) -> String {
    v.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn ot(v: Option<&DateTime<Utc>>) -> String {
    v.map(t).unwrap_or_else(|| "—".into())
}

/// A duration in milliseconds, as people read it.
fn duration(ms: Option<u64>) -> String {
    let Some(ms) = ms else { return "—".into() };
    let s = ms / 1000;
    match s {
        0 => format!("{ms} ms"),
        1..60 => format!("{:.1} s", ms as f64 / 1000.0),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        3600..86_400 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        _ => format!("{} d {} h", s / 86_400, (s % 86_400) / 3600),
    }
}

fn chain_status(chain: &AuditVerification) -> Markup {
    match &chain.problem {
        None => html! {
            p.chain.intact id="chain" {
                "Audit chain: intact — " (chain.verified) " events verified"
            }
        },
        Some(problem) => {
            let seq = match problem {
                ChainProblem::Altered { seq }
                | ChainProblem::Inserted { seq }
                | ChainProblem::Missing { seq } => *seq,
            };
            html! {
                p.chain.broken id="chain" {
                    "Audit chain: BROKEN — first bad event seq " (seq) " (" (problem) ")"
                    @if let Some(column) = &chain.column { ", column " (column) }
                    "; " (chain.verified) " events verified before it"
                }
            }
        }
    }
}

fn document_head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) }
            style { (PreEscaped(CSS)) }
        }
    }
}

/// The start of a period report: the document head, the period and the chain's status.
pub(crate) fn head(
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    chain: &AuditVerification,
    generated: DateTime<Utc>,
) -> String {
    let title = format!(
        "Offboarding compliance report {} – {}",
        t(&since),
        t(&until)
    );
    let head = html! {
        header.report {
            h1 { "Offboarding compliance report" }
            p.meta { "Period: runs created from " strong { (t(&since)) } " to "
                strong { (t(&until)) } " (UTC, end excluded)" }
            p.meta { "Generated " (t(&generated)) ". Every run below is rebuilt from its \
                chained audit events; a stored record that differs is flagged." }
            (chain_status(chain))
            p.meta { a href="#summary" { "Summary and charts" } " at the end." }
        }
    };
    // The document stays open: runs follow, then `tail` closes it.
    format!(
        "{}<html lang=\"en\">{}<body>{}<main>",
        DOCTYPE.into_string(),
        document_head(&title).into_string(),
        head.into_string()
    )
}

/// One run, for a period report or the per-run view.
pub(crate) fn run_section(r: &RunReport) -> String {
    html! {
        section.run id={ "run-" (r.run) } {
            h2 {
                @if !r.name.is_empty() { (r.name) " — " }
                (r.person) " — " (r.email)
            }
            (run_facts(r))
            @if !r.discrepancies.is_empty() { (discrepancies(r)) }
            h3 { "Actions" }
            (actions(r))
            h3 { "Verification" }
            (verification(r))
            (delegated_tasks(r))
        }
    }
    .into_string()
}

/// A run's facts: its id, state, who started it and why, its times.
fn run_facts(r: &RunReport) -> Markup {
    html! {
        dl.facts {
            dt { "Run" } dd { code { (r.run) } }
            dt { "State" } dd { (state_name(r)) }
            dt { "Initiated by" } dd { (r.initiated_by) }
            dt { "Reason" } dd { (r.reason) }
            dt { "Created" } dd { (t(&r.created_at)) }
            dt { "Effective" } dd { (t(&r.effective_at)) }
            dt { "Finished" } dd { (ot(r.finished_at.as_ref())) }
            dt { "Confirmed by" } dd { (r.confirmed_by.as_deref().unwrap_or("—")) }
            dt { "Offboarding time" } dd { (duration(r.offboarding_time_ms)) }
            dt { "Time to revoke" } dd { (duration(r.time_to_revoke_ms)) }
            @if r.dry_run { dt { "Dry run" } dd { "yes: nothing was executed" } }
        }
    }
}

/// The alert listing where the stored run row differs from what the audit chain replays to.
fn discrepancies(r: &RunReport) -> Markup {
    html! {
        div.discrepancies role="alert" {
            h3 { "The stored record differs from the audit chain" }
            p { "This report shows what the chain replays to. The stored run row says \
                otherwise in " (r.discrepancies.len()) " place(s):" }
            table {
                thead { tr { th { "Task" } th { "Field" } th { "Audit chain" }
                    th { "Stored row" } } }
                tbody {
                    @for d in &r.discrepancies {
                        tr {
                            td { @if let Some(task) = d.task { code { (task) } }
                                @else { "run" } }
                            td { (d.field) }
                            td { (d.chain) }
                            td.bad { (d.stored) }
                        }
                    }
                }
            }
        }
    }
}

/// The table of the run's actions and their outcomes.
fn actions(r: &RunReport) -> Markup {
    html! {
        table.actions {
            thead { tr {
                th { "App" } th { "Action" } th { "Account" } th { "Outcome" }
                th { "Detail" } th { "By" } th { "Started" } th { "Finished" }
                th { "Attempts" }
            } }
            tbody {
                @for a in &r.actions {
                    tr {
                        td { (a.app) }
                        td { (a.action) }
                        td { (a.account.as_deref().unwrap_or("—")) }
                        td class=(outcome_class(&a.state)) {
                            (a.state) @if let Some(o) = &a.outcome { " (" (o) ")" }
                        }
                        td { (a.error.as_deref().or(a.detail.as_deref()).unwrap_or("")) }
                        td { (a.by.as_deref().unwrap_or("—")) }
                        td { (ot(a.started_at.as_ref())) }
                        td { (ot(a.finished_at.as_ref())) }
                        td { (a.attempts) }
                    }
                }
            }
        }
    }
}

/// The verification's result per app, or that none ran.
fn verification(r: &RunReport) -> Markup {
    let Some(v) = &r.verification else {
        return html! { p.muted { "No verification ran." } };
    };
    let apps = app_results(r);
    html! {
        p { "Verified " (t(&v.at)) ": " (v.revoked) " of " (v.checked)
            " checked app(s) with no access left." }
        table.verification {
            thead { tr { th { "App" } th { "Result" } } }
            tbody {
                @for (app, result) in &apps {
                    tr {
                        td { (app) }
                        @match result {
                            Some(AppResult::Revoked) => td.ok { "revoked" },
                            Some(AppResult::Remaining(found)) => td.bad {
                                "access left: " (found.join("; "))
                            },
                            Some(AppResult::Unchecked) | None => td.muted {
                                "not checked"
                            },
                            Some(AppResult::Ambiguous) => td.muted {
                                "revoked or not checked (not recorded which)"
                            },
                        }
                    }
                }
            }
        }
    }
}

/// The tasks handed to people (tickets, emails), when there are any.
fn delegated_tasks(r: &RunReport) -> Markup {
    let delegated: Vec<_> = r.actions.iter().filter(|a| a.ticket.is_some()).collect();
    html! {
        @if !delegated.is_empty() {
            h3 { "Delegated tasks" }
            table.delegated {
                thead { tr {
                    th { "App" } th { "Ticket" } th { "Assignee" } th { "Closed by" }
                    th { "State" } th { "Opened" } th { "Closed" } th { "Turnaround" }
                } }
                tbody {
                    @for a in &delegated {
                        tr {
                            td { (a.app) }
                            td {
                                @match (&a.ticket, &a.ticket_url) {
                                    (Some(k), Some(url)) if is_web(url) => a href=(url) { (k) },
                                    (Some(k), _) => (k),
                                    _ => "—",
                                }
                            }
                            td { (a.assignee.as_deref().unwrap_or("—")) }
                            td { (a.closed_by.as_deref().unwrap_or("—")) }
                            td class=(outcome_class(&a.state)) { (a.state) }
                            td { (ot(a.started_at.as_ref())) }
                            td { (ot(a.finished_at.as_ref())) }
                            td { (duration(a.turnaround_ms)) }
                        }
                    }
                }
            }
        }
    }
}

/// The end of a period report: the summary, the charts, and the document's close.
pub(crate) fn tail(summary: &PeriodSummary, charts: &PeriodCharts) -> String {
    let offboarding = charts.offboarding_weeks();
    let revoke = charts.revoke_weeks();
    html! {
        section.summary #summary {
            h2 { "Summary" }
            table.summary {
                tbody {
                    tr { th { "Runs" } td { (summary.runs) } }
                    tr { th { "Completed" } td { (summary.completed) } }
                    tr { th { "Completed with failures" } td { (summary.with_failures) } }
                    tr { th { "Still open" } td { (summary.open) } }
                    tr { th { "Tasks" } td { (summary.tasks) } }
                    tr { th { "Failed tasks" } td { (summary.failed_tasks) } }
                    tr { th { "Tasks held for a confirmation" } td { (summary.held_tasks) } }
                }
            }
            div.charts {
                figure #chart-offboarding {
                    (PreEscaped(PeriodCharts::weeks_svg(
                        "Offboarding time per week (median, p90)", &offboarding)))
                }
                figure #chart-revoke {
                    (PreEscaped(PeriodCharts::weeks_svg(
                        "Time to revoke per week (median, p90)", &revoke)))
                }
                figure #chart-accuracy { (PreEscaped(charts.accuracy_svg())) }
            }
            h3 { "Per week" }
            table.weeks {
                thead { tr { th { "Week" } th { "Runs" } th { "Offboarding median" }
                    th { "Offboarding p90" } th { "Time to revoke median" }
                    th { "Time to revoke p90" } } }
                tbody {
                    @for (o, r) in offboarding.iter().zip(&revoke) {
                        tr {
                            td { (o.week) } td { (o.runs) }
                            td { (duration((o.runs > 0).then_some(o.median_ms))) }
                            td { (duration((o.runs > 0).then_some(o.p90_ms))) }
                            td { (duration((r.runs > 0).then_some(r.median_ms))) }
                            td { (duration((r.runs > 0).then_some(r.p90_ms))) }
                        }
                    }
                }
            }
            h3 { "Revocation accuracy per app" }
            table.accuracy {
                thead { tr { th { "App" } th { "Checked" } th { "Revoked" } th { "Share" }
                    th { "Not checked or not known" } } }
                tbody {
                    @for (app, checked, revoked, unchecked) in charts.accuracy() {
                        tr {
                            td { (app) } td { (checked) } td { (revoked) }
                            td { @if checked > 0 {
                                (format!("{:.0}%", 100.0 * revoked as f64 / checked as f64))
                            } @else { "—" } }
                            td { (unchecked) }
                        }
                    }
                }
            }
        }
        footer { "Medians and p90 to two significant digits. Durations from the audit chain's \
            replay of each run." }
    }
    .into_string()
        + "</main></body></html>"
}

/// The per-run view: one run's report as a complete HTML document.
pub(crate) fn run_page(r: &RunReport, chain: Option<&AuditVerification>) -> String {
    let title = format!("Offboarding report: {} ({})", r.person, r.run);
    html! {
        (DOCTYPE)
        html lang="en" {
            (document_head(&title))
            body {
                header.report {
                    h1 { "Offboarding compliance report" }
                    p.meta { "One run, rebuilt from its chained audit events." }
                    @if let Some(chain) = chain { (chain_status(chain)) }
                }
                main { (PreEscaped(run_section(r))) }
            }
        }
    }
    .into_string()
}

fn state_name(r: &RunReport) -> String {
    serde_json::to_value(r.state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn outcome_class(state: &str) -> &'static str {
    match state {
        "completed" | "rolled_back" => "ok",
        "failed" => "bad",
        _ => "",
    }
}

/// Only web links are links (a `javascript:` URL from a ticket system is shown as text).
fn is_web(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}
