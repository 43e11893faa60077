//! offboard-jira against the simulated Jira site.

use std::time::Duration;

use chrono::Utc;
use offboard_core::{
    AppId, Delegate, DelegationRequest, ErrorKind, Person, RunId, TaskId, Ticket, TicketStatus,
};
use offboard_jira::{JiraBuilder, JiraDelegate, JiraWebhook};
use offboard_testkit::sim::jira::{DEFAULT_EMAIL, DEFAULT_TOKEN, JiraSim, sign};
use serde_json::Value;

async fn sim() -> JiraSim {
    JiraSim::builder()
        .user("acc-sam", "Sam Admin", "sam@example.com")
        .start()
        .await
}

fn builder(sim: &JiraSim) -> JiraBuilder {
    JiraBuilder::new()
        .with_site(sim.uri())
        .with_allow_plain_http(true)
        .with_email(DEFAULT_EMAIL)
        .with_api_token(DEFAULT_TOKEN)
        .with_project("IT")
        .with_webhook_secret("whsec-test")
}

fn jira(sim: &JiraSim) -> JiraDelegate {
    builder(sim).build().expect("config is complete")
}

fn request(key: &str) -> DelegationRequest {
    DelegationRequest::new(
        RunId::new_v4(),
        TaskId::new_v4(),
        AppId::new("salesforce"),
        Person::new("p-ada", "ada@example.com").with_name("Ada Lovelace"),
        Utc::now(),
        key,
    )
}

fn open_ticket(s: TicketStatus) -> Ticket {
    match s {
        TicketStatus::Open { ticket } => ticket,
        other => panic!("expected Open, got {other:?}"),
    }
}

#[tokio::test]
async fn open_files_one_issue_with_label_templates_and_adf() {
    let sim = sim().await;
    let d = builder(&sim)
        .with_summary("Remove {person} ({email}) from {app}")
        .with_description("Run {run}\nDue {due}")
        .build()
        .unwrap();
    let req = request("run-1:task-1");
    let t = d.open(&req).await.unwrap();
    assert_eq!(t.key, "IT-1");
    assert_eq!(t.url, format!("{}/browse/IT-1", sim.uri()));
    let again = d.open(&req).await.unwrap();
    assert_eq!(again.key, t.key);
    assert_eq!(sim.issues_created(), 1, "one issue per task");

    let issue = sim.issue("IT-1").unwrap();
    assert_eq!(issue.labels, vec!["offb-run-1:task-1".to_string()]);
    assert_eq!(
        issue.summary,
        "Remove Ada Lovelace (ada@example.com) from salesforce"
    );
    let desc = issue.description.unwrap();
    assert_eq!(desc["type"], "doc");
    assert_eq!(
        desc["content"][0]["content"][0]["text"],
        format!("Run {}", req.run)
    );
    // A different task gets its own issue.
    let other = d.open(&request("run-1:task-2")).await.unwrap();
    assert_eq!(other.key, "IT-2");
}

#[tokio::test]
async fn a_lost_create_response_never_files_a_second_issue() {
    let sim = sim().await;
    let d = jira(&sim);
    let req = request("run-9:task-9");
    sim.lose_next_create_responses(1);
    let err = d.open(&req).await.unwrap_err();
    assert!(err.is_retryable(), "a lost response is retried: {err}");
    assert_eq!(sim.issues_created(), 1, "the create went through");
    // The retry (as after a crash before the ticket was persisted) finds it by label.
    let t = d.open(&req).await.unwrap();
    assert_eq!(t.key, "IT-1");
    assert_eq!(sim.issues_created(), 1);
    let creates = sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/rest/api/3/issue")
        .count();
    assert_eq!(creates, 1);
}

/// Jira Cloud's search lags behind creation: a retry after a lost create answer (or a crash
/// before the ticket was stored) must still find the issue, not file a second one.
#[tokio::test]
async fn a_lost_create_response_under_search_lag_never_files_a_second_issue() {
    let sim = sim().await;
    sim.search_lag(Duration::from_secs(3600));
    let d = jira(&sim);
    // Someone else's issues, one indexed and one still in the lag window.
    sim.create_issue("other work", &["other"]);
    sim.reindex();
    sim.create_issue("more other work", &["other-2"]);
    let req = request("run-7:task-7");
    sim.lose_next_create_responses(1);
    d.open(&req).await.unwrap_err();
    assert_eq!(sim.issues_created(), 3, "the create went through");
    let t = d.open(&req).await.unwrap();
    assert_eq!(
        t.key, "IT-3",
        "the retry finds the issue the lost create filed"
    );
    assert_eq!(sim.issues_created(), 3, "no second issue");
    // And once more, after it was found.
    assert_eq!(d.open(&req).await.unwrap().key, "IT-3");
    assert_eq!(sim.issues_created(), 3);
}

