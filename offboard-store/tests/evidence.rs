//! Evidence bundles (issue 23 item 4) from a real engine run on SQLite and PostgreSQL: the
//! bundle verifies offline with the public key alone, any flipped byte is detected, and so is
//! every edit re-signed with the right key that the events contradict (a deleted event, a
//! swapped event, a forged link, a checkpoint from an unknown key, an edited summary); an
//! independent verifier in Python (PyNaCl and hashlib, `scripts/verify-evidence.py`) accepts
//! the bundle and refuses a flipped byte.
//!
//! The PostgreSQL half needs `OFFBOARD_TEST_PG_URL`, the Python check
//! `OFFBOARD_TEST_PYTOOLS_PYTHON` (both exported by `./scripts/test`).
#![cfg(feature = "postgres")]

use std::sync::Arc;
use std::time::Duration;

use offboard_core::checkpoint::{CheckpointProblem, MemoryCheckpointSink};
use offboard_core::evidence::{
    Anchor, AnchorStatus, BundleProblem, DelegationStatus, EvidenceBundle, build_bundle,
    verify_bundle,
};
use offboard_core::{
    AuditQuery, CheckpointSigner, CheckpointVerifier, Confirmation, Engine, ErrorKind, Initiator,
    Person, Policy, RunId, RunRequest, RunState, Store, TaskState,
};
use offboard_store::{PostgresStore, SqliteStore};
use offboard_testkit::postgres::ScratchDatabase;
use offboard_testkit::reference::{ReferenceConnector, ReferenceDelegate, ReferenceUser};

const POLICY: &str = r#"
[apps.idp]
method = "automatic"
actions = ["idp.suspend", "idp.delete"]

[apps.salesforce]
method = "delegate"
via = "jira"
"#;

fn signer() -> CheckpointSigner {
    CheckpointSigner::from_seed([11; 32])
        .with_key_id("evidence-1")
        .unwrap()
}

fn stranger() -> CheckpointSigner {
    CheckpointSigner::from_seed([12; 32])
        .with_key_id("evidence-1")
        .unwrap()
}

fn keys() -> CheckpointVerifier {
    CheckpointVerifier::new()
        .with_key(signer().public_key())
        .unwrap()
}

fn person(name: &str) -> Person {
    Person::new(format!("p-{name}"), format!("{name}@example.com"))
}

