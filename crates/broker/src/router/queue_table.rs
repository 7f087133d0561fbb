//! The node's `/queue/...` table: name → [`Queue`], each behind its own mutex, plus the
//! node-wide pieces queues share (delivery tags, the byte budget, the clock) and dead-letter
//! plumbing between queues.
//!
//! Lock order: the table lock, then one queue's lock, then (inside dispatch) an outbox lock.
//! Never two queue locks at once: dead letters are collected under the source queue's lock
//! and moved into their queue after it is released.
//!
//! Idle queues (no message, no consumer for `queues.idle_expiry`) are swept out of the table
//! when a queue is created (at most every quarter of the expiry, and always when the table is
//! full) and when every queue is listed. A queue is only removed while nobody holds it (its
//! `Arc` is the table's alone, under the table's write lock), so an operation that found it
//! never acts on a removed queue.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use stompbox_codec::ByteString;

use super::durable_table;
use super::internal_queue::{self, Kind};
use super::queue::{Consumer, Ctx, Dead, Full, Outcome, Queue};
use crate::clock::Clock;
use crate::message::Message;
use crate::stats::{Counters, QueueStats};
use crate::store::{SharedStore, StoreError, Writes, record_head};
use crate::{DurableConfig, InboxConfig, OverflowPolicy, QueueConfig};

/// A queue operation that cannot be done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum QueueError {
    /// The queue (or the node's queues together) is at its bound and the policy is `reject`.
    Full(Full),
    /// Creating the queue would cross `queues.max_queues`.
    TooManyQueues,
}

/// Every queue of one node.
#[derive(Debug)]
pub(crate) struct QueueTable {
    queues: RwLock<HashMap<Box<str>, Arc<Mutex<Queue>>>>,
    config: QueueConfig,
    /// The bounds of durable subscriptions' queues (`durable_table.rs`).
    durable: QueueConfig,
    /// The bounds of users' inboxes.
    inbox: QueueConfig,
    counters: Arc<Counters>,
    /// Node-wide delivery tags (the `ack` header), also used for topic client-ack deliveries.
    tags: AtomicU64,
    total_bytes: AtomicUsize,
    clock: Clock,
    /// When the next sweep of idle queues is due (broker clock, ms).
    next_sweep_ms: AtomicU64,
    /// Where persistent messages are written, when the node has a store.
    store: Option<SharedStore>,
}

/// The highest store write an operation made: what a RECEIPT after it waits for.
pub(crate) type Written = Option<u64>;

fn lock(queue: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    // Every queue operation leaves it consistent between statements that can panic.
    queue.lock().unwrap_or_else(|e| e.into_inner())
}

impl QueueTable {
    pub(crate) fn new(
        config: QueueConfig,
        durable: &DurableConfig,
        inbox: &InboxConfig,
        clock: Clock,
        counters: Arc<Counters>,
    ) -> Self {
        // The node's own queues drop their oldest rather than refuse a sender, drop what they
        // cannot deliver, and keep as many on disk as in memory.
        let own = |max_messages, max_bytes, max_age| QueueConfig {
            max_messages,
            max_bytes,
            overflow: OverflowPolicy::DropOldest,
            dead_letter_prefix: String::new(),
            max_stored_messages: max_messages,
            message_ttl: max_age,
            ..config.clone()
        };
        QueueTable {
            queues: RwLock::default(),
            durable: own(durable.max_messages, durable.max_bytes, durable.max_age),
            inbox: own(inbox.max_messages, inbox.max_bytes, inbox.max_age),
            config,
            counters,
            tags: AtomicU64::new(0),
            total_bytes: AtomicUsize::new(0),
            clock,
            next_sweep_ms: AtomicU64::new(0),
            store: None,
        }
    }

    /// Writes persistent messages to `store` from now on.
    pub(crate) fn set_store(&mut self, store: SharedStore) {
        self.store = Some(store);
    }

    /// The node's store, if it has one.
    pub(crate) fn store(&self) -> Option<&SharedStore> {
        self.store.as_ref()
    }