/// "Done" is the status category: any `done`-category status completes the task (Jira's
/// default workflow also closes issues as "Closed").
#[tokio::test]
async fn any_done_category_status_is_done() {
    let sim = sim().await;
    let d = jira(&sim);
    let t = d.open(&request("k-closed")).await.unwrap();
    sim.transition(&t.key, "Closed");
    assert!(
        matches!(d.status(&t).await.unwrap(), TicketStatus::Done { .. }),
        "Closed is a done-category status"
    );
}

/// A ticket closed as "Won't Do" (or another resolution that says the work was not done) is
/// reported as declined, never as access removed.
#[tokio::test]
async fn a_wont_do_resolution_is_declined_not_done() {
    let sim = sim().await;
    let d = jira(&sim);
    for (i, resolution) in ["Won't Do", "Duplicate", "Cannot Reproduce"]
        .iter()
        .enumerate()
    {
        let t = d.open(&request(&format!("k-declined-{i}"))).await.unwrap();
        sim.resolve(&t.key, "Done", resolution);
        match d.status(&t).await.unwrap() {
            TicketStatus::Declined { ticket, reason } => {
                assert_eq!(ticket.key, t.key);
                assert!(reason.contains(resolution), "{reason}");
            }
            other => panic!("{resolution}: expected Declined, got {other:?}"),
        }
        let read = d.statuses(std::slice::from_ref(&t)).await.unwrap();
        assert!(
            matches!(read[&t.key], TicketStatus::Declined { .. }),
            "{resolution}: batched read"
        );
    }
    // The list is configurable: a site whose "Duplicate" means done elsewhere.
    let d = builder(&sim)
        .with_not_done_resolutions(["Won't Do"])
        .build()
        .unwrap();
    let t = d.open(&request("k-dup")).await.unwrap();
    sim.resolve(&t.key, "Done", "Duplicate");
    assert!(matches!(
        d.status(&t).await.unwrap(),
        TicketStatus::Done { .. }
    ));
}

#[tokio::test]
async fn status_reads_assignee_done_and_reopen() {
    let sim = sim().await;
    let d = jira(&sim);
    let t = d.open(&request("k1")).await.unwrap();
    let open = open_ticket(d.status(&t).await.unwrap());
    assert_eq!(open.assignee, None);
    sim.assign(&t.key, "sam@example.com");
    let open = open_ticket(d.status(&t).await.unwrap());
    assert_eq!(open.assignee.as_deref(), Some("Sam Admin"));
    sim.transition(&t.key, "In Progress");
    open_ticket(d.status(&t).await.unwrap());
    sim.transition(&t.key, "Done");
    match d.status(&t).await.unwrap() {
        TicketStatus::Done { ticket, .. } => {
            assert_eq!(ticket.key, t.key);
            assert_eq!(ticket.assignee.as_deref(), Some("Sam Admin"));
        }
        other => panic!("{other:?}"),
    }
    sim.reopen(&t.key);
    open_ticket(d.status(&t).await.unwrap());
    let reqs = sim.requests();
    let get = reqs
        .iter()
        .rfind(|r| r.method == "GET")
        .expect("status reads with GET");
    assert_eq!(get.path, format!("/rest/api/3/issue/{}", t.key));
    assert_eq!(
        get.query.as_deref(),
        Some("fields=status%2Cassignee%2Cresolution")
    );
}

