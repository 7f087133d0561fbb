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
//! - `session/`: one client session. `driver.rs`: its task, one `select!` loop over inbound
//!   chunks, the write in flight, the outbox, its control channel, timers and shutdown;
//!   `mod.rs`: the protocol state machine (no I/O), frames in, actions out; `execute.rs`:
//!   carries the actions out; `ack.rs`, `transaction.rs`, `heartbeat.rs`, `writer.rs`.
//! - `router/`: one way in ([`Broker::send`], a client's SEND, a handler's reply, another
//!   node's message all enter `Router::route`), one way out (`router/deliver.rs`); `address.rs`
//!   is the one match on destination kinds; a table per kind.
//! - `outbox.rs`: the bounded per-session outbox and the slow-consumer policy (data only);
//!   `control.rs`: a session's control channel (a handler's ERROR, a wake-up).
//! - `message.rs`: [`Payload`], and a routed message shared by all its deliveries (its body is
//!   never copied).
//! - `destination.rs`: [`Destination`], parsed once by kind (`/topic`, `/queue`, `/app`, ...).
//! - `app/`: `/app` handlers ([`Handler`], extractors, [`IntoReply`]) and the per-session
//!   handler task (`app/worker.rs`).
//! - `backplane.rs`: the [`Backplane`] seam that joins nodes into a cluster (below the router);
//!   `store.rs`: the [`Store`] seam that keeps persistent queue messages on disk.
//! - `broker.rs`: [`Broker`], the handle: serve, send, inject, events, stats, shutdown;
//!   `builder.rs`: [`BrokerBuilder`].
//! - `error.rs`: [`ProtocolError`] (every reason a session gets ERROR) and [`SendError`];
//!   `config.rs`: [`Config`], every limit and its documented default; `stats.rs`: [`Stats`];
//!   `clock.rs`: the clock `expires` headers are compared with.
//! - `auth.rs`: the [`Authenticator`] hook; `intercept.rs`: [`Interceptor`]s on inbound frames;
//!   `events.rs`: lifecycle events ([`Broker::events`]).
//!
//! `docs/embedding.md` is the guide for applications (handlers, user destinations, hooks,
//! mounting). `docs/architecture.md` draws the data path and lists the invariants;
//! `docs/protocol.md` lists every STOMP 1.2 rule and what the broker does about it.

mod accepted;
mod admission;
mod app;
mod auth;
mod backplane;
mod broker;
mod builder;
mod clock;
mod config;
mod control;
mod destination;
mod error;
mod events;
mod intercept;
mod login_guard;
mod message;
mod outbox;
mod permissions;
mod router;
mod session;
mod sessions;
mod stats;
mod store;
mod transport;

pub use accepted::Accepted;
pub use app::{
    AppMessage, ERRORS_DESTINATION, ExtractRejection, FromMessage, Handler, HandlerError,
    HandlerErrorPolicy, IntoPayload, IntoReply, Json, Path, Reply, SendTo, SendToUser, SessionInfo,
    State,
};
pub use auth::{
    AllowAnonymous, AuthError, Authenticator, ConnectRequest, LOOPBACK_ONLY_MESSAGE, LoopbackOnly,
    Principal,
};
pub use backplane::{
    Backplane, BackplaneUnavailable, HeldQueue, Interest, QueueConsumer, QueueSink, Relayed, Room,
    Target,
};
pub use broker::{Broker, CloseReason};
pub use builder::BrokerBuilder;
pub use config::{
    AdmissionConfig, Config, ConfigError, DurableConfig, ExpiredPolicy, HeartbeatConfig,
    InboxConfig, LoginConfig, OutboxConfig, OverflowPolicy, QueueConfig, QueueTtl,
    SlowConsumerPolicy, TransactionConfig,
};
pub use destination::{Destination, DestinationError, DestinationKind};
pub use error::{DeleteQueueError, ProtocolError, QueueBound, SendError};
pub use events::{EVENT_CAPACITY, Event};
pub use intercept::{FrameRejected, Interceptor};
pub use message::{Kept, Payload};
pub use permissions::{Access, PermissionRule, Permissions};
pub use router::DEFAULT_APP_PREFIX;
pub use sessions::{LiveSession, LiveSubscription};
pub use stats::{DESTINATION_KINDS, FRAME_KINDS, Latencies, LatencyHistogram, QueueStats, Stats};
pub use store::{Store, StoreError, StoredRecord, Synced};
pub use transport::{ConnectionInfo, Handshake, Inbound, Outbound, TlsInfo, TransportKind};
