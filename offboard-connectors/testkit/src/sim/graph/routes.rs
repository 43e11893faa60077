//! The Graph operations of the simulated tenant: routing on (method, path segments) and the
//! handlers over the shared state.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::{AppRoleAssignment, State, User, error_body, filter, new_id, now_iso};

pub(super) mod calendar;
pub(super) mod devices;
pub(super) mod governance;
pub(super) mod roles;
pub(super) mod teams;
pub(super) mod workflows;

type Reply = (u16, Option<Value>);
type Query = BTreeMap<String, String>;

fn err(status: u16, code: &str, message: &str) -> Reply {
    (status, Some(error_body(code, message)))
}

fn not_found(what: &str) -> Reply {
    err(
        404,
        "Request_ResourceNotFound",
        &format!(
            "Resource '{what}' does not exist or one of its queried reference-property objects are not present."
        ),
    )
}

fn bad_request(message: &str) -> Reply {
    err(400, "Request_BadRequest", message)
}

pub(super) fn no_route() -> Reply {
    err(
        400,
        "BadRequest",
        "Resource not found for the segment, or the method is not supported for this resource.",
    )
}

/// Graph's 403 for an app lacking a permission.
pub(super) fn insufficient() -> Reply {
    err(
        403,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation.",
    )
}

/// The 403 Graph answers when the app's token lacks `permission`
/// ([`super::GraphTenant::withhold_permission`]), if it does.
fn denied(s: &State, permission: &str) -> Option<Reply> {
    s.withheld.contains(permission).then(insufficient)
}

/// The object id a `$ref` body (`{"@odata.id": "<base>/directoryObjects/{id}"}` or
/// `…/users/{id}`) names; a 400 for a missing or malformed reference or one under another
/// base URL.
fn reference(base: &str, body: Option<&Value>) -> Result<String, Reply> {
    let Some(target) = body
        .and_then(|b| b.get("@odata.id"))
        .and_then(Value::as_str)
    else {
        return Err(bad_request("The request body needs an '@odata.id'."));
    };
    ["directoryObjects", "users"]
        .iter()
        .find_map(|kind| {
            target
                .strip_prefix(&format!("{base}/{kind}/"))
                .filter(|m| !m.is_empty() && !m.contains('/'))
        })
        .map(str::to_owned)
        .ok_or_else(|| bad_request(&format!("Invalid object identifier '{target}'.")))
}

const SYNCED: &str = "Unable to update the specified properties for on-premises mastered Directory Sync objects or objects currently undergoing migration.";

/// The method kinds of the `authentication/{kind}Methods` paths, with their `@odata.type`.
const METHOD_TYPES: [(&str, &str); 8] = [
    ("password", "#microsoft.graph.passwordAuthenticationMethod"),
    ("phone", "#microsoft.graph.phoneAuthenticationMethod"),
    (
        "microsoftAuthenticator",
        "#microsoft.graph.microsoftAuthenticatorAuthenticationMethod",
    ),
    ("fido2", "#microsoft.graph.fido2AuthenticationMethod"),
    (
        "softwareOath",
        "#microsoft.graph.softwareOathAuthenticationMethod",
    ),
    ("email", "#microsoft.graph.emailAuthenticationMethod"),
    (
        "windowsHelloForBusiness",
        "#microsoft.graph.windowsHelloForBusinessAuthenticationMethod",
    ),
    (
        "temporaryAccessPass",
        "#microsoft.graph.temporaryAccessPassAuthenticationMethod",
    ),
];

const USER_DEFAULT: [&str; 11] = [
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
];

pub(super) fn route(
    s: &mut State,
    base: &str,
    method: &str,
    segs: &[&str],
    query: &Query,
    body: Option<Value>,
    eventual: bool,
) -> Reply {
    match (method, segs) {
        ("GET", ["users"]) => list_users(s, base, query, eventual),
        ("GET", ["users", "delta()"]) => users_delta(s, base, query),
        ("GET", ["subscribedSkus"]) => subscribed_skus(s, base, query),
        ("GET", ["oauth2PermissionGrants"]) => list_grants(s, base, query, None),
        ("DELETE", ["oauth2PermissionGrants", id]) => {
            if s.grants.remove(*id).is_none() {
                return not_found(id);
            }
            (204, None)
        }
        (_, ["users", key, rest @ ..]) => {
            let Some(id) = find_user(s, key) else {
                return not_found(key);
            };
            user_route(s, base, method, &id, rest, query, body)
        }
        (_, ["groups", gid, rest @ ..]) => group_route(s, base, method, gid, rest, query, body),
        (
            _,
            [
                kind @ ("applications" | "servicePrincipals"),
                oid,
                "owners",
                rest @ ..,
            ],
        ) => app_owners(s, base, method, kind, oid, rest, query, body.as_ref()),
        (_, ["drives", did, rest @ ..]) => drive_route(s, base, method, did, rest, query, body),
        (_, ["directory", "deletedItems", id, rest @ ..]) => deleted_route(s, method, id, rest),
        (_, ["devices", did, rest @ ..]) => {
            devices::device_route(s, method, did, rest, body.as_ref())
        }
        (
            _,
            [
                "identityGovernance",
                "lifecycleWorkflows",
                "workflows",
                rest @ ..,
            ],
        ) => workflows::route(s, base, method, rest, query, body.as_ref()),
        (_, ["directoryRoles", rest @ ..]) => {
            roles::directory_roles_route(s, base, method, rest, query)
        }
        (_, ["roleManagement", "directory", rest @ ..]) => {
            roles::role_management_route(s, base, method, rest, query, body.as_ref())
        }
        (_, ["deviceManagement", "managedDevices", mid, rest @ ..]) => {
            devices::managed_route(s, method, mid, rest, body.as_ref())
        }
        (_, ["teams", team, rest @ ..]) => teams::route(s, base, method, team, rest, query),
        (_, ["identityGovernance", "entitlementManagement", rest @ ..]) => {
            governance::route(s, base, method, rest, query, body.as_ref())
        }
        _ => no_route(),
    }
}

/// The id of the active (not soft-deleted) user with this id or UPN.
fn find_user(s: &State, key: &str) -> Option<String> {
    s.users
        .values()
        .find(|u| u.deleted_at.is_none() && (u.id == key || u.upn.eq_ignore_ascii_case(key)))
        .map(|u| u.id.clone())
}

