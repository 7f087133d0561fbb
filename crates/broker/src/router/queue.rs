//! One `/queue/...` destination: the messages waiting (bounded), its consumers, and what each
//! consumer holds unacknowledged. No I/O and no locks of its own: `queue_table.rs` keeps each
//! [`Queue`] behind a mutex and calls in.
//!
//! ```text
//!   enqueue ──► ready (FIFO, bounded) ──dispatch──► consumer.in_flight ──ACK / auto──► gone
//!                  ▲    round-robin among consumers        │
//!                  │    with room under their prefetch      │ NACK, UNSUBSCRIBE,
//!                  └──────────── front, redelivered ◄──────┘ session end
//!                                      │ delivered max_deliveries times
//!                                      ▼
//!                                 dead letters (returned to the caller)
//! ```
//!
//! A delivery the consumer's outbox refuses goes back to the front of `ready` uncounted: the
//! queue never loses a message to a slow consumer. The outbox is marked starved so its session
//! asks for a new dispatch once it has drained.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use stompbox_codec::ByteString;

use super::deliver::Deliveries;
use crate::message::{Delivery, Message};
use crate::outbox::{Offer, Outbox, WhenFull};
use crate::stats::{Counters, QueueStats};
use crate::store::{Writes, decode_record};
use crate::{ExpiredPolicy, OverflowPolicy, QueueConfig};

/// Everything a queue operation needs from the node.
pub(crate) struct Ctx<'a> {
    pub(crate) config: &'a QueueConfig,
    pub(crate) counters: &'a Counters,
    /// Node-wide delivery tag counter.
    pub(crate) tags: &'a AtomicU64,
    /// Bytes waiting in all queues of the node.
    pub(crate) total_bytes: &'a AtomicUsize,
    /// The broker clock, in milliseconds since the UNIX epoch.
    pub(crate) now_ms: u64,
    /// The node's store, when it has one: where persistent messages are written.
    pub(crate) writes: Option<Writes<'a>>,
}

/// A message that leaves its queue for dead letters.
#[derive(Debug)]
pub(crate) struct Dead {
    pub(crate) message: Arc<Message>,
    /// Its position in the store, if it is stored: the caller removes it once the dead letter
    /// is stored in its own queue.
    pub(crate) stored: Option<u64>,
    /// It expired (rather than being refused or delivered too often).
    pub(crate) expired: bool,
}

/// A message waiting in, or in flight from, a queue.
#[derive(Debug)]
struct Queued {
    message: Arc<Message>,
    /// Times it was handed to a consumer.
    deliveries: u32,
    /// The consumer it last went to, so a NACKed message prefers another one.
    last: Option<(u64, ByteString)>,
    /// Its position in the store, when it is stored (`persistent:true` on a node with a
    /// store, or a transient message read back from a queue's tail on disk).
    stored: Option<u64>,
    /// Stored only because it was in the queue's tail on disk: discarded by a restart.
    transient: bool,
    /// Read back from a store that was not closed cleanly: it may have been delivered before
    /// the crash, so it goes out `redelivered`.
    maybe_delivered: bool,
}

impl Queued {
    fn new(message: Arc<Message>) -> Self {
        Queued {
            message,
            deliveries: 0,
            last: None,
            stored: None,
            transient: false,
            maybe_delivered: false,
        }
    }

    fn expired(&self, now_ms: u64) -> bool {
        self.message.expires().is_some_and(|at| at <= now_ms)
    }
}

/// One subscription consuming from the queue.
#[derive(Debug)]
pub(crate) struct Consumer {
    pub(crate) session: u64,
    pub(crate) subscription: ByteString,
    pub(crate) outbox: Arc<Outbox>,
    /// Most deliveries in flight (unacknowledged, or not yet written in `auto` mode).
    pub(crate) prefetch: usize,
    /// Delivery tag → message, in delivery order.
    in_flight: BTreeMap<u64, Queued>,
}

impl Consumer {
    pub(crate) fn new(
        session: u64,
        subscription: ByteString,
        outbox: Arc<Outbox>,
        prefetch: usize,
    ) -> Self {
        Consumer {
            session,
            subscription,
            outbox,
            prefetch,
            in_flight: BTreeMap::new(),
        }
    }

    fn is(&self, session: u64, subscription: &str) -> bool {
        self.session == session && self.subscription == subscription
    }

    fn has_room(&self) -> bool {
        self.in_flight.len() < self.prefetch
    }
}

