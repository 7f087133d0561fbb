//! A server for the [SockJS protocol 0.3.3](https://github.com/sockjs/sockjs-protocol), the
//! WebSocket emulation of `sockjs-client`, as an axum [`Router`](axum::Router) to merge into an
//! application's own. It knows nothing of what the messages carry: Stompbox runs STOMP over it
//! (`crates/server/src/sockjs.rs`), the example test server echoes.
//!
//! ```no_run
//! use stompbox_sockjs::{Config, SockJs, handler_fn};
//!
//! # async fn run() -> std::io::Result<()> {
//! let echo = SockJs::new(Config::default(), handler_fn(|mut session| async move {
//!     while let Some(message) = session.recv().await {
//!         if session.send(message).await.is_err() {
//!             break;
//!         }
//!     }
//! }));
//! let app = axum::Router::new().merge(echo.router("/echo"));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! axum::serve(listener, app).await
//! # }
//! ```
//!
//! Under a prefix it serves `GET <prefix>` (the greeting), `<prefix>/info`,
//! `<prefix>/iframe*.html`, `<prefix>/websocket` (raw WebSocket), and the session transports
//! `<prefix>/<server>/<session>/{websocket, xhr, xhr_send, xhr_streaming, eventsource,
//! htmlfile, jsonp, jsonp_send}`. A [`Handler`] decides on each new session from its first
//! request and then runs it as a [`Session`]: a stream of messages in, a queue of messages
//! out, a close with code and reason.
//!
//! # Layout
//! - `frame.rs`: the frames (`o`, `h`, `a[...]`, `c[...]`), their per-transport wrappings, the
//!   protocol's JSON escaping, client payload decoding. No I/O.
//! - `session.rs`: one session's state (queue, receiver, close), the application's
//!   [`Incoming`]/[`Outgoing`] halves.
//! - `registry.rs`: the sessions of the polling and streaming transports by id, each with a
//!   driver task (the handler, expiry after `disconnect_delay`).
//! - `router.rs`: URL and method dispatch, `/info`, the iframe page, the greeting.
//! - `transport/`: `polling.rs` (`xhr`, `jsonp`), `streaming.rs` (`xhr_streaming`,
//!   `eventsource`, `htmlfile`), `send.rs` (`xhr_send`, `jsonp_send`), `websocket.rs`.
//! - `reply.rs`: CORS, caching, cookie, errors, query decoding.
//! - `config.rs`: [`Config`], every option and limit.

// A refused request is answered with its response (axum's rejection idiom): the error path of
// an HTTP handler, taken once per request, where boxing would buy nothing.
#![allow(clippy::result_large_err)]

mod config;
pub mod frame;
mod registry;
mod reply;
mod router;
mod session;
mod transport;

use std::future::Future;

use axum::response::Response;

pub use config::Config;
pub use router::SockJs;
pub use session::{Closed, Incoming, Outgoing, Session, Transport};

/// The first request of a session (its handshake), as [`Handler::open`] sees it.
#[derive(Debug)]
pub struct OpenRequest<'a> {
    /// The request's method, URI (the full path, prefix included), headers and extensions
    /// (where the server put the peer address, TLS details and the like).
    pub parts: &'a http::request::Parts,
    /// The transport it came by.
    pub transport: Transport,
    /// The session id from the URL (empty for the raw WebSocket).
    pub session_id: &'a str,
}

/// The application side of an endpoint: admits sessions and runs them.
pub trait Handler: Send + Sync + 'static {
    /// What [`open`](Handler::open) hands to [`serve`](Handler::serve) and
    /// [`resume`](Handler::resume) (a connection slot, an authenticated user).
    type Ticket: Send + Sync + 'static;

    /// Decides on a new session from its first request: `Ok` opens it, `Err` answers the
    /// request with that response (403 for a refused origin, 503 when full) and opens nothing.
    fn open(&self, request: &OpenRequest<'_>) -> Result<Self::Ticket, Response>;

    /// Runs the session until it ends. When this returns, the session is closed with
    /// `c[3000,"Go away!"]` unless it was closed already.
    fn serve(
        &self,
        ticket: std::sync::Arc<Self::Ticket>,
        session: Session,
    ) -> impl Future<Output = ()> + Send + 'static;

    /// Every later request of an open session (a poll, a send, the next stream), before it is
    /// handled. Does nothing by default.
    fn resume(&self, ticket: &Self::Ticket, request: &http::request::Parts) {
        let _ = (ticket, request);
    }
}

/// A [`Handler`] that admits every session and runs each with `f`: see [`handler_fn`].
#[derive(Clone, Debug)]
pub struct HandlerFn<F>(F);

/// A [`Handler`] from an async function of the [`Session`].
pub fn handler_fn<F, Fut>(f: F) -> HandlerFn<F>
where
    F: Fn(Session) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    HandlerFn(f)
}

impl<F, Fut> Handler for HandlerFn<F>
where
    F: Fn(Session) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    type Ticket = ();

    fn open(&self, _: &OpenRequest<'_>) -> Result<(), Response> {
        Ok(())
    }

    fn serve(
        &self,
        _: std::sync::Arc<()>,
        session: Session,
    ) -> impl Future<Output = ()> + Send + 'static {
        (self.0)(session)
    }
}
