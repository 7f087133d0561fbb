//! SEND / SUBSCRIBE / UNSUBSCRIBE on `/topic`: fan-out, patterns, headers, order, receipts.

use std::time::Duration;

use stompbox_broker::{Broker, CloseReason, Config};
use stompbox_codec::{Command, Frame};
use stompbox_test_support::{TestClient, frames};

const QUIET: Duration = Duration::from_millis(50);

#[tokio::test]
async fn fan_out_reaches_every_subscriber() {
    let broker = Broker::new();
    let mut subs = Vec::new();
    for i in 0..5 {
        let mut c = TestClient::connect(&broker).await;
        c.subscribe(&format!("s{i}"), "/topic/news").await;
        subs.push(c);
    }
    let mut publisher = TestClient::connect(&broker).await;
    publisher
        .send_frame(frames::send("/topic/news", "hello").with_header("receipt", "p1"))
        .await;
    publisher.expect_receipt("p1").await;
    let mut ids = Vec::new();
    for (i, c) in subs.iter_mut().enumerate() {
        let m = c.expect_message().await;
        assert_eq!(m.header("destination"), Some("/topic/news"));
        assert_eq!(m.header("subscription"), Some(format!("s{i}").as_str()));
        assert_eq!(&m.body[..], b"hello");
        ids.push(m.header("message-id").unwrap().to_owned());
    }
    assert!(ids.iter().all(|id| !id.is_empty()));
    // The publisher is not subscribed and gets nothing back.
    publisher.expect_no_frame(QUIET).await;
    let stats = broker.stats();
    assert_eq!(stats.messages_received, 1);
    assert_eq!(stats.messages_delivered, 5);
}

#[tokio::test]
async fn message_ids_are_unique_per_node() {
    let broker = Broker::new();
    let mut sub = TestClient::connect(&broker).await;
    sub.subscribe("0", "/topic/a").await;
    let mut p1 = TestClient::connect(&broker).await;
    let mut p2 = TestClient::connect(&broker).await;
    for i in 0..10 {
        let p = if i % 2 == 0 { &mut p1 } else { &mut p2 };
        p.send_frame(frames::send("/topic/a", "x")).await;
    }
    let mut ids = std::collections::HashSet::new();
    for _ in 0..10 {
        let m = sub.expect_message().await;
        assert!(ids.insert(m.header("message-id").unwrap().to_owned()));
    }
}

#[tokio::test]
async fn no_subscriber_no_delivery_and_send_still_succeeds() {
    let broker = Broker::new();
    let mut p = TestClient::connect(&broker).await;
    p.send_frame(frames::send("/topic/void", "x").with_header("receipt", "r"))
        .await;
    p.expect_receipt("r").await;
    assert_eq!(broker.stats().messages_delivered, 0);
}

/// Subscribes one client per pattern, publishes to `key`, returns which patterns received it.
async fn who_receives(patterns: &[&str], key: &str) -> Vec<String> {
    let broker = Broker::new();
    let mut subs = Vec::new();
    for p in patterns {
        let mut c = TestClient::connect(&broker).await;
        c.subscribe("0", &format!("/topic/{p}")).await;
        subs.push((p.to_string(), c));
    }
    let mut publisher = TestClient::connect(&broker).await;
    publisher
        .send_frame(frames::send(&format!("/topic/{key}"), "x").with_header("receipt", "r"))
        .await;
    publisher.expect_receipt("r").await;
    // Deliveries are queued before the receipt is sent, so a DISCONNECT receipt flushes them.
    let mut got = Vec::new();
    for (p, c) in subs {
        let (frames, _) = {
            let mut c = c;
            c.send_frame(frames::disconnect("bye")).await;
            c.drain_until_closed().await
        };
        let messages = frames
            .iter()
            .filter(|f| f.command == Command::Message)
            .count();
        assert!(messages <= 1);
        if messages == 1 {
            let m = frames
                .iter()
                .find(|f| f.command == Command::Message)
                .unwrap();
            assert_eq!(
                m.header("destination"),
                Some(format!("/topic/{key}").as_str())
            );
            got.push(p);
        }
    }
    got
}

