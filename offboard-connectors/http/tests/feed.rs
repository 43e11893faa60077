//! The HR feed over HTTP, against wiremock: authentication, conditional requests, errors,
//! content types, redirects, secret redaction, and the feed driving `HrFeed`.

use std::sync::Arc;

use offboard_core::source::SourceOfTruth;
use offboard_core::source::hr::{FeedLoader, HrFeed, HrFormat, Loaded};
use offboard_core::{ErrorKind, Lifecycle, Secret};
use offboard_http::HttpFeedLoader;
use wiremock::matchers::{header, header_exists, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CSV: &str =
    "employee_id,email,status\ne1,ada@example.com,active\ne2,bob@example.com,active\n";

fn csv(body: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body.as_bytes().to_vec(), "text/csv; charset=utf-8")
}

#[tokio::test]
async fn bearer_auth_and_etag_make_an_unchanged_feed_a_304() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/exports/people.csv"))
        .and(header("authorization", "Bearer hr-token-123"))
        .and(header("if-none-match", "\"v1\""))
        .respond_with(ResponseTemplate::new(304))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/exports/people.csv"))
        .and(header("authorization", "Bearer hr-token-123"))
        .respond_with(csv(CSV).insert_header("etag", "\"v1\""))
        .mount(&server)
        .await;
    let loader = HttpFeedLoader::new(
        &format!("{}/exports/people.csv?format=csv", server.uri()),
        HrFormat::Csv,
    )
    .unwrap()
    .with_bearer(Secret::new("hr-token-123"));
    let Loaded::Content { body, validator } = loader.load(None).await.unwrap() else {
        panic!("first load has content");
    };
    assert_eq!(body, CSV);
    let validator = validator.expect("the ETag is kept");
    assert_eq!(
        loader.load(Some(&validator)).await.unwrap(),
        Loaded::Unchanged
    );
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].url.query(), Some("format=csv"));
    assert!(!requests[0].headers.contains_key("if-none-match"));
    assert_eq!(requests[1].headers["if-none-match"], "\"v1\"");
    assert!(
        requests[0].headers["accept"]
            .to_str()
            .unwrap()
            .contains("text/csv")
    );
}

#[tokio::test]
async fn basic_auth_and_last_modified() {
    let server = MockServer::start().await;
    let stamp = "Mon, 23 Nov 2026 10:00:00 GMT";
    // wiremock's `header` matcher splits values at commas, which HTTP dates contain.
    Mock::given(method("GET"))
        .and(move |r: &wiremock::Request| {
            r.headers
                .get("if-modified-since")
                .is_some_and(|v| v.as_bytes() == stamp.as_bytes())
        })
        .respond_with(ResponseTemplate::new(304))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        // base64("svc-offboard:pa55")
        .and(header("authorization", "Basic c3ZjLW9mZmJvYXJkOnBhNTU="))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(b"[]".to_vec(), "application/json")
                .insert_header("last-modified", stamp),
        )
        .mount(&server)
        .await;
    let loader = HttpFeedLoader::new(&format!("{}/people.json", server.uri()), HrFormat::Json)
        .unwrap()
        .with_basic("svc-offboard", &Secret::new("pa55"));
    let Loaded::Content { validator, .. } = loader.load(None).await.unwrap() else {
        panic!("content");
    };
    assert_eq!(
        loader.load(validator.as_deref()).await.unwrap(),
        Loaded::Unchanged
    );
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    assert!(!requests[0].headers.contains_key("if-modified-since"));
    assert_eq!(
        requests[1].headers["authorization"],
        "Basic c3ZjLW9mZmJvYXJkOnBhNTU="
    );
}

#[tokio::test]
async fn non_2xx_answers_are_classified_without_the_credential() {
    let server = MockServer::start().await;
    for (p, status) in [("/401", 401), ("/403", 403), ("/404", 404), ("/503", 503)] {
        Mock::given(path(p))
            .respond_with(ResponseTemplate::new(status).set_body_string("nope"))
            .mount(&server)
            .await;
    }
    for (p, kind, retryable) in [
        ("/401", ErrorKind::Unauthenticated, false),
        ("/403", ErrorKind::PermissionDenied, false),
        ("/404", ErrorKind::NotFound, false),
        ("/503", ErrorKind::Unavailable, true),
    ] {
        let loader = HttpFeedLoader::new(
            &format!("{}{p}?key=query-secret", server.uri()),
            HrFormat::Csv,
        )
        .unwrap()
        .with_bearer(Secret::new("hr-token-123"));
        let e = loader.load(None).await.unwrap_err();
        assert_eq!((e.kind(), e.is_retryable()), (kind, retryable), "{p}: {e}");
        let shown = format!("{e} {e:?}");
        assert!(shown.contains(p), "{shown}");
        assert!(
            !shown.contains("hr-token-123") && !shown.contains("query-secret"),
            "{shown}"
        );
    }
}

