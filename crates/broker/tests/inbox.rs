//! Offline inboxes: a message for a user destination listed in `inbox.destinations` that no
//! session of the user is subscribed to waits in the user's inbox and is delivered, in order,
//! when the user subscribes to it again; other destinations keep nothing; bounds, expiry, acks
//! and the store apply as for queues.

use std::sync::Arc;
use std::time::Duration;

use stompbox_broker::{Broker, Config, InboxConfig, Store};
use stompbox_codec::Frame;
use stompbox_test_support::{MemoryStore, TestClient, frames};

const QUIET: Duration = Duration::from_millis(100);
const NOTIFICATIONS: &str = "/queue/notifications";

fn inbox(max_messages: usize) -> InboxConfig {
    InboxConfig {
        destinations: vec![NOTIFICATIONS.to_owned()],
        max_messages,
        ..InboxConfig::default()
    }
}

fn broker(inbox: InboxConfig, store: Option<Arc<MemoryStore>>) -> Broker {
    let config = Config {
        inbox,
        ..Config::default()
    };
    let mut builder = Broker::builder().config(config);
    if let Some(store) = store {
        let store: Arc<dyn Store> = store;
        builder = builder.store(store);
    }
    builder.build().unwrap()
}

async fn login(broker: &Broker, user: &str) -> TestClient {
    TestClient::connect_with(broker, frames::connect().with_header("login", user))
        .await
        .0
}

fn body(m: &Frame) -> String {
    String::from_utf8(m.body.to_vec()).unwrap()
}

async fn bodies(c: &mut TestClient, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    for _ in 0..n {
        got.push(body(&c.expect_message().await));
    }
    got
}

fn notify(broker: &Broker, user: &str, destination: &str, text: &str) -> usize {
    broker
        .send_to_user(user, destination, text.to_owned())
        .unwrap()
}

/// Subscribes without a receipt: what waited is dispatched ahead of any RECEIPT.
async fn subscribe(c: &mut TestClient, id: &str, destination: &str) {
    c.send_frame(frames::subscribe(id, destination)).await;
}

fn depth(broker: &Broker, shown: &str) -> Option<(usize, u64)> {
    (broker.queues().into_iter())
        .find(|(name, _)| name == shown)
        .map(|(_, s)| (s.depth, s.dropped))
}

#[tokio::test]
async fn what_an_absent_user_was_sent_waits_and_comes_in_order_then_live() {
    let broker = broker(inbox(100), None);
    for text in ["liked", "followed", "mentioned"] {
        assert_eq!(notify(&broker, "bob", NOTIFICATIONS, text), 0);
    }
    // Not an inbox destination (and not a word-prefix of one): nothing kept.
    notify(&broker, "bob", "/queue/typing", "typing...");
    notify(&broker, "bob", "/queue/notificationsx", "not kept");
    assert_eq!(
        depth(&broker, "inbox:bob:/queue/notifications"),
        Some((3, 0))
    );

    let mut bob = login(&broker, "bob").await;
    subscribe(&mut bob, "n", "/user/queue/notifications").await;
    let m = bob.expect_message().await;
    assert_eq!(
        (
            body(&m).as_str(),
            m.header("destination"),
            m.header("subscription")
        ),
        ("liked", Some("/user/queue/notifications"), Some("n"))
    );
    assert_eq!(bodies(&mut bob, 2).await, ["followed", "mentioned"]);
    bob.subscribe("t", "/user/queue/typing").await;
    bob.subscribe("x", "/user/queue/notificationsx").await;
    bob.expect_no_frame(QUIET).await;
    // Then live, and nothing kept while a session is subscribed.
    assert_eq!(notify(&broker, "bob", NOTIFICATIONS, "live"), 1);
    assert_eq!(bodies(&mut bob, 1).await, ["live"]);
    let mut again = login(&broker, "bob").await;
    again.subscribe("n", "/user/queue/notifications").await;
    again.expect_no_frame(QUIET).await;
    // Other users' inboxes are theirs.
    notify(&broker, "carol", NOTIFICATIONS, "for carol");
    bob.expect_no_frame(QUIET).await;
}

#[tokio::test]
async fn a_session_not_subscribed_to_the_destination_does_not_count_as_present() {
    let broker = broker(inbox(100), None);
    let mut bob = login(&broker, "bob").await;
    bob.subscribe("other", "/user/queue/chat").await;
    notify(&broker, "bob", "/queue/notifications.likes", "kept");
    subscribe(&mut bob, "n", "/user/queue/notifications.likes").await;
    assert_eq!(bodies(&mut bob, 1).await, ["kept"]);
}

