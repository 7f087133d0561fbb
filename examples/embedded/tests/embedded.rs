//! Drives the embedded example: a WebSocket subscriber receives what `POST /announce` publishes.

use stompbox_codec::Command;
use stompbox_test_support::{wire::within, ws::WsClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn http_post(addr: std::net::SocketAddr, path: &str, body: &str) -> String {
    let mut s = within("connect", TcpStream::connect(addr)).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    within("response", s.read_to_string(&mut response))
        .await
        .unwrap();
    response
}

#[tokio::test]
async fn an_http_route_publishes_to_websocket_subscribers() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(example_embedded::serve(listener, async move {
        let _ = stopped.await;
    }));
    let mut client = WsClient::connect(&format!("ws://{addr}/stomp")).await;
    client.subscribe("0", "/topic/announcements").await;
    let response = http_post(addr, "/announce", "hello").await;
    assert!(response.starts_with("HTTP/1.1 202"), "{response}");
    assert!(
        response.ends_with("delivered to 1 subscribers\n"),
        "{response}"
    );
    let m = client.expect_frame(Command::Message).await;
    assert_eq!(&m.body[..], b"hello");
    stop.send(()).unwrap();
    within("shutdown", server).await.unwrap().unwrap();
}
