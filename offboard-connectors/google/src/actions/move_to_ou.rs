//! `google.move_to_ou` (params `{"ou": "/Path"}`): `PATCH admin/directory/v1/users/{userKey}`
//! with `{"orgUnitPath": ou}`; rollback moves the user back to the snapshot's org unit.

use offboard_core::{ExecuteReply, Outcome, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{gone, reply};
use crate::client::{GoogleClient, User, found};
use crate::error::GoogleError;

/// The typed parameters of `google.move_to_ou`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveToOu {
    /// The target org unit's full path, e.g. `/Offboarded`.
    pub ou: String,
}

impl MoveToOu {
    /// Checks the path: starts with `/`, no control characters.
    pub(crate) fn validate(&self) -> Result<()> {
        if !self.ou.starts_with('/') || self.ou.chars().any(char::is_control) {
            return Err(GoogleError::BadOrgUnit(crate::error::shown(&self.ou)).into());
        }
        Ok(())
    }
}

/// What the snapshot records: `orgUnitPath` before.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Data {
    pub(crate) org_unit_path: String,
}

pub(crate) async fn execute(
    client: &GoogleClient,
    id: &str,
    params: &MoveToOu,
    dry_run: bool,
) -> Result<ExecuteReply> {
    params.validate()?;
    let Some(user) = client.get_user(id).await? else {
        return Ok(gone(id));
    };
    if user.org_unit_path == params.ou {
        return Ok(reply(
            Outcome::AlreadyDone,
            dry_run,
            format!("already in {}", params.ou),
        ));
    }
    if !dry_run
        && found(
            client
                .patch_user(id, json!({"orgUnitPath": params.ou}))
                .await,
        )?
        .is_none()
    {
        return Ok(gone(id));
    }
    Ok(reply(
        Outcome::Done,
        dry_run,
        format!("moved from {} to {}", user.org_unit_path, params.ou),
    ))
}

pub(crate) fn snapshot(user: &User) -> Data {
    Data {
        org_unit_path: user.org_unit_path.clone(),
    }
}

/// Moves the user back to the snapshot's org unit.
pub(crate) async fn restore(client: &GoogleClient, user: &User, data: &Data) -> Result<Outcome> {
    if user.org_unit_path == data.org_unit_path || data.org_unit_path.is_empty() {
        return Ok(Outcome::AlreadyDone);
    }
    client
        .patch_user(&user.id, json!({"orgUnitPath": data.org_unit_path}))
        .await?;
    Ok(Outcome::Done)
}
