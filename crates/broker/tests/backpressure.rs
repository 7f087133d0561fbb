//! Slow consumers: bounded outboxes, the slow-consumer policies, the write timeout. A subscriber
//! that stops reading must not slow the others nor grow the broker's memory.

use std::time::Duration;

use stompbox_broker::{Broker, CloseReason, Config, OutboxConfig, SlowConsumerPolicy};
use stompbox_codec::Command;
use stompbox_test_support::{TestClient, frames};
use tokio::sync::watch;

const MESSAGES: usize = 500;
const MAX_FRAMES: usize = 64;
const MAX_BYTES: usize = 16 * 1024;

fn broker(policy: SlowConsumerPolicy, write_timeout: Duration) -> Broker {
    let config = Config {
        outbox: OutboxConfig {
            max_frames: MAX_FRAMES,
            max_bytes: MAX_BYTES,
            slow_consumer: policy,
            write_timeout,
        },
        ..Config::default()
    };
    Broker::builder().config(config).build().unwrap()
}

fn body(n: usize) -> String {
    format!("{n:05}{}", "x".repeat(95))
}

/// Connects a subscriber whose transport holds a single batch: once it stops reading, the
/// broker's writes to it stall as on a full socket.
async fn stalled_subscriber(broker: &Broker) -> TestClient {
    let mut slow = TestClient::start_with_capacity(broker, 1);
    slow.send_frame(frames::connect()).await;
    slow.expect_frame(Command::Connected).await;
    slow.subscribe("slow", "/topic/firehose").await;
    slow
}

/// A subscriber reading everything on its own task; returns the bodies it got, and reports
/// how many it has read so far.
async fn fast_subscriber(
    broker: &Broker,
) -> (tokio::task::JoinHandle<Vec<String>>, watch::Receiver<usize>) {
    let mut fast = TestClient::connect(broker).await;
    fast.subscribe("fast", "/topic/firehose").await;
    let (progress, read) = watch::channel(0);
    let task = tokio::spawn(async move {
        let mut got = Vec::with_capacity(MESSAGES);
        for n in 1..=MESSAGES {
            let m = fast.expect_message().await;
            got.push(String::from_utf8(m.body.to_vec()).unwrap());
            progress.send_replace(n);
        }
        got
    });
    (task, read)
}

/// How far the publisher may run ahead of the fast subscriber: well inside its outbox, so the
/// test does not depend on how the OS schedules threads on a busy machine, and the stalled
/// subscriber (which reads nothing) still crosses its bound.
const WINDOW: usize = MAX_FRAMES / 4;

/// Publishes `MESSAGES` messages, each confirmed by a receipt, staying within `WINDOW` of the
/// fast subscriber; checks the broker's queued bytes never exceed one full outbox per
/// subscriber.
async fn publish_all(broker: &Broker, subscribers: usize, mut fast_read: watch::Receiver<usize>) {
    let mut publisher = TestClient::connect(broker).await;
    let mut max_queued = 0;
    for n in 0..MESSAGES {
        let behind = n.saturating_sub(WINDOW);
        tokio::time::timeout(
            Duration::from_secs(5),
            fast_read.wait_for(|&read| read >= behind),
        )
        .await
        .expect("the fast subscriber keeps up")
        .unwrap();
        let receipt = n.to_string();
        publisher
            .send_frame(
                frames::send("/topic/firehose", body(n)).with_header("receipt", receipt.as_str()),
            )
            .await;
        publisher.expect_receipt(&receipt).await;
        let stats = broker.stats();
        max_queued = max_queued.max(stats.queued_bytes);
        assert!(stats.queued_frames <= subscribers * MAX_FRAMES, "{stats:?}");
    }
    assert!(
        max_queued <= subscribers * MAX_BYTES,
        "queued bytes {max_queued} exceed the bounds"
    );
    assert!(
        max_queued > 0,
        "the stalled subscriber's outbox did fill up"
    );
}

fn expected() -> Vec<String> {
    (0..MESSAGES).map(body).collect()
}

