//! One client connection, STOMP over WebSocket (`ws://`, `wss://`, subprotocol `v12.stomp`) or
//! over TCP (`tcp://`), split into a [`FrameTx`] that batches outgoing bytes and a [`FrameRx`] that
//! decodes incoming frames with `stompbox-codec`; or a receiver of Server-Sent Events
//! (`sse://`, `sse.rs`), whose events [`FrameRx`] hands out as MESSAGE frames.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use bytes::{Bytes, BytesMut};
use futures::{
    SinkExt, StreamExt,
    stream::{SplitSink, SplitStream},
};
use stompbox_codec::{Command, Decoder, Frame, Item, Limits, Version, encode};
use stompbox_websocket::{
    DeflateConfig, WebSocket,
    tungstenite::{
        Message, client::IntoClientRequest, http::HeaderValue, protocol::WebSocketConfig,
    },
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        TcpSocket, TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
};

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use tokio_util::{either::Either, io::InspectReader};

use crate::{
    opts::Common,
    sse::{self, SseReader},
    xhr::{XhrSender, XhrStream},
};

/// The subprotocol offered on every WebSocket: STOMP 1.2.
pub(crate) const SUBPROTOCOL: &str = "v12.stomp";

/// A plain or a TLS socket under the WebSocket, its reads counted (see [`Target::wire_bytes_read`]).
type Socket =
    InspectReader<Either<TcpStream, tokio_rustls::client::TlsStream<TcpStream>>, CountReads>;
/// Adds each read's length to a [`Target`]'s count.
type CountReads = Box<dyn FnMut(&[u8]) + Send + Sync>;
type Ws = WebSocket<Socket>;

/// TLS for `wss://`: the client configuration and the name the certificate must carry.
#[derive(Clone)]
pub(crate) struct Tls {
    connector: tokio_rustls::TlsConnector,
    name: rustls::pki_types::ServerName<'static>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("name", &self.name).finish()
    }
}

/// Where to connect, parsed from `ws://HOST:PORT/PATH`, `wss://HOST:PORT/PATH` or
/// `tcp://HOST:PORT`.
#[derive(Clone, Debug)]
pub(crate) enum Target {
    Ws {
        addr: SocketAddr,
        url: String,
        tls: Option<Tls>,
        /// STOMP over SockJS's WebSocket transport: `url` is the endpoint's prefix, each
        /// connection opens `PREFIX/000/SESSION/websocket` and frames go in SockJS's JSON arrays.
        sockjs: bool,
        /// Offer permessage-deflate.
        deflate: bool,
        /// Bytes read by every connection to this target.
        wire: Arc<AtomicU64>,
    },
    Tcp {
        addr: SocketAddr,
    },
    /// Server-Sent Events at `path`: receive only.
    Sse {
        addr: SocketAddr,
        path: String,
    },
    /// STOMP over SockJS's XHR streaming transport, the endpoint at `prefix`.
    Xhr {
        addr: SocketAddr,
        prefix: String,
    },
}