fn user_full(s: &State, u: &User) -> Value {
    let mut states = Vec::new();
    for sku in &u.licenses {
        states.push(json!({"skuId": sku, "assignedByGroup": null, "state": "Active", "error": "None", "disabledPlans": []}));
    }
    let mut assigned: BTreeSet<&String> = u.licenses.iter().collect();
    for (gid, g) in &s.groups {
        if g.members.contains(&u.id) {
            for sku in &g.licenses {
                assigned.insert(sku);
                states.push(json!({"skuId": sku, "assignedByGroup": gid, "state": "Active", "error": "None", "disabledPlans": []}));
            }
        }
    }
    json!({
        "id": u.id,
        "userPrincipalName": u.upn,
        "mail": u.mail,
        "displayName": u.display_name,
        "givenName": "Sim",
        "surname": "User",
        "jobTitle": null,
        "businessPhones": [],
        "mobilePhone": null,
        "officeLocation": null,
        "preferredLanguage": "en-US",
        "accountEnabled": u.account_enabled,
        "onPremisesSyncEnabled": if u.on_premises_sync { json!(true) } else { Value::Null },
        "onPremisesImmutableId": u.immutable_id,
        "usageLocation": u.usage_location,
        "employeeId": u.employee_id,
        "proxyAddresses": u.proxy_addresses,
        "otherMails": u.other_mails,
        "signInSessionsValidFromDateTime": u.sessions_valid_from,
        "createdDateTime": u.created,
        "deletedDateTime": u.deleted_at.as_ref().map(|(_, t)| t.clone()),
        "assignedLicenses": assigned.iter().map(|s| json!({"skuId": s, "disabledPlans": []})).collect::<Vec<_>>(),
        "licenseAssignmentStates": states,
    })
}

/// Applies `$select` (or the default property set) to a user.
fn user_json(s: &State, u: &User, query: &Query) -> Result<Value, Reply> {
    let full = user_full(s, u);
    let wanted: Vec<String> = match query.get("$select") {
        Some(sel) => sel.split(',').map(|p| p.trim().to_owned()).collect(),
        None => USER_DEFAULT.iter().map(|p| (*p).to_owned()).collect(),
    };
    let mut out = serde_json::Map::new();
    for p in wanted {
        match full.get(&p) {
            Some(v) => {
                out.insert(p, v.clone());
            }
            None => {
                return Err(err(
                    400,
                    "BadRequest",
                    &format!(
                        "Could not find a property named '{p}' on type 'microsoft.graph.user'."
                    ),
                ));
            }
        }
    }
    if !out.contains_key("id") {
        out.insert("id".into(), json!(u.id));
    }
    Ok(Value::Object(out))
}

fn directory_user(u: &User) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.user",
        "id": u.id,
        "userPrincipalName": u.upn,
        "displayName": u.display_name,
        "mail": u.mail,
    })
}

/// The page size a collection request asks for (`$top`, at most 999), else the tenant's.
fn page_size(s: &State, query: &Query) -> usize {
    query
        .get("$top")
        .and_then(|t| t.parse::<usize>().ok())
        .filter(|t| *t > 0)
        .unwrap_or(s.page_size)
        .min(999)
}

/// A page of `items` with `@odata.nextLink` when more remain (`$top`, `$skiptoken`).
fn page(s: &State, base: &str, path: &[&str], query: &Query, items: Vec<Value>) -> Reply {
    let size = page_size(s, query);
    let skip = query
        .get("$skiptoken")
        .and_then(|t| t.strip_prefix("sim-"))
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(0);
    let total = items.len();
    let value: Vec<Value> = items.into_iter().skip(skip).take(size).collect();
    let mut out = json!({
        "@odata.context": format!("{base}/$metadata#{}", path.join("/")),
        "value": value,
    });
    if skip + size < total
        && let Ok(mut url) = url::Url::parse(base)
    {
        if let Ok(mut p) = url.path_segments_mut() {
            p.extend(path);
        }
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in query {
                if k != "$skiptoken" && k != "$top" {
                    q.append_pair(k, v);
                }
            }
            q.append_pair("$top", &size.to_string());
            q.append_pair("$skiptoken", &format!("sim-{}", skip + size));
        }
        out["@odata.nextLink"] = json!(url.as_str());
    }
    (200, Some(out))
}

/// The operators of `filter` that only advanced queries serve (learn.microsoft.com/graph/
/// aad-advanced-queries: `ne`, `not` and `endsWith` need `ConsistencyLevel: eventual` and
/// `$count=true`), the first one found.
fn advanced_operator(filter: &str) -> Option<&'static str> {
    let lower = filter.to_ascii_lowercase();
    [(" ne ", "ne"), ("not(", "not"), ("endswith(", "endsWith")]
        .into_iter()
        .find(|(needle, _)| lower.contains(needle))
        .map(|(_, op)| op)
}

/// `GET /users`. `eventual`: the request carries `ConsistencyLevel: eventual`, which
/// advanced queries need (with `$count=true` for advanced `$filter` operators).
fn list_users(s: &State, base: &str, query: &Query, eventual: bool) -> Reply {
    let count = query.get("$count").map(String::as_str);
    if count.is_some() && !eventual {
        return err(
            400,
            "Request_BadRequest",
            "$count is not currently supported.",
        );
    }
    if query.contains_key("$search") {
        let why = if eventual {
            "The simulator does not model $search."
        } else {
            "Request with $search query parameter only works through MSGraph with a special request header: 'ConsistencyLevel: eventual'"
        };
        return err(400, "Request_UnsupportedQuery", why);
    }
    let advanced = eventual && count == Some("true");
    let terms = match query.get("$filter") {
        Some(f) => match filter::parse(
            f,
            &["userPrincipalName", "mail", "id"],
            &["proxyAddresses", "otherMails"],
        ) {
            Ok(t) => Some(t),
            Err(why) => {
                let why = match advanced_operator(f) {
                    Some(op) if !advanced => format!(
                        "Operator '{op}' is not supported because the 'ConsistencyLevel:eventual' header is missing. Refer to https://aka.ms/graph-docs/advanced-queries for more information"
                    ),
                    _ => why,
                };
                return err(400, "Request_UnsupportedQuery", &why);
            }
        },
        None => None,
    };
    let mut items = Vec::new();
    for u in s.users.values().filter(|u| u.deleted_at.is_none()) {
        let hit = terms.as_ref().is_none_or(|terms| {
            terms.iter().any(|t| {
                let fields: Vec<&str> = match t.prop.as_str() {
                    "userPrincipalName" => vec![u.upn.as_str()],
                    "mail" => u.mail.iter().map(String::as_str).collect(),
                    "proxyAddresses" => u.proxy_addresses.iter().map(String::as_str).collect(),
                    "otherMails" => u.other_mails.iter().map(String::as_str).collect(),
                    _ => vec![u.id.as_str()],
                };
                fields.iter().any(|f| f.eq_ignore_ascii_case(&t.value))
            })
        });
        if hit {
            match user_json(s, u, query) {
                Ok(v) => items.push(v),
                Err(e) => return e,
            }
        }
    }
    let total = items.len();
    let (status, mut out) = page(s, base, &["users"], query, items);
    if advanced && let Some(out) = out.as_mut() {
        out["@odata.count"] = json!(total);
    }
    (status, out)
}

