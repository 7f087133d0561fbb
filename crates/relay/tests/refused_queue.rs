//! A queue RabbitMQ refuses (it exists with other arguments) refuses that subscription only.
//! In a file of its own, so its failing declaration never runs beside the other tests'
//! quorum queue declarations on the shared RabbitMQ.

mod common;

use common::*;
use stompbox_test_support::frames;

/// RabbitMQ refusing one subscription's queue (it exists with other arguments, so the relay's
/// declare fails on that subscription's channel) refuses that subscription only: the link stays
/// up, and topics still cross nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_rabbitmq_refuses_does_not_take_the_relay_down() {
    let prefix = prefix("refused");
    let queue = format!("{prefix}.queue.jobs");
    // A classic queue where the relay declares a quorum one.
    let connection =
        lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
            .await
            .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let durable = lapin::options::QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let arguments = lapin::types::FieldTable::default();
    (channel
        .queue_declare(queue.as_str().into(), durable, arguments)
        .await)
        .unwrap();
    connection.close(200, "done".into()).await.unwrap();

    let a = node(&prefix, "a").await;
    let b = node(&prefix, "b").await;
    let mut state = a.relay.watch_state();
    state.mark_unchanged();
    let mut worker = client(&a.broker).await;
    worker.subscribe("w", "/queue/jobs").await;
    // The link applies the subscription after the RECEIPT; refused, it used to go down (and
    // meet the same refusal after every reconnect).
    tokio::time::sleep(QUIET).await;
    assert!(
        !state.has_changed().unwrap(),
        "the relay left Connected: {:?}",
        a.relay.state()
    );
    let mut sub = client(&b.broker).await;
    sub.subscribe("t", "/topic/still").await;
    synced(&[&a, &b]).await;
    let mut publisher = client(&a.broker).await;
    (publisher.send_with_receipt(frames::send("/topic/still", "up"), "r")).await;
    assert_eq!(body(&sub.expect_message().await), "up");
    assert_eq!(a.relay.state(), stompbox_relay::RelayState::Connected);
    for c in [worker, sub, publisher] {
        c.disconnect().await;
    }
    a.relay.stop().await;
    b.relay.stop().await;
    remove_queues(&[queue, format!("{prefix}.queue.dlq.jobs")]).await;
    remove_exchanges(&prefix).await;
}