    /// Learns what `store` holds, queue by queue, and leaves it there to be read back as
    /// consumers drain each queue (`Queue::restore`); discards the records of transient
    /// messages (kept only as part of a queue's tail on disk). Returns the highest message id
    /// seen, so new messages are numbered after it. Records this version cannot read are
    /// logged, and skipped when read back.
    pub(crate) fn restore(&self) -> Result<u64, StoreError> {
        let Some(store) = &self.store else {
            return Ok(0);
        };
        #[derive(Default)]
        struct Found {
            count: usize,
            bytes: usize,
            first: u64,
            last: u64,
        }
        let mut queues: Vec<(String, Found)> = Vec::new();
        let mut transient: Vec<(String, u64)> = Vec::new();
        let (mut max_id, mut unreadable) = (0u64, 0usize);
        store.scan(&mut |queue, position, record| {
            if queue == durable_table::REGISTRY {
                return;
            }
            let Some((is_transient, id)) = record_head(record) else {
                unreadable += 1;
                return;
            };
            max_id = max_id.max(id);
            if is_transient {
                transient.push((queue.to_owned(), position));
                return;
            }
            if queues.last().is_none_or(|(name, _)| name != queue) {
                queues.push((
                    queue.to_owned(),
                    Found {
                        first: position,
                        ..Found::default()
                    },
                ));
            }
            let (_, found) = queues.last_mut().expect("pushed above");
            found.count += 1;
            found.bytes += record.len();
            found.last = position;
        })?;
        let unclean = !store.closed_cleanly();
        let restored: usize = queues.iter().map(|(_, f)| f.count).sum();
        for (name, found) in queues {
            let queue = self.restored_queue(&name);
            lock(&queue).restore(found.count, found.bytes, found.first, found.last, unclean);
        }
        for (queue, position) in &transient {
            store.remove(queue, *position);
        }
        if restored + unreadable + transient.len() > 0 {
            tracing::info!(
                messages = restored,
                discarded_transient = transient.len(),
                unreadable,
                clean = !unclean,
                "restored persistent messages"
            );
        }
        Ok(max_id)
    }

    /// A queue being restored: created beyond `max_queues` if need be (it existed before).
    fn restored_queue(&self, name: &str) -> Arc<Mutex<Queue>> {
        let mut table = self.queues.write().unwrap_or_else(|e| e.into_inner());
        (table.entry(name.into()))
            .or_insert_with(|| Arc::new(Mutex::new(Queue::new(name))))
            .clone()
    }

    /// `queues.max_queues`.
    pub(crate) fn max_queues(&self) -> usize {
        self.config.max_queues
    }

    pub(crate) fn max_total_bytes(&self) -> usize {
        self.config.max_total_bytes
    }

    /// The `expires` of a message an internal queue of `kind` keeps now (its `max_age`), if
    /// any.
    pub(crate) fn expiry(&self, kind: Kind) -> Option<u64> {
        let config = match kind {
            Kind::Durable => &self.durable,
            Kind::Inbox => &self.inbox,
        };
        let ttl = config.message_ttl.as_millis() as u64;
        (ttl > 0).then(|| self.clock.now_ms().saturating_add(ttl))
    }

    /// Sets `expires` to now plus the TTL of queue `name` (its `queues.ttl` entry, else
    /// `queues.message_ttl`) on a message for it that has none (an explicit `expires`, `0`
    /// for never included, wins).
    pub(crate) fn apply_ttl(&self, name: &str, headers: &mut stompbox_codec::Headers) {
        let ttl = (self.config.ttl.iter())
            .find(|t| t.matches(name))
            .map_or(self.config.message_ttl, |t| t.ttl);
        let ttl = ttl.as_millis() as u64;
        if ttl > 0 && !headers.contains("expires") {
            let at = self.clock.now_ms().saturating_add(ttl);
            headers.set("expires", at.to_string());
        }
    }

    /// `queues.max_stored_messages`.
    pub(crate) fn max_stored_messages(&self) -> usize {
        self.config.max_stored_messages
    }

