//! `o365.remove_teams`: the leaver's Teams memberships.
//!
//! - `GET /users/{id}/joinedTeams` (direct memberships; not the host teams of shared
//!   channels), then per team `GET /teams/{t}/members`: the member whose `userId` is exactly
//!   the leaver's id (membership ids are opaque and never derived from the user id), removed
//!   with `DELETE /teams/{t}/members/{membership-id}` (204; 404: already gone).
//! - A team is a Microsoft 365 group, so its membership IS the group's: the action runs after
//!   `entra.remove_groups` (and `entra.hand_over_owned`, which gives owned teams a new owner)
//!   when those are planned. Teams left through the group removal are no longer in
//!   `joinedTeams`; a team listed whose members no longer hold the leaver is reported "not a
//!   member any more".
//! - The last owner of a team cannot be removed (Teams refuses; for Graph unverified): such
//!   teams, and any other team Graph refuses, fail the task by name after the others were
//!   removed.
//! - Reversible: the snapshot records each team and whether the leaver owned it; rollback
//!   re-adds through the group: `POST /groups/{t}/members/$ref` and, for an owner,
//!   `POST /groups/{t}/owners/$ref`.
//! - Permissions: `Team.ReadBasic.All` (joinedTeams), `TeamMember.Read.All` (members),
//!   `TeamMember.ReadWrite.All` (delete); rollback `GroupMember.ReadWrite.All` and
//!   `Group.ReadWrite.All` (owners). A 403 names the one missing.

use offboard_core::{ErrorKind, ExecuteReply, Outcome, Result};
use offboard_http::GraphRequest;
use offboard_http::graph::{needs_permission, not_done, user_path};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Ctx, gone, reply};

/// A team of `joinedTeams`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Team {
    id: String,
    #[serde(default)]
    display_name: Option<String>,
}

impl Team {
    fn name(&self) -> &str {
        self.display_name.as_deref().unwrap_or(&self.id)
    }

    /// "<name> (<id>)".
    pub(crate) fn label(&self) -> String {
        format!("{} ({})", self.name(), self.id)
    }
}

/// A `conversationMember` of `GET /teams/{t}/members`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Member {
    id: String,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
}

impl Member {
    fn owner(&self) -> bool {
        self.roles.iter().any(|r| r.eq_ignore_ascii_case("owner"))
    }
}

/// `GET /users/{id}/joinedTeams`; `None` when the user does not exist.
pub(crate) async fn joined(ctx: &Ctx<'_>, id: &str) -> Result<Option<Vec<Team>>> {
    if ctx.client.get_user(id).await?.is_none() {
        return Ok(None);
    }
    ctx.client
        .graph
        .list(&GraphRequest::get(user_path(id, &["joinedTeams"])))
        .await
        .map(Some)
        .map_err(|e| needs_permission(e, "Team.ReadBasic.All"))
}

/// The leaver's membership in `team` (matched on `userId` exactly), if any.
async fn membership(ctx: &Ctx<'_>, team: &str, id: &str) -> Result<Option<Member>> {
    let members: Vec<Member> = ctx
        .client
        .graph
        .list(&GraphRequest::get(["teams", team, "members"]))
        .await
        .map_err(|e| needs_permission(e, "TeamMember.Read.All"))?;
    Ok(members
        .into_iter()
        .find(|m| m.user_id.as_deref() == Some(id)))
}

