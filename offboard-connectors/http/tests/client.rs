//! offboard-http against wiremock: auth headers, error mapping, throttling hints, safe paths,
//! token caching with a jumped clock, and redaction in Debug, errors and traces.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use offboard_core::{ErrorKind, Secret};
use offboard_http::{
    GoogleServiceAccount, HttpClient, HttpRequest, MicrosoftClientCredentials,
    OAuthClientCredentials, StaticToken, TokenProvider,
};
use offboard_testkit::suite::budget::RecordingBudget;
use offboard_testkit::suite::trace::TraceCapture;
use serde::Deserialize;
use wiremock::matchers::{body_string_contains, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const SECRET: &str = "00TestSecretToken-do-not-print-4f1c";
const KEY_PEM: &str = include_str!("data/test-rsa.pem");
const PUB_PEM: &str = include_str!("data/test-rsa.pub.pem");

fn client(server: &MockServer) -> HttpClient {
    HttpClient::builder(server.uri())
        .allow_plain_http(true)
        .token_provider(StaticToken::okta_ssws(Secret::new(SECRET)))
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

fn okta_error(code: &str, summary: &str) -> serde_json::Value {
    serde_json::json!({
        "errorCode": code, "errorSummary": summary, "errorLink": code,
        "errorId": "oaeTest", "errorCauses": []
    })
}

#[tokio::test]
async fn sends_ssws_and_query_and_parses_json() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/users"))
        .and(query_param("search", r#"profile.login eq "a@b.c""#))
        .and(header("authorization", format!("SSWS {SECRET}").as_str()))
        .and(header("accept", "application/json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!([{"id": "00u1"}])))
        .expect(1)
        .mount(&server)
        .await;
    let users: Vec<serde_json::Value> = client(&server)
        .send(
            HttpRequest::get(["api", "v1", "users"]).query("search", r#"profile.login eq "a@b.c""#),
        )
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(users[0]["id"], "00u1");
}

#[tokio::test]
async fn path_segments_are_encoded_and_dot_segments_refused() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({})))
        .mount(&server)
        .await;
    let c = client(&server);
    c.send(HttpRequest::get(["api", "v1", "users", "a/b?c#d%"]))
        .await
        .unwrap();
    let seen = server.received_requests().await.unwrap();
    assert_eq!(seen[0].url.path(), "/api/v1/users/a%2Fb%3Fc%23d%25");
    assert_eq!(seen[0].url.query(), None);
    for bad in ["..", ".", ""] {
        let e = c
            .send(HttpRequest::delete(["api", "v1", "users", bad, "sessions"]))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad:?}");
    }
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn errors_are_classified_with_vendor_summary() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v1/users/gone"))
        .respond_with(ResponseTemplate::new(404).set_body_json(okta_error(
            "E0000007",
            "Not found: Resource not found: gone (User)",
        )))
        .mount(&server)
        .await;
    Mock::given(path("/api/v1/users/denied"))
        .respond_with(ResponseTemplate::new(403).set_body_json(okta_error(
            "E0000006",
            "You do not have permission to perform the requested action",
        )))
        .mount(&server)
        .await;
    Mock::given(path("/api/v1/users/bad"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(okta_error("E0000011", "Invalid token provided")),
        )
        .mount(&server)
        .await;
    Mock::given(path("/api/v1/users/down"))
        .respond_with(ResponseTemplate::new(503).set_body_string("upstream down"))
        .mount(&server)
        .await;
    Mock::given(path("/api/v1/users/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let c = client(&server);
    let get = |id: &str| c.send(HttpRequest::get(["api", "v1", "users", id]));
    let e = get("gone").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(!e.is_retryable());
    assert_eq!(
        e.to_string(),
        "GET /api/v1/users/gone: 404 Not Found: E0000007 Not found: Resource not found: gone (User) (not_found), status=404, vendor_code=E0000007"
    );
    assert_eq!(
        get("denied").await.unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    assert_eq!(
        get("bad").await.unwrap_err().kind(),
        ErrorKind::Unauthenticated
    );
    let e = get("down").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.is_retryable());
    let e = get("slow").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(e.is_retryable());
    for e in [
        get("gone").await.unwrap_err(),
        get("slow").await.unwrap_err(),
    ] {
        assert!(!e.to_string().contains(SECRET));
        assert!(!format!("{e:?}").contains(SECRET));
    }
}

#[tokio::test]
async fn connection_refused_is_retryable_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let c = HttpClient::builder(format!("http://{addr}"))
        .allow_plain_http(true)
        .token_provider(StaticToken::okta_ssws(Secret::new(SECRET)))
        .build()
        .unwrap();
    let e = c
        .send(HttpRequest::get(["api", "v1", "users"]).query("q", "x"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.is_retryable());
    assert!(
        e.message()
            .starts_with("GET /api/v1/users: connection failed"),
        "{e}"
    );
}

#[tokio::test]
async fn okta_429_carries_the_reset_hint_and_teaches_the_limiter() {
    let server = MockServer::start().await;
    let reset = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 40;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("x-rate-limit-limit", "600")
                .insert_header("x-rate-limit-remaining", "0")
                .insert_header("x-rate-limit-reset", reset.to_string().as_str())
                .set_body_json(okta_error(
                    "E0000047",
                    "API call exceeded rate limit due to too many requests.",
                )),
        )
        .mount(&server)
        .await;
    let c = client(&server);
    let e = c
        .send(HttpRequest::get(["api", "v1", "users"]).bucket("users"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    let hint = e.retry_after().unwrap();
    assert!(
        hint > Duration::from_secs(38) && hint <= Duration::from_secs(40),
        "{hint:?}"
    );
    let wait = c.limiter().pending_delay("users");
    assert!(
        wait > Duration::from_secs(38) && wait <= Duration::from_secs(40),
        "{wait:?}"
    );
}

#[tokio::test]
async fn retry_after_http_date_and_google_quota() {
    let server = MockServer::start().await;
    let date = httpdate_in(20);
    Mock::given(path("/graph"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", date.as_str()))
        .mount(&server)
        .await;
    Mock::given(path("/google"))
        .respond_with(ResponseTemplate::new(403).set_body_json(serde_json::json!({
            "error": {"code": 403, "message": "Quota exceeded",
                      "errors": [{"domain": "usageLimits", "reason": "quotaExceeded", "message": "Quota exceeded"}]}
        })))
        .mount(&server)
        .await;
    let c = client(&server);
    let e = c.send(HttpRequest::get(["graph"])).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    let hint = e.retry_after().unwrap();
    assert!(
        hint > Duration::from_secs(17) && hint <= Duration::from_secs(20),
        "{hint:?}"
    );
    let e = c.send(HttpRequest::get(["google"])).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert!(e.is_retryable());
}

fn httpdate_in(secs: u64) -> String {
    // RFC 7231 IMF-fixdate, built by hand to keep the test independent of the parser.
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + secs;
    let days = t / 86_400;
    let rem = t % 86_400;
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    let mn = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(mo - 1) as usize];
    format!("{wd}, {d:02} {mn} {y} {h:02}:{m:02}:{s:02} GMT")
}

#[tokio::test]
async fn pages_follow_same_origin_next_links_only() {
    let server = MockServer::start().await;
    let next = format!(
        "<{}/api/v1/users?after=abc&limit=1>; rel=\"next\"",
        server.uri()
    );
    Mock::given(path("/api/v1/users"))
        .and(query_param("after", "abc"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!([{"id": 2}])))
        .mount(&server)
        .await;
    Mock::given(path("/api/v1/users"))
        .and(query_param("limit", "1"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("link", next.as_str())
                .set_body_json(serde_json::json!([{"id": 1}])),
        )
        .mount(&server)
        .await;
    Mock::given(path("/api/v1/groups"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("link", "<https://evil.example/steal>; rel=\"next\"")
                .set_body_json(serde_json::json!([])),
        )
        .mount(&server)
        .await;
    let c = client(&server);
    let all = c
        .get_all_pages(HttpRequest::get(["api", "v1", "users"]).query("limit", "1"))
        .await
        .unwrap();
    assert_eq!(
        all,
        vec![serde_json::json!({"id": 1}), serde_json::json!({"id": 2})]
    );
    let e = c
        .get_all_pages(HttpRequest::get(["api", "v1", "groups"]))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Vendor);
}

#[tokio::test]
async fn basic_and_bearer_tokens() {
    let basic = StaticToken::basic("ann@example.com", &Secret::new("tok"));
    assert_eq!(
        basic.authorization().await.unwrap().expose(),
        "Basic YW5uQGV4YW1wbGUuY29tOnRvaw=="
    );
    let bearer = StaticToken::bearer(Secret::new(SECRET));
    assert_eq!(
        bearer.authorization().await.unwrap().expose(),
        format!("Bearer {SECRET}")
    );
    assert!(!format!("{bearer:?}").contains(SECRET));
}

#[derive(Deserialize)]
struct Assertion {
    iss: String,
    sub: String,
    aud: String,
    iat: u64,
    exp: u64,
    jti: String,
}

fn form(request: &Request) -> Vec<(String, String)> {
    url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect()
}

#[tokio::test]
async fn oauth_private_key_jwt_is_cached_and_refreshed_before_expiry() {
    let server = MockServer::start().await;
    let counter = Arc::new(AtomicU64::new(0));
    let n = Arc::clone(&counter);
    Mock::given(method("POST"))
        .and(path("/oauth2/v1/token"))
        .and(body_string_contains("grant_type=client_credentials"))
        .respond_with(move |_: &Request| {
            let i = n.fetch_add(1, Ordering::SeqCst);
            ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "token_type": "Bearer", "expires_in": 3600,
                "access_token": format!("at-{i}"), "scope": "okta.users.manage"
            }))
        })
        .mount(&server)
        .await;
    let token_url = format!("{}/oauth2/v1/token", server.uri());
    let provider = OAuthClientCredentials::builder(&token_url, "0oaClient")
        .scopes(["okta.users.manage", "okta.groups.manage"])
        .private_key_pem(Secret::new(KEY_PEM))
        .key_id("kid-1")
        .build()
        .unwrap();
    assert_eq!(
        provider.authorization().await.unwrap().expose(),
        "Bearer at-0"
    );
    assert_eq!(
        provider.authorization().await.unwrap().expose(),
        "Bearer at-0"
    );
    assert_eq!(counter.load(Ordering::SeqCst), 1, "cached");

    // The request: form fields and a verifiable RS256 assertion.
    let seen = server.received_requests().await.unwrap();
    let f = form(&seen[0]);
    let get = |k: &str| {
        f.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(get("grant_type"), "client_credentials");
    assert_eq!(get("scope"), "okta.users.manage okta.groups.manage");
    assert_eq!(
        get("client_assertion_type"),
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
    let jwt = get("client_assertion");
    let header = jsonwebtoken::decode_header(&jwt).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!(header.kid.as_deref(), Some("kid-1"));
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[token_url.as_str()]);
    let claims = jsonwebtoken::decode::<Assertion>(
        &jwt,
        &jsonwebtoken::DecodingKey::from_rsa_pem(PUB_PEM.as_bytes()).unwrap(),
        &validation,
    )
    .unwrap()
    .claims;
    assert_eq!(
        (claims.iss.as_str(), claims.sub.as_str()),
        ("0oaClient", "0oaClient")
    );
    assert_eq!(claims.aud, token_url);
    assert_eq!(claims.exp - claims.iat, 300);
    assert_eq!(claims.jti.len(), 32);

    // 58 minutes later the cached token is still used; past expiry − 60 s it is refreshed.
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(58 * 60)).await;
    tokio::time::resume();
    assert_eq!(
        provider.authorization().await.unwrap().expose(),
        "Bearer at-0"
    );
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(60 + 1)).await;
    tokio::time::resume();
    assert_eq!(
        provider.authorization().await.unwrap().expose(),
        "Bearer at-1"
    );
    assert_eq!(counter.load(Ordering::SeqCst), 2);
    // A new jti each time.
    let seen = server.received_requests().await.unwrap();
    assert_ne!(form(&seen[0]), form(&seen[1]));
    // invalidate() (after a 401) forces a fetch.
    provider.invalidate();
    assert_eq!(
        provider.authorization().await.unwrap().expose(),
        "Bearer at-2"
    );
    let debug = format!("{provider:?}");
    assert!(
        !debug.contains("at-2")
            && !debug.contains("PRIVATE KEY")
            && !debug.contains(&KEY_PEM[40..80])
    );
}

#[tokio::test]
async fn oauth_refusal_is_unauthenticated_and_config_names_keys() {
    let server = MockServer::start().await;
    Mock::given(path("/oauth2/v1/token"))
        .respond_with(ResponseTemplate::new(401).set_body_json(serde_json::json!({
            "error": "invalid_client", "error_description": "The client_assertion signature is invalid."
        })))
        .mount(&server)
        .await;
    let provider =
        OAuthClientCredentials::builder(format!("{}/oauth2/v1/token", server.uri()), "0oa")
            .scope("okta.users.read")
            .private_key_pem(Secret::new(KEY_PEM))
            .build()
            .unwrap();
    let e = provider.authorization().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated);
    assert!(e.message().contains("invalid_client"), "{e}");
    let e = OAuthClientCredentials::builder("https://x/oauth2/v1/token", "0oa")
        .scope("s")
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("private_key"));
    let e = OAuthClientCredentials::builder("https://x/t", "0oa")
        .scope("s")
        .private_key_pem(Secret::new(
            "-----BEGIN RSA PRIVATE KEY-----\nnope\n-----END RSA PRIVATE KEY-----",
        ))
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    let e = HttpClient::builder("https://x").build().unwrap_err();
    assert!(e.to_string().contains("token_provider"));
    let e = HttpClient::builder("not a url")
        .token_provider(StaticToken::bearer(Secret::new("x")))
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("base_url"));
}

/// A token never travels in clear: plain http is refused unless allowed, and allowed only to
/// this machine; token endpoints follow the same rule.
#[test]
fn plain_http_is_refused_unless_allowed_and_only_to_loopback() {
    let build = |url: &str, allow: bool| {
        HttpClient::builder(url)
            .allow_plain_http(allow)
            .token_provider(StaticToken::bearer(Secret::new("x")))
            .build()
    };
    for (url, allow) in [
        ("http://example.okta.com", false),
        ("http://example.okta.com", true),
        ("http://127.0.0.1:9", false),
        ("http://10.1.2.3", true),
    ] {
        let e = build(url, allow).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{url} {allow}");
        assert!(e.to_string().contains("base_url"), "{e}");
    }
    build("https://example.okta.com", false).unwrap();
    build("http://127.0.0.1:9", true).unwrap();
    let ms = |allow: bool, url: &str| {
        MicrosoftClientCredentials::new("contoso.onmicrosoft.com", "app", Secret::new("s"))
            .unwrap()
            .allow_plain_http(allow)
            .with_token_url(url)
    };
    assert!(ms(false, "http://127.0.0.1:9/token").is_err());
    assert!(ms(true, "http://login.example.com/token").is_err());
    assert!(ms(true, "http://127.0.0.1:9/token").is_ok());
    assert!(
        ms(
            false,
            "https://login.microsoftonline.us/t/oauth2/v2.0/token"
        )
        .is_ok()
    );
}

#[tokio::test(flavor = "current_thread")]
async fn traces_have_method_path_status_latency_and_no_secret() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v1/users/00u1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"id": "00u1"})))
        .mount(&server)
        .await;
    Mock::given(path("/oauth2/v1/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "token_type": "Bearer", "expires_in": 3600, "access_token": SECRET
        })))
        .mount(&server)
        .await;
    let capture = TraceCapture::default();
    let guard = capture.set_default();
    let c = client(&server);
    c.send(
        HttpRequest::get(["api", "v1", "users", "00u1"]).query("search", "profile.login eq \"x\""),
    )
    .await
    .unwrap();
    let _ = c
        .send(HttpRequest::get(["api", "v1", "users", "nope"]))
        .await;
    let oauth = OAuthClientCredentials::builder(format!("{}/oauth2/v1/token", server.uri()), "0oa")
        .scope("okta.users.read")
        .private_key_pem(Secret::new(KEY_PEM))
        .build()
        .unwrap();
    let oc = HttpClient::builder(server.uri())
        .allow_plain_http(true)
        .token_provider(oauth)
        .build()
        .unwrap();
    oc.send(HttpRequest::get(["api", "v1", "users", "00u1"]))
        .await
        .unwrap();
    drop(guard);
    let text = capture.text();
    assert!(
        text.contains("span http.request: method=GET path=/api/v1/users/00u1"),
        "{text}"
    );
    assert!(text.contains("status=200"), "{text}");
    assert!(text.contains("status=404"), "{text}");
    assert!(text.contains("latency_ms="), "{text}");
    assert!(
        !text.contains(SECRET),
        "the token leaked into traces: {text}"
    );
    assert!(!text.to_lowercase().contains("authorization"), "{text}");
    assert!(
        !text.contains("profile.login"),
        "the query leaked into traces: {text}"
    );
    for debug in [format!("{c:?}"), format!("{c:#?}"), format!("{oc:?}")] {
        assert!(!debug.contains(SECRET), "{debug}");
    }
}

