//! Routing: which destination kinds are served, and where each kind's messages go.
//!
//! One place per destination kind: [`Router::check`] says what each kind accepts, and
//! `subscribe`/`unsubscribe`/`publish` dispatch on the kind. `topic.rs` is the topic table;
//! `queue.rs` is one queue (bounded FIFO, consumers, in-flight deliveries), `queues.rs` the
//! node's table of them. `/user/...` destinations live in `user.rs` (keyed by user, so the
//! session's driver calls it with its user); `/app/...` destinations are never routed to
//! subscribers: the session hands them to its handler task (`app/worker.rs`).

mod pattern;
mod queue;
mod queues;
mod topic;
mod user;

use std::sync::Arc;

pub(crate) use queue::Outcome;
pub(crate) use queues::QueueError;
pub(crate) use topic::Subscriber;
pub(crate) use user::{UserKey, UserRouter, split_user};

use crate::backplane::{Backplane, Relayed, Target};
use crate::clock::Clock;
use crate::destination::{Destination, DestinationKind};
use crate::message::Message;
use crate::stats::{Counters, QueueStats};
use crate::{Config, QueueConfig};

/// What a session wants to do with a destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    Subscribe,
    Publish,
}

/// The destination's kind is not served (yet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NotServed(pub(crate) DestinationKind);

/// How a subscription consumes, beyond who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SubscribeOptions {
    /// Most unacknowledged deliveries (queues only).
    pub(crate) prefetch: usize,
}

/// The node's routing table, one part per destination kind.
#[derive(Debug)]
pub(crate) struct Router {
    topics: topic::TopicRouter,
    queues: queues::QueueRouter,
    pub(crate) users: UserRouter,
    /// Other nodes, when this one is part of a cluster.
    backplane: Option<Arc<dyn Backplane>>,
}

impl Default for Router {
    fn default() -> Self {
        Router::new(&Config::default(), None)
    }
}

impl std::fmt::Debug for dyn Backplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Backplane")
    }
}

impl Router {
    pub(crate) fn new(config: &Config, backplane: Option<Arc<dyn Backplane>>) -> Self {
        let queues: QueueConfig = config.queues.clone();
        Router {
            topics: topic::TopicRouter::new(backplane.clone()),
            queues: queues::QueueRouter::new(queues, Clock::new()),
            users: UserRouter::new(backplane.clone()),
            backplane,
        }
    }

    /// The backplane, when it holds the `/queue` destinations instead of this node.
    pub(crate) fn remote_queues(&self) -> Option<&Arc<dyn Backplane>> {
        self.backplane.as_ref().filter(|b| b.handles_queues())
    }

    /// Offers a message published on this node to the other nodes (when there are any).
    pub(crate) fn forward(
        &self,
        target: impl FnOnce() -> Target,
        message: &Message,
    ) -> Result<(), QueueError> {
        let Some(backplane) = &self.backplane else {
            return Ok(());
        };
        let relayed = Relayed {
            target: target(),
            headers: message.headers().clone(),
            body: message.body().clone(),
        };
        backplane.forward(relayed).map_err(QueueError::Relay)
    }

    /// Delivers a topic message to this node's subscribers only (it came from another node).
    pub(crate) fn publish_topic_local(
        &self,
        key: &str,
        message: Arc<Message>,
        counters: &Counters,
    ) -> usize {
        self.topics.publish(key, message, counters)
    }

    /// A fresh node-unique delivery tag (for topic deliveries on client-ack subscriptions).
    pub(crate) fn next_tag(&self) -> u64 {
        self.queues.next_tag()
    }

    /// The broker clock, in milliseconds since the UNIX epoch (`expires` headers).
    pub(crate) fn now_ms(&self) -> u64 {
        self.queues.now_ms()
    }

    /// Settles queue deliveries of a subscription: ACK, NACK, or written in `auto` mode.
    /// Other kinds have no redelivery, so nothing to do.
    pub(crate) fn settle(
        &self,
        destination: &Destination,
        session: u64,
        subscription: &str,
        tags: &[u64],
        outcome: Outcome,
        counters: &Counters,
    ) {
        if destination.kind() == DestinationKind::Queue {
            if let Some(backplane) = self.remote_queues() {
                let ack = outcome == Outcome::Ack;
                backplane.queue_settle(session, subscription, tags, ack);
                return;
            }
            self.queues.settle(
                destination.name(),
                session,
                subscription,
                tags,
                outcome,
                counters,
            );
        }
    }

