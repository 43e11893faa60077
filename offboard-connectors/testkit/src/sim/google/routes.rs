//! The Directory API methods of the simulated tenant: routing and handlers over the shared
//! state.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::services;
use super::{Group, State, User, error_body, invalid, not_found};

pub(super) type Reply = (u16, Option<Value>);

pub(super) fn err((status, body): (u16, Value)) -> Reply {
    (status, Some(body))
}

pub(super) fn route(
    s: &mut State,
    method: &str,
    segs: &[&str],
    query: &BTreeMap<String, String>,
    body: Option<&Value>,
) -> Reply {
    match segs {
        ["admin", "directory", "v1", rest @ ..] => directory(s, method, rest, query, body),
        ["admin", "datatransfer", "v1", rest @ ..] => {
            services::datatransfer(s, method, rest, query, body)
        }
        ["apps", "licensing", "v1", rest @ ..] => services::licensing(s, method, rest, body),
        _ => err(not_found("path")),
    }
}

fn directory(
    s: &mut State,
    method: &str,
    rest: &[&str],
    query: &BTreeMap<String, String>,
    body: Option<&Value>,
) -> Reply {
    match (method, rest) {
        (_, ["customer", customer, "devices", "mobile", rest @ ..]) => {
            if !services::is_customer(customer) {
                return err(not_found("customerId"));
            }
            services::devices(s, method, rest, query, body)
        }
        ("GET", ["groups"]) => list_groups(s, query),
        ("GET", ["users"]) => list_users(s, query),
        (_, ["groups", group_key, "members", rest @ ..]) => {
            let Some(gid) = s.group_id(group_key) else {
                return err(not_found("groupKey"));
            };
            members(s, method, &gid, rest, body)
        }
        (_, ["users", user_key, rest @ ..]) => {
            let Some(id) = s.user_id(user_key) else {
                return err(not_found("userKey"));
            };
            user(s, method, &id, rest, body)
        }
        _ => err(not_found("method")),
    }
}

fn user_json(u: &User) -> Value {
    json!({
        "kind": "admin#directory#user",
        "id": u.id,
        "etag": format!("\"sim-{}\"", u.id),
        "primaryEmail": u.primary_email,
        "name": {"givenName": "Sim", "familyName": "User", "fullName": "Sim User"},
        "isAdmin": u.is_admin,
        "isDelegatedAdmin": false,
        "lastLoginTime": "1970-01-01T00:00:00.000Z",
        "creationTime": u.created,
        "agreedToTerms": true,
        "suspended": u.suspended,
        "archived": u.archived,
        "changePasswordAtNextLogin": u.change_password_at_next_login,
        "ipWhitelisted": false,
        "emails": [{"address": u.primary_email, "primary": true}],
        "aliases": u.aliases,
        "nonEditableAliases": [],
        "customerId": super::CUSTOMER_ID,
        "orgUnitPath": u.org_unit_path,
        "isMailboxSetup": true,
        "isEnrolledIn2Sv": true,
        "isEnforcedIn2Sv": false,
        "includeInGlobalAddressList": u.include_in_gal,
    })
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    let mut v = json!({"kind": kind, "etag": "\"sim\""});
    // Google leaves `items` out of an empty list.
    if !items.is_empty() {
        v["items"] = Value::Array(items);
    }
    v
}