#[derive(Deserialize)]
struct GoogleClaims {
    iss: String,
    sub: String,
    scope: String,
    aud: String,
    iat: u64,
    exp: u64,
}

#[tokio::test]
async fn google_service_account_impersonates_and_caches_per_subject() {
    let server = MockServer::start().await;
    let counter = Arc::new(AtomicU64::new(0));
    let n = Arc::clone(&counter);
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer",
        ))
        .respond_with(move |_: &Request| {
            let i = n.fetch_add(1, Ordering::SeqCst);
            ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "access_token": format!("ya29.{i}"), "expires_in": 3599, "token_type": "Bearer"
            }))
        })
        .mount(&server)
        .await;
    let token_uri = format!("{}/token", server.uri());
    let key = serde_json::json!({
        "type": "service_account", "project_id": "p", "private_key_id": "kid-g1",
        "private_key": include_str!("data/test-rsa.pkcs8.pem"),
        "client_email": "offboard@p.iam.gserviceaccount.com", "client_id": "1",
        "token_uri": token_uri,
    });
    let admin = GoogleServiceAccount::from_json(&Secret::new(key.to_string()))
        .unwrap()
        .allow_plain_http(true)
        .subject("admin@example.com")
        .scopes(["https://www.googleapis.com/auth/admin.directory.user"])
        .build()
        .unwrap();
    assert_eq!(
        admin.authorization().await.unwrap().expose(),
        "Bearer ya29.0"
    );
    assert_eq!(
        admin.authorization().await.unwrap().expose(),
        "Bearer ya29.0"
    );
    let owner = admin.for_subject("jane@example.com");
    assert_eq!(
        owner.authorization().await.unwrap().expose(),
        "Bearer ya29.1"
    );
    assert_eq!(counter.load(Ordering::SeqCst), 2);

    let seen = server.received_requests().await.unwrap();
    let mut subs = Vec::new();
    for r in &seen {
        let f = form(r);
        let jwt = &f.iter().find(|(k, _)| k == "assertion").unwrap().1;
        let header = jsonwebtoken::decode_header(jwt).unwrap();
        assert_eq!(header.kid.as_deref(), Some("kid-g1"));
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.set_audience(&[token_uri.as_str()]);
        let c = jsonwebtoken::decode::<GoogleClaims>(
            jwt,
            &jsonwebtoken::DecodingKey::from_rsa_pem(PUB_PEM.as_bytes()).unwrap(),
            &validation,
        )
        .unwrap()
        .claims;
        assert_eq!(c.iss, "offboard@p.iam.gserviceaccount.com");
        assert_eq!(
            c.scope,
            "https://www.googleapis.com/auth/admin.directory.user"
        );
        assert_eq!(c.aud, token_uri);
        assert_eq!(c.exp - c.iat, 3600);
        subs.push(c.sub);
    }
    assert_eq!(subs, vec!["admin@example.com", "jane@example.com"]);
    let debug = format!("{admin:?}");
    assert!(
        !debug.contains("ya29") && !debug.contains("PRIVATE KEY"),
        "{debug}"
    );
    let e = GoogleServiceAccount::from_json(&Secret::new(key.to_string()))
        .unwrap()
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("subject"));
    let e = GoogleServiceAccount::from_json(&Secret::new("{\"private_key\": \"x")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
}

