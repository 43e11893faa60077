//! Teams of the simulated tenant: a team is a Microsoft 365 group
//! ([`GraphTenant::add_team`]), so its members are the group's members and owners (owners
//! with the role `owner`), and the group routes change them too.
//!
//! - `GET /users/{id}/joinedTeams` (`Team.ReadBasic.All`): the teams the user is a member or
//!   owner of, with only `id`, `displayName`, `description`, `isArchived` and `tenantId`
//!   filled, as Graph's.
//! - `GET /teams/{id}/members` (`TeamMember.Read.All`): `aadUserConversationMember`s whose
//!   `id` is an opaque membership id (not the user id) and whose `userId` is the user's.
//! - `DELETE /teams/{id}/members/{membership-id}` (`TeamMember.ReadWrite.All`): 204; the user
//!   leaves the group's members and owners. The last owner of a team cannot be removed: a
//!   400 `BadRequest` (the code is unverified; Teams PowerShell documents the rule).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Query, Reply, denied, err, not_found, page};
use crate::sim::graph::{GraphTenant, NewGroup, State};

/// Team group ids and the membership ids given out, per (team, user).
#[derive(Debug, Default)]
pub(crate) struct Teams {
    teams: BTreeMap<String, String>,
    memberships: BTreeMap<(String, String), String>,
}

impl GraphTenant {
    /// Adds a team: a Microsoft 365 group with `owners` and `members` (user ids) that has a
    /// team. Returns its id (the group's and the team's).
    pub fn add_team(&self, display_name: &str, owners: &[&str], members: &[&str]) -> String {
        let id = self.add_group(NewGroup {
            owners: owners.iter().map(|o| (*o).to_owned()).collect(),
            ..NewGroup::microsoft_365(display_name)
        });
        for m in members {
            self.add_member(&id, m);
        }
        self.shared
            .state()
            .teams
            .teams
            .insert(id.clone(), display_name.to_owned());
        id
    }

    /// The user ids in a team (members and owners), owners flagged.
    pub fn team_members(&self, team: &str) -> BTreeMap<String, bool> {
        let s = self.shared.state();
        roster(&s, team)
    }
}

/// Members and owners of `team`'s group: user id → owner.
fn roster(s: &State, team: &str) -> BTreeMap<String, bool> {
    let mut out = BTreeMap::new();
    if let Some(g) = s.groups.get(team) {
        for m in &g.members {
            out.insert(m.clone(), false);
        }
        for o in &g.owners {
            out.insert(o.clone(), true);
        }
    }
    out.retain(|u, _| s.users.get(u).is_some_and(|u| u.deleted_at.is_none()));
    out
}

/// The opaque membership id of `user` in `team`, made on first use.
fn membership(s: &mut State, team: &str, user: &str) -> String {
    s.teams
        .memberships
        .entry((team.to_owned(), user.to_owned()))
        .or_insert_with(|| {
            format!(
                "MCMjMiMj{}",
                uuid::Uuid::new_v4().simple().to_string().to_uppercase()
            )
        })
        .clone()
}

/// `GET /users/{id}/joinedTeams`.
pub(super) fn joined(s: &State, base: &str, id: &str, query: &Query) -> Reply {
    if let Some(no) = denied(s, "Team.ReadBasic.All") {
        return no;
    }
    let tenant = s.base.clone();
    let items = s
        .teams
        .teams
        .iter()
        .filter(|(t, _)| roster(s, t).contains_key(id))
        .map(|(t, name)| {
            json!({
                "id": t,
                "displayName": name,
                "description": Value::Null,
                "isArchived": false,
                "tenantId": tenant,
            })
        })
        .collect();
    page(s, base, &["users", id, "joinedTeams"], query, items)
}

/// `GET /teams/{id}/members` and `DELETE /teams/{id}/members/{membership-id}`.
pub(super) fn route(
    s: &mut State,
    base: &str,
    method: &str,
    team: &str,
    rest: &[&str],
    query: &Query,
) -> Reply {
    let permission = if method == "GET" {
        "TeamMember.Read.All"
    } else {
        "TeamMember.ReadWrite.All"
    };
    if let Some(no) = denied(s, permission) {
        return no;
    }
    if !s.teams.teams.contains_key(team) {
        return not_found(team);
    }
    let members = roster(s, team);
    match (method, rest) {
        ("GET", ["members"]) => {
            let items = members
                .iter()
                .map(|(user, owner)| {
                    let u = &s.users[user];
                    json!({
                        "@odata.type": "#microsoft.graph.aadUserConversationMember",
                        "displayName": u.display_name,
                        "email": u.mail,
                        "userId": user,
                        "roles": if *owner { vec!["owner"] } else { Vec::new() },
                        "visibleHistoryStartDateTime": "0001-01-01T00:00:00Z",
                    })
                })
                .collect::<Vec<Value>>();
            let items = items
                .into_iter()
                .map(|mut v| {
                    let user = v["userId"].as_str().unwrap_or_default().to_owned();
                    v["id"] = json!(membership(s, team, &user));
                    v
                })
                .collect();
            page(s, base, &["teams", team, "members"], query, items)
        }
        ("DELETE", ["members", mid]) => {
            let user = s
                .teams
                .memberships
                .iter()
                .find(|((t, _), m)| t == team && m == mid)
                .map(|((_, u), _)| u.clone());
            let Some(user) = user.filter(|u| members.contains_key(u)) else {
                return not_found(mid);
            };
            let owners = members.values().filter(|o| **o).count();
            if members[&user] && owners == 1 {
                return err(
                    400,
                    "BadRequest",
                    "The last owner of a team cannot be removed; add another owner first.",
                );
            }
            if let Some(g) = s.groups.get_mut(team) {
                g.members.remove(&user);
                g.owners.remove(&user);
            }
            (204, None)
        }
        _ => super::no_route(),
    }
}
