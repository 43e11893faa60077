//! A simulated SailPoint Identity Security Cloud (IdentityNow) tenant: the OAuth token
//! endpoint and the v2025 identities API on loopback, stateful, throttled, with injected
//! failures and a recording of every request.
//!
//! Built from SailPoint's own OpenAPI description (`sailpoint-oss/api-specs`), vendored
//! reduced in `specs/sailpoint/`: it serves exactly [`SailPointTenant::ROUTES`] and accepts
//! the list parameters the description gives ([`SailPointTenant::LIST_PARAMS`]); tests check
//! both, and the identity fields served, against it.
//!
//! # Behaviour modelled
//! - `POST /oauth/token`: `grant_type=client_credentials` with `client_id` and
//!   `client_secret` in the form body or the query (SailPoint documents both); answers
//!   `{"access_token", "token_type": "bearer", "expires_in": 749, …}`. Wrong credentials: a
//!   401 `{"error": "unauthorized", "error_description": "Bad credentials"}`.
//! - `/v2025/…` needs `Authorization: Bearer <token>` of an unexpired, unrevoked token; else a
//!   401 `{"error": "JWT validation failed: JWT is expired"}`.
//! - `GET /v2025/identities`: a JSON array paged by `limit` (0 to 250, default 250) and
//!   `offset`, with `X-Total-Count` when `count=true`; `sorters` takes `name`, `alias`,
//!   `cloudStatus` (`-` for descending; ties by id; by id when absent); `filters` takes
//!   `id eq "…"`, `alias eq "…"`, `email eq "…"` (`\"` and `\\` escapes). Every other
//!   filter, sorter or parameter, and `defaultFilter` (not simulated: every identity here is
//!   correlated), is a 400 in SailPoint's error form (`detailCode`, `trackingId`,
//!   `messages`).
//! - `GET /v2025/identities/{id}`: the identity, or a 404.
//! - Identities carry `id`, `name` (the display name), `alias`, `emailAddress`, `created`,
//!   `modified` (moved by every change), `identityStatus`, `managerRef` (`{type, id, name}`),
//!   `lifecycleState` (`{stateName, manuallyUpdated}`) and `attributes` (`uid`, `firstname`,
//!   `lastname`, `email`, `displayName`, `identificationNumber`, and any set with
//!   [`SailPointTenant::set_attribute`], e.g. an end date).
//! - Throttling: [`SailPointTenant::set_rate_limit`] budgets requests per 10 s per tenant
//!   (SailPoint's window); over it, a 429 `{"message": " Rate Limit Exceeded "}` with
//!   `Retry-After` (seconds), as the description's 429 says. Faults ([`Faults`]) and
//!   [`SailPointTenant::fail_next`] as on every simulated tenant.
//! - Every request is recorded, the `Authorization` value hidden; the token request's body
//!   (the client secret) is not recorded.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use wiremock::{MockServer, Request, ResponseTemplate};

use super::layer::{self, Answer, Handler, Layer, Refusal, layer_controls};
pub use super::layer::{Faults, RecordedRequest};
use super::tokens::{Tokens, token_controls};

/// An identity to create with [`SailPointTenant::add_identity`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewIdentity {
    /// `alias` (the authoritative account's name).
    pub alias: String,
    /// `emailAddress`.
    pub email: String,
    /// `attributes.firstname`.
    pub firstname: String,
    /// `attributes.lastname`.
    pub lastname: String,
    /// `attributes.identificationNumber` (the employee number).
    pub identification_number: Option<String>,
    /// `managerRef.id`.
    pub manager: Option<String>,
    /// `lifecycleState.stateName` (`active`, `inactive`, `terminated`, `prehire`, …).
    pub lifecycle_state: String,
}

impl NewIdentity {
    /// An `active` identity with an alias and an email.
    pub fn active(alias: &str, email: &str) -> Self {
        Self {
            alias: alias.to_owned(),
            email: email.to_owned(),
            firstname: String::new(),
            lastname: String::new(),
            identification_number: None,
            manager: None,
            lifecycle_state: "active".into(),
        }
    }
}

#[derive(Debug, Clone)]
struct Identity {
    id: String,
    new: NewIdentity,
    extra: BTreeMap<String, String>,
    created: DateTime<Utc>,
    modified: DateTime<Utc>,
}

fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