#[tokio::test]
async fn microsoft_client_credentials() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/tenant/oauth2/v2.0/token"))
        .and(body_string_contains("grant_type=client_credentials"))
        .and(body_string_contains("scope=https%3A%2F%2Fgraph.microsoft.com%2F.default"))
        .and(body_string_contains("client_id=app-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": "eyJ.graph"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let ms =
        MicrosoftClientCredentials::new("contoso.onmicrosoft.com", "app-1", Secret::new(SECRET))
            .unwrap()
            .allow_plain_http(true)
            .with_token_url(&format!("{}/tenant/oauth2/v2.0/token", server.uri()))
            .unwrap();
    assert_eq!(
        ms.authorization().await.unwrap().expose(),
        "Bearer eyJ.graph"
    );
    assert_eq!(
        ms.authorization().await.unwrap().expose(),
        "Bearer eyJ.graph"
    );
    let f = form(&server.received_requests().await.unwrap()[0]);
    assert!(f.contains(&("client_secret".to_owned(), SECRET.to_owned())));
    assert!(!format!("{ms:?}").contains(SECRET));
    assert!(MicrosoftClientCredentials::new("a/b", "x", Secret::new("s")).is_err());
    assert!(
        MicrosoftClientCredentials::new("t", "x", Secret::new(""))
            .unwrap_err()
            .to_string()
            .contains("client_secret")
    );
}

/// Google answers a POST without a body and without `Content-Length` with `411 Length
/// Required` (hyper sends no length for an empty body over HTTP/1.1), so every body-less
/// POST/PUT/PATCH carries `Content-Length: 0`; a GET/DELETE carries none.
#[tokio::test]
async fn bodyless_writes_send_content_length_zero() {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    let c = client(&server);
    for m in [
        reqwest::Method::POST,
        reqwest::Method::PUT,
        reqwest::Method::PATCH,
        reqwest::Method::GET,
        reqwest::Method::DELETE,
    ] {
        c.send(HttpRequest::new(m, ["api", "v1", "lifecycle"]))
            .await
            .unwrap();
    }
    c.send(HttpRequest::post(["api", "v1", "json"]).json(serde_json::json!({"a": 1})))
        .await
        .unwrap();
    let seen: Vec<(String, Option<String>)> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.method.to_string(),
                r.headers
                    .get("content-length")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
            )
        })
        .collect();
    let zero = Some("0".to_owned());
    assert_eq!(
        seen,
        vec![
            ("POST".to_owned(), zero.clone()),
            ("PUT".to_owned(), zero.clone()),
            ("PATCH".to_owned(), zero),
            ("GET".to_owned(), None),
            ("DELETE".to_owned(), None),
            ("POST".to_owned(), Some("7".to_owned())),
        ]
    );
}

