//! Nodes joined through the real RabbitMQ at 127.0.0.1:5672 (`AMQP_URL` overrides), each test
//! with its own prefix so tests never see each other's exchanges and queues.
#![allow(dead_code, unreachable_pub)]

use std::collections::VecDeque;
use std::process::Command;
use std::time::{Duration, Instant};

use stompbox_broker::{Broker, BrokerBuilder};
use stompbox_codec::Frame;
use stompbox_relay::{Relay, RelayConfig, RelayState};
use stompbox_test_support::{TestClient, frames};

/// Generous: the machine may be loaded (benchmarks, a cargo build) while tests run.
pub const WAIT: Duration = Duration::from_secs(30);
/// How long "nothing more arrives" is watched.
pub const QUIET: Duration = Duration::from_millis(300);

pub fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// A prefix unique to this test and process.
pub fn prefix(test: &str) -> String {
    format!("sbtest-{}-{test}", std::process::id())
}

pub struct Node {
    pub broker: Broker,
    pub relay: Relay,
}

pub fn config(prefix: &str, id: &str) -> RelayConfig {
    RelayConfig {
        enabled: true,
        urls: vec![amqp_url()],
        prefix: prefix.into(),
        node_id: id.into(),
        reconnect_min: Duration::from_millis(50),
        reconnect_max: Duration::from_millis(500),
        ..RelayConfig::default()
    }
}

pub async fn node(prefix: &str, id: &str) -> Node {
    node_with(prefix, id, Broker::builder()).await
}

/// A node with a configuration of the test's own.
pub async fn node_from(config: RelayConfig) -> Node {
    node_built(config, Broker::builder()).await
}

pub async fn node_with(prefix: &str, id: &str, builder: BrokerBuilder) -> Node {
    node_built(config(prefix, id), builder).await
}

/// A node with a relay configuration and a broker of the test's own.
pub async fn node_built(config: RelayConfig, builder: BrokerBuilder) -> Node {
    let (relay, link) = Relay::new(config).unwrap();
    let broker = builder.backplane(relay.backplane()).build().unwrap();
    link.start(broker.clone());
    wait_connected(&relay).await;
    Node { broker, relay }
}

/// A broker whose subscribers may fall far behind: the flush after an outage arrives as fast
/// as RabbitMQ sends it, faster than a test reads (the default outbox would end such a
/// subscriber as a slow consumer, which is not what the burst tests test).
pub fn roomy() -> BrokerBuilder {
    let mut config = stompbox_broker::Config::default();
    config.outbox.max_frames = 1_000_000;
    config.outbox.max_bytes = 512 * 1024 * 1024;
    Broker::builder().config(config)
}

/// 100,000 messages from one publisher on node `a` to a subscriber on node `b`; halfway, the
/// next 20,000 are sent while `outage` runs (it returns once the outage is over and the relays
/// are back). Every message must arrive once, in order, and the publisher must never be
/// refused: held while the relay's buffer is full, not disconnected.
pub async fn burst_through(a: &Node, b: &Node, outage: impl std::future::Future<Output = ()>) {
    const N: usize = 100_000;
    const DURING: usize = 20_000;
    let mut subscriber = client(&b.broker).await;
    subscriber.subscribe("s", "/topic/burst").await;
    synced(&[a, b]).await;
    let receiving = tokio::spawn(async move {
        for i in 0..N {
            let message = subscriber.expect_message().await;
            assert_eq!(body(&message), i.to_string(), "once each, in order");
        }
        assert_eq!(body(&subscriber.expect_message().await), "end");
        subscriber.expect_no_frame(QUIET).await;
        subscriber
    });
    let mut publisher = client(&a.broker).await;
    let mut send = async |from: usize, to: usize| {
        for i in from..to {
            let send = frames::send("/topic/burst", i.to_string());
            publisher.send_frame(send).await;
        }
    };
    send(0, N / 2).await;
    tokio::join!(outage, send(N / 2, N / 2 + DURING));
    send(N / 2 + DURING, N).await;
    publisher
        .send_with_receipt(frames::send("/topic/burst", "end"), "end")
        .await;
    let subscriber = tokio::time::timeout(Duration::from_secs(180), receiving)
        .await
        .expect("every message in time")
        .expect("once each, in order");
    assert_eq!(a.relay.refused(), 0, "the publisher was never refused");
    subscriber.disconnect().await;
    publisher.disconnect().await;
}

