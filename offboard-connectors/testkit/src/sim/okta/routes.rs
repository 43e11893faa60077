//! The Management API operations of the simulated tenant: routing and handlers over the
//! shared state.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::{App, GroupType, State, User, error_body, not_found, search, validation};

type Reply = (u16, Option<Value>);

fn err((status, body): (u16, Value)) -> Reply {
    (status, Some(body))
}

pub(super) fn route(
    s: &mut State,
    method: &str,
    segs: &[&str],
    query: &BTreeMap<String, String>,
) -> Reply {
    match (method, segs) {
        ("GET", ["api", "v1", "users"]) => list_users(s, query),
        ("GET", ["api", "v1", "users", id]) => match find_user(s, id) {
            Some(u) => (200, Some(user_json(u))),
            None => err(not_found(&format!("{id} (User)"))),
        },
        ("DELETE", ["api", "v1", "users", id]) => delete_user(s, id),
        ("POST", ["api", "v1", "users", id, "lifecycle", op]) => lifecycle(s, id, op),
        (_, ["api", "v1", "users", id, rest @ ..]) => {
            let id = (*id).to_owned();
            if !s.users.contains_key(&id) {
                return err(not_found(&format!("{id} (User)")));
            }
            user_sub(s, method, &id, rest, query)
        }
        (verb @ ("PUT" | "DELETE"), ["api", "v1", "groups", gid, "users", uid]) => {
            group_member(s, verb, gid, uid)
        }
        (verb @ ("GET" | "DELETE"), ["api", "v1", "apps", aid, "users", uid]) => {
            app_user(s, verb, aid, uid)
        }
        _ => err((
            404,
            error_body(
                "E0000022",
                "The endpoint does not support the provided HTTP method",
                &[],
            ),
        )),
    }
}

fn find_user<'a>(s: &'a State, id_or_login: &str) -> Option<&'a User> {
    s.users.get(id_or_login).or_else(|| {
        s.users
            .values()
            .find(|u| u.login.eq_ignore_ascii_case(id_or_login))
    })
}

fn user_json(u: &User) -> Value {
    json!({
        "id": u.id,
        "status": u.status,
        "created": u.created,
        "activated": null,
        "statusChanged": null,
        "lastLogin": null,
        "lastUpdated": u.last_updated,
        "passwordChanged": null,
        "type": {"id": "otySim000000000000000"},
        "transitioningToStatus": null,
        "profile": {
            "firstName": "Sim",
            "lastName": "User",
            "login": u.login,
            "email": u.email,
            "secondEmail": u.second_email,
            "managerId": u.manager_id,
        },
        "credentials": {"provider": {"type": "OKTA", "name": "OKTA"}},
        "_links": {"self": {"href": format!("/api/v1/users/{}", u.id)}},
    })
}

fn list_users(s: &mut State, query: &BTreeMap<String, String>) -> Reply {
    let invalid = |why: &str| {
        err((
            400,
            error_body("E0000031", "Invalid search criteria.", &[why]),
        ))
    };
    if query.contains_key("filter") || query.contains_key("q") {
        return invalid("the simulator supports only `search`");
    }
    let limit = match query.get("limit").map(|l| l.parse::<usize>()) {
        None => 200,
        Some(Ok(n)) if (1..=200).contains(&n) => n,
        Some(_) => return invalid("limit must be between 1 and 200"),
    };
    let mut users: Vec<&User> = match query.get("search") {
        None => s
            .users
            .values()
            .filter(|u| u.status != "DEPROVISIONED")
            .collect(),
        Some(expr) => match search::parse(expr) {
            Err(why) => return invalid(&why),
            Ok(terms) => s
                .users
                .values()
                .filter(|u| {
                    terms.iter().any(|t| {
                        let field = match t.attr {
                            search::Attr::Login => Some(u.login.as_str()),
                            search::Attr::Email => Some(u.email.as_str()),
                            search::Attr::SecondEmail => u.second_email.as_deref(),
                            search::Attr::Id => Some(u.id.as_str()),
                            search::Attr::Status => Some(u.status.as_str()),
                            search::Attr::LastUpdated => Some(u.last_updated.as_str()),
                        };
                        field.is_some_and(|f| t.matches(f))
                    })
                })
                .collect(),
        },
    };
    // Order: by id, or (search only) by `sortBy` then id; `after` is the last key returned.
    let by_last_updated = match (query.get("search"), query.get("sortBy").map(String::as_str)) {
        (Some(_), Some("lastUpdated")) => true,
        (Some(_), Some("id")) | (_, None) | (None, Some(_)) => false,
        (Some(_), Some(_)) => return invalid("the simulator sorts only by lastUpdated or id"),
    };
    let descending = by_last_updated && query.get("sortOrder").map(String::as_str) == Some("desc");
    let key = |u: &User| {
        if by_last_updated {
            format!("{}~{}", u.last_updated, u.id)
        } else {
            u.id.clone()
        }
    };
    users.sort_by_key(|u| key(u));
    if descending {
        users.reverse();
    }
    if let Some(after) = query.get("after") {
        users.retain(|u| {
            let k = key(u);
            if descending { k < *after } else { k > *after }
        });
    }
    let more = users.len() > limit;
    users.truncate(limit);
    let next_after = more.then(|| users.last().map(|u| key(u))).flatten();
    let page = Value::Array(users.into_iter().map(user_json).collect());
    s.next_after = next_after;
    (200, Some(page))
}

