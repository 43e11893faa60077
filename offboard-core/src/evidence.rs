//! Evidence bundles: one signed file per run that an auditor verifies offline, with nothing
//! but the file and the public key ([`verify_bundle`]).
//!
//! A bundle holds every audit event of the run as the store keeps it (its JSON), the digests
//! of the other events of the chain between them and a signed [`Checkpoint`] (never their
//! bodies, which hold other people's data), that checkpoint, a summary (the plan and its
//! digest, the confirmations, the verification passes per app, the delegated tasks and who
//! closed them, the run's last state) and the engine version; it is signed with Ed25519 by a
//! [`CheckpointSigner`] (the same key type as checkpoints). [`build_bundle`] makes one from a
//! store; the verifier re-derives the summary from the events and refuses a bundle whose
//! summary says anything else.
//!
//! # Format `offboard-evidence-v1`
//! The file is one JSON object in canonical form followed by one newline (`\n`). Canonical
//! form ([`crate::audit::canonical_json`]): no whitespace, object keys sorted by their UTF-8
//! bytes at every level, strings escaped as JSON requires with `\"`, `\\`, `\b`, `\f`, `\n`,
//! `\r`, `\t` and `\u00xx` (lowercase hex) for the other control characters and nothing else
//! escaped (non-ASCII text is written as UTF-8), integers in decimal. A verifier parses the
//! file, re-encodes it canonically and refuses it unless the bytes are identical: so any
//! changed byte either breaks the JSON, breaks the canonical form or changes a value, and the
//! signature catches the rest. The object's members:
//!
//! | member | what it holds |
//! |---|---|
//! | `format` | `"offboard-evidence-v1"` |
//! | `run` | the run id (UUID) |
//! | `engine_version` | the version of `offboard-core` that built it |
//! | `created_at` | when it was built (RFC 3339, UTC) |
//! | `events` | every audit event of the run, in `seq` order, each the JSON object the store keeps (`seq`, `at`, `actor`, `run`, `task`, `app`, `kind`, `prev_hash`, `hash`) in its commitment form: each personal value replaced by `personal:<hex>` (see [`crate::audit::personal`]), no `salt` |
//! | `personal` | (left out when empty) `{"seq":n,"salt":"<64 hex>","values":{"<JSON pointer into kind>":"<value>",…}}` per event of the run that holds personal values, in `seq` order |
//! | `links` | `{"seq":n,"body_digest":"<hex>"}` for every other event of the chain from the run's first event to the checkpoint (or to the run's last event when not anchored), in `seq` order |
//! | `anchor` | `{"status":"anchored","checkpoint":{seq,hash,at,key_id,signature}}`, a signed checkpoint at or after the run's last event; or `{"status":"not_anchored","reason":…,"latest_checkpoint_seq":n or null}` when no checkpoint covers it yet |
//! | `summary` | `plan`, `confirmations`, `verifications`, `delegations`, `state` (see [`Summary`]), all derived from `events` |
//! | `key_id` | the id of the key that signed the bundle |
//! | `signature` | Ed25519 signature, standard base64 with padding |
//!
//! # Verifying
//! 1. **Signature.** The signed message is the UTF-8 bytes of `offboard-evidence-v1\n`
//!    followed by the canonical JSON of the object without its `signature` member. Check it
//!    with the public key of `key_id` (strict Ed25519 verification).
//! 2. **Events.** Each event's body digest is SHA-256 (lowercase hex) of the canonical JSON of
//!    the event without `seq`, `prev_hash` and `hash`; its hash must equal the link
//!    `SHA-256("offboard-audit-v2\n" + seq + "\n" + prev_hash + "\n" + body_digest)` (decimal
//!    `seq`, ASCII, lowercase hex out: [`crate::audit::link_hash`]). Every event names the
//!    bundle's run; the first is the run's `run_planned` event.
//! 3. **Chain.** Events and links together hold every `seq` from the first event's to the end
//!    (the checkpoint's `seq` when anchored, else the last event's) exactly once, nothing
//!    else. Start with `h` = the first event's `prev_hash`; for each `seq` in order, an event
//!    must have `prev_hash == h` and then `h` = its hash; a link sets
//!    `h = link_hash(seq, h, body_digest)`.
//! 4. **Anchor.** When anchored, the checkpoint's signature must verify (its signed bytes are
//!    described in [`crate::checkpoint`]) with the public key of its `key_id`, and `h` at its
//!    `seq` must equal its `hash`. A bundle that is not anchored proves its events are
//!    genuine and linked but not that the chain was not re-sealed since; the verifier says
//!    "not anchored".
//! 5. **Personal values and summary.** Each value of `personal` must match the commitment at
//!    its pointer in its event's `kind`: `personal:` + SHA-256 (lowercase hex) of the salt's
//!    32 bytes, the pointer's UTF-8, a newline and the value's UTF-8; each names an event of
//!    the bundle, once. The summary derived again from the events (and the run they replay to,
//!    through the state machine) must equal the bundle's, and the planned run's
//!    `plan_digest` must be recomputable from it ([`crate::engine::plan_digest`]).
//!
//! What the chain cannot prove: that the signer carried every event of the run (an event
//! left out and carried as a link verifies as someone else's). The replay of step 5 catches
//! most such omissions (a task that succeeds without having started does not replay); the
//! signer is trusted for the rest.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::audit::personal::{PersonalValues, Salt};
use crate::audit::{AuditEvent, AuditKind, canonical_json, link_hash};
use crate::checkpoint::{
    Checkpoint, CheckpointProblem, CheckpointSigner, CheckpointVerifier, SignatureProblem,
};
use crate::engine::{AppVerification, plan_digest};
use crate::error::{Error, ErrorKind, Result};
use crate::machine::{self, Event};
use crate::model::AppId;
use crate::run::{Run, RunId, RunState, TaskId};
use crate::store::{AuditQuery, Store};