/// The 410 Graph answers for a delta or skip token it no longer (or never) knew.
fn sync_state_not_found() -> Reply {
    err(
        410,
        "syncStateNotFound",
        "The sync state generation is not found. Start a new round without a token.",
    )
}

/// Where a `GET /users/delta()` page starts: the round's lower bound (`None`: the initial
/// round, everyone), the sequence number it was cut at, and the last id already served.
/// Tokens: `$deltatoken=sim-d{since}`, `$skiptoken=sim-d{since|i}.{upto}.{last-id}`.
fn delta_position(s: &State, query: &Query) -> Result<(Option<u64>, u64, String), Reply> {
    let number = |t: &str| t.parse::<u64>().ok();
    let (since, upto, last) = if let Some(t) = query.get("$deltatoken") {
        let since = t.strip_prefix("sim-d").and_then(number);
        (Some(since), s.delta.seq, String::new())
    } else if let Some(t) = query.get("$skiptoken") {
        let mut parts = t.strip_prefix("sim-d").unwrap_or_default().splitn(3, '.');
        let since = match parts.next() {
            Some("i") => None,
            Some(n) => Some(number(n)),
            None => Some(None),
        };
        let Some(upto) = parts.next().and_then(number) else {
            return Err(sync_state_not_found());
        };
        (since, upto, parts.next().unwrap_or_default().to_owned())
    } else {
        (None, s.delta.seq, String::new())
    };
    let since = match since {
        None => None,
        Some(Some(n)) => Some(n),
        Some(None) => return Err(sync_state_not_found()),
    };
    let known = |n: u64| n >= s.delta.floor && n <= s.delta.seq;
    if since.is_some_and(|n| !known(n)) || !known(upto) || since.is_some_and(|n| n > upto) {
        return Err(sync_state_not_found());
    }
    Ok((since, upto, last))
}

/// `GET /users/delta()`: without a token, the initial round (every user not deleted); with
/// `$deltatoken`, each user changed since the token once, in its latest state, soft-deleted
/// ones as `@removed: {"reason": "changed"}`, hard-deleted ones `"deleted"`. Pages of `$top`
/// (default: the tenant's page size) chained by `@odata.nextLink` (`$skiptoken`), the last
/// one carrying `@odata.deltaLink` (`$deltatoken`). Expired or unknown tokens: 410
/// `syncStateNotFound`. Needs User.Read.All.
fn users_delta(s: &State, base: &str, query: &Query) -> Reply {
    if let Some(e) = denied(s, "User.Read.All") {
        return e;
    }
    let (since, upto, last) = match delta_position(s, query) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let in_round = |n: u64| n <= upto && since.is_none_or(|since| n > since);
    let removed = |id: &str, reason: &str| json!({"@odata.type": "#microsoft.graph.user", "id": id, "@removed": {"reason": reason}});
    let mut items: BTreeMap<String, Value> = BTreeMap::new();
    for (id, n) in &s.delta.changed {
        let Some(u) = s.users.get(id).filter(|_| in_round(*n)) else {
            continue;
        };
        if u.deleted_at.is_some() {
            if since.is_some() {
                items.insert(id.clone(), removed(id, "changed"));
            }
            continue;
        }
        if since.is_some() && s.delta.partial {
            items.insert(id.clone(), json!({"id": id, "displayName": u.display_name}));
            continue;
        }
        match user_json(s, u, query) {
            Ok(v) => {
                items.insert(id.clone(), v);
            }
            Err(e) => return e,
        }
    }
    if since.is_some() {
        for (id, n) in &s.delta.purged {
            if in_round(*n) {
                items.insert(id.clone(), removed(id, "deleted"));
            }
        }
    }
    let size = page_size(s, query);
    let mut rest = items.into_iter().filter(|(id, _)| *id > last).peekable();
    let mut value = Vec::new();
    let mut last_served = String::new();
    while value.len() < size
        && let Some((id, v)) = rest.next()
    {
        value.push(v);
        last_served = id;
    }
    let (key, token) = if rest.peek().is_some() {
        let since = since.map_or_else(|| "i".to_owned(), |n| n.to_string());
        ("$skiptoken", format!("sim-d{since}.{upto}.{last_served}"))
    } else {
        ("$deltatoken", format!("sim-d{upto}"))
    };
    let mut url = format!("{base}/users/delta()");
    {
        let mut link = url::Url::parse(&url).expect("the base is a URL");
        {
            let mut q = link.query_pairs_mut();
            for (k, v) in query {
                if !matches!(k.as_str(), "$skiptoken" | "$deltatoken") {
                    q.append_pair(k, v);
                }
            }
            q.append_pair(key, &token);
        }
        url = link.into();
    }
    let link_name = if key == "$skiptoken" {
        "@odata.nextLink"
    } else {
        "@odata.deltaLink"
    };
    (
        200,
        Some(json!({
            "@odata.context": format!("{base}/$metadata#users"),
            "value": value,
            link_name: url,
        })),
    )
}

fn subscribed_skus(s: &State, base: &str, query: &Query) -> Reply {
    let items = s
        .skus
        .iter()
        .map(|(id, sku)| {
            json!({
                "id": format!("sim_{id}"),
                "skuId": id,
                "skuPartNumber": sku.part_number,
                "appliesTo": "User",
                "capabilityStatus": "Enabled",
                "consumedUnits": consumed(s, id),
                "prepaidUnits": {"enabled": sku.enabled, "suspended": 0, "warning": 0, "lockedOut": 0},
                "servicePlans": [],
            })
        })
        .collect();
    page(s, base, &["subscribedSkus"], query, items)
}

