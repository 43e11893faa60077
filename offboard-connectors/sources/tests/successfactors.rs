//! The SuccessFactors source against its simulated company: the source conformance suite,
//! then the requests it sends, paging, purges, throttling, cursors and secrets.

mod support;

use std::time::Duration;

use chrono::{DateTime, Utc};
use offboard_core::source::{Cursor, SourceOfTruth};
use offboard_core::{ErrorKind, Lifecycle, RetryClass, Secret};
use offboard_testkit::sim::successfactors::NewUser;
use offboard_testkit::suite::source::{SourceTenant, read_all, run_source_conformance};
use support::successfactors::SuccessFactorsCompany;

const SELECT: &str = "userId,username,email,firstName,lastName,defaultFullName,empId,status,lastModifiedDateTime,manager/userId,manager/email";
const STATUSES: &str = "status in 't','f','T','F','e','d'";

#[tokio::test]
async fn successfactors_passes_the_source_conformance_suite() {
    let report = run_source_conformance::<SuccessFactorsCompany>().await;
    assert_eq!(report.rules.len(), 6, "{report:?}");
    assert_eq!(
        report.skipped.iter().map(|s| s.0).collect::<Vec<_>>(),
        ["a_removed_person_is_reported_gone"],
        "User is not deletable: a purge is tested below"
    );
}

async fn company_of(n: usize) -> SuccessFactorsCompany {
    let c = SuccessFactorsCompany::start().await;
    for i in 0..n {
        let mut u = NewUser::new(&format!("u{i}"), &format!("u{i}@example.com"), "U", "Ser");
        u.emp_id = Some(format!("E{i}"));
        u.manager = (i > 0).then(|| "u0".to_owned());
        c.0.add_user(u);
    }
    c
}

#[tokio::test]
async fn successfactors_sends_the_documented_requests() {
    let c = company_of(5).await;
    let source = c.build(2);
    let (records, cursor) = read_all(&source, None, "first").await;
    assert_eq!(records.len(), 5);
    let u1 = records
        .iter()
        .find(|r| r.person.id.as_str() == "u1")
        .unwrap();
    assert_eq!(u1.person.email, "u1@example.com");
    assert_eq!(u1.person.aliases, ["u1"], "the username");
    assert_eq!(u1.person.employee_id.as_deref(), Some("E1"));
    assert_eq!(
        u1.person.manager.as_ref().map(|m| m.email.as_str()),
        Some("u0@example.com")
    );
    let requests = c.0.requests();
    assert_eq!(requests.len(), 3, "five users, pages of two: {requests:#?}");
    for (n, r) in requests.iter().enumerate() {
        assert_eq!(r.line(), "GET /odata/v2/User");
        assert_eq!(r.header("authorization"), Some("Basic [REDACTED]"));
        assert_eq!(r.query_param("$select"), Some(SELECT));
        assert_eq!(r.query_param("$expand"), Some("manager"));
        assert_eq!(r.query_param("$filter"), Some(STATUSES), "a full listing");
        assert_eq!(
            r.query_param("$orderby"),
            Some("lastModifiedDateTime asc,userId asc")
        );
        assert_eq!(r.query_param("customPageSize"), Some("2"));
        assert_eq!(r.query_param("paging"), Some("snapshot"));
        assert_eq!(r.query_param("$format"), Some("json"));
        assert_eq!(r.query_param("$skiptoken").is_some(), n > 0, "{r:?}");
    }

    // The next poll reads what changed since the listing started by the server's clock
    // (its `Date`, whole seconds), less the overlap.
    let kept: serde_json::Value = serde_json::from_str(&cursor.0).unwrap();
    let since = kept["scan"]["since"].as_str().unwrap();
    assert!(since.ends_with(".000Z"), "the server's Date: {since}");
    c.0.clear_requests();
    let (records, cursor) = read_all(&source, Some(cursor), "idle").await;
    assert!(
        records.is_empty(),
        "the overlap's repeats are dropped: {records:?}"
    );
    let filter = c.0.requests()[0].query_param("$filter").unwrap().to_owned();
    let from = filter
        .strip_prefix("lastModifiedDateTime gt datetimeoffset'")
        .and_then(|f| f.strip_suffix(&format!("' and {STATUSES}")))
        .unwrap_or_else(|| panic!("{filter}"));
    let from: DateTime<Utc> = from.parse().unwrap();
    let back = Utc::now() - from;
    assert!(
        back >= chrono::Duration::seconds(2) && back <= chrono::Duration::seconds(15),
        "2 s before the last listing started: {filter}"
    );

    // Edits and statuses: an email change is reported; an undocumented status is current;
    // `d` (inactive, external suite) is past.
    assert!(c.0.set_email("u2", "u2.new@example.com"));
    assert!(c.0.set_raw_status("u3", "x"));
    let (records, cursor) = read_all(&source, Some(cursor), "edits").await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].person.email, "u2.new@example.com");
    assert!(c.0.set_status("u3", "d"));
    assert!(c.0.set_status("u4", "T"));
    let (records, _) = read_all(&source, Some(cursor), "statuses").await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(
        (records[0].person.id.as_str(), records[0].lifecycle),
        ("u3", Lifecycle::Past)
    );
}

