//! The HTML compliance report (issue 22 item 4): a period report of runs made by a real engine
//! on SQLite with simulated connectors and a simulated Jira delegate, checked as markup
//! (escaping, no script) and, in headless Chromium through ChromeDriver
//! (`OFFBOARD_TEST_WEBDRIVER`, started by `scripts/services/chromium.sh`), as the page a
//! person sees and prints.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use offboard_core::{
    DelegateVia, Engine, ErrorKind, Initiator, Person, Policy, RetryPolicy, RunId, RunRequest,
};
use offboard_store::SqliteStore;
use offboard_store::report::{Format, RunReport, write_period};
use offboard_testkit::suite::reference::{
    ReferenceConnector, ReferenceDelegate, ReferenceUser, permanent,
};

/// A person whose display name is markup.
const EVIL: &str = "<script>alert('x')</script> Mallory";

const POLICY: &str = r#"
[apps.idp]
method = "automatic"
actions = ["idp.suspend", "idp.clear_sessions", "idp.remove_groups", "idp.unassign_apps"]

[apps.crm]
method = "delegate"
via = "jira"
"#;

/// Three offboardings on a SQLite store at `path`: Ada (all done), Mallory (named [`EVIL`]),
/// Bob (suspension refused: idp access left after verification). Every run's CRM removal is
/// delegated to Jira and closed by `it-desk@example.com`, who removed the CRM account of Ada
/// and Mallory but not Bob's (the CRM connector's verification finds it). Every run is
/// verified. Returns the store and the runs, oldest first.
async fn three_runs(path: &Path) -> (Arc<SqliteStore>, Vec<RunId>) {
    let store = Arc::new(SqliteStore::open(path).await.unwrap());
    let idp = Arc::new(
        ReferenceConnector::builder("idp")
            .user(ReferenceUser::employee("ada@example.com").group("eng"))
            .user(ReferenceUser::employee("mallory@example.com").group("eng"))
            .user(ReferenceUser::employee("bob@example.com").group("sales"))
            .build(),
    );
    let crm = Arc::new(
        ReferenceConnector::builder("crm")
            .user(ReferenceUser::new("ada@example.com"))
            .user(ReferenceUser::new("mallory@example.com"))
            .user(ReferenceUser::new("bob@example.com"))
            .build(),
    );
    let jira = Arc::new(ReferenceDelegate::jira().with_default_assignee("it-desk@example.com"));
    let engine = Engine::builder()
        .store(store.clone())
        .connector(idp.clone())
        .connector(crm.clone())
        .delegate(jira.clone())
        .policy(Policy::from_toml(POLICY).unwrap())
        .retry(RetryPolicy {
            max_attempts: 1,
            max_elapsed: Duration::from_secs(60),
        })
        .build()
        .unwrap();
    let people = [
        Person::new("p-ada", "ada@example.com").with_name("Ada Lovelace"),
        Person::new("p-mallory", "mallory@example.com").with_name(EVIL),
        Person::new("p-bob", "bob@example.com").with_name("Bob Jones"),
    ];
    let mut ids = Vec::new();
    for person in people {
        let email = person.email.clone();
        if email == "bob@example.com" {
            idp.fail_always(
                "idp.suspend",
                permanent(
                    ErrorKind::PermissionDenied,
                    "account is <b>locked</b> by policy",
                ),
            );
        }
        let request = RunRequest::new(
            person,
            Initiator::Admin {
                actor: "hr-admin@example.com".into(),
            },
        )
        .with_reason("resigned");
        let plan = engine.plan(request).await.unwrap();
        let id = engine.submit(plan, None).await.unwrap();
        while engine.run_due().await.unwrap() > 0 {}
        let tickets = jira.tickets();
        assert_eq!(tickets.len(), ids.len() + 1, "one ticket per run");
        let ticket = tickets.last().unwrap().clone();
        if email != "bob@example.com" {
            let account = crm.account_by_login(&email).unwrap();
            assert!(crm.remove_user(&account.external_id));
        }
        jira.complete(&ticket.ticket.key, "it-desk@example.com");
        engine
            .delegation_changed(DelegateVia::Jira, &ticket.ticket.key)
            .await
            .unwrap();
        while engine.run_due().await.unwrap() > 0 {}
        engine.verify(id).await.unwrap();
        ids.push(id);
    }
    (store, ids)
}

async fn period_html(store: &SqliteStore) -> String {
    let now = Utc::now();
    let mut out = Vec::new();
    let summary = write_period(
        store,
        now - TimeDelta::hours(1),
        now + TimeDelta::hours(1),
        Format::Html,
        &mut out,
    )
    .await
    .unwrap();
    assert_eq!(summary.runs, 3);
    String::from_utf8(out).unwrap()
}