/// Users holding `sku` directly or through a group.
fn consumed(s: &State, sku: &str) -> usize {
    s.users
        .values()
        .filter(|u| {
            u.licenses.contains(sku)
                || s.groups
                    .values()
                    .any(|g| g.members.contains(&u.id) && g.licenses.iter().any(|l| l == sku))
        })
        .count()
}

fn grant_json(id: &str, g: &super::Grant) -> Value {
    json!({
        "id": id,
        "clientId": g.client,
        "consentType": g.consent_type,
        "principalId": g.principal,
        "resourceId": g.resource,
        "scope": g.scope,
    })
}

fn list_grants(s: &State, base: &str, query: &Query, user: Option<&str>) -> Reply {
    let terms = match query.get("$filter") {
        Some(f) => {
            match filter::parse(
                f,
                &["clientId", "principalId", "consentType", "resourceId"],
                &[],
            ) {
                Ok(t) => Some(t),
                Err(why) => return err(400, "Request_UnsupportedQuery", &why),
            }
        }
        None => None,
    };
    let items = s
        .grants
        .iter()
        .filter(|(_, g)| user.is_none_or(|u| g.principal.as_deref() == Some(u)))
        .filter(|(_, g)| {
            terms.as_ref().is_none_or(|terms| {
                terms.iter().any(|t| {
                    let field = match t.prop.as_str() {
                        "clientId" => Some(g.client.as_str()),
                        "principalId" => g.principal.as_deref(),
                        "consentType" => Some(g.consent_type.as_str()),
                        _ => Some(g.resource.as_str()),
                    };
                    field.is_some_and(|f| f.eq_ignore_ascii_case(&t.value))
                })
            })
        })
        .map(|(id, g)| grant_json(id, g))
        .collect();
    let path: Vec<&str> = match user {
        Some(u) => vec!["users", u, "oauth2PermissionGrants"],
        None => vec!["oauth2PermissionGrants"],
    };
    page(s, base, &path, query, items)
}

fn member_of(s: &State, id: &str) -> Vec<Value> {
    let mut out: Vec<Value> = s
        .groups
        .iter()
        .filter(|(_, g)| g.members.contains(id))
        .map(|(gid, g)| group_json(gid, g))
        .collect();
    out.extend(s.roles.member_of(id));
    out
}

fn group_types(g: &super::Group) -> Value {
    let mut types = Vec::new();
    if g.unified {
        types.push("Unified");
    }
    if g.dynamic {
        types.push("DynamicMembership");
    }
    json!(types)
}

fn group_json(gid: &str, g: &super::Group) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.group",
        "id": gid,
        "displayName": g.display_name,
        "groupTypes": group_types(g),
        "membershipRule": if g.dynamic { json!("user.department -eq \"Sim\"") } else { Value::Null },
        "membershipRuleProcessingState": if g.dynamic { json!("On") } else { Value::Null },
        "onPremisesSyncEnabled": if g.on_premises_sync { json!(true) } else { Value::Null },
        "mailEnabled": g.mail_enabled,
        "mail": if g.mail_enabled {
            json!(format!("{}@sim.example", g.display_name.to_ascii_lowercase().replace(' ', "-")))
        } else {
            Value::Null
        },
        "securityEnabled": g.security_enabled,
        "isAssignableToRole": g.role_assignable,
        "assignedLicenses": g.licenses.iter().map(|s| json!({"skuId": s, "disabledPlans": []})).collect::<Vec<_>>(),
    })
}

