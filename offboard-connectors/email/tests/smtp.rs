//! offboard-email against a real SMTP sink (aiosmtpd, started by `scripts/services/smtp.sh`).
//!
//! These tests need `OFFBOARD_TEST_SMTP` (host:port) and `OFFBOARD_TEST_SMTP_MAILDIR`; they
//! fail, never skip, when those are missing. Run them through `./scripts/test`, or start the
//! sink by hand: `source scripts/services/smtp.sh && OFFBOARD_TEST_DIR=/tmp/x smtp_start`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use common::{FakeClock, Sink, TASK_URL, mails_to, sink, unique, wait_for_mails};
use offboard_core::engine::Clock;
use offboard_core::{
    AppId, Delegate, DelegationRequest, ErrorKind, Person, RunId, TaskId, TicketStatus,
};
use offboard_email::{EmailBuilder, EmailDelegate, MemoryEmailState, SmtpSecurity};

fn delegate(sink: &Sink, clock: Arc<FakeClock>, owner: &str, escalate: &str) -> EmailDelegate {
    EmailBuilder::new()
        .with_smtp(sink.host.clone(), sink.port, SmtpSecurity::Plain)
        .with_from("offboard@example.test")
        .with_task_url(TASK_URL)
        .with_signing_key("test-signing-key-0123456789-32-bytes")
        .with_app_owner("salesforce", owner)
        .with_owner(unique("default-owner"))
        .with_escalate_to(escalate)
        .with_max_reminders(2)
        .with_token_ttl(Duration::from_secs(7 * 86_400))
        .with_state(Arc::new(MemoryEmailState::new()))
        .with_clock(clock)
        .build()
        .expect("config is complete")
}

fn request(key: &str) -> DelegationRequest {
    DelegationRequest::new(
        RunId::new_v4(),
        TaskId::new_v4(),
        AppId::new("salesforce"),
        Person::new("p-ada", "ada@example.com").with_name("Ada Lovelace"),
        Utc.with_ymd_and_hms(2026, 3, 6, 17, 0, 0).unwrap(),
        key,
    )
}

