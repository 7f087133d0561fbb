//! Persistent queue messages against a store (`MemoryStore`, which syncs when the test says and
//! can be crashed): a RECEIPT waits for the sync, a restart puts back what was stored and not
//! acknowledged, `redelivered` as the store's state says, transient messages are not kept, and
//! dead-lettering, expiry and ACKs leave the store as the queues are.

use std::sync::Arc;
use std::time::Duration;

use stompbox_broker::{Broker, Config, QueueConfig, Store};
use stompbox_codec::Frame;
use stompbox_test_support::{MemoryStore, TestClient, frames};

const QUIET: Duration = Duration::from_millis(100);

fn broker(store: Arc<MemoryStore>, queues: QueueConfig) -> Broker {
    let config = Config {
        queues,
        ..Config::default()
    };
    let store: Arc<dyn Store> = store;
    Broker::builder()
        .config(config)
        .store(store)
        .build()
        .unwrap()
}

fn persistent(destination: &str, body: &str) -> Frame {
    frames::send(destination, body.to_owned()).with_header("persistent", "true")
}

fn body(m: &Frame) -> String {
    String::from_utf8(m.body.to_vec()).unwrap()
}

/// Subscribes with client-individual acks and takes `n` messages: (body, ack id, redelivered).
async fn take(c: &mut TestClient, n: usize) -> Vec<(String, String, bool)> {
    let mut got = Vec::new();
    for _ in 0..n {
        let m = c.expect_message().await;
        let redelivered = m.header("redelivered") == Some("true");
        got.push((body(&m), m.header("ack").unwrap().to_owned(), redelivered));
    }
    got
}

async fn consumer(broker: &Broker, destination: &str) -> TestClient {
    let mut c = TestClient::connect(broker).await;
    // No receipt: waiting messages are dispatched ahead of it.
    (c.send_frame(frames::subscribe_ack("c", destination, "client-individual"))).await;
    c
}

#[tokio::test]
async fn a_receipt_for_a_persistent_send_waits_for_the_sync_and_others_do_not() {
    let store = MemoryStore::new(false);
    let broker = broker(store.clone(), QueueConfig::default());
    let mut p = TestClient::connect(&broker).await;

    // Not persistent, or not to a queue: answered at once although the store has nothing to do.
    p.send_with_receipt(frames::send("/queue/jobs", "transient"), "t")
        .await;
    p.send_with_receipt(persistent("/topic/news", "on a topic"), "topic")
        .await;
    assert_eq!(store.pending(), 0);

    p.send_frame(persistent("/queue/jobs", "p1").with_header("receipt", "r1"))
        .await;
    p.expect_no_frame(QUIET).await;
    assert_eq!(store.pending(), 1);
    store.sync();
    p.expect_receipt("r1").await;
    assert_eq!(store.keys().len(), 1);

    // The ACK that removes it is a store write too: its RECEIPT waits for the sync as well.
    let mut c = consumer(&broker, "/queue/jobs").await;
    let got = take(&mut c, 2).await;
    assert_eq!(got[1].0, "p1");
    c.send_frame(frames::ack(&got[1].1).with_header("receipt", "a1"))
        .await;
    c.expect_no_frame(QUIET).await;
    store.sync();
    c.expect_receipt("a1").await;
    assert!(store.keys().is_empty());
}

#[tokio::test]
async fn a_crash_brings_back_what_was_stored_and_not_acknowledged_as_redelivered() {
    let store = MemoryStore::new(true);
    let first = broker(store.clone(), QueueConfig::default());
    let mut p = TestClient::connect(&first).await;
    for i in 1..=3 {
        p.send_frame(persistent("/queue/jobs", &format!("p{i}")))
            .await;
    }
    p.send_with_receipt(frames::send("/queue/jobs", "transient"), "sent")
        .await;
    p.send_with_receipt(persistent("/queue/other", "never delivered"), "o")
        .await;
    let mut c = consumer(&first, "/queue/jobs").await;
    let got = take(&mut c, 4).await;
    let ids: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
    assert_eq!(ids, ["p1", "p2", "p3", "transient"]);
    c.send_with_receipt(frames::ack(&got[0].1), "acked").await;

    // kill -9: the first broker is simply abandoned; the restart sees only what was synced.
    let restarted = store.crashed();
    let second = broker(restarted.clone(), QueueConfig::default());
    let mut c = consumer(&second, "/queue/jobs").await;
    let again = take(&mut c, 2).await;
    assert_eq!(
        again
            .iter()
            .map(|g| (g.0.as_str(), g.2))
            .collect::<Vec<_>>(),
        [("p2", true), ("p3", true)],
        "unacknowledged persistent messages come back, marked redelivered; the ACKed and the transient do not"
    );
    c.expect_no_frame(QUIET).await;
    // A message never delivered is also marked: after a crash nobody knows.
    let mut o = consumer(&second, "/queue/other").await;
    assert!(take(&mut o, 1).await[0].2);

    // New messages are numbered after the stored ones.
    let mut p = TestClient::connect(&second).await;
    p.send_with_receipt(persistent("/queue/jobs", "p4"), "p4")
        .await;
    let m = c.expect_message().await;
    assert_eq!(body(&m), "p4");
    let mut seen: Vec<u64> = restarted.keys().iter().map(|k| k.1).collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(
        seen.len(),
        restarted.keys().len(),
        "message ids stay unique"
    );
}