fn user_route(
    s: &mut State,
    base: &str,
    method: &str,
    id: &str,
    rest: &[&str],
    query: &Query,
    body: Option<Value>,
) -> Reply {
    fn path<'a>(id: &'a str, tail: &'a str) -> [&'a str; 3] {
        ["users", id, tail]
    }
    match (method, rest) {
        ("GET", []) => {
            let u = &s.users[id];
            match user_json(s, u, query) {
                Ok(v) => (200, Some(v)),
                Err(e) => e,
            }
        }
        ("PATCH", []) => patch_user(s, id, body),
        ("DELETE", []) => {
            if let Some(u) = s.users.get_mut(id) {
                u.deleted_at = Some((std::time::Instant::now(), now_iso()));
            }
            s.touch(id);
            (204, None)
        }
        ("GET", ["manager"]) => {
            let manager = s.users[id].manager.clone();
            match manager.and_then(|m| s.users.get(&m).filter(|m| m.deleted_at.is_none())) {
                Some(m) => (200, Some(directory_user(m))),
                None => not_found("manager"),
            }
        }
        (_, ["manager", "$ref"]) => manager_ref(s, base, method, id, body.as_ref()),
        ("POST", ["revokeSignInSessions"]) => {
            if let Some(u) = s.users.get_mut(id) {
                u.sessions_valid_from = now_iso();
                u.revocations += 1;
            }
            (
                200,
                Some(
                    json!({"@odata.context": format!("{base}/$metadata#Edm.Boolean"), "value": true}),
                ),
            )
        }
        ("POST", ["assignLicense"]) => assign_license(s, id, body, query),
        ("GET", ["licenseDetails"]) => {
            let full = user_full(s, &s.users[id]);
            let items = full["assignedLicenses"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|l| {
                    let sku = l["skuId"].as_str().unwrap_or_default().to_owned();
                    json!({
                        "id": format!("sim_{sku}"),
                        "skuId": sku,
                        "skuPartNumber": s.skus.get(&sku).map(|k| k.part_number.clone()),
                        "servicePlans": [],
                    })
                })
                .collect();
            page(s, base, &path(id, "licenseDetails"), query, items)
        }
        ("GET", [rel @ ("memberOf" | "transitiveMemberOf")]) => {
            let items = member_of(s, id);
            page(s, base, &path(id, rel), query, items)
        }
        ("GET", ["ownedObjects"]) => {
            let mut items: Vec<Value> = s
                .groups
                .iter()
                .filter(|(_, g)| g.owners.contains(id))
                .map(|(gid, g)| group_json(gid, g))
                .collect();
            items.extend(
                s.applications
                    .iter()
                    .filter(|(_, a)| a.owners.contains(id))
                    .map(|(aid, a)| {
                        json!({
                            "@odata.type": "#microsoft.graph.application",
                            "id": aid,
                            "appId": a.app_id,
                            "displayName": a.display_name,
                        })
                    }),
            );
            items.extend(
                s.sp_owners
                    .iter()
                    .filter(|(_, owners)| owners.contains(id))
                    .map(|(sid, _)| {
                        json!({
                            "@odata.type": "#microsoft.graph.servicePrincipal",
                            "id": sid,
                            "displayName": s.service_principals.get(sid),
                        })
                    }),
            );
            page(s, base, &path(id, "ownedObjects"), query, items)
        }
        ("GET", [rel @ ("ownedDevices" | "registeredDevices")]) => {
            devices::of_user(s, base, id, rel, query)
        }
        ("GET", ["managedDevices"]) => devices::managed_of_user(s, base, id, query),
        ("GET", ["joinedTeams"]) => teams::joined(s, base, id, query),
        (_, ["events", tail @ ..]) => {
            if s.users[id].mailbox.is_none() {
                return mailbox_not_enabled();
            }
            calendar::route(s, base, method, id, tail, query, body.as_ref())
        }
        ("GET", ["appRoleAssignments"]) => {
            let name = s.users[id].display_name.clone();
            let items = s
                .app_roles
                .iter()
                .filter(|(_, a)| a.principal == id)
                .map(|(aid, a)| app_role_json(s, aid, a, &name))
                .collect();
            page(s, base, &path(id, "appRoleAssignments"), query, items)
        }
        ("POST", ["appRoleAssignments"]) => {
            let body = body.unwrap_or_default();
            let field = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
            let (Some(principal), Some(resource), Some(app_role)) = (
                field("principalId"),
                field("resourceId"),
                field("appRoleId"),
            ) else {
                return bad_request("principalId, resourceId and appRoleId are required.");
            };
            if principal != id {
                return bad_request("The principalId does not match the user in the path.");
            }
            if !s.service_principals.contains_key(&resource) {
                return not_found(&resource);
            }
            if s.app_roles
                .values()
                .any(|a| a.principal == id && a.resource == resource && a.app_role == app_role)
            {
                return bad_request("Permission being assigned already exists on the object");
            }
            let aid = new_id();
            let a = AppRoleAssignment {
                principal,
                resource,
                app_role,
                created: now_iso(),
            };
            let name = s.users[id].display_name.clone();
            let json = app_role_json(s, &aid, &a, &name);
            s.app_roles.insert(aid, a);
            (201, Some(json))
        }
        ("DELETE", ["appRoleAssignments", aid]) => {
            if s.app_roles.get(*aid).is_none_or(|a| a.principal != id) {
                return not_found(aid);
            }
            s.app_roles.remove(*aid);
            (204, None)
        }
        ("GET", ["oauth2PermissionGrants"]) => list_grants(s, base, query, Some(id)),
        ("GET", ["authentication", "methods"]) => {
            let items = s.users[id]
                .auth_methods
                .iter()
                .map(|(mid, kind)| auth_method_json(mid, kind))
                .collect();
            let p = ["users", id, "authentication", "methods"];
            page(s, base, &p, query, items)
        }
        ("DELETE", ["authentication", path_kind, mid]) => {
            let Some(kind) = path_kind
                .strip_suffix("Methods")
                .filter(|k| *k != "password" && METHOD_TYPES.iter().any(|(m, _)| m == k))
            else {
                return no_route();
            };
            let Some(u) = s.users.get_mut(id) else {
                return not_found(id);
            };
            let before = u.auth_methods.len();
            u.auth_methods.retain(|(m, k)| !(m == mid && k == kind));
            if u.auth_methods.len() == before {
                return not_found(mid);
            }
            (204, None)
        }
        (_, ["mailboxSettings"]) => mailbox_settings(s, base, method, id, body),
        (_, ["mailFolders", folder, "messageRules", tail @ ..]) => {
            message_rules(s, base, method, id, folder, tail, body)
        }
        ("GET", ["drive"]) => {
            let u = &s.users[id];
            match u
                .drive
                .as_ref()
                .and_then(|d| s.drives.get(d).map(|dr| (d, dr)))
            {
                Some((did, _)) => (
                    200,
                    Some(json!({
                        "id": did,
                        "driveType": "business",
                        "name": "OneDrive",
                        "webUrl": format!("https://sim-my.sharepoint.test/personal/{}/Documents", u.upn.replace(['@', '.'], "_")),
                        "owner": {"user": {"id": u.id, "displayName": u.display_name, "email": u.upn}},
                    })),
                ),
                None => err(404, "ResourceNotFound", "User's mysite not found."),
            }
        }
        _ => no_route(),
    }
}

/// `PUT` / `DELETE /users/{id}/manager/$ref`.
fn manager_ref(s: &mut State, base: &str, method: &str, id: &str, body: Option<&Value>) -> Reply {
    if let Some(e) = denied(s, "User.ReadWrite.All") {
        return e;
    }
    let new = match method {
        "PUT" => match reference(base, body) {
            Ok(m) => match find_user(s, &m) {
                Some(m) => Some(m),
                None => return not_found(&m),
            },
            Err(e) => return e,
        },
        "DELETE" => {
            if s.users[id]
                .manager
                .as_ref()
                .and_then(|m| find_user(s, m))
                .is_none()
            {
                return not_found("manager");
            }
            None
        }
        _ => return no_route(),
    };
    let Some(u) = s.users.get_mut(id) else {
        return not_found(id);
    };
    if u.on_premises_sync {
        return bad_request(SYNCED);
    }
    u.manager = new;
    (204, None)
}

fn app_role_json(s: &State, aid: &str, a: &AppRoleAssignment, principal_name: &str) -> Value {
    json!({
        "id": aid,
        "appRoleId": a.app_role,
        "createdDateTime": a.created,
        "deletedDateTime": null,
        "principalDisplayName": principal_name,
        "principalId": a.principal,
        "principalType": "User",
        "resourceDisplayName": s.service_principals.get(&a.resource),
        "resourceId": a.resource,
    })
}

fn auth_method_json(mid: &str, kind: &str) -> Value {
    let odata = METHOD_TYPES
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, t)| *t)
        .unwrap_or("#microsoft.graph.authenticationMethod");
    let mut v = json!({"@odata.type": odata, "id": mid, "createdDateTime": "2024-01-01T00:00:00Z"});
    match kind {
        "password" => v["password"] = Value::Null,
        "phone" => {
            v["phoneNumber"] = json!("+1 2065550100");
            v["phoneType"] = json!("mobile");
            v["smsSignInState"] = json!("notAllowedByPolicy");
        }
        "email" => v["emailAddress"] = json!("private@example.net"),
        _ => v["displayName"] = json!(format!("sim {kind}")),
    }
    v
}

