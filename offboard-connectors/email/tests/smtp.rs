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
use offboard_core::Store as _;
use offboard_core::engine::Clock;
use offboard_core::{
    AppId, Delegate, DelegationRequest, ErrorKind, Person, RunId, TaskId, Ticket, TicketStatus,
};
use offboard_email::{
    EmailBuilder, EmailDelegate, EmailState, MemoryEmailState, SmtpSecurity, StoreEmailState,
};
use offboard_store::SqliteStore;

fn delegate(sink: &Sink, clock: Arc<FakeClock>, owner: &str, escalate: &str) -> EmailDelegate {
    delegate_on(sink, clock, owner, escalate, memory())
}

fn delegate_on(
    sink: &Sink,
    clock: Arc<FakeClock>,
    owner: &str,
    escalate: &str,
    state: Arc<dyn EmailState>,
) -> EmailDelegate {
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
        .with_state(state)
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

/// What the owner does: opens the link (the page, `view`) and posts its form (`complete`).
async fn click_and_confirm(
    d: &EmailDelegate,
    link_token: &str,
    now: chrono::DateTime<Utc>,
) -> offboard_core::Result<Ticket> {
    let page = d.view(link_token, now).await?;
    let form = page.form_token().expect("an open task's page has a form");
    d.complete(form, now).await
}

/// Email tasks in the SQLite database at `path`, opened anew (what a restarted process does).
async fn sqlite_state(path: &std::path::Path) -> Arc<dyn EmailState> {
    Arc::new(StoreEmailState::new(Arc::new(
        SqliteStore::open(path).await.unwrap(),
    )))
}

/// A state in memory, for delegates whose tests need no restart.
fn memory() -> Arc<dyn EmailState> {
    Arc::new(MemoryEmailState::new())
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
    let page = d.view(&m.token(), clock.now()).await.unwrap();
    assert_eq!(page.ticket, ticket);
    assert_eq!(page.person_email, "ada@example.com");
    assert_eq!(page.done_at, None);
    let form = page.form_token().unwrap().to_string();
    let done = d.complete(&form, clock.now()).await.unwrap();
    assert_eq!(done.key, ticket.key);
    match d.status(&ticket).await.unwrap() {
        TicketStatus::Done { ticket: t, by } => {
            assert_eq!(t.key, ticket.key);
            assert_eq!(by.as_deref(), Some(owner.as_str()));
        }
        other => panic!("{other:?}"),
    }
    // Replayed: a token is good once.
    let e = d.complete(&form, clock.now()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(e.to_string().contains("already used"), "{e}");
    // The page of a done task shows it done, with no form.
    let page = d.view(&m.token(), clock.now()).await.unwrap();
    assert_eq!(page.done_by.as_deref(), Some(owner.as_str()));
    assert!(page.form_token().is_none());
}

/// Guards the GET/POST split: fetching the link (a mail scanner's prefetch, any number of
/// times) completes nothing, and the link's token is refused by `complete`, so a host that
/// wrongly completes on GET with the URL's token fails instead. Before the split, `complete`
/// took the link's token and marked the task done.
#[tokio::test]
async fn fetching_the_link_completes_nothing_and_its_token_cannot_complete() {
    let sink = sink();
    let clock = FakeClock::new();
    let owner = unique("owner");
    let d = delegate(&sink, clock.clone(), &owner, &unique("boss"));
    let ticket = d.open(&request("run-7:task-1")).await.unwrap();
    let link_token = wait_for_mails(&sink, &owner, 1).await[0].token();
    for _ in 0..3 {
        let page = d.view(&link_token, clock.now()).await.unwrap();
        assert!(page.form_token().is_some());
    }
    assert!(matches!(
        d.status(&ticket).await.unwrap(),
        TicketStatus::Open { .. }
    ));
    let e = d.complete(&link_token, clock.now()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    assert!(e.to_string().contains("only opens the task page"), "{e}");
    assert!(matches!(
        d.status(&ticket).await.unwrap(),
        TicketStatus::Open { .. }
    ));
    // A form token does not open the page either.
    let form = d
        .view(&link_token, clock.now())
        .await
        .unwrap()
        .form_token()
        .unwrap()
        .to_string();
    let e = d.view(&form, clock.now()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    // Neither the page's Debug nor the errors show a token.
    let page = d.view(&link_token, clock.now()).await.unwrap();
    let shown = format!("{page:?} {e} {e:?}");
    assert!(
        !shown.contains(&form) && !shown.contains(&link_token),
        "{shown}"
    );
    assert!(shown.contains("<redacted>"), "{shown}");
}

/// What a restart did: the subjects of the mails to the owner, the tickets of both opens,
/// the rebuilt delegate's answer to the link mailed before the restart, and that link's
/// token.
struct Restarted {
    subjects: Vec<String>,
    before: Ticket,
    after: Ticket,
    completed: offboard_core::Result<Ticket>,
    rebuilt: EmailDelegate,
    owner: String,
    link_token: String,
    clock: Arc<FakeClock>,
}

/// A delegate opens a task and mails the owner; it is dropped and built again (a restart) on
/// the state `state()` gives; the same request is opened again. Then, as a marker, three days
/// on the rebuilt delegate's status of its ticket sends reminder 1: once it arrived, every
/// email the second open sent has arrived before it (sends are awaited), so the subjects are
/// counted without sleeping. Last, the owner uses the first email's link on the rebuilt
/// delegate.
async fn open_restart_open(
    key: &str,
    mut state: impl AsyncFnMut() -> Arc<dyn EmailState>,
) -> Restarted {
    let sink = sink();
    let clock = FakeClock::new();
    let owner = unique("owner");
    let req = request(key);
    let first = delegate_on(&sink, clock.clone(), &owner, &unique("boss"), state().await);
    let before = first.open(&req).await.unwrap();
    let link_token = wait_for_mails(&sink, &owner, 1).await[0].token();
    drop(first);

    clock.advance(chrono::Duration::hours(1));
    let rebuilt = delegate_on(&sink, clock.clone(), &owner, &unique("boss"), state().await);
    let after = rebuilt.open(&req).await.unwrap();
    clock.advance(chrono::Duration::days(3));
    assert!(matches!(
        rebuilt.status(&after).await.unwrap(),
        TicketStatus::Open { .. }
    ));
    let subject = |m: &common::Mail| m.header("subject").unwrap_or_default().to_string();
    let mut subjects = Vec::new();
    for _ in 0..100 {
        subjects = mails_to(&sink, &owner).iter().map(subject).collect();
        if subjects.iter().any(|s| s.starts_with("Reminder 1")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let completed = click_and_confirm(&rebuilt, &link_token, clock.now()).await;
    Restarted {
        subjects,
        before,
        after,
        completed,
        rebuilt,
        owner,
        link_token,
        clock,
    }
}

/// Guards durable task state: a delegate rebuilt on the same store (SQLite file, reopened)
/// sends nothing on the repeated open, accepts the link mailed before the restart, and a
/// completed link stays used across a second restart. With the in-memory state this was
/// before (see the next test) the owner was mailed again and the link was unknown.
#[tokio::test]
async fn a_restart_on_the_same_store_sends_nothing_again_and_the_link_still_works() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("offboard.db");
    // A new store on the file each time: what a restarted process opens.
    let mut reopen = async || sqlite_state(&path).await;
    let r = open_restart_open("run-9:task-1", &mut reopen).await;
    assert_eq!(
        r.subjects,
        [
            "Action needed: remove Ada Lovelace's access to salesforce",
            "Reminder 1: remove Ada Lovelace's access to salesforce",
        ],
        "the repeated open after the restart sent nothing"
    );
    assert_eq!(r.after, r.before, "the same task");
    let done = r
        .completed
        .expect("the link mailed before the restart completes the task");
    assert_eq!(done.key, r.before.key);
    match r.rebuilt.status(&r.before).await.unwrap() {
        TicketStatus::Done { ticket, by } => {
            assert_eq!(ticket.key, r.before.key);
            assert_eq!(by.as_deref(), Some(r.owner.as_str()));
        }
        other => panic!("{other:?}"),
    }
    // A second restart: the completion is durable and the link is used.
    let sink = sink();
    let again = delegate_on(
        &sink,
        r.clock.clone(),
        &r.owner,
        &unique("boss"),
        reopen().await,
    );
    assert!(matches!(
        again.status(&r.before).await.unwrap(),
        TicketStatus::Done { .. }
    ));
    let page = again.view(&r.link_token, r.clock.now()).await.unwrap();
    assert!(page.done_at.is_some() && page.form_token().is_none());
    // The form token minted before the completion is refused: used once.
    let stored = reopen().await.get(&r.before.key).await.unwrap().unwrap();
    assert_eq!(
        stored.tokens.len(),
        2,
        "the first email's and the reminder's"
    );
    assert_eq!(
        stored.done_token.as_deref(),
        Some(stored.tokens[0].as_str())
    );
    drop(again);
}

/// Guards single use across a restart: the form token that completed a task, posted again to
/// a delegate rebuilt on the same store, is refused as already used.
#[tokio::test]
async fn a_used_token_is_refused_after_a_restart() {
    let sink = sink();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("offboard.db");
    let clock = FakeClock::new();
    let owner = unique("owner");
    let state = async || sqlite_state(&path).await;
    let d = delegate_on(&sink, clock.clone(), &owner, &unique("boss"), state().await);
    d.open(&request("run-9:task-3")).await.unwrap();
    let link_token = wait_for_mails(&sink, &owner, 1).await[0].token();
    let page = d.view(&link_token, clock.now()).await.unwrap();
    let form = page.form_token().unwrap().to_string();
    d.complete(&form, clock.now()).await.unwrap();
    drop(d);
    let d = delegate_on(&sink, clock.clone(), &owner, &unique("boss"), state().await);
    let e = d.complete(&form, clock.now()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(e.to_string().contains("already used"), "{e}");
}

/// What `StoreEmailState` prevents: the in-memory state (tests and demos) loses its tasks on
/// restart, so the owner is mailed again and the first link is unknown.
#[tokio::test]
async fn in_memory_state_a_restart_mails_the_owner_again_and_forgets_the_link() {
    let r = open_restart_open("run-9:task-2", async || memory()).await;
    assert_eq!(r.subjects.len(), 3, "{:?}", r.subjects);
    assert!(
        r.subjects[1].starts_with("Action needed"),
        "{:?}",
        r.subjects
    );
    assert_ne!(r.after.key, r.before.key, "a second task");
    let e = r.completed.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let e = r.rebuilt.status(&r.before).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
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
        .with_state(memory())
        .build()
        .unwrap();
    for (who, bad) in [
        (&d, tampered.as_str()),
        (&d, "not-a-token"),
        (&other, token.as_str()),
    ] {
        let e = who.view(bad, clock.now()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{bad}");
        assert!(e.to_string().contains("invalid task token"), "{e}");
        let e = who.complete(bad, clock.now()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{bad}");
    }
    // Expired (the link lives 7 days here): the page, and a form shown before expiry.
    let form = d
        .view(&token, clock.now())
        .await
        .unwrap()
        .form_token()
        .unwrap()
        .to_string();
    let late = clock.now() + chrono::Duration::days(8);
    let e = d.view(&token, late).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated);
    assert!(e.to_string().contains("expired"), "{e}");
    let e = d.complete(&form, late).await.unwrap_err();
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

/// Guards token ids: a correctly signed token whose id the task's record does not list (here
/// taken out of the stored record) opens and completes nothing.
#[tokio::test]
async fn a_token_the_record_does_not_list_is_refused() {
    let sink = sink();
    let clock = FakeClock::new();
    let owner = unique("owner");
    let store = Arc::new(offboard_core::MemoryStore::new());
    let d = delegate_on(
        &sink,
        clock.clone(),
        &owner,
        &unique("boss"),
        Arc::new(StoreEmailState::new(store.clone())),
    );
    let ticket = d.open(&request("run-8:task-1")).await.unwrap();
    let token = wait_for_mails(&sink, &owner, 1).await[0].token();
    let form = d
        .view(&token, clock.now())
        .await
        .unwrap()
        .form_token()
        .unwrap()
        .to_string();
    let key = format!("task:{}", ticket.key);
    let record = store
        .get_record(offboard_email::EMAIL_NAMESPACE, &key)
        .await
        .unwrap()
        .unwrap();
    let mut value = record.value.clone();
    value["tokens"] = serde_json::json!([]);
    store
        .swap_record(
            offboard_email::EMAIL_NAMESPACE,
            &key,
            record.version,
            &value,
        )
        .await
        .unwrap();
    let e = d.view(&token, clock.now()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    assert!(e.to_string().contains("invalid task token"), "{e}");
    let e = d.complete(&form, clock.now()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    assert!(matches!(
        d.status(&ticket).await.unwrap(),
        TicketStatus::Open { .. }
    ));
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
    click_and_confirm(&d, &token, clock.now()).await.unwrap();
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
        .with_state(memory())
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
        .with_state(memory())
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
        .with_state(memory())
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
