//! The production auth path: a service account with domain-wide delegation impersonating the
//! configured admin (`sub`), its access token then used against the simulated Directory API.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use offboard_core::{Connector, LookupRequest, Person, Secret};
use offboard_google::{DEFAULT_SCOPES, GoogleConfig};
use offboard_testkit::sim::google::{GoogleLimits, GoogleTenant, NewUser};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

#[tokio::test]
async fn service_account_impersonates_the_admin_and_its_token_is_used() {
    let tenant = GoogleTenant::start_with("ya29.minted-for-admin", GoogleLimits::default()).await;
    let id = tenant.add_user(NewUser::active("ann@example.test"));
    let oauth = MockServer::start().await;
    let seen: Arc<Mutex<Vec<BTreeMap<String, String>>>> = Arc::default();
    let log = Arc::clone(&seen);
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(move |r: &Request| {
            log.lock()
                .unwrap()
                .push(url::form_urlencoded::parse(&r.body).into_owned().collect());
            ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "access_token": "ya29.minted-for-admin", "expires_in": 3600, "token_type": "Bearer"
            }))
        })
        .mount(&oauth)
        .await;
    let key = serde_json::json!({
        "type": "service_account",
        "client_email": "offboard@project.iam.gserviceaccount.com",
        "private_key_id": "kid-1",
        "private_key": include_str!("data/test-rsa.pem"),
        "token_uri": format!("{}/token", oauth.uri()),
    })
    .to_string();
    let google = GoogleConfig::new()
        .with_base_url(tenant.uri())
        .with_allow_plain_http(true)
        .with_service_account(Secret::new(&key))
        .with_subject("admin@example.test")
        .build()
        .unwrap();
    let found = google
        .lookup(&LookupRequest::person(Person::new("p", "ann@example.test")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.external_id, id);
    // Cached: one token request for two calls.
    google.verify_revoked(&found).await.unwrap();
    let forms = seen.lock().unwrap().clone();
    assert_eq!(forms.len(), 1);
    assert_eq!(
        forms[0]["grant_type"],
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
    let parts: Vec<&str> = forms[0]["assertion"].split('.').collect();
    assert_eq!(parts.len(), 3);
    let decode = |p: &str| -> serde_json::Value {
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .unwrap(),
        )
        .unwrap()
    };
    let (header, claims) = (decode(parts[0]), decode(parts[1]));
    assert_eq!(
        (header["alg"].as_str(), header["kid"].as_str()),
        (Some("RS256"), Some("kid-1"))
    );
    assert_eq!(claims["sub"], "admin@example.test");
    assert_eq!(claims["iss"], "offboard@project.iam.gserviceaccount.com");
    // Exactly what the offered actions need: no licences configured, no licensing scope.
    let asked: Vec<&str> = claims["scope"].as_str().unwrap().split(' ').collect();
    let expected: Vec<&str> = DEFAULT_SCOPES
        .into_iter()
        .filter(|s| !s.ends_with("/apps.licensing"))
        .collect();
    assert_eq!(asked, expected);
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        3600
    );
    assert!(tenant.requests().iter().all(|r| {
        r.headers
            .iter()
            .any(|(k, v)| k == "authorization" && v == "Bearer [REDACTED]")
    }));
    let debug = format!("{google:?} {google:#?}");
    assert!(
        !debug.contains("BEGIN RSA") && !debug.contains("ya29.minted"),
        "{debug}"
    );
}
