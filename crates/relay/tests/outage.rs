//! RabbitMQ closes both relays' connections mid-stream: sessions stay connected, what was
//! published meanwhile is delivered after recovery (none lost), every subscription is bound
//! again, and the cluster works without any client reconnecting. Prints the recovery time.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use stompbox_relay::{Relay, RelayState};
use stompbox_test_support::frames;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_connection_recovers_without_clients_reconnecting() {
    let prefix = prefix("outage");
    let a = node(&prefix, "a").await;
    let b = node(&prefix, "b").await;
    let mut sub = client(&b.broker).await;
    sub.subscribe("t", "/topic/ticks").await;
    let mut alice = login(&b.broker, "alice").await;
    // A queue consumer on b, for jobs sent on a: its consumer is started again after the cut.
    let mut worker = client(&b.broker).await;
    let individual = frames::subscribe_ack("w", "/queue/work", "client-individual");
    worker
        .subscribe_with(individual.with_header("prefetch-count", "20"))
        .await;
    synced(&[&a, &b]).await;

    const N: usize = 300;
    const CUT_AT: usize = 100;
    let mut publisher = client(&a.broker).await;
    let mut cut = None;
    for i in 0..N {
        if i == CUT_AT {
            let watchers = (watch_recovery(&a.relay), watch_recovery(&b.relay));
            let cut_a = Instant::now();
            close_connection(&a.relay);
            let cut_b = Instant::now();
            close_connection(&b.relay);
            cut = Some((cut_a, cut_b, watchers));
            // Subscribed during the outage: bound once the relay is back.
            alice.subscribe("dm", "/user/queue/dm").await;
        }
        publisher
            .send_frame(frames::send("/topic/ticks", i.to_string()))
            .await;
        publisher
            .send_frame(frames::send("/queue/work", i.to_string()))
            .await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let (cut_at, cut_b, (watch_a, watch_b)) = cut.unwrap();
    let (down_a, up_a) = watch_a.await.unwrap();
    let (down_b, up_b) = watch_b.await.unwrap();

    // Every tick arrives; a delivery in flight at the cut may arrive twice, none is lost.
    let mut seen: BTreeMap<usize, usize> = BTreeMap::new();
    let mut first_after_cut = None;
    while seen.len() < N {
        let m = sub.expect_message().await;
        let i: usize = body(&m).parse().unwrap();
        if i >= CUT_AT && first_after_cut.is_none() {
            first_after_cut = Some(cut_at.elapsed());
        }
        *seen.entry(i).or_default() += 1;
    }
    sub.expect_no_frame(QUIET).await;
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        (0..N).collect::<Vec<_>>()
    );

    // Every job is delivered to the worker; one unacknowledged at the cut comes again (its
    // ACK named a delivery of the old connection), none is lost.
    let mut jobs: BTreeMap<usize, usize> = BTreeMap::new();
    while jobs.len() < N {
        let m = worker.expect_message().await;
        *jobs.entry(body(&m).parse().unwrap()).or_default() += 1;
        worker
            .send_frame(frames::ack(m.header("ack").unwrap()))
            .await;
    }
    while let Ok(m) = tokio::time::timeout(QUIET, worker.expect_message()).await {
        *jobs.entry(body(&m).parse().unwrap()).or_default() += 1;
        worker
            .send_frame(frames::ack(m.header("ack").unwrap()))
            .await;
    }
    let job_duplicates: usize = jobs.values().map(|n| n - 1).sum();
    assert_eq!(
        jobs.keys().copied().collect::<Vec<_>>(),
        (0..N).collect::<Vec<_>>()
    );

    // The publisher's session never noticed: its next frame gets its RECEIPT, not an ERROR.
    publisher
        .send_with_receipt(frames::send("/topic/ticks", "after"), "r")
        .await;
    assert_eq!(body(&sub.expect_message().await), "after");
    // The subscription made during the outage was bound on recovery.
    synced(&[&a, &b]).await;
    a.broker.send_to_user("alice", "/queue/dm", "back").unwrap();
    assert_eq!(body(&alice.expect_message().await), "back");

    println!(
        "outage: node a: rabbitmqctl close_connection started {:?} before the relay saw the \
         cut, connected again {:?} after it saw it; node b: {:?} and {:?}; first tick sent \
         after the cut delivered {:?} after the first close started; {N} ticks delivered, \
         {duplicates} duplicate(s), 0 lost; {N} queued jobs delivered, {job_duplicates} \
         redelivered, 0 lost; refused: {}",
        down_a - cut_at,
        up_a - down_a,
        down_b - cut_b,
        up_b - down_b,
        first_after_cut.unwrap(),
        a.relay.refused()
    );
    worker.disconnect().await;
    a.relay.stop().await;
    b.relay.stop().await;
    let queues = [
        format!("{prefix}.queue.work"),
        format!("{prefix}.queue.dlq.work"),
    ];
    remove_queues(&queues).await;
    remove_exchanges(&prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_buffer_refuses_sends_visibly_while_rabbitmq_is_unreachable() {
    let prefix = prefix("refuse");
    // Nothing listens on port 1: the relay never connects and its buffer of 3 fills up. The
    // publisher is held (not read) for `unavailable_after`, then its next SEND is refused.
    let mut config = config(&prefix, "lonely");
    config.urls = vec!["amqp://guest:guest@127.0.0.1:1/%2f".into()];
    config.buffer_messages = 3;
    config.unavailable_after = std::time::Duration::from_millis(300);
    let (relay, link) = Relay::new(config).unwrap();
    let broker = stompbox_broker::Broker::builder()
        .backplane(relay.backplane())
        .build()
        .unwrap();
    link.start(broker.clone());
    let mut sub = client(&broker).await;
    sub.subscribe("t", "/topic/t").await;
    let mut publisher = client(&broker).await;
    for i in 0..3 {
        publisher
            .send_with_receipt(frames::send("/topic/t", i.to_string()), &format!("r{i}"))
            .await;
    }
    publisher
        .send_frame(frames::send("/topic/t", "3").with_header("receipt", "r3"))
        .await;
    let held = std::time::Instant::now();
    let error = publisher.expect_frame(stompbox_codec::Command::Error).await;
    assert!(
        held.elapsed() >= std::time::Duration::from_millis(250),
        "held first"
    );
    assert_eq!(error.header("message"), Some("relay unavailable"));
    assert_eq!(error.header("receipt-id"), Some("r3"));
    // Local subscribers got the three accepted messages, not the refused one.
    for i in 0..3 {
        assert_eq!(body(&sub.expect_message().await), i.to_string());
    }
    sub.expect_no_frame(QUIET).await;
    assert!(matches!(
        relay.state(),
        RelayState::Down { .. } | RelayState::Connecting
    ));
    assert_eq!(relay.refused(), 1);
    relay.stop().await;
    assert_eq!(relay.state(), RelayState::Stopped);
}
