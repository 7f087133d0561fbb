//! Test helpers: an in-process server on 127.0.0.1:0, a WebSocket and a TCP STOMP client, a raw
//! HTTP upgrade for handshake assertions. Every wait is bounded by [`WAIT`].

#![allow(dead_code, unreachable_pub)]

use std::{future::Future, net::SocketAddr, time::Duration};

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use stompbox_codec::{Command, Decoder, Frame, Item, Limits};
use stompbox_server::{Broker, Server, ServerConfig};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::oneshot,
    task::JoinHandle,
};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, client::IntoClientRequest, http::HeaderValue},
};

/// Upper bound on every wait in these tests: generous for a loaded 2-core CI machine, but a
/// hang still fails instead of blocking the suite.
pub const WAIT: Duration = Duration::from_secs(20);

/// Awaits `fut` for at most [`WAIT`], panicking with `what` otherwise.
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

/// A running in-process server.
pub struct TestServer {
    pub ws_url: String,
    pub ws_addr: SocketAddr,
    pub tcp_addr: SocketAddr,
    pub broker: Broker,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), stompbox_server::Error>>>,
}

impl TestServer {
    /// A server with both listeners on 127.0.0.1:0 and `tweak` applied to the default config.
    pub async fn start(tweak: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let mut config = ServerConfig::default();
        config.websocket.listen = "127.0.0.1:0".parse().unwrap();
        config.tcp.listen = "127.0.0.1:0".parse().unwrap();
        tweak(&mut config);
        let server = Server::bind(config).await.expect("bind");
        let ws_url = server.ws_url().unwrap();
        let ws_addr = server.local_ws_addr().unwrap();
        let tcp_addr = server.local_tcp_addr().unwrap();
        let broker = server.broker().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        TestServer {
            ws_url,
            ws_addr,
            tcp_addr,
            broker,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Triggers graceful shutdown and waits for `run` to return.
    pub async fn shutdown(mut self) -> Result<(), stompbox_server::Error> {
        let _ = self.stop.take().unwrap().send(());
        within("server shutdown", self.task.take().unwrap())
            .await
            .expect("server task panicked")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Encodes a frame as STOMP 1.2 text.
pub fn frame(command: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(command.as_bytes());
    out.push(b'\n');
    for (k, v) in headers {
        out.extend_from_slice(format!("{k}:{v}\n").as_bytes());
    }
    out.push(b'\n');
    out.extend_from_slice(body);
    out.push(0);
    out
}

/// CONNECT for STOMP 1.2 with heart-beats off.
pub fn connect_frame() -> Vec<u8> {
    frame(
        "CONNECT",
        &[
            ("accept-version", "1.2"),
            ("host", "localhost"),
            ("heart-beat", "0,0"),
        ],
        b"",
    )
}

/// Decodes frames out of received chunks, skipping heart-beats.
pub struct FrameReader {
    decoder: Decoder,
    buf: BytesMut,
}

impl Default for FrameReader {
    fn default() -> Self {
        FrameReader {
            decoder: Decoder::new(Limits::UNLIMITED),
            buf: BytesMut::new(),
        }
    }
}

impl FrameReader {
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    pub fn next_frame(&mut self) -> Option<Frame> {
        loop {
            match self
                .decoder
                .decode(&mut self.buf)
                .expect("server sent a valid frame")
            {
                Some(Item::Frame(frame)) => return Some(frame),
                Some(Item::HeartBeat) => continue,
                None => return None,
            }
        }
    }
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A STOMP client over a real WebSocket.
pub struct WsClient {
    pub ws: Ws,
    pub reader: FrameReader,
    /// Kind of every data message received, in order (`true` = binary).
    pub kinds: Vec<bool>,
}

impl WsClient {
    /// Opens a WebSocket offering `v12.stomp` (no STOMP frame sent yet).
    pub async fn open(url: &str) -> WsClient {
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("v12.stomp"),
        );
        let (ws, response) = within(
            "websocket handshake",
            tokio_tungstenite::connect_async(request),
        )
        .await
        .expect("websocket handshake");
        assert_eq!(response.headers()["sec-websocket-protocol"], "v12.stomp");
        WsClient {
            ws,
            reader: FrameReader::default(),
            kinds: Vec::new(),
        }
    }

    /// Opens and sends CONNECT; asserts CONNECTED.
    pub async fn connect(url: &str) -> WsClient {
        let mut client = WsClient::open(url).await;
        client.send_text(&connect_frame()).await;
        let connected = client.recv().await;
        assert_eq!(connected.command, Command::Connected, "{connected:?}");
        client
    }

    pub async fn send_text(&mut self, bytes: &[u8]) {
        let text = String::from_utf8(bytes.to_vec()).expect("text message must be UTF-8");
        within("websocket send", self.ws.send(Message::text(text)))
            .await
            .expect("websocket send");
    }

    pub async fn send_binary(&mut self, bytes: &[u8]) {
        within(
            "websocket send",
            self.ws.send(Message::binary(Bytes::copy_from_slice(bytes))),
        )
        .await
        .expect("websocket send");
    }

    /// The next data message's bytes, or `None` once the socket closes.
    pub async fn recv_message(&mut self) -> Option<Bytes> {
        loop {
            match within("websocket message", self.ws.next()).await {
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

    /// The next frame, or `None` once the socket closes.
    pub async fn try_recv(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = self.reader.next_frame() {
                return Some(frame);
            }
            let chunk = self.recv_message().await?;
            self.reader.push(&chunk);
        }
    }

    /// The next frame; panics if the socket closes first.
    pub async fn recv(&mut self) -> Frame {
        self.try_recv()
            .await
            .expect("socket closed before a frame arrived")
    }

    /// Subscribes to `destination` with id `id` and waits for the receipt.
    pub async fn subscribe(&mut self, destination: &str, id: &str) {
        let receipt = format!("sub-{id}");
        self.send_text(&frame(
            "SUBSCRIBE",
            &[
                ("destination", destination),
                ("id", id),
                ("receipt", &receipt),
            ],
            b"",
        ))
        .await;
        let reply = self.recv().await;
        assert_eq!(reply.command, Command::Receipt, "{reply:?}");
        assert_eq!(reply.header("receipt-id"), Some(receipt.as_str()));
    }
}

/// A STOMP client over a real TCP socket.
pub struct TcpClient {
    pub stream: TcpStream,
    pub reader: FrameReader,
}

impl TcpClient {
    pub async fn connect(addr: SocketAddr) -> TcpClient {
        let stream = within("tcp connect", TcpStream::connect(addr))
            .await
            .expect("tcp connect");
        let mut client = TcpClient {
            stream,
            reader: FrameReader::default(),
        };
        client.send(&connect_frame()).await;
        let connected = client.recv().await;
        assert_eq!(connected.command, Command::Connected, "{connected:?}");
        client
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        within("tcp write", self.stream.write_all(bytes))
            .await
            .expect("tcp write");
    }

    pub async fn try_recv(&mut self) -> Option<Frame> {
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(frame) = self.reader.next_frame() {
                return Some(frame);
            }
            match within("tcp read", self.stream.read(&mut chunk)).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.reader.push(&chunk[..n]),
            }
        }
    }

    pub async fn recv(&mut self) -> Frame {
        self.try_recv()
            .await
            .expect("socket closed before a frame arrived")
    }
}

/// The status line and headers of the response to a hand-written WebSocket upgrade request
/// carrying one `Sec-WebSocket-Protocol` header per entry of `protocol_headers`.
pub async fn raw_upgrade(addr: SocketAddr, path: &str, protocol_headers: &[&str]) -> RawResponse {
    let mut stream = within("tcp connect", TcpStream::connect(addr))
        .await
        .unwrap();
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    for value in protocol_headers {
        request.push_str(&format!("Sec-WebSocket-Protocol: {value}\r\n"));
    }
    request.push_str("\r\n");
    within("request write", stream.write_all(request.as_bytes()))
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = within("response read", stream.read(&mut byte))
            .await
            .unwrap();
        assert_eq!(n, 1, "connection closed mid-response: {head:?}");
        head.push(byte[0]);
    }
    let text = String::from_utf8(head).unwrap();
    let mut lines = text.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    RawResponse { status, headers }
}

#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl RawResponse {
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}
