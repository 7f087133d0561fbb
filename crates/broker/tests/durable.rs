//! Durable topic subscriptions: what is published while the subscriber is away is kept (within
//! `[durable]`'s bounds) and delivered in order when it subscribes again; the headers of
//! RabbitMQ, ActiveMQ and Artemis; keyed by user and name; unacknowledged deliveries come back;
//! UNSUBSCRIBE with `durable:true` removes one; refusals are ERRORs that say why; with a store,
//! the subscription and its persistent messages survive a crash.

use std::sync::Arc;
use std::time::Duration;

use stompbox_broker::{Broker, Config, DurableConfig, Store};
use stompbox_codec::Frame;
use stompbox_test_support::{MemoryStore, TestClient, frames};

const QUIET: Duration = Duration::from_millis(100);

fn broker_with(durable: DurableConfig) -> Broker {
    let config = Config {
        durable,
        ..Config::default()
    };
    Broker::builder().config(config).build().unwrap()
}

fn stored_broker(store: Arc<MemoryStore>) -> Broker {
    let store: Arc<dyn Store> = store;
    Broker::builder().store(store).build().unwrap()
}

async fn login(broker: &Broker, user: &str) -> TestClient {
    TestClient::connect_with(broker, frames::connect().with_header("login", user))
        .await
        .0
}

fn durable(id: &str, destination: &str) -> Frame {
    frames::subscribe(id, destination).with_header("durable", "true")
}

fn body(m: &Frame) -> String {
    String::from_utf8(m.body.to_vec()).unwrap()
}

/// Takes `n` messages' bodies.
async fn bodies(c: &mut TestClient, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    for _ in 0..n {
        got.push(body(&c.expect_message().await));
    }
    got
}

async fn publish(broker: &Broker, destination: &str, messages: &[&str]) {
    let mut p = TestClient::connect(broker).await;
    for (i, m) in messages.iter().enumerate() {
        (p.send_with_receipt(frames::send(destination, m.to_string()), &i.to_string())).await;
    }
}

/// Subscribes again without a receipt: what waited is dispatched ahead of any RECEIPT.
async fn resubscribe(c: &mut TestClient, frame: Frame) {
    c.send_frame(frame).await;
}

async fn leave(mut c: TestClient) {
    c.send_frame(frames::disconnect("bye")).await;
    c.expect_receipt("bye").await;
}

#[tokio::test]
async fn what_is_published_while_the_subscriber_is_away_waits_for_it_in_order() {
    let broker = Broker::new();
    let mut alice = login(&broker, "alice").await;
    alice
        .subscribe_with(durable("feed", "/topic/scores.*"))
        .await;
    publish(&broker, "/topic/scores.eu", &["live"]).await;
    let m = alice.expect_message().await;
    assert_eq!(
        (
            body(&m).as_str(),
            m.header("destination"),
            m.header("subscription")
        ),
        ("live", Some("/topic/scores.eu"), Some("feed"))
    );
    leave(alice).await;

    // A plain subscriber sees the same messages as they are published.
    let mut watcher = TestClient::connect(&broker).await;
    watcher.subscribe("w", "/topic/scores.*").await;
    publish(&broker, "/topic/scores.eu", &["m1", "m2"]).await;
    publish(&broker, "/topic/scores.us", &["m3"]).await;
    publish(&broker, "/topic/other", &["not for it"]).await;
    assert_eq!(bodies(&mut watcher, 3).await, ["m1", "m2", "m3"]);
    let listed = broker.queues();
    let (_, stats) = (listed.iter())
        .find(|(name, _)| name == "durable:alice:feed")
        .expect("listed among the queues");
    assert_eq!((stats.depth, stats.consumers), (3, 0));

    let mut alice = login(&broker, "alice").await;
    resubscribe(&mut alice, durable("feed", "/topic/scores.*")).await;
    assert_eq!(bodies(&mut alice, 3).await, ["m1", "m2", "m3"]);
    alice.expect_no_frame(QUIET).await;
    // Then live again.
    publish(&broker, "/topic/scores.eu", &["m4"]).await;
    assert_eq!(bodies(&mut alice, 1).await, ["m4"]);
}

