//! The Stompbox RabbitMQ relay: several `stompbox` nodes behave as one broker.
//!
//! A [`Relay`] is a [`Backplane`] for one node. The broker reports local interest (the first
//! subscriber of a topic pattern, the first `/user` subscription of a user) and forwards what
//! is published on the node; the relay keeps one AMQP connection per node and turns interest
//! into bindings of the node's own queue, publishes into two exchanges, and injects what other
//! nodes published into the local router ([`stompbox_broker::Broker::inject`]). With
//! `queues` on, `/queue` destinations live in durable RabbitMQ queues, one AMQP consumer per
//! STOMP subscription; so do durable topic subscriptions and users' inboxes.
//!
//! ```no_run
//! # async fn example() -> Result<(), stompbox_relay::RelayError> {
//! use stompbox_broker::Broker;
//! use stompbox_relay::{Relay, RelayConfig};
//!
//! // The relay first (the broker's backplane), then the broker, then the link that needs both.
//! let (relay, link) = Relay::new(RelayConfig { enabled: true, ..RelayConfig::default() })?;
//! let broker = Broker::builder().backplane(relay.backplane()).build().unwrap();
//! link.start(broker.clone());
//! // ... serve sessions with `broker` ...
//! relay.stop().await;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - `lib.rs`: [`Relay`], the handle, and the [`Backplane`] calls (a bounded channel of
//!   outgoing messages and a set of wanted bindings; neither ever waits); [`RelayLink`], the
//!   link before it starts; [`RelayState`].
//! - `core.rs`: the bookkeeping, no I/O: wanted bindings, unconfirmed publishes, backoff.
//! - `link.rs`: the task that owns the AMQP connection: connect, declare, run the two halves
//!   below side by side, reconnect with backoff, stop.
//! - `publisher.rs`: publishes what the broker forwards, with confirms, on its own channel.
//! - `node_queue.rs`: binds this node's queue to what local subscribers want, consumes it into
//!   the broker ([`Broker::inject`]), and applies queue subscription changes.
//! - `queue_consumers.rs`: subscriptions to queues held in RabbitMQ (`/queue`, durable
//!   subscriptions: one consumer and channel each; inboxes: drained, then released).
//! - `held.rs`: the queues of durable subscriptions and inboxes: declared, bound, moved,
//!   removed.
//! - `amqp.rs`: the mapping between STOMP destinations and AMQP exchanges, keys and headers.
//! - `config.rs`: [`RelayConfig`]; `error.rs`: [`RelayError`].
//!
//! `docs/relay.md` describes the mapping, echo avoidance and failure behaviour.

mod amqp;
mod config;
mod core;
mod error;
mod held;
mod link;
mod node_queue;
mod publisher;
mod queue_consumers;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use stompbox_broker::{
    Backplane, BackplaneUnavailable, Broker, HeldQueue, Interest, QueueConsumer, Relayed,
};
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;

pub use config::{QueueType, RelayConfig};
pub use error::RelayError;

/// Where the relay's link to RabbitMQ stands (see [`Relay::watch_state`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RelayState {
    /// Not started yet, or connecting (first time or after an outage).
    Connecting,
    /// Connected, topology declared, every current interest bound.
    Connected,
    /// The link broke; the relay waits for its backoff, then reconnects. Sessions stay up;
    /// what they publish is buffered up to `buffer_messages`, then refused.
    Down {
        /// Why, for logs and health checks.
        error: String,
    },
    /// [`Relay::stop`] was called (or the link was dropped unstarted); nothing is relayed.
    Stopped,
}

/// A cheap, cloneable handle to one node's relay: the broker's [`Backplane`], its state, stop.
#[derive(Clone)]
pub struct Relay {
    shared: Arc<Shared>,
}

/// The relay's link to RabbitMQ before it starts: it owns the receiving ends of what the
/// backplane sends, and needs the broker it delivers into. [`RelayLink::start`] it once the
/// broker is built; dropped unstarted, the relay is stopped.
pub struct RelayLink {
    outgoing: mpsc::Receiver<Relayed>,
    ops: mpsc::UnboundedReceiver<QueueOp>,
    stopped: StoppedOnDrop,
}

