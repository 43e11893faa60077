//! The Paylocity source against its simulated company: the source conformance suite, then
//! the requests it sends, its authentication, throttling, cursors and secrets.

mod support;

use chrono::NaiveDate;
use offboard_core::source::{Cursor, SourceOfTruth};
use offboard_core::{ErrorKind, Lifecycle, RetryClass, Secret};
use offboard_testkit::sim::paylocity::NewEmployee;
use offboard_testkit::suite::source::{SourceTenant, read_all, run_source_conformance};
use support::paylocity::PaylocityCompany;

#[tokio::test]
async fn paylocity_passes_the_source_conformance_suite() {
    let report = run_source_conformance::<PaylocityCompany>().await;
    assert!(report.skipped.is_empty(), "{report:?}");
    assert_eq!(report.rules.len(), 7);
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
}

async fn company_of(n: usize) -> PaylocityCompany {
    let c = PaylocityCompany::start().await;
    for i in 0..n {
        c.0.hire(NewEmployee::new(
            &format!("E{i}"),
            &format!("e{i}@example.com"),
            "E",
            &i.to_string(),
        ));
    }
    c
}

#[tokio::test]
async fn paylocity_sends_the_documented_requests() {
    let c = company_of(3).await;
    let mut boss = NewEmployee::new("B1", "boss@example.com", "Bo", "Ss");
    boss.home_email = Some("boss@home.example".into());
    c.0.hire(boss);
    let mut ada = NewEmployee::new("A1", "ada@example.com", "Ada", "Lovelace");
    ada.supervisor = Some("B1".into());
    ada.preferred_name = Some("Countess".into());
    c.0.hire(ada);
    let source = c.build(3);
    let (records, cursor) = read_all(&source, None, "requests").await;
    assert_eq!(records.len(), 5);
    let ada = records
        .iter()
        .find(|r| r.person.id.as_str() == "A1")
        .unwrap();
    assert_eq!(ada.person.display_name, "Countess Lovelace");
    assert_eq!(
        ada.person.manager.as_ref().map(|m| m.email.as_str()),
        Some("boss@example.com"),
        "the supervisor's work email"
    );
    let boss = records
        .iter()
        .find(|r| r.person.id.as_str() == "B1")
        .unwrap();
    assert!(boss.person.aliases.is_empty(), "a home email is no alias");

    let requests = c.0.requests();
    let token = &requests[0];
    assert_eq!(token.line(), "POST /IdentityServer/connect/token");
    assert_eq!(token.header("authorization"), Some("Basic [REDACTED]"));
    let company = c.0.company();
    let list_path = format!("/api/v2/companies/{company}/employees");
    let lists: Vec<_> = requests.iter().filter(|r| r.path == list_path).collect();
    assert_eq!(lists.len(), 2, "5 employees, pages of 3: {requests:#?}");
    for (n, r) in lists.iter().enumerate() {
        assert_eq!(r.method, "GET");
        assert_eq!(r.header("authorization"), Some("Bearer [REDACTED]"));
        assert_eq!(
            r.query,
            [
                ("pagesize".to_owned(), "3".to_owned()),
                ("pagenumber".to_owned(), n.to_string()),
                ("includetotalcount".to_owned(), "true".to_owned()),
            ]
        );
    }
    let details = requests
        .iter()
        .filter(|r| r.path.starts_with(&format!("{list_path}/")))
        .count();
    assert_eq!(details, 6, "each new employee once, and ada's supervisor");
    assert_eq!(c.0.token_requests(), 1);

    // An idle poll lists only; a leave of absence is no departure.
    c.0.clear_requests();
    assert!(c.0.set_status("E0", "L", "LOA", day(5)));
    let (records, cursor) = read_all(&source, Some(cursor), "idle").await;
    assert!(
        records.is_empty(),
        "leave changes nothing reported: {records:?}"
    );
    assert_eq!(
        c.0.requests().len(),
        3,
        "two pages and E0's new status read"
    );
    // A company-defined status Paylocity does not document is current, never a departure.
    assert!(c.0.set_status("E1", "X", "XYZ", day(5)));
    let (records, cursor) = read_all(&source, Some(cursor), "unknown").await;
    assert!(records.is_empty(), "{records:?}");
    assert!(c.0.terminate("E2", day(6)));
    let (records, _) = read_all(&source, Some(cursor), "terminated").await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].lifecycle, Lifecycle::Past);
    assert_eq!(
        records[0].termination_at.map(|t| t.date_naive()),
        Some(day(6))
    );
    assert_eq!(c.0.token_requests(), 1, "one token for every poll");
}

