//! Shared pieces of the transmitter's tests: an engine offboarding from a reference IdP, the
//! transmitter served on loopback, a scriptable push receiver, and SET decoding.
#![allow(dead_code, unreachable_pub)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use offboard_core::engine::WorkerHandle;
use offboard_core::store::Store;
use offboard_core::{
    AuditQuery, Engine, Initiator, MemoryStore, Person, Policy, RunId, RunRequest, Secret,
};
use offboard_ssf::{Receiver, SigningKey, SubjectFormat, Transmitter, TransmitterConfig};
use offboard_testkit::reference::{ReferenceConnector, ReferenceUser};
use serde_json::{Value, json};

pub const TOKEN: &str = "receiver-token-0f3a";
pub const OTHER_TOKEN: &str = "other-receiver-token-77";
pub const AUDIENCE: &str = "https://receiver.example.com";
pub const PUSH_AUTH: &str = "Bearer push-secret-9c1e";

const POLICY: &str = r#"
[apps.idp]
method = "automatic"
actions = ["idp.suspend", "idp.clear_sessions", "idp.remove_groups"]
"#;

/// A transmitter served on loopback at `issuer` (path `/tenant`), with the store it uses.
pub struct Served {
    pub transmitter: Transmitter,
    pub store: Arc<MemoryStore>,
    pub issuer: String,
    pub base: String,
    pub http: reqwest::Client,
}

pub fn config(issuer: &str) -> TransmitterConfig {
    TransmitterConfig::new(issuer)
        .receiver(Receiver::new(
            "okta",
            Secret::new(TOKEN),
            AUDIENCE,
            SubjectFormat::Email,
        ))
        .receiver(Receiver::new(
            "other",
            Secret::new(OTHER_TOKEN),
            "https://other.example.com",
            SubjectFormat::Opaque,
        ))
        .push_timing(
            Duration::from_secs(2),
            Duration::from_millis(20),
            Duration::from_millis(200),
        )
        .poll_wait(Duration::from_secs(2))
        .min_verification_interval(60)
}

/// Serves a transmitter on `store`, configured by `tweak` of [`config`].
pub async fn serve_with(
    store: Arc<MemoryStore>,
    tweak: impl FnOnce(TransmitterConfig) -> TransmitterConfig,
) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let issuer = format!("{base}/tenant");
    let key = SigningKey::generate("k1").unwrap();
    let transmitter = Transmitter::start(tweak(config(&issuer)), store.clone(), key)
        .await
        .unwrap();
    let app = transmitter.router();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Served {
        transmitter,
        store,
        issuer,
        base,
        http: reqwest::Client::new(),
    }
}

pub async fn serve(store: Arc<MemoryStore>) -> Served {
    serve_with(store, |c| c).await
}

impl Served {
    pub fn url(&self, path: &str) -> String {
        format!("{}/ssf/{path}", self.issuer)
    }