/// How a consumer settles deliveries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Done with: the message leaves the queue.
    Ack,
    /// Refused: the message goes back to the front of the queue (or to dead letters).
    Nack,
    /// Refused for good (NACK with `requeue:false`): to dead letters at once.
    Reject,
}

/// The SEND does not fit and the policy is `reject` (or the message alone is too large): which
/// bound it met.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Full {
    /// This queue's `max_messages` or `max_bytes`.
    Queue,
    /// The node's `max_total_bytes`, over all its queues.
    Node,
    /// The queue's tail on disk is at `max_stored_messages`.
    Stored,
}

/// One queue.
#[derive(Debug)]
pub(crate) struct Queue {
    /// The queue's name (after `/queue/`).
    name: Box<str>,
    ready: VecDeque<Queued>,
    /// Bytes of the messages in `ready`.
    bytes: usize,
    consumers: Vec<Consumer>,
    /// Round-robin position: the consumer to try first.
    cursor: usize,
    stats: QueueStats,
    /// Since when (broker clock, ms) the queue has had no message and no consumer, as of its
    /// last operation; `None` while it has either.
    idle_since: Option<u64>,
    /// The queue's tail kept in the store only.
    paged: Paged,
    /// The next message's position in the store.
    next_position: u64,
    /// Records read back with a position up to this one were stored before a crash.
    unclean_upto: u64,
    /// Expired messages bound for the dead-letter queue, collected by `take_dead`.
    expired_dead: Vec<Dead>,
}

/// The tail of a queue longer than its memory bounds, kept in the store only: the messages
/// after position `after`, in order. Every message joins it while it is not empty.
#[derive(Debug, Default)]
struct Paged {
    count: usize,
    /// Their sizes, as they would weigh in memory.
    bytes: usize,
    /// The position before the first of them.
    after: u64,
    /// The store write of the newest, which a read-back waits for.
    written: u64,
}

/// Most records read back from a queue's tail on disk at once.
const PAGE: usize = 1024;

impl Queue {
    pub(crate) fn new(name: &str) -> Self {
        Queue {
            name: name.into(),
            ready: VecDeque::new(),
            bytes: 0,
            consumers: Vec::new(),
            cursor: 0,
            stats: QueueStats::default(),
            idle_since: None,
            paged: Paged::default(),
            next_position: 1,
            unclean_upto: 0,
            expired_dead: Vec::new(),
        }
    }

    /// How long (ms) the queue has had no message and no consumer, as of `now_ms`; 0 when it
    /// has either. Brought up to date by every operation that dispatches.
    pub(crate) fn idle_for(&self, now_ms: u64) -> u64 {
        self.idle_since
            .map_or(0, |since| now_ms.saturating_sub(since))
    }

    fn note_idle(&mut self, now_ms: u64) {
        let idle = self.ready.is_empty() && self.paged.count == 0 && self.consumers.is_empty();
        self.idle_since = if idle {
            self.idle_since.or(Some(now_ms))
        } else {
            None
        };
    }

    /// True if this queue's own dead letters would be dropped or loop back into a dead-letter
    /// queue: it is one (its name starts with the prefix), or the prefix is empty.
    fn dead_letters_to(&self, config: &QueueConfig) -> Option<String> {
        let prefix = &config.dead_letter_prefix;
        (!prefix.is_empty() && !self.name.starts_with(prefix.as_str()))
            .then(|| format!("/queue/{prefix}{}", self.name))
    }

    /// Whether a message of `size` bytes may join. An empty queue takes one message of any
    /// size (up to `max_body_size`), but never past the node's `max_total_bytes`: otherwise
    /// `max_queues` queues of one large message each would hold far more.
    fn fits(&self, size: usize, ctx: &Ctx<'_>) -> Result<(), Full> {
        let c = ctx.config;
        if ctx.total_bytes.load(Relaxed) + size > c.max_total_bytes {
            return Err(Full::Node);
        }
        if !self.ready.is_empty()
            && (self.ready.len() >= c.max_messages || self.bytes + size > c.max_bytes)
        {
            return Err(Full::Queue);
        }
        Ok(())
    }

    fn push_ready(&mut self, queued: Queued, front: bool, ctx: &Ctx<'_>) {
        let size = queued.message.size();
        self.bytes += size;
        ctx.total_bytes.fetch_add(size, Relaxed);
        if front {
            self.ready.push_front(queued);
        } else {
            self.ready.push_back(queued);
        }
    }

    /// Removes a message that left the queue for good from the store.
    fn forget(&self, queued: &Queued, ctx: &Ctx<'_>) {
        if let (Some(position), Some(writes)) = (queued.stored, ctx.writes) {
            writes.remove(&self.name, position);
        }
    }

