//! Signed, expiring task tokens: `base64url(task_id ":" expiry) "." base64url(HMAC-SHA256)`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use offboard_core::{Error, ErrorKind, Result, Secret};
use sha2::Sha256;

const DOMAIN: &[u8] = b"offboard-email-task-v1\n";

fn mac(key: &Secret) -> Result<Hmac<Sha256>> {
    Hmac::<Sha256>::new_from_slice(key.expose().as_bytes()).map_err(|_| Error::internal("HMAC key"))
}

/// Signs a token for `task` that expires at `expires`.
pub(crate) fn sign(key: &Secret, task: &str, expires: DateTime<Utc>) -> Result<String> {
    let payload = format!("{task}:{}", expires.timestamp());
    let mut m = mac(key)?;
    m.update(DOMAIN);
    m.update(payload.as_bytes());
    let sig = m.finalize().into_bytes();
    Ok(format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(payload.as_bytes()),
        URL_SAFE_NO_PAD.encode(sig)
    ))
}

fn invalid() -> Error {
    Error::new(ErrorKind::Unauthenticated, "invalid task token").with_operation("email.complete")
}

/// Verifies `token` (signature in constant time, then expiry); returns the task id.
pub(crate) fn verify(key: &Secret, token: &str, now: DateTime<Utc>) -> Result<String> {
    let (p, s) = token.trim().split_once('.').ok_or_else(invalid)?;
    let payload = URL_SAFE_NO_PAD.decode(p).map_err(|_| invalid())?;
    let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| invalid())?;
    let mut m = mac(key)?;
    m.update(DOMAIN);
    m.update(&payload);
    m.verify_slice(&sig).map_err(|_| invalid())?;
    let payload = String::from_utf8(payload).map_err(|_| invalid())?;
    let (task, exp) = payload.rsplit_once(':').ok_or_else(invalid)?;
    let exp: i64 = exp.parse().map_err(|_| invalid())?;
    let expires = DateTime::<Utc>::from_timestamp(exp, 0).ok_or_else(invalid)?;
    if now >= expires {
        return Err(Error::new(ErrorKind::Unauthenticated, "task token expired")
            .with_operation("email.complete")
            .with_context("expired_at", expires.to_rfc3339()));
    }
    Ok(task.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_expiry_and_tampering() {
        let k = Secret::new("k");
        let now = Utc::now();
        let t = sign(&k, "email-1", now + chrono::Duration::hours(1)).unwrap();
        assert!(!t.contains(['+', '/', '=']), "base64url without padding");
        assert_eq!(verify(&k, &t, now).unwrap(), "email-1");
        let e = verify(&k, &t, now + chrono::Duration::hours(2)).unwrap_err();
        assert!(e.to_string().contains("expired"), "{e}");
        assert!(verify(&Secret::new("other"), &t, now).is_err());
        let forged = sign(&k, "email-2", now + chrono::Duration::hours(1)).unwrap();
        let (p2, _) = forged.split_once('.').unwrap();
        let (_, s1) = t.split_once('.').unwrap();
        let e = verify(&k, &format!("{p2}.{s1}"), now).unwrap_err();
        assert_eq!(e.message(), "invalid task token");
        assert!(verify(&k, "garbage", now).is_err());
    }
}
