//! `/queue/...`: point-to-point delivery, competing consumers, redelivery, dead letters,
//! bounds, prefetch, expiry and the slow-consumer rule for queues.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use stompbox_broker::{
    Broker, CloseReason, Config, ExpiredPolicy, OutboxConfig, OverflowPolicy, QueueConfig,
    SlowConsumerPolicy,
};
use stompbox_codec::{Command, Frame};
use stompbox_test_support::{TestClient, frames};

const QUIET: Duration = Duration::from_millis(50);

fn broker_with(queues: QueueConfig) -> Broker {
    let config = Config {
        queues,
        ..Config::default()
    };
    Broker::builder().config(config).build().unwrap()
}

fn body(m: &Frame) -> String {
    String::from_utf8(m.body.to_vec()).unwrap()
}

fn ack_id(m: &Frame) -> &str {
    m.header("ack")
        .expect("client-ack MESSAGE on 1.2 carries ack")
}

/// Sends `n` messages `prefix-<i>` to `destination`, the last one with a receipt.
async fn send_many(publisher: &mut TestClient, destination: &str, prefix: &str, n: usize) {
    for i in 0..n {
        let frame = frames::send(destination, format!("{prefix}-{i:03}"));
        if i + 1 == n {
            publisher.send_with_receipt(frame, "sent").await;
        } else {
            publisher.send_frame(frame).await;
        }
    }
}

#[tokio::test]
async fn each_message_goes_to_exactly_one_consumer_round_robin() {
    let broker = Broker::new();
    let mut consumers = Vec::new();
    for i in 0..3 {
        let mut c = TestClient::connect(&broker).await;
        c.subscribe(&format!("c{i}"), "/queue/jobs").await;
        consumers.push(c);
    }
    let mut p = TestClient::connect(&broker).await;
    send_many(&mut p, "/queue/jobs", "job", 9).await;
    for (i, c) in consumers.iter_mut().enumerate() {
        for k in 0..3 {
            let m = c.expect_message().await;
            assert_eq!(body(&m), format!("job-{:03}", i + 3 * k));
            assert_eq!(m.header("destination"), Some("/queue/jobs"));
            assert_eq!(m.header("subscription"), Some(format!("c{i}").as_str()));
            // auto mode: no ack header; a first delivery says so, as RabbitMQ's do.
            assert_eq!(m.header("ack"), None);
            let delivered = (m.header("redelivered"), m.header("x-delivery-count"));
            assert_eq!(delivered, (Some("false"), Some("0")));
        }
        c.expect_no_frame(QUIET).await;
    }
    let stats = broker.queue_stats("/queue/jobs").unwrap();
    assert_eq!(
        (stats.depth, stats.in_flight, stats.delivered, stats.acked),
        (0, 0, 9, 9)
    );
    assert_eq!(stats.consumers, 3);
}

/// Reads one MESSAGE from whichever of `a` and `b` has one first.
async fn next_of_two(a: &mut TestClient, b: &mut TestClient) -> (usize, Frame) {
    tokio::select! {
        m = a.expect_message() => (0, m),
        m = b.expect_message() => (1, m),
    }
}

