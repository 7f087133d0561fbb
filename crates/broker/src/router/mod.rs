//! Routing: which destination kinds are served, and where each kind's messages go.
//!
//! One place per destination kind: [`Router::check`] says what each kind accepts, and
//! `subscribe`/`unsubscribe`/`publish` dispatch on the kind. Queues slot in as new arms (and a
//! new sibling module of `topic.rs`). `/user/...` destinations live in `user.rs` (keyed by user,
//! so the session's driver calls it with its user); `/app/...` destinations are never routed to
//! subscribers: the session hands them to its handler task (`app/worker.rs`).

mod pattern;
mod topic;
mod user;

use std::sync::Arc;

pub(crate) use topic::Subscriber;
pub(crate) use user::{UserKey, UserRouter, split_user};

use crate::destination::{Destination, DestinationKind};
use crate::message::Message;
use crate::stats::Counters;

/// What a session wants to do with a destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    Subscribe,
    Publish,
}

/// The destination's kind is not served (yet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NotServed(pub(crate) DestinationKind);

/// The node's routing table, one part per destination kind.
#[derive(Debug, Default)]
pub(crate) struct Router {
    topics: topic::TopicRouter,
    pub(crate) users: UserRouter,
}

impl Router {
    /// Whether `operation` on `destination` is served. Pure, so the session state machine can
    /// decide (and answer ERROR) without touching shared state.
    pub(crate) fn check(destination: &Destination, operation: Operation) -> Result<(), NotServed> {
        let _ = operation;
        match destination.kind() {
            // `/app`: to the session's handlers; `/user`: `users` (client SENDs there are also
            // subject to `allow_client_user_sends`, checked by the session).
            DestinationKind::Topic | DestinationKind::App | DestinationKind::User => Ok(()),
            // Next issue: queues with acks.
            kind @ (DestinationKind::Queue | DestinationKind::Other) => Err(NotServed(kind)),
        }
    }

    pub(crate) fn subscribe(&self, destination: &Destination, subscriber: Subscriber) {
        match destination.kind() {
            DestinationKind::Topic => self.topics.subscribe(destination.name(), subscriber),
            _ => debug_assert!(false, "subscribe to an unserved kind passed check"),
        }
    }

    pub(crate) fn unsubscribe(&self, destination: &Destination, session: u64, subscription: &str) {
        match destination.kind() {
            DestinationKind::Topic => {
                self.topics
                    .unsubscribe(destination.name(), session, subscription)
            }
            // The session's own tables: `users` (keyed by its user) and its handler task.
            DestinationKind::User | DestinationKind::App => {}
            _ => debug_assert!(false, "unsubscribe from an unserved kind"),
        }
    }

    /// Routes a message; returns the number of deliveries queued.
    pub(crate) fn publish(
        &self,
        destination: &Destination,
        message: Arc<Message>,
        counters: &Counters,
    ) -> usize {
        match destination.kind() {
            DestinationKind::Topic => self.topics.publish(destination.name(), message, counters),
            _ => {
                debug_assert!(false, "publish to an unserved kind passed check");
                0
            }
        }
    }
}
