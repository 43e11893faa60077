//! The access this connector lists but does not change yet:
//! - `entra.remove_directory_roles`: `GET /users/{id}/memberOf`, directory roles. None:
//!   `AlreadyDone`; some: an `unsupported` error naming each role, so the task fails visibly
//!   and an administrator removes them in the Entra admin center.

use offboard_core::{Error, ErrorKind, ExecuteReply, Outcome, Result};

use super::{gone, names, reply};
use crate::client::{DirectoryObject, EntraClient, found};

fn not_allowed(message: String) -> Error {
    Error::new(ErrorKind::Unsupported, message).fatal()
}

pub(crate) async fn directory_roles(
    client: &EntraClient,
    id: &str,
    dry_run: bool,
) -> Result<ExecuteReply> {
    let Some(objects) = found(client.member_of(id).await)? else {
        return Ok(gone(id));
    };
    let roles: Vec<&DirectoryObject> = objects.iter().filter(|o| o.is("directoryRole")).collect();
    if roles.is_empty() {
        return Ok(reply(
            Outcome::AlreadyDone,
            dry_run,
            "holds no directory role",
        ));
    }
    Err(not_allowed(format!(
        "user {id} holds {} directory roles ({}); removing a role member is not among the Graph \
         operations this connector may use: remove them in the Entra admin center",
        roles.len(),
        names(roles.iter().map(|r| r.name()))
    )))
}
