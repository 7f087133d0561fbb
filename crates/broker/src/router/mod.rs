//! Routing: which destination kinds are served, and where each kind's messages go.
//!
//! One place per destination kind: [`Router::check`] says what each kind accepts, and
//! `subscribe`/`unsubscribe`/`publish` dispatch on the kind. Queues, `/app` handlers and
//! `/user` destinations slot in as new arms (and new sibling modules of `topic.rs`).

mod pattern;
mod topic;

use std::sync::Arc;

pub(crate) use topic::Subscriber;

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
}

impl Router {
    /// Whether `operation` on `destination` is served. Pure, so the session state machine can
    /// decide (and answer ERROR) without touching shared state.
    pub(crate) fn check(destination: &Destination, operation: Operation) -> Result<(), NotServed> {
        let _ = operation;
        match destination.kind() {
            DestinationKind::Topic => Ok(()),
            // Next issues: queues with acks, `/app` handlers, `/user` destinations.
            kind @ (DestinationKind::Queue
            | DestinationKind::App
            | DestinationKind::User
            | DestinationKind::Other) => Err(NotServed(kind)),
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
