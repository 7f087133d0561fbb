//! The seam with a backplane that joins several nodes into one broker (the RabbitMQ relay in
//! `stompbox-relay`), without the core knowing how the backplane talks.
//!
//! Three flows cross it, none of which ever waits:
//! - **Interest**: the router calls [`Backplane::interest`] when the first local subscriber of a
//!   topic pattern (or the first local `/user` subscription of a named user) arrives, and again
//!   when the last one leaves, under its table lock so the calls for one key come in order.
//! - **Forward**: every `/topic` publish and every `/user` send to a named user (not a reply to
//!   one session) is offered to [`Backplane::forward`] *before* local delivery; a refusal
//!   ([`BackplaneUnavailable`]) refuses the send as a whole, so nothing is half delivered.
//! - **Inject**: what other nodes published comes back through
//!   [`Broker::inject`](crate::Broker::inject), which routes to local subscribers only and never
//!   forwards again (no echo, no loop).
//!
//! A backplane must answer both calls at once (a short std lock, a `try_send`), since they run on
//! publishers' and subscribers' tasks, sometimes under a router lock.
//!
//! These types sit below the router: the router calls a backplane, and a backplane reaches the
//! router only through [`Broker::inject`](crate::Broker::inject) and a [`QueueSink`].

use bytes::Bytes;
use stompbox_codec::{ByteString, Headers};

/// Where a relayed message goes, on every node.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// `/topic/<key>`: the routing key (the name after `/topic/`).
    Topic(String),
    /// `/queue/<name>` when queues live in the backplane ([`Backplane::handles_queues`]): one
    /// consumer in the whole cluster gets it.
    Queue(String),
    /// Every session of `user` subscribed to `/user<destination>` (`/queue/x`).
    User {
        /// The user's principal name.
        user: String,
        /// The destination after `/user`, starting with `/`.
        destination: String,
    },
    /// As [`Target::User`], to a destination with an inbox (`broker.inbox.destinations`) when
    /// the backplane holds queues: when no session of `user` in the cluster is subscribed to
    /// it, the backplane keeps it in the user's inbox ([`HeldQueue::Inbox`]).
    Inbox {
        /// The user's principal name.
        user: String,
        /// The destination after `/user`, starting with `/`.
        destination: String,
    },
}

/// What local subscribers want from other nodes: a binding in backplane terms.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Interest {
    /// A topic subscription pattern (the name after `/topic/`, `*` and `#` allowed).
    Topic(String),
    /// A named user with at least one `/user/...` subscription on this node.
    User(String),
    /// A named user with a subscription on this node to a user destination with an inbox
    /// (reported only when the backplane holds queues): what is sent there is not kept.
    Inbox {
        /// The user's principal name.
        user: String,
        /// The destination after `/user`, starting with `/`.
        destination: String,
    },
}

/// One message crossing the backplane: out of this node ([`Backplane::forward`]) or into it
/// ([`Broker::inject`](crate::Broker::inject)).
#[derive(Clone, Debug)]
pub struct Relayed {
    /// Where it goes.
    pub target: Target,
    /// The forwarded headers (`content-type`, user headers); frame headers already removed.
    pub headers: Headers,
    /// The body, shared with local deliveries.
    pub body: Bytes,
}

/// The backplane cannot take a message now (its buffer is full or it is shut down): the send
/// fails, and the message is delivered nowhere.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("relay unavailable: {reason}")]
pub struct BackplaneUnavailable {
    /// Why, for the ERROR frame or the log.
    pub reason: String,
}

/// A wait for the backplane to take messages again ([`Backplane::room`]).
pub type Room = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A transport-agnostic backplane, set with [`crate::BrokerBuilder::backplane`].
pub trait Backplane: Send + Sync + 'static {
    /// Local interest in `interest` began (`present`) or ended. Must not wait.
    fn interest(&self, interest: Interest, present: bool);
    /// Offers a message published on this node to the other nodes. Must not wait; a refusal
    /// refuses the publish.
    fn forward(&self, message: Relayed) -> Result<(), BackplaneUnavailable>;
    /// `None` while forwarding is taken; otherwise a wait that ends when the backplane has
    /// room again (or when it gives up waiting, after which forwards may be refused). A
    /// session that has forwarded stops reading its client while it waits: back-pressure on
    /// publishers instead of refused SENDs; sessions that only subscribe are not held. Must
    /// not wait itself. Default `None`.
    fn room(&self) -> Option<Room> {
        None
    }
    /// `None` when every interest reported so far is in effect in the backplane (what other
    /// nodes publish from now on reaches it), or when that cannot be known now (the backplane
    /// is down: it sets every interest up again when it is back); otherwise a wait until it is.
    /// A SUBSCRIBE's RECEIPT waits for it, so that a RECEIPT means the subscription is in
    /// effect on every node. Must not wait itself. Default `None`.
    fn bound(&self) -> Option<Room> {
        None
    }
    /// Whether `/queue` destinations live in the backplane. Then a SEND to `/queue/x` is
    /// forwarded as [`Target::Queue`], and queue subscriptions, ACK and NACK go to the
    /// `queue_*` methods instead of the node's own queues. Default `false`.
    fn handles_queues(&self) -> bool {
        false
    }
    /// A subscription to a queue the backplane holds began: deliver through `consumer.sink`.
    /// Must not wait; refused at once when the backplane cannot hold that queue (a name too
    /// long for it). Durable topic subscriptions ([`HeldQueue::Durable`]) come here too when
    /// the backplane handles queues.
    fn queue_subscribe(&self, consumer: QueueConsumer) -> Result<(), BackplaneUnavailable> {
        let _ = consumer;
        Ok(())
    }
    /// A durable subscription was removed (UNSUBSCRIBE with `durable:true`): its queue goes,
    /// with what it kept. Must not wait.
    fn queue_remove(&self, queue: HeldQueue) {
        let _ = queue;
    }
    /// A queue subscription ended: its unsettled deliveries go back to the queue.
    fn queue_unsubscribe(&self, session: u64, subscription: &str) {
        let _ = (session, subscription);
    }
    /// The client settled deliveries (the tags [`QueueSink::deliver`] returned): `ack` true is
    /// ACK (or written in `auto` mode), false is NACK (back to the queue, redelivered).
    fn queue_settle(&self, session: u64, subscription: &str, tags: &[u64], ack: bool) {
        let _ = (session, subscription, tags, ack);
    }
    /// The client refused deliveries for good (NACK with `requeue:false`): they go to the
    /// queue's dead letters, not back to it. By default a plain NACK (redelivered).
    fn queue_reject(&self, session: u64, subscription: &str, tags: &[u64]) {
        self.queue_settle(session, subscription, tags, false);
    }
}

