//! A simulated SAP SuccessFactors company: the OData v2 `User` entity set of PLT User
//! Management on loopback, stateful, with server-side snapshot paging, throttling, fault
//! injection and a recording of every request.
//!
//! Built from SAP's published EDMX for the User Management API (`specs/successfactors/`,
//! reduced to the `User` properties and the `manager` navigation served; a test checks the
//! simulator's properties, navigation and filter/sort capabilities against it; the same
//! document is served at `GET /odata/v2/$metadata`) and SAP's OData v2 reference for the query
//! options (no machine-readable description exists for those).
//!
//! # Behaviour modelled
//! - `GET /odata/v2/User`: `$select` (properties of the description, `manager/<property>`),
//!   `$expand=manager`, `$filter` (a strict grammar: see `filter.rs`; without a `status`
//!   term only active users are answered, as SuccessFactors does), `$orderby`
//!   (`lastModifiedDateTime`, `userId`, `asc`/`desc`; default `userId`), `$top`, `$skip`,
//!   `$format=json`, `$inlinecount=allpages`, `customPageSize` (1 to 1000; default 1000),
//!   `paging=snapshot|cursor`, `$skiptoken`. A listing longer than a page gets `d.__next`,
//!   a link with a `$skiptoken` into a snapshot of the matching keys taken at the first page
//!   (the records themselves are read when each page is served; a purged user is skipped).
//!   An unknown option, property or skiptoken is a 400.
//! - `GET /odata/v2/User('<userId>')` (`''` for a quote): the user whatever their status,
//!   `$select`/`$expand`/`$format` as above; 404 when there is no such user.
//! - `GET /odata/v2/EmpEmployment` (Employee Central's employment records, from the
//!   Employment Information EDMX): `$filter=userId eq '<id>'`, `$select` (`personIdExternal`,
//!   `userId`, `startDate`, `endDate`), `$top`, `$format=json`; a user's employments oldest
//!   first, `endDate` set by a termination ([`SuccessFactorsTenant::terminate`]), a rehire
//!   adding one.
//! - Answers in OData v2 JSON: `{"d": {"results": [...], "__next": ...}}` and `{"d": {...}}`,
//!   each entity with `__metadata`; `lastModifiedDateTime` as `/Date(<ms>+0000)/`, moved to
//!   now by every change of the user. Errors as `{"error": {"code", "message": {"lang",
//!   "value"}}}`.
//! - Authentication: HTTP basic `<username>@<companyId>:<password>` only; anything else 401.
//!   Other methods: 405.
//! - Throttling: an optional per-minute budget answered 429 with `Retry-After`; faults: the
//!   next N requests failing with a chosen status ([`SuccessFactorsTenant::fail_next`]).
//!
//! # Example
//! ```
//! use offboard_testkit::sim::successfactors::{NewUser, SuccessFactorsTenant};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let company = SuccessFactorsTenant::start().await;
//! company.add_user(NewUser::new("u1", "ada@example.com", "Ada", "Lovelace"));
//! assert_eq!(company.status_of("u1").as_deref(), Some("t"));
//! # }
//! ```

mod filter;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::NaiveDate;
use serde_json::{Map, Value, json};
use wiremock::{MockServer, Request, ResponseTemplate};

use super::layer::{self, Answer, Handler, Layer, Refusal, layer_controls};
pub use super::layer::{Faults, RecordedRequest};
use filter::Term;

/// The reduced EDMX served at `$metadata`.
const METADATA: &str =
    include_str!("../../specs/successfactors/PLTUserManagement.offboarding.edmx");
/// Statuses a listing answers without a `status` term (the active ones).
const ACTIVE: [&str; 4] = ["t", "T", "e", "active"];
/// Snapshots kept for `$skiptoken`s.
const SNAPSHOTS: usize = 16;

/// A user to add with [`SuccessFactorsTenant::add_user`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// `userId`.
    pub user_id: String,
    /// `username`.
    pub username: String,
    /// `email`.
    pub email: String,
    /// `firstName`.
    pub first_name: String,
    /// `lastName`.
    pub last_name: String,
    /// `empId`.
    pub emp_id: Option<String>,
    /// The manager's `userId`.
    pub manager: Option<String>,
}

impl NewUser {
    /// A user with these id, email and names; `username` the email's local part.
    pub fn new(user_id: &str, email: &str, first: &str, last: &str) -> Self {
        Self {
            user_id: user_id.into(),
            username: email.split('@').next().unwrap_or(email).into(),
            email: email.into(),
            first_name: first.into(),
            last_name: last.into(),
            emp_id: None,
            manager: None,
        }
    }
}

