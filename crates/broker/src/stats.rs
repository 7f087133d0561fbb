//! Node-wide counters: atomics updated on the data path, read as a [`Stats`] snapshot.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use crate::{CloseReason, TransportKind};

/// Counters for the whole node, cheap to read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Sessions currently being served.
    pub connections: usize,
    /// SEND frames accepted.
    pub messages_received: u64,
    /// MESSAGE frames queued to subscribers.
    pub messages_delivered: u64,
    /// Times a subscriber could not keep up: sessions closed under the `disconnect` policy (or
    /// by `write_timeout`), plus episodes of dropping under `drop-newest` (an episode ends when
    /// that outbox drains).
    pub slow_consumers: u64,
    /// Deliveries dropped under the `drop-newest` policy.
    pub dropped_deliveries: u64,
    /// Encoded bytes currently waiting in all session outboxes (a gauge). Bounded by
    /// `outbox.max_bytes` per session whatever subscribers do.
    pub queued_bytes: usize,
    /// Deliveries currently waiting in all session outboxes (a gauge).
    pub queued_frames: usize,
    /// Connections refused at `max_connections` or during shutdown.
    pub refused_connections: u64,
    /// CONNECTs the authenticator refused.
    pub failed_logins: u64,
    /// CONNECTs refused without asking the authenticator: their address had failed too often
    /// (`login.max_failures`).
    pub throttled_logins: u64,
    /// Sessions being served, by transport ([`TransportKind::label`], in the order of
    /// [`TransportKind::ALL`]) (gauges). Unlike `connections`, a session refused at admission
    /// is not one.
    pub sessions: Vec<(&'static str, usize)>,
    /// Sessions ended, by why ([`CloseReason::label`], in the order of
    /// [`CloseReason::LABELS`]), refused ones included.
    pub closed: Vec<(&'static str, u64)>,
}

/// One queue, as returned by `Broker::queue_stats` and `Broker::queues`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueStats {
    /// Messages waiting for a consumer, in memory and on disk (a gauge).
    pub depth: usize,
    /// Bytes of the waiting messages held in memory (a gauge).
    pub bytes: usize,
    /// Of `depth`, the messages kept in the store only: the tail of a queue longer than its
    /// memory bounds (a gauge; `docs/persistence.md`).
    pub on_disk: usize,
    /// Messages delivered and not yet acknowledged (in `auto` mode: not yet written) (a gauge).
    pub in_flight: usize,
    /// Current subscriptions (a gauge).
    pub consumers: usize,
    /// Messages accepted from SEND (and dead letters moved in).
    pub enqueued: u64,
    /// Deliveries to consumers, first deliveries and redeliveries.
    pub delivered: u64,
    /// Deliveries of a message that had been delivered before (NACK, UNSUBSCRIBE, session end).
    pub redelivered: u64,
    /// Messages acknowledged (client modes) or written (`auto` mode).
    pub acked: u64,
    /// Messages that reached `queues.max_deliveries` and left for the dead-letter queue.
    pub dead_lettered: u64,
    /// Messages dropped because their `expires` time passed before delivery.
    pub expired: u64,
    /// Messages dropped at the bound under the `drop-oldest` policy.
    pub dropped: u64,
}

/// The live counters behind [`Stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) connections: AtomicUsize,
    pub(crate) messages_received: AtomicU64,
    pub(crate) messages_delivered: AtomicU64,
    pub(crate) slow_consumers: AtomicU64,
    pub(crate) dropped_deliveries: AtomicU64,
    pub(crate) queued_bytes: AtomicUsize,
    pub(crate) queued_frames: AtomicUsize,
    pub(crate) refused_connections: AtomicU64,
    pub(crate) failed_logins: AtomicU64,
    pub(crate) throttled_logins: AtomicU64,
    /// By [`TransportKind::index`].
    pub(crate) sessions: [AtomicUsize; TransportKind::ALL.len()],
    /// By [`CloseReason::index`].
    pub(crate) closed: [AtomicU64; CloseReason::LABELS.len()],
}

impl Counters {
    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            connections: self.connections.load(Relaxed),
            messages_received: self.messages_received.load(Relaxed),
            messages_delivered: self.messages_delivered.load(Relaxed),
            slow_consumers: self.slow_consumers.load(Relaxed),
            dropped_deliveries: self.dropped_deliveries.load(Relaxed),
            queued_bytes: gauge(&self.queued_bytes),
            queued_frames: gauge(&self.queued_frames),
            refused_connections: self.refused_connections.load(Relaxed),
            failed_logins: self.failed_logins.load(Relaxed),
            throttled_logins: self.throttled_logins.load(Relaxed),
            sessions: (TransportKind::ALL.iter())
                .map(|kind| (kind.label(), self.sessions[kind.index()].load(Relaxed)))
                .collect(),
            closed: (CloseReason::LABELS.iter().zip(&self.closed))
                .map(|(label, count)| (*label, count.load(Relaxed)))
                .collect(),
        }
    }
}

/// A gauge that may be briefly below zero (wrapped): a fan-out adds its deliveries once at its
/// end (`outbox::Tally`), and a session on another thread may already have taken some.
fn gauge(value: &AtomicUsize) -> usize {
    let v = value.load(Relaxed);
    if v > isize::MAX as usize { 0 } else { v }
}
