//! The Stompbox server: the WebSocket and TCP edges around a [`Broker`], its configuration and
//! the `stompbox` binary.
//!
//! The edges only move bytes. Each accepted connection becomes one [`Broker::serve`] call with a
//! stream of inbound chunks (a WebSocket text or binary message, or a TCP read) and a sink of
//! outbound batches (sent as one WebSocket message, binary when the broker says the bytes are
//! not UTF-8). Limits, heart-beats, ERROR frames and connection counts are the broker's.
//!
//! Run it: `cargo run -p stompbox-server -- --ws-listen 127.0.0.1:0 --tcp-listen 127.0.0.1:0`.
//! Embed it: [`Server::bind`] + [`Server::run`], or mount [`websocket_route`] (and
//! [`sockjs_router`], [`sse_route`], [`publish_route`]) on your own axum router.
//! Configuration keys are listed in `docs/configuration.md`.
//!
//! # Layout
//! - `config.rs`: [`ServerConfig`] (`[websocket]`, `[tcp]`, `[broker]`, `[auth]`,
//!   `[[permissions]]`, `[store]`), defaults, validation.
//! - `store.rs`: opens the data directory (`stompbox-store`) for the broker's persistent
//!   queue messages.
//! - `config_sources.rs`: [`ConfigSources`]: defaults → TOML file → `STOMPBOX_*` env → CLI overrides.
//! - `server.rs`: [`Server`]: bind, run, graceful shutdown (a future passed in).
//! - `auth.rs`: the authenticator and permissions the configuration asks for, and their
//!   reload (SIGHUP).
//! - `origin.rs`: the WebSocket `Origin` allow-list; `forwarded.rs`: the client's address
//!   behind trusted proxies (`X-Forwarded-For`); `proxy_protocol.rs`: the PROXY protocol on the
//!   TCP listener.
//! - `ws.rs`: the WebSocket edge: [`websocket_route`], subprotocol negotiation, message ↔
//!   [`Inbound`](stompbox_broker::Inbound)/[`Outbound`](stompbox_broker::Outbound) adapters.
//! - `sockjs.rs`: the SockJS edge: each session of the `stompbox-sockjs` endpoints (under
//!   `sockjs.prefix`) one broker session; `config_sockjs.rs`: [`SockJsConfig`] (`[sockjs]`).
//! - `sse/`: Server-Sent Events (`GET sse.path`), each stream a broker session that outlives a
//!   dropped connection for its client's reconnect; `publish.rs`: `POST publish.path`, one
//!   message per request; `http_session.rs`: the broker session both run for their HTTP
//!   request; `config_sse.rs`: [`SseConfig`], [`PublishConfig`] (`[sse]`, `[publish]`).
//! - `metrics.rs`: `GET /metrics` (Prometheus, read from the broker's counters at each
//!   scrape), `/healthz` and `/readyz`; `config_metrics.rs`: [`MetricsConfig`] (`[metrics]`).
//! - `tcp.rs`: the TCP edge: accept loop and socket adapters (plain or TLS).
//! - `tls.rs`: TLS for either listener: the rustls configuration from `[*.tls]`, swapped on
//!   reload, the bounded handshake, the client certificate for the authenticator.
//! - `opening.rs`: what runs before STOMP on a connection (PROXY header, TLS handshake), and
//!   the axum listener that runs it off the accept loop.
//! - `error.rs`: [`Error`].
//! - `main.rs`: the `stompbox` binary: flags, logging, signals.

/// How long an edge waits to close a transport after its session ended (a WebSocket close frame,
/// a final flush). Short and fixed: the session has already flushed what matters, and a peer
/// that stopped reading (a slow consumer) would otherwise pin the connection's memory forever.
const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

mod admin;
mod auth;
mod burst;
mod config;
mod config_admin;
mod config_compression;
mod config_metrics;
mod config_push;
mod config_sockjs;
mod config_sources;
mod config_sse;
mod dashboard;
mod error;
mod forwarded;
mod http;
mod http_session;
mod listener;
mod metrics;
mod opening;
mod origin;
mod pre_connect;
mod proxy_protocol;
mod publish;
mod push;
mod server;
mod sockjs;
mod sse;
mod store;
mod tcp;
mod tls;
mod ws;

pub use auth::Reloader;
pub use burst::{BURST_READ_SIZE, BurstListener, BurstReader};
pub use config::{
    AnonymousAccess, AuthConfig, ClientCert, ServerConfig, StoreConfig, TcpConfig, TlsConfig,
    WebSocketConfig,
};
pub use config_admin::AdminConfig;
pub use config_compression::CompressionConfig;
pub use config_metrics::MetricsConfig;
pub use config_push::PushConfig;
pub use config_sockjs::{Prefixes, SockJsConfig};
pub use config_sources::{ConfigSources, ENV_PREFIX, ENV_SEPARATOR, Loaded};
pub use config_sse::{PublishConfig, SseConfig};
pub use error::Error;
pub use publish::publish_route;
pub use server::Server;
pub use sockjs::sockjs_router;
pub use sse::sse_route;
pub use stompbox_broker::Broker;
pub use ws::{SUBPROTOCOLS, WebSocketSettings, set_nodelay, websocket_route, websocket_route_with};
