//! The irreversible removals, batched:
//! - `entra.remove_grants`: `GET /users/{id}/oauth2PermissionGrants`, then
//!   `DELETE /oauth2PermissionGrants/{g}` for each `Principal` grant of the user. Tenant-wide
//!   (`AllPrincipals`) grants are consent for everyone and are kept.
//! - `entra.remove_auth_methods`: `GET /users/{id}/authentication/methods`, then
//!   `DELETE /users/{id}/authentication/{kind}Methods/{m}` for each of the 7 deletable kinds.
//!   The password cannot be deleted (sign-in is blocked by `entra.disable_sign_in`).

use std::collections::BTreeSet;

use offboard_core::{ExecuteReply, Outcome, Result};
use offboard_http::GraphRequest;
use offboard_http::graph::BatchItem;

use super::{gone, names, reply};
use crate::client::{EntraClient, found, user_path};

pub(crate) async fn remove_grants(
    client: &EntraClient,
    id: &str,
    dry_run: bool,
) -> Result<ExecuteReply> {
    let Some(grants) = found(client.principal_grants(id).await)? else {
        return Ok(gone(id));
    };
    if grants.is_empty() {
        return Ok(reply(
            Outcome::AlreadyDone,
            dry_run,
            "no delegated permission grant of the user",
        ));
    }
    let clients: BTreeSet<&str> = grants.iter().map(|g| g.client_id.as_str()).collect();
    let scopes: BTreeSet<&str> = grants
        .iter()
        .flat_map(|g| g.scope.as_deref().unwrap_or_default().split_whitespace())
        .collect();
    let what = format!(
        "{} grants (clients {}; scopes {})",
        grants.len(),
        names(clients),
        names(scopes)
    );
    if dry_run {
        return Ok(reply(Outcome::Done, true, format!("would remove {what}")));
    }
    let items = grants
        .iter()
        .map(|g| {
            BatchItem::new(
                &g.id,
                GraphRequest::delete(["oauth2PermissionGrants", &g.id]),
            )
        })
        .collect();
    let removed = client.batch_removals(items).await?;
    Ok(reply(
        Outcome::Done,
        false,
        format!("removed {removed} of {what}"),
    ))
}

pub(crate) async fn remove_auth_methods(
    client: &EntraClient,
    id: &str,
    dry_run: bool,
) -> Result<ExecuteReply> {
    let Some(methods) = found(client.auth_methods(id).await)? else {
        return Ok(gone(id));
    };
    let deletable: Vec<(&str, &str)> = methods
        .iter()
        .filter_map(|m| m.deletable_path().map(|p| (p, m.id.as_str())))
        .collect();
    let kept: Vec<&str> = methods
        .iter()
        .filter(|m| m.deletable_path().is_none())
        .map(|m| m.kind())
        .collect();
    let note = if kept.is_empty() {
        String::new()
    } else {
        format!("; kept (not deletable): {}", names(kept))
    };
    if deletable.is_empty() {
        return Ok(reply(
            Outcome::AlreadyDone,
            dry_run,
            format!("no deletable authentication method{note}"),
        ));
    }
    let kinds = names(
        methods
            .iter()
            .filter(|m| m.deletable_path().is_some())
            .map(|m| m.kind()),
    );
    if dry_run {
        return Ok(reply(
            Outcome::Done,
            true,
            format!("would remove {} methods ({kinds}){note}", deletable.len()),
        ));
    }
    let items = deletable
        .iter()
        .map(|(path, mid)| {
            BatchItem::new(
                *mid,
                GraphRequest::delete(user_path(id, &["authentication", path, mid])),
            )
        })
        .collect();
    let removed = client.batch_removals(items).await?;
    Ok(reply(
        Outcome::Done,
        false,
        format!("removed {removed} methods ({kinds}){note}"),
    ))
}
