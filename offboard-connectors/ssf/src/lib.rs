//! offboard as an OpenID Shared Signals transmitter (SSF 1.0 with CAEP 1.0 and RISC 1.0
//! events): when a run's actions land, every receiving app is told, in a Security Event Token
//! (RFC 8417), that the leaver's sessions, credentials or account are gone, so that it ends the
//! sessions it issued itself.
//!
//! A crate of its own (not a module of `offboard-core`) because it brings an HTTP surface
//! (axum endpoints a host mounts), an HTTP client for push delivery and JWT signing, which a
//! host that does not transmit signals should not have to link.
//!
//! # What a receiver gets
//! [`EventMap::standard`] says which action raises which event: RISC `account-disabled`
//! for suspend/disable/deactivate actions (`account-enabled` when one is rolled back),
//! RISC `account-purged` for deletes, CAEP `session-revoked` for session and token
//! revocations, CAEP `credential-change` for password resets and removed factors. A SET is
//! raised when the task succeeded (outcome `done` or `already_done`), never on a dry run.
//! Each SET carries `iss` (the transmitter's issuer), `aud` (the receiver's audience), `iat`
//! (when the action landed), `jti`, `txn` (the run's id), a top-level `sub_id` in the
//! receiver's [`SubjectFormat`] and one event in `events`; it is signed ES256 with
//! `typ: secevent+jwt` and the key's `kid`, verifiable with the JWKS at `jwks_uri`.
//!
//! # Delivery: the audit trail is the outbox
//! Every SET comes from one committed audit event, so nothing is raised that did not happen
//! and nothing that happened is lost: each stream keeps a durable position in the audit trail
//! (a [`Record`](offboard_core::store::Record) in the engine's store) and moves it only when
//! its receiver took the SET (push: 202 or a rejection the receiver called final; poll: an
//! acknowledgement). After a crash the stream starts from its position again, in order; the
//! `jti` is derived from the audit event's hash and the stream, so a SET delivered twice
//! carries the same `jti` and the receiver deduplicates. The [`Transmitter`] is an
//! [`AuditSink`](offboard_core::AuditSink): the engine's sink pump only wakes it, and each
//! push stream has a task of its own, so a dead receiver never slows the engine or another
//! stream; its events wait in the trail.
//!
//! Push (RFC 8935): POST `application/secevent+jwt` with the receiver's `Authorization`
//! header; 202 is accepted; 400 `invalid_request`, `invalid_key`, `invalid_issuer` or
//! `invalid_audience` rejects that SET for good (recorded as audit note `ssf_set_rejected`,
//! never retried); `authentication_failed`, `access_denied`, 401 and 403 pause the stream
//! (audit note `ssf_stream_paused`; its events wait until the receiver enables it again);
//! 5xx, 429, timeouts and connection errors are retried with a doubling backoff. Poll
//! (RFC 8936): the receiver POSTs `maxEvents`, `returnImmediately`, `ack` and `setErrs` to the
//! stream's poll endpoint.
//!
//! # Registering a receiver (e.g. Okta)
//! The host names each receiver, the bearer token it authenticates with at the management
//! endpoints, the audience its SETs carry and how it wants subjects named; the receiver then
//! creates its stream itself through the SSF API (Okta: a "Shared Signals" security events
//! provider pointed at the transmitter's issuer):
//!
//! ```no_run
//! # async fn host(store: std::sync::Arc<dyn offboard_core::Store>) -> offboard_core::Result<()> {
//! use offboard_core::Secret;
//! use offboard_ssf::{Receiver, SigningKey, SubjectFormat, Transmitter, TransmitterConfig};
//!
//! let config = TransmitterConfig::new("https://offboard.example.com/ssf-tenant")
//!     .receiver(Receiver::new(
//!         "okta",
//!         Secret::new("token the receiver presents"),
//!         "https://example.okta.com",
//!         SubjectFormat::Email,
//!     ));
//! let key = SigningKey::generate("2026-12")?;
//! let transmitter = Transmitter::start(config, store, key).await?;
//! // Mount the endpoints at the issuer's origin, and let the engine feed the transmitter:
//! let app: axum::Router = transmitter.router();
//! // EngineBuilder::audit_sink(std::sync::Arc::new(transmitter.clone()))
//! # let _ = app; Ok(()) }
//! ```
//!
//! The metadata is then at `/.well-known/ssf-configuration/ssf-tenant` (the issuer's path
//! inserted after the well-known prefix, SSF 1.0 section 7.2), and lists the other endpoints
//! under `/ssf-tenant/ssf/`.

#![forbid(unsafe_code)]

mod delivery;
mod events;
mod keys;
mod router;
mod stream;
mod subject;
mod transmitter;

pub use events::{
    CAEP_CREDENTIAL_CHANGE, CAEP_SESSION_REVOKED, EventMap, RISC_ACCOUNT_DISABLED,
    RISC_ACCOUNT_ENABLED, RISC_ACCOUNT_PURGED, SSF_VERIFICATION, SUPPORTED, Signal,
};
pub use keys::{SET_TYP, SigningKey};
pub use stream::{Delivery, POLL, PUSH, StreamConfig, StreamStatus};
pub use subject::SubjectFormat;
pub use transmitter::{DefaultSubjects, Receiver, Transmitter, TransmitterConfig};