#[tokio::test]
async fn done_status_by_id_narrows_the_done_category() {
    let sim = sim().await;
    // 10001 is "Done" in the simulator's workflow; "Closed" (6) is also category done.
    let d = builder(&sim).with_done_status("10001").build().unwrap();
    let t = d.open(&request("k1")).await.unwrap();
    sim.transition(&t.key, "Closed");
    assert!(
        matches!(d.status(&t).await.unwrap(), TicketStatus::Open { .. }),
        "a done-category status other than the configured one"
    );
    sim.reopen(&t.key);
    sim.transition(&t.key, "Done");
    assert!(matches!(
        d.status(&t).await.unwrap(),
        TicketStatus::Done { .. }
    ));
    // A configured status outside the done category never completes a task.
    let d = builder(&sim).with_done_status("3").build().unwrap();
    let t = d.open(&request("k2")).await.unwrap();
    sim.transition(&t.key, "In Progress");
    assert!(matches!(
        d.status(&t).await.unwrap(),
        TicketStatus::Open { .. }
    ));
}

#[tokio::test]
async fn deleted_or_invisible_issue_is_not_found() {
    let sim = sim().await;
    let d = jira(&sim);
    let t = Ticket {
        key: "IT-99".into(),
        url: String::new(),
        assignee: None,
    };
    assert_eq!(d.status(&t).await.unwrap_err().kind(), ErrorKind::NotFound);
    let bad = Ticket {
        key: "IT-1/../x".into(),
        url: String::new(),
        assignee: None,
    };
    assert_eq!(
        d.status(&bad).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
}

#[tokio::test]
async fn batched_statuses_use_one_search() {
    let sim = sim().await;
    let d = jira(&sim);
    let mut tickets = Vec::new();
    for i in 0..5 {
        tickets.push(d.open(&request(&format!("k{i}"))).await.unwrap());
    }
    sim.transition(&tickets[1].key, "Done");
    sim.assign(&tickets[2].key, "acc-sam");
    sim.clear_requests();
    let all = d.statuses(&tickets).await.unwrap();
    assert_eq!(sim.requests().len(), 1, "one call for five tickets");
    assert_eq!(all.len(), 5);
    assert!(matches!(all["IT-2"], TicketStatus::Done { .. }));
    assert_eq!(
        open_ticket(all["IT-3"].clone()).assignee.as_deref(),
        Some("Sam Admin")
    );
    let body: Value = serde_json::from_str(&sim.requests()[0].body).unwrap();
    assert_eq!(
        body["jql"],
        r#"key in ("IT-1", "IT-2", "IT-3", "IT-4", "IT-5")"#
    );
}

#[tokio::test]
async fn rate_limits_and_outages_are_retryable_with_the_hint() {
    let sim = sim().await;
    let d = jira(&sim);
    let t = d.open(&request("k1")).await.unwrap();
    sim.throttle_next(1, Duration::from_secs(9));
    let e = d.status(&t).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(9)));
    sim.fail_next(&[502]);
    let e = d.status(&t).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.is_retryable());
    // Honouring the hint: the next call after it succeeds.
    open_ticket(d.status(&t).await.unwrap());
    sim.throttle_next(1, Duration::from_secs(3));
    let e = d.open(&request("k2")).await.unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
    assert_eq!(sim.issues_created(), 1, "nothing filed while throttled");
}

#[tokio::test]
async fn hostile_idempotency_keys_cannot_widen_the_search() {
    let sim = sim().await;
    let d = jira(&sim);
    // Somebody else's issues, with labels a widened search would match.
    sim.create_issue("other", &["offb-y"]);
    sim.create_issue("other 2", &["x"]);
    for hostile in [
        r#"x" OR labels = "offb-y"#,
        r#"x\" OR labels is not EMPTY OR labels = \"y"#,
        "x' OR key = 'IT-1",
        "a b\nc\u{1}",
    ] {
        let before = sim.issues_created();
        let t = d.open(&request(hostile)).await.unwrap();
        assert_eq!(sim.issues_created(), before + 1, "{hostile}: a new issue");
        let issue = sim.issue(&t.key).unwrap();
        assert_eq!(issue.labels, vec![JiraDelegate::label_for(hostile)]);
        assert!(!issue.labels[0].contains(char::is_whitespace));
        // Re-opening finds exactly that issue.
        assert_eq!(d.open(&request(hostile)).await.unwrap().key, t.key);
    }
    // Every search the delegate sent parsed (no 400) and matched at most one issue.
    for r in sim.requests() {
        assert_ne!(r.status, 400, "{}", r.body);
    }
}

