//! Signed checkpoints of the audit chain, kept outside the database and verifiable offline.
//!
//! The hash chain ([`crate::audit`]) finds a changed event, but not someone with write access
//! to the database who deletes the tail and rewrites the stored head, or who re-seals the
//! chain forward from a changed event (recomputing every hash after it). A [`Checkpoint`] is
//! the chain head (its `seq` and `hash`) at a time, signed with Ed25519 by a
//! [`CheckpointSigner`] and written to a [`CheckpointSink`] the database cannot reach (a
//! JSON-lines file, an object store with a retention lock). Checking the stored chain against
//! the latest checkpoint ([`ChainAgainstCheckpoints`], used by every store's
//! `verify_audit_against`) reports such a chain with the first bad `seq`.
//!
//! # What is signed
//! The signature covers, as UTF-8 bytes ([`Checkpoint::signed_bytes`]):
//!
//! ```text
//! offboard-checkpoint-v1\n
//! seq:<seq in decimal>\n
//! hash:<hash, lowercase hex>\n
//! at:<time, RFC 3339 in UTC with nine fractional digits and a Z>\n
//! key_id:<key id>\n
//! ```
//!
//! The first line separates these signatures from any other use of the key. A checkpoint is
//! stored as one JSON object (fields `seq`, `hash`, `at`, `key_id`, `signature`; the
//! signature is the 64-byte Ed25519 signature in standard base64 with padding).
//!
//! # Keys
//! A signing key is read from a file or an environment variable holding either a PKCS#8 PEM
//! (`-----BEGIN PRIVATE KEY-----`, as `openssl genpkey -algorithm ed25519` writes) or the raw
//! 32-byte seed in base64. Its key id is configured, or the first 16 hex digits of the
//! SHA-256 of its public key. A [`CheckpointVerifier`] holds one or more public keys by key
//! id: after a rotation it holds the old key too, so checkpoints signed before the rotation
//! still verify. The secret key is never shown: not in `Debug`, not in an error.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::audit::AuditEvent;
use crate::error::{Error, ErrorKind, Result};

/// The first line of every checkpoint's signed bytes (domain separation).
pub const CHECKPOINT_DOMAIN: &str = "offboard-checkpoint-v1\n";

/// The longest key id accepted.
const MAX_KEY_ID: usize = 64;

/// The audit chain's head at a time, signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The `seq` of the last event the checkpoint covers.
    pub seq: u64,
    /// That event's hash.
    pub hash: String,
    /// When the checkpoint was made.
    pub at: DateTime<Utc>,
    /// Which key signed it.
    pub key_id: String,
    /// The Ed25519 signature of [`Checkpoint::signed_bytes`], in standard base64.
    pub signature: String,
}

impl Checkpoint {
    /// The bytes the signature covers (see the [module docs](self)).
    pub fn signed_bytes(&self) -> Vec<u8> {
        signed_bytes(self.seq, &self.hash, self.at, &self.key_id)
    }

    /// The checkpoint as one line of JSON (no newline), as sinks store it.
    ///
    /// # Errors
    /// Never in practice (every field is plain data); `Internal` if serde fails.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self)
            .map_err(|e| Error::internal("a checkpoint did not serialise").with_source(e))
    }

    /// Parses a checkpoint as [`Checkpoint::to_json`] writes it.
    ///
    /// # Errors
    /// `InvalidInput` when the text is not a checkpoint.
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text)
            .map_err(|e| Error::invalid_input("the text is not a checkpoint").with_source(e))
    }
}

/// The signed bytes of a checkpoint of (`seq`, `hash`) at `at` by `key_id`.
fn signed_bytes(seq: u64, hash: &str, at: DateTime<Utc>, key_id: &str) -> Vec<u8> {
    format!(
        "{CHECKPOINT_DOMAIN}seq:{seq}\nhash:{hash}\nat:{}\nkey_id:{key_id}\n",
        at.to_rfc3339_opts(SecondsFormat::Nanos, true)
    )
    .into_bytes()
}

/// Whether `id` can be a key id: 1 to 64 visible ASCII characters (no space, no newline, so
/// the signed bytes stay unambiguous).
fn valid_key_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_KEY_ID && id.bytes().all(|b| b.is_ascii_graphic())
}