#[tokio::test]
async fn subscriptions_are_keyed_by_user_and_name_with_each_brokers_headers() {
    let broker = Broker::new();
    // Artemis's and ActiveMQ's name headers, RabbitMQ's `durable:true` with the id.
    let artemis =
        |id| frames::subscribe(id, "/topic/news").with_header("durable-subscription-name", "n");
    let activemq =
        |id| frames::subscribe(id, "/topic/news").with_header("activemq.subscriptionName", "n");
    for (user, frame) in [
        (Some("alice"), artemis("a1")),
        (Some("bob"), activemq("b1")),
        (None, durable("n", "/topic/news")),
    ] {
        let mut c = match user {
            Some(user) => login(&broker, user).await,
            None => TestClient::connect(&broker).await,
        };
        c.subscribe_with(frame).await;
        leave(c).await;
    }
    publish(&broker, "/topic/news", &["while away"]).await;
    let names: Vec<String> = (broker.queues().into_iter())
        .map(|(name, _)| name)
        .filter(|name| name.starts_with("durable:"))
        .collect();
    assert_eq!(names, ["durable::n", "durable:alice:n", "durable:bob:n"]);

    // The same user and name on another id is the same subscription; another user's is not.
    let mut alice = login(&broker, "alice").await;
    resubscribe(&mut alice, activemq("other-id")).await;
    let m = alice.expect_message().await;
    assert_eq!(
        (body(&m).as_str(), m.header("subscription")),
        ("while away", Some("other-id"))
    );
    alice.expect_no_frame(QUIET).await;
    let mut anonymous = TestClient::connect(&broker).await;
    resubscribe(&mut anonymous, durable("n", "/topic/news")).await;
    assert_eq!(bodies(&mut anonymous, 1).await, ["while away"]);
}

#[tokio::test]
async fn unacknowledged_deliveries_come_back_redelivered() {
    let broker = Broker::new();
    let mut alice = login(&broker, "alice").await;
    let sub = durable("feed", "/topic/jobs").with_header("ack", "client-individual");
    alice.subscribe_with(sub.clone()).await;
    publish(&broker, "/topic/jobs", &["j1", "j2"]).await;
    let (m1, m2) = (alice.expect_message().await, alice.expect_message().await);
    assert_eq!((body(&m1), body(&m2)), ("j1".into(), "j2".into()));
    alice
        .send_with_receipt(frames::ack(m1.header("ack").unwrap()), "a")
        .await;
    leave(alice).await;

    let mut alice = login(&broker, "alice").await;
    resubscribe(&mut alice, sub).await;
    let m = alice.expect_message().await;
    assert_eq!(
        (body(&m).as_str(), m.header("redelivered")),
        ("j2", Some("true"))
    );
    alice.expect_no_frame(QUIET).await;
}

#[tokio::test]
async fn unsubscribe_with_durable_true_removes_it_and_a_plain_one_does_not() {
    let broker = Broker::new();
    let mut alice = login(&broker, "alice").await;
    alice.subscribe_with(durable("feed", "/topic/t")).await;
    alice
        .send_with_receipt(frames::unsubscribe("feed"), "kept")
        .await;
    publish(&broker, "/topic/t", &["kept"]).await;
    resubscribe(&mut alice, durable("feed", "/topic/t")).await;
    assert_eq!(bodies(&mut alice, 1).await, ["kept"]);

    let forget = frames::unsubscribe("feed").with_header("durable", "true");
    alice.send_with_receipt(forget, "gone").await;
    publish(&broker, "/topic/t", &["nobody keeps this"]).await;
    assert!(
        broker
            .queues()
            .iter()
            .all(|(n, s)| n != "durable:alice:feed" || s.depth == 0)
    );
    alice.subscribe_with(durable("feed", "/topic/t")).await;
    alice.expect_no_frame(QUIET).await;
}

#[tokio::test]
async fn moving_a_durable_subscription_to_another_topic_starts_it_afresh() {
    let broker = Broker::new();
    let alice = login(&broker, "alice").await;
    let mut alice = alice;
    alice.subscribe_with(durable("feed", "/topic/a")).await;
    leave(alice).await;
    publish(&broker, "/topic/a", &["old"]).await;
    let mut alice = login(&broker, "alice").await;
    alice.subscribe_with(durable("feed", "/topic/b")).await;
    alice.expect_no_frame(QUIET).await;
    publish(&broker, "/topic/a", &["not any more"]).await;
    publish(&broker, "/topic/b", &["new"]).await;
    assert_eq!(bodies(&mut alice, 1).await, ["new"]);
    alice.expect_no_frame(QUIET).await;
}

#[tokio::test(start_paused = true)]
async fn bounds_drop_the_oldest_and_max_age_expires_what_waited_too_long() {
    let broker = broker_with(DurableConfig {
        max_messages: 3,
        max_age: Duration::from_secs(60),
        ..DurableConfig::default()
    });
    let alice = login(&broker, "alice").await;
    let mut alice = alice;
    alice.subscribe_with(durable("feed", "/topic/t")).await;
    leave(alice).await;
    publish(&broker, "/topic/t", &["1", "2", "3", "4", "5"]).await;
    let listed = broker.queues();
    let (_, stats) = listed
        .iter()
        .find(|(n, _)| n == "durable:alice:feed")
        .unwrap();
    assert_eq!((stats.depth, stats.dropped), (3, 2));

    let mut alice = login(&broker, "alice").await;
    let before = broker.now_millis();
    resubscribe(&mut alice, durable("feed", "/topic/t")).await;
    let m = alice.expect_message().await;
    assert_eq!(body(&m), "3");
    // Kept with an `expires` of when it was kept plus max_age.
    let expires: u64 = m.header("expires").unwrap().parse().unwrap();
    assert!(
        expires > before && expires <= before + 60_000,
        "{expires} vs {before}"
    );
    assert_eq!(bodies(&mut alice, 2).await, ["4", "5"]);
    leave(alice).await;

    publish(&broker, "/topic/t", &["stale"]).await;
    tokio::time::advance(Duration::from_secs(61)).await;
    publish(&broker, "/topic/t", &["fresh"]).await;
    let mut alice = login(&broker, "alice").await;
    resubscribe(&mut alice, durable("feed", "/topic/t")).await;
    assert_eq!(bodies(&mut alice, 1).await, ["fresh"]);
    alice.expect_no_frame(QUIET).await;
}

