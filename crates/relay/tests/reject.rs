//! NACK with `requeue:false` on a queue RabbitMQ holds: dead-lettered at once, as on one node.
//! In a file of its own: its quorum queue declarations never race the other tests' ones.

mod common;

use common::*;
use stompbox_test_support::frames;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nack_with_requeue_false_dead_letters_at_once() {
    let prefix = prefix("reject");
    let a = node(&prefix, "a").await;
    let mut dead = client(&a.broker).await;
    dead.subscribe_with(frames::subscribe_ack(
        "d",
        "/queue/dlq.work",
        "client-individual",
    ))
    .await;
    let mut worker = client(&a.broker).await;
    worker
        .subscribe_with(frames::subscribe_ack(
            "w",
            "/queue/work",
            "client-individual",
        ))
        .await;
    let mut producer = client(&a.broker).await;
    producer
        .send_with_receipt(frames::send("/queue/work", "refused"), "p")
        .await;
    let m = worker.expect_message().await;
    assert_eq!(m.header("redelivered"), Some("false"));
    let reject = frames::nack(m.header("ack").unwrap()).with_header("requeue", "false");
    worker.send_frame(reject).await;
    // Not redelivered: RabbitMQ dead-letters it (max_deliveries would have allowed 5).
    let letter = dead.expect_message().await;
    assert_eq!(body(&letter), "refused");
    assert_eq!(letter.header("x-original-destination"), Some("/queue/work"));
    dead.send_frame(frames::ack(letter.header("ack").unwrap()))
        .await;
    worker.expect_no_frame(QUIET).await;
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
