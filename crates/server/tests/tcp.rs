//! The TCP edge over real sockets, and traffic between the two edges.

mod common;

use common::*;
use stompbox_codec::Command;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A TCP subscriber receives what a TCP publisher sends, including a binary body; frames may
/// arrive split or batched in any way since TCP is a byte stream.
#[tokio::test]
async fn tcp_end_to_end() {
    let server = TestServer::start(|_| {}).await;
    let mut sub = TcpClient::connect(server.tcp_addr).await;
    sub.send(&raw_frame(
        "SUBSCRIBE",
        &[("destination", "/topic/tcp"), ("id", "0"), ("receipt", "s")],
        b"",
    ))
    .await;
    assert_eq!(sub.recv().await.command, Command::Receipt);

    let mut publisher = TcpClient::connect(server.tcp_addr).await;
    let body = [0u8, 159, 146, 150, b'\n'];
    let mut batch = raw_frame("SEND", &[("destination", "/topic/tcp")], b"one");
    batch.extend(raw_frame(
        "SEND",
        &[("destination", "/topic/tcp"), ("content-length", "5")],
        &body,
    ));
    batch.extend(raw_frame(
        "SEND",
        &[("destination", "/topic/tcp"), ("receipt", "r")],
        b"three",
    ));
    // Byte by byte for the first 40 bytes, then the rest at once.
    let (head, tail) = batch.split_at(40);
    for byte in head {
        publisher.send(std::slice::from_ref(byte)).await;
    }
    publisher.send(tail).await;
    let receipt = publisher.recv().await;
    assert_eq!(receipt.command, Command::Receipt);
    assert_eq!(receipt.header("receipt-id"), Some("r"));

    let bodies: Vec<Vec<u8>> = [sub.recv().await, sub.recv().await, sub.recv().await]
        .into_iter()
        .map(|m| {
            assert_eq!(m.command, Command::Message);
            assert_eq!(m.header("subscription"), Some("0"));
            m.body.to_vec()
        })
        .collect();
    assert_eq!(
        bodies,
        vec![b"one".to_vec(), body.to_vec(), b"three".to_vec()]
    );

    publisher
        .send(&raw_frame("DISCONNECT", &[("receipt", "bye")], b""))
        .await;
    assert_eq!(publisher.recv().await.header("receipt-id"), Some("bye"));
    assert!(
        publisher.try_recv().await.is_none(),
        "socket closes after DISCONNECT"
    );
}

/// Both edges share one broker: a WebSocket publisher reaches a TCP subscriber and back.
#[tokio::test]
async fn websocket_and_tcp_share_the_broker() {
    let server = TestServer::start(|_| {}).await;
    let mut tcp = TcpClient::connect(server.tcp_addr).await;
    tcp.send(&raw_frame(
        "SUBSCRIBE",
        &[
            ("destination", "/topic/bridge"),
            ("id", "t"),
            ("receipt", "s"),
        ],
        b"",
    ))
    .await;
    assert_eq!(tcp.recv().await.command, Command::Receipt);
    let mut ws = WsClient::connect(&server.ws_url).await;
    ws.subscribe("w", "/topic/bridge").await;

    ws.send_text(&raw_frame(
        "SEND",
        &[("destination", "/topic/bridge")],
        b"from ws",
    ))
    .await;
    tcp.send(&raw_frame(
        "SEND",
        &[("destination", "/topic/bridge")],
        b"from tcp",
    ))
    .await;
    let at_tcp = [tcp.recv().await.body, tcp.recv().await.body];
    let at_ws = [ws.recv().await.body, ws.recv().await.body];
    for bodies in [at_tcp, at_ws] {
        let mut bodies: Vec<&[u8]> = bodies.iter().map(|b| &b[..]).collect();
        bodies.sort();
        assert_eq!(bodies, vec![&b"from tcp"[..], &b"from ws"[..]]);
    }
}

/// Every frame ends `NUL EOL`, as RabbitMQ and ActiveMQ end them, so readers that consume one
/// byte after the NUL (PHP's `stomp` extension, Python's `stomper`) keep their framing when two
/// frames arrive in one read; `broker.frame_trailing_eol = false` ends them with NUL alone.
#[tokio::test]
async fn frames_end_with_nul_and_eol_unless_configured_otherwise() {
    for (trailing, ending) in [(true, &b"\0\n"[..]), (false, &b"\0"[..])] {
        let server = TestServer::start(|c| c.broker.frame_trailing_eol = trailing).await;
        let mut stream = within("connect", tokio::net::TcpStream::connect(server.tcp_addr))
            .await
            .unwrap();
        let mut input = raw_frame("CONNECT", &[("accept-version", "1.2")], b"");
        input.extend(raw_frame(
            "SUBSCRIBE",
            &[("id", "0"), ("destination", "/topic/t"), ("receipt", "r")],
            b"",
        ));
        input.extend(raw_frame("SEND", &[("destination", "/topic/t")], b"hi"));
        input.extend(raw_frame("DISCONNECT", &[("receipt", "bye")], b""));
        within("write", stream.write_all(&input)).await.unwrap();
        let mut output = Vec::new();
        within("read to the close", stream.read_to_end(&mut output))
            .await
            .unwrap();
        let frames: Vec<&[u8]> = output.split_inclusive(|&b| b == 0).collect();
        // CONNECTED, RECEIPT r, MESSAGE, RECEIPT bye: each followed by `ending`.
        let text = String::from_utf8_lossy(&output);
        assert_eq!(text.matches('\0').count(), 4, "{text:?}");
        for command in ["CONNECTED\n", "RECEIPT\n", "MESSAGE\n"] {
            assert!(text.contains(command), "{text:?}");
        }
        assert!(output.ends_with(ending), "{text:?}");
        let joined: Vec<u8> = ending.iter().chain(b"RECEIPT").copied().collect();
        assert!(
            output.windows(joined.len()).any(|w| w == joined),
            "{text:?}"
        );
        assert_eq!(frames.len(), if trailing { 5 } else { 4 }, "{text:?}");
        server.shutdown().await.unwrap();
    }
}

/// A client that pipelines frames after one the broker refuses still reads the ERROR: the edge
/// reads and drops what keeps coming until the client's FIN (a lingering close) instead of
/// closing with unread input, which would reset the connection and lose the ERROR on the
/// client's side.
#[tokio::test]
async fn the_error_reaches_a_client_that_keeps_writing() {
    let server = TestServer::start(|_| {}).await;
    let mut client = TcpClient::connect(server.tcp_addr).await;
    let mut bytes = raw_frame("BOGUS", &[], b"");
    let more = raw_frame("SEND", &[("destination", "/topic/x")], &[b'y'; 1000]);
    for _ in 0..2000 {
        bytes.extend_from_slice(&more);
    }
    let stream = client.stream();
    // All 2 MB go out: the server keeps reading after the ERROR.
    within("the pipelined frames", stream.write_all(&bytes))
        .await
        .expect("written while the server lingers");
    stream.shutdown().await.unwrap();
    let mut reply = Vec::new();
    within("the reply", stream.read_to_end(&mut reply))
        .await
        .expect("a clean end, not a reset");
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.contains("ERROR\n"), "{reply}");
    assert!(reply.contains("BOGUS"), "{reply}");
}