    /// A fresh node-unique delivery tag.
    pub(crate) fn next_tag(&self) -> u64 {
        self.tags.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
    }

    /// What an operation on queue `name` needs; `written` collects the store writes it makes
    /// (none when `None`, as while restoring).
    fn ctx<'a>(&'a self, name: &str, written: Option<&'a Cell<Written>>) -> Ctx<'a> {
        Ctx {
            config: match internal_queue::kind(name) {
                None => &self.config,
                Some(Kind::Durable) => &self.durable,
                Some(Kind::Inbox) => &self.inbox,
            },
            counters: &self.counters,
            tags: &self.tags,
            total_bytes: &self.total_bytes,
            now_ms: self.clock.now_ms(),
            writes: self
                .store
                .as_deref()
                .zip(written)
                .map(|(store, written)| Writes::new(store, written)),
        }
    }

    fn get(&self, name: &str) -> Option<Arc<Mutex<Queue>>> {
        let table = self.queues.read().unwrap_or_else(|e| e.into_inner());
        table.get(name).cloned()
    }

    fn get_or_create(&self, name: &str) -> Result<Arc<Mutex<Queue>>, QueueError> {
        if let Some(q) = self.get(name) {
            return Ok(q);
        }
        let mut table = self.queues.write().unwrap_or_else(|e| e.into_inner());
        if let Some(q) = table.get(name) {
            return Ok(q.clone());
        }
        let full = table.len() >= self.config.max_queues;
        self.sweep(&mut table, full);
        // The node's own queues are bounded by `durable.max_subscriptions` and by the bytes
        // users' inboxes hold (`max_total_bytes`) instead.
        if table.len() >= self.config.max_queues && internal_queue::kind(name).is_none() {
            return Err(QueueError::TooManyQueues);
        }
        let q = Arc::new(Mutex::new(Queue::new(name)));
        table.insert(name.into(), q.clone());
        Ok(q)
    }

    pub(crate) fn subscribe(&self, name: &str, consumer: Consumer) -> Result<(), QueueError> {
        let queue = self.get_or_create(name)?;
        let written = Cell::new(None);
        let mut q = lock(&queue);
        q.subscribe(consumer, &self.ctx(name, Some(&written)));
        self.finish(name, q, Vec::new(), &written);
        Ok(())
    }

    /// Whether queue `name` exists and has messages waiting.
    pub(crate) fn has_waiting(&self, name: &str) -> bool {
        self.get(name).is_some_and(|q| !lock(&q).is_empty())
    }

    /// Removes a consumer; its unacknowledged messages are redelivered to others.
    pub(crate) fn unsubscribe(&self, name: &str, session: u64, subscription: &str) {
        let Some(queue) = self.get(name) else { return };
        let written = Cell::new(None);
        let mut q = lock(&queue);
        let dead = q.unsubscribe(session, subscription, &self.ctx(name, Some(&written)));
        self.finish(name, q, dead, &written);
    }

    /// Adds a message at the back of `name` (created if needed), which dispatches it; a
    /// `persist`ent one is written to the store (the write returned).
    pub(crate) fn enqueue(
        &self,
        name: &str,
        message: Arc<Message>,
        persist: bool,
    ) -> Result<Written, QueueError> {
        let queue = self.get_or_create(name)?;
        let written = Cell::new(None);
        let mut q = lock(&queue);
        let result = q.enqueue(message, persist, &self.ctx(name, Some(&written)));
        if result.is_err() && internal_queue::kind(name).is_some() {
            // Nobody to refuse: the node's own queues drop what they cannot keep, counted.
            q.count_dropped();
        }
        self.finish(name, q, Vec::new(), &written);
        result.map_err(QueueError::Full)?;
        Ok(written.get())
    }

    /// ACK / NACK (or the `auto`-mode settlement when a delivery is written).
    pub(crate) fn settle(
        &self,
        name: &str,
        session: u64,
        subscription: &str,
        tags: &[u64],
        outcome: Outcome,
    ) -> Written {
        let queue = self.get(name)?;
        let written = Cell::new(None);
        let mut q = lock(&queue);
        let dead = q.settle(
            session,
            subscription,
            tags,
            outcome,
            &self.ctx(name, Some(&written)),
        );
        self.finish(name, q, dead, &written);
        written.get()
    }