impl Identity {
    fn name(&self) -> String {
        [self.new.firstname.as_str(), self.new.lastname.as_str()]
            .into_iter()
            .filter(|n| !n.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn status(&self) -> &'static str {
        match self.new.lifecycle_state.as_str() {
            "inactive" | "terminated" => "DISABLED",
            _ => "ACTIVE",
        }
    }

    /// The identity as served; `managers` are the ids some identity reports to.
    fn json(&self, all: &BTreeMap<String, Identity>, managers: &BTreeSet<&str>) -> Value {
        let u = &self.new;
        let mut attributes = Map::new();
        attributes.insert("uid".into(), json!(u.alias));
        attributes.insert("firstname".into(), json!(u.firstname));
        attributes.insert("lastname".into(), json!(u.lastname));
        attributes.insert("email".into(), json!(u.email));
        attributes.insert("displayName".into(), json!(self.name()));
        attributes.insert("cloudStatus".into(), json!("UNREGISTERED"));
        attributes.insert(
            "identificationNumber".into(),
            json!(u.identification_number),
        );
        for (k, v) in &self.extra {
            attributes.insert(k.clone(), json!(v));
        }
        let manager = u.manager.as_ref().map(|m| {
            json!({"type": "IDENTITY", "id": m,
                   "name": all.get(m).map(Identity::name).unwrap_or_default()})
        });
        json!({
            "id": self.id,
            "name": self.name(),
            "created": stamp(self.created),
            "modified": stamp(self.modified),
            "alias": u.alias,
            "emailAddress": u.email,
            "processingState": null,
            "identityStatus": self.status(),
            "managerRef": manager,
            "isManager": managers.contains(self.id.as_str()),
            "lastRefresh": stamp(self.modified),
            "attributes": attributes,
            "lifecycleState": {"stateName": u.lifecycle_state, "manuallyUpdated": false},
        })
    }

    fn field(&self, field: &str) -> String {
        match field {
            "name" => self.name(),
            "alias" => self.new.alias.clone(),
            "cloudStatus" => "UNREGISTERED".into(),
            "email" => self.new.email.clone(),
            _ => self.id.clone(),
        }
    }
}

#[derive(Debug)]
struct State {
    identities: BTreeMap<String, Identity>,
    next: u64,
    tokens: Tokens,
    layer: Layer,
}

impl State {
    fn managers(&self) -> BTreeSet<&str> {
        self.identities
            .values()
            .filter_map(|i| i.new.manager.as_deref())
            .collect()
    }

    fn touch(&mut self, id: &str) -> Option<&mut Identity> {
        let now = Utc::now();
        let i = self.identities.get_mut(id)?;
        i.modified = now;
        Some(i)
    }
}

#[derive(Debug)]
struct Shared {
    client_id: String,
    client_secret: String,
    state: Mutex<State>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        layer::lock(&self.state)
    }
}

/// The simulated SailPoint tenant. See the [module docs](self).
#[derive(Debug)]
pub struct SailPointTenant {
    server: MockServer,
    shared: Arc<Shared>,
}

fn sp_error(status: u16, detail: &str, text: &str) -> Answer {
    Answer::new(
        status,
        Some(json!({
            "detailCode": detail,
            "trackingId": uuid::Uuid::new_v4().simple().to_string(),
            "messages": [{"locale": "en-US", "localeOrigin": "DEFAULT", "text": text}],
            "causes": [],
        })),
    )
}

fn bad_request(text: &str) -> Answer {
    sp_error(400, "400.1 Bad Request Content", text)
}

