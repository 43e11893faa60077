//! The Personio source against its simulated company: the source suite, the exact requests,
//! the token flow, throttling and bad cursors.

mod support;

use std::time::Duration;

use offboard_core::source::SourceOfTruth;
use offboard_core::{ErrorKind, Lifecycle, Secret};
use offboard_sources::PersonioConfig;
use offboard_testkit::sim::personio::PersonioTenant;
use offboard_testkit::suite::source::{Hire, SourceTenant, read_all, run_source_conformance};
use serde_json::json;
use support::personio::Personio;

const ATTRIBUTES: [&str; 8] = [
    "first_name",
    "last_name",
    "email",
    "status",
    "supervisor",
    "termination_date",
    "last_modified_at",
    PersonioTenant::EMPLOYEE_NUMBER,
];

#[tokio::test]
async fn personio_passes_the_source_conformance_suite() {
    let report = run_source_conformance::<Personio>().await;
    assert_eq!(report.rules.len(), 7, "{report:?}");
}

fn attributes() -> Vec<(String, String)> {
    ATTRIBUTES
        .iter()
        .map(|a| ("attributes[]".to_owned(), (*a).to_owned()))
        .collect()
}

#[tokio::test]
async fn it_sends_exactly_the_documented_requests() {
    let t = Personio::start().await;
    let ada = t.hire(&Hire::new("ada"));
    t.hire(&Hire::new("cy"));
    let bob = t.hire(&Hire::new("bob").reporting_to(&ada));
    let source = t.source(2);
    let (records, cursor) = read_all(source.as_ref(), None, "exact").await;
    assert_eq!(records.len(), 3);
    let requests = t.0.requests();
    let lines: Vec<String> = requests.iter().map(|r| r.line()).collect();
    assert_eq!(
        lines,
        [
            "POST /v1/auth".to_owned(),
            "GET /v1/company/employees".to_owned(),
            "GET /v1/company/employees".to_owned(),
            format!("GET /v1/company/employees/{ada}"),
        ],
        "one token, two pages, bob's supervisor (listed on an earlier page) read by id"
    );
    assert_eq!(
        requests[0].body,
        Some(json!({"client_id": t.0.client_id(), "client_secret": "[REDACTED]"})),
        "JSON credentials (the simulator checked the secret and hides it in its recording)"
    );
    let mut first = attributes();
    first.extend([("limit".into(), "2".into()), ("offset".into(), "0".into())]);
    assert_eq!(requests[1].query, first);
    assert_eq!(requests[2].query_param("offset"), Some("2"));
    for r in &requests[1..] {
        assert!(
            r.headers
                .iter()
                .any(|(k, v)| k == "authorization" && v == "Bearer [REDACTED]"),
            "{r:?}"
        );
    }
    let bob_record = records
        .iter()
        .find(|r| r.person.id.as_str() == bob)
        .unwrap();
    assert_eq!(
        bob_record.person.manager.as_ref().map(|m| m.email.as_str()),
        Some("ada@example.com")
    );

    // The next poll reads what changed since the server's clock at the first page minus 5 s,
    // in the offset Personio writes, then the head count.
    let latest = t.0.employee(&bob).unwrap().last_modified_at;
    let before = t.0.requests().len();
    source.changes(Some(&cursor)).await.unwrap();
    let next = &t.0.requests()[before..];
    assert_eq!(next.len(), 2, "the supervisor is known: {next:?}");
    let from = next[0].query_param("updated_since").unwrap();
    let zone = chrono::FixedOffset::east_opt(3600).unwrap();
    let from = chrono::NaiveDateTime::parse_from_str(from, "%Y-%m-%dT%H:%M:%S")
        .unwrap()
        .and_local_timezone(zone)
        .unwrap();
    let five = chrono::Duration::seconds(5);
    assert!(
        from >= latest - five && from <= chrono::Utc::now() - five,
        "{from} against {latest}"
    );
    let mut query = attributes();
    query.push((
        "updated_since".into(),
        next[0].query_param("updated_since").unwrap().into(),
    ));
    assert_eq!(next[0].query, query);
    assert_eq!(
        next[1].query,
        [
            ("limit".to_owned(), "1".to_owned()),
            ("offset".to_owned(), "0".to_owned())
        ]
    );
    assert_eq!(t.0.tokens_issued(), 1, "the token is reused");
}

#[tokio::test]
async fn an_expired_token_is_replaced_once_and_the_read_goes_on() {
    let t = Personio::start().await;
    t.hire(&Hire::new("ada"));
    let source = t.source(100);
    let (_, cursor) = read_all(source.as_ref(), None, "token").await;
    assert_eq!(t.0.tokens_issued(), 1);
    t.0.expire_tokens();
    let id = t.hire(&Hire::new("bob"));
    let (records, _) = read_all(source.as_ref(), Some(cursor), "token").await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].person.id.as_str(), id);
    assert_eq!(t.0.tokens_issued(), 2, "one new token after the 401");

    // A token about to expire is replaced before it is used.
    let t = Personio::start().await;
    t.0.set_token_lifetime(Duration::from_secs(30));
    t.hire(&Hire::new("ada"));
    let source = t.source(100);
    read_all(source.as_ref(), None, "short").await;
    read_all(source.as_ref(), None, "short").await;
    assert_eq!(
        t.0.tokens_issued(),
        2,
        "a token within a minute of expiry is not used"
    );
}

#[tokio::test]
async fn wrong_credentials_are_a_clear_error_without_the_secret() {
    let t = Personio::start().await;
    let source = PersonioConfig::new(t.0.client_id(), Secret::new("wrong-s3cr3t-value"))
        .with_base_url(t.0.uri())
        .with_allow_plain_http(true)
        .build()
        .unwrap();
    let e = source.changes(None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    assert!(e.to_string().contains(t.0.client_id()), "{e}");
    assert!(!format!("{e} {e:?}").contains("wrong-s3cr3t-value"));
    assert!(!format!("{source:?}").contains("wrong-s3cr3t-value"));
    assert!(!format!("{:?}", t.config(10)).contains(t.0.client_secret()));
    assert_eq!(t.0.requests().len(), 1, "nothing but the token request");
    let plain = PersonioConfig::new("id", Secret::new("s")).with_base_url("http://api.example.com");
    assert_eq!(plain.build().unwrap_err().kind(), ErrorKind::Config);
}

#[tokio::test]
async fn throttling_surfaces_the_retry_after() {
    let t = Personio::start().await;
    let ada = t.hire(&Hire::new("ada"));
    let source = t.source(100);
    t.0.set_limit(1, Duration::from_secs(10));
    let e = source.changes(None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
    let after = e.retry_after().expect("Retry-After is honoured");
    assert!(after > Duration::ZERO && after <= Duration::from_secs(10));
    t.0.set_limit(100, Duration::from_secs(10));
    let (records, _) = read_all(source.as_ref(), None, "throttled").await;
    assert_eq!(
        (records[0].person.id.as_str(), records[0].lifecycle),
        (ada.as_str(), Lifecycle::Current)
    );
}

#[tokio::test]
async fn a_foreign_cursor_is_invalid_input() {
    support::checks::foreign_cursors_are_refused(&Personio::start().await).await;
}
