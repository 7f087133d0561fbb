//! Graceful shutdown over real sockets: every client is told, then `run` returns.

mod common;

use common::*;
use stompbox_codec::Command;

#[tokio::test]
async fn clients_get_error_server_shutting_down() {
    let server =
        TestServer::start(|c| c.broker.shutdown_grace = std::time::Duration::from_secs(5)).await;
    let mut ws = WsClient::connect(&server.ws_url).await;
    ws.subscribe("0", "/topic/s").await;
    let mut tcp = TcpClient::connect(server.tcp_addr).await;
    let ws_url = server.ws_url.clone();
    let tcp_addr = server.tcp_addr;

    let shutdown = tokio::spawn(server.shutdown());

    let error = ws.recv().await;
    assert_eq!(error.command, Command::Error, "{error:?}");
    assert_eq!(error.header("message"), Some("server shutting down"));
    assert!(
        ws.try_recv().await.is_none(),
        "websocket closes after the ERROR"
    );

    let error = tcp.recv().await;
    assert_eq!(error.command, Command::Error, "{error:?}");
    assert_eq!(error.header("message"), Some("server shutting down"));
    assert!(tcp.try_recv().await.is_none(), "tcp closes after the ERROR");

    within("run() to return", shutdown)
        .await
        .unwrap()
        .expect("run() returns Ok after a graceful shutdown");

    // Nothing listens any more.
    assert!(tokio::net::TcpStream::connect(tcp_addr).await.is_err());
    let http = ws_url
        .trim_start_matches("ws://")
        .trim_end_matches("/ws")
        .to_owned();
    assert!(tokio::net::TcpStream::connect(http).await.is_err());
}

/// A server with no clients shuts down promptly and cleanly.
#[tokio::test]
async fn idle_server_shuts_down() {
    let server = TestServer::start(|_| {}).await;
    server.shutdown().await.expect("clean shutdown");
}