#[tokio::test]
async fn competing_consumers_lose_nothing_when_one_disconnects_holding_unacked_messages() {
    competing_consumers_with_one_vanishing().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn competing_consumers_lose_nothing_on_a_multi_threaded_runtime() {
    competing_consumers_with_one_vanishing().await;
}

async fn competing_consumers_with_one_vanishing() {
    const N: usize = 30;
    let broker = Broker::new();
    let mut consumers = Vec::new();
    for i in 0..3 {
        let mut c = TestClient::connect(&broker).await;
        c.subscribe_with(frames::subscribe_ack(
            &format!("c{i}"),
            "/queue/work",
            "client-individual",
        ))
        .await;
        consumers.push(c);
    }
    let mut p = TestClient::connect(&broker).await;
    send_many(&mut p, "/queue/work", "w", N).await;

    let mut acked: Vec<String> = Vec::new();
    let mut seen_by = vec![BTreeSet::new(); 3];
    let mut held = Vec::new();
    for (i, c) in consumers.iter_mut().enumerate() {
        let mut got = Vec::new();
        for _ in 0..N / 3 {
            got.push(c.expect_message().await);
        }
        // The third consumer acks four and keeps the rest unacknowledged.
        let to_ack = if i < 2 { got.len() } else { 4 };
        for (k, m) in got.iter().enumerate() {
            seen_by[i].insert(body(m));
            if k + 1 == to_ack {
                // Nothing else is routed to it now, so its RECEIPT is next.
                c.send_with_receipt(frames::ack(ack_id(m)), "acked").await;
            } else if k < to_ack {
                c.send_frame(frames::ack(ack_id(m))).await;
            }
            if k < to_ack {
                acked.push(body(m));
            } else {
                held.push(body(m));
            }
        }
    }
    // The three sets are disjoint and cover everything.
    let all: BTreeSet<String> = seen_by.iter().flatten().cloned().collect();
    assert_eq!(all.len(), N);
    assert_eq!(seen_by.iter().map(BTreeSet::len).sum::<usize>(), N);
    assert_eq!(broker.queue_stats("/queue/work").unwrap().in_flight, 6);

    // The third consumer vanishes without DISCONNECT: its six go to the other two.
    let mut gone = consumers.pop().unwrap();
    gone.close_input();
    assert_eq!(gone.close_reason().await, CloseReason::TransportClosed);
    let (a, b) = consumers.split_at_mut(1);
    let (a, b) = (&mut a[0], &mut b[0]);
    let mut redelivered = Vec::new();
    for _ in 0..held.len() {
        let (who, m) = next_of_two(a, b).await;
        assert_eq!(m.header("redelivered"), Some("true"));
        let c = if who == 0 { &mut *a } else { &mut *b };
        let id = ack_id(&m).to_owned();
        c.send_frame(frames::ack(&id)).await;
        redelivered.push(body(&m));
    }
    a.expect_no_frame(QUIET).await;
    b.expect_no_frame(QUIET).await;
    redelivered.sort();
    held.sort();
    assert_eq!(
        redelivered, held,
        "exactly the unacknowledged ones come back"
    );
    acked.extend(redelivered);
    let unique: HashSet<&String> = acked.iter().collect();
    assert_eq!((acked.len(), unique.len()), (N, N), "no loss, no duplicate");
    let stats = broker.queue_stats("/queue/work").unwrap();
    assert_eq!(
        (stats.depth, stats.in_flight, stats.acked, stats.redelivered),
        (0, 0, N as u64, 6)
    );
    assert_eq!(stats.consumers, 2);
}

#[tokio::test]
async fn a_queue_filled_while_nobody_listens_is_drained_in_order_by_the_first_subscriber() {
    let broker = Broker::new();
    let mut p = TestClient::connect(&broker).await;
    send_many(&mut p, "/queue/backlog", "b", 250).await;
    let stats = broker.queue_stats("/queue/backlog").unwrap();
    assert_eq!((stats.depth, stats.consumers, stats.delivered), (250, 0, 0));
    // Prefetch (default 100) bounds what is in flight; auto acks free room as they are written.
    let mut c = TestClient::connect(&broker).await;
    // No receipt: the backlog starts flowing before it would.
    c.send_frame(frames::subscribe("0", "/queue/backlog")).await;
    for i in 0..250 {
        assert_eq!(body(&c.expect_message().await), format!("b-{i:03}"));
    }
    c.expect_no_frame(QUIET).await;
    assert_eq!(broker.queue_stats("/queue/backlog").unwrap().depth, 0);
}

#[tokio::test]
async fn nack_redelivers_to_another_consumer() {
    let broker = Broker::new();
    let mut a = TestClient::connect(&broker).await;
    a.subscribe_with(frames::subscribe_ack("a", "/queue/n", "client-individual"))
        .await;
    let mut b = TestClient::connect(&broker).await;
    b.subscribe_with(frames::subscribe_ack("b", "/queue/n", "client-individual"))
        .await;
    let mut p = TestClient::connect(&broker).await;
    p.send_with_receipt(frames::send("/queue/n", "hot potato"), "r")
        .await;
    let first = a.expect_message().await;
    assert_eq!(first.header("redelivered"), Some("false"));
    a.send_with_receipt(frames::nack(ack_id(&first)), "n").await;
    let again = b.expect_message().await;
    assert_eq!(body(&again), "hot potato");
    assert_eq!(again.header("redelivered"), Some("true"));
    assert_eq!(again.header("x-delivery-count"), Some("1"));
    assert_eq!(again.header("message-id"), first.header("message-id"));
    assert_ne!(ack_id(&again), ack_id(&first), "a new ack id per delivery");
    // The old ack id is spent.
    a.expect_no_frame(QUIET).await;
    a.send_frame(frames::ack(ack_id(&first))).await;
    a.expect_error("unknown ack id").await;
    b.send_with_receipt(frames::ack(ack_id(&again)), "ok").await;
    let stats = broker.queue_stats("/queue/n").unwrap();
    assert_eq!((stats.redelivered, stats.acked, stats.in_flight), (1, 1, 0));
}

#[tokio::test]
async fn unsubscribe_gives_unacked_messages_to_another_consumer() {
    let broker = Broker::new();
    let mut a = TestClient::connect(&broker).await;
    a.subscribe_with(frames::subscribe_ack("a", "/queue/u", "client"))
        .await;
    let mut p = TestClient::connect(&broker).await;
    send_many(&mut p, "/queue/u", "u", 3).await;
    for i in 0..3 {
        assert_eq!(body(&a.expect_message().await), format!("u-{i:03}"));
    }
    let mut b = TestClient::connect(&broker).await;
    b.subscribe_with(frames::subscribe_ack("b", "/queue/u", "client"))
        .await;
    b.expect_no_frame(QUIET).await;
    a.send_with_receipt(frames::unsubscribe("a"), "bye").await;
    for i in 0..3 {
        let m = b.expect_message().await;
        assert_eq!(body(&m), format!("u-{i:03}"), "in their original order");
        assert_eq!(m.header("redelivered"), Some("true"));
    }
    a.expect_no_frame(QUIET).await;
}

#[tokio::test]
async fn a_poison_message_is_dead_lettered_after_max_deliveries() {
    let broker = broker_with(QueueConfig {
        max_deliveries: 3,
        ..QueueConfig::default()
    });
    let mut dlq = TestClient::connect(&broker).await;
    dlq.subscribe("d", "/queue/dlq.orders").await;
    let mut c = TestClient::connect(&broker).await;
    c.subscribe_with(frames::subscribe_ack("0", "/queue/orders", "client"))
        .await;
    let mut p = TestClient::connect(&broker).await;
    p.send_with_receipt(
        frames::send("/queue/orders", "poison").with_header("x-kind", "bad"),
        "r",
    )
    .await;
    for delivery in 1..=3 {
        let m = c.expect_message().await;
        let redelivered = if delivery > 1 { "true" } else { "false" };
        assert_eq!(m.header("redelivered"), Some(redelivered));
        let count = (delivery - 1).to_string();
        assert_eq!(m.header("x-delivery-count"), Some(count.as_str()));
        c.send_frame(frames::nack(ack_id(&m))).await;
    }
    c.expect_no_frame(QUIET).await;
    let dead = dlq.expect_message().await;
    assert_eq!(body(&dead), "poison");
    assert_eq!(dead.header("destination"), Some("/queue/dlq.orders"));
    assert_eq!(dead.header("x-original-destination"), Some("/queue/orders"));
    assert_eq!(dead.header("x-kind"), Some("bad"));
    let stats = broker.queue_stats("/queue/orders").unwrap();
    assert_eq!(
        (stats.dead_lettered, stats.delivered, stats.redelivered),
        (1, 3, 2)
    );
    let names: Vec<String> = broker.queues().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["/queue/dlq.orders", "/queue/orders"]);
}

