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
//!    └─ Address::Topic ──► topic_table.rs ──┐  (durable subscriptions: `keep` in their queues)
//!       Address::User  ──► user_table.rs  ──┼──► deliver.rs: Deliveries::offer ──► Outbox
//!                          (nobody there, inbox destination: `keep` in the user's inbox)
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
//!   letters) and `queue.rs` (one queue's state machine); `durable_table.rs` (durable topic
//!   subscriptions, each a node queue the topic table feeds).

mod address;
mod deliver;
mod durable_table;
mod internal_queue;
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
use self::durable_table::{DurableError, DurableTable, Ensured};
use self::internal_queue::Kind;
pub(crate) use self::queue_table::Written;
use self::queue_table::{QueueError, QueueTable};
use self::topic_table::{Subscriber, TopicTable};
use self::user_table::UserTable;
use crate::backplane::{
    Backplane, BackplaneUnavailable, HeldQueue, QueueConsumer, QueueSink, Relayed, SinkTarget,
    Target,
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

/// A session's subscription as the router is given it back (UNSUBSCRIBE, ACK, session end):
/// what it subscribed to and, for a durable subscription, that subscription's queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Subscription {
    pub(crate) destination: Destination,
    /// The node queue that feeds it (`internal_queue.rs`): a durable topic subscription's (its
    /// only feed), or its user's inbox for its user destination (beside the user table).
    pub(crate) queue: Option<Arc<str>>,
}

impl Subscription {
    /// The queue name of `user`'s durable subscription `name` (anonymous sessions: `None`).
    pub(crate) fn durable_queue(user: Option<&str>, name: &str) -> Arc<str> {
        durable_table::queue_name(user.unwrap_or(""), name)
    }

    /// The queue name of `user`'s inbox for user destination `path` (`/queue/x`).
    pub(crate) fn inbox_queue(user: &str, path: &str) -> Arc<str> {
        internal_queue::name(Kind::Inbox, user, path)
    }

    /// A durable topic subscription's.
    pub(crate) fn is_durable(&self) -> bool {
        self.fed_by(Kind::Durable).is_some()
    }

    fn fed_by(&self, kind: Kind) -> Option<&Arc<str>> {
        (self.queue.as_ref()).filter(|q| internal_queue::kind(q) == Some(kind))
    }
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
    /// A durable subscription, consumed like a queue; the store write of its definition
    /// (when it was created or changed), which a RECEIPT waits for.
    Durable(Written),
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
    /// A durable subscription cannot be created (or is not for this destination).
    Durable { destination: String, reason: String },
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
    durable: DurableTable,
    /// Which user destinations keep messages for absent users.
    inbox: crate::InboxConfig,
    /// Told of every message kept in an inbox.
    inbox_hook: Option<crate::message::InboxHook>,
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
        let queues = QueueTable::new(
            config.queues.clone(),
            &config.durable,
            &config.inbox,
            Clock::new(),
            counters.clone(),
        );
        Router {
            rules,
            topics: TopicTable::new(backplane.clone(), config.max_wildcard_subscriptions),
            queues,
            users: UserTable::new(backplane.clone(), &config.inbox),
            durable: DurableTable::new(config.durable.clone()),
            inbox: config.inbox.clone(),
            inbox_hook: None,
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
        self.queues.set_store(store.clone());
        let max_id = self.queues.restore()?;
        let definitions = store.read(durable_table::REGISTRY, 0, usize::MAX)?;
        for (queue, destination) in self.durable.restore(definitions) {
            let pattern = &destination["/topic/".len().min(destination.len())..];
            self.topics.subscribe_durable(pattern, queue);
        }
        // Message ids stay unique across the restart: the store is keyed by them.
        self.next_message_id = AtomicU64::new(max_id + 1);
        Ok(())
    }

