//! The OneLogin source against its simulated account: the source conformance suite, and the
//! exact requests, the token flow, throttling, deletions, cursors and secrets.

mod support;

use std::time::Duration;

use offboard_core::source::{Cursor, SourceOfTruth};
use offboard_core::{ErrorKind, Lifecycle, Secret};
use offboard_sources::onelogin::{OneLoginConfig, OneLoginSource};
use offboard_testkit::sim::onelogin::{Faults, NewOneLoginUser, RecordedRequest};
use offboard_testkit::suite::source::{SourceTenant, read_all, run_source_conformance};
use support::onelogin::OneLogin;

#[tokio::test]
async fn onelogin_passes_the_source_conformance_suite() {
    let report = run_source_conformance::<OneLogin>().await;
    assert_eq!(report.rules.len(), 7, "{report:?}");
}

fn auth(r: &RecordedRequest) -> Option<&str> {
    r.headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .map(|(_, v)| v.as_str())
}

fn since_minus_overlap(updated_at: &str) -> String {
    let t =
        chrono::DateTime::parse_from_rfc3339(updated_at).unwrap() - chrono::Duration::seconds(60);
    t.with_timezone(&chrono::Utc)
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

#[tokio::test]
async fn a_full_listing_then_incremental_reads_send_exactly_these_requests() {
    let ol = OneLogin::start().await;
    let boss =
        ol.0.add_user(NewOneLoginUser::active("boss", "boss@example.com"));
    let mut ada = NewOneLoginUser::active("ada.l", "ada@example.com");
    ada.manager_user_id = Some(boss);
    let ada = ol.0.add_user(ada);
    let cy =
        ol.0.add_user(NewOneLoginUser::active("cy", "cy@example.com"));
    let source = OneLoginSource::new(ol.config(2)).unwrap();

    let (records, cursor) = read_all(&source, None, "first").await;
    assert_eq!(records.len(), 3);
    let a = records
        .iter()
        .find(|r| r.person.id.as_str() == ada.to_string())
        .unwrap();
    assert_eq!(a.person.manager.as_ref().unwrap().email, "boss@example.com");
    let requests = ol.0.requests();
    let lines: Vec<String> = requests.iter().map(|r| r.line()).collect();
    assert_eq!(
        lines,
        [
            "POST /auth/oauth2/v2/token".to_owned(),
            "GET /api/2/users".to_owned(),
            format!("GET /api/2/users/{boss}"),
            "GET /api/2/users".to_owned(),
        ]
    );
    assert_eq!(
        auth(&requests[0]),
        Some("Basic [REDACTED]"),
        "client credentials"
    );
    assert_eq!(requests[1].query, [("limit".to_owned(), "2".to_owned())]);
    let after = requests[3]
        .query_param("cursor")
        .expect("the After-Cursor followed");
    assert!(!after.is_empty());
    assert_eq!(
        requests[3].query_param("updated_since"),
        None,
        "the same query"
    );
    for r in &requests[1..] {
        assert_eq!(auth(r), Some("bearer [REDACTED]"), "{}", r.line());
    }

    // Nothing changed: the incremental read from the last updated_at minus the overlap
    // (which holds all three, updated within the minute: two pages), then the count.
    let last = ol.0.user(cy).unwrap()["updated_at"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = ol.0.served();
    let (idle, cursor) = read_all(&source, Some(cursor), "idle").await;
    assert!(idle.is_empty(), "the overlap repeats nothing: {idle:?}");
    let new = &ol.0.requests()[before..];
    assert_eq!(new.len(), 3, "{new:?}");
    let from = since_minus_overlap(&last);
    for r in &new[..2] {
        assert_eq!(r.query_param("updated_since"), Some(from.as_str()));
        assert_eq!(r.query_param("limit"), Some("2"));
    }
    assert!(new[1].query_param("cursor").is_some());
    assert_eq!(
        new[2].query,
        [
            ("limit".to_owned(), "1".to_owned()),
            ("fields".to_owned(), "id".to_owned())
        ]
    );
    assert_eq!(ol.0.token_requests(), 1, "the token is reused");

    // A deletion: the count is short, a full listing follows in the same read.
    assert!(ol.0.remove(cy));
    let (gone, _) = read_all(&source, Some(cursor), "deleted").await;
    assert_eq!(gone.len(), 1, "{gone:?}");
    assert!(gone[0].is_vanished() && gone[0].person.id.as_str() == cy.to_string());
    assert!(
        ol.0.requests()
            .iter()
            .any(|r| r.line() == format!("GET /api/2/users/{cy}")),
        "read directly before reported gone"
    );
}

#[tokio::test]
async fn a_token_is_refreshed_when_it_expires_and_after_a_401() {
    let ol = OneLogin::start().await;
    ol.0.add_user(NewOneLoginUser::active("ada", "ada@example.com"));
    let source = ol.source(100);
    let batch = source.changes(None).await.unwrap();
    assert_eq!(ol.0.token_requests(), 1);
    ol.0.set_token_lifetime(30);
    ol.0.revoke_tokens();
    let e = source.changes(Some(&batch.next)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    let again = source.changes(Some(&batch.next)).await.unwrap();
    assert!(ol.0.token_requests() >= 2, "a new token after the 401");
    // A token that lives less than the refresh margin (60 s) is fetched anew for every
    // request: each API request follows a token request.
    let (tokens, served) = (ol.0.token_requests(), ol.0.served());
    let (_, _) = read_all(source.as_ref(), Some(again.next), "short tokens").await;
    let fetched = ol.0.token_requests() - tokens;
    assert!(fetched >= 2, "{fetched}");
    assert_eq!(
        ol.0.served() - served,
        2 * fetched,
        "one token per API request"
    );
}

#[tokio::test]
async fn a_throttled_read_waits_as_x_ratelimit_reset_says() {
    let ol = OneLogin::start().await;
    ol.0.add_user(NewOneLoginUser::active("ada", "ada@example.com"));
    let source = ol.source(100);
    ol.0.set_faults(Faults {
        rate_limit_rate: 1.0,
        ..Faults::default()
    });
    let e = source.changes(None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(1)));
    ol.0.set_faults(Faults::default());
    ol.0.set_rate_limit(Some(1));
    let first = source.changes(None).await.unwrap();
    assert_eq!(first.changes.len(), 1);
    let e = source.changes(Some(&first.next)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
    let wait = e.retry_after().unwrap().as_secs();
    assert!(
        (3000..=3600).contains(&wait),
        "the rest of the hour: {wait}"
    );
}

#[tokio::test]
async fn wrong_credentials_are_unauthenticated_and_never_shown() {
    let ol = OneLogin::start().await;
    let wrong = "ol-wrong-secret-4242";
    let config = OneLoginConfig::new(ol.0.uri(), ol.0.client_id(), Secret::new(wrong))
        .with_allow_plain_http(true);
    assert!(!format!("{config:?}").contains(wrong));
    let source = OneLoginSource::new(config).unwrap();
    assert!(!format!("{source:?}").contains(wrong));
    let e = source.changes(None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    assert!(!format!("{e} {e:?}").contains(wrong));
    assert!(!format!("{:?}", ol.0.requests()).contains(wrong));
    let right = ol.source(100);
    assert!(!format!("{right:?}").contains(ol.0.client_secret()));
}

#[tokio::test]
async fn a_cursor_not_ours_is_invalid_input_and_sends_nothing() {
    let ol = OneLogin::start().await;
    let source = ol.source(100);
    for foreign in [
        "garbage",
        r#"{"known":{}}"#,
        r#"{"scan":{"listing":{"next":"skip=2","present":[]}}}"#,
        r#"{"scan":{"listing":{"next":"{\"full\":true,\"page\":2}","present":[]}}}"#,
    ] {
        let e = source
            .changes(Some(&Cursor(foreign.into())))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{foreign}: {e}");
    }
    assert_eq!(ol.0.served(), 0);
}

#[tokio::test]
async fn every_status_is_read_as_the_table_says() {
    let ol = OneLogin::start().await;
    let ids: Vec<(u64, Lifecycle)> = [0u8, 1, 2, 3, 4, 5, 7, 8]
        .into_iter()
        .map(|status| {
            let mut u =
                NewOneLoginUser::active(&format!("s{status}"), &format!("s{status}@example.com"));
            u.status = status;
            // Suspended and locked are past; the credential states of an active user and a
            // user not yet activated are current.
            let want = if matches!(status, 2 | 3) {
                Lifecycle::Past
            } else {
                Lifecycle::Current
            };
            (ol.0.add_user(u), want)
        })
        .collect();
    let (records, _) = read_all(ol.source(100).as_ref(), None, "statuses").await;
    for (id, want) in ids {
        let r = records
            .iter()
            .find(|r| r.person.id.as_str() == id.to_string())
            .unwrap();
        assert_eq!(r.lifecycle, want, "{r:?}");
    }
}