    fn take_position(&mut self) -> u64 {
        let position = self.next_position;
        self.next_position += 1;
        position
    }

    fn pop_ready(&mut self, ctx: &Ctx<'_>) -> Option<Queued> {
        let queued = self.ready.pop_front()?;
        let size = queued.message.size();
        self.bytes -= size;
        ctx.total_bytes.fetch_sub(size, Relaxed);
        Some(queued)
    }

    /// Drops every waiting message whose `expires` has passed; counted.
    pub(crate) fn purge_expired(&mut self, ctx: &Ctx<'_>) {
        if !self.ready.iter().any(|q| q.expired(ctx.now_ms)) {
            return;
        }
        let (expired, kept): (VecDeque<Queued>, VecDeque<Queued>) = std::mem::take(&mut self.ready)
            .into_iter()
            .partition(|q| q.expired(ctx.now_ms));
        self.ready = kept;
        let freed: usize = expired.iter().map(|q| q.message.size()).sum();
        self.bytes -= freed;
        ctx.total_bytes.fetch_sub(freed, Relaxed);
        for q in expired {
            self.expire(q, ctx);
        }
    }

    /// A message whose `expires` passed while it waited: dropped, or bound for dead letters
    /// (`queues.expired`); counted either way.
    fn expire(&mut self, q: Queued, ctx: &Ctx<'_>) {
        self.stats.expired += 1;
        if ctx.config.expired == ExpiredPolicy::DeadLetter
            && self.dead_letters_to(ctx.config).is_some()
        {
            self.expired_dead.push(Dead {
                message: q.message,
                stored: q.stored,
                expired: true,
            });
        } else {
            self.forget(&q, ctx);
        }
    }

    /// The expired messages bound for dead letters since the last call.
    pub(crate) fn take_dead(&mut self) -> Vec<Dead> {
        std::mem::take(&mut self.expired_dead)
    }

    /// Queues a SENT message at the back, applying the bound and the overflow policy, then
    /// dispatches. A `persist`ent message is written to the node's store, if it has one.
    pub(crate) fn enqueue(
        &mut self,
        message: Arc<Message>,
        persist: bool,
        ctx: &Ctx<'_>,
    ) -> Result<(), Full> {
        let size = message.size();
        if self.paged.count > 0 {
            // The tail is on disk: the message joins it there, after the others.
            return self.page_out(message, persist, ctx);
        }
        if self.fits(size, ctx).is_err() {
            self.purge_expired(ctx);
        }
        while let Err(full) = self.fits(size, ctx) {
            if persist && ctx.writes.is_some() {
                // Memory is full but the store is not: the queue's tail goes to disk.
                return self.page_out(message, persist, ctx);
            }
            match ctx.config.overflow {
                OverflowPolicy::Reject => return Err(full),
                OverflowPolicy::DropOldest => {
                    let dropped = self.pop_ready(ctx).ok_or(full)?;
                    self.forget(&dropped, ctx);
                    self.stats.dropped += 1;
                }
            }
        }
        let mut queued = Queued::new(message);
        if let (true, Some(writes)) = (persist, ctx.writes) {
            let position = self.take_position();
            writes.put(&self.name, position, &queued.message, 0, false);
            queued.stored = Some(position);
        }
        self.push_ready(queued, false, ctx);
        self.stats.enqueued += 1;
        self.dispatch(ctx);
        Ok(())
    }

    /// A message that joins the queue's tail on disk (a transient one as a record a restart
    /// discards), up to `queues.max_stored_messages`.
    fn page_out(
        &mut self,
        message: Arc<Message>,
        persist: bool,
        ctx: &Ctx<'_>,
    ) -> Result<(), Full> {
        let Some(writes) = ctx.writes else {
            return Err(Full::Queue);
        };
        if self.paged.count >= ctx.config.max_stored_messages {
            return Err(Full::Stored);
        }
        let position = self.take_position();
        let written = writes.put(&self.name, position, &message, 0, !persist);
        if self.paged.count == 0 {
            self.paged.after = position - 1;
        }
        self.paged.count += 1;
        self.paged.bytes += message.size();
        self.paged.written = written;
        self.stats.enqueued += 1;
        self.dispatch(ctx);
        Ok(())
    }

