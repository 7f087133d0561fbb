//! Routing: one way in, one way out.
//!
//! Every message enters through [`Router::route`], whatever its [`Origin`]: a client's SEND, an
//! `/app` handler's reply, [`Broker::send`](crate::Broker::send) from server code, another
//! node's message ([`Broker::inject`](crate::Broker::inject)), a delivery from a queue the
//! backplane holds. It resolves where the message goes once ([`Rules::resolve`]), forwards it
//! to the other nodes where they need it, and offers it to this node's subscribers. Every
//! subscription enters through [`Router::subscribe`]. Every delivery leaves through
//! `deliver.rs`, where it is counted.
//!
//! ```text
//!  route(origin, to, payload)
//!    ├─ Rules::permit      may this origin send there?        ◄── permission checks plug in here
//!    ├─ Rules::resolve     destination kind → Address (the one match on kinds, `address.rs`)
//!    ├─ message            node-unique id, counted as received
//!    ├─ forward            to the backplane (/topic, a named /user, a backplane-held /queue)
//!    └─ Address::Topic ──► topic_table.rs ──┐
//!       Address::User  ──► user_table.rs  ──┼──► deliver.rs: Deliveries::offer ──► Outbox
//!       Address::Subscription ──────────────┤
//!       Address::Queue ──► Router::enqueue ─┘ (queue_table.rs, queue.rs: dispatch)
//!                          ▲ persistence plugs in here
//! ```
//!
//! # Layout
//! - `address.rs`: [`Rules`]: destination kinds, origins' rules, permission checks; pure.
//! - `deliver.rs`: the exit; `topic_table.rs` (exact keys, and wildcard patterns in the word
//!   trie of `topic_trie.rs`, with the semantics of `topic_pattern.rs`),
//!   `user_table.rs` (`/user/...` keyed by user), `queue_table.rs` (the node's queues, dead
//!   letters) and `queue.rs` (one queue's state machine).

mod address;
mod deliver;
mod queue;
mod queue_table;
mod topic_pattern;
mod topic_table;
mod topic_trie;
mod user_table;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use bytes::Bytes;
use stompbox_codec::{ByteString, Headers};

pub use address::DEFAULT_APP_PREFIX;
use address::{Address, shown_destination};
pub(crate) use address::{ClientSend, Feed, OverLimit, Rules, within_limits};
pub(crate) use queue::Outcome;
pub(crate) use user_table::UserKey;

use self::deliver::Deliveries;
pub(crate) use self::queue_table::Written;
use self::queue_table::{QueueError, QueueTable};
use self::topic_table::{Subscriber, TopicTable};
use self::user_table::UserTable;
use crate::backplane::{
    Backplane, BackplaneUnavailable, QueueConsumer, QueueSink, Relayed, SinkTarget, Target,
};
use crate::clock::Clock;
use crate::destination::{Destination, DestinationError, DestinationKind};
use crate::message::{Delivery, Message, Payload};
use crate::outbox::{Outbox, WhenFull};
use crate::permissions::Access;
use crate::stats::{Counters, QueueStats};
use crate::store::{SharedStore, StoreError, is_persistent};
use crate::{Config, Principal};

/// Where a message comes from. Each origin has its own rules: what it may send to (see
/// [`Rules::resolve`] and [`Rules::permit`]) and whether it goes to other nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin<'p> {
    /// A client's SEND (or one applied at its transaction's COMMIT), by the session's
    /// principal (`None`: anonymous), whom the permission rules are about.
    Client(Option<&'p Principal>),
    /// An `/app` handler's reply, on behalf of the session it ran for.
    Handler,
    /// Server code: [`Broker::send`](crate::Broker::send), `send_to_user`.
    Server,
    /// Another node, through the backplane: delivered on this node only, never forwarded.
    Backplane,
}

/// Whom a message is for, as its origin knows it.
#[derive(Debug)]
pub(crate) enum To {
    /// A destination as written: a client's SEND, `Broker::send`, a handler's `SendTo`.
    Destination(Destination),
    /// The sessions of `user` subscribed to `/user<path>`; only `session`'s when set.
    User {
        user: UserKey,
        path: Box<str>,
        session: Option<u64>,
    },
    /// One subscription of one session.
    Subscription(SubscriptionAddress),
}

