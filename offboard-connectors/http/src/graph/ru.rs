//! Graph's identity resource units (RU): what one request costs against the per app + tenant
//! RU budget, so [`super::GraphClient`] can pace itself ahead instead of learning from 429s.
//!
//! The model is Microsoft's published one ("Identity and access service limits",
//! <https://learn.microsoft.com/graph/throttling-limits#identity-and-access-service-limits>,
//! vendored in the testkit as `specs/microsoft-graph/identity-resource-units.costs.txt`):
//! a base cost per method and path (1 unless listed), `$select` −1, `$expand` +1, `$top`
//! below 20 −1, never below 1; every request inside a `$batch` counted on its own.

use std::time::Duration;

use reqwest::Method;

use super::{GraphRequest, is_batch, percent_decode};

/// Graph's resource-unit budget per app registration and tenant for a small tenant (under
/// 50 users): 3,500 RU per 10 s. Medium tenants (50–500 users) get 5,000, large ones 8,000.
pub const DEFAULT_RESOURCE_UNIT_BUDGET: (u32, Duration) = (3_500, Duration::from_secs(10));

/// The resource units Graph charges for `request` against the identity RU budget.
///
/// # Behavior
/// - The base cost of the method and path: `GET users` (the list) 2; `GET
///   users/{id}/memberOf`, `transitiveMemberOf`, `ownedObjects`, `licenseDetails` and
///   `oauth2PermissionGrants` 2 (`me/…` as `users/{id}/…`); `GET oauth2PermissionGrants`
///   (and one grant), `applications`, `applications/{id}/extensionProperties` and
///   `servicePrincipals/{id}/appRoleAssignments` 2; `POST users/{id}/getMemberGroups` and
///   `getMemberObjects` 2; `GET subscribedSkus`, `contracts` and `groups/{id}/members` 3, `POST
///   directoryObjects/getByIds` and `getObjectsById` 3; `POST isMemberOf`,
///   `users/{id}/checkMemberGroups` and `checkMemberObjects` 4, `GET
///   domains/{id}/domainNameReferences` 4; `GET groups/{id}/transitiveMembers` 5; anything
///   else 1 (one user, any write).
/// - Then `$select` −1, `$expand` +1 and `$top` below 20 −1, and never less than 1.
/// - A `POST $batch` costs the sum of its inner requests (its body's `requests`, each `method`
///   and `url`); the batch call itself adds nothing.
/// - Outlook (`users/{id}/mailboxSettings`, `mailFolders`, `messages`, `events`, `calendar`)
///   and OneDrive (`drives/…`, `users/{id}/drive/…`) requests have budgets of their own and
///   cost 0 RU.
///
/// # Example
/// ```
/// use offboard_http::GraphRequest;
/// use offboard_http::graph::resource_units;
///
/// assert_eq!(resource_units(&GraphRequest::get(["users"])), 2);
/// assert_eq!(resource_units(&GraphRequest::get(["users"]).query("$select", "id")), 1);
/// assert_eq!(resource_units(&GraphRequest::get(["groups", "g-1", "members"])), 3);
/// assert_eq!(resource_units(&GraphRequest::delete(["users", "u-1"])), 1);
/// ```
pub fn resource_units(request: &GraphRequest) -> u32 {
    if is_batch(request) {
        let items = request
            .body
            .as_ref()
            .and_then(|b| b.get("requests"))
            .and_then(serde_json::Value::as_array);
        return items
            .into_iter()
            .flatten()
            .map(batch_item_units)
            .fold(0u32, u32::saturating_add);
    }
    let segments: Vec<&str> = request.segments.iter().map(String::as_str).collect();
    let keys = request.query.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    units(&request.method, &segments, keys)
}

/// One `$batch` item's cost, from its `method` and relative `url` (a path below the version
/// root, with its query); an item without them costs 1 (Graph answers it, and counts it).
fn batch_item_units(item: &serde_json::Value) -> u32 {
    let method = item
        .get("method")
        .and_then(serde_json::Value::as_str)
        .and_then(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok());
    let url = item.get("url").and_then(serde_json::Value::as_str);
    let (Some(method), Some(url)) = (method, url) else {
        return 1;
    };
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let query: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    units(
        &method,
        &segments,
        query.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    )
}

/// The cost model over decoded path segments and query pairs.
fn units<'a>(
    method: &Method,
    segments: &[&str],
    query: impl Iterator<Item = (&'a str, &'a str)>,
) -> u32 {
    // `me/…` costs what `users/{id}/…` does.
    let owned: Vec<&str>;
    let segments = match segments.split_first() {
        Some((&"me", rest)) => {
            owned = ["users", "me"]
                .into_iter()
                .chain(rest.iter().copied())
                .collect();
            &owned[..]
        }
        _ => segments,
    };
    if !identity(segments) {
        return 0;
    }
    let mut cost = i64::from(base_units(method, segments));
    for (key, value) in query {
        match key {
            "$select" => cost -= 1,
            "$expand" => cost += 1,
            "$top" if value.trim().parse::<u32>().is_ok_and(|top| top < 20) => cost -= 1,
            _ => {}
        }
    }
    u32::try_from(cost.max(1)).unwrap_or(1)
}

/// Whether the path belongs to the identity and access service (Outlook and OneDrive paths
/// have limits of their own).
fn identity(segments: &[&str]) -> bool {
    !matches!(
        segments,
        [
            "users",
            _,
            "mailboxSettings" | "mailFolders" | "messages" | "events" | "calendar" | "drive",
            ..
        ] | ["drives", ..]
    )
}

