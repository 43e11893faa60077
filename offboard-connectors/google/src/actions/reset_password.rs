//! `google.reset_password`: `PATCH admin/directory/v1/users/{userKey}` with
//! `{"password": <random>, "changePasswordAtNextLogin": true}`. Irreversible.
//!
//! The password is 40 characters drawn from the 62 ASCII letters and digits by `rand`'s
//! thread-local CSPRNG (ChaCha, seeded from the operating system), about 238 bits: nobody
//! knows it, and it lives only in the request body (never in a log, error, reply or audit
//! row). It is sent as plain text over TLS without `hashFunction`: that field describes a
//! password the caller hashed itself, which would only matter if the value were kept.
//!
//! Idempotency: a reset cannot be read back (Google shows no password state), and a second
//! reset is harmless, so the goal "nobody knows the password" holds after any reset. Like
//! `google.sign_out`, the connector remembers per instance the (user, idempotency key) pairs it
//! reset: a repeat with the same key reports `AlreadyDone` without a call; a new key or a
//! restarted process resets again and reports `Done`.

use offboard_core::{ExecuteReply, Result, Secret};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::json;

use super::sign_out::{Memo, once_per_key};
use crate::client::GoogleClient;

/// Length of the random password.
pub(crate) const LENGTH: usize = 40;

/// A fresh random password.
pub(crate) fn random_password() -> Secret {
    Secret::new(
        rand::rng()
            .sample_iter(&Alphanumeric)
            .take(LENGTH)
            .map(char::from)
            .collect::<String>(),
    )
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
            "password already reset by this task",
            "would set a random password and require a change at next sign-in",
            "password set to a random value nobody knows; a change is required at next sign-in",
        ],
        async || {
            let password = random_password();
            let body = json!({"password": password.expose(), "changePasswordAtNextLogin": true});
            client.patch_user(id, body).await.map(drop)
        },
    )
    .await
}