/// One subscription of one session as an address: a subscribe handler's reply, or a delivery
/// of a queue the backplane holds.
#[derive(Debug)]
pub(crate) struct SubscriptionAddress {
    /// The MESSAGE's `destination`: what was subscribed to.
    pub(crate) destination: ByteString,
    /// The subscription id.
    pub(crate) id: ByteString,
    /// The session's outbox.
    pub(crate) outbox: Arc<Outbox>,
    /// The delivery tag that ACK/NACK name (a backplane queue's deliveries).
    pub(crate) tag: Option<u64>,
    /// Delivered before: write `redelivered:true`.
    pub(crate) redelivered: bool,
    /// A queue's delivery: how many times it was delivered before (see `Delivery`).
    pub(crate) delivery_count: Option<u32>,
}

/// A session as the router knows it: who it is and where its deliveries go.
#[derive(Clone, Debug)]
pub(crate) struct SessionRef {
    /// The node-unique session id.
    pub(crate) id: u64,
    /// Whose `/user/...` destinations its subscriptions to them are.
    pub(crate) user: UserKey,
    /// Where its deliveries go.
    pub(crate) outbox: Arc<Outbox>,
}

/// What routing one message did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Routed {
    /// Deliveries queued now (a queue delivers when a consumer has room, and counts those
    /// then).
    pub(crate) deliveries: usize,
    /// The store write of a persistent message, which its RECEIPT waits for.
    pub(crate) written: Written,
}

/// What a subscription turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Subscribed {
    /// In the routing tables (or the backplane's queues).
    Routed,
    /// An application destination: the session's subscribe handler answers it, once.
    ByHandler,
}

/// Why a message or a subscription was refused. Sessions turn it into an ERROR
/// ([`crate::ProtocolError`]), server code into a [`crate::SendError`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RouteError {
    /// The destination text names nothing.
    InvalidDestination(DestinationError),
    /// The destination's kind is not served.
    NotServed {
        destination: String,
        kind: DestinationKind,
    },
    /// Server code or a handler cannot send there.
    NotSendable {
        destination: String,
        reason: &'static str,
    },
    /// A malformed user destination in a client's SEND.
    UserSend {
        destination: String,
        reason: &'static str,
    },
    /// The permission rules refuse this client `access` to `destination`.
    AccessRefused {
        destination: String,
        access: Access,
        who: String,
    },
    /// The queue is at its bound and its overflow policy is `reject`.
    QueueFull {
        destination: String,
        /// Which bound was met.
        bound: crate::QueueBound,
    },
    /// The message would create a queue beyond `queues.max_queues`.
    TooManyQueues { max: usize },
    /// A subscription to a wildcard pattern beyond `max_wildcard_subscriptions`.
    TooManyWildcardSubscriptions { destination: String, max: usize },
    /// The backplane cannot take the message now; it was delivered nowhere.
    Unavailable {
        destination: String,
        cause: BackplaneUnavailable,
    },
    /// Server code or a handler put a NUL in a header or the destination (see [`nul_free`]).
    NulInHeader { name: String },
}

impl From<DestinationError> for RouteError {
    fn from(e: DestinationError) -> Self {
        RouteError::InvalidDestination(e)
    }
}

/// Refuses a NUL in the `destination` or any header of a message from server code or a handler.
/// STOMP has no escape for NUL and our decoder refuses it, so it cannot be delivered as written;
/// the caller is told rather than have the encoder turn it into a space. Clients' frames were
/// checked by the decoder; other nodes' messages are delivered (there is no one to tell), the
/// encoder writing any NUL as a space.
fn nul_free(destination: &str, headers: &Headers) -> Result<(), RouteError> {
    if destination.contains('\0') {
        return Err(RouteError::NulInHeader {
            name: "destination".to_owned(),
        });
    }
    match headers
        .iter()
        .find(|(name, value)| name.contains('\0') || value.contains('\0'))
    {
        Some((name, _)) => Err(RouteError::NulInHeader {
            name: name.to_owned(),
        }),
        None => Ok(()),
    }
}

/// The node's routing: its rules, its tables (one per destination kind), the backplane to the
/// other nodes, and the counters of what passes through.
#[derive(Debug)]
pub(crate) struct Router {
    rules: Rules,
    topics: TopicTable,
    queues: QueueTable,
    users: UserTable,
    /// Other nodes, when this one is part of a cluster.
    backplane: Option<Arc<dyn Backplane>>,
    counters: Arc<Counters>,
    next_message_id: AtomicU64,
}

impl std::fmt::Debug for dyn Backplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Backplane")
    }
}