#[tokio::test]
async fn star_matches_exactly_one_word() {
    let patterns = ["stock.*", "stock.*.nyse", "*.usd.*", "*", "stock.usd"];
    assert_eq!(
        who_receives(&patterns, "stock.usd").await,
        ["stock.*", "stock.usd"]
    );
    assert_eq!(
        who_receives(&patterns, "stock.usd.nyse").await,
        ["stock.*.nyse", "*.usd.*"]
    );
    assert_eq!(who_receives(&patterns, "stock").await, ["*"]);
}

#[tokio::test]
async fn hash_matches_zero_or_more_words() {
    let patterns = ["stock.#", "#", "#.nyse", "stock.#.nyse", "a#"];
    assert_eq!(who_receives(&patterns, "stock").await, ["stock.#", "#"]);
    assert_eq!(
        who_receives(&patterns, "stock.usd.nyse").await,
        ["stock.#", "#", "#.nyse", "stock.#.nyse"]
    );
    assert_eq!(who_receives(&patterns, "nyse").await, ["#", "#.nyse"]);
    // Wildcards count only as whole words: `a#` is a literal.
    assert_eq!(who_receives(&patterns, "a#").await, ["#", "a#"]);
}

#[tokio::test]
async fn user_headers_and_content_type_are_forwarded_reserved_ones_are_not() {
    let broker = Broker::new();
    let mut sub = TestClient::connect(&broker).await;
    sub.subscribe("0", "/topic/h").await;
    let mut p = TestClient::connect(&broker).await;
    let send = frames::send("/topic/h", "{\"a\":1}")
        .with_header("content-type", "application/json")
        .with_header("x-trace", "abc:def\\ghi")
        .with_header("priority", "5")
        .with_header("receipt", "r9")
        .with_header("message-id", "forged")
        .with_header("subscription", "forged");
    p.send_frame(send).await;
    p.expect_receipt("r9").await;
    let m = sub.expect_message().await;
    assert_eq!(m.header("content-type"), Some("application/json"));
    assert_eq!(m.header("content-length"), Some("7"));
    assert_eq!(
        m.header("x-trace"),
        Some("abc:def\\ghi"),
        "escaping round-trips"
    );
    assert_eq!(m.header("priority"), Some("5"));
    assert_eq!(m.header("receipt"), None);
    assert_ne!(m.header("message-id"), Some("forged"));
    assert_eq!(m.header("subscription"), Some("0"));
    assert_eq!(m.headers.get_all("subscription").count(), 1);
    assert_eq!(m.headers.get_all("message-id").count(), 1);
}

#[tokio::test]
async fn binary_bodies_go_out_flagged_binary() {
    let broker = Broker::new();
    let mut sub = TestClient::connect(&broker).await;
    sub.subscribe("0", "/topic/bin").await;
    let mut p = TestClient::connect(&broker).await;
    p.send_frame(frames::send("/topic/bin", &b"\x00\xff\xfe"[..]))
        .await;
    let m = sub.expect_message().await;
    assert_eq!(&m.body[..], b"\x00\xff\xfe");
    assert_eq!(sub.batch_flags(), [false, false, true]);
}