fn delete_user(s: &mut State, id: &str) -> Reply {
    let Some(u) = s.users.get_mut(id) else {
        return err(not_found(&format!("{id} (User)")));
    };
    if u.status == "DEPROVISIONED" {
        s.users.remove(id);
    } else {
        deactivate(u);
    }
    (204, None)
}

pub(super) fn deactivate(u: &mut User) {
    u.status = "DEPROVISIONED".into();
    u.last_updated = super::now_stamp();
    u.sessions = 0;
    u.tokens.clear();
    u.grants.clear();
    u.apps.clear();
}

/// The status a lifecycle operation moves a user in `status` to, or Okta's refusal.
///
/// Okta's spec (`okta-management.offboarding.yaml`, `UserLifecycle`): suspend "only on users
/// with an `ACTIVE` status"; unsuspend only from `SUSPENDED`; unlock "a user with a
/// `LOCKED_OUT` status" (to `ACTIVE`; the `ACTIVE` user blocked from unknown devices is not
/// modelled); deactivate "only on users that do not have a `DEPROVISIONED` status"; activate
/// "only on users with a `STAGED` or `DEPROVISIONED` status"; reset_factors leaves the status.
fn transition(status: &str, op: &str) -> Result<Option<&'static str>, Reply> {
    let refused = |cause: &str| Err(err(validation(op, cause)));
    match (op, status) {
        ("suspend", "ACTIVE") => Ok(Some("SUSPENDED")),
        ("suspend", _) => refused("Cannot suspend a user that is not active"),
        ("unsuspend", "SUSPENDED") => Ok(Some("ACTIVE")),
        ("unsuspend", _) => refused("Cannot unsuspend a user that is not suspended"),
        ("unlock", "LOCKED_OUT") => Ok(Some("ACTIVE")),
        ("unlock", _) => refused("Cannot unlock a user that is not locked out"),
        ("deactivate", "DEPROVISIONED") => {
            refused("Cannot deactivate a user that is already deprovisioned")
        }
        ("deactivate", _) => Ok(Some("DEPROVISIONED")),
        ("activate", "STAGED" | "DEPROVISIONED") => Ok(Some("ACTIVE")),
        ("activate", _) => Err(err((
            403,
            error_body(
                "E0000016",
                "Activation failed because the user is already active",
                &[],
            ),
        ))),
        ("reset_factors", _) => Ok(None),
        _ => Err(err(not_found("lifecycle operation"))),
    }
}

fn lifecycle(s: &mut State, id: &str, op: &str) -> Reply {
    let Some(u) = s.users.get_mut(id) else {
        return err(not_found(&format!("{id} (User)")));
    };
    match transition(&u.status, op) {
        Err(reply) => return reply,
        Ok(Some("DEPROVISIONED")) => deactivate(u),
        Ok(Some(to)) => {
            u.status = to.into();
            u.last_updated = super::now_stamp();
        }
        Ok(None) => u.factors.clear(),
    }
    (200, Some(json!({})))
}