/// The published base cost of a method and path (1 when not listed).
fn base_units(method: &Method, segments: &[&str]) -> u32 {
    let get = *method == Method::GET;
    let post = *method == Method::POST;
    match segments {
        ["groups", _, "transitiveMembers"] if get => 5,
        ["domains", _, "domainNameReferences"] if get => 4,
        ["isMemberOf"] | ["users", _, "checkMemberGroups" | "checkMemberObjects"] if post => 4,
        ["subscribedSkus" | "contracts"] | ["groups", _, "members"] if get => 3,
        ["directoryObjects", "getByIds"] | ["getObjectsById"] if post => 3,
        ["users", _, "getMemberGroups" | "getMemberObjects"] if post => 2,
        ["users" | "applications" | "oauth2PermissionGrants"]
        | ["oauth2PermissionGrants", _]
        | ["applications", _, "extensionProperties"]
        | ["servicePrincipals", _, "appRoleAssignments"]
        | [
            "users",
            _,
            "memberOf"
            | "transitiveMemberOf"
            | "ownedObjects"
            | "licenseDetails"
            | "oauth2PermissionGrants",
        ] if get => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn get(path: &str) -> GraphRequest {
        GraphRequest::get(path.split('/'))
    }

    #[test]
    fn every_row_of_the_published_table_and_each_modifier() {
        let rows =
            offboard_testkit::specs::selection("microsoft-graph/identity-resource-units.costs.txt");
        assert!(rows.len() >= 20, "{rows:?}");
        for row in rows {
            let [method, path, cost] = row.split(' ').collect::<Vec<_>>()[..] else {
                panic!("{row}");
            };
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            let request = GraphRequest::new(method, path.replace("{id}", "x-1").split('/'));
            let cost: u32 = cost.parse().unwrap();
            let with = |k: &str, v: &str| resource_units(&request.clone().query(k, v));
            assert_eq!(resource_units(&request), cost, "{row}");
            assert_eq!(with("$select", "id"), (cost - 1).max(1), "{row}");
            assert_eq!(with("$expand", "manager"), cost + 1, "{row}");
            assert_eq!(with("$top", "19"), (cost - 1).max(1), "{row}");
            assert_eq!(with("$top", "20"), cost, "{row}");
            assert_eq!(with("$filter", "x eq 'y'"), cost, "{row}");
            let all = request
                .clone()
                .query("$select", "id")
                .query("$top", "5")
                .query("$expand", "manager");
            assert_eq!(resource_units(&all), (cost - 1).max(1), "{row}");
        }
    }

    #[test]
    fn list_users_one_user_relationships_and_writes() {
        assert_eq!(resource_units(&get("users")), 2);
        assert_eq!(resource_units(&get("users").query("$select", "id")), 1);
        assert_eq!(resource_units(&get("users").query("$top", "999")), 2);
        assert_eq!(
            resource_units(&get("users").query("$top", "10").query("$select", "id")),
            1,
            "never below 1"
        );
        assert_eq!(resource_units(&get("users/u-1")), 1);
        assert_eq!(resource_units(&get("users/u-1").query("$select", "id")), 1);
        assert_eq!(
            resource_units(&get("users/u-1").query("$expand", "manager")),
            2
        );
        assert_eq!(resource_units(&get("users/u-1/memberOf")), 2);
        assert_eq!(resource_units(&get("me/memberOf")), 2);
        assert_eq!(resource_units(&get("users/u-1/oauth2PermissionGrants")), 2);
        assert_eq!(resource_units(&get("users/u-1/licenseDetails")), 2);
        assert_eq!(resource_units(&get("users/u-1/ownedObjects")), 2);
        assert_eq!(resource_units(&get("users/u-1/appRoleAssignments")), 1);
        assert_eq!(resource_units(&get("subscribedSkus")), 3);
        assert_eq!(resource_units(&get("groups/g-1/members")), 3);
        assert_eq!(resource_units(&get("groups/g-1")), 1);
        // The same paths written to cost the default.
        assert_eq!(resource_units(&GraphRequest::post(["users"], json!({}))), 1);
        assert_eq!(
            resource_units(&GraphRequest::delete([
                "groups", "g-1", "members", "u-1", "$ref"
            ])),
            1
        );
        assert_eq!(
            resource_units(&GraphRequest::post(
                ["groups", "g-1", "members", "$ref"],
                json!({})
            )),
            1
        );
        // Outlook and OneDrive have budgets of their own.
        assert_eq!(resource_units(&get("users/u-1/mailboxSettings")), 0);
        assert_eq!(
            resource_units(&get("users/u-1/mailFolders/inbox/messageRules")),
            0
        );
        assert_eq!(resource_units(&get("users/u-1/drive/root")), 0);
        assert_eq!(resource_units(&get("drives/d-1/items/i-1/permissions")), 0);
    }

    #[test]
    fn a_batch_costs_the_sum_of_its_requests() {
        let batch = GraphRequest::post(
            ["$batch"],
            json!({"requests": [
                {"id": "1", "method": "GET", "url": "/users?$select=id"},
                {"id": "2", "method": "GET", "url": "/users/u%2F1/memberOf"},
                {"id": "3", "method": "get", "url": "groups/g-1/members?%24top=5"},
                {"id": "4", "method": "DELETE", "url": "/users/u-1"},
                {"id": "5", "method": "GET", "url": "/users/u-1/mailboxSettings"},
                {"id": "6", "method": "GET", "url": "/subscribedSkus?$expand=x&$select=y"},
            ]}),
        );
        // 1 + 2 + 2 + 1 + 0 + 3.
        assert_eq!(resource_units(&batch), 9);
        let empty = GraphRequest::post(["$batch"], json!({"requests": []}));
        assert_eq!(resource_units(&empty), 0);
        let odd = GraphRequest::post(["$batch"], json!({"requests": [{"id": "1"}]}));
        assert_eq!(resource_units(&odd), 1);
    }
}
