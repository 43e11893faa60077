//! Audit events, their hash chain, and the [`AuditSink`] trait.
//!
//! Every event has a sequence number and a hash that links it to the previous event's hash
//! ([`link_hash`]: SHA-256 over [`CHAIN_DOMAIN`], `seq`, `prev_hash` and the digest of the
//! event's canonical body, [`AuditEvent::body_digest`]); [`verify_chain`] names the first event
//! that was altered, inserted or removed. Because a link covers the body only through its
//! digest, a run's events can be proven part of the chain (up to a signed checkpoint) with the
//! digests of the other events in between, never their bodies. Stores assign `seq`, `prev_hash` and `hash` with [`AuditEvent::seal`] when they
//! append, in the same transaction as the state change the event records.
//!
//! # Personal data and erasure
//! Events name the departing person (their id, addresses, logins, group names). So that those
//! values can be erased without breaking the chain, the canonical body of an event with a
//! [`Salt`] holds, in place of each personal value, a salted commitment to it ([`personal`]:
//! which fields are personal, and how a commitment is made). A store seals an event with
//! [`Prepared`], which salts it when it holds personal data, and keeps it in its commitment
//! form ([`AuditEvent::redacted`], what its audit table and the JSON-lines file hold) with the
//! values and salt beside it ([`PersonalValues`], a separate table). Erasing a person deletes
//! those: the event left behind is the commitment form, whose body digest and hash are those
//! the event always had, so [`verify_chain`], checkpoints and evidence still verify, and a
//! changed value or commitment is still found ([`PersonalValues::mismatch`]). The in-memory
//! event keeps its values, for the engine, sinks and reports. Events sealed without a salt
//! (before chain format v2 had one) are hashed as they are, values and all.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorKind, Result};
use crate::machine::Event;
use crate::model::{AppId, PersonId};
use crate::run::{Run, RunId, RunState, TaskId};

pub mod personal;

pub use personal::{PersonalValues, Salt};

/// The hash before the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What an audit event records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum AuditKind {
    /// A run was planned and submitted; carries the planned run, the start of its replay.
    RunPlanned {
        /// The run as planned (state `Planned`).
        run: Box<Run>,
    },
    /// A state-machine event was applied.
    Transition {
        /// The event.
        event: Event,
        /// The task's state after it (name), for reports.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        task_state: Option<String>,
        /// The run's state after it.
        run_state: RunState,
    },
    /// A snapshot was stored before a reversible action.
    SnapshotTaken {
        /// The action.
        action: String,
    },
    /// A verification pass re-read the systems.
    Verified {
        /// Accounts checked.
        checked: u32,
        /// Accounts with no access left.
        revoked: u32,
        /// Access still found, as `app: finding`.
        remaining: Vec<String>,
        /// The result per app (empty in events recorded before it was kept).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        apps: Vec<crate::engine::AppVerification>,
    },
    /// A trigger was ignored because a run for the person is already open.
    Suppressed {
        /// The person.
        person: PersonId,
        /// The open run.
        open_run: RunId,
        /// What triggered.
        trigger: String,
    },
    /// Anything else worth keeping (e.g. a source-of-truth change).
    Note {
        /// Short name.
        name: String,
        /// Details.
        data: serde_json::Value,
    },
}

impl AuditKind {
    /// Short stable name for listings.
    pub fn name(&self) -> &str {
        match self {
            Self::RunPlanned { .. } => "run_planned",
            Self::Transition { event, .. } => event.name(),
            Self::SnapshotTaken { .. } => "snapshot_taken",
            Self::Verified { .. } => "verified",
            Self::Suppressed { .. } => "suppressed",
            Self::Note { name, .. } => name,
        }
    }
}

/// One append-only, hash-chained audit record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Position in the chain, from 1; 0 until a store appends it.
    pub seq: u64,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Who caused it (admin, `source:okta`, `worker:<id>`, `schedule`).
    pub actor: String,
    /// The run, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunId>,
    /// The task, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskId>,
    /// The app, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<AppId>,
    /// What happened.
    pub kind: AuditKind,
    /// The previous event's hash (empty until appended).
    #[serde(default)]
    pub prev_hash: String,
    /// This event's hash (empty until appended).
    #[serde(default)]
    pub hash: String,
    /// The salt of its personal values' commitments (see the module docs), once a store
    /// sealed it with [`Prepared`] and it holds personal data; `None` in the commitment form
    /// ([`AuditEvent::redacted`]) and for events without personal data. Not part of the
    /// canonical body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<Salt>,
}