#[tokio::test]
async fn paylocity_ids_are_path_segments_not_paths() {
    let c = company_of(1).await;
    let id = "E/../1?x=1#";
    c.0.hire(NewEmployee::new(id, "odd@example.com", "O", "Dd"));
    let (records, _) = read_all(&c.build(100), None, "ids").await;
    let odd = records.iter().find(|r| r.person.id.as_str() == id).unwrap();
    assert_eq!(odd.person.email, "odd@example.com");
    let company = c.0.company();
    assert!(
        c.0.requests().iter().any(|r| r.path
            == format!("/api/v2/companies/{company}/employees/E%2F..%2F1%3Fx=1%23")),
        "{:#?}",
        c.0.requests()
    );
}

#[tokio::test]
async fn paylocity_tokens_are_refreshed_when_expired_or_refused() {
    let c = company_of(2).await;
    let source = c.build(100);
    let (_, cursor) = read_all(&source, None, "first").await;
    assert_eq!(c.0.token_requests(), 1);
    // Refused (expired early on Paylocity's side): the 401 drops the token, the next call
    // fetches a new one and continues from the same cursor.
    c.0.set_token_lifetime(30);
    c.0.expire_tokens();
    let e = source.changes(Some(&cursor)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    let (_, cursor) = read_all(&source, Some(cursor), "after 401").await;
    assert_eq!(c.0.token_requests(), 2);
    // That token lives less than the refresh margin (60 s): it counts as expired, and each
    // poll fetches a new one.
    let (_, cursor) = read_all(&source, Some(cursor), "expired").await;
    assert_eq!(c.0.token_requests(), 3);
    c.0.set_token_lifetime(3600);
    let (_, cursor) = read_all(&source, Some(cursor), "long").await;
    let _ = read_all(&source, Some(cursor), "long again").await;
    assert_eq!(c.0.token_requests(), 4, "a long-lived token is reused");
}

#[tokio::test]
async fn paylocity_throttling_is_retryable_after_the_hint_and_loses_nothing() {
    let c = company_of(2).await;
    let source = c.build(100);
    let (_, cursor) = read_all(&source, None, "first").await;
    assert!(c.0.terminate("E1", day(9)));
    c.0.fail_next(1, 429);
    let e = source.changes(Some(&cursor)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(
        e.retry(),
        RetryClass::Retryable {
            after: Some(std::time::Duration::from_secs(30))
        }
    );
    let (records, _) = read_all(&source, Some(cursor), "after 429").await;
    assert_eq!(records.len(), 1, "the termination after the retry");
    // The simulator's own budget answers the same way.
    c.0.set_rate_limit(Some(1));
    let e = source.changes(None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
    assert!(e.retry_after().is_some_and(|d| d.as_secs() >= 1));
}

#[tokio::test]
async fn paylocity_wrong_credentials_are_a_clear_error_without_the_secret() {
    let c = company_of(1).await;
    let secret = "wrong-secret-that-must-not-leak";
    let source =
        offboard_sources::PaylocityConfig::new(c.0.company(), c.0.client_id(), Secret::new(secret))
            .with_base_url(c.0.api_base())
            .with_token_url(c.0.token_url())
            .with_allow_plain_http(true)
            .build()
            .unwrap();
    let e = source.changes(None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    assert!(!format!("{e} {e:?}").contains(secret));
    assert!(!format!("{source:?}").contains(secret));
    let right = c.config(10);
    assert!(!format!("{right:?}").contains(c.0.client_secret()));
    assert!(!format!("{:?}", right.clone().build().unwrap()).contains(c.0.client_secret()));
    assert_eq!(c.0.requests().len(), 1, "no API call without a token");
}

#[tokio::test]
async fn paylocity_foreign_cursors_and_bad_config_are_refused() {
    let c = company_of(1).await;
    let source = c.build(10);
    for garbage in [
        "not json",
        r#"{"known":{},"listing":{"next":"page-two","present":[]}}"#,
    ] {
        let e = source
            .changes(Some(&Cursor(garbage.into())))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{garbage}: {e}");
    }
    assert_eq!(c.0.requests().len(), 0, "nothing sent");
    let no_company = offboard_sources::PaylocityConfig::new(" ", "id", Secret::new("s"));
    assert_eq!(no_company.build().unwrap_err().kind(), ErrorKind::Config);
    let plain = offboard_sources::PaylocityConfig::new("C1", "id", Secret::new("s"))
        .with_base_url("http://api.example.com/api");
    assert_eq!(plain.build().unwrap_err().kind(), ErrorKind::Config);
}

#[tokio::test]
async fn paylocity_stops_at_the_total_count() {
    let c = company_of(6).await;
    let (records, _) = read_all(&c.build(3), None, "total").await;
    assert_eq!(records.len(), 6);
    let lists =
        c.0.requests()
            .iter()
            .filter(|r| r.path.ends_with("/employees"))
            .count();
    assert_eq!(
        lists, 2,
        "two full pages and no empty third: the total says so"
    );
}
