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
    let topic = Some(("kind", "topic"));
    assert_eq!(get(&idle, "stompbox_messages_received_total", topic), 0.0);
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
    let queue = Some(("kind", "queue"));
    assert_eq!(get(&busy, "stompbox_messages_received_total", topic), 3.0);
    assert_eq!(get(&busy, "stompbox_messages_received_total", queue), 7.0);
    assert_eq!(get(&busy, "stompbox_messages_delivered_total", topic), 3.0);
    assert_eq!(get(&busy, "stompbox_messages_delivered_total", queue), 0.0);
    let v12 = Some(("version", "1.2"));
    assert_eq!(get(&busy, "stompbox_sessions_by_version", v12), 2.0);
    let all = Some(("le", "+Inf"));
    assert_eq!(get(&busy, "stompbox_outbox_depth_sessions", all), 2.0);
    // Both outboxes are empty (what was sent was received): both count at the lowest bound.
    let empty = Some(("le", "0"));
    assert_eq!(get(&busy, "stompbox_outbox_depth_sessions", empty), 2.0);
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
async fn frames_bytes_and_latency_are_counted() {
    let server = TestServer::start(|_| {}).await;
    let mut subscriber = TcpClient::connect(server.tcp_addr).await;
    subscriber.subscribe("s", "/topic/ticks").await;
    let mut publisher = TcpClient::connect(server.tcp_addr).await;
    // Message ids start at 1 and one in 64 is timed: 70 messages time at least one.
    for i in 0..70 {
        publisher
            .send_frame(frames::send("/topic/ticks", format!("tick {i}")))
            .await;
    }
    publisher
        .send_with_receipt(frames::send("/topic/ticks", "last"), "done")
        .await;
    for _ in 0..71 {
        subscriber.expect_message().await;
    }
    let command = |c| Some(("command", c));
    let scrape = until(&server, "the traffic counted", |s| {
        value(s, "stompbox_frames_sent_total", command("MESSAGE")) == Some(71.0)
    })
    .await;
    assert_eq!(
        get(&scrape, "stompbox_frames_received_total", command("SEND")),
        71.0
    );
    assert_eq!(
        get(
            &scrape,
            "stompbox_frames_received_total",
            command("CONNECT")
        ),
        2.0
    );
    assert_eq!(
        get(
            &scrape,
            "stompbox_frames_received_total",
            command("SUBSCRIBE")
        ),
        1.0
    );
    for (sent, n) in [("CONNECTED", 2.0), ("RECEIPT", 2.0), ("ERROR", 0.0)] {
        assert_eq!(
            get(&scrape, "stompbox_frames_sent_total", command(sent)),
            n,
            "{sent}"
        );
    }
    // 71 SENDs of at least 30 bytes each came in; 71 MESSAGEs of more went out.
    assert!(get(&scrape, "stompbox_received_bytes_total", None) > 71.0 * 30.0);
    assert!(get(&scrape, "stompbox_sent_bytes_total", None) > 71.0 * 60.0);
    let histogram = (scrape.samples.iter())
        .find_map(|s| match &s.value {
            Value::Histogram(buckets) if s.metric.starts_with("stompbox_publish_to_write") => {
                Some(buckets.clone())
            }
            _ => None,
        })
        .expect("the publish-to-write histogram");
    let last = histogram.last().expect("buckets");
    assert_eq!(last.less_than, f64::INFINITY);
    assert!(
        last.count >= 1.0,
        "at least one timed message: {histogram:?}"
    );
    assert!(
        (histogram.windows(2)).all(|w| w[0].count <= w[1].count),
        "cumulative: {histogram:?}"
    );
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
