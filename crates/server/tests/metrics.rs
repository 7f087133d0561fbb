//! What operators see, through the HTTP edge: `/metrics` parsed by a Prometheus text parser
//! that is not ours, its values moving under a scripted workload, scrapes refused outside
//! `metrics.allowed_networks`, and the `/healthz` and `/readyz` probes.

mod common;

use std::time::Duration;

use common::http::request;
use common::{TcpClient, TestServer, WsClient, frames, within};
use prometheus_parse::{Scrape, Value};

/// The scrape's samples, parsed.
async fn scrape(server: &TestServer) -> Scrape {
    let response = request(server.ws_addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(response.status, 200, "{}", response.head);
    assert!(
        response
            .head
            .contains("content-type: text/plain; version=0.0.4")
    );
    let text = response.rest().await;
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("the Prometheus text format")
}

/// The value of `metric` with `label` (a name and value), if there is such a sample.
fn value(scrape: &Scrape, metric: &str, label: Option<(&str, &str)>) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == metric && label.is_none_or(|(name, want)| s.labels.get(name) == Some(want))
        })
        .map(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            _ => panic!("{metric} is not a plain value"),
        })
}

fn get(scrape: &Scrape, metric: &str, label: Option<(&str, &str)>) -> f64 {
    value(scrape, metric, label).unwrap_or_else(|| panic!("no {metric} {label:?}"))
}

/// Scrapes until `check` holds: the counters move when the broker's tasks get to it.
async fn until(server: &TestServer, what: &str, check: impl Fn(&Scrape) -> bool) -> Scrape {
    within(what, async {
        loop {
            let scrape = scrape(server).await;
            if check(&scrape) {
                return scrape;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

#[tokio::test]
async fn metrics_move_with_the_traffic() {
    let server = TestServer::start(|c| c.metrics.max_queues = 1).await;
    let idle = scrape(&server).await;
    // The scrape's own HTTP connection counts, as any connection does.
    assert_eq!(get(&idle, "stompbox_connections", None), 1.0);
    let websocket = Some(("transport", "websocket"));
    assert_eq!(get(&idle, "stompbox_sessions", websocket), 0.0);
    assert_eq!(get(&idle, "stompbox_messages_received_total", None), 0.0);
    assert!(get(&idle, "process_resident_memory_bytes", None) > 1e6);
    assert!(get(&idle, "process_open_fds", None) > 3.0);
    assert!(idle.docs.contains_key("stompbox_queue_depth"), "documented");

    let mut subscriber = WsClient::connect(&server.ws_url).await;
    subscriber.subscribe("s", "/topic/news").await;
    let mut publisher = TcpClient::connect(server.tcp_addr).await;
    for i in 0..3 {
        let receipt = format!("t{i}");
        let send = frames::send("/topic/news", "hello");
        publisher.send_with_receipt(send, &receipt).await;
    }
    for (queue, count) in [("/queue/jobs", 5), ("/queue/other", 2)] {
        for i in 0..count {
            let receipt = format!("{queue}{i}");
            let send = frames::send(queue, "job");
            publisher.send_with_receipt(send, &receipt).await;
        }
    }
    for _ in 0..3 {
        subscriber.expect_message().await;
    }
    let busy = scrape(&server).await;
    assert_eq!(get(&busy, "stompbox_sessions", websocket), 1.0);
    assert_eq!(
        get(&busy, "stompbox_sessions", Some(("transport", "tcp"))),
        1.0
    );
    assert_eq!(get(&busy, "stompbox_messages_received_total", None), 10.0);
    assert_eq!(get(&busy, "stompbox_messages_delivered_total", None), 3.0);
    assert_eq!(get(&busy, "stompbox_queues", None), 2.0);
    // Only the deepest queue, as metrics.max_queues = 1 asks.
    let jobs = Some(("queue", "/queue/jobs"));
    assert_eq!(get(&busy, "stompbox_queue_depth", jobs), 5.0);
    assert_eq!(get(&busy, "stompbox_queue_enqueued_total", jobs), 5.0);
    let other = Some(("queue", "/queue/other"));
    assert_eq!(value(&busy, "stompbox_queue_depth", other), None);

    // A client that breaks the protocol, and one that leaves politely.
    let mut rude = TcpClient::connect(server.tcp_addr).await;
    rude.send_bytes(&b"NONSENSE\n\n\0"[..]).await;
    rude.expect_frame(stompbox_codec::Command::Error).await;
    subscriber.send_frame(frames::disconnect("bye")).await;
    subscriber.expect_receipt("bye").await;
    let closed = |reason| Some(("reason", reason));
    let after = until(&server, "the closes counted", |s| {
        value(
            s,
            "stompbox_sessions_closed_total",
            closed("protocol_error"),
        ) == Some(1.0)
            && value(s, "stompbox_sessions_closed_total", closed("disconnect")) == Some(1.0)
    })
    .await;
    assert_eq!(get(&after, "stompbox_sessions", websocket), 0.0);
    assert_eq!(
        get(
            &after,
            "stompbox_sessions_closed_total",
            closed("slow_consumer")
        ),
        0.0
    );
    drop(publisher);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn probes_and_refused_scrapes() {
    let server = TestServer::start(|c| c.metrics.allowed_networks = vec!["10.9.9.9".into()]).await;
    let addr = server.ws_addr;
    let refused = request(addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(refused.status, 403);
    let text = refused.rest().await;
    assert!(text.contains("metrics.allowed_networks"), "{text}");

    for path in ["/healthz", "/health", "/readyz"] {
        let response = request(addr, "GET", path, &[], b"").await;
        assert_eq!(response.status, 200, "{path}");
    }
    // Draining: not ready, still alive.
    let broker = server.broker.clone();
    let draining = tokio::spawn(async move { broker.shutdown().await });
    let not_ready = request(addr, "GET", "/readyz", &[], b"").await;
    assert_eq!(not_ready.status, 503);
    assert!(not_ready.rest().await.contains("shutting down"));
    assert_eq!(request(addr, "GET", "/healthz", &[], b"").await.status, 200);
    within("the broker's shutdown", draining).await.unwrap();
    server.shutdown().await.unwrap();
}