/// The refusal of a key id that [`valid_key_id`] rejects.
fn bad_key_id() -> Error {
    Error::config(
        "checkpoints.key_id",
        "a key id is 1 to 64 visible ASCII characters (no spaces)",
    )
}

/// The default key id of a public key: the first 16 hex digits of its SHA-256.
fn derived_key_id(key: &VerifyingKey) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))[..16].to_owned()
}

/// Signs checkpoints with an Ed25519 key. Its `Debug` shows the key id and the public key,
/// never the secret key; no error it returns quotes the key material it was given.
pub struct CheckpointSigner {
    key: SigningKey,
    key_id: String,
}

impl fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointSigner")
            .field("key_id", &self.key_id)
            .field(
                "public_key",
                &BASE64.encode(self.key.verifying_key().as_bytes()),
            )
            .finish_non_exhaustive()
    }
}

impl CheckpointSigner {
    /// A signer from a 32-byte Ed25519 seed; its key id is derived from the public key.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let key = SigningKey::from_bytes(&seed);
        let key_id = derived_key_id(&key.verifying_key());
        Self { key, key_id }
    }

    /// A signer from key text: a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`) or the raw
    /// 32-byte seed in standard base64 (surrounding whitespace ignored).
    ///
    /// # Errors
    /// `Config` (key `checkpoints.key`) when the text is neither; the message never quotes
    /// the text.
    pub fn from_key_text(text: &str) -> Result<Self> {
        let text = text.trim();
        let key = if text.starts_with("-----BEGIN") {
            SigningKey::from_pkcs8_pem(text).map_err(|_| {
                Error::config(
                    "checkpoints.key",
                    "the PEM is not a PKCS#8 Ed25519 private key",
                )
            })?
        } else {
            let seed = BASE64
                .decode(text)
                .ok()
                .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                .ok_or_else(|| {
                    Error::config(
                        "checkpoints.key",
                        "the key is neither a PKCS#8 PEM nor a 32-byte seed in base64",
                    )
                })?;
            SigningKey::from_bytes(&seed)
        };
        let key_id = derived_key_id(&key.verifying_key());
        Ok(Self { key, key_id })
    }

    /// A signer from the key text in a file (see [`CheckpointSigner::from_key_text`]).
    ///
    /// # Errors
    /// `Config` when the file cannot be read or holds no key (the message names the file,
    /// never its content).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(
                "checkpoints.key_file",
                format!("the key file {} cannot be read", path.display()),
            )
            .with_source(e)
        })?;
        Self::from_key_text(&text).map_err(|_| {
            Error::config(
                "checkpoints.key_file",
                format!(
                    "the key file {} holds neither a PKCS#8 Ed25519 PEM nor a 32-byte seed in \
                     base64",
                    path.display()
                ),
            )
        })
    }

    /// A signer from the key text in environment variable `var` (see
    /// [`CheckpointSigner::from_key_text`]).
    ///
    /// # Errors
    /// `Config` when the variable is unset or holds no key (the message names the variable,
    /// never its value).
    pub fn from_env(var: &str) -> Result<Self> {
        let text = std::env::var(var).map_err(|_| {
            Error::config(
                "checkpoints.key_env",
                format!("the environment variable {var} is not set (or not UTF-8)"),
            )
        })?;
        Self::from_key_text(&text).map_err(|_| {
            Error::config(
                "checkpoints.key_env",
                format!(
                    "the environment variable {var} holds neither a PKCS#8 Ed25519 PEM nor a \
                     32-byte seed in base64"
                ),
            )
        })
    }

    /// Names the key `key_id` instead of the id derived from its public key.
    ///
    /// # Errors
    /// `Config` when `key_id` is not 1 to 64 visible ASCII characters.
    pub fn with_key_id(mut self, key_id: impl Into<String>) -> Result<Self> {
        let key_id = key_id.into();
        if !valid_key_id(&key_id) {
            return Err(bad_key_id());
        }
        self.key_id = key_id;
        Ok(self)
    }

    /// The key id checkpoints carry.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public key and its id, for a [`CheckpointVerifier`].
    pub fn public_key(&self) -> CheckpointKey {
        CheckpointKey {
            key_id: self.key_id.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// The Ed25519 signature of `message` in standard base64 (for other signed documents of
    /// the same key, e.g. evidence bundles; `message` should start with a domain line of its
    /// own, as checkpoints' signed bytes do).
    pub fn sign_bytes(&self, message: &[u8]) -> String {
        BASE64.encode(self.key.sign(message).to_bytes())
    }

    /// A checkpoint of the chain head (`seq`, `hash`) at `at`.
    pub fn sign(&self, seq: u64, hash: &str, at: DateTime<Utc>) -> Checkpoint {
        let signature = self.key.sign(&signed_bytes(seq, hash, at, &self.key_id));
        Checkpoint {
            seq,
            hash: hash.to_owned(),
            at,
            key_id: self.key_id.clone(),
            signature: BASE64.encode(signature.to_bytes()),
        }
    }
}

/// A public key that verifies checkpoints, with its key id.
#[derive(Clone, PartialEq, Eq)]
pub struct CheckpointKey {
    key_id: String,
    key: VerifyingKey,
}

impl fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointKey")
            .field("key_id", &self.key_id)
            .field("public_key", &self.to_base64())
            .finish()
    }
}

