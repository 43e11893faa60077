//! The BambooHR source against its simulated company: the source suite, the exact requests,
//! authentication, throttling and bad cursors.

mod support;

use offboard_core::source::SourceOfTruth;
use offboard_core::{ErrorKind, Lifecycle, Secret};
use offboard_sources::BambooHrConfig;
use offboard_testkit::suite::source::{Hire, SourceTenant, read_all, run_source_conformance};
use support::bamboohr::Bamboo;

#[tokio::test]
async fn bamboohr_passes_the_source_conformance_suite() {
    let report = run_source_conformance::<Bamboo>().await;
    assert_eq!(report.rules.len(), 7, "{report:?}");
}

#[tokio::test]
async fn it_sends_exactly_the_documented_requests() {
    let t = Bamboo::start().await;
    let ada = t.hire(&Hire::new("ada"));
    let bob = t.hire(&Hire::new("bob").reporting_to(&ada));
    let source = t.source(100);
    let (records, cursor) = read_all(source.as_ref(), None, "exact").await;
    assert_eq!(records.len(), 2);
    let requests = t.0.requests();
    let lines: Vec<String> = requests.iter().map(|r| r.line()).collect();
    assert_eq!(
        lines,
        [
            "GET /api/v1/employees/changed".to_owned(),
            format!("GET /api/v1/employees/{ada}"),
            format!("GET /api/v1/employees/{bob}"),
            format!("GET /api/v1/employees/{ada}"),
        ],
        "the listing, each employee, bob's manager"
    );
    assert_eq!(
        requests[0].query,
        [("since".to_owned(), "1970-01-01T00:00:00+00:00".to_owned())],
        "the first read starts at the epoch; `+` arrives encoded"
    );
    assert_eq!(
        requests[1].query,
        [(
            "fields".to_owned(),
            "firstName,lastName,workEmail,employeeNumber,status,terminationDate,reportsToId"
                .to_owned()
        )]
    );
    for r in &requests {
        let header = |name: &str| {
            r.headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header("authorization"), Some("Basic [REDACTED]"));
        assert_eq!(header("accept"), Some("application/json"));
    }
    let bob_record = records
        .iter()
        .find(|r| r.person.id.as_str() == bob)
        .unwrap();
    assert_eq!(
        bob_record.person.manager.as_ref().map(|m| m.email.as_str()),
        Some("ada@example.com")
    );

    // The next poll starts 60 s before the server's clock at the last listing.
    let latest = t.0.employee(&bob).unwrap().last_changed;
    let before = t.0.requests().len();
    source.changes(Some(&cursor)).await.unwrap();
    let next = &t.0.requests()[before];
    assert_eq!(next.line(), "GET /api/v1/employees/changed");
    let since = chrono::DateTime::parse_from_rfc3339(next.query_param("since").unwrap()).unwrap();
    let minute = chrono::Duration::seconds(60);
    assert!(
        since >= latest - minute && since <= chrono::Utc::now() - minute,
        "{since} against {latest}"
    );
}

#[tokio::test]
async fn a_wrong_api_key_is_a_clear_error_without_the_key() {
    let t = Bamboo::start().await;
    t.hire(&Hire::new("ada"));
    let source = BambooHrConfig::new("sim", Secret::new("wrong-key-s3cr3t"))
        .with_base_url(t.0.uri())
        .with_allow_plain_http(true)
        .build()
        .unwrap();
    let e = source.changes(None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    assert!(e.to_string().contains("401"), "{e}");
    assert!(!format!("{e} {e:?}").contains("wrong-key-s3cr3t"));
    assert!(!format!("{source:?}").contains("wrong-key-s3cr3t"));
    let config = t.config(10);
    assert!(!format!("{config:?}").contains(t.0.api_key()));
}

#[tokio::test]
async fn throttling_surfaces_the_retry_after_and_the_next_poll_goes_on() {
    let t = Bamboo::start().await;
    let ada = t.hire(&Hire::new("ada"));
    let source = t.source(100);
    t.0.set_limit(1, std::time::Duration::from_secs(30));
    let e = source.changes(None).await.unwrap_err();
    assert_eq!(
        t.0.throttled(),
        1,
        "the listing passed, the read was throttled"
    );
    assert!(e.is_retryable(), "{e}");
    let after = e.retry_after().expect("Retry-After is honoured");
    assert!(after > std::time::Duration::ZERO && after <= std::time::Duration::from_secs(30));
    t.0.set_limit(1000, std::time::Duration::from_secs(30));
    let (records, _) = read_all(source.as_ref(), None, "throttled").await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].person.id.as_str(), ada);
    assert_eq!(records[0].lifecycle, Lifecycle::Current);
}

#[tokio::test]
async fn a_foreign_cursor_is_invalid_input() {
    support::checks::foreign_cursors_are_refused(&Bamboo::start().await).await;
}