/// Every field is escaped: the name `<script>…` is text in the period report and the per-run
/// view, the page holds no script at all, a connector's error with markup is text; the chain
/// status, the delegation's closer and the three charts are there.
#[tokio::test]
async fn the_html_report_escapes_every_field_and_carries_chain_status_and_charts() {
    let dir = tempfile::tempdir().unwrap();
    let (store, ids) = three_runs(&dir.path().join("o.db")).await;
    let html = period_html(&store).await;
    assert!(html.starts_with("<!DOCTYPE html>"), "{}", &html[..40]);
    assert!(!html.to_lowercase().contains("<script"), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert('x')&lt;/script&gt; Mallory"),
        "{html}"
    );
    assert!(html.contains("account is &lt;b&gt;locked&lt;/b&gt; by policy"));
    assert!(html.contains("Audit chain: intact"), "{html}");
    assert!(
        !html.contains("class=\"discrepancies\""),
        "untouched runs replay to their rows: {html}"
    );
    assert!(html.contains("it-desk@example.com"));
    assert_eq!(html.matches("<svg").count(), 3, "three charts");
    assert!(html.contains("@media print"));
    assert!(html.ends_with("</main></body></html>"));

    let report = RunReport::load(store.as_ref(), ids[1]).await.unwrap();
    let chain = store.verify_audit().await.unwrap();
    let page = report.to_html(Some(&chain));
    assert!(!page.to_lowercase().contains("<script"), "{page}");
    assert!(page.contains("&lt;script&gt;"));
    assert!(page.contains("Audit chain: intact"));
}

/// The period report in headless Chromium: the visible page names every person (the markup
/// name as text, no script ran), app, outcome and who closed the tickets; the chain is
/// intact; the charts are SVG with points and bars; printed, every person starts a page.
/// Writes a screenshot to `OFFBOARD_TEST_REPORT_SCREENSHOT` when set (and one of the summary
/// beside it, `-summary.png`).
#[tokio::test]
async fn in_a_real_browser_the_period_report_reads_right() {
    let dir = tempfile::tempdir().unwrap();
    let (store, ids) = three_runs(&dir.path().join("o.db")).await;
    let file = dir.path().join("report.html");
    std::fs::write(&file, period_html(&store).await).unwrap();

    let browser = offboard_testkit::suite::browser::chromium(
        &["--window-size=1280,2200"],
        Default::default(),
    )
    .await;
    browser
        .goto(&format!("file://{}", file.display()))
        .await
        .unwrap();

    let text = browser
        .find(fantoccini::Locator::Css("body"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for expected in [
        "Offboarding compliance report",
        "Audit chain: intact",
        "Ada Lovelace",
        EVIL,
        "Bob Jones",
        "idp.suspend",
        "crm.delegate_jira",
        "completed (done)",
        "failed",
        "account is <b>locked</b> by policy",
        "access left",
        "it-desk@example.com",
        "hr-admin@example.com",
        "Summary",
    ] {
        assert!(text.contains(expected), "{expected:?} not shown: {text}");
    }
    for id in &ids {
        assert!(text.contains(&id.to_string()), "run {id}");
    }
    let scripts = browser
        .execute("return document.scripts.length", vec![])
        .await
        .unwrap();
    assert_eq!(scripts, serde_json::json!(0), "the name's <script> is text");
    let svgs = browser
        .find_all(fantoccini::Locator::Css("figure svg"))
        .await
        .unwrap();
    assert_eq!(svgs.len(), 3);
    for chart in ["#chart-offboarding", "#chart-revoke"] {
        let points = browser
            .find_all(fantoccini::Locator::Css(&format!("{chart} svg circle")))
            .await
            .unwrap();
        assert!(points.len() >= 2, "{chart}: median and p90 points");
    }
    let accuracy = browser
        .find(fantoccini::Locator::Css("#chart-accuracy"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Two of three accounts verified revoked, in each app.
    assert_eq!(accuracy.matches("67%").count(), 2, "{accuracy}");
    assert!(
        accuracy.contains("idp") && accuracy.contains("crm"),
        "{accuracy}"
    );
    let bars = browser
        .find_all(fantoccini::Locator::Css("#chart-accuracy svg rect"))
        .await
        .unwrap();
    assert!(bars.len() >= 3, "background and two bars");

    if let Ok(path) = std::env::var("OFFBOARD_TEST_REPORT_SCREENSHOT") {
        std::fs::write(&path, browser.screenshot().await.unwrap()).unwrap();
        let summary = browser
            .find(fantoccini::Locator::Id("summary"))
            .await
            .unwrap();
        let shot = summary.screenshot().await.unwrap();
        std::fs::write(path.replace(".png", "-summary.png"), shot).unwrap();
    }

    // Printed (print media): each person on a page of their own, the summary on another.
    let pdf = browser
        .print(fantoccini::wd::PrintConfiguration::default())
        .await
        .unwrap();
    assert!(pdf.starts_with(b"%PDF"));
    let pages = pdf_pages(&pdf);
    assert!(pages >= 4, "{pages} pages for 3 people and the summary");
    browser.close().await.unwrap();
}

/// The number of page objects in a PDF (`/Type /Page`, not `/Pages`).
fn pdf_pages(pdf: &[u8]) -> usize {
    let needle = b"/Type /Page";
    pdf.windows(needle.len() + 1)
        .filter(|w| &w[..needle.len()] == needle && w[needle.len()] != b's')
        .count()
}
