//! Node-wide counters: atomics updated on the data path, read as a [`Stats`] snapshot.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use stompbox_codec::Command;

use crate::{CloseReason, TransportKind};

/// The kinds of destination messages are counted by ([`Stats::received`],
/// [`Stats::delivered`]): `/topic/...`, `/queue/...`, `/user/...`, anything else.
pub const DESTINATION_KINDS: [&str; 4] = ["topic", "queue", "user", "other"];

/// What frames are counted as ([`Stats::frames_in`], [`Stats::frames_out`]): every command by its
/// name on the wire, in the order of [`Command::ALL`], then `heartbeat` (an EOL).
pub const FRAME_KINDS: [&str; 16] = [
    "CONNECT",
    "STOMP",
    "SEND",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "ACK",
    "NACK",
    "BEGIN",
    "COMMIT",
    "ABORT",
    "DISCONNECT",
    "CONNECTED",
    "MESSAGE",
    "RECEIPT",
    "ERROR",
    "heartbeat",
];

/// The index of a heart-beat in [`FRAME_KINDS`].
pub(crate) const HEARTBEAT: usize = 15;

/// The index of `command` in [`FRAME_KINDS`].
pub(crate) fn frame_index(command: Command) -> usize {
    command as usize
}

/// The index of `destination`'s kind in [`DESTINATION_KINDS`].
pub(crate) fn kind_index(destination: &[u8]) -> usize {
    if destination.starts_with(b"/topic/") {
        0
    } else if destination.starts_with(b"/queue/") {
        1
    } else if destination.starts_with(b"/user/") {
        2
    } else {
        3
    }
}

/// One message in this many is timed from routing to its subscribers' writers
/// ([`Stats::publish_to_write`]): `Instant::now()` is not free, and a sample is enough.
pub(crate) const TIMED_ONE_IN: u64 = 64;

/// Upper bounds of [`Stats::publish_to_write`]'s buckets, in microseconds.
const LATENCY_BOUNDS_US: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
    5_000_000,
];