fn user(s: &mut State, method: &str, id: &str, rest: &[&str], body: Option<&Value>) -> Reply {
    match (method, rest) {
        ("GET", []) => (200, Some(user_json(&s.users[id]))),
        ("PATCH", []) => patch_user(s, id, body),
        ("DELETE", []) => {
            s.delete_user(id);
            (204, None)
        }
        ("POST", ["signOut"]) => {
            if let Some(u) = s.users.get_mut(id) {
                u.sessions = 0;
            }
            (204, None)
        }
        ("GET", ["tokens"]) => {
            let u = &s.users[id];
            let items = u
                .tokens
                .iter()
                .map(|t| {
                    json!({
                        "kind": "admin#directory#token",
                        "etag": "\"sim\"",
                        "clientId": t.client_id,
                        "displayText": t.display_text,
                        "anonymous": false,
                        "nativeApp": false,
                        "userKey": u.id,
                        "scopes": ["openid", "https://www.googleapis.com/auth/userinfo.email"],
                    })
                })
                .collect();
            (200, Some(list("admin#directory#tokenList", items)))
        }
        ("DELETE", ["tokens", client_id]) => {
            let Some(u) = s.users.get_mut(id) else {
                return err(not_found("userKey"));
            };
            let before = u.tokens.len();
            u.tokens.retain(|t| t.client_id != *client_id);
            if u.tokens.len() == before {
                return err(not_found("clientId"));
            }
            (204, None)
        }
        ("GET", ["asps"]) => {
            let u = &s.users[id];
            let items = u
                .asps
                .iter()
                .map(|(code, name)| {
                    json!({
                        "kind": "admin#directory#asp",
                        "etag": "\"sim\"",
                        "codeId": code,
                        "name": name,
                        "creationTime": "1700000000000",
                        "lastTimeUsed": "0",
                        "userKey": u.id,
                    })
                })
                .collect();
            (200, Some(list("admin#directory#aspList", items)))
        }
        ("DELETE", ["asps", code]) => {
            let Ok(code) = code.parse::<i64>() else {
                return err(invalid("Invalid value for codeId"));
            };
            let Some(u) = s.users.get_mut(id) else {
                return err(not_found("userKey"));
            };
            let before = u.asps.len();
            u.asps.retain(|(c, _)| *c != code);
            if u.asps.len() == before {
                return err(not_found("codeId"));
            }
            (204, None)
        }
        ("GET", ["verificationCodes"]) => {
            let u = &s.users[id];
            let items = u
                .backup_codes
                .iter()
                .map(|c| {
                    json!({
                        "kind": "admin#directory#verificationCode",
                        "etag": "\"sim\"",
                        "userId": u.id,
                        "verificationCode": c,
                    })
                })
                .collect();
            (
                200,
                Some(list("admin#directory#verificationCodesList", items)),
            )
        }
        ("POST", ["verificationCodes", "invalidate"]) => match s.users.get_mut(id) {
            // Google refuses backup-code changes of a suspended user with a bare 400.
            Some(u) if u.suspended => err(invalid("Invalid Input")),
            Some(u) => {
                u.backup_codes.clear();
                (204, None)
            }
            None => err(not_found("userKey")),
        },
        _ => err(not_found("method")),
    }
}

fn patch_user(s: &mut State, id: &str, body: Option<&Value>) -> Reply {
    let Some(body) = body.and_then(Value::as_object) else {
        return err(invalid("Invalid Input: body"));
    };
    if let Some(ou) = body.get("orgUnitPath") {
        match ou.as_str() {
            Some(p) if s.org_units.contains(p) => {}
            _ => return err(invalid("Invalid Input: INVALID_OU_ID")),
        }
    }
    let flag = |key: &str| -> Result<Option<bool>, Reply> {
        match body.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(err(invalid(&format!("Invalid value for {key}")))),
        }
    };
    let (suspended, archived, gal, change) = match (
        flag("suspended"),
        flag("archived"),
        flag("includeInGlobalAddressList"),
        flag("changePasswordAtNextLogin"),
    ) {
        (Ok(a), Ok(b), Ok(c), Ok(d)) => (a, b, c, d),
        (Err(e), ..) | (_, Err(e), ..) | (_, _, Err(e), _) | (.., Err(e)) => return e,
    };
    let hashed = match body.get("hashFunction") {
        None => false,
        Some(Value::String(f)) if matches!(f.as_str(), "MD5" | "SHA-1" | "crypt") => true,
        Some(_) => return err(invalid("Invalid Input: hashFunction")),
    };
    let password = match body.get("password") {
        None => None,
        // Google: 8 to 100 ASCII characters (a hash is taken as given).
        Some(Value::String(p)) if hashed || ((8..=100).contains(&p.len()) && p.is_ascii()) => {
            Some(p)
        }
        Some(_) => return err(invalid("Invalid Password")),
    };
    let Some(u) = s.users.get_mut(id) else {
        return err(not_found("userKey"));
    };
    if let Some(p) = body.get("orgUnitPath").and_then(Value::as_str) {
        u.org_unit_path = p.to_owned();
    }
    if let Some(v) = suspended {
        u.suspended = v;
    }
    if let Some(v) = archived {
        u.archived = v;
    }
    if let Some(v) = gal {
        u.include_in_gal = v;
    }
    if password.is_some() {
        u.password_resets += 1;
    }
    if let Some(v) = change {
        u.change_password_at_next_login = v;
    }
    (200, Some(user_json(u)))
}