/// The bundle format this module writes and verifies.
pub const EVIDENCE_FORMAT: &str = "offboard-evidence-v1";

/// The first line of a bundle's signed message (domain separation from checkpoints).
pub const EVIDENCE_DOMAIN: &str = "offboard-evidence-v1\n";

/// How many events [`build_bundle`] reads from the store at once.
const PAGE: usize = 500;

/// One run's evidence, signed (see the [module docs](self) for the format).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceBundle {
    /// [`EVIDENCE_FORMAT`].
    pub format: String,
    /// The run.
    pub run: RunId,
    /// The version of `offboard-core` that built the bundle.
    pub engine_version: String,
    /// When the bundle was built.
    pub created_at: DateTime<Utc>,
    /// Every audit event of the run, as the store keeps it, in `seq` order.
    pub events: Vec<serde_json::Value>,
    /// The personal values of the run's events (whose `events` entries hold their
    /// commitments), each with its event's salt, so a reader sees them and a verifier checks
    /// them against the commitments the chain covers. Empty when none (then left out).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub personal: Vec<Disclosure>,
    /// The body digests of the other events between the run's first event and the anchor.
    pub links: Vec<Link>,
    /// The signed checkpoint the run's events are proven up to, or why there is none.
    pub anchor: Anchor,
    /// What the events say, for a reader (checked against the events when verified).
    pub summary: Summary,
    /// The id of the key that signed the bundle.
    pub key_id: String,
    /// The Ed25519 signature of [`EvidenceBundle::signed_bytes`], standard base64.
    pub signature: String,
}

/// The personal values of one event of the run (see [`crate::audit::personal`]): the event in
/// `events` holds `personal:<hex>` commitments where these values go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disclosure {
    /// The event's `seq`.
    pub seq: u64,
    /// The event's salt (64 lowercase hex digits).
    pub salt: Salt,
    /// Each value by its JSON pointer into the event's `kind`.
    pub values: BTreeMap<String, String>,
}

/// An event of the chain that is not the run's, carried by its body digest only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// Its position in the chain.
    pub seq: u64,
    /// [`AuditEvent::body_digest`] of it.
    pub body_digest: String,
}

/// What a bundle's events are proven up to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status", deny_unknown_fields)]
pub enum Anchor {
    /// A signed checkpoint at or after the run's last event.
    Anchored {
        /// The checkpoint.
        checkpoint: Checkpoint,
    },
    /// No checkpoint given covers the run's last event yet.
    NotAnchored {
        /// Why, in words.
        reason: String,
        /// The highest checkpoint seq that was given, if any.
        latest_checkpoint_seq: Option<u64>,
    },
}

/// What a run's events say, as a bundle summarises them ([`Summary::from_events`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    /// The plan the run was submitted from.
    pub plan: PlanSummary,
    /// Who confirmed the run's critical actions, in which role, when.
    pub confirmations: Vec<ConfirmationRecord>,
    /// Every verification pass, per app.
    pub verifications: Vec<VerificationPass>,
    /// Every delegated task and who closed it.
    pub delegations: Vec<DelegationRecord>,
    /// The run's state after its last transition.
    pub state: RunState,
}

/// The plan of a run, from its `run_planned` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanSummary {
    /// The plan's digest (`Run::plan_digest`), recomputable from the planned run.
    pub digest: String,
    /// What a confirmation of its critical tasks quotes (`Run::confirmation_digest`).
    pub confirmation_digest: String,
    /// The policy's fingerprint.
    pub policy: String,
    /// When it was submitted.
    pub submitted_at: DateTime<Utc>,
    /// Who submitted it (the `run_planned` event's actor).
    pub submitted_by: String,
    /// Its tasks, in plan order.
    pub tasks: Vec<PlannedTask>,
}