/// RabbitMQ's `requeue:false` on NACK: the message goes to the dead-letter queue at once,
/// however many deliveries it had left; without the header (or `requeue:true`) it comes back.
#[tokio::test]
async fn nack_with_requeue_false_dead_letters_at_once() {
    let broker = broker_with(QueueConfig::default());
    let mut dlq = TestClient::connect(&broker).await;
    dlq.subscribe("d", "/queue/dlq.orders").await;
    let mut c = TestClient::connect(&broker).await;
    c.subscribe_with(frames::subscribe_ack(
        "0",
        "/queue/orders",
        "client-individual",
    ))
    .await;
    let mut p = TestClient::connect(&broker).await;
    p.send_with_receipt(frames::send("/queue/orders", "a"), "r")
        .await;
    let m = c.expect_message().await;
    let nack = frames::nack(ack_id(&m)).with_header("requeue", "true");
    c.send_frame(nack).await;
    let again = c.expect_message().await;
    assert_eq!(again.header("redelivered"), Some("true"));
    let reject = frames::nack(ack_id(&again)).with_header("requeue", "false");
    c.send_with_receipt(reject, "n2").await;
    c.expect_no_frame(QUIET).await;
    let dead = dlq.expect_message().await;
    assert_eq!(body(&dead), "a");
    assert_eq!(dead.header("x-original-destination"), Some("/queue/orders"));
    let stats = broker.queue_stats("/queue/orders").unwrap();
    assert_eq!(
        (stats.dead_lettered, stats.delivered, stats.depth),
        (1, 2, 0)
    );
}

