//! The transmitter's endpoints (SSF 1.0 sections 7 and 8) as a mountable axum router.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use offboard_core::{Error, ErrorKind};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::delivery::PollRequest;
use crate::events::{SSF_VERIFICATION, SUPPORTED};
use crate::stream::{self, Delivery, POLL, PUSH, Stored, StreamConfig, StreamStatus};
use crate::subject;
use crate::transmitter::{DefaultSubjects, Receiver, Transmitter, VERIFICATION_NOTE};

/// The longest description, `state` or reason a receiver may send.
const MAX_TEXT: usize = 1024;

/// An error answer: status and `{"error": code, "error_description": message}`.
struct ApiError(StatusCode, &'static str, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (
            self.0,
            Json(json!({"error": self.1, "error_description": self.2})),
        )
            .into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e.kind() {
            ErrorKind::InvalidInput => {
                Self(StatusCode::BAD_REQUEST, "invalid_request", e.to_string())
            }
            ErrorKind::NotFound => {
                Self(StatusCode::NOT_FOUND, "not_found", "no such stream".into())
            }
            ErrorKind::Conflict => Self(StatusCode::CONFLICT, "conflict", e.to_string()),
            _ => {
                tracing::warn!(error = %e, "an SSF request failed");
                Self(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "the transmitter failed; try again".into(),
                )
            }
        }
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, "invalid_request", message.into())
}

fn not_found() -> ApiError {
    ApiError(StatusCode::NOT_FOUND, "not_found", "no such stream".into())
}

type ApiResult<T> = std::result::Result<T, ApiError>;

impl Transmitter {
    /// The endpoints, to mount at the issuer's origin: the metadata at
    /// `/.well-known/ssf-configuration` plus the issuer's path, and under the issuer's path
    /// `/ssf/jwks`, `/ssf/stream` (POST create, GET read, PATCH update, PUT replace, DELETE),
    /// `/ssf/status` (GET, POST), `/ssf/subjects/add`, `/ssf/subjects/remove`, `/ssf/verify`
    /// and `/ssf/poll/{stream_id}`. All but the metadata and the JWKS need a receiver's
    /// bearer token, and a receiver sees only its own streams.
    pub fn router(&self) -> Router {
        let base = self.inner.base_path.clone();
        let p = |s: &str| format!("{base}/ssf/{s}");
        Router::new()
            .route(
                &format!("/.well-known/ssf-configuration{base}"),
                get(metadata),
            )
            .route(&p("jwks"), get(jwks))
            .route(
                &p("stream"),
                post(create)
                    .get(read)
                    .patch(update_stream)
                    .put(replace)
                    .delete(delete),
            )
            .route(&p("status"), get(read_status).post(set_status))
            .route(&p("subjects/add"), post(add_subject))
            .route(&p("subjects/remove"), post(remove_subject))
            .route(&p("verify"), post(verify))
            .route(&p("poll/{stream_id}"), post(poll))
            .with_state(self.clone())
    }

    fn url(&self, path: &str) -> String {
        let issuer = self.inner.config.issuer.trim_end_matches('/');
        format!("{issuer}/ssf/{path}")
    }

    /// The receiver presenting the request's bearer token.
    fn authenticate(&self, headers: &HeaderMap) -> ApiResult<&Receiver> {
        let unauthorized = || {
            ApiError(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "a receiver's bearer token is required".into(),
            )
        };
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(unauthorized)?;
        let digest = Sha256::digest(token.as_bytes());
        self.inner
            .config
            .receivers
            .iter()
            .find(|r| Sha256::digest(r.token.expose().as_bytes()) == digest)
            .ok_or_else(unauthorized)
    }

    /// The stream `id` if `receiver` owns it.
    async fn owned(&self, receiver: &Receiver, id: &str) -> ApiResult<Stored> {
        match stream::load(&*self.inner.store, id).await? {
            Some(s) if !s.deleted && s.receiver == receiver.name => Ok(s),
            _ => Err(not_found()),
        }
    }

    /// Changes stream `id` of `receiver` with `change`.
    async fn change<T>(
        &self,
        receiver: &Receiver,
        id: &str,
        change: impl FnMut(&mut Stored) -> offboard_core::Result<T>,
    ) -> ApiResult<(Stored, T)> {
        self.owned(receiver, id).await?;
        let out = stream::update(&*self.inner.store, id, change).await?;
        self.wake();
        Ok(out)
    }
}

