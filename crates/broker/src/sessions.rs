//! The node's connected sessions, as operators see them ([`Broker::sessions`],
//! [`Broker::close_session`]): registered when CONNECTED is sent, gone when the session ends.
//! Nothing here is on the data path: a session writes to its entry at CONNECTED, SUBSCRIBE and
//! UNSUBSCRIBE only; the outbox depth is read from the outbox when listed, and the traffic
//! cells (`stats::Traffic`) are written by the session alone and summed when read.
//!
//! [`Broker::sessions`]: crate::Broker::sessions
//! [`Broker::close_session`]: crate::Broker::close_session

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use stompbox_codec::ByteString;

use crate::TransportKind;
use crate::outbox::Outbox;
use crate::stats::{Counters, Traffic, TrafficTotals};

/// One connected session, as [`crate::Broker::sessions`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LiveSession {
    /// The session id (the CONNECTED frame's `session`).
    pub id: u64,
    /// The authenticated user; `None` for an anonymous session.
    pub user: Option<String>,
    /// The client's address, as the edge saw it (the forwarded one behind a trusted proxy).
    pub peer: Option<SocketAddr>,
    /// How it is carried.
    pub transport: TransportKind,
    /// The STOMP version negotiated.
    pub version: &'static str,
    /// When CONNECTED was sent.
    pub connected_at: SystemTime,
    /// Heart-beats: how often the server sends one, and within what it expects one (zero: off).
    pub heartbeat_send: Duration,
    /// See `heartbeat_send`.
    pub heartbeat_receive: Duration,
    /// Its subscriptions.
    pub subscriptions: usize,
    /// Deliveries waiting in its outbox, and their bytes.
    pub outbox_frames: usize,
    /// See `outbox_frames`.
    pub outbox_bytes: usize,
}

/// One subscription of a connected session, as [`crate::Broker::subscriptions`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LiveSubscription {
    /// The session's id.
    pub session: u64,
    /// The session's user; `None` for an anonymous session.
    pub user: Option<String>,
    /// The subscription's `id`.
    pub id: String,
    /// What it subscribed to, as the client wrote it (`/topic/chat.*`, `/user/queue/x`).
    pub destination: String,
    /// `auto`, `client` or `client-individual`.
    pub ack: &'static str,
    /// A durable topic subscription (kept while the session is away).
    pub durable: bool,
}

/// One subscription as its session's entry keeps it: (id, destination, ack, durable). The
/// strings share the session's own (`ByteString` is reference-counted): nothing is copied.
type Kept = (ByteString, ByteString, &'static str, bool);

/// A registered session: what does not change, its subscriptions, and its outbox.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) fixed: LiveSession,
    /// Written at SUBSCRIBE and UNSUBSCRIBE only, by the session.
    subscriptions: Mutex<Vec<Kept>>,
    pub(crate) outbox: Arc<Outbox>,
    /// Its frames and bytes, summed into the node's at each read of them.
    traffic: Arc<Traffic>,
}

impl Entry {
    fn kept(&self) -> std::sync::MutexGuard<'_, Vec<Kept>> {
        self.subscriptions.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn subscribed(
        &self,
        id: &ByteString,
        destination: &ByteString,
        ack: &'static str,
        durable: bool,
    ) {
        let mut kept = self.kept();
        // One at a time: most sessions hold one or two subscriptions, and a Vec's first growth
        // would reserve four.
        kept.reserve_exact(1);
        kept.push((id.clone(), destination.clone(), ack, durable));
    }

    pub(crate) fn unsubscribed(&self, id: &str) {
        let mut kept = self.kept();
        kept.retain(|(kept, ..)| &**kept != id);
        if kept.is_empty() {
            *kept = Vec::new();
        }
    }
}

/// Every connected session of the node.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    live: Mutex<HashMap<u64, Arc<Entry>>>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Entry>>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn register(
        &self,
        session: LiveSession,
        outbox: Arc<Outbox>,
        traffic: Arc<Traffic>,
    ) -> Arc<Entry> {
        let entry = Arc::new(Entry {
            fixed: session,
            subscriptions: Mutex::default(),
            outbox,
            traffic,
        });
        self.lock().insert(entry.fixed.id, entry.clone());
        entry
    }

    /// Removes a session that ended, its traffic moving to the node's counters of ended
    /// sessions under the same lock: a reader sees it in one place or the other, never both or
    /// neither, so the totals never go back.
    pub(crate) fn remove(&self, id: u64, counters: &Counters) {
        let mut live = self.lock();
        if let Some(entry) = live.remove(&id) {
            entry.traffic.depart(counters);
        }
    }

    /// The node's frames and bytes: ended sessions' and the live ones'.
    pub(crate) fn traffic(&self, counters: &Counters) -> TrafficTotals {
        let live = self.lock();
        let mut totals = TrafficTotals::departed(counters);
        for entry in live.values() {
            entry.traffic.add_into(&mut totals);
        }
        totals
    }

    /// Every session, by id.
    pub(crate) fn list(&self) -> Vec<LiveSession> {
        let entries: Vec<Arc<Entry>> = self.lock().values().cloned().collect();
        let mut all: Vec<LiveSession> = (entries.iter())
            .map(|e| {
                let (frames, bytes) = e.outbox.depth();
                LiveSession {
                    subscriptions: e.kept().len(),
                    outbox_frames: frames,
                    outbox_bytes: bytes,
                    ..e.fixed.clone()
                }
            })
            .collect();
        all.sort_by_key(|s| s.id);
        all
    }

    /// Every subscription of every connected session, by destination, then session.
    pub(crate) fn subscriptions(&self) -> Vec<LiveSubscription> {
        let entries: Vec<Arc<Entry>> = self.lock().values().cloned().collect();
        let mut all = Vec::new();
        for entry in entries {
            for (id, destination, ack, durable) in entry.kept().iter() {
                all.push(LiveSubscription {
                    session: entry.fixed.id,
                    user: entry.fixed.user.clone(),
                    id: id.to_string(),
                    destination: destination.to_string(),
                    ack,
                    durable: *durable,
                });
            }
        }
        all.sort_by(|a, b| {
            (&a.destination, a.session, &a.id).cmp(&(&b.destination, b.session, &b.id))
        });
        all
    }

    /// Asks session `id` to end with ERROR `closed by an operator`; false if there is none.
    pub(crate) fn close(&self, id: u64, reason: &str) -> bool {
        let entry = self.lock().get(&id).cloned();
        match entry {
            Some(entry) => {
                entry.outbox.request_close(reason);
                true
            }
            None => false,
        }
    }
}
