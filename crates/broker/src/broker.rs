//! [`Broker`]: the cheap, cloneable handle to one node, and everything it offers: serving a
//! session, sending from server code, taking other nodes' messages, events, stats, shutdown.
//! [`BrokerBuilder`] (`builder.rs`) makes one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use futures::SinkExt;
use futures::stream::BoxStream;
use stompbox_codec::{Version, encode};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::accepted::Accepted;
use crate::app::{AppRoutes, IntoPayload};
use crate::backplane::{Relayed, Target};
use crate::destination::{Destination, DestinationKind};
use crate::error::{ProtocolError, SendError};
use crate::events::Events;
use crate::message::Payload;
use crate::router::{Origin, Router, To, UserKey};
use crate::{
    Authenticator, Config, ConnectionInfo, Event, Inbound, Interceptor, Outbound, QueueStats,
    Stats, session,
};

/// A cheap, cloneable handle to one broker node.
#[derive(Clone)]
pub struct Broker {
    pub(crate) shared: Arc<Shared>,
}

/// The state of one node, behind every [`Broker`] handle.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) authenticator: Arc<dyn Authenticator>,
    /// Failed logins per source address.
    pub(crate) logins: crate::login_guard::LoginGuard,
    /// Connections per address and per user.
    pub(crate) admission: crate::admission::Admission,
    /// Every message and subscription goes through it; it holds the node's counters.
    pub(crate) router: Arc<Router>,
    /// `/app` routes, their state and their error policy.
    pub(crate) app: AppRoutes,
    pub(crate) interceptors: Box<[Box<dyn Interceptor>]>,
    pub(crate) events: Events,
    pub(crate) next_session_id: AtomicU64,
    /// Cancelled by [`Broker::shutdown`]: sessions send ERROR and close; new ones are refused.
    pub(crate) shutdown: CancellationToken,
    /// Cancelled when `shutdown_grace` is over: sessions stop flushing and return.
    pub(crate) hard_stop: CancellationToken,
    /// Counts live sessions so shutdown can wait for them.
    pub(crate) tracker: TaskTracker,
    /// The connected sessions, for operators.
    pub(crate) sessions: crate::sessions::Sessions,
}

/// Why a session ended; returned by [`Broker::serve`] and logged by transports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The client sent DISCONNECT (its RECEIPT, if asked for, was flushed).
    Disconnect,
    /// The transport closed (EOF or I/O error) without DISCONNECT.
    TransportClosed,
    /// The session broke a protocol rule or a limit; an ERROR frame with this message was sent.
    ProtocolError(String),
    /// Authentication was refused.
    AuthenticationFailed,
    /// The permission rules refused a SEND or SUBSCRIBE; an ERROR frame with this message was
    /// sent.
    AccessRefused(String),
    /// No CONNECT within `connect_timeout`.
    ConnectTimeout,
    /// No heart-beat or data within the negotiated interval times the grace factor.
    HeartbeatTimeout,
    /// The outbox crossed its bounds under the `disconnect` policy, or a write timed out.
    SlowConsumer,
    /// The node was at `max_connections`.
    TooManyConnections,
    /// The broker is shutting down.
    Shutdown,
    /// An operator ended it ([`Broker::close_session`]), for this reason.
    ClosedByOperator(String),
}

impl CloseReason {
    /// Every reason's name, in the order of [`Stats::closed`](crate::Stats::closed).
    pub const LABELS: [&'static str; 11] = [
        "disconnect",
        "transport_closed",
        "protocol_error",
        "authentication_failed",
        "access_refused",
        "connect_timeout",
        "heartbeat_timeout",
        "slow_consumer",
        "too_many_connections",
        "shutdown",
        "closed_by_operator",
    ];