impl CheckpointKey {
    /// A public key from text: an SPKI PEM (`-----BEGIN PUBLIC KEY-----`) or the raw 32 bytes
    /// in standard base64. Its key id is `key_id`, or derived from the key (as a signer
    /// derives it) when `None`.
    ///
    /// # Errors
    /// `Config` when the text is no Ed25519 public key or the key id is not valid.
    pub fn from_text(key_id: Option<&str>, text: &str) -> Result<Self> {
        let text = text.trim();
        let key = if text.starts_with("-----BEGIN") {
            VerifyingKey::from_public_key_pem(text).ok()
        } else {
            BASE64
                .decode(text)
                .ok()
                .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                .and_then(|bytes| VerifyingKey::from_bytes(&bytes).ok())
        }
        .ok_or_else(|| {
            Error::config(
                "checkpoints.public_key",
                "the text is neither an Ed25519 public key PEM nor 32 bytes in base64",
            )
        })?;
        let key_id = match key_id {
            Some(id) if valid_key_id(id) => id.to_owned(),
            Some(_) => return Err(bad_key_id()),
            None => derived_key_id(&key),
        };
        Ok(Self { key_id, key })
    }

    /// The key id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The raw 32-byte public key in standard base64.
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.key.as_bytes())
    }

    /// The public key as an SPKI PEM.
    ///
    /// # Errors
    /// `Internal` if the encoding fails (it does not for an Ed25519 key).
    pub fn to_pem(&self) -> Result<String> {
        self.key
            .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .map_err(|e| Error::internal(format!("a public key did not encode: {e}")))
    }
}

/// The public keys checkpoints are verified with, by key id (several after a rotation).
#[derive(Debug, Clone, Default)]
pub struct CheckpointVerifier {
    keys: BTreeMap<String, CheckpointKey>,
}

impl CheckpointVerifier {
    /// A verifier with no key yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a public key (keep the old keys after a rotation).
    ///
    /// # Errors
    /// `Config` when another key already has this key id.
    pub fn with_key(mut self, key: CheckpointKey) -> Result<Self> {
        match self.keys.get(&key.key_id) {
            Some(known) if known != &key => Err(Error::config(
                "checkpoints.public_keys",
                format!("two different public keys have the key id {:?}", key.key_id),
            )),
            _ => {
                self.keys.insert(key.key_id.clone(), key);
                Ok(self)
            }
        }
    }

