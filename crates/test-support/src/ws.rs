//! [`WsClient`]: a [`Client`] over a real WebSocket (tokio-tungstenite), and [`raw_upgrade`]
//! for asserting on the upgrade response itself. Every wait is bounded.

use std::net::SocketAddr;
use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use stompbox_websocket::{Deflate, DeflateConfig, WebSocket};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tokio_tungstenite::tungstenite::{
    Message, client::IntoClientRequest, http::HeaderValue, protocol::WebSocketConfig,
};
use tokio_util::io::InspectReader;

use crate::client::{Client, Transport};
use crate::{
    frames,
    wire::{SOCKET_WAIT, within},
};

/// The client's WebSocket (stompbox-websocket's, for permessage-deflate).
pub type Ws = WebSocket<Wire>;

/// The TCP stream under a client's WebSocket, each read counted.
pub type Wire = InspectReader<TcpStream, CountReads>;

/// Adds each read's length to a count.
pub type CountReads = Box<dyn FnMut(&[u8]) + Send + Sync>;

/// `stream` with its reads added to the returned count: how many bytes crossed the wire
/// towards us, WebSocket framing and compression included.
pub fn counted(stream: TcpStream) -> (Wire, Arc<AtomicUsize>) {
    let read = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&read);
    let inspect: CountReads = Box::new(move |bytes: &[u8]| {
        count.fetch_add(bytes.len(), Ordering::Relaxed);
    });
    (InspectReader::new(stream, inspect), read)
}

/// A STOMP-over-WebSocket client.
pub type WsClient = Client<WsTransport>;

/// A WebSocket as a [`Transport`]: frames go out as one text message each (binary when not
/// UTF-8); data messages come in (pings and pongs skipped), their kinds recorded.
pub struct WsTransport {
    ws: Ws,
    /// Bytes read off the wire so far.
    read: Arc<AtomicUsize>,
    /// The kind of every data message received, in order: `true` for binary.
    kinds: Vec<bool>,
}

impl std::fmt::Debug for WsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsTransport")
            .field("deflate", &self.ws.deflate())
            .field("read", &self.read)
            .field("kinds", &self.kinds)
            .finish_non_exhaustive()
    }
}

impl Transport for WsTransport {
    const WAIT: Duration = SOCKET_WAIT;

    async fn send(&mut self, bytes: Bytes) {
        let message = match std::str::from_utf8(&bytes) {
            Ok(text) => Message::text(text),
            Err(_) => Message::binary(bytes),
        };
        self.ws.send(message).await.expect("websocket send");
    }

    async fn recv(&mut self) -> Option<Bytes> {
        loop {
            match self.ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return None,
                Some(Ok(Message::Text(text))) => {
                    self.kinds.push(false);
                    return Some(Bytes::from(text));
                }
                Some(Ok(Message::Binary(bytes))) => {
                    self.kinds.push(true);
                    return Some(bytes);
                }
                Some(Ok(_)) => continue,
            }
        }
    }
}

impl Client<WsTransport> {
    /// Opens a WebSocket to `url` offering `v12.stomp` (no STOMP frame sent yet).
    pub async fn open(url: &str) -> WsClient {
        let stream = within("tcp connect", TcpStream::connect(host_port(url)))
            .await
            .expect("tcp connect");
        WsClient::open_on(stream, url).await
    }

    /// [`WsClient::open`] over an already connected socket (e.g. one with a small receive
    /// buffer, to make a slow consumer).
    pub async fn open_on(stream: TcpStream, url: &str) -> WsClient {
        WsClient::open_with(stream, url, &[]).await
    }

