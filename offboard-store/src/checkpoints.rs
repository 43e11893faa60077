//! Where signed checkpoints of the audit chain are kept, outside the database:
//! [`JsonLinesCheckpointSink`] (a file, one checkpoint per line) and, with feature
//! `object-store`, [`ObjectStoreCheckpointSink`] (one object per checkpoint, e.g. in a bucket
//! with a retention lock).

use std::fmt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use offboard_core::{Checkpoint, CheckpointSink, Result};
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use crate::jsonl::{for_each_line, io, open_append, read_or_empty};

/// A [`CheckpointSink`] that appends each checkpoint to a file as one line of JSON
/// ([`Checkpoint::to_json`]) and `fsync`s it.
///
/// # Behavior
/// - [`CheckpointSink::latest`] (and [`JsonLinesCheckpointSink::read`], which needs no sink,
///   for an offline verifier) read the file's complete lines back; a torn last line (a crash
///   in the middle of a write) is ignored, and cut off when the sink opens the file.
/// - A line that is not a checkpoint is an error of kind `Tampered` naming the line.
///
/// # Example
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use offboard_core::{CheckpointSigner, CheckpointSink};
/// use offboard_store::JsonLinesCheckpointSink;
///
/// let dir = tempfile::tempdir().unwrap();
/// let sink = JsonLinesCheckpointSink::open(dir.path().join("checkpoints.jsonl")).await.unwrap();
/// let signer = CheckpointSigner::from_seed([7; 32]);
/// sink.write(&signer.sign(3, "ab", chrono::Utc::now())).await.unwrap();
/// assert_eq!(sink.latest().await.unwrap().unwrap().seq, 3);
/// # });
/// ```
pub struct JsonLinesCheckpointSink {
    path: PathBuf,
    file: Mutex<tokio::fs::File>,
}

