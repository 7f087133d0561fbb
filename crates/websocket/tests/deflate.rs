//! permessage-deflate end to end: frames written by hand (fragmented, interleaved with pings,
//! over the limit, corrupt) read through a server socket, and a client and server of this
//! crate talking over a real TCP connection through axum.

use std::time::Duration;

use flate2::{Compress, Compression, FlushCompress};
use futures::{SinkExt, StreamExt};
use stompbox_websocket::{
    Deflate, DeflateConfig, WebSocket, WebSocketUpgrade,
    tungstenite::{
        Error, Message,
        error::CapacityError,
        protocol::{Role, WebSocketConfig},
    },
};
use tokio::io::{AsyncWriteExt, DuplexStream};

const DEFLATE: Deflate = Deflate {
    level: 1,
    min_size: 0,
    window_bits: 15,
    peer_takeover: false,
};

/// `payload` compressed as RFC 7692 §7.2.1 says, with its own compressor.
fn compressed(payload: &[u8]) -> Vec<u8> {
    let mut compress = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(payload.len() + 64);
    compress
        .compress_vec(payload, &mut out, FlushCompress::Sync)
        .unwrap();
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

/// A client's frame: masked with a key that changes bytes.
fn frame(fin: bool, rsv1: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | (u8::from(rsv1) << 6) | opcode];
    match payload.len() {
        len @ 0..=125 => out.push(0x80 | len as u8),
        len @ 126..=0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    let key = [0x37, 0xfa, 0x21, 0x3d];
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

async fn server(max: usize) -> (DuplexStream, WebSocket<DuplexStream>) {
    let (client, server) = tokio::io::duplex(1 << 20);
    let config = WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    let socket = WebSocket::from_raw_socket(server, Role::Server, config, Some(DEFLATE)).await;
    (client, socket)
}

async fn next(socket: &mut WebSocket<DuplexStream>) -> Result<Message, Error> {
    tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .expect("a message within 10 s")
        .expect("the stream goes on")
}

const NOTE: &str =
    r#"{"type":"like","post":981,"by":{"id":7,"name":"ada"},"at":"2026-12-05T16:00:00Z"}"#;

#[tokio::test]
async fn fragments_and_pings_between_them_are_read() {
    let (mut client, mut socket) = server(1 << 20).await;
    let body = NOTE.repeat(50);
    let deflated = compressed(body.as_bytes());
    let (a, rest) = deflated.split_at(deflated.len() / 3);
    let (b, c) = rest.split_at(rest.len() / 2);
    let mut bytes = frame(false, true, 1, a);
    bytes.extend(frame(true, false, 9, b"are you there"));
    bytes.extend(frame(false, false, 0, b));
    bytes.extend(frame(true, false, 0, c));
    // An uncompressed message after it, itself fragmented, then a compressed binary one.
    bytes.extend(frame(false, false, 1, b"plain "));
    bytes.extend(frame(true, false, 0, b"text"));
    bytes.extend(frame(true, true, 2, &compressed(&[7u8; 3000])));
    // Written a few bytes at a time, so that headers and payloads arrive split.
    let writer = tokio::spawn(async move {
        for chunk in bytes.chunks(7) {
            client.write_all(chunk).await.unwrap();
        }
        client
    });
    assert_eq!(
        next(&mut socket).await.unwrap(),
        Message::Ping("are you there".into())
    );
    assert_eq!(next(&mut socket).await.unwrap(), Message::text(body));
    assert_eq!(
        next(&mut socket).await.unwrap(),
        Message::text("plain text")
    );
    assert_eq!(
        next(&mut socket).await.unwrap(),
        Message::binary(vec![7u8; 3000])
    );
    writer.await.unwrap();
}

#[tokio::test]
async fn a_message_that_inflates_past_the_limit_is_too_long() {
    let (mut client, mut socket) = server(64 * 1024).await;
    let bomb = compressed(&vec![b'a'; 5_000_000]);
    assert!(bomb.len() < 100_000, "{}", bomb.len());
    client
        .write_all(&frame(true, true, 1, &bomb))
        .await
        .unwrap();
    match next(&mut socket).await {
        Err(Error::Capacity(CapacityError::MessageTooLong { size, max_size })) => {
            assert_eq!((size, max_size), (64 * 1024 + 1, 64 * 1024));
        }
        other => panic!("expected message too long, got {other:?}"),
    }
}

#[tokio::test]
async fn compressed_fragments_over_the_limit_are_not_collected() {
    let (mut client, mut socket) = server(1000).await;
    let noise: Vec<u8> = (0..900u32).map(|i| (i * 7919 % 251) as u8).collect();
    client
        .write_all(&frame(false, true, 2, &noise))
        .await
        .unwrap();
    client
        .write_all(&frame(true, false, 0, &noise))
        .await
        .unwrap();
    match next(&mut socket).await {
        Err(Error::Capacity(CapacityError::MessageTooLong { size, .. })) => assert_eq!(size, 1800),
        other => panic!("expected message too long, got {other:?}"),
    }
}

#[tokio::test]
async fn rsv1_where_it_has_no_meaning_is_still_a_protocol_error() {
    let (mut client, mut socket) = server(1 << 20).await;
    // RSV1 on a control frame.
    client.write_all(&frame(true, true, 9, b"x")).await.unwrap();
    assert!(matches!(next(&mut socket).await, Err(Error::Protocol(_))));
}

#[tokio::test]
async fn corrupt_deflate_fails_the_connection() {
    let (mut client, mut socket) = server(1 << 20).await;
    client
        .write_all(&frame(true, true, 1, &[0xff; 40]))
        .await
        .unwrap();
    let error = next(&mut socket).await.unwrap_err();
    assert!(error.to_string().contains("not valid DEFLATE"), "{error}");
}

#[tokio::test]
async fn a_client_and_server_agree_and_compress_both_ways() -> anyhow::Result<()> {
    let route = axum::routing::get(|upgrade: WebSocketUpgrade| async move {
        upgrade
            .protocols(["v12.stomp"])
            .deflate(Some(&DeflateConfig::default()))
            .on_upgrade(|mut socket| async move {
                assert!(socket.deflate().is_some());
                while let Some(Ok(message)) = socket.next().await {
                    if (message.is_text() || message.is_binary())
                        && socket.send(message).await.is_err()
                    {
                        break;
                    }
                }
            })
    });
    let app = axum::Router::new().route("/ws", route);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let read = std::sync::Arc::<std::sync::atomic::AtomicUsize>::default();
    let counted = counted(tcp, read.clone());
    let request = http::Request::builder()
        .uri(format!("ws://{addr}/ws"))
        .header("host", addr.to_string())
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-protocol", "v12.stomp")
        .body(())?;
    let config = DeflateConfig::default();
    let (mut ws, response) =
        WebSocket::client(counted, request, WebSocketConfig::default(), Some(&config)).await?;
    assert_eq!(
        response.headers()["sec-websocket-extensions"],
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    );
    assert!(ws.deflate().is_some_and(|d| !d.peer_takeover));
    let handshake = read.load(std::sync::atomic::Ordering::Relaxed);
    let body = NOTE.repeat(100);
    for _ in 0..10 {
        ws.send(Message::text(body.clone())).await?;
        let echoed = tokio::time::timeout(Duration::from_secs(10), ws.next()).await?;
        assert_eq!(echoed.expect("open")?, Message::text(body.clone()));
    }
    // Short messages go as they are.
    ws.send(Message::text("hi")).await?;
    let echoed = tokio::time::timeout(Duration::from_secs(10), ws.next()).await?;
    assert_eq!(echoed.expect("open")?, Message::text("hi"));
    let received = read.load(std::sync::atomic::Ordering::Relaxed) - handshake;
    assert!(
        received < 10 * body.len() / 5,
        "{received} bytes on the wire for {} bytes of messages",
        10 * body.len()
    );
    Ok(())
}

/// A TCP stream whose reads are counted into `read`, to see how much crossed the wire.
fn counted(
    tcp: tokio::net::TcpStream,
    read: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin {
    tokio_util::io::InspectReader::new(tcp, move |bytes: &[u8]| {
        read.fetch_add(bytes.len(), std::sync::atomic::Ordering::Relaxed);
    })
}