fn user_sub(
    s: &mut State,
    method: &str,
    id: &str,
    rest: &[&str],
    query: &BTreeMap<String, String>,
) -> Reply {
    let groups = s.groups.clone();
    let apps = s.apps.clone();
    let group_roles = s.group_roles.clone();
    let Some(u) = s.users.get_mut(id) else {
        return err(not_found(&format!("{id} (User)")));
    };
    match (method, rest) {
        ("DELETE", ["sessions"]) => {
            u.sessions = 0;
            if query.get("oauthTokens").map(String::as_str) == Some("true") {
                u.tokens.clear();
            }
            (204, None)
        }
        ("GET", ["grants"]) => (
            200,
            Some(Value::Array(
                u.grants
                    .iter()
                    .map(|(gid, client, scope)| {
                        json!({
                            "id": gid, "clientId": client, "scopeId": scope, "status": "ACTIVE",
                            "userId": u.id, "source": "END_USER", "issuer": "https://sim.okta.test",
                            "_links": {"self": {"href": format!("/api/v1/users/{}/grants/{gid}", u.id)}},
                        })
                    })
                    .collect(),
            )),
        ),
        ("DELETE", ["grants"]) => {
            u.grants.clear();
            (204, None)
        }
        ("GET", ["clients"]) => {
            let clients: BTreeSet<&String> = u
                .tokens
                .iter()
                .map(|(_, c)| c)
                .chain(u.grants.iter().map(|(_, c, _)| c))
                .collect();
            (
                200,
                Some(Value::Array(
                    clients
                        .into_iter()
                        .map(|c| {
                            json!({
                                "client_id": c, "client_name": format!("Client {c}"),
                                "_links": {
                                    "self": {"href": format!("/oauth2/v1/clients/{c}")},
                                    "tokens": {"href": format!("/api/v1/users/{}/clients/{c}/tokens", u.id)},
                                    "grants": {"href": format!("/api/v1/users/{}/clients/{c}/grants", u.id)},
                                },
                            })
                        })
                        .collect(),
                )),
            )
        }
        ("GET", ["clients", client, "tokens"]) => (
            200,
            Some(Value::Array(
                u.tokens
                    .iter()
                    .filter(|(_, c)| c == client)
                    .map(|(tid, c)| {
                        json!({"id": tid, "clientId": c, "userId": u.id, "status": "ACTIVE",
                               "issuer": "https://sim.okta.test", "scopes": ["offline_access"]})
                    })
                    .collect(),
            )),
        ),
        ("DELETE", ["clients", client, "tokens"]) => {
            u.tokens.retain(|(_, c)| c != client);
            (204, None)
        }
        ("GET", ["factors"]) => (
            200,
            Some(Value::Array(
                u.factors
                    .iter()
                    .map(|(fid, t)| {
                        json!({"id": fid, "factorType": t, "provider": "OKTA", "vendorName": "OKTA",
                               "status": "ACTIVE", "profile": {}})
                    })
                    .collect(),
            )),
        ),
        ("DELETE", ["factors", fid]) => {
            let before = u.factors.len();
            u.factors.retain(|(f, _)| f != fid);
            if u.factors.len() == before {
                return err(not_found(&format!("{fid} (UserFactor)")));
            }
            (204, None)
        }
        ("GET", ["groups"]) => (
            200,
            Some(Value::Array(
                u.groups
                    .iter()
                    .filter_map(|gid| groups.get(gid).map(|g| (gid, g)))
                    .map(|(gid, g)| {
                        json!({
                            "id": gid, "type": g.kind.as_str(),
                            "profile": {"name": g.name, "description": null},
                            "objectClass": ["okta:user_group"],
                            "_links": {"self": {"href": format!("/api/v1/groups/{gid}")}},
                        })
                    })
                    .collect(),
            )),
        ),
        ("GET", ["appLinks"]) => {
            let links: Vec<Value> = if u.status == "DEPROVISIONED" {
                Vec::new()
            } else {
                assignments(u, &apps)
                    .into_keys()
                    .map(|aid| {
                        let a = &apps[&aid];
                        json!({
                            "id": format!("link{aid}"), "appInstanceId": aid, "appName": a.name,
                            "label": a.label, "appAssignmentId": format!("0ua{aid}"),
                            "credentialsSetup": false, "hidden": false, "sortOrder": 0,
                            "linkUrl": format!("https://sim.okta.test/home/{}/{aid}", a.name),
                            "logoUrl": "https://sim.okta.test/logo.png",
                        })
                    })
                    .collect()
            };
            (200, Some(Value::Array(links)))
        }
        // Roles assigned to the user, then those of their groups (`assignmentType: GROUP`,
        // `_links.assignee` the group), as in the spec's `StandardRolesListResponse`.
        ("GET", ["roles"]) => {
            let role = |rid: &str, t: &str, kind: &str, assignee: String| {
                json!({"id": rid, "type": t, "label": t, "status": "ACTIVE",
                       "assignmentType": kind, "_links": {"assignee": {"href": assignee}}})
            };
            let direct = u
                .roles
                .iter()
                .map(|(rid, t)| role(rid, t, "USER", format!("/api/v1/users/{}", u.id)));
            let inherited = u.groups.iter().flat_map(|gid| {
                group_roles.get(gid).into_iter().flatten().map(move |(rid, t)| {
                    role(rid, t, "GROUP", format!("/api/v1/groups/{gid}"))
                })
            });
            (200, Some(Value::Array(direct.chain(inherited).collect())))
        }
        // Only the user's own assignments: a group's assignment id is not one of them (404).
        ("DELETE", ["roles", rid]) => {
            let before = u.roles.len();
            u.roles.retain(|(r, _)| r != rid);
            if u.roles.len() == before {
                return err(not_found(&format!("{rid} (RoleAssignment)")));
            }
            (204, None)
        }
        _ => err((
            404,
            error_body(
                "E0000022",
                "The endpoint does not support the provided HTTP method",
                &[],
            ),
        )),
    }
}

