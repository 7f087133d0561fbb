//! Sending from anywhere: [`Broker::send`] and [`Broker::send_to_user`] (Spring's
//! `SimpMessagingTemplate`), and the routing of handler replies.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use stompbox_codec::ByteString;

use super::AppRoutes;
use super::reply::{IntoPayload, Payload};
use crate::Broker;
use crate::backplane::Target;
use crate::destination::{Destination, DestinationError, DestinationKind};
use crate::message::Message;
use crate::router::{QueueError, UserKey, split_user};

/// A message could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The destination text names nothing.
    #[error(transparent)]
    InvalidDestination(#[from] DestinationError),
    /// The destination's kind cannot be sent to from the server side.
    #[error("{destination:?}: {reason}")]
    NotSendable {
        /// The destination.
        destination: String,
        /// Why.
        reason: &'static str,
    },
    /// The payload could not be serialized.
    #[error("payload not serializable: {0}")]
    Payload(String),
    /// The queue is at its bound and its overflow policy is `reject`.
    #[error("queue full: {destination}")]
    QueueFull {
        /// The queue.
        destination: String,
    },
    /// Sending would create a queue beyond `queues.max_queues`.
    #[error("too many queues (max {max})")]
    TooManyQueues {
        /// The limit.
        max: usize,
    },
    /// The backplane (RabbitMQ relay) refused the message: its buffer is full or it stopped.
    /// The message was delivered nowhere.
    #[error(transparent)]
    RelayUnavailable(#[from] crate::backplane::Refused),
}

impl Broker {
    /// Sends a message to `destination` from any task (an axum route, a timer): `/topic/...`
    /// reaches every matching subscriber, `/queue/...` one consumer (now or when one has room),
    /// `/user/{name}/queue/x` every session of user `name` subscribed to `/user/queue/x`.
    /// Returns how many deliveries were queued right now (0 for a queue, which counts its own
    /// deliveries). Never waits.
    pub fn send(&self, destination: &str, payload: impl IntoPayload) -> Result<usize, SendError> {
        let payload = payload
            .into_payload()
            .map_err(|e| SendError::Payload(e.to_string()))?;
        let destination = self
            .app_routes()
            .rules
            .classify(Destination::parse(destination)?);
        let not = |reason| SendError::NotSendable {
            destination: destination.to_string(),
            reason,
        };
        match destination.kind() {
            DestinationKind::Topic | DestinationKind::Queue => {
                let shared = &*self.shared;
                let message = self.new_message(destination.as_shared().clone(), payload);
                let queued = shared
                    .router
                    .publish(&destination, message, &shared.counters)
                    .map_err(|e| match e {
                        QueueError::Full => SendError::QueueFull {
                            destination: destination.to_string(),
                        },
                        QueueError::TooManyQueues => SendError::TooManyQueues {
                            max: shared.config.queues.max_queues,
                        },
                        QueueError::Relay(refused) => SendError::RelayUnavailable(refused),
                    })?;
                shared
                    .counters
                    .messages_delivered
                    .fetch_add(queued as u64, Relaxed);
                Ok(queued)
            }
            DestinationKind::User => {
                let (user, rest) = split_user(destination.name())
                    .ok_or(not("a user destination is /user/{name}/{destination}"))?;
                self.publish_user(&UserKey::Named(user.into()), rest, None, payload)
            }
            DestinationKind::App => Err(not("application destinations are for clients")),
            DestinationKind::Other => Err(not("this destination kind is not served")),
        }
    }

    /// Sends to every session of `user` subscribed to `/user<destination>`; `destination` is
    /// written without the `/user` prefix (`/queue/notifications`). Returns how many
    /// deliveries were queued (zero when the user is offline).
    pub fn send_to_user(
        &self,
        user: &str,
        destination: &str,
        payload: impl IntoPayload,
    ) -> Result<usize, SendError> {
        if !destination.starts_with('/') || destination.len() < 2 {
            return Err(SendError::NotSendable {
                destination: destination.to_owned(),
                reason: "a user destination starts with '/', e.g. /queue/notifications",
            });
        }
        let payload = payload
            .into_payload()
            .map_err(|e| SendError::Payload(e.to_string()))?;
        self.publish_user(&UserKey::Named(user.into()), destination, None, payload)
    }

    pub(crate) fn app_routes(&self) -> &AppRoutes {
        &self.shared.app
    }

    /// A new message (node-unique id), counted as received.
    pub(crate) fn new_message(&self, destination: ByteString, payload: Payload) -> Arc<Message> {
        let shared = &*self.shared;
        shared.counters.messages_received.fetch_add(1, Relaxed);
        let id = shared.next_message_id.fetch_add(1, Relaxed);
        Arc::new(Message::new(id, destination, payload.headers, payload.body))
    }

    /// To `user`'s subscriptions to `/user<destination>` (only `session`'s when given). A
    /// send to every session of a named user also goes to the other nodes, first.
    pub(crate) fn publish_user(
        &self,
        user: &UserKey,
        destination: &str,
        session: Option<u64>,
        payload: Payload,
    ) -> Result<usize, SendError> {
        let shared = &*self.shared;
        let shown = ByteString::from(format!("/user{destination}"));
        let message = self.new_message(shown, payload);
        if let (UserKey::Named(name), None) = (user, session) {
            let target = || Target::User {
                user: name.to_string(),
                destination: destination.to_owned(),
            };
            shared
                .router
                .forward(target, &message)
                .map_err(|e| match e {
                    QueueError::Relay(refused) => SendError::RelayUnavailable(refused),
                    _ => unreachable!("forwarding only fails with a refusal"),
                })?;
        }
        let queued =
            shared
                .router
                .users
                .publish(user, destination, session, message, &shared.counters);
        shared
            .counters
            .messages_delivered
            .fetch_add(queued as u64, Relaxed);
        Ok(queued)
    }
}