#[tokio::test]
async fn with_dead_lettering_off_a_message_is_redelivered_forever() {
    let broker = broker_with(QueueConfig {
        max_deliveries: 0,
        ..QueueConfig::default()
    });
    let mut c = TestClient::connect(&broker).await;
    c.subscribe_with(frames::subscribe_ack("0", "/queue/o", "client-individual"))
        .await;
    let mut p = TestClient::connect(&broker).await;
    p.send_with_receipt(frames::send("/queue/o", "again"), "r")
        .await;
    for _ in 0..30 {
        let m = c.expect_message().await;
        c.send_frame(frames::nack(ack_id(&m))).await;
    }
    let m = c.expect_message().await;
    assert_eq!(body(&m), "again");
    assert_eq!(broker.queue_stats("/queue/o").unwrap().dead_lettered, 0);
}

#[tokio::test]
async fn prefetch_caps_unacknowledged_deliveries() {
    let broker = Broker::new();
    let mut c = TestClient::connect(&broker).await;
    c.subscribe_with(
        frames::subscribe_ack("0", "/queue/pf", "client-individual")
            .with_header("prefetch-count", "2"),
    )
    .await;
    let mut p = TestClient::connect(&broker).await;
    send_many(&mut p, "/queue/pf", "p", 5).await;
    let m0 = c.expect_message().await;
    let m1 = c.expect_message().await;
    c.expect_no_frame(QUIET).await;
    let stats = broker.queue_stats("/queue/pf").unwrap();
    assert_eq!((stats.depth, stats.in_flight), (3, 2));
    c.send_frame(frames::ack(ack_id(&m1))).await;
    assert_eq!(body(&c.expect_message().await), "p-002");
    c.expect_no_frame(QUIET).await;
    c.send_frame(frames::ack(ack_id(&m0))).await;
    assert_eq!(body(&c.expect_message().await), "p-003");
    c.expect_no_frame(QUIET).await;
}

#[tokio::test]
async fn invalid_prefetch_counts_are_errors() {
    let broker = Broker::new();
    for value in ["0", "-1", "many", "1001"] {
        let mut c = TestClient::connect(&broker).await;
        c.send_frame(frames::subscribe("0", "/queue/x").with_header("prefetch-count", value))
            .await;
        let e = c.expect_error("invalid prefetch-count").await;
        assert!(body(&e).contains("1000"), "{value}: {e:?}");
    }
}

#[tokio::test]
async fn client_mode_acks_cumulatively_client_individual_one_by_one() {
    let broker = Broker::new();
    let mut p = TestClient::connect(&broker).await;
    for (mode, queue) in [
        ("client", "/queue/cum"),
        ("client-individual", "/queue/ind"),
    ] {
        let mut c = TestClient::connect(&broker).await;
        c.subscribe_with(frames::subscribe_ack("0", queue, mode))
            .await;
        send_many(&mut p, queue, "m", 3).await;
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(c.expect_message().await);
        }
        c.send_with_receipt(frames::ack(ack_id(&got[2])), "last")
            .await;
        let stats = broker.queue_stats(queue).unwrap();
        if mode == "client" {
            assert_eq!((stats.acked, stats.in_flight), (3, 0), "{mode}");
            c.send_frame(frames::ack(ack_id(&got[0]))).await;
            c.expect_error("unknown ack id").await;
        } else {
            assert_eq!((stats.acked, stats.in_flight), (1, 2), "{mode}");
            c.send_with_receipt(frames::ack(ack_id(&got[0])), "first")
                .await;
            c.send_with_receipt(frames::ack(ack_id(&got[1])), "second")
                .await;
            let stats = broker.queue_stats(queue).unwrap();
            assert_eq!((stats.acked, stats.in_flight), (3, 0), "{mode}");
        }
    }
}