    /// Its name in metrics: `disconnect` (the client's DISCONNECT), `transport_closed`,
    /// `protocol_error`, `authentication_failed`, `access_refused`, `connect_timeout`,
    /// `heartbeat_timeout`, `slow_consumer`, `too_many_connections`, `shutdown`,
    /// `closed_by_operator`.
    pub fn label(&self) -> &'static str {
        Self::LABELS[self.index()]
    }

    pub(crate) fn index(&self) -> usize {
        match self {
            CloseReason::Disconnect => 0,
            CloseReason::TransportClosed => 1,
            CloseReason::ProtocolError(_) => 2,
            CloseReason::AuthenticationFailed => 3,
            CloseReason::AccessRefused(_) => 4,
            CloseReason::ConnectTimeout => 5,
            CloseReason::HeartbeatTimeout => 6,
            CloseReason::SlowConsumer => 7,
            CloseReason::TooManyConnections => 8,
            CloseReason::Shutdown => 9,
            CloseReason::ClosedByOperator(_) => 10,
        }
    }
}

impl Broker {
    /// A broker with the default configuration, admitting clients on this machine only
    /// ([`LoopbackOnly`](crate::LoopbackOnly)).
    pub fn new() -> Broker {
        Broker::builder()
            .build()
            .expect("the default configuration is valid")
    }

    /// The configuration the broker runs with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Replaces the permission rules (a reload, e.g. on SIGHUP): live sessions keep their
    /// subscriptions, and every SEND and SUBSCRIBE from now on is checked against the new rules.
    pub fn set_permissions(&self, permissions: crate::Permissions) {
        self.shared.router.rules().set_permissions(permissions);
    }

    /// Counts a connection an edge has just accepted (before its HTTP request, PROXY header
    /// or TLS handshake) against `max_connections`; the edge then counts the client's address
    /// ([`Accepted::admit`]) as soon as it knows it, and passes the handle to [`Broker::serve`]
    /// in [`ConnectionInfo::accepted`]. `connect_timeout` runs from now. See `accepted.rs`.
    pub fn accept(&self) -> Arc<Accepted> {
        Arc::new(Accepted::new(self))
    }

    /// Runs one session to its end on the calling task: reads frames from `inbound`, writes
    /// batches to `outbound`, returns why it ended. `outbound` is flushed (including any final
    /// RECEIPT or ERROR) before this returns; the caller then closes the transport.
    pub async fn serve<I, O>(
        &self,
        mut info: ConnectionInfo,
        inbound: I,
        outbound: O,
    ) -> CloseReason
    where
        I: futures::Stream<Item = std::io::Result<Inbound>> + Send + Unpin,
        O: futures::Sink<Outbound, Error = std::io::Error> + Send + Unpin,
    {
        let shared = &*self.shared;
        let id = shared.next_session_id.fetch_add(1, Relaxed) + 1;
        let span = tracing::info_span!(
            "session",
            id,
            transport = ?info.transport,
            peer = ?info.peer,
            version = tracing::field::Empty,
            principal = tracing::field::Empty,
        );
        async move {
            // Held for the whole session, so shutdown can wait for it.
            let _token = shared.tracker.token();
            let counters = shared.router.counters();
            let reason = if shared.shutdown.is_cancelled() {
                refuse(shared, outbound, ProtocolError::ShuttingDown).await
            } else {
                let accepted = match info.accepted.take() {
                    Some(accepted) => accepted,
                    None => self.accept(),
                };
                if let Some(peer) = info.peer {
                    // A no-op when the edge admitted the address already.
                    let _ = accepted.admit(peer.ip());
                }
                match accepted.refusal() {
                    Some(refusal) => refuse(shared, outbound, refusal).await,
                    None => {
                        tracing::debug!("session started");
                        let sessions = &counters.sessions[info.transport.index()];
                        sessions.fetch_add(1, Relaxed);
                        let reason =
                            session::driver::run(self, id, info, accepted, inbound, outbound).await;
                        sessions.fetch_sub(1, Relaxed);
                        tracing::info!(reason = reason.label(), detail = ?reason, "session ended");
                        reason
                    }
                }
            };
            counters.closed[reason.index()].fetch_add(1, Relaxed);
            reason
        }
        .instrument(span)
        .await
    }