#[tokio::test]
async fn after_a_clean_shutdown_only_delivered_messages_are_marked_redelivered() {
    let store = MemoryStore::new(true);
    let first = broker(store.clone(), QueueConfig::default());
    let mut p = TestClient::connect(&first).await;
    for i in 1..=3 {
        p.send_with_receipt(persistent("/queue/jobs", &format!("p{i}")), "s")
            .await;
    }
    let mut c = TestClient::connect(&first).await;
    c.send_frame(
        frames::subscribe_ack("c", "/queue/jobs", "client-individual")
            .with_header("prefetch-count", "1"),
    )
    .await;
    assert_eq!(body(&c.expect_message().await), "p1");
    first.shutdown().await;
    assert!(store.closed_cleanly());

    let second = broker(store.clone(), QueueConfig::default());
    let mut c = consumer(&second, "/queue/jobs").await;
    let again = take(&mut c, 3).await;
    assert_eq!(
        again
            .iter()
            .map(|g| (g.0.as_str(), g.2))
            .collect::<Vec<_>>(),
        [("p1", true), ("p2", false), ("p3", false)]
    );
}

#[tokio::test]
async fn delivery_counts_dead_letters_and_expiry_are_kept_in_the_store() {
    let store = MemoryStore::new(true);
    let queues = QueueConfig {
        max_deliveries: 2,
        ..QueueConfig::default()
    };
    let first = broker(store.clone(), queues.clone());
    let mut p = TestClient::connect(&first).await;
    p.send_with_receipt(persistent("/queue/jobs", "poison"), "s")
        .await;
    // Expired already: stored, then dropped at the first dispatch, and removed.
    p.send_with_receipt(
        persistent("/queue/jobs", "stale").with_header("expires", "1"),
        "e",
    )
    .await;
    let mut c = consumer(&first, "/queue/jobs").await;
    let got = take(&mut c, 1).await;
    assert_eq!(got[0].0, "poison");
    c.send_frame(frames::nack(&got[0].1)).await;
    // Redelivered at once (its count, 1, was stored when it came back).
    assert_eq!(
        take(&mut c, 1).await[0],
        ("poison".to_owned(), "2".to_owned(), true)
    );
    let keys = store.keys();
    assert_eq!(keys.len(), 1, "the expired record is gone: {keys:?}");
    assert_eq!(keys[0].0, "jobs");

    // The NACKed count survives the crash: one more failed delivery dead-letters it.
    let restarted = store.crashed();
    let second = broker(restarted.clone(), queues);
    let mut c = consumer(&second, "/queue/jobs").await;
    let got = take(&mut c, 1).await;
    assert_eq!(got[0].0, "poison");
    c.send_with_receipt(frames::nack(&got[0].1), "n").await;
    c.expect_no_frame(QUIET).await;
    let mut d = consumer(&second, "/queue/dlq.jobs").await;
    let dead = d.expect_message().await;
    assert_eq!(body(&dead), "poison");
    assert_eq!(dead.header("x-original-destination"), Some("/queue/jobs"));
    let stats = second.queue_stats("/queue/jobs").unwrap();
    assert_eq!((stats.depth, stats.dead_lettered), (0, 1));
    let keys = restarted.keys();
    assert_eq!(
        keys,
        [("dlq.jobs".to_owned(), keys[0].1)],
        "moved, not copied"
    );
}
