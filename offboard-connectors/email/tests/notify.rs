//! The email notifier against the real SMTP sink (needs `OFFBOARD_TEST_SMTP` and
//! `OFFBOARD_TEST_SMTP_MAILDIR`; fails when they are missing): one message per kind to the
//! recipients of that kind, with the run's facts in text and escaped HTML, and a Message-ID
//! that a redelivery repeats.

mod common;

use chrono::{DateTime, Utc};
use common::{Mail, mails_to, parse, sink, unique, wait_for_mails};
use offboard_core::notify::{
    Notification, NotificationKind, Notifier, OverdueTask, RunFacts, TaskCounts,
};
use offboard_core::{AppId, DelegateVia, PersonId, RunId, RunState, TaskId};
use offboard_email::SmtpSecurity;
use offboard_email::notify::EmailNotifier;

struct People {
    manager: String,
    hr: String,
    it: String,
}

fn people() -> People {
    People {
        manager: unique("manager"),
        hr: unique("hr"),
        it: unique("it"),
    }
}

fn notifier(p: &People) -> EmailNotifier {
    let s = sink();
    EmailNotifier::builder("mail")
        .with_smtp(s.host.clone(), s.port, SmtpSecurity::Plain)
        .with_from("offboard@example.test")
        .with_hr(&p.hr)
        .with_it(&p.it)
        .build()
        .unwrap()
}

fn notification(kind: NotificationKind, p: &People) -> Notification {
    let at: DateTime<Utc> = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    let run = RunId::new_v4();
    let task = TaskId::new_v4();
    let failed = kind == NotificationKind::RunFailed;
    Notification {
        id: Notification::id_for(kind, run, 17, Some(task)),
        kind,
        seq: 17,
        at,
        run: RunFacts {
            id: run,
            person_id: PersonId::new("p-ada"),
            person_email: "ada@example.com".into(),
            person_name: "Ada <script>alert(1)</script>".into(),
            manager_email: Some(p.manager.clone()),
            initiator: "admin@example.com".into(),
            reason: "resigned".into(),
            dry_run: false,
            state: match kind {
                NotificationKind::RunStarted | NotificationKind::TaskOverdue => RunState::Waiting,
                NotificationKind::RunFinished => RunState::Completed,
                NotificationKind::RunFailed => RunState::CompletedWithFailures,
            },
            created_at: at,
            effective_at: at,
            finished_at: None,
            apps: vec![AppId::new("okta"), AppId::new("salesforce")],
            tasks: TaskCounts {
                total: 4,
                completed: if failed { 3 } else { 2 },
                failed: u32::from(failed),
                critical_failed: u32::from(failed),
                delegated: 1,
                open: 1,
                ..TaskCounts::default()
            },
            failed_tasks: if failed {
                vec!["okta.suspend".into()]
            } else {
                Vec::new()
            },
        },
        overdue: (kind == NotificationKind::TaskOverdue).then(|| OverdueTask {
            task,
            app: AppId::new("salesforce"),
            via: DelegateVia::Jira,
            due: at,
            ticket: "IT-7".into(),
            assignee: Some("sam@example.com".into()),
        }),
    }
}

/// The text and HTML parts of a multipart/alternative message.
fn parts(mail: &Mail) -> (String, String) {
    let ct = mail.header("content-type").expect("content-type");
    let boundary = ct
        .split("boundary=")
        .nth(1)
        .expect("a multipart message")
        .trim_matches('"')
        .split(';')
        .next()
        .unwrap()
        .trim_matches('"')
        .to_string();
    let mut text = None;
    let mut html = None;
    for part in mail.body.split(&format!("--{boundary}")) {
        let part = part.trim_start_matches(['\r', '\n']);
        if part.is_empty() || part.starts_with("--") {
            continue;
        }
        let p = parse(part);
        match p.header("content-type") {
            Some(c) if c.starts_with("text/plain") => text = Some(p.body),
            Some(c) if c.starts_with("text/html") => html = Some(p.body),
            _ => {}
        }
    }
    (text.expect("a text part"), html.expect("an html part"))
}