    /// A queue found in the store at start-up: `count` messages of `bytes` at positions
    /// `first..=last`, all on disk, read back as consumers drain the queue. `unclean`: the
    /// store was not closed cleanly, so they go out `redelivered`.
    pub(crate) fn restore(
        &mut self,
        count: usize,
        bytes: usize,
        first: u64,
        last: u64,
        unclean: bool,
    ) {
        self.paged = Paged {
            count,
            bytes,
            after: first - 1,
            written: 0,
        };
        self.next_position = last + 1;
        if unclean {
            self.unclean_upto = last;
        }
        self.stats.enqueued += count as u64;
    }

    /// Reads the next page of the tail on disk into memory when the part in memory has run
    /// below half its bounds, as much as the bounds allow.
    fn page_in(&mut self, ctx: &Ctx<'_>) {
        if self.paged.count == 0 {
            return;
        }
        let Some(writes) = ctx.writes else { return };
        let c = ctx.config;
        if self.ready.len() >= c.max_messages / 2 || self.bytes >= c.max_bytes / 2 {
            return;
        }
        let room_bytes = (c.max_bytes - self.bytes).min(
            c.max_total_bytes
                .saturating_sub(ctx.total_bytes.load(Relaxed)),
        );
        let average = (self.paged.bytes / self.paged.count).max(1);
        let limit = (c.max_messages - self.ready.len())
            .min(room_bytes / average)
            .min(PAGE)
            .clamp(1, self.paged.count);
        let store = writes.store();
        // The newest tail write may still be on its way to the disk (a tail that began a few
        // milliseconds ago): a read must see every one, so wait for it (one group commit).
        let synced = store.synced(self.paged.written);
        if futures::executor::block_on(synced).is_err() {
            return;
        }
        let records = match store.read(&self.name, self.paged.after, limit) {
            Ok(records) => records,
            Err(e) => {
                tracing::error!(queue = %self.name, error = %e, "cannot read the queue's messages back from the store");
                return;
            }
        };
        if records.is_empty() {
            tracing::error!(queue = %self.name, missing = self.paged.count, "the store lacks messages of the queue's tail; counted as lost");
            self.paged = Paged::default();
            return;
        }
        for record in records {
            self.paged.after = record.position;
            let Some(decoded) = decode_record(&record.record) else {
                tracing::warn!(queue = %self.name, position = record.position, "unreadable record in the store; skipped");
                writes.remove(&self.name, record.position);
                self.paged.count -= 1;
                continue;
            };
            let message = Arc::new(decoded.message);
            self.paged.count -= 1;
            self.paged.bytes = self.paged.bytes.saturating_sub(message.size());
            let queued = Queued {
                deliveries: decoded.deliveries,
                stored: Some(record.position),
                transient: decoded.transient,
                maybe_delivered: record.position <= self.unclean_upto,
                ..Queued::new(message)
            };
            self.push_ready(queued, false, ctx);
            if self.paged.count == 0 {
                break;
            }
        }
        if self.paged.count == 0 {
            self.paged = Paged::default();
        }
    }

    /// Takes every waiting message out, oldest first, reading back the tail on disk: each with
    /// its position in the store, if stored (the caller removes it there once it is stored
    /// elsewhere). What is in flight stays with its consumers.
    pub(crate) fn take_waiting(&mut self, ctx: &Ctx<'_>) -> Vec<(Arc<Message>, Option<u64>)> {
        let mut taken = Vec::new();
        loop {
            while let Some(q) = self.pop_ready(ctx) {
                taken.push((q.message, q.stored));
            }
            if self.paged.count == 0 {
                break;
            }
            self.page_in(ctx);
            if self.ready.is_empty() {
                // The store could not be read (logged by page_in): leave the rest there.
                break;
            }
        }
        self.note_idle(ctx.now_ms);
        taken
    }

    /// Whether no message waits (in memory or on disk).
    pub(crate) fn is_empty(&self) -> bool {
        self.ready.is_empty() && self.paged.count == 0
    }

    /// Counts a message dropped without joining (a durable subscription's, which refuses
    /// nobody).
    pub(crate) fn count_dropped(&mut self) {
        self.stats.dropped += 1;
    }

    /// Drops every waiting message, in memory and on disk (their records removed); returns
    /// how many. What is in flight stays with its consumers.
    pub(crate) fn clear(&mut self, ctx: &Ctx<'_>) -> usize {
        let mut cleared = self.paged.count;
        while let Some(q) = self.pop_ready(ctx) {
            self.forget(&q, ctx);
            cleared += 1;
        }
        if let (true, Some(writes)) = (self.paged.count > 0, ctx.writes) {
            for position in self.paged.after + 1..self.next_position {
                writes.remove(&self.name, position);
            }
        }
        self.paged = Paged::default();
        self.note_idle(ctx.now_ms);
        cleared
    }

