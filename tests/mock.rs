//! What a host's own tests look like with `offboard::mock` (feature `mock`): the host's code
//! takes our traits, and its tests hand it mockall mocks with expectations instead of real
//! systems. One test per mock; a host copies the shape.

use mockall::predicate::eq;
use offboard::mock::{MockAuditSink, MockConnector, MockDelegate, MockNotifier, MockSourceOfTruth};
use offboard::{
    AuditSink, ChangeBatch, Connector, Cursor, Delegate, DelegateVia, LookupRequest, Person,
    SourceOfTruth, Ticket, TicketStatus,
};

/// Host code: whether `person` still has an account in the system behind `connector`.
async fn has_account(connector: &dyn Connector, person: &Person) -> offboard::Result<bool> {
    let found = connector
        .lookup(&LookupRequest::person(person.clone()))
        .await?;
    Ok(found.is_some())
}

/// Guards `MockConnector`: a host test stubs `lookup` and checks what its code asked.
#[tokio::test]
async fn a_host_tests_its_lookup_code_with_a_mock_connector() {
    let mut connector = MockConnector::new();
    connector
        .expect_lookup()
        .withf(|r| r.person.email == "ada@example.com")
        .times(1)
        .returning(|_| Ok(None));
    let ada = Person::new("p-ada", "ada@example.com");
    assert!(!has_account(&connector, &ada).await.unwrap());
}

/// Host code: whether the ticket of a delegation is done.
async fn is_done(delegate: &dyn Delegate, ticket: &Ticket) -> offboard::Result<bool> {
    Ok(matches!(
        delegate.status(ticket).await?,
        TicketStatus::Done { .. }
    ))
}

/// Guards `MockDelegate`: a host test stubs `status` as a closed ticket.
#[tokio::test]
async fn a_host_tests_its_ticket_check_with_a_mock_delegate() {
    let mut delegate = MockDelegate::new();
    delegate.expect_via().return_const(DelegateVia::Jira);
    delegate
        .expect_status()
        .withf(|t| t.key == "IT-7")
        .returning(|t| {
            Ok(TicketStatus::Done {
                ticket: t.clone(),
                by: Some("sam@example.com".into()),
            })
        });
    let ticket = Ticket {
        key: "IT-7".into(),
        url: "https://example.atlassian.net/browse/IT-7".into(),
        assignee: None,
    };
    assert_eq!(delegate.via(), DelegateVia::Jira);
    assert!(is_done(&delegate, &ticket).await.unwrap());
}

/// Host code: reads a source of truth from the start; returns the cursor to keep.
async fn first_poll(source: &dyn SourceOfTruth) -> offboard::Result<Cursor> {
    Ok(source.changes(None).await?.next)
}

/// Guards `MockSourceOfTruth`: `changes` is expected with the cursor owned.
#[tokio::test]
async fn a_host_tests_its_polling_with_a_mock_source_of_truth() {
    let mut source = MockSourceOfTruth::new();
    source.expect_name().return_const("hr-feed".to_owned());
    source.expect_changes().with(eq(None)).returning(|_| {
        Ok(ChangeBatch {
            changes: Vec::new(),
            next: Cursor("page-2".into()),
            more: false,
        })
    });
    assert_eq!(SourceOfTruth::name(&source), "hr-feed");
    assert_eq!(first_poll(&source).await.unwrap(), Cursor("page-2".into()));
}

/// Host code: forwards a batch of audit events to the configured sink.
async fn forward(sink: &dyn AuditSink, events: &[offboard::AuditEvent]) -> offboard::Result<()> {
    sink.record(events).await
}

/// Guards `MockAuditSink`: a host test checks its code hands the sink the batch once.
#[tokio::test]
async fn a_host_tests_its_audit_forwarding_with_a_mock_sink() {
    let mut sink = MockAuditSink::new();
    sink.expect_record()
        .withf(|events| events.is_empty())
        .times(1)
        .returning(|_| Ok(()));
    forward(&sink, &[]).await.unwrap();
}

/// Host code: a bridge that tells its own notifier only about runs that need a person's
/// attention (failed runs and overdue tasks), and says whether it did.
async fn escalate(
    notifier: &dyn offboard::Notifier,
    n: &offboard::Notification,
) -> offboard::Result<bool> {
    use offboard::NotificationKind::{RunFailed, TaskOverdue};
    if !matches!(n.kind, RunFailed | TaskOverdue) {
        return Ok(false);
    }
    notifier.notify(n).await?;
    Ok(true)
}

/// Guards `MockNotifier`: a host test checks which notifications its code passes on, and
/// that a notifier's error comes back to it.
#[tokio::test]
async fn a_host_tests_its_escalation_with_a_mock_notifier() {
    use offboard::notify::{NotificationKind, RunFacts, TaskCounts};
    let at = chrono::Utc::now();
    let run = offboard::RunId::new_v4();
    let make = |kind: NotificationKind| offboard::Notification {
        id: offboard::Notification::id_for(kind, run, 3, None),
        kind,
        seq: 3,
        at,
        run: RunFacts {
            id: run,
            person_id: "p-ada".into(),
            person_email: "ada@example.com".into(),
            person_name: "Ada".into(),
            manager_email: None,
            initiator: "admin".into(),
            reason: String::new(),
            dry_run: false,
            state: offboard::RunState::CompletedWithFailures,
            created_at: at,
            effective_at: at,
            finished_at: Some(at),
            apps: vec!["okta".into()],
            tasks: TaskCounts::default(),
            failed_tasks: vec!["okta.suspend".into()],
        },
        overdue: None,
    };
    let mut notifier = MockNotifier::new();
    notifier
        .expect_notify()
        .withf(move |n| n.kind == NotificationKind::RunFailed && n.run.id == run)
        .times(1)
        .returning(|_| Ok(()));
    assert!(
        escalate(&notifier, &make(NotificationKind::RunFailed))
            .await
            .unwrap()
    );
    assert!(
        !escalate(&notifier, &make(NotificationKind::RunStarted))
            .await
            .unwrap()
    );
    notifier.checkpoint();

    notifier
        .expect_notify()
        .returning(|_| Err(offboard::Error::storage("bridge down")));
    assert!(
        escalate(&notifier, &make(NotificationKind::RunFailed))
            .await
            .is_err()
    );
}