/// A run of Ada's with a held critical action confirmed in a role, a delegation closed by
/// Sam and a verification pass, with Bob's and Cy's runs around it (their events are the
/// links), the engine signing checkpoints; returns the run and the checkpoints written.
async fn scenario(store: Arc<dyn Store>) -> (RunId, Vec<offboard_core::Checkpoint>) {
    let idp = Arc::new(
        ReferenceConnector::builder("idp")
            .users(
                ["ada@example.com", "bob@example.com", "cy@example.com"]
                    .into_iter()
                    .map(ReferenceUser::employee),
            )
            .build(),
    );
    let jira = Arc::new(ReferenceDelegate::jira());
    let sink = Arc::new(MemoryCheckpointSink::new());
    let engine = Engine::builder()
        .store(store.clone())
        .connector(idp)
        .delegate(jira.clone())
        .policy(Policy::from_toml(POLICY).unwrap())
        .idle_poll(Duration::from_millis(10))
        .delegation_poll(Duration::from_millis(50))
        .with_checkpoints(signer(), sink.clone(), 7, Duration::from_secs(3600))
        .build()
        .unwrap();
    let admin = || Initiator::Admin {
        actor: "hr-admin@example.com".into(),
    };
    let workers = engine.start();
    let plan = engine
        .plan(RunRequest::new(person("ada"), admin()))
        .await
        .unwrap();
    let digest = plan.digest.clone();
    let ada = engine.submit(plan, None).await.unwrap();
    let wait = |id, f: fn(&offboard_core::Run) -> bool| {
        let engine = &engine;
        async move {
            match tokio::time::timeout(Duration::from_secs(60), engine.wait_for(id, f)).await {
                Ok(run) => run.unwrap(),
                Err(_) => panic!("the run stalls: {:#?}", engine.status(id).await),
            }
        }
    };
    let run = wait(ada, |r| {
        r.tasks.iter().any(|t| t.state == TaskState::Held)
            && r.tasks
                .iter()
                .any(|t| matches!(t.state, TaskState::Delegated { .. }))
    })
    .await;
    // Bob's whole run lies between Ada's events.
    let plan = engine
        .plan(RunRequest::new(person("bob"), admin()))
        .await
        .unwrap();
    let bob = engine
        .submit(
            plan.clone(),
            Some(Confirmation::of(&plan, "sec-lead@example.com")),
        )
        .await
        .unwrap();
    wait(bob, |r| r.state == RunState::Waiting).await;
    close_tickets(&jira, "bob");
    wait(bob, |r| r.state.is_terminal()).await;
    engine
        .confirm(
            ada,
            Confirmation::new(digest, "sec-lead@example.com").as_role("security"),
        )
        .await
        .unwrap();
    let ticket = run
        .tasks
        .iter()
        .find_map(|t| match &t.state {
            TaskState::Delegated { ticket } => Some(ticket.key.clone()),
            _ => None,
        })
        .unwrap();
    jira.complete(&ticket, "sam@example.com");
    let run = wait(ada, |r| r.state.is_terminal()).await;
    assert_eq!(run.state, RunState::Completed, "{:?}", run.tasks);
    engine.verify(ada).await.unwrap();
    // Cy's run comes after Ada's last event: the checkpoint covering it lies after it.
    let plan = engine
        .plan(RunRequest::new(person("cy"), admin()))
        .await
        .unwrap();
    let cy = engine
        .submit(
            plan.clone(),
            Some(Confirmation::of(&plan, "sec-lead@example.com")),
        )
        .await
        .unwrap();
    wait(cy, |r| r.state == RunState::Waiting).await;
    close_tickets(&jira, "cy");
    wait(cy, |r| r.state.is_terminal()).await;
    workers.shutdown().await;
    (ada, sink.checkpoints())
}

/// Closes every open ticket about `name` (as done by their IT admin).
fn close_tickets(jira: &ReferenceDelegate, name: &str) {
    for t in jira.tickets() {
        if !t.done && t.request.person.email.starts_with(name) {
            jira.complete(&t.ticket.key, format!("it-{name}@example.com"));
        }
    }
}

/// The bundle's JSON edited by `edit`, then signed again by `with` (the attacker holds a
/// key: the right one, to show the cross-checks, or another).
fn resigned(
    bytes: &[u8],
    with: &CheckpointSigner,
    edit: impl FnOnce(&mut serde_json::Value),
) -> Vec<u8> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes).unwrap();
    edit(&mut value);
    let mut bundle: EvidenceBundle = serde_json::from_value(value).unwrap();
    bundle.sign(with).unwrap();
    bundle.to_bytes().unwrap()
}

fn problem(bytes: &[u8]) -> BundleProblem {
    verify_bundle(bytes, &keys()).expect_err("the bundle must not verify")
}

/// Flips one bit at `pos`; the bundle must not verify.
fn assert_flip_detected(bytes: &[u8], pos: usize, mask: u8) {
    let mut bad = bytes.to_vec();
    bad[pos] ^= mask;
    assert!(
        verify_bundle(&bad, &keys()).is_err(),
        "flipping byte {pos} ({:?} ^ {mask:#04x}) went unnoticed",
        bytes[pos] as char
    );
}

/// The byte ranges of every value of `key` (a JSON string member) in the file.
fn value_ranges(text: &str, key: &str) -> Vec<std::ops::Range<usize>> {
    let needle = format!("\"{key}\":\"");
    text.match_indices(&needle)
        .map(|(i, _)| {
            let start = i + needle.len();
            let len = text[start..].find('"').unwrap();
            start..start + len
        })
        .collect()
}