    /// Sends a message to `destination` from any task (an axum route, a timer): `/topic/...`
    /// reaches every matching subscriber, `/queue/...` one consumer (now or when one has room),
    /// `/user/{name}/queue/x` every session of user `name` subscribed to `/user/queue/x`.
    /// Returns how many deliveries were queued right now (0 for a queue, which counts its own
    /// deliveries). Never waits. A NUL in the destination or a header is refused
    /// ([`SendError::NulInHeader`]): STOMP has no way to carry it.
    pub fn send(&self, destination: &str, payload: impl IntoPayload) -> Result<usize, SendError> {
        let payload = payload
            .into_payload()
            .map_err(|e| SendError::Payload(e.to_string()))?;
        self.send_from(Origin::Server, destination, payload)
    }

    /// [`Broker::send`] on behalf of `origin` (server code, or a handler's reply).
    pub(crate) fn send_from(
        &self,
        origin: Origin,
        destination: &str,
        payload: Payload,
    ) -> Result<usize, SendError> {
        let router = &self.shared.router;
        let destination = router.rules().parse(destination)?;
        Ok(router
            .route(origin, To::Destination(destination), payload)?
            .deliveries)
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
        let to = To::User {
            user: UserKey::Named(user.into()),
            path: destination.into(),
            session: None,
        };
        Ok(self
            .shared
            .router
            .route(Origin::Server, to, payload)?
            .deliveries)
    }

    /// Routes a message that another node published to this node's subscribers only: it is
    /// not forwarded again. Returns how many deliveries were queued.
    pub fn inject(&self, message: Relayed) -> usize {
        let to = match message.target {
            Target::Topic(key) => {
                let prefix = DestinationKind::Topic.prefix();
                match Destination::parse(format!("{prefix}{key}")) {
                    Ok(destination) => To::Destination(destination),
                    Err(_) => return 0,
                }
            }
            // Queues live in the backplane; it delivers through a `QueueSink`.
            Target::Queue(_) => return 0,
            Target::User { user, destination } | Target::Inbox { user, destination } => To::User {
                user: UserKey::Named(user.into()),
                path: destination.into(),
                session: None,
            },
        };
        let payload = Payload::new(message.headers, message.body);
        let routed = self.shared.router.route(Origin::Backplane, to, payload);
        routed.map_or(0, |r| r.deliveries)
    }

    /// A stream of lifecycle events from now on. Each call is an independent listener.
    pub fn events(&self) -> BoxStream<'static, Event> {
        let rx = self.shared.events.subscribe();
        Box::pin(futures::stream::unfold(rx, |mut rx| async move {
            let event = match rx.recv().await {
                Ok(event) => event,
                Err(broadcast::error::RecvError::Lagged(missed)) => Event::Lagged { missed },
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            Some((event, rx))
        }))
    }