/// One planned task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannedTask {
    /// The task.
    pub task: TaskId,
    /// The app.
    pub app: AppId,
    /// The action (`okta.suspend`) or delegation (`jira.delegate_jira`).
    pub action: String,
    /// The policy stage.
    pub stage: String,
    /// Whether it waits for a confirmation.
    pub critical: bool,
}

/// A confirmation of a run's critical tasks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmationRecord {
    /// The event that records it.
    pub seq: u64,
    /// Who confirmed.
    pub by: String,
    /// In which role (`None`: none named; a confirmation given with the submission records
    /// no role).
    pub role: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
    /// The digest confirmed.
    pub digest: String,
    /// Whether it came with the submission (else it released held tasks later).
    pub at_submission: bool,
}

/// One verification pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerificationPass {
    /// The event that records it.
    pub seq: u64,
    /// When.
    pub at: DateTime<Utc>,
    /// Accounts checked.
    pub checked: u32,
    /// Accounts with no access left.
    pub revoked: u32,
    /// The result per app (empty for a pass recorded before they were kept).
    pub apps: Vec<AppVerification>,
}

/// How a delegated task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DelegationStatus {
    /// The ticket is open (or was reopened).
    Open,
    /// The ticket reached its "done" status.
    Done,
    /// The ticket was closed without the work done.
    Declined,
}

/// A delegated task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelegationRecord {
    /// The task.
    pub task: TaskId,
    /// The app.
    pub app: Option<AppId>,
    /// The ticket's key.
    pub ticket: String,
    /// Its link.
    pub url: String,
    /// Who it was last assigned to.
    pub assignee: Option<String>,
    /// When it was opened.
    pub opened_at: DateTime<Utc>,
    /// How it stands.
    pub status: DelegationStatus,
    /// When it was done or declined.
    pub closed_at: Option<DateTime<Utc>>,
    /// Who closed it, as the delegate reported it (a "done" event's note, a decline's
    /// reason).
    pub closed_by: Option<String>,
}

/// What a bundle is proven up to, as [`verify_bundle`] found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum AnchorStatus {
    /// Every event is proven up to a signed checkpoint.
    Anchored {
        /// The checkpoint's seq.
        checkpoint_seq: u64,
        /// Its key id.
        key_id: String,
    },
    /// The events are genuine and linked, but no signed checkpoint covers them yet.
    NotAnchored {
        /// The last seq checked.
        through_seq: u64,
    },
}

/// A bundle that verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleVerification {
    /// The run.
    pub run: RunId,
    /// The key that signed the bundle.
    pub key_id: String,
    /// The engine version that built it.
    pub engine_version: String,
    /// When it was built.
    pub created_at: DateTime<Utc>,
    /// How many events of the run it carries.
    pub events: usize,
    /// The run's first event's seq.
    pub first_seq: u64,
    /// The run's last event's seq.
    pub last_seq: u64,
    /// What the events are proven up to.
    pub anchor: AnchorStatus,
    /// The summary (equal to what the events say).
    pub summary: Summary,
}

impl BundleVerification {
    /// Whether a signed checkpoint covers every event.
    pub fn is_anchored(&self) -> bool {
        matches!(self.anchor, AnchorStatus::Anchored { .. })
    }
}

