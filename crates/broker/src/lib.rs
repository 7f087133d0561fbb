//! The Stompbox broker core: sessions, routing, subscriptions, heart-beats and back-pressure,
//! independent of any transport.
//!
//! A transport (the `stompbox-server` WebSocket and TCP edges, or an in-memory pipe in tests)
//! accepts a connection and calls [`Broker::serve`] with a stream of inbound byte chunks and a
//! sink for outbound ones; the broker runs the whole session on that task and returns why it
//! ended.
//!
//! # Layout
//! The data path, in order: transport chunk → decode → session → router → subscriber outboxes
//! → encode → transport.
//! - `transport.rs`: [`Inbound`], [`Outbound`], [`ConnectionInfo`]: the seam with transports.
//! - `session/driver.rs`: the one task per session: a `select!` loop over inbound chunks, the
//!   write in flight, the outbox, heart-beat and timeout timers, shutdown.
//! - `session/mod.rs`: the protocol state machine (no I/O): frames in, actions out.
//! - `session/heartbeat.rs`: heart-beat negotiation; `session/writer.rs`: output batching.
//! - `destination.rs`: [`Destination`], parsed once by kind (`/topic`, `/queue`, `/app`, ...).
//! - `router/`: one place per destination kind; `topic.rs` (fan-out), `pattern.rs` (`*`/`#`),
//!   `queue.rs` (one point-to-point queue: bound, prefetch, redelivery, dead letters, expiry)
//!   and `queues.rs` (the node's queues).
//! - `session/ack.rs`: what a session was given to acknowledge; `session/transaction.rs`:
//!   frames buffered until COMMIT.
//! - `clock.rs`: the broker clock `expires` headers are compared with.
//! - `message.rs`: a published message shared by all its deliveries (body never copied).
//! - `outbox.rs`: the bounded per-session outbox and the slow-consumer policy.
//! - `error.rs`: [`ProtocolError`], every reason a session gets ERROR.
//! - `stats.rs`: [`Stats`] and the counters behind it.
//! - `config.rs`: [`Config`], every limit and its documented default.
//! - `auth.rs`: the [`Authenticator`] hook.
//! - `app/`: `/app` handlers ([`Handler`], extractors, [`IntoReply`]), the per-session handler
//!   task, and [`Broker::send`] / [`Broker::send_to_user`]. `router/user.rs`: `/user/...`.
//! - `backplane.rs`: the [`Backplane`] seam that joins nodes into a cluster, and
//!   [`Broker::inject`].
//! - `intercept.rs`: [`Interceptor`]s on inbound frames; `events.rs`: [`Broker::events`].
//!
//! `docs/embedding.md` is the guide for applications (handlers, user destinations, hooks,
//! mounting). `docs/architecture.md` draws the data path and lists the invariants;
//! `docs/protocol.md` lists every STOMP 1.2 rule and what the broker does about it.

mod app;
mod auth;
mod backplane;
mod clock;
mod config;
mod destination;
mod error;
mod events;
mod intercept;
mod message;
mod outbox;
mod router;
mod session;
mod stats;
mod transport;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use futures::SinkExt;
use stompbox_codec::{Version, encode};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

pub use app::{
    AppMessage, DEFAULT_APP_PREFIX, ERRORS_DESTINATION, FromMessage, Handler, HandlerError,
    HandlerErrors, IntoPayload, IntoReply, Json, Path, Payload, Rejection, Reply, SendError,
    SendTo, SendToUser, SessionInfo, State,
};
pub use auth::{AllowAnonymous, AuthError, Authenticator, ConnectRequest, Principal};
pub use backplane::{Backplane, Interest, QueueConsumer, QueueSink, Refused, Relayed, Target};
pub use config::{
    Config, HeartbeatConfig, OutboxConfig, OverflowPolicy, QueueConfig, SlowConsumerPolicy,
    TransactionConfig,
};
pub use destination::{Destination, DestinationError, DestinationKind};
pub use error::ProtocolError;
pub use events::{EVENT_CAPACITY, Event};
pub use intercept::{Interceptor, Rejected};
pub use stats::{QueueStats, Stats};
pub use transport::{ConnectionInfo, Handshake, Inbound, Outbound, TransportKind};

