//! The access tokens an OAuth token endpoint of a simulated tenant gave (OneLogin's,
//! SailPoint's): each valid until its lifetime ends or every token is revoked.
//! `token_controls!` writes the tenants' public controls of them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use wiremock::Request;

use super::layer;

/// Tokens given, their lifetime and how many were given.
#[derive(Debug)]
pub(crate) struct Tokens {
    issued: HashMap<String, Instant>,
    /// How long a new token lives, in seconds.
    pub(crate) lifetime: u64,
    /// How many tokens were given.
    pub(crate) count: usize,
}

impl Tokens {
    /// No token given yet; new ones live `lifetime` seconds.
    pub(crate) fn new(lifetime: u64) -> Self {
        Self {
            issued: HashMap::new(),
            lifetime,
            count: 0,
        }
    }

    /// A new token and its lifetime in seconds.
    pub(crate) fn issue(&mut self) -> (String, u64) {
        let token = uuid::Uuid::new_v4().simple().to_string();
        self.issued.insert(
            token.clone(),
            Instant::now() + Duration::from_secs(self.lifetime),
        );
        self.count += 1;
        (token, self.lifetime)
    }

    /// Revokes every token given so far.
    pub(crate) fn revoke_all(&mut self) {
        self.issued.clear();
    }

    /// Whether the request carries a live token as `Authorization: Bearer <token>` (the
    /// scheme in any case, RFC 7235: OneLogin and SailPoint name it `bearer`).
    pub(crate) fn accept(&self, request: &Request) -> bool {
        layer::authorization(request)
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .and_then(|(_, t)| self.issued.get(t))
            .is_some_and(|until| *until > Instant::now())
    }
}

/// The public token controls of a tenant whose `self.shared.state().tokens` are its
/// [`Tokens`]: `set_token_lifetime`, `revoke_tokens`, `token_requests`. `$vendor` names the
/// vendor's own lifetime (for the docs).
macro_rules! token_controls {
    ($vendor:literal) => {
        #[doc = concat!("How long new access tokens live, in seconds (", $vendor, ").")]
        pub fn set_token_lifetime(&self, secs: u64) {
            self.shared.state().tokens.lifetime = secs;
        }

        /// Revokes every access token given so far.
        pub fn revoke_tokens(&self) {
            self.shared.state().tokens.revoke_all();
        }

        /// How many tokens the token endpoint gave.
        pub fn token_requests(&self) -> usize {
            self.shared.state().tokens.count
        }
    };
}

pub(crate) use token_controls;
