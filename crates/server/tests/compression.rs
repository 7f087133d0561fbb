//! permessage-deflate on the WebSocket endpoint (`[websocket.compression]`): negotiated when
//! offered, STOMP carried both ways compressed, a message that inflates past the frame limit
//! answered like any oversize frame, and nothing negotiated when it is off.

mod common;

use common::*;
use stompbox_codec::Command;

const NOTE: &str = r#"{"type":"match-found","match":{"id":81237,"opponent":{"id":42,"name":"ada","rating":1712},"map":"harbour"}}"#;

#[tokio::test]
async fn stomp_runs_compressed_both_ways_when_offered() {
    let server = TestServer::start(|_| {}).await;
    let response =
        raw_upgrade_offering(server.ws_addr, "permessage-deflate; client_max_window_bits").await;
    assert_eq!(
        response.all("sec-websocket-extensions"),
        vec!["permessage-deflate; server_no_context_takeover; client_no_context_takeover"]
    );

    let mut subscriber = WsClient::open_compressed(&server.ws_url).await;
    assert!(
        subscriber.deflate().is_some(),
        "the server accepted the offer"
    );
    subscriber.handshake(frames::connect()).await;
    subscriber.subscribe("0", "/topic/matches").await;
    let mut publisher = WsClient::open_compressed(&server.ws_url).await;
    publisher.handshake(frames::connect()).await;
    // Bodies from a few bytes (sent as they are) to many kilobytes (compressed).
    for repeat in [0, 1, 10, 200] {
        let body = format!("{repeat}:{}", NOTE.repeat(repeat));
        let before = subscriber.wire_bytes_read();
        publisher
            .send_frame(frames::send("/topic/matches", body.clone()))
            .await;
        let message = subscriber.expect_frame(Command::Message).await;
        assert_eq!(&message.body[..], body.as_bytes());
        if repeat == 200 {
            let wire = subscriber.wire_bytes_read() - before;
            assert!(
                wire < body.len() / 4,
                "{wire} bytes on the wire for {body:?}"
            );
        }
    }
    // An uncompressed client on the same topic sees the same.
    let mut plain = WsClient::connect(&server.ws_url).await;
    assert!(plain.deflate().is_none());
    plain.subscribe("0", "/topic/matches").await;
    publisher
        .send_frame(frames::send("/topic/matches", NOTE.repeat(30)))
        .await;
    let before = [subscriber.wire_bytes_read(), plain.wire_bytes_read()];
    for client in [&mut subscriber, &mut plain] {
        let message = client.expect_frame(Command::Message).await;
        assert_eq!(&message.body[..], NOTE.repeat(30).as_bytes());
    }
    let compressed = subscriber.wire_bytes_read() - before[0];
    let uncompressed = plain.wire_bytes_read() - before[1];
    assert!(
        compressed < uncompressed / 4 && uncompressed > NOTE.len() * 30,
        "{compressed} bytes compressed against {uncompressed} plain"
    );
}

#[tokio::test]
async fn a_message_that_inflates_past_the_frame_limit_gets_an_error_frame() {
    const MAX: usize = 64 * 1024;
    let (server, mut bystander) = with_frame_limit(MAX).await;
    let mut client = WsClient::open_compressed(&server.ws_url).await;
    client.handshake(frames::connect()).await;
    // 4 MiB of one letter: a few KiB compressed.
    let mut bomb = b"SEND\ndestination:/topic/still\n\n".to_vec();
    bomb.resize(4 << 20, b'a');
    client.send_text(&bomb).await;
    assert_refused_as_oversize(&server, &mut client, &mut bystander, MAX + 1, MAX).await;
}

#[tokio::test]
async fn nothing_is_negotiated_when_compression_is_off() {
    let server = TestServer::start(|c| c.websocket.compression.enabled = false).await;
    let response = raw_upgrade_offering(server.ws_addr, "permessage-deflate").await;
    assert_eq!(response.status, 101);
    assert!(response.all("sec-websocket-extensions").is_empty());
    let mut client = WsClient::open_compressed(&server.ws_url).await;
    assert!(client.deflate().is_none());
    client.handshake(frames::connect()).await;
    client.subscribe("0", "/topic/x").await;
    client
        .send_frame(frames::send("/topic/x", NOTE.repeat(10)))
        .await;
    let message = client.expect_frame(Command::Message).await;
    assert_eq!(&message.body[..], NOTE.repeat(10).as_bytes());
}

/// The upgrade's response to an offer of `extensions`.
async fn raw_upgrade_offering(addr: std::net::SocketAddr, extensions: &str) -> RawResponse {
    raw_upgrade_with(
        addr,
        "/ws",
        &[
            ("Sec-WebSocket-Protocol", "v12.stomp"),
            ("Sec-WebSocket-Extensions", extensions),
        ],
    )
    .await
}
