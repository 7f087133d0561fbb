//! Lifecycle events as an async stream: [`Broker::events`](crate::Broker::events).
//!
//! Backed by a tokio broadcast channel of [`EVENT_CAPACITY`] events: publishing never waits, and
//! a consumer that falls behind gets [`Event::Lagged`] with the number it missed instead of
//! slowing the broker. Events are only built while someone listens.

use tokio::sync::broadcast;

use crate::{CloseReason, SessionInfo};

/// Events buffered for the slowest listener before it starts missing them: about a second of a
/// busy node's connects and subscribes, a few hundred KiB at most.
pub const EVENT_CAPACITY: usize = 1024;

/// Something that happened to a session.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// CONNECTED was sent.
    Connected {
        /// The session.
        session: SessionInfo,
    },
    /// A subscription is in effect.
    Subscribed {
        /// The session.
        session: SessionInfo,
        /// The subscription id.
        subscription: String,
        /// The destination, as the client wrote it.
        destination: String,
    },
    /// A subscription was removed by UNSUBSCRIBE (not when the session ends).
    Unsubscribed {
        /// The session.
        session: SessionInfo,
        /// The subscription id.
        subscription: String,
        /// The destination it was for.
        destination: String,
    },
    /// A connected session ended.
    Disconnected {
        /// The session.
        session: SessionInfo,
        /// Why.
        reason: CloseReason,
    },
    /// This listener fell behind and missed that many events.
    Lagged {
        /// How many.
        missed: u64,
    },
}

/// The sending side, in the broker's shared state.
#[derive(Debug)]
pub(crate) struct Events(broadcast::Sender<Event>);

impl Default for Events {
    fn default() -> Self {
        Events(broadcast::channel(EVENT_CAPACITY).0)
    }
}

impl Events {
    /// A new listener ([`Broker::events`](crate::Broker::events)).
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.0.subscribe()
    }

    /// True while at least one listener exists.
    pub(crate) fn listening(&self) -> bool {
        self.0.receiver_count() > 0
    }

    /// Publishes the event `make` builds, if anyone listens; never waits.
    pub(crate) fn emit(&self, make: impl FnOnce() -> Event) {
        if self.0.receiver_count() > 0 {
            let _ = self.0.send(make());
        }
    }
}