    /// The key ids it knows.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Checks `signature` (standard base64) of `message` with the key `key_id` names, as
    /// [`CheckpointSigner::sign_bytes`] made it.
    ///
    /// # Errors
    /// [`SignatureProblem::UnknownKey`] when no key has this key id;
    /// [`SignatureProblem::BadSignature`] when the signature does not verify (or is no
    /// signature).
    pub fn verify_bytes(
        &self,
        key_id: &str,
        message: &[u8],
        signature: &str,
    ) -> Result<(), SignatureProblem> {
        let key = self.keys.get(key_id).ok_or(SignatureProblem::UnknownKey)?;
        let signature = BASE64
            .decode(signature)
            .ok()
            .and_then(|bytes| Signature::from_slice(&bytes).ok())
            .ok_or(SignatureProblem::BadSignature)?;
        key.key
            .verify_strict(message, &signature)
            .map_err(|_| SignatureProblem::BadSignature)
    }

    /// Checks a checkpoint's signature with the key its key id names.
    ///
    /// # Errors
    /// [`CheckpointProblem::UnknownKey`] when no key has its key id;
    /// [`CheckpointProblem::BadSignature`] when the signature does not verify (or is no
    /// signature, or the checkpoint's fields could not have been signed).
    pub fn verify(&self, checkpoint: &Checkpoint) -> Result<(), CheckpointProblem> {
        if !self.keys.contains_key(&checkpoint.key_id) {
            return Err(CheckpointProblem::UnknownKey {
                seq: checkpoint.seq,
                key_id: checkpoint.key_id.clone(),
            });
        }
        let bad = || CheckpointProblem::BadSignature {
            seq: checkpoint.seq,
            key_id: checkpoint.key_id.clone(),
        };
        if checkpoint.hash.contains('\n') || !valid_key_id(&checkpoint.key_id) {
            return Err(bad());
        }
        self.verify_bytes(
            &checkpoint.key_id,
            &checkpoint.signed_bytes(),
            &checkpoint.signature,
        )
        .map_err(|_| bad())
    }
}

/// Why a signature made with [`CheckpointSigner::sign_bytes`] does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureProblem {
    /// No public key has the key id.
    UnknownKey,
    /// The signature does not verify (or is no signature).
    BadSignature,
}

/// What is wrong between a chain and the checkpoints it was checked against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "problem")]
pub enum CheckpointProblem {
    /// No public key has the checkpoint's key id (a key the verifier was not given, e.g. the
    /// key before a rotation).
    UnknownKey {
        /// The checkpoint's seq.
        seq: u64,
        /// Its key id.
        key_id: String,
    },
    /// The checkpoint's signature does not verify: it was forged or changed.
    BadSignature {
        /// The checkpoint's seq.
        seq: u64,
        /// Its key id.
        key_id: String,
    },
    /// The stored chain ends before the checkpoint: its tail was deleted (and the stored head
    /// rewritten, when the plain verification says intact).
    ChainTooShort {
        /// The last seq stored.
        chain_ends: u64,
        /// The checkpoint's seq.
        checkpoint_seq: u64,
    },
    /// The chain holds no event at the checkpoint's seq, though it goes on after it.
    EventMissing {
        /// The checkpoint's seq.
        seq: u64,
    },
    /// The event at the checkpoint's seq has another hash than the signed one: the chain was
    /// rewritten (or re-sealed forward) at or before this seq.
    HashDiffers {
        /// The checkpoint's seq.
        seq: u64,
        /// The highest seq of a checkpoint that matched before it (0: none): the change is
        /// after it.
        after: u64,
    },
}

impl CheckpointProblem {
    /// The first bad seq this problem names: the first event missing from a cut chain, or
    /// the seq of the checkpoint that does not match (or does not verify).
    pub fn first_bad_seq(&self) -> u64 {
        match self {
            Self::UnknownKey { seq, .. }
            | Self::BadSignature { seq, .. }
            | Self::EventMissing { seq }
            | Self::HashDiffers { seq, .. } => *seq,
            Self::ChainTooShort { chain_ends, .. } => chain_ends + 1,
        }
    }
}