async fn evidence_on(store: Arc<dyn Store>) {
    let (ada, checkpoints) = scenario(store.clone()).await;
    assert!(!checkpoints.is_empty());
    // Where a checkpoint falls depends on how commits were combined: one may sit exactly on
    // Ada's last event (a valid anchor, with no link after the run). This bundle is to carry
    // Cy's events as trailing links, so it is given the checkpoints past Ada's last event.
    let ada_events = store.audit(AuditQuery::run(ada)).await.unwrap();
    let ada_last = ada_events.last().unwrap().seq;
    let after: Vec<_> = checkpoints
        .iter()
        .filter(|c| c.seq > ada_last)
        .cloned()
        .collect();
    assert!(!after.is_empty(), "a checkpoint covers Cy's run");
    let bundle = build_bundle(store.as_ref(), ada, &signer(), &after)
        .await
        .unwrap();
    let bytes = bundle.to_bytes().unwrap();

    // It verifies with the public key alone, anchored, and says what happened.
    let ok = verify_bundle(&bytes, &keys()).unwrap();
    assert_eq!(ok.run, ada);
    assert!(ok.is_anchored(), "{:?}", ok.anchor);
    let AnchorStatus::Anchored { checkpoint_seq, .. } = ok.anchor else {
        unreachable!()
    };
    assert!(checkpoint_seq > ok.last_seq, "Cy's run lies after Ada's");
    assert!(!bundle.links.is_empty(), "Bob's and Cy's events are links");
    assert!(
        bundle.links.iter().any(|l| l.seq < ok.last_seq),
        "some of Bob's events lie between Ada's"
    );
    // A checkpoint exactly on Ada's last event anchors the bundle too, with no link after it.
    let on_last = signer().sign(
        ada_last,
        &ada_events.last().unwrap().hash,
        chrono::Utc::now(),
    );
    let exact = build_bundle(store.as_ref(), ada, &signer(), &[on_last])
        .await
        .unwrap();
    let exact_ok = verify_bundle(&exact.to_bytes().unwrap(), &keys()).unwrap();
    assert!(
        matches!(exact_ok.anchor, AnchorStatus::Anchored { checkpoint_seq, .. } if checkpoint_seq == ada_last),
        "{:?}",
        exact_ok.anchor
    );
    assert!(exact.links.iter().all(|l| l.seq < ada_last));
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(!text.contains("bob@example.com"), "no other person's data");
    assert!(!text.contains("cy@example.com"), "no other person's data");
    assert_eq!(ok.engine_version, env!("CARGO_PKG_VERSION"));
    let s = &ok.summary;
    assert_eq!(s.state, RunState::Completed);
    assert_eq!(s.plan.submitted_by, "hr-admin@example.com");
    assert_eq!(s.plan.tasks.len(), 3, "{:?}", s.plan.tasks);
    assert!(
        s.plan
            .tasks
            .iter()
            .any(|t| t.action == "idp.delete" && t.critical)
    );
    assert_eq!(s.confirmations.len(), 1, "{:?}", s.confirmations);
    let c = &s.confirmations[0];
    assert_eq!(
        (c.by.as_str(), c.role.as_deref(), c.at_submission),
        ("sec-lead@example.com", Some("security"), false)
    );
    assert_eq!(c.digest, s.plan.confirmation_digest);
    assert_eq!(s.delegations.len(), 1);
    let d = &s.delegations[0];
    assert_eq!(d.status, DelegationStatus::Done);
    assert!(
        d.closed_by.as_deref().unwrap().contains("sam@example.com"),
        "{d:?}"
    );
    assert_eq!(s.verifications.len(), 1);
    let v = &s.verifications[0];
    assert_eq!(v.apps.len(), 2, "{v:?}");
    let idp = v.apps.iter().find(|a| a.app.as_str() == "idp").unwrap();
    assert_eq!(idp.revoked, Some(true));

    // Any flipped byte: a sample over the whole file (every 11th byte, so every offset within
    // a field comes round, the flipped bit turning with the position), every byte of the
    // signature, and a sample of every hash, digest and prev_hash (every 5th byte, first
    // and last always). Every verification replays the run: the sample keeps the debug-build
    // test short; the signature covers every byte but its own, which are all flipped.
    let masks = [0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80];
    for (i, pos) in (0..bytes.len()).step_by(11).enumerate() {
        assert_flip_detected(&bytes, pos, masks[i % masks.len()]);
    }
    for key in ["signature", "hash", "prev_hash", "body_digest"] {
        let ranges = value_ranges(&text, key);
        assert!(!ranges.is_empty(), "{key}");
        for range in ranges {
            let (first, last) = (range.start, range.end - 1);
            let step = if key == "signature" { 1 } else { 5 };
            for pos in range.step_by(step).chain([first, last]) {
                assert_flip_detected(&bytes, pos, 0x01);
            }
        }
    }

    // Re-signed edits the events contradict.
    let key = signer();
    let events = bundle.events.len();
    assert!(events >= 8, "{events} events");
    let deleted = resigned(&bytes, &key, |v| {
        v["events"].as_array_mut().unwrap().remove(events / 2);
    });
    assert!(
        matches!(problem(&deleted), BundleProblem::Missing { .. }),
        "{:?}",
        problem(&deleted)
    );
    let swapped = resigned(&bytes, &key, |v| {
        v["events"].as_array_mut().unwrap().swap(2, 3);
    });
    assert!(
        matches!(problem(&swapped), BundleProblem::OutOfOrder { .. }),
        "{:?}",
        problem(&swapped)
    );
    let forged = resigned(&bytes, &key, |v| {
        v["links"][0]["body_digest"] = "ab".repeat(32).into();
    });
    assert!(
        matches!(
            problem(&forged),
            BundleProblem::LinkBroken { .. } | BundleProblem::AnchorMismatch { .. }
        ),
        "{:?}",
        problem(&forged)
    );
    let altered = resigned(&bytes, &key, |v| {
        v["events"][1]["actor"] = "mallory".into();
    });
    assert!(
        matches!(problem(&altered), BundleProblem::EventAltered { .. }),
        "{:?}",
        problem(&altered)
    );
    // The run's personal data travels beside its commitments; a changed value (re-signed) is
    // refused, and no event carries its values or salt.
    assert!(
        !bundle.personal.is_empty(),
        "Ada's events hold personal data"
    );
    assert!(
        bundle
            .events
            .iter()
            .all(|e| e.get("salt").is_none() && !e.to_string().contains("ada@example.com")),
        "events are carried in their commitment form"
    );
    let lied = resigned(&bytes, &key, |v| {
        let values = v["personal"][0]["values"].as_object_mut().unwrap();
        let first = values.keys().next().unwrap().clone();
        values.insert(first, "someone else".into());
    });
    assert!(
        matches!(problem(&lied), BundleProblem::PersonalMismatch { .. }),
        "{:?}",
        problem(&lied)
    );
    let Anchor::Anchored { checkpoint } = &bundle.anchor else {
        unreachable!()
    };
    let foreign = CheckpointSigner::from_seed([13; 32])
        .with_key_id("other")
        .unwrap()
        .sign(checkpoint.seq, &checkpoint.hash, checkpoint.at);
    let unknown = resigned(&bytes, &key, |v| {
        v["anchor"]["checkpoint"] = serde_json::to_value(&foreign).unwrap();
    });
    assert!(
        matches!(
            problem(&unknown),
            BundleProblem::Checkpoint {
                cause: CheckpointProblem::UnknownKey { .. }
            }
        ),
        "{:?}",
        problem(&unknown)
    );
    let role = resigned(&bytes, &key, |v| {
        v["summary"]["confirmations"][0]["role"] = "intern".into();
    });
    assert_eq!(
        problem(&role),
        BundleProblem::SummaryContradicts {
            section: "confirmations".into()
        }
    );
    let closer = resigned(&bytes, &key, |v| {
        v["summary"]["delegations"][0]["closed_by"] = "nobody".into();
    });
    assert_eq!(
        problem(&closer),
        BundleProblem::SummaryContradicts {
            section: "delegations".into()
        }
    );
    let verdict = resigned(&bytes, &key, |v| {
        v["summary"]["verifications"][0]["apps"][0]["revoked"] = false.into();
    });
    assert_eq!(
        problem(&verdict),
        BundleProblem::SummaryContradicts {
            section: "verifications".into()
        }
    );
    // The same summary edit signed with another key fails the key.
    let other = resigned(&bytes, &stranger(), |v| {
        v["summary"]["confirmations"][0]["role"] = "intern".into();
    });
    assert!(
        matches!(problem(&other), BundleProblem::BadSignature { .. }),
        "{:?}",
        problem(&other)
    );
    let keys_without = CheckpointVerifier::new()
        .with_key(
            CheckpointSigner::from_seed([11; 32])
                .with_key_id("someone-else")
                .unwrap()
                .public_key(),
        )
        .unwrap();
    assert!(matches!(
        verify_bundle(&bytes, &keys_without),
        Err(BundleProblem::UnknownKey { .. })
    ));

    // No checkpoint covers the run yet: the bundle says so and verifies as not anchored.
    let early: Vec<_> = checkpoints
        .iter()
        .filter(|c| c.seq < ok.last_seq)
        .cloned()
        .collect();
    let bare = build_bundle(store.as_ref(), ada, &signer(), &early)
        .await
        .unwrap();
    assert!(matches!(bare.anchor, Anchor::NotAnchored { .. }));
    let out = verify_bundle(&bare.to_bytes().unwrap(), &keys()).unwrap();
    assert_eq!(
        out.anchor,
        AnchorStatus::NotAnchored {
            through_seq: ok.last_seq
        }
    );
    assert!(!out.is_anchored());

    // An unknown run is NotFound.
    let err = build_bundle(store.as_ref(), RunId::new_v4(), &signer(), &checkpoints)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);

    python_check(&bytes);
}

