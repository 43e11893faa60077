//! The access Graph's allowed operations can list but not change for this connector (no
//! directory role member removal and no owner addition are in the operation list):
//! - `entra.remove_directory_roles`: `GET /users/{id}/memberOf`, directory roles. None:
//!   `AlreadyDone`; some: an `unsupported` error naming each role, so the task fails visibly
//!   and an administrator removes them in the Entra admin center.
//! - `entra.hand_over_owned`: `GET /users/{id}/ownedObjects` and `GET /users/{id}/manager`.
//!   Nothing owned: `AlreadyDone`; otherwise an `unsupported` error naming each group and app
//!   and the manager to make owner.

use offboard_core::{Error, ErrorKind, ExecuteReply, Outcome, Person, Result};

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

pub(crate) async fn hand_over_owned(
    client: &EntraClient,
    id: &str,
    person: Option<&Person>,
    dry_run: bool,
) -> Result<ExecuteReply> {
    let Some(owned) = found(client.owned_objects(id).await)? else {
        return Ok(gone(id));
    };
    let owned: Vec<&DirectoryObject> = owned
        .iter()
        .filter(|o| o.is("group") || o.is("application") || o.is("servicePrincipal"))
        .collect();
    if owned.is_empty() {
        return Ok(reply(Outcome::AlreadyDone, dry_run, "owns no group or app"));
    }
    let manager = match client.manager(id).await? {
        Some(m) => m.user_principal_name,
        None => person
            .and_then(|p| p.manager.as_ref())
            .map(|m| m.email.clone())
            .unwrap_or_else(|| "(no manager known)".into()),
    };
    let list: Vec<String> = owned
        .iter()
        .map(|o| {
            let kind = o
                .odata_type
                .strip_prefix("#microsoft.graph.")
                .unwrap_or("object");
            format!("{kind} {}", o.name())
        })
        .collect();
    let list = list.join(", ");
    Err(not_allowed(format!(
        "user {id} owns {} objects ({list}); hand them over to the manager {manager}: adding an \
         owner is not among the Graph operations this connector may use, so an administrator \
         adds {manager} as owner",
        owned.len()
    )))
}