impl Target {
    /// `deflate`: WebSocket connections offer permessage-deflate.
    pub(crate) fn parse(url: &str, ca_file: Option<&Path>, deflate: bool) -> Result<Target> {
        let websocket = |rest: &&str| rest.starts_with("ws://") || rest.starts_with("wss://");
        let (sockjs, url) = match url.strip_prefix("sockjs+").filter(websocket) {
            Some(rest) => (true, rest),
            None => (false, url),
        };
        if let Some((secure, rest)) = (url.strip_prefix("ws://").map(|r| (false, r)))
            .or_else(|| url.strip_prefix("wss://").map(|r| (true, r)))
        {
            let host_port = rest.split('/').next().unwrap_or(rest);
            let addr = resolve(host_port)?;
            let tls = match (secure, ca_file) {
                (false, _) => None,
                (true, None) => bail!("wss:// needs --ca-file (the CA the server's chain ends in)"),
                (true, Some(ca)) => Some(tls(ca, host_port)?),
            };
            Ok(Target::Ws {
                addr,
                url: url.trim_end_matches('/').to_owned(),
                tls,
                sockjs,
                deflate,
                wire: Arc::default(),
            })
        } else if let Some(rest) = url.strip_prefix("tcp://") {
            let host_port = rest.trim_end_matches('/');
            Ok(Target::Tcp {
                addr: resolve(host_port)?,
            })
        } else if let Some(rest) = url.strip_prefix("sockjs+xhr://") {
            let (host_port, prefix) = rest.split_once('/').unwrap_or((rest, "sockjs"));
            Ok(Target::Xhr {
                addr: resolve(host_port)?,
                prefix: format!("/{}", prefix.trim_end_matches('/')),
            })
        } else if let Some(rest) = url.strip_prefix("sse://") {
            let (host_port, path) = rest.split_once('/').unwrap_or((rest, "sse"));
            Ok(Target::Sse {
                addr: resolve(host_port)?,
                path: format!("/{path}"),
            })
        } else {
            bail!(
                "unsupported URL {url:?}: use ws://, wss://HOST:PORT/PATH, tcp://HOST:PORT, \
                 sse://HOST:PORT/PATH, sockjs+ws:// or sockjs+xhr://HOST:PORT/PREFIX"
            )
        }
    }

    /// Bytes read so far by the WebSocket connections opened to this target (TLS records
    /// included): what the server put on the wire, after compression. 0 for other transports.
    pub(crate) fn wire_bytes_read(&self) -> u64 {
        match self {
            Target::Ws { wire, .. } => wire.load(Relaxed),
            _ => 0,
        }
    }

    fn addr(&self) -> SocketAddr {
        match self {
            Target::Ws { addr, .. }
            | Target::Tcp { addr }
            | Target::Sse { addr, .. }
            | Target::Xhr { addr, .. } => *addr,
        }
    }
}

