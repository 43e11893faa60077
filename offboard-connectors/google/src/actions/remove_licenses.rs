//! `google.remove_licenses`: for each configured product/SKU,
//! `DELETE apps/licensing/v1/product/{productId}/sku/{skuId}/user/{userId}` (404: not
//! assigned), `userId` being the user's primary address as the Licensing API documents.
//!
//! The snapshot records which configured licences the user holds
//! (`GET …/sku/{skuId}/user/{userId}` each); rollback assigns the missing ones again with
//! `POST apps/licensing/v1/product/{productId}/sku/{skuId}/user` `{"userId": …}` (409:
//! already assigned). A dry run reads with `GET` instead of deleting.

use offboard_core::{ExecuteReply, Outcome, Result};
use serde::{Deserialize, Serialize};

use super::{gone, reply};
use crate::client::{GoogleClient, User};
use crate::config::Sku;

/// What the snapshot records: the configured licences the user held.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Data {
    pub(crate) licences: Vec<Sku>,
}

fn names(skus: &[&Sku]) -> String {
    skus.iter()
        .map(|s| format!("{}/{}", s.product, s.sku))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) async fn execute(
    client: &GoogleClient,
    skus: &[Sku],
    id: &str,
    dry_run: bool,
) -> Result<ExecuteReply> {
    let Some(user) = client.get_user(id).await? else {
        return Ok(gone(id));
    };
    let mut removed = Vec::new();
    for sku in skus {
        let held = if dry_run {
            client.has_licence(sku, &user.primary_email).await?
        } else {
            client.delete_licence(sku, &user.primary_email).await?
        };
        if held {
            removed.push(sku);
        }
    }
    if removed.is_empty() {
        return Ok(reply(
            Outcome::AlreadyDone,
            dry_run,
            "holds none of the configured licences",
        ));
    }
    Ok(reply(
        Outcome::Done,
        dry_run,
        format!("revoked {} licences ({})", removed.len(), names(&removed)),
    ))
}

pub(crate) async fn snapshot(client: &GoogleClient, skus: &[Sku], user: &User) -> Result<Data> {
    let mut licences = Vec::new();
    for sku in skus {
        if client.has_licence(sku, &user.primary_email).await? {
            licences.push(sku.clone());
        }
    }
    Ok(Data { licences })
}

/// Assigns the snapshot's licences the user no longer holds; nothing else.
pub(crate) async fn restore(client: &GoogleClient, user: &User, data: &Data) -> Result<Outcome> {
    let mut added = 0;
    for sku in &data.licences {
        if !client.has_licence(sku, &user.primary_email).await?
            && client.insert_licence(sku, &user.primary_email).await?
        {
            added += 1;
        }
    }
    Ok(if added > 0 {
        Outcome::Done
    } else {
        Outcome::AlreadyDone
    })
}
