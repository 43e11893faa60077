//! The SailPoint source against its simulated tenant: the source conformance suite, and the
//! exact requests, the token flow, throttling, cursors and secrets.

mod support;

use std::time::Duration;

use offboard_core::source::{Cursor, SourceOfTruth};
use offboard_core::{ErrorKind, Lifecycle, Secret};
use offboard_sources::sailpoint::{SailPointConfig, SailPointSource};
use offboard_testkit::sim::sailpoint::{Faults, NewIdentity};
use offboard_testkit::suite::source::{SourceTenant, read_all, run_source_conformance};
use support::sailpoint::SailPoint;

#[tokio::test]
async fn sailpoint_passes_the_source_conformance_suite() {
    let report = run_source_conformance::<SailPoint>().await;
    assert_eq!(report.rules.len(), 7, "{report:?}");
}

#[tokio::test]
async fn a_scan_pages_by_offset_and_reads_the_missing_and_managers() {
    let sp = SailPoint::start().await;
    let boss =
        sp.0.add_identity(NewIdentity::active("boss", "boss@example.com"));
    let mut ada = NewIdentity::active("ada.l", "ada@example.com");
    ada.manager = Some(boss.clone());
    let ada = sp.0.add_identity(ada);
    let cy =
        sp.0.add_identity(NewIdentity::active("cy", "cy@example.com"));
    let source = SailPointSource::new(sp.config(2)).unwrap();
    let (records, cursor) = read_all(&source, None, "first").await;
    assert_eq!(records.len(), 3);
    let a = records
        .iter()
        .find(|r| r.person.id.as_str() == ada)
        .unwrap();
    assert_eq!(a.person.aliases, ["ada.l"]);
    assert_eq!(a.person.manager.as_ref().unwrap().email, "boss@example.com");
    let requests = sp.0.requests();
    let lines: Vec<String> = requests.iter().map(|r| r.line()).collect();
    assert_eq!(
        lines,
        [
            "POST /oauth/token".to_owned(),
            "GET /v2025/identities".to_owned(),
            format!("GET /v2025/identities/{boss}"),
            "GET /v2025/identities".to_owned(),
        ]
    );
    for (r, offset) in [(&requests[1], "0"), (&requests[3], "2")] {
        let q: Vec<(&str, &str)> = r
            .query
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(q, [("limit", "2"), ("offset", offset), ("count", "true")]);
    }
    for r in &requests[1..] {
        let auth = r
            .headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v.as_str());
        assert_eq!(auth, Some("bearer [REDACTED]"), "{}", r.line());
    }
    assert_eq!(sp.0.token_requests(), 1);

    assert!(sp.0.remove(&cy));
    let before = sp.0.served();
    let (gone, _) = read_all(&source, Some(cursor), "second").await;
    assert_eq!(gone.len(), 1, "{gone:?}");
    assert!(gone[0].is_vanished() && gone[0].person.id.as_str() == cy);
    let lines: Vec<String> = sp.0.requests()[before..].iter().map(|r| r.line()).collect();
    assert_eq!(
        lines,
        [
            "GET /v2025/identities".to_owned(),
            format!("GET /v2025/identities/{cy}")
        ]
    );
    assert_eq!(sp.0.token_requests(), 1, "the token is reused");
}

#[tokio::test]
async fn a_token_is_refetched_after_a_401_and_when_short_lived() {
    let sp = SailPoint::start().await;
    sp.0.add_identity(NewIdentity::active("ada", "ada@example.com"));
    let source = sp.source(250);
    let batch = source.changes(None).await.unwrap();
    sp.0.revoke_tokens();
    let e = source.changes(Some(&batch.next)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    source.changes(Some(&batch.next)).await.unwrap();
    assert_eq!(sp.0.token_requests(), 2, "a new token after the 401");
    sp.0.set_token_lifetime(30);
    sp.0.revoke_tokens();
    let _ = source.changes(Some(&batch.next)).await;
    let (tokens, served) = (sp.0.token_requests(), sp.0.served());
    let (_, _) = read_all(source.as_ref(), Some(batch.next), "short").await;
    let fetched = sp.0.token_requests() - tokens;
    assert!(fetched >= 1);
    assert_eq!(
        sp.0.served() - served,
        2 * fetched,
        "one token per API request"
    );
}

#[tokio::test]
async fn a_429_waits_as_retry_after_says() {
    let sp = SailPoint::start().await;
    sp.0.add_identity(NewIdentity::active("ada", "ada@example.com"));
    let source = sp.source(250);
    sp.0.set_faults(Faults {
        rate_limit_rate: 1.0,
        ..Faults::default()
    });
    let e = source.changes(None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(1)));
    sp.0.set_faults(Faults::default());
    sp.0.set_rate_limit(Some(1));
    let first = source.changes(None).await.unwrap();
    let e = source.changes(Some(&first.next)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
    assert!((1..=10).contains(&e.retry_after().unwrap().as_secs()));
}

#[tokio::test]
async fn wrong_credentials_are_unauthenticated_and_never_shown() {
    let sp = SailPoint::start().await;
    let wrong = "sp-wrong-secret-4242";
    let config = SailPointConfig::new(sp.0.uri(), sp.0.client_id(), Secret::new(wrong))
        .with_allow_plain_http(true);
    assert!(!format!("{config:?}").contains(wrong));
    let source = SailPointSource::new(config).unwrap();
    assert!(!format!("{source:?}").contains(wrong));
    let e = source.changes(None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    assert!(!format!("{e} {e:?}").contains(wrong));
    assert!(
        !format!("{:?}", sp.0.requests()).contains(wrong),
        "not recorded"
    );
    let right = sp.source(250);
    assert!(!format!("{right:?}").contains(sp.0.client_secret()));
}

#[tokio::test]
async fn a_cursor_not_ours_is_invalid_input_and_sends_nothing() {
    let sp = SailPoint::start().await;
    let source = sp.source(250);
    for foreign in [
        "garbage",
        r#"{"scan":{}}"#,
        r#"{"listing":{"next":"{\"full\":true}","present":[]}}"#,
    ] {
        let e = source
            .changes(Some(&Cursor(foreign.into())))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{foreign}: {e}");
    }
    assert_eq!(sp.0.served(), 0);
}

#[tokio::test]
async fn every_lifecycle_state_is_read_as_the_table_says() {
    let sp = SailPoint::start().await;
    let ids: Vec<(String, Lifecycle)> = [
        ("active", Lifecycle::Current),
        ("prehire", Lifecycle::Current),
        ("leaveOfAbsence", Lifecycle::Current),
        ("inactive", Lifecycle::Past),
        ("terminated", Lifecycle::Past),
    ]
    .into_iter()
    .map(|(state, want)| {
        let mut i = NewIdentity::active(state, &format!("{state}@example.com"));
        i.lifecycle_state = state.into();
        (sp.0.add_identity(i), want)
    })
    .collect();
    let (records, _) = read_all(sp.source(250).as_ref(), None, "states").await;
    for (id, want) in ids {
        let r = records.iter().find(|r| r.person.id.as_str() == id).unwrap();
        assert_eq!(r.lifecycle, want, "{r:?}");
    }
}