#[tokio::test]
async fn a_stalled_subscriber_is_disconnected_and_others_get_everything() {
    stalled_subscriber_is_disconnected().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_is_disconnected_on_a_multi_threaded_runtime() {
    stalled_subscriber_is_disconnected().await;
}

async fn stalled_subscriber_is_disconnected() {
    let broker = broker(SlowConsumerPolicy::Disconnect, Duration::from_secs(60));
    let slow = stalled_subscriber(&broker).await;
    let (fast, fast_read) = fast_subscriber(&broker).await;
    publish_all(&broker, 2, fast_read).await;

    let got = tokio::time::timeout(Duration::from_secs(10), fast)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got,
        expected(),
        "the fast subscriber got every message, in order"
    );

    let (frames, reason) = slow.drain_until_closed().await;
    assert_eq!(reason, CloseReason::SlowConsumer);
    let (last, messages) = frames.split_last().unwrap();
    assert_eq!(last.command, Command::Error);
    assert_eq!(last.header("message"), Some("slow consumer"));
    assert!(messages.len() < MESSAGES);
    for (n, m) in messages.iter().enumerate() {
        assert_eq!(m.command, Command::Message);
        assert_eq!(&m.body[..], body(n).as_bytes(), "a prefix, in order");
    }
    let stats = broker.stats();
    assert_eq!(stats.slow_consumers, 1);
    assert_eq!(
        stats.queued_bytes, 0,
        "a closed session's outbox is released"
    );
    assert_eq!(stats.queued_frames, 0);
}

#[tokio::test]
async fn drop_newest_keeps_the_session_and_counts_the_drops() {
    let broker = broker(SlowConsumerPolicy::DropNewest, Duration::from_secs(60));
    let mut slow = stalled_subscriber(&broker).await;
    let (fast, fast_read) = fast_subscriber(&broker).await;
    publish_all(&broker, 2, fast_read).await;

    let got = tokio::time::timeout(Duration::from_secs(10), fast)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, expected());

    let stats = broker.stats();
    assert!(stats.dropped_deliveries > 0);
    assert!(stats.slow_consumers >= 1);
    let kept = MESSAGES - stats.dropped_deliveries as usize;
    let mut last = None;
    for _ in 0..kept {
        let m = slow.expect_message().await;
        let n: usize = std::str::from_utf8(&m.body[..5]).unwrap().parse().unwrap();
        assert!(last < Some(n), "in order, with gaps");
        last = Some(n);
    }
    slow.expect_no_frame(Duration::from_millis(50)).await;
    assert_eq!(slow.disconnect().await, CloseReason::Disconnect);
    assert_eq!(broker.stats().queued_bytes, 0);
}

#[tokio::test(start_paused = true)]
async fn a_write_slower_than_write_timeout_closes_the_session() {
    let config = Config {
        outbox: OutboxConfig {
            write_timeout: Duration::from_secs(2),
            ..OutboxConfig::default()
        },
        ..Config::default()
    };
    let broker = Broker::builder().config(config).build().unwrap();
    let mut slow = stalled_subscriber(&broker).await;
    let mut publisher = TestClient::connect(&broker).await;
    // 300 KiB: well within the outbox bounds, but several batches, more than the transport
    // holds.
    for _ in 0..10 {
        publisher
            .send_frame(frames::send("/topic/firehose", "y".repeat(30 * 1024)))
            .await;
    }
    publisher
        .send_frame(frames::send("/topic/firehose", "last").with_header("receipt", "r"))
        .await;
    publisher.expect_receipt("r").await;
    let started = tokio::time::Instant::now();
    assert_eq!(slow.close_reason().await, CloseReason::SlowConsumer);
    assert!(started.elapsed() <= Duration::from_secs(2));
    assert_eq!(broker.stats().slow_consumers, 1);
    assert_eq!(broker.stats().connections, 1);
}

#[tokio::test(start_paused = true)]
async fn a_client_that_never_reads_its_receipts_is_bounded_then_closed() {
    let broker = broker(SlowConsumerPolicy::Disconnect, Duration::from_secs(5));
    let mut greedy = TestClient::start_with_capacity(&broker, 1);
    greedy.send_frame(frames::connect()).await;
    greedy.expect_frame(Command::Connected).await;
    // Receipts pile up; the broker stops reading once they exceed the outbox bound, so our
    // sends eventually stall instead of growing the broker's memory.
    let send_all = async {
        for n in 0..100_000 {
            let f = frames::send("/topic/none", "x").with_header("receipt", n.to_string().as_str());
            greedy.send_frame(f).await;
        }
    };
    let stalled = tokio::time::timeout(Duration::from_secs(1), send_all).await;
    assert!(stalled.is_err(), "the broker stopped reading");
    assert!(broker.stats().messages_received < 100_000);
}
