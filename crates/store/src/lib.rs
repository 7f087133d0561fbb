//! The Stompbox message store: persistent queue messages on disk, so that they survive a restart
//! or a crash of a single node.
//!
//! [`DiskStore`] implements the broker's [`Store`] seam on [redb](https://docs.rs/redb), an
//! embedded copy-on-write B-tree in one file (chosen over fjall by measurement:
//! `docs/persistence.md`). The broker calls it on sessions' tasks and never waits for it: every
//! write goes down a channel to one writer thread, which takes whatever has queued up, writes it
//! as one transaction and commits it with one sync for the whole batch (group commit), then
//! publishes the last sequence number it made durable. A session that owes its client a RECEIPT waits for
//! that number to reach its own last write.
//!
//! ```text
//!  sessions ── put/remove (seq) ──► channel ──► writer thread: batch ─► B-tree ─► fdatasync
//!      ▲                                                                              │
//!      └──────────── Store::synced(seq) resolves ◄── committed seq (watch) ◄──────────┘
//! ```
//!
//! # Layout
//! - `key.rs`: a record's key, (queue name, NUL, position big-endian), so one queue's records
//!   are contiguous and in order, and its tail is one range read.
//! - `writer.rs`: the writer thread: batches, one sync per batch, the committed sequence.
//! - this file: opening the data directory (its lock, the clean-shutdown marker), the [`Store`]
//!   implementation, closing.

mod key;
mod writer;

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use bytes::Bytes;
use stompbox_broker::{Store, StoreError, StoredRecord, Synced};
use tokio::sync::watch;

use self::writer::{Committed, Op, Writer};

/// The file whose presence says the store was closed cleanly (every delivery count exact).
const CLEAN_MARKER: &str = "CLEAN";
/// The file locked while a process has the store open.
const LOCK_FILE: &str = "LOCK";
/// The engine's file inside the data directory.
const ENGINE_FILE: &str = "messages.redb";
/// The one table: key (`key.rs`) → record (the broker's bytes).
pub(crate) const MESSAGES: redb::TableDefinition<&[u8], &[u8]> =
    redb::TableDefinition::new("messages");

/// How a [`DiskStore`] is set up.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Most writes in one batch (one sync). Default 4,096.
    pub max_batch_writes: usize,
    /// Most record bytes in one batch. Default 4 MiB.
    pub max_batch_bytes: usize,
    /// The engine's page cache, in bytes. Default 32 MiB: the engine's own default (1 GiB)
    /// would count a backlog read at start-up against the process's memory.
    pub cache_size: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_batch_writes: 4096,
            max_batch_bytes: 4 * 1024 * 1024,
            cache_size: 32 * 1024 * 1024,
        }
    }
}

/// The store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Another process holds the data directory.
    #[error("data directory {0} is in use by another process")]
    Locked(PathBuf),
    /// The directory cannot be created, locked or written.
    #[error("data directory {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The engine refused to open its files.
    #[error("data directory {path}: the storage engine failed to open: {reason}")]
    Engine {
        /// The path.
        path: PathBuf,
        /// What the engine said.
        reason: String,
    },
}

/// Persistent queue messages in a data directory; see the crate documentation.
pub struct DiskStore {
    dir: PathBuf,
    db: Arc<redb::Database>,
    /// Sequence numbers are taken and writes sent under this lock, so the writer sees them in
    /// order.
    sender: Mutex<Sender>,
    committed: watch::Receiver<Committed>,
    was_clean: bool,
    closed: AtomicBool,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Held (locked) while the store is open.
    _lock: File,
}

struct Sender {
    next: u64,
    tx: mpsc::Sender<Op>,
}

impl std::fmt::Debug for DiskStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskStore").field("dir", &self.dir).finish()
    }
}

