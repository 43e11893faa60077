//! The task page ([`offboard_email::web::router`]) served over HTTP on loopback, in front of a
//! real engine whose run waits on the email task, with the email received by the real SMTP sink.
//!
//! The HTTP tests speak to the page with reqwest; one test drives headless Chromium through
//! ChromeDriver (`OFFBOARD_TEST_WEBDRIVER`, started by `scripts/services/chromium.sh`). Like the
//! other service tests they fail, never skip, when a service's variable is missing. They run on
//! real time (lettre's SMTP timeouts misfire on a paused clock, see tests/engine.rs); the
//! delegate's clock is a [`FakeClock`], so link expiry is reached by advancing it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{FakeClock, Mail, sink, unique, wait_for_mails};
use offboard_core::engine::TokioClock;
use offboard_core::memory::MemoryStore;
use offboard_core::{
    AuditKind, AuditQuery, Engine, ErrorKind, Initiator, Person, Policy, RunId, RunRequest,
    RunState, Store, TaskState, Ticket,
};
use offboard_email::{ConfigKey, EMAIL_NAMESPACE, EmailBuilder, SmtpSecurity, web};
use reqwest::StatusCode;

const POLICY: &str = "[apps.salesforce]\nmethod = \"delegate\"\nvia = \"email\"\n";
const EVIL: &str = "<script>alert('x')</script> & \"Bob\"";

/// An engine whose run waits on an email task, the task page served in front of it, and the
/// email the owner received.
struct Served {
    engine: Engine,
    store: Arc<dyn Store>,
    clock: Arc<FakeClock>,
    workers: offboard_core::engine::WorkerHandle,
    run: RunId,
    ticket: Ticket,
    /// The link in the email.
    link: String,
    base: String,
    owner: String,
    http: reqwest::Client,
}

