//! `google.invalidate_backup_codes`: `GET …/users/{userKey}/verificationCodes`, then
//! `POST …/verificationCodes/invalidate` when any code is valid. Irreversible.

use offboard_core::{ExecuteReply, Outcome, Result};

use super::{gone, reply};
use crate::client::{GoogleClient, found};

pub(crate) async fn execute(
    client: &GoogleClient,
    id: &str,
    dry_run: bool,
) -> Result<ExecuteReply> {
    let Some(codes) = found(client.count_backup_codes(id).await)? else {
        return Ok(gone(id));
    };
    if codes == 0 {
        return Ok(reply(
            Outcome::AlreadyDone,
            dry_run,
            "no valid backup codes",
        ));
    }
    if !dry_run && found(client.invalidate_backup_codes(id).await)?.is_none() {
        return Ok(gone(id));
    }
    Ok(reply(
        Outcome::Done,
        dry_run,
        format!("{codes} backup codes invalidated"),
    ))
}