/// The independent verifier (`scripts/verify-evidence.py`, PyNaCl and hashlib) accepts the
/// bundle and refuses it with a byte flipped.
fn python_check(bytes: &[u8]) {
    let python = std::env::var("OFFBOARD_TEST_PYTOOLS_PYTHON").expect(
        "OFFBOARD_TEST_PYTOOLS_PYTHON is not set: run ./scripts/test, or source \
         scripts/services/pytools.sh and call pytools_start",
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/verify-evidence.py");
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.json");
    std::fs::write(&good, bytes).unwrap();
    let key = dir.path().join("key.pem");
    std::fs::write(&key, signer().public_key().to_pem().unwrap()).unwrap();
    let run = |file: &std::path::Path| {
        std::process::Command::new(&python)
            .arg(script)
            .arg(file)
            .arg("--key")
            .arg(format!("evidence-1={}", key.display()))
            .output()
            .unwrap()
    };
    let out = run(&good);
    assert!(
        out.status.success(),
        "python: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("anchored"));
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    // A flipped bit in the signature, in a link's digest and in an event's actor.
    let positions = [
        value_ranges(&text, "signature").last().unwrap().start + 3,
        value_ranges(&text, "body_digest")[0].start + 5,
        text.find("\"actor\":\"").unwrap() + 10,
    ];
    for pos in positions {
        let mut bad = bytes.to_vec();
        bad[pos] ^= 0x01;
        let file = dir.path().join(format!("bad-{pos}.json"));
        std::fs::write(&file, &bad).unwrap();
        let out = run(&file);
        assert_eq!(
            out.status.code(),
            Some(5),
            "python accepted a flipped byte at {pos}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // And a bundle signed by another key.
    let other = resigned(bytes, &stranger(), |_| {});
    let file = dir.path().join("other-key.json");
    std::fs::write(&file, &other).unwrap();
    assert_eq!(run(&file).status.code(), Some(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_bundles_verify_offline_and_catch_tampering_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("o.db")).await.unwrap());
    evidence_on(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_bundles_verify_offline_and_catch_tampering_on_postgres() {
    let db = ScratchDatabase::create(&ScratchDatabase::test_server(), "offboard_ev")
        .await
        .unwrap_or_else(|e| panic!("cannot create a database on OFFBOARD_TEST_PG_URL: {e}"));
    let store = Arc::new(PostgresStore::connect(db.url()).await.unwrap());
    evidence_on(store).await;
}