/// A TLS client trusting the CAs in `ca_file`, for the host of `host_port`.
fn tls(ca_file: &Path, host_port: &str) -> Result<Tls> {
    use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file)
        .with_context(|| format!("reading {}", ca_file.display()))?
    {
        roots.add(cert.context("a CA certificate")?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let host = host_port.rsplit_once(':').map_or(host_port, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok(Tls {
        connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
        name: ServerName::try_from(host.to_owned()).context("the server's name")?,
    })
}

/// A SockJS session id unique in this process.
fn sockjs_session() -> String {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("b{}x{}", std::process::id(), NEXT.fetch_add(1, Relaxed))
}

fn resolve(host_port: &str) -> Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    host_port
        .to_socket_addrs()
        .with_context(|| format!("resolving {host_port}"))?
        .next()
        .ok_or_else(|| anyhow!("{host_port} resolves to no address"))
}

/// WebSocket read buffer of an idle connection (connection scale): tungstenite's default of
/// 128 KiB per connection would make the harness, not the broker, the memory limit.
const IDLE_READ_BUFFER: usize = 4096;
/// WebSocket read buffer of a busy connection. tungstenite zero-fills the free part of its read
/// buffer before every read, so its 128 KiB default costs a 128 KiB memset per read (6% of the
/// harness's CPU in a 100-subscriber fan-out); 16 KiB still takes any burst in a few reads.
pub(crate) const READ_BUFFER: usize = 16 * 1024;

/// Opens a socket to `target` (from `source` when given: an idle connection with a small read
/// buffer), with `TCP_NODELAY`, and completes the WebSocket handshake when the target is
/// `ws://`. No STOMP frame is sent.
pub(crate) async fn open(target: &Target, source: Option<IpAddr>) -> Result<(FrameTx, FrameRx)> {
    let addr = target.addr();
    let stream = match source {
        Some(ip) => {
            let socket = if addr.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            socket
                .bind(SocketAddr::new(ip, 0))
                .with_context(|| format!("binding to {ip}"))?;
            socket.connect(addr).await
        }
        None => TcpStream::connect(addr).await,
    }
    .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    match target {
        Target::Ws {
            url,
            tls,
            sockjs,
            deflate,
            wire,
            ..
        } => {
            let stream = match tls {
                None => Either::Left(stream),
                Some(tls) => Either::Right(
                    (tls.connector.connect(tls.name.clone(), stream).await)
                        .context("TLS handshake")?,
                ),
            };
            let wire = wire.clone();
            let count: CountReads =
                Box::new(move |bytes| _ = wire.fetch_add(bytes.len() as u64, Relaxed));
            let stream: Socket = InspectReader::new(stream, count);
            let url = match sockjs {
                true => format!("{url}/000/{}/websocket", sockjs_session()),
                false => url.clone(),
            };
            let mut request = url.into_client_request()?;
            if !sockjs {
                request.headers_mut().insert(
                    "sec-websocket-protocol",
                    HeaderValue::from_static(SUBPROTOCOL),
                );
            }
            let read_buffer = if source.is_some() {
                IDLE_READ_BUFFER
            } else {
                READ_BUFFER
            };
            let config = WebSocketConfig::default().read_buffer_size(read_buffer);
            let deflate = deflate.then(DeflateConfig::default);
            let (ws, _response) = WebSocket::client(stream, request, config, deflate.as_ref())
                .await
                .context("WebSocket handshake")?;
            let (sink, mut stream) = ws.split();
            if !sockjs {
                return Ok((FrameTx::Ws(sink), FrameRx::new(Reader::Ws(stream))));
            }
            match stream.next().await {
                Some(Ok(Message::Text(open))) if open.as_str() == "o" => {}
                other => bail!("expected SockJS's open frame `o`, got {other:?}"),
            }
            Ok((FrameTx::SockJs(sink), FrameRx::new(Reader::SockJs(stream))))
        }
        Target::Tcp { .. } => {
            let (read, write) = stream.into_split();
            Ok((
                FrameTx::Tcp(write, BytesMut::with_capacity(64 * 1024)),
                FrameRx::new(Reader::Tcp(read)),
            ))
        }
        Target::Xhr { prefix, .. } => {
            let session = format!("{prefix}/000/{}", sockjs_session());
            let host = addr.to_string();
            let (mut read, write) = stream.into_split();
            let path = format!("{session}/xhr_streaming");
            let receiving = XhrStream::open(&mut read, write, &path, &host).await?;
            let sending = TcpStream::connect(addr).await?;
            sending.set_nodelay(true)?;
            let (send_read, send_write) = sending.into_split();
            let sender = XhrSender::new(send_read, send_write, format!("{session}/xhr_send"), host);
            let reader = Reader::Xhr(read, Box::new(receiving));
            Ok((FrameTx::Xhr(Box::new(sender)), FrameRx::new(reader)))
        }
        Target::Sse { path, .. } => {
            let (read, write) = stream.into_split();
            let host = addr.to_string();
            let reader = Reader::Sse(read, Box::new(SseReader::new(path, &host)));
            Ok((FrameTx::Tcp(write, BytesMut::new()), FrameRx::new(reader)))
        }
    }
}

/// Opens a connection and, unless `raw`, CONNECTs as `common.login` and waits for CONNECTED.
pub(crate) async fn connect(
    target: &Target,
    common: &Common,
    source: Option<IpAddr>,
) -> Result<(FrameTx, FrameRx)> {
    let (mut tx, mut rx) = open(target, source).await?;
    // An SSE stream connects (anonymously) with its request: see `subscribe`.
    if !common.raw && !matches!(target, Target::Sse { .. }) {
        let connect = Frame::new(Command::Connect)
            .with_header("accept-version", "1.2")
            .with_header("host", common.host.as_str())
            .with_header("login", common.login.as_str())
            .with_header("passcode", common.passcode.as_str())
            .with_header("heart-beat", "0,0");
        tx.send_frame(&connect).await?;
        let reply = rx.next_frame().await?;
        if reply.command != Command::Connected {
            bail!("CONNECT answered by {}", describe(&reply));
        }
    }
    Ok((tx, rx))
}

/// SUBSCRIBEs (`ack:auto`) with a receipt and waits for the RECEIPT, so the subscription is in
/// place before anything is published. In raw mode (the floor) does nothing.
pub(crate) async fn subscribe(
    tx: &mut FrameTx,
    rx: &mut FrameRx,
    destination: &str,
    raw: bool,
) -> Result<()> {
    if raw {
        return Ok(());
    }
    if let Reader::Sse(read, sse) = &mut rx.reader {
        let request = sse.request(destination);
        tx.feed(Bytes::from(request)).await?;
        tx.flush().await?;
        return sse.open(read, &mut rx.buf).await;
    }
    let subscribe = Frame::new(Command::Subscribe)
        .with_header("id", "0")
        .with_header("destination", destination)
        .with_header("ack", "auto")
        .with_header("receipt", "sub-0");
    tx.send_frame(&subscribe).await?;
    let reply = rx.next_frame().await?;
    if reply.command != Command::Receipt {
        bail!(
            "SUBSCRIBE to {destination} answered by {}",
            describe(&reply)
        );
    }
    Ok(())
}

/// A frame in one line, for errors: the command and the `message` header of an ERROR.
pub(crate) fn describe(frame: &Frame) -> String {
    match frame.header("message") {
        Some(message) => format!("{:?}: {message}", frame.command),
        None => format!("{:?}", frame.command),
    }
}

/// The sending half. Bytes are queued with [`FrameTx::feed`] and written by [`FrameTx::flush`];
/// over WebSocket each fed chunk is one message (one STOMP frame per message).
pub(crate) enum FrameTx {
    Ws(SplitSink<Ws, Message>),
    /// SockJS over WebSocket: each frame a JSON array of one string.
    SockJs(SplitSink<Ws, Message>),
    /// SockJS over XHR: what is fed goes in one `xhr_send` at `flush`.
    Xhr(Box<XhrSender>),
    Tcp(OwnedWriteHalf, BytesMut),
}

impl FrameTx {
    /// Queues one whole frame's bytes.
    pub(crate) async fn feed(&mut self, frame: Bytes) -> Result<()> {
        match self {
            FrameTx::Ws(sink) => {
                let message = match tokio_tungstenite::tungstenite::Utf8Bytes::try_from(frame) {
                    Ok(text) => Message::Text(text),
                    Err(e) => bail!("frame is not UTF-8: {e}"),
                };
                sink.feed(message).await?;
            }
            FrameTx::SockJs(sink) => {
                let text = std::str::from_utf8(&frame).context("frame is not UTF-8")?;
                let array = serde_json::to_string(&[text])?;
                sink.feed(Message::Text(array.into())).await?;
            }
            FrameTx::Xhr(sender) => sender.feed(&frame)?,
            FrameTx::Tcp(write, buf) => {
                buf.extend_from_slice(&frame);
                if buf.len() >= 64 * 1024 {
                    write.write_all(buf).await?;
                    buf.clear();
                }
            }
        }
        Ok(())
    }

    /// Writes everything queued.
    pub(crate) async fn flush(&mut self) -> Result<()> {
        match self {
            FrameTx::Ws(sink) | FrameTx::SockJs(sink) => sink.flush().await?,
            FrameTx::Xhr(sender) => sender.flush().await?,
            FrameTx::Tcp(write, buf) => {
                if !buf.is_empty() {
                    write.write_all(buf).await?;
                    buf.clear();
                }
                write.flush().await?;
            }
        }
        Ok(())
    }

    pub(crate) async fn send_frame(&mut self, frame: &Frame) -> Result<()> {
        let mut out = BytesMut::new();
        encode(frame, Version::V1_2, &mut out);
        self.feed(out.freeze()).await?;
        self.flush().await
    }

    /// Closes the connection politely (WebSocket close; TCP shutdown).
    pub(crate) async fn close(&mut self) {
        match self {
            FrameTx::Ws(sink) | FrameTx::SockJs(sink) => {
                let _ = sink.close().await;
            }
            FrameTx::Xhr(sender) => sender.close().await,
            FrameTx::Tcp(write, _) => {
                let _ = write.shutdown().await;
            }
        }
    }
}

enum Reader {
    Ws(SplitStream<Ws>),
    SockJs(SplitStream<Ws>),
    Tcp(OwnedReadHalf),
    Sse(OwnedReadHalf, Box<SseReader>),
    Xhr(OwnedReadHalf, Box<XhrStream>),
}

/// The receiving half: chunks (WebSocket messages or TCP reads) into a buffer, frames out.
pub(crate) struct FrameRx {
    reader: Reader,
    buf: BytesMut,
    decoder: Decoder,
}

impl FrameRx {
    fn new(reader: Reader) -> FrameRx {
        let mut decoder = Decoder::new(Limits::UNLIMITED);
        decoder.set_version(Version::V1_2);
        FrameRx {
            reader,
            buf: BytesMut::with_capacity(64 * 1024),
            decoder,
        }
    }

    /// The next whole frame already buffered, without reading; heart-beats are skipped.
    pub(crate) fn try_frame(&mut self) -> Result<Option<Frame>> {
        if let Reader::Sse(..) = self.reader {
            return Ok(sse::next_event(&mut self.buf));
        }
        loop {
            match self.decoder.decode(&mut self.buf)? {
                Some(Item::Frame(frame)) => return Ok(Some(frame)),
                Some(Item::HeartBeat) => continue,
                None => return Ok(None),
            }
        }
    }

    /// Reads one more chunk into the buffer. `Ok(false)` when the peer closed.
    pub(crate) async fn read_chunk(&mut self) -> Result<bool> {
        match &mut self.reader {
            Reader::Ws(stream) => loop {
                match stream.next().await {
                    None | Some(Ok(Message::Close(_))) => return Ok(false),
                    Some(Ok(Message::Text(text))) => {
                        self.buf.extend_from_slice(text.as_bytes());
                        return Ok(true);
                    }
                    Some(Ok(Message::Binary(data))) => {
                        self.buf.extend_from_slice(&data);
                        return Ok(true);
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(e.into()),
                }
            },
            Reader::Tcp(read) => {
                self.buf.reserve(64 * 1024);
                Ok(read.read_buf(&mut self.buf).await? > 0)
            }
            Reader::Sse(read, sse) => sse.read(read, &mut self.buf).await,
            Reader::Xhr(read, xhr) => xhr.read(read, &mut self.buf).await,
            Reader::SockJs(stream) => loop {
                let text = match stream.next().await {
                    None | Some(Ok(Message::Close(_))) => return Ok(false),
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(e.into()),
                };
                match text.as_bytes().first() {
                    // `a["frame", ...]`: STOMP bytes, in order.
                    Some(b'a') => {
                        let chunks: Vec<String> = serde_json::from_str(&text[1..])?;
                        for chunk in chunks {
                            self.buf.extend_from_slice(chunk.as_bytes());
                        }
                        return Ok(true);
                    }
                    Some(b'c') => return Ok(false),
                    // `h` (heartbeat), `o`.
                    _ => continue,
                }
            },
        }
    }

    /// The next frame, reading as needed; an error when the peer closes first.
    pub(crate) async fn next_frame(&mut self) -> Result<Frame> {
        loop {
            if let Some(frame) = self.try_frame()? {
                return Ok(frame);
            }
            if !self.read_chunk().await? {
                bail!("connection closed");
            }
        }
    }
}

impl FrameRx {
    /// Drops everything buffered (a reader that only needs to keep the socket drained).
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
    }
}