    /// Whether any subscription consumes it.
    pub(crate) fn has_consumers(&self) -> bool {
        !self.consumers.is_empty()
    }

    /// Adds a consumer and dispatches to it.
    pub(crate) fn subscribe(&mut self, consumer: Consumer, ctx: &Ctx<'_>) {
        self.consumers.push(consumer);
        self.dispatch(ctx);
    }

    /// Removes a consumer; its unacknowledged messages go back to the front of the queue (or to
    /// dead letters, returned), then the queue dispatches to the others.
    pub(crate) fn unsubscribe(
        &mut self,
        session: u64,
        subscription: &str,
        ctx: &Ctx<'_>,
    ) -> Vec<Dead> {
        let Some(i) = self
            .consumers
            .iter()
            .position(|c| c.is(session, subscription))
        else {
            return Vec::new();
        };
        let consumer = self.consumers.remove(i);
        if self.cursor > i {
            self.cursor -= 1;
        }
        let dead = self.requeue(consumer.in_flight.into_values().collect(), ctx);
        self.dispatch(ctx);
        dead
    }

    /// ACK or NACK of deliveries of one consumer (tags no longer in flight are ignored);
    /// returns the dead letters.
    pub(crate) fn settle(
        &mut self,
        session: u64,
        subscription: &str,
        tags: &[u64],
        outcome: Outcome,
        ctx: &Ctx<'_>,
    ) -> Vec<Dead> {
        let Some(consumer) = self
            .consumers
            .iter_mut()
            .find(|c| c.is(session, subscription))
        else {
            return Vec::new();
        };
        let settled: Vec<Queued> = tags
            .iter()
            .filter_map(|tag| consumer.in_flight.remove(tag))
            .collect();
        let dead = match outcome {
            Outcome::Ack => {
                self.stats.acked += settled.len() as u64;
                for q in &settled {
                    self.forget(q, ctx);
                }
                Vec::new()
            }
            Outcome::Nack => self.requeue(settled, ctx),
            Outcome::Reject => {
                self.stats.dead_lettered += settled.len() as u64;
                (settled.into_iter())
                    .filter_map(|q| self.to_dead_letters(q, ctx))
                    .collect()
            }
        };
        self.dispatch(ctx);
        dead
    }

    /// Puts messages back at the front in their original order, except those delivered
    /// `max_deliveries` times, which are returned as dead letters. A stored message's new
    /// delivery count is stored, so that the limit holds across a restart.
    fn requeue(&mut self, messages: Vec<Queued>, ctx: &Ctx<'_>) -> Vec<Dead> {
        let max = ctx.config.max_deliveries;
        let mut dead = Vec::new();
        for q in messages.into_iter().rev() {
            if max > 0 && q.deliveries >= max {
                self.stats.dead_lettered += 1;
                dead.extend(self.to_dead_letters(q, ctx));
                continue;
            }
            if let (Some(position), Some(writes)) = (q.stored, ctx.writes) {
                writes.put(&self.name, position, &q.message, q.deliveries, q.transient);
            }
            self.push_ready(q, true, ctx);
        }
        dead.reverse();
        dead
    }

    /// A message leaving for dead letters: returned when this queue has a dead-letter queue,
    /// else dropped (and removed from the store).
    fn to_dead_letters(&self, q: Queued, ctx: &Ctx<'_>) -> Option<Dead> {
        if self.dead_letters_to(ctx.config).is_none() {
            self.forget(&q, ctx);
            return None;
        }
        Some(Dead {
            message: q.message,
            stored: q.stored,
            expired: false,
        })
    }

    /// Where dead letters go, if anywhere.
    pub(crate) fn dead_letter_destination(&self, config: &QueueConfig) -> Option<String> {
        self.dead_letters_to(config)
    }

    /// The next consumer with room, round-robin from the cursor, preferring one that is not
    /// `avoid` (where a NACKed message came from) and skipping those refused this round.
    fn pick(&self, avoid: Option<&(u64, ByteString)>, refused: &[bool]) -> Option<usize> {
        let n = self.consumers.len();
        let candidates = (0..n).map(|k| (self.cursor + k) % n);
        let usable =
            |i: &usize| !refused.get(*i).copied().unwrap_or(false) && self.consumers[*i].has_room();
        let is_avoided = |i: &usize| avoid.is_some_and(|(s, id)| self.consumers[*i].is(*s, id));
        candidates
            .clone()
            .filter(usable)
            .find(|i| !is_avoided(i))
            .or_else(|| candidates.clone().find(usable))
    }

