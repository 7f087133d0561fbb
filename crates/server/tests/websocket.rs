//! The WebSocket edge over real sockets: subprotocol negotiation, health, text and binary
//! messages both ways, frames split across and batched inside messages, pings.

mod common;

use bytes::Bytes;
use common::*;
use futures::{SinkExt, StreamExt};
use stompbox_codec::Command;
use tokio_tungstenite::tungstenite::Message;

/// Every case of RFC 6455 negotiation: the highest STOMP version offered wins whatever the
/// order or the number of headers; unknown tokens are ignored; no match means no header.
#[tokio::test]
async fn subprotocol_negotiation() {
    let server = TestServer::start(|_| {}).await;
    let cases: &[(&[&str], Option<&str>)] = &[
        (&["v10.stomp"], Some("v10.stomp")),
        (&["v11.stomp"], Some("v11.stomp")),
        (&["v12.stomp"], Some("v12.stomp")),
        (&["v10.stomp, v11.stomp, v12.stomp"], Some("v12.stomp")),
        (&["v12.stomp, v11.stomp, v10.stomp"], Some("v12.stomp")),
        (&["v11.stomp, v12.stomp, v10.stomp"], Some("v12.stomp")),
        (&["v10.stomp, v11.stomp"], Some("v11.stomp")),
        (&["v11.stomp,v10.stomp"], Some("v11.stomp")),
        // Offered across several header fields.
        (&["v10.stomp", "v12.stomp"], Some("v12.stomp")),
        (&["mqtt", "v11.stomp"], Some("v11.stomp")),
        (&["wamp, v10.stomp, soap"], Some("v10.stomp")),
        // Nothing we speak: still served, without the header.
        (&[], None),
        (&["mqtt"], None),
        (&["mqtt, wamp.2.json"], None),
        // Tokens are case-sensitive (RFC 6455 §4.1: the exact token).
        (&["V12.STOMP"], None),
    ];
    for (offered, expected) in cases {
        let response = raw_upgrade(server.ws_addr, "/ws", offered).await;
        assert_eq!(response.status, 101, "offered {offered:?}: {response:?}");
        let echoed = response.all("sec-websocket-protocol");
        match expected {
            Some(protocol) => assert_eq!(echoed, vec![*protocol], "offered {offered:?}"),
            None => assert!(echoed.is_empty(), "offered {offered:?}, got {echoed:?}"),
        }
    }
}

#[tokio::test]
async fn health_and_unknown_paths() {
    let server = TestServer::start(|_| {}).await;
    let response = raw_http(server.ws_addr, "GET /health HTTP/1.1").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let response = raw_http(server.ws_addr, "GET /nope HTTP/1.1").await;
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");
    // A plain GET on the endpoint is not an upgrade.
    let response = raw_http(server.ws_addr, "GET /ws HTTP/1.1").await;
    assert!(response.starts_with("HTTP/1.1 4"), "{response}");
}