#[tokio::test]
async fn the_owner_gets_one_email_with_a_working_link() {
    let sink = sink();
    let clock = FakeClock::new();
    let owner = unique("owner");
    let d = delegate(&sink, clock.clone(), &owner, &unique("boss"));
    let req = request("run-1:task-1");
    let ticket = d.open(&req).await.unwrap();
    assert!(ticket.key.starts_with("email-"));
    assert_eq!(ticket.url, format!("{TASK_URL}/{}", ticket.key));
    assert!(
        !ticket.url.contains("token"),
        "the persisted ticket carries no token"
    );
    assert_eq!(ticket.assignee.as_deref(), Some(owner.as_str()));
    // Idempotent: the same key returns the same task and sends nothing more.
    assert_eq!(d.open(&req).await.unwrap(), ticket);

    let mails = wait_for_mails(&sink, &owner, 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(mails_to(&sink, &owner).len(), 1, "exactly one email");
    let m = &mails[0];
    assert_eq!(
        m.header("subject"),
        Some("Action needed: remove Ada Lovelace's access to salesforce")
    );
    assert!(m.header("from").unwrap().contains("offboard@example.test"));
    assert!(m.body.contains("ada@example.com"), "{}", m.body);
    assert!(m.body.contains(&req.run.to_string()));
    assert!(m.link().starts_with(&format!("{}?token=", ticket.url)));

    assert!(matches!(
        d.status(&ticket).await.unwrap(),
        TicketStatus::Open { .. }
    ));
    let done = d.complete(&m.token(), clock.now()).await.unwrap();
    assert_eq!(done.key, ticket.key);
    match d.status(&ticket).await.unwrap() {
        TicketStatus::Done { ticket: t, by } => {
            assert_eq!(t.key, ticket.key);
            assert_eq!(by.as_deref(), Some(owner.as_str()));
        }
        other => panic!("{other:?}"),
    }
    // Replayed.
    let e = d.complete(&m.token(), clock.now()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(e.to_string().contains("already used"), "{e}");
}

#[tokio::test]
async fn wrong_and_expired_tokens_are_refused() {
    let sink = sink();
    let clock = FakeClock::new();
    let owner = unique("owner");
    let d = delegate(&sink, clock.clone(), &owner, &unique("boss"));
    let ticket = d.open(&request("run-2:task-1")).await.unwrap();
    let mails = wait_for_mails(&sink, &owner, 1).await;
    let token = mails[0].token();

    // Wrong: tampered, another key, garbage.
    let mut tampered = token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let other = EmailBuilder::new()
        .with_smtp(sink.host.clone(), sink.port, SmtpSecurity::Plain)
        .with_from("offboard@example.test")
        .with_task_url(TASK_URL)
        .with_signing_key("another-signing-key-987654-of-32-bytes")
        .with_owner(&owner)
        .with_clock(clock.clone())
        .build()
        .unwrap();
    for (who, bad) in [
        (&d, tampered.as_str()),
        (&d, "not-a-token"),
        (&other, token.as_str()),
    ] {
        let e = who.complete(bad, clock.now()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{bad}");
        assert!(e.to_string().contains("invalid task token"), "{e}");
    }
    // Expired (the link lives 7 days here).
    let e = d
        .complete(&token, clock.now() + chrono::Duration::days(8))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated);
    assert!(e.to_string().contains("expired"), "{e}");
    assert!(matches!(
        d.status(&ticket).await.unwrap(),
        TicketStatus::Open { .. }
    ));
    // The secrets never show.
    let shown = format!("{d:?} {e} {e:?}");
    assert!(!shown.contains("test-signing-key"), "{shown}");
}

#[tokio::test]
async fn reminders_every_three_days_then_one_escalation() {
    let sink = sink();
    let clock = FakeClock::new();
    let owner = unique("owner");
    let boss = unique("boss");
    let d = delegate(&sink, clock.clone(), &owner, &boss);
    let ticket = d.open(&request("run-3:task-1")).await.unwrap();
    wait_for_mails(&sink, &owner, 1).await;

    // Not yet due: two days later, nothing is sent.
    clock.advance(chrono::Duration::days(2));
    d.status(&ticket).await.unwrap();
    // Day 3: reminder 1; day 6: reminder 2 (max 2 here).
    clock.advance(chrono::Duration::days(1));
    d.status(&ticket).await.unwrap();
    d.status(&ticket).await.unwrap(); // polled again the same day: nothing more
    clock.advance(chrono::Duration::days(3));
    d.status(&ticket).await.unwrap();
    let mails = wait_for_mails(&sink, &owner, 3).await;
    assert_eq!(
        mails[1].header("subject"),
        Some("Reminder 1: remove Ada Lovelace's access to salesforce")
    );
    assert_eq!(
        mails[2].header("subject"),
        Some("Reminder 2: remove Ada Lovelace's access to salesforce")
    );
    assert!(mails_to(&sink, &boss).is_empty(), "no escalation yet");

    // Day 9: the reminders did not help; escalate once.
    clock.advance(chrono::Duration::days(3));
    d.status(&ticket).await.unwrap();
    clock.advance(chrono::Duration::days(3));
    d.status(&ticket).await.unwrap();
    let escalations = wait_for_mails(&sink, &boss, 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(mails_to(&sink, &boss).len(), 1, "escalated once");
    assert_eq!(
        mails_to(&sink, &owner).len(),
        3,
        "no reminder after the last"
    );
    assert_eq!(
        escalations[0].header("subject"),
        Some("Escalation: Ada Lovelace's access to salesforce is still not removed")
    );
    assert!(escalations[0].body.contains(&owner));
    assert!(escalations[0].body.contains(&ticket.url));

    // The newest reminder's link works (its token is fresh).
    let token = mails[2].token();
    d.complete(&token, clock.now()).await.unwrap();
    assert!(matches!(
        d.status(&ticket).await.unwrap(),
        TicketStatus::Done { .. }
    ));
}

#[tokio::test]
async fn an_app_without_an_owner_is_a_config_error() {
    let sink = sink();
    let d = EmailBuilder::new()
        .with_smtp(sink.host.clone(), sink.port, SmtpSecurity::Plain)
        .with_from("offboard@example.test")
        .with_task_url(TASK_URL)
        .with_signing_key("test-signing-key-0123456789-32-bytes")
        .with_app_owner("workday", unique("owner"))
        .build()
        .unwrap();
    let e = d.open(&request("run-4:task-1")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("owners.salesforce"), "{e}");
}

#[tokio::test]
async fn an_unreachable_relay_is_retryable() {
    // A port nothing listens on: bound, then released.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let d = EmailBuilder::new()
        .with_smtp("127.0.0.1", port, SmtpSecurity::Plain)
        .with_from("offboard@example.test")
        .with_task_url(TASK_URL)
        .with_signing_key("test-signing-key-0123456789-32-bytes")
        .with_owner(unique("owner"))
        .with_config(offboard_email::ConfigKey::Timeout, "2")
        .build()
        .unwrap();
    let e = d.open(&request("run-5:task-1")).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
}

fn tls_env(var: &str) -> (String, u16) {
    let addr = std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the tests with ./scripts/test (scripts/services/smtp.sh)")
    });
    let (h, p) = addr.rsplit_once(':').expect("host:port");
    (h.to_string(), p.parse().expect("port"))
}

fn ca_file() -> String {
    std::env::var("OFFBOARD_TEST_SMTP_CA_FILE").unwrap_or_else(|_| {
        panic!("OFFBOARD_TEST_SMTP_CA_FILE is not set: see scripts/services/smtp.sh")
    })
}

fn tls_delegate(
    host: String,
    port: u16,
    security: SmtpSecurity,
    ca: bool,
    owner: &str,
) -> EmailDelegate {
    let mut b = EmailBuilder::new()
        .with_smtp(host, port, security)
        .with_from("offboard@example.test")
        .with_task_url(TASK_URL)
        .with_signing_key("test-signing-key-0123456789-32-bytes")
        .with_owner(owner)
        .with_config(offboard_email::ConfigKey::Timeout, "10");
    if ca {
        b = b.with_config(offboard_email::ConfigKey::RootCa, ca_file());
    }
    b.build().expect("config is complete")
}

#[tokio::test]
async fn starttls_and_implicit_tls_with_a_private_root_ca() {
    let sink = sink();
    for (var, security) in [
        ("OFFBOARD_TEST_SMTP_STARTTLS", SmtpSecurity::StartTls),
        ("OFFBOARD_TEST_SMTPS", SmtpSecurity::ImplicitTls),
    ] {
        let (host, port) = tls_env(var);
        let owner = unique("tls-owner");
        let d = tls_delegate(host.clone(), port, security, true, &owner);
        d.open(&request("run-6:task-1")).await.unwrap();
        let mails = wait_for_mails(&sink, &owner, 1).await;
        assert!(mails[0].link().contains("?token="), "{var}");

        // Without the private CA the server is not trusted: nothing is sent.
        let owner2 = unique("untrusted");
        let d = tls_delegate(host, port, security, false, &owner2);
        let e = d.open(&request("run-6:task-2")).await.unwrap_err();
        assert_eq!(e.operation(), "email.send", "{var}: {e}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(mails_to(&sink, &owner2).is_empty(), "{var}");
    }
    // A plain client to the STARTTLS sink is refused (the sink requires STARTTLS).
    let (host, port) = tls_env("OFFBOARD_TEST_SMTP_STARTTLS");
    let owner = unique("plain-to-tls");
    let d = tls_delegate(host, port, SmtpSecurity::Plain, false, &owner);
    assert!(d.open(&request("run-6:task-3")).await.is_err());
}