fn patch_user(s: &mut State, id: &str, body: Option<Value>) -> Reply {
    if let Some(e) = denied(s, "User.ReadWrite.All") {
        return e;
    }
    let Some(body) = body.as_ref().and_then(Value::as_object).cloned() else {
        return bad_request("A JSON object body is required.");
    };
    let Some(u) = s.users.get_mut(id) else {
        return not_found(id);
    };
    for (k, v) in &body {
        match (k.as_str(), v) {
            ("accountEnabled", Value::Bool(b)) => {
                if u.on_premises_sync && *b != u.account_enabled {
                    return bad_request(SYNCED);
                }
            }
            ("onPremisesImmutableId", Value::String(_) | Value::Null) => {
                if u.on_premises_sync {
                    return bad_request(SYNCED);
                }
            }
            ("usageLocation", Value::String(_) | Value::Null)
            | ("displayName", Value::String(_)) => {}
            _ => {
                return bad_request(&format!(
                    "Invalid value specified for property '{k}' of resource 'User'."
                ));
            }
        }
    }
    for (k, v) in body {
        match k.as_str() {
            "accountEnabled" => u.account_enabled = v.as_bool().unwrap_or(u.account_enabled),
            "usageLocation" => u.usage_location = v.as_str().map(str::to_owned),
            "onPremisesImmutableId" => u.immutable_id = v.as_str().map(str::to_owned),
            "displayName" => u.display_name = v.as_str().unwrap_or_default().to_owned(),
            _ => {}
        }
    }
    s.touch(id);
    (204, None)
}

fn assign_license(s: &mut State, id: &str, body: Option<Value>, query: &Query) -> Reply {
    let body = body.unwrap_or_default();
    let (Some(add), Some(remove)) = (
        body.get("addLicenses").and_then(Value::as_array).cloned(),
        body.get("removeLicenses")
            .and_then(Value::as_array)
            .cloned(),
    ) else {
        return bad_request(
            "Invalid value specified for property 'addLicenses' or 'removeLicenses': both are required.",
        );
    };
    let inherited: BTreeSet<String> = s
        .groups
        .values()
        .filter(|g| g.members.contains(id))
        .flat_map(|g| g.licenses.iter().cloned())
        .collect();
    let u = &s.users[id];
    let mut removes = Vec::new();
    for r in &remove {
        let Some(sku) = r.as_str() else {
            return bad_request("removeLicenses holds SKU ids.");
        };
        if !u.licenses.contains(sku) {
            if inherited.contains(sku) {
                return bad_request(
                    "User license is inherited from a group membership and it cannot be removed directly from the user.",
                );
            }
            return bad_request("User does not have a corresponding license.");
        }
        removes.push(sku.to_owned());
    }
    let mut adds = Vec::new();
    for a in &add {
        let Some(sku) = a.get("skuId").and_then(Value::as_str) else {
            return bad_request("addLicenses items need a skuId.");
        };
        let Some(info) = s.skus.get(sku) else {
            return bad_request(&format!(
                "License {sku} does not correspond to a valid company License."
            ));
        };
        if u.usage_location.is_none() {
            return bad_request(
                "License assignment cannot be done for user with invalid usage location.",
            );
        }
        if !u.licenses.contains(sku) && consumed(s, sku) >= info.enabled as usize {
            return bad_request(&format!(
                "Subscription {sku} does not have any available licenses."
            ));
        }
        adds.push(sku.to_owned());
    }
    if let Some(u) = s.users.get_mut(id) {
        for r in removes {
            u.licenses.remove(&r);
        }
        u.licenses.extend(adds);
    }
    match user_json(s, &s.users[id], query) {
        Ok(v) => (200, Some(v)),
        Err(e) => e,
    }
}

fn mailbox_not_enabled() -> Reply {
    err(
        404,
        "MailboxNotEnabledForRESTAPI",
        "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
    )
}

fn mailbox_settings(
    s: &mut State,
    base: &str,
    method: &str,
    id: &str,
    body: Option<Value>,
) -> Reply {
    let Some(mb) = s.users.get_mut(id).and_then(|u| u.mailbox.as_mut()) else {
        return mailbox_not_enabled();
    };
    if method == "PATCH" {
        let Some(patch) = body.as_ref().and_then(Value::as_object) else {
            return err(
                400,
                "ErrorInvalidRequest",
                "A JSON object body is required.",
            );
        };
        for (k, v) in patch {
            if k != "automaticRepliesSetting" && k != "@odata.context" {
                return err(
                    400,
                    "ErrorInvalidRequest",
                    &format!("The simulator does not change mailbox setting '{k}'."),
                );
            }
            let Some(fields) = v.as_object() else {
                return err(
                    400,
                    "ErrorInvalidRequest",
                    "automaticRepliesSetting must be an object.",
                );
            };
            for (f, val) in fields {
                let ok = match f.as_str() {
                    "status" => matches!(
                        val.as_str(),
                        Some("disabled" | "alwaysEnabled" | "scheduled")
                    ),
                    "externalAudience" => {
                        matches!(val.as_str(), Some("none" | "contactsOnly" | "all"))
                    }
                    "internalReplyMessage" | "externalReplyMessage" => val.is_string(),
                    "scheduledStartDateTime" | "scheduledEndDateTime" => val.is_object(),
                    _ => false,
                };
                if !ok {
                    return err(
                        400,
                        "ErrorInvalidRequest",
                        &format!("Invalid value for automaticRepliesSetting.{f}."),
                    );
                }
            }
            for (f, val) in fields {
                mb.automatic_replies[f] = match (f.as_str(), val.as_str()) {
                    ("internalReplyMessage" | "externalReplyMessage", Some(text)) => {
                        json!(exchange_html(text))
                    }
                    _ => val.clone(),
                };
            }
        }
    } else if method != "GET" {
        return no_route();
    }
    (
        200,
        Some(json!({
            "@odata.context": format!("{base}/$metadata#users('{id}')/mailboxSettings"),
            "archiveFolder": "AAMkSimArchive",
            "timeZone": "UTC",
            "automaticRepliesSetting": mb.automatic_replies,
            "language": {"locale": "en-US", "displayName": "English (United States)"},
            "delegateMeetingMessageDeliveryOptions": "sendToDelegateOnly",
            "userPurpose": "user",
        })),
    )
}