/// Guards the generic RFC 6749 §4.4 client credentials: `client_secret_basic` sends the id and
/// secret form-urlencoded then base64 in `Authorization` (never in the body) with the scope;
/// the token is cached, fetched again after an invalidation (a 401 from the API) or once
/// `refresh_before` its expiry; `client_secret_post` puts them in the body; a 401 from the
/// token endpoint is `Unauthenticated` and the secret shows nowhere.
#[tokio::test]
async fn generic_client_secret_credentials_basic_post_cache_and_refresh() {
    use base64::Engine as _;
    use offboard_http::{ClientAuthMethod, ClientSecretCredentials};
    let server = MockServer::start().await;
    let counter = Arc::new(AtomicU64::new(0));
    let n = Arc::clone(&counter);
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(move |_: &Request| {
            let i = n.fetch_add(1, Ordering::SeqCst);
            ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "access_token": format!("tok-{i}"), "token_type": "Bearer", "expires_in": 600
            }))
        })
        .mount(&server)
        .await;
    let token_url = format!("{}/oauth/token", server.uri());
    let basic = ClientSecretCredentials::builder(&token_url, "app:1", Secret::new(SECRET))
        .scope("scim users")
        .allow_plain_http(true)
        .build()
        .unwrap();
    assert_eq!(
        basic.authorization().await.unwrap().expose(),
        "Bearer tok-0"
    );
    assert_eq!(
        basic.authorization().await.unwrap().expose(),
        "Bearer tok-0"
    );
    basic.invalidate();
    assert_eq!(
        basic.authorization().await.unwrap().expose(),
        "Bearer tok-1"
    );
    // Jump to 59 s before expiry (inside the 60 s refresh margin), then fetch with the real
    // clock running again (the token request's timeout must not be advanced past).
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(600 - 59)).await;
    tokio::time::resume();
    assert_eq!(
        basic.authorization().await.unwrap().expose(),
        "Bearer tok-2"
    );
    let sent = server.received_requests().await.unwrap();
    assert_eq!(sent.len(), 3);
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("app%3A1:{SECRET}"))
    );
    assert_eq!(
        sent[0]
            .headers
            .get("authorization")
            .unwrap()
            .to_str()
            .unwrap(),
        expected
    );
    let f = form(&sent[0]);
    assert_eq!(
        f,
        vec![
            ("grant_type".to_owned(), "client_credentials".to_owned()),
            ("scope".to_owned(), "scim users".to_owned()),
        ]
    );
    assert!(!format!("{basic:?}").contains(SECRET));

    let post = ClientSecretCredentials::builder(&token_url, "app-2", Secret::new(SECRET))
        .client_auth(ClientAuthMethod::Post)
        .allow_plain_http(true)
        .build()
        .unwrap();
    post.authorization().await.unwrap();
    let last = server.received_requests().await.unwrap().pop().unwrap();
    assert!(last.headers.get("authorization").is_none());
    let f = form(&last);
    assert!(f.contains(&("client_id".to_owned(), "app-2".to_owned())));
    assert!(f.contains(&("client_secret".to_owned(), SECRET.to_owned())));
    assert!(!f.iter().any(|(k, _)| k == "scope"));

    let refusing = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(serde_json::json!({"error": "invalid_client"})),
        )
        .mount(&refusing)
        .await;
    let bad = ClientSecretCredentials::builder(
        format!("{}/oauth/token", refusing.uri()),
        "app",
        Secret::new(SECRET),
    )
    .allow_plain_http(true)
    .build()
    .unwrap();
    let e = bad.authorization().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated);
    assert!(!e.to_string().contains(SECRET));
    assert!(!format!("{e:?}").contains(SECRET));

    for (url, key) in [
        ("http://auth.example.com/token", "token_url"),
        ("not a url", "token_url"),
    ] {
        let e = ClientSecretCredentials::builder(url, "c", Secret::new("s"))
            .build()
            .unwrap_err();
        assert!(e.to_string().contains(key), "{e}");
    }
    let e = ClientSecretCredentials::builder("https://a.example/t", "c", Secret::new(""))
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("client_secret"));
}