pub(crate) struct Shared {
    pub(crate) config: RelayConfig,
    pub(crate) node_id: String,
    /// Chosen when the relay starts: numbers what this node publishes apart from what an
    /// earlier run of it published ([`amqp::Stamp`]).
    pub(crate) incarnation: u64,
    /// What this node delivered from each other node ([`core::Seen`]).
    pub(crate) seen: Mutex<core::Seen>,
    pub(crate) names: amqp::Names,
    outgoing: mpsc::Sender<Relayed>,
    /// Queue subscriptions and settlements, in order. Unbounded but not by traffic: one
    /// subscribe and one unsubscribe per subscription, and settlements of at most `prefetch`
    /// deliveries per subscription in flight.
    queue_ops: mpsc::UnboundedSender<QueueOp>,
    pub(crate) interests: Mutex<core::Interests>,
    pub(crate) changed: Notify,
    pub(crate) state: watch::Sender<RelayState>,
    /// The interest generation bound in RabbitMQ (see [`Relay::synced`]).
    pub(crate) synced: watch::Sender<u64>,
    /// Durable subscriptions and removals sent to the link (numbered from 1; other queue
    /// subscriptions are 0), and the number of the last one it carried out: a RECEIPT waits
    /// for it ([`Backplane::bound`]).
    queue_ops_sent: AtomicU64,
    pub(crate) queue_ops_done: watch::Sender<u64>,
    pub(crate) stop: CancellationToken,
    /// The link was started: [`Relay::stop`] then waits for it to end.
    started: AtomicBool,
    refused: AtomicU64,
    /// From handing a publish to the connection to RabbitMQ's confirm of it.
    pub(crate) confirm_latency: stompbox_broker::LatencyHistogram,
    /// Signalled when the publisher took messages from `outgoing` (see [`Relay::room`]).
    pub(crate) taken: Notify,
    /// Since when `outgoing` has been nearly full: milliseconds after `epoch`, 0 while it has
    /// room.
    full_since: AtomicU64,
    epoch: tokio::time::Instant,
    /// Per queue subscription: open until the broker unsubscribes. A delivery is offered only
    /// under this lock while it is open, so none arrives after `queue_unsubscribe` returned.
    gates: Mutex<std::collections::HashMap<ConsumerKey, Gate>>,
}

/// See `Shared::gates`.
pub(crate) type Gate = Arc<Mutex<bool>>;

/// Locks a mutex whose data stays consistent even if a holder panicked (each update is one
/// insert, remove or flag), as the broker does with its own locks.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Marks the relay stopped when dropped: when the link task ends, however it ends (a panic
/// included), or when the link is dropped without being started.
pub(crate) struct StoppedOnDrop(pub(crate) Arc<Shared>);

impl Drop for StoppedOnDrop {
    fn drop(&mut self) {
        self.0.state.send_replace(RelayState::Stopped);
    }
}

impl Relay {
    /// A relay for one node and its link, not connected yet: pass [`Relay::backplane`] to the
    /// broker's builder, then [`RelayLink::start`] the link with the built broker.
    pub fn new(config: RelayConfig) -> Result<(Relay, RelayLink), RelayError> {
        config.validate()?;
        let node_id = match config.node_id.as_str() {
            "" => random_id(),
            id => id.to_owned(),
        };
        let names = amqp::Names::new(&config.prefix, &node_id);
        let (outgoing, outgoing_rx) = mpsc::channel(config.buffer_messages);
        let (queue_ops, ops_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            config,
            node_id,
            incarnation: u64::from_str_radix(&random_id(), 16).unwrap_or_default(),
            seen: Mutex::default(),
            names,
            outgoing,
            taken: Notify::new(),
            full_since: AtomicU64::new(0),
            epoch: tokio::time::Instant::now(),
            queue_ops,
            interests: Mutex::default(),
            changed: Notify::new(),
            state: watch::Sender::new(RelayState::Connecting),
            synced: watch::Sender::new(0),
            queue_ops_sent: AtomicU64::new(0),
            queue_ops_done: watch::Sender::new(0),
            stop: CancellationToken::new(),
            started: AtomicBool::new(false),
            refused: AtomicU64::new(0),
            confirm_latency: Default::default(),
            gates: Mutex::default(),
        });
        let link = RelayLink {
            outgoing: outgoing_rx,
            ops: ops_rx,
            stopped: StoppedOnDrop(shared.clone()),
        };
        Ok((Relay { shared }, link))
    }

    /// This relay as the broker's backplane ([`stompbox_broker::BrokerBuilder::backplane`]).
    pub fn backplane(&self) -> Arc<dyn Backplane> {
        Arc::new(self.clone())
    }

    /// Stops relaying: flushes what is buffered (when connected), deletes this node's queue,
    /// closes the connection, and waits for the link task to end.
    pub async fn stop(&self) {
        self.shared.stop.cancel();
        if !self.shared.started.load(SeqCst) {
            // No link task to wait for; if the link is started later, it ends at once.
            self.shared.state.send_replace(RelayState::Stopped);
            return;
        }
        let mut state = self.shared.state.subscribe();
        let _ = state.wait_for(|s| *s == RelayState::Stopped).await;
    }
    /// This node's id (random unless configured).
    pub fn node_id(&self) -> &str {
        &self.shared.node_id
    }

    /// The AMQP `connection_name` of this node's connection, as `rabbitmqctl list_connections
    /// client_properties` shows it.
    pub fn connection_name(&self) -> &str {
        &self.shared.names.connection_name
    }

    /// The name of this node's queue in RabbitMQ.
    pub fn node_queue(&self) -> &str {
        &self.shared.names.node_queue
    }

    /// The link's state now.
    pub fn state(&self) -> RelayState {
        self.shared.state.borrow().clone()
    }

    /// The link's state as it changes (also logged: `relay connected`, `relay down`).
    pub fn watch_state(&self) -> watch::Receiver<RelayState> {
        self.shared.state.subscribe()
    }

    /// Messages waiting in the buffer for the publisher (up to `buffer_messages`); those it
    /// published and awaits RabbitMQ's confirm for are not counted.
    pub fn buffered(&self) -> usize {
        let outgoing = &self.shared.outgoing;
        outgoing.max_capacity() - outgoing.capacity()
    }

    /// How long RabbitMQ took to confirm each publish (one batch of messages or one message).
    pub fn confirm_latency(&self) -> stompbox_broker::Latencies {
        self.shared.confirm_latency.snapshot()
    }

    /// Messages refused so far because the buffer was full or the relay stopped.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Relaxed)
    }

    /// Waits until every interest change reported so far is bound (or unbound) in RabbitMQ:
    /// after it, what other nodes publish reaches every subscriber that was here before.
    /// Waits across outages; bound it with a timeout.
    pub async fn synced(&self) {
        let target = lock(&self.shared.interests).generation();
        let mut synced = self.shared.synced.subscribe();
        let _ = synced.wait_for(|&g| g >= target).await;
    }
}