impl fmt::Display for CheckpointProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownKey { seq, key_id } => write!(
                f,
                "checkpoint at seq {seq} is signed with key {key_id:?}, which the verifier \
                 does not know"
            ),
            Self::BadSignature { seq, key_id } => write!(
                f,
                "checkpoint at seq {seq} (key {key_id:?}) has a signature that does not verify"
            ),
            Self::ChainTooShort {
                chain_ends,
                checkpoint_seq,
            } => write!(
                f,
                "chain ends at seq {chain_ends} before checkpoint seq {checkpoint_seq}: the \
                 events from seq {} on were removed",
                chain_ends + 1
            ),
            Self::EventMissing { seq } => {
                write!(f, "the event at checkpoint seq {seq} is missing")
            }
            Self::HashDiffers { seq, after } => write!(
                f,
                "the event at checkpoint seq {seq} does not have the signed hash: the chain \
                 was rewritten after seq {after}, at or before seq {seq}"
            ),
        }
    }
}

/// The result of checking a chain against checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointOutcome {
    /// The seq of the latest checkpoint given.
    pub latest: u64,
    /// The highest seq of a checkpoint whose hash the chain matched (0: none).
    pub covered: u64,
    /// The first problem (`None`: every checkpoint verified and the chain matched them all).
    pub problem: Option<CheckpointProblem>,
}

impl CheckpointOutcome {
    /// Whether every checkpoint verified and the chain matched them all.
    pub fn is_intact(&self) -> bool {
        self.problem.is_none()
    }

    /// The first bad seq, when there is a problem.
    pub fn first_bad_seq(&self) -> Option<u64> {
        self.problem.as_ref().map(CheckpointProblem::first_bad_seq)
    }
}

impl From<CheckpointProblem> for Error {
    fn from(p: CheckpointProblem) -> Self {
        let seq = p.first_bad_seq();
        Error::new(ErrorKind::Tampered, p.to_string()).with_context("seq", seq)
    }
}

/// Checks a chain, read in seq order one event at a time ([`ChainAgainstCheckpoints::observe`]),
/// against signed checkpoints: the shared rule every store's `verify_audit_against` applies.
///
/// Every checkpoint's signature is checked first (one that does not verify is the problem,
/// and the chain is not compared with untrusted checkpoints). Then the event at each
/// checkpoint's seq must have exactly the signed hash; the chain must reach the latest
/// checkpoint.
#[derive(Debug)]
pub struct ChainAgainstCheckpoints {
    /// The checkpoints by seq, lowest first, not yet reached.
    pending: std::collections::VecDeque<Checkpoint>,
    latest: u64,
    covered: u64,
    last_seq: u64,
    problem: Option<CheckpointProblem>,
}

impl ChainAgainstCheckpoints {
    /// Starts a check against `checkpoints` (any order), whose signatures `verifier` checks.
    ///
    /// # Errors
    /// `InvalidInput` when no checkpoint is given.
    pub fn new(checkpoints: &[Checkpoint], verifier: &CheckpointVerifier) -> Result<Self> {
        let latest = checkpoints.iter().map(|c| c.seq).max().ok_or_else(|| {
            Error::invalid_input("no checkpoint to verify the audit chain against")
        })?;
        let mut sorted = checkpoints.to_vec();
        sorted.sort_by_key(|c| c.seq);
        let problem = sorted.iter().find_map(|c| verifier.verify(c).err());
        Ok(Self {
            pending: if problem.is_some() {
                Default::default()
            } else {
                sorted.into()
            },
            latest,
            covered: 0,
            last_seq: 0,
            problem,
        })
    }

    /// The stored event at `seq` has `hash` (events are observed in seq order).
    pub fn observe(&mut self, seq: u64, hash: &str) {
        self.last_seq = self.last_seq.max(seq);
        while self.problem.is_none() {
            let Some(next) = self.pending.front() else {
                return;
            };
            if next.seq > seq {
                return;
            }
            let next = self.pending.pop_front().expect("a front checkpoint");
            self.problem = if next.seq < seq {
                Some(CheckpointProblem::EventMissing { seq: next.seq })
            } else if next.hash != hash {
                Some(CheckpointProblem::HashDiffers {
                    seq: next.seq,
                    after: self.covered,
                })
            } else {
                self.covered = self.covered.max(next.seq);
                None
            };
        }
    }