    /// Graceful shutdown: refuses new sessions, sends every session ERROR `server shutting down`,
    /// and waits up to `shutdown_grace` for them to flush and end.
    pub async fn shutdown(&self) {
        let shared = &self.shared;
        shared.tracker.close();
        shared.shutdown.cancel();
        let grace = shared.config.shutdown_grace;
        if tokio::time::timeout(grace, shared.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                sessions = shared.tracker.len(),
                "shutdown grace over; abandoning unflushed writes"
            );
            shared.hard_stop.cancel();
            return;
        }
        // Every session ended, so every delivery came back to its queue: the store's delivery
        // counts are exact, and it is closed cleanly.
        if let Some(store) = shared.router.store() {
            store.close();
        }
    }

    /// True once [`Broker::shutdown`] was called.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.shutdown.is_cancelled()
    }

    /// A snapshot of the node's counters.
    pub fn stats(&self) -> Stats {
        let counters = self.shared.router.counters();
        let mut stats = counters.snapshot();
        self.shared.sessions.traffic(counters).fill(&mut stats);
        stats
    }

    /// One queue's depth, in-flight count and counters, by destination (`/queue/jobs`);
    /// `None` if no SEND or SUBSCRIBE ever created it (or `destination` is not a queue).
    pub fn queue_stats(&self, destination: &str) -> Option<QueueStats> {
        let name = destination.strip_prefix(DestinationKind::Queue.prefix())?;
        self.shared.router.queue_stats(name)
    }

    /// Every queue with its counters, sorted by destination.
    pub fn queues(&self) -> Vec<(String, QueueStats)> {
        self.shared.router.queues()
    }

    /// Every connected session of this node (after CONNECTED, until it ends), by id.
    pub fn sessions(&self) -> Vec<crate::LiveSession> {
        self.shared.sessions.list()
    }

    /// Every subscription of this node's connected sessions, by destination then session.
    pub fn subscriptions(&self) -> Vec<crate::LiveSubscription> {
        self.shared.sessions.subscriptions()
    }

    /// Ends session `id`: it sends what its outbox holds, then ERROR `closed by an operator`
    /// with `reason` in its body, then closes (its unacknowledged queue messages go back).
    /// False when no such session is connected.
    pub fn close_session(&self, id: u64, reason: &str) -> bool {
        self.shared.sessions.close(id, reason)
    }

    /// Drops every message waiting in a queue of this node (`/queue/jobs`), stored ones
    /// included; what is in flight to consumers stays. Returns how many were dropped, `None`
    /// when the queue does not exist (or the relay holds the queues).
    pub fn purge(&self, destination: &str) -> Option<usize> {
        let name = destination.strip_prefix(DestinationKind::Queue.prefix())?;
        self.shared.router.purge(name)
    }

    /// Deletes a queue of this node (`/queue/jobs`): drops what waits in it, stored messages
    /// included, and forgets it (a SEND or SUBSCRIBE creates it again). Refused while a
    /// subscription consumes it. Returns how many messages were dropped.
    pub fn delete_queue(&self, destination: &str) -> Result<usize, crate::DeleteQueueError> {
        let name = (destination.strip_prefix(DestinationKind::Queue.prefix()))
            .ok_or(crate::DeleteQueueError::NotFound)?;
        self.shared.router.delete_queue(name)
    }

    /// Moves every message waiting in queue `from` (typically a dead-letter queue,
    /// `/queue/dlq.jobs`) to the back of queue `to` (`/queue/jobs`), in order, without their
    /// `x-original-destination`, whatever `to`'s bounds; stored ones stay stored. Returns how
    /// many moved, `None` when `from` does not exist (or either is not a `/queue` destination).
    pub fn redrive(&self, from: &str, to: &str) -> Option<usize> {
        let prefix = DestinationKind::Queue.prefix();
        let (from, to) = (from.strip_prefix(prefix)?, to.strip_prefix(prefix)?);
        if to.is_empty() || from == to {
            return None;
        }
        self.shared.router.redrive(from, to)
    }

    /// The broker's clock in milliseconds since the UNIX epoch, the time base of `expires`
    /// headers. It follows tokio's clock from when the broker was built, so tests with paused
    /// time control it.
    pub fn now_millis(&self) -> u64 {
        self.shared.router.now_ms()
    }
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("server_name", &self.shared.config.server_name)
            .field("shutting_down", &self.is_shutting_down())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Default for Broker {
    fn default() -> Self {
        Broker::new()
    }
}

/// Answers a connection that will not be served with ERROR, bounded by `write_timeout`.
async fn refuse<O>(shared: &Shared, mut outbound: O, error: ProtocolError) -> CloseReason
where
    O: futures::Sink<Outbound, Error = std::io::Error> + Send + Unpin,
{
    (shared.router.counters())
        .refused_connections
        .fetch_add(1, Relaxed);
    tracing::info!(message = %error.message(), "connection refused");
    let mut bytes = bytes::BytesMut::new();
    encode(&error.to_frame(None), Version::V1_2, &mut bytes);
    if shared.config.frame_trailing_eol {
        bytes.extend_from_slice(b"\n");
    }
    let write = outbound.send(Outbound {
        bytes: bytes.freeze(),
        binary: false,
    });
    let _ = tokio::time::timeout(shared.config.outbox.write_timeout, write).await;
    error.close_reason()
}