#[tokio::test]
async fn acks_are_identified_as_each_protocol_version_says() {
    let broker = Broker::new();
    let mut p = TestClient::connect(&broker).await;

    // 1.0: MESSAGE has no `ack` header; ACK names `message-id`.
    let (mut c, _) = TestClient::connect_with(&broker, frames::connect_1_0()).await;
    c.subscribe_with(frames::subscribe_ack("s", "/queue/v10", "client"))
        .await;
    p.send_with_receipt(frames::send("/queue/v10", "x"), "r")
        .await;
    let m = c.expect_message().await;
    assert_eq!(m.header("ack"), None);
    let id = m.header("message-id").unwrap();
    c.send_with_receipt(Frame::new(Command::Ack).with_header("message-id", id), "ok")
        .await;

    // 1.1: `message-id` and `subscription`.
    let (mut c, _) = TestClient::connect_with(&broker, frames::connect_with_versions("1.1")).await;
    c.subscribe_with(frames::subscribe_ack(
        "s",
        "/queue/v11",
        "client-individual",
    ))
    .await;
    p.send_with_receipt(frames::send("/queue/v11", "x"), "r")
        .await;
    let m = c.expect_message().await;
    assert_eq!(m.header("ack"), None);
    let id = m.header("message-id").unwrap();
    let ack = |sub| {
        Frame::new(Command::Ack)
            .with_header("message-id", id)
            .with_header("subscription", sub)
    };
    c.send_frame(ack("other")).await;
    c.expect_error("unknown ack id").await;
    let (mut c, _) = TestClient::connect_with(&broker, frames::connect_with_versions("1.1")).await;
    c.send_frame(frames::subscribe_ack(
        "s",
        "/queue/v11",
        "client-individual",
    ))
    .await;
    // The message came back to the queue when that session ended.
    let m = c.expect_message().await;
    assert_eq!(m.header("redelivered"), Some("true"));
    let id = m.header("message-id").unwrap();
    c.send_with_receipt(
        Frame::new(Command::Ack)
            .with_header("message-id", id)
            .with_header("subscription", "s"),
        "ok",
    )
    .await;

    // 1.2: `id`, the MESSAGE's `ack` value; `message-id` alone is not enough.
    let mut c = TestClient::connect(&broker).await;
    c.subscribe_with(frames::subscribe_ack("s", "/queue/v12", "client"))
        .await;
    p.send_with_receipt(frames::send("/queue/v12", "x"), "r")
        .await;
    let m = c.expect_message().await;
    let id = m.header("message-id").unwrap();
    c.send_frame(Frame::new(Command::Ack).with_header("message-id", id))
        .await;
    c.expect_error("missing id header").await;
    let mut c = TestClient::connect(&broker).await;
    c.send_frame(frames::subscribe_ack("s", "/queue/v12", "client"))
        .await;
    let m = c.expect_message().await;
    c.send_with_receipt(frames::ack(ack_id(&m)), "ok").await;
    for queue in ["/queue/v10", "/queue/v11", "/queue/v12"] {
        let stats = broker.queue_stats(queue).unwrap();
        assert_eq!(
            (stats.acked, stats.in_flight, stats.depth),
            (1, 0, 0),
            "{queue}"
        );
    }
}

#[tokio::test]
async fn ack_or_nack_of_an_unknown_id_is_an_error() {
    let broker = Broker::new();
    for frame in [
        frames::ack("12345"),
        frames::nack("12345"),
        frames::ack("not-a-number"),
    ] {
        let mut c = TestClient::connect(&broker).await;
        c.subscribe_with(frames::subscribe_ack("0", "/queue/k", "client"))
            .await;
        let command = frame.command;
        c.send_frame(frame.with_header("receipt", "r")).await;
        let e = c.expect_error("unknown ack id").await;
        assert_eq!(e.header("receipt-id"), Some("r"));
        assert!(body(&e).starts_with(&command.to_string()), "{e:?}");
        assert!(matches!(
            c.close_reason().await,
            CloseReason::ProtocolError(_)
        ));
    }
    // Messages of an `auto` subscription cannot be acknowledged.
    let mut c = TestClient::connect(&broker).await;
    c.subscribe("0", "/queue/auto").await;
    let mut p = TestClient::connect(&broker).await;
    p.send_frame(frames::send("/queue/auto", "x")).await;
    let m = c.expect_message().await;
    let id = m.header("message-id").unwrap();
    c.send_frame(frames::ack(id)).await;
    c.expect_error("unknown ack id").await;
}

#[tokio::test]
async fn the_bound_rejects_with_an_error_naming_the_queue() {
    let broker = broker_with(QueueConfig {
        max_messages: 3,
        ..QueueConfig::default()
    });
    let mut p = TestClient::connect(&broker).await;
    send_many(&mut p, "/queue/full", "f", 3).await;
    p.send_frame(frames::send("/queue/full", "one too many").with_header("receipt", "r"))
        .await;
    let e = p.expect_error("queue full: /queue/full").await;
    assert!(body(&e).contains("/queue/full"));
    assert_eq!(
        e.header("receipt-id"),
        Some("r"),
        "the SEND's receipt, on the ERROR"
    );
    assert!(matches!(
        p.close_reason().await,
        CloseReason::ProtocolError(_)
    ));
    let mut c = TestClient::connect(&broker).await;
    c.send_frame(frames::subscribe("0", "/queue/full")).await;
    for i in 0..3 {
        assert_eq!(body(&c.expect_message().await), format!("f-{i:03}"));
    }
    c.expect_no_frame(QUIET).await;
}

