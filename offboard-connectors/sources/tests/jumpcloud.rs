//! The JumpCloud source against its simulated organisation: the source conformance suite,
//! and the exact requests, authentication, throttling, cursors and secrets.

mod support;

use offboard_core::source::{Cursor, SourceOfTruth};
use offboard_core::{ErrorKind, Lifecycle, Secret};
use offboard_sources::jumpcloud::{JumpCloudConfig, JumpCloudSource};
use offboard_testkit::sim::jumpcloud::{Faults, JumpCloudTenant, NewSystemUser};
use offboard_testkit::suite::source::{SourceTenant, read_all, run_source_conformance};
use support::jumpcloud::JumpCloud;

const FIELDS: &str =
    "_id email username firstname lastname displayname employeeIdentifier manager state suspended";

#[tokio::test]
async fn jumpcloud_passes_the_source_conformance_suite() {
    let report = run_source_conformance::<JumpCloud>().await;
    assert_eq!(report.rules.len(), 7, "{report:?}");
}

fn header<'a>(
    r: &'a offboard_testkit::sim::jumpcloud::RecordedRequest,
    name: &str,
) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn a_scan_pages_by_skip_sorted_by_id_and_reads_the_missing_and_managers() {
    let jc = JumpCloud::start().await;
    let boss =
        jc.0.add_user(NewSystemUser::active("boss", "boss@example.com"));
    let mut ada = NewSystemUser::active("ada.l", "ada@example.com");
    ada.manager = Some(boss.clone());
    let ada = jc.0.add_user(ada);
    let cy = jc.0.add_user(NewSystemUser::active("cy", "cy@example.com"));
    let source = JumpCloudSource::new(jc.config(2).with_org_id("org-1")).unwrap();

    let (records, cursor) = read_all(&source, None, "first scan").await;
    assert_eq!(records.len(), 3);
    let ada_record = records
        .iter()
        .find(|r| r.person.id.as_str() == ada)
        .unwrap();
    assert_eq!(ada_record.person.aliases, ["ada.l"]);
    let manager = ada_record.person.manager.clone().unwrap();
    assert_eq!(manager.email, "boss@example.com");
    assert_eq!(manager.id.unwrap().as_str(), boss);

    let requests = jc.0.requests();
    let lines: Vec<String> = requests.iter().map(|r| r.line()).collect();
    assert_eq!(
        lines,
        [
            "GET /api/systemusers".to_owned(),
            format!("GET /api/systemusers/{boss}"),
            "GET /api/systemusers".to_owned(),
        ],
        "two pages of two, the manager read once"
    );
    for (r, skip) in [(&requests[0], "0"), (&requests[2], "2")] {
        assert_eq!(r.query_param("limit"), Some("2"));
        assert_eq!(r.query_param("skip"), Some(skip));
        assert_eq!(r.query_param("sort"), Some("_id"));
        assert_eq!(r.query_param("fields"), Some(FIELDS));
        assert_eq!(r.query.len(), 4, "{:?}", r.query);
    }
    for r in &requests {
        assert_eq!(
            header(r, "x-api-key"),
            Some("[REDACTED]"),
            "the key, hidden"
        );
        assert_eq!(header(r, "x-org-id"), Some("org-1"));
        assert_eq!(
            header(r, "authorization"),
            None,
            "JumpCloud takes no Authorization"
        );
    }

    // cy is deleted: the next scan lists two, then reads cy directly and reports them gone.
    assert!(jc.0.remove(&cy));
    let before = jc.0.served();
    let (records, _) = read_all(&source, Some(cursor), "second scan").await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(records[0].is_vanished() && records[0].person.id.as_str() == cy);
    let lines: Vec<String> = jc.0.requests()[before..].iter().map(|r| r.line()).collect();
    assert_eq!(
        lines,
        [
            "GET /api/systemusers".to_owned(),
            format!("GET /api/systemusers/{cy}"),
        ]
    );
}

