//! Signed, expiring task tokens:
//! `base64url(task_id ":" token_id ":" expiry) "." base64url(HMAC-SHA256)`.
//!
//! Two kinds, told apart by the MAC's domain (one cannot pass for the other):
//! - a **link** token, mailed in the link, only opens the task page ([`Purpose::Link`]);
//! - a **form** token, minted for the page's form when it is shown, completes the task
//!   ([`Purpose::Form`]). It carries the id of the link token it was minted from, and that
//!   link's expiry.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use offboard_core::{Error, ErrorKind, Result, Secret};
use sha2::Sha256;

/// What a token is good for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// Mailed in the link: opens the task page, completes nothing.
    Link,
    /// In the page's form, posted back: completes the task.
    Form,
}

impl Purpose {
    fn domain(self) -> &'static [u8] {
        match self {
            Self::Link => b"offboard-email-task-link-v2\n",
            Self::Form => b"offboard-email-task-form-v2\n",
        }
    }

    fn other(self) -> Self {
        match self {
            Self::Link => Self::Form,
            Self::Form => Self::Link,
        }
    }

    /// The operation its errors name.
    pub(crate) fn operation(self) -> &'static str {
        match self {
            Self::Link => "email.view",
            Self::Form => "email.complete",
        }
    }
}

/// What a good token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claims {
    /// The task's id.
    pub task: String,
    /// The id of the link token (for a form token: of the link it was minted from).
    pub token_id: String,
    /// When it stops working.
    pub expires: DateTime<Utc>,
}

fn mac(key: &Secret, purpose: Purpose) -> Result<Hmac<Sha256>> {
    let mut m = Hmac::<Sha256>::new_from_slice(key.expose().as_bytes())
        .map_err(|_| Error::internal("HMAC key"))?;
    m.update(purpose.domain());
    Ok(m)
}

/// Signs a `purpose` token for `task` with id `token_id` that expires at `expires`.
pub(crate) fn sign(
    key: &Secret,
    purpose: Purpose,
    task: &str,
    token_id: &str,
    expires: DateTime<Utc>,
) -> Result<String> {
    let payload = format!("{task}:{token_id}:{}", expires.timestamp());
    let mut m = mac(key, purpose)?;
    m.update(payload.as_bytes());
    let sig = m.finalize().into_bytes();
    Ok(format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(payload.as_bytes()),
        URL_SAFE_NO_PAD.encode(sig)
    ))
}

fn invalid(purpose: Purpose) -> Error {
    Error::new(ErrorKind::Unauthenticated, "invalid task token").with_operation(purpose.operation())
}

/// Verifies a `purpose` token (signature in constant time, then expiry); returns its claims.
///
/// # Errors
/// `Unauthenticated`: "invalid task token" (wrong key, tampered, malformed), "task token
/// expired", or, for a token of the other purpose, a message saying which token is needed
/// (a link's token passed to complete a task, say). Errors never quote the token.
pub(crate) fn verify(
    key: &Secret,
    purpose: Purpose,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Claims> {
    let (p, s) = token
        .trim()
        .split_once('.')
        .ok_or_else(|| invalid(purpose))?;
    let payload = URL_SAFE_NO_PAD.decode(p).map_err(|_| invalid(purpose))?;
    let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| invalid(purpose))?;
    let signed = |purpose: Purpose| -> Result<bool> {
        let mut m = mac(key, purpose)?;
        m.update(&payload);
        Ok(m.verify_slice(&sig).is_ok())
    };
    if !signed(purpose)? {
        if signed(purpose.other())? {
            let message = match purpose {
                Purpose::Form => {
                    "a link's task token only opens the task page: completing takes the page \
                     form's token, posted in the request body"
                }
                Purpose::Link => "a task page form's token does not open the task page",
            };
            return Err(
                Error::new(ErrorKind::Unauthenticated, message).with_operation(purpose.operation())
            );
        }
        return Err(invalid(purpose));
    }
    let payload = String::from_utf8(payload).map_err(|_| invalid(purpose))?;
    let (rest, exp) = payload.rsplit_once(':').ok_or_else(|| invalid(purpose))?;
    let (task, token_id) = rest.rsplit_once(':').ok_or_else(|| invalid(purpose))?;
    let exp: i64 = exp.parse().map_err(|_| invalid(purpose))?;
    let expires = DateTime::<Utc>::from_timestamp(exp, 0).ok_or_else(|| invalid(purpose))?;
    if now >= expires {
        return Err(Error::new(ErrorKind::Unauthenticated, "task token expired")
            .with_operation(purpose.operation())
            .with_context("expired_at", expires.to_rfc3339()));
    }
    Ok(Claims {
        task: task.to_string(),
        token_id: token_id.to_string(),
        expires,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_expiry_and_tampering() {
        let k = Secret::new("k");
        let now = Utc::now();
        let exp = now + chrono::Duration::hours(1);
        let t = sign(&k, Purpose::Link, "email-1", "t1", exp).unwrap();
        assert!(!t.contains(['+', '/', '=']), "base64url without padding");
        let claims = verify(&k, Purpose::Link, &t, now).unwrap();
        assert_eq!(
            (claims.task.as_str(), claims.token_id.as_str()),
            ("email-1", "t1")
        );
        assert_eq!(claims.expires.timestamp(), exp.timestamp());
        let e = verify(&k, Purpose::Link, &t, now + chrono::Duration::hours(2)).unwrap_err();
        assert!(e.to_string().contains("expired"), "{e}");
        assert!(verify(&Secret::new("other"), Purpose::Link, &t, now).is_err());
        let forged = sign(&k, Purpose::Link, "email-2", "t1", exp).unwrap();
        let (p2, _) = forged.split_once('.').unwrap();
        let (_, s1) = t.split_once('.').unwrap();
        let e = verify(&k, Purpose::Link, &format!("{p2}.{s1}"), now).unwrap_err();
        assert_eq!(e.message(), "invalid task token");
        assert!(verify(&k, Purpose::Link, "garbage", now).is_err());
    }

    /// Guards the GET/POST split: a link's token (what a mail scanner prefetching the link
    /// sees) never passes as the form's token that completes a task, nor the reverse.
    #[test]
    fn a_token_of_one_purpose_never_passes_for_the_other() {
        let k = Secret::new("k");
        let now = Utc::now();
        let exp = now + chrono::Duration::hours(1);
        let link = sign(&k, Purpose::Link, "email-1", "t1", exp).unwrap();
        let form = sign(&k, Purpose::Form, "email-1", "t1", exp).unwrap();
        assert_ne!(link, form);
        let e = verify(&k, Purpose::Form, &link, now).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unauthenticated);
        assert!(e.message().contains("only opens the task page"), "{e}");
        let e = verify(&k, Purpose::Link, &form, now).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unauthenticated);
        assert!(verify(&k, Purpose::Form, &form, now).is_ok());
    }
}
