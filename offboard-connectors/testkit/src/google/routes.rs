//! The Directory API methods of the simulated tenant: routing and handlers over the shared
//! state.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Group, State, User, error_body, invalid, not_found};

type Reply = (u16, Option<Value>);

fn err((status, body): (u16, Value)) -> Reply {
    (status, Some(body))
}

pub(super) fn route(
    s: &mut State,
    method: &str,
    segs: &[&str],
    query: &BTreeMap<String, String>,
    body: Option<&Value>,
) -> Reply {
    let ["admin", "directory", "v1", rest @ ..] = segs else {
        return err(not_found("path"));
    };
    match (method, rest) {
        ("GET", ["groups"]) => list_groups(s, query),
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
        "isAdmin": false,
        "isDelegatedAdmin": false,
        "lastLoginTime": "1970-01-01T00:00:00.000Z",
        "creationTime": u.created,
        "agreedToTerms": true,
        "suspended": u.suspended,
        "archived": u.archived,
        "changePasswordAtNextLogin": false,
        "ipWhitelisted": false,
        "emails": [{"address": u.primary_email, "primary": true}],
        "aliases": u.aliases,
        "nonEditableAliases": [],
        "customerId": "C0sim0000",
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
            s.users.remove(id);
            for g in s.groups.values_mut() {
                g.members.remove(id);
            }
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
        ("POST", ["verificationCodes", "invalidate"]) => {
            if let Some(u) = s.users.get_mut(id) {
                u.backup_codes.clear();
            }
            (204, None)
        }
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
    let (suspended, archived, gal) = match (
        flag("suspended"),
        flag("archived"),
        flag("includeInGlobalAddressList"),
    ) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return e,
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
    (200, Some(user_json(u)))
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
    let max: usize = match query.get("maxResults").map(|m| m.parse::<usize>()) {
        None => 200,
        Some(Ok(n)) if (1..=200).contains(&n) => n,
        Some(_) => return err(invalid("Invalid value for maxResults")),
    };
    let start: usize = match query.get("pageToken").map(|t| t.parse::<usize>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return err(invalid("Invalid value for pageToken")),
    };
    let all: Vec<Value> = s
        .groups
        .iter()
        .filter(|(_, g)| g.members.contains_key(&uid))
        .map(|(id, g)| group_json(id, g))
        .collect();
    let page: Vec<Value> = all.iter().skip(start).take(max).cloned().collect();
    let mut v = json!({"kind": "admin#directory#groups", "etag": "\"sim\""});
    if !page.is_empty() {
        v["groups"] = Value::Array(page);
    }
    if start + max < all.len() {
        v["nextPageToken"] = Value::String((start + max).to_string());
    }
    (200, Some(v))
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
