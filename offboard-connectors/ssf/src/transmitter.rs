//! The [`Transmitter`]: configuration, receivers, SETs from audit events, and the wake-ups.

use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use hashlink::LruCache;
use offboard_core::machine::Event;
use offboard_core::store::{AuditQuery, Store};
use offboard_core::{
    AuditEvent, AuditKind, AuditSink, Error, ErrorKind, Outcome, Person, Result, Run, RunId,
    Secret, TaskKind,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::events::{self, EventMap, SSF_VERIFICATION, Signal};
use crate::keys::{KeySet, SigningKey};
use crate::stream::{self, Stored};
use crate::subject::{self, SubjectFormat};

/// Whether a stream delivers events about every person unless a subject was removed
/// (`ALL`), or only about the subjects added (`NONE`): the `default_subjects` of the
/// transmitter's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultSubjects {
    /// Every person, unless removed from the stream.
    All,
    /// Only the subjects added to the stream.
    None,
}

/// A receiver the host allows: who it is, how it authenticates at the management endpoints,
/// the audience of its SETs and how its subjects are named. Its Debug never shows the token.
#[derive(Debug, Clone)]
pub struct Receiver {
    pub(crate) name: String,
    pub(crate) token: Secret,
    pub(crate) audience: String,
    pub(crate) subject: SubjectFormat,
}

impl Receiver {
    /// A receiver named `name` (owner of the streams it creates) that presents `token` as a
    /// bearer token, whose SETs carry `aud: audience` and subjects in `subject` format.
    pub fn new(
        name: impl Into<String>,
        token: Secret,
        audience: impl Into<String>,
        subject: SubjectFormat,
    ) -> Self {
        Self {
            name: name.into(),
            token,
            audience: audience.into(),
            subject,
        }
    }

    /// The receiver's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// How a [`Transmitter`] runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TransmitterConfig {
    /// The issuer (`iss` of every SET): an `https` (or loopback `http`) URL; its path, if
    /// any, is where the endpoints live.
    pub issuer: String,
    /// The `iss` of `iss_sub` subjects (the identity provider that issued person ids);
    /// the issuer when `None`.
    pub subject_issuer: Option<String>,
    /// The receivers allowed.
    pub receivers: Vec<Receiver>,
    /// Which actions raise which events.
    pub events: EventMap,
    /// See [`DefaultSubjects`].
    pub default_subjects: DefaultSubjects,
    /// How long one push may take.
    pub push_timeout: Duration,
    /// The first wait after a failed push; doubled up to `max_backoff`.
    pub first_backoff: Duration,
    /// The longest wait between two tries of a failing receiver.
    pub max_backoff: Duration,
    /// How long a poll without `returnImmediately` waits for a SET.
    pub poll_wait: Duration,
    /// How often an idle push stream re-reads the trail even when not woken (events other
    /// hosts committed to the same store).
    pub recheck: Duration,
    /// The least number of seconds between two verification requests of a stream.
    pub min_verification_interval: u64,
}

impl TransmitterConfig {
    /// A transmitter issuing as `issuer`, with no receiver yet and the defaults: the standard
    /// event map, default subjects `ALL`, 10 s push timeout, backoff 200 ms to 60 s, 30 s
    /// poll wait, 5 s recheck, 15 s between verifications.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            subject_issuer: None,
            receivers: Vec::new(),
            events: EventMap::standard(),
            default_subjects: DefaultSubjects::All,
            push_timeout: Duration::from_secs(10),
            first_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(60),
            poll_wait: Duration::from_secs(30),
            recheck: Duration::from_secs(5),
            min_verification_interval: 15,
        }
    }

    /// Allows `receiver`.
    pub fn receiver(mut self, receiver: Receiver) -> Self {
        self.receivers.push(receiver);
        self
    }

    /// Sets the event map.
    pub fn events(mut self, events: EventMap) -> Self {
        self.events = events;
        self
    }

    /// Sets the default subjects.
    pub fn default_subjects(mut self, d: DefaultSubjects) -> Self {
        self.default_subjects = d;
        self
    }

    /// Sets the `iss` of `iss_sub` subjects.
    pub fn subject_issuer(mut self, iss: impl Into<String>) -> Self {
        self.subject_issuer = Some(iss.into());
        self
    }

    /// Sets the push timeout and the retry backoff.
    pub fn push_timing(
        mut self,
        timeout: Duration,
        first_backoff: Duration,
        max_backoff: Duration,
    ) -> Self {
        self.push_timeout = timeout;
        self.first_backoff = first_backoff;
        self.max_backoff = max_backoff;
        self
    }

    /// Sets how long a waiting poll waits.
    pub fn poll_wait(mut self, wait: Duration) -> Self {
        self.poll_wait = wait;
        self
    }

    /// Sets the least number of seconds between two verification requests.
    pub fn min_verification_interval(mut self, seconds: u64) -> Self {
        self.min_verification_interval = seconds;
        self
    }
}