/// Why a bundle does not verify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "problem")]
pub enum BundleProblem {
    /// The file is not a bundle (not UTF-8 JSON, a member missing or of the wrong type).
    Malformed {
        /// What is wrong.
        detail: String,
    },
    /// The file is JSON but not in canonical form followed by one newline.
    NotCanonical,
    /// The bundle is of another format.
    UnsupportedFormat {
        /// Its `format`.
        format: String,
    },
    /// No public key given has the bundle's key id.
    UnknownKey {
        /// The key id.
        key_id: String,
    },
    /// The bundle's signature does not verify: it was changed after signing.
    BadSignature {
        /// The key id.
        key_id: String,
    },
    /// The bundle holds no event.
    NoEvents,
    /// An event is not an audit event as the store keeps it.
    EventMalformed {
        /// Its position in `events`.
        index: usize,
        /// What is wrong.
        detail: String,
    },
    /// An event's content does not match its hash.
    EventAltered {
        /// The event.
        seq: u64,
    },
    /// An event is not of the bundle's run.
    EventOfAnotherRun {
        /// The event.
        seq: u64,
    },
    /// Events or links are not in increasing seq order (or a seq is carried twice).
    OutOfOrder {
        /// The first seq out of place.
        seq: u64,
    },
    /// A seq between the first event and the end is neither an event nor a link.
    Missing {
        /// The seq.
        seq: u64,
    },
    /// A link lies before the first event or after the end.
    Unexpected {
        /// The link's seq.
        seq: u64,
    },
    /// An event does not link to the hash before it (a link was forged or an event moved).
    LinkBroken {
        /// The event.
        seq: u64,
    },
    /// The anchor's checkpoint does not verify.
    Checkpoint {
        /// What is wrong with it.
        cause: CheckpointProblem,
    },
    /// A disclosed personal value does not match the commitment its event holds, or names an
    /// event the bundle does not carry (or one twice).
    PersonalMismatch {
        /// The event.
        seq: u64,
    },
    /// The checkpoint lies before the run's last event.
    AnchorTooEarly {
        /// The checkpoint's seq.
        checkpoint_seq: u64,
        /// The run's last event.
        last_seq: u64,
    },
    /// The chain carried up to the checkpoint does not reach its signed hash.
    AnchorMismatch {
        /// The checkpoint's seq.
        seq: u64,
    },
    /// The first event is not the run's `run_planned` event.
    NoPlan,
    /// The planned run's digest is not the digest of its content.
    PlanDigestMismatch,
    /// An event does not apply to the run the events before it replay to.
    DoesNotReplay {
        /// The event.
        seq: u64,
        /// Why.
        detail: String,
    },
    /// The summary says something else than the events.
    SummaryContradicts {
        /// The part: `plan`, `confirmations`, `verifications`, `delegations` or `state`.
        section: String,
    },
}

impl fmt::Display for BundleProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed { detail } => write!(f, "the file is not an evidence bundle: {detail}"),
            Self::NotCanonical => write!(
                f,
                "the bundle is not in canonical form (it was edited after it was written)"
            ),
            Self::UnsupportedFormat { format } => {
                write!(f, "the bundle's format {format:?} is not {EVIDENCE_FORMAT}")
            }
            Self::UnknownKey { key_id } => write!(
                f,
                "the bundle is signed with key {key_id:?}, which the verifier was not given"
            ),
            Self::BadSignature { key_id } => write!(
                f,
                "the bundle's signature (key {key_id:?}) does not verify: it was changed"
            ),
            Self::NoEvents => write!(f, "the bundle holds no event"),
            Self::EventMalformed { index, detail } => {
                write!(
                    f,
                    "event {index} of the bundle is not an audit event: {detail}"
                )
            }
            Self::EventAltered { seq } => write!(f, "audit event {seq} was altered"),
            Self::PersonalMismatch { seq } => write!(
                f,
                "the personal values given for audit event {seq} do not match its commitments"
            ),
            Self::EventOfAnotherRun { seq } => {
                write!(f, "audit event {seq} is not an event of the bundle's run")
            }
            Self::OutOfOrder { seq } => write!(f, "seq {seq} is out of order or carried twice"),
            Self::Missing { seq } => write!(f, "seq {seq} is missing from the bundle"),
            Self::Unexpected { seq } => {
                write!(f, "the link at seq {seq} lies outside the bundle's range")
            }
            Self::LinkBroken { seq } => write!(
                f,
                "audit event {seq} does not link to the chain before it (a link was forged or \
                 an event moved)"
            ),
            Self::Checkpoint { cause } => write!(f, "the anchor does not verify: {cause}"),
            Self::AnchorTooEarly {
                checkpoint_seq,
                last_seq,
            } => write!(
                f,
                "the anchor's checkpoint (seq {checkpoint_seq}) lies before the run's last \
                 event (seq {last_seq})"
            ),
            Self::AnchorMismatch { seq } => write!(
                f,
                "the chain in the bundle does not reach the checkpoint's signed hash at seq {seq}"
            ),
            Self::NoPlan => write!(f, "the first event is not the run's run_planned event"),
            Self::PlanDigestMismatch => {
                write!(
                    f,
                    "the planned run's digest is not the digest of its content"
                )
            }
            Self::DoesNotReplay { seq, detail } => {
                write!(f, "audit event {seq} does not replay: {detail}")
            }
            Self::SummaryContradicts { section } => write!(
                f,
                "the bundle's summary ({section}) says something else than its events"
            ),
        }
    }
}

impl std::error::Error for BundleProblem {}

impl From<BundleProblem> for Error {
    fn from(p: BundleProblem) -> Self {
        Error::new(ErrorKind::Tampered, p.to_string())
    }
}