#[tokio::test]
async fn successfactors_finds_a_purged_user_at_a_full_listing_by_key() {
    let c = company_of(2).await;
    let odd = "o'brien/x";
    c.0.add_user(NewUser::new(odd, "ob@example.com", "O", "Brien"));
    let hourly = c.build(100);
    let (_, cursor) = read_all(&hourly, None, "first").await;
    assert!(c.0.purge(odd));
    let (records, _) = read_all(&hourly, Some(cursor.clone()), "incremental").await;
    assert!(records.is_empty(), "an incremental read cannot see a purge");

    let every = c
        .config(100)
        .with_full_scan_every(Duration::ZERO)
        .build()
        .unwrap();
    c.0.clear_requests();
    let (records, _) = read_all(&every, Some(cursor), "full").await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(records[0].is_vanished() && records[0].person.id.as_str() == odd);
    let requests = c.0.requests();
    assert_eq!(requests[0].query_param("$filter"), Some(STATUSES));
    assert_eq!(
        requests[1].path, "/odata/v2/User('o''brien%2Fx')",
        "the key is an OData literal in one segment"
    );
}

#[tokio::test]
async fn successfactors_throttling_is_retryable_after_the_hint_and_loses_nothing() {
    let c = company_of(2).await;
    let source = c.build(100);
    let (_, cursor) = read_all(&source, None, "first").await;
    assert!(c.0.set_status("u1", "f"));
    c.0.fail_next(1, 429);
    let e = source.changes(Some(&cursor)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(
        e.retry(),
        RetryClass::Retryable {
            after: Some(Duration::from_secs(30))
        }
    );
    let (records, _) = read_all(&source, Some(cursor), "after 429").await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].lifecycle, Lifecycle::Past);
}

#[tokio::test]
async fn successfactors_wrong_credentials_are_a_clear_error_without_the_secret() {
    let c = company_of(1).await;
    let secret = "wrong-password-that-must-not-leak";
    let config = offboard_sources::SuccessFactorsConfig::new(
        c.0.uri(),
        c.0.company(),
        c.0.username(),
        Secret::new(secret),
    )
    .with_allow_plain_http(true);
    assert!(!format!("{config:?}").contains(secret));
    let source = config.build().unwrap();
    assert!(!format!("{source:?}").contains(secret));
    let e = source.changes(None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    assert!(!format!("{e} {e:?}").contains(secret));
    assert!(!format!("{:?}", c.build(10)).contains(c.0.password()));
}

#[tokio::test]
async fn successfactors_foreign_cursors_and_bad_config_are_refused() {
    let c = company_of(1).await;
    let source = c.build(10);
    let elsewhere = r#"{"scan":{"known":{},"listing":{"next":"https://evil.example/odata/v2/User?x=1","present":[]}}}"#;
    let bad_since =
        r#"{"scan":{"known":{},"since":"yesterday"},"last_full":"2099-01-01T00:00:00Z"}"#;
    for garbage in ["not json", elsewhere, bad_since] {
        let e = source
            .changes(Some(&Cursor(garbage.into())))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{garbage}: {e}");
    }
    assert!(c.0.requests().is_empty(), "nothing sent");
    for (config, key) in [
        (
            offboard_sources::SuccessFactorsConfig::new(
                "https://api4.sf.example",
                "",
                "u",
                Secret::new("p"),
            ),
            "company_id",
        ),
        (
            offboard_sources::SuccessFactorsConfig::new(
                "https://api4.sf.example",
                "C",
                "u",
                Secret::new(""),
            ),
            "password",
        ),
        (
            offboard_sources::SuccessFactorsConfig::new(
                "http://api4.sf.example",
                "C",
                "u",
                Secret::new("p"),
            ),
            "base_url",
        ),
    ] {
        let e = config.build().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{key}: {e}");
        assert!(e.to_string().contains(key), "{key}: {e}");
    }
}

#[tokio::test]
async fn successfactors_reads_the_termination_date_from_the_employment() {
    let c = company_of(2).await;
    let odd = "o'neil";
    c.0.add_user(NewUser::new(odd, "on@example.com", "O", "Neil"));
    let source = c.build(100);
    let (_, cursor) = read_all(&source, None, "first").await;
    let on = chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
    assert!(c.0.terminate(odd, on));
    c.0.clear_requests();
    let (records, cursor) = read_all(&source, Some(cursor), "terminated").await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].termination_at.map(|t| t.date_naive()), Some(on));
    let read = &c.0.requests()[1];
    assert_eq!(read.line(), "GET /odata/v2/EmpEmployment");
    assert_eq!(read.query_param("$filter"), Some("userId eq 'o''neil'"));
    assert_eq!(
        read.query_param("$select"),
        Some("userId,startDate,endDate")
    );
    // Rehired: a new employment without an end; reported current, no date.
    assert!(c.0.rehire(odd));
    let (records, _) = read_all(&source, Some(cursor), "rehired").await;
    assert_eq!(records.len(), 1);
    assert_eq!(
        (records[0].lifecycle, records[0].termination_at),
        (Lifecycle::Current, None)
    );
}