/// The Shared Signals transmitter (see the crate docs). Cheap to clone: clones share one
/// state. Feed it the engine's audit events by registering it as an audit sink.
#[derive(Clone)]
pub struct Transmitter {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Transmitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transmitter")
            .field("issuer", &self.inner.config.issuer)
            .field("receivers", &self.inner.config.receivers.len())
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) config: TransmitterConfig,
    /// The issuer's path without a trailing `/` (`""` for none).
    pub(crate) base_path: String,
    pub(crate) store: Arc<dyn Store>,
    keys: RwLock<KeySet>,
    pub(crate) http: reqwest::Client,
    /// Bumped at every change worth a look: a commit, a stream changed, shutdown.
    pub(crate) wake: watch::Sender<u64>,
    /// The highest audit `seq` known.
    head: AtomicU64,
    runs: Mutex<LruCache<RunId, Arc<Run>>>,
    pub(crate) workers: Mutex<HashSet<String>>,
    pub(crate) closed: AtomicBool,
}

/// A SET waiting for its receiver: the audit event it comes from, its `jti` and claims.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub(crate) seq: u64,
    pub(crate) jti: String,
    pub(crate) claims: Value,
}

/// What an audit event raises, before a stream's filters.
enum Raised {
    Action {
        run: Arc<Run>,
        task: usize,
        signal: Signal,
        rolled_back: bool,
    },
    Verification {
        stream_id: String,
        state: Option<String>,
    },
}

/// The audit note the verification endpoint appends (its stream and `state`).
pub(crate) const VERIFICATION_NOTE: &str = "ssf_verification";
/// The audit actor of what the transmitter records.
pub(crate) const ACTOR: &str = "ssf:transmitter";
/// The most audit events one read of the trail takes.
const BATCH: usize = 512;
/// How often, and how many times, a read waits for a gap in the trail to fill.
const GAP_WAIT: Duration = Duration::from_millis(20);
const GAP_TRIES: u32 = 50;

impl Transmitter {
    /// Starts a transmitter on `store` (the engine's: the audit trail and the streams' records)
    /// signing with `key`, and the delivery task of every push stream stored.
    ///
    /// # Errors
    /// `InvalidInput` for an issuer that is not an `https` URL (or `http` on loopback) without
    /// query or fragment, or for two receivers with one name or token; a store error reading
    /// the trail or the streams.
    pub async fn start(
        config: TransmitterConfig,
        store: Arc<dyn Store>,
        key: SigningKey,
    ) -> Result<Self> {
        let base_path = check_issuer(&config.issuer)?;
        let mut names = HashSet::new();
        let mut tokens = HashSet::new();
        for r in &config.receivers {
            if r.name.is_empty() || r.token.is_empty() || r.audience.is_empty() {
                return Err(Error::invalid_input(
                    "a receiver needs a name, a token and an audience",
                ));
            }
            if !names.insert(r.name.clone()) || !tokens.insert(r.token.expose().to_owned()) {
                return Err(Error::invalid_input(
                    "two receivers share a name or a token",
                ));
            }
        }
        let http = reqwest::Client::builder()
            .timeout(config.push_timeout)
            .build()
            .map_err(|e| {
                Error::new(ErrorKind::Internal, "the push client could not be built").with_source(e)
            })?;
        let inner = Arc::new(Inner {
            base_path,
            store,
            keys: RwLock::new(KeySet::new(key)),
            http,
            wake: watch::channel(0).0,
            head: AtomicU64::new(0),
            runs: Mutex::new(LruCache::new(
                NonZeroUsize::new(1024).map_or(1024, NonZeroUsize::get),
            )),
            workers: Mutex::new(HashSet::new()),
            closed: AtomicBool::new(false),
            config,
        });
        let t = Self { inner };
        t.find_head().await?;
        for id in stream::ids(&*t.inner.store).await? {
            if let Some(s) = stream::load(&*t.inner.store, &id).await?
                && !s.deleted
                && s.is_push()
            {
                t.spawn_push(id);
            }
        }
        Ok(t)
    }