impl Router {
    pub(crate) fn new(
        config: &Config,
        rules: Rules,
        backplane: Option<Arc<dyn Backplane>>,
    ) -> Self {
        let counters = Arc::new(Counters::default());
        let queues = QueueTable::new(config.queues.clone(), Clock::new(), counters.clone());
        Router {
            rules,
            topics: TopicTable::new(backplane.clone(), config.max_wildcard_subscriptions),
            queues,
            users: UserTable::new(backplane.clone()),
            backplane,
            counters,
            next_message_id: AtomicU64::new(1),
        }
    }

    /// Keeps persistent queue messages in `store`, and puts back what it holds: call before
    /// any message is routed. Ignored when the backplane holds the queues.
    pub(crate) fn set_store(&mut self, store: SharedStore) -> Result<(), StoreError> {
        if self.remote_queues().is_some() {
            return Ok(());
        }
        self.queues.set_store(store);
        let max_id = self.queues.restore()?;
        // Message ids stay unique across the restart: the store is keyed by them.
        self.next_message_id = AtomicU64::new(max_id + 1);
        Ok(())
    }

    /// The node's store, when persistent messages are kept.
    pub(crate) fn store(&self) -> Option<&SharedStore> {
        self.queues.store()
    }

    /// The node's destination rules (application prefixes, who may send where).
    pub(crate) fn rules(&self) -> &Rules {
        &self.rules
    }

    /// The node's counters, shared with every outbox.
    pub(crate) fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// The one way in: routes a message from `origin` to `to`; returns how many deliveries
    /// were queued now and the store write of a persistent queue message. Never waits.
    /// Refused as a whole (delivered nowhere) when `origin` may not send there, a queue is
    /// full, or the backplane cannot take a message other nodes need.
    pub(crate) fn route(
        &self,
        origin: Origin<'_>,
        to: To,
        payload: Payload,
    ) -> Result<Routed, RouteError> {
        if let To::Destination(destination) = &to {
            self.rules.permit(origin, Access::Send, destination)?;
        }
        let address = self.rules.resolve(origin, to)?;
        let mut payload = payload;
        let mut destination = shown_destination(&address);
        if matches!(origin, Origin::Server | Origin::Handler) {
            nul_free(&destination, &payload.headers)?;
        }
        if self.keeps(origin, &address) {
            // The destination header's value is a slice of the read buffer too.
            let also = &mut [&mut destination];
            stompbox_codec::detach(&mut payload.headers, &mut payload.body, also);
        }
        if let Address::Queue(_) = &address
            && self.remote_queues().is_none()
        {
            self.queues.apply_ttl(&mut payload.headers);
        }
        let message = self.message(destination, payload);
        if origin != Origin::Backplane {
            self.forward(&address, &message)?;
        }
        let mut out = Deliveries::new(&self.counters);
        let mut written = None;
        match address {
            Address::Topic(d) => self.topics.publish(d.name(), &message, &mut out),
            Address::Queue(d) => {
                if self.remote_queues().is_none() {
                    written = self.enqueue(&d, message)?;
                }
            }
            Address::User {
                user,
                path,
                session,
                ..
            } => self
                .users
                .publish(&user, &path, session, &message, &mut out),
            Address::Subscription(s) => {
                let mut delivery = Delivery::new(message, s.id);
                delivery.tag = s.tag;
                delivery.redelivered = s.redelivered;
                delivery.delivery_count = s.delivery_count;
                out.offer(&s.outbox, delivery, WhenFull::Policy);
            }
        }
        Ok(Routed {
            deliveries: out.finish(),
            written,
        })
    }

    /// A client's message that will be kept (in a queue, or in the backplane's buffer for other
    /// nodes) rather than delivered and dropped: its bytes are copied out of the session's read
    /// buffer first ([`stompbox_codec::detach`]), so that what the limits count is what is
    /// held. Messages from server code, handlers and other nodes are in buffers of their own.
    fn keeps(&self, origin: Origin<'_>, address: &Address) -> bool {
        matches!(origin, Origin::Client(_))
            && (matches!(address, Address::Queue(_)) || self.backplane.is_some())
    }

    /// A new message (node-unique id), counted as received.
    fn message(&self, destination: ByteString, payload: Payload) -> Arc<Message> {
        self.counters.messages_received.fetch_add(1, Relaxed);
        let id = self.next_message_id.fetch_add(1, Relaxed);
        Arc::new(Message::new(id, destination, payload.headers, payload.body))
    }

    /// The one place a routed message joins a queue of this node, and where a `persistent:true`
    /// one is written to the store when the node has one (`store.rs`). (Dead letters move
    /// between queues inside `queue_table.rs`.)
    fn enqueue(
        &self,
        destination: &Destination,
        message: Arc<Message>,
    ) -> Result<Written, RouteError> {
        let persist = self.queues.store().is_some() && is_persistent(message.headers());
        (self.queues.enqueue(destination.name(), message, persist))
            .map_err(|e| self.queue_error(e, destination))
    }