impl Summary {
    /// What the events of `run` (in seq order, the first its `run_planned` event) say, and
    /// the run they replay to through the state machine.
    ///
    /// # Errors
    /// [`BundleProblem::NoPlan`] when the first event is not `run`'s `run_planned` event;
    /// [`BundleProblem::PlanDigestMismatch`] when the planned run's digest is not that of its
    /// content; [`BundleProblem::DoesNotReplay`] when an event does not apply.
    pub fn from_events(run: RunId, events: &[AuditEvent]) -> Result<(Self, Run), BundleProblem> {
        let (planned_event, rest) = events.split_first().ok_or(BundleProblem::NoEvents)?;
        let AuditKind::RunPlanned { run: planned } = &planned_event.kind else {
            return Err(BundleProblem::NoPlan);
        };
        if planned.id != run {
            return Err(BundleProblem::NoPlan);
        }
        let mut unsigned = (**planned).clone();
        unsigned.plan_digest = String::new();
        if plan_digest(&unsigned) != planned.plan_digest {
            return Err(BundleProblem::PlanDigestMismatch);
        }
        let plan = PlanSummary {
            digest: planned.plan_digest.clone(),
            confirmation_digest: planned.confirmation_digest(),
            policy: planned.policy.clone(),
            submitted_at: planned_event.at,
            submitted_by: planned_event.actor.clone(),
            tasks: planned
                .tasks
                .iter()
                .map(|t| PlannedTask {
                    task: t.id,
                    app: t.app.clone(),
                    action: t.label(),
                    stage: t.stage.clone(),
                    critical: t.critical,
                })
                .collect(),
        };
        let mut confirmations = Vec::new();
        if let Some(by) = &planned.confirmed_by {
            confirmations.push(ConfirmationRecord {
                seq: planned_event.seq,
                by: by.clone(),
                role: None,
                at: planned_event.at,
                digest: planned.confirmation_digest(),
                at_submission: true,
            });
        }
        let mut replayed = (**planned).clone();
        let mut verifications = Vec::new();
        let mut delegations: Vec<DelegationRecord> = Vec::new();
        for e in rest {
            match &e.kind {
                AuditKind::RunPlanned { .. } => return Err(BundleProblem::NoPlan),
                AuditKind::Verified {
                    checked,
                    revoked,
                    apps,
                    ..
                } => verifications.push(VerificationPass {
                    seq: e.seq,
                    at: e.at,
                    checked: *checked,
                    revoked: *revoked,
                    apps: apps.clone(),
                }),
                AuditKind::Transition { event, .. } => {
                    machine::apply(&mut replayed, e.at, event).map_err(|err| {
                        BundleProblem::DoesNotReplay {
                            seq: e.seq,
                            detail: err.to_string(),
                        }
                    })?;
                    delegation_step(&mut delegations, e, event);
                    if let Event::Confirmed { by, role, digest } = event {
                        confirmations.push(ConfirmationRecord {
                            seq: e.seq,
                            by: by.clone(),
                            role: role.clone(),
                            at: e.at,
                            digest: digest.clone(),
                            at_submission: false,
                        });
                    }
                }
                _ => {}
            }
        }
        let summary = Self {
            plan,
            confirmations,
            verifications,
            delegations,
            state: replayed.state,
        };
        Ok((summary, replayed))
    }
}

/// Folds one transition into the delegated tasks.
fn delegation_step(delegations: &mut Vec<DelegationRecord>, e: &AuditEvent, event: &Event) {
    let find = |ds: &mut Vec<DelegationRecord>, task: &TaskId| -> Option<usize> {
        ds.iter().rposition(|d| d.task == *task)
    };
    match event {
        Event::TaskDelegated { task, ticket, .. } => delegations.push(DelegationRecord {
            task: *task,
            app: e.app.clone(),
            ticket: ticket.key.clone(),
            url: ticket.url.clone(),
            assignee: ticket.assignee.clone(),
            opened_at: e.at,
            status: DelegationStatus::Open,
            closed_at: None,
            closed_by: None,
        }),
        Event::DelegationUpdated { task, ticket, .. }
        | Event::DelegationReopened { task, ticket, .. } => {
            if let Some(i) = find(delegations, task) {
                let d = &mut delegations[i];
                d.ticket = ticket.key.clone();
                d.url = ticket.url.clone();
                d.assignee = ticket.assignee.clone();
                d.status = DelegationStatus::Open;
                d.closed_at = None;
                d.closed_by = None;
            }
        }
        Event::DelegationDone { task, detail, .. } => {
            if let Some(i) = find(delegations, task) {
                let d = &mut delegations[i];
                d.status = DelegationStatus::Done;
                d.closed_at = Some(e.at);
                d.closed_by = detail.clone();
            }
        }
        Event::DelegationDeclined { task, reason } => {
            if let Some(i) = find(delegations, task) {
                let d = &mut delegations[i];
                d.status = DelegationStatus::Declined;
                d.closed_at = Some(e.at);
                d.closed_by = Some(reason.clone());
            }
        }
        _ => {}
    }
}

impl EvidenceBundle {
    /// The bundle as a JSON value, its `signature` member included.
    fn to_value(&self) -> Result<serde_json::Value> {
        serde_json::to_value(self)
            .map_err(|e| Error::internal("an evidence bundle did not serialise").with_source(e))
    }

