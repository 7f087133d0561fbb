//! The WebSocket edge: an axum route that upgrades, negotiates the STOMP subprotocol and moves
//! bytes between the socket and [`Broker::serve`].
//!
//! Subprotocol negotiation (RFC 6455 §1.9, §4.2.2): the server picks the highest of
//! [`SUBPROTOCOLS`] that the client offered, whatever the client's order, and echoes only
//! something the client offered. A client offering none of them (or no
//! `Sec-WebSocket-Protocol` at all) is served without the header. axum 0.8's
//! [`WebSocketUpgrade::protocols`] does exactly this (it collects every offered token from every
//! `Sec-WebSocket-Protocol` header and returns the first of *our* list that was offered), so it
//! is what `stompbox-websocket`'s upgrade does too; `tests/websocket.rs` pins the behaviour.
//!
//! The upgrade is `stompbox-websocket`'s rather than axum's, for permessage-deflate
//! (`[websocket.compression]`): axum's gives no way between the connection and tungstenite.

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{HeaderMap, HeaderValue, StatusCode, Uri, request::Parts},
    response::{IntoResponse, Response},
    routing::{MethodRouter, get},
};
use bytes::Bytes;
use futures::{
    Sink, SinkExt, Stream, StreamExt,
    stream::{SplitSink, SplitStream},
};
use stompbox_broker::{
    Accepted, Broker, CloseReason, ConnectionInfo, Handshake, Inbound, Outbound, TlsInfo,
    TransportKind,
};
use stompbox_websocket::{
    DeflateConfig, ServerSocket, WebSocketUpgrade,
    tungstenite::{
        self, Message, Utf8Bytes,
        protocol::{CloseFrame, WebSocketConfig as CodecConfig},
    },
};
use tokio::net::TcpStream;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, field};

use crate::WebSocketConfig;
use crate::forwarded::TrustedProxies;
use crate::origin::AllowedOrigins;
use crate::pre_connect::PreConnectLimit;

/// The subprotocols served, most preferred (newest) first.
pub const SUBPROTOCOLS: [&str; 3] = ["v12.stomp", "v11.stomp", "v10.stomp"];

/// Per-connection WebSocket codec settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WebSocketSettings {
    /// permessage-deflate, when on; see [`crate::CompressionConfig`].
    pub deflate: Option<DeflateConfig>,
    /// See [`WebSocketConfig::read_buffer_size`].
    pub read_buffer_size: usize,
    /// See [`WebSocketConfig::write_buffer_size`].
    pub write_buffer_size: usize,
    /// Largest WebSocket message (and frame) accepted. The broker's `max_frame_size`: a STOMP
    /// frame may span several messages, so a larger message is never needed for one frame. A
    /// larger one is answered like an oversize STOMP frame: ERROR with the numbers, then close.
    pub max_message_size: usize,
    /// See [`WebSocketConfig::max_pings_per_minute`].
    pub max_pings_per_minute: u32,
}

impl WebSocketSettings {
    /// Settings from the server's `[websocket]` table and the broker's limits.
    pub fn new(websocket: &WebSocketConfig, broker: &stompbox_broker::Config) -> Self {
        WebSocketSettings {
            deflate: websocket.compression.deflate(),
            read_buffer_size: websocket.read_buffer_size,
            write_buffer_size: websocket.write_buffer_size,
            max_message_size: broker.max_frame_size,
            max_pings_per_minute: websocket.max_pings_per_minute,
        }
    }
}

impl WebSocketSettings {
    /// tungstenite's settings for one connection.
    fn codec(&self) -> CodecConfig {
        CodecConfig::default()
            .read_buffer_size(self.read_buffer_size)
            .write_buffer_size(self.write_buffer_size)
            .max_write_buffer_size(self.max_write_buffer_size())
            .max_message_size(Some(self.max_message_size))
            .max_frame_size(Some(self.max_message_size))
    }

