//! JsonLinesSink: one canonical JSON event per line, nothing written twice, survives reopening
//! and a torn last line.

use chrono::DateTime;
use offboard_core::audit::{canonical_json, verify_chain};
use offboard_core::{AuditEvent, AuditKind, AuditSink, Store};
use offboard_store::{JsonLinesSink, SqliteStore};

fn note(i: u32) -> AuditEvent {
    AuditEvent::new(
        DateTime::from_timestamp(1_800_000_000 + i64::from(i), 0).unwrap(),
        "test",
        AuditKind::Note {
            name: format!("n{i}"),
            data: serde_json::json!({ "z": 1, "a": [i, { "y": true, "b": null }] }),
        },
    )
}

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn writes_each_sealed_event_once_as_canonical_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let store = SqliteStore::in_memory().await.unwrap();
    let sink = JsonLinesSink::open(&path).await.unwrap();

    let first = store.append_audit(vec![note(1), note(2)]).await.unwrap();
    let second = store.append_audit(vec![note(3)]).await.unwrap();
    sink.record(&first).await.unwrap();
    // A replay (e.g. after a restart) overlapping what was written.
    let mut replay = first.clone();
    replay.extend(second.clone());
    sink.record(&replay).await.unwrap();
    sink.record(&second).await.unwrap();
    assert_eq!(sink.last_seq().await, 3);

    let written = lines(&path);
    assert_eq!(written.len(), 3, "{written:#?}");
    let mut all = first;
    all.extend(second);
    for (line, event) in written.iter().zip(&all) {
        let value = serde_json::to_value(event).unwrap();
        assert_eq!(line, &canonical_json(&value));
    }
    // The file verifies on its own.
    let parsed: Vec<AuditEvent> = written
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(verify_chain(&parsed), Ok(3));
}

#[tokio::test]
async fn reopening_continues_after_the_last_event_and_cuts_a_torn_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let store = SqliteStore::in_memory().await.unwrap();
    let events = store
        .append_audit((1..=4).map(note).collect())
        .await
        .unwrap();
    {
        let sink = JsonLinesSink::open(&path).await.unwrap();
        sink.record(&events[..2]).await.unwrap();
    }
    // A crash in the middle of the next write.
    let mut bytes = std::fs::read(&path).unwrap();
    let partial = canonical_json(&serde_json::to_value(&events[2]).unwrap());
    bytes.extend_from_slice(&partial.as_bytes()[..partial.len() / 2]);
    std::fs::write(&path, &bytes).unwrap();

    let sink = JsonLinesSink::open(&path).await.unwrap();
    assert_eq!(sink.last_seq().await, 2);
    sink.record(&events).await.unwrap();
    let written = lines(&path);
    assert_eq!(written.len(), 4, "{written:#?}");
    let parsed: Vec<AuditEvent> = written
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(parsed, events);
}

#[tokio::test]
async fn refuses_a_file_with_a_line_that_is_not_an_event() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    std::fs::write(&path, "hello\n").unwrap();
    let err = JsonLinesSink::open(&path).await.unwrap_err();
    assert_eq!(err.kind(), offboard_core::ErrorKind::Tampered, "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "hello\n");
}