#[tokio::test]
async fn refusals_are_errors_that_say_why() {
    let broker = broker_with(DurableConfig {
        max_subscriptions: 2,
        max_per_user: 1,
        ..DurableConfig::default()
    });
    let mut c = login(&broker, "alice").await;
    c.send_frame(durable("x", "/user/queue/inbox")).await;
    let e = c
        .expect_error("durable subscriptions are to /topic destinations")
        .await;
    assert!(body(&e).contains("/user/queue/inbox"), "{}", body(&e));

    let mut c = login(&broker, "alice").await;
    c.subscribe_with(durable("a", "/topic/t")).await;
    c.send_frame(durable("b", "/topic/t")).await;
    c.expect_error("too many durable subscriptions for this user (max 1)")
        .await;
    let mut bob = login(&broker, "bob").await;
    bob.subscribe_with(durable("a", "/topic/t")).await;
    let mut carol = login(&broker, "carol").await;
    carol.send_frame(durable("a", "/topic/t")).await;
    carol
        .expect_error("too many durable subscriptions (max 2)")
        .await;

    // `durable:true` on a queue changes nothing: queues keep their messages anyway.
    let mut q = login(&broker, "dave").await;
    q.subscribe_with(durable("q", "/queue/jobs")).await;
    publish(&broker, "/queue/jobs", &["job"]).await;
    assert_eq!(bodies(&mut q, 1).await, ["job"]);

    let off = broker_with(DurableConfig {
        max_subscriptions: 0,
        ..DurableConfig::default()
    });
    let mut c = login(&off, "alice").await;
    c.send_frame(durable("a", "/topic/t")).await;
    c.expect_error("durable subscriptions are off on this node")
        .await;
}

#[tokio::test]
async fn a_durable_subscription_and_its_persistent_messages_survive_a_crash() {
    let store = MemoryStore::new(false);
    let first = stored_broker(store.clone());
    let mut alice = login(&first, "alice").await;
    // Its RECEIPT waits until the subscription is on disk.
    alice
        .send_frame(durable("feed", "/topic/t").with_header("receipt", "sub"))
        .await;
    alice.expect_no_frame(QUIET).await;
    store.sync();
    alice.expect_receipt("sub").await;
    alice.send_frame(frames::disconnect("bye")).await;
    alice.expect_receipt("bye").await;

    let mut p = TestClient::connect(&first).await;
    let persistent =
        |b: &str| frames::send("/topic/t", b.to_owned()).with_header("persistent", "true");
    p.send_frame(persistent("p1").with_header("receipt", "1"))
        .await;
    p.send_frame(frames::send("/topic/t", "transient").with_header("receipt", "2"))
        .await;
    p.send_frame(persistent("p2").with_header("receipt", "3"))
        .await;
    p.expect_no_frame(QUIET).await;
    store.sync();
    for r in ["1", "2", "3"] {
        p.expect_receipt(r).await;
    }

    // kill -9, then a restart on what was synced: the topic feeds the subscription again
    // before its subscriber is back. (Syncing by itself from now on, as a disk does: reading
    // back a tail on disk waits for its last write.)
    let restarted = store.crashed_auto_sync();
    let second = stored_broker(restarted.clone());
    let mut p = TestClient::connect(&second).await;
    p.send_with_receipt(persistent("p3"), "4").await;
    let mut alice = login(&second, "alice").await;
    resubscribe(&mut alice, durable("feed", "/topic/t")).await;
    assert_eq!(bodies(&mut alice, 3).await, ["p1", "p2", "p3"]);
    alice.expect_no_frame(QUIET).await;

    // Removed for good: after another restart nothing feeds it.
    let forget = frames::unsubscribe("feed").with_header("durable", "true");
    alice.send_with_receipt(forget, "gone").await;
    let third = stored_broker(restarted.crashed());
    assert!(
        third
            .queues()
            .iter()
            .all(|(n, _)| !n.starts_with("durable:"))
    );
}
