//! The ADP Workforce Now source (Worker API v2, client credentials) against its simulated
//! tenant.

mod support;

use chrono::NaiveDate;
use offboard_core::source::{Cursor, SourceOfTruth};
use offboard_core::{ErrorKind, Lifecycle, Secret};
use offboard_testkit::sim::adp::NewWorker;
use offboard_testkit::suite::source::{SourceTenant, read_all, run_source_conformance};
use support::adp::Adp;

#[tokio::test]
async fn adp_passes_the_source_conformance_suite() {
    let report = run_source_conformance::<Adp>().await;
    assert_eq!(report.rules.len(), 7, "{report:?}");
}

fn worker(login: &str) -> NewWorker {
    NewWorker {
        employee_id: format!("E-{login}"),
        given_name: login.to_owned(),
        family_name: "Tester".into(),
        emails: vec![format!("{login}@example.com")],
        manager: None,
    }
}

#[tokio::test]
async fn adp_pages_with_top_and_skip_and_reads_managers_once() {
    let adp = Adp::start().await;
    let boss = adp.0.hire(worker("boss"));
    let mut ids = Vec::new();
    for n in ["ada", "bob", "cy"] {
        ids.push(adp.0.hire(NewWorker {
            manager: Some(boss.clone()),
            emails: vec![format!("{n}@example.com"), format!("{n}.alias@example.com")],
            ..worker(n)
        }));
    }
    adp.0.set_status(
        &ids[0],
        "Inactive",
        Some(NaiveDate::from_ymd_opt(2026, 11, 2).unwrap()),
    );
    let source = adp.source(2);
    let (records, cursor) = read_all(source.as_ref(), None, "t").await;
    assert_eq!(records.len(), 4);
    let ada = records
        .iter()
        .find(|r| r.person.id.as_str() == ids[0])
        .unwrap();
    assert_eq!(ada.lifecycle, Lifecycle::Past, "Inactive is not active");
    assert_eq!(ada.person.aliases, ["ada.alias@example.com"]);
    assert_eq!(
        ada.person.manager.as_ref().map(|m| m.email.as_str()),
        Some("boss@example.com")
    );
    let lines: Vec<String> = adp
        .0
        .requests()
        .iter()
        .map(|r| {
            let q: Vec<String> = r.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{} {}", r.line(), q.join("&"))
        })
        .collect();
    let list = "GET /hr/v2/workers";
    assert_eq!(
        lines,
        [
            "POST /auth/oauth/v2/token ".to_owned(),
            format!("{list} $top=2&$skip=0"),
            format!("GET /hr/v2/workers/{boss} "),
            format!("{list} $top=2&$skip=2"),
            format!("GET /hr/v2/workers/{boss} "),
            format!("{list} $top=2&$skip=4"),
        ],
        "one token; the manager read once per call; 204 ends the listing"
    );
    let auth: Vec<String> = adp
        .0
        .requests()
        .iter()
        .flat_map(|r| {
            r.headers
                .iter()
                .filter(|(k, _)| k == "authorization")
                .map(|(_, v)| v.clone())
        })
        .collect();
    assert_eq!(auth[0], "Basic [REDACTED]");
    assert!(
        auth[1..].iter().all(|a| a == "Bearer [REDACTED]"),
        "{auth:?}"
    );
    let before = adp.0.served();
    let (again, _) = read_all(source.as_ref(), Some(cursor), "t").await;
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(
        adp.0.served() - before,
        3,
        "three pages, no manager read, no token"
    );
}

#[tokio::test]
async fn adp_tokens_are_fetched_again_after_a_401() {
    let adp = Adp::start().await;
    adp.0.hire(worker("ada"));
    let source = adp.source(100);
    let (_, cursor) = read_all(source.as_ref(), None, "t").await;
    adp.0.expire_tokens();
    let e = source.changes(Some(&cursor)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    let (records, _) = read_all(source.as_ref(), Some(cursor), "t").await;
    assert!(records.is_empty());
    assert_eq!(adp.0.tokens_issued(), 2);
}

#[tokio::test]
async fn adp_throttling_wrong_credentials_and_foreign_cursors() {
    let adp = Adp::start().await;
    adp.0.hire(worker("ada"));
    let source = adp.source(100);
    read_all(source.as_ref(), None, "t").await;
    adp.0.set_per_minute(0);
    let e = source.changes(None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
    assert!(e.retry_after().is_some(), "{e:?}");
    adp.0.set_per_minute(600);

    let e = source
        .changes(Some(&Cursor("[1,2]".into())))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let e = source
        .changes(Some(&Cursor(
            r#"{"listing":{"next":"ten","present":[]}}"#.into(),
        )))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");

    let config = adp.config();
    let (id, _) = adp.0.client();
    let wrong = offboard_sources::AdpConfig::new(id, Secret::new("wrong-adp-secret"))
        .with_base_url(adp.0.uri())
        .with_token_url(format!("{}/auth/oauth/v2/token", adp.0.uri()))
        .with_allow_plain_http(true);
    let (_, secret) = adp.0.client();
    for shown in [
        format!("{config:?}"),
        format!("{:?}", config.build().unwrap()),
    ] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert!(!format!("{wrong:?}").contains("wrong-adp-secret"));
    let e = wrong.build().unwrap().changes(None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    assert!(!format!("{e} {e:?}").contains("wrong-adp-secret"));
}

#[tokio::test]
async fn adp_ids_are_path_segments() {
    let adp = Adp::start().await;
    let ada = adp.0.hire(worker("ada"));
    let source = adp.source(100);
    let (_, cursor) = read_all(source.as_ref(), None, "t").await;
    // A worker vanishes; the source reads them by id, as one path segment.
    adp.0.remove(&ada);
    let (records, _) = read_all(source.as_ref(), Some(cursor), "t").await;
    assert!(
        records
            .iter()
            .any(|r| r.person.id.as_str() == ada && r.is_vanished())
    );
    let read = adp.0.requests().pop().unwrap();
    assert_eq!(read.line(), format!("GET /hr/v2/workers/{ada}"));
}

#[tokio::test]
async fn adp_takes_a_client_certificate_and_never_shows_its_key() {
    // A throwaway self-signed certificate and key made for this test (mutual TLS itself is
    // not exercised: the simulator serves plain HTTP on loopback).
    let pem = include_str!("data/throwaway-client-identity.pem");
    let identity = offboard_http::ClientIdentity::from_pem(&Secret::new(pem)).unwrap();
    let adp = Adp::start().await;
    adp.0.hire(worker("ada"));
    let config = adp.config().with_client_identity(identity);
    let key_line = pem.lines().find(|l| l.starts_with("MIG")).unwrap();
    let source = config.clone().build().unwrap();
    for shown in [format!("{config:?}"), format!("{source:?}")] {
        assert!(
            !shown.contains(key_line) && !shown.contains("PRIVATE"),
            "{shown}"
        );
    }
    let (records, _) = read_all(&source, None, "t").await;
    assert_eq!(records.len(), 1);
    let e = offboard_http::ClientIdentity::from_pem(&Secret::new("-----BEGIN CERTIFICATE-----"))
        .unwrap_err();
    assert!(e.to_string().contains("client_identity"), "{e}");
}
