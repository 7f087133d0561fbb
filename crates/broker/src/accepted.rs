//! [`Accepted`]: a connection from the moment an edge accepts its socket, before any HTTP
//! request, PROXY header, TLS handshake or STOMP frame.
//!
//! A socket costs a descriptor and memory from `accept`, so it counts from then: against the
//! node's `max_connections` and, once the edge knows the client's address, against the
//! per-address limits of `[broker.admission]`. The session that eventually serves it keeps the
//! same place (nothing is counted twice), and its `connect_timeout` runs from the accept, so
//! the HTTP request head, the upgrade and CONNECT share one deadline. An edge that accepts
//! nothing itself (an in-memory pipe, an application's own axum server) needs none of this:
//! [`Broker::serve`](crate::Broker::serve) takes the place itself.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::time::Instant;

use crate::Broker;
use crate::error::ProtocolError;

#[derive(Debug, Default)]
struct Admission {
    /// The address was counted (`admit`).
    admitted: bool,
    /// The address counted against `admission.max_per_address` while the connection lives.
    held: Option<IpAddr>,
    /// Why the connection will not be served, decided when it was counted: the session
    /// answers with this ERROR instead of serving, and HTTP edges with 503. Boxed: every
    /// connection holds an `Accepted` for its life, and almost none are refused.
    refusal: Option<Box<ProtocolError>>,
}

/// One accepted connection's place among the node's connections; released when the last
/// handle to it is dropped (the edge's and the session's). See the module documentation.
#[derive(Debug)]
pub struct Accepted {
    broker: Broker,
    at: Instant,
    admission: Mutex<Admission>,
    /// The session is connected: pre-CONNECT limits no longer apply.
    connected: AtomicBool,
}

impl Accepted {
    /// Counts a connection accepted now against `max_connections`.
    pub(crate) fn new(broker: &Broker) -> Accepted {
        let shared = &*broker.shared;
        let counters = shared.router.counters();
        let live = counters.connections.fetch_add(1, Relaxed) + 1;
        let max = shared.config.max_connections;
        let refusal = (live > max).then(|| Box::new(ProtocolError::TooManyConnections { max }));
        Accepted {
            broker: broker.clone(),
            at: Instant::now(),
            admission: Mutex::new(Admission {
                refusal,
                ..Admission::default()
            }),
            connected: AtomicBool::new(false),
        }
    }

    /// Counts the connection against the limits of `[broker.admission]` for the client's
    /// address `ip` (after a PROXY header, the client's rather than the load balancer's): its
    /// connection rate and, while it lives, `max_per_address`. An error (also kept as the
    /// connection's refusal) when the address is over either; edges with expensive work ahead
    /// (a TLS handshake) then drop the connection at once. Counts once: later calls return the
    /// first outcome.
    pub fn admit(&self, ip: IpAddr) -> Result<(), ProtocolError> {
        let mut state = lock(&self.admission);
        if state.admitted || state.refusal.is_some() {
            return state.refusal.as_deref().cloned().map_or(Ok(()), Err);
        }
        state.admitted = true;
        let shared = &*self.broker.shared;
        let ip = ip.to_canonical();
        match shared.admission.admit_address(ip, Instant::now()) {
            Ok(held) => {
                state.held = held.then_some(ip);
                Ok(())
            }
            Err(error) => {
                state.refusal = Some(Box::new(error.clone()));
                Err(error)
            }
        }
    }

    /// Why this connection will not be served (the node was full when it was accepted, or its
    /// address is over a limit), if it will not: HTTP edges answer 503 with this message.
    pub fn refusal(&self) -> Option<ProtocolError> {
        lock(&self.admission).refusal.as_deref().cloned()
    }

    /// When the socket was accepted: `connect_timeout` runs from here.
    pub fn accepted_at(&self) -> Instant {
        self.at
    }

    /// True once the session sent CONNECTED: an edge stops applying its pre-CONNECT limits.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Relaxed)
    }

    /// Marks the connection as carrying a connected session, so that its edge stops applying
    /// pre-CONNECT limits. The session does this itself at CONNECTED; an edge calls it for a
    /// connection that carries requests of a session counted elsewhere (the HTTP requests of a
    /// SockJS polling session, once that session is connected).
    pub fn set_connected(&self) {
        self.connected.store(true, Relaxed);
    }

    /// Counts this connection in `refused_connections`, for an edge that answers its
    /// [`refusal`](Accepted::refusal) itself (an HTTP 503) instead of passing it to a session.
    pub fn count_refused(&self) {
        let counters = self.broker.shared.router.counters();
        counters.refused_connections.fetch_add(1, Relaxed);
    }
}

impl Drop for Accepted {
    fn drop(&mut self) {
        let shared = &*self.broker.shared;
        shared.router.counters().connections.fetch_sub(1, Relaxed);
        if let Some(ip) = lock(&self.admission).held.take() {
            shared.admission.release_address(ip);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