#[tokio::test]
async fn the_bound_drops_the_oldest_under_drop_oldest() {
    let broker = broker_with(QueueConfig {
        max_messages: 3,
        overflow: OverflowPolicy::DropOldest,
        ..QueueConfig::default()
    });
    let mut p = TestClient::connect(&broker).await;
    send_many(&mut p, "/queue/ring", "r", 5).await;
    let stats = broker.queue_stats("/queue/ring").unwrap();
    assert_eq!((stats.depth, stats.dropped), (3, 2));
    let mut c = TestClient::connect(&broker).await;
    c.send_frame(frames::subscribe("0", "/queue/ring")).await;
    for i in 2..5 {
        assert_eq!(body(&c.expect_message().await), format!("r-{i:03}"));
    }
}

/// The node-wide bound holds for every queue, an empty one included, and its ERROR names it.
#[tokio::test]
async fn the_node_bound_holds_for_empty_queues_and_is_named() {
    let config = Config {
        max_body_size: 1000,
        max_frame_size: 2000,
        queues: QueueConfig {
            max_bytes: 2500,
            max_total_bytes: 2500,
            ..QueueConfig::default()
        },
        ..Config::default()
    };
    let broker = Broker::builder().config(config).build().unwrap();
    let mut p = TestClient::connect(&broker).await;
    let big = "x".repeat(1000);
    p.send_frame(frames::send("/queue/a", big.clone())).await;
    p.send_with_receipt(frames::send("/queue/a", big.clone()), "r")
        .await;
    // `/queue/b` is empty, but the node's queues hold their maximum.
    p.send_frame(frames::send("/queue/b", big)).await;
    let e = p.expect_error("queue full: /queue/b").await;
    let text = body(&e);
    assert!(text.contains("queues.max_total_bytes"), "{text}");
    assert!(text.contains("2500"), "{text}");
    assert!(broker.queue_stats("/queue/b").is_none_or(|s| s.depth == 0));
}

#[tokio::test]
async fn the_byte_bound_counts_too() {
    let config = Config {
        max_body_size: 1000,
        max_frame_size: 2000,
        queues: QueueConfig {
            max_bytes: 2500,
            ..QueueConfig::default()
        },
        ..Config::default()
    };
    let broker = Broker::builder().config(config).build().unwrap();
    let mut p = TestClient::connect(&broker).await;
    let big = "x".repeat(1000);
    p.send_frame(frames::send("/queue/bytes", big.clone()))
        .await;
    p.send_with_receipt(frames::send("/queue/bytes", big.clone()), "r")
        .await;
    p.send_frame(frames::send("/queue/bytes", big)).await;
    p.expect_error("queue full: /queue/bytes").await;
    let stats = broker.queue_stats("/queue/bytes").unwrap();
    assert_eq!(stats.depth, 2);
    assert!(stats.bytes > 2000 && stats.bytes <= 2500, "{stats:?}");
}

#[tokio::test(start_paused = true)]
async fn expired_messages_are_dropped_not_delivered() {
    let broker = Broker::new();
    let mut p = TestClient::connect(&broker).await;
    let now = broker.now_millis();
    for (text, expires) in [
        ("stale", now + 1_000),
        ("fresh", now + 60_000),
        ("forever", 0),
    ] {
        let frame = frames::send("/queue/exp", text).with_header("expires", expires.to_string());
        p.send_with_receipt(frame, text).await;
    }
    tokio::time::advance(Duration::from_secs(2)).await;
    let stats = broker.queue_stats("/queue/exp").unwrap();
    assert_eq!((stats.depth, stats.expired), (2, 1));
    let mut c = TestClient::connect(&broker).await;
    c.send_frame(frames::subscribe("0", "/queue/exp")).await;
    let m = c.expect_message().await;
    assert_eq!(body(&m), "fresh");
    // `expires` is forwarded, as ActiveMQ does.
    assert_eq!(
        m.header("expires"),
        Some((now + 60_000).to_string().as_str())
    );
    assert_eq!(body(&c.expect_message().await), "forever");
    c.expect_no_frame(QUIET).await;
}

