//! The Namely source (profiles, bearer token) against its simulated company.

mod support;

use chrono::NaiveDate;
use offboard_core::source::{Cursor, SourceOfTruth};
use offboard_core::{ErrorKind, Lifecycle, Secret};
use offboard_testkit::sim::namely::NewProfile;
use offboard_testkit::suite::source::{SourceTenant, read_all, run_source_conformance};
use support::namely::Namely;

#[tokio::test]
async fn namely_passes_the_source_conformance_suite() {
    let report = run_source_conformance::<Namely>().await;
    assert_eq!(report.rules.len(), 7, "{report:?}");
}

fn profile(login: &str) -> NewProfile {
    NewProfile {
        email: format!("{login}@example.com"),
        first_name: login.to_owned(),
        last_name: "Tester".into(),
        employee_id: format!("E-{login}"),
        personal_email: format!("{login}@home.example"),
        reports_to: None,
    }
}

#[tokio::test]
async fn namely_pages_by_number_with_a_bearer_token() {
    let namely = Namely::start().await;
    let boss = namely.0.hire(profile("boss"));
    let ada = namely.0.hire(NewProfile {
        reports_to: Some(boss.clone()),
        ..profile("ada")
    });
    namely.0.hire(profile("bob"));
    namely
        .0
        .set_status(&ada, "inactive", NaiveDate::from_ymd_opt(2026, 11, 2));
    let source = namely.source(2);
    let (records, cursor) = read_all(source.as_ref(), None, "t").await;
    assert_eq!(records.len(), 3);
    let r = records
        .iter()
        .find(|r| r.person.id.as_str() == ada)
        .unwrap();
    assert_eq!(r.lifecycle, Lifecycle::Past);
    assert!(
        r.person.aliases.is_empty(),
        "the personal email is not an alias"
    );
    assert_eq!(
        r.person.manager.as_ref().map(|m| m.email.as_str()),
        Some("boss@example.com")
    );
    assert_eq!(
        r.termination_at
            .map(|t| t.date_naive().to_string())
            .as_deref(),
        Some("2026-11-02")
    );
    let requests = namely.0.requests();
    let sent: Vec<String> = requests
        .iter()
        .map(|r| {
            let q: Vec<String> = r.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{} {}", r.line(), q.join("&"))
        })
        .collect();
    assert_eq!(
        sent,
        [
            "GET /api/v1/profiles page=1&per_page=2&sort=created_at",
            "GET /api/v1/profiles page=2&per_page=2&sort=created_at",
        ],
        "a short page ends the listing"
    );
    assert!(requests.iter().all(|r| {
        r.headers
            .iter()
            .any(|(k, v)| k == "authorization" && v == "Bearer [REDACTED]")
    }));
    let (again, _) = read_all(source.as_ref(), Some(cursor), "t").await;
    assert!(again.is_empty(), "{again:?}");
}

#[tokio::test]
async fn namely_errors_say_what_went_wrong_and_never_show_the_token() {
    let namely = Namely::start().await;
    namely.0.hire(profile("ada"));
    let source = namely.source(50);
    read_all(source.as_ref(), None, "t").await;
    namely.0.set_per_minute(0);
    let e = source.changes(None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
    assert!(e.retry_after().is_some(), "{e:?}");
    namely.0.set_per_minute(600);

    let e = source
        .changes(Some(&Cursor("\"x\"".into())))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let e = source
        .changes(Some(&Cursor(
            r#"{"listing":{"next":"0","present":[]}}"#.into(),
        )))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");

    let config =
        offboard_sources::NamelyConfig::new(namely.0.uri(), Secret::new("wrong-namely-token"))
            .with_allow_plain_http(true);
    assert!(!format!("{config:?}").contains("wrong-namely-token"));
    let wrong = config.build().unwrap();
    assert!(!format!("{wrong:?}").contains("wrong-namely-token"));
    let e = wrong.changes(None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    assert!(!format!("{e} {e:?}").contains("wrong-namely-token"));
    let e = offboard_sources::NamelyConfig::new(namely.0.uri(), Secret::new(""))
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("token"), "{e}");
}

#[tokio::test]
async fn a_vanished_profile_is_read_by_id_as_one_segment() {
    let namely = Namely::start().await;
    let ada = namely.0.hire(profile("ada"));
    namely.0.hire(profile("bob"));
    let source = namely.source(50);
    let (_, cursor) = read_all(source.as_ref(), None, "t").await;
    namely.0.remove(&ada);
    let (records, _) = read_all(source.as_ref(), Some(cursor), "t").await;
    assert_eq!(records.len(), 1);
    assert!(records[0].is_vanished() && records[0].person.id.as_str() == ada);
    let last = namely.0.requests().pop().unwrap();
    assert_eq!(last.line(), format!("GET /api/v1/profiles/{ada}"));
}
