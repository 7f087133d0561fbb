//! `/queue` in RabbitMQ: competing consumers across nodes get each message exactly once,
//! queued messages survive the node that received them, NACK redelivers with
//! `redelivered:true`, a subscription's unacknowledged messages go back on UNSUBSCRIBE, and a
//! poison message is dead-lettered after `queues.max_deliveries`, as on one node.

mod common;

use std::collections::BTreeMap;

use common::*;
use stompbox_test_support::{TestClient, frames};

fn subscribe_individual(id: &str, destination: &str, prefetch: &str) -> stompbox_codec::Frame {
    frames::subscribe_ack(id, destination, "client-individual")
        .with_header("prefetch-count", prefetch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn competing_consumers_across_nodes_get_each_message_once() {
    let prefix = prefix("compete");
    let a = node(&prefix, "a").await;
    let b = node(&prefix, "b").await;
    let mut consumers: Vec<TestClient> = Vec::new();
    for n in [&a, &b, &a, &b] {
        let mut c = client(&n.broker).await;
        c.subscribe_with(subscribe_individual("w", "/queue/jobs", "5"))
            .await;
        consumers.push(c);
    }
    const N: usize = 60;
    let mut publisher = client(&a.broker).await;
    for i in 0..N {
        let send = frames::send("/queue/jobs", i.to_string()).with_header("persistent", "true");
        publisher.send_frame(send).await;
    }
    publisher
        .send_with_receipt(frames::send("/topic/none", "flush"), "r")
        .await;
    // Round-robin over the consumers, each acking what it got, until all N arrived.
    let mut seen: BTreeMap<usize, usize> = BTreeMap::new();
    let mut per_consumer = [0usize; 4];
    let quiet = std::time::Duration::from_millis(100);
    let deadline = tokio::time::Instant::now() + WAIT;
    while seen.len() < N {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {N} arrived",
            seen.len()
        );
        for (k, c) in consumers.iter_mut().enumerate() {
            while let Ok(m) = tokio::time::timeout(quiet, c.expect_message()).await {
                let i: usize = body(&m).parse().unwrap();
                *seen.entry(i).or_default() += 1;
                per_consumer[k] += 1;
                c.send_frame(frames::ack(m.header("ack").unwrap())).await;
            }
        }
    }
    for c in &mut consumers {
        c.expect_no_frame(QUIET).await;
    }
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        (0..N).collect::<Vec<_>>()
    );
    assert!(seen.values().all(|&n| n == 1), "duplicates: {seen:?}");
    println!("queue: {N} messages over 4 consumers on 2 nodes, once each: {per_consumer:?}");
    // Nothing left waiting; the dead-letter queue is declared with its queue.
    expect_queue_details(
        &format!("{prefix}.queue."),
        &[
            (
                format!("{prefix}.queue.dlq.jobs"),
                "true".into(),
                "0".into(),
            ),
            (format!("{prefix}.queue.jobs"), "true".into(), "0".into()),
        ],
    )
    .await;
    for c in consumers {
        c.disconnect().await;
    }
    a.relay.stop().await;
    b.relay.stop().await;
    let queues = [
        format!("{prefix}.queue.jobs"),
        format!("{prefix}.queue.dlq.jobs"),
    ];
    remove_queues(&queues).await;
    remove_exchanges(&prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_messages_survive_their_node_and_nack_redelivers() {
    let prefix = prefix("durable");
    let a = node(&prefix, "a").await;
    let mut publisher = client(&a.broker).await;
    for i in 0..3 {
        let send = frames::send("/queue/orders", format!("o{i}")).with_header("persistent", "true");
        publisher.send_frame(send).await;
    }
    publisher.disconnect().await;
    // Node a stops (flushing what it buffered): the messages live in RabbitMQ, not in a.
    a.relay.stop().await;
    let queue = format!("{prefix}.queue.orders");
    expect_queue_details(&queue, &[(queue.clone(), "true".into(), "3".into())]).await;

    let b = node(&prefix, "b").await;
    let mut c = client(&b.broker).await;
    c.subscribe_with(subscribe_individual("o", "/queue/orders", "10"))
        .await;
    let first = c.expect_message().await;
    assert_eq!(body(&first), "o0");
    // Queue deliveries say whether they are first ones, as on one node.
    assert_eq!(first.header("redelivered"), Some("false"));
    assert_eq!(first.header("x-delivery-count"), Some("0"));
    c.send_frame(frames::nack(first.header("ack").unwrap()))
        .await;
    // The other two, and o0 again (RabbitMQ requeues it at its place), redelivered.
    let mut rest = Vec::new();
    for _ in 0..3 {
        let m = c.expect_message().await;
        rest.push((body(&m), m.header("redelivered").map(str::to_owned)));
        c.send_frame(frames::ack(m.header("ack").unwrap())).await;
    }
    rest.sort();
    assert_eq!(
        rest,
        [
            ("o0".to_owned(), Some("true".to_owned())),
            ("o1".to_owned(), Some("false".to_owned())),
            ("o2".to_owned(), Some("false".to_owned()))
        ]
    );
    c.expect_no_frame(QUIET).await;

    // Unacknowledged messages go back to the queue when the subscription ends.
    let mut p = client(&b.broker).await;
    p.send_with_receipt(frames::send("/queue/orders", "o3"), "s")
        .await;
    let m = c.expect_message().await;
    assert_eq!(body(&m), "o3");
    c.send_with_receipt(frames::unsubscribe("o"), "u").await;
    let mut d = client(&b.broker).await;
    d.subscribe_with(subscribe_individual("o", "/queue/orders", "10"))
        .await;
    let again = d.expect_message().await;
    assert_eq!(
        (body(&again).as_str(), again.header("redelivered")),
        ("o3", Some("true"))
    );
    d.send_frame(frames::ack(again.header("ack").unwrap()))
        .await;
    d.disconnect().await;
    c.disconnect().await;
    p.disconnect().await;
    b.relay.stop().await;
    remove_queues(&[queue, format!("{prefix}.queue.dlq.orders")]).await;
    remove_exchanges(&prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_is_dead_lettered_after_max_deliveries() {
    let prefix = prefix("poison");
    let mut config = stompbox_broker::Config::default();
    config.queues.max_deliveries = 3;
    let a = node_with(
        &prefix,
        "a",
        stompbox_broker::Broker::builder().config(config),
    )
    .await;
    let mut producer = client(&a.broker).await;
    producer
        .send_with_receipt(frames::send("/queue/work", "poison"), "p")
        .await;
    producer
        .send_with_receipt(frames::send("/queue/work", "fine"), "f")
        .await;

    let mut worker = client(&a.broker).await;
    worker
        .subscribe_with(subscribe_individual("w", "/queue/work", "1"))
        .await;
    let mut poison_deliveries = 0;
    let mut fine = 0;
    while poison_deliveries < 3 || fine < 1 {
        let m = worker.expect_message().await;
        let ack = m.header("ack").unwrap();
        match body(&m).as_str() {
            "poison" => {
                poison_deliveries += 1;
                worker.send_frame(frames::nack(ack)).await;
            }
            other => {
                assert_eq!(other, "fine");
                fine += 1;
                worker.send_frame(frames::ack(ack)).await;
            }
        }
    }
    // The third NACK was the last: no fourth delivery, the message waits in the DLQ.
    worker.expect_no_frame(QUIET).await;
    let mut dead = client(&a.broker).await;
    dead.subscribe_with(subscribe_individual("d", "/queue/dlq.work", "10"))
        .await;
    let letter = dead.expect_message().await;
    assert_eq!(body(&letter), "poison");
    assert_eq!(letter.header("x-original-destination"), Some("/queue/work"));
    dead.send_frame(frames::ack(letter.header("ack").unwrap()))
        .await;
    dead.expect_no_frame(QUIET).await;
    println!("poison: {poison_deliveries} deliveries, then /queue/dlq.work");

    for c in [producer, worker, dead] {
        c.disconnect().await;
    }
    a.relay.stop().await;
    let queues = [
        format!("{prefix}.queue.work"),
        format!("{prefix}.queue.dlq.work"),
    ];
    remove_queues(&queues).await;
    remove_exchanges(&prefix).await;
}
