//! [`Config`]: one endpoint's options and limits. `Default` is the single source of truth.

use std::time::Duration;

/// The options and limits of one SockJS endpoint. Each field says its default and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Offer the `websocket` transport (and the raw `<prefix>/websocket`), and say so in
    /// `/info`. Default `true`; turn it off behind proxies that break WebSocket, so clients go
    /// straight to a streaming transport instead of timing out on the upgrade.
    pub websocket: bool,
    /// `cookie_needed` in `/info`, and a `JSESSIONID` cookie on every session request (the
    /// client's own, else `dummy`), for load balancers that stick sessions by that cookie.
    /// Default `false`.
    pub cookie_needed: bool,
    /// Interval of the `h` frame sent down an idle receiver, so proxies do not close it.
    /// Default 25 s, the protocol's and every server's. An application can switch them off
    /// per session ([`crate::Outgoing::set_heartbeats`]).
    pub heartbeat_interval: Duration,
    /// How long a session without a receiver (between two polls, or after its stream ended)
    /// lives before it is closed; also how long a closed session keeps answering with its close
    /// frame. Default 5 s, as sockjs-node and Spring.
    pub disconnect_delay: Duration,
    /// Bytes a streaming response (`xhr_streaming`, `eventsource`, `htmlfile`) carries before
    /// the server ends it and the client opens the next one, so that the browser does not keep
    /// a whole long stream in memory. Default 128 KiB, as sockjs-node and Spring.
    pub streaming_bytes_limit: usize,
    /// Largest `xhr_send` or `jsonp_send` body, bytes: a larger one is answered 413 and not
    /// read. Default 1 MiB.
    pub max_send_size: usize,
    /// Largest WebSocket message accepted (`websocket`, raw `websocket`); a larger one closes
    /// the connection with 1009. Default 1 MiB.
    pub max_message_size: usize,
    /// Bytes of messages queued for a session's next receiver (a polling client between two
    /// polls); an application's [`send`](crate::Outgoing::send) waits while the queue is over
    /// it. Default 1 MiB.
    pub max_queued_bytes: usize,
    /// Longest a WebSocket write may take before the connection is dropped (a client that
    /// stopped reading). Default 10 s, the broker's `write_timeout`.
    pub write_timeout: Duration,
    /// The SockJS client script the iframe page loads (`iframe.html`, used by the iframe-based
    /// transports across origins). Default the sockjs-client 1.x build on jsDelivr, as
    /// sockjs-node's default.
    pub client_url: String,
    /// permessage-deflate on the `websocket` transports when the client offers it (browsers
    /// do); `None` leaves them uncompressed. Default `None`; the `stompbox` server passes its
    /// `[websocket.compression]`.
    pub deflate: Option<stompbox_websocket::DeflateConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            websocket: true,
            cookie_needed: false,
            heartbeat_interval: Duration::from_secs(25),
            disconnect_delay: Duration::from_secs(5),
            streaming_bytes_limit: 128 * 1024,
            max_send_size: 1024 * 1024,
            max_message_size: 1024 * 1024,
            max_queued_bytes: 1024 * 1024,
            write_timeout: Duration::from_secs(10),
            client_url: "https://cdn.jsdelivr.net/npm/sockjs-client@1/dist/sockjs.min.js"
                .to_owned(),
            deflate: None,
        }
    }
}