/// A reply message as Exchange Online stores it: plain text becomes an HTML document (its
/// `&`, `<`, `>`, `"` and `'` escaped, line breaks as `<br>`), as Graph's own example of
/// `GET …/mailboxSettings` shows; HTML and the empty message are kept as given.
fn exchange_html(text: &str) -> String {
    if text.is_empty() || text.trim_start().to_ascii_lowercase().starts_with("<html") {
        return text.to_owned();
    }
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
        .replace('\n', "<br>\n");
    format!("<html>\n<body>\n<p>{escaped}</p>\n</body>\n</html>\n")
}

fn message_rules(
    s: &mut State,
    base: &str,
    method: &str,
    id: &str,
    folder: &str,
    tail: &[&str],
    body: Option<Value>,
) -> Reply {
    if !folder.eq_ignore_ascii_case("inbox") {
        return err(
            404,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        );
    }
    let page_size = s.page_size;
    let Some(mb) = s.users.get_mut(id).and_then(|u| u.mailbox.as_mut()) else {
        return mailbox_not_enabled();
    };
    match (method, tail) {
        ("GET", []) => {
            let _ = page_size;
            (
                200,
                Some(json!({
                    "@odata.context": format!("{base}/$metadata#users('{id}')/mailFolders('inbox')/messageRules"),
                    "value": mb.rules,
                })),
            )
        }
        ("POST", []) => {
            let Some(b) = body.as_ref().and_then(Value::as_object) else {
                return err(
                    400,
                    "ErrorInvalidRequest",
                    "A JSON object body is required.",
                );
            };
            if !b.get("displayName").is_some_and(Value::is_string) {
                return err(400, "ErrorInvalidRequest", "displayName is required.");
            }
            if !b.get("sequence").is_some_and(Value::is_u64) {
                return err(
                    400,
                    "ErrorInvalidRequest",
                    "sequence is required (a positive integer).",
                );
            }
            let mut rule = json!({
                "id": format!("AQAAA{}=", uuid::Uuid::new_v4().simple()),
                "isEnabled": true,
                "hasError": false,
                "isReadOnly": false,
                "conditions": {},
                "actions": {},
                "exceptions": {},
            });
            for (k, v) in b {
                rule[k] = v.clone();
            }
            mb.rules.push(rule.clone());
            (201, Some(rule))
        }
        ("DELETE", [rid]) => {
            let before = mb.rules.len();
            mb.rules.retain(|r| r["id"].as_str() != Some(rid));
            if mb.rules.len() == before {
                return err(
                    404,
                    "ErrorItemNotFound",
                    "The specified object was not found in the store.",
                );
            }
            (204, None)
        }
        _ => no_route(),
    }
}

fn group_route(
    s: &mut State,
    base: &str,
    method: &str,
    gid: &str,
    rest: &[&str],
    query: &Query,
    body: Option<Value>,
) -> Reply {
    let Some(g) = s.groups.get(gid).cloned() else {
        return not_found(gid);
    };
    match (method, rest) {
        ("GET", []) => (200, Some(group_json(gid, &g))),
        ("GET", ["owners"]) => {
            let items = g
                .owners
                .iter()
                .filter_map(|o| s.users.get(o).filter(|u| u.deleted_at.is_none()))
                .map(directory_user)
                .collect();
            page(s, base, &["groups", gid, "owners"], query, items)
        }
        ("POST", ["members", "$ref"]) => {
            let member = match reference(base, body.as_ref()) {
                Ok(m) => m,
                Err(e) => return e,
            };
            if find_user(s, &member).is_none() {
                return not_found(&member);
            }
            if let Some(e) = unchangeable(&g, s.role_management) {
                return e;
            }
            if g.members.contains(&member) {
                return bad_request(
                    "One or more added object references already exist for the following modified properties: 'members'.",
                );
            }
            if let Some(g) = s.groups.get_mut(gid) {
                g.members.insert(member);
            }
            (204, None)
        }
        ("POST", ["owners", "$ref"]) => {
            if let Some(e) = denied(s, "Group.ReadWrite.All") {
                return e;
            }
            let owner = match owner_reference(s, base, body.as_ref(), &g.owners) {
                Ok(o) => o,
                Err(e) => return e,
            };
            if g.role_assignable && !s.role_management {
                return insufficient();
            }
            if let Some(g) = s.groups.get_mut(gid) {
                g.owners.insert(owner);
            }
            (204, None)
        }
        ("DELETE", [rel @ ("members" | "owners"), member, "$ref"]) => {
            if *rel == "owners" {
                if let Some(e) = denied(s, "Group.ReadWrite.All") {
                    return e;
                }
                if g.role_assignable && !s.role_management {
                    return insufficient();
                }
            }
            let set = if *rel == "members" {
                &g.members
            } else {
                &g.owners
            };
            if !set.contains(*member) {
                return not_found(member);
            }
            if *rel == "members" {
                if let Some(e) = unchangeable(&g, s.role_management) {
                    return e;
                }
            } else if g.owners.len() == 1 {
                return bad_request(
                    "The group must have at least one owner; the last owner cannot be removed.",
                );
            }
            if let Some(g) = s.groups.get_mut(gid) {
                if *rel == "members" {
                    g.members.remove(*member);
                } else {
                    g.owners.remove(*member);
                }
            }
            (204, None)
        }
        _ => no_route(),
    }
}

/// The user a `POST …/owners/$ref` body names, not yet in `owners`: a 400 for a bad
/// reference or one already an owner, a 404 for an unknown user.
fn owner_reference(
    s: &State,
    base: &str,
    body: Option<&Value>,
    owners: &BTreeSet<String>,
) -> Result<String, Reply> {
    let target = reference(base, body)?;
    let Some(owner) = find_user(s, &target) else {
        return Err(not_found(&target));
    };
    if owners.contains(&owner) {
        return Err(bad_request(
            "One or more added object references already exist for the following modified properties: 'owners'.",
        ));
    }
    Ok(owner)
}