/// A queue the backplane holds for the whole cluster.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HeldQueue {
    /// `/queue/<name>` (the name after `/queue/`): one consumer in the cluster gets each
    /// message.
    Queue(String),
    /// A durable topic subscription: `user`'s (empty for anonymous sessions) subscription
    /// `name`, fed by the topic pattern `topic` (after `/topic/`) whether or not anyone is
    /// subscribed, consumed like a queue from any node.
    Durable {
        /// The subscribing principal's name.
        user: String,
        /// The subscription's name (its `id`, or the name header).
        name: String,
        /// What feeds it: a topic pattern, `*` and `#` allowed.
        topic: String,
    },
    /// `user`'s inbox for the user destination `destination` (after `/user`): what was sent
    /// there while no session of the user was subscribed to it. A subscription drains it
    /// before live messages (which [`Interest::Inbox`] brings).
    Inbox {
        /// The user's principal name.
        user: String,
        /// The destination after `/user`, starting with `/`.
        destination: String,
    },
}

/// One queue subscription, handed to a backplane that holds the queues.
#[derive(Debug)]
pub struct QueueConsumer {
    /// What it consumes.
    pub queue: HeldQueue,
    /// The subscribing session (node-local id).
    pub session: u64,
    /// The subscription id.
    pub subscription: String,
    /// Most unacknowledged deliveries at once (the STOMP `prefetch-count`).
    pub prefetch: usize,
    /// Where the deliveries go.
    pub sink: QueueSink,
}

/// Delivers a backplane queue's messages into one subscription, through the router's single
/// entry point (so they are counted, and later checked and stored, like every other message).
pub struct QueueSink {
    target: Box<dyn SinkTarget>,
}

/// Where a [`QueueSink`] delivers: the router's side of it (`router/mod.rs`).
pub(crate) trait SinkTarget: Send + Sync + 'static {
    /// See [`QueueSink::deliver`]; `topic`: see [`QueueSink::deliver_from`].
    fn deliver(
        &self,
        topic: Option<&str>,
        headers: Headers,
        body: Bytes,
        redelivered: bool,
    ) -> Option<u64>;
    /// The subscription's destination and id, for `Debug`.
    fn describe(&self) -> (&ByteString, &ByteString);
}

impl QueueSink {
    pub(crate) fn new(target: impl SinkTarget) -> QueueSink {
        QueueSink {
            target: Box::new(target),
        }
    }

    /// Offers one message to the subscription; returns its delivery tag (what the client's
    /// ACK/NACK will name in [`Backplane::queue_settle`]), or `None` when the subscription's
    /// session is gone (the backplane then returns the message to the queue). Never waits:
    /// the backplane bounds what is in flight by the prefetch.
    pub fn deliver(&self, headers: Headers, body: Bytes, redelivered: bool) -> Option<u64> {
        self.target.deliver(None, headers, body, redelivered)
    }

    /// As [`QueueSink::deliver`], for a durable subscription's message published to
    /// `/topic/<topic>`: its `destination` is that topic, as on a single node, not the
    /// subscription's pattern.
    pub fn deliver_from(
        &self,
        topic: &str,
        headers: Headers,
        body: Bytes,
        redelivered: bool,
    ) -> Option<u64> {
        self.target.deliver(Some(topic), headers, body, redelivered)
    }
}

impl std::fmt::Debug for QueueSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (destination, subscription) = self.target.describe();
        f.debug_struct("QueueSink")
            .field("destination", destination)
            .field("subscription", subscription)
            .finish_non_exhaustive()
    }
}
