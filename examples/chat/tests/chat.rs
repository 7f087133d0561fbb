//! Drives the chat example over real sockets: the page and stomp.js are served, two users join
//! a room, chat, see the participants, get errors on `/user/queue/errors`, and see a LEAVE.

use stompbox_codec::{Command, Frame};
use stompbox_test_support::{frames, wire::within, ws::WsClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = within("connect", TcpStream::connect(addr)).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    within("response", s.read_to_string(&mut response))
        .await
        .unwrap();
    response
}

fn json(frame: &Frame) -> serde_json::Value {
    serde_json::from_slice(&frame.body).unwrap()
}

async fn joined(url: &str, name: &str) -> WsClient {
    let mut c = WsClient::connect(url).await;
    c.subscribe("room", "/topic/chat.lobby").await;
    c.subscribe("errors", "/user/queue/errors").await;
    let body = format!(r#"{{"sender":"{name}"}}"#);
    c.send_frame(&frames::send("/app/chat.lobby.join", body))
        .await;
    c
}

#[tokio::test]
async fn chat_rooms_end_to_end() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(example_chat::serve(listener, async move {
        let _ = stopped.await;
    }));

    let page = http_get(addr, "/").await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains(r#"<script src="/stomp.umd.min.js"></script>"#));
    let js = http_get(addr, "/stomp.umd.min.js").await;
    assert!(js.contains("content-type: text/javascript"), "{js:.200}");
    assert!(js.contains("StompJs"));

    let url = format!("ws://{addr}/ws");
    let mut ann = joined(&url, "ann").await;
    let m = ann.expect_frame(Command::Message).await;
    assert_eq!(
        json(&m),
        serde_json::json!({"type":"JOIN","sender":"ann","content":""})
    );
    let mut bob = joined(&url, "bob").await;
    for c in [&mut ann, &mut bob] {
        let m = c.expect_frame(Command::Message).await;
        assert_eq!(json(&m)["sender"], "bob");
    }

    // Who is here: a subscribe handler answers this subscription only.
    bob.send_frame(&frames::subscribe("who", "/app/chat.lobby.participants"))
        .await;
    let m = bob.expect_frame(Command::Message).await;
    assert_eq!(m.header("subscription"), Some("who"));
    assert_eq!(json(&m), serde_json::json!(["ann", "bob"]));

    ann.send_frame(&frames::send(
        "/app/chat.lobby.send",
        r#"{"content":"hi bob"}"#,
    ))
    .await;
    for c in [&mut ann, &mut bob] {
        let m = c.expect_frame(Command::Message).await;
        assert_eq!(
            json(&m),
            serde_json::json!({"type":"CHAT","sender":"ann","content":"hi bob"})
        );
    }

    // Mistakes go to the sender's /user/queue/errors; the session stays usable.
    bob.send_frame(&frames::send(
        "/app/chat.kitchen.send",
        r#"{"content":"x"}"#,
    ))
    .await;
    let e = bob.expect_frame(Command::Message).await;
    assert_eq!(e.header("subscription"), Some("errors"));
    assert_eq!(&e.body[..], b"join kitchen before sending to it");
    bob.send_frame(&frames::send("/app/chat.lobby.send", r#"{"text":"x"}"#))
        .await;
    let e = bob.expect_frame(Command::Message).await;
    assert_eq!(e.header("message"), Some("invalid JSON payload"));
    assert!(
        std::str::from_utf8(&e.body)
            .unwrap()
            .contains("missing field `content`")
    );

    // Leaving: the others see LEAVE.
    bob.send_frame(&frames::disconnect("bye")).await;
    bob.expect_frame(Command::Receipt).await;
    let m = ann.expect_frame(Command::Message).await;
    assert_eq!(
        json(&m),
        serde_json::json!({"type":"LEAVE","sender":"bob","content":""})
    );

    stop.send(()).unwrap();
    within("shutdown", server).await.unwrap().unwrap();
}