    /// Makes `next` the signing key; the previous one stays in the JWKS until retired.
    ///
    /// # Errors
    /// `InvalidInput` when a key with `next`'s id is published.
    pub fn rotate_key(&self, next: SigningKey) -> Result<()> {
        self.keys_mut().rotate(next)
    }

    /// Removes a previous key from the JWKS.
    ///
    /// # Errors
    /// `InvalidInput` for the signing key; `NotFound` for a key not published.
    pub fn retire_key(&self, kid: &str) -> Result<()> {
        self.keys_mut().retire(kid)
    }

    /// The JWKS (`{"keys":[...]}`): the signing key first.
    pub fn jwks(&self) -> Value {
        serde_json::to_value(self.keys().jwks()).unwrap_or_else(|_| json!({"keys": []}))
    }

    /// The streams' configurations (deleted ones left out).
    ///
    /// # Errors
    /// A store error.
    pub async fn streams(&self) -> Result<Vec<crate::StreamConfig>> {
        let mut out = Vec::new();
        for id in stream::ids(&*self.inner.store).await? {
            if let Some(s) = stream::load(&*self.inner.store, &id).await?
                && !s.deleted
            {
                out.push(s.config);
            }
        }
        Ok(out)
    }

    /// Stops the delivery tasks (a stream's position is kept: a new transmitter goes on).
    pub fn shutdown(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.wake();
    }

    fn keys(&self) -> std::sync::RwLockReadGuard<'_, KeySet> {
        self.inner
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn keys_mut(&self) -> std::sync::RwLockWriteGuard<'_, KeySet> {
        self.inner
            .keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn sign(&self, claims: &Value) -> Result<String> {
        self.keys().active().sign(claims)
    }

