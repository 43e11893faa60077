//! `ad.reset_password`: sets a random 32-character password through `unicodePwd` (the quoted
//! password, UTF-16LE), over TLS only. Nobody learns the password. AD keeps no idempotency key,
//! but `pwdLastSet` tells a repeat: when the password was set at or after the task's first
//! attempt started ([`ExecuteOptions::started_at`]), the repeat reports `already_done` and sets
//! nothing (a password set in that window by anyone else, e.g. the leaver, is indistinguishable:
//! the window is the task's own retries). Without `started_at` every run sets a new password.
//! The action is marked critical.

use offboard_core::{Error, ErrorKind, ExecuteOptions, ExecuteReply, Outcome, Result, Secret};
use rand::Rng;
use rand::seq::IndexedRandom;

use crate::client::{Client, User, replace};

use super::finish;

const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
const DIGITS: &[u8] = b"23456789";
const SYMBOLS: &[u8] = b"!#%+-.:=?@^_~";

/// A random password with every character class AD's complexity rule asks for.
pub(crate) fn random_password() -> Secret {
    let mut rng = rand::rng();
    let all: Vec<u8> = [LOWER, UPPER, DIGITS, SYMBOLS].concat();
    let mut chars: Vec<u8> = [LOWER, UPPER, DIGITS, SYMBOLS]
        .iter()
        .map(|class| *class.choose(&mut rng).unwrap_or(&b'x'))
        .collect();
    while chars.len() < 32 {
        chars.push(all[rng.random_range(0..all.len())]);
    }
    // Shuffle so the class order is not fixed.
    for i in (1..chars.len()).rev() {
        chars.swap(i, rng.random_range(0..=i));
    }
    Secret::new(String::from_utf8(chars).unwrap_or_default())
}

/// The `unicodePwd` value: the password in double quotes, UTF-16LE.
pub(crate) fn unicode_pwd(password: &Secret) -> Vec<u8> {
    format!("\"{}\"", password.expose())
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect()
}

pub(crate) async fn execute(
    client: &Client,
    user: &User,
    options: &ExecuteOptions,
) -> Result<ExecuteReply> {
    if !client.config().transport().is_tls() {
        return Err(Error::new(
            ErrorKind::Config,
            "refusing to set a password over an unencrypted connection",
        ));
    }
    if let (Some(started), Some(set)) = (options.started_at, user.password_set_at())
        && set >= started
    {
        return Ok(ExecuteReply::with_detail(
            Outcome::AlreadyDone,
            format!(
                "the password was set at {} (pwdLastSet), after this task first started",
                set.to_rfc3339()
            ),
        ));
    }
    if options.dry_run {
        return Ok(ExecuteReply::new(Outcome::Done));
    }
    let password = random_password();
    let written = client
        .modify(
            &user.dn,
            vec![replace("unicodePwd", [unicode_pwd(&password)])],
        )
        .await?;
    Ok(ExecuteReply::new(finish(written, Outcome::Done)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_complex_and_random() {
        let a = random_password();
        let b = random_password();
        assert_ne!(a.expose(), b.expose());
        let p = a.expose();
        assert_eq!(p.len(), 32);
        assert!(p.bytes().any(|c| c.is_ascii_lowercase()));
        assert!(p.bytes().any(|c| c.is_ascii_uppercase()));
        assert!(p.bytes().any(|c| c.is_ascii_digit()));
        assert!(p.bytes().any(|c| SYMBOLS.contains(&c)));
    }

    #[test]
    fn unicode_pwd_is_quoted_utf16le() {
        assert_eq!(
            unicode_pwd(&Secret::new("ab")),
            vec![b'"', 0, b'a', 0, b'b', 0, b'"', 0]
        );
    }
}