    /// The outcome, once every stored event was observed.
    pub fn finish(mut self) -> CheckpointOutcome {
        if self.problem.is_none()
            && let Some(next) = self.pending.front()
        {
            self.problem = Some(CheckpointProblem::ChainTooShort {
                chain_ends: self.last_seq,
                checkpoint_seq: next.seq,
            });
        }
        CheckpointOutcome {
            latest: self.latest,
            covered: self.covered,
            problem: self.problem,
        }
    }
}

/// Checks a whole chain (in seq order) against checkpoints (see [`ChainAgainstCheckpoints`]).
///
/// # Errors
/// `InvalidInput` when no checkpoint is given.
pub fn check_chain_against<'a>(
    events: impl IntoIterator<Item = &'a AuditEvent>,
    checkpoints: &[Checkpoint],
    verifier: &CheckpointVerifier,
) -> Result<CheckpointOutcome> {
    let mut check = ChainAgainstCheckpoints::new(checkpoints, verifier)?;
    for e in events {
        check.observe(e.seq, &e.hash);
    }
    Ok(check.finish())
}

/// Where checkpoints are written: somewhere whoever can write the database cannot rewrite
/// (a file on another host, an object store with a retention lock).
#[async_trait]
pub trait CheckpointSink: Send + Sync + fmt::Debug {
    /// Stores a checkpoint durably.
    ///
    /// # Behavior
    /// Called by the engine off the commit path; an error is logged and the next trigger
    /// writes a checkpoint again (of the head then). Checkpoints come in increasing `seq`.
    async fn write(&self, checkpoint: &Checkpoint) -> Result<()>;

    /// The checkpoint with the highest `seq` stored (`None`: none yet).
    async fn latest(&self) -> Result<Option<Checkpoint>>;
}

#[async_trait]
impl<S: CheckpointSink + ?Sized> CheckpointSink for Arc<S> {
    async fn write(&self, checkpoint: &Checkpoint) -> Result<()> {
        (**self).write(checkpoint).await
    }
    async fn latest(&self) -> Result<Option<Checkpoint>> {
        (**self).latest().await
    }
}

/// A [`CheckpointSink`] in memory (tests, demos); it can be told to fail its writes.
#[derive(Debug, Default)]
pub struct MemoryCheckpointSink {
    state: Mutex<(Vec<Checkpoint>, bool)>,
}