#[tokio::test]
async fn the_token_never_shows() {
    let sim = sim().await;
    let d = jira(&sim);
    let t = d.open(&request("k1")).await.unwrap();
    sim.throttle_next(1, Duration::from_secs(1));
    let e = d.status(&t).await.unwrap_err();
    let bad = builder(&sim)
        .with_api_token("wrong-token-value")
        .build()
        .unwrap();
    let e2 = bad.status(&t).await.unwrap_err();
    assert_eq!(e2.kind(), ErrorKind::Unauthenticated);
    for text in [
        format!("{d:?}"),
        format!("{:?}", d.config()),
        format!("{e} {e:?}"),
        format!("{e2} {e2:?}"),
        format!("{bad:?}"),
        format!("{:?}", e2.record()),
    ] {
        assert!(!text.contains(DEFAULT_TOKEN), "{text}");
        assert!(!text.contains("wrong-token-value"), "{text}");
        assert!(!text.contains("whsec-test"), "{text}");
    }
    for r in sim.requests() {
        let all = format!("{r:?}");
        assert!(!all.contains(DEFAULT_TOKEN) && !all.contains("wrong-token-value"));
    }
}

fn headers(pairs: &[(&str, &str)]) -> reqwest::header::HeaderMap {
    let mut h = reqwest::header::HeaderMap::new();
    for (k, v) in pairs {
        h.insert(
            reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    h
}

#[tokio::test]
async fn webhooks_good_bad_replayed_and_stale() {
    let sim = sim().await;
    // A receiver that accepts anything: the test reads what was sent from the deliveries.
    let receiver = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(wiremock::ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    sim.register_webhook(format!("{}/jira", receiver.uri()), Some("whsec-test"));
    let d = jira(&sim);
    let hook: JiraWebhook = d.webhook().unwrap();
    let t = d.open(&request("k1")).await.unwrap();
    sim.assign(&t.key, "acc-sam");
    let changed = std::time::Instant::now();
    sim.transition(&t.key, "Done");
    let sent = sim.deliver_webhooks().await;
    assert_eq!(sent.len(), 2);
    let now = Utc::now();

    let started = std::time::Instant::now();
    let done = &sent[1];
    let h = headers(&[
        ("x-hub-signature", done.signature.as_deref().unwrap()),
        ("x-atlassian-webhook-identifier", &done.identifier),
    ]);
    let update = hook
        .verify_and_parse(&h, done.body.as_bytes(), now)
        .unwrap();
    let verify_time = started.elapsed();
    let end_to_end = changed.elapsed();
    assert_eq!(update.key, t.key);
    assert!(update.done);
    assert_eq!(update.status_name.as_deref(), Some("Done"));
    assert_eq!(update.status_category.as_deref(), Some("done"));
    assert_eq!(update.assignee.as_deref(), Some("Sam Admin"));
    assert!(matches!(
        d.webhook_status(&update),
        TicketStatus::Done { .. }
    ));
    eprintln!(
        "webhook: verify+parse {verify_time:?}; status change to verified update \
         (both deliveries POSTed over loopback) {end_to_end:?}"
    );

    // Replayed: same identifier.
    let e = hook
        .verify_and_parse(&h, done.body.as_bytes(), now)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);

    // Bad signature: wrong secret, tampered body, missing header, malformed value.
    let assigned = &sent[0];
    for sig in [
        Some(sign("not-the-secret", assigned.body.as_bytes())),
        Some(sign("whsec-test", b"{}")),
        Some("sha256=zz".to_string()),
        Some("md5=abc".to_string()),
        None,
    ] {
        let mut pairs = vec![(
            "x-atlassian-webhook-identifier",
            assigned.identifier.as_str(),
        )];
        if let Some(s) = &sig {
            pairs.push(("x-hub-signature", s));
        }
        let e = hook
            .verify_and_parse(&headers(&pairs), assigned.body.as_bytes(), now)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{sig:?}");
    }
    // Refused deliveries were not remembered: the genuine one still passes, once.
    let h0 = headers(&[
        ("x-hub-signature", assigned.signature.as_deref().unwrap()),
        ("x-atlassian-webhook-identifier", &assigned.identifier),
    ]);
    let u0 = hook
        .verify_and_parse(&h0, assigned.body.as_bytes(), now)
        .unwrap();
    assert!(!u0.done);
    assert!(u0.by.is_some(), "the acting user is reported");

    // Stale: the same body an hour later (a fresh verifier, so not a replay).
    let fresh = d.webhook().unwrap();
    let e = fresh
        .verify_and_parse(
            &h0,
            assigned.body.as_bytes(),
            now + chrono::Duration::hours(1),
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("stale"), "{e}");

    // No identifier header: the body's hash identifies the delivery.
    let h1 = headers(&[("x-hub-signature", done.signature.as_deref().unwrap())]);
    let fresh = d.webhook().unwrap();
    fresh
        .verify_and_parse(&h1, done.body.as_bytes(), now)
        .unwrap();
    assert_eq!(
        fresh
            .verify_and_parse(&h1, done.body.as_bytes(), now)
            .unwrap_err()
            .kind(),
        ErrorKind::Conflict
    );
}

/// The identifier header is not covered by the signature: a captured delivery replayed with it
/// changed or removed is still the same signed delivery, and is refused.
#[tokio::test]
async fn a_replay_with_the_unsigned_identifier_changed_or_removed_is_refused() {
    let hook = JiraWebhook::new("s".into(), None);
    let now = Utc::now();
    let body = format!(
        r#"{{"timestamp":{},"webhookEvent":"jira:issue_updated","issue":{{"id":"1","key":"IT-1","fields":{{}}}}}}"#,
        now.timestamp_millis()
    );
    let sig = sign("s", body.as_bytes());
    let first = headers(&[
        ("x-hub-signature", &sig),
        ("x-atlassian-webhook-identifier", "id-1"),
    ]);
    hook.verify_and_parse(&first, body.as_bytes(), now).unwrap();
    for replay in [
        headers(&[
            ("x-hub-signature", &sig),
            ("x-atlassian-webhook-identifier", "id-forged"),
        ]),
        headers(&[("x-hub-signature", &sig)]),
        headers(&[
            ("x-hub-signature", &sig),
            ("x-atlassian-webhook-identifier", ""),
        ]),
    ] {
        let e = hook
            .verify_and_parse(&replay, body.as_bytes(), now)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict, "{replay:?}");
    }
}

#[tokio::test]
async fn the_seen_set_is_bounded() {
    let hook = JiraWebhook::new("s".into(), None).with_capacity(2);
    let now = Utc::now();
    let body = |n: u32| {
        format!(
            r#"{{"timestamp":{},"webhookEvent":"jira:issue_updated","issue":{{"id":"1","key":"IT-{n}","fields":{{}}}}}}"#,
            now.timestamp_millis()
        )
    };
    for n in 0..3 {
        let b = body(n);
        let h = headers(&[
            ("x-hub-signature", &sign("s", b.as_bytes())),
            ("x-atlassian-webhook-identifier", &format!("id-{n}")),
        ]);
        hook.verify_and_parse(&h, b.as_bytes(), now).unwrap();
    }
    // Delivery 2 is remembered; delivery 0 was evicted (capacity 2) and passes again.
    let again = |n: u32| {
        let b = body(n);
        let h = headers(&[("x-hub-signature", &sign("s", b.as_bytes()))]);
        hook.verify_and_parse(&h, b.as_bytes(), now)
    };
    assert_eq!(again(2).unwrap_err().kind(), ErrorKind::Conflict);
    again(0).unwrap();
}

#[tokio::test]
async fn batched_statuses_chunk_by_fifty() {
    let sim = sim().await;
    let d = jira(&sim);
    let tickets: Vec<Ticket> = (0..120)
        .map(|i| Ticket {
            key: sim.create_issue(&format!("t{i}"), &[]),
            url: String::new(),
            assignee: None,
        })
        .collect();
    sim.transition("IT-120", "Done");
    let all = d.statuses(&tickets).await.unwrap();
    assert_eq!(all.len(), 120);
    assert_eq!(sim.requests().len(), 3, "50 + 50 + 20 keys");
    assert!(matches!(all["IT-120"], TicketStatus::Done { .. }));
    assert!(matches!(all["IT-1"], TicketStatus::Open { .. }));
    // A malformed key is refused before anything is sent.
    let mut bad = tickets.clone();
    bad.push(Ticket {
        key: "IT-1\") OR (key is not EMPTY".into(),
        url: String::new(),
        assignee: None,
    });
    assert_eq!(
        d.statuses(&bad).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(sim.requests().len(), 3);
}