    /// Offers a message published on this node to the other nodes that need it, before any
    /// local delivery: a refusal refuses the whole send.
    /// The backplane's [`Backplane::room`], when there is a backplane.
    pub(crate) fn backplane_room(&self) -> Option<crate::backplane::Room> {
        self.backplane.as_ref()?.room()
    }

    /// Whether messages may leave this node (a backplane is set).
    pub(crate) fn has_backplane(&self) -> bool {
        self.backplane.is_some()
    }

    fn forward(&self, address: &Address, message: &Message) -> Result<(), RouteError> {
        let Some(backplane) = &self.backplane else {
            return Ok(());
        };
        let target = match address {
            Address::Topic(d) => Target::Topic(d.name().to_owned()),
            Address::Queue(d) if backplane.handles_queues() => Target::Queue(d.name().to_owned()),
            // A reply to one session stays here; anonymous users exist on one node only.
            Address::User {
                user: UserKey::Named(user),
                path,
                session: None,
                ..
            } => Target::User {
                user: user.to_string(),
                destination: path.to_string(),
            },
            _ => return Ok(()),
        };
        let relayed = Relayed {
            target,
            headers: message.headers().clone(),
            body: message.body().clone(),
        };
        backplane
            .forward(relayed)
            .map_err(|cause| RouteError::Unavailable {
                // As its sender wrote it: `/user/bob/queue/x` where subscribers see
                // `/user/queue/x`.
                destination: match address {
                    Address::User {
                        written: Some(d), ..
                    } => d.to_string(),
                    _ => message.destination().to_string(),
                },
                cause,
            })
    }

    /// The one way in for subscriptions: registers subscription `id` of `session` to
    /// `destination` where its kind is routed, or says that a handler answers it.
    pub(crate) fn subscribe(
        self: &Arc<Self>,
        session: &SessionRef,
        id: ByteString,
        destination: &Destination,
        prefetch: usize,
        principal: Option<&Principal>,
    ) -> Result<Subscribed, RouteError> {
        let origin = Origin::Client(principal);
        (self.rules).permit(origin, Access::Subscribe, destination)?;
        let subscriber = |id| Subscriber {
            session: session.id,
            subscription: id,
            outbox: session.outbox.clone(),
        };
        match self.rules.feed(destination)? {
            Feed::Topic(pattern) => {
                if !self.topics.subscribe(pattern, subscriber(id)) {
                    return Err(RouteError::TooManyWildcardSubscriptions {
                        destination: destination.to_string(),
                        max: self.topics.max_wildcards(),
                    });
                }
            }
            Feed::User(path) => self
                .users
                .subscribe(session.user.clone(), path, subscriber(id)),
            Feed::Queue(name) => match self.remote_queues() {
                // The queue lives in the backplane (RabbitMQ): it delivers through the sink.
                Some(backplane) => backplane.queue_subscribe(QueueConsumer {
                    queue: name.to_owned(),
                    session: session.id,
                    subscription: id.to_string(),
                    prefetch,
                    sink: QueueSink::new(RemoteConsumer {
                        router: self.clone(),
                        destination: destination.as_shared().clone(),
                        id,
                        outbox: session.outbox.clone(),
                    }),
                }),
                None => {
                    let consumer =
                        queue::Consumer::new(session.id, id, session.outbox.clone(), prefetch);
                    (self.queues.subscribe(name, consumer))
                        .map_err(|e| self.queue_error(e, destination))?;
                }
            },
            Feed::Handler => return Ok(Subscribed::ByHandler),
        }
        Ok(Subscribed::Routed)
    }

    /// Removes subscription `id` of `session`; a queue redelivers its unacknowledged messages.
    pub(crate) fn unsubscribe(&self, session: &SessionRef, id: &str, destination: &Destination) {
        match self.rules.feed(destination) {
            Ok(Feed::Topic(pattern)) => self.topics.unsubscribe(pattern, session.id, id),
            Ok(Feed::User(_)) => self.users.unsubscribe(&session.user, session.id, id),
            Ok(Feed::Queue(name)) => {
                match self.remote_queues() {
                    Some(backplane) => backplane.queue_unsubscribe(session.id, id),
                    None => self.queues.unsubscribe(name, session.id, id),
                }
                // Its unacknowledged messages went back to the queue: none may be written.
                session.outbox.remove_subscription(id);
            }
            // Application subscriptions are not routed: their handler replied once.
            Ok(Feed::Handler) | Err(_) => {}
        }
    }

