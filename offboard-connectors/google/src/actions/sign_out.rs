//! `google.sign_out`: `POST admin/directory/v1/users/{userKey}/signOut`. Irreversible.
//!
//! Google cannot list a user's sessions, so the outcome cannot be read from the tenant. The
//! connector remembers, per connector instance, the (user, idempotency key) pairs it signed
//! out: a repeat with the same key reports `AlreadyDone` without a call; anything else (a new
//! key, no key, a restarted process) signs out again and reports `Done`, which is harmless
//! because the call is idempotent.

use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};

use offboard_core::{ExecuteReply, Outcome, Result};

use super::{gone, reply};
use crate::client::{GoogleClient, found};

/// The sign-outs made by this connector instance: (user id, idempotency key).
#[derive(Debug, Default)]
pub(crate) struct Memo(Mutex<BTreeSet<(String, String)>>);

impl Memo {
    fn contains(&self, id: &str, key: &str) -> bool {
        !key.is_empty()
            && self
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(&(id.to_owned(), key.to_owned()))
    }

    fn insert(&self, id: &str, key: &str) {
        if !key.is_empty() {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert((id.to_owned(), key.to_owned()));
        }
    }
}

pub(crate) async fn execute(
    client: &GoogleClient,
    memo: &Memo,
    id: &str,
    idempotency_key: &str,
    dry_run: bool,
) -> Result<ExecuteReply> {
    if client.get_user(id).await?.is_none() {
        return Ok(gone(id));
    }
    if memo.contains(id, idempotency_key) {
        return Ok(reply(
            Outcome::AlreadyDone,
            dry_run,
            "already signed out by this task",
        ));
    }
    if dry_run {
        return Ok(reply(
            Outcome::Done,
            true,
            "would sign out of every session",
        ));
    }
    if found(client.sign_out(id).await)?.is_none() {
        return Ok(gone(id));
    }
    memo.insert(id, idempotency_key);
    Ok(reply(Outcome::Done, false, "signed out of every session"))
}
