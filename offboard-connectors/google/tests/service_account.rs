//! The production auth path: a service account with domain-wide delegation impersonating the
//! configured admin (`sub`), its access token then used against the simulated Directory API.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use offboard_core::{Connector, LookupRequest, Person, Secret};
use offboard_google::{DEFAULT_SCOPES, GoogleConfig};
use offboard_testkit::sim::google::{GoogleLimits, GoogleTenant, NewUser};
use offboard_testkit::suite::budget::RecordingBudget;
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

/// Google's Directory quota is "per user per Google Cloud project": with a service account a
/// shared budget is keyed by the project (the key file's `project_id`, else the one in the
/// account's address) and the admin impersonated, not by the API root every customer shares.
#[tokio::test]
async fn a_shared_budget_is_keyed_by_project_and_impersonated_admin() {
    let tenant = GoogleTenant::start_with("ya29.minted", GoogleLimits::default()).await;
    tenant.add_user(NewUser::active("ann@example.test"));
    let oauth = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": "ya29.minted", "expires_in": 3600, "token_type": "Bearer"
        })))
        .mount(&oauth)
        .await;
    let key = |project_id: Option<&str>| {
        let mut key = serde_json::json!({
            "type": "service_account",
            "client_email": "offboard@legacy-project.iam.gserviceaccount.com",
            "private_key_id": "kid-1",
            "private_key": include_str!("data/test-rsa.pem"),
            "token_uri": format!("{}/token", oauth.uri()),
        });
        if let Some(p) = project_id {
            key["project_id"] = p.into();
        }
        key.to_string()
    };
    let keys_of = |key: String, subject: &'static str| {
        let uri = tenant.uri();
        async move {
            let google = GoogleConfig::new()
                .with_base_url(uri)
                .with_allow_plain_http(true)
                .with_service_account(Secret::new(&key))
                .with_subject(subject)
                .build()
                .unwrap();
            let log = Arc::new(RecordingBudget::default());
            google.use_rate_budget(log.clone());
            google
                .lookup(&LookupRequest::person(Person::new("p", "ann@example.test")))
                .await
                .unwrap()
                .unwrap();
            log.keys()
        }
    };
    let one = |k: &str| std::collections::BTreeSet::from([k.to_owned()]);
    assert_eq!(
        keys_of(key(Some("acme-iam")), "admin@example.test").await,
        one("google:acme-iam:admin@example.test|quota")
    );
    assert_eq!(
        keys_of(key(Some("acme-iam")), "helpdesk@example.test").await,
        one("google:acme-iam:helpdesk@example.test|quota")
    );
    // An older key file without `project_id`: the project in the account's address.
    assert_eq!(
        keys_of(key(None), "admin@example.test").await,
        one("google:legacy-project:admin@example.test|quota")
    );
}