    /// Settles queue deliveries of a subscription: ACK, NACK, or written in `auto` mode;
    /// returns the store write it made (removing an acknowledged persistent message), which
    /// the ACK's RECEIPT waits for. Other kinds have no redelivery, so nothing to do.
    pub(crate) fn settle(
        &self,
        session: u64,
        subscription: &str,
        destination: &Destination,
        tags: &[u64],
        outcome: Outcome,
    ) -> Written {
        let Ok(Feed::Queue(name)) = self.rules.feed(destination) else {
            return None;
        };
        match self.remote_queues() {
            Some(backplane) => {
                match outcome {
                    Outcome::Ack => backplane.queue_settle(session, subscription, tags, true),
                    Outcome::Nack => backplane.queue_settle(session, subscription, tags, false),
                    Outcome::Reject => backplane.queue_reject(session, subscription, tags),
                }
                None
            }
            None => (self.queues).settle(name, session, subscription, tags, outcome),
        }
    }

    /// Asks a queue to dispatch again: the subscriber's outbox refused a delivery and has since
    /// drained.
    pub(crate) fn redispatch(&self, destination: &Destination) {
        if let (Ok(Feed::Queue(name)), None) = (self.rules.feed(destination), self.remote_queues())
        {
            self.queues.dispatch(name);
        }
    }

    /// The backplane, when it holds the `/queue` destinations instead of this node.
    fn remote_queues(&self) -> Option<&Arc<dyn Backplane>> {
        self.backplane.as_ref().filter(|b| b.handles_queues())
    }

    fn queue_error(&self, error: QueueError, destination: &Destination) -> RouteError {
        match error {
            QueueError::Full(full) => RouteError::QueueFull {
                destination: destination.to_string(),
                bound: match full {
                    queue::Full::Queue => crate::QueueBound::Queue,
                    queue::Full::Node => crate::QueueBound::Node(self.queues.max_total_bytes()),
                    queue::Full::Stored => {
                        crate::QueueBound::Stored(self.queues.max_stored_messages())
                    }
                },
            },
            QueueError::TooManyQueues => RouteError::TooManyQueues {
                max: self.queues.max_queues(),
            },
        }
    }

    /// A fresh node-unique delivery tag (for topic deliveries on client-ack subscriptions).
    pub(crate) fn next_tag(&self) -> u64 {
        self.queues.next_tag()
    }

    /// The broker clock, in milliseconds since the UNIX epoch (`expires` headers).
    pub(crate) fn now_ms(&self) -> u64 {
        self.queues.now_ms()
    }

    /// One queue's counters (`/queue/<name>`).
    pub(crate) fn queue_stats(&self, name: &str) -> Option<QueueStats> {
        self.queues.stats(name)
    }

    /// Every queue's counters.
    pub(crate) fn queues(&self) -> Vec<(String, QueueStats)> {
        self.queues.all()
    }
}

/// The header that says how many times a queue's message was delivered before.
const DELIVERY_COUNT: &str = "x-delivery-count";

/// The router's side of a [`QueueSink`]: a backplane queue's deliveries to one subscription
/// enter routing like every other message.
struct RemoteConsumer {
    router: Arc<Router>,
    destination: ByteString,
    id: ByteString,
    outbox: Arc<Outbox>,
}

impl SinkTarget for RemoteConsumer {
    fn deliver(&self, mut headers: Headers, body: Bytes, redelivered: bool) -> Option<u64> {
        let tag = self.router.next_tag();
        // The backplane's own count (RabbitMQ's `x-delivery-count`), else what it says.
        let count = headers
            .get(DELIVERY_COUNT)
            .and_then(|c| c.trim().parse().ok());
        headers.retain(|name, _| name != DELIVERY_COUNT);
        let count = count.unwrap_or(u32::from(redelivered));
        let to = To::Subscription(SubscriptionAddress {
            destination: self.destination.clone(),
            id: self.id.clone(),
            outbox: self.outbox.clone(),
            tag: Some(tag),
            redelivered: count > 0,
            delivery_count: Some(count),
        });
        let payload = Payload::new(headers, body);
        let queued = self.router.route(Origin::Backplane, to, payload);
        (queued.map(|r| r.deliveries) == Ok(1)).then_some(tag)
    }

    fn describe(&self) -> (&ByteString, &ByteString) {
        (&self.destination, &self.id)
    }
}