    /// Most bytes the WebSocket codec holds unsent for a peer that does not read: room for the
    /// largest message twice over (a batch can top one up) and then some; pongs beyond it are
    /// not queued. A backstop: [`WebSocketSettings::max_pings_per_minute`] stops a ping flood
    /// long before, and the broker's outbox bounds messages.
    fn max_write_buffer_size(&self) -> usize {
        self.write_buffer_size + 2 * self.max_message_size + 64 * 1024
    }
}

/// The STOMP-over-WebSocket endpoint for `broker`, to mount on an application's own router
/// next to its HTTP routes: `Router::new().route("/stomp", websocket_route(broker))`.
///
/// Buffer sizes are the defaults of [`WebSocketConfig`]; use [`websocket_route_with`] to choose.
/// The application serves with `into_make_service_with_connect_info::<SocketAddr>()` if it wants
/// peer addresses in logs and in the authenticator's [`ConnectionInfo`].
pub fn websocket_route<S>(broker: Broker) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    let settings = WebSocketSettings::new(&WebSocketConfig::default(), broker.config());
    websocket_route_with(broker, settings)
}

/// [`websocket_route`] with explicit codec settings.
pub fn websocket_route_with<S>(broker: Broker, settings: WebSocketSettings) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    route(broker, settings, None, Handshakes::default())
}

/// What is checked and read off an upgrade request before the session starts.
#[derive(Clone, Debug, Default)]
pub(crate) struct Handshakes {
    /// `websocket.allowed_origins`.
    pub(crate) origins: AllowedOrigins,
    /// `websocket.trusted_proxies`.
    pub(crate) proxies: TrustedProxies,
}

/// Turns Nagle's algorithm off on an accepted connection, for `axum::serve::ListenerExt::tap_io`:
/// `axum::serve(listener.tap_io(stompbox_server::set_nodelay), app)`. The broker already batches what is
/// ready into one message per write, so there is nothing left for Nagle to coalesce; leaving it
/// on only holds a small MESSAGE back until the peer's delayed ACK (up to 40 ms on Linux), which
/// shows as tail latency. The TCP edge does the same.
pub fn set_nodelay(tcp: &mut TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "could not set TCP_NODELAY");
    }
}

/// The route, with a tracker that [`crate::Server`] waits on during shutdown.
pub(crate) fn route<S>(
    broker: Broker,
    settings: WebSocketSettings,
    tracker: Option<TaskTracker>,
    handshakes: Handshakes,
) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    let handshakes = Arc::new(handshakes);
    get(
        move |upgrade: WebSocketUpgrade,
              Peer {
                  addr: peer,
                  tls,
                  accepted,
              }: Peer,
              uri: Uri,
              headers: HeaderMap| {
            let broker = broker.clone();
            let tracker = tracker.clone();
            let handshakes = handshakes.clone();
            async move {
                let peer = peer.map(|p| handshakes.proxies.client(p, &headers));
                if let Err(origin) = handshakes.origins.check(&headers) {
                    let origin = String::from_utf8_lossy(origin);
                    tracing::info!(?peer, %origin, "WebSocket handshake from a refused origin");
                    let body = format!("origin not allowed: {origin}\n");
                    return (StatusCode::FORBIDDEN, body).into_response();
                }
                if let Some(accepted) = &accepted {
                    if let Some(client) = peer {
                        // Behind a trusted proxy, the client's address is known only now.
                        let _ = accepted.admit(client.ip());
                    }
                    if let Some(refusal) = accepted.refusal() {
                        accepted.count_refused();
                        tracing::debug!(?peer, message = %refusal.message(), "upgrade refused");
                        let body = format!("{refusal}\n");
                        return (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
                    }
                }
                let info = ConnectionInfo {
                    peer,
                    transport: TransportKind::WebSocket,
                    handshake: Some(detached_handshake(&uri, &headers)),
                    tls: tls.map(Box::new),
                    accepted,
                };
                accept(broker, settings, tracker, upgrade, info)
            }
        },
    )
}