#[derive(Debug, Clone)]
struct User {
    new: NewUser,
    status: String,
    modified: i64,
}

/// One `EmpEmployment` of a user: hired `start`, terminated `end`.
#[derive(Debug, Clone)]
struct Employment {
    start: NaiveDate,
    end: Option<NaiveDate>,
}

#[derive(Debug, Default)]
struct State {
    users: BTreeMap<String, User>,
    /// Per user id, their employments (Employee Central), oldest first.
    employments: BTreeMap<String, Vec<Employment>>,
    /// Snapshots of listings: (id, keys in order), newest last.
    snapshots: VecDeque<(u64, Arc<Vec<String>>)>,
    next_snapshot: u64,
    last_modified: i64,
    layer: Layer,
    /// The server's base URL, for `__next` links and `__metadata`.
    base: String,
}

impl State {
    /// Now in milliseconds, never earlier than the last modification.
    fn touch(&mut self) -> i64 {
        let now = chrono::Utc::now()
            .timestamp_millis()
            .max(self.last_modified);
        self.last_modified = now;
        now
    }
}

#[derive(Debug)]
struct Shared {
    company: String,
    username: String,
    password: String,
    state: Mutex<State>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        layer::lock(&self.state)
    }
}

/// The simulated SuccessFactors company. See the [module docs](self).
#[derive(Debug)]
pub struct SuccessFactorsTenant {
    server: MockServer,
    shared: Arc<Shared>,
}

/// SuccessFactors' OData error answer.
fn error(status: u16, code: &str, message: &str) -> Answer {
    Answer::new(
        status,
        Some(json!({"error": {"code": code, "message": {"lang": "en-US", "value": message}}})),
    )
}

fn bad(message: &str) -> Answer {
    error(400, "COE_GENERAL_BAD_REQUEST", message)
}