/// Counters for the whole node, cheap to read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Sessions currently being served.
    pub connections: usize,
    /// SEND frames accepted, and messages sent by server code (the sum of `received`).
    pub messages_received: u64,
    /// MESSAGE frames queued to subscribers (the sum of `delivered`).
    pub messages_delivered: u64,
    /// Messages received, by the kind of their destination (in the order of
    /// [`DESTINATION_KINDS`]).
    pub received: Vec<(&'static str, u64)>,
    /// Deliveries queued to subscribers, by the kind of the message's destination.
    pub delivered: Vec<(&'static str, u64)>,
    /// Frames read from clients, by command (in the order of [`FRAME_KINDS`]; heart-beats
    /// included).
    pub frames_in: Vec<(&'static str, u64)>,
    /// Frames queued for writing to clients, by command.
    pub frames_out: Vec<(&'static str, u64)>,
    /// Bytes read from clients (STOMP bytes, as the transport hands them over).
    pub bytes_in: u64,
    /// Bytes handed to transports for writing.
    pub bytes_out: u64,
    /// From a message's routing to its encoding into each subscriber's write batch, for one
    /// message in 64 (a histogram).
    pub publish_to_write: Latencies,
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

/// A latency histogram: cumulative counts per upper bound, as Prometheus reads them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Latencies {
    /// (upper bound, observations at or below it), bounds increasing; `+Inf` is `count`.
    pub buckets: Vec<(Duration, u64)>,
    /// Observations.
    pub count: u64,
    /// Their sum.
    pub sum: Duration,
}

/// A live latency histogram, read as [`Latencies`]: one atomic per bucket (50 µs to 5 s), for
/// figures observed a few thousand times a second at most (sampled, or once per batch).
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; LATENCY_BOUNDS_US.len()],
    /// Observations above the last bound. The count is the sum of all, so a snapshot taken
    /// while others observe is still a consistent histogram.
    over: AtomicU64,
    sum_us: AtomicU64,
}

impl LatencyHistogram {
    /// Counts one observation.
    pub fn observe(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        match LATENCY_BOUNDS_US.iter().position(|&bound| us <= bound) {
            Some(i) => self.buckets[i].fetch_add(1, Relaxed),
            None => self.over.fetch_add(1, Relaxed),
        };
        self.sum_us.fetch_add(us, Relaxed);
    }

    /// What it counted so far.
    pub fn snapshot(&self) -> Latencies {
        let mut cumulative = 0;
        let buckets = (LATENCY_BOUNDS_US.iter().zip(&self.buckets))
            .map(|(&bound, n)| {
                cumulative += n.load(Relaxed);
                (Duration::from_micros(bound), cumulative)
            })
            .collect();
        Latencies {
            buckets,
            count: cumulative + self.over.load(Relaxed),
            sum: Duration::from_micros(self.sum_us.load(Relaxed)),
        }
    }
}

/// Frames by [`frame_index`] (and [`HEARTBEAT`]), and bytes, in one direction: one session's
/// (its [`Traffic`]), or what the sessions that ended read or wrote (the node's).
#[derive(Debug, Default)]
pub(crate) struct Direction {
    frames: [AtomicU64; FRAME_KINDS.len()],
    bytes: AtomicU64,
}

/// Adds `n` to a cell only its owner writes.
fn bump(cell: &AtomicU64, n: u64) {
    cell.store(cell.load(Relaxed) + n, Relaxed);
}

impl Direction {
    fn cells(&self) -> impl Iterator<Item = &AtomicU64> {
        self.frames.iter().chain([&self.bytes])
    }

    /// Adds what it counted to `total`, which other sessions add to as well.
    fn depart_into(&self, total: &Direction) {
        for (n, total) in self.cells().zip(total.cells()) {
            let n = n.load(Relaxed);
            if n > 0 {
                total.fetch_add(n, Relaxed);
            }
        }
    }

    fn sum_into(&self, sum: &mut Sum) {
        for (total, n) in sum.frames.iter_mut().zip(&self.frames) {
            *total += n.load(Relaxed);
        }
        sum.bytes += self.bytes.load(Relaxed);
    }
}

/// What one session read and wrote: cells of its own, written by its task alone (a load and a
/// store, no locked read-modify-write, no cache line shared with other sessions) and summed by
/// whoever reads the node's counters ([`crate::sessions::Sessions`] keeps the live ones; a
/// session that ends adds its own to [`Counters::departed_in`] and `departed_out`).
#[derive(Debug, Default)]
pub(crate) struct Traffic {
    inbound: Direction,
    outbound: Direction,
}

impl Traffic {
    pub(crate) fn frame_in(&self, kind: usize) {
        bump(&self.inbound.frames[kind], 1);
    }

    pub(crate) fn frame_out(&self, kind: usize) {
        bump(&self.outbound.frames[kind], 1);
    }

    pub(crate) fn bytes_in(&self, n: usize) {
        bump(&self.inbound.bytes, n as u64);
    }

    pub(crate) fn bytes_out(&self, n: usize) {
        bump(&self.outbound.bytes, n as u64);
    }

    /// Adds what it counted to `totals`.
    pub(crate) fn add_into(&self, totals: &mut TrafficTotals) {
        self.inbound.sum_into(&mut totals.inbound);
        self.outbound.sum_into(&mut totals.outbound);
    }

    /// Adds what it counted to the node's counters of ended sessions.
    pub(crate) fn depart(&self, counters: &Counters) {
        self.inbound.depart_into(&counters.departed_in);
        self.outbound.depart_into(&counters.departed_out);
    }
}

/// A [`Direction`]'s counts, summed.
#[derive(Debug, Default)]
struct Sum {
    frames: [u64; FRAME_KINDS.len()],
    bytes: u64,
}

/// Sums of [`Traffic`].
#[derive(Debug, Default)]
pub(crate) struct TrafficTotals {
    inbound: Sum,
    outbound: Sum,
}

impl TrafficTotals {
    /// The ended sessions' traffic, to which the live ones' is then added.
    pub(crate) fn departed(counters: &Counters) -> Self {
        let mut totals = TrafficTotals::default();
        counters.departed_in.sum_into(&mut totals.inbound);
        counters.departed_out.sum_into(&mut totals.outbound);
        totals
    }

    /// Fills `stats`' traffic fields.
    pub(crate) fn fill(&self, stats: &mut Stats) {
        let labelled = |sum: &Sum| FRAME_KINDS.iter().copied().zip(sum.frames).collect();
        stats.frames_in = labelled(&self.inbound);
        stats.frames_out = labelled(&self.outbound);
        stats.bytes_in = self.inbound.bytes;
        stats.bytes_out = self.outbound.bytes;
    }
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
    /// By [`kind_index`].
    pub(crate) received: [AtomicU64; DESTINATION_KINDS.len()],
    /// By [`kind_index`].
    pub(crate) delivered: [AtomicU64; DESTINATION_KINDS.len()],
    /// What ended sessions read and wrote (live ones count in their own [`Traffic`]).
    pub(crate) departed_in: Direction,
    pub(crate) departed_out: Direction,
    pub(crate) publish_to_write: LatencyHistogram,
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
        let labelled =
            |labels: &[&'static str], counts: &[AtomicU64]| -> Vec<(&'static str, u64)> {
                (labels.iter().zip(counts))
                    .map(|(label, n)| (*label, n.load(Relaxed)))
                    .collect()
            };
        let received = labelled(&DESTINATION_KINDS, &self.received);
        let delivered = labelled(&DESTINATION_KINDS, &self.delivered);
        Stats {
            connections: self.connections.load(Relaxed),
            messages_received: received.iter().map(|(_, n)| n).sum(),
            messages_delivered: delivered.iter().map(|(_, n)| n).sum(),
            received,
            delivered,
            // Filled by `Broker::stats` from the sessions' own cells (`TrafficTotals`).
            frames_in: Vec::new(),
            frames_out: Vec::new(),
            bytes_in: 0,
            bytes_out: 0,
            publish_to_write: self.publish_to_write.snapshot(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_kinds_follow_the_commands() {
        for command in Command::ALL {
            assert_eq!(FRAME_KINDS[frame_index(command)], command.as_str());
        }
        assert_eq!(FRAME_KINDS[HEARTBEAT], "heartbeat");
        assert_eq!(Command::ALL.len(), HEARTBEAT);
    }

    #[test]
    fn destinations_are_counted_by_kind() {
        let kind = |d: &str| DESTINATION_KINDS[kind_index(d.as_bytes())];
        assert_eq!(kind("/topic/a"), "topic");
        assert_eq!(kind("/queue/a"), "queue");
        assert_eq!(kind("/user/alice/queue/a"), "user");
        assert_eq!(kind("/exchange/a"), "other");
        assert_eq!(kind("/topicx"), "other");
    }

    #[test]
    fn traffic_of_live_and_ended_sessions_adds_up() {
        let counters = Counters::default();
        let (live, ended) = (Traffic::default(), Traffic::default());
        for traffic in [&live, &ended] {
            traffic.frame_in(frame_index(Command::Send));
            traffic.frame_out(frame_index(Command::Message));
            traffic.bytes_in(100);
            traffic.bytes_out(700);
        }
        ended.frame_in(frame_index(Command::Send));
        ended.depart(&counters);
        let mut totals = TrafficTotals::departed(&counters);
        live.add_into(&mut totals);
        let mut stats = counters.snapshot();
        totals.fill(&mut stats);
        assert_eq!(stats.frames_in[2], ("SEND", 3));
        assert_eq!(stats.frames_out[12], ("MESSAGE", 2));
        assert_eq!((stats.bytes_in, stats.bytes_out), (200, 1400));
    }

    #[test]
    fn latencies_are_cumulative_and_count_the_slowest() {
        let histogram = LatencyHistogram::default();
        for us in [10, 60, 60, 2_000, 9_000_000] {
            histogram.observe(Duration::from_micros(us));
        }
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.count, 5);
        assert_eq!(snapshot.sum, Duration::from_micros(9_002_130));
        let at = |us: u64| {
            (snapshot.buckets.iter())
                .find(|(bound, _)| *bound == Duration::from_micros(us))
                .map(|(_, n)| *n)
        };
        assert_eq!(at(50), Some(1));
        assert_eq!(at(100), Some(3));
        assert_eq!(at(2_500), Some(4));
        assert_eq!(at(5_000_000), Some(4), "the 9 s one is above every bound");
    }
}
