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

/// Graceful drain with 200 clients, over TCP and WebSocket, each holding unacknowledged queue
/// messages: every client gets what was queued to it, then ERROR `server shutting down` as its
/// last frame; every unacknowledged message goes back to its queue (none lost); `/readyz`
/// answers 200 before, and the node says it is shutting down (what `/readyz` reads) during.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_200_clients_flushes_each_then_errors_and_returns_every_unacked_message() {
    const TCP: usize = 150;
    const WS: usize = 50;
    const PREFETCH: usize = 3;
    const MESSAGES: usize = 1000;
    let server =
        TestServer::start(|c| c.broker.shutdown_grace = std::time::Duration::from_secs(10)).await;
    let broker = server.broker.clone();
    let subscribe = |c: &str| {
        frames::subscribe_ack(c, "/queue/work", "client-individual")
            .with_header("prefetch-count", PREFETCH.to_string())
    };
    let mut tcp = Vec::new();
    for i in 0..TCP {
        let mut c = TcpClient::connect(server.tcp_addr).await;
        c.subscribe_with(subscribe(&format!("q{i}"))).await;
        c.subscribe("news", "/topic/news").await;
        tcp.push(c);
    }
    let mut ws = Vec::new();
    for i in 0..WS {
        let mut c = WsClient::connect(&server.ws_url).await;
        c.subscribe_with(subscribe(&format!("w{i}"))).await;
        c.subscribe("news", "/topic/news").await;
        ws.push(c);
    }
    let mut producer = TcpClient::connect(server.tcp_addr).await;
    for i in 0..MESSAGES {
        producer
            .send_frame(frames::send("/queue/work", format!("m{i}")))
            .await;
    }
    producer
        .send_with_receipt(frames::send("/topic/news", "news"), "sent")
        .await;
    // Every consumer holds its prefetch; the rest waits in the queue.
    let stats = broker.queue_stats("/queue/work").unwrap();
    assert_eq!(stats.in_flight, (TCP + WS) * PREFETCH, "{stats:?}");
    let ready = common::http::request(server.ws_addr, "GET", "/readyz", &[], b"").await;
    assert_eq!(ready.status, 200);

    let shutdown = tokio::spawn(server.shutdown());
    let mut seen = std::collections::HashSet::new();
    // Each client, in turn: its deliveries, then the ERROR, then the end of the connection.
    macro_rules! drain {
        ($clients:expr) => {
            for (i, c) in $clients.iter_mut().enumerate() {
                let (mut work, mut news) = (0, 0);
                loop {
                    let f = c.recv().await;
                    match f.command {
                        Command::Message if f.header("destination") == Some("/topic/news") => {
                            news += 1
                        }
                        Command::Message => {
                            work += 1;
                            let body = String::from_utf8(f.body.to_vec()).unwrap();
                            assert!(seen.insert(body), "a message delivered twice");
                        }
                        Command::Error => {
                            assert_eq!(f.header("message"), Some("server shutting down"));
                            break;
                        }
                        other => panic!("client {i}: unexpected {other:?}"),
                    }
                }
                assert_eq!((work, news), (PREFETCH, 1), "client {i}");
                assert!(
                    c.try_recv().await.is_none(),
                    "client {i}: closed after the ERROR"
                );
            }
        };
    }
    drain!(tcp);
    assert!(broker.is_shutting_down());
    drain!(ws);
    within("run() to return", shutdown)
        .await
        .unwrap()
        .expect("a clean shutdown");
    assert_eq!(seen.len(), (TCP + WS) * PREFETCH);
    // Nothing was acknowledged: every message is back in the queue, none lost.
    let stats = broker.queue_stats("/queue/work").unwrap();
    assert_eq!(
        (stats.depth, stats.in_flight, stats.consumers),
        (MESSAGES, 0, 0),
        "{stats:?}"
    );
}
