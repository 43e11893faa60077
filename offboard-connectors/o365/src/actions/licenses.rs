//! `o365.remove_licenses`: one `$batch` reading the user (`licenseAssignmentStates`,
//! `usageLocation`) and its `licenseDetails` (SKU part numbers), then
//! `POST /users/{id}/assignLicense` with `addLicenses: []` and the directly assigned SKUs in
//! `removeLicenses`. SKUs inherited from groups (group-based licensing) cannot be removed from
//! the user: they are named in the outcome with the group that gives them (group names read in
//! one `$batch` of `GET /groups/{id}`). Rollback re-adds the snapshot's SKUs (with their
//! disabled plans), setting `usageLocation` first when it is gone.

use std::collections::{BTreeMap, BTreeSet};

use offboard_core::{ErrorKind, ExecuteReply, Outcome, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Ctx, gone, reply, user_gone};
use crate::client::User;

/// A directly assigned SKU, as the snapshot records it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct Sku {
    sku_id: String,
    disabled_plans: Vec<String>,
}

/// What the snapshot records.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Data {
    licenses: Vec<Sku>,
    usage_location: Option<String>,
}

/// The user's SKUs: direct ones, and inherited ones with the groups giving them.
pub(crate) struct Licences {
    direct: Vec<Sku>,
    inherited: BTreeMap<String, BTreeSet<String>>,
    names: BTreeMap<String, String>,
    usage_location: Option<String>,
}

fn split(user: User, names: BTreeMap<String, String>) -> Licences {
    let mut direct: BTreeMap<String, Sku> = BTreeMap::new();
    let mut inherited: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in user.license_assignment_states {
        match s.assigned_by_group {
            None => {
                direct.insert(
                    s.sku_id.clone(),
                    Sku {
                        sku_id: s.sku_id,
                        disabled_plans: s.disabled_plans,
                    },
                );
            }
            Some(g) => {
                inherited.entry(s.sku_id).or_default().insert(g);
            }
        }
    }
    Licences {
        direct: direct.into_values().collect(),
        inherited,
        names,
        usage_location: user.usage_location,
    }
}

/// The user's licences; `None` when the user does not exist.
pub(crate) async fn read(ctx: &Ctx<'_>, id: &str) -> Result<Option<Licences>> {
    Ok(ctx
        .client
        .licences(id)
        .await?
        .map(|(user, names)| split(user, names)))
}

impl Licences {
    /// `PART_NUMBER (skuId)`.
    pub(crate) fn label(&self, sku: &str) -> String {
        match self.names.get(sku) {
            Some(n) => format!("{n} ({sku})"),
            None => sku.to_owned(),
        }
    }

    /// The directly assigned SKU ids.
    pub(crate) fn direct_skus(&self) -> impl Iterator<Item = &str> {
        self.direct.iter().map(|s| s.sku_id.as_str())
    }

    fn direct_labels(&self) -> String {
        self.direct
            .iter()
            .map(|s| self.label(&s.sku_id))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// "; still assigned through groups (not removed; remove the group membership): …".
async fn inherited_note(ctx: &Ctx<'_>, l: &Licences) -> Result<String> {
    if l.inherited.is_empty() {
        return Ok(String::new());
    }
    let groups: BTreeSet<&str> = l
        .inherited
        .values()
        .flat_map(|g| g.iter().map(String::as_str))
        .collect();
    let groups: Vec<&str> = groups.into_iter().collect();
    let group_names = ctx.client.group_names(&groups).await?;
    let items: Vec<String> = l
        .inherited
        .iter()
        .map(|(sku, gs)| {
            let via: Vec<String> = gs
                .iter()
                .map(|g| match group_names.get(g) {
                    Some(n) => format!("group \"{n}\" ({g})"),
                    None => format!("group {g}"),
                })
                .collect();
            format!("{} via {}", l.label(sku), via.join(" and "))
        })
        .collect();
    Ok(format!(
        "; STILL ASSIGNED through group-based licensing, not removable from the user \
         (remove the group membership): {}",
        items.join("; ")
    ))
}

pub(crate) async fn execute(ctx: &Ctx<'_>, id: &str, dry_run: bool) -> Result<ExecuteReply> {
    let Some(l) = read(ctx, id).await? else {
        return Ok(gone(id));
    };
    let note = inherited_note(ctx, &l).await?;
    if l.direct.is_empty() {
        return Ok(reply(
            Outcome::AlreadyDone,
            dry_run,
            format!("no directly assigned licence{note}"),
        ));
    }
    let labels = l.direct_labels();
    if !dry_run {
        let remove = l.direct.iter().map(|s| s.sku_id.clone()).collect();
        match ctx.client.assign_license(id, Vec::new(), remove).await {
            Ok(()) => {}
            // Changed between the read and the write: a fresh read tells.
            Err(e) if matches!(e.kind(), ErrorKind::InvalidInput | ErrorKind::NotFound) => {
                match read(ctx, id).await? {
                    None => return Ok(gone(id)),
                    Some(again) if again.direct.is_empty() => {
                        return Ok(reply(
                            Outcome::AlreadyDone,
                            false,
                            format!("no directly assigned licence{note}"),
                        ));
                    }
                    Some(_) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(reply(
        Outcome::Done,
        dry_run,
        format!("removed {labels}{note}"),
    ))
}

pub(crate) async fn snapshot(ctx: &Ctx<'_>, id: &str) -> Result<Data> {
    let l = read(ctx, id).await?.ok_or_else(|| user_gone(id))?;
    Ok(Data {
        licenses: l.direct,
        usage_location: l.usage_location,
    })
}

/// Re-adds the snapshot's SKUs the user no longer has directly; nothing else.
pub(crate) async fn restore(ctx: &Ctx<'_>, id: &str, data: &Data) -> Result<Outcome> {
    let l = read(ctx, id).await?.ok_or_else(|| user_gone(id))?;
    let have: BTreeSet<&str> = l.direct.iter().map(|s| s.sku_id.as_str()).collect();
    let missing: Vec<serde_json::Value> = data
        .licenses
        .iter()
        .filter(|s| !have.contains(s.sku_id.as_str()))
        .map(|s| json!({"skuId": s.sku_id, "disabledPlans": s.disabled_plans}))
        .collect();
    if missing.is_empty() {
        return Ok(Outcome::AlreadyDone);
    }
    if l.usage_location.is_none()
        && let Some(loc) = &data.usage_location
    {
        ctx.client.set_usage_location(id, loc).await?;
    }
    ctx.client.assign_license(id, missing, Vec::new()).await?;
    Ok(Outcome::Done)
}
