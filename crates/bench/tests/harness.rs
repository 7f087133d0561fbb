//! The harness runs (tiny sizes) against an in-process Stompbox and the floor, and its counts
//! are exact. Never timed: speed is what the binary measures, not what tests assert.

use std::time::Duration;

use stompbox_bench::{Common, Connections, Floor, Load, Report, Scenario, body::Padding, run};
use stompbox_server::{Server, ServerConfig};
use tokio::sync::oneshot;

/// Bound on every run in these tests.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);

struct Stompbox {
    ws_url: String,
    tcp_url: String,
    stop: Option<oneshot::Sender<()>>,
}

impl Stompbox {
    async fn start() -> Stompbox {
        Stompbox::start_with_store(None).await
    }

    /// With a message store in `data_dir`; none (the store off) otherwise.
    async fn start_with_store(data_dir: Option<&std::path::Path>) -> Stompbox {
        let mut config = ServerConfig::default();
        // In-process servers of a test run must not share (or create) ./stompbox-data.
        match data_dir {
            Some(dir) => config.store.data_dir = dir.to_path_buf(),
            None => config.store.enabled = false,
        }
        config.websocket.listen = "127.0.0.1:0".parse().unwrap();
        config.tcp.listen = "127.0.0.1:0".parse().unwrap();
        let server = Server::bind(config).await.expect("bind");
        let ws_url = server.ws_url().unwrap();
        let tcp_url = format!("tcp://{}", server.local_tcp_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Stompbox {
            ws_url,
            tcp_url,
            stop: Some(stop),
        }
    }
}

impl Drop for Stompbox {
    fn drop(&mut self) {
        let _ = self.stop.take().map(|stop| stop.send(()));
    }
}

async fn floor_url() -> String {
    let floor = Floor::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = floor.local_addr().unwrap();
    tokio::spawn(floor.run());
    format!("ws://{addr}/")
}

fn common(url: &str) -> Common {
    let mut common = Common::new(url);
    common.timeout = RUN_TIMEOUT;
    common
}

fn tiny(publishers: usize, subscribers: usize, messages: u64) -> Load {
    let mut load = Load::new(publishers, subscribers);
    load.amount = stompbox_bench::Amount::Messages(messages);
    // Small enough that the window is exercised.
    load.window = 16;
    load
}

/// Runs a load scenario and checks it is exact; returns its report.
async fn exact(scenario: Scenario, expected: u64) -> stompbox_bench::LoadReport {
    let report = run(scenario).await;
    let json = report.to_json();
    let Report::Load(report) = report else {
        panic!("a load report: {json}")
    };
    assert!(report.ok, "{json}");
    assert_eq!(report.error, None, "{json}");
    assert_eq!(report.expected, expected, "{json}");
    assert_eq!(report.delivered, expected, "{json}");
    assert_eq!(
        (report.lost, report.duplicates, report.out_of_order),
        (0, 0, 0),
        "{json}"
    );
    assert!(report.latency_us.is_some(), "{json}");
    *report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_over_websocket_and_tcp_is_exact() {
    let server = Stompbox::start().await;
    let report = exact(
        Scenario::Fanout(common(&server.ws_url), tiny(2, 3, 200)),
        2 * 200 * 3,
    )
    .await;
    assert_eq!(report.sent, 400);
    exact(
        Scenario::Fanout(common(&server.tcp_url), tiny(2, 3, 200)),
        2 * 200 * 3,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_with_permessage_deflate_and_json_bodies_is_exact() {
    let server = Stompbox::start().await;
    let mut per_delivery = Vec::new();
    for deflate in [false, true] {
        let mut common = common(&server.ws_url);
        common.deflate = deflate;
        let mut load = tiny(1, 3, 300);
        load.body = 1024;
        load.padding = Padding::Json;
        let report = exact(Scenario::Fanout(common, load), 300 * 3).await;
        per_delivery.push(report.wire_bytes_per_delivery.unwrap());
    }
    // Uncompressed, each delivery is its 1 KiB body plus headers and framing; compressed, the
    // JSON shrinks by half or more (DEFLATE is deterministic; batching only helps it).
    let [plain, compressed] = per_delivery[..] else {
        unreachable!()
    };
    assert!(
        plain > 1024.0,
        "{plain} wire bytes per uncompressed delivery"
    );
    assert!(
        compressed < plain * 0.6,
        "{compressed} wire bytes per compressed delivery against {plain}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_at_a_rate_is_exact() {
    let server = Stompbox::start().await;
    let mut load = tiny(1, 2, 50);
    load.rate = Some(5000.0);
    exact(Scenario::Fanout(common(&server.ws_url), load), 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_and_queue_are_exact() {
    let server = Stompbox::start().await;
    exact(
        Scenario::Topics(common(&server.ws_url), tiny(2, 5, 101)),
        202,
    )
    .await;
    exact(
        Scenario::Queue(common(&server.ws_url), tiny(2, 3, 150)),
        300,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_queue_run_waits_for_receipts_and_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let server = Stompbox::start_with_store(Some(dir.path())).await;
    let mut load = tiny(2, 3, 150);
    load.persistent = true;
    load.body = 1024;
    exact(Scenario::Queue(common(&server.tcp_url), load), 300).await;
}

#[tokio::test]
async fn fanout_over_the_floor_is_exact() {
    let url = floor_url().await;
    let mut common = common(&url);
    common.raw = true;
    exact(Scenario::Fanout(common, tiny(2, 3, 200)), 1200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_all_connect_and_subscribe() {
    let server = Stompbox::start().await;
    let mut common = common(&server.ws_url);
    // Our own process holds the in-process server: its RSS is read, not asserted on.
    common.pid = Some(std::process::id());
    let mut sizes = Connections::new(20);
    sizes.sources = 4;
    sizes.settle = Duration::ZERO;
    let report = run(Scenario::Connections(common, sizes)).await;
    let json = report.to_json();
    let Report::Connections(report) = report else {
        panic!("a connections report: {json}")
    };
    assert!(report.ok, "{json}");
    assert_eq!(report.connected, 20, "{json}");
    assert!(report.rss_per_conn_kib.is_some(), "{json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_against_nothing_fails_with_an_error() {
    // A port nobody listens on: bind one, learn it, close it.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let report = run(Scenario::Fanout(
        common(&format!("ws://{addr}/ws")),
        tiny(1, 1, 10),
    ))
    .await;
    assert!(!report.ok());
    assert!(
        report.to_json().contains("\"error\":\"connecting"),
        "{}",
        report.to_json()
    );
}