    /// [`WsClient::open_on`] with extra request headers (cookies, tokens).
    pub async fn open_with(
        stream: TcpStream,
        url: &str,
        headers: &[(&'static str, &str)],
    ) -> WsClient {
        WsClient::open_offering(stream, url, headers, None).await
    }

    /// Opens a WebSocket to `url` offering permessage-deflate as browsers do, using it if the
    /// server accepts ([`WsClient::deflate`] says).
    pub async fn open_compressed(url: &str) -> WsClient {
        let stream = within("tcp connect", TcpStream::connect(host_port(url)))
            .await
            .expect("tcp connect");
        let deflate = DeflateConfig::default();
        WsClient::open_offering(stream, url, &[], Some(&deflate)).await
    }

    /// [`WsClient::open_with`], offering permessage-deflate when `deflate` is given.
    pub async fn open_offering(
        stream: TcpStream,
        url: &str,
        headers: &[(&'static str, &str)],
        deflate: Option<&DeflateConfig>,
    ) -> WsClient {
        let mut request = url.into_client_request().expect("a ws:// URL");
        for (name, value) in headers {
            let value = HeaderValue::from_str(value).expect("a valid header value");
            request.headers_mut().append(*name, value);
        }
        request.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("v12.stomp"),
        );
        let (wire, read) = counted(stream);
        let (ws, response) = within(
            "websocket handshake",
            WebSocket::client(wire, request, WebSocketConfig::default(), deflate),
        )
        .await
        .expect("websocket handshake");
        assert_eq!(response.headers()["sec-websocket-protocol"], "v12.stomp");
        Client::new(WsTransport {
            ws,
            read,
            kinds: Vec::new(),
        })
    }

    /// Opens, sends [`frames::connect`] and expects CONNECTED.
    pub async fn connect(url: &str) -> WsClient {
        let mut client = WsClient::open(url).await;
        client.handshake(frames::connect()).await;
        client
    }

    /// Sends bytes as one text message; they must be UTF-8.
    pub async fn send_text(&mut self, bytes: &[u8]) {
        let text = String::from_utf8(bytes.to_vec()).expect("a text message must be UTF-8");
        let ws = &mut self.transport.ws;
        within("websocket send", ws.send(Message::text(text)))
            .await
            .expect("websocket send");
    }

    /// Sends bytes as one binary message.
    pub async fn send_binary(&mut self, bytes: &[u8]) {
        let message = Message::binary(Bytes::copy_from_slice(bytes));
        let ws = &mut self.transport.ws;
        within("websocket send", ws.send(message))
            .await
            .expect("websocket send");
    }

    /// The kind of every data message received so far, in order: `true` for binary.
    pub fn kinds(&self) -> &[bool] {
        &self.transport.kinds
    }

    /// Bytes read off the wire so far (the handshake's included): what the server sent, as
    /// sent, compressed or not.
    pub fn wire_bytes_read(&self) -> usize {
        self.transport.read.load(Ordering::Relaxed)
    }

    /// What permessage-deflate agreed on, if the connection uses it.
    pub fn deflate(&self) -> Option<&Deflate> {
        self.transport.ws.deflate()
    }

    /// The WebSocket itself, for tests that need it raw (pings, close).
    pub fn socket(&mut self) -> &mut Ws {
        &mut self.transport.ws
    }
}

fn host_port(url: &str) -> String {
    let rest = url.strip_prefix("ws://").expect("a ws:// URL");
    rest.split('/').next().unwrap_or(rest).to_owned()
}

/// The response to a hand-written upgrade request.
#[derive(Debug)]
pub struct RawResponse {
    /// The HTTP status code.
    pub status: u16,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
}

impl RawResponse {
    /// Every value of header `name` (lower case).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Sends a WebSocket upgrade request for `path` carrying one `Sec-WebSocket-Protocol` header per
/// entry of `protocol_headers` and returns the response head. Written by hand because
/// tungstenite's client refuses a response that lacks a protocol it offered, which is exactly
/// what some negotiation tests expect.
pub async fn raw_upgrade(addr: SocketAddr, path: &str, protocol_headers: &[&str]) -> RawResponse {
    raw_upgrade_socket(addr, path, protocol_headers).await.1
}

/// [`raw_upgrade`], also returning the socket, positioned just after the response head: a test
/// can then write WebSocket frames of its own making (floods, oversize messages).
pub async fn raw_upgrade_socket(
    addr: SocketAddr,
    path: &str,
    protocol_headers: &[&str],
) -> (TcpStream, RawResponse) {
    let headers: Vec<_> = protocol_headers
        .iter()
        .map(|value| ("Sec-WebSocket-Protocol", *value))
        .collect();
    raw_upgrade_socket_with(addr, path, &headers).await
}

/// [`raw_upgrade`] with any extra request headers (names and values).
pub async fn raw_upgrade_with(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> RawResponse {
    raw_upgrade_socket_with(addr, path, headers).await.1
}

async fn raw_upgrade_socket_with(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (TcpStream, RawResponse) {
    let mut stream = within("tcp connect", TcpStream::connect(addr))
        .await
        .expect("tcp connect");
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    within("request write", stream.write_all(request.as_bytes()))
        .await
        .expect("request write");
    // Byte by byte so that nothing after the head (a first WebSocket frame) is consumed.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = within("response read", stream.read(&mut byte))
            .await
            .expect("response read");
        assert_eq!(n, 1, "connection closed mid-response: {head:?}");
        head.push(byte[0]);
    }
    let text = String::from_utf8(head).expect("an ASCII response head");
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (stream, RawResponse { status, headers })
}
