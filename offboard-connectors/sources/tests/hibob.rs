//! The HiBob source against its simulated company: the source suite, the exact requests,
//! authentication, throttling and bad cursors.

mod support;

use offboard_core::source::SourceOfTruth;
use offboard_core::{ErrorKind, Lifecycle, Secret};
use offboard_sources::HibobConfig;
use offboard_testkit::suite::source::{Hire, SourceTenant, read_all, run_source_conformance};
use serde_json::json;
use support::hibob::Bob;

const FIELDS: [&str; 8] = [
    "root.id",
    "root.email",
    "root.firstName",
    "root.surname",
    "work.employeeIdInCompany",
    "work.reportsTo",
    "internal.lifecycleStatus",
    "internal.terminationDate",
];

#[tokio::test]
async fn hibob_passes_the_source_conformance_suite() {
    let report = run_source_conformance::<Bob>().await;
    assert_eq!(report.rules.len(), 7, "{report:?}");
}

#[tokio::test]
async fn it_sends_exactly_the_documented_requests() {
    let t = Bob::start().await;
    let ada = t.hire(&Hire::new("ada"));
    let bob = t.hire(&Hire::new("bob").reporting_to(&ada));
    let source = t.source(100);
    let (records, cursor) = read_all(source.as_ref(), None, "exact").await;
    assert_eq!(records.len(), 2);
    let r = &t.0.requests()[0];
    assert_eq!(r.line(), "POST /v1/people/search");
    assert!(r.query.is_empty());
    assert_eq!(
        r.body,
        Some(json!({"fields": FIELDS, "showInactive": true}))
    );
    assert!(
        r.headers
            .iter()
            .any(|(k, v)| k == "authorization" && v == "Basic [REDACTED]")
    );
    let bob_record = records
        .iter()
        .find(|r| r.person.id.as_str() == bob)
        .unwrap();
    let manager = bob_record.person.manager.clone().unwrap();
    assert_eq!(
        (manager.id.unwrap().as_str(), manager.email.as_str()),
        (ada.as_str(), "ada@example.com")
    );

    // Bob is deleted: the next scan misses him and reads him by id (a JSON value, not syntax).
    assert!(t.remove(&bob));
    let batch = source.changes(Some(&cursor)).await.unwrap();
    assert_eq!(batch.changes.len(), 1);
    assert!(batch.changes[0].is_vanished(), "{:?}", batch.changes);
    let requests = t.0.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(
        requests[2].body,
        Some(json!({"fields": FIELDS, "showInactive": true,
                    "filters": [{"fieldPath": "root.id", "operator": "equals", "values": [bob]}]}))
    );
}

#[tokio::test]
async fn wrong_credentials_are_a_clear_error_without_the_token() {
    let t = Bob::start().await;
    let source = HibobConfig::new(t.0.service_user(), Secret::new("wrong-t0ken-s3cr3t"))
        .with_base_url(t.0.uri())
        .with_allow_plain_http(true)
        .build()
        .unwrap();
    let e = source.changes(None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    assert!(!format!("{e} {e:?}").contains("wrong-t0ken-s3cr3t"));
    assert!(!format!("{source:?}").contains("wrong-t0ken-s3cr3t"));
    assert!(!format!("{:?}", t.config()).contains(t.0.token()));
    assert!(HibobConfig::new("a:b", Secret::new("x")).build().is_err());
}

#[tokio::test]
async fn throttling_surfaces_the_retry_after() {
    let t = Bob::start().await;
    let ada = t.hire(&Hire::new("ada"));
    t.0.set_limit(0, std::time::Duration::from_secs(20));
    let source = t.source(1);
    let e = source.changes(None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
    let after = e.retry_after().expect("Retry-After is honoured");
    assert!(after > std::time::Duration::ZERO && after <= std::time::Duration::from_secs(20));
    t.0.set_limit(100, std::time::Duration::from_secs(20));
    let (records, _) = read_all(source.as_ref(), None, "throttled").await;
    assert_eq!(
        (records[0].person.id.as_str(), records[0].lifecycle),
        (ada.as_str(), Lifecycle::Current)
    );
}

#[tokio::test]
async fn a_foreign_cursor_is_invalid_input() {
    support::checks::foreign_cursors_are_refused(&Bob::start().await).await;
}