async fn metadata(State(t): State<Transmitter>) -> Json<Value> {
    let c = &t.inner.config;
    Json(json!({
        "spec_version": "1_0",
        "issuer": c.issuer,
        "jwks_uri": t.url("jwks"),
        "delivery_methods_supported": [PUSH, POLL],
        "configuration_endpoint": t.url("stream"),
        "status_endpoint": t.url("status"),
        "add_subject_endpoint": t.url("subjects/add"),
        "remove_subject_endpoint": t.url("subjects/remove"),
        "verification_endpoint": t.url("verify"),
        "authorization_schemes": [{"spec_urn": "urn:ietf:rfc:6750"}],
        "default_subjects": match c.default_subjects { DefaultSubjects::All => "ALL", DefaultSubjects::None => "NONE" },
    }))
}

async fn jwks(State(t): State<Transmitter>) -> Json<Value> {
    Json(t.jwks())
}

#[derive(Deserialize)]
struct DeliveryBody {
    method: String,
    endpoint_url: Option<String>,
    authorization_header: Option<String>,
}

#[derive(Deserialize)]
struct StreamBody {
    stream_id: Option<String>,
    delivery: Option<DeliveryBody>,
    events_requested: Option<Vec<String>>,
    description: Option<String>,
}

#[derive(Deserialize)]
struct StreamQuery {
    stream_id: Option<String>,
}

fn body<T: serde::de::DeserializeOwned>(v: Value) -> ApiResult<T> {
    serde_json::from_value(v).map_err(|e| bad(format!("the request body is not valid: {e}")))
}

/// Checks a delivery and applies it to `s` (poll: the transmitter's endpoint).
fn apply_delivery(t: &Transmitter, s: &mut Stored, d: DeliveryBody) -> ApiResult<()> {
    match d.method.as_str() {
        PUSH => {
            let url = d
                .endpoint_url
                .ok_or_else(|| bad("push delivery needs an endpoint_url"))?;
            let parsed = url::Url::parse(&url).map_err(|_| bad("endpoint_url is not a URL"))?;
            if !matches!(parsed.scheme(), "https" | "http") {
                return Err(bad("endpoint_url must be an http(s) URL"));
            }
            if let Some(h) = &d.authorization_header
                && (h.len() > 4096 || HeaderValue::from_str(h).is_err())
            {
                return Err(bad("authorization_header is not a valid header value"));
            }
            s.config.delivery = Delivery {
                method: PUSH.into(),
                endpoint_url: url,
            };
            s.authorization_header = d.authorization_header;
        }
        POLL => {
            s.config.delivery = Delivery {
                method: POLL.into(),
                endpoint_url: t.url(&format!("poll/{}", s.config.stream_id)),
            };
            s.authorization_header = None;
        }
        _ => {
            return Err(bad(
                "delivery method must be urn:ietf:rfc:8935 or urn:ietf:rfc:8936",
            ));
        }
    }
    Ok(())
}

fn apply_events(s: &mut Stored, requested: Vec<String>) -> ApiResult<()> {
    if requested.len() > 64 || requested.iter().any(|e| e.len() > 256) {
        return Err(bad("events_requested is too long"));
    }
    s.config.events_delivered = SUPPORTED
        .iter()
        .filter(|e| requested.iter().any(|r| r == *e))
        .map(|e| (*e).to_owned())
        .collect();
    s.config.events_requested = requested;
    Ok(())
}

fn apply_description(s: &mut Stored, d: Option<String>) -> ApiResult<()> {
    if d.as_ref().is_some_and(|d| d.len() > MAX_TEXT) {
        return Err(bad("description is too long"));
    }
    s.config.description = d;
    Ok(())
}

fn all_events() -> Vec<String> {
    SUPPORTED.iter().map(|e| (*e).to_owned()).collect()
}

