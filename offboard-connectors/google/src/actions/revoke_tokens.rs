//! `google.revoke_tokens`: `GET …/users/{userKey}/tokens`, then
//! `DELETE …/tokens/{clientId}` for each (404: already revoked). Irreversible.

use offboard_core::{ExecuteReply, Outcome, Result};

use super::{gone, reply};
use crate::client::{GoogleClient, found, gone_ok};

pub(crate) async fn execute(
    client: &GoogleClient,
    id: &str,
    dry_run: bool,
) -> Result<ExecuteReply> {
    let Some(tokens) = found(client.list_tokens(id).await)? else {
        return Ok(gone(id));
    };
    if tokens.is_empty() {
        return Ok(reply(Outcome::AlreadyDone, dry_run, "no OAuth tokens"));
    }
    let mut revoked = 0;
    for t in &tokens {
        if dry_run || gone_ok(client.delete_token(id, &t.client_id).await)? {
            revoked += 1;
        }
    }
    let names: Vec<&str> = tokens.iter().map(|t| t.display_text.as_str()).collect();
    Ok(reply(
        Outcome::Done,
        dry_run,
        format!("{revoked} OAuth tokens revoked ({})", names.join(", ")),
    ))
}