#[tokio::test]
async fn a_wrong_content_type_or_a_redirect_is_a_clear_error() {
    let server = MockServer::start().await;
    Mock::given(path("/login"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(b"<html>sign in</html>".to_vec(), "text/html"),
        )
        .mount(&server)
        .await;
    Mock::given(path("/moved"))
        .respond_with(
            ResponseTemplate::new(302).insert_header("location", "https://elsewhere.example.net/x"),
        )
        .mount(&server)
        .await;
    Mock::given(path("/json"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(b"[]".to_vec(), "application/json"))
        .mount(&server)
        .await;
    let load = |p: &str, format| {
        let loader = HttpFeedLoader::new(&format!("{}{p}", server.uri()), format).unwrap();
        async move { loader.load(None).await }
    };
    let e = load("/login", HrFormat::Csv).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Vendor);
    assert!(
        e.to_string().contains("text/html") && e.to_string().contains("CSV"),
        "{e}"
    );
    let e = load("/moved", HrFormat::Csv).await.unwrap_err();
    assert!(e.to_string().contains("redirect"), "{e}");
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        2,
        "not followed"
    );
    let e = load("/json", HrFormat::Csv).await.unwrap_err();
    assert!(e.to_string().contains("application/json"), "{e}");
    assert!(load("/json", HrFormat::Json).await.is_ok());
}

#[test]
fn urls_with_credentials_are_refused_and_debug_hides_secrets() {
    let e = HttpFeedLoader::new("https://user:pw@hr.example.com/x.csv", HrFormat::Csv).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(!e.to_string().contains("pw@"), "{e}");
    assert_eq!(
        HttpFeedLoader::new("ftp://hr.example.com/x.csv", HrFormat::Csv)
            .unwrap_err()
            .kind(),
        ErrorKind::Config
    );
    let loader = HttpFeedLoader::new(
        "https://hr.example.com/x.csv?key=query-secret",
        HrFormat::Csv,
    )
    .unwrap()
    .with_basic("svc", &Secret::new("pa55word"));
    assert_eq!(loader.location(), "https://hr.example.com/x.csv");
    let d = format!("{loader:?}");
    assert!(
        !d.contains("pa55word") && !d.contains("query-secret"),
        "{d}"
    );
}

#[tokio::test]
async fn an_hr_feed_over_http_reports_terminations_and_skips_unchanged_exports() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(header("if-none-match", "\"v1\""))
        .respond_with(ResponseTemplate::new(304))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(header_exists("if-none-match"))
        .respond_with(
            csv("employee_id,email,status,termination_date\ne1,ada@example.com,active,\ne2,bob@example.com,terminated,2026-11-30\n")
                .insert_header("etag", "\"v2\""),
        )
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(csv(CSV).insert_header("etag", "\"v1\""))
        .with_priority(3)
        .mount(&server)
        .await;
    let loader = HttpFeedLoader::new(&format!("{}/people.csv", server.uri()), HrFormat::Csv)
        .unwrap()
        .with_bearer(Secret::new("t"));
    let feed = HrFeed::from_loader("workday", Arc::new(loader), HrFormat::Csv);
    let b1 = feed.changes(None).await.unwrap();
    assert_eq!(b1.changes.len(), 2);
    let b2 = feed.changes(Some(&b1.next)).await.unwrap();
    assert!(b2.changes.is_empty(), "304: nothing to diff");
    assert_eq!(b2.next, b1.next);
    let b3 = feed.changes(Some(&b2.next)).await.unwrap();
    assert_eq!(b3.changes.len(), 1);
    assert_eq!(b3.changes[0].person.id.as_str(), "e2");
    assert_eq!(b3.changes[0].lifecycle, Lifecycle::Past);
    assert!(b3.changes[0].termination_at.is_some());
}
