//! The access tokens an OAuth token endpoint of a simulated tenant gave (OneLogin's,
//! SailPoint's): each valid until its lifetime ends or every token is revoked.

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
