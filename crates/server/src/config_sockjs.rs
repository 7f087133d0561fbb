//! `[sockjs]`: the SockJS endpoints on the WebSocket listener (`sockjs.rs`), for pages that
//! use `sockjs-client` (Spring's `withSockJS()` migrants).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Error, config::check_path};

/// The SockJS endpoints: STOMP over SockJS 0.3.3 on the WebSocket listener, each SockJS
/// session one broker session. Every key's default is the protocol's (or sockjs-node's and
/// Spring's) so that `sockjs-client` behaves as it does against them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SockJsConfig {
    /// Serve SockJS at all (needs `websocket.enabled`: it shares that listener). Default `true`:
    /// it costs nothing until a client comes, and pages need no other setting.
    pub enabled: bool,
    /// Where each endpoint is mounted: `"/sockjs"` (the default), or a list in the file,
    /// `["/sockjs", "/stomp-chat"]`, for pages that each use their own URL. Each starts with
    /// `/`, does not end with one, and neither is nor lies under another endpoint's path.
    pub prefix: Prefixes,
    /// Interval of SockJS's own heartbeat frame (`h`) on an idle session, so that proxies do
    /// not close it. Default 25 s, the protocol's. A session stops sending them once its STOMP
    /// CONNECTED frame grants heart-beats from the server (as Spring does).
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// How long a session of a polling or streaming transport lives without a request from its
    /// client (between two polls), and how long a closed one keeps answering with its close
    /// frame. Default 5 s, as sockjs-node and Spring.
    #[serde(with = "humantime_serde")]
    pub disconnect_delay: Duration,
    /// Bytes a streaming response (`xhr_streaming`, `eventsource`, `htmlfile`) carries before it
    /// ends and the client opens the next one, so browsers do not keep the whole stream in
    /// memory. Default 128 KiB, as sockjs-node and Spring.
    pub streaming_bytes_limit: usize,
    /// Largest `xhr_send` / `jsonp_send` body (413 beyond) and SockJS WebSocket message, bytes.
    /// Default 5 MiB: the largest STOMP frame (`broker.max_frame_size`, 4 MiB + 64 KiB) with
    /// room for its JSON escaping. Before CONNECTED the listener's pre-CONNECT cap applies.
    pub max_send_size: usize,
    /// Tell clients a `JSESSIONID` cookie is needed (`/info`'s `cookie_needed`) and set one on
    /// every session request, for load balancers that stick by it. Default `false`.
    pub cookie_needed: bool,
    /// Offer SockJS's `websocket` transport. Default `true`; turn it off behind proxies that
    /// break WebSocket, so that clients go straight to XHR streaming.
    pub websocket: bool,
    /// The `sockjs-client` script that the iframe page loads (only the iframe-based
    /// transports, used across origins by old browsers, load it). Default the 1.x build on
    /// jsDelivr, as sockjs-node.
    pub client_url: String,
}

/// One prefix or several.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Prefixes {
    /// One endpoint.
    One(String),
    /// Several endpoints.
    Many(Vec<String>),
}

impl Prefixes {
    /// Every prefix.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let slice = match self {
            Prefixes::One(one) => std::slice::from_ref(one),
            Prefixes::Many(many) => many.as_slice(),
        };
        slice.iter().map(String::as_str)
    }
}

impl Default for SockJsConfig {
    fn default() -> Self {
        let protocol = stompbox_sockjs::Config::default();
        SockJsConfig {
            enabled: true,
            prefix: Prefixes::One("/sockjs".to_owned()),
            heartbeat_interval: protocol.heartbeat_interval,
            disconnect_delay: protocol.disconnect_delay,
            streaming_bytes_limit: protocol.streaming_bytes_limit,
            max_send_size: 5 * 1024 * 1024,
            cookie_needed: false,
            websocket: true,
            client_url: protocol.client_url,
        }
    }
}

impl SockJsConfig {
    /// The checks of `[sockjs]`: prefixes that axum can route and that collide with nothing.
    pub(crate) fn validate(&self, taken: &mut Vec<String>) -> Result<(), Error> {
        let bad = |key: &str, reason: String| {
            Err(Error::InvalidConfig {
                key: format!("sockjs.{key}"),
                reason,
            })
        };
        if !self.enabled {
            return Ok(());
        }
        let mut seen = 0;
        for prefix in self.prefix.iter() {
            check_path("sockjs.prefix", prefix, taken)?;
            seen += 1;
        }
        if seen == 0 {
            return bad("prefix", "needs at least one prefix".to_owned());
        }
        if self.heartbeat_interval.is_zero() || self.disconnect_delay.is_zero() {
            return bad(
                "heartbeat_interval",
                "heartbeat_interval and disconnect_delay must be greater than zero".to_owned(),
            );
        }
        if self.streaming_bytes_limit == 0 || self.max_send_size == 0 {
            return bad(
                "streaming_bytes_limit",
                "streaming_bytes_limit and max_send_size must be greater than zero".to_owned(),
            );
        }
        Ok(())
    }

    /// The endpoint options, with the broker's write timeout for its WebSocket writes and
    /// `[websocket.compression]` for its `websocket` transports.
    pub(crate) fn protocol(
        &self,
        broker: &stompbox_broker::Config,
        deflate: Option<stompbox_websocket::DeflateConfig>,
    ) -> stompbox_sockjs::Config {
        stompbox_sockjs::Config {
            websocket: self.websocket,
            cookie_needed: self.cookie_needed,
            heartbeat_interval: self.heartbeat_interval,
            disconnect_delay: self.disconnect_delay,
            streaming_bytes_limit: self.streaming_bytes_limit,
            max_send_size: self.max_send_size,
            max_message_size: self.max_send_size,
            // What one poll may find queued: a few of the broker's largest frames.
            max_queued_bytes: broker.max_frame_size.saturating_mul(2),
            write_timeout: broker.outbox.write_timeout,
            client_url: self.client_url.clone(),
            deflate,
        }
    }
}