fn accept(
    broker: Broker,
    settings: WebSocketSettings,
    tracker: Option<TaskTracker>,
    upgrade: WebSocketUpgrade,
    info: ConnectionInfo,
) -> Response {
    let upgrade = upgrade
        .config(settings.codec())
        .protocols(SUBPROTOCOLS)
        .deflate(settings.deflate.as_ref());
    let subprotocol = upgrade
        .selected_protocol()
        .and_then(|p| p.to_str().ok())
        .unwrap_or("none")
        .to_owned();
    let deflate = upgrade.selected_deflate().is_some();
    let peer = info.peer;
    // Held by the connection task so that a graceful shutdown waits for it.
    let token = tracker.map(|t| t.token());
    upgrade.on_upgrade(move |socket| async move {
        let _token = token;
        // The broker opens a `session{id transport peer}` span (info) inside this one. This one
        // is debug: an enabled span costs each idle connection about 0.5 KiB (the subscriber's
        // span slot and formatted fields), and at info the session span already names the peer.
        let span = tracing::debug_span!(
            "connection",
            peer = field::debug(peer),
            transport = "websocket",
            subprotocol,
            deflate,
        );
        let max_pings = settings.max_pings_per_minute;
        serve(broker, info, socket, max_pings)
            .instrument(span)
            .await;
    })
}

async fn serve(
    broker: Broker,
    info: ConnectionInfo,
    socket: ServerSocket,
    max_pings_per_minute: u32,
) {
    tracing::debug!("connected");
    let (sink, stream) = socket.split();
    let mut outbound = WsOutbound { sink };
    let mut inbound = WsInbound {
        stream,
        closed: false,
        pings: Pings::new(max_pings_per_minute),
        close: None,
    };
    let reason = broker.serve(info, &mut inbound, &mut outbound).await;
    // Sends a close frame with a status code saying why (unless the peer's close was already
    // answered) and flushes; bounded, then dropping the halves closes the socket regardless.
    let close = inbound
        .close
        .take()
        .map(|c| *c)
        .or_else(|| close_frame(&reason));
    let closing = async {
        if let Some(frame) = close {
            outbound.sink.send(Message::Close(Some(frame))).await?;
            outbound.sink.close().await?;
            // A lingering close: what the client sent meanwhile is read and dropped until its
            // own close frame, because closing a socket with unread input makes the kernel
            // send a reset, and a reset makes the client's kernel drop what it has not read
            // yet, our ERROR and close frame included.
            while let Some(Ok(message)) = inbound.stream.next().await {
                if let Message::Close(_) = message {
                    break;
                }
            }
            return Ok(());
        }
        outbound.sink.close().await
    };
    let _ = tokio::time::timeout(crate::CLOSE_TIMEOUT, closing).await;
    tracing::debug!(?reason, "closed");
}

/// The WebSocket close frame for how a session ended (RFC 6455 §7.4), so browsers and mobile
/// clients see a status instead of 1005 "no status": 1000 after DISCONNECT, 1001 when the server
/// goes away (shutdown, a silent peer), 1013 at a connection limit ("try again later"), 1008
/// for everything the ERROR frame already explained (protocol errors, refused logins and
/// permissions, slow consumers), with the ERROR's message as the reason. None when the peer
/// closed first.
fn close_frame(reason: &CloseReason) -> Option<CloseFrame> {
    close_code(reason).map(|(code, text)| close_with(code, text))
}