pub async fn wait_connected(relay: &Relay) {
    let mut state = relay.watch_state();
    tokio::time::timeout(WAIT, state.wait_for(|s| *s == RelayState::Connected))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "relay {} not connected: {:?}",
                relay.node_id(),
                relay.state()
            )
        })
        .unwrap();
}

/// Waits until every node's bindings match its subscriptions.
pub async fn synced(nodes: &[&Node]) {
    for n in nodes {
        tokio::time::timeout(WAIT, n.relay.synced())
            .await
            .expect("bindings not synced in time");
    }
}

pub async fn login(broker: &Broker, user: &str) -> TestClient {
    let (mut c, _) =
        TestClient::connect_with(broker, frames::connect().with_header("login", user)).await;
    c.set_wait(WAIT);
    c
}

pub async fn client(broker: &Broker) -> TestClient {
    let mut c = TestClient::connect(broker).await;
    c.set_wait(WAIT);
    c
}

pub fn body(frame: &stompbox_codec::Frame) -> String {
    String::from_utf8(frame.body.to_vec()).unwrap()
}

fn rabbitmqctl(args: &[&str]) -> String {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl runs");
    assert!(out.status.success(), "rabbitmqctl {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Watches a relay from before its connection is cut: returns when it saw the cut (left
/// `Connected`) and when it was connected again, within [`WAIT`].
pub fn watch_recovery(relay: &Relay) -> tokio::task::JoinHandle<(Instant, Instant)> {
    watch_recovery_within(relay, WAIT)
}

/// [`watch_recovery`] with a bound of the test's own; the panic names the relay and its state.
pub fn watch_recovery_within(
    relay: &Relay,
    bound: Duration,
) -> tokio::task::JoinHandle<(Instant, Instant)> {
    let node = relay.node_id().to_owned();
    let last = relay.watch_state();
    let mut state = relay.watch_state();
    state.mark_unchanged();
    tokio::spawn(async move {
        let wait = async {
            state.changed().await.unwrap();
            let down = Instant::now();
            loop {
                if *state.borrow_and_update() == RelayState::Connected {
                    return (down, Instant::now());
                }
                state.changed().await.unwrap();
            }
        };
        match tokio::time::timeout(bound, wait).await {
            Ok(recovered) => recovered,
            Err(_) => panic!(
                "relay {node} did not recover within {bound:?}: {:?}",
                *last.borrow()
            ),
        }
    })
}

/// Stops and starts the RabbitMQ application (the Erlang node stays up): every connection
/// drops, non-durable queues are gone, durable ones come back from disk.
pub fn restart_rabbitmq() {
    stop_rabbitmq_for(Duration::ZERO);
}

/// [`restart_rabbitmq`], with RabbitMQ stopped for `pause` in between.
pub fn stop_rabbitmq_for(pause: Duration) {
    rabbitmqctl(&["stop_app"]);
    std::thread::sleep(pause);
    rabbitmqctl(&["start_app"]);
    rabbitmqctl(&["await_startup"]);
}

/// Queue names in RabbitMQ starting with `prefix`.
pub fn queues(prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = rabbitmqctl(&["list_queues", "name", "-q", "--no-table-headers"])
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| l.starts_with(prefix))
        .collect();
    names.sort();
    names
}

/// `(source exchange, routing key)` of bindings from this prefix's exchanges.
pub fn bindings(prefix: &str) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = rabbitmqctl(&[
        "list_bindings",
        "source_name",
        "routing_key",
        "-q",
        "--no-table-headers",
    ])
    .lines()
    .filter_map(|l| {
        let mut parts = l.split('\t');
        Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
    })
    .filter(|(source, _)| source.starts_with(prefix))
    .collect();
    found.sort();
    found
}