    /// The bytes the signature covers: [`EVIDENCE_DOMAIN`] and the canonical JSON of the
    /// bundle without its `signature` member.
    ///
    /// # Errors
    /// `Internal` if the bundle does not serialise (it always does).
    pub fn signed_bytes(&self) -> Result<Vec<u8>> {
        let mut value = self.to_value()?;
        Ok(signed_message(&mut value))
    }

    /// The file: the bundle's canonical JSON and a newline.
    ///
    /// # Errors
    /// `Internal` if the bundle does not serialise (it always does).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = canonical_json(&self.to_value()?).into_bytes();
        out.push(b'\n');
        Ok(out)
    }

    /// Signs the bundle with `signer` (sets `key_id` and `signature`).
    ///
    /// # Errors
    /// `Internal` if the bundle does not serialise (it always does).
    pub fn sign(&mut self, signer: &CheckpointSigner) -> Result<()> {
        self.key_id = signer.key_id().to_owned();
        self.signature = String::new();
        self.signature = signer.sign_bytes(&self.signed_bytes()?);
        Ok(())
    }
}

/// [`EVIDENCE_DOMAIN`] and the canonical JSON of `value` without `signature`.
fn signed_message(value: &mut serde_json::Value) -> Vec<u8> {
    if let Some(map) = value.as_object_mut() {
        map.remove("signature");
    }
    let mut out = EVIDENCE_DOMAIN.as_bytes().to_vec();
    out.extend_from_slice(canonical_json(value).as_bytes());
    out
}

/// Builds and signs the evidence bundle of `run` from `store`, anchored to the first of
/// `checkpoints` (any order; e.g. [`crate::checkpoint::CheckpointSink`]'s file read back)
/// whose seq is at or after the run's last event, or marked not anchored when none is.
///
/// # Behavior
/// Reads the run's events and then the chain from its first event to the anchor a page at a
/// time; carries the run's events whole and the others as `(seq, body digest)`. Before it
/// signs, it checks what it read: the chain is contiguous, every event hashes to its stored
/// hash and links to the one before, and it reaches the checkpoint's hash. It does not check
/// the checkpoint's signature (it has no public key; the verifier does).
///
/// # Errors
/// `NotFound` for a run with no event; `Tampered` when the stored chain is broken between the
/// run's first event and the checkpoint, does not reach the checkpoint's hash, or the run's
/// events do not replay; the store's errors.
pub async fn build_bundle<S: Store + ?Sized>(
    store: &S,
    run: RunId,
    signer: &CheckpointSigner,
    checkpoints: &[Checkpoint],
) -> Result<EvidenceBundle> {
    let own = store.audit(AuditQuery::run(run)).await?;
    let (Some(first), Some(last)) = (own.first(), own.last()) else {
        return Err(Error::not_found(format!(
            "run {run} has no audit event (an unknown run)"
        )));
    };
    let (first, last) = (first.seq, last.seq);
    let checkpoint = checkpoints
        .iter()
        .filter(|c| c.seq >= last)
        .min_by_key(|c| c.seq)
        .cloned();
    let end = checkpoint.as_ref().map_or(last, |c| c.seq);
    let tampered = |what: String| Error::new(ErrorKind::Tampered, what);

    let mut events = Vec::new();
    let mut personal = Vec::new();
    let mut parsed = Vec::new();
    let mut links = Vec::new();
    let mut expected = first;
    let mut head: Option<String> = None;
    while expected <= end {
        let page = store
            .audit(AuditQuery {
                run: None,
                after_seq: expected - 1,
                limit: PAGE,
            })
            .await?;
        if page.is_empty() {
            return Err(tampered(format!(
                "the audit chain ends before seq {expected} (the anchor is at seq {end})"
            )));
        }
        for e in page {
            if e.seq > end {
                break;
            }
            if e.seq != expected {
                return Err(tampered(format!("audit event {expected} is missing")));
            }
            if e.compute_hash() != e.hash {
                return Err(tampered(format!("audit event {} was altered", e.seq)));
            }
            if head.as_ref().is_some_and(|h| *h != e.prev_hash) {
                return Err(tampered(format!(
                    "audit event {} does not link to the one before it",
                    e.seq
                )));
            }
            head = Some(e.hash.clone());
            if e.run == Some(run) {
                // Carried in its commitment form, its values beside it: the form the chain's
                // digest covers as it is, whether or not the values were erased since.
                let (committed, values) = e.redacted()?;
                events.push(serde_json::to_value(&committed).map_err(|err| {
                    Error::internal("an audit event did not serialise").with_source(err)
                })?);
                if let Some(values) = values {
                    personal.push(Disclosure {
                        seq: e.seq,
                        salt: values.salt,
                        values: values.values,
                    });
                }
                parsed.push(e);
            } else {
                links.push(Link {
                    seq: e.seq,
                    body_digest: e.body_digest(),
                });
            }
            expected += 1;
        }
    }
    let anchor = match checkpoint {
        Some(c) => {
            if head.as_deref() != Some(c.hash.as_str()) {
                return Err(tampered(format!(
                    "the stored audit chain does not have the hash checkpoint {} signed",
                    c.seq
                )));
            }
            Anchor::Anchored { checkpoint: c }
        }
        None => {
            let latest = checkpoints.iter().map(|c| c.seq).max();
            Anchor::NotAnchored {
                reason: format!(
                    "no signed checkpoint covers the run's last event (seq {last}) yet{}",
                    latest.map_or_else(String::new, |s| format!("; the latest is at seq {s}"))
                ),
                latest_checkpoint_seq: latest,
            }
        }
    };
    let (summary, _) = Summary::from_events(run, &parsed).map_err(Error::from)?;
    let mut bundle = EvidenceBundle {
        format: EVIDENCE_FORMAT.to_owned(),
        run,
        engine_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_at: Utc::now(),
        events,
        personal,
        links,
        anchor,
        summary,
        key_id: String::new(),
        signature: String::new(),
    };
    bundle.sign(signer)?;
    Ok(bundle)
}