impl SailPointTenant {
    /// Every route served, as `(METHOD, path)`: the token endpoint, then the description's
    /// paths under the server URL's `/v2025`.
    pub const ROUTES: &'static [(&'static str, &'static str)] = &[
        ("POST", "/oauth/token"),
        ("GET", "/v2025/identities"),
        ("GET", "/v2025/identities/{id}"),
    ];

    /// The query parameters `GET /v2025/identities` takes (the description's).
    pub const LIST_PARAMS: &'static [&'static str] = &[
        "filters",
        "sorters",
        "defaultFilter",
        "count",
        "limit",
        "offset",
    ];

    /// Starts an empty tenant with a fresh API client.
    pub async fn start() -> Self {
        let server = MockServer::start().await;
        let shared = Arc::new(Shared {
            client_id: format!("sp-client-{}", uuid::Uuid::new_v4().simple()),
            client_secret: format!("sp-secret-{}", uuid::Uuid::new_v4().simple()),
            state: Mutex::new(State {
                identities: BTreeMap::new(),
                next: 0,
                tokens: Tokens::new(749),
                layer: Layer::default(),
            }),
        });
        layer::serve(&server, Arc::new(Route(Arc::clone(&shared)))).await;
        Self { server, shared }
    }

    /// The base URL (`http://127.0.0.1:port`, for `https://{tenant}.api.identitynow.com`).
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// The API client's id.
    pub fn client_id(&self) -> &str {
        &self.shared.client_id
    }

    /// The API client's secret.
    pub fn client_secret(&self) -> &str {
        &self.shared.client_secret
    }

    /// Creates an identity; returns its id (32 hex digits).
    pub fn add_identity(&self, identity: NewIdentity) -> String {
        let mut s = self.shared.state();
        s.next += 1;
        let id = format!("2c91808{:025x}", s.next);
        let now = Utc::now();
        s.identities.insert(
            id.clone(),
            Identity {
                id: id.clone(),
                new: identity,
                extra: BTreeMap::new(),
                created: now,
                modified: now,
            },
        );
        id
    }

    /// Sets an identity's lifecycle state (moving `modified`); `false` when no such identity.
    pub fn set_lifecycle_state(&self, id: &str, state: &str) -> bool {
        match self.shared.state().touch(id) {
            Some(i) => {
                i.new.lifecycle_state = state.to_owned();
                true
            }
            None => false,
        }
    }

    /// Sets (or, with `None`, removes) an identity attribute; `false` when no such identity.
    pub fn set_attribute(&self, id: &str, name: &str, value: Option<&str>) -> bool {
        match self.shared.state().touch(id) {
            Some(i) => {
                match value {
                    Some(v) => i.extra.insert(name.to_owned(), v.to_owned()),
                    None => i.extra.remove(name),
                };
                true
            }
            None => false,
        }
    }

    /// Deletes an identity; `false` when no such identity.
    pub fn remove(&self, id: &str) -> bool {
        self.shared.state().identities.remove(id).is_some()
    }

    /// An identity as `GET /v2025/identities/{id}` returns it.
    pub fn identity(&self, id: &str) -> Option<Value> {
        let s = self.shared.state();
        s.identities
            .get(id)
            .map(|i| i.json(&s.identities, &s.managers()))
    }

    token_controls!("SailPoint: 749");

    layer_controls! {
        fail_next;
        set_rate_limit(10, "10 seconds");
        set_faults;
        requests;
        served;
    }
}

struct Route(Arc<Shared>);

impl Handler for Route {
    fn handle(&self, request: &Request) -> ResponseTemplate {
        let mut s = self.0.state();
        let mut recorded = layer::record(request);
        if request.url.path() == "/oauth/token" {
            recorded.body = None;
            recorded
                .query
                .retain(|(k, _)| k != "client_secret" && k != "client_id");
        }
        s.layer.receive(recorded);
        let segs = layer::segments(request.url.path());
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        let answer = match (request.method.as_str(), segs.as_slice()) {
            ("POST", ["oauth", "token"]) => token(&self.0, &mut s, request),
            (_, ["oauth", "token"]) => sp_error(405, "405 Method Not Allowed", "POST only"),
            (method, ["v2025", rest @ ..]) => api(&mut s, request, method, rest),
            _ => sp_error(404, "404 Not found", "No such resource"),
        };
        answer.template()
    }
}

fn token(shared: &Shared, s: &mut State, request: &Request) -> Answer {
    let mut params: HashMap<String, String> = request.url.query_pairs().into_owned().collect();
    params.extend(url::form_urlencoded::parse(&request.body).into_owned());
    if params.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return Answer::new(
            400,
            Some(json!({"error": "unsupported_grant_type",
                        "error_description": "Unsupported grant type"})),
        );
    }
    if params.get("client_id") != Some(&shared.client_id)
        || params.get("client_secret") != Some(&shared.client_secret)
    {
        return Answer::new(
            401,
            Some(json!({"error": "unauthorized", "error_description": "Bad credentials"})),
        );
    }
    let (access, lifetime) = s.tokens.issue();
    Answer::new(
        200,
        Some(json!({
            "access_token": access,
            "token_type": "bearer",
            "expires_in": lifetime,
            "scope": "sp:scopes:all",
            "tenant_id": "sim-tenant",
            "pod": "sim",
            "strong_auth_supported": false,
            "org": "sim",
            "identity_id": null,
            "user_name": null,
            "strong_auth": false,
            "jti": uuid::Uuid::new_v4().to_string(),
        })),
    )
}

