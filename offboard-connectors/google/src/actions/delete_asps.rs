//! `google.delete_asps`: `GET …/users/{userKey}/asps`, then `DELETE …/asps/{codeId}` for
//! each (404: already gone). Irreversible.

use offboard_core::{ExecuteReply, Outcome, Result};

use super::{gone, reply};
use crate::client::{GoogleClient, found, gone_ok};

pub(crate) async fn execute(
    client: &GoogleClient,
    id: &str,
    dry_run: bool,
) -> Result<ExecuteReply> {
    let Some(asps) = found(client.list_asps(id).await)? else {
        return Ok(gone(id));
    };
    if asps.is_empty() {
        return Ok(reply(
            Outcome::AlreadyDone,
            dry_run,
            "no app-specific passwords",
        ));
    }
    let mut deleted = 0;
    for a in &asps {
        if dry_run || gone_ok(client.delete_asp(id, a.code_id).await)? {
            deleted += 1;
        }
    }
    let names: Vec<&str> = asps.iter().map(|a| a.name.as_str()).collect();
    Ok(reply(
        Outcome::Done,
        dry_run,
        format!(
            "{deleted} app-specific passwords deleted ({})",
            names.join(", ")
        ),
    ))
}
