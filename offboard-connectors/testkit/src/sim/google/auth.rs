//! OAuth of the simulated tenant: the token endpoint a service account with domain-wide
//! delegation calls, and the scope check every API call passes.
//!
//! # Behaviour modelled
//! - `POST /token` (standing for `https://oauth2.googleapis.com/token`) with
//!   `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>`: the JWT's claims
//!   must hold `iss`, `sub`, `aud`, `iat`, `exp` (at most one hour after `iat`) and a non-empty
//!   `scope` (space-separated). The answer is `{access_token, expires_in: 3600, token_type:
//!   "Bearer"}`, the token bound to exactly those scopes. The signature is not verified (the
//!   simulator holds no public key). Errors are OAuth's `{error, error_description}` with 400.
//! - Each API call's route needs one of the scopes its discovery document lists
//!   ([`GoogleTenant::ROUTES`](super::GoogleTenant::ROUTES)); a minted token without any of
//!   them gets Google's 403 `insufficientPermissions` ("Request had insufficient authentication
//!   scopes."). The tenant's fixed token ([`GoogleTenant::token`](super::GoogleTenant::token))
//!   holds every scope.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use serde_json::{Value, json};

use super::{GoogleTenant, Route, State};

/// The JWT bearer grant type (RFC 7523).
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// What a bearer token may do: every scope (the tenant's fixed token) or exactly these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Grant {
    All,
    Scopes(BTreeSet<String>),
}

fn oauth_error(error: &str, description: &str) -> (u16, Value) {
    (
        400,
        json!({"error": error, "error_description": description}),
    )
}

/// The claims of a JWT (its middle part), without checking the signature.
fn claims(assertion: &str) -> Option<Value> {
    let mut parts = assertion.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// `POST /token`: mints an access token bound to the assertion's scopes.
pub(super) fn token_endpoint(s: &mut State, form: &[u8]) -> (u16, Value) {
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(form).into_owned().collect();
    if form.get("grant_type").map(String::as_str) != Some(GRANT_TYPE) {
        return oauth_error("unsupported_grant_type", "Invalid grant_type");
    }
    let Some(claims) = form.get("assertion").and_then(|a| claims(a)) else {
        return oauth_error("invalid_grant", "Invalid JWT: malformed assertion");
    };
    let text = |k: &str| {
        claims
            .get(k)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    };
    let (iat, exp) = (claims["iat"].as_u64(), claims["exp"].as_u64());
    if text("iss").is_none() || text("sub").is_none() || text("aud").is_none() {
        return oauth_error(
            "invalid_grant",
            "Invalid JWT: iss, sub and aud are required",
        );
    }
    match (iat, exp) {
        (Some(i), Some(e)) if e > i && e - i <= 3600 => {}
        _ => {
            return oauth_error(
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived token (60 minutes)",
            );
        }
    }
    let scopes: BTreeSet<String> = text("scope")
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if scopes.is_empty() {
        return oauth_error("invalid_scope", "Empty or missing scope not allowed.");
    }
    let token = format!("ya29.sim-sa-{}", uuid::Uuid::new_v4().simple());
    s.grants.insert(token.clone(), scopes);
    (
        200,
        json!({"access_token": token, "expires_in": 3600, "token_type": "Bearer"}),
    )
}

/// The served route `method` on `segs` (decoded path segments) is, if any.
pub(super) fn route(method: &str, segs: &[&str]) -> Option<&'static Route> {
    GoogleTenant::ROUTES
        .iter()
        .find(|(m, path, _)| *m == method && crate::sim::layer::template_matches(path, segs))
}

/// Google's answer to a token without any of the method's scopes.
pub(super) fn insufficient_scopes() -> (u16, Value) {
    (
        403,
        json!({
            "error": {
                "code": 403,
                "message": "Request had insufficient authentication scopes.",
                "errors": [{
                    "message": "Insufficient Permission",
                    "domain": "global",
                    "reason": "insufficientPermissions",
                }],
                "status": "PERMISSION_DENIED",
                "details": [{
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                    "domain": "googleapis.com",
                }],
            }
        }),
    )
}

/// Whether `grant` may call `method` on `segs` (routes not served are left to the router).
pub(super) fn allows(grant: &Grant, method: &str, segs: &[&str]) -> bool {
    match (grant, route(method, segs)) {
        (Grant::Scopes(have), Some((_, _, need))) => need.iter().any(|n| have.contains(*n)),
        _ => true,
    }
}
