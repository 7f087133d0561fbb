//! The seam with a backplane that joins several nodes into one broker (the RabbitMQ relay in
//! `stompbox-relay`), without the core knowing how the backplane talks.
//!
//! Three flows cross it, none of which ever waits:
//! - **Interest**: the router calls [`Backplane::interest`] when the first local subscriber of a
//!   topic pattern (or the first local `/user` subscription of a named user) arrives, and again
//!   when the last one leaves, under its table lock so the calls for one key come in order.
//! - **Forward**: every `/topic` publish and every `/user` send to a named user (not a reply to
//!   one session) is offered to [`Backplane::forward`] *before* local delivery; a refusal
//!   ([`Refused`]) refuses the send as a whole, so nothing is half delivered.
//! - **Inject**: what other nodes published comes back through [`Broker::inject`], which routes
//!   to local subscribers only and never forwards again (no echo, no loop).
//!
//! A backplane must answer both calls at once (a short std lock, a `try_send`), since they run on
//! publishers' and subscribers' tasks, sometimes under a router lock.

use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use stompbox_codec::{ByteString, Headers};

use crate::Broker;
use crate::router::UserKey;

/// Where a relayed message goes, on every node.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// `/topic/<key>`: the routing key (the name after `/topic/`).
    Topic(String),
    /// Every session of `user` subscribed to `/user<destination>` (`/queue/x`).
    User {
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
}

/// One message crossing the backplane: out of this node ([`Backplane::forward`]) or into it
/// ([`Broker::inject`]).
#[derive(Clone, Debug)]
pub struct Relayed {
    /// Where it goes.
    pub target: Target,
    /// The forwarded headers (`content-type`, user headers); frame headers already removed.
    pub headers: Headers,
    /// The body, shared with local deliveries.
    pub body: Bytes,
}

/// The backplane refused a message (its buffer is full or it is shut down): the send fails.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("relay unavailable: {reason}")]
pub struct Refused {
    /// Why, for the ERROR frame or the log.
    pub reason: String,
}

/// A transport-agnostic backplane, set with [`crate::BrokerBuilder::backplane`].
pub trait Backplane: Send + Sync + 'static {
    /// Local interest in `interest` began (`present`) or ended. Must not wait.
    fn interest(&self, interest: Interest, present: bool);
    /// Offers a message published on this node to the other nodes. Must not wait; a refusal
    /// refuses the publish.
    fn forward(&self, message: Relayed) -> Result<(), Refused>;
}

impl Broker {
    /// Routes a message that another node published to this node's subscribers only: it is
    /// not forwarded again. Returns how many deliveries were queued.
    pub fn inject(&self, message: Relayed) -> usize {
        let shared = &*self.shared;
        let payload = crate::Payload {
            headers: message.headers,
            body: message.body,
        };
        let queued = match message.target {
            Target::Topic(key) => {
                let destination = ByteString::from(format!("/topic/{key}"));
                let message = self.new_message(destination, payload);
                shared
                    .router
                    .publish_topic_local(&key, message, &shared.counters)
            }
            Target::User { user, destination } => {
                let shown = ByteString::from(format!("/user{destination}"));
                let message = self.new_message(shown, payload);
                let user = UserKey::Named(user.into());
                (shared.router.users).publish(&user, &destination, None, message, &shared.counters)
            }
        };
        shared
            .counters
            .messages_delivered
            .fetch_add(queued as u64, Relaxed);
        queued
    }
}