    /// Calls `hook` with every message kept in an inbox.
    pub(crate) fn set_inbox_hook(&mut self, hook: Option<crate::message::InboxHook>) {
        self.inbox_hook = hook;
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
        if let Address::Queue(d) = &address
            && self.remote_queues().is_none()
        {
            self.queues.apply_ttl(d.name(), &mut payload.headers);
        }
        let message = self.message(destination, payload);
        if origin != Origin::Backplane {
            self.forward(&address, &message)?;
        }
        let mut out = Deliveries::new(&self.counters);
        let mut written = None;
        match address {
            Address::Topic(d) => {
                let mut durable = Vec::new();
                self.topics
                    .publish(d.name(), &message, &mut out, &mut durable);
                if !durable.is_empty() {
                    written = self.keep(Kind::Durable, &durable, &message);
                }
            }
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
            } => {
                let reached = (self.users).publish(&user, &path, session, &message, &mut out);
                if let Some(inbox) = self.inbox_for(&user, &path, session, reached) {
                    written = self.keep(Kind::Inbox, &[inbox], &message);
                    if let (Some(hook), UserKey::Named(name)) = (&self.inbox_hook, &user) {
                        (hook.0)(crate::Kept {
                            user: name.to_string(),
                            destination: message.destination().to_string(),
                            message_id: message.id(),
                            headers: (message.headers().iter())
                                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                                .collect(),
                            body: message.body().clone(),
                        });
                    }
                }
            }
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
        let kind = crate::stats::kind_index(destination.as_bytes());
        self.counters.received[kind].fetch_add(1, Relaxed);
        let id = self.next_message_id.fetch_add(1, Relaxed);
        let message = Message::new(id, destination, payload.headers, payload.body);
        Arc::new(match id % crate::stats::TIMED_ONE_IN {
            0 => message.timed_from(std::time::Instant::now()),
            _ => message,
        })
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

    /// The inbox a message for `user` at `path` waits in: when it reached none of the user's
    /// sessions (`reached`), was for the user rather than one session, and `path` has an inbox
    /// (`inbox.destinations`). Never with a backplane: another node may have delivered it (one
    /// that holds queues keeps it in its own inbox when no node did, [`Target::Inbox`]).
    fn inbox_for(
        &self,
        user: &UserKey,
        path: &str,
        session: Option<u64>,
        reached: usize,
    ) -> Option<Arc<str>> {
        let UserKey::Named(name) = user else {
            return None;
        };
        let keeps = reached == 0 && session.is_none() && self.backplane.is_none();
        (keeps && self.inbox.keeps(path)).then(|| Subscription::inbox_queue(name, path))
    }

    /// Keeps a message in the node's own queues of `kind` (the durable subscriptions a topic
    /// message matched, a user's inbox): one copy of its own (not a slice of a session's read
    /// buffer), with an `expires` from the kind's `max_age` unless it has one. A durable
    /// subscription's is stored with the node's store when `persistent:true`; an inbox's always
    /// (the operator chose to keep them). These queues drop their oldest when full, so this
    /// never refuses the sender.
    fn keep(&self, kind: Kind, queues: &[Arc<str>], message: &Message) -> Written {
        let expires = self.queues.expiry(kind);
        let kept = Arc::new(message.kept(expires.filter(|_| message.expires().is_none())));
        let persist =
            self.queues.store().is_some() && (kind == Kind::Inbox || is_persistent(kept.headers()));
        let mut written = None;
        for queue in queues {
            match self.queues.enqueue(queue, kept.clone(), persist) {
                Ok(w) => written = written.max(w),
                // Counted as dropped by the subscription; a hot topic must not flood the log.
                Err(e) => {
                    tracing::debug!(queue = ?internal_queue::shown(queue), error = ?e, "a message was not kept")
                }
            }
        }
        written
    }

    /// The backplane's [`Backplane::room`], when there is a backplane.
    pub(crate) fn backplane_room(&self) -> Option<crate::backplane::Room> {
        self.backplane.as_ref()?.room()
    }

    /// The backplane's [`Backplane::bound`], when there is a backplane.
    pub(crate) fn backplane_bound(&self) -> Option<crate::backplane::Room> {
        self.backplane.as_ref()?.bound()
    }

    /// Whether messages may leave this node (a backplane is set).
    pub(crate) fn has_backplane(&self) -> bool {
        self.backplane.is_some()
    }

    /// Offers a message published on this node to the other nodes that need it, before any
    /// local delivery: a refusal refuses the whole send.
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
            } => {
                let (user, destination) = (user.to_string(), path.to_string());
                match backplane.handles_queues() && self.inbox.keeps(path) {
                    true => Target::Inbox { user, destination },
                    false => Target::User { user, destination },
                }
            }
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

