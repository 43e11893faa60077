//! The pickup directory ([`EmailBuilder::with_pickup_dir`]): messages are written as `.eml`
//! files instead of going over SMTP, so a demo (or a host with a mail server's pickup
//! directory) needs no SMTP server.

mod common;

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use common::{FakeClock, TASK_URL, parse};
use offboard_core::{AppId, Delegate, DelegationRequest, ErrorKind, Person, RunId, TaskId};
use offboard_email::{EmailBuilder, MemoryEmailState};

fn builder(dir: &std::path::Path) -> EmailBuilder {
    EmailBuilder::new()
        .with_pickup_dir(dir)
        .with_from("offboard@example.test")
        .with_task_url(TASK_URL)
        .with_signing_key("pickup-test-signing-key-of-32-bytes")
        .with_app_owner("notion", "notion-owner@example.test")
        .with_state(Arc::new(MemoryEmailState::new()))
        .with_clock(FakeClock::new())
}

/// Guards the pickup directory: without SMTP settings, `open` writes one `.eml` file with the
/// owner, the subject and a working link, and a repeated `open` writes nothing more.
#[tokio::test]
async fn open_writes_one_message_file_with_a_working_link_and_no_smtp() {
    let dir = tempfile::tempdir().unwrap();
    let email = builder(dir.path()).build().unwrap();
    let request = DelegationRequest::new(
        RunId::new_v4(),
        TaskId::new_v4(),
        AppId::new("notion"),
        Person::new("p-ada", "ada@example.com").with_name("Ada"),
        Utc.with_ymd_and_hms(2026, 3, 6, 17, 0, 0).unwrap(),
        "run-1:task-1",
    );
    let ticket = email.open(&request).await.unwrap();
    assert_eq!(email.open(&request).await.unwrap(), ticket);
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0].extension().unwrap(), "eml");
    let mail = parse(&std::fs::read_to_string(&files[0]).unwrap());
    assert!(
        mail.header("to")
            .unwrap()
            .contains("notion-owner@example.test")
    );
    assert_eq!(
        mail.header("subject"),
        Some("Action needed: remove Ada's access to notion")
    );
    let page = email
        .view(
            &mail.token(),
            Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(page.ticket, ticket);
}

/// A pickup directory that does not exist is a configuration error, found when building.
#[test]
fn a_missing_pickup_directory_is_refused_at_build() {
    let dir = tempfile::tempdir().unwrap();
    let err = builder(&dir.path().join("missing")).build().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains("pickup_dir"), "{err}");
}