    /// Hands waiting messages to consumers with room until either runs out. Never waits.
    pub(crate) fn dispatch(&mut self, ctx: &Ctx<'_>) {
        self.page_in(ctx);
        let mut out = Deliveries::new(ctx.counters);
        // Consumers whose outbox refused a delivery this round; allocated on the first refusal.
        let mut refused: Vec<bool> = Vec::new();
        loop {
            while self.ready.front().is_some_and(|q| q.expired(ctx.now_ms)) {
                let expired = self.pop_ready(ctx).expect("front exists");
                self.expire(expired, ctx);
            }
            if self.ready.is_empty() {
                self.page_in(ctx);
            }
            let Some(front) = self.ready.front() else {
                break;
            };
            let Some(i) = self.pick(front.last.as_ref(), &refused) else {
                break;
            };
            let mut queued = self.pop_ready(ctx).expect("front exists");
            let consumer = &mut self.consumers[i];
            let tag = ctx.tags.fetch_add(1, Relaxed) + 1;
            let mut delivery = Delivery::new(queued.message.clone(), consumer.subscription.clone());
            delivery.tag = Some(tag);
            delivery.redelivered = queued.deliveries > 0 || queued.maybe_delivered;
            delivery.delivery_count = Some(queued.deliveries);
            match out.offer(&consumer.outbox, delivery, WhenFull::Refuse) {
                Offer::Queued => {
                    if queued.deliveries > 0 {
                        self.stats.redelivered += 1;
                    }
                    queued.deliveries += 1;
                    queued.last = Some((consumer.session, consumer.subscription.clone()));
                    consumer.in_flight.insert(tag, queued);
                    self.stats.delivered += 1;
                    self.cursor = (i + 1) % self.consumers.len();
                }
                Offer::Refused => {
                    // The outbox is full (and marked starved) or its session is closing.
                    if refused.is_empty() {
                        refused = vec![false; self.consumers.len()];
                    }
                    refused[i] = true;
                    self.push_ready(queued, true, ctx);
                }
            }
        }
        let _ = out.finish();
        self.note_idle(ctx.now_ms);
    }