    /// The one way in for subscriptions: registers subscription `id` of `session` to what
    /// `subscription` names where its kind is routed, or says that a handler answers it. A
    /// durable one is created on first use (or started afresh when its destination changed),
    /// then consumed like a queue.
    pub(crate) fn subscribe(
        self: &Arc<Self>,
        session: &SessionRef,
        id: ByteString,
        subscription: &Subscription,
        prefetch: usize,
        principal: Option<&Principal>,
    ) -> Result<Subscribed, RouteError> {
        let destination = &subscription.destination;
        let origin = Origin::Client(principal);
        (self.rules).permit(origin, Access::Subscribe, destination)?;
        let subscriber = |id| Subscriber {
            session: session.id,
            subscription: id,
            outbox: session.outbox.clone(),
        };
        let feed = self.rules.feed(destination)?;
        if let Some(queue) = subscription.fed_by(Kind::Durable) {
            let Feed::Topic(pattern) = feed else {
                return Err(RouteError::Durable {
                    destination: destination.to_string(),
                    reason: "durable subscriptions are to /topic destinations".to_owned(),
                });
            };
            if let Some(backplane) = self.remote_queues() {
                // Held in the backplane (RabbitMQ), so that any node serves it. The node's
                // counts of them do not apply (the cluster's are RabbitMQ's); off is off.
                if self.durable.is_off() {
                    return Err(RouteError::Durable {
                        destination: destination.to_string(),
                        reason: "durable subscriptions are off on this node".to_owned(),
                    });
                }
                let held = held_durable(queue, pattern, destination)?;
                (self.hold(backplane, held, session, destination, id, prefetch)).map_err(
                    |cause| RouteError::Durable {
                        destination: destination.to_string(),
                        reason: cause.to_string(),
                    },
                )?;
                return Ok(Subscribed::Durable(None));
            }
            let written = self.ensure_durable(queue, principal, pattern, destination)?;
            let consumer = queue::Consumer::new(session.id, id, session.outbox.clone(), prefetch);
            (self.queues.subscribe(queue, consumer))
                .map_err(|e| self.queue_error(e, destination))?;
            return Ok(Subscribed::Durable(written));
        }
        match feed {
            Feed::Topic(pattern) => {
                if !self.topics.subscribe(pattern, subscriber(id)) {
                    return Err(self.too_many_wildcards(destination));
                }
            }
            Feed::User(path) => {
                (self.users).subscribe(session.user.clone(), path, subscriber(id.clone()));
                // What waited in the user's inbox goes first, in order, then live messages.
                let inbox = subscription.fed_by(Kind::Inbox);
                if let (Some(inbox), Some(backplane)) = (inbox, self.remote_queues()) {
                    // The inbox is the backplane's (RabbitMQ): it drains it into the sink.
                    let (_, user, _) =
                        internal_queue::parts(inbox).unwrap_or((Kind::Inbox, "", ""));
                    let held = HeldQueue::Inbox {
                        user: user.to_owned(),
                        destination: path.to_owned(),
                    };
                    (self.hold(backplane, held, session, destination, id, prefetch)).map_err(
                        |cause| RouteError::Unavailable {
                            destination: destination.to_string(),
                            cause,
                        },
                    )?;
                } else if let Some(inbox) = inbox
                    && self.queues.has_waiting(inbox)
                {
                    let consumer =
                        queue::Consumer::new(session.id, id, session.outbox.clone(), prefetch);
                    (self.queues.subscribe(inbox, consumer))
                        .map_err(|e| self.queue_error(e, destination))?;
                }
            }
            Feed::Queue(name) => match self.remote_queues() {
                // The queue lives in the backplane (RabbitMQ): it delivers through the sink.
                Some(backplane) => {
                    let held = HeldQueue::Queue(name.to_owned());
                    (self.hold(backplane, held, session, destination, id, prefetch)).map_err(
                        |cause| RouteError::Unavailable {
                            destination: destination.to_string(),
                            cause,
                        },
                    )?
                }
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

    /// Subscription `id` of `session` to `destination` consumes `held`, a queue the backplane
    /// holds, which delivers through a sink into the session's outbox.
    fn hold(
        self: &Arc<Self>,
        backplane: &Arc<dyn Backplane>,
        held: HeldQueue,
        session: &SessionRef,
        destination: &Destination,
        id: ByteString,
        prefetch: usize,
    ) -> Result<(), BackplaneUnavailable> {
        backplane.queue_subscribe(QueueConsumer {
            queue: held,
            session: session.id,
            subscription: id.to_string(),
            prefetch,
            sink: QueueSink::new(RemoteConsumer {
                router: self.clone(),
                destination: destination.as_shared().clone(),
                id,
                outbox: session.outbox.clone(),
            }),
        })
    }

    fn too_many_wildcards(&self, destination: &Destination) -> RouteError {
        RouteError::TooManyWildcardSubscriptions {
            destination: destination.to_string(),
            max: self.topics.max_wildcards(),
        }
    }

    /// Finds or creates the durable subscription whose queue is `queue`, feeding it from
    /// `pattern`; its definition is stored when the node has a store.
    fn ensure_durable(
        &self,
        queue: &Arc<str>,
        principal: Option<&Principal>,
        pattern: &str,
        destination: &Destination,
    ) -> Result<Written, RouteError> {
        let refused = |reason: String| RouteError::Durable {
            destination: destination.to_string(),
            reason,
        };
        let user = principal.map_or("", |p| p.name.as_str());
        if user.contains('\0') {
            return Err(refused("the user name holds a NUL".to_owned()));
        }
        let name = internal_queue::parts(queue).map_or("", |(_, _, name)| name);
        let (found, record) = (self.durable)
            .ensure(queue, user, name, destination.as_str())
            .map_err(|e| {
                refused(match e {
                    DurableError::Off => "durable subscriptions are off on this node".to_owned(),
                    DurableError::TooMany(max) => {
                        format!("too many durable subscriptions (max {max})")
                    }
                    DurableError::TooManyForUser(max) => {
                        format!("too many durable subscriptions for this user (max {max})")
                    }
                })
            })?;
        match &found {
            Ensured::Same => {}
            Ensured::New | Ensured::Moved(_) => {
                if let Ensured::Moved(old) = &found {
                    let old = old.strip_prefix("/topic/").unwrap_or(old);
                    self.topics.unsubscribe_durable(old, queue);
                    let _ = self.queues.clear(queue);
                }
                if !self.topics.subscribe_durable(pattern, queue.clone()) {
                    // Not created, or (moved) gone: its stored definition too.
                    let removed = self.durable.remove(queue);
                    if let (Some((_, position)), Some(store)) = (removed, self.queues.store())
                        && matches!(found, Ensured::Moved(_))
                    {
                        store.remove(durable_table::REGISTRY, position);
                    }
                    return Err(self.too_many_wildcards(destination));
                }
            }
        }
        Ok(match (record, self.queues.store()) {
            (Some(record), Some(store)) => {
                Some(store.put(durable_table::REGISTRY, record.position, record.bytes))
            }
            _ => None,
        })
    }

    /// Removes subscription `id` of `session`; a queue redelivers its unacknowledged messages.
    /// `forget` (UNSUBSCRIBE with `durable:true`) also removes a durable subscription, with
    /// the messages it kept.
    pub(crate) fn unsubscribe(
        &self,
        session: &SessionRef,
        id: &str,
        subscription: &Subscription,
        forget: bool,
    ) -> Written {
        if let Some(queue) = subscription.fed_by(Kind::Durable) {
            if let Some(backplane) = self.remote_queues() {
                backplane.queue_unsubscribe(session.id, id);
                session.outbox.remove_subscription(id);
                if forget {
                    let pattern = match self.rules.feed(&subscription.destination) {
                        Ok(Feed::Topic(pattern)) => pattern,
                        _ => "",
                    };
                    let destination = &subscription.destination;
                    if let Ok(held) = held_durable(queue, pattern, destination) {
                        backplane.queue_remove(held);
                    }
                }
                return None;
            }
            self.queues.unsubscribe(queue, session.id, id);
            session.outbox.remove_subscription(id);
            return if forget {
                self.remove_durable(queue)
            } else {
                None
            };
        }
        match self.rules.feed(&subscription.destination) {
            Ok(Feed::Topic(pattern)) => self.topics.unsubscribe(pattern, session.id, id),
            Ok(Feed::User(_)) => {
                self.users.unsubscribe(&session.user, session.id, id);
                if let Some(inbox) = subscription.fed_by(Kind::Inbox) {
                    // What it was given from the inbox and did not acknowledge waits again.
                    match self.remote_queues() {
                        Some(backplane) => backplane.queue_unsubscribe(session.id, id),
                        None => self.queues.unsubscribe(inbox, session.id, id),
                    }
                    session.outbox.remove_subscription(id);
                }
            }
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
        None
    }

    /// Removes a durable subscription: from the topic table, its queue's waiting messages,
    /// its stored definition. Returns the store write a RECEIPT waits for.
    fn remove_durable(&self, queue: &Arc<str>) -> Written {
        let (definition, position) = self.durable.remove(queue)?;
        let destination = &*definition.destination;
        let pattern = destination.strip_prefix("/topic/").unwrap_or(destination);
        self.topics.unsubscribe_durable(pattern, queue);
        let written = self.queues.clear(queue).and_then(|(_, written)| written);
        let store = self.queues.store()?;
        Some(
            written
                .unwrap_or(0)
                .max(store.remove(durable_table::REGISTRY, position)),
        )
    }

    /// Settles queue deliveries of a subscription: ACK, NACK, or written in `auto` mode;
    /// returns the store write it made (removing an acknowledged persistent message), which
    /// the ACK's RECEIPT waits for. Other kinds have no redelivery, so nothing to do.
    pub(crate) fn settle(
        &self,
        session: u64,
        id: &str,
        subscription: &Subscription,
        tags: &[u64],
        outcome: Outcome,
    ) -> Written {
        if let Some(backplane) = self.holder(subscription) {
            match outcome {
                Outcome::Ack => backplane.queue_settle(session, id, tags, true),
                Outcome::Nack => backplane.queue_settle(session, id, tags, false),
                Outcome::Reject => backplane.queue_reject(session, id, tags),
            }
            return None;
        }
        if let Some(queue) = &subscription.queue {
            // A durable subscription's queue, or the inbox (whose deliveries are the only
            // ones with tags it knows).
            return (self.queues).settle(queue, session, id, tags, outcome);
        }
        let Ok(Feed::Queue(name)) = self.rules.feed(&subscription.destination) else {
            return None;
        };
        (self.queues).settle(name, session, id, tags, outcome)
    }

    /// The backplane, when it holds what feeds `subscription` (a `/queue`, a durable
    /// subscription, a user's inbox) instead of this node.
    fn holder(&self, subscription: &Subscription) -> Option<&Arc<dyn Backplane>> {
        let backplane = self.remote_queues()?;
        let held = subscription.queue.is_some()
            || matches!(
                self.rules.feed(&subscription.destination),
                Ok(Feed::Queue(_))
            );
        held.then_some(backplane)
    }

    /// Asks a queue to dispatch again: the subscriber's outbox refused a delivery and has since
    /// drained.
    pub(crate) fn redispatch(&self, subscription: &Subscription) {
        if self.holder(subscription).is_some() {
            // The backplane bounds what it delivers by the prefetch; nothing waits here.
            return;
        }
        if let Some(queue) = &subscription.queue {
            return self.queues.dispatch(queue);
        }
        if let (Ok(Feed::Queue(name)), None) = (
            self.rules.feed(&subscription.destination),
            self.remote_queues(),
        ) {
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

    /// Drops every message waiting in queue `/queue/<name>` of this node; how many.
    pub(crate) fn purge(&self, name: &str) -> Option<usize> {
        self.queues.clear(name).map(|(cleared, _)| cleared)
    }

    /// Deletes queue `/queue/<name>` of this node; how many messages it dropped.
    pub(crate) fn delete_queue(&self, name: &str) -> Result<usize, crate::DeleteQueueError> {
        self.queues.delete(name)
    }

    /// Moves every message waiting in `/queue/<from>` to `/queue/<to>`; how many.
    pub(crate) fn redrive(&self, from: &str, to: &str) -> Option<usize> {
        let destination = ByteString::from(format!("/queue/{to}"));
        self.queues.redrive(from, to, &destination)
    }
}

/// The durable subscription whose node queue name is `queue`, as the backplane holds it.
fn held_durable(
    queue: &str,
    pattern: &str,
    destination: &Destination,
) -> Result<HeldQueue, RouteError> {
    let (_, user, name) = internal_queue::parts(queue).unwrap_or((Kind::Durable, "", ""));
    if user.contains('\0') {
        return Err(RouteError::Durable {
            destination: destination.to_string(),
            reason: "the user name holds a NUL".to_owned(),
        });
    }
    Ok(HeldQueue::Durable {
        user: user.to_owned(),
        name: name.to_owned(),
        topic: pattern.to_owned(),
    })
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
    fn deliver(
        &self,
        topic: Option<&str>,
        mut headers: Headers,
        body: Bytes,
        redelivered: bool,
    ) -> Option<u64> {
        let tag = self.router.next_tag();
        // The backplane's own count (RabbitMQ's `x-delivery-count`), else what it says.
        let count = headers
            .get(DELIVERY_COUNT)
            .and_then(|c| c.trim().parse().ok());
        headers.retain(|name, _| name != DELIVERY_COUNT);
        let count = count.unwrap_or(u32::from(redelivered));
        let destination = match topic {
            Some(topic) => ByteString::from(format!("/topic/{topic}")),
            None => self.destination.clone(),
        };
        let to = To::Subscription(SubscriptionAddress {
            destination,
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
