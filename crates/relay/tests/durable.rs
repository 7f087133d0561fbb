//! Durable topic subscriptions held in RabbitMQ (with `relay.queues`, the default): what is
//! published on any node while the subscriber is away is kept in the subscription's durable
//! queue and delivered, in order, wherever it subscribes again; what it did not acknowledge
//! comes back `redelivered`; subscribing with the same name to another destination starts it
//! afresh; UNSUBSCRIBE with `durable:true` deletes its queues; its bounds are RabbitMQ's.

mod common;

use std::collections::VecDeque;

use common::*;
use stompbox_codec::Frame;
use stompbox_test_support::{TestClient, frames};

fn durable(id: &str, destination: &str) -> Frame {
    frames::subscribe_ack(id, destination, "client-individual").with_header("durable", "true")
}

/// Waits until RabbitMQ holds messages in `queue` (its counts lag behind for quorum queues).
async fn kept_some(queue: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while queue_details(queue)
        .first()
        .is_none_or(|(_, _, n)| n == "0")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing kept in {queue}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Publishes bodies `0`..`n` to `exchange` with `key`, one AMQP message each, confirmed.
async fn publish_amqp(exchange: &str, key: &str, n: usize) {
    let connection =
        lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
            .await
            .unwrap();
    let channel = connection.create_channel().await.unwrap();
    (channel.confirm_select(Default::default()).await).unwrap();
    for i in 0..n {
        let confirm = channel
            .basic_publish(
                exchange.into(),
                key.into(),
                Default::default(),
                i.to_string().as_bytes(),
                Default::default(),
            )
            .await
            .unwrap();
        assert!(confirm.await.unwrap().is_ack());
    }
    connection.close(200, "done".into()).await.unwrap();
}

/// The next `n` messages' bodies, each acknowledged.
async fn take_acked(c: &mut TestClient, early: &mut VecDeque<Frame>, n: usize) -> Vec<String> {
    let mut bodies = Vec::new();
    for _ in 0..n {
        let m = next(c, early).await;
        c.send_frame(frames::ack(m.header("ack").unwrap())).await;
        bodies.push(body(&m));
    }
    bodies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_subscription_keeps_what_any_node_publishes_for_any_node() {
    let prefix = prefix("durable");
    let a = node(&prefix, "a").await;
    let b = node(&prefix, "b").await;
    let (queue, definition) = (
        format!("{prefix}.durable.alice.feed"),
        format!("{prefix}.durable-def.alice.feed"),
    );

    // Subscribed on A; its RECEIPT means the queue is bound: B's publish after it is kept.
    let mut alice = login(&a.broker, "alice").await;
    alice
        .subscribe_with(durable("feed", "/topic/scores.*"))
        .await;
    assert_eq!(
        queues(&format!("{prefix}.durable")),
        [definition.clone(), queue.clone()]
    );
    let mut publisher = client(&b.broker).await;
    publisher
        .send_with_receipt(frames::send("/topic/scores.live", "live"), "p0")
        .await;
    let m = alice.expect_message().await;
    assert_eq!(
        (m.header("destination"), m.header("subscription")),
        (Some("/topic/scores.live"), Some("feed"))
    );
    alice
        .send_frame(frames::ack(m.header("ack").unwrap()))
        .await;
    alice.disconnect().await;

    // Away: 200 messages from B (sent back to back, so the relay batches some), kept.
    const N: usize = 200;
    for i in 0..N {
        let mut send = frames::send("/topic/scores.x", i.to_string());
        if i % 2 == 0 {
            send = send.with_header("persistent", "true");
        }
        publisher.send_frame(send).await;
    }
    publisher
        .send_with_receipt(frames::send("/topic/none", "flush"), "p1")
        .await;
    kept_some(&queue).await;

    // Back on B: everything, in order; the last one is not acknowledged.
    let mut alice = login(&b.broker, "alice").await;
    let mut early = subscribe_early(&mut alice, durable("feed", "/topic/scores.*")).await;
    let got = take_acked(&mut alice, &mut early, N - 1).await;
    let expected: Vec<String> = (0..N - 1).map(|i| i.to_string()).collect();
    assert_eq!(got, expected);
    let last = next(&mut alice, &mut early).await;
    assert_eq!(
        (body(&last), last.header("destination")),
        (format!("{}", N - 1), Some("/topic/scores.x"))
    );
    assert_eq!(last.header("redelivered"), Some("false"));
    alice.expect_no_frame(QUIET).await;
    alice.disconnect().await;

    // Back on A: the unacknowledged one, redelivered, with the others of the batch it came
    // in (a batch is settled with RabbitMQ as one message: at least once).
    let mut alice = login(&a.broker, "alice").await;
    let mut early = subscribe_early(&mut alice, durable("feed", "/topic/scores.*")).await;
    let mut again = Vec::new();
    while let Ok(m) = tokio::time::timeout(QUIET, next(&mut alice, &mut early)).await {
        assert_eq!(m.header("redelivered"), Some("true"), "{m:?}");
        alice
            .send_frame(frames::ack(m.header("ack").unwrap()))
            .await;
        again.push(body(&m));
    }
    let k = again.len();
    assert!((1..=64).contains(&k), "{again:?}");
    let suffix: Vec<String> = (N - k..N).map(|i| i.to_string()).collect();
    assert_eq!(again, suffix);
    println!("durable: {N} kept while away, in order; {k} back after one was left unacknowledged");
    alice.disconnect().await;

    // Three kept for the old destination, then the same name for another: it starts afresh.
    for i in 0..3 {
        publisher
            .send_frame(frames::send("/topic/scores.x", format!("old {i}")))
            .await;
    }
    publisher
        .send_with_receipt(frames::send("/topic/none", "flush"), "p2")
        .await;
    kept_some(&queue).await;
    let mut alice = login(&b.broker, "alice").await;
    alice.subscribe_with(durable("feed", "/topic/news")).await;
    publisher
        .send_with_receipt(frames::send("/topic/scores.x", "not for it"), "p3")
        .await;
    publisher
        .send_with_receipt(frames::send("/topic/news", "fresh"), "p4")
        .await;
    let m = alice.expect_message().await;
    assert_eq!(
        (body(&m), m.header("destination")),
        ("fresh".to_owned(), Some("/topic/news"))
    );
    alice
        .send_frame(frames::ack(m.header("ack").unwrap()))
        .await;
    alice.expect_no_frame(QUIET).await;

    // UNSUBSCRIBE with durable:true: both queues are gone, from whichever node.
    alice
        .send_with_receipt(
            frames::unsubscribe("feed").with_header("durable", "true"),
            "u",
        )
        .await;
    assert_eq!(queues(&format!("{prefix}.durable")), Vec::<String>::new());
    alice.disconnect().await;
    publisher.disconnect().await;
    a.relay.stop().await;
    b.relay.stop().await;
    remove_exchanges(&prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_subscription_keeps_its_newest_within_its_bounds() {
    let prefix = prefix("durable-bounds");
    let mut config = stompbox_broker::Config::default();
    config.durable.max_messages = 5;
    let a = node_with(
        &prefix,
        "a",
        stompbox_broker::Broker::builder().config(config),
    )
    .await;
    let mut bob = login(&a.broker, "bob").await;
    bob.subscribe_with(
        frames::subscribe("d", "/topic/ticks").with_header("activemq.subscriptionName", "t"),
    )
    .await;
    bob.disconnect().await;
    // Published one by one by an AMQP client: the relay would batch messages sent back to
    // back, and RabbitMQ counts a batch as one message.
    publish_amqp(&format!("{prefix}.topic"), "ticks", 8).await;
    let queue = format!("{prefix}.durable.bob.t");
    expect_queue_details(&queue, &[(queue.clone(), "true".into(), "5".into())]).await;
    let mut bob = login(&a.broker, "bob").await;
    let mut early = subscribe_early(
        &mut bob,
        frames::subscribe("d", "/topic/ticks").with_header("activemq.subscriptionName", "t"),
    )
    .await;
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(body(&next(&mut bob, &mut early).await));
    }
    assert_eq!(got, ["3", "4", "5", "6", "7"], "the oldest dropped first");
    bob.expect_no_frame(QUIET).await;
    bob.send_with_receipt(
        frames::unsubscribe("d").with_header("activemq.subscriptionName", "t"),
        "u",
    )
    .await;
    assert_eq!(queues(&format!("{prefix}.durable")), Vec::<String>::new());
    a.relay.stop().await;
    remove_exchanges(&prefix).await;
}