impl Served {
    async fn start(person_name: &str) -> Self {
        let sink = sink();
        let owner = unique("crm-owner");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/offboard/tasks", listener.local_addr().unwrap());
        let clock = FakeClock::new();
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let email = Arc::new(
            EmailBuilder::new()
                .with_smtp(sink.host.clone(), sink.port, SmtpSecurity::Plain)
                .with_from("offboard@example.test")
                .with_task_url(&base)
                .with_config(ConfigKey::AllowPlainHttp, "true")
                .with_signing_key("web-test-signing-key-of-32-bytes!!")
                .with_app_owner("salesforce", &owner)
                .with_token_ttl(Duration::from_secs(7 * 86_400))
                .with_clock(clock.clone())
                .with_store(store.clone())
                .with_config(ConfigKey::Timeout, "10")
                .build()
                .unwrap(),
        );
        let engine = Engine::builder()
            .store(store.clone())
            .policy(Policy::from_toml(POLICY).unwrap())
            .delegate(email.clone())
            .clock(Arc::new(TokioClock::new()))
            .delegation_poll(Duration::from_secs(3600))
            .idle_poll(Duration::from_millis(50))
            .build()
            .unwrap();
        assert_eq!(email.task_path(), "/offboard/tasks");
        let app = axum::Router::new().nest(
            &email.task_path(),
            web::router(email.clone(), engine.clone()),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let plan = engine
            .plan(RunRequest::new(
                Person::new("p-x", "leaver@example.com").with_name(person_name),
                Initiator::Admin {
                    actor: "admin@example.com".into(),
                },
            ))
            .await
            .unwrap();
        let run = engine.submit(plan, None).await.unwrap();
        let workers = engine.start();
        let waiting = engine
            .wait_for(run, |r| r.state == RunState::Waiting)
            .await
            .unwrap();
        let TaskState::Delegated { ticket } = waiting.tasks[0].state.clone() else {
            panic!("{:?}", waiting.tasks[0].state)
        };
        let mails = wait_for_mails(&sink, &owner, 1).await;
        let link = link_in(&mails[0], &base);
        Self {
            engine,
            store,
            clock,
            workers,
            run,
            ticket,
            link,
            base,
            owner,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    /// The task page's path for this task (no token).
    fn page(&self) -> String {
        format!("{}/{}", self.base, self.ticket.key)
    }

    async fn get(&self, url: &str) -> (StatusCode, reqwest::header::HeaderMap, String) {
        let r = self.http.get(url).send().await.unwrap();
        (r.status(), r.headers().clone(), r.text().await.unwrap())
    }

    async fn post(&self, url: &str, form: &[(&str, &str)]) -> (StatusCode, String) {
        let r = self.http.post(url).form(form).send().await.unwrap();
        (r.status(), r.text().await.unwrap())
    }

    /// The email task as stored in the engine's store.
    async fn stored(&self) -> offboard_core::store::Record {
        self.store
            .get_record(EMAIL_NAMESPACE, &format!("task:{}", self.ticket.key))
            .await
            .unwrap()
            .expect("the email task is in the engine's store")
    }

    /// The names of the delegation events in the audit trail of the run.
    async fn delegation_events(&self) -> Vec<(String, String)> {
        self.store
            .audit(AuditQuery::all())
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.run == Some(self.run))
            .filter_map(|e| match &e.kind {
                AuditKind::Transition { event, .. }
                    if matches!(event.name(), "delegation_done" | "delegation_declined") =>
                {
                    Some((
                        event.name().to_owned(),
                        serde_json::to_string(event).unwrap(),
                    ))
                }
                _ => None,
            })
            .collect()
    }

    async fn stop(self) {
        self.workers.shutdown().await;
    }
}

/// The task link in a mail (the word starting with the page's base URL).
fn link_in(mail: &Mail, base: &str) -> String {
    mail.body
        .split_whitespace()
        .find(|w| w.starts_with(base))
        .expect("the email carries the task link")
        .to_owned()
}

/// The value of the page form's hidden `token` field.
fn form_token(html: &str) -> String {
    let start = html
        .find("name=\"token\" value=\"")
        .expect("the page has a form")
        + "name=\"token\" value=\"".len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// Guards the link-scanner rule and escaping: `GET` (twice, and `HEAD`) shows the task with
/// every field escaped and the security headers, and changes nothing in the delegate's state or
/// the engine.
#[tokio::test]
async fn the_page_shows_the_task_escaped_and_following_the_link_changes_nothing() {
    let s = Served::start(EVIL).await;
    let before = s.stored().await;
    let (status, headers, html) = s.get(&s.link).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        html.contains("&lt;script&gt;alert('x')&lt;/script&gt; &amp; &quot;Bob&quot;"),
        "{html}"
    );
    assert!(!html.contains("<script"), "no script element: {html}");
    assert!(html.contains("name=\"viewport\""));
    assert!(html.contains("salesforce"));
    assert!(html.contains("leaver@example.com"));
    assert!(html.contains(&s.run.to_string()), "the run's reference");
    assert!(html.contains(&s.ticket.key));
    assert!(html.contains("id=\"done\"") && html.contains("id=\"cant-do\""));
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.starts_with("default-src 'none'; style-src 'sha256-"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    // The link's own token never appears in the page (only the form's, in the hidden field).
    let link_token = s.link.split_once("?token=").unwrap().1;
    assert!(!html.contains(link_token));

    // A scanner's prefetch: again, and HEAD.
    let (status, _, _) = s.get(&s.link).await;
    assert_eq!(status, StatusCode::OK);
    let head = s.http.head(&s.link).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    let after = s.stored().await;
    assert_eq!(
        (after.version, &after.value),
        (before.version, &before.value)
    );
    assert_eq!(after.value["done_at"], serde_json::Value::Null);
    let run = s.engine.status(s.run).await.unwrap();
    assert_eq!(run.state, RunState::Waiting);
    assert!(matches!(run.tasks[0].state, TaskState::Delegated { .. }));
    assert!(s.delegation_events().await.is_empty());
    s.stop().await;
}

/// Guards "Done": the form's POST completes the delegated task in the engine (store state and
/// the `delegation_done` audit row), once: a second POST shows the "already answered" page and
/// changes nothing; the link then shows the answer and no form.
#[tokio::test]
async fn done_completes_the_task_in_the_engine_once() {
    let s = Served::start("Ada Lovelace").await;
    let (_, _, html) = s.get(&s.link).await;
    let token = form_token(&html);
    let (status, body) = s.post(&s.page(), &[("token", &token)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("Thank you"), "{body}");
    // The engine was told at once: no delegation poll (an hour) is due before the run ends.
    let run = s.engine.wait(s.run).await.unwrap();
    assert_eq!(run.state, RunState::Completed);
    assert!(
        matches!(run.tasks[0].state, TaskState::Completed { .. }),
        "{:?}",
        run.tasks[0].state
    );
    let events = s.delegation_events().await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "delegation_done");
    let stored = s.stored().await;
    assert_eq!(stored.value["done_by"], serde_json::json!(s.owner));

    let (status, body) = s.post(&s.page(), &[("token", &token)]).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body.contains("Already answered"), "{body}");
    let (status, body) = s
        .post(
            &format!("{}/cant-do", s.page()),
            &[("token", &token), ("reason", "x")],
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(s.stored().await.version, stored.version, "nothing changed");
    assert_eq!(s.delegation_events().await.len(), 1);

    let (status, _, html) = s.get(&s.link).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Done: "), "{html}");
    assert!(
        !html.contains("name=\"token\""),
        "no form once answered: {html}"
    );
    s.stop().await;
}

/// Guards "Can't do it": an empty reason is refused with nothing recorded; a reason is
/// recorded, the engine fails the task with it, and it lands in the audit trail.
#[tokio::test]
async fn cant_do_records_the_reason_in_the_run_and_its_audit_trail() {
    let s = Served::start("Ada Lovelace").await;
    let (_, _, html) = s.get(&s.link).await;
    let token = form_token(&html);
    let cant_do = format!("{}/cant-do", s.page());
    let before = s.stored().await;
    let (status, body) = s
        .post(&cant_do, &[("token", &token), ("reason", "  ")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(s.stored().await.version, before.version);

    let reason = "No admin rights in <Salesforce>; ask Sam";
    let (status, body) = s
        .post(&cant_do, &[("token", &token), ("reason", reason)])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.contains("No admin rights in &lt;Salesforce&gt;; ask Sam"),
        "{body}"
    );
    let run = s.engine.wait(s.run).await.unwrap();
    let TaskState::Failed { error } = &run.tasks[0].state else {
        panic!("{:?}", run.tasks[0].state)
    };
    assert_eq!(error.kind, ErrorKind::Declined);
    assert!(error.message.contains(reason), "{}", error.message);
    assert!(error.message.contains(&s.owner), "{}", error.message);
    let events = s.delegation_events().await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "delegation_declined");
    assert!(
        events[0]
            .1
            .contains("No admin rights in <Salesforce>; ask Sam"),
        "{events:?}"
    );
    assert_eq!(
        s.stored().await.value["declined"],
        serde_json::json!(reason)
    );

    // The token is used: "Done" with it now changes nothing.
    let (status, _) = s.post(&s.page(), &[("token", &token)]).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, _, html) = s.get(&s.link).await;
    assert!(html.contains("can't do it: No admin rights"), "{html}");
    s.stop().await;
}

/// Guards expiry by the delegate's clock: past the token's lifetime the link and a form opened
/// before both get the "expired" page, and nothing changes.
#[tokio::test]
async fn an_expired_link_or_form_gets_the_expired_page() {
    let s = Served::start("Ada Lovelace").await;
    let (_, _, html) = s.get(&s.link).await;
    let token = form_token(&html);
    s.clock
        .advance(chrono::Duration::days(7) + chrono::Duration::seconds(1));
    let before = s.stored().await;
    let (status, _, html) = s.get(&s.link).await;
    assert_eq!(status, StatusCode::GONE, "{html}");
    assert!(html.contains("expired"), "{html}");
    let (status, body) = s.post(&s.page(), &[("token", &token)]).await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    let (status, _) = s
        .post(
            &format!("{}/cant-do", s.page()),
            &[("token", &token), ("reason", "r")],
        )
        .await;
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(s.stored().await.version, before.version);
    assert!(s.delegation_events().await.is_empty());
    s.stop().await;
}

/// Guards the refusals: no token, a forged one, the link's token posted as the form's, a form
/// posted to another task's path, other methods, a malformed or oversized body. Each gets its
/// page and status, and nothing changes.
#[tokio::test]
async fn unknown_forged_and_malformed_requests_get_clear_pages_and_change_nothing() {
    let s = Served::start("Ada Lovelace").await;
    let (_, _, html) = s.get(&s.link).await;
    let token = form_token(&html);
    let link_token = s.link.split_once("?token=").unwrap().1.to_owned();
    let before = s.stored().await;

    for url in [
        s.page(),
        format!("{}?token=", s.page()),
        format!("{}?token=garbage.garbage", s.page()),
        format!("{}/email-other?token={link_token}", s.base),
    ] {
        let (status, _, html) = s.get(&url).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{url}: {html}");
        assert!(html.contains("Link not recognised"), "{html}");
    }
    // Forged: the link's token flipped in its signature.
    let mut forged = link_token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let (status, _, _) = s.get(&format!("{}?token={forged}", s.page())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The link's token does not complete anything; nor does a form posted to another path.
    let (status, _) = s.post(&s.page(), &[("token", &link_token)]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s
        .post(&format!("{}/email-other", s.base), &[("token", &token)])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Other methods.
    let r = s
        .http
        .put(s.page())
        .form(&[("token", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let r = s
        .http
        .get(format!("{}/cant-do", s.page()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    // Not a form; a body over the limit.
    let r = s
        .http
        .post(s.page())
        .body(format!("token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let big = "x".repeat(web::DEFAULT_BODY_LIMIT + 1);
    let r = s
        .http
        .post(format!("{}/cant-do", s.page()))
        .form(&[("token", token.as_str()), ("reason", big.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // A reason over the limit, under the body limit.
    let long = "y".repeat(offboard_email::MAX_REASON_CHARS + 1);
    let (status, _) = s
        .post(
            &format!("{}/cant-do", s.page()),
            &[("token", &token), ("reason", &long)],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    assert_eq!(s.stored().await.version, before.version);
    assert!(s.delegation_events().await.is_empty());
    // The form still works afterwards.
    let (status, _) = s.post(&s.page(), &[("token", &token)]).await;
    assert_eq!(status, StatusCode::OK);
    s.stop().await;
}

/// The browser test: the link from the email the SMTP sink received, opened in headless
/// Chromium (phone-sized window) through ChromeDriver; the page reads right (escaped name); the
/// "Done" button completes the delegated task in the engine (store state and audit row).
#[tokio::test]
async fn in_a_real_browser_the_link_opens_the_page_and_done_completes_the_task() {
    let s = Served::start(EVIL).await;
    // A phone: 390 x 844 CSS pixels (desktop Chromium keeps windows at least 500 wide).
    let phone = serde_json::json!({
        "mobileEmulation": {
            "deviceMetrics": { "width": 390, "height": 844, "pixelRatio": 3.0, "mobile": true },
        },
    });
    let browser =
        offboard_testkit::suite::browser::chromium(&[], phone.as_object().unwrap().clone()).await;

    browser.goto(&s.link).await.unwrap();
    let main = browser
        .find(fantoccini::Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(main.contains(EVIL), "the name shows as text: {main}");
    assert!(
        main.contains("salesforce") && main.contains(&s.run.to_string()),
        "{main}"
    );
    assert!(main.contains("Done: access removed"), "{main}");
    if let Ok(path) = std::env::var("OFFBOARD_TEST_SCREENSHOT") {
        std::fs::write(path, browser.screenshot().await.unwrap()).unwrap();
    }
    // Nothing was done by opening it.
    assert_eq!(s.stored().await.value["done_at"], serde_json::Value::Null);

    browser
        .find(fantoccini::Locator::Id("done"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let heading = browser
        .wait()
        .for_element(fantoccini::Locator::XPath("//h1[. = 'Thank you']"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(heading, "Thank you");
    browser.close().await.unwrap();

    let run = s.engine.wait(s.run).await.unwrap();
    assert_eq!(run.state, RunState::Completed);
    assert!(matches!(run.tasks[0].state, TaskState::Completed { .. }));
    assert_eq!(
        s.stored().await.value["done_by"],
        serde_json::json!(s.owner)
    );
    let events = s.delegation_events().await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "delegation_done");
    s.stop().await;
}