impl DiskStore {
    /// Opens (creating if needed) the store in `dir`, locking it for this process, and starts
    /// its writer thread.
    pub fn open(dir: impl AsRef<Path>, options: StoreOptions) -> Result<Arc<DiskStore>, OpenError> {
        let dir = dir.as_ref().to_path_buf();
        let io = |source| OpenError::Io {
            path: dir.clone(),
            source,
        };
        fs::create_dir_all(&dir).map_err(io)?;
        let lock = File::create(dir.join(LOCK_FILE)).map_err(io)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(OpenError::Locked(dir)),
            Err(fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let engine = dir.join(ENGINE_FILE);
        let fresh = !engine.exists();
        let marker = dir.join(CLEAN_MARKER);
        let was_clean = fresh || marker.exists();
        let engine_error = |e: redb::Error| OpenError::Engine {
            path: dir.clone(),
            reason: e.to_string(),
        };
        // After a crash, opening checks the whole file (a few seconds per GiB) and rolls back
        // to the last complete commit.
        let db = redb::Database::builder()
            .set_cache_size(options.cache_size)
            .create(&engine)
            .map_err(|e| engine_error(e.into()))?;
        let db = Arc::new(db);
        create_table(&db).map_err(engine_error)?;
        // From now on the store is open: a crash leaves it without the marker.
        if marker.exists() {
            fs::remove_file(&marker).map_err(io)?;
        }
        sync_dir(&dir).map_err(io)?;
        let (tx, rx) = mpsc::channel();
        let (committed_tx, committed) = watch::channel(Committed::default());
        let writer = Writer {
            db: db.clone(),
            rx,
            committed: committed_tx,
            marker,
            options,
        };
        let handle = std::thread::Builder::new()
            .name("stompbox-store".into())
            .spawn(move || writer.run())
            .map_err(io)?;
        Ok(Arc::new(DiskStore {
            dir,
            db,
            sender: Mutex::new(Sender { next: 0, tx }),
            committed,
            was_clean,
            closed: AtomicBool::new(false),
            writer: Mutex::new(Some(handle)),
            _lock: lock,
        }))
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn send(&self, op: impl FnOnce(u64) -> Op) -> u64 {
        let mut sender = self.sender.lock().unwrap_or_else(|e| e.into_inner());
        sender.next += 1;
        let seq = sender.next;
        // The writer stops only at close (or when it failed, which `synced` reports).
        let _ = sender.tx.send(op(seq));
        seq
    }
}

impl Store for DiskStore {
    fn put(&self, queue: &str, id: u64, record: Bytes) -> u64 {
        self.send(|seq| Op::Put {
            seq,
            key: key::encode(queue, id),
            record,
        })
    }

    fn remove(&self, queue: &str, id: u64) -> u64 {
        self.send(|seq| Op::Remove {
            seq,
            key: key::encode(queue, id),
        })
    }

    fn synced(&self, seq: u64) -> Synced {
        let mut committed = self.committed.clone();
        Box::pin(async move {
            let state = committed
                .wait_for(|c| c.seq >= seq || c.failed.is_some())
                .await
                .map_err(|_| StoreError {
                    reason: "the store is closed".into(),
                })?;
            match &state.failed {
                Some(reason) if state.seq < seq => Err(StoreError {
                    reason: reason.to_string(),
                }),
                _ => Ok(()),
            }
        })
    }

    fn scan(&self, visit: &mut dyn FnMut(&str, u64, &[u8])) -> Result<(), StoreError> {
        use redb::{ReadableDatabase, ReadableTable};
        let read = self.db.begin_read().map_err(failed)?;
        let table = read.open_table(MESSAGES).map_err(failed)?;
        for entry in table.iter().map_err(failed)? {
            let (key, value) = entry.map_err(failed)?;
            match key::decode(key.value()) {
                Some((queue, position)) => visit(&queue, position, value.value()),
                None => {
                    tracing::warn!(key = ?key.value(), "unreadable key in the message store; skipped");
                }
            }
        }
        Ok(())
    }

    fn read(&self, queue: &str, after: u64, limit: usize) -> Result<Vec<StoredRecord>, StoreError> {
        use redb::{ReadableDatabase, ReadableTable};
        let Some(from) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        let (from, to) = (key::encode(queue, from), key::encode(queue, u64::MAX));
        let read = self.db.begin_read().map_err(failed)?;
        let table = read.open_table(MESSAGES).map_err(failed)?;
        let mut records = Vec::with_capacity(limit.min(1024));
        for entry in table
            .range(from.as_slice()..=to.as_slice())
            .map_err(failed)?
            .take(limit)
        {
            let (key, value) = entry.map_err(failed)?;
            let Some((_, position)) = key::decode(key.value()) else {
                continue;
            };
            records.push(StoredRecord {
                position,
                record: Bytes::copy_from_slice(value.value()),
            });
        }
        Ok(records)
    }

    fn closed_cleanly(&self) -> bool {
        self.was_clean
    }

    fn close(&self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        self.send(|seq| Op::Close { seq, done: done_tx });
        // The writer syncs what is left, writes the marker and ends.
        let _ = done_rx.recv();
        let handle = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

impl Drop for DiskStore {
    /// Stops the writer (after what it has queued) without marking the store clean, unless
    /// [`Store::close`] did, and waits for it, so that the file is free when this returns.
    fn drop(&mut self) {
        let sender = self.sender.get_mut().unwrap_or_else(|e| e.into_inner());
        drop(std::mem::replace(&mut sender.tx, mpsc::channel().0));
        let handle = self
            .writer
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

/// A storage engine error as the broker sees it.
fn failed(e: impl Into<redb::Error>) -> StoreError {
    StoreError {
        reason: e.into().to_string(),
    }
}

/// Creates the table if the file is new (so that reading never meets a missing table).
fn create_table(db: &redb::Database) -> Result<(), redb::Error> {
    let write = db.begin_write()?;
    write.open_table(MESSAGES)?;
    write.commit()?;
    Ok(())
}

/// Syncs a directory, so that a file created or removed in it survives a crash.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests;