/// The paging parameters of a list method: (`maxResults` within `1..=max` defaulting to
/// `default`, the offset the simulator's `pageToken` stands for).
pub(super) fn paging(
    query: &BTreeMap<String, String>,
    default: usize,
    max: usize,
) -> Result<(usize, usize), Reply> {
    let size = match query.get("maxResults").map(|m| m.parse::<usize>()) {
        None => default,
        Some(Ok(n)) if (1..=max).contains(&n) => n,
        Some(_) => return Err(err(invalid("Invalid value for maxResults"))),
    };
    let start = match query.get("pageToken").map(|t| t.parse::<usize>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return Err(err(invalid("Invalid value for pageToken"))),
    };
    Ok((size, start))
}

/// One page of `all` under `key`, with `nextPageToken` when more follow; `items` is left out
/// when the page is empty, as Google does.
pub(super) fn page(kind: &str, key: &str, all: Vec<Value>, size: usize, start: usize) -> Value {
    let total = all.len();
    let items: Vec<Value> = all.into_iter().skip(start).take(size).collect();
    let mut v = json!({"kind": kind, "etag": "\"sim\""});
    if !items.is_empty() {
        v[key] = Value::Array(items);
    }
    if start + size < total {
        v["nextPageToken"] = Value::String((start + size).to_string());
    }
    v
}

/// One term of a `users.list` `query`: a field, and the value it must have.
enum UserTerm {
    /// `email:` / `email=`: primary address or alias; a trailing `*` makes it a prefix.
    Email(String),
    /// `isSuspended=`.
    Suspended(bool),
    /// `isAdmin=`.
    Admin(bool),
    /// `orgUnitPath=`: the unit or any unit below it.
    OrgUnit(String),
}

impl UserTerm {
    /// Parses a query of space-separated `field:value` / `field=value` terms (values may be
    /// single-quoted, with `\'` inside quotes); any other field is a 400, as the real API
    /// refuses fields it does not know.
    fn parse(query: &str) -> Result<Vec<Self>, Reply> {
        let bad = || err(invalid("Invalid Input: query"));
        let mut terms = Vec::new();
        let mut rest = query.trim_start();
        while !rest.is_empty() {
            let op = rest.find([':', '=']).ok_or_else(bad)?;
            let field = &rest[..op];
            rest = &rest[op + 1..];
            let mut value = String::new();
            if let Some(quoted) = rest.strip_prefix('\'') {
                let mut chars = quoted.char_indices();
                let mut end = None;
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => value.extend(chars.next().map(|(_, c)| c)),
                        '\'' => {
                            end = Some(i + 1);
                            break;
                        }
                        c => value.push(c),
                    }
                }
                rest = &quoted[end.ok_or_else(bad)?..];
            } else {
                let end = rest.find(' ').unwrap_or(rest.len());
                value.push_str(&rest[..end]);
                rest = &rest[end..];
            }
            if !rest.is_empty() && !rest.starts_with(' ') {
                return Err(bad());
            }
            rest = rest.trim_start();
            let flag = |v: &str| match v {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(bad()),
            };
            terms.push(match field {
                "email" => Self::Email(value),
                "isSuspended" => Self::Suspended(flag(&value)?),
                "isAdmin" => Self::Admin(flag(&value)?),
                "orgUnitPath" => Self::OrgUnit(value),
                _ => return Err(bad()),
            });
        }
        Ok(terms)
    }

    fn matches(&self, u: &User) -> bool {
        match self {
            Self::Email(want) => std::iter::once(&u.primary_email)
                .chain(&u.aliases)
                .any(|have| match want.strip_suffix('*') {
                    Some(prefix) => have
                        .get(..prefix.len())
                        .is_some_and(|h| h.eq_ignore_ascii_case(prefix)),
                    None => have.eq_ignore_ascii_case(want),
                }),
            Self::Suspended(b) => u.suspended == *b,
            Self::Admin(b) => u.is_admin == *b,
            Self::OrgUnit(path) => {
                u.org_unit_path == *path
                    || path == "/"
                    || u.org_unit_path
                        .strip_prefix(path.as_str())
                        .is_some_and(|r| r.starts_with('/'))
            }
        }
    }
}