impl AuditEvent {
    /// A new, unsealed event.
    pub fn new(at: DateTime<Utc>, actor: impl Into<String>, kind: AuditKind) -> Self {
        Self {
            seq: 0,
            at,
            actor: actor.into(),
            run: None,
            task: None,
            app: None,
            kind,
            prev_hash: String::new(),
            hash: String::new(),
            salt: None,
        }
    }

    /// Sets the run.
    pub fn with_run(mut self, run: RunId) -> Self {
        self.run = Some(run);
        self
    }

    /// Sets the task and its app.
    pub fn with_task(mut self, task: TaskId, app: AppId) -> Self {
        self.task = Some(task);
        self.app = Some(app);
        self
    }

    /// The canonical encoding of the event's body, which [`AuditEvent::body_digest`] hashes:
    /// JSON of every field but `seq`, `prev_hash` and `hash`, with object keys in sorted order
    /// at every level.
    pub fn canonical(&self) -> Vec<u8> {
        canonical_body(self).expect("audit events serialise")
    }

    /// SHA-256 (lowercase hex) of [`AuditEvent::canonical`].
    pub fn body_digest(&self) -> String {
        hex::encode(Sha256::digest(self.canonical()))
    }

    /// The hash this event should have given its `seq` and `prev_hash` ([`link_hash`] of its
    /// body digest).
    pub fn compute_hash(&self) -> String {
        link_hash(self.seq, &self.prev_hash, &self.body_digest())
    }

    /// Assigns `seq` and links the event after `prev_hash`. Stores call this when appending
    /// (after [`AuditEvent::salted`], or through [`Prepared`], which salts).
    pub fn seal(&mut self, seq: u64, prev_hash: &str) {
        self.seq = seq;
        self.prev_hash = prev_hash.to_owned();
        self.hash = self.compute_hash();
    }

    /// The event with a fresh [`Salt`] if it holds personal data and has none yet (and
    /// without one if it holds none), as [`Prepared::new`] salts it: an event a store seals
    /// this way can later have its personal values erased.
    pub fn salted(mut self) -> Self {
        let personal = serde_json::to_value(&self.kind)
            .map(|mut kind| personal::any(&mut kind))
            .unwrap_or(false);
        if !personal {
            self.salt = None;
        } else if self.salt.is_none() {
            self.salt = Some(Salt::random());
        }
        self
    }

    /// The event in its commitment form (each personal value replaced by its commitment, no
    /// salt; same body digest and hash) and the values it held, with their salt. An event
    /// without a salt is returned as it is, with `None`.
    ///
    /// # Errors
    /// If the event cannot be encoded (it always can: every field is plain data).
    pub fn redacted(&self) -> Result<(AuditEvent, Option<PersonalValues>)> {
        let Some(salt) = self.salt else {
            return Ok((self.clone(), None));
        };
        let mut kind = serde_json::to_value(&self.kind).map_err(encoding_error)?;
        let values = personal::redact(&mut kind, &salt);
        let out = AuditEvent {
            kind: serde_json::from_value(kind).map_err(encoding_error)?,
            salt: None,
            ..self.clone()
        };
        Ok((
            out,
            (!values.is_empty()).then_some(PersonalValues { salt, values }),
        ))
    }

    /// The event in commitment form (as a store read it) with its personal values put back.
    ///
    /// # Errors
    /// `Storage` when the values name fields the event does not have, or do not match the
    /// commitments it holds (`Tampered`).
    pub fn with_personal(mut self, stored: PersonalValues) -> Result<Self> {
        let mut kind = serde_json::to_value(&self.kind).map_err(encoding_error)?;
        if stored.mismatch(&kind).is_some() {
            return Err(Error::new(
                ErrorKind::Tampered,
                format!(
                    "the personal values of audit event {} do not match its commitments",
                    self.seq
                ),
            ));
        }
        stored.restore_into(&mut kind)?;
        self.kind = serde_json::from_value(kind)
            .map_err(|e| Error::storage("restored personal values do not decode").with_source(e))?;
        self.salt = Some(stored.salt);
        Ok(self)
    }