#[tokio::test]
async fn a_throttled_page_is_rate_limited_with_the_wait_and_repeats_nothing() {
    let jc = JumpCloud::start().await;
    jc.0.add_user(NewSystemUser::active("ada", "ada@example.com"));
    let source = jc.source(100);
    jc.0.set_faults(Faults {
        rate_limit_rate: 1.0,
        ..Faults::default()
    });
    let e = source.changes(None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
    assert_eq!(
        e.retry_after(),
        Some(std::time::Duration::from_secs(1)),
        "{e}"
    );
    jc.0.set_faults(Faults::default());
    let batch = source.changes(None).await.unwrap();
    assert_eq!(batch.changes.len(), 1);

    jc.0.set_rate_limit(Some(1));
    let idle = source.changes(Some(&batch.next)).await.unwrap();
    assert!(idle.changes.is_empty(), "the one request of the minute");
    let e = source.changes(Some(&idle.next)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
    let wait = e.retry_after().unwrap().as_secs();
    assert!((1..=60).contains(&wait), "the rest of the minute: {wait}");
}

#[tokio::test]
async fn a_wrong_key_is_unauthenticated_and_never_shown() {
    let jc = JumpCloud::start().await;
    let wrong = "jc-wrong-key-4242";
    let config = JumpCloudConfig::new(Secret::new(wrong))
        .with_base_url(jc.0.uri())
        .with_allow_plain_http(true);
    assert!(!format!("{config:?}").contains(wrong), "{config:?}");
    let source = JumpCloudSource::new(config).unwrap();
    assert!(!format!("{source:?}").contains(wrong), "{source:?}");
    let e = source.changes(None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    assert!(!format!("{e} {e:?}").contains(wrong));
    assert!(
        !format!("{:?}", jc.0.requests()).contains(wrong),
        "not recorded"
    );
    let right = jc.source(100);
    assert!(!format!("{right:?}").contains(jc.0.api_key()), "{right:?}");
}

#[tokio::test]
async fn a_cursor_not_ours_is_invalid_input_and_sends_nothing() {
    let jc = JumpCloud::start().await;
    let source = jc.source(100);
    for foreign in [
        "garbage",
        r#"{"seen":{},"current":[]}"#,
        r#"{"listing":{"next":"../x","present":[]}}"#,
    ] {
        let e = source
            .changes(Some(&Cursor(foreign.into())))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{foreign}: {e}");
    }
    assert_eq!(jc.0.served(), 0);
}

#[tokio::test]
async fn every_state_is_read_as_the_table_says() {
    let jc = JumpCloud::start().await;
    let ids: Vec<(String, Lifecycle)> = [
        ("ACTIVATED", Lifecycle::Current),
        ("STAGED", Lifecycle::Current),
        ("SUSPENDED", Lifecycle::Past),
    ]
    .into_iter()
    .map(|(state, want)| {
        let mut u = NewSystemUser::active(state, &format!("{state}@example.com"));
        u.state = state.into();
        (jc.0.add_user(u), want)
    })
    .collect();
    let (records, _) = read_all(jc.source(100).as_ref(), None, "states").await;
    for (id, want) in ids {
        let r = records.iter().find(|r| r.person.id.as_str() == id).unwrap();
        assert_eq!(r.lifecycle, want, "{r:?}");
    }
}

#[tokio::test]
async fn a_manager_id_that_is_no_id_names_nobody() {
    let jc = JumpCloud::start().await;
    let mut u = NewSystemUser::active("eve", "eve@example.com");
    u.manager = Some("../systemusers?x=1".into());
    let eve = jc.0.add_user(u);
    let (records, _) = read_all(jc.source(100).as_ref(), None, "manager").await;
    let r = records
        .iter()
        .find(|r| r.person.id.as_str() == eve)
        .unwrap();
    assert_eq!(r.person.manager, None);
    let read = &jc.0.requests()[1];
    assert_eq!(
        read.path, "/api/systemusers/..%2Fsystemusers%3Fx=1",
        "one encoded segment"
    );
}

#[test]
fn a_page_size_out_of_range_is_refused() {
    for n in [0, 101] {
        let e = JumpCloudSource::new(JumpCloudConfig::new(Secret::new("k")).with_page_size(n))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{n}");
    }
    let _ = JumpCloudTenant::ROUTES;
}
