//! The OAuth scopes the connector needs: each Google API method it calls, with the scopes its
//! discovery document lists (any one of them authorises a call), and which methods each action
//! (with its snapshot and rollback) and the connector's reads call.
//!
//! The connector asks for exactly the scopes its offered actions need, the narrowest that
//! covers each method (the first listed); configured scopes are checked against the same
//! table, so a missing one is named by [`crate::GoogleConfig::build`] instead of surfacing as a
//! 403 in a real tenant.

use crate::actions::Verb;

const AUTH: &str = "https://www.googleapis.com/auth/";

/// A Google API method the connector calls: its discovery id and the scopes (without the
/// `https://www.googleapis.com/auth/` prefix) any one of which authorises it, the one the
/// connector asks for first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ApiMethod {
    pub(crate) id: &'static str,
    pub(crate) scopes: &'static [&'static str],
}

const fn m(id: &'static str, scopes: &'static [&'static str]) -> ApiMethod {
    ApiMethod { id, scopes }
}

// Scopes as `admin-directory_v1`, `admin-datatransfer_v1` and `licensing_v1` list them.
const USERS_GET: ApiMethod = m(
    "directory.users.get",
    &["admin.directory.user", "admin.directory.user.readonly"],
);
const USERS_PATCH: ApiMethod = m("directory.users.patch", &["admin.directory.user"]);
const USERS_DELETE: ApiMethod = m("directory.users.delete", &["admin.directory.user"]);
const SIGN_OUT: ApiMethod = m(
    "directory.users.signOut",
    &["admin.directory.user.security"],
);
const TOKENS_LIST: ApiMethod = m("directory.tokens.list", &["admin.directory.user.security"]);
const TOKENS_DELETE: ApiMethod = m(
    "directory.tokens.delete",
    &["admin.directory.user.security"],
);
const ASPS_LIST: ApiMethod = m("directory.asps.list", &["admin.directory.user.security"]);
const ASPS_DELETE: ApiMethod = m("directory.asps.delete", &["admin.directory.user.security"]);
const CODES_LIST: ApiMethod = m(
    "directory.verificationCodes.list",
    &["admin.directory.user.security"],
);
const CODES_INVALIDATE: ApiMethod = m(
    "directory.verificationCodes.invalidate",
    &["admin.directory.user.security"],
);
const GROUPS_LIST: ApiMethod = m(
    "directory.groups.list",
    &["admin.directory.group.readonly", "admin.directory.group"],
);
const MEMBERS_GET: ApiMethod = m(
    "directory.members.get",
    &[
        "admin.directory.group.member.readonly",
        "admin.directory.group.member",
        "admin.directory.group.readonly",
        "admin.directory.group",
    ],
);
const MEMBERS_DELETE: ApiMethod = m(
    "directory.members.delete",
    &["admin.directory.group.member", "admin.directory.group"],
);
const MEMBERS_INSERT: ApiMethod = m(
    "directory.members.insert",
    &["admin.directory.group.member", "admin.directory.group"],
);
const DEVICES_LIST: ApiMethod = m(
    "directory.mobiledevices.list",
    &[
        "admin.directory.device.mobile.readonly",
        "admin.directory.device.mobile.action",
        "admin.directory.device.mobile",
    ],
);
const DEVICES_ACTION: ApiMethod = m(
    "directory.mobiledevices.action",
    &[
        "admin.directory.device.mobile.action",
        "admin.directory.device.mobile",
    ],
);
const APPLICATIONS_LIST: ApiMethod = m(
    "datatransfer.applications.list",
    &["admin.datatransfer.readonly", "admin.datatransfer"],
);
const TRANSFERS_LIST: ApiMethod = m(
    "datatransfer.transfers.list",
    &["admin.datatransfer.readonly", "admin.datatransfer"],
);
const TRANSFERS_GET: ApiMethod = m(
    "datatransfer.transfers.get",
    &["admin.datatransfer.readonly", "admin.datatransfer"],
);
const TRANSFERS_INSERT: ApiMethod = m("datatransfer.transfers.insert", &["admin.datatransfer"]);
const LICENCE_GET: ApiMethod = m("licensing.licenseAssignments.get", &["apps.licensing"]);
const LICENCE_DELETE: ApiMethod = m("licensing.licenseAssignments.delete", &["apps.licensing"]);
const LICENCE_INSERT: ApiMethod = m("licensing.licenseAssignments.insert", &["apps.licensing"]);

/// What the connector calls whatever actions it offers: `lookup`, `verify_revoked` and
/// `discover`.
pub(crate) const READS: [ApiMethod; 5] =
    [USERS_GET, TOKENS_LIST, ASPS_LIST, GROUPS_LIST, DEVICES_LIST];

impl Verb {
    /// The methods the action calls, its snapshot and its rollback included.
    pub(crate) fn methods(self) -> &'static [ApiMethod] {
        match self {
            Verb::InvalidateBackupCodes => &[CODES_LIST, CODES_INVALIDATE],
            Verb::DeleteAsps => &[ASPS_LIST, ASPS_DELETE],
            Verb::RevokeTokens => &[TOKENS_LIST, TOKENS_DELETE],
            Verb::SignOut => &[USERS_GET, SIGN_OUT],
            Verb::Suspend => &[USERS_GET, CODES_LIST, CODES_INVALIDATE, USERS_PATCH],
            Verb::MoveToOu | Verb::HideFromGal | Verb::ResetPassword => &[USERS_GET, USERS_PATCH],
            Verb::RemoveFromGroups => &[GROUPS_LIST, MEMBERS_DELETE, MEMBERS_GET, MEMBERS_INSERT],
            Verb::TransferData => &[
                USERS_GET,
                APPLICATIONS_LIST,
                TRANSFERS_LIST,
                TRANSFERS_INSERT,
                TRANSFERS_GET,
            ],
            Verb::WipeDevices => &[USERS_GET, DEVICES_LIST, DEVICES_ACTION],
            Verb::RemoveLicenses => &[USERS_GET, LICENCE_GET, LICENCE_DELETE, LICENCE_INSERT],
            Verb::Delete => &[USERS_GET, USERS_DELETE],
        }
    }
}