async fn create(
    State(t): State<Transmitter>,
    headers: HeaderMap,
    Json(v): Json<Value>,
) -> ApiResult<Response> {
    let receiver = t.authenticate(&headers)?;
    let b: StreamBody = body(v)?;
    let id = uuid::Uuid::new_v4().to_string();
    let mut s = Stored {
        receiver: receiver.name.clone(),
        config: StreamConfig {
            stream_id: id.clone(),
            iss: t.inner.config.issuer.clone(),
            aud: receiver.audience.clone(),
            events_supported: all_events(),
            events_requested: Vec::new(),
            events_delivered: Vec::new(),
            delivery: Delivery {
                method: POLL.into(),
                endpoint_url: String::new(),
            },
            min_verification_interval: t.inner.config.min_verification_interval,
            description: None,
        },
        authorization_header: None,
        status: StreamStatus::Enabled,
        reason: None,
        added: Vec::new(),
        removed: Vec::new(),
        position: t.head(),
        acked: Vec::new(),
        last_verification: None,
        deleted: false,
    };
    apply_delivery(
        &t,
        &mut s,
        b.delivery.unwrap_or(DeliveryBody {
            method: POLL.into(),
            endpoint_url: None,
            authorization_header: None,
        }),
    )?;
    apply_events(&mut s, b.events_requested.unwrap_or_else(all_events))?;
    apply_description(&mut s, b.description)?;
    stream::create(&*t.inner.store, &s).await?;
    if s.is_push() {
        t.spawn_push(id);
    }
    Ok((StatusCode::CREATED, Json(s.config)).into_response())
}