    /// The person the event is about when the event itself says: a planned run's person, a
    /// suppressed trigger's person, a note's `person` (data field). Stores also file an event
    /// under its run's person, so that erasing the person finds it.
    pub fn subject(&self) -> Option<&str> {
        match &self.kind {
            AuditKind::RunPlanned { run } => Some(run.person.id.as_str()),
            AuditKind::Suppressed { person, .. } => Some(person.as_str()),
            AuditKind::Note { data, .. } => data.get("person").and_then(serde_json::Value::as_str),
            _ => None,
        }
    }
}

/// The error of an event that would not encode.
fn encoding_error(e: serde_json::Error) -> Error {
    Error::new(ErrorKind::Internal, "an audit event could not be encoded").with_source(e)
}

/// JSON with object keys sorted at every level, independent of serde_json's features.
pub fn canonical_json(v: &serde_json::Value) -> String {
    let mut out = Vec::with_capacity(256);
    write_canonical(&mut out, v);
    into_string(out)
}

/// Appends `v`'s canonical encoding (see [`canonical_json`]) to `out`.
fn write_canonical(out: &mut Vec<u8>, v: &serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json_string(out, k);
                out.push(b':');
                write_canonical(out, &map[k]);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(out, item);
            }
            out.push(b']');
        }
        Value::String(s) => write_json_string(out, s),
        other => {
            use std::io::Write as _;
            let _ = write!(out, "{other}");
        }
    }
}

/// Appends `s` as a JSON string, escaped as serde_json escapes it, without a buffer of its own.
fn write_json_string(out: &mut Vec<u8>, s: &str) {
    if serde_json::to_writer(&mut *out, s).is_err() {
        // Writing a `str` into memory cannot fail; keep the encoding total all the same.
        out.extend_from_slice(b"\"\"");
    }
}