#[tokio::test]
async fn each_publisher_order_is_kept_per_subscriber() {
    publisher_order_is_kept().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_publisher_order_is_kept_on_a_multi_threaded_runtime() {
    publisher_order_is_kept().await;
}

async fn publisher_order_is_kept() {
    let broker = Broker::new();
    let mut subs = Vec::new();
    for i in 0..3 {
        let mut c = TestClient::connect(&broker).await;
        c.subscribe("0", "/topic/seq.#").await;
        subs.push((i, c));
    }
    let mut a = TestClient::connect(&broker).await;
    let mut b = TestClient::connect(&broker).await;
    let a_task = tokio::spawn(async move {
        for n in 0..200 {
            a.send_frame(frames::send("/topic/seq.a", format!("a{n}")))
                .await;
        }
        a
    });
    let b_task = tokio::spawn(async move {
        for n in 0..200 {
            b.send_frame(frames::send("/topic/seq.b", format!("b{n}")))
                .await;
        }
        b
    });
    let _a = a_task.await.unwrap();
    let _b = b_task.await.unwrap();
    for (_, c) in &mut subs {
        let (mut next_a, mut next_b) = (0, 0);
        for _ in 0..400 {
            let m = c.expect_message().await;
            let body = std::str::from_utf8(&m.body).unwrap().to_owned();
            let (who, n) = body.split_at(1);
            let n: u32 = n.parse().unwrap();
            match who {
                "a" => {
                    assert_eq!(n, next_a);
                    next_a += 1;
                }
                _ => {
                    assert_eq!(n, next_b);
                    next_b += 1;
                }
            }
        }
        assert_eq!((next_a, next_b), (200, 200));
    }
}

#[tokio::test]
async fn frames_split_across_chunks_and_batched_in_one_chunk() {
    let broker = Broker::new();
    let mut sub = TestClient::connect(&broker).await;
    sub.subscribe("0", "/topic/x").await;
    let mut p = TestClient::connect(&broker).await;
    let two = b"SEND\ndestination:/topic/x\n\none\0\nSEND\ndestination:/topic/x\n\ntwo\0";
    p.send_bytes(&two[..]).await;
    let three = b"SEND\ndestination:/topic/x\ncontent-length:5\n\nth\0ee\0";
    for byte in three.chunks(1) {
        p.send_bytes(byte.to_vec()).await;
    }
    assert_eq!(&sub.expect_message().await.body[..], b"one");
    assert_eq!(&sub.expect_message().await.body[..], b"two");
    assert_eq!(&sub.expect_message().await.body[..], b"th\0ee");
}

#[tokio::test]
async fn receipt_comes_after_the_subscription_is_in_effect() {
    let broker = Broker::new();
    let mut sub = TestClient::connect(&broker).await;
    let mut p = TestClient::connect(&broker).await;
    // Subscribe and, in the same chunk, ask for a receipt: once it arrives, a publish must land.
    sub.send_frame(frames::subscribe("0", "/topic/r").with_header("receipt", "s"))
        .await;
    sub.expect_receipt("s").await;
    p.send_frame(frames::send("/topic/r", "after")).await;
    assert_eq!(&sub.expect_message().await.body[..], b"after");
}

#[tokio::test]
async fn unsubscribe_stops_delivery_and_its_receipt_follows_the_effect() {
    let broker = Broker::new();
    let mut sub = TestClient::connect(&broker).await;
    sub.subscribe("0", "/topic/u").await;
    sub.subscribe("1", "/topic/u").await;
    sub.send_frame(frames::unsubscribe("0").with_header("receipt", "u0"))
        .await;
    sub.expect_receipt("u0").await;
    let mut p = TestClient::connect(&broker).await;
    p.send_frame(frames::send("/topic/u", "x")).await;
    let m = sub.expect_message().await;
    assert_eq!(m.header("subscription"), Some("1"));
    sub.expect_no_frame(QUIET).await;
    // The id can be reused once unsubscribed.
    sub.subscribe("0", "/topic/u2").await;
}

#[tokio::test]
async fn unsubscribe_of_an_unknown_id_is_an_error() {
    let broker = Broker::new();
    let mut c = TestClient::connect(&broker).await;
    c.send_frame(frames::unsubscribe("nope").with_header("receipt", "r"))
        .await;
    let e = c.expect_error("unknown subscription id").await;
    assert_eq!(e.header("receipt-id"), Some("r"));
    c.expect_closed().await;
}

#[tokio::test]
async fn duplicate_subscription_id_is_an_error() {
    let broker = Broker::new();
    let mut c = TestClient::connect(&broker).await;
    c.subscribe("0", "/topic/a").await;
    c.send_frame(frames::subscribe("0", "/topic/b").with_header("receipt", "dup"))
        .await;
    let e = c.expect_error("duplicate subscription id").await;
    assert_eq!(e.header("receipt-id"), Some("dup"));
    assert!(matches!(
        c.expect_closed().await,
        CloseReason::ProtocolError(_)
    ));
}

#[tokio::test]
async fn subscribe_needs_an_id_in_1_1_and_1_2_but_not_in_1_0() {
    let broker = Broker::new();
    let mut c = TestClient::connect(&broker).await;
    c.send_frame(Frame::new(Command::Subscribe).with_header("destination", "/topic/a"))
        .await;
    c.expect_error("missing id header").await;

    let (mut old, _) = TestClient::connect_with(&broker, frames::connect_1_0()).await;
    old.send_frame(
        Frame::new(Command::Subscribe)
            .with_header("destination", "/topic/old")
            .with_header("receipt", "s"),
    )
    .await;
    old.expect_receipt("s").await;
    let mut p = TestClient::connect(&broker).await;
    p.send_frame(frames::send("/topic/old", "x")).await;
    let m = old.expect_message().await;
    assert_eq!(
        m.header("subscription"),
        Some("/topic/old"),
        "id defaults to the destination"
    );
    // ...and UNSUBSCRIBE by destination works in 1.0.
    old.send_frame(
        Frame::new(Command::Unsubscribe)
            .with_header("destination", "/topic/old")
            .with_header("receipt", "u"),
    )
    .await;
    old.expect_receipt("u").await;
}

#[tokio::test]
async fn missing_destination_is_an_error() {
    let broker = Broker::new();
    let mut c = TestClient::connect(&broker).await;
    c.send_frame(Frame::new(Command::Send).with_body("x")).await;
    c.expect_error("missing destination header").await;
    let mut c = TestClient::connect(&broker).await;
    c.send_frame(frames::send("/topic/", "x")).await;
    c.expect_error("invalid destination").await;
}

#[tokio::test]
async fn destination_kinds_not_served_yet_are_errors() {
    let broker = Broker::new();
    for (destination, message) in [(
        "/exchange/amq.topic/x",
        "other destinations are not supported yet",
    )] {
        let mut c = TestClient::connect(&broker).await;
        c.send_frame(frames::send(destination, "x")).await;
        let e = c.expect_error(message).await;
        assert!(std::str::from_utf8(&e.body).unwrap().contains(destination));
        let mut c = TestClient::connect(&broker).await;
        c.send_frame(frames::subscribe("0", destination)).await;
        c.expect_error(message).await;
    }
}

#[tokio::test]
async fn client_ack_modes_on_topics_are_accepted_and_acks_validated() {
    let broker = Broker::new();
    let mut c = TestClient::connect(&broker).await;
    for (id, mode) in [("a", "auto"), ("c", "client"), ("i", "client-individual")] {
        c.send_frame(
            frames::subscribe(id, "/topic/acks")
                .with_header("ack", mode)
                .with_header("receipt", id),
        )
        .await;
        c.expect_receipt(id).await;
    }
    let mut p = TestClient::connect(&broker).await;
    p.send_frame(frames::send("/topic/acks", "1")).await;
    p.send_frame(frames::send("/topic/acks", "2")).await;
    let mut by_sub = std::collections::HashMap::<String, Vec<Frame>>::new();
    for _ in 0..6 {
        let m = c.expect_message().await;
        let sub = m.header("subscription").unwrap().to_owned();
        by_sub.entry(sub).or_default().push(m);
    }
    assert!(by_sub["a"].iter().all(|m| m.header("ack").is_none()));
    let ack = |m: &Frame| m.header("ack").expect("client modes carry ack").to_owned();
    // Cumulative: acking the second settles both; the first is then unknown.
    let (c1, c2) = (ack(&by_sub["c"][0]), ack(&by_sub["c"][1]));
    let (i1, i2) = (ack(&by_sub["i"][0]), ack(&by_sub["i"][1]));
    for (command, id) in [
        (Command::Ack, &c2),
        (Command::Nack, &i1),
        (Command::Ack, &i2),
    ] {
        c.send_frame(
            Frame::new(command)
                .with_header("id", id.as_str())
                .with_header("receipt", id.as_str()),
        )
        .await;
        c.expect_receipt(id).await;
    }
    // No redelivery on topics, NACK included.
    c.expect_no_frame(QUIET).await;
    c.send_frame(Frame::new(Command::Ack).with_header("id", c1.as_str()))
        .await;
    c.expect_error("unknown ack id").await;
}

#[tokio::test]
async fn invalid_ack_modes_are_errors() {
    let broker = Broker::new();
    let mut c = TestClient::connect(&broker).await;
    c.send_frame(frames::subscribe("0", "/topic/a").with_header("ack", "sometimes"))
        .await;
    c.expect_error("invalid ack mode").await;
}

#[tokio::test]
async fn max_subscriptions_per_session() {
    let config = Config {
        max_subscriptions_per_session: 3,
        ..Config::default()
    };
    let broker = Broker::builder().config(config).build().unwrap();
    let mut c = TestClient::connect(&broker).await;
    for i in 0..3 {
        c.subscribe(&i.to_string(), "/topic/a").await;
    }
    c.send_frame(frames::subscribe("3", "/topic/a")).await;
    c.expect_error("too many subscriptions (max 3)").await;
    c.expect_closed().await;
}

/// Destinations a client sends or subscribes to are held to the length and topic-word limits;
/// the ERROR names the limit, its value and its configuration key.
#[tokio::test]
async fn destination_limits_are_errors_naming_the_limit() {
    let config = Config {
        max_destination_length: 32,
        max_topic_words: 4,
        ..Config::default()
    };
    let broker = Broker::builder().config(config).build().unwrap();
    let long = format!("/topic/{}", "x".repeat(26)); // 33 bytes
    let cases = [
        (
            frames::send(&long, "m"),
            "destination too long (max 32 bytes)",
            "destination of 33 bytes exceeds the maximum of 32 (broker.max_destination_length)",
        ),
        (
            frames::subscribe("0", "/queue/a-long-queue-name-for-this"),
            "destination too long (max 32 bytes)",
            "destination of 33 bytes exceeds the maximum of 32 (broker.max_destination_length)",
        ),
        (
            frames::send("/topic/a.b.c.d.e", "m"),
            "too many words in topic (max 4)",
            "topic of 5 words exceeds the maximum of 4 (broker.max_topic_words)",
        ),
        (
            frames::subscribe("0", "/topic/a.*.#.."),
            "too many words in topic (max 4)",
            "topic of 5 words exceeds the maximum of 4 (broker.max_topic_words)",
        ),
    ];
    for (frame, message, detail) in cases {
        let mut c = TestClient::connect(&broker).await;
        c.send_frame(frame.with_header("receipt", "r")).await;
        let error = c.expect_error(message).await;
        assert_eq!(error.header("receipt-id"), Some("r"));
        assert_eq!(std::str::from_utf8(&error.body).unwrap(), detail);
        c.expect_closed().await;
    }
    // At the limits: accepted. Words count on topics only.
    let mut c = TestClient::connect(&broker).await;
    let longest = format!("/topic/{}", "x".repeat(25));
    c.subscribe("0", &longest).await;
    c.subscribe("1", "/topic/a.*.#.").await;
    c.subscribe("2", "/queue/a.b.c.d.e.f").await;
    c.send_frame(frames::send("/topic/a.b.c.", "m")).await;
    assert_eq!(c.expect_message().await.header("subscription"), Some("1"));
}

/// Wildcard subscriptions are counted node-wide, all sessions together; exact ones are not.
#[tokio::test]
async fn max_wildcard_subscriptions_per_node() {
    let config = Config {
        max_wildcard_subscriptions: 2,
        ..Config::default()
    };
    let broker = Broker::builder().config(config).build().unwrap();
    let mut a = TestClient::connect(&broker).await;
    a.subscribe("0", "/topic/a.*").await;
    a.subscribe("1", "/topic/#").await;
    a.subscribe("2", "/topic/a.b").await;
    let mut b = TestClient::connect(&broker).await;
    b.subscribe("0", "/topic/exact").await;
    b.send_frame(frames::subscribe("1", "/topic/a.*")).await;
    let error = b
        .expect_error("too many wildcard subscriptions (max 2)")
        .await;
    assert_eq!(
        std::str::from_utf8(&error.body).unwrap(),
        "\"/topic/a.*\": this node holds 2 wildcard topic subscriptions, the maximum \
         (broker.max_wildcard_subscriptions)"
    );
    b.expect_closed().await;
    // One leaves: there is room again, and the refused one was never routed to.
    a.send_with_receipt(frames::unsubscribe("1"), "u").await;
    let mut c = TestClient::connect(&broker).await;
    c.subscribe("0", "/topic/a.*").await;
    c.send_frame(frames::send("/topic/a.b", "m")).await;
    assert_eq!(c.expect_message().await.header("subscription"), Some("0"));
    let mut got = Vec::new();
    for _ in 0..2 {
        let m = a.expect_message().await;
        got.push(m.header("subscription").unwrap().to_owned());
    }
    got.sort();
    assert_eq!(got, ["0", "2"]);
    a.expect_no_frame(QUIET).await;
}

#[tokio::test]
async fn disconnect_with_receipt_sends_it_then_closes() {
    let broker = Broker::new();
    let mut c = TestClient::connect(&broker).await;
    c.send_frame(frames::disconnect("d1")).await;
    c.expect_receipt("d1").await;
    assert_eq!(c.expect_closed().await, CloseReason::Disconnect);
    assert_eq!(broker.stats().connections, 0);
}

#[tokio::test]
async fn disconnect_without_receipt_closes() {
    let broker = Broker::new();
    let mut c = TestClient::connect(&broker).await;
    c.send_frame(Frame::new(Command::Disconnect)).await;
    assert_eq!(c.expect_closed().await, CloseReason::Disconnect);
}

#[tokio::test]
async fn frames_after_disconnect_in_the_same_chunk_are_ignored() {
    let broker = Broker::new();
    let mut sub = TestClient::connect(&broker).await;
    sub.subscribe("0", "/topic/z").await;
    let mut c = TestClient::connect(&broker).await;
    c.send_bytes(&b"DISCONNECT\nreceipt:d\n\n\0SEND\ndestination:/topic/z\n\nlate\0"[..])
        .await;
    c.expect_receipt("d").await;
    c.expect_closed().await;
    sub.expect_no_frame(QUIET).await;
}

#[tokio::test]
async fn a_closed_session_leaves_no_subscriptions_behind() {
    let broker = Broker::new();
    let mut gone = TestClient::connect(&broker).await;
    gone.subscribe("0", "/topic/g").await;
    gone.subscribe("1", "/topic/#").await;
    gone.close_input();
    assert_eq!(gone.expect_closed().await, CloseReason::TransportClosed);
    let mut p = TestClient::connect(&broker).await;
    p.send_frame(frames::send("/topic/g", "x").with_header("receipt", "r"))
        .await;
    p.expect_receipt("r").await;
    assert_eq!(broker.stats().messages_delivered, 0);
}

#[tokio::test]
async fn version_1_0_and_1_1_escaping_on_delivery() {
    let broker = Broker::new();
    let (mut v10, _) = TestClient::connect_with(&broker, frames::connect_1_0()).await;
    v10.send_frame(frames::subscribe("0", "/topic/e").with_header("receipt", "s"))
        .await;
    v10.expect_receipt("s").await;
    let (mut v11, _) =
        TestClient::connect_with(&broker, frames::connect_with_versions("1.1")).await;
    v11.subscribe("0", "/topic/e").await;
    let mut p = TestClient::connect(&broker).await;
    p.send_frame(frames::send("/topic/e", "x").with_header("k", "a:b\\c"))
        .await;
    // 1.1 escapes and the client unescapes; 1.0 writes the text as is.
    assert_eq!(v11.expect_message().await.header("k"), Some("a:b\\c"));
    assert_eq!(v10.expect_message().await.header("k"), Some("a:b\\c"));
}

#[tokio::test]
async fn a_read_error_ends_the_session_and_its_subscriptions() {
    let broker = Broker::new();
    let mut c = TestClient::connect(&broker).await;
    c.subscribe("0", "/topic/err").await;
    c.send_error(std::io::Error::other("connection reset"))
        .await;
    assert_eq!(c.expect_closed().await, CloseReason::TransportClosed);
    let mut p = TestClient::connect(&broker).await;
    p.send_frame(frames::send("/topic/err", "x").with_header("receipt", "r"))
        .await;
    p.expect_receipt("r").await;
    assert_eq!(broker.stats().messages_delivered, 0);
    assert_eq!(broker.stats().connections, 1);
}

#[tokio::test]
async fn queued_frames_go_out_batched_in_one_outbound() {
    let broker = Broker::new();
    let mut sub = TestClient::connect(&broker).await;
    sub.subscribe("0", "/topic/batch").await;
    let before = sub.batch_flags().len();
    let mut p = TestClient::connect(&broker).await;
    // Ten SENDs in one chunk are routed before the subscriber's task runs again, so its next
    // write carries all ten.
    let mut chunk = Vec::new();
    for n in 0..10 {
        chunk.extend_from_slice(format!("SEND\ndestination:/topic/batch\n\n{n}\0").as_bytes());
    }
    p.send_bytes(chunk).await;
    for n in 0..10 {
        assert_eq!(sub.expect_message().await.body, n.to_string());
    }
    assert_eq!(
        sub.batch_flags().len(),
        before + 1,
        "one Outbound for ten MESSAGEs"
    );
}
