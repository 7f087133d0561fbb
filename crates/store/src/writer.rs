//! The writer thread: it owns the engine's write side. It blocks for the first write, takes
//! every other write already queued (up to the batch bounds), applies them as one batch synced
//! once, and publishes the last sequence number made durable. Writes are applied in sequence
//! order, so "write N is durable" means every write before it is too.
//!
//! A failed batch is fatal for the store: it publishes the failure (every RECEIPT still owed
//! gets an ERROR instead) and stops writing, since a journal that failed a sync cannot promise
//! anything afterwards.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender};

use bytes::Bytes;
use tokio::sync::watch;

use crate::StoreOptions;

/// One write, numbered in the order the broker made them.
pub(crate) enum Op {
    Put {
        seq: u64,
        key: Vec<u8>,
        record: Bytes,
    },
    Remove {
        seq: u64,
        key: Vec<u8>,
    },
    /// Sync what is left, write the clean marker, stop; then signal `done`.
    Close {
        seq: u64,
        done: SyncSender<()>,
    },
}

impl Op {
    fn seq(&self) -> u64 {
        match self {
            Op::Put { seq, .. } | Op::Remove { seq, .. } | Op::Close { seq, .. } => *seq,
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Op::Put { key, record, .. } => key.len() + record.len(),
            Op::Remove { key, .. } => key.len(),
            Op::Close { .. } => 0,
        }
    }
}

/// What the writer has made durable.
#[derive(Clone, Debug, Default)]
pub(crate) struct Committed {
    /// Every write up to this one is durable.
    pub(crate) seq: u64,
    /// The store failed: nothing after `seq` will be.
    pub(crate) failed: Option<Arc<str>>,
}

pub(crate) struct Writer {
    pub(crate) db: Arc<redb::Database>,
    pub(crate) rx: Receiver<Op>,
    pub(crate) committed: watch::Sender<Committed>,
    pub(crate) marker: PathBuf,
    pub(crate) options: StoreOptions,
}

impl Writer {
    pub(crate) fn run(self) {
        let mut batch: Vec<Op> = Vec::new();
        while let Ok(first) = self.rx.recv() {
            let mut bytes = first.bytes();
            batch.push(first);
            while batch.len() < self.options.max_batch_writes
                && bytes < self.options.max_batch_bytes
                && !matches!(batch.last(), Some(Op::Close { .. }))
            {
                match self.rx.try_recv() {
                    Ok(op) => {
                        bytes += op.bytes();
                        batch.push(op);
                    }
                    Err(_) => break,
                }
            }
            let last = batch.last().map_or(0, Op::seq);
            if let Err(e) = self.apply(&batch) {
                tracing::error!(error = %e, "message store write failed; persistent messages are no longer stored");
                self.committed
                    .send_modify(|c| c.failed = Some(e.to_string().into()));
                // Owed RECEIPTs get their ERROR; a pending close returns.
                return;
            }
            self.committed.send_modify(|c| c.seq = last);
            if let Some(Op::Close { done, .. }) =
                batch.pop().filter(|op| matches!(op, Op::Close { .. }))
            {
                if let Err(e) = self.mark_clean() {
                    tracing::warn!(error = %e, "cannot mark the message store closed cleanly");
                }
                let _ = done.send(());
                return;
            }
            batch.clear();
        }
    }

    /// Writes a batch as one transaction, committed with one sync.
    fn apply(&self, batch: &[Op]) -> Result<(), redb::Error> {
        let mut write = self.db.begin_write()?;
        write.set_durability(redb::Durability::Immediate)?;
        {
            let mut table = write.open_table(crate::MESSAGES)?;
            for op in batch {
                match op {
                    Op::Put { key, record, .. } => {
                        table.insert(key.as_slice(), &record[..])?;
                    }
                    Op::Remove { key, .. } => {
                        table.remove(key.as_slice())?;
                    }
                    Op::Close { .. } => {}
                }
            }
        }
        write.commit()?;
        Ok(())
    }

    fn mark_clean(&self) -> std::io::Result<()> {
        std::fs::File::create(&self.marker)?.sync_all()?;
        crate::sync_dir(
            self.marker
                .parent()
                .expect("the marker is in the data directory"),
        )
    }
}