/// Every method called with `verbs` offered, writes first (their scopes cover most reads).
fn methods(verbs: &[Verb]) -> Vec<ApiMethod> {
    let mut all: Vec<ApiMethod> = Vec::new();
    for method in verbs.iter().flat_map(|v| v.methods()).chain(&READS) {
        if !all.contains(method) {
            all.push(*method);
        }
    }
    // A method with fewer alternatives is the stricter one; take its scope first.
    all.sort_by_key(|m| m.scopes.len());
    all
}

/// The full URL of a scope.
fn url(scope: &str) -> String {
    format!("{AUTH}{scope}")
}

/// The scopes to ask for with `verbs` offered: for each method not yet covered, its first
/// (narrowest) scope.
pub(crate) fn needed(verbs: &[Verb]) -> Vec<String> {
    let mut chosen: Vec<&str> = Vec::new();
    for method in methods(verbs) {
        if !method.scopes.iter().any(|s| chosen.contains(s)) {
            chosen.push(method.scopes[0]);
        }
    }
    chosen.into_iter().map(url).collect()
}

/// The first method `configured` scopes do not authorise with `verbs` offered, with the scopes
/// that would.
pub(crate) fn missing(verbs: &[Verb], configured: &[String]) -> Option<(ApiMethod, Vec<String>)> {
    methods(verbs)
        .into_iter()
        .find(|m| !m.scopes.iter().any(|s| configured.contains(&url(s))))
        .map(|m| (m, m.scopes.iter().map(|s| url(s)).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_is_covered_by_the_scopes_asked_for() {
        let all = needed(&Verb::ALL);
        assert_eq!(all, crate::DEFAULT_SCOPES.to_vec());
        assert_eq!(all.len(), 7);
        assert_eq!(missing(&Verb::ALL, &all), None);
        for v in Verb::ALL {
            let mine = needed(&[v]);
            assert_eq!(missing(&[v], &mine), None, "{v:?}");
        }
    }

    /// Every method of a discovery document by id: its `scopes`.
    fn discovery(resource: &serde_json::Value, out: &mut Vec<(String, Vec<String>)>) {
        for m in resource["methods"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
        {
            let scopes = m["scopes"].as_array().unwrap();
            out.push((
                m["id"].as_str().unwrap().to_owned(),
                scopes
                    .iter()
                    .map(|s| s.as_str().unwrap().to_owned())
                    .collect(),
            ));
        }
        for r in resource["resources"]
            .as_object()
            .into_iter()
            .flat_map(|r| r.values())
        {
            discovery(r, out);
        }
    }

    /// The table above is the vendored discovery documents' (offboard-connectors/testkit/specs):
    /// each method the connector calls accepts exactly the scopes its entry lists.
    #[test]
    fn the_table_matches_the_discovery_documents() {
        let mut official = Vec::new();
        for file in [
            "admin-directory_v1.offboarding.json",
            "admin-datatransfer_v1.json",
            "licensing_v1.json",
        ] {
            discovery(
                &offboard_testkit::sim::specs::json(&format!("google/{file}")),
                &mut official,
            );
        }
        for method in methods(&Verb::ALL) {
            let (_, scopes) = official
                .iter()
                .find(|(id, _)| id == method.id)
                .unwrap_or_else(|| panic!("{} is in no discovery document", method.id));
            let mut ours: Vec<String> = method.scopes.iter().map(|s| url(s)).collect();
            let mut theirs = scopes.clone();
            ours.sort();
            theirs.sort();
            assert_eq!(ours, theirs, "{}", method.id);
        }
    }

    #[test]
    fn group_listing_needs_a_group_scope_member_does_not_do() {
        let configured: Vec<String> = crate::DEFAULT_SCOPES
            .iter()
            .filter(|s| !s.ends_with("admin.directory.group.readonly"))
            .map(|s| (*s).to_owned())
            .collect();
        let (method, would) = missing(&Verb::ALL, &configured).unwrap();
        assert_eq!(method.id, "directory.groups.list");
        assert_eq!(
            would,
            vec![
                url("admin.directory.group.readonly"),
                url("admin.directory.group")
            ]
        );
        // The broader group scope covers listing, membership reads and writes.
        let mut broader = configured.clone();
        broader.retain(|s| !s.ends_with("admin.directory.group.member"));
        broader.push(url("admin.directory.group"));
        assert_eq!(missing(&Verb::ALL, &broader), None);
    }

    #[test]
    fn licences_are_asked_for_only_when_offered() {
        let without: Vec<Verb> = Verb::ALL
            .into_iter()
            .filter(|v| *v != Verb::RemoveLicenses)
            .collect();
        assert!(
            !needed(&without)
                .iter()
                .any(|s| s.ends_with("apps.licensing"))
        );
        assert!(
            needed(&Verb::ALL)
                .iter()
                .any(|s| s.ends_with("apps.licensing"))
        );
    }
}