impl Backplane for Relay {
    fn interest(&self, interest: Interest, present: bool) {
        let changed = lock(&self.shared.interests).report(interest, present);
        if changed {
            self.shared.changed.notify_one();
        }
    }

    fn forward(&self, message: Relayed) -> Result<(), BackplaneUnavailable> {
        let (_, key) = self.shared.names.route(&message.target);
        if key.len() > amqp::MAX_ROUTING_KEY {
            return Err(BackplaneUnavailable {
                reason: "destination or user name longer than 255 bytes".into(),
            });
        }
        self.shared.outgoing.try_send(message).map_err(|e| {
            self.shared.refused.fetch_add(1, Relaxed);
            let reason = match e {
                mpsc::error::TrySendError::Full(_) => format!(
                    "buffer full ({} messages waiting for RabbitMQ)",
                    self.shared.config.buffer_messages
                ),
                mpsc::error::TrySendError::Closed(_) => "relay stopped".to_owned(),
            };
            BackplaneUnavailable { reason }
        })
    }

    fn bound(&self) -> Option<stompbox_broker::Room> {
        let mut state = self.shared.state.subscribe();
        if *state.borrow() != RelayState::Connected {
            // Down: every interest is declared again on reconnection; nothing to wait for.
            return None;
        }
        let target = lock(&self.shared.interests).generation();
        let mut synced = self.shared.synced.subscribe();
        // Queue subscriptions too: a durable subscription's queue is declared and bound.
        let ops = self.shared.queue_ops_sent.load(SeqCst);
        let mut done = self.shared.queue_ops_done.subscribe();
        if *synced.borrow() >= target && *done.borrow() >= ops {
            return None;
        }
        Some(Box::pin(async move {
            let both = async {
                let _ = synced.wait_for(|&g| g >= target).await;
                let _ = done.wait_for(|&n| n >= ops).await;
            };
            tokio::select! {
                () = both => {}
                _ = state.wait_for(|s| *s != RelayState::Connected) => {}
            }
        }))
    }

    fn room(&self) -> Option<stompbox_broker::Room> {
        let shared = &self.shared;
        // Held below an eighth of the buffer left: sessions racing past the check still fit.
        let slack = (shared.config.buffer_messages / 8).max(1);
        // A stopped relay takes nothing more: its forwards are refused at once.
        if shared.outgoing.capacity() >= slack || shared.outgoing.is_closed() {
            if shared.full_since.load(Relaxed) != 0 {
                shared.full_since.store(0, Relaxed);
            }
            return None;
        }
        let now = tokio::time::Instant::now();
        let mut since = shared.full_since.load(Relaxed);
        if since == 0 {
            since = (now - shared.epoch).as_millis() as u64 + 1;
            shared.full_since.store(since, Relaxed);
        }
        let deadline =
            shared.epoch + Duration::from_millis(since) + shared.config.unavailable_after;
        if now >= deadline {
            // Full for too long: stop holding publishers; their SENDs are refused.
            return None;
        }
        let shared = self.shared.clone();
        Some(Box::pin(async move {
            let wait = async {
                loop {
                    let taken = shared.taken.notified();
                    tokio::pin!(taken);
                    taken.as_mut().enable();
                    // A stopped relay takes nothing more: its forwards are refused at once.
                    if shared.outgoing.capacity() >= slack || shared.outgoing.is_closed() {
                        return;
                    }
                    taken.await;
                }
            };
            let _ = tokio::time::timeout_at(deadline, wait).await;
        }))
    }