    /// A management call as the `okta` receiver.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.call_as(TOKEN, method, path, body).await
    }

    pub async fn call_as(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Sets a stream's status as the `okta` receiver.
    pub async fn set_status(&self, stream_id: &str, status: &str) -> (u16, Value) {
        self.call(
            reqwest::Method::POST,
            "status",
            Some(json!({"stream_id": stream_id, "status": status})),
        )
        .await
    }

    /// Creates a push stream to `endpoint`; returns its id.
    pub async fn push_stream(&self, endpoint: &str) -> String {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "stream",
                Some(json!({
                    "delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": endpoint, "authorization_header": PUSH_AUTH},
                    "description": "test receiver",
                })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["stream_id"].as_str().unwrap().to_owned()
    }

    pub async fn poll_stream(&self) -> (String, String) {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "stream",
                Some(json!({"delivery": {"method": "urn:ietf:rfc:8936"}})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        (
            body["stream_id"].as_str().unwrap().to_owned(),
            body["delivery"]["endpoint_url"]
                .as_str()
                .unwrap()
                .to_owned(),
        )
    }

    pub async fn jwks(&self) -> JwkSet {
        self.http
            .get(self.url("jwks"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The notes named `name` in the audit trail.
    pub async fn notes(&self, name: &str) -> Vec<Value> {
        self.store
            .audit(AuditQuery::all())
            .await
            .unwrap()
            .into_iter()
            .filter_map(|e| match e.kind {
                offboard_core::AuditKind::Note { name: n, data } if n == name => Some(data),
                _ => None,
            })
            .collect()
    }
}

/// Verifies a SET against the JWKS (ES256, `typ`, `kid`) and returns its claims.
pub fn verify(jwt: &str, jwks: &JwkSet, issuer: &str) -> Value {
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    assert_eq!(header.alg, Algorithm::ES256);
    assert_eq!(header.typ.as_deref(), Some("secevent+jwt"));
    let kid = header.kid.expect("a kid");
    let jwk = jwks.find(&kid).expect("the kid is in the JWKS");
    let mut v = Validation::new(Algorithm::ES256);
    v.set_audience(&[AUDIENCE]);
    v.set_issuer(&[issuer]);
    v.required_spec_claims = ["iss", "aud"].iter().map(|s| s.to_string()).collect();
    v.validate_exp = false;
    jsonwebtoken::decode::<Value>(jwt, &DecodingKey::from_jwk(jwk).unwrap(), &v)
        .unwrap()
        .claims
}

/// The one event type of a SET's claims.
pub fn event_type(claims: &Value) -> String {
    let events = claims["events"].as_object().unwrap();
    assert_eq!(events.len(), 1, "{claims}");
    events.keys().next().unwrap().clone()
}

pub fn users() -> Vec<ReferenceUser> {
    vec![
        ReferenceUser::employee("ada@example.com").sessions(3),
        ReferenceUser::employee("grace@example.com").sessions(2),
    ]
}

/// An engine feeding `transmitter`, its workers started (keep the handle).
pub fn engine(store: Arc<MemoryStore>, transmitter: &Transmitter) -> (Engine, WorkerHandle) {
    let idp = Arc::new(ReferenceConnector::builder("idp").users(users()).build());
    let engine = Engine::builder()
        .store(store)
        .connector(idp)
        .policy(Policy::from_toml(POLICY).unwrap())
        .audit_sink(Arc::new(transmitter.clone()))
        .idle_poll(Duration::from_millis(20))
        .build()
        .unwrap();
    let workers = engine.start();
    (engine, workers)
}

pub fn ada() -> Person {
    Person::new("emp-ada", "ada@example.com").with_name("Ada Lovelace")
}

pub fn grace() -> Person {
    Person::new("emp-grace", "grace@example.com").with_name("Grace Hopper")
}

/// Offboards `person` and waits for the run to end.
pub async fn offboard(engine: &Engine, person: Person) -> RunId {
    let plan = engine
        .plan(RunRequest::new(
            person,
            Initiator::Admin {
                actor: "admin@example.com".into(),
            },
        ))
        .await
        .unwrap();
    let run = engine.submit(plan, None).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), engine.wait(run))
        .await
        .expect("the run ended")
        .unwrap();
    run
}

/// One request a push receiver got.
#[derive(Debug, Clone)]
pub struct Got {
    pub content_type: String,
    pub authorization: String,
    pub body: String,
}

/// A push receiver on loopback answering from a script (then 202), recording every request.
#[derive(Clone, Default)]
pub struct PushReceiver {
    pub got: Arc<Mutex<Vec<Got>>>,
    pub script: Arc<Mutex<VecDeque<(u16, Value)>>>,
}

impl PushReceiver {
    /// Starts it; returns its endpoint URL.
    pub async fn start(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/events", listener.local_addr().unwrap());
        let app = Router::new()
            .route("/events", post(take))
            .with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    pub fn answer(&self, status: u16, body: Value) {
        self.script.lock().unwrap().push_back((status, body));
    }

    pub fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until it got `n` requests.
    pub async fn wait_for(&self, n: usize) -> Vec<Got> {
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let got = self.got();
                if got.len() >= n {
                    return got;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{n} requests never came: {:?}", self.got().len()))
    }
}

async fn take(State(r): State<PushReceiver>, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let h = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    r.got.lock().unwrap().push(Got {
        content_type: h("content-type"),
        authorization: h("authorization"),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let (status, body) = r
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or((202, Value::Null));
    let status = StatusCode::from_u16(status).unwrap();
    if body.is_null() {
        status.into_response()
    } else {
        (status, axum::Json(body)).into_response()
    }
}