async fn read(
    State(t): State<Transmitter>,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> ApiResult<Response> {
    let receiver = t.authenticate(&headers)?;
    match q.stream_id {
        Some(id) => Ok(Json(t.owned(receiver, &id).await?.config).into_response()),
        None => {
            let mut out = Vec::new();
            for id in stream::ids(&*t.inner.store).await? {
                if let Ok(s) = t.owned(receiver, &id).await {
                    out.push(s.config);
                }
            }
            Ok(Json(out).into_response())
        }
    }
}

/// PATCH (only the members given) or PUT (every receiver-supplied member).
async fn modify(
    t: Transmitter,
    headers: HeaderMap,
    v: Value,
    replace: bool,
) -> ApiResult<Response> {
    let receiver = t.authenticate(&headers)?;
    let b: StreamBody = body(v)?;
    let id = b
        .stream_id
        .clone()
        .ok_or_else(|| bad("stream_id is required"))?;
    if replace && b.delivery.is_none() {
        return Err(bad("a replacement needs delivery"));
    }
    let mut delivery = b.delivery;
    let events = b.events_requested;
    let description = b.description;
    // Checked once outside the swap loop (the closure must not fail differently each time).
    let mut probe = t.owned(receiver, &id).await?;
    if let Some(d) = delivery.take() {
        apply_delivery(&t, &mut probe, d)?;
    }
    if let Some(e) = events.clone() {
        apply_events(&mut probe, e)?;
    } else if replace {
        apply_events(&mut probe, all_events())?;
    }
    if description.is_some() || replace {
        apply_description(&mut probe, description)?;
    }
    let (s, ()) = t
        .change(receiver, &id, |s| {
            s.config.delivery = probe.config.delivery.clone();
            s.authorization_header = probe.authorization_header.clone();
            s.config.events_requested = probe.config.events_requested.clone();
            s.config.events_delivered = probe.config.events_delivered.clone();
            s.config.description = probe.config.description.clone();
            Ok(())
        })
        .await?;
    if s.is_push() {
        t.spawn_push(id);
    }
    Ok(Json(s.config).into_response())
}

async fn update_stream(
    State(t): State<Transmitter>,
    headers: HeaderMap,
    Json(v): Json<Value>,
) -> ApiResult<Response> {
    modify(t, headers, v, false).await
}

async fn replace(
    State(t): State<Transmitter>,
    headers: HeaderMap,
    Json(v): Json<Value>,
) -> ApiResult<Response> {
    modify(t, headers, v, true).await
}

async fn delete(
    State(t): State<Transmitter>,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> ApiResult<StatusCode> {
    let receiver = t.authenticate(&headers)?;
    let id = q.stream_id.ok_or_else(|| bad("stream_id is required"))?;
    t.change(receiver, &id, |s| {
        s.deleted = true;
        s.authorization_header = None;
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn status_body(s: &Stored) -> Value {
    let mut v = json!({"stream_id": s.config.stream_id, "status": s.status});
    if let Some(r) = &s.reason {
        v["reason"] = json!(r);
    }
    v
}

async fn read_status(
    State(t): State<Transmitter>,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> ApiResult<Json<Value>> {
    let receiver = t.authenticate(&headers)?;
    let id = q.stream_id.ok_or_else(|| bad("stream_id is required"))?;
    Ok(Json(status_body(&t.owned(receiver, &id).await?)))
}

#[derive(Deserialize)]
struct StatusBody {
    stream_id: String,
    status: StreamStatus,
    reason: Option<String>,
}

async fn set_status(
    State(t): State<Transmitter>,
    headers: HeaderMap,
    Json(v): Json<Value>,
) -> ApiResult<Json<Value>> {
    let receiver = t.authenticate(&headers)?;
    let b: StatusBody = body(v)?;
    if b.reason.as_ref().is_some_and(|r| r.len() > MAX_TEXT) {
        return Err(bad("reason is too long"));
    }
    let head = t.head();
    let (s, ()) = t
        .change(receiver, &b.stream_id, |s| {
            if s.status == StreamStatus::Disabled && b.status != StreamStatus::Disabled {
                // What happened while disabled is not held (SSF 1.0 section 8.1.2).
                s.position = s.position.max(head);
                s.acked.clear();
            }
            s.status = b.status;
            s.reason = b.reason.clone();
            Ok(())
        })
        .await?;
    Ok(Json(status_body(&s)))
}

#[derive(Deserialize)]
struct SubjectBody {
    stream_id: String,
    subject: Value,
}

async fn add_subject(
    State(t): State<Transmitter>,
    headers: HeaderMap,
    Json(v): Json<Value>,
) -> ApiResult<StatusCode> {
    move_subject(&t, &headers, v, true).await?;
    Ok(StatusCode::OK)
}

async fn remove_subject(
    State(t): State<Transmitter>,
    headers: HeaderMap,
    Json(v): Json<Value>,
) -> ApiResult<StatusCode> {
    move_subject(&t, &headers, v, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Adds the request's subject to the stream's added subjects (`add`) or its removed ones,
/// taking it out of the other list.
async fn move_subject(t: &Transmitter, headers: &HeaderMap, v: Value, add: bool) -> ApiResult<()> {
    let receiver = t.authenticate(headers)?;
    let b: SubjectBody = body(v)?;
    subject::check(&b.subject)?;
    t.change(receiver, &b.stream_id, |s| {
        let (to, from) = if add {
            (&mut s.added, &mut s.removed)
        } else {
            (&mut s.removed, &mut s.added)
        };
        from.retain(|x| !subject::same(x, &b.subject));
        if !to.iter().any(|x| subject::same(x, &b.subject)) {
            to.push(b.subject.clone());
        }
        Ok(())
    })
    .await?;
    Ok(())
}

#[derive(Deserialize)]
struct VerifyBody {
    stream_id: String,
    state: Option<String>,
}

async fn verify(
    State(t): State<Transmitter>,
    headers: HeaderMap,
    Json(v): Json<Value>,
) -> ApiResult<Response> {
    let receiver = t.authenticate(&headers)?;
    let b: VerifyBody = body(v)?;
    if b.state.as_ref().is_some_and(|s| s.len() > MAX_TEXT) {
        return Err(bad("state is too long"));
    }
    let now = Utc::now().timestamp();
    let interval = t.inner.config.min_verification_interval as i64;
    let (_, allowed) = t
        .change(receiver, &b.stream_id, |s| {
            if s.last_verification.is_some_and(|l| now - l < interval) {
                return Ok(false);
            }
            s.last_verification = Some(now);
            Ok(true)
        })
        .await?;
    if !allowed {
        return Ok(ApiError(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "a verification was asked less than min_verification_interval ago".into(),
        )
        .into_response());
    }
    let mut data = Map::new();
    data.insert("stream_id".into(), json!(b.stream_id));
    data.insert("event".into(), json!(SSF_VERIFICATION));
    if let Some(s) = b.state {
        data.insert("state".into(), json!(s));
    }
    t.note(VERIFICATION_NOTE, Value::Object(data)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn poll(
    State(t): State<Transmitter>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(v): Json<Value>,
) -> ApiResult<Json<Value>> {
    let receiver = t.authenticate(&headers)?;
    let s = t.owned(receiver, &id).await?;
    if s.is_push() {
        return Err(bad("the stream is delivered by push"));
    }
    let request: PollRequest = body(v)?;
    Ok(Json(t.poll(&id, request).await?))
}