    /// Dispatches again (a consumer's outbox has room after refusing a delivery).
    pub(crate) fn dispatch(&self, name: &str) {
        if let Some(queue) = self.get(name) {
            let written = Cell::new(None);
            let mut q = lock(&queue);
            q.dispatch(&self.ctx(name, Some(&written)));
            self.finish(name, q, Vec::new(), &written);
        }
    }

    /// After an operation on queue `name`: releases its lock, then moves its dead letters
    /// (`dead`, and what expired into dead letters) into their queue.
    fn finish(
        &self,
        name: &str,
        mut q: MutexGuard<'_, Queue>,
        mut dead: Vec<Dead>,
        written: &Cell<Written>,
    ) {
        dead.extend(q.take_dead());
        if dead.is_empty() {
            return;
        }
        let to = q.dead_letter_destination(&self.config);
        drop(q);
        self.dead_letter(name, to, dead, written);
    }

    /// Moves dead letters of queue `from` into their queue `to`. A dead-letter queue never
    /// refuses: at its bound it drops its oldest (counted there), since refusing would lose
    /// the newest instead. A stored message is stored in its new queue before it is removed
    /// from the old one, so a crash in between cannot lose it.
    fn dead_letter(
        &self,
        from: &str,
        to: Option<String>,
        dead: Vec<Dead>,
        written: &Cell<Written>,
    ) {
        let Some(to) = to.filter(|_| !dead.is_empty()) else {
            return;
        };
        let name = &to["/queue/".len()..];
        let config = QueueConfig {
            overflow: OverflowPolicy::DropOldest,
            ..self.config.clone()
        };
        let ctx = Ctx {
            config: &config,
            ..self.ctx(name, Some(written))
        };
        let queue = self.get_or_create(name);
        if queue.is_err() {
            tracing::warn!(queue = name, "too many queues: dead letters dropped");
        }
        let destination = ByteString::from(to.as_str());
        for Dead {
            message,
            stored,
            expired,
        } in dead
        {
            if let Ok(queue) = &queue {
                let letter = Arc::new(message.dead_letter(destination.clone(), expired));
                if lock(queue).enqueue(letter, stored.is_some(), &ctx).is_err() {
                    tracing::warn!(
                        queue = name,
                        "dead letter larger than the queue bound dropped"
                    );
                }
            }
            if let (Some(position), Some(writes)) = (stored, ctx.writes) {
                writes.remove(from, position);
            }
        }
    }

    /// Drops every message waiting in queue `name` (its stored ones removed from the store);
    /// returns how many, and the store write that a RECEIPT waits for. `None`: no such queue.
    pub(crate) fn clear(&self, name: &str) -> Option<(usize, Written)> {
        let queue = self.get(name)?;
        let written = Cell::new(None);
        let mut q = lock(&queue);
        let cleared = q.clear(&self.ctx(name, Some(&written)));
        drop(q);
        Some((cleared, written.get()))
    }

    /// Deletes queue `name` as an operator asks: drops what waits (its stored messages removed
    /// from the store) and forgets the queue; returns how many messages it dropped. Refused
    /// while a subscription consumes it, and while another operation holds it at this instant
    /// (under the table's write lock nobody can find it anew, so that check is final).
    pub(crate) fn delete(&self, name: &str) -> Result<usize, crate::DeleteQueueError> {
        use crate::DeleteQueueError;
        let mut table = self.queues.write().unwrap_or_else(|e| e.into_inner());
        let queue = table.get(name).ok_or(DeleteQueueError::NotFound)?;
        if Arc::strong_count(queue) > 1 {
            return Err(DeleteQueueError::Busy);
        }
        let written = Cell::new(None);
        let mut q = lock(queue);
        if q.has_consumers() {
            return Err(DeleteQueueError::HasConsumers);
        }
        let cleared = q.clear(&self.ctx(name, Some(&written)));
        drop(q);
        table.remove(name);
        Ok(cleared)
    }