impl MemoryCheckpointSink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every checkpoint written, in order.
    pub fn checkpoints(&self) -> Vec<Checkpoint> {
        self.lock().0.clone()
    }

    /// Makes the following writes fail (`true`) or succeed again (`false`).
    pub fn fail_writes(&self, fail: bool) {
        self.lock().1 = fail;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Vec<Checkpoint>, bool)> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl CheckpointSink for MemoryCheckpointSink {
    async fn write(&self, checkpoint: &Checkpoint) -> Result<()> {
        let mut state = self.lock();
        if state.1 {
            return Err(Error::storage("the checkpoint sink is failing (as told)").retryable());
        }
        state.0.push(checkpoint.clone());
        Ok(())
    }

    async fn latest(&self) -> Result<Option<Checkpoint>> {
        Ok(self.lock().0.iter().max_by_key(|c| c.seq).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditKind, GENESIS_HASH};

    fn chain(n: u64) -> Vec<AuditEvent> {
        let mut prev = GENESIS_HASH.to_owned();
        (1..=n)
            .map(|seq| {
                let mut e = AuditEvent::new(
                    DateTime::from_timestamp(1_700_000_000 + seq as i64, 0).unwrap(),
                    "admin",
                    AuditKind::Note {
                        name: "n".into(),
                        data: serde_json::json!({ "i": seq }),
                    },
                );
                e.seal(seq, &prev);
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_100, 7).unwrap()
    }

    /// The signed bytes are fixed: a verifier written from the module docs checks them.
    #[test]
    fn signed_bytes_are_the_documented_ones() {
        let signer = CheckpointSigner::from_seed([7; 32])
            .with_key_id("k1")
            .unwrap();
        let cp = signer.sign(42, "ab12", at());
        assert_eq!(
            String::from_utf8(cp.signed_bytes()).unwrap(),
            "offboard-checkpoint-v1\nseq:42\nhash:ab12\nat:2023-11-14T22:15:00.000000007Z\nkey_id:k1\n"
        );
        assert_eq!(
            cp.to_json().unwrap(),
            format!(
                r#"{{"seq":42,"hash":"ab12","at":"2023-11-14T22:15:00.000000007Z","key_id":"k1","signature":"{}"}}"#,
                cp.signature
            )
        );
        assert_eq!(Checkpoint::from_json(&cp.to_json().unwrap()).unwrap(), cp);
        let verifier = CheckpointVerifier::new()
            .with_key(signer.public_key())
            .unwrap();
        assert_eq!(verifier.verify(&cp), Ok(()));
        // Computed independently with Python's `cryptography` (Ed25519 signatures are
        // deterministic): `Ed25519PrivateKey.from_private_bytes(bytes([7] * 32)).sign(...)`
        // over the bytes above; and the PKCS#8 PEM it writes for that key (what
        // `openssl genpkey -algorithm ed25519` writes) loads as the same key.
        assert_eq!(
            cp.signature,
            "k2BydYVV1ezSpcNaYknXLHq1th+3MA3xQ00hR8/frm63A/wK+Wec4l4dEJxcRRkBQgHOnJqIOin2vNDNP/WGCA=="
        );
        let pem = "-----BEGIN PRIVATE KEY-----\n\
                   MC4CAQAwBQYDK2VwBCIEIAcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcH\n\
                   -----END PRIVATE KEY-----\n";
        assert_eq!(
            CheckpointSigner::from_key_text(pem).unwrap().public_key(),
            CheckpointSigner::from_seed([7; 32]).public_key()
        );
    }

    /// Guards the chain check: a cut chain names the first missing seq, a changed hash the
    /// checkpoint's seq, an intact chain the latest checkpoint as covered.
    #[test]
    fn chain_against_checkpoints_names_the_first_bad_seq() {
        let signer = CheckpointSigner::from_seed([1; 32]);
        let verifier = CheckpointVerifier::new()
            .with_key(signer.public_key())
            .unwrap();
        let c = chain(10);
        let cps = [
            signer.sign(4, &c[3].hash, at()),
            signer.sign(8, &c[7].hash, at()),
        ];
        let ok = check_chain_against(&c, &cps, &verifier).unwrap();
        assert!(ok.is_intact());
        assert_eq!((ok.latest, ok.covered), (8, 8));

        let cut = check_chain_against(&c[..6], &cps, &verifier).unwrap();
        assert_eq!(
            cut.problem,
            Some(CheckpointProblem::ChainTooShort {
                chain_ends: 6,
                checkpoint_seq: 8
            })
        );
        assert_eq!(cut.first_bad_seq(), Some(7));

        let mut resealed = c.clone();
        resealed[5].actor = "mallory".into();
        let mut prev = resealed[4].hash.clone();
        for e in &mut resealed[5..] {
            let seq = e.seq;
            e.seal(seq, &prev);
            prev = e.hash.clone();
        }
        assert_eq!(crate::audit::verify_chain(&resealed), Ok(10));
        let out = check_chain_against(&resealed, &cps, &verifier).unwrap();
        assert_eq!(
            out.problem,
            Some(CheckpointProblem::HashDiffers { seq: 8, after: 4 })
        );

        let mut gap = c.clone();
        gap.remove(7);
        let out = check_chain_against(&gap, &cps, &verifier).unwrap();
        assert_eq!(
            out.problem,
            Some(CheckpointProblem::EventMissing { seq: 8 })
        );

        assert_eq!(
            check_chain_against(&c, &[], &verifier).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
    }

    /// Guards signature checks: a forged checkpoint and an unknown key are reported before
    /// the chain is compared.
    #[test]
    fn forged_and_unknown_key_checkpoints_are_reported() {
        let signer = CheckpointSigner::from_seed([1; 32]);
        let verifier = CheckpointVerifier::new()
            .with_key(signer.public_key())
            .unwrap();
        let c = chain(3);
        let mut forged = signer.sign(3, &c[2].hash, at());
        forged.seq = 2;
        forged.hash = c[1].hash.clone();
        let out = check_chain_against(&c, &[forged], &verifier).unwrap();
        assert_eq!(
            out.problem,
            Some(CheckpointProblem::BadSignature {
                seq: 2,
                key_id: signer.key_id().to_owned()
            })
        );
        let mut garbage = signer.sign(3, &c[2].hash, at());
        garbage.signature = "not base64!".into();
        assert!(matches!(
            verifier.verify(&garbage),
            Err(CheckpointProblem::BadSignature { seq: 3, .. })
        ));
        let other = CheckpointSigner::from_seed([2; 32]);
        let out = check_chain_against(&c, &[other.sign(3, &c[2].hash, at())], &verifier).unwrap();
        assert!(matches!(
            out.problem,
            Some(CheckpointProblem::UnknownKey { seq: 3, .. })
        ));
    }

    /// Guards key loading: PEM and base64 seeds give the same key; the secret is in no Debug
    /// output and no error.
    #[test]
    fn keys_load_from_pem_and_seed_and_never_show_the_secret() {
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        let seed = [9u8; 32];
        let seed_b64 = BASE64.encode(seed);
        let pem = SigningKey::from_bytes(&seed)
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .unwrap();
        let from_pem = CheckpointSigner::from_key_text(&pem).unwrap();
        let from_seed = CheckpointSigner::from_key_text(&format!("  {seed_b64}\n")).unwrap();
        assert_eq!(from_pem.public_key(), from_seed.public_key());
        assert_eq!(from_pem.key_id().len(), 16);
        let debug = format!("{from_pem:?} {:?}", from_pem.public_key());
        assert!(!debug.contains(&seed_b64), "{debug}");
        assert!(!debug.contains(&hex::encode(seed)), "{debug}");
        assert!(!debug.contains("PRIVATE"), "{debug}");

        // A key text that is almost a seed: the error does not quote it.
        let almost = BASE64.encode([9u8; 31]);
        let err = CheckpointSigner::from_key_text(&almost).unwrap_err();
        assert!(!format!("{err} {err:?}").contains(&almost));
        let err = CheckpointSigner::from_key_text(&pem.replace('A', "B")).unwrap_err();
        assert!(!format!("{err} {err:?}").contains("PRIVATE KEY-----\n"));

        let public = from_pem.public_key();
        let again = CheckpointKey::from_text(None, &public.to_pem().unwrap()).unwrap();
        assert_eq!(again, public);
        let again = CheckpointKey::from_text(Some("k9"), &public.to_base64()).unwrap();
        assert_eq!(again.key_id(), "k9");
        assert!(from_pem.with_key_id("has space").is_err());
    }

    /// Guards loading from a file and from the environment: the key loads, and an error names
    /// the file or variable but never quotes what it holds.
    #[test]
    fn keys_load_from_a_file_and_the_environment() {
        let dir = std::env::temp_dir().join(format!("offboard-key-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir(&dir).unwrap();
        let file = dir.join("checkpoint.key");
        let seed_b64 = BASE64.encode([3u8; 32]);
        std::fs::write(&file, format!("{seed_b64}\n")).unwrap();
        let signer = CheckpointSigner::from_file(&file).unwrap();
        assert_eq!(
            signer.public_key(),
            CheckpointSigner::from_seed([3; 32]).public_key()
        );
        let almost = BASE64.encode([3u8; 33]);
        std::fs::write(&file, &almost).unwrap();
        let err = CheckpointSigner::from_file(&file).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.message().contains("checkpoint.key"), "{err}");
        assert!(!format!("{err} {err:?}").contains(&almost), "{err:?}");
        std::fs::remove_dir_all(&dir).unwrap();

        // Cargo sets CARGO_PKG_NAME for the test process: not a key; its value is not quoted.
        let err = CheckpointSigner::from_env("CARGO_PKG_NAME").unwrap_err();
        assert!(err.message().contains("CARGO_PKG_NAME"), "{err}");
        assert!(
            !format!("{err} {err:?}").contains("offboard-core"),
            "{err:?}"
        );
        let err = CheckpointSigner::from_env("OFFBOARD_TEST_NO_SUCH_KEY_VAR").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.message().contains("is not set"), "{err}");
    }
}
