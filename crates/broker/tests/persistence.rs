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

/// Takes `n` messages: (body, ack id, redelivered, message id).
async fn take(c: &mut TestClient, n: usize) -> Vec<(String, String, bool, u64)> {
    let mut got = Vec::new();
    for _ in 0..n {
        let m = c.expect_message().await;
        let redelivered = m.header("redelivered") == Some("true");
        let id = m.header("message-id").unwrap().parse().unwrap();
        got.push((
            body(&m),
            m.header("ack").unwrap().to_owned(),
            redelivered,
            id,
        ));
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
    let before: Vec<u64> = again.iter().map(|g| g.3).collect();
    let mut p = TestClient::connect(&second).await;
    p.send_with_receipt(persistent("/queue/jobs", "p4"), "p4")
        .await;
    let m = c.expect_message().await;
    assert_eq!(body(&m), "p4");
    let id: u64 = m.header("message-id").unwrap().parse().unwrap();
    assert!(before.iter().all(|&b| b < id), "{id} after {before:?}");
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
    let again = &take(&mut c, 1).await[0];
    assert_eq!(
        (again.0.as_str(), again.1.as_str(), again.2),
        ("poison", "2", true)
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

fn small_queues() -> QueueConfig {
    QueueConfig {
        max_messages: 10,
        ..QueueConfig::default()
    }
}

#[tokio::test]
async fn a_queue_longer_than_memory_keeps_its_tail_on_disk_and_delivers_it_in_order() {
    let store = MemoryStore::new(true);
    let broker = broker(store.clone(), small_queues());
    let mut p = TestClient::connect(&broker).await;
    for i in 0..100 {
        p.send_frame(persistent("/queue/jobs", &format!("m{i:03}")))
            .await;
    }
    // A transient message behind the tail joins it on disk, to keep the order.
    p.send_with_receipt(frames::send("/queue/jobs", "transient"), "t")
        .await;
    let stats = broker.queue_stats("/queue/jobs").unwrap();
    assert_eq!((stats.depth, stats.on_disk), (101, 91), "{stats:?}");
    // Memory holds only what fits: the bound refused nothing, the rest waits on disk.
    assert_eq!(store.keys().len(), 101);

    let mut c = TestClient::connect(&broker).await;
    c.send_frame(
        frames::subscribe_ack("c", "/queue/jobs", "client-individual")
            .with_header("prefetch-count", "200"),
    )
    .await;
    let got = take(&mut c, 101).await;
    let bodies: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
    let mut expected: Vec<String> = (0..100).map(|i| format!("m{i:03}")).collect();
    expected.push("transient".into());
    assert_eq!(bodies, expected);
    assert!(got.iter().all(|g| !g.2), "first deliveries");
    for g in &got[..100] {
        c.send_frame(frames::ack(&g.1)).await;
    }
    c.send_with_receipt(frames::ack(&got[100].1), "done").await;
    assert!(store.keys().is_empty(), "{:?}", store.keys());
    assert_eq!(broker.queue_stats("/queue/jobs").unwrap().depth, 0);
}

#[tokio::test]
async fn a_long_backlog_survives_a_crash_and_is_read_back_a_page_at_a_time() {
    let store = MemoryStore::new(true);
    let first = broker(store.clone(), small_queues());
    let mut p = TestClient::connect(&first).await;
    for i in 0..50 {
        p.send_frame(persistent("/queue/jobs", &format!("m{i:02}")))
            .await;
    }
    p.send_with_receipt(frames::send("/queue/jobs", "transient"), "t")
        .await;

    let restarted = store.crashed();
    let second = broker(restarted.clone(), small_queues());
    let stats = second.queue_stats("/queue/jobs").unwrap();
    assert_eq!(
        (stats.depth, stats.on_disk),
        (50, 50),
        "the transient record is discarded"
    );
    let mut c = consumer(&second, "/queue/jobs").await;
    let got = take(&mut c, 50).await;
    let bodies: Vec<String> = got.iter().map(|g| g.0.clone()).collect();
    let expected: Vec<String> = (0..50).map(|i| format!("m{i:02}")).collect();
    assert_eq!(bodies, expected);
    assert!(got.iter().all(|g| g.2), "after a crash: redelivered");
    c.expect_no_frame(QUIET).await;
}

#[tokio::test]
async fn the_tail_on_disk_is_bounded_by_max_stored_messages() {
    let store = MemoryStore::new(true);
    let queues = QueueConfig {
        max_stored_messages: 5,
        ..small_queues()
    };
    let broker = broker(store, queues);
    let mut p = TestClient::connect(&broker).await;
    for i in 0..15 {
        p.send_frame(persistent("/queue/jobs", &format!("m{i}")))
            .await;
    }
    p.send_frame(persistent("/queue/jobs", "one too many").with_header("receipt", "r"))
        .await;
    let error = p.expect_error("queue full: /queue/jobs").await;
    let text = String::from_utf8(error.body.to_vec()).unwrap();
    assert!(text.contains("queues.max_stored_messages"), "{text}");
    assert_eq!(broker.queue_stats("/queue/jobs").unwrap().depth, 15);
}

#[tokio::test]
async fn receipts_wait_in_order_while_the_session_reads_on_and_disconnect_waits_too() {
    let store = MemoryStore::new(false);
    let broker = broker(store.clone(), QueueConfig::default());
    let mut p = TestClient::connect(&broker).await;
    p.send_frame(persistent("/queue/jobs", "p1").with_header("receipt", "r1"))
        .await;
    // A later RECEIPT with nothing to store waits behind the first: receipts stay in order.
    p.send_frame(frames::send("/topic/t", "t").with_header("receipt", "r2"))
        .await;
    p.send_frame(persistent("/queue/jobs", "p2")).await;
    p.send_frame(frames::disconnect("bye")).await;
    p.expect_no_frame(QUIET).await;
    // The session read on meanwhile: both SENDs were stored while it held r1.
    assert_eq!(store.pending(), 2);
    store.sync();
    p.expect_receipt("r1").await;
    p.expect_receipt("r2").await;
    p.expect_receipt("bye").await;
}

#[tokio::test]
async fn a_redrive_moves_stored_dead_letters_back_and_a_purge_removes_them_from_the_store() {
    let store = MemoryStore::new(true);
    let first = broker(store.clone(), small_queues());
    let mut p = TestClient::connect(&first).await;
    // Dead letters as a poison message would leave them: sent there directly here.
    for i in 0..5 {
        let dead = persistent("/queue/dlq.jobs", &format!("d{i}"))
            .with_header("x-original-destination", "/queue/jobs");
        p.send_with_receipt(dead, &i.to_string()).await;
    }
    p.send_with_receipt(persistent("/queue/jobs", "waiting"), "w")
        .await;
    assert_eq!(first.redrive("/queue/dlq.jobs", "/queue/jobs"), Some(5));
    assert_eq!(first.redrive("/queue/none", "/queue/jobs"), None);
    assert_eq!(first.redrive("/queue/jobs", "/topic/x"), None);
    let keys = store.keys();
    assert!(
        keys.iter().all(|(q, _)| q == "jobs"),
        "moved, not copied: {keys:?}"
    );
    assert_eq!(keys.len(), 6);

    // After a crash they are in /queue/jobs, in order, without the dead-letter mark.
    let second = broker(store.crashed(), small_queues());
    let mut c = consumer(&second, "/queue/jobs").await;
    let got = take(&mut c, 6).await;
    let bodies: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
    assert_eq!(bodies, ["waiting", "d0", "d1", "d2", "d3", "d4"]);
    drop(c);

    let third_store = store.crashed();
    let third = broker(third_store.clone(), small_queues());
    assert_eq!(third.purge("/queue/jobs"), Some(6));
    assert_eq!(third.purge("/queue/none"), None);
    assert!(third_store.keys().is_empty(), "{:?}", third_store.keys());
}

#[tokio::test]
async fn a_deleted_queue_takes_its_stored_messages_and_refuses_while_consumed() {
    use stompbox_broker::DeleteQueueError;

    let store = MemoryStore::new(true);
    let first = broker(store.clone(), small_queues());
    let mut p = TestClient::connect(&first).await;
    for i in 0..4 {
        p.send_with_receipt(persistent("/queue/old", &format!("m{i}")), &i.to_string())
            .await;
    }
    p.send_with_receipt(persistent("/queue/kept", "k"), "k")
        .await;
    let mut c = TestClient::connect(&first).await;
    c.subscribe("s", "/queue/old.consumed").await;
    assert_eq!(
        first.delete_queue("/queue/old.consumed"),
        Err(DeleteQueueError::HasConsumers)
    );
    assert_eq!(
        first.delete_queue("/queue/none"),
        Err(DeleteQueueError::NotFound)
    );
    assert_eq!(
        first.delete_queue("/topic/old"),
        Err(DeleteQueueError::NotFound)
    );
    assert_eq!(first.delete_queue("/queue/old"), Ok(4));
    assert_eq!(first.queue_stats("/queue/old"), None, "forgotten");
    assert_eq!(
        first.delete_queue("/queue/old"),
        Err(DeleteQueueError::NotFound)
    );
    let keys = store.keys();
    assert!(keys.iter().all(|(q, _)| q == "kept"), "{keys:?}");

    // After a crash nothing of it comes back; a SEND creates it anew.
    let second = broker(store.crashed(), small_queues());
    assert_eq!(second.queue_stats("/queue/old"), None);
    assert_eq!(second.queue_stats("/queue/kept").map(|q| q.depth), Some(1));
    let mut p = TestClient::connect(&second).await;
    p.send_with_receipt(persistent("/queue/old", "new"), "n")
        .await;
    assert_eq!(second.queue_stats("/queue/old").map(|q| q.depth), Some(1));
}