/// A configuration value is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration `{field}`: {reason}")]
pub struct ConfigError {
    /// The offending field, dotted (`heartbeat.grace`).
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

/// A cheap, cloneable handle to one broker node.
#[derive(Clone)]
pub struct Broker {
    shared: Arc<Shared>,
}

/// The state of one node, behind every [`Broker`] handle.
struct Shared {
    config: Config,
    authenticator: Arc<dyn Authenticator>,
    router: router::Router,
    /// `/app` routes, their state and policies, and which destinations are application ones.
    app: app::AppRoutes,
    interceptors: Box<[Box<dyn Interceptor>]>,
    events: events::Events,
    counters: stats::Counters,
    next_session_id: AtomicU64,
    next_message_id: AtomicU64,
    /// Cancelled by [`Broker::shutdown`]: sessions send ERROR and close; new ones are refused.
    shutdown: CancellationToken,
    /// Cancelled when `shutdown_grace` is over: sessions stop flushing and return.
    hard_stop: CancellationToken,
    /// Counts live sessions so shutdown can wait for them.
    tracker: TaskTracker,
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
}

/// Builds a [`Broker`]: configuration, hooks and application handlers.
pub struct BrokerBuilder {
    config: Config,
    authenticator: Arc<dyn Authenticator>,
    app: app::AppRoutes,
    app_prefixes: Option<Vec<String>>,
    interceptors: Vec<Box<dyn Interceptor>>,
    backplane: Option<Arc<dyn Backplane>>,
}

impl Broker {
    /// A broker with the default configuration and anonymous access.
    pub fn new() -> Broker {
        Broker::builder()
            .build()
            .expect("the default configuration is valid")
    }

    /// Starts building a broker.
    pub fn builder() -> BrokerBuilder {
        BrokerBuilder {
            config: Config::default(),
            authenticator: Arc::new(AllowAnonymous),
            app: app::AppRoutes::default(),
            app_prefixes: None,
            interceptors: Vec::new(),
            backplane: None,
        }
    }

