//! `google.sign_out`: `POST admin/directory/v1/users/{userKey}/signOut`. Irreversible.
//!
//! Google cannot list a user's sessions, so the outcome cannot be read from the tenant. The
//! connector remembers, per connector instance, the (user, idempotency key) pairs it signed
//! out: a repeat with the same key reports `AlreadyDone` without a call; anything else (a new
//! key, no key, a restarted process) signs out again and reports `Done`, which is harmless
//! because the call is idempotent.

use offboard_core::{ExecuteReply, Outcome, Result};

use super::{gone, reply};
use crate::client::{GoogleClient, found};

pub(crate) use offboard_core::KeyMemo as Memo;

/// What an action whose effect Google cannot show says: (already done, would do, done).
pub(crate) type Texts = [&'static str; 3];

/// The flow of an action whose effect cannot be read back (sign-out, password reset): the
/// user must exist; a repeat with the same idempotency key is `AlreadyDone` without a call;
/// otherwise `call` runs (a 404 meanwhile: `NotFound`) and the pair is remembered.
pub(crate) async fn once_per_key<F>(
    client: &GoogleClient,
    memo: &Memo,
    (id, idempotency_key): (&str, &str),
    dry_run: bool,
    [already, would, done]: Texts,
    call: F,
) -> Result<ExecuteReply>
where
    F: AsyncFnOnce() -> Result<()>,
{
    if client.get_user(id).await?.is_none() {
        return Ok(gone(id));
    }
    if memo.contains(id, idempotency_key) {
        return Ok(reply(Outcome::AlreadyDone, dry_run, already));
    }
    if dry_run {
        return Ok(reply(Outcome::Done, true, would));
    }
    if found(call().await)?.is_none() {
        return Ok(gone(id));
    }
    memo.insert(id, idempotency_key);
    Ok(reply(Outcome::Done, false, done))
}

pub(crate) async fn execute(
    client: &GoogleClient,
    memo: &Memo,
    id: &str,
    idempotency_key: &str,
    dry_run: bool,
) -> Result<ExecuteReply> {
    once_per_key(
        client,
        memo,
        (id, idempotency_key),
        dry_run,
        [
            "already signed out by this task",
            "would sign out of every session",
            "signed out of every session",
        ],
        async || client.sign_out(id).await,
    )
    .await
}