/// `directory.users.list`: `customer` (`my_customer` or the customer id) or `domain`;
/// `query`, `showDeleted` (only deleted users), `orderBy=email`, `maxResults` (1..=500,
/// default 100) and `pageToken`.
fn list_users(s: &State, query: &BTreeMap<String, String>) -> Reply {
    let domain = query.get("domain");
    match (query.get("customer").map(String::as_str), domain) {
        (Some(c), None) if services::is_customer(c) => {}
        (None, Some(_)) => {}
        (Some(_), None) => return err(not_found("customer")),
        _ => {
            return err(invalid(
                "Bad Request: give exactly one of customer and domain",
            ));
        }
    }
    let (size, start) = match paging(query, 100, 500) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let terms = match query.get("query").map(|q| UserTerm::parse(q)) {
        None => Vec::new(),
        Some(Ok(t)) => t,
        Some(Err(e)) => return e,
    };
    let deleted = match query.get("showDeleted").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return err(invalid("Invalid value for showDeleted")),
    };
    let mut users: Vec<&User> = if deleted { &s.deleted } else { &s.users }
        .values()
        .filter(|u| {
            domain.is_none_or(|d| {
                u.primary_email
                    .rsplit_once('@')
                    .is_some_and(|(_, dom)| dom.eq_ignore_ascii_case(d))
            })
        })
        .filter(|u| terms.iter().all(|t| t.matches(u)))
        .collect();
    match query.get("orderBy").map(String::as_str) {
        None => {}
        Some("email") => users.sort_by_key(|u| u.primary_email.to_ascii_lowercase()),
        Some(_) => return err(invalid("Invalid value for orderBy")),
    }
    if query.get("sortOrder").map(String::as_str) == Some("DESCENDING") {
        users.reverse();
    }
    let all = users.into_iter().map(user_json).collect();
    (
        200,
        Some(page("admin#directory#users", "users", all, size, start)),
    )
}

fn group_json(id: &str, g: &Group) -> Value {
    json!({
        "kind": "admin#directory#group",
        "id": id,
        "etag": "\"sim\"",
        "email": g.email,
        "name": g.name,
        "directMembersCount": g.members.len().to_string(),
        "description": "",
        "adminCreated": true,
    })
}

fn list_groups(s: &State, query: &BTreeMap<String, String>) -> Reply {
    let Some(user_key) = query.get("userKey") else {
        return err(invalid(
            "Bad Request: the simulator lists groups by userKey only",
        ));
    };
    if query.contains_key("customer") || query.contains_key("domain") {
        return err(invalid(
            "Bad Request: userKey and customer/domain are mutually exclusive",
        ));
    }
    let Some(uid) = s.user_id(user_key) else {
        return err(not_found("userKey"));
    };
    let (size, start) = match paging(query, 200, 200) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let all = s
        .groups
        .iter()
        .filter(|(_, g)| g.members.contains_key(&uid))
        .map(|(id, g)| group_json(id, g))
        .collect();
    (
        200,
        Some(page("admin#directory#groups", "groups", all, size, start)),
    )
}

fn member_json(s: &State, uid: &str, role: &str) -> Value {
    json!({
        "kind": "admin#directory#member",
        "etag": "\"sim\"",
        "id": uid,
        "email": s.users.get(uid).map(|u| u.primary_email.clone()).unwrap_or_default(),
        "role": role,
        "type": "USER",
        "status": "ACTIVE",
        "delivery_settings": "ALL_MAIL",
    })
}

fn members(s: &mut State, method: &str, gid: &str, rest: &[&str], body: Option<&Value>) -> Reply {
    match (method, rest) {
        ("POST", []) => {
            let Some(body) = body else {
                return err(invalid("Invalid Input: member"));
            };
            let key = body
                .get("email")
                .or_else(|| body.get("id"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            let role = body.get("role").and_then(Value::as_str).unwrap_or("MEMBER");
            if !matches!(role, "MEMBER" | "MANAGER" | "OWNER") {
                return err(invalid("Invalid Input: role"));
            }
            let Some(uid) = s.user_id(key) else {
                return err(not_found("memberKey"));
            };
            let group = s.groups.get_mut(gid).expect("resolved above");
            if group.members.contains_key(&uid) {
                return err((
                    409,
                    error_body(
                        409,
                        "Member already exists.",
                        "duplicate",
                        "global",
                        "ALREADY_EXISTS",
                    ),
                ));
            }
            group.members.insert(uid.clone(), role.to_owned());
            (200, Some(member_json(s, &uid, role)))
        }
        (verb @ ("GET" | "DELETE"), [member_key]) => {
            let Some(uid) = s.user_id(member_key) else {
                return err(not_found("memberKey"));
            };
            let group = s.groups.get_mut(gid).expect("resolved above");
            let Some(role) = group.members.get(&uid).cloned() else {
                return err(not_found("memberKey"));
            };
            if verb == "DELETE" {
                group.members.remove(&uid);
                return (204, None);
            }
            (200, Some(member_json(s, &uid, &role)))
        }
        _ => err(not_found("method")),
    }
}
