//! Users' inboxes held in RabbitMQ (with `relay.queues`, the default): a message for a user at
//! a destination listed in `broker.inbox.destinations`, sent on any node while no session of
//! that user in the cluster is subscribed to it, waits in the user's inbox queue and is
//! delivered, in order, wherever the user subscribes to it next; while subscribed, messages go
//! straight to the user's sessions and nothing is kept; the inbox keeps its newest within its
//! bounds.

mod common;

use common::*;
use stompbox_broker::Broker;
use stompbox_test_support::frames;

fn with_inbox(max_messages: usize) -> stompbox_broker::BrokerBuilder {
    let mut config = stompbox_broker::Config::default();
    config.inbox.destinations = vec!["/queue/notifications".into()];
    config.inbox.max_messages = max_messages;
    Broker::builder().config(config)
}

/// Waits until RabbitMQ counts `n` messages in `queue`.
async fn holds(queue: &str, n: usize) {
    expect_queue_details(queue, &[(queue.to_owned(), "true".into(), n.to_string())]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absent_users_notifications_wait_in_rabbitmq_for_any_node() {
    let prefix = prefix("inbox");
    let a = node_with(&prefix, "a", with_inbox(10)).await;
    let b = node_with(&prefix, "b", with_inbox(10)).await;
    let inbox = format!("{prefix}.inbox.bob./queue/notifications");
    let notify = |i: usize| {
        a.broker
            .send_to_user("bob", "/queue/notifications", format!("n{i}"))
            .unwrap()
    };

    // Bob is nowhere: kept (by RabbitMQ's alternate exchange), in RabbitMQ, not on a node.
    for i in 0..4 {
        notify(i);
    }
    holds(&inbox, 4).await;
    // Bob on B, subscribed to another of his destinations only: still kept.
    let mut bob = login(&b.broker, "bob").await;
    bob.subscribe("chat", "/user/queue/chat").await;
    synced(&[&a, &b]).await;
    notify(4);
    holds(&inbox, 5).await;
    bob.expect_no_frame(QUIET).await;

    // Bob subscribes on B: what waited, in order; then live messages, kept nowhere.
    let mut early = subscribe_early(
        &mut bob,
        frames::subscribe_ack("n", "/user/queue/notifications", "client-individual"),
    )
    .await;
    let mut got = Vec::new();
    for _ in 0..5 {
        let m = next(&mut bob, &mut early).await;
        assert_eq!(m.header("destination"), Some("/user/queue/notifications"));
        got.push((body(&m), m.header("ack").unwrap().to_owned()));
    }
    let bodies: Vec<&str> = got.iter().map(|(b, _)| b.as_str()).collect();
    assert_eq!(bodies, ["n0", "n1", "n2", "n3", "n4"]);
    for (_, ack) in &got[..4] {
        bob.send_frame(frames::ack(ack)).await;
    }
    notify(5);
    let live = bob.expect_message().await;
    assert_eq!(body(&live), "n5");
    bob.send_frame(frames::ack(live.header("ack").unwrap()))
        .await;
    bob.expect_no_frame(QUIET).await;
    // n4 was not acknowledged: back in the inbox when the subscription ends.
    bob.send_with_receipt(frames::unsubscribe("n"), "u").await;
    holds(&inbox, 1).await;
    bob.disconnect().await;

    // Bob back on A: n4 again, redelivered; nothing else.
    let mut bob = login(&a.broker, "bob").await;
    let mut early = subscribe_early(
        &mut bob,
        frames::subscribe("n", "/user/queue/notifications"),
    )
    .await;
    let again = next(&mut bob, &mut early).await;
    assert_eq!(
        (body(&again).as_str(), again.header("redelivered")),
        ("n4", Some("true"))
    );
    bob.expect_no_frame(QUIET).await;
    holds(&inbox, 0).await;
    // Once A has unbound bob (a message sent before that reaches A and nobody: the relay's
    // window), what is sent is kept again.
    bob.send_with_receipt(frames::unsubscribe("n"), "u2").await;
    synced(&[&a]).await;
    bob.disconnect().await;

    // Bounded: of 14 sent while away, the newest 10 wait.
    for i in 10..24 {
        notify(i);
    }
    holds(&inbox, 10).await;
    let mut bob = login(&b.broker, "bob").await;
    let mut early = subscribe_early(
        &mut bob,
        frames::subscribe("n", "/user/queue/notifications"),
    )
    .await;
    let mut got = Vec::new();
    for _ in 0..10 {
        got.push(body(&next(&mut bob, &mut early).await));
    }
    let newest: Vec<String> = (14..24).map(|i| format!("n{i}")).collect();
    assert_eq!(got, newest);
    bob.expect_no_frame(QUIET).await;
    bob.disconnect().await;

    a.relay.stop().await;
    b.relay.stop().await;
    remove_queues(&[inbox]).await;
    remove_exchanges(&prefix).await;
}