async fn raw_http(addr: std::net::SocketAddr, request_line: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = within("connect", tokio::net::TcpStream::connect(addr))
        .await
        .unwrap();
    let request = format!("{request_line}\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    within("http response", stream.read_to_end(&mut response))
        .await
        .unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

/// Text and binary messages are both accepted; a MESSAGE whose body is not UTF-8 arrives as a
/// binary WebSocket message, others as text.
#[tokio::test]
async fn text_and_binary_messages_in_and_out() {
    let server = TestServer::start(|_| {}).await;
    let mut sub = WsClient::connect(&server.ws_url).await;
    sub.subscribe("0", "/topic/mixed").await;
    let mut publisher = WsClient::open(&server.ws_url).await;
    // CONNECT as a binary message.
    publisher.send_binary(&connect_frame()).await;
    assert_eq!(publisher.recv().await.command, Command::Connected);
    assert_eq!(
        publisher.kinds(),
        vec![false],
        "CONNECTED is UTF-8: a text message"
    );

    // A UTF-8 body sent in a binary message comes out as text.
    publisher
        .send_binary(&raw_frame(
            "SEND",
            &[("destination", "/topic/mixed")],
            "héllo".as_bytes(),
        ))
        .await;
    let message = sub.recv().await;
    assert_eq!(message.command, Command::Message);
    assert_eq!(&message.body[..], "héllo".as_bytes());
    assert_eq!(sub.kinds().last(), Some(&false));

    // A non-UTF-8 body (with a NUL inside) sent as text-incompatible binary comes out binary.
    let body = [0xff, 0x00, 0xfe, 0x80, b'x'];
    publisher
        .send_binary(&raw_frame(
            "SEND",
            &[
                ("destination", "/topic/mixed"),
                ("content-length", &body.len().to_string()),
                ("content-type", "application/octet-stream"),
            ],
            &body,
        ))
        .await;
    let message = sub.recv().await;
    assert_eq!(message.command, Command::Message);
    assert_eq!(&message.body[..], &body);
    assert_eq!(
        sub.kinds().last(),
        Some(&true),
        "non-UTF-8 MESSAGE must be a binary message"
    );

    // And a text message with a text body.
    publisher
        .send_text(&raw_frame(
            "SEND",
            &[("destination", "/topic/mixed")],
            b"plain",
        ))
        .await;
    let message = sub.recv().await;
    assert_eq!(&message.body[..], b"plain");
    assert_eq!(sub.kinds().last(), Some(&false));
}

/// One STOMP frame split over several WebSocket messages, of both kinds, at awkward places.
#[tokio::test]
async fn frame_split_across_messages() {
    let server = TestServer::start(|_| {}).await;
    let mut sub = WsClient::connect(&server.ws_url).await;
    sub.subscribe("s", "/topic/split").await;

    let mut client = WsClient::open(&server.ws_url).await;
    let connect = connect_frame();
    for piece in connect.chunks(5) {
        client.send_binary(piece).await;
    }
    assert_eq!(client.recv().await.command, Command::Connected);

    let body = vec![b'a'; 10_000];
    let send = raw_frame(
        "SEND",
        &[("destination", "/topic/split"), ("receipt", "r1")],
        &body,
    );
    let (a, rest) = send.split_at(3); // inside the command
    let (b, rest) = rest.split_at(20); // inside a header
    let (c, d) = rest.split_at(rest.len() - 1); // everything but the NUL
    client.send_text(a).await;
    client.send_binary(b).await;
    client.send_text(c).await;
    client.send_binary(d).await;
    let receipt = client.recv().await;
    assert_eq!(receipt.command, Command::Receipt);
    assert_eq!(receipt.header("receipt-id"), Some("r1"));
    let message = sub.recv().await;
    assert_eq!(message.body.len(), body.len());
}

/// Several frames (and heart-beat EOLs) in one WebSocket message.
#[tokio::test]
async fn several_frames_in_one_message() {
    let server = TestServer::start(|_| {}).await;
    let mut client = WsClient::open(&server.ws_url).await;
    let mut batch = connect_frame();
    batch.extend_from_slice(b"\n");
    batch.extend(raw_frame(
        "SUBSCRIBE",
        &[("destination", "/topic/batch"), ("id", "0")],
        b"",
    ));
    batch.extend_from_slice(b"\r\n");
    for i in 0..3 {
        batch.extend(raw_frame(
            "SEND",
            &[("destination", "/topic/batch")],
            format!("m{i}").as_bytes(),
        ));
    }
    batch.extend(raw_frame("DISCONNECT", &[("receipt", "bye")], b""));
    client.send_text(&batch).await;

    assert_eq!(client.recv().await.command, Command::Connected);
    for i in 0..3 {
        let message = client.recv().await;
        assert_eq!(message.command, Command::Message, "{message:?}");
        assert_eq!(&message.body[..], format!("m{i}").as_bytes());
    }
    let receipt = client.recv().await;
    assert_eq!(receipt.command, Command::Receipt);
    assert_eq!(receipt.header("receipt-id"), Some("bye"));
    // After DISCONNECT's receipt the server closes the socket.
    assert!(client.try_recv().await.is_none());
}

/// WebSocket pings are answered (by the codec) while the session runs.
#[tokio::test]
async fn pings_are_answered() {
    let server = TestServer::start(|_| {}).await;
    let mut client = WsClient::connect(&server.ws_url).await;
    within(
        "ping",
        client
            .socket()
            .send(Message::Ping(Bytes::from_static(b"are you there"))),
    )
    .await
    .unwrap();
    let pong = loop {
        match within("pong", client.socket().next()).await {
            Some(Ok(Message::Pong(payload))) => break payload,
            Some(Ok(Message::Text(_) | Message::Binary(_))) => continue, // heart-beats
            other => panic!("expected a pong, got {other:?}"),
        }
    };
    assert_eq!(&pong[..], b"are you there");
    // The session is still usable.
    client.subscribe("p", "/topic/after-ping").await;
}

/// The endpoint can be mounted on an application's own router next to its routes.
#[tokio::test]
async fn websocket_route_mounts_on_an_app_router() {
    use axum::{Router, routing::get};
    let broker = stompbox_server::Broker::new();
    let app = Router::new()
        .route("/", get(|| async { "app" }))
        .route("/stomp", stompbox_server::websocket_route(broker));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move { axum::serve(listener, app).await });

    let response = raw_upgrade(addr, "/stomp", &["v11.stomp, v12.stomp"]).await;
    assert_eq!(response.status, 101);
    assert_eq!(response.all("sec-websocket-protocol"), vec!["v12.stomp"]);
    let client = WsClient::connect(&format!("ws://{addr}/stomp")).await;
    drop(client);
    task.abort();
}

/// The authenticator sees the upgrade request's URI and headers (a token in a header, a query
/// parameter), and its refusal reaches the client as an ERROR.
#[tokio::test]
async fn authenticator_sees_the_handshake() {
    use futures::future::BoxFuture;
    use stompbox_broker::{AuthError, Authenticator, ConnectRequest, Principal};

    struct TokenAuth;
    impl Authenticator for TokenAuth {
        fn authenticate<'a>(
            &'a self,
            request: ConnectRequest<'a>,
        ) -> BoxFuture<'a, Result<Option<Principal>, AuthError>> {
            let handshake = request.connection.handshake.as_ref();
            let token = handshake.and_then(|h| h.headers.get("x-token")?.to_str().ok());
            let room = handshake.and_then(|h| h.uri.query());
            let verdict = match (token, room) {
                (Some("letmein"), Some("room=7")) => Ok(Some(Principal::new("alice"))),
                _ => Err(AuthError::new("no token")),
            };
            Box::pin(async move { verdict })
        }
    }

    let mut config = stompbox_server::ServerConfig::default();
    // In-process servers of a test run must not share (or create) ./stompbox-data.
    config.store.enabled = false;
    config.websocket.listen = "127.0.0.1:0".parse().unwrap();
    config.tcp.enabled = false;
    let broker = stompbox_server::Broker::builder()
        .authenticator(TokenAuth)
        .build()
        .unwrap();
    let server = stompbox_server::Server::bind_with_broker(config, broker)
        .await
        .unwrap();
    let addr = server.local_ws_addr().unwrap();
    let task = tokio::spawn(server.run(std::future::pending()));

    let url = format!("ws://{addr}/ws?room=7");
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut admitted = WsClient::open_with(stream, &url, &[("x-token", "letmein")]).await;
    admitted.send_frame(&frames::connect()).await;
    admitted.expect_frame(Command::Connected).await;

    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut refused = WsClient::open_with(stream, &url, &[("x-token", "wrong")]).await;
    refused.send_frame(&frames::connect()).await;
    let error = refused.expect_frame(Command::Error).await;
    assert_eq!(error.header("message"), Some("no token"));
    assert!(refused.try_recv().await.is_none());
    task.abort();
}

