//! Throttling (429 + `Retry-After`, whole requests and items inside a `$batch`, the tenant's
//! resource-unit budget) and secret redaction. Real time: the simulator uses real sockets.

mod common;

use std::time::{Duration, Instant};

use common::{account, config, connector, person, run};
use offboard_core::{Connector, ErrorKind, LookupRequest, Outcome, Secret};
use offboard_http::graph::GraphRetry;
use offboard_testkit::sim::graph::{GraphLimits, GraphTenant, NewUser};

fn count(tenant: &GraphTenant, line: &str) -> usize {
    tenant
        .requests()
        .iter()
        .filter(|r| format!("{} {}", r.method, r.path) == line)
        .count()
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out() {
    let tenant = GraphTenant::start().await;
    let id = tenant.add_user(NewUser::new("jane@example.test"));
    let o365 = connector(&tenant, None);
    let account = account(&o365, "jane@example.test").await;
    tenant.clear_requests();
    tenant.fail_next(2, 429);
    let start = Instant::now();
    let r = run(&o365, &account, "o365.set_auto_reply", "jane@example.test")
        .await
        .unwrap();
    let took = start.elapsed();
    assert_eq!(r.outcome, Outcome::Done);
    assert!(took >= Duration::from_secs(2), "waited {took:?}");
    assert_eq!(tenant.rate_limited_count(), 2);
    assert_eq!(
        count(&tenant, &format!("GET /v1.0/users/{id}/mailboxSettings")),
        3
    );
    assert_eq!(
        tenant.user(&id).unwrap().automatic_replies.unwrap()["status"],
        "alwaysEnabled"
    );
    eprintln!("two 429s (Retry-After: 1) waited out in {took:?}");
}

#[tokio::test]
async fn a_429_item_inside_a_200_batch_is_resent_alone() {
    let tenant = GraphTenant::start().await;
    let sku = tenant.add_sku("ENTERPRISEPACK", 10);
    let id = tenant.add_user(NewUser {
        licenses: vec![sku],
        ..NewUser::new("jane@example.test")
    });
    let o365 = connector(&tenant, None);
    let account = account(&o365, "jane@example.test").await;
    tenant.clear_requests();
    tenant.fail_next(1, 429);
    let start = Instant::now();
    let r = run(&o365, &account, "o365.remove_licenses", "jane@example.test")
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Done);
    assert!(start.elapsed() >= Duration::from_secs(1));
    let reqs = tenant.requests();
    let batches: Vec<usize> = reqs
        .iter()
        .filter(|r| r.path == "/v1.0/$batch")
        .map(|r| {
            r.body.as_ref().unwrap()["requests"]
                .as_array()
                .unwrap()
                .len()
        })
        .collect();
    assert_eq!(batches, [2, 1], "the throttled item alone is re-sent");
    assert!(tenant.user(&id).unwrap().licenses.is_empty());
}

#[tokio::test]
async fn the_tenant_budget_throttles_and_every_action_still_completes() {
    let tenant = GraphTenant::start_with(
        GraphLimits::small_tenant().with_resource_units(6, Duration::from_secs(1)),
    )
    .await;
    let sku = tenant.add_sku("ENTERPRISEPACK", 10);
    let ids: Vec<String> = (0..4)
        .map(|i| {
            tenant.add_user(NewUser {
                licenses: vec![sku.clone()],
                ..NewUser::new(format!("u{i}@example.test"))
            })
        })
        .collect();
    let o365 = connector(&tenant, None);
    let start = Instant::now();
    for i in 0..4 {
        let email = format!("u{i}@example.test");
        let account = account(&o365, &email).await;
        let r = run(&o365, &account, "o365.remove_licenses", &email)
            .await
            .unwrap();
        assert_eq!(r.outcome, Outcome::Done);
    }
    for id in &ids {
        assert!(tenant.user(id).unwrap().licenses.is_empty());
    }
    assert!(tenant.rate_limited_count() > 0, "the budget was reached");
    eprintln!(
        "4 licence removals under a 6 RU/s budget: {} throttled answers, {:?}",
        tenant.rate_limited_count(),
        start.elapsed()
    );
}

#[tokio::test]
async fn without_in_process_retry_a_429_is_returned_with_its_hint() {
    let tenant = GraphTenant::start().await;
    let id = tenant.add_user(NewUser::new("jane@example.test"));
    let o365 = config(&tenant)
        .with_retry(GraphRetry::none())
        .build()
        .unwrap();
    let account = account(&o365, "jane@example.test").await;
    tenant.fail_next(1, 429);
    let e = run(&o365, &account, "o365.set_auto_reply", "jane@example.test")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert!(e.is_retryable());
    assert_eq!(e.retry_after(), Some(Duration::from_secs(1)));
    assert_eq!(e.operation(), "o365.set_auto_reply");
    assert_eq!(
        tenant.user(&id).unwrap().automatic_replies.unwrap()["status"],
        "disabled"
    );
}

#[tokio::test]
async fn secrets_never_show_in_debug_or_errors() {
    let tenant = GraphTenant::start().await;
    tenant.add_user(NewUser::new("jane@example.test"));
    let o365 = connector(&tenant, None);
    o365.lookup(&LookupRequest::person(person("jane@example.test")))
        .await
        .unwrap()
        .unwrap();
    for text in [format!("{o365:?}"), format!("{o365:#?}")] {
        assert!(!text.contains(tenant.client_secret()));
        assert!(!text.contains(tenant.access_token()), "token after use");
    }
    // The Authorization header is recorded redacted.
    let auth: Vec<String> = tenant.requests()[0]
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.clone())
        .collect();
    assert_eq!(auth.len(), 1);
    assert!(!auth[0].contains(tenant.access_token()));

    let wrong = "wrong~secret~0123456789";
    let bad = config(&tenant)
        .with_client_secret(Secret::new(wrong))
        .build()
        .unwrap();
    let e = bad
        .lookup(&LookupRequest::person(person("jane@example.test")))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e.kind(),
            ErrorKind::Unauthenticated | ErrorKind::PermissionDenied | ErrorKind::Config
        ),
        "{e}"
    );
    for text in [e.to_string(), format!("{e:?}"), format!("{bad:?}")] {
        assert!(!text.contains(wrong), "{text}");
        assert!(!text.contains(tenant.client_secret()));
    }
}