impl fmt::Debug for JsonLinesCheckpointSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonLinesCheckpointSink")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl JsonLinesCheckpointSink {
    /// Opens (creating if missing) the file for appending, cutting off a torn last line.
    ///
    /// # Errors
    /// `Storage` when the file cannot be read or opened; `Tampered` when a complete line is
    /// not a checkpoint.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let existing = read_or_empty(&path).await?;
        let complete = for_each_line(&existing, &path, "a checkpoint", |_: Checkpoint| ())?;
        let file = open_append(&path, complete, existing.len()).await?;
        Ok(Self {
            path,
            file: Mutex::new(file),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every checkpoint in the file at `path`, in the order written (a missing file holds
    /// none): what an offline verifier reads.
    ///
    /// # Errors
    /// `Storage` when the file cannot be read; `Tampered` when a complete line is not a
    /// checkpoint.
    pub async fn read(path: impl AsRef<Path>) -> Result<Vec<Checkpoint>> {
        let path = path.as_ref();
        let mut out = Vec::new();
        for_each_line(&read_or_empty(path).await?, path, "a checkpoint", |c| {
            out.push(c)
        })?;
        Ok(out)
    }
}

#[async_trait]
impl CheckpointSink for JsonLinesCheckpointSink {
    async fn write(&self, checkpoint: &Checkpoint) -> Result<()> {
        let mut line = checkpoint.to_json()?;
        line.push('\n');
        let mut file = self.file.lock().await;
        file.write_all(line.as_bytes())
            .await
            .map_err(io("appending to", &self.path))?;
        file.sync_data().await.map_err(io("syncing", &self.path))
    }

    async fn latest(&self) -> Result<Option<Checkpoint>> {
        let _writes = self.file.lock().await;
        Ok(Self::read(&self.path)
            .await?
            .into_iter()
            .max_by_key(|c| c.seq))
    }
}

#[cfg(feature = "object-store")]
pub use object::ObjectStoreCheckpointSink;

#[cfg(feature = "object-store")]
mod object {
    use std::sync::Arc;

    use async_trait::async_trait;
    use futures::TryStreamExt;
    use object_store::path::Path as ObjectPath;
    use object_store::{GetOptions, ObjectStore, PutMode, PutOptions, PutPayload};
    use offboard_core::{Checkpoint, CheckpointSink, Error, ErrorKind, Result};

    /// A [`CheckpointSink`] that writes each checkpoint as one object of an
    /// [`object_store::ObjectStore`], named `<prefix>/<seq, 20 digits>.json` so that names
    /// sort in `seq` order.
    ///
    /// # Behavior
    /// - Objects are created, never overwritten (`PutMode::Create`), as a bucket with a
    ///   retention lock (WORM) requires; a checkpoint whose `seq` already has an object (a
    ///   second engine on the same store) is not written again.
    /// - [`CheckpointSink::latest`] lists the prefix and reads the object with the highest
    ///   name; [`ObjectStoreCheckpointSink::all`] reads every one.
    #[derive(Debug)]
    pub struct ObjectStoreCheckpointSink {
        store: Arc<dyn ObjectStore>,
        prefix: ObjectPath,
    }

    fn failed(op: &'static str) -> impl FnOnce(object_store::Error) -> Error {
        move |e| {
            Error::storage(format!("{op} in the object store failed"))
                .with_operation("checkpoints")
                .with_source(e)
                .retryable()
        }
    }

    impl ObjectStoreCheckpointSink {
        /// Checkpoints under `prefix` (e.g. `"checkpoints"`) of `store`.
        pub fn new(store: Arc<dyn ObjectStore>, prefix: impl Into<ObjectPath>) -> Self {
            Self {
                store,
                prefix: prefix.into(),
            }
        }

        /// The object a checkpoint at `seq` is written to.
        pub fn location(&self, seq: u64) -> ObjectPath {
            self.prefix.clone().join(format!("{seq:020}.json").as_str())
        }

        /// The names of every checkpoint object, sorted (so in `seq` order).
        async fn names(&self) -> Result<Vec<ObjectPath>> {
            let mut names: Vec<ObjectPath> = self
                .store
                .list(Some(&self.prefix))
                .map_ok(|meta| meta.location)
                .try_collect()
                .await
                .map_err(failed("listing checkpoints"))?;
            names.retain(|n| n.as_ref().ends_with(".json"));
            names.sort();
            Ok(names)
        }

        async fn read(&self, location: &ObjectPath) -> Result<Checkpoint> {
            let bytes = self
                .store
                .get_opts(location, GetOptions::default())
                .await
                .map_err(failed("reading a checkpoint"))?
                .bytes()
                .await
                .map_err(failed("reading a checkpoint"))?;
            serde_json::from_slice(&bytes).map_err(|e| {
                Error::new(
                    ErrorKind::Tampered,
                    format!("the object {location} is not a checkpoint"),
                )
                .with_source(e)
            })
        }

        /// Every checkpoint, in `seq` order.
        ///
        /// # Errors
        /// `Storage` when the store cannot be listed or read; `Tampered` when an object is
        /// not a checkpoint.
        pub async fn all(&self) -> Result<Vec<Checkpoint>> {
            let mut out = Vec::new();
            for name in self.names().await? {
                out.push(self.read(&name).await?);
            }
            Ok(out)
        }
    }

    #[async_trait]
    impl CheckpointSink for ObjectStoreCheckpointSink {
        async fn write(&self, checkpoint: &Checkpoint) -> Result<()> {
            let body = checkpoint.to_json()?;
            let options = PutOptions {
                mode: PutMode::Create,
                ..PutOptions::default()
            };
            match self
                .store
                .put_opts(
                    &self.location(checkpoint.seq),
                    PutPayload::from(body),
                    options,
                )
                .await
            {
                Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
                Err(e) => Err(failed("writing a checkpoint")(e)),
            }
        }

        async fn latest(&self) -> Result<Option<Checkpoint>> {
            match self.names().await?.last() {
                Some(name) => Ok(Some(self.read(name).await?)),
                None => Ok(None),
            }
        }
    }
}
