//! The independent receiver: a Python receiver using PyJWT (tests/independent_receiver.py,
//! run with the virtualenv `scripts/services/pytools.sh` makes) discovers the transmitter,
//! creates its stream, asks for verification and checks every SET against our JWKS and the
//! specs' rules, for push and for poll.

mod common;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use offboard_core::MemoryStore;
use offboard_ssf::{CAEP_SESSION_REVOKED, RISC_ACCOUNT_DISABLED, SSF_VERIFICATION};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn python() -> String {
    std::env::var("OFFBOARD_TEST_PYTOOLS_PYTHON").expect(
        "OFFBOARD_TEST_PYTOOLS_PYTHON is not set: source scripts/services/pytools.sh and run pytools_start (scripts/test does)",
    )
}

async fn independent(mode: &str) {
    let served = serve(Arc::new(MemoryStore::new())).await;
    let (engine, _workers) = engine(served.store.clone(), &served.transmitter);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/independent_receiver.py");
    let mut child = Command::new(python())
        .arg(script)
        .arg(format!(
            "{}/.well-known/ssf-configuration/tenant",
            served.base
        ))
        .arg(TOKEN)
        .arg(AUDIENCE)
        .arg(mode)
        .arg("4")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the receiver starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the receiver got ready")
        .unwrap()
        .unwrap_or_default();
    assert!(first.starts_with("READY "), "{first}");
    offboard(&engine, ada()).await;
    offboard(&engine, grace()).await;
    let mut sets = Vec::new();
    let mut failure = None;
    while let Some(line) = tokio::time::timeout(Duration::from_secs(70), lines.next_line())
        .await
        .expect("the receiver answers")
        .unwrap()
    {
        if let Some(json) = line.strip_prefix("SET ") {
            sets.push(serde_json::from_str::<Value>(json).unwrap());
        } else if line.starts_with("FAIL") {
            failure = Some(line);
        }
    }
    let status = child.wait().await.unwrap();
    assert!(
        status.success() && failure.is_none(),
        "the receiver failed: {failure:?}"
    );
    let mut seen: Vec<(String, String)> = sets
        .iter()
        .map(|c| {
            let who = c["sub_id"]["email"]
                .as_str()
                .or(c["sub_id"]["id"].as_str())
                .unwrap()
                .to_owned();
            (who, event_type(c))
        })
        .collect();
    seen.sort();
    let stream_id = first.trim_start_matches("READY ").to_owned();
    let mut expected = vec![
        (
            "ada@example.com".to_owned(),
            CAEP_SESSION_REVOKED.to_owned(),
        ),
        (
            "ada@example.com".to_owned(),
            RISC_ACCOUNT_DISABLED.to_owned(),
        ),
        (
            "grace@example.com".to_owned(),
            CAEP_SESSION_REVOKED.to_owned(),
        ),
        (
            "grace@example.com".to_owned(),
            RISC_ACCOUNT_DISABLED.to_owned(),
        ),
        (stream_id, SSF_VERIFICATION.to_owned()),
    ];
    expected.sort();
    assert_eq!(seen, expected);
    served.transmitter.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_independent_pyjwt_receiver_accepts_our_pushed_sets() {
    independent("push").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_independent_pyjwt_receiver_accepts_our_polled_sets() {
    independent("poll").await;
}