/// The run's events with their disclosed personal values put back, each checked against the
/// commitments its event holds.
fn disclose(
    events: Vec<AuditEvent>,
    personal: &[Disclosure],
) -> Result<Vec<AuditEvent>, BundleProblem> {
    let mut by_seq: BTreeMap<u64, &Disclosure> = BTreeMap::new();
    for d in personal {
        if by_seq.insert(d.seq, d).is_some() {
            return Err(BundleProblem::PersonalMismatch { seq: d.seq });
        }
    }
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        let seq = e.seq;
        out.push(match by_seq.remove(&seq) {
            Some(d) => e
                .with_personal(PersonalValues {
                    salt: d.salt,
                    values: d.values.clone(),
                })
                .map_err(|_| BundleProblem::PersonalMismatch { seq })?,
            None => e,
        });
    }
    match by_seq.keys().next() {
        Some(seq) => Err(BundleProblem::PersonalMismatch { seq: *seq }),
        None => Ok(out),
    }
}

/// Step 1 of [`verify_bundle`]: the file is canonical JSON of the supported format, and its
/// signature verifies with the key it names.
fn read_signed(bytes: &[u8], keys: &CheckpointVerifier) -> Result<EvidenceBundle, BundleProblem> {
    let malformed = |detail: String| BundleProblem::Malformed { detail };
    let text = std::str::from_utf8(bytes).map_err(|_| malformed("not UTF-8".into()))?;
    let mut value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| malformed(format!("not JSON: {e}")))?;
    let body = text.strip_suffix('\n').ok_or(BundleProblem::NotCanonical)?;
    if canonical_json(&value) != body {
        return Err(BundleProblem::NotCanonical);
    }
    match value.get("format").and_then(serde_json::Value::as_str) {
        Some(EVIDENCE_FORMAT) => {}
        Some(other) => {
            return Err(BundleProblem::UnsupportedFormat {
                format: other.to_owned(),
            });
        }
        None => return Err(malformed("no format".into())),
    }
    let bundle: EvidenceBundle =
        serde_json::from_value(value.clone()).map_err(|e| malformed(e.to_string()))?;
    let message = signed_message(&mut value);
    keys.verify_bytes(&bundle.key_id, &message, &bundle.signature)
        .map_err(|p| match p {
            SignatureProblem::UnknownKey => BundleProblem::UnknownKey {
                key_id: bundle.key_id.clone(),
            },
            SignatureProblem::BadSignature => BundleProblem::BadSignature {
                key_id: bundle.key_id.clone(),
            },
        })?;
    Ok(bundle)
}

/// Step 2 of [`verify_bundle`]: each carried event, in its commitment form, hashes as it
/// says and is of the bundle's run.
fn read_events(bundle: &EvidenceBundle) -> Result<Vec<AuditEvent>, BundleProblem> {
    let mut events = Vec::with_capacity(bundle.events.len());
    for (index, v) in bundle.events.iter().enumerate() {
        let e: AuditEvent =
            serde_json::from_value(v.clone()).map_err(|err| BundleProblem::EventMalformed {
                index,
                detail: err.to_string(),
            })?;
        // Carried in the commitment form: a salt has no place in it.
        if e.salt.is_some() {
            return Err(BundleProblem::EventMalformed {
                index,
                detail: "an event carries a salt (its values go in `personal`)".into(),
            });
        }
        if serde_json::to_value(&e).ok().as_ref() != Some(v) || e.compute_hash() != e.hash {
            return Err(BundleProblem::EventAltered { seq: e.seq });
        }
        if e.run != Some(bundle.run) {
            return Err(BundleProblem::EventOfAnotherRun { seq: e.seq });
        }
        events.push(e);
    }
    Ok(events)
}