impl SuccessFactorsTenant {
    /// Every `User` property served, as the description names them.
    pub const PROPERTIES: [&'static str; 9] = [
        "userId",
        "username",
        "email",
        "firstName",
        "lastName",
        "defaultFullName",
        "empId",
        "status",
        "lastModifiedDateTime",
    ];
    /// The navigation properties served (expandable).
    pub const NAVIGATIONS: [&'static str; 1] = ["manager"];
    /// Properties a `$filter` may name.
    pub const FILTERABLE: [&'static str; 4] =
        ["lastModifiedDateTime", "status", "userId", "username"];
    /// Properties an `$orderby` may name.
    pub const SORTABLE: [&'static str; 2] = ["lastModifiedDateTime", "userId"];
    /// Every status value SuccessFactors documents.
    pub const STATUSES: [&'static str; 10] = [
        "t",
        "f",
        "T",
        "F",
        "e",
        "d",
        "active",
        "inactive",
        "active_external",
        "inactive_external",
    ];
    /// Every `EmpEmployment` property served.
    pub const EMPLOYMENT_PROPERTIES: [&'static str; 4] =
        ["personIdExternal", "userId", "startDate", "endDate"];
    /// The largest `customPageSize`.
    pub const MAX_PAGE_SIZE: usize = 1000;

    /// Starts a company with a random id, API user and password.
    pub async fn start() -> Self {
        let hex = uuid::Uuid::new_v4().simple().to_string();
        let shared = Arc::new(Shared {
            company: format!("SFCPART{}", &hex[..6].to_uppercase()),
            username: "sfapi".into(),
            password: format!("sim-pw-{}", &hex[6..]),
            state: Mutex::new(State { ..State::default() }),
        });
        let server = MockServer::start().await;
        layer::serve(&server, Arc::clone(&shared)).await;
        shared.state().base = server.uri();
        Self { server, shared }
    }

    /// The API server's base URL (`http://127.0.0.1:<port>`).
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// The company id.
    pub fn company(&self) -> &str {
        &self.shared.company
    }

    /// The API user's name (without `@company`).
    pub fn username(&self) -> &str {
        &self.shared.username
    }

    /// The API user's password.
    pub fn password(&self) -> &str {
        &self.shared.password
    }

    /// Adds an active user (`t`), modified now. Replaces a user with the same id.
    pub fn add_user(&self, new: NewUser) {
        let mut s = self.shared.state();
        let modified = s.touch();
        let start = chrono::Utc::now().date_naive();
        s.employments
            .insert(new.user_id.clone(), vec![Employment { start, end: None }]);
        s.users.insert(
            new.user_id.clone(),
            User {
                new,
                status: "t".into(),
                modified,
            },
        );
    }

    /// Sets a user's `status` (one of [`SuccessFactorsTenant::STATUSES`]), moving
    /// `lastModifiedDateTime`; `false` when there is no such user.
    ///
    /// Panics on a status SuccessFactors does not document.
    pub fn set_status(&self, id: &str, status: &str) -> bool {
        assert!(
            Self::STATUSES.contains(&status),
            "{status:?} is no SuccessFactors status"
        );
        self.set_raw_status(id, status)
    }

    /// As [`SuccessFactorsTenant::set_status`] with any value (a status SuccessFactors may add).
    pub fn set_raw_status(&self, id: &str, status: &str) -> bool {
        let mut s = self.shared.state();
        let modified = s.touch();
        let Some(u) = s.users.get_mut(id) else {
            return false;
        };
        u.status = status.into();
        u.modified = modified;
        true
    }

    /// Terminates a user as Employee Central records it: the employment ends `on`
    /// (`EmpEmployment.endDate`) and the user becomes inactive (`f`).
    pub fn terminate(&self, id: &str, on: NaiveDate) -> bool {
        if let Some(e) = self
            .shared
            .state()
            .employments
            .get_mut(id)
            .and_then(|e| e.last_mut())
        {
            e.end = Some(on);
        }
        self.set_status(id, "f")
    }

    /// Rehires a user: a new employment starting today, and the user active (`t`).
    pub fn rehire(&self, id: &str) -> bool {
        let start = chrono::Utc::now().date_naive();
        if let Some(e) = self.shared.state().employments.get_mut(id) {
            e.push(Employment { start, end: None });
        }
        self.set_status(id, "t")
    }

    /// Changes a user's email, moving `lastModifiedDateTime`.
    pub fn set_email(&self, id: &str, email: &str) -> bool {
        let mut s = self.shared.state();
        let modified = s.touch();
        let Some(u) = s.users.get_mut(id) else {
            return false;
        };
        u.new.email = email.into();
        u.modified = modified;
        true
    }

    /// Purges a user (data retention): the API no longer finds them.
    pub fn purge(&self, id: &str) -> bool {
        let mut s = self.shared.state();
        s.employments.remove(id);
        s.users.remove(id).is_some()
    }

    /// A user's `status`.
    pub fn status_of(&self, id: &str) -> Option<String> {
        self.shared.state().users.get(id).map(|u| u.status.clone())
    }

    layer_controls! {
        fail_next;
        set_faults;
        set_rate_limit(60, "minute");
        requests;
        clear_requests;
        served;
        rate_limited_count;
    }
}

/// SuccessFactors' throttling answer: a 429 waiting `retry_after` seconds.
fn too_many(retry_after: u64) -> Answer {
    error(429, "COE_TOO_MANY_REQUESTS", "Too many requests")
        .header("Retry-After", retry_after.to_string())
}

impl Handler for Shared {
    fn handle(&self, request: &Request) -> ResponseTemplate {
        let mut s = self.state();
        s.layer.receive(layer::record(request));
        let answer = self.answer(&mut s, request);
        let delay = s.layer.faults.delay(false);
        let template = if answer.status == 200 && request.url.path() == "/odata/v2/$metadata" {
            ResponseTemplate::new(200).set_body_raw(METADATA, "application/xml")
        } else {
            answer.template()
        };
        template.set_delay(delay)
    }
}

impl Shared {
    fn answer(&self, s: &mut State, request: &Request) -> Answer {
        match s.layer.injected() {
            // An injected throttling answer waits 30 s.
            Some(Refusal::Throttled { .. } | Refusal::Failed(429)) => return too_many(30),
            Some(Refusal::Failed(status)) => {
                return error(
                    status,
                    "COE_GENERAL_SERVER_FAILURE",
                    "An internal error occurred",
                );
            }
            None => {}
        }
        let login = format!("{}@{}", self.username, self.company);
        if layer::authorization(request) != layer::basic(&login, &self.password) {
            return error(401, "LGN0011", "Invalid user name or password");
        }
        if let Some(Refusal::Throttled { retry_after, .. }) = s.layer.over_budget() {
            return too_many(retry_after);
        }
        if request.method.as_str() != "GET" {
            return error(405, "COE_METHOD_NOT_ALLOWED", "Only reads are served");
        }
        let segs = layer::segments(request.url.path());
        match segs
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
        {
            ["odata", "v2", "$metadata"] => Answer::new(200, None),
            ["odata", "v2", "User"] => self.list(s, request),
            ["odata", "v2", "EmpEmployment"] => employments(s, request),
            ["odata", "v2", key] if key.starts_with("User(") => self.by_key(s, request, key),
            _ => error(404, "COE_ENTITY_NOT_FOUND", "No such entity set"),
        }
    }

    fn by_key(&self, s: &State, request: &Request, key: &str) -> Answer {
        let id = key
            .strip_prefix("User(")
            .and_then(|k| k.strip_suffix(')'))
            .and_then(|k| k.strip_prefix("userId=").or(Some(k)))
            .and_then(key_literal);
        let Some(id) = id else {
            return bad(&format!("Invalid key predicate: {key}"));
        };
        let options = match Options::parse(request, false) {
            Ok(o) => o,
            Err(e) => return e,
        };
        match s.users.get(&id) {
            Some(u) => Answer::new(200, Some(json!({"d": entity(&s.base, s, u, &options)}))),
            None => error(
                404,
                "COE_RESOURCE_NOT_FOUND",
                &format!("User with key userId={id} was not found"),
            ),
        }
    }

    fn list(&self, s: &mut State, request: &Request) -> Answer {
        let options = match Options::parse(request, true) {
            Ok(o) => o,
            Err(e) => return e,
        };
        let (keys, offset) = match &options.skiptoken {
            Some(token) => match resume(s, token) {
                Some(found) => found,
                None => return bad("The $skiptoken is invalid or expired"),
            },
            None => (snapshot(s, &options), 0),
        };
        let base = s.base.clone();
        let end = (offset + options.page).min(keys.len());
        let results: Vec<Value> = keys[offset..end]
            .iter()
            .filter_map(|id| s.users.get(id))
            .map(|u| entity(&base, s, u, &options))
            .collect();
        let mut d = Map::new();
        if options.count {
            d.insert("__count".into(), json!(keys.len().to_string()));
        }
        d.insert("results".into(), Value::Array(results));
        if end < keys.len() {
            let id = s.next_snapshot;
            s.next_snapshot += 1;
            s.snapshots.push_back((id, Arc::clone(&keys)));
            while s.snapshots.len() > SNAPSHOTS {
                s.snapshots.pop_front();
            }
            let mut next = url::Url::parse(&format!("{base}/odata/v2/User")).expect("a URL");
            {
                let mut q = next.query_pairs_mut();
                for (k, v) in request.url.query_pairs() {
                    if k != "$skiptoken" {
                        q.append_pair(&k, &v);
                    }
                }
                q.append_pair("$skiptoken", &format!("{id}-{end}"));
            }
            d.insert("__next".into(), json!(next.to_string()));
        }
        Answer::new(200, Some(json!({"d": d})))
    }
}

/// A key predicate's string literal (`'o''brien'`).
fn key_literal(k: &str) -> Option<String> {
    let inner = k.strip_prefix('\'')?.strip_suffix('\'')?;
    let mut out = String::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' && chars.next() != Some('\'') {
            return None;
        }
        out.push(c);
    }
    Some(out)
}

/// The keys of a `$skiptoken` (`<snapshot>-<offset>`) and where to continue.
fn resume(s: &State, token: &str) -> Option<(Arc<Vec<String>>, usize)> {
    let (id, offset) = token.split_once('-')?;
    let (id, offset): (u64, usize) = (id.parse().ok()?, offset.parse().ok()?);
    let keys = s.snapshots.iter().find(|(i, _)| *i == id)?.1.clone();
    (offset <= keys.len()).then_some((keys, offset))
}

/// The keys a listing answers, in its order, after `$skip` and `$top`.
fn snapshot(s: &State, o: &Options) -> Arc<Vec<String>> {
    let mut users: Vec<&User> = s
        .users
        .values()
        .filter(|u| {
            let by_status = o.filter.iter().any(|t| matches!(t, Term::Status(_)));
            (by_status || ACTIVE.contains(&u.status.as_str()))
                && o.filter.iter().all(|t| {
                    t.matches(u.modified, &u.status, |p| match p {
                        "userId" => u.new.user_id.clone(),
                        _ => u.new.username.clone(),
                    })
                })
        })
        .collect();
    users.sort_by(|a, b| {
        for (prop, asc) in &o.order {
            let c = match prop.as_str() {
                "lastModifiedDateTime" => a.modified.cmp(&b.modified),
                _ => a.new.user_id.cmp(&b.new.user_id),
            };
            let c = if *asc { c } else { c.reverse() };
            if c.is_ne() {
                return c;
            }
        }
        a.new.user_id.cmp(&b.new.user_id)
    });
    Arc::new(
        users
            .into_iter()
            .skip(o.skip)
            .take(o.top.unwrap_or(usize::MAX))
            .map(|u| u.new.user_id.clone())
            .collect(),
    )
}

/// A user as the answer shows them.
fn entity(base: &str, s: &State, u: &User, o: &Options) -> Value {
    let uri = |id: &str| format!("{base}/odata/v2/User('{}')", id.replace('\'', "''"));
    let n = &u.new;
    let value = |prop: &str, user: &User| -> Value {
        let n = &user.new;
        match prop {
            "userId" => json!(n.user_id),
            "username" => json!(n.username),
            "email" => json!(n.email),
            "firstName" => json!(n.first_name),
            "lastName" => json!(n.last_name),
            "defaultFullName" => json!(format!("{} {}", n.first_name, n.last_name)),
            "empId" => json!(n.emp_id),
            "status" => json!(user.status),
            _ => json!(format!("/Date({}+0000)/", user.modified)),
        }
    };
    let mut e = Map::new();
    e.insert(
        "__metadata".into(),
        json!({"uri": uri(&n.user_id), "type": "SFOData.User"}),
    );
    for prop in o.own_properties() {
        e.insert(prop.to_owned(), value(prop, u));
    }
    if o.expand {
        let manager = n.manager.as_ref().and_then(|m| s.users.get(m)).map(|m| {
            let mut me = Map::new();
            me.insert(
                "__metadata".into(),
                json!({"uri": uri(&m.new.user_id), "type": "SFOData.User"}),
            );
            for prop in o.manager_properties() {
                me.insert(prop.to_owned(), value(prop, m));
            }
            Value::Object(me)
        });
        e.insert("manager".into(), manager.unwrap_or(Value::Null));
    }
    Value::Object(e)
}

/// The query options of a read, validated.
#[derive(Debug, Default)]
struct Options {
    select: Vec<String>,
    expand: bool,
    filter: Vec<Term>,
    order: Vec<(String, bool)>,
    top: Option<usize>,
    skip: usize,
    page: usize,
    count: bool,
    skiptoken: Option<String>,
}

impl Options {
    fn own_properties(&self) -> Vec<&str> {
        let own: Vec<&str> = self
            .select
            .iter()
            .filter(|p| !p.contains('/'))
            .map(String::as_str)
            .collect();
        if self.select.is_empty() {
            SuccessFactorsTenant::PROPERTIES.to_vec()
        } else {
            own
        }
    }

    fn manager_properties(&self) -> Vec<&str> {
        let nested: Vec<&str> = self
            .select
            .iter()
            .filter_map(|p| p.strip_prefix("manager/"))
            .collect();
        if nested.is_empty() {
            SuccessFactorsTenant::PROPERTIES.to_vec()
        } else {
            nested
        }
    }

    fn parse(request: &Request, listing: bool) -> Result<Self, Answer> {
        Self::parse_for(request, listing, &SuccessFactorsTenant::PROPERTIES, true)
    }

    fn parse_for(
        request: &Request,
        listing: bool,
        props: &[&str],
        navigable: bool,
    ) -> Result<Self, Answer> {
        let mut o = Self {
            page: SuccessFactorsTenant::MAX_PAGE_SIZE,
            ..Self::default()
        };
        let number = |k: &str, v: &str| {
            v.parse::<usize>()
                .map_err(|_| bad(&format!("Invalid value for {k}: {v}")))
        };
        for (k, v) in request.url.query_pairs() {
            let (k, v) = (k.as_ref(), v.as_ref());
            match (k, listing) {
                ("$select", _) => o.select = select(v, props)?,
                ("$expand", _) => match v {
                    "manager" if navigable => o.expand = true,
                    _ => return Err(bad(&format!("Invalid navigation property in $expand: {v}"))),
                },
                ("$format", _) => {
                    if v != "json" {
                        return Err(bad(&format!("Unsupported $format: {v}")));
                    }
                }
                ("$filter", true) => {
                    o.filter = filter::parse(v)
                        .ok_or_else(|| bad(&format!("Invalid $filter expression: {v}")))?;
                }
                ("$orderby", true) => o.order = order(v)?,
                ("$top", true) => o.top = Some(number(k, v)?),
                ("$skip", true) => o.skip = number(k, v)?,
                ("$inlinecount", true) => match v {
                    "allpages" => o.count = true,
                    "none" => o.count = false,
                    _ => return Err(bad(&format!("Invalid $inlinecount: {v}"))),
                },
                ("customPageSize", true) => match number(k, v)? {
                    n @ 1..=1000 => o.page = n,
                    _ => return Err(bad("customPageSize must be between 1 and 1000")),
                },
                ("paging", true) => {
                    if !matches!(v, "snapshot" | "cursor") {
                        return Err(bad(&format!("Invalid paging: {v}")));
                    }
                }
                ("$skiptoken", true) => o.skiptoken = Some(v.to_owned()),
                _ => return Err(bad(&format!("Unsupported query option: {k}"))),
            }
        }
        if !o.expand && o.select.iter().any(|p| p.contains('/')) {
            return Err(bad("A navigation property is selected but not expanded"));
        }
        Ok(o)
    }
}

fn select(v: &str, props: &[&str]) -> Result<Vec<String>, Answer> {
    v.split(',')
        .map(|p| {
            let p = p.trim();
            let known = |q: &str| props.contains(&q);
            let ok = match p.split_once('/') {
                Some((nav, q)) => SuccessFactorsTenant::NAVIGATIONS.contains(&nav) && known(q),
                None => known(p),
            };
            if ok {
                Ok(p.to_owned())
            } else {
                Err(error(
                    400,
                    "COE_PROPERTY_NOT_FOUND",
                    &format!("Invalid property names: User/{p}"),
                ))
            }
        })
        .collect()
}

fn order(v: &str) -> Result<Vec<(String, bool)>, Answer> {
    v.split(',')
        .map(|part| {
            let mut words = part.split(' ');
            let prop = words.next().unwrap_or("");
            let asc = match words.next() {
                None | Some("asc") => true,
                Some("desc") => false,
                Some(_) => return Err(bad(&format!("Invalid $orderby: {v}"))),
            };
            if words.next().is_some() || !SuccessFactorsTenant::SORTABLE.contains(&prop) {
                return Err(bad(&format!("Invalid $orderby: {v}")));
            }
            Ok((prop.to_owned(), asc))
        })
        .collect()
}

/// `GET /odata/v2/EmpEmployment`: only `userId eq '…'` filters (Employee Central's
/// employments of one user), `$select`, `$top`, `$format`.
fn employments(s: &State, request: &Request) -> Answer {
    let o = match Options::parse_for(
        request,
        true,
        &SuccessFactorsTenant::EMPLOYMENT_PROPERTIES,
        false,
    ) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let mut user = None;
    for term in &o.filter {
        match term {
            Term::Equals("userId", id) => user = Some(id.clone()),
            _ => return bad("Only userId can be filtered on EmpEmployment here"),
        }
    }
    if o.skiptoken.is_some() || !o.order.is_empty() {
        return bad("Paging and ordering of EmpEmployment are not served");
    }
    let date = |d: NaiveDate| {
        json!(format!(
            "/Date({})/",
            d.and_hms_opt(0, 0, 0)
                .map_or(0, |t| t.and_utc().timestamp_millis())
        ))
    };
    let mut results = Vec::new();
    for (id, list) in &s.employments {
        if user.as_ref().is_some_and(|u| u != id) {
            continue;
        }
        for e in list {
            let key = id.replace('\'', "''");
            let mut v = Map::new();
            v.insert(
                "__metadata".into(),
                json!({
                    "uri": format!("{}/odata/v2/EmpEmployment(personIdExternal='{key}',userId='{key}')", s.base),
                    "type": "SFOData.EmpEmployment",
                }),
            );
            let all = o.select.is_empty();
            let wants = |p: &str| all || o.select.iter().any(|q| q == p);
            for p in ["personIdExternal", "userId"] {
                if wants(p) {
                    v.insert(p.into(), json!(id));
                }
            }
            if wants("startDate") {
                v.insert("startDate".into(), date(e.start));
            }
            if wants("endDate") {
                v.insert("endDate".into(), e.end.map_or(Value::Null, date));
            }
            results.push(Value::Object(v));
        }
    }
    results.truncate(o.top.unwrap_or(usize::MAX));
    Answer::new(200, Some(json!({"d": {"results": results}})))
}

/// The `$metadata` document.
pub fn metadata() -> &'static str {
    METADATA
}
