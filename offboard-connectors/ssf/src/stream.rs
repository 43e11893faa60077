//! Streams as stored (a [`Record`] each in the engine's store) and as the SSF API shows them.

use std::fmt;

use offboard_core::store::{Record, RecordSwap, Store};
use offboard_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The records' namespace.
pub(crate) const NAMESPACE: &str = "offboard-ssf";
/// The record listing every stream's id.
const INDEX: &str = "streams";

/// RFC 8935 push delivery.
pub const PUSH: &str = "urn:ietf:rfc:8935";
/// RFC 8936 poll delivery.
pub const POLL: &str = "urn:ietf:rfc:8936";

/// A stream's status (SSF 1.0 section 8.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamStatus {
    /// Events are delivered.
    Enabled,
    /// Events are held and delivered once enabled again.
    Paused,
    /// Events are not delivered and not held.
    Disabled,
}

/// How a stream's SETs reach its receiver, as the stream configuration shows it (the
/// receiver's `authorization_header` is write-only and never shown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// [`PUSH`] or [`POLL`].
    pub method: String,
    /// Push: the receiver's endpoint; poll: this transmitter's endpoint for the stream.
    pub endpoint_url: String,
}

/// A stream's configuration (SSF 1.0 section 8.1.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamConfig {
    /// The stream's id.
    pub stream_id: String,
    /// The transmitter's issuer.
    pub iss: String,
    /// The receiver's audience (the `aud` of every SET).
    pub aud: String,
    /// What this transmitter can send.
    pub events_supported: Vec<String>,
    /// What the receiver asked for.
    pub events_requested: Vec<String>,
    /// What the stream sends: the requested events that are supported.
    pub events_delivered: Vec<String>,
    /// How.
    pub delivery: Delivery,
    /// The least number of seconds between two verification requests.
    pub min_verification_interval: u64,
    /// The receiver's description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A stream as stored.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Stored {
    /// The receiver (its name) that owns the stream.
    pub(crate) receiver: String,
    pub(crate) config: StreamConfig,
    /// The receiver's `Authorization` header for push (write-only).
    #[serde(default)]
    pub(crate) authorization_header: Option<String>,
    pub(crate) status: StreamStatus,
    #[serde(default)]
    pub(crate) reason: Option<String>,
    /// Subjects added (receivers' `sub_id`s) and removed.
    #[serde(default)]
    pub(crate) added: Vec<Value>,
    #[serde(default)]
    pub(crate) removed: Vec<Value>,
    /// Every audit event up to this `seq` is delivered (push: accepted or rejected by the
    /// receiver; poll: acknowledged) or raised nothing for this stream.
    pub(crate) position: u64,
    /// Poll: `jti`s acknowledged after `position`.
    #[serde(default)]
    pub(crate) acked: Vec<String>,
    /// When the last verification was asked (seconds since the epoch).
    #[serde(default)]
    pub(crate) last_verification: Option<i64>,
    #[serde(default)]
    pub(crate) deleted: bool,
}

impl fmt::Debug for Stored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stored")
            .field("receiver", &self.receiver)
            .field("stream_id", &self.config.stream_id)
            .field("delivery", &self.config.delivery)
            .field(
                "authorization_header",
                &self.authorization_header.as_ref().map(|_| "[REDACTED]"),
            )
            .field("status", &self.status)
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

impl Stored {
    pub(crate) fn is_push(&self) -> bool {
        self.config.delivery.method == PUSH
    }
}

fn key(id: &str) -> String {
    format!("stream:{id}")
}

fn decode(record: &Record) -> Result<Stored> {
    serde_json::from_value(record.value.clone()).map_err(|e| {
        Error::new(ErrorKind::Storage, "a stored SSF stream could not be read").with_source(e)
    })
}

fn encode(stream: &Stored) -> Result<Value> {
    serde_json::to_value(stream).map_err(|e| {
        Error::new(ErrorKind::Internal, "an SSF stream could not be encoded").with_source(e)
    })
}

/// The stream `id` as stored (deleted ones included).
pub(crate) async fn load(store: &dyn Store, id: &str) -> Result<Option<Stored>> {
    match store.get_record(NAMESPACE, &key(id)).await? {
        Some(r) => decode(&r).map(Some),
        None => Ok(None),
    }
}