/// The status code and reason of [`close_frame`], also the SockJS edge's close frame
/// (`sockjs.rs`). None when the peer closed first.
pub(crate) fn close_code(reason: &CloseReason) -> Option<(u16, &str)> {
    Some(match reason {
        CloseReason::TransportClosed => return None,
        CloseReason::Disconnect => (1000, "disconnect"),
        CloseReason::Shutdown => (1001, "server shutting down"),
        CloseReason::HeartbeatTimeout => (1001, "heart-beat timeout"),
        CloseReason::TooManyConnections => (1013, "too many connections"),
        CloseReason::ConnectTimeout => (1008, "connect timeout"),
        CloseReason::AuthenticationFailed => (1008, "authentication failed"),
        CloseReason::SlowConsumer => (1008, "slow consumer"),
        CloseReason::ProtocolError(message) | CloseReason::AccessRefused(message) => {
            (1008, message.as_str())
        }
        _ => (1011, "server error"),
    })
}

/// A close frame; the reason is cut to the 123 bytes a control frame leaves for it.
fn close_with(code: u16, text: &str) -> CloseFrame {
    let mut end = text.len().min(123);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    CloseFrame {
        code: code.into(),
        reason: Utf8Bytes::from(&text[..end]),
    }
}

/// A copy of the upgrade request's URI and headers that owns its bytes. hyper parses headers
/// zero-copy, so the originals are slices of the connection's HTTP read buffer (8 KiB or more);
/// the session keeps its [`ConnectionInfo`] for its whole life, and holding those slices would
/// keep that whole buffer alive per idle connection.
pub(crate) fn detached_handshake(uri: &Uri, headers: &HeaderMap) -> Handshake {
    let mut owned = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) {
            owned.append(name.clone(), value);
        }
    }
    let uri = uri.to_string().parse().unwrap_or_else(|_| uri.clone());
    Handshake {
        uri,
        headers: owned,
    }
}

/// The peer address, when the server was started with connect info, and the TLS session of a
/// `wss://` connection (see `opening.rs`).
pub(crate) struct Peer {
    addr: Option<SocketAddr>,
    tls: Option<TlsInfo>,
    /// The connection's place among the node's, taken at accept by the server's own HTTP
    /// edge (`http.rs`); none under an application's own server.
    accepted: Option<Arc<Accepted>>,
}

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer {
            addr: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
            tls: parts.extensions.get::<TlsInfo>().cloned(),
            accepted: parts.extensions.get::<Arc<Accepted>>().cloned(),
        })
    }
}

/// WebSocket messages in, STOMP byte chunks out. Text and binary messages are both data; pings
/// and pongs count as liveness (tungstenite answers pings itself) up to the ping limit; a
/// close message ends it.
struct WsInbound {
    stream: SplitStream<ServerSocket>,
    closed: bool,
    pings: Pings,
    /// The close frame a read error calls for, when it says more than the session's end
    /// (boxed: rare, and every idle session holds the field).
    close: Option<Box<CloseFrame>>,
}

/// Pings counted per minute (a fixed window from the first ping), against
/// `websocket.max_pings_per_minute`.
struct Pings {
    max: u32,
    count: u32,
    since: Option<tokio::time::Instant>,
}

impl Pings {
    fn new(max: u32) -> Pings {
        Pings {
            max,
            count: 0,
            since: None,
        }
    }

    /// One more ping: the refusal once the peer is over its limit.
    fn count(&mut self) -> Option<Inbound> {
        let now = tokio::time::Instant::now();
        match self.since {
            Some(since) if now.duration_since(since) < std::time::Duration::from_secs(60) => {}
            _ => (self.since, self.count) = (Some(now), 0),
        }
        self.count += 1;
        (self.count > self.max).then(|| Inbound::LimitExceeded {
            message: "too many pings".to_owned(),
            detail: format!(
                "more than {} WebSocket pings in a minute (websocket.max_pings_per_minute)",
                self.max
            ),
        })
    }
}