    pub(crate) fn wake(&self) {
        self.inner.wake.send_modify(|g| *g = g.wrapping_add(1));
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    pub(crate) fn head(&self) -> u64 {
        self.inner.head.load(Ordering::Acquire)
    }

    pub(crate) fn receiver(&self, name: &str) -> Option<&Receiver> {
        self.inner.config.receivers.iter().find(|r| r.name == name)
    }

    pub(crate) fn subject_issuer(&self) -> &str {
        self.inner
            .config
            .subject_issuer
            .as_deref()
            .unwrap_or(&self.inner.config.issuer)
    }

    /// Reads the trail to its end once, so that a new stream starts after what is there.
    async fn find_head(&self) -> Result<()> {
        let mut after = 0;
        loop {
            let mut q = AuditQuery::all();
            q.after_seq = after;
            q.limit = 4096;
            let events = self.inner.store.audit(q).await?;
            match events.last() {
                Some(e) => after = e.seq,
                None => break,
            }
        }
        self.inner.head.fetch_max(after, Ordering::AcqRel);
        Ok(())
    }

    /// The run `id`, cached.
    async fn run(&self, id: RunId) -> Result<Option<Arc<Run>>> {
        if let Some(r) = self.runs().get(&id) {
            return Ok(Some(r.clone()));
        }
        let Some(run) = self.inner.store.load_run(id).await? else {
            return Ok(None);
        };
        let run = Arc::new(run);
        self.runs().insert(id, run.clone());
        Ok(Some(run))
    }

    fn runs(&self) -> std::sync::MutexGuard<'_, LruCache<RunId, Arc<Run>>> {
        self.inner
            .runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// What `e` raises, before any stream's filters.
    async fn raised(&self, e: &AuditEvent) -> Result<Option<Raised>> {
        match &e.kind {
            AuditKind::Transition { event, .. } => {
                let (task, rolled_back) = match event {
                    Event::TaskSucceeded {
                        task,
                        outcome: Outcome::Done | Outcome::AlreadyDone,
                        ..
                    } => (*task, false),
                    Event::TaskRolledBack { task, .. } => (*task, true),
                    _ => return Ok(None),
                };
                let Some(run_id) = e.run else { return Ok(None) };
                let Some(run) = self.run(run_id).await? else {
                    return Ok(None);
                };
                let Some(index) = run.tasks.iter().position(|t| t.id == task) else {
                    return Ok(None);
                };
                let TaskKind::Action { action } = &run.tasks[index].kind else {
                    return Ok(None);
                };
                let Some(signal) = self.inner.config.events.signal(&action.name).cloned() else {
                    return Ok(None);
                };
                if rolled_back && signal != Signal::AccountDisabled {
                    return Ok(None);
                }
                Ok(Some(Raised::Action {
                    run,
                    task: index,
                    signal,
                    rolled_back,
                }))
            }
            AuditKind::Note { name, data } if name == VERIFICATION_NOTE => {
                let Some(stream_id) = data.get("stream_id").and_then(Value::as_str) else {
                    return Ok(None);
                };
                Ok(Some(Raised::Verification {
                    stream_id: stream_id.to_owned(),
                    state: data.get("state").and_then(Value::as_str).map(str::to_owned),
                }))
            }
            _ => Ok(None),
        }
    }

    /// Whether `stream` delivers events about `person` (its subjects and the defaults).
    fn wants(&self, stream: &Stored, person: &Person) -> bool {
        let iss = self.subject_issuer();
        if stream
            .removed
            .iter()
            .any(|s| subject::names(s, person, iss))
        {
            return false;
        }
        match self.inner.config.default_subjects {
            DefaultSubjects::All => true,
            DefaultSubjects::None => stream.added.iter().any(|s| subject::names(s, person, iss)),
        }
    }

    /// The SET `stream` gets for `e`, if any.
    fn set_for(&self, stream: &Stored, e: &AuditEvent, raised: &Raised) -> Option<Pending> {
        let config = &stream.config;
        let jti = jti(&config.stream_id, &e.hash);
        let base = |sub_id: Value, events: Value| {
            let mut claims = json!({
                "iss": self.inner.config.issuer,
                "jti": jti,
                "iat": e.at.timestamp(),
                "aud": config.aud,
                "sub_id": sub_id,
                "events": events,
            });
            if let Some(run) = e.run {
                claims["txn"] = json!(run.to_string());
            }
            claims
        };
        let claims = match raised {
            Raised::Verification { stream_id, state } => {
                if *stream_id != config.stream_id {
                    return None;
                }
                let body = match state {
                    Some(s) => json!({"state": s}),
                    None => json!({}),
                };
                base(
                    json!({"format": "opaque", "id": stream_id}),
                    json!({ SSF_VERIFICATION: body }),
                )
            }
            Raised::Action {
                run,
                task,
                signal,
                rolled_back,
            } => {
                let event_type = if *rolled_back {
                    events::RISC_ACCOUNT_ENABLED
                } else {
                    signal.event_type()
                };
                if !config.events_delivered.iter().any(|t| t == event_type)
                    || !self.wants(stream, &run.person)
                {
                    return None;
                }
                let receiver = self.receiver(&stream.receiver)?;
                let action = match &run.tasks[*task].kind {
                    TaskKind::Action { action } => action.name.as_str().to_owned(),
                    _ => String::new(),
                };
                base(
                    receiver.subject.sub_id(&run.person, self.subject_issuer()),
                    events::payload(event_type, Some(signal), &action, e.at.timestamp()),
                )
            }
        };
        Some(Pending {
            seq: e.seq,
            jti,
            claims,
        })
    }

    /// The SETs `stream` has waiting after its position, in order, at most `limit` of them
    /// (leaving out `skip`ped `jti`s), and the last `seq` read: every event up to it raised
    /// nothing for the stream or is among those returned or skipped.
    pub(crate) async fn scan(
        &self,
        stream: &Stored,
        limit: usize,
        skip: &HashSet<String>,
    ) -> Result<(Vec<Pending>, u64)> {
        let mut out = Vec::new();
        let mut pos = stream.position;
        loop {
            let events = self.read_after(pos).await?;
            if events.is_empty() {
                return Ok((out, pos));
            }
            for e in &events {
                if let Some(raised) = self.raised(e).await?
                    && let Some(p) = self.set_for(stream, e, &raised)
                    && !skip.contains(&p.jti)
                {
                    out.push(p);
                    if out.len() >= limit {
                        return Ok((out, e.seq));
                    }
                }
                pos = e.seq;
            }
        }
    }

    /// The events after `pos`, contiguous from `pos + 1` (waiting a little for a gap to fill:
    /// a commit with a lower `seq` may become visible after one with a higher; a gap that does
    /// not fill is passed over).
    async fn read_after(&self, pos: u64) -> Result<Vec<AuditEvent>> {
        let mut q = AuditQuery::all();
        q.after_seq = pos;
        q.limit = BATCH;
        let mut tries = 0;
        loop {
            let mut events = self.inner.store.audit(q.clone()).await?;
            let contiguous = events
                .iter()
                .enumerate()
                .take_while(|(i, e)| e.seq == pos + 1 + *i as u64)
                .count();
            if let Some(last) = events.last() {
                self.inner.head.fetch_max(last.seq, Ordering::AcqRel);
            }
            if contiguous == events.len() || tries >= GAP_TRIES {
                return Ok(events);
            }
            if contiguous > 0 {
                events.truncate(contiguous);
                return Ok(events);
            }
            tries += 1;
            tokio::time::sleep(GAP_WAIT).await;
        }
    }

    /// Appends an audit note of the transmitter's (a rejected SET, a paused stream, a
    /// verification asked).
    pub(crate) async fn note(&self, name: &str, data: Value) -> Result<()> {
        let e = AuditEvent::new(
            Utc::now(),
            ACTOR,
            AuditKind::Note {
                name: name.to_owned(),
                data,
            },
        );
        self.inner.store.append_audit(vec![e]).await?;
        self.wake();
        Ok(())
    }
}

/// A SET's `jti`: the first 128 bits (hex) of SHA-256 over a domain string, the stream's id
/// and the audit event's hash: the same for every delivery of one event to one stream.
pub(crate) fn jti(stream_id: &str, event_hash: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"offboard-ssf-jti\n");
    h.update(stream_id.as_bytes());
    h.update(b"\n");
    h.update(event_hash.as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// The issuer's path (no trailing `/`), once it is checked.
fn check_issuer(issuer: &str) -> Result<String> {
    let bad = |why: &str| Error::invalid_input(format!("the SSF issuer {why}"));
    let url = url::Url::parse(issuer).map_err(|_| bad("is not a URL"))?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
        return Err(bad("must be an https URL (http only on loopback)"));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(bad("may not have a query, a fragment or credentials"));
    }
    Ok(url.path().trim_end_matches('/').to_owned())
}

#[async_trait]
impl AuditSink for Transmitter {
    /// Notes how far the trail reaches and wakes the streams; never fails, never waits for a
    /// receiver (each stream reads the trail from its own durable position).
    async fn record(&self, events: &[AuditEvent]) -> Result<()> {
        for e in events {
            if let AuditKind::RunPlanned { run } = &e.kind {
                self.runs().insert(run.id, Arc::new((**run).clone()));
            }
        }
        if let Some(last) = events.last() {
            self.inner.head.fetch_max(last.seq, Ordering::AcqRel);
        }
        self.wake();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jti_is_stable_per_event_and_stream() {
        assert_eq!(jti("s1", "abc"), jti("s1", "abc"));
        assert_ne!(jti("s1", "abc"), jti("s2", "abc"));
        assert_ne!(jti("s1", "abc"), jti("s1", "abd"));
        assert_eq!(jti("s1", "abc").len(), 32);
    }

    #[test]
    fn issuers_are_checked() {
        assert_eq!(check_issuer("https://tr.example.com").unwrap(), "");
        assert_eq!(
            check_issuer("https://tr.example.com/tenant/").unwrap(),
            "/tenant"
        );
        assert_eq!(check_issuer("http://127.0.0.1:8080/t").unwrap(), "/t");
        for bad in [
            "http://tr.example.com",
            "ftp://tr.example.com",
            "https://tr.example.com/?a=b",
            "https://u:p@tr.example.com",
            "tr.example.com",
        ] {
            assert!(check_issuer(bad).is_err(), "{bad}");
        }
    }
}
