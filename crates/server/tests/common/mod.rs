//! An in-process server on 127.0.0.1:0; the socket clients come from `stompbox-test-support`
//! (`ws`, `tcp`, `wire`), re-exported here. Every wait is bounded by [`WAIT`].

#![allow(dead_code, unused_imports, unreachable_pub)]

use std::net::SocketAddr;

use stompbox_server::{Broker, Reloader, Server, ServerConfig};
pub use stompbox_test_support::{
    frames, http,
    tcp::TcpClient,
    wire::{SOCKET_WAIT as WAIT, encode, raw_frame, within},
    ws::{RawResponse, WsClient, raw_upgrade, raw_upgrade_with},
};
use tokio::{sync::oneshot, task::JoinHandle};

/// A running in-process server.
pub struct TestServer {
    pub ws_url: String,
    pub ws_addr: SocketAddr,
    pub tcp_addr: SocketAddr,
    /// The admin API's address, when `admin.enabled`.
    pub admin_addr: Option<SocketAddr>,
    pub broker: Broker,
    /// What SIGHUP calls in the binary.
    pub reloader: Reloader,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), stompbox_server::Error>>>,
}

impl TestServer {
    /// A server with both listeners on 127.0.0.1:0 and `tweak` applied to the default config.
    pub async fn start(tweak: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let mut config = ServerConfig::default();
        // In-process servers of a test run must not share (or create) ./stompbox-data.
        config.store.enabled = false;
        config.websocket.listen = "127.0.0.1:0".parse().unwrap();
        config.tcp.listen = "127.0.0.1:0".parse().unwrap();
        tweak(&mut config);
        let server = Server::bind(config).await.expect("bind");
        let ws_url = server.ws_url().unwrap();
        let ws_addr = server.local_ws_addr().unwrap();
        let tcp_addr = server.local_tcp_addr().unwrap();
        let admin_addr = server.local_admin_addr();
        let broker = server.broker().clone();
        let reloader = server.reloader();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        TestServer {
            ws_url,
            ws_addr,
            tcp_addr,
            admin_addr,
            broker,
            reloader,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Triggers graceful shutdown and waits for `run` to return.
    pub async fn shutdown(mut self) -> Result<(), stompbox_server::Error> {
        let _ = self.stop.take().unwrap().send(());
        within("server shutdown", self.task.take().unwrap())
            .await
            .expect("server task panicked")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// CONNECT for STOMP 1.2 with heart-beats off, as bytes.
pub fn connect_frame() -> Vec<u8> {
    encode(&frames::connect())
}

/// A users file in `dir` with `alice` (password `alice-pw`, role `user`) and `root`
/// (`root-pw`, role `admin`).
pub fn users_file(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let path = dir.path().join("users.toml");
    let text = format!(
        "[[user]]\nlogin = \"alice\"\npassword_hash = \"{}\"\nroles = [\"user\"]\n\n\
         [[user]]\nlogin = \"root\"\npassword_hash = \"{}\"\nroles = [\"admin\"]\n",
        stompbox_auth::hash_password("alice-pw"),
        stompbox_auth::hash_password("root-pw"),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// A server whose frames may be at most `max` bytes (bodies half of that), and a client
/// subscribed to `/topic/still` on it, to show that a refused session leaves others alone.
pub async fn with_frame_limit(max: usize) -> (TestServer, WsClient) {
    let server = TestServer::start(|c| {
        c.broker.max_frame_size = max;
        c.broker.max_body_size = max / 2;
    })
    .await;
    let mut bystander = WsClient::connect(&server.ws_url).await;
    bystander.subscribe("0", "/topic/still").await;
    (server, bystander)
}

/// `client` sent something over the `max`-byte frame limit of `server` (from
/// [`with_frame_limit`]): it gets the ERROR an oversize frame gets, naming `at_least` bytes,
/// and is closed, while `bystander` still receives what another client publishes.
pub async fn assert_refused_as_oversize(
    server: &TestServer,
    client: &mut WsClient,
    bystander: &mut WsClient,
    at_least: usize,
    max: usize,
) {
    use stompbox_codec::Command;
    let error = client.expect_frame(Command::Error).await;
    let expected = format!("frame of at least {at_least} bytes exceeds the maximum of {max}");
    assert_eq!(error.header("message"), Some(expected.as_str()));
    assert_eq!(client.try_recv().await, None, "closed after the ERROR");

    let mut publisher = WsClient::connect(&server.ws_url).await;
    publisher
        .send_frame(frames::send("/topic/still", "here"))
        .await;
    let message = bystander.expect_frame(Command::Message).await;
    assert_eq!(&message.body[..], b"here");
}