    /// The configuration the broker runs with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Runs one session to its end on the calling task: reads frames from `inbound`, writes
    /// batches to `outbound`, returns why it ended. `outbound` is flushed (including any final
    /// RECEIPT or ERROR) before this returns; the caller then closes the transport.
    pub async fn serve<I, O>(&self, info: ConnectionInfo, inbound: I, outbound: O) -> CloseReason
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
            if shared.shutdown.is_cancelled() {
                return refuse(shared, outbound, ProtocolError::ShuttingDown).await;
            }
            let counters = &shared.counters;
            let live = counters.connections.fetch_add(1, Relaxed) + 1;
            let _live = ConnectionSlot(counters);
            if live > shared.config.max_connections {
                let max = shared.config.max_connections;
                return refuse(shared, outbound, ProtocolError::TooManyConnections { max }).await;
            }
            tracing::debug!("session started");
            let reason = session::driver::run(self, id, info, inbound, outbound).await;
            tracing::debug!(?reason, "session ended");
            reason
        }
        .instrument(span)
        .await
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
        }
    }

    /// True once [`Broker::shutdown`] was called.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.shutdown.is_cancelled()
    }

    /// A snapshot of the node's counters.
    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot()
    }

    /// One queue's depth, in-flight count and counters, by destination (`/queue/jobs`);
    /// `None` if no SEND or SUBSCRIBE ever created it (or `destination` is not a queue).
    pub fn queue_stats(&self, destination: &str) -> Option<QueueStats> {
        let name = destination.strip_prefix(DestinationKind::Queue.prefix())?;
        let shared = &self.shared;
        shared.router.queue_stats(name, &shared.counters)
    }

    /// Every queue with its counters, sorted by destination.
    pub fn queues(&self) -> Vec<(String, QueueStats)> {
        self.shared.router.queues(&self.shared.counters)
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

impl BrokerBuilder {
    /// Replaces the whole configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Sets the hook consulted on CONNECT (default [`AllowAnonymous`]).
    pub fn authenticator(mut self, authenticator: impl Authenticator) -> Self {
        self.authenticator = Arc::new(authenticator);
        self
    }

    /// Application destination prefixes (default [`DEFAULT_APP_PREFIX`], `/app`), replacing
    /// the default. A SEND or SUBSCRIBE under one of them goes to the handlers, never to
    /// subscribers. `/topic`, `/queue` and `/user` cannot be application prefixes.
    pub fn app_prefixes<P: Into<String>>(mut self, prefixes: impl IntoIterator<Item = P>) -> Self {
        self.app_prefixes = Some(prefixes.into_iter().map(Into::into).collect());
        self
    }

    /// Routes a SEND to `<prefix><pattern>` (e.g. `/chat.{room}` for `/app/chat.general`) to
    /// `handler` (Spring's `@MessageMapping`). A pattern without variables wins over one with
    /// them; otherwise the first registered match wins.
    ///
    /// # Panics
    /// If the pattern is ambiguous: it must start with `/`, and a `{variable}` must end at a
    /// `/`, a `.` or the end.
    pub fn on_send<H: Handler<T>, T: 'static>(mut self, pattern: &str, handler: H) -> Self {
        self.app.on_send(pattern, app::boxed(handler));
        self
    }

    /// Runs `handler` when a client subscribes to `<prefix><pattern>`; its reply goes to that
    /// subscription only (Spring's `@SubscribeMapping`). The subscription receives nothing else.
    ///
    /// # Panics
    /// As [`BrokerBuilder::on_send`].
    pub fn on_subscribe<H: Handler<T>, T: 'static>(mut self, pattern: &str, handler: H) -> Self {
        self.app.on_subscribe(pattern, app::boxed(handler));
        self
    }

    /// Registers shared state for the [`State`] extractor (one value per type; cloned per
    /// call, so wrap large state in an `Arc`).
    pub fn state<T: Clone + Send + Sync + 'static>(mut self, state: T) -> Self {
        self.app.state.insert(state);
        self
    }

    /// What handler errors and rejections do (default [`HandlerErrors::ReplyToSender`]).
    pub fn handler_errors(mut self, policy: HandlerErrors) -> Self {
        self.app.errors = policy;
        self
    }

    /// Whether clients may SEND to `/user/{name}/...` to reach another user's sessions.
    /// Default `false`: such a SEND is ERROR `user destination not allowed`, since any client
    /// could otherwise write into anyone's private queues; server code (handlers,
    /// [`Broker::send_to_user`]) can always.
    pub fn allow_client_user_sends(mut self, allow: bool) -> Self {
        self.app.rules.client_user_sends = allow;
        self
    }

    /// Adds an interceptor on inbound frames; they run in the order added.
    pub fn interceptor(mut self, interceptor: impl Interceptor) -> Self {
        self.interceptors.push(Box::new(interceptor));
        self
    }

    /// Joins other nodes through `backplane` (the RabbitMQ relay of `stompbox-relay`): local
    /// interest is reported to it, `/topic` publishes and `/user` sends are forwarded to it,
    /// and it delivers what other nodes published with [`Broker::inject`].
    pub fn backplane(mut self, backplane: Arc<dyn Backplane>) -> Self {
        self.backplane = Some(backplane);
        self
    }

    /// Validates the configuration and creates the broker.
    pub fn build(mut self) -> Result<Broker, ConfigError> {
        self.config.validate()?;
        if let Some(prefixes) = self.app_prefixes.take() {
            self.app.set_prefixes(prefixes)?;
        }
        let router = router::Router::new(&self.config, self.backplane.take());
        Ok(Broker {
            shared: Arc::new(Shared {
                config: self.config,
                authenticator: self.authenticator,
                router,
                app: self.app,
                interceptors: self.interceptors.into_boxed_slice(),
                events: events::Events::default(),
                counters: stats::Counters::default(),
                next_session_id: AtomicU64::new(0),
                next_message_id: AtomicU64::new(1),
                shutdown: CancellationToken::new(),
                hard_stop: CancellationToken::new(),
                tracker: TaskTracker::new(),
            }),
        })
    }
}

/// Counts a live connection; released when the session ends, however it ends.
struct ConnectionSlot<'a>(&'a stats::Counters);

impl Drop for ConnectionSlot<'_> {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Relaxed);
    }
}

/// Answers a connection that will not be served with ERROR, bounded by `write_timeout`.
async fn refuse<O>(shared: &Shared, mut outbound: O, error: ProtocolError) -> CloseReason
where
    O: futures::Sink<Outbound, Error = std::io::Error> + Send + Unpin,
{
    shared.counters.refused_connections.fetch_add(1, Relaxed);
    tracing::debug!(message = %error.message(), "connection refused");
    let mut bytes = bytes::BytesMut::new();
    encode(&error.to_frame(None), Version::V1_2, &mut bytes);
    let write = outbound.send(Outbound {
        bytes: bytes.freeze(),
        binary: false,
    });
    let _ = tokio::time::timeout(shared.config.outbox.write_timeout, write).await;
    error.close_reason()
}