/// The text of an encoding built from `str`s and serde_json's output (always UTF-8).
fn into_string(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The domain-separation prefix of [`link_hash`] (the chain format's version).
pub const CHAIN_DOMAIN: &str = "offboard-audit-v2\n";

/// The hash of the event at `seq` after `prev_hash` whose body digest is `body_digest`:
/// lowercase hex of SHA-256 over the bytes of [`CHAIN_DOMAIN`], `seq` in decimal, a newline,
/// `prev_hash`, a newline and `body_digest` (all ASCII). The one place a link is defined.
pub fn link_hash(seq: u64, prev_hash: &str, body_digest: &str) -> String {
    let mut h = Sha256::new();
    h.update(CHAIN_DOMAIN.as_bytes());
    h.update(seq.to_string().as_bytes());
    h.update(b"\n");
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    h.update(body_digest.as_bytes());
    hex::encode(h.finalize())
}

/// An event's canonical body (see [`AuditEvent::canonical`]). The one place the encoding the
/// body digest covers is defined.
fn canonical_body(event: &AuditEvent) -> Result<Vec<u8>> {
    let mut value = body_object(event)?;
    if let (Some(salt), Some(kind)) = (&event.salt, value.get_mut("kind")) {
        personal::redact(kind, salt);
    }
    let mut out = Vec::with_capacity(1024);
    write_canonical(&mut out, &serde_json::Value::Object(value));
    Ok(out)
}

/// The JSON object of an event's body: every field but `seq`, `prev_hash`, `hash` and
/// `salt`, values as they are.
fn body_object(event: &AuditEvent) -> Result<serde_json::Map<String, serde_json::Value>> {
    let mut value = match serde_json::to_value(event) {
        Ok(serde_json::Value::Object(map)) => map,
        Ok(_) => {
            return Err(Error::new(
                ErrorKind::Internal,
                "an audit event could not be encoded: not a JSON object",
            ));
        }
        Err(e) => return Err(encoding_error(e)),
    };
    for key in ["hash", "prev_hash", "seq", "salt"] {
        value.remove(key);
    }
    Ok(value)
}

/// An event encoded ahead of its place in the chain, so that sealing it (which a store does
/// one event after another, in order) costs a hash and a few copies instead of encoding it.
///
/// The event is salted here when it holds personal data ([`AuditEvent::salted`]), and
/// encoded once: its commitment form's canonical body gives the body digest, and the same
/// bytes are what stores keep ([`Prepared::body`]); [`Prepared::personal`] is what they keep
/// beside it. [`Prepared::seal`] then only hashes the link, as [`AuditEvent::seal`] does.
#[derive(Debug, Clone)]
pub struct Prepared {
    event: AuditEvent,
    /// [`AuditEvent::body_digest`] of the event.
    digest: String,
    /// The canonical body of the commitment form (`{"actor":…}`), which the digest covers.
    canonical: String,
    /// The event's personal values and salt, if it holds any.
    personal: Option<PersonalValues>,
}

impl Prepared {
    /// Salts (see [`AuditEvent::salted`]) and encodes `event` (its `seq`, `prev_hash` and
    /// `hash` are ignored: sealing sets them).
    ///
    /// # Errors
    /// If the event cannot be encoded as JSON (it always can: every field is plain data).
    pub fn new(mut event: AuditEvent) -> Result<Self> {
        event.seq = 0;
        event.prev_hash = String::new();
        event.hash = String::new();
        let mut value = body_object(&event)?;
        let mut personal = None;
        if let Some(kind) = value.get_mut("kind") {
            if event.salt.is_none() && personal::any(kind) {
                event.salt = Some(Salt::random());
            }
            if let Some(salt) = event.salt {
                let values = personal::redact(kind, &salt);
                if values.is_empty() {
                    event.salt = None;
                } else {
                    personal = Some(PersonalValues { salt, values });
                }
            }
        }
        let mut out = Vec::with_capacity(1024);
        write_canonical(&mut out, &serde_json::Value::Object(value));
        let canonical = into_string(out);
        let digest = hex::encode(Sha256::digest(canonical.as_bytes()));
        Ok(Self {
            event,
            digest,
            canonical,
            personal,
        })
    }

    /// Assigns `seq`, links the event after `prev_hash` and hashes it, as [`AuditEvent::seal`]
    /// does.
    pub fn seal(&mut self, seq: u64, prev_hash: &str) {
        self.event.hash = link_hash(seq, prev_hash, &self.digest);
        self.event.seq = seq;
        self.event.prev_hash = prev_hash.to_owned();
    }

    /// The event, with its personal values and salt (sealed once [`Prepared::seal`] was
    /// called).
    pub fn event(&self) -> &AuditEvent {
        &self.event
    }

    /// The event, giving up its encoding.
    pub fn into_event(self) -> AuditEvent {
        self.event
    }

    /// Its personal values and salt, which stores keep beside [`Prepared::body`] (`None`: it
    /// holds none).
    pub fn personal(&self) -> Option<&PersonalValues> {
        self.personal.as_ref()
    }

    /// The event as stores keep it: the JSON of its commitment form ([`AuditEvent::redacted`]:
    /// no personal value, no salt), `seq`, `prev_hash` and `hash` included.
    ///
    /// # Errors
    /// Never (the signature is kept for stores that encode otherwise).
    pub fn body(&self) -> Result<String> {
        let e = &self.event;
        let mut out = Vec::with_capacity(self.canonical.len() + 200);
        out.extend_from_slice(b"{\"seq\":");
        out.extend_from_slice(e.seq.to_string().as_bytes());
        out.extend_from_slice(b",\"prev_hash\":");
        write_json_string(&mut out, &e.prev_hash);
        out.extend_from_slice(b",\"hash\":");
        write_json_string(&mut out, &e.hash);
        match self.canonical.strip_prefix('{') {
            Some(rest) if rest != "}" => {
                out.push(b',');
                out.extend_from_slice(rest.as_bytes());
            }
            _ => out.push(b'}'),
        }
        Ok(into_string(out))
    }
}

/// What is wrong with a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "problem")]
pub enum ChainProblem {
    /// The event's content does not match its hash.
    Altered {
        /// The event.
        seq: u64,
    },
    /// A sequence number is missing before this one.
    Missing {
        /// The first missing sequence number.
        seq: u64,
    },
    /// The event does not link to its predecessor (inserted or reordered).
    Inserted {
        /// The event.
        seq: u64,
    },
}

impl fmt::Display for ChainProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Altered { seq } => write!(f, "audit event {seq} was altered"),
            Self::Missing { seq } => write!(f, "audit event {seq} is missing"),
            Self::Inserted { seq } => write!(f, "audit event {seq} was inserted or reordered"),
        }
    }
}