/// Closes this relay's AMQP connection from the RabbitMQ side, as an outage would.
pub fn close_connection(relay: &Relay) {
    let listing = rabbitmqctl(&[
        "list_connections",
        "pid",
        "client_properties",
        "-q",
        "--no-table-headers",
    ]);
    let needle = format!("\"{}\"", relay.connection_name());
    let pid = listing
        .lines()
        .find(|l| l.contains(&needle))
        .and_then(|l| l.split('\t').next())
        .unwrap_or_else(|| panic!("no connection named {needle} in:\n{listing}"))
        .to_owned();
    rabbitmqctl(&[
        "close_connection",
        &pid,
        "stompbox relay test: simulated outage",
    ]);
}

/// `(name, durable, messages)` of the prefix's queues.
pub fn queue_details(prefix: &str) -> Vec<(String, String, String)> {
    let mut found: Vec<(String, String, String)> = rabbitmqctl(&[
        "list_queues",
        "name",
        "durable",
        "messages",
        "-q",
        "--no-table-headers",
    ])
    .lines()
    .filter_map(|l| {
        let mut parts = l.split('\t');
        let name = parts.next()?.trim().to_owned();
        Some((
            name,
            parts.next()?.trim().to_owned(),
            parts.next()?.trim().to_owned(),
        ))
    })
    .filter(|(name, _, _)| name.starts_with(prefix))
    .collect();
    found.sort();
    found
}

/// Waits until `queue_details(prefix)` is `expected`: quorum queues publish their message
/// counts to `rabbitmqctl` every few seconds, not at once. Panics with the last listing after
/// `WAIT`.
pub async fn expect_queue_details(prefix: &str, expected: &[(String, String, String)]) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let found = queue_details(prefix);
        if found == expected {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            assert_eq!(found, expected, "queues of {prefix} after {WAIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Deletes durable queues a test made (STOMP queues live on after their nodes).
pub async fn remove_queues(names: &[String]) {
    let connection =
        lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
            .await
            .unwrap();
    let channel = connection.create_channel().await.unwrap();
    for name in names {
        let options = lapin::options::QueueDeleteOptions::default();
        channel
            .queue_delete(name.as_str().into(), options)
            .await
            .unwrap();
    }
    connection.close(200, "done".into()).await.unwrap();
}

/// Deletes the prefix's exchanges (shared by the cluster, so nodes never delete them).
pub async fn remove_exchanges(prefix: &str) {
    let connection =
        lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
            .await
            .unwrap();
    let channel = connection.create_channel().await.unwrap();
    for kind in ["topic", "user", "inbox", "inbox-keep"] {
        channel
            .exchange_delete(
                format!("{prefix}.{kind}").as_str().into(),
                lapin::options::ExchangeDeleteOptions::default(),
            )
            .await
            .unwrap();
    }
    connection.close(200, "done".into()).await.unwrap();
}

/// Subscribes with `frame` and a receipt, and returns the messages that came before the
/// RECEIPT: what a durable subscription or an inbox kept may overtake it (as a queue's
/// waiting messages do on one node).
pub async fn subscribe_early(c: &mut TestClient, frame: Frame) -> VecDeque<Frame> {
    c.send_frame(frame.with_header("receipt", "early")).await;
    let mut early = VecDeque::new();
    loop {
        let f = c.recv().await;
        match f.command {
            stompbox_codec::Command::Receipt => {
                assert_eq!(f.header("receipt-id"), Some("early"));
                return early;
            }
            stompbox_codec::Command::Message => early.push_back(f),
            _ => panic!("unexpected {f:?}"),
        }
    }
}

/// The next message: one that came before the RECEIPT (`subscribe_early`), else the next to
/// arrive.
pub async fn next(c: &mut TestClient, early: &mut VecDeque<Frame>) -> Frame {
    match early.pop_front() {
        Some(m) => m,
        None => c.expect_message().await,
    }
}
