//! Two `stompbox` servers with `relay.enabled`, joined through the real RabbitMQ at
//! 127.0.0.1:5672: a TCP subscriber on one receives what a TCP client sends to the other, an SSE
//! stream on one what an HTTP client publishes on the other, and a stopped server's relay is
//! stopped (its queue deleted); `/readyz` follows the relay's connection.
#![cfg(feature = "relay")]

mod common;

use std::time::Duration;

use stompbox_codec::Command;
use stompbox_relay::RelayState;
use stompbox_server::{Server, ServerConfig};

use common::http::{request, sse_path};
use stompbox_test_support::cut_proxy::CutProxy;
use stompbox_test_support::frames;
use stompbox_test_support::tcp::TcpClient;

const WAIT: Duration = Duration::from_secs(30);

struct Node {
    tcp: std::net::SocketAddr,
    http: std::net::SocketAddr,
    relay: stompbox_relay::Relay,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), stompbox_server::Error>>,
}

async fn node(prefix: &str, id: &str) -> Node {
    node_via(prefix, id, None).await
}

/// A node whose relay reaches RabbitMQ at `url` instead of the default.
async fn node_via(prefix: &str, id: &str, url: Option<String>) -> Node {
    let mut config = ServerConfig::default();
    if let Some(url) = url {
        config.relay.urls = vec![url];
    }
    // In-process servers of a test run must not share (or create) ./stompbox-data.
    config.store.enabled = false;
    config.websocket.listen = "127.0.0.1:0".parse().unwrap();
    config.tcp.listen = "127.0.0.1:0".parse().unwrap();
    config.relay.enabled = true;
    config.relay.prefix = prefix.into();
    config.relay.node_id = id.into();
    let server = Server::bind(config).await.unwrap();
    let mut state = server.relay().unwrap().watch_state();
    tokio::time::timeout(WAIT, state.wait_for(|s| *s == RelayState::Connected))
        .await
        .expect("relay connected in time")
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    Node {
        tcp: server.local_tcp_addr().unwrap(),
        http: server.local_ws_addr().unwrap(),
        relay: server.relay().unwrap().clone(),
        stop,
        task: tokio::spawn(server.run(async move {
            let _ = stopped.await;
        })),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_behave_as_one_broker() {
    let prefix = format!("sbtest-{}-server", std::process::id());
    let one = node(&prefix, "one").await;
    let two = node(&prefix, "two").await;
    let mut sub = TcpClient::connect(one.tcp).await;
    sub.subscribe("0", "/topic/greetings").await;
    let path = sse_path(&["/topic/greetings"]);
    let mut sse = request(one.http, "GET", &path, &[], b"").await;
    assert_eq!(sse.status, 200);
    sse.block().await;
    tokio::time::timeout(WAIT, one.relay.synced())
        .await
        .expect("bound in time");
    let mut publisher = TcpClient::connect(two.tcp).await;
    publisher
        .send_frame(&frames::send("/topic/greetings", "from two"))
        .await;
    let message = sub.expect_frame(Command::Message).await;
    assert_eq!(&message.body[..], b"from two");
    assert_eq!(sse.event().await.data, "from two");
    let publish = "/publish?destination=/topic/greetings";
    let response = request(two.http, "POST", publish, &[], b"posted on two").await;
    assert_eq!(response.status, 202);
    assert_eq!(sse.event().await.data, "posted on two");
    let message = sub.expect_frame(Command::Message).await;
    assert_eq!(&message.body[..], b"posted on two");
    drop(sse);

    for node in [one, two] {
        node.stop.send(()).unwrap();
        node.task.await.unwrap().unwrap();
        assert_eq!(node.relay.state(), RelayState::Stopped);
    }
    remove_exchanges(&prefix).await;
}

/// `/readyz` answers 503 while the relay cannot reach RabbitMQ and 200 once it is back, as an
/// orchestrator's readiness probe expects; `/metrics` says the same. The outage is a TCP proxy
/// in front of RabbitMQ that the test cuts, so other tests' RabbitMQ is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_relay_connection() {
    let proxy = CutProxy::start("127.0.0.1:5672".parse().unwrap()).await;
    let prefix = format!("sbtest-{}-ready", std::process::id());
    let url = format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.port);
    let node = node_via(&prefix, "ready", Some(url)).await;
    let probe = || async {
        let response = request(node.http, "GET", "/readyz", &[], b"").await;
        (response.status, response.rest().await)
    };
    let metric = || async {
        let text = request(node.http, "GET", "/metrics", &[], b"")
            .await
            .rest()
            .await;
        (text.lines())
            .find_map(|l| l.strip_prefix("stompbox_relay_connected "))
            .map(str::to_owned)
    };
    assert_eq!(probe().await, (200, "ready\n".to_owned()));
    assert_eq!(metric().await.as_deref(), Some("1"));

    proxy.block();
    let mut state = node.relay.watch_state();
    tokio::time::timeout(WAIT, state.wait_for(|s| *s != RelayState::Connected))
        .await
        .expect("the relay noticed the outage in time")
        .unwrap();
    let (status, why) = probe().await;
    assert_eq!(status, 503, "{why}");
    assert!(why.contains("relay not connected"), "{why}");
    assert_eq!(metric().await.as_deref(), Some("0"));

    proxy.unblock();
    tokio::time::timeout(WAIT, state.wait_for(|s| *s == RelayState::Connected))
        .await
        .expect("the relay reconnected in time")
        .unwrap();
    assert_eq!(probe().await, (200, "ready\n".to_owned()));
    assert_eq!(metric().await.as_deref(), Some("1"));

    node.stop.send(()).unwrap();
    node.task.await.unwrap().unwrap();
    remove_exchanges(&prefix).await;
}

/// The exchanges are the cluster's, never deleted by a node: remove a test's.
async fn remove_exchanges(prefix: &str) {
    let amqp = "amqp://guest:guest@127.0.0.1:5672/%2f";
    let connection = lapin::Connection::connect(amqp, Default::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    for kind in ["topic", "user"] {
        let name = format!("{prefix}.{kind}");
        let options = lapin::options::ExchangeDeleteOptions::default();
        channel
            .exchange_delete(name.as_str().into(), options)
            .await
            .unwrap();
    }
}