/// Verifies a bundle file offline with nothing but its bytes and the public keys of the
/// bundle's signer and of its checkpoint (see the [module docs](self) for every check).
///
/// # Errors
/// The first problem found, in the order of the module docs' steps (the signature first: a
/// bundle edited without the key fails there).
pub fn verify_bundle(
    bytes: &[u8],
    keys: &CheckpointVerifier,
) -> Result<BundleVerification, BundleProblem> {
    let bundle = read_signed(bytes, keys)?;

    // Step 2: the events.
    let events = read_events(&bundle)?;
    let (Some(first), Some(last)) = (events.first(), events.last()) else {
        return Err(BundleProblem::NoEvents);
    };
    let (first_seq, last_seq) = (first.seq, last.seq);

    // Step 3: the chain.
    let end = match &bundle.anchor {
        Anchor::Anchored { checkpoint } if checkpoint.seq < last_seq => {
            return Err(BundleProblem::AnchorTooEarly {
                checkpoint_seq: checkpoint.seq,
                last_seq,
            });
        }
        Anchor::Anchored { checkpoint } => checkpoint.seq,
        Anchor::NotAnchored { .. } => last_seq,
    };
    let mut items: BTreeMap<u64, Result<&AuditEvent, &Link>> = BTreeMap::new();
    for pair in events.windows(2) {
        if pair[1].seq <= pair[0].seq {
            return Err(BundleProblem::OutOfOrder { seq: pair[1].seq });
        }
    }
    for pair in bundle.links.windows(2) {
        if pair[1].seq <= pair[0].seq {
            return Err(BundleProblem::OutOfOrder { seq: pair[1].seq });
        }
    }
    for e in &events {
        items.insert(e.seq, Ok(e));
    }
    for l in &bundle.links {
        if l.seq < first_seq || l.seq > end {
            return Err(BundleProblem::Unexpected { seq: l.seq });
        }
        if !is_digest(&l.body_digest) {
            return Err(BundleProblem::Malformed {
                detail: format!("the link at seq {} is no digest", l.seq),
            });
        }
        if items.insert(l.seq, Err(l)).is_some() {
            return Err(BundleProblem::OutOfOrder { seq: l.seq });
        }
    }
    let mut head = first.prev_hash.clone();
    let mut expected = first_seq;
    for (seq, item) in &items {
        if *seq != expected {
            return Err(BundleProblem::Missing { seq: expected });
        }
        head = match item {
            Ok(e) if e.prev_hash != head => return Err(BundleProblem::LinkBroken { seq: *seq }),
            Ok(e) => e.hash.clone(),
            Err(l) => link_hash(*seq, &head, &l.body_digest),
        };
        expected += 1;
    }
    if expected <= end {
        return Err(BundleProblem::Missing { seq: expected });
    }

    // Step 4: the anchor.
    let anchor = match &bundle.anchor {
        Anchor::Anchored { checkpoint } => {
            keys.verify(checkpoint)
                .map_err(|cause| BundleProblem::Checkpoint { cause })?;
            if checkpoint.hash != head {
                return Err(BundleProblem::AnchorMismatch {
                    seq: checkpoint.seq,
                });
            }
            AnchorStatus::Anchored {
                checkpoint_seq: checkpoint.seq,
                key_id: checkpoint.key_id.clone(),
            }
        }
        Anchor::NotAnchored { .. } => AnchorStatus::NotAnchored {
            through_seq: last_seq,
        },
    };

    // Step 5: the personal values against their commitments, then the summary.
    let events = disclose(events, &bundle.personal)?;
    let (summary, _) = Summary::from_events(bundle.run, &events)?;
    let s = &bundle.summary;
    for (section, same) in [
        ("plan", s.plan == summary.plan),
        ("confirmations", s.confirmations == summary.confirmations),
        ("verifications", s.verifications == summary.verifications),
        ("delegations", s.delegations == summary.delegations),
        ("state", s.state == summary.state),
    ] {
        if !same {
            return Err(BundleProblem::SummaryContradicts {
                section: section.to_owned(),
            });
        }
    }
    Ok(BundleVerification {
        run: bundle.run,
        key_id: bundle.key_id,
        engine_version: bundle.engine_version,
        created_at: bundle.created_at,
        events: events.len(),
        first_seq,
        last_seq,
        anchor,
        summary,
    })
}

/// Whether `s` is a SHA-256 digest in lowercase hex.
fn is_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