#[tokio::test(start_paused = true)]
async fn message_ttl_expires_messages_without_their_own_and_expired_ones_can_be_dead_lettered() {
    let broker = broker_with(QueueConfig {
        message_ttl: Duration::from_secs(10),
        expired: ExpiredPolicy::DeadLetter,
        ..QueueConfig::default()
    });
    let mut p = TestClient::connect(&broker).await;
    let now = broker.now_millis();
    p.send_with_receipt(frames::send("/queue/ttl", "by the ttl"), "a")
        .await;
    let own =
        frames::send("/queue/ttl", "its own").with_header("expires", (now + 60_000).to_string());
    p.send_with_receipt(own, "b").await;
    let never = frames::send("/queue/ttl", "never").with_header("expires", "0");
    p.send_with_receipt(never, "c").await;
    tokio::time::advance(Duration::from_secs(11)).await;

    let stats = broker.queue_stats("/queue/ttl").unwrap();
    assert_eq!((stats.depth, stats.expired), (2, 1), "{stats:?}");
    let mut c = TestClient::connect(&broker).await;
    c.send_frame(frames::subscribe("0", "/queue/ttl")).await;
    let m = c.expect_message().await;
    assert_eq!(body(&m), "its own");
    assert_eq!(body(&c.expect_message().await), "never");
    // The TTL's deadline was written as the `expires` header the message carried.
    let mut d = TestClient::connect(&broker).await;
    d.send_frame(frames::subscribe("0", "/queue/dlq.ttl")).await;
    let dead = d.expect_message().await;
    assert_eq!(body(&dead), "by the ttl");
    assert_eq!(dead.header("x-original-destination"), Some("/queue/ttl"));
    assert_eq!(
        dead.header("expires"),
        None,
        "it would expire again in the dead-letter queue"
    );
    d.expect_no_frame(QUIET).await;
}

#[tokio::test(start_paused = true)]
async fn queues_ttl_gives_some_queues_a_ttl_of_their_own_first_match_first() {
    let ttl = |queues: &str, secs| stompbox_broker::QueueTtl {
        queues: queues.into(),
        ttl: Duration::from_secs(secs),
    };
    let broker = broker_with(QueueConfig {
        message_ttl: Duration::from_secs(100),
        ttl: vec![
            ttl("reports.keep", 0),
            ttl("reports.*", 10),
            ttl("jobs", 30),
        ],
        ..QueueConfig::default()
    });
    let mut p = TestClient::connect(&broker).await;
    for queue in ["reports.daily", "reports.keep", "jobs", "other"] {
        let send = frames::send(&format!("/queue/{queue}"), queue.to_owned());
        p.send_with_receipt(send, queue).await;
    }
    let live = |queue: &str| {
        broker
            .queue_stats(&format!("/queue/{queue}"))
            .unwrap()
            .depth
    };
    tokio::time::advance(Duration::from_secs(11)).await;
    assert_eq!(
        ["reports.daily", "reports.keep", "jobs", "other"].map(live),
        [0, 1, 1, 1],
        "reports.* expired at 10 s; reports.keep (0s: none) and the others wait"
    );
    tokio::time::advance(Duration::from_secs(20)).await;
    assert_eq!(["reports.keep", "jobs", "other"].map(live), [1, 0, 1]);
    tokio::time::advance(Duration::from_secs(70)).await;
    assert_eq!(["reports.keep", "other"].map(live), [1, 0]);
}

#[test]
fn a_ttl_pattern_with_a_star_inside_is_a_configuration_error() {
    let config = stompbox_broker::Config {
        queues: QueueConfig {
            ttl: vec![stompbox_broker::QueueTtl {
                queues: "a*b".into(),
                ttl: Duration::from_secs(1),
            }],
            ..QueueConfig::default()
        },
        ..stompbox_broker::Config::default()
    };
    assert_eq!(config.validate().unwrap_err().field, "queues.ttl");
}

#[tokio::test]
async fn a_stalled_consumer_holds_only_its_prefetch_the_rest_waits_in_the_queue() {
    let broker = Broker::new();
    // A transport holding one batch: once the client stops reading, writes stall.
    let mut slow = TestClient::start_with_capacity(&broker, 1);
    slow.send_frame(frames::connect()).await;
    slow.expect_frame(Command::Connected).await;
    slow.subscribe_with(frames::subscribe("0", "/queue/slow").with_header("prefetch-count", "10"))
        .await;
    let mut p = TestClient::connect(&broker).await;
    send_many(&mut p, "/queue/slow", "s", 300).await;
    let stats = broker.queue_stats("/queue/slow").unwrap();
    assert!(stats.in_flight <= 10, "{stats:?}");
    assert!(stats.depth >= 250, "the rest waits in the queue: {stats:?}");
    assert_eq!(broker.stats().slow_consumers, 0);
    for i in 0..300 {
        assert_eq!(body(&slow.expect_message().await), format!("s-{i:03}"));
    }
}

