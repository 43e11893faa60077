//! The transmitter's signing keys (ES256), their rotation and the JWKS receivers verify with.

use std::fmt;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use offboard_core::{Error, ErrorKind, Result, Secret};
use serde::Serialize;

/// The `typ` of every SET (RFC 8417 section 2.3).
pub const SET_TYP: &str = "secevent+jwt";

/// One ES256 (P-256) signing key and its key id. Its Debug shows the key id only.
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    key: EncodingKey,
    jwk: Jwk,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh P-256 key named `kid`.
    ///
    /// # Errors
    /// `InvalidInput` for an empty `kid`; `Internal` if the system's random source fails.
    pub fn generate(kid: impl Into<String>) -> Result<Self> {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| Error::new(ErrorKind::Internal, "generating an ES256 key failed"))?;
        Self::from_der(kid.into(), pkcs8.as_ref())
    }

    /// The P-256 key in `pem` (PKCS#8, `-----BEGIN PRIVATE KEY-----`), named `kid`.
    ///
    /// # Errors
    /// `InvalidInput` for an empty `kid` or a PEM that is not a P-256 private key (the error
    /// never quotes the key).
    pub fn from_pkcs8_pem(kid: impl Into<String>, pem: &Secret) -> Result<Self> {
        let key = EncodingKey::from_ec_pem(pem.expose().as_bytes()).map_err(|_| {
            Error::invalid_input("the SSF signing key is not a PKCS#8 EC private key in PEM")
        })?;
        Self::with_key(kid.into(), key)
    }

    fn from_der(kid: String, der: &[u8]) -> Result<Self> {
        Self::with_key(kid, EncodingKey::from_ec_der(der))
    }

    fn with_key(kid: String, key: EncodingKey) -> Result<Self> {
        if kid.is_empty() || kid.len() > 128 {
            return Err(Error::invalid_input(
                "a signing key's id must have 1 to 128 characters",
            ));
        }
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256)
            .map_err(|_| Error::invalid_input("the SSF signing key is not a P-256 key"))?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        Ok(Self { kid, key, jwk })
    }

    /// The key id (`kid` of the SETs it signs and of its JWK).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK.
    pub fn public_jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// `claims` as a signed SET: `typ: secevent+jwt`, `alg: ES256`, this key's `kid`.
    pub(crate) fn sign<C: Serialize>(&self, claims: &C) -> Result<String> {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some(SET_TYP.to_owned());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).map_err(|e| {
            Error::new(
                ErrorKind::Internal,
                format!("signing a SET failed: {}", e.kind_name()),
            )
        })
    }
}

/// The keys of a transmitter: the one that signs, and the ones still published so that SETs
/// signed before a rotation verify until those keys are retired.
#[derive(Debug, Clone)]
pub(crate) struct KeySet {
    active: SigningKey,
    previous: Vec<Jwk>,
}

impl KeySet {
    pub(crate) fn new(active: SigningKey) -> Self {
        Self {
            active,
            previous: Vec::new(),
        }
    }

    pub(crate) fn active(&self) -> &SigningKey {
        &self.active
    }

    /// Makes `next` the signing key; the old one stays in the JWKS.
    pub(crate) fn rotate(&mut self, next: SigningKey) -> Result<()> {
        if self.contains(next.kid()) {
            return Err(
                Error::invalid_input("a key with that id is already published")
                    .with_context("kid", next.kid()),
            );
        }
        let old = std::mem::replace(&mut self.active, next);
        self.previous.push(old.jwk);
        Ok(())
    }

    /// Removes a previous key from the JWKS.
    pub(crate) fn retire(&mut self, kid: &str) -> Result<()> {
        if self.active.kid() == kid {
            return Err(Error::invalid_input(
                "the signing key cannot be retired; rotate first",
            ));
        }
        let before = self.previous.len();
        self.previous
            .retain(|j| j.common.key_id.as_deref() != Some(kid));
        if self.previous.len() == before {
            return Err(Error::new(ErrorKind::NotFound, "no such key").with_context("kid", kid));
        }
        Ok(())
    }

    fn contains(&self, kid: &str) -> bool {
        self.active.kid() == kid
            || self
                .previous
                .iter()
                .any(|j| j.common.key_id.as_deref() == Some(kid))
    }

    pub(crate) fn jwks(&self) -> JwkSet {
        let mut keys = vec![self.active.jwk.clone()];
        keys.extend(self.previous.iter().cloned());
        JwkSet { keys }
    }
}

/// The name of a jsonwebtoken error's kind, without any data it carries.
trait KindName {
    fn kind_name(&self) -> String;
}

impl KindName for jsonwebtoken::errors::Error {
    fn kind_name(&self) -> String {
        let full = format!("{:?}", self.kind());
        full.split(['(', ' ', '{']).next().unwrap_or("").to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};

    #[test]
    fn a_set_is_es256_with_typ_and_kid_and_verifies_with_the_jwk() {
        let key = SigningKey::generate("k1").unwrap();
        let jwt = key
            .sign(&serde_json::json!({"jti": "x", "aud": "a"}))
            .unwrap();
        let header = decode_header(&jwt).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(header.typ.as_deref(), Some(SET_TYP));
        assert_eq!(header.kid.as_deref(), Some("k1"));
        let decoding = DecodingKey::from_jwk(key.public_jwk()).unwrap();
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&["a"]);
        v.required_spec_claims.clear();
        let got = decode::<serde_json::Value>(&jwt, &decoding, &v).unwrap();
        assert_eq!(got.claims["jti"], "x");
    }

    #[test]
    fn rotation_keeps_the_old_key_published_until_retired() {
        let mut set = KeySet::new(SigningKey::generate("k1").unwrap());
        set.rotate(SigningKey::generate("k2").unwrap()).unwrap();
        assert_eq!(set.active().kid(), "k2");
        let kids = |s: &KeySet| {
            s.jwks()
                .keys
                .iter()
                .map(|k| k.common.key_id.clone().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(kids(&set), ["k2", "k1"]);
        assert!(set.rotate(SigningKey::generate("k1").unwrap()).is_err());
        assert!(set.retire("k2").is_err(), "the active key stays");
        set.retire("k1").unwrap();
        assert_eq!(kids(&set), ["k2"]);
        assert_eq!(set.retire("k1").unwrap_err().kind(), ErrorKind::NotFound);
    }

    #[test]
    fn a_bad_pem_is_refused_without_quoting_it() {
        let pem = Secret::new(
            "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END PRIVATE KEY-----\n",
        );
        let e = SigningKey::from_pkcs8_pem("k", &pem).unwrap_err();
        assert!(!e.to_string().contains("c2VjcmV0"), "{e}");
        assert!(!format!("{e:?}").contains("c2VjcmV0"));
        let key = SigningKey::generate("kid-7").unwrap();
        assert_eq!(format!("{key:?}"), "SigningKey { kid: \"kid-7\", .. }");
        assert!(SigningKey::generate("").is_err());
    }
}
