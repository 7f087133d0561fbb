//! RabbitMQ itself restarts (its application stopped and started: every connection drops,
//! the nodes' non-durable queues vanish): queued `persistent:true` messages survive it, both
//! relays reconnect and re-declare everything, and topics and queues work again without any
//! client reconnecting; and with `durable_node_queue`, a burst of 100,000 topic messages
//! through a RabbitMQ stopped for 5 s arrives once each, in order. Its own test binary, so no
//! other relay test runs during a restart; its two tests take turns (`RESTARTS`).

mod common;

use std::time::Instant;

use common::*;
use stompbox_broker::Broker;
use stompbox_test_support::frames;

/// One restart at a time: the tests of this binary run in parallel otherwise.
static RESTARTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_queued_messages_survive_a_rabbitmq_restart() {
    let _turn = RESTARTS.lock().await;
    let prefix = prefix("restart");
    let a = node(&prefix, "a").await;
    let b = node(&prefix, "b").await;
    let mut sub = client(&b.broker).await;
    sub.subscribe("t", "/topic/after").await;
    synced(&[&a, &b]).await;

    const N: usize = 20;
    let mut producer = client(&a.broker).await;
    for i in 0..N {
        let send = frames::send("/queue/kept", format!("k{i}")).with_header("persistent", "true");
        producer.send_with_receipt(send, &format!("r{i}")).await;
    }
    let queue = format!("{prefix}.queue.kept");
    expect_queue_details(&queue, &[(queue.clone(), "true".into(), N.to_string())]).await;

    let watchers = [watch_recovery(&a.relay), watch_recovery(&b.relay)];
    let started = Instant::now();
    tokio::task::spawn_blocking(restart_rabbitmq).await.unwrap();
    for watcher in watchers {
        // Down (the restart closed the connection), then connected again.
        watcher.await.unwrap();
    }
    synced(&[&a, &b]).await;
    println!(
        "restart: RabbitMQ stop_app + start_app and both relays connected again in {:?}",
        started.elapsed()
    );

    // The queued messages are still there, once each, in order.
    let mut worker = client(&b.broker).await;
    worker
        .subscribe_with(
            frames::subscribe_ack("w", "/queue/kept", "client-individual")
                .with_header("prefetch-count", "50"),
        )
        .await;
    for i in 0..N {
        let m = worker.expect_message().await;
        assert_eq!(body(&m), format!("k{i}"));
        worker
            .send_frame(frames::ack(m.header("ack").unwrap()))
            .await;
    }
    worker.expect_no_frame(QUIET).await;

    // Node queues and bindings were re-declared: a topic crosses nodes again, from the
    // session that was connected all along.
    producer
        .send_with_receipt(frames::send("/topic/after", "again"), "t")
        .await;
    assert_eq!(body(&sub.expect_message().await), "again");
    sub.expect_no_frame(QUIET).await;

    for c in [producer, sub, worker] {
        c.disconnect().await;
    }
    a.relay.stop().await;
    b.relay.stop().await;
    remove_queues(&[queue, format!("{prefix}.queue.dlq.kept")]).await;
    remove_exchanges(&prefix).await;
}

/// RabbitMQ stopped for 5 s in the middle of a burst (its application stopped, so every
/// connection drops and only durable queues with persistent messages are kept): with durable
/// node queues, what RabbitMQ confirmed before the stop waits in node B's queue, what it did
/// not is published again by node A, and B delivers every message once, in order; the
/// publisher is held meanwhile, never refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_through_a_stopped_rabbitmq_is_delivered_once_in_order() {
    let _turn = RESTARTS.lock().await;
    let prefix = prefix("stopped");
    let durable = |id: &str| {
        let mut config = config(&prefix, id);
        config.durable_node_queue = true;
        config
    };
    let a = node_built(durable("a"), Broker::builder()).await;
    let b = node_built(durable("b"), roomy()).await;
    let outage = async {
        // Bounded more loosely than a cut link: stopping and starting RabbitMQ's application
        // with a publisher in full flow takes it longer on a loaded machine.
        let bound = std::time::Duration::from_secs(90);
        let watchers = [
            watch_recovery_within(&a.relay, bound),
            watch_recovery_within(&b.relay, bound),
        ];
        let started = Instant::now();
        tokio::task::spawn_blocking(|| stop_rabbitmq_for(std::time::Duration::from_secs(5)))
            .await
            .unwrap();
        for watcher in watchers {
            watcher.await.unwrap();
        }
        println!(
            "stopped: RabbitMQ stopped 5 s and both relays connected again in {:?}",
            started.elapsed()
        );
    };
    burst_through(&a, &b, outage).await;
    a.relay.stop().await;
    b.relay.stop().await;
    remove_exchanges(&prefix).await;
}