    /// Asks a queue to dispatch again: the subscriber's outbox refused a delivery and has since
    /// drained.
    pub(crate) fn redispatch(&self, destination: &Destination, counters: &Counters) {
        if destination.kind() == DestinationKind::Queue && self.remote_queues().is_none() {
            self.queues.dispatch(destination.name(), counters);
        }
    }

    /// One queue's counters (`/queue/<name>`).
    pub(crate) fn queue_stats(&self, name: &str, counters: &Counters) -> Option<QueueStats> {
        self.queues.stats(name, counters)
    }

    /// Every queue's counters.
    pub(crate) fn queues(&self, counters: &Counters) -> Vec<(String, QueueStats)> {
        self.queues.all(counters)
    }

    /// Whether `operation` on `destination` is served. Pure, so the session state machine can
    /// decide (and answer ERROR) without touching shared state.
    pub(crate) fn check(destination: &Destination, operation: Operation) -> Result<(), NotServed> {
        let _ = operation;
        match destination.kind() {
            // `/app`: to the session's handlers; `/user`: `users` (client SENDs there are also
            // subject to `allow_client_user_sends`, checked by the session).
            DestinationKind::Topic
            | DestinationKind::Queue
            | DestinationKind::App
            | DestinationKind::User => Ok(()),
            kind @ DestinationKind::Other => Err(NotServed(kind)),
        }
    }

    pub(crate) fn subscribe(
        &self,
        destination: &Destination,
        subscriber: Subscriber,
        options: SubscribeOptions,
        counters: &Counters,
    ) -> Result<(), QueueError> {
        match destination.kind() {
            DestinationKind::Topic => self.topics.subscribe(destination.name(), subscriber),
            DestinationKind::Queue => {
                let consumer = queue::Consumer::new(
                    subscriber.session,
                    subscriber.subscription,
                    subscriber.outbox,
                    options.prefetch,
                );
                self.queues
                    .subscribe(destination.name(), consumer, counters)?;
            }
            _ => debug_assert!(false, "subscribe to an unserved kind passed check"),
        }
        Ok(())
    }

    /// Removes a subscription; on a queue, its unacknowledged messages are redelivered.
    pub(crate) fn unsubscribe(
        &self,
        destination: &Destination,
        session: u64,
        subscription: &str,
        counters: &Counters,
    ) {
        match destination.kind() {
            DestinationKind::Topic => {
                self.topics
                    .unsubscribe(destination.name(), session, subscription)
            }
            DestinationKind::Queue => match self.remote_queues() {
                Some(backplane) => backplane.queue_unsubscribe(session, subscription),
                None => {
                    self.queues
                        .unsubscribe(destination.name(), session, subscription, counters)
                }
            },
            // The session's own tables: `users` (keyed by its user) and its handler task.
            DestinationKind::User | DestinationKind::App => {}
            _ => debug_assert!(false, "unsubscribe from an unserved kind"),
        }
    }

    /// Routes a message; returns the number of deliveries queued now (a queue may deliver
    /// later; it counts its deliveries itself).
    pub(crate) fn publish(
        &self,
        destination: &Destination,
        message: Arc<Message>,
        counters: &Counters,
    ) -> Result<usize, QueueError> {
        match destination.kind() {
            DestinationKind::Topic => {
                let key = destination.name();
                self.forward(|| Target::Topic(key.to_owned()), &message)?;
                Ok(self.topics.publish(key, message, counters))
            }
            DestinationKind::Queue => {
                if self.remote_queues().is_some() {
                    let name = destination.name();
                    self.forward(|| Target::Queue(name.to_owned()), &message)?;
                    return Ok(0);
                }
                self.queues.publish(destination.name(), message, counters)?;
                Ok(0)
            }
            _ => {
                debug_assert!(false, "publish to an unserved kind passed check");
                Ok(0)
            }
        }
    }
}