/// Stores a new stream and lists it in the index.
pub(crate) async fn create(store: &dyn Store, stream: &Stored) -> Result<()> {
    let id = stream.config.stream_id.clone();
    let (_, stored) = store
        .insert_record(NAMESPACE, &key(&id), &encode(stream)?)
        .await?;
    if !stored {
        return Err(Error::new(
            ErrorKind::Conflict,
            "a stream with that id exists",
        ));
    }
    let mut current = store.get_record(NAMESPACE, INDEX).await?;
    loop {
        let Some(record) = current else {
            let (record, inserted) = store
                .insert_record(NAMESPACE, INDEX, &Value::from(vec![id.clone()]))
                .await?;
            if inserted {
                return Ok(());
            }
            current = Some(record);
            continue;
        };
        let mut ids: Vec<String> = serde_json::from_value(record.value.clone()).unwrap_or_default();
        ids.push(id.clone());
        match store
            .swap_record(NAMESPACE, INDEX, record.version, &Value::from(ids))
            .await?
        {
            RecordSwap::Swapped(_) => return Ok(()),
            RecordSwap::Conflict(now) => current = now,
        }
    }
}

/// The ids of every stream ever created (deleted ones included).
pub(crate) async fn ids(store: &dyn Store) -> Result<Vec<String>> {
    Ok(store
        .get_record(NAMESPACE, INDEX)
        .await?
        .and_then(|r| serde_json::from_value(r.value).ok())
        .unwrap_or_default())
}

/// Changes the stream `id` with `change` (read, change, compare-and-swap, again on a
/// conflict). `change` may refuse (its error is returned, nothing stored). A deleted stream is
/// `NotFound`.
pub(crate) async fn update<T>(
    store: &dyn Store,
    id: &str,
    mut change: impl FnMut(&mut Stored) -> Result<T>,
) -> Result<(Stored, T)> {
    let not_found = || Error::new(ErrorKind::NotFound, "no such stream");
    let mut current = store.get_record(NAMESPACE, &key(id)).await?;
    loop {
        let record = current.ok_or_else(not_found)?;
        let mut stream = decode(&record)?;
        if stream.deleted {
            return Err(not_found());
        }
        let out = change(&mut stream)?;
        match store
            .swap_record(NAMESPACE, &key(id), record.version, &encode(&stream)?)
            .await?
        {
            RecordSwap::Swapped(_) => return Ok((stream, out)),
            RecordSwap::Conflict(now) => current = now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use offboard_core::MemoryStore;

    fn stream(id: &str) -> Stored {
        Stored {
            receiver: "okta".into(),
            config: StreamConfig {
                stream_id: id.into(),
                iss: "https://tr.example.com".into(),
                aud: "https://rcv.example.com".into(),
                events_supported: vec![],
                events_requested: vec![],
                events_delivered: vec![],
                delivery: Delivery {
                    method: PUSH.into(),
                    endpoint_url: "https://rcv.example.com/events".into(),
                },
                min_verification_interval: 0,
                description: None,
            },
            authorization_header: Some("Bearer push-secret-4711".into()),
            status: StreamStatus::Enabled,
            reason: None,
            added: vec![],
            removed: vec![],
            position: 0,
            acked: vec![],
            last_verification: None,
            deleted: false,
        }
    }

    #[test]
    fn debug_never_shows_the_receivers_authorization_header() {
        let debug = format!("{:?}", stream("s1"));
        assert!(!debug.contains("push-secret-4711"), "{debug}");
        assert!(debug.contains("[REDACTED]"));
    }

    #[tokio::test]
    async fn streams_round_trip_update_by_compare_and_swap_and_stay_deleted() {
        let store = MemoryStore::new();
        create(&store, &stream("s1")).await.unwrap();
        create(&store, &stream("s2")).await.unwrap();
        assert_eq!(
            create(&store, &stream("s1")).await.unwrap_err().kind(),
            ErrorKind::Conflict
        );
        assert_eq!(ids(&store).await.unwrap(), ["s1", "s2"]);
        assert_eq!(load(&store, "s1").await.unwrap().unwrap(), stream("s1"));
        let (s, ()) = update(&store, "s1", |s| {
            s.position = 7;
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(s.position, 7);
        assert_eq!(load(&store, "s1").await.unwrap().unwrap().position, 7);
        // A refused change stores nothing.
        let refused = update(&store, "s1", |s| {
            s.position = 9;
            Err::<(), _>(Error::invalid_input("no"))
        })
        .await;
        assert!(refused.is_err());
        assert_eq!(load(&store, "s1").await.unwrap().unwrap().position, 7);
        update(&store, "s1", |s| {
            s.deleted = true;
            Ok(())
        })
        .await
        .unwrap();
        let gone = update(&store, "s1", |_| Ok(())).await.unwrap_err();
        assert_eq!(gone.kind(), ErrorKind::NotFound);
        assert_eq!(
            update(&store, "nope", |_| Ok(())).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
    }
}
