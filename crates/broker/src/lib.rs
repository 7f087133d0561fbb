//! The Stompbox broker core: sessions, routing, subscriptions, heart-beats and back-pressure,
//! independent of any transport.
//!
//! A transport (the `stompbox-server` WebSocket and TCP edges, or an in-memory pipe in tests)
//! accepts a connection and calls [`Broker::serve`] with a stream of inbound byte chunks and a
//! sink for outbound ones; the broker runs the whole session on that task and returns why it
//! ended.
//!
//! # Layout
//! - `config.rs`: [`Config`], every limit and its documented default.
//! - `transport.rs`: [`Inbound`], [`Outbound`], [`ConnectionInfo`]: the seam with transports.
//! - `auth.rs`: the [`Authenticator`] hook.
//! - (the rest is described in `docs/architecture.md`)

mod auth;
mod config;
mod transport;

use std::sync::Arc;

pub use auth::{AllowAnonymous, AuthError, Authenticator, ConnectRequest, Principal};
pub use config::{Config, HeartbeatConfig, OutboxConfig, SlowConsumerPolicy};
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
    #[allow(dead_code)]
    shared: Arc<Shared>,
}

struct Shared {
    #[allow(dead_code)]
    config: Config,
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

/// Counters for the whole node, cheap to read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Sessions currently being served.
    pub connections: usize,
    /// SEND frames accepted.
    pub messages_received: u64,
    /// MESSAGE frames queued to subscribers.
    pub messages_delivered: u64,
    /// Sessions closed, or deliveries dropped, because a subscriber could not keep up.
    pub slow_consumers: u64,
    /// Deliveries dropped under the `drop-newest` policy.
    pub dropped_deliveries: u64,
}

/// Builds a [`Broker`]: configuration and hooks.
pub struct BrokerBuilder {
    config: Config,
    authenticator: Arc<dyn Authenticator>,
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
        let _ = (info, inbound, outbound);
        todo!("session loop")
    }

    /// Graceful shutdown: refuses new sessions, sends every session ERROR `server shutting down`,
    /// and waits up to `shutdown_grace` for them to flush and end.
    pub async fn shutdown(&self) {
        todo!("shutdown")
    }

    /// A snapshot of the node's counters.
    pub fn stats(&self) -> Stats {
        todo!("stats")
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

    /// Validates the configuration and creates the broker.
    pub fn build(self) -> Result<Broker, ConfigError> {
        self.config.validate()?;
        let _ = self.authenticator;
        Ok(Broker {
            shared: Arc::new(Shared {
                config: self.config,
            }),
        })
    }
}