/// `GET …/owners`, `POST …/owners/$ref` and `DELETE …/owners/{id}/$ref` of an application
/// (`kind` `applications`) or a service principal (`servicePrincipals`). Owners are users
/// (applications take nothing else); removing the last owner is allowed, as in Graph.
#[allow(clippy::too_many_arguments)]
fn app_owners(
    s: &mut State,
    base: &str,
    method: &str,
    kind: &str,
    oid: &str,
    rest: &[&str],
    query: &Query,
    body: Option<&Value>,
) -> Reply {
    let owners = if kind == "applications" {
        s.applications.get(oid).map(|a| a.owners.clone())
    } else {
        s.service_principals
            .contains_key(oid)
            .then(|| s.sp_owners.get(oid).cloned().unwrap_or_default())
    };
    let Some(owners) = owners else {
        return not_found(oid);
    };
    let permission = if method == "GET" {
        "Application.Read.All"
    } else {
        "Application.ReadWrite.All"
    };
    if let Some(e) = denied(s, permission) {
        return e;
    }
    let mut owners = owners;
    match (method, rest) {
        ("GET", []) => {
            let items = owners
                .iter()
                .filter_map(|o| s.users.get(o).filter(|u| u.deleted_at.is_none()))
                .map(directory_user)
                .collect();
            return page(s, base, &[kind, oid, "owners"], query, items);
        }
        ("POST", ["$ref"]) => match owner_reference(s, base, body, &owners) {
            Ok(o) => {
                owners.insert(o);
            }
            Err(e) => return e,
        },
        ("DELETE", [owner, "$ref"]) => {
            if !owners.remove(*owner) {
                return not_found(owner);
            }
        }
        _ => return no_route(),
    }
    if kind == "applications" {
        if let Some(a) = s.applications.get_mut(oid) {
            a.owners = owners;
        }
    } else {
        s.sp_owners.insert(oid.to_owned(), owners);
    }
    (204, None)
}

/// Why Graph refuses to change the members of `g`, if it does. `role_management`: the app
/// holds `RoleManagement.ReadWrite.Directory`.
///
/// Mail-enabled security groups and distribution lists are Exchange objects (api-specs
/// README §5 Graph, "Remove from group": not possible for them); changing the members of a
/// role-assignable group needs `RoleManagement.ReadWrite.Directory` (the spec's
/// `group.isAssignableToRole` description).
fn unchangeable(g: &super::Group, role_management: bool) -> Option<Reply> {
    if g.on_premises_sync {
        return Some(bad_request(SYNCED));
    }
    if g.dynamic {
        return Some(bad_request(
            "Insufficient privileges to complete the operation: the members of a group with dynamic membership are managed by its rule.",
        ));
    }
    if g.mail_enabled && !g.unified {
        return Some(bad_request(
            "Cannot Update a mail-enabled security groups and or distribution list.",
        ));
    }
    if g.role_assignable && !role_management {
        return Some(insufficient());
    }
    None
}

fn drive_route(
    s: &mut State,
    base: &str,
    method: &str,
    did: &str,
    rest: &[&str],
    query: &Query,
    body: Option<Value>,
) -> Reply {
    let Some(drive) = s.drives.get(did).cloned() else {
        return err(404, "itemNotFound", "The resource could not be found.");
    };
    let item = match rest {
        ["root", tail @ ..] => Some((drive.root.clone(), tail)),
        ["items", item, tail @ ..] if *item == drive.root => Some((drive.root.clone(), tail)),
        _ => None,
    };
    let Some((root, tail)) = item else {
        return err(404, "itemNotFound", "The resource could not be found.");
    };
    match (method, tail) {
        ("GET", []) if rest.first() == Some(&"root") => (
            200,
            Some(json!({
                "id": root,
                "name": "root",
                "root": {},
                "folder": {"childCount": 3},
                "parentReference": {"driveId": did, "driveType": "business"},
            })),
        ),
        ("GET", ["permissions"]) => {
            let mut path: Vec<&str> = vec!["drives", did];
            path.extend(rest.iter().take(rest.len() - 1));
            path.push("permissions");
            page(s, base, &path, query, drive.permissions.clone())
        }
        ("POST", ["invite"]) => {
            let body = body.unwrap_or_default();
            let recipients = body
                .get("recipients")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let roles = body
                .get("roles")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if recipients.is_empty() || roles.is_empty() {
                return err(400, "invalidRequest", "recipients and roles are required.");
            }
            if !roles
                .iter()
                .all(|r| matches!(r.as_str(), Some("read" | "write")))
            {
                return err(400, "invalidRequest", "roles must be 'read' or 'write'.");
            }
            let mut created = Vec::new();
            for r in &recipients {
                let Some(email) = r.get("email").and_then(Value::as_str) else {
                    return err(400, "invalidRequest", "each recipient needs an email.");
                };
                let user = s.users.values().find(|u| {
                    u.deleted_at.is_none()
                        && (u.upn.eq_ignore_ascii_case(email)
                            || u.mail
                                .as_deref()
                                .is_some_and(|m| m.eq_ignore_ascii_case(email)))
                });
                let granted = match user {
                    Some(u) => {
                        json!({"user": {"id": u.id, "displayName": u.display_name, "email": email}})
                    }
                    None => json!({"user": {"displayName": email, "email": email}}),
                };
                created.push(json!({
                    "id": format!("sim{}", uuid::Uuid::new_v4().simple()),
                    "roles": roles,
                    "grantedToV2": granted,
                    "grantedTo": granted,
                    "invitation": {"email": email, "signInRequired": body.get("requireSignIn").and_then(Value::as_bool).unwrap_or(true)},
                }));
            }
            if let Some(d) = s.drives.get_mut(did) {
                d.permissions.extend(created.iter().cloned());
            }
            (
                200,
                Some(
                    json!({"@odata.context": format!("{base}/$metadata#Collection(microsoft.graph.permission)"), "value": created}),
                ),
            )
        }
        _ => no_route(),
    }
}

fn deleted_route(s: &mut State, method: &str, id: &str, rest: &[&str]) -> Reply {
    let deleted = s.users.get(id).filter(|u| u.deleted_at.is_some()).cloned();
    let Some(u) = deleted else {
        return not_found(id);
    };
    match (method, rest) {
        ("GET", []) => {
            let mut v = user_full(s, &u);
            v["@odata.type"] = json!("#microsoft.graph.user");
            (200, Some(v))
        }
        ("DELETE", []) => {
            s.remove_user(id);
            (204, None)
        }
        ("POST", ["restore"]) => {
            if s.users
                .values()
                .any(|o| o.deleted_at.is_none() && o.upn.eq_ignore_ascii_case(&u.upn))
            {
                return bad_request(
                    "Another object with the same value for property userPrincipalName already exists.",
                );
            }
            if let Some(u) = s.users.get_mut(id) {
                u.deleted_at = None;
            }
            s.touch(id);
            let mut v = user_full(s, &s.users[id]);
            v["@odata.type"] = json!("#microsoft.graph.user");
            (200, Some(v))
        }
        _ => no_route(),
    }
}
