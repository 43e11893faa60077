//! `google.invalidate_backup_codes`: `GET …/users/{userKey}/verificationCodes`, then
//! `POST …/verificationCodes/invalidate` when any code is valid. Irreversible.
//!
//! Google refuses the invalidation for a suspended user (400 "Invalid Input");
//! `google.suspend` therefore invalidates the codes itself first. When codes are still valid
//! on a suspended user, nothing more is possible through the API: a permanent `InvalidInput`
//! error says so (the codes cannot sign in while the user stays suspended).

use offboard_core::{Error, ErrorKind, ExecuteReply, Outcome, Result};

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
    if !dry_run {
        match found(client.invalidate_backup_codes(id).await) {
            Ok(Some(())) => {}
            Ok(None) => return Ok(gone(id)),
            Err(e) if e.kind() == ErrorKind::InvalidInput => {
                if client.get_user(id).await?.is_some_and(|u| u.suspended) {
                    // `google.suspend` invalidates the codes itself just before suspending; when
                    // it ran between our count and our call, nothing is left to do.
                    let left = found(client.count_backup_codes(id).await)?;
                    if left == Some(0) {
                        return Ok(reply(
                            Outcome::AlreadyDone,
                            dry_run,
                            "no valid backup codes (invalidated before the suspension)",
                        ));
                    }
                    let codes = left.unwrap_or(codes);
                    return Err(Error::invalid_input(format!(
                        "the user is suspended and Google keeps its {codes} backup codes: \
                         they cannot be invalidated until it is unsuspended (they cannot sign \
                         in while it stays suspended)"
                    ))
                    .fatal());
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(reply(
        Outcome::Done,
        dry_run,
        format!("{codes} backup codes invalidated"),
    ))
}