/// A single WebSocket message over the limit is refused by the WebSocket layer before the broker
/// sees its bytes; the client still gets the STOMP answer an oversize frame gets (ERROR with the
/// numbers, then a close), and other sessions are unaffected.
#[tokio::test]
async fn an_oversize_websocket_message_gets_an_error_frame() {
    const MAX: usize = 64 * 1024;
    let (server, mut bystander) = with_frame_limit(MAX).await;
    let mut client = WsClient::connect(&server.ws_url).await;
    client.send_binary(&vec![b'x'; MAX + 1000]).await;
    assert_refused_as_oversize(&server, &mut client, &mut bystander, MAX + 1000, MAX).await;
}

/// The close frame after a session ends carries a status code (browsers report 1005 "no
/// status" otherwise): 1000 after DISCONNECT, 1008 with the ERROR's message after an error,
/// 1009 for a message too big, 1007 for a text message that is not UTF-8, 1002 for a WebSocket
/// protocol violation.
#[tokio::test]
async fn the_close_frame_says_why_the_session_ended() {
    async fn close_code(client: &mut WsClient) -> (u16, String) {
        loop {
            match within("the close frame", client.socket().next()).await {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return (u16::from(frame.code), frame.reason.to_string());
                }
                Some(Ok(Message::Close(None))) => panic!("a close frame without a status"),
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }
    let server = TestServer::start(|_| {}).await;

    let mut leaving = WsClient::connect(&server.ws_url).await;
    leaving.send_frame(frames::disconnect("bye")).await;
    leaving.expect_receipt("bye").await;
    assert_eq!(close_code(&mut leaving).await, (1000, "disconnect".into()));

    let mut failing = WsClient::connect(&server.ws_url).await;
    failing
        .send_frame(stompbox_codec::Frame::new(Command::Send))
        .await;
    let error = failing.expect_frame(Command::Error).await;
    let (code, reason) = close_code(&mut failing).await;
    assert_eq!(code, 1008);
    assert_eq!(Some(reason.as_str()), error.header("message"));

    // A message over the size limit: the ERROR with the numbers, then 1009 "message too big".
    // (A limit small enough for the whole message to fit the socket buffers: the server stops
    // reading at the limit, and a client still writing megabytes would be reset.)
    let small = TestServer::start(|c| {
        c.broker.max_frame_size = 64 * 1024;
        c.broker.max_body_size = 32 * 1024;
    })
    .await;
    let mut oversize = WsClient::connect(&small.ws_url).await;
    oversize.send_binary(&vec![b'x'; 64 * 1024 + 1]).await;
    oversize.expect_frame(Command::Error).await;
    assert_eq!(close_code(&mut oversize).await.0, 1009);

    // A text message that is not UTF-8: 1007.
    use tokio_tungstenite::tungstenite::protocol::frame::{
        Frame,
        coding::{Data, OpCode},
    };
    let mut garbled = WsClient::connect(&server.ws_url).await;
    let text = Frame::message(vec![0xff, 0xfe], OpCode::Data(Data::Text), true);
    garbled.socket().send(Message::Frame(text)).await.unwrap();
    assert_eq!(close_code(&mut garbled).await.0, 1007);

    // A WebSocket protocol violation (a reserved opcode): 1002, with what was wrong.
    let mut violating = WsClient::connect(&server.ws_url).await;
    let reserved = Frame::message(vec![1], OpCode::Data(Data::Reserved(3)), true);
    violating
        .socket()
        .send(Message::Frame(reserved))
        .await
        .unwrap();
    let (code, reason) = close_code(&mut violating).await;
    assert_eq!(code, 1002);
    assert!(!reason.is_empty());
    server.shutdown().await.unwrap();
}
