//! [`MemoryStore`]: a [`Store`] in memory for tests. It syncs when told to, so a test can see
//! what a RECEIPT waited for, and can be "crashed": a restart finds only what was synced.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use stompbox_broker::{Store, StoreError, StoredRecord, Synced};
use tokio::sync::watch;

#[derive(Default)]
struct State {
    /// What is durable.
    synced: BTreeMap<(String, u64), Bytes>,
    /// Writes not yet synced, in order: (seq, queue, id, Some(record) | None for remove).
    pending: Vec<(u64, String, u64, Option<Bytes>)>,
    next: u64,
    clean: bool,
}

/// A store in memory; sync it with [`MemoryStore::sync`] (or let it sync every write).
pub struct MemoryStore {
    state: Mutex<State>,
    committed: watch::Sender<u64>,
    auto_sync: bool,
}

impl MemoryStore {
    /// An empty store; with `auto_sync` every write is durable at once.
    pub fn new(auto_sync: bool) -> Arc<MemoryStore> {
        Arc::new(MemoryStore {
            state: Mutex::new(State {
                clean: true,
                ..State::default()
            }),
            committed: watch::channel(0).0,
            auto_sync,
        })
    }

    /// Writes made and not yet synced.
    pub fn pending(&self) -> usize {
        self.state.lock().unwrap().pending.len()
    }

    /// Makes every write so far durable.
    pub fn sync(&self) {
        let mut state = self.state.lock().unwrap();
        let pending = std::mem::take(&mut state.pending);
        let mut last = 0;
        for (seq, queue, id, record) in pending {
            last = seq;
            match record {
                Some(r) => state.synced.insert((queue, id), r),
                None => state.synced.remove(&(queue, id)),
            };
        }
        drop(state);
        if last > 0 {
            self.committed.send_replace(last);
        }
    }

    /// What a restart after a crash would find: the synced records, marked unclean.
    pub fn crashed(&self) -> Arc<MemoryStore> {
        self.crashed_with(self.auto_sync)
    }

    /// As [`MemoryStore::crashed`], the restarted store syncing every write at once.
    pub fn crashed_auto_sync(&self) -> Arc<MemoryStore> {
        self.crashed_with(true)
    }

    fn crashed_with(&self, auto_sync: bool) -> Arc<MemoryStore> {
        let state = self.state.lock().unwrap();
        let store = MemoryStore::new(auto_sync);
        let mut new = store.state.lock().unwrap();
        new.synced = state.synced.clone();
        new.next = state.next;
        new.clean = false;
        drop(new);
        store
    }

    /// The durable records: (queue, id).
    pub fn keys(&self) -> Vec<(String, u64)> {
        self.state.lock().unwrap().synced.keys().cloned().collect()
    }

    fn write(&self, queue: &str, id: u64, record: Option<Bytes>) -> u64 {
        let mut state = self.state.lock().unwrap();
        state.next += 1;
        let seq = state.next;
        state.pending.push((seq, queue.to_owned(), id, record));
        drop(state);
        if self.auto_sync {
            self.sync();
        }
        seq
    }
}

impl Store for MemoryStore {
    fn put(&self, queue: &str, position: u64, record: Bytes) -> u64 {
        self.write(queue, position, Some(record))
    }

    fn remove(&self, queue: &str, position: u64) -> u64 {
        self.write(queue, position, None)
    }

    fn synced(&self, seq: u64) -> Synced {
        let mut rx = self.committed.subscribe();
        Box::pin(async move {
            rx.wait_for(|c| *c >= seq)
                .await
                .map(|_| ())
                .map_err(|_| StoreError {
                    reason: "closed".into(),
                })
        })
    }

    fn scan(&self, visit: &mut dyn FnMut(&str, u64, &[u8])) -> Result<(), StoreError> {
        let synced = self.state.lock().unwrap().synced.clone();
        for ((queue, position), record) in &synced {
            visit(queue, *position, record);
        }
        Ok(())
    }

    fn read(&self, queue: &str, after: u64, limit: usize) -> Result<Vec<StoredRecord>, StoreError> {
        let state = self.state.lock().unwrap();
        let from = (queue.to_owned(), after.saturating_add(1));
        Ok(state
            .synced
            .range(from..)
            .take_while(|((q, _), _)| q == queue)
            .take(limit)
            .map(|((_, position), record)| StoredRecord {
                position: *position,
                record: record.clone(),
            })
            .collect())
    }

    fn closed_cleanly(&self) -> bool {
        self.state.lock().unwrap().clean
    }

    fn close(&self) {
        self.sync();
    }
}
