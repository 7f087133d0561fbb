//! Three in-process nodes joined through the real RabbitMQ: `/topic` fan-out with exact counts
//! (patterns included), `/user` destinations, `/app` handler sends, and nothing left behind.

mod common;

use std::collections::HashMap;

use common::*;
use stompbox_broker::{Broker, SendTo};
use stompbox_test_support::{TestClient, frames};

/// Receives exactly `n` messages and nothing more; returns their bodies.
async fn receive(c: &mut TestClient, n: usize) -> Vec<String> {
    let mut bodies = Vec::with_capacity(n);
    for _ in 0..n {
        bodies.push(body(&c.expect_message().await));
    }
    c.expect_no_frame(QUIET).await;
    bodies
}

/// A SUBSCRIBE's RECEIPT means the subscription is in effect on every node: what another node
/// publishes right after it arrives, without waiting for the relay in between (each round a
/// new topic, an exact one and a pattern, so each needs a new binding in RabbitMQ).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_is_in_effect_on_every_node_at_its_receipt() {
    let prefix = prefix("receipt");
    let (a, b) = (node(&prefix, "a").await, node(&prefix, "b").await);
    let mut subscriber = client(&b.broker).await;
    let mut publisher = client(&a.broker).await;
    for i in 0..25 {
        let (exact, pattern) = (format!("/topic/race.{i}"), format!("/topic/race{i}.*"));
        subscriber.subscribe(&format!("e{i}"), &exact).await;
        subscriber.subscribe(&format!("p{i}"), &pattern).await;
        publisher
            .send_frame(frames::send(&exact, format!("e{i}")))
            .await;
        let on_pattern = format!("/topic/race{i}.x");
        publisher
            .send_frame(frames::send(&on_pattern, format!("p{i}")))
            .await;
        let got = [
            &subscriber.expect_message().await,
            &subscriber.expect_message().await,
        ];
        assert_eq!(got.map(body), [format!("e{i}"), format!("p{i}")]);
    }
    subscriber.expect_no_frame(QUIET).await;
    for n in [&a, &b] {
        n.relay.stop().await;
    }
    remove_exchanges(&prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_fan_out_across_three_nodes_is_exactly_once() {
    let prefix = prefix("fanout");
    let nodes = [
        node(&prefix, "a").await,
        node(&prefix, "b").await,
        node(&prefix, "c").await,
    ];
    // On every node: two exact subscribers, one `*` pattern, one `#` pattern.
    let mut subscribers = Vec::new();
    for n in &nodes {
        for (i, destination) in [
            "/topic/news.eu",
            "/topic/news.eu",
            "/topic/news.*",
            "/topic/#",
        ]
        .into_iter()
        .enumerate()
        {
            let mut c = client(&n.broker).await;
            c.subscribe(&i.to_string(), destination).await;
            subscribers.push(c);
        }
    }
    synced(&[&nodes[0], &nodes[1], &nodes[2]]).await;
    // 40 from a client on node a, 40 from server code on node b.
    const N: usize = 40;
    let mut publisher = client(&nodes[0].broker).await;
    for i in 0..N {
        publisher
            .send_frame(frames::send("/topic/news.eu", format!("a{i}")))
            .await;
    }
    for i in 0..N {
        nodes[1]
            .broker
            .send("/topic/news.eu", format!("b{i}"))
            .unwrap();
    }
    let mut total = 0;
    for c in &mut subscribers {
        let bodies = receive(c, 2 * N).await;
        total += bodies.len();
        // Each publisher's messages arrive once each, in the order sent.
        for from in ["a", "b"] {
            let got: Vec<&String> = bodies.iter().filter(|b| b.starts_with(from)).collect();
            let want: Vec<String> = (0..N).map(|i| format!("{from}{i}")).collect();
            assert_eq!(got, want.iter().collect::<Vec<_>>());
        }
    }
    println!(
        "fan-out: {} subscribers on 3 nodes, {} messages each, {total} deliveries, no duplicate",
        subscribers.len(),
        2 * N
    );
    assert_eq!(total, 12 * 2 * N);
    for n in &nodes {
        n.relay.stop().await;
    }
    remove_exchanges(&prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patterns_match_across_nodes_like_on_one() {
    let prefix = prefix("patterns");
    let a = node(&prefix, "a").await;
    let b = node(&prefix, "b").await;
    let patterns = [
        "/topic/a.*.c",
        "/topic/a.#",
        "/topic/*.b.*",
        "/topic/#",
        "/topic/x",
    ];
    let mut subs = Vec::new();
    for (i, p) in patterns.iter().enumerate() {
        let mut c = client(&a.broker).await;
        c.subscribe(&i.to_string(), p).await;
        subs.push(c);
    }
    synced(&[&a, &b]).await;
    let keys = ["a.b.c", "a", "a.x", "b.c", "z.b.q", "x", "a.b.c.d"];
    for k in keys {
        b.broker.send(&format!("/topic/{k}"), k).unwrap();
    }
    let expected: [&[&str]; 5] = [
        &["a.b.c"],
        &["a.b.c", "a", "a.x", "a.b.c.d"],
        &["a.b.c", "z.b.q"],
        &keys,
        &["x"],
    ];
    for (c, want) in subs.iter_mut().zip(expected) {
        assert_eq!(receive(c, want.len()).await, want);
    }
    // The last subscriber of a pattern leaving unbinds it: only `#` and `x` remain.
    for (i, c) in subs.iter_mut().enumerate().take(3) {
        c.send_with_receipt(frames::unsubscribe(&i.to_string()), "u")
            .await;
    }
    synced(&[&a]).await;
    let mut left: Vec<String> = bindings(&prefix)
        .into_iter()
        .filter(|(source, _)| source.ends_with(".topic"))
        .map(|(_, key)| key)
        .collect();
    left.sort();
    assert_eq!(left, ["#", "x"]);
    a.relay.stop().await;
    b.relay.stop().await;
    remove_exchanges(&prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_destinations_and_app_handlers_reach_every_node_and_leave_nothing_behind() {
    let prefix = prefix("users");
    // Node c runs the handlers: `/app/shout` sends to a topic, `/app/dm.{to}` to a user.
    let handlers = Broker::builder()
        .on_send("/shout", |text: String| async move {
            SendTo::new("/topic/shouts", text)
        })
        .on_send(
            "/dm.{to}",
            |stompbox_broker::Path(to): stompbox_broker::Path<String>, text: String| async move {
                SendTo::new(format!("/user/{to}/queue/dm"), text)
            },
        );
    let a = node(&prefix, "a").await;
    let b = node(&prefix, "b").await;
    let c = node_with(&prefix, "c", handlers).await;
    let mut alice_a1 = login(&a.broker, "alice").await;
    let mut alice_a2 = login(&a.broker, "alice").await;
    let mut alice_b = login(&b.broker, "alice").await;
    let mut bob_b = login(&b.broker, "bob").await;
    for u in [&mut alice_a1, &mut alice_a2, &mut alice_b, &mut bob_b] {
        u.subscribe("dm", "/user/queue/dm").await;
        u.subscribe("shouts", "/topic/shouts").await;
    }
    synced(&[&a, &b, &c]).await;
    let user_bindings: Vec<String> = bindings(&prefix)
        .into_iter()
        .filter(|(source, _)| source.ends_with(".user"))
        .map(|(_, key)| key)
        .collect();
    // alice on a and b, bob on b: one binding per user per node, not per session.
    assert_eq!(user_bindings, ["alice", "alice", "bob"]);

    // Server code on c (no session of alice there).
    assert_eq!(
        c.broker
            .send_to_user("alice", "/queue/dm", "hello")
            .unwrap(),
        0
    );
    // A handler on c, called by a client on c.
    let mut carol = login(&c.broker, "carol").await;
    carol.send_frame(frames::send("/app/dm.bob", "psst")).await;
    carol.send_frame(frames::send("/app/shout", "hey")).await;

    let mut counts: HashMap<&str, usize> = HashMap::new();
    for (name, u) in [
        ("alice@a", &mut alice_a1),
        ("alice@a", &mut alice_a2),
        ("alice@b", &mut alice_b),
        ("bob@b", &mut bob_b),
    ] {
        let mut got = Vec::new();
        for _ in 0..2 {
            let m = u.expect_message().await;
            got.push((m.header("destination").unwrap().to_owned(), body(&m)));
        }
        u.expect_no_frame(QUIET).await;
        got.sort();
        let want = match name {
            "bob@b" => vec![
                ("/topic/shouts".to_owned(), "hey".to_owned()),
                ("/user/queue/dm".to_owned(), "psst".to_owned()),
            ],
            _ => vec![
                ("/topic/shouts".to_owned(), "hey".to_owned()),
                ("/user/queue/dm".to_owned(), "hello".to_owned()),
            ],
        };
        assert_eq!(got, want, "{name}");
        *counts.entry(name).or_default() += got.len();
    }
    println!("users: deliveries per user@node {counts:?}");

    // Everyone leaves: no per-user binding and no queue beyond one per node remain.
    for u in [alice_a1, alice_a2, alice_b, bob_b, carol] {
        u.disconnect().await;
    }
    synced(&[&a, &b, &c]).await;
    assert_eq!(bindings(&prefix), Vec::<(String, String)>::new());
    let node_queues: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|id| format!("{prefix}.node.{id}"))
        .collect();
    assert_eq!(queues(&prefix), node_queues);
    for n in [&a, &b, &c] {
        n.relay.stop().await;
    }
    assert_eq!(
        queues(&prefix),
        Vec::<String>::new(),
        "a stopped node deletes its queue"
    );
    remove_exchanges(&prefix).await;
}

/// A publisher faster than the relay is held back, not refused: with a buffer of 64 messages,
/// 20,000 sent as fast as the client can reach the other node, all of them, in order, and the
/// publisher is never sent an ERROR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_publisher_is_held_back_not_refused() {
    let prefix = prefix("flow");
    let small = |id: &str| {
        let mut config = config(&prefix, id);
        config.buffer_messages = 64;
        config
    };
    let (a, b) = (node_from(small("a")).await, node_from(small("b")).await);
    let mut subscriber = client(&b.broker).await;
    subscriber.subscribe("s", "/topic/burst").await;
    synced(&[&a, &b]).await;
    const N: usize = 20_000;
    // The subscriber reads as it goes, as a live client does.
    let receiving = tokio::spawn(async move {
        for i in 0..N {
            assert_eq!(body(&subscriber.expect_message().await), i.to_string());
        }
        assert_eq!(body(&subscriber.expect_message().await), "last");
        subscriber
    });
    let mut publisher = client(&a.broker).await;
    for i in 0..N {
        let send = frames::send("/topic/burst", i.to_string());
        publisher.send_frame(send).await;
    }
    publisher
        .send_with_receipt(frames::send("/topic/burst", "last"), "done")
        .await;
    let subscriber = tokio::time::timeout(WAIT, receiving)
        .await
        .expect("every message in time")
        .expect("in order");
    assert_eq!(a.relay.refused(), 0, "nothing refused");
    // Everything was confirmed: the buffer is empty and each publish's confirm was timed
    // (batches of /topic messages: fewer confirms than messages).
    assert_eq!(a.relay.buffered(), 0);
    let confirms = a.relay.confirm_latency();
    assert!(
        confirms.count > 0 && confirms.count <= N as u64 + 1,
        "{confirms:?}"
    );
    publisher.disconnect().await;
    subscriber.disconnect().await;
    for n in [&a, &b] {
        n.relay.stop().await;
    }
    remove_exchanges(&prefix).await;
}

/// What a sender publishes again after its link broke (the same incarnation and number) is
/// delivered once; messages without numbers, from other AMQP clients, are delivered as they
/// come. Published here straight to the topic exchange, as a node called `ghost` would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_published_again_are_delivered_once() {
    use lapin::types::{AMQPValue, FieldTable};

    let prefix = prefix("dedup");
    let b = node(&prefix, "b").await;
    let mut subscriber = client(&b.broker).await;
    subscriber.subscribe("s", "/topic/dup").await;
    synced(&[&b]).await;

    let connection =
        lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
            .await
            .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let publish = |body: &'static str, stamp: Option<(i64, i64)>| {
        let channel = channel.clone();
        let exchange = format!("{prefix}.topic");
        async move {
            let mut properties = lapin::BasicProperties::default();
            if let Some((incarnation, seq)) = stamp {
                let mut headers = FieldTable::default();
                headers.insert(
                    "x-stompbox-incarnation".into(),
                    AMQPValue::LongLongInt(incarnation),
                );
                headers.insert("x-stompbox-seq".into(), AMQPValue::LongLongInt(seq));
                properties = properties.with_app_id("ghost".into()).with_headers(headers);
            }
            channel
                .basic_publish(
                    exchange.as_str().into(),
                    "dup".into(),
                    lapin::options::BasicPublishOptions::default(),
                    body.as_bytes(),
                    properties,
                )
                .await
                .unwrap();
        }
    };
    publish("one", Some((7, 1))).await;
    publish("two", Some((7, 2))).await;
    // The link broke before the confirms: both again, then what follows.
    publish("one again", Some((7, 1))).await;
    publish("two again", Some((7, 2))).await;
    publish("three", Some((7, 3))).await;
    // A restarted ghost numbers from 1 again, in a new incarnation.
    publish("restarted", Some((8, 1))).await;
    publish("plain", None).await;
    publish("plain", None).await;
    for expected in ["one", "two", "three", "restarted", "plain", "plain"] {
        assert_eq!(body(&subscriber.expect_message().await), expected);
    }
    subscriber.expect_no_frame(QUIET).await;
    connection.close(200, "done".into()).await.unwrap();
    b.relay.stop().await;
    remove_exchanges(&prefix).await;
}