/// The user's app assignments: app id → scope (`USER` wins over `GROUP`).
fn assignments(u: &User, apps: &BTreeMap<String, App>) -> BTreeMap<String, &'static str> {
    let mut out = BTreeMap::new();
    for (aid, a) in apps {
        if u.apps.contains(aid) {
            out.insert(aid.clone(), "USER");
        } else if a.groups.iter().any(|g| u.groups.contains(g)) {
            out.insert(aid.clone(), "GROUP");
        }
    }
    out
}

fn group_member(s: &mut State, verb: &str, gid: &str, uid: &str) -> Reply {
    let Some(group) = s.groups.get(gid).cloned() else {
        return err(not_found(&format!("{gid} (UserGroup)")));
    };
    let Some(u) = s.users.get_mut(uid) else {
        return err(not_found(&format!("{uid} (User)")));
    };
    if group.kind != GroupType::OktaGroup {
        return err(validation(
            "group membership",
            &format!(
                "Cannot modify the membership of a group of type {}",
                group.kind.as_str()
            ),
        ));
    }
    if verb == "PUT" {
        u.groups.insert(gid.to_owned());
    } else {
        u.groups.remove(gid);
    }
    (204, None)
}

fn app_user(s: &mut State, verb: &str, aid: &str, uid: &str) -> Reply {
    let apps = s.apps.clone();
    if !apps.contains_key(aid) {
        return err(not_found(&format!("{aid} (App)")));
    }
    let Some(u) = s.users.get_mut(uid) else {
        return err(not_found(&format!("{uid} (User)")));
    };
    let scope = assignments(u, &apps).get(aid).copied();
    let Some(scope) = scope.filter(|_| u.status != "DEPROVISIONED") else {
        return err(not_found(&format!("{uid} (AppUser)")));
    };
    if verb == "GET" {
        return (
            200,
            Some(json!({
                "id": u.id, "scope": scope, "status": "PROVISIONED", "syncState": "DISABLED",
                "credentials": {"userName": u.login}, "profile": {},
                "_links": {"app": {"href": format!("/api/v1/apps/{aid}")},
                           "user": {"href": format!("/api/v1/users/{}", u.id)}},
            })),
        );
    }
    if scope == "GROUP" {
        return err(validation(
            "unassign",
            "Cannot unassign a user from an app assigned through a group; remove the group membership",
        ));
    }
    u.apps.remove(aid);
    (204, None)
}