impl Stream for WsInbound {
    type Item = io::Result<Inbound>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.closed {
            return Poll::Ready(None);
        }
        let item = match ready!(self.stream.poll_next_unpin(cx)) {
            None => None,
            Some(Err(e)) => {
                let (inbound, close) = read_error(e);
                self.close = close.map(Box::new);
                Some(inbound)
            }
            Some(Ok(Message::Text(text))) => Some(Ok(Inbound::Data(Bytes::from(text)))),
            Some(Ok(Message::Binary(bytes))) => Some(Ok(Inbound::Data(bytes))),
            Some(Ok(Message::Ping(_))) => Some(Ok(self.pings.count().unwrap_or(Inbound::Ping))),
            Some(Ok(Message::Pong(_))) => Some(Ok(Inbound::Ping)),
            Some(Ok(Message::Close(_))) => None,
            // Only ever sent, never read.
            Some(Ok(Message::Frame(_))) => return self.poll_next(cx),
        };
        if matches!(
            item,
            None | Some(Ok(Inbound::TooLarge { .. } | Inbound::LimitExceeded { .. }))
        ) {
            self.closed = true;
        }
        Poll::Ready(item)
    }
}

/// A read error: what the broker gets, and the close frame the client should get (RFC 6455
/// §7.4.1). A message over `max_message_size` becomes [`Inbound::TooLarge`] and too much before
/// CONNECT ([`PreConnectLimit`]) [`Inbound::LimitExceeded`], so the client gets an ERROR frame
/// with the numbers, then 1009 "message too big"; a WebSocket protocol violation gets 1002 and
/// a text message that is not UTF-8 1007, with tungstenite's description as the reason.
fn read_error(error: tungstenite::Error) -> (io::Result<Inbound>, Option<CloseFrame>) {
    use tungstenite::error::{CapacityError, Error};
    let (inbound, close) = match &error {
        Error::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
            let too_large = Inbound::TooLarge {
                size: *size,
                max: *max_size,
            };
            (Some(too_large), Some((1009, "message too big".to_owned())))
        }
        Error::Io(io) => match io
            .get_ref()
            .and_then(|e| e.downcast_ref::<PreConnectLimit>())
        {
            Some(limit) => {
                let message = "too much before CONNECT";
                let refused = Inbound::LimitExceeded {
                    message: message.to_owned(),
                    detail: limit.to_string(),
                };
                (Some(refused), Some((1009, message.to_owned())))
            }
            // A compressed message that is not DEFLATE (stompbox-websocket's `Inflating`).
            None if io.kind() == io::ErrorKind::InvalidData => (None, Some((1007, io.to_string()))),
            None => (None, None),
        },
        Error::Protocol(violation) => (None, Some((1002, violation.to_string()))),
        Error::Utf8(_) => (None, Some((1007, "text message is not UTF-8".to_owned()))),
        _ => (None, None),
    };
    let close = close.map(|(code, reason)| close_with(code, &reason));
    (inbound.ok_or_else(|| io::Error::other(error)), close)
}

/// Broker batches out as WebSocket messages: binary when the broker says the bytes are not
/// UTF-8, text otherwise (checked, and sent as binary if the check fails).
struct WsOutbound {
    sink: SplitSink<ServerSocket, Message>,
}

impl WsOutbound {
    fn message(out: Outbound) -> Message {
        if out.binary {
            return Message::Binary(out.bytes);
        }
        // The clone is a reference count; the check is the only pass over the bytes.
        match Utf8Bytes::try_from(out.bytes.clone()) {
            Ok(text) => Message::Text(text),
            Err(_) => Message::Binary(out.bytes),
        }
    }
}

impl Sink<Outbound> for WsOutbound {
    type Error = io::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.sink.poll_ready_unpin(cx).map_err(io::Error::other)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Outbound) -> io::Result<()> {
        self.sink
            .start_send_unpin(Self::message(item))
            .map_err(io::Error::other)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.sink.poll_flush_unpin(cx).map_err(io::Error::other)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.sink.poll_close_unpin(cx).map_err(io::Error::other)
    }
}