/// Checks a chain read in sequence order, starting at seq 1.
///
/// # Errors
/// The first problem found.
pub fn verify_chain<'a>(
    events: impl IntoIterator<Item = &'a AuditEvent>,
) -> Result<u64, ChainProblem> {
    let mut prev = GENESIS_HASH.to_owned();
    let mut expected = 1;
    for e in events {
        if e.seq > expected {
            return Err(ChainProblem::Missing { seq: expected });
        }
        if e.seq < expected || e.prev_hash != prev {
            // The content may still hash correctly: it sits in the wrong place.
            return Err(if e.compute_hash() == e.hash && e.seq == expected {
                ChainProblem::Inserted { seq: e.seq }
            } else if e.compute_hash() != e.hash {
                ChainProblem::Altered { seq: e.seq }
            } else {
                ChainProblem::Inserted { seq: e.seq }
            });
        }
        if e.compute_hash() != e.hash {
            return Err(ChainProblem::Altered { seq: e.seq });
        }
        prev = e.hash.clone();
        expected += 1;
    }
    Ok(expected - 1)
}

impl From<ChainProblem> for Error {
    fn from(p: ChainProblem) -> Self {
        Error::new(ErrorKind::Tampered, p.to_string())
    }
}

/// Receives every audit event after it is committed.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait AuditSink: Send + Sync + fmt::Debug {
    /// Records events (already sealed by the store, in sequence order).
    ///
    /// # Behavior
    /// Called by the engine's pump for this sink, off the commit path, with the events after
    /// the last ones this sink took, contiguous and in `seq` order. An error is reported and
    /// the same events come again later (never skipped); it never undoes a commit. Receiving
    /// the same event twice (same `seq`) is harmless.
    async fn record(&self, events: &[AuditEvent]) -> Result<()>;

    /// The last `seq` this sink holds durably, when it keeps one (a file knows its last line):
    /// the engine's pump then starts after it, catching up on what was committed while the
    /// engine was down. `None` (the default): the sink keeps no position, and its pump starts
    /// at the first event the engine commits after it started.
    async fn position(&self) -> Result<Option<u64>> {
        Ok(None)
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<S: AuditSink + ?Sized> AuditSink for Arc<S> {
    async fn record(&self, events: &[AuditEvent]) -> Result<()> {
        (**self).record(events).await
    }
    async fn position(&self) -> Result<Option<u64>> {
        (**self).position().await
    }
}

/// An [`AuditSink`] that writes each event as a `tracing` info event (target `offboard::audit`).
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingSink;

#[async_trait]
impl AuditSink for TracingSink {
    async fn record(&self, events: &[AuditEvent]) -> Result<()> {
        for e in events {
            tracing::info!(
                target: "offboard::audit",
                seq = e.seq,
                actor = %e.actor,
                run = ?e.run,
                task = ?e.task,
                app = ?e.app,
                kind = e.kind.name(),
                "audit"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: usize) -> Vec<AuditEvent> {
        let mut prev = GENESIS_HASH.to_owned();
        (0..n)
            .map(|i| {
                let mut e = AuditEvent::new(
                    DateTime::from_timestamp(1_700_000_000 + i as i64, 0).unwrap(),
                    "admin",
                    AuditKind::Note {
                        name: "n".into(),
                        data: serde_json::json!({"i": i, "b": 1, "a": 2}),
                    },
                );
                e.seal(i as u64 + 1, &prev);
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    #[test]
    fn intact_chain_verifies() {
        assert_eq!(verify_chain(&chain(5)), Ok(5));
    }

    #[test]
    fn names_altered_missing_inserted() {
        let mut c = chain(5);
        c[2].actor = "mallory".into();
        assert_eq!(verify_chain(&c), Err(ChainProblem::Altered { seq: 3 }));

        let mut c = chain(5);
        c.remove(3);
        assert_eq!(verify_chain(&c), Err(ChainProblem::Missing { seq: 4 }));

        let mut c = chain(5);
        let mut forged = c[1].clone();
        forged.actor = "mallory".into();
        forged.hash = forged.compute_hash();
        c.insert(2, forged);
        assert!(matches!(
            verify_chain(&c),
            Err(ChainProblem::Inserted { seq: 2 })
        ));
    }

    /// Events of every kind but `RunPlanned` (whose run the stores' conformance suite seals
    /// and verifies), with and without run, task and app, and text that needs escaping.
    fn assorted() -> Vec<AuditEvent> {
        let at = DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        let (run, task) = (RunId::new_v4(), TaskId::new_v4());
        let kinds = vec![
            AuditKind::Transition {
                event: Event::TaskStarted { task },
                task_state: Some("running".into()),
                run_state: RunState::Running,
            },
            AuditKind::Transition {
                event: Event::Submitted,
                task_state: None,
                run_state: RunState::Planned,
            },
            AuditKind::SnapshotTaken {
                action: "okta.suspend".into(),
            },
            AuditKind::Verified {
                checked: 3,
                revoked: 2,
                remaining: vec!["okta: \"active\" \u{7f} é\n\\ ☃".into()],
                apps: Vec::new(),
            },
            AuditKind::Suppressed {
                person: PersonId::new("ada"),
                open_run: run,
                trigger: "hr".into(),
            },
            AuditKind::Note {
                name: "source".into(),
                data: serde_json::json!({"z": [1, 2.5, null, true, {"y": "\u{1}", "x": -3}], "a": {}}),
            },
        ];
        let mut events = Vec::new();
        for kind in kinds {
            events.push(AuditEvent::new(at, "admin \"root\"", kind.clone()));
            events.push(
                AuditEvent::new(at, "worker:1", kind)
                    .with_run(run)
                    .with_task(task, AppId::new("okta")),
            );
        }
        events
    }

    #[test]
    fn prepared_seals_as_the_event_does_and_stores_the_same_json() {
        let mut prev = GENESIS_HASH.to_owned();
        for (i, event) in assorted().into_iter().enumerate() {
            let seq = 1_000 + i as u64;
            let event = event.salted();
            let mut plain = event.clone();
            plain.seal(seq, &prev);
            let mut prepared = Prepared::new(event).unwrap();
            prepared.seal(seq, &prev);
            assert_eq!(prepared.event(), &plain, "event {i}");
            assert_eq!(prepared.event().hash, plain.compute_hash(), "event {i}");
            let stored: serde_json::Value =
                serde_json::from_str(&prepared.body().unwrap()).unwrap();
            assert_eq!(
                stored,
                serde_json::to_value(plain.redacted().unwrap().0).unwrap(),
                "event {i}"
            );
            prev = plain.hash;
        }
        // Sealing again (a group run a second time) re-links it.
        let first = assorted().remove(0);
        let mut prepared = Prepared::new(first.clone()).unwrap();
        prepared.seal(1, GENESIS_HASH);
        prepared.seal(2, "x\"y");
        let mut plain = first;
        plain.seal(2, "x\"y");
        assert_eq!(prepared.event().hash, plain.hash);
        assert_eq!(
            verify_chain([prepared.event()]),
            Err(ChainProblem::Missing { seq: 1 })
        );
    }

    /// The encoding and hash of a fixed event, as chains already stored have them: any change
    /// to how events are encoded or hashed breaks every stored chain, and fails here first.
    /// (Chain format v2; the expected digest and link were computed outside Rust, with
    /// Python's hashlib over the text below and `"offboard-audit-v2\n7\nabc\n" + digest`.)
    #[test]
    fn a_fixed_event_keeps_its_encoding_and_hash() {
        let mut e = AuditEvent::new(
            DateTime::from_timestamp(1_700_000_000, 5).unwrap(),
            "admin \"root\"",
            AuditKind::Note {
                name: "n".into(),
                data: serde_json::json!({"b": [1, "é\n"], "a": {"d": null, "c": true}}),
            },
        )
        .with_run(RunId(uuid::Uuid::from_u128(1)))
        .with_task(TaskId(uuid::Uuid::from_u128(2)), AppId::new("okta"));
        e.seal(7, "abc");
        assert_eq!(
            String::from_utf8(e.canonical()).unwrap(),
            r#"{"actor":"admin \"root\"","app":"okta","at":"2023-11-14T22:13:20.000000005Z","kind":{"data":{"a":{"c":true,"d":null},"b":[1,"é\n"]},"name":"n","type":"note"},"run":"00000000-0000-0000-0000-000000000001","task":"00000000-0000-0000-0000-000000000002"}"#
        );
        assert_eq!(
            e.body_digest(),
            "ebd876650d6627c3050b926884c4d5282f1d228279424dfb48ee36e357f5a739"
        );
        assert_eq!(
            e.hash,
            "24d2e87d340e837fa0f2405a353f4a2c2912a2ae89fb3ec3705b216264e7578f"
        );
    }

    /// A person's event: salted, stored in commitment form, erased.
    fn about_zelda(i: u64) -> AuditEvent {
        AuditEvent::new(
            DateTime::from_timestamp(1_700_000_000 + i as i64, 0).unwrap(),
            "admin",
            AuditKind::Suppressed {
                person: PersonId::new("zelda.quokkafeather"),
                open_run: RunId(uuid::Uuid::from_u128(9)),
                trigger: "hr".into(),
            },
        )
        .salted()
    }

    #[test]
    fn the_commitment_form_keeps_digest_and_hash_and_holds_no_value() {
        let mut prev = GENESIS_HASH.to_owned();
        let mut full = Vec::new();
        for i in 1..=3 {
            let mut e = about_zelda(i);
            assert!(e.salt.is_some());
            e.seal(i, &prev);
            prev.clone_from(&e.hash);
            full.push(e);
        }
        let (erased, values): (Vec<_>, Vec<_>) = full.iter().map(|e| e.redacted().unwrap()).unzip();
        for (e, full) in erased.iter().zip(&full) {
            assert_eq!(e.salt, None);
            assert_eq!(e.body_digest(), full.body_digest());
            assert_eq!(e.compute_hash(), full.hash);
            let text = serde_json::to_string(e).unwrap();
            assert!(!text.contains("zelda"), "{text}");
            assert!(!String::from_utf8(e.canonical()).unwrap().contains("zelda"));
        }
        assert_eq!(verify_chain(&erased), Ok(3));
        // Putting the values back restores the event; a changed value does not go back.
        let values: Vec<PersonalValues> = values.into_iter().map(Option::unwrap).collect();
        let back = erased[0].clone().with_personal(values[0].clone()).unwrap();
        assert_eq!(back, full[0]);
        let mut forged = values[0].clone();
        forged.values.insert("/person".into(), "mallory".into());
        let err = erased[0].clone().with_personal(forged).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Tampered);
        assert!(!format!("{err:?}").contains("mallory"));
        // A changed commitment breaks the chain.
        let mut tampered = erased.clone();
        if let AuditKind::Suppressed { person, .. } = &mut tampered[1].kind {
            *person = PersonId::new(personal::commitment(
                &Salt::from_bytes([0; 32]),
                "/person",
                "x",
            ));
        }
        assert_eq!(
            verify_chain(&tampered),
            Err(ChainProblem::Altered { seq: 2 })
        );
    }

    /// The salted encoding of a fixed event, computed outside Rust (Python's hashlib:
    /// `sha256(bytes(32*[7]) + b"/person\nzelda")` for the commitment, then the canonical
    /// text below), so that an independent verifier can recompute commitments.
    #[test]
    fn a_fixed_salted_event_keeps_its_commitment() {
        let mut e = AuditEvent::new(
            DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            "admin",
            AuditKind::Suppressed {
                person: PersonId::new("zelda"),
                open_run: RunId(uuid::Uuid::from_u128(1)),
                trigger: "hr".into(),
            },
        );
        e.salt = Some(Salt::from_bytes([7; 32]));
        let c = personal::commitment(&Salt::from_bytes([7; 32]), "/person", "zelda");
        assert_eq!(c, COMMITMENT_VECTOR);
        assert_eq!(
            String::from_utf8(e.canonical()).unwrap(),
            format!(
                r#"{{"actor":"admin","at":"2023-11-14T22:13:20Z","kind":{{"open_run":"00000000-0000-0000-0000-000000000001","person":"{c}","trigger":"hr","type":"suppressed"}}}}"#
            )
        );
    }

    const COMMITMENT_VECTOR: &str =
        "personal:d20b6c03237679b8210999d984b87b3bc7f78886f734904532eeb3bd2273dfa8";

    #[test]
    fn canonical_sorts_keys() {
        let v = serde_json::json!({"b": 1, "a": {"d": 1, "c": [2, {"f": 1, "e": 0}]}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"c":[2,{"e":0,"f":1}],"d":1},"b":1}"#
        );
    }
}
