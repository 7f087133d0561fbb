//! The TCP edge over real sockets, and traffic between the two edges.

mod common;

use common::*;
use stompbox_codec::Command;

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