    /// Counters and gauges, with expired messages purged first.
    pub(crate) fn stats(&mut self, ctx: &Ctx<'_>) -> QueueStats {
        self.purge_expired(ctx);
        QueueStats {
            depth: self.ready.len() + self.paged.count,
            bytes: self.bytes,
            on_disk: self.paged.count,
            in_flight: self.consumers.iter().map(|c| c.in_flight.len()).sum(),
            consumers: self.consumers.len(),
            ..self.stats.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use stompbox_codec::Headers;

    use super::*;
    use crate::{OutboxConfig, SlowConsumerPolicy};

    struct Node {
        config: QueueConfig,
        counters: Counters,
        tags: AtomicU64,
        total: AtomicUsize,
        now_ms: u64,
    }

    impl Node {
        fn new(config: QueueConfig) -> Self {
            Node {
                config,
                counters: Counters::default(),
                tags: AtomicU64::new(0),
                total: AtomicUsize::new(0),
                now_ms: 1_000,
            }
        }

        fn ctx(&self) -> Ctx<'_> {
            Ctx {
                config: &self.config,
                counters: &self.counters,
                tags: &self.tags,
                total_bytes: &self.total,
                now_ms: self.now_ms,
                writes: None,
            }
        }
    }

    fn message(id: u64, expires: Option<u64>) -> Arc<Message> {
        let mut headers = Headers::new();
        if let Some(at) = expires {
            headers.push("expires", at.to_string());
        }
        Arc::new(Message::new(
            id,
            "/queue/q".into(),
            headers,
            Bytes::from(format!("m{id}")),
        ))
    }

    fn outbox(max_frames: usize) -> Arc<Outbox> {
        let config = OutboxConfig {
            max_frames,
            slow_consumer: SlowConsumerPolicy::DropNewest,
            ..OutboxConfig::default()
        };
        Arc::new(Outbox::new(&config, Arc::default()))
    }

    /// Takes everything from an outbox: (message id, tag, redelivered).
    fn taken(outbox: &Outbox) -> Vec<(u64, u64, bool)> {
        let mut out = Vec::new();
        outbox.take_up_to(usize::MAX, |d, _| {
            out.push((d.message.id(), d.tag.unwrap(), d.redelivered))
        });
        out
    }

    fn ids(v: &[(u64, u64, bool)]) -> Vec<u64> {
        v.iter().map(|d| d.0).collect()
    }

    #[test]
    fn waits_without_consumers_then_drains_in_order_up_to_prefetch() {
        let node = Node::new(QueueConfig::default());
        let mut q = Queue::new("q");
        for id in 1..=5 {
            q.enqueue(message(id, None), false, &node.ctx()).unwrap();
        }
        assert_eq!(q.stats(&node.ctx()).depth, 5);
        let a = outbox(100);
        q.subscribe(Consumer::new(1, "a".into(), a.clone(), 3), &node.ctx());
        let got = taken(&a);
        assert_eq!(ids(&got), [1, 2, 3]);
        let stats = q.stats(&node.ctx());
        assert_eq!((stats.depth, stats.in_flight), (2, 3));
        q.settle(1, "a", &[got[0].1, got[1].1], Outcome::Ack, &node.ctx());
        assert_eq!(ids(&taken(&a)), [4, 5]);
        assert_eq!(q.stats(&node.ctx()).acked, 2);
    }

    #[test]
    fn round_robin_among_consumers_with_room() {
        let node = Node::new(QueueConfig::default());
        let mut q = Queue::new("q");
        let (a, b) = (outbox(100), outbox(100));
        q.subscribe(Consumer::new(1, "a".into(), a.clone(), 10), &node.ctx());
        q.subscribe(Consumer::new(2, "b".into(), b.clone(), 1), &node.ctx());
        for id in 1..=4 {
            q.enqueue(message(id, None), false, &node.ctx()).unwrap();
        }
        // b has prefetch 1: it gets one, a gets the rest.
        assert_eq!(ids(&taken(&a)), [1, 3, 4]);
        assert_eq!(ids(&taken(&b)), [2]);
    }

    #[test]
    fn nack_prefers_another_consumer_and_marks_redelivered() {
        let node = Node::new(QueueConfig::default());
        let mut q = Queue::new("q");
        let (a, b) = (outbox(100), outbox(100));
        q.subscribe(Consumer::new(1, "a".into(), a.clone(), 10), &node.ctx());
        q.enqueue(message(1, None), false, &node.ctx()).unwrap();
        q.subscribe(Consumer::new(2, "b".into(), b.clone(), 10), &node.ctx());
        let got = taken(&a);
        q.settle(1, "a", &[got[0].1], Outcome::Nack, &node.ctx());
        let again = taken(&b);
        assert_eq!(again.len(), 1);
        assert_eq!((again[0].0, again[0].2), (1, true));
        assert!(again[0].1 > got[0].1, "a new tag per delivery");
        assert_eq!(q.stats(&node.ctx()).redelivered, 1);
        // A lone consumer gets its NACKed message back.
        q.unsubscribe(1, "a", &node.ctx());
        q.settle(2, "b", &[again[0].1], Outcome::Nack, &node.ctx());
        assert_eq!(ids(&taken(&b)), [1]);
    }

    #[test]
    fn unsubscribe_requeues_in_order_at_the_front() {
        let node = Node::new(QueueConfig::default());
        let mut q = Queue::new("q");
        let a = outbox(100);
        q.subscribe(Consumer::new(1, "a".into(), a.clone(), 2), &node.ctx());
        for id in 1..=4 {
            q.enqueue(message(id, None), false, &node.ctx()).unwrap();
        }
        assert_eq!(ids(&taken(&a)), [1, 2]);
        assert!(q.unsubscribe(1, "a", &node.ctx()).is_empty());
        let b = outbox(100);
        q.subscribe(Consumer::new(2, "b".into(), b.clone(), 10), &node.ctx());
        let got = taken(&b);
        assert_eq!(ids(&got), [1, 2, 3, 4]);
        let redelivered: Vec<bool> = got.iter().map(|d| d.2).collect();
        assert_eq!(redelivered, [true, true, false, false]);
    }

    #[test]
    fn dead_letters_after_max_deliveries_but_not_from_a_dead_letter_queue() {
        let node = Node::new(QueueConfig {
            max_deliveries: 2,
            ..QueueConfig::default()
        });
        for (name, expect_dead) in [("jobs", 1), ("dlq.jobs", 0)] {
            let mut q = Queue::new(name);
            let a = outbox(100);
            q.subscribe(Consumer::new(1, "a".into(), a.clone(), 10), &node.ctx());
            q.enqueue(message(1, None), false, &node.ctx()).unwrap();
            let first = taken(&a)[0].1;
            assert!(
                q.settle(1, "a", &[first], Outcome::Nack, &node.ctx())
                    .is_empty()
            );
            let second = taken(&a)[0].1;
            let dead = q.settle(1, "a", &[second], Outcome::Nack, &node.ctx());
            assert_eq!(dead.len(), expect_dead, "{name}");
            assert_eq!(q.stats(&node.ctx()).dead_lettered, 1, "{name}");
            assert!(taken(&a).is_empty());
            assert_eq!(
                q.dead_letter_destination(&node.config).is_some(),
                expect_dead == 1
            );
        }
    }

    #[test]
    fn a_rejected_delivery_is_dead_lettered_at_once() {
        let node = Node::new(QueueConfig::default());
        let mut q = Queue::new("jobs");
        let a = outbox(100);
        q.subscribe(Consumer::new(1, "a".into(), a.clone(), 10), &node.ctx());
        q.enqueue(message(1, None), false, &node.ctx()).unwrap();
        let first = taken(&a)[0].1;
        let dead = q.settle(1, "a", &[first], Outcome::Reject, &node.ctx());
        assert_eq!(dead.iter().map(|d| d.message.id()).collect::<Vec<_>>(), [1]);
        assert!(taken(&a).is_empty(), "not redelivered");
        let stats = q.stats(&node.ctx());
        assert_eq!(
            (stats.dead_lettered, stats.depth, stats.in_flight),
            (1, 0, 0)
        );
    }

    #[test]
    fn the_node_wide_bound_holds_even_for_empty_queues() {
        let size = message(1, None).size();
        let node = Node::new(QueueConfig {
            max_total_bytes: size,
            ..QueueConfig::default()
        });
        let (mut a, mut b) = (Queue::new("a"), Queue::new("b"));
        a.enqueue(message(1, None), false, &node.ctx()).unwrap();
        // `b` is empty, yet the node's queues are full.
        assert_eq!(
            b.enqueue(message(2, None), false, &node.ctx()),
            Err(Full::Node)
        );
        assert_eq!(
            a.enqueue(message(3, None), false, &node.ctx()),
            Err(Full::Node)
        );
    }

    #[test]
    fn bounds_with_reject_and_drop_oldest() {
        let mut node = Node::new(QueueConfig {
            max_messages: 2,
            ..QueueConfig::default()
        });
        let mut q = Queue::new("q");
        q.enqueue(message(1, None), false, &node.ctx()).unwrap();
        q.enqueue(message(2, None), false, &node.ctx()).unwrap();
        assert_eq!(
            q.enqueue(message(3, None), false, &node.ctx()),
            Err(Full::Queue)
        );
        node.config.overflow = OverflowPolicy::DropOldest;
        q.enqueue(message(3, None), false, &node.ctx()).unwrap();
        let a = outbox(100);
        q.subscribe(Consumer::new(1, "a".into(), a.clone(), 10), &node.ctx());
        assert_eq!(ids(&taken(&a)), [2, 3]);
        assert_eq!(q.stats(&node.ctx()).dropped, 1);
        assert_eq!(node.total.load(Relaxed), 0, "node-wide bytes released");
    }

    #[test]
    fn expired_messages_are_dropped_and_counted() {
        let mut node = Node::new(QueueConfig::default());
        let mut q = Queue::new("q");
        q.enqueue(message(1, Some(1_500)), false, &node.ctx())
            .unwrap();
        q.enqueue(message(2, None), false, &node.ctx()).unwrap();
        q.enqueue(message(3, Some(5_000)), false, &node.ctx())
            .unwrap();
        node.now_ms = 2_000;
        let a = outbox(100);
        q.subscribe(Consumer::new(1, "a".into(), a.clone(), 10), &node.ctx());
        assert_eq!(ids(&taken(&a)), [2, 3]);
        assert_eq!(q.stats(&node.ctx()).expired, 1);
    }

    #[test]
    fn a_full_outbox_never_loses_a_message() {
        let node = Node::new(QueueConfig::default());
        let mut q = Queue::new("q");
        let small = outbox(1);
        q.subscribe(Consumer::new(1, "a".into(), small.clone(), 10), &node.ctx());
        for id in 1..=3 {
            q.enqueue(message(id, None), false, &node.ctx()).unwrap();
        }
        // The outbox took one and refused the next: it stays queued, the outbox is starved.
        assert!(small.take_starved());
        let stats = q.stats(&node.ctx());
        assert_eq!((stats.depth, stats.in_flight, stats.delivered), (2, 1, 1));
        assert_eq!(ids(&taken(&small)), [1]);
        q.dispatch(&node.ctx());
        assert_eq!(ids(&taken(&small)), [2]);
        q.dispatch(&node.ctx());
        assert_eq!(ids(&taken(&small)), [3]);
    }
}