#[tokio::test]
async fn each_kind_reaches_its_recipients_with_the_runs_facts() {
    let s = sink();
    // (kind, manager told, hr told, it told, words in the text)
    let cases = [
        (
            NotificationKind::RunStarted,
            true,
            true,
            true,
            "has started",
        ),
        (
            NotificationKind::TaskOverdue,
            false,
            false,
            true,
            "is overdue",
        ),
        (
            NotificationKind::RunFinished,
            true,
            true,
            true,
            "has finished.",
        ),
        (
            NotificationKind::RunFailed,
            true,
            true,
            true,
            "some tasks failed",
        ),
    ];
    for (kind, to_manager, to_hr, to_it, words) in cases {
        let p = people();
        let mail = notifier(&p);
        let n = notification(kind, &p);
        mail.notify(&n).await.unwrap();
        let got = wait_for_mails(&s, &p.it, 1).await;
        assert_eq!(got.len(), 1, "{kind}: one message");
        assert_eq!(
            mails_to(&s, &p.manager).len(),
            usize::from(to_manager),
            "{kind}"
        );
        assert_eq!(mails_to(&s, &p.hr).len(), usize::from(to_hr), "{kind}");
        assert!(to_it);
        let m = &got[0];
        let subject = m.header("subject").unwrap();
        assert!(subject.contains("[offboard]"), "{kind}: {subject}");
        let (text, html) = parts(m);
        assert!(text.contains(words), "{kind}: {text}");
        assert!(text.contains(&n.run.id.to_string()), "{kind}: {text}");
        assert!(text.contains("Apps: okta, salesforce"), "{kind}: {text}");
        assert!(
            text.contains(&format!("Reference: {}", n.id)),
            "{kind}: {text}"
        );
        assert!(
            text.contains("Ada <script>alert(1)</script> <ada@example.com>"),
            "{kind}"
        );
        // The HTML escapes every field.
        assert!(!html.contains("<script>"), "{kind}: {html}");
        assert!(
            html.contains("Ada &lt;script&gt;alert(1)&lt;/script&gt;"),
            "{kind}: {html}"
        );
        match kind {
            NotificationKind::TaskOverdue => {
                assert!(text.contains("Ticket: IT-7"), "{text}");
                assert!(text.contains("Assigned to: sam@example.com"), "{text}");
                assert!(subject.contains("salesforce"), "{subject}");
            }
            NotificationKind::RunFailed => {
                assert!(text.contains("Failed: okta.suspend"), "{text}");
                assert!(text.contains("1 failed (1 critical)"), "{text}");
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn a_redelivery_repeats_the_message_id_and_nobody_configured_sends_nothing() {
    let s = sink();
    let p = people();
    let mail = notifier(&p);
    let n = notification(NotificationKind::RunFinished, &p);
    mail.notify(&n).await.unwrap();
    mail.notify(&n).await.unwrap();
    let got = wait_for_mails(&s, &p.hr, 2).await;
    assert_eq!(got.len(), 2);
    let id = got[0].header("message-id").unwrap();
    assert_eq!(Some(id), got[1].header("message-id"));
    assert!(id.contains("run_finished"), "{id}");

    // An overdue task without IT configured and no manager kinds: nobody to tell.
    let quiet = EmailNotifier::builder("quiet")
        .with_smtp(s.host.clone(), s.port, SmtpSecurity::Plain)
        .with_from("offboard@example.test")
        .with_hr(&p.hr)
        .build()
        .unwrap();
    let overdue = notification(NotificationKind::TaskOverdue, &p);
    assert!(quiet.recipients(&overdue).is_empty());
    quiet.notify(&overdue).await.unwrap();
    assert_eq!(
        quiet.recipients(&n),
        vec![p.manager.clone(), p.hr.clone()],
        "the manager from the person record, then HR"
    );
}

#[test]
fn bad_settings_are_refused() {
    let err = EmailNotifier::builder("mail")
        .with_smtp("127.0.0.1", 25, SmtpSecurity::Plain)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("from"), "{err}");
    let err = EmailNotifier::builder("mail")
        .with_smtp("127.0.0.1", 25, SmtpSecurity::Plain)
        .with_from("offboard@example.test")
        .with_hr("not an address")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("notify.email.recipients"), "{err}");
}

#[test]
fn the_smtp_password_never_shows() {
    let builder = EmailNotifier::builder("mail")
        .with_smtp("127.0.0.1", 25, SmtpSecurity::Plain)
        .with_from("offboard@example.test")
        .with_credentials(
            "relay-user",
            offboard_core::Secret::new("hunter2-relay-pass"),
        );
    assert!(!format!("{builder:?}").contains("hunter2"));
    let mail = builder.build().unwrap();
    assert!(!format!("{mail:?}").contains("hunter2"), "{mail:?}");
}