pub(crate) async fn execute(ctx: &Ctx<'_>, id: &str, dry_run: bool) -> Result<ExecuteReply> {
    let Some(teams) = joined(ctx, id).await? else {
        return Ok(gone(id));
    };
    if teams.is_empty() {
        return Ok(reply(
            Outcome::AlreadyDone,
            dry_run,
            "member of no team (memberships through Microsoft 365 groups go with \
             entra.remove_groups)",
        ));
    }
    let mut todo = Vec::new();
    let mut left = Vec::new();
    for t in &teams {
        match membership(ctx, &t.id, id).await? {
            Some(m) => todo.push((t, m)),
            None => left.push(t.name()),
        }
    }
    let note = if left.is_empty() {
        String::new()
    } else {
        format!("; not a member any more: {}", left.join(", "))
    };
    if todo.is_empty() {
        return Ok(reply(
            Outcome::AlreadyDone,
            dry_run,
            format!("member of no team{note}"),
        ));
    }
    let label = |t: &Team, m: &Member| {
        if m.owner() {
            format!("{} (owner)", t.name())
        } else {
            t.name().to_owned()
        }
    };
    if dry_run {
        let list: Vec<String> = todo.iter().map(|(t, m)| label(t, m)).collect();
        return Ok(reply(
            Outcome::Done,
            true,
            format!(
                "would remove from {} teams ({}){note}",
                todo.len(),
                list.join(", ")
            ),
        ));
    }
    let mut removed = Vec::new();
    let mut kept = Vec::new();
    for (t, m) in &todo {
        let request = GraphRequest::delete(["teams", t.id.as_str(), "members", m.id.as_str()]);
        match ctx.client.graph.send_gone_ok(&request).await {
            Ok(_) => removed.push(label(t, m)),
            Err(e) if e.is_retryable() => return Err(e),
            Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                return Err(needs_permission(e, "TeamMember.ReadWrite.All"));
            }
            Err(e) if m.owner() => kept.push(format!(
                "{} (Graph refused removing an owner, the last owner cannot leave: add another \
                 owner first, e.g. with entra.hand_over_owned: {e})",
                t.name()
            )),
            Err(e) => kept.push(format!("{} (Graph refused: {e})", t.name())),
        }
    }
    let done = format!(
        "removed from {} teams ({}){note}",
        removed.len(),
        removed.join(", ")
    );
    if !kept.is_empty() {
        return Err(not_done(&done, "removed", &kept));
    }
    Ok(reply(Outcome::Done, false, done))
}

/// One team as the snapshot records it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct Saved {
    pub(crate) team: String,
    pub(crate) name: String,
    pub(crate) owner: bool,
}

/// The snapshot of `o365.remove_teams`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Data {
    pub(crate) teams: Vec<Saved>,
}

pub(crate) async fn snapshot(ctx: &Ctx<'_>, id: &str) -> Result<Data> {
    let Some(teams) = joined(ctx, id).await? else {
        return Err(super::user_gone(id));
    };
    let mut saved = Vec::new();
    for t in &teams {
        if let Some(m) = membership(ctx, &t.id, id).await? {
            saved.push(Saved {
                team: t.id.clone(),
                name: t.name().to_owned(),
                owner: m.owner(),
            });
        }
    }
    saved.sort();
    Ok(Data { teams: saved })
}

/// Re-adds the leaver to the snapshot's teams through their groups.
pub(crate) async fn restore(ctx: &Ctx<'_>, id: &str, data: &Data) -> Result<Outcome> {
    let me = ctx.client.graph.directory_object_url(id)?;
    let mut changed = false;
    for s in &data.teams {
        let now = membership(ctx, &s.team, id).await?;
        let mut rels = Vec::new();
        if now.is_none() {
            rels.push(("members", "GroupMember.ReadWrite.All"));
        }
        if s.owner && !now.as_ref().is_some_and(Member::owner) {
            rels.push(("owners", "Group.ReadWrite.All"));
        }
        for (rel, permission) in rels {
            ctx.client
                .graph
                .send(&GraphRequest::post(
                    ["groups", s.team.as_str(), rel, "$ref"],
                    json!({"@odata.id": me}),
                ))
                .await
                .map_err(|e| needs_permission(e, permission))?;
            changed = true;
        }
    }
    Ok(if changed {
        Outcome::Done
    } else {
        Outcome::AlreadyDone
    })
}