#[tokio::test]
async fn a_delivery_a_full_outbox_refuses_stays_in_the_queue() {
    // A tiny outbox under drop-newest: topic traffic fills it while the client is stalled, the
    // queue's deliveries are refused, and yet every queue message arrives once it reads again.
    let config = Config {
        outbox: OutboxConfig {
            max_frames: 4,
            slow_consumer: SlowConsumerPolicy::DropNewest,
            ..OutboxConfig::default()
        },
        ..Config::default()
    };
    let broker = Broker::builder().config(config).build().unwrap();
    let mut slow = TestClient::start_with_capacity(&broker, 1);
    slow.send_frame(frames::connect()).await;
    slow.expect_frame(Command::Connected).await;
    slow.subscribe("t", "/topic/noise").await;
    slow.subscribe("q", "/queue/precious").await;
    let mut p = TestClient::connect(&broker).await;
    send_many(&mut p, "/topic/noise", "n", 40).await;
    send_many(&mut p, "/queue/precious", "q", 20).await;
    assert!(
        broker.stats().dropped_deliveries > 0,
        "topic messages were dropped"
    );
    let mut got = Vec::new();
    while got.len() < 20 {
        let m = slow.expect_message().await;
        if m.header("subscription") == Some("q") {
            got.push(body(&m));
        }
    }
    let expected: Vec<String> = (0..20).map(|i| format!("q-{i:03}")).collect();
    assert_eq!(got, expected);
    let stats = broker.queue_stats("/queue/precious").unwrap();
    assert_eq!((stats.depth, stats.in_flight, stats.acked), (0, 0, 20));
}

#[tokio::test]
async fn sends_and_subscribes_beyond_max_queues_are_errors() {
    let broker = broker_with(QueueConfig {
        max_queues: 2,
        ..QueueConfig::default()
    });
    let mut c = TestClient::connect(&broker).await;
    c.subscribe("a", "/queue/a").await;
    c.send_with_receipt(frames::send("/queue/b", "x"), "b")
        .await;
    c.send_frame(frames::subscribe("c", "/queue/c")).await;
    c.expect_error("too many queues (max 2)").await;
    let mut p = TestClient::connect(&broker).await;
    p.send_frame(frames::send("/queue/d", "x")).await;
    p.expect_error("too many queues (max 2)").await;
    assert_eq!(broker.queues().len(), 2);
}

#[tokio::test]
async fn the_send_handle_reaches_queues_and_respects_their_bound() {
    let broker = broker_with(QueueConfig {
        max_messages: 2,
        ..QueueConfig::default()
    });
    // Nobody listens yet: the handle's messages wait in the queue, like a client's SEND.
    assert_eq!(broker.send("/queue/mail", "one").unwrap(), 0);
    broker.send("/queue/mail", "two").unwrap();
    let full = broker.send("/queue/mail", "three").unwrap_err();
    assert_eq!(full.to_string(), "queue full: /queue/mail");
    assert_eq!(broker.queue_stats("/queue/mail").unwrap().depth, 2);

    let mut c = TestClient::connect(&broker).await;
    // No receipt asked: the backlog may arrive before a RECEIPT would.
    c.send_frame(frames::subscribe("s", "/queue/mail")).await;
    assert_eq!(body(&c.expect_message().await), "one");
    assert_eq!(body(&c.expect_message().await), "two");
    let stats = broker.queue_stats("/queue/mail").unwrap();
    assert_eq!((stats.depth, stats.enqueued, stats.delivered), (0, 2, 2));
}

/// Queues with no message and no consumer for `queues.idle_expiry` are removed, so
/// per-client queues do not pile up to `max_queues`; busy ones stay.
#[tokio::test(start_paused = true)]
async fn idle_queues_expire_and_free_their_place() {
    let broker = broker_with(QueueConfig {
        idle_expiry: Duration::from_secs(10),
        max_queues: 3,
        ..QueueConfig::default()
    });
    let mut c = TestClient::connect(&broker).await;
    c.subscribe("t", "/queue/temp").await;
    c.send_with_receipt(frames::unsubscribe("t"), "u").await;
    c.subscribe("w", "/queue/watched").await;
    c.send_with_receipt(frames::send("/queue/waiting", "x"), "s")
        .await;
    let names = |broker: &Broker| -> Vec<String> {
        broker.queues().into_iter().map(|(name, _)| name).collect()
    };
    assert_eq!(
        names(&broker),
        ["/queue/temp", "/queue/waiting", "/queue/watched"]
    );
    // The table is full: a fourth queue is refused while the idle one is young.
    let mut p = TestClient::connect(&broker).await;
    p.send_frame(frames::send("/queue/fourth", "x").with_header("receipt", "f"))
        .await;
    p.expect_error("too many queues (max 3)").await;

    let mut p = TestClient::connect(&broker).await;
    tokio::time::sleep(Duration::from_secs(11)).await;
    // The idle queue is gone; the one with a message and the one with a consumer stay.
    assert_eq!(names(&broker), ["/queue/waiting", "/queue/watched"]);
    p.send_with_receipt(frames::send("/queue/fourth", "x"), "f")
        .await;
    assert_eq!(broker.queue_stats("/queue/temp"), None);
    assert_eq!(broker.queue_stats("/queue/fourth").unwrap().depth, 1);
}
