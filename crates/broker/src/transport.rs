//! The seam between a transport (WebSocket, TCP, an in-memory test pipe) and a session.
//!
//! A transport hands the broker a stream of [`Inbound`] chunks and a sink of [`Outbound`]
//! chunks. Chunk boundaries mean nothing to STOMP: a WebSocket message is one more chunk, so
//! frames split across messages and several frames in one message both work.

use std::net::SocketAddr;

use bytes::Bytes;

/// Something the peer sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inbound {
    /// Bytes of the STOMP stream (a WebSocket text or binary message, or a TCP read).
    Data(Bytes),
    /// A transport-level keep-alive (a WebSocket ping or pong): counts as liveness, carries no
    /// STOMP bytes.
    Ping,
    /// The transport refused a message over its own size limit (a WebSocket message larger
    /// than it accepts) before its bytes reached the broker. The broker answers as for any
    /// oversize frame, ERROR `frame of at least {size} bytes exceeds the maximum of {max}`, and
    /// closes; the transport yields nothing after it.
    TooLarge {
        /// The size the peer announced or sent.
        size: usize,
        /// The transport's limit.
        max: usize,
    },
    /// The peer went past one of the transport's own limits (more WebSocket pings than it
    /// allows). The broker answers ERROR with `message` as its `message` header and `detail`
    /// (which limit, its value) as its body, and closes; the transport yields nothing after it.
    LimitExceeded {
        /// Short, e.g. `too many pings`.
        message: String,
        /// The limit's name and value.
        detail: String,
    },
}

/// Bytes for the peer: one or more whole encoded frames (or a heart-beat EOL), batched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outbound {
    /// Encoded frames.
    pub bytes: Bytes,
    /// True when the bytes are not valid UTF-8 (a binary body): a WebSocket transport sends them
    /// as a binary message, otherwise as text. Byte-stream transports ignore it.
    pub binary: bool,
}

/// Which edge a connection came in through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportKind {
    /// STOMP over WebSocket.
    WebSocket,
    /// STOMP over a raw TCP stream.
    Tcp,
    /// STOMP over SockJS (any of its transports: WebSocket, XHR streaming or polling,
    /// EventSource, htmlfile, JSONP), each SockJS message one chunk.
    SockJs,
    /// A Server-Sent Events stream (`GET /sse`): the edge subscribes for the client and
    /// writes each MESSAGE as an event.
    Sse,
    /// One HTTP request standing for a client (`POST /publish`): CONNECT, one SEND, DISCONNECT.
    Http,
    /// An in-process pipe (tests, embedding).
    Memory,
}

impl TransportKind {
    /// Every kind, in the order of [`Stats::sessions`](crate::Stats::sessions).
    pub const ALL: [TransportKind; 6] = [
        TransportKind::WebSocket,
        TransportKind::Tcp,
        TransportKind::SockJs,
        TransportKind::Sse,
        TransportKind::Http,
        TransportKind::Memory,
    ];

    /// Its name in metrics and logs: `websocket`, `tcp`, `sockjs`, `sse`, `http`, `memory`.
    pub fn label(self) -> &'static str {
        match self {
            TransportKind::WebSocket => "websocket",
            TransportKind::Tcp => "tcp",
            TransportKind::SockJs => "sockjs",
            TransportKind::Sse => "sse",
            TransportKind::Http => "http",
            TransportKind::Memory => "memory",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// What the broker knows about a connection before any STOMP frame arrives.
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    /// The remote address, when there is one.
    pub peer: Option<SocketAddr>,
    /// The edge it came through.
    pub transport: TransportKind,
    /// The WebSocket upgrade request (URI, headers incl. cookies), for authentication hooks.
    pub handshake: Option<Handshake>,
    /// The TLS session, when the connection came over TLS (`wss://`, STOMP over TLS). Boxed:
    /// every session keeps its `ConnectionInfo` until it is authenticated, and most have none.
    pub tls: Option<Box<TlsInfo>>,
    /// The connection's place among the node's connections, taken by the edge when it
    /// accepted the socket ([`Broker::accept`](crate::Broker::accept)); `None` for a
    /// connection that was not accepted by the edge itself (an in-memory pipe, an
    /// application's own HTTP server): [`Broker::serve`](crate::Broker::serve) takes one.
    pub accepted: Option<std::sync::Arc<crate::Accepted>>,
}

/// What a TLS edge learned in its handshake, for authentication hooks: the client certificate
/// chain when the client presented one that the edge verified against its client CAs (an
/// edge that does not verify client certificates never fills it), as RabbitMQ's
/// `ssl_cert_login` uses it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// The verified client certificate chain, DER, the client's own certificate first; empty
    /// when the client presented none.
    pub peer_certificates: Vec<Bytes>,
    /// The subject common name (CN) of the client's certificate, when it has one (the edge
    /// parses it once, so hooks need no X.509 parser).
    pub common_name: Option<String>,
}

impl TlsInfo {
    /// The subject CN of a verified client certificate, if one was presented and has a CN.
    pub fn common_name(&self) -> Option<&str> {
        self.common_name.as_deref()
    }

    /// The verified client certificate (DER), if one was presented.
    pub fn peer_certificate(&self) -> Option<&Bytes> {
        self.peer_certificates.first()
    }
}

/// The HTTP request that opened a WebSocket connection.
#[derive(Clone, Debug, Default)]
pub struct Handshake {
    /// Path and query, e.g. `/ws?token=...`.
    pub uri: http::Uri,
    /// Request headers, cookies included.
    pub headers: http::HeaderMap,
}

impl ConnectionInfo {
    /// An in-memory connection with no peer address.
    pub fn memory() -> Self {
        ConnectionInfo {
            peer: None,
            transport: TransportKind::Memory,
            handshake: None,
            tls: None,
            accepted: None,
        }
    }
}
