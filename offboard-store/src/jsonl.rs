//! [`JsonLinesSink`]: audit events as JSON lines in a file.

use std::fmt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use offboard_core::audit::canonical_json;
use offboard_core::{AuditEvent, AuditSink, Error, Result};
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

/// An [`AuditSink`] that appends each event to a file as one line of canonical JSON (keys
/// sorted, as the hash covers them), so the file can be verified on its own.
///
/// Events are written in their commitment form ([`AuditEvent::redacted`]): a salted
/// commitment stands in for each personal value, and neither value nor salt reaches the file.
/// The file verifies as the chain does and never needs rewriting when a person is erased; the
/// values live only in the store, where [`offboard_core::Store::erase_person`] deletes them.
///
/// # Behavior
/// - Each [`AuditSink::record`] call appends its new events and `fsync`s the file once.
/// - Events with a `seq` at or below the last one written are ignored (a store replaying its
///   events after a restart writes nothing twice); unsealed events (`seq` 0) are all written.
/// - At open, the last `seq` is read back from the file; a torn last line (a crash in the
///   middle of a write) is cut off. It is the sink's [`AuditSink::position`]: an engine
///   catches the file up from there.
///
/// # Example
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use offboard_core::{AuditEvent, AuditKind, AuditSink};
/// use offboard_store::JsonLinesSink;
///
/// let dir = tempfile::tempdir().unwrap();
/// let sink = JsonLinesSink::open(dir.path().join("audit.jsonl")).await.unwrap();
/// let mut e = AuditEvent::new(chrono::Utc::now(), "admin",
///     AuditKind::Note { name: "n".into(), data: serde_json::Value::Null });
/// e.seal(1, offboard_core::audit::GENESIS_HASH);
/// sink.record(&[e.clone()]).await.unwrap();
/// sink.record(&[e]).await.unwrap(); // already written: ignored
/// assert_eq!(sink.last_seq().await, 1);
/// # });
/// ```
pub struct JsonLinesSink {
    path: PathBuf,
    state: Mutex<State>,
}

struct State {
    file: tokio::fs::File,
    last_seq: u64,
}

impl fmt::Debug for JsonLinesSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonLinesSink")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Converts an IO error on `path` during `op` ("reading", "appending to" …).
pub(crate) fn io<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |e| {
        Error::storage(format!("{op} {} failed", path.display()))
            .with_operation("jsonl")
            .with_source(e)
    }
}

/// The bytes of the file at `path` (a missing file: none).
pub(crate) async fn read_or_empty(path: &Path) -> Result<Vec<u8>> {
    match tokio::fs::read(path).await {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io("reading", path)(e)),
    }
}

/// Decodes each complete line of `bytes` (read from `path`; a torn last line, without its
/// newline, is left out) as `T` and hands it to `f`: the length of the complete lines.
///
/// # Errors
/// `Tampered` naming the first line that is not `what`.
pub(crate) fn for_each_line<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    path: &Path,
    what: &str,
    mut f: impl FnMut(T),
) -> Result<usize> {
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    for (n, line) in bytes[..complete].split(|b| *b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let value = serde_json::from_slice(line).map_err(|e| {
            Error::new(
                offboard_core::ErrorKind::Tampered,
                format!("line {} of {} is not {what}", n + 1, path.display()),
            )
            .with_source(e)
        })?;
        f(value);
    }
    Ok(complete)
}

/// Opens (creating if missing) the file at `path` for appending, cutting it to its
/// `complete` lines when it is longer (`len`: a torn last line).
pub(crate) async fn open_append(
    path: &Path,
    complete: usize,
    len: usize,
) -> Result<tokio::fs::File> {
    let file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await
        .map_err(io("opening", path))?;
    if complete < len {
        file.set_len(complete as u64)
            .await
            .map_err(io("cutting a torn line off", path))?;
    }
    Ok(file)
}

impl JsonLinesSink {
    /// Opens (creating if missing) the file for appending.
    ///
    /// # Errors
    /// `Storage` when the file cannot be read or opened; `Tampered` when a complete line is
    /// not an audit event.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let existing = read_or_empty(&path).await?;
        let mut last_seq = 0;
        let complete = for_each_line(&existing, &path, "an audit event", |e: AuditEvent| {
            last_seq = last_seq.max(e.seq);
        })?;
        let file = open_append(&path, complete, existing.len()).await?;
        Ok(Self {
            path,
            state: Mutex::new(State { file, last_seq }),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The highest `seq` written so far (0: none).
    pub async fn last_seq(&self) -> u64 {
        self.state.lock().await.last_seq
    }
}

#[async_trait]
impl AuditSink for JsonLinesSink {
    async fn record(&self, events: &[AuditEvent]) -> Result<()> {
        let mut state = self.state.lock().await;
        let mut buf = String::new();
        let mut last = state.last_seq;
        for event in events {
            if event.seq != 0 && event.seq <= last {
                continue;
            }
            let (stored, _) = event.redacted()?;
            let value = serde_json::to_value(stored)
                .map_err(|e| Error::internal("an audit event did not serialise").with_source(e))?;
            buf.push_str(&canonical_json(&value));
            buf.push('\n');
            last = last.max(event.seq);
        }
        if buf.is_empty() {
            return Ok(());
        }
        state
            .file
            .write_all(buf.as_bytes())
            .await
            .map_err(io("appending to", &self.path))?;
        state
            .file
            .sync_data()
            .await
            .map_err(io("syncing", &self.path))?;
        state.last_seq = last;
        Ok(())
    }

    /// The last `seq` in the file: an engine's pump resumes after it (a new, empty file gets
    /// the whole trail).
    async fn position(&self) -> Result<Option<u64>> {
        Ok(Some(self.last_seq().await))
    }
}