fn api(s: &mut State, request: &Request, method: &str, rest: &[&str]) -> Answer {
    let valid = s.tokens.accept(request);
    if !valid {
        return Answer::new(
            401,
            Some(json!({"error": "JWT validation failed: JWT is expired"})),
        );
    }
    match s.layer.admit() {
        Some(Refusal::Throttled { retry_after, .. }) => {
            return Answer::new(429, Some(json!({"message": " Rate Limit Exceeded "})))
                .header("Retry-After", retry_after.to_string());
        }
        Some(Refusal::Failed(status)) => {
            return sp_error(
                status,
                "500.0 Internal Fault",
                "An internal fault occurred.",
            );
        }
        None => {}
    }
    let query: Vec<(String, String)> = request.url.query_pairs().into_owned().collect();
    match (method, rest) {
        ("GET", ["identities"]) => list(s, &query),
        ("GET", ["identities", id]) => match s.identities.get(*id) {
            Some(i) => Answer::new(200, Some(i.json(&s.identities, &s.managers()))),
            None => sp_error(
                404,
                "404 Not found",
                &format!("The identity {id:?} was not found."),
            ),
        },
        (_, ["identities"] | ["identities", _]) => {
            sp_error(405, "405 Method Not Allowed", "Method not allowed")
        }
        _ => sp_error(404, "404 Not found", "No such resource"),
    }
}

/// One `filters` term: `field eq "value"` on `id`, `alias` or `email`.
fn parse_filter(expr: &str) -> Result<(String, String), String> {
    let (field, rest) = expr
        .split_once(" eq ")
        .ok_or_else(|| format!("filter {expr:?} is not `field eq \"value\"`"))?;
    if !["id", "alias", "email"].contains(&field) {
        return Err(format!("filtering on {field:?} is not simulated"));
    }
    let inner = rest
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .ok_or_else(|| format!("the value of {field} must be quoted"))?;
    let mut value = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('"' | '\\')) => value.push(e),
                _ => return Err("a backslash escapes only \" and \\".into()),
            },
            '"' => return Err("an unescaped quote".into()),
            c => value.push(c),
        }
    }
    Ok((field.to_owned(), value))
}

struct ListQuery {
    limit: usize,
    offset: usize,
    count: bool,
    sort: Option<(String, bool)>,
    filter: Option<(String, String)>,
}

fn parse_list(query: &[(String, String)]) -> Result<ListQuery, String> {
    let mut q = ListQuery {
        limit: 250,
        offset: 0,
        count: false,
        sort: None,
        filter: None,
    };
    let mut seen = BTreeSet::new();
    for (k, v) in query {
        if !SailPointTenant::LIST_PARAMS.contains(&k.as_str()) {
            return Err(format!("unknown parameter {k:?}"));
        }
        if !seen.insert(k.as_str()) {
            return Err(format!("{k} given twice"));
        }
        match k.as_str() {
            "limit" => match v.parse::<usize>() {
                Ok(n) if n <= 250 => q.limit = n,
                _ => return Err(format!("limit must be 0 to 250, not {v:?}")),
            },
            "offset" => {
                q.offset = v
                    .parse()
                    .map_err(|_| format!("offset must be a non-negative integer, not {v:?}"))?
            }
            "count" => match v.as_str() {
                "true" => q.count = true,
                "false" => q.count = false,
                _ => return Err(format!("count must be true or false, not {v:?}")),
            },
            "sorters" => {
                let (field, desc) = match v.strip_prefix('-') {
                    Some(f) => (f, true),
                    None => (v.as_str(), false),
                };
                if !["name", "alias", "cloudStatus"].contains(&field) {
                    return Err(format!("sorting by {v:?} is not supported"));
                }
                q.sort = Some((field.to_owned(), desc));
            }
            "filters" => q.filter = Some(parse_filter(v)?),
            _ => return Err("defaultFilter is not simulated".into()),
        }
    }
    Ok(q)
}

fn list(s: &State, query: &[(String, String)]) -> Answer {
    let q = match parse_list(query) {
        Ok(q) => q,
        Err(why) => return bad_request(&why),
    };
    let mut all: Vec<&Identity> = s
        .identities
        .values()
        .filter(|i| {
            q.filter
                .as_ref()
                .is_none_or(|(f, v)| i.field(f).eq_ignore_ascii_case(v))
        })
        .collect();
    if let Some((field, desc)) = &q.sort {
        let mut keyed: Vec<(String, &Identity)> =
            all.iter().map(|i| (i.field(field), *i)).collect();
        keyed.sort_by(|(a, x), (b, y)| {
            let o = a.cmp(b);
            if *desc { o.reverse() } else { o }.then_with(|| x.id.cmp(&y.id))
        });
        all = keyed.into_iter().map(|(_, i)| i).collect();
    }
    let total = all.len();
    let managers = s.managers();
    let page: Vec<Value> = all
        .into_iter()
        .skip(q.offset)
        .take(q.limit)
        .map(|i| i.json(&s.identities, &managers))
        .collect();
    let answer = Answer::new(200, Some(Value::Array(page)));
    if q.count {
        answer.header("X-Total-Count", total.to_string())
    } else {
        answer
    }
}