    /// Moves every message waiting in queue `from` to the back of queue `to` (created if
    /// needed), in order, as `destination`: an operator's dead-letter redrive. The move
    /// ignores `to`'s bounds (it is bounded by `from`'s, and refusing half-way would split the
    /// batch); a stored message is stored in `to` before it is removed from `from`, so a crash
    /// in between cannot lose it. Returns how many moved. `None`: `from` does not exist.
    pub(crate) fn redrive(&self, from: &str, to: &str, destination: &ByteString) -> Option<usize> {
        let source = self.get(from)?;
        let written = Cell::new(None);
        let taken = lock(&source).take_waiting(&self.ctx(from, Some(&written)));
        let config = QueueConfig {
            max_messages: usize::MAX,
            max_bytes: usize::MAX,
            max_total_bytes: usize::MAX,
            max_stored_messages: usize::MAX,
            ..self.ctx(to, None).config.clone()
        };
        let ctx = Ctx {
            config: &config,
            ..self.ctx(to, Some(&written))
        };
        let target = match self.get_or_create(to) {
            Ok(target) => target,
            // Beyond max_queues: a queue that exists only while it is being redriven into.
            Err(_) => self.restored_queue(to),
        };
        let moved = taken.len();
        for (message, stored) in taken {
            let message = Arc::new(message.redriven(destination.clone()));
            let mut q = lock(&target);
            // Bounds lifted above: this cannot be refused.
            let _ = q.enqueue(message, stored.is_some(), &ctx);
            drop(q);
            if let (Some(position), Some(writes)) = (stored, ctx.writes) {
                writes.remove(from, position);
            }
        }
        Some(moved)
    }

    /// One queue's counters, if it exists.
    pub(crate) fn stats(&self, name: &str) -> Option<QueueStats> {
        let queue = self.get(name)?;
        let written = Cell::new(None);
        let mut q = lock(&queue);
        let stats = q.stats(&self.ctx(name, Some(&written)));
        self.finish(name, q, Vec::new(), &written);
        Some(stats)
    }

    /// Every queue's counters, by destination (`/queue/<name>`), sorted.
    pub(crate) fn all(&self) -> Vec<(String, QueueStats)> {
        let queues: Vec<(String, Arc<Mutex<Queue>>)> = {
            let mut table = self.queues.write().unwrap_or_else(|e| e.into_inner());
            self.sweep(&mut table, true);
            table
                .iter()
                .map(|(n, q)| (n.to_string(), q.clone()))
                .collect()
        };
        let written = Cell::new(None);
        let mut all: Vec<_> = queues
            .into_iter()
            .map(|(name, queue)| {
                let mut q = lock(&queue);
                let stats = q.stats(&self.ctx(&name, Some(&written)));
                self.finish(&name, q, Vec::new(), &written);
                let shown =
                    internal_queue::shown(&name).unwrap_or_else(|| format!("/queue/{name}"));
                (shown, stats)
            })
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Removes the queues idle for `idle_expiry` that nobody holds; when it is due, or
    /// `now` (the table is full, or every queue is being listed).
    fn sweep(&self, table: &mut HashMap<Box<str>, Arc<Mutex<Queue>>>, now: bool) {
        let expiry = self.config.idle_expiry.as_millis() as u64;
        if expiry == 0 {
            return;
        }
        let now_ms = self.clock.now_ms();
        let due = self
            .next_sweep_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        if !now && now_ms < due {
            return;
        }
        let period = (expiry / 4).max(1_000);
        (self.next_sweep_ms).store(now_ms + period, std::sync::atomic::Ordering::Relaxed);
        table.retain(|name, queue| {
            let expired = Arc::strong_count(queue) == 1 && lock(queue).idle_for(now_ms) >= expiry;
            if expired {
                tracing::debug!(queue = %name, "idle queue expired");
            }
            !expired
        });
    }

    /// The broker clock (milliseconds since the UNIX epoch).
    pub(crate) fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }
}