#[tokio::test]
async fn a_set_budget_is_drawn_per_request_learns_the_bucket_and_takes_penalties() {
    let server = MockServer::start().await;
    let reset = (SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + Duration::from_secs(60))
        .as_secs()
        .to_string();
    Mock::given(method("GET"))
        .and(path("/api/v1/users"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-rate-limit-limit", "600")
                .insert_header("x-rate-limit-remaining", "599")
                .insert_header("x-rate-limit-reset", reset.as_str())
                .set_body_json(serde_json::json!([])),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/groups"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "7")
                .set_body_json(okta_error("E0000047", "API call exceeded rate limit")),
        )
        .mount(&server)
        .await;
    let budget = Arc::new(RecordingBudget::default());
    let c = HttpClient::builder(server.uri())
        .allow_plain_http(true)
        .token_provider(StaticToken::okta_ssws(Secret::new(SECRET)))
        .budget_scope("acme")
        .shared_concurrency(3)
        .build()
        .unwrap();
    // Before a budget is set, nothing is drawn from one.
    c.send(HttpRequest::get(["api", "v1", "users"]))
        .await
        .unwrap();
    assert!(budget.calls().is_empty());
    c.use_rate_budget(budget.clone());
    // The bucket's budget was learnt from the first answer's headers: 600 a minute.
    c.send(HttpRequest::get(["api", "v1", "users"]))
        .await
        .unwrap();
    let e = c
        .send(HttpRequest::get(["api", "v1", "groups"]))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    // A pacer made from the client draws from the same (set) budget.
    let pacer = c.pacer("writes", 120, Duration::from_secs(60)).unwrap();
    pacer.wait_n(2).await.unwrap();
    // The window is learnt from the reset, an epoch second 60 s after the test began: an
    // answer that came after the next second began measures 59 s (as a first answer late in
    // its window does); both are a whole minute's reading.
    let calls: Vec<String> = budget
        .calls()
        .into_iter()
        .map(|call| call.replace("600/59s", "600/60s"))
        .collect();
    assert_eq!(
        calls,
        vec![
            "concurrency acme|concurrency 3".to_owned(),
            "acquire acme|GET /api/v1/users 600/60s x1".to_owned(),
            // No budget known for the groups bucket yet: only the concurrency slot.
            "concurrency acme|concurrency 3".to_owned(),
            "penalise acme|GET /api/v1/groups 7s".to_owned(),
            "acquire acme|writes 120/60s x2".to_owned(),
        ]
    );
}
