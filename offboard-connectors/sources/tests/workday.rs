//! The Workday source (RaaS custom report, refresh-token OAuth) against its simulated tenant.

mod support;

use chrono::NaiveDate;
use offboard_core::source::{Cursor, SourceOfTruth};
use offboard_core::{ErrorKind, Lifecycle, Secret};
use offboard_testkit::sim::workday::NewWorker;
use offboard_testkit::suite::source::{SourceTenant, read_all, run_source_conformance};
use support::workday::Workday;

#[tokio::test]
async fn workday_passes_the_source_conformance_suite() {
    let report = run_source_conformance::<Workday>().await;
    assert_eq!(report.rules.len(), 7, "{report:?}");
}

fn worker(login: &str) -> NewWorker {
    NewWorker {
        employee_id: format!("E-{login}"),
        name: format!("{login} Tester"),
        email: format!("{login}@example.com"),
        user_name: login.to_owned(),
        manager: None,
    }
}

#[tokio::test]
async fn workday_reads_the_report_with_one_token_and_sends_exactly_this() {
    let wd = Workday::start().await;
    let boss = wd.0.hire(worker("boss"));
    let ada = wd.0.hire(NewWorker {
        manager: Some(boss.clone()),
        ..worker("ada")
    });
    wd.0.terminate(&ada, NaiveDate::from_ymd_opt(2026, 11, 2).unwrap());
    let source = wd.source(100);
    let (records, cursor) = read_all(source.as_ref(), None, "t").await;
    let (again, _) = read_all(source.as_ref(), Some(cursor), "t").await;
    assert!(again.is_empty(), "nothing changed: {again:?}");
    let r = records
        .iter()
        .find(|r| r.person.id.as_str() == ada)
        .unwrap();
    assert_eq!(r.lifecycle, Lifecycle::Past);
    assert_eq!(r.person.aliases, ["ada"]);
    assert_eq!(
        r.person.manager.as_ref().map(|m| m.email.as_str()),
        Some("boss@example.com")
    );
    assert_eq!(
        r.person
            .manager
            .as_ref()
            .and_then(|m| m.id.as_ref())
            .map(|i| i.as_str()),
        Some(boss.as_str())
    );
    assert_eq!(
        r.termination_at
            .map(|t| t.date_naive().to_string())
            .as_deref(),
        Some("2026-11-02")
    );
    let requests = wd.0.requests();
    let lines: Vec<String> = requests.iter().map(|r| r.line()).collect();
    assert_eq!(
        lines,
        [
            "POST /ccx/oauth2/acme/token",
            "GET /ccx/service/customreport2/acme/ISU_Offboard/Workers_for_Offboard",
            "GET /ccx/service/customreport2/acme/ISU_Offboard/Workers_for_Offboard",
        ],
        "one token for both polls"
    );
    assert_eq!(
        requests[1].query,
        [("format".to_owned(), "json".to_owned())]
    );
    let auth = |i: usize| {
        requests[i]
            .headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v.clone())
    };
    assert_eq!(auth(0).as_deref(), Some("Basic [REDACTED]"));
    assert_eq!(auth(1).as_deref(), Some("Bearer [REDACTED]"));
    assert_eq!(wd.0.tokens_issued(), 1);
}

#[tokio::test]
async fn an_expired_token_is_fetched_again() {
    let wd = Workday::start().await;
    wd.0.hire(worker("ada"));
    let source = wd.source(100);
    let (_, cursor) = read_all(source.as_ref(), None, "t").await;
    wd.0.expire_tokens();
    let (records, _) = read_all(source.as_ref(), Some(cursor), "t").await;
    assert!(records.is_empty());
    assert_eq!(
        wd.0.tokens_issued(),
        2,
        "a 401 fetched a new token, the read went on"
    );
}

#[tokio::test]
async fn a_throttled_read_says_when_to_come_back() {
    let wd = Workday::start().await;
    wd.0.hire(worker("ada"));
    let source = wd.source(100);
    read_all(source.as_ref(), None, "t").await;
    wd.0.set_per_minute(0);
    let e = source.changes(None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
    assert!(e.retry_after().is_some_and(|d| d.as_secs() >= 1), "{e:?}");
}

#[tokio::test]
async fn wrong_credentials_are_unauthenticated_and_never_shown() {
    let wd = Workday::start().await;
    let (owner, report) = wd.0.report();
    let (client, _, refresh) = wd.0.client();
    let config = offboard_sources::WorkdayConfig::new(wd.0.uri(), "acme", owner, report)
        .with_oauth(client, Secret::new("wrong-secret-42"), Secret::new(refresh))
        .with_allow_plain_http(true);
    let shown = format!("{config:?}");
    assert!(
        !shown.contains("wrong-secret-42") && !shown.contains(refresh),
        "{shown}"
    );
    let source = config.build().unwrap();
    let shown = format!("{source:?}");
    assert!(
        !shown.contains("wrong-secret-42") && !shown.contains(refresh),
        "{shown}"
    );
    let e = source.changes(None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    let text = format!("{e} {e:?}");
    assert!(
        !text.contains("wrong-secret-42") && !text.contains(refresh),
        "{text}"
    );
    assert!(
        wd.0.requests()
            .iter()
            .all(|r| r.line() == "POST /ccx/oauth2/acme/token"),
        "no report read without a token"
    );
}

#[tokio::test]
async fn a_foreign_cursor_and_bad_config_are_refused() {
    let wd = Workday::start().await;
    let source = wd.source(100);
    let e = source
        .changes(Some(&Cursor("{\"next\": 3".into())))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(wd.0.requests().is_empty(), "nothing sent");
    let e = wd
        .config()
        .with_oauth("c", Secret::new("s"), Secret::new(""))
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("refresh_token"), "{e}");
    let e = offboard_sources::WorkdayConfig::new(wd.0.uri(), "acme/../x", "o", "r")
        .with_oauth("c", Secret::new("s"), Secret::new("r"))
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("tenant"), "{e}");
}

#[tokio::test]
async fn report_names_are_path_segments() {
    let wd = Workday::start().await;
    let (client, secret, refresh) = wd.0.client();
    let source =
        offboard_sources::WorkdayConfig::new(wd.0.uri(), "acme", "ISU Offboard", "a/../b?x=1")
            .with_oauth(client, Secret::new(secret), Secret::new(refresh))
            .with_allow_plain_http(true)
            .build()
            .unwrap();
    let e = source.changes(None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let last = wd.0.requests().pop().unwrap();
    assert_eq!(
        last.path,
        "/ccx/service/customreport2/acme/ISU%20Offboard/a%2F..%2Fb%3Fx=1"
    );
    assert_eq!(last.query, [("format".to_owned(), "json".to_owned())]);
}