    fn handles_queues(&self) -> bool {
        self.shared.config.queues
    }

    fn queue_subscribe(&self, consumer: QueueConsumer) -> Result<(), BackplaneUnavailable> {
        if self.shared.names.longest(&consumer.queue).len() > amqp::MAX_ROUTING_KEY {
            return Err(BackplaneUnavailable {
                reason: "its RabbitMQ queue's name would be longer than 255 bytes".into(),
            });
        }
        let key = (consumer.session, consumer.subscription.clone());
        let gate = Arc::new(Mutex::new(true));
        lock(&self.shared.gates).insert(key, gate.clone());
        // A durable subscription's RECEIPT waits until its queue is bound (what is published
        // after it is kept); a queue's or an inbox's needs nothing more than the interest.
        let seq = match consumer.queue {
            HeldQueue::Durable { .. } => self.shared.queue_ops_sent.fetch_add(1, SeqCst) + 1,
            HeldQueue::Queue(_) | HeldQueue::Inbox { .. } => 0,
        };
        let _ = (self.shared.queue_ops).send(QueueOp::Subscribe(consumer, gate, seq));
        Ok(())
    }

    fn queue_remove(&self, queue: HeldQueue) {
        let seq = self.shared.queue_ops_sent.fetch_add(1, SeqCst) + 1;
        let _ = self.shared.queue_ops.send(QueueOp::Remove(queue, seq));
    }

    fn queue_unsubscribe(&self, session: u64, subscription: &str) {
        let key = (session, subscription.to_owned());
        let gate = lock(&self.shared.gates).remove(&key);
        if let Some(gate) = gate {
            *lock(&gate) = false;
        }
        let _ = self.shared.queue_ops.send(QueueOp::Unsubscribe(key));
    }

    fn queue_settle(&self, session: u64, subscription: &str, tags: &[u64], ack: bool) {
        let how = if ack { Settle::Ack } else { Settle::Requeue };
        self.settle(session, subscription, tags, how);
    }

    fn queue_reject(&self, session: u64, subscription: &str, tags: &[u64]) {
        self.settle(session, subscription, tags, Settle::Reject);
    }
}

impl Relay {
    fn settle(&self, session: u64, subscription: &str, tags: &[u64], how: Settle) {
        let key = (session, subscription.to_owned());
        let tags = tags.to_vec();
        let _ = (self.shared.queue_ops).send(QueueOp::Settle { key, tags, how });
    }
}

/// How queue deliveries are settled with RabbitMQ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Settle {
    /// `basic.ack`.
    Ack,
    /// `basic.nack` with requeue: redelivered (until the queue's delivery limit).
    Requeue,
    /// `basic.nack` without requeue: dead-lettered by RabbitMQ (or dropped without a
    /// dead-letter queue).
    Reject,
}

/// A queue subscription's key: (session, subscription id).
pub(crate) type ConsumerKey = (u64, String);

/// What the broker asked about queue subscriptions, for the link task.
pub(crate) enum QueueOp {
    /// With its number, reported in `Shared::queue_ops_done` once carried out.
    Subscribe(QueueConsumer, Gate, u64),
    Unsubscribe(ConsumerKey),
    /// A durable subscription removed, with its number.
    Remove(HeldQueue, u64),
    Settle {
        key: ConsumerKey,
        tags: Vec<u64>,
        how: Settle,
    },
}

impl RelayLink {
    /// Spawns the link task (on the current tokio runtime): it connects to RabbitMQ, delivers
    /// what other nodes publish into `broker`, and keeps reconnecting until [`Relay::stop`].
    pub fn start(self, broker: Broker) {
        self.stopped.0.started.store(true, SeqCst);
        let queues = &broker.config().queues;
        let shape = amqp::QueueShape {
            queue_type: self.stopped.0.config.queue_type,
            max_deliveries: queues.max_deliveries,
            dead_letter_prefix: queues.dead_letter_prefix.clone(),
            durable: broker.config().durable.clone(),
            inbox: broker.config().inbox.clone(),
        };
        tokio::spawn(link::run(self, broker, shape));
    }
}

impl std::fmt::Debug for RelayLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayLink")
            .field("node_id", &self.stopped.0.node_id)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("node_id", &self.shared.node_id)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

/// A node id unique enough for a cluster: 64 random bits from the std hasher's seed, the
/// time and the process id, in hex.
fn random_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}