#[tokio::test]
async fn inbox_deliveries_not_acknowledged_come_back() {
    let broker = broker(inbox(100), None);
    notify(&broker, "bob", NOTIFICATIONS, "a");
    notify(&broker, "bob", NOTIFICATIONS, "b");
    let sub = frames::subscribe_ack("n", "/user/queue/notifications", "client-individual");
    let mut bob = login(&broker, "bob").await;
    bob.send_frame(sub.clone()).await;
    let (a, b) = (bob.expect_message().await, bob.expect_message().await);
    assert_eq!((body(&a), body(&b)), ("a".into(), "b".into()));
    bob.send_with_receipt(frames::ack(a.header("ack").unwrap()), "acked")
        .await;
    bob.send_frame(frames::disconnect("bye")).await;
    bob.expect_receipt("bye").await;

    let mut bob = login(&broker, "bob").await;
    bob.send_frame(sub).await;
    let m = bob.expect_message().await;
    assert_eq!(
        (body(&m).as_str(), m.header("redelivered")),
        ("b", Some("true"))
    );
    bob.send_with_receipt(frames::ack(m.header("ack").unwrap()), "acked")
        .await;
    // Live deliveries on the same subscription are ACKed as usual.
    notify(&broker, "bob", NOTIFICATIONS, "live");
    let live = bob.expect_message().await;
    bob.send_with_receipt(frames::ack(live.header("ack").unwrap()), "live-acked")
        .await;
    assert_eq!(
        depth(&broker, "inbox:bob:/queue/notifications").map(|d| d.0),
        Some(0)
    );
}

#[tokio::test(start_paused = true)]
async fn bounds_drop_the_oldest_and_max_age_expires_the_stale() {
    let broker = broker(
        InboxConfig {
            max_age: Duration::from_secs(3600),
            ..inbox(2)
        },
        None,
    );
    for text in ["1", "2", "3"] {
        notify(&broker, "bob", NOTIFICATIONS, text);
    }
    assert_eq!(
        depth(&broker, "inbox:bob:/queue/notifications"),
        Some((2, 1))
    );
    tokio::time::advance(Duration::from_secs(3601)).await;
    notify(&broker, "bob", NOTIFICATIONS, "fresh");
    let mut bob = login(&broker, "bob").await;
    subscribe(&mut bob, "n", "/user/queue/notifications").await;
    let m = bob.expect_message().await;
    assert_eq!(body(&m), "fresh");
    assert!(m.header("expires").is_some(), "kept with its expiry: {m:?}");
    bob.expect_no_frame(QUIET).await;
}

#[tokio::test]
async fn without_inbox_destinations_nothing_is_kept() {
    let broker = broker(InboxConfig::default(), None);
    notify(&broker, "bob", NOTIFICATIONS, "lost");
    let mut bob = login(&broker, "bob").await;
    bob.subscribe("n", "/user/queue/notifications").await;
    bob.expect_no_frame(QUIET).await;
    assert!(broker.queues().is_empty());
}

#[tokio::test]
async fn kept_messages_survive_a_crash_with_a_store() {
    let store = MemoryStore::new(true);
    let first = broker(inbox(100), Some(store.clone()));
    // Not persistent:true: the operator chose to keep this destination's messages.
    notify(&first, "bob", NOTIFICATIONS, "before the crash");
    let second = broker(inbox(100), Some(store.crashed()));
    notify(&second, "bob", NOTIFICATIONS, "after it");
    let mut bob = login(&second, "bob").await;
    subscribe(&mut bob, "n", "/user/queue/notifications").await;
    assert_eq!(bodies(&mut bob, 2).await, ["before the crash", "after it"]);
}

#[test]
fn inbox_destinations_must_be_user_destinations() {
    let config = Config {
        inbox: InboxConfig {
            destinations: vec!["queue/x".into()],
            ..InboxConfig::default()
        },
        ..Config::default()
    };
    let error = config.validate().unwrap_err();
    assert_eq!(error.field, "inbox.destinations");
}

#[tokio::test]
async fn the_inbox_hook_is_told_of_every_kept_message() {
    let (tx, rx) = std::sync::mpsc::channel();
    let config = Config {
        inbox: inbox(100),
        ..Config::default()
    };
    let broker = Broker::builder()
        .config(config)
        .on_inbox(move |kept| tx.send(kept).unwrap())
        .build()
        .unwrap();
    let payload = stompbox_broker::Payload::text("liked").header("x-kind", "like");
    broker.send_to_user("bob", NOTIFICATIONS, payload).unwrap();
    let kept = rx.try_recv().expect("told at once");
    assert_eq!(
        (
            kept.user.as_str(),
            kept.destination.as_str(),
            &kept.body[..]
        ),
        ("bob", "/user/queue/notifications", &b"liked"[..])
    );
    assert!(
        kept.headers
            .contains(&("x-kind".to_owned(), "like".to_owned()))
    );
    // Delivered, not kept: not told.
    let mut bob = login(&broker, "bob").await;
    subscribe(&mut bob, "n", "/user/queue/notifications").await;
    let m = bob.expect_message().await;
    assert_eq!(
        m.header("message-id"),
        Some(kept.message_id.to_string().as_str())
    );
    notify(&broker, "bob", NOTIFICATIONS, "live");
    bob.expect_message().await;
    assert!(rx.try_recv().is_err());
}
